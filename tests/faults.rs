//! The real-cluster fault suite (issue 6: "no acknowledged record lost, duplicated or
//! reordered").
//!
//! Each scenario starts its own three-broker Kafka cluster (RF 3,
//! `min.insync.replicas=2`), produces continuously with courier - keyed records over
//! six partitions, each value carrying its key's counter - while a fault script runs
//! against the cluster, then judges the result with the kit's independent reader:
//! Kafka's console consumer for the records, `kafka-dump-log` for the stored batches.
//! Jepsen's Kafka analyses check the same things: every acknowledged record is in the
//! log exactly once, per key in send order; records reported `NotPersisted` are not in
//! the log; every record gets exactly one outcome and the producer never hangs.
//!
//! Each scenario writes a row (runs, sent, acknowledged, failed, lost, duplicated,
//! reordered, and why records failed) to `target/reliability/<scenario>.json`;
//! `cargo run -p courier-tests --bin faults-report` renders them into
//! `docs/RELIABILITY.md`.
//!
//! Size: one run of a few thousand records per scenario by default (CI);
//! `COURIER_FAULTS_FULL=1` runs ten per scenario at a higher rate. Scenarios run one at
//! a time: the machine has two cores and each cluster is four JVMs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use courier::{Persistence, Producer, ProducerConfig, ProducerError, ProducerRecord};
use courier_testkit::{
    ClusterBuilder, KafkaCluster, Listener, ProxyMode, Security, TopicSpec, KAFKA_VERSION,
};

const PARTITIONS: i32 = 6;
const KEYS: u64 = 24;
const WAIT: Duration = Duration::from_secs(120);

/// One scenario at a time (see the module docs). A failed scenario poisons the lock;
/// the next one still runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn full_size() -> bool {
    std::env::var("COURIER_FAULTS_FULL").is_ok_and(|v| v == "1")
}

/// Runs per scenario and records per second.
fn size() -> (usize, u64) {
    if full_size() {
        (10, 400)
    } else {
        (1, 150)
    }
}

// ----- the fault script's view -----

/// What a fault script can touch while the producer runs.
struct Ctx<'a> {
    cluster: &'a KafkaCluster,
    topics: Vec<String>,
    /// What the script did, with times, for the failure message and the report.
    log: Mutex<Vec<String>>,
    start: Instant,
    /// Records acknowledged before this instant, per topic, are not expected in the
    /// log (retention deleted them, or their topic was deleted).
    cutoffs: Mutex<HashMap<usize, Instant>>,
    /// While set, no records are sent.
    paused: AtomicBool,
    /// When the fault script finished, the cluster healed: records sent from then
    /// on must all be acknowledged (the producer recovers; it does not stay failed).
    healed_at: Mutex<Option<Instant>>,
    run: usize,
}

impl Ctx<'_> {
    fn note(&self, what: impl Into<String>) {
        let line = format!(
            "{:>7.1}s {}",
            self.start.elapsed().as_secs_f64(),
            what.into()
        );
        eprintln!("[fault] {line}");
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    fn leader(&self, partition: i32) -> i32 {
        self.cluster
            .wait_for_leader(&self.topics[0], partition, WAIT)
            .expect("a leader")
    }

    fn wait_full_isr(&self) {
        for t in &self.topics {
            for p in 0..PARTITIONS {
                self.cluster
                    .wait_for_full_isr(t, p, WAIT)
                    .expect("full ISR");
            }
        }
        self.note("every partition has its full ISR again");
    }

    fn cutoff(&self, topic: usize, at: Instant) {
        self.cutoffs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic, at);
    }
}

fn sleep(d: Duration) {
    std::thread::sleep(d);
}

// ----- the producer side -----

/// One record as sent: the key and per-key counter travel in its value.
struct Sent {
    topic: usize,
    at: Instant,
    /// One of a scenario's extra records (expected to fail, e.g. oversized).
    extra: bool,
}

/// What the producer reported for a record: `(partition, offset)` or the error, and
/// when the report arrived.
type Report = (Result<(i32, i64), ProducerError>, Instant);

struct Traffic {
    sent: Vec<Sent>,
    reports: HashMap<u64, Report>,
    retries: u64,
    epoch_bumps: u64,
    connections_opened: u64,
    /// Records that outlived `delivery.timeout.ms` while possibly written and were
    /// resolved by resending them with their sequence (the producer's metric).
    resolved_persisted: u64,
    /// Records still possibly persisted when the resolution ran out.
    unresolved: u64,
}

fn value(run: usize, id: u64, key: u64, counter: u64) -> String {
    let mut v = format!("{run}:{id}:{key}:{counter}:");
    while v.len() < 100 {
        v.push('x');
    }
    v
}

/// `(run, id, key, counter)` from a value written by [`value`].
fn parse_value(v: &[u8]) -> Option<(usize, u64, u64, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.split(':');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// Extra records a scenario mixes into the stream.
type Extra = dyn Fn(u64) -> Option<(u64, Vec<u8>)> + Sync;

/// Sends records at `rate` per second until `done` is set and `tail` has passed
/// since, then closes the producer and collects every report.
async fn traffic(
    producer: Producer,
    ctx: &Ctx<'_>,
    rate: u64,
    done: &AtomicBool,
    tail: Duration,
    close_timeout: Duration,
    extra: Option<&Extra>,
) -> Traffic {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Report)>();
    let mut sent = Vec::new();
    let mut counters: HashMap<(usize, u64), u64> = HashMap::new();
    let per_tick = rate.div_ceil(50);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut done_at: Option<Instant> = None;
    // Records `produce_with_callback` refused at once: the caller's error, never counted
    // by the producer's metrics.
    let mut refused = 0u64;
    loop {
        tick.tick().await;
        if done.load(Ordering::SeqCst) {
            let at = *done_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= tail {
                break;
            }
        }
        if ctx.paused.load(Ordering::SeqCst) {
            continue;
        }
        for _ in 0..per_tick {
            let id = sent.len() as u64;
            let topic = (id % ctx.topics.len() as u64) as usize;
            let (key, payload, is_extra) = match extra.and_then(|f| f(id)) {
                Some((key, payload)) => (key, payload, true),
                None => (id % KEYS, Vec::new(), false),
            };
            let c = counters.entry((topic, key)).or_default();
            let counter = *c;
            *c += 1;
            let mut v = value(ctx.run, id, key, counter).into_bytes();
            v.extend_from_slice(&payload);
            let record = ProducerRecord::new(&ctx.topics[topic])
                .key(format!("k{key}"))
                .value(v);
            sent.push(Sent {
                topic,
                at: Instant::now(),
                extra: is_extra,
            });
            let report = tx.clone();
            let queued = producer
                .produce_with_callback(record, move |r| {
                    let r = r.map(|md| (md.partition, md.offset));
                    let _ = report.send((id, (r, Instant::now())));
                })
                .await;
            if let Err(e) = queued {
                refused += 1;
                let _ = tx.send((id, (Err(e), Instant::now())));
            }
        }
    }
    producer.close(close_timeout).await.expect("close");
    let metrics = producer.metrics();
    drop(producer);
    drop(tx);
    let mut reports = HashMap::new();
    while let Ok(Some((id, r))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        assert!(
            reports.insert(id, r).is_none(),
            "record {id} got a second delivery report"
        );
    }
    check_metrics(&metrics, &reports, sent.len() as u64, refused);
    Traffic {
        sent,
        reports,
        retries: metrics.retries,
        epoch_bumps: metrics.epoch_bumps,
        connections_opened: metrics.connections_opened,
        resolved_persisted: metrics.resolved_persisted,
        unresolved: metrics.unresolved,
    }
}

