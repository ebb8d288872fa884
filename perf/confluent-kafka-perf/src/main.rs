//! confluent-kafka's producer (Confluent's Rust client, a translation of the Java
//! client) driven like `kafka-producer-perf-test`, for perf/run.py.
//!
//! ```text
//! confluent-kafka-perf --bootstrap-server HOST:PORT --topic T --num-records N
//!                      (--record-size S | --payload-file F) [--throughput R]
//!                      [--keys N] [--owned] [--producer-props k=v ...]
//! ```
//!
//! Properties are the Java client's. `--keys N` and `--owned` are `courier perf`'s: keys
//! `key-0` .. `key-{N-1}` in turn, placed by murmur2 (the crate's default partitioner
//! hashes keys with CRC-32, like librdkafka's, so `partitioner.type=Murmur2RandomPartitioner`
//! is set unless the properties name one), and with `--owned` each record's key and value are built into fresh `Vec`s, as
//! after serializing, and handed to the typed `Producer::send_with_callback` of a
//! `KafkaProducer<Vec<u8>, Vec<u8>>` with `ByteArraySerializer`s. Without `--owned` the
//! records borrow the loaded payloads through `KafkaProducer::send`, the crate's
//! byte-slice path. Each record gets a callback, as Java's tool does. Prints a progress
//! line every 5 s and the final line in the Java tool's format on stderr, then one JSON
//! object on stdout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use confluent_kafka::common::serialization::ByteArraySerializer;
use confluent_kafka::producer::{
    callback, Callback, KafkaProducer, Producer, ProducerConfig, ProducerRecord,
};

