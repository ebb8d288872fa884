//! Transactions in the driver (KIP-98, KIP-447): the application's calls, the
//! coordinator requests the engine's transaction machine asks for, and the errors the
//! application sees.
//!
//! The machine (`courier_core::producer::txn`) decides what to send and what a reply
//! means; this module sends its requests over the connection pool, one at a time, feeds
//! the replies back, and completes the application's pending call when the machine says
//! the operation is done or failed. `max.block.ms` bounds how long a call waits, as in
//! Java; the operation stays pending in the machine, and calling it again resumes it.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use courier_core::producer::txn::{
    ConsumerGroupMetadata, OutgoingTxnRequest, TransactionVersion, TxnCallError, TxnError,
    TxnErrorClass, TxnErrorKind, TxnEvent, TxnOffset, TxnOperation, TxnRequest, TxnState,
    TxnTarget,
};
use courier_core::wire;
use kafka_protocol::messages::ApiKey;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ProducerError;
use crate::net::{self, ConnectionPool, NetError};

use super::driver::{Driver, Event};
use super::sink::any_connection;

/// Why a transaction call failed, and what the application should do about it:
/// [`is_retriable`](Self::is_retriable) (call the same operation again),
/// [`is_abortable`](Self::is_abortable) (abort the transaction, then go on with a new
/// one) or [`is_fatal`](Self::is_fatal) (drop the producer). [`java_name`](Self::java_name)
/// gives the Java client's exception for the same case.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The call did not complete within `max.block.ms` (Java's `TimeoutException`). The
    /// operation is still under way in the producer: call it again to wait for it
    /// (retriable). While a commit is pending, abort is refused, as in Java.
    #[error(
        "{operation} did not complete within max.block.ms ({} ms) and is still under way: \
         call {operation} again to wait for it (raise max.block.ms to wait longer per call)",
        max_block.as_millis()
    )]
    TimedOut {
        /// The call, e.g. `commit_transaction`.
        operation: &'static str,
        /// `max.block.ms`.
        max_block: Duration,
    },
    /// The transaction coordinator, a group coordinator or a partition leader refused
    /// the transaction or the producer; [`TxnError::class`] says which of abortable and
    /// fatal it is.
    #[error("{operation} failed for transactional.id={transactional_id}: {}", describe(.error, .transactional_id))]
    Failed {
        /// The call.
        operation: &'static str,
        /// `transactional.id`.
        transactional_id: String,
        /// What went wrong, as the transaction machine classified it.
        error: TxnError,
    },
    /// The call is not valid now (Java's `IllegalStateException`): e.g. a commit without
    /// a begin, a second begin, or an abort while a commit is pending. A bug in the
    /// calling code.
    #[error(
        "{operation} is not allowed while the transaction is {state:?}: the transactional \
         calls go init_transactions once, then begin_transaction, records and \
         send_offsets_to_transaction, then commit_transaction or abort_transaction \
         (a commit that timed out must be called again, not aborted)"
    )]
    IllegalState {
        /// The call.
        operation: &'static str,
        /// The transaction's state when it was made.
        state: TxnState,
    },
    /// A transactional call on a producer without `transactional.id`.
    #[error(
        "{operation} needs a transactional producer: set transactional.id (for example \
         ProducerConfig::builder().transactional_id(\"my-app-1\"))"
    )]
    NotTransactional {
        /// The call.
        operation: &'static str,
    },
    /// The producer has stopped (closed, or a fatal error such as a refused TLS session):
    /// it can do no more transactions.
    #[error("{0}")]
    Producer(ProducerError),
}