/// The producer's own counters (issue 18) agree with the delivery reports the
/// application got, under the fault: records sent, delivered and failed, failures by
/// error name, the latency histogram's count, and no fewer records retried than batches.
fn check_metrics(
    m: &courier::DeliveryMetrics,
    reports: &HashMap<u64, Report>,
    sent: u64,
    refused: u64,
) {
    let delivered = reports.values().filter(|(r, _)| r.is_ok()).count() as u64;
    let failed = reports.len() as u64 - delivered - refused;
    assert_eq!(m.sent, sent - refused, "metrics: records sent");
    assert_eq!(m.delivered, delivered, "metrics: records delivered");
    assert_eq!(m.failed, failed, "metrics: records failed");
    assert_eq!(
        m.delivery_latency.count, delivered,
        "metrics: latencies counted"
    );
    assert_eq!(m.pending(), 0, "metrics: nothing pending after close");
    assert!(m.records_retried >= m.retries, "{m:?}");
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for (r, _) in reports.values() {
        if let Err(e) = r {
            *by_name.entry(e.name().to_string()).or_default() += 1;
        }
    }
    // The refused ones are not the producer's failures: take them out by name.
    let counted: u64 = m.failed_by_error.values().sum();
    assert_eq!(counted, failed, "metrics: failures by error add up");
    for (name, n) in &m.failed_by_error {
        assert!(
            by_name.get(name).is_some_and(|seen| seen >= n),
            "metrics: {n} {name} failures, the reports say {:?}",
            by_name.get(name)
        );
    }
}

// ----- the verdict -----

/// What the independent reader found, summed over runs.
#[derive(Debug, Default, Clone)]
struct Verdict {
    runs: u64,
    sent: u64,
    /// Of `sent`, the scenario's extra records (e.g. oversized ones).
    extra_sent: u64,
    acknowledged: u64,
    failed: u64,
    /// Acknowledged, expected in the log, not there.
    lost: u64,
    /// Extra copies of a record in the log.
    duplicated: u64,
    /// Acknowledged records stored after an acknowledged record of the same key that
    /// was sent later.
    reordered: u64,
    /// Reported `NotPersisted`, found in the log: a false report.
    not_persisted_in_log: u64,
    possibly_persisted_in_log: u64,
    possibly_persisted_absent: u64,
    /// Acknowledged where the reader found it somewhere else.
    misreported: u64,
    /// Acknowledged before the scenario removed them on purpose (retention, topic
    /// deletion): not checked.
    unchecked: u64,
    /// Records without a delivery report after close: the producer hung.
    missing_reports: u64,
    /// Records sent after the fault script finished (the cluster healed) that failed:
    /// the producer did not recover.
    failed_after_healing: u64,
    /// Stored batches with a bad CRC, or stored twice (same producer id, epoch and
    /// sequence), per `kafka-dump-log`.
    bad_batches: u64,
    retries: u64,
    epoch_bumps: u64,
    /// Records whose batch outlived `delivery.timeout.ms` while possibly written - Java
    /// and librdkafka would have reported them possibly persisted - and that resending
    /// with their sequence settled as delivered (issue 14). The reader checks them like
    /// every acknowledged record: in the log once, at the offset reported.
    resolved_persisted: u64,
    /// Of those, still possibly persisted when `delivery.resolution.timeout.ms` ran out.
    unresolved: u64,
    failures: BTreeMap<String, u64>,
    notes: Vec<String>,
}

impl Verdict {
    fn add(&mut self, o: &Verdict) {
        self.runs += o.runs;
        self.sent += o.sent;
        self.extra_sent += o.extra_sent;
        self.acknowledged += o.acknowledged;
        self.failed += o.failed;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.not_persisted_in_log += o.not_persisted_in_log;
        self.possibly_persisted_in_log += o.possibly_persisted_in_log;
        self.possibly_persisted_absent += o.possibly_persisted_absent;
        self.misreported += o.misreported;
        self.unchecked += o.unchecked;
        self.missing_reports += o.missing_reports;
        self.failed_after_healing += o.failed_after_healing;
        self.bad_batches += o.bad_batches;
        self.retries += o.retries;
        self.epoch_bumps += o.epoch_bumps;
        self.resolved_persisted += o.resolved_persisted;
        self.unresolved += o.unresolved;
        for (k, v) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
        self.notes.extend(o.notes.iter().cloned());
    }

    /// Every failure was of this kind (`NAME (Persistence)`, as `failures` counts them).
    fn assert_failed_only_as(&self, kind: &str) {
        assert!(
            self.failures.keys().all(|k| k == kind),
            "only {kind} expected: {:?}",
            self.failures
        );
    }

    /// The guarantees: fails the test with the numbers if one does not hold.
    fn assert_guarantees(&self, scenario: &str) {
        let broken = [
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("reordered", self.reordered),
            (
                "reported not persisted but in the log",
                self.not_persisted_in_log,
            ),
            ("acknowledged at another offset", self.misreported),
            ("without a delivery report", self.missing_reports),
            (
                "sent after the faults healed and failed",
                self.failed_after_healing,
            ),
            ("bad or duplicate stored batches", self.bad_batches),
        ];
        for (what, n) in broken {
            assert_eq!(n, 0, "{scenario}: {n} records {what}\n{self:#?}");
        }
        assert!(
            self.acknowledged > 0,
            "{scenario}: nothing acknowledged\n{self:#?}"
        );
    }
}

