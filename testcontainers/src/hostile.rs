//! A scripted hostile broker: a Kafka-speaking TCP server whose answers a test chooses,
//! request by request, to prove what a client does when a broker (or anything listening on
//! its port) says something broken.
//!
//! ```no_run
//! use courier_testkit::hostile::{Answer, HostileBroker};
//! use courier_testkit::kafka_protocol::messages::ApiKey;
//!
//! // Every Produce request gets 40 bytes of garbage for an answer; the rest is a valid
//! // broker that stores nothing (like the blackhole).
//! let broker = HostileBroker::start(1, |req| match req.api {
//!     ApiKey::Produce => Answer::Frame(vec![0xAB; 40]),
//!     _ => Answer::Normal,
//! })?;
//! println!("bootstrap.servers={}", broker.bootstrap());
//! # Ok::<(), courier_testkit::KitError>(())
//! ```
//!
//! [`Answer::Normal`] is a working broker: ApiVersions (Produce v3-11, Metadata v0-12,
//! InitProducerId v0-4, DescribeConfigs v1-4), Metadata naming every topic with the given
//! partition count led by this broker, InitProducerId, DescribeConfigs
//! (`min.insync.replicas=1`) and Produce acknowledged at once with increasing offsets.
//! Every other answer breaks a rule on purpose. One thread per connection, requests in
//! order, as a broker does.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::blackhole;
use crate::KitError;

/// What the broker advertises in its normal ApiVersions answer.
const ADVERTISED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
];

/// One request, as the script sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The API.
    pub api: ApiKey,
    /// Its version.
    pub version: i16,
    /// Its correlation id.
    pub correlation_id: i32,
    /// How many requests of this API came before it, on every connection.
    pub nth: usize,
    /// Which connection it came on (0 for the first one accepted).
    pub connection: usize,
}

/// How the broker answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// As a working broker would.
    Normal,
    /// This response body, after a correct size prefix and response header (correlation
    /// id, and the empty tagged-field section of a flexible header).
    Body(Vec<u8>),
    /// These bytes and nothing else: no size prefix, no header (garbage, or a frame built
    /// by hand, e.g. one whose size prefix lies).
    Frame(Vec<u8>),
    /// The normal answer, with a correlation id the request did not carry.
    WrongCorrelation,
    /// No answer; the connection stays open.
    Silence,
    /// Close the connection without answering.
    HangUp,
    /// The normal answer, written one byte at a time with this pause between bytes.
    Slowly(Duration),
}

type Script = dyn Fn(&Request) -> Answer + Send + Sync;

struct Shared {
    state: blackhole::State,
    script: Box<Script>,
    stop: AtomicBool,
    connections: AtomicUsize,
    /// Requests seen so far, per API key.
    seen: Mutex<std::collections::HashMap<i16, usize>>,
    conns: Mutex<Vec<TcpStream>>,
}

