//! RecordBatch v2 (magic 2, KIP-98) building and sealing.
//!
//! ```text
//! offset  field                 type
//!      0  baseOffset            i64   always 0 from a producer; the broker assigns offsets
//!      8  length                i32   bytes after this field
//!     12  partitionLeaderEpoch  i32   -1 from a producer; not covered by the CRC
//!     16  magic                 i8    2
//!     17  crc                   u32   CRC32C of attributes .. end of batch
//!     21  attributes            i16   codec bits 0-2, timestamp type bit 3, transactional bit 4
//!     23  lastOffsetDelta       i32
//!     27  baseTimestamp         i64   first record's timestamp
//!     35  maxTimestamp          i64
//!     43  producerId            i64   KIP-98 idempotence, -1 without
//!     51  producerEpoch         i16
//!     53  baseSequence          i32
//!     57  recordCount           i32
//!     61  records                     compressed as one unit when the codec is not none
//! ```
//!
//! The [`RecordBatchBuilder`] encodes each record straight into the batch buffer as it is
//! appended (no per-record allocation, no trial encoding: [`encoded_record_size`] is exact),
//! and [`RecordBatchBuilder::seal`] writes the header, compresses and computes the CRC once.
//! The result, a [`SealedBatch`], is immutable and cheap to clone so a retry can resend the
//! very same bytes (only producer fields are ever rewritten, see
//! [`SealedBatch::with_producer_fields`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::{Codec, Compression, Compressor};
use crate::sequence;
use crate::varint::{varint_len, varlong_len, write_varint, write_varlong, Packed};

/// Size of the v2 batch header: every byte before the first record.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// The only batch format courier writes (Kafka 4 rejects Produce requests older than v3).
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a batch written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch written without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `partitionLeaderEpoch` a producer writes; the leader stamps its own.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Attribute bits 0-2: the compression codec.
pub const ATTR_CODEC_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime (set by brokers only; producers write
/// CreateTime, bit clear).
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction (KIP-98).
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: a control batch (transaction markers), never written by producers.
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit 6: the delete horizon is set (KIP-534, compaction only).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Byte offsets of the header fields.
pub(crate) mod offset {
    pub const BASE_OFFSET: usize = 0;
    pub const LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
    pub const RECORDS: usize = 61;
}

/// A record header as appended: a UTF-8 name and an optional value (`None` is written as
/// length -1, which Kafka reads back as a null value).
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// The idempotent-producer fields of a batch (KIP-98).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerFields {
    /// The id from InitProducerId, or [`NO_PRODUCER_ID`].
    pub producer_id: i64,
    /// The id's epoch, or [`NO_PRODUCER_EPOCH`].
    pub producer_epoch: i16,
    /// Sequence of the batch's first record, or [`sequence::NO_SEQUENCE`].
    pub base_sequence: i32,
}

impl ProducerFields {
    /// Fields of a batch sent without idempotence: all -1.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: sequence::NO_SEQUENCE,
    };

    /// Fields of an idempotent batch.
    pub const fn idempotent(producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        ProducerFields {
            producer_id,
            producer_epoch,
            base_sequence,
        }
    }
}

impl Default for ProducerFields {
    fn default() -> Self {
        Self::NONE
    }
}

/// Why a record could not be appended or a batch could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A key, value, header or the whole record is longer than the `i32` length field.
    #[error("record of {size} bytes does not fit a Kafka length field")]
    RecordTooLarge {
        /// Encoded size, saturated at `usize::MAX`.
        size: usize,
    },
    /// The batch would exceed `i32::MAX` bytes or records.
    #[error("batch would exceed the i32 limits of the batch header")]
    BatchFull,
    /// A batch needs at least one record: Kafka has no empty v2 batch on the produce path.
    #[error("cannot seal a batch without records")]
    Empty,
}

