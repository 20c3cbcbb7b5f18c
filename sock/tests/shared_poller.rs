//! Several OS threads, each with its own loop, sharing one epoll instance
//! (`epoll_fd` / `set_epoll_fd`): every event reaches the loop that owns its
//! socket, whichever loop's wait took it; nothing lost, nothing doubled, no
//! stale event for a closed socket reaches the socket that reuses its
//! descriptor. Loopback only; every wait is bounded.
//!
//! The epoll backend only: the portable backend has no descriptor to share.
#![cfg(all(target_os = "linux", not(feature = "portable")))]

mod util;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use sock::{Family, Tcp};
use util::{listener, open_fds, run, within};

/// A shared instance for the test: the calling OS thread's loop's, so that
/// the test threads that join it are the ones under test. Each test runs in
/// an OS thread of its own, hence a loop of its own.
fn shared_fd() -> std::os::fd::RawFd {
    sock::epoll_fd().expect("epoll backend")
}

/// The descriptors open once this thread's loop shares its instance (its
/// instances and eventfd) and a listener was made once (the process's
/// reserve descriptor for `EMFILE`): what must be open again at the end.
fn baseline() -> (std::os::fd::RawFd, usize) {
    let fd = shared_fd();
    drop(listener(Family::Inet));
    (fd, open_fds())
}

/// A byte pattern that differs per connection and per message.
fn pattern(conn: usize, msg: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (conn * 31 + msg * 7 + i) as u8).collect()
}

/// One OS thread's work: `conns` echo connections on its own listener, each
/// sending `msgs` messages of varied sizes and checking every byte back.
/// Returns the bytes echoed.
fn echo_worker(fd: std::os::fd::RawFd, conns: usize, msgs: usize) -> usize {
    sock::set_epoll_fd(fd).expect("join the shared poller");
    echo(conns, msgs)
}

/// The echo work of [`echo_worker`] on the current loop.
fn echo(conns: usize, msgs: usize) -> usize {
    let total = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let t = total.clone();
    run(60.0, async move {
        let (l, addr) = listener(Family::Inet);
        let server = util::echo_server(l, conns);
        let mut clients = Vec::new();
        for i in 0..conns {
            let t = t.clone();
            let addr = addr.clone();
            clients.push(sock::newthread(async move {
                let c = Tcp::new(Family::Inet)?;
                c.connect(addr, within(20.0)).await?;
                for m in 0..msgs {
                    let out = pattern(i, m, 1 + (i * 13 + m * 101) % 3000);
                    c.sendall(&out, within(20.0)).await?;
                    let mut back = vec![0u8; out.len()];
                    c.recvall(&mut back, within(20.0)).await?;
                    assert_eq!(back, out, "connection {i} message {m}");
                    t.set(t.get() + out.len());
                }
                sock::Result::Ok(())
            }));
        }
        for c in clients {
            c.join().await??;
        }
        server.join().await??;
        Ok(())
    });
    total.get()
}

/// Reliability checklist: I2, K2 (docs/reliability.md).
#[test]
fn four_threads_share_one_poller_with_200_echo_connections_each() {
    let (fd, fds_before) = baseline();
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || echo_worker(fd, 200, 5)))
        .collect();
    let mut want = 0;
    for i in 0..200 {
        for m in 0..5 {
            want += 1 + (i * 13 + m * 101) % 3000;
        }
    }
    for t in threads {
        assert_eq!(t.join().expect("worker thread"), want, "every byte echoed");
    }
    // The workers' loops, sockets and private instances are gone with their
    // threads.
    assert_eq!(open_fds(), fds_before, "no descriptor left behind");
}

/// An event of a loop that is not waiting is taken by the loop that is, and
/// handed over: the owner finds it when it polls again.
/// Reliability checklist: D8, I2 (docs/reliability.md).
#[test]
fn an_event_taken_by_another_loop_reaches_the_owner() {
    let fd = shared_fd();
    // B: waits in its loop on the shared instance the whole time.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let b = std::thread::spawn(move || {
        sock::set_epoll_fd(fd).unwrap();
        // A thread that keeps the loop alive, waking every 10 ms to look at
        // the flag; in between, the loop waits on the shared instance.
        sock::newthread(async move {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                sock::sleep(0.01).await?;
            }
            sock::Result::Ok(())
        });
        sock::start().unwrap();
    });
    // A: its sockets, a reader parked on one; then A's OS thread sleeps
    // outside its loop while the data arrives: only B waits, so B takes the
    // event. A must still see it.
    sock::set_epoll_fd(fd).ok(); // this thread's loop made the instance
    let (l, addr) = listener(Family::Inet);
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let parked = std::rc::Rc::new(std::cell::Cell::new(false));
    let (g, p) = (got.clone(), parked.clone());
    let peer = std::net::TcpStream::connect(addr.to_std().unwrap()).unwrap();
    let reader = sock::newthread(async move {
        let (c, _, _) = l.accept(within(5.0)).await?;
        let mut buf = [0u8; 64];
        p.set(true);
        let n = c.recv(&mut buf, within(10.0)).await?;
        g.borrow_mut().extend_from_slice(&buf[..n]);
        sock::Result::Ok(())
    });
    // Until the reader has accepted and parked in recv.
    let end = sock::clock() + 5.0;
    while !parked.get() && sock::clock() < end {
        sock::poll(Some(0.01)).unwrap();
    }
    assert!(parked.get(), "accepted");
    std::io::Write::write_all(&mut &peer, b"over there").unwrap();
    std::thread::sleep(Duration::from_millis(100)); // B takes the event now
    let end = sock::clock() + 5.0;
    while !reader.is_finished() && sock::clock() < end {
        sock::poll(Some(0.05)).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    b.join().unwrap();
    assert!(
        matches!(reader.result(), Some(Ok(Ok(())))),
        "the reader was resumed"
    );
    assert_eq!(&got.borrow()[..], b"over there");
}

