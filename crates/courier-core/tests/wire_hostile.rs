//! Hostile replies for `courier_core::wire`: huge and negative lengths and counts,
//! broken varints and tagged fields, invalid UTF-8, truncation at every byte, and
//! garbage. Each must be an error naming the field, never a panic or a big allocation.

use bytes::BytesMut;
use courier_core::wire::{
    decode_response, AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, ApiVersionsResponse,
    DecodeErrorKind, DescribeConfigsResponse, EndTxnResponse, FindCoordinatorResponse,
    InitProducerIdResponse, MetadataResponse, ProduceResponse, Response, ResponseHeader,
    SaslAuthenticateResponse, SaslHandshakeResponse, TxnOffsetCommitResponse,
};
use kafka_protocol::messages as k;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

fn err_text<R: Response + std::fmt::Debug>(body: &[u8], version: i16) -> String {
    match R::decode(body, version) {
        Ok(r) => panic!("{} v{version} decoded hostile input: {r:?}", R::NAME),
        Err(e) => e.to_string(),
    }
}

fn assert_names(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{text:?} does not mention {part:?}");
    }
}

/// The bug that started it: kafka-protocol aborted the process (a 64 GiB allocation)
/// on this 10-byte frame, an ApiVersions reply declaring 2^31-1 entries.
#[test]
fn api_versions_declaring_2_pow_31_entries_is_an_error() {
    let frame = [0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff];
    let e = decode_response::<ApiVersionsResponse>(&frame, 0).unwrap_err();
    assert!(matches!(
        e.kind(),
        DecodeErrorKind::ArrayTooLong {
            count: 2147483647,
            left: 0,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "ApiVersions v0: api_keys: array of 2147483647 entries cannot fit in the 0 bytes left \
         (each entry takes at least 6 bytes) (at byte 6)"
    );
    // The compact form (v3): varint 2^32-1 is 2^32-2 entries.
    let body = [0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0];
    assert_names(
        &err_text::<ApiVersionsResponse>(&body, 3),
        &[
            "ApiVersions v3: api_keys: array of 4294967294 entries",
            "5 bytes left",
            "at byte 2",
        ],
    );
}

fn metadata_v12_body() -> Vec<u8> {
    // throttle, brokers: [], cluster_id: null, controller, topics: 1 topic
    let mut b = vec![0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2];
    // topic: error, name "t", topic id, is_internal
    b.extend_from_slice(&[0, 0, 2, b't']);
    b.extend_from_slice(&[7; 16]);
    b.push(0);
    b
}

#[test]
fn nested_huge_count_names_the_path() {
    let mut b = metadata_v12_body();
    // partitions: compact count 2^31 (varint of 2^31 + 1).
    b.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x08]);
    b.extend_from_slice(&[0; 40]);
    let text = err_text::<MetadataResponse>(&b, 12);
    assert_names(
        &text,
        &[
            "Metadata v12: topics[0].partitions: array of 2147483648 entries cannot fit",
            "at least 18 bytes",
        ],
    );
}

#[test]
fn classic_negative_lengths_and_counts() {
    // Metadata v4: throttle, brokers: 1, node id, host length -5.
    let b = [
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_names(
        &err_text::<MetadataResponse>(&b, 4),
        &[
            "Metadata v4: brokers[0].host: negative length -5",
            "at byte 12",
        ],
    );
    // brokers count -2.
    let b = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe];
    assert_names(
        &err_text::<MetadataResponse>(&b, 4),
        &["brokers: negative length -2"],
    );
    // A null (-1) array where the protocol requires one.
    let b = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    assert_names(
        &err_text::<MetadataResponse>(&b, 4),
        &["brokers: null where a value"],
    );
    // A null host.
    let b = [
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
    ];
    assert_names(
        &err_text::<MetadataResponse>(&b, 4),
        &["brokers[0].host: null"],
    );
    // SaslAuthenticate v0: auth_bytes of 2^31-1 bytes.
    let b = [0, 0, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1, 2];
    assert_names(
        &err_text::<SaslAuthenticateResponse>(&b, 0),
        &["SaslAuthenticate v0: auth_bytes: length 2147483647 exceeds the 2 bytes left"],
    );
    // SaslHandshake v1: a mechanism longer than the frame.
    let b = [0, 0, 0, 0, 0, 1, 0x7f, 0xff, b'P'];
    assert_names(
        &err_text::<SaslHandshakeResponse>(&b, 1),
        &["mechanisms[0].value: length 32767 exceeds the 1 bytes left"],
    );
}

