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

mod compress;
mod driver;
mod report;
mod sink;
mod txn;

pub use courier_core::producer::txn::{
    ConsumerGroupMetadata, TransactionVersion, TxnError, TxnErrorClass, TxnErrorKind, TxnOffset,
    TxnState,
};
pub use txn::TransactionError;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use courier_core::producer::txn::TxnConfig;
use courier_core::producer::{EngineConfig, ProducerEngine, Record};
use courier_core::Compression;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::audit::{audit_with_pool, DurabilityReport};
use crate::config::{Acks, CompressionType, DlqPossiblyPersisted, DurabilityCheck, ProducerConfig};
use crate::dlq::Original;
use crate::error::ProducerError;
use crate::metrics::{BrokerMetrics, Counters, DeliveryMetrics};
use crate::net::ConnectionPool;
use crate::queue::BatchQueue;

use compress::COMPRESS_ELSEWHERE_FROM;

/// Keys and values up to this size are copied into the hand-off queue's arena by the
/// sending thread (see `crate::queue`); larger ones are handed over as they are.
const STAGE_LIMIT: usize = 4096;

/// What `buffer.memory` counts for a record beyond its bytes: its entry on the way to the
/// driver, the largest of the places it waits in (the hand-off queue, records parked
/// until their topic's metadata comes, the report token kept beside its batch). Counting
/// only the bytes let 2,000,000 records of 100 B hold 2.3x `buffer.memory` (issue 19:
/// 75-81 MB of RSS at the default 32 MiB, against a real broker slower than the input).
const RECORD_OVERHEAD: usize = std::mem::size_of::<driver::Command>();
use driver::{Command, Driver, Staged};
use report::{Completion, GuardedDriver, Token};
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

    /// Bytes the record holds in `buffer.memory` until it is delivered: its bytes and
    /// their framing in a batch (a bound the encoder never exceeds), plus what the
    /// producer keeps for it beside them ([`RECORD_OVERHEAD`]).
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
            + RECORD_OVERHEAD
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

/// Where the reports of [`Producer::produce_tagged`] go: one function for many records,
/// called with each record's tag and outcome. Cloning shares the function.
#[derive(Clone)]
pub struct DeliveryHandler(report::Handler);

impl DeliveryHandler {
    /// A handler that calls `f(tag, result)` for each record sent with it.
    pub fn new(f: impl Fn(u64, DeliveryResult) + Send + Sync + 'static) -> Self {
        DeliveryHandler(Arc::new(f))
    }
}

impl std::fmt::Debug for DeliveryHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryHandler")
    }
}

/// Resolves to a record's delivery report.
#[must_use = "the record is sent either way; drop the future only if you do not need its delivery report"]
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

