//! The transactional producer's state machine, without I/O (issue 15).
//!
//! [`TransactionMachine`] keeps the state of one `transactional.id`: the application's
//! calls (init, begin, send offsets, commit, abort) move it, the first record for a
//! partition registers the partition, and [`TransactionMachine::poll_request`] says which
//! request the I/O layer sends next, as plain data ([`TxnRequest`]). The I/O layer
//! encodes and sends it, decodes the reply with [`crate::wire`], and hands the reply
//! back (`on_*`). Outcomes come out as [`TxnEvent`]s. It never blocks, reads no clock and
//! touches no socket, like [`super::ProducerEngine`].
//!
//! # States
//!
//! The states and their transitions are the Java client's (`TransactionManager.State`):
//!
//! ```text
//! from            to              when
//! Uninitialized   Initializing    init_transactions
//! Initializing    Ready           InitProducerId answered
//! Ready           InTransaction   begin_transaction
//! InTransaction   Committing      commit_transaction
//! InTransaction   Aborting        abort_transaction
//! InTransaction   AbortableError  an abortable error
//! Committing      Ready           EndTxn(commit) answered NONE
//! Committing      AbortableError  an abortable error
//! AbortableError  Aborting        abort_transaction
//! Aborting        Ready           EndTxn(abort) answered NONE
//! Aborting        Initializing    the same, when version 1 must bump the epoch (KIP-360)
//! any             FatalError      a fatal error
//! ```
//!
//! One transactional request is in flight at a time, as in Java, in the order Java
//! gives them: FindCoordinator first when the coordinator is unknown, then
//! InitProducerId, then AddPartitionsToTxn / AddOffsetsToTxn / TxnOffsetCommit, and
//! EndTxn last, once the engine reports that every batch of the transaction has been
//! answered.
//!
//! # Two protocol versions
//!
//! - **Transaction version 1** (Kafka 0.11 to 3.x, Redpanda, and Kafka 4 with the
//!   cluster's `transaction.version` feature at 0 or 1): before the first Produce to a
//!   partition, AddPartitionsToTxn registers it with the coordinator; offsets need
//!   AddOffsetsToTxn (which adds the group's `__consumer_offsets` partition) before
//!   TxnOffsetCommit. The epoch stays the same from one transaction to the next.
//! - **Transaction version 2** (KIP-890 part 2; Kafka 4.0+ with the feature
//!   `transaction.version` at 2 or more, Produce v12 and EndTxn v5): Produce v12 adds
//!   the partition itself, and TxnOffsetCommit v5 the offsets partition, so neither
//!   AddPartitionsToTxn nor AddOffsetsToTxn is sent. The coordinator bumps the epoch as it ends every
//!   transaction and EndTxn v5 returns the producer id and epoch for the next one (a
//!   new id with epoch 0 when the epoch is exhausted), which closes the window in which
//!   a late Produce of an ended transaction could join the next one (KIP-890's hanging
//!   transactions). [`TransactionVersion::choose`] picks the version.
//!
//! # Errors
//!
//! Every reply's error code is classified by [`classify`] into one of: done, retry
//! (after `retry_backoff`, first finding the coordinator again for NOT_COORDINATOR and
//! COORDINATOR_NOT_AVAILABLE), abortable (the transaction must be aborted, then the
//! producer carries on: [`TxnState::AbortableError`]) or fatal (the producer must be
//! dropped: [`TxnState::FatalError`]). The table follows the Java client's handlers
//! (`TransactionManager.*Handler.handleResponse`, Kafka 4.x).
//!
//! # A commit whose reply was lost
//!
//! When an EndTxn gets no reply (the connection died, the request timed out), the
//! transaction may or may not have ended. The machine finds the coordinator again and
//! sends the same EndTxn (same producer id and epoch, same outcome) until an answer
//! arrives. This is what Java does too (`TxnRequestHandler.onComplete` re-finds the
//! coordinator and re-enqueues a disconnected request), and the coordinator makes it
//! safe: a transaction still being completed answers CONCURRENT_TRANSACTIONS (retried),
//! and one already completed with the same outcome answers NONE, which counts as
//! success. With transaction version 2 the retry carries the epoch the transaction was
//! started with, one below the coordinator's bumped one; the coordinator recognises
//! it as a retry of the completed EndTxn and answers NONE with the new epoch
//! (KIP-890). If instead a fatal error comes back after a lost reply (a newer instance
//! fenced this one in between), the commit may have happened: the error is reported
//! with [`TxnError::commit_outcome_unknown`] set, never as a plain failure. Java reports
//! the same case as a plain `ProducerFencedException`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use crate::errors::ErrorCode;
use crate::wire::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, FindCoordinatorResponse,
    InitProducerIdResponse, TxnOffsetCommitResponse, KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION,
};

/// Backoff before retrying the first AddPartitionsToTxn of a transaction that got
/// CONCURRENT_TRANSACTIONS: the previous transaction is still completing and usually
/// done within milliseconds, so the normal backoff would only add latency (Java's
/// `ADD_PARTITIONS_RETRY_BACKOFF_MS`, KAFKA-5482).
pub const FIRST_ADD_PARTITIONS_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// Which transaction protocol a transaction follows (KIP-890).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionVersion {
    /// AddPartitionsToTxn and AddOffsetsToTxn register partitions; one epoch for every
    /// transaction of a producer id.
    V1,
    /// Produce v12 and TxnOffsetCommit v5 register partitions implicitly; EndTxn v5 bumps
    /// the epoch after every transaction (KIP-890 part 2).
    V2,
}

impl TransactionVersion {
    /// The version to use with a cluster whose finalized `transaction.version` feature
    /// is `finalized` (from ApiVersions v3+; `None` when the broker reports no such
    /// feature) and whose broker supports Produce up to `produce_max` and EndTxn up to
    /// `end_txn_max`. Version 2 needs all three: the feature at 2 or more, Produce v12
    /// and EndTxn v5. Redpanda reports no such feature and gets version 1.
    pub fn choose(finalized: Option<i16>, produce_max: i16, end_txn_max: i16) -> Self {
        if finalized.is_some_and(|v| v >= 2) && produce_max >= 12 && end_txn_max >= 5 {
            TransactionVersion::V2
        } else {
            TransactionVersion::V1
        }
    }

    /// The request versions a transaction of this protocol may use, to intersect with
    /// the broker's ApiVersions. The request version is how the broker learns the
    /// protocol: Produce v12, EndTxn v5 and TxnOffsetCommit v5 mean version 2 (KIP-890),
    /// so version 1 stays below them (Java's `LAST_STABLE_VERSION_BEFORE_TRANSACTION_V2`:
    /// 11, 4 and 4), and version 2 needs them. AddPartitionsToTxn (v0..=3 from a client)
    /// and AddOffsetsToTxn belong to version 1 only: an empty range for version 2.
    /// InitProducerId needs v3+ for the epoch bump after an abort (KIP-360); the range
    /// does not say so, since a first InitProducerId works at any version.
    pub fn request_versions(self, api: TxnApi) -> RangeInclusive<i16> {
        use TransactionVersion::*;
        match (self, api) {
            (V1, TxnApi::Produce) => 0..=11,
            (V2, TxnApi::Produce) => 12..=i16::MAX,
            (V1, TxnApi::EndTxn | TxnApi::TxnOffsetCommit) => 0..=4,
            (V2, TxnApi::EndTxn | TxnApi::TxnOffsetCommit) => 5..=i16::MAX,
            (V1, TxnApi::AddPartitionsToTxn) => 0..=3,
            (V1, TxnApi::AddOffsetsToTxn) => 0..=i16::MAX,
            #[allow(clippy::reversed_empty_ranges)]
            (V2, TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn) => 1..=0,
            (_, TxnApi::FindCoordinator | TxnApi::InitProducerId) => 0..=i16::MAX,
        }
    }
}

