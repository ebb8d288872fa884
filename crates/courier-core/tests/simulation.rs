//! Deterministic simulation of the sans-I/O producer engine against a simulated
//! three-broker Kafka cluster (issue 6: "no acknowledged record lost, duplicated or
//! reordered").
//!
//! The engine only sees time, broker answers and its own actions, so a seeded model of
//! the cluster and the network can put it through thousands of fault histories per
//! second, the way quinn-proto's tests do (see `shared/notes/style.md`). Only
//! courier-core's public API is used: this is what the async driver sees too.
//!
//! # The cluster model
//!
//! - **One replicated log per partition**, with a high watermark. A batch answered with
//!   success is committed (acks=all). A batch answered NOT_ENOUGH_REPLICAS_AFTER_APPEND
//!   or REQUEST_TIMED_OUT, or whose answer was lost, may sit in the uncommitted tail,
//!   and a leader change may truncate that tail (KIP-101: the new leader need not have
//!   it). Committed entries are never truncated (no unclean election).
//! - **Producer state is derived from the log**, as the broker rebuilds it from
//!   segments and snapshots: the last five batches of the producer's latest epoch
//!   (`ProducerStateEntry`). A batch is a duplicate if it matches one of them, must be
//!   the next sequence in the same epoch, must start at 0 in a newer epoch, and is fenced
//!   (INVALID_PRODUCER_EPOCH) in an older one. With no state left (retention) the broker
//!   either accepts any sequence (Kafka 2.5+, `ProducerAppendInfo.checkSequence`: "if
//!   there is no current producer epoch ... accept writes with any sequence number") or
//!   answers UNKNOWN_PRODUCER_ID (older brokers and some Kafka-compatible ones); each
//!   seed picks one flavour. Likewise duplicates are answered with NONE and the stored
//!   offset (Kafka) or DUPLICATE_SEQUENCE_NUMBER without an offset.
//! - **One connection per broker**: a broker handles a connection's requests one at a
//!   time in order and answers in order; answers of different brokers interleave
//!   freely (reordering across brokers) and arrive late (delay).
//! - **Faults**: connections cut (answers lost after the write; the request being
//!   handled may still be applied later - a "zombie"; requests still in the client's
//!   buffer are reported as never written), client-side request timeouts
//!   (`request.timeout.ms`, which close the connection as the Java client does), broker
//!   crashes and SIGSTOP-style pauses, leader moves and elections with truncation, ISR
//!   below `min.insync.replicas`, slow replication, producer state lost to retention,
//!   failed metadata and InitProducerId requests, producer epochs near `i16::MAX`, and
//!   stale answers delivered a second time for a request id the engine already settled.
//!
//! Retention can only remove a producer's state once nothing it sent to that partition
//! is unresolved: retention works on segments hours old, far beyond
//! `delivery.timeout.ms`. (The note in `producer/tests.rs` explains why forgetting
//! earlier would be an unrealistic fault that no producer can survive: a broker that
//! accepts any sequence from an unknown producer would append a retried batch twice.)
//!
//! # The invariants (the same ones `tests/faults.rs` checks on real clusters)
//!
//! Every record gets exactly one outcome; a record acknowledged Ok is in the log exactly
//! once, at the partition and offset reported; per partition the log holds records in
//! send order (acknowledged or not); nothing is acknowledged that is not in the log; a
//! record reported `NotPersisted` was never appended by any attempt. After the faults
//! heal, new records are acknowledged (the producer recovers; no fatal state).
//!
//! `SIM_SEED=n` replays one seed exactly; `SIM_SEEDS=n` runs seeds `0..n` (default 2000).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_core::decode::decode_batch;
use courier_core::partitioner::{PartitionerKind, XorShiftRng};
use courier_core::producer::classify::{classify_produce_error, codes, error_name, Disposition};
use courier_core::producer::{
    Action, CompressJob, EngineConfig, Failure, FailureReason, PartitionMetadata,
    PartitionResponse, Persistence, ProduceRequest, ProduceResult, ProducerEngine, Record,
    TopicMetadata,
};
use courier_core::sequence::increment_sequence;
use courier_core::{Compression, Compressor};

type Token = u64;
/// An InitProducerId answer: `(producer id, epoch)` or an error code.
type PidAnswer = Result<(i64, i16), i16>;

const TOPIC: &str = "sim";
const BROKERS: i32 = 3;
/// Kafka's `ProducerStateEntry` keeps the metadata of this many batches per producer.
const DEDUPE_WINDOW: usize = 5;
/// Records sent after every fault has healed; all must be acknowledged.
const RECOVERY_RECORDS: u64 = 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seeded randomness for the cluster and the network (the engine has its own seed).
struct Rng(XorShiftRng);

impl Rng {
    fn new(seed: u64) -> Self {
        // Spread consecutive seeds apart: xorshift's first outputs of small seeds are
        // close to each other.
        Rng(XorShiftRng::new(
            seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
        ))
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn ms_between(&mut self, lo: u64, hi: u64) -> Duration {
        ms(lo + self.below(hi - lo + 1))
    }
}

/// How often each fault and each interesting outcome happened; summed over seeds and
/// checked, so a model change that stops a fault from firing fails the test instead of
/// silently proving less.
#[derive(Default, Debug, Clone)]
struct Stats(BTreeMap<String, u64>);

impl Stats {
    fn add(&mut self, key: &str, n: u64) {
        *self.0.entry(key.to_string()).or_default() += n;
    }
    fn bump(&mut self, key: &str) {
        self.add(key, 1);
    }
    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
    fn merge(&mut self, other: &Stats) {
        for (k, v) in &other.0 {
            if k.starts_with("max ") {
                self.max(k, *v);
            } else {
                self.add(k, *v);
            }
        }
    }
    fn max(&mut self, key: &str, v: u64) {
        let e = self.0.entry(key.to_string()).or_default();
        *e = (*e).max(v);
    }
}

/// One stored batch.
#[derive(Debug, Clone)]
struct Entry {
    pid: i64,
    epoch: i16,
    base_seq: i32,
    last_seq: i32,
    base_offset: i64,
    tokens: Vec<Token>,
}

#[derive(Debug)]
enum Append {
    New(usize),
    Duplicate(usize),
    Rejected(i16),
}

/// One partition as the in-sync replicas see it.
struct PartitionSim {
    /// Leader broker, -1 during an election.
    leader: i32,
    log: Vec<Entry>,
    /// Entries below the high watermark.
    committed: usize,
    /// Producer state of entries before this index was removed by retention.
    state_start: usize,
    /// ISR at or above `min.insync.replicas`.
    min_isr_ok: bool,
    /// Followers lag: appends are not acknowledged in time.
    slow: bool,
}

impl PartitionSim {
    fn next_offset(&self) -> i64 {
        self.log
            .last()
            .map_or(0, |e| e.base_offset + e.tokens.len() as i64)
    }

