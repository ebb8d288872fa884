//! The producer's error type, Kafka error codes, and how Produce errors are handled.
//!
//! * [`ProducerError`] is what the application sees. Delivery errors carry a
//!   [`Persistence`]: a retriable/fatal flag alone does not tell an application whether
//!   resending a failed record can create a duplicate.
//! * [`ErrorCode`] names every Kafka error code a producer can receive
//!   ([`known_error_codes`] lists them with Java's retriability).
//! * [`classify_produce_error`] is the producer's policy for each code of a Produce response.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The error-code table and the per-code policy live in `courier-core`, where the engine
/// acts on them; they are re-exported here, where errors are explained.
pub use courier_core::errors::{
    classify_produce_error, classify_transport_error, known_error_codes, ErrorCode, ErrorCodeInfo,
    ProduceAction, ProduceErrorClass,
};

use crate::config::ConfigError;

/// Whether a record that failed is in the partition's log (librdkafka's message status).
/// Defined in `courier-core`, where the producer engine decides it.
pub use courier_core::producer::Persistence;

/// An error from the producer.
///
/// Messages say what happened and what to do about it. [`code`](Self::code) gives the Kafka
/// error code where the broker sent one, [`persistence`](Self::persistence) whether a failed
/// record may be in the log, and [`is_retriable`](Self::is_retriable) whether sending it again
/// later can succeed.
///
/// Delivery errors are shared by every record of a batch, so the type is `Clone` (I/O errors
/// are held in an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The configuration is invalid.
    #[error("invalid producer configuration: {0}")]
    Config(#[from] ConfigError),

    /// The topic does not exist (metadata says so) and the broker did not create it.
    #[error(
        "topic '{topic}' does not exist: create it or enable auto.create.topics.enable on the \
         broker"
    )]
    UnknownTopic {
        /// The topic.
        topic: String,
    },

    /// The record names a partition the topic does not have.
    #[error(
        "topic '{topic}' has no partition {partition}: it has {partition_count} partitions, \
         numbered from 0"
    )]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partition_count: i32,
    },

    /// The record alone is larger than a request may be: reported in its delivery report,
    /// without sending it.
    #[error(
        "record of {size} bytes exceeds max.request.size {max_request_size}: raise \
         max.request.size (and the topic's max.message.bytes) or send smaller records"
    )]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The `max.request.size` setting.
        max_request_size: usize,
    },

    /// The record alone is larger than the whole buffer.
    #[error(
        "record of {size} bytes exceeds buffer.memory {buffer_memory}: raise buffer.memory or \
         send smaller records"
    )]
    RecordExceedsBufferMemory {
        /// The record's encoded size.
        size: usize,
        /// The `buffer.memory` setting.
        buffer_memory: usize,
    },

    /// `send` waited `max.block.ms` for buffer space and none was freed.
    #[error(
        "no buffer space freed within max.block.ms ({} ms): the {buffer_memory} bytes of \
         buffer.memory are full because records arrive faster than the brokers accept them; \
         slow down, or raise buffer.memory or max.block.ms",
        max_block.as_millis()
    )]
    BufferFull {
        /// The `buffer.memory` setting.
        buffer_memory: usize,
        /// The `max.block.ms` setting.
        max_block: Duration,
    },

    /// The record waited for its topic's metadata until `max.block.ms` (or the shorter
    /// `delivery.timeout.ms`) ran out.
    #[error(
        "no metadata for topic '{topic}' within {setting} ({} ms){}: check that the brokers \
         in bootstrap.servers are reachable and that the topic exists",
        timeout.as_millis(),
        LastCause(last_cause.as_deref())
    )]
    MetadataTimeout {
        /// The topic.
        topic: String,
        /// The setting that ran out: `max.block.ms`, or `delivery.timeout.ms` when shorter.
        setting: &'static str,
        /// Its value.
        timeout: Duration,
        /// Why the last metadata request failed, if it did (e.g. the connection error).
        last_cause: Option<String>,
    },

    /// The broker rejected a batch as too large (`MESSAGE_TOO_LARGE`, `RECORD_LIST_TOO_LARGE`)
    /// (courier does not split batches yet: every record of the batch fails with it).
    #[error(
        "{topic}-{partition}: the broker rejected the record as too large ({code}): raise the \
         topic's max.message.bytes (or the broker's message.max.bytes) or send smaller records"
    )]
    RecordRejectedAsTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The code the broker sent.
        code: ErrorCode,
    },

    /// The producer's principal may not write to the topic.
    #[error(
        "not authorized to write to topic '{topic}' (TOPIC_AUTHORIZATION_FAILED): grant the \
         producer's principal WRITE and DESCRIBE on the topic"
    )]
    TopicAuthorizationFailed {
        /// The topic.
        topic: String,
    },

    /// The principal lacks a cluster permission; for producers this is the idempotent write
    /// permission older brokers demand.
    #[error(
        "not authorized on the cluster (CLUSTER_AUTHORIZATION_FAILED): brokers before Kafka 2.8 \
         require IDEMPOTENT_WRITE on the cluster for idempotent producers; grant it, or set \
         enable.idempotence=false"
    )]
    ClusterAuthorizationFailed,

    /// SASL authentication was refused. The producer stops: retrying would be refused
    /// again, and a producer that cannot authenticate must not look as if it were only slow.
    #[error(
        "SASL {mechanism} authentication with broker {broker} failed: {message}; the producer \
         stopped: fix the credentials and create a new one"
    )]
    AuthenticationFailed {
        /// The broker, as `host:port`.
        broker: String,
        /// The mechanism, e.g. `SCRAM-SHA-512`.
        mechanism: String,
        /// The broker's explanation, or what courier found wrong, with what to check.
        message: String,
    },

    /// A TLS session with a broker could not be set up, for a reason retrying cannot fix
    /// (an untrusted or wrong certificate, TLS spoken to a plaintext port). The producer
    /// stops.
    #[error("{message}; the producer stopped: fix the TLS settings and create a new one")]
    Tls {
        /// The broker, as `host:port`.
        broker: String,
        /// What failed and which setting to change.
        message: String,
    },

    /// The broker's validation rejected the record (`INVALID_RECORD`, `CORRUPT_MESSAGE`,
    /// `INVALID_TIMESTAMP`, ...); sending it again will fail again.
    #[error(
        "{topic}-{partition}: the broker rejected the record ({code}){}: {}",
        BrokerMessage(message.as_deref()),
        code.info().map_or("", |i| i.description)
    )]
    InvalidRecord {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The code the broker sent.
        code: ErrorCode,
        /// The broker's explanation, when it sent one (Produce v8+).
        message: Option<String>,
    },

    /// Any other error the broker reported for a partition, after retries if it was
    /// retriable.
    #[error(
        "{topic}-{partition}: the broker answered {code}{}{}; {persistence}",
        BrokerMessage(message.as_deref()),
        Description(*code)
    )]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The code the broker sent.
        code: ErrorCode,
        /// The broker's explanation, when it sent one.
        message: Option<String>,
        /// Whether the record is in the log.
        persistence: Persistence,
    },

    /// The record was not acknowledged within `delivery.timeout.ms`.
    #[error(
        "record for {topic}-{partition} not acknowledged within delivery.timeout.ms ({} ms){}{}; \
         {persistence}",
        timeout.as_millis(),
        LastError(*last_error),
        ConnectionCause(last_cause.as_deref())
    )]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The `delivery.timeout.ms` setting.
        timeout: Duration,
        /// The last error the broker answered while trying, if any.
        last_error: Option<ErrorCode>,
        /// The last connection problem behind it, if any (e.g. "could not connect to
        /// broker1:9092: Connection refused").
        last_cause: Option<String>,
        /// Whether the record is in the log.
        persistence: Persistence,
    },

    /// The record may be in the log, and resending it with its original sequence (which
    /// the broker writes at most once) got no answer that settles it within
    /// `delivery.timeout.ms` plus `delivery.resolution.timeout.ms`: the partition stayed
    /// unreachable, or its leader kept refusing.
    #[error(
        "record for {topic}-{partition} may be in the log: it was not acknowledged within \
         delivery.timeout.ms ({} ms), and resending it with its sequence for \
         delivery.resolution.timeout.ms ({} ms) more did not settle it{}{}; {}; read the \
         partition to find out before sending it again, or raise \
         delivery.resolution.timeout.ms to wait out longer outages",
        timeout.as_millis(),
        resolution_timeout.as_millis(),
        LastError(*last_error),
        ConnectionCause(last_cause.as_deref()),
        Persistence::PossiblyPersisted
    )]
    Unresolved {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The `delivery.timeout.ms` setting.
        timeout: Duration,
        /// The `delivery.resolution.timeout.ms` setting.
        resolution_timeout: Duration,
        /// The last error the broker answered while trying, if any.
        last_error: Option<ErrorCode>,
        /// The last connection problem behind it, if any.
        last_cause: Option<String>,
    },

    /// Talking to a broker failed (connect, TLS, read or write).
    #[error("connection to broker {broker} failed: {source}; {persistence}")]
    Transport {
        /// The broker, as `host:port`.
        broker: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
        /// Whether the record is in the log.
        persistence: Persistence,
    },

    /// The broker is too old for courier. The producer stops: a broker does not grow an
    /// API version.
    #[error(
        "{} does not support {api} v{min_version}, which courier needs: upgrade the broker to \
         Kafka {min_kafka_version} or later",
        if broker.is_empty() { "the broker".to_string() } else { format!("broker {broker}") }
    )]
    UnsupportedBroker {
        /// The broker, as `host:port`.
        broker: String,
        /// The API, e.g. `Produce`.
        api: &'static str,
        /// The lowest version courier speaks.
        min_version: i16,
        /// The first Kafka release with that version.
        min_kafka_version: &'static str,
    },

    /// The producer hit an error it cannot recover from (fenced, or an idempotence state it
    /// cannot repair without risking duplicates or reordering). Every pending record fails
    /// with it, and the producer accepts no more.
    #[error(
        "the producer stopped after a fatal error{}: {reason}; records not yet acknowledged may \
         or may not have been written; create a new producer",
        FatalCode(*code)
    )]
    Fatal {
        /// The Kafka code that caused it, if any.
        code: Option<ErrorCode>,
        /// What happened.
        reason: String,
    },

    /// The brokers refused the idempotent producer an id (InitProducerId), for a reason
    /// retrying cannot fix. Nothing was sent (an idempotent producer sends nothing before
    /// it has an id), and the producer accepts no more records.
    #[error(
        "the broker refused a producer id (InitProducerId) with {code}{}; nothing was sent, \
         so the records can be sent again without duplicating them; the producer stopped: \
         fix the cause and create a new producer",
        Description(*code)
    )]
    ProducerIdRefused {
        /// The code the broker sent.
        code: ErrorCode,
    },

    /// `durability.check=enforce` and the topic's layers do not line up: the record was
    /// not sent.
    #[error(
        "refusing to write to topic '{topic}' (durability.check=enforce): {}",
        report.summary()
    )]
    DurabilityMisaligned {
        /// The topic.
        topic: String,
        /// The audit that failed.
        report: Box<crate::audit::DurabilityReport>,
    },

    /// `durability.check=enforce` and the topic's durability could not be checked.
    #[error(
        "could not check the durability of topic '{topic}' (durability.check=enforce): {cause}"
    )]
    DurabilityUnverified {
        /// The topic.
        topic: String,
        /// Why.
        cause: String,
    },

    /// The record failed for good and was written to the dead letter queue
    /// (`dlq.topic`). `source` is why it failed in its own topic.
    #[error("{source}; the record was written to the dead letter queue {dlq_topic} [{dlq_partition}] @ {dlq_offset}")]
    DeadLettered {
        /// Why the record failed.
        source: Box<ProducerError>,
        /// The dead letter queue topic.
        dlq_topic: String,
        /// Where the dead letter landed.
        dlq_partition: i32,
        /// Its offset.
        dlq_offset: i64,
    },

    /// The record failed for good, and writing it to the dead letter queue failed too.
    #[error("{source}; writing it to the dead letter queue failed too: {dlq_error}")]
    DeadLetterFailed {
        /// Why the record failed.
        source: Box<ProducerError>,
        /// Why the dead letter queue did not take it.
        dlq_error: Box<ProducerError>,
    },

    /// The producer was closed before the record could be delivered.
    #[error("the producer is closed")]
    Closed,

    /// `close` ran out of time while the record's request was in flight.
    #[error("the producer was closed before the broker confirmed the record; {persistence}")]
    ClosedInFlight {
        /// Whether the record is in the log.
        persistence: Persistence,
    },

    /// The producer had to bump its epoch (KIP-360) while this record's outcome was
    /// unknown. Resending it under the new epoch could duplicate it, since the broker
    /// can only spot duplicates within one epoch, so courier reports it instead.
    #[error(
        "{topic}-{partition}: the record's outcome was unknown when the producer bumped its \
         epoch after a sequence gap, so it was not resent; {}; check the topic before \
         sending it again",
        Persistence::PossiblyPersisted
    )]
    UnresolvedAfterEpochBump {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// The record's transaction was aborted before the record was answered (Java's
    /// `TransactionAbortedException`): it is in no committed transaction, and a
    /// `read_committed` consumer never sees it, even if an earlier attempt reached the
    /// log. Send it again in the next transaction.
    #[error(
        "{topic}-{partition}: the transaction was aborted before the record was answered, so \
         it is in no committed transaction (read_committed consumers never see it); send it \
         again in the next transaction"
    )]
    TransactionAborted {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Whether an attempt may be in the log (aborted, so invisible to
        /// `read_committed` readers).
        persistence: Persistence,
    },

    /// A transactional producer takes records only inside a transaction (Java's rule):
    /// none was begun, it is committing or aborting, or it failed.
    #[error(
        "no open transaction takes the record: the transactional producer is {state}{}; call \
         begin_transaction first, abort_transaction after an abortable error, or drop the \
         producer after a fatal one",
        error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
    )]
    NotInTransaction {
        /// The transaction's state (`Ready`, `Committing`, `AbortableError`, ...: the
        /// names of Java's `TransactionManager.State`).
        state: String,
        /// The error that put the transaction or the producer in an error state.
        error: Option<String>,
    },
}

