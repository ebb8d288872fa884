//! Choosing the partition of a record, compatible with the Java client and with librdkafka.
//!
//! A record's partition is decided in this order, the same order as the Java producer's
//! built-in partitioner (KIP-794) and librdkafka's `rd_kafka_msg_partitioner`:
//!
//! 1. **An explicit partition on the record wins.** The caller uses it as given (after checking
//!    it against the topic's partition count); nothing in this module is consulted.
//! 2. **Otherwise the `partitioner` setting decides**, through [`PartitionerKind::partition`]:
//!    a key hash, the topic's [`StickyPartitioner`], or a fresh random choice, as in the table
//!    below.
//!
//! # The `partitioner` values
//!
//! `default` and `ignore_keys` are the Java client's two behaviours; the other seven are
//! librdkafka's values with librdkafka's placement of keys, so that moving a producer from
//! librdkafka (or kcat, confluent-kafka-python, ...) to courier with the same setting keeps
//! every key on its partition. `n` is the topic's partition count. "Empty" is a present key of
//! zero bytes (`Some(&[])`), "none" a record without a key (`None`).
//!
//! | value | non-empty key | empty key | no key |
//! | --- | --- | --- | --- |
//! | `default` (Java's default) | murmur2 | murmur2 (of zero bytes) | sticky |
//! | `ignore_keys` (Java's `partitioner.ignore.keys=true`) | sticky | sticky | sticky |
//! | `random` | random | random | sticky |
//! | `consistent` | CRC-32 | partition 0 | partition 0 |
//! | `consistent_random` (librdkafka's default) | CRC-32 | random | sticky |
//! | `murmur2` | murmur2 | murmur2 (of zero bytes) | murmur2 (of zero bytes) |
//! | `murmur2_random` | murmur2 | murmur2 (of zero bytes) | sticky |
//! | `fnv1a` | FNV-1a | FNV-1a (of zero bytes) | FNV-1a (of zero bytes) |
//! | `fnv1a_random` | FNV-1a | FNV-1a (of zero bytes) | sticky |
//!
//! * **murmur2** is `(murmur2(key) & 0x7fffffff) % n` ([`partition_for_key`]): Java's
//!   `BuiltInPartitioner.partitionForKey` and librdkafka's `rd_kafka_msg_partitioner_murmur2`
//!   (`rd_murmur2` is the same hash with the same seed). Zero bytes hash to `275646681`.
//! * **CRC-32** is `crc32(key) % n` computed in `u32`: librdkafka's `rd_crc32` is zlib's
//!   CRC-32 (reflected polynomial `0xedb88320`, initial and final XOR `0xffffffff`, the one
//!   of gzip and PNG, *not* the CRC-32C of record batches), and
//!   `rd_kafka_msg_partitioner_consistent` takes its modulo unsigned. The CRC of zero bytes is
//!   0, hence partition 0 for empty and absent keys.
//! * **FNV-1a** is 32-bit FNV-1a (offset basis `0x811c9dc5`, prime `0x01000193`), read as
//!   an `i32`, made non-negative by negation (librdkafka's `rd_fnv1a` copies Sarama's
//!   `NewHashPartitioner`), then `% n` unsigned. Negating `i32::MIN` overflows in C and leaves
//!   it `0x80000000`, so that hash reduces as `2^31 % n`; this module does the same with
//!   [`i32::unsigned_abs`]. Zero bytes hash to `0x811c9dc5`, i.e. `0x7ee3623b % n`.
//! * **sticky** is the topic's [`StickyPartitioner`]: one partition until about `batch.size`
//!   bytes went there (KIP-480, refined by KIP-794).
//! * **random** is a uniform choice among the available partitions, made again for every
//!   record, and it leaves the sticky state alone.
//!
//! Key hashes use every partition of the topic, available or not, as both Java and librdkafka
//! do: a key's partition must not depend on which leaders happen to be reachable, so keyed
//! records wait for their partition's leader instead of moving. Random and sticky choices only
//! go to available partitions (all partitions if none is known to be available).
//!
//! ## Records without a key under the random values
//!
//! librdkafka 1.6 and later sends records *without a key* under `random` and the `*_random`
//! values to one randomly chosen partition for `sticky.partitioning.linger.ms` (by default
//! twice `linger.ms`, 10 ms) at a time (`rd_kafka_msg_sticky_partition`), and only spreads
//! them per record with that setting at 0; present keys under `random`, and empty keys under
//! `consistent_random`, are spread per record either way. courier keeps librdkafka's default
//! behaviour with its own sticky partitioner, which switches after about `batch.size` bytes
//! (KIP-794) instead of after a time: the "sticky" cells above. No key is placed differently.
//!
//! A random choice never goes to an unavailable partition while some partition is available.
//! librdkafka's `rd_kafka_msg_partitioner_random` draws once, draws again if the first
//! partition has no leader, and keeps the second draw even if it has none either.
//!
//! Everything here is sans-I/O: no clock, no global random generator. The caller passes the
//! partition count and the partitions that currently have a reachable leader, and a
//! [`RandomSource`] (for example the seedable [`XorShiftRng`]), so tests and simulations are
//! deterministic.
//!
//! `tests/fixtures/partitioners/librdkafka.tsv` holds where the real librdkafka (2.16.0) put
//! 110 keys for each of its seven values and 1 to 100 partitions, and
//! `tests/librdkafka_partitioners.rs` checks every row against [`PartitionerKind`].

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

