//! Unit tests of the transaction state machine: each transition, each error class, and
//! the lost EndTxn reply, driven with hand-built replies.

use std::time::{Duration, Instant};

use super::*;
use crate::wire::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopicResult, Coordinator, EndTxnResponse, FindCoordinatorResponse,
    InitProducerIdResponse, TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
};

const ID: &str = "txn-1";
const BACKOFF: Duration = Duration::from_millis(100);

fn node(id: i32) -> CoordinatorNode {
    CoordinatorNode {
        node_id: id,
        host: format!("broker{id}"),
        port: 9092,
    }
}

/// A v0..=3 FindCoordinator reply.
fn found(node_id: i32, code: ErrorCode) -> FindCoordinatorResponse {
    FindCoordinatorResponse {
        throttle_time_ms: 0,
        error_code: code.code(),
        error_message: None,
        node_id,
        host: format!("broker{node_id}"),
        port: 9092,
        coordinators: Vec::new(),
    }
}

fn init_reply(code: ErrorCode, producer_id: i64, epoch: i16) -> InitProducerIdResponse {
    InitProducerIdResponse {
        throttle_time_ms: 0,
        error_code: code.code(),
        producer_id,
        producer_epoch: epoch,
    }
}

fn end_reply(code: ErrorCode, producer_id: i64, epoch: i16) -> EndTxnResponse {
    EndTxnResponse {
        throttle_time_ms: 0,
        error_code: code.code(),
        producer_id,
        producer_epoch: epoch,
    }
}

fn add_reply(partitions: &[(&str, i32, ErrorCode)]) -> AddPartitionsToTxnResponse {
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for &(topic, partition, code) in partitions {
        let entry = AddPartitionsToTxnPartitionResult {
            partition_index: partition,
            partition_error_code: code.code(),
        };
        match topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.results_by_partition.push(entry),
            None => topics.push(AddPartitionsToTxnTopicResult {
                name: topic.to_owned(),
                results_by_partition: vec![entry],
            }),
        }
    }
    AddPartitionsToTxnResponse {
        throttle_time_ms: 0,
        results_by_topic_v3_and_below: topics,
    }
}

fn offsets_reply(partitions: &[(&str, i32, ErrorCode)]) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse {
        throttle_time_ms: 0,
        topics: partitions
            .iter()
            .map(|&(topic, partition, code)| TxnOffsetCommitResponseTopic {
                name: topic.to_owned(),
                partitions: vec![TxnOffsetCommitResponsePartition {
                    partition_index: partition,
                    error_code: code.code(),
                }],
            })
            .collect(),
    }
}

fn offset(topic: &str, partition: i32, at: i64) -> TxnOffset {
    TxnOffset {
        topic: topic.to_owned(),
        partition,
        offset: at,
        leader_epoch: -1,
        metadata: None,
    }
}

/// A machine, a clock and helpers that answer its requests.
struct Harness {
    m: TransactionMachine,
    now: Instant,
}

impl Harness {
    fn new(version: TransactionVersion) -> Self {
        Harness {
            m: TransactionMachine::new(TxnConfig::new(ID, version)),
            now: Instant::now(),
        }
    }

    /// A machine that went through init (coordinator on node 1, producer 1000 epoch 5).
    fn ready(version: TransactionVersion) -> Self {
        let mut h = Harness::new(version);
        h.m.init_transactions().unwrap();
        h.answer_find_coordinator(1);
        assert!(matches!(
            h.request().request,
            TxnRequest::InitProducerId { .. }
        ));
        h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1000, 5), h.now);
        assert_eq!(h.m.state(), TxnState::Ready);
        h.events();
        h
    }

    fn in_transaction(version: TransactionVersion) -> Self {
        let mut h = Harness::ready(version);
        h.m.begin_transaction().unwrap();
        h
    }

    /// The engine's part for a record to `topic`-`partition`: register the partition
    /// and, once it may, send its batch.
    fn send(&mut self, topic: &str, partition: i32) {
        self.m.add_partition(topic, partition).unwrap();
        if self.m.may_send(topic, partition) {
            self.m.on_batch_sent();
        }
    }

    fn poll(&mut self) -> Option<OutgoingTxnRequest> {
        self.m.poll_request(self.now, true)
    }

    fn request(&mut self) -> OutgoingTxnRequest {
        self.poll().expect("a request is due")
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn events(&mut self) -> Vec<TxnEvent> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    /// Expects a FindCoordinator for the transactional id and answers with `node_id`.
    fn answer_find_coordinator(&mut self, node_id: i32) {
        let r = self.request();
        assert_eq!(r.target, TxnTarget::AnyBroker);
        assert_eq!(
            r.request,
            TxnRequest::FindCoordinator {
                key_type: KEY_TYPE_TRANSACTION,
                key: ID.to_owned()
            }
        );
        self.m
            .on_find_coordinator(3, &found(node_id, ErrorCode::NONE), self.now);
    }

    /// Expects an AddPartitionsToTxn and answers every partition with NONE.
    fn answer_add_partitions(&mut self) -> BTreeMap<String, Vec<i32>> {
        let TxnRequest::AddPartitionsToTxn { topics, .. } = self.request().request else {
            panic!("expected AddPartitionsToTxn");
        };
        let all: Vec<(&str, i32, ErrorCode)> = topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |&p| (t.as_str(), p, ErrorCode::NONE)))
            .collect();
        let reply = add_reply(&all);
        self.m.on_add_partitions_to_txn(&reply, self.now);
        topics
    }

    fn expect_end_txn(&mut self) -> (i64, i16, bool) {
        let r = self.request();
        assert_eq!(r.target, TxnTarget::Coordinator(node(1)));
        match r.request {
            TxnRequest::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                committed,
            } => {
                assert_eq!(transactional_id, ID);
                (producer_id, producer_epoch, committed)
            }
            other => panic!("expected EndTxn, got {other:?}"),
        }
    }
}

