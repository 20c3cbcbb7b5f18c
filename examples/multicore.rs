//! An HTTP/1.1 "hello world" server on every core: N worker OS threads, each
//! with its own loop and its own listener on the same port (`so_reuseport`:
//! the kernel spreads the connections), a sock thread per connection.
//!
//! ```sh
//! cargo run --release -p sock-examples --example multicore -- [workers] [port] [seconds] [--shared] [--one-listener]
//! # then, for instance: wrk -t2 -c64 http://127.0.0.1:8080/
//! ```
//!
//! Defaults: one worker per CPU, port 8080, run until killed (seconds 0).
//! With `--shared` the workers' loops share one epoll instance
//! (`sock::SharedPoller`): each event then goes to whichever worker waits and
//! is handed to the worker that owns the socket, which costs more than each
//! worker polling its own sockets; it is here to measure that.
//! With `--one-listener` the workers accept from one listener instead of one
//! each: every worker's loop adopts a clone of it (`Tcp::from_listener`, an
//! exclusive registration: a connection wakes one worker), the other way to
//! spread connections over cores, measured beside `so_reuseport` in the
//! benchmark harness.
//!
//! Each worker prints the requests it answered when it stops.

use sock::{Family, Tcp};

/// The answer to every request.
const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

/// The answer to a request that asks to close (`Connection: close`).
const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";

/// Serves one connection: answers each request (a header ending in an empty
/// line) in what it reads; requests may come pipelined. A request with
/// `Connection: close` gets its answer, then the connection is closed (after
/// the client's FIN, so that no RST cuts the answer).
async fn serve(c: Tcp, served: std::rc::Rc<std::cell::Cell<u64>>) -> sock::Result<()> {
    let mut buf = [0u8; 4096];
    let mut len = 0;
    let mut out = Vec::new();
    loop {
        let n = c.recv(&mut buf[len..], None).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let (mut used, mut close) = (0, false);
        while let Some(end) = find(&buf[used..len], b"\r\n\r\n") {
            close = wants_close(&buf[used..used + end]);
            used += end + 4;
            out.extend_from_slice(if close { HELLO_CLOSE } else { HELLO });
            served.set(served.get() + 1);
            if close {
                break;
            }
        }
        if used == 0 && len == buf.len() {
            return Ok(()); // a header larger than the buffer
        }
        if !out.is_empty() {
            c.sendall(&out, None).await?;
            out.clear();
        }
        if close {
            c.shutdown(sock::Shutdown::Write)?;
            while c.recv(&mut buf, Some(sock::clock() + 5.0)).await? > 0 {}
            return Ok(());
        }
        buf.copy_within(used..len, 0);
        len -= used;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a request header asks to close the connection.
fn wants_close(head: &[u8]) -> bool {
    const C: &[u8] = b"\nconnection: close";
    head.windows(C.len()).any(|w| w.eq_ignore_ascii_case(C))
}

/// Accepts until the loop stops, a thread per connection.
async fn accept(n: usize, l: Tcp, served: std::rc::Rc<std::cell::Cell<u64>>) {
    loop {
        let (c, _, _) = match l.accept(None).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("worker {n}: accept: {e}");
                let _ = sock::sleep(0.1).await; // out of descriptors: wait
                continue;
            }
        };
        let _ = c.setopt("tcp_nodelay", true);
        let s = served.clone();
        sock::newthread(async move {
            let _ = serve(c, s).await;
        });
    }
}

/// One worker: its listener on `port` (or its clone of the one listener), an
/// accepting thread, a thread per connection; until `seconds` pass (0:
/// forever).
fn worker(
    n: usize,
    port: u16,
    seconds: f64,
    poller: Option<sock::SharedPoller>,
    one: Option<std::net::TcpListener>,
) -> u64 {
    if let Some(p) = poller {
        p.join().expect("share the poller");
    }
    let served = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let l = match one {
        Some(one) => Tcp::from_listener(one).expect("adopt the listener"),
        None => {
            let l = Tcp::new(Family::Inet).expect("socket");
            l.setopt("so_reuseaddr", true).expect("so_reuseaddr");
            l.setopt("so_reuseport", true).expect("so_reuseport");
            l.listen(Some(1024), ("127.0.0.1", port)).expect("listen");
            l
        }
    };
    let acceptor = sock::newthread(accept(n, l, served.clone()));
    if seconds > 0.0 {
        sock::newthread(async move {
            sock::sleep(seconds).await?;
            sock::stop();
            sock::Result::Ok(())
        });
    }
    sock::start().expect("loop");
    drop(acceptor);
    served.get()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shared = args.iter().any(|a| a == "--shared");
    let one_listener = args.iter().any(|a| a == "--one-listener");
    let nums: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = nums.first().and_then(|a| a.parse().ok()).unwrap_or(cpus);
    let port = nums.get(1).and_then(|a| a.parse().ok()).unwrap_or(8080u16);
    let seconds = nums.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.0f64);
    let poller = shared.then(|| sock::SharedPoller::current().expect("an epoll backend"));
    // (std's listener: SO_REUSEADDR, a backlog of 128.)
    let one =
        one_listener.then(|| std::net::TcpListener::bind(("127.0.0.1", port)).expect("listen"));
    println!(
        "multicore: {workers} workers on http://127.0.0.1:{port}/{}{}",
        if shared { " (one shared poller)" } else { "" },
        if one_listener { " (one listener)" } else { "" }
    );
    let threads: Vec<_> = (0..workers)
        .map(|n| {
            let p = poller.clone();
            let l = one
                .as_ref()
                .map(|l| l.try_clone().expect("clone the listener"));
            std::thread::Builder::new()
                .name(format!("worker {n}"))
                .spawn(move || worker(n, port, seconds, p, l))
                .expect("spawn")
        })
        .collect();
    drop(one); // the workers' clones keep it open
    let mut total = 0;
    for (n, t) in threads.into_iter().enumerate() {
        let served = t.join().expect("worker");
        println!("worker {n}: {served} requests");
        total += served;
    }
    println!("total: {total} requests");
}
