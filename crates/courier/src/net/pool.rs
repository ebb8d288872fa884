//! [`ConnectionPool`]: one connection per broker, opened lazily, reopened with backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metadata::ClusterMetadata;
use super::{BrokerConnection, CloseReason, ConnectOptions, FinalizedFeatures, NetError};
use crate::config::ProducerConfig;

/// `reconnect.backoff.ms` / `reconnect.backoff.max.ms`: how long to wait before connecting
/// again to a broker after a failed attempt or a broken connection.
///
/// The wait doubles per consecutive failure from `initial` and is multiplied by a random
/// factor in `1 ± jitter`, then capped at `max` (Java's `ExponentialBackoff`): brokers
/// coming back are not hit by every client at the same instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectBackoff {
    /// `reconnect.backoff.ms` (Java default 50 ms).
    pub initial: Duration,
    /// `reconnect.backoff.max.ms` (Java default 1000 ms).
    pub max: Duration,
    /// Relative jitter, 0.2 = ±20%.
    pub jitter: f64,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        ReconnectBackoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(1000),
            jitter: 0.2,
        }
    }
}

impl ReconnectBackoff {
    /// `reconnect.backoff.ms` and `reconnect.backoff.max.ms` of a producer configuration,
    /// with the Java client's ±20% jitter.
    pub fn from_config(config: &ProducerConfig) -> Self {
        ReconnectBackoff {
            initial: config.reconnect_backoff(),
            max: config.reconnect_backoff_max(),
            jitter: 0.2,
        }
    }

    /// The wait after `failures` consecutive failures (1 = the first), given a uniform
    /// random number `unit` in `[0, 1)`.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = (failures - 1).min(30);
        let term = self.initial.as_secs_f64() * f64::from(1u32 << exp);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((term * factor).min(self.max.as_secs_f64()))
    }
}

/// A small xorshift64* generator for backoff jitter: not cryptographic, just enough to
/// spread reconnects of many clients apart.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn from_time() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // Mix in the address of a stack value so pools created in the same nanosecond differ.
        let salt = &nanos as *const u64 as u64;
        Jitter((nanos ^ salt.rotate_left(32)) | 1)
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Which broker a pooled connection goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BrokerKey {
    /// A broker known from metadata, by node id.
    Node(i32),
    /// A `bootstrap.servers` address, before metadata names the brokers.
    Bootstrap(String),
}

struct SlotState {
    addr: String,
    conn: Option<Arc<BrokerConnection>>,
    /// Consecutive failures: failed connects and connections found broken.
    failures: u32,
    not_before: Option<Instant>,
    /// The last connect error logged as a warning, so a broker that stays down is
    /// reported once (and again when the cause changes), not at every attempt.
    warned: Option<String>,
}

struct Slot {
    // An async mutex: concurrent callers for one broker wait for the same connect
    // instead of opening a second connection.
    state: tokio::sync::Mutex<SlotState>,
}

/// Connections to the brokers of one cluster, keyed by node id (and by address for the
/// bootstrap servers).
///
/// [`get`](Self::get) connects on first use and hands out `Arc<BrokerConnection>`; a
/// connection found closed is replaced on the next `get`, after the reconnect backoff.
/// The pool holds no policy beyond that: which broker to ask and when to retry belong to
/// the producer core.
pub struct ConnectionPool {
    opts: ConnectOptions,
    backoff: ReconnectBackoff,
    bootstrap: Vec<String>,
    next_bootstrap: AtomicUsize,
    addresses: Mutex<HashMap<i32, String>>,
    slots: Mutex<HashMap<BrokerKey, Arc<Slot>>>,
    jitter: Mutex<Jitter>,
    counters: Arc<NetCounters>,
    /// A connection (with its TLS session and authentication) succeeded once: the security
    /// settings work, so a broker hanging up in a TLS handshake is the broker, not them.
    ever_connected: std::sync::atomic::AtomicBool,
    /// The finalized features with the highest epoch any connection reported.
    finalized: Mutex<FinalizedFeatures>,
}

