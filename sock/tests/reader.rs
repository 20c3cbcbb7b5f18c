//! Buffered reads on TCP (`read_line`, `read_until`): lines split across
//! packets, a line over its maximum, a deadline in the middle of a line, 8 MiB
//! by lines, and the pool: idle connections hold no buffer, and every buffer
//! goes back.

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use sock::{clock, ErrorKind, Family, Tcp};
use util::bounded;

/// A connected pair on loopback: (client, server).
async fn pair() -> sock::Result<(Tcp, Tcp)> {
    let l = Tcp::new(Family::Inet)?;
    l.listen(None, ("127.0.0.1", 0))?;
    let c = Tcp::new(Family::Inet)?;
    c.connect(l.local_addr()?, Some(clock() + 5.0)).await?;
    let (s, _, _) = l.accept(Some(clock() + 5.0)).await?;
    Ok((c, s))
}

fn run<T: 'static>(f: impl std::future::Future<Output = sock::Result<T>> + 'static) -> T {
    let t = sock::newthread(f);
    sock::start().unwrap();
    t.result()
        .expect("finished")
        .expect("no panic")
        .expect("ok")
}

/// Reliability checklist: D10, K3 (docs/reliability.md).
#[test]
fn lines_split_one_byte_per_packet_and_across_packets() {
    bounded(30.0, || {
        let lines = run(async {
            let (c, s) = pair().await?;
            c.setopt("tcp_nodelay", true)?;
            let text = b"first line\r\nsecond\n\nfourth, the last without its end";
            let writer = sock::newthread(async move {
                for b in text.chunks(1) {
                    c.sendall(b, Some(clock() + 5.0)).await?;
                    sock::sleep(0.0005).await?;
                }
                sock::Result::Ok(())
            });
            let mut lines = Vec::new();
            loop {
                let mut line = Vec::new();
                if s.read_line(&mut line, 100, false, Some(clock() + 5.0))
                    .await?
                    == 0
                {
                    break;
                }
                lines.push(String::from_utf8(line).unwrap());
            }
            writer.join().await??;
            sock::Result::Ok(lines)
        });
        assert_eq!(
            lines,
            [
                "first line",
                "second",
                "",
                "fourth, the last without its end"
            ]
        );
    });
}

/// Reliability checklist: D2, D10 (docs/reliability.md).
#[test]
fn a_line_over_the_maximum_is_an_error_and_its_bytes_stay_readable() {
    bounded(30.0, || {
        run(async {
            let (c, s) = pair().await?;
            c.sendall(b"0123456789abcdef\nnext\n", None).await?;
            let mut line = Vec::new();
            let e = s
                .read_line(&mut line, 8, false, Some(clock() + 5.0))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::MessageTooBig);
            assert!(line.is_empty());
            // Nothing was lost: a longer maximum reads it, then the next.
            assert_eq!(s.read_line(&mut line, 64, true, None).await?, 17);
            assert_eq!(line, b"0123456789abcdef\n");
            line.clear();
            // And recv takes buffered bytes first.
            let mut buf = [0u8; 3];
            let mut got = 0;
            while got < 3 {
                got += s.recv(&mut buf[got..], Some(clock() + 5.0)).await?;
            }
            assert_eq!(&buf, b"nex");
            s.read_line(&mut line, 64, false, None).await?;
            assert_eq!(line, b"t");
            // A delimiter of several bytes, kept or not.
            c.sendall(b"a--b--", None).await?;
            line.clear();
            s.read_until(b"--", &mut line, 64, true, Some(clock() + 5.0))
                .await?;
            s.read_until(b"--", &mut line, 64, false, Some(clock() + 5.0))
                .await?;
            assert_eq!(line, b"a--b");
            Ok(())
        });
    });
}

/// Reliability checklist: D2, H6, H7 (docs/reliability.md).
#[test]
fn a_deadline_in_the_middle_of_a_line_loses_nothing() {
    bounded(30.0, || {
        run(async {
            let (c, s) = pair().await?;
            c.sendall(b"half a ", None).await?;
            let mut line = Vec::new();
            let t0 = clock();
            let e = s
                .read_line(&mut line, 100, false, Some(clock() + 0.1))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Timeout);
            assert!(clock() - t0 >= 0.1);
            assert_eq!(s.buffered(), 7, "the half line is kept");
            c.sendall(b"line\n", None).await?;
            s.read_line(&mut line, 100, false, Some(clock() + 5.0))
                .await?;
            assert_eq!(line, b"half a line");
            assert_eq!(s.buffered(), 0);
            Ok(())
        });
    });
}

