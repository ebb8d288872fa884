//! The secured listeners, proven with Kafka's own clients: records go through each of
//! them, and what must be refused is refused.
//!
//! One secured single-broker cluster serves every test in this binary.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use courier_testkit::{
    ClientAuth, ClientCert, ConsumeOptions, KafkaCluster, Listener, SaslMechanism, Security,
    TopicSpec,
};

fn cluster() -> &'static KafkaCluster {
    static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let started = Instant::now();
        let c = KafkaCluster::builder()
            .security(Security::all().reauth(Listener::SaslPlaintext, Duration::from_secs(5)))
            .heap_mb(512)
            .start()
            .unwrap_or_else(|e| panic!("secured cluster: {e}"));
        eprintln!(
            "secured 1-broker cluster started in {:?}",
            started.elapsed()
        );
        c
    })
}

fn topic(prefix: &str) -> String {
    let c = cluster();
    let t = c.unique_topic(prefix);
    c.create_topic(&TopicSpec::new(&t)).unwrap();
    t
}

fn read(
    c: &KafkaCluster,
    cfg: &courier_testkit::JavaClientConfig,
    t: &str,
    n: usize,
) -> Vec<String> {
    c.consume_with(
        cfg,
        t,
        &ConsumeOptions {
            max_records: Some(n),
            idle_timeout: Duration::from_secs(30),
            ..ConsumeOptions::default()
        },
    )
    .unwrap()
    .into_iter()
    .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
    .collect()
}

#[test]
fn sasl_ssl_scram_sha_512_round_trip() {
    let c = cluster();
    let sec = c.security().unwrap();
    let cfg = sec
        .java_client(
            Listener::SaslSsl,
            &ClientAuth::sasl(SaslMechanism::ScramSha512, sec.user()),
        )
        .unwrap();
    let t = topic("scram512");
    c.console_produce_with(&cfg, &t, &[(Some("k"), "v1"), (None, "v2")])
        .unwrap();
    assert_eq!(read(c, &cfg, &t, 2), vec!["v1", "v2"]);
}