/// Reads `ctx.topics[topic]` back and judges the run's records of it.
fn judge(ctx: &Ctx<'_>, topic: usize, t: &Traffic) -> Verdict {
    let name = &ctx.topics[topic];
    let cutoff = ctx
        .cutoffs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&topic)
        .copied();
    let log = ctx
        .cluster
        .consume_all(name)
        .expect("the reader reads the topic");
    let mut v = Verdict {
        runs: 1,
        ..Verdict::default()
    };
    // id -> where the reader found it.
    let mut found: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();
    // key -> (partition, offset, counter, id) in log order.
    let mut by_key: HashMap<u64, Vec<(i32, i64, u64, u64)>> = HashMap::new();
    for r in &log {
        let Some((run, id, key, counter)) = r.value.as_deref().and_then(parse_value) else {
            panic!("{name}: a record the suite did not write: {r:?}");
        };
        assert_eq!(run, ctx.run, "{name}: a record of another run");
        found.entry(id).or_default().push((r.partition, r.offset));
        by_key
            .entry(key)
            .or_default()
            .push((r.partition, r.offset, counter, id));
    }
    v.duplicated = found.values().map(|w| w.len() as u64 - 1).sum();
    let healed_at = *ctx.healed_at.lock().unwrap_or_else(|e| e.into_inner());
    let mine = t.sent.iter().enumerate().filter(|(_, s)| s.topic == topic);
    for (id, sent) in mine {
        let id = id as u64;
        v.sent += 1;
        v.extra_sent += u64::from(sent.extra);
        let Some((report, at)) = t.reports.get(&id) else {
            v.missing_reports += 1;
            continue;
        };
        match report {
            Ok((p, off)) => {
                v.acknowledged += 1;
                if cutoff.is_some_and(|c| *at < c) {
                    v.unchecked += 1;
                    continue;
                }
                match found.get(&id) {
                    None => v.lost += 1,
                    Some(w) if *off >= 0 && !w.contains(&(*p, *off)) => v.misreported += 1,
                    Some(_) => {}
                }
            }
            Err(e) => {
                v.failed += 1;
                *v.failures.entry(failure_name(e)).or_default() += 1;
                if !sent.extra && healed_at.is_some_and(|h| sent.at >= h) {
                    v.failed_after_healing += 1;
                }
                match e.persistence() {
                    Persistence::NotPersisted if found.contains_key(&id) => {
                        v.not_persisted_in_log += 1
                    }
                    Persistence::PossiblyPersisted if found.contains_key(&id) => {
                        v.possibly_persisted_in_log += 1
                    }
                    Persistence::PossiblyPersisted => v.possibly_persisted_absent += 1,
                    _ => {}
                }
            }
        }
    }
    // Per key, acknowledged records in the log must follow send order (the counter).
    let acked = |id: u64| matches!(t.reports.get(&id), Some((Ok(_), _)));
    for records in by_key.values_mut() {
        records.sort();
        let mut highest: Option<u64> = None;
        for &(_, _, counter, id) in records.iter() {
            if !acked(id) {
                continue;
            }
            if highest.is_some_and(|h| counter < h) {
                v.reordered += 1;
            }
            highest = Some(highest.map_or(counter, |h| h.max(counter)));
        }
        // All of a key's records live in one partition.
        let parts: std::collections::BTreeSet<i32> = records.iter().map(|r| r.0).collect();
        assert!(
            parts.len() <= 1,
            "{name}: one key in several partitions: {parts:?}"
        );
    }
    v.bad_batches = check_stored_batches(ctx, name);
    v
}

fn failure_name(e: &ProducerError) -> String {
    format!("{} ({:?})", e.name(), e.persistence())
}

/// `kafka-dump-log` on each partition's leader: every stored batch has a valid CRC and
/// no (producer id, epoch, sequence) is stored twice.
fn check_stored_batches(ctx: &Ctx<'_>, topic: &str) -> u64 {
    let mut bad = 0;
    for p in 0..PARTITIONS {
        let Ok(leader) = ctx.cluster.wait_for_leader(topic, p, WAIT) else {
            continue;
        };
        let batches = ctx
            .cluster
            .dump_partition(leader, topic, p)
            .expect("kafka-dump-log reads the segments");
        let mut seen = std::collections::HashSet::new();
        for b in &batches {
            if !b.is_valid {
                bad += 1;
            }
            if b.producer_id >= 0
                && !seen.insert((b.producer_id, b.producer_epoch, b.base_sequence))
            {
                bad += 1;
            }
        }
    }
    bad
}

// ----- scenarios -----