/// The `partitioner` setting: how a record without an explicit partition is placed.
///
/// See the [module documentation](self) for the table of what each value does with keyed,
/// empty-keyed and unkeyed records, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PartitionerKind {
    /// `default`: the Java client's default. Keys (empty ones included) by murmur2, records
    /// without a key by the sticky partitioner.
    #[default]
    Default,
    /// `ignore_keys`: Java's `partitioner.ignore.keys=true` (KIP-794). Every record goes to
    /// the sticky partitioner, keyed or not; per-key ordering is lost.
    IgnoreKeys,
    /// `random` (librdkafka): every record to a random available partition; keys are ignored.
    Random,
    /// `consistent` (librdkafka): keys by CRC-32; empty and absent keys to partition 0.
    Consistent,
    /// `consistent_random` (librdkafka's default): keys by CRC-32; empty and absent keys to a
    /// random available partition.
    ConsistentRandom,
    /// `murmur2` (librdkafka): keys by murmur2 as Java; absent keys hash as the empty key.
    Murmur2,
    /// `murmur2_random` (librdkafka): keys (empty ones included) by murmur2 as Java; absent
    /// keys to a random available partition.
    Murmur2Random,
    /// `fnv1a` (librdkafka): keys by FNV-1a; absent keys hash as the empty key.
    Fnv1a,
    /// `fnv1a_random` (librdkafka): keys (empty ones included) by FNV-1a; absent keys to a
    /// random available partition.
    Fnv1aRandom,
}

/// Where [`PartitionerKind::partition`] put a record, and how it chose.
///
/// The caller reports the append of a [`Placement::Sticky`] record, and only of those, to the
/// topic's [`StickyPartitioner::record_appended`]: as in Java (`RecordAccumulator` updates the
/// built-in partitioner only for records it placed), bytes that went to the sticky partition
/// for another reason must not bring the switch forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Decided by the key's hash: the same key lands here as long as the partition count stays.
    Hashed(i32),
    /// The topic's current sticky partition.
    Sticky(i32),
    /// A uniform random choice among the available partitions, for this record only.
    Random(i32),
}

impl Placement {
    /// The chosen partition.
    pub const fn partition(self) -> i32 {
        match self {
            Placement::Hashed(p) | Placement::Sticky(p) | Placement::Random(p) => p,
        }
    }
}

/// What a partitioner value does with one key: the single place the table of the module
/// documentation is written down in code.
enum Route<'k> {
    Hash(KeyHash, &'k [u8]),
    Sticky,
    Random,
}

#[derive(Clone, Copy)]
enum KeyHash {
    Murmur2,
    Crc32,
    Fnv1a,
}

