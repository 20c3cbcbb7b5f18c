//! Several writers on one socket: each call's bytes contiguous on the
//! stream, served in the order of arrival, each under its own deadline;
//! closing the socket wakes every queued writer. Loopback only, every wait
//! bounded.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use sock::{ErrorKind, Family, SockAddr, Tcp};
use util::{listener, run, within};

/// Connects a client to `addr` and accepts it on `l`: both ends of one connection.
async fn pair(l: &Tcp, addr: &SockAddr) -> sock::Result<(Tcp, Tcp)> {
    let c = Tcp::new(addr.family())?;
    c.connect(addr.clone(), within(2.0)).await?;
    let (s, _, _) = l.accept(within(2.0)).await?;
    Ok((c, s))
}

/// Small kernel buffers, so that a slow reader soon makes the writers wait.
/// (Not below loopback's segment of 64 KiB at the receiver: a smaller
/// window stalls the stream on the sender's 200 ms probes.)
fn small_buffers(c: &Tcp, s: &Tcp) -> sock::Result<()> {
    c.setopt("so_sndbuf", 16 * 1024)?;
    s.setopt("so_rcvbuf", 128 * 1024)
}

/// Reads until the end of the stream, `pause` seconds between reads of at
/// most `chunk` bytes: a slow reader.
async fn read_slowly(s: &Tcp, chunk: usize, pause: f64) -> sock::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match s.recv(&mut buf, within(20.0)).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
        sock::sleep(pause).await?;
    }
}

/// A thread whose send steps while another thread's `sendall` waits between
/// its parks (its socket became writable, and it is queued to run) does not
/// write into the middle of it: its attempt finds the socket's write turn
/// taken, and succeeds only once the `sendall` is over.
#[test]
fn a_send_does_not_cut_into_a_waiting_sendall() {
    run(30.0, async {
        const N: usize = 1 << 20;
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        small_buffers(&c, &s)?;
        let c = Rc::new(c);
        let started = Rc::new(Cell::new(false));
        let (c2, st) = (c.clone(), started.clone());
        let big = sock::newthread(async move {
            st.set(true);
            c2.sendall(&vec![b'a'; N], within(20.0)).await
        });
        // Yields every iteration: it runs before the threads that the
        // iteration's events wake, so it steps while the sendall is queued
        // to run after an event.
        let (c3, st) = (c.clone(), started.clone());
        let other = sock::newthread(async move {
            let mut tries = 0u64;
            loop {
                sock::sleep(0.0).await?;
                if !st.get() {
                    continue;
                }
                tries += 1;
                if c3.try_send(b"B")?.is_some() {
                    return sock::Result::Ok(tries);
                }
            }
        });
        let reader = sock::newthread(async move { read_slowly(&s, 4096, 0.0005).await });
        big.join().await??;
        let tries = other.join().await??;
        c.close();
        let got = reader.join().await??;
        assert_eq!(got.len(), N + 1);
        let at = got.iter().position(|&b| b == b'B').unwrap();
        assert_eq!(
            at, N,
            "the other send went in at byte {at} of the sendall's {N} (after {tries} tries)"
        );
        Ok(())
    });
}

/// The message of writer `id`: its id and length (4 bytes each, little
/// endian), then `len` bytes of its own pattern.
fn message(id: u32, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + len);
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&(len as u32).to_le_bytes());
    m.extend((0..len).map(|k| pattern(id, k)));
    m
}

fn pattern(id: u32, k: usize) -> u8 {
    (id as usize * 31 + k * 7 + k / 251) as u8
}

/// Splits a stream into its messages, checking each is whole and its own:
/// their ids in stream order.
fn messages(mut got: &[u8]) -> Vec<u32> {
    let mut ids = Vec::new();
    while !got.is_empty() {
        assert!(got.len() >= 8, "a header cut at the end of the stream");
        let id = u32::from_le_bytes(got[..4].try_into().unwrap());
        let len = u32::from_le_bytes(got[4..8].try_into().unwrap()) as usize;
        assert!(got.len() >= 8 + len, "message {id} cut at the end");
        let body = &got[8..8 + len];
        if let Some(k) = (0..len).find(|&k| body[k] != pattern(id, k)) {
            panic!("message {id} ({len} bytes) has foreign bytes from byte {k}");
        }
        ids.push(id);
        got = &got[8 + len..];
    }
    ids
}

/// 50 threads `sendall` distinct messages of 4 to 64 KiB to one slow reader:
/// every message arrives whole and contiguous, none is `busy`, and they are
/// served in the order the calls came.
/// Reliability checklist: D7 (docs/reliability.md).
#[test]
fn fifty_writers_sendall_to_one_slow_reader() {
    run(60.0, async {
        const W: u32 = 50;
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        small_buffers(&c, &s)?;
        let c = Rc::new(c);
        let arrivals = Rc::new(RefCell::new(Vec::new()));
        let mut writers = Vec::new();
        for id in 0..W {
            let (c, arrivals) = (c.clone(), arrivals.clone());
            let len = 4096 + (id as usize * 60 * 1024) / (W as usize - 1);
            writers.push(sock::newthread(async move {
                // Staggered: some come while the turn is free, most while
                // another writer has it.
                sock::sleep(f64::from(id % 10) * 0.002).await?;
                let m = message(id, len);
                arrivals.borrow_mut().push(id);
                c.sendall(&m, within(30.0)).await
            }));
        }
        let reader = sock::newthread(async move { read_slowly(&s, 8192, 0.001).await });
        for w in writers {
            if let Err(e) = w.join().await? {
                panic!("a writer failed: {e}");
            }
        }
        c.close();
        let got = reader.join().await??;
        let ids = messages(&got);
        assert_eq!(ids.len(), W as usize);
        assert_eq!(ids, *arrivals.borrow(), "served in the order of arrival");
        assert_ne!(
            ids,
            (0..W).collect::<Vec<_>>(),
            "the arrivals were staggered"
        );
        Ok(())
    });
}

