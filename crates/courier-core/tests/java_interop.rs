//! Record batches interoperate with Kafka's own Java client (kafka-clients 4.3.1), both ways.
//!
//! * Java -> courier: `fixtures/java/java_<codec>.bin` were written by
//!   `fixtures/gen/KafkaBatchTool.java` with `MemoryRecords.builder` (regenerate with
//!   `fixtures/gen/regen.sh`); the matching `.txt` is Java's own reading of them. We decode
//!   the `.bin` files and must render exactly the same text, and spot-check fields.
//! * courier -> Java: batches we build for every codec are written to files and read back by
//!   the same Java tool (`MemoryRecords.readableRecords`, `ensureValid()` = CRC32C check,
//!   record iteration). Its output must equal the text rendered from the records we put in.
//!   It needs a JDK 17+ and the Kafka jars, found through the test kit (`$COURIER_KAFKA_LIBS`
//!   or the kit's Maven-fetched cache); without them the test fails, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use courier_core::{
    decode_batches, Codec, Compression, Compressor, DecodedBatch, Header, ProducerFields,
    RecordBatchBuilder, SealedBatch,
};

const BASE_TS: i64 = 1_700_000_000_000;
const JAVA_CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = manifest_dir().join("tests/fixtures/java").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The canonical text form of a byte field (see KafkaBatchTool.java).
fn render_bytes(b: Option<&[u8]>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) if b.len() > 64 => format!("#{}:{:08x}", b.len(), crc32c::crc32c(b)),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

#[derive(Debug, Clone, Copy)]
struct BatchLine {
    codec: Codec,
    producer: ProducerFields,
    last_sequence: i32,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    transactional: bool,
}

fn render_batch_line(out: &mut String, b: BatchLine) {
    out.push_str(&format!(
        "batch codec={} baseOffset=0 partitionLeaderEpoch=-1 producerId={} producerEpoch={} \
         baseSequence={} lastSequence={} lastOffsetDelta={} count={} baseTimestamp={} \
         maxTimestamp={} timestampType=CreateTime transactional={} control=false\n",
        b.codec.name(),
        b.producer.producer_id,
        b.producer.producer_epoch,
        b.producer.base_sequence,
        b.last_sequence,
        b.count - 1,
        b.count,
        b.base_timestamp,
        b.max_timestamp,
        b.transactional,
    ));
}

fn render_record(
    out: &mut String,
    offset: i64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
) {
    let headers: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}={}", render_bytes(Some(n)), render_bytes(*v)))
        .collect();
    out.push_str(&format!(
        "record offset={offset} timestamp={timestamp} key={} value={} headers=[{}]\n",
        render_bytes(key),
        render_bytes(value),
        headers.join(",")
    ));
}

/// Renders what our decoder read.
fn render_decoded(file: &str, batches: &[DecodedBatch]) -> String {
    let mut out = format!("file {file}\n");
    for b in batches {
        let h = &b.header;
        assert_eq!((h.base_offset, h.partition_leader_epoch), (0, -1));
        render_batch_line(
            &mut out,
            BatchLine {
                codec: h.codec,
                producer: ProducerFields::idempotent(
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                ),
                last_sequence: h.last_sequence(),
                count: h.record_count,
                base_timestamp: h.base_timestamp,
                max_timestamp: h.max_timestamp,
                transactional: h.is_transactional(),
            },
        );
        for r in &b.records {
            let headers: Vec<(&[u8], Option<&[u8]>)> = r
                .headers
                .iter()
                .map(|h| (&h.name[..], h.value.as_deref()))
                .collect();
            render_record(
                &mut out,
                r.offset,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &headers,
            );
        }
    }
    out
}

#[test]
fn java_written_batches_decode_to_the_same_text_java_reads() {
    for codec in JAVA_CODECS {
        let bin = fixture(&format!("java_{codec}.bin"));
        let want = String::from_utf8(fixture(&format!("java_{codec}.txt"))).unwrap();
        let batches = decode_batches(&bin).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(batches.len(), 3, "{codec}");
        for b in &batches {
            assert_eq!(b.header.codec.name(), codec);
        }
        let got = render_decoded(&format!("java_{codec}.bin"), &batches);
        assert_eq!(
            got, want,
            "{codec}: courier and Kafka's Java client disagree"
        );
    }
}

