//! Transactions on a real three-broker Kafka cluster through process kills (issue 15):
//! every scenario is judged by Kafka's console consumer at `read_committed` (and at
//! `read_uncommitted` where it shows that records were in the log and only a marker hid
//! them).
//!
//! - **A producer killed with `kill -9` mid-transaction** (`txn-fault-child`, a process
//!   of its own): a new instance with its `transactional.id` gets through
//!   `init_transactions`, which fences the dead one and has the coordinator abort its
//!   open transaction, well before `transaction.timeout.ms`; nothing of that transaction
//!   is visible, every committed one is, exactly once.
//! - **The transaction coordinator's broker killed during a commit**, at three moments:
//!   as soon as `commit_transaction` is called (a race with the EndTxn), with the
//!   EndTxn held in the broker's fault proxy so that it never arrives, and with the EndTxn
//!   delivered and its reply held, so that the coordinator wrote the commit and the
//!   producer never heard. The commit must resolve: `Ok` with every record visible once,
//!   or an error that says the outcome is unknown (all or nothing visible) - never an
//!   error that claims failure while the records are committed.
//! - **Two live instances with one id across a coordinator failover**: the
//!   coordinator's broker is killed between the old instance's commit and the new one's
//!   `init_transactions`; the old one then ends with a fatal `ProducerFenced`, nothing
//!   of its last transaction is in the log, and the new one commits.
//! - **Atomic across two topics, with consumer offsets**: transactions over
//!   `task-created` and `audit-log` committed, aborted after their records were
//!   acknowledged, and committed again, each with consumer offsets: read_committed sees
//!   the committed ones in both topics exactly once and nothing of the aborted one;
//!   `kafka-consumer-groups` shows the committed transaction's offset, not the aborted
//!   one's.
//!
//! One cluster (RF 3, `min.insync.replicas=2`, a fault proxy in front of each broker)
//! serves every scenario, one scenario at a time: they kill brokers, and each brings
//! the cluster back whole before the next.
//!
//! Transaction versions: each scenario runs with the cluster's finalized
//! `transaction.version` as Kafka 4.3 leaves it (2), and, in the full run, also with it
//! set to 1 (`kafka-features downgrade`). The producer picks its protocol from that
//! feature, and each scenario checks that it did (version 2, respectively 1).
//!
//! ```sh
//! cargo test -p courier-tests --test txn_faults                            # CI: ~3.5 min
//! COURIER_FAULTS_FULL=1 cargo test -p courier-tests --test txn_faults      # full: both versions, each kill moment twice, ~8-9 min
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use courier::net::{txn, BrokerConnection, ConnectOptions};
use courier::{
    ConsumerGroupMetadata, Producer, ProducerConfig, ProducerRecord, TransactionError,
    TransactionVersion, TxnOffset,
};
use courier_core::wire::KEY_TYPE_TRANSACTION;
use courier_testkit::{self as kit, ConsumeOptions, KafkaCluster, ProxyMode, TopicSpec};

const PARTITIONS: i32 = 3;
const WAIT: Duration = Duration::from_secs(120);
/// Longer than any scenario waits: a transaction the coordinator aborts within a
/// scenario was aborted because of what the scenario did, not by its timeout.
const TXN_TIMEOUT_MS: &str = "120000";
/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;

fn full_size() -> bool {
    std::env::var("COURIER_FAULTS_FULL").is_ok_and(|v| v == "1")
}

/// The cluster's finalized `transaction.version` a scenario runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnVersion {
    /// Set to 1 with `kafka-features downgrade`.
    One,
    /// Whatever a new Kafka 4.3 cluster finalizes (2).
    AsItComes,
}

/// Checks that `p`, initialised, runs the protocol the cluster's feature asks for.
fn expect_protocol(p: &Producer, version: TxnVersion) {
    let want = match version {
        TxnVersion::One => TransactionVersion::V1,
        TxnVersion::AsItComes => TransactionVersion::V2,
    };
    assert_eq!(p.transaction_version(), Some(want), "{version:?}");
}

