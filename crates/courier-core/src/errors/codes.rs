//! The Kafka protocol error codes a producer can receive, with names and retriability.

use std::fmt;

/// A Kafka protocol error code (`error_code` in responses; 0 is success).
///
/// Any `i16` can be held, including codes newer than this table; the named constants
/// (`ErrorCode::NOT_LEADER_OR_FOLLOWER`, ...) cover the codes a producer can see in
/// ApiVersions, Metadata, InitProducerId, SASL and Produce responses, and in the replies
/// of a transactional producer (FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn,
/// TxnOffsetCommit, EndTxn). Names are the Java
/// client's (`Errors.java`), which is what broker logs and other clients print.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(i16);

/// One row of the table of known codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCodeInfo {
    /// The code.
    pub code: ErrorCode,
    /// The Java client's name, e.g. `NOT_LEADER_OR_FOLLOWER`.
    pub name: &'static str,
    /// Whether the Java client classifies it as retriable (its exception extends
    /// `RetriableException`). The producer's decision for a Produce response is finer:
    /// see [`classify_produce_error`](super::classify_produce_error).
    pub retriable: bool,
    /// Whether it means the client's metadata is stale (Java's `InvalidMetadataException`):
    /// refresh metadata before retrying.
    pub stale_metadata: bool,
    /// What it means, in a sentence.
    pub description: &'static str,
}

macro_rules! error_codes {
    ($(
        $name:ident = $code:literal, retriable: $retriable:literal, stale_metadata: $stale:literal,
        $description:literal;
    )*) => {
        impl ErrorCode {
            $(
                #[doc = $description]
                pub const $name: ErrorCode = ErrorCode($code);
            )*
        }

        /// Every code in the table, ordered by code.
        pub(crate) static KNOWN: &[ErrorCodeInfo] = &[
            $(
                ErrorCodeInfo {
                    code: ErrorCode($code),
                    name: stringify!($name),
                    retriable: $retriable,
                    stale_metadata: $stale,
                    description: $description,
                },
            )*
        ];
    };
}

