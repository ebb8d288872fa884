//! Transactions through courier's `Producer` against a real Kafka broker (issue 15),
//! judged by Kafka's console consumer at `read_committed` and `read_uncommitted` and by
//! `kafka-consumer-groups`: a committed transaction is visible exactly once, across two
//! topics; an aborted one never, though its records are in the log; offsets sent to a
//! transaction are committed with it and not after an abort; of two live producers with
//! one transactional.id, the older is fenced.

use std::time::Duration;

use courier::{
    ConsumerGroupMetadata, Producer, ProducerConfig, ProducerRecord, TransactionError, TxnOffset,
};
use courier_testkit::{ConsumeOptions, KafkaCluster, TopicSpec};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn producer(cluster: &KafkaCluster, transactional_id: &str) -> Producer {
    let config = ProducerConfig::builder()
        .set("bootstrap.servers", &cluster.bootstrap())
        .unwrap()
        .set("transactional.id", transactional_id)
        .unwrap()
        // Short enough that a test that leaves a transaction open cannot hold back
        // another's last stable offset for long.
        .set("transaction.timeout.ms", "20000")
        .unwrap()
        .build()
        .unwrap();
    Producer::new(config).unwrap()
}

fn topic(cluster: &KafkaCluster, prefix: &str) -> String {
    let t = cluster.unique_topic(prefix);
    cluster
        .create_topic(&TopicSpec::new(&t).partitions(1))
        .unwrap();
    t
}

fn values(cluster: &KafkaCluster, topic: &str, read_committed: bool) -> Vec<String> {
    cluster
        .consume(
            topic,
            &ConsumeOptions {
                idle_timeout: Duration::from_secs(4),
                read_committed,
                ..ConsumeOptions::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect()
}

/// The group's committed offset for `topic`'s partition 0, from `kafka-consumer-groups
/// --describe` (`None` when it shows no row for the topic).
fn committed_offset(cluster: &KafkaCluster, group: &str, topic: &str) -> Option<String> {
    let described = cluster
        .run_tool(
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            &[
                "--bootstrap-server",
                &cluster.bootstrap(),
                "--describe",
                "--group",
                group,
            ],
        )
        .unwrap_or_default();
    // GROUP TOPIC PARTITION CURRENT-OFFSET ...
    described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|row| row.get(1) == Some(&topic) && row.get(2) == Some(&"0"))
        .and_then(|row| row.get(3).map(|s| s.to_string()))
}

/// The seed's atomic write: a task and its audit entry, in two topics, together or not at
/// all. A committed transaction, then an aborted one (its records acknowledged before the
/// abort, so they are in the log), then another committed one.
#[test]
fn committed_transactions_are_visible_once_across_two_topics_and_aborted_ones_never() {
    let cluster = KafkaCluster::shared(1);
    let (tasks, audit) = (topic(cluster, "task-created"), topic(cluster, "audit-log"));
    let id = cluster.unique_topic("txn-atomic");
    runtime().block_on(async {
        let p = producer(cluster, &id);
        p.init_transactions().await.unwrap();
        for (n, commit) in [(1, true), (2, false), (3, true)] {
            p.begin_transaction().await.unwrap();
            let a = p
                .produce(ProducerRecord::new(&tasks).value(format!("task-{n}")))
                .await
                .unwrap();
            let b = p
                .produce(ProducerRecord::new(&audit).value(format!("audit-{n}")))
                .await
                .unwrap();
            if commit {
                p.commit_transaction().await.unwrap();
                // Commit returns once every record is acknowledged.
                a.await.unwrap();
                b.await.unwrap();
            } else {
                // In the log before the abort: only the abort marker hides them.
                a.await.unwrap();
                b.await.unwrap();
                p.abort_transaction().await.unwrap();
            }
        }
        p.close(Duration::from_secs(10)).await.unwrap();
    });
    assert_eq!(values(cluster, &tasks, true), ["task-1", "task-3"]);
    assert_eq!(values(cluster, &audit, true), ["audit-1", "audit-3"]);
    assert_eq!(
        values(cluster, &tasks, false),
        ["task-1", "task-2", "task-3"]
    );
}

/// Records sent but not yet acknowledged when the transaction aborts fail with
/// TransactionAborted or are hidden by the marker; a record sent outside a transaction
/// is refused.
#[test]
fn an_abort_right_after_sending_hides_everything_and_records_outside_a_transaction_fail() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "txn-abort");
    let id = cluster.unique_topic("txn-abort-id");
    runtime().block_on(async {
        let p = producer(cluster, &id);
        p.init_transactions().await.unwrap();
        let outside = p.send(ProducerRecord::new(&t).value("outside")).await;
        assert!(outside.is_err(), "{outside:?}");
        p.begin_transaction().await.unwrap();
        let mut futures = Vec::new();
        for i in 0..100 {
            futures.push(
                p.produce(ProducerRecord::new(&t).value(format!("aborted-{i}")))
                    .await
                    .unwrap(),
            );
        }
        p.abort_transaction().await.unwrap();
        for f in futures {
            // Acknowledged (in the log, hidden) or TransactionAborted: both are fine.
            let _ = f.await;
        }
        p.begin_transaction().await.unwrap();
        let f = p
            .produce(ProducerRecord::new(&t).value("committed"))
            .await
            .unwrap();
        p.commit_transaction().await.unwrap();
        f.await.unwrap();
        p.close(Duration::from_secs(10)).await.unwrap();
    });
    assert_eq!(values(cluster, &t, true), ["committed"]);
}

