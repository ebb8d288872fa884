//! Record compression in the exact framings Kafka brokers accept, plus bounded decompression.
//!
//! Only the records section of a batch (everything after `recordCount`) is compressed; the
//! codec id goes in bits 0-2 of the batch attributes.
//!
//! | codec  | what we write | why |
//! |--------|---------------|-----|
//! | gzip   | one gzip member (RFC 1952), raw deflate from `flate2`'s pure-Rust backend | Java's `GZIPInputStream` and every client read plain gzip |
//! | snappy | xerial framing: 16-byte `\x82SNAPPY\0` header, then big-endian length + raw snappy block per 32 KiB | what the Java producer writes (`SnappyOutputStream`); the broker's `SnappyInputStream` also accepts a bare raw block (librdkafka writes that), but only the framed form is what every Java-era consumer expects |
//! | lz4    | LZ4 frame, 64 KiB independent blocks, no block or content checksum, correct header checksum (KIP-57) | what Java's `Lz4BlockOutputStream` writes; brokers reject the size-prefixed block format and 8 MiB blocks |
//! | zstd   | one zstd frame (RFC 8878) with the content size, no checksum, at the configured level (default 3, Java's and librdkafka's) | what `ZSTD_compress2` writes, which is what Java's zstd-jni and librdkafka write; encoded by `mzstd`, a safe-Rust port of libzstd whose output is byte-identical to it (checked against libzstd in the tests), read back by `ruzstd` |
//!
//! The [`Compressor`] keeps every scratch buffer and codec state across batches, so sealing
//! a batch allocates nothing but the sealed batch itself.

use std::io::Read;

use lz4_flex::block::CompressTable;

/// The codec recorded in bits 0-2 of a v2 batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// Records stored as they are.
    None = 0,
    /// gzip (RFC 1952).
    Gzip = 1,
    /// Snappy, xerial-framed or raw.
    Snappy = 2,
    /// LZ4 frame format.
    Lz4 = 3,
    /// Zstandard (KIP-110).
    Zstd = 4,
}

impl Codec {
    /// The codec's id in the attributes field.
    #[inline]
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The codec with attribute id `id` (0-4), `None` for the ids Kafka leaves undefined (5-7).
    #[inline]
    pub const fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// The name Kafka uses in `compression.type`.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a producer asks for its batches to be compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Send records uncompressed.
    #[default]
    None,
    /// gzip at a deflate level from 0 (store) to 9 (smallest).
    Gzip {
        /// Deflate level, clamped to 0..=9.
        level: u32,
    },
    /// Snappy in xerial framing, like the Java producer.
    Snappy,
    /// LZ4 frame with 64 KiB blocks, like the Java producer.
    Lz4,
    /// Zstandard (KIP-110, brokers 2.1 and later) at a level from
    /// [`ZSTD_MIN_LEVEL`](Compression::ZSTD_MIN_LEVEL) to
    /// [`ZSTD_MAX_LEVEL`](Compression::ZSTD_MAX_LEVEL); 0 means libzstd's default, 3.
    Zstd {
        /// libzstd's compression level; out-of-range levels are clamped.
        level: i32,
    },
}

impl Compression {
    /// Java's default gzip level (`compression.gzip.level` = -1, i.e. zlib's 6).
    pub const GZIP_DEFAULT_LEVEL: u32 = 6;

    /// Java's and librdkafka's default zstd level (`compression.zstd.level` = 3).
    pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
    /// The fastest zstd level libzstd accepts (Java's `Zstd.minCompressionLevel()`).
    pub const ZSTD_MIN_LEVEL: i32 = -131_072;
    /// The strongest zstd level (`ZSTD_maxCLevel()`).
    pub const ZSTD_MAX_LEVEL: i32 = 22;

    /// zstd at the Java and librdkafka default level.
    pub const fn zstd() -> Compression {
        Compression::Zstd {
            level: Self::ZSTD_DEFAULT_LEVEL,
        }
    }

    /// gzip at Java's default level.
    pub const fn gzip() -> Compression {
        Compression::Gzip {
            level: Self::GZIP_DEFAULT_LEVEL,
        }
    }

    /// The wire codec this setting produces (when compressing pays off).
    pub const fn codec(self) -> Codec {
        match self {
            Compression::None => Codec::None,
            Compression::Gzip { .. } => Codec::Gzip,
            Compression::Snappy => Codec::Snappy,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zstd { .. } => Codec::Zstd,
        }
    }
}

