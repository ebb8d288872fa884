//! Producer configuration: a typed, validated [`ProducerConfig`].
//!
//! Build one with the typed [`ProducerConfig::builder`], or from Java/librdkafka-style string
//! properties with [`ProducerConfig::from_properties`] or [`ProducerConfigBuilder::set`]:
//!
//! ```
//! use std::time::Duration;
//! use courier::config::{Acks, ProducerConfig};
//!
//! let typed = ProducerConfig::builder()
//!     .bootstrap_servers("broker1:9092,broker2:9092")
//!     .linger(Duration::from_millis(10))
//!     .build()?;
//!
//! let from_props = ProducerConfig::from_properties([
//!     ("bootstrap.servers", "broker1:9092,broker2:9092"),
//!     ("linger.ms", "10"),
//! ])?;
//! assert_eq!(typed, from_props);
//! assert_eq!(typed.acks(), Acks::All);
//! # Ok::<(), courier::config::ConfigError>(())
//! ```
//!
//! # Keys and defaults
//!
//! Defaults are the Java client's (4.x), which are durable: `acks=all` and
//! `enable.idempotence=true` (KIP-679, Kafka 3.0). Where courier differs, the table says why.
//!
//! | key | aliases (librdkafka) | default |
//! |---|---|---|
//! | `bootstrap.servers` | `metadata.broker.list` | required |
//! | `client.id` | | `courier` (Java: `producer-N`, a per-process counter) |
//! | `acks` (`0`, `1`, `all` = `-1`) | `request.required.acks` | `all` |
//! | `enable.idempotence` | | `true` |
//! | `max.in.flight.requests.per.connection` | `max.in.flight` | 5 |
//! | `retries` | `message.send.max.retries` | 2147483647 |
//! | `retry.backoff.ms` | | 100 |
//! | `retry.backoff.max.ms` | | 1000 |
//! | `linger.ms` | `queue.buffering.max.ms` (integer ms only) | 5 |
//! | `batch.size` | | 16384 |
//! | `buffer.memory` | | 33554432 |
//! | `max.request.size` | `message.max.bytes` | 1048576 |
//! | `compression.type` (`none`, `gzip`, `snappy`, `lz4`, `zstd`) | `compression.codec` | `none` |
//! | `compression.level` (librdkafka's: the chosen codec's level, -1 its default; gzip 0-9, zstd 0-12; lz4 and snappy only 0) | | -1 |
//! | `compression.gzip.level` (Java's: 1-9, -1 = 6) | | -1 |
//! | `compression.lz4.level` (Java's: only 9, the fast mode; LZ4 HC is not implemented) | | 9 |
//! | `compression.zstd.level` (Java's: -131072 to 22) | | 3 |
//! | `delivery.timeout.ms` | `message.timeout.ms` | 120000 |
//! | `delivery.resolution.timeout.ms` (courier's own; 0: none, report "possibly persisted" at `delivery.timeout.ms` as Java and librdkafka do; see [`ProducerConfig::delivery_resolution_timeout`]) | | 120000 |
//! | `request.timeout.ms` | | 30000 |
//! | `metadata.max.age.ms` | | 300000 |
//! | `max.block.ms` | | 60000 |
//! | `partitioner` (`default`, `ignore_keys`, `consistent`, `consistent_random`, `murmur2`, `murmur2_random`, `fnv1a`, `fnv1a_random`, `random`; see [`Partitioner`]) | | `default` |
//! | `partitioner.ignore.keys` (Java: `true` is `partitioner=ignore_keys`) | | `false` |
//! | `socket.connection.setup.timeout.ms` | | 10000 |
//! | `socket.connection.setup.timeout.max.ms` | | 30000 |
//! | `reconnect.backoff.ms` | | 50 |
//! | `reconnect.backoff.max.ms` | | 1000 |
//! | `connections.max.idle.ms` (0: idle connections stay open) | | 540000 (9 minutes, below the broker's 10) |
//! | `durability.check` (`off`, `warn`, `enforce`; courier's own) | | `warn` |
//! | `transactional.id` (implies idempotence and `acks=all`; see [`crate::Producer::init_transactions`]) | | none |
//! | `transaction.timeout.ms` (only with `transactional.id`) | | 60000 |
//! | `profile` (`critical`, `analytics`, `metrics`; courier's own presets, see [`Profile`]) | | none |
//! | `dlq.topic` (courier's own: dead letter queue for records that failed for good) | | none |
//! | `dlq.possibly.persisted` (`application`, `dead-letter`; see [`DlqPossiblyPersisted`]) | | `application` |
//! | `security.protocol` (`plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`) | | `plaintext` |
//!
//! ## TLS
//!
//! For `security.protocol=ssl` and `sasl_ssl`; with another protocol, any of these is an
//! error. Files are read, and keys decrypted, when the configuration is built. Names are
//! librdkafka's for PEM material and the Java client's for key and trust stores.
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `ssl.ca.location` | the CAs that sign the brokers' certificates: a PEM file, or a directory whose `.pem`, `.crt` and `.cer` files are read | the system's trusted roots, else Mozilla's (bundled) |
//! | `ssl.ca.pem` | the same, as PEM text | |
//! | `ssl.truststore.location` | the same, as a trust store file: PEM or PKCS#12 (JKS is refused, with the `keytool` command that converts it) | |
//! | `ssl.truststore.type` | `PEM`, `PKCS12` | read from the file's first bytes |
//! | `ssl.truststore.password` | the PKCS#12 trust store's password | empty |
//! | `ssl.truststore.certificates` | the CAs as PEM text (Java's `ssl.truststore.type=PEM`) | |
//! | `ssl.certificate.location`, `ssl.certificate.pem` | mutual TLS: the client certificate chain, leaf first, as a PEM file or text | none |
//! | `ssl.key.location`, `ssl.key.pem` | its private key, PEM: PKCS#8, PKCS#1 (RSA), SEC1 (EC) or encrypted PKCS#8 (OpenSSL's legacy encryption is refused, with the command that converts it) | none |
//! | `ssl.key.password` | decrypts an encrypted PKCS#8 key | none |
//! | `ssl.keystore.location` | mutual TLS from a key store file: PKCS#12, or PEM with the key and the chain (JKS is refused) | none |
//! | `ssl.keystore.type` | `PEM`, `PKCS12` | read from the file's first bytes |
//! | `ssl.keystore.password` | the PKCS#12 key store's password (required for PKCS#12) | none |
//! | `ssl.keystore.key`, `ssl.keystore.certificate.chain` | mutual TLS from PEM text (Java's PEM key store); both are needed | none |
//! | `ssl.endpoint.identification.algorithm` | `https`: the broker's certificate must name the host connected to; `none` (or empty): any host name is accepted, with a warning | `https` |
//! | `enable.ssl.certificate.verification` | `false` accepts any certificate, with a warning: for test clusters only | `true` |
//! | `ssl.enabled.protocols` | the TLS versions offered: `TLSv1.2`, `TLSv1.3` (older ones are not offered) | `TLSv1.2,TLSv1.3` |
//! | `ssl.protocol` | the highest version offered: `TLSv1.2`, `TLSv1.3` or `TLS` (the newest) | unset: no cap |
//!
//! The trusted CAs come from at most one of `ssl.ca.location`, `ssl.ca.pem`,
//! `ssl.truststore.location` and `ssl.truststore.certificates`; the client certificate from
//! one of a PEM certificate and key, `ssl.keystore.location`, or `ssl.keystore.key` with
//! `ssl.keystore.certificate.chain`.
//!
//! ## SASL
//!
//! For `security.protocol=sasl_plaintext` and `sasl_ssl`; with another protocol, any of
//! these is an error.
//!
//! | key | aliases | meaning | default |
//! |---|---|---|---|
//! | `sasl.mechanism` | `sasl.mechanisms` | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (`GSSAPI` and `AWS_MSK_IAM` are refused, with what to use instead) | required, unless a token provider is set (then `OAUTHBEARER`) |
//! | `sasl.username`, `sasl.password` | | PLAIN and SCRAM credentials | none |
//! | `sasl.jaas.config` | | Java's login line: `PlainLoginModule` (implies `PLAIN`), `ScramLoginModule` (`sasl.mechanism` says which SCRAM; `tokenauth=true` for delegation tokens) or `OAuthBearerLoginModule` (`clientId`, `clientSecret`, `scope`, `extension_<name>`); not together with the keys it stands for | none |
//! | `sasl.oauthbearer.method` | | `oidc`: fetch tokens from the token endpoint (client-credentials grant); `default`: the fixed `sasl.oauthbearer.token`. Leave it unset with a token provider | none |
//! | `sasl.oauthbearer.token.endpoint.url` | | the identity provider's token endpoint, `https://` (or `http://`) | none |
//! | `sasl.oauthbearer.client.id`, `sasl.oauthbearer.client.secret` | `sasl.oauthbearer.client.credentials.client.id`, `sasl.oauthbearer.client.credentials.client.secret` | the OIDC client credentials | none |
//! | `sasl.oauthbearer.scope` | | the scope asked for | none |
//! | `sasl.oauthbearer.extensions` | | SASL extensions sent with every token (KIP-342): `key=value,key2=value2` | none |
//! | `sasl.oauthbearer.token` (courier's own) | | one fixed token, used as given | none |
//!
//! An application that gets tokens itself passes an [`OAuthTokenProvider`] to
//! [`ProducerConfigBuilder::oauth_token_provider`]. A token is replaced once 80 % of its
//! lifetime has passed (until the earlier of its JWT `exp` claim and the expiry its source
//! gave); one without either is used until a broker refuses it. `PLAIN` over
//! `sasl_plaintext` sends the password in the clear and is accepted with a warning.
//!
//! ## Keys and values
//!
//! Aliases are accepted only where the librdkafka setting has the same meaning and unit.
//! Keys that look alike but differ (`queue.buffering.max.kbytes` is in KiB,
//! `batch.num.messages` counts records) are rejected with a pointer to the courier key, as are
//! Java settings courier does not implement (`key.serializer`, `interceptor.classes`, ...).
//! Unknown keys are errors, with a suggestion for near misses: a typo must not silently
//! leave a default in place. When a key is given twice (or as a key and its alias), the last
//! value wins, as with Java `Properties` and librdkafka.
//!
//! Values are trimmed, except user names, passwords, the OIDC client secret and PEM text, which
//! are taken as given; booleans and enumerated values are case-insensitive; numbers are plain
//! non-negative integers (milliseconds for `*.ms`, bytes for sizes).
//!
//! # Validation
//!
//! [`ProducerConfigBuilder::build`] rejects, with a message naming the key:
//!
//! * `enable.idempotence=true` set explicitly together with `acks` other than `all`, or with
//!   `retries=0`;
//! * idempotence enabled (explicitly or by default) with
//!   `max.in.flight.requests.per.connection` above 5: brokers keep the last 5 batches of each
//!   producer for deduplication;
//! * `delivery.timeout.ms` set below `linger.ms + request.timeout.ms`;
//! * zero or out-of-range sizes and counts (`batch.size`, `max.request.size`, `buffer.memory`
//!   below `batch.size`, `max.in.flight.requests.per.connection`, `request.timeout.ms`, ...);
//! * a backoff cap set below its base; `retry.backoff.ms`, `reconnect.backoff.ms` or
//!   `socket.connection.setup.timeout.ms` of 0 (a busy loop against the broker);
//! * `message.timeout.ms=0`, librdkafka's "no timeout": courier bounds every delivery;
//! * a compression level outside its key's range, set for a codec other than
//!   `compression.type`, asking for LZ4 HC, or given by both `compression.level` and the
//!   codec's own key with different values (Java would ignore the first three, librdkafka
//!   would clamp);
//! * `partitioner.ignore.keys` contradicting `partitioner`;
//! * TLS or SASL settings that `security.protocol` does not use, contradict each other, or
//!   name files that cannot be read, keys that do not decrypt, or a client key that does
//!   not match its certificate.
//!
//! Like the Java client since KIP-679 and its follow-ups (KAFKA-13598 made the default
//! effective, KAFKA-13673 made conflicts disable it instead of failing), when
//! `enable.idempotence` is *not* set and `acks` is not `all` or `retries` is 0, idempotence
//! is turned off instead of failing; the config records a [`ConfigNotice`] and
//! [`durability.check`](DurabilityCheck) reports it. Also like Java (checked against
//! kafka-clients 4.3.1), a `max.in.flight` above 5 is an error even then: set
//! `enable.idempotence=false` to use more.
//!
//! Defaults that would violate a rule are adjusted instead, as in Java: an unset
//! `delivery.timeout.ms` is raised to `linger.ms + request.timeout.ms`, an unset backoff cap
//! is raised to its base.

