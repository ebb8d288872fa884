//! KIP-368: a broker whose SASL sessions last three seconds (`connections.max.reauth.ms`)
//! closes every connection that does not re-authenticate in time. A one-minute stream over
//! such a listener must go on with nothing lost or duplicated and no connection cut: courier
//! re-authenticates each session in place, with a fresh OAUTHBEARER token when the old one
//! is near its end.
//!
//! Its own cluster: a session lifetime on the shared secured one would cut every other
//! test's connections.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use courier::{Producer, ProducerConfig, ProducerRecord};
use courier_testkit::oidc::OidcOptions;
use courier_testkit::{KafkaCluster, Listener, Security, TopicSpec};

const SESSION: Duration = Duration::from_secs(3);
const STREAM: Duration = Duration::from_secs(60);

async fn stream(cluster: &'static KafkaCluster, config: ProducerConfig, prefix: &str) -> u64 {
    let topic = cluster.unique_topic(prefix);
    cluster
        .create_topic(&TopicSpec::new(&topic).partitions(3))
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let start = Instant::now();
    let mut futures = Vec::new();
    let mut sent = 0usize;
    while start.elapsed() < STREAM {
        for _ in 0..100 {
            let rec = ProducerRecord::new(&topic).value(format!("{sent}"));
            futures.push(producer.produce(rec).await.unwrap());
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, f) in futures.into_iter().enumerate() {
        f.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
    }
    let m = producer.metrics();
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close");
    eprintln!("{prefix}: {sent} records, {m:?}");
    // Sessions of 3 s over a minute: about 20 re-authentications of the broker connection
    // (and of the bootstrap one while it is used).
    assert!(m.reauthentications >= 15, "{m:?}");
    assert_eq!(m.connections_closed_by_peer, 0, "no session ran out: {m:?}");
    let read = tokio::task::spawn_blocking(move || cluster.consume_all(&topic))
        .await
        .unwrap()
        .unwrap();
    let values: BTreeSet<usize> = read
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap())
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(read.len(), sent, "every record once");
    assert_eq!(values.len(), sent, "no duplicates");
    m.reauthentications
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_records_across_three_second_sessions_loses_and_duplicates_nothing() {
    let cluster: &'static KafkaCluster = Box::leak(Box::new(
        tokio::task::spawn_blocking(|| {
            KafkaCluster::builder()
                .security(
                    Security::none()
                        .listener(Listener::SaslSsl)
                        .user("alice", "alice-secret")
                        .oauth(OidcOptions {
                            // Shorter than the stream: tokens must be refreshed too.
                            token_lifetime: Duration::from_secs(8),
                            ..OidcOptions::default()
                        })
                        .reauth(Listener::SaslSsl, SESSION),
                )
                .heap_mb(512)
                .start()
                .unwrap()
        })
        .await
        .unwrap(),
    ));
    let sec = cluster.security().unwrap();
    let l = sec.listener(Listener::SaslSsl).unwrap();
    assert_eq!(l.reauth, Some(SESSION));
    let ca = sec.pki.ca.cert_path.to_str().unwrap().to_string();
    let base = |b: courier::config::ProducerConfigBuilder| {
        b.set("bootstrap.servers", &l.bootstrap)
            .unwrap()
            .set("security.protocol", "sasl_ssl")
            .unwrap()
            .set("ssl.ca.location", &ca)
            .unwrap()
    };
    let scram = base(ProducerConfig::builder())
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .unwrap()
        .set("sasl.username", "alice")
        .unwrap()
        .set("sasl.password", "alice-secret")
        .unwrap()
        .build()
        .unwrap();
    let oidc = sec.oidc().unwrap();
    let before = oidc.tokens_issued();
    let oauth = base(ProducerConfig::builder())
        .set("sasl.mechanism", "OAUTHBEARER")
        .unwrap()
        .set("sasl.oauthbearer.method", "oidc")
        .unwrap()
        .set("sasl.oauthbearer.token.endpoint.url", &oidc.token_url())
        .unwrap()
        .set("sasl.oauthbearer.client.id", oidc.client_id())
        .unwrap()
        .set("sasl.oauthbearer.client.secret", oidc.client_secret())
        .unwrap()
        .build()
        .unwrap();
    let (a, b) = tokio::join!(
        stream(cluster, scram, "reauth-scram"),
        stream(cluster, oauth, "reauth-oauth")
    );
    assert!(a > 0 && b > 0);
    // An 8 s token refreshed at 80 % of its life: about 9 tokens over the minute.
    let tokens = oidc.tokens_issued() - before;
    assert!(tokens >= 6, "{tokens} tokens issued");
}
