//! [`ProducerConfigBuilder`]: collects settings, then validates them all at once.

use std::sync::Arc;
use std::time::Duration;

use super::error::{ConfigError, ConfigNotice, DurabilityIssue};
use super::keys::{self, Key};
use super::levels;
use super::security::{self, OAuthTokenProvider, SecuritySettings, TokenProviderHandle};
use super::values::{
    self, Acks, BrokerAddress, CompressionType, DlqPossiblyPersisted, DurabilityCheck, Partitioner,
    Profile, SaslMechanism, Secret, SecurityProtocol,
};
use super::{defaults, ProducerConfig, MAX_IN_FLIGHT_WITH_IDEMPOTENCE};

const INT_MAX: u64 = i32::MAX as u64;

/// Sizes, counts and `*.ms` durations: plain decimal, no sign, unit or fraction. The key name
/// carries the unit.
const NON_NEGATIVE_INTEGER: &str = "a non-negative integer";

/// Collects producer settings; [`build`](Self::build) checks them and fills in defaults.
///
/// Typed setters never fail; string properties are parsed as they are [`set`](Self::set), and
/// everything else is checked by `build`. Whether a setting was given at all matters for some
/// rules (an explicit `enable.idempotence=true` with `acks=1` is an error, the default with
/// `acks=1` is not), so the builder keeps "not set" apart from "set to the default value".
#[derive(Debug, Clone, Default)]
pub struct ProducerConfigBuilder {
    bootstrap_servers: Option<String>,
    client_id: Option<String>,
    acks: Option<Acks>,
    enable_idempotence: Option<bool>,
    max_in_flight: Option<u64>,
    retries: Option<u64>,
    retry_backoff: Option<Duration>,
    retry_backoff_max: Option<Duration>,
    linger: Option<Duration>,
    batch_size: Option<u64>,
    buffer_memory: Option<u64>,
    max_request_size: Option<u64>,
    compression: Option<CompressionType>,
    levels: levels::Levels,
    delivery_timeout: Option<Duration>,
    resolution_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    metadata_max_age: Option<Duration>,
    max_block: Option<Duration>,
    partitioner: Option<Partitioner>,
    ignore_keys: Option<bool>,
    socket_connection_setup_timeout: Option<Duration>,
    socket_connection_setup_timeout_max: Option<Duration>,
    reconnect_backoff: Option<Duration>,
    reconnect_backoff_max: Option<Duration>,
    connections_max_idle: Option<Duration>,
    durability_check: Option<DurabilityCheck>,
    profile: Option<Profile>,
    dlq_topic: Option<String>,
    transactional_id: Option<String>,
    transaction_timeout: Option<Duration>,
    dlq_possibly_persisted: Option<DlqPossiblyPersisted>,
    /// `security.protocol`, TLS and SASL: resolved by `config::security`.
    security: SecuritySettings,
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty => $field:ident $(as $conv:ty)?; )*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.$field = Some(value $(as $conv)?);
                self
            }
        )*
    };
}

impl ProducerConfigBuilder {
    /// `bootstrap.servers`: a comma-separated list of `host:port` (IPv6 as `[addr]:port`).
    /// Checked by [`build`](Self::build).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// `bootstrap.servers` from separate addresses.
    pub fn bootstrap_server_list<I>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = BrokerAddress>,
    {
        let list: Vec<String> = servers.into_iter().map(|a| a.to_string()).collect();
        self.bootstrap_servers = Some(list.join(","));
        self
    }

