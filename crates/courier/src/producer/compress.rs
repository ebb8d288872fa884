//! Compression off the driver: the `courier-compress` thread and the duty-cycle measure
//! that decides when to use it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use courier_core::producer::CompressJob;
use courier_core::Compressor;
use tokio::time::Instant;

use super::driver::{Driver, Event};

/// Batches this large (uncompressed) or larger are compressed on the producer's
/// compression thread, not by the driver task that also appends records and handles
/// responses: at full speed compression is the largest share of the driver's work (LZ4 of
/// JSON-like 1 KiB records took half of it), and on two threads the two halves overlap.
/// Smaller batches - a lightly loaded producer's, sent at `linger.ms` - are compressed
/// inline: for them the hand-over would cost more than it saves, in CPU and latency.
pub(super) const COMPRESS_ELSEWHERE_FROM: usize = 8 * 1024;

/// Batches the compression thread may hold at once. Beyond that it is the slower of the
/// two (a costly codec) and the driver compresses the next ones itself, so both work and
/// the thread's queue stays short.
pub(super) const COMPRESS_JOBS_MAX: usize = 16;

impl Driver {
    /// Hands a batch to the compression thread, starting it first if needed, or
    /// compresses it here when [`COMPRESS_JOBS_MAX`] are already out (the thread is the
    /// slower one then: both work) or the thread cannot run. The thread ends when the
    /// driver does (its job queue closes).
    pub(super) fn compress(&mut self, mut job: CompressJob) {
        // The thread's own count, not the results the driver has taken back: those can
        // wait in the event queue while the driver appends a long run of records.
        let queued = self.compress_queued.load(Ordering::Acquire);
        if queued < COMPRESS_JOBS_MAX && !self.compress_thread_gone {
            if self.compress_jobs.is_none() {
                let (tx, rx) = std::sync::mpsc::channel::<CompressJob>();
                let events = self.events();
                let in_hand = self.compress_queued.clone();
                let started = std::thread::Builder::new()
                    .name("courier-compress".into())
                    .spawn(move || {
                        let mut compressor = Compressor::new();
                        while let Ok(job) = rx.recv() {
                            let done = job.run(&mut compressor);
                            in_hand.fetch_sub(1, Ordering::Release);
                            if events.send(Event::Compressed(done, true)).is_err() {
                                return;
                            }
                        }
                    });
                match started {
                    Ok(_) => self.compress_jobs = Some(tx),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not start the compression thread; compressing inline");
                        self.compress_thread_gone = true;
                    }
                }
            }
            if let Some(tx) = &self.compress_jobs {
                // Counted before the send: the thread may finish it at once.
                self.compress_queued.fetch_add(1, Ordering::Relaxed);
                match tx.send(job) {
                    Ok(()) => return,
                    Err(std::sync::mpsc::SendError(j)) => {
                        // Only a panic ends the thread early: a bug. The jobs it held are
                        // lost; their batches expire at `delivery.timeout.ms`, reported
                        // not persisted. Compress inline from now on.
                        tracing::error!("the compression thread ended; compressing inline");
                        self.compress_queued.fetch_sub(1, Ordering::Relaxed);
                        self.compress_jobs = None;
                        self.compress_thread_gone = true;
                        job = j;
                    }
                }
            }
        }
        // Through the event queue like the thread's results: the driver polls the engine
        // again after taking an event, which sends the batch.
        let compressor = self
            .inline_compressor
            .get_or_insert_with(|| Box::new(Compressor::new()));
        let done = job.run(compressor);
        let _ = self.events().send(Event::Compressed(done, false));
    }
}

/// How much of its time the driver task spends working rather than waiting, over
/// windows of [`Duty::WINDOW`]: when it is busy, compressing on the compression thread
/// frees it for the records (throughput); when it has time to spare, compressing inline
/// saves the hand-over (CPU: two thread wake-ups per batch, which for 1 KiB records cost
/// about a fifth more CPU per record on a real broker). The two thresholds are apart so
/// that the lighter load of one mode does not flip it straight back to the other.
pub(super) struct Duty {
    window_start: Instant,
    busy: Duration,
    offloading: bool,
}

impl Duty {
    const WINDOW: Duration = Duration::from_millis(20);
    /// Busy share from which batches go to the compression thread.
    const ON: f64 = 0.6;
    /// Busy share under which they are compressed inline again.
    const OFF: f64 = 0.3;

    pub(super) fn new(now: Instant) -> Self {
        Duty {
            window_start: now,
            busy: Duration::ZERO,
            offloading: false,
        }
    }

    /// Counts a span of work (from waking to going back to sleep). At the end of a
    /// window, returns the mode for the next one if it changes.
    pub(super) fn worked(&mut self, from: Instant, to: Instant) -> Option<bool> {
        self.busy += to.saturating_duration_since(from);
        let elapsed = to.saturating_duration_since(self.window_start);
        if elapsed < Self::WINDOW {
            return None;
        }
        let share = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        self.window_start = to;
        self.busy = Duration::ZERO;
        let next = if self.offloading {
            share >= Self::OFF
        } else {
            share >= Self::ON
        };
        (next != self.offloading).then(|| {
            self.offloading = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn duty_turns_the_compression_thread_on_when_busy_and_off_when_idle() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut d = Duty::new(t0);
        // 15 of 20 ms busy: on.
        assert_eq!(d.worked(ms(0), ms(15)), None);
        assert_eq!(d.worked(ms(19), ms(20)), Some(true));
        // 8 of 20 ms (40 %): between the thresholds, stays on.
        assert_eq!(d.worked(ms(20), ms(28)), None);
        assert_eq!(d.worked(ms(40), ms(40)), None);
        // 2 of 20 ms: off.
        assert_eq!(d.worked(ms(40), ms(42)), None);
        assert_eq!(d.worked(ms(60), ms(60)), Some(false));
        // 10 of 20 ms (50 %): under the on threshold, stays off.
        assert_eq!(d.worked(ms(60), ms(70)), None);
        assert_eq!(d.worked(ms(80), ms(80)), None);
    }
}
