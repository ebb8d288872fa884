use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn class(code: ErrorCode) -> ProduceErrorClass {
    classify_produce_error(code)
}

// ---------------------------------------------------------------------------------------------
// Classification of Produce errors

#[test]
fn success_and_duplicate_sequence_complete_the_batch_as_persisted() {
    for code in [ErrorCode::NONE, ErrorCode::DUPLICATE_SEQUENCE_NUMBER] {
        let c = class(code);
        assert_eq!(c.action, ProduceAction::Complete, "{code}");
        assert_eq!(c.persistence, Persistence::Persisted);
        assert!(!c.may_retry());
    }
}

#[test]
fn leader_changes_refresh_metadata_and_retry_without_counting_a_retry() {
    for code in [
        ErrorCode::NOT_LEADER_OR_FOLLOWER,
        ErrorCode::LEADER_NOT_AVAILABLE,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode::KAFKA_STORAGE_ERROR,
        ErrorCode::FENCED_LEADER_EPOCH,
    ] {
        assert_eq!(
            class(code),
            ProduceErrorClass {
                action: ProduceAction::Retry,
                persistence: Persistence::NotPersisted,
                refresh_metadata: true,
                counts_as_retry: false,
            },
            "{code}"
        );
    }
}

#[test]
fn not_enough_replicas_retries_and_was_not_written() {
    let c = class(ErrorCode::NOT_ENOUGH_REPLICAS);
    assert_eq!(c.action, ProduceAction::Retry);
    assert_eq!(c.persistence, Persistence::NotPersisted);
    assert!(!c.refresh_metadata);
    assert!(c.counts_as_retry);
}

#[test]
fn after_append_and_timeouts_retry_and_may_have_been_written() {
    for code in [
        ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode::REQUEST_TIMED_OUT,
        ErrorCode::NETWORK_EXCEPTION,
    ] {
        let c = class(code);
        assert_eq!(c.action, ProduceAction::Retry, "{code}");
        assert_eq!(c.persistence, Persistence::PossiblyPersisted, "{code}");
        assert!(c.counts_as_retry);
    }
}

