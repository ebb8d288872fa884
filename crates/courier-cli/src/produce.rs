//! `courier produce`: kcat's producer mode (`kcat -P`) on courier.
//!
//! Input follows kcat: without files, stdin is split into records at the delimiter
//! (`-D`, default newline); with files, each file is one record, unless `-l` makes
//! each of their lines a record. Empty records are skipped (kcat does the same) unless
//! `-Z` sends them as null values. `-K` splits each record into key and value at the
//! first key delimiter; a record without one has the fixed key (`-k`) or none.
//!
//! A reader thread hands records to the producer through a small bounded channel, and
//! the producer's `buffer.memory` makes the sender wait while the brokers are behind,
//! so memory stays bounded whatever the input size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::{Persistence, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::input::{parse_delimiter, read_record, split_key};
use crate::props;
use crate::stats::{cpu_time, Failures, Histogram, Summary};
use crate::SummaryFormat;

/// Options of `courier produce` (kcat's producer flags).
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Bootstrap broker(s), host[:port],... (kcat -b).
    #[arg(short = 'b', long = "brokers", value_name = "BROKERS")]
    pub brokers: Option<String>,

    /// Topic to produce to.
    #[arg(short = 't', long = "topic")]
    pub topic: String,

    /// Partition; -1 lets the partitioner choose (murmur2 of the key, sticky for
    /// unkeyed records).
    #[arg(short = 'p', long = "partition", default_value_t = -1, allow_negative_numbers = true)]
    pub partition: i32,

    /// Fixed key for every record; a key found with -K takes precedence.
    #[arg(short = 'k', long = "key")]
    pub key: Option<String>,

    /// Key delimiter: each record is split into key and value at its first
    /// occurrence (same escapes as -D).
    #[arg(short = 'K', long = "key-delimiter", value_name = "DELIM")]
    pub key_delimiter: Option<String>,

    /// Record delimiter for stdin and -l: text with \n, \r, \t, \0, \\ or \xNN escapes.
    #[arg(
        short = 'D',
        long = "delimiter",
        value_name = "DELIM",
        default_value = "\\n"
    )]
    pub delimiter: String,

    /// Header name=value added to every record (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,

    /// Producer property prop=value, any courier key or librdkafka/Java alias
    /// (repeatable; unknown keys are errors).
    #[arg(short = 'X', long = "property", value_name = "PROP=VALUE")]
    pub properties: Vec<String>,

    /// Compression codec: none, gzip, snappy, lz4 (sets compression.type).
    #[arg(short = 'z', long = "compression", value_name = "CODEC")]
    pub compression: Option<String>,

    /// Each line of the given file(s) is a record, as with stdin.
    #[arg(short = 'l', long = "lines")]
    pub lines: bool,

    /// Send empty records (or empty keys/values with -K) as null instead of skipping.
    #[arg(short = 'Z', long = "null-empty")]
    pub null_empty: bool,

    /// Stop after this many records.
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,

    /// Print each delivery report (-v: failures and the totals; -vv: every record).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print a summary at the end: json (one object on stdout) or text (stderr).
    #[arg(long = "summary", value_enum)]
    pub summary: Option<SummaryFormat>,

    /// Files to read; stdin when none. Without -l each file is one record.
    pub files: Vec<PathBuf>,
}

enum Item {
    Record {
        key: Option<Bytes>,
        value: Option<Bytes>,
    },
    InputError(String),
}

#[derive(Default)]
struct Acc {
    delivered: u64,
    bytes: u64,
    possibly_persisted: u64,
    latency: Histogram,
    failures: Failures,
}

struct Layout {
    delim: Vec<u8>,
    key_delim: Option<Vec<u8>>,
    fixed_key: Option<Bytes>,
    null_empty: bool,
    count: Option<u64>,
}

impl Layout {
    /// kcat's rules: skip empty records (unless -Z), split the key at -K, fall back to
    /// the fixed key.
    fn record(&self, raw: &[u8]) -> Option<Item> {
        if raw.is_empty() && !self.null_empty {
            return None;
        }
        let nullable = |b: &[u8]| -> Option<Bytes> {
            if b.is_empty() && self.null_empty {
                None
            } else {
                Some(Bytes::copy_from_slice(b))
            }
        };
        let (key, value) = match self.key_delim.as_deref().and_then(|d| split_key(raw, d)) {
            Some((k, v)) => (nullable(k), nullable(v)),
            None => (self.fixed_key.clone(), nullable(raw)),
        };
        let key = key.or_else(|| self.fixed_key.clone());
        Some(Item::Record { key, value })
    }
}

