//! [`NetError`]: what can go wrong between the producer and a broker, and whether the
//! request may have reached the broker.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Why a connection was closed. Shared by every request that was on it, so it is `Clone`
/// (I/O errors are held in an `Arc`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`BrokerConnection::close`](super::BrokerConnection::close) was called or the
    /// connection was dropped.
    Shutdown,
    /// The broker closed the connection (end of stream while reading).
    PeerClosed,
    /// Reading from or writing to the socket failed.
    Io(Arc<io::Error>),
    /// A request got no response within `request.timeout.ms`. Like the Java client we close
    /// the connection: on a pipelined connection a late response could no longer be
    /// trusted to line up with the request it answers.
    RequestTimeout {
        /// Correlation id of the request that timed out.
        correlation_id: i32,
        /// Name of its API, e.g. `Produce`.
        api: &'static str,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The broker sent something we cannot frame or match: a response to a request that is
    /// not the oldest in flight, an impossible frame size, an unreadable header.
    Protocol(String),
    /// The broker answered a plaintext request with TLS (it is a TLS listener).
    UnexpectedTls,
    /// Re-authenticating the session (KIP-368) failed.
    Reauthentication(String),
    /// Nothing was in flight for `connections.max.idle.ms`: closed by the client, as the
    /// Java client does, before the broker's own idle limit (10 minutes) would.
    Idle {
        /// The idle time that elapsed.
        idle: Duration,
    },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Shutdown => f.write_str("closed by the client"),
            CloseReason::PeerClosed => f.write_str("the broker closed the connection"),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::RequestTimeout {
                correlation_id,
                api,
                timeout,
            } => write!(
                f,
                "{api} request (correlation id {correlation_id}) got no response within {} ms \
                 (request.timeout.ms)",
                timeout.as_millis()
            ),
            CloseReason::Protocol(m) => write!(f, "protocol error: {m}"),
            CloseReason::UnexpectedTls => f.write_str(
                "the broker answered with TLS: it is a TLS listener (security.protocol=ssl or \
                 sasl_ssl)",
            ),
            CloseReason::Reauthentication(why) => write!(f, "re-authentication failed: {why}"),
            CloseReason::Idle { idle } => write!(
                f,
                "closed by the client after {} ms without requests (connections.max.idle.ms)",
                idle.as_millis()
            ),
        }
    }
}

