//! The seed's atomic write: a `task-created` record and its `audit-log` entry in one
//! transaction, so that a `read_committed` consumer sees both or neither, with the error
//! handling docs/TRANSACTIONS.md recommends:
//!
//! - retriable (`max.block.ms` passed): call the same operation again, it resumes;
//! - abortable (a record failed, the coordinator asked for an abort): abort, then send
//!   the whole transaction again in a new one (a few times at most);
//! - fatal (fenced by a newer instance with the same `transactional.id`, not
//!   authorized): stop this producer, never retry;
//! - a commit whose outcome is unknown (its EndTxn got no reply, then an error): it may
//!   have committed, so the records are not sent again; read them back to know.
//!
//! ```sh
//! cargo run -p courier --example atomic_write -- 127.0.0.1:9092 task-42
//! ```
//!
//! The bootstrap comes from the first argument, else `KAFKA_BOOTSTRAP`, else
//! 127.0.0.1:9092. Against a local cluster (its brokers do not create topics on first
//! use):
//!
//! ```sh
//! cargo run -p courier-testkit --bin courier-kafka   # prints "bootstrap: 127.0.0.1:<port>"
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic task-created
//! kafka-topics.sh --bootstrap-server 127.0.0.1:<port> --create --topic audit-log
//! cargo run -p courier --example atomic_write -- 127.0.0.1:<port> task-42
//! kafka-console-consumer.sh --bootstrap-server 127.0.0.1:<port> --topic audit-log \
//!     --from-beginning --isolation-level read_committed --property print.key=true
//! ```

use std::time::Duration;

use courier::{Producer, ProducerConfig, ProducerRecord, TransactionError};

/// Times the transaction is sent at most after abortable errors.
const ATTEMPTS: u32 = 3;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bootstrap = args
        .next()
        .or_else(|| std::env::var("KAFKA_BOOTSTRAP").ok())
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let task_id = args.next().unwrap_or_else(|| "task-42".into());
    if let Err(e) = run(&bootstrap, &task_id).await {
        eprintln!("atomic_write: {e}");
        std::process::exit(1);
    }
}

async fn run(bootstrap: &str, task_id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::new(
        ProducerConfig::builder()
            .bootstrap_servers(bootstrap)
            // One id per running instance of the service: a second instance with the same
            // id fences this one (that is the point: a restarted instance takes over).
            .transactional_id("task-service-1") // implies idempotence and acks=all
            .build()?,
    )?;
    // Once per producer. It fences older instances with the same id and finishes what
    // they left open; a timeout here is retriable.
    retrying(|| producer.init_transactions()).await?;

    let result = write_task(&producer, task_id).await;
    // Closing aborts a transaction still open (it is not, on every path above).
    producer.close(Duration::from_secs(10)).await?;
    result
}

/// Sends the task and its audit entry in one transaction, again after an abortable
/// error, until it commits.
async fn write_task(producer: &Producer, task_id: &str) -> Result<(), Box<dyn std::error::Error>> {
    for attempt in 1..=ATTEMPTS {
        retrying(|| producer.begin_transaction()).await?;
        let task = producer
            .produce(
                ProducerRecord::new("task-created")
                    .key(task_id.to_string())
                    .value(format!(
                        "{{\"task_id\":\"{task_id}\",\"status\":\"created\"}}"
                    )),
            )
            .await;
        let audit = producer
            .produce(
                ProducerRecord::new("audit-log")
                    .key(task_id.to_string())
                    .value(format!(
                        "{{\"event\":\"task-created\",\"task_id\":\"{task_id}\"}}"
                    )),
            )
            .await;
        let (task, audit) = match (task, audit) {
            (Ok(t), Ok(a)) => (t, a),
            // Refused before it was queued (too large, producer closed): this transaction
            // must not commit without it.
            (Err(e), _) | (_, Err(e)) => {
                retrying(|| producer.abort_transaction()).await?;
                return Err(format!("a record was refused, the transaction aborted: {e}").into());
            }
        };
        match retrying(|| producer.commit_transaction()).await {
            Ok(()) => {
                // Commit returned once both were acknowledged.
                let (t, a) = (task.await?, audit.await?);
                println!(
                    "committed: {} [{}] @ {} and {} [{}] @ {}",
                    t.topic, t.partition, t.offset, a.topic, a.partition, a.offset
                );
                return Ok(());
            }
            Err(e) if e.commit_outcome_unknown() => {
                // Sending again could write the task twice.
                return Err(format!(
                    "the commit's outcome is unknown ({e}); read task-created at \
                     read_committed to see whether {task_id} is there before sending it again"
                )
                .into());
            }
            Err(e) if e.is_abortable() => {
                eprintln!("attempt {attempt} of {ATTEMPTS} failed, aborting: {e}");
                retrying(|| producer.abort_transaction()).await?;
            }
            // Fatal: fenced by a newer instance, not authorized, or the producer stopped.
            Err(e) => return Err(format!("stopping this producer: {e}").into()),
        }
    }
    Err(format!("the transaction failed {ATTEMPTS} times; nothing of it is visible").into())
}

/// Calls `op` again while it times out (retriable: the operation goes on inside the
/// producer, and the next call waits for the same outcome), a few times at most.
async fn retrying<F, Fut>(op: F) -> Result<(), TransactionError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), TransactionError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match op().await {
            Err(e) if e.is_retriable() && tries < 5 => eprintln!("{e}; calling again"),
            r => return r,
        }
    }
}
