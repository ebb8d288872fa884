//! The producer's brain without I/O: batching, sequencing, the in-flight window,
//! retries, epoch bumps and delivery outcomes.
//!
//! [`ProducerEngine`] is fed records, time and broker answers, and answers with
//! [`Action`]s: Produce requests to send, metadata or a producer id to fetch, and
//! deliveries to report. It never blocks, never reads a clock and never touches a
//! socket, so the async producer is a thin driver around it and the same engine runs
//! in deterministic simulations (the quinn-proto model, see `shared/notes/style.md`).
//!
//! # The rules it keeps
//!
//! - A batch is sealed when it is first sent, with the partition's next sequence, and
//!   a retry resends the same bytes with the same sequence: the broker answers
//!   DUPLICATE_SEQUENCE_NUMBER (success) if an earlier attempt stuck. Java and
//!   franz-go do the same; librdkafka's rebuild-on-retry was a source of bugs (#4736).
//! - One batch per partition per request, at most `max_in_flight` requests per
//!   broker. After a retriable failure the partition stops sending until its in-flight
//!   requests have answered, then resends from its oldest unacknowledged batch, so
//!   batches always reach the broker in sequence order.
//! - A gap in a partition's sequence (a batch with a sequence that failed or expired,
//!   or OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID for its oldest unresolved
//!   batch) bumps the producer epoch (KIP-360), once every in-flight request has
//!   answered, and restarts every partition's sequence at 0. The epoch is bumped
//!   locally, as Java does for idempotent producers; at `i16::MAX` a new producer id is
//!   fetched instead.
//! - A batch that may have been written under the old epoch is not resent under the
//!   new one: the broker could no longer recognise it as a duplicate. It is reported
//!   as possibly persisted instead (franz-go #1217 shows the silent loss that reusing a
//!   possibly-written sequence causes; resending under a new epoch would duplicate).
//! - Batches in flight never expire; queued ones expire after `delivery_timeout`.
//!
//! # Transactions
//!
//! [`ProducerEngine::transactional`] adds a [`TransactionMachine`] (KIP-98, issue 15; the
//! design is `docs/TRANSACTIONS.md`). The rules above hold with these differences: the
//! producer id and epoch come from the transaction coordinator, never from a local bump,
//! so a sequence gap fails the batch and makes the transaction abortable, and the abort
//! brings the new epoch (KIP-360 through the coordinator; KIP-890's per-transaction bump
//! with version 2); records are accepted only inside a transaction, and any record that
//! fails makes it abortable, so a transaction never commits with a record missing; a
//! partition's batches wait until the coordinator has the partition (version 1); the
//! commit sends without waiting for `linger.ms`, and the EndTxn waits until nothing of
//! the transaction is queued or in flight.

pub mod classify;
pub mod txn;

use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::batch::{
    Header, PreparedBatch, ProducerFields, RecordBatchBuilder, SealedBatch, RECORD_BATCH_OVERHEAD,
};
use crate::compression::{Compression, Compressor};
use crate::decode::decode_batch;
use crate::errors::ErrorCode;
use crate::partitioner::{
    PartitionerKind, Placement, StickyPartitioner, TopicPartitions, XorShiftRng,
};
use crate::sequence::increment_sequence;
use crate::wire::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, FindCoordinatorResponse,
    InitProducerIdResponse, TxnOffsetCommitResponse,
};
use classify::{classify_produce_error, codes, Disposition};
use txn::{
    ConsumerGroupMetadata, OutgoingTxnRequest, TransactionMachine, TransactionVersion, TxnApi,
    TxnCallError, TxnCallKind, TxnConfig, TxnError, TxnEvent, TxnOffset, TxnState,
};

/// How the engine behaves; the async producer fills it from `ProducerConfig`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// 0, 1 or -1 (all).
    pub acks: i16,
    /// Idempotent producer: producer id, sequences, epoch bumps.
    pub idempotence: bool,
    /// Target batch size in bytes (`batch.size`).
    pub batch_size: usize,
    /// How long a batch waits for more records (`linger.ms`).
    pub linger: Duration,
    /// Requests in flight per broker (`max.in.flight.requests.per.connection`).
    pub max_in_flight: usize,
    /// Largest Produce request, and largest record (`max.request.size`).
    pub max_request_size: usize,
    /// Broker-side timeout sent in each Produce request (`request.timeout.ms`).
    pub request_timeout: Duration,
    /// Bound on a record's whole life (`delivery.timeout.ms`), except for a batch that
    /// may already be in the log: see `resolution_timeout`.
    pub delivery_timeout: Duration,
    /// How much longer than `delivery_timeout` an idempotent batch that may already be
    /// in the log keeps being resent with its original producer id, epoch and sequence
    /// (`delivery.resolution.timeout.ms`), so its outcome becomes definite: the broker
    /// writes those bytes at most once and answers with their offset. Zero reports such
    /// a batch possibly persisted at `delivery_timeout`, as Java and librdkafka do.
    pub resolution_timeout: Duration,
    /// Retries per batch (`retries`).
    pub retries: u32,
    /// First retry backoff (`retry.backoff.ms`).
    pub retry_backoff: Duration,
    /// Backoff ceiling (`retry.backoff.max.ms`).
    pub retry_backoff_max: Duration,
    /// Periodic metadata refresh (`metadata.max.age.ms`).
    pub metadata_max_age: Duration,
    /// How long a record waits for its topic's metadata (`max.block.ms`).
    pub max_block: Duration,
    /// Codec for batches.
    pub compression: Compression,
    /// How records without an explicit partition are placed (`partitioner`).
    pub partitioner: PartitionerKind,
    /// Compress closed batches of at least this many bytes elsewhere: the engine hands
    /// them out as [`Action::Compress`] and takes them back with
    /// [`ProducerEngine::on_compressed`], so the thread that appends records need not also
    /// compress them. `None`: compress inline when a batch is first sent.
    pub compress_elsewhere_from: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            acks: -1,
            idempotence: true,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight: 5,
            max_request_size: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            resolution_timeout: Duration::from_secs(120),
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1000),
            metadata_max_age: Duration::from_secs(300),
            max_block: Duration::from_secs(60),
            compression: Compression::None,
            partitioner: PartitionerKind::Default,
            compress_elsewhere_from: None,
        }
    }
}

/// A record handed to the engine, with a token that comes back in its delivery.
#[derive(Debug, Clone)]
pub struct Record<T> {
    /// Topic.
    pub topic: Arc<str>,
    /// Explicit partition; `None` lets the partitioner choose (murmur2 of the key, or
    /// sticky for unkeyed records).
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in milliseconds.
    pub timestamp_ms: i64,
    /// Comes back in the record's [`Delivery`].
    pub token: T,
}

/// Whether a record is in the partition's log (librdkafka's PERSISTED /
/// POSSIBLY_PERSISTED / NOT_PERSISTED).
///
/// A retriable/fatal flag alone does not tell an application whether resending a
/// failed record can create a duplicate; this does: resend without risk, resend and
/// accept a possible duplicate, or do not resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persistence {
    /// The record is in the log.
    Persisted,
    /// The record may or may not be in the log: the request timed out, the connection
    /// broke after sending, or the broker wrote it but could not replicate it in time.
    /// Resending it may write it twice.
    PossiblyPersisted,
    /// The record is not in the log: no attempt was written, or the broker rejected
    /// it. Resending it cannot create a duplicate.
    NotPersisted,
}

impl std::fmt::Display for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Persistence::Persisted => "the record was written",
            Persistence::PossiblyPersisted => {
                "the record may have been written, so sending it again may duplicate it"
            }
            Persistence::NotPersisted => {
                "the record was not written, so it can be sent again without duplicating it"
            }
        })
    }
}

/// Why a record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The broker answered with this error code and it is not retriable, or retries
    /// ran out on it.
    Broker {
        /// Kafka error code.
        code: i16,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// `delivery.timeout.ms` ran out; `last_error` is the last broker error seen.
    DeliveryTimeout {
        /// Last error code seen for the batch, if any.
        last_error: Option<i16>,
    },
    /// The batch may be in the log, and resending it with its original sequence got no
    /// answer that settles it within `delivery.timeout.ms` plus
    /// `delivery.resolution.timeout.ms` (the partition stayed unreachable, or its leader
    /// kept refusing). Always [`Persistence::PossiblyPersisted`].
    Unresolved {
        /// Last error code seen for the batch, if any.
        last_error: Option<i16>,
    },
    /// The topic does not exist (metadata kept answering UNKNOWN_TOPIC_OR_PARTITION for
    /// `max.block.ms`).
    UnknownTopic,
    /// Metadata for the topic did not arrive within `max.block.ms`.
    MetadataTimeout,
    /// An explicit partition beyond the topic's partition count.
    PartitionOutOfRange {
        /// The partition asked for.
        partition: i32,
        /// How many the topic has.
        partitions: i32,
    },
    /// The record alone is larger than `max.request.size`.
    RecordTooLarge {
        /// Its size as encoded in a batch.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Fetching a producer id failed for good.
    ProducerId {
        /// Kafka error code.
        code: i16,
    },
    /// The producer was closed before the record was delivered.
    Closed,
    /// A batch of this partition that may have been written under the previous epoch
    /// could not be resent after an epoch bump without risking a duplicate.
    EpochBumpedWhileUnresolved,
    /// The producer was stopped for good ([`ProducerEngine::stop`]): the brokers refused
    /// its TLS session or credentials, and retrying cannot help.
    Stopped {
        /// Why, as the caller said it.
        reason: String,
    },
    /// A transactional producer's transaction was aborted before this record was
    /// answered (Java's `TransactionAbortedException`): the record is not part of any
    /// committed transaction, and a `read_committed` consumer never sees it, even when
    /// an earlier attempt reached the log ([`Persistence::PossiblyPersisted`] then).
    TransactionAborted,
    /// A transactional producer refused the record: no open transaction takes it in
    /// `state` (none begun, or it is committing or aborting: Java's rule that `send` is
    /// only valid inside a transaction), or the transaction or the producer failed with
    /// `error` (abort the transaction; drop the producer if the error is fatal).
    NotInTransaction {
        /// The transaction's state when the record came.
        state: TxnState,
        /// The error that put the transaction or the producer in an error state.
        error: Option<TxnError>,
    },
}

/// A failure and what it means for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What happened.
    pub reason: FailureReason,
    /// Whether the record may be in the log.
    pub persistence: Persistence,
}

/// Where a batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Offset of the batch's first record; -1 when unknown (acks=0, or
    /// DUPLICATE_SEQUENCE_NUMBER from an older broker).
    pub base_offset: i64,
    /// Broker timestamp when the topic uses LogAppendTime, else -1.
    pub log_append_time: i64,
}

/// The outcome of a group of records of one partition (usually one batch).
#[derive(Debug)]
pub struct Delivery<T> {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition, or -1 if the record failed before it was partitioned.
    pub partition: i32,
    /// Tokens and CreateTime timestamps, in offset order from `base_offset`.
    pub records: Vec<(T, i64)>,
    /// Written, or why not.
    pub result: Result<Written, Failure>,
    /// The batch outlived `delivery.timeout.ms` while it may have been in the log, and
    /// this is the outcome its resolution found (see
    /// [`EngineConfig::resolution_timeout`]): written, or still possibly persisted when
    /// the resolution ran out.
    pub resolved: bool,
}

/// One Produce request for the driver to send.
#[derive(Debug, Clone)]
pub struct ProduceRequest {
    /// Identifies the request in [`ProducerEngine::on_produce_result`].
    pub id: u64,
    /// Leader to send it to.
    pub broker: i32,
    /// acks.
    pub acks: i16,
    /// Broker-side timeout.
    pub timeout_ms: i32,
    /// `(topic, partition, sealed batch)` - one batch per partition.
    pub batches: Vec<(Arc<str>, i32, Bytes)>,
}

