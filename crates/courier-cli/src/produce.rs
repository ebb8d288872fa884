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
//! so memory stays bounded whatever the input size. Records cross the channel in
//! batches: up to [`HANDOFF_RECORDS`], and never held back once the reader has nothing
//! more buffered (the next read could block on a slow stdin), so a line typed on a
//! terminal is sent at once while a file costs one hand-off, and at most one wake-up,
//! per batch instead of per record (issue 16).
//!
//! `--failed-out` and `--uncertain-out` write the records that failed back in the
//! input's format (see [`crate::resend`]), from a thread of their own: delivery callbacks
//! run on the producer's driver and must not wait for a disk (or a pipe).
//!
//! With `-X transactional.id=ID --transaction-records N` the records go in transactions
//! of N (see [`txn`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use courier::{
    DeliveryHandler, DeliveryResult, Persistence, Producer, ProducerConfig, ProducerRecord,
};
use tokio::sync::mpsc;

use crate::input::{parse_delimiter, read_record, split_key};
use crate::observe::{MetricsArgs, Observer};
use crate::props;
use crate::resend::{Dest, Reorder, Sink};
use crate::stats::{cpu_time, peak_rss_bytes, Failures, Histogram, Summary, Tag};
use crate::SummaryFormat;

mod txn;

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

    /// Compression codec: none, gzip, snappy, lz4, zstd (sets compression.type; levels with
    /// -X compression.level=N).
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

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Write each record that failed and is not in the log (its error says not
    /// persisted) to FILE, as it was read: key, key delimiter, value, record delimiter.
    /// The same command with FILE as its input (stdin or -l) sends exactly those
    /// records again. Records are written in input order, which keeps each key's order:
    /// a failed record waits in memory until every record read before it has its
    /// report. FILE is created (emptied) before anything is sent, so an empty FILE
    /// after the run means nothing needs resending. Needs delimited input: stdin, or
    /// files with -l.
    #[arg(long = "failed-out", value_name = "FILE")]
    pub failed_out: Option<PathBuf>,

    /// Like --failed-out, for the records that failed but may be in the log anyway
    /// (possibly persisted: UNRESOLVED and the like). Never the same records as
    /// --failed-out: check the topic before sending these again, or accept duplicates.
    #[arg(long = "uncertain-out", value_name = "FILE")]
    pub uncertain_out: Option<PathBuf>,

    /// Send the input in transactions of N records (needs -X transactional.id=ID).
    ///
    /// Each transaction is committed before the next begins (the last at the end of
    /// input), so that read_committed consumers see every record exactly once. One
    /// running producer per transactional.id: a second one fences the first. A
    /// transaction that fails abortably (a record refused, the commit refused) is
    /// aborted and its records are sent again, up to --transaction-attempts times; the
    /// open transaction's records are held in memory for that, so N bounds that
    /// memory. Ctrl-C or SIGTERM aborts the open transaction
    /// (committed ones stay). The N records of a transaction must arrive within
    /// transaction.timeout.ms (default 60000), or the coordinator aborts it. With
    /// --failed-out, the records of a transaction that finally failed are written there
    /// (none of them is visible at read_committed).
    #[arg(long = "transaction-records", value_name = "N")]
    pub transaction_records: Option<u64>,

    /// How many times one transaction is sent at most [default: 5].
    ///
    /// A transaction is aborted between two attempts. Also how many times a
    /// transactional call that timed out (max.block.ms) is made. Only with
    /// --transaction-records.
    #[arg(long = "transaction-attempts", value_name = "N")]
    pub transaction_attempts: Option<u32>,

    /// Files to read; stdin when none. Without -l each file is one record.
    pub files: Vec<PathBuf>,
}

/// `--transaction-attempts` when not given.
const DEFAULT_TRANSACTION_ATTEMPTS: u32 = 5;

/// Records per hand-off from the reader thread, at most.
const HANDOFF_RECORDS: usize = 512;