/// The versions each scenario runs with: the cluster as it comes in CI, both in the
/// full run (twice the time).
fn versions() -> Vec<TxnVersion> {
    if full_size() {
        vec![TxnVersion::AsItComes, TxnVersion::One]
    } else {
        vec![TxnVersion::AsItComes]
    }
}

/// One scenario at a time: they kill brokers of the one cluster. A failed scenario
/// poisons the lock; the next still runs (and heals the cluster first).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Shared {
    cluster: KafkaCluster,
    /// `transaction.version` as the cluster came up.
    initial_level: i16,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cluster = KafkaCluster::builder()
            .brokers(3)
            .with_proxies(true)
            .start()
            .expect("a 3-broker cluster");
        let initial_level = finalized_txn_version(&cluster);
        eprintln!("[txn] the cluster came up with transaction.version={initial_level}");
        Shared {
            cluster,
            initial_level,
        }
    })
}

/// Takes the scenario lock, makes the cluster whole, and sets `transaction.version`.
fn prepare(version: TxnVersion) -> (std::sync::MutexGuard<'static, ()>, &'static KafkaCluster) {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = shared();
    heal(&s.cluster);
    let level = match version {
        TxnVersion::One => 1,
        TxnVersion::AsItComes => s.initial_level,
    };
    set_txn_version(&s.cluster, level);
    eprintln!("[txn] running with transaction.version={level} ({version:?})");
    (guard, &s.cluster)
}

/// Every broker running and every proxy passing traffic, with full ISRs.
fn heal(cluster: &KafkaCluster) {
    let local = cluster.local().expect("the local backend");
    let mut restarted = false;
    for id in cluster.broker_ids().expect("broker ids") {
        cluster
            .proxy(id)
            .expect("a proxy")
            .set_mode(ProxyMode::Pass);
        if local.is_running(id).unwrap_or(false) {
            let _ = cluster.resume(id);
        } else {
            cluster.start_broker(id).expect("the broker restarts");
            restarted = true;
        }
    }
    if restarted {
        wait_whole(cluster, &[]);
    }
}

/// Waits until the transaction state log and `topics` have their full ISR again.
fn wait_whole(cluster: &KafkaCluster, topics: &[&str]) {
    for p in 0..4 {
        // Four partitions: the kit's transaction.state.log.num.partitions. Created with
        // the first FindCoordinator for a transactional id, so absent before that.
        if cluster.partition("__transaction_state", p).is_ok() {
            cluster
                .wait_for_full_isr("__transaction_state", p, WAIT)
                .expect("the transaction log's full ISR");
        }
    }
    for t in topics {
        for p in 0..PARTITIONS {
            cluster.wait_for_full_isr(t, p, WAIT).expect("full ISR");
        }
    }
}