/// The state of the transactional producer; the names are those of the Java client's
/// `TransactionManager.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// `init_transactions` not called yet.
    Uninitialized,
    /// Getting a producer id and epoch (InitProducerId), which also fences older
    /// instances with the same transactional id and aborts their open transaction; also
    /// the epoch bump after an abort (transaction version 1).
    Initializing,
    /// Between transactions.
    Ready,
    /// A transaction is open: records and offsets may be added to it.
    InTransaction,
    /// Commit requested: registering the last partitions, waiting for the transaction's
    /// batches, then EndTxn(commit) until its outcome is known.
    Committing,
    /// Abort requested: waiting for the transaction's in-flight batches, then
    /// EndTxn(abort).
    Aborting,
    /// The transaction hit an error that aborting repairs: only an abort is accepted.
    AbortableError,
    /// The producer cannot continue (fenced, not authorized, or the coordinator said
    /// something that cannot be reconciled): drop it.
    FatalError,
}

/// An operation the application asked for, completed by a [`TxnEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnOperation {
    /// `init_transactions`.
    Init,
    /// `send_offsets_to_transaction`.
    SendOffsets,
    /// `commit_transaction`.
    Commit,
    /// `abort_transaction`.
    Abort,
}

/// What the application should do about a [`TxnError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnErrorClass {
    /// Call the same operation again: it resumes where it was. The machine retries
    /// retriable broker errors itself, so this class comes from the I/O layer, when an
    /// operation's deadline (`max.block.ms`) passes while the machine is still retrying.
    Retriable,
    /// Abort the transaction, then carry on with a new one.
    Abortable,
    /// Drop the producer: no further transaction is possible with it.
    Fatal,
}

/// Why a transaction or the producer failed; names follow the Java exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxnErrorKind {
    /// `ProducerFencedException`: a newer instance with the same transactional id took
    /// over (PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH from the coordinator, which older
    /// coordinators send for the same thing). Fatal.
    ProducerFenced,
    /// `TransactionalIdAuthorizationException`: the principal may not use the
    /// transactional id. Fatal.
    TransactionalIdAuthorizationFailed,
    /// `ClusterAuthorizationException` (InitProducerId, Produce). Fatal.
    ClusterAuthorizationFailed,
    /// `InvalidTxnStateException`: the coordinator's state of the transaction does not
    /// allow the request (for example a commit of a transaction it already aborted).
    /// Fatal.
    InvalidTxnState,
    /// `InvalidPidMappingException` from AddOffsetsToTxn or EndTxn: the producer id does
    /// not belong to the transactional id (it expired). Fatal.
    InvalidProducerIdMapping,
    /// INVALID_TRANSACTION_TIMEOUT: `transaction.timeout.ms` exceeds the broker's
    /// `transaction.max.timeout.ms`. Fatal.
    InvalidTransactionTimeout,
    /// A code the request's handler does not expect, or a reply without the entry that
    /// was asked for. Fatal, as in Java.
    Unexpected,
    /// `TransactionAbortableException` (TRANSACTION_ABORTABLE, KIP-890). Abortable.
    TransactionAbortable,
    /// `TopicAuthorizationException` from AddPartitionsToTxn. Abortable.
    TopicAuthorizationFailed,
    /// `GroupAuthorizationException` (FindCoordinator for the group, AddOffsetsToTxn,
    /// TxnOffsetCommit). Abortable.
    GroupAuthorizationFailed,
    /// `CommitFailedException`: TxnOffsetCommit's generation or member id is not the
    /// group's (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION; KIP-447). The consumer lost its
    /// partitions. Abortable.
    CommitFailed,
    /// `FencedInstanceIdException` from TxnOffsetCommit. Abortable.
    FencedInstanceId,
    /// UNKNOWN_PRODUCER_ID: the coordinator or a partition lost the producer's state;
    /// aborting bumps the epoch (KIP-360). Abortable.
    UnknownProducerId,
    /// A batch of the transaction failed (a Produce error, including
    /// INVALID_PRODUCER_EPOCH per KIP-588, or a batch that expired). Abortable.
    ProduceFailed,
    /// Some partitions could not be added (OPERATION_NOT_ATTEMPTED and other per
    /// partition codes of AddPartitionsToTxn). Abortable.
    AddPartitionsFailed,
    /// The I/O layer gave up waiting for an operation (`max.block.ms`); the operation is
    /// still pending in the machine and calling it again resumes it. Retriable.
    TimedOut,
}

impl TxnErrorKind {
    /// What the application should do.
    pub fn class(self) -> TxnErrorClass {
        use TxnErrorKind::*;
        match self {
            ProducerFenced
            | TransactionalIdAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidTxnState
            | InvalidProducerIdMapping
            | InvalidTransactionTimeout
            | Unexpected => TxnErrorClass::Fatal,
            TransactionAbortable
            | TopicAuthorizationFailed
            | GroupAuthorizationFailed
            | CommitFailed
            | FencedInstanceId
            | UnknownProducerId
            | ProduceFailed
            | AddPartitionsFailed => TxnErrorClass::Abortable,
            TimedOut => TxnErrorClass::Retriable,
        }
    }
}

/// A failed transaction operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnError {
    /// What went wrong.
    pub kind: TxnErrorKind,
    /// The broker's error code, if the error came from a reply.
    pub code: Option<ErrorCode>,
    /// The request whose reply carried it, if any.
    pub api: Option<TxnApi>,
    /// An EndTxn(commit) was sent and its reply lost before this error: the transaction
    /// may have committed. The application must not treat its records as not written
    /// (and must not resend them as if they were lost).
    pub commit_outcome_unknown: bool,
}

impl TxnError {
    fn new(kind: TxnErrorKind, code: Option<ErrorCode>, api: Option<TxnApi>) -> Self {
        TxnError {
            kind,
            code,
            api,
            commit_outcome_unknown: false,
        }
    }

    /// What the application should do.
    pub fn class(&self) -> TxnErrorClass {
        self.kind.class()
    }
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let (Some(code), Some(api)) = (self.code, self.api) {
            write!(f, " ({code} in {api:?})")?;
        }
        if self.commit_outcome_unknown {
            write!(f, "; the commit may have happened")?;
        }
        Ok(())
    }
}

impl std::error::Error for TxnError {}

/// Why an application call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnCallError {
    /// The transaction or the producer is in an error state; this is the error that put
    /// it there (abort for an abortable one, drop the producer for a fatal one).
    Failed(TxnError),
    /// The call is not valid in this state (Java's `IllegalStateException`): a bug in
    /// the calling code, such as a commit without a begin, or an abort while an earlier
    /// commit is still pending (call commit again to resume it).
    WrongState {
        /// What was called.
        operation: TxnCallKind,
        /// The state it was called in.
        state: TxnState,
    },
    /// A transaction call on a producer that has no `transactional.id`
    /// ([`super::ProducerEngine::transactional`] was not used).
    NotTransactional {
        /// What was called.
        operation: TxnCallKind,
    },
}

impl fmt::Display for TxnCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnCallError::Failed(e) => e.fmt(f),
            TxnCallError::WrongState { operation, state } => {
                write!(f, "cannot {operation:?} in state {state:?}")
            }
            TxnCallError::NotTransactional { operation } => {
                write!(
                    f,
                    "cannot {operation:?}: the producer has no transactional.id"
                )
            }
        }
    }
}

impl std::error::Error for TxnCallError {}

/// The application calls, for [`TxnCallError::WrongState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnCallKind {
    /// `init_transactions`.
    Init,
    /// `begin_transaction`.
    Begin,
    /// A record for a partition (`add_partition`).
    Send,
    /// `send_offsets_to_transaction`.
    SendOffsets,
    /// `commit_transaction`.
    Commit,
    /// `abort_transaction`.
    Abort,
}

