//! The main demo: an echo server and many client threads in one process, on
//! loopback, all on one OS thread's loop.
//!
//! Phase 1 (ping-pong): every client sends a 64-byte message and waits for its
//! echo, over and over. Phase 2 (bulk): a few clients stream large writes while
//! a reader thread per client drains the echo (full duplex on one socket).
//! It prints progress while it runs and the throughput it reached.
//!
//! ```text
//! cargo run --release -p sock-examples --example demo -- [clients] [seconds]
//! ```

use std::cell::Cell;
use std::rc::Rc;

use sock::{clock, Family, SockAddr, Tcp};

/// Counters shared by the threads of one phase.
#[derive(Default)]
struct Stats {
    messages: Cell<u64>,
    bytes: Cell<u64>,
}

impl Stats {
    fn add(&self, bytes: usize) {
        self.messages.set(self.messages.get() + 1);
        self.bytes.set(self.bytes.get() + bytes as u64);
    }
}

/// The server: one acceptor thread, one echo thread per connection.
fn serve(listener: Tcp) {
    sock::newthread(async move {
        loop {
            let (conn, _remote, _local) = listener.accept(None).await?;
            sock::newthread(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = conn.recv(&mut buf, None).await?;
                    if n == 0 {
                        return sock::Result::Ok(());
                    }
                    conn.sendall(&buf[..n], None).await?;
                }
            });
        }
        #[allow(unreachable_code)] // The acceptor serves until the process ends.
        sock::Result::Ok(())
    });
}

/// Prints the progress of a phase every half second until `end`.
fn progress(name: &'static str, stats: Rc<Stats>, start: f64, end: f64) {
    sock::newthread(async move {
        while clock() + 0.5 <= end {
            sock::sleep(0.5).await?;
            let t = clock() - start;
            println!(
                "  {name:9} {t:4.1} s  {:>9} messages  {:>9.0} msg/s  {:>8.1} MB/s",
                stats.messages.get(),
                stats.messages.get() as f64 / t,
                stats.bytes.get() as f64 / t / 1e6,
            );
        }
        sock::Result::Ok(())
    });
}

/// Phase 1: `clients` threads each ping-pong 64-byte messages until `end`.
fn ping_pong(addr: &SockAddr, clients: usize, end: f64, stats: &Rc<Stats>) {
    for _ in 0..clients {
        let (addr, stats) = (addr.clone(), Rc::clone(stats));
        sock::newthread(async move {
            let c = Tcp::new(Family::Inet)?;
            c.connect(addr, Some(clock() + 5.0)).await?;
            c.setopt("tcp_nodelay", true)?;
            let msg = [b'x'; 64];
            let mut buf = [0u8; 64];
            while clock() < end {
                c.sendall(&msg, Some(clock() + 5.0)).await?;
                c.recvall(&mut buf, Some(clock() + 5.0)).await?;
                stats.add(msg.len());
            }
            sock::Result::Ok(())
        });
    }
}

/// Phase 2: `clients` connections stream 64 KiB writes from one thread while
/// another thread reads the echo back from the same socket.
fn bulk(addr: &SockAddr, clients: usize, end: f64, stats: &Rc<Stats>) {
    for _ in 0..clients {
        let (addr, stats) = (addr.clone(), Rc::clone(stats));
        sock::newthread(async move {
            let c = Rc::new(Tcp::new(Family::Inet)?);
            c.connect(addr, Some(clock() + 5.0)).await?;
            let reader = Rc::clone(&c);
            let reading = sock::newthread(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match reader.recv(&mut buf, Some(clock() + 5.0)).await? {
                        0 => return sock::Result::Ok(()),
                        n => stats.add(n),
                    }
                }
            });
            let chunk = vec![b'y'; 64 * 1024];
            while clock() < end {
                c.sendall(&chunk, Some(clock() + 5.0)).await?;
            }
            c.shutdown(sock::Shutdown::Write)?;
            reading.join().await?
        });
    }
}

fn main() -> sock::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);

    let listener = Tcp::new(Family::Inet)?;
    listener.listen(None, ("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    println!("sock demo: echo server on {addr}, one OS thread, {clients} client threads");
    serve(listener);

    for (name, n) in [("ping-pong", clients), ("bulk", 16.min(clients))] {
        println!("{name}: {n} connections for {seconds} s");
        let stats = Rc::new(Stats::default());
        let start = clock();
        let end = start + seconds;
        if name == "ping-pong" {
            ping_pong(&addr, n, end, &stats);
        } else {
            bulk(&addr, n, end, &stats);
        }
        progress(name, Rc::clone(&stats), start, end);
        // Run until the phase's threads are done (the acceptor stays parked).
        while clock() < end + 0.2 {
            sock::poll(Some(0.1))?;
        }
        let t = seconds;
        println!(
            "{name} done: {} messages, {:.0} msg/s, {:.1} MB/s",
            stats.messages.get(),
            stats.messages.get() as f64 / t,
            stats.bytes.get() as f64 / t / 1e6
        );
    }
    Ok(())
}
