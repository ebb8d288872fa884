//! The driver task: owns the engine, feeds it records and broker answers, carries out its
//! actions and reports each record's outcome.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use courier_core::producer::{
    Action, CompressJob, Compressed, Delivery, FailureReason, ProduceResult, ProducerEngine,
    Record, TopicMetadata,
};
use courier_core::Compressor;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::audit::{audit_with_pool, DurabilityReport};
use crate::config::{Acks, DurabilityCheck};
use crate::dlq::{dead_letter_record, should_dead_letter};
use crate::error::{ErrorCode, ProducerError};
use crate::metrics::{Counters, LatencyBatch};
use crate::net::{self, ConnectionPool, NetError};
use crate::queue::BatchQueue;

use super::compress::Duty;
use super::report::{to_producer_error, Token};
use super::sink::{fetch_metadata, init_producer_id, BrokerSink};
use super::txn::{ProduceTxn, TxnCall, TxnDriver, TxnReply, TxnReplyTo};
use super::{DeadLetterQueue, RecordMetadata};

/// Commands the driver's hand-off vector keeps room for between swaps: what a busy
/// producer takes per wake-up (a few thousand records), not the most it ever took.
const RETAINED_COMMANDS: usize = 4096;

pub(super) enum Command {
    Send(Staged),
    Flush(oneshot::Sender<()>),
    Close(Duration, oneshot::Sender<()>),
    /// A transaction call; answered when it is done or refused.
    Txn(TxnCall, TxnReplyTo),
}

/// A record on its way to the driver. Its key and value, when small, were copied into the
/// queue's arena by the sending thread ([`BatchQueue::push_with`]) and are named here by
/// range; `rec.key` / `rec.value` then hold `None` until the driver takes the arena.
pub(super) struct Staged {
    pub(super) rec: Record<Token>,
    pub(super) key: Option<std::ops::Range<usize>>,
    pub(super) value: Option<std::ops::Range<usize>>,
}

impl Staged {
    /// The record, its staged fields pointing into `arena` (slices share it: no copy).
    fn into_record(self, arena: &bytes::Bytes) -> Record<Token> {
        let mut rec = self.rec;
        if let Some(r) = self.key {
            rec.key = Some(arena.slice(r));
        }
        if let Some(r) = self.value {
            rec.value = Some(arena.slice(r));
        }
        rec
    }
}

pub(super) enum Event {
    /// A Produce request's outcome, with the transport error behind a failed one.
    Produced {
        id: u64,
        broker: i32,
        result: ProduceResult,
        cause: Option<NetError>,
        /// From writing the request to its answer; `None` when it was never sent.
        latency: Option<Duration>,
    },
    Metadata(Result<Vec<TopicMetadata>, NetError>),
    ProducerId(Result<(i64, i16), (i16, Option<NetError>)>),
    Audit(Arc<str>, Result<DurabilityReport, ProducerError>),
    /// A batch compressed, by the compression thread (`true`) or inline.
    Compressed(Compressed, bool),
    /// A record sent to the dead letter queue has its report.
    DeadLetterDone,
    /// A transaction coordinator's reply, or why there is none.
    Txn(TxnReply),
}

/// The durability audit of one topic, as the driver tracks it.
pub(super) enum AuditState {
    /// Running; under `enforce`, the topic's records wait here.
    Running { held: Vec<Record<Token>> },
    /// Finished: `Ok` lets records through; `Err` fails them under `enforce`. Checked
    /// again after `recheck_at` (the topic's settings can change).
    Done {
        recheck_at: Instant,
        verdict: Result<(), ProducerError>,
    },
}

