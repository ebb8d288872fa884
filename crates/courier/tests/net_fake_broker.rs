//! Edge cases of the connection layer that a real Kafka broker will not produce on demand,
//! against a scripted fake broker on loopback: out-of-order responses, a peer that hangs up
//! mid-request, responses that never come, ApiVersions fallback, an ancient broker.
//!
//! The proof that courier talks to Kafka is `tests/net.rs` (real brokers); these only pin
//! down what happens when the peer misbehaves.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use courier::net::{
    fetch_metadata, BrokerConnection, CloseReason, ConnectOptions, ConnectionPool, NetError,
    ProduceRequestParts, ReconnectBackoff,
};
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the fake broker read it.
#[derive(Debug)]
struct Req {
    key: i16,
    version: i16,
    correlation_id: i32,
    client_id: String,
    body: Bytes,
}

async fn read_request(s: &mut TcpStream) -> Option<Req> {
    let size = s.read_i32().await.ok()?;
    let mut buf = BytesMut::zeroed(size as usize);
    s.read_exact(&mut buf).await.ok()?;
    let mut b = buf.freeze();
    let key = b.get_i16();
    let version = b.get_i16();
    let correlation_id = b.get_i32();
    let len = b.get_i16();
    let client_id = String::from_utf8(b.split_to(len.max(0) as usize).to_vec()).unwrap();
    let api = ApiKey::try_from(key).unwrap();
    if api.request_header_version(version) >= 2 {
        // Tagged fields of header v2 (KIP-482); courier sends none.
        assert_eq!(
            b.get_u8(),
            0,
            "no tagged fields expected in the request header"
        );
    }
    Some(Req {
        key,
        version,
        correlation_id,
        client_id,
        body: b,
    })
}

async fn write_response(s: &mut TcpStream, key: ApiKey, version: i16, cid: i32, body: &[u8]) {
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i32(cid);
    if key.response_header_version(version) >= 1 {
        frame.put_u8(0); // empty tagged fields
    }
    frame.put_slice(body);
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&frame).await.unwrap();
}

fn encode<T: Encodable>(msg: &T, version: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    msg.encode(&mut b, version).unwrap();
    b.to_vec()
}

fn api(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(min)
        .with_max_version(max)
}

fn modern_apis() -> Vec<ApiVersion> {
    vec![
        api(ApiKey::Produce, 3, 11),
        api(ApiKey::Metadata, 0, 12),
        api(ApiKey::InitProducerId, 0, 5),
        api(ApiKey::ApiVersions, 0, 3),
    ]
}

/// Answers the ApiVersions handshake with `apis`.
async fn handshake(s: &mut TcpStream, apis: Vec<ApiVersion>) -> Req {
    let req = read_request(s).await.expect("ApiVersions request");
    assert_eq!(req.key, ApiKey::ApiVersions as i16);
    let resp = ApiVersionsResponse::default().with_api_keys(apis);
    write_response(
        s,
        ApiKey::ApiVersions,
        req.version,
        req.correlation_id,
        &encode(&resp, req.version),
    )
    .await;
    req
}

fn produce_response_body(version: i16, base_offset: i64) -> Vec<u8> {
    let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partition_responses(vec![PartitionProduceResponse::default()
            .with_index(0)
            .with_base_offset(base_offset)])]);
    encode(&resp, version)
}

/// A listener whose first connection is handed to `script`.
async fn fake_broker<F, Fut>(script: F) -> String
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        script(s).await;
    });
    addr
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        client_id: "fake-test".into(),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        max_in_flight: 5,
        ..ConnectOptions::default()
    }
}

async fn connect_with_request_timeout(addr: &str, request_timeout: Duration) -> BrokerConnection {
    BrokerConnection::connect(
        addr,
        &ConnectOptions {
            request_timeout,
            ..opts()
        },
    )
    .await
    .unwrap()
}

fn produce(acks: i16, payload: &'static [u8]) -> ProduceRequestParts {
    ProduceRequestParts {
        transactional_id: None,
        acks,
        timeout_ms: 1000,
        topics: vec![("t".into(), vec![(0, Some(Bytes::from_static(payload)))])],
    }
}

