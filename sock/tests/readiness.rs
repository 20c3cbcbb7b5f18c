//! Readiness tracking: inside a thread, an attempt that an `EAGAIN` or a short
//! stream read showed to be pointless parks without its syscall until an event
//! comes; hang-ups keep reads ready for good. Loopback only, waits bounded.

mod util;

use sock::{Family, SockAddr, Tcp};
use util::{listener, run, within};

/// The epoll backend skips attempts; the portable one (one-shot, events only
/// while a thread waits) always makes them.
const EDGE_TRIGGERED: bool = cfg!(all(target_os = "linux", not(feature = "portable")));

async fn pair(l: &Tcp, addr: &SockAddr) -> sock::Result<(Tcp, Tcp)> {
    let c = Tcp::new(addr.family())?;
    c.connect(addr.clone(), within(2.0)).await?;
    let (s, _, _) = l.accept(within(2.0)).await?;
    Ok((c, s))
}

/// Waits (yielding to the loop, which polls) until `f` is true.
async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        sock::sleep(0.001).await.unwrap();
    }
    panic!("condition not met in 2 s");
}

/// Reliability checklist: D1, D8 (docs/reliability.md).
#[test]
fn a_short_read_skips_the_next_attempt_until_an_event() {
    run(5.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        c.sendall(b"ab", within(2.0)).await?;
        let mut buf = [0u8; 16];
        until(|| matches!(s.try_recv(&mut buf), Ok(Some(_)))).await;
        // That read was short (2 of 16): the queue is empty. Bytes sent now
        // are in s's queue at once on loopback, but no event has been seen:
        c.sendall(b"cd", within(2.0)).await?;
        if EDGE_TRIGGERED {
            assert_eq!(
                s.try_recv(&mut buf)?,
                None,
                "no recv(2) before the loop has seen the event"
            );
        }
        // The next poll brings the event, and the attempt finds the bytes.
        let mut got = None;
        until(|| {
            got = s.try_recv(&mut buf).ok().flatten();
            got.is_some()
        })
        .await;
        assert_eq!(&buf[..got.unwrap()], b"cd");
        // A blocking recv after a short read parks first and is woken.
        let w = sock::newthread(async move {
            let mut b = [0u8; 16];
            let n = s.recv(&mut b, within(2.0)).await?;
            sock::Result::Ok(b[..n].to_vec())
        });
        c.sendall(b"ef", within(2.0)).await?;
        assert_eq!(w.join().await??, b"ef");
        Ok(())
    });
}

