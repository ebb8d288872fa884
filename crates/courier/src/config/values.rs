//! The typed values of producer settings, and how their property strings are parsed.

use std::fmt;
use std::str::FromStr;

/// How many replicas must have a record before the broker acknowledges it (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// `acks=0`: the broker sends no response. Records can be lost without any error being
    /// reported, and offsets are unknown. Incompatible with idempotence.
    None,
    /// `acks=1`: the partition leader alone has written the record. It is lost if the leader
    /// fails before a follower copied it. Incompatible with idempotence.
    Leader,
    /// `acks=all` (also written `-1`): every in-sync replica has the record, and at least
    /// `min.insync.replicas` of them. The default, as in the Java client since 3.0 (KIP-679).
    #[default]
    All,
}

impl Acks {
    /// The value sent in the Produce request's `acks` field.
    pub const fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

/// The codec used for record batches (`compression.type`).
///
/// These are the five codecs Kafka defines (the codec id goes in bits 0-2 of a batch's
/// attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressionType {
    /// No compression (the default, as in the Java client).
    #[default]
    None,
    /// gzip (codec id 1).
    Gzip,
    /// Snappy, in the framing Kafka's Java client writes (codec id 2).
    Snappy,
    /// LZ4 frame format (codec id 3).
    Lz4,
    /// Zstandard (codec id 4; brokers need Kafka 2.1+, Produce v7+).
    Zstd,
}

impl CompressionType {
    /// The codec id stored in a record batch's attributes.
    pub const fn codec_id(self) -> u8 {
        match self {
            CompressionType::None => 0,
            CompressionType::Gzip => 1,
            CompressionType::Snappy => 2,
            CompressionType::Lz4 => 3,
            CompressionType::Zstd => 4,
        }
    }

    /// The name used in configuration (`none`, `gzip`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            CompressionType::None => "none",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How records without an explicit partition are spread (`partitioner`): Java's `default`
/// and `ignore_keys`, and librdkafka's seven values with librdkafka's exact key placement.
/// The table of what each does is in [`courier_core::partitioner`].
pub use courier_core::partitioner::PartitionerKind as Partitioner;

/// What to do when the configuration gives up durability (`durability.check`).
///
/// courier is durable by default (`acks=all`, idempotence on). A weaker setting is sometimes
/// what a user wants, but often a leftover from an old config file; this decides how loudly to
/// say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DurabilityCheck {
    /// Say nothing.
    Off,
    /// Log each weakness with `tracing::warn!` when the configuration is built (the default).
    #[default]
    Warn,
    /// Refuse to build a configuration that has any weakness.
    Enforce,
}

impl fmt::Display for DurabilityCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurabilityCheck::Off => "off",
            DurabilityCheck::Warn => "warn",
            DurabilityCheck::Enforce => "enforce",
        })
    }
}

/// A preset from the usual criticality decision table (`profile`). Explicit settings
/// override what a preset sets, whatever order they are given in.
///
/// | profile | acks | idempotence | retries | durability.check |
/// |---|---|---|---|---|
/// | `critical` | all | on | 2147483647 (bounded by `delivery.timeout.ms`) | warn |
/// | `analytics` | 1 | off | default | off |
/// | `metrics` | 0 | off | 0 | off |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Payments, orders, audit logs: nothing acknowledged may be lost or duplicated.
    Critical,
    /// Events where an occasional loss on a leader crash is acceptable.
    Analytics,
    /// Fire and forget: high-volume samples where loss is acceptable.
    Metrics,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Critical => "critical",
            Profile::Analytics => "analytics",
            Profile::Metrics => "metrics",
        })
    }
}

/// Where a record goes whose outcome is "possibly persisted" when a dead letter queue is
/// configured (`dlq.possibly.persisted`).
///
/// Such a record may already be in its topic, so treating it like a lost record would
/// be wrong either way; the choice is whose job it is to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DlqPossiblyPersisted {
    /// Report it to the application only (the default).
    #[default]
    Application,
    /// Also write it to the dead letter queue, marked `possibly-persisted`.
    DeadLetter,
}

