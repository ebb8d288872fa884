//! Secured listeners on the local backend: TLS, mTLS, SASL (PLAIN, SCRAM-SHA-256/512,
//! OAUTHBEARER) and listeners with bad certificates, beside the PLAINTEXT listener the
//! kit's own admin client, the brokers' replication and the independent reader keep
//! using.
//!
//! ```no_run
//! use courier_testkit::{ClientAuth, KafkaCluster, Listener, SaslMechanism, Security};
//!
//! let cluster = KafkaCluster::builder().security(Security::all()).start()?;
//! let sec = cluster.security()?;
//! let l = sec.listener(Listener::SaslSsl)?;
//! let alice = sec.user();
//! // What a client needs: l.bootstrap, "SASL_SSL", "SCRAM-SHA-512", alice.name,
//! // alice.password and sec.pki.ca.cert_path. Kafka's own client, configured by the kit:
//! let java = sec.java_client(Listener::SaslSsl, &ClientAuth::sasl(SaslMechanism::ScramSha512, alice))?;
//! cluster.console_produce_with(&java, "t", &[(None, "v")])?;
//! # Ok::<(), courier_testkit::KitError>(())
//! ```
//!
//! Users exist for every SASL mechanism at once: PLAIN users in the listeners' JAAS
//! config, SCRAM users created by `kafka-storage format --add-scram` (the formatted
//! storage is cached per machine and credential set, like the plain one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::oidc::{OidcOptions, OidcServer};
use crate::pki::{CertKey, Pki};
use crate::KitError;

/// A secured listener the kit can give each broker. Each is its own Kafka listener
/// (named [`Listener::name`]) on its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Listener {
    /// `SASL_SSL` with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and (with OAuth on)
    /// OAUTHBEARER; the broker certificate is [`Pki::broker`].
    SaslSsl,
    /// `SSL` with `ssl.client.auth=required`: mTLS with [`Pki::client`].
    Ssl,
    /// `SASL_PLAINTEXT` with PLAIN, SCRAM-SHA-256 and (with OAuth on) OAUTHBEARER.
    SaslPlaintext,
    /// `SSL` (no client auth) presenting [`Pki::expired`].
    ExpiredCert,
    /// `SSL` (no client auth) presenting [`Pki::wrong_host`] (SAN `wrong.example`).
    WrongHostCert,
    /// `SSL` (no client auth) presenting [`Pki::untrusted_broker`] (unknown CA).
    UntrustedCert,
}

impl Listener {
    /// Every secured listener.
    pub const ALL: [Listener; 6] = [
        Listener::SaslSsl,
        Listener::Ssl,
        Listener::SaslPlaintext,
        Listener::ExpiredCert,
        Listener::WrongHostCert,
        Listener::UntrustedCert,
    ];

