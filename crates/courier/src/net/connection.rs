//! [`BrokerConnection`]: one pipelined TCP connection to one broker.
//!
//! # Design
//!
//! Callers encode their request (with a fresh correlation id) and hand it to the
//! connection's single **writer task** through a channel, so requests reach the socket in
//! the order they were submitted. The writer registers each request that expects a response
//! in the in-flight queue *before* writing it (a fast broker may answer before the write
//! call returns), then writes every queued request with one vectored write: record batches
//! are chained into the write, never copied.
//!
//! The single **reader task** reads response frames. Kafka answers the requests of one
//! connection in order, so each response must carry the correlation id of the oldest
//! request in flight; anything else means the stream can no longer be trusted and the
//! connection is closed (Java's `NetworkClient.correlate` does the same).
//!
//! Every request is in one of three places, and a closing connection fails each with the
//! error its place implies:
//!
//! | where | on close | [`NetError::maybe_written`] |
//! |---|---|---|
//! | queued for the writer | [`NetError::NotSent`] | `false` |
//! | being written, or written and awaiting its response | [`NetError::ConnectionLost`] | `true` |
//! | the one whose timeout closed the connection | [`NetError::Timeout`] | whether its write had started |
//!
//! `request.timeout.ms` counts from submission and is enforced by the connection's
//! **watchdog task**: when the oldest request's time is up the connection is closed (a late
//! response could not be matched safely), as the Java client does. Every request gets the
//! same timeout, so the oldest request always expires first and one timer per connection
//! does the work of one per request.
//!
//! The in-flight window (`max.in.flight.requests.per.connection`) is a semaphore: a slot
//! is taken before a request is queued and freed when its outcome is known. The producer
//! core can reserve slots without waiting ([`BrokerConnection::try_reserve`]) and queue a
//! Produce at once, either with [`BrokerConnection::start_produce`], which returns a
//! spawnable future, or with [`BrokerConnection::produce_with`], which calls a function
//! with the outcome on the connection task that learns it (no task waits per request). The
//! order of those calls is the write order.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use courier_core::wire;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use super::authenticate::{
    reauthenticate_after, SaslAuth, SaslAuthenticator, SaslTransport, Session,
};
use super::codec::{self, ProduceRequestParts, Segments};
use super::stream::{BrokerStream, ReadHalf, WriteHalf};
use super::tls::TlsConnector;
use super::versions::{api_name, ApiVersionTable, FinalizedFeatures, API_VERSIONS_FIRST};
use super::{CloseReason, NetCounters, NetError};
use crate::config::ProducerConfig;

/// Kafka's `UNSUPPORTED_VERSION` error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// Largest response frame accepted: the broker's own default request limit
/// (`socket.request.max.bytes`, 100 MiB). A bigger size prefix means a corrupt stream.
const MAX_RESPONSE_SIZE: usize = 100 * 1024 * 1024;

/// At most this many queued requests are coalesced into one vectored write.
const MAX_REQUESTS_PER_WRITE: usize = 32;

/// How a [`BrokerConnection`] connects and behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `client.id`: sent in every request header; brokers use it in logs and quotas.
    pub client_id: String,
    /// `socket.connection.setup.timeout.ms`: bounds name resolution, the TCP connect and
    /// the ApiVersions handshake together.
    pub connect_timeout: Duration,
    /// `socket.connection.setup.timeout.max.ms`: the [`ConnectionPool`](super::ConnectionPool)
    /// doubles the setup timeout per consecutive failure up to this (KIP-601).
    pub connect_timeout_max: Duration,
    /// `request.timeout.ms`: how long one request may wait for its response (including
    /// waiting for its turn to be written) before the connection is closed.
    pub request_timeout: Duration,
    /// `max.in.flight.requests.per.connection`: requests submitted and not yet answered.
    /// Counts every request, as in the Java client (Metadata too).
    pub max_in_flight: usize,
    /// `security.protocol=ssl`/`sasl_ssl`: the TLS session to open on each connection.
    pub tls: Option<TlsConnector>,
    /// `security.protocol=sasl_*`: how each connection authenticates.
    pub sasl: Option<SaslAuth>,
    /// `connections.max.idle.ms`: a connection with nothing in flight for this long is
    /// closed ([`CloseReason::Idle`]); `None` keeps idle connections open. The watchdog
    /// notices within one `request_timeout` (it wakes no more often, so a busy connection
    /// pays nothing for the check).
    pub idle_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    /// The Java client's defaults: 10 s setup (growing to 30 s), 30 s request timeout,
    /// 5 in flight, idle connections closed after 9 minutes.
    fn default() -> Self {
        ConnectOptions {
            client_id: "courier".into(),
            connect_timeout: Duration::from_secs(10),
            connect_timeout_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            tls: None,
            sasl: None,
            idle_timeout: Some(Duration::from_secs(9 * 60)),
        }
    }
}

impl ConnectOptions {
    /// The options a producer configuration asks for. Fails only if its TLS settings cannot
    /// make a TLS client (the configuration's own checks catch that first).
    pub fn from_config(config: &ProducerConfig) -> Result<Self, NetError> {
        Ok(ConnectOptions {
            client_id: config.client_id().to_owned(),
            connect_timeout: config.socket_connection_setup_timeout(),
            connect_timeout_max: config.socket_connection_setup_timeout_max(),
            request_timeout: config.request_timeout(),
            max_in_flight: config.max_in_flight_requests_per_connection() as usize,
            tls: config.tls().map(TlsConnector::new).transpose()?,
            sasl: config
                .sasl()
                .map(|s| SaslAuthenticator::new(s, config.tls()).map(|a| SaslAuth(Arc::new(a))))
                .transpose()?,
            idle_timeout: Some(config.connections_max_idle()).filter(|d| !d.is_zero()),
        })
    }
}

/// One slot of a connection's in-flight window, reserved ahead of a send with
/// [`BrokerConnection::reserve`] or [`BrokerConnection::try_reserve`]. Dropping it frees the
/// slot.
#[derive(Debug)]
pub struct InFlightPermit {
    permit: OwnedSemaphorePermit,
    connection_id: u64,
}

/// What the writer hands back: the response frame after its size prefix (response header
/// included), or `None` for a request that expects no response (`acks=0`).
type Reply = Result<Option<Bytes>, NetError>;

/// A function that takes a request's outcome and the connection's shared state.
type OnReply = Box<dyn FnOnce(Reply, &Shared) + Send>;

/// Where a request's outcome goes.
enum ReplyTo {
    /// A caller awaiting a future.
    Channel(oneshot::Sender<Reply>),
    /// Called on the connection task that learns the outcome (the reader, for a response),
    /// with the connection's address: no task has to wake up just to pass the outcome on.
    Call(OnReply),
}