    /// Kafka's `UnifiedLog.analyzeAndValidateProducerState` for one client batch.
    fn append(
        &mut self,
        pid: i64,
        epoch: i16,
        base_seq: i32,
        tokens: Vec<Token>,
        unknown_pid_rejects: bool,
    ) -> Append {
        let last_seq = increment_sequence(base_seq, tokens.len() as i32 - 1);
        // The producer's entry: its latest epoch and up to five batches of it.
        let mut state: Vec<usize> = Vec::new();
        let mut state_epoch = None;
        for i in (self.state_start..self.log.len()).rev() {
            let e = &self.log[i];
            if e.pid != pid {
                continue;
            }
            match state_epoch {
                None => state_epoch = Some(e.epoch),
                Some(se) if se != e.epoch => break,
                _ => {}
            }
            state.push(i);
            if state.len() == DEDUPE_WINDOW {
                break;
            }
        }
        match state_epoch {
            None => {
                if base_seq != 0 && unknown_pid_rejects {
                    return Append::Rejected(codes::UNKNOWN_PRODUCER_ID);
                }
            }
            Some(se) => {
                if epoch == se {
                    if let Some(&dup) = state.iter().find(|&&i| {
                        self.log[i].base_seq == base_seq && self.log[i].last_seq == last_seq
                    }) {
                        return Append::Duplicate(dup);
                    }
                    let last = self.log[state[0]].last_seq;
                    if base_seq != increment_sequence(last, 1) {
                        return Append::Rejected(codes::OUT_OF_ORDER_SEQUENCE_NUMBER);
                    }
                } else if epoch < se {
                    return Append::Rejected(codes::INVALID_PRODUCER_EPOCH);
                } else if base_seq != 0 {
                    return Append::Rejected(codes::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
            }
        }
        let base_offset = self.next_offset();
        self.log.push(Entry {
            pid,
            epoch,
            base_seq,
            last_seq,
            base_offset,
            tokens,
        });
        Append::New(self.log.len() - 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrokerState {
    Up,
    Down,
    Paused,
}

/// A request on a broker connection.
struct OnWire {
    req: ProduceRequest,
    sent_at: Instant,
    /// The broker's answer once it handled the request, and when.
    answer: Option<(ProduceResult, Instant)>,
}

struct BrokerSim {
    state: BrokerState,
    conn: VecDeque<OnWire>,
}

/// Timed events of the cluster model.
#[derive(Debug, Clone, Copy)]
enum Timer {
    BrokerUp(i32),
    Resume(i32),
    Elect(usize),
    IsrRestored(usize),
    ReplicationCaughtUp(usize),
}

/// A request the broker read before its connection broke and applies anyway.
struct Zombie {
    at: Instant,
    broker: i32,
    req: ProduceRequest,
}

/// What a record ended with.
#[derive(Debug, Clone)]
enum Outcome {
    Ok { partition: i32, offset: i64 },
    Failed(Failure),
}

/// Per-seed shape of the run.
#[derive(Debug, Clone)]
struct Knobs {
    partitions: usize,
    records: u64,
    /// Broker flavour: UNKNOWN_PRODUCER_ID for a non-zero sequence from a producer it
    /// has no state for (true), or accept it (false, Kafka 2.5+).
    unknown_pid_rejects: bool,
    /// Broker flavour: DUPLICATE_SEQUENCE_NUMBER without an offset for a duplicate.
    dup_code: bool,
    /// Faults per 1000 steps.
    fault_rate: u64,
    /// Producer ids start near `i16::MAX` epochs, so bumps exhaust them.
    high_epoch: bool,
    /// The topic's `max.message.bytes`: larger batches are refused MESSAGE_TOO_LARGE
    /// (checked before the append, as Kafka's log validation does) and the engine
    /// splits them. Always above one record's batch.
    max_batch_bytes: Option<usize>,
}

struct Sim {
    seed: u64,
    rng: Rng,
    knobs: Knobs,
    engine: ProducerEngine<Token>,
    cfg: EngineConfig,
    topic: Arc<str>,
    start: Instant,
    now: Instant,
    brokers: Vec<BrokerSim>,
    parts: Vec<PartitionSim>,
    timers: Vec<(Instant, Timer)>,
    zombies: Vec<Zombie>,
    /// Answers the network hands over at a given time: transport failures found while
    /// sending, and stale copies of answers already delivered.
    mail: Vec<(Instant, u64, ProduceResult, bool)>,
    metadata_answer: Option<(Instant, Option<Vec<TopicMetadata>>)>,
    pid_answer: Option<(Instant, PidAnswer)>,
    next_pid: i64,
    pid_fetches: u64,
    appended_at: Vec<Instant>,
    outcomes: BTreeMap<Token, Outcome>,
    /// Tokens some Produce request carried, not yet delivered, by partition.
    sent_unresolved: HashMap<Token, i32>,
    unresolved_per_partition: Vec<usize>,
    /// Every token any attempt ever appended (even if later truncated).
    ever_appended: HashSet<Token>,
    stats: Stats,
    faulting: bool,
    outstanding_actions: Vec<Action<Token>>,
    /// Batches handed out for compression and when each comes back.
    compressing: Vec<(Instant, CompressJob)>,
    compressor: Compressor,
    /// Scripted refusals: the next batch for the partition is answered with the code.
    poison: HashMap<usize, i16>,
    /// Partitions whose epoch the engine has bumped at least once.
    bumped: HashSet<i32>,
    /// `SIM_TRACE=1`: print every event (use with `SIM_SEED`).
    trace: bool,
    steps: u64,
}

/// A failing invariant, with the seed to replay it.
macro_rules! check {
    ($sim:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            panic!("seed {}: {} (replay: SIM_SEED={} cargo test -p courier-core --test simulation)",
                $sim.seed, format!($($msg)+), $sim.seed);
        }
    };
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let knobs = Knobs {
            partitions: 1 + rng.below(5) as usize,
            records: 60 + rng.below(150),
            unknown_pid_rejects: rng.chance(50),
            dup_code: rng.chance(30),
            fault_rate: 5 + rng.below(40),
            high_epoch: rng.chance(10),
            max_batch_bytes: None,
        };
        let request_timeout = Duration::from_secs(1 + rng.below(4));
        let linger = ms(rng.below(20));
        let cfg = EngineConfig {
            acks: -1,
            idempotence: true,
            batch_size: 120 + rng.below(1200) as usize,
            linger,
            max_in_flight: 1 + rng.below(5) as usize,
            max_request_size: 1 << 20,
            request_timeout,
            // Java's rule: delivery.timeout.ms >= linger.ms + request.timeout.ms.
            delivery_timeout: linger + request_timeout + Duration::from_secs(2 + rng.below(14)),
            resolution_timeout: Duration::ZERO,
            retries: if rng.chance(15) {
                1 + rng.below(8) as u32
            } else {
                u32::MAX
            },
            retry_backoff: ms(20 + rng.below(200)),
            retry_backoff_max: Duration::from_secs(1),
            metadata_max_age: Duration::from_secs(5 + rng.below(60)),
            max_block: Duration::from_secs(5 + rng.below(30)),
            compression: Compression::None,
            partitioner: PartitionerKind::Default,
            compress_elsewhere_from: None,
        };
        // A third of the seeds compress (LZ4) and hand batches out for compression, whose
        // results come back late and out of order. Drawn from a stream of its own so the
        // other seeds keep the scenarios they always had.
        let mut cfg = cfg;
        let mut side = Rng::new(seed ^ 0x6c7a_3400);
        if side.chance(33) {
            cfg.compression = Compression::Lz4;
            cfg.compress_elsewhere_from = Some(side.below(600) as usize);
        }
        // A quarter spread records with another `partitioner` value: the invariants hold
        // whatever decides the partition.
        if side.chance(25) {
            cfg.partitioner =
                PartitionerKind::ALL[side.below(PartitionerKind::ALL.len() as u64) as usize];
        }
        // Three quarters resolve batches that may be in the log past delivery.timeout.ms
        // (delivery.resolution.timeout.ms, the default); the rest report them possibly
        // persisted at once, as Java does.
        if side.chance(75) {
            cfg.resolution_timeout = Duration::from_secs(2 + side.below(40));
        }
        // A fifth have a topic that takes smaller batches than `batch.size` makes: the
        // broker refuses them as too large and the engine splits them, while other
        // batches of the partition are in flight and across epoch bumps.
        let mut knobs = knobs;
        if side.chance(20) {
            knobs.max_batch_bytes = Some(250 + side.below(600) as usize);
        }
        Self::with(seed, rng, knobs, cfg)
    }

    fn with(seed: u64, rng: Rng, knobs: Knobs, cfg: EngineConfig) -> Self {
        let start = Instant::now();
        let parts = (0..knobs.partitions)
            .map(|p| PartitionSim {
                leader: (p as i32 % BROKERS) + 1,
                log: Vec::new(),
                committed: 0,
                state_start: 0,
                min_isr_ok: true,
                slow: false,
            })
            .collect();
        let next_pid = 1000 + seed as i64 * 10;
        Sim {
            seed,
            rng,
            engine: ProducerEngine::new(cfg.clone(), seed),
            cfg,
            topic: Arc::from(TOPIC),
            start,
            now: start,
            brokers: (0..BROKERS)
                .map(|_| BrokerSim {
                    state: BrokerState::Up,
                    conn: VecDeque::new(),
                })
                .collect(),
            unresolved_per_partition: vec![0; knobs.partitions],
            parts,
            knobs,
            timers: Vec::new(),
            zombies: Vec::new(),
            mail: Vec::new(),
            metadata_answer: None,
            pid_answer: None,
            next_pid,
            pid_fetches: 0,
            appended_at: Vec::new(),
            outcomes: BTreeMap::new(),
            sent_unresolved: HashMap::new(),
            ever_appended: HashSet::new(),
            stats: Stats::default(),
            faulting: false,
            outstanding_actions: Vec::new(),
            compressing: Vec::new(),
            compressor: Compressor::new(),
            poison: HashMap::new(),
            bumped: HashSet::new(),
            trace: std::env::var_os("SIM_TRACE").is_some(),
            steps: 0,
        }
    }

    fn log(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("[{:>9.3}s] {what}", (self.now - self.start).as_secs_f64());
        }
    }

    fn broker(&mut self, id: i32) -> &mut BrokerSim {
        &mut self.brokers[(id - 1) as usize]
    }

    // ----- the application side -----

    /// Appends one record: keyed (murmur2 picks the partition), unkeyed (sticky) or
    /// to an explicit partition.
    fn append_record(&mut self) {
        let token = self.appended_at.len() as Token;
        let mut value = token.to_be_bytes().to_vec();
        value.extend(std::iter::repeat_n(b'v', self.rng.below(60) as usize));
        let (key, partition) = match self.rng.below(100) {
            0..=59 => (
                Some(Bytes::from(format!("key-{}", self.rng.below(8)))),
                None,
            ),
            60..=84 => (None, None),
            _ => (
                None,
                Some(self.rng.below(self.knobs.partitions as u64) as i32),
            ),
        };
        self.appended_at.push(self.now);
        self.engine.append(
            Record {
                topic: self.topic.clone(),
                partition,
                key,
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
                timestamp_ms: 1_700_000_000_000 + token as i64,
                token,
            },
            self.now,
        );
    }

    // ----- the driver side: carry out the engine's actions -----

    fn poll(&mut self) {
        loop {
            let mut out = std::mem::take(&mut self.outstanding_actions);
            self.engine.poll(self.now, &mut out);
            if out.is_empty() {
                return;
            }
            for a in out {
                self.on_action(a);
            }
        }
    }

    fn on_action(&mut self, action: Action<Token>) {
        match action {
            Action::Produce(req) => self.send(req),
            Action::FetchMetadata { topics } => {
                self.log(format_args!("engine asks for metadata"));
                assert!(
                    self.metadata_answer.is_none(),
                    "seed {}: a second metadata request while one is outstanding",
                    self.seed
                );
                assert_eq!(topics.len(), 1);
                let delay = self.rng.ms_between(1, 200);
                // The answer describes the cluster as it is now and may be stale by
                // the time it arrives, as a real one can be.
                let answer = if self.faulting && self.rng.chance(5) {
                    self.stats.bump("fault: metadata request failed");
                    None
                } else {
                    Some(self.metadata())
                };
                self.metadata_answer = Some((self.now + delay, answer));
            }
            Action::InitProducerId => {
                assert!(
                    self.pid_answer.is_none(),
                    "seed {}: second InitProducerId",
                    self.seed
                );
                self.pid_fetches += 1;
                if self.pid_fetches > 1 {
                    self.stats.bump("new producer id after epoch exhaustion");
                }
                let delay = self.rng.ms_between(1, 300);
                let answer = if self.faulting && self.rng.chance(15) {
                    self.stats
                        .bump("fault: InitProducerId answered COORDINATOR_NOT_AVAILABLE");
                    Err(codes::COORDINATOR_NOT_AVAILABLE)
                } else {
                    self.next_pid += 1;
                    let epoch = if self.knobs.high_epoch {
                        i16::MAX - self.rng.below(3) as i16
                    } else {
                        0
                    };
                    Ok((self.next_pid, epoch))
                };
                self.pid_answer = Some((self.now + delay, answer));
            }
            Action::Deliver(d) => {
                self.log(format_args!(
                    "outcome p{} records {:?}: {:?}",
                    d.partition,
                    d.records.iter().map(|r| r.0).collect::<Vec<_>>(),
                    d.result
                ));
                for (i, (token, _)) in d.records.iter().enumerate() {
                    let outcome = match &d.result {
                        Ok(w) => Outcome::Ok {
                            partition: d.partition,
                            offset: if w.base_offset >= 0 {
                                w.base_offset + i as i64
                            } else {
                                -1
                            },
                        },
                        Err(f) => Outcome::Failed(f.clone()),
                    };
                    check!(
                        self,
                        self.outcomes.insert(*token, outcome).is_none(),
                        "record {token} got a second outcome"
                    );
                    let latency = self.now.duration_since(self.appended_at[*token as usize]);
                    let over = latency.saturating_sub(self.cfg.delivery_timeout);
                    self.stats.max(
                        "max ms an outcome came after delivery.timeout",
                        over.as_millis() as u64,
                    );
                    if let Some(p) = self.sent_unresolved.remove(token) {
                        self.unresolved_per_partition[p as usize] -= 1;
                    }
                }
                if d.resolved {
                    let n = d.records.len() as u64;
                    match &d.result {
                        Ok(_) => self.stats.add("records resolved: acknowledged late", n),
                        Err(f) => {
                            check!(
                                self,
                                f.persistence == Persistence::PossiblyPersisted,
                                "a resolution ended {:?}",
                                f
                            );
                            self.stats
                                .add("records resolved: still possibly persisted", n)
                        }
                    }
                }
                match &d.result {
                    Ok(_) => self
                        .stats
                        .add("records acknowledged", d.records.len() as u64),
                    Err(f) => {
                        let n = d.records.len() as u64;
                        self.stats.add("records failed", n);
                        match (&f.reason, f.persistence) {
                            (FailureReason::DeliveryTimeout { .. }, Persistence::NotPersisted) => {
                                self.stats
                                    .add("records expired unwritten (delivery.timeout)", n)
                            }
                            (FailureReason::DeliveryTimeout { .. }, _) => {
                                self.stats.add("records expired after a possible write", n)
                            }
                            (FailureReason::Unresolved { .. }, _) => self
                                .stats
                                .add("records failed: unresolved past the resolution timeout", n),
                            (FailureReason::EpochBumpedWhileUnresolved, _) => {
                                self.stats
                                    .add("records failed: unresolved across an epoch bump", n);
                                if self.knobs.high_epoch {
                                    self.stats.add(
                                        "records failed: unresolved across a new producer id",
                                        n,
                                    );
                                }
                            }
                            (FailureReason::Broker { .. }, _) => {
                                self.stats.add("records failed: retries exhausted", n)
                            }
                            _ => self.stats.add("records failed: other reasons", n),
                        }
                    }
                }
            }
            Action::EpochBumped {
                producer_id,
                epoch,
                partition,
                ..
            } => {
                self.log(format_args!(
                    "engine bumps producer {producer_id} to epoch {epoch} on p{partition}"
                ));
                self.bumped.insert(partition);
                self.stats.bump("epoch bumps")
            }
            Action::Compress(job) => {
                // Another thread's work: done a while later, in any order.
                let delay = self.rng.ms_between(0, 40);
                self.stats.bump("batches compressed elsewhere");
                self.compressing.push((self.now + delay, job));
            }
        }
    }

    fn metadata(&self) -> Vec<TopicMetadata> {
        vec![TopicMetadata {
            name: TOPIC.to_string(),
            error_code: 0,
            partitions: self
                .parts
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionMetadata {
                    partition: i as i32,
                    leader: p.leader,
                    error_code: if p.leader < 0 {
                        codes::LEADER_NOT_AVAILABLE
                    } else {
                        0
                    },
                })
                .collect(),
        }]
    }

    fn send(&mut self, req: ProduceRequest) {
        for (_, p, bytes) in &req.batches {
            let (batch, _) = decode_batch(bytes).expect("the engine sends valid batches");
            self.log(format_args!(
                "send request {} to broker {}: p{p} pid {} epoch {} seq {} records {}..={}",
                req.id,
                req.broker,
                batch.header.producer_id,
                batch.header.producer_epoch,
                batch.header.base_sequence,
                token_of(batch.records[0].value.as_ref().expect("set")),
                token_of(
                    batch
                        .records
                        .last()
                        .expect("non-empty")
                        .value
                        .as_ref()
                        .expect("set")
                ),
            ));
            for r in &batch.records {
                let token = token_of(r.value.as_ref().expect("values are set"));
                if self.sent_unresolved.insert(token, *p).is_none() {
                    self.unresolved_per_partition[*p as usize] += 1;
                }
            }
        }
        let now = self.now;
        let broker = req.broker;
        if self.broker(broker).state == BrokerState::Down {
            // Connection refused: the request never left.
            self.stats.bump("fault: request not written (broker down)");
            let id = req.id;
            self.mail.push((
                now,
                id,
                ProduceResult::Transport {
                    maybe_written: false,
                },
                false,
            ));
            return;
        }
        self.broker(broker).conn.push_back(OnWire {
            req,
            sent_at: now,
            answer: None,
        });
    }

    // ----- the broker side -----

    /// A broker handles one Produce request (also one whose client is gone).
    fn handle(&mut self, broker: i32, req: &ProduceRequest) -> ProduceResult {
        let mut answers = Vec::with_capacity(req.batches.len());
        for (topic, p, bytes) in &req.batches {
            let (batch, _) = decode_batch(bytes).expect("the engine sends valid batches");
            let (pid, epoch, base_seq) = (
                batch.header.producer_id,
                batch.header.producer_epoch,
                batch.header.base_sequence,
            );
            let tokens: Vec<Token> = batch
                .records
                .iter()
                .map(|r| token_of(r.value.as_ref().expect("values are set")))
                .collect();
            let pi = *p as usize;
            let (code, offset) = if self.parts[pi].leader != broker {
                (codes::NOT_LEADER_OR_FOLLOWER, -1)
            } else if !self.parts[pi].min_isr_ok {
                // Checked before the append (Partition.appendRecordsToLeader), so a
                // duplicate is refused the same way.
                (codes::NOT_ENOUGH_REPLICAS, -1)
            } else if let Some(code) = self.poison.remove(&pi) {
                // A scripted refusal (MESSAGE_TOO_LARGE, INVALID_RECORD...): not written.
                (code, -1)
            } else if self.knobs.max_batch_bytes.is_some_and(|m| bytes.len() > m) {
                // Issue 17's two split cases: the parts must keep their sequences in
                // order behind and ahead of batches already on the wire, and under an
                // epoch the engine bumped (the split is re-stamped, never resent old).
                if self.unresolved_per_partition[pi] > tokens.len() {
                    self.stats
                        .bump("MESSAGE_TOO_LARGE while the partition had other batches in flight");
                }
                if self.bumped.contains(p) {
                    self.stats
                        .bump("MESSAGE_TOO_LARGE after an epoch bump of the partition");
                }
                (codes::MESSAGE_TOO_LARGE, -1)
            } else {
                let rejects = self.knobs.unknown_pid_rejects;
                match self.parts[pi].append(pid, epoch, base_seq, tokens.clone(), rejects) {
                    Append::Rejected(code) => (code, -1),
                    Append::New(i) => {
                        self.ever_appended.extend(tokens.iter().copied());
                        self.acknowledge(pi, i, false)
                    }
                    Append::Duplicate(i) => {
                        self.stats
                            .bump("broker recognised a resent batch as a duplicate");
                        self.acknowledge(pi, i, true)
                    }
                }
            };
            self.stats
                .bump(&format!("broker answered {}", error_name(code)));
            self.log(format_args!(
                "broker {broker} handles request {} p{p} epoch {epoch} seq {base_seq}: {} offset {offset}",
                req.id,
                error_name(code)
            ));
            answers.push(PartitionResponse {
                topic: topic.to_string(),
                partition: *p,
                error_code: code,
                base_offset: offset,
                log_append_time: -1,
                error_message: None,
            });
        }
        ProduceResult::Response(answers)
    }

    /// The answer for a batch the leader holds at `i`: success once replicated, or an
    /// error that leaves it in the uncommitted tail when the followers lag.
    fn acknowledge(&mut self, pi: usize, i: usize, duplicate: bool) -> (i16, i64) {
        if self.parts[pi].slow {
            let code = if self.rng.chance(50) {
                codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            } else {
                codes::REQUEST_TIMED_OUT
            };
            return (code, -1);
        }
        let dup_code = self.knobs.dup_code;
        let part = &mut self.parts[pi];
        // acks=all: the high watermark passed the batch, and everything before it.
        part.committed = part.committed.max(i + 1);
        if duplicate && dup_code {
            (codes::DUPLICATE_SEQUENCE_NUMBER, -1)
        } else {
            (codes::NONE, part.log[i].base_offset)
        }
    }

    // ----- the network -----

    /// One live broker handles the oldest request of its connection it has not handled.
    fn process_one(&mut self) -> bool {
        let ready: Vec<i32> = (1..=BROKERS)
            .filter(|&b| {
                let br = &self.brokers[(b - 1) as usize];
                br.state == BrokerState::Up && br.conn.iter().any(|w| w.answer.is_none())
            })
            .collect();
        if ready.is_empty() {
            return false;
        }
        let b = ready[self.rng.below(ready.len() as u64) as usize];
        let idx = self
            .broker(b)
            .conn
            .iter()
            .position(|w| w.answer.is_none())
            .expect("checked above");
        let req = self.broker(b).conn[idx].req.clone();
        let result = self.handle(b, &req);
        let now = self.now;
        self.broker(b).conn[idx].answer = Some((result, now));
        true
    }

    /// The client reads the oldest answer on one broker's connection. Which broker is
    /// random: answers of different brokers arrive in any order.
    fn deliver_one(&mut self) -> bool {
        let ready: Vec<i32> = (1..=BROKERS)
            .filter(|&b| {
                self.brokers[(b - 1) as usize]
                    .conn
                    .front()
                    .is_some_and(|w| w.answer.is_some())
            })
            .collect();
        if ready.is_empty() {
            return false;
        }
        let b = ready[self.rng.below(ready.len() as u64) as usize];
        self.deliver_head(b);
        true
    }

    fn deliver_head(&mut self, b: i32) {
        let w = self.broker(b).conn.pop_front().expect("has a head");
        let (result, handled_at) = w.answer.expect("answered");
        let earlier_elsewhere = (1..=BROKERS).filter(|&o| o != b).any(|o| {
            self.brokers[(o - 1) as usize]
                .conn
                .front()
                .and_then(|x| x.answer.as_ref())
                .is_some_and(|(_, t)| *t < handled_at)
        });
        if earlier_elsewhere {
            self.stats.bump("fault: answers reordered across brokers");
        }
        if self.now.duration_since(handled_at) >= Duration::from_secs(1) {
            self.stats.bump("fault: answer delayed by 1 s or more");
        }
        let id = w.req.id;
        if self.faulting && self.rng.chance(3) {
            // The same request id answered again later, with the same or a
            // contradicting result: the engine must ignore it.
            let stale = if self.rng.chance(50) {
                result.clone()
            } else {
                ProduceResult::Transport {
                    maybe_written: true,
                }
            };
            let at = self.now + self.rng.ms_between(0, 3000);
            self.mail.push((at, id, stale, true));
        }
        self.log(format_args!(
            "client reads the answer to request {id}: {result:?}"
        ));
        self.engine.on_produce_result(id, result, self.now);
    }

    /// The connection to `b` breaks. Answers not yet read are lost. Unless the broker
    /// died, the request it was handling may still be applied later (a zombie). The
    /// requests after it were either written (and are dropped unread: a broker reads
    /// one request per connection at a time) or still in the client's buffer (never
    /// written: `maybe_written: false`).
    fn cut(&mut self, b: i32, broker_died: bool, why: &str) {
        let conn: Vec<OnWire> = self.broker(b).conn.drain(..).collect();
        if conn.is_empty() {
            return;
        }
        self.stats.bump(why);
        self.log(format_args!("{why}: broker {b}"));
        let first_unhandled = conn.iter().position(|w| w.answer.is_none());
        let unwritten_from = match first_unhandled {
            Some(i) => i + 1 + self.rng.below((conn.len() - i) as u64) as usize,
            None => conn.len(),
        };
        if let Some(i) = first_unhandled {
            if !broker_died && self.rng.chance(50) {
                let at = self.now + self.rng.ms_between(0, 2000);
                self.zombies.push(Zombie {
                    at,
                    broker: b,
                    req: conn[i].req.clone(),
                });
            }
        }
        for (i, w) in conn.into_iter().enumerate() {
            let written = i < unwritten_from;
            if w.answer.is_some() {
                self.stats
                    .bump("fault: answer lost after the broker handled the request");
            } else if written {
                self.stats
                    .bump("fault: request cut before the broker answered");
            } else {
                self.stats
                    .bump("fault: request never written (maybe_written=false)");
            }
            self.mail.push((
                self.now,
                w.req.id,
                ProduceResult::Transport {
                    maybe_written: written,
                },
                false,
            ));
        }
    }

    /// `request.timeout.ms`: the client reads answers that are there, and closes the
    /// connection when a request has waited too long (as the Java client does).
    fn client_timeouts(&mut self) {
        for b in 1..=BROKERS {
            while let Some(front) = self.brokers[(b - 1) as usize].conn.front() {
                let overdue = self.now >= front.sent_at + self.cfg.request_timeout;
                if !overdue {
                    break;
                }
                if front.answer.is_some() {
                    self.deliver_head(b);
                } else {
                    self.cut(b, false, "fault: request.timeout.ms expired");
                    break;
                }
            }
        }
    }

    // ----- time -----

    fn fire_due(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        self.timers.retain(|(t, timer)| {
            if *t <= now {
                due.push(*timer);
                false
            } else {
                true
            }
        });
        for t in due {
            self.on_timer(t);
        }

        let (due, later): (Vec<Zombie>, Vec<Zombie>) = std::mem::take(&mut self.zombies)
            .into_iter()
            .partition(|z| z.at <= now);
        self.zombies = later;
        for mut z in due {
            match self.broker(z.broker).state {
                BrokerState::Up => {
                    let ProduceResult::Response(parts) = self.handle(z.broker, &z.req) else {
                        unreachable!("handle answers with a response")
                    };
                    if parts.iter().any(|p| p.error_code == codes::NONE) {
                        self.stats
                            .bump("fault: zombie request applied after its connection closed");
                    } else {
                        self.stats.bump("fault: zombie request refused");
                    }
                }
                BrokerState::Paused => {
                    z.at = now + ms(50);
                    self.zombies.push(z);
                }
                BrokerState::Down => self
                    .stats
                    .bump("fault: zombie request died with its broker"),
            }
        }

        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.mail)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.mail = later;
        for (_, id, result, stale) in due {
            if stale {
                let before = self.engine.requests_in_flight();
                self.engine.on_produce_result(id, result, now);
                check!(
                    self,
                    self.engine.requests_in_flight() == before,
                    "a stale second answer for request {id} changed the requests in flight"
                );
                self.stats
                    .bump("fault: stale answer for a settled request id (ignored)");
            } else {
                self.log(format_args!("request {id} ends: {result:?}"));
                self.engine.on_produce_result(id, result, now);
            }
        }

        if self
            .metadata_answer
            .as_ref()
            .is_some_and(|(t, _)| *t <= now)
        {
            let (_, answer) = self.metadata_answer.take().expect("checked");
            self.log(format_args!("metadata answer: {answer:?}"));
            match answer {
                Some(md) => self.engine.on_metadata(&md, now),
                None => self.engine.on_metadata_failed(now),
            }
        }
        if self.pid_answer.as_ref().is_some_and(|(t, _)| *t <= now) {
            let (_, answer) = self.pid_answer.take().expect("checked");
            self.engine.on_producer_id(answer, now);
        }
        let mut i = 0;
        while i < self.compressing.len() {
            if self.compressing[i].0 <= now {
                let (_, job) = self.compressing.swap_remove(i);
                let done = job.run(&mut self.compressor);
                self.engine.on_compressed(done);
            } else {
                i += 1;
            }
        }
        self.client_timeouts();
    }