    /// The Kafka listener name.
    pub fn name(self) -> &'static str {
        match self {
            Listener::SaslSsl => "SASL_SSL",
            Listener::Ssl => "SSL",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::ExpiredCert => "SSL_EXPIRED",
            Listener::WrongHostCert => "SSL_WRONG_HOST",
            Listener::UntrustedCert => "SSL_UNTRUSTED",
        }
    }

    /// The client's `security.protocol` for this listener.
    pub fn security_protocol(self) -> &'static str {
        match self {
            Listener::SaslSsl => "SASL_SSL",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            _ => "SSL",
        }
    }

    /// Whether the listener speaks TLS.
    pub fn is_tls(self) -> bool {
        self != Listener::SaslPlaintext
    }

    fn mechanisms(self, oauth: bool) -> Vec<SaslMechanism> {
        let mut m = match self {
            Listener::SaslSsl => vec![
                SaslMechanism::Plain,
                SaslMechanism::ScramSha256,
                SaslMechanism::ScramSha512,
            ],
            Listener::SaslPlaintext => vec![SaslMechanism::Plain, SaslMechanism::ScramSha256],
            _ => return Vec::new(),
        };
        if oauth {
            m.push(SaslMechanism::OAuthBearer);
        }
        m
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SaslMechanism {
    /// `PLAIN`.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`.
    OAuthBearer,
}

impl SaslMechanism {
    /// The client's `sasl.mechanism` value.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// A SASL user (PLAIN and both SCRAM mechanisms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// Which secured listeners a local cluster gets, for [`crate::ClusterBuilder::security`].
#[derive(Debug, Clone, Default)]
pub struct Security {
    listeners: BTreeSet<Listener>,
    users: Vec<User>,
    oauth: Option<OidcOptions>,
    reauth: BTreeMap<Listener, Duration>,
}

impl Security {
    /// No secured listener (what a cluster has without `security`).
    pub fn none() -> Self {
        Self::default()
    }

    /// Every [`Listener`], users `alice`/`alice-secret` and `bob`/`bob-secret`, and
    /// OAUTHBEARER validated against the kit's [`OidcServer`] with its default options.
    ///
    /// Opening the six listeners costs the broker about a second of its start; a test
    /// that needs one listener starts faster with
    /// `Security::none().listener(..).user(..)`.
    pub fn all() -> Self {
        Self {
            listeners: Listener::ALL.into_iter().collect(),
            users: vec![
                User {
                    name: "alice".into(),
                    password: "alice-secret".into(),
                },
                User {
                    name: "bob".into(),
                    password: "bob-secret".into(),
                },
            ],
            oauth: Some(OidcOptions::default()),
            reauth: BTreeMap::new(),
        }
    }

    /// Adds a listener.
    pub fn listener(mut self, l: Listener) -> Self {
        self.listeners.insert(l);
        self
    }

    /// Adds a user for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. Names and passwords are
    /// limited to `[A-Za-z0-9._-]` so they need no quoting in JAAS or `--add-scram`.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
        });
        self
    }

    /// Turns OAUTHBEARER on with these provider options (it is on in [`Self::all`]).
    pub fn oauth(mut self, opts: OidcOptions) -> Self {
        self.oauth = Some(opts);
        self
    }

    /// Turns OAUTHBEARER off: no OIDC server, no OAUTHBEARER mechanism.
    pub fn without_oauth(mut self) -> Self {
        self.oauth = None;
        self
    }

    /// Sets `connections.max.reauth.ms` on one listener (KIP-368): the broker tells
    /// clients this session lifetime and drops connections that do not re-authenticate
    /// in time.
    pub fn reauth(mut self, l: Listener, after: Duration) -> Self {
        self.reauth.insert(l, after);
        self
    }

    /// Whether any listener is asked for.
    pub fn is_enabled(&self) -> bool {
        !self.listeners.is_empty()
    }

    pub(crate) fn oauth_options(&self) -> Option<&OidcOptions> {
        self.oauth.as_ref()
    }

    pub(crate) fn listeners(&self) -> impl Iterator<Item = Listener> + '_ {
        self.listeners.iter().copied()
    }

    pub(crate) fn validate(&self) -> Result<(), KitError> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        for u in &self.users {
            if !plain(&u.name) || !plain(&u.password) {
                return Err(KitError::Setup(format!(
                    "SASL user {:?}: names and passwords must be [A-Za-z0-9._-]+",
                    u.name
                )));
            }
        }
        let sasl = self
            .listeners
            .iter()
            .any(|l| !l.mechanisms(false).is_empty());
        if sasl && self.users.is_empty() && self.oauth.is_none() {
            return Err(KitError::Setup(
                "SASL listeners need at least one user (Security::user) or OAuth".into(),
            ));
        }
        Ok(())
    }

    /// The `--add-scram` arguments for `kafka-storage format`, one per user and SCRAM
    /// mechanism.
    pub(crate) fn scram_credentials(&self) -> Vec<String> {
        let needs_scram = self.listeners.iter().any(|l| {
            l.mechanisms(false)
                .iter()
                .any(|m| matches!(m, SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512))
        });
        if !needs_scram {
            return Vec::new();
        }
        let mut out = Vec::new();
        for u in &self.users {
            for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
                out.push(format!("{mech}=[name={},password={}]", u.name, u.password));
            }
        }
        out.sort();
        out
    }
}

/// What a test needs to know about one secured listener.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    /// Which listener.
    pub listener: Listener,
    /// `host:port,...` of this listener on every broker.
    pub bootstrap: String,
    /// `security.protocol` for a client.
    pub security_protocol: &'static str,
    /// Enabled SASL mechanisms (empty for SSL listeners).
    pub mechanisms: Vec<SaslMechanism>,
    /// Whether the broker demands a client certificate (`ssl.client.auth=required`).
    pub client_auth_required: bool,
    /// `connections.max.reauth.ms`, when set.
    pub reauth: Option<Duration>,
    /// The certificate the broker presents (TLS listeners).
    pub server_cert: Option<CertKey>,
}