impl ReplyTo {
    fn send(self, reply: Reply, shared: &Shared) {
        match self {
            ReplyTo::Channel(tx) => {
                let _ = tx.send(reply);
            }
            ReplyTo::Call(f) => f(reply, shared),
        }
    }
}

/// A request written (or being written) and waiting for its response.
struct Pending {
    correlation_id: i32,
    api: &'static str,
    reply: ReplyTo,
    /// Held until the response arrives: the in-flight window counts this request. `None`
    /// for the SASL requests of a re-authentication, which the writer sends on its own
    /// (the window may be full of requests waiting for it to finish).
    permit: Option<OwnedSemaphorePermit>,
    /// Submission time plus `request.timeout.ms`.
    deadline: tokio::time::Instant,
}

impl Pending {
    /// Frees the window slot, then answers: a caller woken by the answer must already see
    /// the slot free (it may reserve again at once).
    fn complete(self, reply: Reply, shared: &Shared) {
        let Pending {
            reply: tx, permit, ..
        } = self;
        drop(permit);
        tx.send(reply, shared);
    }
}

/// The request whose timeout the watchdog waits for.
#[derive(Clone, Copy)]
struct Deadline {
    at: tokio::time::Instant,
    correlation_id: i32,
    api: &'static str,
}

/// A request queued for the writer. If it is dropped before being answered (the writer
/// task was aborted when the connection closed), `Drop` fails it with the error that fits
/// how far it got.
struct Outgoing {
    correlation_id: i32,
    api: &'static str,
    frame: Segments,
    expects_response: bool,
    reply: Option<ReplyTo>,
    permit: Option<OwnedSemaphorePermit>,
    write_started: bool,
    deadline: tokio::time::Instant,
    shared: Arc<Shared>,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let reason = self.shared.close_reason().unwrap_or(CloseReason::Shutdown);
            let err =
                self.shared
                    .error_for(self.correlation_id, self.api, self.write_started, &reason);
            reply.send(Err(err), &self.shared);
        }
    }
}

struct State {
    closed: Option<(CloseReason, Instant)>,
    /// Requests written (or being written) and awaiting a response, oldest first.
    in_flight: VecDeque<Pending>,
    /// The oldest request of a write under way that includes requests expecting no
    /// response (`acks=0`): those are not in `in_flight`, yet a stalled write must time out.
    writing: Option<Deadline>,
    tasks: Vec<AbortHandle>,
    /// When a request was last queued or answered (`connections.max.idle.ms` counts from
    /// here).
    last_active: tokio::time::Instant,
}

/// What the connection's tasks and its handle share.
struct Shared {
    addr: String,
    request_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_in_flight: usize,
    counters: Option<Arc<NetCounters>>,
    next_correlation_id: AtomicI32,
    client_id: String,
    /// When and how to re-authenticate (KIP-368), once the broker announced a session
    /// lifetime; the writer does it.
    reauth: Mutex<Option<Reauth>>,
    /// How the connection is secured, for `courier doctor` and logs.
    security: Mutex<String>,
    state: Mutex<State>,
    window: Arc<Semaphore>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // matters more than failing the connection, which every path does anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close_reason(&self) -> Option<CloseReason> {
        self.lock().closed.as_ref().map(|(r, _)| r.clone())
    }

    /// The error for a request that never reached the writer.
    fn not_sent(&self, api: &'static str) -> NetError {
        NetError::NotSent {
            addr: self.addr.clone(),
            api,
            reason: self.close_reason().unwrap_or(CloseReason::Shutdown),
        }
    }

    fn error_for(
        &self,
        correlation_id: i32,
        api: &'static str,
        written: bool,
        reason: &CloseReason,
    ) -> NetError {
        let addr = self.addr.clone();
        match reason {
            CloseReason::RequestTimeout {
                correlation_id: timed_out,
                timeout,
                ..
            } if *timed_out == correlation_id => NetError::Timeout {
                addr,
                api,
                timeout: *timeout,
                written,
            },
            _ if written => NetError::ConnectionLost {
                addr,
                api,
                reason: reason.clone(),
            },
            _ => NetError::NotSent {
                addr,
                api,
                reason: reason.clone(),
            },
        }
    }

    /// Closes the connection once: fails every request in flight, stops both tasks (which
    /// closes the socket and fails every queued request through `Outgoing::drop`).
    fn close(&self, reason: CloseReason) {
        let (pending, tasks) = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some((reason.clone(), Instant::now()));
            (
                std::mem::take(&mut st.in_flight),
                std::mem::take(&mut st.tasks),
            )
        };
        self.window.close();
        if let Some(c) = &self.counters {
            c.closed(&reason);
        }
        match &reason {
            CloseReason::Shutdown | CloseReason::Idle { .. } => tracing::debug!(
                broker = %self.addr, in_flight = pending.len(), reason = %reason,
                "connection closed"
            ),
            CloseReason::PeerClosed | CloseReason::Io(_) => tracing::info!(
                broker = %self.addr, in_flight = pending.len(), reason = %reason,
                "connection closed"
            ),
            _ => tracing::warn!(
                broker = %self.addr, in_flight = pending.len(), reason = %reason,
                "connection closed"
            ),
        }
        for p in pending {
            let err = self.error_for(p.correlation_id, p.api, true, &reason);
            p.complete(Err(err), self);
        }
        for t in tasks {
            t.abort();
        }
    }
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// One TCP connection to one broker, with ApiVersions negotiated and requests pipelined.
///
/// Cheap to share behind an `Arc` (the [`ConnectionPool`](super::ConnectionPool) hands out
/// `Arc<BrokerConnection>`); every method takes `&self`. Dropping the last handle closes
/// the socket and fails whatever is still in flight.
pub struct BrokerConnection {
    id: u64,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    client_id: String,
    max_in_flight: usize,
    peer: SocketAddr,
    /// Set by [`shutdown`](Self::shutdown): no new reservations.
    draining: AtomicBool,
    /// Set once the ApiVersions handshake completes; only ApiVersions is sent before.
    versions: OnceLock<ApiVersionTable>,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("addr", &self.shared.addr)
            .field("peer", &self.peer)
            .field("in_flight", &self.in_flight())
            .field("closed", &self.close_reason())
            .finish()
    }
}