fn failed_kind(events: &[TxnEvent], operation: TxnOperation) -> TxnError {
    events
        .iter()
        .find_map(|e| match e {
            TxnEvent::Failed {
                operation: o,
                error,
            } if *o == operation => Some(*error),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure of {operation:?} in {events:?}"))
}

// ---------------------------------------------------------------- versions

#[test]
fn version_2_needs_the_feature_produce_v12_and_end_txn_v5() {
    use TransactionVersion::*;
    assert_eq!(TransactionVersion::choose(Some(2), 12, 5), V2);
    assert_eq!(TransactionVersion::choose(Some(3), 13, 6), V2);
    assert_eq!(TransactionVersion::choose(Some(1), 12, 5), V1);
    assert_eq!(TransactionVersion::choose(None, 12, 5), V1);
    assert_eq!(TransactionVersion::choose(Some(2), 11, 5), V1);
    assert_eq!(TransactionVersion::choose(Some(2), 12, 4), V1);
}

#[test]
fn request_versions_tell_the_broker_the_protocol() {
    use TransactionVersion::*;
    // KIP-890: Produce v12, EndTxn v5 and TxnOffsetCommit v5 mean version 2.
    assert_eq!(V1.request_versions(TxnApi::Produce), 0..=11);
    assert!(V2.request_versions(TxnApi::Produce).contains(&12));
    assert!(!V2.request_versions(TxnApi::Produce).contains(&11));
    for api in [TxnApi::EndTxn, TxnApi::TxnOffsetCommit] {
        assert_eq!(*V1.request_versions(api).end(), 4);
        assert_eq!(*V2.request_versions(api).start(), 5);
    }
    assert_eq!(V1.request_versions(TxnApi::AddPartitionsToTxn), 0..=3);
    assert!(V2.request_versions(TxnApi::AddPartitionsToTxn).is_empty());
    assert!(V2.request_versions(TxnApi::AddOffsetsToTxn).is_empty());
    assert!(V2.request_versions(TxnApi::FindCoordinator).contains(&6));
}

// ---------------------------------------------------------------- init

#[test]
fn init_finds_the_coordinator_then_gets_a_producer_id() {
    let mut h = Harness::new(TransactionVersion::V1);
    assert_eq!(h.m.state(), TxnState::Uninitialized);
    assert!(h.poll().is_none(), "nothing before init_transactions");
    h.m.init_transactions().unwrap();
    assert_eq!(h.m.state(), TxnState::Initializing);
    h.answer_find_coordinator(1);
    let r = h.request();
    assert_eq!(r.target, TxnTarget::Coordinator(node(1)));
    assert_eq!(
        r.request,
        TxnRequest::InitProducerId {
            transactional_id: ID.to_owned(),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        }
    );
    assert!(h.poll().is_none(), "one transactional request in flight");
    h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1000, 5), h.now);
    assert_eq!(h.m.state(), TxnState::Ready);
    assert_eq!(h.m.producer_id(), Some((1000, 5)));
    assert_eq!(
        h.events(),
        vec![
            TxnEvent::ProducerIdChanged {
                producer_id: 1000,
                epoch: 5
            },
            TxnEvent::Completed(TxnOperation::Init)
        ]
    );
}

#[test]
fn init_called_again_while_pending_resumes_it() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.init_transactions().unwrap();
    h.m.init_transactions().unwrap();
    assert_eq!(h.m.pending_operation(), Some(TxnOperation::Init));
    let mut ready = Harness::ready(TransactionVersion::V1);
    assert!(matches!(
        ready.m.init_transactions(),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::Init,
            state: TxnState::Ready
        })
    ));
}

#[test]
fn concurrent_transactions_is_retried_after_the_backoff_with_the_same_coordinator() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.init_transactions().unwrap();
    h.answer_find_coordinator(1);
    h.request();
    h.m.on_init_producer_id(
        &init_reply(ErrorCode::CONCURRENT_TRANSACTIONS, -1, -1),
        h.now,
    );
    assert_eq!(h.m.state(), TxnState::Initializing);
    h.advance(BACKOFF - Duration::from_millis(1));
    assert!(h.poll().is_none(), "backoff not over");
    h.advance(Duration::from_millis(1));
    let r = h.request();
    assert_eq!(r.target, TxnTarget::Coordinator(node(1)));
    assert!(matches!(r.request, TxnRequest::InitProducerId { .. }));
}

#[test]
fn coordinator_load_in_progress_keeps_the_coordinator() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.init_transactions().unwrap();
    h.answer_find_coordinator(1);
    h.request();
    h.m.on_init_producer_id(
        &init_reply(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS, -1, -1),
        h.now,
    );
    h.advance(BACKOFF);
    assert!(matches!(
        h.request().request,
        TxnRequest::InitProducerId { .. }
    ));
}

#[test]
fn not_coordinator_finds_the_coordinator_again() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.init_transactions().unwrap();
    h.answer_find_coordinator(1);
    h.request();
    h.m.on_init_producer_id(&init_reply(ErrorCode::NOT_COORDINATOR, -1, -1), h.now);
    h.advance(BACKOFF);
    h.answer_find_coordinator(2);
    let r = h.request();
    assert_eq!(r.target, TxnTarget::Coordinator(node(2)));
    assert!(matches!(r.request, TxnRequest::InitProducerId { .. }));
}

#[test]
fn find_coordinator_reads_the_batched_v4_reply_and_refuses_a_missing_key() {
    let mut h = Harness::new(TransactionVersion::V2);
    h.m.init_transactions().unwrap();
    h.request();
    let mut reply = found(0, ErrorCode::NONE);
    reply.host.clear();
    reply.coordinators = vec![Coordinator {
        key: ID.to_owned(),
        node_id: 7,
        host: "broker7".to_owned(),
        port: 9093,
        error_code: 0,
        error_message: None,
    }];
    h.m.on_find_coordinator(4, &reply, h.now);
    let r = h.request();
    assert_eq!(
        r.target,
        TxnTarget::Coordinator(CoordinatorNode {
            node_id: 7,
            host: "broker7".to_owned(),
            port: 9093
        })
    );

    let mut h = Harness::new(TransactionVersion::V2);
    h.m.init_transactions().unwrap();
    h.request();
    reply.coordinators[0].key = "someone-else".to_owned();
    h.m.on_find_coordinator(4, &reply, h.now);
    assert_eq!(h.m.state(), TxnState::FatalError);
    assert_eq!(
        failed_kind(&h.events(), TxnOperation::Init).kind,
        TxnErrorKind::Unexpected
    );
}