impl KeyHash {
    fn partition(self, key: &[u8], num_partitions: i32) -> i32 {
        debug_assert!(num_partitions > 0);
        match self {
            KeyHash::Murmur2 => partition_for_key(key, num_partitions),
            KeyHash::Crc32 => consistent_partition(key, num_partitions),
            KeyHash::Fnv1a => fnv1a_partition(key, num_partitions),
        }
    }
}

impl PartitionerKind {
    /// Every value, in the order of the module documentation's table.
    pub const ALL: [PartitionerKind; 9] = [
        PartitionerKind::Default,
        PartitionerKind::IgnoreKeys,
        PartitionerKind::Random,
        PartitionerKind::Consistent,
        PartitionerKind::ConsistentRandom,
        PartitionerKind::Murmur2,
        PartitionerKind::Murmur2Random,
        PartitionerKind::Fnv1a,
        PartitionerKind::Fnv1aRandom,
    ];

    /// The value as written in configuration (`"default"`, `"consistent_random"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            PartitionerKind::Default => "default",
            PartitionerKind::IgnoreKeys => "ignore_keys",
            PartitionerKind::Random => "random",
            PartitionerKind::Consistent => "consistent",
            PartitionerKind::ConsistentRandom => "consistent_random",
            PartitionerKind::Murmur2 => "murmur2",
            PartitionerKind::Murmur2Random => "murmur2_random",
            PartitionerKind::Fnv1a => "fnv1a",
            PartitionerKind::Fnv1aRandom => "fnv1a_random",
        }
    }

    /// The value named `name`, exactly as [`name`](Self::name) spells it (librdkafka compares
    /// case-sensitively too), or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    fn route(self, key: Option<&[u8]>) -> Route<'_> {
        // librdkafka hands an absent key to the non-random hash partitioners as (NULL, 0): they
        // hash zero bytes (`rd_kafka_msg_partitioner` only diverts NULL keys to the sticky path
        // for the *_random values and `random`).
        const NO_KEY: &[u8] = &[];
        match (self, key) {
            (PartitionerKind::Default, Some(k)) => Route::Hash(KeyHash::Murmur2, k),
            (PartitionerKind::Default, None) | (PartitionerKind::IgnoreKeys, _) => Route::Sticky,
            // librdkafka (1.6+, `sticky.partitioning.linger.ms` > 0, the default) sends
            // records *without* a key under `random` and the *_random values to one
            // partition for a while instead of spreading them per record
            // (`rd_kafka_msg_sticky_partition`): batching matters more than the spread.
            // courier's sticky partitioner is that choice, switching after a batch's worth of
            // bytes (KIP-794) instead of after 10 ms.
            (PartitionerKind::Random, None) => Route::Sticky,
            (PartitionerKind::Random, Some(_)) => Route::Random,
            (PartitionerKind::Consistent, k) => Route::Hash(KeyHash::Crc32, k.unwrap_or(NO_KEY)),
            // `rd_kafka_msg_partitioner_consistent_random` tests `keylen == 0`, so an empty key
            // is random too (per record: the sticky path is only for absent keys); the other
            // *_random values test `!key`, so only an absent key leaves the hash.
            (PartitionerKind::ConsistentRandom, None) => Route::Sticky,
            (PartitionerKind::ConsistentRandom, Some([])) => Route::Random,
            (PartitionerKind::ConsistentRandom, Some(k)) => Route::Hash(KeyHash::Crc32, k),
            (PartitionerKind::Murmur2, k) => Route::Hash(KeyHash::Murmur2, k.unwrap_or(NO_KEY)),
            (PartitionerKind::Murmur2Random, None) | (PartitionerKind::Fnv1aRandom, None) => {
                Route::Sticky
            }
            (PartitionerKind::Murmur2Random, Some(k)) => Route::Hash(KeyHash::Murmur2, k),
            (PartitionerKind::Fnv1a, k) => Route::Hash(KeyHash::Fnv1a, k.unwrap_or(NO_KEY)),
            (PartitionerKind::Fnv1aRandom, Some(k)) => Route::Hash(KeyHash::Fnv1a, k),
        }
    }

    /// The partition this value always gives `key` on a topic of `num_partitions`, or `None`
    /// when the record is placed by the sticky partitioner or at random (or the topic has no
    /// partitions). What a tool needs to answer "where does this key go?".
    pub fn hashed_partition(self, key: Option<&[u8]>, num_partitions: i32) -> Option<i32> {
        if num_partitions <= 0 {
            return None;
        }
        match self.route(key) {
            Route::Hash(hash, k) => Some(hash.partition(k, num_partitions)),
            Route::Sticky | Route::Random => None,
        }
    }

    /// Places a record that has no explicit partition.
    ///
    /// `key` is the record's key (`Some(&[])` for an empty one), `topic` the partition count
    /// and availability, `sticky` the topic's sticky state (only read and moved for
    /// [`Placement::Sticky`]; report those appends to it) and `rng` the randomness for sticky
    /// switches and random choices. Returns `None` only if the topic has no partitions.
    ///
    /// `PartitionerKind::Default` is exactly what courier did before the other values existed:
    /// [`partition_for_key`] for a key, `sticky.partition(topic, rng)` without one, and it
    /// draws from `rng` only where that did.
    pub fn partition<R: RandomSource + ?Sized>(
        self,
        key: Option<&[u8]>,
        topic: TopicPartitions<'_>,
        sticky: &mut StickyPartitioner,
        rng: &mut R,
    ) -> Option<Placement> {
        let n = topic.count();
        if n <= 0 {
            return None;
        }
        match self.route(key) {
            Route::Hash(hash, k) => Some(Placement::Hashed(hash.partition(k, n))),
            Route::Sticky => sticky.partition(topic, rng).map(Placement::Sticky),
            Route::Random => random_partition(topic, rng).map(Placement::Random),
        }
    }
}