impl BrokerConnection {
    /// Connects to `addr` (`host:port`), sets TCP_NODELAY and negotiates API versions
    /// (KIP-35), all within `opts.connect_timeout`.
    ///
    /// ApiVersions is sent as v3 (flexible, KIP-482) carrying the client software name
    /// `courier` and its version (KIP-511). A broker that does not know v3 answers with a
    /// v0 response holding UNSUPPORTED_VERSION and the ApiVersions versions it does know;
    /// we retry with its highest, as the Java client does.
    pub async fn connect(addr: &str, opts: &ConnectOptions) -> Result<BrokerConnection, NetError> {
        Self::connect_counted(addr, opts, None).await
    }

    /// [`connect`](Self::connect), counting what happens to the connection in `counters`
    /// (the pool's).
    pub(crate) async fn connect_counted(
        addr: &str,
        opts: &ConnectOptions,
        counters: Option<Arc<NetCounters>>,
    ) -> Result<BrokerConnection, NetError> {
        let deadline = tokio::time::Instant::now() + opts.connect_timeout;
        let timed_out = || NetError::ConnectTimeout {
            addr: addr.to_owned(),
            timeout: opts.connect_timeout,
        };
        let stream = tokio::time::timeout_at(deadline, open_socket(addr))
            .await
            .map_err(|_| timed_out())??;
        let peer = stream.peer_addr().map_err(|e| NetError::Connect {
            addr: addr.to_owned(),
            source: Arc::new(e),
        })?;
        tracing::debug!(broker = %addr, %peer, "TCP connected");
        let mut tls_summary = None;
        let stream = match &opts.tls {
            None => BrokerStream::Plain(stream),
            Some(tls) => {
                let session = tokio::time::timeout_at(deadline, tls.connect(addr, stream))
                    .await
                    .map_err(|_| timed_out())??;
                let (_, state) = session.get_ref();
                tls_summary = Some(format!(
                    "{}, {}, broker certificate {}",
                    state
                        .protocol_version()
                        .and_then(|v| v.as_str())
                        .unwrap_or("TLS"),
                    state
                        .negotiated_cipher_suite()
                        .and_then(|c| c.suite().as_str())
                        .unwrap_or("unknown cipher suite"),
                    tls.checks()
                ));
                tracing::debug!(broker = %addr, "TLS session established");
                BrokerStream::Tls(Box::new(session))
            }
        };
        let conn = Self::start(addr, stream, peer, opts, counters);
        match tokio::time::timeout_at(deadline, conn.negotiate_versions()).await {
            Ok(Ok(versions)) => {
                tracing::debug!(
                    broker = %addr,
                    produce = ?versions.range(ApiKey::Produce).ok(),
                    metadata = ?versions.range(ApiKey::Metadata).ok(),
                    init_producer_id = ?versions.range(ApiKey::InitProducerId).ok(),
                    api_versions = ?versions.range(ApiKey::ApiVersions).ok(),
                    end_txn = ?versions.range(ApiKey::EndTxn).ok(),
                    finalized_features_epoch = versions.finalized_features().epoch,
                    transaction_version = ?versions.finalized_features().transaction_version(),
                    "negotiated API versions (ApiVersions)"
                );
                let _ = conn.versions.set(versions);
            }
            Ok(Err(e)) => return Err(security_mismatch(addr, opts, e)),
            Err(_) => return Err(timed_out()),
        }
        if let Some(sasl) = &opts.sasl {
            let mut transport = ConnectTransport(&conn);
            let exchange = sasl.0.exchange(addr, &mut transport);
            let session = tokio::time::timeout_at(deadline, exchange)
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| security_mismatch(addr, opts, e))?;
            tracing::debug!(
                broker = %addr,
                mechanism = sasl.0.mechanism_name(),
                session_lifetime_ms = session.lifetime.map(|l| l.as_millis() as u64),
                "SASL authenticated"
            );
            conn.plan_reauthentication(sasl, session);
            *conn
                .shared
                .security
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = format!(
                "{}; SASL {} authenticated{}",
                tls_summary.as_deref().unwrap_or("no TLS"),
                sasl.0.mechanism_name(),
                match session.lifetime {
                    Some(l) => format!(
                        ", session lifetime {} ms (re-authenticated in place before it ends)",
                        l.as_millis()
                    ),
                    None => String::new(),
                }
            );
        } else if let Some(t) = tls_summary {
            *conn
                .shared
                .security
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = format!("{t}; no SASL");
        }
        Ok(conn)
    }

    /// Arranges the next KIP-368 re-authentication, if the session has a lifetime.
    fn plan_reauthentication(&self, sasl: &SaslAuth, session: Session) {
        let Some(lifetime) = session.lifetime else {
            return;
        };
        let versions = self.versions();
        let (Ok(handshake), Ok(authenticate)) = (
            versions.version(ApiKey::SaslHandshake),
            versions.version(ApiKey::SaslAuthenticate),
        ) else {
            return;
        };
        let unit = (self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let after = reauthenticate_after(lifetime, unit);
        *self.shared.reauth.lock().unwrap_or_else(|e| e.into_inner()) = Some(Reauth {
            at: tokio::time::Instant::now() + after,
            auth: sasl.clone(),
            handshake,
            authenticate,
        });
    }

    /// Wraps a connected socket and spawns its writer and reader tasks.
    fn start(
        addr: &str,
        stream: BrokerStream,
        peer: SocketAddr,
        opts: &ConnectOptions,
        counters: Option<Arc<NetCounters>>,
    ) -> Self {
        let max_in_flight = opts.max_in_flight.max(1);
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            request_timeout: opts.request_timeout,
            idle_timeout: opts.idle_timeout,
            max_in_flight,
            counters,
            next_correlation_id: AtomicI32::new(0),
            client_id: opts.client_id.clone(),
            reauth: Mutex::new(None),
            security: Mutex::new("plaintext, no authentication".into()),
            state: Mutex::new(State {
                closed: None,
                in_flight: VecDeque::new(),
                writing: None,
                tasks: Vec::new(),
                last_active: tokio::time::Instant::now(),
            }),
            window: Arc::new(Semaphore::new(max_in_flight)),
        });
        let (read_half, write_half) = stream.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(shared.clone(), write_half, rx));
        let reader = tokio::spawn(read_loop(shared.clone(), read_half));
        let watchdog = tokio::spawn(watch_timeouts(shared.clone()));
        {
            let mut st = shared.lock();
            // The reader may already have closed the connection (the broker hung up).
            for task in [writer, reader, watchdog] {
                if st.closed.is_some() {
                    task.abort();
                } else {
                    st.tasks.push(task.abort_handle());
                }
            }
        }
        BrokerConnection {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            shared,
            tx,
            client_id: opts.client_id.clone(),
            max_in_flight,
            peer,
            draining: AtomicBool::new(false),
            versions: OnceLock::new(),
        }
    }

    async fn negotiate_versions(&self) -> Result<ApiVersionTable, NetError> {
        let mut version = API_VERSIONS_FIRST;
        loop {
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("courier"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let permit = self.own_permit(self.reserve_for("ApiVersions").await?);
            let body = self
                .roundtrip(permit, "ApiVersions", true, |cid| {
                    codec::encode_request(&req, version, cid, &self.client_id, "ApiVersions")
                        .map(single_segment)
                })
                .await?
                .expect("ApiVersions expects a response");
            // ApiVersions responses always use header v0 (KIP-511), so the error code
            // follows the correlation id in every version: an UNSUPPORTED_VERSION answer is
            // a v0 body, whatever was asked.
            let (resp, answered) = wire::ResponseHeader::decode(&body, 0)
                .and_then(|(_, b)| wire::ApiVersionsResponse::decode_negotiating(b, version))
                .map_err(|e| self.protocol_error("ApiVersions", version, e))?;
            if resp.error_code == UNSUPPORTED_VERSION && version > 0 {
                let broker_max = resp
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version);
                // Never retry with the same or a newer version: that would loop.
                let next = broker_max.clamp(0, version - 1);
                tracing::debug!(
                    broker = %self.shared.addr, tried = version, next,
                    "broker does not support this ApiVersions version; retrying"
                );
                version = next;
                continue;
            }
            if resp.error_code != 0 {
                return Err(NetError::Handshake {
                    addr: self.shared.addr.clone(),
                    error_code: resp.error_code,
                });
            }
            let finalized = FinalizedFeatures::from_wire(&resp)
                .map_err(|message| invalid_reply(&self.shared, "ApiVersions", answered, message))?;
            return ApiVersionTable::from_wire(&resp, finalized);
        }
    }

    /// How the connection is secured: TLS version, cipher suite and checks, SASL mechanism
    /// and session lifetime.
    pub fn security(&self) -> String {
        self.shared
            .security
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The address this connection was opened with (`host:port`).
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// The socket address of the broker.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The versions negotiated with this broker.
    pub fn versions(&self) -> &ApiVersionTable {
        static NONE_YET: ApiVersionTable = ApiVersionTable::EMPTY;
        self.versions.get().unwrap_or(&NONE_YET)
    }

    /// The highest version of `key` both sides support.
    pub fn version(&self, key: ApiKey) -> Result<i16, NetError> {
        self.versions().version(key)
    }

    /// The cluster's finalized features as this broker reported them when the
    /// connection opened (ApiVersions v3+; [`FinalizedFeatures::NONE`] before the
    /// handshake or from a broker that reports none).
    pub fn finalized_features(&self) -> &FinalizedFeatures {
        self.versions().finalized_features()
    }

    /// Requests submitted and not yet answered (or written, for `acks=0`), plus reserved
    /// permits.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.shared.window.available_permits())
    }

    /// `max.in.flight.requests.per.connection` for this connection.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Whether another request may be sent now without waiting for a slot.
    pub fn has_capacity(&self) -> bool {
        !self.is_closed()
            && !self.draining.load(Ordering::Acquire)
            && self.shared.window.available_permits() > 0
    }

    /// Whether the connection is closed; a closed connection never reopens.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Why the connection closed, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close_reason()
    }

    /// When the connection closed, if it did (the pool's reconnect backoff counts from
    /// here).
    pub fn closed_at(&self) -> Option<Instant> {
        self.shared.lock().closed.as_ref().map(|(_, at)| *at)
    }

    /// Closes the connection: requests in flight fail with [`NetError::ConnectionLost`],
    /// queued ones with [`NetError::NotSent`].
    pub fn close(&self) {
        self.shared.close(CloseReason::Shutdown);
    }

    /// Closes the connection cleanly: refuses new reservations at once
    /// ([`NetError::NotSent`]), waits up to `timeout` for every request already in the
    /// window to complete, then closes. Returns whether everything completed in time;
    /// whatever is still in flight then fails as [`close`](Self::close) describes.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.draining.store(true, Ordering::Release);
        // The semaphore is fair: this waits behind reservations made before the drain
        // began, and gets every slot once all requests are answered.
        let all = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(timeout, self.shared.window.acquire_many(all))
            .await
            .is_ok_and(|r| r.is_ok());
        self.shared.close(CloseReason::Shutdown);
        drained
    }

    /// Waits for a slot in the in-flight window. Fails with [`NetError::NotSent`] if the
    /// connection closes first.
    pub async fn reserve(&self) -> Result<InFlightPermit, NetError> {
        self.reserve_for("request").await
    }

    async fn reserve_for(&self, api: &'static str) -> Result<InFlightPermit, NetError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(self.not_sent(api));
        }
        match self.shared.window.clone().acquire_owned().await {
            Ok(permit) => Ok(InFlightPermit {
                permit,
                connection_id: self.id,
            }),
            Err(_) => Err(self.not_sent(api)),
        }
    }

    /// Takes a slot in the in-flight window if one is free now.
    pub fn try_reserve(&self) -> Option<InFlightPermit> {
        if self.draining.load(Ordering::Acquire) {
            return None;
        }
        self.shared
            .window
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| InFlightPermit {
                permit,
                connection_id: self.id,
            })
    }

    /// Sends a control-plane request (Metadata, InitProducerId, ...) at `version` and
    /// decodes its response. Waits for a slot in the in-flight window first.
    ///
    /// Produce requests go through [`send_produce`](Self::send_produce), which does not
    /// copy record batches and knows that `acks=0` has no response.
    ///
    /// The request is encoded with `kafka-protocol`; the response `A` is decoded with
    /// courier's own bounded decoders ([`courier_core::wire`]), which no length from the
    /// wire can make allocate more than the frame warrants. A reply that does not decode
    /// closes the connection (a protocol error) and fails this request as maybe written.
    pub async fn send<R: Request, A: wire::Response>(
        &self,
        req: R,
        version: i16,
    ) -> Result<A, NetError> {
        let api = ApiKey::try_from(R::KEY).map_or("request", api_name);
        let permit = self.reserve_for(api).await?;
        self.send_reserved(permit, req, version).await
    }

    /// [`send`](Self::send) with a slot reserved earlier.
    pub async fn send_reserved<R: Request, A: wire::Response>(
        &self,
        permit: InFlightPermit,
        req: R,
        version: i16,
    ) -> Result<A, NetError> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| NetError::Encode {
            api: "request",
            version,
            message: format!("unknown API key {}", R::KEY),
        })?;
        let api = api_name(key);
        if A::API_KEY != R::KEY {
            return Err(NetError::Encode {
                api,
                version,
                message: format!("a {} response cannot answer a {api} request", A::NAME),
            });
        }
        if key == ApiKey::Produce {
            return Err(NetError::Encode {
                api,
                version,
                message: "Produce goes through send_produce (zero-copy, acks=0 aware)".into(),
            });
        }
        self.check_version(key, version)?;
        let permit = self.own_permit(permit);
        let body = self
            .roundtrip(permit, api, true, |cid| {
                codec::encode_request(&req, version, cid, &self.client_id, api).map(single_segment)
            })
            .await?
            .ok_or_else(|| self.not_sent(api))?;
        decode_body(&self.shared, body, version, api)
    }

    /// Sends a Produce request at the highest negotiated version, waiting for a slot in
    /// the in-flight window first. Returns `None` for `acks=0` (Kafka sends no response:
    /// the request is done once written).
    pub async fn send_produce(
        &self,
        parts: ProduceRequestParts,
    ) -> Result<Option<wire::ProduceResponse>, NetError> {
        let permit = self.reserve_for("Produce").await?;
        self.start_produce(permit, parts).await
    }

    /// Queues a Produce request now, in a slot reserved earlier (e.g. with
    /// [`try_reserve`](Self::try_reserve)), and returns a future for its outcome.
    ///
    /// The request is encoded and queued before this returns, so requests started one
    /// after the other are written in that order whenever their futures are polled; the
    /// future owns everything it needs (`Send + 'static`), so it can be spawned. The
    /// `request.timeout.ms` clock starts now.
    pub fn start_produce(
        &self,
        permit: InFlightPermit,
        parts: ProduceRequestParts,
    ) -> impl Future<Output = Result<Option<wire::ProduceResponse>, NetError>> + Send + 'static
    {
        let (tx, rx) = oneshot::channel();
        self.produce_with(permit, parts, move |outcome| {
            let _ = tx.send(outcome);
        });
        let shared = self.shared.clone();
        async move { rx.await.unwrap_or_else(|_| Err(shared.not_sent("Produce"))) }
    }

    /// Queues a Produce request now, in a slot reserved earlier, and calls `on_done` with
    /// its outcome: `None` once written for `acks=0`, else the decoded response or the
    /// error.
    ///
    /// `on_done` runs exactly once, on whichever task learns the outcome: the caller's
    /// (if encoding fails or the connection is closed), the connection's reader (a
    /// response), writer (an `acks=0` request written) or whichever closes the connection,
    /// which can be a thread dropping the last handle, even inside the pool. It must be
    /// quick, must not block and must not call into this connection or the pool: passing
    /// the outcome to a channel is the intended use. Nothing waits per
    /// request, which saves a task wake-up per request over
    /// [`start_produce`](Self::start_produce). The write order and the
    /// `request.timeout.ms` clock are as there.
    pub fn produce_with(
        &self,
        permit: InFlightPermit,
        parts: ProduceRequestParts,
        on_done: impl FnOnce(Result<Option<wire::ProduceResponse>, NetError>) + Send + 'static,
    ) {
        self.produce_within(permit, parts, 0..=i16::MAX, on_done)
    }

    /// [`produce_with`](Self::produce_with) at the highest version that both sides speak
    /// and that lies within `allowed`. A transactional producer needs this: the Produce
    /// version tells the broker which transaction protocol the batch follows (v12 and up
    /// add the partition to the transaction themselves, KIP-890), so a transaction
    /// version 1 producer must stay at v11 or below, and a version 2 one at v12 or above.
    /// No common version within `allowed` fails the request with
    /// [`NetError::UnsupportedVersion`], before anything is written.
    pub fn produce_within(
        &self,
        permit: InFlightPermit,
        parts: ProduceRequestParts,
        allowed: std::ops::RangeInclusive<i16>,
        on_done: impl FnOnce(Result<Option<wire::ProduceResponse>, NetError>) + Send + 'static,
    ) {
        let permit = self.own_permit(permit);
        let version = match self.versions().range(ApiKey::Produce) {
            Ok((lo, hi)) => {
                let v = hi.min(*allowed.end());
                if v < lo || v < *allowed.start() {
                    return on_done(Err(NetError::UnsupportedVersion {
                        api: "Produce",
                        broker: self.versions().broker_range(ApiKey::Produce),
                        ours: (lo.max(*allowed.start()), hi.min(*allowed.end())),
                    }));
                }
                v
            }
            Err(e) => return on_done(Err(e)),
        };
        let correlation_id = self.next_correlation_id();
        let frame = match codec::encode_produce(&parts, version, correlation_id, &self.client_id) {
            Ok(f) => f,
            Err(e) => return on_done(Err(e)),
        };
        // The batches live on in the encoded frame; `parts` itself is not needed anymore.
        let expects_response = parts.acks != 0;
        drop(parts);
        let reply = ReplyTo::Call(Box::new(move |reply: Reply, shared: &Shared| {
            on_done(reply.and_then(|body| {
                body.map(|b| decode_body(shared, b, version, "Produce"))
                    .transpose()
            }))
        }));
        self.enqueue(
            correlation_id,
            "Produce",
            frame,
            expects_response,
            permit,
            reply,
        );
    }

    fn own_permit(&self, permit: InFlightPermit) -> OwnedSemaphorePermit {
        assert_eq!(
            permit.connection_id, self.id,
            "InFlightPermit used on a connection other than the one that issued it"
        );
        permit.permit
    }

    fn check_version(&self, key: ApiKey, version: i16) -> Result<(), NetError> {
        let (min, max) = self.versions().range(key)?;
        if (min..=max).contains(&version) {
            Ok(())
        } else {
            Err(NetError::UnsupportedVersion {
                api: api_name(key),
                broker: self.versions().broker_range(key),
                ours: (version, version),
            })
        }
    }

    fn not_sent(&self, api: &'static str) -> NetError {
        self.shared.not_sent(api)
    }

    /// A fresh correlation id. They only need to be unique among the requests in flight;
    /// wrapping is fine (the window is tiny compared with 2^32).
    fn next_correlation_id(&self) -> i32 {
        self.shared
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed)
    }

    /// Queues an encoded request for the writer; `reply` gets its outcome.
    fn enqueue(
        &self,
        correlation_id: i32,
        api: &'static str,
        frame: Segments,
        expects_response: bool,
        permit: OwnedSemaphorePermit,
        reply: ReplyTo,
    ) {
        let out = Outgoing {
            correlation_id,
            api,
            frame,
            expects_response,
            reply: Some(reply),
            permit: Some(permit),
            write_started: false,
            deadline: tokio::time::Instant::now() + self.shared.request_timeout,
            shared: self.shared.clone(),
        };
        // Queued under the state lock, and only while the connection is open: `close`
        // sets `closed` under the same lock before it stops the writer, whose queue is
        // then emptied and every request in it answered. Without the lock a send could
        // pass the channel's own closed check and land after that emptying, unanswered
        // for as long as a handle to the connection lives (the watchdog is gone by then).
        let refused = {
            let mut st = self.shared.lock();
            if st.closed.is_some() {
                Some(out)
            } else {
                st.last_active = tokio::time::Instant::now();
                self.tx.send(out).err().map(|e| e.0)
            }
        };
        // Dropped outside the lock (its `Drop` takes it): answers NotSent.
        drop(refused);
    }

    /// Encodes a request with a fresh correlation id and queues it for the writer.
    fn submit(
        &self,
        permit: OwnedSemaphorePermit,
        api: &'static str,
        expects_response: bool,
        encode: impl FnOnce(i32) -> Result<Segments, NetError>,
    ) -> Result<Submitted, NetError> {
        let correlation_id = self.next_correlation_id();
        let frame = encode(correlation_id)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        self.enqueue(
            correlation_id,
            api,
            frame,
            expects_response,
            permit,
            ReplyTo::Channel(reply_tx),
        );
        Ok(Submitted {
            api,
            reply: reply_rx,
            shared: self.shared.clone(),
        })
    }

    /// Queues one request and waits for its reply.
    async fn roundtrip(
        &self,
        permit: OwnedSemaphorePermit,
        api: &'static str,
        expects_response: bool,
        encode: impl FnOnce(i32) -> Result<Segments, NetError>,
    ) -> Result<Option<Bytes>, NetError> {
        self.submit(permit, api, expects_response, encode)?
            .wait()
            .await
    }

    /// Closes the connection for a reply that does not decode and returns the error for
    /// the request it answered.
    fn protocol_error(&self, api: &'static str, version: i16, e: wire::DecodeError) -> NetError {
        protocol_error(&self.shared, api, version, e)
    }
}

