//! The scheduler: newthread, currentthread, poll, start, stop, sleep,
//! sleep_until, error reporting, foreign wakers, epoll_fd, huge deadlines and
//! the reliability checklist's items H2, H3, H4, H5, H9, H11 and I3
//! (docs/reliability.md).
//!
//! Every test runs its body on a fresh OS thread (so on a fresh loop) under
//! `bounded`, which fails the test instead of hanging when the body does not
//! return in time. Assertions inside sock threads would only be reported to the
//! error handler, so `bounded` also fails the test when anything was reported
//! (tests that expect reports install their own handler).

mod util;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use sock::{clock, ErrorKind, Family, Tcp, ThreadId};
use util::{bounded, listener};

/// How late a wake-up may be ("not too late").
const LATE: f64 = 0.05;

type Reports = Rc<RefCell<Vec<(Option<ThreadId>, String)>>>;

/// Installs an error handler that records `(thread, message)`.
fn record_reports() -> Reports {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    sock::set_error_handler(move |id, msg| r.borrow_mut().push((id, msg.to_owned())));
    reports
}

/// Drives the loop with `poll` until no thread is left; fails after `limit` s.
fn drive(limit: f64) {
    let end = clock() + limit;
    loop {
        assert!(clock() < end, "threads still alive after {limit} s");
        match sock::poll(Some(0.05)) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Empty => return,
            Err(e) => panic!("poll failed: {e}"),
        }
    }
}

/// Never early, at most `LATE` late (absolute clock values or elapsed times).
fn assert_on_time(woke: f64, target: f64, what: &str) {
    assert!(woke >= target, "{what}: woke {} s early", target - woke);
    assert!(
        woke - target < LATE,
        "{what}: woke {} s late",
        woke - target
    );
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future once by hand, outside any sock thread, with a waker that
/// does nothing (`Waker::noop` needs Rust 1.85; the crate's MSRV is 1.80).
fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    f.as_mut().poll(&mut cx)
}

/// A future wrapper that counts how many times it is polled.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Rc<Cell<usize>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.polls.set(this.polls.get() + 1);
        this.inner.as_mut().poll(cx)
    }
}

fn counted<F: Future>(f: F) -> (Counted<F>, Rc<Cell<usize>>) {
    let polls = Rc::new(Cell::new(0));
    (
        Counted {
            inner: Box::pin(f),
            polls: polls.clone(),
        },
        polls,
    )
}

/// A tiny foreign oneshot channel: its receiver is woken through the std
/// `Waker` it was polled with, possibly from another OS thread.
type Slot<T> = Arc<Mutex<(Option<T>, Option<Waker>)>>;

struct Rx<T>(Slot<T>);

struct Tx<T>(Slot<T>);

fn oneshot<T>() -> (Tx<T>, Rx<T>) {
    let slot = Arc::new(Mutex::new((None, None)));
    (Tx(slot.clone()), Rx(slot))
}

impl<T> Future for Rx<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut g = self.0.lock().unwrap();
        match g.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Tx<T> {
    /// Stores the value and wakes the receiver `wakes` times (at least once).
    fn send(self, v: T, wakes: usize) {
        let w = {
            let mut g = self.0.lock().unwrap();
            g.0 = Some(v);
            g.1.clone()
        };
        if let Some(w) = w {
            for _ in 0..wakes.max(1) {
                w.wake_by_ref();
            }
        }
    }

    /// Wakes the receiver `n` times without sending anything.
    fn poke(&self, n: usize) {
        let w = self.0.lock().unwrap().1.clone();
        let w = w.expect("the receiver was polled");
        for _ in 0..n {
            w.wake_by_ref();
        }
    }
}

type Log = Rc<RefCell<Vec<&'static str>>>;

fn push(log: &Log, s: &'static str) {
    log.borrow_mut().push(s);
}

// ---------------------------------------------------------------------------
// 1. newthread runs at once

/// newthread runs the thread up to its first blocking call and returns there;
/// the rest runs inside start(), in deadline order.
#[test]
fn newthread_runs_at_once_until_first_block() {
    bounded(5.0, || {
        let log: Log = Rc::default();
        push(&log, "main");
        let l = log.clone();
        let t1 = sock::newthread(async move {
            push(&l, "t1-start");
            sock::sleep(0.04).await.unwrap();
            push(&l, "t1-after-sleep");
        });
        push(&log, "main-after-t1");
        let l = log.clone();
        let t2 = sock::newthread(async move {
            push(&l, "t2-start");
            sock::sleep(0.02).await.unwrap();
            push(&l, "t2-after-sleep");
            sock::sleep(0.001).await.unwrap();
            push(&l, "t2-end");
        });
        push(&log, "main-after");
        assert!(!t1.is_finished() && !t2.is_finished());
        assert_eq!(
            *log.borrow(),
            [
                "main",
                "t1-start",
                "main-after-t1",
                "t2-start",
                "main-after"
            ]
        );
        sock::start().unwrap();
        push(&log, "main-after-start");
        assert!(t1.is_finished() && t2.is_finished());
        assert_eq!(
            *log.borrow(),
            [
                "main",
                "t1-start",
                "main-after-t1",
                "t2-start",
                "main-after",
                "t2-after-sleep",
                "t2-end",
                "t1-after-sleep",
                "main-after-start"
            ]
        );
    });
}

/// A thread that never blocks finishes inside newthread; the loop is then
/// empty (start returns at once, poll says `empty`).
#[test]
fn thread_that_never_blocks_finishes_inside_newthread() {
    bounded(5.0, || {
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let t = sock::newthread(async move { r.set(r.get() + 1) });
        assert_eq!(ran.get(), 1);
        assert!(t.is_finished());
        let e = sock::poll(None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Empty);
        let t0 = clock();
        sock::start().unwrap();
        assert!(clock() - t0 < LATE);
        assert_eq!(ran.get(), 1, "a finished thread never runs again");
    });
}

/// newthread from inside a thread also runs the new thread at once, and the
/// outer thread is still the current one when it returns.
#[test]
fn nested_newthread_starts_at_once() {
    bounded(5.0, || {
        let log: Log = Rc::default();
        let ids = Rc::new(RefCell::new(Vec::new()));
        push(&log, "main");
        let (l, ids2) = (log.clone(), ids.clone());
        let outer = sock::newthread(async move {
            push(&l, "outer-start");
            let me = sock::currentthread();
            let l2 = l.clone();
            let ids3 = ids2.clone();
            let inner = sock::newthread(async move {
                push(&l2, "inner-start");
                ids3.borrow_mut().push(("inner", sock::currentthread()));
                sock::sleep(0.01).await.unwrap();
                push(&l2, "inner-end");
            });
            push(&l, "outer-after-newthread");
            assert_eq!(
                sock::currentthread(),
                me,
                "the outer thread is current again"
            );
            ids2.borrow_mut().push(("inner-handle", Some(inner.id())));
            ids2.borrow_mut().push(("outer", me));
            sock::sleep(0.03).await.unwrap();
            assert!(inner.is_finished());
            push(&l, "outer-end");
        });
        push(&log, "main-after");
        assert_eq!(
            *log.borrow(),
            [
                "main",
                "outer-start",
                "inner-start",
                "outer-after-newthread",
                "main-after"
            ]
        );
        sock::start().unwrap();
        assert!(outer.is_finished());
        assert_eq!(log.borrow()[5..], ["inner-end", "outer-end"]);
        let ids = ids.borrow();
        assert_eq!(ids[0].1, ids[1].1, "inner id seen inside == handle id");
        assert_eq!(ids[2].1, Some(outer.id()));
        assert_ne!(ids[0].1, ids[2].1);
    });
}

