//! End-to-end producer benchmarks: the whole `courier::Producer` (channel, engine,
//! batching, LZ4, the Produce request path, delivery reports) against the test kit's
//! blackhole broker, which acknowledges every Produce at once (the client's own
//! ceiling), and against one real Kafka broker started by the test kit.
//!
//! One iteration sends 20,000 records of 100 bytes (order-like JSON, which LZ4 halves)
//! with the benchmark settings of `docs/BENCHMARKS.md` (acks=all, idempotence, LZ4,
//! linger.ms=5, batch.size=16384) and waits for every delivery report. The producer
//! and its connections are set up once per benchmark, outside the measurement.
//!
//! Shapes (issue 16): `100B_json_lz4_{p}p` sends unkeyed records of shared static
//! payloads with a future each (Java's perf tool's shape); the `keyed_owned_*` ones send
//! what applications send, keys among 1,000 (murmur2) and a key and value built into
//! fresh buffers per record, with a future each, a callback each, or `produce_tagged`
//! (blackhole, 6 partitions).
//!
//! ```text
//! cargo bench -p courier-benches --bench producer               # blackhole and Kafka
//! cargo bench -p courier-benches --bench producer -- blackhole  # no JVM needed
//! ```
//!
//! The side-by-side comparison with other clients is `perf/run.py`; this bench is for
//! tracking courier's own changes with criterion's statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::{Producer, ProducerConfig, ProducerRecord};
use courier_testkit::{Blackhole, KafkaCluster, TopicSpec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORDS: usize = 20_000;

fn payloads() -> Vec<Bytes> {
    (0..1000u64)
        .map(|i| {
            let mut v = format!(
                r#"{{"order":{},"customer":"c-{:05}","amount":{}.{:02},"items":["#,
                1_000_000 + i,
                i * 7919 % 100_000,
                i * 31 % 1000,
                i % 100
            );
            while v.len() < 98 {
                v.push_str(&format!("{},", i % 97));
            }
            v.truncate(98);
            v.push_str("]}");
            Bytes::from(v)
        })
        .collect()
}

fn producer(bootstrap: &str) -> Producer {
    let config = ProducerConfig::builder()
        .properties([
            ("bootstrap.servers", bootstrap),
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("batch.size", "16384"),
            ("buffer.memory", "33554432"),
            // The bench measures producing, not the topic audit's round trips.
            ("durability.check", "off"),
        ])
        .and_then(|b| b.build())
        .expect("benchmark settings are valid");
    Producer::new(config).expect("a producer")
}

/// Sends `RECORDS` records and waits for all their reports; panics on a failure so a
/// broken setup cannot pass for a fast one.
async fn send_all(p: &Producer, topic: &Arc<str>, payloads: &[Bytes]) {
    let mut pending = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new(topic).value(payloads[i % payloads.len()].clone());
        pending.push(p.produce(record).await.expect("queued"));
    }
    for f in pending {
        f.await.expect("delivered");
    }
}

/// How a keyed, owned shape gets its reports.
#[derive(Clone, Copy)]
enum Api {
    Future,
    Callback,
    Tagged,
}

/// Sends `RECORDS` keyed records, key and value in fresh buffers, and waits for every
/// report; panics unless all were delivered.
async fn send_keyed_owned(p: &Producer, topic: &Arc<str>, payloads: &[Bytes], api: Api) {
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler = {
        let delivered = delivered.clone();
        courier::DeliveryHandler::new(move |_, r| {
            r.expect("delivered");
            delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let mut pending = Vec::new();
    for i in 0..RECORDS {
        let record = ProducerRecord::new(topic)
            .key(format!("key-{}", i % 1000).into_bytes())
            .value(payloads[i % payloads.len()].to_vec());
        match api {
            Api::Future => pending.push(p.produce(record).await.expect("queued")),
            Api::Callback => {
                let delivered = delivered.clone();
                p.produce_with_callback(record, move |r| {
                    r.expect("delivered");
                    delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .await
                .expect("queued")
            }
            Api::Tagged => p
                .produce_tagged(record, &handler, i as u64)
                .await
                .expect("queued"),
        }
    }
    for f in pending {
        f.await.expect("delivered");
        delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    p.flush().await.expect("flushed");
    assert_eq!(
        delivered.load(std::sync::atomic::Ordering::Relaxed),
        RECORDS,
        "every record reported delivered"
    );
}

fn keyed_owned(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payloads = payloads();
    let bh = Blackhole::start(6).expect("blackhole broker");
    let mut g = c.benchmark_group("producer/blackhole");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    for (name, api) in [
        ("future", Api::Future),
        ("callback", Api::Callback),
        ("tagged", Api::Tagged),
    ] {
        let p = {
            let _guard = rt.enter();
            producer(&bh.bootstrap())
        };
        let topic: Arc<str> = "bench".into();
        rt.block_on(send_keyed_owned(&p, &topic, &payloads, api));
        g.bench_function(format!("keyed_owned_{name}_100B_json_lz4_6p"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(send_keyed_owned(&p, &topic, &payloads, api));
                }
                start.elapsed()
            })
        });
        rt.block_on(p.close(Duration::from_secs(30)))
            .expect("close");
    }
    g.finish();
}

fn run(c: &mut Criterion, group: &str, bootstrap: &str, topics: &[(String, i32)]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payloads = payloads();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    for (topic, partitions) in topics {
        let p = {
            let _guard = rt.enter();
            producer(bootstrap)
        };
        let topic: Arc<str> = topic.as_str().into();
        // Metadata, producer id and connections before the clock starts.
        rt.block_on(send_all(&p, &topic, &payloads));
        g.bench_function(format!("100B_json_lz4_{partitions}p"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(send_all(&p, &topic, &payloads));
                }
                start.elapsed()
            })
        });
        rt.block_on(p.close(Duration::from_secs(30)))
            .expect("close");
    }
    g.finish();
}

fn blackhole(c: &mut Criterion) {
    for partitions in [1, 6] {
        let bh = Blackhole::start(partitions).expect("blackhole broker");
        run(
            c,
            "producer/blackhole",
            &bh.bootstrap(),
            &[("bench".to_string(), partitions)],
        );
    }
}

fn kafka(c: &mut Criterion) {
    let cluster = KafkaCluster::shared(1);
    let mut topics = Vec::new();
    for partitions in [1, 6] {
        let name = cluster.unique_topic("bench");
        cluster
            .create_topic(
                &TopicSpec::new(&name)
                    .partitions(partitions)
                    .replication_factor(1),
            )
            .expect("topic created");
        topics.push((name, partitions));
    }
    run(c, "producer/kafka", &cluster.bootstrap(), &topics);
}

criterion_group!(benches, blackhole, keyed_owned, kafka);
criterion_main!(benches);
