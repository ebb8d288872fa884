//! Compressed size and single-core speed of each zstd encoder on Kafka records sections,
//! relative to libzstd at the same level. Prints a Markdown table.
//!
//! Inputs are the perf payload files (`perf/payloads`, one record value per line) sealed
//! into real RecordBatch v2 records sections by courier-core, from 16 KiB (a default
//! `batch.size` batch) to 1 MiB (the default `max.request.size`). Each encoder keeps its
//! context between calls, as a producer does; speed is the best of five timed rounds.

use std::time::Instant;

use courier_core::{Compression, Compressor, ProducerFields, RecordBatchBuilder};

const SIZES: [usize; 4] = [16 << 10, 64 << 10, 256 << 10, 1 << 20];
const PAYLOADS: [&str; 3] = ["json-100.txt", "json-1024.txt", "random-100.txt"];

/// The records section courier would compress for a batch of about `target` bytes.
fn section(lines: &[&[u8]], target: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    let mut i = 0usize;
    while b.size_in_bytes() < target {
        let v = lines[i % lines.len()];
        b.append(1_700_000_000_000 + i as i64, None, Some(v), &[])
            .unwrap();
        i += 1;
    }
    let batch = b
        .seal(
            ProducerFields::idempotent(1, 0, 0),
            Compression::None,
            &mut Compressor::new(),
        )
        .unwrap()
        .into_bytes();
    batch[courier_core::RECORD_BATCH_OVERHEAD..].to_vec()
}

/// (compressed size, MB/s of input) for one encoder writing into a reused buffer, as
/// courier's `Compressor` does; checks the frame with libzstd.
fn measure(input: &[u8], mut compress: impl FnMut(&[u8], &mut Vec<u8>)) -> (usize, f64) {
    let mut out = Vec::new();
    compress(input, &mut out);
    let back = zstd::bulk::decompress(&out, input.len()).expect("libzstd decodes it");
    assert_eq!(back, input, "round trip");
    let len = out.len();
    let iters = ((32 << 20) / input.len()).clamp(10, 2000);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            compress(std::hint::black_box(input), &mut out);
            std::hint::black_box(&out);
        }
        best = best.min(t.elapsed().as_secs_f64() / iters as f64);
    }
    (len, input.len() as f64 / best / 1e6)
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../payloads");
    println!("| payload | batch | level | libzstd: bytes, MB/s | mzstd: size, speed ÷ libzstd | structured-zstd | zrip |");
    println!("|---|---:|---:|---|---|---|---|");
    let mut speed_ratios: Vec<(i32, [f64; 3])> = Vec::new();
    for file in PAYLOADS {
        let data = std::fs::read(format!("{dir}/{file}")).unwrap_or_else(|e| {
            panic!(
                "{dir}/{file}: {e}; perf/run.py writes the payload files: run \
                 `python3 perf/run.py --quick` once"
            )
        });
        let lines: Vec<&[u8]> = data
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for target in SIZES {
            let input = section(&lines, target);
            for level in [1, 3] {
                let mut c = zstd::bulk::Compressor::new(level).unwrap();
                let bound = zstd::zstd_safe::compress_bound(input.len());
                let (c_len, c_speed) = measure(&input, |i, out| {
                    out.clear();
                    out.reserve(bound);
                    c.compress_to_buffer(i, out).unwrap();
                });

                let config = mzstd::EncoderConfig::default()
                    .with_level(mzstd::Level::try_from(level).unwrap());
                let mut m = mzstd::Compressor::new(config).unwrap();
                let mzstd = measure(&input, |i, out| {
                    out.clear();
                    m.compress_into(i, out).unwrap();
                });

                use structured_zstd::encoding::{CompressionLevel, FrameCompressor};
                let mut s: FrameCompressor =
                    FrameCompressor::new(CompressionLevel::from_level(level));
                let structured = measure(&input, |i, out| {
                    out.clear();
                    s.compress_independent_frame_into(i, out);
                });

                let mut z = zrip::CompressContext::new(level).unwrap();
                // zrip writes into a slice: the buffer is grown to the bound (re-zeroing what
                // the last frame did not use, ~1 % of the time at 1 MiB).
                let zbound = zrip::compress_bound(input.len());
                let zrip = measure(&input, |i, out| {
                    out.resize(zbound, 0);
                    let n = z.compress_into(i, out).unwrap();
                    out.truncate(n);
                });

                let cell = |(len, speed): (usize, f64)| {
                    format!(
                        "{:.3}x, {:.2}x",
                        len as f64 / c_len as f64,
                        speed / c_speed
                    )
                };
                println!(
                    "| {file} | {} KiB | {level} | {c_len}, {c_speed:.0} | {} | {} | {} |",
                    target >> 10,
                    cell(mzstd),
                    cell(structured),
                    cell(zrip)
                );
                speed_ratios.push((
                    level,
                    [mzstd.1 / c_speed, structured.1 / c_speed, zrip.1 / c_speed],
                ));
            }
        }
    }
    for level in [1, 3] {
        let rows: Vec<&[f64; 3]> = speed_ratios
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, r)| r)
            .collect();
        let geo = |k: usize| {
            (rows.iter().map(|r| r[k].ln()).sum::<f64>() / rows.len() as f64).exp()
        };
        println!(
            "\nlevel {level}, speed ÷ libzstd (geometric mean): mzstd {:.2}x, structured-zstd {:.2}x, zrip {:.2}x",
            geo(0),
            geo(1),
            geo(2)
        );
    }
}
