//! Fuzzes `courier_core::wire::ProduceResponse` (v3..=12).
#![no_main]

use courier_core::wire::ProduceResponse;
use libfuzzer_sys::fuzz_target;

#[path = "wire_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Some(r) = common::check::<ProduceResponse>(selector, body) {
        // A partition entry takes at least 22 bytes in every version.
        assert!(r.partition_count() * 22 <= body.len());
        assert!(r.node_endpoints.len() * 11 <= body.len());
    }
});
