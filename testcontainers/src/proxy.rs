//! [`FaultProxy`]: a TCP proxy in front of one broker that passes, delays, swallows or
//! cuts traffic on command, for the network faults a `kill -9` or a SIGSTOP cannot
//! make: a connection that breaks halfway through a request, a link that goes silent
//! while the broker is fine, a slow path.
//!
//! The cluster advertises the proxies' addresses to clients (see
//! [`ClusterBuilder::with_proxies`](crate::ClusterBuilder::with_proxies)), so every
//! connection a producer opens after reading metadata goes through them, while the
//! brokers replicate to each other, and the kit's admin client and independent reader
//! talk to them, directly.
//!
//! Plain threads, no async runtime: two pump threads per connection, reads with a short
//! timeout so a command takes effect within ~20 ms.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::KitError;

/// How often a blocked pump or the accept loop looks at the current mode.
const POLL: Duration = Duration::from_millis(20);

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Forward both ways, holding every chunk back this long (each direction).
    Delay(Duration),
    /// Accept connections and read what arrives, but forward nothing either way: the
    /// client's requests vanish and no answer comes, as on a link that went silent.
    /// Leaving this mode closes the connections that swallowed bytes (their streams
    /// lost data and cannot be resumed).
    Blackhole,
    /// Close every open connection and each new one at once, both sides: a broker
    /// that is unreachable although its process runs.
    Refuse,
}

/// Counters of what the proxy did, to show a fault actually happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections the proxy closed on command ([`FaultProxy::cut`],
    /// [`FaultProxy::cut_mid_request`], [`ProxyMode::Refuse`], leaving
    /// [`ProxyMode::Blackhole`]).
    pub cut: u64,
    /// Bytes forwarded client to broker.
    pub bytes_to_broker: u64,
    /// Bytes forwarded broker to client.
    pub bytes_to_client: u64,
    /// Bytes read from the broker, counted as they arrive, before any delay: with
    /// [`ProxyMode::Delay`], this moving while `bytes_to_client` does not means the
    /// broker has answered and the answer is held in the proxy.
    pub bytes_from_broker: u64,
    /// Bytes read and dropped ([`ProxyMode::Blackhole`], the tail of a request cut
    /// halfway).
    pub bytes_swallowed: u64,
}

struct Conn {
    client: TcpStream,
    upstream: Option<TcpStream>,
    closed: AtomicBool,
    /// Bytes of this connection were swallowed: it cannot carry Kafka frames any more.
    tainted: AtomicBool,
    /// Forward half of the next client chunk, then close both sides.
    cut_mid_request: AtomicBool,
}

impl Conn {
    fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(u) = &self.upstream {
            let _ = u.shutdown(Shutdown::Both);
        }
        first
    }
}

struct Shared {
    upstream: SocketAddr,
    mode: Mutex<ProxyMode>,
    conns: Mutex<Vec<Arc<Conn>>>,
    stop: AtomicBool,
    accepted: AtomicU64,
    cut: AtomicU64,
    to_broker: AtomicU64,
    to_client: AtomicU64,
    from_broker: AtomicU64,
    swallowed: AtomicU64,
}

