//! The `courier` binary against the test kit's shared 1-broker Kafka cluster (and its
//! blackhole broker), judged by Kafka's console consumer.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use courier_testkit::{Blackhole, KafkaCluster, TopicSpec};
use serde_json::Value;

fn courier(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the courier binary");
    // A run that refuses its arguments exits without reading stdin: a broken pipe
    // here is that, not a failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    let out = child.wait_with_output().expect("wait for courier");
    eprintln!(
        "courier {args:?} -> {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn topic(cluster: &KafkaCluster, prefix: &str, partitions: i32) -> String {
    let t = cluster.unique_topic(prefix);
    cluster
        .create_topic(&TopicSpec::new(&t).partitions(partitions))
        .unwrap();
    t
}

fn text(b: &Option<Vec<u8>>) -> Option<String> {
    b.as_ref().map(|v| String::from_utf8(v.clone()).unwrap())
}

fn json_summary(out: &Output) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("a JSON object on stdout");
    serde_json::from_str(line).expect("valid JSON")
}

#[test]
fn produce_from_stdin_splits_keys_and_adds_headers() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-stdin", 1);
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-K",
            ":",
            "-H",
            "source=cli",
            "-H",
            "run=1",
        ],
        b"order-1:{\"amount\":10}\norder-2:a:b\n\nno-key-here\n",
    );
    assert_eq!(out.status.code(), Some(0));
    let recs = cluster.consume_all(&t).unwrap();
    let got: Vec<(Option<String>, Option<String>)> = recs
        .iter()
        .map(|r| (text(&r.key), text(&r.value)))
        .collect();
    // The empty line is skipped, as kcat does; the key splits at the first ':'.
    assert_eq!(
        got,
        [
            (Some("order-1".into()), Some("{\"amount\":10}".into())),
            (Some("order-2".into()), Some("a:b".into())),
            (None, Some("no-key-here".into())),
        ]
    );
    for r in &recs {
        assert_eq!(
            r.headers,
            [
                ("source".to_string(), Some(b"cli".to_vec())),
                ("run".to_string(), Some(b"1".to_vec())),
            ]
        );
    }
}

#[test]
fn produce_file_lines_with_l_and_whole_files_without() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-file", 3);
    let dir = std::env::temp_dir().join(format!("courier-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lines = dir.join("lines.txt");
    std::fs::write(&lines, "alpha\nbeta\ngamma\n").unwrap();
    let whole = dir.join("whole.txt");
    std::fs::write(&whole, "line one\nline two\n").unwrap();

    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-p",
            "2",
            "-k",
            "fixed",
            "-z",
            "lz4",
            "-l",
            lines.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-p",
            "1",
            whole.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();

    let recs = cluster.consume_all(&t).unwrap();
    let mut p2: Vec<_> = recs.iter().filter(|r| r.partition == 2).collect();
    p2.sort_by_key(|r| r.offset);
    let values: Vec<_> = p2.iter().map(|r| text(&r.value).unwrap()).collect();
    assert_eq!(values, ["alpha", "beta", "gamma"]);
    assert!(p2.iter().all(|r| text(&r.key).as_deref() == Some("fixed")));
    let p1: Vec<_> = recs.iter().filter(|r| r.partition == 1).collect();
    assert_eq!(p1.len(), 1, "without -l a file is one record");
    assert_eq!(text(&p1[0].value).as_deref(), Some("line one\nline two\n"));
    assert_eq!(recs.len(), 4);
}

#[test]
fn unknown_topic_fails_with_a_summary_by_error_name() {
    let cluster = KafkaCluster::shared(1);
    let missing = cluster.unique_topic("cli-missing");
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &missing,
            "-X",
            "max.block.ms=2000",
            "--summary",
            "json",
        ],
        b"one\ntwo\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 of 2 records failed"), "stderr: {stderr}");
    assert!(
        stderr.contains("UNKNOWN_TOPIC_OR_PARTITION: 2 record(s)"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("does not exist"), "stderr: {stderr}");
    let s = json_summary(&out);
    assert_eq!(s["records"], 2);
    assert_eq!(s["delivered"], 0);
    assert_eq!(s["failed"], 2);
    assert_eq!(s["errors"]["UNKNOWN_TOPIC_OR_PARTITION"], 2);
}

