//! The transactional hooks (KIP-98): what a transactional engine keeps ([`EngineTxn`]),
//! the application's calls (`init_transactions` ... `abort_transaction`), the
//! coordinator's replies (`on_txn_*`), and how the machine's events and an abort reach
//! the batches. The state machine itself is [`super::txn`].

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::Instant;

use crate::errors::ErrorCode;
use crate::wire::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, FindCoordinatorResponse,
    InitProducerIdResponse, TxnOffsetCommitResponse,
};

use super::queue::{BatchState, Parked};
use super::txn::{
    ConsumerGroupMetadata, OutgoingTxnRequest, TransactionMachine, TransactionVersion, TxnApi,
    TxnCallError, TxnCallKind, TxnEvent, TxnOffset, TxnState,
};
use super::types::{Failure, FailureReason, Persistence};
use super::ProducerEngine;

/// What a transactional engine keeps beside its idempotent state (KIP-98): the
/// transaction state machine, which owns the producer id and epoch, and the events for
/// the application.
pub(super) struct EngineTxn {
    pub(super) machine: TransactionMachine,
    /// Transactions begun so far; the current one's number. A partition whose
    /// `txn_added` differs has had no record in the current transaction.
    pub(super) generation: u64,
    /// Events of the machine for the application, in order.
    pub(super) events: VecDeque<TxnEvent>,
}

impl<T> ProducerEngine<T> {
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
    pub(super) fn absorb_txn_events(&mut self) {
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
    pub(super) fn fail_unsent_of_aborted(&mut self) {
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

    /// A transaction is committing: its batches go without waiting for `linger.ms`, as
    /// Java's `commitTransaction` flushes.
    pub(super) fn txn_committing(&self) -> bool {
        self.txn
            .as_ref()
            .is_some_and(|t| t.machine.state() == TxnState::Committing)
    }

    /// Tells the machine that a record or batch of the transaction failed for good
    /// (Java's `maybeTransitionToErrorState`): the transaction cannot commit with it
    /// missing. A batch that held a sequence leaves a gap only a new epoch can close
    /// (KIP-360). Records refused outside a transaction are not part of it.
    pub(super) fn txn_record_failed(&mut self, reason: &FailureReason, sequence_gap: bool) {
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
}
