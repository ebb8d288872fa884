//! SASL authentication of a connection: SaslHandshake, then SaslAuthenticate until the
//! mechanism is done (KIP-43, KIP-152), and the credentials behind it.
//!
//! A connection authenticates once ApiVersions is done and before anything else is sent on
//! it, and again before the session lifetime the broker announced runs out (KIP-368). The
//! [`SaslAuthenticator`] is shared by every connection of a producer: it builds a fresh
//! [`Mechanism`] per exchange (they are single-use) and, for OAUTHBEARER, holds the current
//! token, fetching a new one before 80 % of the old one's lifetime has passed (librdkafka's
//! and Java's default), so concurrent connections share one token and one fetch.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use courier_core::wire::{SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use super::sasl::{
    Mechanism, OAuthBearer, OAuthBearerToken, Plain, SaslError, SaslExtensions, Scram, ScramHash,
    Step,
};
use super::NetError;
use crate::config::{
    SaslConfig, SaslCredentials, SaslMechanism, TlsConfig, TokenSource, TrustRoots,
};

/// Kafka's SASL error codes.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A SASL exchange never needs more rounds than this (SCRAM takes two, OAUTHBEARER's error
/// path two); a broker that keeps asking is broken or hostile.
const MAX_ROUNDS: usize = 8;

/// Authenticates a producer's connections; shared by all of them.
pub struct SaslAuthenticator {
    mechanism: SaslMechanism,
    credentials: SaslCredentials,
    /// The current OAUTHBEARER token and when to fetch the next one.
    token: tokio::sync::Mutex<Option<(OAuthBearerToken, Option<SystemTime>)>>,
    oidc: Option<super::oidc::OidcClient>,
}

impl std::fmt::Debug for SaslAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslAuthenticator")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// What a successful authentication granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The session lifetime the broker announced (KIP-368); `None` if it has no limit.
    pub lifetime: Option<Duration>,
}

impl SaslAuthenticator {
    /// An authenticator for `config`; an OIDC token endpoint over https also trusts the
    /// CAs configured for the brokers (`tls`).
    pub fn new(
        config: &SaslConfig,
        tls: Option<&TlsConfig>,
    ) -> Result<SaslAuthenticator, NetError> {
        let extra_roots = match tls.map(TlsConfig::roots) {
            Some(TrustRoots::Certificates { certs, .. }) => certs.clone(),
            _ => Vec::new(),
        };
        let oidc = match config.credentials() {
            SaslCredentials::OAuthBearer {
                source: TokenSource::Oidc(oidc),
                ..
            } => Some(super::oidc::OidcClient::new(oidc, &extra_roots)?),
            _ => None,
        };
        Ok(SaslAuthenticator {
            mechanism: config.mechanism(),
            credentials: config.credentials().clone(),
            token: tokio::sync::Mutex::new(None),
            oidc,
        })
    }

