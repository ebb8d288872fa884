//! The local-process backend: real Kafka brokers as JVMs on 127.0.0.1, KRaft mode.
//!
//! One node runs broker and controller in one JVM. Two or more brokers get a
//! dedicated controller JVM beside them, as production clusters do: then killing
//! brokers never costs the metadata quorum, and "two of three brokers down" leaves a
//! controller that can still shrink the ISR, which is what makes the broker answer
//! NOT_ENOUGH_REPLICAS instead of hanging.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::dist::KafkaDist;
use crate::oidc::OidcServer;
use crate::pki::Pki;
use crate::process::{make_run_dir, signal, spawn_owned, unregister_dir, unregister_pid};
use crate::proxy::FaultProxy;
use crate::reader::tail;
use crate::security::{clients_dir, BrokerSecurityConfig, Listener, Security, SecurityInfo};
use crate::{Admin, KitError};

/// Node id of the dedicated controller (brokers are 1..=n).
const CONTROLLER_ID: i32 = 1000;

/// How a local cluster is set up.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Number of brokers.
    pub brokers: usize,
    /// Extra broker properties, applied after the kit's defaults.
    pub broker_properties: Vec<(String, String)>,
    /// Maximum JVM heap per broker, in MiB.
    pub heap_mb: u32,
    /// How long to wait for the cluster to come up.
    pub startup_timeout: Duration,
    /// Put a [`FaultProxy`] in front of each broker and advertise it to clients (see
    /// `ClusterBuilder::with_proxies`).
    pub proxies: bool,
    /// Secured listeners beside PLAINTEXT (see `ClusterBuilder::security`).
    pub security: Security,
    /// Log4j levels by logger name, over the kit's own (see `ClusterBuilder::log_level`).
    pub log_levels: Vec<(String, String)>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            brokers: 1,
            broker_properties: Vec::new(),
            heap_mb: 768,
            startup_timeout: Duration::from_secs(180),
            proxies: false,
            security: Security::none(),
            log_levels: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Combined,
    Broker,
    Controller,
}

struct Node {
    id: i32,
    role: Role,
    port: Option<u16>,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    /// With `LocalOptions::proxies`: the port of the broker's PROXIED listener and the
    /// proxy in front of it, whose address that listener advertises.
    proxy: Option<(u16, FaultProxy)>,
    /// Ports of the secured listeners (brokers of a secured cluster).
    secure_ports: Vec<(Listener, u16)>,
    /// JVM arguments beyond the kit's defaults (the OAuth URL allow-list).
    jvm_args: Vec<String>,
}

impl Node {
    fn properties_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }
    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

/// A running local cluster. Dropping it kills its JVMs and removes its files.
pub struct LocalCluster {
    dist: KafkaDist,
    dir: PathBuf,
    nodes: Vec<Node>,
    opts: LocalOptions,
    /// Boxed: certificates and listener details are large and rarely there.
    security: Option<Box<SecurityInfo>>,
}

fn free_port() -> Result<u16, KitError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| KitError::Setup(format!("no free loopback port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| KitError::Setup(e.to_string()))?
        .port())
}

/// Directory ids in `meta.properties` are base64url (no padding) UUIDs. Kafka reserves
/// a few ids with all-zero high bits (unassigned, lost, migrating); setting a high bit
/// keeps a random id clear of them.
fn random_uuid_base64() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes[0] |= 0x40;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

