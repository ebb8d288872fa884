//! `courier produce -X transactional.id=ID --transaction-records N` against real Kafka
//! 4.3.1 brokers from the test kit, judged by Kafka's console consumer at
//! `read_committed`: every input line exactly once after a clean run and after a broker
//! failure, nothing of the open transaction after Ctrl-C (and its records in
//! --failed-out, which sends them again), a second run with the same id fencing the
//! first, and the refused combinations.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use courier_testkit::{ConsumeOptions, KafkaCluster, TopicSpec};
use serde_json::Value;

fn courier(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the courier binary");
    // A run that refuses its arguments exits without reading stdin.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
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

/// A courier run whose stdin stays open, with its stderr lines passed on as they come.
struct Live {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the courier binary");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            stdin,
            lines,
            stderr: Vec::new(),
        }
    }

    fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.stderr.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {text:?} within {timeout:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with the id of a child this test spawned and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0);
    }

    /// Closes stdin (or, after a signal, keeps it open: the end of input must not race
    /// the signal), waits for the exit; the exit code, stdout and the whole stderr.
    fn finish(mut self, close_stdin: bool) -> (Option<i32>, String, String) {
        if close_stdin {
            drop(self.stdin.take());
        }
        let out = self.child.wait_with_output().unwrap();
        drop(self.stdin.take());
        self.stderr.extend(self.lines.iter());
        let stderr = self.stderr.join("\n");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "courier -> {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            out.status
        );
        (out.status.code(), stdout, stderr)
    }
}

fn json_summary(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("a JSON object on stdout");
    serde_json::from_str(line).expect("valid JSON")
}

/// `n` keyed lines `k<i>:line-<i>` for i in `from..from + n`.
fn lines(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("k{i}:line-{i}\n"))
        .collect()
}

/// How often each `key:value` is in `topic` at read_committed (or read_uncommitted).
///
/// The console consumer's idle timeout counts from its start, so a consumer slow to
/// join (a loaded machine: these tests start Kafka tools in parallel) can end before its
/// first record. A read that finds fewer than `expect` distinct records is done again,
/// once, with a patient consumer: only the second one's result counts.
fn read(
    cluster: &KafkaCluster,
    topic: &str,
    read_committed: bool,
    expect: usize,
) -> BTreeMap<String, usize> {
    let seen = read_idle(cluster, topic, read_committed, Duration::from_secs(4));
    if seen.len() >= expect {
        return seen;
    }
    eprintln!(
        "{} of {expect} records read from {topic}; reading again, waiting longer",
        seen.len()
    );
    read_idle(cluster, topic, read_committed, Duration::from_secs(20))
}

/// [`read`], waiting up to `idle` for the first and each next record.
fn read_idle(
    cluster: &KafkaCluster,
    topic: &str,
    read_committed: bool,
    idle: Duration,
) -> BTreeMap<String, usize> {
    let records = cluster
        .consume(
            topic,
            &ConsumeOptions {
                idle_timeout: idle,
                read_committed,
                ..ConsumeOptions::default()
            },
        )
        .unwrap();
    let mut seen = BTreeMap::new();
    for r in records {
        let text = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap_or_default()).unwrap();
        *seen
            .entry(format!("{}:{}", text(r.key), text(r.value)))
            .or_insert(0) += 1;
    }
    seen
}

/// Asserts that `seen` holds lines `from..to` exactly once each, and nothing else.
fn assert_exactly_once(seen: &BTreeMap<String, usize>, from: usize, to: usize) {
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).take(5).collect();
    assert!(twice.is_empty(), "records seen more than once: {twice:?}");
    let want: Vec<String> = (from..to).map(|i| format!("k{i}:line-{i}")).collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|l| !seen.contains_key(*l))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} records missing, e.g. {missing:?}",
        want.iter().filter(|l| !seen.contains_key(*l)).count(),
        want.len()
    );
    assert_eq!(seen.len(), want.len(), "records that were never sent");
}

fn topic(cluster: &KafkaCluster, prefix: &str, partitions: i32) -> String {
    let t = cluster.unique_topic(prefix);
    cluster
        .create_topic(&TopicSpec::new(&t).partitions(partitions))
        .unwrap();
    t
}