/// The transactional requests, by API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnApi {
    /// FindCoordinator (key 10).
    FindCoordinator,
    /// InitProducerId (key 22).
    InitProducerId,
    /// AddPartitionsToTxn (key 24).
    AddPartitionsToTxn,
    /// AddOffsetsToTxn (key 25).
    AddOffsetsToTxn,
    /// TxnOffsetCommit (key 28).
    TxnOffsetCommit,
    /// EndTxn (key 26).
    EndTxn,
    /// Produce (key 0), for a batch of the transaction that failed.
    Produce,
}

/// What a reply's error code means for the transaction ([`classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnDisposition {
    /// Success.
    Done,
    /// Send the request again after the backoff.
    Retry {
        /// The coordinator moved or is down: find it again first.
        refind_coordinator: bool,
    },
    /// Abort the transaction.
    Abortable {
        /// Why.
        kind: TxnErrorKind,
        /// The abort must also bump the epoch (KIP-360): with transaction version 1 an
        /// InitProducerId with the current id and epoch follows the EndTxn(abort).
        bump_epoch: bool,
    },
    /// Drop the producer.
    Fatal(TxnErrorKind),
}

/// How the Java client's handlers treat `code` in a reply to `api` (Kafka 4.x
/// `TransactionManager`), which this machine follows.
pub fn classify(api: TxnApi, code: ErrorCode) -> TxnDisposition {
    use TxnDisposition::*;
    use TxnErrorKind as K;
    let abortable = |kind| Abortable {
        kind,
        bump_epoch: false,
    };
    if code.is_none() {
        return Done;
    }
    if api == TxnApi::Produce {
        return match code {
            ErrorCode::PRODUCER_FENCED => Fatal(K::ProducerFenced),
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED => {
                Fatal(K::TransactionalIdAuthorizationFailed)
            }
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED => Fatal(K::ClusterAuthorizationFailed),
            ErrorCode::TRANSACTION_ABORTABLE => abortable(K::TransactionAbortable),
            // The partition's sequence state is lost or out of step: the sequence can
            // only restart under a new epoch (KIP-360).
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER | ErrorCode::UNKNOWN_PRODUCER_ID => Abortable {
                kind: K::ProduceFailed,
                bump_epoch: true,
            },
            // INVALID_PRODUCER_EPOCH in a Produce reply is abortable (KIP-588): the
            // coordinator aborted the transaction (its timeout) and bumped the epoch.
            _ => abortable(K::ProduceFailed),
        };
    }
    match code {
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => Retry {
            refind_coordinator: true,
        },
        // TxnOffsetCommit also re-finds the group coordinator on REQUEST_TIMED_OUT.
        ErrorCode::REQUEST_TIMED_OUT if api == TxnApi::TxnOffsetCommit => Retry {
            refind_coordinator: true,
        },
        ErrorCode::PRODUCER_FENCED | ErrorCode::INVALID_PRODUCER_EPOCH
            if api != TxnApi::FindCoordinator =>
        {
            Fatal(K::ProducerFenced)
        }
        ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED => {
            Fatal(K::TransactionalIdAuthorizationFailed)
        }
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED if api == TxnApi::InitProducerId => {
            Fatal(K::ClusterAuthorizationFailed)
        }
        ErrorCode::INVALID_TRANSACTION_TIMEOUT if api == TxnApi::InitProducerId => {
            Fatal(K::InvalidTransactionTimeout)
        }
        ErrorCode::INVALID_TXN_STATE if api != TxnApi::TxnOffsetCommit => Fatal(K::InvalidTxnState),
        ErrorCode::INVALID_PRODUCER_ID_MAPPING
            if matches!(api, TxnApi::AddOffsetsToTxn | TxnApi::EndTxn) =>
        {
            Fatal(K::InvalidProducerIdMapping)
        }
        ErrorCode::UNKNOWN_PRODUCER_ID | ErrorCode::INVALID_PRODUCER_ID_MAPPING
            if matches!(
                api,
                TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn
            ) =>
        {
            Abortable {
                kind: K::UnknownProducerId,
                bump_epoch: true,
            }
        }
        ErrorCode::TRANSACTION_ABORTABLE if api != TxnApi::FindCoordinator => {
            abortable(K::TransactionAbortable)
        }
        ErrorCode::GROUP_AUTHORIZATION_FAILED
            if matches!(
                api,
                TxnApi::FindCoordinator | TxnApi::AddOffsetsToTxn | TxnApi::TxnOffsetCommit
            ) =>
        {
            abortable(K::GroupAuthorizationFailed)
        }
        ErrorCode::TOPIC_AUTHORIZATION_FAILED if api == TxnApi::AddPartitionsToTxn => {
            abortable(K::TopicAuthorizationFailed)
        }
        ErrorCode::OPERATION_NOT_ATTEMPTED if api == TxnApi::AddPartitionsToTxn => {
            abortable(K::AddPartitionsFailed)
        }
        ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION
            if api == TxnApi::TxnOffsetCommit =>
        {
            abortable(K::CommitFailed)
        }
        ErrorCode::FENCED_INSTANCE_ID if api == TxnApi::TxnOffsetCommit => {
            abortable(K::FencedInstanceId)
        }
        // COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS, UNKNOWN_TOPIC_OR_PARTITION,
        // UNSTABLE_OFFSET_COMMIT, ...: whatever Java counts as retriable is retried with
        // the same coordinator.
        c if c.is_retriable() => Retry {
            refind_coordinator: false,
        },
        // Java's AddPartitionsToTxn handler collects other partition errors and aborts.
        _ if api == TxnApi::AddPartitionsToTxn => abortable(K::AddPartitionsFailed),
        _ => Fatal(K::Unexpected),
    }
}

/// The consumer group whose offsets go into the transaction (Java's
/// `ConsumerGroupMetadata`). The generation and member id let the group coordinator
/// fence a zombie whose consumer lost its partitions (KIP-447, TxnOffsetCommit v3+).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The consumer's generation, -1 if unknown.
    pub generation_id: i32,
    /// The consumer's member id, empty if unknown.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// A group known only by its id: no fencing by generation (pre-KIP-447 behaviour).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// One offset to commit with the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnOffset {
    /// Topic consumed from.
    pub topic: String,
    /// Partition consumed from.
    pub partition: i32,
    /// The next offset to consume (the last processed one plus 1).
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Metadata string stored with the offset.
    pub metadata: Option<String>,
}

impl TxnOffset {
    /// The next offset to consume from `topic`'s `partition`, with no leader epoch and no
    /// metadata.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        TxnOffset {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        }
    }
}

/// A coordinator's address, from FindCoordinator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoordinatorNode {
    /// Broker id.
    pub node_id: i32,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: i32,
}

/// Where a [`TxnRequest`] goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxnTarget {
    /// Any broker (FindCoordinator): the least loaded one, as Java picks.
    AnyBroker,
    /// The coordinator found earlier.
    Coordinator(CoordinatorNode),
}

/// A request for the I/O layer to encode and send. Versions are the I/O layer's choice
/// within what the broker supports and what the transaction's protocol allows
/// ([`TransactionVersion::request_versions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRequest {
    /// Find the coordinator of `key`; answer with
    /// [`TransactionMachine::on_find_coordinator`].
    FindCoordinator {
        /// [`KEY_TYPE_TRANSACTION`] or [`KEY_TYPE_GROUP`].
        key_type: i8,
        /// The transactional id or the group id (one key; v4+ send it as the one
        /// entry of `coordinator_keys`).
        key: String,
    },
    /// Get (or bump, KIP-360) the producer id and epoch; answer with
    /// [`TransactionMachine::on_init_producer_id`].
    InitProducerId {
        /// `transactional.id`.
        transactional_id: String,
        /// `transaction.timeout.ms`.
        transaction_timeout_ms: i32,
        /// -1 for a new producer, or the current id to bump its epoch (v3+).
        producer_id: i64,
        /// -1 for a new producer, or the current epoch to bump (v3+).
        producer_epoch: i16,
    },
    /// Register partitions with the transaction (version 1 only); answer with
    /// [`TransactionMachine::on_add_partitions_to_txn`].
    AddPartitionsToTxn {
        /// `transactional.id`.
        transactional_id: String,
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
        /// Partitions to add, by topic.
        topics: BTreeMap<String, Vec<i32>>,
    },
    /// Add the group's offsets partition to the transaction (version 1 only); answer
    /// with [`TransactionMachine::on_add_offsets_to_txn`].
    AddOffsetsToTxn {
        /// `transactional.id`.
        transactional_id: String,
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
        /// The consumer group.
        group_id: String,
    },
    /// Commit offsets as part of the transaction, to the group's coordinator; answer
    /// with [`TransactionMachine::on_txn_offset_commit`].
    TxnOffsetCommit {
        /// `transactional.id`.
        transactional_id: String,
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
        /// The consumer group, with generation and member for fencing (v3+).
        group: ConsumerGroupMetadata,
        /// The offsets not yet committed.
        offsets: Vec<TxnOffset>,
    },
    /// End the transaction; answer with [`TransactionMachine::on_end_txn`].
    EndTxn {
        /// `transactional.id`.
        transactional_id: String,
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
        /// Commit (true) or abort (false).
        committed: bool,
    },
}