    /// `compression.level` (librdkafka's key): the chosen codec's level, -1 for its default;
    /// gzip 0-9, zstd 0-12 (`set("compression.zstd.level", ..)` reaches all of zstd's).
    /// Checked against `compression.type` by [`build`](Self::build).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.levels.any = Some(i64::from(level));
        self
    }

    /// `client.id`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// `dlq.topic`: where records that failed for good are written (off when unset).
    pub fn dlq_topic(mut self, topic: impl Into<String>) -> Self {
        self.dlq_topic = Some(topic.into());
        self
    }

    /// `transactional.id`: makes the producer transactional (see
    /// [`Producer::init_transactions`](crate::Producer::init_transactions)). It implies
    /// idempotence and `acks=all`; setting `enable.idempotence=false`, `acks` other than
    /// `all` or `retries=0` with it is an error, as in the Java client.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// `transaction.timeout.ms`: how long the transaction coordinator lets a transaction
    /// stay open before it aborts it (default 60 s; the broker caps it at its
    /// `transaction.max.timeout.ms`). Only with `transactional.id`.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = Some(timeout);
        self
    }

    /// `security.protocol`.
    pub fn security_protocol(mut self, protocol: SecurityProtocol) -> Self {
        self.security.protocol = Some(protocol);
        self
    }

    /// `sasl.mechanism`.
    pub fn sasl_mechanism(mut self, mechanism: SaslMechanism) -> Self {
        self.security.mechanism = Some(mechanism);
        self
    }

    /// `sasl.username`.
    pub fn sasl_username(mut self, username: impl Into<String>) -> Self {
        self.security.username = Some(username.into());
        self
    }

    /// `sasl.password`. Never shown by `Debug` or in errors.
    pub fn sasl_password(mut self, password: impl Into<String>) -> Self {
        self.security.password = Some(Secret::new(password));
        self
    }

    /// Where SASL/OAUTHBEARER tokens come from: the application's provider (it implies
    /// `sasl.mechanism=OAUTHBEARER`; `security.protocol` must still be `sasl_ssl` or
    /// `sasl_plaintext`).
    pub fn oauth_token_provider(mut self, provider: Arc<dyn OAuthTokenProvider>) -> Self {
        self.security.token_provider = Some(TokenProviderHandle(provider));
        self
    }

    setters! {
        /// `acks`.
        acks: Acks => acks;
        /// `enable.idempotence`. Setting it, even to `true`, makes conflicts with `acks` and
        /// `retries` errors instead of silently turning idempotence off.
        enable_idempotence: bool => enable_idempotence;
        /// `max.in.flight.requests.per.connection` (at most 5 with idempotence).
        max_in_flight_requests_per_connection: u32 => max_in_flight as u64;
        /// `retries`.
        retries: u32 => retries as u64;
        /// `retry.backoff.ms`.
        retry_backoff: Duration => retry_backoff;
        /// `retry.backoff.max.ms`.
        retry_backoff_max: Duration => retry_backoff_max;
        /// `linger.ms`.
        linger: Duration => linger;
        /// `batch.size`, in bytes.
        batch_size: usize => batch_size as u64;
        /// `buffer.memory`, in bytes.
        buffer_memory: usize => buffer_memory as u64;
        /// `max.request.size`, in bytes.
        max_request_size: usize => max_request_size as u64;
        /// `compression.type`.
        compression: CompressionType => compression;
        /// `delivery.timeout.ms`.
        delivery_timeout: Duration => delivery_timeout;
        /// `delivery.resolution.timeout.ms` (zero: no resolution).
        delivery_resolution_timeout: Duration => resolution_timeout;
        /// `request.timeout.ms`.
        request_timeout: Duration => request_timeout;
        /// `metadata.max.age.ms`.
        metadata_max_age: Duration => metadata_max_age;
        /// `max.block.ms`.
        max_block: Duration => max_block;
        /// `partitioner`.
        partitioner: Partitioner => partitioner;
        /// `partitioner.ignore.keys` (Java): `true` spreads keyed records like unkeyed ones.
        partitioner_ignore_keys: bool => ignore_keys;
        /// `socket.connection.setup.timeout.ms`.
        socket_connection_setup_timeout: Duration => socket_connection_setup_timeout;
        /// `socket.connection.setup.timeout.max.ms`.
        socket_connection_setup_timeout_max: Duration => socket_connection_setup_timeout_max;
        /// `reconnect.backoff.ms`.
        reconnect_backoff: Duration => reconnect_backoff;
        /// `reconnect.backoff.max.ms`.
        reconnect_backoff_max: Duration => reconnect_backoff_max;
        /// `connections.max.idle.ms` (zero: never close idle connections).
        connections_max_idle: Duration => connections_max_idle;
        /// `durability.check`.
        durability_check: DurabilityCheck => durability_check;
        /// `profile`: a preset that explicit settings override.
        profile: Profile => profile;
        /// `dlq.possibly.persisted`.
        dlq_possibly_persisted: DlqPossiblyPersisted => dlq_possibly_persisted;
    }

    /// Sets one property by its Java or librdkafka key, e.g. `set("linger.ms", "5")`.
    ///
    /// Fails on unknown or unsupported keys and on values that do not parse; range and
    /// consistency checks happen in [`build`](Self::build).
    pub fn set(mut self, key: &str, value: &str) -> Result<Self, ConfigError> {
        self.apply(key, value)?;
        Ok(self)
    }

    /// Sets every property of `properties` in order (later entries win).
    pub fn properties<I, K, V>(mut self, properties: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (k, v) in properties {
            self.apply(k.as_ref(), v.as_ref())?;
        }
        Ok(self)
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let Some(spec) = keys::lookup(key) else {
            if let Some(reason) = keys::unsupported_reason(key) {
                return Err(ConfigError::UnsupportedKey {
                    key: key.to_string(),
                    reason,
                });
            }
            return Err(ConfigError::UnknownKey {
                key: key.to_string(),
                suggestion: keys::suggest(key),
            });
        };
        let invalid = |expected: String| ConfigError::InvalidValue {
            key: key.to_string(),
            expected,
            value: (!keys::looks_secret(key)).then(|| value.to_string()),
        };
        let number =
            || values::parse_u64(value).ok_or_else(|| invalid(NON_NEGATIVE_INTEGER.to_string()));
        // Every duration is bounded like the Java client's int settings: a larger one is a
        // typo, and it would overflow the clock arithmetic of deadlines built from it.
        let millis = || match values::parse_u64(value) {
            Some(ms) if ms <= INT_MAX => Ok(Duration::from_millis(ms)),
            Some(_) => Err(invalid(format!(
                "at most {INT_MAX} milliseconds (about 24.8 days)"
            ))),
            None => Err(invalid(NON_NEGATIVE_INTEGER.to_string())),
        };
        let boolean =
            || values::parse_bool(value).ok_or_else(|| invalid("true or false".to_string()));
        fn choice<T: Copy>(
            value: &str,
            choices: &[(&str, T)],
            invalid: impl Fn(String) -> ConfigError,
        ) -> Result<T, ConfigError> {
            values::parse_choice(value, choices).ok_or_else(|| invalid(values::one_of(choices)))
        }

        if spec.key.is_security() {
            return self.security.apply(spec.key, value, invalid);
        }
        match spec.key {
            Key::BootstrapServers => {
                parse_bootstrap_servers(key, value)?;
                self.bootstrap_servers = Some(value.to_string());
            }
            Key::ClientId => self.client_id = Some(value.trim().to_string()),
            Key::Acks => self.acks = Some(choice(value, values::ACKS_CHOICES, invalid)?),
            Key::EnableIdempotence => self.enable_idempotence = Some(boolean()?),
            Key::MaxInFlight => self.max_in_flight = Some(number()?),
            Key::Retries => self.retries = Some(number()?),
            Key::RetryBackoffMs => self.retry_backoff = Some(millis()?),
            Key::RetryBackoffMaxMs => self.retry_backoff_max = Some(millis()?),
            Key::LingerMs => self.linger = Some(millis()?),
            Key::BatchSize => self.batch_size = Some(number()?),
            Key::BufferMemory => self.buffer_memory = Some(number()?),
            Key::MaxRequestSize => self.max_request_size = Some(number()?),
            Key::CompressionType => {
                self.compression = Some(choice(value, values::COMPRESSION_CHOICES, invalid)?)
            }
            Key::CompressionLevel
            | Key::CompressionGzipLevel
            | Key::CompressionLz4Level
            | Key::CompressionZstdLevel => {
                let level = values::parse_i64(value)
                    .ok_or_else(|| invalid("an integer, e.g. 3 or -1".to_string()))?;
                let slot = match spec.key {
                    Key::CompressionLevel => &mut self.levels.any,
                    Key::CompressionGzipLevel => &mut self.levels.gzip,
                    Key::CompressionLz4Level => &mut self.levels.lz4,
                    _ => &mut self.levels.zstd,
                };
                *slot = Some(level);
            }
            Key::DeliveryTimeoutMs => {
                let timeout = millis()?;
                // librdkafka's message.timeout.ms=0 means "never time out"; courier always
                // bounds delivery (a record stuck forever hides an outage), so say so rather
                // than report "below linger.ms + request.timeout.ms".
                if timeout.is_zero() && key == "message.timeout.ms" {
                    return Err(invalid(
                        "a positive number of milliseconds (librdkafka's 0 = no timeout is not \
                         supported: courier bounds the delivery time of every record)"
                            .to_string(),
                    ));
                }
                self.delivery_timeout = Some(timeout);
            }
            Key::DeliveryResolutionTimeoutMs => self.resolution_timeout = Some(millis()?),
            Key::RequestTimeoutMs => self.request_timeout = Some(millis()?),
            Key::MetadataMaxAgeMs => self.metadata_max_age = Some(millis()?),
            Key::MaxBlockMs => self.max_block = Some(millis()?),
            Key::Partitioner => {
                self.partitioner = Some(choice(value, values::PARTITIONER_CHOICES, invalid)?)
            }
            Key::PartitionerIgnoreKeys => self.ignore_keys = Some(boolean()?),
            Key::SocketConnectionSetupTimeoutMs => {
                self.socket_connection_setup_timeout = Some(millis()?)
            }
            Key::SocketConnectionSetupTimeoutMaxMs => {
                self.socket_connection_setup_timeout_max = Some(millis()?)
            }
            Key::ReconnectBackoffMs => self.reconnect_backoff = Some(millis()?),
            Key::ReconnectBackoffMaxMs => self.reconnect_backoff_max = Some(millis()?),
            Key::ConnectionsMaxIdleMs => self.connections_max_idle = Some(millis()?),
            Key::DurabilityCheck => {
                self.durability_check =
                    Some(choice(value, values::DURABILITY_CHECK_CHOICES, invalid)?)
            }
            Key::Profile => self.profile = Some(choice(value, values::PROFILE_CHOICES, invalid)?),
            Key::DlqTopic => {
                let topic = value.trim();
                if topic.is_empty() {
                    return Err(invalid("a topic name".to_string()));
                }
                self.dlq_topic = Some(topic.to_string())
            }
            Key::TransactionalId => {
                // Java refuses an empty id (it would mean "not transactional" there).
                if value.is_empty() {
                    return Err(invalid("a non-empty transactional id".to_string()));
                }
                self.transactional_id = Some(value.to_string())
            }
            Key::TransactionTimeoutMs => self.transaction_timeout = Some(millis()?),
            Key::DlqPossiblyPersisted => {
                self.dlq_possibly_persisted = Some(choice(
                    value,
                    values::DLQ_POSSIBLY_PERSISTED_CHOICES,
                    invalid,
                )?)
            }
            Key::SecurityProtocol => {
                self.security.protocol =
                    Some(choice(value, values::SECURITY_PROTOCOL_CHOICES, invalid)?)
            }
            Key::SaslMechanism => {
                self.security.mechanism = Some(
                    values::parse_choice(value, values::SASL_MECHANISM_CHOICES)
                        .ok_or_else(|| invalid(sasl_mechanism_expectation(value)))?,
                )
            }
            Key::SaslUsername => self.security.username = Some(value.to_string()),
            Key::SaslPassword => self.security.password = Some(Secret::new(value)),
            _ => unreachable!("security keys are handled above"),
        }
        Ok(())
    }

    /// Checks every setting, alone and against the others, and returns the configuration.
    ///
    /// See the [module documentation](super) for the rules. Notices (adjusted defaults) are
    /// logged with `tracing::info!`; durability issues with `tracing::warn!` unless
    /// `durability.check=off`, and they fail the build under `durability.check=enforce`.
    pub fn build(mut self) -> Result<ProducerConfig, ConfigError> {
        let mut notices = Vec::new();
        let profile = self.profile;
        if let Some(profile) = profile {
            self.apply_profile(profile);
        }

        let bootstrap_servers = match &self.bootstrap_servers {
            Some(raw) => parse_bootstrap_servers(Key::BootstrapServers.name(), raw)?,
            None => {
                return Err(ConfigError::Missing {
                    key: Key::BootstrapServers.name(),
                    hint: "list at least one broker as host:port, e.g. 'broker1:9092'",
                })
            }
        };

        let client_id = self
            .client_id
            .unwrap_or_else(|| defaults::CLIENT_ID.to_string());
        // The request header carries the client id as a protocol string (i16 length).
        if client_id.len() > i16::MAX as usize {
            return Err(invalid(
                Key::ClientId,
                format!(
                    "must be at most {} bytes long, got {} bytes",
                    i16::MAX,
                    client_id.len()
                ),
            ));
        }

        let max_in_flight = in_range(
            Key::MaxInFlight,
            self.max_in_flight,
            defaults::MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION.into(),
            1,
            INT_MAX,
            "",
        )? as u32;
        let retries = in_range(
            Key::Retries,
            self.retries,
            defaults::RETRIES.into(),
            0,
            INT_MAX,
            "",
        )? as u32;
        let batch_size = in_range(
            Key::BatchSize,
            self.batch_size,
            defaults::BATCH_SIZE as u64,
            1,
            INT_MAX,
            // Java reads 0 as "no batching"; here a batch always holds at least one record,
            // and not waiting for more is linger.ms=0.
            " (to send records without waiting for more, set linger.ms=0)",
        )? as usize;
        let max_request_size = in_range(
            Key::MaxRequestSize,
            self.max_request_size,
            defaults::MAX_REQUEST_SIZE as u64,
            1,
            INT_MAX,
            "",
        )? as usize;
        let buffer_memory = in_range(
            Key::BufferMemory,
            self.buffer_memory,
            defaults::BUFFER_MEMORY as u64,
            1,
            usize::MAX as u64,
            "",
        )? as usize;
        // Java accepts this and then fails every send that needs a new batch; say it now.
        if buffer_memory < batch_size {
            return Err(invalid(
                Key::BufferMemory,
                format!(
                    "must be at least batch.size ({batch_size} bytes), got {buffer_memory} bytes: \
                     the producer could not hold a single full batch"
                ),
            ));
        }

        let linger = self.linger.unwrap_or(defaults::LINGER);
        let request_timeout = self.request_timeout.unwrap_or(defaults::REQUEST_TIMEOUT);
        // The Produce request carries the timeout as i32 milliseconds; zero would make every
        // request time out at once.
        if request_timeout < Duration::from_millis(1)
            || request_timeout.as_millis() > INT_MAX as u128
        {
            return Err(invalid(
                Key::RequestTimeoutMs,
                format!(
                    "must be between 1 and {INT_MAX} ms, got {} ms",
                    request_timeout.as_millis()
                ),
            ));
        }

        // Idempotence, as the Java client resolves it since KIP-679 and KAFKA-13673: the default
        // (true) gives way to an incompatible acks or retries, an explicit true does not. The
        // in-flight limit is checked against the default too, before giving way, exactly like
        // Java: a config that asks for more than 5 in flight must say enable.idempotence=false.
        let mut explicit_idempotence = self.enable_idempotence;
        // Transactions need idempotence (KIP-98): Java refuses a transactional.id with
        // enable.idempotence=false, acks other than all, or retries=0, whether or not
        // enable.idempotence was set, instead of turning idempotence off.
        if let Some(id) = &self.transactional_id {
            if explicit_idempotence == Some(false) {
                return Err(invalid(
                    Key::EnableIdempotence,
                    format!(
                        "transactional.id={id} requires idempotence, got \
                         enable.idempotence=false: remove enable.idempotence (or set it to \
                         true), or remove transactional.id"
                    ),
                ));
            }
            let acks = self.acks.unwrap_or(defaults::ACKS);
            if acks != Acks::All {
                return Err(invalid(
                    Key::Acks,
                    format!(
                        "transactional.id={id} requires acks=all, got acks={acks}: set \
                         acks=all (or remove acks), or remove transactional.id"
                    ),
                ));
            }
            if retries == 0 {
                return Err(invalid(
                    Key::Retries,
                    format!(
                        "transactional.id={id} requires retries >= 1, got 0: remove retries \
                         (delivery.timeout.ms bounds retrying), or remove transactional.id"
                    ),
                ));
            }
            // A record that fails inside a transaction makes the transaction abortable:
            // the application aborts it and sends its records again, so the record is
            // not lost. The dead letter producer is not transactional (it would fence
            // this one), so its record would stay visible after the abort and claim a
            // failure that the resend repairs: a false dead letter.
            if let Some(dlq) = &self.dlq_topic {
                return Err(invalid(
                    Key::DlqTopic,
                    format!(
                        "dlq.topic={dlq} cannot be used with transactional.id={id}: a record                          that fails inside a transaction aborts the transaction, and its                          records are sent again in the next one, so a dead letter (written                          outside the transaction, and visible whatever it does) would report                          a failure that did not stay one: remove dlq.topic (a transaction's                          failure is the error of commit_transaction), or remove                          transactional.id"
                    ),
                ));
            }
            explicit_idempotence = Some(true);
        } else if self.transaction_timeout.is_some() {
            return Err(invalid(
                Key::TransactionTimeoutMs,
                "transaction.timeout.ms has no effect without transactional.id: set \
                 transactional.id to make the producer transactional, or remove \
                 transaction.timeout.ms"
                    .to_string(),
            ));
        }
        let transaction_timeout = self
            .transaction_timeout
            .unwrap_or(defaults::TRANSACTION_TIMEOUT);
        if transaction_timeout.is_zero() {
            return Err(invalid(
                Key::TransactionTimeoutMs,
                "must be at least 1 ms, got 0: the coordinator would abort every \
                 transaction at once; remove it for the default (60000)"
                    .to_string(),
            ));
        }
        let mut enable_idempotence = explicit_idempotence.unwrap_or(defaults::ENABLE_IDEMPOTENCE);
        let acks = self.acks.unwrap_or(defaults::ACKS);
        if enable_idempotence {
            if max_in_flight > MAX_IN_FLIGHT_WITH_IDEMPOTENCE {
                let why = if self.transactional_id.is_some() {
                    "lower it: transactional.id requires idempotence"
                } else if explicit_idempotence.is_some() {
                    "lower it, or set enable.idempotence=false"
                } else {
                    "idempotence is on by default: lower it, or set enable.idempotence=false \
                     explicitly to allow more"
                };
                return Err(invalid(
                    Key::MaxInFlight,
                    format!(
                        "must be at most {MAX_IN_FLIGHT_WITH_IDEMPOTENCE} with idempotence, got \
                         {max_in_flight}: brokers remember only the last \
                         {MAX_IN_FLIGHT_WITH_IDEMPOTENCE} batches of a producer to detect \
                         duplicates; {why}"
                    ),
                ));
            }
            if acks != Acks::All {
                if explicit_idempotence == Some(true) {
                    return Err(invalid(
                        Key::Acks,
                        format!(
                            "enable.idempotence=true requires acks=all, got acks={acks}: set \
                             acks=all, or set enable.idempotence=false if duplicates after \
                             retries are acceptable"
                        ),
                    ));
                }
                enable_idempotence = false;
                notices.push(ConfigNotice::IdempotenceDisabled {
                    because_of: Key::Acks.name(),
                });
            }
            if retries == 0 {
                if explicit_idempotence == Some(true) {
                    return Err(invalid(
                        Key::Retries,
                        "enable.idempotence=true requires retries >= 1, got 0: remove retries \
                         (delivery.timeout.ms bounds retrying), or set enable.idempotence=false"
                            .to_string(),
                    ));
                }
                enable_idempotence = false;
                notices.push(ConfigNotice::IdempotenceDisabled {
                    because_of: Key::Retries.name(),
                });
            }
        }

        // A record must get at least its linger time plus one full attempt. Java errors if the
        // user set delivery.timeout.ms too low, and quietly raises the default otherwise, up
        // to the largest value it can hold (a huge linger.ms alone must not fail on a
        // delivery.timeout.ms the user never set).
        let minimum_delivery = linger
            .saturating_add(request_timeout)
            .min(Duration::from_millis(INT_MAX));
        let delivery_timeout = match self.delivery_timeout {
            Some(d) if d < minimum_delivery => {
                return Err(invalid(
                    Key::DeliveryTimeoutMs,
                    format!(
                        "must be at least linger.ms + request.timeout.ms ({} + {} = {} ms), got \
                         {} ms: a record needs time for its batch to fill and for one full \
                         request; raise delivery.timeout.ms or lower the other two",
                        linger.as_millis(),
                        request_timeout.as_millis(),
                        minimum_delivery.as_millis(),
                        d.as_millis()
                    ),
                ));
            }
            Some(d) => d,
            None if defaults::DELIVERY_TIMEOUT < minimum_delivery => {
                notices.push(ConfigNotice::DeliveryTimeoutRaised {
                    to: minimum_delivery,
                });
                minimum_delivery
            }
            None => defaults::DELIVERY_TIMEOUT,
        };
        if delivery_timeout.as_millis() > INT_MAX as u128 {
            return Err(invalid(
                Key::DeliveryTimeoutMs,
                format!(
                    "must be at most {INT_MAX} ms (about 24.8 days), got {} ms",
                    delivery_timeout.as_millis()
                ),
            ));
        }

        let (retry_backoff, retry_backoff_max) = backoff_pair(
            (
                Key::RetryBackoffMs,
                self.retry_backoff,
                defaults::RETRY_BACKOFF,
            ),
            (
                Key::RetryBackoffMaxMs,
                self.retry_backoff_max,
                defaults::RETRY_BACKOFF_MAX,
            ),
            &mut notices,
        )?;
        let (reconnect_backoff, reconnect_backoff_max) = backoff_pair(
            (
                Key::ReconnectBackoffMs,
                self.reconnect_backoff,
                defaults::RECONNECT_BACKOFF,
            ),
            (
                Key::ReconnectBackoffMaxMs,
                self.reconnect_backoff_max,
                defaults::RECONNECT_BACKOFF_MAX,
            ),
            &mut notices,
        )?;
        let (socket_connection_setup_timeout, socket_connection_setup_timeout_max) = backoff_pair(
            (
                Key::SocketConnectionSetupTimeoutMs,
                self.socket_connection_setup_timeout,
                defaults::SOCKET_CONNECTION_SETUP_TIMEOUT,
            ),
            (
                Key::SocketConnectionSetupTimeoutMaxMs,
                self.socket_connection_setup_timeout_max,
                defaults::SOCKET_CONNECTION_SETUP_TIMEOUT_MAX,
            ),
            &mut notices,
        )?;
        // librdkafka's floors: a zero backoff would retry (or reconnect) in a busy loop, and
        // no setting may make the producer hammer a broker.
        for (key, value) in [
            (Key::RetryBackoffMs, retry_backoff),
            (Key::ReconnectBackoffMs, reconnect_backoff),
        ] {
            if value.is_zero() {
                return Err(invalid(
                    key,
                    "must be at least 1 ms, got 0 ms: a zero backoff would retry in a busy \
                     loop against the broker"
                        .to_string(),
                ));
            }
        }
        if socket_connection_setup_timeout.is_zero() {
            return Err(invalid(
                Key::SocketConnectionSetupTimeoutMs,
                "must be at least 1 ms, got 0 ms".to_string(),
            ));
        }

        let compression = self.compression.unwrap_or(defaults::COMPRESSION);
        let compression_level = levels::resolve(compression, self.levels)?;

        let partitioner = resolve_partitioner(self.partitioner, self.ignore_keys)?;

        let (security_protocol, tls, sasl) = security::resolve(self.security)?;
        if security_protocol == SecurityProtocol::SaslPlaintext
            && sasl.as_ref().map(|s| s.mechanism()) == Some(SaslMechanism::Plain)
        {
            tracing::warn!(
                "sasl.mechanism=PLAIN over security.protocol=sasl_plaintext sends the password \
                 unencrypted: use sasl_ssl, or SCRAM"
            );
        }

        let durability_check = self.durability_check.unwrap_or(defaults::DURABILITY_CHECK);
        let mut durability_issues = Vec::new();
        if acks != Acks::All {
            durability_issues.push(DurabilityIssue::AcksNotAll(acks));
        }
        if !enable_idempotence {
            durability_issues.push(DurabilityIssue::IdempotenceDisabled);
        }
        if retries == 0 {
            durability_issues.push(DurabilityIssue::NoRetries);
        }
        match durability_check {
            DurabilityCheck::Enforce if !durability_issues.is_empty() => {
                return Err(ConfigError::NotDurable {
                    issues: durability_issues,
                });
            }
            DurabilityCheck::Warn => {
                for issue in &durability_issues {
                    tracing::warn!(%issue, "producer configuration is not durable (durability.check=warn)");
                }
            }
            _ => {}
        }
        for notice in &notices {
            tracing::info!(%notice, "producer configuration adjusted");
        }

        Ok(ProducerConfig {
            bootstrap_servers,
            client_id,
            acks,
            enable_idempotence,
            max_in_flight_requests_per_connection: max_in_flight,
            retries,
            retry_backoff,
            retry_backoff_max,
            linger,
            batch_size,
            buffer_memory,
            max_request_size,
            compression,
            compression_level,
            delivery_timeout,
            request_timeout,
            metadata_max_age: self.metadata_max_age.unwrap_or(defaults::METADATA_MAX_AGE),
            max_block: self.max_block.unwrap_or(defaults::MAX_BLOCK),
            partitioner,
            socket_connection_setup_timeout,
            socket_connection_setup_timeout_max,
            reconnect_backoff,
            reconnect_backoff_max,
            resolution_timeout: self
                .resolution_timeout
                .unwrap_or(defaults::DELIVERY_RESOLUTION_TIMEOUT),
            connections_max_idle: self
                .connections_max_idle
                .unwrap_or(defaults::CONNECTIONS_MAX_IDLE),
            durability_check,
            profile,
            dlq_topic: self.dlq_topic,
            transactional_id: self.transactional_id,
            transaction_timeout,
            dlq_possibly_persisted: self.dlq_possibly_persisted.unwrap_or_default(),
            security_protocol,
            tls,
            sasl,
            notices,
            durability_issues,
        })
    }
}