mod builder;
mod error;
mod keys;
mod levels;
mod security;
mod values;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use builder::ProducerConfigBuilder;
pub use error::{ConfigError, ConfigNotice, DurabilityIssue};
pub use security::{
    ClientIdentity, OAuthToken, OAuthTokenProvider, OidcConfig, SaslConfig, SaslCredentials,
    TlsConfig, TlsVersion, TokenFuture, TokenProviderHandle, TokenSource, TrustRoots,
};
pub use values::{
    Acks, BrokerAddress, CompressionType, DlqPossiblyPersisted, DurabilityCheck,
    InvalidBrokerAddress, Partitioner, Profile, SaslMechanism, Secret, SecurityProtocol,
};

/// The default value of every setting that has one.
pub mod defaults {
    use std::time::Duration;

    use super::{Acks, CompressionType, DurabilityCheck, Partitioner, SecurityProtocol};

    /// `client.id`.
    pub const CLIENT_ID: &str = "courier";
    /// `acks`.
    pub const ACKS: Acks = Acks::All;
    /// `enable.idempotence`.
    pub const ENABLE_IDEMPOTENCE: bool = true;
    /// `max.in.flight.requests.per.connection`.
    pub const MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION: u32 = 5;
    /// `retries`: effectively unlimited, bounded by `delivery.timeout.ms` instead.
    pub const RETRIES: u32 = i32::MAX as u32;
    /// `retry.backoff.ms`.
    pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);
    /// `retry.backoff.max.ms`.
    pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(1_000);
    /// `linger.ms` (Java changed it from 0 to 5 in Kafka 4.0, KIP-1030).
    pub const LINGER: Duration = Duration::from_millis(5);
    /// `batch.size`.
    pub const BATCH_SIZE: usize = 16_384;
    /// `buffer.memory`.
    pub const BUFFER_MEMORY: usize = 32 * 1024 * 1024;
    /// `max.request.size`.
    pub const MAX_REQUEST_SIZE: usize = 1024 * 1024;
    /// `compression.type`.
    pub const COMPRESSION: CompressionType = CompressionType::None;
    /// `delivery.timeout.ms`.
    pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
    /// `delivery.resolution.timeout.ms`: as long again as the default delivery timeout,
    /// which outlasts a leader failover or a broker restart.
    pub const DELIVERY_RESOLUTION_TIMEOUT: Duration = Duration::from_secs(120);
    /// `request.timeout.ms`.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// `metadata.max.age.ms`.
    pub const METADATA_MAX_AGE: Duration = Duration::from_secs(300);
    /// `max.block.ms`.
    pub const MAX_BLOCK: Duration = Duration::from_secs(60);
    /// `transaction.timeout.ms` (Java's and librdkafka's).
    pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
    /// `partitioner`.
    pub const PARTITIONER: Partitioner = Partitioner::Default;
    /// `socket.connection.setup.timeout.ms`.
    pub const SOCKET_CONNECTION_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
    /// `socket.connection.setup.timeout.max.ms`.
    pub const SOCKET_CONNECTION_SETUP_TIMEOUT_MAX: Duration = Duration::from_secs(30);
    /// `reconnect.backoff.ms`.
    pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
    /// `reconnect.backoff.max.ms`.
    pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(1_000);
    /// `connections.max.idle.ms`: 9 minutes, below the broker's 10 so the client closes first.
    pub const CONNECTIONS_MAX_IDLE: Duration = Duration::from_secs(9 * 60);
    /// `durability.check`.
    pub const DURABILITY_CHECK: DurabilityCheck = DurabilityCheck::Warn;
    /// `security.protocol`.
    pub const SECURITY_PROTOCOL: SecurityProtocol = SecurityProtocol::Plaintext;
}

