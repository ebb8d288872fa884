//! The engine against a simulated broker that applies Kafka's sequence rules.
//!
//! The broker model follows what a Kafka partition leader does with an idempotent
//! batch (`ProducerStateManager` / `ProducerAppendInfo` in the broker): a higher
//! epoch must start at sequence 0, a lower one is fenced, the next sequence appends,
//! one of the last five batches is a duplicate, anything else is out of order.

use super::spare::{SPARE_DECAY, SPARE_IDLE};
use super::*;
use crate::compression::Compression;
use crate::decode::decode_batch;
use crate::partitioner::partition_for_key;
use crate::sequence::increment_sequence;
use bytes::Bytes;
use classify::codes;
use std::collections::BTreeMap;
use std::time::Duration;

type Token = u64;

#[derive(Default, Clone)]
struct PartitionLog {
    /// Stored record tokens, in offset order.
    records: Vec<Token>,
    /// (pid, epoch, base seq, last seq, base offset) of the last five batches.
    recent: VecDeque<(i64, i16, i32, i32, i64)>,
}

#[derive(Default)]
struct SimBroker {
    logs: BTreeMap<(String, i32), PartitionLog>,
    /// Producer state the broker forgot (retention): answer UNKNOWN_PRODUCER_ID.
    forget: bool,
}

impl SimBroker {
    fn handle(&mut self, req: &ProduceRequest) -> Vec<PartitionResponse> {
        req.batches
            .iter()
            .map(|(topic, partition, bytes)| {
                let (code, base_offset) = self.append(topic, *partition, bytes);
                PartitionResponse {
                    topic: topic.to_string(),
                    partition: *partition,
                    error_code: code,
                    base_offset,
                    log_append_time: -1,
                    error_message: None,
                }
            })
            .collect()
    }