    fn on_timer(&mut self, t: Timer) {
        self.log(format_args!("timer {t:?}"));
        match t {
            Timer::BrokerUp(b) => self.broker(b).state = BrokerState::Up,
            Timer::Resume(b) => {
                if self.broker(b).state == BrokerState::Paused {
                    self.broker(b).state = BrokerState::Up;
                }
            }
            Timer::Elect(p) => self.elect(p),
            Timer::IsrRestored(p) => self.parts[p].min_isr_ok = true,
            Timer::ReplicationCaughtUp(p) => self.parts[p].slow = false,
        }
    }

    /// When something happens next by itself.
    fn next_event(&self) -> Option<Instant> {
        let mut next = self.engine.next_wakeup();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        self.timers.iter().for_each(|(t, _)| consider(*t));
        self.zombies.iter().for_each(|z| consider(z.at));
        self.mail.iter().for_each(|m| consider(m.0));
        if let Some((t, _)) = &self.metadata_answer {
            consider(*t);
        }
        if let Some((t, _)) = &self.pid_answer {
            consider(*t);
        }
        self.compressing.iter().for_each(|(t, _)| consider(*t));
        for b in &self.brokers {
            if let Some(w) = b.conn.front() {
                consider(w.sent_at + self.cfg.request_timeout);
            }
        }
        next
    }

