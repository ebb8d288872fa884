//! The producer's metrics through the [`metrics`] crate's facade (feature `metrics`), to
//! whatever recorder the application installed: `metrics-exporter-prometheus`,
//! StatsD, a test recorder (issue 18).
//!
//! courier keeps its own counters (one atomic add on the hot path, no recorder call per
//! record); [`record`] hands a snapshot to the facade, as absolute values, and
//! [`spawn_recorder`] does it every interval. Names and labels are those of
//! `docs/METRICS.md`. The two histograms go as their `_count` (counter) and `_sum`
//! (gauge): a facade histogram takes single observations, which courier aggregates
//! before they leave the driver.

use std::time::Duration;

use super::{DeliveryMetrics, Kind, FAMILIES};
use crate::Producer;

/// Describes every metric to the installed recorder (its help text and unit), once.
pub fn describe() {
    for f in FAMILIES {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.help),
        }
    }
    metrics::describe_counter!(
        "courier_delivery_latency_seconds_count",
        "Delivered records whose latency was measured."
    );
    metrics::describe_gauge!(
        "courier_delivery_latency_seconds_sum",
        metrics::Unit::Seconds,
        "Their delivery latencies added up."
    );
    for (name, help, _) in DeliveryMetrics::default().float_gauges() {
        metrics::describe_gauge!(name, help);
    }
    metrics::describe_counter!("courier_batch_size_bytes_count", "Record batches sent.");
    metrics::describe_counter!(
        "courier_batch_size_bytes_sum",
        metrics::Unit::Bytes,
        "Their bytes added up."
    );
}

/// Gives `m` to the installed recorder: counters as absolute values, gauges set.
pub fn record(m: &DeliveryMetrics) {
    for s in m.samples() {
        let Some(f) = FAMILIES.get(s.family) else {
            continue;
        };
        let labels: Vec<metrics::Label> = s
            .labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        match f.kind {
            Kind::Counter => metrics::counter!(f.name, labels).absolute(s.value),
            Kind::Gauge => metrics::gauge!(f.name, labels).set(s.value as f64),
        }
    }
    for (name, _, value) in m.float_gauges() {
        metrics::gauge!(name).set(value);
    }
    let h = &m.delivery_latency;
    metrics::counter!("courier_delivery_latency_seconds_count").absolute(h.count);
    metrics::gauge!("courier_delivery_latency_seconds_sum").set(h.sum_ms as f64 / 1000.0);
    metrics::counter!("courier_batch_size_bytes_count").absolute(m.batches_sent);
    metrics::counter!("courier_batch_size_bytes_sum").absolute(m.batch_size_sum);
}

/// Describes the metrics, then records `producer`'s every `interval` (and once more when
/// the task is aborted or the producer closed), on the current tokio runtime. Abort the
/// handle to stop.
pub fn spawn_recorder(producer: Producer, interval: Duration) -> tokio::task::JoinHandle<()> {
    describe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            record(&producer.metrics());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{BrokerMetrics, LatencyHistogram};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    #[test]
    fn a_snapshot_reaches_the_recorder_with_its_labels() {
        let mut m = DeliveryMetrics {
            sent: 10,
            delivered: 7,
            fatal: true,
            brokers: vec![BrokerMetrics {
                node_id: 3,
                connected: true,
                in_flight: 2,
            }],
            delivery_latency: LatencyHistogram {
                buckets: vec![],
                sum_ms: 1500,
                count: 7,
            },
            ..DeliveryMetrics::default()
        };
        m.failed_by_error_and_persistence
            .insert(("NOT_ENOUGH_REPLICAS".into(), "possibly_persisted"), 3);
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            describe();
            record(&m);
        });
        let got: Vec<_> = snapshotter.snapshot().into_vec();
        let find = |kind: MetricKind, name: &str, labels: &[(&str, &str)]| -> &DebugValue {
            got.iter()
                .find(|(k, _, _, _)| {
                    k.kind() == kind
                        && k.key().name() == name
                        && labels.iter().all(|(lk, lv)| {
                            k.key().labels().any(|l| l.key() == *lk && l.value() == *lv)
                        })
                })
                .map(|(_, _, _, v)| v)
                .unwrap_or_else(|| panic!("{name} {labels:?} not recorded"))
        };
        assert_eq!(
            find(MetricKind::Counter, "courier_records_sent_total", &[]),
            &DebugValue::Counter(10)
        );
        assert_eq!(
            find(
                MetricKind::Counter,
                "courier_records_failed_total",
                &[
                    ("error", "NOT_ENOUGH_REPLICAS"),
                    ("persistence", "possibly_persisted")
                ]
            ),
            &DebugValue::Counter(3)
        );
        assert_eq!(
            find(MetricKind::Gauge, "courier_producer_fatal", &[]),
            &DebugValue::Gauge(1.0.into())
        );
        assert_eq!(
            find(
                MetricKind::Gauge,
                "courier_inflight_requests",
                &[("broker", "3")]
            ),
            &DebugValue::Gauge(2.0.into())
        );
        assert_eq!(
            find(
                MetricKind::Gauge,
                "courier_delivery_latency_seconds_sum",
                &[]
            ),
            &DebugValue::Gauge(1.5.into())
        );
        assert_eq!(
            find(MetricKind::Gauge, "courier_queued_records", &[]),
            &DebugValue::Gauge(3.0.into()),
            "10 sent, 7 delivered, none failed: 3 pending"
        );
    }
}
