//! Typed views of the control-plane calls the producer makes: Metadata and InitProducerId.
//!
//! No policy here: error codes are surfaced as they came; retrying and refreshing are the
//! producer core's decisions.

use std::time::Duration;

use courier_core::wire;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, MetadataRequest, ProducerId, TopicName, TransactionalId,
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

    /// Drops what cannot be right, so nothing downstream trusts it: brokers with a negative
    /// or repeated node id, a host that is not a host name or IP address, or a port outside
    /// 1..=65535; topics without a name or listed twice; partitions whose index is negative,
    /// repeated, or not below the number of partitions listed. A leader that is not among the
    /// remaining brokers becomes "no leader" (-1): its partition is unavailable until a later
    /// answer is better. Returns what was dropped, one line each, for a warning.
    pub fn validated(mut self) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.brokers.retain(|b| {
            let why = if b.node_id < 0 {
                Some("a negative node id".to_string())
            } else if !seen.insert(b.node_id) {
                Some("a node id listed twice".to_string())
            } else if !is_host(&b.host) {
                Some(format!(
                    "host {:?} is not a host name or IP address",
                    b.host
                ))
            } else if !(1..=65535).contains(&b.port) {
                Some(format!("port {} is outside 1..=65535", b.port))
            } else {
                None
            };
            if let Some(why) = &why {
                problems.push(format!("broker {}: {why}", b.node_id));
            }
            why.is_none()
        });
        let brokers: std::collections::HashSet<i32> =
            self.brokers.iter().map(|b| b.node_id).collect();
        let mut names = std::collections::HashSet::new();
        self.topics.retain(|t| {
            let ok = !t.name.is_empty() && names.insert(t.name.clone());
            if !ok {
                problems.push(format!("topic {:?}: no name, or listed twice", t.name));
            }
            ok
        });
        for t in &mut self.topics {
            let listed = t.partitions.len();
            let mut indices = std::collections::HashSet::new();
            t.partitions.retain(|p| {
                let ok = usize::try_from(p.partition).is_ok_and(|i| i < listed)
                    && indices.insert(p.partition);
                if !ok {
                    problems.push(format!(
                        "{}: partition index {} cannot be right ({listed} partitions listed)",
                        t.name, p.partition
                    ));
                }
                ok
            });
            for p in &mut t.partitions {
                if p.leader_id >= 0 && !brokers.contains(&p.leader_id) {
                    problems.push(format!(
                        "{}-{}: leader {} is not a broker of this answer",
                        t.name, p.partition, p.leader_id
                    ));
                    p.leader_id = -1;
                } else if p.leader_id < -1 {
                    p.leader_id = -1;
                }
            }
        }
        (self, problems)
    }

    fn from_response(resp: wire::MetadataResponse) -> Self {
        ClusterMetadata {
            cluster_id: resp.cluster_id,
            controller_id: resp.controller_id,
            error_code: resp.error_code,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| BrokerMetadata {
                    node_id: b.node_id,
                    host: b.host,
                    port: b.port,
                    rack: b.rack,
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
                            leader_id: p.leader_id,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes,
                            isr: p.isr_nodes,
                            offline_replicas: p.offline_replicas,
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicMetadata {
                        name: t.name.unwrap_or_default(),
                        error_code: t.error_code,
                        is_internal: t.is_internal,
                        partitions,
                    }
                })
                .collect(),
        }
    }
}

/// Whether `host` can be a host name, an IPv4 address or an IPv6 address (without
/// brackets): what an advertised listener may name, and nothing that could smuggle more
/// than a host into an address string.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        && (!host.contains(':') || host.parse::<std::net::Ipv6Addr>().is_ok())
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
    let resp: wire::MetadataResponse = conn.send(req, version).await?;
    let (md, problems) = ClusterMetadata::from_response(resp).validated();
    for problem in problems {
        tracing::warn!(broker = %conn.addr(), "ignoring part of a Metadata answer: {problem}");
    }
    Ok(md)
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
    let resp: wire::InitProducerIdResponse = conn.send(req, version).await?;
    Ok(ProducerIdGrant {
        error_code: resp.error_code,
        producer_id: resp.producer_id,
        producer_epoch: resp.producer_epoch,
        throttle_time: Duration::from_millis(resp.throttle_time_ms.max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(node_id: i32, host: &str, port: i32) -> BrokerMetadata {
        BrokerMetadata {
            node_id,
            host: host.into(),
            port,
            rack: None,
        }
    }

    fn partition(partition: i32, leader_id: i32) -> PartitionMetadata {
        PartitionMetadata {
            partition,
            error_code: 0,
            leader_id,
            leader_epoch: 0,
            replicas: vec![],
            isr: vec![],
            offline_replicas: vec![],
        }
    }

    #[test]
    fn impossible_entries_are_dropped_and_unknown_leaders_become_no_leader() {
        let md = ClusterMetadata {
            cluster_id: None,
            controller_id: 1,
            error_code: 0,
            brokers: vec![
                broker(1, "broker-1.example.com", 9092),
                broker(2, "::1", 9093),
                broker(1, "dup.example.com", 9092),
                broker(-7, "neg.example.com", 9092),
                broker(3, "bad host", 9092),
                broker(4, "evil.example.com:9092,other", 9092),
                broker(5, "ok.example.com", 70000),
                broker(6, "", 9092),
                broker(7, "1:2:3", 9092),
            ],
            topics: vec![
                TopicMetadata {
                    name: "orders".into(),
                    error_code: 0,
                    is_internal: false,
                    partitions: vec![
                        partition(0, 1),
                        partition(1, 5),
                        partition(2, 2),
                        partition(2, 1),
                        partition(-1, 1),
                        partition(50_000_000, 1),
                    ],
                },
                TopicMetadata {
                    name: "orders".into(),
                    error_code: 0,
                    is_internal: false,
                    partitions: vec![],
                },
                TopicMetadata {
                    name: String::new(),
                    error_code: 0,
                    is_internal: false,
                    partitions: vec![],
                },
            ],
        };
        let (md, problems) = md.validated();
        let ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(md.brokers[1].address(), "[::1]:9093");
        assert_eq!(md.topics.len(), 1);
        let parts: Vec<(i32, i32)> = md.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition, p.leader_id))
            .collect();
        // Broker 5 was dropped (bad port): its partition has no leader now.
        assert_eq!(parts, vec![(0, 1), (1, -1), (2, 2)]);
        assert_eq!(problems.len(), 7 + 1 + 3 + 2, "{problems:#?}");
        assert!(problems
            .iter()
            .any(|p| p.contains("partition index 50000000")));
    }
}
