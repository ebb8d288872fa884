//! Brokers never outlive the process that started them, and their files go with it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Started {
    child: std::process::Child,
    pids: Vec<u32>,
    run_dir: PathBuf,
}

/// Runs `courier-kafka` with `args` and reads its pids and run dir.
fn start(args: &[&str]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier-kafka"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    let mut run_dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("pids: ") {
            pids = p.split(',').map(|p| p.parse().unwrap()).collect();
        }
        if let Some(d) = line.strip_prefix("run dir: ") {
            run_dir = Some(PathBuf::from(d));
        }
        if line.starts_with("started in") {
            break;
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    assert!(!pids.is_empty(), "courier-kafka printed no broker pids");
    Started {
        child,
        pids,
        run_dir: run_dir.expect("courier-kafka printed no run dir"),
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

fn wait_gone(pids: &[u32]) {
    let start = Instant::now();
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "broker JVMs {pids:?} outlived their parent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn brokers_die_when_the_test_process_is_killed() {
    let mut s = start(&[]);
    assert!(s.pids.iter().all(|&p| alive(p)));
    // kill -9: no destructor, no exit hook runs; only the parent-death signal remains.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    wait_gone(&s.pids);
    // The files stay until the next start sweeps them (owner pid is gone).
    let _ = std::fs::remove_dir_all(&s.run_dir);
}

#[test]
fn process_exit_kills_brokers_and_removes_files_without_drop() {
    // A shared cluster lives in a static that is never dropped: the exit hook must
    // clean up after it.
    let mut s = start(&["--exit-without-cleanup"]);
    let status = s.child.wait().unwrap();
    assert!(status.success());
    wait_gone(&s.pids);
    assert!(
        !s.run_dir.exists(),
        "{} was left behind",
        s.run_dir.display()
    );
}
