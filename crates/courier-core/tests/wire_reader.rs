//! The primitives of `courier_core::wire::Reader`, at their boundaries.

use courier_core::wire::{DecodeErrorKind, Reader};

fn kind<T: std::fmt::Debug>(r: Result<T, courier_core::wire::DecodeError>) -> DecodeErrorKind {
    r.unwrap_err().kind().clone()
}

#[test]
fn fixed_width_integers_are_big_endian() {
    let bytes = [
        0xfe, 0x80, 0x01, 0x80, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xde,
        0xad, 0xbe, 0xef, 2,
    ];
    let mut r = Reader::new(&bytes, false);
    assert_eq!(r.i8("a").unwrap(), -2);
    assert_eq!(r.i16("b").unwrap(), -32767);
    assert_eq!(r.i32("c").unwrap(), -2147483648 + 1);
    assert_eq!(
        r.i64("d").unwrap(),
        i64::from_be_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
    );
    assert_eq!(r.u32("e").unwrap(), 0xdeadbeef);
    assert!(r.bool("f").unwrap(), "any non-zero byte is true");
    assert_eq!(r.remaining(), 0);
    assert!(r.finish().is_ok());
    assert_eq!(
        kind(r.i16("g")),
        DecodeErrorKind::UnexpectedEnd { needed: 2, left: 0 }
    );
}

#[test]
fn uuid_is_sixteen_bytes() {
    let bytes: Vec<u8> = (0..17).collect();
    let mut r = Reader::new(&bytes, true);
    let id = r.uuid("topic_id").unwrap();
    assert_eq!(id[0], 0);
    assert_eq!(id[15], 15);
    assert_eq!(r.position(), 16);
    let mut short = Reader::new(&bytes[..15], true);
    assert_eq!(
        kind(short.uuid("topic_id")),
        DecodeErrorKind::UnexpectedEnd {
            needed: 16,
            left: 15
        }
    );
}

#[test]
fn unsigned_varints_at_their_limits() {
    let ok: &[(&[u8], u32)] = &[
        (&[0], 0),
        (&[0x7f], 127),
        (&[0x80, 0x01], 128),
        (&[0xff, 0x7f], 16383),
        (&[0x80, 0x80, 0x01], 16384),
        (&[0xff, 0xff, 0xff, 0xff, 0x0f], u32::MAX),
        // Non-minimal encodings are still valid varints.
        (&[0x80, 0x00], 0),
    ];
    for (bytes, value) in ok {
        let mut r = Reader::new(bytes, true);
        assert_eq!(r.unsigned_varint("v").unwrap(), *value, "{bytes:02x?}");
        assert_eq!(r.remaining(), 0);
    }
    for bad in [
        &[0xff, 0xff, 0xff, 0xff, 0x10][..],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
    ] {
        assert_eq!(
            kind(Reader::new(bad, true).unsigned_varint("v")),
            DecodeErrorKind::VarintOverflow
        );
    }
    assert_eq!(
        kind(Reader::new(&[0x80, 0x80], true).unsigned_varint("v")),
        DecodeErrorKind::UnexpectedEnd { needed: 3, left: 2 }
    );
}

#[test]
fn classic_and_compact_strings() {
    // Classic: int16 length, -1 null.
    let mut r = Reader::new(&[0, 2, b'h', b'i', 0xff, 0xff, 0, 0], false);
    assert_eq!(r.str("a").unwrap(), "hi");
    assert_eq!(r.nullable_string("b").unwrap(), None);
    assert_eq!(r.string("c").unwrap(), "");
    // Compact: varint length + 1, 0 null; 128 bytes take a two-byte length.
    let long = "y".repeat(128);
    let mut bytes = vec![0x81, 0x01];
    bytes.extend_from_slice(long.as_bytes());
    bytes.extend_from_slice(&[0, 1]);
    let mut r = Reader::new(&bytes, true);
    assert_eq!(r.string("a").unwrap(), long);
    assert_eq!(r.nullable_str("b").unwrap(), None);
    assert_eq!(r.str("c").unwrap(), "");
    assert_eq!(
        kind(Reader::new(&[0], true).string("d")),
        DecodeErrorKind::UnexpectedNull
    );
    assert_eq!(
        kind(Reader::new(&[0xff, 0xfe], false).nullable_string("e")),
        DecodeErrorKind::NegativeLength(-2)
    );
    assert_eq!(
        kind(Reader::new(&[4, b'a', b'b'], true).string("f")),
        DecodeErrorKind::LengthTooLong { len: 3, left: 2 }
    );
    assert_eq!(
        kind(Reader::new(&[3, 0xc3, 0x28], true).string("g")),
        DecodeErrorKind::InvalidUtf8
    );
    assert_eq!(
        Reader::new(&[3, 0xc3, 0x28], true)
            .nullable_string_lossy("h")
            .unwrap()
            .as_deref(),
        Some("\u{fffd}(")
    );
}

