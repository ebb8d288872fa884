//! Failed deliveries: one record (`fail_record`) or one batch (`finish_failed`), and the
//! ways to fail many at once ([`ProducerEngine::stop`], [`ProducerEngine::fail_all`],
//! [`ProducerEngine::abandon_in_flight`]).

use std::collections::VecDeque;

use super::queue::{Batch, BatchState, Parked};
use super::types::{Action, Delivery, Failure, FailureReason, Persistence, Record};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    pub(super) fn fail_record(&mut self, record: Record<T>, failure: Failure) {
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

    pub(super) fn finish_failed(
        &mut self,
        ti: usize,
        partition: i32,
        b: Batch<T>,
        reason: FailureReason,
    ) {
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
}
