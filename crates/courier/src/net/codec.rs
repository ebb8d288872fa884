//! Request framing: control-plane requests through kafka-protocol, Produce by hand so the
//! sealed record batches are chained into the write instead of copied (h2's
//! `framed_write.rs` is the model).
//!
//! A frame is `size: i32 | request header | body`. Request header v1 is
//! `api_key i16 | api_version i16 | correlation_id i32 | client_id nullable string`;
//! v2 (flexible APIs, KIP-482) appends an empty tagged-field section. The client id stays a
//! non-compact string even in v2, so that a broker can read it before it knows the version.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

use super::NetError;

/// The first Produce version with flexible encoding (KIP-482): compact strings, arrays and
/// bytes, and tagged fields.
const PRODUCE_FIRST_FLEXIBLE: i16 = 9;

/// One partition's records in a Produce request: partition index and the sealed batch
/// (`None` encodes a null record set).
pub type PartitionRecords = (i32, Option<Bytes>);

/// One topic's partitions in a Produce request, by topic name.
pub type TopicRecords = (String, Vec<PartitionRecords>);

/// What a Produce request carries, with each partition's records as the already-sealed
/// batch bytes (never copied on the way to the socket).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceRequestParts {
    /// Transactional id; `None` for a non-transactional (e.g. idempotent) producer.
    pub transactional_id: Option<String>,
    /// `acks`: 0 (no response), 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    /// How long the broker may wait for replication (`request.timeout.ms` in the Java
    /// client).
    pub timeout_ms: i32,
    /// Per topic (by name), per partition index: the records, normally one sealed
    /// RecordBatch v2. `None` encodes a null record set, which no producer should send;
    /// it exists so the encoding is complete.
    pub topics: Vec<TopicRecords>,
}

impl ProduceRequestParts {
    /// Number of record bytes (the sum of the batches).
    pub fn records_len(&self) -> usize {
        self.topics
            .iter()
            .flat_map(|(_, parts)| parts.iter())
            .map(|(_, r)| r.as_ref().map_or(0, Bytes::len))
            .sum()
    }
}

/// An encoded request: its bytes as a list of segments, written with one vectored write.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    bufs: VecDeque<Bytes>,
    remaining: usize,
}

impl Segments {
    pub(crate) fn push(&mut self, b: Bytes) {
        // `chunk()` must be non-empty while bytes remain: never keep an empty segment.
        if !b.is_empty() {
            self.remaining += b.len();
            self.bufs.push_back(b);
        }
    }

    pub(crate) fn append(&mut self, other: Segments) {
        self.remaining += other.remaining;
        self.bufs.extend(other.bufs);
    }

    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.bufs.len()
    }

    #[cfg(test)]
    pub(crate) fn segments(&self) -> impl Iterator<Item = &Bytes> {
        self.bufs.iter()
    }

    /// All bytes in one buffer (tests and debugging only: the writer never does this).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.remaining);
        for b in &self.bufs {
            v.extend_from_slice(b);
        }
        v
    }
}

