//! What the producer does with each Produce error code.
//!
//! The table follows what the Java client, librdkafka and franz-go agree on (see
//! `shared/notes/producer-internals.md`); where they differ, the choice that never
//! loses or duplicates an acknowledged record wins.

/// The engine's decision for one partition's result in a Produce response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Written: deliver success. DUPLICATE_SEQUENCE_NUMBER lands here too: the broker
    /// already holds the batch from an earlier attempt.
    Success,
    /// Retry the same bytes (same sequence) after a backoff.
    Retry {
        /// Whether the broker may have written the batch anyway (it timed out after
        /// appending, or replication did not finish): the delivery report must say
        /// "possibly persisted" if retries run out.
        possibly_written: bool,
        /// Whether the leader may have moved: refresh metadata before the retry.
        refresh_metadata: bool,
    },
    /// The broker's sequence state does not line up with ours
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH).
    /// The batch was rejected, not written. If it is the partition's oldest unresolved
    /// batch the gap is real and the producer bumps its epoch (KIP-360); otherwise it
    /// waits for the batches ahead of it.
    SequenceDesync,
    /// MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE: the batch is larger than the topic (or
    /// broker) allows. Refused before anything was appended. A batch of several records
    /// is split and its halves sent (KIP-126, as the Java client does); a single record
    /// that is too large fails.
    TooLarge,
    /// The broker refused the batch for good: fail its records. `possibly_written` is
    /// false only for codes whose meaning says the broker rejected the batch before
    /// appending anything; an unknown code (newer than this table, or
    /// UNKNOWN_SERVER_ERROR) may have failed half-way through the append, so the report
    /// must not claim the records are not in the log.
    Fail {
        /// Whether the batch may be in the log anyway.
        possibly_written: bool,
    },
}

/// Kafka error codes the producer acts on.
#[allow(missing_docs)]
pub mod codes {
    pub const NONE: i16 = 0;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const NETWORK_EXCEPTION: i16 = 13;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const TRANSACTION_ABORTABLE: i16 = 120;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
}

/// Classifies one partition's error code in a Produce response, for the engine: the
/// policy of [`crate::errors::classify_produce_error`] (the one table), reduced to what the
/// engine does with a batch.
pub fn classify_produce_error(code: i16) -> Disposition {
    use crate::errors::{ErrorCode, ProduceAction};
    use crate::producer::Persistence;
    let class = crate::errors::classify_produce_error(ErrorCode::from_i16(code));
    let possibly_written = class.persistence == Persistence::PossiblyPersisted;
    match class.action {
        ProduceAction::Complete => Disposition::Success,
        ProduceAction::Retry => Disposition::Retry {
            possibly_written,
            refresh_metadata: class.refresh_metadata,
        },
        ProduceAction::ResolveSequenceGap | ProduceAction::ResolveUnknownProducerId => {
            Disposition::SequenceDesync
        }
        ProduceAction::SplitOrFail => Disposition::TooLarge,
        ProduceAction::Fail | ProduceAction::FatalProducer => Disposition::Fail {
            possibly_written: class.persistence != Persistence::NotPersisted,
        },
    }
}