/// Offsets sent to a committed transaction are the group's committed offsets; those of an
/// aborted one never are.
#[test]
fn offsets_sent_to_a_committed_transaction_are_committed_and_not_after_an_abort() {
    let cluster = KafkaCluster::shared(1);
    let (input, output) = (topic(cluster, "txn-in"), topic(cluster, "txn-out"));
    let group = cluster.unique_topic("txn-group");
    let id = cluster.unique_topic("txn-offsets");
    runtime().block_on(async {
        let p = producer(cluster, &id);
        p.init_transactions().await.unwrap();
        for (offset, commit) in [(42, true), (99, false)] {
            p.begin_transaction().await.unwrap();
            let f = p
                .produce(ProducerRecord::new(&output).value(format!("processed-{offset}")))
                .await
                .unwrap();
            p.send_offsets_to_transaction(
                [TxnOffset::new(&input, 0, offset)],
                ConsumerGroupMetadata::new(&group),
            )
            .await
            .unwrap();
            if commit {
                p.commit_transaction().await.unwrap();
                f.await.unwrap();
            } else {
                p.abort_transaction().await.unwrap();
                // Acknowledged (hidden by the marker) or TransactionAborted.
                let _ = f.await;
            }
        }
        p.close(Duration::from_secs(10)).await.unwrap();
    });
    assert_eq!(
        committed_offset(cluster, &group, &input).as_deref(),
        Some("42")
    );
    assert_eq!(values(cluster, &output, true), ["processed-42"]);
}

/// Two live producers with one transactional.id: the newer one's init_transactions
/// fences the older, whose next transaction fails fatally with ProducerFenced; the newer
/// goes on.
#[test]
fn of_two_live_producers_with_one_transactional_id_the_older_is_fenced() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "txn-fence");
    let id = cluster.unique_topic("txn-fence-id");
    runtime().block_on(async {
        let old = producer(cluster, &id);
        old.init_transactions().await.unwrap();
        old.begin_transaction().await.unwrap();
        let f = old
            .produce(ProducerRecord::new(&t).value("old-committed"))
            .await
            .unwrap();
        old.commit_transaction().await.unwrap();
        f.await.unwrap();

        let new = producer(cluster, &id);
        new.init_transactions().await.unwrap();

        old.begin_transaction().await.unwrap();
        let fenced_record = old
            .produce(ProducerRecord::new(&t).value("old-fenced"))
            .await;
        let err: TransactionError = old.commit_transaction().await.unwrap_err();
        assert!(err.is_fatal(), "{err}");
        assert_eq!(err.java_name(), "ProducerFencedException", "{err}");
        assert!(err.to_string().contains("fenced"), "{err}");
        if let Ok(f) = fenced_record {
            assert!(
                f.await.is_err(),
                "a fenced producer's record was acknowledged"
            );
        }
        // Every later call says the same: the producer must be dropped.
        let again = old.begin_transaction().await.unwrap_err();
        assert!(again.is_fatal(), "{again}");
        let _ = old.close(Duration::from_secs(5)).await;

        new.begin_transaction().await.unwrap();
        let f = new
            .produce(ProducerRecord::new(&t).value("new-committed"))
            .await
            .unwrap();
        new.commit_transaction().await.unwrap();
        f.await.unwrap();
        new.close(Duration::from_secs(10)).await.unwrap();
    });
    assert_eq!(
        values(cluster, &t, true),
        ["old-committed", "new-committed"]
    );
}

/// `max.block.ms` bounds each call: with no broker to reach, init_transactions gives up
/// with a retriable TimedOut (Java's TimeoutException), and calling it again resumes.
/// A producer without transactional.id refuses transactional calls.
#[test]
fn a_call_that_cannot_complete_times_out_at_max_block_ms_and_is_retriable() {
    runtime().block_on(async {
        let config = ProducerConfig::builder()
            .bootstrap_servers("127.0.0.1:1")
            .transactional_id("txn-no-broker")
            .max_block(Duration::from_millis(300))
            .build()
            .unwrap();
        let p = Producer::new(config).unwrap();
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let err = p.init_transactions().await.unwrap_err();
            assert!(
                matches!(err, TransactionError::TimedOut { .. }) && err.is_retriable(),
                "{err}"
            );
            assert!(err.to_string().contains("max.block.ms (300 ms)"), "{err}");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        let err = p.begin_transaction().await.unwrap_err();
        assert_eq!(err.java_name(), "IllegalStateException", "{err}");
        let _ = p.close(Duration::from_millis(100)).await;

        let plain = Producer::new(
            ProducerConfig::builder()
                .bootstrap_servers("127.0.0.1:1")
                .build()
                .unwrap(),
        )
        .unwrap();
        let err = plain.init_transactions().await.unwrap_err();
        assert!(
            matches!(err, TransactionError::NotTransactional { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("transactional.id"), "{err}");
        let _ = plain.close(Duration::from_millis(100)).await;
    });
}