    fn append(&mut self, topic: &str, partition: i32, bytes: &Bytes) -> (i16, i64) {
        let (batch, _) = decode_batch(bytes).expect("engine sends valid batches");
        let h = &batch.header;
        if self.forget {
            for log in self.logs.values_mut() {
                log.recent.clear();
            }
            self.forget = false;
        }
        let log = self.logs.entry((topic.to_string(), partition)).or_default();
        let count = batch.records.len() as i32;
        let last_seq = increment_sequence(h.base_sequence, count - 1);
        if h.producer_id >= 0 {
            if let Some(&(pid, epoch, _, last, _)) = log.recent.back() {
                if pid == h.producer_id {
                    if h.producer_epoch < epoch {
                        return (codes::INVALID_PRODUCER_EPOCH, -1);
                    }
                    if h.producer_epoch == epoch {
                        if let Some(dup) = log
                            .recent
                            .iter()
                            .find(|r| r.1 == epoch && r.2 == h.base_sequence && r.3 == last_seq)
                        {
                            return (codes::NONE, dup.4);
                        }
                        if h.base_sequence != increment_sequence(last, 1) {
                            return (codes::OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
                        }
                    } else if h.base_sequence != 0 {
                        return (codes::OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
                    }
                }
            } else if h.base_sequence != 0 {
                return (codes::UNKNOWN_PRODUCER_ID, -1);
            }
        }
        let base = log.records.len() as i64;
        for r in &batch.records {
            let v = r.value.as_ref().expect("tests send values");
            log.records
                .push(u64::from_be_bytes(v[..8].try_into().unwrap()));
        }
        if h.producer_id >= 0 {
            log.recent.push_back((
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                last_seq,
                base,
            ));
            if log.recent.len() > 5 {
                log.recent.pop_front();
            }
        }
        (codes::NONE, base)
    }
}

fn record(topic: &Arc<str>, key: Option<&str>, token: Token, ts: i64) -> Record<Token> {
    let mut value = token.to_be_bytes().to_vec();
    value.extend_from_slice(b"-payload");
    Record {
        topic: topic.clone(),
        partition: None,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
        timestamp_ms: ts,
        token,
    }
}

fn metadata(topic: &str, leaders: &[i32]) -> Vec<TopicMetadata> {
    vec![TopicMetadata {
        name: topic.to_string(),
        error_code: 0,
        partitions: leaders
            .iter()
            .enumerate()
            .map(|(i, &l)| PartitionMetadata {
                partition: i as i32,
                leader: l,
                error_code: 0,
            })
            .collect(),
    }]
}

/// Drives an engine step by step, answering control requests at once.
struct Harness {
    engine: ProducerEngine<Token>,
    now: Instant,
    topic: Arc<str>,
    leaders: Vec<i32>,
    produce: VecDeque<ProduceRequest>,
    delivered: BTreeMap<Token, Result<(i32, i64), Failure>>,
    /// Records whose delivery came from a resolution (`Delivery::resolved`).
    resolved: Vec<Token>,
    bumps: Vec<i16>,
    next_pid: i64,
    /// Batches handed out for compression, not yet run.
    compress: VecDeque<CompressJob>,
}

impl Harness {
    fn new(cfg: EngineConfig, partitions: usize) -> Self {
        Self {
            engine: ProducerEngine::new(cfg, 7),
            now: Instant::now(),
            topic: Arc::from("orders"),
            leaders: (0..partitions).map(|p| (p % 3) as i32 + 1).collect(),
            produce: VecDeque::new(),
            delivered: BTreeMap::new(),
            resolved: Vec::new(),
            bumps: Vec::new(),
            next_pid: 1000,
            compress: VecDeque::new(),
        }
    }

    fn poll(&mut self) {
        loop {
            let mut out = Vec::new();
            self.engine.poll(self.now, &mut out);
            if out.is_empty() {
                return;
            }
            for a in out {
                match a {
                    Action::Produce(r) => self.produce.push_back(r),
                    Action::FetchMetadata { .. } => {
                        let md = metadata(&self.topic, &self.leaders);
                        self.engine.on_metadata(&md, self.now);
                    }
                    Action::InitProducerId => {
                        self.next_pid += 1;
                        self.engine.on_producer_id(Ok((self.next_pid, 0)), self.now);
                    }
                    Action::Deliver(d) => {
                        if d.resolved {
                            self.resolved.extend(d.records.iter().map(|(t, _)| *t));
                        }
                        for (i, (token, _)) in d.records.into_iter().enumerate() {
                            let r = d.result.clone().map(|w| {
                                (
                                    d.partition,
                                    if w.base_offset >= 0 {
                                        w.base_offset + i as i64
                                    } else {
                                        -1
                                    },
                                )
                            });
                            assert!(
                                self.delivered.insert(token, r).is_none(),
                                "record {token} delivered twice"
                            );
                        }
                    }
                    Action::EpochBumped { epoch, .. } => self.bumps.push(epoch),
                    Action::Compress(job) => self.compress.push_back(job),
                }
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.poll();
    }

    fn append(&mut self, key: Option<&str>, token: Token) {
        let r = record(&self.topic, key, token, 1_700_000_000_000 + token as i64);
        self.engine.append(r, self.now);
    }
}

fn cfg() -> EngineConfig {
    EngineConfig {
        linger: Duration::from_millis(10),
        batch_size: 1024,
        ..EngineConfig::default()
    }
}

#[test]
fn nothing_is_sent_before_linger_then_one_request_carries_the_batch() {
    let mut h = Harness::new(cfg(), 1);
    for t in 0..5 {
        h.append(Some("k"), t);
    }
    h.poll();
    assert!(h.produce.is_empty(), "sent before linger.ms");
    assert_eq!(h.engine.producer_id(), Some((1001, 0)));
    h.advance(Duration::from_millis(10));
    assert_eq!(h.produce.len(), 1);
    let req = h.produce.pop_front().unwrap();
    assert_eq!(req.batches.len(), 1);
    let (batch, _) = decode_batch(&req.batches[0].2).unwrap();
    assert_eq!(batch.records.len(), 5);
    assert_eq!(batch.header.producer_id, 1001);
    assert_eq!(batch.header.base_sequence, 0);
    let mut broker = SimBroker::default();
    let resp = broker.handle(&req);
    h.engine
        .on_produce_result(req.id, ProduceResult::Response(resp), h.now);
    h.poll();
    let offsets: Vec<i64> = (0..5).map(|t| h.delivered[&t].clone().unwrap().1).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert!(h.engine.is_idle());
}

#[test]
fn full_batch_goes_without_waiting_for_linger() {
    let mut c = cfg();
    c.linger = Duration::from_secs(60);
    c.batch_size = 200;
    let mut h = Harness::new(c, 1);
    h.poll();
    for t in 0..20 {
        h.append(Some("k"), t);
    }
    h.poll();
    assert!(
        !h.produce.is_empty(),
        "a full batch must not wait for linger"
    );
    for r in &h.produce {
        for (_, _, b) in &r.batches {
            assert!(b.len() <= 200 + 40, "batch of {} bytes", b.len());
        }
    }
}

#[test]
fn flush_sends_without_waiting_for_linger() {
    let mut c = cfg();
    c.linger = Duration::from_secs(60);
    let mut h = Harness::new(c, 1);
    h.append(None, 1);
    h.poll();
    assert!(h.produce.is_empty());
    h.engine.set_flushing(true);
    h.poll();
    assert_eq!(h.produce.len(), 1);
}

#[test]
fn retry_resends_identical_bytes_with_the_same_sequence() {
    let mut h = Harness::new(cfg(), 1);
    for t in 0..3 {
        h.append(Some("k"), t);
    }
    h.advance(Duration::from_millis(10));
    let first = h.produce.pop_front().unwrap();
    h.engine.on_produce_result(
        first.id,
        ProduceResult::Transport {
            maybe_written: true,
        },
        h.now,
    );
    h.poll();
    assert!(h.produce.is_empty(), "retried before the backoff");
    h.advance(Duration::from_secs(2));
    let second = h.produce.pop_front().unwrap();
    assert_eq!(
        first.batches[0].2, second.batches[0].2,
        "a retry must resend the same bytes"
    );
    // The first attempt did land: the broker recognises the retry as a duplicate.
    let mut broker = SimBroker::default();
    broker.handle(&first);
    let resp = broker.handle(&second);
    h.engine
        .on_produce_result(second.id, ProduceResult::Response(resp), h.now);
    h.poll();
    assert_eq!(
        broker.logs[&("orders".into(), 0)].records,
        vec![0, 1, 2],
        "no duplicate"
    );
    assert!(h.delivered.values().all(|r| r.is_ok()));
}

#[test]
fn at_most_max_in_flight_requests_per_broker() {
    let mut c = cfg();
    c.batch_size = 100;
    c.max_in_flight = 2;
    let mut h = Harness::new(c, 1);
    h.poll();
    for t in 0..50 {
        h.append(Some("k"), t);
    }
    h.advance(Duration::from_millis(10));
    // The partition's first batch under a new producer id goes alone: the broker has
    // no state for us yet and would accept any sequence (see `drain`).
    assert_eq!(h.produce.len(), 1);
    let mut broker = SimBroker::default();
    let first = h.produce.pop_front().unwrap();
    let resp = broker.handle(&first);
    h.engine
        .on_produce_result(first.id, ProduceResult::Response(resp), h.now);
    h.poll();
    assert_eq!(h.produce.len(), 2);
    assert_eq!(h.engine.requests_in_flight(), 2);
    let r = h.produce.pop_front().unwrap();
    let resp = broker.handle(&r);
    h.engine
        .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
    h.poll();
    assert_eq!(h.produce.len(), 2, "a slot freed, one more request");
}

#[test]
fn first_batch_under_a_new_producer_id_goes_alone_until_acknowledged() {
    // Kafka 2.5+ accepts any sequence from a producer it holds no state for (KIP-360).
    // If the first batch were refused (NOT_ENOUGH_REPLICAS) while a pipelined second
    // one was accepted, the first could never be written before it.
    let mut c = cfg();
    c.batch_size = 100;
    let mut h = Harness::new(c, 1);
    h.poll();
    for t in 0..30 {
        h.append(Some("k"), t);
    }
    h.advance(Duration::from_millis(10));
    assert_eq!(h.produce.len(), 1, "one batch until the broker knows us");
    let r = h.produce.pop_front().unwrap();
    let refused = vec![PartitionResponse {
        topic: "orders".into(),
        partition: 0,
        error_code: codes::NOT_ENOUGH_REPLICAS,
        base_offset: -1,
        log_append_time: -1,
        error_message: None,
    }];
    h.engine
        .on_produce_result(r.id, ProduceResult::Response(refused), h.now);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.produce.len(), 1, "still one batch after a refusal");
    let again = h.produce.pop_front().unwrap();
    assert_eq!(again.batches[0].2, r.batches[0].2, "the same batch again");
    let mut broker = SimBroker::default();
    let resp = broker.handle(&again);
    h.engine
        .on_produce_result(again.id, ProduceResult::Response(resp), h.now);
    h.poll();
    assert!(h.produce.len() > 1, "pipelined once acknowledged");
}

#[test]
fn out_of_order_sequence_at_head_bumps_epoch_and_restarts_at_zero() {
    let mut h = Harness::new(cfg(), 1);
    h.append(Some("k"), 1);
    h.advance(Duration::from_millis(10));
    let r = h.produce.pop_front().unwrap();
    let resp = vec![PartitionResponse {
        topic: "orders".into(),
        partition: 0,
        error_code: codes::UNKNOWN_PRODUCER_ID,
        base_offset: -1,
        log_append_time: -1,
        error_message: None,
    }];
    h.engine
        .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.bumps, vec![1]);
    let again = h.produce.pop_front().unwrap();
    let (b, _) = decode_batch(&again.batches[0].2).unwrap();
    assert_eq!((b.header.producer_epoch, b.header.base_sequence), (1, 0));
    assert_eq!(b.records.len(), 1);
}

#[test]
fn a_gap_bumps_only_its_partition_and_a_possibly_written_batch_elsewhere_keeps_its_sequence() {
    let mut c = cfg();
    c.batch_size = 100;
    let mut h = Harness::new(c, 2);
    h.leaders = vec![1, 1];
    h.poll();
    // Partition 0: an attempt times out (possibly written).
    h.engine.append(
        Record {
            partition: Some(0),
            ..record(&h.topic, None, 1, 0)
        },
        h.now,
    );
    // Partition 1: a batch the broker rejects for good, leaving a sequence gap.
    h.engine.append(
        Record {
            partition: Some(1),
            ..record(&h.topic, None, 2, 0)
        },
        h.now,
    );
    h.advance(Duration::from_millis(10));
    let r = h.produce.pop_front().unwrap();
    assert_eq!(r.batches.len(), 2);
    let resp = vec![
        PartitionResponse {
            topic: "orders".into(),
            partition: 0,
            error_code: codes::REQUEST_TIMED_OUT,
            base_offset: -1,
            log_append_time: -1,
            error_message: None,
        },
        PartitionResponse {
            topic: "orders".into(),
            partition: 1,
            error_code: codes::INVALID_RECORD,
            base_offset: -1,
            log_append_time: -1,
            error_message: Some("bad".into()),
        },
    ];
    h.engine
        .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
    h.poll();
    assert_eq!(h.bumps, vec![1], "the rejected batch left a gap");
    assert!(
        !h.delivered.contains_key(&1),
        "partition 0 has no gap: its possibly written batch is resent, not reported"
    );
    let d2 = h.delivered[&2].clone().unwrap_err();
    assert_eq!(d2.persistence, Persistence::NotPersisted);
    assert!(matches!(
        d2.reason,
        FailureReason::Broker {
            code: codes::INVALID_RECORD,
            ..
        }
    ));
    // The resend carries partition 0's original epoch and sequence, so the broker can
    // tell it from a new batch; partition 1 goes on under the bumped epoch.
    h.engine.append(
        Record {
            partition: Some(1),
            ..record(&h.topic, None, 3, 0)
        },
        h.now,
    );
    h.advance(Duration::from_secs(2));
    let r = h.produce.pop_front().expect("a request after the backoff");
    let mut stamps: Vec<(i32, i16, i32)> = r
        .batches
        .iter()
        .map(|(_, p, bytes)| {
            let (b, _) = decode_batch(bytes).unwrap();
            (*p, b.header.producer_epoch, b.header.base_sequence)
        })
        .collect();
    stamps.sort();
    assert_eq!(stamps, vec![(0, 0, 0), (1, 1, 0)]);
}

#[test]
fn queued_batch_expires_not_persisted_and_unsent_one_leaves_no_gap() {
    let mut c = cfg();
    c.delivery_timeout = Duration::from_secs(5);
    let mut h = Harness::new(c, 1);
    h.leaders = vec![-1];
    h.append(Some("k"), 1);
    h.poll();
    h.advance(Duration::from_secs(6));
    let f = h.delivered[&1].clone().unwrap_err();
    assert_eq!(f.persistence, Persistence::NotPersisted);
    assert!(matches!(f.reason, FailureReason::DeliveryTimeout { .. }));
    assert!(h.bumps.is_empty(), "an unsent batch used no sequence");
}

#[test]
fn retries_that_run_out_report_possibly_persisted_after_a_timeout() {
    let mut c = cfg();
    c.retries = 1;
    let mut h = Harness::new(c, 1);
    h.append(Some("k"), 1);
    h.advance(Duration::from_millis(10));
    for _ in 0..2 {
        let r = h.produce.pop_front().unwrap();
        h.engine.on_produce_result(
            r.id,
            ProduceResult::Transport {
                maybe_written: true,
            },
            h.now,
        );
        h.advance(Duration::from_secs(2));
    }
    let f = h.delivered[&1].clone().unwrap_err();
    assert_eq!(f.persistence, Persistence::PossiblyPersisted);
}

/// Answers every Produce request on the wire as a lost connection after sending.
fn lose_all(h: &mut Harness) {
    while let Some(r) = h.produce.pop_front() {
        h.engine.on_produce_result(
            r.id,
            ProduceResult::Transport {
                maybe_written: true,
            },
            h.now,
        );
    }
}

/// Acknowledges every Produce request on the wire, the first batch at offset 42;
/// returns the (epoch, base sequence) of each.
fn acknowledge_all(h: &mut Harness) -> Vec<(i16, i32)> {
    let mut log_end = 42;
    answer_with_record_limit(h, usize::MAX, &mut log_end)
        .into_iter()
        .map(|(epoch, seq, _)| (epoch, seq))
        .collect()
}

#[test]
fn possibly_written_batch_is_resolved_past_the_delivery_timeout_by_its_own_sequence() {
    let mut c = cfg();
    c.delivery_timeout = Duration::from_secs(5);
    c.resolution_timeout = Duration::from_secs(30);
    let mut h = Harness::new(c, 1);
    h.append(Some("k"), 1);
    h.advance(Duration::from_millis(10));
    // The leader is unreachable well past delivery.timeout.ms: every attempt may have
    // been written.
    for _ in 0..12 {
        lose_all(&mut h);
        h.advance(Duration::from_secs(1));
    }
    assert!(
        h.delivered.is_empty(),
        "a possibly written batch is not reported at the delivery timeout: {:?}",
        h.delivered
    );
    assert!(h.bumps.is_empty(), "resending it leaves no gap");
    // The leader answers: the resend carries the original epoch and sequence, which the
    // broker writes at most once.
    let stamps = acknowledge_all(&mut h);
    assert_eq!(stamps, vec![(0, 0)]);
    assert_eq!(h.delivered[&1].clone().unwrap(), (0, 42));
    assert_eq!(h.resolved, vec![1]);
}

#[test]
fn unresolved_past_the_resolution_timeout_is_reported_possibly_persisted() {
    let mut c = cfg();
    c.delivery_timeout = Duration::from_secs(5);
    c.resolution_timeout = Duration::from_secs(10);
    let mut h = Harness::new(c, 1);
    h.append(Some("k"), 1);
    h.advance(Duration::from_millis(10));
    for _ in 0..20 {
        lose_all(&mut h);
        h.advance(Duration::from_secs(1));
    }
    let f = h.delivered[&1].clone().unwrap_err();
    assert_eq!(f.persistence, Persistence::PossiblyPersisted);
    assert_eq!(f.reason, FailureReason::Unresolved { last_error: None });
    assert_eq!(h.resolved, vec![1]);
    // Its sequence is given up: the partition's epoch is bumped and later records are
    // sent under it.
    assert_eq!(h.bumps, vec![1]);
    h.append(Some("k"), 2);
    h.advance(Duration::from_millis(10));
    assert_eq!(acknowledge_all(&mut h), vec![(1, 0)]);
    assert!(h.delivered[&2].is_ok());
}

#[test]
fn unsent_batches_behind_a_resolving_one_still_fail_at_the_delivery_timeout() {
    let mut c = cfg();
    c.batch_size = 100;
    c.max_in_flight = 1;
    c.delivery_timeout = Duration::from_secs(5);
    c.resolution_timeout = Duration::from_secs(60);
    let mut h = Harness::new(c, 1);
    h.leaders = vec![1];
    h.append(Some("k"), 1);
    h.advance(Duration::from_millis(10));
    // One in flight at a time: the second batch is never sent while the first is
    // being resolved.
    h.engine.append(
        Record {
            partition: Some(0),
            ..record(&h.topic, None, 2, 0)
        },
        h.now,
    );
    for _ in 0..8 {
        lose_all(&mut h);
        h.advance(Duration::from_secs(1));
    }
    let f = h.delivered[&2].clone().unwrap_err();
    assert_eq!(f.persistence, Persistence::NotPersisted);
    assert!(matches!(f.reason, FailureReason::DeliveryTimeout { .. }));
    assert!(
        !h.delivered.contains_key(&1),
        "the first is still resolving"
    );
    assert!(h.bumps.is_empty(), "an unsent batch holds no sequence");
    assert_eq!(acknowledge_all(&mut h), vec![(0, 0)]);
    assert!(h.delivered[&1].is_ok());
    assert_eq!(h.resolved, vec![1]);
}

#[test]
fn without_resolution_a_possibly_written_batch_is_reported_at_the_delivery_timeout() {
    let mut c = cfg();
    c.delivery_timeout = Duration::from_secs(5);
    c.resolution_timeout = Duration::ZERO;
    let mut h = Harness::new(c, 1);
    h.append(Some("k"), 1);
    h.advance(Duration::from_millis(10));
    for _ in 0..7 {
        lose_all(&mut h);
        h.advance(Duration::from_secs(1));
    }
    let f = h.delivered[&1].clone().unwrap_err();
    assert_eq!(f.persistence, Persistence::PossiblyPersisted);
    assert!(matches!(f.reason, FailureReason::DeliveryTimeout { .. }));
    assert!(h.resolved.is_empty());
}

#[test]
fn unknown_topic_fails_after_max_block() {
    let mut c = cfg();
    c.max_block = Duration::from_secs(1);
    let mut h = Harness::new(c, 1);
    h.poll();
    h.append(None, 1);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    let missing = vec![TopicMetadata {
        name: "orders".into(),
        error_code: codes::UNKNOWN_TOPIC_OR_PARTITION,
        partitions: vec![],
    }];
    h.engine.on_metadata(&missing, h.now);
    h.now += Duration::from_secs(2);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    let delivered: Vec<_> = out
        .into_iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].result.as_ref().unwrap_err().reason,
        FailureReason::UnknownTopic
    );
}

