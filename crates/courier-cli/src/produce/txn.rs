//! `courier produce -X transactional.id=ID --transaction-records N`: the input in
//! transactions of N records (the last one shorter), each committed before the next
//! begins, so a read_committed consumer sees every record exactly once however often a
//! transaction had to be sent again.
//!
//! The records of the open transaction are held (their input bytes, shared with the
//! producer's copy until it takes its own) until it commits: an abortable error (a record
//! that failed, a commit the coordinator refused) aborts it, and the same records are sent
//! again in a new transaction, up to `--transaction-attempts` times. So N bounds the
//! memory the command holds beyond the producer's `buffer.memory`.
//!
//! What is never done: send a transaction again after a fatal error (another instance
//! with the same transactional.id fenced this one: two would write the same input), or
//! after a commit whose outcome is unknown (it may have committed; sending it again could
//! duplicate it).

use std::sync::atomic::Ordering;

use courier::producer::TxnErrorKind;
use courier::{ProducerError, TransactionError};

use super::*;
use crate::stats::error_name;

/// The transactional run's settings.
pub(super) struct TxnOptions {
    /// `--transaction-records`: records per transaction.
    pub records: u64,
    /// `--transaction-attempts`: times one transaction is sent at most, and times a call
    /// that timed out (retriable) is made at most.
    pub attempts: u32,
    /// `transactional.id`, for messages.
    pub id: String,
}

/// Transactions counted for the summary.
#[derive(Default, Clone, Copy)]
pub(super) struct TxnCounts {
    /// Transactions committed.
    pub committed: u64,
    /// Aborts: one per failed attempt that was sent again, one for the transaction that
    /// finally failed or was interrupted.
    pub aborted: u64,
    /// Records in committed transactions.
    pub committed_records: u64,
}

/// What the transactional run adds to [`Outcome`].
pub(super) struct TxnRun {
    pub records: u64,
    pub acc: Acc,
    pub input_errors: Vec<String>,
    pub counts: TxnCounts,
    /// Why the run stopped before the end of the input (not for an interruption), with
    /// what to do.
    pub error: Option<String>,
    /// Records of the open transaction aborted by the interruption.
    pub interrupted_records: Option<u64>,
}

/// A record of the open transaction, held for a resend.
struct Held {
    seq: u64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    /// The input bytes, for --failed-out / --uncertain-out.
    raw: Bytes,
}

/// One attempt's delivery reports, written by the callbacks on the producer's driver.
#[derive(Default)]
struct Reports {
    ok: u64,
    bytes: u64,
    latencies: Vec<Duration>,
    /// The first record that failed (not one that failed only because the transaction
    /// was already failing or aborted).
    first_error: Option<ProducerError>,
    failed: bool,
}

impl Reports {
    fn account(&mut self, r: DeliveryResult, len: u64, latency: Duration, verbose: u8) {
        match r {
            Ok(md) => {
                self.ok += 1;
                self.bytes += len;
                self.latencies.push(latency);
                if verbose >= 2 {
                    eprintln!(
                        "% delivered to {} [{}] at offset {} (in the open transaction)",
                        md.topic, md.partition, md.offset
                    );
                }
            }
            Err(e) => self.fail(e, verbose),
        }
    }

    fn fail(&mut self, e: ProducerError, verbose: u8) {
        if verbose >= 1 {
            eprintln!("% delivery failed in the open transaction: {e}");
        }
        self.failed = true;
        let consequence = matches!(
            e,
            ProducerError::TransactionAborted { .. } | ProducerError::NotInTransaction { .. }
        );
        if self.first_error.is_none() && !consequence {
            self.first_error = Some(e);
        }
    }
}