/// A queued writer whose deadline passes times out with nothing sent and
/// leaves the queue; the writers around it go on, in their order.
/// Reliability checklist: A5 (docs/reliability.md).
#[test]
fn a_queued_writer_times_out_and_the_others_go_on() {
    run(30.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        small_buffers(&c, &s)?;
        let c = Rc::new(c);
        let first = message(1, 2 << 20);
        let (c1, c2, c3) = (c.clone(), c.clone(), c.clone());
        let a = sock::newthread(async move { c1.sendall(&first, within(20.0)).await });
        let b = sock::newthread(async move {
            let t0 = sock::clock();
            let e = c2
                .sendall(&message(2, 4096), within(0.1))
                .await
                .unwrap_err();
            sock::Result::Ok((e.kind(), e.done(), sock::clock() - t0))
        });
        let third = message(3, 8192);
        let d = sock::newthread(async move { c3.sendall(&third, within(20.0)).await });
        // The reader starts after the queued writer's deadline.
        sock::sleep(0.2).await?;
        let (kind, done, took) = b.join().await??;
        assert_eq!((kind, done), (ErrorKind::Timeout, 0));
        assert!((0.1..1.0).contains(&took), "timed out after {took} s");
        assert!(!a.is_finished() && !d.is_finished());
        let reader = sock::newthread(async move { read_slowly(&s, 8192, 0.0).await });
        a.join().await??;
        d.join().await??;
        c.close();
        assert_eq!(messages(&reader.join().await??), [1, 3]);
        Ok(())
    });
}

/// Closing a socket with writers queued wakes each of them with `closed`;
/// the one whose turn it was reports the bytes it sent.
/// Reliability checklist: A3, A5 (docs/reliability.md).
#[test]
fn close_wakes_every_queued_writer_with_closed() {
    run(30.0, async {
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        small_buffers(&c, &s)?;
        let c = Rc::new(c);
        let mut writers = Vec::new();
        for id in 0..6u32 {
            let c = c.clone();
            writers.push(sock::newthread(async move {
                let m = message(id, 2 << 20);
                let r = match id % 2 {
                    0 => c.sendall(&m, within(20.0)).await.map(drop),
                    _ => c.send(&m, within(20.0)).await.map(drop),
                };
                let e = r.unwrap_err();
                sock::Result::Ok((e.kind(), e.done()))
            }));
        }
        sock::sleep(0.1).await?;
        assert!(writers.iter().all(|w| !w.is_finished()), "all wait");
        let t0 = sock::clock();
        c.close();
        for (id, w) in writers.into_iter().enumerate() {
            let (kind, done) = w.join().await??;
            assert_eq!(kind, ErrorKind::Closed, "writer {id}");
            assert_eq!(done > 0, id == 0, "writer {id} sent {done} bytes");
        }
        assert!(sock::clock() - t0 < 0.5);
        drop(s);
        Ok(())
    });
}

/// Plain `send` from two threads: each call's bytes are contiguous on the
/// stream, in the order the calls were served, and none is `busy`.
/// Reliability checklist: D9 (docs/reliability.md).
#[test]
fn sends_from_two_threads_do_not_interleave() {
    run(30.0, async {
        const CALLS: usize = 200;
        let (l, addr) = listener(Family::Inet);
        let (c, s) = pair(&l, &addr).await?;
        small_buffers(&c, &s)?;
        let c = Rc::new(c);
        let served = Rc::new(RefCell::new(Vec::new()));
        let mut threads = Vec::new();
        for who in [b'x', b'y'] {
            let (c, served) = (c.clone(), served.clone());
            threads.push(sock::newthread(async move {
                let buf = vec![who; 24 * 1024];
                for _ in 0..CALLS {
                    let n = c.send(&buf, within(20.0)).await?;
                    served.borrow_mut().push((who, n));
                }
                sock::Result::Ok(())
            }));
        }
        let reader = sock::newthread(async move { read_slowly(&s, 8192, 0.0002).await });
        for t in threads {
            t.join().await??;
        }
        c.close();
        let got = reader.join().await??;
        let mut expect = Vec::new();
        for &(who, n) in served.borrow().iter() {
            expect.resize(expect.len() + n, who);
        }
        assert!(
            got == expect,
            "the stream is the calls' bytes, call by call"
        );
        let runs = got.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(runs > 10, "the two threads took turns ({runs} switches)");
        Ok(())
    });
}
