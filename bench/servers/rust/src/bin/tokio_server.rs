//! The benchmark's tokio server, written the idiomatic way: a task per
//! connection (`tokio::spawn`), `AsyncReadExt::read` and
//! `AsyncWriteExt::write_all`.
//!
//! `tokio-server ECHO_PORT HTTP_PORT current_thread|multi_thread`: echo and
//! HTTP hello world on 127.0.0.1, on the runtime named (its default
//! configuration otherwise: the multi-thread runtime starts a worker per CPU
//! the process may run on, one when the harness pins it to one CPU).

use bench_servers::{answers, parse, ports, BUF, CLOSE, KEEP_ALIVE};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echo until the client closes or the connection fails.
async fn echo(mut c: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = c.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        c.write_all(&buf[..n]).await?;
    }
}

/// HTTP/1.1 keep-alive hello world with pipelining and `Connection: close`.
async fn http(mut c: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; BUF];
    let mut len = 0;
    let mut out = Vec::new();
    loop {
        let n = c.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let p = parse(&buf[..len]);
        match (p.answers, p.close) {
            (0, false) => {}
            (1, false) => c.write_all(KEEP_ALIVE).await?,
            (0, true) => c.write_all(CLOSE).await?,
            _ => {
                answers(&p, &mut out);
                c.write_all(&out).await?;
            }
        }
        if p.close || (p.used == 0 && len == BUF) {
            return Ok(()); // asked to close, or a header too large
        }
        buf.copy_within(p.used..len, 0);
        len -= p.used;
    }
}

/// Accepts forever, a task per connection; out of descriptors, it waits.
async fn serve<F, Fut>(l: TcpListener, handler: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    loop {
        match l.accept().await {
            Ok((c, _)) => {
                let _ = c.set_nodelay(true);
                tokio::spawn(handler(c));
            }
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn main() -> io::Result<()> {
    let (echo_port, http_port) = ports();
    let mut rt = match std::env::args().nth(3).as_deref() {
        Some("current_thread") => tokio::runtime::Builder::new_current_thread(),
        Some("multi_thread") => tokio::runtime::Builder::new_multi_thread(),
        _ => {
            eprintln!("usage: tokio-server ECHO_PORT HTTP_PORT current_thread|multi_thread");
            std::process::exit(2);
        }
    };
    rt.enable_all().build()?.block_on(async move {
        // TcpListener::bind sets SO_REUSEADDR and a backlog of 1024, as the
        // other servers do.
        let e = TcpListener::bind(("127.0.0.1", echo_port)).await?;
        let h = TcpListener::bind(("127.0.0.1", http_port)).await?;
        // The handlers are the tasks themselves (no async block around
        // them, whose first poll would move the 16 KiB handler future into
        // its state); a connection's error (a reset at the end of a run)
        // ends its task, and nobody joins it.
        tokio::spawn(serve(e, echo));
        serve(h, http).await;
        Ok(())
    })
}
