//! A producer loop that shuts down cleanly: it sends one record per line of standard input
//! until Ctrl-C, SIGTERM or the end of the input; then it stops reading, flushes (bounded by
//! a timeout), closes with a timeout, and lists the records that did not make it with what
//! their persistence means for sending them again. The exit status is 0 only if every line
//! was delivered.
//!
//! Against a local cluster (its brokers do not create topics on first use):
//!
//! ```sh
//! cargo run -p courier-testkit --bin courier-kafka   # prints "bootstrap: 127.0.0.1:<port>"
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic events --partitions 3
//! # ten lines a second until Ctrl-C (or `kill -TERM` the example's pid):
//! while date +%s.%N; do sleep 0.1; done |
//!     cargo run -p courier --example graceful_shutdown -- 127.0.0.1:<port> events
//! # or until the input ends:
//! seq 1 100000 | cargo run -p courier --example graceful_shutdown -- 127.0.0.1:<port> events
//! ```
//!
//! To see records that do not make it, point it at a port where no broker listens (they
//! fail with METADATA_TIMEOUT after `max.block.ms`, not persisted), or pause the broker
//! (`kill -STOP`) before stopping the example: the flush times out, and `close` fails the
//! records still queued as not persisted and those in flight as possibly persisted.

use std::time::Duration;

use courier::{
    DeliveryFuture, Persistence, Producer, ProducerConfig, ProducerError, ProducerRecord,
};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// How long the flush may take before the producer is closed with records still pending.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `close` gives the records still queued or in flight after that.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed records listed one by one; the rest are only counted.
const LIST_AT_MOST: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "events".into());

    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("client.id", "graceful-shutdown-example"),
        // Shorter than the defaults (60 s and 2 min), so an unreachable cluster shows
        // within this demo's timeouts.
        ("max.block.ms", "5000"),
        ("delivery.timeout.ms", "60000"),
    ])?)?;

    // The delivery reports are awaited by their own task, so the loop never waits for
    // one; it only waits when `buffer.memory` is full (back-pressure, up to max.block.ms).
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let reporter = tokio::spawn(collect_reports(reports_rx));

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut read = 0u64;
    let mut refused = 0u64;
    let why_stopped = loop {
        let line = tokio::select! {
            // The signal first: once it came, not one more line is read.
            biased;
            signal = &mut shutdown => break signal.to_string(),
            line = lines.next_line() => line?,
        };
        let Some(line) = line else {
            break "end of input".to_string();
        };
        read += 1;
        match producer
            .produce(ProducerRecord::new(&topic).value(line))
            .await
        {
            Ok(report) => {
                let _ = reports_tx.send((read, report));
            }
            Err(e) => {
                // Never queued: the record is still only ours.
                refused += 1;
                eprintln!("line {read} not queued: {e}");
                if matches!(
                    e,
                    ProducerError::Closed
                        | ProducerError::Fatal { .. }
                        | ProducerError::AuthenticationFailed { .. }
                        | ProducerError::Tls { .. }
                ) {
                    break format!("the producer stopped: {e}");
                }
            }
        }
    };
    eprintln!("{why_stopped}: stopped reading input after {read} lines; flushing");

    // Deliver what is queued. `flush` waits as long as delivery takes (up to
    // delivery.timeout.ms), so it gets a deadline of its own.
    match tokio::time::timeout(FLUSH_TIMEOUT, producer.flush()).await {
        Ok(Ok(())) => eprintln!("flushed: every record has its delivery report"),
        Ok(Err(e)) => eprintln!("flush: the producer stopped: {e}"),
        Err(_) => eprintln!(
            "flush still waiting after {} s; closing",
            FLUSH_TIMEOUT.as_secs()
        ),
    }
    // Gives what is left CLOSE_TIMEOUT more, then fails it: ProducerError::Closed for
    // records never sent, ClosedInFlight for records whose request had no answer yet.
    if let Err(e) = producer.close(CLOSE_TIMEOUT).await {
        eprintln!("close: the producer had stopped: {e}");
    }

    // `close` has given every record its report: the reporter ends once it has them all.
    drop(reports_tx);
    let tally = reporter.await?;
    println!(
        "read {read} lines: {} delivered, {} failed (not persisted: {}, possibly persisted: {}), {refused} not queued",
        tally.delivered,
        tally.not_persisted + tally.possibly_persisted,
        tally.not_persisted,
        tally.possibly_persisted,
    );
    if tally.not_persisted > 0 {
        println!("  not persisted: not in the topic; sending them again cannot duplicate them");
    }
    if tally.possibly_persisted > 0 {
        println!(
            "  possibly persisted: may be in the topic; sending them again may duplicate them"
        );
    }
    let m = producer.metrics();
    println!(
        "metrics: sent {}, delivered {}, failed {} {:?}",
        m.sent, m.delivered, m.failed, m.failed_by_error
    );
    if tally.delivered != read {
        std::process::exit(1);
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    not_persisted: u64,
    possibly_persisted: u64,
}

/// Awaits every record's report, in the order they were queued, and lists the failures.
async fn collect_reports(mut reports: mpsc::UnboundedReceiver<(u64, DeliveryFuture)>) -> Tally {
    let mut tally = Tally::default();
    let mut listed = 0;
    while let Some((line, report)) = reports.recv().await {
        let e = match report.await {
            Ok(_) => {
                tally.delivered += 1;
                continue;
            }
            Err(e) => e,
        };
        let what = match e.persistence() {
            Persistence::NotPersisted => {
                tally.not_persisted += 1;
                "not persisted"
            }
            Persistence::PossiblyPersisted => {
                tally.possibly_persisted += 1;
                "possibly persisted"
            }
            // Only an acknowledged record is persisted; a failure never says so.
            Persistence::Persisted => "persisted",
        };
        listed += 1;
        if listed <= LIST_AT_MOST {
            println!("line {line} did not make it ({what}, {}): {e}", e.name());
        } else if listed == LIST_AT_MOST + 1 {
            println!("(more failures are counted, not listed)");
        }
    }
    tally
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM, and says which.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