/// A secured cluster's listeners, users, certificates and OIDC provider.
pub struct SecurityInfo {
    /// Every certificate, key and store the listeners and clients use.
    pub pki: Pki,
    /// SASL users (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512).
    pub users: Vec<User>,
    /// The secured listeners.
    pub listeners: Vec<ListenerInfo>,
    oidc: Option<OidcServer>,
    clients_dir: PathBuf,
}

impl std::fmt::Debug for SecurityInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityInfo")
            .field("listeners", &self.listeners)
            .field("users", &self.users)
            .field("oidc", &self.oidc.as_ref().map(|o| o.issuer().to_string()))
            .finish()
    }
}

/// How a client authenticates, for [`SecurityInfo::java_client`].
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No client identity: TLS with the test CA trusted (or nothing on SASL_PLAINTEXT).
    None,
    /// SASL PLAIN or SCRAM with a user name and password.
    Sasl {
        /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
        mechanism: SaslMechanism,
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// OAUTHBEARER with tokens from the kit's OIDC token endpoint (client-credentials
    /// grant, Kafka's `OAuthBearerLoginCallbackHandler`).
    OAuthClientCredentials {
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// `scope`, if any.
        scope: Option<String>,
    },
    /// OAUTHBEARER with one fixed token (given to Kafka's client as a token file).
    OAuthToken(String),
    /// A client certificate for mTLS.
    Certificate(ClientCert),
}

/// Which client certificate, in which form, for [`ClientAuth::Certificate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    /// [`Pki::client`], unencrypted PEM key.
    Pem,
    /// [`Pki::client`] with the encrypted PKCS#8 key and its password.
    EncryptedPem,
    /// [`Pki::client`] as a PKCS#12 bundle.
    Pkcs12,
    /// [`Pki::untrusted_client`]: signed by the unknown CA.
    Untrusted,
}

impl ClientAuth {
    /// OAUTHBEARER with tokens from `oidc`'s token endpoint as the client it registered
    /// at start, no scope.
    pub fn oauth(oidc: &OidcServer) -> Self {
        ClientAuth::OAuthClientCredentials {
            client_id: oidc.client_id().to_string(),
            client_secret: oidc.client_secret().to_string(),
            scope: None,
        }
    }

    /// SASL PLAIN or SCRAM as `user`.
    pub fn sasl(mechanism: SaslMechanism, user: &User) -> Self {
        ClientAuth::Sasl {
            mechanism,
            user: user.name.clone(),
            password: user.password.clone(),
        }
    }
}

/// The configuration of one of Kafka's Java clients (console producer and consumer),
/// as [`SecurityInfo::java_client`] makes it; tweak it with [`Self::set`].
#[derive(Debug, Clone)]
pub struct JavaClientConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Client properties (`security.protocol`, `sasl.*`, `ssl.*`).
    pub properties: Vec<(String, String)>,
    /// JVM system properties the client needs (Kafka 4's allow-lists for OAuth URLs
    /// and files).
    pub system_properties: Vec<(String, String)>,
    /// Further JVM options. By default the client JIT stops at C1 and the serial GC is
    /// used: a console tool lives seconds, and that cuts its CPU time by about 40%,
    /// which on a 2-core machine running a broker is most of its wall time.
    pub jvm_options: Vec<String>,
    dir: PathBuf,
}

