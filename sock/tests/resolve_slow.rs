//! A slow resolver (the pool's delay hook, process-wide: this binary has one
//! test): the other threads keep running while a lookup takes a second, a
//! deadline wins over the lookup, closing a socket wakes its connect's
//! lookup, the late result is dropped, and a later lookup is not held up by
//! it.

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use sock::{clock, ErrorKind, Hints};
use util::bounded;

/// Reliability checklist: A3, B7, G5, H7 (docs/reliability.md).
#[test]
fn a_slow_lookup_parks_only_its_thread_and_its_deadline_wins() {
    bounded(60.0, || {
        sock::set_lookup_delay(1.0);
        // A ticker every 10 ms beside a lookup that takes 1 s.
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let t = ticks.clone();
        let lookup = sock::newthread(async move {
            let t0 = clock();
            let list = sock::resolve("localhost", 80, &Hints::default(), None).await?;
            sock::Result::Ok((clock() - t0, list.first().addr().port()))
        });
        let done = Rc::new(std::cell::Cell::new(false));
        let d = done.clone();
        let ticker = sock::newthread(async move {
            while !d.get() {
                sock::sleep(0.01).await?;
                t.borrow_mut().push(clock());
            }
            sock::Result::Ok(())
        });
        while !lookup.is_finished() {
            sock::poll(Some(1.0)).unwrap();
        }
        done.set(true);
        sock::start().unwrap();
        let (took, port) = lookup.result().unwrap().unwrap().unwrap();
        assert!(took >= 1.0, "the delay hook delays: {took}");
        assert_eq!(port, 80);
        assert!(matches!(ticker.result(), Some(Ok(Ok(())))));
        let ticks = ticks.borrow();
        assert!(
            ticks.len() >= 20,
            "{} ticks during a 1 s lookup",
            ticks.len()
        );
        let gap = ticks.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        // The loop never stopped for the lookup (it takes 1 s).
        assert!(gap < 0.25, "a {gap} s gap between ticks");

        // The deadline wins: timeout at once, though the lookup goes on.
        let t = sock::newthread(async {
            let t0 = clock();
            let e = sock::resolve("localhost", 80, &Hints::default(), Some(clock() + 0.1))
                .await
                .unwrap_err();
            sock::Result::Ok((e.kind(), clock() - t0))
        });
        sock::start().unwrap();
        let (kind, took) = t.result().unwrap().unwrap().unwrap();
        assert_eq!(kind, ErrorKind::Timeout);
        assert!((0.1..0.9).contains(&took), "timed out after {took} s");

        // connect's and sendto's lookups of a host name: under their deadline.
        let t = sock::newthread(async {
            let c = sock::Tcp::new(sock::Family::Inet)?;
            let t0 = clock();
            let e = c
                .connect(("localhost", 9), Some(clock() + 0.1))
                .await
                .unwrap_err();
            let u = sock::Udp::new(sock::Family::Inet)?;
            let f = u
                .sendto(("localhost", 9), b"x", Some(clock() + 0.1))
                .await
                .unwrap_err();
            sock::Result::Ok((e.kind(), f.kind(), clock() - t0))
        });
        sock::start().unwrap();
        let (e, f, took) = t.result().unwrap().unwrap().unwrap();
        assert_eq!((e, f), (ErrorKind::Timeout, ErrorKind::Timeout));
        assert!(took < 1.5, "two lookups timed out after {took} s");

        // Closing the socket of a connect that is still resolving wakes it
        // with `closed` at once (the lookup takes 1 s).
        let c = Rc::new(sock::Tcp::new(sock::Family::Inet).unwrap());
        let c2 = c.clone();
        let t = sock::newthread(async move {
            let t0 = clock();
            let e = c2.connect(("localhost", 9), None).await.unwrap_err();
            sock::Result::Ok((e.kind(), clock() - t0))
        });
        // A second connect meanwhile waits for its turn after the first
        // (B7: it is no longer `busy`); the close wakes it too.
        let c3 = c.clone();
        let second = sock::newthread(async move {
            sock::sleep(0.05).await?;
            let e = c3.connect(("localhost", 9), None).await.unwrap_err();
            sock::Result::Ok(e.kind())
        });
        sock::newthread(async move {
            sock::sleep(0.1).await?;
            c.close();
            sock::Result::Ok(())
        });
        sock::start().unwrap();
        assert_eq!(
            second.result().unwrap().unwrap().unwrap(),
            ErrorKind::Closed
        );
        let (kind, took) = t.result().unwrap().unwrap().unwrap();
        assert_eq!(kind, ErrorKind::Closed);
        assert!((0.1..0.9).contains(&took), "closed after {took} s");

        // A lookup right after is not held up by the abandoned ones (each
        // has a pool thread of its own).
        sock::set_lookup_delay(0.0);
        let t = sock::newthread(async {
            let t0 = clock();
            sock::resolve("localhost", 80, &Hints::default(), Some(clock() + 5.0)).await?;
            sock::Result::Ok(clock() - t0)
        });
        sock::start().unwrap();
        let took = t.result().unwrap().unwrap().unwrap();
        assert!(took < 0.8, "held up for {took} s");
        // The abandoned lookup's thread finishes; nothing is left waiting.
        std::thread::sleep(std::time::Duration::from_secs_f64(1.2));
        assert_eq!(sock::poll(Some(0.0)).unwrap_err().kind(), ErrorKind::Empty);
    });
}
