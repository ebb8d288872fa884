//! The connection layer against real Kafka 4.3 brokers from the test kit.
//!
//! Tests that pause or kill a broker start their own cluster; the others share one.
//! The kit is synchronous: clusters are set up and read back outside the async code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::net::{
    fetch_metadata, init_producer_id, BrokerConnection, ConnectOptions, ConnectionPool, NetError,
    ProduceRequestParts, ReconnectBackoff,
};
use courier_core::wire::ProduceResponse;
use courier_core::{encode_batch, Compression, ProducerFields, RecordRef};
use courier_testkit::{ConsumeOptions, KafkaCluster, TopicSpec};
use kafka_protocol::messages::ApiKey;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        client_id: "courier-net-test".into(),
        ..ConnectOptions::default()
    }
}

fn first_bootstrap(cluster: &KafkaCluster) -> String {
    cluster.bootstrap().split(',').next().unwrap().to_owned()
}

/// A sealed, uncompressed batch of `values` (null keys), built by courier-core.
fn batch(values: &[&str]) -> Bytes {
    // Now, not a fixed date: the broker's retention check (7 days) deletes a segment
    // whose newest record is older, and a read-back after it would find nothing.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<RecordRef<'_>> = values
        .iter()
        .map(|v| RecordRef {
            timestamp_ms: now_ms,
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
        })
        .collect();
    encode_batch(&records, ProducerFields::NONE, Compression::None)
        .unwrap()
        .into_bytes()
}

fn produce_to(topic: &str, partition: i32, values: &[&str], acks: i16) -> ProduceRequestParts {
    ProduceRequestParts {
        transactional_id: None,
        acks,
        timeout_ms: 10_000,
        topics: vec![(topic.to_owned(), vec![(partition, Some(batch(values)))])],
    }
}

/// (error code, base offset) of the only partition in a response.
fn only_partition(resp: &ProduceResponse) -> (i16, i64) {
    assert_eq!(resp.responses.len(), 1);
    let p = &resp.responses[0].partition_responses;
    assert_eq!(p.len(), 1);
    (p[0].error_code, p[0].base_offset)
}

/// Every value in `topic`, read by Kafka's console consumer (the independent reader).
fn consumed_values(cluster: &KafkaCluster, topic: &str) -> Vec<String> {
    let total: i64 = cluster
        .admin()
        .offsets(topic)
        .unwrap()
        .iter()
        .map(|(_, start, end)| end - start)
        .sum();
    // `consume_all` with a longer idle timeout: on a loaded two-core machine the console
    // consumer's first group join can take more than the default 10 s.
    let opts = ConsumeOptions {
        max_records: Some(total as usize),
        idle_timeout: Duration::from_secs(60),
        ..ConsumeOptions::default()
    };
    cluster
        .consume(topic, &opts)
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect()
}

#[test]
fn api_versions_with_kafka_negotiates_flexible_produce() {
    let cluster = KafkaCluster::shared(1);
    let addr = first_bootstrap(cluster);
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        let produce = conn.version(ApiKey::Produce).unwrap();
        assert!(produce >= 9, "Produce v{produce}");
        assert_eq!(
            produce, 12,
            "Kafka 4.3 offers v13; by-name topics cap us at 12"
        );
        assert_eq!(conn.version(ApiKey::ApiVersions).unwrap(), 3);
        assert!(conn.version(ApiKey::Metadata).unwrap() >= 12);
        assert!(conn.version(ApiKey::InitProducerId).unwrap() >= 3);
        // The broker's own range is kept too.
        let (_, broker_max) = conn.versions().broker_range(ApiKey::Produce).unwrap();
        assert!(
            broker_max >= 12,
            "broker offers Produce up to v{broker_max}"
        );
    });
}

#[test]
fn metadata_for_a_created_topic_shows_its_partitions_and_leader() {
    let cluster = KafkaCluster::shared(1);
    let topic = cluster.unique_topic("net-md");
    cluster
        .create_topic(&TopicSpec::new(&topic).partitions(3))
        .unwrap();
    let missing = cluster.unique_topic("net-md-missing");
    let addr = first_bootstrap(cluster);
    let broker_ids = cluster.broker_ids().unwrap();
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        let md = fetch_metadata(&conn, &[&topic, &missing]).await.unwrap();
        assert_eq!(
            md.brokers.iter().map(|b| b.node_id).collect::<Vec<_>>(),
            broker_ids
        );
        assert!(md.cluster_id.is_some());
        let t = md.topic(&topic).unwrap();
        assert_eq!(t.error_code, 0);
        assert_eq!(
            t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        for p in &t.partitions {
            assert_eq!(p.error_code, 0);
            assert!(md.broker(p.leader_id).is_some(), "{p:?}");
            assert!(p.leader_epoch >= 0, "{p:?}");
            assert_eq!(p.replicas, vec![p.leader_id]);
            assert_eq!(p.isr, vec![p.leader_id]);
        }
        // Not created (auto-creation not asked for): UNKNOWN_TOPIC_OR_PARTITION.
        assert_eq!(md.topic(&missing).unwrap().error_code, 3);
        // The advertised address is connectable.
        let leader = md.broker(t.partitions[0].leader_id).unwrap();
        let again = BrokerConnection::connect(&leader.address(), &opts())
            .await
            .unwrap();
        assert!(!again.is_closed());
    });
}