/// Streams records from `files` (or stdin) into `tx` until the input ends, the
/// count is reached or the receiver is gone.
fn read_input(files: Vec<PathBuf>, lines: bool, layout: Layout, tx: mpsc::Sender<Item>) {
    let mut sent = 0u64;
    let mut send = |item: Item| -> bool {
        if matches!(item, Item::Record { .. }) {
            sent += 1;
        }
        tx.blocking_send(item).is_ok() && layout.count.is_none_or(|c| sent < c)
    };
    let stream = |r: &mut dyn BufRead, what: &str, send: &mut dyn FnMut(Item) -> bool| {
        let mut buf = Vec::new();
        loop {
            match read_record(r, &layout.delim, &mut buf) {
                Ok(false) => return true,
                Ok(true) => {
                    if let Some(item) = layout.record(&buf) {
                        if !send(item) {
                            return false;
                        }
                    }
                }
                Err(e) => return send(Item::InputError(format!("reading {what}: {e}"))),
            }
        }
    };
    if layout.count == Some(0) {
        return;
    }
    if files.is_empty() {
        let stdin = std::io::stdin();
        let mut lock = BufReader::with_capacity(256 * 1024, stdin.lock());
        stream(&mut lock, "stdin", &mut send);
        return;
    }
    for path in files {
        let shown = path.display().to_string();
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if !send(Item::InputError(format!("cannot open {shown}: {e}"))) {
                    return;
                }
                continue;
            }
        };
        if lines {
            let mut r = BufReader::with_capacity(256 * 1024, file);
            if !stream(&mut r, &shown, &mut send) {
                return;
            }
        } else {
            // kcat: the whole file is one record; empty files are skipped.
            let mut content = Vec::new();
            let item = match file.read_to_end(&mut content) {
                Ok(_) if content.is_empty() && !layout.null_empty => continue,
                Ok(_) => Item::Record {
                    key: layout.fixed_key.clone(),
                    value: (!content.is_empty()).then(|| Bytes::from(content)),
                },
                Err(e) => Item::InputError(format!("reading {shown}: {e}")),
            };
            if !send(item) {
                return;
            }
        }
    }
}

fn config(args: &ProduceArgs) -> Result<ProducerConfig, String> {
    let mut kv = Vec::new();
    if let Some(b) = &args.brokers {
        kv.push(("bootstrap.servers".to_string(), b.clone()));
    }
    if let Some(z) = &args.compression {
        kv.push(("compression.type".to_string(), z.clone()));
    }
    for p in &args.properties {
        kv.push(props::parse_kv(p).map_err(|e| format!("-X {e}"))?);
    }
    if !kv
        .iter()
        .any(|(k, _)| courier::config::canonical_key(k) == Some("bootstrap.servers"))
    {
        return Err("no brokers: give -b host:port (or -X bootstrap.servers=...)".into());
    }
    props::build(props::builder_with(ProducerConfig::builder(), &kv)?)
}

fn headers(args: &ProduceArgs) -> Result<Vec<(String, Option<Bytes>)>, String> {
    args.headers
        .iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                Ok((k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
            }
            _ => Err(format!("-H {h:?}: expected name=value")),
        })
        .collect()
}

/// Runs `courier produce`; returns the exit code.
pub fn run(args: ProduceArgs) -> i32 {
    match try_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("courier produce: {e}");
            2
        }
    }
}

