//! TxnOffsetCommit (API key 28) responses, v0..=5.
//!
//! Sent to the consumer group's coordinator after AddOffsetsToTxn: the offsets become
//! visible to the group only when the transaction commits. v3 (KIP-447) added the
//! group's generation and member id to the request, so a zombie whose consumer lost its
//! partitions is told ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID.

use super::{DecodeError, Reader, Response};

/// The outcome for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOffsetCommitResponsePartition {
    /// Partition index.
    pub partition_index: i32,
    /// Error code, 0 for none.
    pub error_code: i16,
}

/// The outcomes for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitResponseTopic {
    /// Topic name.
    pub name: String,
    /// One entry per partition whose offset was sent.
    pub partitions: Vec<TxnOffsetCommitResponsePartition>,
}

/// A TxnOffsetCommit response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommitResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One entry per topic whose offsets were sent.
    pub topics: Vec<TxnOffsetCommitResponseTopic>,
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

/// Smallest partition entry: index, error code, tags.
fn min_partition_size(flexible: bool) -> usize {
    4 + 2 + usize::from(flexible)
}

impl TxnOffsetCommitResponse {
    /// Every partition's outcome as `(topic, partition, error code)`.
    pub fn partition_errors(&self) -> impl Iterator<Item = (&str, i32, i16)> + '_ {
        self.topics.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.as_str(), p.partition_index, p.error_code))
        })
    }
}

impl Response for TxnOffsetCommitResponse {
    const NAME: &'static str = "TxnOffsetCommit";
    const API_KEY: i16 = 28;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(3);

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, DecodeError> {
        let flexible = r.is_flexible();
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let topics = r.array("topics", min_topic_size(flexible), |r| {
            let name = r.string("name")?;
            let partitions = r.array("partitions", min_partition_size(flexible), |r| {
                let p = TxnOffsetCommitResponsePartition {
                    partition_index: r.i32("partition_index")?,
                    error_code: r.i16("error_code")?,
                };
                r.skip_tagged_fields("tagged_fields")?;
                Ok(p)
            })?;
            r.skip_tagged_fields("tagged_fields")?;
            Ok(TxnOffsetCommitResponseTopic { name, partitions })
        })?;
        r.skip_tagged_fields("tagged_fields")?;
        Ok(TxnOffsetCommitResponse {
            throttle_time_ms,
            topics,
        })
    }
}