// Retriability and staleness follow the Java client (`Errors.java`); the fixture test checks
// every row against kafka-clients 4.3.1. Descriptions are ours.
error_codes! {
    UNKNOWN_SERVER_ERROR = -1, retriable: false, stale_metadata: false,
        "The broker hit an unexpected error while handling the request.";
    NONE = 0, retriable: false, stale_metadata: false,
        "Success.";
    CORRUPT_MESSAGE = 2, retriable: true, stale_metadata: false,
        "The broker found a record batch whose CRC or size is wrong.";
    UNKNOWN_TOPIC_OR_PARTITION = 3, retriable: true, stale_metadata: true,
        "The broker does not host this topic or partition (it may not exist, or metadata is stale).";
    LEADER_NOT_AVAILABLE = 5, retriable: true, stale_metadata: true,
        "The partition has no leader right now, typically during a leader election.";
    NOT_LEADER_OR_FOLLOWER = 6, retriable: true, stale_metadata: true,
        "The broker is no longer the leader of the partition; the leader moved.";
    REQUEST_TIMED_OUT = 7, retriable: true, stale_metadata: false,
        "The broker did not complete the request in time (for acks=all: replication was too slow).";
    BROKER_NOT_AVAILABLE = 8, retriable: false, stale_metadata: false,
        "The broker is not available.";
    REPLICA_NOT_AVAILABLE = 9, retriable: true, stale_metadata: true,
        "A replica of the partition is not available.";
    MESSAGE_TOO_LARGE = 10, retriable: false, stale_metadata: false,
        "A record batch is larger than the topic's max.message.bytes.";
    OFFSET_METADATA_TOO_LARGE = 12, retriable: false, stale_metadata: false,
        "The metadata string committed with an offset is longer than the broker allows.";
    NETWORK_EXCEPTION = 13, retriable: true, stale_metadata: true,
        "The connection broke before a response arrived.";
    COORDINATOR_LOAD_IN_PROGRESS = 14, retriable: true, stale_metadata: false,
        "The coordinator is still loading its state.";
    COORDINATOR_NOT_AVAILABLE = 15, retriable: true, stale_metadata: false,
        "The coordinator is not available.";
    NOT_COORDINATOR = 16, retriable: true, stale_metadata: false,
        "The broker is not the coordinator for this id.";
    INVALID_TOPIC_EXCEPTION = 17, retriable: false, stale_metadata: false,
        "The topic name is invalid, or the topic is internal and cannot be written to.";
    RECORD_LIST_TOO_LARGE = 18, retriable: false, stale_metadata: false,
        "The record batch is larger than the broker's log segment size.";
    NOT_ENOUGH_REPLICAS = 19, retriable: true, stale_metadata: false,
        "Fewer in-sync replicas than min.insync.replicas: the batch was rejected, not written.";
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20, retriable: true, stale_metadata: false,
        "The batch was written to the leader, but the in-sync replicas fell below min.insync.replicas.";
    INVALID_REQUIRED_ACKS = 21, retriable: false, stale_metadata: false,
        "The acks value in the request is not one the broker accepts.";
    ILLEGAL_GENERATION = 22, retriable: false, stale_metadata: false,
        "The consumer group generation sent with the offsets is not the group's current one.";
    INVALID_GROUP_ID = 24, retriable: false, stale_metadata: false,
        "The group id is empty or otherwise invalid.";
    UNKNOWN_MEMBER_ID = 25, retriable: false, stale_metadata: false,
        "The member id sent with the offsets is not a member of the consumer group.";
    REBALANCE_IN_PROGRESS = 27, retriable: false, stale_metadata: false,
        "The consumer group is rebalancing.";
    INVALID_COMMIT_OFFSET_SIZE = 28, retriable: false, stale_metadata: false,
        "The offset commit was rejected because of its size.";
    TOPIC_AUTHORIZATION_FAILED = 29, retriable: false, stale_metadata: false,
        "The client's principal may not access the topic.";
    GROUP_AUTHORIZATION_FAILED = 30, retriable: false, stale_metadata: false,
        "The client's principal may not access the consumer group.";
    CLUSTER_AUTHORIZATION_FAILED = 31, retriable: false, stale_metadata: false,
        "The client's principal lacks a cluster-level permission.";
    INVALID_TIMESTAMP = 32, retriable: false, stale_metadata: false,
        "A record timestamp is outside the range the topic accepts.";
    UNSUPPORTED_SASL_MECHANISM = 33, retriable: false, stale_metadata: false,
        "The broker does not enable the requested SASL mechanism.";
    ILLEGAL_SASL_STATE = 34, retriable: false, stale_metadata: false,
        "A SASL request arrived in the wrong state of the handshake.";
    UNSUPPORTED_VERSION = 35, retriable: false, stale_metadata: false,
        "The broker does not support this version of the request.";
    INVALID_REQUEST = 42, retriable: false, stale_metadata: false,
        "The broker could not make sense of the request.";
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43, retriable: false, stale_metadata: false,
        "The topic's message format version does not support the request.";
    POLICY_VIOLATION = 44, retriable: false, stale_metadata: false,
        "The request violates a policy configured on the broker.";
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45, retriable: false, stale_metadata: false,
        "The batch's sequence number does not follow the last one the broker has for this producer.";
    DUPLICATE_SEQUENCE_NUMBER = 46, retriable: false, stale_metadata: false,
        "The broker already has this batch (a retry of a written batch).";
    INVALID_PRODUCER_EPOCH = 47, retriable: false, stale_metadata: false,
        "The producer epoch in the request is older than the broker's.";
    INVALID_TXN_STATE = 48, retriable: false, stale_metadata: false,
        "The request is not valid in the transaction's current state.";
    INVALID_PRODUCER_ID_MAPPING = 49, retriable: false, stale_metadata: false,
        "The producer id does not belong to the transactional id.";
    INVALID_TRANSACTION_TIMEOUT = 50, retriable: false, stale_metadata: false,
        "The transaction timeout exceeds the broker's transaction.max.timeout.ms.";
    CONCURRENT_TRANSACTIONS = 51, retriable: true, stale_metadata: false,
        "Another operation on the same transactional id is in progress.";
    TRANSACTION_COORDINATOR_FENCED = 52, retriable: false, stale_metadata: false,
        "The transaction coordinator that sent the request has been replaced by a newer one.";
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53, retriable: false, stale_metadata: false,
        "The client's principal may not use the transactional id.";
    OPERATION_NOT_ATTEMPTED = 55, retriable: false, stale_metadata: false,
        "The broker did not attempt this part of the request because another part failed.";
    KAFKA_STORAGE_ERROR = 56, retriable: true, stale_metadata: true,
        "The broker could not access the partition's log directory (disk error).";
    SASL_AUTHENTICATION_FAILED = 58, retriable: false, stale_metadata: false,
        "SASL authentication failed: wrong credentials or mechanism.";
    UNKNOWN_PRODUCER_ID = 59, retriable: false, stale_metadata: false,
        "The broker has no state for the producer id, usually because retention deleted its last records.";
    LISTENER_NOT_FOUND = 72, retriable: true, stale_metadata: true,
        "The leader has no listener with the name the request came in on.";
    FENCED_LEADER_EPOCH = 74, retriable: true, stale_metadata: true,
        "The leader epoch in the request is older than the broker's.";
    UNKNOWN_LEADER_EPOCH = 75, retriable: true, stale_metadata: false,
        "The leader epoch in the request is newer than the broker's.";
    UNSUPPORTED_COMPRESSION_TYPE = 76, retriable: false, stale_metadata: false,
        "The broker or topic does not accept the batch's compression codec.";
    FENCED_INSTANCE_ID = 82, retriable: false, stale_metadata: false,
        "A newer consumer with the same group.instance.id fenced the member named in the request.";
    INVALID_RECORD = 87, retriable: false, stale_metadata: false,
        "The broker's validation rejected a record (for example a null key on a compacted topic).";
    PRODUCER_FENCED = 90, retriable: false, stale_metadata: false,
        "A newer producer with the same transactional id fenced this one.";
    UNKNOWN_TOPIC_ID = 100, retriable: true, stale_metadata: true,
        "The broker does not host a topic with this id.";
    INCONSISTENT_TOPIC_ID = 103, retriable: true, stale_metadata: true,
        "The topic id does not match the partition's log (the topic was recreated).";
    TRANSACTION_ABORTABLE = 120, retriable: false, stale_metadata: false,
        "The transaction hit an error and must be aborted.";
    REBOOTSTRAP_REQUIRED = 129, retriable: false, stale_metadata: false,
        "The client's metadata is stale beyond repair: reconnect to the bootstrap servers.";
}

