//! Choosing the partition of a record, compatible with the Java client.
//!
//! A record's partition is decided in this order, the same order as the Java producer's
//! built-in partitioner (KIP-794):
//!
//! 1. **An explicit partition on the record wins.** The caller uses it as given (after checking
//!    it against the topic's partition count); nothing in this module is consulted.
//! 2. **A record with a key** goes to [`partition_for_key`]: `(murmur2(key) & 0x7fffffff) % n`,
//!    bit-for-bit the Java default. Keyed records written by courier and by a Java, Kafka
//!    Streams or librdkafka (`partitioner=murmur2_random`) producer land on the same partition,
//!    which is what log compaction and per-key ordering across clients rely on. An empty key
//!    (`Some(&[])`) is a key: it hashes like any other, as in Java.
//! 3. **A record without a key** goes to the [`StickyPartitioner`], which keeps sending to one
//!    partition until about a batch worth of bytes went there, then moves on (KIP-480, refined
//!    by KIP-794).
//!
//! Everything here is sans-I/O: no clock, no global random generator. The caller passes the
//! partition count and the partitions that currently have a reachable leader, and a
//! [`RandomSource`] (for example the seedable [`XorShiftRng`]), so tests and simulations are
//! deterministic.

/// Kafka's 32-bit MurmurHash2, byte-for-byte the same as Java's `Utils.murmur2`.
///
/// The seed (`0x9747b28c`) and the treatment of the trailing 1-3 bytes are fixed by the Java
/// client: any difference would silently send keyed records to different partitions than
/// other clients use. Checked against values printed by the real `kafka-clients` jar in
/// `tests/fixtures/murmur2/`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java computes in `int` with wrapping arithmetic; u32 with wrapping ops gives the same bits.
    // The length is mixed in as a Java int, so keys longer than i32::MAX bytes cannot occur
    // there; truncating mirrors what Java would do if they could.
    let mut h: u32 = SEED ^ (data.len() as u32);

    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    // The tail folds in the remaining bytes little-endian, then multiplies once (Java's
    // fall-through switch).
    let tail = blocks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit.
///
/// This is a mask, not an absolute value: `to_positive(i32::MIN)` is `0` and
/// `to_positive(-1)` is `i32::MAX`. Using `abs` instead would move some keys to other
/// partitions than the Java client picks.
pub const fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record: `to_positive(murmur2(key)) % num_partitions`, exactly as
/// Java's `BuiltInPartitioner.partitionForKey` (the default since Kafka 0.8.2).
///
/// # Panics
///
/// If `num_partitions` is not positive (Java throws `ArithmeticException` for zero). A topic
/// from metadata always has at least one partition; check before calling if in doubt.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    assert!(
        num_partitions > 0,
        "partition_for_key: num_partitions must be positive, got {num_partitions}"
    );
    to_positive(murmur2(key)) % num_partitions
}

/// A source of uniformly distributed random numbers, supplied by the caller.
///
/// The partitioner never reaches for a global or thread-local generator: the caller decides
/// (a seeded [`XorShiftRng`] in tests and simulations, any good generator in production).
pub trait RandomSource {
    /// Returns the next 32 uniformly distributed random bits.
    fn next_u32(&mut self) -> u32;
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn next_u32(&mut self) -> u32 {
        (**self).next_u32()
    }
}

/// A small, fast, seedable generator (xorshift64*), good enough to spread partitions.
///
/// Not cryptographically secure, and not meant to be: the only requirement is that switching
/// partitions is not biased and that a seed reproduces a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorShiftRng {
    state: u64,
}

impl XorShiftRng {
    /// Creates a generator from `seed`. Any seed is accepted; xorshift cannot leave the
    /// all-zero state, so a zero seed is replaced by a fixed non-zero constant.
    pub const fn new(seed: u64) -> Self {
        let state = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        Self { state }
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        // Vigna, "An experimental exploration of Marsaglia's xorshift generators, scrambled".
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl RandomSource for XorShiftRng {
    fn next_u32(&mut self) -> u32 {
        // The high half of xorshift64* is its best-quality part.
        (self.next_u64() >> 32) as u32
    }
}

/// A uniform index in `0..n` (n > 0) without the modulo bias of `r % n` (Lemire's
/// multiply-shift; the remaining bias is below n / 2^32).
fn uniform_index<R: RandomSource + ?Sized>(rng: &mut R, n: usize) -> usize {
    debug_assert!(n > 0);
    ((u64::from(rng.next_u32()) * n as u64) >> 32) as usize
}

/// The partitions of one topic as the partitioner needs to see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicPartitions<'a> {
    count: i32,
    available: &'a [i32],
}

impl<'a> TopicPartitions<'a> {
    /// A topic with `count` partitions, all treated as available.
    pub const fn all(count: i32) -> Self {
        Self {
            count,
            available: &[],
        }
    }

