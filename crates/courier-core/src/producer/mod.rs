//! The producer's brain without I/O: batching, sequencing, the in-flight window,
//! retries, epoch bumps and delivery outcomes.
//!
//! [`ProducerEngine`] is fed records, time and broker answers, and answers with
//! [`Action`]s: Produce requests to send, metadata or a producer id to fetch, and
//! deliveries to report. It never blocks, never reads a clock and never touches a
//! socket, so the async producer is a thin driver around it and the same engine runs
//! in deterministic simulations (the quinn-proto model, see `shared/notes/style.md`).
//!
//! # The rules it keeps
//!
//! - A batch is sealed when it is first sent, with the partition's next sequence, and
//!   a retry resends the same bytes with the same sequence: the broker answers
//!   DUPLICATE_SEQUENCE_NUMBER (success) if an earlier attempt stuck. Java and
//!   franz-go do the same; librdkafka's rebuild-on-retry was a source of bugs (#4736).
//! - One batch per partition per request, at most `max_in_flight` requests per
//!   broker. After a retriable failure the partition stops sending until its in-flight
//!   requests have answered, then resends from its oldest unacknowledged batch, so
//!   batches always reach the broker in sequence order.
//! - A gap in a partition's sequence (a batch with a sequence that failed or expired,
//!   or OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID for its oldest unresolved
//!   batch) bumps the producer epoch (KIP-360), once every in-flight request has
//!   answered, and restarts every partition's sequence at 0. The epoch is bumped
//!   locally, as Java does for idempotent producers; at `i16::MAX` a new producer id is
//!   fetched instead.
//! - A batch that may have been written under the old epoch is not resent under the
//!   new one: the broker could no longer recognise it as a duplicate. It is reported
//!   as possibly persisted instead (franz-go #1217 shows the silent loss that reusing a
//!   possibly-written sequence causes; resending under a new epoch would duplicate).
//! - Batches in flight never expire; queued ones expire after `delivery_timeout`.
//!
//! # Transactions
//!
//! [`ProducerEngine::transactional`] adds a [`TransactionMachine`] (KIP-98, issue 15; the
//! design is `docs/TRANSACTIONS.md`). The rules above hold with these differences: the
//! producer id and epoch come from the transaction coordinator, never from a local bump,
//! so a sequence gap fails the batch and makes the transaction abortable, and the abort
//! brings the new epoch (KIP-360 through the coordinator; KIP-890's per-transaction bump
//! with version 2); records are accepted only inside a transaction, and any record that
//! fails makes it abortable, so a transaction never commits with a record missing; a
//! partition's batches wait until the coordinator has the partition (version 1); the
//! commit sends without waiting for `linger.ms`, and the EndTxn waits until nothing of
//! the transaction is queued or in flight.
//!
//! # Where things live
//!
//! - `mod.rs`: [`ProducerEngine`] itself, its constructors, [`ProducerEngine::poll`] (the
//!   order in which the parts below run) and [`ProducerEngine::next_wakeup`].
//! - `types.rs`: the public types: [`EngineConfig`], [`Record`], [`Action`],
//!   [`ProduceRequest`], [`ProduceResult`], [`PartitionResponse`], [`TopicMetadata`],
//!   [`PartitionMetadata`], [`Delivery`], [`Written`], [`Failure`], [`FailureReason`],
//!   [`Persistence`].
//! - `queue.rs`: the bookkeeping per topic, partition, batch and request in flight.
//! - `append.rs`: records in: [`ProducerEngine::append`], records parked while their
//!   topic's metadata is missing, partitioning and appending to batches.
//! - `compress.rs`: compression elsewhere ([`Action::Compress`], [`CompressJob`],
//!   [`ProducerEngine::on_compressed`]).
//! - `send.rs`: ready batches, Produce requests per leader within the in-flight window,
//!   sealing and sequence stamps.
//! - `results.rs`: [`ProducerEngine::on_produce_result`]: success, retries and backoff,
//!   sequence errors, splitting batches refused as too large.
//! - `epoch.rs`: the producer id, KIP-360 epoch bumps and sequence restarts.
//! - `expiry.rs`: `max.block.ms` for parked records, `delivery.timeout.ms` and the
//!   resolution of batches that may be in the log.
//! - `failure.rs`: failed deliveries, [`ProducerEngine::stop`],
//!   [`ProducerEngine::fail_all`], [`ProducerEngine::abandon_in_flight`].
//! - `metadata.rs`: metadata requests and answers.
//! - `engine_txn.rs`: the transactional hooks around the [`TransactionMachine`]
//!   (`txn.rs`); `classify.rs`: how a broker error is handled.
//! - `status.rs`: queries, metrics and the driver's switches; `spare.rs`: the pool of
//!   spare batch builders.
//! - `tests.rs`, `txn_engine_tests.rs`: the engine's unit tests (against a model broker,
//!   and with a scripted transaction coordinator).