/// Prints how long a scenario took when it ends (passed or not), for the docs' runtimes.
struct Took(&'static str, TxnVersion, Instant);

impl Drop for Took {
    fn drop(&mut self) {
        eprintln!(
            "[txn] {} ({:?}) took {:?}",
            self.0,
            self.1,
            self.2.elapsed()
        );
    }
}

// ----- transaction.version -----

fn features(cluster: &KafkaCluster, args: &[&str]) -> String {
    let bootstrap = cluster.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    cluster
        .run_tool("org.apache.kafka.tools.FeatureCommand", &all)
        .unwrap_or_else(|e| panic!("kafka-features {args:?}: {e}"))
}

/// The finalized level of `transaction.version`, from `kafka-features describe`
/// (`Feature: transaction.version  SupportedMinVersion: 0  ...  FinalizedVersionLevel: 2`).
fn finalized_txn_version(cluster: &KafkaCluster) -> i16 {
    let out = features(cluster, &["describe"]);
    let line = out
        .lines()
        .find(|l| l.contains("Feature: transaction.version"))
        .unwrap_or_else(|| panic!("no transaction.version in kafka-features describe:\n{out}"));
    let mut fields = line.split_whitespace();
    fields
        .find(|f| *f == "FinalizedVersionLevel:")
        .and_then(|_| fields.next())
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no FinalizedVersionLevel in {line:?}"))
}

fn set_txn_version(cluster: &KafkaCluster, level: i16) {
    let now = finalized_txn_version(cluster);
    if now == level {
        return;
    }
    let verb = if level < now { "downgrade" } else { "upgrade" };
    let feature = format!("transaction.version={level}");
    features(cluster, &[verb, "--feature", &feature]);
    let after = finalized_txn_version(cluster);
    assert_eq!(after, level, "kafka-features {verb} {feature} did not take");
}

// ----- clients -----

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A transactional producer through the brokers' fault proxies.
fn producer(cluster: &KafkaCluster, id: &str) -> Producer {
    let bootstrap = cluster.proxied_bootstrap().expect("proxies");
    let config = ProducerConfig::builder()
        .set("bootstrap.servers", &bootstrap)
        .and_then(|b| b.set("transactional.id", id))
        .and_then(|b| b.set("transaction.timeout.ms", TXN_TIMEOUT_MS))
        // A stalled coordinator is given up on within seconds, not the default 30.
        .and_then(|b| b.set("request.timeout.ms", "5000"))
        .and_then(|b| b.set("max.block.ms", "30000"))
        .and_then(|b| b.set("linger.ms", "5"))
        .and_then(|b| b.set("compression.type", "lz4"))
        .expect("settings")
        .build()
        .expect("a valid configuration");
    Producer::new(config).expect("a producer")
}

fn record(topic: &str, i: usize, value: String) -> ProducerRecord {
    ProducerRecord::new(topic)
        .key(format!("k{}", i % 6))
        .value(value)
}

/// Calls a transactional operation again while it says so (it timed out at
/// `max.block.ms` and is still under way), for at most `limit`.
async fn resolve<F, Fut>(what: &str, limit: Duration, mut call: F) -> Result<(), TransactionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), TransactionError>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Err(e) if e.is_retriable() && started.elapsed() < limit => {
                eprintln!("[txn] {what}: {e}; calling it again");
            }
            r => return r,
        }
    }
}

/// A committed transaction of `n` records `<prefix>-<i>`; returns their values.
async fn commit_records(p: &Producer, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    p.begin_transaction().await.expect("begin_transaction");
    let mut acks = Vec::new();
    let mut values = Vec::new();
    for i in 0..n {
        let v = format!("{prefix}-{i}");
        values.push(v.clone());
        acks.push(p.produce(record(topic, i, v)).await.expect("produce"));
    }
    resolve("commit_transaction", WAIT, || p.commit_transaction())
        .await
        .expect("commit_transaction");
    for a in acks {
        a.await.expect("a committed record is acknowledged");
    }
    values
}

fn create_topic(cluster: &KafkaCluster, prefix: &str) -> String {
    let t = cluster.unique_topic(prefix);
    cluster
        .create_topic(
            &TopicSpec::new(&t)
                .partitions(PARTITIONS)
                .replication_factor(3)
                .config("min.insync.replicas", "2"),
        )
        .expect("topic created");
    t
}

/// The broker coordinating `id`'s transactions (FindCoordinator to any live broker).
fn coordinator_of(cluster: &KafkaCluster, id: &str) -> i32 {
    let rt = runtime();
    let addrs: Vec<String> = cluster.bootstrap().split(',').map(str::to_owned).collect();
    let deadline = Instant::now() + WAIT;
    rt.block_on(async {
        let opts = ConnectOptions {
            client_id: "txn-faults-find-coordinator".into(),
            ..ConnectOptions::default()
        };
        let mut last = String::new();
        while Instant::now() < deadline {
            for addr in &addrs {
                let Ok(conn) = BrokerConnection::connect(addr, &opts).await else {
                    continue;
                };
                match txn::find_coordinator(&conn, KEY_TYPE_TRANSACTION, id).await {
                    Ok(c) if c.error_code == 0 => return c.node_id,
                    Ok(c) => last = format!("{c:?}"),
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no coordinator for {id} within {WAIT:?}; last: {last}")
    })
}

// ----- the judge -----

/// Every value of `topic` as Kafka's console consumer reads it.
fn read(cluster: &KafkaCluster, topic: &str, read_committed: bool) -> Vec<String> {
    cluster
        .consume(
            topic,
            &ConsumeOptions {
                idle_timeout: Duration::from_secs(6),
                read_committed,
                ..ConsumeOptions::default()
            },
        )
        .expect("the console consumer")
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap_or_default()).expect("UTF-8 values"))
        .collect()
}

fn counts(values: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v.as_str()).or_insert(0) += 1;
    }
    m
}