impl ErrorCode {
    /// Wraps a code received on the wire.
    pub const fn from_i16(code: i16) -> Self {
        ErrorCode(code)
    }

    /// The code as sent on the wire.
    pub const fn code(self) -> i16 {
        self.0
    }

    /// Whether this is the success code 0.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The table row, if the code is one this table knows.
    pub fn info(self) -> Option<&'static ErrorCodeInfo> {
        KNOWN
            .binary_search_by_key(&self, |i| i.code)
            .ok()
            .map(|i| &KNOWN[i])
    }

    /// The Java client's name, if known.
    pub fn name(self) -> Option<&'static str> {
        self.info().map(|i| i.name)
    }

    /// Whether the Java client treats the code as retriable. Unknown codes are not: a newer
    /// broker maps new errors to old codes for old clients, so an unknown code is unexpected.
    pub fn is_retriable(self) -> bool {
        self.info().is_some_and(|i| i.retriable)
    }

    /// Whether the code means metadata is stale (refresh before retrying).
    pub fn is_stale_metadata(self) -> bool {
        self.info().is_some_and(|i| i.stale_metadata)
    }
}

/// Every code this crate has a name for, ordered by code.
pub fn known_error_codes() -> &'static [ErrorCodeInfo] {
    KNOWN
}

impl From<i16> for ErrorCode {
    fn from(code: i16) -> Self {
        ErrorCode(code)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

/// `NOT_LEADER_OR_FOLLOWER (6)`, or `unknown error code 1234`.
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown error code {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_by_code_for_binary_search() {
        assert!(KNOWN.windows(2).all(|w| w[0].code < w[1].code));
    }

    #[test]
    fn lookup_finds_names_and_rejects_unknown_codes() {
        assert_eq!(
            ErrorCode::from_i16(6).name(),
            Some("NOT_LEADER_OR_FOLLOWER")
        );
        assert_eq!(ErrorCode::from_i16(-1), ErrorCode::UNKNOWN_SERVER_ERROR);
        assert_eq!(ErrorCode::from_i16(999).name(), None);
        assert!(!ErrorCode::from_i16(999).is_retriable());
    }

    /// The codes a transactional producer meets, with the numbers of Kafka's
    /// `Errors.java` (the fixture test in the courier crate checks names and flags).
    #[test]
    fn transaction_codes_have_javas_numbers() {
        for (code, name) in [
            (12, "OFFSET_METADATA_TOO_LARGE"),
            (14, "COORDINATOR_LOAD_IN_PROGRESS"),
            (15, "COORDINATOR_NOT_AVAILABLE"),
            (16, "NOT_COORDINATOR"),
            (22, "ILLEGAL_GENERATION"),
            (24, "INVALID_GROUP_ID"),
            (25, "UNKNOWN_MEMBER_ID"),
            (27, "REBALANCE_IN_PROGRESS"),
            (28, "INVALID_COMMIT_OFFSET_SIZE"),
            (30, "GROUP_AUTHORIZATION_FAILED"),
            (47, "INVALID_PRODUCER_EPOCH"),
            (48, "INVALID_TXN_STATE"),
            (49, "INVALID_PRODUCER_ID_MAPPING"),
            (50, "INVALID_TRANSACTION_TIMEOUT"),
            (51, "CONCURRENT_TRANSACTIONS"),
            (52, "TRANSACTION_COORDINATOR_FENCED"),
            (53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"),
            (55, "OPERATION_NOT_ATTEMPTED"),
            (82, "FENCED_INSTANCE_ID"),
            (90, "PRODUCER_FENCED"),
            (120, "TRANSACTION_ABORTABLE"),
        ] {
            assert_eq!(ErrorCode::from_i16(code).name(), Some(name), "code {code}");
        }
        // Java: only the coordinator-moving and concurrent-transaction codes retry.
        assert!(ErrorCode::CONCURRENT_TRANSACTIONS.is_retriable());
        assert!(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.is_retriable());
        assert!(!ErrorCode::PRODUCER_FENCED.is_retriable());
        assert!(!ErrorCode::REBALANCE_IN_PROGRESS.is_retriable());
    }

    #[test]
    fn display_and_debug_show_name_and_number() {
        assert_eq!(
            ErrorCode::NOT_ENOUGH_REPLICAS.to_string(),
            "NOT_ENOUGH_REPLICAS (19)"
        );
        assert_eq!(format!("{:?}", ErrorCode::NONE), "NONE(0)");
        assert_eq!(ErrorCode::from(4242).to_string(), "unknown error code 4242");
        assert_eq!(format!("{:?}", ErrorCode::from(4242)), "ErrorCode(4242)");
    }
}
