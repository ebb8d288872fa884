//! The transaction coordinator's requests (`courier::net::txn`) against a real Kafka
//! broker, at both transaction versions' request versions, judged by Kafka's console
//! consumer at both isolation levels and by `kafka-consumer-groups` (issue 15): records
//! and offsets of a committed transaction are visible together, across two topics; those
//! of an aborted one are in the log but never visible to a read_committed reader, and
//! its offsets are not committed.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::net::txn::{self, GroupMember};
use courier::net::{init_producer_id, BrokerConnection, ConnectOptions, ProduceRequestParts};
use courier_core::producer::txn::TransactionVersion;
use courier_core::wire::{KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION};
use courier_core::{Compression, Compressor, ProducerFields, RecordBatchBuilder};
use courier_testkit::{ConsumeOptions, KafkaCluster, TopicSpec};

/// Error codes that mean "ask again shortly": COORDINATOR_LOAD_IN_PROGRESS,
/// COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR (on one broker: it is still electing),
/// CONCURRENT_TRANSACTIONS (the previous transaction's markers are being written).
const RETRIABLE: [i16; 4] = [14, 15, 16, 51];

/// Calls `f` until it answers an error code outside [`RETRIABLE`] (up to 60 s), and
/// returns that answer.
async fn until_settled<T, Fut: Future<Output = (i16, T)>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> (i16, T) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, v) = f().await;
        if !RETRIABLE.contains(&code) || Instant::now() > deadline {
            return (code, v);
        }
        eprintln!("{what}: error {code}, asking again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One transactional batch of `values`, as a transactional producer writes it.
fn txn_batch(pid: i64, epoch: i16, base_sequence: i32, values: &[&str]) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    b.set_transactional(true);
    // Now, not a fixed past instant: a record older than retention.ms (7 days) is
    // deleted by the broker's first retention check, 30 s after it starts, which is
    // when these tests read the log back.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for v in values {
        b.append(now_ms, None, Some(v.as_bytes()), &[]).unwrap();
    }
    b.seal(
        ProducerFields {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence,
        },
        Compression::None,
        &mut Compressor::new(),
    )
    .unwrap()
    .into_bytes()
}