#[test]
fn find_coordinator_not_available_is_retried() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.init_transactions().unwrap();
    h.request();
    h.m.on_find_coordinator(3, &found(-1, ErrorCode::COORDINATOR_NOT_AVAILABLE), h.now);
    assert!(h.poll().is_none());
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    assert!(matches!(
        h.request().request,
        TxnRequest::InitProducerId { .. }
    ));
}

#[test]
fn init_authorization_failure_and_bad_timeout_are_fatal() {
    for (code, kind) in [
        (
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            TxnErrorKind::TransactionalIdAuthorizationFailed,
        ),
        (
            ErrorCode::INVALID_TRANSACTION_TIMEOUT,
            TxnErrorKind::InvalidTransactionTimeout,
        ),
        (
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            TxnErrorKind::ClusterAuthorizationFailed,
        ),
        (ErrorCode::PRODUCER_FENCED, TxnErrorKind::ProducerFenced),
    ] {
        let mut h = Harness::new(TransactionVersion::V1);
        h.m.init_transactions().unwrap();
        h.answer_find_coordinator(1);
        h.request();
        h.m.on_init_producer_id(&init_reply(code, -1, -1), h.now);
        assert_eq!(h.m.state(), TxnState::FatalError, "{code}");
        let e = failed_kind(&h.events(), TxnOperation::Init);
        assert_eq!(
            (e.kind, e.code, e.class()),
            (kind, Some(code), TxnErrorClass::Fatal)
        );
        assert_eq!(h.m.begin_transaction(), Err(TxnCallError::Failed(e)));
        assert!(h.poll().is_none(), "a fatal machine sends nothing");
    }
}

#[test]
fn a_lost_find_coordinator_reply_is_asked_again_after_the_backoff() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.init_transactions().unwrap();
    h.request();
    h.m.on_request_failed(h.now);
    assert!(h.poll().is_none());
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
}

// ---------------------------------------------------------------- begin and send

#[test]
fn begin_needs_a_ready_producer() {
    let mut h = Harness::new(TransactionVersion::V1);
    assert_eq!(
        h.m.begin_transaction(),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::Begin,
            state: TxnState::Uninitialized
        })
    );
    let mut h = Harness::ready(TransactionVersion::V1);
    h.m.begin_transaction().unwrap();
    assert_eq!(h.m.state(), TxnState::InTransaction);
    assert!(h.poll().is_none(), "begin sends nothing");
    assert!(matches!(
        h.m.begin_transaction(),
        Err(TxnCallError::WrongState { .. })
    ));
}

#[test]
fn sending_outside_a_transaction_is_refused() {
    let mut h = Harness::ready(TransactionVersion::V2);
    assert_eq!(
        h.m.add_partition("a", 0),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::Send,
            state: TxnState::Ready
        })
    );
}

#[test]
fn v1_registers_partitions_before_their_batches_go_out() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.m.add_partition("a", 1).unwrap();
    h.m.add_partition("b", 0).unwrap();
    assert!(!h.m.may_send("a", 0));
    assert!(!h.m.partitions_settled());
    let r = h.request();
    assert_eq!(r.target, TxnTarget::Coordinator(node(1)));
    let TxnRequest::AddPartitionsToTxn {
        producer_id,
        producer_epoch,
        topics,
        ..
    } = r.request
    else {
        panic!("expected AddPartitionsToTxn");
    };
    assert_eq!((producer_id, producer_epoch), (1000, 5));
    assert_eq!(
        topics,
        BTreeMap::from([("a".to_owned(), vec![0, 1]), ("b".to_owned(), vec![0])])
    );
    // Added while the request is in flight: goes in the next one.
    h.m.add_partition("c", 3).unwrap();
    h.send("a", 0);
    h.m.on_add_partitions_to_txn(
        &add_reply(&[
            ("a", 0, ErrorCode::NONE),
            ("a", 1, ErrorCode::NONE),
            ("b", 0, ErrorCode::NONE),
        ]),
        h.now,
    );
    assert!(h.m.may_send("a", 0) && h.m.may_send("b", 0));
    assert!(!h.m.may_send("c", 3));
    let second = h.answer_add_partitions();
    assert_eq!(second, BTreeMap::from([("c".to_owned(), vec![3])]));
    assert!(h.m.may_send("c", 3));
    assert!(h.m.partitions_settled());
    assert!(h.poll().is_none(), "nothing more until commit");
}

#[test]
fn v2_abort_before_any_batch_went_out_sends_no_end_txn() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.m.add_partition("a", 0).unwrap();
    assert!(h.m.may_send("a", 0));
    // Nothing reached a leader, so the coordinator cannot have the transaction; an
    // EndTxn could even be refused as fenced while the previous one completes.
    h.m.abort_transaction().unwrap();
    assert!(h.poll().is_none());
    assert_eq!(h.events(), vec![TxnEvent::Completed(TxnOperation::Abort)]);
    // Once a batch goes out, the abort needs an EndTxn.
    h.m.begin_transaction().unwrap();
    h.send("a", 0);
    h.m.abort_transaction().unwrap();
    assert_eq!(h.expect_end_txn(), (1000, 5, false));
}

#[test]
fn v2_sends_no_add_partitions() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    assert!(h.m.may_send("a", 0));
    assert!(h.poll().is_none());
}

#[test]
fn v1_first_add_partitions_retries_concurrent_transactions_sooner() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.request();
    h.m.on_add_partitions_to_txn(
        &add_reply(&[("a", 0, ErrorCode::CONCURRENT_TRANSACTIONS)]),
        h.now,
    );
    assert!(!h.m.may_send("a", 0));
    h.advance(FIRST_ADD_PARTITIONS_RETRY_BACKOFF - Duration::from_millis(1));
    assert!(h.poll().is_none());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.answer_add_partitions(),
        BTreeMap::from([("a".to_owned(), vec![0])])
    );
    // Later ones wait the normal backoff.
    h.m.add_partition("b", 0).unwrap();
    h.request();
    h.m.on_add_partitions_to_txn(
        &add_reply(&[("b", 0, ErrorCode::CONCURRENT_TRANSACTIONS)]),
        h.now,
    );
    h.advance(FIRST_ADD_PARTITIONS_RETRY_BACKOFF);
    assert!(h.poll().is_none());
    h.advance(BACKOFF);
    assert!(h.poll().is_some());
}