impl JavaClientConfig {
    /// Sets (or replaces) a client property; an empty value is kept as empty, which is
    /// how Kafka turns hostname verification off
    /// (`ssl.endpoint.identification.algorithm=`).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.properties.retain(|(k, _)| k != key);
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// The value of a client property.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Writes the properties to a new file in the cluster's run dir, for a tool's
    /// `--command-config`.
    pub fn write_properties(&self) -> Result<PathBuf, KitError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(format!(
            "client-{}.properties",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut text = String::new();
        for (k, v) in &self.properties {
            // java.util.Properties: backslash is the escape character.
            let _ = writeln!(text, "{k}={}", v.replace('\\', "\\\\").replace('\n', "\\n"));
        }
        fs::write(&path, text)
            .map_err(|e| KitError::Setup(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    }

    /// The JVM arguments: [`Self::jvm_options`], then `-Dkey=value` for each of
    /// [`Self::system_properties`].
    pub fn jvm_args(&self) -> Vec<String> {
        self.jvm_options
            .iter()
            .cloned()
            .chain(
                self.system_properties
                    .iter()
                    .map(|(k, v)| format!("-D{k}={v}")),
            )
            .collect()
    }
}

fn jaas_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const PLAIN_LOGIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_LOGIN: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const OAUTH_LOGIN: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
/// Kafka 4's allow-list of OAuth endpoint URLs (JWKS and token endpoints); empty by
/// default, which refuses every URL.
pub const ALLOWED_URLS_PROPERTY: &str = "org.apache.kafka.sasl.oauthbearer.allowed.urls";
/// Kafka 4.1+'s allow-list of files the OAuth classes may read (token files).
pub const ALLOWED_FILES_PROPERTY: &str = "org.apache.kafka.sasl.oauthbearer.allowed.files";

impl SecurityInfo {
    pub(crate) fn new(
        pki: Pki,
        security: &Security,
        oidc: Option<OidcServer>,
        ports: &BTreeMap<Listener, Vec<u16>>,
        clients_dir: PathBuf,
    ) -> Result<Self, KitError> {
        fs::create_dir_all(&clients_dir).map_err(|e| KitError::Setup(e.to_string()))?;
        let listeners = ports
            .iter()
            .map(|(&l, ports)| ListenerInfo {
                listener: l,
                bootstrap: ports
                    .iter()
                    .map(|p| format!("127.0.0.1:{p}"))
                    .collect::<Vec<_>>()
                    .join(","),
                security_protocol: l.security_protocol(),
                mechanisms: l.mechanisms(oidc.is_some()),
                client_auth_required: l == Listener::Ssl,
                reauth: security.reauth.get(&l).copied(),
                server_cert: server_cert(&pki, l).cloned(),
            })
            .collect();
        Ok(Self {
            pki,
            users: security.users.clone(),
            listeners,
            oidc,
            clients_dir,
        })
    }

    /// One listener.
    pub fn listener(&self, l: Listener) -> Result<&ListenerInfo, KitError> {
        self.listeners
            .iter()
            .find(|i| i.listener == l)
            .ok_or_else(|| {
                KitError::Unsupported(format!(
                    "this cluster has no {} listener: add it with Security::listener",
                    l.name()
                ))
            })
    }

    /// The first SASL user (`alice` with [`Security::all`]).
    pub fn user(&self) -> &User {
        self.users.first().expect("a secured cluster has users")
    }

    /// The OIDC provider the brokers trust, when OAuth is on.
    pub fn oidc(&self) -> Result<&OidcServer, KitError> {
        self.oidc.as_ref().ok_or_else(|| {
            KitError::Unsupported("this cluster has no OAuth: use Security::oauth".into())
        })
    }

    /// The configuration for Kafka's Java clients to reach listener `l` as `auth`:
    /// the test CA trusted (PEM trust store), and the SASL or certificate settings
    /// `auth` asks for.
    pub fn java_client(
        &self,
        l: Listener,
        auth: &ClientAuth,
    ) -> Result<JavaClientConfig, KitError> {
        let info = self.listener(l)?;
        let mut p: Vec<(String, String)> = Vec::new();
        let mut sys: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| p.push((k.to_string(), v.to_string()));
        set("security.protocol", info.security_protocol);
        if l.is_tls() {
            set("ssl.truststore.type", "PEM");
            set(
                "ssl.truststore.location",
                &self.pki.ca.cert_path.display().to_string(),
            );
        }
        match auth {
            ClientAuth::None => {}
            ClientAuth::Sasl {
                mechanism,
                user,
                password,
            } => {
                let module = match mechanism {
                    SaslMechanism::Plain => PLAIN_LOGIN,
                    SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => SCRAM_LOGIN,
                    SaslMechanism::OAuthBearer => {
                        return Err(KitError::Unsupported(
                            "OAUTHBEARER takes ClientAuth::OAuth*, not a password".into(),
                        ))
                    }
                };
                set("sasl.mechanism", mechanism.name());
                set(
                    "sasl.jaas.config",
                    &format!(
                        "{module} required username={} password={};",
                        jaas_quote(user),
                        jaas_quote(password)
                    ),
                );
            }
            ClientAuth::OAuthClientCredentials {
                client_id,
                client_secret,
                scope,
            } => {
                let oidc = self.oidc()?;
                set("sasl.mechanism", "OAUTHBEARER");
                set(
                    "sasl.login.callback.handler.class",
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
                );
                set("sasl.oauthbearer.token.endpoint.url", &oidc.token_url());
                set("sasl.oauthbearer.client.credentials.client.id", client_id);
                set(
                    "sasl.oauthbearer.client.credentials.client.secret",
                    client_secret,
                );
                if let Some(scope) = scope {
                    set("sasl.oauthbearer.scope", scope);
                }
                set("sasl.jaas.config", &format!("{OAUTH_LOGIN} required;"));
                sys.push((ALLOWED_URLS_PROPERTY.into(), oidc.token_url()));
            }
            ClientAuth::OAuthToken(token) => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let path = self.clients_dir.join(format!(
                    "token-{}.jwt",
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                fs::write(&path, token)
                    .map_err(|e| KitError::Setup(format!("writing {}: {e}", path.display())))?;
                let url = format!("file://{}", path.display());
                set("sasl.mechanism", "OAUTHBEARER");
                set(
                    "sasl.login.callback.handler.class",
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
                );
                set("sasl.oauthbearer.token.endpoint.url", &url);
                set("sasl.jaas.config", &format!("{OAUTH_LOGIN} required;"));
                sys.push((ALLOWED_URLS_PROPERTY.into(), url));
                sys.push((ALLOWED_FILES_PROPERTY.into(), path.display().to_string()));
            }
            ClientAuth::Certificate(form) => {
                let keys = &self.pki.client_key;
                match form {
                    ClientCert::Pem | ClientCert::Untrusted => {
                        let ck = if *form == ClientCert::Pem {
                            &self.pki.client
                        } else {
                            &self.pki.untrusted_client
                        };
                        set("ssl.keystore.type", "PEM");
                        set(
                            "ssl.keystore.location",
                            &ck.keystore_path.display().to_string(),
                        );
                    }
                    ClientCert::EncryptedPem => {
                        set("ssl.keystore.type", "PEM");
                        set(
                            "ssl.keystore.location",
                            &keys.encrypted_keystore_path.display().to_string(),
                        );
                        set("ssl.key.password", &keys.password);
                    }
                    ClientCert::Pkcs12 => {
                        set("ssl.keystore.type", "PKCS12");
                        set(
                            "ssl.keystore.location",
                            &keys.pkcs12_path.display().to_string(),
                        );
                        set("ssl.keystore.password", &keys.password);
                        set("ssl.key.password", &keys.password);
                    }
                }
            }
        }
        Ok(JavaClientConfig {
            bootstrap: info.bootstrap.clone(),
            properties: p,
            system_properties: sys,
            jvm_options: vec!["-XX:TieredStopAtLevel=1".into(), "-XX:+UseSerialGC".into()],
            dir: self.clients_dir.clone(),
        })
    }

    /// Broker properties for the secured listeners on one broker whose ports are
    /// `ports`: listener entries, protocol map entries and the per-listener settings.
    pub(crate) fn broker_config(&self, ports: &[(Listener, u16)]) -> BrokerSecurityConfig {
        let mut out = BrokerSecurityConfig::default();
        let p = &mut out.properties;
        for &(l, port) in ports {
            let name = l.name();
            let prefix = format!("listener.name.{}", name.to_ascii_lowercase());
            out.listeners.push(format!("{name}://127.0.0.1:{port}"));
            out.protocol_map
                .push(format!("{name}:{}", l.security_protocol()));
            if let Some(cert) = server_cert(&self.pki, l) {
                // Per-listener key stores: Kafka takes any ssl.* setting under the
                // listener's prefix, so each bad-certificate listener presents its own.
                let _ = writeln!(p, "{prefix}.ssl.keystore.type=PEM");
                let _ = writeln!(
                    p,
                    "{prefix}.ssl.keystore.location={}",
                    cert.keystore_path.display()
                );
                let _ = writeln!(p, "{prefix}.ssl.truststore.type=PEM");
                let _ = writeln!(
                    p,
                    "{prefix}.ssl.truststore.location={}",
                    self.pki.ca.cert_path.display()
                );
                let auth = if l == Listener::Ssl {
                    "required"
                } else {
                    "none"
                };
                let _ = writeln!(p, "{prefix}.ssl.client.auth={auth}");
            }
            let info = self.listener(l).expect("listener info for every port");
            if !info.mechanisms.is_empty() {
                let names: Vec<&str> = info.mechanisms.iter().map(|m| m.name()).collect();
                let _ = writeln!(p, "{prefix}.sasl.enabled.mechanisms={}", names.join(","));
            }
            for m in &info.mechanisms {
                let mp = format!("{prefix}.{}", m.name().to_ascii_lowercase());
                match m {
                    SaslMechanism::Plain => {
                        let users: String = self
                            .users
                            .iter()
                            .map(|u| format!(" user_{}={}", u.name, jaas_quote(&u.password)))
                            .collect();
                        let _ = writeln!(p, "{mp}.sasl.jaas.config={PLAIN_LOGIN} required{users};");
                    }
                    SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                        let _ = writeln!(p, "{mp}.sasl.jaas.config={SCRAM_LOGIN} required;");
                    }
                    SaslMechanism::OAuthBearer => {
                        let _ = writeln!(p, "{mp}.sasl.jaas.config={OAUTH_LOGIN} required;");
                        let _ = writeln!(
                            p,
                            "{mp}.sasl.server.callback.handler.class=\
                             org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
                        );
                    }
                }
            }
            if let Some(d) = info.reauth {
                let _ = writeln!(p, "{prefix}.connections.max.reauth.ms={}", d.as_millis());
            }
        }
        if let Some(oidc) = &self.oidc {
            let _ = writeln!(p, "sasl.oauthbearer.jwks.endpoint.url={}", oidc.jwks_url());
            let _ = writeln!(p, "sasl.oauthbearer.expected.audience={}", oidc.audience());
            let _ = writeln!(p, "sasl.oauthbearer.expected.issuer={}", oidc.issuer());
            out.jvm_args
                .push(format!("-D{ALLOWED_URLS_PROPERTY}={}", oidc.jwks_url()));
        }
        out
    }
}

fn server_cert(pki: &Pki, l: Listener) -> Option<&CertKey> {
    match l {
        Listener::SaslSsl | Listener::Ssl => Some(&pki.broker),
        Listener::SaslPlaintext => None,
        Listener::ExpiredCert => Some(&pki.expired),
        Listener::WrongHostCert => Some(&pki.wrong_host),
        Listener::UntrustedCert => Some(&pki.untrusted_broker),
    }
}

/// The secured part of one broker's configuration.
#[derive(Debug, Default)]
pub(crate) struct BrokerSecurityConfig {
    /// `NAME://127.0.0.1:port` entries for `listeners` and `advertised.listeners`.
    pub listeners: Vec<String>,
    /// `NAME:PROTOCOL` entries for `listener.security.protocol.map`.
    pub protocol_map: Vec<String>,
    /// Further `key=value` lines.
    pub properties: String,
    /// JVM arguments the broker needs.
    pub jvm_args: Vec<String>,
}

/// Credentials for [`sasl_authenticate`].
#[derive(Debug, Clone)]
pub enum RawSaslAuth {
    /// PLAIN with a user name and password.
    Plain {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// OAUTHBEARER with a token (RFC 7628 client first message).
    OAuthBearer(String),
}

/// What the broker answered to [`sasl_authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslOutcome {
    /// The Kafka error code of the final SaslAuthenticate response (0: authenticated;
    /// 58: SASL_AUTHENTICATION_FAILED).
    pub error_code: i16,
    /// The broker's error message, if any.
    pub error_message: Option<String>,
    /// The session lifetime the broker granted (KIP-368): 0 when re-authentication is
    /// off, else at most `connections.max.reauth.ms` (and, for OAUTHBEARER, at most the
    /// token's remaining lifetime).
    pub session_lifetime_ms: i64,
}

impl SaslOutcome {
    /// Whether the broker accepted the credentials.
    pub fn authenticated(&self) -> bool {
        self.error_code == 0
    }
}

/// Authenticates on a `SASL_PLAINTEXT` listener with raw SaslHandshake and
/// SaslAuthenticate requests and reports the broker's verdict, independently of any
/// client library: so a test can see what the broker itself accepts (an expired token
/// that Kafka's Java client would refuse to send, say) and the session lifetime it
/// grants. `addr` is `host:port`, or a bootstrap list whose first entry is used.
pub fn sasl_authenticate(addr: &str, auth: &RawSaslAuth) -> Result<SaslOutcome, KitError> {
    Ok(SaslSession::open(addr, auth)?.outcome)
}

/// A connection authenticated (or refused) by [`SaslSession::open`], kept open so a
/// test can see how long the broker keeps serving it.
pub struct SaslSession {
    /// What the broker answered.
    pub outcome: SaslOutcome,
    conn: RawConn,
}

impl SaslSession {
    /// Authenticates like [`sasl_authenticate`] and keeps the connection.
    pub fn open(addr: &str, auth: &RawSaslAuth) -> Result<Self, KitError> {
        let first = addr.split(',').next().unwrap_or(addr).trim();
        let mut conn = RawConn::open(first)?;
        let outcome = authenticate(&mut conn, auth)?;
        Ok(Self { outcome, conn })
    }

    /// Whether the broker still answers a request (ApiVersions) on this connection: it
    /// closes a connection whose session lifetime passed without re-authentication.
    pub fn still_served(&mut self) -> bool {
        self.conn
            .call(&ApiVersionsRequest::default(), 0)
            .is_ok_and(|r| r.error_code == 0)
    }
}

fn authenticate(conn: &mut RawConn, auth: &RawSaslAuth) -> Result<SaslOutcome, KitError> {
    let mechanism = match auth {
        RawSaslAuth::Plain { .. } => "PLAIN",
        RawSaslAuth::OAuthBearer(_) => "OAUTHBEARER",
    };
    let hs = conn.call(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
        1,
    )?;
    if hs.error_code != 0 {
        return Err(KitError::Broker(format!(
            "SaslHandshake for {mechanism} failed with error {}; enabled: {:?}",
            hs.error_code, hs.mechanisms
        )));
    }
    let first = match auth {
        RawSaslAuth::Plain { user, password } => format!("\0{user}\0{password}").into_bytes(),
        RawSaslAuth::OAuthBearer(token) => {
            format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
        }
    };
    let authenticate = |conn: &mut RawConn, bytes: Vec<u8>| {
        conn.call(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
            2,
        )
    };
    let mut resp = authenticate(conn, first)?;
    // A refused OAUTHBEARER token comes back as an error challenge (RFC 7628 §3.2.2)
    // with error code 0; the client must answer with a lone 0x01 to get the failure.
    if resp.error_code == 0 && !resp.auth_bytes.is_empty() && mechanism == "OAUTHBEARER" {
        resp = authenticate(conn, vec![0x01])?;
    }
    Ok(SaslOutcome {
        error_code: resp.error_code,
        error_message: resp.error_message.map(|m| m.to_string()),
        session_lifetime_ms: resp.session_lifetime_ms,
    })
}

struct RawConn {
    stream: TcpStream,
    next: i32,
}

impl RawConn {
    fn open(addr: &str) -> Result<Self, KitError> {
        let stream = TcpStream::connect(addr)
            .map_err(|e| KitError::Broker(format!("connecting to {addr}: {e}")))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Ok(Self { stream, next: 1 })
    }

    fn call<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, KitError> {
        let id = self.next;
        self.next += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("courier-testkit-sasl")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| req.encode(&mut body, version))
            .map_err(|e| KitError::Broker(format!("encoding api {}: {e}", R::KEY)))?;
        let io = |e: std::io::Error| KitError::Broker(format!("api {}: {e}", R::KEY));
        self.stream
            .write_all(&(body.len() as i32).to_be_bytes())
            .and_then(|()| self.stream.write_all(&body))
            .map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = i32::from_be_bytes(len).clamp(0, 1 << 20) as usize;
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).map_err(io)?;
        let mut buf = Bytes::from(buf);
        let bad = |e: anyhow::Error| KitError::Broker(format!("decoding api {}: {e}", R::KEY));
        let h =
            ResponseHeader::decode(&mut buf, R::Response::header_version(version)).map_err(bad)?;
        if h.correlation_id != id {
            return Err(KitError::Broker(format!(
                "correlation id {} in response, expected {id}",
                h.correlation_id
            )));
        }
        R::Response::decode(&mut buf, version).map_err(bad)
    }
}

/// The run-dir subdirectory for client files.
pub(crate) fn clients_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("clients")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_must_need_no_quoting() {
        assert!(Security::all().user("carol", "c-1.x_y").validate().is_ok());
        assert!(Security::all()
            .user("carol", "has space")
            .validate()
            .is_err());
        assert!(Security::all().user("a=b", "x").validate().is_err());
        assert!(Security::none()
            .listener(Listener::SaslSsl)
            .without_oauth()
            .validate()
            .is_err());
    }

