//! The reliable producer from the seed lesson, in Rust: `acks=all`, idempotence,
//! 5 requests in flight, LZ4, `linger.ms=10`, `batch.size=32768`, and a delivery
//! callback that prints `topic [partition] @ offset` or the error.
//!
//! ```sh
//! cargo run -p courier --example reliable_producer -- 127.0.0.1:9092 orders
//! ```
//!
//! Against a local cluster (its brokers do not create topics on first use):
//!
//! ```sh
//! cargo run -p courier-testkit --bin courier-kafka   # prints "bootstrap: 127.0.0.1:<port>"
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic orders --partitions 6
//! cargo run -p courier --example reliable_producer -- 127.0.0.1:<port> orders
//! ```

use std::time::Duration;

use courier::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("client.id", "reliable-producer-example"),
        // Durability
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("max.in.flight.requests.per.connection", "5"),
        ("retries", "2147483647"),
        // Performance
        ("compression.type", "lz4"),
        ("linger.ms", "10"),
        ("batch.size", "32768"),
    ])?;
    let producer = Producer::new(config)?;

    for i in 0..10 {
        let record = ProducerRecord::new(&topic)
            .key(format!("order-{i}"))
            .value(format!("{{\"order_id\":{i},\"amount\":{}.99}}", i * 10));
        producer
            .produce_with_callback(record, |report| match report {
                Ok(md) => println!(
                    "Message produced to: {} [{}] @ {}",
                    md.topic, md.partition, md.offset
                ),
                Err(e) => println!(
                    "Failed to deliver message: {e} (retriable: {}, {})",
                    e.is_retriable(),
                    e.persistence()
                ),
            })
            .await?;
    }
    producer.flush().await?;
    producer.close(Duration::from_secs(30)).await?;
    Ok(())
}
