//! Amazon MSK IAM authentication: SASL/OAUTHBEARER tokens signed with AWS credentials
//! (feature `msk-iam`, off by default).
//!
//! Amazon MSK clusters with IAM access control accept, on their IAM listeners (port 9098
//! inside the VPC, 9198 public), an OAUTHBEARER token made by the "MSK IAM SASL signer":
//! an AWS Signature Version 4 presigned URL for the action `kafka-cluster:Connect`,
//! base64url-encoded. [`MskIamTokenProvider`] makes exactly the tokens AWS's own signers
//! make (`aws-msk-iam-sasl-signer-python`, `-go`, `-js`, and the Java
//! `IAMOAuthBearerLoginCallbackHandler`), from credentials the application gives or
//! reads from the environment, with no AWS SDK inside courier: the signing is plain
//! HMAC-SHA256 on the `sha2`/`hmac` crates courier already uses for SCRAM.
//!
//! # Amazon MSK with IAM, in short
//!
//! With the `msk-iam` feature (`courier = { version = "…", features = ["msk-iam"] }`),
//! courier connects to MSK's IAM listeners (port 9098) with `security.protocol=SASL_SSL`,
//! `sasl.mechanism=OAUTHBEARER` and an [`MskIamTokenProvider`] as the token provider.
//! It signs the tokens itself (AWS SigV4, no AWS SDK, no C code), from credentials in
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, given directly, or
//! asked of the application each time (the AWS SDK's credential chain for instance
//! profiles, task roles, IRSA: recipe below). Tokens last 15 minutes and are renewed
//! after 12; connections re-authenticate in place (KIP-368). Its tokens are checked
//! byte for byte against AWS's Python and Go signers.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use courier::config::{SaslMechanism, SecurityProtocol};
//! use courier::msk_iam::MskIamTokenProvider;
//! use courier::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; the region from
//! // AWS_REGION or AWS_DEFAULT_REGION.
//! let tokens = MskIamTokenProvider::from_env(None)?;
//! let config = ProducerConfig::builder()
//!     .bootstrap_servers(
//!         "b-1.orders.abc123.c2.kafka.eu-west-1.amazonaws.com:9098,\
//!          b-2.orders.abc123.c2.kafka.eu-west-1.amazonaws.com:9098",
//!     )
//!     .security_protocol(SecurityProtocol::SaslSsl)
//!     .sasl_mechanism(SaslMechanism::OAuthBearer)
//!     .oauth_token_provider(Arc::new(tokens))
//!     .build()?;
//! let producer = Producer::new(config)?;
//! producer
//!     .send(ProducerRecord::new("orders").key("order-1").value("{\"amount\":10}"))
//!     .await?;
//! producer.close(std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
//!
//! MSK's brokers present certificates from Amazon's public CAs, which the system's (or
//! the bundled Mozilla) roots already trust: no `ssl.ca.location` is needed. The same
//! settings as properties: `security.protocol=SASL_SSL`, `sasl.mechanism=OAUTHBEARER`,
//! then the provider given to [`oauth_token_provider`] (there is no property for it).
//!
//! # Where the credentials come from
//!
//! * [`MskIamTokenProvider::from_env`]: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!   (for temporary credentials) `AWS_SESSION_TOKEN`, read once when it is made.
//! * [`MskIamTokenProvider::new`]: [`Credentials`] the application has.
//! * [`MskIamTokenProvider::with_credentials_provider`]: a [`CredentialsProvider`]
//!   asked for credentials each time a token is made, for credentials that rotate: an
//!   EC2 instance profile, an ECS task role, EKS pod identity or IRSA, `AssumeRole`.
//!   Those are what most MSK clients run with, and they are the AWS SDK's business, so
//!   courier leaves them to it:
//!
//! ```ignore
//! // Cargo.toml: aws-config = "1", aws-credential-types = "1"
//! use std::sync::Arc;
//!
//! use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
//! use courier::config::Secret;
//! use courier::msk_iam::{Credentials, CredentialsFuture, CredentialsProvider, MskIamTokenProvider};
//!
//! /// The AWS SDK's default credential chain (environment, profile, web identity, ECS,
//! /// EC2 instance metadata), as courier's credentials provider.
//! struct AwsSdkCredentials(SharedCredentialsProvider);
//!
//! impl CredentialsProvider for AwsSdkCredentials {
//!     fn credentials(&self) -> CredentialsFuture<'_> {
//!         Box::pin(async move {
//!             let c = self.0.provide_credentials().await.map_err(|e| e.to_string())?;
//!             Ok(Credentials {
//!                 access_key_id: c.access_key_id().to_owned(),
//!                 secret_access_key: Secret::new(c.secret_access_key()),
//!                 session_token: c.session_token().map(Secret::new),
//!             })
//!         })
//!     }
//! }
//!
//! let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let region = sdk.region().ok_or("no AWS region configured")?.to_string();
//! let chain = sdk.credentials_provider().ok_or("no AWS credentials provider")?;
//! let tokens = MskIamTokenProvider::with_credentials_provider(
//!     region,
//!     Arc::new(AwsSdkCredentials(chain)),
//! )?;
//! // then .oauth_token_provider(Arc::new(tokens)) as above
//! ```
//!
//! courier asks its token provider for a token when it holds none fresh enough, once
//! for all connections, and renews it at 80 % of its lifetime (12 of its 15 minutes),
//! so the credentials provider is called about every 12 minutes and needs no cache of
//! its own. Its error (`Err(String)`) is reported as the reason the connection could
//! not authenticate, and courier tries again.
//!
//! # The token
//!
//! A presigned URL (SigV4, service `kafka-cluster`, only the `host` header signed, the
//! empty payload's hash), base64url-encoded without padding:
//!
//! ```text
//! https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect
//!   &X-Amz-Algorithm=AWS4-HMAC-SHA256
//!   &X-Amz-Credential=<key id>%2F<yyyymmdd>%2F<region>%2Fkafka-cluster%2Faws4_request
//!   &X-Amz-Date=<yyyymmddThhmmssZ>&X-Amz-Expires=900&X-Amz-SignedHeaders=host
//!   [&X-Amz-Security-Token=<session token>]
//!   &X-Amz-Signature=<64 hex digits>
//!   &User-Agent=courier%2F<version>
//! ```
//!
//! (one line, no spaces). The parameters come in the order of AWS's Python signer, and
//! the token is byte for byte the one that signer makes for the same inputs but for the
//! `User-Agent` value: every official signer appends its own name after signing, so it
//! is outside the signature. The token is good for 15 minutes from its `X-Amz-Date`
//! ([`OAuthToken::expires_at`] says when).
//!
//! # For the operator
//!
//! * The IAM principal needs, for a producer, `kafka-cluster:Connect` on the cluster,
//!   `kafka-cluster:WriteDataIdempotently` on the cluster (courier is idempotent by
//!   default), and `kafka-cluster:DescribeTopic` and `kafka-cluster:WriteData` on the
//!   topics (`kafka-cluster:CreateTopic` too if topics are created on first use).
//! * A clock more than about five minutes off makes every signature stale or early: MSK
//!   refuses the token and courier reports the broker's reason. Keep NTP running.
//! * The region is the cluster's (the `kafka.<region>.amazonaws.com` part of the broker
//!   names), not necessarily where the client runs.
//!
//! [`oauth_token_provider`]: crate::config::ProducerConfigBuilder::oauth_token_provider

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::config::{OAuthToken, OAuthTokenProvider, Secret, TokenFuture};