/// Sockets closed and descriptors reused under load, while other loops take
/// events from the same instance: no event of a closed socket reaches its
/// successor (a spurious readiness would show up as a wrong read or a
/// failure), and every exchange completes.
/// Reliability checklist: A6, I2 (docs/reliability.md).
#[test]
fn closed_sockets_and_reused_descriptors_under_load() {
    let fd = shared_fd();
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|k| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                sock::set_epoll_fd(fd).unwrap();
                barrier.wait();
                let rounds = std::rc::Rc::new(std::cell::Cell::new(0));
                let r = rounds.clone();
                run(60.0, async move {
                    let (l, addr) = listener(Family::Inet);
                    let l = std::rc::Rc::new(l);
                    for round in 0..300 {
                        // A pair, a message each way, then both closed: their
                        // descriptors (and slots) go to the next round's pair.
                        let c = Tcp::new(Family::Inet)?;
                        let l2 = l.clone();
                        let acc = sock::newthread(async move {
                            let (s, _, _) = l2.accept(within(10.0)).await?;
                            let mut buf = [0u8; 32];
                            let n = s.recv(&mut buf, within(10.0)).await?;
                            s.sendall(&buf[..n], within(10.0)).await?;
                            // Half the time an abortive close (RST), which
                            // raises error events on the peer.
                            if round % 2 == 0 {
                                s.setopt("so_linger", 0)?;
                            }
                            sock::Result::Ok(())
                        });
                        c.connect(addr.clone(), within(10.0)).await?;
                        let msg = format!("thread {k} round {round}");
                        c.sendall(msg.as_bytes(), within(10.0)).await?;
                        let mut buf = [0u8; 32];
                        let mut got = 0;
                        while got < msg.len() {
                            let n = c.recv(&mut buf[got..], within(10.0)).await?;
                            assert!(n > 0, "early end of stream in round {round}");
                            got += n;
                        }
                        assert_eq!(&buf[..got], msg.as_bytes());
                        acc.join().await??;
                        drop(c);
                        r.set(r.get() + 1);
                    }
                    Ok(())
                });
                rounds.get()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 300);
    }
}

/// A loop whose OS thread exits while the others go on: its sockets close
/// with it, and the others are not disturbed (events still routed, none to
/// the loop that is gone).
/// Reliability checklist: A7, I2 (docs/reliability.md).
#[test]
fn a_thread_exits_while_others_run() {
    let (fd, fds_before) = baseline();
    let short = std::thread::spawn(move || echo_worker(fd, 20, 2));
    let long: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || echo_worker(fd, 100, 10)))
        .collect();
    assert!(short.join().unwrap() > 0);
    // Sockets left open by an exiting thread: a listener and idle
    // connections, whose loop is dropped at exit.
    let leaver = std::thread::spawn(move || {
        sock::set_epoll_fd(fd).unwrap();
        let (l, addr) = listener(Family::Inet);
        let c = std::net::TcpStream::connect(addr.to_std().unwrap()).unwrap();
        sock::newthread(async move {
            let _conn = l.accept(within(5.0)).await;
            sock::sleep(30.0).await // still parked when the thread exits
        });
        sock::poll(Some(0.2)).unwrap();
        c // the peer end outlives the loop: its close comes after
    });
    let peer = leaver.join().unwrap();
    drop(peer); // events for the gone loop's (closed) sockets, if any, are dropped
    for t in long {
        assert!(t.join().unwrap() > 0);
    }
    assert_eq!(open_fds(), fds_before, "no descriptor left behind");
}

/// The safe handle: sent to other OS threads, valid after the loop it came
/// from is gone.
#[test]
fn a_shared_poller_outlives_the_loop_it_came_from() {
    let poller = std::thread::spawn(|| sock::SharedPoller::current().unwrap())
        .join()
        .unwrap(); // that thread's loop is gone; the handle's instance is not
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let p = poller.clone();
            std::thread::spawn(move || {
                p.join().unwrap();
                echo(50, 4)
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
    // Too late for a loop that already has its poller.
    std::thread::spawn(move || {
        drop(listener(Family::Inet));
        assert_eq!(poller.join().unwrap_err().name(), "invalid_argument");
    })
    .join()
    .unwrap();
}

/// A descriptor that is no epoll instance (a file, a socket, a closed number)
/// is refused, and the loop goes on with a poller of its own.
/// Reliability checklist: I5 (docs/reliability.md).
#[test]
fn set_epoll_fd_refuses_what_is_not_an_epoll_instance() {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open("/dev/null").unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for fd in [file.as_raw_fd(), sock.as_raw_fd(), 100_000, -1] {
        let r = std::thread::spawn(move || {
            let e = sock::set_epoll_fd(fd).unwrap_err();
            // The loop still works, on its own instance.
            run(5.0, async {
                let (l, addr) = listener(Family::Inet);
                let c = Tcp::new(Family::Inet)?;
                c.connect(addr, within(2.0)).await?;
                drop(l.accept(within(2.0)).await?);
                Ok(())
            });
            (e.name(), sock::epoll_fd().is_ok())
        })
        .join()
        .unwrap();
        let want = if fd == file.as_raw_fd() || fd == sock.as_raw_fd() {
            "invalid_argument" // not an epoll instance
        } else {
            "closed" // no such descriptor (EBADF)
        };
        assert_eq!(r.0, want, "fd {fd}");
        assert!(r.1, "fd {fd}: the loop has its own poller");
    }
}
