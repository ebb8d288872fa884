//! courier's producer against real Kafka brokers started by the test kit, judged by
//! Kafka's own console consumer and `kafka-dump-log`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use courier::{Persistence, Producer, ProducerConfig, ProducerError, ProducerRecord};
use courier_testkit::{KafkaCluster, TopicSpec};

fn config(cluster: &KafkaCluster, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut b = ProducerConfig::builder()
        .set("bootstrap.servers", &cluster.bootstrap())
        .unwrap();
    for (k, v) in extra {
        b = b.set(k, v).unwrap();
    }
    b.build().unwrap()
}

fn create(cluster: &KafkaCluster, prefix: &str, partitions: i32) -> String {
    let topic = cluster.unique_topic(prefix);
    cluster
        .create_topic(&TopicSpec::new(&topic).partitions(partitions))
        .unwrap();
    topic
}

/// Sends `n` records (every third unkeyed) and checks, with the independent reader,
/// that each acknowledged record is in the log exactly once, in send order per
/// partition, under one producer id with contiguous sequences.
async fn exactly_once_in_order(cluster: &'static KafkaCluster, n: usize, partitions: i32) {
    let topic = create(cluster, "e2e", partitions);
    let producer = Producer::new(config(
        cluster,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("batch.size", "32768"),
        ],
    ))
    .unwrap();
    let mut futures = Vec::with_capacity(n);
    for i in 0..n {
        let mut rec =
            ProducerRecord::new(&topic).value(format!("{{\"seq\":{i},\"amount\":{}.99}}", i % 977));
        if !i.is_multiple_of(3) {
            rec = rec.key(format!("customer-{}", i % 101));
        }
        futures.push(producer.produce(rec).await.unwrap());
    }
    let mut acked: HashMap<usize, (i32, i64)> = HashMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        let md = f.await.unwrap_or_else(|e| panic!("record {i} failed: {e}"));
        assert!(md.offset >= 0);
        acked.insert(i, (md.partition, md.offset));
    }
    // The burst keeps the driver busy, so most full batches are compressed on the
    // compression thread: the checks below cover that path too (about 130 of them here).
    let compressed_elsewhere = producer.metrics().batches_compressed_elsewhere;
    assert!(
        compressed_elsewhere > 0,
        "no batch went through the compression thread"
    );
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close");

    let records =
        tokio::task::spawn_blocking(move || cluster.consume_all(&topic).map(|r| (r, topic)))
            .await
            .unwrap()
            .unwrap();
    let (records, topic) = records;
    assert_eq!(
        records.len(),
        n,
        "the log holds exactly what was acknowledged"
    );
    let mut seen: HashMap<usize, (i32, i64)> = HashMap::new();
    for r in &records {
        let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
        let seq: usize = v["{\"seq\":".len()..v.find(',').unwrap()].parse().unwrap();
        assert!(
            seen.insert(seq, (r.partition, r.offset)).is_none(),
            "record {seq} is in the log twice"
        );
        if !seq.is_multiple_of(3) {
            assert_eq!(
                r.key.as_deref(),
                Some(format!("customer-{}", seq % 101).as_bytes())
            );
        } else {
            assert_eq!(r.key, None);
        }
    }
    assert_eq!(seen, acked, "the reader agrees with every delivery report");
    // Per partition, offsets increase with send order.
    let mut by_partition: BTreeMap<i32, Vec<(usize, i64)>> = BTreeMap::new();
    for (seq, (p, off)) in &seen {
        by_partition.entry(*p).or_default().push((*seq, *off));
    }
    for (p, mut v) in by_partition {
        v.sort();
        assert!(
            v.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p} reordered"
        );
    }
    // Keyed records went where Java's partitioner sends them.
    for r in &records {
        if let Some(k) = &r.key {
            assert_eq!(
                r.partition,
                courier_core::partitioner::partition_for_key(k, partitions)
            );
        }
    }

    // kafka-dump-log: our producer id, one epoch, contiguous sequences per partition.
    let leader_of: Vec<i32> = (0..partitions)
        .map(|p| cluster.partition(&topic, p).unwrap().leader)
        .collect();
    let mut pids = std::collections::BTreeSet::new();
    for p in 0..partitions {
        let batches = cluster
            .dump_partition(leader_of[p as usize], &topic, p)
            .unwrap();
        let mut next = 0;
        for b in &batches {
            assert!(b.is_valid);
            assert_eq!(b.codec, "lz4", "{b:?}");
            assert_eq!(
                b.base_sequence, next,
                "partition {p}: sequence gap at {b:?}"
            );
            next = b.last_sequence + 1;
            pids.insert((b.producer_id, b.producer_epoch));
        }
    }
    assert_eq!(pids.len(), 1, "one producer id and epoch: {pids:?}");
    assert!(pids.iter().all(|(pid, _)| *pid >= 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broker_100k_records_exactly_once_in_send_order() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    exactly_once_in_order(cluster, 100_000, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_100k_records_exactly_once_in_send_order() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(3))
        .await
        .unwrap();
    exactly_once_in_order(cluster, 100_000, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acks_level_and_codec_round_trips_headers_and_nulls() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    for (acks, idem) in [("0", "false"), ("1", "false"), ("all", "true")] {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let topic = create(cluster, &format!("acks{acks}-{codec}"), 1);
            let producer = Producer::new(config(
                cluster,
                &[
                    ("acks", acks),
                    ("enable.idempotence", idem),
                    ("compression.type", codec),
                ],
            ))
            .unwrap();
            let recs = vec![
                ProducerRecord::new(&topic)
                    .key("k1")
                    .value("plain value")
                    .header("trace", "abc"),
                ProducerRecord {
                    headers: vec![("nullable".into(), None)],
                    ..ProducerRecord::new(&topic).value("null key")
                },
                ProducerRecord::new(&topic).key("tombstone"),
                ProducerRecord::new(&topic).key("empty").value(""),
            ];
            for r in recs {
                let md = producer.send(r).await.unwrap();
                if acks == "0" {
                    assert_eq!(md.offset, -1, "acks=0 has no offsets");
                } else {
                    assert!(md.offset >= 0);
                }
            }
            producer
                .close(Duration::from_secs(10))
                .await
                .expect("close");
            let t = topic.clone();
            let read = tokio::task::spawn_blocking(move || cluster.consume_all(&t))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(read.len(), 4, "acks={acks} codec={codec}");
            assert_eq!(read[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(
                read[0].headers,
                vec![("trace".to_string(), Some(b"abc".to_vec()))]
            );
            assert_eq!(read[1].key, None);
            assert_eq!(read[1].headers, vec![("nullable".to_string(), None)]);
            assert_eq!(read[2].value, None, "tombstone");
            assert_eq!(read[3].value.as_deref(), Some(&b""[..]));
        }
    }
}

/// Every codec, and gzip and zstd at several levels, through both level keys: Kafka's
/// console consumer reads every record back (CRC checks on), `kafka-dump-log` shows the
/// codec on every batch, and a level's effect shows in the bytes the broker stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_and_level_is_stored_as_configured_and_read_back_by_kafka() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    // (codec kafka-dump-log prints, settings); partition i gets case i, from its own
    // producer, so one reader and one topic judge them all.
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("none", &[("compression.type", "none")]),
        ("gzip", &[("compression.type", "gzip")]),
        (
            "gzip",
            &[("compression.type", "gzip"), ("compression.level", "1")],
        ),
        (
            "gzip",
            &[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "9"),
            ],
        ),
        ("snappy", &[("compression.type", "snappy")]),
        ("lz4", &[("compression.type", "lz4")]),
        ("zstd", &[("compression.type", "zstd")]),
        (
            "zstd",
            &[("compression.type", "zstd"), ("compression.level", "1")],
        ),
        (
            "zstd",
            &[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "19"),
            ],
        ),
        (
            "zstd",
            &[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "-5"),
            ],
        ),
    ];
    const N: usize = 3_000;
    let topic = create(cluster, "codecs", cases.len() as i32);
    for (p, (_, settings)) in cases.iter().enumerate() {
        let mut all = vec![("linger.ms", "20"), ("batch.size", "65536")];
        all.extend_from_slice(settings);
        let producer = Producer::new(config(cluster, &all)).unwrap();
        let mut futures = Vec::with_capacity(N);
        for i in 0..N {
            let rec = ProducerRecord::new(&topic)
                .partition(p as i32)
                .key(format!("order-{}", i % 97))
                .value(order_json(i));
            futures.push(producer.produce(rec).await.unwrap());
        }
        for f in futures {
            f.await.unwrap_or_else(|e| panic!("{settings:?}: {e}"));
        }
        producer
            .close(Duration::from_secs(10))
            .await
            .expect("close");
    }

    let t = topic.clone();
    let read = tokio::task::spawn_blocking(move || cluster.consume_all(&t))
        .await
        .unwrap()
        .unwrap();
    let mut by_partition: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    for r in read {
        by_partition
            .entry(r.partition)
            .or_default()
            .push(r.value.expect("value"));
    }
    let leader = cluster.partition(&topic, 0).unwrap().leader;
    let mut stored = Vec::new();
    for (p, (codec, settings)) in cases.iter().enumerate() {
        let values = by_partition.remove(&(p as i32)).unwrap_or_default();
        assert_eq!(values.len(), N, "{settings:?}");
        for (i, v) in values.iter().enumerate() {
            assert_eq!(v, order_json(i).as_bytes(), "{settings:?} record {i}");
        }
        let batches = cluster.dump_partition(leader, &topic, p as i32).unwrap();
        assert!(!batches.is_empty());
        for b in &batches {
            assert!(b.is_valid, "{settings:?}: {b:?}");
            assert_eq!(b.codec, *codec, "{settings:?}: {b:?}");
        }
        stored.push(batches.iter().map(|b| b.size).sum::<i64>());
    }
    let size =
        |settings: &[(&str, &str)]| stored[cases.iter().position(|(_, s)| *s == settings).unwrap()];
    let zstd = size(&[("compression.type", "zstd")]);
    let zstd19 = size(&[
        ("compression.type", "zstd"),
        ("compression.zstd.level", "19"),
    ]);
    let zstd_fast = size(&[
        ("compression.type", "zstd"),
        ("compression.zstd.level", "-5"),
    ]);
    let lz4 = size(&[("compression.type", "lz4")]);
    let none = size(&[("compression.type", "none")]);
    let gzip1 = size(&[("compression.type", "gzip"), ("compression.level", "1")]);
    let gzip9 = size(&[
        ("compression.type", "gzip"),
        ("compression.gzip.level", "9"),
    ]);
    let report = format!("stored bytes per case: {stored:?}");
    assert!(zstd < lz4 && lz4 < none, "{report}");
    assert!(zstd19 < zstd && zstd < zstd_fast, "{report}");
    assert!(gzip9 < gzip1, "{report}");
}

