//! A hardened RecordBatch v2 decoder for tests and tools (dumping, verifying what the
//! producer wrote, reading fixtures from Kafka's Java client).
//!
//! Untrusted input yields a [`DecodeError`], never a panic, and allocation is bounded by the
//! input length and [`DecodeOptions::max_decompressed_size`]: counts and lengths read from
//! the data are only trusted once the bytes behind them have been seen.

use bytes::Bytes;

use crate::batch::{
    offset, ATTR_CODEC_MASK, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL, MAGIC_V2,
    RECORD_BATCH_OVERHEAD,
};
use crate::compression::{self, Codec, DecompressError};
use crate::sequence;
use crate::varint::{read_varint, read_varlong, VarintError};

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the batch does.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The length field is too small to hold a v2 header.
    #[error("batch length {0} is smaller than the v2 header")]
    InvalidLength(i32),
    /// Not a magic-2 batch (v0/v1 message sets are not supported).
    #[error("unsupported magic {0}: only v2 record batches are decoded")]
    UnsupportedMagic(i8),
    /// The stored CRC32C does not match the bytes.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Attribute bits 0-2 hold an id Kafka does not define (5-7).
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    /// The records could not be decompressed.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// `recordCount` is negative.
    #[error("invalid record count {0}")]
    InvalidRecordCount(i32),
    /// A record is malformed.
    #[error("record {index}: {reason}")]
    MalformedRecord {
        /// Index of the record in its batch.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Bytes remain after the last record (or after the batch, for an exact-length API).
    #[error("{extra} unexpected bytes after the last record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// Limits and checks applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest records section a compressed batch may inflate to.
    pub max_decompressed_size: usize,
    /// Whether to verify the CRC32C (tools dumping corrupt data may turn it off).
    pub verify_crc: bool,
}

impl DecodeOptions {
    /// 64 MiB: well above any batch a broker accepts with default limits (1 MiB
    /// `max.message.bytes`) yet small enough that hostile input cannot exhaust memory.
    pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 64 * 1024 * 1024;
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_decompressed_size: Self::DEFAULT_MAX_DECOMPRESSED_SIZE,
            verify_crc: true,
        }
    }
}

/// How record timestamps in a batch are to be read (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer (what courier writes).
    CreateTime,
    /// Set by the broker on append; every record's timestamp is the batch's max timestamp.
    LogAppendTime,
}

/// The fixed 61-byte header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (0 as a producer writes it).
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker, -1 from a producer.
    pub partition_leader_epoch: i32,
    /// Always 2 here.
    pub magic: i8,
    /// Stored CRC32C.
    pub crc: u32,
    /// Raw attributes.
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, -1 without idempotence.
    pub producer_id: i64,
    /// Producer epoch, -1 without idempotence.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 without idempotence.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
    /// Codec from attributes bits 0-2.
    pub codec: Codec,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

impl BatchHeader {
    /// Parses the header of the batch at the start of `input` and checks that the whole
    /// batch (per its length field) is present. Does not verify the CRC.
    pub fn parse(input: &[u8]) -> Result<BatchHeader, DecodeError> {
        if input.len() < RECORD_BATCH_OVERHEAD {
            return Err(DecodeError::Truncated {
                needed: RECORD_BATCH_OVERHEAD,
                available: input.len(),
            });
        }
        let magic = input[offset::MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(DecodeError::UnsupportedMagic(magic));
        }
        let batch_length = be_i32(input, offset::LENGTH);
        if batch_length < (RECORD_BATCH_OVERHEAD - offset::PARTITION_LEADER_EPOCH) as i32 {
            return Err(DecodeError::InvalidLength(batch_length));
        }
        let total = batch_length as usize + offset::PARTITION_LEADER_EPOCH;
        if input.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                available: input.len(),
            });
        }
        let attributes = be_i16(input, offset::ATTRIBUTES);
        let codec_id = (attributes & ATTR_CODEC_MASK) as u8;
        let codec = Codec::from_id(codec_id).ok_or(DecodeError::UnknownCodec(codec_id))?;
        Ok(BatchHeader {
            base_offset: be_i64(input, offset::BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(input, offset::PARTITION_LEADER_EPOCH),
            magic,
            crc: be_i32(input, offset::CRC) as u32,
            attributes,
            last_offset_delta: be_i32(input, offset::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(input, offset::BASE_TIMESTAMP),
            max_timestamp: be_i64(input, offset::MAX_TIMESTAMP),
            producer_id: be_i64(input, offset::PRODUCER_ID),
            producer_epoch: be_i16(input, offset::PRODUCER_EPOCH),
            base_sequence: be_i32(input, offset::BASE_SEQUENCE),
            record_count: be_i32(input, offset::RECORD_COUNT),
            codec,
        })
    }

    /// Bytes the whole batch occupies, header included.
    pub fn total_size(&self) -> usize {
        self.batch_length as usize + offset::PARTITION_LEADER_EPOCH
    }

    /// Timestamp type from attributes bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attributes bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Attributes bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Sequence of the last record, wrapping after `i32::MAX` (-1 without a sequence).
    pub fn last_sequence(&self) -> i32 {
        sequence::last_sequence(self.base_sequence, self.record_count)
    }
}