#[test]
fn sequence_errors_get_their_own_resolution() {
    let gap = class(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(gap.action, ProduceAction::ResolveSequenceGap);
    assert_eq!(gap.persistence, Persistence::PossiblyPersisted);
    let unknown = class(ErrorCode::UNKNOWN_PRODUCER_ID);
    assert_eq!(unknown.action, ProduceAction::ResolveUnknownProducerId);
    assert_eq!(unknown.persistence, Persistence::NotPersisted);
    assert!(gap.may_retry() && unknown.may_retry());
}

#[test]
fn too_large_batches_are_split_or_failed() {
    for code in [
        ErrorCode::MESSAGE_TOO_LARGE,
        ErrorCode::RECORD_LIST_TOO_LARGE,
    ] {
        let c = class(code);
        assert_eq!(c.action, ProduceAction::SplitOrFail, "{code}");
        assert_eq!(c.persistence, Persistence::NotPersisted);
    }
}

#[test]
fn authorization_and_invalid_records_fail_the_batch_unwritten() {
    for code in [
        ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        ErrorCode::INVALID_RECORD,
        ErrorCode::CORRUPT_MESSAGE,
        ErrorCode::INVALID_REQUIRED_ACKS,
        ErrorCode::INVALID_TIMESTAMP,
        ErrorCode::UNSUPPORTED_COMPRESSION_TYPE,
    ] {
        let c = class(code);
        assert_eq!(c.action, ProduceAction::Fail, "{code}");
        assert_eq!(c.persistence, Persistence::NotPersisted, "{code}");
        assert!(!c.may_retry());
    }
}

#[test]
fn fencing_and_cluster_authorization_stop_the_producer() {
    for code in [
        ErrorCode::PRODUCER_FENCED,
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
        ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ] {
        assert_eq!(class(code).action, ProduceAction::FatalProducer, "{code}");
    }
}

#[test]
fn unknown_server_error_and_unknown_codes_fail_as_possibly_persisted() {
    for code in [ErrorCode::UNKNOWN_SERVER_ERROR, ErrorCode::from_i16(31_000)] {
        let c = class(code);
        assert_eq!(c.action, ProduceAction::Fail, "{code}");
        assert_eq!(c.persistence, Persistence::PossiblyPersisted, "{code}");
    }
}

#[test]
fn other_retriable_codes_retry_conservatively() {
    // THROTTLING_QUOTA_EXCEEDED-like codes are not in the explicit lists; any Java-retriable
    // code retries, assumed possibly written.
    let c = class(ErrorCode::CONCURRENT_TRANSACTIONS);
    assert_eq!(c.action, ProduceAction::Retry);
    assert_eq!(c.persistence, Persistence::PossiblyPersisted);
}

#[test]
fn every_known_code_is_classified_consistently_with_java_retriability() {
    // A code Java calls non-retriable must never be blindly retried, except the sequence and
    // size errors, which the producer resolves (epoch bump, split) before resending.
    for info in known_error_codes() {
        let c = class(info.code);
        if c.action == ProduceAction::Retry {
            assert!(
                info.retriable,
                "{} retried but not retriable in Java",
                info.name
            );
        }
        if c.refresh_metadata {
            assert!(
                info.stale_metadata || info.code == ErrorCode::UNKNOWN_LEADER_EPOCH,
                "{} refreshes metadata",
                info.name
            );
        }
    }
}

#[test]
fn transport_errors_retry_with_persistence_depending_on_whether_the_request_left() {
    let sent = classify_transport_error(true);
    assert_eq!(sent.action, ProduceAction::Retry);
    assert_eq!(sent.persistence, Persistence::PossiblyPersisted);
    assert!(sent.refresh_metadata);
    let unsent = classify_transport_error(false);
    assert_eq!(unsent.persistence, Persistence::NotPersisted);
    assert!(!unsent.counts_as_retry);
}

// ---------------------------------------------------------------------------------------------
// ProducerError messages and accessors

#[test]
fn unknown_topic_says_how_to_create_it() {
    let e = ProducerError::UnknownTopic {
        topic: "orders".into(),
    };
    assert_eq!(
        e.to_string(),
        "topic 'orders' does not exist: create it or enable auto.create.topics.enable on the \
         broker"
    );
    assert_eq!(e.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    assert_eq!(e.persistence(), Persistence::NotPersisted);
    assert!(!e.is_retriable());
}

#[test]
fn record_too_large_names_both_limits_to_raise() {
    let e = ProducerError::RecordTooLarge {
        size: 2_000_000,
        max_request_size: 1_048_576,
    };
    assert_eq!(
        e.to_string(),
        "record of 2000000 bytes exceeds max.request.size 1048576: raise max.request.size (and \
         the topic's max.message.bytes) or send smaller records"
    );
    assert_eq!(e.code(), None);
    assert_eq!(e.persistence(), Persistence::NotPersisted);
}

#[test]
fn unknown_partition_gives_the_partition_count() {
    let e = ProducerError::UnknownPartition {
        topic: "orders".into(),
        partition: 7,
        partition_count: 3,
    };
    assert_eq!(
        e.to_string(),
        "topic 'orders' has no partition 7: it has 3 partitions, numbered from 0"
    );
}

#[test]
fn broker_error_shows_name_code_description_and_persistence() {
    let e = ProducerError::from_partition_error(
        "orders",
        3,
        ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        None,
    );
    assert_eq!(
        e.to_string(),
        "orders-3: the broker answered NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): The batch was \
         written to the leader, but the in-sync replicas fell below min.insync.replicas; the \
         record may have been written, so sending it again may duplicate it"
    );
    assert_eq!(e.persistence(), Persistence::PossiblyPersisted);
    assert_eq!(e.code_name(), Some("NOT_ENOUGH_REPLICAS_AFTER_APPEND"));
    assert!(e.is_retriable());
}

#[test]
fn broker_error_with_an_unknown_code_still_reads_well() {
    let e = ProducerError::from_partition_error("t", 0, ErrorCode::from_i16(4242), Some(""));
    assert_eq!(
        e.to_string(),
        "t-0: the broker answered unknown error code 4242: the code is newer than this client \
         (see the Kafka protocol's error codes); the record may have been written, so sending \
         it again may duplicate it"
    );
    assert!(!e.is_retriable());
}

#[test]
fn partition_errors_map_to_the_most_specific_variant() {
    let auth = ProducerError::from_partition_error(
        "orders",
        0,
        ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        None,
    );
    assert_eq!(
        auth.to_string(),
        "not authorized to write to topic 'orders' (TOPIC_AUTHORIZATION_FAILED): grant the \
         producer's principal WRITE and DESCRIBE on the topic"
    );
    assert_eq!(auth.code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED));

    let large =
        ProducerError::from_partition_error("orders", 1, ErrorCode::MESSAGE_TOO_LARGE, None);
    assert!(matches!(
        large,
        ProducerError::RecordRejectedAsTooLarge { .. }
    ));
    assert_eq!(
        large.to_string(),
        "orders-1: the broker rejected the record as too large (MESSAGE_TOO_LARGE (10)): raise \
         the topic's max.message.bytes (or the broker's message.max.bytes) or send smaller \
         records"
    );

    let invalid = ProducerError::from_partition_error(
        "orders",
        2,
        ErrorCode::INVALID_RECORD,
        Some("Compacted topic cannot accept message without key"),
    );
    assert_eq!(
        invalid.to_string(),
        "orders-2: the broker rejected the record (INVALID_RECORD (87)) with message \
         \"Compacted topic cannot accept message without key\": The broker's validation \
         rejected a record (for example a null key on a compacted topic)."
    );
    assert!(!invalid.is_retriable());

    let cluster = ProducerError::from_partition_error(
        "orders",
        0,
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
        None,
    );
    assert!(cluster.to_string().contains("IDEMPOTENT_WRITE"));
}

#[test]
fn delivery_timeout_reports_last_error_and_persistence() {
    let e = ProducerError::DeliveryTimeout {
        topic: "orders".into(),
        partition: 3,
        timeout: Duration::from_secs(120),
        last_error: Some(ErrorCode::NOT_ENOUGH_REPLICAS),
        last_cause: None,
        persistence: Persistence::NotPersisted,
    };
    assert_eq!(
        e.to_string(),
        "record for orders-3 not acknowledged within delivery.timeout.ms (120000 ms), last \
         error NOT_ENOUGH_REPLICAS (19); the record was not written, so it can be sent again \
         without duplicating it"
    );
    assert!(e.is_retriable());
    assert_eq!(e.code(), Some(ErrorCode::NOT_ENOUGH_REPLICAS));
    assert_eq!(e.root_cause(), None);
}

#[test]
fn delivery_timeout_names_the_connection_problem_behind_it() {
    let e = ProducerError::DeliveryTimeout {
        topic: "orders".into(),
        partition: 0,
        timeout: Duration::from_secs(5),
        last_error: None,
        last_cause: Some("could not connect to 127.0.0.1:9092: Connection refused".into()),
        persistence: Persistence::NotPersisted,
    };
    let text = e.to_string();
    assert!(
        text.contains(
            "(5000 ms); last connection problem: could not connect to 127.0.0.1:9092: \
             Connection refused; the record was not written"
        ),
        "{text}"
    );
    assert_eq!(
        e.root_cause(),
        Some("could not connect to 127.0.0.1:9092: Connection refused")
    );
}

#[test]
fn metadata_timeout_names_the_setting_that_fired() {
    let e = ProducerError::MetadataTimeout {
        topic: "orders".into(),
        setting: "delivery.timeout.ms",
        timeout: Duration::from_secs(5),
        last_cause: None,
    };
    assert!(e
        .to_string()
        .starts_with("no metadata for topic 'orders' within delivery.timeout.ms (5000 ms)"));
}

#[test]
fn buffer_full_explains_backpressure() {
    let e = ProducerError::BufferFull {
        buffer_memory: 33_554_432,
        max_block: Duration::from_secs(60),
    };
    assert_eq!(
        e.to_string(),
        "no buffer space freed within max.block.ms (60000 ms): the 33554432 bytes of \
         buffer.memory are full because records arrive faster than the brokers accept them; \
         slow down, or raise buffer.memory or max.block.ms"
    );
    assert!(e.is_retriable());
}

#[test]
fn transport_error_is_clone_and_keeps_its_source() {
    let e = ProducerError::Transport {
        broker: "b1:9092".into(),
        source: Arc::new(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "reset by peer",
        )),
        persistence: Persistence::PossiblyPersisted,
    };
    let copy = e.clone();
    assert_eq!(
        copy.to_string(),
        "connection to broker b1:9092 failed: reset by peer; the record may have been written, \
         so sending it again may duplicate it"
    );
    assert!(std::error::Error::source(&copy).is_some());
    assert!(copy.is_retriable());
}

