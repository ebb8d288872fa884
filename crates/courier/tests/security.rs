//! TLS and SASL against a real secured Kafka (the test kit's shared secured cluster: one
//! broker with SASL_SSL, SSL with client authentication required, SASL_PLAINTEXT, and TLS
//! listeners presenting an expired, a wrong-host and an untrusted certificate), judged by
//! Kafka's console consumer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use courier::{Producer, ProducerConfig, ProducerError, ProducerRecord};
use courier_testkit::{KafkaCluster, Listener, SecurityInfo, TopicSpec};

fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared_secured()
}

fn security() -> &'static SecurityInfo {
    cluster()
        .security()
        .expect("the shared secured cluster has security info")
}

fn bootstrap(l: Listener) -> String {
    security().listener(l).expect("listener").bootstrap.clone()
}

fn path(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

fn config(pairs: &[(&str, String)]) -> ProducerConfig {
    let mut b = ProducerConfig::builder();
    for (k, v) in pairs {
        b = b.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    b.build().unwrap()
}

/// `n` records through a producer with `config` to a new topic, then read back by Kafka's
/// console consumer (over the kit's plaintext listener): every record exactly once.
async fn round_trip(prefix: &str, config: ProducerConfig, n: usize) {
    let c = cluster();
    let topic = c.unique_topic(prefix);
    c.create_topic(&TopicSpec::new(&topic).partitions(3))
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let mut futures = Vec::with_capacity(n);
    for i in 0..n {
        let rec = ProducerRecord::new(&topic)
            .key(format!("k{}", i % 97))
            .value(format!("{i}"));
        futures.push(producer.produce(rec).await.unwrap());
    }
    for (i, f) in futures.into_iter().enumerate() {
        f.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
    }
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close");
    let t = topic.clone();
    let read = tokio::task::spawn_blocking(move || c.consume_all(&t))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.len(), n, "every acknowledged record, once");
    let values: BTreeSet<usize> = read
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap())
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(values.len(), n, "no duplicates");
}

/// Sends one record with `config` and returns its error and how long it took.
async fn refused(config: ProducerConfig) -> (ProducerError, Duration) {
    let producer = Producer::new(config).unwrap();
    let start = Instant::now();
    let e = producer
        .send(ProducerRecord::new("never-created").value("x"))
        .await
        .expect_err("the broker must refuse this producer");
    let took = start.elapsed();
    let _ = producer.close(Duration::from_secs(5)).await;
    (e, took)
}

