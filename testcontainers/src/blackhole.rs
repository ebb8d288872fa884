//! A blackhole broker: a TCP server that speaks just enough Kafka for a producer
//! (ApiVersions, Metadata, InitProducerId, Produce) and throws every record away.
//!
//! It measures a client's own ceiling: Produce requests are answered at once with
//! success and increasing offsets, so the broker's disk, replication and request
//! queues are out of the picture and what is left is the client's batching,
//! compression, encoding and I/O. It checks nothing about the batches (no CRC, no
//! sequence numbers), so it proves nothing about correctness: use real brokers
//! ([`crate::KafkaCluster`]) for that.
//!
//! ```no_run
//! let blackhole = courier_testkit::Blackhole::start(6)?;
//! println!("bootstrap.servers={}", blackhole.bootstrap());
//! // ... run a producer against it ...
//! println!("{} records swallowed", blackhole.records());
//! # Ok::<(), courier_testkit::KitError>(())
//! ```
//!
//! Every topic exists, with the partition count given at start, led by the blackhole
//! itself (node id 1). One thread per connection answers requests in order, as a
//! broker does. Unknown APIs close the connection, with a line on stderr.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::KitError;

/// The node id the blackhole gives itself in Metadata responses.
pub const BLACKHOLE_NODE_ID: i32 = 1;

/// Versions the blackhole answers; clients pick the highest they share with it.
/// Produce stops at v11: v13 addresses topics by id (KIP-516), and v12 only tells the
/// broker the client knows transactions v2 (KIP-890), which a blackhole has no use for.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
];

/// The largest request the blackhole reads (Kafka's `socket.request.max.bytes`).
const MAX_REQUEST: usize = 100 * 1024 * 1024;

const UNSUPPORTED_VERSION: i16 = 35;

/// A running blackhole broker; stops when dropped.
pub struct Blackhole {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

pub(crate) struct State {
    partitions: i32,
    addr: SocketAddr,
    stop: AtomicBool,
    next_producer_id: AtomicI64,
    records: AtomicU64,
    batches: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
    /// Next offset of each partition, by topic name.
    offsets: Mutex<HashMap<String, Vec<i64>>>,
    conns: Mutex<Vec<TcpStream>>,
}

impl std::fmt::Debug for Blackhole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blackhole")
            .field("addr", &self.addr)
            .field("partitions", &self.state.partitions)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Blackhole state for a broker at `addr` whose topics have `partitions` partitions.
    pub(crate) fn new(partitions: i32, addr: SocketAddr) -> State {
        State {
            partitions,
            addr,
            stop: AtomicBool::new(false),
            next_producer_id: AtomicI64::new(1000),
            records: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            offsets: Mutex::new(HashMap::new()),
            conns: Mutex::new(Vec::new()),
        }
    }
}

impl Blackhole {
    /// Starts a blackhole on an ephemeral port of 127.0.0.1 where every topic has
    /// `partitions` partitions.
    pub fn start(partitions: i32) -> Result<Blackhole, KitError> {
        Self::start_on("127.0.0.1:0", partitions)
    }

    /// Starts a blackhole listening on `addr` (`host:port`; port 0 picks a free one).
    pub fn start_on(addr: &str, partitions: i32) -> Result<Blackhole, KitError> {
        if partitions < 1 {
            return Err(KitError::Setup(format!(
                "a blackhole topic needs at least 1 partition, not {partitions}"
            )));
        }
        let listener = TcpListener::bind(addr).map_err(|e| {
            KitError::Setup(format!(
                "blackhole broker could not listen on {addr}: {e}; pick another port"
            ))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| KitError::Setup(format!("blackhole broker address: {e}")))?;
        let state = Arc::new(State::new(partitions, local));
        let accept_state = state.clone();
        let accept = std::thread::Builder::new()
            .name("blackhole-accept".into())
            .spawn(move || accept_loop(listener, accept_state))
            .map_err(|e| KitError::Setup(format!("blackhole thread: {e}")))?;
        Ok(Blackhole {
            addr: local,
            state,
            accept: Some(accept),
        })
    }

    /// `host:port` to give a client as `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The partition count of every topic.
    pub fn partitions(&self) -> i32 {
        self.state.partitions
    }

    /// Records acknowledged so far (the sum of the record counts of the batches).
    pub fn records(&self) -> u64 {
        self.state.records.load(Ordering::Relaxed)
    }

    /// Record batches acknowledged so far.
    pub fn batches(&self) -> u64 {
        self.state.batches.load(Ordering::Relaxed)
    }

    /// Bytes of record batches received so far (compressed, as sent).
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// Requests answered so far, of every kind.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept, then hang up on every client.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self
            .state
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for conn in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(c) = stream.try_clone() {
            state
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c);
        }
        let st = state.clone();
        let _ = std::thread::Builder::new()
            .name("blackhole-conn".into())
            .spawn(move || {
                let peer = stream.peer_addr().ok();
                if let Err(e) = serve(stream, &st) {
                    if !st.stop.load(Ordering::SeqCst) {
                        eprintln!("blackhole: closing connection from {peer:?}: {e}");
                    }
                }
            });
    }
}