// ---------------------------------------------------------------------------
// 2. currentthread

#[test]
fn currentthread_is_none_outside_and_the_id_inside() {
    bounded(5.0, || {
        assert_eq!(sock::currentthread(), None);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let a = sock::newthread(async move {
            s.borrow_mut().push(("a", sock::currentthread()));
            sock::sleep(0.01).await.unwrap();
            s.borrow_mut().push(("a", sock::currentthread()));
        });
        assert_eq!(
            sock::currentthread(),
            None,
            "None again after newthread returns"
        );
        let s = seen.clone();
        let b = sock::newthread(async move {
            s.borrow_mut().push(("b", sock::currentthread()));
            sock::sleep(0.005).await.unwrap();
            s.borrow_mut().push(("b", sock::currentthread()));
        });
        assert_ne!(a.id(), b.id(), "two live threads have distinct ids");
        sock::start().unwrap();
        assert_eq!(sock::currentthread(), None);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 4);
        for (who, id) in seen.iter() {
            let want = if *who == "a" { a.id() } else { b.id() };
            assert_eq!(*id, Some(want), "{who}");
        }
        // A later thread (which may reuse a slot) still gets a new id.
        let c = sock::newthread(async {});
        assert_ne!(c.id(), a.id());
        assert_ne!(c.id(), b.id());
    });
}

// ---------------------------------------------------------------------------
// 3. poll

/// poll(t) with a thread sleeping longer than t: Ok(false) after t, never early.
/// Reliability checklist: H2 (docs/reliability.md).
#[test]
fn poll_times_out_when_the_sleeper_sleeps_longer() {
    bounded(5.0, || {
        let t = sock::newthread(async { sock::sleep(0.4).await.unwrap() });
        for timeout in [0.1, 0.0005] {
            let t0 = clock();
            let r = sock::poll(Some(timeout));
            let dt = clock() - t0;
            assert_eq!(r, Ok(false), "timeout {timeout}");
            assert!(dt >= timeout, "poll({timeout}) returned {dt} s, early");
            assert!(dt < timeout + LATE, "poll({timeout}) returned {dt} s, late");
            assert!(!t.is_finished());
        }
        sock::start().unwrap();
        assert!(t.is_finished());
    });
}

/// poll(t) returns Ok(true) once a sleeper wakes within t, and has resumed it.
#[test]
fn poll_returns_true_when_a_sleeper_wakes_within_the_timeout() {
    bounded(5.0, || {
        let t0 = clock();
        let t = sock::newthread(async { sock::sleep(0.05).await.unwrap() });
        let r = sock::poll(Some(2.0));
        let dt = clock() - t0;
        assert_eq!(r, Ok(true));
        assert!(t.is_finished(), "the woken thread ran inside that poll");
        assert_on_time(dt, 0.05, "poll until the wake");
        assert_eq!(sock::poll(Some(1.0)).unwrap_err().kind(), ErrorKind::Empty);
    });
}

/// With no thread alive, poll fails with `empty` at once, whatever the timeout.
/// Reliability checklist: H9 (docs/reliability.md).
#[test]
fn poll_with_no_threads_is_empty_at_once() {
    bounded(5.0, || {
        for timeout in [None, Some(10.0), Some(f64::INFINITY), Some(0.0)] {
            let t0 = clock();
            let e = sock::poll(timeout).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Empty, "{timeout:?}");
            assert_eq!(e.name(), "empty");
            assert!(clock() - t0 < LATE, "{timeout:?} blocked");
        }
        // Also after threads ran and finished.
        sock::newthread(async { sock::sleep(0.001).await.unwrap() });
        sock::start().unwrap();
        assert_eq!(sock::poll(None).unwrap_err().kind(), ErrorKind::Empty);
    });
}

/// poll(0), and negative or NaN timeouts (which mean 0), do not block.
#[test]
fn poll_zero_does_not_block() {
    bounded(5.0, || {
        let t = sock::newthread(async { sock::sleep(0.3).await.unwrap() });
        for timeout in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            let t0 = clock();
            assert_eq!(sock::poll(Some(timeout)), Ok(false), "{timeout}");
            assert!(clock() - t0 < LATE, "poll({timeout}) blocked");
        }
        assert!(!t.is_finished());
        sock::start().unwrap();
    });
}

