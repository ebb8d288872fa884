//! Metadata: when to ask for it, and what an answer does (partitions and leaders, records
//! parked for a topic routed at last, topic errors) or a failure (backoff).

use std::time::Instant;

use super::classify::codes;
use super::queue::{Parked, PartitionQueue};
use super::types::{Action, Failure, FailureReason, PartitionMetadata, Persistence, TopicMetadata};
use super::ProducerEngine;

impl<T> ProducerEngine<T> {
    pub(super) fn poll_metadata(&mut self, now: Instant, out: &mut Vec<Action<T>>) {
        if self.metadata_in_flight || self.topics.is_empty() {
            return;
        }
        if self.metadata_retry_at.is_some_and(|t| now < t) {
            return;
        }
        let stale = self
            .metadata_refreshed_at
            .is_none_or(|t| now.duration_since(t) >= self.cfg.metadata_max_age);
        if self.metadata_needed || stale {
            self.metadata_in_flight = true;
            self.metadata_needed = false;
            out.push(Action::FetchMetadata {
                topics: self.topics.iter().map(|t| t.name.clone()).collect(),
            });
        }
    }

    /// Reports a metadata answer.
    ///
    /// Entries that cannot be right are skipped, so a broken or hostile answer can never
    /// size a table by an index or point at a partition that does not exist: partition
    /// indices must be unique and below the number of partitions listed; the topic has
    /// `max(valid index) + 1` partitions, and those the answer left out have no leader
    /// until a later answer names one.
    pub fn on_metadata(&mut self, topics: &[TopicMetadata], now: Instant) {
        self.metadata_in_flight = false;
        self.metadata_refreshed_at = Some(now);
        self.metadata_failures = 0;
        // Java's Metadata.timeToAllowUpdate: never ask again sooner than retry.backoff.ms,
        // whatever metadata.max.age.ms or a stream of errors asking for a refresh say.
        self.metadata_retry_at = Some(now + self.cfg.retry_backoff);
        let mut incomplete = false;
        for tm in topics {
            let Some(&ti) = self.topic_index.get(tm.name.as_str()) else {
                continue;
            };
            let t = &mut self.topics[ti];
            if tm.error_code == codes::UNKNOWN_TOPIC_OR_PARTITION {
                t.unknown = true;
                incomplete = true;
                continue;
            }
            if tm.error_code != 0 {
                // Authorization and other topic errors: fail what waits for it.
                let code = tm.error_code;
                let parked: Vec<Parked<T>> = t.parked.drain(..).collect();
                for pk in parked {
                    self.fail_record(
                        pk.record,
                        Failure {
                            reason: FailureReason::Broker {
                                code,
                                message: None,
                            },
                            persistence: Persistence::NotPersisted,
                        },
                    );
                }
                continue;
            }
            t.unknown = false;
            t.missing_confirmed = false;
            let valid = valid_partitions(&tm.partitions);
            let count = valid.last().map_or(0, |p| p.partition as usize + 1);
            // Partitions are only ever added to a topic, never removed.
            while t.partitions.len() < count {
                t.partitions.push(PartitionQueue::new(-1));
            }
            let mut listed = vec![false; count];
            for pm in valid {
                listed[pm.partition as usize] = true;
                let p = &mut t.partitions[pm.partition as usize];
                p.leader = if pm.error_code == 0 || pm.leader >= 0 {
                    pm.leader.max(-1)
                } else {
                    -1
                };
                if p.leader < 0 {
                    incomplete = true;
                }
            }
            if listed.iter().any(|l| !l) {
                incomplete = true;
                for (i, _) in listed.iter().enumerate().filter(|(_, l)| !**l) {
                    t.partitions[i].leader = -1;
                }
            }
            t.available = t
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader >= 0)
                .map(|(i, _)| i as i32)
                .collect();
            if !t.partitions.is_empty() {
                let parked: Vec<Parked<T>> = t.parked.drain(..).collect();
                for pk in parked {
                    // Linger and delivery timeout count from when the record arrived.
                    self.route(ti, pk.record, pk.since);
                }
            }
        }
        if incomplete {
            // A topic or leader is still missing: ask again soon.
            self.metadata_needed = true;
            self.metadata_retry_at = Some(now + self.cfg.retry_backoff);
        }
    }

    /// Reports that fetching metadata failed. The next attempt waits `retry.backoff.ms`,
    /// doubling per consecutive failure up to `retry.backoff.max.ms` (with jitter, as Java's
    /// metadata backoff since KIP-580): a cluster that keeps failing is not hammered.
    pub fn on_metadata_failed(&mut self, now: Instant) {
        self.metadata_in_flight = false;
        self.metadata_needed = true;
        self.metadata_failures = self.metadata_failures.saturating_add(1);
        let backoff = self.backoff(self.metadata_failures);
        self.metadata_retry_at = Some(now + backoff);
    }
}

/// The partitions of a metadata answer that can be right, sorted by index: indices are
/// unique and below the number of entries listed (a topic of `n` partitions lists `0..n`),
/// so no index can size a table beyond what the answer itself carried.
fn valid_partitions(listed: &[PartitionMetadata]) -> Vec<&PartitionMetadata> {
    let n = listed.len();
    let mut valid: Vec<&PartitionMetadata> = listed
        .iter()
        .filter(|p| usize::try_from(p.partition).is_ok_and(|i| i < n))
        .collect();
    valid.sort_by_key(|p| p.partition);
    valid.dedup_by_key(|p| p.partition);
    valid
}
