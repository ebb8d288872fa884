//! The producer id and its epochs: InitProducerId, the KIP-360 epoch bumps after a
//! sequence gap, a new producer id once the epochs run out, and the sequence restarts
//! they bring (with the batches that cannot be resent under the new epoch).

use std::collections::VecDeque;
use std::time::Instant;

use super::classify::codes;
use super::queue::PidState;
use super::types::{Action, Failure, FailureReason, Persistence};
use super::{classify, ProducerEngine};

impl<T> ProducerEngine<T> {
    pub(super) fn poll_producer_id(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
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
    pub(super) fn reset_producer(&mut self, id: i64, epoch: i16) {
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
}
