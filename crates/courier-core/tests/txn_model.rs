//! Seeded model test of the transaction state machine against a model transaction
//! coordinator, for both transaction versions (issue 15).
//!
//! The coordinator keeps what Kafka's `TransactionCoordinator` keeps for one
//! transactional id: producer id and epoch, the transaction's state (Empty, Ongoing,
//! PrepareCommit / PrepareAbort, CompleteCommit / CompleteAbort) and its partitions, and
//! answers as Kafka does: CONCURRENT_TRANSACTIONS while a transaction completes, NONE for
//! a repeated EndTxn with the outcome already decided, INVALID_TXN_STATE for the
//! opposite one, PRODUCER_FENCED for an old epoch; with version 2 it bumps the epoch at
//! every EndTxn and recognises a retry by the epoch before the bump (KIP-890).
//!
//! Faults: requests lost before the coordinator saw them, replies lost after it applied
//! them (the ambiguous case), COORDINATOR_LOAD_IN_PROGRESS, the coordinator moving to
//! another broker (NOT_COORDINATOR), transactions slow to complete, and a second
//! instance with the same transactional id fencing this one.
//!
//! Invariants, over every seed:
//! - a commit reported completed was committed by the coordinator, every batch of it;
//!   an abort reported completed was aborted;
//! - a commit reported failed without `commit_outcome_unknown` was not committed;
//! - with version 1, no batch goes to a partition the coordinator has not added to the
//!   open transaction; with version 2, batches carry the epoch of the open transaction;
//! - every EndTxn of one transaction carries the same producer id, epoch and outcome;
//! - a transaction reported ended is not left open at the coordinator;
//! - after the faults stop, each operation completes (the machine never wedges).
//!
//! One fatal outcome is allowed besides fencing by a second instance: with version 2,
//! Kafka answers PRODUCER_FENCED to an EndTxn that arrives while the previous
//! transaction's markers are still being written (only a retry is accepted then), and
//! after a TxnOffsetCommit or a batch whose reply was lost the producer must send that
//! EndTxn. The Java client has the same race. The test counts it.
//!
//! `TXN_SEEDS=n` runs seeds `0..n` (default 10,000, under a second);
//! `TXN_SEED=n` one seed, and `TXN_TRACE=1` prints its requests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use courier_core::errors::ErrorCode;
use courier_core::partitioner::XorShiftRng;
use courier_core::producer::txn::{
    ConsumerGroupMetadata, TransactionMachine, TransactionVersion, TxnConfig, TxnErrorClass,
    TxnEvent, TxnOffset, TxnOperation, TxnRequest, TxnState, TxnTarget,
};
use courier_core::wire::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopicResult, EndTxnResponse, FindCoordinatorResponse, InitProducerIdResponse,
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};

struct Rng(XorShiftRng);