/// What the engine wants done.
#[derive(Debug)]
pub enum Action<T> {
    /// Send a Produce request and report with [`ProducerEngine::on_produce_result`].
    Produce(ProduceRequest),
    /// Fetch metadata for these topics and report with
    /// [`ProducerEngine::on_metadata`] or [`ProducerEngine::on_metadata_failed`].
    FetchMetadata {
        /// Topics the producer writes to.
        topics: Vec<Arc<str>>,
    },
    /// Fetch a new producer id and report with [`ProducerEngine::on_producer_id`].
    InitProducerId,
    /// Report these records' outcome to the application.
    Deliver(Delivery<T>),
    /// A partition's producer epoch was bumped after a gap in its sequence (for logs
    /// and metrics).
    EpochBumped {
        /// Producer id.
        producer_id: i64,
        /// The partition's new epoch.
        epoch: i16,
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
    },
    /// Compress a closed batch ([`CompressJob::run`], on any thread) and hand the result
    /// to [`ProducerEngine::on_compressed`]. Only with
    /// [`EngineConfig::compress_elsewhere_from`].
    Compress(CompressJob),
}

/// A closed batch to compress; see [`Action::Compress`].
#[derive(Debug)]
pub struct CompressJob {
    topic: usize,
    partition: usize,
    batch_id: u64,
    builder: RecordBatchBuilder,
    compression: Compression,
}

impl CompressJob {
    /// Compresses the batch. Costly (it is why the job exists); needs no engine state.
    pub fn run(mut self, compressor: &mut Compressor) -> Compressed {
        let prepared = self
            .builder
            .prepare(self.compression, compressor)
            .expect("only non-empty batches are handed out");
        Compressed {
            topic: self.topic,
            partition: self.partition,
            batch_id: self.batch_id,
            prepared,
            builder: self.builder,
        }
    }
}

/// A batch compressed by [`CompressJob::run`], for [`ProducerEngine::on_compressed`].
#[derive(Debug)]
pub struct Compressed {
    topic: usize,
    partition: usize,
    batch_id: u64,
    prepared: PreparedBatch,
    /// The emptied builder, for the next batch.
    builder: RecordBatchBuilder,
}

/// One partition's answer in a Produce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResponse {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Kafka error code.
    pub error_code: i16,
    /// Base offset.
    pub base_offset: i64,
    /// LogAppendTime or -1.
    pub log_append_time: i64,
    /// Error message.
    pub error_message: Option<String>,
}

/// How a Produce request ended.
#[derive(Debug, Clone)]
pub enum ProduceResult {
    /// The broker answered.
    Response(Vec<PartitionResponse>),
    /// acks=0: written to the socket; no answer will come.
    WrittenNoAck,
    /// The request failed in transport. `maybe_written` is false only when the bytes
    /// certainly never left (connect failed, request never written).
    Transport {
        /// Whether the broker may have received it.
        maybe_written: bool,
    },
}

/// One partition in a metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, -1 if none.
    pub leader: i32,
    /// Per-partition error code.
    pub error_code: i16,
}

/// One topic in a metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic error code (3 = unknown topic).
    pub error_code: i16,
    /// Partitions.
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchState {
    /// Waiting to be sent (first time or retry).
    Ready,
    /// In request `id`.
    InFlight(u64),
}

enum Payload {
    Open(RecordBatchBuilder),
    /// Handed out as [`Action::Compress`]; `size` is its uncompressed size.
    Compressing {
        size: usize,
    },
    /// Compressed, waiting for its header (stamped when first sent).
    Prepared(PreparedBatch),
    Sealed(SealedBatch),
}

struct Batch<T> {
    id: u64,
    payload: Payload,
    records: Vec<(T, i64)>,
    created: Instant,
    state: BatchState,
    /// Attempts sent so far.
    attempts: u32,
    /// An attempt may have been written.
    maybe_written: bool,
    /// Outlived `delivery_timeout` while maybe written: resent with its stamp until an
    /// answer settles it or `resolution_timeout` more passes.
    resolving: bool,
    /// No more appends (a later batch was started).
    closed: bool,
    /// (epoch, base sequence) it was stamped with, if idempotent and sent.
    stamp: Option<(i64, i16, i32)>,
    last_error: Option<i16>,
    last_message: Option<String>,
}

impl<T> Batch<T> {
    fn size(&self) -> usize {
        match &self.payload {
            Payload::Open(b) => b.size_in_bytes(),
            Payload::Compressing { size } => *size,
            Payload::Prepared(p) => p.len(),
            Payload::Sealed(s) => s.len(),
        }
    }
}

struct PartitionQueue<T> {
    leader: i32,
    batches: VecDeque<Batch<T>>,
    /// The epoch this partition's batches are stamped with; `None` until its first
    /// stamp, which takes the engine's newest. Epochs are per partition, as the broker
    /// keeps producer state per partition (and Java's `TxnPartitionEntry` keeps the id
    /// and epoch per partition): a gap in one partition bumps that partition's epoch
    /// only, so another partition's batch that may be in the log keeps its sequence and
    /// can still be resolved by resending it.
    epoch: Option<i16>,
    /// A gap in this partition's sequence: bump its epoch once its in-flight requests
    /// have answered (KIP-360).
    bump_required: bool,
    /// The id of the earliest batch that left a gap the broker certainly did not write
    /// while it held our state (`confirmed`). The broker only appends the next sequence,
    /// so no later batch of this epoch can be in the log either, whatever its attempts'
    /// answers were: at the bump they are re-stamped, not reported possibly persisted.
    unwritten_from: Option<u64>,
    next_sequence: i32,
    /// The sequence the broker expects next: one past the last acknowledged batch in
    /// the current epoch.
    acked_next: i32,
    /// The broker acknowledged a batch of this partition under the current producer
    /// id and epoch, so it holds our producer state and checks our sequences. Until
    /// then only one batch goes at a time: see `drain`.
    confirmed: bool,
    /// Id of the latest batch (in queue order) acknowledged under the current producer
    /// id and epoch, 0 if none. Acknowledgements can arrive out of queue order (a
    /// retry answered DUPLICATE_SEQUENCE_NUMBER after later batches were acknowledged),
    /// so `acked_next` only moves forward with it.
    last_acked_batch: u64,
    inflight: usize,
    /// A retriable failure happened: send nothing until in-flight requests answer.
    blocked: bool,
    retry_at: Option<Instant>,
    /// Transactional producer: the transaction (`EngineTxn::generation`) in which the
    /// partition was registered with the machine (`add_partition`), and the one in which
    /// the machine let its batches go (`may_send`). 0: none yet.
    txn_added: u64,
    txn_cleared: u64,
}

impl<T> PartitionQueue<T> {
    /// A stamped batch leaves the queue unacknowledged: its sequence will never be
    /// acknowledged, a gap, so the partition's epoch must be bumped.
    fn gap(&mut self, b: &Batch<T>) {
        if b.stamp.is_none() {
            return;
        }
        self.bump_required = true;
        if !b.maybe_written && self.confirmed {
            self.unwritten_from = Some(self.unwritten_from.map_or(b.id, |g| g.min(b.id)));
        }
    }

    fn new(leader: i32) -> Self {
        Self {
            leader,
            batches: VecDeque::new(),
            epoch: None,
            bump_required: false,
            unwritten_from: None,
            next_sequence: 0,
            acked_next: 0,
            confirmed: false,
            last_acked_batch: 0,
            inflight: 0,
            blocked: false,
            retry_at: None,
            txn_added: 0,
            txn_cleared: 0,
        }
    }
}

/// Room for parked records a topic keeps once none is left (see `expire`).
const PARKED_RETAINED: usize = 1024;

struct Parked<T> {
    record: Record<T>,
    since: Instant,
}

struct TopicState<T> {
    name: Arc<str>,
    partitions: Vec<PartitionQueue<T>>,
    /// Metadata said the topic does not exist.
    unknown: bool,
    /// A record waited `max.block.ms` for the topic and metadata still said it does
    /// not exist: later records fail at once (see `append`) until metadata has it.
    missing_confirmed: bool,
    /// Records waiting for metadata.
    parked: VecDeque<Parked<T>>,
    sticky: StickyPartitioner,
    /// Partitions with a leader, sorted; recomputed on metadata, read per unkeyed record.
    available: Vec<i32>,
    /// The topic's `max.message.bytes`, once known: batches close below it.
    max_batch: Option<usize>,
}