/// Exact encoded size of one record, length prefix included.
///
/// `timestamp_delta` is the record's timestamp minus the batch's first timestamp,
/// `offset_delta` its index in the batch. The producer uses this to decide whether a record
/// still fits a batch without encoding it; see [`RecordBatchBuilder::would_fit`].
#[inline]
pub fn encoded_record_size(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> usize {
    let body = record_body_size(timestamp_delta, offset_delta, key, value, headers);
    varint_len(clamp_len(body)) + body
}

/// Record size excluding its own length prefix.
#[inline]
fn record_body_size(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> usize {
    (1 // attributes, unused, always 0
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + nullable_bytes_size(key)
        + nullable_bytes_size(value)
        + varint_len(clamp_len(headers.len())))
    .saturating_add(headers_size(headers))
}

#[inline]
fn nullable_bytes_size(b: Option<&[u8]>) -> usize {
    match b {
        None => 1, // length -1
        Some(b) => varint_len(clamp_len(b.len())) + b.len(),
    }
}

#[inline]
fn headers_size(headers: &[Header<'_>]) -> usize {
    headers.iter().fold(0usize, |sum, (name, value)| {
        sum.saturating_add(
            varint_len(clamp_len(name.len())) + name.len() + nullable_bytes_size(*value),
        )
    })
}

/// Length as the `i32` Kafka writes; oversized lengths are rejected before they are written,
/// this only keeps the size arithmetic total.
#[inline]
fn clamp_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Builds one partition's RecordBatch as records arrive.
///
/// ```
/// use courier_core::{Compression, Compressor, ProducerFields, RecordBatchBuilder};
///
/// let mut compressor = Compressor::new();
/// let mut builder = RecordBatchBuilder::new();
/// builder.append(1_700_000_000_000, Some(b"order-1"), Some(b"{\"amount\":1}"), &[])?;
/// builder.append(1_700_000_000_005, None, Some(b""), &[("trace", None)])?;
/// let batch = builder.seal(
///     ProducerFields::idempotent(4000, 0, 0),
///     Compression::Lz4,
///     &mut compressor,
/// )?;
/// assert_eq!(batch.record_count(), 2);
/// assert_eq!(batch.last_sequence(), 1);
/// # Ok::<(), courier_core::BuildError>(())
/// ```
pub struct RecordBatchBuilder {
    /// Work area. Its whole *length* is initialised memory we may overwrite; the batch is
    /// `buf[..pos]` (header placeholder, then records). Keeping the length ahead of `pos`
    /// lets `append` write each record into a plain slice with one bounds check, instead of
    /// growing a buffer field by field (a capacity check and a `memcpy` call per field cost
    /// more than the data itself for ~100-byte records).
    buf: BytesMut,
    /// End of the batch in `buf`; 0 before the first record.
    pos: usize,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    transactional: bool,
    /// Work area to allocate when a batch starts: the configured size or the last batch's.
    capacity_hint: usize,
    initial_capacity: usize,
}

/// Writable bytes kept past the end of the record being written, so that varints can be
/// stored with fixed-size stores that spill past their last byte (see
/// `varint::Packed::put`); `seal` cuts the batch at `pos`, so the spill never ships.
const WRITE_SLACK: usize = 16;

impl std::fmt::Debug for RecordBatchBuilder {
    // Not derived: the work area can be megabytes of record bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatchBuilder")
            .field("record_count", &self.record_count)
            .field("size_in_bytes", &self.size_in_bytes())
            .field("work_area", &self.buf.len())
            .field("transactional", &self.transactional)
            .finish_non_exhaustive()
    }
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBatchBuilder {
    /// Java's default `batch.size`.
    pub const DEFAULT_CAPACITY: usize = 16 * 1024;

    /// A builder that allocates [`Self::DEFAULT_CAPACITY`] bytes when its first record
    /// arrives.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A builder that allocates `capacity` bytes when a batch starts (set it to the
    /// producer's `batch.size` so a full batch never reallocates).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(RECORD_BATCH_OVERHEAD + WRITE_SLACK);
        RecordBatchBuilder {
            buf: BytesMut::new(),
            pos: 0,
            record_count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
            transactional: false,
            capacity_hint: capacity,
            initial_capacity: capacity,
        }
    }

    /// A builder that writes into `buffer` (its contents are overwritten), e.g. one
    /// recycled from a batch whose Produce request completed.
    pub fn with_buffer(buffer: BytesMut) -> Self {
        // Its initialised bytes are simply overwritten: only the part beyond its length
        // gets zero-filled when the first batch starts.
        let mut b = Self::with_capacity(buffer.capacity());
        b.buf = buffer;
        b
    }

    /// Marks the batches this builder seals as transactional (attributes bit 4, KIP-98).
    pub fn set_transactional(&mut self, transactional: bool) {
        self.transactional = transactional;
    }

    /// Number of records appended since the last seal.
    #[inline]
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Whether no record has been appended since the last seal.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The batch's base timestamp (its first record's), if it has records.
    #[inline]
    pub fn first_timestamp(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.base_timestamp)
    }

    /// The largest record timestamp so far, if the batch has records.
    #[inline]
    pub fn max_timestamp(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.max_timestamp)
    }

    /// Size the batch would have if sealed uncompressed now: header plus records. A
    /// compressed batch is never larger, since compression that does not pay off is dropped.
    #[inline]
    pub fn size_in_bytes(&self) -> usize {
        self.pos.max(RECORD_BATCH_OVERHEAD)
    }

    /// Exact number of bytes [`append`](Self::append) would add for this record now.
    #[inline]
    pub fn next_record_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> usize {
        let delta = if self.is_empty() {
            0
        } else {
            timestamp_ms.wrapping_sub(self.base_timestamp)
        };
        encoded_record_size(delta, self.record_count, key, value, headers)
    }

    /// Whether appending this record keeps the batch within `max_batch_bytes`.
    ///
    /// Like Java's accumulator, a producer should still put a single record larger than
    /// `max_batch_bytes` into an empty batch of its own (the broker's `max.message.bytes`
    /// is the real limit); this method only answers the size question.
    #[inline]
    pub fn would_fit(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
        max_batch_bytes: usize,
    ) -> bool {
        self.size_in_bytes() + self.next_record_size(timestamp_ms, key, value, headers)
            <= max_batch_bytes
    }

    /// Appends a record, encoding it into the batch buffer, and returns its offset delta
    /// (its index in the batch).
    ///
    /// Timestamps are CreateTime in milliseconds, passed in by the caller; the first
    /// record's becomes the batch's base timestamp and later ones are stored as deltas to
    /// it (they may be smaller: records are not sorted by time).
    #[inline]
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i32, BuildError> {
        // No separate record-count limit: every record takes at least 7 bytes, so the
        // batch-length check below trips long before the count could overflow an i32.
        if self.record_count == 0 {
            // Harmless if the record is then refused: the builder stays empty and the next
            // append begins again.
            self.begin(timestamp_ms);
        }
        // Kafka readers add the delta back with wrapping i64 arithmetic, so a wrapping
        // subtraction round-trips every pair of timestamps.
        let ts_delta = timestamp_ms.wrapping_sub(self.base_timestamp);
        let offset_delta = self.record_count;
        let key_len = key.map_or(0, <[u8]>::len);
        let value_len = value.map_or(0, <[u8]>::len);
        // Pack every varint once: packing yields its length, so sizing the record costs no
        // separate pass (bit scans per field were a measurable share of the hot path).
        let ts = Packed::varlong(ts_delta);
        let ts_len = ts.map_or_else(|| varlong_len(ts_delta), |t| t.len);
        let off = Packed::varint(offset_delta);
        let key_prefix = Packed::nullable_len(key);
        let value_prefix = Packed::nullable_len(value);
        let headers_len = if headers.is_empty() {
            1
        } else {
            headers_size(headers).saturating_add(varint_len(clamp_len(headers.len())))
        };
        // Key and value are slices of memory, so their sum cannot overflow a usize; headers
        // can repeat one large slice and are summed saturating.
        let body =
            (1 + ts_len + off.len + key_prefix.len + value_prefix.len + 1 + key_len + value_len)
                .saturating_add(headers_len - 1);
        // Truncating cast: only used once the check below has proven body <= i32::MAX.
        let length = Packed::varint(body as i32);
        let size = length.len + body;
        let start = self.pos;
        // One check covers every limit: if the batch length field (everything after it)
        // still fits an i32 with this record, so do the record and all its lengths.
        let end = start.saturating_add(size);
        if end - offset::PARTITION_LEADER_EPOCH > i32::MAX as usize {
            return Err(too_large(body, start));
        }
        if end + WRITE_SLACK > self.buf.len() {
            self.grow(end + WRITE_SLACK);
        }
        let out = &mut self.buf[start..end + WRITE_SLACK];

        // Fields are stored straight into the work area, each varint with one 8-byte store
        // that may spill into the slack (the next field overwrites it). Building them in a
        // stack array and copying that costs a store-forwarding stall per record.
        let mut p = match ts {
            // Length, attributes (0), timestamp delta, offset delta and key length: for
            // typical records 5-8 bytes, assembled in a register and stored at once.
            Some(ts) if length.len + 1 + ts.len + off.len + key_prefix.len <= 8 => {
                let (prefix, len) = length
                    .then_zero_byte()
                    .then(ts)
                    .then(off)
                    .then(key_prefix)
                    .into_parts();
                out[..8].copy_from_slice(&prefix.to_le_bytes());
                len
            }
            _ => {
                let mut p = length.put(out, 0);
                out[p] = 0; // record attributes: unused in v2
                p += 1;
                p += match ts {
                    Some(ts) => ts.put(out, p),
                    None => write_varlong(&mut out[p..], ts_delta),
                };
                p += off.put(out, p);
                p + key_prefix.put(out, p)
            }
        };
        if let Some(key) = key {
            copy_key(out, p, key);
            p += key.len();
        }
        p += value_prefix.put(out, p);
        if let Some(value) = value {
            out[p..p + value.len()].copy_from_slice(value);
            p += value.len();
        }
        if headers.is_empty() {
            out[p] = 0; // header count
            p += 1;
        } else {
            p += write_headers(&mut out[p..], headers);
        }
        debug_assert_eq!(p, size, "encoded_record_size disagrees with the writer");

        self.pos = end;
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        self.record_count += 1;
        Ok(offset_delta)
    }

    /// Starts a batch: makes sure a work area exists and reserves the header.
    #[cold]
    fn begin(&mut self, timestamp_ms: i64) {
        if self.buf.len() < self.capacity_hint {
            // Fresh buffer: initialise it once (a recycled one only needs its tail). Later
            // batches that stay in this builder (compressed ones) reuse it untouched.
            self.buf.resize(self.capacity_hint, 0);
        }
        self.pos = RECORD_BATCH_OVERHEAD;
        self.base_timestamp = timestamp_ms;
        self.max_timestamp = timestamp_ms;
    }

    /// Enlarges the work area for a batch larger than planned (amortised doubling).
    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) {
        let len = needed.max(self.buf.len() * 2);
        self.buf.resize(len, 0);
    }

    /// Bytes of work area this builder holds between batches (0 after an uncompressed
    /// seal handed its buffer to the batch), for callers that bound a pool of builders.
    #[inline]
    pub fn work_area_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Offers the bytes of a batch that is done (acknowledged or failed for good) back as
    /// the work area of a future batch, like Java's `BufferPool`: an uncompressed seal hands
    /// its buffer to the batch, so without recycling every batch allocates and initialises
    /// a fresh one.
    ///
    /// Taken only if this is the last handle on the bytes, the builder needs a work area
    /// (its last batch went out uncompressed) and the buffer is at least as large as the
    /// batches it builds; returns whether it was taken.
    pub fn recycle(&mut self, batch: Bytes) -> bool {
        if !self.is_empty() || self.buf.len() >= self.capacity_hint {
            return false;
        }
        match batch.try_into_mut() {
            Ok(buf) if buf.capacity() >= self.capacity_hint => {
                // Already initialised up to its length; `begin` extends it to the hint.
                self.buf = buf;
                true
            }
            _ => false,
        }
    }

    /// Drops the records appended since the last seal, keeping the buffer for reuse.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.record_count = 0;
        self.max_timestamp = i64::MIN;
    }

    /// Seals the batch: writes the header with `producer` fields, compresses the records
    /// with `compression` (kept uncompressed when that does not make the batch smaller, as
    /// librdkafka and franz-go do), and computes the CRC once over the final bytes.
    ///
    /// The builder is left empty and ready for the next batch. Uncompressed batches hand
    /// their buffer over (no copy); compressed ones copy the compressed bytes into a
    /// right-sized buffer and keep the work area for the next batch.
    ///
    /// The same as [`prepare`](Self::prepare) then [`PreparedBatch::seal`].
    pub fn seal(
        &mut self,
        producer: ProducerFields,
        compression: Compression,
        compressor: &mut Compressor,
    ) -> Result<SealedBatch, BuildError> {
        Ok(self.prepare(compression, compressor)?.seal(producer))
    }

    /// The costly half of [`seal`](Self::seal): compresses the records, leaving the header
    /// (producer id, epoch, base sequence, CRC) to [`PreparedBatch::seal`]. Compression
    /// does not depend on those fields, so a producer can compress a closed batch on
    /// another thread and stamp it with its sequence when it sends it.
    ///
    /// The builder is left empty and ready for the next batch, as by `seal`.
    pub fn prepare(
        &mut self,
        compression: Compression,
        compressor: &mut Compressor,
    ) -> Result<PreparedBatch, BuildError> {
        if self.is_empty() {
            return Err(BuildError::Empty);
        }
        let records = &self.buf[RECORD_BATCH_OVERHEAD..self.pos];
        let mut info = BatchInfo {
            record_count: self.record_count,
            producer: ProducerFields::NONE,
            codec: Codec::None,
            first_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            uncompressed_records_size: records.len(),
        };
        let compressed = match compressor.compress(compression, records) {
            Ok(c) if compression != Compression::None && c.len() < records.len() => Some(c),
            Ok(_) => None,
            Err(_e) => {
                // Cannot happen with inputs below i32::MAX bytes; sending uncompressed is
                // always accepted, so the producer keeps going rather than failing records.
                debug_assert!(false, "compression failed: {_e}");
                None
            }
        };
        let bytes = match compressed {
            Some(frame) => {
                info.codec = compression.codec();
                let mut out = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + frame.len());
                out.put_bytes(0, RECORD_BATCH_OVERHEAD);
                out.extend_from_slice(frame);
                out
            }
            None => {
                self.buf.truncate(self.pos);
                // The next batch is likely the same size: plan its work area for that.
                self.capacity_hint = (self.pos + WRITE_SLACK).max(self.initial_capacity);
                // Move the whole buffer out (not `split`, which would leave the builder
                // sharing the allocation): the sealed bytes stay uniquely owned, so an
                // epoch-bump rewrite can happen in place.
                std::mem::take(&mut self.buf)
            }
        };
        let transactional = self.transactional;
        self.reset();
        Ok(PreparedBatch {
            bytes,
            info,
            transactional,
        })
    }
}