#[test]
fn v1_unauthorized_topic_is_abortable_and_the_empty_abort_sends_nothing() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.m.add_partition("secret", 0).unwrap();
    h.request();
    h.m.on_add_partitions_to_txn(
        &add_reply(&[("secret", 0, ErrorCode::TOPIC_AUTHORIZATION_FAILED)]),
        h.now,
    );
    assert_eq!(h.m.state(), TxnState::AbortableError);
    let e = h.m.last_error().unwrap();
    assert_eq!(
        (e.kind, e.class()),
        (
            TxnErrorKind::TopicAuthorizationFailed,
            TxnErrorClass::Abortable
        )
    );
    assert_eq!(h.m.commit_transaction(), Err(TxnCallError::Failed(e)));
    assert_eq!(h.m.add_partition("a", 0), Err(TxnCallError::Failed(e)));
    h.m.abort_transaction().unwrap();
    assert_eq!(h.m.state(), TxnState::Aborting);
    // No partition reached the coordinator: the abort ends locally.
    assert!(h.poll().is_none());
    assert_eq!(h.m.state(), TxnState::Ready);
    assert_eq!(h.events(), vec![TxnEvent::Completed(TxnOperation::Abort)]);
    h.m.begin_transaction().unwrap();
}

#[test]
fn v1_fenced_partition_wins_over_the_others() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.m.add_partition("a", 1).unwrap();
    h.request();
    h.m.on_add_partitions_to_txn(
        &add_reply(&[
            ("a", 0, ErrorCode::OPERATION_NOT_ATTEMPTED),
            ("a", 1, ErrorCode::PRODUCER_FENCED),
        ]),
        h.now,
    );
    assert_eq!(h.m.state(), TxnState::FatalError);
    assert_eq!(h.m.last_error().unwrap().kind, TxnErrorKind::ProducerFenced);
}

#[test]
fn v1_unanswered_partition_is_asked_again() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.m.add_partition("a", 1).unwrap();
    h.request();
    h.m.on_add_partitions_to_txn(&add_reply(&[("a", 0, ErrorCode::NONE)]), h.now);
    assert!(!h.m.may_send("a", 1));
    h.advance(BACKOFF);
    assert!(matches!(
        h.request().request,
        TxnRequest::AddPartitionsToTxn { .. }
    ));
}

// ---------------------------------------------------------------- commit

#[test]
fn v1_commit_waits_for_the_batches_then_ends_the_transaction() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.answer_add_partitions();
    h.m.commit_transaction().unwrap();
    assert_eq!(h.m.state(), TxnState::Committing);
    assert!(
        h.m.poll_request(h.now, false).is_none(),
        "EndTxn waits for the batches"
    );
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, -1, -1), h.now);
    assert_eq!(h.m.state(), TxnState::Ready);
    assert_eq!(h.events(), vec![TxnEvent::Completed(TxnOperation::Commit)]);
    // Version 1 keeps the epoch for the next transaction.
    assert_eq!(h.m.producer_id(), Some((1000, 5)));
    h.m.begin_transaction().unwrap();
    assert!(
        !h.m.may_send("a", 0),
        "a new transaction adds partitions anew"
    );
}

#[test]
fn v1_commit_sends_the_last_partitions_first() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    assert!(matches!(
        h.m.poll_request(h.now, false).unwrap().request,
        TxnRequest::AddPartitionsToTxn { .. }
    ));
    h.m.on_add_partitions_to_txn(&add_reply(&[("a", 0, ErrorCode::NONE)]), h.now);
    assert!(h.m.may_send("a", 0), "its batches may go out now");
    assert!(h.m.poll_request(h.now, false).is_none());
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
}

#[test]
fn v2_commit_takes_the_next_epoch_from_end_txn() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert_eq!(
        h.events(),
        vec![
            TxnEvent::ProducerIdChanged {
                producer_id: 1000,
                epoch: 6
            },
            TxnEvent::Completed(TxnOperation::Commit)
        ]
    );
    h.m.begin_transaction().unwrap();
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    assert_eq!(h.expect_end_txn(), (1000, 6, true));
    // Epoch exhausted: the coordinator hands out a new producer id with epoch 0.
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, 2000, 0), h.now);
    assert_eq!(h.m.producer_id(), Some((2000, 0)));
}

#[test]
fn commit_called_again_resumes_and_abort_is_refused_meanwhile() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    h.m.commit_transaction().unwrap();
    assert_eq!(
        h.m.abort_transaction(),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::Abort,
            state: TxnState::Committing
        })
    );
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
}

#[test]
fn commit_without_begin_is_refused() {
    let mut h = Harness::ready(TransactionVersion::V1);
    assert_eq!(
        h.m.commit_transaction(),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::Commit,
            state: TxnState::Ready
        })
    );
}

#[test]
fn an_empty_commit_sends_nothing() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.m.commit_transaction().unwrap();
    assert!(h.poll().is_none());
    assert_eq!(h.m.state(), TxnState::Ready);
    assert_eq!(h.events(), vec![TxnEvent::Completed(TxnOperation::Commit)]);
}

#[test]
fn end_txn_coordinator_errors_are_retried() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.answer_add_partitions();
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_end_txn(
        &end_reply(ErrorCode::CONCURRENT_TRANSACTIONS, -1, -1),
        h.now,
    );
    h.advance(BACKOFF);
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::NOT_COORDINATOR, -1, -1), h.now);
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, -1, -1), h.now);
    assert_eq!(h.events(), vec![TxnEvent::Completed(TxnOperation::Commit)]);
}

// ---------------------------------------------------------------- lost EndTxn replies