/// A record header as decoded. The name is kept as bytes: Kafka writes UTF-8 but does not
/// validate it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecodedHeader {
    /// Header name.
    pub name: Bytes,
    /// Header value, `None` when null.
    pub value: Option<Bytes>,
}

/// A record as decoded, with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Base offset plus offset delta.
    pub offset: i64,
    /// Offset delta as stored.
    pub offset_delta: i32,
    /// Absolute timestamp (the batch max timestamp under LogAppendTime, like Kafka).
    pub timestamp: i64,
    /// Timestamp delta as stored.
    pub timestamp_delta: i64,
    /// Record attributes byte (unused in v2, normally 0).
    pub attributes: i8,
    /// Key, `None` when null.
    pub key: Option<Bytes>,
    /// Value, `None` when null.
    pub value: Option<Bytes>,
    /// Headers in wire order.
    pub headers: Vec<DecodedHeader>,
}

/// A batch with its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// Header fields.
    pub header: BatchHeader,
    /// The records in order.
    pub records: Vec<DecodedRecord>,
}

/// Decodes the batch at the start of `input` with [`DecodeOptions::default`], returning it
/// and the number of bytes it occupied.
pub fn decode_batch(input: &[u8]) -> Result<(DecodedBatch, usize), DecodeError> {
    decode_batch_with(input, &DecodeOptions::default())
}

/// Decodes every batch in `input` (a partition's `records` field); fails on a partial batch.
pub fn decode_batches(input: &[u8]) -> Result<Vec<DecodedBatch>, DecodeError> {
    let mut batches = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (batch, used) = decode_batch(rest)?;
        batches.push(batch);
        rest = &rest[used..];
    }
    Ok(batches)
}

/// Decodes the batch at the start of `input`, returning it and the bytes it occupied.
pub fn decode_batch_with(
    input: &[u8],
    options: &DecodeOptions,
) -> Result<(DecodedBatch, usize), DecodeError> {
    let header = BatchHeader::parse(input)?;
    let total = header.total_size();
    let batch = &input[..total];
    if options.verify_crc {
        let computed = crc32c::crc32c(&batch[offset::ATTRIBUTES..]);
        if computed != header.crc {
            return Err(DecodeError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
    }
    if header.record_count < 0 {
        return Err(DecodeError::InvalidRecordCount(header.record_count));
    }
    let stored = &batch[RECORD_BATCH_OVERHEAD..];
    let records = match header.codec {
        Codec::None => Bytes::copy_from_slice(stored),
        codec => {
            let mut out = Vec::new();
            compression::decompress(codec, stored, options.max_decompressed_size, &mut out)?;
            Bytes::from(out)
        }
    };
    let records = decode_records(&header, &records)?;
    Ok((DecodedBatch { header, records }, total))
}

/// Smallest possible encoded record: length, attributes, timestamp delta, offset delta,
/// key length, value length and header count, one byte each.
const MIN_RECORD_SIZE: usize = 7;

fn decode_records(header: &BatchHeader, data: &Bytes) -> Result<Vec<DecodedRecord>, DecodeError> {
    let count = header.record_count as usize;
    // A count the data cannot back must not size the allocation.
    let mut records = Vec::with_capacity(count.min(data.len() / MIN_RECORD_SIZE));
    let mut pos = 0usize;
    for index in 0..count {
        let fail = |reason: &'static str| DecodeError::MalformedRecord { index, reason };
        let (len, n) = read_varint(&data[pos..]).map_err(|e| fail(varint_reason(e)))?;
        pos += n;
        if len < 0 {
            return Err(fail("negative record length"));
        }
        let len = len as usize;
        if len > data.len() - pos {
            return Err(fail("record length runs past the batch"));
        }
        let end = pos + len;
        let mut cursor = Cursor {
            data,
            pos,
            end,
            index,
        };
        let attributes = cursor.byte()? as i8;
        let timestamp_delta = cursor.varlong()?;
        let offset_delta = cursor.varint()?;
        let key = cursor.nullable_bytes("invalid key length")?;
        let value = cursor.nullable_bytes("invalid value length")?;
        let header_count = cursor.varint()?;
        if header_count < 0 {
            return Err(fail("negative header count"));
        }
        // Each header takes at least two bytes (name length and value length).
        let mut headers = Vec::with_capacity((header_count as usize).min(cursor.remaining() / 2));
        for _ in 0..header_count {
            let name_len = cursor.varint()?;
            if name_len < 0 {
                return Err(fail("negative header name length"));
            }
            let name = cursor.take(name_len as usize)?;
            let value = cursor.nullable_bytes("invalid header value length")?;
            headers.push(DecodedHeader { name, value });
        }
        if cursor.pos != end {
            return Err(fail("record length disagrees with its fields"));
        }
        pos = end;
        let timestamp = match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.wrapping_add(timestamp_delta),
        };
        records.push(DecodedRecord {
            offset: header.base_offset.wrapping_add(offset_delta as i64),
            offset_delta,
            timestamp,
            timestamp_delta,
            attributes,
            key,
            value,
            headers,
        });
    }
    if pos != data.len() {
        return Err(DecodeError::TrailingBytes {
            extra: data.len() - pos,
        });
    }
    Ok(records)
}

fn varint_reason(e: VarintError) -> &'static str {
    match e {
        VarintError::Truncated => "truncated varint",
        VarintError::Overflow => "varint too long",
    }
}

