//! Delivery metrics a service can export: counters kept by the producer as records
//! move through it, read with [`crate::Producer::metrics`], and written in the
//! Prometheus text format by [`DeliveryMetrics::to_prometheus`] (issue 18).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::Persistence;
use crate::net::NetCounters;

#[cfg(feature = "metrics")]
pub mod facade;
#[cfg(feature = "opentelemetry")]
pub mod otel;

/// Upper bounds, in milliseconds, of the delivery latency histogram's buckets (a last
/// bucket, `+Inf`, takes the rest). From 1 ms, the clock's resolution here, to
/// `delivery.timeout.ms`'s default of 2 minutes.
pub const LATENCY_BUCKETS_MS: [u64; 16] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000,
];

/// Upper bounds, in bytes, of the batch size histogram's buckets (a last bucket, `+Inf`,
/// takes the rest): from a single small record to `max.request.size`'s default.
pub const BATCH_SIZE_BUCKETS: [u64; 10] = [
    256, 1_024, 4_096, 16_384, 32_768, 65_536, 131_072, 262_144, 524_288, 1_048_576,
];

/// One broker as the producer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerMetrics {
    /// The broker's node id.
    pub node_id: i32,
    /// Whether the producer has an open connection to it.
    pub connected: bool,
    /// Requests sent to it and not yet answered.
    pub in_flight: u64,
}

/// Delivery latency, from the call that queued a record to its acknowledgement, of the
/// records delivered so far, with millisecond resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Records per bucket, not cumulative: `buckets[i]` counts latencies above
    /// `LATENCY_BUCKETS_MS[i - 1]` and at most `LATENCY_BUCKETS_MS[i]`; the last entry
    /// counts those above every bound.
    pub buckets: Vec<u64>,
    /// The latencies added up, in milliseconds.
    pub sum_ms: u64,
    /// Records counted (the acknowledged ones).
    pub count: u64,
}

