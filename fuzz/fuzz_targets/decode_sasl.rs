//! Fuzzes `courier_core::wire::SaslHandshakeResponse` (v0..=1) and
//! `SaslAuthenticateResponse` (v0..=2): bit 7 of the first byte picks the message, the
//! low bits the version.
#![no_main]

use courier_core::wire::{SaslAuthenticateResponse, SaslHandshakeResponse};
use libfuzzer_sys::fuzz_target;

#[path = "wire_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if selector & 0x80 == 0 {
        if let Some(r) = common::check::<SaslHandshakeResponse>(selector, body) {
            assert!(r.mechanisms.len() * 2 <= body.len());
        }
    } else if let Some(r) = common::check::<SaslAuthenticateResponse>(selector & 0x7f, body) {
        assert!(r.auth_bytes.len() <= body.len());
    }
});
