//! Lookups off the loop (`sock::resolve`): many at once on a bounded pool
//! (a burst of 10,000 from four loops queues),
//! numeric hosts without the pool, the blocking form outside threads, and
//! the error names. (The slow resolver: `resolve_slow.rs`, a binary of its
//! own because its delay hook is process-wide.)

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use sock::{ErrorKind, Family, Hints};
use util::bounded;

/// Reliability checklist: G5 (docs/reliability.md).
#[test]
fn a_thousand_concurrent_lookups_all_succeed_on_a_bounded_pool() {
    bounded(60.0, || {
        let max = sock::resolver_threads();
        let ok = Rc::new(RefCell::new(0usize));
        let most = Rc::new(RefCell::new(0usize));
        for _ in 0..1000 {
            let (ok, most) = (ok.clone(), most.clone());
            sock::newthread(async move {
                let list = sock::resolve("localhost", 80, &Hints::default(), None).await?;
                assert_eq!(list.first().addr().port(), 80);
                let alive = sock::resolver_threads_alive();
                let mut m = most.borrow_mut();
                *m = (*m).max(alive);
                *ok.borrow_mut() += 1;
                sock::Result::Ok(())
            });
        }
        sock::start().unwrap();
        assert_eq!(*ok.borrow(), 1000);
        assert!(*most.borrow() <= max, "{} resolver threads", most.borrow());
        assert!(sock::resolver_threads_alive() <= max);
    });
}

/// Reliability checklist: G5 (docs/reliability.md).
#[test]
fn a_burst_of_ten_thousand_lookups_from_four_loops_queues_on_the_pool() {
    bounded(120.0, || {
        let max = sock::resolver_threads();
        // Four OS threads, each with its own loop: every answer reaches the
        // loop that asked, and the pool stays at its size.
        let loops: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let ok = Rc::new(RefCell::new(0usize));
                    let most = Rc::new(RefCell::new(0usize));
                    for i in 0..2500u16 {
                        let (ok, most) = (ok.clone(), most.clone());
                        sock::newthread(async move {
                            let list =
                                sock::resolve("localhost", i, &Hints::default(), None).await?;
                            assert_eq!(list.first().addr().port(), i);
                            let mut m = most.borrow_mut();
                            *m = (*m).max(sock::resolver_threads_alive());
                            *ok.borrow_mut() += 1;
                            sock::Result::Ok(())
                        });
                    }
                    sock::start().unwrap();
                    let (ok, most) = (*ok.borrow(), *most.borrow());
                    (ok, most)
                })
            })
            .collect();
        let mut seen = 0;
        for l in loops {
            let (ok, most) = l.join().unwrap();
            assert_eq!(ok, 2500);
            assert!(most <= max, "{most} resolver threads");
            seen = seen.max(most);
        }
        assert!(seen >= 1, "the lookups ran on the pool");
        assert!(sock::resolver_threads_alive() <= max);
    });
}

#[test]
fn numeric_hosts_and_unix_paths_need_no_resolver_thread() {
    bounded(10.0, || {
        let t = sock::newthread(async {
            let h = Hints::default();
            let a = sock::resolve("127.0.0.1", 8080, &h, None).await?;
            let b = sock::resolve("::1", "443", &h, None).await?;
            let c = sock::resolve("*", 0, &h, None).await?;
            let u = Hints {
                family: Some(Family::Unix),
                ..Hints::default()
            };
            let d = sock::resolve("/tmp/x.sock", 0, &u, None).await?;
            sock::Result::Ok((
                a.first().to_string(),
                b.first().to_string(),
                !c.is_empty(),
                d.first().family(),
            ))
        });
        // Answered inside newthread: no wait for a pool thread.
        assert!(t.is_finished());
        let (a, b, c, d) = t.result().unwrap().unwrap().unwrap();
        assert_eq!(a, "127.0.0.1:8080");
        assert_eq!(b, "[::1]:443");
        assert!(c);
        assert_eq!(d, Family::Unix);
    });
}

/// Reliability checklist: B5 (docs/reliability.md).
#[test]
fn outside_threads_resolve_is_the_blocking_lookup_and_errors_keep_their_names() {
    bounded(30.0, || {
        let r = pollster(sock::resolve("localhost", "80", &Hints::default(), None));
        assert_eq!(r.unwrap().first().addr().port(), 80);
        let t = sock::newthread(async {
            let e = sock::resolve("no-such-host.invalid", 80, &Hints::default(), None)
                .await
                .unwrap_err();
            let empty = sock::resolve("", 80, &Hints::default(), None)
                .await
                .unwrap_err();
            sock::Result::Ok((e.kind(), empty.kind()))
        });
        sock::start().unwrap();
        let (e, empty) = t.result().unwrap().unwrap().unwrap();
        assert!(
            matches!(
                e,
                ErrorKind::HostNotFound | ErrorKind::TryAgain | ErrorKind::LookupFailed
            ),
            "{e:?}"
        );
        assert_eq!(empty, ErrorKind::InvalidArgument);
    });
}

/// Polls a future that completes on its first poll (no sock thread here).
fn pollster<F: std::future::Future>(f: F) -> F::Output {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the lookup waited outside a thread"),
    }
}
