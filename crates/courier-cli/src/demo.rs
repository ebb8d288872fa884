//! `courier demo`: the main job end to end. Starts a local Kafka cluster through the
//! test kit (or uses the one named by `-b`), creates a durable topic, produces with
//! durable settings, and has Kafka's own tools judge the result:
//!
//! * the console consumer: every acknowledged record is in the log exactly once, at
//!   the partition and offset its delivery report named, in send order per partition;
//! * `kafka-dump-log` (local clusters only, it reads the segment files): one producer
//!   id and epoch for every batch, sequences contiguous from 0 in every partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier::{Producer, ProducerConfig, ProducerRecord};
use courier_testkit::{BackendKind, KafkaCluster, TopicSpec};

use crate::props;
use crate::stats::{Failures, Histogram};

/// Options of `courier demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Use this cluster instead of starting one (verification then uses the console
    /// consumer only).
    #[arg(
        short = 'b',
        long = "bootstrap",
        alias = "bootstrap-server",
        value_name = "BROKERS"
    )]
    pub bootstrap: Option<String>,

    /// Brokers of the local cluster to start.
    #[arg(long = "brokers", default_value_t = 3)]
    pub brokers: usize,

    /// Records to produce.
    #[arg(short = 'n', long = "records", default_value_t = 10_000)]
    pub records: usize,

    /// Partitions of the demo topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,

    /// Extra producer property prop=value (repeatable), applied after the durable
    /// defaults.
    #[arg(short = 'X', long = "property", value_name = "PROP=VALUE")]
    pub properties: Vec<String>,
}

/// The durable settings the demo produces with.
pub const DURABLE: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "10"),
    ("batch.size", "32768"),
];

/// Runs `courier demo`; returns the exit code.
pub fn run(args: DemoArgs) -> i32 {
    match try_run(args) {
        Ok(true) => {
            println!("OK: every acknowledged record is in the log exactly once, in order");
            0
        }
        Ok(false) => {
            println!("FAILED: see the checks above");
            1
        }
        Err(e) => {
            eprintln!("courier demo: {e}");
            1
        }
    }
}

