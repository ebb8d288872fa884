//! SASL mechanisms as pure, I/O-free client state machines.
//!
//! Kafka authenticates a connection with SaslHandshake (the mechanism's name) followed by
//! one SaslAuthenticate request per client message (KIP-43, KIP-152). The connection
//! driver owns the requests; this module owns what goes in them. Each mechanism is a
//! [`Mechanism`]: the driver sends [`Mechanism::initial`] in the first SaslAuthenticate,
//! feeds every response's `auth_bytes` to [`Mechanism::step`], and sends what it returns
//! until [`Step::Done`]. A response with an error code ends the exchange: the driver asks
//! [`Mechanism::refused`] for the error to report, which adds what the mechanism learned
//! (an OAUTHBEARER status, a hint about SCRAM credentials) to the broker's message.
//!
//! ```
//! use courier::config::Secret;
//! use courier::net::sasl::{Mechanism, Plain, Step};
//!
//! let mut mechanism = Plain::new("alice", Secret::new("s3cret"));
//! let first = mechanism.initial()?; // the first SaslAuthenticate's auth_bytes
//! assert_eq!(first.as_bytes(), b"\0alice\0s3cret");
//! // The broker answered with error code 0 and empty auth_bytes:
//! assert_eq!(mechanism.step(b"")?, Step::Done);
//! # Ok::<(), courier::net::sasl::SaslError>(())
//! ```
//!
//! # The mechanisms
//!
//! * [`Plain`] (RFC 4616): one message, `\0username\0password`. The password crosses the
//!   wire as is, so only over TLS.
//! * [`Scram`] (RFC 5802, RFC 7677; Kafka's KIP-84): `SCRAM-SHA-256` and `SCRAM-SHA-512`.
//!   Client-first `n,,n=user,r=nonce`; the server answers with its nonce, a salt and an
//!   iteration count; client-final proves knowledge of the password without sending it
//!   (`c=biws,r=nonce,p=proof`); the server-final `v=signature` proves the server knows it
//!   too, and courier refuses a server that does not. Delegation tokens (KIP-48) are
//!   SCRAM with the `tokenauth=true` extension.
//! * [`OAuthBearer`] (RFC 7628, KIP-255, KIP-342): one message carrying the bearer token
//!   and SASL extensions. A refusal arrives as a JSON challenge, to which the client
//!   answers a single `0x01` before the broker fails the request (RFC 7628 §3.2.3).
//! * [`JaasConfig`]: reads the Java client's `sasl.jaas.config` for the Plain, SCRAM and
//!   OAUTHBEARER login modules, so what users paste from Confluent Cloud or a Java
//!   application works as is.
//!
//! # Secrets
//!
//! Passwords, tokens and client secrets are [`Secret`](crate::config::Secret)s, derived
//! keys never leave the SCRAM state, and [`ClientMessage`]'s `Debug` shows only a length,
//! so `tracing::debug!(?message)` cannot leak a PLAIN password. No [`SaslError`] or
//! [`JaasError`] contains a secret, whatever the input.

mod jaas;
mod oauthbearer;
mod plain;
mod scram;

use std::fmt;

pub use jaas::{JaasConfig, JaasError, JaasLogin, OAuthBearerLogin};
pub use oauthbearer::{JwtClaims, OAuthBearer, OAuthBearerToken, SaslExtensions};
pub use plain::Plain;
pub use scram::{Scram, ScramHash, MAX_ITERATIONS, MIN_ITERATIONS};

/// A client-side SASL mechanism: a state machine producing the bytes of each
/// SaslAuthenticate request from the server's previous `auth_bytes`.
///
/// The calls come in this order: [`initial`](Self::initial) once, then
/// [`step`](Self::step) with each successful response's `auth_bytes` until it returns
/// [`Step::Done`] or an error. When the broker fails a SaslAuthenticate (error code 58,
/// `SASL_AUTHENTICATION_FAILED`), the driver reports [`refused`](Self::refused) instead.
/// Calls out of that order return [`SaslError::OutOfOrder`].
pub trait Mechanism: Send {
    /// The mechanism's name, as sent in SaslHandshake (`"SCRAM-SHA-512"`).
    fn name(&self) -> &'static str;

    /// The first client message, the first SaslAuthenticate's `auth_bytes`.
    ///
    /// # Errors
    ///
    /// [`SaslError::InvalidCredentials`] when the credentials cannot be encoded (a NUL
    /// byte in a PLAIN user name, for instance), [`SaslError::Random`] when the operating
    /// system cannot provide a nonce, [`SaslError::OutOfOrder`] on a second call.
    fn initial(&mut self) -> Result<ClientMessage, SaslError>;

    /// Consumes the server's `auth_bytes` from a successful SaslAuthenticate response.
    ///
    /// # Errors
    ///
    /// [`SaslError::Refused`] when the server says no inside the exchange,
    /// [`SaslError::Malformed`] or [`SaslError::Unacceptable`] for a message courier will
    /// not go on with, [`SaslError::ServerSignatureMismatch`] when a SCRAM server cannot
    /// prove it knows the password, [`SaslError::OutOfOrder`] after the end.
    fn step(&mut self, server: &[u8]) -> Result<Step, SaslError>;