fn describe(error: &TxnError, id: &str) -> String {
    use TxnErrorKind as K;
    let what = match error.kind {
        K::ProducerFenced => format!(
            "another producer with transactional.id={id} has called init_transactions \
             since this one did, and fenced it (a newer instance took over)"
        ),
        K::TransactionalIdAuthorizationFailed => format!(
            "the principal may not use transactional.id={id} (it needs WRITE and DESCRIBE \
             on the TransactionalId resource)"
        ),
        K::ClusterAuthorizationFailed => {
            "the principal may not write idempotently (IDEMPOTENT_WRITE on the cluster)".into()
        }
        K::InvalidTxnState => "the coordinator's state of the transaction does not allow this \
             request (for example, it aborted the transaction after transaction.timeout.ms)"
            .into(),
        K::InvalidProducerIdMapping => {
            "the coordinator no longer maps the producer id to this transactional.id (it \
             expired)"
                .into()
        }
        K::InvalidTransactionTimeout => "transaction.timeout.ms exceeds the broker's \
             transaction.max.timeout.ms: lower transaction.timeout.ms"
            .into(),
        K::TransactionAbortable => "the broker asked for the transaction to be aborted".into(),
        K::TopicAuthorizationFailed => {
            "the principal may not write to a topic of the transaction".into()
        }
        K::GroupAuthorizationFailed => {
            "the principal may not commit offsets for the consumer group".into()
        }
        K::CommitFailed => "the consumer group's generation or member id is stale: the \
             consumer lost its partitions in a rebalance (KIP-447)"
            .into(),
        K::FencedInstanceId => {
            "the consumer's group.instance.id was taken by another member".into()
        }
        K::UnknownProducerId => "a broker lost the producer's state".into(),
        K::ProduceFailed => {
            "a record of the transaction failed (its delivery report says why)".into()
        }
        K::AddPartitionsFailed => "a partition could not be added to the transaction".into(),
        K::TimedOut => "timed out".into(),
        _ => "the coordinator answered something this request does not allow".into(),
    };
    let mut text = what;
    if let (Some(code), Some(api)) = (error.code, error.api) {
        text.push_str(&format!(" ({code} in {api:?})"));
    }
    text.push_str(match error.class() {
        TxnErrorClass::Fatal => {
            "; the producer can make no more transactions: close it, and create a new one \
             if this instance should go on"
        }
        TxnErrorClass::Abortable => {
            "; the transaction cannot commit: call abort_transaction, then begin a new one \
             (for exactly-once processing, rewind the consumer to its committed offsets)"
        }
        TxnErrorClass::Retriable => "; call the same operation again",
    });
    if error.commit_outcome_unknown {
        text.push_str(
            "; an earlier EndTxn(commit) got no reply, so the transaction may have \
             committed: read it back with a read_committed consumer before sending its \
             records again",
        );
    }
    text
}

impl TransactionError {
    /// Call the same operation again: it resumes where it was.
    pub fn is_retriable(&self) -> bool {
        match self {
            TransactionError::TimedOut { .. } => true,
            TransactionError::Failed { error, .. } => error.class() == TxnErrorClass::Retriable,
            _ => false,
        }
    }

    /// Abort the transaction (`abort_transaction`), then begin a new one.
    pub fn is_abortable(&self) -> bool {
        matches!(self, TransactionError::Failed { error, .. }
            if error.class() == TxnErrorClass::Abortable)
    }

    /// Drop the producer: it can make no more transactions (fenced by a newer instance,
    /// not authorized, stopped).
    pub fn is_fatal(&self) -> bool {
        match self {
            TransactionError::Failed { error, .. } => error.class() == TxnErrorClass::Fatal,
            TransactionError::Producer(_) => true,
            _ => false,
        }
    }

    /// The machine's classification, for errors from the cluster.
    pub fn kind(&self) -> Option<TxnErrorKind> {
        match self {
            TransactionError::Failed { error, .. } => Some(error.kind),
            TransactionError::TimedOut { .. } => Some(TxnErrorKind::TimedOut),
            _ => None,
        }
    }

    /// An EndTxn(commit) got no reply before this error: the transaction may have
    /// committed, so its records must not be taken for lost.
    pub fn commit_outcome_unknown(&self) -> bool {
        matches!(self, TransactionError::Failed { error, .. } if error.commit_outcome_unknown)
    }

