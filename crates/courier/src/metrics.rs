//! Delivery metrics a service can export: counters kept by the producer as records
//! move through it, read with [`crate::Producer::metrics`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::net::NetCounters;

/// A point-in-time copy of the producer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryMetrics {
    /// Records accepted by `send`/`produce` (queued for delivery).
    pub sent: u64,
    /// Records acknowledged by the broker (or written, with `acks=0`).
    pub delivered: u64,
    /// Records that failed; each has its delivery report.
    pub failed: u64,
    /// Failed records by error name (`NOT_ENOUGH_REPLICAS`, `DELIVERY_TIMEOUT`, ...:
    /// [`ProducerError::name`](crate::ProducerError::name)).
    pub failed_by_error: BTreeMap<String, u64>,
    /// Batches scheduled for another attempt.
    pub retries: u64,
    /// Batches split in two after the broker refused them as larger than the topic
    /// allows (MESSAGE_TOO_LARGE); a single record that is too large fails instead.
    pub batches_split: u64,
    /// Producer epoch bumps after sequence gaps (KIP-360), one per partition bumped.
    pub epoch_bumps: u64,
    /// Records that outlived `delivery.timeout.ms` while they may have been in the log,
    /// resolved by resending them with their original sequence: delivered, with their
    /// offset (also counted in `delivered`).
    pub resolved_persisted: u64,
    /// Records still possibly persisted when `delivery.resolution.timeout.ms` ran out
    /// (also counted in `failed`, as `UNRESOLVED` or `UNRESOLVED_AFTER_EPOCH_BUMP`).
    pub unresolved: u64,
    /// Failed records written to the dead letter queue.
    pub dead_lettered: u64,
    /// Failed records the dead letter queue could not take either.
    pub dead_letter_failures: u64,
    /// Produce requests in flight now.
    pub requests_in_flight: u64,
    /// Bytes of `buffer.memory` held by records not yet delivered.
    pub queued_bytes: u64,
    /// Batches compressed on the producer's compression thread (`courier-compress`),
    /// which takes full batches while the producer is busy; the others are compressed
    /// when sent.
    pub batches_compressed_elsewhere: u64,
    /// Broker connections opened.
    pub connections_opened: u64,
    /// Broker connection attempts that failed (refused, unreachable, timed out, refused
    /// handshake).
    pub connect_failures: u64,
    /// Connections closed after `connections.max.idle.ms` without requests.
    pub connections_closed_idle: u64,
    /// Connections the broker closed or that broke with a socket error.
    pub connections_closed_by_peer: u64,
    /// Connections closed because a request got no response within `request.timeout.ms`.
    pub connections_closed_timeout: u64,
    /// Connections closed because the broker's replies broke the protocol.
    pub protocol_errors: u64,
    /// SASL sessions re-authenticated in place before they expired (KIP-368).
    pub reauthentications: u64,
}

impl DeliveryMetrics {
    /// Delivered over delivered plus failed; 1.0 before anything completed.
    pub fn success_rate(&self) -> f64 {
        let done = self.delivered + self.failed;
        if done == 0 {
            1.0
        } else {
            self.delivered as f64 / done as f64
        }
    }

    /// Records accepted but not yet reported either way.
    pub fn pending(&self) -> u64 {
        self.sent.saturating_sub(self.delivered + self.failed)
    }
}

/// An atomic counter alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Padded(pub(crate) AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// The live counters, shared by the producer handles and its driver.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Bumped by the application's threads for every record; kept off the cache line
    /// of the counters the driver writes, which would otherwise bounce between the
    /// cores once per record.
    pub(crate) sent: Padded,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) failed_by_error: Mutex<BTreeMap<String, u64>>,
    pub(crate) retries: AtomicU64,
    pub(crate) batches_split: AtomicU64,
    pub(crate) epoch_bumps: AtomicU64,
    pub(crate) resolved_persisted: AtomicU64,
    pub(crate) unresolved: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dead_letter_failures: AtomicU64,
    pub(crate) requests_in_flight: AtomicU64,
    pub(crate) batches_compressed_elsewhere: AtomicU64,
}

impl Counters {
    pub(crate) fn add_failed(&self, error: &str, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        *self
            .failed_by_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(error.to_string())
            .or_default() += n;
    }

    pub(crate) fn snapshot(&self, queued_bytes: u64, net: &NetCounters) -> DeliveryMetrics {
        DeliveryMetrics {
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failed_by_error: self
                .failed_by_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            retries: self.retries.load(Ordering::Relaxed),
            batches_split: self.batches_split.load(Ordering::Relaxed),
            epoch_bumps: self.epoch_bumps.load(Ordering::Relaxed),
            resolved_persisted: self.resolved_persisted.load(Ordering::Relaxed),
            unresolved: self.unresolved.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dead_letter_failures: self.dead_letter_failures.load(Ordering::Relaxed),
            requests_in_flight: self.requests_in_flight.load(Ordering::Relaxed),
            queued_bytes,
            batches_compressed_elsewhere: self.batches_compressed_elsewhere.load(Ordering::Relaxed),
            connections_opened: net.opened.load(Ordering::Relaxed),
            connect_failures: net.connect_failures.load(Ordering::Relaxed),
            connections_closed_idle: net.closed_idle.load(Ordering::Relaxed),
            connections_closed_by_peer: net.closed_by_peer.load(Ordering::Relaxed),
            connections_closed_timeout: net.closed_timeout.load(Ordering::Relaxed),
            protocol_errors: net.protocol_errors.load(Ordering::Relaxed),
            reauthentications: net.reauthentications.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rate_and_pending() {
        let c = Counters::default();
        assert_eq!(c.snapshot(0, &NetCounters::default()).success_rate(), 1.0);
        c.sent.fetch_add(10, Ordering::Relaxed);
        c.delivered.fetch_add(6, Ordering::Relaxed);
        c.add_failed("NOT_ENOUGH_REPLICAS", 2);
        let m = c.snapshot(100, &NetCounters::default());
        assert_eq!(m.success_rate(), 0.75);
        assert_eq!(m.pending(), 2);
        assert_eq!(m.failed_by_error["NOT_ENOUGH_REPLICAS"], 2);
        assert_eq!(m.queued_bytes, 100);
    }
}
