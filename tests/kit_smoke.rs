//! The test kit proves itself: a real 3-broker cluster survives a `kill -9` of a
//! partition leader, and Kafka's own tools read back what Kafka's own producer wrote.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use courier_testkit::{KafkaCluster, TopicSpec};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn leader_kill_elects_new_leader_and_restarted_broker_rejoins_isr() {
    let cluster = KafkaCluster::start(3).expect("3-broker cluster");
    assert_eq!(cluster.broker_ids().unwrap(), vec![1, 2, 3]);
    let topic = cluster.unique_topic("kit-smoke");
    cluster
        .create_topic(&TopicSpec::new(&topic).partitions(2).replication_factor(3))
        .unwrap();
    let before = cluster.partition(&topic, 0).unwrap();
    assert_eq!(before.replicas.len(), 3);
    assert_eq!(before.isr.len(), 3);

    let first: Vec<(Option<String>, String)> = (0..50)
        .map(|i| (Some(format!("k{i}")), format!("before-{i}")))
        .collect();
    produce(&cluster, &topic, &first);

    let old_leader = cluster.wait_for_leader(&topic, 0, WAIT).unwrap();
    let pid = cluster
        .local()
        .unwrap()
        .pid(old_leader)
        .unwrap()
        .expect("running");
    cluster.kill(old_leader).unwrap();
    assert!(!cluster.local().unwrap().is_running(old_leader).unwrap());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "killed broker's JVM {pid} is still there"
    );
    let new_leader = cluster
        .wait_for_leader_other_than(&topic, 0, Some(old_leader), WAIT)
        .unwrap();
    assert_ne!(new_leader, old_leader);

    // Writes keep working with one broker of three down (min.insync.replicas=2).
    let second: Vec<(Option<String>, String)> =
        (0..50).map(|i| (None, format!("during-{i}"))).collect();
    produce(&cluster, &topic, &second);

    cluster.start_broker(old_leader).unwrap();
    cluster.wait_for_full_isr(&topic, 0, WAIT).unwrap();
    cluster.wait_for_full_isr(&topic, 1, WAIT).unwrap();
    assert!(cluster
        .partition(&topic, 0)
        .unwrap()
        .isr
        .contains(&old_leader));

    let records = cluster.consume_all(&topic).unwrap();
    assert_eq!(records.len(), 100);
    let values: BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    let expected: BTreeSet<String> = first
        .iter()
        .chain(&second)
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(
        values, expected,
        "the independent reader sees every record once"
    );
    for r in &records {
        let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
        if v.starts_with("during-") {
            assert_eq!(r.key, None, "null keys read back as null");
        } else {
            let i = v.trim_start_matches("before-");
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        }
    }
    // Offsets within a partition are contiguous from 0.
    for p in 0..2 {
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        let mut sorted = offsets.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }

    // The stored batches, read from the new leader's log dir by kafka-dump-log, carry
    // the console producer's idempotent producer id and valid CRCs.
    let batches = cluster.dump_partition(new_leader, &topic, 0).unwrap();
    assert!(!batches.is_empty());
    let stored: i64 = batches.iter().map(|b| b.count).sum();
    assert_eq!(
        stored,
        records.iter().filter(|r| r.partition == 0).count() as i64
    );
    for b in &batches {
        assert!(b.is_valid, "{b:?}");
        assert!(b.producer_id >= 0, "console producer is idempotent: {b:?}");
        assert_eq!(b.last_sequence - b.base_sequence + 1, b.count as i32);
    }
}

#[test]
fn paused_broker_stops_answering_until_resumed() {
    let cluster = KafkaCluster::start(1).expect("1-broker cluster");
    let addr = cluster.local().unwrap().broker_address(1).unwrap();
    // It answers before the pause: a probe that ends early below is then the pause's
    // doing, not a listener still starting (one CI run saw the probe end within 2 s).
    courier_testkit::Admin::new(&addr)
        .metadata(Some(&[]))
        .expect("the broker answers before the pause");
    cluster.pause(1).unwrap();
    let start = Instant::now();
    let probe = std::thread::spawn(move || courier_testkit::Admin::new(&addr).metadata(Some(&[])));
    std::thread::sleep(Duration::from_secs(2));
    if probe.is_finished() {
        let got = probe.join().unwrap();
        panic!("the probe of a SIGSTOPped broker ended within 2 s: {got:?}");
    }
    cluster.resume(1).unwrap();
    let md = probe.join().unwrap().expect("answers once resumed");
    assert_eq!(md.brokers.len(), 1);
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[test]
fn unknown_topic_is_reported_and_leaderless_wait_times_out_with_context() {
    let cluster = KafkaCluster::shared(1);
    let missing = cluster.unique_topic("missing");
    let md = cluster.admin().metadata(Some(&[&missing])).unwrap();
    assert_eq!(md.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let err = cluster
        .wait_for_leader(&missing, 0, Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(err.contains("timed out") && err.contains(&missing), "{err}");
}

fn produce(cluster: &KafkaCluster, topic: &str, records: &[(Option<String>, String)]) {
    let borrowed: Vec<(Option<&str>, &str)> = records
        .iter()
        .map(|(k, v)| (k.as_deref(), v.as_str()))
        .collect();
    cluster.console_produce(topic, &borrowed).unwrap();
}