type Shared = Arc<Mutex<Reports>>;

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Reports> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// A record failure that sending the transaction again cannot cure: the same record
/// would be refused again.
fn permanent(e: &ProducerError) -> bool {
    matches!(
        e,
        ProducerError::RecordTooLarge { .. }
            | ProducerError::RecordExceedsBufferMemory { .. }
            | ProducerError::UnknownPartition { .. }
            | ProducerError::UnknownTopic { .. }
            | ProducerError::Config(_)
    ) || matches!(
        e.code_name(),
        Some(
            "MESSAGE_TOO_LARGE"
                | "RECORD_LIST_TOO_LARGE"
                | "INVALID_RECORD"
                | "TOPIC_AUTHORIZATION_FAILED"
                | "CORRUPT_MESSAGE"
        )
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Init,
    Begin,
    Commit,
    Abort,
}

/// Why the run stops before the end of its input.
enum Stop {
    /// Ctrl-C or SIGTERM; the open transaction is aborted.
    Interrupted,
    /// Sent `attempts` times, each aborted; the last error, and the record's.
    Exhausted(String, Option<ProducerError>),
    /// A record the brokers refuse whatever is resent.
    Permanent(ProducerError),
    /// The producer can make no more transactions.
    Fatal(TransactionError),
    /// A commit whose reply was lost, then an error: it may have committed.
    Unknown(TransactionError),
}

/// The transactional run's state.
pub(super) struct Txns<'a> {
    pub producer: &'a Producer,
    pub opts: &'a TxnOptions,
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub verbose: u8,
    pub signal: Arc<std::sync::atomic::AtomicI32>,
    pub resend: Option<std::sync::mpsc::Sender<Msg>>,
    records: u64,
    acc: Acc,
    input_errors: Vec<String>,
    counts: TxnCounts,
    held: Vec<Held>,
    /// Whether a transaction is open (begun, neither committed nor aborted).
    open: bool,
    /// Which transaction this is (1 for the first), for messages.
    number: u64,
    /// Attempt of the open transaction (1 for the first send).
    attempt: u32,
    reports: Shared,
    /// The error that made the last attempt abort.
    last_error: String,
}

