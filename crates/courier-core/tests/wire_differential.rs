//! Differential tests of `courier_core::wire`: responses built and encoded by the
//! `kafka-protocol` crate, for every version we decode, must decode field for field to
//! the same values. Random cases include the edges: empty and null strings, empty
//! arrays, strings over 127 bytes (two-byte compact lengths), every known tagged field
//! present or absent, and unknown tagged fields that must be skipped.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use courier_core::wire::{self, Response};
use kafka_protocol::messages::{
    add_partitions_to_txn_response as kap, api_versions_response as kav,
    describe_configs_response as kdc, find_coordinator_response as kfc, metadata_response as kmd,
    produce_response as kpr, txn_offset_commit_response as kto, AddOffsetsToTxnResponse,
    AddPartitionsToTxnResponse, ApiVersionsResponse, BrokerId, DescribeConfigsResponse,
    EndTxnResponse, FindCoordinatorResponse, InitProducerIdResponse, MetadataResponse,
    ProduceResponse, ProducerId, SaslAuthenticateResponse, SaslHandshakeResponse, TopicName,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("kafka-protocol encode v{version}: {e}"));
    buf.to_vec()
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn osb(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(sb)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        6 => "[a-z0-9._-]{1,24}",
        2 => "[a-zA-Z0-9]{128,300}",
        1 => "\\PC{1,8}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![1 => Just(None), 3 => text().prop_map(Some)]
}

/// Unknown tagged fields (tags 10..40, which no decoded struct knows), for flexible
/// versions; some longer than 127 bytes so their sizes take two varint bytes.
fn unknown_tags() -> impl Strategy<Value = BTreeMap<i32, Bytes>> {
    prop_oneof![
        3 => Just(BTreeMap::new()),
        1 => btree_map(10i32..40, vec(any::<u8>(), 0..200).prop_map(Bytes::from), 1..3),
    ]
}

fn tags_if(flexible: bool, tags: BTreeMap<i32, Bytes>) -> BTreeMap<i32, Bytes> {
    if flexible {
        tags
    } else {
        BTreeMap::new()
    }
}

// ---------------------------------------------------------------- ApiVersions

fn api_versions_strategy() -> impl Strategy<Value = (i16, ApiVersionsResponse)> {
    let key = (any::<i16>(), any::<i16>(), any::<i16>(), unknown_tags());
    let feature = || (text(), any::<i16>(), any::<i16>(), unknown_tags());
    (
        0i16..=3,
        any::<i16>(),
        vec(key, 0..30),
        any::<i32>(),
        vec(feature(), 0..4),
        prop_oneof![Just(-1i64), any::<i64>()],
        vec(feature(), 0..4),
        any::<bool>(),
        unknown_tags(),
    )
        .prop_map(
            |(version, error, keys, throttle, supported, epoch, finalized, zk, tags)| {
                let flex = version >= 3;
                let mut r = ApiVersionsResponse::default()
                    .with_error_code(error)
                    .with_api_keys(
                        keys.into_iter()
                            .map(|(k, min, max, t)| {
                                kav::ApiVersion::default()
                                    .with_api_key(k)
                                    .with_min_version(min)
                                    .with_max_version(max)
                                    .with_unknown_tagged_fields(tags_if(flex, t))
                            })
                            .collect(),
                    )
                    .with_throttle_time_ms(if version >= 1 { throttle } else { 0 });
                if flex {
                    r = r
                        .with_supported_features(
                            supported
                                .into_iter()
                                .map(|(n, min, max, t)| {
                                    kav::SupportedFeatureKey::default()
                                        .with_name(sb(&n))
                                        .with_min_version(min)
                                        .with_max_version(max)
                                        .with_unknown_tagged_fields(t)
                                })
                                .collect(),
                        )
                        .with_finalized_features_epoch(epoch)
                        .with_finalized_features(
                            finalized
                                .into_iter()
                                .map(|(n, max, min, t)| {
                                    kav::FinalizedFeatureKey::default()
                                        .with_name(sb(&n))
                                        .with_max_version_level(max)
                                        .with_min_version_level(min)
                                        .with_unknown_tagged_fields(t)
                                })
                                .collect(),
                        )
                        .with_zk_migration_ready(zk)
                        .with_unknown_tagged_fields(tags);
                }
                (version, r)
            },
        )
}

fn check_api_versions(version: i16, want: &ApiVersionsResponse) {
    let body = encode(want, version);
    let got = wire::ApiVersionsResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.error_code, want.error_code);
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    let keys: Vec<_> = want
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let got_keys: Vec<_> = got
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(got_keys, keys);
    let supported: Vec<_> = want
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    let got_supported: Vec<_> = got
        .supported_features
        .iter()
        .map(|f| (f.name.clone(), f.min_version, f.max_version))
        .collect();
    assert_eq!(got_supported, supported);
    assert_eq!(got.finalized_features_epoch, want.finalized_features_epoch);
    let finalized: Vec<_> = want
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.max_version_level, f.min_version_level))
        .collect();
    let got_finalized: Vec<_> = got
        .finalized_features
        .iter()
        .map(|f| (f.name.clone(), f.max_version_level, f.min_version_level))
        .collect();
    assert_eq!(got_finalized, finalized);
    assert_eq!(got.zk_migration_ready, want.zk_migration_ready);
}

