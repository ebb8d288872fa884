//! The one error type of the wire decoders.

use std::fmt;

/// What went wrong while reading a field, without saying which field (that is the
/// path of the [`DecodeError`] around it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame ended inside a fixed-size field.
    UnexpectedEnd {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        left: usize,
    },
    /// An unsigned varint ran past 5 bytes or past 32 bits.
    VarintOverflow,
    /// A string or bytes length below -1 (classic encodings only have -1 for null).
    NegativeLength(i64),
    /// A string or bytes field declared more bytes than the frame has left.
    LengthTooLong {
        /// Declared length.
        len: u64,
        /// Bytes that were left.
        left: usize,
    },
    /// An array declared more entries than the bytes left could hold even if every
    /// entry had the smallest possible encoding.
    ArrayTooLong {
        /// Declared number of entries.
        count: u64,
        /// Bytes that were left.
        left: usize,
        /// Smallest encoding of one entry, in bytes.
        min_entry_size: usize,
    },
    /// Null where the protocol does not allow it.
    UnexpectedNull,
    /// A string that must be text (a name, host or key) is not UTF-8.
    InvalidUtf8,
    /// A tagged-field section declared more fields than the bytes left could hold.
    TooManyTaggedFields {
        /// Declared number of tagged fields.
        count: u32,
        /// Bytes that were left.
        left: usize,
    },
    /// Tags must be strictly ascending (KIP-482); this one is not.
    TagOutOfOrder {
        /// The tag that came too late.
        tag: u32,
        /// The tag before it.
        previous: u32,
    },
    /// A known tagged field was not exactly its declared size.
    TaggedFieldSize {
        /// The tag.
        tag: u32,
        /// Declared size.
        declared: usize,
        /// Bytes its decoder used.
        used: usize,
    },
    /// The body had bytes left after its last field.
    TrailingBytes(usize),
    /// This decoder does not know the version.
    UnsupportedVersion {
        /// The version asked for.
        version: i16,
        /// Lowest supported version.
        min: i16,
        /// Highest supported version.
        max: i16,
    },
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::UnexpectedEnd { needed, left } => {
                write!(f, "needs {needed} bytes but only {left} are left")
            }
            DecodeErrorKind::VarintOverflow => {
                write!(f, "unsigned varint is longer than 5 bytes or 32 bits")
            }
            DecodeErrorKind::NegativeLength(len) => write!(f, "negative length {len}"),
            DecodeErrorKind::LengthTooLong { len, left } => {
                write!(f, "length {len} exceeds the {left} bytes left")
            }
            DecodeErrorKind::ArrayTooLong {
                count,
                left,
                min_entry_size,
            } => write!(
                f,
                "array of {count} entries cannot fit in the {left} bytes left \
                 (each entry takes at least {min_entry_size} bytes)"
            ),
            DecodeErrorKind::UnexpectedNull => write!(f, "null where a value is required"),
            DecodeErrorKind::InvalidUtf8 => write!(f, "not valid UTF-8"),
            DecodeErrorKind::TooManyTaggedFields { count, left } => write!(
                f,
                "{count} tagged fields cannot fit in the {left} bytes left"
            ),
            DecodeErrorKind::TagOutOfOrder { tag, previous } => {
                write!(f, "tag {tag} after tag {previous}: tags must ascend")
            }
            DecodeErrorKind::TaggedFieldSize {
                tag,
                declared,
                used,
            } => write!(
                f,
                "tagged field {tag} declares {declared} bytes but its value takes {used}"
            ),
            DecodeErrorKind::TrailingBytes(n) => {
                write!(f, "{n} bytes left over after the last field")
            }
            DecodeErrorKind::UnsupportedVersion { version, min, max } => {
                write!(f, "version {version} is not supported (only {min}..={max})")
            }
        }
    }
}

/// One step of the path to the field that failed: a field name, and the entry index
/// when the field is an array.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: &'static str,
    index: Option<usize>,
}

/// A reply that could not be decoded: what was being read (message, version, field
/// path), what was wrong with it, and where.
///
/// Displayed as, for example,
/// `Metadata v12: topics[3].partitions: array of 2147483647 entries cannot fit in the 40
/// bytes left (each entry takes at least 18 bytes) (at byte 57)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: Option<(&'static str, i16)>,
    /// Innermost segment first: errors are built at the leaf and wrapped on the way out,
    /// so pushing is cheap and only the error path pays for it.
    path: Vec<Segment>,
    kind: DecodeErrorKind,
    offset: usize,
}

impl DecodeError {
    /// An error of `kind` at byte `offset` of the frame, not yet tied to a field.
    pub fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        DecodeError {
            message: None,
            path: Vec::new(),
            kind,
            offset,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// Byte offset in the buffer given to the decoder where the bad field starts.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The message name and version being decoded, if known.
    pub fn message(&self) -> Option<(&'static str, i16)> {
        self.message
    }

    /// The field path, outermost first, e.g. `topics[3].partitions[0].error_code`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for (i, seg) in self.path.iter().rev().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(seg.name);
            if let Some(index) = seg.index {
                out.push_str(&format!("[{index}]"));
            }
        }
        out
    }

    /// Prefixes the path with field `name`.
    #[must_use]
    pub fn in_field(mut self, name: &'static str) -> Self {
        self.path.push(Segment { name, index: None });
        self
    }

    /// Prefixes the path with entry `index` of array `name`.
    #[must_use]
    pub fn in_entry(mut self, name: &'static str, index: usize) -> Self {
        self.path.push(Segment {
            name,
            index: Some(index),
        });
        self
    }

    /// Moves the offset by `n` bytes, for a body decoded apart from the header before it.
    pub(crate) fn shifted(mut self, n: usize) -> Self {
        self.offset = self.offset.saturating_add(n);
        self
    }

    /// Names the message and version the error happened in (kept if already set).
    #[must_use]
    pub fn in_message(mut self, name: &'static str, version: i16) -> Self {
        if self.message.is_none() {
            self.message = Some((name, version));
        }
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, version)) = self.message {
            write!(f, "{name} v{version}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        write!(f, "{} (at byte {})", self.kind, self.offset)
    }
}

impl std::error::Error for DecodeError {}