#[tokio::test]
async fn api_versions_unsupported_version_falls_back_to_the_version_the_broker_names() {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let addr = fake_broker(|mut s| async move {
        // An older broker: it cannot read v3, so it answers in v0 with error 35 and the
        // ApiVersions versions it knows (KIP-511's compatibility rule).
        let first = read_request(&mut s).await.unwrap();
        let resp = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(vec![api(ApiKey::ApiVersions, 0, 2)]);
        write_response(
            &mut s,
            ApiKey::ApiVersions,
            0,
            first.correlation_id,
            &encode(&resp, 0),
        )
        .await;
        let second = handshake(
            &mut s,
            vec![
                api(ApiKey::Produce, 0, 8),
                api(ApiKey::Metadata, 0, 9),
                api(ApiKey::ApiVersions, 0, 2),
            ],
        )
        .await;
        seen_tx
            .send((first.version, second.version, second.client_id))
            .unwrap();
        let _ = read_request(&mut s).await; // keep the socket open until the client hangs up
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let (first, second, client_id) = seen_rx.await.unwrap();
    assert_eq!((first, second), (3, 2));
    assert_eq!(client_id, "fake-test");
    assert_eq!(conn.version(ApiKey::Produce).unwrap(), 8);
    assert_eq!(conn.version(ApiKey::Metadata).unwrap(), 9);
    assert_eq!(conn.version(ApiKey::ApiVersions).unwrap(), 2);
    assert!(conn.version(ApiKey::InitProducerId).is_err());
}

/// Answers the ApiVersions v3 handshake with `apis` and these finalized features
/// (name, level) at `epoch`.
async fn handshake_with_features(
    s: &mut TcpStream,
    apis: Vec<ApiVersion>,
    epoch: i64,
    features: &[(&'static str, i16)],
) {
    let req = read_request(s).await.expect("ApiVersions request");
    assert_eq!((req.key, req.version), (ApiKey::ApiVersions as i16, 3));
    let resp = ApiVersionsResponse::default()
        .with_api_keys(apis)
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(
            features
                .iter()
                .map(|&(name, level)| {
                    FinalizedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_max_version_level(level)
                        .with_min_version_level(level)
                })
                .collect(),
        );
    write_response(
        s,
        ApiKey::ApiVersions,
        3,
        req.correlation_id,
        &encode(&resp, 3),
    )
    .await;
    let _ = read_request(s).await; // keep the socket open until the client hangs up
}

/// The finalized features of ApiVersions v3 (KIP-584) are kept with the connection; the
/// transaction version the producer picks comes from them.
#[tokio::test]
async fn finalized_features_are_kept_and_count_only_with_an_epoch() {
    let addr = fake_broker(|mut s| async move {
        handshake_with_features(&mut s, modern_apis(), 42, &[("transaction.version", 2)]).await
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    assert_eq!(conn.finalized_features().epoch, 42);
    assert_eq!(conn.finalized_features().transaction_version(), Some(2));
    // Epoch -1: the schema says the list is not valid.
    let addr = fake_broker(|mut s| async move {
        handshake_with_features(&mut s, modern_apis(), -1, &[("transaction.version", 2)]).await
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    assert_eq!(conn.finalized_features().transaction_version(), None);
}

/// The pool keeps the finalized features with the highest epoch any connection
/// reported, as Java's `ApiVersions.update` does: a broker that lags behind a change
/// (a lower epoch) does not make the view go back.
#[tokio::test]
async fn the_pool_keeps_the_newest_finalized_features_by_epoch() {
    let newer = fake_broker(|mut s| async move {
        handshake_with_features(&mut s, modern_apis(), 10, &[("transaction.version", 2)]).await
    })
    .await;
    let older = fake_broker(|mut s| async move {
        let mut apis = modern_apis();
        apis[0] = api(ApiKey::Produce, 3, 9);
        handshake_with_features(&mut s, apis, 5, &[("transaction.version", 1)]).await
    })
    .await;
    let pool = ConnectionPool::new(
        &format!("{newer},{older}"),
        opts(),
        ReconnectBackoff::default(),
    );
    assert_eq!(pool.finalized_features().epoch, -1, "nothing known yet");
    assert_eq!(pool.lowest_max_version(ApiKey::Produce), None);
    let a = pool.get_bootstrap().await.unwrap();
    let b = pool.get_bootstrap().await.unwrap();
    assert_ne!(a.addr(), b.addr());
    let f = pool.finalized_features();
    assert_eq!((f.epoch, f.transaction_version()), (10, Some(2)));
    // What a request to any open connection can count on: the older broker's Produce.
    assert_eq!(pool.lowest_max_version(ApiKey::Produce), Some(9));
    assert_eq!(pool.lowest_max_version(ApiKey::EndTxn), Some(-1));
}

/// A broker that lists one finalized feature twice (which level holds?) fails the
/// connection with a protocol error, never a guess or a panic.
#[tokio::test]
async fn a_finalized_feature_listed_twice_is_a_protocol_error() {
    let addr = fake_broker(|mut s| async move {
        handshake_with_features(
            &mut s,
            modern_apis(),
            7,
            &[("transaction.version", 2), ("transaction.version", 0)],
        )
        .await
    })
    .await;
    let e = BrokerConnection::connect(&addr, &opts()).await.unwrap_err();
    assert!(matches!(e, NetError::Decode { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("finalized feature \"transaction.version\" is listed twice"),
        "{e}"
    );
}

#[tokio::test]
async fn broker_without_produce_v3_is_refused_at_connect_with_the_kafka_version_needed() {
    let addr = fake_broker(|mut s| async move {
        handshake(
            &mut s,
            vec![
                api(ApiKey::Produce, 0, 2),
                api(ApiKey::Metadata, 0, 4),
                api(ApiKey::ApiVersions, 0, 3),
            ],
        )
        .await;
    })
    .await;
    let err = BrokerConnection::connect(&addr, &opts()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "broker supports Produce v0..2 only; courier needs v3+ (Kafka 0.11+)"
    );
    assert!(!err.maybe_written());
}

#[tokio::test]
async fn produce_on_the_wire_decodes_as_kafka_protocol_and_gets_its_response() {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let mut req = read_request(&mut s).await.unwrap();
        let decoded = ProduceRequest::decode(&mut req.body, req.version).unwrap();
        write_response(
            &mut s,
            ApiKey::Produce,
            req.version,
            req.correlation_id,
            &produce_response_body(req.version, 42),
        )
        .await;
        seen_tx.send((req.version, decoded)).unwrap();
        let _ = read_request(&mut s).await;
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let resp = conn
        .send_produce(produce(-1, b"batch-bytes"))
        .await
        .unwrap()
        .expect("acks=-1 has a response");
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 42);
    let (version, decoded) = seen_rx.await.unwrap();
    assert_eq!(version, 11, "highest common Produce version");
    assert_eq!(decoded.acks, -1);
    assert_eq!(decoded.topic_data[0].name.0.as_str(), "t");
    assert_eq!(
        decoded.topic_data[0].partition_data[0].records.as_deref(),
        Some(&b"batch-bytes"[..])
    );
    assert_eq!(conn.in_flight(), 0, "the window slot is released");
}

#[tokio::test]
async fn mismatched_correlation_id_closes_the_connection_and_fails_in_flight_as_maybe_written() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let a = read_request(&mut s).await.unwrap();
        let b = read_request(&mut s).await.unwrap();
        // Answer the second request first: Kafka never does this, so the client must not
        // hand this response to the first request.
        write_response(
            &mut s,
            ApiKey::Produce,
            b.version,
            b.correlation_id,
            &produce_response_body(b.version, 1),
        )
        .await;
        let _ = a;
        let _ = read_request(&mut s).await;
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let (pa, pb) = (produce(-1, b"a"), produce(-1, b"b"));
    let (ra, rb) = tokio::join!(conn.send_produce(pa), conn.send_produce(pb));
    for r in [ra, rb] {
        let e = r.unwrap_err();
        assert!(
            matches!(
                &e,
                NetError::ConnectionLost {
                    reason: CloseReason::Protocol(m), ..
                } if m.contains("does not match")
            ),
            "{e}"
        );
        assert!(e.maybe_written());
    }
    assert!(conn.is_closed());
    // Later requests are refused without being written.
    let e = conn.send_produce(produce(-1, b"c")).await.unwrap_err();
    assert!(matches!(e, NetError::NotSent { .. }), "{e}");
    assert!(!e.maybe_written());
}

#[tokio::test]
async fn broker_closing_mid_request_fails_it_as_maybe_written_and_later_ones_as_not_sent() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let _ = read_request(&mut s).await.unwrap();
        drop(s); // hang up without answering
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let e = conn.send_produce(produce(-1, b"x")).await.unwrap_err();
    assert!(
        matches!(
            e,
            NetError::ConnectionLost {
                reason: CloseReason::PeerClosed,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.maybe_written());
    assert!(e.to_string().contains("outcome unknown"), "{e}");
    let e = conn.send_produce(produce(-1, b"y")).await.unwrap_err();
    assert!(matches!(e, NetError::NotSent { .. }), "{e}");
    assert!(!e.maybe_written());
}

#[tokio::test]
async fn missing_response_times_out_and_fails_every_in_flight_request_as_possibly_written() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        // Read everything, answer nothing.
        while read_request(&mut s).await.is_some() {}
    })
    .await;
    let conn = connect_with_request_timeout(&addr, Duration::from_millis(300)).await;
    let start = Instant::now();
    let parts: Vec<ProduceRequestParts> = (0..3).map(|_| produce(-1, b"z")).collect();
    let (a, b, c) = tokio::join!(
        conn.send_produce(parts[0].clone()),
        conn.send_produce(parts[1].clone()),
        conn.send_produce(parts[2].clone())
    );
    let errors = [a.unwrap_err(), b.unwrap_err(), c.unwrap_err()];
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, NetError::Timeout { written: true, .. })),
        "{errors:?}"
    );
    for e in &errors {
        assert!(e.maybe_written(), "{e}");
        assert!(
            matches!(
                e,
                NetError::Timeout { .. } | NetError::ConnectionLost { .. }
            ),
            "{e}"
        );
    }
    assert!(matches!(
        conn.close_reason(),
        Some(CloseReason::RequestTimeout { .. })
    ));
}

#[tokio::test]
async fn request_waiting_for_a_window_slot_fails_as_not_sent_when_the_connection_dies() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let _ = read_request(&mut s).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    })
    .await;
    let conn = BrokerConnection::connect(
        &addr,
        &ConnectOptions {
            max_in_flight: 1,
            ..opts()
        },
    )
    .await
    .unwrap();
    let (first, second) = (produce(-1, b"1"), produce(-1, b"2"));
    let (a, b) = tokio::join!(conn.send_produce(first), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!conn.has_capacity(), "the only slot is taken");
        assert_eq!(conn.in_flight(), 1);
        conn.send_produce(second).await
    });
    assert!(a.unwrap_err().maybe_written());
    let b = b.unwrap_err();
    assert!(matches!(b, NetError::NotSent { .. }), "{b}");
    assert!(!b.maybe_written());
}

