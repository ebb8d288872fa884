//! Where Produce requests and the control-plane calls go: one sink per broker, and the
//! Metadata and InitProducerId calls over the pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use courier_core::producer::{ProduceRequest, ProduceResult, TopicMetadata};
use tokio::sync::mpsc;

use crate::error::ErrorCode;
use crate::net::{self, ConnectionPool, NetError, ProduceRequestParts};

use super::driver::Event;
use super::txn::ProduceTxn;

/// Where the driver hands one broker's Produce requests, in the order the engine issued
/// them.
///
/// The fast path queues a request on the broker's connection from the driver itself, and
/// the connection's reader passes the outcome straight back (`produce_with`): per request
/// that is one wake-up of the connection's writer and one of the driver. A request takes
/// the slow path - a task that may connect or wait for a window slot - when there is no
/// open connection, the window is full, or requests before it are still on the slow path
/// (order is kept: they are queued on the connection first).
pub(super) struct BrokerSink {
    broker: i32,
    /// Requests handed to the slow path and not yet queued on a connection.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
    slow: mpsc::UnboundedSender<(ProduceRequest, Option<ProduceTxn>)>,
}

impl BrokerSink {
    pub(super) fn spawn(
        broker: i32,
        pool: Arc<ConnectionPool>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (slow, rx) = mpsc::unbounded_channel();
        tokio::spawn(slow_sink(broker, pool, rx, events, backlog.clone()));
        BrokerSink {
            broker,
            backlog,
            slow,
        }
    }

    pub(super) fn send(
        &self,
        req: ProduceRequest,
        txn: Option<ProduceTxn>,
        pool: &ConnectionPool,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        // Acquire pairs with the slow path's Release: at zero, everything it was handed
        // is already queued on a connection, so this request goes behind it.
        if self.backlog.load(Ordering::Acquire) == 0 {
            if let Some(conn) = pool.ready(self.broker) {
                if let Some(permit) = conn.try_reserve() {
                    produce_on(&conn, permit, req, txn.as_ref(), events);
                    return;
                }
            }
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError((req, _))) = self.slow.send((req, txn)) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            not_sent(events, req.id, self.broker, None);
        }
    }
}

/// The slow path of a [`BrokerSink`]: connects when needed and waits for window slots,
/// taking requests in order.
pub(super) async fn slow_sink(
    broker: i32,
    pool: Arc<ConnectionPool>,
    mut requests: mpsc::UnboundedReceiver<(ProduceRequest, Option<ProduceTxn>)>,
    events: mpsc::UnboundedSender<Event>,
    backlog: Arc<std::sync::atomic::AtomicUsize>,
) {
    while let Some((req, txn)) = requests.recv().await {
        let id = req.id;
        match pool.get(broker).await {
            Err(e) => {
                tracing::debug!(broker, error = %e, "no connection for a Produce request");
                not_sent(&events, id, broker, Some(e));
            }
            Ok(conn) => match conn.reserve().await {
                Ok(permit) => produce_on(&conn, permit, req, txn.as_ref(), &events),
                Err(e) => not_sent(&events, id, broker, Some(e)),
            },
        }
        backlog.fetch_sub(1, Ordering::Release);
    }
}

/// Reports Produce request `id` as never written (no connection, or none accepting it),
/// with why, when known, for the records' error if they end up failing.
pub(super) fn not_sent(
    events: &mpsc::UnboundedSender<Event>,
    id: u64,
    broker: i32,
    cause: Option<NetError>,
) {
    let _ = events.send(Event::Produced {
        id,
        broker,
        result: ProduceResult::Transport {
            maybe_written: false,
        },
        cause,
        latency: None,
    });
}

