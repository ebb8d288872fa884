//! Produce (API key 0) responses, v3..=12.
//!
//! This reply is on the hot path, so its decode allocates little: one `Vec` of topics,
//! one `String` and one `Vec` of partition responses per topic, and nothing per partition unless
//! the broker sent record errors or an error message.

use super::{DecodeError, Reader, Response};

/// A record the broker rejected, by its index in the batch (v8+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIndexAndErrorMessage {
    /// Index of the record in its batch.
    pub batch_index: i32,
    /// Why it was rejected, if said (invalid UTF-8 replaced).
    pub batch_index_error_message: Option<String>,
}

/// The current leader of a partition, sent with NOT_LEADER_OR_FOLLOWER and
/// FENCED_LEADER_EPOCH (KIP-951; v10+, tagged field 0 of a partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderIdAndEpoch {
    /// Leader broker id, -1 if unknown.
    pub leader_id: i32,
    /// Leader epoch, -1 if unknown.
    pub leader_epoch: i32,
}

/// The address of a broker named as a new leader (KIP-951; v10+, top-level tag 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// Broker id.
    pub node_id: i32,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: i32,
    /// Rack, if any.
    pub rack: Option<String>,
}

/// The outcome of one partition's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProduceResponse {
    /// Partition index.
    pub index: i32,
    /// Error code, 0 for none.
    pub error_code: i16,
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Broker append time if the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// Log start offset (v5+; -1 before).
    pub log_start_offset: i64,
    /// Records that made the broker drop the batch (v8+).
    pub record_errors: Vec<BatchIndexAndErrorMessage>,
    /// Summary of the record errors (v8+; invalid UTF-8 replaced).
    pub error_message: Option<String>,
    /// The partition's current leader if the broker sent it (v10+, tag 0).
    pub current_leader: Option<LeaderIdAndEpoch>,
}

/// The outcome for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProduceResponse {
    /// Topic name.
    pub name: String,
    /// One entry per partition produced to.
    pub partition_responses: Vec<PartitionProduceResponse>,
}

/// A Produce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResponse {
    /// One entry per topic produced to.
    pub responses: Vec<TopicProduceResponse>,
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// Brokers named in `current_leader` fields (v10+, tag 0; empty if absent).
    pub node_endpoints: Vec<NodeEndpoint>,
}

fn min_string(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        2
    }
}

fn min_array(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        4
    }
}

/// Smallest topic entry: name, partitions, tags.
fn min_topic_size(flexible: bool) -> usize {
    min_string(flexible) + min_array(flexible) + usize::from(flexible)
}

/// Smallest partition entry at `version`.
fn min_partition_size(version: i16, flexible: bool) -> usize {
    let log_start = if version >= 5 { 8 } else { 0 };
    let errors = if version >= 8 {
        min_array(flexible) + min_string(flexible)
    } else {
        0
    };
    4 + 2 + 8 + 8 + log_start + errors + usize::from(flexible)
}

/// Smallest record error entry: batch_index, message, tags.
fn min_record_error_size(flexible: bool) -> usize {
    4 + min_string(flexible) + usize::from(flexible)
}

/// Smallest node endpoint (only in flexible versions): id, host, port, rack, tags.
const MIN_NODE_ENDPOINT_SIZE: usize = 4 + 1 + 4 + 1 + 1;

fn read_partition(
    r: &mut Reader<'_>,
    version: i16,
) -> Result<PartitionProduceResponse, DecodeError> {
    let flexible = r.is_flexible();
    let mut p = PartitionProduceResponse {
        index: r.i32("index")?,
        error_code: r.i16("error_code")?,
        base_offset: r.i64("base_offset")?,
        log_append_time_ms: r.i64("log_append_time_ms")?,
        log_start_offset: if version >= 5 {
            r.i64("log_start_offset")?
        } else {
            -1
        },
        record_errors: Vec::new(),
        error_message: None,
        current_leader: None,
    };
    if version >= 8 {
        p.record_errors = r.array("record_errors", min_record_error_size(flexible), |r| {
            let e = BatchIndexAndErrorMessage {
                batch_index: r.i32("batch_index")?,
                batch_index_error_message: r.nullable_string_lossy("batch_index_error_message")?,
            };
            r.skip_tagged_fields("tagged_fields")?;
            Ok(e)
        })?;
        p.error_message = r.nullable_string_lossy("error_message")?;
    }
    r.tagged_fields("tagged_fields", |tag, r| {
        if tag != 0 || version < 10 {
            return Ok(false);
        }
        let leader = LeaderIdAndEpoch {
            leader_id: r.i32("current_leader.leader_id")?,
            leader_epoch: r.i32("current_leader.leader_epoch")?,
        };
        r.skip_tagged_fields("current_leader.tagged_fields")?;
        p.current_leader = Some(leader);
        Ok(true)
    })?;
    Ok(p)
}

impl ProduceResponse {
    /// Number of partition entries over all topics.
    pub fn partition_count(&self) -> usize {
        self.responses
            .iter()
            .map(|t| t.partition_responses.len())
            .sum()
    }
}

impl Response for ProduceResponse {
    const NAME: &'static str = "Produce";
    const API_KEY: i16 = 0;
    const MIN_VERSION: i16 = 3;
    const MAX_VERSION: i16 = 12;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(9);

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let flexible = r.is_flexible();
        let responses = r.array("responses", min_topic_size(flexible), |r| {
            // Borrowed first and copied once: the only per-topic String.
            let name = r.str("name")?.to_owned();
            let partition_responses = r.array(
                "partition_responses",
                min_partition_size(version, flexible),
                |r| read_partition(r, version),
            )?;
            r.skip_tagged_fields("tagged_fields")?;
            Ok(TopicProduceResponse {
                name,
                partition_responses,
            })
        })?;
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let mut node_endpoints = Vec::new();
        r.tagged_fields("tagged_fields", |tag, r| {
            if tag != 0 || version < 10 {
                return Ok(false);
            }
            node_endpoints = r.array("node_endpoints", MIN_NODE_ENDPOINT_SIZE, |r| {
                let n = NodeEndpoint {
                    node_id: r.i32("node_id")?,
                    host: r.string("host")?,
                    port: r.i32("port")?,
                    rack: r.nullable_string("rack")?,
                };
                r.skip_tagged_fields("tagged_fields")?;
                Ok(n)
            })?;
            Ok(true)
        })?;
        Ok(ProduceResponse {
            responses,
            throttle_time_ms,
            node_endpoints,
        })
    }
}
