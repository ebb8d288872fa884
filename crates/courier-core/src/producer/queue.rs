//! The engine's bookkeeping: per topic ([`TopicState`], with the records parked while its
//! metadata is missing), per partition ([`PartitionQueue`]: its batches, sequence and
//! epoch), per batch ([`Batch`] and its [`Payload`]), per request in flight
//! ([`InFlight`]), and the producer id's state ([`PidState`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::batch::{PreparedBatch, RecordBatchBuilder, SealedBatch};
use crate::partitioner::StickyPartitioner;

use super::types::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchState {
    /// Waiting to be sent (first time or retry).
    Ready,
    /// In request `id`.
    InFlight(u64),
}

pub(super) enum Payload {
    Open(RecordBatchBuilder),
    /// Handed out as [`Action::Compress`]; `size` is its uncompressed size.
    Compressing {
        size: usize,
    },
    /// Compressed, waiting for its header (stamped when first sent).
    Prepared(PreparedBatch),
    Sealed(SealedBatch),
}

pub(super) struct Batch<T> {
    pub(super) id: u64,
    pub(super) payload: Payload,
    pub(super) records: Vec<(T, i64)>,
    pub(super) created: Instant,
    pub(super) state: BatchState,
    /// Attempts sent so far.
    pub(super) attempts: u32,
    /// An attempt may have been written.
    pub(super) maybe_written: bool,
    /// Outlived `delivery_timeout` while maybe written: resent with its stamp until an
    /// answer settles it or `resolution_timeout` more passes.
    pub(super) resolving: bool,
    /// No more appends (a later batch was started).
    pub(super) closed: bool,
    /// (epoch, base sequence) it was stamped with, if idempotent and sent.
    pub(super) stamp: Option<(i64, i16, i32)>,
    pub(super) last_error: Option<i16>,
    pub(super) last_message: Option<String>,
}

impl<T> Batch<T> {
    pub(super) fn size(&self) -> usize {
        match &self.payload {
            Payload::Open(b) => b.size_in_bytes(),
            Payload::Compressing { size } => *size,
            Payload::Prepared(p) => p.len(),
            Payload::Sealed(s) => s.len(),
        }
    }
}

pub(super) struct PartitionQueue<T> {
    pub(super) leader: i32,
    pub(super) batches: VecDeque<Batch<T>>,
    /// The epoch this partition's batches are stamped with; `None` until its first
    /// stamp, which takes the engine's newest. Epochs are per partition, as the broker
    /// keeps producer state per partition (and Java's `TxnPartitionEntry` keeps the id
    /// and epoch per partition): a gap in one partition bumps that partition's epoch
    /// only, so another partition's batch that may be in the log keeps its sequence and
    /// can still be resolved by resending it.
    pub(super) epoch: Option<i16>,
    /// A gap in this partition's sequence: bump its epoch once its in-flight requests
    /// have answered (KIP-360).
    pub(super) bump_required: bool,
    /// The id of the earliest batch that left a gap the broker certainly did not write
    /// while it held our state (`confirmed`). The broker only appends the next sequence,
    /// so no later batch of this epoch can be in the log either, whatever its attempts'
    /// answers were: at the bump they are re-stamped, not reported possibly persisted.
    pub(super) unwritten_from: Option<u64>,
    pub(super) next_sequence: i32,
    /// The sequence the broker expects next: one past the last acknowledged batch in
    /// the current epoch.
    pub(super) acked_next: i32,
    /// The broker acknowledged a batch of this partition under the current producer
    /// id and epoch, so it holds our producer state and checks our sequences. Until
    /// then only one batch goes at a time: see `drain`.
    pub(super) confirmed: bool,
    /// Id of the latest batch (in queue order) acknowledged under the current producer
    /// id and epoch, 0 if none. Acknowledgements can arrive out of queue order (a
    /// retry answered DUPLICATE_SEQUENCE_NUMBER after later batches were acknowledged),
    /// so `acked_next` only moves forward with it.
    pub(super) last_acked_batch: u64,
    pub(super) inflight: usize,
    /// A retriable failure happened: send nothing until in-flight requests answer.
    pub(super) blocked: bool,
    pub(super) retry_at: Option<Instant>,
    /// Transactional producer: the transaction (`EngineTxn::generation`) in which the
    /// partition was registered with the machine (`add_partition`), and the one in which
    /// the machine let its batches go (`may_send`). 0: none yet.
    pub(super) txn_added: u64,
    pub(super) txn_cleared: u64,
}

impl<T> PartitionQueue<T> {
    /// A stamped batch leaves the queue unacknowledged: its sequence will never be
    /// acknowledged, a gap, so the partition's epoch must be bumped.
    pub(super) fn gap(&mut self, b: &Batch<T>) {
        if b.stamp.is_none() {
            return;
        }
        self.bump_required = true;
        if !b.maybe_written && self.confirmed {
            self.unwritten_from = Some(self.unwritten_from.map_or(b.id, |g| g.min(b.id)));
        }
    }

    pub(super) fn new(leader: i32) -> Self {
        Self {
            leader,
            batches: VecDeque::new(),
            epoch: None,
            bump_required: false,
            unwritten_from: None,
            next_sequence: 0,
            acked_next: 0,
            confirmed: false,
            last_acked_batch: 0,
            inflight: 0,
            blocked: false,
            retry_at: None,
            txn_added: 0,
            txn_cleared: 0,
        }
    }
}

/// Room for parked records a topic keeps once none is left (see `expire`).
pub(super) const PARKED_RETAINED: usize = 1024;

pub(super) struct Parked<T> {
    pub(super) record: Record<T>,
    pub(super) since: Instant,
}

pub(super) struct TopicState<T> {
    pub(super) name: Arc<str>,
    pub(super) partitions: Vec<PartitionQueue<T>>,
    /// Metadata said the topic does not exist.
    pub(super) unknown: bool,
    /// A record waited `max.block.ms` for the topic and metadata still said it does
    /// not exist: later records fail at once (see `append`) until metadata has it.
    pub(super) missing_confirmed: bool,
    /// Records waiting for metadata.
    pub(super) parked: VecDeque<Parked<T>>,
    pub(super) sticky: StickyPartitioner,
    /// Partitions with a leader, sorted; recomputed on metadata, read per unkeyed record.
    pub(super) available: Vec<i32>,
    /// The topic's `max.message.bytes`, once known: batches close below it.
    pub(super) max_batch: Option<usize>,
}

pub(super) struct InFlight {
    pub(super) broker: i32,
    pub(super) batches: Vec<(usize, i32, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PidState {
    NotNeeded,
    Needed,
    Fetching,
    Known,
}

/// Batch ids grow by this much, so that the halves of a split batch can take ids between
/// it and the next one: ids order the queue (`last_acked_batch`, `unwritten_from`).
/// Room for 24 levels of halving, far more than a batch of records can need.
pub(super) const BATCH_ID_STEP: u64 = 1 << 24;