pub(super) struct Driver {
    pub(super) engine: ProducerEngine<Token>,
    pub(super) pool: Arc<ConnectionPool>,
    pub(super) memory: Arc<Semaphore>,
    pub(super) sinks: HashMap<i32, BrokerSink>,
    pub(super) flush_waiters: Vec<oneshot::Sender<()>>,
    pub(super) close: Option<(Instant, oneshot::Sender<()>)>,
    pub(super) events_tx: Option<mpsc::UnboundedSender<Event>>,
    /// Why the last metadata request failed, for the error of records that time out
    /// waiting for metadata.
    pub(super) last_metadata_error: Option<String>,
    /// The last transport error per broker (connect refused, connection lost, ...), for
    /// the error of records that time out after their requests failed.
    pub(super) last_broker_error: HashMap<i32, String>,
    /// Why the last InitProducerId failed (logged once per cause).
    pub(super) last_producer_id_error: Option<String>,
    pub(super) counters: Arc<Counters>,
    pub(super) durability_check: DurabilityCheck,
    pub(super) acks: Acks,
    pub(super) idempotence: bool,
    pub(super) audits: HashMap<Arc<str>, AuditState>,
    /// The last topic let through by the audit, and until when (a fast path).
    pub(super) admitted: Option<(Arc<str>, Instant)>,
    pub(super) dlq: Option<DeadLetterQueue>,
    /// The compression thread's job queue, started with the first job.
    pub(super) compress_jobs: Option<std::sync::mpsc::Sender<CompressJob>>,
    /// Jobs on the compression thread's queue or in its hands (the thread counts down).
    pub(super) compress_queued: Arc<std::sync::atomic::AtomicUsize>,
    /// The thread could not start or ended early: compress inline.
    pub(super) compress_thread_gone: bool,
    /// For batches compressed by the driver after all.
    pub(super) inline_compressor: Option<Box<Compressor>>,
    /// Records handed to the dead letter queue whose report has not been given yet.
    pub(super) dead_letters_pending: usize,
    /// The producer's fatal error, once there is one (shared with the handles).
    pub(super) fatal: Arc<std::sync::OnceLock<ProducerError>>,
    /// Transactions: the pending calls and the coordinator request out.
    pub(super) txn: TxnDriver,
    #[cfg(feature = "fault-injection")]
    pub(super) fault: InjectedFault,
}

/// A bug on demand, for the tests that prove a failure inside the producer is never
/// reported as a success (cargo feature `fault-injection`, never in a release build):
/// `COURIER_FAULT_INJECTION=driver-panic-after-records=N` makes the driver panic when the
/// N-th record reaches it.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Default)]
pub(super) struct InjectedFault {
    panic_after_records: Option<u64>,
    records: u64,
}

#[cfg(feature = "fault-injection")]
impl InjectedFault {
    pub(super) fn from_env() -> Self {
        let panic_after_records = std::env::var("COURIER_FAULT_INJECTION").ok().and_then(|v| {
            v.strip_prefix("driver-panic-after-records=")
                .and_then(|n| n.parse().ok())
        });
        InjectedFault {
            panic_after_records,
            records: 0,
        }
    }

    fn on_record(&mut self) {
        self.records += 1;
        if self.panic_after_records == Some(self.records) {
            panic!(
                "injected fault: driver panic at record {} (COURIER_FAULT_INJECTION)",
                self.records
            );
        }
    }
}

