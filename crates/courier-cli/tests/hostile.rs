//! Hostile peers: `courier produce` against a scripted broker (the test kit's
//! [`HostileBroker`]) that answers with each class of broken reply.
//!
//! Every case runs the CLI as a child process under an address-space limit
//! (`RLIMIT_AS`), and asserts: no panic, no abort or other signal (an allocation the limit
//! refuses aborts a Rust process), the exit status non-zero whenever a record was not
//! delivered, and the records' failures with the right persistence in the JSON summary.
//!
//! The broker advertises exactly the versions the bodies below are built for: courier
//! negotiates ApiVersions v3, Metadata v12, Produce v11, InitProducerId v4 and
//! DescribeConfigs v4 with it.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use courier_testkit::hostile::{api_versions, encode, Answer, HostileBroker, Request};
use courier_testkit::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use courier_testkit::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use courier_testkit::kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataResponse, ProduceResponse, TopicName,
};
use courier_testkit::kafka_protocol::protocol::StrBytes;
use serde_json::Value;

/// The address space the CLI may use: far above what a run needs (about 150 MB of
/// mappings with two malloc arenas), far below what a length from the wire could ask for.
const ADDRESS_SPACE: u64 = 1 << 30;

const TOPIC: &str = "hostile";

/// What a case expects of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Every record delivered, exit 0.
    Delivered,
    /// Every record failed, none possibly persisted (nothing could have reached a log).
    FailedNotPersisted,
    /// Every record failed as possibly persisted (a Produce request was sent).
    FailedPossiblyPersisted,
}

struct Run {
    out: Output,
    summary: Value,
}

fn run(broker: &HostileBroker, extra: &[&str], records: usize) -> Run {
    let bootstrap = broker.bootstrap();
    let mut args = vec![
        "produce",
        "-b",
        &bootstrap,
        "-t",
        TOPIC,
        "--summary",
        "json",
        "-X",
        "delivery.timeout.ms=3000",
        // A broker that never settles anything: a batch that may be in its log would
        // otherwise be resent for the default two minutes past the delivery timeout
        // (issue 14) before it is reported possibly persisted.
        "-X",
        "delivery.resolution.timeout.ms=2000",
        "-X",
        "request.timeout.ms=1000",
        "-X",
        "linger.ms=0",
        "-X",
        "retry.backoff.ms=50",
        "-X",
        "socket.connection.setup.timeout.ms=1000",
    ];
    if !extra.iter().any(|a| a.starts_with("durability.check")) {
        args.extend(["-X", "durability.check=off"]);
    }
    args.extend(extra);
    let input: String = (0..records).map(|i| format!("record-{i}\n")).collect();
    let out = limited(&args, input.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("valid JSON summary"))
        .unwrap_or(Value::Null);
    Run { out, summary }
}

/// Runs the CLI with `args` under the address-space limit, feeding it `stdin`.
fn limited(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec (setrlimit).
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd.spawn().expect("run the courier binary");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "courier {args:?} -> {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The checks every case makes.
fn check(run: &Run, records: u64, expect: Expect) {
    let stderr = String::from_utf8_lossy(&run.out.stderr);
    assert!(
        run.out.status.code().is_some(),
        "killed by a signal (an abort?): {}",
        run.out.status
    );
    assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
    let s = &run.summary;
    assert_eq!(s["records"], records, "{s}");
    assert_eq!(s["unreported"], 0, "{s}");
    let possibly = s["possibly_persisted"].as_u64().unwrap();
    match expect {
        Expect::Delivered => {
            assert_eq!(run.out.status.code(), Some(0), "{s}");
            assert_eq!(s["delivered"], records, "{s}");
        }
        failed => {
            assert_eq!(run.out.status.code(), Some(1), "a failed run exits 1: {s}");
            assert_eq!(s["delivered"], 0, "{s}");
            assert_eq!(s["failed"], records, "{s}");
            if failed == Expect::FailedNotPersisted {
                assert_eq!(possibly, 0, "{s}");
            } else {
                assert_eq!(possibly, records, "{s}");
            }
        }
    }
}

fn case(script: impl Fn(&Request) -> Answer + Send + Sync + 'static, expect: Expect) -> Run {
    let broker = HostileBroker::start(1, script).unwrap();
    let r = run(&broker, &[], 3);
    check(&r, 3, expect);
    r
}

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A compact (flexible) array or string length that declares `n` entries or bytes.
fn compact_len(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    uvarint(n + 1, &mut v);
    v
}

fn only(api: ApiKey, answer: Answer) -> impl Fn(&Request) -> Answer + Send + Sync + 'static {
    move |req| {
        if req.api == api {
            answer.clone()
        } else {
            Answer::Normal
        }
    }
}

