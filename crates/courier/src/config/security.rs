//! TLS and SASL settings: what `security.protocol` asks for, checked and loaded when the
//! configuration is built, so that a missing file, a wrong key password or a contradiction
//! is a configuration error naming the setting, before anything connects.
//!
//! Keys are librdkafka's (`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`,
//! `ssl.key.password`, `ssl.keystore.location`, `sasl.oauthbearer.*`) and the Java client's
//! (`ssl.truststore.*`, `ssl.keystore.*`, `ssl.enabled.protocols`, `ssl.protocol`); see the
//! table in the [module documentation](super).

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ConfigError;
use super::keys::Key;
use super::values::{self, SaslMechanism, Secret, SecurityProtocol};
use crate::net::sasl::{JaasConfig, JaasLogin};

/// A TLS version courier can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

/// Which certificate authorities the producer trusts for the brokers' certificates.
#[derive(Clone, PartialEq, Eq)]
pub enum TrustRoots {
    /// Neither a CA file nor a trust store was set: the operating system's trusted roots,
    /// or Mozilla's (bundled) when the system has none (a static binary in a scratch
    /// container).
    System,
    /// The certificates of a configured CA file, PEM text or trust store.
    Certificates {
        /// The CA certificates, DER.
        certs: Vec<CertificateDer<'static>>,
        /// Which setting they came from, for error messages (`ssl.ca.location=/etc/ca.pem`).
        from: String,
    },
}

impl fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustRoots::System => f.write_str("System"),
            TrustRoots::Certificates { certs, from } => f
                .debug_struct("Certificates")
                .field("count", &certs.len())
                .field("from", from)
                .finish(),
        }
    }
}

/// A private key: never shown by `Debug`.
#[derive(Clone)]
pub struct PrivateKey(Arc<PrivateKeyDer<'static>>);

impl PrivateKey {
    /// The key, for the TLS layer.
    pub(crate) fn der(&self) -> PrivateKeyDer<'static> {
        self.0.clone_key()
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.secret_der() == other.0.secret_der()
    }
}

impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The client certificate chain and key for mutual TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first, DER.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKey,
    /// Which settings they came from, for error messages.
    pub(crate) from: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .field("key", &self.key)
            .field("from", &self.from)
            .finish()
    }
}

impl ClientIdentity {
    /// The certificate chain, leaf first (DER).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Which settings the identity came from (`ssl.keystore.location=/etc/client.p12`).
    pub fn source(&self) -> &str {
        &self.from
    }
}

/// How connections are encrypted and the broker checked (`security.protocol=ssl` or
/// `sasl_ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub(crate) roots: TrustRoots,
    pub(crate) identity: Option<ClientIdentity>,
    pub(crate) verify_certificates: bool,
    pub(crate) verify_hostname: bool,
    pub(crate) versions: Vec<TlsVersion>,
}

impl TlsConfig {
    /// The trusted certificate authorities.
    pub fn roots(&self) -> &TrustRoots {
        &self.roots
    }

    /// The client certificate, if mutual TLS is configured.
    pub fn identity(&self) -> Option<&ClientIdentity> {
        self.identity.as_ref()
    }

    /// Whether the broker's certificate chain is verified
    /// (`enable.ssl.certificate.verification`, true unless set false).
    pub fn verify_certificates(&self) -> bool {
        self.verify_certificates
    }

    /// Whether the broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm=https`, the default).
    pub fn verify_hostname(&self) -> bool {
        self.verify_hostname
    }

    /// The TLS versions offered, oldest first.
    pub fn versions(&self) -> &[TlsVersion] {
        &self.versions
    }
}

/// A bearer token for SASL/OAUTHBEARER, with how long it is good for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The token (usually a JWT); never shown by `Debug`.
    pub value: Secret,
    /// When it expires, if known; courier fetches a new one before then. `None` for a token
    /// whose lifetime nobody knows: it is used until the broker refuses it.
    pub expires_at: Option<SystemTime>,
}

/// The future an [`OAuthTokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<OAuthToken, String>> + Send + 'a>>;

/// Where SASL/OAUTHBEARER tokens come from when the application supplies them (an identity
/// provider courier has no built-in client for, a cloud metadata service, a secrets
/// manager). Called before each authentication that needs a token courier does not
/// already hold, fresh enough; an error is reported as the reason the connection failed.
pub trait OAuthTokenProvider: Send + Sync + 'static {
    /// A current token.
    fn token(&self) -> TokenFuture<'_>;
}

/// An application's token provider inside a configuration: compared by identity, shown by
/// `Debug` without contents.
#[derive(Clone)]
pub struct TokenProviderHandle(pub(crate) Arc<dyn OAuthTokenProvider>);

impl PartialEq for TokenProviderHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TokenProviderHandle {}

impl fmt::Debug for TokenProviderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProviderHandle(<application callback>)")
    }
}

/// The OIDC client-credentials grant (`sasl.oauthbearer.method=oidc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `sasl.oauthbearer.token.endpoint.url`.
    pub(crate) token_endpoint: String,
    /// `sasl.oauthbearer.client.id`.
    pub(crate) client_id: String,
    /// `sasl.oauthbearer.client.secret`.
    pub(crate) client_secret: Secret,
    /// `sasl.oauthbearer.scope`.
    pub(crate) scope: Option<String>,
}

impl OidcConfig {
    /// The token endpoint.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The scope asked for, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

/// Where OAUTHBEARER tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `sasl.oauthbearer.token`: one token, used as given.
    Static(Secret),
    /// `sasl.oauthbearer.method=oidc`: fetched from the token endpoint and refreshed.
    Oidc(OidcConfig),
    /// An [`OAuthTokenProvider`] given to the builder.
    Provider(TokenProviderHandle),
}

/// What a SASL mechanism authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslCredentials {
    /// PLAIN and SCRAM: a user name and password.
    Password {
        /// `sasl.username`.
        username: String,
        /// `sasl.password`.
        password: Secret,
        /// SCRAM with a delegation token (KIP-48): `tokenauth=true` in `sasl.jaas.config`.
        token_auth: bool,
    },
    /// OAUTHBEARER: a token source and the SASL extensions sent with every token
    /// (`sasl.oauthbearer.extensions`, KIP-342).
    OAuthBearer {
        /// Where tokens come from.
        source: TokenSource,
        /// `key=value` extensions.
        extensions: Vec<(String, String)>,
    },
}