/// A codec failed to compress input it should always accept. Callers fall back to sending
/// the records uncompressed, which the broker always accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{codec} compression failed: {reason}")]
pub struct CompressError {
    /// The codec that failed.
    pub codec: Codec,
    /// The codec library's message.
    pub reason: String,
}

/// Why compressed records could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// The data is not a valid stream of the codec.
    #[error("corrupt {codec} data: {reason}")]
    Corrupt {
        /// The codec being decoded.
        codec: Codec,
        /// What was wrong.
        reason: String,
    },
    /// The data would decompress to more than the caller's limit.
    #[error("{codec} data decompresses to more than the {limit}-byte limit")]
    TooLarge {
        /// The codec being decoded.
        codec: Codec,
        /// The limit in bytes.
        limit: usize,
    },
    /// The codec id is one Kafka does not define.
    #[error("codec {0} cannot be decompressed")]
    Unsupported(Codec),
}

fn corrupt(codec: Codec, reason: impl Into<String>) -> DecompressError {
    DecompressError::Corrupt {
        codec,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------
// LZ4 frame

/// LZ4 frame magic number 0x184D2204, little-endian.
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
/// FLG: version 01, independent blocks; no block checksum, content size, content checksum
/// or dictionary id - exactly Java's `Lz4BlockOutputStream` defaults.
const LZ4_FLG: u8 = 0b0110_0000;
/// BD: block maximum size code 4 = 64 KiB, Java's `BLOCKSIZE_64KB`.
const LZ4_BD: u8 = 4 << 4;
/// Bytes per LZ4 block. Kafka accepts codes 4-7 (64 KiB - 4 MiB); 64 KiB keeps each block's
/// hash table and input in L2 and matches Java.
pub const LZ4_BLOCK_SIZE: usize = 64 * 1024;
/// The frame header Kafka expects, checksum included.
///
/// The last byte is `(xxhash32(FLG, BD; seed 0) >> 8) & 0xFF`. KIP-57 fixed Kafka to hash
/// only the descriptor (FLG..BD) for magic v1+ batches; magic v0 used the broken checksum
/// that also hashed the magic number. `tests::lz4_frame_header_checksum_follows_kip_57`
/// recomputes it.
pub const LZ4_FRAME_HEADER: [u8; 7] = [
    LZ4_MAGIC[0],
    LZ4_MAGIC[1],
    LZ4_MAGIC[2],
    LZ4_MAGIC[3],
    LZ4_FLG,
    LZ4_BD,
    0x82,
];
/// Block size word flag: the block is stored uncompressed.
const LZ4_UNCOMPRESSED_FLAG: u32 = 0x8000_0000;

// ---------------------------------------------------------------------------------------
// snappy (xerial framing)

/// `\x82SNAPPY\0`: the xerial stream magic.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, then version 1 and minimum compatible version 1 (big-endian), as
/// snappy-java's `SnappyOutputStream` writes; its reader rejects lower versions.
const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];
/// Uncompressed bytes per xerial chunk, snappy-java's default block size.
const XERIAL_CHUNK: usize = 32 * 1024;

// ---------------------------------------------------------------------------------------
// gzip

/// gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// Reusable compression state for sealing batches: scratch output, LZ4 hash tables, the
/// deflate state, the zstd encoder and the snappy encoder.
///
/// One per sealing thread is enough; it is not tied to a partition. Its buffers grow to the
/// largest batch compressed and are then reused without being cleared.
pub struct Compressor {
    /// Compressed output. Its *length* only grows (it is never truncated) so each use writes
    /// over old bytes instead of zero-filling again; `used` bytes of it are the result.
    scratch: Vec<u8>,
    /// LZ4 table with 16-bit positions: faster, for blocks shorter than 65535 bytes.
    lz4_small: CompressTable,
    /// LZ4 table with 32-bit positions, for full 64 KiB blocks.
    lz4_large: CompressTable,
    deflate: Option<(u32, flate2::Compress)>,
    /// The zstd encoder for one level, with its match tables and workspace kept between
    /// batches (libzstd's `ZSTD_CCtx` reuse).
    zstd: Option<(i32, mzstd::Compressor)>,
    snappy: snap::raw::Encoder,
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("scratch_len", &self.scratch.len())
            .field("deflate_level", &self.deflate.as_ref().map(|(l, _)| *l))
            .field("zstd_level", &self.zstd.as_ref().map(|(l, _)| *l))
            .finish_non_exhaustive()
    }
}