    /// The Java client's exception for the same case, e.g. `ProducerFencedException`.
    pub fn java_name(&self) -> &'static str {
        use TxnErrorKind as K;
        match self {
            TransactionError::TimedOut { .. } => "TimeoutException",
            TransactionError::IllegalState { .. } | TransactionError::NotTransactional { .. } => {
                "IllegalStateException"
            }
            TransactionError::Producer(_) => "KafkaException",
            TransactionError::Failed { error, .. } => match error.kind {
                K::ProducerFenced => "ProducerFencedException",
                K::TransactionalIdAuthorizationFailed => "TransactionalIdAuthorizationException",
                K::ClusterAuthorizationFailed => "ClusterAuthorizationException",
                K::InvalidTxnState => "InvalidTxnStateException",
                K::InvalidProducerIdMapping => "InvalidPidMappingException",
                K::InvalidTransactionTimeout => "InvalidTxnTimeoutException",
                K::TransactionAbortable => "TransactionAbortableException",
                K::TopicAuthorizationFailed => "TopicAuthorizationException",
                K::GroupAuthorizationFailed => "GroupAuthorizationException",
                K::CommitFailed => "CommitFailedException",
                K::FencedInstanceId => "FencedInstanceIdException",
                K::UnknownProducerId => "UnknownProducerIdException",
                K::TimedOut => "TimeoutException",
                _ => "KafkaException",
            },
        }
    }
}

/// An application call, on its way to the driver.
pub(super) enum TxnCall {
    Init,
    Begin,
    SendOffsets(ConsumerGroupMetadata, Vec<TxnOffset>),
    Commit,
    Abort,
}

impl TxnCall {
    pub(super) fn name(&self) -> &'static str {
        match self {
            TxnCall::Init => "init_transactions",
            TxnCall::Begin => "begin_transaction",
            TxnCall::SendOffsets(..) => "send_offsets_to_transaction",
            TxnCall::Commit => "commit_transaction",
            TxnCall::Abort => "abort_transaction",
        }
    }

    /// The operation whose completion the call waits for; `None` for begin, which
    /// completes at once (nothing is sent, as in Java).
    fn operation(&self) -> Option<TxnOperation> {
        match self {
            TxnCall::Init => Some(TxnOperation::Init),
            TxnCall::Begin => None,
            TxnCall::SendOffsets(..) => Some(TxnOperation::SendOffsets),
            TxnCall::Commit => Some(TxnOperation::Commit),
            TxnCall::Abort => Some(TxnOperation::Abort),
        }
    }
}

fn operation_name(op: TxnOperation) -> &'static str {
    match op {
        TxnOperation::Init => "init_transactions",
        TxnOperation::SendOffsets => "send_offsets_to_transaction",
        TxnOperation::Commit => "commit_transaction",
        TxnOperation::Abort => "abort_transaction",
    }
}

pub(super) type TxnReplyTo = oneshot::Sender<Result<(), TransactionError>>;

/// The driver's side of transactions.
#[derive(Default)]
pub(super) struct TxnDriver {
    /// `transactional.id`, for the errors; `None` for a producer without transactions.
    pub(super) transactional_id: Option<Arc<str>>,
    /// A coordinator request is out (the machine has one in flight at a time).
    pub(super) in_flight: bool,
    /// The application calls waiting for their operation's event.
    waiters: HashMap<TxnOperation, TxnReplyTo>,
    /// An outcome that came after its caller stopped waiting (`max.block.ms`): the
    /// next call of the same operation gets it, as Java's retried `commitTransaction()`
    /// returns the pending result.
    unclaimed: Option<(TxnOperation, Result<(), TransactionError>)>,
    /// Calls that wait for records sent before them (`Driver::must_wait`), in order.
    deferred: Vec<(TxnCall, TxnReplyTo)>,
    /// The transaction version the machine runs, for [`Producer::transaction_version`]
    /// (0 until `init_transactions` succeeded).
    ///
    /// [`Producer::transaction_version`]: super::Producer::transaction_version
    pub(super) published: Arc<AtomicU8>,
    /// The last version chosen and logged, so that the choice is logged at info once
    /// and again only when it changes.
    chosen: Option<TransactionVersion>,
}