/// SASL authentication (`security.protocol=sasl_plaintext` or `sasl_ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    pub(crate) mechanism: SaslMechanism,
    pub(crate) credentials: SaslCredentials,
}

impl SaslConfig {
    /// The mechanism.
    pub const fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    /// The credentials.
    pub fn credentials(&self) -> &SaslCredentials {
        &self.credentials
    }

    /// The user name, for PLAIN and SCRAM.
    pub fn username(&self) -> Option<&str> {
        match &self.credentials {
            SaslCredentials::Password { username, .. } => Some(username),
            SaslCredentials::OAuthBearer { .. } => None,
        }
    }

    /// The password, for PLAIN and SCRAM; `Debug` shows it as `<redacted>`.
    pub fn password(&self) -> Option<&Secret> {
        match &self.credentials {
            SaslCredentials::Password { password, .. } => Some(password),
            SaslCredentials::OAuthBearer { .. } => None,
        }
    }
}

/// The TLS and SASL settings as given, before [`resolve`] checks and loads them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecuritySettings {
    pub(crate) protocol: Option<SecurityProtocol>,
    pub(crate) mechanism: Option<SaslMechanism>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    ca_location: Option<String>,
    ca_pem: Option<String>,
    certificate_location: Option<String>,
    certificate_pem: Option<String>,
    key_location: Option<String>,
    key_pem: Option<Secret>,
    key_password: Option<Secret>,
    keystore_location: Option<String>,
    keystore_type: Option<StoreType>,
    keystore_password: Option<Secret>,
    keystore_key: Option<Secret>,
    keystore_certificate_chain: Option<String>,
    truststore_location: Option<String>,
    truststore_type: Option<StoreType>,
    truststore_password: Option<Secret>,
    truststore_certificates: Option<String>,
    endpoint_identification: Option<bool>,
    certificate_verification: Option<bool>,
    enabled_protocols: Option<Vec<TlsVersion>>,
    max_protocol: Option<TlsVersion>,
    oauth_method: Option<OAuthMethod>,
    oauth_endpoint: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<Secret>,
    oauth_scope: Option<String>,
    oauth_extensions: Option<Vec<(String, String)>>,
    oauth_token: Option<Secret>,
    jaas: Option<JaasLogin>,
    token_auth: bool,
    pub(crate) token_provider: Option<TokenProviderHandle>,
}

/// The format of a key store or trust store file (`ssl.keystore.type`,
/// `ssl.truststore.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreType {
    Pem,
    Pkcs12,
    Jks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OAuthMethod {
    Default,
    Oidc,
}

const STORE_TYPES: &[(&str, StoreType)] = &[
    ("PEM", StoreType::Pem),
    ("PKCS12", StoreType::Pkcs12),
    ("JKS", StoreType::Jks),
];

const OAUTH_METHODS: &[(&str, OAuthMethod)] = &[
    ("default", OAuthMethod::Default),
    ("oidc", OAuthMethod::Oidc),
];

/// `keytool` command that turns a JKS store into PKCS#12, for the error that refuses JKS.
const JKS_HINT: &str = "courier reads PEM and PKCS#12 stores, not JKS: convert it with \
     `keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 -deststoretype \
     PKCS12`, then point the setting at store.p12";

fn invalid(key: Key, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.name(),
        message: message.into(),
    }
}