// ---------------------------------------------------------------- Metadata

type RawPartition = (i16, i32, i32, i32, Vec<i32>, Vec<i32>, Vec<i32>);
type RawTopic = (i16, Option<String>, [u8; 16], bool, Vec<RawPartition>, i32);

fn metadata_strategy() -> impl Strategy<Value = (i16, MetadataResponse)> {
    let broker = (
        any::<i32>(),
        text(),
        any::<i32>(),
        opt_text(),
        unknown_tags(),
    );
    let partition = (
        any::<i16>(),
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
        vec(any::<i32>(), 0..5),
        vec(any::<i32>(), 0..5),
        vec(any::<i32>(), 0..3),
    );
    let topic = (
        any::<i16>(),
        opt_text(),
        any::<[u8; 16]>(),
        any::<bool>(),
        vec(partition, 0..4),
        any::<i32>(),
    );
    (
        4i16..=13,
        any::<i32>(),
        vec(broker, 0..4),
        opt_text(),
        any::<i32>(),
        vec((topic, unknown_tags()), 0..4),
        any::<i32>(),
        any::<i16>(),
        unknown_tags(),
    )
        .prop_map(
            |(
                version,
                throttle,
                brokers,
                cluster,
                controller,
                topics,
                cluster_ops,
                error,
                tags,
            )| {
                let flex = version >= 9;
                let r = MetadataResponse::default()
                    .with_throttle_time_ms(throttle)
                    .with_brokers(
                        brokers
                            .into_iter()
                            .map(|(id, host, port, rack, t)| {
                                kmd::MetadataResponseBroker::default()
                                    .with_node_id(BrokerId(id))
                                    .with_host(sb(&host))
                                    .with_port(port)
                                    .with_rack(osb(&rack))
                                    .with_unknown_tagged_fields(tags_if(flex, t))
                            })
                            .collect(),
                    )
                    .with_cluster_id(osb(&cluster))
                    .with_controller_id(BrokerId(controller))
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, tags)| metadata_topic(version, t, tags_if(flex, tags)))
                            .collect(),
                    )
                    .with_cluster_authorized_operations(if (8..=10).contains(&version) {
                        cluster_ops
                    } else {
                        i32::MIN
                    })
                    .with_error_code(if version >= 13 { error } else { 0 })
                    .with_unknown_tagged_fields(tags_if(flex, tags));
                (version, r)
            },
        )
}

fn metadata_topic(
    version: i16,
    (error, name, id, internal, partitions, ops): RawTopic,
    tags: BTreeMap<i32, Bytes>,
) -> kmd::MetadataResponseTopic {
    // Names are nullable only from v12.
    let name = if version >= 12 {
        name
    } else {
        Some(name.unwrap_or_default())
    };
    kmd::MetadataResponseTopic::default()
        .with_error_code(error)
        .with_name(name.as_deref().map(|n| TopicName(sb(n))))
        .with_topic_id(if version >= 10 {
            uuid::Uuid::from_bytes(id)
        } else {
            uuid::Uuid::nil()
        })
        .with_is_internal(internal)
        .with_partitions(
            partitions
                .into_iter()
                .map(|(e, idx, leader, epoch, replicas, isr, offline)| {
                    kmd::MetadataResponsePartition::default()
                        .with_error_code(e)
                        .with_partition_index(idx)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(if version >= 7 { epoch } else { -1 })
                        .with_replica_nodes(replicas.into_iter().map(BrokerId).collect())
                        .with_isr_nodes(isr.into_iter().map(BrokerId).collect())
                        .with_offline_replicas(if version >= 5 {
                            offline.into_iter().map(BrokerId).collect()
                        } else {
                            Vec::new()
                        })
                })
                .collect(),
        )
        .with_topic_authorized_operations(if version >= 8 { ops } else { i32::MIN })
        .with_unknown_tagged_fields(tags)
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

fn check_metadata(version: i16, want: &MetadataResponse) {
    let body = encode(want, version);
    let got = wire::MetadataResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.brokers.len(), want.brokers.len());
    for (g, w) in got.brokers.iter().zip(&want.brokers) {
        assert_eq!(g.node_id, w.node_id.0);
        assert_eq!(g.host, w.host.as_str());
        assert_eq!(g.port, w.port);
        assert_eq!(g.rack.as_deref(), w.rack.as_deref());
    }
    assert_eq!(got.cluster_id.as_deref(), want.cluster_id.as_deref());
    assert_eq!(got.controller_id, want.controller_id.0);
    assert_eq!(
        got.cluster_authorized_operations,
        want.cluster_authorized_operations
    );
    assert_eq!(got.error_code, want.error_code);
    assert_eq!(got.topics.len(), want.topics.len());
    for (g, w) in got.topics.iter().zip(&want.topics) {
        assert_eq!(g.error_code, w.error_code);
        assert_eq!(g.name.as_deref(), w.name.as_ref().map(|n| n.0.as_str()));
        assert_eq!(g.topic_id, *w.topic_id.as_bytes());
        assert_eq!(g.is_internal, w.is_internal);
        assert_eq!(g.topic_authorized_operations, w.topic_authorized_operations);
        assert_eq!(g.partitions.len(), w.partitions.len());
        for (gp, wp) in g.partitions.iter().zip(&w.partitions) {
            assert_eq!(gp.error_code, wp.error_code);
            assert_eq!(gp.partition_index, wp.partition_index);
            assert_eq!(gp.leader_id, wp.leader_id.0);
            assert_eq!(gp.leader_epoch, wp.leader_epoch);
            assert_eq!(gp.replica_nodes, ids(&wp.replica_nodes));
            assert_eq!(gp.isr_nodes, ids(&wp.isr_nodes));
            assert_eq!(gp.offline_replicas, ids(&wp.offline_replicas));
        }
    }
}