/// `TransactionVersion` as stored in [`TxnDriver::published`].
pub(super) fn version_from_u8(v: u8) -> Option<TransactionVersion> {
    match v {
        1 => Some(TransactionVersion::V1),
        2 => Some(TransactionVersion::V2),
        _ => None,
    }
}

fn version_to_u8(v: TransactionVersion) -> u8 {
    match v {
        TransactionVersion::V1 => 1,
        TransactionVersion::V2 => 2,
    }
}

impl TxnDriver {
    pub(super) fn new(transactional_id: Option<&str>, published: Arc<AtomicU8>) -> Self {
        TxnDriver {
            transactional_id: transactional_id.map(Arc::from),
            published,
            ..TxnDriver::default()
        }
    }

    fn id(&self) -> String {
        self.transactional_id.as_deref().unwrap_or("").to_owned()
    }

    fn call_error(&self, operation: &'static str, e: TxnCallError) -> TransactionError {
        match e {
            TxnCallError::Failed(error) => TransactionError::Failed {
                operation,
                transactional_id: self.id(),
                error,
            },
            TxnCallError::WrongState { state, .. } => {
                TransactionError::IllegalState { operation, state }
            }
            TxnCallError::NotTransactional { .. } => {
                TransactionError::NotTransactional { operation }
            }
        }
    }

    fn resolve(&mut self, op: TxnOperation, result: Result<(), TransactionError>) {
        if let Some(w) = self.waiters.remove(&op) {
            match w.send(result) {
                Ok(()) => {}
                Err(result) => self.unclaimed = Some((op, result)),
            }
        } else {
            self.unclaimed = Some((op, result));
        }
    }
}

/// A coordinator's reply, or why there is none.
pub(super) enum TxnReply {
    FindCoordinator(i16, wire::FindCoordinatorResponse),
    InitProducerId(wire::InitProducerIdResponse),
    AddPartitions(wire::AddPartitionsToTxnResponse),
    AddOffsets(wire::AddOffsetsToTxnResponse),
    OffsetCommit(wire::TxnOffsetCommitResponse),
    EndTxn(wire::EndTxnResponse),
    Failed(&'static str, NetError),
}

impl Driver {
    /// An application call: forwarded to the engine's machine, answered now when it is
    /// refused or needs nothing sent, else when the machine's event comes.
    pub(super) fn on_txn_call(&mut self, call: TxnCall, reply: TxnReplyTo) {
        if !self.txn.deferred.is_empty() || self.must_wait(&call) {
            self.txn.deferred.push((call, reply));
            return;
        }
        self.run_txn_call(call, reply);
    }

    /// Whether a call must wait for records sent before it: those the durability audit
    /// holds, and, for a commit, those waiting for their topic's metadata, which have no
    /// partition in the transaction yet. Java's `send` blocks until it has the metadata,
    /// so every record sent before `commitTransaction()` is in the transaction; here the
    /// commit waits instead. Either wait is bounded: the audit by `max.block.ms`, the
    /// metadata by `max.block.ms` too, after which the record fails and the commit with it.
    fn must_wait(&self, call: &TxnCall) -> bool {
        self.holds_records()
            || (matches!(call, TxnCall::Commit) && self.engine.records_awaiting_metadata())
    }

    fn run_txn_call(&mut self, call: TxnCall, reply: TxnReplyTo) {
        let name = call.name();
        let op = call.operation();
        match (self.txn.unclaimed.take(), op) {
            (Some((done, result)), Some(op)) if done == op => {
                let _ = reply.send(result);
                return;
            }
            _ => {}
        }
        // The version is read again as each transaction starts and ends: a downgrade
        // applies to the transaction being begun, an upgrade from the one after the
        // transaction that is ending (with its epoch bump; see
        // `TransactionMachine::set_transaction_version`). Java re-reads it when a commit
        // or abort starts (`TransactionManager.beginCompletingTransaction`).
        if matches!(call, TxnCall::Begin | TxnCall::Commit | TxnCall::Abort) {
            self.choose_transaction_version();
        }
        let r = match call {
            TxnCall::Init => self.engine.init_transactions(),
            TxnCall::Begin => self.engine.begin_transaction(),
            TxnCall::SendOffsets(group, offsets) => {
                self.engine.send_offsets_to_transaction(group, offsets)
            }
            TxnCall::Commit => self.engine.commit_transaction(),
            TxnCall::Abort => self.engine.abort_transaction(),
        };
        match (r, op) {
            (Err(e), _) => {
                let _ = reply.send(Err(self.txn.call_error(name, e)));
            }
            (Ok(()), None) => {
                let _ = reply.send(Ok(()));
            }
            (Ok(()), Some(op)) => {
                // A call made again after a timeout replaces the one that gave up.
                self.txn.waiters.insert(op, reply);
            }
        }
        self.report_txn_events();
    }

