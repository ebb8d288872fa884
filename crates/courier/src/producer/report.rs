//! How a record's outcome reaches the application: the per-record token the engine carries,
//! the future or callback it completes, and the translation of the engine's failures into
//! [`ProducerError`]s.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use courier_core::producer::{EngineConfig, FailureReason};
use tokio::sync::{oneshot, watch};

use crate::dlq::Original;
use crate::error::{ErrorCode, Persistence, ProducerError};

use super::DeliveryResult;

pub(super) type Callback = Box<dyn FnOnce(DeliveryResult) + Send + 'static>;

/// The function behind a [`DeliveryHandler`](super::DeliveryHandler).
pub(super) type Handler = Arc<dyn Fn(u64, DeliveryResult) + Send + Sync + 'static>;

enum Reply {
    Future(oneshot::Sender<DeliveryResult>),
    Callback(Callback),
    /// A shared handler and the record's tag: no allocation per record, and nothing
    /// per record that went cold in memory while the record was in flight.
    Tagged(Handler, u64),
}

impl Reply {
    fn send(self, r: DeliveryResult) {
        match self {
            Reply::Future(tx) => {
                let _ = tx.send(r);
            }
            // A panicking callback is the application's bug; it must not take the
            // driver, and every other record's report, down with it (the Java client
            // catches and logs exceptions thrown by callbacks too).
            Reply::Callback(cb) => contain(std::panic::catch_unwind(AssertUnwindSafe(|| cb(r)))),
            Reply::Tagged(handler, tag) => {
                contain(std::panic::catch_unwind(AssertUnwindSafe(|| {
                    handler(tag, r)
                })))
            }
        }
    }
}

/// Logs a panic of the application's report code, and carries on.
fn contain(outcome: std::thread::Result<()>) {
    if let Err(panic) = outcome {
        tracing::error!(
            panic = panic_message(&*panic),
            "a delivery callback panicked; the producer carries on"
        );
    }
}

/// Where one record's delivery report goes: the future returned by `produce`, or the
/// callback of `produce_with_callback`.
///
/// Dropped without a report (the driver stopped on a bug, or a path forgot the record),
/// it reports the failure itself, so a record is never left without an answer and never
/// counted as delivered when it was not.
pub(super) struct Completion(Option<Reply>);

impl Completion {
    pub(super) fn future(tx: oneshot::Sender<DeliveryResult>) -> Self {
        Completion(Some(Reply::Future(tx)))
    }

    pub(super) fn callback(cb: Callback) -> Self {
        Completion(Some(Reply::Callback(cb)))
    }

    pub(super) fn tagged(handler: Handler, tag: u64) -> Self {
        Completion(Some(Reply::Tagged(handler, tag)))
    }

    /// Drops the completion without a report: for a record the caller is told about at
    /// once (`produce` returned an error), so its callback must never run.
    pub(super) fn disarm(mut self) {
        self.0.take();
    }