/// The most requests in flight per connection the idempotent producer allows; brokers keep
/// the state of the last 5 batches per producer and partition for deduplication.
pub const MAX_IN_FLIGHT_WITH_IDEMPOTENCE: u32 = 5;

/// The canonical name of a key or alias (`"queue.buffering.max.ms"` → `"linger.ms"`), or
/// `None` if courier does not accept it.
pub fn canonical_key(key: &str) -> Option<&'static str> {
    keys::lookup(key).map(|s| s.name)
}

/// Whether the value of `key` must never be shown (in errors, logs or `Debug`): a secret
/// courier knows as such, or a key whose name looks like it holds one, known or not.
/// Tools that echo properties (the `courier` CLI) check this first.
pub fn is_secret_key(key: &str) -> bool {
    keys::looks_secret(key)
}

/// Every canonical key courier accepts.
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    keys::KEYS.iter().map(|s| s.name)
}

/// A complete, validated producer configuration.
///
/// Create it with [`ProducerConfig::builder`] or [`ProducerConfig::from_properties`]; every
/// value has been checked, alone and against the others. Getters return the *effective*
/// values, after the adjustments listed in [`notices`](Self::notices).
///
/// `Debug` output never contains secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub(crate) bootstrap_servers: Vec<BrokerAddress>,
    pub(crate) client_id: String,
    pub(crate) acks: Acks,
    pub(crate) enable_idempotence: bool,
    pub(crate) max_in_flight_requests_per_connection: u32,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) linger: Duration,
    pub(crate) batch_size: usize,
    pub(crate) buffer_memory: usize,
    pub(crate) max_request_size: usize,
    pub(crate) compression: CompressionType,
    pub(crate) compression_level: Option<i32>,
    pub(crate) delivery_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) max_block: Duration,
    pub(crate) partitioner: Partitioner,
    pub(crate) socket_connection_setup_timeout: Duration,
    pub(crate) socket_connection_setup_timeout_max: Duration,
    pub(crate) reconnect_backoff: Duration,
    pub(crate) reconnect_backoff_max: Duration,
    pub(crate) resolution_timeout: Duration,
    pub(crate) connections_max_idle: Duration,
    pub(crate) durability_check: DurabilityCheck,
    pub(crate) profile: Option<Profile>,
    pub(crate) dlq_topic: Option<String>,
    pub(crate) transactional_id: Option<String>,
    pub(crate) transaction_timeout: Duration,
    pub(crate) dlq_possibly_persisted: DlqPossiblyPersisted,
    pub(crate) security_protocol: SecurityProtocol,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) sasl: Option<SaslConfig>,
    pub(crate) notices: Vec<ConfigNotice>,
    pub(crate) durability_issues: Vec<DurabilityIssue>,
}