#[test]
fn records_for_a_topic_missing_for_max_block_fail_at_once_until_it_exists() {
    let mut c = cfg();
    c.max_block = Duration::from_secs(1);
    let mut h = Harness::new(c, 1);
    h.poll();
    let missing = vec![TopicMetadata {
        name: "orders".into(),
        error_code: codes::UNKNOWN_TOPIC_OR_PARTITION,
        partitions: vec![],
    }];
    let failures = |out: Vec<Action<Token>>| -> Vec<Token> {
        out.into_iter()
            .flat_map(|a| match a {
                Action::Deliver(d) => {
                    assert_eq!(d.result.unwrap_err().reason, FailureReason::UnknownTopic);
                    d.records.into_iter().map(|(t, _)| t).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    };
    h.append(None, 1);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    h.engine.on_metadata(&missing, h.now);
    // Missing for less than max.block.ms: the next record still waits.
    h.now += Duration::from_millis(500);
    h.append(None, 2);
    h.engine.on_metadata(&missing, h.now);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    assert!(failures(out).is_empty(), "both records wait for the topic");
    // The first record has waited max.block.ms for a topic that does not exist: it
    // fails, and so does the one behind it, in arrival order; a new record fails at
    // once.
    h.now += Duration::from_millis(600);
    h.engine.on_metadata(&missing, h.now);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    assert_eq!(failures(out), [1, 2]);
    h.append(None, 3);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    assert_eq!(failures(out), [3]);
    // The topic appears: records wait for it and are sent again.
    let md = metadata(&h.topic, &h.leaders);
    h.engine.on_metadata(&md, h.now);
    h.append(None, 4);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    assert!(failures(out).is_empty(), "the topic exists again");
}

#[test]
fn records_failing_in_a_row_for_one_reason_share_a_report() {
    let mut c = cfg();
    c.max_request_size = 1000;
    let mut h = Harness::new(c, 1);
    h.poll();
    for token in 1..=3 {
        let mut big = record(&h.topic, None, token, 0);
        big.value = Some(Bytes::from(vec![0u8; 2000]));
        h.engine.append(big, h.now);
    }
    // Another failure in between (another size) starts a new report.
    let mut bigger = record(&h.topic, None, 4, 0);
    bigger.value = Some(Bytes::from(vec![0u8; 3000]));
    h.engine.append(bigger, h.now);
    let mut big = record(&h.topic, None, 5, 0);
    big.value = Some(Bytes::from(vec![0u8; 2000]));
    h.engine.append(big, h.now);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    let reports: Vec<(Vec<Token>, bool)> = out
        .into_iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => Some((
                d.records.iter().map(|r| r.0).collect(),
                matches!(
                    d.result.unwrap_err().reason,
                    FailureReason::RecordTooLarge { .. }
                ),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        reports,
        [(vec![1, 2, 3], true), (vec![4], true), (vec![5], true)]
    );
}

#[test]
fn record_over_max_request_size_fails_alone() {
    let mut c = cfg();
    c.max_request_size = 1000;
    let mut h = Harness::new(c, 1);
    h.poll();
    let mut big = record(&h.topic, None, 1, 0);
    big.value = Some(Bytes::from(vec![0u8; 2000]));
    h.engine.append(big, h.now);
    h.append(Some("k"), 2);
    h.advance(Duration::from_millis(10));
    assert!(matches!(
        h.delivered[&1].clone().unwrap_err().reason,
        FailureReason::RecordTooLarge { max: 1000, .. }
    ));
    assert_eq!(h.produce.len(), 1, "the other record still goes");
}

#[test]
fn keyed_records_follow_java_partitioning() {
    let mut h = Harness::new(cfg(), 6);
    h.poll();
    h.append(Some("order-42"), 1);
    h.advance(Duration::from_millis(10));
    let sent: Vec<i32> = h
        .produce
        .iter()
        .flat_map(|r| r.batches.iter().map(|b| b.1))
        .collect();
    assert_eq!(sent, vec![partition_for_key(b"order-42", 6)]);
}

#[test]
fn acks_zero_delivers_without_offsets() {
    let mut c = cfg();
    c.acks = 0;
    c.idempotence = false;
    let mut h = Harness::new(c, 1);
    h.append(None, 1);
    h.advance(Duration::from_millis(10));
    let r = h.produce.pop_front().unwrap();
    assert_eq!(r.acks, 0);
    let (b, _) = decode_batch(&r.batches[0].2).unwrap();
    assert_eq!(b.header.producer_id, -1);
    h.engine
        .on_produce_result(r.id, ProduceResult::WrittenNoAck, h.now);
    h.poll();
    assert_eq!(h.delivered[&1].clone().unwrap(), (0, -1));
}

/// Seeded simulation: random faults, then the invariants the fault suite checks on
/// real clusters. A failing seed replays exactly (`SIM_SEED=n`).
#[test]
fn simulated_faults_never_lose_duplicate_or_reorder_acknowledged_records() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (0..300).collect(),
    };
    let (mut bumps, mut failed) = (0, 0);
    for seed in seeds.iter().copied() {
        let (b, f) = simulate(seed);
        bumps += b;
        failed += f;
    }
    if seeds.len() > 1 {
        // The faults must have bitten: epoch bumps happened and some records failed.
        assert!(bumps > 0, "no simulated run bumped the epoch");
        assert!(failed > 0, "no simulated record failed");
    }
}

/// Runs one seeded simulation; returns (epoch bumps, failed records).
fn simulate(seed: u64) -> (usize, usize) {
    let mut rng = XorShiftRng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut c = cfg();
    c.batch_size = 120 + (rng.next_u64() % 400) as usize;
    c.max_in_flight = 1 + (rng.next_u64() % 5) as usize;
    c.delivery_timeout = Duration::from_secs(30);
    c.retries = u32::MAX;
    let mut h = Harness::new(c, 3);
    h.engine = ProducerEngine::new(h.engine.config().clone(), seed);
    let mut broker = SimBroker::default();
    let total = 200u64;
    let mut sent = 0u64;
    let mut pending: Vec<ProduceRequest> = Vec::new();
    let mut steps = 0;
    while (sent < total || !h.engine.is_idle()) && steps < 20_000 {
        steps += 1;
        if sent < total && !rng.next_u64().is_multiple_of(3) {
            let key = format!("key-{}", rng.next_u64() % 7);
            h.append(Some(&key), sent);
            sent += 1;
        }
        h.poll();
        pending.extend(h.produce.drain(..));
        // Answer some requests, in a random order across brokers but in order per
        // broker (one connection per broker answers in order).
        if !pending.is_empty() && rng.next_u64().is_multiple_of(2) {
            let pick = (rng.next_u64() % pending.len() as u64) as usize;
            let broker_id = pending[pick].broker;
            let idx = pending.iter().position(|r| r.broker == broker_id).unwrap();
            let req = pending.remove(idx);
            let fault = rng.next_u64() % 100;
            let result = match fault {
                // Lost response after the write: possibly written, and it was.
                0..=7 => {
                    broker.handle(&req);
                    ProduceResult::Transport {
                        maybe_written: true,
                    }
                }
                // Lost before the write.
                8..=12 => ProduceResult::Transport {
                    maybe_written: false,
                },
                // Not enough replicas: rejected before the append.
                13..=17 => ProduceResult::Response(
                    req.batches
                        .iter()
                        .map(|(t, p, _)| PartitionResponse {
                            topic: t.to_string(),
                            partition: *p,
                            error_code: codes::NOT_ENOUGH_REPLICAS,
                            base_offset: -1,
                            log_append_time: -1,
                            error_message: None,
                        })
                        .collect(),
                ),
                // Appended but replication unconfirmed.
                18..=21 => {
                    broker.handle(&req);
                    ProduceResult::Response(
                        req.batches
                            .iter()
                            .map(|(t, p, _)| PartitionResponse {
                                topic: t.to_string(),
                                partition: *p,
                                error_code: codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                base_offset: -1,
                                log_append_time: -1,
                                error_message: None,
                            })
                            .collect(),
                    )
                }
                // Leader moved: not written; the next metadata names a new leader.
                22..=25 => {
                    let p = (rng.next_u64() % 3) as usize;
                    h.leaders[p] = (h.leaders[p] % 3) + 1;
                    ProduceResult::Response(
                        req.batches
                            .iter()
                            .map(|(t, p, _)| PartitionResponse {
                                topic: t.to_string(),
                                partition: *p,
                                error_code: codes::NOT_LEADER_OR_FOLLOWER,
                                base_offset: -1,
                                log_append_time: -1,
                                error_message: None,
                            })
                            .collect(),
                    )
                }
                _ => ProduceResult::Response(broker.handle(&req)),
            };
            h.engine.on_produce_result(req.id, result, h.now);
        }
        // The broker forgets the producer (its state expired or retention removed
        // its batches). Only while nothing is unresolved: a broker cannot forget a
        // producer whose retry is still within delivery.timeout.ms.
        if pending.is_empty()
            && h.delivered.len() as u64 == sent
            && rng.next_u64().is_multiple_of(20)
        {
            broker.forget = true;
        }
        h.advance(Duration::from_millis(rng.next_u64() % 300));
    }
    assert!(
        h.engine.is_idle(),
        "seed {seed}: engine not idle after {steps} steps"
    );
    assert_eq!(
        h.delivered.len() as u64,
        total,
        "seed {seed}: every record gets exactly one outcome"
    );

    let mut positions: BTreeMap<Token, (i32, usize)> = BTreeMap::new();
    for ((_, p), log) in &broker.logs {
        for (i, &t) in log.records.iter().enumerate() {
            assert!(
                positions.insert(t, (*p, i)).is_none(),
                "seed {seed}: record {t} is in the log twice"
            );
        }
    }
    let mut last_pos: BTreeMap<i32, usize> = BTreeMap::new();
    for (token, outcome) in &h.delivered {
        match outcome {
            Ok((partition, _)) => {
                let &(p, pos) = positions.get(token).unwrap_or_else(|| {
                    panic!("seed {seed}: acknowledged record {token} is not in the log")
                });
                assert_eq!(p, *partition, "seed {seed}");
                // Tokens were sent in increasing order; acknowledged ones keep it per partition.
                if let Some(&prev) = last_pos.get(&p) {
                    assert!(
                        pos > prev,
                        "seed {seed}: record {token} reordered in partition {p}"
                    );
                }
                last_pos.insert(p, pos);
            }
            Err(f) => {
                if f.persistence == Persistence::NotPersisted {
                    assert!(
                        !positions.contains_key(token),
                        "seed {seed}: record {token} reported not persisted is in the log ({f:?})"
                    );
                }
            }
        }
    }
    (
        h.bumps.len(),
        h.delivered.values().filter(|r| r.is_err()).count(),
    )
}

#[test]
fn a_ready_batch_waiting_for_an_in_flight_slot_does_not_ask_for_a_busy_wakeup() {
    // Linger has passed for the queued batches, but the broker's in-flight window is
    // full: only a response can let them go, so the engine must not ask to be polled
    // again at a time that has already passed.
    let mut c = cfg();
    c.batch_size = 100;
    c.max_in_flight = 1;
    let mut h = Harness::new(c, 1);
    h.poll();
    for t in 0..20 {
        h.append(Some("k"), t);
    }
    h.advance(Duration::from_millis(50));
    assert_eq!(h.engine.requests_in_flight(), 1);
    assert!(
        h.engine.next_wakeup().is_none_or(|w| w > h.now),
        "wakeup {:?} is not after the last poll {:?}",
        h.engine.next_wakeup(),
        h.now
    );
}

/// The engine keeps sealed batches' builders (with their work areas) for the next
/// batches instead of allocating one per batch, and does not keep one that grew for an
/// outsized record.
#[test]
fn batch_builders_are_reused_and_outsized_work_areas_are_not_kept() {
    let mut c = cfg();
    c.compression = Compression::Lz4;
    let mut h = Harness::new(c, 1);
    h.engine.set_flushing(true);
    let mut broker = SimBroker::default();
    let topic = h.topic.clone();
    let mut send = |h: &mut Harness, tokens: std::ops::Range<Token>, pad: usize| {
        for t in tokens {
            let mut value = t.to_be_bytes().to_vec();
            value.resize(8 + pad, b'a');
            let mut r = record(&topic, None, t, 1_700_000_000_000);
            r.value = Some(Bytes::from(value));
            h.engine.append(r, h.now);
        }
        h.poll();
        while let Some(req) = h.produce.pop_front() {
            let resp = broker.handle(&req);
            h.engine
                .on_produce_result(req.id, ProduceResult::Response(resp), h.now);
            h.poll();
        }
    };
    send(&mut h, 0..5, 50);
    assert_eq!(
        h.engine.spare.len(),
        1,
        "the sealed batch's builder is kept"
    );
    assert!(h.engine.spare[0].work_area_capacity() >= 1024);
    send(&mut h, 5..10, 50);
    assert_eq!(
        h.engine.spare.len(),
        1,
        "the kept builder served the next batch"
    );
    // 20 kB of compressible bytes: the builder grows far past batch.size (1 kB) and
    // keeps that work area after a compressed seal; it must not stay in the pool.
    send(&mut h, 10..11, 20_000);
    assert!(
        h.engine
            .spare
            .iter()
            .all(|b| b.work_area_capacity() <= 2 * 1024),
        "an outsized work area was kept"
    );
    assert_eq!(h.delivered.len(), 11);
    assert!(h.delivered.values().all(|r| r.is_ok()));
}

fn compressing_cfg() -> EngineConfig {
    EngineConfig {
        compression: crate::compression::Compression::Lz4,
        compress_elsewhere_from: Some(0),
        linger: Duration::from_secs(60),
        batch_size: 200,
        ..cfg()
    }
}

impl Harness {
    /// Runs the compression jobs handed out so far and gives them back.
    fn run_compressions(&mut self) {
        let mut compressor = crate::compression::Compressor::new();
        while let Some(job) = self.compress.pop_front() {
            let done = job.run(&mut compressor);
            self.engine.on_compressed(done);
        }
        self.poll();
    }
}

#[test]
fn batches_compressed_elsewhere_are_sent_once_back_with_their_sequences() {
    let mut h = Harness::new(compressing_cfg(), 1);
    h.poll();
    for t in 0..40 {
        h.append(Some("k"), t);
    }
    h.poll();
    assert!(h.compress.len() >= 2, "full batches are handed out");
    assert!(
        h.produce.is_empty(),
        "nothing is sent before it is compressed"
    );
    // Batches may come back in any order: the second first.
    let first = h.compress.pop_front().unwrap();
    h.run_compressions();
    assert!(
        h.produce.is_empty(),
        "a later batch does not overtake the first"
    );
    let mut compressor = crate::compression::Compressor::new();
    h.engine.on_compressed(first.run(&mut compressor));
    h.poll();
    let req = h.produce.pop_front().expect("the first batch goes out");
    let (batch, _) = decode_batch(&req.batches[0].2).unwrap();
    assert_eq!(batch.header.base_sequence, 0);
    assert_eq!(batch.header.attributes & 7, 3, "LZ4");
    let n = batch.records.len() as i32;
    let mut broker = SimBroker::default();
    let mut sent = 0;
    let mut req = Some(req);
    while let Some(r) = req.take().or_else(|| h.produce.pop_front()) {
        let (b, _) = decode_batch(&r.batches[0].2).unwrap();
        assert_eq!(b.header.base_sequence, sent, "sequences follow send order");
        sent += b.records.len() as i32;
        let resp = broker.handle(&r);
        h.engine
            .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
        h.poll();
        h.run_compressions();
    }
    assert!(sent > n);
    h.engine.set_flushing(true);
    h.poll();
    h.run_compressions();
    while let Some(r) = h.produce.pop_front() {
        let resp = broker.handle(&r);
        h.engine
            .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
        h.poll();
        h.run_compressions();
    }
    assert_eq!(h.delivered.len(), 40);
    assert!(h.delivered.values().all(|r| r.is_ok()));
    let offsets: Vec<i64> = (0..40)
        .map(|t| h.delivered[&t].clone().unwrap().1)
        .collect();
    assert_eq!(offsets, (0..40).collect::<Vec<i64>>());
    assert!(h.engine.is_idle());
}

#[test]
fn batch_that_expires_while_compressing_fails_unsent_and_its_late_result_is_dropped() {
    let mut c = compressing_cfg();
    c.delivery_timeout = Duration::from_secs(5);
    let mut h = Harness::new(c, 1);
    h.poll();
    for t in 0..10 {
        h.append(Some("k"), t);
    }
    h.poll();
    let job = h.compress.pop_front().expect("a full batch is handed out");
    h.advance(Duration::from_secs(6));
    let expired: Vec<_> = h.delivered.values().filter(|r| r.is_err()).collect();
    assert!(!expired.is_empty());
    for f in expired {
        let f = f.clone().unwrap_err();
        assert_eq!(f.persistence, Persistence::NotPersisted);
    }
    let mut compressor = crate::compression::Compressor::new();
    h.engine.on_compressed(job.run(&mut compressor));
    h.poll();
    assert!(h.produce.is_empty(), "the expired batch is not sent");
    // The next record starts at sequence 0: the expired batch never took one.
    h.append(Some("k"), 100);
    h.engine.set_flushing(true);
    h.poll();
    h.run_compressions();
    let r = h.produce.pop_front().expect("sent");
    let (b, _) = decode_batch(&r.batches[0].2).unwrap();
    assert_eq!(b.header.base_sequence, 0);
}

#[test]
fn metadata_with_impossible_partition_indices_never_sizes_a_table_by_an_index() {
    let mut h = Harness::new(cfg(), 1);
    h.poll();
    h.append(Some("k"), 1);
    let mut out = Vec::new();
    h.engine.poll(h.now, &mut out);
    let pm = |partition, leader| PartitionMetadata {
        partition,
        leader,
        error_code: 0,
    };
    // Four entries: index 0 twice, -1 and 50,000,000 (a 91-byte reply once asked for a
    // 3.9 GB table this way). Only the first index 0 can be right.
    let hostile = vec![TopicMetadata {
        name: "orders".into(),
        error_code: 0,
        partitions: vec![
            pm(0, 1),
            pm(-1, 2),
            pm(50_000_000, 1),
            pm(0, 3),
            pm(i32::MIN, 1),
        ],
    }];
    h.engine.on_metadata(&hostile, h.now);
    assert_eq!(h.engine.topics[0].partitions.len(), 1);
    assert_eq!(h.engine.topics[0].partitions[0].leader, 1);
    h.advance(Duration::from_millis(20));
    let req = h
        .produce
        .pop_front()
        .expect("the record goes to partition 0");
    assert_eq!(req.broker, 1);
    assert_eq!(req.batches[0].1, 0);
}

#[test]
fn partitions_a_metadata_answer_leaves_out_have_no_leader() {
    let mut h = Harness::new(cfg(), 1);
    h.poll();
    let pm = |partition, leader| PartitionMetadata {
        partition,
        leader,
        error_code: 0,
    };
    // Three entries, indices 0 and 2 (1 is missing): three partitions, 1 unavailable.
    h.append(Some("k"), 1);
    let md = vec![TopicMetadata {
        name: "orders".into(),
        error_code: 0,
        partitions: vec![pm(2, 3), pm(0, 1), pm(2, 1)],
    }];
    h.engine.on_metadata(&md, h.now);
    let leaders: Vec<i32> = h.engine.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_eq!(leaders, vec![1, -1, 3]);
    // Incomplete: asked again after retry.backoff.ms.
    assert!(h.engine.metadata_needed);
}

/// Drives an engine whose every metadata answer is the same, polling every 250 µs, and
/// counts the metadata requests it makes in `span`.
fn metadata_requests(cfg: EngineConfig, span: Duration, fail: bool, produce_errors: bool) -> usize {
    let mut e: ProducerEngine<Token> = ProducerEngine::new(cfg, 3);
    let topic: Arc<str> = Arc::from("orders");
    let mut now = Instant::now();
    let end = now + span;
    let mut requests = 0;
    let mut token = 0;
    e.append(record(&topic, None, 0, 0), now);
    while now < end {
        let mut out = Vec::new();
        e.poll(now, &mut out);
        for a in out {
            match a {
                Action::FetchMetadata { .. } => {
                    requests += 1;
                    if fail {
                        e.on_metadata_failed(now);
                    } else {
                        e.on_metadata(&metadata("orders", &[1]), now);
                    }
                }
                Action::InitProducerId => e.on_producer_id(Ok((1, 0)), now),
                // Every request fails in transport, which asks for a metadata refresh.
                Action::Produce(r) if produce_errors => e.on_produce_result(
                    r.id,
                    ProduceResult::Transport {
                        maybe_written: false,
                    },
                    now,
                ),
                _ => {}
            }
        }
        token += 1;
        if token % 40 == 0 {
            e.append(record(&topic, None, token, 0), now);
        }
        now += Duration::from_micros(250);
    }
    requests
}

#[test]
fn no_setting_makes_metadata_requests_more_frequent_than_retry_backoff() {
    // metadata.max.age.ms=0 once meant a request per poll (about 6,000 a second).
    let mut c = cfg();
    c.metadata_max_age = Duration::ZERO;
    let n = metadata_requests(c.clone(), Duration::from_secs(2), false, false);
    assert!(
        (15..=21).contains(&n),
        "{n} requests in 2 s at retry.backoff.ms=100"
    );
    // Produce errors that each ask for a refresh are held to the same floor.
    let n = metadata_requests(cfg(), Duration::from_secs(2), false, true);
    assert!(n <= 21, "{n} requests in 2 s");
    // The smallest backoff the config accepts (1 ms) is the most a user can ask for: at
    // most one request a millisecond, however often the engine is polled.
    c.retry_backoff = Duration::from_millis(1);
    let n = metadata_requests(c, Duration::from_secs(1), false, false);
    assert!(
        (900..=1000).contains(&n),
        "{n} requests in 1 s at retry.backoff.ms=1 (4000 polls)"
    );
}

#[test]
fn failing_metadata_backs_off_exponentially_to_retry_backoff_max() {
    let mut c = cfg();
    c.retry_backoff = Duration::from_millis(100);
    c.retry_backoff_max = Duration::from_millis(1000);
    // 100, 200, 400, 800, then 1000 ms each (±20 %): about 11 requests in 8 s, not 80.
    let n = metadata_requests(c, Duration::from_secs(8), true, false);
    assert!((8..=14).contains(&n), "{n} requests in 8 s");
}

/// Answers every request on the wire as a broker whose topic takes batches of at most
/// `max_records` records: larger ones MESSAGE_TOO_LARGE, the others appended at the
/// next offset. Returns the (epoch, base sequence, records) of every batch appended.
fn answer_with_record_limit(
    h: &mut Harness,
    max_records: usize,
    log_end: &mut i64,
) -> Vec<(i16, i32, usize)> {
    let mut appended = Vec::new();
    while let Some(r) = h.produce.pop_front() {
        let resp = r
            .batches
            .iter()
            .map(|(t, p, bytes)| {
                let (b, _) = decode_batch(bytes).unwrap();
                let n = b.records.len();
                let (error_code, base_offset) = if n > max_records {
                    (codes::MESSAGE_TOO_LARGE, -1)
                } else {
                    appended.push((b.header.producer_epoch, b.header.base_sequence, n));
                    let at = *log_end;
                    *log_end += n as i64;
                    (0, at)
                };
                PartitionResponse {
                    topic: t.to_string(),
                    partition: *p,
                    error_code,
                    base_offset,
                    log_append_time: -1,
                    error_message: None,
                }
            })
            .collect();
        h.engine
            .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
        h.poll();
    }
    appended
}

#[test]
fn a_batch_refused_as_too_large_is_split_with_its_own_sequences_until_it_fits() {
    let mut c = cfg();
    c.batch_size = 16 * 1024;
    let mut h = Harness::new(c, 1);
    h.leaders = vec![1];
    for t in 0..7 {
        h.engine.append(
            Record {
                partition: Some(0),
                headers: vec![("trace".into(), Some(Bytes::from_static(b"t-1")))],
                ..record(&h.topic, Some("k"), t, 1_700_000_000_000 + t as i64)
            },
            h.now,
        );
    }
    h.advance(Duration::from_millis(10));
    let mut log_end = 100;
    let mut appended = Vec::new();
    for _ in 0..10 {
        appended.extend(answer_with_record_limit(&mut h, 2, &mut log_end));
        h.advance(Duration::from_millis(1));
    }
    // 7 records: 4 + 3, then 2 + 2 + 2 + 1, each half keeping its place and the next
    // sequence, so the broker sees one contiguous run under the first epoch.
    assert_eq!(
        appended,
        vec![(0, 0, 2), (0, 2, 2), (0, 4, 2), (0, 6, 1)],
        "halves in order, with consecutive sequences"
    );
    assert!(h.bumps.is_empty(), "splitting leaves no sequence gap");
    assert_eq!(h.engine.batches_split(), 3);
    for t in 0..7 {
        assert_eq!(
            h.delivered[&t].clone().unwrap(),
            (0, 100 + t as i64),
            "record {t}"
        );
    }
}

#[test]
fn a_single_record_too_large_fails_unwritten_and_the_partition_goes_on() {
    let mut c = cfg();
    c.batch_size = 16 * 1024;
    let mut h = Harness::new(c, 1);
    h.leaders = vec![1];
    h.engine.append(
        Record {
            partition: Some(0),
            ..record(&h.topic, None, 1, 0)
        },
        h.now,
    );
    h.advance(Duration::from_millis(10));
    let mut log_end = 0;
    assert!(answer_with_record_limit(&mut h, 0, &mut log_end).is_empty());
    let f = h.delivered[&1].clone().unwrap_err();
    assert_eq!(f.persistence, Persistence::NotPersisted);
    assert!(matches!(
        f.reason,
        FailureReason::Broker {
            code: codes::MESSAGE_TOO_LARGE,
            ..
        }
    ));
    assert_eq!(h.engine.batches_split(), 0);
    h.engine.append(
        Record {
            partition: Some(0),
            ..record(&h.topic, None, 2, 0)
        },
        h.now,
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(
        answer_with_record_limit(&mut h, 1, &mut log_end),
        vec![(1, 0, 1)]
    );
    assert!(h.delivered[&2].is_ok());
}

#[test]
fn batches_close_below_the_topics_max_message_bytes() {
    let mut c = cfg();
    c.batch_size = 1 << 20;
    c.linger = Duration::from_secs(1);
    let mut h = Harness::new(c, 1);
    h.leaders = vec![1];
    h.engine.append(
        Record {
            partition: Some(0),
            ..record(&h.topic, None, 0, 0)
        },
        h.now,
    );
    h.poll();
    h.engine.set_max_message_bytes("orders", 2000);
    for t in 1..200 {
        h.engine.append(
            Record {
                partition: Some(0),
                ..record(&h.topic, None, t, 0)
            },
            h.now,
        );
    }
    h.advance(Duration::from_secs(2));
    let mut sizes = Vec::new();
    while let Some(r) = h.produce.pop_front() {
        sizes.extend(r.batches.iter().map(|(_, _, b)| b.len()));
        let resp = r
            .batches
            .iter()
            .map(|(t, p, _)| PartitionResponse {
                topic: t.to_string(),
                partition: *p,
                error_code: 0,
                base_offset: 0,
                log_append_time: -1,
                error_message: None,
            })
            .collect();
        h.engine
            .on_produce_result(r.id, ProduceResult::Response(resp), h.now);
        h.advance(Duration::from_secs(1));
    }
    assert!(sizes.len() > 1, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 2000), "{sizes:?}");
    assert_eq!(h.delivered.len(), 200);
}

/// After a backlog the pool of spare batch builders is full; once the load is gone it
/// shrinks back to a few within two decay periods, while a pool in use keeps its
/// builders (issue 19: memory settles after a broker outage).
#[test]
fn spare_builders_a_backlog_left_are_let_go_once_they_sit_unused() {
    let mut h = Harness::new(cfg(), 1);
    // About 40 batches of 1 KiB: a backlog.
    for t in 0..2_000 {
        h.append(Some("k"), t);
    }
    h.advance(Duration::from_millis(20));
    let mut broker = SimBroker::default();
    while let Some(req) = h.produce.pop_front() {
        let resp = broker.handle(&req);
        h.engine
            .on_produce_result(req.id, ProduceResult::Response(resp), h.now);
        h.poll();
    }
    assert_eq!(h.delivered.len(), 2_000);
    let full = h.engine.spare_builders();
    assert!(full > SPARE_IDLE, "the backlog's builders are kept: {full}");
    // Still in use within the period: a batch a few milliseconds later takes one.
    h.append(Some("k"), 10_000);
    h.advance(Duration::from_millis(20));
    assert!(h.engine.spare_builders() >= full - 1);
    // Unused for two whole periods: back to the idle few.
    h.advance(SPARE_DECAY);
    h.advance(SPARE_DECAY);
    assert!(
        h.engine.spare_builders() <= SPARE_IDLE,
        "{} spare builders left",
        h.engine.spare_builders()
    );
}
