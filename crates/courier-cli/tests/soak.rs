//! Memory over a long run through a broker restart (issue 19): `courier perf` at a fixed
//! rate into a broker of its own, which is restarted half way; the command's resident
//! memory is sampled from `/proc` every half second.
//!
//! Checked: every record is delivered (the summary and the log agree); after the
//! restart, once the backlog has drained, RSS settles back to within 10 % of what it was
//! before the restart; and it does not grow from the first sixth of the run to its end
//! by more than 10 %. (A few MB of slack on each, for glibc's arenas, which move by
//! that much from one run to the next.)
//!
//! CI runs 90 s at 10,000 records/s. The full soak of issue 19 is 30 minutes at 20,000
//! records/s:
//!
//! ```text
//! COURIER_SOAK_SECS=1800 COURIER_SOAK_RATE=20000 cargo test --release -p courier-cli \
//!     --test soak -- --nocapture
//! ```
//!
//! It prints the RSS timeline (one line per 10 s) and the figures docs/BENCHMARKS.md
//! records.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_testkit::{KafkaCluster, TopicSpec};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of `pid` in bytes, from /proc/PID/status.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The median of the samples taken between `from` and `to` seconds into the run.
fn median(samples: &[(f64, u64)], from: f64, to: f64) -> u64 {
    let mut v: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, r)| *r)
        .collect();
    assert!(!v.is_empty(), "no RSS sample between {from} and {to} s");
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn memory_settles_after_a_broker_restart_and_does_not_grow() {
    let secs = env_u64("COURIER_SOAK_SECS", 90);
    let rate = env_u64("COURIER_SOAK_RATE", 10_000);
    let cluster = KafkaCluster::start(1).unwrap();
    let topic = cluster.unique_topic("soak");
    cluster
        .create_topic(&TopicSpec::new(&topic).partitions(6))
        .unwrap();
    let n = secs * rate;
    let child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["perf", "--topic", &topic, "--num-records", &n.to_string()])
        .args(["--record-size", "100", "--keys", "1000", "--owned"])
        .args(["--throughput", &rate.to_string(), "--summary", "json"])
        .args(["--bootstrap-server", &cluster.bootstrap()])
        .args([
            "--producer-props",
            "acks=all",
            "compression.type=lz4",
            "linger.ms=5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the courier binary");
    let pid = child.id();
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done) = (samples.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if let Some(r) = rss(pid) {
                    samples
                        .lock()
                        .unwrap()
                        .push((start.elapsed().as_secs_f64(), r));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let half = Duration::from_secs(secs / 2);
    std::thread::sleep(half);
    let broker = cluster.broker_ids().unwrap()[0];
    let restart_at = samples.lock().unwrap().last().map_or(0.0, |s| s.0);
    cluster.restart(broker).unwrap();
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let samples = samples.lock().unwrap().clone();
    let end = samples.last().map_or(0.0, |s| s.0);
    for chunk in samples.chunks(20) {
        let (t, r) = chunk[0];
        eprintln!("{t:7.1} s  {:6.1} MB", r as f64 / 1e6);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().rfind(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(summary["delivered"], n);
    let stored: i64 = cluster
        .admin()
        .offsets(&topic)
        .unwrap()
        .iter()
        .map(|(_, start, end)| end - start)
        .sum();
    assert_eq!(stored, n as i64, "the log holds every record once");

    // Windows: the first sixth's end, the tenth of the run before the restart, and the
    // last tenth (the backlog of the outage long drained by then).
    let w = (end / 10.0).max(5.0);
    let early = median(&samples, end / 6.0 - w / 2.0, end / 6.0 + w / 2.0);
    let before = median(&samples, restart_at - w, restart_at);
    let last = median(&samples, end - w, end + 1.0);
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "soak: {secs} s at {rate} records/s; RSS early {:.1} MB, before the restart {:.1} MB, \
         at the end {:.1} MB; peak {:.1} MB",
        mb(early),
        mb(before),
        mb(last),
        mb(samples.iter().map(|s| s.1).max().unwrap())
    );
    let slack = 4_000_000;
    assert!(
        last <= before + before / 10 + slack,
        "RSS did not settle after the restart: {:.1} MB before, {:.1} MB at the end",
        mb(before),
        mb(last)
    );
    assert!(
        last <= early + early / 10 + slack,
        "RSS grew over the run: {:.1} MB early, {:.1} MB at the end",
        mb(early),
        mb(last)
    );
}
