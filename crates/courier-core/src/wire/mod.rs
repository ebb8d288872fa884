//! Decoders for the broker replies the producer reads, written for hostile input.
//!
//! Everything from the network is treated as hostile: every length, count and index is
//! checked before it is used, a bad reply is a [`DecodeError`] (never a panic), and the
//! memory a decode allocates is bounded by the bytes that arrived.
//!
//! **Memory bound.** An array may declare at most `bytes available / smallest entry
//! encoding` entries, checked before its `Vec` is allocated, and a string or bytes field
//! at most the bytes available, where *available* leaves out the bytes that later
//! entries of the enclosing arrays need at least (so nested arrays cannot all reserve
//! against the same bytes). Every byte of heap is therefore paid for by frame bytes, at
//! the rate of the struct with the most memory per smallest wire encoding: a Produce
//! topic in a flexible version (48 bytes of `String` and `Vec` headers for a 3-byte
//! entry; the topic entries of AddPartitionsToTxn and TxnOffsetCommit have the same
//! shape), then a DescribeConfigs synonym (56 bytes for 4). So a decode allocates at
//! most [`MAX_HEAP_FACTOR`] (16) times the body size, plus a constant for the error
//! path; `tests/wire_memory.rs` measures it with a counting allocator.
//!
//! **Why courier decodes replies itself** (issue 12). The `kafka-protocol` crate (0.18)
//! sizes every array with `Vec::with_capacity(n)` from the count on the wire
//! (`protocol/types.rs`), so a 9-byte ApiVersions reply declaring 2^31-1 entries asked
//! for 64 GiB and aborted the process; the same held for Metadata, Produce and
//! DescribeConfigs. Its decoders cannot be bounded from outside: a guard in front of
//! them would have to walk each response's schema to find the counts, which is a
//! decoder already. So the replies the producer reads are decoded here (about as much
//! code as the guard would be): the seven of the idempotent producer, and the five that
//! transactions add (FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn; issue 15), and kafka-protocol stays for encoding requests,
//! where courier controls the input. The proptests in `tests/wire_differential.rs` check
//! these decoders against kafka-protocol's encoders at every version, so both agree on
//! every well-formed reply.
//!
//! Requests are still encoded elsewhere; this module only reads. It does no I/O: a
//! caller reads a whole frame (after the 4-byte size prefix), then
//! [`ResponseHeader::decode`] splits off the header and a [`Response`] type decodes the
//! body at the version that was requested. [`decode_response`] does both.
//!
//! Field names and version ranges follow the Kafka message specs
//! (`clients/src/main/resources/common/message/*Response.json`).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo
)]

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod api_versions;
mod describe_configs;
mod end_txn;
mod error;
mod find_coordinator;
mod init_producer_id;
mod metadata;
mod produce;
mod reader;
mod sasl;
mod txn_offset_commit;

pub use add_offsets_to_txn::AddOffsetsToTxnResponse;
pub use add_partitions_to_txn::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnTopicResult,
};
pub use api_versions::{ApiVersion, ApiVersionsResponse, FinalizedFeatureKey, SupportedFeatureKey};
pub use describe_configs::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
pub use end_txn::EndTxnResponse;
pub use error::{DecodeError, DecodeErrorKind};
pub use find_coordinator::{
    Coordinator, FindCoordinatorResponse, KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION,
};
pub use init_producer_id::InitProducerIdResponse;
pub use metadata::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
pub use produce::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    ProduceResponse, TopicProduceResponse,
};
pub use reader::Reader;
pub use sasl::{SaslAuthenticateResponse, SaslHandshakeResponse};
pub use txn_offset_commit::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};

/// Upper bound on heap bytes a decode allocates per body byte (see the module docs);
/// `tests/wire_memory.rs` holds every decoder to it.
pub const MAX_HEAP_FACTOR: usize = 16;

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// A broker reply body that this module can decode.
///
/// Implementations read the fields of one Kafka `*Response.json` spec for the versions
/// in `MIN_VERSION..=MAX_VERSION`. More replies are added by implementing
/// [`Response::read`] and the constants.
pub trait Response: Sized {
    /// The message name used in errors, e.g. `"Metadata"`.
    const NAME: &'static str;
    /// The API key of the request this answers.
    const API_KEY: i16;
    /// Lowest version this decoder reads.
    const MIN_VERSION: i16;
    /// Highest version this decoder reads.
    const MAX_VERSION: i16;
    /// First flexible version (compact encodings and tagged fields), if any.
    const FIRST_FLEXIBLE_VERSION: Option<i16>;

    /// Reads the body's fields from `r`, which is set to the version's encodings.
    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError>;

    /// Whether `version` of this body uses the flexible encodings.
    fn is_flexible(version: i16) -> bool {
        Self::FIRST_FLEXIBLE_VERSION.is_some_and(|first| version >= first)
    }

    /// The response header version that comes before a body of `version`: 1 (with
    /// tagged fields) for flexible versions, else 0.
    fn header_version(version: i16) -> i16 {
        i16::from(Self::is_flexible(version))
    }

    /// Decodes a whole body (the frame after its response header) at `version`. Bytes
    /// left over after the last field are an error.
    fn decode(body: &[u8], version: i16) -> Result<Self, DecodeError> {
        if !(Self::MIN_VERSION..=Self::MAX_VERSION).contains(&version) {
            return Err(DecodeError::new(
                DecodeErrorKind::UnsupportedVersion {
                    version,
                    min: Self::MIN_VERSION,
                    max: Self::MAX_VERSION,
                },
                0,
            )
            .in_message(Self::NAME, version));
        }
        let mut r = Reader::new(body, Self::is_flexible(version));
        Self::read(&mut r, version)
            .and_then(|v| r.finish().map(|()| v))
            .map_err(|e| e.in_message(Self::NAME, version))
    }
}

/// The header in front of every response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
}

impl ResponseHeader {
    /// Splits `frame` (a reply after its size prefix) into the header and the body.
    /// Header v0 is the correlation id alone; v1 adds a tagged-field section, whose
    /// fields are checked and skipped since no tag is defined for it.
    pub fn decode(frame: &[u8], header_version: i16) -> Result<(Self, &[u8]), DecodeError> {
        let name = "ResponseHeader";
        if !(0..=1).contains(&header_version) {
            return Err(DecodeError::new(
                DecodeErrorKind::UnsupportedVersion {
                    version: header_version,
                    min: 0,
                    max: 1,
                },
                0,
            )
            .in_message(name, header_version));
        }
        let mut r = Reader::new(frame, header_version >= 1);
        let correlation_id = r
            .i32("correlation_id")
            .and_then(|id| r.skip_tagged_fields("tagged_fields").map(|()| id))
            .map_err(|e| e.in_message(name, header_version))?;
        Ok((ResponseHeader { correlation_id }, r.rest()))
    }
}

/// Decodes a whole reply frame (after its size prefix): the header of the right version
/// for `R` at `version`, then the body.
pub fn decode_response<R: Response>(
    frame: &[u8],
    version: i16,
) -> Result<(ResponseHeader, R), DecodeError> {
    let (header, body) = ResponseHeader::decode(frame, R::header_version(version))?;
    // Body offsets in errors count from the frame start, like header ones.
    let header_len = frame.len().saturating_sub(body.len());
    let response = R::decode(body, version).map_err(|e| e.shifted(header_len))?;
    Ok((header, response))
}