    fn info(dir: &Path) -> SecurityInfo {
        let security = Security::all().reauth(Listener::SaslPlaintext, Duration::from_secs(4));
        let ports: BTreeMap<Listener, Vec<u16>> = Listener::ALL
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, vec![9100 + i as u16]))
            .collect();
        SecurityInfo::new(
            Pki::generate(&dir.join("tls")).unwrap(),
            &security,
            Some(OidcServer::start(OidcOptions::default()).unwrap()),
            &ports,
            dir.join("clients"),
        )
        .unwrap()
    }

    #[test]
    fn broker_config_names_every_listener_setting() {
        let dir = std::env::temp_dir().join(format!("courier-sec-test-{}", std::process::id()));
        let sec = info(&dir);
        let ports: Vec<(Listener, u16)> = Listener::ALL
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, 9100 + i as u16))
            .collect();
        let c = sec.broker_config(&ports);
        assert!(c
            .listeners
            .contains(&"SSL_EXPIRED://127.0.0.1:9103".to_string()));
        assert!(c.protocol_map.contains(&"SSL_WRONG_HOST:SSL".to_string()));
        assert!(c
            .protocol_map
            .contains(&"SASL_PLAINTEXT:SASL_PLAINTEXT".to_string()));
        let has = |line: &str| {
            assert!(
                c.properties.lines().any(|l| l == line),
                "no {line:?} in:\n{}",
                c.properties
            )
        };
        has("listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER");
        has("listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,OAUTHBEARER");
        has("listener.name.ssl.ssl.client.auth=required");
        has("listener.name.ssl_untrusted.ssl.client.auth=none");
        has("listener.name.sasl_plaintext.connections.max.reauth.ms=4000");
        has(&format!(
            "listener.name.ssl_expired.ssl.keystore.location={}",
            sec.pki.expired.keystore_path.display()
        ));
        has("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
             org.apache.kafka.common.security.scram.ScramLoginModule required;");
        has("listener.name.sasl_ssl.plain.sasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required \
             user_alice=\"alice-secret\" user_bob=\"bob-secret\";");
        has(
            "listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=\
             org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        );
        let oidc = sec.oidc().unwrap();
        has(&format!(
            "sasl.oauthbearer.jwks.endpoint.url={}",
            oidc.jwks_url()
        ));
        has(&format!(
            "sasl.oauthbearer.expected.issuer={}",
            oidc.issuer()
        ));
        assert!(!c
            .properties
            .contains("listener.name.sasl_ssl.connections.max.reauth.ms"));
        assert_eq!(
            c.jvm_args,
            vec![format!("-D{ALLOWED_URLS_PROPERTY}={}", oidc.jwks_url())]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn java_client_configs_match_the_auth_asked_for() {
        let dir = std::env::temp_dir().join(format!("courier-sec-java-{}", std::process::id()));
        let sec = info(&dir);
        let p12 = sec
            .java_client(Listener::Ssl, &ClientAuth::Certificate(ClientCert::Pkcs12))
            .unwrap();
        assert_eq!(p12.bootstrap, "127.0.0.1:9101");
        assert_eq!(p12.get("security.protocol"), Some("SSL"));
        assert_eq!(p12.get("ssl.keystore.type"), Some("PKCS12"));
        assert_eq!(
            p12.get("ssl.keystore.password"),
            Some(crate::pki::CLIENT_KEY_PASSWORD)
        );
        assert_eq!(p12.get("ssl.truststore.type"), Some("PEM"));
        let scram = sec
            .java_client(
                Listener::SaslPlaintext,
                &ClientAuth::sasl(SaslMechanism::ScramSha256, sec.user()),
            )
            .unwrap();
        assert_eq!(scram.get("ssl.truststore.location"), None);
        assert_eq!(scram.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(
            scram.get("sasl.jaas.config"),
            Some(
                "org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"alice\" password=\"alice-secret\";"
            )
        );
        let token = sec
            .java_client(Listener::SaslSsl, &ClientAuth::OAuthToken("t.o.k".into()))
            .unwrap();
        let url = token.get("sasl.oauthbearer.token.endpoint.url").unwrap();
        let path = url.strip_prefix("file://").unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), "t.o.k");
        assert!(token
            .jvm_args()
            .contains(&format!("-D{ALLOWED_FILES_PROPERTY}={path}")));
        let written = fs::read_to_string(scram.write_properties().unwrap()).unwrap();
        assert!(
            written.contains("sasl.mechanism=SCRAM-SHA-256\n"),
            "{written}"
        );
        assert!(sec
            .java_client(
                Listener::SaslSsl,
                &ClientAuth::sasl(SaslMechanism::OAuthBearer, sec.user())
            )
            .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scram_credentials_cover_both_mechanisms_and_are_ordered() {
        let creds = Security::all().scram_credentials();
        assert_eq!(
            creds,
            vec![
                "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                "SCRAM-SHA-256=[name=bob,password=bob-secret]",
                "SCRAM-SHA-512=[name=alice,password=alice-secret]",
                "SCRAM-SHA-512=[name=bob,password=bob-secret]",
            ]
        );
        assert!(Security::none()
            .listener(Listener::Ssl)
            .user("a", "b")
            .scram_credentials()
            .is_empty());
    }
}