impl ProducerConfigBuilder {
    /// Fills what the user did not set with the preset's values: explicit settings win
    /// whatever order they came in.
    fn apply_profile(&mut self, profile: Profile) {
        let (acks, idempotence, retries, check) = match profile {
            Profile::Critical => (Acks::All, true, Some(INT_MAX), DurabilityCheck::Warn),
            Profile::Analytics => (Acks::Leader, false, None, DurabilityCheck::Off),
            // Fire and forget: a retry would only delay newer samples.
            Profile::Metrics => (Acks::None, false, Some(0), DurabilityCheck::Off),
        };
        self.acks.get_or_insert(acks);
        self.enable_idempotence.get_or_insert(idempotence);
        if let Some(retries) = retries {
            self.retries.get_or_insert(retries);
        }
        if profile == Profile::Critical {
            self.max_in_flight
                .get_or_insert(MAX_IN_FLIGHT_WITH_IDEMPOTENCE as u64);
        }
        // Choosing a weaker profile is a decision, not a leftover: do not warn about it.
        self.durability_check.get_or_insert(check);
    }
}

fn invalid(key: Key, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.name(),
        message,
    }
}

/// The value (or default) if it lies in `min..=max`.
fn in_range(
    key: Key,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
    advice: &str,
) -> Result<u64, ConfigError> {
    let v = value.unwrap_or(default);
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(
            key,
            format!("must be between {min} and {max}, got {v}{advice}"),
        ))
    }
}

