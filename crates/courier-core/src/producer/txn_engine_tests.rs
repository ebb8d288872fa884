//! The transactional engine's hooks into [`TransactionMachine`] (issue 15): where the
//! producer id comes from, which batches wait, what an abort fails, how failures reach
//! the machine, and the Produce versions. The coordinator's replies are scripted here;
//! `tests/txn_simulation.rs` runs the same engine against a model coordinator and
//! partition logs with faults.

use super::*;
use crate::decode::decode_batch;
use crate::wire::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnTopicResult,
    EndTxnResponse, FindCoordinatorResponse, InitProducerIdResponse, KEY_TYPE_TRANSACTION,
};
use bytes::Bytes;
use classify::codes;
use std::collections::BTreeMap;
use std::time::Duration;
use txn::{
    ConsumerGroupMetadata, TransactionVersion, TxnCallError, TxnCallKind, TxnErrorKind, TxnEvent,
    TxnOffset, TxnOperation, TxnRequest, TxnTarget,
};

type Token = u64;

const TOPIC: &str = "t";

fn cfg() -> EngineConfig {
    EngineConfig {
        linger: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// A transactional engine with scripted coordinator replies and a broker that writes
/// every batch.
struct H {
    e: ProducerEngine<Token>,
    now: Instant,
    topic: Arc<str>,
    /// Produce requests handed out and not answered yet.
    produced: Vec<ProduceRequest>,
    deliveries: Vec<Delivery<Token>>,
    next_offset: i64,
    /// Leave metadata requests unanswered (records wait for it).
    hold_metadata: bool,
    metadata_asked: bool,
}

impl H {
    fn new(version: TransactionVersion) -> Self {
        Self::with(cfg(), version)
    }

    fn with(cfg: EngineConfig, version: TransactionVersion) -> Self {
        H {
            e: ProducerEngine::transactional(cfg, TxnConfig::new("tx", version), 7),
            now: Instant::now(),
            topic: Arc::from(TOPIC),
            produced: Vec::new(),
            deliveries: Vec::new(),
            next_offset: 0,
            hold_metadata: false,
            metadata_asked: false,
        }
    }

    /// Polls until the engine has nothing more to say; metadata is answered at once
    /// (two partitions, leaders 1 and 2).
    fn poll(&mut self) {
        loop {
            let mut out = Vec::new();
            self.e.poll(self.now, &mut out);
            if out.is_empty() {
                return;
            }
            for a in out {
                match a {
                    Action::Produce(r) => self.produced.push(r),
                    Action::Deliver(d) => self.deliveries.push(d),
                    Action::FetchMetadata { .. } if self.hold_metadata => {
                        self.metadata_asked = true;
                    }
                    Action::FetchMetadata { .. } => {
                        let md = vec![TopicMetadata {
                            name: TOPIC.into(),
                            error_code: 0,
                            partitions: (0..2)
                                .map(|p| PartitionMetadata {
                                    partition: p,
                                    leader: p + 1,
                                    error_code: 0,
                                })
                                .collect(),
                        }];
                        self.e.on_metadata(&md, self.now);
                    }
                    Action::InitProducerId => {
                        panic!("a transactional engine fetched a producer id itself")
                    }
                    other => panic!("unexpected action {other:?}"),
                }
            }
        }
    }

    fn append(&mut self, token: Token, partition: i32) {
        let mut value = token.to_be_bytes().to_vec();
        value.extend_from_slice(b"-value");
        self.e.append(
            Record {
                topic: self.topic.clone(),
                partition: Some(partition),
                key: None,
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
                timestamp_ms: 1,
                token,
            },
            self.now,
        );
        self.poll();
    }

    fn request(&mut self) -> Option<TxnRequest> {
        self.poll();
        self.e.poll_transaction(self.now).map(|r| r.request)
    }

    fn events(&mut self) -> Vec<TxnEvent> {
        std::iter::from_fn(|| self.e.poll_txn_event()).collect()
    }

    /// init_transactions through FindCoordinator and InitProducerId.
    fn init(&mut self, pid: i64, epoch: i16) {
        self.e.init_transactions().unwrap();
        match self.request() {
            Some(TxnRequest::FindCoordinator { key_type, key }) => {
                assert_eq!((key_type, key.as_str()), (KEY_TYPE_TRANSACTION, "tx"));
            }
            other => panic!("expected FindCoordinator, got {other:?}"),
        }
        self.answer_find();
        assert!(matches!(
            self.request(),
            Some(TxnRequest::InitProducerId {
                producer_id: -1,
                ..
            })
        ));
        self.answer_init(pid, epoch);
    }

    fn answer_find(&mut self) {
        self.e.on_txn_find_coordinator(
            3,
            &FindCoordinatorResponse {
                throttle_time_ms: 0,
                error_code: 0,
                error_message: None,
                node_id: 1,
                host: "b1".into(),
                port: 9092,
                coordinators: Vec::new(),
            },
            self.now,
        );
    }

    fn answer_init(&mut self, pid: i64, epoch: i16) {
        self.e.on_txn_init_producer_id(
            &InitProducerIdResponse {
                throttle_time_ms: 0,
                error_code: 0,
                producer_id: pid,
                producer_epoch: epoch,
            },
            self.now,
        );
        self.poll();
    }

    fn answer_add_partitions(&mut self, topics: &BTreeMap<String, Vec<i32>>, code: i16) {
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
                            partition_error_code: code,
                        })
                        .collect(),
                })
                .collect(),
        };
        self.e.on_txn_add_partitions(&reply, self.now);
        self.poll();
    }

    fn answer_end(&mut self, pid: i64, epoch: i16) {
        self.e.on_txn_end(
            &EndTxnResponse {
                throttle_time_ms: 0,
                error_code: 0,
                producer_id: pid,
                producer_epoch: epoch,
            },
            self.now,
        );
        self.poll();
    }

    /// Answers every Produce request handed out with `code` (NONE writes it).
    fn answer_produce(&mut self, code: i16) {
        for r in std::mem::take(&mut self.produced) {
            let parts = r
                .batches
                .iter()
                .map(|(t, p, bytes)| {
                    let n = decode_batch(bytes).unwrap().0.records.len() as i64;
                    let base_offset = if code == 0 { self.next_offset } else { -1 };
                    if code == 0 {
                        self.next_offset += n;
                    }
                    PartitionResponse {
                        topic: t.to_string(),
                        partition: *p,
                        error_code: code,
                        base_offset,
                        log_append_time: -1,
                        error_message: None,
                    }
                })
                .collect();
            self.e
                .on_produce_result(r.id, ProduceResult::Response(parts), self.now);
        }
        self.poll();
    }

    /// The batches handed out so far: (partition, pid, epoch, base sequence,
    /// transactional bit).
    fn sent_batches(&self) -> Vec<(i32, i64, i16, i32, bool)> {
        self.produced
            .iter()
            .flat_map(|r| r.batches.iter())
            .map(|(_, p, bytes)| {
                let h = decode_batch(bytes).unwrap().0.header;
                (
                    *p,
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.is_transactional(),
                )
            })
            .collect()
    }

    fn state(&self) -> TxnState {
        self.e.transaction_machine().unwrap().state()
    }
}