#[test]
fn init_producer_id_grants_a_producer_id() {
    let cluster = KafkaCluster::shared(1);
    let addr = first_bootstrap(cluster);
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        // A young cluster answers COORDINATOR_LOAD_IN_PROGRESS (14) or NOT_COORDINATOR
        // (15) until its producer-id manager is ready; the code is surfaced as is, and
        // retrying it is the caller's policy.
        let deadline = Instant::now() + Duration::from_secs(30);
        let grant = || async {
            loop {
                let g = init_producer_id(&conn, None, Duration::from_secs(60))
                    .await
                    .unwrap();
                if g.error_code == 0 || Instant::now() > deadline {
                    return g;
                }
                assert!(matches!(g.error_code, 14 | 15), "{g:?}");
                assert_eq!((g.producer_id, g.producer_epoch), (-1, -1), "{g:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let a = grant().await;
        assert_eq!(a.error_code, 0, "{a:?}");
        assert!(a.producer_id >= 0, "{a:?}");
        assert_eq!(a.producer_epoch, 0, "{a:?}");
        let b = grant().await;
        assert_ne!(a.producer_id, b.producer_id, "each call gets a fresh id");
    });
}

#[test]
fn produce_acks_all_returns_base_offsets_and_the_console_consumer_reads_the_records() {
    let cluster = KafkaCluster::shared(1);
    let topic = cluster.unique_topic("net-produce");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let addr = first_bootstrap(cluster);
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        let first = conn
            .send_produce(produce_to(&topic, 0, &["alpha", "beta"], -1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(only_partition(&first), (0, 0));
        let second = conn
            .send_produce(produce_to(&topic, 0, &["gamma"], -1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(only_partition(&second), (0, 2));
    });
    assert_eq!(
        consumed_values(cluster, &topic),
        vec!["alpha", "beta", "gamma"]
    );
}

#[test]
fn produce_to_a_missing_partition_surfaces_the_brokers_error_code() {
    let cluster = KafkaCluster::shared(1);
    let topic = cluster.unique_topic("net-noparts");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let addr = first_bootstrap(cluster);
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        let resp = conn
            .send_produce(produce_to(&topic, 5, &["x"], -1))
            .await
            .unwrap()
            .unwrap();
        // UNKNOWN_TOPIC_OR_PARTITION: policy is the producer core's, the code arrives intact.
        assert_eq!(only_partition(&resp).0, 3);
        assert!(!conn.is_closed());
    });
}

#[test]
fn five_pipelined_produces_on_one_connection_all_succeed_in_order() {
    let cluster = KafkaCluster::shared(1);
    let topic = cluster.unique_topic("net-pipeline");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let addr = first_bootstrap(cluster);
    let values = ["r0", "r1", "r2", "r3", "r4"];
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        let parts: Vec<ProduceRequestParts> = values
            .iter()
            .map(|v| produce_to(&topic, 0, &[v], -1))
            .collect();
        let permits: Vec<_> = (0..5).map(|_| conn.try_reserve().unwrap()).collect();
        assert_eq!(conn.in_flight(), 5);
        assert!(!conn.has_capacity(), "max_in_flight is 5");
        // Queued in this order at once; the futures are spawned and awaited last to first.
        let handles: Vec<_> = permits
            .into_iter()
            .zip(parts)
            .map(|(permit, p)| tokio::spawn(conn.start_produce(permit, p)))
            .collect();
        let mut offsets = Vec::new();
        for h in handles.into_iter().rev() {
            offsets.push(only_partition(&h.await.unwrap().unwrap().unwrap()));
        }
        offsets.reverse();
        assert_eq!(offsets, vec![(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]);
        assert_eq!(conn.in_flight(), 0);
    });
    assert_eq!(consumed_values(cluster, &topic), values);
}