#[test]
fn java_written_batches_carry_the_fields_the_generator_wrote() {
    let binary: Vec<u8> = (0..=255).collect();
    for codec in JAVA_CODECS {
        let batches = decode_batches(&fixture(&format!("java_{codec}.bin"))).unwrap();
        let [edge, plain, wrap] = &batches[..] else {
            panic!("{codec}: expected three batches");
        };

        let h = &edge.header;
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 7, 100)
        );
        assert_eq!(h.record_count, 85);
        assert_eq!(h.last_sequence(), 184);
        assert_eq!(h.base_timestamp, BASE_TS);
        assert_eq!(h.max_timestamp, BASE_TS + 10 + 79);
        let r = &edge.records;
        assert_eq!(r[0].key.as_deref(), Some(&b"order-1"[..]));
        assert_eq!(r[0].headers.len(), 2);
        assert_eq!(&r[0].headers[0].name[..], b"trace");
        assert_eq!(r[0].headers[0].value.as_deref(), Some(&b"abc"[..]));
        assert_eq!(&r[0].headers[1].name[..], b"null-header");
        assert_eq!(r[0].headers[1].value, None, "null header value");
        assert_eq!(r[1].key, None, "null key");
        assert_eq!(r[1].timestamp, BASE_TS + 5);
        assert_eq!(
            r[2].value.as_deref(),
            Some(&b""[..]),
            "empty value is not null"
        );
        assert_eq!(r[2].headers[0].value.as_deref(), Some(&b""[..]));
        assert_eq!(r[3].key.as_deref(), Some(&b""[..]), "empty key is not null");
        assert_eq!(r[3].value, None, "tombstone");
        assert_eq!(r[3].timestamp, BASE_TS - 3, "negative timestamp delta");
        assert_eq!(r[3].timestamp_delta, -3);
        assert_eq!(r[4].key.as_deref(), Some("k-ü☃".as_bytes()));
        assert_eq!(r[4].value.as_deref(), Some(&binary[..]));
        let names: Vec<&[u8]> = r[4].headers.iter().map(|h| &h.name[..]).collect();
        assert_eq!(names, [&b"dup"[..], b"dup", "été".as_bytes()]);
        assert_eq!(r[84].offset, 84);
        assert_eq!(r[84].key.as_deref(), Some(&b"order-10553"[..]));
        assert!(r[84].value.as_ref().unwrap().len() > 800);

        let h = &plain.header;
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!(h.last_sequence(), -1);
        assert_eq!(plain.records.len(), 3);

        let h = &wrap.header;
        assert_eq!(h.base_sequence, i32::MAX - 1);
        assert_eq!(h.record_count, 4);
        assert_eq!(
            h.last_sequence(),
            1,
            "MAX-1, MAX, 0, 1: wraps past i32::MAX to 0"
        );
    }
}

// ----------------------------------------------------------------------------- courier -> Java

struct Rec {
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn order(i: usize, big: bool) -> Vec<u8> {
    let mut s = format!(
        "{{\"order_id\":{},\"customer\":\"c-{:04}\",\"amount\":{}.{:02},\"currency\":\"EUR\"",
        10000 + i * 7,
        i % 977,
        (i * 31) % 500,
        i % 100
    );
    if big {
        s.push_str(",\"items\":[");
        for j in 0..12 {
            if j > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "{{\"sku\":\"sku-{:05}\",\"qty\":{},\"note\":\"gift wrap {j}\"}}",
                (i * 131 + j * 17) % 99991,
                1 + (i + j) % 5
            ));
        }
        s.push(']');
    }
    s.push('}');
    s.into_bytes()
}

fn edge_and_bulk_records() -> Vec<Rec> {
    let b = |s: &str| Some(s.as_bytes().to_vec());
    let mut v = vec![
        Rec {
            ts: BASE_TS,
            key: b("order-1"),
            value: Some(order(1, false)),
            headers: vec![("trace".into(), b("abc")), ("null-header".into(), None)],
        },
        Rec {
            ts: BASE_TS + 5,
            key: None,
            value: Some(order(2, false)),
            headers: vec![],
        },
        Rec {
            ts: BASE_TS + 6,
            key: b("order-2"),
            value: Some(vec![]),
            headers: vec![(String::new(), Some(vec![]))],
        },
        Rec {
            ts: BASE_TS - 3,
            key: Some(vec![]),
            value: None,
            headers: vec![],
        },
        Rec {
            ts: BASE_TS + 1,
            key: b("k-ü☃"),
            value: Some((0..=255).collect()),
            headers: vec![
                ("dup".into(), b("1")),
                ("dup".into(), b("2")),
                ("été".into(), None),
            ],
        },
        Rec {
            ts: i64::MAX / 2, // huge timestamp delta: a 9-byte varlong
            key: None,
            value: b("far future"),
            headers: vec![],
        },
    ];
    // Enough ~1 KiB records for two LZ4 blocks and three snappy chunks.
    for i in 0..90 {
        v.push(Rec {
            ts: BASE_TS + 10 + i as i64,
            key: Some(format!("order-{}", 10000 + i * 7).into_bytes()),
            value: Some(order(i, true)),
            headers: vec![],
        });
    }
    v
}

fn small_records(prefix: &str, n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            ts: BASE_TS + 100 * i as i64,
            key: Some(format!("{prefix}-{i}").into_bytes()),
            value: Some(order(i, false)),
            headers: vec![],
        })
        .collect()
}

fn seal(
    records: &[Rec],
    producer: ProducerFields,
    compression: Compression,
    transactional: bool,
    compressor: &mut Compressor,
) -> SealedBatch {
    let mut b = RecordBatchBuilder::new();
    b.set_transactional(transactional);
    for r in records {
        let headers: Vec<Header<'_>> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        b.append(r.ts, r.key.as_deref(), r.value.as_deref(), &headers)
            .unwrap();
    }
    b.seal(producer, compression, compressor).unwrap()
}