/// An error of the connection layer.
///
/// Every variant answers one question the producer's delivery reports depend on:
/// [`maybe_written`](Self::maybe_written) says whether the request may have reached the
/// broker (and so a Produce may have been persisted). See the table there.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// `host:port` could not be parsed.
    #[error("invalid broker address '{addr}': expected host:port, e.g. localhost:9092")]
    InvalidAddress {
        /// The address as given.
        addr: String,
    },

    /// The host name did not resolve to any address.
    #[error(
        "could not resolve {addr}: {source} – is the host name in bootstrap.servers (or the \
         broker's advertised.listeners) right?"
    )]
    Resolve {
        /// The address as given.
        addr: String,
        /// The resolver's error.
        #[source]
        source: Arc<io::Error>,
    },

    /// The pool has no address for this broker id (metadata has not named it).
    #[error("broker {node_id} is not in the metadata: refresh metadata first")]
    UnknownBroker {
        /// The node id asked for.
        node_id: i32,
    },

    /// The TCP connection could not be established.
    #[error(
        "could not connect to {addr}: {source} – is the broker running and is \
         bootstrap.servers right?"
    )]
    Connect {
        /// The address tried.
        addr: String,
        /// The socket error, e.g. connection refused.
        #[source]
        source: Arc<io::Error>,
    },

    /// The TCP connection (or the ApiVersions handshake after it) did not complete within
    /// `socket.connection.setup.timeout.ms`.
    #[error(
        "could not connect to {addr} within {} ms (socket.connection.setup.timeout.ms) – is \
         the broker reachable from here and not overloaded?",
        timeout.as_millis()
    )]
    ConnectTimeout {
        /// The address tried.
        addr: String,
        /// The setup timeout that elapsed.
        timeout: Duration,
    },

    /// The broker answered ApiVersions with an error code (other than
    /// UNSUPPORTED_VERSION, which is handled by retrying with an older version).
    #[error("broker {addr} rejected the ApiVersions handshake with error code {error_code}")]
    Handshake {
        /// The broker's address.
        addr: String,
        /// The Kafka error code.
        error_code: i16,
    },

    /// The broker and courier have no version of an API in common (or the broker does not
    /// offer the API at all: then `broker` is `None`).
    #[error("{}", unsupported_version_message(api, *broker, *ours))]
    UnsupportedVersion {
        /// The API, e.g. `Produce`.
        api: &'static str,
        /// The versions the broker supports, `None` if it does not list the API.
        broker: Option<(i16, i16)>,
        /// The versions courier can use.
        ours: (i16, i16),
    },

    /// The request could not be encoded (e.g. a string longer than the protocol allows).
    #[error("could not encode {api} v{version} request: {message}")]
    Encode {
        /// The API.
        api: &'static str,
        /// The version asked for.
        version: i16,
        /// What the encoder said.
        message: String,
    },

    /// The request was never written to the socket: the connection was closed (or
    /// closing) before its turn came. Nothing reached the broker.
    #[error(
        "{api} request was not sent to {addr}: the connection is closed ({reason}); nothing \
         reached the broker, so it is safe to send it again"
    )]
    NotSent {
        /// The broker's address.
        addr: String,
        /// The API of the request.
        api: &'static str,
        /// Why the connection closed.
        reason: CloseReason,
    },

    /// The request got no response within `request.timeout.ms`. The connection was closed
    /// and every other request on it failed with [`NetError::ConnectionLost`] or
    /// [`NetError::NotSent`].
    #[error(
        "{api} request to {addr} got no response within {} ms (request.timeout.ms){}",
        timeout.as_millis(),
        if *written {
            "; it was sent, so the broker may have processed it"
        } else {
            "; it was never sent (the connection was stuck), so the broker did not process it"
        }
    )]
    Timeout {
        /// The broker's address.
        addr: String,
        /// The API of the request.
        api: &'static str,
        /// The timeout that elapsed.
        timeout: Duration,
        /// Whether the request had been (at least partly) written to the socket.
        written: bool,
    },

    /// The connection closed after the request was (at least partly) written and before its
    /// response arrived: the broker may or may not have processed it.
    #[error(
        "connection to {addr} closed after the {api} request was sent, before its response \
         ({reason}); outcome unknown: the broker may have processed it"
    )]
    ConnectionLost {
        /// The broker's address.
        addr: String,
        /// The API of the request.
        api: &'static str,
        /// Why the connection closed.
        reason: CloseReason,
    },

    /// TLS could not be set up with the broker; the text says what failed and which setting
    /// to change.
    #[error("{failure}")]
    Tls {
        /// The broker's address.
        addr: String,
        /// What failed.
        failure: super::tls::TlsFailure,
    },

    /// SASL authentication with the broker failed.
    #[error("SASL {mechanism} authentication with broker {addr} failed: {message}")]
    Authentication {
        /// The broker's address.
        addr: String,
        /// The mechanism, e.g. `SCRAM-SHA-512`.
        mechanism: String,
        /// What went wrong: the broker's message, or what courier found wrong.
        message: String,
        /// Whether retrying cannot help (the broker refused the credentials) rather than a
        /// hiccup (the token provider was unreachable).
        definitive: bool,
    },

    /// The response arrived but could not be decoded: the broker processed the request,
    /// and says something courier cannot read, so the connection was closed (a protocol
    /// error; the next one starts clean after the reconnect backoff).
    #[error("could not decode {api} v{version} response from {addr}: {message}")]
    Decode {
        /// The broker's address.
        addr: String,
        /// The API.
        api: &'static str,
        /// The version of the response.
        version: i16,
        /// What the decoder said.
        message: String,
    },
}

fn unsupported_version_message(api: &str, broker: Option<(i16, i16)>, ours: (i16, i16)) -> String {
    let needs = match (api, ours.0) {
        // Produce v3 is the first with RecordBatch v2 (KIP-98), Kafka 0.11.
        ("Produce", 3) => " (Kafka 0.11+)".to_string(),
        _ => String::new(),
    };
    match broker {
        Some((min, max)) => format!(
            "broker supports {api} v{min}..{max} only; courier needs v{}+{needs}",
            ours.0
        ),
        None => format!(
            "broker does not support the {api} API; courier needs v{}..{}{needs}",
            ours.0, ours.1
        ),
    }
}