impl SecuritySettings {
    /// Takes one property of a security key; `invalid` builds the error for a value that
    /// does not parse (it hides secret values).
    pub(crate) fn apply(
        &mut self,
        key: Key,
        value: &str,
        invalid_value: impl Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let text = || value.trim().to_string();
        let path = || -> Result<String, ConfigError> {
            let v = value.trim();
            if v.is_empty() {
                return Err(invalid_value("a file path".into()));
            }
            Ok(v.to_string())
        };
        let store = || {
            values::parse_choice(value, STORE_TYPES)
                .ok_or_else(|| invalid_value(values::one_of(STORE_TYPES)))
        };
        match key {
            Key::SslCaLocation => self.ca_location = Some(path()?),
            Key::SslCaPem => self.ca_pem = Some(value.to_string()),
            Key::SslCertificateLocation => self.certificate_location = Some(path()?),
            Key::SslCertificatePem => self.certificate_pem = Some(value.to_string()),
            Key::SslKeyLocation => self.key_location = Some(path()?),
            Key::SslKeyPem => self.key_pem = Some(Secret::new(value)),
            Key::SslKeyPassword => self.key_password = Some(Secret::new(value)),
            Key::SslKeystoreLocation => self.keystore_location = Some(path()?),
            Key::SslKeystoreType => self.keystore_type = Some(store()?),
            Key::SslKeystorePassword => self.keystore_password = Some(Secret::new(value)),
            Key::SslKeystoreKeyPem => self.keystore_key = Some(Secret::new(value)),
            Key::SslKeystoreCertificateChain => {
                self.keystore_certificate_chain = Some(value.to_string())
            }
            Key::SslTruststoreLocation => self.truststore_location = Some(path()?),
            Key::SslTruststoreType => self.truststore_type = Some(store()?),
            Key::SslTruststorePassword => self.truststore_password = Some(Secret::new(value)),
            Key::SslTruststoreCertificates => {
                self.truststore_certificates = Some(value.to_string())
            }
            Key::SslEndpointIdentificationAlgorithm => {
                // Java's "" and librdkafka's "none" both turn the check off.
                self.endpoint_identification =
                    Some(match value.trim().to_ascii_lowercase().as_str() {
                        "https" => true,
                        "" | "none" => false,
                        _ => {
                            return Err(invalid_value(
                                "https (check the broker's host name, the default) or none".into(),
                            ))
                        }
                    })
            }
            Key::EnableSslCertificateVerification => {
                self.certificate_verification = Some(
                    values::parse_bool(value)
                        .ok_or_else(|| invalid_value("true or false".into()))?,
                )
            }
            Key::SslEnabledProtocols => {
                let mut versions = Vec::new();
                for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    versions.push(parse_tls_version(p).ok_or_else(|| {
                        invalid_value(
                            "a comma-separated list of TLSv1.2 and TLSv1.3 (older versions are \
                             not offered: they are broken)"
                                .into(),
                        )
                    })?);
                }
                if versions.is_empty() {
                    return Err(invalid_value("at least one of TLSv1.2, TLSv1.3".into()));
                }
                versions.sort();
                versions.dedup();
                self.enabled_protocols = Some(versions);
            }
            Key::SslProtocol => {
                // Java: the protocol of the SSLContext, i.e. the highest version offered
                // ("TLS" for the newest the runtime has).
                let v = value.trim();
                self.max_protocol = Some(if v.eq_ignore_ascii_case("TLS") {
                    TlsVersion::Tls13
                } else {
                    parse_tls_version(v)
                        .ok_or_else(|| invalid_value("TLSv1.2, TLSv1.3 or TLS".into()))?
                });
            }
            Key::SaslOauthbearerMethod => {
                self.oauth_method = Some(
                    values::parse_choice(value, OAUTH_METHODS)
                        .ok_or_else(|| invalid_value(values::one_of(OAUTH_METHODS)))?,
                )
            }
            Key::SaslOauthbearerTokenEndpointUrl => self.oauth_endpoint = Some(text()),
            Key::SaslOauthbearerClientId => self.oauth_client_id = Some(text()),
            Key::SaslOauthbearerClientSecret => self.oauth_client_secret = Some(Secret::new(value)),
            Key::SaslOauthbearerScope => self.oauth_scope = Some(text()),
            Key::SaslOauthbearerExtensions => {
                self.oauth_extensions = Some(parse_extensions(value).map_err(|why| {
                    invalid_value(format!("key=value pairs separated by commas ({why})"))
                })?)
            }
            Key::SaslOauthbearerToken => self.oauth_token = Some(Secret::new(value.trim())),
            Key::SaslJaasConfig => {
                let parsed = JaasConfig::parse(value).map_err(|e| {
                    invalid_value(format!(
                        "a JAAS login line, e.g. \
                         org.apache.kafka.common.security.scram.ScramLoginModule required \
                         username=\"alice\" password=\"...\"; ({e})"
                    ))
                })?;
                for ignored in parsed.ignored_options() {
                    tracing::warn!(option = %ignored, "sasl.jaas.config: option ignored by courier");
                }
                self.jaas = Some(parsed.into_login());
            }
            _ => unreachable!("{key:?} is not a security key"),
        }
        Ok(())
    }

    fn tls_keys_set(&self) -> Vec<Key> {
        let set = [
            (self.ca_location.is_some(), Key::SslCaLocation),
            (self.ca_pem.is_some(), Key::SslCaPem),
            (
                self.certificate_location.is_some(),
                Key::SslCertificateLocation,
            ),
            (self.certificate_pem.is_some(), Key::SslCertificatePem),
            (self.key_location.is_some(), Key::SslKeyLocation),
            (self.key_pem.is_some(), Key::SslKeyPem),
            (self.key_password.is_some(), Key::SslKeyPassword),
            (self.keystore_location.is_some(), Key::SslKeystoreLocation),
            (self.keystore_type.is_some(), Key::SslKeystoreType),
            (self.keystore_password.is_some(), Key::SslKeystorePassword),
            (self.keystore_key.is_some(), Key::SslKeystoreKeyPem),
            (
                self.keystore_certificate_chain.is_some(),
                Key::SslKeystoreCertificateChain,
            ),
            (
                self.truststore_location.is_some(),
                Key::SslTruststoreLocation,
            ),
            (self.truststore_type.is_some(), Key::SslTruststoreType),
            (
                self.truststore_password.is_some(),
                Key::SslTruststorePassword,
            ),
            (
                self.truststore_certificates.is_some(),
                Key::SslTruststoreCertificates,
            ),
            (
                self.endpoint_identification.is_some(),
                Key::SslEndpointIdentificationAlgorithm,
            ),
            (
                self.certificate_verification.is_some(),
                Key::EnableSslCertificateVerification,
            ),
            (self.enabled_protocols.is_some(), Key::SslEnabledProtocols),
            (self.max_protocol.is_some(), Key::SslProtocol),
        ];
        set.into_iter()
            .filter(|(s, _)| *s)
            .map(|(_, k)| k)
            .collect()
    }

    fn sasl_keys_set(&self) -> Vec<Key> {
        let set = [
            (self.mechanism.is_some(), Key::SaslMechanism),
            (self.username.is_some(), Key::SaslUsername),
            (self.password.is_some(), Key::SaslPassword),
            (self.oauth_method.is_some(), Key::SaslOauthbearerMethod),
            (
                self.oauth_endpoint.is_some(),
                Key::SaslOauthbearerTokenEndpointUrl,
            ),
            (self.oauth_client_id.is_some(), Key::SaslOauthbearerClientId),
            (
                self.oauth_client_secret.is_some(),
                Key::SaslOauthbearerClientSecret,
            ),
            (self.oauth_scope.is_some(), Key::SaslOauthbearerScope),
            (
                self.oauth_extensions.is_some(),
                Key::SaslOauthbearerExtensions,
            ),
            (self.oauth_token.is_some(), Key::SaslOauthbearerToken),
            (self.jaas.is_some(), Key::SaslJaasConfig),
        ];
        set.into_iter()
            .filter(|(s, _)| *s)
            .map(|(_, k)| k)
            .collect()
    }
}

fn parse_tls_version(s: &str) -> Option<TlsVersion> {
    match s.trim() {
        v if v.eq_ignore_ascii_case("TLSv1.2") => Some(TlsVersion::Tls12),
        v if v.eq_ignore_ascii_case("TLSv1.3") => Some(TlsVersion::Tls13),
        _ => None,
    }
}