#[test]
fn fatal_error_tells_the_application_to_start_over() {
    let e = ProducerError::Fatal {
        code: Some(ErrorCode::UNKNOWN_PRODUCER_ID),
        reason: "unknown producer id with batches in flight".into(),
    };
    assert_eq!(
        e.to_string(),
        "the producer stopped after a fatal error (UNKNOWN_PRODUCER_ID (59)): unknown producer \
         id with batches in flight; records not yet acknowledged may or may not have been \
         written; create a new producer"
    );
    assert_eq!(e.persistence(), Persistence::PossiblyPersisted);
    assert!(!e.is_retriable());
}

#[test]
fn config_errors_convert_and_keep_their_text() {
    let config_err = crate::config::ProducerConfig::builder()
        .build()
        .unwrap_err();
    let e: ProducerError = config_err.clone().into();
    assert_eq!(
        e.to_string(),
        format!("invalid producer configuration: {config_err}")
    );
    assert_eq!(e.persistence(), Persistence::NotPersisted);
}

#[test]
fn unsupported_broker_names_the_release_to_upgrade_to() {
    let e = ProducerError::UnsupportedBroker {
        broker: "old:9092".into(),
        api: "Produce",
        min_version: 3,
        min_kafka_version: "0.11",
    };
    assert_eq!(
        e.to_string(),
        "broker old:9092 does not support Produce v3, which courier needs: upgrade the broker \
         to Kafka 0.11 or later"
    );
}