#[tokio::test]
async fn acks_zero_completes_once_written_and_does_not_disturb_response_matching() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let p = read_request(&mut s).await.unwrap();
        assert_eq!(p.key, ApiKey::Produce as i16);
        // No response for acks=0. Then a Metadata request, answered normally.
        let m = read_request(&mut s).await.unwrap();
        assert_eq!(m.key, ApiKey::Metadata as i16);
        let resp = MetadataResponse::default();
        write_response(
            &mut s,
            ApiKey::Metadata,
            m.version,
            m.correlation_id,
            &encode(&resp, m.version),
        )
        .await;
        let _ = read_request(&mut s).await;
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        conn.send_produce(produce(0, b"fire")),
    )
    .await
    .expect("acks=0 must not wait for a response")
    .unwrap();
    assert!(r.is_none());
    assert_eq!(conn.in_flight(), 0);
    let md = fetch_metadata(&conn, &[]).await.unwrap();
    assert!(md.brokers.is_empty());
}

#[tokio::test]
async fn pipelined_requests_are_written_in_submission_order_and_matched_in_order() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        // Read all five before answering any: they are all in flight at once.
        let mut reqs = Vec::new();
        for _ in 0..5 {
            reqs.push(read_request(&mut s).await.unwrap());
        }
        for (i, r) in reqs.iter_mut().enumerate() {
            let d = ProduceRequest::decode(&mut r.body, r.version).unwrap();
            let payload = d.topic_data[0].partition_data[0].records.clone().unwrap();
            // Echo the submission index the client put in the payload as the offset.
            let idx = i64::from(payload[0]);
            assert_eq!(idx, i as i64, "written out of submission order");
            write_response(
                &mut s,
                ApiKey::Produce,
                r.version,
                r.correlation_id,
                &produce_response_body(r.version, 100 + idx),
            )
            .await;
        }
        let _ = read_request(&mut s).await;
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    static PAYLOADS: [[u8; 1]; 5] = [[0], [1], [2], [3], [4]];
    let parts: Vec<ProduceRequestParts> = PAYLOADS.iter().map(|p| produce(-1, p)).collect();
    // Reserve all five slots up front, in order, then send: the window is full.
    let permits: Vec<_> = (0..5).map(|_| conn.try_reserve().unwrap()).collect();
    assert!(conn.try_reserve().is_none());
    assert!(!conn.has_capacity());
    // start_produce queues at once: the order of these calls is the write order, whatever
    // order the futures are later polled in. Spawned (they are 'static) and awaited last
    // to first.
    let handles: Vec<_> = permits
        .into_iter()
        .zip(parts)
        .map(|(permit, p)| tokio::spawn(conn.start_produce(permit, p)))
        .collect();
    let mut offsets = Vec::new();
    for h in handles.into_iter().rev() {
        let r = h.await.unwrap().unwrap().unwrap();
        offsets.push(r.responses[0].partition_responses[0].base_offset);
    }
    offsets.reverse();
    assert_eq!(offsets, vec![100, 101, 102, 103, 104]);
    assert_eq!(conn.in_flight(), 0);
}