struct InFlight {
    broker: i32,
    batches: Vec<(usize, i32, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidState {
    NotNeeded,
    Needed,
    Fetching,
    Known,
}

/// The sans-I/O producer. `T` is the caller's per-record token.
pub struct ProducerEngine<T> {
    cfg: EngineConfig,
    topics: Vec<TopicState<T>>,
    topic_index: HashMap<Arc<str>, usize>,
    inflight: HashMap<u64, InFlight>,
    broker_inflight: HashMap<i32, usize>,
    next_request_id: u64,
    next_batch_id: u64,
    producer_id: i64,
    /// The newest epoch of the producer id: a partition's bump takes the next one.
    epoch: i16,
    pid_state: PidState,
    pid_retry_at: Option<Instant>,
    /// The epoch is exhausted (`i16::MAX`): fetch a new producer id once nothing is in
    /// flight, and restart every partition under it.
    new_pid_required: bool,
    metadata_needed: bool,
    metadata_in_flight: bool,
    /// No metadata request before this: `retry.backoff.ms` after the last answer, longer
    /// after consecutive failures.
    metadata_retry_at: Option<Instant>,
    metadata_refreshed_at: Option<Instant>,
    /// Metadata requests failed in a row (the backoff grows with them).
    metadata_failures: u32,
    flushing: bool,
    fatal: Option<Failure>,
    compressor: Compressor,
    rng: XorShiftRng,
    deliveries: Vec<Action<T>>,
    /// Batches resent so far (for metrics).
    retries_total: u64,
    /// Records in those batches, one per record and attempt (for metrics).
    records_retried_total: u64,
    /// Bytes of the batches sent, before and after compression (for metrics).
    bytes_before_compression: u64,
    bytes_after_compression: u64,
    /// Batches split after MESSAGE_TOO_LARGE (for metrics).
    batches_split: u64,
    /// The topic of the last append and its slot.
    last_topic: Option<(Arc<str>, usize)>,
    /// When `poll` last ran.
    last_poll: Option<Instant>,
    /// Builders of sealed batches, kept for the next batches with their work areas (or
    /// given the buffer of an acknowledged uncompressed batch): a fresh builder
    /// allocates and zero-fills `batch.size` bytes, and on a busy producer the page
    /// faults of that memory cost more than the records' own copy (Java keeps a
    /// `BufferPool` for the same reason). At most `spare_max` are kept.
    spare: Vec<RecordBatchBuilder>,
    spare_max: usize,
    /// The fewest builders the pool held since the last decay: that many sat unused.
    spare_low: usize,
    /// When the pool next lets go of the builders that sat unused.
    spare_decay_at: Option<Instant>,
    /// Records in the last batch sealed, to size the next one's token list.
    records_hint: usize,
    /// Whether batches are handed out for compression now (see
    /// [`ProducerEngine::set_compress_elsewhere`]).
    compress_elsewhere: bool,
    /// The transactional producer's part, if it has a `transactional.id`.
    txn: Option<Box<EngineTxn>>,
}

/// What a transactional engine keeps beside its idempotent state (KIP-98): the
/// transaction state machine, which owns the producer id and epoch, and the events for
/// the application.
struct EngineTxn {
    machine: TransactionMachine,
    /// Transactions begun so far; the current one's number. A partition whose
    /// `txn_added` differs has had no record in the current transaction.
    generation: u64,
    /// Events of the machine for the application, in order.
    events: VecDeque<TxnEvent>,
}

/// Batch ids grow by this much, so that the halves of a split batch can take ids between
/// it and the next one: ids order the queue (`last_acked_batch`, `unwritten_from`).
/// Room for 24 levels of halving, far more than a batch of records can need.
const BATCH_ID_STEP: u64 = 1 << 24;

/// Bytes of work areas the engine keeps for reuse (see `ProducerEngine::spare`).
const SPARE_BYTES: usize = 4 << 20;

/// Builders the pool keeps however long they sit unused.
const SPARE_IDLE: usize = 8;

/// How often the pool lets go of builders that sat unused since the last time.
const SPARE_DECAY: Duration = Duration::from_secs(1);

impl<T> ProducerEngine<T> {
    /// A new engine. `seed` drives the sticky partitioner and backoff jitter, so a
    /// simulation replays exactly.
    pub fn new(cfg: EngineConfig, seed: u64) -> Self {
        let cfg_batch_size = cfg.batch_size.max(1);
        let pid_state = if cfg.idempotence {
            PidState::Needed
        } else {
            PidState::NotNeeded
        };
        Self {
            cfg,
            topics: Vec::new(),
            topic_index: HashMap::new(),
            inflight: HashMap::new(),
            broker_inflight: HashMap::new(),
            next_request_id: 1,
            next_batch_id: 1,
            producer_id: -1,
            epoch: -1,
            pid_state,
            pid_retry_at: None,
            new_pid_required: false,
            metadata_needed: false,
            metadata_in_flight: false,
            metadata_retry_at: None,
            metadata_refreshed_at: None,
            metadata_failures: 0,
            flushing: false,
            fatal: None,
            compressor: Compressor::new(),
            rng: XorShiftRng::new(seed),
            deliveries: Vec::new(),
            retries_total: 0,
            records_retried_total: 0,
            bytes_before_compression: 0,
            bytes_after_compression: 0,
            batches_split: 0,
            last_topic: None,
            last_poll: None,
            spare: Vec::new(),
            spare_max: (SPARE_BYTES / cfg_batch_size).clamp(2, 256),
            spare_low: 0,
            spare_decay_at: None,
            records_hint: 0,
            compress_elsewhere: true,
            txn: None,
        }
    }

    /// A transactional engine (`transactional.id`, KIP-98): its producer id and epoch come
    /// from the transaction coordinator through the [`TransactionMachine`] it runs, never
    /// from an InitProducerId of its own ([`Action::InitProducerId`] is not used), records
    /// are accepted only inside a transaction, and its batches carry the transactional
    /// bit. Transactions need idempotence and `acks=all` (Java refuses a configuration
    /// without them), so both are set whatever `cfg` says.
    ///
    /// The I/O layer drives the machine through the engine: it sends what
    /// [`Self::poll_transaction`] returns, hands the replies to the `on_txn_*` methods,
    /// and reports [`Self::poll_txn_event`]'s events to the application. The
    /// application calls [`Self::init_transactions`], [`Self::begin_transaction`],
    /// [`Self::send_offsets_to_transaction`], [`Self::commit_transaction`] and
    /// [`Self::abort_transaction`].
    pub fn transactional(mut cfg: EngineConfig, txn: TxnConfig, seed: u64) -> Self {
        cfg.idempotence = true;
        cfg.acks = -1;
        let mut engine = Self::new(cfg, seed);
        engine.txn = Some(Box::new(EngineTxn {
            machine: TransactionMachine::new(txn),
            generation: 0,
            events: VecDeque::new(),
        }));
        engine
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The failure that stopped the engine for good (a producer id the broker refused),
    /// if one did: every record fails with it from then on.
    pub fn fatal(&self) -> Option<&Failure> {
        self.fatal.as_ref()
    }

    /// The leader the engine sends `topic`'s `partition` to, if it knows one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let t = &self.topics[*self.topic_index.get(topic)?];
        let p = t.partitions.get(usize::try_from(partition).ok()?)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// Producer id and epoch, once known.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        (self.pid_state == PidState::Known).then_some((self.producer_id, self.epoch))
    }

    /// While set, batches are sent without waiting for `linger` (flush and close).
    pub fn set_flushing(&mut self, flushing: bool) {
        self.flushing = flushing;
    }

    /// Turns the hand-out of batches for compression ([`Action::Compress`], with
    /// [`EngineConfig::compress_elsewhere_from`]) on or off from now on; on at the start.
    /// Off, batches are compressed inline when sent. A driver turns it off while its
    /// thread has time to spare: the hand-over then costs more than it saves.
    pub fn set_compress_elsewhere(&mut self, on: bool) {
        self.compress_elsewhere = on;
    }

    /// Whether nothing is queued, parked or in flight.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty()
            && self
                .topics
                .iter()
                .all(|t| t.parked.is_empty() && t.partitions.iter().all(|p| p.batches.is_empty()))
    }

    /// Whether records wait for their topic's metadata (they have no partition yet). A
    /// transactional driver holds a commit back until they have one: Java's `send` blocks
    /// for the metadata, so a record sent before `commitTransaction()` is always in the
    /// transaction, whereas here one still waiting when the commit begins fails it
    /// (see [`Self::commit_transaction`]).
    pub fn records_awaiting_metadata(&self) -> bool {
        self.topics.iter().any(|t| !t.parked.is_empty())
    }

    /// Number of Produce requests in flight.
    pub fn requests_in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// How many times a batch was scheduled for another attempt since the start.
    pub fn retries_total(&self) -> u64 {
        self.retries_total
    }

    /// Records in the batches scheduled for another attempt, one per record and attempt.
    pub fn records_retried_total(&self) -> u64 {
        self.records_retried_total
    }

    /// Caps `topic`'s batches at `max_message_bytes`, the topic's `max.message.bytes`
    /// (as DescribeConfigs reports it, the broker's default when the topic has none):
    /// the broker refuses a larger batch whole, so batches close before they reach it,
    /// whatever `batch.size` says. Sizes are counted uncompressed, which compression
    /// only shrinks (a batch it would grow is sent uncompressed). Open batches keep their
    /// size; one that still comes out too large is split when the broker refuses it, and
    /// a single record above the limit fails.
    pub fn set_max_message_bytes(&mut self, topic: &str, max_message_bytes: usize) {
        if let Some(&ti) = self.topic_index.get(topic) {
            self.topics[ti].max_batch = Some(max_message_bytes);
        }
    }

    /// Batches split in two after the broker refused them as too large.
    pub fn batches_split(&self) -> u64 {
        self.batches_split
    }

    /// Whether the engine is transactional ([`Self::transactional`]).
    pub fn is_transactional(&self) -> bool {
        self.txn.is_some()
    }

    /// The transaction state machine of a transactional engine, to read its state.
    pub fn transaction_machine(&self) -> Option<&TransactionMachine> {
        self.txn.as_ref().map(|t| &t.machine)
    }

    /// The `transactional.id`, for the Produce requests' `transactional_id` field (v3+).
    pub fn transactional_id(&self) -> Option<&str> {
        self.txn
            .as_ref()
            .map(|t| t.machine.config().transactional_id.as_str())
    }

    /// The Produce versions the engine's requests may be sent at, to intersect with the
    /// broker's. Any for a producer without transactions. A transactional one sends v3
    /// at least (the first with `transactional_id`, KIP-98) and follows its
    /// transaction's protocol: v12 and above for version 2, where the Produce adds the
    /// partition to the transaction, at most v11 for version 1 (KIP-890). The version
    /// changes only between transactions, when no Produce is queued or in flight, so it
    /// holds for every request the engine has handed out.
    pub fn produce_versions(&self) -> RangeInclusive<i16> {
        match &self.txn {
            None => 0..=i16::MAX,
            Some(t) => {
                let r = t
                    .machine
                    .transaction_version()
                    .request_versions(TxnApi::Produce);
                (*r.start()).max(3)..=*r.end()
            }
        }
    }

    /// Switches the transaction protocol from the next transaction on; an upgrade from
    /// version 1 to 2 bumps the epoch at the end of a transaction first (see
    /// [`TransactionMachine::set_transaction_version`]). No effect without transactions.
    pub fn set_transaction_version(&mut self, version: TransactionVersion) {
        if let Some(t) = &mut self.txn {
            t.machine.set_transaction_version(version);
        }
    }

    fn txn_machine(&mut self, operation: TxnCallKind) -> Result<&mut EngineTxn, TxnCallError> {
        self.txn
            .as_deref_mut()
            .ok_or(TxnCallError::NotTransactional { operation })
    }

    /// `initTransactions()`: gets the producer id and epoch from the coordinator, which
    /// fences older instances with the same `transactional.id` and aborts their open
    /// transaction. Completes with [`TxnEvent::Completed`]`(Init)`; no record is sent
    /// before.
    pub fn init_transactions(&mut self) -> Result<(), TxnCallError> {
        self.txn_machine(TxnCallKind::Init)?
            .machine
            .init_transactions()
    }

    /// `beginTransaction()`: opens a transaction; records are accepted from now until
    /// commit or abort.
    pub fn begin_transaction(&mut self) -> Result<(), TxnCallError> {
        let t = self.txn_machine(TxnCallKind::Begin)?;
        t.machine.begin_transaction()?;
        t.generation += 1;
        Ok(())
    }

    /// `sendOffsetsToTransaction()`: commits the consumer's offsets with the transaction
    /// (exactly-once processing; the group's generation and member id fence a zombie
    /// consumer, KIP-447). Completes with [`TxnEvent::Completed`]`(SendOffsets)`.
    pub fn send_offsets_to_transaction(
        &mut self,
        group: ConsumerGroupMetadata,
        offsets: Vec<TxnOffset>,
    ) -> Result<(), TxnCallError> {
        self.txn_machine(TxnCallKind::SendOffsets)?
            .machine
            .send_offsets_to_transaction(group, offsets)
    }

    /// `commitTransaction()`: sends the transaction's batches without waiting for
    /// `linger.ms` (Java flushes too), waits until every one is answered, then commits.
    /// Completes with [`TxnEvent::Completed`]`(Commit)`, or fails with the error that made
    /// the transaction abortable (a batch that failed: a transaction never commits with
    /// a record missing). Calling it again while it is pending resumes it.
    pub fn commit_transaction(&mut self) -> Result<(), TxnCallError> {
        self.txn_machine(TxnCallKind::Commit)?
            .machine
            .commit_transaction()
    }

    /// `abortTransaction()`: fails every record of the transaction that is not in flight
    /// with [`FailureReason::TransactionAborted`], waits for those in flight, then aborts
    /// at the coordinator. Completes with [`TxnEvent::Completed`]`(Abort)`. Records
    /// acknowledged before keep their `Ok` delivery, as Java's callbacks have completed by
    /// then: they are in the log, and the abort marker hides them from `read_committed`
    /// consumers.
    pub fn abort_transaction(&mut self) -> Result<(), TxnCallError> {
        self.txn_machine(TxnCallKind::Abort)?
            .machine
            .abort_transaction()?;
        self.fail_unsent_of_aborted();
        self.absorb_txn_events();
        Ok(())
    }

    /// The transactional request to send now, if one is due; call after [`Self::poll`]
    /// and when [`Self::next_wakeup`] passes, and answer it with the matching `on_txn_*`
    /// method ([`Self::on_txn_request_failed`] when no reply came). One is in flight at a
    /// time. EndTxn waits until the engine has nothing of the transaction queued or in
    /// flight. `None` for an engine without transactions.
    pub fn poll_transaction(&mut self, now: Instant) -> Option<OutgoingTxnRequest> {
        let batches_done = self.is_idle();
        let request = self.txn.as_mut()?.machine.poll_request(now, batches_done);
        self.absorb_txn_events();
        request
    }

    /// The next transaction event for the application: an operation completed or
    /// failed, or the producer id or epoch changed (the engine has applied it already).
    pub fn poll_txn_event(&mut self) -> Option<TxnEvent> {
        self.txn.as_mut()?.events.pop_front()
    }

    /// The FindCoordinator reply (decoded at `version`) to the transactional request in
    /// flight.
    pub fn on_txn_find_coordinator(
        &mut self,
        version: i16,
        response: &FindCoordinatorResponse,
        now: Instant,
    ) {
        if let Some(t) = &mut self.txn {
            t.machine.on_find_coordinator(version, response, now);
        }
        self.absorb_txn_events();
    }

    /// The InitProducerId reply to the transactional request in flight.
    pub fn on_txn_init_producer_id(&mut self, response: &InitProducerIdResponse, now: Instant) {
        if let Some(t) = &mut self.txn {
            t.machine.on_init_producer_id(response, now);
        }
        self.absorb_txn_events();
    }

    /// The AddPartitionsToTxn reply to the transactional request in flight.
    pub fn on_txn_add_partitions(&mut self, response: &AddPartitionsToTxnResponse, now: Instant) {
        if let Some(t) = &mut self.txn {
            t.machine.on_add_partitions_to_txn(response, now);
        }
        self.absorb_txn_events();
    }

    /// The AddOffsetsToTxn reply to the transactional request in flight.
    pub fn on_txn_add_offsets(&mut self, response: &AddOffsetsToTxnResponse, now: Instant) {
        if let Some(t) = &mut self.txn {
            t.machine.on_add_offsets_to_txn(response, now);
        }
        self.absorb_txn_events();
    }

    /// The TxnOffsetCommit reply to the transactional request in flight.
    pub fn on_txn_offset_commit(&mut self, response: &TxnOffsetCommitResponse, now: Instant) {
        if let Some(t) = &mut self.txn {
            t.machine.on_txn_offset_commit(response, now);
        }
        self.absorb_txn_events();
    }

    /// The EndTxn reply to the transactional request in flight.
    pub fn on_txn_end(&mut self, response: &EndTxnResponse, now: Instant) {
        if let Some(t) = &mut self.txn {
            t.machine.on_end_txn(response, now);
        }
        self.absorb_txn_events();
    }

    /// The transactional request in flight got no reply (see
    /// [`TransactionMachine::on_request_failed`]).
    pub fn on_txn_request_failed(&mut self, now: Instant) {
        if let Some(t) = &mut self.txn {
            t.machine.on_request_failed(now);
        }
        self.absorb_txn_events();
    }

    /// Applies what the machine said: a new producer id or epoch restarts every
    /// partition's sequence at 0 (the coordinator gave it: after InitProducerId, the
    /// KIP-360 bump after an abort, and every EndTxn of version 2, KIP-890); a fatal error
    /// fails everything not in flight, as the producer can send nothing more. The
    /// events are kept for the application.
    fn absorb_txn_events(&mut self) {
        let Some(t) = self.txn.as_deref_mut() else {
            return;
        };
        let mut changed = None;
        while let Some(e) = t.machine.poll_event() {
            if let TxnEvent::ProducerIdChanged { producer_id, epoch } = e {
                changed = Some((producer_id, epoch));
            }
            t.events.push_back(e);
        }
        let fatal = (t.machine.state() == TxnState::FatalError).then(|| t.machine.last_error());
        if let Some((id, epoch)) = changed {
            self.reset_producer(id, epoch);
        }
        if let (Some(error), None) = (fatal, &self.fatal) {
            let failure = Failure {
                reason: FailureReason::NotInTransaction {
                    state: TxnState::FatalError,
                    error,
                },
                persistence: Persistence::NotPersisted,
            };
            self.fatal = Some(failure.clone());
            self.fail_all(failure.reason);
        }
    }

    /// An aborting transaction's records that are not in flight fail with
    /// [`FailureReason::TransactionAborted`]: those waiting for metadata, never sent, or
    /// waiting to be resent. Java aborts only batches never sent and keeps resending the
    /// others; here a batch that comes back for a retry while the transaction aborts is
    /// dropped too, since nothing can commit it, and waiting for it could wait on a
    /// partition that needs a new epoch first (a sequence gap, KIP-360), which only the
    /// abort brings. An earlier attempt that lands later is refused: with version 2 by
    /// the epoch the EndTxn bumps, with version 1 by the leader's check that the
    /// partition is in an open transaction (KIP-890 part 1) and, after a gap, by the
    /// epoch bump the abort asks for.
    fn fail_unsent_of_aborted(&mut self) {
        for ti in 0..self.topics.len() {
            let parked: Vec<Parked<T>> = self.topics[ti].parked.drain(..).collect();
            for pk in parked {
                self.fail_record(
                    pk.record,
                    Failure {
                        reason: FailureReason::TransactionAborted,
                        persistence: Persistence::NotPersisted,
                    },
                );
            }
            for pi in 0..self.topics[ti].partitions.len() {
                let p = &mut self.topics[ti].partitions[pi];
                if p.batches.iter().all(|b| b.state != BatchState::Ready) {
                    continue;
                }
                let mut keep = VecDeque::with_capacity(p.inflight);
                let mut gone = Vec::new();
                for b in p.batches.drain(..) {
                    if matches!(b.state, BatchState::InFlight(_)) {
                        keep.push_back(b);
                    } else {
                        gone.push(b);
                    }
                }
                p.batches = keep;
                for b in gone {
                    self.finish_failed(ti, pi as i32, b, FailureReason::TransactionAborted);
                }
            }
        }
    }

    fn topic_slot(&mut self, topic: &Arc<str>) -> usize {
        // Most producers write one topic at a time: comparing with the last one (the
        // pointer first, when records share one `Arc`) saves hashing the name per
        // record.
        if let Some((last, i)) = &self.last_topic {
            if Arc::ptr_eq(last, topic) || **last == **topic {
                return *i;
            }
        }
        if let Some(&i) = self.topic_index.get(topic) {
            self.last_topic = Some((topic.clone(), i));
            return i;
        }
        let i = self.topics.len();
        // The engine's own copy of the name: deliveries clone it per record, and
        // sharing the caller's `Arc` would put those reference counts on the cache
        // line the application's threads update per record (two cores bouncing it).
        let name: Arc<str> = Arc::from(&**topic);
        self.last_topic = Some((topic.clone(), i));
        self.topics.push(TopicState {
            name: name.clone(),
            partitions: Vec::new(),
            unknown: false,
            missing_confirmed: false,
            parked: VecDeque::new(),
            sticky: StickyPartitioner::new(self.cfg.batch_size),
            available: Vec::new(),
            max_batch: None,
        });
        self.topic_index.insert(name, i);
        self.metadata_needed = true;
        i
    }

    /// Takes a record. Its outcome always comes back as exactly one [`Delivery`], at
    /// once if it cannot be accepted.
    pub fn append(&mut self, record: Record<T>, now: Instant) {
        if let Some(f) = &self.fatal {
            let f = f.clone();
            self.fail_record(record, f);
            return;
        }
        if let Some(t) = &self.txn {
            // Java's rule: a transactional producer sends only inside a transaction.
            let state = t.machine.state();
            if state != TxnState::InTransaction {
                let error = t.machine.last_error();
                self.fail_record(
                    record,
                    Failure {
                        reason: FailureReason::NotInTransaction { state, error },
                        persistence: Persistence::NotPersisted,
                    },
                );
                return;
            }
        }
        let size = crate::batch::encoded_record_size(
            0,
            0,
            record.key.as_deref(),
            record.value.as_deref(),
            &[],
        ) + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 10)
            .sum::<usize>();
        if size + RECORD_BATCH_OVERHEAD > self.cfg.max_request_size {
            let max = self.cfg.max_request_size;
            self.fail_record(
                record,
                Failure {
                    reason: FailureReason::RecordTooLarge {
                        size: size + RECORD_BATCH_OVERHEAD,
                        max,
                    },
                    persistence: Persistence::NotPersisted,
                },
            );
            return;
        }
        let ti = self.topic_slot(&record.topic);
        let t = &mut self.topics[ti];
        if t.partitions.is_empty() && t.missing_confirmed {
            // A record waited a whole `max.block.ms` for the topic and metadata still
            // says it does not exist: fail at once instead of parking each record for another
            // `max.block.ms`. Parked, 2,000,000 lines for a missing topic took 20
            // minutes to fail, a buffer.memory's worth per minute (issue 19's runs);
            // librdkafka likewise fails records for a topic it knows is missing once
            // `topic.metadata.propagation.max.ms` has passed. Metadata is still asked
            // for while the topic is unknown, so records flow again once it exists.
            let parked: Vec<Parked<T>> = t.parked.drain(..).collect();
            let failure = || Failure {
                reason: FailureReason::UnknownTopic,
                persistence: Persistence::NotPersisted,
            };
            for pk in parked {
                self.fail_record(pk.record, failure());
            }
            self.fail_record(record, failure());
            return;
        }
        if t.partitions.is_empty() || !t.parked.is_empty() {
            // Keep arrival order behind records already waiting for metadata.
            t.parked.push_back(Parked { record, since: now });
            return;
        }
        self.route(ti, record, now);
    }

