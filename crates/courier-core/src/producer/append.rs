//! Records in: [`ProducerEngine::append`] checks a record, parks it while its topic's
//! metadata is missing, and `route` partitions it and appends it to its partition's open
//! batch, starting a new one when it does not fit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::batch::{Header, RecordBatchBuilder, RECORD_BATCH_OVERHEAD};
use crate::partitioner::{Placement, StickyPartitioner, TopicPartitions};

use super::queue::{Batch, BatchState, Parked, Payload, TopicState, BATCH_ID_STEP};
use super::txn::{TxnCallError, TxnState};
use super::types::{Action, Delivery, Failure, FailureReason, Persistence, Record};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    fn topic_slot(&mut self, topic: &Arc<str>) -> usize {
        // Most producers write one topic at a time: comparing with the last one (the
        // pointer first, when records share one `Arc`) saves hashing the name per
        // record.
        if let Some((last, i)) = &self.last_topic {
            if Arc::ptr_eq(last, topic) || **last == **topic {
                return *i;
            }
        }
        if let Some(&i) = self.topic_index.get(topic) {
            self.last_topic = Some((topic.clone(), i));
            return i;
        }
        let i = self.topics.len();
        // The engine's own copy of the name: deliveries clone it per record, and
        // sharing the caller's `Arc` would put those reference counts on the cache
        // line the application's threads update per record (two cores bouncing it).
        let name: Arc<str> = Arc::from(&**topic);
        self.last_topic = Some((topic.clone(), i));
        self.topics.push(TopicState {
            name: name.clone(),
            partitions: Vec::new(),
            unknown: false,
            missing_confirmed: false,
            parked: VecDeque::new(),
            sticky: StickyPartitioner::new(self.cfg.batch_size),
            available: Vec::new(),
            max_batch: None,
        });
        self.topic_index.insert(name, i);
        self.metadata_needed = true;
        i
    }

    /// Takes a record. Its outcome always comes back as exactly one [`Delivery`], at
    /// once if it cannot be accepted.
    pub fn append(&mut self, record: Record<T>, now: Instant) {
        if let Some(f) = &self.fatal {
            let f = f.clone();
            self.fail_record(record, f);
            return;
        }
        if let Some(t) = &self.txn {
            // Java's rule: a transactional producer sends only inside a transaction.
            let state = t.machine.state();
            if state != TxnState::InTransaction {
                let error = t.machine.last_error();
                self.fail_record(
                    record,
                    Failure {
                        reason: FailureReason::NotInTransaction { state, error },
                        persistence: Persistence::NotPersisted,
                    },
                );
                return;
            }
        }
        let size = crate::batch::encoded_record_size(
            0,
            0,
            record.key.as_deref(),
            record.value.as_deref(),
            &[],
        ) + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 10)
            .sum::<usize>();
        if size + RECORD_BATCH_OVERHEAD > self.cfg.max_request_size {
            let max = self.cfg.max_request_size;
            self.fail_record(
                record,
                Failure {
                    reason: FailureReason::RecordTooLarge {
                        size: size + RECORD_BATCH_OVERHEAD,
                        max,
                    },
                    persistence: Persistence::NotPersisted,
                },
            );
            return;
        }
        let ti = self.topic_slot(&record.topic);
        let t = &mut self.topics[ti];
        if t.partitions.is_empty() && t.missing_confirmed {
            // A record waited a whole `max.block.ms` for the topic and metadata still
            // says it does not exist: fail at once instead of parking each record for another
            // `max.block.ms`. Parked, 2,000,000 lines for a missing topic took 20
            // minutes to fail, a buffer.memory's worth per minute (issue 19's runs);
            // librdkafka likewise fails records for a topic it knows is missing once
            // `topic.metadata.propagation.max.ms` has passed. Metadata is still asked
            // for while the topic is unknown, so records flow again once it exists.
            let parked: Vec<Parked<T>> = t.parked.drain(..).collect();
            let failure = || Failure {
                reason: FailureReason::UnknownTopic,
                persistence: Persistence::NotPersisted,
            };
            for pk in parked {
                self.fail_record(pk.record, failure());
            }
            self.fail_record(record, failure());
            return;
        }
        if t.partitions.is_empty() || !t.parked.is_empty() {
            // Keep arrival order behind records already waiting for metadata.
            t.parked.push_back(Parked { record, since: now });
            return;
        }
        self.route(ti, record, now);
    }

    /// Partitions and appends a record of a topic whose metadata is known.
    pub(super) fn route(&mut self, ti: usize, record: Record<T>, now: Instant) {
        let n = self.topics[ti].partitions.len() as i32;
        let mut sticky_placed = false;
        let partition = match record.partition {
            Some(p) => {
                if !(0..n).contains(&p) {
                    self.fail_record(
                        record,
                        Failure {
                            reason: FailureReason::PartitionOutOfRange {
                                partition: p,
                                partitions: n,
                            },
                            persistence: Persistence::NotPersisted,
                        },
                    );
                    return;
                }
                p
            }
            // KIP-480 for `default`: keyed records go where Java's default partitioner
            // sends them; the other values as `partitioner` documents them.
            None => {
                let t = &mut self.topics[ti];
                let view = if t.available.is_empty() || t.available.len() == n as usize {
                    TopicPartitions::all(n)
                } else {
                    TopicPartitions::with_available(n, &t.available)
                };
                match self.cfg.partitioner.partition(
                    record.key.as_deref(),
                    view,
                    &mut t.sticky,
                    &mut self.rng,
                ) {
                    Some(Placement::Sticky(p)) => {
                        sticky_placed = true;
                        p
                    }
                    Some(placed) => placed.partition(),
                    // `n > 0`: the topic is routed only once metadata listed partitions.
                    None => 0,
                }
            }
        };
        if let Some(t) = self.txn.as_deref_mut() {
            // The transaction's first record for the partition registers it (Java's
            // `maybeAddPartition`): version 1 queues an AddPartitionsToTxn and holds the
            // partition's batches until the coordinator has it; version 2 lets Produce
            // v12 add it (KIP-890).
            let topic = &mut self.topics[ti];
            let p = &mut topic.partitions[partition as usize];
            if p.txn_added != t.generation {
                match t.machine.add_partition(&topic.name, partition) {
                    Ok(()) => p.txn_added = t.generation,
                    Err(e) => {
                        let error = match e {
                            TxnCallError::Failed(error) => Some(error),
                            _ => None,
                        };
                        let state = t.machine.state();
                        if state == TxnState::Committing {
                            // Accepted inside the transaction, it waited for metadata
                            // past the commit call (Java's `send` blocks for it instead):
                            // the commit cannot include it, so it must not succeed.
                            t.machine.on_batch_failed(None, false);
                        }
                        let reason = FailureReason::NotInTransaction { state, error };
                        self.fail_record(
                            record,
                            Failure {
                                reason,
                                persistence: Persistence::NotPersisted,
                            },
                        );
                        return;
                    }
                }
            }
        }
        let batch_size = self.topics[ti]
            .max_batch
            .map_or(self.cfg.batch_size, |m| self.cfg.batch_size.min(m));
        let new_batch_id = self.next_batch_id;
        let t = &mut self.topics[ti];
        let p = &mut t.partitions[partition as usize];
        let headers: Vec<Header<'_>> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let ts = record.timestamp_ms;
        let fits = match p.batches.back() {
            Some(Batch {
                payload: Payload::Open(b),
                closed: false,
                state: BatchState::Ready,
                ..
            }) => b.is_empty() || b.would_fit(ts, key, value, &headers, batch_size),
            _ => false,
        };
        let mut started = false;
        if !fits {
            if let Some(last) = p.batches.back_mut() {
                last.closed = true;
            }
            started = true;
            let mut builder = self
                .spare
                .pop()
                .unwrap_or_else(|| RecordBatchBuilder::with_capacity(batch_size));
            self.spare_low = self.spare_low.min(self.spare.len());
            // The attributes' transactional bit (KIP-98): the broker keeps the batch out
            // of read_committed reads until the transaction's marker.
            builder.set_transactional(self.txn.is_some());
            p.batches.push_back(Batch {
                id: new_batch_id,
                payload: Payload::Open(builder),
                // Sized like the last full batch: growing a vector of tokens record by
                // record copies it over and over.
                records: Vec::with_capacity(self.records_hint),
                created: now,
                state: BatchState::Ready,
                attempts: 0,
                maybe_written: false,
                resolving: false,
                closed: false,
                stamp: None,
                last_error: None,
                last_message: None,
            });
        }
        let batch = p.batches.back_mut().expect("just ensured");
        let Payload::Open(builder) = &mut batch.payload else {
            unreachable!("the last batch is open after the check above")
        };
        let before = builder.size_in_bytes();
        // Only an i32 overflow of the batch fails here; the max.request.size check in
        // `append` keeps single records far below that.
        let appended = builder.append(ts, key, value, &headers).is_ok();
        let added = builder.size_in_bytes() - before;
        if builder.size_in_bytes() >= batch_size {
            batch.closed = true;
        }
        drop(headers);
        if started {
            self.next_batch_id += BATCH_ID_STEP;
        }
        if !appended {
            let max = self.cfg.max_request_size;
            self.deliveries.push(Action::Deliver(Delivery {
                topic: record.topic,
                partition,
                records: vec![(record.token, ts)],
                result: Err(Failure {
                    reason: FailureReason::RecordTooLarge {
                        size: usize::MAX,
                        max,
                    },
                    persistence: Persistence::NotPersisted,
                }),
                resolved: false,
            }));
            return;
        }
        batch.records.push((record.token, ts));
        // Only records the sticky partitioner placed move it on (Java's RecordAccumulator
        // does the same): keyed or explicitly placed bytes must not bring the switch forward.
        if sticky_placed {
            self.topics[ti].sticky.record_appended(partition, added);
        }
    }
}