/// Why a connection ended early.
type ConnResult = Result<(), String>;

fn serve(stream: TcpStream, state: &State) -> ConnResult {
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len) {
            Ok(()) => {}
            // The client hung up between requests: the normal end.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = i32::from_be_bytes(len);
        if len < 8 || len as usize > MAX_REQUEST {
            return Err(format!("request of {len} bytes"));
        }
        let mut body = vec![0u8; len as usize];
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        let mut buf = Bytes::from(body);
        out.clear();
        out.extend_from_slice(&[0; 4]);
        if handle(&mut buf, state, &mut out)? {
            let n = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&n.to_be_bytes());
            writer.write_all(&out).map_err(|e| e.to_string())?;
        }
        state.requests.fetch_add(1, Ordering::Relaxed);
    }
}

fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// Decodes one request and appends the response to `out`; false when the request
/// gets no response (Produce with acks=0).
pub(crate) fn handle(buf: &mut Bytes, state: &State, out: &mut BytesMut) -> Result<bool, String> {
    if buf.len() < 4 {
        return Err("request shorter than its header".into());
    }
    let key_raw = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let key = ApiKey::try_from(key_raw).map_err(|_| format!("unknown api key {key_raw}"))?;
    let Some((min, max)) = supported(key) else {
        return Err(format!(
            "the blackhole does not speak {key:?} (api key {key_raw}); it answers only \
             ApiVersions, Metadata, InitProducerId and Produce"
        ));
    };
    let decode_err = |e: anyhow::Error| format!("decoding {key:?} v{version}: {e}");
    if key == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // KIP-511: answer an ApiVersions we cannot parse with v0 and our range, so
        // the client retries with a version we know.
        let header = RequestHeader::decode(buf, 1).map_err(decode_err)?;
        let resp = api_versions(UNSUPPORTED_VERSION);
        return encode(out, header.correlation_id, key, 0, &resp).map(|()| true);
    }
    if !(min..=max).contains(&version) {
        return Err(format!(
            "{key:?} v{version} is outside the advertised range v{min}-v{max}"
        ));
    }
    let header =
        RequestHeader::decode(buf, key.request_header_version(version)).map_err(decode_err)?;
    let cid = header.correlation_id;
    match key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(buf, version).map_err(decode_err)?;
            encode(out, cid, key, version, &api_versions(0))?;
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(buf, version).map_err(decode_err)?;
            encode(out, cid, key, version, &metadata(state, &req))?;
        }
        ApiKey::InitProducerId => {
            InitProducerIdRequest::decode(buf, version).map_err(decode_err)?;
            let id = state.next_producer_id.fetch_add(1, Ordering::Relaxed);
            let resp = InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0);
            encode(out, cid, key, version, &resp)?;
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(buf, version).map_err(decode_err)?;
            let resp = produce(state, &req);
            if req.acks == 0 {
                return Ok(false);
            }
            encode(out, cid, key, version, &resp)?;
        }
        _ => unreachable!("filtered by supported()"),
    }
    Ok(true)
}

fn encode<M: Encodable>(
    out: &mut BytesMut,
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &M,
) -> Result<(), String> {
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, key.response_header_version(version))
        .and_then(|()| body.encode(out, version))
        .map_err(|e| format!("encoding the {key:?} v{version} response: {e}"))
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

fn metadata(state: &State, req: &MetadataRequest) -> MetadataResponse {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(BLACKHOLE_NODE_ID))
        .with_host(StrBytes::from_string(state.addr.ip().to_string()))
        .with_port(state.addr.port() as i32);
    // A request for all topics (null, or empty before v1) lists none: the blackhole
    // has no catalogue, every named topic exists.
    let topics = req
        .topics
        .iter()
        .flatten()
        .filter_map(|t| t.name.clone())
        .map(|name| {
            MetadataResponseTopic::default()
                .with_name(Some(name))
                .with_partitions(
                    (0..state.partitions)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(BLACKHOLE_NODE_ID))
                                .with_leader_epoch(0)
                                .with_replica_nodes(vec![BrokerId(BLACKHOLE_NODE_ID)])
                                .with_isr_nodes(vec![BrokerId(BLACKHOLE_NODE_ID)])
                        })
                        .collect(),
                )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str("courier-blackhole")))
        .with_controller_id(BrokerId(BLACKHOLE_NODE_ID))
        .with_topics(topics)
}

