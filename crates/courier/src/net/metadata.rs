//! Typed views of the control-plane calls the producer makes: Metadata and InitProducerId.
//!
//! No policy here: error codes are surfaced as they came; retrying and refreshing are the
//! producer core's decisions.

use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, MetadataRequest, MetadataResponse, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerConnection, NetError};

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// The broker's node id.
    pub node_id: i32,
    /// Its advertised host.
    pub host: String,
    /// Its advertised port.
    pub port: i32,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port` to connect to (IPv6 literals in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition index.
    pub partition: i32,
    /// The partition's error code (0 = none), e.g. LEADER_NOT_AVAILABLE (5).
    pub error_code: i16,
    /// The leader's node id, -1 if there is none.
    pub leader_id: i32,
    /// The leader epoch (KIP-320), -1 if the broker did not send one (Metadata < v7).
    pub leader_epoch: i32,
    /// Node ids of all replicas.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Node ids of offline replicas.
    pub offline_replicas: Vec<i32>,
}

/// One topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic name.
    pub name: String,
    /// The topic's error code (0 = none), e.g. UNKNOWN_TOPIC_OR_PARTITION (3).
    pub error_code: i16,
    /// Whether it is an internal topic.
    pub is_internal: bool,
    /// Its partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

/// A Metadata response, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The cluster id, if the broker sent one.
    pub cluster_id: Option<String>,
    /// The controller's node id (-1 if unknown; KRaft brokers report a random broker).
    pub controller_id: i32,
    /// Top-level error code (Metadata v13+, 0 otherwise).
    pub error_code: i16,
    /// The live brokers.
    pub brokers: Vec<BrokerMetadata>,
    /// The topics asked for, in the broker's order.
    pub topics: Vec<TopicMetadata>,
}

impl ClusterMetadata {
    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The broker with id `node_id`.
    pub fn broker(&self, node_id: i32) -> Option<&BrokerMetadata> {
        self.brokers.iter().find(|b| b.node_id == node_id)
    }

    fn from_response(resp: MetadataResponse) -> Self {
        ClusterMetadata {
            cluster_id: resp.cluster_id.map(|s| s.to_string()),
            controller_id: resp.controller_id.0,
            error_code: resp.error_code,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| BrokerMetadata {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect(),
            topics: resp
                .topics
                .into_iter()
                .map(|t| {
                    let mut partitions: Vec<PartitionMetadata> = t
                        .partitions
                        .into_iter()
                        .map(|p| PartitionMetadata {
                            partition: p.partition_index,
                            error_code: p.error_code,
                            leader_id: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.into_iter().map(|n| n.0).collect(),
                            isr: p.isr_nodes.into_iter().map(|n| n.0).collect(),
                            offline_replicas: p.offline_replicas.into_iter().map(|n| n.0).collect(),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicMetadata {
                        name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                        error_code: t.error_code,
                        is_internal: t.is_internal,
                        partitions,
                    }
                })
                .collect(),
        }
    }
}

/// Fetches metadata for `topics` (an empty slice asks for brokers only, no topics) without
/// asking the broker to create missing topics.
pub async fn fetch_metadata(
    conn: &BrokerConnection,
    topics: &[&str],
) -> Result<ClusterMetadata, NetError> {
    fetch_metadata_with(conn, topics, false).await
}

/// [`fetch_metadata`], choosing whether the broker may auto-create missing topics (if its
/// `auto.create.topics.enable` allows; the Java producer asks for that).
pub async fn fetch_metadata_with(
    conn: &BrokerConnection,
    topics: &[&str],
    allow_auto_topic_creation: bool,
) -> Result<ClusterMetadata, NetError> {
    let version = conn.version(ApiKey::Metadata)?;
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(allow_auto_topic_creation);
    let resp = conn.send(req, version).await?;
    Ok(ClusterMetadata::from_response(resp))
}

/// The answer to InitProducerId: a producer id and epoch, or an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdGrant {
    /// The broker's error code (0 = none), e.g. COORDINATOR_LOAD_IN_PROGRESS (14) or
    /// CLUSTER_AUTHORIZATION_FAILED (31). The id and epoch are meaningful only when 0.
    pub error_code: i16,
    /// The producer id (KIP-98), -1 on error.
    pub producer_id: i64,
    /// The producer epoch, -1 on error.
    pub producer_epoch: i16,
    /// How long the broker throttled the request.
    pub throttle_time: Duration,
}

/// Asks for a producer id (KIP-98). `transactional_id` is `None` for an idempotent
/// producer (any broker can answer); `transaction_timeout` matters only for transactions.
pub async fn init_producer_id(
    conn: &BrokerConnection,
    transactional_id: Option<&str>,
    transaction_timeout: Duration,
) -> Result<ProducerIdGrant, NetError> {
    let version = conn.version(ApiKey::InitProducerId)?;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_owned()))),
        )
        .with_transaction_timeout_ms(
            i32::try_from(transaction_timeout.as_millis()).unwrap_or(i32::MAX),
        )
        // -1/-1: a new id, not a KIP-360 epoch bump of an existing one.
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = conn.send(req, version).await?;
    Ok(ProducerIdGrant {
        error_code: resp.error_code,
        producer_id: resp.producer_id.0,
        producer_epoch: resp.producer_epoch,
        throttle_time: Duration::from_millis(resp.throttle_time_ms.max(0) as u64),
    })
}