/// `seen` holds each of `expected` exactly once and nothing else.
fn assert_exactly_once(what: &str, seen: &[String], expected: &[String]) {
    let seen_counts = counts(seen);
    let want = counts(expected);
    let missing: Vec<&str> = want
        .keys()
        .filter(|v| !seen_counts.contains_key(*v))
        .copied()
        .collect();
    let duplicated: Vec<(&str, usize)> = seen_counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, n)| (*v, *n))
        .collect();
    let unexpected: Vec<&str> = seen_counts
        .keys()
        .filter(|v| !want.contains_key(*v))
        .copied()
        .collect();
    assert!(
        missing.is_empty() && duplicated.is_empty() && unexpected.is_empty(),
        "{what}: {} read, {} expected; missing {missing:?}, duplicated {duplicated:?}, \
         not expected {unexpected:?}",
        seen.len(),
        expected.len()
    );
}

// ----- 1. kill -9 of the producer mid-transaction -----

#[test]
fn a_producer_killed_mid_transaction_is_fenced_by_its_successor_and_its_transaction_aborted() {
    for v in versions() {
        killed_producer(v);
    }
}

fn killed_producer(version: TxnVersion) {
    let (_one, cluster) = prepare(version);
    let _took = Took("killed_producer", version, Instant::now());
    let topic = create_topic(cluster, "txn-kill9");
    let id = cluster.unique_topic("txn-kill9-id");
    let (committed, records) = (3usize, 50usize);
    let mut child = Command::new(env!("CARGO_BIN_EXE_txn-fault-child"))
        .args([
            cluster.bootstrap(),
            id.clone(),
            topic.clone(),
            committed.to_string(),
            records.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("txn-fault-child starts");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut said = Vec::new();
    let deadline = Instant::now() + WAIT;
    while said.last().map(String::as_str) != Some("ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => said.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("the child did not get ready ({e}); it said {said:?}");
            }
        }
    }
    let mut want: Vec<String> = (0..committed).map(|t| format!("committed {t}")).collect();
    want.extend(["acknowledged".into(), "ready".into()]);
    assert_eq!(said, want);
    // kill -9: no close, no abort, the open transaction's records acknowledged and
    // more of them queued or in flight.
    child.kill().expect("kill -9 of the child");
    let status = child.wait().expect("the child's status");
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    let killed_at = Instant::now();

    let rt = runtime();
    let after = rt.block_on(async {
        let p = producer(cluster, &id);
        resolve("init_transactions", WAIT, || p.init_transactions())
            .await
            .expect("the new instance's init_transactions");
        expect_protocol(&p, version);
        let took = killed_at.elapsed();
        eprintln!("[txn] the new instance's init_transactions returned {took:?} after the kill");
        // The coordinator would abort the dead producer's transaction by itself only
        // after transaction.timeout.ms (120 s); the new instance's InitProducerId made it
        // abort at once (CONCURRENT_TRANSACTIONS until done).
        assert!(
            took < Duration::from_secs(60),
            "init_transactions took {took:?}: the coordinator waited for the timeout"
        );
        let after = commit_records(&p, &topic, "after", 20).await;
        p.close(Duration::from_secs(10)).await.expect("close");
        after
    });

    let mut expected: Vec<String> = (0..committed)
        .flat_map(|t| (0..records).map(move |i| format!("committed-{t}-{i}")))
        .collect();
    expected.extend(after);
    // read_committed: every committed transaction once, the new instance's transaction
    // behind the aborted one (so the abort marker let the last stable offset pass), and
    // nothing of the open transaction.
    assert_exactly_once(
        "read_committed after kill -9",
        &read(cluster, &topic, true),
        &expected,
    );
    // read_uncommitted: the open transaction's acknowledged records are in the log;
    // only the abort marker hides them.
    let all = read(cluster, &topic, false);
    let in_log = counts(&all);
    for i in 0..records {
        let v = format!("open-{i}");
        assert_eq!(
            in_log.get(v.as_str()),
            Some(&1),
            "{v}, acknowledged before the kill, is not in the log once"
        );
    }
    for v in &expected {
        assert_eq!(in_log.get(v.as_str()), Some(&1), "{v} in the log");
    }
}