impl fmt::Display for DlqPossiblyPersisted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DlqPossiblyPersisted::Application => "application",
            DlqPossiblyPersisted::DeadLetter => "dead-letter",
        })
    }
}

/// How connections to brokers are secured (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityProtocol {
    /// Plain TCP (the default, as in the Java client).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether this protocol authenticates with SASL.
    pub const fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        })
    }
}

/// The SASL mechanism (`sasl.mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// `PLAIN`: the password is sent as is; use it only over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677): the password never crosses the wire.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER` (KIP-255): a bearer token from an identity provider.
    OAuthBearer,
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        })
    }
}

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
///
/// Configurations end up in logs (`tracing::debug!(?config)`), panic messages and bug
/// reports; the only way to read the value is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the code that has to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One `host:port` entry of `bootstrap.servers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerAddress {
    host: String,
    port: u16,
}

impl BrokerAddress {
    /// A broker address. The host is a DNS name or an IP address (IPv6 without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        BrokerAddress {
            host: host.into(),
            port,
        }
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub const fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a string is not a `host:port` broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBrokerAddress {
    /// Completes "expected host:port ...", e.g. "with a port, e.g. 'broker1:9092'".
    pub(crate) requirement: &'static str,
}

impl fmt::Display for InvalidBrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected host:port {}", self.requirement)
    }
}

impl std::error::Error for InvalidBrokerAddress {}

const fn address_error(requirement: &'static str) -> InvalidBrokerAddress {
    InvalidBrokerAddress { requirement }
}

impl FromStr for BrokerAddress {
    type Err = InvalidBrokerAddress;

    /// Parses `host:port` or `[ipv6]:port`. The port is required, as in the Java client: a
    /// silently assumed 9092 hides typos such as `broker1,9092`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.contains("://") {
            return Err(address_error(
                "without a scheme (write 'broker1:9092', not 'PLAINTEXT://broker1:9092'; \
                 the protocol is security.protocol)",
            ));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or(address_error("with a closing ']' after the IPv6 address"))?;
            let port = after.strip_prefix(':').ok_or(address_error(
                "with a port after the IPv6 address, e.g. '[::1]:9092'",
            ))?;
            (host, port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or(address_error("with a port, e.g. 'broker1:9092'"))?;
            if host.contains(':') {
                return Err(address_error(
                    "with IPv6 addresses in brackets, e.g. '[::1]:9092'",
                ));
            }
            (host, port)
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(address_error(
                "with a host name or IP address before the port",
            ));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(address_error("with a port between 1 and 65535")),
        };
        Ok(BrokerAddress::new(host, port))
    }
}

/// Matches `value` (trimmed, case-insensitively) against `choices`.
pub(crate) fn parse_choice<T: Copy>(value: &str, choices: &[(&str, T)]) -> Option<T> {
    let v = value.trim();
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|&(_, t)| t)
}

/// `true` or `false`, trimmed, any case (as the Java client accepts).
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    parse_choice(value, &[("true", true), ("false", false)])
}

