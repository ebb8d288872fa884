//! Metadata (API key 3) responses, v4..=13.

use super::{DecodeError, Reader, Response};

/// A broker in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponseBroker {
    /// Broker id.
    pub node_id: i32,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: i32,
    /// Rack, or `None` if the broker has none.
    pub rack: Option<String>,
}

/// A partition in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponsePartition {
    /// Partition error code, 0 for none.
    pub error_code: i16,
    /// Partition index.
    pub partition_index: i32,
    /// Leader broker id, -1 for none.
    pub leader_id: i32,
    /// Leader epoch (v7+; -1 before).
    pub leader_epoch: i32,
    /// All replicas.
    pub replica_nodes: Vec<i32>,
    /// In-sync replicas.
    pub isr_nodes: Vec<i32>,
    /// Offline replicas (v5+; empty before).
    pub offline_replicas: Vec<i32>,
}

/// A topic in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponseTopic {
    /// Topic error code, 0 for none.
    pub error_code: i16,
    /// Topic name; nullable from v12 (a topic asked for by id only).
    pub name: Option<String>,
    /// Topic id (v10+; all zero before).
    pub topic_id: [u8; 16],
    /// Whether the topic is internal.
    pub is_internal: bool,
    /// The topic's partitions.
    pub partitions: Vec<MetadataResponsePartition>,
    /// Bitfield of the operations the client may do on the topic (v8+;
    /// `i32::MIN` when not asked for or before v8).
    pub topic_authorized_operations: i32,
}

/// A Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// The brokers of the cluster.
    pub brokers: Vec<MetadataResponseBroker>,
    /// Cluster id, if the broker has one.
    pub cluster_id: Option<String>,
    /// Controller id, -1 if unknown.
    pub controller_id: i32,
    /// The topics asked for (or all topics).
    pub topics: Vec<MetadataResponseTopic>,
    /// Bitfield of cluster operations the client may do (v8..=10 only; `i32::MIN`
    /// otherwise: KIP-430 moved it to DescribeCluster in v11).
    pub cluster_authorized_operations: i32,
    /// Top-level error code (v13+, e.g. REBOOTSTRAP_REQUIRED; 0 before).
    pub error_code: i16,
}

/// Value of the authorized-operations fields when they were not sent.
const NO_AUTHORIZED_OPERATIONS: i32 = i32::MIN;

/// Smallest encoding of one string: a null or empty compact (1) or classic (2) string.
fn min_string(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        2
    }
}

/// Smallest encoding of one array: an empty compact (1) or classic (4) array.
fn min_array(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        4
    }
}

/// Smallest broker entry: node_id, host, port, rack, tags.
fn min_broker_size(flexible: bool) -> usize {
    4 + min_string(flexible) + 4 + min_string(flexible) + usize::from(flexible)
}

/// Smallest partition entry at `version`.
fn min_partition_size(version: i16, flexible: bool) -> usize {
    let epoch = if version >= 7 { 4 } else { 0 };
    let arrays = if version >= 5 { 3 } else { 2 };
    2 + 4 + 4 + epoch + arrays * min_array(flexible) + usize::from(flexible)
}

/// Smallest topic entry at `version`.
fn min_topic_size(version: i16, flexible: bool) -> usize {
    let topic_id = if version >= 10 { 16 } else { 0 };
    let operations = if version >= 8 { 4 } else { 0 };
    2 + min_string(flexible)
        + topic_id
        + 1
        + min_array(flexible)
        + operations
        + usize::from(flexible)
}

fn read_partition(
    r: &mut Reader<'_>,
    version: i16,
) -> Result<MetadataResponsePartition, DecodeError> {
    let p = MetadataResponsePartition {
        error_code: r.i16("error_code")?,
        partition_index: r.i32("partition_index")?,
        leader_id: r.i32("leader_id")?,
        leader_epoch: if version >= 7 {
            r.i32("leader_epoch")?
        } else {
            -1
        },
        replica_nodes: r.i32_array("replica_nodes")?,
        isr_nodes: r.i32_array("isr_nodes")?,
        offline_replicas: if version >= 5 {
            r.i32_array("offline_replicas")?
        } else {
            Vec::new()
        },
    };
    r.skip_tagged_fields("tagged_fields")?;
    Ok(p)
}

fn read_topic(r: &mut Reader<'_>, version: i16) -> Result<MetadataResponseTopic, DecodeError> {
    let flexible = r.is_flexible();
    let error_code = r.i16("error_code")?;
    let name = if version >= 12 {
        r.nullable_string("name")?
    } else {
        Some(r.string("name")?)
    };
    let topic_id = if version >= 10 {
        r.uuid("topic_id")?
    } else {
        [0; 16]
    };
    let is_internal = r.bool("is_internal")?;
    let partitions = r.array("partitions", min_partition_size(version, flexible), |r| {
        read_partition(r, version)
    })?;
    let topic_authorized_operations = if version >= 8 {
        r.i32("topic_authorized_operations")?
    } else {
        NO_AUTHORIZED_OPERATIONS
    };
    r.skip_tagged_fields("tagged_fields")?;
    Ok(MetadataResponseTopic {
        error_code,
        name,
        topic_id,
        is_internal,
        partitions,
        topic_authorized_operations,
    })
}

impl MetadataResponse {
    /// The broker with id `node_id`, if listed.
    pub fn broker(&self, node_id: i32) -> Option<&MetadataResponseBroker> {
        self.brokers.iter().find(|b| b.node_id == node_id)
    }

    /// The topic named `name`, if listed.
    pub fn topic(&self, name: &str) -> Option<&MetadataResponseTopic> {
        self.topics.iter().find(|t| t.name.as_deref() == Some(name))
    }
}

impl Response for MetadataResponse {
    const NAME: &'static str = "Metadata";
    const API_KEY: i16 = 3;
    const MIN_VERSION: i16 = 4;
    const MAX_VERSION: i16 = 13;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(9);

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let flexible = r.is_flexible();
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let brokers = r.array("brokers", min_broker_size(flexible), |r| {
            let b = MetadataResponseBroker {
                node_id: r.i32("node_id")?,
                host: r.string("host")?,
                port: r.i32("port")?,
                rack: r.nullable_string("rack")?,
            };
            r.skip_tagged_fields("tagged_fields")?;
            Ok(b)
        })?;
        let cluster_id = r.nullable_string("cluster_id")?;
        let controller_id = r.i32("controller_id")?;
        let topics = r.array("topics", min_topic_size(version, flexible), |r| {
            read_topic(r, version)
        })?;
        let cluster_authorized_operations = if (8..=10).contains(&version) {
            r.i32("cluster_authorized_operations")?
        } else {
            NO_AUTHORIZED_OPERATIONS
        };
        let error_code = if version >= 13 {
            r.i16("error_code")?
        } else {
            0
        };
        r.skip_tagged_fields("tagged_fields")?;
        Ok(MetadataResponse {
            throttle_time_ms,
            brokers,
            cluster_id,
            controller_id,
            topics,
            cluster_authorized_operations,
            error_code,
        })
    }
}
