//! Idempotent-producer sequence arithmetic (KIP-98).
//!
//! Sequence numbers are non-negative `i32`s that wrap from `i32::MAX` back to `0`, not to
//! `i32::MIN`: the broker computes a batch's last sequence the same way (Java's
//! `DefaultRecordBatch.incrementSequence`, librdkafka's `rd_kafka_seq_wrap`), so a producer
//! that overflowed into negative numbers would be rejected with OUT_OF_ORDER_SEQUENCE_NUMBER.

/// The base sequence of a batch written without idempotence (Java `RecordBatch.NO_SEQUENCE`).
pub const NO_SEQUENCE: i32 = -1;

/// Returns `sequence + increment` on the 31-bit sequence ring (after `i32::MAX` comes `0`).
///
/// `sequence` and `increment` must be non-negative; [`NO_SEQUENCE`] passes through unchanged
/// because a batch without a sequence has no successor either.
#[inline]
pub const fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence < 0 || increment < 0 {
        return NO_SEQUENCE;
    }
    if sequence > i32::MAX - increment {
        // Same as (sequence + increment) mod 2^31, computed without overflowing.
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// The sequence of the last record of a batch of `record_count` records starting at
/// `base_sequence`, wrapping like the broker does. [`NO_SEQUENCE`] for a batch without one
/// or without records.
#[inline]
pub const fn last_sequence(base_sequence: i32, record_count: i32) -> i32 {
    if base_sequence < 0 || record_count <= 0 {
        return NO_SEQUENCE;
    }
    increment_sequence(base_sequence, record_count - 1)
}

/// The base sequence of the batch that follows one of `record_count` records at
/// `base_sequence`.
#[inline]
pub const fn next_sequence(base_sequence: i32, record_count: i32) -> i32 {
    if record_count < 0 {
        return NO_SEQUENCE;
    }
    increment_sequence(base_sequence, record_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_after_i32_max_wraps_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(increment_sequence(5, 10), 15);
        assert_eq!(increment_sequence(0, 0), 0);
    }

    #[test]
    fn last_sequence_wraps_like_the_broker() {
        // A batch of 5 starting 2 below the top covers MAX-2, MAX-1, MAX, 0, 1.
        assert_eq!(last_sequence(i32::MAX - 2, 5), 1);
        assert_eq!(next_sequence(i32::MAX - 2, 5), 2);
        assert_eq!(last_sequence(i32::MAX, 1), i32::MAX);
        assert_eq!(last_sequence(0, 1), 0);
        assert_eq!(last_sequence(100, 1000), 1099);
    }

    #[test]
    fn missing_sequence_stays_missing() {
        assert_eq!(last_sequence(NO_SEQUENCE, 10), NO_SEQUENCE);
        assert_eq!(next_sequence(NO_SEQUENCE, 10), NO_SEQUENCE);
        assert_eq!(last_sequence(7, 0), NO_SEQUENCE);
    }

    #[test]
    fn increment_matches_modular_arithmetic_everywhere() {
        let modulus = 1i64 << 31;
        for seq in [
            0,
            1,
            1000,
            i32::MAX / 2,
            i32::MAX - 1000,
            i32::MAX - 1,
            i32::MAX,
        ] {
            for inc in [0, 1, 2, 999, 1000, 1001, i32::MAX] {
                let want = ((seq as i64 + inc as i64) % modulus) as i32;
                assert_eq!(increment_sequence(seq, inc), want, "{seq} + {inc}");
            }
        }
    }
}