fn values(cluster: &KafkaCluster, topic: &str, read_committed: bool) -> Vec<String> {
    cluster
        .consume(
            topic,
            &ConsumeOptions {
                idle_timeout: Duration::from_secs(8),
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
fn version_1_a_committed_transaction_shows_records_and_offsets_and_an_aborted_one_nothing() {
    commit_then_abort(TransactionVersion::V1);
}

/// Kafka 4.3 finalizes `transaction.version=2` on a new cluster: no AddPartitionsToTxn
/// or AddOffsetsToTxn (Produce v12 and TxnOffsetCommit v5 register them), and EndTxn v5
/// hands out the epoch of the next transaction (KIP-890).
#[test]
fn version_2_a_committed_transaction_shows_records_and_offsets_and_an_aborted_one_nothing() {
    commit_then_abort(TransactionVersion::V2);
}

/// A transaction that writes a record to each of two topics and commits an offset,
/// committed; then one that writes a record and an offset, aborted.
fn commit_then_abort(version: TransactionVersion) {
    let cluster = KafkaCluster::shared(1);
    let (a, b) = (cluster.unique_topic("txn-a"), cluster.unique_topic("txn-b"));
    for t in [&a, &b] {
        cluster
            .create_topic(&TopicSpec::new(t).partitions(1))
            .unwrap();
    }
    let txn_id = cluster.unique_topic("txn-id");
    let group = cluster.unique_topic("txn-group");
    let bootstrap = cluster.bootstrap().split(',').next().unwrap().to_owned();
    let v = version;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = ConnectOptions {
            client_id: "courier-txn-test".into(),
            ..ConnectOptions::default()
        };
        let boot = BrokerConnection::connect(&bootstrap, &opts).await.unwrap();
        let (code, coord) = until_settled("FindCoordinator(txn)", || async {
            let c = txn::find_coordinator(&boot, KEY_TYPE_TRANSACTION, &txn_id)
                .await
                .unwrap();
            (c.error_code, c)
        })
        .await;
        assert_eq!(code, 0, "{coord:?}");
        let conn = BrokerConnection::connect(&format!("{}:{}", coord.host, coord.port), &opts)
            .await
            .unwrap();
        let (code, grant) = until_settled("InitProducerId", || async {
            let g = init_producer_id(&conn, Some(&txn_id), Duration::from_secs(60))
                .await
                .unwrap();
            (g.error_code, g)
        })
        .await;
        assert_eq!(code, 0);
        let (mut pid, mut epoch) = (grant.producer_id, grant.producer_epoch);
        assert!(pid >= 0 && epoch >= 0);

        let (code, gc) = until_settled("FindCoordinator(group)", || async {
            let c = txn::find_coordinator(&boot, KEY_TYPE_GROUP, &group)
                .await
                .unwrap();
            (c.error_code, c)
        })
        .await;
        assert_eq!(code, 0, "{gc:?}");
        let group_conn = BrokerConnection::connect(&format!("{}:{}", gc.host, gc.port), &opts)
            .await
            .unwrap();
        let member = GroupMember {
            group_id: group.clone(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        };

        // One transaction: a record in each topic and an offset, then commit; the next:
        // a record and an offset, then abort.
        for (commit, offset) in [(true, 42), (false, 99)] {
            // Version 1 keeps the epoch, so the partition's sequence goes on; version 2
            // bumps it at every EndTxn, and sequences start again at 0.
            let seq = if commit || v == TransactionVersion::V2 {
                0
            } else {
                1
            };
            let parts: Vec<(&str, Vec<i32>)> = if commit {
                vec![(a.as_str(), vec![0]), (b.as_str(), vec![0])]
            } else {
                vec![(a.as_str(), vec![0])]
            };
            let (code, resp) = until_settled("AddPartitionsToTxn", || async {
                if v == TransactionVersion::V2 {
                    return (0, None);
                }
                let r = txn::add_partitions_to_txn(&conn, v, &txn_id, pid, epoch, &parts)
                    .await
                    .unwrap();
                let code = r
                    .results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    .find(|&c| c != 0)
                    .unwrap_or(0);
                (code, Some(r))
            })
            .await;
            assert_eq!(code, 0, "{resp:?}");
            let word = if commit { "committed" } else { "aborted" };
            let mut topics = vec![(
                a.clone(),
                vec![(0, Some(txn_batch(pid, epoch, seq, &[&format!("{word}-a")])))],
            )];
            if commit {
                topics.push((
                    b.clone(),
                    vec![(0, Some(txn_batch(pid, epoch, 0, &["committed-b"])))],
                ));
            }
            // Produce goes at the connection's version (12) for both: the partitions of a
            // version 1 transaction are registered already, so the broker accepts it.
            // The producer itself will cap version 1 at 11 (`request_versions`), as
            // Java does, so that a broker never takes it for version 2.
            // With version 2 the leader registers the partition with the coordinator
            // itself, and answers CONCURRENT_TRANSACTIONS (nothing written) while the
            // previous transaction is still completing: the same batch goes again.
            let (code, produced) = until_settled("Produce", || async {
                let r = boot
                    .send_produce(ProduceRequestParts {
                        transactional_id: Some(txn_id.clone()),
                        acks: -1,
                        timeout_ms: 10_000,
                        topics: topics.clone(),
                    })
                    .await
                    .unwrap()
                    .expect("acks=-1 has a response");
                let code = r
                    .responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter())
                    .map(|p| p.error_code)
                    .find(|&c| c != 0)
                    .unwrap_or(0);
                (code, r)
            })
            .await;
            assert_eq!(code, 0, "{produced:?}");
            let (code, _) = until_settled("AddOffsetsToTxn", || async {
                if v == TransactionVersion::V2 {
                    return (0, ());
                }
                let c = txn::add_offsets_to_txn(&conn, v, &txn_id, pid, epoch, &group)
                    .await
                    .unwrap();
                (c, ())
            })
            .await;
            assert_eq!(code, 0);
            let offsets = [(a.as_str(), vec![(0, offset, -1)])];
            let (code, resp) = until_settled("TxnOffsetCommit", || async {
                let r =
                    txn::txn_offset_commit(&group_conn, v, &txn_id, pid, epoch, &member, &offsets)
                        .await
                        .unwrap();
                let code = r
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|p| p.error_code)
                    .find(|&c| c != 0)
                    .unwrap_or(0);
                (code, r)
            })
            .await;
            assert_eq!(code, 0, "{resp:?}");
            let (code, resp) = until_settled("EndTxn", || async {
                let r = txn::end_txn(&conn, v, &txn_id, pid, epoch, commit)
                    .await
                    .unwrap();
                (r.error_code, r)
            })
            .await;
            assert_eq!(code, 0, "{resp:?}");
            if v == TransactionVersion::V2 {
                // KIP-890: the next transaction runs with the epoch EndTxn v5 returns.
                assert_eq!(resp.producer_id, pid);
                assert_eq!(resp.producer_epoch, epoch + 1, "{resp:?}");
                (pid, epoch) = (resp.producer_id, resp.producer_epoch);
            }
        }
    });

    // The aborted record is in the log (a read_uncommitted reader sees it) but a
    // read_committed reader never does; the committed ones are visible in both topics.
    assert_eq!(values(cluster, &a, true), ["committed-a"]);
    assert_eq!(values(cluster, &b, true), ["committed-b"]);
    assert_eq!(values(cluster, &a, false), ["committed-a", "aborted-a"]);
    // The committed transaction's offset stands; the aborted one's (99) never did.
    let described = cluster
        .run_tool(
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            &[
                "--bootstrap-server",
                &cluster.bootstrap(),
                "--describe",
                "--group",
                &group,
            ],
        )
        .unwrap();
    let row: Vec<&str> = described
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(a.as_str()))
        .unwrap_or_else(|| panic!("no row for {a} in\n{described}"))
        .split_whitespace()
        .collect();
    // GROUP TOPIC PARTITION CURRENT-OFFSET ...
    assert_eq!(&row[2..4], ["0", "42"], "{described}");
}
