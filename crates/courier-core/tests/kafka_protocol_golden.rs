//! Our batches decode with an independent implementation: the `kafka-protocol` crate's
//! `RecordBatchDecoder` (which also verifies the CRC32C). Its gzip and snappy decoders are
//! pure Rust and enabled for this test; for LZ4 we hand it `lz4_flex`'s frame decoder,
//! a different reader from ours. For uncompressed batches with time-ordered records the
//! crate's own encoder must produce the very same bytes as ours.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use courier_core::{Codec, Compression, Compressor, Header, ProducerFields, RecordBatchBuilder};
use kafka_protocol::records::{
    Compression as KpCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};

struct Rec {
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Unique names: the crate keeps headers in a map.
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn records(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            ts: 1_700_000_000_000 + (i as i64 * 3) % 17 - 8, // not monotonic
            key: (i % 4 != 0).then(|| format!("order-{}", 10_000 + i * 7).into_bytes()),
            value: match i % 9 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(
                    format!(
                        "{{\"order_id\":{},\"customer\":\"c-{:04}\",\"amount\":{}.{:02}}}",
                        10_000 + i * 7,
                        i % 977,
                        (i * 31) % 500,
                        i % 100
                    )
                    .into_bytes(),
                ),
            },
            headers: match i % 3 {
                0 => vec![],
                1 => vec![("trace".into(), Some(b"abc".to_vec()))],
                _ => vec![
                    ("trace".into(), Some(format!("t-{i}").into_bytes())),
                    ("nullable".into(), None),
                    ("été".into(), Some(Vec::new())),
                ],
            },
        })
        .collect()
}

fn build(recs: &[Rec], producer: ProducerFields, compression: Compression) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for r in recs {
        let headers: Vec<Header<'_>> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        b.append(r.ts, r.key.as_deref(), r.value.as_deref(), &headers)
            .unwrap();
    }
    let sealed = b
        .seal(producer, compression, &mut Compressor::new())
        .unwrap();
    assert_eq!(
        sealed.codec(),
        compression.codec(),
        "records should compress"
    );
    sealed.into_bytes()
}

/// Decompresses with `lz4_flex`'s frame decoder; a failure panics (fails the test) rather
/// than going through the crate's `anyhow` error type.
fn lz4_via_lz4_flex(buf: &[u8]) -> Bytes {
    let mut out = Vec::new();
    lz4_flex::frame::FrameDecoder::new(buf)
        .read_to_end(&mut out)
        .expect("lz4_flex rejected our LZ4 frame");
    Bytes::from(out)
}

fn decode_with_kafka_protocol(mut bytes: Bytes, codec: Codec) -> Vec<Record> {
    let set = if codec == Codec::Lz4 {
        RecordBatchDecoder::decode_with_custom_compression(
            &mut bytes,
            Some(|b: &mut Bytes, c: KpCompression| {
                assert_eq!(c, KpCompression::Lz4);
                Ok(lz4_via_lz4_flex(b))
            }),
        )
    } else {
        RecordBatchDecoder::decode(&mut bytes)
    }
    .unwrap_or_else(|e| panic!("kafka-protocol rejected our {codec} batch: {e:#}"));
    assert!(bytes.is_empty(), "one batch expected");
    assert_eq!(set.version, 2);
    assert_eq!(set.compression as u8, codec.id());
    set.records
}

fn assert_same(recs: &[Rec], got: &[Record], producer: ProducerFields) {
    assert_eq!(got.len(), recs.len());
    for (i, (want, got)) in recs.iter().zip(got).enumerate() {
        assert_eq!(got.offset, i as i64, "offset of {i}");
        assert_eq!(got.timestamp, want.ts, "timestamp of {i}");
        assert_eq!(got.timestamp_type, TimestampType::Creation);
        assert_eq!(got.key.as_deref(), want.key.as_deref(), "key of {i}");
        assert_eq!(got.value.as_deref(), want.value.as_deref(), "value of {i}");
        let headers: Vec<(String, Option<Vec<u8>>)> = got
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_ref().map(|v| v.to_vec())))
            .collect();
        assert_eq!(headers, want.headers, "headers of {i}");
        assert_eq!(got.producer_id, producer.producer_id);
        assert_eq!(got.producer_epoch, producer.producer_epoch);
        assert_eq!(got.sequence, producer.base_sequence + i as i32);
        assert!(!got.transactional && !got.control);
    }
}

#[test]
fn kafka_protocol_decodes_our_batches_for_none_gzip_snappy_and_lz4() {
    let recs = records(400);
    let producer = ProducerFields::idempotent(31_337, 4, 1_000);
    for compression in [
        Compression::None,
        Compression::gzip(),
        Compression::Snappy,
        Compression::Lz4,
    ] {
        let bytes = build(&recs, producer, compression);
        let got = decode_with_kafka_protocol(bytes, compression.codec());
        assert_same(&recs, &got, producer);
    }
}

#[test]
fn uncompressed_batch_is_byte_identical_to_kafka_protocols_encoder() {
    // The crate takes the smallest timestamp as the base (Java takes the first one), so the
    // bytes can only agree for time-ordered records.
    let mut recs = records(50);
    for (i, r) in recs.iter_mut().enumerate() {
        r.ts = 1_700_000_000_000 + i as i64 * 2;
    }
    let producer = ProducerFields::idempotent(7, 1, 0);
    let ours = build(&recs, producer, Compression::None);
    let theirs_records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: r.ts,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone().into(), v.clone().map(Bytes::from)))
                .collect(),
        })
        .collect();
    let mut theirs = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut theirs,
        &theirs_records,
        &RecordEncodeOptions {
            version: 2,
            compression: KpCompression::None,
        },
    )
    .unwrap();
    assert_eq!(&ours[..], &theirs[..]);
}
