//! Transactions through courier's `Producer` against a real Kafka broker (issue 15),
//! judged by Kafka's console consumer at `read_committed` and `read_uncommitted`, by
//! `kafka-consumer-groups` and by `kafka-transactions describe`: a committed transaction
//! is visible exactly once, across two topics; an aborted one never, though its records
//! are in the log; offsets sent to a transaction are committed with it and not after an
//! abort; of two live producers with one transactional.id, the older is fenced.
//!
//! Each scenario runs at both transaction versions (KIP-890): on Kafka 4.3 as it comes
//! (finalized `transaction.version` 2: the producer must pick version 2) and on a second
//! cluster whose `transaction.version` was downgraded to 1 (it must pick version 1). A
//! third cluster is upgraded from 1 to 2 while a producer lives.

use std::sync::OnceLock;
use std::time::Duration;

use courier::net::{BrokerConnection, ConnectOptions};
use courier::{
    ConsumerGroupMetadata, Producer, ProducerConfig, ProducerRecord, TransactionError,
    TransactionVersion, TxnOffset,
};
use courier_testkit::{ConsumeOptions, KafkaCluster, TopicSpec};

const FEATURES: &str = "org.apache.kafka.tools.FeatureCommand";

/// Sets the cluster's finalized `transaction.version` with `kafka-features`
/// (`upgrade` or `downgrade`), then waits until the broker reports it in ApiVersions,
/// read by courier's own connection (`BrokerConnection::finalized_features`).
fn set_transaction_version(cluster: &KafkaCluster, how: &str, level: i16) {
    let bootstrap = cluster.bootstrap();
    let feature = format!("transaction.version={level}");
    cluster
        .run_tool(
            FEATURES,
            &["--bootstrap-server", &bootstrap, how, "--feature", &feature],
        )
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    courier_testkit::wait_until(
        &format!("the broker to report {feature}"),
        Duration::from_secs(30),
        || {
            let conn = rt
                .block_on(BrokerConnection::connect(
                    &bootstrap,
                    &ConnectOptions::default(),
                ))
                .map_err(|e| e.to_string())?;
            let reported = conn.finalized_features().transaction_version();
            conn.close();
            match reported {
                Some(l) if l == level => Ok(()),
                other => Err(format!("transaction.version {other:?}")),
            }
        },
    )
    .unwrap();
}

/// The cluster for a transaction version: the shared Kafka 4.3 as it comes for version
/// 2, one started once per test binary with `transaction.version` downgraded to 1 for
/// version 1.
fn cluster_for(version: TransactionVersion) -> &'static KafkaCluster {
    static V1: OnceLock<KafkaCluster> = OnceLock::new();
    match version {
        TransactionVersion::V2 => KafkaCluster::shared(1),
        TransactionVersion::V1 => V1.get_or_init(|| {
            let cluster = KafkaCluster::start(1).unwrap();
            set_transaction_version(&cluster, "downgrade", 1);
            cluster
        }),
    }
}

