//! `courier perf`: Kafka's `kafka-producer-perf-test` (`ProducerPerformance`) on
//! courier, with the same flags and output lines, plus the client's CPU time.
//!
//! Like the Java tool: `--record-size` sends one payload of random uppercase letters
//! for every record; `--payload-file` picks a random entry of the file (split at
//! `--payload-delimiter`) for each record; latency runs from the send call to the
//! delivery report, so it includes time spent waiting for `buffer.memory`; a progress
//! line is printed every `--reporting-interval` ms from the delivery reports.
//!
//! Java's tool sends unkeyed records whose payloads are never copied. Applications send
//! keyed records whose values were just serialized; `--keys N` (keys `key-0` ..
//! `key-{N-1}`, in turn, placed by murmur2) and `--owned` (key and value built into fresh
//! buffers for every record, dropped by the producer once encoded) measure that shape,
//! and `--api future` awaits a delivery future per record instead of a callback.
//!
//! `--transaction-records N` (with `transactional.id` in the producer properties) sends
//! the records in transactions of N: `init_transactions` once, then `begin_transaction`,
//! N records, `commit_transaction` (which waits until each is acknowledged), and so on;
//! the last transaction holds what is left. Throughput and CPU then include the commits.
//! Java's tool has `--transaction-duration-ms` (commit by time) instead; a fixed count is
//! what `perf/java-keyed` does on the Java side, so both commit at the same records.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::{DeliveryHandler, Producer, ProducerConfig, ProducerRecord};

use crate::observe::{MetricsArgs, Observer};
use crate::props;
use crate::stats::{cpu_time, peak_rss_bytes, Failures, Histogram, Summary, Tag};
use crate::SummaryFormat;

/// Options of `courier perf` (kafka-producer-perf-test's flags).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("payload").required(true).args(["record_size", "payload_file"])))]
pub struct PerfArgs {
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,

    /// Number of records to produce.
    #[arg(long = "num-records")]
    pub num_records: u64,

    /// Size of each record in bytes (one random payload of uppercase letters).
    #[arg(long = "record-size")]
    pub record_size: Option<usize>,

    /// File of payloads, split at --payload-delimiter; each record takes a random one.
    #[arg(long = "payload-file")]
    pub payload_file: Option<String>,

    /// Delimiter of --payload-file (escapes as in `courier produce -D`).
    #[arg(long = "payload-delimiter", default_value = "\\n")]
    pub payload_delimiter: String,

    /// Throttle to about this many records/s; -1 for no limit.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub throughput: f64,

    /// Producer properties k=v (courier keys or Java/librdkafka aliases).
    #[arg(long = "producer-props", alias = "command-property", num_args = 1.., value_name = "PROP=VALUE")]
    pub producer_props: Vec<String>,

    /// Producer properties file (k=v lines); --producer-props override it.
    #[arg(
        long = "producer.config",
        alias = "command-config",
        value_name = "FILE"
    )]
    pub producer_config: Option<String>,

    /// Bootstrap servers; takes precedence over bootstrap.servers in the properties.
    #[arg(long = "bootstrap-server")]
    pub bootstrap_server: Option<String>,

    /// Milliseconds between progress lines.
    #[arg(long = "reporting-interval", default_value_t = 5000)]
    pub reporting_interval: u64,

    /// Also print the summary as one JSON object on stdout (progress and text then go
    /// to stderr).
    #[arg(long, value_enum)]
    pub summary: Option<SummaryFormat>,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Keyed records: keys `key-0` .. `key-{N-1}` in turn, partitioned by murmur2 like
    /// Java's (0: unkeyed, as Java's tool).
    #[arg(long, default_value_t = 0)]
    pub keys: u64,

    /// Build each record's key and value into buffers of its own, as after serializing
    /// an application's object, instead of sharing one static payload.
    #[arg(long)]
    pub owned: bool,

    /// How each record's outcome is received: a callback (as Java's tool) or a
    /// delivery future per record, awaited by a second task.
    #[arg(long, value_enum, default_value_t = PerfApi::Callback)]
    pub api: PerfApi,

    /// Send the records in transactions of this many (needs transactional.id in
    /// --producer-props); the summary counts the transactions committed.
    #[arg(long = "transaction-records", value_parser = clap::value_parser!(u64).range(1..))]
    pub transaction_records: Option<u64>,
}