    /// Takes the calls that waited for the durability audit, once it holds no records.
    pub(super) fn run_deferred_txn_calls(&mut self) {
        // In the order they were made.
        while let Some((call, _)) = self.txn.deferred.first() {
            if self.must_wait(call) {
                return;
            }
            let (call, reply) = self.txn.deferred.remove(0);
            self.run_txn_call(call, reply);
        }
    }

    /// On close, or when every handle is gone, an open transaction is aborted, as Java's
    /// producer does on a graceful close ("Aborting incomplete transaction due to
    /// shutdown"), so that its partitions' last stable offset need not wait for
    /// `transaction.timeout.ms`.
    pub(super) fn abort_open_transaction(&mut self) {
        let open = self.engine.transaction_machine().is_some_and(|m| {
            matches!(
                m.state(),
                TxnState::InTransaction | TxnState::AbortableError
            )
        });
        if open && self.engine.abort_transaction().is_ok() {
            tracing::info!("aborting the open transaction: the producer is closing");
        }
    }

    /// Whether nothing of a transaction needs the driver to stay up: no coordinator
    /// request out, and no commit or abort under way.
    pub(super) fn txn_settled(&self) -> bool {
        !self.txn.in_flight
            && self.engine.transaction_machine().is_none_or(|m| {
                !matches!(
                    m.pending_operation(),
                    Some(TxnOperation::Commit | TxnOperation::Abort)
                )
            })
    }

    /// Sends the machine's next coordinator request, if one is due and none is out.
    pub(super) fn drive_transaction(&mut self, now: Instant) {
        if self.txn.in_flight || !self.engine.is_transactional() {
            return;
        }
        // The first choice: while init_transactions gets the producer id, after
        // FindCoordinator opened a connection, so that InitProducerId's success applies
        // it to the first transaction (Java reads it in `initTransactions`).
        if self.engine.transaction_machine().is_some_and(|m| {
            m.state() == TxnState::Initializing && m.pending_operation() == Some(TxnOperation::Init)
        }) {
            self.choose_transaction_version();
        }
        let Some(out) = self.engine.poll_transaction(now.into_std()) else {
            self.report_txn_events();
            return;
        };
        self.report_txn_events();
        let version = self
            .engine
            .transaction_machine()
            .map_or(TransactionVersion::V1, |m| m.transaction_version());
        self.txn.in_flight = true;
        let pool = self.pool.clone();
        let events = self.events();
        let timeout = self.engine.config().request_timeout;
        tokio::spawn(async move {
            let reply = execute(&pool, out, version, timeout).await;
            let _ = events.send(Event::Txn(reply));
        });
    }

    /// A coordinator's reply (or its absence) goes to the machine.
    pub(super) fn on_txn_reply(&mut self, reply: TxnReply) {
        let now = Instant::now().into_std();
        self.txn.in_flight = false;
        match reply {
            TxnReply::FindCoordinator(v, r) => self.engine.on_txn_find_coordinator(v, &r, now),
            TxnReply::InitProducerId(r) => self.engine.on_txn_init_producer_id(&r, now),
            TxnReply::AddPartitions(r) => self.engine.on_txn_add_partitions(&r, now),
            TxnReply::AddOffsets(r) => self.engine.on_txn_add_offsets(&r, now),
            TxnReply::OffsetCommit(r) => self.engine.on_txn_offset_commit(&r, now),
            TxnReply::EndTxn(r) => self.engine.on_txn_end(&r, now),
            TxnReply::Failed(api, e) => {
                tracing::debug!(api, error = %e, "transactional request got no reply");
                self.on_net_error(&e);
                self.engine.on_txn_request_failed(now);
            }
        }
        self.report_txn_events();
    }