#[test]
fn compact_lengths_and_varints() {
    // Produce v9: responses: 1 topic whose name declares 300 bytes with 3 left.
    let b = [2, 0xad, 0x02, b'a', b'b', b'c'];
    assert_names(
        &err_text::<ProduceResponse>(&b, 9),
        &["Produce v9: responses[0].name: length 300 exceeds the 3 bytes left"],
    );
    // A six-byte varint.
    let b = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_names(
        &err_text::<ProduceResponse>(&b, 9),
        &["responses: unsigned varint is longer than 5 bytes or 32 bits"],
    );
    // Five bytes whose last one carries more than 4 bits: over 32 bits.
    let b = [0xff, 0xff, 0xff, 0xff, 0x1f];
    assert_names(
        &err_text::<ProduceResponse>(&b, 9),
        &["responses: unsigned varint"],
    );
    // A varint cut short.
    let b = [0x80];
    assert_names(
        &err_text::<ProduceResponse>(&b, 9),
        &["responses: needs 2 bytes but only 1 are left"],
    );
}

#[test]
fn invalid_utf8_is_refused_for_names_and_replaced_in_messages() {
    // Metadata v9 broker host of invalid UTF-8.
    let b = [0, 0, 0, 0, 2, 0, 0, 0, 1, 3, 0xff, 0xfe, 0, 0, 0, 1, 0, 0];
    assert_names(
        &err_text::<MetadataResponse>(&b, 9),
        &["Metadata v9: brokers[0].host: not valid UTF-8", "at byte 9"],
    );
    // SaslAuthenticate v0: an error message of invalid UTF-8 still decodes.
    let b = [0, 58, 0, 2, 0xff, b'x', 0, 0, 0, 0];
    let r = SaslAuthenticateResponse::decode(&b, 0).unwrap();
    assert_eq!(r.error_code, 58);
    assert_eq!(r.error_message.as_deref(), Some("\u{fffd}x"));
}

#[test]
fn tagged_field_sections() {
    // InitProducerId v2: 16 fixed bytes, then the tagged fields.
    let fixed = [0u8; 16];
    let with = |tags: &[u8]| [&fixed[..], tags].concat();
    // Far more fields than bytes.
    assert_names(
        &err_text::<InitProducerIdResponse>(&with(&[0xff, 0xff, 0xff, 0xff, 0x0f]), 2),
        &["InitProducerId v2: tagged_fields: 4294967295 tagged fields cannot fit in the 0 bytes"],
    );
    // An unknown tag whose size runs past the end.
    assert_names(
        &err_text::<InitProducerIdResponse>(&with(&[1, 5, 10, 1, 2]), 2),
        &["tagged_fields: length 10 exceeds the 2 bytes left"],
    );
    // Tags out of order.
    assert_names(
        &err_text::<InitProducerIdResponse>(&with(&[2, 7, 0, 3, 0]), 2),
        &["tag 3 after tag 7: tags must ascend"],
    );
    // A duplicate tag.
    assert_names(
        &err_text::<InitProducerIdResponse>(&with(&[2, 7, 0, 7, 0]), 2),
        &["tag 7 after tag 7"],
    );
    // Unknown tags are skipped.
    let ok = InitProducerIdResponse::decode(&with(&[2, 5, 2, 9, 9, 6, 0]), 2).unwrap();
    assert_eq!(ok.producer_id, 0);

    // ApiVersions v3: known tag 1 (the finalized epoch, an int64) declared as 9 bytes.
    let mut b = vec![0, 0, 1, 0, 0, 0, 0, 1, 1, 9];
    b.extend_from_slice(&[0; 9]);
    assert_names(
        &err_text::<ApiVersionsResponse>(&b, 3),
        &["ApiVersions v3: tagged_fields: tagged field 1 declares 9 bytes but its value takes 8"],
    );
    // ...and as 7 bytes: the int64 cannot be read from its sub-slice.
    let mut b = vec![0, 0, 1, 0, 0, 0, 0, 1, 1, 7];
    b.extend_from_slice(&[0; 7]);
    assert_names(
        &err_text::<ApiVersionsResponse>(&b, 3),
        &["finalized_features_epoch: needs 8 bytes but only 7 are left"],
    );
    // Tag 0 holding a features array that declares more entries than its 3 bytes.
    let b = [0, 0, 1, 0, 0, 0, 0, 1, 0, 3, 0x10, 0, 0];
    assert_names(
        &err_text::<ApiVersionsResponse>(&b, 3),
        &["supported_features: array of 15 entries cannot fit in the 2 bytes left"],
    );
    // Tag 2, the finalized features the producer picks its transaction version from,
    // likewise; and one whose name's length runs past its entry.
    let b = [0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 0x10, 0, 0];
    assert_names(
        &err_text::<ApiVersionsResponse>(&b, 3),
        &["finalized_features: array of 15 entries cannot fit in the 2 bytes left"],
    );
    let b = [0, 0, 1, 0, 0, 0, 0, 1, 2, 7, 2, 0x7f, 0, 0, 0, 0, 0];
    let text = err_text::<ApiVersionsResponse>(&b, 3);
    assert!(
        text.contains("finalized_features") && text.contains("name"),
        "{text}"
    );
    // Produce v10: a partition's current leader (tag 0) with a bad nested section.
    let mut b = vec![2, 2, b't', 2];
    b.extend_from_slice(&[0; 4 + 2 + 8 + 8 + 8]);
    // record_errors: [], error_message: null, then 1 tagged field: tag 0 of 9 bytes
    // whose own section declares 5 fields in 0 bytes.
    b.extend_from_slice(&[1, 0, 1, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 5]);
    assert_names(
        &err_text::<ProduceResponse>(&b, 10),
        &["Produce v10: responses[0].partition_responses[0].current_leader.tagged_fields: 5 tagged fields"],
    );
}