// ---------------------------------------------------------------------------------------
// A working broker first: the harness itself must pass.

#[test]
fn a_normal_broker_gets_every_record() {
    case(|_| Answer::Normal, Expect::Delivered);
}

// ---------------------------------------------------------------------------------------
// ApiVersions (v3: error_code i16, api_keys compact array, throttle_time_ms, tags)

#[test]
fn api_versions_with_an_array_of_two_billion_entries() {
    // Nine bytes that once asked for a 64 GiB allocation.
    let mut body = vec![0, 0];
    body.extend(compact_len(i32::MAX as u64));
    let r = case(
        only(ApiKey::ApiVersions, Answer::Body(body)),
        Expect::FailedNotPersisted,
    );
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert!(stderr.contains("ApiVersions"), "{stderr}");
}

#[test]
fn api_versions_with_a_negative_or_truncated_array() {
    // v0 answer (UNSUPPORTED_VERSION) with a negative classic array count.
    case(
        only(
            ApiKey::ApiVersions,
            Answer::Body([0, 35, 0xff, 0xff, 0xff, 0xfb].to_vec()),
        ),
        Expect::FailedNotPersisted,
    );
    let mut body = encode(&api_versions(0), 3).unwrap();
    body.truncate(body.len() / 2);
    case(
        only(ApiKey::ApiVersions, Answer::Body(body)),
        Expect::FailedNotPersisted,
    );
}

// ---------------------------------------------------------------------------------------
// Metadata v12

/// throttle_time_ms, then `brokers` raw.
fn metadata_v12_with_brokers(brokers: Vec<u8>) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend(brokers);
    b
}

#[test]
fn metadata_with_huge_broker_topic_and_partition_arrays() {
    // Brokers: two billion.
    case(
        only(
            ApiKey::Metadata,
            Answer::Body(metadata_v12_with_brokers(compact_len(i32::MAX as u64))),
        ),
        Expect::FailedNotPersisted,
    );
    // No brokers, no cluster id, controller -1, then two billion topics.
    let mut topics = compact_len(0);
    topics.push(0); // cluster_id: null
    topics.extend((-1i32).to_be_bytes());
    topics.extend(compact_len(i32::MAX as u64));
    case(
        only(
            ApiKey::Metadata,
            Answer::Body(metadata_v12_with_brokers(topics)),
        ),
        Expect::FailedNotPersisted,
    );
    // One topic whose partition array declares two billion entries.
    let mut t = compact_len(0);
    t.push(0);
    t.extend((-1i32).to_be_bytes());
    t.extend(compact_len(1)); // one topic
    t.extend(0i16.to_be_bytes()); // error_code
    t.extend(compact_len(TOPIC.len() as u64));
    t.extend(TOPIC.as_bytes());
    t.extend([0u8; 16]); // topic_id
    t.push(0); // is_internal
    t.extend(compact_len(i32::MAX as u64)); // partitions
    case(
        only(ApiKey::Metadata, Answer::Body(metadata_v12_with_brokers(t))),
        Expect::FailedNotPersisted,
    );
}

#[test]
fn metadata_with_huge_and_negative_string_lengths() {
    // One broker whose host claims 2^31 bytes; then one whose host length is "-1"
    // (a null compact string where a host must be).
    for host_len in [compact_len(1 << 31), vec![0]] {
        let mut b = compact_len(1);
        b.extend(1i32.to_be_bytes());
        b.extend(host_len);
        case(
            only(ApiKey::Metadata, Answer::Body(metadata_v12_with_brokers(b))),
            Expect::FailedNotPersisted,
        );
    }
}