/// How a scenario is set up.
struct Scenario {
    name: &'static str,
    /// One line for the report.
    title: &'static str,
    cluster: ClusterBuilder,
    /// Producer settings on top of the suite's defaults.
    producer: Vec<(&'static str, String)>,
    /// Topics written (records alternate between them).
    topics: usize,
    topic_configs: Vec<(&'static str, &'static str)>,
    replication_factor: i16,
    /// How the producer reaches the brokers.
    route: Route,
    /// Traffic after the fault script ends: recovery must be visible in it.
    tail: Duration,
    /// Extra records mixed in (the oversized-record scenario).
    extra: Option<Box<Extra>>,
    /// Runs after the topics exist and before the producer starts.
    prepare: Option<Box<Prepare>>,
    /// Runs after each run is judged, with its traffic: checks of the run beyond the
    /// verdict's.
    after_run: Option<Box<AfterRun>>,
    /// Why records may stay possibly persisted in this scenario. `None`: every
    /// partition comes back well within `delivery.resolution.timeout.ms`, so every
    /// record must end delivered or not persisted (issue 14).
    may_stay_unresolved: Option<&'static str>,
}

/// A fault applied before the producer starts.
type Prepare = dyn Fn(&Ctx<'_>) + Sync;

/// A check of a finished run.
type AfterRun = dyn Fn(&Ctx<'_>, &Traffic) + Sync;

/// How the producer reaches the brokers; the kit's admin client, the independent reader
/// and replication always use the PLAINTEXT listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The PLAINTEXT listener.
    Direct,
    /// The PLAINTEXT listener through the fault proxies (`ClusterBuilder::with_proxies`).
    Proxied,
    /// The SASL_SSL listener as the cluster's first user, with SCRAM-SHA-512
    /// (`Scenario::over_sasl_ssl`).
    SaslSsl,
}

impl Scenario {
    fn new(name: &'static str, title: &'static str) -> Self {
        Self {
            name,
            title,
            cluster: KafkaCluster::builder().brokers(3),
            producer: Vec::new(),
            topics: 1,
            topic_configs: Vec::new(),
            replication_factor: 3,
            route: Route::Direct,
            tail: Duration::from_secs(5),
            extra: None,
            prepare: None,
            after_run: None,
            may_stay_unresolved: None,
        }
    }

    /// The same scenario with the producer on the SASL_SSL listener (SCRAM-SHA-512):
    /// every broker gets that listener beside PLAINTEXT, and logs every request it
    /// completes, so each run can check from the brokers' side that every request of
    /// the producer came over SASL_SSL, authenticated, and that it reached every
    /// broker ([`producer_used_only_sasl_ssl`]).
    fn over_sasl_ssl(mut self) -> Self {
        self.cluster = self
            .cluster
            .security(
                Security::none()
                    .listener(Listener::SaslSsl)
                    .user(SASL_USER, "faults-secret"),
            )
            .log_level("kafka.request.logger", "DEBUG");
        self.route = Route::SaslSsl;
        self.after_run = Some(Box::new(producer_used_only_sasl_ssl));
        self
    }

    fn set(mut self, key: &'static str, value: impl ToString) -> Self {
        self.producer.push((key, value.to_string()));
        self
    }

    /// Starts the cluster, runs the fault script `runs` times with traffic, judges
    /// each run, writes the report row, and returns the summed verdict.
    fn run(self, fault: impl Fn(&Ctx<'_>) + Sync) -> Verdict {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (runs, rate) = size();
        let started = Instant::now();
        let cluster = self.cluster.clone().start().expect("a 3-broker cluster");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut total = Verdict::default();
        for run in 0..runs {
            heal(&cluster, self.route == Route::Proxied);
            let topics: Vec<String> = (0..self.topics)
                .map(|_| cluster.unique_topic(self.name))
                .collect();
            for t in &topics {
                let mut spec = TopicSpec::new(t)
                    .partitions(PARTITIONS)
                    .replication_factor(self.replication_factor);
                for (k, v) in &self.topic_configs {
                    spec = spec.config(*k, *v);
                }
                cluster.create_topic(&spec).expect("topic created");
            }
            let ctx = Ctx {
                cluster: &cluster,
                topics,
                log: Mutex::new(Vec::new()),
                start: Instant::now(),
                cutoffs: Mutex::new(HashMap::new()),
                paused: AtomicBool::new(false),
                healed_at: Mutex::new(None),
                run,
            };
            if let Some(prepare) = &self.prepare {
                prepare(&ctx);
            }
            let config = self.producer_config(&cluster, run);
            let close_timeout = config.delivery_timeout() + Duration::from_secs(30);
            let producer = {
                let _guard = rt.enter();
                Producer::new(config).expect("a producer")
            };
            let done = AtomicBool::new(false);
            let traffic = std::thread::scope(|s| {
                let script = s.spawn(|| {
                    // Let the producer warm up: the first faults hit a running stream.
                    sleep(Duration::from_secs(3));
                    fault(&ctx);
                    *ctx.healed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    ctx.note("fault script done");
                    done.store(true, Ordering::SeqCst);
                });
                let t = rt.block_on(traffic(
                    producer,
                    &ctx,
                    rate,
                    &done,
                    self.tail,
                    close_timeout,
                    self.extra.as_deref(),
                ));
                if let Err(e) = script.join() {
                    std::panic::resume_unwind(e);
                }
                t
            });
            ctx.note(format!(
                "{} records sent; judging with the independent reader",
                traffic.sent.len()
            ));
            let mut v = Verdict::default();
            for topic in 0..self.topics {
                let mut tv = judge(&ctx, topic, &traffic);
                tv.runs = 0;
                v.add(&tv);
            }
            v.runs = 1;
            v.retries = traffic.retries;
            v.epoch_bumps = traffic.epoch_bumps;
            v.resolved_persisted = traffic.resolved_persisted;
            v.unresolved = traffic.unresolved;
            if let Some(check) = &self.after_run {
                check(&ctx, &traffic);
            }
            v.notes = ctx.log.into_inner().unwrap_or_else(|e| e.into_inner());
            eprintln!("[{}] run {run}: {v:?}", self.name);
            total.add(&v);
        }
        write_row(&self, &total, started.elapsed());
        total.assert_guarantees(self.name);
        if self.may_stay_unresolved.is_none() {
            let possibly = total.possibly_persisted_in_log + total.possibly_persisted_absent;
            assert_eq!(
                possibly, 0,
                "{}: {possibly} records left possibly persisted, though every partition came \
                 back within delivery.resolution.timeout.ms\n{total:#?}",
                self.name
            );
        }
        total
    }

    fn producer_config(&self, cluster: &KafkaCluster, run: usize) -> ProducerConfig {
        let mut connect: Vec<(&str, String)> = Vec::new();
        match self.route {
            Route::Direct => connect.push(("bootstrap.servers", cluster.bootstrap())),
            Route::Proxied => connect.push((
                "bootstrap.servers",
                cluster.proxied_bootstrap().expect("proxies"),
            )),
            Route::SaslSsl => {
                let sec = cluster.security().expect("a secured cluster");
                let user = sec.user();
                connect.extend([
                    (
                        "bootstrap.servers",
                        sec.listener(Listener::SaslSsl)
                            .expect("the SASL_SSL listener")
                            .bootstrap
                            .clone(),
                    ),
                    ("security.protocol", "SASL_SSL".into()),
                    ("sasl.mechanism", "SCRAM-SHA-512".into()),
                    ("sasl.username", user.name.clone()),
                    ("sasl.password", user.password.clone()),
                    (
                        "ssl.ca.location",
                        sec.pki.ca.cert_path.display().to_string(),
                    ),
                    // The brokers' request log names each request's client: this is
                    // how the check after the run finds this run's producer.
                    ("client.id", sasl_client_id(run)),
                ]);
            }
        }
        let mut b = ProducerConfig::builder();
        for (k, v) in &connect {
            b = b.set(k, v).expect("connection setting");
        }
        let mut b = b
            .set("acks", "all")
            .and_then(|b| b.set("enable.idempotence", "true"))
            .and_then(|b| b.set("max.in.flight.requests.per.connection", "5"))
            .and_then(|b| b.set("linger.ms", "5"))
            .and_then(|b| b.set("compression.type", "lz4"))
            .and_then(|b| b.set("request.timeout.ms", "5000"))
            .and_then(|b| b.set("delivery.timeout.ms", "60000"))
            .expect("suite defaults");
        for (k, v) in &self.producer {
            b = b.set(k, v).expect("scenario setting");
        }
        b.build().expect("a valid producer configuration")
    }
}

/// Brings every broker back and opens every proxy, between runs.
fn heal(cluster: &KafkaCluster, proxied: bool) {
    let local = cluster.local().expect("local backend");
    for id in cluster.broker_ids().expect("broker ids") {
        if local.is_running(id).unwrap_or(false) {
            let _ = cluster.resume(id);
        } else {
            cluster.start_broker(id).expect("broker restarts");
        }
        if proxied {
            cluster.proxy(id).expect("proxy").set_mode(ProxyMode::Pass);
        }
    }
}

fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("reliability")
}

/// The commit the suite was built from, `-dirty` when the tree had changes, so a
/// recorded table says which producer it speaks for.
fn source_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            // `:/` roots the paths at the repository: git runs in `tests/`, where plain
            // `crates` names nothing and a changed tree looked clean.
            let dirty = git(&[
                "status",
                "--porcelain",
                "--",
                ":/crates",
                ":/tests",
                ":/testcontainers",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{head}-dirty")
            } else {
                head
            }
        }
        None => "unknown".into(),
    }
}

