//! How a record's outcome reaches the application: the per-record token the engine carries,
//! the future or callback it completes, and the translation of the engine's failures into
//! [`ProducerError`]s.

use courier_core::producer::{EngineConfig, FailureReason};
use tokio::sync::oneshot;

use crate::dlq::Original;
use crate::error::{ErrorCode, Persistence, ProducerError};

use super::DeliveryResult;

pub(super) type Callback = Box<dyn FnOnce(DeliveryResult) + Send + 'static>;

pub(super) enum Completion {
    Future(oneshot::Sender<DeliveryResult>),
    Callback(Callback),
}

/// The engine's per-record token: how to report, and what to give back to
/// `buffer.memory`.
pub(super) struct Token {
    pub(super) completion: Completion,
    pub(super) bytes: u32,
    /// The record's key, value and headers, kept only when a dead letter queue may
    /// need them (the bytes are shared, not copied).
    pub(super) original: Option<Box<Original>>,
}

pub(super) fn deliver(c: Completion, r: DeliveryResult) {
    match c {
        Completion::Future(tx) => {
            let _ = tx.send(r);
        }
        Completion::Callback(cb) => cb(r),
    }
}

pub(super) fn to_producer_error(
    topic: &str,
    partition: i32,
    f: &courier_core::producer::Failure,
    cfg: &EngineConfig,
    last_metadata_error: Option<&str>,
) -> ProducerError {
    match &f.reason {
        FailureReason::Broker { code, message } => {
            match ProducerError::from_partition_error(
                topic,
                partition,
                ErrorCode::from_i16(*code),
                message.as_deref(),
            ) {
                ProducerError::Broker {
                    topic,
                    partition,
                    code,
                    message,
                    ..
                } => ProducerError::Broker {
                    topic,
                    partition,
                    code,
                    message,
                    persistence: f.persistence,
                },
                other => other,
            }
        }
        FailureReason::DeliveryTimeout { last_error } => ProducerError::DeliveryTimeout {
            topic: topic.to_string(),
            partition,
            timeout: cfg.delivery_timeout,
            last_error: last_error.map(ErrorCode::from_i16),
            persistence: f.persistence,
        },
        FailureReason::UnknownTopic => ProducerError::UnknownTopic {
            topic: topic.to_string(),
        },
        FailureReason::MetadataTimeout => ProducerError::MetadataTimeout {
            topic: topic.to_string(),
            max_block: cfg.max_block,
            last_cause: last_metadata_error.map(str::to_string),
        },
        FailureReason::PartitionOutOfRange {
            partition,
            partitions,
        } => ProducerError::UnknownPartition {
            topic: topic.to_string(),
            partition: *partition,
            partition_count: *partitions,
        },
        FailureReason::RecordTooLarge { size, max } => ProducerError::RecordTooLarge {
            size: *size,
            max_request_size: *max,
        },
        FailureReason::ProducerId { code } => ProducerError::Fatal {
            code: Some(ErrorCode::from_i16(*code)),
            reason: "the broker refused a producer id (InitProducerId)".into(),
        },
        FailureReason::Closed if f.persistence == Persistence::NotPersisted => {
            ProducerError::Closed
        }
        FailureReason::Closed => ProducerError::ClosedInFlight {
            persistence: f.persistence,
        },
        FailureReason::EpochBumpedWhileUnresolved => ProducerError::UnresolvedAfterEpochBump {
            topic: topic.to_string(),
            partition,
        },
    }
}