#[test]
fn unknown_property_is_refused_before_anything_is_sent() {
    let out = courier(
        &[
            "produce",
            "-b",
            "127.0.0.1:1",
            "-t",
            "x",
            "-X",
            "lingr.ms=5",
        ],
        b"never sent\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lingr.ms"), "stderr: {stderr}");
    assert!(stderr.contains("linger.ms"), "a suggestion: {stderr}");
}

#[test]
fn summary_json_has_every_field_and_counts_right() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-json", 2);
    let input: String = (0..500).map(|i| format!("k{i}\tvalue-{i}\n")).collect();
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-K",
            "\\t",
            "--summary",
            "json",
        ],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    let s = json_summary(&out);
    assert_eq!(s["records"], 500);
    assert_eq!(s["delivered"], 500);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["errors"], serde_json::json!({}));
    for f in ["elapsed_s", "records_per_s", "mb_per_s", "cpu_s"] {
        assert!(s[f].as_f64().unwrap() >= 0.0, "{f}: {s}");
    }
    let lat = &s["latency_ms"];
    let (p50, p99, p999) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["p999"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{lat}");
    assert_eq!(cluster.consume_all(&t).unwrap().len(), 500);
}

#[test]
fn perf_prints_java_style_lines_and_a_json_summary() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-perf", 3);
    let out = courier(
        &[
            "perf",
            "--topic",
            &t,
            "--num-records",
            "3000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--producer-props",
            "acks=all",
            "compression.type=lz4",
            "--summary",
            "json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .find(|l| l.starts_with("3000 records sent,"))
        .unwrap_or_else(|| panic!("no final line in {stderr}"));
    assert!(
        last.contains("ms 50th") && last.contains("ms 99.9th."),
        "{last}"
    );
    assert!(stderr.contains("s per million records"), "{stderr}");
    let s = json_summary(&out);
    assert_eq!(s["delivered"], 3000);
    assert!(s["cpu_s_per_million_records"].as_f64().unwrap() > 0.0);
    assert!(
        s["peak_rss_bytes"].as_u64().unwrap() > 1 << 20,
        "peak RSS is reported"
    );
    assert!(s["latency_ms"]["p95"].as_f64().is_some());
    assert_eq!(cluster.consume_all(&t).unwrap().len(), 3000);
}

/// `--transaction-records N`: the records go in transactions of N, every one committed
/// (read_committed sees them all, and the summary counts the transactions); without a
/// transactional.id the flag is refused before anything is sent.
#[test]
fn perf_with_transaction_records_commits_every_n_records() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-perf-txn", 3);
    let id = cluster.unique_topic("cli-perf-txn-id");
    let out = courier(
        &[
            "perf",
            "--topic",
            &t,
            "--num-records",
            "2500",
            "--record-size",
            "100",
            "--keys",
            "100",
            "--transaction-records",
            "1000",
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--producer-props",
            &format!("transactional.id={id}"),
            "transaction.timeout.ms=30000",
            "linger.ms=5",
            "--summary",
            "json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let s = json_summary(&out);
    assert_eq!(s["delivered"], 2500);
    // 1000 + 1000 + 500.
    assert_eq!(s["transactions"], 3, "{s}");
    assert_eq!(s["transaction_records"], 1000, "{s}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("transactions: 3 committed, up to 1000 records each."),
        "{stderr}"
    );
    let committed = cluster
        .consume(
            &t,
            &courier_testkit::ConsumeOptions {
                idle_timeout: std::time::Duration::from_secs(5),
                read_committed: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(committed.len(), 2500);

    let refused = courier(
        &[
            "perf",
            "--topic",
            &t,
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--transaction-records",
            "5",
            "--bootstrap-server",
            &cluster.bootstrap(),
        ],
        b"",
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs a transactional.id"),
        "{refused:?}"
    );
}

#[test]
fn perf_against_the_blackhole_delivers_every_record() {
    let bh = Blackhole::start(4).unwrap();
    let out = courier(
        &[
            "perf",
            "--topic",
            "anything",
            "--num-records",
            "20000",
            "--record-size",
            "1000",
            "--bootstrap-server",
            &bh.bootstrap(),
            "--summary",
            "json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_summary(&out)["delivered"], 20000);
    assert_eq!(bh.records(), 20000);
}

/// Every `--api` shape, keyed and owned, reports every record once: the blackhole's
/// count grows by exactly the records each run says it delivered.
#[test]
fn perf_every_api_with_keys_and_owned_records_delivers_every_record() {
    let bh = Blackhole::start(4).unwrap();
    let mut total = 0;
    for api in ["callback", "future", "tagged"] {
        let out = courier(
            &[
                "perf",
                "--topic",
                "anything",
                "--num-records",
                "30000",
                "--record-size",
                "100",
                "--keys",
                "1000",
                "--owned",
                "--api",
                api,
                "--bootstrap-server",
                &bh.bootstrap(),
                "--summary",
                "json",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "--api {api}");
        let s = json_summary(&out);
        assert_eq!(s["delivered"], 30000, "--api {api}");
        assert_eq!(s["failed"], 0, "--api {api}");
        assert!(
            s["latency_ms"]["max"].as_f64().unwrap() > 0.0,
            "--api {api}"
        );
        total += 30000;
        assert_eq!(bh.records(), total, "--api {api}");
    }
}

#[test]
fn demo_against_a_given_cluster_verifies_with_the_console_consumer() {
    let cluster = KafkaCluster::shared(1);
    let out = courier(
        &[
            "demo",
            "-b",
            &cluster.bootstrap(),
            "--records",
            "400",
            "--partitions",
            "3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("delivered 400/400 records"), "{stdout}");
    // The start-up wait is told apart from the throughput.
    assert!(
        stdout.contains("the first acknowledgement came") && stdout.contains("records/s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ok] the log holds 400 records"),
        "{stdout}"
    );
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    assert!(stdout.contains("kafka-dump-log skipped"), "{stdout}");
    assert!(stdout.lines().last().unwrap().starts_with("OK"), "{stdout}");
}

#[test]
fn demo_with_its_own_local_cluster_checks_producer_ids_and_sequences() {
    let out = courier(
        &[
            "demo",
            "--brokers",
            "1",
            "--records",
            "300",
            "--partitions",
            "2",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("starting a local 1-broker"), "{stdout}");
    assert!(
        stdout.contains("[ok] one producer id and epoch across all batches"),
        "{stdout}"
    );
    assert!(stdout.contains("contiguous, CRCs valid"), "{stdout}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
}

/// `n` pseudo-random characters from a 64-letter alphabet without ':' or newline: 6 bits
/// of entropy per byte, so no codec shrinks 3000 of them below 2000 bytes.
fn incompressible(n: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

fn alter_topic_config(cluster: &KafkaCluster, topic: &str, kv: &str) {
    let bootstrap = cluster.bootstrap();
    let base = [
        "--bootstrap-server",
        bootstrap.as_str(),
        "--entity-type",
        "topics",
        "--entity-name",
        topic,
    ];
    let mut alter = base.to_vec();
    alter.extend(["--alter", "--add-config", kv]);
    cluster
        .run_tool("kafka.admin.ConfigCommand", &alter)
        .expect("kafka-configs --alter");
    // The broker applies it from the metadata log; wait until it describes it.
    let mut describe = base.to_vec();
    describe.push("--describe");
    courier_testkit::wait_until(
        &format!("{topic}: {kv}"),
        std::time::Duration::from_secs(60),
        || {
            let out = cluster
                .run_tool("kafka.admin.ConfigCommand", &describe)
                .map_err(|e| e.to_string())?;
            if out.contains(kv) {
                Ok(())
            } else {
                Err(out)
            }
        },
    )
    .unwrap();
}

#[test]
fn failed_out_holds_the_rejected_records_and_sends_them_again() {
    let cluster = KafkaCluster::shared(1);
    let t = cluster.unique_topic("cli-failed-out");
    cluster
        .create_topic(
            &TopicSpec::new(&t)
                .partitions(3)
                .config("max.message.bytes", "2000"),
        )
        .unwrap();
    // 24 keyed records; every third is 3000 bytes, above the topic's max.message.bytes.
    let records: Vec<(String, String)> = (0..24)
        .map(|i| {
            let value = if i % 3 == 2 {
                incompressible(3000, i)
            } else {
                format!("small-{i}")
            };
            (format!("key-{i}"), value)
        })
        .collect();
    let line = |(k, v): &(String, String)| format!("{k}:{v}\n");
    let input: String = records.iter().map(line).collect();
    let oversized: String = records
        .iter()
        .filter(|(_, v)| v.len() > 2000)
        .map(line)
        .collect();
    let dir = std::env::temp_dir().join(format!("courier-cli-failed-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (failed, uncertain) = (dir.join("failed.txt"), dir.join("uncertain.txt"));
    let (failed2, uncertain2) = (dir.join("failed2.txt"), dir.join("uncertain2.txt"));
    let bootstrap = cluster.bootstrap();
    // The broker refuses a batch holding an oversized record whole; the producer splits
    // it until that record travels alone and fails, so only the oversized ones fail.
    let run = |stdin: &[u8], failed: &std::path::Path, uncertain: &std::path::Path| {
        courier(
            &[
                "produce",
                "-b",
                &bootstrap,
                "-t",
                &t,
                "-K",
                ":",
                "-z",
                "lz4",
                "--failed-out",
                failed.to_str().unwrap(),
                "--uncertain-out",
                uncertain.to_str().unwrap(),
                "--summary",
                "json",
            ],
            stdin,
        )
    };

    let out = run(input.as_bytes(), &failed, &uncertain);
    assert_eq!(out.status.code(), Some(1), "failed records fail the run");
    let s = json_summary(&out);
    assert_eq!(s["records"], 24, "{s}");
    assert_eq!(s["delivered"], 16, "{s}");
    assert_eq!(s["failed"], 8, "{s}");
    // The broker's verdict: too large, not written.
    assert_eq!(
        s["errors"],
        serde_json::json!({"MESSAGE_TOO_LARGE": 8}),
        "{s}"
    );
    assert_eq!(s["possibly_persisted"], 0, "{s}");
    assert_eq!(s["failed_out"], 8, "{s}");
    assert_eq!(s["uncertain_out"], 0, "{s}");
    assert_eq!(s["resolved_persisted"], 0, "{s}");
    assert_eq!(s["unresolved"], 0, "{s}");
    // Exactly the oversized records, as they were read, in input order.
    assert_eq!(std::fs::read_to_string(&failed).unwrap(), oversized);
    assert_eq!(std::fs::read_to_string(&uncertain).unwrap(), "");

    // Make room, and send the failed file with the same flags.
    alter_topic_config(cluster, &t, "max.message.bytes=10000");
    let out = run(&std::fs::read(&failed).unwrap(), &failed2, &uncertain2);
    assert_eq!(
        out.status.code(),
        Some(0),
        "every resent record is delivered"
    );
    let s = json_summary(&out);
    assert_eq!(
        (&s["delivered"], &s["failed"]),
        (&8.into(), &0.into()),
        "{s}"
    );
    assert_eq!(s["failed_out"], 0, "{s}");
    // Created even when nothing fails, so a script can test for emptiness.
    assert_eq!(std::fs::read(&failed2).unwrap(), b"");
    assert_eq!(std::fs::read(&uncertain2).unwrap(), b"");
    std::fs::remove_dir_all(&dir).ok();

    // The topic holds every input record exactly once.
    let mut got: Vec<(String, String)> = cluster
        .consume_all(&t)
        .unwrap()
        .iter()
        .map(|r| (text(&r.key).unwrap(), text(&r.value).unwrap()))
        .collect();
    assert_eq!(got.len(), 24);
    got.sort();
    let mut want = records.clone();
    want.sort();
    assert_eq!(got, want);
}

/// A line written to a stdin that stays open is sent at once, not held back for the
/// reader's hand-off batch to fill (issue 16 batches records between the reader and the
/// producer), and Ctrl-C then ends the run with 130 and says so.
#[test]
fn a_line_on_an_open_stdin_is_sent_at_once_and_ctrl_c_ends_the_run() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-interactive", 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["produce", "-b", &cluster.bootstrap(), "-t", &t, "-K", ":"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the courier binary");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"k:first line\n").unwrap();
    stdin.flush().unwrap();
    let mut admin = cluster.admin();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let stored = loop {
        let end: i64 = admin.offsets(&t).unwrap().iter().map(|p| p.2).sum();
        if end >= 1 || std::time::Instant::now() > deadline {
            break end;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // SAFETY: kill(2) with the id of a child this test spawned and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("stderr:\n{stderr}");
    assert_eq!(
        stored, 1,
        "the line was not in the log while stdin stayed open"
    );
    assert_eq!(out.status.code(), Some(130));
    assert!(
        stderr.contains("interrupted; 1 records were read"),
        "{stderr}"
    );
    let recs = cluster.consume_all(&t).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(text(&recs[0].value).as_deref(), Some("first line"));
}

/// One HTTP GET to `addr`, the whole answer as text.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The samples of a Prometheus exposition, read by an independent parser: plain values
/// by name (first sample), and the delivery latency histogram's count.
fn prometheus_values(text: &str) -> std::collections::HashMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a valid Prometheus exposition");
    let mut out = std::collections::HashMap::new();
    for s in scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        out.entry(s.metric).or_insert(v);
    }
    out
}

/// `--metrics-listen`, `--metrics-textfile` and `--stats-interval` against a real
/// broker: `/metrics` is scraped while the run is open (stdin not yet closed) and parsed
/// by an independent Prometheus parser; its counters and the textfile's final ones
/// agree with what Kafka's console consumer reads: sent = delivered = records in the
/// log, and the latency histogram counts each delivered record once.
#[test]
fn metrics_are_served_while_running_and_match_the_log_at_exit() {
    use std::io::BufRead;
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-metrics", 3);
    let dir = std::env::temp_dir().join(format!("courier-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let textfile = dir.join("courier.prom");
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["produce", "-b", &cluster.bootstrap(), "-t", &t, "-K", ":"])
        .args(["--metrics-listen", "127.0.0.1:0", "--stats-interval", "200"])
        .arg("--metrics-textfile")
        .arg(&textfile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the courier binary");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("courier says where its metrics are");
        seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("% metrics at http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    let n = 2000;
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..n {
        writeln!(stdin, "k{}:v{i}", i % 17).unwrap();
    }
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let live = loop {
        let answer = http_get(&addr, "/metrics");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("Content-Type: text/plain; version=0.0.4"),
            "{answer}"
        );
        let body = answer.split_once("\r\n\r\n").unwrap().1.to_string();
        let v = prometheus_values(&body);
        if v["courier_records_delivered_total"] >= n as f64 || std::time::Instant::now() > deadline
        {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(live["courier_records_sent_total"], n as f64);
    assert_eq!(live["courier_records_delivered_total"], n as f64);
    assert_eq!(live["courier_delivery_latency_seconds_count"], n as f64);
    assert_eq!(live["courier_queued_records"], 0.0);
    assert_eq!(live["courier_producer_fatal"], 0.0);
    assert_eq!(
        live["courier_broker_connected"], 1.0,
        "one broker, connected"
    );
    assert!(live["courier_batch_size_bytes_count"] >= 1.0);
    assert!(live["courier_request_latency_seconds_count"] >= 1.0);
    assert!(live["courier_compression_ratio"] > 0.0);
    assert_eq!(
        live["courier_oldest_queued_record_age_seconds"], 0.0,
        "nothing waits"
    );
    // One replica: the durability audit says it is not aligned with acks=all.
    assert_eq!(live["courier_topic_durability_aligned"], 0.0);
    assert!(http_get(&addr, "/other").starts_with("HTTP/1.1 404"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert_eq!(status.code(), Some(0), "{seen:#?}");
    let stats: Vec<Value> = seen
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a stats line is JSON"))
        .collect();
    assert!(!stats.is_empty(), "no --stats-interval line in {seen:#?}");
    assert_eq!(stats.last().unwrap()["delivered"], n);
    let last = prometheus_values(&std::fs::read_to_string(&textfile).unwrap());
    let stored = cluster.consume_all(&t).unwrap().len();
    assert_eq!(stored, n);
    assert_eq!(last["courier_records_sent_total"], stored as f64);
    assert_eq!(last["courier_records_delivered_total"], stored as f64);
    assert_eq!(
        last["courier_delivery_latency_seconds_count"],
        stored as f64
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