    /// Work a live broker or the client could do at once.
    fn work_pending(&self) -> bool {
        self.brokers.iter().any(|b| {
            b.conn.front().is_some_and(|w| w.answer.is_some())
                || (b.state == BrokerState::Up && b.conn.iter().any(|w| w.answer.is_none()))
        })
    }

    fn advance(&mut self) {
        // Brokers answer in milliseconds unless a fault says otherwise, so time only
        // leaps ahead when nothing is waiting to be handled or read.
        let step = if self.rng.chance(70) || self.work_pending() {
            self.rng.ms_between(0, 60)
        } else {
            // Skip to the next thing that happens by itself, at most 2 s ahead.
            let cap = self.now + Duration::from_secs(2);
            let next = self.next_event().map_or(cap, |t| t.min(cap));
            next.saturating_duration_since(self.now).max(ms(1))
        };
        self.now += step;
    }

    // ----- faults -----

    /// Partition `p` gets a new leader among the live brokers other than the current
    /// one. The uncommitted tail may be lost: the new leader need not have it.
    fn elect(&mut self, p: usize) {
        let old = self.parts[p].leader;
        let candidates: Vec<i32> = (1..=BROKERS)
            .filter(|&b| b != old && self.brokers[(b - 1) as usize].state == BrokerState::Up)
            .collect();
        if candidates.is_empty() {
            if old >= 0 && self.broker(old).state == BrokerState::Up {
                return;
            }
            // No eligible replica: leaderless until one returns.
            self.parts[p].leader = -1;
            let at = self.now + ms(500);
            self.timers.push((at, Timer::Elect(p)));
            return;
        }
        let new = candidates[self.rng.below(candidates.len() as u64) as usize];
        let part = &mut self.parts[p];
        let tail = part.log.len() - part.committed;
        let lost = self.rng.below(tail as u64 + 1) as usize;
        if lost > 0 {
            part.log.truncate(part.log.len() - lost);
            self.stats.add(
                "fault: uncommitted batches truncated by a new leader",
                lost as u64,
            );
        }
        part.leader = new;
        self.stats.bump("fault: leader moved");
        self.log(format_args!(
            "p{p}: leader {old} -> {new}, {lost} uncommitted batches lost"
        ));
    }

