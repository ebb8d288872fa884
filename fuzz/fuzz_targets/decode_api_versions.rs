//! Fuzzes `courier_core::wire::ApiVersionsResponse` (v0..=3, and the v0 fallback).
#![no_main]

use courier_core::wire::ApiVersionsResponse;
use libfuzzer_sys::fuzz_target;

#[path = "wire_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Some(r) = common::check::<ApiVersionsResponse>(selector, body) {
        // Each entry took at least 6 bytes of the body.
        assert!(r.api_keys.len() * 6 <= body.len());
        assert!(r.supported_features.len() + r.finalized_features.len() <= body.len());
    }
    let version = common::version_of::<ApiVersionsResponse>(selector);
    if let Ok((_, used)) = ApiVersionsResponse::decode_negotiating(body, version) {
        assert!(used == 0 || used == version);
    }
});
