//! A bounded reader over one reply frame.
//!
//! Every length, count and size comes from the network, so each is checked against the
//! bytes actually left before it is used: a string or bytes field must fit in what is
//! left, and an array may declare at most `left / min_entry_size` entries, where
//! `min_entry_size` is the smallest encoding one entry can have. Only then is its `Vec`
//! allocated, so a frame of `n` bytes can never make the decoder reserve room for more
//! than `n / min_entry_size` entries.
//!
//! "Left" excludes the bytes already promised to later entries of the arrays being read
//! (`owed`): without that, each level of nested arrays could reserve against the same
//! remaining bytes (topics, then the first topic's partitions, then ...), and memory
//! would grow with the nesting depth instead of staying proportional to the frame.

use super::error::{DecodeError, DecodeErrorKind};

/// Longest unsigned varint the protocol uses (a `u32`).
const MAX_UNSIGNED_VARINT_LEN: usize = 5;

/// Smallest encoding of one tagged field: a one-byte tag and a one-byte size.
const MIN_TAGGED_FIELD_SIZE: usize = 2;

/// Reads protocol primitives from a byte slice, never past its end.
///
/// `flexible` selects the encodings of flexible message versions (KIP-482): compact
/// strings, bytes and arrays (unsigned varint lengths plus one) and tagged-field
/// sections. Classic versions use `i16` string lengths and `i32` bytes and array lengths.
///
/// Each method takes the field's name so that its error says what was being read.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the outermost buffer, so sub-readers report frame offsets.
    base: usize,
    flexible: bool,
    /// Bytes that the later entries of enclosing arrays need at least: not available to
    /// the field being read.
    owed: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`, using the flexible encodings if `flexible`.
    pub fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
            flexible,
            owed: 0,
        }
    }

    /// Whether this reader uses the flexible (compact) encodings.
    pub fn is_flexible(&self) -> bool {
        self.flexible
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Bytes not read yet and not needed by the later entries of enclosing arrays: what
    /// a length or count may claim.
    fn available(&self) -> usize {
        self.remaining().saturating_sub(self.owed)
    }

    /// Offset of the next byte in the outermost buffer given to a reader.
    pub fn position(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// The bytes not read yet, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn err(&self, kind: DecodeErrorKind, field: &'static str) -> DecodeError {
        DecodeError::new(kind, self.position()).in_field(field)
    }

    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
        let end = self.pos.checked_add(n).filter(|_| n <= left);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos = self.pos.saturating_add(n);
                Ok(bytes)
            }
            None => Err(self.err(DecodeErrorKind::UnexpectedEnd { needed: n, left }, field)),
        }
    }

    fn array_of<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// An `int8`.
    pub fn i8(&mut self, field: &'static str) -> Result<i8, DecodeError> {
        self.array_of::<1>(field).map(i8::from_be_bytes)
    }

    /// A `bool`: any non-zero byte is true, as Kafka's own reader has it.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        self.array_of::<1>(field).map(|[b]| b != 0)
    }

    /// An `int16`, big-endian.
    pub fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        self.array_of::<2>(field).map(i16::from_be_bytes)
    }

    /// An `int32`, big-endian.
    pub fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.array_of::<4>(field).map(i32::from_be_bytes)
    }

    /// An `int64`, big-endian.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.array_of::<8>(field).map(i64::from_be_bytes)
    }

    /// A `uint32`, big-endian.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array_of::<4>(field).map(u32::from_be_bytes)
    }

    /// A `uuid`: 16 bytes, most significant first.
    pub fn uuid(&mut self, field: &'static str) -> Result<[u8; 16], DecodeError> {
        self.array_of::<16>(field)
    }

    /// An unsigned varint of at most 5 bytes whose value fits in 32 bits.
    pub fn unsigned_varint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let start = self.pos;
        let mut value: u32 = 0;
        for i in 0..MAX_UNSIGNED_VARINT_LEN {
            let Some(&byte) = self.buf.get(self.pos) else {
                let left = self.buf.len().saturating_sub(start);
                let kind = DecodeErrorKind::UnexpectedEnd {
                    needed: i.saturating_add(1),
                    left,
                };
                self.pos = start;
                return Err(self.err(kind, field));
            };
            self.pos = self.pos.saturating_add(1);
            let low = u32::from(byte & 0x7f);
            // The fifth byte carries bits 28..32: anything above its low 4 bits, or a
            // continuation bit, would not fit in a u32.
            if i == MAX_UNSIGNED_VARINT_LEN - 1 && byte > 0x0f {
                self.pos = start;
                return Err(self.err(DecodeErrorKind::VarintOverflow, field));
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        // Unreachable in practice: the fifth byte either ends the varint or fails above.
        self.pos = start;
        Err(self.err(DecodeErrorKind::VarintOverflow, field))
    }

    /// Reads a string or bytes length: `None` for null. Compact lengths are an unsigned
    /// varint of length + 1 (0 is null); classic ones an `int16` (strings) or `int32`
    /// (bytes) with -1 for null. The length is checked against the bytes left.
    fn length(&mut self, wide: bool, field: &'static str) -> Result<Option<usize>, DecodeError> {
        let start = self.position();
        let len: i64 = if self.flexible {
            i64::from(self.unsigned_varint(field)?) - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        if len == -1 {
            return Ok(None);
        }
        if len < -1 {
            return Err(
                DecodeError::new(DecodeErrorKind::NegativeLength(len), start).in_field(field),
            );
        }
        let left = self.available();
        match usize::try_from(len) {
            Ok(n) if n <= left => Ok(Some(n)),
            _ => Err(DecodeError::new(
                DecodeErrorKind::LengthTooLong {
                    len: len.unsigned_abs(),
                    left,
                },
                start,
            )
            .in_field(field)),
        }
    }

    fn utf8(
        &self,
        bytes: &'a [u8],
        at: usize,
        field: &'static str,
    ) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::new(DecodeErrorKind::InvalidUtf8, at).in_field(field))
    }

    /// A nullable string borrowed from the frame; it must be UTF-8.
    pub fn nullable_str(&mut self, field: &'static str) -> Result<Option<&'a str>, DecodeError> {
        let at = self.position();
        match self.length(false, field)? {
            None => Ok(None),
            Some(n) => {
                let bytes = self.take(n, field)?;
                self.utf8(bytes, at, field).map(Some)
            }
        }
    }

    /// A non-null string borrowed from the frame; it must be UTF-8.
    pub fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.position();
        self.nullable_str(field)?
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::UnexpectedNull, at).in_field(field))
    }

    /// A non-null string (a name, host or key): must be UTF-8.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.str(field).map(str::to_owned)
    }

    /// A nullable string (a name, host or key): must be UTF-8.
    pub fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        Ok(self.nullable_str(field)?.map(str::to_owned))
    }

    /// A nullable string meant for people (an error message): invalid UTF-8 is replaced
    /// rather than refused, so a garbled message does not hide the error code beside it.
    pub fn nullable_string_lossy(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match self.length(false, field)? {
            None => Ok(None),
            Some(n) => {
                let bytes = self.take(n, field)?;
                Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
            }
        }
    }

    /// Nullable bytes borrowed from the frame.
    pub fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.length(true, field)? {
            None => Ok(None),
            Some(n) => self.take(n, field).map(Some),
        }
    }

    /// Non-null bytes borrowed from the frame.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.position();
        self.nullable_bytes(field)?
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::UnexpectedNull, at).in_field(field))
    }

    /// Reads an array's entry count (`None` for null) and checks that `count` entries of
    /// at least `min_entry_size` bytes each fit in the bytes left.
    pub fn nullable_array_len(
        &mut self,
        field: &'static str,
        min_entry_size: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let start = self.position();
        let count: i64 = if self.flexible {
            i64::from(self.unsigned_varint(field)?) - 1
        } else {
            i64::from(self.i32(field)?)
        };
        if count == -1 {
            return Ok(None);
        }
        if count < -1 {
            return Err(
                DecodeError::new(DecodeErrorKind::NegativeLength(count), start).in_field(field),
            );
        }
        let left = self.available();
        // A zero minimum would let any count through; every entry takes at least a byte.
        let min_entry_size = min_entry_size.max(1);
        let fits = left / min_entry_size;
        match usize::try_from(count) {
            Ok(n) if n <= fits => Ok(Some(n)),
            _ => Err(DecodeError::new(
                DecodeErrorKind::ArrayTooLong {
                    count: count.unsigned_abs(),
                    left,
                    min_entry_size,
                },
                start,
            )
            .in_field(field)),
        }
    }

    /// Like [`Reader::nullable_array_len`], for an array that must not be null.
    pub fn array_len(
        &mut self,
        field: &'static str,
        min_entry_size: usize,
    ) -> Result<usize, DecodeError> {
        let at = self.position();
        self.nullable_array_len(field, min_entry_size)?
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::UnexpectedNull, at).in_field(field))
    }

    /// A non-null array: its count is checked as in [`Reader::nullable_array_len`] before
    /// the `Vec` is allocated, then `entry` reads each entry. An entry's error is
    /// reported under `field[index]`.
    pub fn array<T>(
        &mut self,
        field: &'static str,
        min_entry_size: usize,
        mut entry: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.array_len(field, min_entry_size)?;
        let min_entry_size = min_entry_size.max(1);
        let mut out = Vec::with_capacity(count);
        let owed_outside = self.owed;
        for index in 0..count {
            // The entries after this one still need their smallest size each; the
            // count check above guarantees this neither overflows nor exceeds `left`.
            let later = count.saturating_sub(index.saturating_add(1));
            self.owed = owed_outside.saturating_add(later.saturating_mul(min_entry_size));
            let decoded = entry(self);
            self.owed = owed_outside;
            out.push(decoded.map_err(|e| e.in_entry(field, index))?);
        }
        Ok(out)
    }

    /// An array of `int32`.
    pub fn i32_array(&mut self, field: &'static str) -> Result<Vec<i32>, DecodeError> {
        self.array(field, 4, |r| r.i32("value"))
    }

    /// An array of non-null UTF-8 strings.
    pub fn string_array(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        let min = if self.flexible { 1 } else { 2 };
        self.array(field, min, |r| r.string("value"))
    }

    /// A tagged-field section (flexible versions only; a no-op otherwise).
    ///
    /// For each field `known(tag, sub)` is called with a reader over exactly the field's
    /// declared bytes. It returns `Ok(true)` if it decoded the tag, which must then have
    /// used every byte, or `Ok(false)` to skip an unknown tag. Tags must ascend.
    pub fn tagged_fields(
        &mut self,
        field: &'static str,
        mut known: impl FnMut(u32, &mut Reader<'a>) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint(field)?;
        let left = self.available();
        if usize::try_from(count).map_or(true, |n| n > left / MIN_TAGGED_FIELD_SIZE) {
            return Err(self.err(DecodeErrorKind::TooManyTaggedFields { count, left }, field));
        }
        let mut previous: Option<u32> = None;
        for _ in 0..count {
            let at = self.position();
            let tag = self.unsigned_varint(field)?;
            if let Some(previous) = previous.filter(|&p| tag <= p) {
                return Err(
                    DecodeError::new(DecodeErrorKind::TagOutOfOrder { tag, previous }, at)
                        .in_field(field),
                );
            }
            previous = Some(tag);
            let size_at = self.position();
            let size = self.unsigned_varint(field)?;
            let left = self.available();
            let size = usize::try_from(size)
                .ok()
                .filter(|&n| n <= left)
                .ok_or_else(|| {
                    DecodeError::new(
                        DecodeErrorKind::LengthTooLong {
                            len: u64::from(size),
                            left,
                        },
                        size_at,
                    )
                    .in_field(field)
                })?;
            let value_at = self.position();
            let value = self.take(size, field)?;
            let mut sub = Reader {
                buf: value,
                pos: 0,
                base: value_at,
                flexible: self.flexible,
                // The value is a slice of its own: what later fields need lies outside it.
                owed: 0,
            };
            if known(tag, &mut sub)? && sub.remaining() != 0 {
                return Err(DecodeError::new(
                    DecodeErrorKind::TaggedFieldSize {
                        tag,
                        declared: size,
                        used: size.saturating_sub(sub.remaining()),
                    },
                    value_at,
                )
                .in_field(field));
            }
        }
        Ok(())
    }

    /// Skips a tagged-field section, checking its structure but decoding no tag.
    pub fn skip_tagged_fields(&mut self, field: &'static str) -> Result<(), DecodeError> {
        self.tagged_fields(field, |_, _| Ok(false))
    }

    /// Ends decoding: fails if any byte is left, since a reply longer than its fields
    /// means it was read at the wrong version or is corrupt.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::new(
                DecodeErrorKind::TrailingBytes(n),
                self.position(),
            )),
        }
    }
}
