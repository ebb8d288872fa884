//! The hand-off from the application's threads to the producer's driver.
//!
//! A mutex-guarded vector that the driver swaps out whole, instead of a channel: every
//! record crosses it, and a channel pays per message for its slot bookkeeping, a block
//! allocation every few dozen messages, and a wake-up check, where this pays one
//! uncontended lock and a `push` into memory that is reused (the driver hands its
//! emptied vector back on the next swap). The driver is woken only when the queue goes
//! from empty to non-empty.
//!
//! Beside the items the queue holds a byte arena that senders may copy small payloads
//! into ([`BatchQueue::push_with`]) and that the driver takes whole with them. An
//! application's freshly built key and value are then freed by the thread that
//! allocated them, at once, instead of by the driver after encoding: with glibc, frees
//! from another thread overflow the driver's thread cache and leave the sender's empty,
//! so every allocation of the sender took malloc's slow path (issue 16's profile: 35 %
//! of the CPU in malloc and free for keyed records built per send).

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

struct Inner<T> {
    items: Vec<T>,
    /// Bytes the queued items refer to by range (see [`BatchQueue::push_with`]).
    arena: Vec<u8>,
    /// Every sender is gone: once `items` is drained, nothing more will come.
    senders_gone: bool,
    /// The receiver is gone: pushes fail.
    receiver_gone: bool,
}

/// A multi-producer, single-consumer queue drained in batches.
pub(crate) struct BatchQueue<T> {
    inner: Mutex<Inner<T>>,
    notify: Notify,
}

impl<T> BatchQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                items: Vec::new(),
                arena: Vec::new(),
                senders_gone: false,
                receiver_gone: false,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock cannot leave the vector half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`; gives it back when the receiver is gone.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.push_with(item, |_, _| ())
    }

    /// Queues `item` after `stage` has run on it and the arena, under the lock: `stage`
    /// may append bytes to the arena and record their range in the item; the receiver
    /// gets the arena with the items (see [`recv_all`](Self::recv_all)). Whatever
    /// `stage` returns comes back to the caller, to be dropped outside the lock. Gives
    /// the item back, unstaged, when the receiver is gone.
    pub(crate) fn push_with<R>(
        &self,
        mut item: T,
        stage: impl FnOnce(&mut T, &mut Vec<u8>) -> R,
    ) -> Result<R, T> {
        let mut g = self.lock();
        if g.receiver_gone {
            return Err(item);
        }
        let staged = stage(&mut item, &mut g.arena);
        let was_empty = g.items.is_empty();
        g.items.push(item);
        drop(g);
        if was_empty {
            // Stores a permit if the driver is not waiting yet, so a wake-up between
            // its last look and its wait is not lost.
            self.notify.notify_one();
        }
        Ok(staged)
    }

    /// Marks that no sender is left (the last producer handle was dropped).
    pub(crate) fn close_senders(&self) {
        self.lock().senders_gone = true;
        self.notify.notify_one();
    }

    /// Marks that the receiver is gone and drops what is queued; later pushes fail.
    pub(crate) fn close_receiver(&self) {
        let items = {
            let mut g = self.lock();
            g.receiver_gone = true;
            std::mem::take(&mut g.items)
        };
        // Dropped outside the lock: dropping an item may run arbitrary code.
        drop(items);
    }

    /// Waits until something is queued and swaps it into `out` (which must be empty;
    /// its allocation goes back to the queue), and the arena the items refer to into
    /// `arena` (which must be empty too: it becomes the arena of the next items, so it
    /// should have the capacity they will need). Returns false once every sender is gone and the queue is empty.
    /// Cancel-safe: items move only in the poll that returns.
    pub(crate) async fn recv_all(&self, out: &mut Vec<T>, arena: &mut Vec<u8>) -> bool {
        debug_assert!(out.is_empty() && arena.is_empty());
        loop {
            {
                let mut g = self.lock();
                if !g.items.is_empty() {
                    std::mem::swap(out, &mut g.items);
                    std::mem::swap(arena, &mut g.arena);
                    return true;
                }
                if g.senders_gone {
                    return false;
                }
            }
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_from_many_senders_arrive_once_each_in_each_senders_order() {
        let q = Arc::new(BatchQueue::new());
        let senders: Vec<_> = (0..4u64)
            .map(|s| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        q.push((s, i)).expect("receiver alive");
                    }
                })
            })
            .collect();
        let mut next = [0u64; 4];
        let mut batch = Vec::new();
        let mut total = 0;
        while total < 40_000 {
            assert!(q.recv_all(&mut batch, &mut Vec::new()).await);
            for (s, i) in batch.drain(..) {
                assert_eq!(i, next[s as usize], "sender {s} out of order");
                next[s as usize] += 1;
                total += 1;
            }
        }
        for t in senders {
            t.join().unwrap();
        }
        q.close_senders();
        assert!(
            !q.recv_all(&mut batch, &mut Vec::new()).await,
            "closed and drained"
        );
    }

    #[tokio::test]
    async fn staged_bytes_arrive_with_their_items_and_the_arena_is_handed_over_whole() {
        let q = BatchQueue::new();
        for word in ["alpha", "be", "gamma"] {
            let back = q
                .push_with((0usize, 0usize), |range, arena| {
                    let start = arena.len();
                    arena.extend_from_slice(word.as_bytes());
                    *range = (start, arena.len());
                    word.len()
                })
                .unwrap();
            assert_eq!(back, word.len());
        }
        let (mut items, mut arena) = (Vec::new(), Vec::new());
        assert!(q.recv_all(&mut items, &mut arena).await);
        let words: Vec<&[u8]> = items.iter().map(|&(s, e)| &arena[s..e]).collect();
        assert_eq!(words, [&b"alpha"[..], b"be", b"gamma"]);
        // The next items start a new arena.
        q.push_with((0, 0), |r, a| {
            *r = (a.len(), a.len() + 1);
            a.push(b'x');
        })
        .unwrap();
        let (mut items, mut arena) = (Vec::new(), Vec::new());
        assert!(q.recv_all(&mut items, &mut arena).await);
        assert_eq!((items, arena), (vec![(0, 1)], b"x".to_vec()));
    }

    #[tokio::test]
    async fn push_fails_after_the_receiver_is_gone_and_queued_items_are_dropped() {
        let q = BatchQueue::new();
        let item = Arc::new(());
        q.push(item.clone()).unwrap();
        q.close_receiver();
        assert_eq!(Arc::strong_count(&item), 1, "the queued item was dropped");
        assert!(q.push(item).is_err());
    }

    #[tokio::test]
    async fn a_push_before_the_wait_is_not_lost() {
        let q = Arc::new(BatchQueue::new());
        q.push(1).unwrap();
        let mut out = Vec::new();
        assert!(q.recv_all(&mut out, &mut Vec::new()).await);
        assert_eq!(out, vec![1]);
        out.clear();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            let mut out = Vec::new();
            q2.recv_all(&mut out, &mut Vec::new()).await;
            out
        });
        tokio::task::yield_now().await;
        q.push(2).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, vec![2]);
    }
}
