//! An HTTPS server and a client fetching from it, in one process on
//! loopback: the server answers every request on its connections (keep-alive),
//! the client makes `N` requests over one connection and then a few more on
//! new connections (which resume the first one's TLS session).
//!
//! ```sh
//! cargo run --release -p sock-examples --example https -- [N]
//! ```
//!
//! The certificate is made at start (for `localhost`, with rcgen), so the
//! client verifies it as it would any server's: by its CA and its name.

use std::rc::Rc;
use std::sync::Arc;

use sock::{clock, Family, Shutdown, Tcp};
use sock_tls::{KeyPair, TlsListener, TlsOptions, TlsStream};

fn main() -> sock::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of requests"))
        .unwrap_or(1000);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
    let server = sock_tls::server_config(&TlsOptions {
        keypairs: vec![KeyPair {
            cert: ck.cert.pem().into_bytes(),
            key: ck.signing_key.serialize_pem().into_bytes(),
            ocsp_staple: None,
        }],
        alpn: vec!["http/1.1".into()],
        ..TlsOptions::default()
    })?;
    let client = sock_tls::client_config(&TlsOptions {
        ca: Some(ck.cert.pem().into_bytes()),
        alpn: vec!["http/1.1".into()],
        ..TlsOptions::default()
    })?;

    let l = Tcp::new(Family::Inet)?;
    l.listen(None, ("127.0.0.1", 0))?;
    let addr = l.local_addr()?;
    let l = Rc::new(TlsListener::new(l, server));
    let acceptor = {
        let l = l.clone();
        sock::newthread(async move {
            loop {
                let (conn, _, _) = match l.accept(None).await {
                    Ok(c) => c,
                    Err(e) if e.name() == "closed" => return sock::Result::Ok(()),
                    Err(e) => return Err(e),
                };
                sock::newthread(serve(conn));
            }
        })
    };

    let client = sock::newthread(async move {
        let t0 = clock();
        let conn = connect(&addr, client.clone()).await?;
        for _ in 0..n {
            get(&conn).await?;
        }
        let keepalive = clock() - t0;
        println!(
            "{n} requests on one connection ({}, {}, ALPN {:?}): {:.0} req/s",
            conn.protocol_version().unwrap_or("?"),
            conn.cipher_suite().unwrap_or("?"),
            conn.alpn_protocol().map(String::from_utf8),
            n as f64 / keepalive
        );
        conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
        let t0 = clock();
        let mut resumed = 0;
        for _ in 0..20 {
            let conn = connect(&addr, client.clone()).await?;
            get(&conn).await?;
            resumed += conn.is_resumed() as usize;
            conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
        }
        println!(
            "20 new connections: {:.1} ms each, {resumed} resumed their session",
            (clock() - t0) * 1000.0 / 20.0
        );
        sock::Result::Ok(())
    });
    sock::newthread(async move {
        let r = client.join().await;
        l.close(); // the acceptor ends
        r
    });
    sock::start()?;
    acceptor.result().expect("the acceptor finished")??;
    Ok(())
}

async fn connect(
    addr: &sock::SockAddr,
    config: Arc<sock_tls::ClientConfig>,
) -> sock::Result<TlsStream> {
    let tcp = Tcp::new(Family::Inet)?;
    tcp.connect(addr, Some(clock() + 5.0)).await?;
    tcp.setopt("tcp_nodelay", true)?;
    TlsStream::client(tcp, "localhost", config)
}

/// One request and its answer (read up to the end of its body).
async fn get(conn: &TlsStream) -> sock::Result<()> {
    conn.sendall(
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Some(clock() + 5.0),
    )
    .await?;
    let mut buf = [0u8; 512];
    let mut got = 0;
    loop {
        let n = conn.recv(&mut buf[got..], Some(clock() + 5.0)).await?;
        if n == 0 {
            return Err(sock::Error::new(sock::ErrorKind::Eof));
        }
        got += n;
        if buf[..got].ends_with(b"hello, world\n") {
            return Ok(());
        }
    }
}

/// Answers every request of a connection until the client's close_notify.
async fn serve(conn: TlsStream) -> sock::Result<()> {
    conn.tcp().setopt("tcp_nodelay", true)?;
    let mut buf = [0u8; 4096];
    let mut got = 0;
    loop {
        let n = conn.recv(&mut buf[got..], Some(clock() + 30.0)).await?;
        if n == 0 {
            return Ok(()); // the client is done: the drop closes (close_notify)
        }
        got += n;
        while let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") {
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n",
                Some(clock() + 5.0),
            )
            .await?;
            buf.copy_within(end + 4..got, 0);
            got -= end + 4;
        }
    }
}