fn reason(d: &Delivery<Token>) -> &FailureReason {
    &d.result.as_ref().expect_err("a failure").reason
}

#[test]
fn the_producer_id_comes_from_the_machine_and_no_init_producer_id_of_its_own() {
    let mut h = H::new(TransactionVersion::V1);
    h.poll();
    assert_eq!(h.e.producer_id(), None);
    h.init(42, 3);
    assert_eq!(h.e.producer_id(), Some((42, 3)));
    assert!(h.events().contains(&TxnEvent::ProducerIdChanged {
        producer_id: 42,
        epoch: 3
    }));
    assert_eq!(h.state(), TxnState::Ready);
}

#[test]
fn records_outside_a_transaction_are_refused() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 0);
    h.append(1, 0);
    assert_eq!(h.deliveries.len(), 1);
    assert_eq!(
        reason(&h.deliveries[0]),
        &FailureReason::NotInTransaction {
            state: TxnState::Ready,
            error: None
        }
    );
    assert!(h.produced.is_empty());
    // The refusal is no failure of a transaction: the next one commits.
    h.e.begin_transaction().unwrap();
    assert_eq!(h.state(), TxnState::InTransaction);
}

#[test]
fn an_engine_without_transactional_id_refuses_transaction_calls() {
    let mut e: ProducerEngine<Token> = ProducerEngine::new(cfg(), 1);
    assert!(!e.is_transactional());
    assert_eq!(
        e.begin_transaction(),
        Err(TxnCallError::NotTransactional {
            operation: TxnCallKind::Begin
        })
    );
    assert_eq!(
        e.commit_transaction(),
        Err(TxnCallError::NotTransactional {
            operation: TxnCallKind::Commit
        })
    );
    assert!(e.poll_transaction(Instant::now()).is_none());
    assert_eq!(e.produce_versions(), 0..=i16::MAX);
    assert_eq!(e.transactional_id(), None);
}