/// Grows `buf` to at least `len` bytes without ever shrinking it.
#[inline]
fn ensure_len(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

impl Compressor {
    /// A compressor with empty buffers; they grow on first use.
    pub fn new() -> Self {
        Compressor {
            scratch: Vec::new(),
            lz4_small: CompressTable::small(),
            lz4_large: CompressTable::large(),
            deflate: None,
            zstd: None,
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// Compresses `input` (a batch's encoded records) in Kafka's framing for `compression`.
    ///
    /// The returned slice borrows the compressor's scratch buffer and is valid until the
    /// next call. [`Compression::None`] returns `input` unchanged.
    pub fn compress<'a>(
        &'a mut self,
        compression: Compression,
        input: &'a [u8],
    ) -> Result<&'a [u8], CompressError> {
        let used = match compression {
            Compression::None => return Ok(input),
            Compression::Lz4 => self.lz4_frame(input)?,
            Compression::Snappy => self.snappy_xerial(input)?,
            Compression::Gzip { level } => self.gzip(level.min(9), input)?,
            Compression::Zstd { level } => self.zstd(
                level.clamp(Compression::ZSTD_MIN_LEVEL, Compression::ZSTD_MAX_LEVEL),
                input,
            )?,
        };
        Ok(&self.scratch[..used])
    }

    /// Writes an LZ4 frame of `input` into `scratch`, returning its length.
    fn lz4_frame(&mut self, input: &[u8]) -> Result<usize, CompressError> {
        let blocks = input.len().div_ceil(LZ4_BLOCK_SIZE);
        // Header, per block a size word plus the worst case, end mark.
        let worst = LZ4_FRAME_HEADER.len()
            + blocks * 4
            + lz4_flex::block::get_maximum_output_size(input.len())
            + blocks * 16
            + 4;
        ensure_len(&mut self.scratch, worst);
        let out = &mut self.scratch[..];
        out[..LZ4_FRAME_HEADER.len()].copy_from_slice(&LZ4_FRAME_HEADER);
        let mut pos = LZ4_FRAME_HEADER.len();
        for block in input.chunks(LZ4_BLOCK_SIZE) {
            let body = pos + 4;
            // Each block is compressed on its own (FLG says independent blocks) with a
            // reused hash table, never a fresh FrameEncoder per batch.
            let table = if block.len() < u16::MAX as usize {
                &mut self.lz4_small
            } else {
                &mut self.lz4_large
            };
            let limit = body + lz4_flex::block::get_maximum_output_size(block.len());
            let n = lz4_flex::block::compress_into_with_table(block, &mut out[body..limit], table)
                .map_err(|e| CompressError {
                    codec: Codec::Lz4,
                    reason: e.to_string(),
                })?;
            let word = if n >= block.len() {
                // Incompressible: store it raw with the high bit set, as Java does.
                out[body..body + block.len()].copy_from_slice(block);
                pos = body + block.len();
                block.len() as u32 | LZ4_UNCOMPRESSED_FLAG
            } else {
                pos = body + n;
                n as u32
            };
            out[body - 4..body].copy_from_slice(&word.to_le_bytes());
        }
        // End mark: a zero block size. No content checksum (FLG bit 2 is clear).
        out[pos..pos + 4].copy_from_slice(&[0; 4]);
        Ok(pos + 4)
    }

    /// Writes xerial-framed snappy of `input` into `scratch`, returning its length.
    fn snappy_xerial(&mut self, input: &[u8]) -> Result<usize, CompressError> {
        let chunks = input.len().div_ceil(XERIAL_CHUNK);
        let worst = XERIAL_HEADER.len()
            + chunks * (4 + snap::raw::max_compress_len(XERIAL_CHUNK))
            + snap::raw::max_compress_len(0);
        ensure_len(&mut self.scratch, worst);
        let out = &mut self.scratch[..];
        out[..XERIAL_HEADER.len()].copy_from_slice(&XERIAL_HEADER);
        let mut pos = XERIAL_HEADER.len();
        for chunk in input.chunks(XERIAL_CHUNK) {
            let body = pos + 4;
            let n = self
                .snappy
                .compress(chunk, &mut out[body..])
                .map_err(|e| CompressError {
                    codec: Codec::Snappy,
                    reason: e.to_string(),
                })?;
            out[pos..body].copy_from_slice(&(n as u32).to_be_bytes());
            pos = body + n;
        }
        Ok(pos)
    }

    /// Writes one zstd frame of `input` into `scratch`, returning its length.
    fn zstd(&mut self, level: i32, input: &[u8]) -> Result<usize, CompressError> {
        let err = |reason: String| CompressError {
            codec: Codec::Zstd,
            reason,
        };
        let encoder = match &mut self.zstd {
            Some((l, e)) if *l == level => e,
            slot => {
                let config = mzstd::Level::try_from(level)
                    .map(|l| mzstd::EncoderConfig::default().with_level(l))
                    .map_err(|e| err(e.to_string()))?;
                let e = mzstd::Compressor::new(config).map_err(|e| err(e.to_string()))?;
                &mut slot.insert((level, e)).1
            }
        };
        // The bound makes the one-shot call unable to run out of room; libzstd's own
        // `ZSTD_compressBound`, so a frame never needs a second pass.
        let bound = mzstd::Compressor::max_compressed_size(input.len())
            .map_err(|_| err(format!("{} bytes is too large for one frame", input.len())))?;
        ensure_len(&mut self.scratch, bound);
        encoder
            .compress_to_slice(input, &mut self.scratch[..bound])
            .map_err(|e| err(e.to_string()))
    }

    /// Writes one gzip member of `input` into `scratch`, returning its length.
    fn gzip(&mut self, level: u32, input: &[u8]) -> Result<usize, CompressError> {
        let err = |reason: String| CompressError {
            codec: Codec::Gzip,
            reason,
        };
        let deflate = match &mut self.deflate {
            Some((l, d)) if *l == level => {
                d.reset();
                d
            }
            slot => {
                // miniz_oxide's deflate state is ~300 KiB: build it once per level, not
                // per batch.
                let d = flate2::Compress::new(flate2::Compression::new(level), false);
                &mut slot.insert((level, d)).1
            }
        };
        // Stored blocks cost 5 bytes per 64 KiB; 1/64 plus a margin covers any input in one
        // pass, and the loop below grows the buffer if a codec ever needs more.
        ensure_len(
            &mut self.scratch,
            GZIP_HEADER.len() + input.len() + input.len() / 64 + 64 + 8,
        );
        self.scratch[..GZIP_HEADER.len()].copy_from_slice(&GZIP_HEADER);
        let start = GZIP_HEADER.len();
        loop {
            let consumed = deflate.total_in() as usize;
            let written = start + deflate.total_out() as usize;
            let status = deflate
                .compress(
                    &input[consumed..],
                    &mut self.scratch[written..],
                    flate2::FlushCompress::Finish,
                )
                .map_err(|e| err(e.to_string()))?;
            if status == flate2::Status::StreamEnd {
                break;
            }
            let grow = self.scratch.len() + self.scratch.len() / 2 + 64;
            self.scratch.resize(grow, 0);
        }
        let mut pos = start + deflate.total_out() as usize;
        ensure_len(&mut self.scratch, pos + 8);
        let mut crc = crc32fast::Hasher::new();
        crc.update(input);
        self.scratch[pos..pos + 4].copy_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        self.scratch[pos + 4..pos + 8].copy_from_slice(&(input.len() as u32).to_le_bytes());
        pos += 8;
        Ok(pos)
    }
}

/// Decompresses `input` written with `codec`, appending to `out`, refusing to produce more
/// than `limit` bytes.
///
/// Allocation is bounded by `limit` and by the input: no size claimed in a header is
/// trusted before the data backs it.
pub fn decompress(
    codec: Codec,
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    match codec {
        Codec::None => {
            if input.len() > limit {
                return Err(DecompressError::TooLarge { codec, limit });
            }
            out.extend_from_slice(input);
            Ok(())
        }
        Codec::Lz4 => lz4_frame_decompress(input, limit, out),
        Codec::Snappy => snappy_decompress(input, limit, out),
        Codec::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(input);
            read_bounded(codec, decoder, limit, out)
        }
        Codec::Zstd => zstd_decompress(input, limit, out),
    }
}