impl NetError {
    /// Whether the request may have reached the broker, i.e. whether a Produce may have been
    /// persisted. `false` means it certainly did not: sending it again cannot duplicate.
    ///
    /// | variant | maybe written |
    /// |---|---|
    /// | `InvalidAddress`, `UnknownBroker`, `Resolve`, `Connect`, `ConnectTimeout`, `Handshake`, `UnsupportedVersion`, `Encode`, `NotSent` | no |
    /// | `Timeout` | its `written` field |
    /// | `ConnectionLost`, `Decode` | yes |
    ///
    /// Pass it to [`classify_transport_error`](crate::error::classify_transport_error).
    pub fn maybe_written(&self) -> bool {
        match self {
            NetError::InvalidAddress { .. }
            | NetError::UnknownBroker { .. }
            | NetError::Resolve { .. }
            | NetError::Connect { .. }
            | NetError::ConnectTimeout { .. }
            | NetError::Handshake { .. }
            | NetError::UnsupportedVersion { .. }
            | NetError::Encode { .. }
            | NetError::Tls { .. }
            | NetError::Authentication { .. }
            | NetError::NotSent { .. } => false,
            NetError::Timeout { written, .. } => *written,
            NetError::ConnectionLost { .. } | NetError::Decode { .. } => true,
        }
    }

    /// Whether retrying cannot fix this: a TLS certificate or configuration problem, TLS
    /// spoken to a plaintext port (or the reverse), or credentials the broker refused.
    pub fn is_definitive(&self) -> bool {
        match self {
            NetError::Tls { failure, .. } => failure.definitive,
            NetError::Authentication { definitive, .. } => *definitive,
            // A broker without a version of an API the producer needs will not grow one.
            NetError::UnsupportedVersion { .. } => true,
            _ => false,
        }
    }

    /// Whether the connection this error came from is closed (or was never opened): the
    /// next request needs a new connection from the pool.
    pub fn is_connection_closed(&self) -> bool {
        !matches!(
            self,
            NetError::Encode { .. } | NetError::UnsupportedVersion { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_refused_message_says_what_to_check() {
        let e = NetError::Connect {
            addr: "127.0.0.1:9092".into(),
            source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            e.to_string(),
            "could not connect to 127.0.0.1:9092: connection refused – is the broker running \
             and is bootstrap.servers right?"
        );
        assert!(!e.maybe_written());
    }

    #[test]
    fn old_broker_message_names_the_kafka_version_needed() {
        let e = NetError::UnsupportedVersion {
            api: "Produce",
            broker: Some((0, 2)),
            ours: (3, 12),
        };
        assert_eq!(
            e.to_string(),
            "broker supports Produce v0..2 only; courier needs v3+ (Kafka 0.11+)"
        );
        let missing = NetError::UnsupportedVersion {
            api: "InitProducerId",
            broker: None,
            ours: (0, 5),
        };
        assert_eq!(
            missing.to_string(),
            "broker does not support the InitProducerId API; courier needs v0..5"
        );
    }

    #[test]
    fn only_written_requests_are_maybe_written() {
        let reason = CloseReason::PeerClosed;
        let not_sent = NetError::NotSent {
            addr: "b:9092".into(),
            api: "Produce",
            reason: reason.clone(),
        };
        let lost = NetError::ConnectionLost {
            addr: "b:9092".into(),
            api: "Produce",
            reason,
        };
        let timeout = |written| NetError::Timeout {
            addr: "b:9092".into(),
            api: "Produce",
            timeout: Duration::from_secs(30),
            written,
        };
        assert!(!not_sent.maybe_written());
        assert!(lost.maybe_written());
        assert!(timeout(true).maybe_written());
        assert!(!timeout(false).maybe_written());
        assert!(timeout(true).to_string().contains("may have processed it"));
        assert!(timeout(false).to_string().contains("never sent"));
    }
}