#[test]
fn trailing_bytes_and_versions_and_headers() {
    let mut b = vec![0u8; 16];
    b.push(0xaa);
    assert_names(
        &err_text::<InitProducerIdResponse>(&b, 1),
        &["InitProducerId v1: 1 bytes left over after the last field (at byte 16)"],
    );
    assert_names(
        &err_text::<MetadataResponse>(&[], 3),
        &["Metadata v3: version 3 is not supported (only 4..=13)"],
    );
    assert_names(
        &err_text::<ProduceResponse>(&[], 13),
        &["version 13 is not supported (only 3..=12)"],
    );
    let e = ResponseHeader::decode(&[0, 0, 1], 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ResponseHeader v0: correlation_id: needs 4 bytes but only 3 are left (at byte 0)"
    );
    let e = ResponseHeader::decode(&[0, 0, 0, 1, 3, 0], 1).unwrap_err();
    assert!(e.to_string().contains("tagged_fields"), "{e}");
    // Body errors from decode_response count offsets from the frame start.
    let frame = [0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe];
    let e = decode_response::<MetadataResponse>(&frame, 4).unwrap_err();
    assert_eq!(e.offset(), 8, "{e}");
}

fn encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// One full body per decoder and version, with data in every array.
fn sample_bodies() -> Vec<(&'static str, i16, Vec<u8>)> {
    let s = |x: &str| StrBytes::from_string(x.to_owned());
    let mut out = Vec::new();
    for v in 0..=3 {
        let mut r = k::ApiVersionsResponse::default().with_api_keys(vec![
            k::api_versions_response::ApiVersion::default().with_max_version(3);
            3
        ]);
        if v >= 3 {
            r = r
                .with_supported_features(vec![
                    k::api_versions_response::SupportedFeatureKey::default()
                        .with_name(s("transaction.version"))
                        .with_max_version(2),
                ])
                .with_finalized_features_epoch(3)
                .with_finalized_features(vec![
                    k::api_versions_response::FinalizedFeatureKey::default()
                        .with_name(s("transaction.version"))
                        .with_max_version_level(2),
                ]);
        }
        out.push(("ApiVersions", v, encode(&r, v)));
    }
    for v in 4..=13 {
        let partition = k::metadata_response::MetadataResponsePartition::default()
            .with_replica_nodes(vec![k::BrokerId(1), k::BrokerId(2)])
            .with_isr_nodes(vec![k::BrokerId(1)])
            .with_offline_replicas(if v >= 5 { vec![k::BrokerId(2)] } else { vec![] });
        let r = k::MetadataResponse::default()
            .with_brokers(vec![k::metadata_response::MetadataResponseBroker::default(
            )
            .with_host(s("h"))
            .with_rack(Some(s("r")))])
            .with_cluster_id(Some(s("c")))
            .with_cluster_authorized_operations(if (8..=10).contains(&v) { 1 } else { i32::MIN })
            .with_topics(vec![k::metadata_response::MetadataResponseTopic::default()
                .with_name(Some(k::TopicName(s("topic"))))
                .with_partitions(vec![partition; 2])]);
        out.push(("Metadata", v, encode(&r, v)));
    }
    for v in 3..=12 {
        let mut p = k::produce_response::PartitionProduceResponse::default();
        if v >= 8 {
            p = p
                .with_record_errors(vec![
                    k::produce_response::BatchIndexAndErrorMessage::default()
                        .with_batch_index(1)
                        .with_batch_index_error_message(Some(s("bad"))),
                ])
                .with_error_message(Some(s("summary")));
        }
        let mut r = k::ProduceResponse::default().with_responses(vec![
            k::produce_response::TopicProduceResponse::default()
                .with_name(k::TopicName(s("topic")))
                .with_partition_responses(vec![p]),
        ]);
        if v >= 10 {
            r.responses[0].partition_responses[0].current_leader =
                k::produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(k::BrokerId(2))
                    .with_leader_epoch(5);
            r = r.with_node_endpoints(vec![k::produce_response::NodeEndpoint::default()
                .with_node_id(k::BrokerId(2))
                .with_host(s("h"))]);
        }
        out.push(("Produce", v, encode(&r, v)));
    }
    for v in 1..=4 {
        let entry = k::describe_configs_response::DescribeConfigsResourceResult::default()
            .with_name(s("min.insync.replicas"))
            .with_value(Some(s("2")))
            .with_synonyms(vec![
                k::describe_configs_response::DescribeConfigsSynonym::default()
                    .with_name(s("min.insync.replicas"))
                    .with_value(Some(s("2")));
                2
            ])
            .with_documentation(if v >= 3 { Some(s("doc")) } else { None });
        let r = k::DescribeConfigsResponse::default().with_results(vec![
            k::describe_configs_response::DescribeConfigsResult::default()
                .with_resource_name(s("topic"))
                .with_configs(vec![entry; 2]),
        ]);
        out.push(("DescribeConfigs", v, encode(&r, v)));
    }
    for v in 0..=5 {
        let r = k::InitProducerIdResponse::default().with_producer_id(k::ProducerId(7));
        out.push(("InitProducerId", v, encode(&r, v)));
    }
    for v in 0..=1 {
        let r = k::SaslHandshakeResponse::default().with_mechanisms(vec![s("PLAIN"), s("X")]);
        out.push(("SaslHandshake", v, encode(&r, v)));
    }
    for v in 0..=2 {
        let r = k::SaslAuthenticateResponse::default()
            .with_error_message(Some(s("m")))
            .with_auth_bytes(bytes::Bytes::from_static(b"abc"));
        out.push(("SaslAuthenticate", v, encode(&r, v)));
    }
    for v in 0..=6 {
        let mut r = k::FindCoordinatorResponse::default();
        if v <= 3 {
            r = r
                .with_error_message(if v >= 1 { Some(s("m")) } else { None })
                .with_node_id(k::BrokerId(1))
                .with_host(s("h"))
                .with_port(9092);
        } else {
            r = r.with_coordinators(vec![
                k::find_coordinator_response::Coordinator::default()
                    .with_key(s("txn"))
                    .with_node_id(k::BrokerId(1))
                    .with_host(s("h"))
                    .with_port(9092)
                    .with_error_message(Some(s("m")));
                2
            ]);
        }
        out.push(("FindCoordinator", v, encode(&r, v)));
    }
    for v in 0..=3 {
        let p = k::add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(3);
        let r = k::AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            k::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_name(k::TopicName(s("topic")))
                .with_results_by_partition(vec![p; 2]),
        ]);
        out.push(("AddPartitionsToTxn", v, encode(&r, v)));
    }
    for v in 0..=4 {
        let r = k::AddOffsetsToTxnResponse::default().with_error_code(51);
        out.push(("AddOffsetsToTxn", v, encode(&r, v)));
    }
    for v in 0..=5 {
        let p = k::txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
            .with_partition_index(3);
        let r = k::TxnOffsetCommitResponse::default().with_topics(vec![
            k::txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(k::TopicName(s("topic")))
                .with_partitions(vec![p; 2]),
        ]);
        out.push(("TxnOffsetCommit", v, encode(&r, v)));
    }
    for v in 0..=5 {
        let r = k::EndTxnResponse::default()
            .with_producer_id(k::ProducerId(7))
            .with_producer_epoch(2);
        out.push(("EndTxn", v, encode(&r, v)));
    }
    out
}