#[test]
fn a_lost_commit_reply_is_resent_unchanged_and_a_none_counts_as_committed() {
    for version in [TransactionVersion::V1, TransactionVersion::V2] {
        let mut h = Harness::in_transaction(version);
        h.send("a", 0);
        if version == TransactionVersion::V1 {
            h.answer_add_partitions();
        }
        h.m.commit_transaction().unwrap();
        assert_eq!(h.expect_end_txn(), (1000, 5, true));
        h.m.on_request_failed(h.now);
        assert_eq!(h.m.state(), TxnState::Committing);
        assert!(h.poll().is_none(), "backoff");
        h.advance(BACKOFF);
        // The coordinator may have moved with the dead connection: find it again.
        h.answer_find_coordinator(1);
        // Same producer id and epoch: with version 2 the coordinator knows it as a
        // retry of the EndTxn it completed and bumped for (KIP-890).
        assert_eq!(h.expect_end_txn(), (1000, 5, true));
        h.m.on_end_txn(
            &end_reply(ErrorCode::CONCURRENT_TRANSACTIONS, -1, -1),
            h.now,
        );
        h.advance(BACKOFF);
        assert_eq!(h.expect_end_txn(), (1000, 5, true));
        let (id, epoch) = if version == TransactionVersion::V2 {
            (1000, 6)
        } else {
            (-1, -1)
        };
        h.m.on_end_txn(&end_reply(ErrorCode::NONE, id, epoch), h.now);
        assert_eq!(h.m.state(), TxnState::Ready);
        let events = h.events();
        assert!(
            events.contains(&TxnEvent::Completed(TxnOperation::Commit)),
            "{events:?}"
        );
        let expected_epoch = if version == TransactionVersion::V2 {
            6
        } else {
            5
        };
        assert_eq!(h.m.producer_id(), Some((1000, expected_epoch)));
    }
}

#[test]
fn fenced_after_a_lost_commit_reply_reports_the_outcome_unknown() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.answer_add_partitions();
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_request_failed(h.now);
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::PRODUCER_FENCED, -1, -1), h.now);
    assert_eq!(h.m.state(), TxnState::FatalError);
    let e = failed_kind(&h.events(), TxnOperation::Commit);
    assert_eq!(e.kind, TxnErrorKind::ProducerFenced);
    assert!(
        e.commit_outcome_unknown,
        "the first EndTxn may have committed"
    );
    assert!(e.to_string().contains("may have happened"), "{e}");
}

#[test]
fn fenced_on_a_first_commit_attempt_is_a_plain_failure() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    // Older coordinators say INVALID_PRODUCER_EPOCH for the same thing.
    h.m.on_end_txn(&end_reply(ErrorCode::INVALID_PRODUCER_EPOCH, -1, -1), h.now);
    let e = failed_kind(&h.events(), TxnOperation::Commit);
    assert_eq!(e.kind, TxnErrorKind::ProducerFenced);
    assert!(!e.commit_outcome_unknown);
}

#[test]
fn an_abortable_end_txn_after_a_lost_reply_also_says_the_commit_may_have_happened() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_request_failed(h.now);
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::TRANSACTION_ABORTABLE, -1, -1), h.now);
    let e = failed_kind(&h.events(), TxnOperation::Commit);
    assert_eq!(e.class(), TxnErrorClass::Abortable);
    assert!(e.commit_outcome_unknown);
}

// ---------------------------------------------------------------- abort

#[test]
fn transaction_abortable_from_end_txn_fails_the_commit_then_abort_ends_it() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::TRANSACTION_ABORTABLE, -1, -1), h.now);
    assert_eq!(h.m.state(), TxnState::AbortableError);
    let e = failed_kind(&h.events(), TxnOperation::Commit);
    assert_eq!(e.kind, TxnErrorKind::TransactionAbortable);
    assert!(!e.commit_outcome_unknown);
    h.m.abort_transaction().unwrap();
    assert_eq!(h.m.last_error(), None);
    assert!(
        h.m.poll_request(h.now, false).is_none(),
        "in-flight batches first"
    );
    assert_eq!(h.expect_end_txn(), (1000, 5, false));
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert_eq!(h.m.state(), TxnState::Ready);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Abort)));
}

#[test]
fn v1_abort_after_a_sequence_error_bumps_the_epoch() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.answer_add_partitions();
    h.m.on_produce_failed(Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    assert_eq!(h.m.state(), TxnState::AbortableError);
    assert_eq!(h.m.last_error().unwrap().kind, TxnErrorKind::ProduceFailed);
    h.m.abort_transaction().unwrap();
    assert_eq!(h.expect_end_txn(), (1000, 5, false));
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, -1, -1), h.now);
    assert_eq!(h.m.state(), TxnState::Initializing);
    assert!(h.events().is_empty(), "the abort completes after the bump");
    assert_eq!(
        h.request().request,
        TxnRequest::InitProducerId {
            transactional_id: ID.to_owned(),
            transaction_timeout_ms: 60_000,
            producer_id: 1000,
            producer_epoch: 5,
        }
    );
    h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert_eq!(h.m.state(), TxnState::Ready);
    assert_eq!(
        h.events(),
        vec![
            TxnEvent::ProducerIdChanged {
                producer_id: 1000,
                epoch: 6
            },
            TxnEvent::Completed(TxnOperation::Abort)
        ]
    );
}

#[test]
fn v2_abort_after_a_sequence_error_needs_no_init_producer_id() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.on_produce_failed(None);
    h.m.abort_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert_eq!(h.m.state(), TxnState::Ready);
    assert!(h.poll().is_none());
}

#[test]
fn produce_errors_are_abortable_except_fencing_and_authorization() {
    for (code, state) in [
        (ErrorCode::INVALID_PRODUCER_EPOCH, TxnState::AbortableError),
        (ErrorCode::TRANSACTION_ABORTABLE, TxnState::AbortableError),
        (ErrorCode::MESSAGE_TOO_LARGE, TxnState::AbortableError),
        (
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            TxnState::AbortableError,
        ),
        (ErrorCode::PRODUCER_FENCED, TxnState::FatalError),
        (
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            TxnState::FatalError,
        ),
        (
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            TxnState::FatalError,
        ),
    ] {
        let mut h = Harness::in_transaction(TransactionVersion::V2);
        h.send("a", 0);
        h.m.on_produce_failed(Some(code));
        assert_eq!(h.m.state(), state, "{code}");
    }
}