// ----- 2. the coordinator's broker killed during a commit -----

/// When the coordinator's broker dies relative to the EndTxn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillMoment {
    /// `kill -9` as soon as `commit_transaction` was called: the EndTxn may or may not
    /// have reached the broker.
    AtOnce,
    /// The EndTxn is held in the broker's fault proxy (3 s delay) and the broker dies
    /// before it is forwarded: the coordinator never saw it.
    BeforeEndTxnArrives,
    /// The proxy delays both ways by 2 s: the EndTxn reaches the broker at 2 s, and the
    /// broker dies as soon as its reply reaches the proxy, which holds it: the
    /// coordinator answers EndTxn only once PrepareCommit is in the transaction log, so
    /// the commit was decided, and the producer never heard.
    AfterEndTxnArrives,
}

/// What the producer said about a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Committed,
    /// An error with `commit_outcome_unknown`: all or nothing may be visible.
    OutcomeUnknown,
    /// An error that does not say the outcome is unknown: it claims the commit failed.
    Failed,
}

#[test]
fn a_commit_resolves_when_the_coordinators_broker_is_killed_during_it() {
    for v in versions() {
        coordinator_killed(v);
    }
}

fn coordinator_killed(version: TxnVersion) {
    let (_one, cluster) = prepare(version);
    let _took = Took("coordinator_killed", version, Instant::now());
    let topic = create_topic(cluster, "txn-coord-kill");
    let moments = [
        KillMoment::AtOnce,
        KillMoment::BeforeEndTxnArrives,
        KillMoment::AfterEndTxnArrives,
    ];
    let repeats = if full_size() { 2 } else { 1 };
    let records = 60;
    let rt = runtime();
    // (moment, the transaction's values, what the producer said, a follow-up
    // transaction's values)
    let mut outcomes = Vec::new();
    for round in 0..repeats {
        for (m, moment) in moments.iter().enumerate() {
            let id = cluster.unique_topic("txn-coord-kill-id");
            let prefix = format!("r{round}-m{m}");
            let p = rt.block_on(async {
                let p = producer(cluster, &id);
                resolve("init_transactions", WAIT, || p.init_transactions())
                    .await
                    .expect("init_transactions");
                expect_protocol(&p, version);
                p
            });
            let coordinator = coordinator_of(cluster, &id);
            eprintln!("[txn] {moment:?}: {id} is coordinated by broker {coordinator}");
            let values: Vec<String> = (0..records).map(|i| format!("{prefix}-{i}")).collect();
            rt.block_on(async {
                p.begin_transaction().await.expect("begin_transaction");
                let mut acks = Vec::new();
                for (i, v) in values.iter().enumerate() {
                    acks.push(
                        p.produce(record(&topic, i, v.clone()))
                            .await
                            .expect("produce"),
                    );
                }
                // Every record acknowledged first: the commit's only request is the
                // EndTxn, and the records are in the log whatever the outcome.
                p.flush().await.expect("flush");
                for a in acks {
                    a.await
                        .expect("a record of the transaction is acknowledged");
                }
            });
            let proxy = cluster.proxy(coordinator).expect("the coordinator's proxy");
            match moment {
                KillMoment::AtOnce => {}
                KillMoment::BeforeEndTxnArrives => proxy.set_mode(ProxyMode::Delay(secs(3.0))),
                KillMoment::AfterEndTxnArrives => proxy.set_mode(ProxyMode::Delay(secs(2.0))),
            }
            let before = proxy.stats();
            let committer = p.clone();
            let commit = rt.spawn(async move {
                resolve("commit_transaction", Duration::from_secs(150), || {
                    committer.commit_transaction()
                })
                .await
            });
            match moment {
                KillMoment::AtOnce => {}
                KillMoment::BeforeEndTxnArrives => std::thread::sleep(secs(1.0)),
                KillMoment::AfterEndTxnArrives => {
                    // The EndTxn forwarded and the broker's answer read by the proxy,
                    // which holds it 2 s from then: far longer than this poll (100 ms)
                    // takes to see it.
                    kit::wait_until("the EndTxn's answer at the proxy", WAIT, || {
                        let st = proxy.stats();
                        (st.bytes_to_broker > before.bytes_to_broker
                            && st.bytes_from_broker > before.bytes_from_broker)
                            .then_some(())
                            .ok_or(format!("{st:?}"))
                    })
                    .expect("the broker answered the EndTxn");
                }
            }
            // Cut first, so that what the proxy holds is dropped, not delivered late.
            if *moment != KillMoment::AtOnce {
                proxy.set_mode(ProxyMode::Refuse);
            }
            let at_kill = proxy.stats();
            cluster
                .kill(coordinator)
                .expect("kill -9 of the coordinator");
            eprintln!("[txn] {moment:?}: killed broker {coordinator}");
            match moment {
                KillMoment::AtOnce => {}
                KillMoment::BeforeEndTxnArrives => assert_eq!(
                    at_kill.bytes_to_broker, before.bytes_to_broker,
                    "the EndTxn was to be held in the proxy, but bytes reached the broker"
                ),
                KillMoment::AfterEndTxnArrives => {
                    assert!(
                        at_kill.bytes_to_broker > before.bytes_to_broker,
                        "the EndTxn was to reach the broker before the kill: {before:?} {at_kill:?}"
                    );
                    assert!(
                        at_kill.bytes_from_broker > before.bytes_from_broker,
                        "the broker was to answer the EndTxn before the kill: {before:?} {at_kill:?}"
                    );
                    assert_eq!(
                        at_kill.bytes_to_client, before.bytes_to_client,
                        "the EndTxn's reply was to be held in the proxy, but it was delivered"
                    );
                }
            }
            let started = Instant::now();
            let result = rt.block_on(commit).expect("the commit task");
            eprintln!(
                "[txn] {moment:?}: commit_transaction returned {result:?} {:?} after the kill",
                started.elapsed()
            );
            let said = match &result {
                Ok(()) => Said::Committed,
                Err(e) if e.commit_outcome_unknown() => Said::OutcomeUnknown,
                Err(_) => Said::Failed,
            };
            // After a commit that says it committed, the producer goes on.
            let follow_up = if said == Said::Committed {
                rt.block_on(commit_records(&p, &topic, &format!("{prefix}-next"), 10))
            } else {
                Vec::new()
            };
            rt.block_on(async {
                let _ = p.close(Duration::from_secs(10)).await;
            });
            outcomes.push((*moment, values, said, result.err(), follow_up));
            proxy.set_mode(ProxyMode::Pass);
            cluster
                .start_broker(coordinator)
                .expect("the coordinator's broker restarts");
            wait_whole(cluster, &[&topic]);
        }
    }

    let committed = counts_owned(&read(cluster, &topic, true));
    let in_log = counts_owned(&read(cluster, &topic, false));
    let mut report = Vec::new();
    for (moment, values, said, err, follow_up) in &outcomes {
        let visible = values.iter().filter(|v| committed.contains_key(*v)).count();
        report.push(format!(
            "{moment:?}: producer said {said:?} ({err:?}); {visible} of {} visible at read_committed",
            values.len()
        ));
        for v in values.iter().chain(follow_up) {
            let n = committed.get(v).copied().unwrap_or(0);
            assert!(n <= 1, "{v} visible {n} times ({moment:?})");
            assert_eq!(
                in_log.get(v).copied(),
                Some(1),
                "{v}, acknowledged, is not in the log once ({moment:?})"
            );
        }
        for v in follow_up {
            assert_eq!(
                committed.get(v),
                Some(&1),
                "{v}: the transaction after a commit through a coordinator kill ({moment:?})"
            );
        }
        match said {
            Said::Committed => assert_eq!(
                visible,
                values.len(),
                "{moment:?}: the commit returned Ok, but only {visible} of {} records are \
                 visible at read_committed",
                values.len()
            ),
            Said::OutcomeUnknown => assert!(
                visible == 0 || visible == values.len(),
                "{moment:?}: the transaction is partly visible ({visible} of {})",
                values.len()
            ),
            Said::Failed => assert_eq!(
                visible,
                0,
                "{moment:?}: commit_transaction failed with {err:?}, which does not say the \
                 outcome is unknown, but {visible} of its {} records are committed",
                values.len()
            ),
        }
    }
    eprintln!("[txn] coordinator kills:\n  {}", report.join("\n  "));
}