    /// Picks the transaction version from what the connections know, as Java's
    /// `TransactionManager.maybeUpdateTransactionV2Enabled` does: version 2 when the
    /// newest finalized `transaction.version` the pool has seen is 2 or more and every
    /// open connection's broker takes Produce v12 and EndTxn v5
    /// (`TransactionVersion::choose`), else version 1 (Kafka 3.x, Redpanda, a cluster
    /// with `transaction.version` 1). With no open connection there is nothing new to go
    /// on, and the version stays.
    fn choose_transaction_version(&mut self) {
        let Some(machine) = self.engine.transaction_machine() else {
            return;
        };
        let (Some(produce_max), Some(end_txn_max)) = (
            self.pool.lowest_max_version(ApiKey::Produce),
            self.pool.lowest_max_version(ApiKey::EndTxn),
        ) else {
            return;
        };
        let features = self.pool.finalized_features();
        let finalized = features.transaction_version();
        let chosen = TransactionVersion::choose(finalized, produce_max, end_txn_max);
        if self.txn.chosen != Some(chosen) {
            let why = match (chosen, finalized) {
                (TransactionVersion::V2, _) => {
                    "the cluster finalizes transaction.version 2 or more"
                }
                (TransactionVersion::V1, None) => {
                    "the cluster reports no finalized transaction.version (Kafka before 4.0, \
                     Redpanda)"
                }
                (TransactionVersion::V1, Some(v)) if v < 2 => {
                    "the cluster finalizes transaction.version below 2"
                }
                (TransactionVersion::V1, Some(_)) => "a broker lacks Produce v12 or EndTxn v5",
            };
            let applies = if machine.producer_id().is_none() {
                "from the first transaction"
            } else if chosen > machine.transaction_version() {
                "once the transaction under way (or about to begin) ends, with an epoch bump"
            } else {
                "from the next transaction"
            };
            tracing::info!(
                transactional_id = self.txn.transactional_id.as_deref().unwrap_or(""),
                transaction_version = ?chosen,
                finalized_transaction_version = ?finalized,
                finalized_features_epoch = features.epoch,
                produce_max,
                end_txn_max,
                "transaction protocol version {} (KIP-890) {applies}: {why}",
                version_to_u8(chosen)
            );
            self.txn.chosen = Some(chosen);
        }
        self.engine.set_transaction_version(chosen);
    }