/// Decodes `body` with the decoder called `name`; `Ok(())` or the error text.
fn decode_as(name: &str, version: i16, body: &[u8]) -> Result<(), String> {
    fn go<R: Response>(body: &[u8], version: i16) -> Result<(), String> {
        R::decode(body, version).map(drop).map_err(|e| {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{} v{version}: ", R::NAME)),
                "{text}"
            );
            text
        })
    }
    match name {
        "ApiVersions" => go::<ApiVersionsResponse>(body, version),
        "Metadata" => go::<MetadataResponse>(body, version),
        "Produce" => go::<ProduceResponse>(body, version),
        "DescribeConfigs" => go::<DescribeConfigsResponse>(body, version),
        "InitProducerId" => go::<InitProducerIdResponse>(body, version),
        "SaslHandshake" => go::<SaslHandshakeResponse>(body, version),
        "SaslAuthenticate" => go::<SaslAuthenticateResponse>(body, version),
        "FindCoordinator" => go::<FindCoordinatorResponse>(body, version),
        "AddPartitionsToTxn" => go::<AddPartitionsToTxnResponse>(body, version),
        "AddOffsetsToTxn" => go::<AddOffsetsToTxnResponse>(body, version),
        "TxnOffsetCommit" => go::<TxnOffsetCommitResponse>(body, version),
        "EndTxn" => go::<EndTxnResponse>(body, version),
        other => panic!("no decoder {other}"),
    }
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    for (name, version, body) in sample_bodies() {
        decode_as(name, version, &body).unwrap_or_else(|e| panic!("{e}"));
        for cut in 0..body.len() {
            let e = decode_as(name, version, &body[..cut])
                .expect_err(&format!("{name} v{version} cut at {cut} decoded"));
            assert!(
                e.contains("left") || e.contains("null"),
                "{name} v{version} cut at {cut}: {e}"
            );
        }
    }
}

