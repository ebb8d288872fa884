//! Keys must land where librdkafka puts them under the same `partitioner` value.
//!
//! `fixtures/partitioners/librdkafka.tsv` was measured by `fixtures/partitioners/gen.py`:
//! every key produced through the real librdkafka (2.16.0, bundled in confluent-kafka 2.16.1)
//! to topics of 1, 2, 3, 7, 12 and 100 partitions on librdkafka's mock cluster, the partition
//! read from the delivery report. A `*` row is one librdkafka spread over several partitions
//! (it picks at random); this test checks courier routes exactly those at random (or, for
//! records without a key, to the sticky partition, as librdkafka's default does) and every
//! other row to librdkafka's partition.

use std::collections::BTreeSet;

use courier_core::partitioner::{
    PartitionerKind, Placement, StickyPartitioner, TopicPartitions, XorShiftRng,
};

const TABLE: &str = include_str!("fixtures/partitioners/librdkafka.tsv");
const PARTITION_COUNTS: [i32; 6] = [1, 2, 3, 7, 12, 100];

/// The librdkafka values; `default` and `ignore_keys` are courier's (Java's) own.
const LIBRDKAFKA_VALUES: [&str; 7] = [
    "random",
    "consistent",
    "consistent_random",
    "murmur2",
    "murmur2_random",
    "fnv1a",
    "fnv1a_random",
];

struct Row {
    partitioner: String,
    label: String,
    key: Option<Vec<u8>>,
    /// `None` where librdkafka chose at random.
    partitions: Option<[i32; 6]>,
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
            assert_eq!(cols.len(), 9, "malformed fixture row: {line:?}");
            let cells = &cols[3..];
            let partitions = if cells.iter().all(|c| *c == "*") {
                None
            } else {
                let parsed: Vec<i32> = cells
                    .iter()
                    .map(|c| c.parse().expect("fixture partition"))
                    .collect();
                Some(parsed.try_into().expect("six columns"))
            };
            Row {
                partitioner: cols[0].to_string(),
                label: cols[1].to_string(),
                key: (cols[2] != "-").then(|| decode_hex(cols[2])),
                partitions,
            }
        })
        .collect()
}

fn kind(row: &Row) -> PartitionerKind {
    PartitionerKind::from_name(&row.partitioner)
        .unwrap_or_else(|| panic!("unknown partitioner {:?} in fixture", row.partitioner))
}

#[test]
fn every_key_lands_on_librdkafkas_partition() {
    let mut mismatches = Vec::new();
    let mut rng = XorShiftRng::new(2_016);
    for row in rows().iter().filter(|r| r.partitions.is_some()) {
        let kind = kind(row);
        let key = row.key.as_deref();
        for (&n, &expected) in PARTITION_COUNTS.iter().zip(&row.partitions.unwrap()) {
            // The hash must not depend on availability or sticky state: give it neither.
            let available = [n - 1];
            let topic = TopicPartitions::with_available(n, &available);
            let mut sticky = StickyPartitioner::new(1);
            let placed = kind.partition(key, topic, &mut sticky, &mut rng);
            if placed != Some(Placement::Hashed(expected))
                || kind.hashed_partition(key, n) != Some(expected)
            {
                mismatches.push(format!(
                    "{kind} {} with {n} partitions: librdkafka {expected}, courier {placed:?}",
                    row.label
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} placements differ from librdkafka:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn records_librdkafka_spreads_at_random_are_spread_at_random() {
    let mut rng = XorShiftRng::new(7);
    for row in rows().iter().filter(|r| r.partitions.is_none()) {
        let kind = kind(row);
        let key = row.key.as_deref();
        assert_eq!(
            kind.hashed_partition(key, 100),
            None,
            "{kind} {}",
            row.label
        );
        // The fixture was measured with sticky.partitioning.linger.ms=0, where librdkafka
        // spreads records without a key per record too; by default it keeps them on one
        // partition for a while, which is what courier does (the sticky partitioner), so
        // those rows are checked for stickiness, and the others for a per-record spread.
        let mut sticky = StickyPartitioner::new(1);
        let seen: BTreeSet<i32> = (0..64)
            .map(
                |_| match kind.partition(key, TopicPartitions::all(100), &mut sticky, &mut rng) {
                    Some(Placement::Random(p)) if key.is_some() => p,
                    Some(Placement::Sticky(p)) if key.is_none() => p,
                    other => panic!("{kind} {}: {other:?} is not librdkafka's choice", row.label),
                },
            )
            .collect();
        if key.is_some() {
            assert!(seen.len() > 1, "{kind} {}: always {seen:?}", row.label);
        } else {
            // Nothing was appended, so the sticky partition never had a reason to move.
            assert_eq!(seen.len(), 1, "{kind} {}: {seen:?}", row.label);
        }
    }
}

/// Guards the fixture itself: if someone trims it, the cases that catch real bugs must stay.
#[test]
fn fixture_covers_every_value_count_and_the_keys_that_catch_bugs() {
    let rows = rows();
    assert!(
        TABLE.lines().next().unwrap().contains("librdkafka 2.16.0"),
        "fixture header must name the librdkafka version it was measured with"
    );
    let values: BTreeSet<&str> = rows.iter().map(|r| r.partitioner.as_str()).collect();
    assert_eq!(values, LIBRDKAFKA_VALUES.into_iter().collect());
    for value in LIBRDKAFKA_VALUES {
        let of_value: Vec<&Row> = rows.iter().filter(|r| r.partitioner == value).collect();
        assert!(
            of_value.len() >= 100,
            "{value}: only {} keys",
            of_value.len()
        );
        let has = |pred: &dyn Fn(&[u8]) -> bool| {
            of_value.iter().any(|r| r.key.as_deref().is_some_and(pred))
        };
        assert!(
            of_value.iter().any(|r| r.key.is_none()),
            "{value}: no NULL key"
        );
        assert!(has(&|k| k.is_empty()), "{value}: no empty key");
        assert!(has(&|k| k.len() > 4096), "{value}: no long key");
        assert!(
            has(&|k| std::str::from_utf8(k).is_ok_and(|s| !s.is_ascii())),
            "{value}: no UTF-8 key"
        );
        assert!(has(&|k| k.iter().all(|&b| b >= 0x80) && !k.is_empty()));
        for len in 1..=8 {
            assert!(has(&|k| k.len() == len), "{value}: no key of length {len}");
        }
        // A CRC-32 at or above 2^31 tells an unsigned reduction from a signed one.
        assert!(
            has(&|k| crc32fast::hash(k) >= 1 << 31),
            "{value}: no high CRC"
        );
        // The key whose FNV-1a is 0x80000000, the one case where negation overflows.
        assert!(has(&|k| k == b"jG6mct"), "{value}: no i32::MIN FNV-1a key");
    }
    // The fixture must record both kinds of row for the values that have both.
    for value in ["consistent_random", "murmur2_random", "fnv1a_random"] {
        let of_value = || rows.iter().filter(move |r| r.partitioner == value);
        assert!(
            of_value().any(|r| r.partitions.is_none()),
            "{value}: no random row"
        );
        assert!(
            of_value().any(|r| r.partitions.is_some()),
            "{value}: no hashed row"
        );
    }
}