/// A batch with its records encoded and compressed, waiting for its header: the result
/// of [`RecordBatchBuilder::prepare`]. [`seal`](Self::seal) writes the producer fields and
/// the CRC.
pub struct PreparedBatch {
    /// Header placeholder, then the (compressed) records.
    bytes: BytesMut,
    info: BatchInfo,
    transactional: bool,
}

impl std::fmt::Debug for PreparedBatch {
    // Not derived: the bytes would be printed in full.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch")
            .field("len", &self.bytes.len())
            .field("info", &self.info)
            .finish()
    }
}

impl PreparedBatch {
    /// Encoded size in bytes, header included.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a prepared batch always has records
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Number of records.
    #[inline]
    pub fn record_count(&self) -> i32 {
        self.info.record_count
    }

    /// Writes the header with `producer` fields and the CRC: the batch is final.
    pub fn seal(self, producer: ProducerFields) -> SealedBatch {
        let PreparedBatch {
            mut bytes,
            mut info,
            transactional,
        } = self;
        info.producer = producer;
        write_header(&mut bytes, &info, transactional);
        SealedBatch {
            bytes: bytes.freeze(),
            info,
        }
    }
}

/// Copies a key into `out[at..]`. Keys are usually short (`order-12345`); for 8 to 16 bytes
/// two overlapping 8-byte moves replace a call into `memcpy`, a visible cost per record.
#[inline(always)]
fn copy_key(out: &mut [u8], at: usize, key: &[u8]) {
    let n = key.len();
    if (8..=16).contains(&n) {
        let head: [u8; 8] = key[..8].try_into().expect("8 bytes");
        let tail: [u8; 8] = key[n - 8..].try_into().expect("8 bytes");
        out[at..at + 8].copy_from_slice(&head);
        out[at + n - 8..at + n].copy_from_slice(&tail);
    } else {
        out[at..at + n].copy_from_slice(key);
    }
}

