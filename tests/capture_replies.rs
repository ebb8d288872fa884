//! Captures real broker replies for courier-core's wire decoders: golden files and fuzz
//! seeds under `crates/courier-core/tests/fixtures/wire/`.
//!
//! ```sh
//! cargo run -p courier-tests --bin capture-replies -- crates/courier-core/tests/fixtures/wire
//! ```
//!
//! It starts one Kafka broker with the test kit, opens a plain TCP connection (not the
//! producer's network code, which the decoders will serve), sends each request encoded by
//! the `kafka-protocol` crate and writes each reply frame as it arrived, minus the 4-byte
//! size prefix: response header, then body. One file per API and version, named
//! `<api>_v<version>[_<case>].bin`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use courier_core::{encode_batch, Compression, ProducerFields, RecordRef};
use courier_testkit::{KafkaCluster, TopicSpec};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeConfigsRequest, InitProducerIdRequest, MetadataRequest,
    ProduceRequest, ProducerId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

/// A version no broker supports, to provoke the v0 UNSUPPORTED_VERSION answer.
const UNSUPPORTED_API_VERSIONS_VERSION: i16 = 127;

struct Conn {
    stream: TcpStream,
    next_id: i32,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Conn { stream, next_id: 1 }
    }

    /// Sends `req` as `version` (header at `header_version`, body encoded at
    /// `body_version`: they differ only for the unsupported ApiVersions probe) and
    /// returns the reply frame without its size prefix.
    fn call_raw<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        header_version: i16,
        body_version: i16,
    ) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("courier-capture")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, header_version)
            .expect("encode header");
        req.encode(&mut body, body_version).expect("encode body");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("write");
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("read size");
        let len = i32::from_be_bytes(len);
        assert!((0..=1 << 20).contains(&len), "reply of {len} bytes");
        let mut reply = vec![0u8; len as usize];
        self.stream.read_exact(&mut reply).expect("read reply");
        assert_eq!(
            reply.get(..4),
            Some(&id.to_be_bytes()[..]),
            "correlation id"
        );
        reply
    }

    fn call<R: Request>(&mut self, req: &R, version: i16) -> Vec<u8> {
        self.call_raw(req, version, R::header_version(version), version)
    }
}

fn save(dir: &Path, name: &str, reply: &[u8]) {
    let path = dir.join(format!("{name}.bin"));
    std::fs::write(&path, reply).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("{:>6} bytes  {}", reply.len(), path.display());
}

fn produce(topic: &str, partition: i32, key: Option<&[u8]>) -> ProduceRequest {
    let batch = encode_batch(
        &[RecordRef {
            timestamp_ms: 1_700_000_000_000,
            key,
            value: Some(b"golden"),
            headers: &[],
        }],
        ProducerFields::NONE,
        Compression::None,
    )
    .expect("batch");
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch.bytes().to_vec())))])])
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crates/courier-core/tests/fixtures/wire".into()),
    );
    std::fs::create_dir_all(&dir).expect("fixtures dir");
    let cluster = KafkaCluster::start(1).expect("start Kafka");
    let topic = "golden";
    cluster
        .create_topic(&TopicSpec::new(topic).partitions(2).replication_factor(1))
        .expect("create topic");
    let compacted = "golden-compacted";
    cluster
        .create_topic(
            &TopicSpec::new(compacted)
                .partitions(1)
                .replication_factor(1)
                .config("cleanup.policy", "compact"),
        )
        .expect("create compacted topic");
    cluster
        .wait_for_leader(topic, 1, Duration::from_secs(30))
        .expect("leader");
    cluster
        .wait_for_leader(compacted, 0, Duration::from_secs(30))
        .expect("leader");
    let bootstrap = cluster.bootstrap();
    let addr = bootstrap.split(',').next().expect("bootstrap address");
    let mut conn = Conn::open(addr);

    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("courier-capture"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"));
    save(&dir, "api_versions_v3", &conn.call(&api_versions, 3));
    // A flexible request header and v3 body under a version the broker does not know:
    // it must answer with a v0 body carrying UNSUPPORTED_VERSION (KIP-511).
    save(
        &dir,
        "api_versions_v0_unsupported",
        &conn.call_raw(&api_versions, UNSUPPORTED_API_VERSIONS_VERSION, 2, 3),
    );

    let topics = |names: &[&str]| {
        Some(
            names
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.to_string()))))
                })
                .collect(),
        )
    };
    for version in [12, 13] {
        let req = MetadataRequest::default()
            .with_topics(topics(&[topic, "no-such-topic"]))
            .with_allow_auto_topic_creation(false)
            .with_include_topic_authorized_operations(true);
        save(
            &dir,
            &format!("metadata_v{version}"),
            &conn.call(&req, version),
        );
    }

    for version in [11, 12] {
        save(
            &dir,
            &format!("produce_v{version}"),
            &conn.call(&produce(topic, 1, Some(b"k")), version),
        );
    }
    // Error paths: a partition that does not exist, and a keyless record to a compacted
    // topic (INVALID_RECORD with record_errors and an error message).
    save(
        &dir,
        "produce_v12_unknown_partition",
        &conn.call(&produce(topic, 7, Some(b"k")), 12),
    );
    save(
        &dir,
        "produce_v12_record_errors",
        &conn.call(&produce(compacted, 0, None), 12),
    );

    // An idempotent producer's request: transactional_id must be set to null explicitly
    // (kafka-protocol's default is an empty string, which the broker refuses with
    // INVALID_REQUEST).
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // A fresh broker may answer with an error until its producer id block is ready:
    // retry until it grants an id (error code: bytes 8..10, after header and throttle).
    let mut reply = conn.call(&init, 5);
    for _ in 0..40 {
        let error_code = reply.get(9..11).map(|b| i16::from_be_bytes([b[0], b[1]]));
        if error_code == Some(0) {
            break;
        }
        eprintln!("InitProducerId answered error {error_code:?}; retrying");
        std::thread::sleep(Duration::from_millis(500));
        reply = conn.call(&init, 5);
    }
    save(&dir, "init_producer_id_v5", &reply);

    let describe = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("golden-compacted"))
                .with_configuration_keys(Some(vec![
                    StrBytes::from_static_str("min.insync.replicas"),
                    StrBytes::from_static_str("cleanup.policy"),
                ])),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("no-such-topic"))
                .with_configuration_keys(Some(vec![])),
        ]);
    save(&dir, "describe_configs_v4", &conn.call(&describe, 4));
}