/// Writes the scenario's row for `faults-report`.
fn write_row(s: &Scenario, v: &Verdict, took: Duration) {
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("target/reliability");
    let row = serde_json::json!({
        "scenario": s.name,
        "title": s.title,
        "mode": if full_size() { "full" } else { "reduced" },
        "commit": source_commit(),
        "kafka": KAFKA_VERSION,
        "finished_unix": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "seconds": took.as_secs(),
        "runs": v.runs,
        "sent": v.sent,
        "acknowledged": v.acknowledged,
        "failed": v.failed,
        "lost": v.lost,
        "duplicated": v.duplicated,
        "reordered": v.reordered,
        "not_persisted_in_log": v.not_persisted_in_log,
        "possibly_persisted_in_log": v.possibly_persisted_in_log,
        "possibly_persisted_absent": v.possibly_persisted_absent,
        "unchecked": v.unchecked,
        "missing_reports": v.missing_reports,
        "failed_after_healing": v.failed_after_healing,
        "misreported": v.misreported,
        "bad_batches": v.bad_batches,
        "retries": v.retries,
        "epoch_bumps": v.epoch_bumps,
        "resolved_persisted": v.resolved_persisted,
        "unresolved": v.unresolved,
        "failures": v.failures,
    });
    let path = dir.join(format!("{}.json", s.name));
    std::fs::write(&path, serde_json::to_string_pretty(&row).expect("json"))
        .expect("write the row");
    eprintln!("[{}] row written to {}", s.name, path.display());
}

// ----- the producer's listener, from the brokers' side -----

/// The SASL user of `Scenario::over_sasl_ssl`.
const SASL_USER: &str = "courier-faults";

/// The producer's `client.id` in run `run` of a SASL_SSL scenario.
fn sasl_client_id(run: usize) -> String {
    format!("courier-faults-sasl-run{run}")
}

/// One request as a broker's request log (`kafka.request.logger` at DEBUG) has it.
struct LoggedRequest {
    broker: i32,
    api_key: i64,
    listener: String,
    security_protocol: String,
    principal: String,
    /// `brokerHost:brokerPort-clientHost:clientPort-index`.
    connection: String,
    response: serde_json::Value,
}

impl LoggedRequest {
    /// The broker-side port of the connection: the listener it came in on.
    fn broker_port(&self) -> Option<u16> {
        self.connection
            .split('-')
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()
    }
}

/// The requests broker `id` logged for client `client_id`.
fn logged_requests(cluster: &KafkaCluster, id: i32, client_id: &str) -> Vec<LoggedRequest> {
    let path = cluster
        .local()
        .expect("local backend")
        .log_path(id)
        .expect("broker log");
    let text = std::fs::read_to_string(&path).expect("the broker log reads");
    let needle = format!("\"clientId\":\"{client_id}\"");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.split_once("Completed request:").map(|(_, r)| r) else {
            continue;
        };
        if !rest.contains(&needle) {
            continue;
        }
        let json = &rest[..rest.rfind('}').map_or(0, |i| i + 1)];
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| {
            panic!("broker {id}: an unreadable request log line ({e}): {line}")
        });
        if v["requestHeader"]["clientId"] != client_id {
            continue;
        }
        let text = |key: &str| v[key].as_str().unwrap_or("?").to_string();
        out.push(LoggedRequest {
            broker: id,
            api_key: v["requestHeader"]["requestApiKey"].as_i64().unwrap_or(-1),
            listener: text("listener"),
            security_protocol: text("securityProtocol"),
            principal: text("principal"),
            connection: text("connection"),
            response: v["response"].clone(),
        });
    }
    out
}

/// After a run of `Scenario::over_sasl_ssl`, from the brokers' request logs: every
/// request of the run's producer came in on the SASL_SSL listener, authenticated as
/// the SCRAM user; it sent Produce requests to every broker; and the Metadata it was
/// answered named each broker at that broker's own SASL_SSL port, never at a PLAINTEXT
/// one. (Requests of a connection are logged once authenticated; a producer that fell
/// back to PLAINTEXT would show up on that listener, under its client id.)
fn producer_used_only_sasl_ssl(ctx: &Ctx<'_>, traffic: &Traffic) {
    let client_id = sasl_client_id(ctx.run);
    let sec = ctx.cluster.security().expect("a secured cluster");
    let port = |addr: &str| -> u16 {
        addr.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("host:port")
    };
    let sasl_ports: std::collections::BTreeSet<u16> = sec
        .listener(Listener::SaslSsl)
        .expect("the SASL_SSL listener")
        .bootstrap
        .split(',')
        .map(port)
        .collect();
    let ids = ctx.cluster.broker_ids().expect("ids");
    let mut requests = Vec::new();
    for &id in &ids {
        requests.extend(logged_requests(ctx.cluster, id, &client_id));
    }
    assert!(
        !requests.is_empty(),
        "no request of {client_id} in the brokers' request logs"
    );
    let principal = format!("User:{SASL_USER}");
    let elsewhere: Vec<String> = requests
        .iter()
        .filter(|r| {
            r.listener != "SASL_SSL"
                || r.security_protocol != "SASL_SSL"
                || r.principal != principal
                || !r.broker_port().is_some_and(|p| sasl_ports.contains(&p))
        })
        .map(|r| {
            format!(
                "broker {} api {} on {} ({}, {}, {})",
                r.broker, r.api_key, r.listener, r.security_protocol, r.principal, r.connection
            )
        })
        .collect();
    assert!(
        elsewhere.is_empty(),
        "{} of {} requests of {client_id} not over SASL_SSL as {principal}: {:?}",
        elsewhere.len(),
        requests.len(),
        &elsewhere[..elsewhere.len().min(10)]
    );
    // Each broker's own SASL_SSL port, as its log shows it: where the producer's
    // connections to it arrived.
    let mut own_port: BTreeMap<i32, u16> = BTreeMap::new();
    for r in &requests {
        let p = r.broker_port().expect("a broker port");
        let prev = own_port.insert(r.broker, p);
        assert!(
            prev.is_none_or(|q| q == p),
            "broker {} served {client_id} on ports {p} and {prev:?}",
            r.broker
        );
    }
    let produced_to: std::collections::BTreeSet<i32> = requests
        .iter()
        .filter(|r| r.api_key == 0)
        .map(|r| r.broker)
        .collect();
    assert_eq!(
        produced_to.into_iter().collect::<Vec<_>>(),
        ids,
        "{client_id} sent Produce requests to every broker"
    );
    // Metadata answers (api key 3): every broker they name is at its SASL_SSL port.
    let mut metadata = 0;
    let mut named_all = false;
    for r in requests.iter().filter(|r| r.api_key == 3) {
        metadata += 1;
        let brokers: Vec<(i32, u16)> = r.response["brokers"]
            .as_array()
            .unwrap_or_else(|| panic!("a Metadata response without brokers: {}", r.response))
            .iter()
            .map(|b| {
                (
                    b["nodeId"].as_i64().expect("nodeId") as i32,
                    b["port"].as_u64().expect("port") as u16,
                )
            })
            .collect();
        for &(node, p) in &brokers {
            assert!(
                own_port.get(&node).is_none_or(|&q| q == p) && sasl_ports.contains(&p),
                "Metadata on broker {}'s SASL_SSL listener named broker {node} at port {p}, \
                 not at its SASL_SSL port {:?}",
                r.broker,
                own_port.get(&node)
            );
        }
        let named: std::collections::BTreeSet<i32> = brokers.iter().map(|b| b.0).collect();
        named_all |= named.len() == ids.len();
    }
    assert!(
        named_all,
        "no Metadata answer of the {metadata} named all {} brokers",
        ids.len()
    );
    let connections: std::collections::BTreeSet<(i32, &str)> = requests
        .iter()
        .map(|r| (r.broker, r.connection.as_str()))
        .collect();
    ctx.note(format!(
        "brokers' request logs: {} requests of {client_id} on {} connections, all SASL_SSL as \
         {principal}, on ports {own_port:?}; {metadata} Metadata answers named only SASL_SSL \
         ports; the producer counted {} connections opened",
        requests.len(),
        connections.len(),
        traffic.connections_opened
    ));
}

