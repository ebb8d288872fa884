//! The metrics the docs name are the metrics courier writes: every metric of
//! `DeliveryMetrics::to_prometheus` has its row in docs/METRICS.md, every row names one
//! that exists, and every metric the Grafana dashboard (docs/grafana-courier.json)
//! queries exists.

use std::collections::BTreeSet;

/// The metric families `to_prometheus` declares (its `# TYPE` lines).
fn written() -> BTreeSet<String> {
    courier::DeliveryMetrics::default()
        .to_prometheus()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Every `courier_...` identifier in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("courier_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_metric_written_is_documented_and_every_documented_one_is_written() {
    let written = written();
    assert!(written.len() >= 20, "{written:?}");
    let doc = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    let rows: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_string())
        .collect();
    assert_eq!(
        rows, written,
        "docs/METRICS.md's table against to_prometheus"
    );
}

#[test]
fn the_dashboard_queries_only_metrics_that_exist() {
    let written = written();
    let text = std::fs::read_to_string(root().join("docs/grafana-courier.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut queried = BTreeSet::new();
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            queried.extend(names_in(t["expr"].as_str().expect("an expr")));
        }
    }
    for name in &queried {
        assert!(
            written.contains(family(name)),
            "the dashboard queries {name}, which courier does not write"
        );
    }
    for must in [
        "courier_producer_fatal",
        "courier_records_failed_total",
        "courier_delivery_latency_seconds_bucket",
    ] {
        assert!(queried.contains(must), "the dashboard shows {must}");
    }
}