/// The error for a record that does not fit: too large on its own, or for this batch.
#[cold]
fn too_large(body: usize, start: usize) -> BuildError {
    if body > i32::MAX as usize || start == RECORD_BATCH_OVERHEAD {
        BuildError::RecordTooLarge { size: body }
    } else {
        BuildError::BatchFull
    }
}

/// Writes the header count and headers of a record into `out`, returning the bytes used.
fn write_headers(out: &mut [u8], headers: &[Header<'_>]) -> usize {
    let mut p = write_varint(out, headers.len() as i32);
    for (name, value) in headers {
        p += write_varint(&mut out[p..], name.len() as i32);
        out[p..p + name.len()].copy_from_slice(name.as_bytes());
        p += name.len();
        p += write_varint(&mut out[p..], nullable_len(*value));
        if let Some(value) = value {
            out[p..p + value.len()].copy_from_slice(value);
            p += value.len();
        }
    }
    p
}

#[inline]
fn nullable_len(b: Option<&[u8]>) -> i32 {
    match b {
        None => -1,
        // Oversized lengths were rejected by the size check before anything was written.
        Some(b) => b.len() as i32,
    }
}

/// Writes the 61-byte header into `batch[..61]` (records already after it) and the CRC.
fn write_header(batch: &mut [u8], info: &BatchInfo, transactional: bool) {
    let len = batch.len();
    let mut attributes = info.codec.id() as i16; // CreateTime: bit 3 clear
    if transactional {
        attributes |= ATTR_TRANSACTIONAL;
    }
    let h = &mut batch[..RECORD_BATCH_OVERHEAD];
    h[offset::BASE_OFFSET..offset::LENGTH].copy_from_slice(&0i64.to_be_bytes());
    h[offset::LENGTH..offset::PARTITION_LEADER_EPOCH]
        .copy_from_slice(&((len - offset::PARTITION_LEADER_EPOCH) as i32).to_be_bytes());
    h[offset::PARTITION_LEADER_EPOCH..offset::MAGIC]
        .copy_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
    h[offset::MAGIC] = MAGIC_V2 as u8;
    h[offset::ATTRIBUTES..offset::LAST_OFFSET_DELTA].copy_from_slice(&attributes.to_be_bytes());
    h[offset::LAST_OFFSET_DELTA..offset::BASE_TIMESTAMP]
        .copy_from_slice(&(info.record_count - 1).to_be_bytes());
    h[offset::BASE_TIMESTAMP..offset::MAX_TIMESTAMP]
        .copy_from_slice(&info.first_timestamp.to_be_bytes());
    h[offset::MAX_TIMESTAMP..offset::PRODUCER_ID]
        .copy_from_slice(&info.max_timestamp.to_be_bytes());
    write_producer_fields(h, info.producer);
    h[offset::RECORD_COUNT..offset::RECORDS].copy_from_slice(&info.record_count.to_be_bytes());
    write_crc(batch);
}

#[inline]
fn write_producer_fields(header: &mut [u8], p: ProducerFields) {
    header[offset::PRODUCER_ID..offset::PRODUCER_EPOCH]
        .copy_from_slice(&p.producer_id.to_be_bytes());
    header[offset::PRODUCER_EPOCH..offset::BASE_SEQUENCE]
        .copy_from_slice(&p.producer_epoch.to_be_bytes());
    header[offset::BASE_SEQUENCE..offset::RECORD_COUNT]
        .copy_from_slice(&p.base_sequence.to_be_bytes());
}

/// CRC32C (Castagnoli) from `attributes` to the end; `partitionLeaderEpoch` is outside it so
/// the leader can stamp its epoch without recomputing.
#[inline]
fn write_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[offset::ATTRIBUTES..]);
    batch[offset::CRC..offset::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the producer id, epoch and base sequence of an encoded v2 batch in place and
/// recomputes its CRC, without touching the records (a KIP-360 epoch bump resends the same
/// records under new producer fields).
///
/// Fails, leaving `batch` untouched, if it is not a complete magic-2 batch.
pub fn rewrite_producer_fields(
    batch: &mut [u8],
    producer: ProducerFields,
) -> Result<(), crate::decode::DecodeError> {
    let header = crate::decode::BatchHeader::parse(batch)?;
    if batch.len() != header.total_size() {
        return Err(crate::decode::DecodeError::TrailingBytes {
            extra: batch.len().saturating_sub(header.total_size()),
        });
    }
    write_producer_fields(batch, producer);
    write_crc(batch);
    Ok(())
}

/// What a producer needs to know about a sealed batch without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchInfo {
    record_count: i32,
    producer: ProducerFields,
    codec: Codec,
    first_timestamp: i64,
    max_timestamp: i64,
    uncompressed_records_size: usize,
}