// ----- the scenarios -----

/// `kill -9` of a partition leader, again and again; each comes back and catches up
/// before the next.
#[test]
fn acked_records_survive_repeated_leader_kills() {
    Scenario::new("leader_kill", "kill -9 of a partition leader, repeated")
        .run(kill_leaders_repeatedly)
        .assert_guarantees("leader_kill");
}

/// The same leader kills with the producer on the SASL_SSL listener (SCRAM-SHA-512):
/// every reconnection to a restarted broker goes through a TLS handshake and a SASL
/// authentication, and the producer must find every broker's SASL_SSL address in the
/// metadata it gets there. The brokers' request logs show each run that the producer
/// used no other listener.
#[test]
fn acked_records_survive_repeated_leader_kills_over_sasl_ssl() {
    Scenario::new(
        "leader_kill_sasl_ssl",
        "kill -9 of a partition leader, repeated; producer over SASL_SSL (SCRAM-SHA-512)",
    )
    .over_sasl_ssl()
    .run(kill_leaders_repeatedly)
    .assert_guarantees("leader_kill_sasl_ssl");
}

fn kill_leaders_repeatedly(ctx: &Ctx<'_>) {
    let kills = if full_size() { 3 } else { 2 };
    for i in 0..kills {
        let p = i % PARTITIONS;
        let leader = ctx.leader(p);
        ctx.cluster.kill(leader).expect("kill -9");
        ctx.note(format!("kill -9 broker {leader} (leader of partition {p})"));
        let new = ctx
            .cluster
            .wait_for_leader_other_than(&ctx.topics[0], p, Some(leader), WAIT)
            .expect("a new leader");
        ctx.note(format!("partition {p} now led by {new}"));
        sleep(Duration::from_secs(3));
        ctx.cluster.start_broker(leader).expect("restart");
        ctx.note(format!("broker {leader} restarted"));
        ctx.wait_full_isr();
    }
}

/// Every broker stopped (controlled shutdown) and started in turn, as an upgrade does.
#[test]
fn acked_records_survive_a_rolling_restart() {
    Scenario::new("rolling_restart", "rolling restart of all three brokers").run(|ctx| {
        for id in ctx.cluster.broker_ids().expect("ids") {
            ctx.cluster.stop(id).expect("SIGTERM");
            ctx.note(format!("broker {id} stopped (controlled shutdown)"));
            sleep(Duration::from_secs(2));
            ctx.cluster.start_broker(id).expect("start");
            ctx.note(format!("broker {id} started"));
            ctx.wait_full_isr();
        }
    });
}

/// A leader frozen with SIGSTOP for longer than `request.timeout.ms` (3 s) and the
/// broker session timeout (6 s): requests to it time out, the controller moves its
/// leaderships, and when it thaws it handles what it had read - as a follower now.
#[test]
fn acked_records_survive_a_leader_paused_longer_than_the_request_timeout() {
    let pauses = if full_size() { 2 } else { 1 };
    Scenario::new(
        "leader_paused",
        "partition leader paused (SIGSTOP) 10 s with request.timeout.ms=3000",
    )
    .set("request.timeout.ms", 3000)
    .set("delivery.timeout.ms", 30000)
    .run(|ctx| {
        for i in 0..pauses {
            let leader = ctx.leader(i);
            ctx.cluster.pause(leader).expect("SIGSTOP");
            ctx.note(format!("SIGSTOP broker {leader}"));
            sleep(Duration::from_secs(10));
            ctx.cluster.resume(leader).expect("SIGCONT");
            ctx.note(format!("SIGCONT broker {leader}"));
            ctx.wait_full_isr();
        }
    });
}

/// Connections through the fault proxies cut halfway through a request, reset,
/// blackholed for longer than `request.timeout.ms`, slowed, and refused - while the
/// brokers themselves are fine and keep replicating.
#[test]
fn acked_records_survive_connections_cut_or_stalled_mid_request() {
    let mut s = Scenario::new(
        "network_faults",
        "connections cut mid-request, reset, blackholed, delayed, refused (TCP proxy)",
    )
    .set("request.timeout.ms", 3000)
    .set("delivery.timeout.ms", 30000);
    s.cluster = s.cluster.with_proxies(true);
    s.route = Route::Proxied;
    s.run(|ctx| {
        let rounds = if full_size() { 2 } else { 1 };
        for _ in 0..rounds {
            for id in ctx.cluster.broker_ids().expect("ids") {
                let proxy = ctx.cluster.proxy(id).expect("proxy");
                for _ in 0..3 {
                    let n = proxy.cut_mid_request();
                    ctx.note(format!("broker {id}: cut {n} connection(s) mid-request"));
                    sleep(Duration::from_millis(700));
                }
                let n = proxy.cut();
                ctx.note(format!("broker {id}: reset {n} connection(s)"));
                sleep(Duration::from_secs(1));
                proxy.set_mode(ProxyMode::Blackhole);
                ctx.note(format!("broker {id}: blackhole"));
                sleep(Duration::from_secs(5));
                proxy.set_mode(ProxyMode::Delay(Duration::from_millis(400)));
                ctx.note(format!("broker {id}: 400 ms delay each way"));
                sleep(Duration::from_secs(4));
                proxy.set_mode(ProxyMode::Refuse);
                ctx.note(format!("broker {id}: refuse connections"));
                sleep(Duration::from_secs(3));
                proxy.set_mode(ProxyMode::Pass);
                ctx.note(format!("broker {id}: pass ({:?})", proxy.stats()));
                sleep(Duration::from_secs(2));
            }
        }
        for id in ctx.cluster.broker_ids().expect("ids") {
            let st = ctx.cluster.proxy(id).expect("proxy").stats();
            assert!(
                st.cut > 0 && st.bytes_swallowed > 0,
                "broker {id}: the faults bit: {st:?}"
            );
        }
    });
}

/// Two brokers of three down: the ISR falls below `min.insync.replicas`, the leader
/// answers NOT_ENOUGH_REPLICAS, and the producer keeps retrying. The brokers return
/// well within `delivery.timeout.ms`: every record is acknowledged in the end.
#[test]
fn producer_retries_through_not_enough_replicas_and_recovers() {
    let v = Scenario::new(
        "min_isr_recovered",
        "two brokers down 15 s (ISR < min.insync.replicas), back within delivery.timeout.ms",
    )
    .set("delivery.timeout.ms", 120000)
    .run(|ctx| {
        let down = two_brokers_down(ctx);
        sleep(Duration::from_secs(15));
        for id in down {
            ctx.cluster.start_broker(id).expect("start");
            ctx.note(format!("broker {id} started"));
        }
        ctx.wait_full_isr();
    });
    assert_eq!(v.failed, 0, "every record recovers: {v:#?}");
    assert!(v.retries > 0, "the producer had to retry: {v:#?}");
}