enum Item {
    Record {
        key: Option<Bytes>,
        value: Option<Bytes>,
        /// The record as read (key, key delimiter and value; without the record
        /// delimiter), for --failed-out. `key` and `value` share its bytes.
        raw: Bytes,
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

impl Acc {
    /// Counts one record's report.
    fn account(&mut self, r: DeliveryResult, len: u64, latency: Duration, verbose: u8) {
        match r {
            Ok(md) => {
                self.delivered += 1;
                self.bytes += len;
                self.latency.record(latency);
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
                    self.possibly_persisted += 1;
                }
                self.failures.add(&e);
            }
        }
    }
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
    fn record(&self, raw: &[u8], slab: &mut Slab) -> Option<Item> {
        if raw.is_empty() && !self.null_empty {
            return None;
        }
        // One copy of the record; key and value are slices of it.
        let raw = slab.copy(raw);
        let nullable = |b: Bytes| -> Option<Bytes> {
            if b.is_empty() && self.null_empty {
                None
            } else {
                Some(b)
            }
        };
        let split = self
            .key_delim
            .as_deref()
            .and_then(|d| split_key(&raw, d).map(|(k, _)| (k.len(), k.len() + d.len())));
        let (key, value) = match split {
            Some((key_end, value_start)) => (
                nullable(raw.slice(..key_end)),
                nullable(raw.slice(value_start..)),
            ),
            None => (self.fixed_key.clone(), nullable(raw.clone())),
        };
        let key = key.or_else(|| self.fixed_key.clone());
        Some(Item::Record { key, value, raw })
    }
}

/// Where the reader copies records: small ones into shared blocks, so that a record
/// costs no allocation of its own on this thread and no free on the producer's (which
/// copies keys and values of up to 4 KiB out at once; issue 16). Larger records get
/// their own buffer, so a long-lived one never keeps a block of others alive.
struct Slab(BytesMut);

impl Slab {
    const BLOCK: usize = 64 * 1024;
    const SMALL: usize = 4096;

    fn new() -> Self {
        Slab(BytesMut::new())
    }

    fn copy(&mut self, raw: &[u8]) -> Bytes {
        if raw.len() > Self::SMALL {
            return Bytes::copy_from_slice(raw);
        }
        if self.0.capacity() - self.0.len() < raw.len() {
            self.0 = BytesMut::with_capacity(Self::BLOCK);
        }
        self.0.extend_from_slice(raw);
        self.0.split().freeze()
    }
}

/// Collects items into batches for the channel to the producer.
struct Handoff {
    tx: mpsc::Sender<Vec<Item>>,
    batch: Vec<Item>,
    records: u64,
    count: Option<u64>,
}

impl Handoff {
    /// Adds an item; false once the receiver is gone or `-c` is reached (the batch is
    /// then sent).
    fn push(&mut self, item: Item) -> bool {
        if matches!(item, Item::Record { .. }) {
            self.records += 1;
        }
        self.batch.push(item);
        if self.count.is_some_and(|c| self.records >= c) {
            self.send();
            return false;
        }
        if self.batch.len() >= HANDOFF_RECORDS {
            return self.send();
        }
        true
    }

    /// Sends what is collected; false once the receiver is gone.
    fn send(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(HANDOFF_RECORDS));
        self.tx.blocking_send(batch).is_ok()
    }
}

/// Streams records from `files` (or stdin) into `tx` until the input ends, the
/// count is reached or the receiver is gone.
fn read_input(files: Vec<PathBuf>, lines: bool, layout: Layout, tx: mpsc::Sender<Vec<Item>>) {
    let mut out = Handoff {
        tx,
        batch: Vec::with_capacity(HANDOFF_RECORDS),
        records: 0,
        count: layout.count,
    };
    fn stream<R: Read>(
        r: &mut BufReader<R>,
        what: &str,
        layout: &Layout,
        out: &mut Handoff,
    ) -> bool {
        let mut buf = Vec::new();
        let mut slab = Slab::new();
        loop {
            match read_record(r, &layout.delim, &mut buf) {
                Ok(false) => return true,
                Ok(true) => {
                    if let Some(item) = layout.record(&buf, &mut slab) {
                        if !out.push(item) {
                            return false;
                        }
                    }
                    // Nothing more buffered: the next read may wait for input, so what
                    // is collected goes now.
                    if r.buffer().is_empty() && !out.send() {
                        return false;
                    }
                }
                Err(e) => return out.push(Item::InputError(format!("reading {what}: {e}"))),
            }
        }
    }
    if layout.count == Some(0) {
        return;
    }
    if files.is_empty() {
        let stdin = std::io::stdin();
        let mut lock = BufReader::with_capacity(256 * 1024, stdin.lock());
        if stream(&mut lock, "stdin", &layout, &mut out) {
            out.send();
        }
        return;
    }
    for path in files {
        let shown = path.display().to_string();
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if !out.push(Item::InputError(format!("cannot open {shown}: {e}"))) {
                    return;
                }
                continue;
            }
        };
        if lines {
            let mut r = BufReader::with_capacity(256 * 1024, file);
            if !stream(&mut r, &shown, &layout, &mut out) {
                return;
            }
        } else {
            // kcat: the whole file is one record; empty files are skipped.
            let mut content = Vec::new();
            let item = match file.read_to_end(&mut content) {
                Ok(_) if content.is_empty() && !layout.null_empty => continue,
                Ok(_) => {
                    let raw = Bytes::from(content);
                    Item::Record {
                        key: layout.fixed_key.clone(),
                        value: (!raw.is_empty()).then(|| raw.clone()),
                        raw,
                    }
                }
                Err(e) => Item::InputError(format!("reading {shown}: {e}")),
            };
            if !out.push(item) || !out.send() {
                return;
            }
        }
    }
    out.send();
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
    props::build(props::transactional_builder_with(
        ProducerConfig::builder(),
        &kv,
    )?)
}