impl TxnRequest {
    /// The API of this request.
    pub fn api(&self) -> TxnApi {
        match self {
            TxnRequest::FindCoordinator { .. } => TxnApi::FindCoordinator,
            TxnRequest::InitProducerId { .. } => TxnApi::InitProducerId,
            TxnRequest::AddPartitionsToTxn { .. } => TxnApi::AddPartitionsToTxn,
            TxnRequest::AddOffsetsToTxn { .. } => TxnApi::AddOffsetsToTxn,
            TxnRequest::TxnOffsetCommit { .. } => TxnApi::TxnOffsetCommit,
            TxnRequest::EndTxn { .. } => TxnApi::EndTxn,
        }
    }
}

/// A request and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingTxnRequest {
    /// Where.
    pub target: TxnTarget,
    /// What.
    pub request: TxnRequest,
}

/// What the machine tells the I/O layer and, through it, the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnEvent {
    /// The producer id or epoch changed: batches from now on carry these, and every
    /// partition's sequence restarts at 0. After InitProducerId, after an epoch bump,
    /// and (transaction version 2) after every EndTxn.
    ProducerIdChanged {
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        epoch: i16,
    },
    /// The operation completed. For [`TxnOperation::Commit`], the transaction is
    /// committed, also when a retried EndTxn was answered NONE after a lost reply.
    Completed(TxnOperation),
    /// The operation failed.
    Failed {
        /// Which operation.
        operation: TxnOperation,
        /// Why.
        error: TxnError,
    },
}

/// The configuration of one transactional producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transactional.id`.
    pub transactional_id: String,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay open
    /// before aborting it (Java's default: 60 s).
    pub transaction_timeout: Duration,
    /// `retry.backoff.ms`: wait before resending a request that got a retriable error.
    pub retry_backoff: Duration,
    /// The protocol of the first transaction; see [`TransactionVersion::choose`] and
    /// [`TransactionMachine::set_transaction_version`].
    pub version: TransactionVersion,
}

impl TxnConfig {
    /// Java's defaults (60 s timeout, 100 ms backoff) for `transactional_id`.
    pub fn new(transactional_id: impl Into<String>, version: TransactionVersion) -> Self {
        TxnConfig {
            transactional_id: transactional_id.into(),
            transaction_timeout: Duration::from_secs(60),
            retry_backoff: Duration::from_millis(100),
            version,
        }
    }
}

/// A SendOffsets operation in progress.
#[derive(Debug, Clone)]
struct PendingOffsets {
    group: ConsumerGroupMetadata,
    /// Offsets not yet committed by TxnOffsetCommit.
    offsets: Vec<TxnOffset>,
    /// AddOffsetsToTxn succeeded (or is not needed: version 2).
    added: bool,
}

/// The request in flight, with what is needed to handle its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InFlight {
    FindCoordinator { key_type: i8, key: String },
    InitProducerId,
    AddPartitions(Vec<(String, i32)>),
    AddOffsets,
    TxnOffsetCommit,
    EndTxn,
}

type Partition = (String, i32);

/// The state machine of one transactional producer (see the module docs).
#[derive(Debug)]
pub struct TransactionMachine {
    config: TxnConfig,
    state: TxnState,
    /// The version of the current transaction (or the next one, between them).
    version: TransactionVersion,
    /// A version to switch to at the next `begin_transaction`.
    next_version: Option<TransactionVersion>,
    producer_id: i64,
    epoch: i16,
    txn_coordinator: Option<CoordinatorNode>,
    group_coordinator: Option<(String, CoordinatorNode)>,
    in_flight: Option<InFlight>,
    not_before: Option<Instant>,
    /// Partitions the coordinator has (version 1) or that Produce adds (version 2), by
    /// topic, so that `may_send` looks them up without allocating (it runs per batch).
    partitions: BTreeMap<String, BTreeSet<i32>>,
    /// Version 1: partitions waiting for AddPartitionsToTxn.
    new_partitions: BTreeSet<Partition>,
    /// Version 1: partitions whose AddPartitionsToTxn got no reply. The coordinator may
    /// have added them, so they are added again even when aborting: an EndTxn for a
    /// transaction the coordinator does not have is INVALID_TXN_STATE (fatal), and one
    /// left out would leave the transaction open until its timeout. Java does the same
    /// (its abort sends the pending AddPartitionsToTxn before EndTxn).
    uncertain_partitions: BTreeSet<Partition>,
    /// Version 1: the group whose AddOffsetsToTxn got no reply, added again likewise.
    uncertain_offsets: Option<String>,
    offsets: Option<PendingOffsets>,
    /// Whether the coordinator may know of the transaction (a partition or offsets were
    /// added, or such a request's reply was lost). If not, ending it sends nothing.
    started: bool,
    epoch_bump_required: bool,
    /// An EndTxn of this transaction got no reply: its outcome may already be decided.
    end_txn_unanswered: bool,
    pending: Option<TxnOperation>,
    last_error: Option<TxnError>,
    events: VecDeque<TxnEvent>,
}

