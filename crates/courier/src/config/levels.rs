//! Compression levels: librdkafka's one `compression.level` and the Java client's one key
//! per codec (KIP-390), checked against the chosen `compression.type`.
//!
//! Java ignores the level keys of codecs it is not using, and librdkafka clamps levels
//! above a codec's maximum. courier does neither: a level that would not take effect is an
//! error that says which setting to change, so a copied configuration never compresses
//! differently from what it says.

use super::error::ConfigError;
use super::keys::Key;
use super::values::CompressionType;

/// zstd's range, as libzstd 1.5.7 and Java's `compression.zstd.level` validator have it.
const ZSTD_MIN: i64 = courier_core::Compression::ZSTD_MIN_LEVEL as i64;
const ZSTD_MAX: i64 = courier_core::Compression::ZSTD_MAX_LEVEL as i64;
/// Java's default LZ4 level. Kafka's `Lz4BlockOutputStream` uses lz4-java's *fast*
/// compressor at exactly this level and LZ4 HC at any other (checked in kafka-clients
/// 4.3.1): courier's LZ4 is that fast mode.
const JAVA_LZ4_DEFAULT: i64 = 9;

/// The level settings as given (`None`: not set).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Levels {
    /// `compression.level` (librdkafka): -1 to 12, -1 meaning the codec's default.
    pub(crate) any: Option<i64>,
    /// `compression.gzip.level` (Java): 1 to 9, or -1 for zlib's default (6).
    pub(crate) gzip: Option<i64>,
    /// `compression.lz4.level` (Java): 1 to 17, default 9.
    pub(crate) lz4: Option<i64>,
    /// `compression.zstd.level` (Java): -131072 to 22, default 3.
    pub(crate) zstd: Option<i64>,
}

fn invalid(key: Key, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.name(),
        message,
    }
}

/// The level the codec compresses at: `Some` for gzip (0-9) and zstd (-131072 to 22),
/// `None` for the codecs without levels.
pub(crate) fn resolve(codec: CompressionType, levels: Levels) -> Result<Option<i32>, ConfigError> {
    // Each key's own range first, whatever the codec, as both clients validate them.
    if let Some(l) = levels.any {
        if !(-1..=12).contains(&l) {
            return Err(invalid(
                Key::CompressionLevel,
                format!(
                    "must be between -1 (the codec's default) and 12, librdkafka's range, got \
                     {l}; for zstd levels 13 to 22 or below 1 use compression.zstd.level"
                ),
            ));
        }
    }
    if let Some(l) = levels.gzip {
        if l != -1 && !(1..=9).contains(&l) {
            return Err(invalid(
                Key::CompressionGzipLevel,
                format!("must be between 1 and 9, or -1 for the default (6), got {l}"),
            ));
        }
    }
    if let Some(l) = levels.lz4 {
        if !(1..=17).contains(&l) {
            return Err(invalid(
                Key::CompressionLz4Level,
                format!("must be between 1 and 17, got {l}"),
            ));
        }
    }
    if let Some(l) = levels.zstd {
        if !(ZSTD_MIN..=ZSTD_MAX).contains(&l) {
            return Err(invalid(
                Key::CompressionZstdLevel,
                format!("must be between {ZSTD_MIN} and {ZSTD_MAX}, got {l}"),
            ));
        }
    }

    // A per-codec key for a codec that is not in use would be silently ignored.
    for (key, given, for_codec) in [
        (
            Key::CompressionGzipLevel,
            levels.gzip,
            CompressionType::Gzip,
        ),
        (Key::CompressionLz4Level, levels.lz4, CompressionType::Lz4),
        (
            Key::CompressionZstdLevel,
            levels.zstd,
            CompressionType::Zstd,
        ),
    ] {
        if given.is_some() && codec != for_codec {
            return Err(invalid(
                key,
                format!(
                    "applies only to compression.type={for_codec}, but compression.type is \
                     {codec}: remove it, or set compression.type={for_codec}"
                ),
            ));
        }
    }

    // librdkafka's -1 is "the codec's default", the same as not setting it.
    let any = levels.any.filter(|&l| l != -1);
    let level = match codec {
        CompressionType::None => {
            if let Some(l) = any {
                return Err(invalid(
                    Key::CompressionLevel,
                    format!(
                        "is {l}, but compression.type is none: set a compression.type, or \
                         remove compression.level"
                    ),
                ));
            }
            None
        }
        CompressionType::Snappy => {
            // librdkafka: "only 0 for snappy".
            if let Some(l) = any.filter(|&l| l != 0) {
                return Err(invalid(
                    Key::CompressionLevel,
                    format!("snappy has no levels (only 0 or -1), got {l}"),
                ));
            }
            None
        }
        CompressionType::Lz4 => {
            // librdkafka's lz4 level 0 is LZ4F's fast mode, and Java's default 9 too.
            let hc = any
                .filter(|&l| l != 0)
                .map(|l| (Key::CompressionLevel, l, "0 or -1"))
                .or(levels
                    .lz4
                    .filter(|&l| l != JAVA_LZ4_DEFAULT)
                    .map(|l| (Key::CompressionLz4Level, l, "9")));
            if let Some((key, l, fast)) = hc {
                return Err(invalid(
                    key,
                    format!(
                        "courier's LZ4 is the fast mode only ({fast} here, as in librdkafka's \
                         level 0 and Java's default 9); LZ4 HC level {l} is not implemented: \
                         remove the setting, or use compression.type=zstd for a smaller log"
                    ),
                ));
            }
            None
        }
        CompressionType::Gzip => {
            // librdkafka: "[0-9] for gzip" (it clamps 10-12 to 9; courier says so instead).
            if let Some(l) = any.filter(|&l| l > 9) {
                return Err(invalid(
                    Key::CompressionLevel,
                    format!("gzip levels are 0 to 9, got {l}"),
                ));
            }
            let java = levels.gzip.filter(|&l| l != -1);
            Some(agree(any, java, Key::CompressionGzipLevel)?.unwrap_or(6) as i32)
        }
        CompressionType::Zstd => {
            // libzstd reads level 0 as its default, 3; librdkafka and zstd-jni pass it on.
            let zero_is_default = |l: i64| if l == 0 { 3 } else { l };
            let any = any.map(zero_is_default);
            let java = levels.zstd.map(zero_is_default);
            Some(agree(any, java, Key::CompressionZstdLevel)?.unwrap_or(3) as i32)
        }
    };
    Ok(level)
}

/// The one level given through either key; both given and different is an error.
fn agree(any: Option<i64>, java: Option<i64>, java_key: Key) -> Result<Option<i64>, ConfigError> {
    match (any, java) {
        (Some(a), Some(j)) if a != j => Err(invalid(
            Key::CompressionLevel,
            format!(
                "is {a} but {} is {j}: set only one of them",
                java_key.name()
            ),
        )),
        (a, j) => Ok(a.or(j)),
    }
}