/// The text Java must print for `batch`, computed from the records we put in.
fn render_expected(out: &mut String, batch: &SealedBatch, records: &[Rec], transactional: bool) {
    render_batch_line(
        out,
        BatchLine {
            codec: batch.codec(),
            producer: batch.producer_fields(),
            last_sequence: batch.last_sequence(),
            count: records.len() as i32,
            base_timestamp: records[0].ts,
            max_timestamp: records.iter().map(|r| r.ts).max().unwrap(),
            transactional,
        },
    );
    for (i, r) in records.iter().enumerate() {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_deref()))
            .collect();
        render_record(
            out,
            i as i64,
            r.ts,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
        );
    }
}

/// Runs our Java tool's `dump` mode over `files` with Kafka's jars, returning its output.
///
/// The jars and `java` come from the test kit: `$COURIER_KAFKA_LIBS` if set (e.g.
/// `/work/kafka-libs`), else the kit's per-user cache, fetched once from Maven Central.
/// The single-file source launcher needs a JDK (every project machine image has
/// openjdk-17-jdk-headless). Anything missing fails the test: it never skips.
fn java_dump(files: &[PathBuf]) -> String {
    let dist = courier_testkit::KafkaDist::locate().unwrap_or_else(|e| {
        panic!(
            "cannot find Kafka's jars and Java for the interop test ({e}); set \
             COURIER_KAFKA_LIBS to a directory of Kafka 4.3.1 jars or let the test kit fetch them"
        )
    });
    let tool = manifest_dir().join("tests/fixtures/gen/KafkaBatchTool.java");
    let output = Command::new(dist.java())
        .arg("-cp")
        .arg(dist.libs().join("*"))
        .arg(&tool)
        .arg("dump")
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", dist.java().display()));
    assert!(
        output.status.success(),
        "Kafka's Java client rejected our batches (or the JDK cannot run {}):\n{}",
        tool.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn courier_written_batches_pass_kafka_java_client_validation() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("courier-java-interop");
    std::fs::create_dir_all(&dir).unwrap();
    let mut compressor = Compressor::new();
    let edge = edge_and_bulk_records();
    let plain = small_records("plain", 3);
    let wrap = small_records("wrap", 4);
    let mut files = Vec::new();
    let mut want = String::new();

    let cases = [
        ("none", Compression::None),
        ("gzip", Compression::gzip()),
        ("gzip1", Compression::Gzip { level: 1 }),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::zstd()),
        ("zstd1", Compression::Zstd { level: 1 }),
        ("zstd19", Compression::Zstd { level: 19 }),
        ("zstd-5", Compression::Zstd { level: -5 }),
    ];
    for (name, compression) in cases {
        let file = format!("courier_{name}.bin");
        want.push_str(&format!("file {file}\n"));
        let mut bytes = Vec::new();

        let idempotent = ProducerFields::idempotent(4242, 7, 100);
        let first = seal(&edge, idempotent, compression, false, &mut compressor);
        assert_eq!(first.codec(), compression.codec(), "{name} should compress");
        render_expected(&mut want, &first, &edge, false);
        bytes.extend_from_slice(first.bytes());

        let b = seal(
            &plain,
            ProducerFields::NONE,
            compression,
            false,
            &mut compressor,
        );
        render_expected(&mut want, &b, &plain, false);
        bytes.extend_from_slice(b.bytes());

        let wrapped = ProducerFields::idempotent(4242, 8, i32::MAX - 1);
        let b = seal(&wrap, wrapped, compression, true, &mut compressor);
        assert_eq!(b.last_sequence(), 1);
        render_expected(&mut want, &b, &wrap, true);
        bytes.extend_from_slice(b.bytes());

        // KIP-360 epoch bump: the same records resent under a new epoch, sequence from 0.
        let bumped = first.with_producer_fields(ProducerFields::idempotent(4242, 8, 0));
        render_expected(&mut want, &bumped, &edge, false);
        bytes.extend_from_slice(bumped.bytes());

        let path = dir.join(&file);
        std::fs::write(&path, &bytes).unwrap();
        files.push(path);
    }

    // Incompressible records with LZ4 asked for: sent as codec none.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<Rec> = (0..20)
        .map(|i| Rec {
            ts: BASE_TS + i,
            key: None,
            value: Some(
                (0..500)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect(),
            ),
            headers: vec![],
        })
        .collect();
    let b = seal(
        &noise,
        ProducerFields::NONE,
        Compression::Lz4,
        false,
        &mut compressor,
    );
    assert_eq!(b.codec(), Codec::None);
    let file = "courier_incompressible.bin";
    want.push_str(&format!("file {file}\n"));
    render_expected(&mut want, &b, &noise, false);
    let path = dir.join(file);
    std::fs::write(&path, b.bytes()).unwrap();
    files.push(path);

    let got = java_dump(&files);
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "first difference at line {}", i + 1);
        }
        assert_eq!(got.lines().count(), want.lines().count(), "line count");
    }
}