/// The properties `courier perf --transaction-records` takes beside the others. The
/// shared property parser refuses them until `courier produce` runs transactions; the
/// perf loop does, so it sets them itself.
const TXN_KEYS: [&str; 2] = ["transactional.id", "transaction.timeout.ms"];

/// How `courier perf` receives delivery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PerfApi {
    /// `Producer::produce_with_callback`.
    Callback,
    /// `Producer::produce`, each future awaited in send order by another task.
    Future,
    /// `Producer::produce_tagged`: one `DeliveryHandler` for every record, the send time
    /// and value length packed into each record's tag.
    Tagged,
}

/// Java's window and totals, fed from the delivery reports.
struct PerfStats {
    out_json: bool,
    interval: Duration,
    delivered: u64,
    bytes: u64,
    latency: Histogram,
    failures: Failures,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_lat_sum: Duration,
    window_lat_max: Duration,
}

impl PerfStats {
    /// Counts a delivered record; `now` is the clock reading its latency came from
    /// (one read per record, as Java's tool does).
    fn record(&mut self, latency: Duration, bytes: u64, now: Instant) {
        self.delivered += 1;
        self.bytes += bytes;
        self.latency.record(latency);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_lat_sum += latency;
        self.window_lat_max = self.window_lat_max.max(latency);
        if now.saturating_duration_since(self.window_start) >= self.interval {
            self.print_window();
        }
    }

    fn print_window(&mut self) {
        let secs = self.window_start.elapsed().as_secs_f64();
        let line = format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            self.window_count as f64 / secs,
            self.window_bytes as f64 / secs / (1024.0 * 1024.0),
            self.window_lat_sum.as_secs_f64() * 1000.0 / self.window_count.max(1) as f64,
            self.window_lat_max.as_secs_f64() * 1000.0,
        );
        print_line(self.out_json, &line);
        self.window_start = Instant::now();
        self.window_count = 0;
        self.window_bytes = 0;
        self.window_lat_sum = Duration::ZERO;
        self.window_lat_max = Duration::ZERO;
    }
}

/// Progress and text go to stdout like Java's tool, or to stderr when stdout carries
/// the JSON summary.
fn print_line(to_stderr: bool, line: &str) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn payloads(args: &PerfArgs) -> Result<Vec<Bytes>, String> {
    if let Some(size) = args.record_size {
        // Java: one payload of random uppercase letters, reused for every record.
        let mut rng = XorShift::seeded();
        let payload: Vec<u8> = (0..size).map(|_| b'A' + (rng.next() % 26) as u8).collect();
        return Ok(vec![Bytes::from_static(payload.leak())]);
    }
    let path = args.payload_file.as_deref().expect("clap requires one");
    let delim = crate::input::parse_delimiter(&args.payload_delimiter)
        .map_err(|e| format!("--payload-delimiter {e}"))?;
    // The payloads live as long as the run, like Java's `byte[][]` and franz-go's
    // slices: a record borrows one, and cloning a static `Bytes` touches no reference
    // count (a shared count bounced between the sending and the delivering thread is
    // a cost of the benchmark, not of producing).
    let data: &'static [u8] = std::fs::read(path)
        .map_err(|e| format!("cannot read --payload-file {path}: {e}"))?
        .leak();
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (item, next) = match crate::input::split_key(rest, &delim) {
            Some((a, b)) => (a, b),
            None => (rest, &[][..]),
        };
        if !item.is_empty() {
            out.push(Bytes::from_static(item));
        }
        rest = next;
    }
    if out.is_empty() {
        return Err(format!("--payload-file {path} holds no payloads"));
    }
    Ok(out)
}

