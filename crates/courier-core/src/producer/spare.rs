//! The pool of spare batch builders, kept with their work areas for the next batches and
//! let go of when they sit unused.

use std::time::{Duration, Instant};

use crate::batch::RecordBatchBuilder;

use super::ProducerEngine;

/// Bytes of work areas the engine keeps for reuse (see `ProducerEngine::spare`).
pub(super) const SPARE_BYTES: usize = 4 << 20;

/// Builders the pool keeps however long they sit unused.
pub(super) const SPARE_IDLE: usize = 8;

/// How often the pool lets go of builders that sat unused since the last time.
pub(super) const SPARE_DECAY: Duration = Duration::from_secs(1);

impl<T> ProducerEngine<T> {
    /// Builders kept for reuse right now (beyond `SPARE_IDLE` they decay; for tests and memory
    /// accounting).
    pub fn spare_builders(&self) -> usize {
        self.spare.len()
    }

    /// Lets go of the spare builders that sat unused for a whole [`SPARE_DECAY`] (beyond
    /// [`SPARE_IDLE`]): after a backlog (a broker outage) fills the pool to `spare_max`,
    /// it shrinks back to what the load uses, and the memory goes back (issue 19: RSS
    /// settles after the outage). Under load the low-water mark stays near zero and
    /// nothing goes: a fresh builder's zero-filled pages cost more than its records.
    pub(super) fn decay_spare(&mut self, now: Instant) {
        let due = self.spare_decay_at.is_none_or(|at| now >= at);
        if !due {
            return;
        }
        let unused = self.spare_low.min(self.spare.len());
        if unused > SPARE_IDLE {
            let keep = self.spare.len() - (unused - SPARE_IDLE);
            self.spare.truncate(keep);
        }
        self.spare_low = self.spare.len();
        self.spare_decay_at = Some(now + SPARE_DECAY);
    }

    /// Keeps a sealed batch's builder for the next batch, unless the pool is full or
    /// the builder grew for an outsized record: the pool's memory stays within
    /// `spare_max` work areas of about `batch.size`.
    pub(super) fn keep_spare(
        spare: &mut Vec<RecordBatchBuilder>,
        spare_max: usize,
        batch_size: usize,
        builder: RecordBatchBuilder,
    ) {
        if spare.len() < spare_max && builder.work_area_capacity() <= 2 * batch_size.max(1024) {
            spare.push(builder);
        }
    }
}
