//! courier's table of Kafka error codes agrees with the Java client.
//!
//! `fixtures/kafka_errors/errors.tsv` was printed by `fixtures/kafka_errors/ErrorTable.java`
//! against kafka-clients 4.3.1: every `Errors` constant with its code, whether its exception
//! is a `RetriableException`, and whether it is an `InvalidMetadataException`.

use std::collections::HashMap;

use courier::error::{known_error_codes, ErrorCode};

const TABLE: &str = include_str!("fixtures/kafka_errors/errors.tsv");

struct JavaError {
    name: String,
    retriable: bool,
    invalid_metadata: bool,
}

fn java_errors() -> HashMap<i16, JavaError> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "malformed fixture row {line:?}");
            let flag = |s: &str| match s {
                "true" => true,
                "false" => false,
                other => panic!("bad flag {other:?}"),
            };
            (
                cols[0].parse().expect("code"),
                JavaError {
                    name: cols[1].to_string(),
                    retriable: flag(cols[2]),
                    invalid_metadata: flag(cols[3]),
                },
            )
        })
        .collect()
}

#[test]
fn every_known_code_has_the_java_name_and_flags() {
    let java = java_errors();
    assert!(java.len() > 100, "fixture looks truncated");
    for info in known_error_codes() {
        let j = java
            .get(&info.code.code())
            .unwrap_or_else(|| panic!("code {} unknown to Java", info.code.code()));
        assert_eq!(info.name, j.name, "name of code {}", info.code.code());
        assert_eq!(
            info.retriable, j.retriable,
            "retriable flag of {}",
            info.name
        );
        assert_eq!(
            info.stale_metadata, j.invalid_metadata,
            "stale_metadata flag of {}",
            info.name
        );
    }
}

#[test]
fn table_covers_the_codes_of_produce_metadata_init_producer_id_and_api_versions() {
    let names: Vec<&str> = known_error_codes().iter().map(|i| i.name).collect();
    for required in [
        // Produce
        "CORRUPT_MESSAGE",
        "UNKNOWN_TOPIC_OR_PARTITION",
        "NOT_LEADER_OR_FOLLOWER",
        "MESSAGE_TOO_LARGE",
        "RECORD_LIST_TOO_LARGE",
        "NOT_ENOUGH_REPLICAS",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        "INVALID_REQUIRED_ACKS",
        "TOPIC_AUTHORIZATION_FAILED",
        "INVALID_TIMESTAMP",
        "OUT_OF_ORDER_SEQUENCE_NUMBER",
        "DUPLICATE_SEQUENCE_NUMBER",
        "INVALID_PRODUCER_EPOCH",
        "KAFKA_STORAGE_ERROR",
        "UNKNOWN_PRODUCER_ID",
        "INVALID_RECORD",
        "UNKNOWN_TOPIC_ID",
        // Metadata
        "LEADER_NOT_AVAILABLE",
        "INVALID_TOPIC_EXCEPTION",
        "LISTENER_NOT_FOUND",
        "REBOOTSTRAP_REQUIRED",
        // InitProducerId
        "CLUSTER_AUTHORIZATION_FAILED",
        "COORDINATOR_NOT_AVAILABLE",
        "NOT_COORDINATOR",
        "PRODUCER_FENCED",
        // Transactions: FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn,
        // TxnOffsetCommit, EndTxn (issue 15)
        "COORDINATOR_LOAD_IN_PROGRESS",
        "CONCURRENT_TRANSACTIONS",
        "INVALID_TXN_STATE",
        "INVALID_PRODUCER_ID_MAPPING",
        "INVALID_TRANSACTION_TIMEOUT",
        "TRANSACTION_COORDINATOR_FENCED",
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        "OPERATION_NOT_ATTEMPTED",
        "TRANSACTION_ABORTABLE",
        "GROUP_AUTHORIZATION_FAILED",
        "ILLEGAL_GENERATION",
        "UNKNOWN_MEMBER_ID",
        "REBALANCE_IN_PROGRESS",
        "FENCED_INSTANCE_ID",
        "OFFSET_METADATA_TOO_LARGE",
        "INVALID_COMMIT_OFFSET_SIZE",
        "INVALID_GROUP_ID",
        // ApiVersions and SASL
        "UNSUPPORTED_VERSION",
        "SASL_AUTHENTICATION_FAILED",
        "UNSUPPORTED_SASL_MECHANISM",
        // Any
        "UNKNOWN_SERVER_ERROR",
        "REQUEST_TIMED_OUT",
        "NETWORK_EXCEPTION",
    ] {
        assert!(names.contains(&required), "{required} missing");
    }
}

#[test]
fn named_constants_match_their_codes() {
    assert_eq!(ErrorCode::NOT_LEADER_OR_FOLLOWER.code(), 6);
    assert_eq!(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER.code(), 45);
    assert_eq!(ErrorCode::UNKNOWN_PRODUCER_ID.code(), 59);
    assert_eq!(
        ErrorCode::from_i16(46),
        ErrorCode::DUPLICATE_SEQUENCE_NUMBER
    );
}