/// The name Kafka gives an error code, for messages and metrics.
pub fn error_name(code: i16) -> &'static str {
    use codes::*;
    match code {
        NONE => "NONE",
        CORRUPT_MESSAGE => "CORRUPT_MESSAGE",
        UNKNOWN_TOPIC_OR_PARTITION => "UNKNOWN_TOPIC_OR_PARTITION",
        LEADER_NOT_AVAILABLE => "LEADER_NOT_AVAILABLE",
        NOT_LEADER_OR_FOLLOWER => "NOT_LEADER_OR_FOLLOWER",
        REQUEST_TIMED_OUT => "REQUEST_TIMED_OUT",
        MESSAGE_TOO_LARGE => "MESSAGE_TOO_LARGE",
        NETWORK_EXCEPTION => "NETWORK_EXCEPTION",
        COORDINATOR_LOAD_IN_PROGRESS => "COORDINATOR_LOAD_IN_PROGRESS",
        COORDINATOR_NOT_AVAILABLE => "COORDINATOR_NOT_AVAILABLE",
        NOT_COORDINATOR => "NOT_COORDINATOR",
        RECORD_LIST_TOO_LARGE => "RECORD_LIST_TOO_LARGE",
        NOT_ENOUGH_REPLICAS => "NOT_ENOUGH_REPLICAS",
        NOT_ENOUGH_REPLICAS_AFTER_APPEND => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        INVALID_REQUIRED_ACKS => "INVALID_REQUIRED_ACKS",
        TOPIC_AUTHORIZATION_FAILED => "TOPIC_AUTHORIZATION_FAILED",
        CLUSTER_AUTHORIZATION_FAILED => "CLUSTER_AUTHORIZATION_FAILED",
        INVALID_TIMESTAMP => "INVALID_TIMESTAMP",
        UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
        NOT_CONTROLLER => "NOT_CONTROLLER",
        OUT_OF_ORDER_SEQUENCE_NUMBER => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        DUPLICATE_SEQUENCE_NUMBER => "DUPLICATE_SEQUENCE_NUMBER",
        INVALID_PRODUCER_EPOCH => "INVALID_PRODUCER_EPOCH",
        CONCURRENT_TRANSACTIONS => "CONCURRENT_TRANSACTIONS",
        KAFKA_STORAGE_ERROR => "KAFKA_STORAGE_ERROR",
        UNKNOWN_PRODUCER_ID => "UNKNOWN_PRODUCER_ID",
        FENCED_LEADER_EPOCH => "FENCED_LEADER_EPOCH",
        UNKNOWN_LEADER_EPOCH => "UNKNOWN_LEADER_EPOCH",
        OFFSET_NOT_AVAILABLE => "OFFSET_NOT_AVAILABLE",
        INVALID_RECORD => "INVALID_RECORD",
        THROTTLING_QUOTA_EXCEEDED => "THROTTLING_QUOTA_EXCEEDED",
        PRODUCER_FENCED => "PRODUCER_FENCED",
        _ => "UNKNOWN_SERVER_ERROR",
    }
}

/// Whether an InitProducerId error is worth retrying.
pub fn init_producer_id_retriable(code: i16) -> bool {
    use codes::*;
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | CONCURRENT_TRANSACTIONS
            | REQUEST_TIMED_OUT
            | NETWORK_EXCEPTION
            | NOT_CONTROLLER
    )
}

#[cfg(test)]
mod tests {
    use super::codes::*;
    use super::*;

    #[test]
    fn duplicate_sequence_is_success() {
        assert_eq!(
            classify_produce_error(DUPLICATE_SEQUENCE_NUMBER),
            Disposition::Success
        );
    }

    #[test]
    fn leader_errors_refresh_metadata_and_were_not_written() {
        for code in [
            NOT_LEADER_OR_FOLLOWER,
            LEADER_NOT_AVAILABLE,
            UNKNOWN_TOPIC_OR_PARTITION,
        ] {
            assert_eq!(
                classify_produce_error(code),
                Disposition::Retry {
                    possibly_written: false,
                    refresh_metadata: true
                },
                "{}",
                error_name(code)
            );
        }
    }

    #[test]
    fn after_append_and_timeouts_are_possibly_written() {
        for code in [NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT] {
            assert!(matches!(
                classify_produce_error(code),
                Disposition::Retry {
                    possibly_written: true,
                    ..
                }
            ));
        }
        assert!(matches!(
            classify_produce_error(NOT_ENOUGH_REPLICAS),
            Disposition::Retry {
                possibly_written: false,
                ..
            }
        ));
    }

    #[test]
    fn sequence_errors_and_fatal_errors() {
        assert_eq!(
            classify_produce_error(OUT_OF_ORDER_SEQUENCE_NUMBER),
            Disposition::SequenceDesync
        );
        assert_eq!(
            classify_produce_error(UNKNOWN_PRODUCER_ID),
            Disposition::SequenceDesync
        );
        for code in [MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE] {
            assert_eq!(
                classify_produce_error(code),
                Disposition::TooLarge,
                "{code}"
            );
        }
        for code in [TOPIC_AUTHORIZATION_FAILED, INVALID_RECORD, CORRUPT_MESSAGE] {
            assert_eq!(
                classify_produce_error(code),
                Disposition::Fail {
                    possibly_written: false
                },
                "{code}"
            );
        }
        // A code this table does not know (or UNKNOWN_SERVER_ERROR) may have failed half-way
        // through the append: never report it as "not written".
        for code in [UNKNOWN_SERVER_ERROR, 9999, 130] {
            assert_eq!(
                classify_produce_error(code),
                Disposition::Fail {
                    possibly_written: true
                },
                "{code}"
            );
        }
    }
}
