//! The property keys courier understands, their aliases, and help for the ones it does not.

/// Every setting, one variant per canonical key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    BootstrapServers,
    ClientId,
    Acks,
    EnableIdempotence,
    MaxInFlight,
    Retries,
    RetryBackoffMs,
    RetryBackoffMaxMs,
    LingerMs,
    BatchSize,
    BufferMemory,
    MaxRequestSize,
    CompressionType,
    CompressionLevel,
    CompressionGzipLevel,
    CompressionLz4Level,
    CompressionZstdLevel,
    DeliveryTimeoutMs,
    DeliveryResolutionTimeoutMs,
    RequestTimeoutMs,
    MetadataMaxAgeMs,
    MaxBlockMs,
    Partitioner,
    PartitionerIgnoreKeys,
    SocketConnectionSetupTimeoutMs,
    SocketConnectionSetupTimeoutMaxMs,
    ReconnectBackoffMs,
    ReconnectBackoffMaxMs,
    ConnectionsMaxIdleMs,
    DurabilityCheck,
    Profile,
    DlqTopic,
    TransactionalId,
    TransactionTimeoutMs,
    DlqPossiblyPersisted,
    SecurityProtocol,
    SaslMechanism,
    SaslUsername,
    SaslPassword,
    SslCaLocation,
    SslCaPem,
    SslCertificateLocation,
    SslCertificatePem,
    SslKeyLocation,
    SslKeyPem,
    SslKeyPassword,
    SslKeystoreLocation,
    SslKeystoreType,
    SslKeystorePassword,
    SslKeystoreKeyPem,
    SslKeystoreCertificateChain,
    SslTruststoreLocation,
    SslTruststoreType,
    SslTruststorePassword,
    SslTruststoreCertificates,
    SslEndpointIdentificationAlgorithm,
    EnableSslCertificateVerification,
    SslEnabledProtocols,
    SslProtocol,
    SaslOauthbearerMethod,
    SaslOauthbearerTokenEndpointUrl,
    SaslOauthbearerClientId,
    SaslOauthbearerClientSecret,
    SaslOauthbearerScope,
    SaslOauthbearerExtensions,
    SaslOauthbearerToken,
    SaslJaasConfig,
}

/// One row of the key table.
pub(crate) struct KeySpec {
    pub(crate) key: Key,
    /// The Java client's name, used in messages.
    pub(crate) name: &'static str,
    /// Other spellings accepted for the same setting.
    pub(crate) aliases: &'static [&'static str],
    /// Values of this key are never echoed in errors or `Debug`.
    pub(crate) secret: bool,
}

