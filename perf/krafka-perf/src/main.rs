//! krafka's producer (pure Rust, crates.io) driven like `kafka-producer-perf-test`,
//! for perf/run.py.
//!
//! ```text
//! krafka-perf --bootstrap-server HOST:PORT --topic T --num-records N
//!             (--record-size S | --payload-file F) [--throughput R]
//!             [--keys N] [--owned] [--producer-props k=v ...]
//! ```
//!
//! `--keys N` and `--owned` are `courier perf`'s: keys `key-0` .. `key-{N-1}` in turn
//! (krafka's default partitioner hashes keys with murmur2), and with `--owned` each
//! record's key and value are built into fresh buffers, as after serializing, instead of
//! sharing the loaded payloads.
//!
//! Understood properties: acks, enable.idempotence, compression.type, linger.ms,
//! batch.size, buffer.memory (others are refused). Prints the final line in the Java
//! tool's format on stderr, then one JSON object on stdout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use krafka::producer::Acks;
use krafka::{Compression, Kafka, Record};
use tokio::sync::mpsc;

fn usage(msg: &str) -> ! {
    eprintln!("krafka-perf: {msg}");
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

#[tokio::main]
async fn main() {
    let mut a = std::env::args().skip(1).peekable();
    let (mut bootstrap, mut topic, mut n, mut size, mut file, mut tput) =
        (None, None, None::<u64>, None::<usize>, None, -1.0f64);
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
                    props.push((k.to_string(), v.to_string()));
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let payloads: Vec<Bytes> = match (size, file) {
        (Some(s), None) => {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            vec![Bytes::from(
                (0..s)
                    .map(|_| b'A' + (rng.next() % 26) as u8)
                    .collect::<Vec<u8>>(),
            )]
        }
        (None, Some(f)) => {
            let data = std::fs::read(&f).unwrap_or_else(|e| usage(&format!("{f}: {e}")));
            data.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(Bytes::copy_from_slice)
                .collect()
        }
        _ => usage("give exactly one of --record-size and --payload-file"),
    };
    let topic = topic.unwrap_or_else(|| usage("--topic is required"));
    let n = n.unwrap_or_else(|| usage("--num-records is required"));
    let kafka =
        Kafka::builder(bootstrap.unwrap_or_else(|| usage("--bootstrap-server is required")))
            .client_id("krafka-perf")
            .connect()
            .await
            .unwrap_or_else(|e| usage(&format!("connect: {e}")));
    let mut b = kafka.producer();
    for (k, v) in &props {
        b = match k.as_str() {
            "acks" => b.acks(match v.as_str() {
                "all" | "-1" => Acks::All,
                "1" => Acks::Leader,
                "0" => Acks::None,
                _ => usage("acks must be all, 1 or 0"),
            }),
            "enable.idempotence" => b.idempotent(v == "true"),
            "compression.type" => b.compression(match v.as_str() {
                "lz4" => Compression::Lz4,
                "none" => Compression::None,
                "snappy" => Compression::Snappy,
                "gzip" => Compression::Gzip,
                _ => usage("compression.type: none, gzip, snappy or lz4"),
            }),
            "linger.ms" => b.linger(Duration::from_millis(
                v.parse().unwrap_or_else(|_| usage("linger.ms")),
            )),
            "batch.size" => b.batch_size(v.parse().unwrap_or_else(|_| usage("batch.size"))),
            "buffer.memory" => {
                b.buffer_memory(v.parse().unwrap_or_else(|_| usage("buffer.memory")))
            }
            other => usage(&format!("property {other} is not mapped for krafka")),
        };
    }
    let producer = b
        .build()
        .await
        .unwrap_or_else(|e| usage(&format!("producer: {e}")));

    // A collector task awaits the delivery handles as they complete.
    let (tx, mut rx) =
        mpsc::unbounded_channel::<(krafka::producer::DeliveryHandle, Instant, usize)>();
    let collector = tokio::spawn(async move {
        let mut futs = FuturesUnordered::new();
        let mut lat: Vec<u32> = Vec::with_capacity(n as usize);
        let (mut ok, mut failed, mut bytes) = (0u64, 0u64, 0u64);
        let mut first_err = None;
        let mut open = true;
        loop {
            tokio::select! {
                m = rx.recv(), if open => match m {
                    Some((h, sent, len)) => futs.push(async move { (h.await, sent, len) }),
                    None => open = false,
                },
                Some((r, sent, len)) = futs.next() => {
                    lat.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    match r {
                        Ok(_) => { ok += 1; bytes += len as u64; }
                        Err(e) => { failed += 1; first_err.get_or_insert(e.to_string()); }
                    }
                }
                else => break,
            }
        }
        (lat, ok, failed, bytes, first_err)
    });

    let start = Instant::now();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // Shared keys for the static shape, built once like the payloads.
    let static_keys: Vec<Bytes> = (0..if owned { 0 } else { keys })
        .map(|k| Bytes::from_static(format!("key-{k}").into_bytes().leak()))
        .collect();
    let mut key_buf = String::new();
    for i in 0..n {
        if tput > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / tput);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let p = if payloads.len() == 1 {
            &payloads[0]
        } else {
            &payloads[(rng.next() % payloads.len() as u64) as usize]
        };
        let mut record = if owned {
            // Fresh buffers per record, as an application's serializer makes.
            let mut r = Record::new(topic.clone(), p.to_vec());
            if keys > 0 {
                use std::fmt::Write;
                key_buf.clear();
                let _ = write!(key_buf, "key-{}", i % keys);
                r = r.key(key_buf.as_bytes().to_vec());
            }
            r
        } else {
            Record::new(topic.clone(), p.clone())
        };
        if keys > 0 && !owned {
            record = record.key(static_keys[(i % keys) as usize].clone());
        }
        let len = record.value.as_ref().map_or(0, |v| v.len());
        let sent = Instant::now();
        match producer.enqueue(record).await {
            Ok(h) => {
                let _ = tx.send((h, sent, len));
            }
            Err(e) => usage(&format!("enqueue: {e}")),
        }
    }
    drop(tx);
    let _ = producer.flush().await;
    let (mut lat, ok, failed, bytes, first_err) = collector.await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let _ = producer.close().await;
    lat.sort_unstable();
    let pct = |q: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((q * lat.len() as f64) as usize).min(lat.len() - 1)] as f64 / 1000.0
        }
    };
    let avg = lat.iter().map(|&v| v as f64).sum::<f64>() / lat.len().max(1) as f64 / 1000.0;
    let max = lat.last().copied().unwrap_or(0) as f64 / 1000.0;
    let rps = ok as f64 / elapsed;
    let mbps = bytes as f64 / elapsed / 1048576.0;
    eprintln!(
        "{ok} records sent, {rps:.6} records/sec ({mbps:.2} MB/sec), {avg:.2} ms avg latency, {max:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        pct(0.5) as u64, pct(0.95) as u64, pct(0.99) as u64, pct(0.999) as u64
    );
    if let Some(e) = first_err {
        eprintln!("{failed} records failed; first error: {e}");
    }
    println!(
        "{{\"client\":\"krafka\",\"records\":{n},\"delivered\":{ok},\"failed\":{failed},\"elapsed_s\":{elapsed:.3},\"records_per_s\":{rps:.1},\"mb_per_s\":{mbps:.3},\"latency_ms\":{{\"avg\":{avg:.3},\"max\":{max:.3},\"p50\":{:.3},\"p95\":{:.3},\"p99\":{:.3},\"p999\":{:.3}}}}}",
        pct(0.5), pct(0.95), pct(0.99), pct(0.999)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