/// A small PRNG for payload choice: no dependency, and cheap per record.
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from the clock.
    pub fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        XorShift(nanos | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn config(args: &PerfArgs) -> Result<ProducerConfig, String> {
    let mut kv = match &args.producer_config {
        Some(f) => props::read_properties_file(f)?,
        None => Vec::new(),
    };
    for p in &args.producer_props {
        kv.push(props::parse_kv(p).map_err(|e| format!("--producer-props {e}"))?);
    }
    if let Some(b) = &args.bootstrap_server {
        kv.push(("bootstrap.servers".into(), b.clone()));
    }
    if !kv
        .iter()
        .any(|(k, _)| courier::config::canonical_key(k) == Some("bootstrap.servers"))
    {
        return Err(
            "no brokers: give --bootstrap-server host:port (or bootstrap.servers in \
             --producer-props)"
                .into(),
        );
    }
    // Without --transaction-records the shared parser refuses transactional settings
    // (every record would fail outside a transaction); with it, they are set here.
    let (txn, kv): (Vec<_>, Vec<_>) = match args.transaction_records {
        Some(_) => kv
            .into_iter()
            .partition(|(k, _)| TXN_KEYS.contains(&k.as_str())),
        None => (Vec::new(), kv),
    };
    if args.transaction_records.is_some() && !txn.iter().any(|(k, _)| k == "transactional.id") {
        return Err("--transaction-records needs a transactional.id: add \
             --producer-props transactional.id=NAME"
            .into());
    }
    let mut builder = props::builder_with(ProducerConfig::builder(), &kv)?;
    for (k, v) in &txn {
        builder = builder
            .set(k, v)
            .map_err(|e| format!("property {k}: {e}"))?;
    }
    props::build(builder)
}

/// Runs `courier perf`; returns the exit code.
pub fn run(args: PerfArgs) -> i32 {
    match try_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("courier perf: {e}");
            2
        }
    }
}

fn try_run(args: PerfArgs) -> Result<i32, String> {
    let config = config(&args)?;
    let payloads = payloads(&args)?;
    let json = matches!(args.summary, Some(SummaryFormat::Json));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    // Lives for the run: each record's callback borrows it, as each callback object of
    // Java's tool references its `Stats`, without a reference count bounced between
    // the sending and the delivering thread per record.
    let stats: &'static Mutex<PerfStats> = Box::leak(Box::new(Mutex::new(PerfStats {
        out_json: json,
        interval: Duration::from_millis(args.reporting_interval.max(1)),
        delivered: 0,
        bytes: 0,
        latency: Histogram::new(),
        failures: Failures::default(),
        window_start: Instant::now(),
        window_count: 0,
        window_bytes: 0,
        window_lat_sum: Duration::ZERO,
        window_lat_max: Duration::ZERO,
    })));
    let cpu0 = cpu_time();
    let start = Instant::now();
    let (stopped, metrics_error, transactions) =
        rt.block_on(send_all(&args, config, payloads, stats, start))?;
    let elapsed = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    drop(rt);

    let st = stats.lock().unwrap_or_else(|e| e.into_inner());
    let summary = Summary {
        records: args.num_records,
        delivered: st.delivered,
        bytes: st.bytes,
        elapsed,
        latency: st.latency.clone(),
        failures: st.failures.clone(),
        cpu,
        peak_rss: peak_rss_bytes(),
    };
    let h = &summary.latency;
    // Java's final line (integer percentiles, as Java prints them).
    print_line(
        json,
        &format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            summary.delivered,
            summary.records_per_s(),
            summary.mb_per_s(),
            h.mean_ms(),
            h.max_ms(),
            h.quantile_ms(0.5) as u64,
            h.quantile_ms(0.95) as u64,
            h.quantile_ms(0.99) as u64,
            h.quantile_ms(0.999) as u64,
        ),
    );
    print_line(
        json,
        &format!(
            "cpu: {:.3} s user+system, {:.3} s per million records; peak RSS {:.1} MB.",
            summary.cpu.as_secs_f64(),
            summary.cpu_s_per_million(),
            summary.peak_rss as f64 / 1e6
        ),
    );
    if let Some(per) = args.transaction_records {
        print_line(
            json,
            &format!("transactions: {transactions} committed, up to {per} records each."),
        );
    }
    let failed = summary.failures.total();
    if failed > 0 {
        eprintln!("courier perf: {failed} records failed, by error:");
        for line in summary.failures.report_lines() {
            eprintln!("{line}");
        }
    }
    if let Some(e) = &stopped {
        eprintln!("courier perf: the producer stopped: {e}");
    }
    if let Some(e) = &metrics_error {
        eprintln!("courier perf: {e}");
    }
    let unreported = summary.unreported();
    if unreported > 0 {
        eprintln!(
            "courier perf: {unreported} records got no delivery report (an internal error in \
             courier, please report it)"
        );
    }
    if json {
        let mut out = summary.to_json();
        if let Some(per) = args.transaction_records {
            out["transactions"] = serde_json::json!(transactions);
            out["transaction_records"] = serde_json::json!(per);
        }
        println!("{out}");
    }
    Ok(
        if failed > 0 || stopped.is_some() || unreported > 0 || metrics_error.is_some() {
            1
        } else {
            0
        },
    )
}