/// Reads fields of one record, never past its declared length.
struct Cursor<'a> {
    data: &'a Bytes,
    pos: usize,
    end: usize,
    index: usize,
}

impl Cursor<'_> {
    fn fail(&self, reason: &'static str) -> DecodeError {
        DecodeError::MalformedRecord {
            index: self.index,
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        if self.pos >= self.end {
            return Err(self.fail("record ends before its attributes"));
        }
        let b = self.data[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<i32, DecodeError> {
        let (v, n) =
            read_varint(&self.data[self.pos..self.end]).map_err(|e| self.fail(varint_reason(e)))?;
        self.pos += n;
        Ok(v)
    }

    fn varlong(&mut self) -> Result<i64, DecodeError> {
        let (v, n) = read_varlong(&self.data[self.pos..self.end])
            .map_err(|e| self.fail(varint_reason(e)))?;
        self.pos += n;
        Ok(v)
    }

    fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.remaining() {
            return Err(self.fail("field runs past the end of the record"));
        }
        let b = self.data.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }

    fn nullable_bytes(&mut self, invalid: &'static str) -> Result<Option<Bytes>, DecodeError> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < -1 => Err(self.fail(invalid)),
            len => self.take(len as usize).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_batch, ProducerFields, RecordRef};
    use crate::compression::Compression;

    fn sample_batch(compression: Compression) -> Vec<u8> {
        let headers: &[(&str, Option<&[u8]>)] = &[("trace", Some(b"abc")), ("null", None)];
        let records: Vec<RecordRef<'_>> = (0..40)
            .map(|i| RecordRef {
                timestamp_ms: 1_700_000_000_000 + i,
                key: if i % 3 == 0 { None } else { Some(b"order-1") },
                value: if i % 7 == 0 {
                    None
                } else {
                    Some(b"{\"amount\":19.99,\"currency\":\"EUR\"}")
                },
                headers: if i % 2 == 0 { headers } else { &[] },
            })
            .collect();
        encode_batch(
            &records,
            ProducerFields::idempotent(77, 3, 1000),
            compression,
        )
        .unwrap()
        .bytes()
        .to_vec()
    }

    #[test]
    fn decodes_every_field_of_an_encoded_batch() {
        for compression in [
            Compression::None,
            Compression::Lz4,
            Compression::Snappy,
            Compression::gzip(),
        ] {
            let bytes = sample_batch(compression);
            let (batch, used) = decode_batch(&bytes).unwrap();
            assert_eq!(used, bytes.len());
            let h = batch.header;
            assert_eq!(h.codec, compression.codec());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (77, 3, 1000)
            );
            assert_eq!(h.last_sequence(), 1039);
            assert_eq!(h.record_count, 40);
            assert_eq!(h.last_offset_delta, 39);
            assert_eq!(h.partition_leader_epoch, -1);
            assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
            assert!(!h.is_transactional() && !h.is_control());
            assert_eq!(h.base_timestamp, 1_700_000_000_000);
            assert_eq!(h.max_timestamp, 1_700_000_000_039);
            let r = &batch.records[6];
            assert_eq!(r.offset, 6);
            assert_eq!(r.timestamp, 1_700_000_000_006);
            assert_eq!(r.key, None);
            assert_eq!(r.headers.len(), 2);
            assert_eq!(&r.headers[0].name[..], b"trace");
            assert_eq!(r.headers[0].value.as_deref(), Some(&b"abc"[..]));
            assert_eq!(r.headers[1].value, None);
            assert_eq!(batch.records[7].value, None);
            assert_eq!(batch.records[7].key.as_deref(), Some(&b"order-1"[..]));
        }
    }

    #[test]
    fn flipped_bit_anywhere_after_the_crc_is_detected() {
        let bytes = sample_batch(Compression::Lz4);
        for i in offset::ATTRIBUTES..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode_batch(&bad).is_err(), "flip at {i} accepted");
        }
        // partitionLeaderEpoch is outside the CRC: the leader stamps it freely.
        let mut stamped = bytes.clone();
        stamped[offset::PARTITION_LEADER_EPOCH..offset::MAGIC].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(
            decode_batch(&stamped)
                .unwrap()
                .0
                .header
                .partition_leader_epoch,
            5
        );
    }

    #[test]
    fn crc_mismatch_reports_both_values() {
        let mut bytes = sample_batch(Compression::None);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        match decode_batch(&bytes) {
            Err(DecodeError::CrcMismatch { stored, computed }) => assert_ne!(stored, computed),
            other => panic!("expected a CRC mismatch, got {other:?}"),
        }
        let lenient = DecodeOptions {
            verify_crc: false,
            ..DecodeOptions::default()
        };
        assert!(!matches!(
            decode_batch_with(&bytes, &lenient),
            Err(DecodeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for compression in [Compression::None, Compression::Snappy] {
            let bytes = sample_batch(compression);
            for cut in 0..bytes.len() {
                assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn wrong_magic_and_tiny_length_are_rejected() {
        let mut bytes = sample_batch(Compression::None);
        bytes[offset::MAGIC] = 1;
        assert_eq!(
            decode_batch(&bytes).unwrap_err(),
            DecodeError::UnsupportedMagic(1)
        );
        let mut bytes = sample_batch(Compression::None);
        bytes[offset::LENGTH..offset::LENGTH + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            decode_batch(&bytes).unwrap_err(),
            DecodeError::InvalidLength(10)
        );
    }

    /// Re-signs a hand-corrupted batch so the corruption reaches the record parser.
    fn fix_crc(bytes: &mut [u8]) {
        let crc = crc32c::crc32c(&bytes[offset::ATTRIBUTES..]);
        bytes[offset::CRC..offset::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn huge_record_count_does_not_allocate_for_it() {
        let mut bytes = sample_batch(Compression::None);
        bytes[offset::RECORD_COUNT..offset::RECORDS].copy_from_slice(&i32::MAX.to_be_bytes());
        fix_crc(&mut bytes);
        assert!(matches!(
            decode_batch(&bytes).unwrap_err(),
            DecodeError::MalformedRecord { index: 40, .. }
        ));
    }

    #[test]
    fn fewer_declared_records_than_present_leaves_trailing_bytes() {
        let mut bytes = sample_batch(Compression::None);
        bytes[offset::RECORD_COUNT..offset::RECORDS].copy_from_slice(&39i32.to_be_bytes());
        fix_crc(&mut bytes);
        assert!(matches!(
            decode_batch(&bytes).unwrap_err(),
            DecodeError::TrailingBytes { .. }
        ));
    }

    #[test]
    fn undefined_codec_ids_are_rejected() {
        let mut bytes = sample_batch(Compression::None);
        bytes[offset::ATTRIBUTES + 1] |= 0x07;
        fix_crc(&mut bytes);
        assert_eq!(
            decode_batch(&bytes).unwrap_err(),
            DecodeError::UnknownCodec(7)
        );
    }

    #[test]
    fn decode_batches_reads_back_to_back_batches() {
        let mut two = sample_batch(Compression::None);
        two.extend(sample_batch(Compression::Lz4));
        let batches = decode_batches(&two).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].header.codec, Codec::Lz4);
        assert_eq!(batches[0].records, batches[1].records);
    }
}