#[test]
fn acks_zero_produce_is_persisted_without_a_response() {
    let cluster = KafkaCluster::shared(1);
    let topic = cluster.unique_topic("net-acks0");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let addr = first_bootstrap(cluster);
    runtime().block_on(async {
        let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        let r = conn
            .send_produce(produce_to(&topic, 0, &["no-ack"], 0))
            .await
            .unwrap();
        assert!(r.is_none());
        // A request after it still gets its own response (no waiter was registered).
        let acked = conn
            .send_produce(produce_to(&topic, 0, &["acked"], -1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(only_partition(&acked), (0, 1));
    });
    assert_eq!(consumed_values(cluster, &topic), vec!["no-ack", "acked"]);
}

#[test]
fn paused_broker_times_out_requests_as_possibly_written_and_a_fresh_connection_works_after_resume()
{
    let cluster = KafkaCluster::start(1).unwrap();
    let topic = cluster.unique_topic("net-pause");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let broker = cluster.broker_ids().unwrap()[0];
    let addr = first_bootstrap(&cluster);
    let rt = runtime();
    let conn = rt.block_on(async {
        BrokerConnection::connect(
            &addr,
            &ConnectOptions {
                request_timeout: Duration::from_millis(1500),
                ..opts()
            },
        )
        .await
        .unwrap()
    });
    let conn = Arc::new(conn);

    cluster.pause(broker).unwrap();
    let errors = rt.block_on(async {
        let start = Instant::now();
        let parts: Vec<ProduceRequestParts> = (0..3)
            .map(|i| produce_to(&topic, 0, &[&format!("paused-{i}")], -1))
            .collect();
        let (a, b, c) = tokio::join!(
            conn.send_produce(parts[0].clone()),
            conn.send_produce(parts[1].clone()),
            conn.send_produce(parts[2].clone())
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        vec![a.unwrap_err(), b.unwrap_err(), c.unwrap_err()]
    });
    // Connecting to a frozen broker: the kernel accepts, ApiVersions never answers.
    let frozen = rt.block_on(BrokerConnection::connect(
        &addr,
        &ConnectOptions {
            connect_timeout: Duration::from_millis(500),
            ..opts()
        },
    ));
    cluster.resume(broker).unwrap();

    assert!(
        errors
            .iter()
            .any(|e| matches!(e, NetError::Timeout { written: true, .. })),
        "{errors:?}"
    );
    for e in &errors {
        assert!(e.maybe_written(), "{e}");
    }
    assert!(conn.is_closed());
    let frozen = frozen.unwrap_err();
    assert!(
        matches!(frozen, NetError::ConnectTimeout { .. }),
        "{frozen}"
    );

    rt.block_on(async {
        let fresh = BrokerConnection::connect(&addr, &opts()).await.unwrap();
        // A broker frozen past its KRaft session may be taken for dead and lose the
        // partition's leadership, then answer NOT_LEADER_OR_FOLLOWER (6) or
        // LEADER_NOT_AVAILABLE (5) for a moment while it is given back: ask again.
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            let resp = fresh
                .send_produce(produce_to(&topic, 0, &["after-resume"], -1))
                .await
                .unwrap()
                .unwrap();
            let code = only_partition(&resp).0;
            if !matches!(code, 5 | 6) || Instant::now() > deadline {
                break code;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(code, 0);
    });
    // "Possibly written" is real: the broker reads the timed-out requests from its socket
    // buffer when it wakes up and may append them, even after the fresh connection's
    // record. Each appears at most once.
    let values = consumed_values(&cluster, &topic);
    assert!(values.iter().any(|v| v == "after-resume"), "{values:?}");
    let mut sorted = values.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), values.len(), "{values:?}");
    assert!(
        values
            .iter()
            .all(|v| v == "after-resume" || v.starts_with("paused-")),
        "{values:?}"
    );
}

#[test]
fn killed_broker_fails_requests_and_the_pool_reconnects_after_restart() {
    let cluster = KafkaCluster::start(1).unwrap();
    let topic = cluster.unique_topic("net-kill");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let broker = cluster.broker_ids().unwrap()[0];
    let rt = runtime();
    let pool = ConnectionPool::new(&cluster.bootstrap(), opts(), ReconnectBackoff::default());
    let conn = rt.block_on(async {
        let boot = pool.get_bootstrap().await.unwrap();
        let md = fetch_metadata(&boot, &[&topic]).await.unwrap();
        pool.update_brokers(&md);
        pool.get(broker).await.unwrap()
    });

    cluster.kill(broker).unwrap();
    rt.block_on(async {
        // The kernel closes the dead broker's sockets: the connection sees end of stream.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !conn.is_closed() {
            assert!(
                Instant::now() < deadline,
                "connection not closed after kill -9"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e = conn
            .send_produce(produce_to(&topic, 0, &["lost"], -1))
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::NotSent { .. }), "{e}");
        assert!(!e.maybe_written());
        let e = pool.get(broker).await.unwrap_err();
        assert!(matches!(e, NetError::Connect { .. }), "{e}");
        assert!(e.to_string().contains("is the broker running"), "{e}");
    });

    cluster.start_broker(broker).unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        let fresh = loop {
            match pool.get(broker).await {
                Ok(c) => break c,
                Err(e) => assert!(Instant::now() < deadline, "no reconnect: {e}"),
            }
        };
        assert!(!Arc::ptr_eq(&fresh, &conn));
        // Right after a restart the partition may briefly have no leader.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resp = fresh
                .send_produce(produce_to(&topic, 0, &["after-restart"], -1))
                .await
                .unwrap()
                .unwrap();
            match only_partition(&resp) {
                (0, _) => break,
                (code, _) => assert!(Instant::now() < deadline, "error code {code}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(consumed_values(&cluster, &topic), vec!["after-restart"]);
}