/// A request queued on a connection, waiting for its reply.
struct Submitted {
    api: &'static str,
    reply: oneshot::Receiver<Reply>,
    shared: Arc<Shared>,
}

impl Submitted {
    /// Waits for the reply. Every request gets one, at the latest when the watchdog closes
    /// the connection at `request.timeout.ms`.
    async fn wait(self) -> Result<Option<Bytes>, NetError> {
        match self.reply.await {
            Ok(reply) => reply,
            Err(_) => Err(self.shared.not_sent(self.api)),
        }
    }
}

fn decode_error(addr: &str, api: &'static str, version: i16, message: String) -> NetError {
    NetError::Decode {
        addr: addr.to_owned(),
        api,
        version,
        message,
    }
}

/// Decodes a response frame (after its size prefix): header, then body, with courier's
/// bounded decoders. A frame that does not decode is a protocol error: the connection is
/// closed (the broker sends what courier cannot read; the next connection may be better,
/// after the reconnect backoff) and the request fails as maybe written.
fn decode_body<T: wire::Response>(
    shared: &Shared,
    body: Bytes,
    version: i16,
    api: &'static str,
) -> Result<T, NetError> {
    wire::decode_response::<T>(&body, version)
        .map(|(_, r)| r)
        .map_err(|e| protocol_error(shared, api, version, e))
}