/// A valid Metadata v12 answer whose topic lists `partitions` (index, leader), with this
/// broker (node 1) at `host:port`.
fn metadata(
    broker: &str,
    host: Option<&str>,
    port: Option<i32>,
    partitions: &[(i32, i32)],
) -> Vec<u8> {
    let (h, p) = broker.rsplit_once(':').unwrap();
    let resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_string(host.unwrap_or(h).to_string()))
            .with_port(port.unwrap_or_else(|| p.parse().unwrap()))])
        .with_controller_id(BrokerId(1))
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(index, leader)| {
                        MetadataResponsePartition::default()
                            .with_partition_index(index)
                            .with_leader_id(BrokerId(leader))
                    })
                    .collect(),
            )]);
    encode(&resp, 12).unwrap()
}

/// A hostile broker whose Metadata answers are built by `body` from its own address.
fn metadata_case(body: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static, expect: Expect) -> Run {
    let addr = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let a = addr.clone();
    let broker = HostileBroker::start(1, move |req| match req.api {
        ApiKey::Metadata => Answer::Body(body(a.get().expect("address set"))),
        _ => Answer::Normal,
    })
    .unwrap();
    addr.set(broker.bootstrap()).unwrap();
    let r = run(&broker, &[], 3);
    check(&r, 3, expect);
    r
}

#[test]
fn metadata_partition_index_minus_one_is_no_partition_not_a_panic() {
    // Once: index out of bounds in the engine, and `courier produce` exited 0.
    metadata_case(
        |b| metadata(b, None, None, &[(-1, 1)]),
        Expect::FailedNotPersisted,
    );
}

#[test]
fn metadata_partition_indices_far_out_of_range_never_size_a_table() {
    // Index 2^31-1, -5 and 50,000,000 beside a good partition 0: only 0 is believed, and
    // the records go there. (Once: a 22 GB table, then the kernel killed the process.)
    metadata_case(
        |b| {
            metadata(
                b,
                None,
                None,
                &[(i32::MAX, 1), (0, 1), (-5, 1), (50_000_000, 1)],
            )
        },
        Expect::Delivered,
    );
}

#[test]
fn metadata_with_duplicate_partition_indices() {
    metadata_case(
        |b| metadata(b, None, None, &[(0, 1), (0, 1), (0, 1)]),
        Expect::Delivered,
    );
}

#[test]
fn metadata_naming_a_leader_that_is_not_a_broker() {
    metadata_case(
        |b| metadata(b, None, None, &[(0, 42)]),
        Expect::FailedNotPersisted,
    );
}

