//! The benchmark's sock server from Rust: the idiomatic way, a sock thread per
//! connection (`sock::newthread`), sequential code, one loop on one OS thread.
//!
//! `sock-server ECHO_PORT HTTP_PORT`: echo and HTTP hello world on 127.0.0.1.

use bench_servers::{answers, parse, ports, BACKLOG, BUF, CLOSE, KEEP_ALIVE};
use sock::{Family, Tcp};

/// Echo until the client closes or the connection fails.
async fn echo(c: Tcp) -> sock::Result<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = c.recv(&mut buf, None).await?;
        if n == 0 {
            return Ok(());
        }
        c.sendall(&buf[..n], None).await?;
    }
}

/// HTTP/1.1 keep-alive hello world with pipelining and `Connection: close`.
async fn http(c: Tcp) -> sock::Result<()> {
    let mut buf = [0u8; BUF];
    let mut len = 0;
    let mut out = Vec::new();
    loop {
        let n = c.recv(&mut buf[len..], None).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let p = parse(&buf[..len]);
        match (p.answers, p.close) {
            (0, false) => {}
            (1, false) => c.sendall(KEEP_ALIVE, None).await?,
            (0, true) => c.sendall(CLOSE, None).await?,
            _ => {
                answers(&p, &mut out);
                c.sendall(&out, None).await?;
            }
        }
        if p.close || (p.used == 0 && len == BUF) {
            return Ok(()); // asked to close, or a header too large
        }
        buf.copy_within(p.used..len, 0);
        len -= p.used;
    }
}

/// Accepts forever, a thread per connection; out of descriptors, it waits.
async fn accept<F, Fut>(l: Tcp, handler: F)
where
    F: Fn(Tcp) -> Fut,
    Fut: std::future::Future<Output = sock::Result<()>> + 'static,
{
    loop {
        match l.accept(None).await {
            Ok((c, _, _)) => {
                let _ = c.setopt("tcp_nodelay", true);
                sock::newthread(handler(c));
            }
            Err(e) => {
                eprintln!("accept: {e}");
                let _ = sock::sleep(0.1).await;
            }
        }
    }
}

/// Listens on 127.0.0.1:`port` and starts the accepting thread.
fn serve<F, Fut>(port: u16, handler: F) -> sock::Result<()>
where
    F: Fn(Tcp) -> Fut + 'static,
    Fut: std::future::Future<Output = sock::Result<()>> + 'static,
{
    let l = Tcp::new(Family::Inet)?;
    l.setopt("so_reuseaddr", true)?;
    l.listen(Some(BACKLOG), ("127.0.0.1", port))?;
    sock::newthread(accept(l, handler));
    Ok(())
}

fn main() -> sock::Result<()> {
    let (echo_port, http_port) = ports();
    // A connection's error (a reset at the end of a run) ends its thread; the
    // handlers are the threads themselves (no async block around them: the
    // handler's future, 16 KiB with its buffer, is then moved once, into the
    // thread), and their errors are not reported.
    sock::set_error_handler(|_, _| {});
    serve(echo_port, echo)?;
    serve(http_port, http)?;
    sock::start()
}