/// Reads all of `reader` into `out`, failing once more than `limit` bytes come out.
fn read_bounded(
    codec: Codec,
    reader: impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let start = out.len();
    let mut bounded = reader.take(limit as u64 + 1);
    bounded
        .read_to_end(out)
        .map_err(|e| corrupt(codec, e.to_string()))?;
    if out.len() - start > limit {
        return Err(DecompressError::TooLarge { codec, limit });
    }
    Ok(())
}

fn lz4_frame_decompress(
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    const C: Codec = Codec::Lz4;
    let start = out.len();
    if input.len() < 7 {
        return Err(corrupt(C, "frame shorter than its header"));
    }
    if input[..4] != LZ4_MAGIC {
        return Err(corrupt(C, "bad frame magic"));
    }
    let flg = input[4];
    let bd = input[5];
    if flg >> 6 != 1 {
        return Err(corrupt(C, "unsupported frame version"));
    }
    if flg & 0b10 != 0 || bd & 0b1000_1111 != 0 {
        return Err(corrupt(C, "reserved descriptor bits set"));
    }
    if flg & 0b1 != 0 {
        return Err(corrupt(C, "dictionary ids are not supported"));
    }
    // Kafka requires independent blocks; a dependent block would reference the previous
    // one, which a plain block decoder cannot resolve.
    if flg & 0b10_0000 == 0 {
        return Err(corrupt(C, "dependent blocks are not supported"));
    }
    let block_checksum = flg & 0b1_0000 != 0;
    let content_size = flg & 0b1000 != 0;
    let content_checksum = flg & 0b100 != 0;
    let block_max = match (bd >> 4) & 0b111 {
        code @ 4..=7 => 1usize << (2 * code + 8),
        _ => return Err(corrupt(C, "block size code outside 4..=7")),
    };
    let descriptor_end = if content_size { 6 + 8 } else { 6 };
    if input.len() < descriptor_end + 1 {
        return Err(corrupt(C, "frame shorter than its header"));
    }
    // KIP-57: the checksum covers the descriptor only, not the magic.
    let hc = (twox_hash::XxHash32::oneshot(0, &input[4..descriptor_end]) >> 8) as u8;
    if input[descriptor_end] != hc {
        return Err(corrupt(C, "frame header checksum mismatch"));
    }
    let mut rest = &input[descriptor_end + 1..];
    loop {
        let Some((word, tail)) = split_u32_le(rest) else {
            return Err(corrupt(C, "missing end mark"));
        };
        rest = tail;
        if word == 0 {
            break;
        }
        let raw = word & LZ4_UNCOMPRESSED_FLAG != 0;
        let len = (word & !LZ4_UNCOMPRESSED_FLAG) as usize;
        if len > block_max {
            return Err(corrupt(C, "block larger than the frame's block size"));
        }
        if rest.len() < len {
            return Err(corrupt(C, "truncated block"));
        }
        let (block, tail) = rest.split_at(len);
        rest = tail;
        if block_checksum {
            let Some((sum, tail)) = split_u32_le(rest) else {
                return Err(corrupt(C, "truncated block checksum"));
            };
            rest = tail;
            if twox_hash::XxHash32::oneshot(0, block) != sum {
                return Err(corrupt(C, "block checksum mismatch"));
            }
        }
        let produced = out.len() - start;
        let room = limit - produced;
        if raw {
            if block.len() > room {
                return Err(DecompressError::TooLarge { codec: C, limit });
            }
            out.extend_from_slice(block);
        } else {
            // An LZ4 block expands at most 255x (a match-length byte adds at most 255
            // bytes), so never zero more memory than the input can fill.
            let capacity = block_max
                .min(room)
                .min(len.saturating_mul(255).saturating_add(255));
            let at = out.len();
            out.resize(at + capacity, 0);
            match lz4_flex::block::decompress_into(block, &mut out[at..]) {
                Ok(n) => out.truncate(at + n),
                Err(lz4_flex::block::DecompressError::OutputTooSmall { .. })
                    if capacity == room && room < block_max =>
                {
                    out.truncate(at);
                    return Err(DecompressError::TooLarge { codec: C, limit });
                }
                Err(e) => {
                    out.truncate(at);
                    return Err(corrupt(C, e.to_string()));
                }
            }
        }
    }
    if content_checksum {
        let Some((sum, tail)) = split_u32_le(rest) else {
            return Err(corrupt(C, "truncated content checksum"));
        };
        rest = tail;
        if twox_hash::XxHash32::oneshot(0, &out[start..]) != sum {
            return Err(corrupt(C, "content checksum mismatch"));
        }
    }
    if content_size {
        let declared = u64::from_le_bytes(input[6..14].try_into().expect("8 bytes"));
        if declared != (out.len() - start) as u64 {
            return Err(corrupt(C, "content size mismatch"));
        }
    }
    if !rest.is_empty() {
        return Err(corrupt(C, "bytes after the end of the frame"));
    }
    Ok(())
}