#[test]
fn version_1_holds_a_partition_until_add_partitions_answers_and_marks_batches() {
    let mut h = H::new(TransactionVersion::V1);
    assert_eq!(h.e.produce_versions(), 3..=11);
    assert_eq!(h.e.transactional_id(), Some("tx"));
    h.init(42, 3);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    h.append(2, 1);
    assert!(h.produced.is_empty(), "sent before AddPartitionsToTxn");
    let Some(TxnRequest::AddPartitionsToTxn {
        topics,
        producer_id: 42,
        producer_epoch: 3,
        ..
    }) = h.request()
    else {
        panic!("expected AddPartitionsToTxn")
    };
    assert_eq!(topics, BTreeMap::from([(TOPIC.to_string(), vec![0, 1])]));
    h.poll();
    assert!(
        h.produced.is_empty(),
        "sent while AddPartitionsToTxn is in flight"
    );
    h.answer_add_partitions(&topics, 0);
    let mut sent = h.sent_batches();
    sent.sort();
    assert_eq!(sent, vec![(0, 42, 3, 0, true), (1, 42, 3, 0, true)]);
    // A later record of the same partition needs no second registration.
    h.answer_produce(0);
    h.append(3, 0);
    assert_eq!(h.sent_batches(), vec![(0, 42, 3, 1, true)]);
    assert!(h.e.poll_transaction(h.now).is_none());
}

#[test]
fn version_2_sends_at_once_and_the_end_txn_epoch_restarts_sequences() {
    let mut h = H::new(TransactionVersion::V2);
    assert_eq!(h.e.produce_versions(), 12..=i16::MAX);
    h.init(42, 3);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    h.append(2, 0);
    assert_eq!(h.sent_batches(), vec![(0, 42, 3, 0, true)]);
    h.e.commit_transaction().unwrap();
    // EndTxn waits for the batches: one in flight, one queued behind it.
    assert!(h.request().is_none());
    h.answer_produce(0);
    assert_eq!(h.sent_batches(), vec![(0, 42, 3, 1, true)]);
    assert!(h.request().is_none());
    h.answer_produce(0);
    assert!(matches!(
        h.request(),
        Some(TxnRequest::EndTxn {
            committed: true,
            producer_id: 42,
            producer_epoch: 3,
            ..
        })
    ));
    // KIP-890: EndTxn v5 hands out the next transaction's epoch.
    h.answer_end(42, 4);
    assert_eq!(h.e.producer_id(), Some((42, 4)));
    let events = h.events();
    assert!(events.contains(&TxnEvent::Completed(TxnOperation::Commit)));
    assert!(h
        .deliveries
        .iter()
        .all(|d| d.result.is_ok() && d.records.len() == 1));
    h.e.begin_transaction().unwrap();
    h.append(3, 0);
    assert_eq!(h.sent_batches(), vec![(0, 42, 4, 0, true)]);
}