async fn send_all(
    args: &PerfArgs,
    config: ProducerConfig,
    payloads: Vec<Bytes>,
    stats: &'static Mutex<PerfStats>,
    start: Instant,
) -> Result<(Option<String>, Option<String>, u64), String> {
    let producer = Producer::new(config).map_err(|e| e.to_string())?;
    let mut transactions = 0u64;
    let mut txn_error: Option<String> = None;
    if args.transaction_records.is_some() {
        txn_step(&producer, TxnStep::Init).await?;
        txn_step(&producer, TxnStep::Begin).await?;
    }
    let observer = Observer::start(&args.metrics, &producer).await?;
    let trimmer = crate::memory::spawn_trimmer(producer.clone());
    let topic: Arc<str> = args.topic.as_str().into();
    let mut rng = XorShift::seeded();
    let n = args.num_records;
    // Shared keys for the static shape: built once, like the payloads.
    let static_keys: Vec<Bytes> = if args.owned {
        Vec::new()
    } else {
        (0..args.keys)
            .map(|k| Bytes::from_static(format!("key-{k}").into_bytes().leak()))
            .collect()
    };
    // With --api future: the futures go, in send order, to a task that awaits each one.
    let (futures_tx, waiter) = if args.api == PerfApi::Future {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(courier::DeliveryFuture, Instant, u64)>();
        let waiter = tokio::spawn(async move {
            while let Some((f, sent, len)) = rx.recv().await {
                let r = f.await;
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(_) => {
                        let now = Instant::now();
                        s.record(now.saturating_duration_since(sent), len, now)
                    }
                    Err(e) => s.failures.add(&e),
                }
            }
        });
        (Some(tx), Some(waiter))
    } else {
        (None, None)
    };
    let handler = DeliveryHandler::new(move |tag, r| {
        let (sent, len) = Tag::unpack(tag);
        let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(_) => {
                let now = Instant::now();
                let sent = start + sent;
                s.record(now.saturating_duration_since(sent), len, now)
            }
            Err(e) => s.failures.add(&e),
        }
    });
    let mut key_buf = String::new();
    for i in 0..n {
        // A transaction boundary before record i (at the top: the API paths below
        // `continue`).
        if let Some(per) = args.transaction_records {
            if i > 0 && i % per == 0 {
                let next = txn_step(&producer, TxnStep::Commit)
                    .await
                    .and(txn_step(&producer, TxnStep::Begin).await);
                if let Err(e) = next {
                    txn_error = Some(e);
                    break;
                }
                transactions += 1;
            }
        }
        if args.throughput > 0.0 {
            // Java's ThroughputThrottler: sleep while ahead of the target rate.
            let due = start + Duration::from_secs_f64(i as f64 / args.throughput);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let payload = if payloads.len() == 1 {
            &payloads[0]
        } else {
            &payloads[(rng.next() % payloads.len() as u64) as usize]
        };
        let (key, value) = if args.owned {
            // What an application hands over after serializing: fresh buffers.
            let key = (args.keys > 0).then(|| {
                use std::fmt::Write;
                key_buf.clear();
                let _ = write!(key_buf, "key-{}", i % args.keys);
                Bytes::from(key_buf.as_bytes().to_vec())
            });
            (key, Bytes::from(payload.to_vec()))
        } else {
            let key = (args.keys > 0).then(|| static_keys[(i % args.keys) as usize].clone());
            (key, payload.clone())
        };
        let len = value.len() as u64;
        let record = ProducerRecord {
            topic: topic.clone(),
            partition: None,
            key,
            value: Some(value),
            headers: Vec::new(),
            timestamp_ms: None,
        };
        let sent = Instant::now();
        if let Some(tx) = &futures_tx {
            match producer.produce(record).await {
                Ok(f) => {
                    let _ = tx.send((f, sent, len));
                }
                Err(e) => stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .failures
                    .add(&e),
            }
            continue;
        }
        if args.api == PerfApi::Tagged {
            if let Some(tag) = Tag::pack(sent.saturating_duration_since(start), len) {
                if let Err(e) = producer.produce_tagged(record, &handler, tag).await {
                    stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .failures
                        .add(&e);
                }
                continue;
            }
        }
        let st = stats;
        let r = producer
            .produce_with_callback(record, move |r| {
                let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(_) => {
                        let now = Instant::now();
                        s.record(now.saturating_duration_since(sent), len, now)
                    }
                    Err(e) => s.failures.add(&e),
                }
            })
            .await;
        if let Err(e) = r {
            stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .failures
                .add(&e);
        }
    }
    if args.transaction_records.is_some() && txn_error.is_none() && n > 0 {
        match txn_step(&producer, TxnStep::Commit).await {
            Ok(()) => transactions += 1,
            Err(e) => txn_error = Some(e),
        }
    }
    drop(futures_tx);
    if let Some(w) = waiter {
        let _ = w.await;
    }
    // A producer that stopped on a fatal error has failed every pending record with it
    // (they are counted); say why it stopped, once.
    let flushed = producer.flush().await;
    let closed = producer.close(Duration::from_secs(30)).await;
    trimmer.abort();
    let metrics_error = observer.finish(&producer.metrics()).err();
    let stopped = txn_error.or_else(|| flushed.and(closed).err().map(|e| e.to_string()));
    Ok((stopped, metrics_error, transactions))
}

/// A transactional call of the perf loop.
#[derive(Debug, Clone, Copy)]
enum TxnStep {
    Init,
    Begin,
    Commit,
}

/// Makes the call, again while it times out at `max.block.ms` and is still under way
/// (retriable, as the Java client's `TimeoutException`); any other error ends the run.
async fn txn_step(producer: &Producer, step: TxnStep) -> Result<(), String> {
    loop {
        let r = match step {
            TxnStep::Init => producer.init_transactions().await,
            TxnStep::Begin => producer.begin_transaction().await,
            TxnStep::Commit => producer.commit_transaction().await,
        };
        match r {
            Err(e) if e.is_retriable() => continue,
            r => return r.map_err(|e| e.to_string()),
        }
    }
}