/// The transactional settings, checked against each other: `transactional.id` and
/// `--transaction-records` come together or not at all.
fn transactions(
    args: &ProduceArgs,
    config: &ProducerConfig,
) -> Result<Option<txn::TxnOptions>, String> {
    let id = config.transactional_id();
    match (id, args.transaction_records) {
        (None, None) => {
            if args.transaction_attempts.is_some() {
                return Err(
                    "--transaction-attempts has no effect without --transaction-records: \
                     add -X transactional.id=ID --transaction-records N, or remove \
                     --transaction-attempts"
                        .into(),
                );
            }
            Ok(None)
        }
        (None, Some(_)) => Err("--transaction-records needs a transactional producer: add \
             -X transactional.id=ID (a name for this producer; a second run with the same id \
             fences the first), or remove --transaction-records"
            .into()),
        (Some(id), None) => Err(format!(
            "-X transactional.id={id} makes the producer transactional, and courier produce \
             then needs to know when to commit: add --transaction-records N (a transaction \
             every N records and at the end of input), or remove transactional.id"
        )),
        (Some(_), Some(0)) => Err("--transaction-records 0: a transaction holds at least 1 \
             record: give N >= 1 (e.g. 1000)"
            .into()),
        (Some(id), Some(records)) => {
            let attempts = args
                .transaction_attempts
                .unwrap_or(DEFAULT_TRANSACTION_ATTEMPTS);
            if attempts == 0 {
                return Err(
                    "--transaction-attempts 0: a transaction is sent at least once: \
                     give N >= 1 (1 sends each transaction once, never again)"
                        .into(),
                );
            }
            Ok(Some(txn::TxnOptions {
                records,
                attempts,
                id: id.to_string(),
            }))
        }
    }
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
    let transactions = transactions(&args, &config)?;
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
    // Before anything is read or sent: a file that cannot be created fails the run now.
    let writer = open_outputs(&args, &layout.delim)?
        .map(Writer::start)
        .transpose()?;
    // A few batches in the channel keep the producer fed while the reader refills.
    let (tx, rx) = mpsc::channel(4);
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
    let resend = writer.as_ref().map(|w| w.tx.clone());
    let outcome = rt.block_on(produce_all(
        &args,
        config,
        transactions.as_ref(),
        headers,
        partition,
        rx,
        resend,
    ))?;
    // Every report has been sent to the writer (the producer is closed and gone).
    let written = writer.map(Writer::finish);
    let summary = Summary {
        records: outcome.records,
        delivered: outcome.acc.delivered,
        bytes: outcome.acc.bytes,
        elapsed: start.elapsed(),
        latency: outcome.acc.latency.clone(),
        failures: outcome.acc.failures.clone(),
        cpu: cpu_time().saturating_sub(cpu0),
        peak_rss: peak_rss_bytes(),
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
        if let Some(w) = &written {
            if let Some(s) = w.failed.as_ref().filter(|s| s.written > 0) {
                eprintln!(
                    "  {} not persisted written to {} ({}): the same command with it as \
                     input sends them again",
                    s.written, s.path, s.flag
                );
            }
            if let Some(s) = w.uncertain.as_ref().filter(|s| s.written > 0) {
                eprintln!(
                    "  {} possibly persisted written to {} ({})",
                    s.written, s.path, s.flag
                );
            }
        }
    }
    // A file that could not be written is incomplete: the run must not pass for one
    // whose failures were all saved.
    let mut write_failed = false;
    if let Some(w) = &written {
        for s in [w.failed.as_ref(), w.uncertain.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(e) = &s.error {
                write_failed = true;
                eprintln!(
                    "courier produce: writing {} {}: {e}; {} record(s) that belong in it are \
                     missing from it",
                    s.flag, s.path, s.lost
                );
            }
        }
        for warning in &w.warnings {
            eprintln!("courier produce: {warning}");
        }
    }
    if let Some(e) = &outcome.stopped {
        eprintln!("courier produce: the producer stopped: {e}");
    }
    if let Some(e) = &outcome.txn_error {
        eprintln!("courier produce: {e}");
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
    if let Some(e) = &outcome.metrics_error {
        eprintln!("courier produce: {e}");
    }
    if outcome.interrupted.is_some() {
        eprintln!(
            "courier produce: interrupted; {} records were read before that",
            summary.records
        );
        if let (Some(n), Some(c)) = (outcome.interrupted_records, &outcome.txn) {
            let open = if n > 0 {
                format!(
                    "the open transaction ({n} records) was aborted: none of them is visible \
                     to read_committed consumers"
                )
            } else {
                "no transaction was open".to_string()
            };
            eprintln!(
                "courier produce: {open}; the {} committed transactions ({} records) stay",
                c.committed, c.committed_records
            );
        }
    }
    let extra = Extra {
        resolved_persisted: outcome.resolved_persisted,
        unresolved: outcome.unresolved,
        failed_out: written
            .as_ref()
            .and_then(|w| w.failed.as_ref())
            .map(|s| s.written),
        uncertain_out: written
            .as_ref()
            .and_then(|w| w.uncertain.as_ref())
            .map(|s| s.written),
        txn: outcome.txn,
    };
    match args.summary {
        Some(SummaryFormat::Json) => {
            let mut v = summary.to_json();
            v["possibly_persisted"] = outcome.acc.possibly_persisted.into();
            v["input_errors"] = outcome.input_errors.len().into();
            v["resolved_persisted"] = extra.resolved_persisted.into();
            v["unresolved"] = extra.unresolved.into();
            if let Some(n) = extra.failed_out {
                v["failed_out"] = n.into();
            }
            if let Some(n) = extra.uncertain_out {
                v["uncertain_out"] = n.into();
            }
            if let Some(c) = &extra.txn {
                v["transactions_committed"] = c.committed.into();
                v["transactions_aborted"] = c.aborted.into();
                v["transaction_records_committed"] = c.committed_records.into();
            }
            println!("{v}");
        }
        Some(SummaryFormat::Text) => eprintln!("{}", text_summary(&summary, &extra)),
        None if args.verbose > 0 => eprintln!("{}", text_summary(&summary, &extra)),
        None => {}
    }
    // Writing records to --failed-out / --uncertain-out never changes the status: a run
    // with failures exits 1 whether or not they were saved. Only a write error does.
    // 128 + the signal, as a shell reports a process the signal ended.
    Ok(if let Some(signal) = outcome.interrupted {
        128 + signal
    } else if failed > 0
        || !outcome.input_errors.is_empty()
        || outcome.stopped.is_some()
        || outcome.txn_error.is_some()
        || unreported > 0
        || write_failed
        || outcome.metrics_error.is_some()
    {
        1
    } else {
        0
    })
}

/// What `courier produce` adds to the shared [`Summary`].
struct Extra {
    /// Records delivered after outliving `delivery.timeout.ms` (the producer's metric).
    resolved_persisted: u64,
    /// Records still possibly persisted when `delivery.resolution.timeout.ms` ran out.
    unresolved: u64,
    /// Records written to --failed-out, when given.
    failed_out: Option<u64>,
    /// Records written to --uncertain-out, when given.
    uncertain_out: Option<u64>,
    /// Transactions, with --transaction-records.
    txn: Option<txn::TxnCounts>,
}

fn text_summary(s: &Summary, extra: &Extra) -> String {
    let mut line = format!(
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
    );
    if s.peak_rss > 0 {
        line += &format!("; peak RSS {:.1} MB", s.peak_rss as f64 / 1e6);
    }
    if extra.resolved_persisted > 0 {
        line += &format!(
            "; {} resolved after delivery.timeout.ms (delivered)",
            extra.resolved_persisted
        );
    }
    if extra.unresolved > 0 {
        line += &format!("; {} unresolved (possibly persisted)", extra.unresolved);
    }
    if let Some(n) = extra.failed_out {
        line += &format!("; {n} written to --failed-out");
    }
    if let Some(n) = extra.uncertain_out {
        line += &format!("; {n} written to --uncertain-out");
    }
    if let Some(c) = &extra.txn {
        line += &txn::text(c);
    }
    line
}

/// A report for the writer thread.
enum Msg {
    /// Record `seq` (0 for the first read) is done: delivered (`None`), or failed and
    /// to be written to this file as these bytes.
    Report(u64, Option<(Dest, Bytes)>),
    /// Every report has been sent.
    End,
}

type FileSink = BufWriter<File>;

/// The thread that writes --failed-out and --uncertain-out.
struct Writer {
    tx: std::sync::mpsc::Sender<Msg>,
    thread: std::thread::JoinHandle<Reorder<FileSink>>,
}

impl Writer {
    fn start(mut reorder: Reorder<FileSink>) -> Result<Writer, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("failed-out".into())
            .spawn(move || {
                while let Ok(Msg::Report(seq, out)) = rx.recv() {
                    reorder.report(seq, out);
                }
                // fsync: an error the disk reports only then still fails the run.
                reorder.finish(|w| w.get_ref().sync_all());
                reorder
            })
            .map_err(|e| format!("starting the --failed-out thread: {e}"))?;
        Ok(Writer { tx, thread })
    }

    /// Waits until every report is written and the files are closed.
    fn finish(self) -> Reorder<FileSink> {
        let _ = self.tx.send(Msg::End);
        self.thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

/// (device, inode) of a file, to tell when two paths name the same file.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Creates (empties) the --failed-out and --uncertain-out files, after checking that
/// neither is an input (which emptying would destroy before it is read) nor both the
/// same file.
fn open_outputs(args: &ProduceArgs, delim: &[u8]) -> Result<Option<Reorder<FileSink>>, String> {
    let outputs: Vec<(&'static str, &Path)> = [
        ("--failed-out", args.failed_out.as_deref()),
        ("--uncertain-out", args.uncertain_out.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p?)))
    .collect();
    let Some((first_flag, _)) = outputs.first() else {
        return Ok(None);
    };
    if !args.files.is_empty() && !args.lines {
        return Err(format!(
            "{first_flag} needs records split by a delimiter (stdin, or files with -l): \
             without -l each file is one record, which cannot be written back as one"
        ));
    }
    // What is read: the input files, or stdin (`< FILE` in a shell).
    let mut inputs = Vec::new();
    if args.files.is_empty() {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() {
            if let Ok(m) = File::from(fd).metadata() {
                if m.is_file() {
                    inputs.push(("stdin".to_string(), identity(&m)));
                }
            }
        }
    }
    for f in &args.files {
        if let Ok(m) = std::fs::metadata(f) {
            inputs.push((f.display().to_string(), identity(&m)));
        }
    }
    let mut sinks: Vec<(&'static str, Sink<FileSink>, (u64, u64))> = Vec::new();
    for (flag, path) in outputs {
        let shown = path.display().to_string();
        if let Ok(m) = std::fs::metadata(path) {
            if let Some((input, _)) = inputs.iter().find(|(_, id)| *id == identity(&m)) {
                return Err(format!(
                    "{flag} {shown}: that file is also the input ({input}); it would be \
                     emptied before it is read: write to another file"
                ));
            }
        }
        let file = File::create(path).map_err(|e| format!("{flag} {shown}: cannot create: {e}"))?;
        let id = file
            .metadata()
            .map(|m| identity(&m))
            .map_err(|e| format!("{flag} {shown}: {e}"))?;
        if let Some((other, _, _)) = sinks.iter().find(|(_, _, other)| *other == id) {
            return Err(format!(
                "{flag} {shown}: the same file as {other}; the failed and the possibly \
                 persisted records must not be mixed: give two files"
            ));
        }
        sinks.push((flag, Sink::new(flag, shown, BufWriter::new(file)), id));
    }
    let mut failed = None;
    let mut uncertain = None;
    for (flag, sink, _) in sinks {
        if flag == "--failed-out" {
            failed = Some(sink);
        } else {
            uncertain = Some(sink);
        }
    }
    Ok(Some(Reorder::new(delim.to_vec(), failed, uncertain)))
}

struct Outcome {
    records: u64,
    acc: Acc,
    input_errors: Vec<String>,
    /// The signal that interrupted the run (SIGINT, SIGTERM).
    interrupted: Option<i32>,
    /// Transactions, with --transaction-records.
    txn: Option<txn::TxnCounts>,
    /// Why the transactional run stopped early, with what to do.
    txn_error: Option<String>,
    /// Records of the open transaction aborted by the interruption.
    interrupted_records: Option<u64>,
    /// The producer's fatal error, if it stopped on one.
    stopped: Option<String>,
    /// The producer's `resolved_persisted` metric at the end.
    resolved_persisted: u64,
    /// The producer's `unresolved` metric at the end.
    unresolved: u64,
    /// Writing `--metrics-textfile` failed.
    metrics_error: Option<String>,
}

async fn produce_all(
    args: &ProduceArgs,
    config: ProducerConfig,
    transactions: Option<&txn::TxnOptions>,
    headers: Vec<(String, Option<Bytes>)>,
    partition: Option<i32>,
    mut rx: mpsc::Receiver<Vec<Item>>,
    resend: Option<std::sync::mpsc::Sender<Msg>>,
) -> Result<Outcome, String> {
    let producer = Producer::new(config).map_err(|e| e.to_string())?;
    let observer = Observer::start(&args.metrics, &producer).await?;
    let trimmer = crate::memory::spawn_trimmer(producer.clone());
    let topic: Arc<str> = args.topic.as_str().into();
    let acc = Arc::new(Mutex::new(Acc::default()));
    let verbose = args.verbose;
    let started = Instant::now();
    let handler = {
        let acc = acc.clone();
        DeliveryHandler::new(move |tag, r| {
            let (sent, len) = Tag::unpack(tag);
            let latency = started.elapsed().saturating_sub(sent);
            let mut a = acc.lock().unwrap_or_else(|e| e.into_inner());
            a.account(r, len, latency, verbose);
        })
    };
    let mut records = 0u64;
    let mut input_errors = Vec::new();
    let mut interrupted = false;
    // Ctrl-C (or SIGTERM) is seen between any two records, and while waiting for input.
    let stop = Arc::new(tokio::sync::Notify::new());
    let signal = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let watcher = {
        let (stop, signal) = (stop.clone(), signal.clone());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("watching for SIGTERM: {e}"))?;
        tokio::spawn(async move {
            let number = tokio::select! {
                r = tokio::signal::ctrl_c() => match r {
                    Ok(()) => libc::SIGINT,
                    Err(_) => std::future::pending().await,
                },
                _ = term.recv() => libc::SIGTERM,
            };
            signal.store(number, std::sync::atomic::Ordering::Relaxed);
            stop.notify_one();
        })
    };
    if let Some(opts) = transactions {
        let mut input = txn::Input {
            rx,
            pending: Default::default(),
            stop,
            signal: signal.clone(),
        };
        let run = txn::Txns::new(
            &producer,
            opts,
            topic,
            partition,
            headers,
            verbose,
            signal.clone(),
            resend,
        )
        .run(&mut input)
        .await;
        watcher.abort();
        drop(input);
        return Ok(finish(producer, observer, trimmer, &signal, run).await);
    }
    let mut pending = std::collections::VecDeque::<Item>::new();
    loop {
        if signal.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            interrupted = true;
            break;
        }
        if pending.is_empty() {
            let batch = tokio::select! {
                biased;
                _ = stop.notified() => { interrupted = true; break; }
                batch = rx.recv() => batch,
            };
            match batch {
                None => break,
                Some(b) => pending.extend(b),
            }
        }
        let Some(item) = pending.pop_front() else {
            continue;
        };
        let (key, value, raw) = match item {
            Item::InputError(e) => {
                input_errors.push(e);
                continue;
            }
            Item::Record { key, value, raw } => (key, value, raw),
        };
        let seq = records;
        records += 1;
        // With --failed-out/--uncertain-out, the callback holds the record's bytes (shared
        // with the producer's, not copied) until its report, which hands them to the
        // writer only if the record failed; without, nothing is kept.
        let mut report = resend.clone().map(|tx| (tx, raw));
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
        // The same bytes, for a record `produce` refuses at once (its callback never runs).
        let refused = report.as_ref().map(|(tx, raw)| (tx.clone(), raw.clone()));
        // Without --failed-out / --uncertain-out a report needs only the value's length
        // and the send time: packed into a tag for one shared handler, nothing is
        // allocated per record (issue 16; `Tag`).
        let tag = match &report {
            None => Tag::pack(sent.saturating_duration_since(started), len),
            Some(_) => None,
        };
        let result = if let Some(tag) = tag {
            producer.produce_tagged(record, &handler, tag).await
        } else {
            let acc2 = acc.clone();
            producer
                .produce_with_callback(record, move |r| {
                    if let Some((tx, raw)) = report.take() {
                        let out = r.as_ref().err().and_then(Dest::of).map(|d| (d, raw));
                        let _ = tx.send(Msg::Report(seq, out));
                    }
                    let mut a = acc2.lock().unwrap_or_else(|e| e.into_inner());
                    a.account(r, len, sent.elapsed(), verbose);
                })
                .await
        };
        if let Err(e) = result {
            if let Some((tx, raw)) = refused {
                let _ = tx.send(Msg::Report(seq, Dest::of(&e).map(|d| (d, raw))));
            }
            let mut a = acc.lock().unwrap_or_else(|e| e.into_inner());
            a.failures.add(&e);
        }
    }
    // Stop the reader (it may be blocked on a full channel) before waiting.
    watcher.abort();
    drop(pending);
    drop(rx);
    let flushed = producer.flush().await;
    let closed = producer.close(Duration::from_secs(30)).await;
    let stopped = flushed.and(closed).err().map(|e| e.to_string());
    let metrics = producer.metrics();
    trimmer.abort();
    let metrics_error = observer.finish(&metrics).err();
    let acc = std::mem::take(&mut *acc.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Outcome {
        records,
        acc,
        input_errors,
        interrupted: interrupted.then(|| signal.load(std::sync::atomic::Ordering::Relaxed)),
        txn: None,
        txn_error: None,
        interrupted_records: None,
        stopped,
        resolved_persisted: metrics.resolved_persisted,
        unresolved: metrics.unresolved,
        metrics_error,
    })
}