#[test]
fn metadata_with_bad_hosts_and_ports() {
    for (host, port) in [
        (Some("bad host"), None),
        (Some(""), None),
        (Some("evil:9092,other"), None),
        (None, Some(0)),
        (None, Some(70_000)),
        (None, Some(-1)),
    ] {
        metadata_case(
            move |b| metadata(b, host, port, &[(0, 1)]),
            Expect::FailedNotPersisted,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Produce v11

/// responses: one topic, whose partition_responses are `partitions` raw.
fn produce_v11_with(partitions: Vec<u8>) -> Vec<u8> {
    let mut b = compact_len(1);
    b.extend(compact_len(TOPIC.len() as u64));
    b.extend(TOPIC.as_bytes());
    b.extend(partitions);
    b
}

#[test]
fn produce_answered_with_forty_bytes_of_garbage() {
    // The first four bytes are the frame size: 0xABABABAB is negative.
    case(
        only(ApiKey::Produce, Answer::Frame(vec![0xAB; 40])),
        Expect::FailedPossiblyPersisted,
    );
    // A plausible size, then garbage.
    let mut frame = 36i32.to_be_bytes().to_vec();
    frame.extend([0x5C; 36]);
    case(
        only(ApiKey::Produce, Answer::Frame(frame)),
        Expect::FailedPossiblyPersisted,
    );
}

#[test]
fn produce_with_huge_arrays_and_strings() {
    // Two billion topics.
    case(
        only(ApiKey::Produce, Answer::Body(compact_len(i32::MAX as u64))),
        Expect::FailedPossiblyPersisted,
    );
    // Two billion partitions of one topic.
    case(
        only(
            ApiKey::Produce,
            Answer::Body(produce_v11_with(compact_len(i32::MAX as u64))),
        ),
        Expect::FailedPossiblyPersisted,
    );
    // A topic name of 2^31 bytes.
    let mut b = compact_len(1);
    b.extend(compact_len(1 << 31));
    case(
        only(ApiKey::Produce, Answer::Body(b)),
        Expect::FailedPossiblyPersisted,
    );
    // A partition whose record_errors array and error message claim 2^31 entries/bytes.
    for tail in [compact_len(i32::MAX as u64), {
        let mut t = compact_len(0);
        t.extend(compact_len(1 << 31));
        t
    }] {
        let mut p = compact_len(1);
        p.extend(0i32.to_be_bytes()); // index
        p.extend(0i16.to_be_bytes()); // error_code
        p.extend(0i64.to_be_bytes()); // base_offset
        p.extend((-1i64).to_be_bytes()); // log_append_time_ms
        p.extend(0i64.to_be_bytes()); // log_start_offset
        p.extend(tail);
        case(
            only(ApiKey::Produce, Answer::Body(produce_v11_with(p))),
            Expect::FailedPossiblyPersisted,
        );
    }
}

#[test]
fn produce_with_a_wrong_correlation_id_or_a_truncated_frame() {
    case(
        only(ApiKey::Produce, Answer::WrongCorrelation),
        Expect::FailedPossiblyPersisted,
    );
    // The size prefix promises 100 bytes; ten arrive, then the broker hangs up... on the
    // next request (the frame is written, the connection stays open: the client waits for
    // the rest until request.timeout.ms).
    let mut frame = 100i32.to_be_bytes().to_vec();
    frame.extend([0; 10]);
    case(
        only(ApiKey::Produce, Answer::Frame(frame)),
        Expect::FailedPossiblyPersisted,
    );
    // A frame claiming 99 MiB that never comes: memory is bounded by what arrives.
    let mut frame = (99i32 << 20).to_be_bytes().to_vec();
    frame.extend([0; 10]);
    case(
        only(ApiKey::Produce, Answer::Frame(frame)),
        Expect::FailedPossiblyPersisted,
    );
}

#[test]
fn produce_with_an_unknown_error_code_is_possibly_persisted() {
    let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partition_responses(vec![PartitionProduceResponse::default()
            .with_index(0)
            .with_error_code(9999)
            .with_base_offset(-1)])]);
    let r = case(
        only(ApiKey::Produce, Answer::Body(encode(&resp, 11).unwrap())),
        Expect::FailedPossiblyPersisted,
    );
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert!(stderr.contains("unknown error code 9999"), "{stderr}");
    assert!(stderr.contains("may have been written"), "{stderr}");
}

#[test]
fn produce_that_goes_unanswered_times_out_possibly_persisted() {
    case(
        only(ApiKey::Produce, Answer::Silence),
        Expect::FailedPossiblyPersisted,
    );
}

#[test]
fn one_broken_produce_reply_then_a_good_broker_delivers_everything() {
    case(
        |req| match (req.api, req.nth) {
            (ApiKey::Produce, 0) => Answer::Frame(vec![0xAB; 40]),
            _ => Answer::Normal,
        },
        Expect::Delivered,
    );
}

#[test]
fn byte_by_byte_replies_are_slow_not_broken() {
    case(
        |req| match req.api {
            ApiKey::Metadata | ApiKey::Produce => Answer::Slowly(Duration::from_millis(2)),
            _ => Answer::Normal,
        },
        Expect::Delivered,
    );
}

// ---------------------------------------------------------------------------------------
// InitProducerId v4 and DescribeConfigs v4

#[test]
fn init_producer_id_garbage_means_nothing_is_sent() {
    case(
        only(ApiKey::InitProducerId, Answer::Body(vec![0xff; 3])),
        Expect::FailedNotPersisted,
    );
}

/// DescribeConfigs v4: throttle, then a results array of two billion entries.
fn huge_describe_configs() -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend(compact_len(i32::MAX as u64));
    b
}