    /// `kill -9` of broker `b` for `down_for`; its partitions elect new leaders after
    /// `elect_after` (the session timeout), or stay on it if `None` (no other replica
    /// is eligible).
    fn crash(&mut self, b: i32, down_for: Duration, elect_after: Option<Duration>) {
        self.stats.bump("fault: broker crashed");
        self.log(format_args!("broker {b} crashes for {down_for:?}"));
        self.broker(b).state = BrokerState::Down;
        self.cut(b, true, "fault: connection lost with a crashed broker");
        self.timers.push((self.now + down_for, Timer::BrokerUp(b)));
        if let Some(after) = elect_after {
            for p in 0..self.parts.len() {
                if self.parts[p].leader == b {
                    self.timers.push((self.now + after, Timer::Elect(p)));
                }
            }
        }
    }

    /// SIGSTOP of broker `b` for `paused_for`: connections stay open, nothing is
    /// answered. A pause longer than the session timeout moves its leaderships.
    fn pause(&mut self, b: i32, paused_for: Duration, elect_after: Option<Duration>) {
        self.stats.bump("fault: broker paused");
        self.log(format_args!("broker {b} paused for {paused_for:?}"));
        self.broker(b).state = BrokerState::Paused;
        self.timers.push((self.now + paused_for, Timer::Resume(b)));
        if let Some(after) = elect_after.filter(|a| *a < paused_for) {
            for p in 0..self.parts.len() {
                if self.parts[p].leader == b {
                    self.timers.push((self.now + after, Timer::Elect(p)));
                }
            }
        }
    }

    /// Whether retention may remove this producer's state from partition `p`: only
    /// when nothing it sent there is unresolved (retention works on segments far older
    /// than `delivery.timeout.ms`) and everything is replicated.
    fn may_forget(&self, p: usize) -> bool {
        // Not in seeds that refuse batches as too large: a broker without state for the
        // producer accepts any sequence, so a pipelined batch can land while the one
        // ahead of it is refused, and the halves of that one can then never be written
        // before it - they fail, not persisted, even after the faults heal. That is the
        // known limit "a broker that forgot the producer mid-stream" (RELIABILITY.md),
        // which other seeds cover with refusals of other kinds.
        self.knobs.max_batch_bytes.is_none()
            && self.unresolved_per_partition[p] == 0
            && self.parts[p].committed == self.parts[p].log.len()
            && !self
                .zombies
                .iter()
                .any(|z| z.req.batches.iter().any(|b| b.1 as usize == p))
    }

    fn forget(&mut self, p: usize) {
        assert!(self.may_forget(p));
        self.parts[p].state_start = self.parts[p].log.len();
        self.stats
            .bump("fault: producer state removed by retention");
        self.log(format_args!("p{p}: producer state removed by retention"));
    }

    fn inject_fault(&mut self) {
        let down = self
            .brokers
            .iter()
            .filter(|b| b.state != BrokerState::Up)
            .count();
        let b = 1 + self.rng.below(BROKERS as u64) as i32;
        let p = self.rng.below(self.parts.len() as u64) as usize;
        match self.rng.below(100) {
            0..=19 => self.cut(b, false, "fault: connection cut"),
            20..=27 if down < 2 && self.broker(b).state == BrokerState::Up => {
                let down_for = self.rng.ms_between(500, 30_000);
                let elect = self.rng.ms_between(300, 6_000);
                self.crash(b, down_for, Some(elect));
            }
            28..=35 if down < 2 && self.broker(b).state == BrokerState::Up => {
                let paused_for = self.rng.ms_between(300, 15_000);
                // broker.session.timeout.ms: the controller fences it after 6 s.
                self.pause(b, paused_for, Some(Duration::from_secs(6)));
            }
            36..=50 if self.parts[p].leader >= 0 => self.elect(p),
            51..=62 if self.parts[p].min_isr_ok => {
                self.stats.bump("fault: ISR below min.insync.replicas");
                self.log(format_args!("p{p}: ISR below min.insync.replicas"));
                self.parts[p].min_isr_ok = false;
                let at = self.now + self.rng.ms_between(300, 20_000);
                self.timers.push((at, Timer::IsrRestored(p)));
            }
            63..=74 if !self.parts[p].slow => {
                self.stats.bump("fault: replication slow");
                self.log(format_args!("p{p}: replication slow"));
                self.parts[p].slow = true;
                let at = self.now + self.rng.ms_between(200, 8_000);
                self.timers.push((at, Timer::ReplicationCaughtUp(p)));
            }
            75..=86
                if self.may_forget(p) && self.parts[p].state_start < self.parts[p].log.len() =>
            {
                self.forget(p)
            }
            87..=91 => {
                // An answer for a request id the engine never issued.
                let before = self.engine.requests_in_flight();
                self.engine.on_produce_result(
                    u64::MAX - self.rng.below(1000),
                    ProduceResult::Transport {
                        maybe_written: true,
                    },
                    self.now,
                );
                check!(
                    self,
                    self.engine.requests_in_flight() == before,
                    "an answer for an unknown request id changed the requests in flight"
                );
                self.stats
                    .bump("fault: answer for an unknown request id (ignored)");
            }
            92..=99 => {
                // The whole world stalls (a long GC pause of the client): timers and
                // request timeouts come due together.
                self.stats.bump("fault: client stalled");
                self.now += self.rng.ms_between(200, 4_000);
            }
            _ => {}
        }
    }

    /// Every broker up, every partition led and replicated, no more faults.
    fn heal(&mut self) {
        self.faulting = false;
        self.timers.clear();
        for b in &mut self.brokers {
            b.state = BrokerState::Up;
        }
        for p in 0..self.parts.len() {
            self.parts[p].min_isr_ok = true;
            self.parts[p].slow = false;
            if self.parts[p].leader < 0 {
                self.elect(p);
            }
        }
    }

    // ----- running -----

    fn step(&mut self, append_up_to: u64) {
        self.steps += 1;
        self.fire_due();
        let r = self.rng.below(1000);
        if r < 120 && (self.appended_at.len() as u64) < append_up_to {
            for _ in 0..1 + self.rng.below(4) {
                if (self.appended_at.len() as u64) < append_up_to {
                    self.append_record();
                }
            }
        } else if r < 125 && self.cfg.compress_elsewhere_from.is_some() {
            // A driver turns the hand-out on and off with its load.
            let on = self.rng.chance(50);
            self.engine.set_compress_elsewhere(on);
        } else if r < 400 {
            self.process_one();
        } else if r < 680 {
            self.deliver_one();
        } else if self.faulting && r < 680 + self.knobs.fault_rate {
            self.inject_fault();
        } else {
            self.advance();
        }
        self.poll();
    }

    fn quiet(&self) -> bool {
        self.engine.is_idle()
            && self.brokers.iter().all(|b| b.conn.is_empty())
            && self.mail.iter().all(|m| m.3)
            && self.outcomes.len() == self.appended_at.len()
    }

    /// Runs without new records until every record has its outcome and nothing is in
    /// flight; fails if that takes longer than any record may live.
    fn run_until_quiet(&mut self, what: &str) {
        let limit = self.now + 3 * self.cfg.delivery_timeout + Duration::from_secs(60);
        let appended = self.appended_at.len() as u64;
        let mut steps = 0u64;
        while !self.quiet() {
            steps += 1;
            check!(
                self,
                self.now < limit && steps < 500_000,
                "{what}: still not idle after {:?} ({} of {} records have an outcome, {} requests in flight)",
                self.now - self.start,
                self.outcomes.len(),
                self.appended_at.len(),
                self.engine.requests_in_flight()
            );
            self.step(appended);
        }
    }

    /// Applies zombies still pending (their brokers are up now).
    fn drain_zombies(&mut self) {
        while let Some(at) = self.zombies.iter().map(|z| z.at).min() {
            self.now = self.now.max(at);
            self.fire_due();
        }
    }