/// A failure's persistence as a metric label.
pub(crate) fn persistence_label(p: Persistence) -> &'static str {
    match p {
        Persistence::Persisted => "persisted",
        Persistence::PossiblyPersisted => "possibly_persisted",
        Persistence::NotPersisted => "not_persisted",
    }
}

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
    /// Failed records by error name and persistence (`persisted`, `possibly_persisted`,
    /// `not_persisted`):
    /// whether they may be in the log after all.
    pub failed_by_error_and_persistence: BTreeMap<(String, &'static str), u64>,
    /// Batches scheduled for another attempt.
    pub retries: u64,
    /// Records in the batches scheduled for another attempt (one per record and attempt).
    pub records_retried: u64,
    /// Delivery latency of the acknowledged records.
    pub delivery_latency: LatencyHistogram,
    /// The producer stopped on a fatal error: it takes no more records.
    pub fatal: bool,
    /// Sizes of the record batches sent (retries included): per bucket of
    /// [`BATCH_SIZE_BUCKETS`] and `+Inf`, not cumulative.
    pub batch_size_buckets: Vec<u64>,
    /// The bytes of those batches, added up.
    pub batch_size_sum: u64,
    /// Batches sent.
    pub batches_sent: u64,
    /// The brokers the producer knows, by node id.
    pub brokers: Vec<BrokerMetrics>,
    /// Bytes of the batches sent (each once), before compression, headers included.
    pub bytes_before_compression: u64,
    /// The same batches' bytes as sent.
    pub bytes_after_compression: u64,
    /// How long the oldest record still held has waited, in milliseconds (from its
    /// batch's start; refreshed ten times a second); 0 when nothing is held.
    pub oldest_pending_ms: u64,
    /// Per broker, the latency of Produce requests: from writing one to its answer.
    pub request_latency: BTreeMap<i32, LatencyHistogram>,
    /// Per topic written to, the durability audit's last verdict (see [`crate::audit`]):
    /// true when replication, `min.insync.replicas` and `acks` agree.
    pub topic_durability_aligned: BTreeMap<String, bool>,
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

    /// Every counter and gauge as a [`Sample`], in the order of [`FAMILIES`]: what
    /// [`to_prometheus`](Self::to_prometheus), the `metrics` facade and OpenTelemetry
    /// export (the histograms come on top, from their own fields).
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(FAMILIES.len() + 8);
        let mut one = |family: usize, value: u64| {
            out.push(Sample {
                family,
                labels: Vec::new(),
                value,
            })
        };
        one(0, self.sent);
        one(1, self.delivered);
        // family 2 (failed) is labelled: pushed below.
        one(3, self.records_retried);
        one(4, self.retries);
        one(5, self.batches_split);
        one(6, self.epoch_bumps);
        one(7, self.resolved_persisted);
        one(8, self.unresolved);
        one(9, self.dead_lettered);
        one(10, self.dead_letter_failures);
        one(11, self.pending());
        one(12, self.queued_bytes);
        one(14, u64::from(self.fatal));
        one(16, self.connections_opened);
        one(17, self.connect_failures);
        one(19, self.reauthentications);
        for ((error, persistence), n) in &self.failed_by_error_and_persistence {
            out.push(Sample {
                family: 2,
                labels: vec![
                    ("error", error.clone()),
                    ("persistence", persistence.to_string()),
                ],
                value: *n,
            });
        }
        for b in &self.brokers {
            let broker = vec![("broker", b.node_id.to_string())];
            out.push(Sample {
                family: 15,
                labels: broker.clone(),
                value: u64::from(b.connected),
            });
            out.push(Sample {
                family: 13,
                labels: broker,
                value: b.in_flight,
            });
        }
        for (reason, n) in [
            ("idle", self.connections_closed_idle),
            ("peer", self.connections_closed_by_peer),
            ("timeout", self.connections_closed_timeout),
            ("protocol_error", self.protocol_errors),
        ] {
            out.push(Sample {
                family: 18,
                labels: vec![("reason", reason.to_string())],
                value: n,
            });
        }
        for (topic, aligned) in &self.topic_durability_aligned {
            out.push(Sample {
                family: 20,
                labels: vec![("topic", topic.clone())],
                value: u64::from(*aligned),
            });
        }
        out.sort_by_key(|s| s.family);
        out
    }

    /// The gauges whose values are not whole numbers: the oldest queued record's age in
    /// seconds, and the compression ratio of the batches sent (bytes before over bytes
    /// after; 1 before any batch went).
    pub fn float_gauges(&self) -> [(&'static str, &'static str, f64); 2] {
        let ratio = if self.bytes_after_compression == 0 {
            1.0
        } else {
            self.bytes_before_compression as f64 / self.bytes_after_compression as f64
        };
        [
            (
                "courier_oldest_queued_record_age_seconds",
                "How long the oldest record not yet reported has waited (0 when none).",
                self.oldest_pending_ms as f64 / 1000.0,
            ),
            (
                "courier_compression_ratio",
                "Bytes of the batches sent before compression over their bytes as sent.",
                ratio,
            ),
        ]
    }

    /// These metrics in the Prometheus text exposition format (version 0.0.4), for a
    /// `/metrics` endpoint or a node_exporter textfile. Names follow Prometheus'
    /// conventions: a `courier_` prefix, base units (seconds, bytes), `_total` on
    /// counters. `docs/METRICS.md` describes each.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let samples = self.samples();
        for (i, f) in FAMILIES.iter().enumerate() {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for s in samples.iter().filter(|s| s.family == i) {
                let _ = write!(out, "{}", f.name);
                if !s.labels.is_empty() {
                    let labels: Vec<String> = s
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", labels.join(","));
                }
                let _ = writeln!(out, " {}", s.value);
            }
        }
        for (name, help, value) in self.float_gauges() {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        let h = &self.delivery_latency;
        let bounds: Vec<String> = LATENCY_BUCKETS_MS
            .iter()
            .map(|ms| (*ms as f64 / 1000.0).to_string())
            .collect();
        histogram(
            &mut out,
            "courier_delivery_latency_seconds",
            "Time from the send call to the acknowledgement, of delivered records.",
            &bounds,
            &h.buckets,
            &(h.sum_ms as f64 / 1000.0).to_string(),
            h.count,
        );
        let name = "courier_request_latency_seconds";
        histogram_header(
            &mut out,
            name,
            "Time from writing a Produce request to its answer, per broker.",
        );
        for (broker, h) in &self.request_latency {
            histogram_series(
                &mut out,
                name,
                &format!("broker=\"{broker}\""),
                &bounds,
                &h.buckets,
                &(h.sum_ms as f64 / 1000.0).to_string(),
                h.count,
            );
        }
        let bounds: Vec<String> = BATCH_SIZE_BUCKETS.iter().map(u64::to_string).collect();
        histogram(
            &mut out,
            "courier_batch_size_bytes",
            "Sizes of the record batches sent, retries included.",
            &bounds,
            &self.batch_size_buckets,
            &self.batch_size_sum.to_string(),
            self.batches_sent,
        );
        out
    }
}