mod sigv4;
#[cfg(test)]
mod tests;

/// How long a token is valid: `X-Amz-Expires=900`, every official signer's value.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The action MSK authorizes a connection for.
const ACTION: &str = "kafka-cluster:Connect";
/// The SigV4 service name of MSK's data plane.
const SERVICE: &str = "kafka-cluster";
/// What courier calls itself in the token's `User-Agent` parameter, as the official
/// signers name themselves (`aws-msk-iam-sasl-signer-python/1.0.2`): MSK only logs it.
const USER_AGENT: &str = concat!("courier/", env!("CARGO_PKG_VERSION"));

/// AWS credentials: an access key and, for temporary credentials (a role's, from STS),
/// the session token. `Debug` shows the access key id (an identifier, also visible in
/// every token) and hides the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA...` for a long-term key, `ASIA...` for a temporary one).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// A long-term access key (no session token).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: None,
        }
    }

    /// The same credentials with a session token (temporary credentials).
    #[must_use]
    pub fn with_session_token(mut self, session_token: impl Into<String>) -> Self {
        self.session_token = Some(Secret::new(session_token));
        self
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set and not empty,
    /// `AWS_SESSION_TOKEN`, the variables every AWS SDK reads.
    ///
    /// # Errors
    ///
    /// [`MskIamError::EnvVar`] when the key id or secret is unset, empty or not UTF-8
    /// (the error names the variable, never its value).
    pub fn from_env() -> Result<Self, MskIamError> {
        Self::from_lookup(&|name| std::env::var_os(name))
    }

    /// [`from_env`](Self::from_env) with the environment as a function, for tests that
    /// must not change the process's environment under other threads.
    fn from_lookup(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Self, MskIamError> {
        let access_key_id = required_var(env, "AWS_ACCESS_KEY_ID")?;
        let secret_access_key = required_var(env, "AWS_SECRET_ACCESS_KEY")?;
        // An empty AWS_SESSION_TOKEN is how shells and CI systems "unset" it; the SDKs
        // take it as absent too.
        let session_token = optional_var(env, "AWS_SESSION_TOKEN")?;
        Ok(Credentials {
            access_key_id,
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
        })
    }

    /// Checks what the signers refuse too: a token signed with an empty key id or
    /// secret can only be refused by the broker, later and less clearly.
    fn check(&self) -> Result<(), MskIamError> {
        if self.access_key_id.is_empty() {
            return Err(MskIamError::EmptyCredentials {
                field: "access key id",
            });
        }
        if self.secret_access_key.expose().is_empty() {
            return Err(MskIamError::EmptyCredentials {
                field: "secret access key",
            });
        }
        Ok(())
    }
}

fn optional_var(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &'static str,
) -> Result<Option<String>, MskIamError> {
    match env(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.into_string().map(Some).map_err(|_| MskIamError::EnvVar {
            name,
            problem: "is not valid UTF-8",
        }),
    }
}

fn required_var(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &'static str,
) -> Result<String, MskIamError> {
    optional_var(env, name)?.ok_or(MskIamError::EnvVar {
        name,
        problem: "is not set (or is empty)",
    })
}

/// The future a [`CredentialsProvider`] returns.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, String>> + Send + 'a>>;

/// Where an [`MskIamTokenProvider`] gets credentials that change: asked each time a
/// token is signed. The module documentation shows one on the AWS SDK's credential
/// chain. A plain function or closure returning `Result<Credentials, String>` is one.
///
/// ```
/// use std::sync::Arc;
///
/// use courier::msk_iam::{Credentials, CredentialsProvider, MskIamTokenProvider};
///
/// // e.g. read from a file another process keeps fresh
/// let provider = MskIamTokenProvider::with_credentials_provider(
///     "us-east-1",
///     Arc::new(|| -> Result<Credentials, String> {
///         Ok(Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
///     }),
/// )?;
/// # Ok::<(), courier::msk_iam::MskIamError>(())
/// ```
pub trait CredentialsProvider: Send + Sync + 'static {
    /// Current credentials.
    fn credentials(&self) -> CredentialsFuture<'_>;
}