#[test]
fn commit_sends_lingering_batches_at_once() {
    let mut h = H::with(
        EngineConfig {
            linger: Duration::from_secs(30),
            ..cfg()
        },
        TransactionVersion::V2,
    );
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    assert!(h.produced.is_empty(), "linger.ms holds the batch");
    h.e.commit_transaction().unwrap();
    h.poll();
    assert_eq!(h.sent_batches().len(), 1);
}

#[test]
fn abort_fails_unsent_batches_and_ends_locally_when_nothing_was_registered() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    h.append(2, 1);
    assert!(h.deliveries.is_empty());
    h.e.abort_transaction().unwrap();
    h.poll();
    assert_eq!(h.deliveries.len(), 2);
    for d in &h.deliveries {
        assert_eq!(reason(d), &FailureReason::TransactionAborted);
        assert_eq!(
            d.result.as_ref().unwrap_err().persistence,
            Persistence::NotPersisted
        );
    }
    // No AddPartitionsToTxn went out, so the coordinator has nothing to end.
    assert!(h.request().is_none());
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Abort)));
    assert_eq!(h.state(), TxnState::Ready);
    assert!(h.e.is_idle());
}

#[test]
fn abort_waits_for_batches_in_flight_before_end_txn() {
    let mut h = H::new(TransactionVersion::V2);
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    h.append(2, 0);
    assert_eq!(h.sent_batches().len(), 1);
    h.e.abort_transaction().unwrap();
    h.poll();
    // The queued one fails at once; the one in flight is waited for.
    assert_eq!(h.deliveries.len(), 1);
    assert_eq!(h.deliveries[0].records[0].0, 2);
    assert_eq!(reason(&h.deliveries[0]), &FailureReason::TransactionAborted);
    assert!(h.request().is_none());
    h.answer_produce(0);
    assert!(matches!(
        h.request(),
        Some(TxnRequest::EndTxn {
            committed: false,
            ..
        })
    ));
    // Records refused while aborting.
    h.append(3, 1);
    assert!(matches!(
        reason(h.deliveries.last().unwrap()),
        FailureReason::NotInTransaction {
            state: TxnState::Aborting,
            ..
        }
    ));
}

#[test]
fn a_failed_batch_makes_the_transaction_abortable_and_version_1_bumps_the_epoch() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 3);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    let Some(TxnRequest::AddPartitionsToTxn { topics, .. }) = h.request() else {
        panic!("expected AddPartitionsToTxn")
    };
    h.answer_add_partitions(&topics, 0);
    assert_eq!(h.sent_batches().len(), 1);
    // Out of order: an idempotent engine would bump the epoch itself; a transactional
    // one fails the batch and leaves the bump to the coordinator (KIP-360).
    h.answer_produce(codes::OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(h.deliveries.len(), 1);
    assert!(matches!(
        reason(&h.deliveries[0]),
        FailureReason::Broker {
            code: codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
            ..
        }
    ));
    assert_eq!(h.state(), TxnState::AbortableError);
    let refused = h.e.commit_transaction().unwrap_err();
    let TxnCallError::Failed(e) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(e.kind, TxnErrorKind::ProduceFailed);
    // Records are refused with the error until the abort.
    h.append(2, 0);
    assert!(matches!(
        reason(h.deliveries.last().unwrap()),
        FailureReason::NotInTransaction {
            state: TxnState::AbortableError,
            error: Some(_)
        }
    ));
    h.e.abort_transaction().unwrap();
    assert!(matches!(
        h.request(),
        Some(TxnRequest::EndTxn {
            committed: false,
            ..
        })
    ));
    h.answer_end(-1, -1);
    assert!(matches!(
        h.request(),
        Some(TxnRequest::InitProducerId {
            producer_id: 42,
            producer_epoch: 3,
            ..
        })
    ));
    h.answer_init(42, 4);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Abort)));
    h.e.begin_transaction().unwrap();
    h.append(3, 0);
    let Some(TxnRequest::AddPartitionsToTxn { topics, .. }) = h.request() else {
        panic!("expected AddPartitionsToTxn")
    };
    h.answer_add_partitions(&topics, 0);
    assert_eq!(h.sent_batches(), vec![(0, 42, 4, 0, true)]);
}