/// Writes one unlabelled histogram: its HELP and TYPE lines, then its series.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[String],
    counts: &[u64],
    sum: &str,
    count: u64,
) {
    histogram_header(out, name, help);
    histogram_series(out, name, "", bounds, counts, sum, count);
}

fn histogram_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
}

/// One series of a histogram, `labels` (e.g. `broker="1"`, or empty) on every line:
/// cumulative buckets from per-bucket `counts`, `+Inf`, sum and count.
fn histogram_series(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[String],
    counts: &[u64],
    sum: &str,
    count: u64,
) {
    let (with_le, alone) = if labels.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("{labels},"), format!("{{{labels}}}"))
    };
    let mut cumulative = 0;
    for (i, le) in bounds.iter().enumerate() {
        cumulative += counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{with_le}le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{with_le}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{alone} {sum}");
    let _ = writeln!(out, "{name}_count{alone} {count}");
}

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows while the producer lives.
    Counter,
    /// The value at the moment it is read.
    Gauge,
}

/// A metric family: its name (Prometheus style), kind and help text.
#[derive(Debug)]
pub struct Family {
    /// The name, e.g. `courier_records_sent_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// One sentence on what it counts.
    pub help: &'static str,
}

/// One value of a family, with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its family: an index into [`FAMILIES`].
    pub family: usize,
    /// Label names and values, e.g. `("broker", "1")`.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: u64,
}

