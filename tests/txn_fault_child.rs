//! The producer `txn_faults` kills with `kill -9` mid-transaction: a transactional
//! producer in a process of its own, so that nothing of it (no close, no abort on drop)
//! runs when it dies.
//!
//! ```text
//! txn-fault-child <bootstrap> <transactional.id> <topic> <committed> <records>
//! ```
//!
//! Commits `<committed>` transactions of `<records>` keyed records each (values
//! `committed-<t>-<i>`), printing `committed <t>` after each; then opens one more, sends
//! `<records>` records (`open-<i>`) and waits until every one is acknowledged (they are
//! in the log, and only a marker can hide them), prints `acknowledged`, sends
//! `<records>` more (`open-late-<i>`) without waiting, prints `ready`, and sleeps until
//! it is killed. It exits by itself when its stdin closes, so that it cannot outlive a
//! test that died before killing it.

use std::io::{BufRead, Write};
use std::time::Duration;

use courier::{Producer, ProducerConfig, ProducerRecord};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, id, topic, committed, records] = &args[..] else {
        eprintln!(
            "usage: txn-fault-child <bootstrap> <transactional.id> <topic> <committed> <records>"
        );
        std::process::exit(2);
    };
    let committed: usize = committed.parse().expect("<committed> is a number");
    let records: usize = records.parse().expect("<records> is a number");
    std::thread::spawn(|| {
        // The parent holds our stdin: EOF means it is gone.
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
            line.clear();
        }
        std::process::exit(3);
    });
    let say = |what: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{what}").expect("stdout");
        out.flush().expect("stdout");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let config = ProducerConfig::builder()
            .set("bootstrap.servers", bootstrap)
            .and_then(|b| b.set("transactional.id", id))
            // Longer than the test waits for the new instance: if the coordinator aborts
            // the open transaction in time, it is because the new instance fenced it.
            .and_then(|b| b.set("transaction.timeout.ms", "120000"))
            .and_then(|b| b.set("linger.ms", "5"))
            .and_then(|b| b.set("compression.type", "lz4"))
            .expect("settings")
            .build()
            .expect("a valid configuration");
        let p = Producer::new(config).expect("a producer");
        p.init_transactions().await.expect("init_transactions");
        let record = |i: usize, value: String| {
            ProducerRecord::new(topic.as_str())
                .key(format!("k{}", i % 6))
                .value(value)
        };
        for t in 0..committed {
            p.begin_transaction().await.expect("begin_transaction");
            let mut acks = Vec::new();
            for i in 0..records {
                acks.push(
                    p.produce(record(i, format!("committed-{t}-{i}")))
                        .await
                        .expect("produce"),
                );
            }
            p.commit_transaction().await.expect("commit_transaction");
            for a in acks {
                a.await.expect("a committed record is acknowledged");
            }
            say(&format!("committed {t}"));
        }
        p.begin_transaction().await.expect("begin_transaction");
        let mut acks = Vec::new();
        for i in 0..records {
            acks.push(
                p.produce(record(i, format!("open-{i}")))
                    .await
                    .expect("produce"),
            );
        }
        for a in acks {
            a.await
                .expect("an open transaction's record is acknowledged");
        }
        say("acknowledged");
        let mut late = Vec::new();
        for i in 0..records {
            late.push(p.produce(record(i, format!("open-late-{i}"))).await);
        }
        say("ready");
        // Hold the producer (and its open transaction) until the kill.
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop((late, p));
    });
}