fn try_run(args: ProduceArgs) -> Result<i32, String> {
    let config = config(&args)?;
    let headers = headers(&args)?;
    let layout = Layout {
        delim: parse_delimiter(&args.delimiter).map_err(|e| format!("-D {e}"))?,
        key_delim: args
            .key_delimiter
            .as_deref()
            .map(parse_delimiter)
            .transpose()
            .map_err(|e| format!("-K {e}"))?,
        fixed_key: args.key.clone().map(Bytes::from),
        null_empty: args.null_empty,
        count: args.count,
    };
    // kcat's -1 (RD_KAFKA_PARTITION_UA) is the only negative value with a meaning.
    let partition = match args.partition {
        -1 => None,
        p if p >= 0 => Some(p),
        p => {
            return Err(format!(
                "-p {p}: a partition is a number from 0, or -1 to let the partitioner choose"
            ))
        }
    };
    let (tx, rx) = mpsc::channel(1024);
    let files = args.files.clone();
    let lines = args.lines;
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || read_input(files, lines, layout, tx))
        .map_err(|e| format!("starting the input thread: {e}"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let outcome = rt.block_on(produce_all(&args, config, headers, partition, rx))?;
    let summary = Summary {
        records: outcome.records,
        delivered: outcome.acc.delivered,
        bytes: outcome.acc.bytes,
        elapsed: start.elapsed(),
        latency: outcome.acc.latency.clone(),
        failures: outcome.acc.failures.clone(),
        cpu: cpu_time().saturating_sub(cpu0),
    };
    drop(rt);

    for e in &outcome.input_errors {
        eprintln!("courier produce: {e}");
    }
    let failed = summary.failures.total();
    if failed > 0 {
        eprintln!(
            "courier produce: {failed} of {} records failed (not acknowledged), by error:",
            summary.records
        );
        for line in summary.failures.report_lines() {
            eprintln!("{line}");
        }
        if outcome.acc.possibly_persisted > 0 {
            eprintln!(
                "  {} of them may be in the log anyway (possibly persisted): check the topic \
                 before sending them again",
                outcome.acc.possibly_persisted
            );
        }
    }
    if let Some(e) = &outcome.stopped {
        eprintln!("courier produce: the producer stopped: {e}");
    }
    // Every record read must have a report; a gap would be a courier bug, and must
    // never pass for success.
    let unreported = summary.unreported();
    if unreported > 0 {
        eprintln!(
            "courier produce: {unreported} records got no delivery report (an internal error \
             in courier, please report it)"
        );
    }
    if outcome.interrupted {
        eprintln!(
            "courier produce: interrupted; {} records were read before that",
            summary.records
        );
    }
    match args.summary {
        Some(SummaryFormat::Json) => {
            let mut v = summary.to_json();
            v["possibly_persisted"] = outcome.acc.possibly_persisted.into();
            v["input_errors"] = outcome.input_errors.len().into();
            println!("{v}");
        }
        Some(SummaryFormat::Text) => eprintln!("{}", text_summary(&summary)),
        None if args.verbose > 0 => eprintln!("{}", text_summary(&summary)),
        None => {}
    }
    Ok(if outcome.interrupted {
        130
    } else if failed > 0
        || !outcome.input_errors.is_empty()
        || outcome.stopped.is_some()
        || unreported > 0
    {
        1
    } else {
        0
    })
}

fn text_summary(s: &Summary) -> String {
    format!(
        "% {} of {} records delivered in {:.3} s ({:.1} records/s, {:.2} MB/s); latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        s.delivered,
        s.records,
        s.elapsed.as_secs_f64(),
        s.records_per_s(),
        s.mb_per_s(),
        s.latency.quantile_ms(0.5),
        s.latency.quantile_ms(0.99),
        s.latency.quantile_ms(0.999),
        s.latency.max_ms(),
    )
}

struct Outcome {
    records: u64,
    acc: Acc,
    input_errors: Vec<String>,
    interrupted: bool,
    /// The producer's fatal error, if it stopped on one.
    stopped: Option<String>,
}

async fn produce_all(
    args: &ProduceArgs,
    config: ProducerConfig,
    headers: Vec<(String, Option<Bytes>)>,
    partition: Option<i32>,
    mut rx: mpsc::Receiver<Item>,
) -> Result<Outcome, String> {
    let producer = Producer::new(config).map_err(|e| e.to_string())?;
    let topic: Arc<str> = args.topic.as_str().into();
    let acc = Arc::new(Mutex::new(Acc::default()));
    let mut records = 0u64;
    let mut input_errors = Vec::new();
    let mut interrupted = false;
    let verbose = args.verbose;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut ctrl_c => { interrupted = true; break; }
            item = rx.recv() => item,
        };
        let (key, value) = match item {
            None => break,
            Some(Item::InputError(e)) => {
                input_errors.push(e);
                continue;
            }
            Some(Item::Record { key, value }) => (key, value),
        };
        records += 1;
        let len = value.as_ref().map_or(0, Bytes::len) as u64;
        let record = ProducerRecord {
            topic: topic.clone(),
            partition,
            key,
            value,
            headers: headers.clone(),
            timestamp_ms: None,
        };
        let sent = Instant::now();
        let acc2 = acc.clone();
        let result = producer
            .produce_with_callback(record, move |r| {
                let mut a = acc2.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(md) => {
                        a.delivered += 1;
                        a.bytes += len;
                        a.latency.record(sent.elapsed());
                        if verbose >= 2 {
                            eprintln!(
                                "% delivered to {} [{}] at offset {}",
                                md.topic, md.partition, md.offset
                            );
                        }
                    }
                    Err(e) => {
                        if verbose >= 1 {
                            eprintln!("% delivery failed: {e}");
                        }
                        if e.persistence() == Persistence::PossiblyPersisted {
                            a.possibly_persisted += 1;
                        }
                        a.failures.add(&e);
                    }
                }
            })
            .await;
        if let Err(e) = result {
            let mut a = acc.lock().unwrap_or_else(|e| e.into_inner());
            a.failures.add(&e);
        }
    }
    // Stop the reader (it may be blocked on a full channel) before waiting.
    drop(rx);
    let flushed = producer.flush().await;
    let closed = producer.close(Duration::from_secs(30)).await;
    let stopped = flushed.and(closed).err().map(|e| e.to_string());
    let acc = std::mem::take(&mut *acc.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Outcome {
        records,
        acc,
        input_errors,
        interrupted,
        stopped,
    })
}