/// Every counter and gauge courier exports (the two histograms are apart:
/// `courier_delivery_latency_seconds` and `courier_batch_size_bytes`). The order is the
/// exposition's; [`DeliveryMetrics::samples`] refers to these by index.
pub const FAMILIES: &[Family] = &[
    Family { name: "courier_records_sent_total", kind: Kind::Counter, help: "Records accepted by send/produce." },
    Family { name: "courier_records_delivered_total", kind: Kind::Counter, help: "Records acknowledged by the broker." },
    Family { name: "courier_records_failed_total", kind: Kind::Counter, help: "Records that failed, by error name and whether they may be in the log." },
    Family { name: "courier_records_retried_total", kind: Kind::Counter, help: "Records sent again, one per record and attempt." },
    Family { name: "courier_batches_retried_total", kind: Kind::Counter, help: "Batches scheduled for another attempt." },
    Family { name: "courier_batches_split_total", kind: Kind::Counter, help: "Batches split after the broker refused them as too large." },
    Family { name: "courier_epoch_bumps_total", kind: Kind::Counter, help: "Producer epoch bumps after sequence gaps (KIP-360), per partition." },
    Family { name: "courier_records_resolved_persisted_total", kind: Kind::Counter, help: "Records past delivery.timeout.ms that resending proved to be in the log." },
    Family { name: "courier_records_unresolved_total", kind: Kind::Counter, help: "Records still possibly persisted when delivery.resolution.timeout.ms ran out." },
    Family { name: "courier_records_dead_lettered_total", kind: Kind::Counter, help: "Failed records written to the dead letter queue." },
    Family { name: "courier_dead_letter_failures_total", kind: Kind::Counter, help: "Failed records the dead letter queue could not take either." },
    Family { name: "courier_queued_records", kind: Kind::Gauge, help: "Records accepted and not yet reported either way." },
    Family { name: "courier_queued_bytes", kind: Kind::Gauge, help: "Bytes of buffer.memory held by records not yet reported." },
    Family {
        name: "courier_inflight_requests",
        kind: Kind::Gauge,
        help: "Produce requests sent to the broker and not yet answered.",
    },
    Family { name: "courier_producer_fatal", kind: Kind::Gauge, help: "1 once the producer stopped on a fatal error and takes no more records." },
    Family { name: "courier_broker_connected", kind: Kind::Gauge, help: "1 while the producer has an open connection to the broker, else 0." },
    Family { name: "courier_connections_opened_total", kind: Kind::Counter, help: "Broker connections opened." },
    Family { name: "courier_connect_failures_total", kind: Kind::Counter, help: "Broker connection attempts that failed." },
    Family { name: "courier_connections_closed_total", kind: Kind::Counter, help: "Broker connections closed, by reason." },
    Family { name: "courier_reauthentications_total", kind: Kind::Counter, help: "SASL sessions re-authenticated before they expired (KIP-368)." },
    Family { name: "courier_topic_durability_aligned", kind: Kind::Gauge, help: "1 when the topic's replication, min.insync.replicas and the producer's acks agree (the durability audit), else 0." },
];

/// A label value as the text format requires: backslash, double quote and newline
/// escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    pub(crate) failed_by: Mutex<BTreeMap<(String, &'static str), u64>>,
    pub(crate) retries: AtomicU64,
    pub(crate) records_retried: AtomicU64,
    /// Per bucket of [`LATENCY_BUCKETS_MS`], plus `+Inf`; written by the driver once per
    /// acknowledged batch.
    pub(crate) latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    pub(crate) latency_sum_ms: AtomicU64,
    pub(crate) latency_count: AtomicU64,
    /// Per bucket of [`BATCH_SIZE_BUCKETS`], plus `+Inf`; written by the driver per
    /// Produce request.
    pub(crate) batch_size_buckets: [AtomicU64; BATCH_SIZE_BUCKETS.len() + 1],
    pub(crate) batch_size_sum: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) durability: Mutex<BTreeMap<String, bool>>,
    pub(crate) bytes_before_compression: AtomicU64,
    pub(crate) bytes_after_compression: AtomicU64,
    /// When the oldest batch still held was started (wall-clock ms), 0 for none; and
    /// when that was last looked at.
    pub(crate) oldest_pending_ms: std::sync::atomic::AtomicI64,
    pub(crate) oldest_checked_ms: std::sync::atomic::AtomicI64,
    /// Per broker, Produce request latencies (buckets of [`LATENCY_BUCKETS_MS`]).
    pub(crate) request_latency: Mutex<BTreeMap<i32, LatencyBatch>>,
    pub(crate) batches_split: AtomicU64,
    pub(crate) epoch_bumps: AtomicU64,
    pub(crate) resolved_persisted: AtomicU64,
    pub(crate) unresolved: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dead_letter_failures: AtomicU64,
    pub(crate) requests_in_flight: AtomicU64,
    pub(crate) batches_compressed_elsewhere: AtomicU64,
}

/// Latencies of one acknowledged batch, counted on the driver and added to the shared
/// counters at once: three atomic additions per batch instead of per record. Also the
/// running histogram of one broker's request latencies.
#[derive(Debug, Default, Clone)]
pub(crate) struct LatencyBatch {
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum_ms: u64,
    count: u64,
}