    /// A topic with `count` partitions of which only `available` currently have a known,
    /// reachable leader (Java's `availablePartitionsForTopic`).
    ///
    /// `available` must be sorted ascending, without duplicates, with every id in
    /// `0..count`. An empty list means "nothing known to be available": the partitioner then
    /// spreads over all partitions rather than stalling, as the Java client does.
    pub fn with_available(count: i32, available: &'a [i32]) -> Self {
        debug_assert!(
            available.windows(2).all(|w| w[0] < w[1]),
            "available partitions must be sorted and unique"
        );
        debug_assert!(
            available.iter().all(|&p| (0..count).contains(&p)),
            "available partitions must be in 0..count"
        );
        Self { count, available }
    }

    /// The number of partitions of the topic.
    pub const fn count(&self) -> i32 {
        self.count
    }

    /// Whether `partition` exists and may be chosen.
    fn is_candidate(&self, partition: i32) -> bool {
        (0..self.count).contains(&partition)
            && (self.available.is_empty() || self.available.binary_search(&partition).is_ok())
    }

    /// The candidates as (how many, the id of the i-th).
    fn candidate_count(&self) -> usize {
        if self.available.is_empty() {
            self.count.max(0) as usize
        } else {
            self.available.len()
        }
    }

    fn candidate(&self, index: usize) -> i32 {
        if self.available.is_empty() {
            index as i32
        } else {
            self.available[index]
        }
    }

    fn candidate_index(&self, partition: i32) -> Option<usize> {
        if self.available.is_empty() {
            (0..self.count)
                .contains(&partition)
                .then_some(partition as usize)
        } else {
            self.available.binary_search(&partition).ok()
        }
    }
}

/// The partition choice for records without a key, for one topic (sticky partitioning).
///
/// Spreading unkeyed records one by one over all partitions makes many tiny batches; sticking
/// to one partition fills batches and cuts latency and broker load (KIP-480). KIP-480 switched
/// partitions whenever a new batch was created, which sent *more* data to partitions on slow
/// brokers (their batches stay open longer); KIP-794 fixed this by switching after a fixed
/// number of bytes, `batch.size`, went to the partition. This type follows KIP-794:
///
/// * [`partition`](Self::partition) returns the current sticky partition, choosing one at
///   random among the available partitions when there is none (or when the current one lost
///   its leader: records for a leaderless partition would only wait there);
/// * the caller reports every unkeyed append with [`record_appended`](Self::record_appended)
///   and every sealed batch (full, or closed by `linger.ms`) with
///   [`batch_completed`](Self::batch_completed);
/// * once `sticky_batch_size` bytes went to the partition, it switches at the next batch
///   boundary, so the bytes line up with whole batches; if no boundary comes, it switches
///   anyway at twice that size (the same cap as the Java client, which protects against a mix
///   of keyed and unkeyed records keeping a batch open forever).
///
/// A switch picks a partition other than the previous one when there is a choice, so a
/// "switch" always moves the load.
///
/// Adaptive weighting by queue depth (`partitioner.adaptive.partitioning.enable` in Java) is
/// not implemented: the choice among available partitions is uniform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyPartitioner {
    sticky_batch_size: usize,
    current: Option<i32>,
    produced_bytes: usize,
    /// Set when the threshold was reached; the switch happens on the next `partition` call so
    /// the choice uses the freshest availability.
    switch_pending: bool,
}

impl StickyPartitioner {
    /// A partitioner that moves on after about `sticky_batch_size` bytes (use `batch.size`).
    /// A size of zero is treated as one byte: switch at every batch boundary.
    pub fn new(sticky_batch_size: usize) -> Self {
        Self {
            sticky_batch_size: sticky_batch_size.max(1),
            current: None,
            produced_bytes: 0,
            switch_pending: false,
        }
    }

    /// The partition chosen for unkeyed records right now, if one has been chosen.
    pub const fn current(&self) -> Option<i32> {
        self.current
    }

    /// Bytes appended to the current partition since it was chosen.
    pub const fn produced_bytes(&self) -> usize {
        self.produced_bytes
    }

    /// The partition for the next unkeyed record of this topic.
    ///
    /// Keeps the current sticky partition while it still exists and is available and no switch
    /// is due; otherwise picks a new one with `rng`. Returns `None` only if the topic has no
    /// partitions.
    pub fn partition<R: RandomSource + ?Sized>(
        &mut self,
        topic: TopicPartitions<'_>,
        rng: &mut R,
    ) -> Option<i32> {
        if let Some(current) = self.current {
            if !self.switch_pending && topic.is_candidate(current) {
                return Some(current);
            }
        }
        let next = Self::choose(topic, self.current, rng)?;
        self.current = Some(next);
        self.produced_bytes = 0;
        self.switch_pending = false;
        Some(next)
    }