/// A finished, immutable RecordBatch ready to go into a Produce request, plus its metadata.
///
/// Cloning shares the bytes (a reference count), so the producer can keep the batch for a
/// retry while a request holds it: retries resend exactly these bytes, never re-encoded
/// records (Java and franz-go do the same; librdkafka's rebuild-on-retry caused #4736).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBatch {
    bytes: Bytes,
    info: BatchInfo,
}

impl std::fmt::Debug for SealedBatch {
    // Not derived: the bytes would be printed in full.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBatch")
            .field("len", &self.bytes.len())
            .field("info", &self.info)
            .finish()
    }
}

impl SealedBatch {
    /// The encoded batch, header included.
    #[inline]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Consumes the batch, returning its bytes.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Encoded size in bytes (what counts against `max.request.size`).
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a sealed batch always has records
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Number of records.
    #[inline]
    pub fn record_count(&self) -> i32 {
        self.info.record_count
    }

    /// Producer id, epoch and base sequence written in the header.
    #[inline]
    pub fn producer_fields(&self) -> ProducerFields {
        self.info.producer
    }

    /// Sequence of the first record.
    #[inline]
    pub fn base_sequence(&self) -> i32 {
        self.info.producer.base_sequence
    }

    /// Sequence of the last record, wrapping after `i32::MAX` like the broker.
    #[inline]
    pub fn last_sequence(&self) -> i32 {
        sequence::last_sequence(self.info.producer.base_sequence, self.info.record_count)
    }

    /// The codec actually used: [`Codec::None`] when compression was asked for but did
    /// not shrink the records.
    #[inline]
    pub fn codec(&self) -> Codec {
        self.info.codec
    }

    /// Size the batch has uncompressed (header plus encoded records).
    #[inline]
    pub fn uncompressed_size(&self) -> usize {
        RECORD_BATCH_OVERHEAD + self.info.uncompressed_records_size
    }

    /// Base timestamp (first record's).
    #[inline]
    pub fn first_timestamp(&self) -> i64 {
        self.info.first_timestamp
    }

    /// Largest record timestamp.
    #[inline]
    pub fn max_timestamp(&self) -> i64 {
        self.info.max_timestamp
    }

