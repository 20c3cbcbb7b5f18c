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