pub mod classify;
pub mod txn;

mod append;
mod compress;
mod engine_txn;
mod epoch;
mod expiry;
mod failure;
mod metadata;
mod queue;
mod results;
mod send;
mod spare;
mod status;
mod types;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::batch::RecordBatchBuilder;
use crate::compression::Compressor;
use crate::partitioner::XorShiftRng;

use engine_txn::EngineTxn;
use queue::{BatchState, InFlight, Payload, PidState, TopicState};
use spare::SPARE_BYTES;
use txn::{TransactionMachine, TxnConfig, TxnState};

pub use compress::{CompressJob, Compressed};
pub use types::{
    Action, Delivery, EngineConfig, Failure, FailureReason, PartitionMetadata, PartitionResponse,
    Persistence, ProduceRequest, ProduceResult, Record, TopicMetadata, Written,
};

/// The sans-I/O producer. `T` is the caller's per-record token.
pub struct ProducerEngine<T> {
    cfg: EngineConfig,
    topics: Vec<TopicState<T>>,
    topic_index: HashMap<Arc<str>, usize>,
    inflight: HashMap<u64, InFlight>,
    broker_inflight: HashMap<i32, usize>,
    next_request_id: u64,
    next_batch_id: u64,
    producer_id: i64,
    /// The newest epoch of the producer id: a partition's bump takes the next one.
    epoch: i16,
    pid_state: PidState,
    pid_retry_at: Option<Instant>,
    /// The epoch is exhausted (`i16::MAX`): fetch a new producer id once nothing is in
    /// flight, and restart every partition under it.
    new_pid_required: bool,
    metadata_needed: bool,
    metadata_in_flight: bool,
    /// No metadata request before this: `retry.backoff.ms` after the last answer, longer
    /// after consecutive failures.
    metadata_retry_at: Option<Instant>,
    metadata_refreshed_at: Option<Instant>,
    /// Metadata requests failed in a row (the backoff grows with them).
    metadata_failures: u32,
    flushing: bool,
    fatal: Option<Failure>,
    compressor: Compressor,
    rng: XorShiftRng,
    deliveries: Vec<Action<T>>,
    /// Batches resent so far (for metrics).
    retries_total: u64,
    /// Records in those batches, one per record and attempt (for metrics).
    records_retried_total: u64,
    /// Bytes of the batches sent, before and after compression (for metrics).
    bytes_before_compression: u64,
    bytes_after_compression: u64,
    /// Batches split after MESSAGE_TOO_LARGE (for metrics).
    batches_split: u64,
    /// The topic of the last append and its slot.
    last_topic: Option<(Arc<str>, usize)>,
    /// When `poll` last ran.
    last_poll: Option<Instant>,
    /// Builders of sealed batches, kept for the next batches with their work areas (or
    /// given the buffer of an acknowledged uncompressed batch): a fresh builder
    /// allocates and zero-fills `batch.size` bytes, and on a busy producer the page
    /// faults of that memory cost more than the records' own copy (Java keeps a
    /// `BufferPool` for the same reason). At most `spare_max` are kept.
    spare: Vec<RecordBatchBuilder>,
    spare_max: usize,
    /// The fewest builders the pool held since the last decay: that many sat unused.
    spare_low: usize,
    /// When the pool next lets go of the builders that sat unused.
    spare_decay_at: Option<Instant>,
    /// Records in the last batch sealed, to size the next one's token list.
    records_hint: usize,
    /// Whether batches are handed out for compression now (see
    /// [`ProducerEngine::set_compress_elsewhere`]).
    compress_elsewhere: bool,
    /// The transactional producer's part, if it has a `transactional.id`.
    txn: Option<Box<EngineTxn>>,
}

