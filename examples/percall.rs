//! The core's cost per call on the hot paths, in nanoseconds: the Rust side of
//! `sock-lua/bench/percall.lua` (same operations, same order).
//!
//! ```text
//! cargo run --release -p sock-examples --example percall -- [n]
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use sock::{clock, Family, Tcp};

fn best(n: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..5)
        .map(|_| {
            let t0 = clock();
            f(n);
            (clock() - t0) / n as f64 * 1e9
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> sock::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let l = Tcp::new(Family::Inet)?;
    l.listen(None, ("127.0.0.1", 0))?;
    let addr = l.local_addr()?;
    let pair = Rc::new(RefCell::new(None));
    let p = pair.clone();
    sock::newthread(async move {
        let b = Tcp::new(Family::Inet)?;
        b.connect(addr, None).await?;
        let (a, _, _) = l.accept(None).await?;
        *p.borrow_mut() = Some((Rc::new(a), Rc::new(b)));
        sock::Result::Ok(())
    });
    sock::start()?;
    let (a, b) = pair.borrow_mut().take().expect("connected");
    let mut buf = [0u8; 64];
    let row = |name: &str, ns: f64| println!("{name:<44} {ns:8.1}");

    row(
        "sock::clock()",
        best(n, |n| {
            (0..n).for_each(|_| {
                std::hint::black_box(clock());
            })
        }),
    );
    row(
        "try_recv, EAGAIN (recv syscall)",
        best(n, |n| {
            for _ in 0..n {
                let _ = a.try_recv(&mut buf);
            }
        }),
    );
    row(
        "send 1 B + recv 1 B (no wait)",
        best(n, |n| {
            let (a, b) = (a.clone(), b.clone());
            sock::newthread(async move {
                let mut buf = [0u8; 64];
                for _ in 0..n {
                    b.send(b"x", None).await?;
                    a.recv(&mut buf, None).await?;
                }
                sock::Result::Ok(())
            });
            sock::start().expect("loop");
        }),
    );
    row(
        "yield + resume (sleep_until(0))",
        best(n, |n| {
            sock::newthread(async move {
                for _ in 0..n {
                    sock::sleep_until(0.0).await?;
                }
                sock::Result::Ok(())
            });
            sock::start().expect("loop");
        }),
    );
    let pp = best(n / 10, |m| {
        let (a2, b2) = (a.clone(), b.clone());
        sock::newthread(async move {
            let mut buf = [0u8; 64];
            for _ in 0..m {
                a2.recv(&mut buf, None).await?;
                a2.send(&buf[..1], None).await?;
            }
            sock::Result::Ok(())
        });
        let b3 = b2.clone();
        sock::newthread(async move {
            let mut buf = [0u8; 64];
            for _ in 0..m {
                b3.send(b"x", None).await?;
                b3.recv(&mut buf, None).await?;
            }
            sock::Result::Ok(())
        });
        sock::start().expect("loop");
    });
    row("ping-pong round trip (2 threads, 1 loop)", pp);
    Ok(())
}