#[test]
fn an_expired_batch_fails_the_commit() {
    let mut h = H::with(
        EngineConfig {
            delivery_timeout: Duration::from_secs(5),
            ..cfg()
        },
        TransactionVersion::V1,
    );
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    // AddPartitionsToTxn goes out and is never answered: the batch waits, then expires.
    assert!(matches!(
        h.request(),
        Some(TxnRequest::AddPartitionsToTxn { .. })
    ));
    h.e.commit_transaction().unwrap();
    h.now += Duration::from_secs(6);
    h.poll();
    assert!(matches!(
        reason(&h.deliveries[0]),
        FailureReason::DeliveryTimeout { .. }
    ));
    assert_eq!(h.state(), TxnState::AbortableError);
    assert!(h.events().iter().any(|e| matches!(
        e,
        TxnEvent::Failed {
            operation: TxnOperation::Commit,
            ..
        }
    )));
}

#[test]
fn a_fatal_reply_fails_queued_and_later_records() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    let Some(TxnRequest::AddPartitionsToTxn { topics, .. }) = h.request() else {
        panic!("expected AddPartitionsToTxn")
    };
    h.answer_add_partitions(&topics, codes::PRODUCER_FENCED);
    assert_eq!(h.state(), TxnState::FatalError);
    assert_eq!(h.deliveries.len(), 1);
    let FailureReason::NotInTransaction {
        state: TxnState::FatalError,
        error: Some(e),
    } = reason(&h.deliveries[0])
    else {
        panic!("{:?}", h.deliveries[0])
    };
    assert_eq!(e.kind, TxnErrorKind::ProducerFenced);
    assert!(h.e.fatal().is_some());
    h.append(2, 1);
    assert_eq!(h.deliveries.len(), 2);
    assert!(h.produced.is_empty());
}

#[test]
fn a_coordinator_backoff_is_a_wakeup() {
    let mut h = H::new(TransactionVersion::V1);
    h.e.init_transactions().unwrap();
    assert!(matches!(
        h.request(),
        Some(TxnRequest::FindCoordinator { .. })
    ));
    h.e.on_txn_request_failed(h.now);
    h.poll();
    assert!(h.e.poll_transaction(h.now).is_none(), "backing off");
    let wake = h.e.next_wakeup().expect("the retry is a wakeup");
    assert!(wake > h.now);
    h.now = wake;
    let r = h.e.poll_transaction(h.now).expect("retried");
    assert_eq!(r.target, TxnTarget::AnyBroker);
}

#[test]
fn idempotent_batches_carry_no_transactional_bit() {
    let mut e: ProducerEngine<Token> = ProducerEngine::new(cfg(), 1);
    let now = Instant::now();
    let topic: Arc<str> = Arc::from(TOPIC);
    e.append(
        Record {
            topic: topic.clone(),
            partition: Some(0),
            key: None,
            value: Some(Bytes::from_static(b"value")),
            headers: Vec::new(),
            timestamp_ms: 1,
            token: 1,
        },
        now,
    );
    let mut out = Vec::new();
    e.poll(now, &mut out);
    e.on_metadata(
        &[TopicMetadata {
            name: TOPIC.into(),
            error_code: 0,
            partitions: vec![PartitionMetadata {
                partition: 0,
                leader: 1,
                error_code: 0,
            }],
        }],
        now,
    );
    e.on_producer_id(Ok((5, 0)), now);
    out.clear();
    e.poll(now, &mut out);
    let Some(Action::Produce(r)) = out.iter().find(|a| matches!(a, Action::Produce(_))) else {
        panic!("no Produce: {out:?}")
    };
    assert!(!decode_batch(&r.batches[0].2)
        .unwrap()
        .0
        .header
        .is_transactional());
}