fn counts_owned(values: &[String]) -> BTreeMap<String, usize> {
    counts(values)
        .into_iter()
        .map(|(v, n)| (v.to_owned(), n))
        .collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ----- 3. two live instances across a coordinator failover -----

#[test]
fn of_two_live_instances_across_a_coordinator_failover_the_older_is_fenced() {
    for v in versions() {
        fenced_across_failover(v);
    }
}

fn fenced_across_failover(version: TxnVersion) {
    let (_one, cluster) = prepare(version);
    let _took = Took("fenced_across_failover", version, Instant::now());
    let topic = create_topic(cluster, "txn-fence-failover");
    let id = cluster.unique_topic("txn-fence-failover-id");
    let rt = runtime();
    // Producers start their driver on the runtime they are created in.
    let _in_rt = rt.enter();
    let old = producer(cluster, &id);
    let mut expected = rt.block_on(async {
        resolve("init_transactions", WAIT, || old.init_transactions())
            .await
            .expect("the old instance's init_transactions");
        expect_protocol(&old, version);
        commit_records(&old, &topic, "old-committed", 10).await
    });
    let coordinator = coordinator_of(cluster, &id);
    cluster
        .kill(coordinator)
        .expect("kill -9 of the coordinator");
    eprintln!("[txn] killed broker {coordinator}, the coordinator of {id}");
    let new = producer(cluster, &id);
    rt.block_on(async {
        // The new instance finds the new coordinator, which loaded the id's state from
        // the transaction log, and fences the old instance there.
        resolve("init_transactions", WAIT, || new.init_transactions())
            .await
            .expect("the new instance's init_transactions after the failover");
        expected.extend(commit_records(&new, &topic, "new-committed", 10).await);

        old.begin_transaction()
            .await
            .expect("begin (nothing is sent)");
        let mut fenced_records = Vec::new();
        for i in 0..10 {
            if let Ok(f) = old
                .produce(record(&topic, i, format!("old-fenced-{i}")))
                .await
            {
                fenced_records.push(f);
            }
        }
        let err = resolve("commit_transaction", WAIT, || old.commit_transaction())
            .await
            .expect_err("the fenced instance's commit");
        // Version 1: the new coordinator refuses the old epoch's AddPartitionsToTxn with
        // PRODUCER_FENCED (fatal). A Produce refused by a leader that verified the
        // transaction (version 2) is abortable (KIP-588); then the abort's EndTxn is the
        // one that gets PRODUCER_FENCED.
        let fatal = if err.is_abortable() {
            eprintln!("[txn] the old instance's commit: {err}; aborting");
            resolve("abort_transaction", WAIT, || old.abort_transaction())
                .await
                .expect_err("the fenced instance's abort")
        } else {
            err
        };
        assert!(fatal.is_fatal(), "{fatal}");
        assert_eq!(fatal.java_name(), "ProducerFencedException", "{fatal}");
        assert!(!fatal.commit_outcome_unknown(), "{fatal}");
        for f in fenced_records {
            assert!(
                f.await.is_err(),
                "a record of the fenced instance was acknowledged"
            );
        }
        let again = old.begin_transaction().await.unwrap_err();
        assert!(again.is_fatal(), "{again}");
        let _ = old.close(Duration::from_secs(5)).await;

        expected.extend(commit_records(&new, &topic, "new-again", 10).await);
        new.close(Duration::from_secs(10)).await.expect("close");
    });
    cluster
        .start_broker(coordinator)
        .expect("the coordinator's broker restarts");
    wait_whole(cluster, &[&topic]);
    assert_exactly_once(
        "read_committed after fencing across a failover",
        &read(cluster, &topic, true),
        &expected,
    );
    // Nothing of the fenced transaction was written at all.
    let all = read(cluster, &topic, false);
    assert!(
        !all.iter().any(|v| v.starts_with("old-fenced")),
        "the fenced instance wrote records: {all:?}"
    );
}

// ----- 4. atomic across two topics, offsets with the transaction -----

#[test]
fn transactions_are_atomic_across_two_topics_with_their_offsets_on_three_brokers() {
    for v in versions() {
        atomic_across_topics(v);
    }
}

fn atomic_across_topics(version: TxnVersion) {
    let (_one, cluster) = prepare(version);
    let _took = Took("atomic_across_topics", version, Instant::now());
    let tasks = create_topic(cluster, "task-created");
    let audit = create_topic(cluster, "audit-log");
    let input = create_topic(cluster, "txn-input");
    let group = cluster.unique_topic("txn-group");
    let id = cluster.unique_topic("txn-atomic-id");
    let rt = runtime();
    let _in_rt = rt.enter();
    let p = producer(cluster, &id);
    let topics = [tasks.as_str(), audit.as_str()];
    let mut committed = rt.block_on(async {
        resolve("init_transactions", WAIT, || p.init_transactions())
            .await
            .expect("init_transactions");
        expect_protocol(&p, version);
        let mut committed = one_txn(&p, &topics, &input, &group, "a", 42, true).await;
        committed.extend(one_txn(&p, &topics, &input, &group, "b", 99, false).await);
        committed
    });
    assert_eq!(
        cluster.committed_offset(&group, &input).as_deref(),
        Some("42"),
        "the committed transaction's offset, not the aborted one's (99)"
    );
    rt.block_on(async {
        committed.extend(one_txn(&p, &topics, &input, &group, "c", 120, true).await);
        p.close(Duration::from_secs(30)).await.expect("close");
    });
    // Each topic holds its half of every committed transaction, once.
    let per_topic: Vec<String> = committed.iter().step_by(2).cloned().collect();
    for topic in [&tasks, &audit] {
        assert_exactly_once(topic, &read(cluster, topic, true), &per_topic);
        let all = read(cluster, topic, false);
        assert_eq!(
            all.iter().filter(|v| v.starts_with("b-")).count(),
            20,
            "{topic}: the aborted transaction's records are in the log, hidden"
        );
    }
    assert_eq!(
        cluster.committed_offset(&group, &input).as_deref(),
        Some("120"),
        "the last committed transaction's offset"
    );
}

/// One transaction of 20 records `<name>-<i>` to each of `topics` with `offset` for
/// `input`'s partition 0, committed or (after every record was acknowledged) aborted;
/// returns the values a read_committed reader must see, in send order.
async fn one_txn(
    p: &Producer,
    topics: &[&str; 2],
    input: &str,
    group: &str,
    name: &str,
    offset: i64,
    commit: bool,
) -> Vec<String> {
    p.begin_transaction().await.expect("begin_transaction");
    let mut acks = Vec::new();
    let mut values = Vec::new();
    for i in 0..20 {
        for topic in topics {
            let v = format!("{name}-{i}");
            values.push(v.clone());
            acks.push(p.produce(record(topic, i, v)).await.expect("produce"));
        }
    }
    p.send_offsets_to_transaction(
        [TxnOffset::new(input, 0, offset)],
        ConsumerGroupMetadata::new(group),
    )
    .await
    .expect("send_offsets_to_transaction");
    if commit {
        resolve("commit_transaction", WAIT, || p.commit_transaction())
            .await
            .expect("commit_transaction");
        for a in acks {
            a.await.expect("a committed record is acknowledged");
        }
        values
    } else {
        // Every record in the log before the abort: only its marker hides them.
        for a in acks {
            a.await.expect("acknowledged before the abort");
        }
        resolve("abort_transaction", WAIT, || p.abort_transaction())
            .await
            .expect("abort_transaction");
        Vec::new()
    }
}