/// Fails within seconds, not at delivery.timeout.ms (120 s), and says `expect`.
fn assert_refused_fast(e: &ProducerError, took: Duration, expect: &str) {
    let text = e.to_string();
    eprintln!("refused in {took:?}: {text}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {text}");
    assert!(text.contains(expect), "expected {expect:?} in: {text}");
    assert!(!e.is_retriable(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_with_a_client_certificate_100k_records_exactly_once() {
    let k = &security().pki;
    let cfg = config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.ca.cert_path)),
        ("ssl.certificate.location", path(&k.client.cert_path)),
        ("ssl.key.location", path(&k.client.key_path)),
        ("compression.type", "lz4".into()),
    ]);
    round_trip("tls-mtls", cfg, 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_with_java_key_and_trust_stores() {
    let k = &security().pki;
    // PKCS#12 key store, PEM trust store: what Java clients are configured with.
    let cfg = config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "SSL".into()),
        ("ssl.truststore.location", path(&k.ca.cert_path)),
        ("ssl.truststore.type", "PEM".into()),
        ("ssl.keystore.location", path(&k.client_key.pkcs12_path)),
        ("ssl.keystore.type", "PKCS12".into()),
        ("ssl.keystore.password", k.client_key.password.clone()),
    ]);
    round_trip("tls-stores", cfg, 1_000).await;
    // The encrypted PKCS#8 key (PBES2), which Java 17 itself cannot read.
    let cfg = config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.pem", k.ca.cert_pem.clone()),
        ("ssl.certificate.location", path(&k.client.cert_path)),
        ("ssl.key.location", path(&k.client_key.encrypted_key_path)),
        ("ssl.key.password", k.client_key.password.clone()),
    ]);
    round_trip("tls-encrypted-key", cfg, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_certificate_fails_fast_and_says_so() {
    let k = &security().pki;
    let (e, took) = refused(config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.ca.cert_path)),
    ]))
    .await;
    assert_refused_fast(&e, took, "requires a client certificate");
    assert!(e.to_string().contains("ssl.certificate.location"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_client_certificate_fails_fast_and_says_so() {
    let k = &security().pki;
    let (e, took) = refused(config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.ca.cert_path)),
        (
            "ssl.certificate.location",
            path(&k.untrusted_client.cert_path),
        ),
        ("ssl.key.location", path(&k.untrusted_client.key_path)),
    ]))
    .await;
    assert_refused_fast(&e, took, "refused courier's client certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_an_unknown_ca_fails_fast_and_says_so() {
    let k = &security().pki;
    // The wrong CA configured.
    let (e, took) = refused(config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.unknown_ca.cert_path)),
        ("ssl.certificate.location", path(&k.client.cert_path)),
        ("ssl.key.location", path(&k.client.key_path)),
    ]))
    .await;
    assert_refused_fast(&e, took, "signed by a CA courier does not trust");
    assert!(e.to_string().contains("ssl.ca.location"), "{e}");
    // No CA configured: the system's roots do not know the test CA either.
    let (e, took) = refused(config(&[
        ("bootstrap.servers", bootstrap(Listener::UntrustedCert)),
        ("security.protocol", "ssl".into()),
    ]))
    .await;
    assert_refused_fast(&e, took, "courier trusts the system's CAs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_broker_certificate_fails_fast_and_says_so() {
    let k = &security().pki;
    let (e, took) = refused(config(&[
        ("bootstrap.servers", bootstrap(Listener::ExpiredCert)),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.ca.cert_path)),
    ]))
    .await;
    assert_refused_fast(&e, took, "has expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_fails_fast_unless_the_check_is_off() {
    let k = &security().pki;
    let listener = bootstrap(Listener::WrongHostCert);
    let base = [
        ("bootstrap.servers", listener.clone()),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.ca.cert_path)),
    ];
    let (e, took) = refused(config(&base)).await;
    assert_refused_fast(&e, took, "is not valid for '127.0.0.1'");
    assert!(
        e.to_string().contains("wrong.example"),
        "names what it holds: {e}"
    );
    // librdkafka's `none` (and Java's empty value) skip the name check, not the chain.
    let mut lax = base.to_vec();
    lax.push(("ssl.endpoint.identification.algorithm", "none".into()));
    // The listener has no topics of its own: the first metadata answer proves the session.
    let producer = Producer::new(config(&lax)).unwrap();
    let report = producer.durability_report("no-such-topic").await;
    assert!(
        !matches!(report, Err(ProducerError::Tls { .. })),
        "{report:?}"
    );
    let _ = producer.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plaintext_port_and_plaintext_to_a_tls_port_say_which() {
    let k = &security().pki;
    let (e, took) = refused(config(&[
        ("bootstrap.servers", cluster().bootstrap()),
        ("security.protocol", "ssl".into()),
        ("ssl.ca.location", path(&k.ca.cert_path)),
    ]))
    .await;
    assert_refused_fast(&e, took, "probably a plaintext listener");
    let (e, took) = refused(config(&[
        ("bootstrap.servers", bootstrap(Listener::Ssl)),
        ("security.protocol", "plaintext".into()),
        ("request.timeout.ms", "5000".into()),
        ("delivery.timeout.ms", "20000".into()),
    ]))
    .await;
    let text = e.to_string();
    assert!(took < Duration::from_secs(15), "took {took:?}: {text}");
    assert!(text.contains("TLS"), "{text}");
}

// ---------------------------------------------------------------------------------------
// SASL

fn sasl(l: Listener, mechanism: &str) -> Vec<(&'static str, String)> {
    let sec = security();
    let user = sec.user();
    let mut v = vec![
        ("bootstrap.servers", bootstrap(l)),
        (
            "security.protocol",
            l.security_protocol().to_ascii_lowercase(),
        ),
        ("sasl.mechanism", mechanism.into()),
        ("sasl.username", user.name.clone()),
        ("sasl.password", user.password.clone()),
    ];
    if l.is_tls() {
        v.push(("ssl.ca.location", path(&sec.pki.ca.cert_path)));
    }
    v
}

fn oauth(token_pairs: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("bootstrap.servers", bootstrap(Listener::SaslSsl)),
        ("security.protocol", "sasl_ssl".into()),
        ("sasl.mechanism", "OAUTHBEARER".into()),
        ("ssl.ca.location", path(&security().pki.ca.cert_path)),
    ];
    v.extend_from_slice(token_pairs);
    v
}