// ---------------------------------------------------------------- Produce

type RawProducePartition = (
    i32,
    i16,
    i64,
    i64,
    i64,
    Vec<(i32, Option<String>)>,
    Option<String>,
    Option<(i32, i32)>,
);

fn produce_strategy() -> impl Strategy<Value = (i16, ProduceResponse)> {
    let partition = (
        any::<i32>(),
        any::<i16>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        vec((any::<i32>(), opt_text()), 0..3),
        opt_text(),
        proptest::option::of((any::<i32>(), any::<i32>())),
    );
    let endpoint = (any::<i32>(), text(), any::<i32>(), opt_text());
    (
        3i16..=12,
        vec((text(), vec((partition, unknown_tags()), 0..4)), 0..4),
        any::<i32>(),
        vec(endpoint, 0..3),
        unknown_tags(),
    )
        .prop_map(|(version, topics, throttle, endpoints, tags)| {
            let flex = version >= 9;
            let r = ProduceResponse::default()
                .with_responses(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            kpr::TopicProduceResponse::default()
                                .with_name(TopicName(sb(&name)))
                                .with_partition_responses(
                                    partitions
                                        .into_iter()
                                        .map(|(p, t)| {
                                            produce_partition(version, p, tags_if(flex, t))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
                .with_throttle_time_ms(throttle)
                .with_node_endpoints(if version >= 10 {
                    endpoints
                        .into_iter()
                        .map(|(id, host, port, rack)| {
                            kpr::NodeEndpoint::default()
                                .with_node_id(BrokerId(id))
                                .with_host(sb(&host))
                                .with_port(port)
                                .with_rack(osb(&rack))
                        })
                        .collect()
                } else {
                    Vec::new()
                })
                .with_unknown_tagged_fields(tags_if(flex, tags));
            (version, r)
        })
}

fn produce_partition(
    version: i16,
    (index, error, base, append, start, record_errors, message, leader): RawProducePartition,
    tags: BTreeMap<i32, Bytes>,
) -> kpr::PartitionProduceResponse {
    let v8 = version >= 8;
    let leader = leader.filter(|_| version >= 10).unwrap_or((-1, -1));
    kpr::PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(base)
        .with_log_append_time_ms(append)
        .with_log_start_offset(if version >= 5 { start } else { -1 })
        .with_record_errors(if v8 {
            record_errors
                .into_iter()
                .map(|(i, m)| {
                    kpr::BatchIndexAndErrorMessage::default()
                        .with_batch_index(i)
                        .with_batch_index_error_message(osb(&m))
                })
                .collect()
        } else {
            Vec::new()
        })
        .with_error_message(if v8 { osb(&message) } else { None })
        .with_current_leader(
            kpr::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader.0))
                .with_leader_epoch(leader.1),
        )
        .with_unknown_tagged_fields(tags)
}

fn check_produce(version: i16, want: &ProduceResponse) {
    let body = encode(want, version);
    let got = wire::ProduceResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.responses.len(), want.responses.len());
    for (g, w) in got.responses.iter().zip(&want.responses) {
        assert_eq!(g.name, w.name.0.as_str());
        assert_eq!(g.partition_responses.len(), w.partition_responses.len());
        for (gp, wp) in g.partition_responses.iter().zip(&w.partition_responses) {
            assert_eq!(gp.index, wp.index);
            assert_eq!(gp.error_code, wp.error_code);
            assert_eq!(gp.base_offset, wp.base_offset);
            assert_eq!(gp.log_append_time_ms, wp.log_append_time_ms);
            assert_eq!(gp.log_start_offset, wp.log_start_offset);
            let errors: Vec<_> = wp
                .record_errors
                .iter()
                .map(|e| {
                    (
                        e.batch_index,
                        e.batch_index_error_message.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect();
            let got_errors: Vec<_> = gp
                .record_errors
                .iter()
                .map(|e| (e.batch_index, e.batch_index_error_message.clone()))
                .collect();
            assert_eq!(got_errors, errors);
            assert_eq!(gp.error_message.as_deref(), wp.error_message.as_deref());
            // kafka-protocol leaves the tag out when it holds the default (-1, -1).
            let leader = (
                wp.current_leader.leader_id.0,
                wp.current_leader.leader_epoch,
            );
            let want_leader = (leader != (-1, -1)).then_some(leader);
            assert_eq!(
                gp.current_leader.map(|l| (l.leader_id, l.leader_epoch)),
                want_leader
            );
        }
    }
    let endpoints: Vec<_> = want
        .node_endpoints
        .iter()
        .map(|n| {
            (
                n.node_id.0,
                n.host.to_string(),
                n.port,
                n.rack.as_ref().map(|r| r.to_string()),
            )
        })
        .collect();
    let got_endpoints: Vec<_> = got
        .node_endpoints
        .iter()
        .map(|n| (n.node_id, n.host.clone(), n.port, n.rack.clone()))
        .collect();
    assert_eq!(got_endpoints, endpoints);
}

// ---------------------------------------------------------------- DescribeConfigs

type RawSynonym = (String, Option<String>, i8);
type RawEntry = (
    String,
    Option<String>,
    bool,
    i8,
    bool,
    Vec<RawSynonym>,
    i8,
    Option<String>,
);

fn describe_configs_strategy() -> impl Strategy<Value = (i16, DescribeConfigsResponse)> {
    let synonym = (text(), opt_text(), any::<i8>());
    let entry = (
        text(),
        opt_text(),
        any::<bool>(),
        any::<i8>(),
        any::<bool>(),
        vec(synonym, 0..3),
        any::<i8>(),
        opt_text(),
    );
    let result = (
        any::<i16>(),
        opt_text(),
        any::<i8>(),
        text(),
        vec((entry, unknown_tags()), 0..4),
    );
    (1i16..=4, any::<i32>(), vec(result, 0..3), unknown_tags()).prop_map(
        |(version, throttle, results, tags)| {
            let flex = version >= 4;
            let r = DescribeConfigsResponse::default()
                .with_throttle_time_ms(throttle)
                .with_results(
                    results
                        .into_iter()
                        .map(|(e, msg, rtype, rname, configs)| {
                            kdc::DescribeConfigsResult::default()
                                .with_error_code(e)
                                .with_error_message(osb(&msg))
                                .with_resource_type(rtype)
                                .with_resource_name(sb(&rname))
                                .with_configs(
                                    configs
                                        .into_iter()
                                        .map(|(c, t)| config_entry(version, c, tags_if(flex, t)))
                                        .collect(),
                                )
                        })
                        .collect(),
                )
                .with_unknown_tagged_fields(tags_if(flex, tags));
            (version, r)
        },
    )
}

fn config_entry(
    version: i16,
    (name, value, ro, source, sensitive, synonyms, ctype, doc): RawEntry,
    tags: BTreeMap<i32, Bytes>,
) -> kdc::DescribeConfigsResourceResult {
    let v3 = version >= 3;
    kdc::DescribeConfigsResourceResult::default()
        .with_name(sb(&name))
        .with_value(osb(&value))
        .with_read_only(ro)
        .with_config_source(source)
        .with_is_sensitive(sensitive)
        .with_synonyms(
            synonyms
                .into_iter()
                .map(|(n, v, s)| {
                    kdc::DescribeConfigsSynonym::default()
                        .with_name(sb(&n))
                        .with_value(osb(&v))
                        .with_source(s)
                })
                .collect(),
        )
        .with_config_type(if v3 { ctype } else { 0 })
        .with_documentation(if v3 { osb(&doc) } else { None })
        .with_unknown_tagged_fields(tags)
}

fn s(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|s| s.to_string())
}

fn check_describe_configs(version: i16, want: &DescribeConfigsResponse) {
    let body = encode(want, version);
    let got =
        wire::DescribeConfigsResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.results.len(), want.results.len());
    for (g, w) in got.results.iter().zip(&want.results) {
        assert_eq!(g.error_code, w.error_code);
        assert_eq!(g.error_message, s(&w.error_message));
        assert_eq!(g.resource_type, w.resource_type);
        assert_eq!(g.resource_name, w.resource_name.as_str());
        assert_eq!(g.configs.len(), w.configs.len());
        for (gc, wc) in g.configs.iter().zip(&w.configs) {
            assert_eq!(gc.name, wc.name.as_str());
            assert_eq!(gc.value, s(&wc.value));
            assert_eq!(gc.read_only, wc.read_only);
            assert_eq!(gc.config_source, wc.config_source);
            assert_eq!(gc.is_sensitive, wc.is_sensitive);
            assert_eq!(gc.config_type, wc.config_type);
            assert_eq!(gc.documentation, s(&wc.documentation));
            let syn: Vec<_> = wc
                .synonyms
                .iter()
                .map(|x| (x.name.to_string(), s(&x.value), x.source))
                .collect();
            let got_syn: Vec<_> = gc
                .synonyms
                .iter()
                .map(|x| (x.name.clone(), x.value.clone(), x.source))
                .collect();
            assert_eq!(got_syn, syn);
        }
    }
}

// ---------------------------------------------------------------- the rest

fn check_init_producer_id(version: i16, want: &InitProducerIdResponse) {
    let body = encode(want, version);
    let got =
        wire::InitProducerIdResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.error_code, want.error_code);
    assert_eq!(got.producer_id, want.producer_id.0);
    assert_eq!(got.producer_epoch, want.producer_epoch);
}

fn check_sasl_handshake(version: i16, want: &SaslHandshakeResponse) {
    let body = encode(want, version);
    let got = wire::SaslHandshakeResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.error_code, want.error_code);
    let mechanisms: Vec<_> = want.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(got.mechanisms, mechanisms);
}