    /// Sends `n` more records into a healthy cluster; all must be acknowledged.
    fn expect_recovery(&mut self, n: u64) {
        let first = self.appended_at.len() as Token;
        for _ in 0..n {
            self.append_record();
        }
        self.poll();
        self.run_until_quiet("after the faults healed");
        for t in first..first + n {
            let outcome = self.outcomes.get(&t);
            // With `retries` limited a record may still run out of them while the
            // healed cluster settles: its retry can reach a moved leader before the
            // metadata refresh it asked for has answered, and the epoch bump after a
            // gap costs an attempt too (the Java client counts both the same way).
            // Nothing else may fail in a healthy cluster.
            let retries_ran_out = self.cfg.retries != u32::MAX
                && matches!(
                    outcome,
                    Some(Outcome::Failed(Failure {
                        reason: FailureReason::Broker { code, .. },
                        persistence: Persistence::NotPersisted,
                    })) if !matches!(classify_produce_error(*code), Disposition::Fail { .. })
                );
            if retries_ran_out {
                self.stats
                    .bump("recovery record ran out of limited retries");
                continue;
            }
            check!(
                self,
                matches!(outcome, Some(Outcome::Ok { .. })),
                "record {t}, sent after every fault healed, was not acknowledged: {outcome:?}"
            );
        }
    }

    /// The invariants, judged from the simulated logs alone.
    fn check_invariants(&mut self) {
        check!(
            self,
            self.outcomes.len() == self.appended_at.len(),
            "{} records sent, {} outcomes",
            self.appended_at.len(),
            self.outcomes.len()
        );
        let mut position: HashMap<Token, (i32, i64)> = HashMap::new();
        let mut late = 0;
        for (pi, part) in self.parts.iter().enumerate() {
            let mut last_acked: Option<Token> = None;
            let mut last: Option<Token> = None;
            for e in &part.log {
                for (k, &t) in e.tokens.iter().enumerate() {
                    check!(
                        self,
                        position
                            .insert(t, (pi as i32, e.base_offset + k as i64))
                            .is_none(),
                        "record {t} is in the log twice"
                    );
                    if matches!(self.outcomes.get(&t), Some(Outcome::Ok { .. })) {
                        check!(
                            self,
                            last_acked.is_none_or(|l| l < t),
                            "partition {pi} holds acknowledged record {t} after acknowledged \
                             record {last_acked:?}: not in send order"
                        );
                        last_acked = Some(t);
                    }
                    // A record reported possibly persisted may land late: a request
                    // the broker applies after its connection closed is fenced by a
                    // newer epoch, but not by a new producer id (epoch exhaustion).
                    if last.is_some_and(|l| l > t) {
                        late += 1;
                    }
                    last = Some(t);
                }
            }
        }
        let mut stats = Stats::default();
        stats.add("possibly persisted record stored after a later one", late);
        for (&t, outcome) in &self.outcomes {
            match outcome {
                Outcome::Ok { partition, offset } => {
                    let Some(&(p, off)) = position.get(&t) else {
                        panic!(
                            "seed {}: acknowledged record {t} is not in the log (replay: SIM_SEED={})",
                            self.seed, self.seed
                        );
                    };
                    check!(
                        self,
                        p == *partition,
                        "record {t} acknowledged in partition {partition}, stored in {p}"
                    );
                    check!(
                        self,
                        *offset < 0 || *offset == off,
                        "record {t} acknowledged at offset {offset}, stored at {off}"
                    );
                }
                Outcome::Failed(f) => match f.persistence {
                    Persistence::NotPersisted => {
                        check!(
                            self,
                            !self.ever_appended.contains(&t),
                            "record {t} was reported not persisted ({:?}) but an attempt appended it",
                            f.reason
                        );
                        stats.bump("outcome: failed, not persisted");
                    }
                    Persistence::PossiblyPersisted => {
                        if position.contains_key(&t) {
                            stats.bump("outcome: possibly persisted, and in the log");
                        } else {
                            stats.bump("outcome: possibly persisted, and not in the log");
                        }
                        if !self.cfg.resolution_timeout.is_zero() {
                            stats.bump("outcome: possibly persisted, with resolution on");
                        }
                    }
                    Persistence::Persisted => {
                        panic!("seed {}: a failure reports Persisted: {f:?}", self.seed)
                    }
                },
            }
        }
        self.stats.merge(&stats);
    }
}

/// Scripted scenarios: the same cluster model, driven step by step.
impl Sim {
    fn scripted(partitions: usize, unknown_pid_rejects: bool, cfg: EngineConfig) -> Self {
        let knobs = Knobs {
            partitions,
            records: 0,
            unknown_pid_rejects,
            dup_code: false,
            fault_rate: 0,
            high_epoch: false,
            max_batch_bytes: None,
        };
        let mut sim = Self::with(1, Rng::new(1), knobs, cfg);
        sim.poll();
        sim
    }

    /// Appends one record to `partition` with a value of `len` bytes.
    fn append_to(&mut self, partition: i32, len: usize) -> Token {
        let token = self.appended_at.len() as Token;
        let mut value = token.to_be_bytes().to_vec();
        value.resize(len.max(8), b'v');
        self.appended_at.push(self.now);
        self.engine.append(
            Record {
                topic: self.topic.clone(),
                partition: Some(partition),
                key: None,
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
                timestamp_ms: 1_700_000_000_000 + token as i64,
                token,
            },
            self.now,
        );
        self.poll();
        token
    }

    /// Lets the network run (no new faults) for `d`.
    /// Moves the clock without handling anything.
    fn tick(&mut self, d: Duration) {
        self.now += d;
        self.fire_due();
        self.poll();
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let appended = self.appended_at.len() as u64;
        while self.now < until {
            self.step(appended);
        }
    }

    /// Broker `b` handles the oldest request it has not handled yet.
    fn handle_next(&mut self, b: i32) {
        let idx = self
            .broker(b)
            .conn
            .iter()
            .position(|w| w.answer.is_none())
            .expect("a request to handle");
        let req = self.broker(b).conn[idx].req.clone();
        let result = self.handle(b, &req);
        let now = self.now;
        self.broker(b).conn[idx].answer = Some((result, now));
    }

    /// The client reads every answer that is there.
    fn read_answers(&mut self) {
        while self.deliver_one() {}
        self.poll();
    }

    fn outcome(&self, t: Token) -> &Outcome {
        self.outcomes.get(&t).expect("delivered")
    }

    fn requests_on_wire(&self, b: i32) -> usize {
        self.brokers[(b - 1) as usize].conn.len()
    }
}

/// A configuration for scripted scenarios: one record per batch with 90-byte values.
fn script_cfg() -> EngineConfig {
    EngineConfig {
        acks: -1,
        idempotence: true,
        batch_size: 100,
        linger: ms(5),
        max_in_flight: 5,
        max_request_size: 1 << 20,
        request_timeout: Duration::from_secs(2),
        delivery_timeout: Duration::from_secs(10),
        // The scenarios below were written for the report at delivery.timeout.ms; those
        // about resolution set their own.
        resolution_timeout: Duration::ZERO,
        retries: u32::MAX,
        retry_backoff: ms(50),
        retry_backoff_max: Duration::from_secs(1),
        metadata_max_age: Duration::from_secs(30),
        max_block: Duration::from_secs(10),
        compression: Compression::None,
        partitioner: PartitionerKind::Default,
        compress_elsewhere_from: None,
    }
}

fn token_of(value: &[u8]) -> Token {
    u64::from_be_bytes(value[..8].try_into().expect("8-byte token"))
}

/// One seeded run: faults while records are sent, then healing, recovery and the
/// invariants. Returns what happened.
fn run_seed(seed: u64) -> Stats {
    let mut sim = Sim::new(seed);
    sim.faulting = true;
    sim.poll();
    let records = sim.knobs.records;
    let fault_until = sim.start + Duration::from_secs(5 + sim.rng.below(25));
    let mut steps = 0u64;
    while (sim.appended_at.len() as u64) < records || sim.now < fault_until {
        steps += 1;
        assert!(
            steps < 1_000_000,
            "seed {seed}: the fault phase does not end"
        );
        sim.step(records);
    }
    sim.log(format_args!("heal: {:?} {:?}", sim.knobs, sim.cfg));
    sim.heal();
    sim.run_until_quiet("after the faults healed");
    sim.expect_recovery(RECOVERY_RECORDS);
    sim.drain_zombies();
    sim.check_invariants();
    sim.stats.add("records sent", sim.appended_at.len() as u64);
    sim.stats.add(
        "batches split after MESSAGE_TOO_LARGE",
        sim.engine.batches_split(),
    );
    sim.stats.add("seeds", 1);
    sim.stats.add("steps", sim.steps);
    sim.stats
        .add("virtual seconds", (sim.now - sim.start).as_secs());
    sim.stats
}

fn seeds_from_env() -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .map(|s| s.parse().expect("SIM_SEEDS is a number"))
        .unwrap_or(2000);
    (0..n).collect()
}

/// Runs `seeds` on every core; returns the summed stats and the failures (seed and
/// message).
fn run_seeds(seeds: &[u64]) -> (Stats, Vec<(u64, String)>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|i| seeds.iter().copied().skip(i).step_by(threads).collect())
        .collect();
    let results: Vec<(Stats, Vec<(u64, String)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut stats = Stats::default();
                    let mut failures = Vec::new();
                    for &seed in chunk {
                        match std::panic::catch_unwind(|| run_seed(seed)) {
                            Ok(st) => stats.merge(&st),
                            Err(e) => {
                                let msg = e
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_default();
                                failures.push((seed, msg));
                            }
                        }
                    }
                    (stats, failures)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (st, f) in results {
        stats.merge(&st);
        failures.extend(f);
    }
    failures.sort();
    (stats, failures)
}

