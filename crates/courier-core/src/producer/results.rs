//! Produce answers: success, retries with backoff, sequence errors (a real gap asks for
//! an epoch bump), batches split after MESSAGE_TOO_LARGE, and failures.

use std::time::{Duration, Instant};

use crate::batch::{ProducerFields, RecordBatchBuilder};
use crate::decode::decode_batch;
use crate::sequence::increment_sequence;

use super::classify::{classify_produce_error, codes, Disposition};
use super::queue::{Batch, BatchState, Payload, BATCH_ID_STEP};
use super::types::{Action, Delivery, FailureReason, PartitionResponse, ProduceResult, Written};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    /// Reports how a Produce request ended.
    pub fn on_produce_result(&mut self, request_id: u64, result: ProduceResult, now: Instant) {
        let Some(req) = self.inflight.remove(&request_id) else {
            // Not ours, or already settled: a stale answer is ignored.
            return;
        };
        if let Some(n) = self.broker_inflight.get_mut(&req.broker) {
            *n = n.saturating_sub(1);
        }
        for (ti, partition, batch_id) in req.batches {
            let pi = partition as usize;
            let Some(idx) = self.topics[ti].partitions[pi]
                .batches
                .iter()
                .position(|b| b.id == batch_id)
            else {
                continue;
            };
            self.topics[ti].partitions[pi].inflight -= 1;
            match &result {
                ProduceResult::WrittenNoAck => self.succeed(ti, pi, idx, -1, -1),
                ProduceResult::Transport { maybe_written } => {
                    self.metadata_needed = true;
                    self.retry(ti, pi, idx, *maybe_written, None, None, now);
                }
                ProduceResult::Response(parts) => {
                    let name = self.topics[ti].name.clone();
                    let Some(r) = parts
                        .iter()
                        .find(|r| r.partition == partition && *r.topic == *name)
                    else {
                        // The broker left our partition out of its answer: treat it as
                        // an unknown outcome and retry with the same sequence.
                        self.retry(ti, pi, idx, true, None, None, now);
                        continue;
                    };
                    self.on_partition_response(ti, pi, idx, r, now);
                }
            }
        }
    }

    fn on_partition_response(
        &mut self,
        ti: usize,
        pi: usize,
        idx: usize,
        r: &PartitionResponse,
        now: Instant,
    ) {
        match classify_produce_error(r.error_code) {
            Disposition::Success => {
                let offset =
                    if r.error_code == codes::DUPLICATE_SEQUENCE_NUMBER && r.base_offset < 0 {
                        -1
                    } else {
                        r.base_offset
                    };
                self.succeed(ti, pi, idx, offset, r.log_append_time)
            }
            Disposition::Retry {
                possibly_written,
                refresh_metadata,
            } => {
                if refresh_metadata {
                    self.metadata_needed = true;
                }
                self.retry(
                    ti,
                    pi,
                    idx,
                    possibly_written,
                    Some(r.error_code),
                    r.error_message.clone(),
                    now,
                );
            }
            // A transactional producer cannot bump the epoch itself: at a real gap the
            // batch fails (the arm below), the transaction becomes abortable, and the
            // abort brings the new epoch (KIP-360 through the coordinator). A batch
            // refused only because one ahead of it is unresolved is resent as usual
            // (Java's `TransactionManager.canRetry` makes the same distinction).
            Disposition::SequenceDesync
                if self.cfg.idempotence
                    && !(self.txn.is_some() && self.sequence_gap_at(ti, pi, idx)) =>
            {
                if self.sequence_gap_at(ti, pi, idx) {
                    // The broker lost our state or a batch before this one failed:
                    // a real gap. KIP-360: bump the partition's epoch and restart its
                    // sequence.
                    self.topics[ti].partitions[pi].bump_required = true;
                }
                // Rejected, so not written by this attempt; resend once the batches
                // ahead (or the bump) are settled.
                self.retry(
                    ti,
                    pi,
                    idx,
                    false,
                    Some(r.error_code),
                    r.error_message.clone(),
                    now,
                );
            }
            Disposition::TooLarge if self.split_refused(ti, pi, idx, now) => {}
            Disposition::SequenceDesync | Disposition::Fail { .. } | Disposition::TooLarge => {
                let mut b = self.topics[ti].partitions[pi]
                    .batches
                    .remove(idx)
                    .expect("index valid");
                if let Disposition::Fail {
                    possibly_written: true,
                } = classify_produce_error(r.error_code)
                {
                    b.maybe_written = true;
                }
                self.topics[ti].partitions[pi].gap(&b);
                self.finish_failed(
                    ti,
                    pi as i32,
                    b,
                    FailureReason::Broker {
                        code: r.error_code,
                        message: r.error_message.clone(),
                    },
                );
            }
        }
    }

    /// Whether OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID for the batch at `idx`
    /// is a real gap in the partition's sequence, not a refusal behind an unresolved
    /// batch: it is the batch the broker expects next, or a later batch is acknowledged
    /// while it was refused - the broker took the later one without state for us
    /// (KIP-360 accepts any sequence then), so this one can never follow it. Were it in
    /// the log, it would be among the five latest batches the broker checks and be
    /// answered as a duplicate instead.
    fn sequence_gap_at(&self, ti: usize, pi: usize, idx: usize) -> bool {
        let p = &self.topics[ti].partitions[pi];
        let b = &p.batches[idx];
        let head = b.stamp.is_some_and(|(_, _, seq)| seq == p.acked_next);
        let passed_over = b.id < p.last_acked_batch;
        head || passed_over
    }

    /// Splits a batch the broker refused as too large (MESSAGE_TOO_LARGE,
    /// RECORD_LIST_TOO_LARGE) into two, by record count, in its place in the queue. The
    /// halves carry consecutive sequences from the batch's own, so the sequences of the
    /// partition's later batches stay valid (the Java client's `splitAndReenqueue`,
    /// KIP-126); they are sent before anything behind them, keeping the partition's
    /// order. A half still too large is split again; a single record is not, so the
    /// splitting ends (KAFKA-8350 was a split loop on an estimate; this splits on the
    /// broker's answer and the record count only shrinks).
    ///
    /// False when the batch cannot be split: one record, an attempt that may have been
    /// written (the bytes were the same, but the topic's limit may have changed since),
    /// or no room left between batch ids.
    fn split_refused(&mut self, ti: usize, pi: usize, idx: usize, now: Instant) -> bool {
        let transactional = self.txn.is_some();
        let compression = self.cfg.compression;
        let idempotent = self.cfg.idempotence;
        let p = &mut self.topics[ti].partitions[pi];
        let b = &p.batches[idx];
        if b.records.len() < 2 || b.maybe_written {
            return false;
        }
        let Payload::Sealed(sealed) = &b.payload else {
            return false;
        };
        let Ok((decoded, _)) = decode_batch(sealed.bytes()) else {
            return false;
        };
        if decoded.records.len() != b.records.len() {
            return false;
        }
        let next_id = p
            .batches
            .get(idx + 1)
            .map_or(b.id + BATCH_ID_STEP, |n| n.id);
        let second_id = b.id + (next_id - b.id) / 2;
        if second_id == b.id {
            return false;
        }
        let half = decoded.records.len().div_ceil(2);
        let mut builders = [
            RecordBatchBuilder::with_capacity(sealed.len()),
            RecordBatchBuilder::with_capacity(sealed.len()),
        ];
        for b in &mut builders {
            b.set_transactional(transactional);
        }
        for (i, r) in decoded.records.iter().enumerate() {
            let mut headers = Vec::with_capacity(r.headers.len());
            for h in &r.headers {
                // Our own batches: header names were `String`s.
                let Ok(name) = std::str::from_utf8(&h.name) else {
                    return false;
                };
                headers.push((name, h.value.as_deref()));
            }
            let builder = &mut builders[usize::from(i >= half)];
            if builder
                .append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
                .is_err()
            {
                return false;
            }
        }
        let stamp = b.stamp;
        let mut fields = [ProducerFields::NONE, ProducerFields::NONE];
        let mut stamps = [None, None];
        if let (true, Some((pid, epoch, seq))) = (idempotent, stamp) {
            let second_seq = increment_sequence(seq, half as i32);
            fields = [
                ProducerFields::idempotent(pid, epoch, seq),
                ProducerFields::idempotent(pid, epoch, second_seq),
            ];
            stamps = [Some((pid, epoch, seq)), Some((pid, epoch, second_seq))];
        }
        let mut payloads = Vec::with_capacity(2);
        for (builder, f) in builders.iter_mut().zip(fields) {
            match builder.seal(f, compression, &mut self.compressor) {
                Ok(s) => payloads.push(s),
                Err(_) => return false,
            }
        }
        let mut original = p.batches.remove(idx).expect("index valid");
        let rest = original.records.split_off(half);
        let mut halves = Vec::with_capacity(2);
        for (((id, records), payload), stamp) in [original.id, second_id]
            .into_iter()
            .zip([std::mem::take(&mut original.records), rest])
            .zip(payloads)
            .zip(stamps)
        {
            halves.push(Batch {
                id,
                payload: Payload::Sealed(payload),
                records,
                // The delivery timeout counts from the records' arrival, as before.
                created: original.created,
                state: BatchState::Ready,
                // Sent before: never taken for a batch that was not (see
                // `expire_unsent_behind_resolution`).
                attempts: original.attempts,
                maybe_written: false,
                resolving: false,
                closed: true,
                stamp,
                last_error: original.last_error,
                last_message: original.last_message.clone(),
            });
        }
        for (k, h) in halves.into_iter().enumerate() {
            p.batches.insert(idx + k, h);
        }
        // Later batches in flight are refused out of order until the halves land; send
        // nothing until they have answered, then resend from the oldest (the halves).
        p.blocked = true;
        p.retry_at = Some(now);
        self.batches_split += 1;
        true
    }

    fn succeed(
        &mut self,
        ti: usize,
        pi: usize,
        idx: usize,
        base_offset: i64,
        log_append_time: i64,
    ) {
        let p = &mut self.topics[ti].partitions[pi];
        let (pid, epoch) = (self.producer_id, p.epoch.unwrap_or(self.epoch));
        let b = p.batches.remove(idx).expect("index valid");
        if let Some((stamp_pid, stamp_epoch, seq)) = b.stamp {
            if (stamp_pid, stamp_epoch) == (pid, epoch) {
                p.confirmed = true;
                // Only the latest acknowledged batch says what the broker expects
                // next; an earlier one acknowledged late (a retry answered as a
                // duplicate) must not move `acked_next` back, or the next batch's
                // OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID would not be seen
                // as the head-of-line gap it is, and no epoch bump would fix it.
                if b.id > p.last_acked_batch {
                    p.last_acked_batch = b.id;
                    if let Payload::Sealed(s) = &b.payload {
                        p.acked_next = increment_sequence(seq, s.record_count());
                    }
                }
            }
        }
        let partition = pi as i32;
        if self.topics[ti].sticky.current() == Some(partition) {
            self.topics[ti].sticky.batch_completed(partition);
        }
        if let Payload::Sealed(sealed) = b.payload {
            // An uncompressed seal handed its work area to the batch: give it back to
            // a builder that lost it, if the connection has let go of the bytes (and
            // it is not the outsized buffer of a record larger than a batch).
            if sealed.len() <= 2 * self.cfg.batch_size.max(1024) {
                if let Some(builder) = self.spare.last_mut() {
                    builder.recycle(sealed.into_bytes());
                }
            }
        }
        self.deliveries.push(Action::Deliver(Delivery {
            topic: self.topics[ti].name.clone(),
            partition,
            records: b.records,
            result: Ok(Written {
                base_offset,
                log_append_time,
            }),
            resolved: b.resolving,
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn retry(
        &mut self,
        ti: usize,
        pi: usize,
        idx: usize,
        maybe_written: bool,
        code: Option<i16>,
        message: Option<String>,
        now: Instant,
    ) {
        let retries = self.cfg.retries;
        let timeout = self.cfg.delivery_timeout;
        let resolution = self.resolution_timeout();
        self.retries_total += 1;
        self.records_retried_total +=
            self.topics[ti].partitions[pi].batches[idx].records.len() as u64;
        let attempts = self.topics[ti].partitions[pi].batches[idx].attempts;
        let backoff = self.backoff(attempts);
        let p = &mut self.topics[ti].partitions[pi];
        let b = &mut p.batches[idx];
        b.maybe_written |= maybe_written;
        b.state = BatchState::Ready;
        if code.is_some() {
            b.last_error = code;
            b.last_message = message;
        }
        p.blocked = true;
        p.retry_at = Some(now + backoff);
        let out_of_retries = b.attempts > retries;
        let age = now.duration_since(b.created);
        let expired = age >= timeout;
        // A batch that may be in the log is resent with its sequence past the delivery
        // timeout, until an answer settles it or the resolution runs out: the broker
        // writes it at most once, so the resend can only turn "possibly" into "yes".
        let resolvable = b.stamp.is_some() && b.maybe_written && !resolution.is_zero();
        if expired && !out_of_retries && resolvable && age < timeout + resolution {
            if idx == 0 {
                b.resolving = true;
            }
            return;
        }
        if (out_of_retries || expired) && idx == 0 {
            let mut b = p.batches.remove(idx).expect("index valid");
            p.gap(&b);
            let reason = if expired && resolvable && !out_of_retries {
                b.resolving = true;
                FailureReason::Unresolved {
                    last_error: b.last_error,
                }
            } else if expired {
                FailureReason::DeliveryTimeout {
                    last_error: b.last_error,
                }
            } else {
                FailureReason::Broker {
                    code: b.last_error.unwrap_or(codes::NETWORK_EXCEPTION),
                    message: b.last_message.clone(),
                }
            };
            self.finish_failed(ti, pi as i32, b, reason);
        }
    }

    pub(super) fn backoff(&mut self, attempts: u32) -> Duration {
        let base = self.cfg.retry_backoff.as_millis() as u64;
        let max = self.cfg.retry_backoff_max.as_millis().max(1) as u64;
        let exp = base
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(20))
            .min(max);
        // ±20% jitter, as the Java client (KIP-580) does, so producers that failed
        // together do not retry in lockstep.
        let jitter = (self.rng.next_u64() % 41) as i64 - 20;
        let ms = (exp as i64 + exp as i64 * jitter / 100).max(0) as u64;
        Duration::from_millis(ms)
    }
}