impl ProducerError {
    /// The error for a connection-layer failure that stops the producer (TLS, SASL), or a
    /// fatal error carrying the connection error's text.
    pub fn from_net(e: crate::net::NetError) -> ProducerError {
        use crate::net::NetError;
        match e {
            NetError::Tls { addr, failure } => ProducerError::Tls {
                broker: addr,
                message: failure.message,
            },
            NetError::Authentication {
                addr,
                mechanism,
                message,
                ..
            } => ProducerError::AuthenticationFailed {
                broker: addr,
                mechanism,
                message,
            },
            NetError::UnsupportedVersion { api, ours, .. } => ProducerError::UnsupportedBroker {
                broker: String::new(),
                api,
                min_version: ours.0,
                min_kafka_version: min_kafka_version(api, ours.0),
            },
            other => ProducerError::Fatal {
                code: None,
                reason: other.to_string(),
            },
        }
    }

    /// The error for a partition error code the producer will not (or no longer) retry,
    /// choosing the variant with the most helpful message.
    pub fn from_partition_error(
        topic: &str,
        partition: i32,
        code: ErrorCode,
        message: Option<&str>,
    ) -> ProducerError {
        let topic = topic.to_string();
        let message = message.filter(|m| !m.is_empty()).map(str::to_string);
        match code {
            ErrorCode::TOPIC_AUTHORIZATION_FAILED => {
                ProducerError::TopicAuthorizationFailed { topic }
            }
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED => ProducerError::ClusterAuthorizationFailed,
            ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE => {
                ProducerError::RecordRejectedAsTooLarge {
                    topic,
                    partition,
                    code,
                }
            }
            ErrorCode::INVALID_RECORD
            | ErrorCode::CORRUPT_MESSAGE
            | ErrorCode::INVALID_TIMESTAMP => ProducerError::InvalidRecord {
                topic,
                partition,
                code,
                message,
            },
            _ => ProducerError::Broker {
                topic,
                partition,
                code,
                message,
                persistence: classify_produce_error(code).persistence,
            },
        }
    }

