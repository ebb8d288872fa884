//! librdkafka's producer (bundled C library via the `rdkafka` crate) driven like
//! `kafka-producer-perf-test`, for perf/run.py.
//!
//! ```text
//! rdkafka-perf --bootstrap-server HOST:PORT --topic T --num-records N
//!              (--record-size S | --payload-file F) [--throughput R]
//!              [--keys N] [--owned] [--producer-props k=v ...]
//! ```
//!
//! `--keys N` and `--owned` are `courier perf`'s: keys `key-0` .. `key-{N-1}` in turn
//! (placed by murmur2: `partitioner=murmur2_random` unless the properties name one, as
//! Java's and courier's default partitioners hash keys), and with `--owned` each record's
//! key and value are built into fresh `Vec`s, as after serializing, and dropped after
//! `send` (which copies them into librdkafka).
//!
//! Properties are librdkafka's. Prints a progress line every 5 s and the final line
//! in the Java tool's format on stderr, then one JSON object on stdout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

struct Args {
    bootstrap: Option<String>,
    topic: String,
    num_records: u64,
    payloads: Vec<Vec<u8>>,
    throughput: f64,
    props: Vec<(String, String)>,
    keys: u64,
    owned: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("rdkafka-perf: {msg}");
    eprintln!(
        "usage: rdkafka-perf [--bootstrap-server B] --topic T --num-records N \
         (--record-size S | --payload-file F) [--throughput R] [--keys N] [--owned] \
         [--producer-props k=v ...]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = std::env::args().skip(1).peekable();
    let (mut bootstrap, mut topic, mut n, mut size, mut file, mut tput) =
        (None, None, None, None, None, -1.0);
    let mut props = Vec::new();
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
                size = Some(
                    val()
                        .parse::<usize>()
                        .unwrap_or_else(|_| usage("bad --record-size")),
                )
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
                    props.push((k.to_string(), v.to_string()));
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let payloads = match (size, file) {
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
    Args {
        bootstrap,
        topic: topic.unwrap_or_else(|| usage("--topic is required")),
        num_records: n.unwrap_or_else(|| usage("--num-records is required")),
        payloads,
        throughput: tput,
        props,
        keys,
        owned,
    }
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

#[derive(Default)]
struct Window {
    count: u64,
    bytes: u64,
    lat_sum_us: u64,
    lat_max_us: u64,
}

struct Stats {
    start: Instant,
    latencies_us: Mutex<Vec<u32>>,
    window: Mutex<(Instant, Window)>,
    delivered: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn record(&self, sent_us: u64, bytes: usize, ok: bool, err: Option<String>) {
        let now_us = self.start.elapsed().as_micros() as u64;
        let lat = now_us.saturating_sub(sent_us);
        if ok {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut fe = self.first_error.lock().unwrap();
            if fe.is_none() {
                *fe = err;
            }
        }
        self.latencies_us
            .lock()
            .unwrap()
            .push(lat.min(u32::MAX as u64) as u32);
        let mut w = self.window.lock().unwrap();
        w.1.count += 1;
        w.1.bytes += bytes as u64;
        w.1.lat_sum_us += lat;
        w.1.lat_max_us = w.1.lat_max_us.max(lat);
        let el = w.0.elapsed();
        if el >= Duration::from_secs(5) {
            let s = el.as_secs_f64();
            eprintln!(
                "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                w.1.count,
                w.1.count as f64 / s,
                w.1.bytes as f64 / s / 1048576.0,
                w.1.lat_sum_us as f64 / w.1.count as f64 / 1000.0,
                w.1.lat_max_us as f64 / 1000.0
            );
            *w = (Instant::now(), Window::default());
        }
    }
}

struct Ctx(std::sync::Arc<Stats>);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<(u64, usize)>;
    fn delivery(&self, r: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (sent_us, bytes) = *opaque;
        match r {
            Ok(_) => self.0.record(sent_us, bytes, true, None),
            Err((e, _)) => self.0.record(sent_us, bytes, false, Some(e.to_string())),
        }
    }
}

fn main() {
    let args = parse_args();
    let stats = std::sync::Arc::new(Stats {
        start: Instant::now(),
        latencies_us: Mutex::new(Vec::with_capacity(args.num_records as usize)),
        window: Mutex::new((Instant::now(), Window::default())),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let mut cfg = ClientConfig::new();
    if let Some(b) = &args.bootstrap {
        cfg.set("bootstrap.servers", b);
    }
    if args.keys > 0 && !args.props.iter().any(|(k, _)| k == "partitioner") {
        cfg.set("partitioner", "murmur2_random");
    }
    for (k, v) in &args.props {
        cfg.set(k, v);
    }
    let producer: BaseProducer<Ctx> = cfg
        .create_with_context(Ctx(stats.clone()))
        .unwrap_or_else(|e| usage(&format!("creating the producer: {e}")));
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let n = args.num_records;
    // Shared keys for the static shape, built once like the payloads.
    let static_keys: Vec<Vec<u8>> = (0..if args.owned { 0 } else { args.keys })
        .map(|k| format!("key-{k}").into_bytes())
        .collect();
    let mut key_buf = String::new();
    for i in 0..n {
        if args.throughput > 0.0 {
            let due = Duration::from_secs_f64(i as f64 / args.throughput);
            let el = stats.start.elapsed();
            if due > el {
                // Serve delivery reports while waiting.
                producer.poll(due - el);
            }
        }
        let payload = &args.payloads[if args.payloads.len() == 1 {
            0
        } else {
            (rng.next() % args.payloads.len() as u64) as usize
        }];
        // With --owned: fresh buffers per record, as an application's serializer makes.
        let (owned_key, owned_value) = if args.owned {
            let key = (args.keys > 0).then(|| {
                use std::fmt::Write;
                key_buf.clear();
                let _ = write!(key_buf, "key-{}", i % args.keys);
                key_buf.as_bytes().to_vec()
            });
            (key, Some(payload.to_vec()))
        } else {
            (None, None)
        };
        let key: Option<&[u8]> = match &owned_key {
            Some(k) => Some(k),
            None if args.keys > 0 && !args.owned => Some(&static_keys[(i % args.keys) as usize]),
            None => None,
        };
        let value: &[u8] = owned_value.as_deref().unwrap_or(payload);
        let sent_us = stats.start.elapsed().as_micros() as u64;
        let mut rec = BaseRecord::<[u8], [u8], _>::with_opaque_to(
            &args.topic,
            Box::new((sent_us, value.len())),
        )
        .payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    eprintln!("rdkafka-perf: send failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    if let Err(e) = producer.flush(Duration::from_secs(300)) {
        eprintln!("rdkafka-perf: flush: {e}");
    }
    let elapsed = stats.start.elapsed().as_secs_f64();
    finish("librdkafka", &stats, elapsed, n);
}

fn finish(client: &str, stats: &Stats, elapsed: f64, n: u64) {
    let mut lat = std::mem::take(&mut *stats.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((q * lat.len() as f64) as usize).min(lat.len() - 1)] as f64 / 1000.0
    };
    let avg = lat.iter().map(|&v| v as f64).sum::<f64>() / lat.len().max(1) as f64 / 1000.0;
    let max = lat.last().copied().unwrap_or(0) as f64 / 1000.0;
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let rps = delivered as f64 / elapsed;
    let mbps = bytes as f64 / elapsed / 1048576.0;
    eprintln!(
        "{delivered} records sent, {rps:.6} records/sec ({mbps:.2} MB/sec), {avg:.2} ms avg latency, {max:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        pct(0.5) as u64, pct(0.95) as u64, pct(0.99) as u64, pct(0.999) as u64
    );
    if let Some(e) = stats.first_error.lock().unwrap().as_ref() {
        eprintln!("{failed} records failed; first error: {e}");
    }
    println!(
        "{{\"client\":\"{client}\",\"records\":{n},\"delivered\":{delivered},\"failed\":{failed},\"elapsed_s\":{elapsed:.3},\"records_per_s\":{rps:.1},\"mb_per_s\":{mbps:.3},\"latency_ms\":{{\"avg\":{avg:.3},\"max\":{max:.3},\"p50\":{:.3},\"p95\":{:.3},\"p99\":{:.3},\"p999\":{:.3}}}}}",
        pct(0.5), pct(0.95), pct(0.99), pct(0.999)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