/// A listener that serves the handshake on every connection it accepts; the first
/// connection is hung up right after its handshake. Returns the address and a counter of
/// accepted connections.
async fn flaky_broker() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                handshake(&mut s, modern_apis()).await;
                if n > 0 {
                    while read_request(&mut s).await.is_some() {}
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn connect_refused_names_the_address_and_what_to_check() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let e = BrokerConnection::connect(&addr, &opts()).await.unwrap_err();
    assert!(matches!(e, NetError::Connect { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("could not connect to {addr}: ")),
        "{msg}"
    );
    assert!(
        msg.ends_with("is the broker running and is bootstrap.servers right?"),
        "{msg}"
    );
    assert!(!e.maybe_written());
}

#[tokio::test]
async fn invalid_address_is_refused_before_any_io() {
    for bad in ["localhost", "localhost:", ":9092", "host:notaport"] {
        let e = BrokerConnection::connect(bad, &opts()).await.unwrap_err();
        assert!(matches!(e, NetError::InvalidAddress { .. }), "{bad}: {e}");
    }
}

#[tokio::test]
async fn connect_times_out_when_the_broker_never_answers_api_versions() {
    let addr =
        fake_broker(|mut s| async move { while read_request(&mut s).await.is_some() {} }).await;
    let start = Instant::now();
    let e = BrokerConnection::connect(
        &addr,
        &ConnectOptions {
            connect_timeout: Duration::from_millis(200),
            ..opts()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, NetError::ConnectTimeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(e.to_string().contains("socket.connection.setup.timeout.ms"));
}

#[tokio::test]
async fn pool_replaces_a_broken_connection_on_next_use_after_the_backoff() {
    let (addr, accepted) = flaky_broker().await;
    let pool = ConnectionPool::new("unused:1", opts(), ReconnectBackoff::default());
    pool.set_broker_address(1, addr);
    let first = pool.get(1).await.unwrap();
    // Same connection while it is healthy... until the broker hangs up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !first.is_closed() {
        assert!(Instant::now() < deadline, "broker did not hang up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let closed_at = first.closed_at().unwrap();
    let second = pool.get(1).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &second));
    assert!(!second.is_closed());
    // First reconnect waits reconnect.backoff.ms (50 ms -20% jitter) from the close.
    assert!(
        closed_at.elapsed() >= Duration::from_millis(40),
        "{:?}",
        closed_at.elapsed()
    );
    let again = pool.get(1).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&second, &again),
        "healthy connection is reused"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_gets_share_one_connection() {
    let (addr, accepted) = flaky_broker().await;
    let pool = ConnectionPool::new(&addr, opts(), ReconnectBackoff::default());
    // The first connection is hung up by the broker; take it out of the way.
    let doomed = pool.get_bootstrap().await.unwrap();
    while !doomed.is_closed() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (a, b) = tokio::join!(pool.get_bootstrap(), pool.get_bootstrap());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(std::sync::Arc::ptr_eq(&pool.least_loaded().unwrap(), &a));
}

#[tokio::test]
async fn pool_backs_off_exponentially_between_failed_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let pool = ConnectionPool::new(&addr, opts(), ReconnectBackoff::default());
    let mut waits = Vec::new();
    for _ in 0..4 {
        let start = Instant::now();
        let e = pool.get_bootstrap().await.unwrap_err();
        assert!(matches!(e, NetError::Connect { .. }), "{e}");
        waits.push(start.elapsed());
    }
    // 0, then 50, 100, 200 ms each ±20%.
    assert!(waits[0] < Duration::from_millis(40), "{waits:?}");
    for (w, nominal) in waits[1..].iter().zip([50u64, 100, 200]) {
        let lo = Duration::from_millis(nominal * 8 / 10);
        let hi = Duration::from_millis(nominal * 12 / 10 + 100);
        assert!(*w >= lo && *w <= hi, "{waits:?}");
    }
}

#[tokio::test]
async fn pool_refuses_a_node_it_has_no_address_for() {
    let pool = ConnectionPool::new("a:1", opts(), ReconnectBackoff::default());
    let e = pool.get(7).await.unwrap_err();
    assert!(matches!(e, NetError::UnknownBroker { node_id: 7 }), "{e}");
    assert!(!e.maybe_written());
}

#[tokio::test]
async fn close_fails_in_flight_requests_as_maybe_written_and_closes_the_socket() {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        while read_request(&mut s).await.is_some() {}
        closed_tx.send(()).unwrap(); // end of stream: the client closed the socket
    })
    .await;
    let conn = std::sync::Arc::new(BrokerConnection::connect(&addr, &opts()).await.unwrap());
    let c2 = conn.clone();
    let pending = tokio::spawn(async move { c2.send_produce(produce(-1, b"p")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.close();
    let e = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            NetError::ConnectionLost {
                reason: CloseReason::Shutdown,
                ..
            }
        ),
        "{e}"
    );
    drop(conn);
    tokio::time::timeout(Duration::from_secs(2), closed_rx)
        .await
        .expect("socket closed")
        .unwrap();
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_socket() {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        while read_request(&mut s).await.is_some() {}
        closed_tx.send(()).unwrap();
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    drop(conn);
    tokio::time::timeout(Duration::from_secs(2), closed_rx)
        .await
        .expect("socket closed on drop")
        .unwrap();
}

#[tokio::test]
async fn tagged_fields_in_a_flexible_response_header_are_skipped() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let r = read_request(&mut s).await.unwrap();
        assert!(r.version >= 9, "flexible Produce expected");
        // Response header v1 with one unknown tagged field (tag 7, 3 bytes), KIP-482:
        // a newer broker may add such fields and older clients must skip them.
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        frame.put_i32(r.correlation_id);
        frame.put_slice(&[1, 7, 3, 0xAA, 0xBB, 0xCC]);
        frame.put_slice(&produce_response_body(r.version, 77));
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        s.write_all(&frame).await.unwrap();
        let _ = read_request(&mut s).await;
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let resp = conn.send_produce(produce(-1, b"t")).await.unwrap().unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 77);
}

