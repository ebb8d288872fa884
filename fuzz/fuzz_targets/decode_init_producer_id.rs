//! Fuzzes `courier_core::wire::InitProducerIdResponse` (v0..=5).
#![no_main]

use courier_core::wire::InitProducerIdResponse;
use libfuzzer_sys::fuzz_target;

#[path = "wire_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if common::check::<InitProducerIdResponse>(selector, body).is_some() {
        // 16 fixed bytes, plus a tagged-field section from v2.
        assert!(body.len() >= 16);
    }
});