/// The engine (courier-core) acts on its own table; this public one documents the policy.
/// They must agree wherever it matters to the log: what is retried, and what a failure
/// says about persistence.
#[test]
fn the_engines_classification_agrees_with_this_one_for_every_code() {
    use courier_core::producer::classify::{classify_produce_error as engine, Disposition};
    for code in -1..=140i16 {
        let ours = classify_produce_error(ErrorCode::from_i16(code));
        match engine(code) {
            Disposition::Success => {
                assert_eq!(ours.action, ProduceAction::Complete, "{code}")
            }
            Disposition::Retry {
                possibly_written, ..
            } => {
                assert!(ours.may_retry(), "code {code}: the engine retries it");
                if possibly_written {
                    assert_eq!(ours.persistence, Persistence::PossiblyPersisted, "{code}");
                }
            }
            Disposition::SequenceDesync => assert!(ours.may_retry(), "{code}"),
            Disposition::TooLarge => {
                assert_eq!(ours.action, ProduceAction::SplitOrFail, "{code}");
                assert_eq!(ours.persistence, Persistence::NotPersisted, "{code}");
            }
            Disposition::Fail { possibly_written } => {
                let expected = if possibly_written {
                    Persistence::PossiblyPersisted
                } else {
                    Persistence::NotPersisted
                };
                assert_eq!(ours.persistence, expected, "code {code}");
            }
        }
    }
}

/// The transactional producer's two record errors: a stable name, the persistence the
/// engine gave (an aborted record may have reached the log, invisibly), not retriable
/// as they are, and a text that says what to do.
#[test]
fn transaction_errors_name_the_cause_and_the_next_step() {
    let aborted = ProducerError::TransactionAborted {
        topic: "orders".into(),
        partition: 3,
        persistence: Persistence::PossiblyPersisted,
    };
    assert_eq!(aborted.name(), "TRANSACTION_ABORTED");
    assert_eq!(aborted.persistence(), Persistence::PossiblyPersisted);
    assert!(!aborted.is_retriable());
    let text = aborted.to_string();
    assert!(
        text.starts_with("orders-3: the transaction was aborted"),
        "{text}"
    );
    assert!(
        text.contains("send it again in the next transaction"),
        "{text}"
    );

    let refused = ProducerError::NotInTransaction {
        state: "Ready".into(),
        error: None,
    };
    assert_eq!(refused.name(), "NOT_IN_TRANSACTION");
    assert_eq!(refused.persistence(), Persistence::NotPersisted);
    let text = refused.to_string();
    assert!(text.contains("producer is Ready;"), "{text}");
    assert!(text.contains("call begin_transaction first"), "{text}");
    let failed = ProducerError::NotInTransaction {
        state: "AbortableError".into(),
        error: Some("TRANSACTION_ABORTABLE".into()),
    };
    assert!(
        failed
            .to_string()
            .contains("producer is AbortableError (TRANSACTION_ABORTABLE);"),
        "{failed}"
    );
}
