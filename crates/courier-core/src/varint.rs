//! Zigzag varints as used inside RecordBatch v2 records (KIP-98 record format).
//!
//! Kafka encodes every signed length, delta and count of a v2 record as a protobuf-style
//! zigzag varint (`int32`) or varlong (`int64`): 7 bits per byte, low bits first, high bit
//! set on every byte but the last. Zigzag maps small negative numbers (the `-1` of a null
//! key) to small unsigned ones so they stay one byte long.

/// Longest encoding of a zigzag `i32` varint.
pub const MAX_VARINT_LEN: usize = 5;
/// Longest encoding of a zigzag `i64` varlong.
pub const MAX_VARLONG_LEN: usize = 10;

/// Zigzag-maps an `i32` so that small magnitudes of either sign become small unsigned values.
#[inline]
pub const fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

/// Inverse of [`zigzag32`].
#[inline]
pub const fn unzigzag32(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

/// Zigzag-maps an `i64` so that small magnitudes of either sign become small unsigned values.
#[inline]
pub const fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag64`].
#[inline]
pub const fn unzigzag64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Number of bytes [`write_varint`] uses for `value`.
#[inline]
pub const fn varint_len(value: i32) -> usize {
    unsigned_len(zigzag32(value) as u64)
}

/// Number of bytes [`write_varlong`] uses for `value`.
#[inline]
pub const fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag64(value))
}

/// Number of 7-bit groups needed for `v` (at least one).
#[inline]
const fn unsigned_len(v: u64) -> usize {
    // 64 - leading_zeros is the bit width (`| 1` makes zero one bit wide). The groups are
    // ceil(bits / 7) = (bits * 9 + 64) / 64 for 1..=64 bits: a shift instead of a division,
    // which matters because the builder sizes every record before writing it.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    (bits * 9 + 64) >> 6
}

/// Writes the zigzag varint of `value` at the start of `out`, returning the bytes used.
///
/// `out` must hold at least [`varint_len`]`(value)` bytes (a `[u8; MAX_VARINT_LEN]` always
/// does); otherwise this panics on the out-of-bounds write.
#[inline]
pub fn write_varint(out: &mut [u8], value: i32) -> usize {
    write_unsigned(out, zigzag32(value) as u64)
}

/// Writes the zigzag varlong of `value` at the start of `out`, returning the bytes used.
///
/// `out` must hold at least [`varlong_len`]`(value)` bytes (a `[u8; MAX_VARLONG_LEN]` always
/// does); otherwise this panics on the out-of-bounds write.
#[inline]
pub fn write_varlong(out: &mut [u8], value: i64) -> usize {
    write_unsigned(out, zigzag64(value))
}

#[inline]
fn write_unsigned(out: &mut [u8], mut v: u64) -> usize {
    // Most lengths and deltas in a batch fit one byte.
    if v < 0x80 {
        out[0] = v as u8;
        return 1;
    }
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// A varint packed into a register: its wire bytes little-endian in a `u64` and how many
/// there are. Packing yields the length as a by-product, so the record writer sizes a record
/// and encodes its varints in one pass, then stores each with a single 8-byte write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed {
    bytes: u64,
    /// Number of wire bytes, 1..=8.
    pub len: usize,
}

impl Packed {
    /// Packs the zigzag varint of `value` (at most 5 bytes).
    #[inline]
    pub fn varint(value: i32) -> Packed {
        Self::unsigned(zigzag32(value) as u64)
    }

    /// Packs the length of a nullable field: -1 (zigzag 1) for `None`, else the length,
    /// whose zigzag form is simply twice it. A length above `i32::MAX` packs garbage; the
    /// record writer rejects such records before storing anything.
    #[inline]
    pub fn nullable_len(field: Option<&[u8]>) -> Packed {
        Self::unsigned(field.map_or(1, |f| (f.len() as u64) << 1))
    }

    /// Packs the zigzag varlong of `value`, or `None` if it needs more than 8 bytes
    /// (magnitudes of 2^55 and more, e.g. absurd timestamp deltas): use
    /// [`write_varlong`] for those.
    #[inline]
    pub fn varlong(value: i64) -> Option<Packed> {
        let z = zigzag64(value);
        (z < 1 << 56).then(|| Self::unsigned(z))
    }

    #[inline]
    fn unsigned(mut v: u64) -> Packed {
        if v < 0x80 {
            // Most deltas and key lengths in a batch fit one byte...
            return Packed { bytes: v, len: 1 };
        }
        if v < 0x4000 {
            // ...and record and value lengths of typical records two.
            return Packed {
                bytes: (v & 0x7f) | 0x80 | ((v >> 7) << 8),
                len: 2,
            };
        }
        let mut bytes = 0u64;
        let mut shift = 0;
        while v >= 0x80 {
            bytes |= ((v & 0x7f) | 0x80) << shift;
            v >>= 7;
            shift += 8;
        }
        Packed {
            bytes: bytes | (v << shift),
            len: shift / 8 + 1,
        }
    }

    /// Stores the varint at `out[at..]` and returns its length. The 8-byte store may spill
    /// up to 7 bytes of garbage past the varint, which the caller overwrites next: `out`
    /// must extend at least 8 bytes past `at`.
    #[inline]
    pub fn put(self, out: &mut [u8], at: usize) -> usize {
        out[at..at + 8].copy_from_slice(&self.bytes.to_le_bytes());
        self.len
    }
}

/// Consecutive packed fields in one `u64` (wire order, little-endian), for runs of small
/// fields that one 8-byte store can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedRun {
    bytes: u64,
    len: usize,
}

impl Packed {
    /// Starts a run with this varint followed by a zero byte.
    #[inline]
    pub fn then_zero_byte(self) -> PackedRun {
        PackedRun {
            bytes: self.bytes,
            len: self.len + 1,
        }
    }
}

impl PackedRun {
    /// Appends a varint; the caller keeps the whole run within 8 bytes.
    #[inline]
    pub fn then(self, next: Packed) -> PackedRun {
        debug_assert!(self.len + next.len <= 8);
        PackedRun {
            bytes: self.bytes | (next.bytes << (8 * self.len)),
            len: self.len + next.len,
        }
    }

    /// The bytes (wire order in little-endian) and how many are used.
    #[inline]
    pub fn into_parts(self) -> (u64, usize) {
        (self.bytes, self.len)
    }
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended before the last byte of the varint (high bit clear) was seen.
    Truncated,
    /// The varint has more 7-bit groups than its type can hold (5 for `i32`, 10 for `i64`)
    /// or sets bits above the type's width.
    Overflow,
}

/// Reads a zigzag `i32` varint from the start of `input`, returning it and the bytes read.
#[inline]
pub fn read_varint(input: &[u8]) -> Result<(i32, usize), VarintError> {
    let (raw, n) = read_unsigned(input, MAX_VARINT_LEN)?;
    if raw > u32::MAX as u64 {
        return Err(VarintError::Overflow);
    }
    Ok((unzigzag32(raw as u32), n))
}

/// Reads a zigzag `i64` varlong from the start of `input`, returning it and the bytes read.
#[inline]
pub fn read_varlong(input: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, n) = read_unsigned(input, MAX_VARLONG_LEN)?;
    Ok((unzigzag64(raw), n))
}

#[inline]
fn read_unsigned(input: &[u8], max_len: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().take(max_len).enumerate() {
        let group = (byte & 0x7f) as u64;
        let shift = 7 * i as u32;
        // The tenth group of a varlong may only carry the single top bit.
        if shift == 63 && group > 1 {
            return Err(VarintError::Overflow);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if input.len() < max_len {
        Err(VarintError::Truncated)
    } else {
        Err(VarintError::Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc32(v: i32) -> Vec<u8> {
        let mut b = [0u8; MAX_VARINT_LEN];
        let n = write_varint(&mut b, v);
        b[..n].to_vec()
    }

    fn enc64(v: i64) -> Vec<u8> {
        let mut b = [0u8; MAX_VARLONG_LEN];
        let n = write_varlong(&mut b, v);
        b[..n].to_vec()
    }

    #[test]
    fn zigzag_varint_matches_kafka_byte_layout() {
        // Values and bytes as Kafka's ByteUtils.writeVarint produces them.
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(1), [0x02]);
        assert_eq!(enc32(-2), [0x03]);
        assert_eq!(enc32(63), [0x7e]);
        assert_eq!(enc32(-64), [0x7f]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(300), [0xd8, 0x04]);
        assert_eq!(enc32(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn zigzag_varlong_extremes_use_ten_bytes() {
        assert_eq!(enc64(0), [0x00]);
        assert_eq!(enc64(-1), [0x01]);
        assert_eq!(
            enc64(i64::MAX),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(
            enc64(i64::MIN),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn varint_len_agrees_with_writer_at_every_group_boundary() {
        let mut probes = vec![0i64, 1, -1, i64::MAX, i64::MIN];
        for shift in 1..63 {
            let p = 1i64 << shift;
            probes.extend([p - 1, p, -p, -p - 1, p + 1]);
        }
        for &v in &probes {
            assert_eq!(varlong_len(v), enc64(v).len(), "varlong {v}");
            if let Ok(v32) = i32::try_from(v) {
                assert_eq!(varint_len(v32), enc32(v32).len(), "varint {v32}");
            }
        }
    }

    #[test]
    fn varints_round_trip_through_reader() {
        for v in [0, 1, -1, 63, -64, 64, 8191, -8193, i32::MAX, i32::MIN] {
            let bytes = enc32(v);
            assert_eq!(read_varint(&bytes), Ok((v, bytes.len())));
        }
        for v in [0, 1, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            let bytes = enc64(v);
            assert_eq!(read_varlong(&bytes), Ok((v, bytes.len())));
        }
    }

    #[test]
    fn packed_varints_store_the_same_bytes_as_the_byte_writers() {
        let mut probes = vec![0i64, 1, -1, i64::MAX, i64::MIN];
        for shift in 1..63 {
            let p = 1i64 << shift;
            probes.extend([p - 1, p, -p, -p - 1]);
        }
        for &v in &probes {
            let mut out = [0xaau8; 24];
            let Some(packed) = Packed::varlong(v) else {
                assert!(varlong_len(v) > 8, "{v} fits 8 bytes but was not packed");
                continue;
            };
            assert_eq!(packed.len, varlong_len(v));
            let n = packed.put(&mut out, 3);
            assert_eq!(&out[3..3 + n], &enc64(v)[..], "varlong {v}");
            assert_eq!(out[..3], [0xaa; 3], "wrote before its position");
            if let Ok(v32) = i32::try_from(v) {
                let mut out = [0xaau8; 16];
                let packed = Packed::varint(v32);
                assert_eq!(packed.len, varint_len(v32));
                if v32 >= 0 {
                    let field = vec![0u8; (v32 as usize).min(1 << 16)];
                    let len = field.len() as i32;
                    let mut a = [0u8; 16];
                    let mut b = [0u8; 16];
                    Packed::nullable_len(Some(&field)).put(&mut a, 0);
                    Packed::varint(len).put(&mut b, 0);
                    assert_eq!(a, b, "nullable length {len}");
                }
                let n = packed.put(&mut out, 2);
                assert_eq!(&out[2..2 + n], &enc32(v32)[..], "varint {v32}");
            }
        }
    }

    #[test]
    fn packed_run_stores_the_same_bytes_as_separate_puts() {
        for (a, b, c) in [
            (0, 0, 0),
            (1, -1, 63),
            (-64, 64, 5),
            (300, 0, -2),
            (8191, 1, 1),
        ] {
            let (pa, pb, pc) = (Packed::varint(a), Packed::varint(b), Packed::varint(c));
            if pa.len + 1 + pb.len + pc.len > 8 {
                continue;
            }
            let mut separate = [0u8; 24];
            let mut p = pa.put(&mut separate, 0);
            separate[p] = 0;
            p += 1;
            p += pb.put(&mut separate, p);
            p += pc.put(&mut separate, p);
            let (run, len) = pa.then_zero_byte().then(pb).then(pc).into_parts();
            assert_eq!(len, p);
            assert_eq!(&run.to_le_bytes()[..len], &separate[..len], "{a} {b} {c}");
        }
    }

    #[test]
    fn null_field_packs_as_minus_one() {
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        Packed::nullable_len(None).put(&mut a, 0);
        Packed::varint(-1).put(&mut b, 0);
        assert_eq!(a, b);
        assert_eq!(Packed::nullable_len(None).len, 1);
    }

    #[test]
    fn truncated_varint_is_an_error_not_a_panic() {
        assert_eq!(read_varint(&[]), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(read_varlong(&[0xff, 0xff]), Err(VarintError::Truncated));
    }

    #[test]
    fn overlong_varint_is_rejected() {
        // Six groups for an i32 and eleven for an i64 can only come from a corrupt record.
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(VarintError::Overflow)
        );
        // Five groups whose value exceeds 32 bits.
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
            Err(VarintError::Overflow)
        );
        assert_eq!(read_varlong(&[0xff; 11]), Err(VarintError::Overflow));
        // Ten groups where the last one carries more than the top bit.
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert_eq!(read_varlong(&ten), Err(VarintError::Overflow));
    }
}
