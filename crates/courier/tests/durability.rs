//! Durability as a feature, against real clusters: the three-layer audit (warn and
//! enforce), the dead letter queue, and delivery metrics checked against Kafka's own
//! console consumer.

use std::time::Duration;

use courier::audit::Layer;
use courier::dlq::headers;
use courier::{Persistence, Producer, ProducerConfig, ProducerError, ProducerRecord};
use courier_testkit::{KafkaCluster, TopicSpec};

async fn three_brokers() -> &'static KafkaCluster {
    tokio::task::spawn_blocking(|| KafkaCluster::shared(3))
        .await
        .unwrap()
}

fn config(cluster: &KafkaCluster, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut b = ProducerConfig::builder()
        .set("bootstrap.servers", &cluster.bootstrap())
        .unwrap()
        .set("max.block.ms", "20000")
        .unwrap();
    for (k, v) in extra {
        b = b.set(k, v).unwrap();
    }
    b.build().unwrap()
}

async fn create(cluster: &'static KafkaCluster, spec: TopicSpec) -> String {
    let name = spec.name.clone();
    tokio::task::spawn_blocking(move || cluster.create_topic(&spec))
        .await
        .unwrap()
        .unwrap();
    name
}

async fn read_all(
    cluster: &'static KafkaCluster,
    topic: &str,
) -> Vec<courier_testkit::ConsumedRecord> {
    let t = topic.to_string();
    tokio::task::spawn_blocking(move || cluster.consume_all(&t))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_one_is_misaligned_warn_sends_and_enforce_refuses() {
    let cluster = three_brokers().await;
    let topic = create(
        cluster,
        TopicSpec::new(cluster.unique_topic("min-isr-1"))
            .partitions(2)
            .replication_factor(3)
            .config("min.insync.replicas", "1"),
    )
    .await;

    let warn = Producer::new(config(cluster, &[("durability.check", "warn")])).unwrap();
    let report = warn.durability_report(&topic).await.unwrap();
    assert!(!report.is_aligned(), "{report}");
    assert_eq!(report.replication_factor, 3);
    assert_eq!(report.min_insync_replicas, 1);
    let bad: Vec<Layer> = report.misaligned().map(|c| c.layer).collect();
    assert_eq!(bad, vec![Layer::MinInsyncReplicas], "{report}");
    // warn: the record still goes.
    warn.send(ProducerRecord::new(&topic).value("sent under warn"))
        .await
        .unwrap();
    warn.close(Duration::from_secs(10)).await.expect("close");

    let enforce = Producer::new(config(cluster, &[("durability.check", "enforce")])).unwrap();
    let err = enforce
        .send(ProducerRecord::new(&topic).value("refused under enforce"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ProducerError::DurabilityMisaligned { .. }),
        "{text}"
    );
    assert!(
        text.contains("min.insync.replicas") && text.contains("fix"),
        "{text}"
    );
    assert_eq!(err.persistence(), Persistence::NotPersisted);
    enforce.close(Duration::from_secs(10)).await.expect("close");

    let read = read_all(cluster, &topic).await;
    assert_eq!(read.len(), 1, "only the warn-mode record is in the log");
    assert_eq!(read[0].value.as_deref(), Some(&b"sent under warn"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf3_with_broker_default_min_insync_two_is_aligned_and_enforce_sends() {
    let cluster = three_brokers().await;
    let topic = create(
        cluster,
        TopicSpec::new(cluster.unique_topic("aligned")).replication_factor(3),
    )
    .await;
    let producer = Producer::new(config(cluster, &[("durability.check", "enforce")])).unwrap();
    let report = producer.durability_report(&topic).await.unwrap();
    assert!(report.is_aligned(), "{report}");
    assert_eq!(report.min_insync_replicas, 2);
    assert_eq!(
        report.min_insync_source,
        courier::net::ConfigSource::Broker,
        "{report}"
    );
    let md = producer
        .send(ProducerRecord::new(&topic).value("durable"))
        .await
        .unwrap();
    assert_eq!(md.offset, 0);
    producer
        .close(Duration::from_secs(10))
        .await
        .expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_factor_one_is_misaligned() {
    let cluster = three_brokers().await;
    let topic = create(
        cluster,
        TopicSpec::new(cluster.unique_topic("rf1")).replication_factor(1),
    )
    .await;
    let report = courier::audit::audit(&config(cluster, &[]), &topic)
        .await
        .unwrap();
    assert_eq!(report.replication_factor, 1);
    let bad: Vec<Layer> = report.misaligned().map(|c| c.layer).collect();
    assert!(bad.contains(&Layer::Replication), "{report}");
    assert!(report.to_string().contains("MISALIGNED"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_record_lands_in_the_dlq_and_metrics_match_the_reader() {
    let cluster = three_brokers().await;
    let topic = create(
        cluster,
        TopicSpec::new(cluster.unique_topic("small-messages")).config("max.message.bytes", "2000"),
    )
    .await;
    let dlq = create(cluster, TopicSpec::new(format!("{topic}.dlq"))).await;
    let producer = Producer::new(config(cluster, &[("dlq.topic", &dlq)])).unwrap();

    // Alone in its batch, so the broker's MESSAGE_TOO_LARGE is about this record only.
    let big = vec![b'x'; 10_000];
    let err = producer
        .send(
            ProducerRecord::new(&topic)
                .key("order-7")
                .value(big.clone())
                .header("trace", "t-1"),
        )
        .await
        .unwrap_err();
    let ProducerError::DeadLettered {
        source,
        dlq_topic,
        dlq_offset,
        ..
    } = &err
    else {
        panic!("expected a dead-lettered record, got {err}");
    };
    assert!(
        matches!(**source, ProducerError::RecordRejectedAsTooLarge { .. }),
        "{source}"
    );
    assert_eq!(dlq_topic, &dlq);
    assert_eq!(*dlq_offset, 0);
    assert_eq!(err.persistence(), Persistence::NotPersisted);

    for i in 0..20 {
        producer
            .send(ProducerRecord::new(&topic).value(format!("ok-{i}")))
            .await
            .unwrap();
    }
    let m = producer.metrics();
    producer
        .close(Duration::from_secs(10))
        .await
        .expect("close");

    let main = read_all(cluster, &topic).await;
    assert_eq!(main.len(), 20);
    assert_eq!(m.sent, 21);
    assert_eq!(
        m.delivered,
        main.len() as u64,
        "delivered counter = records the reader sees"
    );
    assert_eq!(m.failed, 1);
    assert_eq!(
        m.failed_by_error.get("MESSAGE_TOO_LARGE"),
        Some(&1),
        "{m:?}"
    );
    assert_eq!(m.dead_lettered, 1);
    assert_eq!(m.pending(), 0);
    assert!((m.success_rate() - 20.0 / 21.0).abs() < 1e-9);

    let dead = read_all(cluster, &dlq).await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.key.as_deref(), Some(&b"order-7"[..]));
    let header = |name: &str| {
        d.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(header(headers::TOPIC).as_deref(), Some(topic.as_str()));
    assert_eq!(
        header(headers::ERROR_NAME).as_deref(),
        Some("MESSAGE_TOO_LARGE")
    );
    assert_eq!(header(headers::ERROR_CODE).as_deref(), Some("10"));
    assert_eq!(
        header(headers::PERSISTENCE).as_deref(),
        Some("not-persisted")
    );
    assert_eq!(
        header("trace").as_deref(),
        Some("t-1"),
        "original headers kept"
    );
    let body = String::from_utf8(d.value.clone().unwrap()).unwrap();
    assert!(body.contains(&format!("\"topic\":\"{topic}\"")), "{body}");
    assert!(
        body.contains(&format!("\"value\":\"{}\"", "x".repeat(10_000))),
        "original value in the body"
    );
    assert!(
        body.contains("\"name\":\"MESSAGE_TOO_LARGE\",\"code\":10"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_failure_lands_in_the_dlq() {
    // A broker with an authorizer: everything is allowed except what an ACL denies.
    let cluster: &'static KafkaCluster = Box::leak(Box::new(
        tokio::task::spawn_blocking(|| {
            KafkaCluster::builder()
                .brokers(1)
                .broker_property(
                    "authorizer.class.name",
                    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                )
                .broker_property("allow.everyone.if.no.acl.found", "true")
                .start()
        })
        .await
        .unwrap()
        .unwrap(),
    ));
    let topic = create(cluster, TopicSpec::new(cluster.unique_topic("denied"))).await;
    let dlq = create(cluster, TopicSpec::new(format!("{topic}.dlq"))).await;
    let bootstrap = cluster.bootstrap();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || {
        cluster.run_tool(
            "org.apache.kafka.tools.AclCommand",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--add",
                "--deny-principal",
                "User:ANONYMOUS",
                "--operation",
                "Write",
                "--topic",
                &t,
            ],
        )
    })
    .await
    .unwrap()
    .unwrap();

    let producer = Producer::new(config(cluster, &[("dlq.topic", &dlq)])).unwrap();
    // The ACL reaches the broker's authorizer through the metadata log: retry until
    // the denial shows, bounded.
    let mut err = None;
    for _ in 0..50 {
        match producer
            .send(ProducerRecord::new(&topic).key("k").value("secret"))
            .await
        {
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the deny ACL never took effect");
    let ProducerError::DeadLettered { source, .. } = &err else {
        panic!("expected a dead-lettered record, got {err}");
    };
    assert!(
        matches!(**source, ProducerError::TopicAuthorizationFailed { .. }),
        "{source}"
    );
    assert!(
        source.to_string().contains("WRITE"),
        "the message says what to grant: {source}"
    );
    producer
        .close(Duration::from_secs(10))
        .await
        .expect("close");

    let dead = read_all(cluster, &dlq).await;
    assert_eq!(dead.len(), 1);
    let name = dead[0]
        .headers
        .iter()
        .find(|(k, _)| k == headers::ERROR_NAME)
        .and_then(|(_, v)| v.clone());
    assert_eq!(name.as_deref(), Some(&b"TOPIC_AUTHORIZATION_FAILED"[..]));
    assert_eq!(
        dead[0].value.as_deref().map(|v| v.starts_with(b"{")),
        Some(true)
    );
}