/// What happened to the pool's connections so far: opened, failed to open, and why they
/// closed. Read with [`ConnectionPool::counters`].
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Connections opened (TCP connected and versions negotiated).
    pub opened: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Connections closed because they were idle for `connections.max.idle.ms`.
    pub closed_idle: AtomicU64,
    /// Connections the broker closed, or that broke with a socket error.
    pub closed_by_peer: AtomicU64,
    /// Connections closed because a request got no response in `request.timeout.ms`.
    pub closed_timeout: AtomicU64,
    /// Connections closed because the broker sent something that breaks the protocol
    /// (an impossible frame size, a response to no request, an unreadable reply).
    pub protocol_errors: AtomicU64,
    /// Sessions re-authenticated in place before their lifetime ended (KIP-368).
    pub reauthentications: AtomicU64,
}

impl NetCounters {
    pub(crate) fn closed(&self, reason: &CloseReason) {
        let counter = match reason {
            CloseReason::Idle { .. } => &self.closed_idle,
            CloseReason::PeerClosed | CloseReason::Io(_) | CloseReason::Reauthentication(_) => {
                &self.closed_by_peer
            }
            CloseReason::RequestTimeout { .. } => &self.closed_timeout,
            CloseReason::Protocol(_) | CloseReason::UnexpectedTls => &self.protocol_errors,
            CloseReason::Shutdown => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("bootstrap", &self.bootstrap)
            .field("brokers", &*lock(&self.addresses))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConnectionPool {
    /// A pool for the cluster behind `bootstrap` (`bootstrap.servers`: `host:port` entries,
    /// comma-separated; blanks ignored).
    pub fn new(bootstrap: &str, opts: ConnectOptions, backoff: ReconnectBackoff) -> Self {
        let bootstrap = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Self::with_bootstrap(bootstrap, opts, backoff)
    }

    /// A pool with the bootstrap servers, connection options (TLS included) and reconnect
    /// backoff of a producer configuration.
    pub fn from_config(config: &ProducerConfig) -> Result<Self, NetError> {
        Ok(Self::with_bootstrap(
            config
                .bootstrap_servers()
                .iter()
                .map(ToString::to_string)
                .collect(),
            ConnectOptions::from_config(config)?,
            ReconnectBackoff::from_config(config),
        ))
    }

    fn with_bootstrap(
        bootstrap: Vec<String>,
        opts: ConnectOptions,
        backoff: ReconnectBackoff,
    ) -> Self {
        ConnectionPool {
            opts,
            backoff,
            bootstrap,
            next_bootstrap: AtomicUsize::new(0),
            addresses: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            jitter: Mutex::new(Jitter::from_time()),
            counters: Arc::default(),
            ever_connected: std::sync::atomic::AtomicBool::new(false),
            finalized: Mutex::new(FinalizedFeatures::NONE),
        }
    }

    /// The newest view of the cluster's finalized features (KIP-584): of the reports of
    /// every connection this pool opened, live or not, the one with the highest epoch.
    /// The Java client keeps the same (`ApiVersions.update`): the features are
    /// cluster-wide, a broker that has not caught up with a change reports an older
    /// epoch, and keeping the highest means one lagging broker cannot make the view
    /// jump back. A broker reports them only in the ApiVersions of a new connection, so
    /// a change reaches the pool with the next connection opened after it (for example
    /// once an idle one closes after `connections.max.idle.ms`).
    pub fn finalized_features(&self) -> FinalizedFeatures {
        lock(&self.finalized).clone()
    }

    /// The lowest of the open connections' highest usable versions of `key` (-1 for a
    /// connection with none): what a request that may go to any of those brokers can
    /// count on. `None` when no connection is open (or every one is busy connecting).
    pub fn lowest_max_version(&self, key: kafka_protocol::messages::ApiKey) -> Option<i16> {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        slots
            .iter()
            .filter_map(|s| s.state.try_lock().ok().and_then(|st| st.conn.clone()))
            .filter(|c| !c.is_closed())
            .map(|c| c.version(key).unwrap_or(-1))
            .min()
    }

    fn note_finalized_features(&self, conn: &BrokerConnection) {
        let reported = conn.finalized_features();
        let mut latest = lock(&self.finalized);
        if reported.epoch > latest.epoch {
            if reported.transaction_version() != latest.transaction_version() {
                tracing::debug!(
                    broker = %conn.addr(),
                    epoch = reported.epoch,
                    transaction_version = ?reported.transaction_version(),
                    "finalized transaction.version in the cluster's newest features"
                );
            }
            *latest = reported.clone();
        }
    }

    /// What happened to this pool's connections so far.
    pub fn counters(&self) -> &NetCounters {
        &self.counters
    }

    /// The options connections are opened with.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// Records the address of broker `node_id`. A changed address drops the broker's
    /// current connection (it goes to the old host).
    pub fn set_broker_address(&self, node_id: i32, addr: String) {
        let changed = lock(&self.addresses).insert(node_id, addr.clone()) != Some(addr);
        if changed {
            lock(&self.slots).remove(&BrokerKey::Node(node_id));
        }
    }

    /// Records the address of every broker in `metadata`.
    pub fn update_brokers(&self, metadata: &ClusterMetadata) {
        for b in &metadata.brokers {
            self.set_broker_address(b.node_id, b.address());
        }
    }

    /// The address recorded for broker `node_id`.
    pub fn broker_address(&self, node_id: i32) -> Option<String> {
        lock(&self.addresses).get(&node_id).cloned()
    }

    /// The connection to broker `node_id`, connecting (after the backoff, if the last
    /// attempt failed) when there is none or it is closed.
    pub async fn get(&self, node_id: i32) -> Result<Arc<BrokerConnection>, NetError> {
        let addr = self
            .broker_address(node_id)
            .ok_or(NetError::UnknownBroker { node_id })?;
        self.get_key(BrokerKey::Node(node_id), addr).await
    }

    /// A connection to one of the bootstrap servers, trying each in turn (starting after
    /// the one used last) and returning the last error if none answers.
    pub async fn get_bootstrap(&self) -> Result<Arc<BrokerConnection>, NetError> {
        let n = self.bootstrap.len();
        if n == 0 {
            return Err(NetError::InvalidAddress {
                addr: String::new(),
            });
        }
        let start = self.next_bootstrap.fetch_add(1, Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let addr = self.bootstrap[(start + i) % n].clone();
            match self.get_key(BrokerKey::Bootstrap(addr.clone()), addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one bootstrap server"))
    }

    /// The open connection to broker `node_id`, if there is one and nobody is connecting
    /// to it right now: a look-up that never waits (the Produce fast path), where
    /// [`get`](Self::get) may connect.
    pub fn ready(&self, node_id: i32) -> Option<Arc<BrokerConnection>> {
        let slot = lock(&self.slots).get(&BrokerKey::Node(node_id))?.clone();
        let st = slot.state.try_lock().ok()?;
        st.conn.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// Per known broker (by node id, in order): whether an open connection to it exists,
    /// and its requests in flight. A broker whose slot is busy connecting right now
    /// counts as not connected. Never waits.
    pub fn broker_states(&self) -> Vec<(i32, bool, usize)> {
        let mut nodes: Vec<i32> = lock(&self.addresses).keys().copied().collect();
        nodes.sort_unstable();
        let slots = lock(&self.slots);
        nodes
            .into_iter()
            .map(|node| {
                let conn = slots.get(&BrokerKey::Node(node)).and_then(|slot| {
                    let st = slot.state.try_lock().ok()?;
                    st.conn.as_ref().filter(|c| !c.is_closed()).cloned()
                });
                match conn {
                    Some(c) => (node, true, c.in_flight()),
                    None => (node, false, 0),
                }
            })
            .collect()
    }

    /// An open connection with the fewest requests in flight, if any (for requests any
    /// broker can answer, like Metadata: Java's "least loaded node").
    pub fn least_loaded(&self) -> Option<Arc<BrokerConnection>> {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        slots
            .iter()
            .filter_map(|s| s.state.try_lock().ok().and_then(|st| st.conn.clone()))
            .filter(|c| !c.is_closed())
            .min_by_key(|c| c.in_flight())
    }

    /// Closes every connection (requests in flight fail as described on
    /// [`BrokerConnection::close`]).
    pub fn close_all(&self) {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).drain().map(|(_, s)| s).collect();
        for s in slots {
            if let Ok(st) = s.state.try_lock() {
                if let Some(c) = &st.conn {
                    c.close();
                }
            }
        }
    }

    async fn get_key(
        &self,
        key: BrokerKey,
        addr: String,
    ) -> Result<Arc<BrokerConnection>, NetError> {
        let slot = lock(&self.slots)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Slot {
                    state: tokio::sync::Mutex::new(SlotState {
                        addr: addr.clone(),
                        conn: None,
                        failures: 0,
                        not_before: None,
                        warned: None,
                    }),
                })
            })
            .clone();
        let mut st = slot.state.lock().await;
        if let Some(conn) = &st.conn {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
            // A broken connection counts as a failure, measured from when it closed (Java's
            // ClusterConnectionStates.disconnected): a broker that accepts and then drops
            // every connection is not hammered. One we closed ourselves for being idle is
            // no failure: reconnect at once.
            let closed_at = conn.closed_at().unwrap_or_else(Instant::now);
            let idle = matches!(conn.close_reason(), Some(CloseReason::Idle { .. }));
            st.conn = None;
            if !idle {
                st.failures += 1;
                st.not_before = Some(closed_at + self.next_delay(st.failures));
            }
        }
        if let Some(t) = st.not_before {
            tokio::time::sleep_until(t.into()).await;
        }
        // KIP-601: the setup timeout grows per consecutive failure, so a broker that is
        // slow to accept is given longer instead of being abandoned at the same point.
        let opts = ConnectOptions {
            connect_timeout: self.connect_timeout(st.failures),
            ..self.opts.clone()
        };
        match BrokerConnection::connect_counted(&st.addr, &opts, Some(self.counters.clone())).await
        {
            Ok(conn) => {
                self.counters.opened.fetch_add(1, Ordering::Relaxed);
                self.ever_connected.store(true, Ordering::Relaxed);
                if st.warned.take().is_some() {
                    tracing::info!(
                        broker = %st.addr, failed_attempts = st.failures,
                        "connected to broker {} again", st.addr
                    );
                }
                self.note_finalized_features(&conn);
                let conn = Arc::new(conn);
                st.failures = 0;
                st.not_before = None;
                st.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(mut e) => {
                if let NetError::Tls { failure, .. } = &mut e {
                    if failure.hung_up && self.ever_connected.load(Ordering::Relaxed) {
                        failure.definitive = false;
                    }
                }
                self.counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                st.failures += 1;
                let delay = self.next_delay(st.failures);
                let text = e.to_string();
                if st.warned.as_deref() != Some(text.as_str()) {
                    tracing::warn!(
                        broker = %st.addr, failures = st.failures,
                        "{text} (retrying with backoff; further failures like this one are \
                         logged at debug level)"
                    );
                    st.warned = Some(text);
                } else {
                    tracing::debug!(
                        broker = %st.addr, failures = st.failures,
                        backoff_ms = delay.as_millis() as u64, error = %e, "connect failed"
                    );
                }
                st.not_before = Some(Instant::now() + delay);
                Err(e)
            }
        }
    }

    fn connect_timeout(&self, failures: u32) -> Duration {
        let growth = ReconnectBackoff {
            initial: self.opts.connect_timeout,
            max: self.opts.connect_timeout_max.max(self.opts.connect_timeout),
            jitter: 0.2,
        };
        let unit = lock(&self.jitter).next_unit();
        growth.delay(failures + 1, unit)
    }

    fn next_delay(&self, failures: u32) -> Duration {
        let unit = lock(&self.jitter).next_unit();
        self.backoff.delay(failures, unit)
    }
}

impl Drop for ConnectionPool {
    fn drop(&mut self) {
        self.close_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_50ms_and_caps_at_1s() {
        let b = ReconnectBackoff::default();
        let mid = 0.5; // factor 1.0
        assert_eq!(b.delay(0, mid), Duration::ZERO);
        assert_eq!(b.delay(1, mid), Duration::from_millis(50));
        assert_eq!(b.delay(2, mid), Duration::from_millis(100));
        assert_eq!(b.delay(5, mid), Duration::from_millis(800));
        assert_eq!(b.delay(6, mid), Duration::from_millis(1000));
        assert_eq!(b.delay(60, mid), Duration::from_millis(1000));
    }

    #[test]
    fn backoff_jitter_stays_within_twenty_percent() {
        let b = ReconnectBackoff::default();
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(40));
        let hi = b.delay(1, 0.999_999);
        assert!(
            hi > Duration::from_millis(59) && hi <= Duration::from_millis(60),
            "{hi:?}"
        );
        let mut j = Jitter::from_time();
        let samples: Vec<Duration> = (0..1000).map(|_| b.delay(3, j.next_unit())).collect();
        assert!(samples
            .iter()
            .all(|d| *d >= Duration::from_millis(160) && *d <= Duration::from_millis(240)));
        // The generator actually varies (a constant would make every client reconnect in
        // lockstep).
        let min = samples.iter().min().unwrap();
        let max = samples.iter().max().unwrap();
        assert!(*max - *min > Duration::from_millis(60), "{min:?}..{max:?}");
    }

    #[test]
    fn pool_takes_timeouts_backoff_and_bootstrap_from_the_config() {
        let config = ProducerConfig::from_properties([
            ("bootstrap.servers", "k1:9092,[::1]:9093"),
            ("client.id", "orders-svc"),
            ("reconnect.backoff.ms", "20"),
            ("reconnect.backoff.max.ms", "400"),
            ("socket.connection.setup.timeout.ms", "2000"),
            ("socket.connection.setup.timeout.max.ms", "8000"),
            ("request.timeout.ms", "7000"),
            ("max.in.flight.requests.per.connection", "3"),
        ])
        .unwrap();
        let p = ConnectionPool::from_config(&config).unwrap();
        assert_eq!(p.bootstrap, vec!["k1:9092", "[::1]:9093"]);
        assert_eq!(
            p.opts,
            ConnectOptions {
                client_id: "orders-svc".into(),
                connect_timeout: Duration::from_secs(2),
                connect_timeout_max: Duration::from_secs(8),
                request_timeout: Duration::from_secs(7),
                max_in_flight: 3,
                tls: None,
                sasl: None,
                idle_timeout: Some(Duration::from_secs(540)),
            }
        );
        assert_eq!(p.backoff.initial, Duration::from_millis(20));
        assert_eq!(p.backoff.max, Duration::from_millis(400));
        // KIP-601: 2 s on the first attempt, doubling per failure up to 8 s (±20%).
        let first = p.connect_timeout(0);
        assert!(first >= Duration::from_millis(1600) && first <= Duration::from_millis(2400));
        let third = p.connect_timeout(2);
        assert!(third >= Duration::from_millis(6400) && third <= Duration::from_secs(8));
        assert!(p.connect_timeout(10) <= Duration::from_secs(8));
    }

    #[test]
    fn bootstrap_list_is_split_and_trimmed() {
        let p = ConnectionPool::new(
            " a:1, b:2 ,,c:3",
            ConnectOptions::default(),
            ReconnectBackoff::default(),
        );
        assert_eq!(p.bootstrap, vec!["a:1", "b:2", "c:3"]);
    }
}
