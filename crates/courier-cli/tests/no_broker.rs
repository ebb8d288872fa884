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
            vec!["-X", "compression.type=zstd"],
            "zstd is not supported for sending yet",
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