/// Closes the transactional run's producer (nothing is queued outside a transaction:
/// every transaction has committed or aborted) and collects the outcome.
async fn finish(
    producer: Producer,
    observer: Observer,
    trimmer: tokio::task::JoinHandle<()>,
    signal: &std::sync::atomic::AtomicI32,
    run: txn::TxnRun,
) -> Outcome {
    let flushed = producer.flush().await;
    let closed = producer.close(Duration::from_secs(30)).await;
    // After a transaction error the producer may have stopped with it: the run's own
    // error already says so, with what to do.
    let stopped = match run.error {
        Some(_) => None,
        None => flushed.and(closed).err().map(|e| e.to_string()),
    };
    let metrics = producer.metrics();
    trimmer.abort();
    let metrics_error = observer.finish(&metrics).err();
    let interrupted = match signal.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        n => run.interrupted_records.map(|_| n),
    };
    Outcome {
        records: run.records,
        acc: run.acc,
        input_errors: run.input_errors,
        interrupted,
        txn: Some(run.counts),
        txn_error: run.error,
        interrupted_records: run.interrupted_records,
        stopped,
        resolved_persisted: metrics.resolved_persisted,
        unresolved: metrics.unresolved,
        metrics_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_records_are_their_own_bytes_and_large_ones_stand_alone() {
        let mut slab = Slab::new();
        let recs: Vec<Bytes> = (0..2000)
            .map(|i| slab.copy(format!("record-{i}-{}", "x".repeat(i % 300)).as_bytes()))
            .collect();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r, format!("record-{i}-{}", "x".repeat(i % 300)).as_bytes());
        }
        let big = vec![7u8; Slab::SMALL + 1];
        assert_eq!(slab.copy(&big), big);
        assert_eq!(slab.copy(b""), Bytes::new());
    }

    type Kv = (Option<Bytes>, Option<Bytes>);

    fn layout(delim: &str, key_delim: Option<&str>, fixed_key: Option<&str>, z: bool) -> Layout {
        Layout {
            delim: parse_delimiter(delim).unwrap(),
            key_delim: key_delim.map(|k| parse_delimiter(k).unwrap()),
            fixed_key: fixed_key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            null_empty: z,
            count: None,
        }
    }

    /// What the producer is given for `input`: (key, value, raw) per record.
    fn parse(l: &Layout, input: &[u8]) -> Vec<(Kv, Bytes)> {
        let mut r = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while read_record(&mut r, &l.delim, &mut buf).unwrap() {
            if let Some(Item::Record { key, value, raw }) = l.record(&buf, &mut Slab::new()) {
                out.push(((key, value), raw));
            }
        }
        out
    }

    /// Parses `input`, fails the records whose index `failed` says (out of order), and
    /// returns the failed file's bytes and what the same layout reads back from it.
    fn round_trip(l: &Layout, input: &[u8], failed: &[usize]) -> (Vec<u8>, Vec<Kv>, Vec<Kv>) {
        let records = parse(l, input);
        let mut r = Reorder::new(
            l.delim.clone(),
            Some(Sink::new("--failed-out", "f".into(), Vec::new())),
            None,
        );
        for (i, (_, raw)) in records.iter().enumerate().rev() {
            let out = failed.contains(&i).then(|| (Dest::Failed, raw.clone()));
            r.report(i as u64, out);
        }
        r.finish(|_| Ok(()));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let file = r.failed.take().unwrap().into_inner();
        let want = failed.iter().map(|&i| records[i].0.clone()).collect();
        let got = parse(l, &file).into_iter().map(|(kv, _)| kv).collect();
        (file, want, got)
    }

    fn b(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn failed_records_read_back_the_same_with_key_and_record_delimiters() {
        let l = layout("\\n", Some(":"), None, false);
        let input = b"k1:v1\nk2:a:b\n:empty-key\nno-key\nk5:v5";
        let (file, want, got) = round_trip(&l, input, &[0, 1, 2, 3, 4]);
        assert_eq!(got, want);
        assert_eq!(file, b"k1:v1\nk2:a:b\n:empty-key\nno-key\nk5:v5\n");
        assert_eq!(want[1], (b("k2"), b("a:b")));
        assert_eq!(want[2], (b(""), b("empty-key")));
        assert_eq!(want[3], (None, b("no-key")));

        // Multi-byte delimiters; only the failed records, in input order.
        let l = layout(";;", Some("=>"), None, false);
        let input = b"a=>1;;b=>2;3;;c=>;;d;;e=>5";
        let (file, want, got) = round_trip(&l, input, &[1, 3, 4]);
        assert_eq!(got, want);
        assert_eq!(file, b"b=>2;3;;d;;e=>5;;");
    }

    #[test]
    fn null_empty_records_keys_and_values_come_back_null() {
        let l = layout("\\n", Some(":"), None, true);
        let input = b"k:\n\n:v\n:\nplain\n";
        let (file, want, got) = round_trip(&l, input, &[0, 1, 2, 3, 4]);
        assert_eq!(
            want,
            [
                (b("k"), None),
                (None, None),
                (None, b("v")),
                (None, None),
                (None, b("plain")),
            ]
        );
        assert_eq!(got, want);
        assert_eq!(file, b"k:\n\n:v\n:\nplain\n");
    }

    #[test]
    fn records_without_a_key_delimiter_get_the_fixed_key_again() {
        // No -K: the value only; -k gives the key again when read back.
        let l = layout("\\n", None, Some("fixed"), false);
        let (file, want, got) = round_trip(&l, b"one\ntwo:2\nthree\n", &[0, 2]);
        assert_eq!(want, [(b("fixed"), b("one")), (b("fixed"), b("three"))]);
        assert_eq!(got, want);
        assert_eq!(file, b"one\nthree\n");
        // With -K, a record without the key delimiter has the fixed key, and is written
        // without a key delimiter: not as "fixed:..."
        let l = layout("\\n", Some(":"), Some("fixed"), false);
        let (file, want, got) = round_trip(&l, b"k:v\nbare\n", &[0, 1]);
        assert_eq!(want, [(b("k"), b("v")), (b("fixed"), b("bare"))]);
        assert_eq!(got, want);
        assert_eq!(file, b"k:v\nbare\n");
    }

    #[test]
    fn text_summary_shows_resolution_counts_only_when_non_zero() {
        let summary = Summary {
            records: 3,
            delivered: 2,
            bytes: 10,
            elapsed: Duration::from_secs(1),
            latency: Histogram::new(),
            failures: Failures::default(),
            cpu: Duration::ZERO,
            peak_rss: 0,
        };
        let mut extra = Extra {
            resolved_persisted: 0,
            unresolved: 0,
            failed_out: None,
            uncertain_out: None,
            txn: None,
        };
        let plain = text_summary(&summary, &extra);
        assert!(plain.starts_with("% 2 of 3 records delivered"), "{plain}");
        assert!(
            !plain.contains("resolved") && !plain.contains("-out"),
            "{plain}"
        );
        extra.resolved_persisted = 2;
        extra.unresolved = 1;
        extra.failed_out = Some(0);
        extra.uncertain_out = Some(1);
        let line = text_summary(&summary, &extra);
        assert!(line.starts_with(&plain), "existing text unchanged: {line}");
        for part in [
            "; 2 resolved after delivery.timeout.ms (delivered)",
            "; 1 unresolved (possibly persisted)",
            "; 0 written to --failed-out",
            "; 1 written to --uncertain-out",
        ] {
            assert!(line.contains(part), "{part:?} in {line}");
        }
    }

    #[test]
    fn key_and_value_share_the_records_bytes() {
        let l = layout("\\n", Some(":"), None, false);
        let Some(Item::Record { key, value, raw }) = l.record(b"key:value", &mut Slab::new())
        else {
            panic!("a record")
        };
        assert_eq!(raw, "key:value");
        let range = raw.as_ptr_range();
        for part in [key.unwrap(), value.unwrap()] {
            assert!(
                range.contains(&part.as_ptr()),
                "a slice of the record, not a copy"
            );
        }
    }
}
