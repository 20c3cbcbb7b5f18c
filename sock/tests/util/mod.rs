//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each test file uses a different subset.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use sock::{Family, SockAddr, Tcp};

/// The factor of the watchdogs' limits (`run`, `bounded`): 1, or
/// `SOCK_TEST_TIME_SCALE` (scripts/memcheck.sh runs the tests under
/// valgrind, some ten times slower). The tests' own deadlines stay as they are.
pub fn time_scale() -> f64 {
    std::env::var("SOCK_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| *f >= 1.0)
        .unwrap_or(1.0)
}

/// Runs `f` as a sock thread and drives the loop until it returns; fails the
/// test if it returned an error or did not finish within `limit` seconds.
/// Other threads the test started may still be parked when it returns.
pub fn run<F>(limit: f64, f: F)
where
    F: Future<Output = sock::Result<()>> + 'static,
{
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    sock::newthread(async move {
        let r = f.await;
        *o.borrow_mut() = Some(r);
    });
    let limit = limit * time_scale();
    let end = sock::clock() + limit;
    while out.borrow().is_none() {
        assert!(
            sock::clock() < end,
            "the test did not finish within {limit} s"
        );
        match sock::poll(Some(0.05)) {
            Ok(_) => {}
            Err(e) if e.kind() == sock::ErrorKind::Empty => break,
            Err(e) => panic!("poll failed: {e}"),
        }
    }
    let r = out
        .borrow_mut()
        .take()
        .expect("the test thread did not finish");
    if let Err(e) = r {
        panic!("test thread failed: {e} (done: {})", e.done());
    }
}

/// Seconds from now on the sock clock.
pub fn within(s: f64) -> Option<f64> {
    Some(sock::clock() + s)
}

/// A listening TCP socket on loopback at an ephemeral port, and its address.
pub fn listener(family: Family) -> (Tcp, SockAddr) {
    let host = if family == Family::Inet6 {
        "::1"
    } else {
        "127.0.0.1"
    };
    let l = Tcp::new(family).unwrap();
    l.listen(None, (host, 0)).unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Whether this machine has IPv6 on loopback.
pub fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// The number of open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Starts a thread that accepts `conns` connections on `l` and echoes each
/// (a thread per connection, 20 s deadlines) until its client closes.
pub fn echo_server(l: Tcp, conns: usize) -> sock::Thread<sock::Result<()>> {
    sock::newthread(async move {
        for _ in 0..conns {
            let (c, _, _) = l.accept(within(20.0)).await?;
            sock::newthread(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let n = c.recv(&mut buf, within(20.0)).await?;
                    if n == 0 {
                        return sock::Result::Ok(());
                    }
                    c.sendall(&buf[..n], within(20.0)).await?;
                }
            });
        }
        Ok(())
    })
}

thread_local! {
    static REPORTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a new OS thread and fails if it panics, does not return within
/// `limit` seconds, or leaves failures reported to the default test handler.
pub fn bounded<F: FnOnce() + Send + 'static>(limit: f64, f: F) {
    let limit = limit * time_scale();
    let (tx, rx) = mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        let _tx = tx; // dropped when f returns or unwinds
        sock::set_error_handler(|id, msg| {
            REPORTS.with(|r| r.borrow_mut().push(format!("thread {id:?}: {msg}")))
        });
        f();
        let reports = REPORTS.with(|r| r.borrow().clone());
        assert!(reports.is_empty(), "sock threads failed: {reports:?}");
    });
    if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs_f64(limit)) {
        panic!("the test did not finish within {limit} s (hang)");
    }
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}
