//! Property tests: for random records (keys, values, headers, sizes, timestamps), codecs and
//! producer fields, encoding then decoding is the identity, the size predicted before each
//! append is exact, and an independent decoder (`kafka-protocol`) agrees.

use bytes::Bytes;
use courier_core::{
    decode_batch, Codec, Compression, Compressor, Header, ProducerFields, RecordBatchBuilder,
    RECORD_BATCH_OVERHEAD,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Rec {
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Bytes that are sometimes compressible (repeated JSON-ish text), sometimes random.
fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        (0..max, any::<u32>()).prop_map(|(len, seed)| {
            let text = format!("{{\"order_id\":{seed},\"customer\":\"c-{}\"}}", seed % 977);
            text.bytes().cycle().take(len).collect()
        }),
    ]
}

fn record(base_ts: i64) -> impl Strategy<Value = Rec> {
    (
        prop_oneof![
            3 => (-100_000i64..100_000).prop_map(move |d| base_ts.wrapping_add(d)),
            1 => any::<i64>(),
        ],
        proptest::option::weighted(0.8, payload(64)),
        proptest::option::weighted(0.9, payload(3000)),
        proptest::collection::vec(("[a-zé☃-]{0,12}", proptest::option::of(payload(40))), 0..4),
    )
        .prop_map(|(ts, key, value, headers)| Rec {
            ts,
            key,
            value,
            headers,
        })
}

fn records() -> impl Strategy<Value = Vec<Rec>> {
    any::<i64>().prop_flat_map(|base| proptest::collection::vec(record(base), 1..60))
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Snappy),
        (0u32..=9).prop_map(|level| Compression::Gzip { level }),
        (-7i32..=9).prop_map(|level| Compression::Zstd { level }),
    ]
}

fn producer() -> impl Strategy<Value = ProducerFields> {
    prop_oneof![
        Just(ProducerFields::NONE),
        (0i64..i64::MAX, 0i16..i16::MAX, 0i32..=i32::MAX)
            .prop_map(|(id, epoch, seq)| ProducerFields::idempotent(id, epoch, seq)),
    ]
}

fn headers_of(r: &Rec) -> Vec<Header<'_>> {
    r.headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn encode_then_decode_is_identity(
        recs in records(),
        compression in compression(),
        producer in producer(),
        transactional in any::<bool>(),
    ) {
        let mut compressor = Compressor::new();
        let mut b = RecordBatchBuilder::with_capacity(256);
        b.set_transactional(transactional);
        for r in &recs {
            let headers = headers_of(r);
            let before = b.size_in_bytes();
            let predicted = b.next_record_size(r.ts, r.key.as_deref(), r.value.as_deref(), &headers);
            b.append(r.ts, r.key.as_deref(), r.value.as_deref(), &headers).unwrap();
            prop_assert_eq!(b.size_in_bytes() - before, predicted);
        }
        let uncompressed = b.size_in_bytes();
        let sealed = b.seal(producer, compression, &mut compressor).unwrap();
        prop_assert_eq!(sealed.uncompressed_size(), uncompressed);
        prop_assert!(sealed.len() <= uncompressed);
        prop_assert!(sealed.codec() == compression.codec() || sealed.codec() == Codec::None);

        let (batch, used) = decode_batch(sealed.bytes()).unwrap();
        prop_assert_eq!(used, sealed.len());
        let h = batch.header;
        prop_assert_eq!(h.codec, sealed.codec());
        prop_assert_eq!(h.producer_id, producer.producer_id);
        prop_assert_eq!(h.producer_epoch, producer.producer_epoch);
        prop_assert_eq!(h.base_sequence, producer.base_sequence);
        prop_assert_eq!(h.last_sequence(), sealed.last_sequence());
        prop_assert_eq!(h.record_count as usize, recs.len());
        prop_assert_eq!(h.last_offset_delta as usize, recs.len() - 1);
        prop_assert_eq!(h.base_timestamp, recs[0].ts);
        prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.ts).max().unwrap());
        prop_assert_eq!(h.is_transactional(), transactional);
        prop_assert_eq!(batch.records.len(), recs.len());
        for (i, (got, want)) in batch.records.iter().zip(&recs).enumerate() {
            prop_assert_eq!(got.offset, i as i64);
            prop_assert_eq!(got.timestamp, want.ts);
            prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
            prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
            let headers: Vec<(&[u8], Option<&[u8]>)> =
                got.headers.iter().map(|h| (&h.name[..], h.value.as_deref())).collect();
            let expected: Vec<(&[u8], Option<&[u8]>)> =
                want.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_deref())).collect();
            prop_assert_eq!(headers, expected);
        }
    }

    #[test]
    fn producer_field_rewrite_keeps_records_and_validates(
        recs in records(),
        compression in compression(),
        before in producer(),
        after in producer(),
    ) {
        let mut b = RecordBatchBuilder::new();
        for r in &recs {
            b.append(r.ts, r.key.as_deref(), r.value.as_deref(), &headers_of(r)).unwrap();
        }
        let sealed = b.seal(before, compression, &mut Compressor::new()).unwrap();
        let original = decode_batch(sealed.bytes()).unwrap().0;
        let rewritten = sealed.clone().with_producer_fields(after);
        let (decoded, _) = decode_batch(rewritten.bytes()).unwrap();
        prop_assert_eq!(decoded.header.producer_id, after.producer_id);
        prop_assert_eq!(decoded.header.producer_epoch, after.producer_epoch);
        prop_assert_eq!(decoded.header.base_sequence, after.base_sequence);
        prop_assert_eq!(decoded.records, original.records);
        prop_assert_eq!(&rewritten.bytes()[RECORD_BATCH_OVERHEAD..], &sealed.bytes()[RECORD_BATCH_OVERHEAD..]);
    }

    #[test]
    fn kafka_protocol_reads_what_we_write(
        recs in records(),
        compression in prop_oneof![
            Just(Compression::None),
            Just(Compression::Snappy),
            Just(Compression::gzip()),
        ],
    ) {
        // kafka-protocol keeps headers in a map and adds timestamp deltas without wrapping:
        // give it unique header names and sane timestamps.
        let recs: Vec<Rec> = recs
            .into_iter()
            .map(|mut r| {
                r.ts = 1_700_000_000_000 + (r.ts % 1_000_000);
                r.headers = r
                    .headers
                    .into_iter()
                    .enumerate()
                    .map(|(j, (n, v))| (format!("{n}#{j}"), v))
                    .collect();
                r
            })
            .collect();
        let producer = ProducerFields::idempotent(5, 1, 0);
        let mut b = RecordBatchBuilder::new();
        for r in &recs {
            b.append(r.ts, r.key.as_deref(), r.value.as_deref(), &headers_of(r)).unwrap();
        }
        let sealed = b.seal(producer, compression, &mut Compressor::new()).unwrap();
        let mut bytes: Bytes = sealed.into_bytes();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
        prop_assert_eq!(set.records.len(), recs.len());
        for (i, (got, want)) in set.records.iter().zip(&recs).enumerate() {
            prop_assert_eq!(got.offset, i as i64);
            prop_assert_eq!(got.sequence, i as i32);
            prop_assert_eq!(got.timestamp, want.ts);
            prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
            prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
            let headers: Vec<(String, Option<Vec<u8>>)> = got
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_ref().map(|v| v.to_vec())))
                .collect();
            prop_assert_eq!(&headers, &want.headers);
        }
    }
}
