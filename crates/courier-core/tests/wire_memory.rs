//! Memory bound of `courier_core::wire`: a decode allocates at most
//! `MAX_HEAP_FACTOR` heap bytes per body byte, plus a small constant for the error.
//!
//! Measured with a counting global allocator. This test binary is the one place that
//! needs `unsafe` (a `GlobalAlloc` impl); the library itself forbids it. Counters are
//! per thread so that the test runner's parallel tests do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use courier_core::wire::{
    decode_response, AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, ApiVersionsResponse,
    DescribeConfigsResponse, EndTxnResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, Response, SaslHandshakeResponse, TxnOffsetCommitResponse, MAX_HEAP_FACTOR,
};
use proptest::prelude::*;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // try_with: the thread-locals may be gone while a thread shuts down.
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; the wrapper only
// counts sizes in const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as the new block first: a moving realloc holds both for a moment.
            track(new_size as isize);
            track(-(layout.size() as isize));
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Error path allowance: the `DecodeError` and its field path.
const SLACK: usize = 512;

/// Peak heap bytes allocated by `f` above what was live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> usize {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    drop(out);
    peak.max(0) as usize
}

fn assert_bounded<R: Response>(body: &[u8], version: i16) -> usize {
    let peak = peak_of(|| R::decode(body, version));
    assert!(
        peak <= MAX_HEAP_FACTOR * body.len() + SLACK,
        "{} v{version}: {peak} heap bytes for a {}-byte body",
        R::NAME,
        body.len()
    );
    peak
}

#[test]
fn huge_declared_counts_allocate_nothing_big() {
    // The 10-byte ApiVersions frame declaring 2^31-1 entries.
    let frame = [0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff];
    let peak = peak_of(|| decode_response::<ApiVersionsResponse>(&frame, 0).is_err());
    assert!(peak <= SLACK, "{peak} bytes");
    // Metadata v12: topics declaring 2^32-2 entries, and a partitions count of 2^31.
    let mut body = vec![0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(peak_of(|| MetadataResponse::decode(&body, 12).is_err()) <= SLACK);
    body.truncate(9);
    body.extend_from_slice(&[2, 0, 0, 2, b't']);
    body.extend_from_slice(&[0; 17]);
    body.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x08]);
    assert!(peak_of(|| MetadataResponse::decode(&body, 12).is_err()) <= SLACK);
}