const fn spec(key: Key, name: &'static str, aliases: &'static [&'static str]) -> KeySpec {
    KeySpec {
        key,
        name,
        aliases,
        secret: false,
    }
}

const fn secret(key: Key, name: &'static str, aliases: &'static [&'static str]) -> KeySpec {
    KeySpec {
        key,
        name,
        aliases,
        secret: true,
    }
}

/// Canonical names are the Java client's. Aliases are librdkafka names with the *same meaning
/// and unit*; librdkafka names whose unit or meaning differ (`queue.buffering.max.kbytes`,
/// `batch.num.messages`) are listed in [`UNSUPPORTED`] with a pointer instead, so that a
/// copied librdkafka config never silently means something else.
pub(crate) const KEYS: &[KeySpec] = &[
    spec(
        Key::BootstrapServers,
        "bootstrap.servers",
        &["metadata.broker.list"],
    ),
    spec(Key::ClientId, "client.id", &[]),
    spec(Key::Acks, "acks", &["request.required.acks"]),
    spec(Key::EnableIdempotence, "enable.idempotence", &[]),
    spec(
        Key::MaxInFlight,
        "max.in.flight.requests.per.connection",
        &["max.in.flight"],
    ),
    spec(Key::Retries, "retries", &["message.send.max.retries"]),
    spec(Key::RetryBackoffMs, "retry.backoff.ms", &[]),
    spec(Key::RetryBackoffMaxMs, "retry.backoff.max.ms", &[]),
    spec(Key::LingerMs, "linger.ms", &["queue.buffering.max.ms"]),
    spec(Key::BatchSize, "batch.size", &[]),
    spec(Key::BufferMemory, "buffer.memory", &[]),
    spec(
        Key::MaxRequestSize,
        "max.request.size",
        &["message.max.bytes"],
    ),
    spec(
        Key::CompressionType,
        "compression.type",
        &["compression.codec"],
    ),
    // librdkafka's one level for whichever codec is chosen, and Java's one per codec
    // (KIP-390). Both sets are accepted; build() checks them against the codec.
    spec(Key::CompressionLevel, "compression.level", &[]),
    spec(Key::CompressionGzipLevel, "compression.gzip.level", &[]),
    spec(Key::CompressionLz4Level, "compression.lz4.level", &[]),
    spec(Key::CompressionZstdLevel, "compression.zstd.level", &[]),
    spec(
        Key::DeliveryTimeoutMs,
        "delivery.timeout.ms",
        &["message.timeout.ms"],
    ),
    spec(
        Key::DeliveryResolutionTimeoutMs,
        "delivery.resolution.timeout.ms",
        &[],
    ),
    spec(Key::RequestTimeoutMs, "request.timeout.ms", &[]),
    spec(Key::MetadataMaxAgeMs, "metadata.max.age.ms", &[]),
    spec(Key::MaxBlockMs, "max.block.ms", &[]),
    spec(Key::Partitioner, "partitioner", &[]),
    spec(Key::PartitionerIgnoreKeys, "partitioner.ignore.keys", &[]),
    spec(
        Key::SocketConnectionSetupTimeoutMs,
        "socket.connection.setup.timeout.ms",
        &[],
    ),
    spec(
        Key::SocketConnectionSetupTimeoutMaxMs,
        "socket.connection.setup.timeout.max.ms",
        &[],
    ),
    spec(Key::ReconnectBackoffMs, "reconnect.backoff.ms", &[]),
    spec(Key::ReconnectBackoffMaxMs, "reconnect.backoff.max.ms", &[]),
    spec(Key::ConnectionsMaxIdleMs, "connections.max.idle.ms", &[]),
    spec(Key::DurabilityCheck, "durability.check", &[]),
    spec(Key::Profile, "profile", &[]),
    spec(Key::DlqTopic, "dlq.topic", &[]),
    spec(Key::TransactionalId, "transactional.id", &[]),
    spec(Key::TransactionTimeoutMs, "transaction.timeout.ms", &[]),
    spec(Key::DlqPossiblyPersisted, "dlq.possibly.persisted", &[]),
    spec(Key::SecurityProtocol, "security.protocol", &[]),
    spec(Key::SaslMechanism, "sasl.mechanism", &["sasl.mechanisms"]),
    spec(Key::SaslUsername, "sasl.username", &[]),
    secret(Key::SaslPassword, "sasl.password", &[]),
    // TLS: librdkafka's names for PEM material, Java's for key and trust stores.
    spec(Key::SslCaLocation, "ssl.ca.location", &[]),
    spec(Key::SslCaPem, "ssl.ca.pem", &[]),
    spec(Key::SslCertificateLocation, "ssl.certificate.location", &[]),
    spec(Key::SslCertificatePem, "ssl.certificate.pem", &[]),
    spec(Key::SslKeyLocation, "ssl.key.location", &[]),
    secret(Key::SslKeyPem, "ssl.key.pem", &[]),
    secret(Key::SslKeyPassword, "ssl.key.password", &[]),
    spec(Key::SslKeystoreLocation, "ssl.keystore.location", &[]),
    spec(Key::SslKeystoreType, "ssl.keystore.type", &[]),
    secret(Key::SslKeystorePassword, "ssl.keystore.password", &[]),
    secret(Key::SslKeystoreKeyPem, "ssl.keystore.key", &[]),
    spec(
        Key::SslKeystoreCertificateChain,
        "ssl.keystore.certificate.chain",
        &[],
    ),
    spec(Key::SslTruststoreLocation, "ssl.truststore.location", &[]),
    spec(Key::SslTruststoreType, "ssl.truststore.type", &[]),
    secret(Key::SslTruststorePassword, "ssl.truststore.password", &[]),
    spec(
        Key::SslTruststoreCertificates,
        "ssl.truststore.certificates",
        &[],
    ),
    spec(
        Key::SslEndpointIdentificationAlgorithm,
        "ssl.endpoint.identification.algorithm",
        &[],
    ),
    spec(
        Key::EnableSslCertificateVerification,
        "enable.ssl.certificate.verification",
        &[],
    ),
    spec(Key::SslEnabledProtocols, "ssl.enabled.protocols", &[]),
    spec(Key::SslProtocol, "ssl.protocol", &[]),
    // SASL/OAUTHBEARER: librdkafka's names; Kafka 4's client-credentials names as aliases.
    spec(Key::SaslOauthbearerMethod, "sasl.oauthbearer.method", &[]),
    spec(
        Key::SaslOauthbearerTokenEndpointUrl,
        "sasl.oauthbearer.token.endpoint.url",
        &[],
    ),
    spec(
        Key::SaslOauthbearerClientId,
        "sasl.oauthbearer.client.id",
        &["sasl.oauthbearer.client.credentials.client.id"],
    ),
    secret(
        Key::SaslOauthbearerClientSecret,
        "sasl.oauthbearer.client.secret",
        &["sasl.oauthbearer.client.credentials.client.secret"],
    ),
    spec(Key::SaslOauthbearerScope, "sasl.oauthbearer.scope", &[]),
    spec(
        Key::SaslOauthbearerExtensions,
        "sasl.oauthbearer.extensions",
        &[],
    ),
    // courier's own: one fixed token (for tokens another process refreshes, use a provider).
    secret(Key::SaslOauthbearerToken, "sasl.oauthbearer.token", &[]),
    // Java's one-line login configuration: PLAIN, SCRAM and OAUTHBEARER login modules.
    secret(Key::SaslJaasConfig, "sasl.jaas.config", &[]),
];

impl Key {
    /// Whether the key is one of the TLS or SASL settings `config::security` resolves.
    pub(crate) fn is_security(self) -> bool {
        matches!(
            self,
            Key::SslCaLocation
                | Key::SslCaPem
                | Key::SslCertificateLocation
                | Key::SslCertificatePem
                | Key::SslKeyLocation
                | Key::SslKeyPem
                | Key::SslKeyPassword
                | Key::SslKeystoreLocation
                | Key::SslKeystoreType
                | Key::SslKeystorePassword
                | Key::SslKeystoreKeyPem
                | Key::SslKeystoreCertificateChain
                | Key::SslTruststoreLocation
                | Key::SslTruststoreType
                | Key::SslTruststorePassword
                | Key::SslTruststoreCertificates
                | Key::SslEndpointIdentificationAlgorithm
                | Key::EnableSslCertificateVerification
                | Key::SslEnabledProtocols
                | Key::SslProtocol
                | Key::SaslOauthbearerMethod
                | Key::SaslOauthbearerTokenEndpointUrl
                | Key::SaslOauthbearerClientId
                | Key::SaslOauthbearerClientSecret
                | Key::SaslOauthbearerScope
                | Key::SaslOauthbearerExtensions
                | Key::SaslOauthbearerToken
                | Key::SaslJaasConfig
        )
    }
}

impl Key {
    pub(crate) fn spec(self) -> &'static KeySpec {
        KEYS.iter()
            .find(|s| s.key == self)
            .expect("every Key has a row in KEYS")
    }

    pub(crate) fn name(self) -> &'static str {
        self.spec().name
    }
}