fn protocol_error(
    shared: &Shared,
    api: &'static str,
    version: i16,
    e: wire::DecodeError,
) -> NetError {
    let message = e.to_string();
    tracing::warn!(broker = %shared.addr, api, version, "unreadable reply: {message}");
    shared.close(CloseReason::Protocol(format!(
        "unreadable {api} v{version} reply: {message}"
    )));
    decode_error(&shared.addr, api, version, message)
}

/// A reply that decoded but says something the protocol does not allow: the same as an
/// unreadable one for the connection (closed, counted as a protocol error).
fn invalid_reply(shared: &Shared, api: &'static str, version: i16, message: String) -> NetError {
    tracing::warn!(broker = %shared.addr, api, version, "invalid reply: {message}");
    shared.close(CloseReason::Protocol(format!(
        "invalid {api} v{version} reply: {message}"
    )));
    decode_error(&shared.addr, api, version, message)
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        self.shared.close(CloseReason::Shutdown);
    }
}

fn single_segment(b: Bytes) -> Segments {
    let mut s = Segments::default();
    s.push(b);
    s
}

/// Resolves `addr` and connects to the first address that accepts (Java's
/// `client.dns.lookup=use_all_dns_ips`).
async fn open_socket(addr: &str) -> Result<TcpStream, NetError> {
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(NetError::InvalidAddress {
            addr: addr.to_owned(),
        });
    }
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| NetError::Resolve {
            addr: addr.to_owned(),
            source: Arc::new(e),
        })?
        .collect();
    let mut last_err = None;
    for sa in resolved {
        match TcpStream::connect(sa).await {
            Ok(stream) => {
                // Requests are written whole; Nagle would only delay the last segment.
                stream.set_nodelay(true).map_err(|e| NetError::Connect {
                    addr: addr.to_owned(),
                    source: Arc::new(e),
                })?;
                return Ok(stream);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(NetError::Connect {
        addr: addr.to_owned(),
        source: Arc::new(last_err.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses resolved")
        })),
    })
}