impl ProducerConfig {
    /// A builder with nothing set; `bootstrap.servers` is the only required setting.
    pub fn builder() -> ProducerConfigBuilder {
        ProducerConfigBuilder::default()
    }

    /// Builds a configuration from string properties, with Java or librdkafka keys
    /// (`("linger.ms", "5")`). Later entries override earlier ones.
    pub fn from_properties<I, K, V>(properties: I) -> Result<ProducerConfig, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        ProducerConfig::builder().properties(properties)?.build()
    }

    /// `bootstrap.servers`: the brokers to ask for cluster metadata first.
    pub fn bootstrap_servers(&self) -> &[BrokerAddress] {
        &self.bootstrap_servers
    }

    /// `client.id`, sent with every request (broker logs and quotas use it).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `acks`.
    pub const fn acks(&self) -> Acks {
        self.acks
    }

    /// Whether the producer is idempotent (effective value: may be `false` although the
    /// default is `true`, see [`ConfigNotice::IdempotenceDisabled`]).
    pub const fn enable_idempotence(&self) -> bool {
        self.enable_idempotence
    }

    /// `max.in.flight.requests.per.connection`.
    pub const fn max_in_flight_requests_per_connection(&self) -> u32 {
        self.max_in_flight_requests_per_connection
    }

    /// `retries`: how many times a batch is resent after a retriable error, within
    /// `delivery.timeout.ms`.
    pub const fn retries(&self) -> u32 {
        self.retries
    }

    /// `retry.backoff.ms`: the first backoff before a retry, doubled on each further retry.
    pub const fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// `retry.backoff.max.ms`: the cap of the retry backoff, never below
    /// [`retry_backoff`](Self::retry_backoff) (equal means a constant backoff).
    pub const fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }

    /// `linger.ms`: how long a batch may wait for more records before it is sent.
    pub const fn linger(&self) -> Duration {
        self.linger
    }

    /// `batch.size`: the size in bytes at which a partition's batch is sent without waiting.
    pub const fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// `buffer.memory`: the bytes of records the producer holds before `send` waits.
    pub const fn buffer_memory(&self) -> usize {
        self.buffer_memory
    }

    /// `max.request.size`: the largest Produce request, and so the largest record, in bytes.
    pub const fn max_request_size(&self) -> usize {
        self.max_request_size
    }

    /// `compression.type`.
    pub const fn compression(&self) -> CompressionType {
        self.compression
    }

    /// The level the codec compresses at, from `compression.level` or the codec's own
    /// `compression.{gzip,zstd}.level`: gzip 0-9 (default 6), zstd -131072 to 22 (default
    /// 3). `None` for `none`, `snappy` and `lz4`, which have no levels in courier.
    pub const fn compression_level(&self) -> Option<i32> {
        self.compression_level
    }

    /// `delivery.timeout.ms`: the longest a record may take from `send` to its final result.
    pub const fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// `request.timeout.ms`: the longest one request waits for its response.
    pub const fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `metadata.max.age.ms`: metadata is refreshed at least this often.
    pub const fn metadata_max_age(&self) -> Duration {
        self.metadata_max_age
    }

    /// `max.block.ms`: the longest `send` waits for metadata or buffer space.
    pub const fn max_block(&self) -> Duration {
        self.max_block
    }

    /// `partitioner`.
    pub const fn partitioner(&self) -> Partitioner {
        self.partitioner
    }

    /// `socket.connection.setup.timeout.ms`: the first connect timeout.
    pub const fn socket_connection_setup_timeout(&self) -> Duration {
        self.socket_connection_setup_timeout
    }

    /// `socket.connection.setup.timeout.max.ms`: the connect timeout grows up to this.
    pub const fn socket_connection_setup_timeout_max(&self) -> Duration {
        self.socket_connection_setup_timeout_max
    }

    /// `reconnect.backoff.ms`: the first wait before reconnecting to a broker.
    pub const fn reconnect_backoff(&self) -> Duration {
        self.reconnect_backoff
    }

    /// `reconnect.backoff.max.ms`: the reconnect wait grows up to this.
    pub const fn reconnect_backoff_max(&self) -> Duration {
        self.reconnect_backoff_max
    }

    /// `delivery.resolution.timeout.ms`: how much longer than `delivery.timeout.ms` an
    /// idempotent producer keeps resending a batch that may already be in the log, with
    /// its original producer id, epoch and sequence.
    ///
    /// A request that timed out, or a connection that broke after sending, leaves a
    /// batch that may or may not be in the log. Java and librdkafka report such records
    /// "possibly persisted" at the delivery timeout, and the application cannot tell
    /// whether sending them again duplicates them. courier instead keeps resending the
    /// same bytes: the broker writes a sequence at most once, so the answer is either the
    /// offset where the earlier attempt landed or a first write now. Either way the
    /// record is reported delivered, with its offset, exactly once in the log. Only when
    /// the partition stays unreachable (or its leader keeps refusing) this much longer
    /// is the record reported possibly persisted (`UNRESOLVED`). Records that were never
    /// sent, or that the broker said it did not write, still fail at
    /// `delivery.timeout.ms`. Zero turns the resolution off. Without idempotence there is
    /// no resolution: a resend could not be told apart from a duplicate. Nor in a
    /// transaction (`transactional.id`): there the batch fails at `delivery.timeout.ms`,
    /// which makes the transaction abortable, and the abort hides whatever was written.
    pub const fn delivery_resolution_timeout(&self) -> Duration {
        self.resolution_timeout
    }

    /// `connections.max.idle.ms`: idle connections are closed after this.
    pub const fn connections_max_idle(&self) -> Duration {
        self.connections_max_idle
    }

    /// `durability.check`.
    pub const fn durability_check(&self) -> DurabilityCheck {
        self.durability_check
    }

    /// `profile`, if one was chosen.
    pub const fn profile(&self) -> Option<Profile> {
        self.profile
    }

    /// `dlq.topic`: the dead letter queue for records that failed for good, if any.
    pub fn dlq_topic(&self) -> Option<&str> {
        self.dlq_topic.as_deref()
    }

    /// `transactional.id`, if the producer is transactional.
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// `transaction.timeout.ms`.
    pub const fn transaction_timeout(&self) -> Duration {
        self.transaction_timeout
    }

    /// `dlq.possibly.persisted`.
    pub const fn dlq_possibly_persisted(&self) -> DlqPossiblyPersisted {
        self.dlq_possibly_persisted
    }

    /// `security.protocol`.
    pub const fn security_protocol(&self) -> SecurityProtocol {
        self.security_protocol
    }

    /// TLS settings, present exactly when `security.protocol` is `ssl` or `sasl_ssl`.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// SASL settings, present exactly when `security.protocol` uses SASL.
    pub fn sasl(&self) -> Option<&SaslConfig> {
        self.sasl.as_ref()
    }

    /// What building changed (idempotence turned off, a timeout raised, ...).
    pub fn notices(&self) -> &[ConfigNotice] {
        &self.notices
    }

    /// The settings that give up durability, whatever `durability.check` says.
    pub fn durability_issues(&self) -> &[DurabilityIssue] {
        &self.durability_issues
    }
}
