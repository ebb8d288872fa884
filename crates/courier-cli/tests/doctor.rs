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

/// The connection check comes first: how the producer connects (TLS version, the checks
/// made, the SASL mechanism), or why it cannot, with what to change.
#[test]
fn doctor_says_how_it_connected_over_sasl_ssl_or_why_it_could_not() {
    use courier_testkit::Listener;
    let cluster = KafkaCluster::shared_secured();
    let sec = cluster.security().unwrap();
    let topic = cluster.unique_topic("doctor-sec");
    cluster.create_topic(&TopicSpec::new(&topic)).unwrap();
    let l = sec.listener(Listener::SaslSsl).unwrap();
    let ca = format!("ssl.ca.location={}", sec.pki.ca.cert_path.display());
    let user = format!("sasl.username={}", sec.user().name);
    let good = format!("sasl.password={}", sec.user().password);
    let args = |password: &str| {
        vec![
            "-b".to_string(),
            l.bootstrap.clone(),
            "-t".into(),
            topic.clone(),
            "-X".into(),
            "security.protocol=sasl_ssl".into(),
            "-X".into(),
            "sasl.mechanism=SCRAM-SHA-512".into(),
            "-X".into(),
            user.clone(),
            "-X".into(),
            password.to_string(),
            "-X".into(),
            ca.clone(),
        ]
    };
    let a = args(&good);
    let out = doctor(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = text(&out.stdout);
    // One broker: replication factor 1 is misaligned (exit 1), but it did connect.
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("connection: "), "{stdout}");
    assert!(stdout.contains("TLSv1_3"), "{stdout}");
    assert!(stdout.contains("verified, host name checked"), "{stdout}");
    assert!(
        stdout.contains("SASL SCRAM-SHA-512 authenticated"),
        "{stdout}"
    );
    let a = args("sasl.password=wrong-password");
    let out = doctor(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot connect as the producer would"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid credentials"), "{stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
}