    fn fail_record(&mut self, record: Record<T>, failure: Failure) {
        self.txn_record_failed(&failure.reason, false);
        let partition = record.partition.unwrap_or(-1);
        // Records that fail one after another for the same reason share one report: a
        // missing topic fails a whole `buffer.memory` of records at once, and a
        // report each (a vector and a copy of the reason per record) held about 2x
        // the bound for a moment (issue 19).
        if let Some(Action::Deliver(last)) = self.deliveries.last_mut() {
            if !last.resolved
                && last.partition == partition
                && last.topic == record.topic
                && last.result.as_ref().err() == Some(&failure)
            {
                last.records.push((record.token, record.timestamp_ms));
                return;
            }
        }
        self.deliveries.push(Action::Deliver(Delivery {
            topic: record.topic,
            partition,
            records: vec![(record.token, record.timestamp_ms)],
            result: Err(failure),
            resolved: false,
        }));
    }

    /// Partitions and appends a record of a topic whose metadata is known.
    fn route(&mut self, ti: usize, record: Record<T>, now: Instant) {
        let n = self.topics[ti].partitions.len() as i32;
        let mut sticky_placed = false;
        let partition = match record.partition {
            Some(p) => {
                if !(0..n).contains(&p) {
                    self.fail_record(
                        record,
                        Failure {
                            reason: FailureReason::PartitionOutOfRange {
                                partition: p,
                                partitions: n,
                            },
                            persistence: Persistence::NotPersisted,
                        },
                    );
                    return;
                }
                p
            }
            // KIP-480 for `default`: keyed records go where Java's default partitioner
            // sends them; the other values as `partitioner` documents them.
            None => {
                let t = &mut self.topics[ti];
                let view = if t.available.is_empty() || t.available.len() == n as usize {
                    TopicPartitions::all(n)
                } else {
                    TopicPartitions::with_available(n, &t.available)
                };
                match self.cfg.partitioner.partition(
                    record.key.as_deref(),
                    view,
                    &mut t.sticky,
                    &mut self.rng,
                ) {
                    Some(Placement::Sticky(p)) => {
                        sticky_placed = true;
                        p
                    }
                    Some(placed) => placed.partition(),
                    // `n > 0`: the topic is routed only once metadata listed partitions.
                    None => 0,
                }
            }
        };
        if let Some(t) = self.txn.as_deref_mut() {
            // The transaction's first record for the partition registers it (Java's
            // `maybeAddPartition`): version 1 queues an AddPartitionsToTxn and holds the
            // partition's batches until the coordinator has it; version 2 lets Produce
            // v12 add it (KIP-890).
            let topic = &mut self.topics[ti];
            let p = &mut topic.partitions[partition as usize];
            if p.txn_added != t.generation {
                match t.machine.add_partition(&topic.name, partition) {
                    Ok(()) => p.txn_added = t.generation,
                    Err(e) => {
                        let error = match e {
                            TxnCallError::Failed(error) => Some(error),
                            _ => None,
                        };
                        let state = t.machine.state();
                        if state == TxnState::Committing {
                            // Accepted inside the transaction, it waited for metadata
                            // past the commit call (Java's `send` blocks for it instead):
                            // the commit cannot include it, so it must not succeed.
                            t.machine.on_batch_failed(None, false);
                        }
                        let reason = FailureReason::NotInTransaction { state, error };
                        self.fail_record(
                            record,
                            Failure {
                                reason,
                                persistence: Persistence::NotPersisted,
                            },
                        );
                        return;
                    }
                }
            }
        }
        let batch_size = self.topics[ti]
            .max_batch
            .map_or(self.cfg.batch_size, |m| self.cfg.batch_size.min(m));
        let new_batch_id = self.next_batch_id;
        let t = &mut self.topics[ti];
        let p = &mut t.partitions[partition as usize];
        let headers: Vec<Header<'_>> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let ts = record.timestamp_ms;
        let fits = match p.batches.back() {
            Some(Batch {
                payload: Payload::Open(b),
                closed: false,
                state: BatchState::Ready,
                ..
            }) => b.is_empty() || b.would_fit(ts, key, value, &headers, batch_size),
            _ => false,
        };
        let mut started = false;
        if !fits {
            if let Some(last) = p.batches.back_mut() {
                last.closed = true;
            }
            started = true;
            let mut builder = self
                .spare
                .pop()
                .unwrap_or_else(|| RecordBatchBuilder::with_capacity(batch_size));
            self.spare_low = self.spare_low.min(self.spare.len());
            // The attributes' transactional bit (KIP-98): the broker keeps the batch out
            // of read_committed reads until the transaction's marker.
            builder.set_transactional(self.txn.is_some());
            p.batches.push_back(Batch {
                id: new_batch_id,
                payload: Payload::Open(builder),
                // Sized like the last full batch: growing a vector of tokens record by
                // record copies it over and over.
                records: Vec::with_capacity(self.records_hint),
                created: now,
                state: BatchState::Ready,
                attempts: 0,
                maybe_written: false,
                resolving: false,
                closed: false,
                stamp: None,
                last_error: None,
                last_message: None,
            });
        }
        let batch = p.batches.back_mut().expect("just ensured");
        let Payload::Open(builder) = &mut batch.payload else {
            unreachable!("the last batch is open after the check above")
        };
        let before = builder.size_in_bytes();
        // Only an i32 overflow of the batch fails here; the max.request.size check in
        // `append` keeps single records far below that.
        let appended = builder.append(ts, key, value, &headers).is_ok();
        let added = builder.size_in_bytes() - before;
        if builder.size_in_bytes() >= batch_size {
            batch.closed = true;
        }
        drop(headers);
        if started {
            self.next_batch_id += BATCH_ID_STEP;
        }
        if !appended {
            let max = self.cfg.max_request_size;
            self.deliveries.push(Action::Deliver(Delivery {
                topic: record.topic,
                partition,
                records: vec![(record.token, ts)],
                result: Err(Failure {
                    reason: FailureReason::RecordTooLarge {
                        size: usize::MAX,
                        max,
                    },
                    persistence: Persistence::NotPersisted,
                }),
                resolved: false,
            }));
            return;
        }
        batch.records.push((record.token, ts));
        // Only records the sticky partitioner placed move it on (Java's RecordAccumulator
        // does the same): keyed or explicitly placed bytes must not bring the switch forward.
        if sticky_placed {
            self.topics[ti].sticky.record_appended(partition, added);
        }
    }