/// The coordinator's producer epoch for `transactional_id`, from `kafka-transactions
/// describe`: version 1 keeps the epoch of init_transactions, version 2 bumps it at
/// every EndTxn (KIP-890).
fn coordinator_epoch(cluster: &KafkaCluster, transactional_id: &str) -> i32 {
    let described = cluster
        .run_tool(
            "org.apache.kafka.tools.TransactionsCommand",
            &[
                "--bootstrap-server",
                &cluster.bootstrap(),
                "describe",
                "--transactional-id",
                transactional_id,
            ],
        )
        .unwrap();
    // A header row, then one row of values, columns separated by tabs or spaces.
    let mut lines = described.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let column = header
        .iter()
        .position(|h| *h == "ProducerEpoch")
        .unwrap_or_else(|| panic!("no ProducerEpoch in {described}"));
    row[column].parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn producer(cluster: &KafkaCluster, transactional_id: &str) -> Producer {
    producer_with(cluster, transactional_id, &[])
}

fn producer_with(
    cluster: &KafkaCluster,
    transactional_id: &str,
    extra: &[(&str, &str)],
) -> Producer {
    let mut config = ProducerConfig::builder()
        .set("bootstrap.servers", &cluster.bootstrap())
        .unwrap()
        .set("transactional.id", transactional_id)
        .unwrap()
        // Short enough that a test that leaves a transaction open cannot hold back
        // another's last stable offset for long.
        .set("transaction.timeout.ms", "20000")
        .unwrap();
    for (k, v) in extra {
        config = config.set(k, v).unwrap();
    }
    Producer::new(config.build().unwrap()).unwrap()
}

/// init_transactions, and the version the producer picked.
async fn init(p: &Producer, expected: TransactionVersion) {
    assert_eq!(p.transaction_version(), None, "nothing chosen before init");
    p.init_transactions().await.unwrap();
    assert_eq!(p.transaction_version(), Some(expected));
}

fn topic(cluster: &KafkaCluster, prefix: &str) -> String {
    let t = cluster.unique_topic(prefix);
    cluster
        .create_topic(&TopicSpec::new(&t).partitions(1))
        .unwrap();
    t
}

/// What the console consumer reads from `topic`, until 10 s pass without a record.
fn values(cluster: &KafkaCluster, topic: &str, read_committed: bool) -> Vec<String> {
    read(cluster, topic, read_committed, None)
}

/// What a read_committed consumer sees first, stopping at `expected.len()` records
/// instead of waiting out the idle time. Exact only where a record that should not be
/// visible would come before the last expected one in the log (an aborted transaction
/// between committed ones, or before the last): the callers' logs are laid out so.
fn first_committed(cluster: &KafkaCluster, topic: &str, expected: &[&str]) -> Vec<String> {
    read(cluster, topic, true, Some(expected.len()))
}

fn read(
    cluster: &KafkaCluster,
    topic: &str,
    read_committed: bool,
    max_records: Option<usize>,
) -> Vec<String> {
    cluster
        .consume(
            topic,
            &ConsumeOptions {
                max_records,
                // JVM start and group join count in it: on a loaded machine (three
                // brokers and their tools on two cores) 4 s proved too short.
                idle_timeout: Duration::from_secs(10),
                read_committed,
                ..ConsumeOptions::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect()
}

#[test]
fn version_2_committed_transactions_are_visible_once_across_two_topics_and_aborted_ones_never() {
    committed_and_aborted(TransactionVersion::V2);
}

#[test]
fn version_1_committed_transactions_are_visible_once_across_two_topics_and_aborted_ones_never() {
    committed_and_aborted(TransactionVersion::V1);
}

/// The seed's atomic write: a task and its audit entry, in two topics, together or not at
/// all. A committed transaction, then an aborted one (its records acknowledged before the
/// abort, so they are in the log), then another committed one. The coordinator's epoch
/// shows the protocol: unchanged with version 1, one up per EndTxn with version 2.
fn committed_and_aborted(version: TransactionVersion) {
    let cluster = cluster_for(version);
    let (tasks, audit) = (topic(cluster, "task-created"), topic(cluster, "audit-log"));
    let id = cluster.unique_topic("txn-atomic");
    runtime().block_on(async {
        let p = producer(cluster, &id);
        init(&p, version).await;
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
        assert_eq!(p.transaction_version(), Some(version));
        p.close(Duration::from_secs(10)).await.unwrap();
    });
    let bumps = match version {
        TransactionVersion::V1 => 0,
        TransactionVersion::V2 => 3,
    };
    assert_eq!(coordinator_epoch(cluster, &id), bumps, "{version:?}");
    // Aborted task-2 lies between the two: visible, it would be the second record.
    let (t, a) = (["task-1", "task-3"], ["audit-1", "audit-3"]);
    assert_eq!(first_committed(cluster, &tasks, &t), t);
    assert_eq!(first_committed(cluster, &audit, &a), a);
    // All three are in the log.
    let all = read(cluster, &tasks, false, Some(3));
    assert_eq!(all, ["task-1", "task-2", "task-3"]);
}

/// Records sent but not yet acknowledged when the transaction aborts fail with
/// TransactionAborted or are hidden by the marker; a record sent outside a transaction
/// is refused.
#[test]
fn version_2_an_abort_right_after_sending_hides_everything_and_records_outside_fail() {
    abort_right_after_sending(TransactionVersion::V2);
}

#[test]
fn version_1_an_abort_right_after_sending_hides_everything_and_records_outside_fail() {
    abort_right_after_sending(TransactionVersion::V1);
}

fn abort_right_after_sending(version: TransactionVersion) {
    let cluster = cluster_for(version);
    let t = topic(cluster, "txn-abort");
    let id = cluster.unique_topic("txn-abort-id");
    runtime().block_on(async {
        let p = producer(cluster, &id);
        init(&p, version).await;
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
    // The 100 aborted records come first in the log.
    assert_eq!(first_committed(cluster, &t, &["committed"]), ["committed"]);
}

/// Offsets sent to a committed transaction are the group's committed offsets; those of an
/// aborted one never are.
#[test]
fn version_2_offsets_sent_to_a_committed_transaction_are_committed_and_not_after_an_abort() {
    offsets_with_the_transaction(TransactionVersion::V2);
}

/// With version 1 the offsets go through AddOffsetsToTxn first; with version 2,
/// TxnOffsetCommit v5 registers them itself.
#[test]
fn version_1_offsets_sent_to_a_committed_transaction_are_committed_and_not_after_an_abort() {
    offsets_with_the_transaction(TransactionVersion::V1);
}

fn offsets_with_the_transaction(version: TransactionVersion) {
    let cluster = cluster_for(version);
    let (input, output) = (topic(cluster, "txn-in"), topic(cluster, "txn-out"));
    let group = cluster.unique_topic("txn-group");
    let id = cluster.unique_topic("txn-offsets");
    runtime().block_on(async {
        let p = producer(cluster, &id);
        init(&p, version).await;
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
        cluster.committed_offset(&group, &input).as_deref(),
        Some("42")
    );
    // The aborted record is the last in the log, so this reads until the idle time
    // passes (the other scenarios stop at the records they expect).
    assert_eq!(values(cluster, &output, true), ["processed-42"]);
}

/// Two live producers with one transactional.id: the newer one's init_transactions
/// fences the older, whose next transaction fails fatally with ProducerFenced; the newer
/// goes on.
#[test]
fn version_2_of_two_live_producers_with_one_transactional_id_the_older_is_fenced() {
    older_instance_fenced(TransactionVersion::V2);
}

#[test]
fn version_1_of_two_live_producers_with_one_transactional_id_the_older_is_fenced() {
    older_instance_fenced(TransactionVersion::V1);
}

fn older_instance_fenced(version: TransactionVersion) {
    let cluster = cluster_for(version);
    let t = topic(cluster, "txn-fence");
    let id = cluster.unique_topic("txn-fence-id");
    runtime().block_on(async {
        let old = producer(cluster, &id);
        init(&old, version).await;
        old.begin_transaction().await.unwrap();
        let f = old
            .produce(ProducerRecord::new(&t).value("old-committed"))
            .await
            .unwrap();
        old.commit_transaction().await.unwrap();
        f.await.unwrap();

        let new = producer(cluster, &id);
        init(&new, version).await;

        old.begin_transaction().await.unwrap();
        let fenced_record = old
            .produce(ProducerRecord::new(&t).value("old-fenced"))
            .await;
        let mut err: TransactionError = old.commit_transaction().await.unwrap_err();
        if version == TransactionVersion::V2 && err.is_abortable() {
            // Version 2 sends no AddPartitionsToTxn, so the Produce is the first to
            // meet the new epoch: INVALID_PRODUCER_EPOCH, abortable (KIP-588), as
            // Java's. The abort's EndTxn then meets the fence.
            assert!(err.to_string().contains("INVALID_PRODUCER_EPOCH"), "{err}");
            err = old.abort_transaction().await.unwrap_err();
        }
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
    // A fenced record that reached the log would lie between the two.
    let expected = ["old-committed", "new-committed"];
    assert_eq!(first_committed(cluster, &t, &expected), expected);
}

async fn send(p: &Producer, topic: &str, n: u32) -> courier::DeliveryFuture {
    p.produce(ProducerRecord::new(topic).value(format!("txn-{n}")))
        .await
        .unwrap()
}

/// An operator upgrades `transaction.version` from 1 to 2 while a producer lives (Kafka
/// allows it at runtime, as it allows the downgrade). Brokers report finalized features
/// in the ApiVersions of a new connection, so the producer sees the change once a
/// connection opens after it: here its idle connections close after 1 s
/// (`connections.max.idle.ms`; looked at about once per `request.timeout.ms`, 2 s) once
/// `kafka-features` has run, and the next transaction's Produce opens new ones. That transaction still runs version 1; its commit re-reads the
/// version, bumps the epoch (Java's clientSideEpochBumpRequired, KAFKA-18227) and the
/// following transactions run version 2, committed and aborted, read back whole.
#[test]
fn a_cluster_upgraded_to_transaction_version_2_is_followed_from_the_next_transaction() {
    use TransactionVersion::{V1, V2};
    let cluster = KafkaCluster::start(1).unwrap();
    set_transaction_version(&cluster, "downgrade", 1);
    let t = topic(&cluster, "txn-upgrade");
    let id = cluster.unique_topic("txn-upgrade-id");
    let rt = runtime();
    let p = rt.block_on(async {
        let idle = [
            ("connections.max.idle.ms", "1000"),
            ("request.timeout.ms", "2000"),
        ];
        producer_with(&cluster, &id, &idle)
    });
    rt.block_on(async {
        init(&p, V1).await;
        p.begin_transaction().await.unwrap();
        let f = send(&p, &t, 1).await;
        p.commit_transaction().await.unwrap();
        f.await.unwrap();
        assert_eq!(p.transaction_version(), Some(V1));
    });
    set_transaction_version(&cluster, "upgrade", 2);
    rt.block_on(async {
        // Until every connection opened before the upgrade has closed for being idle
        // (the watchdog looks about once per request.timeout.ms, 2 s here).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let m = p.metrics();
            if m.connections_closed_idle >= m.connections_opened {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "idle connections stay open"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        p.begin_transaction().await.unwrap();
        let f = send(&p, &t, 2).await;
        f.await.unwrap();
        assert_eq!(
            p.transaction_version(),
            Some(V1),
            "the transaction under way keeps it"
        );
        p.commit_transaction().await.unwrap();
        assert_eq!(
            p.transaction_version(),
            Some(V2),
            "from the next transaction"
        );
        for (n, commit) in [(3, true), (4, false), (5, true)] {
            p.begin_transaction().await.unwrap();
            let f = send(&p, &t, n).await;
            if commit {
                p.commit_transaction().await.unwrap();
                f.await.unwrap();
            } else {
                f.await.unwrap();
                p.abort_transaction().await.unwrap();
            }
        }
        assert_eq!(p.transaction_version(), Some(V2));
        p.close(Duration::from_secs(10)).await.unwrap();
    });
    // 0 through version 1, 1 from the bump, then one per version 2 EndTxn.
    assert_eq!(coordinator_epoch(&cluster, &id), 4);
    // Aborted txn-4 lies before txn-5.
    let expected = ["txn-1", "txn-2", "txn-3", "txn-5"];
    assert_eq!(first_committed(&cluster, &t, &expected), expected);
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
        assert_eq!(
            p.transaction_version(),
            None,
            "no version without a producer id"
        );
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
        assert_eq!(plain.transaction_version(), None);
        let _ = plain.close(Duration::from_millis(100)).await;
    });
}