impl std::fmt::Display for PartitionerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// librdkafka's `consistent` reduction: `rd_crc32(key) % n`, with the CRC an unsigned 32-bit
/// value, so a CRC at or above 2^31 is *not* negative here (unlike Java's `int` hashes).
fn consistent_partition(key: &[u8], num_partitions: i32) -> i32 {
    // crc32fast computes the same CRC-32 as zlib's `crc32`, which librdkafka uses for
    // `rd_crc32` when built with zlib, and as its own table (polynomial 0x04c11db7,
    // reflected) without.
    (crc32fast::hash(key) % num_partitions as u32) as i32
}

/// 32-bit FNV-1a (Fowler, Noll, Vo): for each byte, XOR it in, then multiply by the prime.
fn fnv1a_32(data: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    data.iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

/// librdkafka's `fnv1a` reduction: the hash as an `i32`, negated when negative (`rd_fnv1a`
/// does this to match Sarama's hash partitioner), then `% n` unsigned.
///
/// `unsigned_abs` is that negation including its C overflow: `-i32::MIN` stays `0x80000000`,
/// which as the `uint32_t` librdkafka returns is 2^31.
fn fnv1a_partition(key: &[u8], num_partitions: i32) -> i32 {
    (fnv1a_non_negative(key) % num_partitions as u32) as i32
}

fn fnv1a_non_negative(key: &[u8]) -> u32 {
    (fnv1a_32(key) as i32).unsigned_abs()
}

/// A uniform choice among the candidates of `topic`, for one record.
fn random_partition<R: RandomSource + ?Sized>(
    topic: TopicPartitions<'_>,
    rng: &mut R,
) -> Option<i32> {
    let n = topic.candidate_count();
    (n > 0).then(|| topic.candidate(uniform_index(rng, n)))
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

    // ---- PartitionerKind ----

    /// How a value routed a record, without the partition.
    #[derive(Debug, PartialEq, Eq)]
    enum How {
        Hashed,
        Sticky,
        Random,
    }

    fn how(p: Placement) -> How {
        match p {
            Placement::Hashed(_) => How::Hashed,
            Placement::Sticky(_) => How::Sticky,
            Placement::Random(_) => How::Random,
        }
    }

    #[test]
    fn every_value_routes_absent_empty_and_present_keys_as_the_documented_table() {
        use How::{Hashed as H, Random as R, Sticky as S};
        // (value, no key, empty key, non-empty key): the module documentation's table.
        let table = [
            (PartitionerKind::Default, S, H, H),
            (PartitionerKind::IgnoreKeys, S, S, S),
            (PartitionerKind::Random, S, R, R),
            (PartitionerKind::Consistent, H, H, H),
            (PartitionerKind::ConsistentRandom, S, R, H),
            (PartitionerKind::Murmur2, H, H, H),
            (PartitionerKind::Murmur2Random, S, H, H),
            (PartitionerKind::Fnv1a, H, H, H),
            (PartitionerKind::Fnv1aRandom, S, H, H),
        ];
        assert_eq!(table.len(), PartitionerKind::ALL.len());
        let topic = TopicPartitions::all(12);
        let mut rng = XorShiftRng::new(17);
        for (kind, none, empty, some) in table {
            for (key, expected) in [(None, none), (Some(&b""[..]), empty), (Some(b"k1"), some)] {
                let mut sticky = StickyPartitioner::new(16_384);
                let got = kind.partition(key, topic, &mut sticky, &mut rng).unwrap();
                assert_eq!(how(got), expected, "{kind} with key {key:?}");
                assert_eq!(
                    kind.hashed_partition(key, 12),
                    (expected == How::Hashed).then_some(got.partition()),
                    "{kind} with key {key:?}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_only_exact_spellings_parse() {
        for kind in PartitionerKind::ALL {
            assert_eq!(PartitionerKind::from_name(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(PartitionerKind::default(), PartitionerKind::Default);
        for bad in ["", "Murmur2", "murmur2 ", "sticky", "crc32", "fnv1a-random"] {
            assert_eq!(PartitionerKind::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn default_is_bit_for_bit_the_previous_routing() {
        // Before PartitionerKind, a key went to partition_for_key and no key to the sticky
        // partitioner; the same seed must give the same partitions and leave the generator in
        // the same state (so the engine's other draws, e.g. backoff jitter, do not shift).
        let topic = TopicPartitions::with_available(7, &[0, 2, 3, 6]);
        let (mut old_rng, mut new_rng) = (XorShiftRng::new(77), XorShiftRng::new(77));
        let (mut old_sticky, mut new_sticky) =
            (StickyPartitioner::new(50), StickyPartitioner::new(50));
        for i in 0..500u32 {
            let key_bytes = i.to_be_bytes();
            let key = (i % 3 == 0).then_some(&key_bytes[..]);
            let old = match key {
                Some(k) => partition_for_key(k, 7),
                None => old_sticky.partition(topic, &mut old_rng).unwrap(),
            };
            let new = PartitionerKind::Default
                .partition(key, topic, &mut new_sticky, &mut new_rng)
                .unwrap();
            assert_eq!(new.partition(), old, "record {i}");
            if key.is_none() {
                assert_eq!(new, Placement::Sticky(old));
                old_sticky.record_appended(old, 20);
                new_sticky.record_appended(new.partition(), 20);
                if i % 5 == 0 {
                    old_sticky.batch_completed(old);
                    new_sticky.batch_completed(new.partition());
                }
            }
        }
        assert_eq!(old_rng, new_rng);
        assert_eq!(old_sticky, new_sticky);
    }

    #[test]
    fn ignore_keys_sends_keyed_records_to_the_sticky_partition() {
        let topic = TopicPartitions::all(50);
        let mut rng = XorShiftRng::new(4);
        let mut sticky = StickyPartitioner::new(1_000_000);
        let keys: [&[u8]; 4] = [b"alpha", b"beta", b"gamma", b""];
        let placed: Vec<Placement> = keys
            .iter()
            .map(|k| {
                PartitionerKind::IgnoreKeys
                    .partition(Some(k), topic, &mut sticky, &mut rng)
                    .unwrap()
            })
            .collect();
        let current = sticky.current().expect("a sticky partition was chosen");
        assert!(placed.iter().all(|p| *p == Placement::Sticky(current)));
        // Under `default` these keys would not all share one partition of 50.
        let hashed: std::collections::HashSet<i32> =
            keys.iter().map(|k| partition_for_key(k, 50)).collect();
        assert!(hashed.len() > 1);
    }

    #[test]
    fn key_hashes_ignore_availability_like_java_and_librdkafka() {
        // A key's home must not move while its leader is away: the record waits for it.
        for kind in [
            PartitionerKind::Default,
            PartitionerKind::Consistent,
            PartitionerKind::Murmur2Random,
            PartitionerKind::Fnv1a,
        ] {
            let home = kind.hashed_partition(Some(b"order-42"), 8).unwrap();
            let others: Vec<i32> = (0..8).filter(|&p| p != home).collect();
            let topic = TopicPartitions::with_available(8, &others);
            let mut sticky = StickyPartitioner::new(1);
            let got = kind
                .partition(
                    Some(b"order-42"),
                    topic,
                    &mut sticky,
                    &mut XorShiftRng::new(1),
                )
                .unwrap();
            assert_eq!(got, Placement::Hashed(home), "{kind}");
        }
    }

    #[test]
    fn a_topic_without_partitions_places_nothing_and_does_not_panic() {
        for kind in PartitionerKind::ALL {
            for key in [None, Some(&b""[..]), Some(b"k")] {
                let mut sticky = StickyPartitioner::new(1);
                let mut rng = XorShiftRng::new(1);
                assert_eq!(
                    kind.partition(key, TopicPartitions::all(0), &mut sticky, &mut rng),
                    None,
                    "{kind}"
                );
                assert_eq!(kind.hashed_partition(key, 0), None);
                assert_eq!(kind.hashed_partition(key, -3), None);
            }
        }
    }

    /// (value, key) pairs that librdkafka places at random per record (records without a
    /// key go to the sticky partition instead, as librdkafka's default does).
    const RANDOM_CASES: [(PartitionerKind, Option<&[u8]>); 3] = [
        (PartitionerKind::Random, Some(b"")),
        (PartitionerKind::Random, Some(b"a key")),
        (PartitionerKind::ConsistentRandom, Some(b"")),
    ];

    /// Values that send records without a key to the sticky partition.
    const STICKY_WITHOUT_KEY: [PartitionerKind; 6] = [
        PartitionerKind::Default,
        PartitionerKind::IgnoreKeys,
        PartitionerKind::Random,
        PartitionerKind::ConsistentRandom,
        PartitionerKind::Murmur2Random,
        PartitionerKind::Fnv1aRandom,
    ];

    #[test]
    fn random_choices_spread_evenly_over_the_available_partitions_only() {
        let available = [1, 3, 4, 9];
        let topic = TopicPartitions::with_available(12, &available);
        for (kind, key) in RANDOM_CASES {
            let mut rng = XorShiftRng::new(31);
            let mut sticky = StickyPartitioner::new(1);
            let mut counts = [0u32; 12];
            for _ in 0..40_000 {
                match kind.partition(key, topic, &mut sticky, &mut rng).unwrap() {
                    Placement::Random(p) => counts[p as usize] += 1,
                    other => panic!("{kind} {key:?}: {other:?} is not random"),
                }
            }
            for (p, &c) in counts.iter().enumerate() {
                if available.contains(&(p as i32)) {
                    assert!((9_000..=11_000).contains(&c), "{kind} {key:?}: {counts:?}");
                } else {
                    assert_eq!(c, 0, "{kind} {key:?} used unavailable partition {p}");
                }
            }
            // Per-record random: the sticky state is neither chosen nor moved.
            assert_eq!(sticky, StickyPartitioner::new(1), "{kind} {key:?}");
        }
    }

    #[test]
    fn random_choices_use_every_partition_when_all_or_none_are_known_available() {
        for topic in [
            TopicPartitions::all(7),
            TopicPartitions::with_available(7, &[]),
        ] {
            for (kind, key) in RANDOM_CASES {
                let mut rng = XorShiftRng::new(5);
                let mut sticky = StickyPartitioner::new(1);
                let mut counts = [0u32; 7];
                for _ in 0..7_000 {
                    let p = kind.partition(key, topic, &mut sticky, &mut rng).unwrap();
                    counts[p.partition() as usize] += 1;
                }
                assert!(
                    counts.iter().all(|&c| (800..=1_200).contains(&c)),
                    "{kind} {key:?}: {counts:?}"
                );
            }
        }
    }

    #[test]
    fn random_choice_changes_from_record_to_record() {
        // Not sticky: consecutive records of one topic do not all share a partition.
        let topic = TopicPartitions::all(12);
        let mut rng = XorShiftRng::new(9);
        let mut sticky = StickyPartitioner::new(usize::MAX);
        let picks: std::collections::HashSet<i32> = (0..64)
            .map(|_| {
                PartitionerKind::Random
                    .partition(Some(b"k"), topic, &mut sticky, &mut rng)
                    .unwrap()
                    .partition()
            })
            .collect();
        assert!(picks.len() > 6, "{picks:?}");
    }

    #[test]
    fn records_without_a_key_stay_on_one_partition_under_the_random_values_too() {
        // librdkafka's default (sticky.partitioning.linger.ms > 0) keeps them together for a
        // while; courier's sticky partitioner does, until a batch's worth of bytes went there.
        let topic = TopicPartitions::all(12);
        for kind in STICKY_WITHOUT_KEY {
            let mut rng = XorShiftRng::new(9);
            let mut sticky = StickyPartitioner::new(usize::MAX);
            let picks: std::collections::HashSet<i32> = (0..64)
                .map(
                    |_| match kind.partition(None, topic, &mut sticky, &mut rng).unwrap() {
                        Placement::Sticky(p) => p,
                        other => panic!("{kind}: {other:?} is not the sticky partition"),
                    },
                )
                .collect();
            assert_eq!(picks.len(), 1, "{kind}: {picks:?}");
        }
    }

    #[test]
    fn fnv1a_32_matches_the_reference_test_vectors() {
        // From the FNV reference (Landon Curt Noll's test suite, FNV-1a 32-bit column).
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn fnv1a_is_made_non_negative_by_negation_as_librdkafka_does() {
        // Values librdkafka's own unit test (`unittest_fnv1a`) expects from `rd_fnv1a`.
        let cases: [(&[u8], u32); 6] = [
            (b"kafka", 0x0d33_c4e1),
            (b"giberish123456789", 0x77a5_8295),
            (b"1234", 0x023b_dd03),
            (b"234", 0x2dea_3cd2),
            (b"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x65cb_d69c),
            (b"", 0x7ee3_623b),
        ];
        for (key, expected) in cases {
            assert_eq!(fnv1a_non_negative(key), expected, "{key:?}");
        }
        // 0x811c9dc5 is negative as an i32: negated to 0x7ee3623b, 35 modulo 1000. Masking the
        // sign bit instead gives 0x011c9dc5, 613 modulo 1000.
        assert_eq!(fnv1a_partition(b"", 1_000), 35);
        // The overflow case: FNV-1a of this key is 0x80000000, and -i32::MIN stays 2^31.
        assert_eq!(fnv1a_32(b"jG6mct"), 0x8000_0000);
        assert_eq!(fnv1a_partition(b"jG6mct", 100), 48);
        assert_eq!(fnv1a_partition(b"jG6mct", 7), 2);
    }

    #[test]
    fn consistent_is_zlib_crc32_reduced_unsigned() {
        // The CRC-32/ISO-HDLC check value; CRC-32C (Castagnoli) would be 0xe3069283.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        // 0xcbf43926 is above i32::MAX: unsigned it is 3421780262 % 100 = 62; a signed
        // reduction would give -34, a masked one 14.
        assert_eq!(consistent_partition(b"123456789", 100), 62);
        assert_eq!(consistent_partition(b"", 100), 0);
        assert_eq!(
            PartitionerKind::Consistent.hashed_partition(None, 100),
            Some(0)
        );
    }
}
