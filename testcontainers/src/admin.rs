//! A small blocking admin client: just what the kit needs to create topics, read
//! leaders and ISRs, and count what a partition holds.
//!
//! It is deliberately separate from courier's producer: the kit judges the producer,
//! so it must not share its network code. Messages come from the `kafka-protocol`
//! crate; versions are fixed ones that Kafka 4.x brokers accept.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::KitError;

const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const DELETE_TOPICS_VERSION: i16 = 6;
const LIST_OFFSETS_VERSION: i16 = 8;
const PRODUCE_VERSION: i16 = 11;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker as the cluster's metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
}

/// One partition's replicas as the metadata reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, or -1 while there is none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Assigned replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Kafka error code for this partition (0 = none).
    pub error_code: i16,
}

/// A topic as the metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// Topic name.
    pub name: String,
    /// Kafka error code for the topic (0 = none, 3 = unknown topic).
    pub error_code: i16,
    /// Partitions, ordered by index.
    pub partitions: Vec<PartitionState>,
}

/// A cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Brokers that are registered and not fenced.
    pub brokers: Vec<BrokerInfo>,
    /// Topics asked for.
    pub topics: Vec<TopicState>,
}

/// What to create: name, partitions, replication factor and topic configs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor; -1 takes the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic-level configs, e.g. `min.insync.replicas`.
    pub configs: BTreeMap<String, String>,
}