#[test]
fn the_transaction_version_changes_only_between_transactions() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.e.set_transaction_version(TransactionVersion::V2);
    // The open transaction keeps version 1's Produce versions and registration.
    assert_eq!(h.e.produce_versions(), 3..=11);
    h.append(1, 0);
    assert!(h.produced.is_empty());
    assert!(matches!(
        h.request(),
        Some(TxnRequest::AddPartitionsToTxn { .. })
    ));
    h.e.on_txn_request_failed(h.now);
    h.e.abort_transaction().unwrap();
    // The lost AddPartitionsToTxn may have opened the transaction: it is resent, then
    // the abort ends it.
    h.now += Duration::from_secs(1);
    // No reply: the coordinator may have moved, so it is found again first.
    assert!(matches!(
        h.request(),
        Some(TxnRequest::FindCoordinator { .. })
    ));
    h.answer_find();
    let Some(TxnRequest::AddPartitionsToTxn { topics, .. }) = h.request() else {
        panic!("expected the AddPartitionsToTxn again")
    };
    h.answer_add_partitions(&topics, 0);
    assert!(matches!(
        h.request(),
        Some(TxnRequest::EndTxn {
            committed: false,
            ..
        })
    ));
    h.answer_end(-1, -1);
    // The upgrade from version 1 bumps the epoch first (KAFKA-18227).
    assert!(matches!(
        h.request(),
        Some(TxnRequest::InitProducerId {
            producer_id: 42,
            producer_epoch: 0,
            ..
        })
    ));
    h.answer_init(42, 1);
    assert_eq!(h.state(), TxnState::Ready);
    h.e.begin_transaction().unwrap();
    assert_eq!(h.e.produce_versions(), 12..=i16::MAX);
    h.append(2, 0);
    assert_eq!(
        h.sent_batches().len(),
        1,
        "version 2 sends without registering"
    );
}

#[test]
fn a_record_still_waiting_for_metadata_at_commit_fails_the_commit() {
    let mut h = H::new(TransactionVersion::V2);
    h.init(42, 0);
    h.hold_metadata = true;
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    assert!(h.metadata_asked);
    h.e.commit_transaction().unwrap();
    // The record is part of the transaction: no EndTxn while it waits.
    assert!(h.request().is_none());
    h.hold_metadata = false;
    let md = vec![TopicMetadata {
        name: TOPIC.into(),
        error_code: 0,
        partitions: vec![PartitionMetadata {
            partition: 0,
            leader: 1,
            error_code: 0,
        }],
    }];
    h.e.on_metadata(&md, h.now);
    h.poll();
    // Too late to register its partition: the commit fails rather than leave it out.
    assert_eq!(h.deliveries.len(), 1);
    assert!(matches!(
        reason(&h.deliveries[0]),
        FailureReason::NotInTransaction {
            state: TxnState::Committing,
            ..
        }
    ));
    assert_eq!(h.state(), TxnState::AbortableError);
    assert!(h.events().iter().any(|e| matches!(
        e,
        TxnEvent::Failed {
            operation: TxnOperation::Commit,
            ..
        }
    )));
}

#[test]
fn abort_fails_records_waiting_for_metadata() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 0);
    h.hold_metadata = true;
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    h.append(2, 1);
    assert!(h.deliveries.is_empty());
    h.e.abort_transaction().unwrap();
    h.poll();
    assert_eq!(h.deliveries.len(), 2);
    assert!(h
        .deliveries
        .iter()
        .all(|d| reason(d) == &FailureReason::TransactionAborted));
    assert!(h.e.is_idle());
}

