//! Giving memory back after a backlog (issue 19).
//!
//! While a broker is down, records pile up (up to `buffer.memory`) and the producer's
//! batches with them; once they are delivered the memory is free again, but glibc's
//! malloc keeps it: a 90 s soak at 10,000 records/s went from 20.5 MB of RSS before a
//! broker restart to 43.7 MB after it, for good (`tests/soak.rs`). glibc returns it only
//! when asked (`malloc_trim`), so the command asks once a backlog has drained: when the
//! records held fell by at least [`DRAINED`] bytes to a quarter of their peak since the
//! last trim, and at each check for four seconds after, since the producer lets go of
//! its spare batch buffers once they sat unused for a second. With both, the same soak
//! ends at 22.3 MB for 21.5 MB before the restart.
//!
//! The trigger was first "the backlog reached half of `buffer.memory`, then fell below
//! an eighth". A broker that came back within three seconds left a backlog of about
//! 10 MB, under half of the default 32 MiB: no trim, and the soak in CI ended at 32 MB
//! for 21 MB before the restart. What matters is how much was freed, not how close the
//! backlog came to the limit. The static musl binary's mimalloc purges freed memory by
//! itself (see `main.rs`).

use std::time::Duration;

use courier::Producer;

/// How often the backlog is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How far the records held must fall from their peak before a trim is worth it: below
/// this, what glibc keeps is within the noise of its arenas (a few MB from run to run).
const DRAINED: u64 = 4 << 20;

/// Watches `producer`'s queued bytes and trims the allocator after each drained
/// backlog; stops when aborted. A no-op task where there is nothing to trim.
pub fn spawn_trimmer(producer: Producer) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The most bytes held since the last trim.
        let mut peak = 0u64;
        // Trims left to do: the producer lets go of the spare batch buffers that sat
        // unused for a second, up to two seconds after the backlog drained.
        let mut pending = 0;
        loop {
            tick.tick().await;
            let queued = producer.metrics().queued_bytes;
            peak = peak.max(queued);
            if drained(peak, queued) {
                peak = queued;
                pending = 8;
            }
            if pending > 0 {
                pending -= 1;
                trim();
            }
        }
    })
}

/// Whether the bytes held fell far enough from `peak` that the allocator should give
/// memory back: by at least [`DRAINED`], down to a quarter of the peak or less.
fn drained(peak: u64, queued: u64) -> bool {
    peak >= queued.saturating_add(DRAINED) && queued <= peak / 4
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers; it only returns free heap pages to the
    // system, which is always sound.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_backlog_of_a_few_megabytes_trims() {
        // The CI soak's case: ~10 MB held during a short outage, then back to ~50 KB.
        assert!(drained(10_000_000, 50_000));
        // A full buffer draining, too.
        assert!(drained(32 << 20, 1 << 20));
    }

    #[test]
    fn steady_traffic_and_small_or_partial_drains_do_not_trim() {
        assert!(!drained(0, 0));
        // A steady run's few hundred KB moving up and down.
        assert!(!drained(900_000, 10_000));
        // Still more than a quarter of the peak held: the backlog has not drained.
        assert!(!drained(32 << 20, 16 << 20));
        // Fell by less than DRAINED.
        assert!(!drained(3 << 20, 0));
    }
}