impl Driver {
    pub(super) async fn run(mut self, commands: Arc<BatchQueue<Command>>) {
        // Whatever way this task ends, later sends fail at once instead of queueing
        // for nobody.
        struct ReceiverGone(Arc<BatchQueue<Command>>);
        impl Drop for ReceiverGone {
            fn drop(&mut self) {
                self.0.close_receiver();
            }
        }
        let _receiver = ReceiverGone(commands.clone());
        let (events_tx, mut events) = mpsc::unbounded_channel();
        self.events_tx = Some(events_tx);
        let mut actions = Vec::new();
        let mut commands_open = true;
        let mut batch: Vec<Command> = Vec::new();
        // The arena comes with the commands; the next one the queue fills is allocated
        // here, on the thread that frees it once the records are encoded.
        let mut arena: Vec<u8> = Vec::new();
        let mut arena_capacity = 0usize;
        // Inline compression until the driver is busy enough for the hand-over to pay.
        self.engine.set_compress_elsewhere(false);
        let mut duty = Duty::new(Instant::now());
        let mut woke_at = Instant::now();
        loop {
            let wake = self.engine.next_wakeup().map(Instant::from_std);
            let close_at = self.close.as_ref().map(|(t, _)| *t);
            let deadline = [wake, close_at].into_iter().flatten().min();
            let sleeps_at = Instant::now();
            if let Some(on) = duty.worked(woke_at, sleeps_at) {
                self.engine.set_compress_elsewhere(on);
            }
            enum Woken {
                Event(Option<Event>),
                Commands(bool),
                Timer,
            }
            let woken = tokio::select! {
                biased;
                ev = events.recv() => Woken::Event(ev),
                more = commands.recv_all(&mut batch, &mut arena), if commands_open => Woken::Commands(more),
                _ = sleep_until(deadline) => Woken::Timer,
            };
            woke_at = Instant::now();
            match woken {
                Woken::Event(Some(ev)) => {
                    self.on_event(ev);
                    while let Ok(ev) = events.try_recv() {
                        self.on_event(ev);
                    }
                }
                Woken::Event(None) | Woken::Timer => {}
                Woken::Commands(true) => {
                    // Everything queued is taken before working out what to send
                    // (fuller batches, fewer polls), with one clock read: a record's
                    // arrival time only drives linger and expiry. `buffer.memory` bounds
                    // how much that can be.
                    //
                    // The arena becomes shared bytes that the records slice; the queue
                    // gets a fresh one sized like the last (a reused one would have to
                    // wait for every slice of this one to be dropped).
                    // Quick to grow, slow to shrink.
                    arena_capacity = arena.len().max(arena_capacity / 2);
                    let staged = bytes::Bytes::from(std::mem::replace(
                        &mut arena,
                        Vec::with_capacity(arena_capacity),
                    ));
                    for cmd in batch.drain(..) {
                        self.on_command(cmd, &staged, woke_at);
                    }
                    // The emptied vector goes back to the queue on the next swap; one
                    // that grew while the driver fell behind (a full `buffer.memory` of
                    // commands, 216 bytes each) would otherwise stay that size for good,
                    // beside the records it carried, now in the engine: with the topic's
                    // metadata missing, 2.2x the bound (issue 19). Two vectors take turns,
                    // so both shrink within two swaps.
                    if batch.capacity() > RETAINED_COMMANDS {
                        batch = Vec::with_capacity(RETAINED_COMMANDS);
                    }
                }
                Woken::Commands(false) => {
                    // Every handle is gone: deliver what is left, then stop.
                    commands_open = false;
                    if self.close.is_none() {
                        self.engine.set_flushing(true);
                        self.abort_open_transaction();
                    }
                }
            }
            let now = Instant::now();
            if let Some((at, _)) = &self.close {
                if now >= *at {
                    // Close timed out: everything left fails.
                    self.engine.fail_all(FailureReason::Closed);
                    self.engine.abandon_in_flight(FailureReason::Closed);
                    for (topic, held) in self.take_held() {
                        for rec in held {
                            self.fail(
                                &topic,
                                -1,
                                rec.token,
                                rec.timestamp_ms,
                                ProducerError::Closed,
                            );
                        }
                    }
                }
            }
            self.run_deferred_txn_calls();
            // Before the engine's poll, so that what a request changes (a partition added,
            // a new epoch) counts in it; after, for the EndTxn once the last batch is in.
            self.drive_transaction(now);
            self.engine.poll(now.into_std(), &mut actions);
            for action in actions.drain(..) {
                self.on_action(action);
            }
            // Same reason as the hand-off vector's: a burst of reports must not keep
            // its room for good.
            if actions.capacity() > RETAINED_COMMANDS {
                actions = Vec::new();
            }
            // Records that waited for metadata have been placed by the poll.
            self.run_deferred_txn_calls();
            self.drive_transaction(now);
            if self.fatal.get().is_none() {
                if let Some(f) = self.engine.fatal() {
                    let err = to_producer_error("", -1, f, self.engine.config(), None);
                    let _ = self.fatal.set(err);
                }
            }
            self.counters
                .retries
                .store(self.engine.retries_total(), Ordering::Relaxed);
            self.counters
                .records_retried
                .store(self.engine.records_retried_total(), Ordering::Relaxed);
            let (before, after) = self.engine.compression_totals();
            self.counters
                .bytes_before_compression
                .store(before, Ordering::Relaxed);
            self.counters
                .bytes_after_compression
                .store(after, Ordering::Relaxed);
            // The oldest record's age walks every partition: ten times a second at most,
            // and whenever nothing is in flight (the last delivery must clear it).
            let wall = super::now_ms();
            let checked = self.counters.oldest_checked_ms.load(Ordering::Relaxed);
            if wall.saturating_sub(checked) >= 100 || self.engine.requests_in_flight() == 0 {
                self.counters
                    .oldest_checked_ms
                    .store(wall, Ordering::Relaxed);
                let since = self.engine.oldest_pending().map_or(0, |created| {
                    let age = now.into_std().saturating_duration_since(created);
                    wall - age.as_millis() as i64
                });
                self.counters
                    .oldest_pending_ms
                    .store(since, Ordering::Relaxed);
            }
            self.counters
                .batches_split
                .store(self.engine.batches_split(), Ordering::Relaxed);
            self.counters
                .requests_in_flight
                .store(self.engine.requests_in_flight() as u64, Ordering::Relaxed);
            // Dead letters count as pending until their report is out, except once close
            // has run out of time.
            let dead_letters_done = self.dead_letters_pending == 0
                || self.close.as_ref().is_some_and(|(at, _)| now >= *at);
            // A commit or abort under way (the close's abort, too) keeps the driver up, as
            // long as close allows.
            let txn_done = self.txn_settled()
                || self.close.as_ref().is_some_and(|(at, _)| now >= *at)
                || (!commands_open && self.close.is_none() && !self.txn.in_flight);
            if self.engine.is_idle() && !self.holds_records() && dead_letters_done && txn_done {
                for w in self.flush_waiters.drain(..) {
                    let _ = w.send(());
                }
                if self.close.is_none() && commands_open {
                    self.engine.set_flushing(false);
                }
                if let Some((at, done)) = self.close.take() {
                    self.shutdown(at).await;
                    let _ = done.send(());
                    return;
                }
                if !commands_open {
                    self.shutdown(Instant::now() + Duration::from_secs(5)).await;
                    return;
                }
            }
        }
    }

