//! Records out: which batches are ready (`batch_ready`), the Produce requests built from
//! them per leader within the in-flight window (`drain`), and the sealing or re-stamping
//! of a batch with its producer id, epoch and sequence as it goes (`stamp`).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;

use crate::batch::{ProducerFields, RecordBatchBuilder};
use crate::sequence::increment_sequence;

use super::queue::{Batch, BatchState, InFlight, Payload, PidState};
use super::types::{Action, ProduceRequest};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    pub(super) fn batch_ready(&self, b: &Batch<T>, now: Instant) -> bool {
        match &b.payload {
            Payload::Sealed(_) | Payload::Prepared(_) => true,
            Payload::Compressing { .. } => false,
            Payload::Open(builder) => {
                !builder.is_empty()
                    && (b.closed
                        || self.flushing
                        || self.txn_committing()
                        || now.duration_since(b.created) >= self.cfg.linger
                        || builder.size_in_bytes() >= self.cfg.batch_size)
            }
        }
    }

    pub(super) fn drain(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        if self.cfg.idempotence && (self.pid_state != PidState::Known || self.new_pid_required) {
            return;
        }
        // Group ready partitions by leader.
        let mut by_broker: HashMap<i32, Vec<(usize, usize)>> = HashMap::new();
        let inflight = &self.inflight;
        let txn = self.txn.as_deref();
        for (ti, t) in self.topics.iter_mut().enumerate() {
            for (pi, p) in t.partitions.iter_mut().enumerate() {
                if p.blocked && p.inflight == 0 {
                    p.blocked = false;
                }
                if let Some(txn) = txn {
                    // Version 1: the partition's batches wait until AddPartitionsToTxn
                    // has put it in the transaction (KIP-98); a batch the coordinator
                    // does not expect would be refused or, on older brokers, open a
                    // transaction no EndTxn closes.
                    if p.txn_cleared != txn.generation {
                        if !txn.machine.may_send(&t.name, pi as i32) {
                            continue;
                        }
                        p.txn_cleared = txn.generation;
                    }
                }
                if p.leader < 0
                    || p.blocked
                    || p.bump_required
                    || p.retry_at.is_some_and(|r| now < r)
                {
                    continue;
                }
                // The leader moved while batches were in flight to the old one: let
                // them answer first. The new leader may hold no producer state for us
                // (see below), and a later batch written there first would overtake
                // them.
                // In-flight batches sit at the front of the queue (batches go out in
                // order), so stop after the last of them: the queue behind can be long.
                if p.inflight > 0
                    && p.batches
                        .iter()
                        .filter_map(|b| match b.state {
                            BatchState::InFlight(id) => Some(id),
                            BatchState::Ready => None,
                        })
                        .take(p.inflight)
                        .any(|id| inflight.get(&id).is_some_and(|r| r.broker != p.leader))
                {
                    continue;
                }
                if p.batches.iter().any(|b| b.state == BatchState::Ready) {
                    by_broker.entry(p.leader).or_default().push((ti, pi));
                }
            }
        }
        let mut brokers: Vec<i32> = by_broker.keys().copied().collect();
        brokers.sort_unstable();
        for broker in brokers {
            let parts = &by_broker[&broker];
            loop {
                let used = self.broker_inflight.get(&broker).copied().unwrap_or(0);
                if used >= self.cfg.max_in_flight {
                    break;
                }
                let request_id = self.next_request_id;
                let mut batches = Vec::new();
                let mut members = Vec::new();
                let mut size = 0usize;
                for &(ti, pi) in parts {
                    let p = &self.topics[ti].partitions[pi];
                    // A broker with no state for our producer id on this partition
                    // (a new producer id or epoch here, or state removed by retention
                    // or producer.id.expiration.ms) accepts *any* sequence since Kafka
                    // 2.5 (KIP-360; `ProducerAppendInfo.checkSequence`). Pipelined, a
                    // second batch could then be written while the first is refused
                    // (NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER...) and the first
                    // could never follow it: reordered, or stranded. So one batch at a
                    // time until the broker has acknowledged one under this epoch, as
                    // franz-go does. Found by `courier-core/tests/simulation.rs`.
                    if self.cfg.idempotence && p.inflight > 0 && !p.confirmed {
                        continue;
                    }
                    let Some(idx) = self.topics[ti].partitions[pi]
                        .batches
                        .iter()
                        .position(|b| b.state == BatchState::Ready)
                    else {
                        continue;
                    };
                    if !self.batch_ready(&self.topics[ti].partitions[pi].batches[idx], now) {
                        continue;
                    }
                    let bsize = self.topics[ti].partitions[pi].batches[idx].size();
                    if !batches.is_empty() && size + bsize > self.cfg.max_request_size {
                        continue;
                    }
                    let (bytes, batch_id) = self.stamp(ti, pi, idx, request_id);
                    size += bytes.len();
                    batches.push((self.topics[ti].name.clone(), pi as i32, bytes));
                    members.push((ti, pi as i32, batch_id));
                }
                if batches.is_empty() {
                    break;
                }
                if let Some(t) = &mut self.txn {
                    // Version 2: this Produce adds the partitions to the transaction at
                    // the coordinator (KIP-890), so ending it takes an EndTxn from now.
                    t.machine.on_batch_sent();
                }
                self.next_request_id += 1;
                *self.broker_inflight.entry(broker).or_default() += 1;
                self.inflight.insert(
                    request_id,
                    InFlight {
                        broker,
                        batches: members,
                    },
                );
                out.push(Action::Produce(ProduceRequest {
                    id: request_id,
                    broker,
                    acks: self.cfg.acks,
                    timeout_ms: self.cfg.request_timeout.as_millis().min(i32::MAX as u128) as i32,
                    batches,
                }));
            }
        }
    }

    /// Seals (first send) or re-stamps (after an epoch bump) a batch and marks it in
    /// flight. Returns the bytes to send.
    fn stamp(&mut self, ti: usize, pi: usize, idx: usize, request_id: u64) -> (Bytes, u64) {
        let idempotent = self.cfg.idempotence;
        let compression = self.cfg.compression;
        let p = &mut self.topics[ti].partitions[pi];
        let (pid, epoch) = (self.producer_id, p.epoch.unwrap_or(self.epoch));
        if idempotent {
            p.epoch = Some(epoch);
        }
        let batch = &mut p.batches[idx];
        let current = |stamp: Option<(i64, i16, i32)>| {
            stamp.is_some_and(|(sp, se, _)| sp == pid && se == epoch)
        };
        // A batch is stamped with the current producer id and epoch at its first send,
        // and again if an epoch bump came between its attempts.
        let restamp = idempotent && !current(batch.stamp);
        let seq = p.next_sequence;
        let fields = if restamp {
            ProducerFields::idempotent(pid, epoch, seq)
        } else {
            ProducerFields::NONE
        };
        match std::mem::replace(
            &mut batch.payload,
            Payload::Open(RecordBatchBuilder::with_capacity(0)),
        ) {
            Payload::Open(mut b) => {
                let sealed = b
                    .seal(fields, compression, &mut self.compressor)
                    .expect("a non-empty builder seals");
                Self::keep_spare(&mut self.spare, self.spare_max, self.cfg.batch_size, b);
                self.records_hint = (sealed.record_count() as usize).min(4096);
                batch.payload = Payload::Sealed(sealed);
            }
            Payload::Prepared(p) => batch.payload = Payload::Sealed(p.seal(fields)),
            Payload::Sealed(s) if restamp => {
                batch.payload = Payload::Sealed(s.with_producer_fields(fields));
            }
            Payload::Compressing { .. } => unreachable!("a compressing batch is not ready"),
            sealed => batch.payload = sealed,
        }
        if restamp {
            let Payload::Sealed(s) = &batch.payload else {
                unreachable!("sealed above")
            };
            p.next_sequence = increment_sequence(seq, s.record_count());
            batch.stamp = Some((pid, epoch, seq));
        }
        batch.closed = true;
        batch.state = BatchState::InFlight(request_id);
        batch.attempts += 1;
        p.inflight += 1;
        let Payload::Sealed(s) = &batch.payload else {
            unreachable!("sealed above")
        };
        if batch.attempts == 1 {
            self.bytes_before_compression += s.uncompressed_size() as u64;
            self.bytes_after_compression += s.len() as u64;
        }
        (s.bytes().clone(), batch.id)
    }
}