/// poll and start from inside a thread are errors, not a hang or a panic,
/// and the thread goes on.
#[test]
fn poll_and_start_inside_a_thread_are_errors() {
    bounded(5.0, || {
        let results = Rc::new(RefCell::new(Vec::new()));
        let r = results.clone();
        let t = sock::newthread(async move {
            // Before the first block (inside newthread) ...
            r.borrow_mut().push(sock::poll(None).map(|_| ()));
            r.borrow_mut().push(sock::start());
            sock::sleep(0.01).await.unwrap();
            // ... and inside start.
            r.borrow_mut().push(sock::poll(Some(0.0)).map(|_| ()));
            r.borrow_mut().push(sock::poll(None).map(|_| ()));
            r.borrow_mut().push(sock::start());
            sock::sleep(0.01).await.unwrap();
        });
        sock::start().unwrap();
        assert!(t.is_finished());
        let results = results.borrow();
        assert_eq!(results.len(), 5);
        for r in results.iter() {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
    });
}

/// start() from inside a thread is an error and leaves the loop alone, even
/// after stop() was called: the pending stop still makes the outer start return.
#[test]
fn start_inside_a_thread_after_stop_is_an_error_and_keeps_the_stop() {
    bounded(5.0, || {
        let inner = Rc::new(RefCell::new(None));
        let i = inner.clone();
        sock::newthread(async move {
            sock::sleep(0.01).await.unwrap();
            sock::stop();
            *i.borrow_mut() = Some(sock::start());
        });
        let long = sock::newthread(async { sock::sleep(0.3).await.unwrap() });
        let t0 = clock();
        sock::start().unwrap();
        let dt = clock() - t0;
        let r = inner.borrow_mut().take().expect("the thread ran");
        assert!(r.is_err(), "start() inside a thread returned {r:?}");
        assert!(
            !long.is_finished() && dt < 0.2,
            "the stop was lost: start ran {dt} s"
        );
        sock::start().unwrap();
        assert!(long.is_finished());
    });
}

/// poll returns Ok(false) only when "the timeout passed with nothing to do":
/// a wake-up that arrived from another OS thread before the poll, and which the
/// poll handles at once, is something done.
/// Reliability checklist: I3 (docs/reliability.md).
#[test]
fn poll_counts_a_remote_wake_that_came_before_the_wait() {
    bounded(5.0, || {
        let (tx, rx) = oneshot::<u32>();
        let t = sock::newthread(async move {
            assert_eq!(rx.await, 5);
        });
        std::thread::spawn(move || tx.send(5, 1)).join().unwrap();
        let t0 = clock();
        let r = sock::poll(Some(1.0));
        let dt = clock() - t0;
        assert!(t.is_finished(), "the woken thread ran in that poll");
        assert!(dt < LATE, "{dt}");
        assert_eq!(r, Ok(true), "poll returned at once after resuming a thread");
    });
}

// ---------------------------------------------------------------------------
// 4. start / stop

/// Reliability checklist: H9 (docs/reliability.md).
#[test]
fn start_returns_when_all_threads_are_done() {
    bounded(5.0, || {
        let done = Rc::new(Cell::new(0));
        let t0 = clock();
        let ts: Vec<_> = [0.01, 0.03, 0.02]
            .into_iter()
            .map(|s| {
                let d = done.clone();
                sock::newthread(async move {
                    sock::sleep(s).await.unwrap();
                    d.set(d.get() + 1);
                })
            })
            .collect();
        sock::start().unwrap();
        let dt = clock() - t0;
        assert_eq!(done.get(), 3);
        assert!(ts.iter().all(|t| t.is_finished()));
        assert_on_time(dt, 0.03, "start");
        let t1 = clock();
        sock::start().unwrap(); // nothing left: returns at once
        assert!(clock() - t1 < LATE);
    });
}

/// stop() inside a thread makes start() return while another thread still
/// sleeps; a later start() finishes that thread.
/// Reliability checklist: H9 (docs/reliability.md).
#[test]
fn stop_inside_a_thread_returns_from_start_and_a_later_start_resumes() {
    bounded(5.0, || {
        let t0 = clock();
        let long = sock::newthread(async { sock::sleep(0.3).await.unwrap() });
        let stopper = sock::newthread(async {
            sock::sleep(0.02).await.unwrap();
            sock::stop();
        });
        sock::start().unwrap();
        let dt = clock() - t0;
        assert!(stopper.is_finished());
        assert!(!long.is_finished(), "start returned after {dt} s");
        assert_on_time(dt, 0.02, "start until stop");
        sock::start().unwrap();
        let dt = clock() - t0;
        assert!(long.is_finished());
        assert_on_time(dt, 0.3, "second start");
    });
}

// ---------------------------------------------------------------------------
// 5. sleep / sleep_until

/// H2: sleeps are never early (the clock after is >= the target) and at most
/// 50 ms late, including sub-millisecond and tiny values.
#[test]
fn sleep_is_never_early_and_not_too_late() {
    bounded(10.0, || {
        sock::newthread(async {
            for s in [0.05, 0.01, 0.001, 0.0003, 1e-4, 1e-7, 1e-11, 0.0] {
                let target = clock() + s;
                sock::sleep_until(target).await.unwrap();
                assert_on_time(clock(), target, &format!("sleep_until(now + {s})"));
                let t0 = clock();
                sock::sleep(s).await.unwrap();
                assert_on_time(clock(), t0 + s, &format!("sleep({s})"));
            }
        });
        sock::start().unwrap();
    });
}

/// A sleeping thread does not block the others: a thread doing 20 sleeps of
/// 5 ms finishes before a thread sleeping 0.3 s.
#[test]
fn sleeping_threads_do_not_block_others() {
    bounded(5.0, || {
        let log: Log = Rc::default();
        let ends = Rc::new(RefCell::new(Vec::new()));
        let t0 = clock();
        let (l, e) = (log.clone(), ends.clone());
        sock::newthread(async move {
            sock::sleep(0.3).await.unwrap();
            push(&l, "long");
            e.borrow_mut().push(clock() - t0);
        });
        let (l, e) = (log.clone(), ends.clone());
        sock::newthread(async move {
            for _ in 0..20 {
                sock::sleep(0.005).await.unwrap();
            }
            push(&l, "short");
            e.borrow_mut().push(clock() - t0);
        });
        sock::start().unwrap();
        assert_eq!(*log.borrow(), ["short", "long"]);
        let ends = ends.borrow();
        assert!(
            ends[0] >= 0.1 && ends[0] < 0.3,
            "short ended at {}",
            ends[0]
        );
        assert!(
            ends[1] >= 0.3 && ends[1] < 0.3 + LATE,
            "long ended at {}",
            ends[1]
        );
    });
}

/// sleep(0) and sleep_until(past) yield to the other runnable threads: two
/// threads that each log and yield alternate strictly.
#[test]
fn sleep_zero_and_past_deadlines_yield() {
    bounded(5.0, || {
        let log: Log = Rc::default();
        let l = log.clone();
        sock::newthread(async move {
            for _ in 0..10 {
                push(&l, "a");
                sock::sleep(0.0).await.unwrap();
            }
        });
        let l = log.clone();
        sock::newthread(async move {
            for i in 0..10 {
                push(&l, "b");
                let past = [clock() - 1.0, 0.0, -5.0, f64::NEG_INFINITY][i % 4];
                sock::sleep_until(past).await.unwrap();
            }
        });
        assert_eq!(*log.borrow(), ["a", "b"], "each ran to its first yield");
        let t0 = clock();
        sock::start().unwrap();
        assert!(clock() - t0 < LATE, "yields must not wait");
        let log = log.borrow();
        assert_eq!(log.len(), 20);
        for (i, s) in log.iter().enumerate() {
            assert_eq!(*s, if i % 2 == 0 { "a" } else { "b" }, "at {i}: {log:?}");
        }
    });
}

/// A thread alone that sleeps 0 many times does not hang or wait.
#[test]
fn sleep_zero_alone_returns() {
    bounded(5.0, || {
        let n = Rc::new(Cell::new(0));
        let c = n.clone();
        sock::newthread(async move {
            for _ in 0..1000 {
                sock::sleep(0.0).await.unwrap();
                c.set(c.get() + 1);
            }
        });
        let t0 = clock();
        sock::start().unwrap();
        assert_eq!(n.get(), 1000);
        assert!(clock() - t0 < 0.5, "1000 yields took {} s", clock() - t0);
    });
}

/// sleep and sleep_until outside a sock thread fail with not_in_thread at
/// once (Ready, not Pending).
#[test]
fn sleep_outside_a_thread_is_not_in_thread() {
    bounded(5.0, || {
        for r in [
            poll_once(sock::sleep(0.1)),
            poll_once(sock::sleep(0.0)),
            poll_once(sock::sleep_until(clock() + 10.0)),
            poll_once(sock::sleep_until(0.0)),
        ] {
            match r {
                Poll::Ready(Err(e)) => {
                    assert_eq!(e.kind(), ErrorKind::NotInThread);
                    assert_eq!(e.name(), "not_in_thread");
                }
                other => panic!("expected Ready(Err(not_in_thread)), got {other:?}"),
            }
        }
        // Nothing was left behind: the loop is still empty.
        assert_eq!(sock::poll(Some(0.0)).unwrap_err().kind(), ErrorKind::Empty);
    });
}

// ---------------------------------------------------------------------------
// 6. Many deadlines (H5)

fn lcg(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x >> 11
}

/// 100,000 sleeping threads with pseudo-random deadlines in a 0.5 s window:
/// all wake, in non-decreasing deadline order, none early.
/// Reliability checklist: H5 (docs/reliability.md).
#[test]
fn many_sleepers_wake_in_deadline_order() {
    const N: usize = 100_000;
    bounded(60.0, || {
        let woke = Rc::new(RefCell::new(Vec::with_capacity(N)));
        let mut rng = 7u64;
        // The window starts after all the threads are created (creation takes
        // a while in debug builds): a deadline that passed before its thread
        // parked would only be a yield, out of deadline order by design.
        let t0 = clock();
        let base = t0 + 1.0;
        for _ in 0..N {
            let d = base + (lcg(&mut rng) % 500_000) as f64 * 1e-6;
            let w = woke.clone();
            sock::newthread(async move {
                sock::sleep_until(d).await.unwrap();
                w.borrow_mut().push((d, clock()));
            });
        }
        let created = clock();
        assert!(
            created < base,
            "creating {N} threads took {} s: the test needs a longer lead time",
            created - t0
        );
        assert!(
            woke.borrow().is_empty(),
            "no thread woke before its deadline"
        );
        sock::start().unwrap();
        let woke = woke.borrow();
        assert_eq!(woke.len(), N, "every thread woke");
        for (i, &(d, at)) in woke.iter().enumerate() {
            assert!(at >= d, "thread {i} woke {} s early", d - at);
            if i > 0 {
                assert!(
                    woke[i - 1].0 <= d,
                    "wake {i}: deadline {d} after deadline {}",
                    woke[i - 1].0
                );
            }
        }
    });
}

/// Equal deadlines wake in FIFO order, also when interleaved with an earlier
/// deadline shared by other threads.
/// Reliability checklist: H5 (docs/reliability.md).
#[test]
fn equal_deadlines_wake_in_fifo_order() {
    bounded(10.0, || {
        let order = Rc::new(RefCell::new(Vec::new()));
        let d1 = clock() + 0.15;
        let d0 = d1 - 0.05;
        for i in 0..1000usize {
            let o = order.clone();
            let d = if i % 2 == 0 { d1 } else { d0 };
            sock::newthread(async move {
                sock::sleep_until(d).await.unwrap();
                o.borrow_mut().push(i);
            });
        }
        assert!(clock() < d0, "setup too slow");
        sock::start().unwrap();
        let want: Vec<usize> = (1..1000).step_by(2).chain((0..1000).step_by(2)).collect();
        assert_eq!(*order.borrow(), want);

        // 1,000 threads on one deadline, in creation order.
        let order = Rc::new(RefCell::new(Vec::new()));
        let d = clock() + 0.1;
        for i in 0..1000usize {
            let o = order.clone();
            sock::newthread(async move {
                sock::sleep_until(d).await.unwrap();
                o.borrow_mut().push(i);
            });
        }
        sock::start().unwrap();
        assert_eq!(*order.borrow(), (0..1000).collect::<Vec<_>>());
    });
}

// ---------------------------------------------------------------------------
// 7. Failures: panics, errors, join (H11)

/// A panic is reported to the error handler with its text; the other threads
/// go on and finish; start() returns Ok.
/// Reliability checklist: H11 (docs/reliability.md).
#[test]
fn panic_is_reported_and_other_threads_go_on() {
    bounded(5.0, || {
        let reports = record_reports();
        let good = Rc::new(Cell::new(false));
        let bad = sock::newthread(async {
            sock::sleep(0.01).await.unwrap();
            panic!("boom-in-loop");
            #[allow(unreachable_code)]
            ()
        });
        let early = sock::newthread(async {
            panic!("boom-in-newthread");
            #[allow(unreachable_code)]
            ()
        });
        assert!(
            early.is_finished(),
            "a panic before the first block ends the thread"
        );
        let g = good.clone();
        let other = sock::newthread(async move {
            sock::sleep(0.03).await.unwrap();
            g.set(true);
        });
        assert_eq!(sock::start(), Ok(()));
        assert!(good.get() && other.is_finished() && bad.is_finished());
        let reports = reports.borrow();
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0].0, Some(early.id()));
        assert!(reports[0].1.contains("boom-in-newthread"), "{reports:?}");
        assert_eq!(reports[1].0, Some(bad.id()));
        assert!(reports[1].1.contains("boom-in-loop"), "{reports:?}");
    });
}

