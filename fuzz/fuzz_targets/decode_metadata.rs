//! Fuzzes `courier_core::wire::MetadataResponse` (v4..=13).
#![no_main]

use courier_core::wire::MetadataResponse;
use libfuzzer_sys::fuzz_target;

#[path = "wire_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Some(r) = common::check::<MetadataResponse>(selector, body) {
        let partitions: usize = r.topics.iter().map(|t| t.partitions.len()).sum();
        let replicas: usize = r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.replica_nodes.len() + p.isr_nodes.len() + p.offline_replicas.len())
            .sum();
        assert!(r.brokers.len() + r.topics.len() + partitions <= body.len());
        assert!(replicas * 4 <= body.len());
    }
});