impl<F> CredentialsProvider for F
where
    F: Fn() -> Result<Credentials, String> + Send + Sync + 'static,
{
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(std::future::ready(self()))
    }
}

/// Why an MSK IAM token provider could not be made, or a token signed. The messages
/// name settings and variables, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MskIamError {
    /// The region is not an AWS region name.
    #[error(
        "{region:?} is not an AWS region name (lower-case letters, digits and '-', such as \
         us-east-1): give the cluster's region, the one in its brokers' names"
    )]
    InvalidRegion {
        /// The region given.
        region: String,
    },
    /// No region was given and none is in the environment.
    #[error("no AWS region: give the cluster's region, or set AWS_REGION or AWS_DEFAULT_REGION")]
    NoRegion,
    /// An environment variable is missing or unusable.
    #[error("{name} {problem}")]
    EnvVar {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The credentials have an empty access key id or secret.
    #[error("the AWS credentials have an empty {field}")]
    EmptyCredentials {
        /// Which part is empty.
        field: &'static str,
    },
    /// The application's [`CredentialsProvider`] failed.
    #[error("the AWS credentials provider failed: {0}")]
    CredentialsProvider(String),
    /// The system clock is before 1970 or after 9999: nothing signed with it is valid.
    #[error("the system clock is not set to a usable date (before 1970 or after 9999)")]
    Clock,
}

enum Source {
    Fixed(Credentials),
    Provider(Arc<dyn CredentialsProvider>),
}

/// Signs MSK IAM OAUTHBEARER tokens: give it to
/// [`ProducerConfigBuilder::oauth_token_provider`](crate::config::ProducerConfigBuilder::oauth_token_provider)
/// with `security.protocol=SASL_SSL` and `sasl.mechanism=OAUTHBEARER`. See the
/// [module documentation](self).
pub struct MskIamTokenProvider {
    region: String,
    source: Source,
}

impl fmt::Debug for MskIamTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MskIamTokenProvider");
        d.field("region", &self.region);
        match &self.source {
            Source::Fixed(c) => d.field("credentials", c),
            Source::Provider(_) => d.field("credentials", &"<application provider>"),
        };
        d.finish()
    }
}

impl MskIamTokenProvider {
    /// Signs with fixed credentials for the cluster's `region` (`eu-west-1`).
    ///
    /// # Errors
    ///
    /// [`MskIamError::InvalidRegion`] or [`MskIamError::EmptyCredentials`].
    pub fn new(region: impl Into<String>, credentials: Credentials) -> Result<Self, MskIamError> {
        credentials.check()?;
        Ok(MskIamTokenProvider {
            region: checked_region(region.into())?,
            source: Source::Fixed(credentials),
        })
    }