fn check_sasl_authenticate(version: i16, want: &SaslAuthenticateResponse) {
    let body = encode(want, version);
    let got =
        wire::SaslAuthenticateResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.error_code, want.error_code);
    assert_eq!(got.error_message, s(&want.error_message));
    assert_eq!(got.auth_bytes, want.auth_bytes.to_vec());
    assert_eq!(got.session_lifetime_ms, want.session_lifetime_ms);
}

// ---------------------------------------------------------------- transactions

type RawCoordinator = (String, i32, String, i32, i16, Option<String>);

fn find_coordinator_strategy() -> impl Strategy<Value = (i16, FindCoordinatorResponse)> {
    let coordinator = || {
        (
            text(),
            any::<i32>(),
            text(),
            any::<i32>(),
            any::<i16>(),
            opt_text(),
        )
    };
    (
        0i16..=6,
        any::<i32>(),
        coordinator(),
        vec((coordinator(), unknown_tags()), 0..4),
        unknown_tags(),
    )
        .prop_map(|(version, throttle, single, batched, tags)| {
            (
                version,
                find_coordinator(version, throttle, single, batched, tags),
            )
        })
}

/// A FindCoordinator reply of `version` with the fields that version has: `single` at
/// the top level before v4, `batched` as the coordinators array from v4.
fn find_coordinator(
    version: i16,
    throttle: i32,
    (_, node, host, port, error, message): RawCoordinator,
    batched: Vec<(RawCoordinator, BTreeMap<i32, Bytes>)>,
    tags: BTreeMap<i32, Bytes>,
) -> FindCoordinatorResponse {
    let mut r = FindCoordinatorResponse::default()
        .with_throttle_time_ms(if version >= 1 { throttle } else { 0 })
        .with_unknown_tagged_fields(tags_if(version >= 3, tags));
    if version <= 3 {
        r = r
            .with_error_code(error)
            .with_error_message(if version >= 1 { osb(&message) } else { None })
            .with_node_id(BrokerId(node))
            .with_host(sb(&host))
            .with_port(port);
    } else {
        r = r
            .with_error_code(0)
            .with_error_message(None)
            .with_coordinators(
                batched
                    .into_iter()
                    .map(|((key, node, host, port, error, message), t)| {
                        kfc::Coordinator::default()
                            .with_key(sb(&key))
                            .with_node_id(BrokerId(node))
                            .with_host(sb(&host))
                            .with_port(port)
                            .with_error_code(error)
                            .with_error_message(osb(&message))
                            .with_unknown_tagged_fields(t)
                    })
                    .collect(),
            );
    }
    r
}