/// The writer task: takes queued requests in order, registers those that expect a
/// response, and writes them with vectored writes.
async fn write_loop(
    shared: Arc<Shared>,
    mut socket: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_REQUESTS_PER_WRITE);
    loop {
        let reauth_at = lock_reauth(&shared).as_ref().map(|r| r.at);
        let received = match reauth_at {
            None => rx.recv_many(&mut batch, MAX_REQUESTS_PER_WRITE).await,
            Some(at) => tokio::select! {
                n = rx.recv_many(&mut batch, MAX_REQUESTS_PER_WRITE) => n,
                _ = tokio::time::sleep_until(at) => usize::MAX,
            },
        };
        if received == 0 {
            // Every handle is gone; `BrokerConnection::drop` closes the connection.
            return;
        }
        // KIP-368: re-authenticate before the session ends, and before writing anything
        // else once it is due. Requests written before are answered first (a broker
        // answers in order), so the exchange only holds back what comes after it.
        if reauth_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
            if let Err(e) = reauthenticate(&shared, &mut socket).await {
                tracing::warn!(broker = %shared.addr, "re-authentication failed: {e}");
                shared.close(CloseReason::Reauthentication(e.to_string()));
                return;
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut frame = Segments::default();
        // Requests that expect no response stay here until written.
        let mut fire_and_forget: Vec<Outgoing> = Vec::new();
        {
            let mut st = shared.lock();
            if st.closed.is_some() {
                // Dropping them answers NotSent; `Outgoing::drop` takes the lock, so release
                // it first.
                drop(st);
                batch.clear();
                return;
            }
            for mut out in batch.drain(..) {
                out.write_started = true;
                frame.append(std::mem::take(&mut out.frame));
                if out.expects_response {
                    st.in_flight.push_back(Pending {
                        correlation_id: out.correlation_id,
                        api: out.api,
                        reply: out.reply.take().expect("unanswered request"),
                        permit: out.permit.take(),
                        deadline: out.deadline,
                    });
                } else {
                    fire_and_forget.push(out);
                }
            }
            st.writing = fire_and_forget
                .iter()
                .map(|o| Deadline {
                    at: o.deadline,
                    correlation_id: o.correlation_id,
                    api: o.api,
                })
                .min_by_key(|d| d.at);
        }
        if let Err(e) = socket.write_all_buf(&mut frame).await {
            shared.close(CloseReason::Io(Arc::new(e)));
            return; // dropping `fire_and_forget` answers ConnectionLost
        }
        if !fire_and_forget.is_empty() {
            shared.lock().writing = None;
        }
        for mut out in fire_and_forget {
            out.permit.take(); // free the slot before answering, as `Pending::complete`
            if let Some(reply) = out.reply.take() {
                reply.send(Ok(None), &shared);
            }
        }
    }
}