/// A base value and its cap. A cap below its base is an error when both were set (librdkafka
/// rejects it too); when only the base was set, the cap follows it up, which gives a constant
/// backoff (what the Java client does for `reconnect.backoff.ms` alone).
fn backoff_pair(
    (base_key, base, base_default): (Key, Option<Duration>, Duration),
    (max_key, max, max_default): (Key, Option<Duration>, Duration),
    notices: &mut Vec<ConfigNotice>,
) -> Result<(Duration, Duration), ConfigError> {
    let base = base.unwrap_or(base_default);
    match max {
        Some(max) if max < base => Err(invalid(
            max_key,
            format!(
                "must be at least {} ({} ms), got {} ms",
                base_key.name(),
                base.as_millis(),
                max.as_millis()
            ),
        )),
        Some(max) => Ok((base, max)),
        None if max_default < base => {
            notices.push(ConfigNotice::BackoffMaxRaised {
                key: max_key.name(),
                to: base,
            });
            Ok((base, base))
        }
        None => Ok((base, max_default)),
    }
}

/// What `sasl.mechanism` accepts, with a pointer for the mechanisms courier does not have.
fn sasl_mechanism_expectation(value: &str) -> String {
    let accepted = values::one_of(values::SASL_MECHANISM_CHOICES);
    let v = value.trim().to_ascii_uppercase();
    let why = match v.as_str() {
        "GSSAPI" => " (GSSAPI/Kerberos is not supported: use SCRAM, PLAIN over TLS or OAUTHBEARER)",
        "AWS_MSK_IAM" => {
            " (MSK IAM: use OAUTHBEARER with courier::msk_iam::MskIamTokenProvider as the \
             token provider, cargo feature msk-iam)"
        }
        _ => "",
    };
    format!("{accepted}{why}")
}