    /// The mechanism's name, as SaslHandshake sends it.
    pub fn mechanism_name(&self) -> &'static str {
        match self.mechanism {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    fn failure(&self, addr: &str, message: String, definitive: bool) -> NetError {
        NetError::Authentication {
            addr: addr.to_owned(),
            mechanism: self.mechanism_name().to_string(),
            message,
            definitive,
        }
    }

    /// A fresh mechanism for one exchange; for OAUTHBEARER with a current token.
    async fn mechanism(&self, addr: &str) -> Result<Box<dyn Mechanism>, NetError> {
        match &self.credentials {
            SaslCredentials::Password {
                username,
                password,
                token_auth,
            } => Ok(match self.mechanism {
                SaslMechanism::Plain => Box::new(Plain::new(username.clone(), password.clone())),
                SaslMechanism::ScramSha256 => Box::new(
                    Scram::new(ScramHash::Sha256, username.clone(), password.clone())
                        .token_auth(*token_auth),
                ),
                SaslMechanism::ScramSha512 => Box::new(
                    Scram::new(ScramHash::Sha512, username.clone(), password.clone())
                        .token_auth(*token_auth),
                ),
                SaslMechanism::OAuthBearer => {
                    return Err(self.failure(
                        addr,
                        "OAUTHBEARER with a user name and password (a bug in courier's \
                         configuration checks)"
                            .into(),
                        true,
                    ))
                }
            }),
            SaslCredentials::OAuthBearer { extensions, .. } => {
                let token = self.current_token(addr).await?;
                let mut ext = SaslExtensions::new();
                for (k, v) in extensions {
                    ext.insert(k.clone(), v.clone())
                        .map_err(|e| self.failure(addr, e.to_string(), true))?;
                }
                Ok(Box::new(OAuthBearer::new(token, ext)))
            }
        }
    }

    /// The token to authenticate with now: the cached one until its refresh time, else a
    /// new one from the source.
    async fn current_token(&self, addr: &str) -> Result<OAuthBearerToken, NetError> {
        let mut cached = self.token.lock().await;
        let now = SystemTime::now();
        if let Some((token, refresh_at)) = cached.as_ref() {
            if refresh_at.is_none_or(|t| now < t) {
                return Ok(token.clone());
            }
        }
        let SaslCredentials::OAuthBearer { source, .. } = &self.credentials else {
            unreachable!("only OAUTHBEARER has tokens");
        };
        let (value, expires_at) = match source {
            TokenSource::Static(secret) => (secret.clone(), None),
            TokenSource::Oidc(_) => {
                let client = self.oidc.as_ref().expect("an OIDC source has a client");
                let t = client.fetch().await.map_err(|e| {
                    self.failure(
                        addr,
                        format!("could not get a token: {}", e.message),
                        e.definitive,
                    )
                })?;
                (t.value, t.expires_at)
            }
            TokenSource::Provider(p) => {
                let t = p.0.token().await.map_err(|e| {
                    self.failure(
                        addr,
                        format!("the application's token provider failed: {e}"),
                        false,
                    )
                })?;
                (t.value, t.expires_at)
            }
        };
        let mut token = OAuthBearerToken::new(value)
            .map_err(|e| self.failure(addr, format!("the token cannot be sent: {e}"), true))?;
        if let Some(at) = expires_at {
            token = token.with_lifetime(at);
        }
        if token.expires_at().is_some_and(|at| at <= now) {
            // A fixed token past its expiry will be refused; say so rather than send it.
            let definitive = matches!(source, TokenSource::Static(_));
            return Err(self.failure(
                addr,
                "the token has expired (its exp claim is in the past): a fixed \
                 sasl.oauthbearer.token must be replaced, a provider must return a fresh one"
                    .into(),
                definitive,
            ));
        }
        let refresh_at = token.refresh_at(now);
        *cached = Some((token.clone(), refresh_at));
        if let Some(subject) = token.subject() {
            tracing::debug!(subject, "OAUTHBEARER token obtained");
        }
        Ok(token)
    }

    /// Runs the exchange over `transport`: SaslHandshake for the mechanism, then
    /// SaslAuthenticate rounds until the mechanism is done.
    pub(crate) async fn exchange(
        &self,
        addr: &str,
        transport: &mut impl SaslTransport,
    ) -> Result<Session, NetError> {
        let name = self.mechanism_name();
        let resp = transport
            .handshake(
                SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name)),
            )
            .await?;
        match resp.error_code {
            0 => {}
            UNSUPPORTED_SASL_MECHANISM => {
                let offered: Vec<String> = resp.mechanisms.clone();
                return Err(self.failure(
                    addr,
                    format!(
                        "the broker's listener does not enable {name}; it offers {}: set \
                         sasl.mechanism to one of them (and the credentials for it), or enable \
                         {name} on the broker (sasl.enabled.mechanisms)",
                        if offered.is_empty() {
                            "none".to_string()
                        } else {
                            offered.join(", ")
                        }
                    ),
                    true,
                ));
            }
            ILLEGAL_SASL_STATE => {
                return Err(self.failure(
                    addr,
                    "the broker says this connection is not expecting a SASL handshake \
                     (ILLEGAL_SASL_STATE): is the listener a SASL one? check \
                     security.protocol"
                        .into(),
                    true,
                ))
            }
            code => {
                return Err(self.failure(
                    addr,
                    format!("the broker refused the SASL handshake with error code {code}"),
                    false,
                ))
            }
        }
        let mut mech = self.mechanism(addr).await?;
        let sasl_err = |e: SaslError| {
            let definitive = !matches!(e, SaslError::Random(_));
            self.failure(addr, e.to_string(), definitive)
        };
        let mut message = mech.initial().map_err(sasl_err)?;
        for _ in 0..MAX_ROUNDS {
            let resp = transport
                .authenticate(
                    SaslAuthenticateRequest::default()
                        .with_auth_bytes(bytes::Bytes::from(message.into_bytes())),
                )
                .await?;
            if resp.error_code == SASL_AUTHENTICATION_FAILED {
                let e = mech.refused(resp.error_message.as_deref());
                return Err(self.failure(addr, e.to_string(), true));
            }
            if resp.error_code != 0 {
                return Err(self.failure(
                    addr,
                    format!(
                        "the broker answered SaslAuthenticate with error code {}{}",
                        resp.error_code,
                        resp.error_message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    resp.error_code == ILLEGAL_SASL_STATE,
                ));
            }
            match mech.step(&resp.auth_bytes).map_err(sasl_err)? {
                Step::Respond(next) => message = next,
                Step::Done => {
                    let lifetime = u64::try_from(resp.session_lifetime_ms)
                        .ok()
                        .filter(|ms| *ms > 0)
                        .map(Duration::from_millis);
                    return Ok(Session { lifetime });
                }
            }
        }
        Err(self.failure(
            addr,
            format!("the broker asked for more than {MAX_ROUNDS} SASL rounds"),
            true,
        ))
    }
}