#[inline]
fn split_u32_le(input: &[u8]) -> Option<(u32, &[u8])> {
    let (word, rest) = input.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*word), rest))
}

#[inline]
fn split_u32_be(input: &[u8]) -> Option<(u32, &[u8])> {
    let (word, rest) = input.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*word), rest))
}

fn snappy_decompress(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    const C: Codec = Codec::Snappy;
    let start = out.len();
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |chunk: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        // The claimed length is checked against the limit before anything is allocated.
        let n = snap::raw::decompress_len(chunk).map_err(|e| corrupt(C, e.to_string()))?;
        if n > limit - (out.len() - start) {
            return Err(DecompressError::TooLarge { codec: C, limit });
        }
        let at = out.len();
        out.resize(at + n, 0);
        match decoder.decompress(chunk, &mut out[at..]) {
            Ok(written) if written == n => Ok(()),
            Ok(_) => Err(corrupt(C, "block shorter than its declared length")),
            Err(e) => Err(corrupt(C, e.to_string())),
        }
    };
    // Like snappy-java's SnappyInputStream (the broker's reader): xerial framing when the
    // magic is there, otherwise one raw block (what librdkafka writes).
    if input.len() >= XERIAL_HEADER.len() && input[..XERIAL_MAGIC.len()] == XERIAL_MAGIC {
        let mut rest = &input[XERIAL_HEADER.len()..];
        while !rest.is_empty() {
            let Some((len, tail)) = split_u32_be(rest) else {
                return Err(corrupt(C, "truncated xerial chunk length"));
            };
            let len = len as usize;
            if tail.len() < len {
                return Err(corrupt(C, "truncated xerial chunk"));
            }
            let (chunk, tail) = tail.split_at(len);
            block(chunk, out)?;
            rest = tail;
        }
        Ok(())
    } else {
        block(input, out)
    }
}