/// The worst legitimate ratios: many smallest entries of the structs with the most
/// memory per wire byte.
#[test]
fn smallest_entries_stay_within_the_factor() {
    const N: usize = 2000;
    // Produce v9: N empty topics of 3 bytes each (the worst: 48 bytes each).
    let mut body = vec![0xd1, 0x0f]; // N + 1 = 2001 as a varint
    for _ in 0..N {
        body.extend_from_slice(&[1, 1, 0]);
    }
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    let r = ProduceResponse::decode(&body, 9).unwrap();
    assert_eq!(r.responses.len(), N);
    let peak = assert_bounded::<ProduceResponse>(&body, 9);
    assert!(peak >= N * 48, "the bound is tight: {peak}");

    // DescribeConfigs v4: one config with N smallest synonyms (56 bytes each).
    // throttle, results: 1 (error, null message, type, empty name, configs: 1)
    let mut body = vec![0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 2];
    // config: empty name, null value, three flags, synonyms: N
    body.extend_from_slice(&[1, 0, 0, 0, 0]);
    body.extend_from_slice(&[0xd1, 0x0f]);
    for _ in 0..N {
        body.extend_from_slice(&[1, 0, 0, 0]);
    }
    // config_type, null documentation, config tags, result tags, top-level tags
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    let r = DescribeConfigsResponse::decode(&body, 4).unwrap();
    assert_eq!(r.results[0].configs[0].synonyms.len(), N);
    assert_bounded::<DescribeConfigsResponse>(&body, 4);

    // SaslHandshake: N empty mechanisms of 2 bytes (24 bytes each).
    let mut body = vec![0, 0];
    body.extend_from_slice(&(N as i32).to_be_bytes());
    body.extend(std::iter::repeat_n(0u8, 2 * N));
    assert_bounded::<SaslHandshakeResponse>(&body, 0);

    // AddPartitionsToTxn v3 and TxnOffsetCommit v3: N empty topics of 3 bytes (48 bytes
    // each, the same shape as a Produce topic).
    let mut body = vec![0, 0, 0, 0, 0xd1, 0x0f];
    for _ in 0..N {
        body.extend_from_slice(&[1, 1, 0]);
    }
    body.push(0);
    let r = AddPartitionsToTxnResponse::decode(&body, 3).unwrap();
    assert_eq!(r.results_by_topic_v3_and_below.len(), N);
    let peak = assert_bounded::<AddPartitionsToTxnResponse>(&body, 3);
    assert!(peak >= N * 48, "the bound is tight: {peak}");
    let r = TxnOffsetCommitResponse::decode(&body, 3).unwrap();
    assert_eq!(r.topics.len(), N);
    assert_bounded::<TxnOffsetCommitResponse>(&body, 3);

    // FindCoordinator v4: N smallest coordinators of 14 bytes.
    let mut body = vec![0, 0, 0, 0, 0xd1, 0x0f];
    for _ in 0..N {
        body.extend_from_slice(&[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    body.push(0);
    let r = FindCoordinatorResponse::decode(&body, 4).unwrap();
    assert_eq!(r.coordinators.len(), N);
    assert_bounded::<FindCoordinatorResponse>(&body, 4);
}

/// AddPartitionsToTxn v2 (classic encodings): a topic count of 2^31-1, then a first
/// topic whose partitions declare 2^31-1 too: refused before anything is reserved.
#[test]
fn transaction_replies_with_huge_counts_allocate_nothing_big() {
    let mut body = vec![0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
    assert!(peak_of(|| AddPartitionsToTxnResponse::decode(&body, 2).is_err()) <= SLACK);
    assert!(peak_of(|| TxnOffsetCommitResponse::decode(&body, 2).is_err()) <= SLACK);
    body.truncate(4);
    body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff]);
    body.extend_from_slice(&[0; 64]);
    assert!(peak_of(|| AddPartitionsToTxnResponse::decode(&body, 2).is_err()) <= SLACK);
    assert!(peak_of(|| TxnOffsetCommitResponse::decode(&body, 2).is_err()) <= SLACK);
    // FindCoordinator v6: coordinators declaring 2^32-2 entries.
    let body = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0];
    assert!(peak_of(|| FindCoordinatorResponse::decode(&body, 6).is_err()) <= SLACK);
}

/// Nested arrays each declaring as many entries as the bytes allow: without the bytes
/// owed to later entries being held back, results, configs and synonyms would each
/// reserve against the same bytes (about 37 heap bytes per body byte).
#[test]
fn nested_maximal_counts_do_not_add_up() {
    let left = 4000usize;
    let varint = |mut v: usize| {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    };
    // results: left / 7 entries; its first: error, message, type, name, then configs of
    // left / 9 entries; the first config: name, value, flags, then synonyms of left / 4.
    let mut body = vec![0, 0, 0, 0];
    body.extend(varint(left / 7 + 1));
    body.extend_from_slice(&[0, 0, 0, 0, 1]);
    body.extend(varint(left / 9 + 1));
    body.extend_from_slice(&[1, 1, 0, 0, 0]);
    body.extend(varint(left / 4 + 1));
    body.extend(std::iter::repeat_n(0u8, left));
    assert!(DescribeConfigsResponse::decode(&body, 4).is_err());
    assert_bounded::<DescribeConfigsResponse>(&body, 4);
}

/// Number of allocations `f` makes.
fn allocations_of<T>(f: impl FnOnce() -> T) -> usize {
    let start = ALLOCATIONS.with(Cell::get);
    let out = f();
    let n = ALLOCATIONS.with(Cell::get) - start;
    drop(out);
    n
}

/// The hot path: a Produce reply allocates the topic list, and per topic its name and
/// its partition list, whatever the number of partitions; a partition allocates only
/// for an error message or record errors.
#[test]
fn produce_decode_allocates_per_topic_not_per_partition() {
    // Produce v11: 2 topics of 100 successful partitions each.
    let mut body = vec![3];
    for name in [&b"orders"[..], b"payments"] {
        body.push(name.len() as u8 + 1);
        body.extend_from_slice(name);
        body.push(101);
        for i in 0..100i32 {
            body.extend_from_slice(&i.to_be_bytes());
            body.extend_from_slice(&[0, 0]); // error_code
            body.extend_from_slice(&42i64.to_be_bytes()); // base_offset
            body.extend_from_slice(&(-1i64).to_be_bytes()); // log_append_time_ms
            body.extend_from_slice(&0i64.to_be_bytes()); // log_start_offset
            body.extend_from_slice(&[1, 0, 0]); // record_errors: [], error_message: null, tags
        }
        body.push(0); // topic tags
    }
    body.extend_from_slice(&[0, 0, 0, 0, 0]); // throttle, tags
    let r = ProduceResponse::decode(&body, 11).unwrap();
    assert_eq!(r.partition_count(), 200);
    assert_eq!(
        allocations_of(|| ProduceResponse::decode(&body, 11)),
        1 + 2 * 2
    );
}

fn arbitrary_version(selector: u8, min: i16, max: i16) -> i16 {
    min + i16::from(selector) % (max - min + 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random bodies of repeated hostile bytes (long runs of 0x01 and 0x7f look like
    /// counts and lengths everywhere) never break the bound, whatever the decoder.
    #[test]
    fn random_bodies_stay_within_the_factor(
        selector in any::<u8>(),
        body in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0x7f), any::<u8>()], 0..2048),
    ) {
        assert_bounded::<ProduceResponse>(&body, arbitrary_version(selector, 3, 12));
        assert_bounded::<MetadataResponse>(&body, arbitrary_version(selector, 4, 13));
        assert_bounded::<DescribeConfigsResponse>(&body, arbitrary_version(selector, 1, 4));
        assert_bounded::<ApiVersionsResponse>(&body, arbitrary_version(selector, 0, 3));
        assert_bounded::<SaslHandshakeResponse>(&body, arbitrary_version(selector, 0, 1));
        assert_bounded::<FindCoordinatorResponse>(&body, arbitrary_version(selector, 0, 6));
        assert_bounded::<AddPartitionsToTxnResponse>(&body, arbitrary_version(selector, 0, 3));
        assert_bounded::<AddOffsetsToTxnResponse>(&body, arbitrary_version(selector, 0, 4));
        assert_bounded::<TxnOffsetCommitResponse>(&body, arbitrary_version(selector, 0, 5));
        assert_bounded::<EndTxnResponse>(&body, arbitrary_version(selector, 0, 5));
    }
}