/// A reply that does not decode is a protocol error for the connection: the request it
/// answers failed as maybe written (the broker got it), the connection is closed and
/// counted, and the others in flight fail as lost; the next connection starts clean.
#[tokio::test]
async fn undecodable_response_is_maybe_written_and_closes_the_connection() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let r = read_request(&mut s).await.unwrap();
        // A well-framed response whose body is garbage.
        write_response(
            &mut s,
            ApiKey::Produce,
            r.version,
            r.correlation_id,
            &[0xFF; 3],
        )
        .await;
        let _ = read_request(&mut s).await;
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let e = conn.send_produce(produce(-1, b"a")).await.unwrap_err();
    assert!(matches!(e, NetError::Decode { api: "Produce", .. }), "{e}");
    assert!(e.maybe_written(), "the broker answered: it got the request");
    assert!(e.is_connection_closed());
    assert!(
        e.to_string().contains("responses: needs 4 bytes"),
        "names the field: {e}"
    );
    assert!(matches!(
        conn.close_reason(),
        Some(CloseReason::Protocol(_))
    ));
    let later = conn.send_produce(produce(-1, b"b")).await.unwrap_err();
    assert!(!later.maybe_written(), "{later}");
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_responses_and_refuses_new_requests() {
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let r = read_request(&mut s).await.unwrap();
        release_rx.await.unwrap(); // answer only when the test says so
        write_response(
            &mut s,
            ApiKey::Produce,
            r.version,
            r.correlation_id,
            &produce_response_body(r.version, 9),
        )
        .await;
        while read_request(&mut s).await.is_some() {}
    })
    .await;
    let conn = std::sync::Arc::new(BrokerConnection::connect(&addr, &opts()).await.unwrap());
    let c = conn.clone();
    let in_flight = tokio::spawn(async move { c.send_produce(produce(-1, b"s")).await });
    while conn.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let c = conn.clone();
    let shutdown = tokio::spawn(async move { c.shutdown(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Draining: new requests are refused without being written, the old one is waited for.
    let e = conn.send_produce(produce(-1, b"late")).await.unwrap_err();
    assert!(matches!(e, NetError::NotSent { .. }), "{e}");
    assert!(!conn.has_capacity());
    assert!(!shutdown.is_finished());
    release_tx.send(()).unwrap();
    let r = in_flight.await.unwrap().unwrap().unwrap();
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 9);
    assert!(shutdown.await.unwrap(), "drained in time");
    assert!(conn.is_closed());
}

#[tokio::test]
async fn shutdown_gives_up_after_its_timeout_and_fails_what_is_left_as_maybe_written() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        while read_request(&mut s).await.is_some() {}
    })
    .await;
    let conn = std::sync::Arc::new(BrokerConnection::connect(&addr, &opts()).await.unwrap());
    let c = conn.clone();
    let in_flight = tokio::spawn(async move { c.send_produce(produce(-1, b"s")).await });
    while conn.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!conn.shutdown(Duration::from_millis(100)).await);
    let e = in_flight.await.unwrap().unwrap_err();
    assert!(matches!(e, NetError::ConnectionLost { .. }), "{e}");
    assert!(e.maybe_written());
}

