//! Parking and timed jobs: suspend/resume, sleep jobs, run_at / run_after /
//! run_every with cancel, and start_for; the reliability checklist's H5
//! (timers in order, none lost, many pending), H8 (a cancelled timer never
//! fires, wakeup) and H9 (the loop ends when nothing is left): see
//! docs/reliability.md.
//!
//! Every test runs on a fresh OS thread (a fresh loop) under `bounded`.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use sock::{clock, ErrorKind, Family, Tcp, ThreadId};
use util::{bounded, listener};

/// A log of events, shared by the threads of a test.
type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

#[test]
fn two_threads_ping_pong_through_suspend_and_resume() {
    bounded(10.0, || {
        let log = log();
        let turn = Rc::new(Cell::new(0u32));
        let (l, t) = (log.clone(), turn.clone());
        // The ponger suspends; each resume runs it until it suspends again.
        let ponger = sock::newthread(async move {
            loop {
                sock::suspend().await?;
                let n = t.get();
                push(&l, format!("pong {n}"));
                if n == 1000 {
                    return sock::Result::Ok(n);
                }
            }
        });
        let pid = ponger.id();
        let (l, t) = (log.clone(), turn.clone());
        let pinger = sock::newthread(async move {
            for n in 1..=1000 {
                t.set(n);
                push(&l, format!("ping {n}"));
                sock::resume(pid)?;
                // resume came back: the ponger has run and parked (or ended).
                let last = l.borrow().last().cloned();
                assert_eq!(last.as_deref(), Some(&*format!("pong {n}")));
                sock::sleep(0.0).await?; // and the pinger blocks between turns
            }
            sock::Result::Ok(())
        });
        sock::start().unwrap();
        assert!(matches!(pinger.result(), Some(Ok(Ok(())))));
        assert!(matches!(ponger.result(), Some(Ok(Ok(1000)))));
        let log = log.borrow();
        assert_eq!(log.len(), 2000);
        for (i, pair) in log.chunks(2).enumerate() {
            assert_eq!(pair, [format!("ping {}", i + 1), format!("pong {}", i + 1)]);
        }
    });
}

#[test]
fn resume_refuses_threads_that_are_not_suspended() {
    bounded(10.0, || {
        let (l, addr) = listener(Family::Inet);
        // Parked in I/O (an accept), and parked in a sleep.
        let in_io = sock::newthread(async move { l.accept(None).await.map(|_| ()) });
        let asleep = sock::newthread(async { sock::sleep(3600.0).await });
        let done = sock::newthread(async {});
        for id in [in_io.id(), asleep.id(), done.id()] {
            let e = sock::resume(id).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id}");
            assert!(e.message().contains("not suspended"), "{}", e.message());
        }
        // The refused threads are as they were: the accept still works.
        let me = sock::newthread(async move {
            // A thread resuming itself: it is running, not suspended.
            let own = sock::currentthread().unwrap();
            assert_eq!(
                sock::resume(own).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
            let c = Tcp::new(Family::Inet)?;
            c.connect(addr, Some(clock() + 5.0)).await
        });
        while !in_io.is_finished() || !me.is_finished() {
            sock::poll(Some(1.0)).unwrap();
        }
        assert!(matches!(in_io.result(), Some(Ok(Ok(())))));
        assert!(matches!(me.result(), Some(Ok(Ok(())))));
        assert!(!asleep.is_finished());
    });
}

#[test]
fn suspend_outside_a_thread_is_not_in_thread() {
    bounded(10.0, || {
        let r = complete_at_once(sock::suspend());
        assert_eq!(r.unwrap_err().kind(), ErrorKind::NotInThread);
    });
}

struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// Polls a future that must complete on its first poll (`Waker::noop`
/// needs Rust 1.85; the crate's MSRV is 1.80).
fn complete_at_once<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the future did not complete at once"),
    }
}

#[test]
fn a_suspended_thread_resumed_from_outside_the_loop_runs_until_it_blocks() {
    bounded(10.0, || {
        let log = log();
        let l = log.clone();
        let t = sock::newthread(async move {
            push(&l, "started");
            sock::suspend().await?;
            push(&l, "resumed");
            sock::sleep(0.01).await?; // blocks: resume returns here
            push(&l, "slept");
            sock::Result::Ok(())
        });
        assert_eq!(*log.borrow(), ["started"]);
        sock::resume(t.id()).unwrap();
        assert_eq!(*log.borrow(), ["started", "resumed"]);
        // Now it waits for a time: not resumable.
        assert!(sock::resume(t.id()).is_err());
        sock::start().unwrap();
        assert_eq!(*log.borrow(), ["started", "resumed", "slept"]);
    });
}

