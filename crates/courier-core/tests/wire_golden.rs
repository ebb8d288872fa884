//! Decodes the real Kafka 4.3.1 replies in `tests/fixtures/wire/` (see its README) and
//! checks facts known about the broker and the requests that produced them.

use courier_core::wire::{
    decode_response, ApiVersionsResponse, DescribeConfigsResponse, InitProducerIdResponse,
    MetadataResponse, ProduceResponse, Response, ResponseHeader, UNSUPPORTED_VERSION,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/wire/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes `name` as `R` at `version` and checks every prefix of it fails cleanly.
fn decode<R: Response>(name: &str, version: i16) -> R {
    let frame = fixture(name);
    for cut in 0..frame.len() {
        assert!(
            decode_response::<R>(&frame[..cut], version).is_err(),
            "{name} cut at {cut} decoded"
        );
    }
    let (header, body) =
        decode_response::<R>(&frame, version).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        header.correlation_id > 0,
        "{name}: correlation id {}",
        header.correlation_id
    );
    body
}

const PRODUCE: i16 = 0;
const METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;

#[test]
fn api_versions_v3_lists_what_the_producer_needs() {
    let r: ApiVersionsResponse = decode("api_versions_v3.bin", 3);
    assert_eq!(r.error_code, 0);
    let produce = r.versions_of(PRODUCE).expect("Produce listed");
    assert!(produce.max_version >= 12, "{produce:?}");
    assert!(r.versions_of(METADATA).expect("Metadata").max_version >= 13);
    assert!(
        r.versions_of(API_VERSIONS)
            .expect("ApiVersions")
            .max_version
            >= 3
    );
    assert!(r.api_keys.len() > 40, "{} APIs", r.api_keys.len());
    assert!(r.finalized_features_epoch >= 0);
    assert!(r.finalized_level("metadata.version").is_some());
    // Transactions v2 (KIP-890) is on by default in Kafka 4.x. It is only in the
    // finalized features: v3 SupportedFeatures leaves out features whose lowest
    // version is 0 (KAFKA-17011), which here is all but metadata.version.
    assert_eq!(
        r.finalized_level("transaction.version"),
        Some(2),
        "{:?}",
        r.finalized_features
    );
    assert!(!r
        .supported_features
        .iter()
        .any(|f| f.name == "transaction.version"));
    assert!(r
        .supported_features
        .iter()
        .any(|f| f.name == "metadata.version" && f.max_version > 0));
    assert!(!r.zk_migration_ready);
}

#[test]
fn api_versions_unsupported_version_answer_is_v0() {
    let frame = fixture("api_versions_v0_unsupported.bin");
    let (header, body) = ResponseHeader::decode(&frame, 0).unwrap();
    assert!(header.correlation_id > 0);
    assert_eq!(
        ApiVersionsResponse::peek_error_code(body).unwrap(),
        UNSUPPORTED_VERSION
    );
    // Read at the version asked for, the v0 body does not parse...
    assert!(ApiVersionsResponse::decode(body, 3).is_err());
    // ...and the negotiating decode falls back to v0 and finds the broker's range.
    let (r, used) = ApiVersionsResponse::decode_negotiating(body, 3).unwrap();
    assert_eq!(used, 0);
    assert_eq!(r.error_code, UNSUPPORTED_VERSION);
    let own = r.versions_of(API_VERSIONS).expect("ApiVersions range");
    assert_eq!(own.min_version, 0);
    assert!(own.max_version >= 3);
}

#[test]
fn metadata_v12_and_v13() {
    for (name, version) in [("metadata_v12.bin", 12), ("metadata_v13.bin", 13)] {
        let r: MetadataResponse = decode(name, version);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.brokers.len(), 1, "{name}");
        let broker = &r.brokers[0];
        assert_eq!(broker.host, "127.0.0.1");
        assert!(broker.port > 0);
        // KRaft brokers name a live broker as "controller": the only one here.
        assert_eq!(r.controller_id, broker.node_id);
        assert!(r.cluster_id.is_some());
        let topic = r.topic("golden").expect("golden topic");
        assert_eq!(topic.error_code, 0);
        assert_ne!(topic.topic_id, [0; 16]);
        assert_eq!(topic.partitions.len(), 2);
        for p in &topic.partitions {
            assert_eq!(p.leader_id, broker.node_id);
            assert!(p.leader_epoch >= 0);
            assert_eq!(p.replica_nodes, vec![broker.node_id]);
            assert_eq!(p.isr_nodes, vec![broker.node_id]);
        }
        // Asked for with include_topic_authorized_operations and no authorizer: all bits.
        assert_ne!(topic.topic_authorized_operations, i32::MIN);
        let missing = r.topic("no-such-topic").expect("missing topic listed");
        assert_eq!(missing.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    }
}