/// `key=value,key2=value2` (librdkafka's `sasl.oauthbearer.extensions`), checked against
/// KIP-342's rules: keys of letters only (`auth` is reserved), values of printable ASCII.
fn parse_extensions(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| "an entry without '='".to_string())?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("extension key '{k}' must be letters only"));
        }
        if k == "auth" {
            return Err("the extension key 'auth' is reserved for the token".into());
        }
        if v.is_empty() || !v.bytes().all(|b| (0x21..=0x7e).contains(&b) || b == b' ') {
            return Err(format!(
                "the value of extension '{k}' must be printable ASCII"
            ));
        }
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(format!("extension '{k}' is given twice"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Checks the TLS and SASL settings against `security.protocol` and each other, and loads
/// every certificate and key they name.
pub(crate) fn resolve(
    s: SecuritySettings,
) -> Result<(SecurityProtocol, Option<TlsConfig>, Option<SaslConfig>), ConfigError> {
    let protocol = s.protocol.unwrap_or_default();
    let uses_tls = matches!(protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl);
    if !uses_tls {
        if let Some(key) = s.tls_keys_set().first() {
            return Err(invalid(
                Key::SecurityProtocol,
                format!(
                    "{} is set but security.protocol={protocol} does not use TLS: set \
                     security.protocol=ssl (or sasl_ssl), or remove the TLS settings",
                    key.name()
                ),
            ));
        }
    }
    if !protocol.uses_sasl() {
        if let Some(key) = s.sasl_keys_set().first() {
            return Err(invalid(
                Key::SecurityProtocol,
                format!(
                    "{} is set but security.protocol={protocol} does not authenticate: set \
                     security.protocol=sasl_ssl (or sasl_plaintext), or remove the SASL \
                     settings",
                    key.name()
                ),
            ));
        }
        if s.token_provider.is_some() {
            return Err(invalid(
                Key::SecurityProtocol,
                format!(
                    "an OAUTHBEARER token provider is set but security.protocol={protocol} \
                     does not authenticate: set security.protocol=sasl_ssl"
                ),
            ));
        }
    }
    let sasl = if protocol.uses_sasl() {
        Some(resolve_sasl(&s)?)
    } else {
        None
    };
    let tls = if uses_tls {
        Some(resolve_tls(&s)?)
    } else {
        None
    };
    Ok((protocol, tls, sasl))
}

/// Moves what `sasl.jaas.config` says into the settings it stands for, refusing it where
/// another setting says the same thing (which of the two would win is not obvious).
fn apply_jaas(s: &mut SecuritySettings) -> Result<(), ConfigError> {
    let Some(login) = s.jaas.take() else {
        return Ok(());
    };
    let both = |other: Key| {
        invalid(
            Key::SaslJaasConfig,
            format!(
                "sasl.jaas.config and {} both give the credentials: keep one",
                other.name()
            ),
        )
    };
    let password_login = matches!(login, JaasLogin::Plain { .. } | JaasLogin::Scram { .. });
    if password_login && s.username.is_some() {
        return Err(both(Key::SaslUsername));
    }
    if password_login && s.password.is_some() {
        return Err(both(Key::SaslPassword));
    }
    match login {
        JaasLogin::Plain { username, password } => {
            match s.mechanism {
                None | Some(SaslMechanism::Plain) => s.mechanism = Some(SaslMechanism::Plain),
                Some(m) => {
                    return Err(invalid(
                        Key::SaslJaasConfig,
                        format!("PlainLoginModule is for sasl.mechanism=PLAIN, not {m}"),
                    ))
                }
            }
            s.username = Some(username);
            s.password = Some(password);
        }
        JaasLogin::Scram {
            username,
            password,
            token_auth,
        } => {
            match s.mechanism {
                Some(SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512) => {}
                None => {
                    return Err(ConfigError::Missing {
                        key: Key::SaslMechanism.name(),
                        hint: "ScramLoginModule needs sasl.mechanism=SCRAM-SHA-256 or \
                               SCRAM-SHA-512 (the login line does not say which)",
                    })
                }
                Some(m) => {
                    return Err(invalid(
                        Key::SaslJaasConfig,
                        format!("ScramLoginModule is for SCRAM-SHA-256 or -512, not {m}"),
                    ))
                }
            }
            s.username = Some(username);
            s.password = Some(password);
            s.token_auth = token_auth;
        }
        JaasLogin::OAuthBearer(login) => {
            match s.mechanism {
                None | Some(SaslMechanism::OAuthBearer) => {
                    s.mechanism = Some(SaslMechanism::OAuthBearer)
                }
                Some(m) => {
                    return Err(invalid(
                        Key::SaslJaasConfig,
                        format!("OAuthBearerLoginModule is for OAUTHBEARER, not {m}"),
                    ))
                }
            }
            if let Some(id) = login.client_id {
                if s.oauth_client_id.is_some() {
                    return Err(both(Key::SaslOauthbearerClientId));
                }
                s.oauth_client_id = Some(id);
            }
            if let Some(secret) = login.client_secret {
                if s.oauth_client_secret.is_some() {
                    return Err(both(Key::SaslOauthbearerClientSecret));
                }
                s.oauth_client_secret = Some(secret);
            }
            if let Some(scope) = login.scope {
                if s.oauth_scope.is_some() {
                    return Err(both(Key::SaslOauthbearerScope));
                }
                s.oauth_scope = Some(scope);
            }
            if !login.extensions.is_empty() {
                if s.oauth_extensions.is_some() {
                    return Err(both(Key::SaslOauthbearerExtensions));
                }
                s.oauth_extensions = Some(
                    login
                        .extensions
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
            }
            // Java's OIDC is this module plus the token endpoint: that is method=oidc.
            if s.oauth_method.is_none() && s.oauth_endpoint.is_some() {
                s.oauth_method = Some(OAuthMethod::Oidc);
            }
        }
    }
    Ok(())
}

fn resolve_sasl(s: &SecuritySettings) -> Result<SaslConfig, ConfigError> {
    let mut s = s.clone();
    apply_jaas(&mut s)?;
    let s = &s;
    let mechanism = match (s.mechanism, &s.token_provider) {
        (Some(m), _) => m,
        // A token provider says which mechanism it is for.
        (None, Some(_)) => SaslMechanism::OAuthBearer,
        (None, None) => {
            return Err(ConfigError::Missing {
                key: Key::SaslMechanism.name(),
                hint: "security.protocol uses SASL: set sasl.mechanism to PLAIN, \
                       SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
            })
        }
    };
    let oauth_keys = [
        (s.oauth_method.is_some(), Key::SaslOauthbearerMethod),
        (
            s.oauth_endpoint.is_some(),
            Key::SaslOauthbearerTokenEndpointUrl,
        ),
        (s.oauth_client_id.is_some(), Key::SaslOauthbearerClientId),
        (
            s.oauth_client_secret.is_some(),
            Key::SaslOauthbearerClientSecret,
        ),
        (s.oauth_scope.is_some(), Key::SaslOauthbearerScope),
        (s.oauth_extensions.is_some(), Key::SaslOauthbearerExtensions),
        (s.oauth_token.is_some(), Key::SaslOauthbearerToken),
    ];
    if mechanism != SaslMechanism::OAuthBearer {
        if let Some((_, key)) = oauth_keys.iter().find(|(set, _)| *set) {
            return Err(invalid(
                *key,
                format!(
                    "{} is an OAUTHBEARER setting, but sasl.mechanism={mechanism}: set \
                     sasl.mechanism=OAUTHBEARER or remove it",
                    key.name()
                ),
            ));
        }
        if s.token_provider.is_some() {
            return Err(invalid(
                Key::SaslMechanism,
                format!("a token provider is set, which needs sasl.mechanism=OAUTHBEARER, not {mechanism}"),
            ));
        }
        let missing = |key: Key| ConfigError::Missing {
            key: key.name(),
            hint: "PLAIN and SCRAM need sasl.username and sasl.password",
        };
        let username = s
            .username
            .clone()
            .ok_or_else(|| missing(Key::SaslUsername))?;
        let password = s
            .password
            .clone()
            .ok_or_else(|| missing(Key::SaslPassword))?;
        if username.is_empty() {
            return Err(invalid(Key::SaslUsername, "must not be empty"));
        }
        if password.expose().is_empty() {
            return Err(invalid(Key::SaslPassword, "must not be empty"));
        }
        return Ok(SaslConfig {
            mechanism,
            credentials: SaslCredentials::Password {
                username,
                password,
                token_auth: s.token_auth,
            },
        });
    }
    for (set, key) in [
        (s.username.is_some(), Key::SaslUsername),
        (s.password.is_some(), Key::SaslPassword),
    ] {
        if set {
            return Err(invalid(
                key,
                format!(
                    "{} is not used by OAUTHBEARER: remove it (OIDC takes \
                     sasl.oauthbearer.client.id and sasl.oauthbearer.client.secret)",
                    key.name()
                ),
            ));
        }
    }
    let extensions = s.oauth_extensions.clone().unwrap_or_default();
    let oidc_keys_set = oauth_keys[1..5]
        .iter()
        .find(|(set, _)| *set)
        .map(|(_, k)| *k);
    let source = match (&s.token_provider, &s.oauth_token, s.oauth_method) {
        (Some(_), Some(_), _) => {
            return Err(invalid(
                Key::SaslOauthbearerToken,
                "both a token provider and sasl.oauthbearer.token are set: use one",
            ))
        }
        (Some(p), None, _) => {
            if let Some(key) = oidc_keys_set.or(s.oauth_method.map(|_| Key::SaslOauthbearerMethod))
            {
                return Err(invalid(
                    key,
                    format!(
                        "{} has no effect with a token provider: remove it",
                        key.name()
                    ),
                ));
            }
            TokenSource::Provider(p.clone())
        }
        (None, Some(token), m) => {
            if let Some(key) = oidc_keys_set {
                return Err(invalid(
                    key,
                    format!(
                        "{} is an OIDC setting, but sasl.oauthbearer.token gives a fixed token: \
                         use one or the other",
                        key.name()
                    ),
                ));
            }
            if m == Some(OAuthMethod::Oidc) {
                return Err(invalid(
                    Key::SaslOauthbearerMethod,
                    "sasl.oauthbearer.method=oidc fetches tokens, but sasl.oauthbearer.token \
                     gives one: use one or the other",
                ));
            }
            if token.expose().is_empty() {
                return Err(invalid(Key::SaslOauthbearerToken, "must not be empty"));
            }
            TokenSource::Static(token.clone())
        }
        (None, None, Some(OAuthMethod::Oidc)) => {
            let missing = |key: Key| ConfigError::Missing {
                key: key.name(),
                hint: "sasl.oauthbearer.method=oidc needs sasl.oauthbearer.token.endpoint.url, \
                       sasl.oauthbearer.client.id and sasl.oauthbearer.client.secret",
            };
            let endpoint = s
                .oauth_endpoint
                .clone()
                .ok_or_else(|| missing(Key::SaslOauthbearerTokenEndpointUrl))?;
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(invalid(
                    Key::SaslOauthbearerTokenEndpointUrl,
                    "must be an https:// (or http://) URL of the identity provider's token \
                     endpoint",
                ));
            }
            let client_id = s
                .oauth_client_id
                .clone()
                .ok_or_else(|| missing(Key::SaslOauthbearerClientId))?;
            let client_secret = s
                .oauth_client_secret
                .clone()
                .ok_or_else(|| missing(Key::SaslOauthbearerClientSecret))?;
            TokenSource::Oidc(OidcConfig {
                token_endpoint: endpoint,
                client_id,
                client_secret,
                scope: s.oauth_scope.clone().filter(|v| !v.is_empty()),
            })
        }
        (None, None, m) => {
            let hint = if let Some(key) = oidc_keys_set {
                format!(
                    "{} is set but sasl.oauthbearer.method is not oidc: set \
                     sasl.oauthbearer.method=oidc to fetch tokens from the token endpoint",
                    key.name()
                )
            } else if m == Some(OAuthMethod::Default) {
                "sasl.oauthbearer.method=default needs a token: set sasl.oauthbearer.token, or \
                 use sasl.oauthbearer.method=oidc (client credentials), or give the producer a \
                 token provider (librdkafka's unsecured test tokens are not supported)"
                    .to_string()
            } else {
                "OAUTHBEARER needs a token: set sasl.oauthbearer.method=oidc with \
                 sasl.oauthbearer.token.endpoint.url, sasl.oauthbearer.client.id and \
                 sasl.oauthbearer.client.secret, or sasl.oauthbearer.token, or give the \
                 producer a token provider"
                    .to_string()
            };
            return Err(invalid(Key::SaslOauthbearerMethod, hint));
        }
    };
    Ok(SaslConfig {
        mechanism,
        credentials: SaslCredentials::OAuthBearer { source, extensions },
    })
}

fn resolve_tls(s: &SecuritySettings) -> Result<TlsConfig, ConfigError> {
    let roots = resolve_trust(s)?;
    let identity = resolve_identity(s)?;
    let verify_hostname = s.endpoint_identification.unwrap_or(true);
    let verify_certificates = s.certificate_verification.unwrap_or(true);
    let mut versions = s
        .enabled_protocols
        .clone()
        .unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    if let Some(max) = s.max_protocol {
        versions.retain(|v| *v <= max);
        if versions.is_empty() {
            return Err(invalid(
                Key::SslProtocol,
                format!(
                    "ssl.protocol={max} leaves none of ssl.enabled.protocols: lower \
                     ssl.protocol or add {max} to ssl.enabled.protocols"
                ),
            ));
        }
    }
    if !verify_certificates {
        tracing::warn!(
            "enable.ssl.certificate.verification=false: the brokers' certificates are not \
             checked, so anyone between the producer and the cluster can read and change \
             everything it sends; use it only for a test cluster"
        );
    } else if !verify_hostname {
        tracing::warn!(
            "ssl.endpoint.identification.algorithm=none: a broker certificate for any host \
             name signed by a trusted CA is accepted, which lets a stolen certificate of \
             another host impersonate the brokers; prefer certificates that name the brokers"
        );
    }
    let tls = TlsConfig {
        roots,
        identity,
        verify_certificates,
        verify_hostname,
        versions,
    };
    // What only the TLS library can tell (a key that does not match its certificate, a CA
    // it cannot use) is found now, not at the first connection.
    if let Err(e) = crate::net::TlsConnector::new(&tls) {
        let key = if tls.identity.is_some() {
            Key::SslCertificateLocation
        } else {
            Key::SslCaLocation
        };
        return Err(invalid(key, e.to_string()));
    }
    Ok(tls)
}

/// At most one of the ways to give the trusted CAs.
fn resolve_trust(s: &SecuritySettings) -> Result<TrustRoots, ConfigError> {
    let given: Vec<Key> = [
        (s.ca_location.is_some(), Key::SslCaLocation),
        (s.ca_pem.is_some(), Key::SslCaPem),
        (s.truststore_location.is_some(), Key::SslTruststoreLocation),
        (
            s.truststore_certificates.is_some(),
            Key::SslTruststoreCertificates,
        ),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, k)| k)
    .collect();
    if given.len() > 1 {
        return Err(invalid(
            given[1],
            format!(
                "{} and {} both name the trusted CAs: keep one",
                given[0].name(),
                given[1].name()
            ),
        ));
    }
    let store_type = s.truststore_type;
    if store_type.is_some()
        && s.truststore_location.is_none()
        && s.truststore_certificates.is_none()
    {
        return Err(invalid(
            Key::SslTruststoreType,
            "set without ssl.truststore.location: remove it, or name the trust store",
        ));
    }
    let certs = |certs: Vec<CertificateDer<'static>>, key: Key, shown: &str| {
        if certs.is_empty() {
            Err(invalid(key, format!("{shown} holds no certificate")))
        } else {
            Ok(TrustRoots::Certificates {
                certs,
                from: format!("{}={shown}", key.name()),
            })
        }
    };
    match given.first() {
        None => {
            if s.truststore_password.is_some() {
                return Err(invalid(
                    Key::SslTruststorePassword,
                    "set without ssl.truststore.location: remove it, or name the trust store",
                ));
            }
            Ok(TrustRoots::System)
        }
        Some(Key::SslCaLocation) => {
            let path = s.ca_location.as_deref().expect("given");
            certs(read_ca_location(path)?, Key::SslCaLocation, path)
        }
        Some(Key::SslCaPem) => {
            let pem = s.ca_pem.as_deref().expect("given");
            certs(
                pem_certificates(pem.as_bytes(), Key::SslCaPem, "the PEM text")?,
                Key::SslCaPem,
                "the PEM text",
            )
        }
        Some(Key::SslTruststoreCertificates) => {
            if !matches!(store_type, None | Some(StoreType::Pem)) {
                return Err(invalid(
                    Key::SslTruststoreType,
                    "ssl.truststore.certificates is PEM text: set ssl.truststore.type=PEM or \
                     remove it",
                ));
            }
            let pem = s.truststore_certificates.as_deref().expect("given");
            certs(
                pem_certificates(
                    pem.as_bytes(),
                    Key::SslTruststoreCertificates,
                    "the PEM text",
                )?,
                Key::SslTruststoreCertificates,
                "the PEM text",
            )
        }
        Some(_) => {
            let path = s.truststore_location.as_deref().expect("given");
            let data = read_file(Key::SslTruststoreLocation, path)?;
            let found = match (store_type, sniff(&data)) {
                (Some(StoreType::Jks), _) | (None, Sniffed::Jks) => {
                    return Err(invalid(
                        Key::SslTruststoreLocation,
                        format!("{path}: {JKS_HINT}"),
                    ))
                }
                (Some(StoreType::Pem), _) | (None, Sniffed::Pem) => {
                    pem_certificates(&data, Key::SslTruststoreLocation, path)?
                }
                (Some(StoreType::Pkcs12), _) | (None, Sniffed::Der) => {
                    let password = s.truststore_password.as_ref().map_or("", |p| p.expose());
                    let store = open_pkcs12(&data, password, Key::SslTruststoreLocation, path)?;
                    let mut certs = Vec::new();
                    for (_, entry) in store.entries() {
                        match entry {
                            p12_keystore::KeyStoreEntry::Certificate(c) => {
                                certs.push(CertificateDer::from(c.as_der().to_vec()))
                            }
                            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => certs.extend(
                                chain
                                    .chain()
                                    .iter()
                                    .map(|c| CertificateDer::from(c.as_der().to_vec())),
                            ),
                            _ => {}
                        }
                    }
                    certs
                }
            };
            certs(found, Key::SslTruststoreLocation, path)
        }
    }
}

