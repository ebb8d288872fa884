//! The async producer: a thin driver around `courier_core::producer::ProducerEngine`.
//!
//! One driver task owns the engine. Application calls put records on a channel
//! (after taking their share of `buffer.memory`), the driver feeds them to the engine,
//! carries out the engine's actions (Produce requests, metadata, producer id) over the
//! connection pool, and completes each record's delivery future or callback.
//!
//! Produce requests for one broker are queued on its connection in the order the engine
//! issued them (the engine pipelines several batches of a partition, and the broker must
//! see them in sequence order): by the driver itself when the connection is open and has a
//! free in-flight slot, else by the broker's sink task, which connects or waits for a slot
//! first. The connection's reader hands each outcome straight back to the driver.
//!
//! With a `compression.type`, full batches (8 KiB or more) are compressed on one thread
//! per producer, `courier-compress`, while the driver is busy (see `Duty`): the driver
//! goes on appending records meanwhile. Otherwise, and for smaller batches, the driver
//! compresses a batch when it sends it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use courier_core::producer::{
    Action, CompressJob, Compressed, Delivery, EngineConfig, FailureReason, ProduceRequest,
    ProduceResult, ProducerEngine, Record, TopicMetadata,
};
use courier_core::{Compression, Compressor};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::audit::{audit_with_pool, DurabilityReport};
use crate::config::{Acks, CompressionType, DlqPossiblyPersisted, DurabilityCheck, ProducerConfig};
use crate::dlq::{dead_letter_record, should_dead_letter, Original};
use crate::error::{ErrorCode, Persistence, ProducerError};
use crate::metrics::{Counters, DeliveryMetrics};
use crate::net::{self, ConnectionPool, NetError, ProduceRequestParts};
use crate::queue::BatchQueue;

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic. Shared, so that a producer writing many records to one topic clones a
    /// pointer per record instead of allocating a name (`Arc<str>` converts from
    /// `&str` and `String`).
    pub topic: Arc<str>,
    /// Explicit partition; `None` lets the partitioner choose (Java's murmur2 of the key,
    /// or a sticky partition for unkeyed records).
    pub partition: Option<i32>,
    /// Key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers, in order; names may repeat.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in milliseconds since the epoch; `None` takes the current time.
    pub timestamp_ms: Option<i64>,
}

/// A topic name for [`ProducerRecord::new`]: `&str`, `String` and `&String` (one
/// allocation), or an `Arc<str>` the caller keeps (a pointer copy, no allocation per
/// record).
pub trait IntoTopic {
    /// The shared name.
    fn into_topic(self) -> Arc<str>;
}

impl IntoTopic for Arc<str> {
    fn into_topic(self) -> Arc<str> {
        self
    }
}

impl IntoTopic for &Arc<str> {
    fn into_topic(self) -> Arc<str> {
        self.clone()
    }
}

impl IntoTopic for &str {
    fn into_topic(self) -> Arc<str> {
        self.into()
    }
}

impl IntoTopic for String {
    fn into_topic(self) -> Arc<str> {
        self.into()
    }
}

impl IntoTopic for &String {
    fn into_topic(self) -> Arc<str> {
        self.as_str().into()
    }
}

impl ProducerRecord {
    /// A record for `topic` with no key and no value yet.
    pub fn new(topic: impl IntoTopic) -> Self {
        Self {
            topic: topic.into_topic(),
            ..Self::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// Sends to this partition instead of letting the partitioner choose.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the CreateTime timestamp in milliseconds.
    pub fn timestamp_ms(mut self, ts: i64) -> Self {
        self.timestamp_ms = Some(ts);
        self
    }

    /// Bytes the record holds in `buffer.memory` until it is delivered: what it adds
    /// to a batch, a bound the encoder never exceeds.
    fn buffered_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + 32
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition; -1 when the broker did not say (acks=0).
    pub offset: i64,
    /// The record's timestamp: its CreateTime, or the broker's LogAppendTime when the
    /// topic uses that.
    pub timestamp_ms: i64,
}

/// The outcome of one record.
pub type DeliveryResult = Result<RecordMetadata, ProducerError>;

type Callback = Box<dyn FnOnce(DeliveryResult) + Send + 'static>;

enum Completion {
    Future(oneshot::Sender<DeliveryResult>),
    Callback(Callback),
}

/// The engine's per-record token: how to report, and what to give back to
/// `buffer.memory`.
struct Token {
    completion: Completion,
    bytes: u32,
    /// The record's key, value and headers, kept only when a dead letter queue may
    /// need them (the bytes are shared, not copied).
    original: Option<Box<Original>>,
}

/// Resolves to a record's delivery report.
#[must_use = "a delivery future does nothing unless awaited; drop it only if you do not need the report"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<DeliveryResult>,
}

impl Future for DeliveryFuture {
    type Output = DeliveryResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ProducerError::Closed)))
    }
}