#[test]
fn produce_v11_and_v12_success() {
    for (name, version) in [("produce_v11.bin", 11), ("produce_v12.bin", 12)] {
        let r: ProduceResponse = decode(name, version);
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].name, "golden");
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.index, p.error_code), (1, 0), "{name}");
        assert!(p.base_offset >= 0);
        assert_eq!(p.log_append_time_ms, -1);
        assert_eq!(p.log_start_offset, 0);
        assert!(p.record_errors.is_empty() && p.error_message.is_none());
        assert!(p.current_leader.is_none() && r.node_endpoints.is_empty());
    }
    let v11: ProduceResponse = decode("produce_v11.bin", 11);
    let v12: ProduceResponse = decode("produce_v12.bin", 12);
    assert_eq!(
        v12.responses[0].partition_responses[0].base_offset,
        v11.responses[0].partition_responses[0].base_offset + 1
    );
}

#[test]
fn produce_v12_errors() {
    let r: ProduceResponse = decode("produce_v12_unknown_partition.bin", 12);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.index, p.error_code, p.base_offset), (7, 3, -1));

    let r: ProduceResponse = decode("produce_v12_record_errors.bin", 12);
    assert_eq!(r.responses[0].name, "golden-compacted");
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 0);
    let why = p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap();
    assert!(why.contains("without key"), "{why}");
    // Longer than 127 bytes: its compact length is a two-byte varint.
    let summary = p.error_message.as_deref().unwrap();
    assert!(
        summary.len() > 127 && summary.contains("rejected"),
        "{summary}"
    );
}

#[test]
fn init_producer_id_v5() {
    let r: InitProducerIdResponse = decode("init_producer_id_v5.bin", 5);
    assert_eq!(r.error_code, 0);
    assert!(r.producer_id >= 0);
    assert_eq!(r.producer_epoch, 0);
}

#[test]
fn describe_configs_v4() {
    let r: DescribeConfigsResponse = decode("describe_configs_v4.bin", 4);
    assert_eq!(r.results.len(), 2);
    let topic = &r.results[0];
    assert_eq!((topic.error_code, topic.resource_type), (0, 2));
    assert_eq!(topic.resource_name, "golden-compacted");
    let policy = topic.config("cleanup.policy").expect("cleanup.policy");
    assert_eq!(policy.value.as_deref(), Some("compact"));
    assert_eq!(policy.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
    assert!(policy
        .synonyms
        .iter()
        .any(|s| s.name == "log.cleanup.policy"));
    assert!(policy
        .documentation
        .as_deref()
        .is_some_and(|d| d.len() > 127));
    assert_eq!(policy.config_type, 7, "LIST");
    let min_isr = topic
        .config("min.insync.replicas")
        .expect("min.insync.replicas");
    assert_eq!(min_isr.value.as_deref(), Some("1"));
    assert_eq!(min_isr.config_type, 3, "INT");
    let missing = &r.results[1];
    assert_eq!(missing.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(missing.configs.is_empty());
}

/// Every captured file decodes with the decoder its name gives (`<api>_v<version>...`),
/// so a newly captured reply cannot go untested.
#[test]
fn every_fixture_decodes() {
    fn go<R: Response>(frame: &[u8], version: i16) -> Result<(), String> {
        decode_response::<R>(frame, version)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    let dir = format!("{}/tests/fixtures/wire", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".bin") else {
            continue;
        };
        // The API name ends at the first "_v" followed by a digit.
        let at = stem
            .match_indices("_v")
            .map(|(i, _)| i)
            .find(|&i| stem[i + 2..].starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("{name}: no _v<version>"));
        let (api, rest) = (&stem[..at], &stem[at + 2..]);
        let version: i16 = rest.split('_').next().unwrap().parse().unwrap();
        let frame = fixture(&name);
        let result = match api {
            "api_versions" => go::<ApiVersionsResponse>(&frame, version),
            "metadata" => go::<MetadataResponse>(&frame, version),
            "produce" => go::<ProduceResponse>(&frame, version),
            "init_producer_id" => go::<InitProducerIdResponse>(&frame, version),
            "describe_configs" => go::<DescribeConfigsResponse>(&frame, version),
            other => panic!("{name}: no decoder for {other:?}"),
        };
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert_eq!(seen, 10, "fixtures in {dir}");
}