fn oidc_pairs() -> Vec<(&'static str, String)> {
    let o = security().oidc().unwrap();
    vec![
        ("sasl.oauthbearer.method", "oidc".into()),
        ("sasl.oauthbearer.token.endpoint.url", o.token_url()),
        ("sasl.oauthbearer.client.id", o.client_id().into()),
        ("sasl.oauthbearer.client.secret", o.client_secret().into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_scram_sha_512_100k_records_exactly_once() {
    round_trip(
        "sasl-scram512",
        config(&sasl(Listener::SaslSsl, "SCRAM-SHA-512")),
        100_000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_plain_100k_records_exactly_once() {
    round_trip(
        "sasl-plain",
        config(&sasl(Listener::SaslSsl, "PLAIN")),
        100_000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plaintext_scram_sha_256_100k_records_exactly_once() {
    round_trip(
        "sasl-scram256",
        config(&sasl(Listener::SaslPlaintext, "SCRAM-SHA-256")),
        100_000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_oauthbearer_with_oidc_client_credentials_100k_records_exactly_once() {
    let before = security().oidc().unwrap().tokens_issued();
    round_trip("sasl-oidc", config(&oauth(&oidc_pairs())), 100_000).await;
    assert!(
        security().oidc().unwrap().tokens_issued() > before,
        "the token came from the identity provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_with_a_fixed_token_and_with_an_application_provider() {
    let o = security().oidc().unwrap();
    let token = o.mint("courier-static", Duration::from_secs(600));
    round_trip(
        "sasl-static-token",
        config(&oauth(&[("sasl.oauthbearer.token", token)])),
        1_000,
    )
    .await;

    struct FromKit(String);
    impl courier::config::OAuthTokenProvider for FromKit {
        fn token(&self) -> courier::config::TokenFuture<'_> {
            Box::pin(async move {
                Ok(courier::config::OAuthToken {
                    value: courier::config::Secret::new(self.0.clone()),
                    expires_at: None,
                })
            })
        }
    }
    let mut b = ProducerConfig::builder();
    for (k, v) in oauth(&[]) {
        b = b.set(k, &v).unwrap();
    }
    let cfg = b
        .oauth_token_provider(std::sync::Arc::new(FromKit(
            o.mint("courier-provider", Duration::from_secs(600)),
        )))
        .build()
        .unwrap();
    round_trip("sasl-provider", cfg, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_fast_naming_the_mechanism_and_the_broker() {
    for (l, mechanism) in [
        (Listener::SaslSsl, "SCRAM-SHA-512"),
        (Listener::SaslSsl, "PLAIN"),
        (Listener::SaslPlaintext, "SCRAM-SHA-256"),
    ] {
        let mut pairs = sasl(l, mechanism);
        for p in pairs.iter_mut() {
            if p.0 == "sasl.password" {
                p.1 = "not-the-password".into();
            }
        }
        let (e, took) = refused(config(&pairs)).await;
        assert_refused_fast(
            &e,
            took,
            &format!("SASL {mechanism} authentication with broker"),
        );
        let text = e.to_string();
        assert!(text.contains(&bootstrap(l)), "{text}");
        assert!(!text.contains("not-the-password"), "{text}");
        assert_eq!(e.name(), "SASL_AUTHENTICATION_FAILED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_the_listener_does_not_enable_is_named_with_what_it_offers() {
    let mut pairs = sasl(Listener::SaslPlaintext, "SCRAM-SHA-512");
    // The kit's SASL_PLAINTEXT listener enables SCRAM-SHA-256 and PLAIN only.
    let offered = &security()
        .listener(Listener::SaslPlaintext)
        .unwrap()
        .mechanisms;
    if offered.iter().any(|m| m.name() == "SCRAM-SHA-512") {
        pairs[2].1 = "OAUTHBEARER".into();
        pairs.retain(|(k, _)| !k.starts_with("sasl.username") && !k.starts_with("sasl.password"));
        pairs.push(("sasl.oauthbearer.token", "x.y.z".into()));
    }
    let (e, took) = refused(config(&pairs)).await;
    assert_refused_fast(&e, took, "does not enable");
    assert!(e.to_string().contains("it offers"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_tokens_are_refused_fast_with_the_brokers_reason() {
    let o = security().oidc().unwrap();
    let (e, took) = refused(config(&oauth(&[(
        "sasl.oauthbearer.token",
        o.mint_forged("mallory"),
    )])))
    .await;
    assert_refused_fast(&e, took, "OAUTHBEARER authentication");
    let (e, took) = refused(config(&oauth(&[(
        "sasl.oauthbearer.token",
        o.mint_expired("late"),
    )])))
    .await;
    assert_refused_fast(&e, took, "expired");
    let mut bad = oidc_pairs();
    bad[3].1 = "not-the-client-secret".into();
    let (e, took) = refused(config(&oauth(&bad))).await;
    assert_refused_fast(&e, took, "refused the client credentials");
    assert!(!e.to_string().contains("not-the-client-secret"), "{e}");
}