/// A detached thread (handle dropped) that returns Err is reported, whether it
/// ends inside newthread or later; one that returns Ok is not.
/// Reliability checklist: H11 (docs/reliability.md).
#[test]
fn detached_thread_error_is_reported() {
    bounded(5.0, || {
        let reports = record_reports();
        let id_late = sock::newthread(async {
            sock::sleep(0.01).await.unwrap();
            Err::<(), String>("late-failure".into())
        })
        .id();
        let id_early =
            sock::newthread(async { Err::<u8, sock::Error>(sock::Error::new(ErrorKind::Timeout)) })
                .id();
        drop(sock::newthread(async {
            sock::sleep(0.005).await.unwrap();
            Ok::<u8, String>(1)
        }));
        sock::start().unwrap();
        let reports = reports.borrow();
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0].0, Some(id_early));
        assert!(reports[0].1.contains("timeout"), "{reports:?}");
        assert_eq!(reports[1].0, Some(id_late));
        assert!(reports[1].1.contains("late-failure"), "{reports:?}");
    });
}

/// A thread started without a handle (`newthread_detached`) runs as any
/// other; its error and its panic go to the error handler with its id,
/// whether it ends inside the call or later; its success is not reported.
/// Reliability checklist: H11 (docs/reliability.md).
#[test]
fn newthread_detached_reports_failures() {
    bounded(5.0, || {
        let reports = record_reports();
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let late = sock::newthread_detached(async move {
            sock::sleep(0.01).await.unwrap();
            r.set(r.get() + 1);
            Err::<(), String>("detached-late".into())
        });
        let early = sock::newthread_detached(async {
            Err::<u8, sock::Error>(sock::Error::new(ErrorKind::Timeout))
        });
        let panicky = sock::newthread_detached(async {
            sock::sleep(0.02).await.unwrap();
            if clock() > 0.0 {
                panic!("detached-boom");
            }
        });
        let r = ran.clone();
        let ok = sock::newthread_detached(async move {
            sock::sleep(0.005).await.unwrap();
            r.set(r.get() + 10);
            Ok::<u8, String>(1)
        });
        assert_eq!(ran.get(), 0, "both still sleep");
        assert!(late != early && early != panicky && panicky != ok);
        sock::start().unwrap();
        assert_eq!(ran.get(), 11);
        let reports = reports.borrow();
        assert_eq!(reports.len(), 3, "{reports:?}");
        assert_eq!(reports[0].0, Some(early));
        assert!(reports[0].1.contains("timeout"), "{reports:?}");
        assert_eq!(reports[1].0, Some(late));
        assert!(reports[1].1.contains("detached-late"), "{reports:?}");
        assert_eq!(reports[2].0, Some(panicky));
        assert!(
            reports[2].1.contains("panicked: detached-boom"),
            "{reports:?}"
        );
    });
}