fn parse_bootstrap_servers(key: &str, raw: &str) -> Result<Vec<BrokerAddress>, ConfigError> {
    let mut servers = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let address = entry
            .parse::<BrokerAddress>()
            .map_err(|e| ConfigError::InvalidValue {
                key: key.to_string(),
                expected: format!("host:port {}", e.requirement),
                value: Some(entry.to_string()),
            })?;
        servers.push(address);
    }
    if servers.is_empty() {
        return Err(ConfigError::InvalidValue {
            key: key.to_string(),
            expected: "a comma-separated list of host:port, e.g. 'broker1:9092,broker2:9092'"
                .to_string(),
            value: Some(raw.to_string()),
        });
    }
    Ok(servers)
}

/// `partitioner` and Java's `partitioner.ignore.keys` together: the Java key may only
/// confirm what `partitioner` says, never silently undo it.
fn resolve_partitioner(
    partitioner: Option<Partitioner>,
    ignore_keys: Option<bool>,
) -> Result<Partitioner, ConfigError> {
    match (partitioner, ignore_keys) {
        (None, None) => Ok(defaults::PARTITIONER),
        (Some(p), None) => Ok(p),
        (None | Some(Partitioner::Default | Partitioner::IgnoreKeys), Some(true)) => {
            Ok(Partitioner::IgnoreKeys)
        }
        (None | Some(Partitioner::Default), Some(false)) => Ok(Partitioner::Default),
        (Some(Partitioner::IgnoreKeys), Some(false)) => Err(invalid(
            Key::PartitionerIgnoreKeys,
            "partitioner.ignore.keys=false contradicts partitioner=ignore_keys: remove one of \
             them"
                .to_string(),
        )),
        (Some(p), Some(ignore)) => Err(invalid(
            Key::PartitionerIgnoreKeys,
            format!(
                "partitioner.ignore.keys={ignore} (a setting of Java's default partitioner) \
                 cannot be combined with partitioner={p}: remove partitioner.ignore.keys, or use \
                 partitioner=random to ignore keys"
            ),
        )),
    }
}