#[test]
fn a_thread_can_hand_control_back_to_the_thread_that_resumed_it() {
    bounded(10.0, || {
        // A resumes B; B, inside that resume, resumes A back after A
        // suspended... which it cannot, A is running: refused. Then B
        // suspends and A goes on.
        let log = log();
        let a_id: Rc<Cell<Option<ThreadId>>> = Rc::new(Cell::new(None));
        let (l, aid) = (log.clone(), a_id.clone());
        let b = sock::newthread(async move {
            sock::suspend().await?;
            let a = aid.get().unwrap();
            assert!(sock::resume(a).is_err()); // A is running (it resumed B)
            push(&l, "b");
            sock::suspend().await?;
            push(&l, "b again");
            sock::Result::Ok(())
        });
        let (bid, l) = (b.id(), log.clone());
        let a = sock::newthread(async move {
            a_id.set(sock::currentthread());
            sock::resume(bid)?;
            push(&l, "a");
            sock::resume(bid)?;
            push(&l, "a again");
            sock::Result::Ok(())
        });
        sock::start().unwrap();
        assert!(matches!(a.result(), Some(Ok(Ok(())))), "{:?}", a.result());
        assert!(matches!(b.result(), Some(Ok(Ok(())))), "{:?}", b.result());
        assert_eq!(*log.borrow(), ["b", "a", "b again", "a again"]);
    });
}

/// Reliability checklist: H8 (docs/reliability.md).
#[test]
fn a_sleep_job_woken_early_and_one_that_runs_its_course() {
    bounded(10.0, || {
        let job = sock::SleepJob::new();
        let out = Rc::new(RefCell::new(Vec::new()));
        let (j, o) = (job.clone(), out.clone());
        let sleeper = sock::newthread(async move {
            let t0 = clock();
            let woken = j.sleep(3600.0).await?;
            o.borrow_mut().push((woken, clock() - t0));
            // The same job again, not woken this time: runs its course.
            let t0 = clock();
            let woken = j.sleep(0.05).await?;
            o.borrow_mut().push((woken, clock() - t0));
            sock::Result::Ok(())
        });
        assert!(job.is_sleeping());
        let j = job.clone();
        sock::newthread(async move {
            sock::sleep(0.02).await?;
            assert!(j.wakeup());
            assert!(!j.wakeup(), "nobody sleeps any more");
            sock::Result::Ok(())
        });
        sock::start().unwrap();
        assert!(matches!(sleeper.result(), Some(Ok(Ok(())))));
        let out = out.borrow();
        assert!(out[0].0, "the first sleep was woken");
        assert!(out[0].1 < 10.0, "woken early: {} s", out[0].1);
        assert!(!out[1].0, "the second ran its course");
        assert!(out[1].1 >= 0.05, "not early: {} s", out[1].1);
        assert!(!job.wakeup() && !job.is_sleeping());
    });
}

/// Reliability checklist: H8 (docs/reliability.md).
#[test]
fn a_sleep_job_has_one_sleeper_at_a_time_and_wakeup_without_one_does_nothing() {
    bounded(10.0, || {
        let job = sock::SleepJob::new();
        assert!(!job.wakeup());
        let j = job.clone();
        let first = sock::newthread(async move { j.sleep(0.05).await });
        let j = job.clone();
        let second = sock::newthread(async move { j.sleep(0.05).await });
        sock::start().unwrap();
        // A wake-up before the sleep did not carry over to it.
        assert!(matches!(first.result(), Some(Ok(Ok(false)))));
        let e = second.result().unwrap().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // A sleep that was dropped (cancelled) frees the job.
        let j = job.clone();
        let t = sock::newthread(async move {
            let s = j.sleep(3600.0);
            drop(s);
            j.sleep(0.0).await
        });
        sock::start().unwrap();
        assert!(matches!(t.result(), Some(Ok(Ok(false)))));
    });
}

#[test]
fn run_at_and_run_after_start_threads_in_time_order_and_keep_the_loop_alive() {
    bounded(20.0, || {
        let log = log();
        let t0 = clock();
        for (i, s) in [0.03, 0.01, 0.02].into_iter().enumerate() {
            let l = log.clone();
            sock::run_after(s, move || async move {
                push(&l, format!("{i}"));
                let late = clock() - (t0 + s);
                assert!(late >= 0.0, "job {i} ran {} s early", -late);
            })
            .unwrap();
        }
        let l = log.clone();
        sock::run_at(t0 - 1.0, move || async move { push(&l, "past") }).unwrap();
        // Nothing runs before the loop does.
        assert!(log.borrow().is_empty());
        sock::start().unwrap(); // no thread is alive: the jobs keep it going
        assert_eq!(*log.borrow(), ["past", "1", "2", "0"]);
        assert_eq!(sock::poll(Some(0.0)).unwrap_err().kind(), ErrorKind::Empty);
    });
}