impl<T> ProducerEngine<T> {
    /// A new engine. `seed` drives the sticky partitioner and backoff jitter, so a
    /// simulation replays exactly.
    pub fn new(cfg: EngineConfig, seed: u64) -> Self {
        let cfg_batch_size = cfg.batch_size.max(1);
        let pid_state = if cfg.idempotence {
            PidState::Needed
        } else {
            PidState::NotNeeded
        };
        Self {
            cfg,
            topics: Vec::new(),
            topic_index: HashMap::new(),
            inflight: HashMap::new(),
            broker_inflight: HashMap::new(),
            next_request_id: 1,
            next_batch_id: 1,
            producer_id: -1,
            epoch: -1,
            pid_state,
            pid_retry_at: None,
            new_pid_required: false,
            metadata_needed: false,
            metadata_in_flight: false,
            metadata_retry_at: None,
            metadata_refreshed_at: None,
            metadata_failures: 0,
            flushing: false,
            fatal: None,
            compressor: Compressor::new(),
            rng: XorShiftRng::new(seed),
            deliveries: Vec::new(),
            retries_total: 0,
            records_retried_total: 0,
            bytes_before_compression: 0,
            bytes_after_compression: 0,
            batches_split: 0,
            last_topic: None,
            last_poll: None,
            spare: Vec::new(),
            spare_max: (SPARE_BYTES / cfg_batch_size).clamp(2, 256),
            spare_low: 0,
            spare_decay_at: None,
            records_hint: 0,
            compress_elsewhere: true,
            txn: None,
        }
    }

    /// A transactional engine (`transactional.id`, KIP-98): its producer id and epoch come
    /// from the transaction coordinator through the [`TransactionMachine`] it runs, never
    /// from an InitProducerId of its own ([`Action::InitProducerId`] is not used), records
    /// are accepted only inside a transaction, and its batches carry the transactional
    /// bit. Transactions need idempotence and `acks=all` (Java refuses a configuration
    /// without them), so both are set whatever `cfg` says.
    ///
    /// The I/O layer drives the machine through the engine: it sends what
    /// [`Self::poll_transaction`] returns, hands the replies to the `on_txn_*` methods,
    /// and reports [`Self::poll_txn_event`]'s events to the application. The
    /// application calls [`Self::init_transactions`], [`Self::begin_transaction`],
    /// [`Self::send_offsets_to_transaction`], [`Self::commit_transaction`] and
    /// [`Self::abort_transaction`].
    pub fn transactional(mut cfg: EngineConfig, txn: TxnConfig, seed: u64) -> Self {
        cfg.idempotence = true;
        cfg.acks = -1;
        let mut engine = Self::new(cfg, seed);
        engine.txn = Some(Box::new(EngineTxn {
            machine: TransactionMachine::new(txn),
            generation: 0,
            events: VecDeque::new(),
        }));
        engine
    }

    /// Works out what to do now. Call after every input and when
    /// [`Self::next_wakeup`] passes; then take the actions from `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        self.last_poll = Some(now);
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.machine.state() == TxnState::Aborting)
        {
            self.fail_unsent_of_aborted();
        }
        self.expire(now);
        self.poll_metadata(now, out);
        self.poll_producer_id(now, out);
        self.compress_elsewhere(now, out);
        self.drain(now, out);
        // Failures reported to the machine above may have made it fatal.
        self.absorb_txn_events();
        out.append(&mut self.deliveries);
        self.decay_spare(now);
    }

    /// When [`Self::poll`] should run next if nothing else happens.
    ///
    /// Only deadlines after the last poll count: one that had passed by then was acted
    /// on, or is waiting for something only an input brings (a free in-flight slot, a
    /// leader, a producer id). Returning it would make the caller poll in a busy loop
    /// until that input arrives.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let after = self.last_poll;
        let mut consider = |t: Instant| {
            if after.is_none_or(|p| t > p) {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        if !self.topics.is_empty() && !self.metadata_in_flight {
            let due = if self.metadata_needed {
                self.metadata_retry_at
            } else {
                self.metadata_refreshed_at
                    .map(|t| t + self.cfg.metadata_max_age)
                    .map(|t| self.metadata_retry_at.map_or(t, |r| r.max(t)))
            };
            if let Some(t) = due {
                consider(t);
            }
        }
        if self.pid_state == PidState::Needed {
            if let Some(t) = self.pid_retry_at {
                consider(t);
            }
        }
        if let Some(t) = self.txn.as_ref().and_then(|t| t.machine.next_wakeup()) {
            consider(t);
        }
        let park_limit = self.cfg.max_block.min(self.cfg.delivery_timeout);
        for t in &self.topics {
            if let Some(pk) = t.parked.front() {
                consider(pk.since + park_limit);
            }
            for p in &t.partitions {
                if let Some(r) = p.retry_at {
                    consider(r);
                }
                if let Some(front) = p.batches.front() {
                    consider(front.created + self.cfg.delivery_timeout);
                }
                if let Some(b) = p.batches.iter().find(|b| b.state == BatchState::Ready) {
                    if let Payload::Open(_) = b.payload {
                        consider(b.created + self.cfg.linger);
                    }
                }
            }
        }
        next
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod txn_engine_tests;