/// A non-negative decimal integer, trimmed. No sign, no units, no fraction.
/// A decimal integer with an optional leading `-` (levels, where -1 means "default").
pub(crate) fn parse_i64(value: &str) -> Option<i64> {
    let v = value.trim();
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

pub(crate) fn parse_u64(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

pub(crate) const ACKS_CHOICES: &[(&str, Acks)] = &[
    ("all", Acks::All),
    ("-1", Acks::All),
    ("0", Acks::None),
    ("1", Acks::Leader),
];

pub(crate) const COMPRESSION_CHOICES: &[(&str, CompressionType)] = &[
    ("none", CompressionType::None),
    ("gzip", CompressionType::Gzip),
    ("snappy", CompressionType::Snappy),
    ("lz4", CompressionType::Lz4),
    ("zstd", CompressionType::Zstd),
];

pub(crate) const PARTITIONER_CHOICES: &[(&str, Partitioner)] = &[
    ("default", Partitioner::Default),
    ("ignore_keys", Partitioner::IgnoreKeys),
    ("consistent", Partitioner::Consistent),
    ("consistent_random", Partitioner::ConsistentRandom),
    ("murmur2", Partitioner::Murmur2),
    ("murmur2_random", Partitioner::Murmur2Random),
    ("fnv1a", Partitioner::Fnv1a),
    ("fnv1a_random", Partitioner::Fnv1aRandom),
    ("random", Partitioner::Random),
];

pub(crate) const DURABILITY_CHECK_CHOICES: &[(&str, DurabilityCheck)] = &[
    ("off", DurabilityCheck::Off),
    ("warn", DurabilityCheck::Warn),
    ("enforce", DurabilityCheck::Enforce),
];

pub(crate) const PROFILE_CHOICES: &[(&str, Profile)] = &[
    ("critical", Profile::Critical),
    ("analytics", Profile::Analytics),
    ("metrics", Profile::Metrics),
];

pub(crate) const DLQ_POSSIBLY_PERSISTED_CHOICES: &[(&str, DlqPossiblyPersisted)] = &[
    ("application", DlqPossiblyPersisted::Application),
    ("dead-letter", DlqPossiblyPersisted::DeadLetter),
];

pub(crate) const SECURITY_PROTOCOL_CHOICES: &[(&str, SecurityProtocol)] = &[
    ("plaintext", SecurityProtocol::Plaintext),
    ("ssl", SecurityProtocol::Ssl),
    ("sasl_plaintext", SecurityProtocol::SaslPlaintext),
    ("sasl_ssl", SecurityProtocol::SaslSsl),
];

pub(crate) const SASL_MECHANISM_CHOICES: &[(&str, SaslMechanism)] = &[
    ("PLAIN", SaslMechanism::Plain),
    ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
    ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
    ("OAUTHBEARER", SaslMechanism::OAuthBearer),
];

/// "one of a, b, c" for error messages.
pub(crate) fn one_of<T>(choices: &[(&str, T)]) -> String {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    format!("one of {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_address_accepts_host_port_and_bracketed_ipv6() {
        let a: BrokerAddress = " broker-1.example.com:9092 ".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("broker-1.example.com", 9092));
        let b: BrokerAddress = "[::1]:19092".parse().unwrap();
        assert_eq!((b.host(), b.port()), ("::1", 19092));
        assert_eq!(b.to_string(), "[::1]:19092");
        assert_eq!(a.to_string(), "broker-1.example.com:9092");
    }

    #[test]
    fn broker_address_rejects_missing_port_scheme_and_bare_ipv6() {
        for bad in [
            "broker1",
            "broker1:",
            "broker1:0",
            "broker1:65536",
            ":9092",
            "PLAINTEXT://broker1:9092",
            "::1:9092",
            "[::1]",
            "[::1:9092",
            "bro ker:9092",
        ] {
            assert!(bad.parse::<BrokerAddress>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn secret_never_shows_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn parse_u64_rejects_signs_fractions_and_units() {
        assert_eq!(parse_u64(" 42 "), Some(42));
        for bad in ["", "-1", "+1", "1.5", "5ms", "abc", "99999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "accepted {bad:?}");
        }
    }

    #[test]
    fn acks_wire_values_match_the_protocol() {
        assert_eq!(Acks::All.as_i16(), -1);
        assert_eq!(Acks::Leader.as_i16(), 1);
        assert_eq!(Acks::None.as_i16(), 0);
    }

    #[test]
    fn every_partitioner_value_is_a_choice_spelt_as_its_name() {
        assert_eq!(PARTITIONER_CHOICES.len(), Partitioner::ALL.len());
        for (name, kind) in PARTITIONER_CHOICES {
            assert_eq!(*name, kind.name());
        }
    }

    #[test]
    fn compression_codec_ids_match_record_batch_attributes() {
        let ids: Vec<u8> = COMPRESSION_CHOICES
            .iter()
            .map(|(_, c)| c.codec_id())
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
    }
}