impl Buf for Segments {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.bufs.front().map_or(&[], |b| &b[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the frame");
        self.remaining -= cnt;
        while cnt > 0 {
            let front = self.bufs.front_mut().expect("remaining > 0");
            if cnt >= front.len() {
                cnt -= front.len();
                self.bufs.pop_front();
            } else {
                front.advance(cnt);
                cnt = 0;
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in dst.iter_mut().zip(self.bufs.iter()) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        n
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn encode_error(version: i16, message: impl Into<String>) -> NetError {
    NetError::Encode {
        api: "Produce",
        version,
        message: message.into(),
    }
}

fn put_string(
    buf: &mut BytesMut,
    s: Option<&str>,
    flexible: bool,
    version: i16,
) -> Result<(), NetError> {
    match (s, flexible) {
        (None, true) => put_uvarint(buf, 0),
        (None, false) => buf.put_i16(-1),
        (Some(s), true) => {
            let len = u32::try_from(s.len())
                .ok()
                .filter(|&l| l < u32::MAX)
                .ok_or_else(|| encode_error(version, "string too long"))?;
            put_uvarint(buf, len + 1);
            buf.put_slice(s.as_bytes());
        }
        (Some(s), false) => {
            let len = i16::try_from(s.len()).map_err(|_| {
                encode_error(
                    version,
                    format!("string of {} bytes exceeds 32767", s.len()),
                )
            })?;
            buf.put_i16(len);
            buf.put_slice(s.as_bytes());
        }
    }
    Ok(())
}

fn put_array_len(
    buf: &mut BytesMut,
    n: usize,
    flexible: bool,
    version: i16,
) -> Result<(), NetError> {
    let n = i32::try_from(n).map_err(|_| encode_error(version, "array too long"))?;
    if flexible {
        put_uvarint(buf, n as u32 + 1);
    } else {
        buf.put_i32(n);
    }
    Ok(())
}

/// Writes a request header (v1, or v2 when `flexible`) by hand.
fn put_request_header(
    buf: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    flexible: bool,
) -> Result<(), NetError> {
    buf.put_i16(api_key as i16);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    // KIP-482: the client id is a classic nullable string in header v2 as well.
    put_string(buf, Some(client_id), false, version)?;
    if flexible {
        put_uvarint(buf, 0); // no tagged fields
    }
    Ok(())
}

/// Encodes a Produce request frame. The batches are referenced, not copied: the result
/// alternates small framing segments (all cut from one allocation) and the batch bytes.
pub(crate) fn encode_produce(
    parts: &ProduceRequestParts,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Segments, NetError> {
    if !(3..=12).contains(&version) {
        return Err(encode_error(
            version,
            "courier encodes Produce v3..=12 (topics by name)",
        ));
    }
    let flexible = version >= PRODUCE_FIRST_FLEXIBLE;
    let partitions: usize = parts.topics.iter().map(|(_, p)| p.len()).sum();
    let names: usize = parts.topics.iter().map(|(n, _)| n.len() + 8).sum();
    let mut head = BytesMut::with_capacity(
        64 + client_id.len()
            + parts.transactional_id.as_ref().map_or(0, String::len)
            + names
            + partitions * 16,
    );
    // The size is known only at the end; its 4 bytes are split off now and patched then.
    head.put_i32(0);
    let mut size_slot = head.split();

    let mut out = Segments::default();
    put_request_header(
        &mut head,
        ApiKey::Produce,
        version,
        correlation_id,
        client_id,
        flexible,
    )?;
    put_string(
        &mut head,
        parts.transactional_id.as_deref(),
        flexible,
        version,
    )?;
    head.put_i16(parts.acks);
    head.put_i32(parts.timeout_ms);
    put_array_len(&mut head, parts.topics.len(), flexible, version)?;
    for (name, partitions) in &parts.topics {
        put_string(&mut head, Some(name), flexible, version)?;
        put_array_len(&mut head, partitions.len(), flexible, version)?;
        for (index, records) in partitions {
            head.put_i32(*index);
            match records {
                None if flexible => put_uvarint(&mut head, 0),
                None => head.put_i32(-1),
                Some(batch) => {
                    let len = i32::try_from(batch.len())
                        .ok()
                        .filter(|&l| l < i32::MAX)
                        .ok_or_else(|| encode_error(version, "record batch too large"))?;
                    if flexible {
                        put_uvarint(&mut head, len as u32 + 1);
                    } else {
                        head.put_i32(len);
                    }
                    out.push(head.split().freeze());
                    out.push(batch.clone());
                }
            }
            if flexible {
                put_uvarint(&mut head, 0); // partition tagged fields
            }
        }
        if flexible {
            put_uvarint(&mut head, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut head, 0); // request tagged fields
    }
    out.push(head.freeze());

    let size = i32::try_from(out.remaining())
        .map_err(|_| encode_error(version, "request larger than 2 GiB"))?;
    size_slot[..4].copy_from_slice(&size.to_be_bytes());
    let mut framed = Segments::default();
    framed.push(size_slot.freeze());
    framed.append(out);
    Ok(framed)
}

/// Encodes a control-plane request frame with kafka-protocol (header and body).
pub(crate) fn encode_request<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    api: &'static str,
) -> Result<Bytes, NetError> {
    // kafka-protocol reports errors as `anyhow::Error`; keep only their text (`{:#}` has
    // the whole cause chain) so our errors do not expose another crate's type.
    let err = |e: &dyn std::fmt::Display| NetError::Encode {
        api,
        version,
        message: format!("{e:#}"),
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = R::header_version(version);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| err(&e))?;
    req.encode(&mut buf, version).map_err(|e| err(&e))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| NetError::Encode {
        api,
        version,
        message: "request larger than 2 GiB".into(),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Whether a request of type `R` at `version` uses header v2.
#[cfg(test)]
pub(crate) fn is_flexible_header<R: kafka_protocol::protocol::HeaderVersion>(version: i16) -> bool {
    R::header_version(version) >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};

    fn batch(tag: u8, len: usize) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| tag.wrapping_add(i as u8))
                .collect::<Vec<u8>>(),
        )
    }

    fn sample_parts() -> ProduceRequestParts {
        ProduceRequestParts {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topics: vec![
                (
                    "orders".into(),
                    vec![(0, Some(batch(1, 80))), (3, Some(batch(2, 300)))],
                ),
                ("audit-log".into(), vec![(7, None), (1, Some(batch(3, 1)))]),
                ("empty-list".into(), vec![]),
            ],
        }
    }

    /// The same request through kafka-protocol's generated encoder.
    fn reference_encoding(
        parts: &ProduceRequestParts,
        version: i16,
        cid: i32,
        client: &str,
    ) -> Vec<u8> {
        let req = ProduceRequest::default()
            .with_transactional_id(
                parts
                    .transactional_id
                    .clone()
                    .map(|t| TransactionalId(StrBytes::from_string(t))),
            )
            .with_acks(parts.acks)
            .with_timeout_ms(parts.timeout_ms)
            .with_topic_data(
                parts
                    .topics
                    .iter()
                    .map(|(name, ps)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(name.clone())))
                            .with_partition_data(
                                ps.iter()
                                    .map(|(i, r)| {
                                        PartitionProduceData::default()
                                            .with_index(*i)
                                            .with_records(r.clone())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        encode_request(&req, version, cid, client, "Produce")
            .unwrap()
            .to_vec()
    }

    #[test]
    fn hand_written_produce_is_byte_identical_to_kafka_protocol_for_v3_to_v12() {
        let mut parts = sample_parts();
        for version in 3..=12 {
            for txn in [None, Some("txn-1".to_string())] {
                parts.transactional_id = txn;
                let ours = encode_produce(
                    &parts,
                    version,
                    0x0102_0304 + version as i32,
                    "courier-test",
                )
                .unwrap()
                .to_vec();
                let theirs = reference_encoding(
                    &parts,
                    version,
                    0x0102_0304 + version as i32,
                    "courier-test",
                );
                assert_eq!(ours, theirs, "Produce v{version} differs");
                assert_eq!(
                    is_flexible_header::<ProduceRequest>(version),
                    version >= PRODUCE_FIRST_FLEXIBLE
                );
            }
        }
    }

    #[test]
    fn produce_with_no_topics_and_long_client_id_matches_kafka_protocol() {
        let parts = ProduceRequestParts {
            transactional_id: None,
            acks: 0,
            timeout_ms: 1,
            topics: vec![],
        };
        let client = "c".repeat(300); // > 127: two-byte lengths would show a varint bug
        let long_topic = ProduceRequestParts {
            topics: vec![("t".repeat(200), vec![(0, Some(batch(9, 200)))])],
            ..parts.clone()
        };
        for version in 3..=12 {
            for p in [&parts, &long_topic] {
                assert_eq!(
                    encode_produce(p, version, -5, &client).unwrap().to_vec(),
                    reference_encoding(p, version, -5, &client),
                    "v{version}"
                );
            }
        }
    }

    #[test]
    fn produce_frame_references_the_batches_instead_of_copying_them() {
        let parts = sample_parts();
        let frame = encode_produce(&parts, 9, 1, "c").unwrap();
        let batches: Vec<&Bytes> = parts
            .topics
            .iter()
            .flat_map(|(_, p)| p.iter().filter_map(|(_, r)| r.as_ref()))
            .collect();
        for b in batches {
            assert!(
                frame
                    .segments()
                    .any(|s| s.as_ptr() == b.as_ptr() && s.len() == b.len()),
                "batch of {} bytes was copied",
                b.len()
            );
        }
        // size slot + (framing, batch) per non-null batch + the tail.
        assert_eq!(frame.segment_count(), 1 + 2 * 3 + 1);
    }

    #[test]
    fn produce_versions_outside_3_to_12_are_refused() {
        let parts = sample_parts();
        assert!(matches!(
            encode_produce(&parts, 2, 1, "c"),
            Err(NetError::Encode { version: 2, .. })
        ));
        assert!(encode_produce(&parts, 13, 1, "c").is_err());
    }

    #[test]
    fn segments_advance_across_segment_boundaries() {
        let mut s = Segments::default();
        s.push(Bytes::from_static(b"abc"));
        s.push(Bytes::new());
        s.push(Bytes::from_static(b"defg"));
        assert_eq!(s.remaining(), 7);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(s.chunks_vectored(&mut slices), 2);
        s.advance(4);
        assert_eq!(s.chunk(), b"efg");
        s.advance(3);
        assert_eq!(s.remaining(), 0);
        assert_eq!(s.chunk(), b"");
    }
}
