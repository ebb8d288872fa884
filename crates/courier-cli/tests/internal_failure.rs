//! `courier produce` never exits 0 when the producer broke: with the driver made to panic
//! (the `fault-injection` hook this test build has), every record is reported failed and
//! the exit status is 1.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn a_producer_that_breaks_makes_produce_fail_with_every_record_counted() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "produce",
            "-b",
            "127.0.0.1:1",
            "-t",
            "t",
            "-X",
            "durability.check=off",
            "--summary",
            "json",
        ])
        .env("COURIER_FAULT_INJECTION", "driver-panic-after-records=2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the courier binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a\nb\nc\nd\ne\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- stdout\n{stdout}--- stderr\n{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken producer is a failed run"
    );
    let summary: Value = serde_json::from_str(
        stdout
            .lines()
            .rfind(|l| l.starts_with('{'))
            .expect("summary"),
    )
    .unwrap();
    assert_eq!(summary["records"], 5);
    assert_eq!(summary["delivered"], 0);
    assert_eq!(summary["failed"], 5, "every record is accounted for");
    assert_eq!(summary["unreported"], 0);
    assert!(stderr.contains("internal error"), "{stderr}");
    assert!(stderr.contains("the producer stopped"), "{stderr}");
}