/// Window size declared by the zstd frame at the start of `input`, if it parses.
///
/// ruzstd reserves the whole window before decoding a single byte, so the window must be
/// checked against the caller's limit first or a six-byte header could reserve 100 MiB.
fn zstd_window_size(input: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    if input.len() < 5 || input[..4] != MAGIC {
        return None;
    }
    let fhd = input[4];
    let single_segment = fhd & 0b10_0000 != 0;
    if !single_segment {
        let wd = *input.get(5)?;
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 0b111));
    }
    // Single segment: the window is the frame content size.
    let dict_len = [0usize, 1, 2, 4][(fhd & 0b11) as usize];
    let fcs_len = [1usize, 2, 4, 8][(fhd >> 6) as usize];
    let at = 5 + dict_len;
    let field = input.get(at..at + fcs_len)?;
    let mut bytes = [0u8; 8];
    bytes[..fcs_len].copy_from_slice(field);
    let size = u64::from_le_bytes(bytes);
    Some(if fcs_len == 2 { size + 256 } else { size })
}

fn zstd_decompress(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    const C: Codec = Codec::Zstd;
    let start = out.len();
    let mut rest = input;
    if rest.is_empty() {
        return Err(corrupt(C, "empty input"));
    }
    // Producers write one frame; concatenated frames are still valid zstd.
    while !rest.is_empty() {
        let window = zstd_window_size(rest).ok_or_else(|| corrupt(C, "bad frame header"))?;
        if window > limit as u64 {
            return Err(DecompressError::TooLarge { codec: C, limit });
        }
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(&mut rest)
            .map_err(|e| corrupt(C, e.to_string()))?;
        let room = limit - (out.len() - start);
        read_bounded(C, &mut decoder, room, out).map_err(|e| match e {
            DecompressError::TooLarge { codec, .. } => DecompressError::TooLarge { codec, limit },
            other => other,
        })?;
        if !decoder.decoder.is_finished() {
            return Err(corrupt(C, "truncated frame"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(compression: Compression, input: &[u8]) -> Vec<u8> {
        let mut c = Compressor::new();
        let framed = c.compress(compression, input).unwrap().to_vec();
        let mut out = Vec::new();
        decompress(compression.codec(), &framed, usize::MAX / 2, &mut out).unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"{\"order_id\":12345,\"customer\":\"c-0042\"}"[i % 38] ^ (i / 977) as u8)
            .collect()
    }

    #[test]
    fn lz4_frame_header_checksum_follows_kip_57() {
        let hc = (twox_hash::XxHash32::oneshot(0, &[LZ4_FLG, LZ4_BD]) >> 8) as u8;
        assert_eq!(LZ4_FRAME_HEADER[6], hc);
        // The exact bytes Java's Lz4BlockOutputStream writes for 64 KiB blocks.
        assert_eq!(LZ4_FRAME_HEADER, [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
        // The legacy (pre-KIP-57) checksum hashed the magic too and differs.
        let broken = (twox_hash::XxHash32::oneshot(0, &LZ4_FRAME_HEADER[..6]) >> 8) as u8;
        assert_ne!(broken, hc);
    }

    #[test]
    fn lz4_frame_is_readable_by_lz4_flex_frame_decoder() {
        let input = sample(200_000);
        let mut c = Compressor::new();
        let framed = c.compress(Compression::Lz4, &input).unwrap().to_vec();
        assert_eq!(framed[..7], LZ4_FRAME_HEADER);
        assert_eq!(framed[framed.len() - 4..], [0, 0, 0, 0]);
        let mut decoded = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&framed[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, input);
    }

    #[test]
    fn lz4_blocks_are_at_most_64k_and_incompressible_ones_are_stored_raw() {
        // Pseudo-random bytes do not compress: every block must be stored with the high bit.
        let mut x: u32 = 0x1234_5678;
        let input: Vec<u8> = (0..150_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut c = Compressor::new();
        let framed = c.compress(Compression::Lz4, &input).unwrap().to_vec();
        let mut rest = &framed[7..];
        let mut sizes = Vec::new();
        loop {
            let word = u32::from_le_bytes(rest[..4].try_into().unwrap());
            rest = &rest[4..];
            if word == 0 {
                break;
            }
            assert_ne!(word & LZ4_UNCOMPRESSED_FLAG, 0, "block should be raw");
            let len = (word & !LZ4_UNCOMPRESSED_FLAG) as usize;
            sizes.push(len);
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        assert_eq!(sizes, [65536, 65536, 150_000 - 131_072]);
        assert_eq!(round_trip(Compression::Lz4, &input), input);
    }

    #[test]
    fn every_codec_round_trips_empty_small_and_multi_block_inputs() {
        for compression in [
            Compression::Lz4,
            Compression::Snappy,
            Compression::gzip(),
            Compression::Gzip { level: 0 },
            Compression::Gzip { level: 1 },
            Compression::Gzip { level: 9 },
            Compression::zstd(),
            Compression::Zstd { level: 0 },
            Compression::Zstd { level: -5 },
            Compression::Zstd { level: 1 },
            Compression::Zstd { level: 19 },
        ] {
            for len in [0, 1, 100, 65_535, 65_536, 65_537, 300_000] {
                let input = sample(len);
                assert_eq!(
                    round_trip(compression, &input),
                    input,
                    "{compression:?} {len}"
                );
            }
        }
    }

    #[test]
    fn compressor_reuse_across_codecs_and_sizes_gives_identical_output() {
        // Reused scratch holds stale bytes from a larger earlier batch; output must not
        // depend on them.
        let big = sample(500_000);
        let small = sample(1000);
        for compression in [
            Compression::Lz4,
            Compression::Snappy,
            Compression::gzip(),
            Compression::zstd(),
        ] {
            let fresh = Compressor::new()
                .compress(compression, &small)
                .unwrap()
                .to_vec();
            let mut reused = Compressor::new();
            reused.compress(compression, &big).unwrap();
            reused
                .compress(Compression::Gzip { level: 1 }, &big)
                .unwrap();
            reused
                .compress(Compression::Zstd { level: 7 }, &big)
                .unwrap();
            assert_eq!(reused.compress(compression, &small).unwrap(), &fresh[..]);
        }
    }

    #[test]
    fn snappy_output_uses_xerial_framing_with_32k_chunks() {
        let input = sample(70_000);
        let mut c = Compressor::new();
        let framed = c.compress(Compression::Snappy, &input).unwrap().to_vec();
        assert_eq!(framed[..16], XERIAL_HEADER);
        let mut rest = &framed[16..];
        let mut decoded_lens = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let chunk = &rest[4..4 + len];
            decoded_lens.push(snap::raw::decompress_len(chunk).unwrap());
            rest = &rest[4 + len..];
        }
        assert_eq!(decoded_lens, [32768, 32768, 70_000 - 65_536]);
    }

    #[test]
    fn raw_snappy_block_is_accepted_like_the_broker_does() {
        let input = sample(10_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let mut out = Vec::new();
        decompress(Codec::Snappy, &raw, 1 << 20, &mut out).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn gzip_output_is_a_standard_gzip_member() {
        let input = sample(50_000);
        let mut c = Compressor::new();
        let framed = c.compress(Compression::gzip(), &input).unwrap().to_vec();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&framed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let input = vec![0u8; 1 << 20];
        for compression in [
            Compression::Lz4,
            Compression::Snappy,
            Compression::gzip(),
            Compression::zstd(),
        ] {
            let framed = Compressor::new()
                .compress(compression, &input)
                .unwrap()
                .to_vec();
            let mut out = Vec::new();
            let err = decompress(compression.codec(), &framed, 1000, &mut out).unwrap_err();
            assert_eq!(
                err,
                DecompressError::TooLarge {
                    codec: compression.codec(),
                    limit: 1000
                }
            );
            assert!(
                out.capacity() < 1 << 20,
                "{compression:?} allocated past the limit"
            );
        }
    }

    #[test]
    fn lz4_decoder_rejects_wrong_header_checksum_and_truncation() {
        let framed = Compressor::new()
            .compress(Compression::Lz4, &sample(1000))
            .unwrap()
            .to_vec();
        let mut bad = framed.clone();
        bad[6] ^= 1;
        let mut out = Vec::new();
        assert!(matches!(
            decompress(Codec::Lz4, &bad, 1 << 20, &mut out),
            Err(DecompressError::Corrupt { .. })
        ));
        for cut in 0..framed.len() {
            let mut out = Vec::new();
            assert!(
                decompress(Codec::Lz4, &framed[..cut], 1 << 20, &mut out).is_err(),
                "accepted a frame cut at {cut}"
            );
        }
    }

    /// The differential oracle: libzstd 1.5.7 (the C library Java's zstd-jni and librdkafka
    /// link) decodes every frame we write, and mzstd's frames are byte for byte the ones
    /// `ZSTD_compress2` writes at the same level, so brokers and consumers see nothing they
    /// have not seen from those clients.
    #[test]
    fn zstd_frames_are_byte_identical_to_libzstd_and_decode_with_it() {
        let inputs = [
            Vec::new(),
            sample(1),
            sample(100),
            sample(16 * 1024),
            sample(131_073),
            sample(1 << 20),
            vec![7u8; 300_000],
            // Incompressible: a raw block inside the frame.
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ];
        let mut c = Compressor::new();
        for level in [-7, -1, 1, 2, 3, 6, 9, 19] {
            let mut reference = zstd::bulk::Compressor::new(level).unwrap();
            for input in &inputs {
                let ours = c
                    .compress(Compression::Zstd { level }, input)
                    .unwrap()
                    .to_vec();
                let theirs = reference.compress(input).unwrap();
                assert!(
                    ours == theirs,
                    "level {level}, {} bytes: {} bytes from mzstd, {} from libzstd",
                    input.len(),
                    ours.len(),
                    theirs.len()
                );
                let decoded = zstd::bulk::decompress(&ours, input.len()).unwrap();
                assert_eq!(&decoded, input, "level {level}");
            }
        }
    }

    #[test]
    fn zstd_levels_outside_libzstd_range_are_clamped_and_zero_means_three() {
        let input = sample(50_000);
        let mut c = Compressor::new();
        let at = |c: &mut Compressor, level| {
            c.compress(Compression::Zstd { level }, &input)
                .unwrap()
                .to_vec()
        };
        assert_eq!(at(&mut c, 0), at(&mut c, 3));
        assert_eq!(at(&mut c, 99), at(&mut c, Compression::ZSTD_MAX_LEVEL));
        assert_eq!(
            at(&mut c, i32::MIN),
            at(&mut c, Compression::ZSTD_MIN_LEVEL)
        );
        assert!(at(&mut c, 19).len() < at(&mut c, 1).len());
    }

    #[test]
    fn zstd_window_larger_than_limit_is_refused_before_allocating() {
        // Frame header: magic, FHD 0 (not single segment), window descriptor for 2^30.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, (30 - 10) << 3, 0, 0, 0];
        let mut out = Vec::new();
        assert_eq!(
            decompress(Codec::Zstd, &frame, 1 << 20, &mut out),
            Err(DecompressError::TooLarge {
                codec: Codec::Zstd,
                limit: 1 << 20
            })
        );
    }
}