fn check_find_coordinator(version: i16, want: &FindCoordinatorResponse) {
    let body = encode(want, version);
    let got =
        wire::FindCoordinatorResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.error_code, want.error_code);
    let message = if (1..=3).contains(&version) {
        s(&want.error_message)
    } else {
        None
    };
    assert_eq!(got.error_message, message);
    assert_eq!(got.node_id, want.node_id.0);
    assert_eq!(got.host, want.host.as_str());
    assert_eq!(got.port, want.port);
    let coordinators: Vec<_> = want
        .coordinators
        .iter()
        .map(|c| {
            (
                c.key.to_string(),
                c.node_id.0,
                c.host.to_string(),
                c.port,
                c.error_code,
                s(&c.error_message),
            )
        })
        .collect();
    let got_coordinators: Vec<_> = got
        .coordinators
        .iter()
        .map(|c| {
            (
                c.key.clone(),
                c.node_id,
                c.host.clone(),
                c.port,
                c.error_code,
                c.error_message.clone(),
            )
        })
        .collect();
    assert_eq!(got_coordinators, coordinators);
    // `for_key` reads either shape the same way.
    if version < 4 {
        let c = got.for_key(version, "txn-1").expect("v0..=3 always answer");
        assert_eq!(
            (c.key.as_str(), c.node_id, c.port, c.error_code),
            ("txn-1", want.node_id.0, want.port, want.error_code)
        );
    } else if let Some(first) = want.coordinators.first() {
        let c = got
            .for_key(version, first.key.as_str())
            .expect("listed key is found");
        assert_eq!(c.key, first.key.as_str());
    }
}

type RawTxnPartition = (i32, i16, BTreeMap<i32, Bytes>);
type RawTxnTopic = (String, Vec<RawTxnPartition>, BTreeMap<i32, Bytes>);

fn txn_topics() -> impl Strategy<Value = Vec<RawTxnTopic>> {
    let partition = (any::<i32>(), any::<i16>(), unknown_tags());
    vec((text(), vec(partition, 0..5), unknown_tags()), 0..4)
}

fn add_partitions(
    version: i16,
    throttle: i32,
    topics: Vec<RawTxnTopic>,
    tags: BTreeMap<i32, Bytes>,
) -> AddPartitionsToTxnResponse {
    let flex = version >= 3;
    AddPartitionsToTxnResponse::default()
        .with_throttle_time_ms(throttle)
        .with_results_by_topic_v3_and_below(
            topics
                .into_iter()
                .map(|(name, partitions, t)| {
                    kap::AddPartitionsToTxnTopicResult::default()
                        .with_name(TopicName(sb(&name)))
                        .with_results_by_partition(
                            partitions
                                .into_iter()
                                .map(|(index, error, t)| {
                                    kap::AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(index)
                                        .with_partition_error_code(error)
                                        .with_unknown_tagged_fields(tags_if(flex, t))
                                })
                                .collect(),
                        )
                        .with_unknown_tagged_fields(tags_if(flex, t))
                })
                .collect(),
        )
        .with_unknown_tagged_fields(tags_if(flex, tags))
}