#[test]
fn describe_configs_with_a_huge_array_is_a_failed_audit_not_an_abort() {
    let broker = HostileBroker::start(
        1,
        only(
            ApiKey::DescribeConfigs,
            Answer::Body(huge_describe_configs()),
        ),
    )
    .unwrap();
    // The audit (durability.check=warn) cannot read the answer: a protocol error for that
    // connection, logged with the broker and the API; the records are delivered all the same.
    let r = run(&broker, &["-X", "durability.check=warn"], 3);
    check(&r, 3, Expect::Delivered);
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert!(
        stderr.contains("unreadable reply: DescribeConfigs v4: results: array of"),
        "{stderr}"
    );
    assert!(stderr.contains(&broker.bootstrap()), "{stderr}");
}

#[test]
fn doctor_against_a_hostile_broker_says_it_could_not_check() {
    let broker = HostileBroker::start(
        1,
        only(
            ApiKey::DescribeConfigs,
            Answer::Body(huge_describe_configs()),
        ),
    )
    .unwrap();
    let out = limited(&["doctor", "-b", &broker.bootstrap(), "-t", TOPIC], b"");
    assert!(out.status.code().is_some(), "killed: {}", out.status);
    assert_eq!(out.status.code(), Some(2), "could not check");
}

// ---------------------------------------------------------------------------------------
// --failed-out and --uncertain-out

#[test]
fn unanswered_records_go_to_uncertain_out_and_refused_ones_to_failed_out() {
    // Produce is never answered: the small records are sent, so they may be in the log;
    // resent with their sequence until delivery.resolution.timeout.ms, they end
    // UNRESOLVED (possibly persisted). The large ones exceed max.request.size and are
    // refused before they are sent: not persisted.
    let broker = HostileBroker::start(1, only(ApiKey::Produce, Answer::Silence)).unwrap();
    let dir = std::env::temp_dir().join(format!("courier-hostile-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let failed = dir.join("failed.txt");
    let uncertain = dir.join("uncertain.txt");
    let big = |i: usize| format!("big-{i}:{}", "x".repeat(2000));
    let mut input = String::new();
    let (mut want_failed, mut want_uncertain) = (String::new(), String::new());
    for i in 0..6 {
        let line = if i % 3 == 1 {
            big(i)
        } else {
            format!("k{i}:v{i}")
        };
        input += &format!("{line}\n");
        if i % 3 == 1 {
            want_failed += &format!("{line}\n");
        } else {
            want_uncertain += &format!("{line}\n");
        }
    }
    let bootstrap = broker.bootstrap();
    let args = [
        "produce",
        "-b",
        &bootstrap,
        "-t",
        TOPIC,
        "-K",
        ":",
        "--summary",
        "json",
        "-X",
        "durability.check=off",
        "-X",
        "delivery.timeout.ms=3000",
        "-X",
        "request.timeout.ms=1000",
        "-X",
        "delivery.resolution.timeout.ms=2000",
        "-X",
        "linger.ms=0",
        "-X",
        "retry.backoff.ms=50",
        "-X",
        "max.request.size=1000",
        "--failed-out",
        failed.to_str().unwrap(),
        "--uncertain-out",
        uncertain.to_str().unwrap(),
    ];
    let out = limited(&args, input.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s: Value = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("a JSON summary");
    assert_eq!(out.status.code(), Some(1), "failures exit 1: {s}");
    assert_eq!(s["records"], 6, "{s}");
    assert_eq!(s["failed"], 6, "{s}");
    assert_eq!(s["unreported"], 0, "{s}");
    assert_eq!(s["errors"]["RECORD_TOO_LARGE"], 2, "{s}");
    assert_eq!(s["errors"]["UNRESOLVED"], 4, "{s}");
    assert_eq!(s["possibly_persisted"], 4, "{s}");
    assert_eq!(s["unresolved"], 4, "the producer's metric: {s}");
    assert_eq!(s["resolved_persisted"], 0, "{s}");
    assert_eq!(s["failed_out"], 2, "{s}");
    assert_eq!(s["uncertain_out"], 4, "{s}");
    // Each record in exactly one file, as it was read, in input order.
    assert_eq!(std::fs::read_to_string(&failed).unwrap(), want_failed);
    assert_eq!(std::fs::read_to_string(&uncertain).unwrap(), want_uncertain);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "4 possibly persisted written to {}",
            uncertain.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
