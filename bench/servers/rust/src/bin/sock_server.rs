//! The benchmark's sock server from Rust: the idiomatic way, a sock thread per
//! connection (`sock::newthread_detached`), sequential code, one loop on one OS thread.
//!
//! `sock-server ECHO_PORT HTTP_PORT [TLS_PORT CERT KEY]`: echo and HTTP
//! hello world on 127.0.0.1; with `TLS_PORT CERT KEY`, the HTTP hello world
//! over TLS (sock-tls) on that port too, the same handler on a
//! [`TlsStream`] (a TLS connection's handshake runs in its own thread, on
//! its first `recv`).

use std::future::Future;

use bench_servers::{
    answers, parse, ports, tls_args, BACKLOG, BUF, CLOSE, KEEP_ALIVE, TLS_CIPHERS, TLS_CURVES,
    TLS_PROTOCOLS,
};
use sock::{Family, Tcp};
use sock_tls::{KeyPair, TlsListener, TlsOptions, TlsStream};

/// What the HTTP handler needs of a connection: sock's `recv` and
/// `sendall`, plain or over TLS.
trait Conn {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = sock::Result<usize>> + 'a;
    fn sendall<'a>(
        &'a self,
        buf: &'a [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = sock::Result<()>> + 'a;
}

impl Conn for Tcp {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = sock::Result<usize>> + 'a {
        Tcp::recv(self, buf, expires)
    }
    fn sendall<'a>(
        &'a self,
        buf: &'a [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = sock::Result<()>> + 'a {
        Tcp::sendall(self, buf, expires)
    }
}

impl Conn for TlsStream {
    fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = sock::Result<usize>> + 'a {
        TlsStream::recv(self, buf, expires)
    }
    fn sendall<'a>(
        &'a self,
        buf: &'a [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = sock::Result<()>> + 'a {
        TlsStream::sendall(self, buf, expires)
    }
}

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

/// The echo on the buffered reader, a line at a time (`SOCK_BENCH_LINES=1`,
/// W4's line-reader variant): an idle connection holds no buffer.
async fn echo_lines(c: Tcp) -> sock::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if c.read_line(&mut line, BUF, true, None).await? == 0 {
            return Ok(());
        }
        c.sendall(&line, None).await?;
    }
}

/// HTTP/1.1 keep-alive hello world with pipelining and `Connection: close`.
/// Over TLS the end is the stream's drop: close_notify, then the close.
async fn http<C: Conn>(c: C) -> sock::Result<()> {
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
                sock::newthread_detached(handler(c));
            }
            Err(e) => {
                eprintln!("accept: {e}");
                let _ = sock::sleep(0.1).await;
            }
        }
    }
}

/// A socket listening on 127.0.0.1:`port`.
fn listener(port: u16) -> sock::Result<Tcp> {
    let l = Tcp::new(Family::Inet)?;
    l.setopt("so_reuseaddr", true)?;
    l.listen(Some(BACKLOG), ("127.0.0.1", port))?;
    Ok(l)
}

/// Listens on 127.0.0.1:`port` and starts the accepting thread.
fn serve<F, Fut>(port: u16, handler: F) -> sock::Result<()>
where
    F: Fn(Tcp) -> Fut + 'static,
    Fut: std::future::Future<Output = sock::Result<()>> + 'static,
{
    sock::newthread(accept(listener(port)?, handler));
    Ok(())
}

/// The HTTP hello world over TLS on 127.0.0.1:`port`: TLS 1.3,
/// TLS_AES_128_GCM_SHA256, X25519 (as every TLS server of the harness),
/// the certificate and key from PEM files; sessions resume (tickets), as
/// sock-tls's server configurations do by default.
fn serve_tls(port: u16, cert: &str, key: &str) -> sock::Result<()> {
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| {
            sock::Error::with_message(sock::ErrorKind::InvalidArgument, format!("{path}: {e}"))
        })
    };
    let options = TlsOptions {
        keypairs: vec![KeyPair {
            cert: read(cert)?,
            key: read(key)?,
            ocsp_staple: None,
        }],
        protocols: Some(TLS_PROTOCOLS.into()),
        ciphers: Some(TLS_CIPHERS.into()),
        curves: Some(TLS_CURVES.into()),
        ..TlsOptions::default()
    };
    let l = TlsListener::new(listener(port)?, sock_tls::server_config(&options)?);
    sock::newthread(accept_tls(l));
    Ok(())
}

/// [`accept`] for TLS: a thread per connection, which makes the handshake.
async fn accept_tls(l: TlsListener) {
    loop {
        match l.accept(None).await {
            Ok((c, _, _)) => {
                let _ = c.tcp().setopt("tcp_nodelay", true);
                sock::newthread_detached(http(c));
            }
            Err(e) => {
                eprintln!("accept: {e}");
                let _ = sock::sleep(0.1).await;
            }
        }
    }
}

fn main() -> sock::Result<()> {
    let (echo_port, http_port) = ports();
    // A connection's error (a reset at the end of a run) ends its thread; the
    // handlers are the threads themselves (no async block around them: the
    // handler's future, 16 KiB with its buffer, is then moved once, into the
    // thread), and their errors are not reported.
    sock::set_error_handler(|_, _| {});
    if std::env::var_os("SOCK_BENCH_LINES").is_some_and(|v| v == "1") {
        serve(echo_port, echo_lines)?;
    } else {
        serve(echo_port, echo)?;
    }
    serve(http_port, http)?;
    if let Some((port, cert, key)) = tls_args() {
        serve_tls(port, &cert, &key)?;
    }
    sock::start()
}