/// An error handler that sets another handler, and one that panics: the
/// loop goes on (no `already borrowed` panic out of `start`), the next
/// failure goes to the new handler, and a panicking handler's failures are
/// printed instead.
#[test]
fn an_error_handler_may_replace_itself_or_panic() {
    bounded(5.0, || {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        sock::set_error_handler(move |_, msg| {
            s.borrow_mut().push(format!("first: {msg}"));
            let s2 = s.clone();
            sock::set_error_handler(move |_, msg| {
                s2.borrow_mut().push(format!("second: {msg}"));
                if msg.contains("three") {
                    panic!("handler-boom");
                }
            });
        });
        for (i, word) in ["one", "two", "three", "four"].into_iter().enumerate() {
            sock::newthread_detached(async move {
                sock::sleep(0.01 * (i + 1) as f64).await.unwrap();
                Err::<(), String>(word.to_string())
            });
        }
        assert_eq!(sock::start(), Ok(()));
        assert_eq!(
            *seen.borrow(),
            ["first: one", "second: two", "second: three", "second: four"]
        );
    });
}

/// A joined thread's error is not reported: join returns the value.
#[test]
fn joined_thread_error_is_returned_not_reported() {
    bounded(5.0, || {
        let reports = record_reports();
        let got = Rc::new(RefCell::new(Vec::new()));
        let failing = sock::newthread(async {
            sock::sleep(0.02).await.unwrap();
            Err::<i32, String>("joined-err".into())
        });
        let ok = sock::newthread(async {
            sock::sleep(0.01).await.unwrap();
            Ok::<i32, String>(42)
        });
        let done_at_once = sock::newthread(async { Err::<i32, String>("at-once".into()) });
        let g = got.clone();
        let joiner = sock::newthread(async move {
            let a = failing.join().await.unwrap();
            let b = ok.join().await.unwrap();
            let c = done_at_once.join().await.unwrap();
            g.borrow_mut().extend([a, b, c]);
        });
        sock::start().unwrap();
        assert!(joiner.is_finished());
        assert_eq!(
            *got.borrow(),
            [
                Err("joined-err".to_string()),
                Ok(42),
                Err("at-once".to_string())
            ]
        );
        assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    });
}

/// join on a thread that panicked gives an error carrying the panic text.
/// Reliability checklist: H11 (docs/reliability.md).
#[test]
fn join_on_a_panicked_thread_is_an_error() {
    bounded(5.0, || {
        let reports = record_reports();
        let got = Rc::new(RefCell::new(None));
        let t = sock::newthread(async {
            sock::sleep(0.01).await.unwrap();
            if clock() > 0.0 {
                panic!("kaboom-joined");
            }
            Ok::<i32, String>(1)
        });
        let g = got.clone();
        sock::newthread(async move {
            *g.borrow_mut() = Some(t.join().await);
        });
        sock::start().unwrap();
        let e = got.borrow_mut().take().unwrap().unwrap_err();
        assert!(e.message().contains("kaboom-joined"), "{e}");
        let reports = reports.borrow();
        assert_eq!(
            reports.len(),
            1,
            "the panic itself is reported once: {reports:?}"
        );
    });
}

/// join awaited outside a sock thread on an unfinished thread: not_in_thread.
#[test]
fn join_outside_a_thread_is_not_in_thread() {
    bounded(5.0, || {
        let t = sock::newthread(async {
            sock::sleep(0.01).await.unwrap();
            Ok::<i32, String>(1)
        });
        match poll_once(t.join()) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::NotInThread),
            other => panic!("{other:?}"),
        }
        sock::start().unwrap();
    });
}

// ---------------------------------------------------------------------------
// 8. Foreign futures and cross-thread wake-ups (I3)

/// A foreign future woken from another OS thread resumes its sock thread while
/// the loop is blocked in the poller (no timers, no I/O: only the cross-thread
/// notification can end the wait).
/// Reliability checklist: I3 (docs/reliability.md).
#[test]
fn foreign_waker_from_another_os_thread_resumes_the_thread() {
    bounded(10.0, || {
        let (tx, rx) = oneshot::<u32>();
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let t0 = clock();
        let t = sock::newthread(async move { g.set(rx.await) });
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let h = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(50));
            tx.send(7, 1);
        });
        started.store(true, Ordering::Release);
        // One poll with a long timeout: it must end on the notification.
        let r = sock::poll(Some(5.0));
        let dt = clock() - t0;
        assert_eq!(r, Ok(true));
        assert!(t.is_finished() && got.get() == 7);
        assert_on_time(dt, 0.05, "cross-thread wake");
        h.join().unwrap();

        // The same through start(): it blocks in the poller until the wake.
        let (tx, rx) = oneshot::<u32>();
        let g = got.clone();
        let t = sock::newthread(async move { g.set(rx.await) });
        let t0 = clock();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(8, 1);
        });
        sock::start().unwrap();
        let dt = clock() - t0;
        assert!(t.is_finished() && got.get() == 8);
        assert_on_time(dt, 0.05, "cross-thread wake");
        h.join().unwrap();
    });
}