impl Rng {
    fn new(seed: u64) -> Self {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CoordState {
    Empty,
    Ongoing,
    Prepare(bool),
    Complete(bool),
}

/// The coordinator of one transactional id.
struct Coordinator {
    version: TransactionVersion,
    node: i32,
    producer_id: i64,
    epoch: i16,
    /// Version 2: the epoch the last ended transaction ran with, to recognise a retried
    /// EndTxn (KIP-890).
    previous_epoch: i16,
    state: CoordState,
    partitions: BTreeSet<(String, i32)>,
    /// Number of the open (or last) transaction, and the decided outcomes by number.
    txn: u32,
    outcomes: BTreeMap<u32, bool>,
    fenced_by_other: bool,
    /// Version 2 answered an EndTxn PRODUCER_FENCED because the previous transaction
    /// was still completing: Kafka's rule, a race the client cannot always avoid (see
    /// `TransactionMachine::on_batch_sent`).
    fenced_while_completing: bool,
}

impl Coordinator {
    fn new(version: TransactionVersion) -> Self {
        Coordinator {
            version,
            node: 1,
            producer_id: -1,
            epoch: -1,
            previous_epoch: -1,
            state: CoordState::Empty,
            partitions: BTreeSet::new(),
            txn: 0,
            outcomes: BTreeMap::new(),
            fenced_by_other: false,
            fenced_while_completing: false,
        }
    }

    fn tick(&mut self) {
        if let CoordState::Prepare(c) = self.state {
            self.state = CoordState::Complete(c);
        }
    }

    fn open(&mut self) {
        if self.state != CoordState::Ongoing {
            self.txn += 1;
            self.partitions.clear();
            self.state = CoordState::Ongoing;
        }
    }

    fn decide(&mut self, committed: bool) {
        self.outcomes.insert(self.txn, committed);
        self.state = CoordState::Prepare(committed);
    }

    /// Another instance calls InitProducerId: the open transaction is aborted, the
    /// epoch bumped.
    fn fence(&mut self) {
        if self.state == CoordState::Ongoing {
            self.decide(false);
        }
        self.tick();
        self.epoch = self.epoch.saturating_add(1);
        self.previous_epoch = -2;
        self.fenced_by_other = true;
    }

    /// Whether `epoch` may write to the open transaction: the current one.
    fn epoch_ok(&self, producer_id: i64, epoch: i16) -> bool {
        producer_id == self.producer_id && epoch == self.epoch
    }

    fn init(&mut self, producer_id: i64, epoch: i16) -> (ErrorCode, i64, i16) {
        match self.state {
            CoordState::Ongoing => {
                // Abort the previous instance's transaction first.
                self.decide(false);
                return (ErrorCode::CONCURRENT_TRANSACTIONS, -1, -1);
            }
            CoordState::Prepare(_) => return (ErrorCode::CONCURRENT_TRANSACTIONS, -1, -1),
            _ => {}
        }
        if producer_id >= 0 && producer_id == self.producer_id && epoch == self.previous_epoch {
            // KIP-360: a retried bump gets the epoch it already caused.
            return (ErrorCode::NONE, self.producer_id, self.epoch);
        }
        if producer_id >= 0 && !self.epoch_ok(producer_id, epoch) {
            return (ErrorCode::PRODUCER_FENCED, -1, -1);
        }
        if self.producer_id < 0 {
            self.producer_id = 1000;
        }
        self.previous_epoch = self.epoch;
        self.epoch = self.epoch.saturating_add(1);
        (ErrorCode::NONE, self.producer_id, self.epoch)
    }

    fn add_partitions(&mut self, producer_id: i64, epoch: i16) -> ErrorCode {
        if !self.epoch_ok(producer_id, epoch) {
            return ErrorCode::PRODUCER_FENCED;
        }
        if matches!(self.state, CoordState::Prepare(_)) {
            return ErrorCode::CONCURRENT_TRANSACTIONS;
        }
        self.open();
        ErrorCode::NONE
    }

    fn end(&mut self, producer_id: i64, epoch: i16, committed: bool) -> (ErrorCode, i64, i16) {
        let v2 = self.version == TransactionVersion::V2;
        let retry = v2 && producer_id == self.producer_id && epoch == self.previous_epoch;
        if !self.epoch_ok(producer_id, epoch) && !retry {
            return (ErrorCode::PRODUCER_FENCED, -1, -1);
        }
        let (id, next) = if v2 {
            (self.producer_id, self.epoch)
        } else {
            (-1, -1)
        };
        match self.state {
            CoordState::Ongoing if !retry => {
                self.decide(committed);
                if v2 {
                    self.previous_epoch = self.epoch;
                    self.epoch += 1;
                    return (ErrorCode::NONE, self.producer_id, self.epoch);
                }
                (ErrorCode::NONE, id, next)
            }
            // Still writing the markers. Version 2 accepts only a retry here
            // (`isValidEpoch` in Kafka's `TransactionCoordinator.endTransaction`): the
            // next transaction's EndTxn is answered as fenced.
            CoordState::Prepare(_) if v2 && !retry => {
                self.fenced_while_completing = true;
                (ErrorCode::PRODUCER_FENCED, -1, -1)
            }
            CoordState::Prepare(c) if c == committed => {
                (ErrorCode::CONCURRENT_TRANSACTIONS, -1, -1)
            }
            CoordState::Complete(c) if c == committed && (retry || !v2) => {
                (ErrorCode::NONE, id, next)
            }
            // Version 2 lets a producer abort a transaction the coordinator never saw
            // (its partitions are added by Produce, which may not have arrived).
            CoordState::Empty | CoordState::Complete(_) if v2 && !committed && !retry => {
                // An empty transaction, aborted (and completed at once).
                self.txn += 1;
                self.decide(false);
                self.tick();
                self.previous_epoch = self.epoch;
                self.epoch += 1;
                (ErrorCode::NONE, self.producer_id, self.epoch)
            }
            _ => (ErrorCode::INVALID_TXN_STATE, -1, -1),
        }
    }
}

#[derive(Default, Debug)]
struct Stats(BTreeMap<&'static str, u64>);

impl Stats {
    fn bump(&mut self, key: &'static str) {
        *self.0.entry(key).or_default() += 1;
    }
}

/// One application transaction as the test drives it.
#[derive(Default)]
struct AppTxn {
    /// Coordinator transaction number of every batch written.
    batches: Vec<u32>,
    end_txns: Vec<(i64, i16, bool)>,
}

struct World {
    rng: Rng,
    coord: Coordinator,
    m: TransactionMachine,
    now: Instant,
    faults: bool,
    stats: Stats,
    seed: u64,
    fatal: bool,
}

const ID: &str = "txn-model";

impl World {
    /// Handles one request the machine wants to send, with faults.
    fn exchange(&mut self, target: TxnTarget, request: TxnRequest, app: &mut AppTxn) {
        if std::env::var_os("TXN_TRACE").is_some() {
            eprintln!(
                "{:?} {:?} -> {target:?} {request:?}; coordinator {:?} epoch {}",
                self.m.state(),
                self.m.pending_operation(),
                self.coord.state,
                self.coord.epoch
            );
        }
        let faults = self.faults;
        if faults && self.rng.chance(8) {
            self.stats.bump("request lost before the coordinator");
            self.m.on_request_failed(self.now);
            return;
        }
        if faults && self.rng.chance(3) && !self.coord.fenced_by_other && self.rng.chance(30) {
            self.stats.bump("fenced by a second instance");
            self.coord.fence();
        }
        if let TxnTarget::Coordinator(node) = &target {
            if faults && self.rng.chance(5) {
                self.stats.bump("coordinator moved");
                self.coord.node += 1;
            }
            if node.node_id != self.coord.node {
                self.stats.bump("NOT_COORDINATOR");
                self.reply_error(&request, ErrorCode::NOT_COORDINATOR);
                return;
            }
            if faults && self.rng.chance(5) {
                self.stats.bump("COORDINATOR_LOAD_IN_PROGRESS");
                self.reply_error(&request, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
                return;
            }
        }
        let lose_reply = faults && self.rng.chance(10);
        let now = self.now;
        match request {
            TxnRequest::FindCoordinator { key, .. } => {
                let r = found(self.coord.node);
                if lose_reply {
                    self.m.on_request_failed(now);
                } else {
                    self.m.on_find_coordinator(3, &r, now);
                }
                let _ = key;
            }
            TxnRequest::InitProducerId {
                producer_id,
                producer_epoch,
                transaction_timeout_ms,
                ..
            } => {
                assert_eq!(transaction_timeout_ms, 60_000);
                if producer_id >= 0 {
                    assert_eq!(
                        self.coord.version,
                        TransactionVersion::V1,
                        "v2 bumps in EndTxn"
                    );
                    self.stats.bump("epoch bump after an abort");
                }
                let (code, id, epoch) = self.coord.init(producer_id, producer_epoch);
                if code == ErrorCode::CONCURRENT_TRANSACTIONS {
                    self.stats.bump("InitProducerId CONCURRENT_TRANSACTIONS");
                }
                if lose_reply {
                    self.stats.bump("InitProducerId reply lost");
                    self.m.on_request_failed(now);
                } else {
                    self.m.on_init_producer_id(
                        &InitProducerIdResponse {
                            throttle_time_ms: 0,
                            error_code: code.code(),
                            producer_id: id,
                            producer_epoch: epoch,
                        },
                        now,
                    );
                }
            }
            TxnRequest::AddPartitionsToTxn {
                producer_id,
                producer_epoch,
                topics,
                ..
            } => {
                assert_eq!(self.coord.version, TransactionVersion::V1, "v2 adds none");
                let code = self.coord.add_partitions(producer_id, producer_epoch);
                if code.is_none() {
                    for (t, ps) in &topics {
                        for &p in ps {
                            self.coord.partitions.insert((t.clone(), p));
                        }
                    }
                }
                if lose_reply {
                    self.stats.bump("AddPartitionsToTxn reply lost");
                    self.m.on_request_failed(now);
                } else {
                    let reply = AddPartitionsToTxnResponse {
                        throttle_time_ms: 0,
                        results_by_topic_v3_and_below: topics
                            .iter()
                            .map(|(t, ps)| AddPartitionsToTxnTopicResult {
                                name: t.clone(),
                                results_by_partition: ps
                                    .iter()
                                    .map(|&p| AddPartitionsToTxnPartitionResult {
                                        partition_index: p,
                                        partition_error_code: code.code(),
                                    })
                                    .collect(),
                            })
                            .collect(),
                    };
                    self.m.on_add_partitions_to_txn(&reply, now);
                }
            }
            TxnRequest::AddOffsetsToTxn {
                producer_id,
                producer_epoch,
                ..
            } => {
                assert_eq!(self.coord.version, TransactionVersion::V1, "v2 adds none");
                let code = self.coord.add_partitions(producer_id, producer_epoch);
                if code.is_none() {
                    self.coord
                        .partitions
                        .insert(("__consumer_offsets".into(), 0));
                }
                if lose_reply {
                    self.stats.bump("AddOffsetsToTxn reply lost");
                    self.m.on_request_failed(now);
                } else {
                    self.m.on_add_offsets_to_txn(
                        &AddOffsetsToTxnResponse {
                            throttle_time_ms: 0,
                            error_code: code.code(),
                        },
                        now,
                    );
                }
            }
            TxnRequest::TxnOffsetCommit {
                producer_id,
                producer_epoch,
                offsets,
                ..
            } => {
                let code = if !self.coord.epoch_ok(producer_id, producer_epoch) {
                    ErrorCode::PRODUCER_FENCED
                } else if self.coord.version == TransactionVersion::V2 {
                    // TxnOffsetCommit v5 adds the offsets partition itself.
                    match self.coord.state {
                        CoordState::Prepare(_) => ErrorCode::CONCURRENT_TRANSACTIONS,
                        _ => {
                            self.coord.open();
                            ErrorCode::NONE
                        }
                    }
                } else if self.coord.state == CoordState::Ongoing
                    && self
                        .coord
                        .partitions
                        .contains(&("__consumer_offsets".into(), 0))
                {
                    ErrorCode::NONE
                } else {
                    panic!(
                        "seed {}: TxnOffsetCommit before AddOffsetsToTxn took effect",
                        self.seed
                    );
                };
                if lose_reply {
                    self.stats.bump("TxnOffsetCommit reply lost");
                    self.m.on_request_failed(now);
                } else {
                    let reply = TxnOffsetCommitResponse {
                        throttle_time_ms: 0,
                        topics: offsets
                            .iter()
                            .map(|o| TxnOffsetCommitResponseTopic {
                                name: o.topic.clone(),
                                partitions: vec![TxnOffsetCommitResponsePartition {
                                    partition_index: o.partition,
                                    error_code: code.code(),
                                }],
                            })
                            .collect(),
                    };
                    self.m.on_txn_offset_commit(&reply, now);
                }
            }
            TxnRequest::EndTxn {
                producer_id,
                producer_epoch,
                committed,
                ..
            } => {
                app.end_txns.push((producer_id, producer_epoch, committed));
                let (code, id, epoch) = self.coord.end(producer_id, producer_epoch, committed);
                if code == ErrorCode::CONCURRENT_TRANSACTIONS {
                    self.stats.bump("EndTxn CONCURRENT_TRANSACTIONS");
                }
                if lose_reply {
                    self.stats.bump("EndTxn reply lost");
                    self.m.on_request_failed(now);
                } else {
                    if app.end_txns.len() > 1 && code.is_none() {
                        self.stats.bump("retried EndTxn answered NONE");
                    }
                    self.m.on_end_txn(
                        &EndTxnResponse {
                            throttle_time_ms: 0,
                            error_code: code.code(),
                            producer_id: id,
                            producer_epoch: epoch,
                        },
                        now,
                    );
                }
            }
        }
    }

    fn reply_error(&mut self, request: &TxnRequest, code: ErrorCode) {
        let now = self.now;
        match request {
            TxnRequest::FindCoordinator { .. } => self.m.on_request_failed(now),
            TxnRequest::InitProducerId { .. } => self.m.on_init_producer_id(
                &InitProducerIdResponse {
                    throttle_time_ms: 0,
                    error_code: code.code(),
                    producer_id: -1,
                    producer_epoch: -1,
                },
                now,
            ),
            TxnRequest::AddPartitionsToTxn { topics, .. } => {
                let reply = AddPartitionsToTxnResponse {
                    throttle_time_ms: 0,
                    results_by_topic_v3_and_below: topics
                        .iter()
                        .map(|(t, ps)| AddPartitionsToTxnTopicResult {
                            name: t.clone(),
                            results_by_partition: ps
                                .iter()
                                .map(|&p| AddPartitionsToTxnPartitionResult {
                                    partition_index: p,
                                    partition_error_code: code.code(),
                                })
                                .collect(),
                        })
                        .collect(),
                };
                self.m.on_add_partitions_to_txn(&reply, now);
            }
            TxnRequest::AddOffsetsToTxn { .. } => self.m.on_add_offsets_to_txn(
                &AddOffsetsToTxnResponse {
                    throttle_time_ms: 0,
                    error_code: code.code(),
                },
                now,
            ),
            TxnRequest::TxnOffsetCommit { offsets, .. } => {
                let reply = TxnOffsetCommitResponse {
                    throttle_time_ms: 0,
                    topics: offsets
                        .iter()
                        .map(|o| TxnOffsetCommitResponseTopic {
                            name: o.topic.clone(),
                            partitions: vec![TxnOffsetCommitResponsePartition {
                                partition_index: o.partition,
                                error_code: code.code(),
                            }],
                        })
                        .collect(),
                };
                self.m.on_txn_offset_commit(&reply, now);
            }
            TxnRequest::EndTxn { .. } => self.m.on_end_txn(
                &EndTxnResponse {
                    throttle_time_ms: 0,
                    error_code: code.code(),
                    producer_id: -1,
                    producer_epoch: -1,
                },
                now,
            ),
        }
    }

    /// Drives the machine until `operation` completes or fails; returns its event.
    fn drive(&mut self, operation: TxnOperation, app: &mut AppTxn) -> TxnEvent {
        for step in 0..2000 {
            if step == 200 {
                // The faults heal: from now on the operation must complete.
                self.faults = false;
            }
            while let Some(e) = self.m.poll_event() {
                match e {
                    TxnEvent::Completed(op) | TxnEvent::Failed { operation: op, .. }
                        if op == operation =>
                    {
                        return e;
                    }
                    TxnEvent::Completed(op) | TxnEvent::Failed { operation: op, .. } => {
                        panic!(
                            "seed {}: event for {op:?} while driving {operation:?}",
                            self.seed
                        )
                    }
                    TxnEvent::ProducerIdChanged { .. } => {}
                }
            }
            match self.m.poll_request(self.now, true) {
                Some(r) => self.exchange(r.target, r.request, app),
                None => {
                    self.now += Duration::from_millis(20);
                    if !self.faults || self.rng.chance(50) {
                        self.coord.tick();
                    } else {
                        self.stats.bump("transaction slow to complete");
                    }
                }
            }
        }
        panic!(
            "seed {}: {operation:?} did not complete; state {:?}",
            self.seed,
            self.m.state()
        );
    }
}

fn found(node: i32) -> FindCoordinatorResponse {
    FindCoordinatorResponse {
        throttle_time_ms: 0,
        error_code: 0,
        error_message: None,
        node_id: node,
        host: format!("broker{node}"),
        port: 9092,
        coordinators: Vec::new(),
    }
}

/// Checks an ended transaction against the coordinator's outcomes.
fn check_outcome(w: &World, app: &AppTxn, event: &TxnEvent, committing: bool) {
    let seed = w.seed;
    let outcomes: BTreeSet<Option<bool>> = app
        .batches
        .iter()
        .map(|t| w.coord.outcomes.get(t).copied())
        .collect();
    assert!(
        outcomes.len() <= 1,
        "seed {seed}: batches of one transaction ended differently: {outcomes:?}"
    );
    let outcome = outcomes.into_iter().next().flatten();
    let first = app.end_txns.first().copied();
    assert!(
        app.end_txns.iter().all(|e| Some(*e) == first),
        "seed {seed}: EndTxn changed between attempts: {:?}",
        app.end_txns
    );
    if let TxnEvent::Completed(_) = event {
        // Nothing left open at the coordinator: an open transaction would hang until
        // its timeout and hold back the partitions' last stable offset.
        assert_ne!(
            w.coord.state,
            CoordState::Ongoing,
            "seed {seed}: the transaction ended but the coordinator still has it open"
        );
    }
    match event {
        TxnEvent::Completed(TxnOperation::Commit) => {
            assert!(committing);
            if !app.batches.is_empty() {
                assert_eq!(outcome, Some(true), "seed {seed}: reported committed");
            }
        }
        TxnEvent::Completed(TxnOperation::Abort) => {
            assert_ne!(outcome, Some(true), "seed {seed}: reported aborted");
        }
        TxnEvent::Failed {
            operation: TxnOperation::Commit,
            error,
        } if !error.commit_outcome_unknown => {
            assert_ne!(
                outcome,
                Some(true),
                "seed {seed}: commit reported failed ({error}) but it committed"
            );
        }
        _ => {}
    }
}

fn run(seed: u64, stats: &mut Stats) {
    let mut rng = Rng::new(seed);
    let version = if rng.chance(50) {
        TransactionVersion::V1
    } else {
        TransactionVersion::V2
    };
    let mut w = World {
        coord: Coordinator::new(version),
        m: TransactionMachine::new(TxnConfig::new(ID, version)),
        rng,
        now: Instant::now(),
        faults: true,
        stats: Stats::default(),
        seed,
        fatal: false,
    };
    w.m.init_transactions().unwrap();
    let mut app = AppTxn::default();
    match w.drive(TxnOperation::Init, &mut app) {
        TxnEvent::Completed(_) => {}
        TxnEvent::Failed { error, .. } => {
            assert_eq!(error.class(), TxnErrorClass::Fatal);
            w.fatal = true;
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..4 {
        if w.fatal {
            break;
        }
        w.faults = true;
        let mut app = AppTxn::default();
        w.m.begin_transaction().unwrap();
        let with_offsets = w.rng.chance(40);
        // Some transactions only commit offsets (nothing to write for their input).
        let partitions = if with_offsets && w.rng.chance(25) {
            0
        } else {
            1 + w.rng.below(3) as i32
        };
        // The application gives up on this transaction part-way (its own processing
        // failed) and aborts, with partitions possibly still being added.
        let gives_up = w.rng.chance(15);
        // The engine's part: partitions get their first record one after another, and
        // each partition's batch goes out once may_send says so.
        let mut unsent: BTreeSet<i32> = BTreeSet::new();
        let mut next = 0;
        let mut steps = 0;
        let mut abort_early = false;
        while (next < partitions || !unsent.is_empty()) && w.m.state() == TxnState::InTransaction {
            steps += 1;
            assert!(steps < 3000, "seed {seed}: partitions never added");
            if next < partitions && (unsent.is_empty() || w.rng.chance(50)) {
                w.m.add_partition("out", next).unwrap();
                unsent.insert(next);
                next += 1;
            }
            if gives_up && next > 0 && w.rng.chance(10) {
                w.stats.bump("application aborts part-way");
                abort_early = true;
                break;
            }
            for p in unsent.clone() {
                if w.m.may_send("out", p) {
                    unsent.remove(&p);
                    produce(&mut w, &mut app, p);
                }
            }
            if !unsent.is_empty() {
                match w.m.poll_request(w.now, false) {
                    Some(r) => w.exchange(r.target, r.request, &mut app),
                    None => {
                        w.now += Duration::from_millis(20);
                        w.coord.tick();
                    }
                }
            }
        }
        while let Some(e) = w.m.poll_event() {
            if let TxnEvent::Failed { .. } = e {
                panic!("seed {seed}: failure with nothing pending: {e:?}");
            }
        }
        if with_offsets && !abort_early && w.m.state() == TxnState::InTransaction {
            w.m.send_offsets_to_transaction(
                ConsumerGroupMetadata::new("g"),
                vec![TxnOffset {
                    topic: "in".into(),
                    partition: 0,
                    offset: 7,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )
            .unwrap();
            // A batch of the transaction may still fail while the offsets are sent.
            if w.rng.chance(40) {
                for _ in 0..w.rng.below(3) {
                    if let Some(r) = w.m.poll_request(w.now, true) {
                        w.exchange(r.target, r.request, &mut app);
                    }
                }
                w.stats.bump("batch failed while offsets were sent");
                w.m.on_produce_failed(Some(ErrorCode::NOT_ENOUGH_REPLICAS));
            }
            let e = w.drive(TxnOperation::SendOffsets, &mut app);
            if let TxnEvent::Failed { error, .. } = &e {
                w.stats.bump("send offsets failed");
                if error.class() == TxnErrorClass::Fatal {
                    w.fatal = true;
                    break;
                }
            }
        }
        let commit = !abort_early && w.m.state() == TxnState::InTransaction && w.rng.chance(70);
        let event = if commit {
            w.m.commit_transaction().unwrap();
            w.drive(TxnOperation::Commit, &mut app)
        } else {
            match w.m.state() {
                TxnState::InTransaction | TxnState::AbortableError => {
                    w.m.abort_transaction().unwrap();
                    w.drive(TxnOperation::Abort, &mut app)
                }
                TxnState::FatalError => {
                    w.fatal = true;
                    break;
                }
                s => panic!("seed {seed}: unexpected state {s:?}"),
            }
        };
        check_outcome(&w, &app, &event, commit);
        match event {
            TxnEvent::Completed(TxnOperation::Commit) => w.stats.bump("committed"),
            TxnEvent::Completed(TxnOperation::Abort) => w.stats.bump("aborted"),
            TxnEvent::Failed { error, .. } => {
                if error.commit_outcome_unknown {
                    w.stats.bump("commit outcome unknown");
                }
                match error.class() {
                    TxnErrorClass::Fatal => {
                        w.stats.bump("fatal");
                        w.fatal = true;
                    }
                    _ => {
                        w.stats.bump("commit abortable, then aborted");
                        w.m.abort_transaction().unwrap();
                        // The abort ends the same transaction; its EndTxn may differ.
                        app.end_txns.clear();
                        let e = w.drive(TxnOperation::Abort, &mut app);
                        if !error.commit_outcome_unknown {
                            check_outcome(&w, &app, &e, false);
                        }
                        if let TxnEvent::Failed { error, .. } = e {
                            assert_eq!(error.class(), TxnErrorClass::Fatal);
                            w.fatal = true;
                        }
                    }
                }
            }
            other => panic!("{other:?}"),
        }
        if w.fatal {
            assert_eq!(w.m.state(), TxnState::FatalError);
        } else {
            assert_eq!(w.m.state(), TxnState::Ready, "seed {seed}");
        }
    }
    if w.fatal {
        // Only fencing makes this model's producer fatal: by a second instance, or the
        // version 2 coordinator's answer to an EndTxn that came while the previous
        // transaction completed (after a request whose reply was lost, the machine
        // cannot know that nothing was added).
        if w.coord.fenced_while_completing && !w.coord.fenced_by_other {
            w.stats
                .bump("EndTxn fenced while the previous transaction completed");
        }
        assert!(
            w.coord.fenced_by_other || w.coord.fenced_while_completing,
            "seed {seed}: fatal without being fenced: {:?}",
            w.m.last_error()
        );
    }
    for (k, v) in w.stats.0 {
        *stats.0.entry(k).or_default() += v;
    }
}

/// A batch of the transaction reaches partition `p`'s leader.
fn produce(w: &mut World, app: &mut AppTxn, p: i32) {
    let (id, epoch) = w.m.producer_id().expect("producer id known");
    let seed = w.seed;
    match w.coord.version {
        TransactionVersion::V1 => {
            if w.coord.fenced_by_other && !w.coord.epoch_ok(id, epoch) {
                w.m.on_produce_failed(Some(ErrorCode::PRODUCER_FENCED));
                return;
            }
            assert!(
                w.coord.state == CoordState::Ongoing
                    && w.coord.partitions.contains(&("out".to_owned(), p)),
                "seed {seed}: batch for out-{p} before the coordinator added it"
            );
        }
        TransactionVersion::V2 => {
            // The leader adds the partition (KIP-890), waiting out a completing one.
            w.m.on_batch_sent();
            w.coord.tick();
            if !w.coord.epoch_ok(id, epoch) {
                w.m.on_produce_failed(Some(if w.coord.fenced_by_other {
                    ErrorCode::PRODUCER_FENCED
                } else {
                    ErrorCode::INVALID_PRODUCER_EPOCH
                }));
                return;
            }
            w.coord.open();
        }
    }
    if w.faults && w.rng.chance(4) {
        // The batch fails for good after retries; it may or may not be in the log.
        w.stats.bump("batch failed in the transaction");
        if w.rng.chance(50) {
            app.batches.push(w.coord.txn);
        }
        let code = match w.rng.below(3) {
            0 => Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            1 => Some(ErrorCode::NOT_ENOUGH_REPLICAS),
            _ => None,
        };
        w.m.on_produce_failed(code);
        return;
    }
    app.batches.push(w.coord.txn);
}

#[test]
fn transactions_end_as_reported_through_coordinator_faults() {
    let seeds: Vec<u64> = match std::env::var("TXN_SEED") {
        Ok(s) => vec![s.parse().expect("TXN_SEED")],
        Err(_) => {
            let n = std::env::var("TXN_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(10_000);
            (0..n).collect()
        }
    };
    let mut stats = Stats::default();
    for &seed in &seeds {
        run(seed, &mut stats);
    }
    eprintln!("{:#?}", stats.0);
    if seeds.len() >= 1000 {
        // Every fault and outcome happened: a model change that stops one from firing
        // fails here instead of silently proving less.
        for key in [
            "committed",
            "aborted",
            "fatal",
            "fenced by a second instance",
            "request lost before the coordinator",
            "coordinator moved",
            "NOT_COORDINATOR",
            "COORDINATOR_LOAD_IN_PROGRESS",
            "InitProducerId reply lost",
            "AddPartitionsToTxn reply lost",
            "AddOffsetsToTxn reply lost",
            "TxnOffsetCommit reply lost",
            "EndTxn reply lost",
            "EndTxn CONCURRENT_TRANSACTIONS",
            "retried EndTxn answered NONE",
            "commit outcome unknown",
            "transaction slow to complete",
            "batch failed in the transaction",
            "epoch bump after an abort",
            "InitProducerId CONCURRENT_TRANSACTIONS",
            "application aborts part-way",
            "batch failed while offsets were sent",
        ] {
            assert!(
                stats.0.get(key).copied().unwrap_or(0) > 0,
                "{key} never happened"
            );
        }
    }
}
