//! One listener, several loops: the loop of each OS thread adopts its own
//! clone of one `std::net::TcpListener` (`Tcp::from_listener`; on epoll an
//! exclusive registration), and every connection is accepted by exactly one
//! of them. Loopback only; every wait is bounded.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sock::{Family, Tcp};
use util::{open_fds, run, within};

const LOOPS: usize = 4;
const CONNS: usize = 200;

/// A worker: adopts `mine`, accepts until `accepted` (over all workers)
/// reaches `CONNS`, echoes an 8-byte id on each connection; returns how many
/// connections it accepted.
fn worker(mine: std::net::TcpListener, accepted: Arc<AtomicUsize>) -> usize {
    let l = Tcp::from_listener(mine).unwrap();
    let count = Rc::new(Cell::new(0));
    let n = count.clone();
    run(30.0, async move {
        while accepted.load(Ordering::SeqCst) < CONNS {
            let (c, _, _) = match l.accept(within(0.05)).await {
                Ok(a) => a,
                Err(e) if e.name() == "timeout" => continue,
                Err(e) => return Err(e),
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            n.set(n.get() + 1);
            sock::newthread(async move {
                let mut id = [0u8; 8];
                c.recvall(&mut id, within(20.0)).await?;
                c.sendall(&id, within(20.0)).await
            });
        }
        Ok(())
    });
    sock::start().unwrap(); // the echoes still under way
    count.get()
}

/// Reliability checklist: C7, I2 (docs/reliability.md).
#[test]
fn four_loops_adopt_one_listener_and_accept_each_connection_once() {
    // What must be open again at the end: this thread's loop (made by a
    // first socket) and the process's reserve descriptor for `EMFILE`.
    drop(util::listener(Family::Inet));
    let fds_before = open_fds();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..LOOPS)
        .map(|_| {
            let mine = listener.try_clone().unwrap();
            let accepted = accepted.clone();
            std::thread::spawn(move || worker(mine, accepted))
        })
        .collect();
    drop(listener); // the workers' clones keep it open
    run(30.0, async move {
        let clients: Vec<_> = (0..CONNS as u64)
            .map(|i| {
                sock::newthread(async move {
                    let c = Tcp::new(Family::Inet)?;
                    c.connect(("127.0.0.1", port), within(20.0)).await?;
                    c.sendall(&i.to_le_bytes(), within(20.0)).await?;
                    let mut back = [0u8; 8];
                    c.recvall(&mut back, within(20.0)).await?;
                    assert_eq!(u64::from_le_bytes(back), i, "each client its own echo");
                    sock::Result::Ok(())
                })
            })
            .collect();
        for t in clients {
            t.join().await??;
        }
        Ok(())
    });
    let per_worker: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        CONNS,
        "each accepted once: {per_worker:?}"
    );
    assert_eq!(open_fds(), fds_before, "no descriptor left behind");
}

/// Reliability checklist: I5 (docs/reliability.md).
#[test]
fn from_listener_refuses_what_is_not_tcp() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let not_tcp = std::net::TcpListener::from(std::os::fd::OwnedFd::from(udp));
    let e = Tcp::from_listener(not_tcp).unwrap_err();
    assert_eq!(e.name(), "invalid_argument");
}

/// A loop that closes its clone of the listener, and goes on waiting on
/// other things, takes none of the connections' wake-ups: with an exclusive
/// registration, a connection wakes one of the loops, and a registration
/// left behind by the close (the other clones keep the file open) would be
/// woken instead of the loop that still accepts. Each of 20 connections,
/// made one at a time, is accepted by the other loop within 2 s.
#[test]
fn a_closed_clone_takes_no_wake_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let quitter_clone = listener.try_clone().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let c2 = closed.clone();
    let quitter = std::thread::spawn(move || {
        let l = Tcp::from_listener(quitter_clone).unwrap();
        run(20.0, async move {
            l.close();
            c2.store(1, Ordering::SeqCst);
            // Alive, waiting in its poller, for as long as the test runs.
            sock::sleep(3.0).await?;
            Ok(())
        });
    });
    while closed.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let l = Tcp::from_listener(listener).unwrap();
    // Each connection comes while the loop waits in its accept (a
    // connection already queued would be taken by accept's first attempt,
    // without a wake-up).
    let client = std::thread::spawn(move || {
        (0..20)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()
            })
            .collect::<Vec<_>>()
    });
    run(30.0, async move {
        for i in 0..20u8 {
            let (s, _, _) = l
                .accept(within(2.0))
                .await
                .map_err(|e| sock::Error::with_message(e.kind(), format!("connection {i}: {e}")))?;
            drop(s);
        }
        Ok(())
    });
    drop(client.join().unwrap());
    quitter.join().unwrap();
}
