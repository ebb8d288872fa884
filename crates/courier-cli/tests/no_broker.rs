//! What `courier` tells a user when things are wrong before any broker is involved: an
//! unreachable cluster (and why), refused settings, secrets never echoed, `-q` and `-d`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn courier(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the courier binary");
    // A refused command exits without reading stdin.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "courier {args:?} -> {}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A loopback port with nothing listening.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

const FAST: [&str; 6] = [
    "-X",
    "delivery.timeout.ms=3000",
    "-X",
    "request.timeout.ms=1000",
    "-X",
    "linger.ms=0",
];

#[test]
fn an_unreachable_cluster_is_named_with_its_cause_and_the_run_fails() {
    let addr = closed_port();
    let mut args = vec!["produce", "-b", &addr, "-t", "t"];
    args.extend(FAST);
    let out = courier(&args, b"a\nb\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warned while it happens, and summed up as the root cause at the end.
    assert!(
        stderr.contains(&format!("WARN could not connect to {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("root cause (2 record(s)): could not connect to"));
    // Said once, not at every reconnect attempt.
    assert_eq!(
        stderr.matches("WARN could not connect").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn quiet_silences_warnings_but_not_the_failure_summary() {
    let addr = closed_port();
    let mut args = vec!["-q", "produce", "-b", &addr, "-t", "t"];
    args.extend(FAST);
    let out = courier(&args, b"a\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains("1 of 1 records failed"), "{stderr}");
}

#[test]
fn debug_contexts_are_checked() {
    let out = courier(
        &["-d", "broker,cgrp", "produce", "-b", "b:1", "-t", "t"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-d cgrp: not a courier debug context"),
        "{stderr}"
    );
}

#[test]
fn refused_settings_exit_2_and_never_echo_secrets() {
    for (args, expect) in [
        (
            vec![
                "-X",
                "compression.type=lz4",
                "-X",
                "compression.zstd.level=19",
            ],
            "applies only to compression.type=zstd",
        ),
        (
            vec![
                "-X",
                "sasl.jaas.config=x required username=\"u\" password=\"hunter2\";",
            ],
            "sasl.jaas.config",
        ),
        (vec!["-X", "sasl.pasword=hunter2"], "sasl.pasword"),
        (vec!["-X", "ssl.key.password:hunter2"], "ssl.key.password"),
        (
            vec!["-p", "-2"],
            "-p -2: a partition is a number from 0, or -1",
        ),
        (vec!["-X", "retry.backoff.ms=0"], "busy loop"),
    ] {
        let mut all = vec!["produce", "-b", "b:1", "-t", "t"];
        all.extend(args.iter().copied());
        let out = courier(&all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{args:?} leaked: {stderr}");
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("courier-nb-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn records_that_never_reached_a_broker_are_written_to_failed_out() {
    // Nothing listens: nothing can be in a log, so every record is not persisted and
    // goes to --failed-out, as read; the files are emptied first.
    let dir = scratch("unreachable");
    let failed = dir.join("failed");
    let uncertain = dir.join("uncertain");
    std::fs::write(&failed, "left over from an earlier run\n").unwrap();
    std::fs::write(&uncertain, "left over too\n").unwrap();
    let addr = closed_port();
    let mut args = vec!["produce", "-b", &addr, "-t", "t", "-K", "\\t", "-D", "|"];
    args.extend(FAST);
    args.extend([
        "--failed-out",
        failed.to_str().unwrap(),
        "--uncertain-out",
        uncertain.to_str().unwrap(),
    ]);
    let out = courier(&args, b"k1\tv1|k2\tv2|no key|");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the failures still fail the run"
    );
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        "k1\tv1|k2\tv2|no key|"
    );
    assert_eq!(std::fs::read_to_string(&uncertain).unwrap(), "");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn output_files_are_checked_before_anything_is_read_or_sent() {
    let dir = scratch("refused");
    let input = dir.join("input.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let input_s = input.to_str().unwrap();
    let missing = dir.join("no-such-dir").join("failed.txt");
    let expect_refused = |args: &[&str], stdin: Stdio, what: &str| {
        let mut all = vec!["produce", "-b", "127.0.0.1:1", "-t", "t"];
        all.extend(args);
        let out = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(&all)
            .env_remove("RUST_LOG")
            .stdin(stdin)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{all:?} -> {}\n{stderr}", out.status);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(what), "{what:?} in {stderr}");
        // Refused at once: no connection was tried.
        assert!(!stderr.contains("could not connect"), "{stderr}");
    };
    expect_refused(
        &["--failed-out", missing.to_str().unwrap()],
        Stdio::null(),
        &format!("--failed-out {}: cannot create", missing.display()),
    );
    expect_refused(
        &["--uncertain-out", missing.to_str().unwrap()],
        Stdio::null(),
        &format!("--uncertain-out {}: cannot create", missing.display()),
    );
    // The input itself, as a -l file or as stdin: emptying it would lose the records.
    expect_refused(
        &["-l", input_s, "--failed-out", input_s],
        Stdio::null(),
        "that file is also the input",
    );
    expect_refused(
        &["--uncertain-out", input_s],
        Stdio::from(std::fs::File::open(&input).unwrap()),
        "that file is also the input (stdin)",
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "a\nb\n");
    let both = dir.join("both.txt");
    expect_refused(
        &[
            "--failed-out",
            both.to_str().unwrap(),
            "--uncertain-out",
            both.to_str().unwrap(),
        ],
        Stdio::null(),
        "must not be mixed",
    );
    // Whole files are one record each: they cannot be written back as one.
    expect_refused(
        &[input_s, "--failed-out", dir.join("f").to_str().unwrap()],
        Stdio::null(),
        "needs records split by a delimiter",
    );
    std::fs::remove_dir_all(&dir).ok();
}