    /// Signs with the credentials of the environment ([`Credentials::from_env`]), for
    /// `region`, or when it is `None`, `AWS_REGION` or else `AWS_DEFAULT_REGION`.
    ///
    /// # Errors
    ///
    /// [`MskIamError::EnvVar`], [`MskIamError::NoRegion`] or
    /// [`MskIamError::InvalidRegion`].
    pub fn from_env(region: Option<&str>) -> Result<Self, MskIamError> {
        Self::from_lookup(region, &|name| std::env::var_os(name))
    }

    fn from_lookup(
        region: Option<&str>,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, MskIamError> {
        let region = match region {
            Some(r) => r.to_owned(),
            None => match optional_var(env, "AWS_REGION")? {
                Some(r) => r,
                None => optional_var(env, "AWS_DEFAULT_REGION")?.ok_or(MskIamError::NoRegion)?,
            },
        };
        Self::new(region, Credentials::from_lookup(env)?)
    }

    /// Signs with credentials from `provider`, asked each time a token is made (about
    /// every 12 minutes), for the cluster's `region`.
    ///
    /// # Errors
    ///
    /// [`MskIamError::InvalidRegion`].
    pub fn with_credentials_provider(
        region: impl Into<String>,
        provider: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, MskIamError> {
        Ok(MskIamTokenProvider {
            region: checked_region(region.into())?,
            source: Source::Provider(provider),
        })
    }

    /// The region tokens are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// A token signed now.
    ///
    /// # Errors
    ///
    /// The credentials provider's failure, empty credentials, or a clock outside
    /// 1970..=9999.
    pub async fn generate(&self) -> Result<OAuthToken, MskIamError> {
        let credentials = match &self.source {
            Source::Fixed(c) => Cow::Borrowed(c),
            Source::Provider(p) => Cow::Owned(
                p.credentials()
                    .await
                    .map_err(MskIamError::CredentialsProvider)?,
            ),
        };
        sign(&self.region, &credentials, SystemTime::now(), USER_AGENT)
    }
}

impl OAuthTokenProvider for MskIamTokenProvider {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move { self.generate().await.map_err(|e| e.to_string()) })
    }
}

/// A region name as AWS spells them (`us-east-1`, `us-gov-west-1`, `cn-north-1`). It
/// becomes part of a host name, so anything else (a dot, a slash, upper case) is
/// refused rather than signed into a token for some other host.
fn checked_region(region: String) -> Result<String, MskIamError> {
    let ok = !region.is_empty()
        && region.len() <= 63
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(region)
    } else {
        Err(MskIamError::InvalidRegion { region })
    }
}

/// The signed URL, before base64, and the SigV4 intermediates, for tests.
pub(crate) struct SignedUrl {
    pub url: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub presigned: sigv4::Presigned,
    pub date: sigv4::AmzDate,
}

/// The presigned URL for `credentials` in `region` at `at`, with `user_agent` appended
/// after the signature. `region` is taken as given (the constructors check it).
pub(crate) fn signed_url(
    region: &str,
    credentials: &Credentials,
    at: SystemTime,
    user_agent: &str,
) -> Result<SignedUrl, MskIamError> {
    credentials.check()?;
    let date = sigv4::AmzDate::new(at).ok_or(MskIamError::Clock)?;
    let host = format!("kafka.{region}.amazonaws.com");
    let request = sigv4::Request {
        method: "GET",
        host: &host,
        path: "/",
        params: &[("Action", ACTION)],
        service: SERVICE,
        region,
        expires_secs: TOKEN_LIFETIME.as_secs(),
    };
    let signer = sigv4::Signer {
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        session_token: credentials.session_token.as_ref().map(Secret::expose),
    };
    let presigned = sigv4::presign(&request, &signer, &date);
    let url = format!(
        "https://{host}/?{}&User-Agent={}",
        presigned.query,
        sigv4::uri_encode(user_agent)
    );
    Ok(SignedUrl {
        url,
        presigned,
        date,
    })
}

/// The token for `credentials` in `region` signed at `at`: where tests inject the clock
/// and the official signer's `User-Agent`.
pub(crate) fn sign(
    region: &str,
    credentials: &Credentials,
    at: SystemTime,
    user_agent: &str,
) -> Result<OAuthToken, MskIamError> {
    let signed = signed_url(region, credentials, at, user_agent)?;
    Ok(OAuthToken {
        value: Secret::new(URL_SAFE_NO_PAD.encode(signed.url)),
        // From the whole second X-Amz-Date names, as the official signers count it.
        expires_at: Some(UNIX_EPOCH + Duration::from_secs(signed.date.unix_secs) + TOKEN_LIFETIME),
    })
}