fn usage(msg: &str) -> ! {
    eprintln!("confluent-kafka-perf: {msg}");
    eprintln!(
        "usage: confluent-kafka-perf --bootstrap-server B --topic T --num-records N \
         (--record-size S | --payload-file F) [--throughput R] [--keys N] [--owned] \
         [--producer-props k=v ...]"
    );
    std::process::exit(2)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Counts and latencies, fed by the callbacks on the producer's sender task.
struct Stats {
    latencies_us: Vec<u32>,
    delivered: u64,
    failed: u64,
    bytes: u64,
    first_error: Option<String>,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_lat_sum_us: u64,
    window_lat_max_us: u64,
}

impl Stats {
    fn record(&mut self, sent: Instant, len: usize, err: Option<String>) {
        let now = Instant::now();
        let lat = now.saturating_duration_since(sent).as_micros() as u64;
        self.latencies_us.push(lat.min(u32::MAX as u64) as u32);
        match err {
            None => {
                self.delivered += 1;
                self.bytes += len as u64;
            }
            Some(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
        self.window_count += 1;
        self.window_bytes += len as u64;
        self.window_lat_sum_us += lat;
        self.window_lat_max_us = self.window_lat_max_us.max(lat);
        let el = now.saturating_duration_since(self.window_start);
        if el >= Duration::from_secs(5) {
            let s = el.as_secs_f64();
            eprintln!(
                "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                self.window_count,
                self.window_count as f64 / s,
                self.window_bytes as f64 / s / 1048576.0,
                self.window_lat_sum_us as f64 / self.window_count as f64 / 1000.0,
                self.window_lat_max_us as f64 / 1000.0
            );
            self.window_start = now;
            self.window_count = 0;
            self.window_bytes = 0;
            self.window_lat_sum_us = 0;
            self.window_lat_max_us = 0;
        }
    }
}

fn completion(stats: &'static Mutex<Stats>, sent: Instant, len: usize) -> Box<dyn Callback> {
    Box::new(callback::new(move |_metadata, error| {
        stats
            .lock()
            .unwrap()
            .record(sent, len, error.map(|e| e.to_string()))
    }))
}

#[tokio::main]
async fn main() {
    let mut a = std::env::args().skip(1).peekable();
    let (mut bootstrap, mut topic, mut n, mut size, mut file, mut tput) =
        (None, None, None::<u64>, None::<usize>, None, -1.0f64);
    let mut props = HashMap::new();
    let (mut keys, mut owned) = (0u64, false);
    while let Some(arg) = a.next() {
        let mut val = || {
            a.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--bootstrap-server" => bootstrap = Some(val()),
            "--topic" => topic = Some(val()),
            "--num-records" => {
                n = Some(val().parse().unwrap_or_else(|_| usage("bad --num-records")))
            }
            "--record-size" => {
                size = Some(val().parse().unwrap_or_else(|_| usage("bad --record-size")))
            }
            "--payload-file" => file = Some(val()),
            "--throughput" => tput = val().parse().unwrap_or_else(|_| usage("bad --throughput")),
            "--keys" => keys = val().parse().unwrap_or_else(|_| usage("bad --keys")),
            "--owned" => owned = true,
            "--producer-props" => {
                while let Some(p) = a.next_if(|p| !p.starts_with("--")) {
                    let (k, v) = p
                        .split_once('=')
                        .unwrap_or_else(|| usage(&format!("{p}: expected k=v")));
                    props.insert(k.to_string(), v.to_string());
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let payloads: Vec<Vec<u8>> = match (size, file) {
        (Some(s), None) => {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            vec![(0..s).map(|_| b'A' + (rng.next() % 26) as u8).collect()]
        }
        (None, Some(f)) => {
            let data = std::fs::read(&f).unwrap_or_else(|e| usage(&format!("{f}: {e}")));
            let p: Vec<Vec<u8>> = data
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            if p.is_empty() {
                usage(&format!("{f} holds no payloads"));
            }
            p
        }
        _ => usage("give exactly one of --record-size and --payload-file"),
    };
    let topic = topic.unwrap_or_else(|| usage("--topic is required"));
    let n = n.unwrap_or_else(|| usage("--num-records is required"));
    if let Some(b) = bootstrap {
        props.insert("bootstrap.servers".to_string(), b);
    }
    if keys > 0 {
        props
            .entry(ProducerConfig::PARTITIONER_TYPE_CONFIG.to_string())
            .or_insert_with(|| ProducerConfig::MURMUR2_RANDOM_PARTITIONER.to_string());
    }
    let config =
        ProducerConfig::new(&props).unwrap_or_else(|e| usage(&format!("configuration: {e}")));
    let producer = KafkaProducer::<Vec<u8>, Vec<u8>>::new(
        config,
        ByteArraySerializer::new(),
        ByteArraySerializer::new(),
    )
    .unwrap_or_else(|e| usage(&format!("creating the producer: {e}")));
    // Lives for the run, as each callback of Java's tool references its `Stats`.
    let stats: &'static Mutex<Stats> = Box::leak(Box::new(Mutex::new(Stats {
        latencies_us: Vec::with_capacity(n as usize),
        delivered: 0,
        failed: 0,
        bytes: 0,
        first_error: None,
        window_start: Instant::now(),
        window_count: 0,
        window_bytes: 0,
        window_lat_sum_us: 0,
        window_lat_max_us: 0,
    })));
    // Shared keys for the static shape, built once like the payloads.
    let static_keys: Vec<Vec<u8>> = (0..if owned { 0 } else { keys })
        .map(|k| format!("key-{k}").into_bytes())
        .collect();
    let mut key_buf = String::new();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let start = Instant::now();
    for i in 0..n {
        if tput > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / tput);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let payload = &payloads[if payloads.len() == 1 {
            0
        } else {
            (rng.next() % payloads.len() as u64) as usize
        }];
        let len = payload.len();
        let sent = Instant::now();
        let r = if owned {
            // Fresh buffers per record, as an application's serializer makes.
            let key = (keys > 0).then(|| {
                use std::fmt::Write;
                key_buf.clear();
                let _ = write!(key_buf, "key-{}", i % keys);
                key_buf.as_bytes().to_vec()
            });
            let record = ProducerRecord::with_key(topic.clone(), key, Some(payload.to_vec()));
            Producer::send_with_callback(&producer, record, Some(completion(stats, sent, len)))
                .await
        } else {
            let key = (keys > 0).then(|| static_keys[(i % keys) as usize].as_slice());
            let record = ProducerRecord::with_key(topic.clone(), key, Some(payload.as_slice()));
            producer
                .send(record, Some(completion(stats, sent, len)))
                .await
        };
        if let Err(e) = r {
            eprintln!("confluent-kafka-perf: send failed: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = producer.flush().await {
        eprintln!("confluent-kafka-perf: flush: {e}");
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Err(e) = producer.close().await {
        eprintln!("confluent-kafka-perf: close: {e}");
    }
    finish(stats, elapsed, n);
}

fn finish(stats: &Mutex<Stats>, elapsed: f64, n: u64) {
    let st = &mut *stats.lock().unwrap();
    let lat = &mut st.latencies_us;
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((q * lat.len() as f64) as usize).min(lat.len() - 1)] as f64 / 1000.0
    };
    let avg = lat.iter().map(|&v| v as f64).sum::<f64>() / lat.len().max(1) as f64 / 1000.0;
    let max = lat.last().copied().unwrap_or(0) as f64 / 1000.0;
    let (delivered, failed) = (st.delivered, st.failed);
    let rps = delivered as f64 / elapsed;
    let mbps = st.bytes as f64 / elapsed / 1048576.0;
    eprintln!(
        "{delivered} records sent, {rps:.6} records/sec ({mbps:.2} MB/sec), {avg:.2} ms avg latency, {max:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        pct(0.5) as u64, pct(0.95) as u64, pct(0.99) as u64, pct(0.999) as u64
    );
    if let Some(e) = &st.first_error {
        eprintln!("{failed} records failed; first error: {e}");
    }
    println!(
        "{{\"client\":\"confluent-kafka\",\"records\":{n},\"delivered\":{delivered},\"failed\":{failed},\"elapsed_s\":{elapsed:.3},\"records_per_s\":{rps:.1},\"mb_per_s\":{mbps:.3},\"latency_ms\":{{\"avg\":{avg:.3},\"max\":{max:.3},\"p50\":{:.3},\"p95\":{:.3},\"p99\":{:.3},\"p999\":{:.3}}}}}",
        pct(0.5), pct(0.95), pct(0.99), pct(0.999)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