#[test]
fn classic_and_compact_bytes() {
    let mut r = Reader::new(&[0, 0, 0, 2, 7, 8, 0xff, 0xff, 0xff, 0xff], false);
    assert_eq!(r.bytes("a").unwrap(), &[7, 8]);
    assert_eq!(r.nullable_bytes("b").unwrap(), None);
    let mut r = Reader::new(&[3, 7, 8, 0], true);
    assert_eq!(r.bytes("a").unwrap(), &[7, 8]);
    assert_eq!(r.nullable_bytes("b").unwrap(), None);
    assert_eq!(
        kind(Reader::new(&[0x80, 0, 0, 0], false).bytes("c")),
        DecodeErrorKind::NegativeLength(i64::from(i32::MIN))
    );
}

#[test]
fn array_counts_are_checked_against_the_bytes_left() {
    // Classic: 3 int32 entries need 12 bytes; 12 are there.
    let mut bytes = vec![0, 0, 0, 3];
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    assert_eq!(
        Reader::new(&bytes, false).i32_array("a").unwrap(),
        vec![1, 2, 3]
    );
    // One byte short: refused before reading any entry.
    let e = Reader::new(&bytes[..15], false).i32_array("a").unwrap_err();
    assert_eq!(
        e.kind(),
        &DecodeErrorKind::ArrayTooLong {
            count: 3,
            left: 11,
            min_entry_size: 4
        }
    );
    assert_eq!(e.path(), "a");
    // Compact null and empty.
    let mut r = Reader::new(&[0, 1], true);
    assert_eq!(r.nullable_array_len("b", 4).unwrap(), None);
    assert_eq!(r.nullable_array_len("b", 4).unwrap(), Some(0));
    // A zero minimum entry size counts as one byte.
    assert!(Reader::new(&[0, 0, 0, 2, 0], false)
        .array_len("c", 0)
        .is_err());
}

#[test]
fn later_entries_keep_their_bytes() {
    // Two entries of at least 3 bytes (a compact string then a 2-byte field): the first
    // entry's string may not claim the bytes the second entry needs.
    let bytes = [3, 5, b'a', b'b', b'c', b'd', 0, 0];
    let e = Reader::new(&bytes, true)
        .array("e", 3, |r| {
            let s = r.string("s")?;
            r.i16("n")?;
            Ok(s)
        })
        .unwrap_err();
    assert_eq!(e.path(), "e[0].s");
    assert_eq!(
        e.kind(),
        &DecodeErrorKind::LengthTooLong { len: 4, left: 3 }
    );
}

#[test]
fn tagged_fields_give_each_known_tag_its_exact_bytes() {
    // Three tags: 0 (an int16), 5 (unknown, skipped), 9 (an int32).
    let bytes = [3, 0, 2, 0, 7, 5, 3, 1, 2, 3, 9, 4, 0, 0, 0, 9];
    let mut seen = Vec::new();
    let mut r = Reader::new(&bytes, true);
    r.tagged_fields("t", |tag, sub| {
        match tag {
            0 => seen.push((tag, i64::from(sub.i16("x")?))),
            9 => seen.push((tag, i64::from(sub.i32("y")?))),
            _ => return Ok(false),
        }
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, vec![(0, 7), (9, 9)]);
    assert_eq!(r.remaining(), 0);
    // The sub-reader's offsets are frame offsets.
    let e = Reader::new(&[1, 0, 1, 0], true)
        .tagged_fields("t", |_, sub| sub.i16("x").map(|_| true))
        .unwrap_err();
    assert_eq!(e.offset(), 3);
    // In a classic reader the section does not exist.
    let mut classic = Reader::new(&[9], false);
    classic.skip_tagged_fields("t").unwrap();
    assert_eq!(classic.remaining(), 1);
}
