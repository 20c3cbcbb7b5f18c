//! Pending deadlines: an indexed binary min-heap.
//!
//! Every blocking call with an `expires`, and every sleep, inserts one entry
//! when it parks and removes it when it completes first, so both insertion and
//! removal must be cheap with many entries pending: each is O(log n), and
//! removal by handle finds the entry through a slot table instead of a search.
//! Entries with equal deadlines fire in insertion order (`seq`), like libuv's
//! `start_id` and async-io's `(Instant, usize)`. The storage (two vectors) only
//! grows: after warm-up, inserting and removing allocate nothing.

use std::num::NonZeroU32;
use std::time::Instant;

/// A handle to a pending entry; stale handles (already fired or removed) are
/// recognized by their generation and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerId {
    slot: u32,
    /// Never 0: an `Option<TimerId>` (a parked call's) is as small as the id.
    gen: NonZeroU32,
}

#[derive(Debug)]
struct Entry<T> {
    deadline: Instant,
    seq: u64,
    slot: u32,
    value: T,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Position in `heap` while live, or the next free slot while free.
    pos: u32,
    gen: NonZeroU32,
    live: bool,
}

/// The heap of deadlines, each carrying a `T` (the thread to wake).
#[derive(Debug)]
pub(crate) struct Timers<T> {
    heap: Vec<Entry<T>>,
    slots: Vec<Slot>,
    free: u32,
    seq: u64,
    /// Element moves done by sifting, for the complexity test.
    #[cfg(test)]
    moves: u64,
}

const NONE: u32 = u32::MAX;

impl<T> Timers<T> {
    pub(crate) fn new() -> Self {
        Timers {
            heap: Vec::new(),
            slots: Vec::new(),
            free: NONE,
            seq: 0,
            #[cfg(test)]
            moves: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|e| e.deadline)
    }

    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let slot = if self.free != NONE {
            let s = self.free;
            self.free = self.slots[s as usize].pos;
            s
        } else {
            self.slots.push(Slot {
                pos: 0,
                gen: NonZeroU32::MIN,
                live: false,
            });
            (self.slots.len() - 1) as u32
        };
        let pos = self.heap.len();
        let seq = self.seq;
        self.seq += 1;
        self.heap.push(Entry {
            deadline,
            seq,
            slot,
            value,
        });
        let s = &mut self.slots[slot as usize];
        s.pos = pos as u32;
        s.live = true;
        let id = TimerId { slot, gen: s.gen };
        self.sift_up(pos);
        id
    }

    /// Removes the entry if it is still pending; returns its value.
    pub(crate) fn remove(&mut self, id: TimerId) -> Option<T> {
        let s = *self.slots.get(id.slot as usize)?;
        if !s.live || s.gen != id.gen {
            return None;
        }
        Some(self.remove_at(s.pos as usize))
    }

    /// Pops the earliest entry if its deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<T> {
        match self.heap.first() {
            Some(e) if e.deadline <= now => Some(self.remove_at(0)),
            _ => None,
        }
    }

    fn remove_at(&mut self, pos: usize) -> T {
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        let entry = self.heap.pop().expect("non-empty");
        let s = &mut self.slots[entry.slot as usize];
        s.live = false;
        s.gen = s.gen.checked_add(1).unwrap_or(NonZeroU32::MIN);
        s.pos = self.free;
        self.free = entry.slot;
        if pos < self.heap.len() {
            self.slots[self.heap[pos].slot as usize].pos = pos as u32;
            self.sift_down(pos);
            self.sift_up(pos);
        }
        entry.value
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.heap[a], &self.heap[b]);
        (x.deadline, x.seq) < (y.deadline, y.seq)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.slots[self.heap[a].slot as usize].pos = a as u32;
        self.slots[self.heap[b].slot as usize].pos = b as u32;
        #[cfg(test)]
        {
            self.moves += 1;
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.less(pos, parent) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * pos + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let child = if r < n && self.less(r, l) { r } else { l };
            if !self.less(child, pos) {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lcg(x: &mut u64) -> u64 {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *x >> 33
    }

    #[test]
    fn fires_in_deadline_order_and_fifo_among_equals() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.insert(t0 + Duration::from_millis(5), "c");
        t.insert(t0 + Duration::from_millis(1), "a");
        t.insert(t0 + Duration::from_millis(5), "d");
        t.insert(t0 + Duration::from_millis(1), "b");
        assert_eq!(t.pop_expired(t0), None);
        let late = t0 + Duration::from_secs(1);
        let got: Vec<_> = std::iter::from_fn(|| t.pop_expired(late)).collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
    }

    #[test]
    fn removal_by_handle_and_stale_handles() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        let a = t.insert(t0, 1);
        let b = t.insert(t0, 2);
        assert_eq!(t.remove(a), Some(1));
        assert_eq!(t.remove(a), None, "second removal is a no-op");
        let c = t.insert(t0, 3); // reuses a's slot with a new generation
        assert_eq!(
            t.remove(a),
            None,
            "stale handle does not remove the new entry"
        );
        assert_eq!(t.pop_expired(t0), Some(2));
        assert_eq!(t.remove(b), None, "fired entries cannot be removed");
        assert_eq!(t.remove(c), Some(3));
        assert_eq!(t.len(), 0);
    }

    /// 100,000 pending deadlines: inserting, cancelling half at random and
    /// expiring the rest costs O(n log n) element moves (a linear structure would
    /// need about n^2/4 = 2.5e9), and expiry comes out sorted.
    #[test]
    fn stays_logarithmic_with_100k_pending() {
        const N: usize = 100_000;
        let t0 = Instant::now();
        let mut t = Timers::new();
        let mut rng = 42u64;
        let ids: Vec<_> = (0..N)
            .map(|i| {
                let d = t0 + Duration::from_micros(lcg(&mut rng) % 10_000_000);
                t.insert(d, i)
            })
            .collect();
        assert_eq!(t.len(), N);
        let mut removed = 0;
        for (i, id) in ids.iter().enumerate() {
            if lcg(&mut rng).is_multiple_of(2) {
                assert_eq!(t.remove(*id), Some(i));
                removed += 1;
            }
        }
        let mut last = t0;
        let mut fired = 0;
        let end = t0 + Duration::from_secs(11);
        while let Some(v) = t.pop_expired(end) {
            let _ = v;
            fired += 1;
            let next = t.next_deadline().unwrap_or(end);
            assert!(next >= last);
            last = next;
        }
        assert_eq!(fired + removed, N);
        let log2n = (N as f64).log2();
        let bound = (3.0 * N as f64 * log2n) as u64;
        assert!(
            t.moves < bound,
            "{} moves for {N} timers (bound {bound})",
            t.moves
        );
    }
}