#[test]
fn a_late_produce_failure_does_not_override_the_end_txn_in_flight() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.send("a", 0);
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_produce_failed(Some(ErrorCode::NOT_ENOUGH_REPLICAS));
    assert_eq!(h.m.state(), TxnState::Committing);
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Commit)));
}

#[test]
fn a_lost_add_partitions_reply_is_sent_again_before_the_abort() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.send("a", 0);
    h.request();
    h.m.on_request_failed(h.now);
    // Never sent: dropped by the abort.
    h.m.add_partition("b", 0).unwrap();
    h.m.abort_transaction().unwrap();
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    // The coordinator may have added a-0: make sure it has, so that the EndTxn(abort)
    // finds an open transaction instead of answering INVALID_TXN_STATE.
    assert_eq!(
        h.answer_add_partitions(),
        BTreeMap::from([("a".to_owned(), vec![0])])
    );
    assert_eq!(h.expect_end_txn(), (1000, 5, false));
}

#[test]
fn a_lost_add_offsets_reply_is_sent_again_before_the_abort() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.m.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), vec![offset("in", 0, 1)])
        .unwrap();
    h.request();
    h.m.on_request_failed(h.now);
    // The transaction turns abortable before the offsets are through.
    h.m.on_produce_failed(Some(ErrorCode::NOT_ENOUGH_REPLICAS));
    assert_eq!(
        failed_kind(&h.events(), TxnOperation::SendOffsets).kind,
        TxnErrorKind::ProduceFailed
    );
    h.m.abort_transaction().unwrap();
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    assert!(matches!(
        h.request().request,
        TxnRequest::AddOffsetsToTxn { ref group_id, .. } if group_id == "g"
    ));
    // Lost again: still sent again.
    h.m.on_request_failed(h.now);
    h.advance(BACKOFF);
    h.answer_find_coordinator(1);
    assert!(matches!(
        h.request().request,
        TxnRequest::AddOffsetsToTxn { .. }
    ));
    h.m.on_add_offsets_to_txn(
        &AddOffsetsToTxnResponse {
            throttle_time_ms: 0,
            error_code: 0,
        },
        h.now,
    );
    assert_eq!(h.expect_end_txn(), (1000, 5, false));
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, -1, -1), h.now);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Abort)));
}

#[test]
fn replies_to_requests_not_in_flight_are_ignored() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.m.on_end_txn(&end_reply(ErrorCode::PRODUCER_FENCED, -1, -1), h.now);
    h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1, 1), h.now);
    assert_eq!(h.m.state(), TxnState::InTransaction);
    assert_eq!(h.m.producer_id(), Some((1000, 5)));
    assert!(h.events().is_empty());
}

// ---------------------------------------------------------------- offsets

#[test]
fn v1_offsets_go_through_add_offsets_then_the_group_coordinator() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    let mut group = ConsumerGroupMetadata::new("g");
    group.generation_id = 4;
    group.member_id = "m-1".to_owned();
    h.m.send_offsets_to_transaction(group.clone(), vec![offset("in", 0, 42)])
        .unwrap();
    assert_eq!(
        h.request().request,
        TxnRequest::AddOffsetsToTxn {
            transactional_id: ID.to_owned(),
            producer_id: 1000,
            producer_epoch: 5,
            group_id: "g".to_owned()
        }
    );
    h.m.on_add_offsets_to_txn(
        &AddOffsetsToTxnResponse {
            throttle_time_ms: 0,
            error_code: 0,
        },
        h.now,
    );
    assert_eq!(
        h.request(),
        OutgoingTxnRequest {
            target: TxnTarget::AnyBroker,
            request: TxnRequest::FindCoordinator {
                key_type: KEY_TYPE_GROUP,
                key: "g".to_owned()
            }
        }
    );
    h.m.on_find_coordinator(3, &found(2, ErrorCode::NONE), h.now);
    let r = h.request();
    assert_eq!(r.target, TxnTarget::Coordinator(node(2)));
    assert_eq!(
        r.request,
        TxnRequest::TxnOffsetCommit {
            transactional_id: ID.to_owned(),
            producer_id: 1000,
            producer_epoch: 5,
            group,
            offsets: vec![offset("in", 0, 42)],
        }
    );
    h.m.on_txn_offset_commit(&offsets_reply(&[("in", 0, ErrorCode::NONE)]), h.now);
    assert_eq!(
        h.events(),
        vec![TxnEvent::Completed(TxnOperation::SendOffsets)]
    );
    // The offsets started the transaction at the coordinator: commit sends EndTxn.
    h.m.commit_transaction().unwrap();
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
}

#[test]
fn v2_offsets_skip_add_offsets() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.m.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), vec![offset("in", 0, 1)])
        .unwrap();
    assert!(matches!(
        h.request().request,
        TxnRequest::FindCoordinator {
            key_type: KEY_TYPE_GROUP,
            ..
        }
    ));
    h.m.on_find_coordinator(3, &found(2, ErrorCode::NONE), h.now);
    assert!(matches!(
        h.request().request,
        TxnRequest::TxnOffsetCommit { .. }
    ));
}

#[test]
fn v2_offsets_start_the_transaction_only_once_committed() {
    for (code, sends_end_txn) in [
        (ErrorCode::CONCURRENT_TRANSACTIONS, false),
        (ErrorCode::NONE, true),
    ] {
        let mut h = Harness::in_transaction(TransactionVersion::V2);
        h.m.send_offsets_to_transaction(
            ConsumerGroupMetadata::new("g"),
            vec![offset("in", 0, 1), offset("in", 1, 1)],
        )
        .unwrap();
        h.request();
        h.m.on_find_coordinator(3, &found(2, ErrorCode::NONE), h.now);
        h.request();
        // One partition answered, the other not: the rest would be sent again.
        h.m.on_txn_offset_commit(&offsets_reply(&[("in", 0, code)]), h.now);
        h.m.on_produce_failed(Some(ErrorCode::NOT_ENOUGH_REPLICAS));
        h.m.abort_transaction().unwrap();
        h.advance(BACKOFF);
        let request = h.poll();
        assert_eq!(
            request.map(|r| r.request.api()),
            sends_end_txn.then_some(TxnApi::EndTxn),
            "{code}: a refused TxnOffsetCommit added nothing"
        );
    }
}