/// Resolves a key as written by the user (canonical name or alias, exact spelling).
pub(crate) fn lookup(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// Keys from the Java client or librdkafka that courier deliberately does not accept, with
/// what to do instead. An error that names the replacement beats "unknown key".
pub(crate) const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "key.serializer",
        "courier sends bytes: serialize keys before calling send",
    ),
    (
        "value.serializer",
        "courier sends bytes: serialize values before calling send",
    ),
    (
        "partitioner.class",
        "there are no pluggable partitioner classes; set partitioner to one of default, ignore_keys, \
         consistent, consistent_random, murmur2, murmur2_random, fnv1a, fnv1a_random or random",
    ),
    (
        "interceptor.classes",
        "there are no interceptors; wrap the producer instead",
    ),
    (
        "queue.buffering.max.kbytes",
        "use buffer.memory, which is in bytes (kbytes * 1024)",
    ),
    (
        "queue.buffering.max.messages",
        "the buffer is bounded by bytes only: use buffer.memory",
    ),
    (
        "batch.num.messages",
        "batches are bounded by bytes only: use batch.size",
    ),
    (
        "sticky.partitioning.linger.ms",
        "the sticky partitioner switches after batch.size bytes (KIP-794), not after a time",
    ),
    (
        "partitioner.adaptive.partitioning.enable",
        "adaptive partitioning is not implemented; unkeyed records go to a sticky partition \
         among the available ones, switched after batch.size bytes (KIP-794)",
    ),
    (
        "partitioner.availability.timeout.ms",
        "adaptive partitioning is not implemented; partitions without a leader are avoided always",
    ),
    (
        "send.buffer.bytes",
        "socket buffer sizes are left to the operating system",
    ),
    (
        "receive.buffer.bytes",
        "socket buffer sizes are left to the operating system",
    ),
    ("metadata.max.idle.ms", "not implemented yet"),
    ("client.dns.lookup", "not implemented yet"),
    (
        "enable.gapless.guarantee",
        "not implemented; courier never skips a sequence number for a record it reports as failed",
    ),
    ("metric.reporters", "there are no metric reporters"),
    ("metrics.sample.window.ms", "there are no metric reporters"),
    ("metrics.num.samples", "there are no metric reporters"),
    ("metrics.recording.level", "there are no metric reporters"),
    ("enable.metrics.push", "client metrics push (KIP-714) is not implemented"),
    (
        "ssl.cipher.suites",
        "courier offers rustls's modern AEAD suites only (TLS 1.3, and ECDHE with AES-GCM or \
         ChaCha20-Poly1305 for TLS 1.2); there is no weaker one to choose",
    ),
    ("ssl.curves.list", "the key exchange groups are rustls's (X25519, P-256, P-384)"),
    ("ssl.sigalgs.list", "the signature algorithms are rustls's modern ones"),
    ("ssl.engine.location", "there are no OpenSSL engines: courier does not use OpenSSL"),
    ("ssl.engine.id", "there are no OpenSSL engines: courier does not use OpenSSL"),
    ("ssl.providers", "there are no OpenSSL providers: courier does not use OpenSSL"),
    (
        "ssl.ca.certificate.stores",
        "Windows certificate stores are not read; set ssl.ca.location",
    ),
    (
        "ssl.crl.location",
        "certificate revocation lists are not checked; rotate compromised certificates out of \
         the trusted CA instead",
    ),
    ("ssl.keymanager.algorithm", "a JVM setting; courier has no key managers"),
    ("ssl.trustmanager.algorithm", "a JVM setting; courier has no trust managers"),
    ("ssl.secure.random.implementation", "a JVM setting; courier uses the system's CSPRNG"),
    ("ssl.engine.factory.class", "a JVM setting; there are no pluggable SSL engines"),
    (
        "sasl.kerberos.service.name",
        "GSSAPI (Kerberos) is not supported; use SCRAM, PLAIN over TLS, or OAUTHBEARER",
    ),
    ("sasl.kerberos.principal", "GSSAPI (Kerberos) is not supported"),
    ("sasl.kerberos.keytab", "GSSAPI (Kerberos) is not supported"),
    ("sasl.kerberos.kinit.cmd", "GSSAPI (Kerberos) is not supported"),
    ("sasl.kerberos.min.time.before.relogin", "GSSAPI (Kerberos) is not supported"),
    (
        "sasl.login.callback.handler.class",
        "there are no Java callback classes: set sasl.oauthbearer.method=oidc (client \
         credentials), or give the producer a token provider (for MSK's \
         IAMOAuthBearerLoginCallbackHandler: courier::msk_iam, cargo feature msk-iam)",
    ),
    (
        "sasl.client.callback.handler.class",
        "there are no Java callback classes; set sasl.username and sasl.password",
    ),
    ("sasl.login.class", "there are no Java login classes"),
    (
        "sasl.login.refresh.window.factor",
        "courier refreshes an OAUTHBEARER token at 80 % of its lifetime (librdkafka's rule)",
    ),
    (
        "sasl.login.refresh.window.jitter",
        "courier refreshes an OAUTHBEARER token at 80 % of its lifetime (librdkafka's rule)",
    ),
    (
        "sasl.login.refresh.min.period.seconds",
        "courier refreshes an OAUTHBEARER token at 80 % of its lifetime (librdkafka's rule)",
    ),
    (
        "sasl.login.refresh.buffer.seconds",
        "courier refreshes an OAUTHBEARER token at 80 % of its lifetime (librdkafka's rule)",
    ),
    (
        "sasl.oauthbearer.config",
        "librdkafka's unsecured test tokens are not supported: use sasl.oauthbearer.method=oidc, \
         sasl.oauthbearer.token, or a token provider",
    ),
    (
        "enable.sasl.oauthbearer.unsecure.jwt",
        "unsecured JWTs are not supported: use a token a broker can verify",
    ),
];

