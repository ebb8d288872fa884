//! Timeouts: records parked past `max.block.ms`, batches past `delivery.timeout.ms`, and
//! the resolution of batches that may be in the log (`delivery.resolution.timeout.ms`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::queue::{BatchState, PARKED_RETAINED};
use super::types::{Failure, FailureReason, Persistence};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    pub(super) fn expire(&mut self, now: Instant) {
        let timeout = self.cfg.delivery_timeout;
        let resolution = self.resolution_timeout();
        let park_limit = self.cfg.max_block.min(timeout);
        for ti in 0..self.topics.len() {
            while let Some(front) = self.topics[ti].parked.front() {
                // Once one record waited in vain for a topic that does not exist, the
                // others behind it fail with it (see `append`).
                if !self.topics[ti].missing_confirmed
                    && now.duration_since(front.since) < park_limit
                {
                    break;
                }
                let parked = self.topics[ti].parked.pop_front().expect("front exists");
                let reason = if self.topics[ti].unknown {
                    self.topics[ti].missing_confirmed = true;
                    FailureReason::UnknownTopic
                } else {
                    FailureReason::MetadataTimeout
                };
                self.fail_record(
                    parked.record,
                    Failure {
                        reason,
                        persistence: Persistence::NotPersisted,
                    },
                );
            }
            let parked = &mut self.topics[ti].parked;
            if parked.is_empty() && parked.capacity() > PARKED_RETAINED {
                // A topic whose metadata was missing for long may have parked a whole
                // `buffer.memory` of records (about 180 bytes each beside their bytes);
                // once they are placed or failed, that room is given back (issue 19).
                *parked = VecDeque::new();
            }
            for pi in 0..self.topics[ti].partitions.len() {
                loop {
                    let p = &mut self.topics[ti].partitions[pi];
                    // Expire from the front only, so sequence order is kept: a batch
                    // behind an in-flight one waits for it.
                    let Some(front) = p.batches.front_mut() else {
                        break;
                    };
                    let age = now.duration_since(front.created);
                    if front.state != BatchState::Ready || age < timeout {
                        break;
                    }
                    let resolvable = front.stamp.is_some() && front.maybe_written;
                    if resolvable && age < timeout + resolution {
                        // It may be in the log: keep resending it with its sequence
                        // until the broker's answer settles it.
                        front.resolving = true;
                        break;
                    }
                    let mut b = p.batches.pop_front().expect("front exists");
                    p.gap(&b);
                    let reason = if resolvable && !resolution.is_zero() {
                        // Its resolution ran out (even if it was in flight all along).
                        b.resolving = true;
                        FailureReason::Unresolved {
                            last_error: b.last_error,
                        }
                    } else {
                        FailureReason::DeliveryTimeout {
                            last_error: b.last_error,
                        }
                    };
                    self.finish_failed(ti, pi as i32, b, reason);
                }
                self.expire_unsent_behind_resolution(ti, pi, now);
            }
        }
    }

    /// How long past `delivery_timeout` a batch that may be in the log is resolved;
    /// zero without idempotence, where resending cannot be told apart from a duplicate.
    pub(super) fn resolution_timeout(&self) -> Duration {
        if self.txn.is_some() {
            // In a transaction a batch that may have been written needs no resolution:
            // failing it makes the transaction abortable, and the abort's marker hides
            // whatever reached the log (KIP-98); a late write is refused by the bumped
            // epoch (version 2) or by the leader's check that the partition is in an
            // open transaction (KIP-890). Resolving would only hold the abort back by up
            // to `delivery.resolution.timeout.ms`: with a silent link, the CLI's
            // transaction waited 120 s for a batch that `delivery.timeout.ms` (3 s)
            // should have failed. Java fails it at `delivery.timeout.ms` too.
            Duration::ZERO
        } else if self.cfg.idempotence {
            self.cfg.resolution_timeout
        } else {
            Duration::ZERO
        }
    }

    /// Behind a batch being resolved, the batches never sent still fail at
    /// `delivery.timeout.ms`, as the setting promises: they hold no sequence, so
    /// removing them leaves no gap, and they are not in the log.
    fn expire_unsent_behind_resolution(&mut self, ti: usize, pi: usize, now: Instant) {
        let timeout = self.cfg.delivery_timeout;
        let p = &mut self.topics[ti].partitions[pi];
        if !p.batches.front().is_some_and(|b| b.resolving) {
            return;
        }
        // Batches go out in queue order, so the never-sent ones are the queue's tail.
        let Some(first) = p.batches.iter().position(|b| b.attempts == 0) else {
            return;
        };
        let mut expired = Vec::new();
        while let Some(b) = p.batches.get(first) {
            if b.state != BatchState::Ready || now.duration_since(b.created) < timeout {
                break;
            }
            expired.push(p.batches.remove(first).expect("index valid"));
        }
        for b in expired {
            let reason = FailureReason::DeliveryTimeout {
                last_error: b.last_error,
            };
            self.finish_failed(ti, pi as i32, b, reason);
        }
    }
}