impl TopicSpec {
    /// A topic with one partition and the broker's default replication factor.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            partitions: 1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Sets the partition count.
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = n;
        self
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = rf;
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// One open connection to one broker.
struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Connection {
    fn open(addr: &str) -> Result<Self, KitError> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| KitError::Broker(format!("resolving {addr}: {e}")))?
            .next()
            .ok_or_else(|| KitError::Broker(format!("{addr} resolves to nothing")))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
            .map_err(|e| KitError::Broker(format!("connecting to {addr}: {e}")))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_nodelay(true).ok();
        Ok(Self {
            stream,
            next_correlation_id: 1,
        })
    }

    fn call<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, KitError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("courier-testkit")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| req.encode(&mut body, version))
            .map_err(|e| KitError::Broker(format!("encoding api {}: {e}", R::KEY)))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        let io = |e: std::io::Error| KitError::Broker(format!("api {}: {e}", R::KEY));
        self.stream.write_all(&frame).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = i32::from_be_bytes(len);
        if !(0..=64 << 20).contains(&len) {
            return Err(KitError::Broker(format!(
                "response of {len} bytes to api {}",
                R::KEY
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).map_err(io)?;
        let mut buf = Bytes::from(buf);
        let decode_err = |e: anyhow::Error| {
            KitError::Broker(format!("decoding response to api {}: {e}", R::KEY))
        };
        let resp_header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .map_err(decode_err)?;
        if resp_header.correlation_id != correlation_id {
            return Err(KitError::Broker(format!(
                "correlation id {} in response, expected {correlation_id}",
                resp_header.correlation_id
            )));
        }
        R::Response::decode(&mut buf, version).map_err(decode_err)
    }
}

/// A blocking admin client over one or more brokers.
pub struct Admin {
    bootstrap: Vec<String>,
    /// Connections by node id; node -1 is whichever bootstrap address answered.
    conns: HashMap<i32, Connection>,
    brokers: HashMap<i32, BrokerInfo>,
}

impl Admin {
    /// An admin client for a comma-separated bootstrap list. Connects lazily.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            conns: HashMap::new(),
            brokers: HashMap::new(),
        }
    }

    /// Calls `req` on any live broker, trying each bootstrap address and each known
    /// broker until one answers; a dead broker is expected in fault tests.
    fn call_any<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, KitError> {
        if let Some(conn) = self.conns.get_mut(&-1) {
            match conn.call(req, version) {
                Ok(resp) => return Ok(resp),
                Err(_) => {
                    self.conns.remove(&-1);
                }
            }
        }
        let mut candidates = self.bootstrap.clone();
        candidates.extend(
            self.brokers
                .values()
                .map(|b| format!("{}:{}", b.host, b.port)),
        );
        let mut errors = Vec::new();
        for addr in candidates {
            match Connection::open(&addr).and_then(|mut c| c.call(req, version).map(|r| (c, r))) {
                Ok((conn, resp)) => {
                    self.conns.insert(-1, conn);
                    return Ok(resp);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(KitError::Broker(format!(
            "no broker answered: {}",
            errors.join("; ")
        )))
    }

    /// Calls `req` on broker `node`.
    fn call_node<R: Request>(
        &mut self,
        node: i32,
        req: &R,
        version: i16,
    ) -> Result<R::Response, KitError> {
        if !self.conns.contains_key(&node) {
            if !self.brokers.contains_key(&node) {
                self.metadata(Some(&[]))?;
            }
            let info = self
                .brokers
                .get(&node)
                .ok_or_else(|| KitError::Broker(format!("broker {node} is not in the metadata")))?;
            let conn = Connection::open(&format!("{}:{}", info.host, info.port))?;
            self.conns.insert(node, conn);
        }
        let result = self
            .conns
            .get_mut(&node)
            .expect("just inserted")
            .call(req, version);
        if result.is_err() {
            self.conns.remove(&node);
        }
        result
    }

    /// Fetches metadata: `None` asks for all topics, `Some(&[])` for none (brokers only).
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<ClusterMetadata, KitError> {
        let req = MetadataRequest::default().with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect()
        }));
        let resp = self.call_any(&req, METADATA_VERSION)?;
        let brokers: Vec<BrokerInfo> = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port as u16,
            })
            .collect();
        self.brokers = brokers.iter().map(|b| (b.id, b.clone())).collect();
        let mut topics: Vec<TopicState> = resp
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionState> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionState {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        error_code: p.error_code,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicState {
                    name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    error_code: t.error_code,
                    partitions,
                }
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ClusterMetadata { brokers, topics })
    }

    /// Creates a topic. Fails if it exists or the broker refuses the spec.
    pub fn create_topic(&mut self, spec: &TopicSpec) -> Result<(), KitError> {
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(spec.name.clone())))
            .with_num_partitions(spec.partitions)
            .with_replication_factor(spec.replication_factor)
            .with_configs(
                spec.configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        let resp = self.call_any(&req, CREATE_TOPICS_VERSION)?;
        for t in resp.topics {
            if t.error_code != 0 {
                return Err(KitError::Broker(format!(
                    "creating topic {}: error {} ({})",
                    spec.name,
                    t.error_code,
                    t.error_message.map(|m| m.to_string()).unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Deletes a topic.
    pub fn delete_topic(&mut self, name: &str) -> Result<(), KitError> {
        let req = DeleteTopicsRequest::default()
            .with_topics(vec![DeleteTopicState::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))])
            .with_timeout_ms(30_000);
        let resp = self.call_any(&req, DELETE_TOPICS_VERSION)?;
        for r in resp.responses {
            if r.error_code != 0 {
                return Err(KitError::Broker(format!(
                    "deleting topic {name}: error {} ({})",
                    r.error_code,
                    r.error_message.map(|m| m.to_string()).unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// The log start and end offsets of every partition of `topic`, asked of each
    /// partition's leader: `(partition, start, end)`. `end - start` is what the
    /// partition holds when nothing was deleted by retention.
    ///
    /// Right after a topic is created (or a leader moves) the metadata can name a leader
    /// that has not taken over yet and answers NOT_LEADER_OR_FOLLOWER; such answers are
    /// asked again with fresh metadata for up to [`OFFSETS_RETRY_FOR`].
    pub fn offsets(&mut self, topic: &str) -> Result<Vec<(i32, i64, i64)>, KitError> {
        let deadline = std::time::Instant::now() + OFFSETS_RETRY_FOR;
        loop {
            match self.offsets_once(topic) {
                Err(OffsetsError::Retriable(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(OffsetsError::Retriable(e) | OffsetsError::Final(e)) => return Err(e),
                Ok(out) => return Ok(out),
            }
        }
    }

    fn offsets_once(&mut self, topic: &str) -> Result<Vec<(i32, i64, i64)>, OffsetsError> {
        let md = self.metadata(Some(&[topic]))?;
        let t = md
            .topics
            .first()
            .filter(|t| t.error_code == 0)
            .ok_or_else(|| KitError::Broker(format!("topic {topic} not found")))?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &t.partitions {
            if p.leader < 0 {
                return Err(OffsetsError::Retriable(KitError::Broker(format!(
                    "{topic}/{} has no leader",
                    p.partition
                ))));
            }
            by_leader.entry(p.leader).or_default().push(p.partition);
        }
        let mut out = Vec::new();
        for (leader, parts) in by_leader {
            let mut ends = HashMap::new();
            let mut starts = HashMap::new();
            // -1 = latest, -2 = earliest (ListOffsets' special timestamps).
            for (ts, into) in [(-1i64, &mut ends), (-2i64, &mut starts)] {
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|&p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(ts)
                                })
                                .collect(),
                        )]);
                let resp = self.call_node(leader, &req, LIST_OFFSETS_VERSION)?;
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code != 0 {
                            let e = KitError::Broker(format!(
                                "ListOffsets {topic}/{}: error {}",
                                p.partition_index, p.error_code
                            ));
                            // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
                            // NOT_LEADER_OR_FOLLOWER: the leadership is still settling.
                            return Err(if matches!(p.error_code, 3 | 5 | 6) {
                                OffsetsError::Retriable(e)
                            } else {
                                OffsetsError::Final(e)
                            });
                        }
                        into.insert(p.partition_index, p.offset);
                    }
                }
            }
            for p in parts {
                out.push((p, starts[&p], ends[&p]));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Sends one already-encoded record batch to the leader of `topic`/`partition`
    /// with the given `acks`, and returns `(error_code, base_offset)`. For golden tests
    /// of batches built outside a producer.
    pub fn produce_raw(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<(i16, i64), KitError> {
        let md = self.metadata(Some(&[topic]))?;
        let leader = md
            .topics
            .first()
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
            .ok_or_else(|| KitError::Broker(format!("{topic}/{partition} has no leader")))?;
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let resp = self.call_node(leader, &req, PRODUCE_VERSION)?;
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| KitError::Broker("empty produce response".into()))?;
        Ok((p.error_code, p.base_offset))
    }
}

/// How long [`Admin::offsets`] asks again while a partition's leadership settles.
pub const OFFSETS_RETRY_FOR: Duration = Duration::from_secs(30);

/// A failed [`Admin::offsets`] attempt: worth another try, or not.
enum OffsetsError {
    Retriable(KitError),
    Final(KitError),
}

impl From<KitError> for OffsetsError {
    fn from(e: KitError) -> Self {
        OffsetsError::Final(e)
    }
}