#[tokio::test]
async fn produce_with_calls_back_with_the_response_then_with_the_timeout() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        let req = read_request(&mut s).await.unwrap();
        write_response(
            &mut s,
            ApiKey::Produce,
            req.version,
            req.correlation_id,
            &produce_response_body(req.version, 42),
        )
        .await;
        // The second request is read and never answered.
        while read_request(&mut s).await.is_some() {}
    })
    .await;
    let conn =
        std::sync::Arc::new(connect_with_request_timeout(&addr, Duration::from_millis(300)).await);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    for n in 0..2 {
        let (tx, seen_by) = (tx.clone(), conn.clone());
        conn.produce_with(
            conn.try_reserve().unwrap(),
            produce(-1, b"cb"),
            move |outcome| {
                // The window slot is free by the time the outcome is known.
                let _ = tx.send((n, outcome, seen_by.in_flight()));
            },
        );
    }
    let (n, first, in_flight) = rx.recv().await.unwrap();
    assert_eq!(n, 0);
    let resp = first.unwrap().expect("acks=-1 has a response");
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 42);
    assert_eq!(in_flight, 1, "only the unanswered request holds a slot");
    let (n, second, in_flight) = rx.recv().await.unwrap();
    assert_eq!(n, 1);
    let e = second.unwrap_err();
    assert!(matches!(e, NetError::Timeout { written: true, .. }), "{e}");
    assert_eq!(in_flight, 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(matches!(
        conn.close_reason(),
        Some(CloseReason::RequestTimeout { .. })
    ));
}