/// 10,000 keyed lines in transactions of 1,000: ten commits, every line once at
/// read_committed, and the summary says so.
#[test]
fn a_file_in_transactions_is_read_back_exactly_once_at_read_committed() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-txn-file", 3);
    let id = cluster.unique_topic("cli-txn-file-id");
    let dir = std::env::temp_dir().join(cluster.unique_topic("cli-txn-file-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.txt");
    std::fs::write(&input, lines(0, 10_000)).unwrap();
    let failed = dir.join("failed.txt");
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-K",
            ":",
            "-l",
            "-X",
            &format!("transactional.id={id}"),
            "--transaction-records",
            "1000",
            "--failed-out",
            failed.to_str().unwrap(),
            "--summary",
            "json",
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let s = json_summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["records"], 10_000);
    assert_eq!(s["delivered"], 10_000);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["unreported"], 0);
    assert_eq!(s["transactions_committed"], 10);
    assert_eq!(s["transactions_aborted"], 0);
    assert_eq!(s["transaction_records_committed"], 10_000);
    assert_eq!(s["failed_out"], 0);
    assert_eq!(std::fs::read(&failed).unwrap(), b"");
    assert_exactly_once(&read(cluster, &t, true, 10_000), 0, 10_000);

    // The same with the text summary: the counts in words.
    let t2 = topic(cluster, "cli-txn-text", 1);
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t2,
            "-K",
            ":",
            "-X",
            &format!("transactional.id={id}"),
            "--transaction-records",
            "40",
            "--summary",
            "text",
        ],
        lines(0, 100).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("; 3 transactions committed (100 records), 0 aborted"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C with a transaction open: the committed ones stay, exactly once; the open one
/// is aborted (its records are in the log, hidden at read_committed) and its records are
/// in --failed-out, whose resend completes the topic exactly once. Exit 130.
#[test]
fn ctrl_c_aborts_the_open_transaction_and_failed_out_completes_it() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-txn-sigint", 1);
    let id = cluster.unique_topic("cli-txn-sigint-id");
    let dir = std::env::temp_dir().join(cluster.unique_topic("cli-txn-sigint-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let failed = dir.join("failed.txt");
    let bootstrap = cluster.bootstrap();
    let txn_id = format!("transactional.id={id}");
    let mut args = vec![
        "produce",
        "-b",
        &bootstrap,
        "-t",
        &t,
        "-K",
        ":",
        "-X",
        &txn_id,
        "--transaction-records",
        "1000",
        "--summary",
        "json",
        "-v",
    ];
    let mut run = Live::start(&[&args[..], &["--failed-out", failed.to_str().unwrap()]].concat());
    run.write(lines(0, 2500).as_bytes());
    run.wait_for("transaction 2 committed", Duration::from_secs(60));
    // The open transaction's 500 records in the log too (1 partition: 2 x 1000 records,
    // 2 commit markers, 500), so only its abort can hide them.
    let mut admin = cluster.admin();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let end: i64 = admin.offsets(&t).unwrap().iter().map(|p| p.2).sum();
        if end >= 2502 {
            break;
        }
        assert!(Instant::now() < deadline, "end offset {end}, not 2502");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.signal(libc::SIGINT);
    let (code, stdout, stderr) = run.finish(false);
    assert_eq!(code, Some(130));
    assert!(
        stderr.contains("the open transaction (500 records) was aborted"),
        "{stderr}"
    );
    let s = json_summary(&stdout);
    assert_eq!(s["records"], 2500);
    assert_eq!(s["delivered"], 2000);
    assert_eq!(s["transactions_committed"], 2);
    assert_eq!(s["transaction_records_committed"], 2000);
    assert_eq!(s["transactions_aborted"], 1);
    assert_eq!(s["errors"]["TRANSACTION_ABORTED"], 500);
    assert_eq!(s["failed_out"], 500);
    assert_eq!(s["unreported"], 0);
    assert_exactly_once(&read(cluster, &t, true, 2000), 0, 2000);
    // The aborted records are in the log, read_uncommitted sees them.
    assert_eq!(read(cluster, &t, false, 2500).len(), 2500);
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        lines(2000, 500),
        "--failed-out holds the open transaction's records, in input order"
    );

    // Sending --failed-out again completes the topic, each record once.
    let input = std::fs::read(&failed).unwrap();
    args.retain(|a| *a != "-v");
    let out = courier(&args, &input);
    assert_eq!(out.status.code(), Some(0));
    let s = json_summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["transactions_committed"], 1);
    assert_eq!(s["transaction_records_committed"], 500);
    assert_exactly_once(&read(cluster, &t, true, 2500), 0, 2500);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A second run with the same transactional.id fences the first: the first stops at its
/// next transaction with exit 1 and says so; what each committed is visible once.
#[test]
fn a_second_run_with_the_same_id_fences_the_first_which_stops() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-txn-fence", 1);
    let id = cluster.unique_topic("cli-txn-fence-id");
    let bootstrap = cluster.bootstrap();
    let txn_id = format!("transactional.id={id}");
    let args = [
        "produce",
        "-b",
        &bootstrap,
        "-t",
        &t,
        "-K",
        ":",
        "-X",
        &txn_id,
        "--transaction-records",
        "100",
        "-v",
    ];
    let mut first = Live::start(&args);
    first.write(lines(0, 100).as_bytes());
    first.wait_for("transaction 1 committed", Duration::from_secs(60));
    let second = courier(&args, lines(1000, 100).as_bytes());
    assert_eq!(second.status.code(), Some(0));
    // The first's next transaction meets the fence.
    first.write(lines(100, 100).as_bytes());
    let (code, _, stderr) = first.finish(true);
    assert_eq!(code, Some(1));
    for part in [
        &format!("another producer with transactional.id={id} started since this one"),
        "this run stopped",
        "is not committed and was not sent again",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    let seen = read(cluster, &t, true, 200);
    let first_part: BTreeMap<_, _> = seen
        .iter()
        .filter(|(k, _)| k[1..].split(':').next().unwrap().parse::<usize>().unwrap() < 1000)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_exactly_once(&first_part, 0, 100);
    assert_eq!(
        seen.len(),
        200,
        "the second run's 100 and the first's first 100"
    );
}

/// Settings that cannot work together are refused before anything is sent, with exit 2
/// and the fix.
#[test]
fn refused_combinations_exit_2_and_say_the_fix() {
    let base = ["produce", "-b", "127.0.0.1:1", "-t", "t"];
    for (extra, fix) in [
        (
            &["--transaction-records", "10"][..],
            "add -X transactional.id=ID",
        ),
        (
            &["-X", "transactional.id=a"][..],
            "add --transaction-records N",
        ),
        (
            &["-X", "transaction.timeout.ms=9000"][..],
            "set transactional.id",
        ),
        (
            &["-X", "transactional.id=a", "--transaction-records", "0"][..],
            "give N >= 1",
        ),
        (
            &["--transaction-attempts", "3"][..],
            "has no effect without --transaction-records",
        ),
        (
            &[
                "-X",
                "transactional.id=a",
                "--transaction-records",
                "5",
                "--transaction-attempts",
                "0",
            ][..],
            "give N >= 1",
        ),
        (
            &[
                "-X",
                "transactional.id=a",
                "-X",
                "dlq.topic=dead",
                "--transaction-records",
                "5",
            ][..],
            "remove dlq.topic",
        ),
    ] {
        let out = courier(&[&base[..], extra].concat(), b"x\n");
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(fix), "{extra:?}: {fix:?} in {stderr}");
    }
    // The commands that run no transactions refuse the setting.
    let out = courier(
        &[
            "perf",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "1",
            "--throughput",
            "-1",
            "--producer-props",
            "bootstrap.servers=127.0.0.1:1",
            "transactional.id=a",
        ],
        b"",
    );
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not run transactions"), "{stderr}");
}