/// A planned KIP-368 re-authentication.
struct Reauth {
    at: tokio::time::Instant,
    auth: SaslAuth,
    handshake: i16,
    authenticate: i16,
}

fn lock_reauth(shared: &Shared) -> MutexGuard<'_, Option<Reauth>> {
    shared.reauth.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a re-authentication from the writer, and plans the next one from the new session.
async fn reauthenticate(shared: &Arc<Shared>, socket: &mut WriteHalf) -> Result<(), NetError> {
    let Some((auth, handshake, authenticate)) = lock_reauth(shared)
        .as_ref()
        .map(|r| (r.auth.clone(), r.handshake, r.authenticate))
    else {
        return Ok(());
    };
    let mut transport = WriterTransport {
        shared,
        socket,
        handshake,
        authenticate,
    };
    let session = auth.0.exchange(&shared.addr, &mut transport).await?;
    tracing::debug!(
        broker = %shared.addr,
        session_lifetime_ms = session.lifetime.map(|l| l.as_millis() as u64),
        "re-authenticated (KIP-368)"
    );
    if let Some(c) = &shared.counters {
        c.reauthentications.fetch_add(1, Ordering::Relaxed);
    }
    let next = session.lifetime.map(|lifetime| Reauth {
        at: tokio::time::Instant::now() + reauthenticate_after(lifetime, 0.5),
        auth,
        handshake,
        authenticate,
    });
    *lock_reauth(shared) = next;
    Ok(())
}

/// The first authentication, through the connection's request path (nothing else is on
/// the connection yet).
struct ConnectTransport<'a>(&'a BrokerConnection);

impl SaslTransport for ConnectTransport<'_> {
    async fn handshake(
        &mut self,
        req: SaslHandshakeRequest,
    ) -> Result<wire::SaslHandshakeResponse, NetError> {
        let v = self.0.version(ApiKey::SaslHandshake)?;
        self.0.send(req, v).await
    }

    async fn authenticate(
        &mut self,
        req: SaslAuthenticateRequest,
    ) -> Result<wire::SaslAuthenticateResponse, NetError> {
        let v = self.0.version(ApiKey::SaslAuthenticate)?;
        self.0.send(req, v).await
    }
}

/// A re-authentication from inside the writer: each request is written directly (no window
/// slot: the window may be full of requests waiting behind the exchange) and answered
/// through the in-flight queue like any other.
struct WriterTransport<'a> {
    shared: &'a Arc<Shared>,
    socket: &'a mut WriteHalf,
    handshake: i16,
    authenticate: i16,
}

impl WriterTransport<'_> {
    async fn roundtrip<R: Request, A: wire::Response>(
        &mut self,
        req: R,
        version: i16,
        key: ApiKey,
    ) -> Result<A, NetError> {
        let shared = self.shared;
        let api = api_name(key);
        let cid = shared.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = codec::encode_request(&req, version, cid, &shared.client_id, api)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = shared.lock();
            if st.closed.is_some() {
                drop(st);
                return Err(shared.not_sent(api));
            }
            st.in_flight.push_back(Pending {
                correlation_id: cid,
                api,
                reply: ReplyTo::Channel(tx),
                permit: None,
                deadline: tokio::time::Instant::now() + shared.request_timeout,
            });
        }
        if let Err(e) = self.socket.write_all(&frame).await {
            shared.close(CloseReason::Io(Arc::new(e)));
        }
        let body = match rx.await {
            Ok(reply) => reply?,
            Err(_) => return Err(shared.not_sent(api)),
        }
        .ok_or_else(|| shared.not_sent(api))?;
        decode_body(shared, body, version, api)
    }
}

impl SaslTransport for WriterTransport<'_> {
    async fn handshake(
        &mut self,
        req: SaslHandshakeRequest,
    ) -> Result<wire::SaslHandshakeResponse, NetError> {
        let v = self.handshake;
        self.roundtrip(req, v, ApiKey::SaslHandshake).await
    }

    async fn authenticate(
        &mut self,
        req: SaslAuthenticateRequest,
    ) -> Result<wire::SaslAuthenticateResponse, NetError> {
        let v = self.authenticate;
        self.roundtrip(req, v, ApiKey::SaslAuthenticate).await
    }
}