#[test]
fn send_offsets_goes_to_the_machine() {
    let mut h = H::new(TransactionVersion::V1);
    h.init(42, 0);
    let offsets = vec![TxnOffset {
        topic: "in".into(),
        partition: 0,
        offset: 10,
        leader_epoch: -1,
        metadata: None,
    }];
    assert!(matches!(
        h.e.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), offsets.clone()),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::SendOffsets,
            state: TxnState::Ready
        })
    ));
    h.e.begin_transaction().unwrap();
    h.e.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), offsets)
        .unwrap();
    assert!(matches!(
        h.request(),
        Some(TxnRequest::AddOffsetsToTxn { group_id, .. }) if group_id == "g"
    ));
}

#[test]
fn a_batch_refused_behind_an_unresolved_one_is_resent_not_failed() {
    let mut h = H::new(TransactionVersion::V2);
    h.init(42, 0);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    h.answer_produce(0);
    // Confirmed: the next two are pipelined.
    h.append(2, 0);
    h.append(3, 0);
    assert_eq!(
        h.sent_batches(),
        vec![(0, 42, 0, 1, true), (0, 42, 0, 2, true)]
    );
    let reqs = std::mem::take(&mut h.produced);
    let answer = |code: i16| {
        ProduceResult::Response(vec![PartitionResponse {
            topic: TOPIC.into(),
            partition: 0,
            error_code: code,
            base_offset: -1,
            log_append_time: -1,
            error_message: None,
        }])
    };
    // The leader moved: the first is refused, the second is out of order behind it.
    h.e.on_produce_result(reqs[0].id, answer(codes::NOT_LEADER_OR_FOLLOWER), h.now);
    h.e.on_produce_result(
        reqs[1].id,
        answer(codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
        h.now,
    );
    h.poll();
    assert!(
        h.deliveries.iter().all(|d| d.result.is_ok()),
        "failed: {:?}",
        h.deliveries
    );
    assert_eq!(h.state(), TxnState::InTransaction);
    // Both are resent in order with their sequences, and the transaction commits.
    for _ in 0..4 {
        h.now += Duration::from_secs(1);
        h.poll();
        h.answer_produce(0);
    }
    assert_eq!(h.deliveries.len(), 3);
    assert!(h.deliveries.iter().all(|d| d.result.is_ok()));
    h.e.commit_transaction().unwrap();
    assert!(matches!(
        h.request(),
        Some(TxnRequest::EndTxn {
            committed: true,
            ..
        })
    ));
}

#[test]
fn after_the_coordinators_timeout_version_2_aborts_and_carries_on() {
    let mut h = H::new(TransactionVersion::V2);
    h.init(42, 5);
    h.e.begin_transaction().unwrap();
    h.append(1, 0);
    // The coordinator aborted the transaction at transaction.timeout.ms and bumped the
    // epoch; the partition's marker carries it, so the batch is fenced (KIP-588:
    // abortable for Produce).
    h.answer_produce(codes::INVALID_PRODUCER_EPOCH);
    assert!(matches!(
        reason(&h.deliveries[0]),
        FailureReason::Broker {
            code: codes::INVALID_PRODUCER_EPOCH,
            ..
        }
    ));
    assert_eq!(h.state(), TxnState::AbortableError);
    h.e.abort_transaction().unwrap();
    assert!(matches!(
        h.request(),
        Some(TxnRequest::EndTxn {
            committed: false,
            producer_epoch: 5,
            ..
        })
    ));
    // Taken as a retry of the abort the coordinator made: the next epoch comes back.
    h.answer_end(42, 6);
    assert_eq!(h.state(), TxnState::Ready);
    assert_eq!(h.e.producer_id(), Some((42, 6)));
    h.e.begin_transaction().unwrap();
    h.append(2, 0);
    assert_eq!(h.sent_batches(), vec![(0, 42, 6, 0, true)]);
}