impl LatencyBatch {
    pub(crate) fn add(&mut self, ms: u64) {
        let i = LATENCY_BUCKETS_MS.partition_point(|&b| b < ms);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.sum_ms += ms;
        self.count += 1;
    }
}

impl Counters {
    pub(crate) fn add_failed(&self, error: &str, persistence: Persistence, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        *self
            .failed_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((error.to_string(), persistence_label(persistence)))
            .or_default() += n;
    }

    pub(crate) fn add_latencies(&self, batch: &LatencyBatch) {
        for (shared, n) in self.latency_buckets.iter().zip(batch.buckets) {
            if n > 0 {
                shared.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.latency_sum_ms
            .fetch_add(batch.sum_ms, Ordering::Relaxed);
        self.latency_count.fetch_add(batch.count, Ordering::Relaxed);
    }

    /// Counts a batch of `bytes` sent.
    pub(crate) fn add_batch(&self, bytes: u64) {
        let i = BATCH_SIZE_BUCKETS.partition_point(|&b| b < bytes);
        if let Some(b) = self.batch_size_buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.batch_size_sum.fetch_add(bytes, Ordering::Relaxed);
        self.batches_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one Produce request's latency to `broker`.
    pub(crate) fn add_request_latency(&self, broker: i32, latency: std::time::Duration) {
        self.request_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(broker)
            .or_default()
            .add(latency.as_millis() as u64);
    }

    /// Records the durability audit's verdict for `topic`.
    pub(crate) fn set_durability(&self, topic: &str, aligned: bool) {
        self.durability
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), aligned);
    }

    pub(crate) fn snapshot(
        &self,
        queued_bytes: u64,
        fatal: bool,
        brokers: Vec<BrokerMetrics>,
        net: &NetCounters,
    ) -> DeliveryMetrics {
        let failed_by = self
            .failed_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut failed_by_error = BTreeMap::new();
        for ((name, _), n) in &failed_by {
            *failed_by_error.entry(name.clone()).or_default() += n;
        }
        DeliveryMetrics {
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failed_by_error,
            failed_by_error_and_persistence: failed_by,
            retries: self.retries.load(Ordering::Relaxed),
            records_retried: self.records_retried.load(Ordering::Relaxed),
            delivery_latency: LatencyHistogram {
                buckets: self
                    .latency_buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect(),
                sum_ms: self.latency_sum_ms.load(Ordering::Relaxed),
                count: self.latency_count.load(Ordering::Relaxed),
            },
            fatal,
            batch_size_buckets: self
                .batch_size_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            batch_size_sum: self.batch_size_sum.load(Ordering::Relaxed),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            brokers,
            bytes_before_compression: self.bytes_before_compression.load(Ordering::Relaxed),
            bytes_after_compression: self.bytes_after_compression.load(Ordering::Relaxed),
            oldest_pending_ms: match self.oldest_pending_ms.load(Ordering::Relaxed) {
                0 => 0,
                since => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    now.saturating_sub(since).max(0) as u64
                }
            },
            request_latency: self
                .request_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(b, h)| {
                    (
                        *b,
                        LatencyHistogram {
                            buckets: h.buckets.to_vec(),
                            sum_ms: h.sum_ms,
                            count: h.count,
                        },
                    )
                })
                .collect(),
            topic_durability_aligned: self
                .durability
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
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
        assert_eq!(
            c.snapshot(0, false, Vec::new(), &NetCounters::default())
                .success_rate(),
            1.0
        );
        c.sent.fetch_add(10, Ordering::Relaxed);
        c.delivered.fetch_add(6, Ordering::Relaxed);
        c.add_failed("NOT_ENOUGH_REPLICAS", Persistence::NotPersisted, 2);
        let m = c.snapshot(100, false, Vec::new(), &NetCounters::default());
        assert_eq!(m.success_rate(), 0.75);
        assert_eq!(m.pending(), 2);
        assert_eq!(m.failed_by_error["NOT_ENOUGH_REPLICAS"], 2);
        assert_eq!(m.queued_bytes, 100);
    }