/// Reliability checklist: H5, H8 (docs/reliability.md).
#[test]
fn ten_thousand_pending_run_after_timers() {
    bounded(60.0, || {
        let fired = Rc::new(RefCell::new(Vec::new()));
        let t0 = clock();
        let mut timers = Vec::new();
        for i in 0..10_000u32 {
            // Scattered deadlines within 0.2 s, none equal.
            let s = t0 + 0.05 + f64::from((i * 7919) % 10_000) * 0.000_015;
            let f = fired.clone();
            timers.push((
                s,
                sock::run_at(s, move || async move { f.borrow_mut().push((s, i)) }).unwrap(),
            ));
        }
        // Half of them cancelled before their time: those never run.
        let mut cancelled = 0;
        for (i, (_, tm)) in timers.iter().enumerate() {
            if i % 2 == 1 {
                assert!(tm.cancel());
                assert!(!tm.cancel(), "cancelled once");
                cancelled += 1;
            }
        }
        sock::start().unwrap();
        let fired = fired.borrow();
        assert_eq!(fired.len(), 10_000 - cancelled);
        assert!(fired.iter().all(|&(_, i)| i % 2 == 0));
        // In deadline order.
        assert!(fired.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(clock() - t0 >= 0.05);
        assert!(timers.iter().all(|(_, tm)| !tm.is_pending()));
    });
}

/// Reliability checklist: H8 (docs/reliability.md).
#[test]
fn run_every_stops_when_cancelled_and_when_a_run_returns_false() {
    bounded(20.0, || {
        // Stopped by its own run.
        let runs = Rc::new(Cell::new(0));
        let r = runs.clone();
        let stops = sock::run_every(0.005, move || {
            let r = r.clone();
            async move {
                r.set(r.get() + 1);
                r.get() < 5
            }
        })
        .unwrap();
        // Cancelled from another thread after a while.
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let t = ticks.clone();
        let t0 = clock();
        let every = sock::run_every(0.01, move || {
            let t = t.clone();
            async move {
                t.borrow_mut().push(clock());
                true
            }
        })
        .unwrap();
        let (e, t) = (every.clone(), ticks.clone());
        sock::newthread(async move {
            sock::sleep(0.105).await?;
            assert!(e.cancel());
            let n = t.borrow().len();
            sock::sleep(0.05).await?;
            assert_eq!(t.borrow().len(), n, "no run after the cancel");
            sock::Result::Ok(())
        });
        sock::start().unwrap(); // ends: both jobs are gone
        assert_eq!(runs.get(), 5);
        assert!(!stops.is_pending() && !every.is_pending());
        let ticks = ticks.borrow();
        assert!((5..=11).contains(&ticks.len()), "{} ticks", ticks.len());
        // Every 0.01 s from the start, never early (a late run does not
        // push the later ones back).
        for (k, &at) in ticks.iter().enumerate() {
            assert!(at >= t0 + 0.01 * (k + 1) as f64, "run {k} early");
        }
    });
}

#[test]
fn runs_of_a_repeating_job_never_overlap() {
    bounded(20.0, || {
        let running = Rc::new(Cell::new(false));
        let runs = Rc::new(Cell::new(0));
        let (r, n) = (running.clone(), runs.clone());
        sock::run_every(0.001, move || {
            let (r, n) = (r.clone(), n.clone());
            async move {
                assert!(!r.replace(true), "two runs at once");
                sock::sleep(0.01).await.unwrap(); // longer than the interval
                r.set(false);
                n.set(n.get() + 1);
                n.get() < 4
            }
        })
        .unwrap();
        sock::start().unwrap();
        assert_eq!(runs.get(), 4);
    });
}

/// Reliability checklist: H11 (docs/reliability.md).
#[test]
fn a_repeating_job_whose_run_panics_is_removed() {
    bounded(20.0, || {
        let reports = Rc::new(RefCell::new(Vec::new()));
        let r = reports.clone();
        sock::set_error_handler(move |_, msg| r.borrow_mut().push(msg.to_owned()));
        let tm = sock::run_every(0.001, || async { panic!("run failed") }).unwrap();
        sock::start().unwrap(); // ends: the job went with its run
        assert!(!tm.is_pending());
        assert_eq!(reports.borrow().len(), 1);
    });
}

#[test]
fn bad_job_times_are_invalid_arguments() {
    bounded(10.0, || {
        let e = sock::run_at(f64::NAN, || async {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = sock::run_at(f64::INFINITY, || async {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = sock::run_every(s, || async { false }).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{s}");
        }
        assert_eq!(sock::poll(Some(0.0)).unwrap_err().kind(), ErrorKind::Empty);
    });
}

#[test]
fn start_for_returns_when_the_time_runs_out_or_the_work_is_done() {
    bounded(10.0, || {
        let t = sock::newthread(async { sock::sleep(3600.0).await });
        let t0 = clock();
        assert!(!sock::start_for(0.05).unwrap());
        let took = clock() - t0;
        assert!(took >= 0.05, "{took}");
        assert!(!t.is_finished());
        drop(t);
        let u = sock::newthread(async { sock::sleep(0.01).await });
        // The sleeper of an hour is still there: a bounded start ends on time.
        assert!(!sock::start_for(0.1).unwrap());
        assert!(u.is_finished());
        assert_eq!(
            sock::start_for(f64::NAN).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        // With the work done, it returns true before its time.
        let l = sock::Loop::new();
        l.enter(|| {
            sock::newthread(async { sock::sleep(0.01).await });
            let t0 = clock();
            assert!(sock::start_for(5.0).unwrap());
            assert!(clock() - t0 < 4.0);
        });
    });
}
