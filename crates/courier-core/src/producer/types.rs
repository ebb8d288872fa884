//! The engine's public vocabulary: its configuration ([`EngineConfig`]), what goes in
//! ([`Record`], [`ProduceResult`], [`PartitionResponse`], [`TopicMetadata`]) and what
//! comes out ([`Action`], [`ProduceRequest`], [`Delivery`], [`Failure`] with its
//! [`FailureReason`] and [`Persistence`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::compression::Compression;
use crate::partitioner::PartitionerKind;

use super::compress::CompressJob;
use super::txn::{TxnError, TxnState};
#[cfg(doc)]
use super::ProducerEngine;

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