/// What must have happened somewhere in the default seed set, so the invariants were
/// checked against every fault the issue names.
const MUST_FIRE: &[&str] = &[
    "fault: connection cut",
    "fault: answer lost after the broker handled the request",
    "fault: request cut before the broker answered",
    "fault: request never written (maybe_written=false)",
    "fault: request not written (broker down)",
    "fault: request.timeout.ms expired",
    "fault: zombie request applied after its connection closed",
    "fault: zombie request refused",
    "fault: answer delayed by 1 s or more",
    "fault: answers reordered across brokers",
    "fault: stale answer for a settled request id (ignored)",
    "fault: answer for an unknown request id (ignored)",
    "fault: broker crashed",
    "fault: broker paused",
    "fault: leader moved",
    "fault: uncommitted batches truncated by a new leader",
    "fault: ISR below min.insync.replicas",
    "fault: replication slow",
    "fault: producer state removed by retention",
    "fault: metadata request failed",
    "fault: InitProducerId answered COORDINATOR_NOT_AVAILABLE",
    "fault: client stalled",
    "broker answered OUT_OF_ORDER_SEQUENCE_NUMBER",
    "broker answered UNKNOWN_PRODUCER_ID",
    "broker answered INVALID_PRODUCER_EPOCH",
    "broker answered NOT_ENOUGH_REPLICAS",
    "broker answered NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "broker answered REQUEST_TIMED_OUT",
    "broker answered NOT_LEADER_OR_FOLLOWER",
    "broker answered DUPLICATE_SEQUENCE_NUMBER",
    "broker recognised a resent batch as a duplicate",
    "broker answered MESSAGE_TOO_LARGE",
    "batches split after MESSAGE_TOO_LARGE",
    "MESSAGE_TOO_LARGE while the partition had other batches in flight",
    "MESSAGE_TOO_LARGE after an epoch bump of the partition",
    "epoch bumps",
    "new producer id after epoch exhaustion",
    "records expired unwritten (delivery.timeout)",
    "records failed: unresolved across an epoch bump",
    "records failed: unresolved past the resolution timeout",
    "records resolved: acknowledged late",
    "records expired after a possible write",
    "records failed: retries exhausted",
    "outcome: failed, not persisted",
    "outcome: possibly persisted, and in the log",
    "outcome: possibly persisted, and not in the log",
];

#[test]
fn simulated_faults_never_lose_duplicate_or_reorder_acknowledged_records() {
    let seeds = seeds_from_env();
    let started = Instant::now();
    let (stats, failures) = run_seeds(&seeds);
    eprintln!(
        "{} seeds in {:?}; what happened:",
        seeds.len(),
        started.elapsed()
    );
    for (k, v) in &stats.0 {
        eprintln!("  {v:>9}  {k}");
    }
    if let Some((seed, msg)) = failures.first() {
        panic!(
            "{} of {} seeds broke an invariant; first: seed {seed}: {msg}\nall failing seeds: {:?}",
            failures.len(),
            seeds.len(),
            failures.iter().map(|f| f.0).collect::<Vec<_>>()
        );
    }
    if seeds.len() >= 500 {
        let missing: Vec<&str> = MUST_FIRE
            .iter()
            .copied()
            .filter(|k| stats.get(k) == 0)
            .collect();
        assert!(
            missing.is_empty(),
            "these faults or outcomes never happened in {} seeds, so the invariants were \
             not checked against them: {missing:?}",
            seeds.len()
        );
        assert!(
            stats.get("records acknowledged") > stats.get("records sent") / 2,
            "most records should get through the faults: {stats:?}"
        );
        write_stats(&stats);
    }
}

/// Writes the summed stats to `target/reliability/simulation.json` for
/// `cargo run -p courier-tests --bin faults-report` (docs/RELIABILITY.md).
fn write_stats(stats: &Stats) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
        });
    let dir = target.join("reliability");
    let body: Vec<String> = stats
        .0
        .iter()
        .map(|(k, v)| format!("  \"{}\": {v}", k.replace('"', "'")))
        .collect();
    let json = format!("{{\n{}\n}}\n", body.join(",\n"));
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("simulation.json"), json))
    {
        eprintln!("could not write {}: {e}", dir.display());
    }
}

// ----- regressions for the recurring complaints about idempotent producers -----

/// librdkafka #3584: after a broker outage longer than the delivery timeout, producers
/// failed fatally with "sequence desynchronization". Here the partition's only
/// eligible leader is down for three delivery timeouts: what was in flight and queued
/// expires, and the first records after it returns are written under a bumped epoch
/// with no OUT_OF_ORDER_SEQUENCE_NUMBER at all.
#[test]
fn broker_outage_longer_than_delivery_timeout_recovers_without_sequence_desync() {
    let mut sim = Sim::scripted(1, false, script_cfg());
    for _ in 0..10 {
        sim.append_to(0, 90);
    }
    sim.run_for(ms(40));
    sim.crash(1, Duration::from_secs(30), None);
    let during_outage: Vec<Token> = (0..20)
        .map(|_| {
            let t = sim.append_to(0, 90);
            sim.run_for(ms(200));
            t
        })
        .collect();
    sim.run_for(Duration::from_secs(30));
    sim.run_until_quiet("after the broker returned");
    for t in during_outage {
        assert!(
            matches!(
                sim.outcome(t),
                Outcome::Failed(Failure {
                    reason: FailureReason::DeliveryTimeout { .. },
                    persistence: Persistence::NotPersisted,
                })
            ),
            "record {t} sent while the leader was down: {:?}",
            sim.outcome(t)
        );
    }
    assert!(
        sim.stats.get("epoch bumps") >= 1,
        "expired stamped batches leave a gap"
    );
    sim.expect_recovery(30);
    assert_eq!(
        sim.stats
            .get("broker answered OUT_OF_ORDER_SEQUENCE_NUMBER"),
        0,
        "sequence desynchronization after the outage"
    );
    sim.drain_zombies();
    sim.check_invariants();
}

/// librdkafka #2163: records that time out in the queue left a sequence gap and every
/// later batch failed. Here the leader freezes (SIGSTOP) for longer than the delivery
/// timeout: the batch in flight times out and is retried, the ones queued behind it
/// expire, and after the broker thaws new records are written - nothing is stuck on a
/// gap, and what the frozen broker applies late was reported possibly persisted.
#[test]
fn records_expiring_behind_a_stuck_request_leave_no_sequence_gap() {
    let mut cfg = script_cfg();
    cfg.delivery_timeout = Duration::from_secs(8);
    let mut sim = Sim::scripted(1, false, cfg);
    for _ in 0..5 {
        sim.append_to(0, 90);
    }
    sim.run_until_quiet("before the pause");
    sim.pause(1, Duration::from_secs(20), None);
    let stuck: Vec<Token> = (0..20)
        .map(|_| {
            let t = sim.append_to(0, 90);
            sim.run_for(ms(100));
            t
        })
        .collect();
    sim.run_for(Duration::from_secs(25));
    sim.run_until_quiet("after the broker thawed");
    let mut expired_unsent = 0;
    for &t in &stuck {
        match sim.outcome(t) {
            Outcome::Failed(Failure {
                reason: FailureReason::DeliveryTimeout { .. },
                persistence,
            }) => {
                if *persistence == Persistence::NotPersisted {
                    expired_unsent += 1;
                }
            }
            Outcome::Failed(Failure {
                reason: FailureReason::EpochBumpedWhileUnresolved,
                persistence: Persistence::PossiblyPersisted,
            }) => {}
            other => panic!("record {t} sent to a frozen leader: {other:?}"),
        }
    }
    assert!(expired_unsent > 0, "queued records expired");
    sim.expect_recovery(20);
    sim.drain_zombies();
    sim.check_invariants();
}

/// UNKNOWN_PRODUCER_ID after retention removed the producer's state (brokers before
/// Kafka 2.5, and Kafka-compatible ones, answer it for a non-zero sequence): the
/// producer bumps its epoch and goes on, it does not fail. Real Kafka 4 accepts the
/// sequence instead, which `tests/faults.rs` checks on a real cluster with a tiny
/// `retention.ms`.
#[test]
fn unknown_producer_id_after_retention_bumps_the_epoch_and_sends_on() {
    let mut sim = Sim::scripted(1, true, script_cfg());
    for _ in 0..20 {
        sim.append_to(0, 90);
    }
    sim.run_until_quiet("before retention");
    sim.forget(0);
    for _ in 0..20 {
        sim.append_to(0, 90);
    }
    sim.run_until_quiet("after retention");
    assert!(sim.stats.get("broker answered UNKNOWN_PRODUCER_ID") >= 1);
    assert_eq!(sim.stats.get("epoch bumps"), 1);
    for t in 0..40 {
        assert!(
            matches!(sim.outcome(t), Outcome::Ok { .. }),
            "record {t}: {:?}",
            sim.outcome(t)
        );
    }
    sim.check_invariants();
}

/// The same retention on a Kafka 2.5+ broker: the next sequence is accepted as is.
#[test]
fn producer_state_lost_to_retention_is_accepted_by_current_brokers() {
    let mut sim = Sim::scripted(1, false, script_cfg());
    for _ in 0..20 {
        sim.append_to(0, 90);
    }
    sim.run_until_quiet("before retention");
    sim.forget(0);
    for _ in 0..20 {
        sim.append_to(0, 90);
    }
    sim.run_until_quiet("after retention");
    assert_eq!(sim.stats.get("broker answered UNKNOWN_PRODUCER_ID"), 0);
    assert_eq!(sim.stats.get("epoch bumps"), 0);
    for t in 0..40 {
        assert!(
            matches!(sim.outcome(t), Outcome::Ok { .. }),
            "record {t}: {:?}",
            sim.outcome(t)
        );
    }
    sim.check_invariants();
}