/// The same outage for longer than `delivery.timeout.ms` (15 s): records fail with a
/// delivery timeout and say whether they may be in the log; after the brokers return
/// the producer goes on (librdkafka #3584: "sequence desynchronization" after an
/// outage; producers that never recover after a failure).
#[test]
fn records_fail_cleanly_past_the_delivery_timeout_and_the_producer_recovers() {
    let v = Scenario::new(
        "min_isr_timeout",
        "two brokers down 30 s, past delivery.timeout.ms=15000",
    )
    .set("delivery.timeout.ms", 15000)
    .set("request.timeout.ms", 5000)
    .run(|ctx| {
        let down = two_brokers_down(ctx);
        sleep(Duration::from_secs(30));
        for id in down {
            ctx.cluster.start_broker(id).expect("start");
            ctx.note(format!("broker {id} started"));
        }
        ctx.wait_full_isr();
        // Traffic after this point must be acknowledged: the tail checks recovery.
    });
    assert!(v.failed > 0, "records outlived delivery.timeout.ms: {v:#?}");
    // Records never sent, or refused (NOT_ENOUGH_REPLICAS) by every attempt, fail at
    // the delivery timeout, not in the log. Those that may have been written are
    // resent with their sequence until the brokers return, and end delivered: none is
    // left possibly persisted (`Scenario::run` checks that too).
    v.assert_failed_only_as("DELIVERY_TIMEOUT (NotPersisted)");
}

/// `len` random letters (xorshift from `seed`).
fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// A producer that starts while the ISR is below `min.insync.replicas`: its new
/// producer id is unknown to every partition, its first batches are refused with
/// NOT_ENOUGH_REPLICAS until two brokers return. A broker without state for a
/// producer accepts any sequence (Kafka 2.5+), so a pipelined later batch accepted
/// the moment the ISR recovers would overtake a refused earlier one - the engine sends
/// one batch per partition until the first is acknowledged (found by the simulation).
#[test]
fn new_producer_under_not_enough_replicas_keeps_send_order() {
    let mut s = Scenario::new(
        "min_isr_new_producer",
        "producer started while two brokers are down; they return after 15 s",
    )
    .set("delivery.timeout.ms", 120000);
    s.prepare = Some(Box::new(|ctx| {
        let down = two_brokers_down(ctx);
        ctx.note(format!("brokers {down:?} down before the producer starts"));
    }));
    let v = s.run(|ctx| {
        sleep(Duration::from_secs(12));
        for id in ctx.cluster.broker_ids().expect("ids") {
            if !ctx
                .cluster
                .local()
                .expect("local")
                .is_running(id)
                .unwrap_or(true)
            {
                ctx.cluster.start_broker(id).expect("start");
                ctx.note(format!("broker {id} started"));
            }
        }
        ctx.wait_full_isr();
    });
    assert_eq!(v.failed, 0, "every record recovers: {v:#?}");
    assert!(v.retries > 0, "the first batches were refused: {v:#?}");
}

