//! Record batch encoding: courier's builder against the `kafka-protocol` crate's encoder and
//! against the physical floor (copying the bytes and one CRC32C; raw LZ4 block compression).
//!
//! Every benchmark encodes the same 1,000 records (JSON-like values of ~100 B or ~1 KiB,
//! keys like `order-12345`) and reports records per second. Run with
//! `cargo bench -p courier-benches --bench record_batch`; figures in `docs/BENCHMARKS.md`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use courier_core::{Compression, Compressor, ProducerFields, RecordBatchBuilder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{
    Compression as KpCompression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const RECORDS: usize = 1_000;
const BASE_TS: i64 = 1_700_000_000_000;
const PRODUCER: ProducerFields = ProducerFields::idempotent(4242, 0, 0);

struct Input {
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
}

/// Deterministic order events; numbers vary per record so compression sees realistic data.
fn orders(big: bool) -> Input {
    let mut keys = Vec::with_capacity(RECORDS);
    let mut values = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let id = 10_000 + i * 7;
        keys.push(format!("order-{id}").into_bytes());
        let mut v = format!(
            "{{\"order_id\":{id},\"customer\":\"c-{:04}\",\"amount\":{}.{:02},\"currency\":\"EUR\",\"ts\":{}}}",
            (i * 37) % 977,
            (i * 31) % 500,
            i % 100,
            BASE_TS + i as i64 * 13
        );
        if big {
            v.pop();
            v.push_str(",\"items\":[");
            let mut j = 0;
            while v.len() < 960 {
                if j > 0 {
                    v.push(',');
                }
                v.push_str(&format!(
                    "{{\"sku\":\"sku-{:05}\",\"qty\":{},\"price\":{}.{:02}}}",
                    (i * 131 + j * 17) % 99_991,
                    1 + (i + j) % 5,
                    (i * 7 + j * 3) % 200,
                    (i + j) % 100
                ));
                j += 1;
            }
            v.push_str("]}");
        }
        values.push(v.into_bytes());
    }
    Input { keys, values }
}

/// What the producer does per batch: append every record into a reused builder, then seal
/// (header, optional compression with a reused compressor, CRC32C).
fn courier_encode(
    input: &Input,
    builder: &mut RecordBatchBuilder,
    compressor: &mut Compressor,
    compression: Compression,
) -> Bytes {
    for (i, (k, v)) in input.keys.iter().zip(&input.values).enumerate() {
        builder
            .append(BASE_TS + i as i64, Some(k), Some(v), &[])
            .expect("append");
    }
    builder
        .seal(PRODUCER, compression, compressor)
        .expect("seal")
        .into_bytes()
}

fn uncompressed_size(input: &Input) -> usize {
    let mut b = RecordBatchBuilder::new();
    courier_encode(input, &mut b, &mut Compressor::new(), Compression::None).len()
}

fn bench(c: &mut Criterion) {
    let small = orders(false);
    let large = orders(true);
    let mut group = c.benchmark_group("record_batch");
    group.throughput(Throughput::Elements(RECORDS as u64));
    // Each target compares two figures of one run; they are registered side by side so a
    // burst of load from other processes on a shared machine hits both alike.
    bench_courier(
        &mut group,
        "courier/encode_100B_none",
        &small,
        Compression::None,
    );
    bench_floor_copy_crc(&mut group, &small);
    bench_kafka_protocol(&mut group, &small);
    bench_courier(
        &mut group,
        "courier/encode_100B_lz4",
        &small,
        Compression::Lz4,
    );
    bench_floor_lz4(&mut group, &small);
    bench_courier(
        &mut group,
        "courier/encode_1KB_lz4",
        &large,
        Compression::Lz4,
    );
    group.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn bench_courier(group: &mut Group<'_>, id: &str, input: &Input, compression: Compression) {
    // Sized like a producer's batch.size so a full batch never reallocates.
    let mut builder = RecordBatchBuilder::with_capacity(uncompressed_size(input));
    let mut compressor = Compressor::new();
    group.bench_function(id, |b| {
        b.iter(|| {
            let batch =
                courier_encode(black_box(input), &mut builder, &mut compressor, compression);
            black_box(&batch);
            // The producer recycles a batch's buffer once the broker acknowledged it
            // (Java's BufferPool does the same); compressed batches leave the builder's
            // work area in place and are simply dropped.
            builder.recycle(batch);
        })
    });
}

/// What a user of the kafka-protocol crate pays: build its Record structs (owned Bytes for
/// key and value) and encode them into a reused buffer.
fn bench_kafka_protocol(group: &mut Group<'_>, small: &Input) {
    let mut out = BytesMut::with_capacity(uncompressed_size(small) * 2);
    let options = RecordEncodeOptions {
        version: 2,
        compression: KpCompression::None,
    };
    group.bench_function("kafka_protocol/encode_100B_none", |b| {
        b.iter(|| {
            let input = black_box(small);
            let records: Vec<Record> = input
                .keys
                .iter()
                .zip(&input.values)
                .enumerate()
                .map(|(i, (k, v))| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: PRODUCER.producer_id,
                    producer_epoch: PRODUCER.producer_epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: i as i32,
                    timestamp: BASE_TS + i as i64,
                    key: Some(Bytes::copy_from_slice(k)),
                    value: Some(Bytes::copy_from_slice(v)),
                    headers: Default::default(),
                })
                .collect();
            out.clear();
            RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode");
            black_box(out.len())
        })
    });
}

/// Physical floor: the same keys and values copied into one buffer, one CRC32C over it.
fn bench_floor_copy_crc(group: &mut Group<'_>, small: &Input) {
    let mut floor = Vec::with_capacity(uncompressed_size(small));
    group.bench_function("floor/copy_crc_100B", |b| {
        b.iter(|| {
            let input = black_box(small);
            floor.clear();
            for (k, v) in input.keys.iter().zip(&input.values) {
                floor.extend_from_slice(k);
                floor.extend_from_slice(v);
            }
            black_box(crc32c::crc32c(&floor))
        })
    });
}

/// LZ4 floor: raw block compression of exactly the records section courier compresses.
fn bench_floor_lz4(group: &mut Group<'_>, small: &Input) {
    let encoded = {
        let mut b = RecordBatchBuilder::new();
        let batch = courier_encode(small, &mut b, &mut Compressor::new(), Compression::None);
        batch[courier_core::RECORD_BATCH_OVERHEAD..].to_vec()
    };
    let mut compressed = vec![0u8; lz4_flex::block::get_maximum_output_size(encoded.len())];
    group.bench_function("floor/lz4_100B", |b| {
        b.iter(|| {
            black_box(
                lz4_flex::block::compress_into(black_box(&encoded), &mut compressed)
                    .expect("compress"),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