    /// The Kafka error code behind this error, if the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ProducerError::RecordRejectedAsTooLarge { code, .. }
            | ProducerError::InvalidRecord { code, .. }
            | ProducerError::Broker { code, .. } => Some(*code),
            ProducerError::TopicAuthorizationFailed { .. } => {
                Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
            }
            ProducerError::ClusterAuthorizationFailed => {
                Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED)
            }
            ProducerError::AuthenticationFailed { .. } => {
                Some(ErrorCode::SASL_AUTHENTICATION_FAILED)
            }
            ProducerError::UnknownTopic { .. } => Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            ProducerError::DeliveryTimeout { last_error, .. }
            | ProducerError::Unresolved { last_error, .. } => *last_error,
            ProducerError::UnsupportedBroker { .. } => Some(ErrorCode::UNSUPPORTED_VERSION),
            ProducerError::Fatal { code, .. } => *code,
            ProducerError::ProducerIdRefused { code } => Some(*code),
            ProducerError::DeadLettered { source, .. }
            | ProducerError::DeadLetterFailed { source, .. } => source.code(),
            ProducerError::Config(_)
            | ProducerError::UnknownPartition { .. }
            | ProducerError::RecordTooLarge { .. }
            | ProducerError::RecordExceedsBufferMemory { .. }
            | ProducerError::BufferFull { .. }
            | ProducerError::MetadataTimeout { .. }
            | ProducerError::Transport { .. }
            | ProducerError::Tls { .. }
            | ProducerError::Closed
            | ProducerError::DurabilityMisaligned { .. }
            | ProducerError::DurabilityUnverified { .. }
            | ProducerError::ClosedInFlight { .. }
            | ProducerError::UnresolvedAfterEpochBump { .. }
            | ProducerError::NotInTransaction { .. }
            | ProducerError::TransactionAborted { .. } => None,
        }
    }

    /// A stable name for the kind of error, for metrics and summaries: the Kafka error
    /// code's name where the broker's answer is the error (`NOT_ENOUGH_REPLICAS`,
    /// `TOPIC_AUTHORIZATION_FAILED`), otherwise courier's own in the same style
    /// (`DELIVERY_TIMEOUT`, `RECORD_TOO_LARGE`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ProducerError::Broker { code, .. }
            | ProducerError::InvalidRecord { code, .. }
            | ProducerError::RecordRejectedAsTooLarge { code, .. } => {
                code.name().unwrap_or("UNKNOWN_SERVER_ERROR")
            }
            ProducerError::TopicAuthorizationFailed { .. } => "TOPIC_AUTHORIZATION_FAILED",
            ProducerError::ClusterAuthorizationFailed => "CLUSTER_AUTHORIZATION_FAILED",
            ProducerError::AuthenticationFailed { .. } => "SASL_AUTHENTICATION_FAILED",
            ProducerError::Tls { .. } => "TLS",
            ProducerError::Config(_) => "CONFIG",
            ProducerError::UnknownTopic { .. } => "UNKNOWN_TOPIC_OR_PARTITION",
            ProducerError::UnknownPartition { .. } => "UNKNOWN_PARTITION",
            ProducerError::RecordTooLarge { .. } => "RECORD_TOO_LARGE",
            ProducerError::RecordExceedsBufferMemory { .. } => "RECORD_EXCEEDS_BUFFER_MEMORY",
            ProducerError::BufferFull { .. } => "BUFFER_FULL",
            ProducerError::MetadataTimeout { .. } => "METADATA_TIMEOUT",
            ProducerError::DeliveryTimeout { .. } => "DELIVERY_TIMEOUT",
            ProducerError::Unresolved { .. } => "UNRESOLVED",
            ProducerError::Transport { .. } => "TRANSPORT",
            ProducerError::UnsupportedBroker { .. } => "UNSUPPORTED_VERSION",
            ProducerError::Fatal { .. } => "FATAL",
            ProducerError::ProducerIdRefused { code } => {
                code.name().unwrap_or("PRODUCER_ID_REFUSED")
            }
            ProducerError::DurabilityMisaligned { .. } => "DURABILITY_MISALIGNED",
            ProducerError::DurabilityUnverified { .. } => "DURABILITY_UNVERIFIED",
            ProducerError::DeadLettered { source, .. }
            | ProducerError::DeadLetterFailed { source, .. } => source.name(),
            ProducerError::Closed => "CLOSED",
            ProducerError::ClosedInFlight { .. } => "CLOSED_IN_FLIGHT",
            ProducerError::UnresolvedAfterEpochBump { .. } => "UNRESOLVED_AFTER_EPOCH_BUMP",
            ProducerError::TransactionAborted { .. } => "TRANSACTION_ABORTED",
            ProducerError::NotInTransaction { .. } => "NOT_IN_TRANSACTION",
        }
    }

    /// The connection or metadata problem behind a timeout, when one is known: what a user
    /// needs to fix ("could not connect to broker1:9092: Connection refused").
    pub fn root_cause(&self) -> Option<&str> {
        match self {
            ProducerError::DeliveryTimeout { last_cause, .. }
            | ProducerError::MetadataTimeout { last_cause, .. } => last_cause.as_deref(),
            ProducerError::DeadLettered { source, .. }
            | ProducerError::DeadLetterFailed { source, .. } => source.root_cause(),
            _ => None,
        }
    }

    /// The Java name of [`code`](Self::code), e.g. `NOT_ENOUGH_REPLICAS`.
    pub fn code_name(&self) -> Option<&'static str> {
        self.code().and_then(ErrorCode::name)
    }

    /// Whether the failed record may be in the partition's log.
    pub fn persistence(&self) -> Persistence {
        match self {
            ProducerError::Broker { persistence, .. }
            | ProducerError::DeliveryTimeout { persistence, .. }
            | ProducerError::Transport { persistence, .. }
            | ProducerError::ClosedInFlight { persistence }
            | ProducerError::TransactionAborted { persistence, .. } => *persistence,
            ProducerError::UnresolvedAfterEpochBump { .. } | ProducerError::Unresolved { .. } => {
                Persistence::PossiblyPersisted
            }
            ProducerError::DeadLettered { source, .. }
            | ProducerError::DeadLetterFailed { source, .. } => source.persistence(),
            // Fatal errors end every pending record, including ones in flight.
            ProducerError::Fatal { .. } => Persistence::PossiblyPersisted,
            _ => Persistence::NotPersisted,
        }
    }

    /// Whether sending the same record again later can succeed without changing anything:
    /// the cause is transient (a broker down, a leader election, a full buffer). Check
    /// [`persistence`](Self::persistence) before resending, to avoid duplicates.
    pub fn is_retriable(&self) -> bool {
        match self {
            ProducerError::Broker { code, .. } => code.is_retriable(),
            ProducerError::DeliveryTimeout { .. }
            | ProducerError::Transport { .. }
            | ProducerError::BufferFull { .. }
            | ProducerError::MetadataTimeout { .. } => true,
            _ => false,
        }
    }
}

