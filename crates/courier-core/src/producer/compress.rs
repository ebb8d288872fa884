//! Compression away from the appending thread: closed batches handed out as
//! [`Action::Compress`] jobs ([`CompressJob`]) and taken back compressed
//! ([`Compressed`], [`ProducerEngine::on_compressed`]).

use std::time::Instant;

use crate::batch::{PreparedBatch, RecordBatchBuilder};
use crate::compression::{Compression, Compressor};

use super::queue::{BatchState, Payload};
use super::types::Action;
use super::ProducerEngine;

/// A closed batch to compress; see [`Action::Compress`].
#[derive(Debug)]
pub struct CompressJob {
    topic: usize,
    partition: usize,
    batch_id: u64,
    builder: RecordBatchBuilder,
    compression: Compression,
}

impl CompressJob {
    /// Compresses the batch. Costly (it is why the job exists); needs no engine state.
    pub fn run(mut self, compressor: &mut Compressor) -> Compressed {
        let prepared = self
            .builder
            .prepare(self.compression, compressor)
            .expect("only non-empty batches are handed out");
        Compressed {
            topic: self.topic,
            partition: self.partition,
            batch_id: self.batch_id,
            prepared,
            builder: self.builder,
        }
    }
}

/// A batch compressed by [`CompressJob::run`], for [`ProducerEngine::on_compressed`].
#[derive(Debug)]
pub struct Compressed {
    topic: usize,
    partition: usize,
    batch_id: u64,
    prepared: PreparedBatch,
    /// The emptied builder, for the next batch.
    builder: RecordBatchBuilder,
}

impl<T> ProducerEngine<T> {
    /// Hands closed batches out for compression (see
    /// [`EngineConfig::compress_elsewhere_from`]), oldest first, whether or not they can be
    /// sent yet: a batch waiting for a window slot is compressed by the time it gets one.
    pub(super) fn compress_elsewhere(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        let Some(min) = self
            .cfg
            .compress_elsewhere_from
            .filter(|_| self.compress_elsewhere)
        else {
            return;
        };
        let compression = self.cfg.compression;
        if compression == Compression::None {
            return;
        }
        for ti in 0..self.topics.len() {
            for pi in 0..self.topics[ti].partitions.len() {
                // Batches not yet handed out sit at the back of the queue, after those
                // that were (handed out in order): look at the open run at the back only.
                let batches = &self.topics[ti].partitions[pi].batches;
                let open = batches
                    .iter()
                    .rev()
                    .take_while(|b| {
                        b.state == BatchState::Ready && matches!(b.payload, Payload::Open(_))
                    })
                    .count();
                let first = batches.len() - open;
                for idx in first..batches.len() {
                    let b = &self.topics[ti].partitions[pi].batches[idx];
                    let size = b.size();
                    if !self.batch_ready(b, now) {
                        // Younger batches are not ready either.
                        break;
                    }
                    if size < min {
                        // Small batches are compressed inline when sent (cheap; no hop).
                        continue;
                    }
                    let b = &mut self.topics[ti].partitions[pi].batches[idx];
                    let Payload::Open(builder) =
                        std::mem::replace(&mut b.payload, Payload::Compressing { size })
                    else {
                        unreachable!("only open batches are looked at")
                    };
                    b.closed = true;
                    out.push(Action::Compress(CompressJob {
                        topic: ti,
                        partition: pi,
                        batch_id: b.id,
                        builder,
                        compression,
                    }));
                }
            }
        }
    }

    /// Takes back a batch compressed elsewhere ([`Action::Compress`]). A batch that ended
    /// meanwhile (expired, failed) is dropped.
    pub fn on_compressed(&mut self, c: Compressed) {
        let Compressed {
            topic,
            partition,
            batch_id,
            prepared,
            builder,
        } = c;
        Self::keep_spare(
            &mut self.spare,
            self.spare_max,
            self.cfg.batch_size,
            builder,
        );
        let batch = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition))
            .and_then(|p| p.batches.iter_mut().find(|b| b.id == batch_id));
        if let Some(b) = batch {
            if matches!(b.payload, Payload::Compressing { .. }) {
                self.records_hint = (prepared.record_count() as usize).min(4096);
                b.payload = Payload::Prepared(prepared);
            }
        }
    }
}