/// 1,000 sequential round trips with another OS thread, each answer woken
/// three times: no wake-up is lost.
/// Reliability checklist: I3 (docs/reliability.md).
#[test]
fn cross_thread_round_trips_lose_no_wakeups() {
    bounded(30.0, || {
        let (req_tx, req_rx) = mpsc::channel::<(u32, Tx<u32>)>();
        let h = std::thread::spawn(move || {
            for (i, tx) in req_rx {
                tx.send(i + 1, 3);
            }
        });
        let done = Rc::new(Cell::new(0u32));
        let d = done.clone();
        let (fut, polls) = counted(async move {
            for i in 0..1000u32 {
                let (tx, rx) = oneshot();
                req_tx.send((i, tx)).unwrap();
                assert_eq!(rx.await, i + 1);
                d.set(d.get() + 1);
            }
        });
        sock::newthread(fut);
        sock::start().unwrap();
        assert_eq!(done.get(), 1000);
        // Each round is one or two polls, plus at most the stale extra wakes.
        assert!(polls.get() <= 1 + 1000 * 4, "{} polls", polls.get());
        h.join().unwrap();
    });
}

/// Many wakes of one waker from another OS thread while the loop is not
/// polling resume the thread once; a thread is never queued twice.
/// Reliability checklist: I3 (docs/reliability.md).
#[test]
fn repeated_wakes_resume_the_thread_once() {
    bounded(10.0, || {
        let (tx, rx) = oneshot::<u32>();
        let (fut, polls) = counted(rx);
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let t = sock::newthread(async move { g.set(fut.await) });
        assert_eq!(polls.get(), 1);
        let tx = std::thread::spawn(move || {
            tx.poke(100);
            tx
        })
        .join()
        .unwrap();
        let _ = sock::poll(Some(1.0)).unwrap();
        assert_eq!(polls.get(), 2, "100 wakes: one resume");
        let t0 = clock();
        assert_eq!(sock::poll(Some(0.05)), Ok(false), "nothing left to do");
        assert!(clock() - t0 >= 0.05);
        assert_eq!(polls.get(), 2);
        // Local wakes (same OS thread) coalesce too.
        tx.poke(50);
        let _ = sock::poll(Some(1.0)).unwrap();
        assert_eq!(polls.get(), 3);
        std::thread::spawn(move || tx.send(9, 10)).join().unwrap();
        sock::start().unwrap();
        assert!(t.is_finished() && got.get() == 9);
        assert_eq!(polls.get(), 4);
    });
}

/// A waker that outlives its loop (the OS thread ended with the sock thread
/// still parked) can still be called from another OS thread: nothing happens.
/// Reliability checklist: I3 (docs/reliability.md).
#[test]
fn waker_outliving_its_loop_is_harmless() {
    bounded(5.0, || {
        let (tx, rx) = oneshot::<u32>();
        std::thread::spawn(move || {
            let t = sock::newthread(async move {
                rx.await;
            });
            assert!(!t.is_finished());
            // The OS thread ends: its loop and the parked thread are dropped.
        })
        .join()
        .unwrap();
        tx.poke(3);
        tx.send(1, 2);
        // This loop is unaffected.
        let t = sock::newthread(async { sock::sleep(0.01).await.unwrap() });
        sock::start().unwrap();
        assert!(t.is_finished());
    });
}

