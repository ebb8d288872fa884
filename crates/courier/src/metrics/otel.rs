//! The producer's metrics as OpenTelemetry observable instruments (feature
//! `opentelemetry`) on the application's `Meter`, so they leave through whatever
//! exporter its SDK runs (OTLP, Prometheus) at its collection interval (issue 18).
//!
//! Each instrument's callback reads one snapshot ([`crate::Producer::metrics`]) when the
//! SDK collects; nothing runs per record. Names are `docs/METRICS.md`'s without the
//! `_total` suffix, which OpenTelemetry's Prometheus exporter adds to counters itself.
//! The histograms go as their `_count` and `_sum` counters: an observable histogram does
//! not exist in OpenTelemetry's API.

use std::sync::Arc;

use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge};
use opentelemetry::KeyValue;

use super::{DeliveryMetrics, Kind, FAMILIES};

/// The instruments registered by [`register`]; they report while this lives.
pub struct Instruments {
    _counters: Vec<ObservableCounter<u64>>,
    _gauges: Vec<ObservableGauge<u64>>,
    _sums: Vec<ObservableCounter<f64>>,
    _float_gauges: Vec<ObservableGauge<f64>>,
}

impl std::fmt::Debug for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Instruments")
    }
}

/// Registers every metric on `meter`, read from `source` at each collection: for a
/// producer, `move || producer.metrics()`.
pub fn register(
    meter: &Meter,
    source: impl Fn() -> DeliveryMetrics + Send + Sync + 'static,
) -> Instruments {
    let source: Arc<dyn Fn() -> DeliveryMetrics + Send + Sync> = Arc::new(source);
    let mut counters = Vec::new();
    let mut gauges = Vec::new();
    for (i, f) in FAMILIES.iter().enumerate() {
        let read = source.clone();
        let unit = if f.name.ends_with("_bytes") {
            "By"
        } else {
            "1"
        };
        match f.kind {
            Kind::Counter => counters.push(
                meter
                    .u64_observable_counter(f.name.trim_end_matches("_total"))
                    .with_description(f.help)
                    .with_unit(unit)
                    .with_callback(move |obs| {
                        for s in read().samples().into_iter().filter(|s| s.family == i) {
                            obs.observe(s.value, &attributes(&s.labels));
                        }
                    })
                    .build(),
            ),
            Kind::Gauge => gauges.push(
                meter
                    .u64_observable_gauge(f.name)
                    .with_description(f.help)
                    .with_unit(unit)
                    .with_callback(move |obs| {
                        for s in read().samples().into_iter().filter(|s| s.family == i) {
                            obs.observe(s.value, &attributes(&s.labels));
                        }
                    })
                    .build(),
            ),
        }
    }
    let read = source.clone();
    counters.push(
        meter
            .u64_observable_counter("courier_delivery_latency_seconds_count")
            .with_description("Delivered records whose latency was measured.")
            .with_callback(move |obs| obs.observe(read().delivery_latency.count, &[]))
            .build(),
    );
    let read = source.clone();
    counters.push(
        meter
            .u64_observable_counter("courier_batch_size_bytes_count")
            .with_description("Record batches sent.")
            .with_callback(move |obs| obs.observe(read().batches_sent, &[]))
            .build(),
    );
    let read = source.clone();
    let latency_sum = meter
        .f64_observable_counter("courier_delivery_latency_seconds_sum")
        .with_description("Delivery latencies of delivered records, added up.")
        .with_unit("s")
        .with_callback(move |obs| {
            obs.observe(read().delivery_latency.sum_ms as f64 / 1000.0, &[]);
        })
        .build();
    let mut float_gauges = Vec::new();
    for (i, (name, help, _)) in DeliveryMetrics::default()
        .float_gauges()
        .into_iter()
        .enumerate()
    {
        let read = source.clone();
        float_gauges.push(
            meter
                .f64_observable_gauge(name)
                .with_description(help)
                .with_callback(move |obs| {
                    if let Some((_, _, v)) = read().float_gauges().get(i) {
                        obs.observe(*v, &[]);
                    }
                })
                .build(),
        );
    }
    let read = source;
    let batch_sum = meter
        .f64_observable_counter("courier_batch_size_bytes_sum")
        .with_description("Bytes of the record batches sent, added up.")
        .with_unit("By")
        .with_callback(move |obs| obs.observe(read().batch_size_sum as f64, &[]))
        .build();
    Instruments {
        _counters: counters,
        _gauges: gauges,
        _sums: vec![latency_sum, batch_sum],
        _float_gauges: float_gauges,
    }
}

fn attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::BrokerMetrics;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    #[test]
    fn the_sdk_collects_the_producers_figures_with_their_attributes() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let meter = provider.meter("courier-test");
        let _instruments = register(&meter, || DeliveryMetrics {
            sent: 12,
            delivered: 9,
            batch_size_sum: 4096,
            brokers: vec![BrokerMetrics {
                node_id: 2,
                connected: true,
                in_flight: 4,
            }],
            ..DeliveryMetrics::default()
        });
        provider.force_flush().unwrap();
        let exported = exporter.get_finished_metrics().unwrap();
        let mut u64s = Vec::new();
        let mut f64s = Vec::new();
        for rm in &exported {
            for sm in rm.scope_metrics() {
                for m in sm.metrics() {
                    match m.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                            for p in sum.data_points() {
                                u64s.push((
                                    m.name().to_string(),
                                    p.attributes().cloned().collect::<Vec<_>>(),
                                    p.value(),
                                ));
                            }
                        }
                        AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                            for p in g.data_points() {
                                u64s.push((
                                    m.name().to_string(),
                                    p.attributes().cloned().collect::<Vec<_>>(),
                                    p.value(),
                                ));
                            }
                        }
                        AggregatedMetrics::F64(MetricData::Sum(sum)) => {
                            for p in sum.data_points() {
                                f64s.push((m.name().to_string(), p.value()));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let get = |name: &str, attrs: &[KeyValue]| {
            u64s.iter()
                .find(|(n, a, _)| n == name && a.as_slice() == attrs)
                .map(|(_, _, v)| *v)
                .unwrap_or_else(|| panic!("{name} {attrs:?} not in {u64s:?}"))
        };
        assert_eq!(get("courier_records_sent", &[]), 12);
        assert_eq!(get("courier_records_delivered", &[]), 9);
        assert_eq!(get("courier_queued_records", &[]), 3);
        assert_eq!(
            get("courier_inflight_requests", &[KeyValue::new("broker", "2")]),
            4
        );
        assert!(f64s.contains(&("courier_batch_size_bytes_sum".to_string(), 4096.0)));
    }
}
