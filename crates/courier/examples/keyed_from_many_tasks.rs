//! Many tokio tasks, one producer: each task sends keyed records through its own clone of
//! one `Producer`, queues them all with `produce` and then awaits the per-record delivery
//! futures. At the end the program counts successes and failures by persistence, and checks
//! what the default partitioner promises: every key stays on one partition (Java's murmur2
//! of the key), and a key's records are stored in the order they were sent.
//!
//! Against a local cluster (its brokers do not create topics on first use):
//!
//! ```sh
//! cargo run -p courier-testkit --bin courier-kafka   # prints "bootstrap: 127.0.0.1:<port>"
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic customers --partitions 6
//! cargo run -p courier --example keyed_from_many_tasks -- 127.0.0.1:<port> customers [tasks] [records-per-task]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use courier::{DeliveryResult, Persistence, Producer, ProducerConfig, ProducerRecord};

/// Keys per task: every task owns its keys, so the order of a key's records is the order
/// its task sent them in.
const KEYS_PER_TASK: usize = 4;

/// One record's outcome, as a task saw it.
struct Outcome {
    key: String,
    seq: usize,
    /// Whether `produce` took the record (else `result` is why not).
    queued: bool,
    result: DeliveryResult,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "customers".into());
    let tasks: usize = args.next().map_or(Ok(8), |a| a.parse())?;
    let per_task: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;

    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("client.id", "keyed-from-many-tasks-example"),
        ("linger.ms", "10"),
    ])?)?;

    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        // A clone is a handle: all of them share one buffer, one driver, one connection
        // per broker.
        let producer = producer.clone();
        let topic = topic.clone();
        handles.push(tokio::spawn(async move {
            // Queue every record first (many in flight), await the reports afterwards.
            let mut pending = Vec::with_capacity(per_task);
            let mut outcomes = Vec::with_capacity(per_task);
            for seq in 0..per_task {
                let key = format!("customer-{task}-{}", seq % KEYS_PER_TASK);
                let record = ProducerRecord::new(&topic)
                    .key(key.clone())
                    .value(format!("{{\"task\":{task},\"seq\":{seq}}}"));
                match producer.produce(record).await {
                    Ok(report) => pending.push((key, seq, report)),
                    // Not queued at all (buffer full for max.block.ms, producer stopped):
                    // the record never left the application.
                    Err(e) => outcomes.push(Outcome {
                        key,
                        seq,
                        queued: false,
                        result: Err(e),
                    }),
                }
            }
            for (key, seq, report) in pending {
                outcomes.push(Outcome {
                    key,
                    seq,
                    queued: true,
                    result: report.await,
                });
            }
            outcomes
        }));
    }

    let mut delivered = 0usize;
    let mut by_persistence: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut by_error: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut first_errors: Vec<String> = Vec::new();
    // Per key: (seq, partition, offset) of every acknowledged record.
    let mut placed: HashMap<String, Vec<(usize, i32, i64)>> = HashMap::new();
    for handle in handles {
        for o in handle.await? {
            match o.result {
                Ok(md) => {
                    delivered += 1;
                    placed
                        .entry(o.key)
                        .or_default()
                        .push((o.seq, md.partition, md.offset));
                }
                Err(e) => {
                    let class = if o.queued {
                        persistence_name(e.persistence())
                    } else {
                        "never queued"
                    };
                    *by_persistence.entry(class).or_default() += 1;
                    *by_error.entry(e.name()).or_default() += 1;
                    if first_errors.len() < 5 {
                        first_errors.push(format!("{} #{}: {e}", o.key, o.seq));
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();

    // Every key on exactly one partition, its offsets rising in send order.
    let mut keys_per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    let mut misplaced = Vec::new();
    for (key, mut records) in placed {
        records.sort_unstable();
        let partition = records[0].1;
        *keys_per_partition.entry(partition).or_default() += 1;
        let one_partition = records.iter().all(|r| r.1 == partition);
        let in_order = records.windows(2).all(|w| w[0].2 < w[1].2);
        if !(one_partition && in_order) {
            misplaced.push(key);
        }
    }

    let total = tasks * per_task;
    println!(
        "{tasks} tasks x {per_task} records = {total} keyed records to '{topic}' in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!("delivered: {delivered}");
    println!(
        "failed: {} (not persisted: {}, possibly persisted: {}, never queued: {})",
        total - delivered,
        by_persistence.get("not persisted").unwrap_or(&0),
        by_persistence.get("possibly persisted").unwrap_or(&0),
        by_persistence.get("never queued").unwrap_or(&0),
    );
    for (name, n) in &by_error {
        println!("  {name}: {n}");
    }
    for e in &first_errors {
        println!("  e.g. {e}");
    }
    let spread: Vec<String> = keys_per_partition
        .iter()
        .map(|(p, n)| format!("{p}: {n}"))
        .collect();
    println!(
        "{} keys over partitions {{{}}}",
        keys_per_partition.values().sum::<usize>(),
        spread.join(", ")
    );
    if misplaced.is_empty() {
        println!("every key on one partition, offsets in send order: yes");
    } else {
        println!("keys on several partitions or out of order: {misplaced:?}");
    }

    let m = producer.metrics();
    println!(
        "metrics: sent {}, delivered {}, failed {}, retries {}, connections opened {}",
        m.sent, m.delivered, m.failed, m.retries, m.connections_opened
    );

    producer.close(Duration::from_secs(30)).await?;
    if delivered != total || !misplaced.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// What a failed record's report means for sending it again: "not persisted" can be resent
/// without creating a duplicate, "possibly persisted" may already be in the topic.
fn persistence_name(p: Persistence) -> &'static str {
    match p {
        Persistence::NotPersisted => "not persisted",
        Persistence::PossiblyPersisted => "possibly persisted",
        Persistence::Persisted => "persisted",
    }
}
