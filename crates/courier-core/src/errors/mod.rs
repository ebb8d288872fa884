//! Kafka error codes and what the producer does with each: one table, used by the engine
//! to decide and by the async producer to explain.
//!
//! * [`ErrorCode`] names every Kafka error code a producer can receive
//!   ([`known_error_codes`] lists them with Java's retriability).
//! * [`classify_produce_error`] is the producer's policy for each code of a Produce
//!   response, and [`classify_transport_error`] for an attempt that got no response.

mod codes;
mod policy;

pub use codes::{known_error_codes, ErrorCode, ErrorCodeInfo};
pub use policy::{
    classify_produce_error, classify_transport_error, ProduceAction, ProduceErrorClass,
};