/// At most one of: a PEM certificate and key (files or text), a key store (PKCS#12 or PEM
/// file), or Java's PEM key store strings.
fn resolve_identity(s: &SecuritySettings) -> Result<Option<ClientIdentity>, ConfigError> {
    let cert = [
        (
            s.certificate_location.is_some(),
            Key::SslCertificateLocation,
        ),
        (s.certificate_pem.is_some(), Key::SslCertificatePem),
    ];
    let key = [
        (s.key_location.is_some(), Key::SslKeyLocation),
        (s.key_pem.is_some(), Key::SslKeyPem),
    ];
    let store = [
        (s.keystore_location.is_some(), Key::SslKeystoreLocation),
        (s.keystore_key.is_some(), Key::SslKeystoreKeyPem),
        (
            s.keystore_certificate_chain.is_some(),
            Key::SslKeystoreCertificateChain,
        ),
    ];
    let first = |group: &[(bool, Key)]| group.iter().find(|(set, _)| *set).map(|(_, k)| *k);
    let both = |group: &[(bool, Key)]| group.iter().filter(|(set, _)| *set).count() > 1;
    for group in [&cert[..], &key[..]] {
        if both(group) {
            return Err(invalid(
                group[1].1,
                format!(
                    "{} and {} both give it: keep one",
                    group[0].1.name(),
                    group[1].1.name()
                ),
            ));
        }
    }
    let pem_pair = first(&cert).or(first(&key));
    if let (Some(a), Some(b)) = (pem_pair, first(&store)) {
        return Err(invalid(
            b,
            format!(
                "{} and {} both give the client certificate: use a PEM certificate and key, or \
                 a key store, not both",
                a.name(),
                b.name()
            ),
        ));
    }
    let key_password = s.key_password.as_ref();
    if let Some(k) = pem_pair {
        let (chain, chain_from) = match (&s.certificate_location, &s.certificate_pem) {
            (Some(path), _) => {
                let data = read_file(Key::SslCertificateLocation, path)?;
                (
                    pem_certificates(&data, Key::SslCertificateLocation, path)?,
                    format!("ssl.certificate.location={path}"),
                )
            }
            (None, Some(pem)) => (
                pem_certificates(pem.as_bytes(), Key::SslCertificatePem, "the PEM text")?,
                "ssl.certificate.pem".to_string(),
            ),
            (None, None) => {
                return Err(invalid(
                    k,
                    "a client key without a certificate: set ssl.certificate.location (or \
                     ssl.certificate.pem) too",
                ))
            }
        };
        let key = match (&s.key_location, &s.key_pem) {
            (Some(path), _) => {
                let data = read_file(Key::SslKeyLocation, path)?;
                pem_private_key(&data, key_password, Key::SslKeyLocation, path)?
            }
            (None, Some(pem)) => pem_private_key(
                pem.expose().as_bytes(),
                key_password,
                Key::SslKeyPem,
                "the PEM text",
            )?,
            (None, None) => {
                return Err(invalid(
                    Key::SslCertificateLocation,
                    "a client certificate without its key: set ssl.key.location (or \
                     ssl.key.pem) too",
                ))
            }
        };
        if chain.is_empty() {
            return Err(invalid(Key::SslCertificateLocation, "holds no certificate"));
        }
        return Ok(Some(ClientIdentity {
            chain,
            key,
            from: chain_from,
        }));
    }
    if let Some(path) = &s.keystore_location {
        let data = read_file(Key::SslKeystoreLocation, path)?;
        let from = format!("ssl.keystore.location={path}");
        return match (s.keystore_type, sniff(&data)) {
            (Some(StoreType::Jks), _) | (None, Sniffed::Jks) => Err(invalid(
                Key::SslKeystoreLocation,
                format!("{path}: {JKS_HINT}"),
            )),
            (Some(StoreType::Pem), _) | (None, Sniffed::Pem) => {
                // One PEM file with the key and the chain (Java's PEM key store file).
                if s.keystore_password.is_some() {
                    return Err(invalid(
                        Key::SslKeystorePassword,
                        "a PEM key store has no store password: remove it (an encrypted \
                         key's password is ssl.key.password)",
                    ));
                }
                let chain = pem_certificates(&data, Key::SslKeystoreLocation, path)?;
                let key = pem_private_key(&data, key_password, Key::SslKeystoreLocation, path)?;
                if chain.is_empty() {
                    return Err(invalid(
                        Key::SslKeystoreLocation,
                        format!("{path} has a key but no certificate"),
                    ));
                }
                Ok(Some(ClientIdentity { chain, key, from }))
            }
            (Some(StoreType::Pkcs12), _) | (None, Sniffed::Der) => {
                let password = s.keystore_password.as_ref().ok_or(ConfigError::Missing {
                    key: Key::SslKeystorePassword.name(),
                    hint: "a PKCS#12 key store is opened with its password",
                })?;
                let store = open_pkcs12(&data, password.expose(), Key::SslKeystoreLocation, path)?;
                let Some((_, entry)) = store.private_key_chain() else {
                    return Err(invalid(
                        Key::SslKeystoreLocation,
                        format!("{path} holds no private key with a certificate chain"),
                    ));
                };
                let key = PrivateKeyDer::try_from(entry.key().to_vec()).map_err(|e| {
                    invalid(
                        Key::SslKeystoreLocation,
                        format!("{path}: its key is not usable: {e}"),
                    )
                })?;
                let chain: Vec<CertificateDer<'static>> = entry
                    .chain()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect();
                if chain.is_empty() {
                    return Err(invalid(
                        Key::SslKeystoreLocation,
                        format!("{path}: the key has no certificate"),
                    ));
                }
                Ok(Some(ClientIdentity {
                    chain,
                    key: PrivateKey(Arc::new(key)),
                    from,
                }))
            }
        };
    }
    match (&s.keystore_key, &s.keystore_certificate_chain) {
        (Some(key), Some(chain)) => {
            if !matches!(s.keystore_type, None | Some(StoreType::Pem)) {
                return Err(invalid(
                    Key::SslKeystoreType,
                    "ssl.keystore.key and ssl.keystore.certificate.chain are PEM text: set \
                     ssl.keystore.type=PEM",
                ));
            }
            let chain = pem_certificates(
                chain.as_bytes(),
                Key::SslKeystoreCertificateChain,
                "the PEM text",
            )?;
            let key = pem_private_key(
                key.expose().as_bytes(),
                key_password,
                Key::SslKeystoreKeyPem,
                "the PEM text",
            )?;
            Ok(Some(ClientIdentity {
                chain,
                key,
                from: "ssl.keystore.key".into(),
            }))
        }
        (Some(_), None) => Err(ConfigError::Missing {
            key: Key::SslKeystoreCertificateChain.name(),
            hint: "ssl.keystore.key needs the certificate chain it belongs to",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            key: Key::SslKeystoreKeyPem.name(),
            hint: "ssl.keystore.certificate.chain needs its private key",
        }),
        (None, None) => {
            for (set, key) in [
                (key_password.is_some(), Key::SslKeyPassword),
                (s.keystore_password.is_some(), Key::SslKeystorePassword),
                (s.keystore_type.is_some(), Key::SslKeystoreType),
            ] {
                if set {
                    return Err(invalid(
                        key,
                        format!(
                            "{} is set but no client key is: remove it, or set the client \
                             certificate and key",
                            key.name()
                        ),
                    ));
                }
            }
            Ok(None)
        }
    }
}