    pub(super) async fn shutdown(&mut self, deadline: Instant) {
        if self.engine.config().acks == 0 {
            // acks=0 requests count as delivered once written, but a broker handles one
            // request per connection at a time and drops what is still unread when the
            // client hangs up. A request that does get an answer, sent behind them on
            // the same connection, is answered only after they were handled.
            for &broker in self.sinks.keys() {
                if let Ok(conn) = self.pool.get(broker).await {
                    let barrier = net::fetch_metadata(&conn, &[]);
                    let _ = tokio::time::timeout_at(deadline, barrier).await;
                }
            }
        }
        self.sinks.clear();
        self.pool.close_all();
        tracing::info!("producer closed");
    }

    pub(super) fn on_command(&mut self, cmd: Command, arena: &bytes::Bytes, now: Instant) {
        match cmd {
            Command::Send(staged) => {
                let rec = staged.into_record(arena);
                #[cfg(feature = "fault-injection")]
                self.fault.on_record();
                if self.close.is_some() {
                    let topic = rec.topic.clone();
                    self.fail(
                        &topic,
                        -1,
                        rec.token,
                        rec.timestamp_ms,
                        ProducerError::Closed,
                    );
                } else {
                    self.admit(rec, now);
                }
            }
            Command::Flush(done) => {
                self.engine.set_flushing(true);
                self.flush_waiters.push(done);
            }
            Command::Close(timeout, done) => {
                self.engine.set_flushing(true);
                self.close = Some((Instant::now() + timeout, done));
                self.abort_open_transaction();
            }
            Command::Txn(call, reply) => {
                if self.close.is_some() {
                    let _ = reply.send(Err(super::txn::TransactionError::Producer(
                        ProducerError::Closed,
                    )));
                } else {
                    self.on_txn_call(call, reply);
                }
            }
        }
    }

    pub(super) fn events(&self) -> mpsc::UnboundedSender<Event> {
        self.events_tx.clone().expect("set in run")
    }

