//! `courier doctor` against real clusters from the test kit.

use std::process::{Command, Output, Stdio};

use courier_testkit::{KafkaCluster, TopicSpec};

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("doctor")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run courier doctor")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn aligned_topic_exits_zero_with_the_three_layers() {
    let cluster = KafkaCluster::shared(3);
    let topic = cluster.unique_topic("doctor-ok");
    cluster
        .create_topic(&TopicSpec::new(&topic).partitions(2).replication_factor(3))
        .unwrap();
    let out = doctor(&["-b", &cluster.bootstrap(), "-t", &topic]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for want in [
        "producer",
        "replication.factor=3",
        "min.insync.replicas=2",
        "verdict: aligned",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}

#[test]
fn misaligned_topic_and_weak_producer_exit_one_with_fixes() {
    let cluster = KafkaCluster::shared(3);
    let topic = cluster.unique_topic("doctor-bad");
    cluster
        .create_topic(
            &TopicSpec::new(&topic)
                .replication_factor(3)
                .config("min.insync.replicas", "1"),
        )
        .unwrap();
    let out = doctor(&["-b", &cluster.bootstrap(), "-t", &topic, "-X", "acks=1"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("MISALIGNED - 2 of 3"), "{stdout}");
    assert!(stdout.contains("fix: set acks=all"), "{stdout}");
    assert!(
        stdout.contains("fix: set min.insync.replicas=2"),
        "{stdout}"
    );
}

#[test]
fn missing_topic_exits_two_and_says_so() {
    let cluster = KafkaCluster::shared(3);
    let topic = cluster.unique_topic("doctor-missing");
    let out = doctor(&[
        "-b",
        &cluster.bootstrap(),
        "-t",
        &topic,
        "-X",
        "max.block.ms=3000",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&topic) && stderr.contains("does not exist"),
        "{stderr}"
    );
}