#[tokio::test]
async fn acks_zero_write_that_stalls_times_out() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        // Reads nothing more: once the socket buffers fill, the client's write stalls.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let conn = connect_with_request_timeout(&addr, Duration::from_millis(300)).await;
    // More than loopback's socket buffers hold (a few MiB each way).
    let parts = ProduceRequestParts {
        transactional_id: None,
        acks: 0,
        timeout_ms: 1000,
        topics: vec![(
            "t".into(),
            vec![(0, Some(Bytes::from(vec![0u8; 64 << 20])))],
        )],
    };
    let start = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(5), conn.send_produce(parts))
        .await
        .expect("a stalled acks=0 write must time out, not hang")
        .unwrap_err();
    assert!(matches!(e, NetError::Timeout { written: true, .. }), "{e}");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn produce_on_a_closed_connection_is_answered_not_sent_at_once() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        while read_request(&mut s).await.is_some() {}
    })
    .await;
    let conn = BrokerConnection::connect(&addr, &opts()).await.unwrap();
    let permit = conn.try_reserve().unwrap();
    conn.close();
    let answered = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = answered.clone();
    conn.produce_with(permit, produce(-1, b"late"), move |outcome| {
        *slot.lock().unwrap() = Some(outcome);
    });
    // Answered before `produce_with` returned: the request never reached the writer's
    // queue, which is being torn down (a request slipped in then could wait forever).
    let outcome = answered.lock().unwrap().take().expect("answered at once");
    let e = outcome.unwrap_err();
    assert!(matches!(e, NetError::NotSent { .. }), "{e}");
    assert!(!e.maybe_written());
}

