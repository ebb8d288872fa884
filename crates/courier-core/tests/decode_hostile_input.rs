//! The decoder survives hostile input on stable Rust (the cargo-fuzz target `decode_batch`
//! explores further): thousands of mutated batches of every codec, re-signed with a valid
//! CRC so the damage reaches the decompressors and the record parser, must give an error or
//! a batch, never a panic, and never more output than the configured limit.

use courier_core::compression::{decompress, Codec};
use courier_core::{
    decode_batch_with, encode_batch, Compression, DecodeOptions, ProducerFields, RecordRef,
    RECORD_BATCH_OVERHEAD,
};

/// xorshift64*: deterministic, so a failure reproduces from the printed iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const LIMIT: usize = 1 << 20;

fn seeds() -> Vec<Vec<u8>> {
    let headers: &[(&str, Option<&[u8]>)] = &[("trace", Some(b"abc")), ("n", None)];
    let values: Vec<Vec<u8>> = (0..30)
        .map(|i| format!("{{\"order_id\":{},\"amount\":{}.99}}", 10_000 + i * 7, i).into_bytes())
        .collect();
    let records: Vec<RecordRef<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| RecordRef {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: (i % 3 != 0).then_some(&b"order-1"[..]),
            value: (i % 5 != 0).then_some(&v[..]),
            headers: if i % 2 == 0 { headers } else { &[] },
        })
        .collect();
    let mut seeds: Vec<Vec<u8>> = [
        Compression::None,
        Compression::Lz4,
        Compression::Snappy,
        Compression::gzip(),
        Compression::zstd(),
    ]
    .into_iter()
    .map(|c| {
        encode_batch(&records, ProducerFields::idempotent(1, 2, 3), c)
            .unwrap()
            .bytes()
            .to_vec()
    })
    .collect();
    // A zstd batch written by Kafka's Java client (first batch of the fixture file).
    let zstd = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/java/java_zstd.bin"
    ))
    .unwrap();
    let len = i32::from_be_bytes(zstd[8..12].try_into().unwrap()) as usize + 12;
    seeds.push(zstd[..len].to_vec());
    seeds
}

/// Makes the length field and the CRC agree with the (mutated) bytes.
fn resign(batch: &mut [u8]) {
    if batch.len() >= RECORD_BATCH_OVERHEAD {
        let len = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)];
            }
            2 => input.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                input.splice(i..i, extra);
            }
            4 if len > 4 => {
                // Overwrite with a big-endian "length" that lies.
                let i = rng.below(len - 3);
                let v = [0u32, 1, 0x7fff_ffff, 0xffff_ffff, 65536][rng.below(5)];
                input[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            5 if len > 1 => {
                // Duplicate a slice elsewhere (repeated structures confuse parsers).
                let a = rng.below(len);
                let b = (a + rng.below(32)).min(len);
                let chunk = input[a..b].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            _ => {
                let i = rng.below(len + 1);
                input.insert(i, 0xff);
            }
        }
    }
}

#[test]
fn mutated_batches_of_every_codec_never_panic() {
    let seeds = seeds();
    let options = DecodeOptions {
        max_decompressed_size: LIMIT,
        verify_crc: true,
    };
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut decoded_ok = 0;
    for iteration in 0..3000 {
        let seed = &seeds[iteration % seeds.len()];
        let mut input = seed.clone();
        mutate(&mut rng, &mut input);
        // Most of the time fix the CRC so the mutation is not caught at the door.
        if rng.below(10) != 0 {
            resign(&mut input);
        }
        match std::panic::catch_unwind(|| decode_batch_with(&input, &options)) {
            Ok(Ok((batch, used))) => {
                decoded_ok += 1;
                assert!(used <= input.len());
                let total: usize = batch
                    .records
                    .iter()
                    .map(|r| {
                        r.key.as_ref().map_or(0, |k| k.len())
                            + r.value.as_ref().map_or(0, |v| v.len())
                    })
                    .sum();
                assert!(total <= LIMIT.max(input.len()));
            }
            Ok(Err(_)) => {}
            Err(_) => panic!("decoder panicked at iteration {iteration} on {input:02x?}"),
        }
    }
    // Some mutations (e.g. in a value's bytes) keep the batch valid; if none did, the
    // mutator would be broken and the test would prove little.
    assert!(decoded_ok > 30, "only {decoded_ok} mutated batches decoded");
}

#[test]
fn random_bytes_and_mutated_frames_never_panic_any_decompressor() {
    let seeds = seeds();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let codecs = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];
    for iteration in 0..2000 {
        let codec = codecs[iteration % codecs.len()];
        let mut input = if rng.below(4) == 0 {
            (0..rng.below(200)).map(|_| rng.next() as u8).collect()
        } else {
            // The compressed section of the seed batch written with this codec.
            let seed = seeds
                .iter()
                .find(|s| (s[22] & 0x07) == codec.id())
                .expect("seed per codec");
            seed[RECORD_BATCH_OVERHEAD..].to_vec()
        };
        mutate(&mut rng, &mut input);
        let mut out = Vec::new();
        let result = std::panic::catch_unwind(move || {
            let r = decompress(codec, &input, 4096, &mut out);
            (r, out.len(), input)
        });
        match result {
            Ok((_, produced, _)) => assert!(produced <= 4096, "{codec}: {produced} > limit"),
            Err(_) => panic!("{codec} decompressor panicked at iteration {iteration}"),
        }
    }
}