impl<'a> Txns<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        producer: &'a Producer,
        opts: &'a TxnOptions,
        topic: Arc<str>,
        partition: Option<i32>,
        headers: Vec<(String, Option<Bytes>)>,
        verbose: u8,
        signal: Arc<std::sync::atomic::AtomicI32>,
        resend: Option<std::sync::mpsc::Sender<Msg>>,
    ) -> Self {
        Txns {
            producer,
            opts,
            topic,
            partition,
            headers,
            verbose,
            signal,
            resend,
            records: 0,
            acc: Acc::default(),
            input_errors: Vec::new(),
            counts: TxnCounts::default(),
            held: Vec::new(),
            open: false,
            number: 0,
            attempt: 1,
            reports: Shared::default(),
            last_error: String::new(),
        }
    }

    fn interrupted(&self) -> bool {
        self.signal.load(Ordering::Relaxed) != 0
    }

    /// Makes the call, again while it times out (retriable: the operation resumes), at
    /// most `--transaction-attempts` times.
    async fn call(&mut self, op: Op) -> Result<(), TransactionError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let r = match op {
                // The one call that can wait long before anything was sent (no broker
                // reachable): Ctrl-C ends the wait. The operation stays pending in the
                // producer, and closing it ends that.
                Op::Init => {
                    tokio::select! {
                        r = self.producer.init_transactions() => r,
                        () = signalled(&self.signal) => return Err(TransactionError::TimedOut {
                            operation: "init_transactions",
                            max_block: Duration::ZERO,
                        }),
                    }
                }
                Op::Begin => self.producer.begin_transaction().await,
                Op::Commit => self.producer.commit_transaction().await,
                Op::Abort => self.producer.abort_transaction().await,
            };
            match r {
                Err(e)
                    if e.is_retriable()
                        && tries < self.opts.attempts
                        && !(op == Op::Init && self.interrupted()) =>
                {
                    eprintln!(
                        "courier produce: {e} (try {tries} of {}, --transaction-attempts)",
                        self.opts.attempts
                    );
                }
                Ok(()) => {
                    match op {
                        Op::Begin => self.open = true,
                        Op::Commit | Op::Abort => self.open = false,
                        Op::Init => {}
                    }
                    return Ok(());
                }
                r => return r,
            }
        }
    }

    /// Sends held record `i` in the open transaction.
    async fn send(&mut self, i: usize) {
        let h = &self.held[i];
        let len = h.value.as_ref().map_or(0, Bytes::len) as u64;
        let record = ProducerRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            key: h.key.clone(),
            value: h.value.clone(),
            headers: self.headers.clone(),
            timestamp_ms: None,
        };
        let reports = self.reports.clone();
        let verbose = self.verbose;
        let sent = Instant::now();
        let r = self
            .producer
            .produce_with_callback(record, move |r| {
                lock(&reports).account(r, len, sent.elapsed(), verbose)
            })
            .await;
        if let Err(e) = r {
            // Refused before it was queued: the transaction must not commit without it.
            lock(&self.reports).fail(e, self.verbose);
        }
    }

    fn failed(&self) -> bool {
        lock(&self.reports).failed
    }

    /// The failed attempt's error, with the record's own where one failed.
    fn attempt_error(&self, call: Option<&TransactionError>) -> String {
        let record = lock(&self.reports).first_error.clone();
        match (call, record) {
            // The call's error only says that a record failed (and gives the library's
            // advice, which this command follows): the record's error is the news.
            (Some(c), Some(r)) if c.kind() == Some(TxnErrorKind::ProduceFailed) => {
                format!("a record failed: {r}")
            }
            (Some(c), Some(r)) => format!("{c}; the record's error: {r}"),
            (Some(c), None) => c.to_string(),
            (None, Some(r)) => format!("a record failed: {r}"),
            (None, None) => "a record of the transaction failed".to_string(),
        }
    }

    /// Aborts the failed attempt and sends the held records again in a new transaction,
    /// until one attempt has sent them all without a failure seen so far.
    async fn resend(&mut self, call: Option<&TransactionError>) -> Result<(), Stop> {
        let mut why = self.attempt_error(call);
        loop {
            self.call(Op::Abort).await.map_err(Stop::Fatal)?;
            self.counts.aborted += 1;
            let record = lock(&self.reports).first_error.clone();
            if self.interrupted() {
                return Err(Stop::Interrupted);
            }
            if let Some(e) = record.clone().filter(permanent) {
                return Err(Stop::Permanent(e));
            }
            if self.attempt >= self.opts.attempts {
                return Err(Stop::Exhausted(why, record));
            }
            self.attempt += 1;
            eprintln!(
                "courier produce: transaction {} aborted ({why}); sending its {} records again \
                 (attempt {} of {}, --transaction-attempts)",
                self.number,
                self.held.len(),
                self.attempt,
                self.opts.attempts
            );
            self.last_error = why;
            // A broker that just failed needs a moment; the producer's own retries have
            // already waited out most causes.
            tokio::time::sleep(Duration::from_millis(200 * u64::from(self.attempt))).await;
            self.reports = Shared::default();
            self.call(Op::Begin).await.map_err(Stop::Fatal)?;
            for i in 0..self.held.len() {
                if self.failed() || self.interrupted() {
                    break;
                }
                self.send(i).await;
            }
            if !self.failed() && !self.interrupted() {
                return Ok(());
            }
            why = self.attempt_error(None);
        }
    }

    /// Counts the committed transaction and reports its records to the writer.
    async fn committed(&mut self) {
        self.counts.committed += 1;
        self.counts.committed_records += self.held.len() as u64;
        // Every report is in before the commit completes (EndTxn waits for every batch);
        // a moment's grace in case a callback is still finishing on the driver.
        let want = self.held.len() as u64;
        for _ in 0..100 {
            if lock(&self.reports).ok >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = std::mem::take(&mut *lock(&self.reports));
        self.acc.delivered += r.ok;
        self.acc.bytes += r.bytes;
        for l in r.latencies {
            self.acc.latency.record(l);
        }
        if let Some(tx) = &self.resend {
            for h in &self.held {
                let _ = tx.send(Msg::Report(h.seq, None));
            }
        }
        self.held.clear();
    }

    /// Counts the held records as failed under `name` and hands them to the writer.
    fn fail_held(&mut self, name: &str, message: &str, dest: Dest) {
        for h in self.held.drain(..) {
            self.acc
                .failures
                .add_named(name.to_string(), || message.to_string());
            if dest == Dest::Uncertain {
                self.acc.possibly_persisted += 1;
            }
            if let Some(tx) = &self.resend {
                let _ = tx.send(Msg::Report(h.seq, Some((dest, h.raw))));
            }
        }
    }

    /// Runs transactions until the input ends, the run is interrupted or a transaction
    /// fails for good.
    pub(super) async fn run(mut self, input: &mut Input) -> TxnRun {
        let stop = self.transactions(input).await.err();
        let mut error = None;
        let mut interrupted_records = None;
        let id = self.opts.id.clone();
        let n = self.held.len();
        let (first, last) = match (self.held.first(), self.held.last()) {
            (Some(f), Some(l)) => (f.seq + 1, l.seq + 1),
            _ => (0, 0),
        };
        let which = format!(
            "transaction {} (input records {first} to {last}, {n} records)",
            self.number
        );
        match stop {
            None => {}
            Some(Stop::Interrupted) => {
                if self.open {
                    if let Err(e) = self.call(Op::Abort).await {
                        error = Some(format!(
                            "interrupted, and aborting {which} failed: {e}; its records are \
                             not committed (the coordinator aborts it after \
                             transaction.timeout.ms)"
                        ));
                    } else {
                        self.counts.aborted += 1;
                    }
                }
                interrupted_records = Some(n as u64);
                self.fail_held(
                    "TRANSACTION_ABORTED",
                    "interrupted: the open transaction was aborted",
                    Dest::Failed,
                );
            }
            Some(Stop::Exhausted(why, record)) => {
                let e = format!(
                    "{which} was aborted {} times (--transaction-attempts); the last error: \
                     {why}. None of its records are visible to read_committed consumers; the \
                     transactions before it ({} of them) stay committed, and the input after \
                     it was not read. Fix the cause, then send the input from record {first} again \
                     (--failed-out FILE keeps this transaction's records), or raise \
                     --transaction-attempts",
                    self.opts.attempts, self.counts.committed
                );
                let name = record
                    .as_ref()
                    .map_or("TRANSACTION_FAILED".into(), error_name);
                self.fail_held(&name, &why, Dest::Failed);
                error = Some(e);
            }
            Some(Stop::Permanent(record)) => {
                let why = record.to_string();
                let e = format!(
                    "{which} was aborted: a record was refused in a way that sending it again \
                     cannot change ({why}). None of its records are visible to read_committed \
                     consumers; the transactions before it ({} of them) stay committed, and \
                     the input after it was not read. Fix or remove the record, then send the \
                     input from record {first} again",
                    self.counts.committed
                );
                self.fail_held(&error_name(&record), &why, Dest::Failed);
                error = Some(e);
            }
            Some(Stop::Fatal(e)) => {
                let what = if e.kind() == Some(TxnErrorKind::ProducerFenced) {
                    format!(
                        "another producer with transactional.id={id} started since this one \
                         (it fenced this run, and aborts what this run left open): this run \
                         stopped. Run one producer per transactional.id; "
                    )
                } else {
                    String::new()
                };
                let name = txn_error_name(&e);
                let e = format!(
                    "{e}. {what}{which} is not committed and was not sent again; the \
                     transactions before it ({} of them) stay committed, and the input after \
                     it was not read",
                    self.counts.committed
                );
                if n > 0 {
                    self.fail_held(&name, &e, Dest::Failed);
                }
                error = Some(e);
            }
            Some(Stop::Unknown(e)) => {
                let e = format!(
                    "the commit of {which} got no reply, and then: {e}. It may have \
                     committed, so its records were not sent again (that could write them \
                     twice): read the topic with a read_committed consumer (e.g. \
                     kafka-console-consumer --isolation-level read_committed) to see whether \
                     they are there before sending them again (--uncertain-out FILE keeps \
                     them); the transactions before it ({} of them) stay committed, and the \
                     input after it was not read",
                    self.counts.committed
                );
                self.fail_held("COMMIT_OUTCOME_UNKNOWN", &e, Dest::Uncertain);
                error = Some(e);
            }
        }
        TxnRun {
            records: self.records,
            acc: self.acc,
            input_errors: self.input_errors,
            counts: self.counts,
            error,
            interrupted_records,
        }
    }

    async fn transactions(&mut self, input: &mut Input) -> Result<(), Stop> {
        if self.interrupted() {
            return Err(Stop::Interrupted);
        }
        if let Err(e) = self.call(Op::Init).await {
            return Err(if self.interrupted() {
                Stop::Interrupted
            } else {
                Stop::Fatal(e)
            });
        }
        let n = self.opts.records;
        loop {
            // Fill the transaction: records are sent as they are read.
            self.number += 1;
            self.attempt = 1;
            self.reports = Shared::default();
            let mut end = false;
            while (self.held.len() as u64) < n {
                let (key, value, raw) = match input.next(&mut self.input_errors).await {
                    Next::End => {
                        end = true;
                        break;
                    }
                    Next::Interrupted => return Err(Stop::Interrupted),
                    Next::Record(k, v, raw) => (k, v, raw),
                };
                let seq = self.records;
                self.records += 1;
                self.held.push(Held {
                    seq,
                    key,
                    value,
                    raw,
                });
                if !self.open {
                    self.call(Op::Begin).await.map_err(Stop::Fatal)?;
                }
                self.send(self.held.len() - 1).await;
                // A failed attempt is sent again at once rather than at the commit: the
                // records after the failure would only fail too.
                if self.failed() {
                    self.resend(None).await?;
                }
            }
            if self.held.is_empty() {
                self.number -= 1;
                return Ok(());
            }
            if self.interrupted() {
                return Err(Stop::Interrupted);
            }
            loop {
                if self.failed() {
                    self.resend(None).await?;
                    continue;
                }
                match self.call(Op::Commit).await {
                    Ok(()) => break,
                    Err(e) if e.commit_outcome_unknown() => return Err(Stop::Unknown(e)),
                    Err(e) if e.is_abortable() => self.resend(Some(&e)).await?,
                    Err(e) => return Err(Stop::Fatal(e)),
                }
            }
            self.committed().await;
            if self.verbose >= 1 {
                eprintln!(
                    "% transaction {} committed ({} records in all so far)",
                    self.number, self.counts.committed_records
                );
            }
            if end {
                return Ok(());
            }
        }
    }
}