#[tokio::test]
async fn idle_connection_is_closed_after_connections_max_idle_and_reopened_at_once() {
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut eof_tx = Some(eof_tx);
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let eof_tx = eof_tx.take();
            tokio::spawn(async move {
                handshake(&mut s, modern_apis()).await;
                // Answer Metadata until the client hangs up, then say when it did.
                while let Some(req) = read_request(&mut s).await {
                    let body = encode(&MetadataResponse::default(), req.version);
                    write_response(
                        &mut s,
                        ApiKey::Metadata,
                        req.version,
                        req.correlation_id,
                        &body,
                    )
                    .await;
                }
                if let Some(tx) = eof_tx {
                    let _ = tx.send(Instant::now());
                }
            });
        }
    });
    let idle = Duration::from_millis(300);
    // The watchdog notices idleness at its next look, at most one request timeout late.
    let o = ConnectOptions {
        idle_timeout: Some(idle),
        request_timeout: Duration::from_millis(200),
        ..opts()
    };
    let pool = ConnectionPool::new("unused:1", o, ReconnectBackoff::default());
    pool.set_broker_address(1, addr);
    let first = pool.get(1).await.unwrap();
    fetch_metadata(&first, &[]).await.unwrap();
    let answered = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), eof_rx)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    let waited = closed - answered;
    assert!(
        waited >= idle - Duration::from_millis(20) && waited < idle + Duration::from_millis(400),
        "closed after {waited:?}"
    );
    assert!(matches!(
        first.close_reason(),
        Some(CloseReason::Idle { .. })
    ));
    // Not a failure: no reconnect backoff, and the next request just works.
    let started = Instant::now();
    let second = pool.get(1).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(40),
        "{:?}",
        started.elapsed()
    );
    fetch_metadata(&second, &[]).await.unwrap();
}

#[tokio::test]
async fn a_busy_connection_is_never_closed_as_idle() {
    let addr = fake_broker(|mut s| async move {
        handshake(&mut s, modern_apis()).await;
        while let Some(req) = read_request(&mut s).await {
            // Slower than the idle limit, but a request is in flight all along.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let body = encode(&MetadataResponse::default(), req.version);
            write_response(
                &mut s,
                ApiKey::Metadata,
                req.version,
                req.correlation_id,
                &body,
            )
            .await;
        }
    })
    .await;
    let conn = BrokerConnection::connect(
        &addr,
        &ConnectOptions {
            idle_timeout: Some(Duration::from_millis(100)),
            ..opts()
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        fetch_metadata(&conn, &[]).await.unwrap();
    }
    assert!(!conn.is_closed());
}