struct Shared {
    config: ProducerConfig,
    commands: Arc<BatchQueue<Command>>,
    memory: Arc<Semaphore>,
    closed: AtomicBool,
    /// Set once the producer cannot go on (its driver stopped on a bug, or a fatal broker
    /// answer): later sends, `flush` and `close` report it.
    fatal: Arc<OnceLock<ProducerError>>,
    /// True once the driver has ended and every record it held has its report.
    finished: watch::Receiver<bool>,
    pool: Arc<ConnectionPool>,
    counters: Arc<Counters>,
    /// The transaction version the driver's machine runs (0: none yet).
    txn_version: Arc<AtomicU8>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last producer handle is gone: the driver delivers what is left and stops.
        self.commands.close_senders();
    }
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
/// producer.close(std::time::Duration::from_secs(30)).await?;
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
    let level = config.compression_level();
    let compression = match config.compression() {
        CompressionType::None => Compression::None,
        CompressionType::Gzip => level.map_or(Compression::gzip(), |l| Compression::Gzip {
            level: l.clamp(0, 9) as u32,
        }),
        CompressionType::Snappy => Compression::Snappy,
        CompressionType::Lz4 => Compression::Lz4,
        CompressionType::Zstd => {
            level.map_or(Compression::zstd(), |level| Compression::Zstd { level })
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
        resolution_timeout: config.delivery_resolution_timeout(),
        retries: config.retries(),
        retry_backoff: config.retry_backoff(),
        retry_backoff_max: config.retry_backoff_max(),
        metadata_max_age: config.metadata_max_age(),
        max_block: config.max_block(),
        compression,
        partitioner: config.partitioner(),
        compress_elsewhere_from: Some(COMPRESS_ELSEWHERE_FROM),
    })
}

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
        let pool = Arc::new(ConnectionPool::from_config(&config).map_err(ProducerError::from_net)?);
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
        let txn_version = Arc::new(AtomicU8::new(0));
        let fatal = Arc::new(OnceLock::new());
        let dlq = match config.dlq_topic() {
            Some(topic) => Some(DeadLetterQueue {
                producer: Producer::new(dead_letter_config(&config))?,
                topic: Arc::from(topic),
                possibly_persisted: config.dlq_possibly_persisted(),
            }),
            None => None,
        };
        let engine = match config.transactional_id() {
            Some(id) => {
                // Version 1 until init_transactions has read the cluster's finalized
                // transaction.version (the driver's `choose_transaction_version`).
                let mut txn = TxnConfig::new(id, TransactionVersion::V1);
                txn.transaction_timeout = config.transaction_timeout();
                txn.retry_backoff = config.retry_backoff();
                ProducerEngine::transactional(engine_cfg, txn, seed)
            }
            None => ProducerEngine::new(engine_cfg, seed),
        };
        let driver = Driver {
            engine,
            pool: pool.clone(),
            memory: memory.clone(),
            sinks: HashMap::new(),
            flush_waiters: Vec::new(),
            close: None,
            events_tx: None,
            last_metadata_error: None,
            last_broker_error: HashMap::new(),
            last_producer_id_error: None,
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
            dead_letters_pending: 0,
            fatal: fatal.clone(),
            txn: txn::TxnDriver::new(config.transactional_id(), txn_version.clone()),
            #[cfg(feature = "fault-injection")]
            fault: driver::InjectedFault::from_env(),
        };
        let (finished_tx, finished) = watch::channel(false);
        tokio::spawn(GuardedDriver::new(
            driver.run(commands.clone()),
            fatal.clone(),
            finished_tx,
        ));
        Ok(Producer {
            shared: Arc::new(Shared {
                config,
                commands,
                memory,
                closed: AtomicBool::new(false),
                fatal,
                finished,
                pool,
                counters,
                txn_version,
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
        let brokers = self
            .shared
            .pool
            .broker_states()
            .into_iter()
            .map(|(node_id, connected, in_flight)| BrokerMetrics {
                node_id,
                connected,
                in_flight: in_flight as u64,
            })
            .collect();
        self.shared.counters.snapshot(
            (limit - free) as u64,
            self.shared.fatal.get().is_some(),
            brokers,
            self.shared.pool.counters(),
        )
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
        self.enqueue(record, Completion::future(tx)).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Queues a record and calls `callback` with its delivery report (on the
    /// producer's driver task: keep it short). Waits up to `max.block.ms` for room in
    /// `buffer.memory`.
    ///
    /// The callback runs exactly once if this returns `Ok`, and never if it returns an
    /// error. A panic in the callback is caught and logged; the producer carries on.
    pub async fn produce_with_callback(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(DeliveryResult) + Send + 'static,
    ) -> Result<(), ProducerError> {
        self.enqueue(record, Completion::callback(Box::new(callback)))
            .await
    }

    /// Queues a record whose report goes to `handler` with `tag`, the way librdkafka's
    /// per-message opaque reaches its delivery callback. Waits up to `max.block.ms` for
    /// room in `buffer.memory`.
    ///
    /// For senders of many records: [`produce_with_callback`](Self::produce_with_callback)
    /// allocates a box per record, which is still in memory, gone cold, when the report
    /// comes; here the producer keeps only the tag and a shared pointer. `courier
    /// produce` sends this way (docs/BENCHMARKS.md, "Keyed, owned records", has the
    /// figures). The tag is the application's: an index, a sequence number, a packed
    /// timestamp.
    ///
    /// The handler runs exactly once per record if this returns `Ok`, and not for it if
    /// this returns an error; it runs on the producer's driver task, so keep it short. A
    /// panic in it is caught and logged; the producer carries on.
    pub async fn produce_tagged(
        &self,
        record: ProducerRecord,
        handler: &DeliveryHandler,
        tag: u64,
    ) -> Result<(), ProducerError> {
        self.enqueue(record, Completion::tagged(handler.0.clone(), tag))
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
        self.submit(record, Completion::future(tx), bytes)?;
        Ok(DeliveryFuture { rx })
    }

    /// Waits until the driver has ended and every record it held has its report.
    async fn driver_finished(&self) {
        let mut finished = self.shared.finished.clone();
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Why the producer accepts no more records: its fatal error, or that it was closed.
    fn stopped(&self) -> ProducerError {
        self.shared
            .fatal
            .get()
            .cloned()
            .unwrap_or(ProducerError::Closed)
    }

    fn check(&self, record: &ProducerRecord) -> Result<u32, ProducerError> {
        if let Some(e) = self.shared.fatal.get() {
            return Err(e.clone());
        }
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

    /// Takes the record's share of `buffer.memory` (waiting up to `max.block.ms`) and
    /// queues it. On an error the completion is disarmed: the caller is told by the
    /// returned error, and a callback must then never run.
    async fn enqueue(
        &self,
        record: ProducerRecord,
        completion: Completion,
    ) -> Result<(), ProducerError> {
        match self.reserve(&record).await {
            Ok(bytes) => self.submit(record, completion, bytes),
            Err(e) => {
                completion.disarm();
                Err(e)
            }
        }
    }

    async fn reserve(&self, record: &ProducerRecord) -> Result<u32, ProducerError> {
        let bytes = self.check(record)?;
        // Fast path: room in the buffer now, no timer needed.
        if let Ok(permit) = self.shared.memory.try_acquire_many(bytes) {
            permit.forget();
            return Ok(bytes);
        }
        let max_block = self.shared.config.max_block();
        let acquire = self.shared.memory.clone().acquire_many_owned(bytes);
        match tokio::time::timeout(max_block, acquire).await {
            // The driver gives the bytes back when the record is delivered.
            Ok(Ok(p)) => {
                p.forget();
                Ok(bytes)
            }
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(ProducerError::BufferFull {
                buffer_memory: self.shared.config.buffer_memory(),
                max_block,
            }),
        }
    }

    fn submit(
        &self,
        record: ProducerRecord,
        completion: Completion,
        bytes: u32,
    ) -> Result<(), ProducerError> {
        // One clock reading for the record's CreateTime and for its latency metric.
        let now = now_ms();
        let timestamp_ms = record.timestamp_ms.unwrap_or(now);
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
                sent_ms: now as u32,
                original,
            },
        };
        let staged = Staged {
            rec,
            key: None,
            value: None,
        };
        // Small keys and values are copied into the queue's arena here, and the caller's
        // buffers freed on this thread when `copied` drops (see `queue`). Large ones go
        // as they are: one cross-thread free is little beside their encoding.
        let pushed = self
            .shared
            .commands
            .push_with(Command::Send(staged), |cmd, arena| {
                let Command::Send(s) = cmd else {
                    return (None, None);
                };
                let mut stage = |field: &mut Option<Bytes>| {
                    let small = field.as_ref().is_some_and(|b| b.len() <= STAGE_LIMIT);
                    if !small {
                        return (None, None);
                    }
                    let b = field.take().expect("checked above");
                    let start = arena.len();
                    arena.extend_from_slice(&b);
                    (Some(start..arena.len()), Some(b))
                };
                let (key, k) = stage(&mut s.rec.key);
                let (value, v) = stage(&mut s.rec.value);
                s.key = key;
                s.value = value;
                (k, v)
            });
        match pushed {
            Ok(copied) => drop(copied),
            Err(Command::Send(s)) => {
                self.shared.memory.add_permits(bytes as usize);
                // The caller learns it from the returned error; the callback must not
                // also run.
                s.rec.token.completion.disarm();
                return Err(self.stopped());
            }
            Err(_) => unreachable!("a Send was pushed"),
        }
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `initTransactions()`: registers the producer's `transactional.id` with its
    /// transaction coordinator and gets the producer id and epoch for its transactions.
    /// This fences any older producer with the same id (its next transactional call fails
    /// with [`TxnErrorKind::ProducerFenced`]) and completes or aborts a transaction it
    /// left open. Call it once, before the first [`begin_transaction`](Self::begin_transaction).
    ///
    /// Waits at most `max.block.ms`; a [`TransactionError::TimedOut`] means the
    /// coordinator was not reached or is still busy, and calling it again resumes.
    pub async fn init_transactions(&self) -> Result<(), TransactionError> {
        self.txn_call(txn::TxnCall::Init).await
    }

    /// The transaction protocol this producer runs (KIP-890): the version of the
    /// transaction under way, or of the next one between transactions. `None` for a
    /// producer without `transactional.id`, and until
    /// [`init_transactions`](Self::init_transactions) has succeeded.
    ///
    /// Chosen like the Java client: [`TransactionVersion::V2`] when the cluster's
    /// finalized feature `transaction.version` (ApiVersions v3+, the newest report of
    /// any connection) is 2 or more and the brokers take Produce v12 and EndTxn v5
    /// (Kafka 4.0+ as it comes); [`TransactionVersion::V1`] otherwise (Kafka 3.x,
    /// Redpanda, a cluster whose `transaction.version` is 1). It is read again as each
    /// transaction begins and ends, so an operator's
    /// `kafka-features upgrade --feature transaction.version=2` applies from a later
    /// transaction (after an epoch bump), and a downgrade from the next one. Brokers
    /// report the features when a connection opens, so a change is seen once the
    /// producer opens a connection after it (idle ones close after
    /// `connections.max.idle.ms`). The choice, and each change, is logged at info level.
    pub fn transaction_version(&self) -> Option<TransactionVersion> {
        txn::version_from_u8(self.shared.txn_version.load(Ordering::Relaxed))
    }

    /// `beginTransaction()`: opens a transaction. Records sent from now until
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction) belong to it; a record sent outside
    /// a transaction fails with [`ProducerError::NotInTransaction`]. Nothing is sent to the
    /// coordinator yet.
    pub async fn begin_transaction(&self) -> Result<(), TransactionError> {
        self.txn_call(txn::TxnCall::Begin).await
    }

    /// `sendOffsetsToTransaction()`: commits a consumer group's offsets with the
    /// transaction, so that consuming, processing and producing happen exactly once
    /// (KIP-98). `offsets` are the next offsets to consume (the last processed one plus
    /// 1). `group` carries the consumer's generation and member id so that a consumer that
    /// lost its partitions in a rebalance cannot commit (KIP-447;
    /// [`ConsumerGroupMetadata::new`] sends the group id alone). The offsets become
    /// visible only if the transaction commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: impl IntoIterator<Item = TxnOffset>,
        group: ConsumerGroupMetadata,
    ) -> Result<(), TransactionError> {
        let offsets = offsets.into_iter().collect();
        self.txn_call(txn::TxnCall::SendOffsets(group, offsets))
            .await
    }

    /// `commitTransaction()`: sends the transaction's records without waiting for
    /// `linger.ms`, waits until every one is acknowledged, then commits the transaction at
    /// its coordinator, and returns once the commit is known to have happened. If a
    /// record failed, the transaction cannot commit: the error is abortable
    /// ([`TransactionError::is_abortable`]), and [`abort_transaction`](Self::abort_transaction)
    /// comes next.
    ///
    /// Waits at most `max.block.ms`; after a [`TransactionError::TimedOut`] the commit
    /// goes on, and calling this again waits for it (an abort is refused meanwhile, as in
    /// Java: the commit may already have been decided).
    pub async fn commit_transaction(&self) -> Result<(), TransactionError> {
        self.txn_call(txn::TxnCall::Commit).await
    }

    /// `abortTransaction()`: drops the transaction's records that are not sent yet (they
    /// fail with [`ProducerError::TransactionAborted`]), waits for those in flight, then
    /// aborts the transaction at its coordinator: nothing of it is visible to
    /// `read_committed` consumers, and its offsets are not committed. Records already
    /// acknowledged keep their `Ok` reports (they are in the log, hidden by the abort
    /// marker). After it, [`begin_transaction`](Self::begin_transaction) starts the next.
    ///
    /// Waits at most `max.block.ms`; after a [`TransactionError::TimedOut`], call it
    /// again to wait for the abort.
    pub async fn abort_transaction(&self) -> Result<(), TransactionError> {
        self.txn_call(txn::TxnCall::Abort).await
    }

    async fn txn_call(&self, call: txn::TxnCall) -> Result<(), TransactionError> {
        let operation = call.name();
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.push(Command::Txn(call, tx)).is_err() {
            self.driver_finished().await;
            return Err(TransactionError::Producer(self.stopped()));
        }
        let max_block = self.shared.config.max_block();
        match tokio::time::timeout(max_block, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                self.driver_finished().await;
                Err(TransactionError::Producer(self.stopped()))
            }
            Err(_) => Err(TransactionError::TimedOut {
                operation,
                max_block,
            }),
        }
    }

    /// Sends every queued record without waiting for `linger.ms` and waits until each
    /// has its delivery report (delivered or failed: the reports say which).
    ///
    /// Fails only when the producer itself cannot go on: with its fatal error (then every
    /// pending record has failed with it too), or [`ProducerError::Closed`] after
    /// [`close`](Self::close).
    pub async fn flush(&self) -> Result<(), ProducerError> {
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.push(Command::Flush(tx)).is_err() {
            self.driver_finished().await;
            return Err(self.stopped());
        }
        match rx.await {
            Ok(()) => match self.shared.fatal.get() {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            },
            Err(_) => {
                // The driver is gone: wait until every record it held is reported, so
                // the caller sees the whole outcome (and the real cause) when this returns.
                self.driver_finished().await;
                Err(self.stopped())
            }
        }
    }

    /// Stops accepting records, delivers what is queued and in flight, and shuts the
    /// connections. Records still undelivered after `timeout` fail with
    /// [`ProducerError::Closed`] (in flight: possibly persisted).
    ///
    /// Fails with the producer's fatal error if it stopped on one (every pending record
    /// has failed with it); closing again is `Ok`.
    pub async fn close(&self, timeout: Duration) -> Result<(), ProducerError> {
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
        self.driver_finished().await;
        match self.shared.fatal.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
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
    // Dead letters are written outside any transaction: a second producer with the same
    // transactional.id would fence the first.
    c.transactional_id = None;
    c.durability_check = DurabilityCheck::Off;
    c.client_id = format!("{}-dlq", c.client_id);
    c
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod overhead_tests {
    use super::*;

    /// `buffer.memory` counts a record's bytes plus its bookkeeping: a 100-byte value
    /// costs more than 100 bytes of it, and the bookkeeping stays what the docs say.
    #[test]
    fn a_record_counts_its_bytes_and_its_bookkeeping() {
        let rec = ProducerRecord::new("t").key("k").value(vec![0u8; 100]);
        assert_eq!(rec.buffered_size(), 1 + 100 + 32 + RECORD_OVERHEAD);
        assert!(
            (128..=256).contains(&RECORD_OVERHEAD),
            "RECORD_OVERHEAD is {RECORD_OVERHEAD}: update docs/BENCHMARKS.md (memory) and \
             the buffer.memory docs if the record's bookkeeping changed"
        );
    }
}