    /// Reports that `bytes` of an unkeyed record were appended to `partition`.
    ///
    /// Appends to other partitions (keyed records, explicit partitions, or a record routed just
    /// before a switch) do not count.
    pub fn record_appended(&mut self, partition: i32, bytes: usize) {
        if self.current != Some(partition) {
            return;
        }
        self.produced_bytes = self.produced_bytes.saturating_add(bytes);
        if self.produced_bytes >= self.sticky_batch_size.saturating_mul(2) {
            self.switch_pending = true;
        }
    }

    /// Reports that the open batch of `partition` was sealed (it is full, or `linger.ms`
    /// expired and it is being sent). If enough bytes went to the current sticky partition,
    /// the next unkeyed record goes elsewhere.
    pub fn batch_completed(&mut self, partition: i32) {
        if self.current == Some(partition) && self.produced_bytes >= self.sticky_batch_size {
            self.switch_pending = true;
        }
    }

    /// Forgets the current partition, e.g. after the topic was deleted and recreated.
    pub fn reset(&mut self) {
        self.current = None;
        self.produced_bytes = 0;
        self.switch_pending = false;
    }

    fn choose<R: RandomSource + ?Sized>(
        topic: TopicPartitions<'_>,
        previous: Option<i32>,
        rng: &mut R,
    ) -> Option<i32> {
        let n = topic.candidate_count();
        if n == 0 {
            return None;
        }
        // Leave the previous partition out when there is another one to go to.
        match previous.and_then(|p| topic.candidate_index(p)) {
            Some(skip) if n > 1 => {
                let mut i = uniform_index(rng, n - 1);
                if i >= skip {
                    i += 1;
                }
                Some(topic.candidate(i))
            }
            _ => Some(topic.candidate(uniform_index(rng, n))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that replays fixed numbers, to pin down exactly which index is chosen.
    struct Scripted(Vec<u32>);

    impl RandomSource for Scripted {
        fn next_u32(&mut self) -> u32 {
            self.0.remove(0)
        }
    }

    #[test]
    fn to_positive_masks_the_sign_bit_instead_of_negating() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(-2), i32::MAX - 1);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    #[should_panic(expected = "num_partitions must be positive")]
    fn partition_for_key_rejects_zero_partitions() {
        partition_for_key(b"k", 0);
    }

    #[test]
    fn partition_for_key_with_one_partition_is_always_zero() {
        for key in [&b""[..], b"a", b"some key", &[0xff; 9]] {
            assert_eq!(partition_for_key(key, 1), 0);
        }
    }

    #[test]
    fn xorshift_is_reproducible_from_its_seed_and_zero_seed_is_usable() {
        let a: Vec<u64> = {
            let mut r = XorShiftRng::new(42);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let mut r = XorShiftRng::new(42);
        let b: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);

        let mut z = XorShiftRng::new(0);
        let first = z.next_u64();
        assert_ne!(first, 0);
        assert_ne!(first, z.next_u64());
    }

    #[test]
    fn uniform_index_maps_extremes_to_first_and_last() {
        assert_eq!(uniform_index(&mut Scripted(vec![0]), 7), 0);
        assert_eq!(uniform_index(&mut Scripted(vec![u32::MAX]), 7), 6);
    }

    #[test]
    fn sticks_to_one_partition_until_threshold_and_batch_boundary() {
        let mut rng = XorShiftRng::new(7);
        let topic = TopicPartitions::all(6);
        let mut sp = StickyPartitioner::new(100);
        let first = sp.partition(topic, &mut rng).unwrap();

        // 99 bytes and a sealed batch: under the threshold, stay.
        sp.record_appended(first, 99);
        sp.batch_completed(first);
        assert_eq!(sp.partition(topic, &mut rng), Some(first));

        // Threshold reached but the batch is still open: stay, to keep batches whole.
        sp.record_appended(first, 1);
        assert_eq!(sp.partition(topic, &mut rng), Some(first));

        // The batch is sealed: move to another partition.
        sp.batch_completed(first);
        let second = sp.partition(topic, &mut rng).unwrap();
        assert_ne!(second, first);
        assert_eq!(sp.produced_bytes(), 0);
    }

    #[test]
    fn switches_at_twice_the_threshold_even_without_a_batch_boundary() {
        let mut rng = XorShiftRng::new(11);
        let topic = TopicPartitions::all(4);
        let mut sp = StickyPartitioner::new(100);
        let first = sp.partition(topic, &mut rng).unwrap();
        sp.record_appended(first, 199);
        assert_eq!(sp.partition(topic, &mut rng), Some(first));
        sp.record_appended(first, 1);
        assert_ne!(sp.partition(topic, &mut rng), Some(first));
    }

    #[test]
    fn appends_to_other_partitions_do_not_count() {
        let mut rng = XorShiftRng::new(3);
        let topic = TopicPartitions::all(4);
        let mut sp = StickyPartitioner::new(10);
        let first = sp.partition(topic, &mut rng).unwrap();
        let other = (first + 1) % 4;
        sp.record_appended(other, 1_000);
        sp.batch_completed(other);
        assert_eq!(sp.produced_bytes(), 0);
        assert_eq!(sp.partition(topic, &mut rng), Some(first));
    }

    #[test]
    fn never_picks_an_unavailable_partition_while_some_are_available() {
        let available = [1, 4];
        let topic = TopicPartitions::with_available(6, &available);
        let mut rng = XorShiftRng::new(99);
        let mut sp = StickyPartitioner::new(1);
        for _ in 0..1_000 {
            let p = sp.partition(topic, &mut rng).unwrap();
            assert!(available.contains(&p), "picked unavailable partition {p}");
            sp.record_appended(p, 1);
            sp.batch_completed(p);
        }
    }

    #[test]
    fn leaves_a_partition_that_lost_its_leader_immediately() {
        let mut rng = XorShiftRng::new(5);
        let mut sp = StickyPartitioner::new(1_000_000);
        let first = sp.partition(TopicPartitions::all(3), &mut rng).unwrap();
        let others: Vec<i32> = (0..3).filter(|&p| p != first).collect();
        let now = sp
            .partition(TopicPartitions::with_available(3, &others), &mut rng)
            .unwrap();
        assert_ne!(now, first);
    }

    #[test]
    fn spreads_over_all_partitions_when_none_is_known_available() {
        let mut rng = XorShiftRng::new(1);
        let mut sp = StickyPartitioner::new(1);
        let mut seen = [false; 5];
        for _ in 0..500 {
            let p = sp
                .partition(TopicPartitions::with_available(5, &[]), &mut rng)
                .unwrap();
            seen[p as usize] = true;
            sp.record_appended(p, 1);
            sp.batch_completed(p);
        }
        assert!(
            seen.iter().all(|&s| s),
            "not every partition was used: {seen:?}"
        );
    }

    #[test]
    fn switch_always_moves_to_a_different_partition_when_there_is_one() {
        let mut rng = XorShiftRng::new(1234);
        let topic = TopicPartitions::all(2);
        let mut sp = StickyPartitioner::new(1);
        let mut last = sp.partition(topic, &mut rng).unwrap();
        for _ in 0..100 {
            sp.record_appended(last, 1);
            sp.batch_completed(last);
            let next = sp.partition(topic, &mut rng).unwrap();
            assert_ne!(next, last);
            last = next;
        }
    }

    #[test]
    fn single_partition_topic_keeps_switching_to_itself() {
        let mut rng = XorShiftRng::new(8);
        let topic = TopicPartitions::all(1);
        let mut sp = StickyPartitioner::new(1);
        for _ in 0..10 {
            assert_eq!(sp.partition(topic, &mut rng), Some(0));
            sp.record_appended(0, 5);
            sp.batch_completed(0);
        }
    }

    #[test]
    fn topic_without_partitions_yields_none() {
        let mut sp = StickyPartitioner::new(16_384);
        assert_eq!(
            sp.partition(TopicPartitions::all(0), &mut XorShiftRng::new(1)),
            None
        );
        assert_eq!(sp.current(), None);
    }

    #[test]
    fn partition_count_shrinking_below_current_forces_a_new_choice() {
        // Happens when a topic is deleted and recreated with fewer partitions.
        let mut sp = StickyPartitioner::new(1_000);
        let mut rng = Scripted(vec![u32::MAX, 0]);
        assert_eq!(sp.partition(TopicPartitions::all(8), &mut rng), Some(7));
        assert_eq!(sp.partition(TopicPartitions::all(3), &mut rng), Some(0));
    }

    #[test]
    fn uniform_over_many_switches() {
        // Each of 4 partitions should get close to a quarter of 40 000 switches.
        let mut rng = XorShiftRng::new(2024);
        let topic = TopicPartitions::all(4);
        let mut sp = StickyPartitioner::new(1);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            let p = sp.partition(topic, &mut rng).unwrap();
            counts[p as usize] += 1;
            sp.record_appended(p, 1);
            sp.batch_completed(p);
        }
        for c in counts {
            assert!(
                (9_000..=11_000).contains(&c),
                "skewed distribution {counts:?}"
            );
        }
    }
}