/// Record count of each batch in a RecordBatch v2 byte run: `lastOffsetDelta + 1`,
/// read from the batch header without touching the (possibly compressed) records.
fn count_records(mut data: &[u8]) -> (u64, u64) {
    // baseOffset i64 | length i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
    // attributes i16 | lastOffsetDelta i32 ...
    const LAST_OFFSET_DELTA_AT: usize = 8 + 4 + 4 + 1 + 4 + 2;
    let (mut records, mut batches) = (0u64, 0u64);
    while data.len() >= LAST_OFFSET_DELTA_AT + 4 {
        let len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
        let delta = i32::from_be_bytes(
            data[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        );
        records += delta.max(0) as u64 + 1;
        batches += 1;
        let next = 12 + len;
        if next > data.len() {
            break;
        }
        data = &data[next..];
    }
    (records, batches)
}

fn produce(state: &State, req: &ProduceRequest) -> ProduceResponse {
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut offsets = state.offsets.lock().unwrap_or_else(|e| e.into_inner());
    for topic in &req.topic_data {
        let name: &str = &topic.name.0;
        if !offsets.contains_key(name) {
            offsets.insert(name.to_string(), vec![0; state.partitions as usize]);
        }
        let next = offsets.get_mut(name).expect("inserted above");
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for p in &topic.partition_data {
            let data = p.records.as_deref().unwrap_or_default();
            let (records, batches) = count_records(data);
            state.records.fetch_add(records, Ordering::Relaxed);
            state.batches.fetch_add(batches, Ordering::Relaxed);
            state.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            let resp = match usize::try_from(p.index).ok().and_then(|i| next.get_mut(i)) {
                Some(offset) => {
                    let base = *offset;
                    *offset += records as i64;
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(0)
                }
                // UNKNOWN_TOPIC_OR_PARTITION for a partition the metadata never named.
                None => PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_error_code(3)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1),
            };
            parts.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(TopicName(topic.name.0.clone()))
                .with_partition_responses(parts),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Admin;

    #[test]
    fn counts_records_of_concatenated_batches() {
        fn batch(last_offset_delta: i32, payload: usize) -> Vec<u8> {
            let mut b = vec![0u8; 61 + payload];
            let len = (b.len() - 12) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
            b
        }
        let mut data = batch(9, 5);
        data.extend(batch(0, 100));
        data.extend(batch(41, 0));
        assert_eq!(count_records(&data), (10 + 1 + 42, 3));
        assert_eq!(count_records(&[]), (0, 0));
    }

    #[test]
    fn metadata_names_every_topic_with_its_partitions_led_by_itself() {
        let bh = Blackhole::start(6).unwrap();
        let mut admin = Admin::new(&bh.bootstrap());
        let md = admin.metadata(Some(&["a", "b"])).unwrap();
        assert_eq!(md.brokers.len(), 1);
        assert_eq!(md.brokers[0].id, BLACKHOLE_NODE_ID);
        assert_eq!(
            format!("{}:{}", md.brokers[0].host, md.brokers[0].port),
            bh.bootstrap()
        );
        assert_eq!(md.topics.len(), 2);
        for t in &md.topics {
            assert_eq!(t.error_code, 0);
            assert_eq!(t.partitions.len(), 6);
            assert!(t.partitions.iter().all(|p| p.leader == BLACKHOLE_NODE_ID));
        }
    }

    #[test]
    fn produce_is_acknowledged_with_increasing_offsets() {
        let bh = Blackhole::start(2).unwrap();
        let mut admin = Admin::new(&bh.bootstrap());
        // Two batches of 3 records on partition 1, each a minimal v2 batch header.
        let mut batch = vec![0u8; 61];
        batch[8..12].copy_from_slice(&49i32.to_be_bytes());
        batch[16] = 2;
        batch[23..27].copy_from_slice(&2i32.to_be_bytes());
        let first = admin
            .produce_raw("t", 1, Bytes::from(batch.clone()), -1)
            .unwrap();
        let second = admin.produce_raw("t", 1, Bytes::from(batch), -1).unwrap();
        assert_eq!((first.0, first.1), (0, 0));
        assert_eq!((second.0, second.1), (0, 3));
        assert_eq!(bh.records(), 6);
        assert_eq!(bh.batches(), 2);
    }
}
