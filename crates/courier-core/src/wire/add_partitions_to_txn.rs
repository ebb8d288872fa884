//! AddPartitionsToTxn (API key 24) responses, v0..=3: the versions a producer sends.
//!
//! v4+ (KIP-890) batches several transactions in one request and is only sent by
//! partition leaders to verify a transaction, so it is not decoded here. Transaction
//! version 2 producers send no AddPartitionsToTxn at all: Produce adds the partition.

use super::{DecodeError, Reader, Response};

/// The outcome for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPartitionsToTxnPartitionResult {
    /// Partition index.
    pub partition_index: i32,
    /// Error code, 0 for none.
    pub partition_error_code: i16,
}

/// The outcomes for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPartitionsToTxnTopicResult {
    /// Topic name.
    pub name: String,
    /// One entry per partition asked for.
    pub results_by_partition: Vec<AddPartitionsToTxnPartitionResult>,
}

/// An AddPartitionsToTxn response (v0..=3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPartitionsToTxnResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One entry per topic asked for (`ResultsByTopicV3AndBelow` in the spec).
    pub results_by_topic_v3_and_below: Vec<AddPartitionsToTxnTopicResult>,
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

impl AddPartitionsToTxnResponse {
    /// Every partition's outcome as `(topic, partition, error code)`.
    pub fn partition_errors(&self) -> impl Iterator<Item = (&str, i32, i16)> + '_ {
        self.results_by_topic_v3_and_below.iter().flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(move |p| (t.name.as_str(), p.partition_index, p.partition_error_code))
        })
    }
}

impl Response for AddPartitionsToTxnResponse {
    const NAME: &'static str = "AddPartitionsToTxn";
    const API_KEY: i16 = 24;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(3);

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, DecodeError> {
        let flexible = r.is_flexible();
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let results_by_topic_v3_and_below = r.array(
            "results_by_topic_v3_and_below",
            min_topic_size(flexible),
            |r| {
                let name = r.string("name")?;
                let results_by_partition =
                    r.array("results_by_partition", min_partition_size(flexible), |r| {
                        let p = AddPartitionsToTxnPartitionResult {
                            partition_index: r.i32("partition_index")?,
                            partition_error_code: r.i16("partition_error_code")?,
                        };
                        r.skip_tagged_fields("tagged_fields")?;
                        Ok(p)
                    })?;
                r.skip_tagged_fields("tagged_fields")?;
                Ok(AddPartitionsToTxnTopicResult {
                    name,
                    results_by_partition,
                })
            },
        )?;
        r.skip_tagged_fields("tagged_fields")?;
        Ok(AddPartitionsToTxnResponse {
            throttle_time_ms,
            results_by_topic_v3_and_below,
        })
    }
}