    /// What `to_prometheus` writes is read back by an independent parser with the same
    /// values: counters, labels (escaped), the gauge of the fatal state, and the
    /// histogram's cumulative buckets, sum and count.
    #[test]
    fn prometheus_text_reads_back_with_an_independent_parser() {
        let c = Counters::default();
        c.sent.fetch_add(10, Ordering::Relaxed);
        c.delivered.fetch_add(6, Ordering::Relaxed);
        c.add_failed("NOT_ENOUGH_REPLICAS", Persistence::PossiblyPersisted, 2);
        c.add_failed("a \"quoted\\ name", Persistence::NotPersisted, 1);
        let mut batch = LatencyBatch::default();
        for ms in [0, 1, 3, 3, 40_000, 500_000] {
            batch.add(ms);
        }
        c.add_latencies(&batch);
        for bytes in [100, 16_384, 16_385, 2_000_000] {
            c.add_batch(bytes);
        }
        c.set_durability("orders", true);
        c.set_durability("audit-log", false);
        let brokers = vec![
            BrokerMetrics {
                node_id: 1,
                connected: true,
                in_flight: 3,
            },
            BrokerMetrics {
                node_id: 2,
                connected: false,
                in_flight: 0,
            },
        ];
        c.add_request_latency(1, std::time::Duration::from_millis(3));
        c.add_request_latency(1, std::time::Duration::from_millis(700));
        c.bytes_before_compression.store(3000, Ordering::Relaxed);
        c.bytes_after_compression.store(1200, Ordering::Relaxed);
        let m = c.snapshot(1234, true, brokers, &NetCounters::default());
        let text = m.to_prometheus();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
            let s = scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                })
                .unwrap_or_else(|| panic!("{name} {labels:?} in\n{text}"));
            match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name}: {other:?}"),
            }
        };
        assert_eq!(value("courier_records_sent_total", &[]), 10.0);
        assert_eq!(value("courier_records_delivered_total", &[]), 6.0);
        assert_eq!(
            value(
                "courier_records_failed_total",
                &[
                    ("error", "NOT_ENOUGH_REPLICAS"),
                    ("persistence", "possibly_persisted")
                ]
            ),
            2.0
        );
        // The parser gives label values as written, escapes included.
        assert_eq!(
            value(
                "courier_records_failed_total",
                &[
                    ("error", r#"a \"quoted\\ name"#),
                    ("persistence", "not_persisted")
                ]
            ),
            1.0
        );
        assert_eq!(value("courier_queued_records", &[]), 1.0);
        assert_eq!(value("courier_queued_bytes", &[]), 1234.0);
        assert_eq!(value("courier_producer_fatal", &[]), 1.0);
        assert_eq!(value("courier_broker_connected", &[("broker", "1")]), 1.0);
        assert_eq!(value("courier_broker_connected", &[("broker", "2")]), 0.0);
        assert_eq!(value("courier_inflight_requests", &[("broker", "1")]), 3.0);
        assert_eq!(
            value("courier_topic_durability_aligned", &[("topic", "orders")]),
            1.0
        );
        assert_eq!(
            value(
                "courier_topic_durability_aligned",
                &[("topic", "audit-log")]
            ),
            0.0
        );
        assert!(
            text.contains("courier_request_latency_seconds_bucket{broker=\"1\",le=\"0.005\"} 1\n")
        );
        assert!(text.contains("courier_request_latency_seconds_bucket{broker=\"1\",le=\"1\"} 2\n"));
        assert!(text.contains("courier_request_latency_seconds_sum{broker=\"1\"} 0.703\n"));
        assert_eq!(value("courier_compression_ratio", &[]), 2.5);
        assert_eq!(value("courier_oldest_queued_record_age_seconds", &[]), 0.0);
        assert_eq!(value("courier_batch_size_bytes_count", &[]), 4.0);
        assert_eq!(value("courier_batch_size_bytes_sum", &[]), 2_032_869.0);
        assert!(text.contains("courier_batch_size_bytes_bucket{le=\"16384\"} 2\n"));
        assert!(text.contains("courier_batch_size_bytes_bucket{le=\"1048576\"} 3\n"));
        let hist = scrape
            .samples
            .iter()
            .find(|s| s.metric == "courier_delivery_latency_seconds")
            .expect("the latency histogram");
        let prometheus_parse::Value::Histogram(buckets) = &hist.value else {
            panic!("not a histogram: {:?}", hist.value);
        };
        let at = |le: f64| {
            buckets
                .iter()
                .find(|b| (b.less_than - le).abs() < 1e-9)
                .map(|b| b.count)
                .unwrap_or_else(|| panic!("bucket {le}"))
        };
        assert_eq!(at(0.001), 2.0, "0 and 1 ms");
        assert_eq!(at(0.005), 4.0, "and the two of 3 ms");
        assert_eq!(at(30.0), 4.0);
        assert_eq!(at(60.0), 5.0, "40 s");
        assert_eq!(at(120.0), 5.0, "500 s is above every bound");
        // (This parser leaves out the +Inf bucket, which the count repeats.)
        assert!(text.contains("courier_delivery_latency_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert_eq!(value("courier_delivery_latency_seconds_count", &[]), 6.0);
        assert_eq!(
            value("courier_delivery_latency_seconds_sum", &[]),
            540.007,
            "0 + 1 + 3 + 3 + 40000 + 500000 ms"
        );
    }

    /// Each field lands in the family of its name (the samples refer to families by
    /// index, so a slip would put one counter under another's name).
    #[test]
    fn every_field_is_exported_under_its_own_name() {
        let m = DeliveryMetrics {
            sent: 100,
            delivered: 50,
            failed: 3,
            records_retried: 4,
            retries: 5,
            batches_split: 6,
            epoch_bumps: 7,
            resolved_persisted: 8,
            unresolved: 9,
            dead_lettered: 10,
            dead_letter_failures: 11,
            queued_bytes: 13,
            requests_in_flight: 14,
            fatal: true,
            connections_opened: 17,
            connect_failures: 18,
            connections_closed_idle: 19,
            connections_closed_by_peer: 20,
            connections_closed_timeout: 21,
            protocol_errors: 22,
            reauthentications: 23,
            ..DeliveryMetrics::default()
        };
        let text = m.to_prometheus();
        for line in [
            "courier_records_sent_total 100",
            "courier_records_delivered_total 50",
            "courier_records_retried_total 4",
            "courier_batches_retried_total 5",
            "courier_batches_split_total 6",
            "courier_epoch_bumps_total 7",
            "courier_records_resolved_persisted_total 8",
            "courier_records_unresolved_total 9",
            "courier_records_dead_lettered_total 10",
            "courier_dead_letter_failures_total 11",
            "courier_queued_records 47",
            "courier_queued_bytes 13",
            "courier_producer_fatal 1",
            "courier_connections_opened_total 17",
            "courier_connect_failures_total 18",
            "courier_connections_closed_total{reason=\"idle\"} 19",
            "courier_connections_closed_total{reason=\"peer\"} 20",
            "courier_connections_closed_total{reason=\"timeout\"} 21",
            "courier_connections_closed_total{reason=\"protocol_error\"} 22",
            "courier_reauthentications_total 23",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        // Every family is declared once, in order, each with its HELP.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut want: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        want.extend([
            "courier_oldest_queued_record_age_seconds",
            "courier_compression_ratio",
            "courier_delivery_latency_seconds",
            "courier_request_latency_seconds",
            "courier_batch_size_bytes",
        ]);
        assert_eq!(declared, want);
    }
}