/// A running hostile broker; stops (and hangs up on every client) when dropped.
pub struct HostileBroker {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostileBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileBroker")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HostileBroker {
    /// Starts a hostile broker on an ephemeral port of 127.0.0.1 whose topics have
    /// `partitions` partitions, answering each request as `script` says.
    pub fn start(
        partitions: i32,
        script: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Result<HostileBroker, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| KitError::Setup(format!("hostile broker could not listen: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| KitError::Setup(format!("hostile broker address: {e}")))?;
        let shared = Arc::new(Shared {
            state: blackhole::State::new(partitions.max(1), addr),
            script: Box::new(script),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            seen: Mutex::default(),
            conns: Mutex::default(),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("hostile-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .map_err(|e| KitError::Setup(format!("hostile broker thread: {e}")))?;
        Ok(HostileBroker {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `host:port` to give a client as `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// How many requests of `api` arrived so far.
    pub fn requests(&self, api: ApiKey) -> usize {
        lock(&self.shared.seen)
            .get(&(api as i16))
            .copied()
            .unwrap_or(0)
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HostileBroker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in lock(&self.shared.conns).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(c) = stream.try_clone() {
            lock(&shared.conns).push(c);
        }
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        let sh = shared.clone();
        let _ = std::thread::Builder::new()
            .name("hostile-conn".into())
            .spawn(move || {
                let _ = serve(stream, &sh, id);
            });
    }
}

fn serve(stream: TcpStream, shared: &Shared, connection: usize) -> Result<(), String> {
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut len = [0u8; 4];
        if reader.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let len = i32::from_be_bytes(len);
        if !(8..=100 << 20).contains(&len) {
            return Err(format!("request of {len} bytes"));
        }
        let mut body = vec![0u8; len as usize];
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        let key_raw = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        let api = ApiKey::try_from(key_raw).map_err(|_| format!("api key {key_raw}"))?;
        let nth = {
            let mut seen = lock(&shared.seen);
            let n = seen.entry(key_raw).or_default();
            *n += 1;
            *n - 1
        };
        let req = Request {
            api,
            version,
            correlation_id,
            nth,
            connection,
        };
        let header_version = if api == ApiKey::ApiVersions {
            0
        } else {
            api.response_header_version(version)
        };
        let frame = match (shared.script)(&req) {
            Answer::Normal => normal(&mut Bytes::from(body), shared, correlation_id)?,
            Answer::WrongCorrelation => normal(
                &mut Bytes::from(body),
                shared,
                correlation_id.wrapping_add(1000),
            )?,
            Answer::Slowly(pause) => {
                if let Some(frame) = normal(&mut Bytes::from(body), shared, correlation_id)? {
                    for b in frame {
                        writer.write_all(&[b]).map_err(|e| e.to_string())?;
                        std::thread::sleep(pause);
                    }
                }
                continue;
            }
            Answer::Body(b) => Some(framed(correlation_id, header_version, &b)),
            Answer::Frame(raw) => Some(raw),
            Answer::Silence => None,
            Answer::HangUp => return Ok(()),
        };
        if let Some(frame) = frame {
            writer.write_all(&frame).map_err(|e| e.to_string())?;
        }
    }
}

/// Size prefix, response header and `body`.
fn framed(correlation_id: i32, header_version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&correlation_id.to_be_bytes());
    if header_version >= 1 {
        out.push(0); // no tagged fields
    }
    out.extend_from_slice(body);
    let n = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&n.to_be_bytes());
    out
}

/// The working broker's answer (with `correlation_id` in its header), or `None` for a
/// request without a response (Produce with acks=0).
fn normal(
    request: &mut Bytes,
    shared: &Shared,
    correlation_id: i32,
) -> Result<Option<Vec<u8>>, String> {
    let key = ApiKey::try_from(i16::from_be_bytes([request[0], request[1]]))
        .map_err(|_| "api key".to_string())?;
    let version = i16::from_be_bytes([request[2], request[3]]);
    let body = match key {
        ApiKey::ApiVersions => {
            // KIP-511: ApiVersions answers use header v0, whatever the request's version;
            // an unknown version is answered in v0 with UNSUPPORTED_VERSION.
            let (v, code) = if version <= 3 { (version, 0) } else { (0, 35) };
            encode(&api_versions(code), v)?
        }
        ApiKey::DescribeConfigs => {
            RequestHeader::decode(request, key.request_header_version(version))
                .map_err(|e| e.to_string())?;
            let req =
                DescribeConfigsRequest::decode(request, version).map_err(|e| e.to_string())?;
            encode(&describe_configs(&req), version)?
        }
        _ => {
            let mut out = BytesMut::new();
            out.extend_from_slice(&[0; 4]);
            if !blackhole::handle(request, &shared.state, &mut out)? {
                return Ok(None);
            }
            // The blackhole wrote the header with the request's correlation id.
            let mut frame = out.to_vec();
            let n = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&n.to_be_bytes());
            frame[4..8].copy_from_slice(&correlation_id.to_be_bytes());
            return Ok(Some(frame));
        }
    };
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    let mut header = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut header, header_version)
        .map_err(|e| e.to_string())?;
    let mut frame = Vec::with_capacity(4 + header.len() + body.len());
    frame.extend_from_slice(&((header.len() + body.len()) as i32).to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&body);
    Ok(Some(frame))
}

/// `msg` encoded at `version`, to build [`Answer::Body`]s with.
pub fn encode<M: Encodable>(msg: &M, version: i16) -> Result<Vec<u8>, String> {
    let mut b = BytesMut::new();
    msg.encode(&mut b, version).map_err(|e| e.to_string())?;
    Ok(b.to_vec())
}

/// The normal ApiVersions answer (with `error_code`).
pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            ADVERTISED
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

fn describe_configs(req: &DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|r| {
            DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_configs(vec![DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_static_str("1")))
                    .with_config_source(5)])
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Admin;

    #[test]
    fn normal_answers_make_a_working_broker() {
        let b = HostileBroker::start(3, |_| Answer::Normal).unwrap();
        let mut admin = Admin::new(&b.bootstrap());
        let md = admin.metadata(Some(&["t"])).unwrap();
        assert_eq!(md.topics[0].partitions.len(), 3);
        assert_eq!(b.requests(ApiKey::Metadata), 1);
        assert!(b.connections() >= 1);
    }

    #[test]
    fn scripted_answers_reach_the_client() {
        let b = HostileBroker::start(1, |req| match req.api {
            ApiKey::Metadata => Answer::Frame(vec![0, 0, 0, 4, 1, 2, 3, 4]),
            _ => Answer::Normal,
        })
        .unwrap();
        let mut admin = Admin::new(&b.bootstrap());
        // A correlation id the admin client did not send: it must refuse the answer.
        assert!(admin.metadata(Some(&["t"])).is_err());
    }
}