fn try_run(args: DemoArgs) -> Result<bool, String> {
    if args.partitions < 1 || args.brokers < 1 {
        return Err("--partitions and --brokers must be at least 1".into());
    }
    let started = Instant::now();
    let cluster = match &args.bootstrap {
        Some(b) => {
            // The kit's external backend reads the address from KAFKA_BOOTSTRAP.
            std::env::set_var("KAFKA_BOOTSTRAP", b);
            KafkaCluster::builder()
                .backend(BackendKind::External)
                .start()
                .map_err(|e| format!("cannot use the cluster at {b}: {e}"))?
        }
        None => {
            println!(
                "starting a local {}-broker Kafka {} cluster (KRaft, 127.0.0.1) ...",
                args.brokers,
                courier_testkit::KAFKA_VERSION
            );
            KafkaCluster::start(args.brokers).map_err(|e| e.to_string())?
        }
    };
    let brokers = cluster.broker_ids().map_err(|e| e.to_string())?.len();
    println!(
        "cluster: {} broker(s) at {} (ready after {:.1} s)",
        brokers,
        cluster.bootstrap(),
        started.elapsed().as_secs_f64()
    );

    let rf = brokers.min(3) as i16;
    let min_isr = if rf >= 3 { 2 } else { 1 };
    let topic = cluster.unique_topic("courier-demo");
    cluster
        .create_topic(
            &TopicSpec::new(&topic)
                .partitions(args.partitions)
                .replication_factor(rf)
                .config("min.insync.replicas", min_isr.to_string()),
        )
        .map_err(|e| e.to_string())?;
    let p0 = cluster.partition(&topic, 0).map_err(|e| e.to_string())?;
    println!(
        "topic {topic}: {} partitions, replication factor {rf}, min.insync.replicas={min_isr} \
         (partition 0: leader {}, replicas {:?}, isr {:?})",
        args.partitions, p0.leader, p0.replicas, p0.isr
    );

    let mut kv: Vec<(String, String)> = vec![("bootstrap.servers".into(), cluster.bootstrap())];
    kv.extend(DURABLE.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    for p in &args.properties {
        kv.push(props::parse_kv(p).map_err(|e| format!("-X {e}"))?);
    }
    let config = props::build(props::builder_with(ProducerConfig::builder(), &kv)?)?;
    println!(
        "producing {} records with {}",
        args.records,
        kv[1..]
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    let produced = rt.block_on(produce(&topic, args.records, config))?;
    drop(rt);

    let mut ok = produced.failures.total() == 0;
    println!(
        "delivered {}/{} records in {:.2} s ({:.0} records/s); latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        produced.acked.len(),
        args.records,
        produced.elapsed.as_secs_f64(),
        produced.acked.len() as f64 / produced.elapsed.as_secs_f64().max(1e-9),
        produced.latency.quantile_ms(0.5),
        produced.latency.quantile_ms(0.99),
        produced.latency.max_ms(),
    );
    // On a cluster started seconds ago the first records wait for the producer id, whose
    // coordinator is still loading, and the burst is sent long before that: say so, or the
    // first figures a newcomer sees look like courier's speed (issue 16).
    if let Some(first) = produced.first_ack {
        let rest = produced.elapsed.saturating_sub(first).as_secs_f64();
        let after = produced.acked.len().saturating_sub(1) as f64 / rest.max(1e-9);
        println!(
            "  the first acknowledgement came {:.2} s after the first send: before its first \
             batch a producer gets its producer id (InitProducerId; a cluster this fresh \
             answers COORDINATOR_LOAD_IN_PROGRESS until the coordinator has loaded), the \
             topic's metadata and the durability audit, and the first acks=all writes to a \
             topic created moments ago wait for its followers to start fetching; the {} \
             records sent by then (all sent within {:.2} s) waited in the buffer, which is \
             most of the latency above. From the first acknowledgement on: {:.0} records/s",
            first.as_secs_f64(),
            produced.sent_before_first_ack,
            produced.send_loop.as_secs_f64(),
            after
        );
    }
    if !ok {
        println!("  {} records failed:", produced.failures.total());
        for line in produced.failures.report_lines() {
            println!("{line}");
        }
    }

    println!("verifying with Kafka's console consumer ...");
    ok &= check_consumed(&cluster, &topic, &produced.acked)?;
    if cluster.backend() == BackendKind::Local {
        println!("verifying with kafka-dump-log on each partition leader ...");
        ok &= check_dump_log(&cluster, &topic, args.partitions)?;
    } else {
        println!("(kafka-dump-log skipped: it reads segment files, only a local cluster has them)");
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ok)
}

struct Produced {
    /// seq -> (partition, offset) from the delivery reports.
    acked: HashMap<usize, (i32, i64)>,
    failures: Failures,
    latency: Histogram,
    elapsed: Duration,
    /// When the first delivery report arrived, from the first send.
    first_ack: Option<Duration>,
    /// Records handed to the producer before that.
    sent_before_first_ack: usize,
    /// How long handing over all the records took.
    send_loop: Duration,
}

#[derive(Default)]
struct DemoAcc {
    acked: HashMap<usize, (i32, i64)>,
    failures: Failures,
    latency: Histogram,
    first_ack: Option<(Duration, usize)>,
    sent: usize,
}

/// The value of record `seq`; the verification parses `seq` back out of it.
fn value(seq: usize) -> String {
    format!(
        "{{\"seq\":{seq},\"customer\":\"customer-{}\",\"amount\":{}.{:02}}}",
        seq % 101,
        seq % 977,
        seq % 100
    )
}

fn parse_seq(value: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(value).ok()?;
    let rest = s.strip_prefix("{\"seq\":")?;
    rest[..rest.find(',')?].parse().ok()
}

async fn produce(topic: &str, n: usize, config: ProducerConfig) -> Result<Produced, String> {
    let producer = Producer::new(config).map_err(|e| e.to_string())?;
    let acc = Arc::new(Mutex::new(DemoAcc::default()));
    let start = Instant::now();
    let step = (n / 10).max(1);
    for seq in 0..n {
        // Keyed records (the customer) so each customer's records stay in order on
        // one partition; every fifth record unkeyed, spread by the sticky partitioner.
        let mut rec = ProducerRecord::new(topic).value(value(seq));
        if seq % 5 != 0 {
            rec = rec.key(format!("customer-{}", seq % 101));
        }
        let sent = Instant::now();
        let a = acc.clone();
        let r = producer
            .produce_with_callback(rec, move |r| {
                let mut a = a.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(md) => {
                        if a.first_ack.is_none() {
                            a.first_ack = Some((start.elapsed(), a.sent));
                        }
                        a.latency.record(sent.elapsed());
                        a.acked.insert(seq, (md.partition, md.offset));
                        let done = a.acked.len();
                        if done % step == 0 || done == n {
                            println!("  acknowledged {done}/{n}");
                        }
                    }
                    Err(e) => a.failures.add(&e),
                }
            })
            .await;
        let mut a = acc.lock().unwrap_or_else(|e| e.into_inner());
        a.sent += 1;
        if let Err(e) = r {
            a.failures.add(&e);
        }
    }
    let send_loop = start.elapsed();
    let flushed = producer.flush().await;
    let elapsed = start.elapsed();
    let closed = producer.close(Duration::from_secs(30)).await;
    if let Err(e) = flushed.and(closed) {
        return Err(format!("the producer stopped: {e}"));
    }
    let acc = std::mem::take(&mut *acc.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Produced {
        acked: acc.acked,
        failures: acc.failures,
        latency: acc.latency,
        elapsed,
        first_ack: acc.first_ack.map(|(t, _)| t),
        sent_before_first_ack: acc.first_ack.map_or(0, |(_, n)| n),
        send_loop,
    })
}

fn check(ok: bool, what: &str) -> bool {
    println!("  [{}] {what}", if ok { "ok" } else { "FAIL" });
    ok
}

fn check_consumed(
    cluster: &KafkaCluster,
    topic: &str,
    acked: &HashMap<usize, (i32, i64)>,
) -> Result<bool, String> {
    let records = cluster.consume_all(topic).map_err(|e| e.to_string())?;
    let mut ok = check(
        records.len() == acked.len(),
        &format!(
            "the log holds {} records; {} were acknowledged",
            records.len(),
            acked.len()
        ),
    );
    let mut seen: HashMap<usize, (i32, i64)> = HashMap::new();
    let mut dups = 0;
    let mut unparsable = 0;
    let mut per_partition: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for r in &records {
        match r.value.as_deref().and_then(parse_seq) {
            Some(seq) => {
                if seen.insert(seq, (r.partition, r.offset)).is_some() {
                    dups += 1;
                }
                per_partition
                    .entry(r.partition)
                    .or_default()
                    .push((r.offset, seq));
            }
            None => unparsable += 1,
        }
    }
    ok &= check(
        dups == 0 && unparsable == 0,
        &format!("no duplicates ({dups} found), no foreign records ({unparsable} found)"),
    );
    let missing = acked.keys().filter(|s| !seen.contains_key(s)).count();
    let misplaced = acked
        .iter()
        .filter(|(s, at)| seen.get(s).is_some_and(|got| got != *at))
        .count();
    ok &= check(
        missing == 0 && misplaced == 0,
        &format!(
            "every acknowledged record is at the partition and offset its delivery report \
             named ({missing} missing, {misplaced} elsewhere)"
        ),
    );
    let mut out_of_order = 0;
    for recs in per_partition.values_mut() {
        recs.sort();
        out_of_order += recs.windows(2).filter(|w| w[0].1 > w[1].1).count();
    }
    ok &= check(
        out_of_order == 0,
        &format!(
            "send order kept in each of {} partitions ({out_of_order} inversions)",
            per_partition.len()
        ),
    );
    Ok(ok)
}

fn check_dump_log(cluster: &KafkaCluster, topic: &str, partitions: i32) -> Result<bool, String> {
    let mut ok = true;
    let mut producers = BTreeMap::new();
    for p in 0..partitions {
        let leader = cluster
            .partition(topic, p)
            .map_err(|e| e.to_string())?
            .leader;
        let batches = cluster
            .dump_partition(leader, topic, p)
            .map_err(|e| e.to_string())?;
        let data: Vec<_> = batches.iter().filter(|b| !b.is_control).collect();
        let records: i64 = data.iter().map(|b| b.count).sum();
        let mut expected = 0i64;
        let mut contiguous = true;
        for b in &data {
            contiguous &= b.base_sequence as i64 == expected
                && (b.last_sequence - b.base_sequence) as i64 + 1 == b.count;
            expected = b.last_sequence as i64 + 1;
            *producers
                .entry((b.producer_id, b.producer_epoch))
                .or_insert(0) += 1;
        }
        let valid = data.iter().all(|b| b.is_valid);
        let codecs: std::collections::BTreeSet<&str> =
            data.iter().map(|b| b.codec.as_str()).collect();
        ok &= check(
            contiguous && valid,
            &format!(
                "partition {p} (leader {leader}): {} batches, {records} records, sequences \
                 0..{} contiguous, CRCs valid, codec {}",
                data.len(),
                expected - 1,
                codecs.into_iter().collect::<Vec<_>>().join("/")
            ),
        );
    }
    ok &= check(
        producers.len() == 1 && producers.keys().all(|(id, _)| *id >= 0),
        &format!(
            "one producer id and epoch across all batches: {}",
            producers
                .iter()
                .map(|((id, ep), n)| format!("id {id} epoch {ep} ({n} batches)"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_survives_the_value_format() {
        for seq in [0, 7, 10_000, 123_456] {
            assert_eq!(parse_seq(value(seq).as_bytes()), Some(seq));
        }
        assert_eq!(parse_seq(b"{\"other\":1}"), None);
    }
}