enum Command {
    Send(Record<Token>),
    Flush(oneshot::Sender<()>),
    Close(Duration, oneshot::Sender<()>),
}

enum Event {
    Produced(u64, ProduceResult),
    Metadata(Result<Vec<TopicMetadata>, NetError>),
    ProducerId(Result<(i64, i16), i16>),
    Audit(Arc<str>, Result<DurabilityReport, ProducerError>),
    /// A batch compressed, by the compression thread (`true`) or inline.
    Compressed(Compressed, bool),
}

struct Shared {
    config: ProducerConfig,
    commands: Arc<BatchQueue<Command>>,
    memory: Arc<Semaphore>,
    closed: AtomicBool,
    pool: Arc<ConnectionPool>,
    counters: Arc<Counters>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last producer handle is gone: the driver delivers what is left and stops.
        self.commands.close_senders();
    }
}

/// The durability audit of one topic, as the driver tracks it.
enum AuditState {
    /// Running; under `enforce`, the topic's records wait here.
    Running { held: Vec<Record<Token>> },
    /// Finished: `Ok` lets records through; `Err` fails them under `enforce`. Checked
    /// again after `recheck_at` (the topic's settings can change).
    Done {
        recheck_at: Instant,
        verdict: Result<(), ProducerError>,
    },
}

/// The dead letter queue: its own durable producer and where it writes.
#[derive(Clone)]
struct DeadLetterQueue {
    producer: Producer,
    topic: Arc<str>,
    possibly_persisted: DlqPossiblyPersisted,
}

/// A Kafka producer. Cheap to clone: clones share one driver and one buffer.
///
/// ```no_run
/// use courier::{Producer, ProducerConfig, ProducerRecord};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ProducerConfig::builder()
///     .set("bootstrap.servers", "127.0.0.1:9092")?
///     .set("compression.type", "lz4")?
///     .build()?;
/// let producer = Producer::new(config)?;
/// let md = producer
///     .send(ProducerRecord::new("orders").key("order-1").value("{\"amount\":10}"))
///     .await?;
/// println!("{} [{}] @ {}", md.topic, md.partition, md.offset);
/// producer.close(std::time::Duration::from_secs(30)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.shared.config.client_id())
            .finish_non_exhaustive()
    }
}

fn engine_config(config: &ProducerConfig) -> Result<EngineConfig, ProducerError> {
    let compression = match config.compression() {
        CompressionType::None => Compression::None,
        CompressionType::Gzip => Compression::gzip(),
        CompressionType::Snappy => Compression::Snappy,
        CompressionType::Lz4 => Compression::Lz4,
        CompressionType::Zstd => {
            return Err(ProducerError::Fatal {
                code: None,
                reason: "compression.type=zstd is not supported for sending yet (no pure-Rust \
                         zstd encoder is good enough): use lz4, snappy or gzip"
                    .into(),
            })
        }
    };
    Ok(EngineConfig {
        acks: match config.acks() {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        },
        idempotence: config.enable_idempotence(),
        batch_size: config.batch_size(),
        linger: config.linger(),
        max_in_flight: config.max_in_flight_requests_per_connection() as usize,
        max_request_size: config.max_request_size(),
        request_timeout: config.request_timeout(),
        delivery_timeout: config.delivery_timeout(),
        retries: config.retries(),
        retry_backoff: config.retry_backoff(),
        retry_backoff_max: config.retry_backoff_max(),
        metadata_max_age: config.metadata_max_age(),
        max_block: config.max_block(),
        compression,
        compress_elsewhere_from: Some(COMPRESS_ELSEWHERE_FROM),
    })
}

/// Batches this large (uncompressed) or larger are compressed on the producer's
/// compression thread, not by the driver task that also appends records and handles
/// responses: at full speed compression is the largest share of the driver's work (LZ4 of
/// JSON-like 1 KiB records took half of it), and on two threads the two halves overlap.
/// Smaller batches - a lightly loaded producer's, sent at `linger.ms` - are compressed
/// inline: for them the hand-over would cost more than it saves, in CPU and latency.
const COMPRESS_ELSEWHERE_FROM: usize = 8 * 1024;

/// Batches the compression thread may hold at once. Beyond that it is the slower of the
/// two (a costly codec) and the driver compresses the next ones itself, so both work and
/// the thread's queue stays short.
const COMPRESS_JOBS_MAX: usize = 16;