/// A wake from another OS thread that lands while the loop is setting up its
/// poller for the first time (a loop that never did I/O) must not be lost.
/// Each trial runs on a fresh OS thread, so on a fresh loop without a poller;
/// the waking thread's delay sweeps the window. (Probabilistic: it usually
/// fails within the first 2,000 trials while the bug is there.)
/// Reliability checklist: I3 (docs/reliability.md).
#[test]
fn cross_thread_wake_during_first_poll_is_not_lost() {
    bounded(60.0, || {
        for trial in 0..20_000u32 {
            let lost = std::thread::spawn(move || {
                let (tx, rx) = oneshot::<u32>();
                let t = sock::newthread(async move {
                    rx.await;
                });
                let go = Arc::new(AtomicBool::new(false));
                let g = go.clone();
                let h = std::thread::spawn(move || {
                    while !g.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    for _ in 0..(trial % 64) * 8 {
                        std::hint::spin_loop();
                    }
                    tx.send(1, 1);
                });
                go.store(true, Ordering::Release);
                let t0 = clock();
                let _ = sock::poll(Some(0.3));
                if !t.is_finished() {
                    let _ = sock::poll(Some(0.3));
                }
                h.join().unwrap();
                let dt = clock() - t0;
                assert!(t.is_finished());
                dt > 0.25
            })
            .join()
            .unwrap();
            assert!(
                !lost,
                "trial {trial}: the wake-up was lost until the poll timeout"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// 9. I/O outside a sock thread

#[test]
fn io_outside_a_thread_is_not_in_thread_at_once() {
    bounded(5.0, || {
        let (l, addr) = listener(Family::Inet);
        let peer = std::net::TcpStream::connect(addr.tostring()).unwrap();
        let c = Tcp::new(Family::Inet).unwrap();
        let mut buf = [0u8; 8];
        fn check<T: std::fmt::Debug>(what: &str, r: Poll<sock::Result<T>>) {
            match r {
                Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::NotInThread, "{what}: {e}"),
                other => panic!("{what}: expected Ready(Err(not_in_thread)), got {other:?}"),
            }
        }
        check("accept", poll_once(l.accept(None)));
        check("accept+expires", poll_once(l.accept(Some(clock() + 5.0))));
        check("recv", poll_once(c.recv(&mut buf, None)));
        check(
            "recvall",
            poll_once(c.recvall(&mut buf, Some(clock() + 5.0))),
        );
        check("send", poll_once(c.send(b"x", None)));
        check("sendall", poll_once(c.sendall(b"x", None)));
        // The pending connection was not consumed: accept in a thread gets it.
        let ok = Rc::new(Cell::new(false));
        let o = ok.clone();
        sock::newthread(async move {
            let (_s, _, _) = l.accept(Some(clock() + 2.0)).await.unwrap();
            o.set(true);
        });
        drive(3.0);
        assert!(ok.get());
        drop(peer);
    });
}

// ---------------------------------------------------------------------------
// 10. epoll_fd / set_epoll_fd

/// epoll_fd is a valid descriptor with the epoll backend, `not_supported`
/// with the portable one.
#[test]
fn epoll_fd_is_valid_or_not_supported() {
    bounded(5.0, || {
        let epoll_backend = cfg!(target_os = "linux") && !cfg!(feature = "portable");
        match (sock::epoll_fd(), epoll_backend) {
            (Ok(fd), true) => {
                assert!(fd >= 0);
                assert_eq!(sock::epoll_fd(), Ok(fd), "the same instance every time");
                // It is an epoll instance.
                let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
                assert!(
                    link.to_string_lossy().contains("eventpoll"),
                    "{}",
                    link.display()
                );
            }
            (Err(e), false) => assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}"),
            (r, _) => panic!("epoll backend: {epoll_backend}, epoll_fd() = {r:?}"),
        }
    });
}

#[test]
fn set_epoll_fd_after_first_io_is_invalid_argument() {
    let setups: [fn(); 3] = [
        || drop(Tcp::new(Family::Inet).unwrap()),
        || drop(sock::epoll_fd()),
        || {
            sock::newthread(async { sock::sleep(0.001).await.unwrap() });
            sock::start().unwrap();
        },
    ];
    for setup in setups {
        bounded(5.0, move || {
            setup();
            let other = std::thread::spawn(|| sock::epoll_fd().unwrap_or(0))
                .join()
                .unwrap();
            let e = sock::set_epoll_fd(other).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            // The loop still works.
            let t = sock::newthread(async { sock::sleep(0.01).await.unwrap() });
            sock::start().unwrap();
            assert!(t.is_finished());
        });
    }
}

/// set_epoll_fd on a fresh OS thread with another loop's epoll_fd succeeds,
/// and sleeps work on that loop.
#[test]
fn set_epoll_fd_on_a_fresh_os_thread() {
    bounded(5.0, || {
        let fd = match sock::epoll_fd() {
            Ok(fd) => fd,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NotSupported);
                return; // the portable backend has no descriptor to share
            }
        };
        let woke = std::thread::spawn(move || {
            sock::set_epoll_fd(fd).unwrap();
            assert_eq!(
                sock::set_epoll_fd(fd).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "only before the first I/O"
            );
            let target = clock() + 0.02;
            let at = Rc::new(Cell::new(0.0));
            let a = at.clone();
            let t = sock::newthread(async move {
                sock::sleep_until(target).await.unwrap();
                a.set(clock());
            });
            sock::start().unwrap();
            assert!(t.is_finished());
            assert_on_time(at.get(), target, "sleep on the shared instance");
        })
        .join();
        if let Err(p) = woke {
            std::panic::resume_unwind(p);
        }
    });
}

/// set_epoll_fd(-1) (or any negative value) is an error, not a panic.
#[test]
fn set_epoll_fd_negative_is_an_error() {
    for bad in [-1, -2, i32::MIN] {
        bounded(5.0, move || {
            let r = std::panic::catch_unwind(|| sock::set_epoll_fd(bad));
            let r = r.unwrap_or_else(|_| panic!("set_epoll_fd({bad}) panicked"));
            assert!(r.is_err(), "set_epoll_fd({bad}) = {r:?}");
        });
    }
}

/// A failed set_epoll_fd (bad descriptor, not an epoll instance, or a backend
/// without descriptors) leaves the loop as it was: it still works.
/// Reliability checklist: I5 (docs/reliability.md).
#[test]
fn failed_set_epoll_fd_leaves_the_loop_usable() {
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    use std::os::fd::AsRawFd;
    let not_epoll = file.as_raw_fd();
    for bad in [1_000_000, not_epoll] {
        bounded(5.0, move || {
            assert!(sock::set_epoll_fd(bad).is_err(), "fd {bad}");
            let t = sock::newthread(async { sock::sleep(0.01).await.unwrap() });
            let r = sock::start();
            assert_eq!(r, Ok(()), "start after set_epoll_fd({bad}) failed");
            assert!(t.is_finished());
            assert!(Tcp::new(Family::Inet).is_ok());
        });
    }
    drop(file);
}

// ---------------------------------------------------------------------------
// 11. Far deadlines (H2)

/// expires = +inf and 1e300 neither overflow nor spin: the loop waits, and a
/// recv with such a deadline is woken by data.
/// Reliability checklist: H2 (docs/reliability.md).
#[test]
fn infinite_deadlines_do_not_overflow_or_spin() {
    bounded(10.0, || {
        let (l, addr) = listener(Family::Inet);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let reader = sock::newthread(async move {
            let (c, _, _) = l.accept(Some(f64::INFINITY)).await.unwrap();
            let mut buf = [0u8; 16];
            let n = c.recv(&mut buf, Some(f64::INFINITY)).await.unwrap();
            g.borrow_mut().extend_from_slice(&buf[..n]);
            let n = c.recv(&mut buf, Some(1e300)).await.unwrap();
            g.borrow_mut().extend_from_slice(&buf[..n]);
        });
        // Sleepers that must not wake during the test.
        let sleepers: Vec<_> = [f64::INFINITY, 1e300, f64::MAX, 1e12, 5e11, clock() + 1e9]
            .into_iter()
            .map(|t| sock::newthread(async move { sock::sleep_until(t).await.unwrap() }))
            .collect();
        let s = sock::newthread(async { sock::sleep(1e300).await.unwrap() });
        let mut peer = std::net::TcpStream::connect(addr.tostring()).unwrap();
        // The accept, and the edge of the accepted socket becoming writable
        // (an event nobody waits for).
        for _ in 0..2 {
            let _ = sock::poll(Some(0.05));
        }
        // Nothing ready, and only "never" deadlines: the loop must block for
        // the whole timeout, not spin and not wake anyone.
        for _ in 0..2 {
            let t0 = clock();
            let r = sock::poll(Some(0.1));
            let dt = clock() - t0;
            assert_eq!(r, Ok(false));
            assert_on_time(dt, 0.1, "poll(0.1)");
        }
        assert!(!reader.is_finished() && !s.is_finished());
        assert!(sleepers.iter().all(|t| !t.is_finished()));
        peer.write_all(b"hi").unwrap();
        let t0 = clock();
        while got.borrow().len() < 2 {
            assert!(
                clock() - t0 < 2.0,
                "recv(expires = inf) was not woken by data"
            );
            sock::poll(Some(0.5)).unwrap();
        }
        assert!(clock() - t0 < LATE);
        peer.write_all(b"yo").unwrap();
        while !reader.is_finished() {
            assert!(
                clock() - t0 < 2.0,
                "recv(expires = 1e300) was not woken by data"
            );
            sock::poll(Some(0.5)).unwrap();
        }
        assert_eq!(*got.borrow(), *b"hiyo");
        assert!(sleepers.iter().all(|t| !t.is_finished()));
    });
}

/// NaN deadlines are invalid_argument errors, at once.
#[test]
fn nan_deadlines_are_invalid_argument() {
    bounded(5.0, || {
        let (l, addr) = listener(Family::Inet);
        let _peer = std::net::TcpStream::connect(addr.tostring()).unwrap();
        let kinds = Rc::new(RefCell::new(Vec::new()));
        let k = kinds.clone();
        let t = sock::newthread(async move {
            let t0 = clock();
            let kind = |r: sock::Result<()>| r.map_err(|e| e.kind());
            let a = kind(sock::sleep_until(f64::NAN).await);
            let b = kind(sock::sleep(f64::NAN).await);
            let mut buf = [0u8; 4];
            let (c, _, _) = l.accept(Some(clock() + 2.0)).await.unwrap();
            let d = kind(c.recv(&mut buf, Some(f64::NAN)).await.map(|_| ()));
            let e = kind(l.accept(Some(f64::NAN)).await.map(|_| ()));
            let f = kind(c.send(b"x", Some(f64::NAN)).await.map(|_| ()));
            k.borrow_mut().extend([a, b, d, e, f]);
            assert!(clock() - t0 < LATE);
        });
        drive(3.0);
        assert!(t.is_finished());
        assert_eq!(*kinds.borrow(), vec![Err(ErrorKind::InvalidArgument); 5]);
    });
}

// ---------------------------------------------------------------------------
// 12. Late wake-ups (H3) and deadlines under load (H4)

/// H3: a thread that blocks the OS thread for 100 ms makes a 10 ms sleeper and
/// a 10 ms recv deadline late, but both still fire, once, and the loop does
/// not spin afterwards.
#[test]
fn blocked_os_thread_makes_deadlines_late_but_they_fire_once() {
    bounded(10.0, || {
        let (l, addr) = listener(Family::Inet);
        let _peer = std::net::TcpStream::connect(addr.tostring()).unwrap();
        let (c, _, _) = {
            let out = Rc::new(RefCell::new(None));
            let o = out.clone();
            sock::newthread(async move {
                *o.borrow_mut() = Some(l.accept(Some(clock() + 2.0)).await.unwrap());
            });
            drive(3.0);
            let c = out.borrow_mut().take().unwrap();
            c
        };
        let t0 = clock();
        let woke = Rc::new(RefCell::new(Vec::new()));
        let w = woke.clone();
        let (sleeper, sleeper_polls) = counted(async move {
            sock::sleep_until(t0 + 0.01).await.unwrap();
            w.borrow_mut().push(("sleep", clock()));
        });
        sock::newthread(sleeper);
        let w = woke.clone();
        let (reader, reader_polls) = counted(async move {
            let mut buf = [0u8; 4];
            let e = c.recv(&mut buf, Some(t0 + 0.01)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Timeout);
            w.borrow_mut().push(("recv", clock()));
        });
        sock::newthread(reader);
        sock::newthread(async {
            sock::sleep(0.001).await.unwrap();
            std::thread::sleep(Duration::from_millis(100));
        });
        let mut polls = 0;
        loop {
            match sock::poll(Some(1.0)) {
                Ok(_) => polls += 1,
                Err(e) if e.kind() == ErrorKind::Empty => break,
                Err(e) => panic!("{e}"),
            }
            assert!(polls < 10, "the loop spins after a late deadline");
        }
        let woke = woke.borrow();
        assert_eq!(woke.len(), 2, "{woke:?}");
        for &(what, at) in woke.iter() {
            assert!(at >= t0 + 0.1, "{what} woke before the blocking ended");
            assert!(at < t0 + 0.1 + LATE, "{what} woke {} s late", at - t0 - 0.1);
        }
        assert_eq!(sleeper_polls.get(), 2, "the sleeper was resumed once");
        assert_eq!(reader_polls.get(), 2, "the reader was resumed once");
    });
}

/// H4: a sleep deadline fires on time while two threads ping-pong over a
/// connection without pause: each waits for the other's byte, so every
/// wait of the loop returns I/O events at once (the seed checked expiry
/// only when a wait timed out).
#[test]
fn deadlines_fire_under_a_constant_stream_of_io_events() {
    bounded(10.0, || {
        let (l, addr) = listener(Family::Inet);
        let stop = Rc::new(Cell::new(false));
        let rounds = Rc::new(Cell::new(0u64));
        let (st, r) = (stop.clone(), rounds.clone());
        sock::newthread(async move {
            let c = Tcp::new(Family::Inet)?;
            c.connect(addr, Some(clock() + 2.0)).await?;
            let (s, _, _) = l.accept(Some(clock() + 2.0)).await?;
            let st2 = st.clone();
            let echo = sock::newthread(async move {
                let mut b = [0u8; 1];
                while !st2.get() {
                    s.recvall(&mut b, Some(clock() + 2.0)).await?;
                    s.sendall(&b, Some(clock() + 2.0)).await?;
                }
                sock::Result::Ok(())
            });
            let mut b = [0u8; 1];
            while !st.get() {
                c.sendall(b"x", Some(clock() + 2.0)).await?;
                c.recvall(&mut b, Some(clock() + 2.0)).await?;
                r.set(r.get() + 1);
            }
            c.sendall(b"x", Some(clock() + 2.0)).await?; // the echo's last
            echo.join().await?
        });
        let late = Rc::new(Cell::new(f64::NAN));
        let (st, lt) = (stop.clone(), late.clone());
        let target = clock() + 0.1;
        sock::newthread(async move {
            sock::sleep_until(target).await.unwrap();
            lt.set(clock() - target);
            st.set(true);
        });
        sock::start().unwrap();
        assert!(
            rounds.get() > 50,
            "only {} round trips: no stream of events",
            rounds.get()
        );
        let late = late.get();
        assert!(late >= 0.0, "fired {} s early", -late);
        assert!(late < LATE, "fired {late} s late under a stream of events");
    });
}

/// H4: a sleep deadline and an I/O deadline fire on time while another thread
/// keeps the loop busy with sleep(0) yields.
#[test]
fn deadlines_fire_while_another_thread_yields_constantly() {
    bounded(10.0, || {
        let (l, addr) = listener(Family::Inet);
        let _peer = std::net::TcpStream::connect(addr.tostring()).unwrap();
        let done = Rc::new(Cell::new(0));
        let yields = Rc::new(Cell::new(0u64));
        let (d, y) = (done.clone(), yields.clone());
        let t_start = clock();
        sock::newthread(async move {
            while d.get() < 2 && clock() < t_start + 3.0 {
                sock::sleep(0.0).await.unwrap();
                y.set(y.get() + 1);
            }
        });
        let times = Rc::new(RefCell::new(Vec::new()));
        let (d, tm) = (done.clone(), times.clone());
        let target = clock() + 0.05;
        sock::newthread(async move {
            sock::sleep_until(target).await.unwrap();
            tm.borrow_mut().push(("sleep", clock() - target));
            d.set(d.get() + 1);
        });
        let (d, tm) = (done.clone(), times.clone());
        sock::newthread(async move {
            let (c, _, _) = l.accept(Some(clock() + 2.0)).await.unwrap();
            let mut buf = [0u8; 4];
            let deadline = clock() + 0.05;
            let e = c.recv(&mut buf, Some(deadline)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Timeout);
            tm.borrow_mut().push(("recv", clock() - deadline));
            d.set(d.get() + 1);
        });
        sock::start().unwrap();
        assert_eq!(done.get(), 2);
        assert!(
            yields.get() > 100,
            "the loop was not busy: {} yields",
            yields.get()
        );
        for &(what, late) in times.borrow().iter() {
            assert!(late >= 0.0, "{what} fired {} s early", -late);
            assert!(late < LATE, "{what} fired {late} s late under load");
        }
    });
}
