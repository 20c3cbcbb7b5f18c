//! The hot path allocates nothing: after warm-up, send/recv round trips that
//! block and wake (with deadlines) make no heap allocation. Alone in its binary:
//! it installs a counting global allocator.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use sock::{Family, Tcp};
use util::{listener, run, within};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counter
// is an atomic and does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Reliability checklist: K2 (docs/reliability.md).
#[test]
fn ping_pong_round_trips_do_not_allocate() {
    run(20.0, async {
        let (l, addr) = listener(Family::Inet);
        sock::newthread(async move {
            let (c, _, _) = l.accept(within(5.0)).await?;
            let mut b = [0u8; 64];
            loop {
                // The server parks in recv each time: block, wake, retry.
                match c.recv(&mut b, within(5.0)).await? {
                    0 => return sock::Result::Ok(()),
                    n => c.sendall(&b[..n], within(5.0)).await?,
                }
            }
        });
        let c = Tcp::new(Family::Inet)?;
        c.connect(addr, within(5.0)).await?;
        let mut b = [0u8; 10];
        for _ in 0..1000 {
            // Warm-up: tables and buffers reach their size.
            c.sendall(b"0123456789", within(5.0)).await?;
            c.recvall(&mut b, within(5.0)).await?;
        }
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..10_000 {
            c.sendall(b"0123456789", within(5.0)).await?;
            c.recvall(&mut b, within(5.0)).await?;
        }
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(
            allocs, 0,
            "{allocs} allocations in 10,000 blocking round trips"
        );
        Ok(())
    });
}