/// The reader task: reads response frames and hands each to the oldest request in flight,
/// after checking it is the one the response answers.
async fn read_loop(shared: Arc<Shared>, socket: ReadHalf) {
    let mut socket = BufReader::with_capacity(64 * 1024, socket);
    let reason = loop {
        let size = match socket.read_i32().await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break CloseReason::PeerClosed
            }
            Err(e) => break CloseReason::Io(Arc::new(e)),
        };
        let size = match usize::try_from(size) {
            Ok(n) if (4..=MAX_RESPONSE_SIZE).contains(&n) => n,
            // A TLS record header (alert or handshake, version 3.x) where a size belongs:
            // a plaintext client on a TLS listener.
            _ if matches!(size.to_be_bytes(), [0x15 | 0x16, 0x03, 0..=4, _]) => {
                break CloseReason::UnexpectedTls
            }
            _ => break CloseReason::Protocol(format!("impossible response size {size}")),
        };
        let body = match read_frame(&mut socket, size).await {
            Ok(b) => b.freeze(),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break CloseReason::PeerClosed
            }
            Err(e) => break CloseReason::Io(Arc::new(e)),
        };
        let correlation_id = (&body[..4]).get_i32();
        let mut st = shared.lock();
        match st.in_flight.front() {
            Some(p) if p.correlation_id == correlation_id => {
                let p = st.in_flight.pop_front().expect("front exists");
                st.last_active = tokio::time::Instant::now();
                drop(st);
                p.complete(Ok(Some(body)), &shared);
            }
            Some(p) => {
                let expected = p.correlation_id;
                drop(st);
                break CloseReason::Protocol(format!(
                    "response correlation id {correlation_id} does not match the oldest \
                     request in flight ({expected})"
                ));
            }
            None => {
                drop(st);
                break CloseReason::Protocol(format!(
                    "response with correlation id {correlation_id} but no request in flight"
                ));
            }
        }
    };
    shared.close(reason);
}

/// The error for a handshake that failed the way a security mismatch does: TLS alerts and
/// certificate refusals that TLS 1.3 reports on the first read, and TLS answering a
/// plaintext hello. Anything else is returned as it was.
fn security_mismatch(addr: &str, opts: &ConnectOptions, e: NetError) -> NetError {
    let reason = match &e {
        NetError::NotSent { reason, .. } | NetError::ConnectionLost { reason, .. } => reason,
        _ => return e,
    };
    match (reason, &opts.tls) {
        (CloseReason::Io(io), Some(tls)) if io.get_ref().is_some() => NetError::Tls {
            addr: addr.to_owned(),
            failure: tls.explain(addr, io),
        },
        (CloseReason::UnexpectedTls, None) => NetError::Tls {
            addr: addr.to_owned(),
            failure: super::tls::TlsFailure {
                message: format!(
                    "broker {addr} answered with TLS: it is a TLS listener; set \
                     security.protocol=ssl (or sasl_ssl), or use the broker's plaintext port"
                ),
                definitive: true,
                hung_up: false,
            },
        },
        _ => e,
    }
}

/// Reads a response frame of `size` bytes (its size prefix already read). Memory grows
/// with the bytes that arrive, not with the size the broker claims: a 4-byte prefix
/// promising 100 MiB that is followed by nothing costs 64 KiB, not 100 MiB.
async fn read_frame<R: AsyncRead + Unpin>(
    socket: &mut R,
    size: usize,
) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::new();
    read_frame_into(socket, size, &mut buf).await?;
    Ok(buf)
}

/// [`read_frame`] into `buf` (empty), which holds whatever arrived if the read is cut short.
async fn read_frame_into<R: AsyncRead + Unpin>(
    socket: &mut R,
    size: usize,
    buf: &mut BytesMut,
) -> std::io::Result<()> {
    const FIRST: usize = 64 * 1024;
    buf.reserve(size.min(FIRST));
    while buf.len() < size {
        if buf.len() == buf.capacity() {
            // Doubling: as many reallocations as for a buffer sized up front would take
            // copies, logarithmic in the frame.
            buf.reserve(buf.len().min(size - buf.len()));
        }
        let want = (size - buf.len()) as u64;
        if (&mut *socket).take(want).read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// The watchdog task: closes the connection when the oldest request outlives
/// `request.timeout.ms`, or when nothing was in flight for `connections.max.idle.ms`.
/// Deadlines are submission time plus one constant, so the front of the in-flight queue
/// (or a write under way with `acks=0` requests in it) holds the earliest one; the timer
/// is re-armed about once per timeout, not once per request.
async fn watch_timeouts(shared: Arc<Shared>) {
    loop {
        let now = tokio::time::Instant::now();
        let (oldest, idle_since) = {
            let st = shared.lock();
            if st.closed.is_some() {
                return;
            }
            let front = st.in_flight.front().map(|p| Deadline {
                at: p.deadline,
                correlation_id: p.correlation_id,
                api: p.api,
            });
            let oldest = [front, st.writing]
                .into_iter()
                .flatten()
                .min_by_key(|d| d.at);
            // Idle: nothing written and waiting, and every window slot free (a reserved
            // slot is a request on its way in).
            let idle =
                oldest.is_none() && shared.window.available_permits() == shared.max_in_flight;
            (oldest, idle.then_some(st.last_active))
        };
        match oldest {
            Some(d) if d.at <= now => {
                shared.close(CloseReason::RequestTimeout {
                    correlation_id: d.correlation_id,
                    api: d.api,
                    timeout: shared.request_timeout,
                });
                return;
            }
            Some(d) => tokio::time::sleep_until(d.at).await,
            // Nothing written is waiting: a request submitted from now on expires one
            // timeout from its submission at the earliest, so looking again one timeout
            // from now misses none. (One still queued for the writer at this moment is
            // looked at then, late by the moments it spent in the queue.)
            None => {
                let mut next = now + shared.request_timeout;
                if let (Some(idle), Some(since)) = (shared.idle_timeout, idle_since) {
                    let expires = since + idle;
                    if expires <= now {
                        shared.close(CloseReason::Idle { idle });
                        return;
                    }
                    next = next.min(expires);
                }
                tokio::time::sleep_until(next).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_is_read_whole_and_nothing_of_the_next_one() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut r = &data[..];
        let frame = read_frame(&mut r, 150_000).await.unwrap();
        assert_eq!(&frame[..], &data[..150_000]);
        assert_eq!(r.len(), 50_000, "the rest stays for the next frame");
    }

    #[tokio::test]
    async fn a_frame_that_promises_more_than_arrives_costs_what_arrived() {
        let data = [7u8; 10];
        let mut r = &data[..];
        let e = read_frame(&mut r, 99 << 20).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        // And while waiting for more, the buffer is bounded by the bytes so far: after
        // 100 KB of a 99 MiB frame it holds at most about twice that.
        let (mut tx, mut rx) = tokio::io::duplex(1 << 20);
        tx.write_all(&vec![1u8; 100_000]).await.unwrap();
        let mut buf = BytesMut::new();
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            read_frame_into(&mut rx, 99 << 20, &mut buf),
        )
        .await;
        assert!(waited.is_err(), "still waiting for the rest");
        assert_eq!(buf.len(), 100_000);
        assert!(
            buf.capacity() <= 256 * 1024,
            "{} bytes for 100 KB",
            buf.capacity()
        );
        drop(tx);
    }
}