#[test]
fn every_4_and_5_byte_window_set_to_hostile_lengths() {
    // Overwrites each position with values that are hostile as any length or count:
    // decoding must stay an error or a success, never a panic.
    let patterns: [&[u8]; 6] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0xfe],
        &[0x80, 0, 0, 0],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x80, 0x80, 0x80, 0x80, 0x80],
        &[0x7f, 0xff],
    ];
    for (name, version, body) in sample_bodies() {
        for at in 0..body.len() {
            for p in patterns {
                let mut b = body.clone();
                for (i, &byte) in p.iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = byte;
                    }
                }
                let _ = decode_as(name, version, &b);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn garbage_never_panics(selector in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let decoders = ["ApiVersions", "Metadata", "Produce", "DescribeConfigs",
            "InitProducerId", "SaslHandshake", "SaslAuthenticate", "FindCoordinator",
            "AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit", "EndTxn"];
        for name in decoders {
            for version in 0..14 {
                if let Err(e) = decode_as(name, version, &body) {
                    prop_assert!(!e.is_empty());
                }
            }
        }
        let _ = ApiVersionsResponse::decode_negotiating(&body, i16::from(selector % 4));
        let _ = ResponseHeader::decode(&body, i16::from(selector % 2));
    }

    #[test]
    fn flipped_bytes_of_valid_bodies_never_panic(index in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), value in any::<u8>()) {
        let bodies = sample_bodies();
        let (name, version, body) = &bodies[index.index(bodies.len())];
        let mut b = body.clone();
        if !b.is_empty() {
            let i = at.index(b.len());
            b[i] = value;
        }
        let _ = decode_as(name, *version, &b);
    }
}