    /// The error to report when the broker failed a SaslAuthenticate request, from the
    /// response's `error_message`, with whatever this mechanism knows about why.
    fn refused(&self, broker_message: Option<&str>) -> SaslError {
        SaslError::Refused {
            mechanism: self.name(),
            reason: broker_reason(broker_message),
        }
    }
}

/// What to do after a server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this in the next SaslAuthenticate request.
    Respond(ClientMessage),
    /// Authenticated: the exchange is complete.
    Done,
}

/// The bytes of one client message (a SaslAuthenticate request's `auth_bytes`).
///
/// They may hold a secret (PLAIN's password, OAUTHBEARER's token), so `Debug` shows only
/// the length.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientMessage(Vec<u8>);

impl ClientMessage {
    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes to send, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for ClientMessage {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ClientMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientMessage(<{} bytes>)", self.0.len())
    }
}

/// Why a SASL exchange failed, in words for the user. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server refused us: wrong credentials, an expired token, an unknown user. Not
    /// worth retrying with the same credentials.
    #[error("the broker refused SASL/{mechanism} authentication: {reason}")]
    Refused {
        /// The mechanism's name.
        mechanism: &'static str,
        /// The server's reason, and what courier knows about it.
        reason: String,
    },
    /// A SCRAM server's final signature is wrong: it does not know the password, so it is
    /// not the broker the credentials were made for (RFC 5802 §3).
    #[error(
        "the broker's {mechanism} signature does not match: the broker does not know this \
         password, or something between us altered the exchange"
    )]
    ServerSignatureMismatch {
        /// The mechanism's name.
        mechanism: &'static str,
    },
    /// The server's message does not follow the mechanism's grammar.
    #[error("the broker sent a malformed SASL/{mechanism} message: {detail}")]
    Malformed {
        /// The mechanism's name.
        mechanism: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The server's message is well formed but asks for something courier refuses: too
    /// few PBKDF2 iterations (weak), too many (a denial of service), or an extension it
    /// does not know.
    #[error("the broker's SASL/{mechanism} parameters are unacceptable: {detail}")]
    Unacceptable {
        /// The mechanism's name.
        mechanism: &'static str,
        /// What was asked, and why courier will not.
        detail: String,
    },
    /// The configured credentials cannot be used with this mechanism.
    #[error("the SASL/{mechanism} credentials cannot be used: {detail}")]
    InvalidCredentials {
        /// The mechanism's name.
        mechanism: &'static str,
        /// What is wrong, without the secret itself.
        detail: String,
    },
    /// The mechanism was called out of order: a bug in the code driving it.
    #[error("SASL/{mechanism} was driven out of order: {detail} (a bug in courier)")]
    OutOfOrder {
        /// The mechanism's name.
        mechanism: &'static str,
        /// Which call came when it should not.
        detail: &'static str,
    },
    /// The operating system's random number generator failed (no SCRAM nonce).
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl SaslError {
    /// Whether the server refused the credentials (as opposed to a broken exchange).
    pub fn is_refused(&self) -> bool {
        matches!(self, SaslError::Refused { .. })
    }
}

/// The longest piece of server text courier puts in an error message.
const MAX_SERVER_TEXT: usize = 300;

/// Server text made fit for an error message: control characters replaced (they could
/// rewrite a terminal line or forge a log entry), and cut at [`MAX_SERVER_TEXT`]
/// characters so a hostile server cannot fill logs.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_SERVER_TEXT));
    for (n, c) in text.chars().enumerate() {
        if n == MAX_SERVER_TEXT {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// The broker's `error_message` for an error, or a placeholder.
pub(crate) fn broker_reason(broker_message: Option<&str>) -> String {
    match broker_message.map(str::trim) {
        Some(m) if !m.is_empty() => format!("the broker said \"{}\"", sanitize(m)),
        _ => "the broker gave no reason".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_message_debug_shows_only_the_length() {
        let m = ClientMessage(b"\0alice\0hunter2".to_vec());
        let shown = format!("{m:?} {:?}", Step::Respond(m.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<14 bytes>"), "{shown}");
    }

    #[test]
    fn sanitize_replaces_control_characters_and_caps_length() {
        assert_eq!(sanitize("a\nb\x1b[2Kc"), "a?b?[2Kc");
        let long = "x".repeat(1000);
        let s = sanitize(&long);
        assert_eq!(s.chars().count(), MAX_SERVER_TEXT + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn broker_reason_quotes_the_message_or_says_none_was_given() {
        assert_eq!(broker_reason(Some("nope")), "the broker said \"nope\"");
        assert_eq!(broker_reason(Some("  ")), "the broker gave no reason");
        assert_eq!(broker_reason(None), "the broker gave no reason");
    }
}
