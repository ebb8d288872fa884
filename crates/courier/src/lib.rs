//! courier: a pure-Rust Kafka producer (no librdkafka).
//!
//! **Status: early.** This crate does not send anything yet. What exists:
//!
//! * [`config`]: [`ProducerConfig`], typed and validated, readable from Java/librdkafka
//!   property keys, durable by default (`acks=all`, idempotence on);
//! * [`error`]: [`ProducerError`] with Kafka error codes, [`Persistence`] for failed records,
//!   and [`classify_produce_error`](error::classify_produce_error), the policy for each error
//!   of a Produce response.
//!
//! The sans-I/O building blocks (record batches, the Java-compatible partitioner) live in
//! `courier-core`. The async producer that connects to brokers is not written yet.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
#[cfg(feature = "msk-iam")]
pub mod msk_iam;
pub mod net;
pub mod producer;
mod queue;

pub use audit::DurabilityReport;
pub use config::{ConfigError, ProducerConfig};
pub use error::{ErrorCode, Persistence, ProducerError};
pub use metrics::DeliveryMetrics;
pub use producer::{
    DeliveryFuture, DeliveryResult, IntoTopic, Producer, ProducerRecord, RecordMetadata,
};