fn read_file(key: Key, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(key, format!("cannot read {path}: {e}")))
}

/// librdkafka's `ssl.ca.location` is a file, or a directory whose `.pem`/`.crt` files are
/// read.
fn read_ca_location(path: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let p = Path::new(path);
    if !p.is_dir() {
        let data = read_file(Key::SslCaLocation, path)?;
        return pem_certificates(&data, Key::SslCaLocation, path);
    }
    let entries = std::fs::read_dir(p)
        .map_err(|e| invalid(Key::SslCaLocation, format!("cannot read {path}: {e}")))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "pem" | "crt" | "cer"))
        })
        .collect();
    files.sort();
    let mut certs = Vec::new();
    for f in files {
        let shown = f.display().to_string();
        let data = read_file(Key::SslCaLocation, &shown)?;
        certs.extend(pem_certificates(&data, Key::SslCaLocation, &shown)?);
    }
    Ok(certs)
}

enum Sniffed {
    Pem,
    Der,
    Jks,
}

/// What a store file is, by its first bytes: a JKS magic number, DER (PKCS#12), or text.
fn sniff(data: &[u8]) -> Sniffed {
    if data.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) {
        Sniffed::Jks
    } else if data.first() == Some(&0x30) {
        Sniffed::Der
    } else {
        Sniffed::Pem
    }
}