/// A JSON order of about 200 bytes whose fields vary per record, so codecs and levels
/// compress it differently.
fn order_json(i: usize) -> String {
    format!(
        "{{\"order_id\":{},\"customer\":\"customer-{:05}\",\"status\":\"{}\",\
         \"currency\":\"EUR\",\"amount\":{}.{:02},\"items\":[{{\"sku\":\"sku-{:05}\",\
         \"qty\":{}}}],\"ts\":{}}}",
        100_000 + i * 7,
        (i * 37) % 9_973,
        ["new", "paid", "shipped", "returned"][i % 4],
        (i * 31) % 500,
        i % 100,
        (i * 131) % 99_991,
        1 + i % 5,
        1_700_000_000_000u64 + i as u64 * 13
    )
}

/// `partitioner` takes effect: hashed values put every key where their library does, and
/// the values that ignore keys spread them (read back by Kafka's console consumer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partitioner_setting_places_records_as_it_says() {
    use courier::config::Partitioner;
    use std::collections::BTreeSet;

    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let cases: [(&[(&str, &str)], Partitioner); 6] = [
        (&[], Partitioner::Default),
        (&[("partitioner", "consistent")], Partitioner::Consistent),
        (&[("partitioner", "fnv1a_random")], Partitioner::Fnv1aRandom),
        (&[("partitioner", "murmur2")], Partitioner::Murmur2),
        (&[("partitioner", "random")], Partitioner::Random),
        (
            &[("partitioner.ignore.keys", "true")],
            Partitioner::IgnoreKeys,
        ),
    ];
    for (props, kind) in cases {
        let topic = create(cluster, &format!("part-{kind}"), 6);
        let producer = Producer::new(config(cluster, props)).unwrap();
        assert_eq!(producer.config().partitioner(), kind);
        let mut futures = Vec::new();
        for i in 0..120 {
            let rec = ProducerRecord::new(&topic)
                .key(format!("key-{}", i % 20))
                .value(format!("v{i}"));
            futures.push(producer.produce(rec).await.unwrap());
        }
        for f in futures {
            f.await.unwrap();
        }
        producer
            .close(Duration::from_secs(10))
            .await
            .expect("close");
        let t = topic.clone();
        let read = tokio::task::spawn_blocking(move || cluster.consume_all(&t))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.len(), 120, "{kind}");
        let mut partitions_of: BTreeMap<Vec<u8>, BTreeSet<i32>> = BTreeMap::new();
        for r in &read {
            let key = r.key.clone().unwrap();
            if let Some(expected) = kind.hashed_partition(Some(&key), 6) {
                assert_eq!(r.partition, expected, "{kind}: key {key:?}");
            }
            partitions_of.entry(key).or_default().insert(r.partition);
        }
        let used: BTreeSet<i32> = read.iter().map(|r| r.partition).collect();
        match kind {
            // A 1.5 KB burst stays on one sticky partition (it switches after batch.size).
            Partitioner::IgnoreKeys => assert_eq!(used.len(), 1, "{kind}: {used:?}"),
            // Per record: the same key lands on several partitions.
            Partitioner::Random => assert!(
                partitions_of.values().any(|p| p.len() > 1),
                "{kind}: {partitions_of:?}"
            ),
            _ => {
                assert!(partitions_of.values().all(|p| p.len() == 1), "{kind}");
                assert!(used.len() > 1, "{kind}: 20 keys on one partition");
            }
        }
    }
}