/// Producers that never recover after a failure hang the application. Here records
/// fail in every way a producer reports - refused for good (INVALID_RECORD,
/// MESSAGE_TOO_LARGE), retries exhausted on NOT_ENOUGH_REPLICAS, delivery timeout
/// while the leader is down - and each time the next records are acknowledged.
#[test]
fn producer_recovers_after_records_fail_for_every_reason() {
    let mut cfg = script_cfg();
    cfg.retries = 3;
    let mut sim = Sim::scripted(2, false, cfg);
    let expect = |sim: &mut Sim, what: &str, pred: &dyn Fn(&Outcome) -> bool| {
        sim.run_until_quiet(what);
        let t = sim.appended_at.len() as Token - 1;
        assert!(pred(sim.outcome(t)), "{what}: {:?}", sim.outcome(t));
        sim.expect_recovery(10);
    };
    for code in [codes::INVALID_RECORD, codes::MESSAGE_TOO_LARGE] {
        sim.append_to(0, 90);
        sim.run_until_quiet("warm up");
        sim.poison.insert(0, code);
        sim.append_to(0, 90);
        expect(
            &mut sim,
            error_name(code),
            &|o| matches!(o, Outcome::Failed(Failure { reason: FailureReason::Broker { code: c, .. }, persistence: Persistence::NotPersisted }) if *c == code),
        );
    }
    sim.parts[0].min_isr_ok = false;
    sim.append_to(0, 90);
    sim.run_for(Duration::from_secs(5));
    sim.parts[0].min_isr_ok = true;
    expect(&mut sim, "retries exhausted", &|o| {
        matches!(
            o,
            Outcome::Failed(Failure {
                reason: FailureReason::Broker {
                    code: codes::NOT_ENOUGH_REPLICAS,
                    ..
                },
                persistence: Persistence::NotPersisted
            })
        )
    });
    sim.drain_zombies();
    sim.check_invariants();

    // Unlimited retries: the delivery timeout ends the records instead.
    let mut sim = Sim::scripted(2, false, script_cfg());
    sim.append_to(0, 90);
    sim.run_until_quiet("warm up");
    sim.crash(1, Duration::from_secs(15), None);
    sim.append_to(0, 90);
    sim.run_for(Duration::from_secs(16));
    expect(&mut sim, "delivery timeout", &|o| {
        matches!(
            o,
            Outcome::Failed(Failure {
                reason: FailureReason::DeliveryTimeout { .. },
                ..
            })
        )
    });
    sim.drain_zombies();
    sim.check_invariants();
}

// ----- regressions for engine bugs this simulation found -----

/// Seed 14 of the first runs: a new producer's first batches were pipelined; the
/// broker refused the first (NOT_ENOUGH_REPLICAS), the ISR recovered, and it accepted
/// the second because it held no state for the producer (Kafka 2.5+ accepts any
/// sequence then, KIP-360). The first was later written after it under a bumped epoch:
/// two acknowledged records out of send order. Now a partition's first batch under a
/// producer id and epoch goes alone until it is acknowledged.
#[test]
fn refused_first_batch_is_not_overtaken_by_a_pipelined_one() {
    let mut sim = Sim::scripted(2, false, script_cfg());
    // Partition 0 gets the producer id and metadata in place.
    sim.append_to(0, 90);
    sim.run_until_quiet("warm up");
    // Partition 1 (led by broker 2) has never seen this producer.
    for _ in 0..10 {
        sim.append_to(1, 90);
    }
    sim.tick(ms(10));
    sim.parts[1].min_isr_ok = false;
    sim.handle_next(2);
    sim.parts[1].min_isr_ok = true;
    // Whatever else was pipelined behind the refused batch arrives now.
    while sim.brokers[1].conn.iter().any(|w| w.answer.is_none()) {
        sim.handle_next(2);
    }
    sim.read_answers();
    sim.run_until_quiet("after the ISR recovered");
    for t in 0..11 {
        assert!(
            matches!(sim.outcome(t), Outcome::Ok { .. }),
            "record {t}: {:?}",
            sim.outcome(t)
        );
    }
    sim.check_invariants();
}

/// Seeds 416, 2368 and 2873 of the first runs: an earlier batch acknowledged late (its
/// retry answered as a duplicate after later batches were acknowledged) moved the
/// expected sequence back, so the next batch's UNKNOWN_PRODUCER_ID was not seen as the
/// head-of-line gap it was: no epoch bump, and the batch burned its retries and failed.
#[test]
fn late_duplicate_acknowledgement_does_not_hide_a_head_of_line_gap() {
    let mut cfg = script_cfg();
    cfg.retries = 1;
    let mut sim = Sim::scripted(1, true, cfg);
    sim.append_to(0, 90);
    sim.run_until_quiet("first batch");
    assert!(matches!(sim.outcome(0), Outcome::Ok { .. }));
    for _ in 0..3 {
        sim.append_to(0, 90);
    }
    sim.tick(ms(10));
    assert_eq!(sim.requests_on_wire(1), 3);
    // The first is appended but its answer says REQUEST_TIMED_OUT; the others succeed.
    sim.parts[0].slow = true;
    sim.handle_next(1);
    sim.parts[0].slow = false;
    sim.handle_next(1);
    sim.handle_next(1);
    sim.read_answers();
    // The retry of the first is answered as a duplicate, after the later ones.
    sim.run_until_quiet("the retry");
    assert!(
        sim.stats
            .get("broker recognised a resent batch as a duplicate")
            >= 1
    );
    sim.forget(0);
    let t = sim.append_to(0, 90);
    sim.run_until_quiet("after retention");
    assert!(
        matches!(sim.outcome(t), Outcome::Ok { .. }),
        "{:?}",
        sim.outcome(t)
    );
    assert_eq!(sim.stats.get("epoch bumps"), 1);
    sim.check_invariants();
}

/// Seed 108 of the first runs: the leader moved while a batch was in flight to the old
/// one, and the next batch went to the new leader at once. That broker held no state
/// for the producer (expired), accepted it, and the first batch could never follow:
/// NOT_LEADER_OR_FOLLOWER, then OUT_OF_ORDER_SEQUENCE_NUMBER until it expired. Now a
/// partition waits for its batches in flight to a former leader before it sends to the
/// new one.
#[test]
fn batch_in_flight_to_a_former_leader_is_not_overtaken_at_the_new_one() {
    let mut sim = Sim::scripted(1, false, script_cfg());
    sim.append_to(0, 90);
    sim.run_until_quiet("warm up");
    // The broker drops the producer's state (producer.id.expiration.ms, retention).
    sim.forget(0);
    let first = sim.append_to(0, 90);
    sim.tick(ms(10));
    assert_eq!(sim.requests_on_wire(1), 1);
    // Leadership moves to broker 2 and the producer learns it.
    sim.parts[0].leader = 2;
    let md = sim.metadata();
    sim.engine.on_metadata(&md, sim.now);
    let second = sim.append_to(0, 90);
    sim.tick(ms(10));
    while sim.brokers[1].conn.iter().any(|w| w.answer.is_none()) {
        sim.handle_next(2);
    }
    sim.handle_next(1);
    sim.read_answers();
    sim.run_until_quiet("after the move");
    for t in [first, second] {
        assert!(
            matches!(sim.outcome(t), Outcome::Ok { .. }),
            "record {t}: {:?}",
            sim.outcome(t)
        );
    }
    sim.check_invariants();
}

/// A broker that lost the producer's state (expiry, retention) refuses a pipelined
/// batch (NOT_ENOUGH_REPLICAS) and accepts the next one. The refused batch can no
/// longer be written before it: when its partition's epoch is bumped, it must fail, not
/// be re-stamped and written after the later batch (found by the seeded simulation as an
/// acknowledged record stored after a later acknowledged one).
#[test]
fn batch_passed_over_by_the_broker_is_not_resent_under_a_new_epoch() {
    let mut sim = Sim::scripted(2, false, script_cfg());
    sim.append_to(0, 90);
    sim.append_to(1, 90);
    sim.run_until_quiet("warm up");
    sim.forget(0);
    let refused = sim.append_to(0, 90);
    let accepted = sim.append_to(0, 90);
    let rejected = sim.append_to(1, 90);
    sim.tick(ms(10));
    assert_eq!(
        sim.requests_on_wire(1),
        2,
        "pipelined: the broker acknowledged before"
    );
    // Another partition's batch is refused for good: a gap, so the epoch is bumped.
    sim.poison.insert(1, codes::INVALID_RECORD);
    sim.handle_next(2);
    sim.parts[0].min_isr_ok = false;
    sim.handle_next(1);
    sim.parts[0].min_isr_ok = true;
    sim.handle_next(1);
    sim.read_answers();
    sim.run_until_quiet("after the bump");
    // One bump per partition with a gap: partition 1 after its rejected batch, and
    // partition 0 once the broker answers the refused batch's resend out of order (it
    // holds the later batch's sequence now). Epochs are per partition.
    assert_eq!(sim.stats.get("epoch bumps"), 2);
    assert!(matches!(sim.outcome(accepted), Outcome::Ok { .. }));
    assert!(matches!(sim.outcome(rejected), Outcome::Failed(_)));
    assert!(
        matches!(
            sim.outcome(refused),
            Outcome::Failed(Failure {
                reason: FailureReason::Broker {
                    code: codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    ..
                },
                persistence: Persistence::NotPersisted,
            })
        ),
        "{:?}",
        sim.outcome(refused)
    );
    sim.check_invariants();
}
