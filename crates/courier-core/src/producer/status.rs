//! What the engine tells its driver (configuration, leaders, producer id, whether it is
//! idle, metrics) and the switches the driver sets (flushing, compression hand-off, a
//! topic's `max.message.bytes`).

use std::time::Instant;

use super::queue::PidState;
#[cfg(doc)]
use super::types::Action;
use super::types::{EngineConfig, Failure};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The failure that stopped the engine for good (a producer id the broker refused),
    /// if one did: every record fails with it from then on.
    pub fn fatal(&self) -> Option<&Failure> {
        self.fatal.as_ref()
    }

    /// The leader the engine sends `topic`'s `partition` to, if it knows one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let t = &self.topics[*self.topic_index.get(topic)?];
        let p = t.partitions.get(usize::try_from(partition).ok()?)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// Producer id and epoch, once known.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        (self.pid_state == PidState::Known).then_some((self.producer_id, self.epoch))
    }

    /// While set, batches are sent without waiting for `linger` (flush and close).
    pub fn set_flushing(&mut self, flushing: bool) {
        self.flushing = flushing;
    }

    /// Turns the hand-out of batches for compression ([`Action::Compress`], with
    /// [`EngineConfig::compress_elsewhere_from`]) on or off from now on; on at the start.
    /// Off, batches are compressed inline when sent. A driver turns it off while its
    /// thread has time to spare: the hand-over then costs more than it saves.
    pub fn set_compress_elsewhere(&mut self, on: bool) {
        self.compress_elsewhere = on;
    }

    /// Whether nothing is queued, parked or in flight.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty()
            && self
                .topics
                .iter()
                .all(|t| t.parked.is_empty() && t.partitions.iter().all(|p| p.batches.is_empty()))
    }

    /// Whether records wait for their topic's metadata (they have no partition yet). A
    /// transactional driver holds a commit back until they have one: Java's `send` blocks
    /// for the metadata, so a record sent before `commitTransaction()` is always in the
    /// transaction, whereas here one still waiting when the commit begins fails it
    /// (see [`Self::commit_transaction`]).
    pub fn records_awaiting_metadata(&self) -> bool {
        self.topics.iter().any(|t| !t.parked.is_empty())
    }

    /// Number of Produce requests in flight.
    pub fn requests_in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// How many times a batch was scheduled for another attempt since the start.
    pub fn retries_total(&self) -> u64 {
        self.retries_total
    }

    /// Records in the batches scheduled for another attempt, one per record and attempt.
    pub fn records_retried_total(&self) -> u64 {
        self.records_retried_total
    }

    /// Caps `topic`'s batches at `max_message_bytes`, the topic's `max.message.bytes`
    /// (as DescribeConfigs reports it, the broker's default when the topic has none):
    /// the broker refuses a larger batch whole, so batches close before they reach it,
    /// whatever `batch.size` says. Sizes are counted uncompressed, which compression
    /// only shrinks (a batch it would grow is sent uncompressed). Open batches keep their
    /// size; one that still comes out too large is split when the broker refuses it, and
    /// a single record above the limit fails.
    pub fn set_max_message_bytes(&mut self, topic: &str, max_message_bytes: usize) {
        if let Some(&ti) = self.topic_index.get(topic) {
            self.topics[ti].max_batch = Some(max_message_bytes);
        }
    }

    /// Batches split in two after the broker refused them as too large.
    pub fn batches_split(&self) -> u64 {
        self.batches_split
    }

    /// The bytes of the batches sent so far (each once, retries aside): before and after
    /// compression, headers included (for the compression ratio metric).
    pub fn compression_totals(&self) -> (u64, u64) {
        (self.bytes_before_compression, self.bytes_after_compression)
    }

    /// When the oldest batch still held (queued, in flight or waiting for its topic's
    /// metadata) was started: its first record's arrival, within `linger.ms`. `None`
    /// when nothing is held. Walks every partition: call it now and then, not per record.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|p| p.batches.front().map(|b| b.created))
                    .chain(t.parked.front().map(|r| r.since))
            })
            .min()
    }
}