#[test]
fn txn_offset_commit_resends_only_the_partitions_left() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.m.send_offsets_to_transaction(
        ConsumerGroupMetadata::new("g"),
        vec![offset("in", 0, 1), offset("in", 1, 2)],
    )
    .unwrap();
    h.request();
    h.m.on_find_coordinator(3, &found(2, ErrorCode::NONE), h.now);
    h.request();
    h.m.on_txn_offset_commit(
        &offsets_reply(&[
            ("in", 0, ErrorCode::NONE),
            ("in", 1, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
        ]),
        h.now,
    );
    assert!(h.events().is_empty());
    h.advance(BACKOFF);
    let r = h.request();
    assert_eq!(
        r.target,
        TxnTarget::Coordinator(node(2)),
        "same coordinator"
    );
    let TxnRequest::TxnOffsetCommit { offsets, .. } = r.request else {
        panic!("expected TxnOffsetCommit");
    };
    assert_eq!(offsets, vec![offset("in", 1, 2)]);
}

#[test]
fn txn_offset_commit_not_coordinator_refinds_the_group_coordinator() {
    let mut h = Harness::in_transaction(TransactionVersion::V2);
    h.m.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), vec![offset("in", 0, 1)])
        .unwrap();
    h.request();
    h.m.on_find_coordinator(3, &found(2, ErrorCode::NONE), h.now);
    h.request();
    h.m.on_txn_offset_commit(
        &offsets_reply(&[("in", 0, ErrorCode::NOT_COORDINATOR)]),
        h.now,
    );
    h.advance(BACKOFF);
    assert_eq!(
        h.request().request,
        TxnRequest::FindCoordinator {
            key_type: KEY_TYPE_GROUP,
            key: "g".to_owned()
        }
    );
    h.m.on_find_coordinator(3, &found(3, ErrorCode::NONE), h.now);
    assert_eq!(h.request().target, TxnTarget::Coordinator(node(3)));
    // The transaction's coordinator is still known: EndTxn needs no lookup.
    h.m.on_txn_offset_commit(&offsets_reply(&[("in", 0, ErrorCode::NONE)]), h.now);
    h.m.commit_transaction().unwrap();
    assert_eq!(h.expect_end_txn(), (1000, 5, true));
}

#[test]
fn a_consumer_that_lost_its_generation_makes_the_transaction_abortable() {
    for (code, kind) in [
        (ErrorCode::ILLEGAL_GENERATION, TxnErrorKind::CommitFailed),
        (ErrorCode::UNKNOWN_MEMBER_ID, TxnErrorKind::CommitFailed),
        (
            ErrorCode::FENCED_INSTANCE_ID,
            TxnErrorKind::FencedInstanceId,
        ),
        (
            ErrorCode::GROUP_AUTHORIZATION_FAILED,
            TxnErrorKind::GroupAuthorizationFailed,
        ),
    ] {
        let mut h = Harness::in_transaction(TransactionVersion::V2);
        h.m.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), vec![offset("in", 0, 1)])
            .unwrap();
        h.request();
        h.m.on_find_coordinator(3, &found(2, ErrorCode::NONE), h.now);
        h.request();
        h.m.on_txn_offset_commit(&offsets_reply(&[("in", 0, code)]), h.now);
        assert_eq!(h.m.state(), TxnState::AbortableError, "{code}");
        assert_eq!(
            failed_kind(&h.events(), TxnOperation::SendOffsets).kind,
            kind
        );
    }
}

#[test]
fn abort_is_refused_while_send_offsets_is_pending() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.m.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), vec![offset("in", 0, 1)])
        .unwrap();
    assert!(matches!(
        h.m.abort_transaction(),
        Err(TxnCallError::WrongState {
            operation: TxnCallKind::Abort,
            ..
        })
    ));
}

#[test]
fn add_offsets_fenced_is_fatal_and_group_authorization_abortable() {
    for (code, state) in [
        (ErrorCode::PRODUCER_FENCED, TxnState::FatalError),
        (ErrorCode::INVALID_TXN_STATE, TxnState::FatalError),
        (
            ErrorCode::GROUP_AUTHORIZATION_FAILED,
            TxnState::AbortableError,
        ),
        (ErrorCode::UNKNOWN_PRODUCER_ID, TxnState::AbortableError),
    ] {
        let mut h = Harness::in_transaction(TransactionVersion::V1);
        h.m.send_offsets_to_transaction(ConsumerGroupMetadata::new("g"), vec![])
            .unwrap();
        h.request();
        h.m.on_add_offsets_to_txn(
            &AddOffsetsToTxnResponse {
                throttle_time_ms: 0,
                error_code: code.code(),
            },
            h.now,
        );
        assert_eq!(h.m.state(), state, "{code}");
    }
}

// ---------------------------------------------------------------- version switch

#[test]
fn a_new_transaction_version_applies_from_the_next_transaction() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.m.set_transaction_version(TransactionVersion::V2);
    assert_eq!(h.m.transaction_version(), TransactionVersion::V1);
    h.send("a", 0);
    assert!(!h.m.may_send("a", 0), "still version 1");
    h.answer_add_partitions();
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, -1, -1), h.now);
    // Version 1 used epoch 5 for every transaction: it is bumped before version 2
    // (Java's clientSideEpochBumpRequired), and the commit completes after that.
    assert_eq!(h.m.state(), TxnState::Initializing);
    assert!(h
        .events()
        .iter()
        .all(|e| !matches!(e, TxnEvent::Completed(_))));
    h.m.commit_transaction().unwrap();
    let TxnRequest::InitProducerId {
        producer_id,
        producer_epoch,
        ..
    } = h.request().request
    else {
        panic!("expected the epoch bump")
    };
    assert_eq!((producer_id, producer_epoch), (1000, 5));
    h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert_eq!(h.m.state(), TxnState::Ready);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Commit)));
    assert_eq!(h.m.transaction_version(), TransactionVersion::V2);
    h.m.begin_transaction().unwrap();
    h.send("a", 0);
    assert!(h.m.may_send("a", 0));
}