    /// The same records under new producer fields, CRC recomputed; used after a KIP-360
    /// epoch bump, which restarts the partition's sequence.
    ///
    /// Rewrites in place when this is the only handle on the bytes (the usual case once the
    /// failed request is dropped) and copies them once otherwise. Records are never
    /// re-encoded or recompressed.
    pub fn with_producer_fields(self, producer: ProducerFields) -> SealedBatch {
        let mut buf = match self.bytes.try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => BytesMut::from(&shared[..]),
        };
        write_producer_fields(&mut buf, producer);
        write_crc(&mut buf);
        SealedBatch {
            bytes: buf.freeze(),
            info: BatchInfo {
                producer,
                ..self.info
            },
        }
    }
}

/// A record borrowed for [`encode_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// CreateTime in milliseconds.
    pub timestamp_ms: i64,
    /// Key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order; names may repeat.
    pub headers: &'a [Header<'a>],
}

/// Encodes `records` into one sealed batch: a convenience for tests and tools (the producer
/// keeps a [`RecordBatchBuilder`] per partition and a [`Compressor`] per thread instead).
pub fn encode_batch(
    records: &[RecordRef<'_>],
    producer: ProducerFields,
    compression: Compression,
) -> Result<SealedBatch, BuildError> {
    let size: usize = records
        .iter()
        .map(|r| r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + 16)
        .sum();
    let mut builder = RecordBatchBuilder::with_capacity(RECORD_BATCH_OVERHEAD + size);
    for r in records {
        builder.append(r.timestamp_ms, r.key, r.value, r.headers)?;
    }
    builder.seal(producer, compression, &mut Compressor::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be_i32(b: &[u8], at: usize) -> i32 {
        i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn be_i64(b: &[u8], at: usize) -> i64 {
        i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }
    fn be_i16(b: &[u8], at: usize) -> i16 {
        i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
    }

    #[test]
    fn single_record_batch_has_the_exact_bytes_kafka_expects() {
        let mut b = RecordBatchBuilder::new();
        b.append(1000, Some(b"k"), Some(b"v"), &[]).unwrap();
        let batch = b
            .seal(
                ProducerFields::NONE,
                Compression::None,
                &mut Compressor::new(),
            )
            .unwrap();
        let bytes = batch.bytes();
        // Record: len 8 | attrs 0 | tsDelta 0 | offsetDelta 0 | keyLen 1 'k' | valLen 1 'v' | 0 headers
        let record = [0x10, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00];
        assert_eq!(&bytes[RECORD_BATCH_OVERHEAD..], &record);
        let mut header = Vec::new();
        header.extend_from_slice(&0i64.to_be_bytes()); // base offset
        header.extend_from_slice(&((61 - 12 + record.len()) as i32).to_be_bytes());
        header.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        header.push(2); // magic
        header.extend_from_slice(&bytes[17..21]); // crc, checked below
        header.extend_from_slice(&0i16.to_be_bytes()); // attributes
        header.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        header.extend_from_slice(&1000i64.to_be_bytes());
        header.extend_from_slice(&1000i64.to_be_bytes());
        header.extend_from_slice(&(-1i64).to_be_bytes());
        header.extend_from_slice(&(-1i16).to_be_bytes());
        header.extend_from_slice(&(-1i32).to_be_bytes());
        header.extend_from_slice(&1i32.to_be_bytes());
        assert_eq!(&bytes[..61], &header[..]);
        assert_eq!(
            u32::from_be_bytes(bytes[17..21].try_into().unwrap()),
            crc32c::crc32c(&bytes[21..])
        );
    }

    #[test]
    fn crc32c_is_castagnoli_not_ieee() {
        // Standard check value for CRC-32C over "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn null_key_null_value_and_null_header_value_encode_as_minus_one() {
        let mut b = RecordBatchBuilder::new();
        b.append(5, None, None, &[("h", None)]).unwrap();
        let batch = b
            .seal(
                ProducerFields::NONE,
                Compression::None,
                &mut Compressor::new(),
            )
            .unwrap();
        // len 9 | attrs | ts | off | key -1 | value -1 | 1 header | name len 1 'h' | value -1
        assert_eq!(
            &batch.bytes()[61..],
            &[0x12, 0, 0, 0, 0x01, 0x01, 0x02, 0x02, b'h', 0x01]
        );
    }

    #[test]
    fn empty_value_and_empty_key_are_not_null() {
        let mut b = RecordBatchBuilder::new();
        b.append(5, Some(b""), Some(b""), &[("", Some(b""))])
            .unwrap();
        let batch = b
            .seal(
                ProducerFields::NONE,
                Compression::None,
                &mut Compressor::new(),
            )
            .unwrap();
        assert_eq!(
            &batch.bytes()[61..],
            &[0x10, 0, 0, 0, 0x00, 0x00, 0x02, 0x00, 0x00]
        );
    }

    #[test]
    fn timestamps_are_deltas_from_the_first_record_and_max_is_tracked() {
        let mut b = RecordBatchBuilder::new();
        b.append(1_000, None, Some(b"a"), &[]).unwrap();
        b.append(900, None, Some(b"b"), &[]).unwrap(); // earlier than the base
        b.append(1_500, None, Some(b"c"), &[]).unwrap();
        b.append(1_200, None, Some(b"d"), &[]).unwrap();
        assert_eq!(b.first_timestamp(), Some(1_000));
        assert_eq!(b.max_timestamp(), Some(1_500));
        let batch = b
            .seal(
                ProducerFields::NONE,
                Compression::None,
                &mut Compressor::new(),
            )
            .unwrap();
        let bytes = batch.bytes();
        assert_eq!(be_i64(bytes, offset::BASE_TIMESTAMP), 1_000);
        assert_eq!(be_i64(bytes, offset::MAX_TIMESTAMP), 1_500);
        assert_eq!(be_i32(bytes, offset::LAST_OFFSET_DELTA), 3);
        assert_eq!(be_i32(bytes, offset::RECORD_COUNT), 4);
        // Attributes: codec none, CreateTime (bit 3 clear), not transactional.
        assert_eq!(be_i16(bytes, offset::ATTRIBUTES), 0);
        // Second record (the first takes 8 bytes): length 8, attributes, ts delta -100
        // (zigzag 199 = 0xc7 0x01), offset delta 1.
        let second = &bytes[61 + 8..];
        assert_eq!(&second[..5], &[0x10, 0x00, 0xc7, 0x01, 0x02]);
    }

    #[test]
    fn encoded_record_size_predicts_append_exactly() {
        let long = vec![7u8; 300];
        let two: &[Header<'_>] = &[("a", Some(b"1")), ("b", None)];
        let one_long: &[Header<'_>] = &[("", Some(&long))];
        let cases = [
            RecordRef {
                timestamp_ms: 0,
                key: None,
                value: None,
                headers: &[],
            },
            RecordRef {
                timestamp_ms: 1 << 40,
                key: Some(b"key"),
                value: Some(&long),
                headers: two,
            },
            RecordRef {
                timestamp_ms: -5,
                key: Some(&long),
                value: Some(b""),
                headers: one_long,
            },
        ];
        let mut b = RecordBatchBuilder::new();
        for (i, r) in cases.iter().enumerate() {
            let (ts, key, value, headers) = (r.timestamp_ms, r.key, r.value, r.headers);
            let before = b.size_in_bytes();
            let predicted = b.next_record_size(ts, key, value, headers);
            assert!(b.would_fit(ts, key, value, headers, before + predicted));
            assert!(!b.would_fit(ts, key, value, headers, before + predicted - 1));
            b.append(ts, key, value, headers).unwrap();
            assert_eq!(b.size_in_bytes() - before, predicted, "case {i}");
        }
    }

    #[test]
    fn producer_fields_and_transactional_flag_land_in_the_header() {
        let mut b = RecordBatchBuilder::new();
        b.set_transactional(true);
        for i in 0..3 {
            b.append(i, None, Some(b"x"), &[]).unwrap();
        }
        let batch = b
            .seal(
                ProducerFields::idempotent(0x0102_0304_0506, 7, 42),
                Compression::None,
                &mut Compressor::new(),
            )
            .unwrap();
        let bytes = batch.bytes();
        assert_eq!(be_i64(bytes, offset::PRODUCER_ID), 0x0102_0304_0506);
        assert_eq!(be_i16(bytes, offset::PRODUCER_EPOCH), 7);
        assert_eq!(be_i32(bytes, offset::BASE_SEQUENCE), 42);
        assert_eq!(be_i16(bytes, offset::ATTRIBUTES), ATTR_TRANSACTIONAL);
        assert_eq!(batch.last_sequence(), 44);
    }

    #[test]
    fn compression_that_does_not_shrink_is_dropped_for_codec_none() {
        let mut b = RecordBatchBuilder::new();
        b.append(0, None, Some(b"z"), &[]).unwrap();
        let batch = b
            .seal(
                ProducerFields::NONE,
                Compression::Lz4,
                &mut Compressor::new(),
            )
            .unwrap();
        assert_eq!(batch.codec(), Codec::None);
        assert_eq!(
            be_i16(batch.bytes(), offset::ATTRIBUTES) & ATTR_CODEC_MASK,
            0
        );
    }

    #[test]
    fn compressible_batches_carry_their_codec_in_the_attributes() {
        let value = br#"{"order_id":12345,"customer":"c-0042","amount":19.99}"#;
        for compression in [
            Compression::Lz4,
            Compression::Snappy,
            Compression::gzip(),
            Compression::zstd(),
        ] {
            let mut b = RecordBatchBuilder::new();
            for t in 0..100 {
                b.append(t, Some(b"order-12345"), Some(value), &[]).unwrap();
            }
            let uncompressed = b.size_in_bytes();
            let batch = b
                .seal(ProducerFields::NONE, compression, &mut Compressor::new())
                .unwrap();
            assert_eq!(batch.codec(), compression.codec());
            assert_eq!(
                be_i16(batch.bytes(), offset::ATTRIBUTES),
                compression.codec().id() as i16
            );
            assert_eq!(batch.uncompressed_size(), uncompressed);
            assert!(batch.len() < uncompressed / 2, "{compression:?}");
            assert_eq!(
                be_i32(batch.bytes(), offset::LENGTH) as usize,
                batch.len() - 12
            );
        }
    }

    #[test]
    fn rewriting_producer_fields_changes_only_those_fields_and_the_crc() {
        let mut b = RecordBatchBuilder::new();
        for t in 0..50 {
            b.append(
                t,
                Some(b"key"),
                Some(b"some value some value"),
                &[("h", None)],
            )
            .unwrap();
        }
        let original = b
            .seal(
                ProducerFields::idempotent(9, 1, 100),
                Compression::Lz4,
                &mut Compressor::new(),
            )
            .unwrap();
        let keep = original.clone(); // shared: forces the copy path
        let bumped = original.with_producer_fields(ProducerFields::idempotent(9, 2, 0));
        let (a, c) = (keep.bytes(), bumped.bytes());
        assert_eq!(a.len(), c.len());
        assert_eq!(be_i16(c, offset::PRODUCER_EPOCH), 2);
        assert_eq!(be_i32(c, offset::BASE_SEQUENCE), 0);
        assert_eq!(be_i64(c, offset::PRODUCER_ID), 9);
        assert_eq!(bumped.last_sequence(), 49);
        for i in 0..a.len() {
            let in_crc = (offset::CRC..offset::ATTRIBUTES).contains(&i);
            let in_fields = (offset::PRODUCER_ID..offset::RECORD_COUNT).contains(&i);
            if !in_crc && !in_fields {
                assert_eq!(a[i], c[i], "byte {i} changed");
            }
        }
        assert_eq!(
            u32::from_be_bytes(c[17..21].try_into().unwrap()),
            crc32c::crc32c(&c[21..])
        );
        assert_ne!(a[17..21], c[17..21]);

        // The unique handle is rewritten in place (same allocation).
        let ptr = bumped.bytes().as_ptr();
        let again = bumped.with_producer_fields(ProducerFields::idempotent(9, 3, 0));
        assert_eq!(again.bytes().as_ptr(), ptr);
        assert_eq!(be_i16(again.bytes(), offset::PRODUCER_EPOCH), 3);
    }

    #[test]
    fn rewrite_on_raw_bytes_rejects_truncated_batches() {
        let batch = encode_batch(
            &[RecordRef {
                timestamp_ms: 1,
                key: None,
                value: Some(b"v"),
                headers: &[],
            }],
            ProducerFields::NONE,
            Compression::None,
        )
        .unwrap();
        let mut raw = batch.bytes().to_vec();
        rewrite_producer_fields(&mut raw, ProducerFields::idempotent(1, 2, 3)).unwrap();
        assert_eq!(be_i64(&raw, offset::PRODUCER_ID), 1);
        assert_eq!(
            u32::from_be_bytes(raw[17..21].try_into().unwrap()),
            crc32c::crc32c(&raw[21..])
        );
        let mut cut = raw[..raw.len() - 1].to_vec();
        let before = cut.clone();
        assert!(rewrite_producer_fields(&mut cut, ProducerFields::NONE).is_err());
        assert_eq!(cut, before);
    }

    #[test]
    fn builder_is_reusable_after_seal_and_reset() {
        let mut compressor = Compressor::new();
        let mut b = RecordBatchBuilder::with_capacity(128);
        b.append(10, None, Some(b"first"), &[]).unwrap();
        let first = b
            .seal(ProducerFields::NONE, Compression::None, &mut compressor)
            .unwrap();
        assert!(b.is_empty());
        assert_eq!(b.size_in_bytes(), RECORD_BATCH_OVERHEAD);
        b.append(99, None, Some(b"dropped"), &[]).unwrap();
        b.reset();
        assert_eq!(
            b.seal(ProducerFields::NONE, Compression::None, &mut compressor),
            Err(BuildError::Empty)
        );
        b.append(20, None, Some(b"first"), &[]).unwrap();
        let second = b
            .seal(ProducerFields::NONE, Compression::None, &mut compressor)
            .unwrap();
        assert_eq!(second.first_timestamp(), 20);
        assert_eq!(first.len(), second.len());
        assert_eq!(first.bytes()[61..], second.bytes()[61..]);
    }

    #[test]
    fn recycled_batch_bytes_become_the_next_work_area() {
        let mut compressor = Compressor::new();
        let mut b = RecordBatchBuilder::with_capacity(1024);
        b.append(1, Some(b"k"), Some(&[7u8; 300]), &[]).unwrap();
        let first = b
            .seal(ProducerFields::NONE, Compression::None, &mut compressor)
            .unwrap();
        let ptr = first.bytes().as_ptr();
        let shared = first.bytes().clone();
        assert!(!b.recycle(shared), "bytes still referenced elsewhere");
        assert!(b.recycle(first.into_bytes()));
        b.append(2, Some(b"k"), Some(&[8u8; 300]), &[]).unwrap();
        assert!(!b.recycle(Bytes::from(vec![0u8; 4096])), "mid-batch");
        let second = b
            .seal(ProducerFields::NONE, Compression::None, &mut compressor)
            .unwrap();
        assert_eq!(
            second.bytes().as_ptr(),
            ptr,
            "the recycled allocation was reused"
        );
        let (decoded, _) = crate::decode::decode_batch(second.bytes()).unwrap();
        assert_eq!(decoded.records[0].timestamp, 2);
        assert_eq!(decoded.records[0].value.as_deref(), Some(&[8u8; 300][..]));
        assert!(!b.recycle(Bytes::from(vec![0u8; 16])), "too small");
    }

    #[test]
    fn recycled_buffer_is_used_without_reallocating() {
        let buf = BytesMut::with_capacity(4096);
        let ptr = buf.as_ptr();
        let mut b = RecordBatchBuilder::with_buffer(buf);
        b.append(1, None, Some(&[1u8; 100]), &[]).unwrap();
        let batch = b
            .seal(
                ProducerFields::NONE,
                Compression::None,
                &mut Compressor::new(),
            )
            .unwrap();
        assert_eq!(batch.bytes().as_ptr(), ptr);
    }

    #[test]
    fn append_refuses_a_record_that_would_overflow_the_batch_length() {
        let mut b = RecordBatchBuilder::new();
        b.append(0, None, Some(b"first"), &[]).unwrap();
        let size = b.size_in_bytes();
        // Pretend the batch is 4 bytes short of the i32 limit of its length field (which
        // counts from offset 12); the next record needs 9.
        let pos = b.pos;
        b.pos = i32::MAX as usize + 12 - 4;
        assert_eq!(
            b.append(0, None, Some(b"x"), &[]),
            Err(BuildError::BatchFull)
        );
        assert_eq!(b.record_count(), 1, "nothing may be counted on refusal");
        b.pos = pos;
        assert_eq!(b.size_in_bytes(), size);
        b.append(1, None, Some(b"second"), &[]).unwrap();
        assert_eq!(b.record_count(), 2);
    }
}