impl LocalCluster {
    /// Starts a cluster and waits until every broker is registered.
    pub fn start(opts: LocalOptions) -> Result<Self, KitError> {
        if opts.brokers == 0 {
            return Err(KitError::Setup(
                "a cluster needs at least one broker".into(),
            ));
        }
        let dist = KafkaDist::locate()?;
        let dir = make_run_dir(&format!("kafka{}", opts.brokers))
            .map_err(|e| KitError::Setup(format!("creating the run dir: {e}")))?;
        let mut nodes = Vec::new();
        let mut voters = Vec::new();
        if opts.brokers == 1 {
            let cport = free_port()?;
            voters.push(format!("1@127.0.0.1:{cport}"));
            nodes.push((1, Role::Combined, Some(free_port()?), Some(cport)));
        } else {
            let cport = free_port()?;
            voters.push(format!("{CONTROLLER_ID}@127.0.0.1:{cport}"));
            nodes.push((CONTROLLER_ID, Role::Controller, None, Some(cport)));
            for id in 1..=opts.brokers as i32 {
                nodes.push((id, Role::Broker, Some(free_port()?), None));
            }
        }
        let voters = voters.join(",");
        opts.security.validate()?;
        // Ports of every secured listener on every broker, known before any broker is
        // configured: each broker's Metadata answers name the others' ports.
        let mut secure_ports: BTreeMap<Listener, Vec<u16>> = BTreeMap::new();
        let mut node_secure_ports = Vec::new();
        for (_, _, port, _) in &nodes {
            let mut mine = Vec::new();
            if port.is_some() {
                for l in opts.security.listeners() {
                    let p = free_port()?;
                    secure_ports.entry(l).or_default().push(p);
                    mine.push((l, p));
                }
            }
            node_secure_ports.push(mine);
        }
        let security = if opts.security.is_enabled() {
            let pki = Pki::generate(&dir.join("tls"))?;
            // The JWKS endpoint must answer before the brokers start: they fetch the
            // keys while configuring the OAUTHBEARER listener.
            let oidc = opts
                .security
                .oauth_options()
                .map(|o| OidcServer::start(o.clone()))
                .transpose()?;
            Some(Box::new(SecurityInfo::new(
                pki,
                &opts.security,
                oidc,
                &secure_ports,
                clients_dir(&dir),
            )?))
        } else {
            None
        };
        let template = storage_template(&dist, &opts.security.scram_credentials())?;
        let cluster_id = random_uuid_base64();
        let mut built = Vec::new();
        for ((id, role, port, cport), secure_ports) in nodes.into_iter().zip(node_secure_ports) {
            let ndir = dir.join(format!("node-{id}"));
            let proxy = match port {
                Some(_) if opts.proxies => {
                    let listen = free_port()?;
                    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], listen));
                    Some((listen, FaultProxy::start(upstream)?))
                }
                _ => None,
            };
            let mut node = Node {
                id,
                role,
                port,
                dir: ndir,
                child: Mutex::new(None),
                proxy,
                jvm_args: Vec::new(),
                secure_ports,
            };
            let sec_config = security
                .as_ref()
                .filter(|_| !node.secure_ports.is_empty())
                .map(|s| s.broker_config(&node.secure_ports));
            if let Some(c) = &sec_config {
                node.jvm_args = c.jvm_args.clone();
            }
            fs::create_dir_all(node.data_dir()).map_err(|e| KitError::Setup(e.to_string()))?;
            fs::write(
                node.properties_path(),
                node_properties(&node, cport, &voters, &opts, sec_config.as_ref()),
            )
            .map_err(|e| KitError::Setup(e.to_string()))?;
            write_log_config(&node, &opts.log_levels)?;
            // What `kafka-storage format` writes, without a JVM per node: the
            // bootstrap checkpoint (same for every cluster of this version, made once
            // per machine) and meta.properties naming the node and cluster.
            fs::copy(&template, node.data_dir().join("bootstrap.checkpoint"))
                .map_err(|e| KitError::Setup(format!("copying the storage template: {e}")))?;
            fs::write(
                node.data_dir().join("meta.properties"),
                format!(
                    "node.id={id}\ndirectory.id={}\nversion=1\ncluster.id={cluster_id}\n",
                    random_uuid_base64()
                ),
            )
            .map_err(|e| KitError::Setup(e.to_string()))?;
            built.push(node);
        }
        let cluster = Self {
            dist,
            dir,
            nodes: built,
            opts,
            security,
        };
        for node in &cluster.nodes {
            cluster.spawn(node)?;
        }
        cluster.wait_for_brokers(cluster.opts.brokers, cluster.opts.startup_timeout)?;
        Ok(cluster)
    }

    fn spawn(&self, node: &Node) -> Result<(), KitError> {
        let mut slot = node.child.lock().unwrap();
        if slot.is_some() {
            return Err(KitError::Control(format!(
                "node {} is already running",
                node.id
            )));
        }
        let heap = match node.role {
            Role::Controller => 256,
            _ => self.opts.heap_mb,
        };
        let mut cmd = Command::new(self.dist.java());
        cmd.arg(format!("-Xmx{heap}m"))
            .arg("-Xms128m")
            .arg("-XX:+UseG1GC")
            .arg("-XX:MaxGCPauseMillis=20")
            .arg("-XX:-UsePerfData")
            .arg("-Djava.awt.headless=true")
            .args(&node.jvm_args)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                node.dir.join("log4j2.properties").display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", node.dir.display()))
            .arg("-cp")
            .arg(self.dist.libs().join("*"))
            .arg("kafka.Kafka")
            .arg(node.properties_path())
            .current_dir(&node.dir)
            .stdin(Stdio::null());
        let out = fs::File::create(node.dir.join("stdout.log"))
            .map_err(|e| KitError::Setup(e.to_string()))?;
        let err = out
            .try_clone()
            .map_err(|e| KitError::Setup(e.to_string()))?;
        cmd.stdout(out).stderr(err);
        let child = spawn_owned(cmd).map_err(|e| {
            KitError::Setup(format!(
                "starting node {} ({}): {e}",
                node.id,
                self.dist.java().display()
            ))
        })?;
        *slot = Some(child);
        Ok(())
    }

    fn node(&self, id: i32) -> Result<&Node, KitError> {
        self.nodes
            .iter()
            .find(|n| n.id == id && n.role != Role::Controller)
            .ok_or_else(|| KitError::Control(format!("no broker with node id {id}")))
    }

    /// Broker node ids.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.role != Role::Controller)
            .map(|n| n.id)
            .collect()
    }

    /// `host:port,...` of every broker, running or not.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| n.port.map(|p| format!("127.0.0.1:{p}")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:port,...` of every broker's fault proxy, for clients that should reach the
    /// cluster through them; `None` without `LocalOptions::proxies`.
    pub fn proxied_bootstrap(&self) -> Option<String> {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.proxy.as_ref().map(|(_, p)| p.addr().to_string()))
            .collect();
        (!addrs.is_empty()).then(|| addrs.join(","))
    }

    /// The fault proxy in front of broker `id`.
    pub fn proxy(&self, id: i32) -> Result<&FaultProxy, KitError> {
        self.node(id)?
            .proxy
            .as_ref()
            .map(|(_, p)| p)
            .ok_or_else(|| {
                KitError::Unsupported(
                    "this cluster has no fault proxies: start it with \
                     ClusterBuilder::with_proxies(true)"
                        .into(),
                )
            })
    }

    /// `host:port` of one broker.
    pub fn broker_address(&self, id: i32) -> Result<String, KitError> {
        Ok(format!(
            "127.0.0.1:{}",
            self.node(id)?.port.expect("brokers have ports")
        ))
    }

    /// The Kafka installation the cluster runs.
    pub fn dist(&self) -> &KafkaDist {
        &self.dist
    }

    /// The secured listeners, users, certificates and OIDC provider (clusters started
    /// with `LocalOptions::security`).
    pub fn security(&self) -> Option<&SecurityInfo> {
        self.security.as_deref()
    }

    /// A broker's own log (`server.log`, kept across its restarts): what Kafka logs at
    /// the levels of `ClusterBuilder::log_level`.
    pub fn log_path(&self, id: i32) -> Result<PathBuf, KitError> {
        Ok(self.node(id)?.log_path())
    }

    /// The log directory of a broker (holds `<topic>-<partition>` dirs).
    pub fn data_dir(&self, id: i32) -> Result<PathBuf, KitError> {
        Ok(self.node(id)?.data_dir())
    }

    /// The OS process id of a running broker.
    pub fn pid(&self, id: i32) -> Result<Option<u32>, KitError> {
        Ok(self
            .node(id)?
            .child
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.id()))
    }

    /// Whether a broker's JVM is running (paused counts as running).
    pub fn is_running(&self, id: i32) -> Result<bool, KitError> {
        let node = self.node(id)?;
        let mut slot = node.child.lock().unwrap();
        Ok(match slot.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        })
    }

    fn take_child(&self, id: i32) -> Result<Child, KitError> {
        self.node(id)?
            .child
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| KitError::Control(format!("broker {id} is not running")))
    }

    /// `kill -9` a broker: no controlled shutdown, no flush.
    pub fn kill(&self, id: i32) -> Result<(), KitError> {
        let mut child = self.take_child(id)?;
        let pid = child.id();
        let _ = signal(pid, libc::SIGCONT);
        let _ = child.kill();
        let _ = child.wait();
        unregister_pid(pid as i32);
        Ok(())
    }

    /// Stops a broker with SIGTERM (controlled shutdown: leadership moves first),
    /// escalating to SIGKILL after `timeout`.
    pub fn stop(&self, id: i32, timeout: Duration) -> Result<(), KitError> {
        let mut child = self.take_child(id)?;
        let pid = child.id();
        let _ = signal(pid, libc::SIGCONT);
        let _ = signal(pid, libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unregister_pid(pid as i32);
        Ok(())
    }

    /// Starts a stopped or killed broker again on the same ports and log dir, and waits
    /// until it is registered.
    pub fn start_broker(&self, id: i32, timeout: Duration) -> Result<(), KitError> {
        let node = self.node(id)?;
        self.spawn(node)?;
        let addr = self.broker_address(id)?;
        crate::wait_until(
            &format!("broker {id} to rejoin the cluster"),
            timeout,
            || {
                self.check_alive()?;
                let md = Admin::new(&addr)
                    .metadata(Some(&[]))
                    .map_err(|e| e.to_string())?;
                if md.brokers.iter().any(|b| b.id == id) {
                    Ok(())
                } else {
                    Err(format!(
                        "registered brokers: {:?}",
                        md.brokers.iter().map(|b| b.id).collect::<Vec<_>>()
                    ))
                }
            },
        )
    }

    /// Stops (SIGTERM) and starts a broker.
    pub fn restart(&self, id: i32, timeout: Duration) -> Result<(), KitError> {
        self.stop(id, timeout)?;
        self.start_broker(id, timeout)
    }

    /// Freezes a broker with SIGSTOP: its sockets stay open but nothing answers.
    pub fn pause(&self, id: i32) -> Result<(), KitError> {
        self.send_signal(id, libc::SIGSTOP)
    }

    /// Thaws a broker paused with [`Self::pause`].
    pub fn resume(&self, id: i32) -> Result<(), KitError> {
        self.send_signal(id, libc::SIGCONT)
    }

    fn send_signal(&self, id: i32, sig: libc::c_int) -> Result<(), KitError> {
        let node = self.node(id)?;
        let slot = node.child.lock().unwrap();
        let child = slot
            .as_ref()
            .ok_or_else(|| KitError::Control(format!("broker {id} is not running")))?;
        signal(child.id(), sig)
            .map_err(|e| KitError::Control(format!("signalling broker {id}: {e}")))
    }

    /// Fails if a node's JVM exited on its own, with the end of its log.
    fn check_alive(&self) -> Result<(), String> {
        for node in &self.nodes {
            let mut slot = node.child.lock().unwrap();
            if let Some(child) = slot.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = fs::read_to_string(node.log_path()).unwrap_or_default();
                    let stdout =
                        fs::read_to_string(node.dir.join("stdout.log")).unwrap_or_default();
                    let pid = child.id();
                    *slot = None;
                    unregister_pid(pid as i32);
                    return Err(format!(
                        "node {} exited ({status}); end of its log:\n{}\n{}",
                        node.id,
                        tail(&log, 30),
                        tail(&stdout, 10)
                    ));
                }
            }
        }
        Ok(())
    }

    fn wait_for_brokers(&self, n: usize, timeout: Duration) -> Result<(), KitError> {
        let bootstrap = self.bootstrap();
        crate::wait_until(&format!("{n} broker(s) to register"), timeout, || {
            self.check_alive()?;
            let md = Admin::new(&bootstrap)
                .metadata(Some(&[]))
                .map_err(|e| e.to_string())?;
            if md.brokers.len() >= n {
                Ok(())
            } else {
                Err(format!("{} of {n} registered", md.brokers.len()))
            }
        })
        .map_err(|e| match e {
            KitError::Timeout(msg) => KitError::Setup(format!(
                "{msg}\nbroker logs are under {}",
                self.dir.display()
            )),
            other => other,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(mut child) = node.child.lock().unwrap().take() {
                let pid = child.id();
                let _ = signal(pid, libc::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
                unregister_pid(pid as i32);
            }
        }
        if std::env::var_os("COURIER_KEEP_KAFKA_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
        unregister_dir(&self.dir);
    }
}

fn node_properties(
    node: &Node,
    cport: Option<u16>,
    voters: &str,
    opts: &LocalOptions,
    security: Option<&BrokerSecurityConfig>,
) -> String {
    let n = opts.brokers;
    let rf = n.min(3);
    let min_isr = if n >= 3 { 2 } else { 1 };
    let mut p = String::new();
    let roles = match node.role {
        Role::Combined => "broker,controller",
        Role::Broker => "broker",
        Role::Controller => "controller",
    };
    let _ = writeln!(p, "process.roles={roles}");
    let _ = writeln!(p, "node.id={}", node.id);
    let _ = writeln!(p, "controller.quorum.voters={voters}");
    let _ = writeln!(p, "controller.listener.names=CONTROLLER");
    // With fault proxies a broker has a second client listener, PROXIED, that
    // advertises its proxy's address. Kafka answers Metadata with the addresses of the
    // listener the request came in on, so a client bootstrapped through the proxies
    // keeps going through them, while replication (inter.broker.listener.name) and the
    // kit's own admin client and reader (bootstrapped on PLAINTEXT) go direct and are
    // untouched by the faults.
    let proxied = node
        .proxy
        .as_ref()
        .map(|(listen, proxy)| (*listen, proxy.addr().port()));
    let mut protocol_map = String::from("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
    if proxied.is_some() {
        protocol_map.push_str(",PROXIED:PLAINTEXT");
    }
    for entry in security.iter().flat_map(|s| &s.protocol_map) {
        let _ = write!(protocol_map, ",{entry}");
    }
    let _ = writeln!(p, "listener.security.protocol.map={protocol_map}");
    let mut listeners = Vec::new();
    if let Some(port) = node.port {
        listeners.push(format!("PLAINTEXT://127.0.0.1:{port}"));
        let mut advertised = format!("PLAINTEXT://127.0.0.1:{port}");
        if let Some((listen, proxy_port)) = proxied {
            listeners.push(format!("PROXIED://127.0.0.1:{listen}"));
            let _ = write!(advertised, ",PROXIED://127.0.0.1:{proxy_port}");
        }
        // Secured listeners advertise themselves: a client bootstrapped on one keeps
        // to it, while PLAINTEXT stays the inter-broker and kit-admin listener.
        for l in security.iter().flat_map(|s| &s.listeners) {
            listeners.push(l.clone());
            let _ = write!(advertised, ",{l}");
        }
        let _ = writeln!(p, "advertised.listeners={advertised}");
        let _ = writeln!(p, "inter.broker.listener.name=PLAINTEXT");
    }
    if let Some(c) = cport {
        listeners.push(format!("CONTROLLER://127.0.0.1:{c}"));
    }
    let _ = writeln!(p, "listeners={}", listeners.join(","));
    let _ = writeln!(p, "log.dirs={}", node.data_dir().display());
    // Durability layers as the seed's three-layer rule wants them on a 3-node cluster:
    // RF 3, min.insync.replicas 2.
    let _ = writeln!(p, "default.replication.factor={rf}");
    let _ = writeln!(p, "min.insync.replicas={min_isr}");
    let _ = writeln!(p, "offsets.topic.replication.factor={rf}");
    let _ = writeln!(p, "transaction.state.log.replication.factor={rf}");
    let _ = writeln!(p, "transaction.state.log.min.isr={min_isr}");
    let _ = writeln!(p, "share.coordinator.state.topic.replication.factor={rf}");
    let _ = writeln!(p, "share.coordinator.state.topic.min.isr={min_isr}");
    // Fewer internal partitions: the console consumer's group starts faster.
    let _ = writeln!(p, "offsets.topic.num.partitions=4");
    let _ = writeln!(p, "transaction.state.log.num.partitions=4");
    let _ = writeln!(p, "num.partitions=1");
    let _ = writeln!(p, "group.initial.rebalance.delay.ms=0");
    // Tests name their topics; an unknown topic must be reported, not created.
    let _ = writeln!(p, "auto.create.topics.enable=false");
    // Faster failure detection than the defaults (9 s session, 30 s ISR lag), so fault
    // tests see leader moves and ISR shrinks in seconds.
    let _ = writeln!(p, "broker.session.timeout.ms=6000");
    let _ = writeln!(p, "broker.heartbeat.interval.ms=1000");
    let _ = writeln!(p, "replica.lag.time.max.ms=10000");
    let _ = writeln!(p, "unclean.leader.election.enable=false");
    let _ = writeln!(p, "num.network.threads=2");
    let _ = writeln!(p, "num.io.threads=4");
    let _ = writeln!(p, "controlled.shutdown.enable=true");
    if let Some(s) = security {
        p.push_str(&s.properties);
    }
    for (k, v) in &opts.broker_properties {
        let _ = writeln!(p, "{k}={v}");
    }
    p
}

fn write_log_config(node: &Node, levels: &[(String, String)]) -> Result<(), KitError> {
    fs::write(
        node.dir.join("log4j2.properties"),
        log_config(&node.log_path(), levels),
    )
    .map_err(|e| KitError::Setup(e.to_string()))
}

/// The brokers' log4j2 configuration: everything to `log`, Kafka at INFO and the
/// per-request log at WARN unless `levels` says otherwise. One entry per logger name:
/// log4j2 would take only one of two entries naming the same logger.
fn log_config(log: &Path, levels: &[(String, String)]) -> String {
    let mut loggers: BTreeMap<&str, &str> =
        BTreeMap::from([("kafka", "INFO"), ("kafka.request.logger", "WARN")]);
    for (name, level) in levels {
        loggers.insert(name, level);
    }
    let mut cfg = format!(
        "rootLogger.level=INFO\n\
         rootLogger.appenderRef.f.ref=F\n\
         appender.f.type=File\n\
         appender.f.name=F\n\
         appender.f.fileName={}\n\
         appender.f.layout.type=PatternLayout\n\
         appender.f.layout.pattern=[%d] %p %m (%c)%n\n",
        log.display()
    );
    for (i, (name, level)) in loggers.iter().enumerate() {
        let _ = writeln!(cfg, "logger.l{i}.name={name}");
        let _ = writeln!(cfg, "logger.l{i}.level={level}");
    }
    cfg
}

/// The bootstrap checkpoint `kafka-storage format` writes: made once per machine,
/// Kafka version and set of SCRAM credentials by running the real tool, then copied
/// into every node.
///
/// `scram` holds `--add-scram` values (`SCRAM-SHA-512=[name=alice,password=...]`): the
/// credentials become metadata records in the checkpoint, so each distinct set gets
/// its own template, named by a digest of the set.
fn storage_template(dist: &KafkaDist, scram: &[String]) -> Result<PathBuf, KitError> {
    let dir = if scram.is_empty() {
        dist.cache().join("storage-template")
    } else {
        let digest = ring::digest::digest(&ring::digest::SHA256, scram.join("\n").as_bytes());
        let hex: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        dist.cache().join(format!("storage-template-scram-{hex}"))
    };
    let checkpoint = dir.join("bootstrap.checkpoint");
    if checkpoint.exists() {
        return Ok(checkpoint);
    }
    // flock: serialises threads of this process (each opens its own description) and
    // concurrent test binaries alike.
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let lock_path = dist.cache().join(format!(".{name}.lock"));
    let lock = fs::File::create(&lock_path).map_err(|e| KitError::Setup(e.to_string()))?;
    lock.lock()
        .map_err(|e| KitError::Setup(format!("locking {}: {e}", lock_path.display())))?;
    if checkpoint.exists() {
        return Ok(checkpoint);
    }
    let work = dist.cache().join(format!("{name}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("data")).map_err(|e| KitError::Setup(e.to_string()))?;
    let props = work.join("server.properties");
    fs::write(
        &props,
        format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:9\n\
             controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://127.0.0.1:8,CONTROLLER://127.0.0.1:9\n\
             log.dirs={}\n",
            work.join("data").display()
        ),
    )
    .map_err(|e| KitError::Setup(e.to_string()))?;
    let mut cmd = dist.java_command("kafka.tools.StorageTool", None);
    cmd.args(["format", "-t", "AAAAAAAAAAAAAAAAAAAAAA", "-c"])
        .arg(&props);
    for cred in scram {
        cmd.args(["--add-scram", cred]);
    }
    let out = crate::reader::run_tool(cmd, None, Duration::from_secs(120), "kafka-storage format")?;
    let made = work.join("data").join("bootstrap.checkpoint");
    if !out.status.success() || !made.exists() {
        return Err(KitError::Setup(format!(
            "kafka-storage format failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    fs::create_dir_all(&dir).map_err(|e| KitError::Setup(e.to_string()))?;
    // Rename is atomic, so a concurrent test binary sees either nothing or the whole file.
    fs::rename(&made, &checkpoint).map_err(|e| KitError::Setup(e.to_string()))?;
    let _ = fs::remove_dir_all(&work);
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_ids_are_22_char_base64url() {
        let id = random_uuid_base64();
        assert_eq!(id.len(), 22, "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, random_uuid_base64());
    }

    #[test]
    fn log_levels_override_the_kits_once_per_logger() {
        let log = Path::new("/x/server.log");
        let default = log_config(log, &[]);
        assert!(default.contains("appender.f.fileName=/x/server.log\n"));
        let level_of = |cfg: &str, name: &str| -> Vec<String> {
            let lines: Vec<&str> = cfg.lines().collect();
            lines
                .iter()
                .filter_map(|l| {
                    let key = l.strip_suffix(&format!(".name={name}"))?;
                    let prefix = format!("{key}.level=");
                    lines
                        .iter()
                        .find_map(|m| m.strip_prefix(prefix.as_str()))
                        .map(str::to_string)
                })
                .collect()
        };
        assert_eq!(level_of(&default, "kafka.request.logger"), ["WARN"]);
        assert_eq!(level_of(&default, "kafka"), ["INFO"]);
        let set = |n: &str, l: &str| (n.to_string(), l.to_string());
        let cfg = log_config(
            log,
            &[
                set("kafka.request.logger", "DEBUG"),
                set("org.apache.kafka.common.security", "DEBUG"),
            ],
        );
        // Replaced, not added beside the default: two entries for one logger leave
        // log4j2 free to pick either.
        assert_eq!(level_of(&cfg, "kafka.request.logger"), ["DEBUG"]);
        assert_eq!(
            level_of(&cfg, "org.apache.kafka.common.security"),
            ["DEBUG"]
        );
        assert_eq!(level_of(&cfg, "kafka"), ["INFO"]);
    }

    #[test]
    fn secured_listeners_are_on_every_broker_and_advertised_beside_plaintext() {
        // Metadata on a secured listener names, for each broker, that broker's own
        // advertised address on the same listener: so every broker of a secured
        // cluster must have and advertise it, while replication stays on PLAINTEXT.
        let security = Security::none()
            .listener(Listener::SaslSsl)
            .user("alice", "alice-secret");
        let opts = LocalOptions {
            brokers: 3,
            security: security.clone(),
            ..Default::default()
        };
        let brokers = [(1, 1001, 2001), (2, 1002, 2002), (3, 1003, 2003)];
        let dir = std::env::temp_dir().join(format!("courier-local-sec-{}", std::process::id()));
        let ports = BTreeMap::from([(Listener::SaslSsl, brokers.map(|b| b.2).to_vec())]);
        let info = SecurityInfo::new(
            Pki::generate(&dir.join("tls")).unwrap(),
            &security,
            None,
            &ports,
            dir.join("clients"),
        )
        .unwrap();
        assert_eq!(
            info.listener(Listener::SaslSsl).unwrap().bootstrap,
            "127.0.0.1:2001,127.0.0.1:2002,127.0.0.1:2003"
        );
        for (id, port, sasl_port) in brokers {
            let node = Node {
                id,
                role: Role::Broker,
                port: Some(port),
                dir: PathBuf::from("/x"),
                child: Mutex::new(None),
                proxy: None,
                secure_ports: vec![(Listener::SaslSsl, sasl_port)],
                jvm_args: Vec::new(),
            };
            let sec = info.broker_config(&node.secure_ports);
            let p = node_properties(&node, None, "1000@127.0.0.1:9", &opts, Some(&sec));
            let line = |key: &str| {
                p.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")))
                    .unwrap_or_else(|| panic!("no {key} in\n{p}"))
                    .to_string()
            };
            let both = format!("PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}");
            assert_eq!(line("listeners"), both);
            assert_eq!(line("advertised.listeners"), both);
            assert_eq!(line("inter.broker.listener.name"), "PLAINTEXT");
            assert!(line("listener.security.protocol.map")
                .split(',')
                .any(|e| e == "SASL_SSL:SASL_SSL"));
            assert_eq!(
                line("listener.name.sasl_ssl.sasl.enabled.mechanisms"),
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn three_broker_properties_carry_the_durability_defaults() {
        let node = Node {
            id: 2,
            role: Role::Broker,
            port: Some(1234),
            dir: PathBuf::from("/x"),
            child: Mutex::new(None),
            proxy: None,
            secure_ports: Vec::new(),
            jvm_args: Vec::new(),
        };
        let opts = LocalOptions {
            brokers: 3,
            ..Default::default()
        };
        let p = node_properties(&node, None, "1000@127.0.0.1:9", &opts, None);
        assert!(p.contains("process.roles=broker\n"));
        assert!(p.contains("default.replication.factor=3\n"));
        assert!(p.contains("min.insync.replicas=2\n"));
        assert!(p.contains("listeners=PLAINTEXT://127.0.0.1:1234\n"));
        assert!(!p.contains("CONTROLLER://"));
    }
}