    /// Completes the application's calls with the machine's events.
    pub(super) fn report_txn_events(&mut self) {
        if let Some(m) = self.engine.transaction_machine() {
            if m.producer_id().is_some() {
                self.txn
                    .published
                    .store(version_to_u8(m.transaction_version()), Ordering::Relaxed);
            }
        }
        while let Some(ev) = self.engine.poll_txn_event() {
            match ev {
                TxnEvent::ProducerIdChanged { producer_id, epoch } => {
                    tracing::debug!(producer_id, epoch, "transactional producer id and epoch");
                }
                TxnEvent::Completed(op) => {
                    tracing::debug!(operation = operation_name(op), "transaction call completed");
                    self.txn.resolve(op, Ok(()));
                }
                TxnEvent::Failed { operation, error } => {
                    let err = TransactionError::Failed {
                        operation: operation_name(operation),
                        transactional_id: self.txn.id(),
                        error,
                    };
                    tracing::warn!(error = %err, "transaction call failed");
                    self.txn.resolve(operation, Err(err));
                }
            }
        }
    }
}

/// The connection a request goes to: any broker for FindCoordinator, else the
/// coordinator, whose address FindCoordinator gave. It goes into the pool under its node
/// id, the same key as the broker's Produce connection, so one connection serves both.
async fn connection_for(
    pool: &ConnectionPool,
    target: &TxnTarget,
) -> Result<Arc<net::BrokerConnection>, NetError> {
    match target {
        TxnTarget::AnyBroker => any_connection(pool).await,
        TxnTarget::Coordinator(node) => {
            pool.set_broker_address(node.node_id, format!("{}:{}", node.host, node.port));
            pool.get(node.node_id).await
        }
    }
}

async fn execute(
    pool: &ConnectionPool,
    out: OutgoingTxnRequest,
    version: TransactionVersion,
    timeout: Duration,
) -> TxnReply {
    let api = match &out.request {
        TxnRequest::FindCoordinator { .. } => "FindCoordinator",
        TxnRequest::InitProducerId { .. } => "InitProducerId",
        TxnRequest::AddPartitionsToTxn { .. } => "AddPartitionsToTxn",
        TxnRequest::AddOffsetsToTxn { .. } => "AddOffsetsToTxn",
        TxnRequest::TxnOffsetCommit { .. } => "TxnOffsetCommit",
        TxnRequest::EndTxn { .. } => "EndTxn",
    };
    let send = async {
        let conn = connection_for(pool, &out.target).await?;
        Ok::<_, NetError>(match out.request {
            TxnRequest::FindCoordinator { key_type, key } => {
                let (v, r) = net::txn::find_coordinator_reply(&conn, key_type, &key).await?;
                TxnReply::FindCoordinator(v, r)
            }
            TxnRequest::InitProducerId {
                transactional_id,
                transaction_timeout_ms,
                producer_id,
                producer_epoch,
            } => TxnReply::InitProducerId(
                net::txn::init_producer_id(
                    &conn,
                    &transactional_id,
                    transaction_timeout_ms,
                    producer_id,
                    producer_epoch,
                )
                .await?,
            ),
            TxnRequest::AddPartitionsToTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                topics,
            } => {
                let parts: Vec<(&str, Vec<i32>)> = topics
                    .iter()
                    .map(|(t, p)| (t.as_str(), p.clone()))
                    .collect();
                TxnReply::AddPartitions(
                    net::txn::add_partitions_to_txn(
                        &conn,
                        version,
                        &transactional_id,
                        producer_id,
                        producer_epoch,
                        &parts,
                    )
                    .await?,
                )
            }
            TxnRequest::AddOffsetsToTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                group_id,
            } => {
                let error_code = net::txn::add_offsets_to_txn(
                    &conn,
                    version,
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    &group_id,
                )
                .await?;
                TxnReply::AddOffsets(wire::AddOffsetsToTxnResponse {
                    throttle_time_ms: 0,
                    error_code,
                })
            }
            TxnRequest::TxnOffsetCommit {
                transactional_id,
                producer_id,
                producer_epoch,
                group,
                offsets,
            } => {
                let member = net::txn::GroupMember {
                    group_id: group.group_id,
                    generation_id: group.generation_id,
                    member_id: group.member_id,
                    group_instance_id: group.group_instance_id,
                };
                TxnReply::OffsetCommit(
                    net::txn::txn_offset_commit_offsets(
                        &conn,
                        version,
                        &transactional_id,
                        producer_id,
                        producer_epoch,
                        &member,
                        &offsets,
                    )
                    .await?,
                )
            }
            TxnRequest::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                committed,
            } => TxnReply::EndTxn(
                net::txn::end_txn(
                    &conn,
                    version,
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    committed,
                )
                .await?,
            ),
        })
    };
    // The connection bounds each request by request.timeout.ms already; this bounds the
    // connect as well, so that a coordinator that does not answer is found again.
    match tokio::time::timeout(timeout + Duration::from_secs(5), send).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => TxnReply::Failed(api, e),
        Err(_) => TxnReply::Failed(
            api,
            NetError::Timeout {
                addr: String::from("the coordinator"),
                api,
                timeout: timeout + Duration::from_secs(5),
                written: true,
            },
        ),
    }
}

/// The Produce versions and transactional id a transactional engine's requests carry.
#[derive(Debug, Clone)]
pub(super) struct ProduceTxn {
    pub(super) transactional_id: Arc<str>,
    pub(super) versions: RangeInclusive<i16>,
}