/// How an exchange reaches the broker: at connect time through the connection's request
/// path, during re-authentication from inside its writer (which holds every other request
/// back until the exchange is over).
pub(crate) trait SaslTransport {
    /// Sends SaslHandshake, returns its response.
    fn handshake(
        &mut self,
        req: SaslHandshakeRequest,
    ) -> impl Future<Output = Result<SaslHandshakeResponse, NetError>> + Send;

    /// Sends SaslAuthenticate, returns its response.
    fn authenticate(
        &mut self,
        req: SaslAuthenticateRequest,
    ) -> impl Future<Output = Result<SaslAuthenticateResponse, NetError>> + Send;
}

/// When to re-authenticate a session of `lifetime` (KIP-368): between 85 % and 95 % of it,
/// as the Java client does, so a fleet of producers does not re-authenticate in step;
/// `unit` is uniform in `[0, 1)`.
pub(crate) fn reauthenticate_after(lifetime: Duration, unit: f64) -> Duration {
    lifetime.mul_f64(0.85 + 0.10 * unit.clamp(0.0, 1.0))
}

/// A producer's authenticator as [`ConnectOptions`](super::ConnectOptions) carry it:
/// compared by identity, shown without credentials.
#[derive(Clone)]
pub struct SaslAuth(pub(crate) Arc<SaslAuthenticator>);

impl PartialEq for SaslAuth {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SaslAuth {}

impl std::fmt::Debug for SaslAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauthentication_comes_between_85_and_95_percent_of_the_session() {
        let life = Duration::from_secs(100);
        assert_eq!(reauthenticate_after(life, 0.0), Duration::from_secs(85));
        assert!(reauthenticate_after(life, 0.999) < Duration::from_secs(95));
        assert!(reauthenticate_after(life, 0.5) > Duration::from_secs(89));
    }

    /// A broker that accepts OAUTHBEARER and records what the client sent.
    #[cfg(feature = "msk-iam")]
    #[derive(Default)]
    struct Recorder {
        sent: Vec<Vec<u8>>,
    }

    #[cfg(feature = "msk-iam")]
    impl SaslTransport for Recorder {
        async fn handshake(
            &mut self,
            req: SaslHandshakeRequest,
        ) -> Result<SaslHandshakeResponse, NetError> {
            assert_eq!(req.mechanism.as_str(), "OAUTHBEARER");
            Ok(SaslHandshakeResponse {
                error_code: 0,
                mechanisms: vec!["OAUTHBEARER".into()],
            })
        }

        async fn authenticate(
            &mut self,
            req: SaslAuthenticateRequest,
        ) -> Result<SaslAuthenticateResponse, NetError> {
            self.sent.push(req.auth_bytes.to_vec());
            Ok(SaslAuthenticateResponse {
                error_code: 0,
                error_message: None,
                auth_bytes: Vec::new(),
                session_lifetime_ms: 600_000,
            })
        }
    }

    #[cfg(feature = "msk-iam")]
    #[tokio::test]
    async fn msk_iam_tokens_are_sent_as_oauthbearer_and_shared() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use base64::Engine as _;

        use crate::config::SecurityProtocol;
        use crate::msk_iam::{Credentials, MskIamTokenProvider};

        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let tokens = MskIamTokenProvider::with_credentials_provider(
            "eu-west-1",
            Arc::new(move || -> Result<Credentials, String> {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(Credentials::new("ASIAEXAMPLE", "secret").with_session_token("sess"))
            }),
        )
        .unwrap();
        let config = crate::ProducerConfig::builder()
            .bootstrap_servers("b-1.c.kafka.eu-west-1.amazonaws.com:9098")
            .security_protocol(SecurityProtocol::SaslSsl)
            .oauth_token_provider(Arc::new(tokens))
            .build()
            .unwrap();
        let auth = SaslAuthenticator::new(config.sasl().unwrap(), None).unwrap();
        let mut broker = Recorder::default();
        for _ in 0..2 {
            let session = auth.exchange("b-1:9098", &mut broker).await.unwrap();
            assert_eq!(session.lifetime, Some(Duration::from_secs(600)));
        }
        // One token for both exchanges: it is good for 15 minutes, renewed after 12.
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(broker.sent.len(), 2);
        assert_eq!(broker.sent[0], broker.sent[1]);
        let message = String::from_utf8(broker.sent[0].clone()).unwrap();
        let token = message
            .strip_prefix("n,,\x01auth=Bearer ")
            .and_then(|m| m.strip_suffix("\x01\x01"))
            .unwrap();
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap();
        let url = String::from_utf8(url).unwrap();
        assert!(
            url.starts_with(
                "https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"
            ),
            "{url}"
        );
        assert!(url.contains("&X-Amz-Security-Token=sess&"), "{url}");
    }
}