    fn backoff(&mut self, attempts: u32) -> Duration {
        let base = self.cfg.retry_backoff.as_millis() as u64;
        let max = self.cfg.retry_backoff_max.as_millis().max(1) as u64;
        let exp = base
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(20))
            .min(max);
        // ±20% jitter, as the Java client (KIP-580) does, so producers that failed
        // together do not retry in lockstep.
        let jitter = (self.rng.next_u64() % 41) as i64 - 20;
        let ms = (exp as i64 + exp as i64 * jitter / 100).max(0) as u64;
        Duration::from_millis(ms)
    }

    /// Works out what to do now. Call after every input and when
    /// [`Self::next_wakeup`] passes; then take the actions from `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        self.last_poll = Some(now);
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.machine.state() == TxnState::Aborting)
        {
            self.fail_unsent_of_aborted();
        }
        self.expire(now);
        self.poll_metadata(now, out);
        self.poll_producer_id(now, out);
        self.compress_elsewhere(now, out);
        self.drain(now, out);
        // Failures reported to the machine above may have made it fatal.
        self.absorb_txn_events();
        out.append(&mut self.deliveries);
        self.decay_spare(now);
    }

    /// Hands closed batches out for compression (see
    /// [`EngineConfig::compress_elsewhere_from`]), oldest first, whether or not they can be
    /// sent yet: a batch waiting for a window slot is compressed by the time it gets one.
    fn compress_elsewhere(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        let Some(min) = self
            .cfg
            .compress_elsewhere_from
            .filter(|_| self.compress_elsewhere)
        else {
            return;
        };
        let compression = self.cfg.compression;
        if compression == Compression::None {
            return;
        }
        for ti in 0..self.topics.len() {
            for pi in 0..self.topics[ti].partitions.len() {
                // Batches not yet handed out sit at the back of the queue, after those
                // that were (handed out in order): look at the open run at the back only.
                let batches = &self.topics[ti].partitions[pi].batches;
                let open = batches
                    .iter()
                    .rev()
                    .take_while(|b| {
                        b.state == BatchState::Ready && matches!(b.payload, Payload::Open(_))
                    })
                    .count();
                let first = batches.len() - open;
                for idx in first..batches.len() {
                    let b = &self.topics[ti].partitions[pi].batches[idx];
                    let size = b.size();
                    if !self.batch_ready(b, now) {
                        // Younger batches are not ready either.
                        break;
                    }
                    if size < min {
                        // Small batches are compressed inline when sent (cheap; no hop).
                        continue;
                    }
                    let b = &mut self.topics[ti].partitions[pi].batches[idx];
                    let Payload::Open(builder) =
                        std::mem::replace(&mut b.payload, Payload::Compressing { size })
                    else {
                        unreachable!("only open batches are looked at")
                    };
                    b.closed = true;
                    out.push(Action::Compress(CompressJob {
                        topic: ti,
                        partition: pi,
                        batch_id: b.id,
                        builder,
                        compression,
                    }));
                }
            }
        }
    }

    /// Takes back a batch compressed elsewhere ([`Action::Compress`]). A batch that ended
    /// meanwhile (expired, failed) is dropped.
    pub fn on_compressed(&mut self, c: Compressed) {
        let Compressed {
            topic,
            partition,
            batch_id,
            prepared,
            builder,
        } = c;
        Self::keep_spare(
            &mut self.spare,
            self.spare_max,
            self.cfg.batch_size,
            builder,
        );
        let batch = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition))
            .and_then(|p| p.batches.iter_mut().find(|b| b.id == batch_id));
        if let Some(b) = batch {
            if matches!(b.payload, Payload::Compressing { .. }) {
                self.records_hint = (prepared.record_count() as usize).min(4096);
                b.payload = Payload::Prepared(prepared);
            }
        }
    }

    fn poll_metadata(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        if self.metadata_in_flight || self.topics.is_empty() {
            return;
        }
        if self.metadata_retry_at.is_some_and(|t| now < t) {
            return;
        }
        let stale = self
            .metadata_refreshed_at
            .is_none_or(|t| now.duration_since(t) >= self.cfg.metadata_max_age);
        if self.metadata_needed || stale {
            self.metadata_in_flight = true;
            self.metadata_needed = false;
            out.push(Action::FetchMetadata {
                topics: self.topics.iter().map(|t| t.name.clone()).collect(),
            });
        }
    }

    fn poll_producer_id(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        if self.txn.is_some() {
            // The coordinator owns a transactional producer's id and epoch: no
            // InitProducerId of the engine's own, and no local epoch bump (KIP-360's
            // bump for transactions goes through the coordinator).
            return;
        }
        if self.pid_state == PidState::Known {
            if !self.new_pid_required {
                self.bump_partitions(out);
            }
            if self.new_pid_required && self.inflight.is_empty() {
                self.renew_producer_id();
            }
        }
        if self.pid_state == PidState::Needed && self.pid_retry_at.is_none_or(|t| now >= t) {
            self.pid_state = PidState::Fetching;
            out.push(Action::InitProducerId);
        }
    }

    /// Applies KIP-360 epoch bumps: each partition with a gap in its sequence whose
    /// in-flight requests have all answered takes the producer id's next epoch and
    /// restarts its sequence at 0. The epoch is bumped locally, as Java does for
    /// idempotent producers; the broker accepts a higher epoch starting at sequence 0.
    fn bump_partitions(&mut self, out: &mut Vec<Action<T>>) {
        for ti in 0..self.topics.len() {
            for pi in 0..self.topics[ti].partitions.len() {
                let p = &self.topics[ti].partitions[pi];
                if !p.bump_required || p.inflight > 0 {
                    continue;
                }
                if self.epoch == i16::MAX {
                    // Epoch exhausted: a new producer id starts over at epoch 0.
                    self.new_pid_required = true;
                    return;
                }
                self.epoch += 1;
                self.topics[ti].partitions[pi].epoch = Some(self.epoch);
                out.push(Action::EpochBumped {
                    producer_id: self.producer_id,
                    epoch: self.epoch,
                    topic: self.topics[ti].name.clone(),
                    partition: pi as i32,
                });
                self.restart_sequence(ti, pi);
            }
        }
    }

    /// The producer id's epochs are used up: fetch a new id, under which every
    /// partition restarts.
    fn renew_producer_id(&mut self) {
        self.new_pid_required = false;
        self.pid_state = PidState::Needed;
        self.producer_id = -1;
        self.epoch = -1;
        for ti in 0..self.topics.len() {
            for pi in 0..self.topics[ti].partitions.len() {
                self.topics[ti].partitions[pi].epoch = None;
                self.restart_sequence(ti, pi);
            }
        }
    }

    /// Restarts a partition's sequence (new epoch or producer id). Nothing of it is in
    /// flight.
    fn restart_sequence(&mut self, ti: usize, pi: usize) {
        let p = &mut self.topics[ti].partitions[pi];
        let passed_over_before = p.last_acked_batch;
        let unwritten_from = p.unwritten_from.take();
        p.bump_required = false;
        p.next_sequence = 0;
        p.acked_next = 0;
        p.confirmed = false;
        p.last_acked_batch = 0;
        p.blocked = false;
        // Batches that may already be in the log cannot be resent under the new epoch
        // without risking a duplicate: report them. Neither can a batch the broker
        // passed over - a later one was acknowledged while this one was never written,
        // which only a broker holding no state for us does (KIP-360 accepts any
        // sequence then): resent now it would land after the later one, reordering the
        // partition.
        let mut kept = VecDeque::with_capacity(p.batches.len());
        let mut failed = Vec::new();
        let mut passed_over = Vec::new();
        for mut b in p.batches.drain(..) {
            let certainly_unwritten = unwritten_from.is_some_and(|g| b.id > g);
            if b.stamp.is_some() && b.maybe_written && !certainly_unwritten {
                failed.push(b);
            } else if b.stamp.is_some() && b.id < passed_over_before {
                passed_over.push(b);
            } else {
                if certainly_unwritten {
                    b.maybe_written = false;
                    b.resolving = false;
                }
                kept.push_back(b);
            }
        }
        p.batches = kept;
        for b in failed {
            self.finish_failed(ti, pi as i32, b, FailureReason::EpochBumpedWhileUnresolved);
        }
        for b in passed_over {
            let reason = FailureReason::Broker {
                code: codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
                message: Some(
                    "a later batch of this partition was written while this one was \
                     refused; sending it now would reorder the partition"
                        .into(),
                ),
            };
            self.finish_failed(ti, pi as i32, b, reason);
        }
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.cfg.delivery_timeout;
        let resolution = self.resolution_timeout();
        let park_limit = self.cfg.max_block.min(timeout);
        for ti in 0..self.topics.len() {
            while let Some(front) = self.topics[ti].parked.front() {
                // Once one record waited in vain for a topic that does not exist, the
                // others behind it fail with it (see `append`).
                if !self.topics[ti].missing_confirmed
                    && now.duration_since(front.since) < park_limit
                {
                    break;
                }
                let parked = self.topics[ti].parked.pop_front().expect("front exists");
                let reason = if self.topics[ti].unknown {
                    self.topics[ti].missing_confirmed = true;
                    FailureReason::UnknownTopic
                } else {
                    FailureReason::MetadataTimeout
                };
                self.fail_record(
                    parked.record,
                    Failure {
                        reason,
                        persistence: Persistence::NotPersisted,
                    },
                );
            }
            let parked = &mut self.topics[ti].parked;
            if parked.is_empty() && parked.capacity() > PARKED_RETAINED {
                // A topic whose metadata was missing for long may have parked a whole
                // `buffer.memory` of records (about 180 bytes each beside their bytes);
                // once they are placed or failed, that room is given back (issue 19).
                *parked = VecDeque::new();
            }
            for pi in 0..self.topics[ti].partitions.len() {
                loop {
                    let p = &mut self.topics[ti].partitions[pi];
                    // Expire from the front only, so sequence order is kept: a batch
                    // behind an in-flight one waits for it.
                    let Some(front) = p.batches.front_mut() else {
                        break;
                    };
                    let age = now.duration_since(front.created);
                    if front.state != BatchState::Ready || age < timeout {
                        break;
                    }
                    let resolvable = front.stamp.is_some() && front.maybe_written;
                    if resolvable && age < timeout + resolution {
                        // It may be in the log: keep resending it with its sequence
                        // until the broker's answer settles it.
                        front.resolving = true;
                        break;
                    }
                    let mut b = p.batches.pop_front().expect("front exists");
                    p.gap(&b);
                    let reason = if resolvable && !resolution.is_zero() {
                        // Its resolution ran out (even if it was in flight all along).
                        b.resolving = true;
                        FailureReason::Unresolved {
                            last_error: b.last_error,
                        }
                    } else {
                        FailureReason::DeliveryTimeout {
                            last_error: b.last_error,
                        }
                    };
                    self.finish_failed(ti, pi as i32, b, reason);
                }
                self.expire_unsent_behind_resolution(ti, pi, now);
            }
        }
    }

    /// How long past `delivery_timeout` a batch that may be in the log is resolved;
    /// zero without idempotence, where resending cannot be told apart from a duplicate.
    fn resolution_timeout(&self) -> Duration {
        if self.cfg.idempotence {
            self.cfg.resolution_timeout
        } else {
            Duration::ZERO
        }
    }

    /// Behind a batch being resolved, the batches never sent still fail at
    /// `delivery.timeout.ms`, as the setting promises: they hold no sequence, so
    /// removing them leaves no gap, and they are not in the log.
    fn expire_unsent_behind_resolution(&mut self, ti: usize, pi: usize, now: Instant) {
        let timeout = self.cfg.delivery_timeout;
        let p = &mut self.topics[ti].partitions[pi];
        if !p.batches.front().is_some_and(|b| b.resolving) {
            return;
        }
        // Batches go out in queue order, so the never-sent ones are the queue's tail.
        let Some(first) = p.batches.iter().position(|b| b.attempts == 0) else {
            return;
        };
        let mut expired = Vec::new();
        while let Some(b) = p.batches.get(first) {
            if b.state != BatchState::Ready || now.duration_since(b.created) < timeout {
                break;
            }
            expired.push(p.batches.remove(first).expect("index valid"));
        }
        for b in expired {
            let reason = FailureReason::DeliveryTimeout {
                last_error: b.last_error,
            };
            self.finish_failed(ti, pi as i32, b, reason);
        }
    }

    fn finish_failed(&mut self, ti: usize, partition: i32, b: Batch<T>, reason: FailureReason) {
        self.txn_record_failed(&reason, b.stamp.is_some());
        let persistence = if b.maybe_written {
            Persistence::PossiblyPersisted
        } else {
            Persistence::NotPersisted
        };
        self.deliveries.push(Action::Deliver(Delivery {
            topic: self.topics[ti].name.clone(),
            partition,
            records: b.records,
            result: Err(Failure {
                reason,
                persistence,
            }),
            resolved: b.resolving,
        }));
    }

    /// A transaction is committing: its batches go without waiting for `linger.ms`, as
    /// Java's `commitTransaction` flushes.
    fn txn_committing(&self) -> bool {
        self.txn
            .as_ref()
            .is_some_and(|t| t.machine.state() == TxnState::Committing)
    }

    /// Tells the machine that a record or batch of the transaction failed for good
    /// (Java's `maybeTransitionToErrorState`): the transaction cannot commit with it
    /// missing. A batch that held a sequence leaves a gap only a new epoch can close
    /// (KIP-360). Records refused outside a transaction are not part of it.
    fn txn_record_failed(&mut self, reason: &FailureReason, sequence_gap: bool) {
        let Some(t) = self.txn.as_deref_mut() else {
            return;
        };
        let code = match reason {
            FailureReason::NotInTransaction { .. } => return,
            FailureReason::TransactionAborted => {
                // Already aborting; a batch dropped with a sequence still needs the
                // new epoch.
                if sequence_gap {
                    t.machine.on_batch_failed(None, true);
                }
                return;
            }
            FailureReason::Broker { code, .. } => Some(ErrorCode::from_i16(*code)),
            _ => None,
        };
        t.machine.on_batch_failed(code, sequence_gap);
    }

    fn batch_ready(&self, b: &Batch<T>, now: Instant) -> bool {
        match &b.payload {
            Payload::Sealed(_) | Payload::Prepared(_) => true,
            Payload::Compressing { .. } => false,
            Payload::Open(builder) => {
                !builder.is_empty()
                    && (b.closed
                        || self.flushing
                        || self.txn_committing()
                        || now.duration_since(b.created) >= self.cfg.linger
                        || builder.size_in_bytes() >= self.cfg.batch_size)
            }
        }
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        if self.cfg.idempotence && (self.pid_state != PidState::Known || self.new_pid_required) {
            return;
        }
        // Group ready partitions by leader.
        let mut by_broker: HashMap<i32, Vec<(usize, usize)>> = HashMap::new();
        let inflight = &self.inflight;
        let txn = self.txn.as_deref();
        for (ti, t) in self.topics.iter_mut().enumerate() {
            for (pi, p) in t.partitions.iter_mut().enumerate() {
                if p.blocked && p.inflight == 0 {
                    p.blocked = false;
                }
                if let Some(txn) = txn {
                    // Version 1: the partition's batches wait until AddPartitionsToTxn
                    // has put it in the transaction (KIP-98); a batch the coordinator
                    // does not expect would be refused or, on older brokers, open a
                    // transaction no EndTxn closes.
                    if p.txn_cleared != txn.generation {
                        if !txn.machine.may_send(&t.name, pi as i32) {
                            continue;
                        }
                        p.txn_cleared = txn.generation;
                    }
                }
                if p.leader < 0
                    || p.blocked
                    || p.bump_required
                    || p.retry_at.is_some_and(|r| now < r)
                {
                    continue;
                }
                // The leader moved while batches were in flight to the old one: let
                // them answer first. The new leader may hold no producer state for us
                // (see below), and a later batch written there first would overtake
                // them.
                // In-flight batches sit at the front of the queue (batches go out in
                // order), so stop after the last of them: the queue behind can be long.
                if p.inflight > 0
                    && p.batches
                        .iter()
                        .filter_map(|b| match b.state {
                            BatchState::InFlight(id) => Some(id),
                            BatchState::Ready => None,
                        })
                        .take(p.inflight)
                        .any(|id| inflight.get(&id).is_some_and(|r| r.broker != p.leader))
                {
                    continue;
                }
                if p.batches.iter().any(|b| b.state == BatchState::Ready) {
                    by_broker.entry(p.leader).or_default().push((ti, pi));
                }
            }
        }
        let mut brokers: Vec<i32> = by_broker.keys().copied().collect();
        brokers.sort_unstable();
        for broker in brokers {
            let parts = &by_broker[&broker];
            loop {
                let used = self.broker_inflight.get(&broker).copied().unwrap_or(0);
                if used >= self.cfg.max_in_flight {
                    break;
                }
                let request_id = self.next_request_id;
                let mut batches = Vec::new();
                let mut members = Vec::new();
                let mut size = 0usize;
                for &(ti, pi) in parts {
                    let p = &self.topics[ti].partitions[pi];
                    // A broker with no state for our producer id on this partition
                    // (a new producer id or epoch here, or state removed by retention
                    // or producer.id.expiration.ms) accepts *any* sequence since Kafka
                    // 2.5 (KIP-360; `ProducerAppendInfo.checkSequence`). Pipelined, a
                    // second batch could then be written while the first is refused
                    // (NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER...) and the first
                    // could never follow it: reordered, or stranded. So one batch at a
                    // time until the broker has acknowledged one under this epoch, as
                    // franz-go does. Found by `courier-core/tests/simulation.rs`.
                    if self.cfg.idempotence && p.inflight > 0 && !p.confirmed {
                        continue;
                    }
                    let Some(idx) = self.topics[ti].partitions[pi]
                        .batches
                        .iter()
                        .position(|b| b.state == BatchState::Ready)
                    else {
                        continue;
                    };
                    if !self.batch_ready(&self.topics[ti].partitions[pi].batches[idx], now) {
                        continue;
                    }
                    let bsize = self.topics[ti].partitions[pi].batches[idx].size();
                    if !batches.is_empty() && size + bsize > self.cfg.max_request_size {
                        continue;
                    }
                    let (bytes, batch_id) = self.stamp(ti, pi, idx, request_id);
                    size += bytes.len();
                    batches.push((self.topics[ti].name.clone(), pi as i32, bytes));
                    members.push((ti, pi as i32, batch_id));
                }
                if batches.is_empty() {
                    break;
                }
                if let Some(t) = &mut self.txn {
                    // Version 2: this Produce adds the partitions to the transaction at
                    // the coordinator (KIP-890), so ending it takes an EndTxn from now.
                    t.machine.on_batch_sent();
                }
                self.next_request_id += 1;
                *self.broker_inflight.entry(broker).or_default() += 1;
                self.inflight.insert(
                    request_id,
                    InFlight {
                        broker,
                        batches: members,
                    },
                );
                out.push(Action::Produce(ProduceRequest {
                    id: request_id,
                    broker,
                    acks: self.cfg.acks,
                    timeout_ms: self.cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32,
                    batches,
                }));
            }
        }
    }

    /// Seals (first send) or re-stamps (after an epoch bump) a batch and marks it in
    /// flight. Returns the bytes to send.
    fn stamp(&mut self, ti: usize, pi: usize, idx: usize, request_id: u64) -> (Bytes, u64) {
        let idempotent = self.cfg.idempotence;
        let compression = self.cfg.compression;
        let p = &mut self.topics[ti].partitions[pi];
        let (pid, epoch) = (self.producer_id, p.epoch.unwrap_or(self.epoch));
        if idempotent {
            p.epoch = Some(epoch);
        }
        let batch = &mut p.batches[idx];
        let current = |stamp: Option<(i64, i16, i32)>| {
            stamp.is_some_and(|(sp, se, _)| sp == pid && se == epoch)
        };
        // A batch is stamped with the current producer id and epoch at its first send,
        // and again if an epoch bump came between its attempts.
        let restamp = idempotent && !current(batch.stamp);
        let seq = p.next_sequence;
        let fields = if restamp {
            ProducerFields::idempotent(pid, epoch, seq)
        } else {
            ProducerFields::NONE
        };
        match std::mem::replace(
            &mut batch.payload,
            Payload::Open(RecordBatchBuilder::with_capacity(0)),
        ) {
            Payload::Open(mut b) => {
                let sealed = b
                    .seal(fields, compression, &mut self.compressor)
                    .expect("a non-empty builder seals");
                Self::keep_spare(&mut self.spare, self.spare_max, self.cfg.batch_size, b);
                self.records_hint = (sealed.record_count() as usize).min(4096);
                batch.payload = Payload::Sealed(sealed);
            }
            Payload::Prepared(p) => batch.payload = Payload::Sealed(p.seal(fields)),
            Payload::Sealed(s) if restamp => {
                batch.payload = Payload::Sealed(s.with_producer_fields(fields));
            }
            Payload::Compressing { .. } => unreachable!("a compressing batch is not ready"),
            sealed => batch.payload = sealed,
        }
        if restamp {
            let Payload::Sealed(s) = &batch.payload else {
                unreachable!("sealed above")
            };
            p.next_sequence = increment_sequence(seq, s.record_count());
            batch.stamp = Some((pid, epoch, seq));
        }
        batch.closed = true;
        batch.state = BatchState::InFlight(request_id);
        batch.attempts += 1;
        p.inflight += 1;
        let Payload::Sealed(s) = &batch.payload else {
            unreachable!("sealed above")
        };
        if batch.attempts == 1 {
            self.bytes_before_compression += s.uncompressed_size() as u64;
            self.bytes_after_compression += s.len() as u64;
        }
        (s.bytes().clone(), batch.id)
    }

    /// The bytes of the batches sent so far (each once, retries aside): before and after
    /// compression, headers included (for the compression ratio metric).
    pub fn compression_totals(&self) -> (u64, u64) {
        (self.bytes_before_compression, self.bytes_after_compression)
    }

    /// When the oldest batch still held (queued, in flight or waiting for its topic's
    /// metadata) was started: its first record's arrival, within `linger.ms`. `None`
    /// when nothing is held. Walks every partition: call it now and then, not per record.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|p| p.batches.front().map(|b| b.created))
                    .chain(t.parked.front().map(|r| r.since))
            })
            .min()
    }

    /// Builders kept for reuse right now (see [`SPARE_IDLE`]; for tests and memory
    /// accounting).
    pub fn spare_builders(&self) -> usize {
        self.spare.len()
    }

    /// Lets go of the spare builders that sat unused for a whole [`SPARE_DECAY`] (beyond
    /// [`SPARE_IDLE`]): after a backlog (a broker outage) fills the pool to `spare_max`,
    /// it shrinks back to what the load uses, and the memory goes back (issue 19: RSS
    /// settles after the outage). Under load the low-water mark stays near zero and
    /// nothing goes: a fresh builder's zero-filled pages cost more than its records.
    fn decay_spare(&mut self, now: Instant) {
        let due = self.spare_decay_at.is_none_or(|at| now >= at);
        if !due {
            return;
        }
        let unused = self.spare_low.min(self.spare.len());
        if unused > SPARE_IDLE {
            let keep = self.spare.len() - (unused - SPARE_IDLE);
            self.spare.truncate(keep);
        }
        self.spare_low = self.spare.len();
        self.spare_decay_at = Some(now + SPARE_DECAY);
    }

    /// Keeps a sealed batch's builder for the next batch, unless the pool is full or
    /// the builder grew for an outsized record: the pool's memory stays within
    /// `spare_max` work areas of about `batch.size`.
    fn keep_spare(
        spare: &mut Vec<RecordBatchBuilder>,
        spare_max: usize,
        batch_size: usize,
        builder: RecordBatchBuilder,
    ) {
        if spare.len() < spare_max && builder.work_area_capacity() <= 2 * batch_size.max(1024) {
            spare.push(builder);
        }
    }

    /// Reports how a Produce request ended.
    pub fn on_produce_result(&mut self, request_id: u64, result: ProduceResult, now: Instant) {
        let Some(req) = self.inflight.remove(&request_id) else {
            // Not ours, or already settled: a stale answer is ignored.
            return;
        };
        if let Some(n) = self.broker_inflight.get_mut(&req.broker) {
            *n = n.saturating_sub(1);
        }
        for (ti, partition, batch_id) in req.batches {
            let pi = partition as usize;
            let Some(idx) = self.topics[ti].partitions[pi]
                .batches
                .iter()
                .position(|b| b.id == batch_id)
            else {
                continue;
            };
            self.topics[ti].partitions[pi].inflight -= 1;
            match &result {
                ProduceResult::WrittenNoAck => self.succeed(ti, pi, idx, -1, -1),
                ProduceResult::Transport { maybe_written } => {
                    self.metadata_needed = true;
                    self.retry(ti, pi, idx, *maybe_written, None, None, now);
                }
                ProduceResult::Response(parts) => {
                    let name = self.topics[ti].name.clone();
                    let Some(r) = parts
                        .iter()
                        .find(|r| r.partition == partition && *r.topic == *name)
                    else {
                        // The broker left our partition out of its answer: treat it as
                        // an unknown outcome and retry with the same sequence.
                        self.retry(ti, pi, idx, true, None, None, now);
                        continue;
                    };
                    self.on_partition_response(ti, pi, idx, r, now);
                }
            }
        }
    }

    fn on_partition_response(
        &mut self,
        ti: usize,
        pi: usize,
        idx: usize,
        r: &PartitionResponse,
        now: Instant,
    ) {
        match classify_produce_error(r.error_code) {
            Disposition::Success => {
                let offset =
                    if r.error_code == codes::DUPLICATE_SEQUENCE_NUMBER && r.base_offset < 0 {
                        -1
                    } else {
                        r.base_offset
                    };
                self.succeed(ti, pi, idx, offset, r.log_append_time)
            }
            Disposition::Retry {
                possibly_written,
                refresh_metadata,
            } => {
                if refresh_metadata {
                    self.metadata_needed = true;
                }
                self.retry(
                    ti,
                    pi,
                    idx,
                    possibly_written,
                    Some(r.error_code),
                    r.error_message.clone(),
                    now,
                );
            }
            // A transactional producer cannot bump the epoch itself: at a real gap the
            // batch fails (the arm below), the transaction becomes abortable, and the
            // abort brings the new epoch (KIP-360 through the coordinator). A batch
            // refused only because one ahead of it is unresolved is resent as usual
            // (Java's `TransactionManager.canRetry` makes the same distinction).
            Disposition::SequenceDesync
                if self.cfg.idempotence
                    && !(self.txn.is_some() && self.sequence_gap_at(ti, pi, idx)) =>
            {
                if self.sequence_gap_at(ti, pi, idx) {
                    // The broker lost our state or a batch before this one failed:
                    // a real gap. KIP-360: bump the partition's epoch and restart its
                    // sequence.
                    self.topics[ti].partitions[pi].bump_required = true;
                }
                // Rejected, so not written by this attempt; resend once the batches
                // ahead (or the bump) are settled.
                self.retry(
                    ti,
                    pi,
                    idx,
                    false,
                    Some(r.error_code),
                    r.error_message.clone(),
                    now,
                );
            }
            Disposition::TooLarge if self.split_refused(ti, pi, idx, now) => {}
            Disposition::SequenceDesync | Disposition::Fail { .. } | Disposition::TooLarge => {
                let mut b = self.topics[ti].partitions[pi]
                    .batches
                    .remove(idx)
                    .expect("index valid");
                if let Disposition::Fail {
                    possibly_written: true,
                } = classify_produce_error(r.error_code)
                {
                    b.maybe_written = true;
                }
                self.topics[ti].partitions[pi].gap(&b);
                self.finish_failed(
                    ti,
                    pi as i32,
                    b,
                    FailureReason::Broker {
                        code: r.error_code,
                        message: r.error_message.clone(),
                    },
                );
            }
        }
    }

    /// Whether OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID for the batch at `idx`
    /// is a real gap in the partition's sequence, not a refusal behind an unresolved
    /// batch: it is the batch the broker expects next, or a later batch is acknowledged
    /// while it was refused - the broker took the later one without state for us
    /// (KIP-360 accepts any sequence then), so this one can never follow it. Were it in
    /// the log, it would be among the five latest batches the broker checks and be
    /// answered as a duplicate instead.
    fn sequence_gap_at(&self, ti: usize, pi: usize, idx: usize) -> bool {
        let p = &self.topics[ti].partitions[pi];
        let b = &p.batches[idx];
        let head = b.stamp.is_some_and(|(_, _, seq)| seq == p.acked_next);
        let passed_over = b.id < p.last_acked_batch;
        head || passed_over
    }

    /// Splits a batch the broker refused as too large (MESSAGE_TOO_LARGE,
    /// RECORD_LIST_TOO_LARGE) into two, by record count, in its place in the queue. The
    /// halves carry consecutive sequences from the batch's own, so the sequences of the
    /// partition's later batches stay valid (the Java client's `splitAndReenqueue`,
    /// KIP-126); they are sent before anything behind them, keeping the partition's
    /// order. A half still too large is split again; a single record is not, so the
    /// splitting ends (KAFKA-8350 was a split loop on an estimate; this splits on the
    /// broker's answer and the record count only shrinks).
    ///
    /// False when the batch cannot be split: one record, an attempt that may have been
    /// written (the bytes were the same, but the topic's limit may have changed since),
    /// or no room left between batch ids.
    fn split_refused(&mut self, ti: usize, pi: usize, idx: usize, now: Instant) -> bool {
        let transactional = self.txn.is_some();
        let compression = self.cfg.compression;
        let idempotent = self.cfg.idempotence;
        let p = &mut self.topics[ti].partitions[pi];
        let b = &p.batches[idx];
        if b.records.len() < 2 || b.maybe_written {
            return false;
        }
        let Payload::Sealed(sealed) = &b.payload else {
            return false;
        };
        let Ok((decoded, _)) = decode_batch(sealed.bytes()) else {
            return false;
        };
        if decoded.records.len() != b.records.len() {
            return false;
        }
        let next_id = p
            .batches
            .get(idx + 1)
            .map_or(b.id + BATCH_ID_STEP, |n| n.id);
        let second_id = b.id + (next_id - b.id) / 2;
        if second_id == b.id {
            return false;
        }
        let half = decoded.records.len().div_ceil(2);
        let mut builders = [
            RecordBatchBuilder::with_capacity(sealed.len()),
            RecordBatchBuilder::with_capacity(sealed.len()),
        ];
        for b in &mut builders {
            b.set_transactional(transactional);
        }
        for (i, r) in decoded.records.iter().enumerate() {
            let mut headers = Vec::with_capacity(r.headers.len());
            for h in &r.headers {
                // Our own batches: header names were `String`s.
                let Ok(name) = std::str::from_utf8(&h.name) else {
                    return false;
                };
                headers.push((name, h.value.as_deref()));
            }
            let builder = &mut builders[usize::from(i >= half)];
            if builder
                .append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
                .is_err()
            {
                return false;
            }
        }
        let stamp = b.stamp;
        let mut fields = [ProducerFields::NONE, ProducerFields::NONE];
        let mut stamps = [None, None];
        if let (true, Some((pid, epoch, seq))) = (idempotent, stamp) {
            let second_seq = increment_sequence(seq, half as i32);
            fields = [
                ProducerFields::idempotent(pid, epoch, seq),
                ProducerFields::idempotent(pid, epoch, second_seq),
            ];
            stamps = [Some((pid, epoch, seq)), Some((pid, epoch, second_seq))];
        }
        let mut payloads = Vec::with_capacity(2);
        for (builder, f) in builders.iter_mut().zip(fields) {
            match builder.seal(f, compression, &mut self.compressor) {
                Ok(s) => payloads.push(s),
                Err(_) => return false,
            }
        }
        let mut original = p.batches.remove(idx).expect("index valid");
        let rest = original.records.split_off(half);
        let mut halves = Vec::with_capacity(2);
        for (((id, records), payload), stamp) in [original.id, second_id]
            .into_iter()
            .zip([std::mem::take(&mut original.records), rest])
            .zip(payloads)
            .zip(stamps)
        {
            halves.push(Batch {
                id,
                payload: Payload::Sealed(payload),
                records,
                // The delivery timeout counts from the records' arrival, as before.
                created: original.created,
                state: BatchState::Ready,
                // Sent before: never taken for a batch that was not (see
                // `expire_unsent_behind_resolution`).
                attempts: original.attempts,
                maybe_written: false,
                resolving: false,
                closed: true,
                stamp,
                last_error: original.last_error,
                last_message: original.last_message.clone(),
            });
        }
        for (k, h) in halves.into_iter().enumerate() {
            p.batches.insert(idx + k, h);
        }
        // Later batches in flight are refused out of order until the halves land; send
        // nothing until they have answered, then resend from the oldest (the halves).
        p.blocked = true;
        p.retry_at = Some(now);
        self.batches_split += 1;
        true
    }

    fn succeed(
        &mut self,
        ti: usize,
        pi: usize,
        idx: usize,
        base_offset: i64,
        log_append_time: i64,
    ) {
        let p = &mut self.topics[ti].partitions[pi];
        let (pid, epoch) = (self.producer_id, p.epoch.unwrap_or(self.epoch));
        let b = p.batches.remove(idx).expect("index valid");
        if let Some((stamp_pid, stamp_epoch, seq)) = b.stamp {
            if (stamp_pid, stamp_epoch) == (pid, epoch) {
                p.confirmed = true;
                // Only the latest acknowledged batch says what the broker expects
                // next; an earlier one acknowledged late (a retry answered as a
                // duplicate) must not move `acked_next` back, or the next batch's
                // OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID would not be seen
                // as the head-of-line gap it is, and no epoch bump would fix it.
                if b.id > p.last_acked_batch {
                    p.last_acked_batch = b.id;
                    if let Payload::Sealed(s) = &b.payload {
                        p.acked_next = increment_sequence(seq, s.record_count());
                    }
                }
            }
        }
        let partition = pi as i32;
        if self.topics[ti].sticky.current() == Some(partition) {
            self.topics[ti].sticky.batch_completed(partition);
        }
        if let Payload::Sealed(sealed) = b.payload {
            // An uncompressed seal handed its work area to the batch: give it back to
            // a builder that lost it, if the connection has let go of the bytes (and
            // it is not the outsized buffer of a record larger than a batch).
            if sealed.len() <= 2 * self.cfg.batch_size.max(1024) {
                if let Some(builder) = self.spare.last_mut() {
                    builder.recycle(sealed.into_bytes());
                }
            }
        }
        self.deliveries.push(Action::Deliver(Delivery {
            topic: self.topics[ti].name.clone(),
            partition,
            records: b.records,
            result: Ok(Written {
                base_offset,
                log_append_time,
            }),
            resolved: b.resolving,
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn retry(
        &mut self,
        ti: usize,
        pi: usize,
        idx: usize,
        maybe_written: bool,
        code: Option<i16>,
        message: Option<String>,
        now: Instant,
    ) {
        let retries = self.cfg.retries;
        let timeout = self.cfg.delivery_timeout;
        let resolution = self.resolution_timeout();
        self.retries_total += 1;
        self.records_retried_total +=
            self.topics[ti].partitions[pi].batches[idx].records.len() as u64;
        let attempts = self.topics[ti].partitions[pi].batches[idx].attempts;
        let backoff = self.backoff(attempts);
        let p = &mut self.topics[ti].partitions[pi];
        let b = &mut p.batches[idx];
        b.maybe_written |= maybe_written;
        b.state = BatchState::Ready;
        if code.is_some() {
            b.last_error = code;
            b.last_message = message;
        }
        p.blocked = true;
        p.retry_at = Some(now + backoff);
        let out_of_retries = b.attempts > retries;
        let age = now.duration_since(b.created);
        let expired = age >= timeout;
        // A batch that may be in the log is resent with its sequence past the delivery
        // timeout, until an answer settles it or the resolution runs out: the broker
        // writes it at most once, so the resend can only turn "possibly" into "yes".
        let resolvable = b.stamp.is_some() && b.maybe_written && !resolution.is_zero();
        if expired && !out_of_retries && resolvable && age < timeout + resolution {
            if idx == 0 {
                b.resolving = true;
            }
            return;
        }
        if (out_of_retries || expired) && idx == 0 {
            let mut b = p.batches.remove(idx).expect("index valid");
            p.gap(&b);
            let reason = if expired && resolvable && !out_of_retries {
                b.resolving = true;
                FailureReason::Unresolved {
                    last_error: b.last_error,
                }
            } else if expired {
                FailureReason::DeliveryTimeout {
                    last_error: b.last_error,
                }
            } else {
                FailureReason::Broker {
                    code: b.last_error.unwrap_or(codes::NETWORK_EXCEPTION),
                    message: b.last_message.clone(),
                }
            };
            self.finish_failed(ti, pi as i32, b, reason);
        }
    }

    /// Reports a metadata answer.
    ///
    /// Entries that cannot be right are skipped, so a broken or hostile answer can never
    /// size a table by an index or point at a partition that does not exist: partition
    /// indices must be unique and below the number of partitions listed; the topic has
    /// `max(valid index) + 1` partitions, and those the answer left out have no leader
    /// until a later answer names one.
    pub fn on_metadata(&mut self, topics: &[TopicMetadata], now: Instant) {
        self.metadata_in_flight = false;
        self.metadata_refreshed_at = Some(now);
        self.metadata_failures = 0;
        // Java's Metadata.timeToAllowUpdate: never ask again sooner than retry.backoff.ms,
        // whatever metadata.max.age.ms or a stream of errors asking for a refresh say.
        self.metadata_retry_at = Some(now + self.cfg.retry_backoff);
        let mut incomplete = false;
        for tm in topics {
            let Some(&ti) = self.topic_index.get(tm.name.as_str()) else {
                continue;
            };
            let t = &mut self.topics[ti];
            if tm.error_code == codes::UNKNOWN_TOPIC_OR_PARTITION {
                t.unknown = true;
                incomplete = true;
                continue;
            }
            if tm.error_code != 0 {
                // Authorization and other topic errors: fail what waits for it.
                let code = tm.error_code;
                let parked: Vec<Parked<T>> = t.parked.drain(..).collect();
                for pk in parked {
                    self.fail_record(
                        pk.record,
                        Failure {
                            reason: FailureReason::Broker {
                                code,
                                message: None,
                            },
                            persistence: Persistence::NotPersisted,
                        },
                    );
                }
                continue;
            }
            t.unknown = false;
            t.missing_confirmed = false;
            let valid = valid_partitions(&tm.partitions);
            let count = valid.last().map_or(0, |p| p.partition as usize + 1);
            // Partitions are only ever added to a topic, never removed.
            while t.partitions.len() < count {
                t.partitions.push(PartitionQueue::new(-1));
            }
            let mut listed = vec![false; count];
            for pm in valid {
                listed[pm.partition as usize] = true;
                let p = &mut t.partitions[pm.partition as usize];
                p.leader = if pm.error_code == 0 || pm.leader >= 0 {
                    pm.leader.max(-1)
                } else {
                    -1
                };
                if p.leader < 0 {
                    incomplete = true;
                }
            }
            if listed.iter().any(|l| !l) {
                incomplete = true;
                for (i, _) in listed.iter().enumerate().filter(|(_, l)| !**l) {
                    t.partitions[i].leader = -1;
                }
            }
            t.available = t
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader >= 0)
                .map(|(i, _)| i as i32)
                .collect();
            if !t.partitions.is_empty() {
                let parked: Vec<Parked<T>> = t.parked.drain(..).collect();
                for pk in parked {
                    // Linger and delivery timeout count from when the record arrived.
                    self.route(ti, pk.record, pk.since);
                }
            }
        }
        if incomplete {
            // A topic or leader is still missing: ask again soon.
            self.metadata_needed = true;
            self.metadata_retry_at = Some(now + self.cfg.retry_backoff);
        }
    }

    /// Reports that fetching metadata failed. The next attempt waits `retry.backoff.ms`,
    /// doubling per consecutive failure up to `retry.backoff.max.ms` (with jitter, as Java's
    /// metadata backoff since KIP-580): a cluster that keeps failing is not hammered.
    pub fn on_metadata_failed(&mut self, now: Instant) {
        self.metadata_in_flight = false;
        self.metadata_needed = true;
        self.metadata_failures = self.metadata_failures.saturating_add(1);
        let backoff = self.backoff(self.metadata_failures);
        self.metadata_retry_at = Some(now + backoff);
    }

    /// Reports an InitProducerId answer: `Ok((id, epoch))` or the error code.
    pub fn on_producer_id(&mut self, result: Result<(i64, i16), i16>, now: Instant) {
        match result {
            Ok((id, epoch)) => self.reset_producer(id, epoch),
            Err(code) if classify::init_producer_id_retriable(code) => {
                self.pid_state = PidState::Needed;
                self.pid_retry_at = Some(now + self.cfg.retry_backoff);
            }
            Err(code) => {
                // Without a producer id nothing can be sent idempotently: fail what is
                // queued and every later record, with the reason.
                let failure = Failure {
                    reason: FailureReason::ProducerId { code },
                    persistence: Persistence::NotPersisted,
                };
                self.fatal = Some(failure.clone());
                self.fail_all(failure.reason);
            }
        }
    }

    /// Takes a new producer id and epoch: every partition's sequence restarts at 0.
    fn reset_producer(&mut self, id: i64, epoch: i16) {
        self.producer_id = id;
        self.epoch = epoch;
        self.pid_state = PidState::Known;
        self.pid_retry_at = None;
        for t in &mut self.topics {
            for p in &mut t.partitions {
                p.next_sequence = 0;
                p.acked_next = 0;
                p.confirmed = false;
                p.last_acked_batch = 0;
                p.epoch = None;
                p.bump_required = false;
                p.unwritten_from = None;
            }
        }
    }

    /// Stops the engine for good: every record not in flight fails with `reason` now, and
    /// every later one at once. In-flight batches are reported when their requests end.
    /// For failures retrying cannot fix (credentials or certificates the brokers refuse):
    /// records must not wait out `delivery.timeout.ms` for an answer that cannot come.
    pub fn stop(&mut self, reason: String) {
        if self.fatal.is_some() {
            return;
        }
        let failure = Failure {
            reason: FailureReason::Stopped { reason },
            persistence: Persistence::NotPersisted,
        };
        self.fatal = Some(failure.clone());
        self.fail_all(failure.reason);
    }

    /// Fails everything that is not in flight (close after its timeout). In-flight
    /// batches are reported when their requests end, or by [`Self::abandon_in_flight`].
    pub fn fail_all(&mut self, reason: FailureReason) {
        for ti in 0..self.topics.len() {
            let parked: Vec<Parked<T>> = self.topics[ti].parked.drain(..).collect();
            for pk in parked {
                self.fail_record(
                    pk.record,
                    Failure {
                        reason: reason.clone(),
                        persistence: Persistence::NotPersisted,
                    },
                );
            }
            for pi in 0..self.topics[ti].partitions.len() {
                let p = &mut self.topics[ti].partitions[pi];
                let mut keep = VecDeque::new();
                let mut gone = Vec::new();
                for b in p.batches.drain(..) {
                    if matches!(b.state, BatchState::InFlight(_)) {
                        keep.push_back(b);
                    } else {
                        gone.push(b);
                    }
                }
                p.batches = keep;
                for b in gone {
                    self.finish_failed(ti, pi as i32, b, reason.clone());
                }
            }
        }
    }

    /// Fails in-flight batches as possibly persisted (the driver gave up on their
    /// requests, e.g. close timed out).
    pub fn abandon_in_flight(&mut self, reason: FailureReason) {
        let ids: Vec<u64> = self.inflight.keys().copied().collect();
        for id in ids {
            let req = self.inflight.remove(&id).expect("listed");
            for (ti, partition, batch_id) in req.batches {
                let pi = partition as usize;
                if let Some(idx) = self.topics[ti].partitions[pi]
                    .batches
                    .iter()
                    .position(|b| b.id == batch_id)
                {
                    let p = &mut self.topics[ti].partitions[pi];
                    p.inflight -= 1;
                    let mut b = p.batches.remove(idx).expect("index valid");
                    b.maybe_written = true;
                    self.finish_failed(ti, partition, b, reason.clone());
                }
            }
        }
        self.broker_inflight.clear();
    }

    /// When [`Self::poll`] should run next if nothing else happens.
    ///
    /// Only deadlines after the last poll count: one that had passed by then was acted
    /// on, or is waiting for something only an input brings (a free in-flight slot, a
    /// leader, a producer id). Returning it would make the caller poll in a busy loop
    /// until that input arrives.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let after = self.last_poll;
        let mut consider = |t: Instant| {
            if after.is_none_or(|p| t > p) {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        if !self.topics.is_empty() && !self.metadata_in_flight {
            let due = if self.metadata_needed {
                self.metadata_retry_at
            } else {
                self.metadata_refreshed_at
                    .map(|t| t + self.cfg.metadata_max_age)
                    .map(|t| self.metadata_retry_at.map_or(t, |r| r.max(t)))
            };
            if let Some(t) = due {
                consider(t);
            }
        }
        if self.pid_state == PidState::Needed {
            if let Some(t) = self.pid_retry_at {
                consider(t);
            }
        }
        if let Some(t) = self.txn.as_ref().and_then(|t| t.machine.next_wakeup()) {
            consider(t);
        }
        let park_limit = self.cfg.max_block.min(self.cfg.delivery_timeout);
        for t in &self.topics {
            if let Some(pk) = t.parked.front() {
                consider(pk.since + park_limit);
            }
            for p in &t.partitions {
                if let Some(r) = p.retry_at {
                    consider(r);
                }
                if let Some(front) = p.batches.front() {
                    consider(front.created + self.cfg.delivery_timeout);
                }
                if let Some(b) = p.batches.iter().find(|b| b.state == BatchState::Ready) {
                    if let Payload::Open(_) = b.payload {
                        consider(b.created + self.cfg.linger);
                    }
                }
            }
        }
        next
    }
}

/// The partitions of a metadata answer that can be right, sorted by index: indices are
/// unique and below the number of entries listed (a topic of `n` partitions lists `0..n`),
/// so no index can size a table beyond what the answer itself carried.
fn valid_partitions(listed: &[PartitionMetadata]) -> Vec<&PartitionMetadata> {
    let n = listed.len();
    let mut valid: Vec<&PartitionMetadata> = listed
        .iter()
        .filter(|p| usize::try_from(p.partition).is_ok_and(|i| i < n))
        .collect();
    valid.sort_by_key(|p| p.partition);
    valid.dedup_by_key(|p| p.partition);
    valid
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod txn_engine_tests;
