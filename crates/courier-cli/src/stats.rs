//! Delivery statistics shared by `produce`, `perf` and `demo`: a latency histogram,
//! failure counts by error name, CPU time, and the `--summary json` object.

use std::collections::BTreeMap;
use std::time::Duration;

use courier::ProducerError;
use serde_json::{json, Value};

/// A log-linear latency histogram in microseconds: exact below 1024 µs, then 512
/// sub-buckets per power of two (relative error under 0.2 %). Fixed size, so memory
/// stays bounded however many records are sent.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

const LINEAR: u64 = 1024;
const SUB_BITS: u32 = 9;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; (LINEAR + 54 * SUB) as usize],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= 10
        let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
        (LINEAR + (e as u64 - 10) * SUB + sub) as usize
    }

    /// The smallest value that falls into bucket `i`.
    fn lower_bound(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let e = (i - LINEAR) / SUB + 10;
        let sub = (i - LINEAR) % SUB;
        (1 << e) | (sub << (e - SUB_BITS as u64))
    }

    /// Adds one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128 / 2) as u64;
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.sum_us += us as u128;
        self.max_us = self.max_us.max(us);
    }

    /// Mean in milliseconds (0 when empty).
    pub fn mean_ms(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64 / 1000.0
        }
    }

    /// Largest in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }

    /// The `q` quantile (0..=1) in milliseconds, as the lower bound of its bucket
    /// (like Java's tool, which takes the value at index `q * n` of the sorted list).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64) as u64).min(self.total - 1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::lower_bound(i).min(self.max_us) as f64 / 1000.0;
            }
        }
        self.max_ms()
    }
}

/// A short, stable name for an error, for counting failures: the Kafka error name
/// where the broker sent a code (`NOT_ENOUGH_REPLICAS`), else the kind of client-side
/// failure (`DELIVERY_TIMEOUT`, `BUFFER_FULL`, ...).
pub fn error_name(e: &ProducerError) -> String {
    let kind = match e {
        ProducerError::DeliveryTimeout { .. } => "DELIVERY_TIMEOUT",
        ProducerError::Config(_) => "CONFIG",
        ProducerError::UnknownPartition { .. } => "UNKNOWN_PARTITION",
        ProducerError::RecordTooLarge { .. } => "RECORD_TOO_LARGE",
        ProducerError::RecordExceedsBufferMemory { .. } => "RECORD_EXCEEDS_BUFFER_MEMORY",
        ProducerError::BufferFull { .. } => "BUFFER_FULL",
        ProducerError::MetadataTimeout { .. } => "METADATA_TIMEOUT",
        ProducerError::Transport { .. } => "TRANSPORT",
        ProducerError::Closed => "CLOSED",
        ProducerError::ClosedInFlight { .. } => "CLOSED_IN_FLIGHT",
        ProducerError::Unresolved { .. } => "UNRESOLVED",
        ProducerError::UnresolvedAfterEpochBump { .. } => "UNRESOLVED_AFTER_EPOCH_BUMP",
        ProducerError::TransactionAborted { .. } => "TRANSACTION_ABORTED",
        ProducerError::NotInTransaction { .. } => "NOT_IN_TRANSACTION",
        ProducerError::Fatal { code: None, .. } => "FATAL",
        _ => match e.code_name() {
            Some(name) => return name.to_string(),
            None => "OTHER",
        },
    };
    kind.to_string()
}

/// Failures counted by error name, with the first message of each for the report, and
/// the root causes behind timeouts (what a user has to fix: "could not connect to ...").
#[derive(Default, Clone)]
pub struct Failures {
    by_name: BTreeMap<String, (u64, String)>,
    causes: BTreeMap<String, u64>,
}

/// At most this many distinct root causes are kept (a run against a flapping cluster can
/// see many texts; the first ones are the ones to fix).
const MAX_CAUSES: usize = 8;

impl Failures {
    /// Counts one failed record.
    pub fn add(&mut self, e: &ProducerError) {
        self.add_named(error_name(e), || e.to_string());
        if let Some(cause) = e.root_cause() {
            if let Some(n) = self.causes.get_mut(cause) {
                *n += 1;
            } else if self.causes.len() < MAX_CAUSES {
                self.causes.insert(cause.to_string(), 1);
            }
        }
    }

    /// Counts one failure under `name`; `message` is kept for the first one.
    pub fn add_named(&mut self, name: String, message: impl FnOnce() -> String) {
        self.by_name
            .entry(name)
            .and_modify(|(n, _)| *n += 1)
            .or_insert_with(|| (1, message()));
    }