/// Queues `req` on `conn`; its outcome comes back to the driver as [`Event::Produced`].
pub(super) fn produce_on(
    conn: &net::BrokerConnection,
    permit: net::InFlightPermit,
    req: ProduceRequest,
    txn: Option<&ProduceTxn>,
    events: &mpsc::UnboundedSender<Event>,
) {
    let ProduceRequest {
        id,
        broker,
        acks,
        timeout_ms,
        batches,
    } = req;
    // One span per request; with no subscriber at debug level it is disabled, and its
    // fields and the per-batch events below cost a branch (issue 18).
    let span = tracing::debug_span!(
        "produce",
        broker,
        request = id,
        batches = batches.len(),
        bytes = tracing::field::Empty
    );
    if !span.is_disabled() {
        let bytes: usize = batches.iter().map(|(_, _, b)| b.len()).sum();
        span.record("bytes", bytes);
        span.in_scope(|| {
            for (topic, partition, batch) in &batches {
                let (base_sequence, records) = batch_header(batch);
                tracing::trace!(
                    %topic,
                    partition,
                    base_sequence,
                    records,
                    bytes = batch.len(),
                    "batch"
                );
            }
        });
    }
    let mut topics: Vec<net::TopicRecords> = Vec::new();
    for (topic, partition, batch) in batches {
        match topics.iter_mut().find(|(t, _)| **t == *topic) {
            Some((_, parts)) => parts.push((partition, Some(batch))),
            None => topics.push((topic.to_string(), vec![(partition, Some(batch))])),
        }
    }
    // A transactional producer's requests name its transactional.id (KIP-98) and stay
    // within its transaction protocol's Produce versions (KIP-890: v12 and up add the
    // partition to the transaction, so version 1 must stay at v11 or below).
    let versions = txn.map_or(0..=i16::MAX, |t| t.versions.clone());
    let parts = ProduceRequestParts {
        transactional_id: txn.map(|t| t.transactional_id.to_string()),
        acks,
        timeout_ms,
        topics,
    };
    let events = events.clone();
    let written = std::time::Instant::now();
    conn.produce_within(permit, parts, versions, move |outcome| {
        let latency = written.elapsed();
        let mut cause = None;
        let result = match outcome {
            Ok(None) => ProduceResult::WrittenNoAck,
            Ok(Some(resp)) => ProduceResult::Response(
                resp.responses
                    .iter()
                    .flat_map(|t| {
                        let name = t.name.clone();
                        t.partition_responses.iter().map(move |p| {
                            courier_core::producer::PartitionResponse {
                                topic: name.clone(),
                                partition: p.index,
                                error_code: p.error_code,
                                base_offset: p.base_offset,
                                log_append_time: p.log_append_time_ms,
                                error_message: p.error_message.as_ref().map(|m| m.to_string()),
                            }
                        })
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(broker, error = %e, "Produce request failed");
                let maybe_written = e.maybe_written();
                cause = Some(e);
                ProduceResult::Transport { maybe_written }
            }
        };
        span.in_scope(|| {
            tracing::debug!(
                latency_ms = latency.as_secs_f64() * 1000.0,
                ok = cause.is_none(),
                "answered"
            )
        });
        let _ = events.send(Event::Produced {
            id,
            broker,
            result,
            cause,
            latency: Some(latency),
        });
    });
}

/// A sealed batch's base sequence and record count, from its header (RecordBatch v2:
/// offsets 53 and 57), for the trace; -1 where the header is short.
fn batch_header(batch: &[u8]) -> (i32, i32) {
    let field = |at: usize| {
        batch
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(-1, i32::from_be_bytes)
    };
    (field(53), field(57))
}

pub(super) async fn any_connection(
    pool: &ConnectionPool,
) -> Result<Arc<net::BrokerConnection>, NetError> {
    match pool.least_loaded() {
        Some(c) => Ok(c),
        None => pool.get_bootstrap().await,
    }
}

pub(super) async fn fetch_metadata(
    pool: &ConnectionPool,
    topics: &[String],
) -> Result<Vec<TopicMetadata>, NetError> {
    let conn = any_connection(pool).await?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let md = net::fetch_metadata(&conn, &names).await?;
    pool.update_brokers(&md);
    Ok(md
        .topics
        .iter()
        .map(|t| TopicMetadata {
            name: t.name.clone(),
            error_code: t.error_code,
            partitions: t
                .partitions
                .iter()
                .map(|p| courier_core::producer::PartitionMetadata {
                    partition: p.partition,
                    leader: p.leader_id,
                    error_code: p.error_code,
                })
                .collect(),
        })
        .collect())
}

/// Asks any broker for a producer id. A failure is the broker's error code, or
/// NETWORK_EXCEPTION with the connection problem behind it.
pub(super) async fn init_producer_id(
    pool: &ConnectionPool,
    timeout: Duration,
) -> Result<(i64, i16), (i16, Option<NetError>)> {
    let network = |e: NetError| (ErrorCode::NETWORK_EXCEPTION.code(), Some(e));
    let conn = any_connection(pool).await.map_err(network)?;
    match net::init_producer_id(&conn, None, timeout).await {
        Ok(g) if g.error_code == 0 => Ok((g.producer_id, g.producer_epoch)),
        Ok(g) => Err((g.error_code, None)),
        Err(e) => Err(network(e)),
    }
}