/// Reliability checklist: D3, D10 (docs/reliability.md).
#[test]
fn eight_megabytes_by_lines() {
    bounded(60.0, || {
        let (count, bytes) = run(async {
            let (c, s) = pair().await?;
            let writer = sock::newthread(async move {
                let mut data = Vec::with_capacity(8 << 20);
                let mut i = 0u32;
                while data.len() < 8 << 20 {
                    data.extend_from_slice(
                        format!("line {i} {}\n", "x".repeat((i % 200) as usize)).as_bytes(),
                    );
                    i += 1;
                }
                c.sendall(&data, Some(clock() + 30.0)).await?;
                sock::Result::Ok((i, data.len()))
            });
            let (mut count, mut bytes) = (0u32, 0usize);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = s
                    .read_line(&mut line, 4096, false, Some(clock() + 30.0))
                    .await?;
                if n == 0 {
                    break;
                }
                let want = format!("line {count} {}", "x".repeat((count % 200) as usize));
                assert_eq!(line, want.as_bytes());
                count += 1;
                bytes += n;
            }
            let (sent, len) = writer.join().await??;
            assert_eq!(sent, count);
            sock::Result::Ok((count, (bytes, len)))
        });
        assert!(count > 50_000);
        assert_eq!(bytes.0, bytes.1);
    });
}

/// Reliability checklist: K1, K2 (docs/reliability.md).
#[test]
fn ten_thousand_idle_connections_hold_no_buffer_and_every_buffer_goes_back() {
    // Two rounds of 5,000 connections held at once (10,000 descriptors: the
    // machines of this project allow 20,000).
    bounded(120.0, || {
        for _ in 0..2 {
            idle_round(5_000);
        }
    });
}

/// `n` connections whose server threads read a line, take what was read
/// past it, and wait idle for the next: none holds a buffer then, and
/// every buffer is back once they close.
fn idle_round(n: usize) {
    let held = Rc::new(RefCell::new(Vec::new()));
    let h = held.clone();
    let (in_use, pooled) = run(async move {
        let l = Tcp::new(Family::Inet)?;
        l.listen(None, ("127.0.0.1", 0))?;
        let addr = l.local_addr()?;
        let idle = Rc::new(std::cell::Cell::new(0usize));
        let mut servers = Vec::new();
        for _ in 0..n {
            let c = Tcp::new(Family::Inet)?;
            c.connect(&addr, Some(clock() + 5.0)).await?;
            c.sendall(b"hello\nhal", None).await?;
            let (s, _, _) = l.accept(Some(clock() + 5.0)).await?;
            let idle = idle.clone();
            servers.push(sock::newthread(async move {
                let mut line = Vec::new();
                s.read_line(&mut line, 64, false, Some(clock() + 30.0))
                    .await?;
                assert_eq!(line, b"hello");
                // "hal" stays buffered: take it, then wait idle.
                let mut b = [0u8; 3];
                s.recvall(&mut b, None).await?;
                idle.set(idle.get() + 1);
                line.clear();
                s.read_line(&mut line, 64, false, Some(clock() + 30.0))
                    .await
            }));
            h.borrow_mut().push(c);
        }
        while idle.get() < n {
            sock::sleep(0.01).await?;
        }
        // Every server thread waits for its next line: no buffer held.
        let (in_use, pooled) = sock::read_buffers();
        assert_eq!(in_use, 0, "{pooled} pooled");
        h.borrow_mut().clear(); // the clients close: the servers read the end
        for t in servers {
            assert_eq!(t.join().await??, 0);
        }
        sock::Result::Ok(sock::read_buffers())
    });
    assert_eq!(in_use, 0, "every buffer went back");
    assert!(pooled <= 256, "the pool is bounded: {pooled}");
    drop(held);
}