impl TransactionMachine {
    /// A machine in [`TxnState::Uninitialized`].
    pub fn new(config: TxnConfig) -> Self {
        TransactionMachine {
            version: config.version,
            config,
            state: TxnState::Uninitialized,
            next_version: None,
            producer_id: -1,
            epoch: -1,
            txn_coordinator: None,
            group_coordinator: None,
            in_flight: None,
            not_before: None,
            partitions: BTreeMap::new(),
            new_partitions: BTreeSet::new(),
            uncertain_partitions: BTreeSet::new(),
            uncertain_offsets: None,
            offsets: None,
            started: false,
            epoch_bump_required: false,
            end_txn_unanswered: false,
            pending: None,
            last_error: None,
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> TxnState {
        self.state
    }

    /// The protocol version of the current transaction (or of the next, between them).
    pub fn transaction_version(&self) -> TransactionVersion {
        self.version
    }

    /// The producer id and epoch, once InitProducerId succeeded.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        (self.producer_id >= 0).then_some((self.producer_id, self.epoch))
    }

    /// The error that put the machine in [`TxnState::AbortableError`] or
    /// [`TxnState::FatalError`].
    pub fn last_error(&self) -> Option<TxnError> {
        self.last_error
    }

    /// The operation waiting for its [`TxnEvent`], if any.
    pub fn pending_operation(&self) -> Option<TxnOperation> {
        self.pending
    }

    /// Switches the protocol version from the next transaction on, as the cluster's
    /// finalized `transaction.version` changes. The transaction in progress keeps its
    /// version.
    ///
    /// An upgrade from version 1 to 2 once the producer has an id waits for the end of
    /// a transaction and bumps the epoch there, with InitProducerId(id, epoch) before
    /// the commit or abort completes, as Java's `TransactionManager` does
    /// (`clientSideEpochBumpRequired`, KAFKA-18227): version 1 keeps one epoch for every
    /// transaction, so without the bump a late Produce of the last version 1 transaction
    /// would carry the first version 2 transaction's epoch and could be written into it.
    /// Set in `Ready`, such an upgrade therefore applies from the transaction after the
    /// next one; a downgrade (version 2 bumps the epoch at every EndTxn anyway), or any
    /// change before the first InitProducerId, applies at once.
    pub fn set_transaction_version(&mut self, version: TransactionVersion) {
        let idle = self.state == TxnState::Ready || self.state == TxnState::Uninitialized;
        if idle && !self.upgrade_needs_bump(version) {
            self.version = version;
            self.next_version = None;
        } else {
            self.next_version = Some(version);
        }
    }

    /// Whether switching to `version` is version 1 to 2 with a producer id whose epoch
    /// version 1 transactions have used (see [`Self::set_transaction_version`]).
    fn upgrade_needs_bump(&self, version: TransactionVersion) -> bool {
        self.version == TransactionVersion::V1
            && version == TransactionVersion::V2
            && self.producer_id >= 0
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TxnEvent> {
        self.events.pop_front()
    }

    fn refuse(&self, operation: TxnCallKind) -> TxnCallError {
        match (self.state, self.last_error) {
            (TxnState::AbortableError | TxnState::FatalError, Some(e)) => TxnCallError::Failed(e),
            _ => TxnCallError::WrongState {
                operation,
                state: self.state,
            },
        }
    }

    /// `initTransactions()`: get a producer id and epoch for the transactional id,
    /// fencing older instances (and aborting their open transaction). Completes with
    /// [`TxnEvent::Completed`]`(Init)`. Calling it again while it is pending resumes it.
    pub fn init_transactions(&mut self) -> Result<(), TxnCallError> {
        match self.state {
            TxnState::Uninitialized => {
                self.state = TxnState::Initializing;
                self.pending = Some(TxnOperation::Init);
                Ok(())
            }
            TxnState::Initializing if self.pending == Some(TxnOperation::Init) => Ok(()),
            _ => Err(self.refuse(TxnCallKind::Init)),
        }
    }

    /// `beginTransaction()`: opens a transaction locally; nothing is sent until its
    /// first record or offsets.
    pub fn begin_transaction(&mut self) -> Result<(), TxnCallError> {
        if self.state != TxnState::Ready || self.pending.is_some() {
            return Err(self.refuse(TxnCallKind::Begin));
        }
        // An upgrade that needs an epoch bump stays pending until this transaction ends.
        if let Some(v) = self.next_version.filter(|&v| !self.upgrade_needs_bump(v)) {
            self.version = v;
            self.next_version = None;
        }
        self.state = TxnState::InTransaction;
        Ok(())
    }

    /// Called by the engine before it appends the transaction's first record for a
    /// partition (Java's `maybeAddPartition`). Version 1 queues an AddPartitionsToTxn;
    /// the partition's batches wait until [`may_send`](Self::may_send) says yes.
    /// Version 2 adds it at once: Produce v12 registers it (KIP-890).
    pub fn add_partition(&mut self, topic: &str, partition: i32) -> Result<(), TxnCallError> {
        if self.state != TxnState::InTransaction {
            return Err(self.refuse(TxnCallKind::Send));
        }
        if self.may_send(topic, partition) {
            return Ok(());
        }
        match self.version {
            TransactionVersion::V1 => {
                let key = (topic.to_owned(), partition);
                let in_flight = matches!(&self.in_flight,
                    Some(InFlight::AddPartitions(ps)) if ps.contains(&key));
                if !in_flight {
                    self.new_partitions.insert(key);
                }
            }
            TransactionVersion::V2 => {
                // Not started yet: only a batch that goes out can add the partition at
                // the coordinator (`on_batch_sent`).
                self.add_to_transaction(topic.to_owned(), partition);
            }
        }
        Ok(())
    }

    /// The engine is sending a batch of the transaction. With version 2 the Produce adds
    /// the partition at the coordinator (KIP-890), so from now on ending the transaction
    /// needs an EndTxn; before it, an abort (or an empty commit) ends locally. That
    /// matters: a version 2 coordinator still writing the previous transaction's markers
    /// answers a new transaction's EndTxn with PRODUCER_FENCED (`isValidEpoch` in
    /// `TransactionCoordinator.endTransaction` accepts only a retry in PrepareCommit and
    /// PrepareAbort), so an abort right after a commit must not send one needlessly.
    /// Version 1 learns it from AddPartitionsToTxn instead; the call is harmless there.
    pub fn on_batch_sent(&mut self) {
        if self.version == TransactionVersion::V2
            && matches!(
                self.state,
                TxnState::InTransaction
                    | TxnState::Committing
                    | TxnState::AbortableError
                    | TxnState::Aborting
            )
        {
            self.started = true;
        }
    }

    /// Whether batches of the transaction may be sent to the partition: it is part of
    /// the transaction at the coordinator (version 1) or was added (version 2).
    pub fn may_send(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .get(topic)
            .is_some_and(|ps| ps.contains(&partition))
    }

    fn add_to_transaction(&mut self, topic: String, partition: i32) {
        self.partitions.entry(topic).or_default().insert(partition);
    }

    /// Whether no partition waits for AddPartitionsToTxn.
    pub fn partitions_settled(&self) -> bool {
        self.new_partitions.is_empty()
            && !matches!(self.in_flight, Some(InFlight::AddPartitions(_)))
    }

    /// `sendOffsetsToTransaction(offsets, groupMetadata)`: commit the consumer's offsets
    /// with the transaction. Version 1 sends AddOffsetsToTxn, then TxnOffsetCommit to
    /// the group's coordinator; version 2 only TxnOffsetCommit (v5 adds the offsets
    /// partition itself). Completes with [`TxnEvent::Completed`]`(SendOffsets)`.
    pub fn send_offsets_to_transaction(
        &mut self,
        group: ConsumerGroupMetadata,
        offsets: Vec<TxnOffset>,
    ) -> Result<(), TxnCallError> {
        if self.state != TxnState::InTransaction || self.pending.is_some() {
            return Err(self.refuse(TxnCallKind::SendOffsets));
        }
        let added = self.version == TransactionVersion::V2;
        self.offsets = Some(PendingOffsets {
            group,
            offsets,
            added,
        });
        self.pending = Some(TxnOperation::SendOffsets);
        Ok(())
    }

    /// `commitTransaction()`: registers the last partitions, waits for the transaction's
    /// batches (the engine says so through `poll_request`'s `batches_done`), then sends
    /// EndTxn(commit) until its outcome is known. Completes with
    /// [`TxnEvent::Completed`]`(Commit)`. Calling it again while it is pending (after a
    /// timeout) resumes it; abort is refused until it ends, as in Java.
    pub fn commit_transaction(&mut self) -> Result<(), TxnCallError> {
        match self.state {
            TxnState::InTransaction if self.pending.is_none() => {
                self.state = TxnState::Committing;
                self.pending = Some(TxnOperation::Commit);
                Ok(())
            }
            TxnState::Committing => Ok(()),
            // Committed; the epoch bump before a version upgrade is under way.
            TxnState::Initializing if self.pending == Some(TxnOperation::Commit) => Ok(()),
            _ => Err(self.refuse(TxnCallKind::Commit)),
        }
    }

    /// `abortTransaction()`: waits for the transaction's in-flight batches (the engine
    /// fails the ones not sent yet with TransactionAborted), then sends EndTxn(abort);
    /// with transaction version 1 and an abortable error that needs it, an epoch bump
    /// follows. Completes with [`TxnEvent::Completed`]`(Abort)`.
    pub fn abort_transaction(&mut self) -> Result<(), TxnCallError> {
        match self.state {
            // A SendOffsets still pending refuses the abort (call it again to resume it,
            // as Java requires); in AbortableError nothing is pending any more.
            TxnState::InTransaction | TxnState::AbortableError if self.pending.is_none() => {
                self.state = TxnState::Aborting;
                self.pending = Some(TxnOperation::Abort);
                self.last_error = None;
                self.drop_unsent_registrations();
                Ok(())
            }
            TxnState::Aborting => Ok(()),
            TxnState::Initializing if self.pending == Some(TxnOperation::Abort) => Ok(()),
            _ => Err(self.refuse(TxnCallKind::Abort)),
        }
    }

    /// A batch of the transaction failed for good with `code` (`None`: it expired or its
    /// outcome is unknown after retries). Fenced and unauthorized producers are fatal;
    /// anything else makes the transaction abortable, with an epoch bump when the
    /// partition's sequence can no longer be trusted (KIP-360).
    pub fn on_produce_failed(&mut self, code: Option<ErrorCode>) {
        let disposition = match code {
            Some(code) => classify(TxnApi::Produce, code),
            None => TxnDisposition::Abortable {
                kind: TxnErrorKind::ProduceFailed,
                bump_epoch: true,
            },
        };
        self.apply_error(disposition, code, TxnApi::Produce);
    }

    /// A record or batch of the transaction failed for good, as the engine saw it:
    /// `code` is the broker's error if one decided it (`None`: the record failed before
    /// it reached a broker, or the batch expired or its outcome stayed unknown), and
    /// `sequence_gap` says whether the batch held a sequence the broker will never
    /// acknowledge. The classification is [`on_produce_failed`](Self::on_produce_failed)'s,
    /// except that no code means no epoch bump unless there is a gap, and a gap always
    /// asks for one: the partition's sequence can only restart under a new epoch
    /// (KIP-360), which with version 1 the abort's InitProducerId brings and with version 2
    /// the EndTxn (KIP-890). Java's `TransactionManager.handleFailedBatch` makes the same
    /// distinction.
    pub fn on_batch_failed(&mut self, code: Option<ErrorCode>, sequence_gap: bool) {
        let mut disposition = match code {
            Some(code) => classify(TxnApi::Produce, code),
            None => TxnDisposition::Abortable {
                kind: TxnErrorKind::ProduceFailed,
                bump_epoch: false,
            },
        };
        if let TxnDisposition::Abortable { bump_epoch, .. } = &mut disposition {
            *bump_epoch |= sequence_gap;
        }
        self.apply_error(disposition, code, TxnApi::Produce);
    }

    /// When the next request may go, if the machine waits out a retry backoff: the
    /// I/O layer polls again then.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.not_before.filter(|_| self.in_flight.is_none())
    }

    /// The next request to send, if one is due: none while one is in flight or the
    /// backoff runs. `batches_done` is the engine's word that every batch of the
    /// transaction has been answered (or, when aborting, failed without being sent):
    /// EndTxn waits for it.
    pub fn poll_request(&mut self, now: Instant, batches_done: bool) -> Option<OutgoingTxnRequest> {
        if self.in_flight.is_some() || self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        self.not_before = None;
        loop {
            let work = self.next_work(batches_done)?;
            if work == Work::EndTxnLocally {
                // Nothing reached the coordinator: there is nothing to end (Java skips
                // the EndTxn when no partition or offsets were added).
                self.complete_transaction();
                continue;
            }
            return Some(self.build(work));
        }
    }

    fn next_work(&self, batches_done: bool) -> Option<Work> {
        match self.state {
            TxnState::Initializing => Some(Work::InitProducerId),
            TxnState::InTransaction | TxnState::Committing => {
                if !self.new_partitions.is_empty() {
                    return Some(Work::AddPartitions);
                }
                if let Some(o) = &self.offsets {
                    return Some(if o.added {
                        Work::TxnOffsetCommit
                    } else {
                        Work::AddOffsets
                    });
                }
                (self.state == TxnState::Committing && batches_done).then_some(self.end_work())
            }
            TxnState::Aborting => {
                if !self.new_partitions.is_empty() {
                    return Some(Work::AddPartitions);
                }
                if self.uncertain_offsets.is_some() {
                    return Some(Work::AddOffsets);
                }
                batches_done.then_some(self.end_work())
            }
            _ => None,
        }
    }

    fn end_work(&self) -> Work {
        if self.started || self.end_txn_unanswered {
            Work::EndTxn
        } else {
            Work::EndTxnLocally
        }
    }

    fn build(&mut self, work: Work) -> OutgoingTxnRequest {
        let id = self.config.transactional_id.clone();
        let (pid, epoch) = (self.producer_id, self.epoch);
        if work == Work::TxnOffsetCommit {
            let group_id = self
                .offsets
                .as_ref()
                .map(|o| o.group.group_id.clone())
                .unwrap_or_default();
            let known = self
                .group_coordinator
                .as_ref()
                .filter(|(g, _)| *g == group_id)
                .map(|(_, node)| node.clone());
            let Some(node) = known else {
                return self.find_coordinator(KEY_TYPE_GROUP, group_id);
            };
            let (group, offsets) = self
                .offsets
                .as_ref()
                .map(|o| (o.group.clone(), o.offsets.clone()))
                .unwrap_or_else(|| (ConsumerGroupMetadata::new(group_id), Vec::new()));
            self.in_flight = Some(InFlight::TxnOffsetCommit);
            return OutgoingTxnRequest {
                target: TxnTarget::Coordinator(node),
                request: TxnRequest::TxnOffsetCommit {
                    transactional_id: id,
                    producer_id: pid,
                    producer_epoch: epoch,
                    group,
                    offsets,
                },
            };
        }
        let Some(node) = self.txn_coordinator.clone() else {
            return self.find_coordinator(KEY_TYPE_TRANSACTION, id);
        };
        let (in_flight, request) = match work {
            Work::InitProducerId => (
                InFlight::InitProducerId,
                TxnRequest::InitProducerId {
                    transactional_id: id,
                    transaction_timeout_ms: i32::try_from(
                        self.config.transaction_timeout.as_millis(),
                    )
                    .unwrap_or(i32::MAX),
                    // -1 asks for a new id; the current one asks for an epoch bump.
                    producer_id: pid,
                    producer_epoch: epoch,
                },
            ),
            Work::AddPartitions => {
                let added: Vec<Partition> = std::mem::take(&mut self.new_partitions)
                    .into_iter()
                    .collect();
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in &added {
                    topics.entry(t.clone()).or_default().push(*p);
                }
                (
                    InFlight::AddPartitions(added),
                    TxnRequest::AddPartitionsToTxn {
                        transactional_id: id,
                        producer_id: pid,
                        producer_epoch: epoch,
                        topics,
                    },
                )
            }
            Work::AddOffsets => (
                InFlight::AddOffsets,
                TxnRequest::AddOffsetsToTxn {
                    transactional_id: id,
                    producer_id: pid,
                    producer_epoch: epoch,
                    group_id: self
                        .offsets
                        .as_ref()
                        .map(|o| o.group.group_id.clone())
                        .or_else(|| self.uncertain_offsets.clone())
                        .unwrap_or_default(),
                },
            ),
            _ => (
                InFlight::EndTxn,
                TxnRequest::EndTxn {
                    transactional_id: id,
                    producer_id: pid,
                    producer_epoch: epoch,
                    committed: self.state == TxnState::Committing,
                },
            ),
        };
        self.in_flight = Some(in_flight);
        OutgoingTxnRequest {
            target: TxnTarget::Coordinator(node),
            request,
        }
    }

    fn find_coordinator(&mut self, key_type: i8, key: String) -> OutgoingTxnRequest {
        self.in_flight = Some(InFlight::FindCoordinator {
            key_type,
            key: key.clone(),
        });
        OutgoingTxnRequest {
            target: TxnTarget::AnyBroker,
            request: TxnRequest::FindCoordinator { key_type, key },
        }
    }

    fn take_in_flight(&mut self, api: TxnApi) -> Option<InFlight> {
        let matches = match &self.in_flight {
            Some(InFlight::FindCoordinator { .. }) => api == TxnApi::FindCoordinator,
            Some(InFlight::InitProducerId) => api == TxnApi::InitProducerId,
            Some(InFlight::AddPartitions(_)) => api == TxnApi::AddPartitionsToTxn,
            Some(InFlight::AddOffsets) => api == TxnApi::AddOffsetsToTxn,
            Some(InFlight::TxnOffsetCommit) => api == TxnApi::TxnOffsetCommit,
            Some(InFlight::EndTxn) => api == TxnApi::EndTxn,
            None => false,
        };
        if matches {
            self.in_flight.take()
        } else {
            None
        }
    }

    fn retry_later(&mut self, now: Instant, backoff: Duration) {
        self.not_before = now.checked_add(backoff);
    }

    /// Applies an error disposition (not `Done`) of a reply to `api`.
    fn apply_error(&mut self, d: TxnDisposition, code: Option<ErrorCode>, api: TxnApi) {
        match d {
            TxnDisposition::Done | TxnDisposition::Retry { .. } => {}
            TxnDisposition::Abortable { kind, bump_epoch } => {
                if bump_epoch {
                    self.epoch_bump_required = true;
                }
                self.abortable(TxnError::new(kind, code, Some(api)));
            }
            TxnDisposition::Fatal(kind) => self.fatal(TxnError::new(kind, code, Some(api))),
        }
    }

    fn abortable(&mut self, mut error: TxnError) {
        if self.in_flight == Some(InFlight::EndTxn) {
            // The EndTxn was sent once every batch had been answered; its reply, not a
            // late report, decides the outcome.
            return;
        }
        if self.end_txn_unanswered && self.state == TxnState::Committing {
            error.commit_outcome_unknown = true;
        }
        match self.state {
            TxnState::InTransaction | TxnState::Committing | TxnState::AbortableError => {
                self.state = TxnState::AbortableError;
                self.last_error = Some(error);
                self.drop_unsent_registrations();
                if let Some(op) = self.pending.take() {
                    self.events.push_back(TxnEvent::Failed {
                        operation: op,
                        error,
                    });
                }
            }
            // Already aborting: the abort repairs it (Java skips the transition too).
            TxnState::Aborting => {}
            // Getting a producer id cannot be aborted: nothing to repair.
            TxnState::Initializing => self.fatal(error),
            TxnState::Uninitialized | TxnState::Ready | TxnState::FatalError => {}
        }
    }

    fn fatal(&mut self, mut error: TxnError) {
        if self.state == TxnState::FatalError {
            return;
        }
        if self.end_txn_unanswered && self.state == TxnState::Committing {
            error.commit_outcome_unknown = true;
        }
        self.state = TxnState::FatalError;
        self.last_error = Some(error);
        self.in_flight = None;
        if let Some(op) = self.pending.take() {
            self.events.push_back(TxnEvent::Failed {
                operation: op,
                error,
            });
        }
    }

    /// Handles a retriable disposition: back off, and forget the coordinator if it
    /// moved (the group's one for TxnOffsetCommit, else the transaction's).
    fn retry(&mut self, refind: bool, api: TxnApi, now: Instant, backoff: Duration) {
        if refind {
            if api == TxnApi::TxnOffsetCommit {
                self.group_coordinator = None;
            } else {
                self.txn_coordinator = None;
            }
        }
        self.retry_later(now, backoff);
    }

    /// The FindCoordinator reply (decoded at `version`) for the request in flight.
    pub fn on_find_coordinator(
        &mut self,
        version: i16,
        response: &FindCoordinatorResponse,
        now: Instant,
    ) {
        let Some(InFlight::FindCoordinator { key_type, key }) =
            self.take_in_flight(TxnApi::FindCoordinator)
        else {
            return;
        };
        let Some(found) = response.for_key(version, &key) else {
            // Java fails when the reply does not hold exactly the key it asked for.
            self.fatal(TxnError::new(
                TxnErrorKind::Unexpected,
                None,
                Some(TxnApi::FindCoordinator),
            ));
            return;
        };
        let code = ErrorCode::from_i16(found.error_code);
        match classify(TxnApi::FindCoordinator, code) {
            TxnDisposition::Done => {
                let node = CoordinatorNode {
                    node_id: found.node_id,
                    host: found.host,
                    port: found.port,
                };
                if key_type == KEY_TYPE_GROUP {
                    self.group_coordinator = Some((key, node));
                } else {
                    self.txn_coordinator = Some(node);
                }
            }
            TxnDisposition::Retry { .. } => self.retry_later(now, self.config.retry_backoff),
            d => self.apply_error(d, Some(code), TxnApi::FindCoordinator),
        }
    }

    /// The InitProducerId reply for the request in flight.
    pub fn on_init_producer_id(&mut self, response: &InitProducerIdResponse, now: Instant) {
        if self.take_in_flight(TxnApi::InitProducerId).is_none() {
            return;
        }
        let code = ErrorCode::from_i16(response.error_code);
        match classify(TxnApi::InitProducerId, code) {
            TxnDisposition::Done => {
                self.producer_id = response.producer_id;
                self.epoch = response.producer_epoch;
                self.epoch_bump_required = false;
                self.events.push_back(TxnEvent::ProducerIdChanged {
                    producer_id: self.producer_id,
                    epoch: self.epoch,
                });
                self.state = TxnState::Ready;
                self.apply_next_version();
                if let Some(op) = self.pending.take() {
                    self.events.push_back(TxnEvent::Completed(op));
                }
            }
            TxnDisposition::Retry { refind_coordinator } => self.retry(
                refind_coordinator,
                TxnApi::InitProducerId,
                now,
                self.config.retry_backoff,
            ),
            d => self.apply_error(d, Some(code), TxnApi::InitProducerId),
        }
    }

    /// The AddPartitionsToTxn reply for the request in flight. Per-partition errors are
    /// combined: a fatal one wins, then an abortable one, then a retriable one (the
    /// partitions are sent again).
    pub fn on_add_partitions_to_txn(
        &mut self,
        response: &AddPartitionsToTxnResponse,
        now: Instant,
    ) {
        let Some(InFlight::AddPartitions(sent)) = self.take_in_flight(TxnApi::AddPartitionsToTxn)
        else {
            return;
        };
        let mut worst = TxnDisposition::Done;
        let mut worst_code = None;
        let mut answered = BTreeSet::new();
        for (topic, partition, code) in response.partition_errors() {
            let code = ErrorCode::from_i16(code);
            answered.insert((topic.to_owned(), partition));
            let d = classify(TxnApi::AddPartitionsToTxn, code);
            if severity(d) > severity(worst) {
                worst = d;
                worst_code = Some(code);
            }
        }
        if sent.iter().any(|p| !answered.contains(p)) && worst == TxnDisposition::Done {
            // A partition asked for and not answered: ask again (adding is idempotent).
            worst = TxnDisposition::Retry {
                refind_coordinator: false,
            };
        }
        match worst {
            TxnDisposition::Done => {
                for p in &sent {
                    self.uncertain_partitions.remove(p);
                }
                for (topic, partition) in sent {
                    self.add_to_transaction(topic, partition);
                }
                self.started = true;
            }
            TxnDisposition::Retry { refind_coordinator } => {
                let first = self.partitions.is_empty();
                let backoff = if first && worst_code == Some(ErrorCode::CONCURRENT_TRANSACTIONS) {
                    FIRST_ADD_PARTITIONS_RETRY_BACKOFF.min(self.config.retry_backoff)
                } else {
                    self.config.retry_backoff
                };
                if matches!(
                    self.state,
                    TxnState::InTransaction | TxnState::Committing | TxnState::Aborting
                ) {
                    self.new_partitions.extend(sent);
                }
                self.retry(refind_coordinator, TxnApi::AddPartitionsToTxn, now, backoff);
            }
            d => self.apply_error(d, worst_code, TxnApi::AddPartitionsToTxn),
        }
    }

    /// The AddOffsetsToTxn reply for the request in flight.
    pub fn on_add_offsets_to_txn(&mut self, response: &AddOffsetsToTxnResponse, now: Instant) {
        if self.take_in_flight(TxnApi::AddOffsetsToTxn).is_none() {
            return;
        }
        let code = ErrorCode::from_i16(response.error_code);
        match classify(TxnApi::AddOffsetsToTxn, code) {
            TxnDisposition::Done => {
                self.started = true;
                self.uncertain_offsets = None;
                if let Some(o) = &mut self.offsets {
                    o.added = true;
                }
            }
            TxnDisposition::Retry { refind_coordinator } => self.retry(
                refind_coordinator,
                TxnApi::AddOffsetsToTxn,
                now,
                self.config.retry_backoff,
            ),
            d => {
                // A definite refusal: the group's partition is not in the transaction.
                self.uncertain_offsets = None;
                self.apply_error(d, Some(code), TxnApi::AddOffsetsToTxn);
            }
        }
    }

    /// The TxnOffsetCommit reply for the request in flight. Committed partitions are
    /// done; partitions with a retriable error are sent again.
    pub fn on_txn_offset_commit(&mut self, response: &TxnOffsetCommitResponse, now: Instant) {
        if self.take_in_flight(TxnApi::TxnOffsetCommit).is_none() {
            return;
        }
        let mut worst = TxnDisposition::Done;
        let mut worst_code = None;
        let mut committed = BTreeSet::new();
        for (topic, partition, code) in response.partition_errors() {
            let code = ErrorCode::from_i16(code);
            let d = classify(TxnApi::TxnOffsetCommit, code);
            if d == TxnDisposition::Done {
                committed.insert((topic.to_owned(), partition));
            }
            if severity(d) > severity(worst) {
                worst = d;
                worst_code = Some(code);
            }
        }
        if !committed.is_empty() && self.version == TransactionVersion::V2 {
            // TxnOffsetCommit v5 added the offsets partition (KIP-890). Not before: one
            // refused with CONCURRENT_TRANSACTIONS (the previous transaction still
            // completing) added nothing, and an EndTxn sent then would be fenced.
            self.started = true;
        }
        if severity(worst) >= 2 {
            self.apply_error(worst, worst_code, TxnApi::TxnOffsetCommit);
            return;
        }
        let Some(o) = &mut self.offsets else {
            return;
        };
        o.offsets
            .retain(|x| !committed.contains(&(x.topic.clone(), x.partition)));
        if o.offsets.is_empty() {
            self.offsets = None;
            if self.pending == Some(TxnOperation::SendOffsets) {
                self.pending = None;
                self.events
                    .push_back(TxnEvent::Completed(TxnOperation::SendOffsets));
            }
        } else {
            // Unanswered partitions count as retriable: send what is left again.
            let refind = matches!(
                worst,
                TxnDisposition::Retry {
                    refind_coordinator: true
                }
            );
            self.retry(
                refind,
                TxnApi::TxnOffsetCommit,
                now,
                self.config.retry_backoff,
            );
        }
    }

    /// The EndTxn reply for the request in flight.
    pub fn on_end_txn(&mut self, response: &EndTxnResponse, now: Instant) {
        if self.take_in_flight(TxnApi::EndTxn).is_none() {
            return;
        }
        let code = ErrorCode::from_i16(response.error_code);
        match classify(TxnApi::EndTxn, code) {
            TxnDisposition::Done => {
                // EndTxn v5 (KIP-890): the id and epoch of the next transaction; -1 from
                // older versions, where the epoch stays.
                if response.producer_id >= 0 && self.version == TransactionVersion::V2 {
                    self.producer_id = response.producer_id;
                    self.epoch = response.producer_epoch;
                    self.events.push_back(TxnEvent::ProducerIdChanged {
                        producer_id: self.producer_id,
                        epoch: self.epoch,
                    });
                    // The coordinator's bump replaces the one an abortable error asked for.
                    self.epoch_bump_required = false;
                }
                self.complete_transaction();
            }
            TxnDisposition::Retry { refind_coordinator } => self.retry(
                refind_coordinator,
                TxnApi::EndTxn,
                now,
                self.config.retry_backoff,
            ),
            d => self.apply_error(d, Some(code), TxnApi::EndTxn),
        }
    }

    /// The request in flight got no reply: the connection broke, it timed out, or it
    /// could not be sent. It is sent again after the backoff, to a coordinator found
    /// anew. An EndTxn is marked unanswered: its outcome may be decided already (see the
    /// module docs). A lost AddPartitionsToTxn or AddOffsetsToTxn may have reached the
    /// coordinator, so it is sent again even if the transaction is aborted meanwhile,
    /// before the EndTxn.
    pub fn on_request_failed(&mut self, now: Instant) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        let api = match in_flight {
            InFlight::FindCoordinator { .. } => TxnApi::FindCoordinator,
            InFlight::InitProducerId => TxnApi::InitProducerId,
            InFlight::AddPartitions(sent) => {
                if self.state != TxnState::FatalError {
                    self.uncertain_partitions.extend(sent.iter().cloned());
                    self.new_partitions.extend(sent);
                }
                TxnApi::AddPartitionsToTxn
            }
            InFlight::AddOffsets => {
                let group = self.offsets.as_ref().map(|o| o.group.group_id.clone());
                self.uncertain_offsets = group.or(self.uncertain_offsets.take());
                TxnApi::AddOffsetsToTxn
            }
            InFlight::TxnOffsetCommit => {
                if self.version == TransactionVersion::V2 {
                    // It may have added the offsets partition (KIP-890).
                    self.started = true;
                }
                TxnApi::TxnOffsetCommit
            }
            InFlight::EndTxn => {
                self.end_txn_unanswered = true;
                TxnApi::EndTxn
            }
        };
        let refind = api != TxnApi::FindCoordinator;
        self.retry(refind, api, now, self.config.retry_backoff);
    }