    /// Reports `r`.
    pub(super) fn deliver(mut self, r: DeliveryResult) {
        if let Some(reply) = self.0.take() {
            reply.send(r);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let Some(reply) = self.0.take() else { return };
        if std::thread::panicking() {
            // Unwinding through the driver: running a callback now could panic again
            // and abort the process. The driver's guard reports these once it has caught
            // the panic.
            ORPHANS.with(|o| o.borrow_mut().push(reply));
            return;
        }
        reply.send(Err(lost_report()));
    }
}

/// The engine's per-record token: how to report, and what to give back to
/// `buffer.memory`.
pub(super) struct Token {
    pub(super) completion: Completion,
    pub(super) bytes: u32,
    /// When the record was queued: the wall clock's milliseconds, truncated to 32 bits
    /// (latencies are differences with wrapping arithmetic, right below 49 days).
    pub(super) sent_ms: u32,
    /// The record's key, value and headers, kept only when a dead letter queue may
    /// need them (the bytes are shared, not copied).
    pub(super) original: Option<Box<Original>>,
}

thread_local! {
    /// Why the driver stopped, while its guard drops the driver's state on this thread.
    static DRIVER_FAILURE: RefCell<Option<ProducerError>> = const { RefCell::new(None) };
    /// Reports dropped while this thread was unwinding.
    static ORPHANS: RefCell<Vec<Reply>> = const { RefCell::new(Vec::new()) };
}

/// The error for a record dropped without a report.
fn lost_report() -> ProducerError {
    DRIVER_FAILURE
        .with(|f| f.borrow().clone())
        .unwrap_or_else(|| ProducerError::Fatal {
            code: None,
            reason: "a record was dropped without a delivery report (an internal error in \
                     courier, please report it)"
                .into(),
        })
}

/// The text of a panic's payload.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs the driver, and if it panics, stops the producer cleanly: the error is recorded
/// (later sends, `flush` and `close` return it) and every record the driver held, queued
/// or in flight, fails with it - a bug inside the producer is never reported as success,
/// and nothing waits forever.
///
/// `finished` turns true once the driver is gone and every record it held has its
/// report: `flush` and `close` wait for it before they say how the producer ended.
pub(super) struct GuardedDriver<F> {
    inner: Option<Pin<Box<F>>>,
    fatal: Arc<OnceLock<ProducerError>>,
    finished: watch::Sender<bool>,
}

impl<F: Future<Output = ()>> GuardedDriver<F> {
    pub(super) fn new(
        driver: F,
        fatal: Arc<OnceLock<ProducerError>>,
        finished: watch::Sender<bool>,
    ) -> Self {
        GuardedDriver {
            inner: Some(Box::pin(driver)),
            fatal,
            finished,
        }
    }
}

impl<F> Drop for GuardedDriver<F> {
    fn drop(&mut self) {
        // Dropped with the driver still running: the tokio runtime is shutting down before
        // the producer was closed. Its records fail with that, not as a courier bug, and
        // whoever waits must not wait forever.
        if let Some(inner) = self.inner.take() {
            let err = ProducerError::Fatal {
                code: None,
                reason: "the tokio runtime running the producer shut down before the record \
                         was delivered: close the producer (Producer::close) before the \
                         runtime ends"
                    .into(),
            };
            let _ = self.fatal.set(err.clone());
            DRIVER_FAILURE.with(|f| *f.borrow_mut() = Some(err));
            drop(inner);
            DRIVER_FAILURE.with(|f| *f.borrow_mut() = None);
        }
        self.finished.send_replace(true);
    }
}

impl<F: Future<Output = ()>> Future for GuardedDriver<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(());
        };
        let panic = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(())) => {
                self.inner = None;
                self.finished.send_replace(true);
                return Poll::Ready(());
            }
            Err(panic) => panic,
        };
        let message = panic_message(&*panic);
        let err = ProducerError::Fatal {
            code: None,
            reason: format!(
                "the producer's driver stopped on an internal error (a bug in courier, please \
                 report it): {message}"
            ),
        };
        tracing::error!(error = %err, "producer driver panicked; failing every pending record");
        let _ = self.fatal.set(err.clone());
        DRIVER_FAILURE.with(|f| *f.borrow_mut() = Some(err.clone()));
        // Dropping the driver drops every record it held; each reports `err`.
        drop(self.inner.take());
        let orphans = ORPHANS.with(|o| std::mem::take(&mut *o.borrow_mut()));
        for reply in orphans {
            reply.send(Err(err.clone()));
        }
        DRIVER_FAILURE.with(|f| *f.borrow_mut() = None);
        self.finished.send_replace(true);
        Poll::Ready(())
    }
}

pub(super) fn to_producer_error(
    topic: &str,
    partition: i32,
    f: &courier_core::producer::Failure,
    cfg: &EngineConfig,
    last_cause: Option<&str>,
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
            last_cause: last_cause.map(str::to_string),
            persistence: f.persistence,
        },
        FailureReason::Unresolved { last_error } => ProducerError::Unresolved {
            topic: topic.to_string(),
            partition,
            timeout: cfg.delivery_timeout,
            resolution_timeout: cfg.resolution_timeout,
            last_error: last_error.map(ErrorCode::from_i16),
            last_cause: last_cause.map(str::to_string),
        },
        FailureReason::UnknownTopic => ProducerError::UnknownTopic {
            topic: topic.to_string(),
        },
        // A record waits for metadata up to max.block.ms, or delivery.timeout.ms if that is
        // shorter (its whole life is bounded by it): name the one that fired.
        FailureReason::MetadataTimeout => {
            let (setting, timeout) = if cfg.delivery_timeout < cfg.max_block {
                ("delivery.timeout.ms", cfg.delivery_timeout)
            } else {
                ("max.block.ms", cfg.max_block)
            };
            ProducerError::MetadataTimeout {
                topic: topic.to_string(),
                setting,
                timeout,
                last_cause: last_cause.map(str::to_string),
            }
        }
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
        FailureReason::ProducerId { code } => ProducerError::ProducerIdRefused {
            code: ErrorCode::from_i16(*code),
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
        // The driver reports these with the error that stopped the producer; this is the
        // text alone, for a caller that does not have it.
        FailureReason::Stopped { reason } => ProducerError::Fatal {
            code: None,
            reason: reason.clone(),
        },
        FailureReason::TransactionAborted => ProducerError::TransactionAborted {
            topic: topic.to_string(),
            partition,
            persistence: f.persistence,
        },
        FailureReason::NotInTransaction { state, error } => ProducerError::NotInTransaction {
            state: format!("{state:?}"),
            error: error.as_ref().map(ToString::to_string),
        },
    }
}
