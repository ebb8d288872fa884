//! What the producer does with each error of a Produce response.

use super::ErrorCode;
use crate::producer::Persistence;

/// What to do with a batch after a Produce response (or a failed attempt to get one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProduceAction {
    /// The batch is written: complete its records as delivered. `DUPLICATE_SEQUENCE_NUMBER`
    /// lands here too (the broker already had this batch from an earlier attempt), but then
    /// the response carries no offset.
    Complete,
    /// Send the same sealed batch again, with the same sequence numbers, after the backoff
    /// (skip the backoff if the leader moved).
    Retry,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`. If this batch is the oldest unacknowledged one of the
    /// partition, the broker lost track of earlier batches: once the partition's in-flight
    /// requests drain, bump the epoch and restart its sequence at 0 (KIP-360), then retry.
    /// If an earlier batch is still in flight or failing, wait for it: this error is its
    /// consequence, not a problem of this batch.
    ResolveSequenceGap,
    /// `UNKNOWN_PRODUCER_ID`: the broker dropped the producer's state, usually because
    /// retention deleted its last records. If every earlier batch is acknowledged and this one
    /// was not retried, bump the epoch and retry (no risk of duplicates); otherwise treat it
    /// like a sequence gap, and if that is impossible fail the producer (librdkafka does the
    /// same).
    ResolveUnknownProducerId,
    /// `MESSAGE_TOO_LARGE` / `RECORD_LIST_TOO_LARGE`: split a batch of several records and
    /// send the halves (as the Java client does); a single record that is too large fails.
    SplitOrFail,
    /// Fail the batch's records with this error; the producer carries on. With idempotence
    /// the skipped sequence numbers leave a gap, so the partition needs an epoch bump before
    /// its next batch (librdkafka drains and bumps; franz-go fails the partition's buffer).
    Fail,
    /// The producer cannot continue (fenced, or not authorized to produce idempotently):
    /// fail every pending record and refuse new ones.
    FatalProducer,
}

/// The producer's reading of one partition error in a Produce response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProduceErrorClass {
    /// What to do with the batch.
    pub action: ProduceAction,
    /// Whether the batch's records are in the log as far as this response tells; this is the
    /// persistence to report if the records end up failing.
    pub persistence: Persistence,
    /// Refresh metadata before the retry (the leader moved or is unknown).
    pub refresh_metadata: bool,
    /// Whether this attempt counts against `retries`. Leader moves do not (librdkafka does not
    /// count them either): they are the cluster working as designed, not a failing record, and
    /// `delivery.timeout.ms` still bounds the time spent.
    pub counts_as_retry: bool,
}

impl ProduceErrorClass {
    const fn new(
        action: ProduceAction,
        persistence: Persistence,
        refresh_metadata: bool,
        counts_as_retry: bool,
    ) -> Self {
        ProduceErrorClass {
            action,
            persistence,
            refresh_metadata,
            counts_as_retry,
        }
    }

    /// Whether the batch may be sent again (possibly after resolving sequence state).
    pub const fn may_retry(&self) -> bool {
        matches!(
            self.action,
            ProduceAction::Retry
                | ProduceAction::ResolveSequenceGap
                | ProduceAction::ResolveUnknownProducerId
                | ProduceAction::SplitOrFail
        )
    }
}

/// Classifies the error code of one partition in a Produce response.
///
/// Follows what librdkafka, the Java client and franz-go agree on (see
/// `producer-internals.md`); where they differ, the choice is explained at the code.
pub fn classify_produce_error(code: ErrorCode) -> ProduceErrorClass {
    use Persistence::{NotPersisted, Persisted, PossiblyPersisted};
    use ProduceAction::*;

    match code {
        ErrorCode::NONE | ErrorCode::DUPLICATE_SEQUENCE_NUMBER => {
            ProduceErrorClass::new(Complete, Persisted, false, false)
        }

        // The leader moved or is unknown: the broker rejected the batch before appending it.
        ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::LEADER_NOT_AVAILABLE
        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::KAFKA_STORAGE_ERROR
        | ErrorCode::FENCED_LEADER_EPOCH
        | ErrorCode::UNKNOWN_LEADER_EPOCH
        | ErrorCode::REPLICA_NOT_AVAILABLE
        | ErrorCode::UNKNOWN_TOPIC_ID
        | ErrorCode::INCONSISTENT_TOPIC_ID
        | ErrorCode::LISTENER_NOT_FOUND => ProduceErrorClass::new(Retry, NotPersisted, true, false),

        // Checked before the append: not written.
        ErrorCode::NOT_ENOUGH_REPLICAS => ProduceErrorClass::new(Retry, NotPersisted, false, true),

        // Written to the leader (AFTER_APPEND), or maybe written (timeouts): a retry with the
        // same sequence is deduplicated by the broker under idempotence.
        ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND | ErrorCode::REQUEST_TIMED_OUT => {
            ProduceErrorClass::new(Retry, PossiblyPersisted, false, true)
        }
        ErrorCode::NETWORK_EXCEPTION => {
            ProduceErrorClass::new(Retry, PossiblyPersisted, true, true)
        }

        // This attempt was rejected, but an earlier attempt of the same batch may have been
        // written and already forgotten by the broker (it keeps 5 batches per producer), which
        // is why librdkafka reports these as possibly persisted.
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER => {
            ProduceErrorClass::new(ResolveSequenceGap, PossiblyPersisted, false, true)
        }
        // The request carried an epoch the broker no longer accepts for this producer id:
        // one sent before a KIP-360 epoch bump. Rejected, so not written by this attempt;
        // resent under the current epoch once the batches ahead of it are settled.
        ErrorCode::INVALID_PRODUCER_EPOCH => {
            ProduceErrorClass::new(ResolveSequenceGap, NotPersisted, false, true)
        }
        ErrorCode::UNKNOWN_PRODUCER_ID => {
            ProduceErrorClass::new(ResolveUnknownProducerId, NotPersisted, false, false)
        }

        ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE => {
            ProduceErrorClass::new(SplitOrFail, NotPersisted, false, false)
        }

        ErrorCode::PRODUCER_FENCED
        | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
        | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        | ErrorCode::INVALID_PRODUCER_ID_MAPPING => {
            ProduceErrorClass::new(FatalProducer, NotPersisted, false, false)
        }

        // Rejected by validation before the append. CORRUPT_MESSAGE is retriable in Java and
        // librdkafka, but courier computes the CRC itself: resending the same bytes cannot
        // help, and brokers before KIP-467 also used it for permanent problems (a null key on
        // a compacted topic).
        ErrorCode::CORRUPT_MESSAGE
        | ErrorCode::INVALID_RECORD
        | ErrorCode::INVALID_TIMESTAMP
        | ErrorCode::TOPIC_AUTHORIZATION_FAILED
        | ErrorCode::INVALID_REQUIRED_ACKS
        | ErrorCode::INVALID_TOPIC_EXCEPTION
        | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | ErrorCode::UNSUPPORTED_COMPRESSION_TYPE
        | ErrorCode::UNSUPPORTED_VERSION
        | ErrorCode::POLICY_VIOLATION
        | ErrorCode::INVALID_REQUEST
        | ErrorCode::INVALID_TXN_STATE
        | ErrorCode::TRANSACTION_ABORTABLE => {
            ProduceErrorClass::new(Fail, NotPersisted, false, false)
        }

        // Anything else that Java calls retriable: retry, but without knowing where the broker
        // stopped, assume the batch may be in the log.
        other if other.is_retriable() => {
            ProduceErrorClass::new(Retry, PossiblyPersisted, other.is_stale_metadata(), true)
        }

        // UNKNOWN_SERVER_ERROR and codes this table does not know: the broker may have failed
        // half-way through the append (librdkafka's default for unknown errors).
        _ => ProduceErrorClass::new(Fail, PossiblyPersisted, false, false),
    }
}

/// Classifies a Produce attempt that got no response: the connection failed or the request
/// timed out on the client (`request.timeout.ms`).
///
/// If the request was (maybe partly) written to the socket, the broker may have appended the
/// batch; if it never left the client, it was not.
pub fn classify_transport_error(request_sent: bool) -> ProduceErrorClass {
    let persistence = if request_sent {
        Persistence::PossiblyPersisted
    } else {
        Persistence::NotPersisted
    };
    // The broker may be gone or no longer the leader: refresh before retrying.
    ProduceErrorClass::new(ProduceAction::Retry, persistence, true, request_sent)
}