/// On its own 3-broker cluster (replication factor 3, min.insync.replicas 2): the
/// transaction coordinator's broker (which leads partitions of the topic too, mostly)
/// is killed with SIGKILL while the input flows and transactions are open and
/// committing, and started again; the run still ends with exit 0 and every line exactly
/// once at read_committed.
#[test]
fn a_broker_killed_mid_run_still_gives_every_line_exactly_once() {
    let cluster = KafkaCluster::start(3).expect("a 3-broker cluster");
    let t = cluster.unique_topic("cli-txn-kill");
    cluster
        .create_topic(&TopicSpec::new(&t).partitions(3).replication_factor(3))
        .unwrap();
    let id = cluster.unique_topic("cli-txn-kill-id");
    let bootstrap = cluster.bootstrap();
    let txn_id = format!("transactional.id={id}");
    let mut run = Live::start(&[
        "produce",
        "-b",
        &bootstrap,
        "-t",
        &t,
        "-K",
        ":",
        "-X",
        &txn_id,
        "-X",
        "transaction.timeout.ms=30000",
        "--transaction-records",
        "500",
        "--summary",
        "json",
        "-v",
    ]);
    let total = 20_000;
    run.write(lines(0, 500).as_bytes());
    run.wait_for("transaction 1 committed", Duration::from_secs(60));
    let coordinator = coordinator(&cluster, &id);
    let leader = cluster.partition(&t, 0).unwrap().leader;
    // The rest of the input flows on while the broker dies and comes back: 50 lines
    // every 25 ms (about 10 s), so the kill finds transactions open and committing.
    let mut stdin = run.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for chunk in (500..total).step_by(50) {
            stdin.write_all(lines(chunk, 50).as_bytes()).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    run.wait_for("transaction 6 committed", Duration::from_secs(60));
    eprintln!(
        "killing broker {coordinator} (coordinator of {id}); partition 0's leader is {leader}"
    );
    cluster.kill(coordinator).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    cluster.start_broker(coordinator).unwrap();
    feeder.join().unwrap();
    let (code, stdout, stderr) = run.finish(true);
    assert_eq!(code, Some(0), "{stderr}");
    let s = json_summary(&stdout);
    assert_eq!(s["records"], total);
    assert_eq!(s["delivered"], total);
    assert_eq!(s["transactions_committed"], total / 500);
    assert_eq!(s["transaction_records_committed"], total);
    let aborted = s["transactions_aborted"].as_u64().unwrap();
    let resent = stderr.matches("sending its").count() as u64;
    assert_eq!(aborted, resent, "every abort was followed by a resend");
    // The restarted broker back in every ISR, and a consumer patient enough for the
    // group coordinator it may have to find again.
    for p in 0..3 {
        cluster
            .wait_for_full_isr(&t, p, Duration::from_secs(60))
            .unwrap();
    }
    let committed = read(&cluster, &t, true, total);
    if committed.len() != total {
        // What holds the partitions back, for the failure's report.
        let uncommitted = read(&cluster, &t, false, total);
        eprintln!(
            "read_committed {} records, read_uncommitted {}; offsets {:?}",
            committed.len(),
            uncommitted.len(),
            cluster.admin().offsets(&t)
        );
        for p in 0..3 {
            let p = p.to_string();
            eprintln!(
                "{:?}",
                cluster.run_tool(
                    "org.apache.kafka.tools.TransactionsCommand",
                    &[
                        "--bootstrap-server",
                        &bootstrap,
                        "describe-producers",
                        "--topic",
                        &t,
                        "--partition",
                        &p
                    ],
                )
            );
        }
    }
    assert_exactly_once(&committed, 0, total);
}

/// The broker coordinating `id`'s transactions, from `kafka-transactions describe`.
fn coordinator(cluster: &KafkaCluster, id: &str) -> i32 {
    let out = cluster
        .run_tool(
            "org.apache.kafka.tools.TransactionsCommand",
            &[
                "--bootstrap-server",
                &cluster.bootstrap(),
                "describe",
                "--transactional-id",
                id,
            ],
        )
        .unwrap();
    // CoordinatorId  TransactionalId  ProducerId ...
    out.lines()
        .skip_while(|l| !l.starts_with("CoordinatorId"))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no coordinator in:\n{out}"))
}

/// SIGTERM with a transaction open whose records are all acknowledged: exit 143, the
/// transaction aborted (nothing at read_committed), its records in --failed-out.
#[test]
fn sigterm_aborts_the_open_transaction_like_ctrl_c() {
    let cluster = KafkaCluster::shared(1);
    let t = topic(cluster, "cli-txn-sigterm", 1);
    let id = cluster.unique_topic("cli-txn-sigterm-id");
    let dir = std::env::temp_dir().join(cluster.unique_topic("cli-txn-sigterm-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let failed = dir.join("failed.txt");
    let mut run = Live::start(&[
        "produce",
        "-b",
        &cluster.bootstrap(),
        "-t",
        &t,
        "-K",
        ":",
        "-X",
        &format!("transactional.id={id}"),
        "--transaction-records",
        "1000",
        "--failed-out",
        failed.to_str().unwrap(),
        "-vv",
    ]);
    run.write(lines(0, 10).as_bytes());
    for _ in 0..10 {
        run.wait_for("(in the open transaction)", Duration::from_secs(60));
    }
    run.signal(libc::SIGTERM);
    let (code, _, stderr) = run.finish(false);
    assert_eq!(code, Some(143));
    assert!(
        stderr.contains("the open transaction (10 records) was aborted"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&failed).unwrap(), lines(0, 10));
    // The aborted records are in the log; a committed record after them is what a
    // read_committed consumer finds, alone (and proves it read that far).
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-K",
            ":",
            "-X",
            &format!("transactional.id={id}"),
            "--transaction-records",
            "1000",
        ],
        lines(10, 1).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(read(cluster, &t, false, 11).len(), 11);
    assert_exactly_once(&read(cluster, &t, true, 1), 10, 11);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With no broker, Ctrl-C ends the wait in init_transactions at once (not after
/// max.block.ms), with exit 130.
#[test]
fn ctrl_c_ends_the_wait_for_the_coordinator() {
    let run = Live::start(&[
        "produce",
        "-b",
        "127.0.0.1:1",
        "-t",
        "t",
        "-X",
        "transactional.id=nobody-home",
        "--transaction-records",
        "10",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    run.signal(libc::SIGINT);
    let (code, _, stderr) = run.finish(false);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "took {:?} after the signal",
        sent.elapsed()
    );
    assert!(stderr.contains("no transaction was open"), "{stderr}");
}

/// A record the brokers refuse whatever is resent (an unknown topic, after
/// max.block.ms) aborts its transaction once and stops: exit 1, the transaction named
/// with what to do, its records in --failed-out, the input after it not read.
#[test]
fn a_record_no_resend_can_cure_stops_after_one_abort() {
    let cluster = KafkaCluster::shared(1);
    let t = cluster.unique_topic("cli-txn-no-such-topic");
    let id = cluster.unique_topic("cli-txn-permanent-id");
    let dir = std::env::temp_dir().join(cluster.unique_topic("cli-txn-permanent-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let failed = dir.join("failed.txt");
    let out = courier(
        &[
            "produce",
            "-b",
            &cluster.bootstrap(),
            "-t",
            &t,
            "-K",
            ":",
            "-X",
            &format!("transactional.id={id}"),
            "-X",
            "max.block.ms=3000",
            "--transaction-records",
            "50",
            "--summary",
            "json",
            "--failed-out",
            failed.to_str().unwrap(),
        ],
        lines(0, 100).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        "transaction 1 (input records 1 to 50, 50 records) was aborted: a record was refused \
         in a way that sending it again cannot change",
        "does not exist",
        "send the input from record 1 again",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    assert!(
        !stderr.contains("sending its"),
        "never sent again: {stderr}"
    );
    let s = json_summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        s["records"], 50,
        "the input after the failed transaction is not read"
    );
    assert_eq!(s["delivered"], 0);
    assert_eq!(s["failed"], 50);
    assert_eq!(s["transactions_committed"], 0);
    assert_eq!(s["transactions_aborted"], 1);
    assert_eq!(s["failed_out"], 50);
    assert_eq!(std::fs::read_to_string(&failed).unwrap(), lines(0, 50));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On its own 1-broker cluster behind a fault proxy: the link goes silent
/// (blackholed) with a transaction open, its records fail at delivery.timeout.ms
/// (abortable), the link comes back, and the run aborts the transaction and sends it
/// again: exit 0, the abort in the summary, every line exactly once at read_committed.
#[test]
fn a_silent_link_makes_the_transaction_abort_and_its_resend_commits() {
    let cluster = KafkaCluster::builder()
        .brokers(1)
        .with_proxies(true)
        .start()
        .expect("a 1-broker cluster with a fault proxy");
    let t = topic(&cluster, "cli-txn-blackhole", 1);
    let id = cluster.unique_topic("cli-txn-blackhole-id");
    let bootstrap = cluster.proxied_bootstrap().unwrap();
    let broker = cluster.broker_ids().unwrap()[0];
    let txn_id = format!("transactional.id={id}");
    let mut run = Live::start(&[
        "produce",
        "-b",
        &bootstrap,
        "-t",
        &t,
        "-K",
        ":",
        "-X",
        &txn_id,
        "-X",
        "delivery.timeout.ms=3000",
        "-X",
        "request.timeout.ms=1000",
        "--transaction-records",
        "100",
        "--summary",
        "json",
        "-v",
    ]);
    run.write(lines(0, 100).as_bytes());
    run.wait_for("transaction 1 committed", Duration::from_secs(60));
    let proxy = cluster.proxy(broker).unwrap();
    proxy.set_mode(courier_testkit::ProxyMode::Blackhole);
    run.write(lines(100, 100).as_bytes());
    run.wait_for(
        "delivery failed in the open transaction",
        Duration::from_secs(60),
    );
    proxy.set_mode(courier_testkit::ProxyMode::Pass);
    run.wait_for("sending its 100 records again", Duration::from_secs(120));
    run.write(lines(200, 100).as_bytes());
    let (code, stdout, stderr) = run.finish(true);
    assert_eq!(code, Some(0), "{stderr}");
    let s = json_summary(&stdout);
    assert_eq!(s["records"], 300);
    assert_eq!(s["delivered"], 300);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["transactions_committed"], 3);
    assert_eq!(s["transaction_records_committed"], 300);
    let aborted = s["transactions_aborted"].as_u64().unwrap();
    assert!(aborted >= 1, "{s}");
    assert_eq!(aborted, stderr.matches("sending its").count() as u64);
    assert_exactly_once(&read(&cluster, &t, true, 300), 0, 300);
}