fn check_add_partitions_to_txn(version: i16, want: &AddPartitionsToTxnResponse) {
    let body = encode(want, version);
    let got =
        wire::AddPartitionsToTxnResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    let topics: Vec<_> = want
        .results_by_topic_v3_and_below
        .iter()
        .map(|t| {
            let partitions: Vec<_> = t
                .results_by_partition
                .iter()
                .map(|p| (p.partition_index, p.partition_error_code))
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let got_topics: Vec<_> = got
        .results_by_topic_v3_and_below
        .iter()
        .map(|t| {
            let partitions: Vec<_> = t
                .results_by_partition
                .iter()
                .map(|p| (p.partition_index, p.partition_error_code))
                .collect();
            (t.name.clone(), partitions)
        })
        .collect();
    assert_eq!(got_topics, topics);
    let flat: Vec<_> = topics
        .iter()
        .flat_map(|(n, ps)| ps.iter().map(move |&(i, e)| (n.clone(), i, e)))
        .collect();
    let got_flat: Vec<_> = got
        .partition_errors()
        .map(|(n, i, e)| (n.to_owned(), i, e))
        .collect();
    assert_eq!(got_flat, flat);
}

fn txn_offset_commit(
    version: i16,
    throttle: i32,
    topics: Vec<RawTxnTopic>,
    tags: BTreeMap<i32, Bytes>,
) -> TxnOffsetCommitResponse {
    let flex = version >= 3;
    TxnOffsetCommitResponse::default()
        .with_throttle_time_ms(throttle)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions, t)| {
                    kto::TxnOffsetCommitResponseTopic::default()
                        .with_name(TopicName(sb(&name)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, error, t)| {
                                    kto::TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_error_code(error)
                                        .with_unknown_tagged_fields(tags_if(flex, t))
                                })
                                .collect(),
                        )
                        .with_unknown_tagged_fields(tags_if(flex, t))
                })
                .collect(),
        )
        .with_unknown_tagged_fields(tags_if(flex, tags))
}