    pub(super) fn on_action(&mut self, action: Action<Token>) {
        match action {
            Action::Deliver(d) => self.complete(d),
            Action::Produce(req) => {
                for (_, _, batch) in &req.batches {
                    self.counters.add_batch(batch.len() as u64);
                }
                let broker = req.broker;
                let events = self.events_tx.as_ref().expect("set in run");
                let sink = self.sinks.entry(broker).or_insert_with(|| {
                    BrokerSink::spawn(broker, self.pool.clone(), events.clone())
                });
                let txn = self.engine.transactional_id().map(|id| ProduceTxn {
                    transactional_id: self
                        .txn
                        .transactional_id
                        .clone()
                        .unwrap_or_else(|| id.into()),
                    versions: self.engine.produce_versions(),
                });
                sink.send(req, txn, &self.pool, events);
            }
            Action::FetchMetadata { topics } => {
                tracing::debug!(topics = topics.len(), "refreshing metadata");
                let pool = self.pool.clone();
                let events = self.events();
                tokio::spawn(async move {
                    let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
                    let result = fetch_metadata(&pool, &names).await;
                    let _ = events.send(Event::Metadata(result));
                });
            }
            Action::InitProducerId => {
                let pool = self.pool.clone();
                let events = self.events();
                let timeout = self.engine.config().request_timeout;
                tokio::spawn(async move {
                    let result = init_producer_id(&pool, timeout).await;
                    let _ = events.send(Event::ProducerId(result));
                });
            }
            Action::Compress(job) => self.compress(job),
            Action::EpochBumped {
                producer_id,
                epoch,
                topic,
                partition,
            } => {
                self.counters.epoch_bumps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    producer_id,
                    epoch,
                    %topic,
                    partition,
                    "bumped the partition's producer epoch after a sequence gap (KIP-360)"
                );
            }
        }
    }

    pub(super) fn on_event(&mut self, ev: Event) {
        let now = Instant::now().into_std();
        match ev {
            Event::Produced {
                id,
                broker,
                result,
                cause,
                latency,
            } => {
                if let Some(latency) = latency {
                    self.counters.add_request_latency(broker, latency);
                }
                match (&result, cause) {
                    (_, Some(cause)) => {
                        self.on_net_error(&cause);
                        self.last_broker_error.insert(broker, cause.to_string());
                    }
                    // The broker answers again: an old transport error is no cause anymore.
                    (ProduceResult::Response(_), None) => {
                        self.last_broker_error.remove(&broker);
                    }
                    _ => {}
                }
                if let ProduceResult::Response(parts) = &result {
                    for p in parts.iter().filter(|p| p.error_code != 0) {
                        tracing::debug!(
                            topic = %p.topic,
                            partition = p.partition,
                            error = courier_core::producer::classify::error_name(p.error_code),
                            message = p.error_message.as_deref().unwrap_or(""),
                            "broker refused a batch"
                        );
                    }
                }
                self.engine.on_produce_result(id, result, now)
            }
            Event::Metadata(Ok(topics)) => {
                self.last_metadata_error = None;
                self.engine.on_metadata(&topics, now)
            }
            Event::Metadata(Err(e)) => {
                self.on_net_error(&e);
                let text = e.to_string();
                // Once per cause: a cluster that stays unreachable is said once, not at
                // every retry (the connection pool says why it cannot connect).
                if self.last_metadata_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("metadata request failed: {text}");
                } else {
                    tracing::debug!("metadata request failed again: {text}");
                }
                self.last_metadata_error = Some(text);
                self.engine.on_metadata_failed(now);
            }
            Event::Audit(topic, result) => self.on_audit(topic, result),
            Event::Txn(reply) => self.on_txn_reply(reply),
            Event::DeadLetterDone => {
                self.dead_letters_pending = self.dead_letters_pending.saturating_sub(1)
            }
            Event::Compressed(c, by_thread) => {
                if by_thread {
                    self.counters
                        .batches_compressed_elsewhere
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.engine.on_compressed(c)
            }
            Event::ProducerId(r) => {
                let r = match r {
                    Ok((id, epoch)) => {
                        tracing::info!(producer_id = id, epoch, "got a producer id");
                        self.last_producer_id_error = None;
                        Ok((id, epoch))
                    }
                    Err((code, cause)) => {
                        if let Some(e) = &cause {
                            self.on_net_error(e);
                        }
                        let why = match &cause {
                            Some(c) => c.to_string(),
                            None => ErrorCode::from_i16(code).to_string(),
                        };
                        if self.last_producer_id_error.as_deref() != Some(why.as_str()) {
                            tracing::warn!("could not get a producer id (InitProducerId): {why}");
                        } else {
                            tracing::debug!("InitProducerId failed again: {why}");
                        }
                        self.last_producer_id_error = Some(why);
                        Err(code)
                    }
                };
                self.engine.on_producer_id(r, now);
            }
        }
    }

    pub(super) fn complete(&mut self, d: Delivery<Token>) {
        if d.resolved {
            let n = d.records.len() as u64;
            let counter = if d.result.is_ok() {
                &self.counters.resolved_persisted
            } else {
                &self.counters.unresolved
            };
            counter.fetch_add(n, Ordering::Relaxed);
            match &d.result {
                Ok(w) => tracing::info!(
                    topic = %d.topic,
                    partition = d.partition,
                    records = n,
                    offset = w.base_offset,
                    "resolved records that outlived delivery.timeout.ms: in the log"
                ),
                Err(_) => tracing::warn!(
                    topic = %d.topic,
                    partition = d.partition,
                    records = n,
                    "records still possibly persisted after delivery.resolution.timeout.ms"
                ),
            }
        }
        match &d.result {
            Ok(w) => {
                // One release of `buffer.memory` per batch rather than per record: each
                // is a lock on the semaphore and may wake a blocked `produce`.
                let bytes: usize = d.records.iter().map(|(t, _)| t.bytes as usize).sum();
                self.memory.add_permits(bytes);
                self.counters
                    .delivered
                    .fetch_add(d.records.len() as u64, Ordering::Relaxed);
                let now = super::now_ms() as u32;
                let mut latencies = LatencyBatch::default();
                for (i, (token, ts)) in d.records.into_iter().enumerate() {
                    // A clock set back while the record waited reads as 0, not 49 days.
                    let ms = now.wrapping_sub(token.sent_ms);
                    latencies.add(if ms > i32::MAX as u32 {
                        0
                    } else {
                        u64::from(ms)
                    });
                    let offset = if w.base_offset >= 0 {
                        w.base_offset + i as i64
                    } else {
                        -1
                    };
                    let md = RecordMetadata {
                        topic: d.topic.clone(),
                        partition: d.partition,
                        offset,
                        timestamp_ms: if w.log_append_time >= 0 {
                            w.log_append_time
                        } else {
                            ts
                        },
                    };
                    token.completion.deliver(Ok(md));
                }
                self.counters.add_latencies(&latencies);
            }
            Err(f) => {
                let err = match (&f.reason, self.fatal.get()) {
                    // Stopped by a TLS or SASL refusal: the records say that, in full.
                    (FailureReason::Stopped { .. }, Some(stop)) => stop.clone(),
                    _ => {
                        let cause = self.last_cause(&d.topic, d.partition, &f.reason);
                        to_producer_error(&d.topic, d.partition, f, self.engine.config(), cause)
                    }
                };
                if !matches!(f.reason, FailureReason::Closed) {
                    tracing::debug!(topic = %d.topic, partition = d.partition, error = %err, "delivery failed");
                }
                for (token, ts) in d.records {
                    self.fail(&d.topic, d.partition, token, ts, err.clone());
                }
            }
        }
    }

    /// Stops the producer when a broker refused its TLS session or credentials for good:
    /// every record fails now with the error that says why, instead of at
    /// `delivery.timeout.ms` with a timeout.
    pub(super) fn on_net_error(&mut self, e: &NetError) {
        if !e.is_definitive() || self.fatal.get().is_some() {
            return;
        }
        let err = ProducerError::from_net(e.clone());
        tracing::error!("{err}");
        let _ = self.fatal.set(err.clone());
        self.engine.stop(err.to_string());
    }

    /// The best known root cause of a timeout: the last transport error of the partition's
    /// leader, or of the metadata requests when the record never had a leader to go to.
    fn last_cause(&self, topic: &str, partition: i32, reason: &FailureReason) -> Option<&str> {
        match reason {
            FailureReason::DeliveryTimeout { .. } => self
                .engine
                .leader(topic, partition)
                .and_then(|b| self.last_broker_error.get(&b))
                .or(self.last_metadata_error.as_ref())
                .map(String::as_str),
            FailureReason::MetadataTimeout | FailureReason::UnknownTopic => {
                self.last_metadata_error.as_deref()
            }
            _ => None,
        }
    }

    /// Reports one record's failure: gives its bytes back to `buffer.memory`, counts
    /// it, and sends it to the dead letter queue first when it failed for good.
    /// (Acknowledged records are reported a batch at a time by `complete`.)
    pub(super) fn fail(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        token: Token,
        ts: i64,
        err: ProducerError,
    ) {
        self.memory.add_permits(token.bytes as usize);
        self.counters.add_failed(err.name(), err.persistence(), 1);
        if let (Some(dlq), Some(original)) = (&self.dlq, &token.original) {
            if **topic != *dlq.topic && should_dead_letter(&err, dlq.possibly_persisted) {
                let record = dead_letter_record(&dlq.topic, topic, partition, ts, original, &err);
                let dlq = dlq.clone();
                let counters = self.counters.clone();
                let source = Box::new(err.clone());
                let completion = token.completion;
                // `flush` and `close` wait for these reports too.
                self.dead_letters_pending += 1;
                let events = self.events();
                tokio::spawn(async move {
                    let report = match dlq.producer.send(record).await {
                        Ok(md) => {
                            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            ProducerError::DeadLettered {
                                source,
                                dlq_topic: md.topic.to_string(),
                                dlq_partition: md.partition,
                                dlq_offset: md.offset,
                            }
                        }
                        Err(e) => {
                            counters
                                .dead_letter_failures
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, "could not write a failed record to the dead letter queue");
                            ProducerError::DeadLetterFailed {
                                source,
                                dlq_error: Box::new(e),
                            }
                        }
                    };
                    completion.deliver(Err(report));
                    let _ = events.send(Event::DeadLetterDone);
                });
                return;
            }
        }
        token.completion.deliver(Err(err));
    }

    /// Hands a record to the engine, or to the durability audit first.
    pub(super) fn admit(&mut self, rec: Record<Token>, now: Instant) {
        if self.durability_check == DurabilityCheck::Off {
            self.engine.append(rec, now.into_std());
            return;
        }
        // The common case, checked without hashing: the same topic as the last record,
        // already let through and not due for a new audit.
        if let Some((topic, recheck_at)) = &self.admitted {
            // Pointers first: a caller that keeps one `Arc` per topic skips the compare.
            if (Arc::ptr_eq(topic, &rec.topic) || **topic == *rec.topic) && now < *recheck_at {
                self.engine.append(rec, now.into_std());
                return;
            }
        }
        let enforce = self.durability_check == DurabilityCheck::Enforce;
        let topic = rec.topic.clone();
        let state = self.audits.get_mut(&topic);
        let start_audit = match state {
            None => true,
            Some(AuditState::Done { recheck_at, .. }) => now >= *recheck_at,
            Some(AuditState::Running { .. }) => false,
        };
        if start_audit {
            // A stale verdict is re-checked; meanwhile records follow the old one
            // under warn, and wait under enforce.
            let held = match self.audits.remove(&topic) {
                Some(AuditState::Running { held }) => held,
                _ => Vec::new(),
            };
            self.audits
                .insert(topic.clone(), AuditState::Running { held });
            self.spawn_audit(topic.clone());
        }
        match self.audits.get_mut(&topic) {
            Some(AuditState::Running { held }) if enforce => held.push(rec),
            Some(AuditState::Done {
                verdict: Err(e), ..
            }) if enforce => {
                let e = e.clone();
                self.fail(&topic, -1, rec.token, rec.timestamp_ms, e);
            }
            Some(AuditState::Done {
                recheck_at,
                verdict,
            }) => {
                if verdict.is_ok() || !enforce {
                    self.admitted = Some((topic, *recheck_at));
                }
                self.engine.append(rec, now.into_std());
            }
            Some(AuditState::Running { .. }) => {
                // Under warn, records pass while the audit runs (and a broker may
                // never answer it): keep them on the fast path; `on_audit` clears
                // `admitted` when the verdict arrives.
                self.admitted = Some((topic, now + Duration::from_secs(3600)));
                self.engine.append(rec, now.into_std());
            }
            None => self.engine.append(rec, now.into_std()),
        }
    }

    pub(super) fn spawn_audit(&self, topic: Arc<str>) {
        let pool = self.pool.clone();
        let events = self.events();
        let (acks, idempotence) = (self.acks, self.idempotence);
        let max_block = self.engine.config().max_block;
        tokio::spawn(async move {
            let result = audit_with_pool(&pool, acks, idempotence, &topic, max_block).await;
            let _ = events.send(Event::Audit(topic, result));
        });
    }

    pub(super) fn on_audit(
        &mut self,
        topic: Arc<str>,
        result: Result<DurabilityReport, ProducerError>,
    ) {
        self.admitted = None;
        let enforce = self.durability_check == DurabilityCheck::Enforce;
        // Not durability, but read by the same request: batches close below the largest
        // one the topic takes (issue 17).
        if let Ok(DurabilityReport {
            max_message_bytes: Some(limit),
            ..
        }) = &result
        {
            self.engine.set_max_message_bytes(&topic, *limit);
        }
        if let Ok(report) = &result {
            self.counters.set_durability(&topic, report.is_aligned());
        }
        let verdict = match result {
            Ok(report) if report.is_aligned() => {
                tracing::info!(topic = %topic, "durability audit: all three layers aligned");
                Ok(())
            }
            Ok(report) => {
                tracing::warn!(
                    topic = %topic,
                    check = %self.durability_check,
                    "durability audit: {}",
                    report.summary()
                );
                Err(ProducerError::DurabilityMisaligned {
                    topic: topic.to_string(),
                    report: Box::new(report),
                })
            }
            // An unknown topic is the engine's to report, with its own wait for the
            // topic to appear; there is nothing to audit until it exists.
            Err(ProducerError::UnknownTopic { .. }) => {
                let recheck_at = Instant::now() + Duration::from_secs(1);
                let held = match self.audits.insert(
                    topic.clone(),
                    AuditState::Done {
                        recheck_at,
                        verdict: Ok(()),
                    },
                ) {
                    Some(AuditState::Running { held }) => held,
                    _ => Vec::new(),
                };
                for rec in held {
                    self.engine.append(rec, Instant::now().into_std());
                }
                return;
            }
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "durability audit failed");
                Err(e)
            }
        };
        let held = match self.audits.insert(
            topic.clone(),
            AuditState::Done {
                recheck_at: Instant::now() + self.engine.config().metadata_max_age,
                verdict: verdict.clone(),
            },
        ) {
            Some(AuditState::Running { held }) => held,
            _ => Vec::new(),
        };
        for rec in held {
            match (&verdict, enforce) {
                (Err(e), true) => {
                    let e = e.clone();
                    self.fail(&topic, -1, rec.token, rec.timestamp_ms, e);
                }
                _ => self.engine.append(rec, Instant::now().into_std()),
            }
        }
    }

    pub(super) fn holds_records(&self) -> bool {
        self.audits
            .values()
            .any(|a| matches!(a, AuditState::Running { held } if !held.is_empty()))
    }

    pub(super) fn take_held(&mut self) -> Vec<(Arc<str>, Vec<Record<Token>>)> {
        let mut out = Vec::new();
        for (topic, state) in self.audits.iter_mut() {
            if let AuditState::Running { held } = state {
                if !held.is_empty() {
                    out.push((topic.clone(), std::mem::take(held)));
                }
            }
        }
        out
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