/// Whether a key's value must never be shown: a secret courier knows as such, or any key
/// whose name looks like it holds one (a password, a secret, a JAAS line with credentials,
/// a token, a private key), known to courier or not: a misspelt `sasl.pasword` is still a
/// password.
pub(crate) fn looks_secret(name: &str) -> bool {
    if lookup(name).is_some_and(|s| s.secret) {
        return true;
    }
    let n = name.to_ascii_lowercase();
    const MARKERS: &[&str] = &[
        "pass",
        "pasw",
        "pwd",
        "secret",
        "jaas",
        "token",
        "credential",
        "private",
        "auth",
    ];
    MARKERS.iter().any(|m| n.contains(m))
        || n.ends_with(".key")
        || n.contains("key.pem")
        || n.contains("keystore.key")
}

pub(crate) fn unsupported_reason(name: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .find(|(k, _)| *k == name)
        .map(|&(_, reason)| reason)
}

/// The accepted key closest to an unknown `name`, if one is close enough to be a likely typo.
///
/// Compares after lower-casing and mapping `_`/`-` to `.` (so `LINGER_MS` finds `linger.ms`),
/// by edit distance, and counts a missing or extra suffix (`linger` for `linger.ms`,
/// `request.timeout` for `request.timeout.ms`) as close.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    let wanted: String = name
        .trim()
        .chars()
        .map(|c| match c {
            '_' | '-' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let candidates = KEYS
        .iter()
        .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()));

    let mut best: Option<(usize, &'static str)> = None;
    for candidate in candidates {
        let mut distance = edit_distance(&wanted, candidate);
        let shorter = wanted.len().min(candidate.len());
        if shorter >= 6 && (candidate.starts_with(&wanted) || wanted.starts_with(candidate)) {
            distance = distance.min(1);
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    // Two edits for short keys, a few more for long ones: close enough to be a typo, far
    // enough not to suggest `acks` for `abc`.
    let limit = (wanted.len() / 6).max(2);
    best.filter(|&(d, _)| d <= limit && d < wanted.len())
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_key_and_alias_is_spelled_once() {
        let mut seen = HashSet::new();
        for s in KEYS {
            for name in std::iter::once(s.name).chain(s.aliases.iter().copied()) {
                assert!(seen.insert(name), "{name} appears twice");
            }
        }
        for (name, _) in UNSUPPORTED {
            assert!(
                !seen.contains(name),
                "{name} is both supported and unsupported"
            );
        }
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions() {
        assert_eq!(edit_distance("linger.ms", "linger.ms"), 0);
        assert_eq!(edit_distance("lingr.ms", "linger.ms"), 1);
        assert_eq!(edit_distance("linger.mss", "linger.ms"), 1);
        assert_eq!(edit_distance("lunger.ms", "linger.ms"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_for_typical_typos() {
        assert_eq!(suggest("lingr.ms"), Some("linger.ms"));
        assert_eq!(suggest("LINGER_MS"), Some("linger.ms"));
        assert_eq!(suggest("linger"), Some("linger.ms"));
        assert_eq!(suggest("request.timeout"), Some("request.timeout.ms"));
        assert_eq!(suggest("bootstrap.server"), Some("bootstrap.servers"));
        assert_eq!(suggest("enable.idempotency"), Some("enable.idempotence"));
        assert_eq!(suggest("ack"), Some("acks"));
        assert_eq!(
            suggest("max.in.flight.request.per.connection"),
            Some("max.in.flight.requests.per.connection")
        );
    }

    #[test]
    fn secret_looking_keys_are_recognised_known_or_not() {
        for k in [
            "sasl.password",
            "sasl.pasword",
            "sasl.jaas.config",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.key",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.token",
            "my.private.thing",
            "basic.auth.user.info",
        ] {
            assert!(looks_secret(k), "{k}");
        }
        for k in [
            "linger.ms",
            "key.serializer",
            "sasl.username",
            "bootstrap.servers",
        ] {
            assert!(!looks_secret(k), "{k}");
        }
    }

    #[test]
    fn no_suggestion_for_unrelated_keys() {
        assert_eq!(suggest("abc"), None);
        assert_eq!(suggest("group.id"), None);
        assert_eq!(suggest("auto.offset.reset"), None);
        assert_eq!(suggest(""), None);
    }
}