/// The first Kafka release with `api` at `version`, for the versions courier needs.
fn min_kafka_version(api: &str, version: i16) -> &'static str {
    match (api, version) {
        ("Produce", 3) | ("InitProducerId", 0) => "0.11",
        ("Metadata", 4) => "0.11",
        ("SaslHandshake", 1) | ("SaslAuthenticate", 0) => "1.0",
        ("DescribeConfigs", 1) => "1.1",
        _ => "a newer version",
    }
}

/// "; last error: <cause>" when there is one.
struct LastCause<'a>(Option<&'a str>);

impl fmt::Display for LastCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, " (last error: {c})"),
            None => Ok(()),
        }
    }
}

/// "; last connection problem: <cause>" when there is one.
struct ConnectionCause<'a>(Option<&'a str>);

impl fmt::Display for ConnectionCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "; last connection problem: {c}"),
            None => Ok(()),
        }
    }
}

struct BrokerMessage<'a>(Option<&'a str>);

impl fmt::Display for BrokerMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, " with message \"{m}\""),
            None => Ok(()),
        }
    }
}

/// ": <description>" of a known code, or a pointer to the protocol docs for an unknown one.
struct Description(ErrorCode);

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.info() {
            Some(info) => {
                let d = info
                    .description
                    .strip_suffix('.')
                    .unwrap_or(info.description);
                write!(f, ": {d}")
            }
            None => f.write_str(
                ": the code is newer than this client (see the Kafka protocol's error codes)",
            ),
        }
    }
}

struct LastError(Option<ErrorCode>);

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, ", last error {code}"),
            None => Ok(()),
        }
    }
}

struct FatalCode(Option<ErrorCode>);

impl fmt::Display for FatalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, " ({code})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