fn check_txn_offset_commit(version: i16, want: &TxnOffsetCommitResponse) {
    let body = encode(want, version);
    let got =
        wire::TxnOffsetCommitResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    let topics: Vec<_> = want
        .topics
        .iter()
        .map(|t| {
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let got_topics: Vec<_> = got
        .topics
        .iter()
        .map(|t| {
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            (t.name.clone(), partitions)
        })
        .collect();
    assert_eq!(got_topics, topics);
    assert_eq!(
        got.partition_errors().count(),
        topics.iter().map(|t| t.1.len()).sum::<usize>()
    );
}

fn check_add_offsets_to_txn(version: i16, want: &AddOffsetsToTxnResponse) {
    let body = encode(want, version);
    let got =
        wire::AddOffsetsToTxnResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.error_code, want.error_code);
}

fn check_end_txn(version: i16, want: &EndTxnResponse) {
    let body = encode(want, version);
    let got = wire::EndTxnResponse::decode(&body, version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.throttle_time_ms, want.throttle_time_ms);
    assert_eq!(got.error_code, want.error_code);
    let (id, epoch) = if version >= 5 {
        (want.producer_id.0, want.producer_epoch)
    } else {
        (-1, -1)
    };
    assert_eq!((got.producer_id, got.producer_epoch), (id, epoch));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn api_versions_matches_kafka_protocol((version, r) in api_versions_strategy()) {
        check_api_versions(version, &r);
    }

    #[test]
    fn metadata_matches_kafka_protocol((version, r) in metadata_strategy()) {
        check_metadata(version, &r);
    }

    #[test]
    fn produce_matches_kafka_protocol((version, r) in produce_strategy()) {
        check_produce(version, &r);
    }

    #[test]
    fn describe_configs_matches_kafka_protocol((version, r) in describe_configs_strategy()) {
        check_describe_configs(version, &r);
    }

    #[test]
    fn init_producer_id_matches_kafka_protocol(
        version in 0i16..=5,
        throttle in any::<i32>(),
        error in any::<i16>(),
        id in any::<i64>(),
        epoch in any::<i16>(),
        tags in unknown_tags(),
    ) {
        let r = InitProducerIdResponse::default()
            .with_throttle_time_ms(throttle)
            .with_error_code(error)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
            .with_unknown_tagged_fields(tags_if(version >= 2, tags));
        check_init_producer_id(version, &r);
    }

    #[test]
    fn sasl_handshake_matches_kafka_protocol(
        version in 0i16..=1,
        error in any::<i16>(),
        mechanisms in vec(text(), 0..5),
    ) {
        let r = SaslHandshakeResponse::default()
            .with_error_code(error)
            .with_mechanisms(mechanisms.iter().map(|m| sb(m)).collect());
        check_sasl_handshake(version, &r);
    }

    #[test]
    fn sasl_authenticate_matches_kafka_protocol(
        version in 0i16..=2,
        error in any::<i16>(),
        message in opt_text(),
        auth in vec(any::<u8>(), 0..300),
        lifetime in any::<i64>(),
        tags in unknown_tags(),
    ) {
        let r = SaslAuthenticateResponse::default()
            .with_error_code(error)
            .with_error_message(osb(&message))
            .with_auth_bytes(Bytes::from(auth))
            .with_session_lifetime_ms(if version >= 1 { lifetime } else { 0 })
            .with_unknown_tagged_fields(tags_if(version >= 2, tags));
        check_sasl_authenticate(version, &r);
    }

    #[test]
    fn find_coordinator_matches_kafka_protocol((version, r) in find_coordinator_strategy()) {
        check_find_coordinator(version, &r);
    }

    #[test]
    fn add_partitions_to_txn_matches_kafka_protocol(
        version in 0i16..=3,
        throttle in any::<i32>(),
        topics in txn_topics(),
        tags in unknown_tags(),
    ) {
        check_add_partitions_to_txn(version, &add_partitions(version, throttle, topics, tags));
    }

    #[test]
    fn txn_offset_commit_matches_kafka_protocol(
        version in 0i16..=5,
        throttle in any::<i32>(),
        topics in txn_topics(),
        tags in unknown_tags(),
    ) {
        check_txn_offset_commit(version, &txn_offset_commit(version, throttle, topics, tags));
    }

    #[test]
    fn add_offsets_to_txn_matches_kafka_protocol(
        version in 0i16..=4,
        throttle in any::<i32>(),
        error in any::<i16>(),
        tags in unknown_tags(),
    ) {
        let r = AddOffsetsToTxnResponse::default()
            .with_throttle_time_ms(throttle)
            .with_error_code(error)
            .with_unknown_tagged_fields(tags_if(version >= 3, tags));
        check_add_offsets_to_txn(version, &r);
    }

    #[test]
    fn end_txn_matches_kafka_protocol(
        version in 0i16..=5,
        throttle in any::<i32>(),
        error in any::<i16>(),
        id in any::<i64>(),
        epoch in any::<i16>(),
        tags in unknown_tags(),
    ) {
        let r = EndTxnResponse::default()
            .with_throttle_time_ms(throttle)
            .with_error_code(error)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
            .with_unknown_tagged_fields(tags_if(version >= 3, tags));
        check_end_txn(version, &r);
    }
}

/// Every version of every decoder, on the all-default (smallest) and a fully loaded
/// response, so no version is left to chance.
#[test]
fn every_version_edge_cases() {
    let long = "x".repeat(200);
    for version in 0..=3 {
        check_api_versions(version, &ApiVersionsResponse::default());
        let mut r = ApiVersionsResponse::default().with_api_keys(vec![
            kav::ApiVersion::default()
                .with_max_version(12);
            100
        ]);
        if version >= 3 {
            r = r
                .with_supported_features(vec![kav::SupportedFeatureKey::default()
                    .with_name(sb(&long))
                    .with_max_version(3)])
                .with_finalized_features_epoch(7)
                .with_finalized_features(vec![kav::FinalizedFeatureKey::default()
                    .with_name(sb("transaction.version"))
                    .with_max_version_level(2)])
                .with_zk_migration_ready(true);
        }
        check_api_versions(version, &r);
    }
    for version in 4..=13 {
        let mut r = MetadataResponse::default()
            .with_cluster_id(None)
            .with_cluster_authorized_operations(if (8..=10).contains(&version) {
                0
            } else {
                i32::MIN
            });
        check_metadata(version, &r);
        let topic = metadata_topic(
            version,
            (0, Some(long.clone()), [9; 16], true, vec![], i32::MIN),
            BTreeMap::new(),
        );
        r = r.with_topics(vec![topic; 3]);
        check_metadata(version, &r);
    }
    for version in 3..=12 {
        check_produce(version, &ProduceResponse::default());
        // Many smallest partitions: a min-size estimate one byte too big would refuse it.
        let partition = produce_partition(
            version,
            (0, 0, 0, 0, -1, vec![], None, None),
            BTreeMap::new(),
        );
        let r = ProduceResponse::default().with_responses(vec![
            kpr::TopicProduceResponse::default()
                .with_partition_responses(
                    vec![partition; 50]
                );
            50
        ]);
        check_produce(version, &r);
    }
    for version in 1..=4 {
        check_describe_configs(version, &DescribeConfigsResponse::default());
    }
    for version in 0..=5 {
        check_init_producer_id(version, &InitProducerIdResponse::default());
    }
    for version in 0..=1 {
        check_sasl_handshake(version, &SaslHandshakeResponse::default());
    }
    for version in 0..=2 {
        check_sasl_authenticate(version, &SaslAuthenticateResponse::default());
    }
    let coordinator = (String::new(), 0, String::new(), 0, 0, None);
    for version in 0..=6 {
        let empty = find_coordinator(version, 0, coordinator.clone(), vec![], BTreeMap::new());
        check_find_coordinator(version, &empty);
        let loaded = (long.clone(), 3, long.clone(), 9092, 15, Some(long.clone()));
        let r = find_coordinator(
            version,
            7,
            loaded.clone(),
            vec![(loaded, BTreeMap::new()); 3],
            BTreeMap::new(),
        );
        check_find_coordinator(version, &r);
    }
    for version in 0..=3 {
        check_add_partitions_to_txn(version, &AddPartitionsToTxnResponse::default());
        let topic = (
            long.clone(),
            vec![(1, 51, BTreeMap::new()); 3],
            BTreeMap::new(),
        );
        check_add_partitions_to_txn(
            version,
            &add_partitions(version, 1, vec![topic; 3], BTreeMap::new()),
        );
    }
    for version in 0..=5 {
        check_txn_offset_commit(version, &TxnOffsetCommitResponse::default());
        let topic = (
            long.clone(),
            vec![(1, 22, BTreeMap::new()); 3],
            BTreeMap::new(),
        );
        check_txn_offset_commit(
            version,
            &txn_offset_commit(version, 1, vec![topic; 3], BTreeMap::new()),
        );
    }
    for version in 0..=4 {
        check_add_offsets_to_txn(version, &AddOffsetsToTxnResponse::default());
    }
    for version in 0..=5 {
        check_end_txn(version, &EndTxnResponse::default());
        let r = EndTxnResponse::default()
            .with_producer_id(ProducerId(i64::MAX))
            .with_producer_epoch(i16::MAX);
        check_end_txn(version, &r);
    }
}

/// Fifty smallest entries of every array, each last in its enclosing struct: if a
/// decoder's smallest-entry estimate were one byte too big, the count check would
/// refuse these valid replies.
#[test]
fn many_smallest_entries_fit() {
    const N: usize = 50;
    for version in 0..=3 {
        let mut r =
            ApiVersionsResponse::default().with_api_keys(vec![kav::ApiVersion::default(); N]);
        if version >= 3 {
            r = r
                .with_supported_features(vec![kav::SupportedFeatureKey::default(); N])
                .with_finalized_features(vec![kav::FinalizedFeatureKey::default(); N]);
        }
        check_api_versions(version, &r);
    }
    for version in 4..=13 {
        let ops = if (8..=10).contains(&version) {
            0
        } else {
            i32::MIN
        };
        let base = MetadataResponse::default()
            .with_cluster_id(None)
            .with_cluster_authorized_operations(ops);
        let broker = kmd::MetadataResponseBroker::default().with_rack(None);
        check_metadata(version, &base.clone().with_brokers(vec![broker; N]));
        let partition = kmd::MetadataResponsePartition::default()
            .with_leader_epoch(if version >= 7 { 0 } else { -1 });
        let topic = |partitions| {
            metadata_topic(
                version,
                (0, Some(String::new()), [0; 16], false, vec![], i32::MIN),
                BTreeMap::new(),
            )
            .with_partitions(partitions)
        };
        check_metadata(version, &base.clone().with_topics(vec![topic(vec![]); N]));
        check_metadata(version, &base.with_topics(vec![topic(vec![partition; N])]));
    }
    for version in 3..=12 {
        let topic = kpr::TopicProduceResponse::default();
        check_produce(
            version,
            &ProduceResponse::default().with_responses(vec![topic.clone(); N]),
        );
        if version >= 8 {
            let partition = produce_partition(
                version,
                (0, 0, 0, 0, -1, vec![(0, None); N], None, None),
                BTreeMap::new(),
            );
            check_produce(
                version,
                &ProduceResponse::default()
                    .with_responses(vec![topic.with_partition_responses(vec![partition])]),
            );
        }
        if version >= 10 {
            let endpoint = kpr::NodeEndpoint::default().with_rack(None);
            check_produce(
                version,
                &ProduceResponse::default().with_node_endpoints(vec![endpoint; N]),
            );
        }
    }
    for version in 1..=4 {
        let entry = |synonyms| {
            config_entry(
                version,
                (String::new(), None, false, 0, false, synonyms, 0, None),
                BTreeMap::new(),
            )
        };
        let result = |configs| {
            kdc::DescribeConfigsResult::default()
                .with_error_message(None)
                .with_configs(configs)
        };
        let synonym = (String::new(), None, 0);
        for results in [
            vec![result(vec![]); N],
            vec![result(vec![entry(vec![]); N])],
            vec![result(vec![entry(vec![synonym; N])])],
        ] {
            check_describe_configs(
                version,
                &DescribeConfigsResponse::default().with_results(results),
            );
        }
    }
    for version in 0..=1 {
        check_sasl_handshake(
            version,
            &SaslHandshakeResponse::default().with_mechanisms(vec![StrBytes::default(); N]),
        );
    }
    for version in 4..=6 {
        let smallest = (String::new(), 0, String::new(), 0, 0, None);
        let r = find_coordinator(
            version,
            0,
            smallest.clone(),
            vec![(smallest, BTreeMap::new()); N],
            BTreeMap::new(),
        );
        check_find_coordinator(version, &r);
    }
    for version in 0..=3 {
        let empty = (String::new(), vec![], BTreeMap::new());
        let one = (
            String::new(),
            vec![(0, 0, BTreeMap::new()); N],
            BTreeMap::new(),
        );
        for topics in [vec![empty.clone(); N], vec![one.clone()]] {
            check_add_partitions_to_txn(
                version,
                &add_partitions(version, 0, topics, BTreeMap::new()),
            );
        }
    }
    for version in 0..=5 {
        let empty = (String::new(), vec![], BTreeMap::new());
        let one = (
            String::new(),
            vec![(0, 0, BTreeMap::new()); N],
            BTreeMap::new(),
        );
        for topics in [vec![empty.clone(); N], vec![one.clone()]] {
            check_txn_offset_commit(
                version,
                &txn_offset_commit(version, 0, topics, BTreeMap::new()),
            );
        }
    }
}