/// `connections.max.idle.ms` closes connections left idle, and the producer reopens them
/// for the next record without an error or a reconnect backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_the_next_record_reopens_them() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let topic = create(cluster, "idle", 1);
    let producer = Producer::new(config(
        cluster,
        &[
            ("connections.max.idle.ms", "300"),
            // The idle check runs at least once per request timeout.
            ("request.timeout.ms", "500"),
        ],
    ))
    .unwrap();
    let first = producer
        .send(ProducerRecord::new(&topic).value("before"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = producer
        .send(ProducerRecord::new(&topic).value("after"))
        .await
        .unwrap();
    assert_eq!(second.offset, first.offset + 1);
    let m = producer.metrics();
    assert_eq!((m.delivered, m.failed), (2, 0));
    assert!(m.connections_closed_idle >= 1, "{m:?}");
    producer
        .close(Duration::from_secs(10))
        .await
        .expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_record_fails_clearly_and_others_are_unaffected() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let topic = create(cluster, "too-large", 1);
    let producer = Producer::new(config(cluster, &[("max.request.size", "100000")])).unwrap();
    let small = producer
        .produce(ProducerRecord::new(&topic).value("before"))
        .await
        .unwrap();
    let big = producer
        .produce(ProducerRecord::new(&topic).value(vec![b'x'; 200_000]))
        .await
        .unwrap();
    let after = producer
        .produce(ProducerRecord::new(&topic).value("after"))
        .await
        .unwrap();
    let err = big.await.unwrap_err();
    assert!(matches!(err, ProducerError::RecordTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("max.request.size"), "{err}");
    assert_eq!(err.persistence(), Persistence::NotPersisted);
    assert!(small.await.is_ok());
    assert!(after.await.is_ok());
    producer
        .close(Duration::from_secs(10))
        .await
        .expect("close");
}

/// Sends `n` keyed records (1,000 keys, ~100 B JSON values carrying the key's counter)
/// to a topic with `max.message.bytes=65536` from a producer whose `batch.size` is
/// 1,000,000 and `linger.ms` 200 - the case issue 17 was filed on, where every record
/// failed MESSAGE_TOO_LARGE. Every record must be delivered, and the reader must find
/// each exactly once, per key in send order. Returns the producer's split count.
async fn batches_above_the_topic_limit_deliver(
    cluster: &'static KafkaCluster,
    n: usize,
    extra: &[(&str, &str)],
) -> u64 {
    let topic = cluster.unique_topic("big-batches");
    cluster
        .create_topic(
            &TopicSpec::new(&topic)
                .partitions(3)
                .config("max.message.bytes", "65536"),
        )
        .unwrap();
    let mut settings = vec![("batch.size", "1000000"), ("linger.ms", "200")];
    settings.extend_from_slice(extra);
    let producer = Producer::new(config(cluster, &settings)).unwrap();
    let mut futures: Vec<courier::DeliveryFuture> = Vec::with_capacity(n);
    for i in 0..n {
        if i == 1 {
            // The first record starts the durability audit (when it is on), which
            // reads the topic's limit; let it answer before the burst.
            futures.pop().unwrap().await.expect("the first record");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let key = i % 1000;
        let counter = i / 1000;
        let rec = ProducerRecord::new(&topic)
            .key(format!("k{key}"))
            .value(format!(
            "{{\"key\":{key},\"counter\":{counter},\"note\":\"order placed and paid, ships soon\"}}"
        ));
        futures.push(producer.produce(rec).await.unwrap());
    }
    for (i, f) in futures.into_iter().enumerate() {
        f.await
            .unwrap_or_else(|e| panic!("record {} failed: {e}", i + 1));
    }
    let split = producer.metrics().batches_split;
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close");
    let records = tokio::task::spawn_blocking(move || cluster.consume_all(&topic))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(records.len(), n, "every record exactly once");
    let mut next: HashMap<Vec<u8>, (i32, u64)> = HashMap::new();
    let mut by_partition: BTreeMap<i32, Vec<&courier_testkit::ConsumedRecord>> = BTreeMap::new();
    for r in &records {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for rs in by_partition.values_mut() {
        rs.sort_by_key(|r| r.offset);
        for r in rs.iter() {
            let key = r.key.clone().expect("keyed");
            let value = String::from_utf8(r.value.clone().expect("a value")).unwrap();
            let counter: u64 = value
                .split("\"counter\":")
                .nth(1)
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse().ok())
                .expect("a counter");
            let want = next.entry(key.clone()).or_insert((r.partition, 0));
            assert_eq!(want.0, r.partition, "one key, one partition");
            assert_eq!(
                counter,
                want.1,
                "key {} out of send order",
                String::from_utf8_lossy(&key)
            );
            want.1 += 1;
        }
    }
    split
}

/// With the durability audit (the default), the producer reads the topic's
/// `max.message.bytes` and closes its batches below it; a batch that is still refused
/// is split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_the_topic_allows_are_capped_and_all_500k_records_land() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let split =
        batches_above_the_topic_limit_deliver(cluster, 500_000, &[("durability.check", "warn")])
            .await;
    assert_eq!(split, 0, "batches were closed below the topic's limit");
}

/// Without the audit the producer does not know the limit: the broker refuses the
/// batches as too large, and the producer splits them until they fit, keeping the
/// sequences and the per-key order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_refused_as_too_large_are_split_until_they_fit() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let split =
        batches_above_the_topic_limit_deliver(cluster, 100_000, &[("durability.check", "off")])
            .await;
    assert!(split > 0, "the broker refused batches and they were split");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_reported_by_name() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let producer = Producer::new(config(cluster, &[("max.block.ms", "2000")])).unwrap();
    let missing = cluster.unique_topic("does-not-exist");
    let err = producer
        .send(ProducerRecord::new(&missing).value("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProducerError::UnknownTopic { .. }), "{err}");
    assert!(err.to_string().contains(&missing), "{err}");
    assert_eq!(err.persistence(), Persistence::NotPersisted);
    // The topic has been missing for a whole max.block.ms: the next record fails at
    // once rather than waiting another 2 s (a file of them took 20 minutes, issue 19).
    let started = std::time::Instant::now();
    let err = producer
        .send(ProducerRecord::new(&missing).value("y"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProducerError::UnknownTopic { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "failed after {:?}, not at once",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_close_deliver_records_in_flight() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let topic = create(cluster, "flush", 2);
    // A long linger: without flush nothing would go for a minute.
    let producer = Producer::new(config(
        cluster,
        &[("linger.ms", "60000"), ("delivery.timeout.ms", "120000")],
    ))
    .unwrap();
    let mut first = Vec::new();
    for i in 0..1000 {
        first.push(
            producer
                .produce(ProducerRecord::new(&topic).value(format!("a{i}")))
                .await
                .unwrap(),
        );
    }
    tokio::time::timeout(Duration::from_secs(30), producer.flush())
        .await
        .expect("flush must not wait for linger.ms")
        .expect("flush");
    for f in first {
        // Flush returned: every report is already there.
        assert!(tokio::time::timeout(Duration::from_millis(1), f)
            .await
            .unwrap()
            .is_ok());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..1000 {
        let tx = tx.clone();
        producer
            .produce_with_callback(
                ProducerRecord::new(&topic).value(format!("b{i}")),
                move |r| {
                    let _ = tx.send(r.map(|md| md.offset));
                },
            )
            .await
            .unwrap();
    }
    drop(tx);
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close");
    let mut n = 0;
    while let Some(r) = rx.recv().await {
        assert!(r.is_ok());
        n += 1;
    }
    assert_eq!(n, 1000, "close delivered every queued record");
    let err = producer
        .send(ProducerRecord::new(&topic).value("late"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProducerError::Closed));
    let t = topic.clone();
    let read = tokio::task::spawn_blocking(move || cluster.consume_all(&t))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.len(), 2000);
}

#[tokio::test]
async fn unreachable_cluster_reports_the_connection_error() {
    // Port 1 on loopback: nothing listens there.
    let config = ProducerConfig::builder()
        .set("bootstrap.servers", "127.0.0.1:1")
        .unwrap()
        .set("max.block.ms", "1500")
        .unwrap()
        .build()
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let err = producer
        .send(ProducerRecord::new("orders").value("x"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ProducerError::MetadataTimeout { .. }),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:1") && text.contains("bootstrap.servers"),
        "{text}"
    );
    assert_eq!(err.persistence(), Persistence::NotPersisted);
    assert!(err.is_retriable());
}

#[tokio::test]
async fn full_buffer_makes_try_produce_fail_at_once_and_produce_wait_max_block() {
    // Nothing listens on port 1, so records stay buffered until max.block.ms.
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", "127.0.0.1:1"),
        ("batch.size", "1000"),
        ("buffer.memory", "4000"),
        ("max.block.ms", "800"),
    ])
    .unwrap();
    let producer = Producer::new(config).unwrap();
    let mut queued = Vec::new();
    let err = loop {
        match producer.try_produce(ProducerRecord::new("orders").value(vec![b'v'; 500])) {
            Ok(f) => queued.push(f),
            Err(e) => break e,
        }
        assert!(queued.len() < 100, "buffer.memory never filled");
    };
    assert!(matches!(err, ProducerError::BufferFull { .. }), "{err}");
    assert!(err.to_string().contains("buffer.memory"), "{err}");
    assert!(!queued.is_empty());
    let started = std::time::Instant::now();
    let err = producer
        .produce(ProducerRecord::new("orders").value(vec![b'v'; 500]))
        .await
        .err()
        .expect("no room until max.block.ms");
    assert!(matches!(err, ProducerError::BufferFull { .. }), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "waited for max.block.ms"
    );
    assert_eq!(err.persistence(), Persistence::NotPersisted);
    // A record larger than the whole buffer can never fit: refused outright.
    let err = producer
        .try_produce(ProducerRecord::new("orders").value(vec![b'v'; 5000]))
        .err()
        .unwrap();
    assert!(
        matches!(err, ProducerError::RecordExceedsBufferMemory { .. }),
        "{err}"
    );
}

/// Dropping every producer handle without `close` still delivers what was queued (the
/// driver sees that no sender is left, flushes and stops), against the test kit's
/// blackhole broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_delivers_what_was_queued() {
    let bh = courier_testkit::Blackhole::start(3).unwrap();
    let config = ProducerConfig::builder()
        .set("bootstrap.servers", &bh.bootstrap())
        .and_then(|b| b.set("linger.ms", "60000"))
        .and_then(|b| b.set("durability.check", "off"))
        .and_then(|b| b.build())
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let second = producer.clone();
    let mut pending = Vec::new();
    for i in 0..5000 {
        let p = if i % 2 == 0 { &producer } else { &second };
        pending.push(
            p.produce(ProducerRecord::new("orders").value(format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    drop(producer);
    drop(second);
    // linger.ms is a minute: only the flush on the last drop sends them now.
    for f in pending {
        let md = tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("delivered after the last handle was dropped")
            .expect("acknowledged");
        assert!(md.offset >= 0);
    }
}

/// `produce_tagged`: every tag comes back exactly once, with the partition and offset the
/// independent reader finds its record at; a record refused at once (larger than
/// `buffer.memory`) is the caller's error, and its tag never reaches the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_records_report_each_tag_once_with_the_offset_kafka_stored() {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::shared(1))
        .await
        .unwrap();
    let topic = create(cluster, "tagged", 3);
    let producer = Producer::new(config(
        cluster,
        &[("linger.ms", "5"), ("buffer.memory", "100000")],
    ))
    .unwrap();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(u64, i32, i64)>>> = Default::default();
    let handler = {
        let seen = seen.clone();
        courier::DeliveryHandler::new(move |tag, r| {
            let md = r.unwrap_or_else(|e| panic!("record {tag} failed: {e}"));
            seen.lock().unwrap().push((tag, md.partition, md.offset));
        })
    };
    let n = 5_000u64;
    for i in 0..n {
        let rec = ProducerRecord::new(&topic)
            .key(format!("k{}", i % 97))
            .value(format!("v{i}"));
        producer.produce_tagged(rec, &handler, i).await.unwrap();
    }
    let too_big = ProducerRecord::new(&topic).value(vec![0u8; 200_000]);
    let refused = producer.produce_tagged(too_big, &handler, u64::MAX).await;
    assert_eq!(refused.unwrap_err().name(), "RECORD_EXCEEDS_BUFFER_MEMORY");
    producer.flush().await.unwrap();
    producer.close(Duration::from_secs(10)).await.unwrap();

    let mut seen = std::mem::take(&mut *seen.lock().unwrap());
    seen.sort_unstable();
    assert_eq!(seen.len() as u64, n, "one report per tag");
    assert!(
        seen.iter().map(|s| s.0).eq(0..n),
        "each tag once, none other"
    );
    let stored: HashMap<(i32, i64), Vec<u8>> = cluster
        .consume_all(&topic)
        .unwrap()
        .into_iter()
        .map(|r| ((r.partition, r.offset), r.value.unwrap()))
        .collect();
    assert_eq!(stored.len() as u64, n);
    for (tag, p, o) in seen {
        assert_eq!(
            stored.get(&(p, o)).map(Vec::as_slice),
            Some(format!("v{tag}").as_bytes()),
            "tag {tag} reported at {p}/{o}"
        );
    }
}