impl Shared {
    fn mode(&self) -> ProxyMode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cut_conn(&self, c: &Conn) {
        if c.close() {
            self.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A TCP proxy in front of one broker. Dropping it closes its listener and every
/// connection through it.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .finish()
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`, which need not be
    /// up yet: each accepted connection connects to it then (and is closed at once if
    /// that fails, as a refused connection would be).
    pub fn start(upstream: SocketAddr) -> Result<Self, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| KitError::Setup(format!("proxy: no free loopback port: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| KitError::Setup(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| KitError::Setup(e.to_string()))?;
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(ProxyMode::Pass),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            to_broker: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            from_broker: AtomicU64::new(0),
            swallowed: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| KitError::Setup(format!("proxy thread: {e}")))?;
        Ok(Self {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address traffic is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        self.shared.mode()
    }

    /// Switches mode. [`ProxyMode::Refuse`] closes every open connection; leaving
    /// [`ProxyMode::Blackhole`] closes the connections that swallowed bytes.
    pub fn set_mode(&self, mode: ProxyMode) {
        let old = {
            let mut m = self.shared.mode.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *m, mode)
        };
        match mode {
            ProxyMode::Refuse => {
                self.cut();
            }
            _ if old == ProxyMode::Blackhole && mode != ProxyMode::Blackhole => {
                for c in self.live() {
                    if c.tainted.load(Ordering::SeqCst) || c.upstream.is_none() {
                        self.shared.cut_conn(&c);
                    }
                }
            }
            _ => {}
        }
    }

    /// Closes every open connection, both sides, at once (a reset link). Returns how
    /// many were open.
    pub fn cut(&self) -> usize {
        let live = self.live();
        for c in &live {
            self.shared.cut_conn(c);
        }
        live.len()
    }

    /// On every open connection, forwards half of the next chunk the client sends and
    /// then closes both sides: the broker gets a truncated request and drops it, the
    /// client sees its connection break after writing (an ambiguous outcome for it).
    /// Returns how many connections were armed.
    pub fn cut_mid_request(&self) -> usize {
        let live = self.live();
        for c in &live {
            c.cut_mid_request.store(true, Ordering::SeqCst);
        }
        live.len()
    }

    /// Open connections through the proxy.
    pub fn connections(&self) -> usize {
        self.live().len()
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            cut: s.cut.load(Ordering::Relaxed),
            bytes_to_broker: s.to_broker.load(Ordering::Relaxed),
            bytes_to_client: s.to_client.load(Ordering::Relaxed),
            bytes_from_broker: s.from_broker.load(Ordering::Relaxed),
            bytes_swallowed: s.swallowed.load(Ordering::Relaxed),
        }
    }

    fn live(&self) -> Vec<Arc<Conn>> {
        let mut conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !c.closed.load(Ordering::SeqCst));
        conns.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.live() {
            c.close();
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL / 4);
                continue;
            }
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let mode = shared.mode();
        if mode == ProxyMode::Refuse {
            let _ = client.shutdown(Shutdown::Both);
            shared.cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // A blackholed link swallows from the first byte: no broker behind it.
        let upstream = if mode == ProxyMode::Blackhole {
            None
        } else {
            match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) {
                Ok(u) => {
                    let _ = u.set_nodelay(true);
                    Some(u)
                }
                Err(_) => {
                    // The broker is down: the client sees its connection close.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
            }
        };
        let conn = Arc::new(Conn {
            client,
            upstream,
            closed: AtomicBool::new(false),
            tainted: AtomicBool::new(false),
            cut_mid_request: AtomicBool::new(false),
        });
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn.clone());
        for to_broker in [true, false] {
            if !to_broker && conn.upstream.is_none() {
                continue;
            }
            let (c, s) = (conn.clone(), shared.clone());
            let spawned = std::thread::Builder::new()
                .name("proxy-pump".into())
                .spawn(move || pump(&c, &s, to_broker));
            if spawned.is_err() {
                conn.close();
            }
        }
    }
}

/// Moves bytes one way until the connection closes.
fn pump(conn: &Conn, shared: &Shared, to_broker: bool) {
    let (mut from, mut to) = match (to_broker, &conn.upstream) {
        (true, up) => (
            conn.client.try_clone().ok(),
            up.as_ref().and_then(|u| u.try_clone().ok()),
        ),
        (false, Some(up)) => (up.try_clone().ok(), conn.client.try_clone().ok()),
        (false, None) => (None, None),
    };
    let Some(from) = from.as_mut() else {
        conn.close();
        return;
    };
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    while !conn.closed.load(Ordering::SeqCst) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if !to_broker {
            shared.from_broker.fetch_add(n as u64, Ordering::Relaxed);
        }
        if to_broker && conn.cut_mid_request.swap(false, Ordering::SeqCst) {
            let half = (n / 2).max(1).min(n);
            if let Some(to) = to.as_mut() {
                let _ = to.write_all(&chunk[..half]);
                let _ = to.flush();
            }
            shared.to_broker.fetch_add(half as u64, Ordering::Relaxed);
            shared
                .swallowed
                .fetch_add((n - half) as u64, Ordering::Relaxed);
            shared.cut_conn(conn);
            return;
        }
        match shared.mode() {
            ProxyMode::Blackhole => {
                conn.tainted.store(true, Ordering::SeqCst);
                shared.swallowed.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            ProxyMode::Refuse => {
                shared.cut_conn(conn);
                return;
            }
            ProxyMode::Delay(d) => std::thread::sleep(d),
            ProxyMode::Pass => {}
        }
        let Some(to) = to.as_mut() else {
            shared.swallowed.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        };
        if to.write_all(chunk).is_err() {
            break;
        }
        let counter = if to_broker {
            &shared.to_broker
        } else {
            &shared.to_client
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    // One side hung up or failed: the other side learns it too, as through a real
    // TCP connection.
    conn.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on loopback: what comes in goes back out.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)?;
        Ok(got)
    }

    fn connect(p: &FaultProxy) -> TcpStream {
        let s = TcpStream::connect(p.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    #[test]
    fn passes_traffic_both_ways() {
        let p = FaultProxy::start(echo()).unwrap();
        let mut s = connect(&p);
        assert_eq!(roundtrip(&mut s, b"hello").unwrap(), b"hello");
        // The proxy counts bytes after forwarding them, so the client can read the
        // echo before the count moves: wait for it, bounded.
        let st = crate::wait_until(
            "the proxy to count both directions",
            Duration::from_secs(5),
            || {
                let st = p.stats();
                if (st.accepted, st.bytes_to_broker, st.bytes_to_client) == (1, 5, 5) {
                    Ok(st)
                } else {
                    Err(format!(
                        "{:?}",
                        (st.accepted, st.bytes_to_broker, st.bytes_to_client)
                    ))
                }
            },
        )
        .unwrap();
        assert_eq!(st.bytes_to_client, 5);
    }

    #[test]
    fn delay_holds_each_direction_back() {
        let p = FaultProxy::start(echo()).unwrap();
        p.set_mode(ProxyMode::Delay(Duration::from_millis(150)));
        let mut s = connect(&p);
        let t = Instant::now();
        s.write_all(b"slow").unwrap();
        // The echo is read from upstream at ~150 ms and held for another 150: counted
        // as arrived before it is forwarded.
        let held = crate::wait_until(
            "the echo to arrive from upstream",
            Duration::from_secs(2),
            || {
                let st = p.stats();
                if st.bytes_from_broker == 4 {
                    Ok(st)
                } else {
                    Err(format!("{st:?}"))
                }
            },
        )
        .unwrap();
        assert_eq!(held.bytes_to_client, 0, "{held:?}");
        let mut got = [0u8; 4];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"slow");
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn blackhole_swallows_and_leaving_it_closes_the_damaged_connection() {
        let p = FaultProxy::start(echo()).unwrap();
        let mut s = connect(&p);
        assert!(roundtrip(&mut s, b"before").is_ok());
        p.set_mode(ProxyMode::Blackhole);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let err = roundtrip(&mut s, b"lost").unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
        assert_eq!(p.stats().bytes_swallowed, 4);
        p.set_mode(ProxyMode::Pass);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            s.read(&mut buf).unwrap_or(0),
            0,
            "closed after the blackhole"
        );
        let mut fresh = connect(&p);
        assert_eq!(roundtrip(&mut fresh, b"after").unwrap(), b"after");
    }

    #[test]
    fn refuse_closes_open_and_new_connections() {
        let p = FaultProxy::start(echo()).unwrap();
        let mut s = connect(&p);
        assert!(roundtrip(&mut s, b"x").is_ok());
        p.set_mode(ProxyMode::Refuse);
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
        let mut s2 = connect(&p);
        assert!(roundtrip(&mut s2, b"y").is_err());
        p.set_mode(ProxyMode::Pass);
        let mut s3 = connect(&p);
        assert_eq!(roundtrip(&mut s3, b"z").unwrap(), b"z");
        assert!(p.stats().cut >= 2);
    }

    #[test]
    fn cut_mid_request_forwards_half_then_closes() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = FaultProxy::start(upstream.local_addr().unwrap()).unwrap();
        let mut s = connect(&p);
        let (mut server, _) = upstream.accept().unwrap();
        // The upstream accept can return before the proxy's own connect call does, and
        // the proxy lists the connection only after that: wait for it, bounded (CI
        // once armed 0 connections here).
        crate::wait_until(
            "the proxy to list the connection",
            Duration::from_secs(5),
            || match p.connections() {
                1 => Ok(()),
                n => Err(format!("{n} connections")),
            },
        )
        .unwrap();
        assert_eq!(p.cut_mid_request(), 1);
        s.write_all(&[7u8; 100]).unwrap();
        let mut got = Vec::new();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = server.read_to_end(&mut got);
        assert!(
            !got.is_empty() && got.len() < 100,
            "{} bytes reached the broker",
            got.len()
        );
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "client side closed");
    }

    #[test]
    fn cut_resets_every_connection_and_new_ones_work() {
        let p = FaultProxy::start(echo()).unwrap();
        let mut a = connect(&p);
        let mut b = connect(&p);
        assert!(roundtrip(&mut a, b"a").is_ok() && roundtrip(&mut b, b"b").is_ok());
        assert_eq!(p.cut(), 2);
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).unwrap_or(0), 0);
        let mut c = connect(&p);
        assert_eq!(roundtrip(&mut c, b"c").unwrap(), b"c");
    }

    #[test]
    fn unreachable_upstream_closes_the_client() {
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let p = FaultProxy::start(dead).unwrap();
        let mut s = connect(&p);
        assert!(roundtrip(&mut s, b"x").is_err());
    }
}