    fn apply_next_version(&mut self) {
        if let Some(v) = self.next_version.take() {
            self.version = v;
        }
    }

    /// Forgets the partitions and offsets not registered yet, except those whose
    /// registration may have reached the coordinator (see `uncertain_partitions`).
    fn drop_unsent_registrations(&mut self) {
        let uncertain = &self.uncertain_partitions;
        self.new_partitions.retain(|p| uncertain.contains(p));
        self.offsets = None;
    }

    /// The transaction ended (EndTxn answered NONE, or nothing had been sent).
    fn complete_transaction(&mut self) {
        self.partitions.clear();
        self.new_partitions.clear();
        self.uncertain_partitions.clear();
        self.uncertain_offsets = None;
        self.offsets = None;
        self.started = false;
        self.end_txn_unanswered = false;
        let kip_360 = self.state == TxnState::Aborting
            && self.epoch_bump_required
            && self.version == TransactionVersion::V1;
        let upgrade = self
            .next_version
            .is_some_and(|v| self.upgrade_needs_bump(v));
        if kip_360 || upgrade {
            // KIP-360: bump the epoch with InitProducerId(current id, epoch) so the
            // partitions' sequences can restart at 0; the abort completes after it. The
            // same bump precedes the first version 2 transaction after version 1 ones
            // (`set_transaction_version`), then the commit or abort completes. One bump
            // serves both.
            self.state = TxnState::Initializing;
            return;
        }
        self.state = TxnState::Ready;
        self.apply_next_version();
        if let Some(op) = self.pending.take() {
            self.events.push_back(TxnEvent::Completed(op));
        }
    }
}

/// The work `poll_request` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    InitProducerId,
    AddPartitions,
    AddOffsets,
    TxnOffsetCommit,
    EndTxn,
    EndTxnLocally,
}

/// Order of dispositions when a reply holds several: done < retry < abortable < fatal.
fn severity(d: TxnDisposition) -> u8 {
    match d {
        TxnDisposition::Done => 0,
        TxnDisposition::Retry { .. } => 1,
        TxnDisposition::Abortable { .. } => 2,
        TxnDisposition::Fatal(_) => 3,
    }
}

#[cfg(test)]
mod tests;