    /// Total failures.
    pub fn total(&self) -> u64 {
        self.by_name.values().map(|(n, _)| n).sum()
    }

    /// `{name: count}` as JSON.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.by_name
                .iter()
                .map(|(k, (n, _))| (k.clone(), json!(n)))
                .collect(),
        )
    }

    /// `{cause: records}` of the root causes seen, as JSON.
    pub fn causes_json(&self) -> Value {
        Value::Object(
            self.causes
                .iter()
                .map(|(k, n)| (k.clone(), json!(n)))
                .collect(),
        )
    }

    /// One line per error name: count and the first message; then one per root cause.
    pub fn report_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .by_name
            .iter()
            .map(|(k, (n, msg))| format!("  {k}: {n} record(s); first: {msg}"))
            .collect();
        for (cause, n) in &self.causes {
            lines.push(format!("  root cause ({n} record(s)): {cause}"));
        }
        lines
    }
}

/// This process's resource usage so far (getrusage RUSAGE_SELF); `None` if the call
/// fails.
fn rusage() -> Option<libc::rusage> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given;
    // the struct is zero-initialised and only read after a 0 return.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: initialised by the successful call above.
    (rc == 0).then(|| unsafe { ru.assume_init() })
}

/// User plus system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    let Some(ru) = rusage() else {
        return Duration::ZERO;
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The most resident memory this process has had so far, in bytes (`ru_maxrss`, which
/// Linux gives in KiB); 0 if the call fails.
pub fn peak_rss_bytes() -> u64 {
    rusage().map_or(0, |ru| u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024)
}

/// A record's send time (microseconds since the run started, 40 bits: 12 days) and
/// value length (24 bits: 16 MiB), packed into the tag of
/// [`courier::Producer::produce_tagged`]. A record outside either range goes with a
/// callback.
pub struct Tag;

impl Tag {
    const LEN_BITS: u32 = 24;

    /// The tag, or `None` when either value is out of range.
    pub fn pack(since_start: Duration, len: u64) -> Option<u64> {
        let us = u64::try_from(since_start.as_micros()).ok()?;
        (us < 1 << (64 - Self::LEN_BITS) && len < 1 << Self::LEN_BITS)
            .then_some(us << Self::LEN_BITS | len)
    }

    /// The send time and length back.
    pub fn unpack(tag: u64) -> (Duration, u64) {
        (
            Duration::from_micros(tag >> Self::LEN_BITS),
            tag & ((1 << Self::LEN_BITS) - 1),
        )
    }
}

/// What a run did, for the final report and `--summary json`.
pub struct Summary {
    /// Records handed to the producer (or that failed before it took them).
    pub records: u64,
    /// Records acknowledged by the broker.
    pub delivered: u64,
    /// Value bytes of the acknowledged records.
    pub bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies from send to acknowledgement.
    pub latency: Histogram,
    /// Failures by error name.
    pub failures: Failures,
    /// CPU time (user + system) of this process over the run.
    pub cpu: Duration,
    /// The process's peak resident memory, in bytes ([`peak_rss_bytes`] at the end).
    pub peak_rss: u64,
}

impl Summary {
    /// Records that got neither an acknowledgement nor a failure. Always 0 unless courier
    /// has a bug: a run with any is never reported as a success.
    pub fn unreported(&self) -> u64 {
        self.records
            .saturating_sub(self.delivered)
            .saturating_sub(self.failures.total())
    }

    /// Acknowledged records per second.
    pub fn records_per_s(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Acknowledged value MiB per second (the Java tool's "MB/sec").
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / (1024.0 * 1024.0)
    }

    /// CPU seconds per million records handed to the producer.
    pub fn cpu_s_per_million(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            self.cpu.as_secs_f64() * 1e6 / self.records as f64
        }
    }

    /// The `--summary json` object.
    pub fn to_json(&self) -> Value {
        let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
        let h = &self.latency;
        json!({
            "records": self.records,
            "delivered": self.delivered,
            "failed": self.failures.total(),
            "unreported": self.unreported(),
            "elapsed_s": r3(self.elapsed.as_secs_f64()),
            "records_per_s": r3(self.records_per_s()),
            "mb_per_s": r3(self.mb_per_s()),
            "latency_ms": {
                "avg": r3(h.mean_ms()),
                "max": r3(h.max_ms()),
                "p50": r3(h.quantile_ms(0.5)),
                "p95": r3(h.quantile_ms(0.95)),
                "p99": r3(h.quantile_ms(0.99)),
                "p999": r3(h.quantile_ms(0.999)),
            },
            "errors": self.failures.to_json(),
            "root_causes": self.failures.causes_json(),
            "cpu_s": r3(self.cpu.as_secs_f64()),
            "cpu_s_per_million_records": r3(self.cpu_s_per_million()),
            "peak_rss_bytes": self.peak_rss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_carries_send_time_and_length_or_declines() {
        let t = Duration::from_micros(123_456_789);
        assert_eq!(Tag::unpack(Tag::pack(t, 100).unwrap()), (t, 100));
        let max_len = (1 << 24) - 1;
        let late = Duration::from_micros((1 << 40) - 1);
        assert_eq!(
            Tag::unpack(Tag::pack(late, max_len).unwrap()),
            (late, max_len)
        );
        assert_eq!(
            Tag::pack(t, 1 << 24),
            None,
            "a 16 MiB value goes with a callback"
        );
        assert_eq!(Tag::pack(Duration::from_micros(1 << 40), 1), None);
    }

    #[test]
    fn histogram_buckets_round_trip_within_a_fifth_of_a_percent() {
        for v in [0u64, 1, 1023, 1024, 1025, 4096, 123_456, 9_999_999, 1 << 40] {
            let i = Histogram::index(v);
            let lo = Histogram::lower_bound(i);
            assert!(lo <= v, "{v}: lower bound {lo}");
            assert!((v - lo) as f64 <= v as f64 * 0.002, "{v}: lower bound {lo}");
            assert_eq!(Histogram::index(lo), i);
        }
    }

    #[test]
    fn quantiles_follow_the_java_tool_rank() {
        let mut h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        // Java: sorted[(int)(0.5 * 100)] = the 51st value.
        assert!(
            (h.quantile_ms(0.5) - 51.0).abs() < 0.2,
            "{}",
            h.quantile_ms(0.5)
        );
        assert!((h.quantile_ms(0.99) - 100.0).abs() < 0.2);
        assert_eq!(h.max_ms(), 100.0);
        assert!((h.mean_ms() - 50.5).abs() < 1e-9);
        assert_eq!(Histogram::new().quantile_ms(0.5), 0.0);
    }

    #[test]
    fn failures_count_by_kafka_error_name() {
        let mut f = Failures::default();
        f.add(&ProducerError::UnknownTopic { topic: "t".into() });
        f.add(&ProducerError::UnknownTopic { topic: "t".into() });
        f.add(&ProducerError::Closed);
        assert_eq!(f.total(), 3);
        assert_eq!(
            f.to_json(),
            json!({"UNKNOWN_TOPIC_OR_PARTITION": 2, "CLOSED": 1})
        );
        assert!(f.report_lines()[1].contains("does not exist"));
        assert_eq!(f.causes_json(), json!({}));
    }

    #[test]
    fn client_side_kinds_have_the_producers_names() {
        // The summary's names agree with ProducerError::name for courier's own kinds.
        for e in [
            ProducerError::Closed,
            ProducerError::UnknownTopic { topic: "t".into() },
            ProducerError::Unresolved {
                topic: "t".into(),
                partition: 0,
                timeout: Duration::from_secs(1),
                resolution_timeout: Duration::from_secs(2),
                last_error: None,
                last_cause: None,
            },
        ] {
            assert_eq!(error_name(&e), e.name());
        }
    }

    #[test]
    fn root_causes_are_counted_and_reported() {
        let mut f = Failures::default();
        let timeout = |cause: &str| ProducerError::DeliveryTimeout {
            topic: "t".into(),
            partition: 0,
            timeout: Duration::from_secs(1),
            last_error: None,
            last_cause: Some(cause.into()),
            persistence: courier::Persistence::NotPersisted,
        };
        f.add(&timeout("connection refused by 127.0.0.1:9092"));
        f.add(&timeout("connection refused by 127.0.0.1:9092"));
        assert_eq!(
            f.causes_json(),
            json!({"connection refused by 127.0.0.1:9092": 2})
        );
        assert!(f
            .report_lines()
            .iter()
            .any(|l| l == "  root cause (2 record(s)): connection refused by 127.0.0.1:9092"));
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_time() > before);
        // This test process has touched at least a megabyte.
        assert!(peak_rss_bytes() > 1 << 20, "{}", peak_rss_bytes());
    }
}