/// Completes once a signal has interrupted the run.
async fn signalled(signal: &std::sync::atomic::AtomicI32) {
    while signal.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next record from the reader thread, or why there is none.
pub(super) enum Next {
    Record(Option<Bytes>, Option<Bytes>, Bytes),
    End,
    Interrupted,
}

/// The reader thread's batches, one record at a time, watching for Ctrl-C.
pub(super) struct Input {
    pub rx: mpsc::Receiver<Vec<Item>>,
    pub pending: std::collections::VecDeque<Item>,
    pub stop: Arc<tokio::sync::Notify>,
    pub signal: Arc<std::sync::atomic::AtomicI32>,
}

impl Input {
    pub(super) async fn next(&mut self, errors: &mut Vec<String>) -> Next {
        loop {
            if self.signal.load(Ordering::Relaxed) != 0 {
                return Next::Interrupted;
            }
            match self.pending.pop_front() {
                Some(Item::InputError(e)) => errors.push(e),
                Some(Item::Record { key, value, raw }) => return Next::Record(key, value, raw),
                None => {
                    let batch = tokio::select! {
                        biased;
                        _ = self.stop.notified() => return Next::Interrupted,
                        batch = self.rx.recv() => batch,
                    };
                    match batch {
                        None => return Next::End,
                        Some(b) => self.pending.extend(b),
                    }
                }
            }
        }
    }
}

/// A name for counting the records of a transaction that failed with `e`:
/// `PRODUCER_FENCED` for the machine's `ProducerFenced`, and so on.
fn txn_error_name(e: &TransactionError) -> String {
    let Some(kind) = e.kind() else {
        return "TRANSACTION_FAILED".into();
    };
    let mut name = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// The text summary's part about transactions.
pub(super) fn text(c: &TxnCounts) -> String {
    format!(
        "; {} transactions committed ({} records), {} aborted",
        c.committed, c.committed_records, c.aborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_transactions_in_words() {
        let c = TxnCounts {
            committed: 10,
            aborted: 2,
            committed_records: 10_000,
        };
        assert_eq!(
            text(&c),
            "; 10 transactions committed (10000 records), 2 aborted"
        );
    }

    #[test]
    fn records_no_resend_can_cure_are_told_from_passing_failures() {
        assert!(permanent(&ProducerError::UnknownTopic {
            topic: "t".into()
        }));
        assert!(!permanent(&ProducerError::Closed));
    }

    #[test]
    fn a_reports_first_failure_is_its_own_not_the_aborts_consequences() {
        let mut r = Reports::default();
        r.fail(
            ProducerError::TransactionAborted {
                topic: "t".into(),
                partition: 0,
                persistence: courier::Persistence::NotPersisted,
            },
            0,
        );
        assert!(r.failed && r.first_error.is_none());
        r.fail(ProducerError::Closed, 0);
        assert!(matches!(r.first_error, Some(ProducerError::Closed)));
    }
}