#[test]
fn attempts_outside_threads_always_make_their_syscall() {
    // No thread of the loop runs here: each try_recv asks the kernel.
    let lp = sock::Loop::new();
    lp.enter(|| {
        let l = Tcp::new(Family::Inet).unwrap();
        l.listen(None, ("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr.to_std().unwrap()).unwrap();
        let mut conn = None;
        for _ in 0..2000 {
            if let Some((t, _, _)) = l.try_accept().unwrap() {
                conn = Some(t);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let s = conn.expect("accepted");
        let mut buf = [0u8; 16];
        assert_eq!(s.try_recv(&mut buf).unwrap(), None, "EAGAIN");
        std::io::Write::write_all(&mut &c, b"xy").unwrap();
        let mut n = None;
        for _ in 0..2000 {
            n = s.try_recv(&mut buf).unwrap();
            if n.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(n, Some(2), "found without any poll of the loop");
    });
}

/// Reliability checklist: D1, D5, D8, I1 (docs/reliability.md).
#[test]
fn end_of_stream_after_a_short_read_is_not_missed() {
    // The data and the FIN arrive before the loop polls: one event carries
    // both. The short read clears readiness, the hang-up keeps reads ready.
    run(5.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        c.sendall(b"last", within(2.0)).await?;
        c.shutdown(sock::Shutdown::Write)?;
        sock::sleep(0.05).await?; // both are in s's queue, and polled
        let mut buf = [0u8; 64];
        assert_eq!(s.recv(&mut buf, within(2.0)).await?, 4);
        assert_eq!(s.recv(&mut buf, within(1.0)).await?, 0, "EOF, no hang");
        assert_eq!(s.try_recv(&mut buf)?, Some(0), "and again");
        Ok(())
    });
}

/// Reliability checklist: A7, D6, I1 (docs/reliability.md).
#[test]
fn a_reset_after_a_short_read_is_reported() {
    run(5.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        c.sendall(b"x", within(2.0)).await?;
        sock::sleep(0.02).await?;
        let mut buf = [0u8; 64];
        assert_eq!(s.recv(&mut buf, within(2.0)).await?, 1);
        c.setopt("so_linger", 0)?;
        drop(c); // RST
        let e = s.recv(&mut buf, within(1.0)).await.unwrap_err();
        assert_eq!(e.name(), "connection_reset");
        Ok(())
    });
}

/// Reliability checklist: D8, H1 (docs/reliability.md).
#[test]
fn an_expired_deadline_still_gets_its_attempt() {
    // Readiness was cleared (EAGAIN), data then arrived: a deadline in the
    // past must not win over bytes that are there.
    run(5.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        let mut buf = [0u8; 8];
        assert_eq!(s.try_recv(&mut buf)?, None);
        c.sendall(b"now", within(2.0)).await?;
        let n = s.recv(&mut buf, Some(sock::clock() - 1.0)).await?;
        assert_eq!(&buf[..n], b"now");
        Ok(())
    });
}

/// Drives the loop by hand (`poll` with a 50 ms cap) for `secs` seconds:
/// the number of iterations it made. A loop woken by nothing new waits
/// out each cap: about `secs / 0.05` iterations; one that spins makes
/// thousands.
fn iterations_for(secs: f64) -> usize {
    let end = sock::clock() + secs;
    let mut n = 0;
    while sock::clock() < end {
        sock::poll(Some(0.05)).unwrap();
        n += 1;
    }
    n
}

/// I4/D7: no busy loop while a socket has unread data that nobody reads, a
/// writer is parked on a full socket, and its peer's reader is parked too.
#[test]
fn unread_data_and_a_parked_writer_cost_no_iterations() {
    use std::cell::Cell;
    use std::rc::Rc;
    let ready = Rc::new(Cell::new(false));
    let r = Rc::clone(&ready);
    let setup = sock::newthread(async move {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        c.sendall(&[1u8; 100], within(1.0)).await?; // s never reads it
        let (w, _peer) = pair(&l, &addr).await?;
        w.setopt("so_sndbuf", 4096)?;
        let writer = sock::newthread(async move {
            // Parks once the path is full: the peer reads nothing.
            let big = vec![2u8; 8 << 20];
            let e = w.sendall(&big, within(3.0)).await.unwrap_err();
            assert_eq!(e.kind(), sock::ErrorKind::Timeout, "{e}");
        });
        r.set(true);
        sock::sleep(1.5).await?;
        drop((s, c, l));
        writer.join().await
    });
    let give_up = sock::clock() + 5.0;
    while !ready.get() && sock::clock() < give_up {
        sock::poll(Some(0.05)).unwrap();
    }
    assert!(ready.get());
    iterations_for(0.2); // the writer fills the path meanwhile
    let n = iterations_for(0.5);
    assert!(n <= 40, "{n} loop iterations in 0.5 s with nothing to do");
    sock::start().unwrap();
    assert!(matches!(setup.result(), Some(Ok(Ok(())))));
}

/// I6: ready events come in batches: 10,000 UDP sockets with a datagram
/// each, and 10,000 threads parked in their receives, all woken; every
/// datagram arrives, in far fewer loop iterations than sockets.
#[test]
fn ten_thousand_ready_sockets_are_taken_in_batches() {
    use sock::Udp;
    use std::cell::Cell;
    use std::rc::Rc;
    const N: usize = 10_000;
    let got = Rc::new(Cell::new(0usize));
    let mut addrs = Vec::with_capacity(N);
    for i in 0..N {
        let u = Udp::new(Family::Inet).unwrap();
        u.bind(("127.0.0.1", 0)).unwrap();
        addrs.push(u.local_addr().unwrap());
        let g = Rc::clone(&got);
        sock::newthread(async move {
            let mut b = [0u8; 8];
            let (n, _) = u.recvnext(&mut b, within(20.0)).await?;
            assert_eq!(&b[..n], &(i as u64).to_le_bytes());
            g.set(g.get() + 1);
            sock::Result::Ok(())
        });
    }
    // One sender, outside the loop: every datagram is queued before the
    // loop looks, so all 10,000 sockets are ready at once.
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, a) in addrs.iter().enumerate() {
        tx.send_to(&(i as u64).to_le_bytes(), a.to_std().unwrap())
            .unwrap();
    }
    let mut iterations = 0;
    let give_up = sock::clock() + 20.0;
    while got.get() < N && sock::clock() < give_up {
        sock::poll(Some(0.1)).unwrap();
        iterations += 1;
    }
    assert_eq!(got.get(), N, "every datagram arrived");
    assert!(
        iterations <= N / 16,
        "{iterations} iterations for {N} ready sockets"
    );
}

/// Closing a socket unregisters it by its `close(2)` alone (epoll: no
/// `EPOLL_CTL_DEL`). A duplicate of its descriptor keeps the open file, and
/// with it the registration, alive: its events carry the closed socket's
/// token and are dropped, and the sockets made after it, which may get its
/// descriptor number and its slot, work as usual.
#[test]
fn a_closed_socket_whose_file_lives_on_in_a_duplicate_disturbs_no_one() {
    run(10.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        let fd = s.as_raw_fd().unwrap();
        // SAFETY: `fd` is open (s is); the duplicate is closed below.
        let dup = unsafe { libc::dup(fd) };
        assert!(dup >= 0);
        s.close();
        for round in 0..20 {
            // Events on the old file (its data, then its end), while new
            // connections take the slot and, often, the descriptor number.
            let _ = c.try_send(b"to the closed one");
            let (c2, s2) = pair(&l, &addr).await?;
            // A receive that parks, then its data.
            let s2 = std::rc::Rc::new(s2);
            let pending = sock::newthread({
                let s2 = std::rc::Rc::clone(&s2);
                async move {
                    let mut buf = [0u8; 8];
                    let n = s2.recv(&mut buf, within(2.0)).await?;
                    sock::Result::Ok(buf[..n].to_vec())
                }
            });
            sock::sleep(0.005).await?;
            c2.sendall(b"round", within(2.0)).await?;
            let got = loop {
                if let Some(r) = pending.result() {
                    break r.unwrap()?;
                }
                sock::sleep(0.001).await?;
            };
            assert_eq!(got, b"round", "round {round}");
            drop((c2, s2));
            if round == 10 {
                // SAFETY: our duplicate, closed once.
                assert_eq!(unsafe { libc::close(dup) }, 0);
            }
        }
        sock::Result::Ok(())
    });
}