fn two_brokers_down(ctx: &Ctx<'_>) -> Vec<i32> {
    let ids = ctx.cluster.broker_ids().expect("ids");
    let down: Vec<i32> = ids[1..].to_vec();
    for &id in &down {
        ctx.cluster.kill(id).expect("kill");
        ctx.note(format!("kill -9 broker {id}"));
    }
    // The controller fences them after the session timeout and shrinks the ISRs.
    let shrunk = courier_testkit::wait_until("the ISR to shrink", WAIT, || {
        let p = ctx
            .cluster
            .partition(&ctx.topics[0], 0)
            .map_err(|e| e.to_string())?;
        if p.isr.len() < 2 {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    });
    ctx.note(format!(
        "ISR of partition 0 below min.insync.replicas: {shrunk:?}"
    ));
    down
}

/// The leader of a partition with a single replica frozen for longer than
/// `delivery.timeout.ms`: the batch in flight times out, the records queued behind it
/// expire, and after the broker thaws new records are written (librdkafka #2163: gaps
/// after queued messages time out).
#[test]
fn records_expiring_behind_a_frozen_leader_leave_no_sequence_gap() {
    let mut s = Scenario::new(
        "frozen_leader_expiry",
        "single-replica leader paused 20 s, past delivery.timeout.ms=10000",
    )
    .set("request.timeout.ms", 3000)
    .set("delivery.timeout.ms", 10000);
    s.replication_factor = 1;
    s.topic_configs = vec![("min.insync.replicas", "1")];
    let v = s.run(|ctx| {
        let leader = ctx.leader(0);
        ctx.cluster.pause(leader).expect("SIGSTOP");
        ctx.note(format!("SIGSTOP broker {leader}"));
        sleep(Duration::from_secs(20));
        ctx.cluster.resume(leader).expect("SIGCONT");
        ctx.note(format!("SIGCONT broker {leader}"));
        sleep(Duration::from_secs(3));
    });
    assert!(v.failed > 0, "records expired: {v:#?}");
    // The records queued behind the frozen leader were never sent: not in the log. The
    // batches in flight when it froze may have been read by it; they are resent with
    // their sequence past the delivery timeout, and when the broker thaws it answers
    // them - as duplicates of the requests it read before freezing, or as new writes.
    v.assert_failed_only_as("DELIVERY_TIMEOUT (NotPersisted)");
    assert!(
        v.resolved_persisted > 0,
        "the batches in flight outlived delivery.timeout.ms and were resolved: {v:#?}"
    );
}

/// The case issue 14 was filed on: the leader of a partition of an RF 3 topic frozen
/// for 25 s with `delivery.timeout.ms=10000`. The controller moves its leaderships
/// after the broker session timeout; batches that were in flight to it outlive the
/// delivery timeout while possibly written. Java and librdkafka report them possibly
/// persisted (the issue counted 2,157 such records, 717 of them in the log); courier
/// resends them with their sequence to the new leader, which holds the producer state
/// that came with any copy it replicated, and reports each delivered at its offset.
#[test]
fn batches_in_flight_to_a_frozen_leader_are_resolved_past_the_delivery_timeout() {
    let v = Scenario::new(
        "frozen_leader_resolved",
        "RF 3 partition leader paused (SIGSTOP) 25 s, past delivery.timeout.ms=10000",
    )
    .set("delivery.timeout.ms", 10000)
    .run(|ctx| {
        let leader = ctx.leader(0);
        ctx.cluster.pause(leader).expect("SIGSTOP");
        ctx.note(format!("SIGSTOP broker {leader}"));
        sleep(Duration::from_secs(25));
        ctx.cluster.resume(leader).expect("SIGCONT");
        ctx.note(format!("SIGCONT broker {leader}"));
        ctx.wait_full_isr();
    });
    v.assert_failed_only_as("DELIVERY_TIMEOUT (NotPersisted)");
    assert!(
        v.resolved_persisted > 0,
        "batches in flight to the frozen leader outlived delivery.timeout.ms: {v:#?}"
    );
}

/// A topic is deleted while records are sent to it (records alternate between two
/// topics), twice: once created again at once - its records wait it out - and once
/// left missing for longer than `delivery.timeout.ms` - its records fail. The other
/// topic is unaffected; once the topic exists again its records land exactly once and
/// in order.
#[test]
fn topic_deleted_while_producing() {
    let mut s = Scenario::new(
        "topic_deleted",
        "one of two topics deleted while producing: recreated at once, then after 25 s",
    )
    .set("delivery.timeout.ms", 15000)
    .set("request.timeout.ms", 5000)
    .set("max.block.ms", 15000);
    s.topics = 2;
    s.may_stay_unresolved = Some(
        "a deleted topic takes the producer's state with it: its new incarnation cannot \
         recognise a resent batch as a duplicate",
    );
    let v = s.run(|ctx| {
        let doomed = &ctx.topics[1];
        for wait in [Duration::ZERO, Duration::from_secs(25)] {
            ctx.cluster.delete_topic(doomed).expect("delete");
            let deleted = Instant::now();
            ctx.note(format!("deleted {doomed}"));
            sleep(wait);
            // The deletion finishes in the background; creating the name again fails
            // until it has.
            courier_testkit::wait_until("the topic to be created again", WAIT, || {
                ctx.cluster
                    .create_topic(
                        &TopicSpec::new(doomed)
                            .partitions(PARTITIONS)
                            .replication_factor(3),
                    )
                    .map_err(|e| e.to_string())
            })
            .expect("create again");
            ctx.note(format!(
                "created {doomed} again, {:.1}s after the deletion",
                deleted.elapsed().as_secs_f64()
            ));
            sleep(Duration::from_secs(5));
        }
        // Acknowledged before the last creation: in a deleted incarnation - not
        // checked.
        ctx.cutoff(1, Instant::now() - Duration::from_secs(5));
    });
    assert!(v.failed > 0, "records outlived the second deletion: {v:#?}");
    // OUT_OF_ORDER_SEQUENCE_NUMBER (NotPersisted): a batch refused by the deleted
    // incarnation while the next one, already in flight, was accepted by the new one
    // (which holds no state for the producer and takes any sequence, KIP-360). Resending
    // it would land it after its successor, so the engine reports it unwritten instead;
    // the reader checks it is not in the log (`not_persisted_in_log`).
    assert!(
        v.failures.keys().all(|k| k.starts_with("DELIVERY_TIMEOUT")
            || k.starts_with("UNKNOWN_TOPIC_OR_PARTITION")
            || k == "OUT_OF_ORDER_SEQUENCE_NUMBER (NotPersisted)"
            || k.starts_with("UNRESOLVED_AFTER_EPOCH_BUMP (PossiblyPersisted)")),
        "{:?}",
        v.failures
    );
}

/// A record larger than the topic's `max.message.bytes` (30 kB against 20 kB; larger
/// than `batch.size`, so it travels alone) among the stream: it fails with a clear
/// error, every other record is acknowledged.
#[test]
fn oversized_record_fails_clearly_and_others_are_unaffected() {
    let mut s = Scenario::new(
        "oversized_record",
        "30 kB records against max.message.bytes=20000, mixed into the stream",
    );
    s.topic_configs = vec![("max.message.bytes", "20000")];
    // Every 200th record is oversized, under key 999 (its own per-key order). Random
    // letters: lz4 cannot shrink them below the limit (the broker checks the
    // compressed batch).
    s.extra = Some(Box::new(|id| {
        (id % 200 == 199).then(|| (999, incompressible(30_000, id)))
    }));
    let v = s.run(|_ctx| sleep(Duration::from_secs(20)));
    assert!(v.extra_sent > 0, "oversized records were sent");
    assert_eq!(
        v.failed, v.extra_sent,
        "only the oversized records fail: {:?}",
        v.failures
    );
    assert!(
        v.failures
            .keys()
            .all(|k| k.starts_with("MESSAGE_TOO_LARGE (NotPersisted)")),
        "{:?}",
        v.failures
    );
}

/// Retention removes every record of the producer and then its state
/// (`producer.id.expiration.ms`): the producer, idle meanwhile, sends on with the
/// sequences it had. Kafka 4 accepts them ("no current producer epoch: accept any
/// sequence"); brokers before 2.5 answered UNKNOWN_PRODUCER_ID, which the simulation
/// covers (`unknown_producer_id_after_retention_bumps_the_epoch_and_sends_on`).
#[test]
fn producer_sends_on_after_retention_removed_its_state() {
    let mut s = Scenario::new(
        "retention_expired_state",
        "retention and producer-id expiry remove the producer's state while it idles",
    );
    s.cluster = s
        .cluster
        .broker_property("log.retention.check.interval.ms", "1000")
        .broker_property("producer.id.expiration.ms", "3000")
        .broker_property("producer.id.expiration.check.interval.ms", "1000")
        .broker_property("log.segment.delete.delay.ms", "0");
    s.topic_configs = vec![
        ("retention.ms", "2000"),
        ("segment.ms", "1000"),
        ("file.delete.delay.ms", "0"),
    ];
    let v = s.run(|ctx| {
        sleep(Duration::from_secs(3));
        ctx.paused.store(true, Ordering::SeqCst);
        ctx.note("producer idle");
        let name = ctx.topics[0].clone();
        let emptied = courier_testkit::wait_until("retention to empty the topic", WAIT, || {
            let offsets = ctx
                .cluster
                .admin()
                .offsets(&name)
                .map_err(|e| e.to_string())?;
            if offsets
                .iter()
                .all(|(_, start, end)| start == end && *end > 0)
            {
                Ok(offsets)
            } else {
                Err(format!("{offsets:?}"))
            }
        })
        .expect("retention deletes every record");
        ctx.note(format!("retention emptied the topic: {emptied:?}"));
        // Keep what comes next: only the records before the idle time go.
        ctx.cluster
            .run_tool(
                "kafka.admin.ConfigCommand",
                &[
                    "--bootstrap-server",
                    &ctx.cluster.bootstrap(),
                    "--entity-type",
                    "topics",
                    "--entity-name",
                    &name,
                    "--alter",
                    "--add-config",
                    "retention.ms=604800000",
                ],
            )
            .expect("kafka-configs --alter");
        ctx.note("retention.ms back to a week");
        // Expiry runs every second and drops producers idle for 3 s.
        sleep(Duration::from_secs(5));
        ctx.cutoff(0, Instant::now());
        ctx.paused.store(false, Ordering::SeqCst);
        ctx.note("producer sends again");
        sleep(Duration::from_secs(8));
    });
    assert_eq!(v.failed, 0, "nothing fails after the state is gone: {v:#?}");
    assert!(
        v.unchecked > 0,
        "records before the retention were not checked"
    );
}