#[test]
fn the_upgrades_epoch_bump_is_retried_with_the_same_epoch_when_its_reply_is_lost() {
    let mut h = Harness::in_transaction(TransactionVersion::V1);
    h.m.set_transaction_version(TransactionVersion::V2);
    h.send("a", 0);
    h.answer_add_partitions();
    h.m.commit_transaction().unwrap();
    h.expect_end_txn();
    h.m.on_end_txn(&end_reply(ErrorCode::NONE, -1, -1), h.now);
    assert!(matches!(
        h.request().request,
        TxnRequest::InitProducerId { .. }
    ));
    h.m.on_request_failed(h.now);
    h.advance(Duration::from_secs(1));
    // The coordinator may have moved: found again, then the same bump (Kafka takes a
    // retried InitProducerId with the old epoch as a retry, KIP-360).
    h.answer_find_coordinator(1);
    let TxnRequest::InitProducerId {
        producer_id,
        producer_epoch,
        ..
    } = h.request().request
    else {
        panic!("expected the epoch bump again")
    };
    assert_eq!((producer_id, producer_epoch), (1000, 5));
    assert_eq!(h.m.transaction_version(), TransactionVersion::V1);
    h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Commit)));
    assert_eq!(h.m.transaction_version(), TransactionVersion::V2);
    assert_eq!(h.m.producer_id(), Some((1000, 6)));
}

#[test]
fn an_upgrade_set_between_transactions_waits_for_the_end_of_the_next() {
    let mut h = Harness::ready(TransactionVersion::V1);
    h.m.set_transaction_version(TransactionVersion::V2);
    h.m.begin_transaction().unwrap();
    assert_eq!(h.m.transaction_version(), TransactionVersion::V1);
    // Nothing sent: the transaction ends without EndTxn, but the bump still comes.
    h.m.abort_transaction().unwrap();
    let TxnRequest::InitProducerId {
        producer_id,
        producer_epoch,
        ..
    } = h.request().request
    else {
        panic!("expected the epoch bump")
    };
    assert_eq!((producer_id, producer_epoch), (1000, 5));
    h.m.on_init_producer_id(&init_reply(ErrorCode::NONE, 1000, 6), h.now);
    assert_eq!(h.m.transaction_version(), TransactionVersion::V2);
    assert!(h
        .events()
        .contains(&TxnEvent::Completed(TxnOperation::Abort)));
}

#[test]
fn a_downgrade_or_a_version_before_init_applies_at_once() {
    let mut h = Harness::new(TransactionVersion::V1);
    h.m.set_transaction_version(TransactionVersion::V2);
    assert_eq!(h.m.transaction_version(), TransactionVersion::V2);
    let mut h = Harness::ready(TransactionVersion::V2);
    h.m.set_transaction_version(TransactionVersion::V1);
    assert_eq!(h.m.transaction_version(), TransactionVersion::V1);
    h.m.begin_transaction().unwrap();
    h.send("a", 0);
    assert!(
        !h.m.may_send("a", 0),
        "version 1 registers the partition first"
    );
}

// ---------------------------------------------------------------- the table

#[test]
fn classify_follows_the_java_handlers() {
    use TxnApi::*;
    use TxnDisposition::*;
    let retry = Retry {
        refind_coordinator: false,
    };
    let refind = Retry {
        refind_coordinator: true,
    };
    let cases = [
        (EndTxn, ErrorCode::NONE, Done),
        (EndTxn, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS, retry),
        (EndTxn, ErrorCode::CONCURRENT_TRANSACTIONS, retry),
        (EndTxn, ErrorCode::NOT_COORDINATOR, refind),
        (EndTxn, ErrorCode::COORDINATOR_NOT_AVAILABLE, refind),
        (
            EndTxn,
            ErrorCode::PRODUCER_FENCED,
            Fatal(TxnErrorKind::ProducerFenced),
        ),
        (
            EndTxn,
            ErrorCode::INVALID_PRODUCER_EPOCH,
            Fatal(TxnErrorKind::ProducerFenced),
        ),
        (
            EndTxn,
            ErrorCode::INVALID_TXN_STATE,
            Fatal(TxnErrorKind::InvalidTxnState),
        ),
        (
            EndTxn,
            ErrorCode::INVALID_PRODUCER_ID_MAPPING,
            Fatal(TxnErrorKind::InvalidProducerIdMapping),
        ),
        (
            EndTxn,
            ErrorCode::UNKNOWN_PRODUCER_ID,
            Abortable {
                kind: TxnErrorKind::UnknownProducerId,
                bump_epoch: true,
            },
        ),
        (
            EndTxn,
            ErrorCode::from_i16(4242),
            Fatal(TxnErrorKind::Unexpected),
        ),
        (
            AddPartitionsToTxn,
            ErrorCode::from_i16(4242),
            Abortable {
                kind: TxnErrorKind::AddPartitionsFailed,
                bump_epoch: false,
            },
        ),
        (
            AddPartitionsToTxn,
            ErrorCode::INVALID_PRODUCER_ID_MAPPING,
            Abortable {
                kind: TxnErrorKind::UnknownProducerId,
                bump_epoch: true,
            },
        ),
        (
            AddPartitionsToTxn,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            retry,
        ),
        (TxnOffsetCommit, ErrorCode::REQUEST_TIMED_OUT, refind),
        (
            TxnOffsetCommit,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            retry,
        ),
        (
            FindCoordinator,
            ErrorCode::GROUP_AUTHORIZATION_FAILED,
            Abortable {
                kind: TxnErrorKind::GroupAuthorizationFailed,
                bump_epoch: false,
            },
        ),
        (
            FindCoordinator,
            ErrorCode::INVALID_REQUEST,
            Fatal(TxnErrorKind::Unexpected),
        ),
        (
            Produce,
            ErrorCode::UNKNOWN_PRODUCER_ID,
            Abortable {
                kind: TxnErrorKind::ProduceFailed,
                bump_epoch: true,
            },
        ),
    ];
    for (api, code, want) in cases {
        assert_eq!(classify(api, code), want, "{code} in {api:?}");
    }
}
