//! Keyed records must land on the same partition as with the Java client.
//!
//! `fixtures/murmur2/murmur2.tsv` was printed by `fixtures/murmur2/Gen.java` running against
//! the real `kafka-clients` 4.3.1 jar (`Utils.murmur2` and
//! `BuiltInPartitioner.partitionForKey`); this test recomputes every row in Rust.

use courier_core::partitioner::{murmur2, partition_for_key};

const TABLE: &str = include_str!("fixtures/murmur2/murmur2.tsv");
const PARTITION_COUNTS: [i32; 4] = [3, 6, 12, 100];

struct Row {
    label: String,
    key: Vec<u8>,
    murmur2: i32,
    partitions: [i32; 4],
}

fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length in fixture: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

fn rows() -> Vec<Row> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 7, "malformed fixture row: {line:?}");
            let num = |i: usize| cols[i].parse::<i32>().expect("fixture number");
            Row {
                label: cols[0].to_string(),
                key: decode_hex(cols[1]),
                murmur2: num(2),
                partitions: [num(3), num(4), num(5), num(6)],
            }
        })
        .collect()
}

#[test]
fn murmur2_matches_java_for_every_fixture_key() {
    let rows = rows();
    let mismatches: Vec<String> = rows
        .iter()
        .filter(|r| murmur2(&r.key) != r.murmur2)
        .map(|r| format!("{}: java {} rust {}", r.label, r.murmur2, murmur2(&r.key)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "murmur2 differs from Java:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn partition_for_key_matches_java_default_partitioner() {
    for row in rows() {
        for (n, expected) in PARTITION_COUNTS.iter().zip(row.partitions) {
            assert_eq!(
                partition_for_key(&row.key, *n),
                expected,
                "key {} with {n} partitions",
                row.label
            );
        }
    }
}

/// Guards the fixture itself: if someone trims it, the cases that catch real bugs must stay.
#[test]
fn fixture_covers_every_tail_length_signed_bytes_and_negative_hashes() {
    let rows = rows();
    for len in 0..=8 {
        assert!(
            rows.iter().any(|r| r.key.len() == len),
            "no key of length {len}"
        );
        assert!(
            rows.iter()
                .any(|r| r.key.len() == len && r.key.iter().all(|&b| b >= 0x80))
                || len == 0,
            "no high-byte key of length {len} (catches missing & 0xff masks)"
        );
    }
    assert!(rows.iter().any(|r| r.key.len() > 4096), "no long key");
    assert!(rows
        .iter()
        .any(|r| std::str::from_utf8(&r.key).is_ok_and(|s| !s.is_ascii())));
    assert!(rows.iter().any(|r| r.murmur2 < 0), "no negative hash");
    assert!(rows.len() >= 100);
}