fn open_pkcs12(
    data: &[u8],
    password: &str,
    key: Key,
    shown: &str,
) -> Result<p12_keystore::KeyStore, ConfigError> {
    p12_keystore::KeyStore::from_pkcs12(data, password).map_err(|e| {
        let why = e.to_string();
        // The crate reports a wrong password as a MAC mismatch.
        let hint = if why.to_ascii_lowercase().contains("mac") {
            "the password is wrong (or the file is damaged)".to_string()
        } else {
            format!("not a readable PKCS#12 store ({why})")
        };
        invalid(key, format!("{shown}: {hint}"))
    })
}

fn pem_certificates(
    data: &[u8],
    key: Key,
    shown: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("{shown}: not valid PEM ({e})")))
}

/// The private key of a PEM text: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), or an encrypted PKCS#8
/// key decrypted with `ssl.key.password`.
fn pem_private_key(
    data: &[u8],
    password: Option<&Secret>,
    key: Key,
    shown: &str,
) -> Result<PrivateKey, ConfigError> {
    let text = String::from_utf8_lossy(data);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(invalid(
            key,
            format!(
                "{shown}: the key is in OpenSSL's legacy encrypted format; convert it to \
                 encrypted PKCS#8 with `openssl pkcs8 -topk8 -in key.pem -out key.p8.pem` \
                 (or leave it unencrypted)"
            ),
        ));
    }
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        let Some(password) = password else {
            return Err(ConfigError::Missing {
                key: Key::SslKeyPassword.name(),
                hint: "the client key is encrypted: ssl.key.password decrypts it",
            });
        };
        let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| invalid(key, format!("{shown}: not valid PEM ({e})")))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| invalid(key, format!("{shown}: not an encrypted PKCS#8 key ({e})")))?;
        let plain = info.decrypt(password.expose()).map_err(|_| {
            invalid(
                Key::SslKeyPassword,
                format!("does not decrypt the client key in {shown}: the password is wrong"),
            )
        })?;
        let der = PrivateKeyDer::try_from(plain.as_bytes().to_vec()).map_err(|e| {
            invalid(
                key,
                format!("{shown}: the decrypted key is not usable: {e}"),
            )
        })?;
        return Ok(PrivateKey(Arc::new(der)));
    }
    let mut found = None;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
        let (kind, der) =
            item.map_err(|e| invalid(key, format!("{shown}: not valid PEM ({e})")))?;
        let k = match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
            _ => None,
        };
        if let Some(k) = k {
            if found.is_some() {
                return Err(invalid(
                    key,
                    format!("{shown} holds more than one private key"),
                ));
            }
            found = Some(k);
        }
    }
    if password.is_some() && found.is_some() {
        tracing::warn!(
            "ssl.key.password is set but the key in {shown} is not encrypted; the password \
             is not needed"
        );
    }
    found
        .map(|k| PrivateKey(Arc::new(k)))
        .ok_or_else(|| invalid(key, format!("{shown} holds no private key")))
}

/// The PEM block labelled `label`, armour included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_follow_kip_342() {
        assert_eq!(
            parse_extensions("logicalCluster=lkc-1, identityPoolId=pool-2").unwrap(),
            vec![
                ("logicalCluster".into(), "lkc-1".into()),
                ("identityPoolId".into(), "pool-2".into())
            ]
        );
        for bad in ["auth=x", "a1=b", "=b", "k", "k=", "k=v,k=w", "k=\u{7f}"] {
            assert!(parse_extensions(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn store_files_are_told_apart_by_their_first_bytes() {
        assert!(matches!(sniff(&[0xFE, 0xED, 0xFE, 0xED, 0]), Sniffed::Jks));
        assert!(matches!(sniff(&[0x30, 0x82]), Sniffed::Der));
        assert!(matches!(sniff(b"-----BEGIN"), Sniffed::Pem));
    }
}