impl Producer {
    /// Starts a producer on the current tokio runtime. Connections open lazily: an
    /// unreachable cluster shows up in the first records' delivery reports.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(config: ProducerConfig) -> Result<Producer, ProducerError> {
        let engine_cfg = engine_config(&config)?;
        for notice in config.notices() {
            tracing::info!(%notice, "producer configuration adjusted");
        }
        let bootstrap = config
            .bootstrap_servers()
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let pool = Arc::new(ConnectionPool::from_config(&config));
        let memory = Arc::new(Semaphore::new(
            config.buffer_memory().min(Semaphore::MAX_PERMITS),
        ));
        let commands = Arc::new(BatchQueue::new());
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        tracing::info!(
            client_id = config.client_id(),
            bootstrap = %bootstrap,
            acks = engine_cfg.acks,
            idempotence = engine_cfg.idempotence,
            "producer starting"
        );
        let counters = Arc::new(Counters::default());
        let dlq = match config.dlq_topic() {
            Some(topic) => Some(DeadLetterQueue {
                producer: Producer::new(dead_letter_config(&config))?,
                topic: Arc::from(topic),
                possibly_persisted: config.dlq_possibly_persisted(),
            }),
            None => None,
        };
        let driver = Driver {
            engine: ProducerEngine::new(engine_cfg, seed),
            pool: pool.clone(),
            memory: memory.clone(),
            sinks: HashMap::new(),
            flush_waiters: Vec::new(),
            close: None,
            events_tx: None,
            last_metadata_error: None,
            counters: counters.clone(),
            durability_check: config.durability_check(),
            acks: config.acks(),
            idempotence: config.enable_idempotence(),
            audits: HashMap::new(),
            admitted: None,
            dlq,
            compress_jobs: None,
            compress_queued: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            compress_thread_gone: false,
            inline_compressor: None,
        };
        tokio::spawn(driver.run(commands.clone()));
        Ok(Producer {
            shared: Arc::new(Shared {
                config,
                commands,
                memory,
                closed: AtomicBool::new(false),
                pool,
                counters,
            }),
        })
    }

    /// The configuration the producer runs with.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// The delivery counters so far.
    pub fn metrics(&self) -> DeliveryMetrics {
        let limit = self
            .shared
            .config
            .buffer_memory()
            .min(Semaphore::MAX_PERMITS);
        let free = self.shared.memory.available_permits().min(limit);
        self.shared.counters.snapshot((limit - free) as u64)
    }

    /// Audits `topic` against this producer's `acks` and idempotence: its replication
    /// factor and effective `min.insync.replicas` (see [`crate::audit`]).
    pub async fn durability_report(&self, topic: &str) -> Result<DurabilityReport, ProducerError> {
        audit_with_pool(
            &self.shared.pool,
            self.shared.config.acks(),
            self.shared.config.enable_idempotence(),
            topic,
            self.shared.config.max_block(),
        )
        .await
    }

    /// Sends a record and waits for its delivery report.
    ///
    /// To have many records in flight, call [`produce`](Self::produce) for each and
    /// await the returned futures later, or run several `send`s concurrently.
    pub async fn send(&self, record: ProducerRecord) -> DeliveryResult {
        self.produce(record).await?.await
    }

    /// Queues a record, waiting up to `max.block.ms` for room in `buffer.memory`, and
    /// returns the future of its delivery report.
    pub async fn produce(&self, record: ProducerRecord) -> Result<DeliveryFuture, ProducerError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(record, Completion::Future(tx), true).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Queues a record and calls `callback` with its delivery report (on the
    /// producer's driver task: keep it short). Waits up to `max.block.ms` for room in
    /// `buffer.memory`.
    pub async fn produce_with_callback(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(DeliveryResult) + Send + 'static,
    ) -> Result<(), ProducerError> {
        self.enqueue(record, Completion::Callback(Box::new(callback)), true)
            .await
    }

    /// Queues a record without waiting: fails with [`ProducerError::BufferFull`] at once
    /// when `buffer.memory` is full.
    pub fn try_produce(&self, record: ProducerRecord) -> Result<DeliveryFuture, ProducerError> {
        let (tx, rx) = oneshot::channel();
        let bytes = self.check(&record)?;
        let permit =
            self.shared
                .memory
                .try_acquire_many(bytes)
                .map_err(|_| ProducerError::BufferFull {
                    buffer_memory: self.shared.config.buffer_memory(),
                    max_block: Duration::ZERO,
                })?;
        permit.forget();
        self.submit(record, Completion::Future(tx), bytes)?;
        Ok(DeliveryFuture { rx })
    }

    fn check(&self, record: &ProducerRecord) -> Result<u32, ProducerError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ProducerError::Closed);
        }
        let size = record.buffered_size();
        let limit = self
            .shared
            .config
            .buffer_memory()
            .min(Semaphore::MAX_PERMITS);
        if size > limit {
            return Err(ProducerError::RecordExceedsBufferMemory {
                size,
                buffer_memory: self.shared.config.buffer_memory(),
            });
        }
        Ok(size as u32)
    }

    async fn enqueue(
        &self,
        record: ProducerRecord,
        completion: Completion,
        block: bool,
    ) -> Result<(), ProducerError> {
        let bytes = self.check(&record)?;
        // Fast path: room in the buffer now, no timer needed.
        if let Ok(permit) = self.shared.memory.try_acquire_many(bytes) {
            permit.forget();
            return self.submit(record, completion, bytes);
        }
        let max_block = self.shared.config.max_block();
        let acquire = self.shared.memory.clone().acquire_many_owned(bytes);
        let permit = if block {
            match tokio::time::timeout(max_block, acquire).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(ProducerError::Closed),
                Err(_) => {
                    return Err(ProducerError::BufferFull {
                        buffer_memory: self.shared.config.buffer_memory(),
                        max_block,
                    })
                }
            }
        } else {
            unreachable!("non-blocking sends go through try_produce")
        };
        // The driver gives the bytes back when the record is delivered.
        permit.forget();
        self.submit(record, completion, bytes)
    }

    fn submit(
        &self,
        record: ProducerRecord,
        completion: Completion,
        bytes: u32,
    ) -> Result<(), ProducerError> {
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let original = self.shared.config.dlq_topic().map(|_| {
            Box::new(Original {
                key: record.key.clone(),
                value: record.value.clone(),
                headers: record.headers.clone(),
            })
        });
        let rec = Record {
            topic: record.topic,
            partition: record.partition,
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp_ms,
            token: Token {
                completion,
                bytes,
                original,
            },
        };
        self.shared.commands.push(Command::Send(rec)).map_err(|_| {
            self.shared.memory.add_permits(bytes as usize);
            ProducerError::Closed
        })?;
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends every queued record without waiting for `linger.ms` and waits until each
    /// has its delivery report.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.push(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops accepting records, delivers what is queued and in flight, and shuts the
    /// connections. Records still undelivered after `timeout` fail with
    /// [`ProducerError::Closed`] (in flight: possibly persisted).
    pub async fn close(&self, timeout: Duration) {
        self.shared.closed.store(true, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self
            .shared
            .commands
            .push(Command::Close(timeout, tx))
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// The dead letter queue's own producer: durable whatever the main one is, with no
/// queue of its own and no audit (a failed dead letter is reported, not looped).
fn dead_letter_config(config: &ProducerConfig) -> ProducerConfig {
    let mut c = config.clone();
    c.acks = Acks::All;
    c.enable_idempotence = true;
    c.retries = c.retries.max(1);
    c.max_in_flight_requests_per_connection = c.max_in_flight_requests_per_connection.clamp(1, 5);
    c.dlq_topic = None;
    c.durability_check = DurabilityCheck::Off;
    c.client_id = format!("{}-dlq", c.client_id);
    c
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Driver {
    engine: ProducerEngine<Token>,
    pool: Arc<ConnectionPool>,
    memory: Arc<Semaphore>,
    sinks: HashMap<i32, BrokerSink>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    close: Option<(Instant, oneshot::Sender<()>)>,
    events_tx: Option<mpsc::UnboundedSender<Event>>,
    /// Why the last metadata request failed, for the error of records that time out
    /// waiting for metadata.
    last_metadata_error: Option<String>,
    counters: Arc<Counters>,
    durability_check: DurabilityCheck,
    acks: Acks,
    idempotence: bool,
    audits: HashMap<Arc<str>, AuditState>,
    /// The last topic let through by the audit, and until when (a fast path).
    admitted: Option<(Arc<str>, Instant)>,
    dlq: Option<DeadLetterQueue>,
    /// The compression thread's job queue, started with the first job.
    compress_jobs: Option<std::sync::mpsc::Sender<CompressJob>>,
    /// Jobs on the compression thread's queue or in its hands (the thread counts down).
    compress_queued: Arc<std::sync::atomic::AtomicUsize>,
    /// The thread could not start or ended early: compress inline.
    compress_thread_gone: bool,
    /// For batches compressed by the driver after all.
    inline_compressor: Option<Box<Compressor>>,
}

impl Driver {
    async fn run(mut self, commands: Arc<BatchQueue<Command>>) {
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
                more = commands.recv_all(&mut batch), if commands_open => Woken::Commands(more),
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
                    for cmd in batch.drain(..) {
                        self.on_command(cmd, woke_at);
                    }
                }
                Woken::Commands(false) => {
                    // Every handle is gone: deliver what is left, then stop.
                    commands_open = false;
                    if self.close.is_none() {
                        self.engine.set_flushing(true);
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
            self.engine.poll(now.into_std(), &mut actions);
            for action in actions.drain(..) {
                self.on_action(action);
            }
            self.counters
                .retries
                .store(self.engine.retries_total(), Ordering::Relaxed);
            self.counters
                .requests_in_flight
                .store(self.engine.requests_in_flight() as u64, Ordering::Relaxed);
            if self.engine.is_idle() && !self.holds_records() {
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

    async fn shutdown(&mut self, deadline: Instant) {
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

    fn on_command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Send(rec) => {
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
            }
        }
    }

    /// Hands a batch to the compression thread, starting it first if needed, or
    /// compresses it here when [`COMPRESS_JOBS_MAX`] are already out (the thread is the
    /// slower one then: both work) or the thread cannot run. The thread ends when the
    /// driver does (its job queue closes).
    fn compress(&mut self, mut job: CompressJob) {
        // The thread's own count, not the results the driver has taken back: those can
        // wait in the event queue while the driver appends a long run of records.
        let queued = self.compress_queued.load(Ordering::Acquire);
        if queued < COMPRESS_JOBS_MAX && !self.compress_thread_gone {
            if self.compress_jobs.is_none() {
                let (tx, rx) = std::sync::mpsc::channel::<CompressJob>();
                let events = self.events();
                let in_hand = self.compress_queued.clone();
                let started = std::thread::Builder::new()
                    .name("courier-compress".into())
                    .spawn(move || {
                        let mut compressor = Compressor::new();
                        while let Ok(job) = rx.recv() {
                            let done = job.run(&mut compressor);
                            in_hand.fetch_sub(1, Ordering::Release);
                            if events.send(Event::Compressed(done, true)).is_err() {
                                return;
                            }
                        }
                    });
                match started {
                    Ok(_) => self.compress_jobs = Some(tx),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not start the compression thread; compressing inline");
                        self.compress_thread_gone = true;
                    }
                }
            }
            if let Some(tx) = &self.compress_jobs {
                // Counted before the send: the thread may finish it at once.
                self.compress_queued.fetch_add(1, Ordering::Relaxed);
                match tx.send(job) {
                    Ok(()) => return,
                    Err(std::sync::mpsc::SendError(j)) => {
                        // Only a panic ends the thread early: a bug. The jobs it held are
                        // lost; their batches expire at `delivery.timeout.ms`, reported
                        // not persisted. Compress inline from now on.
                        tracing::error!("the compression thread ended; compressing inline");
                        self.compress_queued.fetch_sub(1, Ordering::Relaxed);
                        self.compress_jobs = None;
                        self.compress_thread_gone = true;
                        job = j;
                    }
                }
            }
        }
        // Through the event queue like the thread's results: the driver polls the engine
        // again after taking an event, which sends the batch.
        let compressor = self
            .inline_compressor
            .get_or_insert_with(|| Box::new(Compressor::new()));
        let done = job.run(compressor);
        let _ = self.events().send(Event::Compressed(done, false));
    }

    fn events(&self) -> mpsc::UnboundedSender<Event> {
        self.events_tx.clone().expect("set in run")
    }

    fn on_action(&mut self, action: Action<Token>) {
        match action {
            Action::Deliver(d) => self.complete(d),
            Action::Produce(req) => {
                let broker = req.broker;
                let events = self.events_tx.as_ref().expect("set in run");
                let sink = self.sinks.entry(broker).or_insert_with(|| {
                    BrokerSink::spawn(broker, self.pool.clone(), events.clone())
                });
                sink.send(req, &self.pool, events);
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
            Action::EpochBumped { producer_id, epoch } => {
                self.counters.epoch_bumps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    producer_id,
                    epoch,
                    "bumped the producer epoch after a sequence gap (KIP-360)"
                );
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        let now = Instant::now().into_std();
        match ev {
            Event::Produced(id, result) => {
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
                tracing::warn!(error = %e, "metadata request failed");
                self.last_metadata_error = Some(e.to_string());
                self.engine.on_metadata_failed(now);
            }
            Event::Audit(topic, result) => self.on_audit(topic, result),
            Event::Compressed(c, by_thread) => {
                if by_thread {
                    self.counters
                        .batches_compressed_elsewhere
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.engine.on_compressed(c)
            }
            Event::ProducerId(r) => {
                match r {
                    Ok((id, epoch)) => tracing::info!(producer_id = id, epoch, "got a producer id"),
                    Err(code) => tracing::warn!(code, "InitProducerId failed"),
                }
                self.engine.on_producer_id(r, now);
            }
        }
    }

    fn complete(&mut self, d: Delivery<Token>) {
        match &d.result {
            Ok(w) => {
                // One release of `buffer.memory` per batch rather than per record: each
                // is a lock on the semaphore and may wake a blocked `produce`.
                let bytes: usize = d.records.iter().map(|(t, _)| t.bytes as usize).sum();
                self.memory.add_permits(bytes);
                self.counters
                    .delivered
                    .fetch_add(d.records.len() as u64, Ordering::Relaxed);
                for (i, (token, ts)) in d.records.into_iter().enumerate() {
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
                    deliver(token.completion, Ok(md));
                }
            }
            Err(f) => {
                let err = to_producer_error(
                    &d.topic,
                    d.partition,
                    f,
                    self.engine.config(),
                    self.last_metadata_error.as_deref(),
                );
                if !matches!(f.reason, FailureReason::Closed) {
                    tracing::debug!(topic = %d.topic, partition = d.partition, error = %err, "delivery failed");
                }
                for (token, ts) in d.records {
                    self.fail(&d.topic, d.partition, token, ts, err.clone());
                }
            }
        }
    }

    /// Reports one record's failure: gives its bytes back to `buffer.memory`, counts
    /// it, and sends it to the dead letter queue first when it failed for good.
    /// (Acknowledged records are reported a batch at a time by `complete`.)
    fn fail(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        token: Token,
        ts: i64,
        err: ProducerError,
    ) {
        self.memory.add_permits(token.bytes as usize);
        self.counters.add_failed(err.name(), 1);
        if let (Some(dlq), Some(original)) = (&self.dlq, &token.original) {
            if **topic != *dlq.topic && should_dead_letter(&err, dlq.possibly_persisted) {
                let record = dead_letter_record(&dlq.topic, topic, partition, ts, original, &err);
                let dlq = dlq.clone();
                let counters = self.counters.clone();
                let source = Box::new(err.clone());
                let completion = token.completion;
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
                    deliver(completion, Err(report));
                });
                return;
            }
        }
        deliver(token.completion, Err(err));
    }

    /// Hands a record to the engine, or to the durability audit first.
    fn admit(&mut self, rec: Record<Token>, now: Instant) {
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

    fn spawn_audit(&self, topic: Arc<str>) {
        let pool = self.pool.clone();
        let events = self.events();
        let (acks, idempotence) = (self.acks, self.idempotence);
        let max_block = self.engine.config().max_block;
        tokio::spawn(async move {
            let result = audit_with_pool(&pool, acks, idempotence, &topic, max_block).await;
            let _ = events.send(Event::Audit(topic, result));
        });
    }

    fn on_audit(&mut self, topic: Arc<str>, result: Result<DurabilityReport, ProducerError>) {
        self.admitted = None;
        let enforce = self.durability_check == DurabilityCheck::Enforce;
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

    fn holds_records(&self) -> bool {
        self.audits
            .values()
            .any(|a| matches!(a, AuditState::Running { held } if !held.is_empty()))
    }

    fn take_held(&mut self) -> Vec<(Arc<str>, Vec<Record<Token>>)> {
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

fn deliver(c: Completion, r: DeliveryResult) {
    match c {
        Completion::Future(tx) => {
            let _ = tx.send(r);
        }
        Completion::Callback(cb) => cb(r),
    }
}

/// How much of its time the driver task spends working rather than waiting, over
/// windows of [`Duty::WINDOW`]: when it is busy, compressing on the compression thread
/// frees it for the records (throughput); when it has time to spare, compressing inline
/// saves the hand-over (CPU: two thread wake-ups per batch, which for 1 KiB records cost
/// about a fifth more CPU per record on a real broker). The two thresholds are apart so
/// that the lighter load of one mode does not flip it straight back to the other.
struct Duty {
    window_start: Instant,
    busy: Duration,
    offloading: bool,
}

impl Duty {
    const WINDOW: Duration = Duration::from_millis(20);
    /// Busy share from which batches go to the compression thread.
    const ON: f64 = 0.6;
    /// Busy share under which they are compressed inline again.
    const OFF: f64 = 0.3;

    fn new(now: Instant) -> Self {
        Duty {
            window_start: now,
            busy: Duration::ZERO,
            offloading: false,
        }
    }

    /// Counts a span of work (from waking to going back to sleep). At the end of a
    /// window, returns the mode for the next one if it changes.
    fn worked(&mut self, from: Instant, to: Instant) -> Option<bool> {
        self.busy += to.saturating_duration_since(from);
        let elapsed = to.saturating_duration_since(self.window_start);
        if elapsed < Self::WINDOW {
            return None;
        }
        let share = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        self.window_start = to;
        self.busy = Duration::ZERO;
        let next = if self.offloading {
            share >= Self::OFF
        } else {
            share >= Self::ON
        };
        (next != self.offloading).then(|| {
            self.offloading = next;
            next
        })
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Where the driver hands one broker's Produce requests, in the order the engine issued
/// them.
///
/// The fast path queues a request on the broker's connection from the driver itself, and
/// the connection's reader passes the outcome straight back (`produce_with`): per request
/// that is one wake-up of the connection's writer and one of the driver. A request takes
/// the slow path - a task that may connect or wait for a window slot - when there is no
/// open connection, the window is full, or requests before it are still on the slow path
/// (order is kept: they are queued on the connection first).
struct BrokerSink {
    broker: i32,
    /// Requests handed to the slow path and not yet queued on a connection.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
    slow: mpsc::UnboundedSender<ProduceRequest>,
}

impl BrokerSink {
    fn spawn(broker: i32, pool: Arc<ConnectionPool>, events: mpsc::UnboundedSender<Event>) -> Self {
        let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (slow, rx) = mpsc::unbounded_channel();
        tokio::spawn(slow_sink(broker, pool, rx, events, backlog.clone()));
        BrokerSink {
            broker,
            backlog,
            slow,
        }
    }

    fn send(
        &self,
        req: ProduceRequest,
        pool: &ConnectionPool,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        // Acquire pairs with the slow path's Release: at zero, everything it was handed
        // is already queued on a connection, so this request goes behind it.
        if self.backlog.load(Ordering::Acquire) == 0 {
            if let Some(conn) = pool.ready(self.broker) {
                if let Some(permit) = conn.try_reserve() {
                    produce_on(&conn, permit, req, events);
                    return;
                }
            }
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(req)) = self.slow.send(req) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            not_sent(events, req.id);
        }
    }
}

/// The slow path of a [`BrokerSink`]: connects when needed and waits for window slots,
/// taking requests in order.
async fn slow_sink(
    broker: i32,
    pool: Arc<ConnectionPool>,
    mut requests: mpsc::UnboundedReceiver<ProduceRequest>,
    events: mpsc::UnboundedSender<Event>,
    backlog: Arc<std::sync::atomic::AtomicUsize>,
) {
    while let Some(req) = requests.recv().await {
        let id = req.id;
        match pool.get(broker).await {
            Err(e) => {
                tracing::debug!(broker, error = %e, "no connection for a Produce request");
                not_sent(&events, id);
            }
            Ok(conn) => match conn.reserve().await {
                Ok(permit) => produce_on(&conn, permit, req, &events),
                Err(_) => not_sent(&events, id),
            },
        }
        backlog.fetch_sub(1, Ordering::Release);
    }
}

/// Reports Produce request `id` as never written (no connection, or none accepting it).
fn not_sent(events: &mpsc::UnboundedSender<Event>, id: u64) {
    let _ = events.send(Event::Produced(
        id,
        ProduceResult::Transport {
            maybe_written: false,
        },
    ));
}

/// Queues `req` on `conn`; its outcome comes back to the driver as [`Event::Produced`].
fn produce_on(
    conn: &net::BrokerConnection,
    permit: net::InFlightPermit,
    req: ProduceRequest,
    events: &mpsc::UnboundedSender<Event>,
) {
    let ProduceRequest {
        id,
        broker,
        acks,
        timeout_ms,
        batches,
    } = req;
    let mut topics: Vec<net::TopicRecords> = Vec::new();
    for (topic, partition, batch) in batches {
        match topics.iter_mut().find(|(t, _)| **t == *topic) {
            Some((_, parts)) => parts.push((partition, Some(batch))),
            None => topics.push((topic.to_string(), vec![(partition, Some(batch))])),
        }
    }
    let parts = ProduceRequestParts {
        transactional_id: None,
        acks,
        timeout_ms,
        topics,
    };
    let events = events.clone();
    conn.produce_with(permit, parts, move |outcome| {
        let result = match outcome {
            Ok(None) => ProduceResult::WrittenNoAck,
            Ok(Some(resp)) => ProduceResult::Response(
                resp.responses
                    .iter()
                    .flat_map(|t| {
                        let name = t.name.0.to_string();
                        t.partition_responses.iter().map(move |p| {
                            courier_core::producer::PartitionResponse {
                                topic: name.clone(),
                                partition: p.index,
                                error_code: p.error_code,
                                base_offset: p.base_offset,
                                log_append_time: p.log_append_time_ms,
                                error_message: p.error_message.as_ref().map(|m| m.to_string()),
                            }
                        })
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(broker, error = %e, "Produce request failed");
                ProduceResult::Transport {
                    maybe_written: e.maybe_written(),
                }
            }
        };
        let _ = events.send(Event::Produced(id, result));
    });
}

async fn any_connection(pool: &ConnectionPool) -> Result<Arc<net::BrokerConnection>, NetError> {
    match pool.least_loaded() {
        Some(c) => Ok(c),
        None => pool.get_bootstrap().await,
    }
}

async fn fetch_metadata(
    pool: &ConnectionPool,
    topics: &[String],
) -> Result<Vec<TopicMetadata>, NetError> {
    let conn = any_connection(pool).await?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let md = net::fetch_metadata(&conn, &names).await?;
    pool.update_brokers(&md);
    Ok(md
        .topics
        .iter()
        .map(|t| TopicMetadata {
            name: t.name.clone(),
            error_code: t.error_code,
            partitions: t
                .partitions
                .iter()
                .map(|p| courier_core::producer::PartitionMetadata {
                    partition: p.partition,
                    leader: p.leader_id,
                    error_code: p.error_code,
                })
                .collect(),
        })
        .collect())
}

async fn init_producer_id(pool: &ConnectionPool, timeout: Duration) -> Result<(i64, i16), i16> {
    let conn = any_connection(pool)
        .await
        .map_err(|_| ErrorCode::NETWORK_EXCEPTION.code())?;
    match net::init_producer_id(&conn, None, timeout).await {
        Ok(g) if g.error_code == 0 => Ok((g.producer_id, g.producer_epoch)),
        Ok(g) => Err(g.error_code),
        Err(_) => Err(ErrorCode::NETWORK_EXCEPTION.code()),
    }
}

fn to_producer_error(
    topic: &str,
    partition: i32,
    f: &courier_core::producer::Failure,
    cfg: &EngineConfig,
    last_metadata_error: Option<&str>,
) -> ProducerError {
    match &f.reason {
        FailureReason::Broker { code, message } => {
            match ProducerError::from_partition_error(
                topic,
                partition,
                ErrorCode::from_i16(*code),
                message.as_deref(),
            ) {
                ProducerError::Broker {
                    topic,
                    partition,
                    code,
                    message,
                    ..
                } => ProducerError::Broker {
                    topic,
                    partition,
                    code,
                    message,
                    persistence: f.persistence,
                },
                other => other,
            }
        }
        FailureReason::DeliveryTimeout { last_error } => ProducerError::DeliveryTimeout {
            topic: topic.to_string(),
            partition,
            timeout: cfg.delivery_timeout,
            last_error: last_error.map(ErrorCode::from_i16),
            persistence: f.persistence,
        },
        FailureReason::UnknownTopic => ProducerError::UnknownTopic {
            topic: topic.to_string(),
        },
        FailureReason::MetadataTimeout => ProducerError::MetadataTimeout {
            topic: topic.to_string(),
            max_block: cfg.max_block,
            last_cause: last_metadata_error.map(str::to_string),
        },
        FailureReason::PartitionOutOfRange {
            partition,
            partitions,
        } => ProducerError::UnknownPartition {
            topic: topic.to_string(),
            partition: *partition,
            partition_count: *partitions,
        },
        FailureReason::RecordTooLarge { size, max } => ProducerError::RecordTooLarge {
            size: *size,
            max_request_size: *max,
        },
        FailureReason::ProducerId { code } => ProducerError::Fatal {
            code: Some(ErrorCode::from_i16(*code)),
            reason: "the broker refused a producer id (InitProducerId)".into(),
        },
        FailureReason::Closed if f.persistence == Persistence::NotPersisted => {
            ProducerError::Closed
        }
        FailureReason::Closed => ProducerError::ClosedInFlight {
            persistence: f.persistence,
        },
        FailureReason::EpochBumpedWhileUnresolved => ProducerError::UnresolvedAfterEpochBump {
            topic: topic.to_string(),
            partition,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duty_turns_the_compression_thread_on_when_busy_and_off_when_idle() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut d = Duty::new(t0);
        // 15 of 20 ms busy: on.
        assert_eq!(d.worked(ms(0), ms(15)), None);
        assert_eq!(d.worked(ms(19), ms(20)), Some(true));
        // 8 of 20 ms (40 %): between the thresholds, stays on.
        assert_eq!(d.worked(ms(20), ms(28)), None);
        assert_eq!(d.worked(ms(40), ms(40)), None);
        // 2 of 20 ms: off.
        assert_eq!(d.worked(ms(40), ms(42)), None);
        assert_eq!(d.worked(ms(60), ms(60)), Some(false));
        // 10 of 20 ms (50 %): under the on threshold, stays off.
        assert_eq!(d.worked(ms(60), ms(70)), None);
        assert_eq!(d.worked(ms(80), ms(80)), None);
    }
}
