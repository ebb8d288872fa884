//! A dead letter queue (`dlq.topic`): records that fail for good are written to a topic of
//! their own, and their delivery report says where they landed
//! (`ProducerError::DeadLettered`).
//!
//! It sends four records to a topic whose `max.message.bytes` is 2000:
//!
//! 1. a small one, which is written;
//! 2. one of 10 kB, which the broker rejects as too large for the topic (MESSAGE_TOO_LARGE);
//! 3. one for a partition the topic does not have;
//! 4. one larger than the producer's `max.request.size`, which courier refuses itself. Its
//!    dead letter (which carries the whole value) is too large to send as well, so its
//!    report is `ProducerError::DeadLetterFailed`: the application has to keep it.
//!
//! Against a local cluster (its brokers do not create topics on first use):
//!
//! ```sh
//! cargo run -p courier-testkit --bin courier-kafka   # prints "bootstrap: 127.0.0.1:<port>"
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic payments \
//!     --partitions 3 --config max.message.bytes=2000
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic payments.dlq
//! cargo run -p courier --example dead_letter_queue -- 127.0.0.1:<port> payments
//! # the dead letters, with their headers:
//! kafka-console-consumer.sh --bootstrap-server 127.0.0.1:<port> --topic payments.dlq \
//!     --from-beginning --formatter-property print.headers=true --timeout-ms 5000
//! ```

use std::time::Duration;

use courier::dlq::headers;
use courier::{DeliveryResult, Producer, ProducerConfig, ProducerError, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "payments".into());
    let dlq = args.next().unwrap_or_else(|| format!("{topic}.dlq"));

    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("client.id", "dead-letter-queue-example"),
        ("dlq.topic", dlq.as_str()),
        // Say within 10 s, not 60, when a topic (or the dead letter queue) is missing.
        ("max.block.ms", "10000"),
    ])?)?;

    let max_request_size = producer.config().max_request_size();
    let cases = [
        (
            "small record",
            ProducerRecord::new(&topic)
                .key("payment-1")
                .value("{\"amount\":10}"),
        ),
        (
            "10 kB record, above the topic's max.message.bytes",
            ProducerRecord::new(&topic)
                .key("payment-2")
                .value(vec![b'x'; 10_000])
                .header("trace-id", "t-2"),
        ),
        (
            "record for partition 42",
            ProducerRecord::new(&topic)
                .key("payment-3")
                .value("{\"amount\":30}")
                .partition(42),
        ),
        (
            "record above max.request.size",
            ProducerRecord::new(&topic)
                .key("payment-4")
                .value(vec![b'y'; max_request_size + 1]),
        ),
    ];
    // One at a time: `send` waits for each report, so each record travels in a batch of
    // its own (a batch the broker rejects fails every record in it).
    for (what, record) in cases {
        println!("{what}:");
        report(producer.send(record).await);
    }

    let m = producer.metrics();
    println!(
        "metrics: sent {}, delivered {}, failed {}, dead-lettered {}, dead letters that failed {}",
        m.sent, m.delivered, m.failed, m.dead_lettered, m.dead_letter_failures
    );
    println!(
        "a dead letter keeps the record's key and headers, adds {}, {}, {}, {}, {} and {}, \
         and its value is a JSON document with the original key, value, headers and error",
        headers::TOPIC,
        headers::PARTITION,
        headers::ERROR_NAME,
        headers::ERROR_CODE,
        headers::ERROR_MESSAGE,
        headers::PERSISTENCE,
    );
    producer.close(Duration::from_secs(30)).await?;
    Ok(())
}

fn report(result: DeliveryResult) {
    match result {
        Ok(md) => println!("  written: {} [{}] @ {}", md.topic, md.partition, md.offset),
        // Failed for good, and now in the dead letter queue: nothing more to do here.
        Err(ProducerError::DeadLettered {
            source,
            dlq_topic,
            dlq_partition,
            dlq_offset,
            ..
        }) => {
            println!("  failed for good ({}): {source}", source.name());
            println!("  dead letter: {dlq_topic} [{dlq_partition}] @ {dlq_offset}");
        }
        // Failed for good, and the dead letter queue did not take it either: the record
        // is only in the application's hands now.
        Err(ProducerError::DeadLetterFailed {
            source, dlq_error, ..
        }) => {
            println!("  failed for good ({}): {source}", source.name());
            println!("  NOT dead-lettered ({}): {dlq_error}", dlq_error.name());
        }
        // Not a failure for good (a timeout, closing, ...): never dead-lettered, the
        // application decides, knowing whether the record may be in the topic.
        Err(e) => println!(
            "  failed, not dead-lettered (retriable: {}): {e}",
            e.is_retriable()
        ),
    }
}
