//! TLS between sock's own client and server on loopback: data both ways,
//! the deadlines, the errors of bad certificates and of peers that are not
//! TLS, close_notify, ALPN, session resumption, and two threads on one
//! stream.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use sock::{clock, ErrorKind, Family, Shutdown, Tcp};
use sock_tls::{ClientConfig, ServerConfig, TlsListener, TlsStream};
use util::{bounded, client, client_options, Ca};

/// A TLS listener on a loopback port.
fn listener(config: Arc<ServerConfig>) -> (TlsListener, sock::SockAddr) {
    let l = Tcp::new(Family::Inet).unwrap();
    l.listen(None, ("127.0.0.1", 0)).unwrap();
    let addr = l.local_addr().unwrap();
    (TlsListener::new(l, config), addr)
}

async fn connect(
    addr: &sock::SockAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> sock::Result<TlsStream> {
    let tcp = Tcp::new(Family::Inet)?;
    tcp.connect(addr, Some(clock() + 5.0)).await?;
    TlsStream::client(tcp, name, config)
}

/// One server connection served by `serve`, one client run by `client`:
/// both results.
fn pair<S, C>(
    server: Arc<ServerConfig>,
    serve: impl FnOnce(TlsStream) -> S + 'static,
    client: impl FnOnce(sock::SockAddr) -> C + 'static,
) -> (sock::Result<()>, sock::Result<()>)
where
    S: std::future::Future<Output = sock::Result<()>> + 'static,
    C: std::future::Future<Output = sock::Result<()>> + 'static,
{
    let (l, addr) = listener(server);
    let s = sock::newthread(async move {
        let (conn, _, _) = l.accept(Some(clock() + 5.0)).await?;
        serve(conn).await
    });
    let c = sock::newthread(client(addr));
    sock::start().unwrap();
    (s.result().unwrap().unwrap(), c.result().unwrap().unwrap())
}

#[test]
fn a_megabyte_both_ways_and_close_notify_reads_as_end_of_stream() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let cc = client(&ca);
        let data: Rc<Vec<u8>> = Rc::new((0..1 << 20).map(|i| (i * 7 % 251) as u8).collect());
        let d = data.clone();
        let (s, c) = pair(
            leaf.server(),
            |conn| async move {
                let mut buf = vec![0u8; 1 << 20];
                conn.recvall(&mut buf, Some(clock() + 10.0)).await?;
                conn.sendall(&buf, Some(clock() + 10.0)).await?;
                conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
                // The client's close_notify: recv returns 0, every time.
                let mut b = [0u8; 16];
                assert_eq!(conn.recv(&mut b, Some(clock() + 5.0)).await?, 0);
                assert_eq!(conn.recv(&mut b, Some(clock() + 5.0)).await?, 0);
                Ok(())
            },
            move |addr| async move {
                let conn = connect(&addr, "localhost", cc).await?;
                conn.sendall(&d, Some(clock() + 10.0)).await?;
                let mut got = Vec::new();
                let n = conn.recv_to_end(&mut got, Some(clock() + 10.0)).await?;
                assert_eq!(n, d.len());
                assert!(got == *d, "the echo differs");
                conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
                Ok(())
            },
        );
        s.unwrap();
        c.unwrap();
        drop(data);
    });
}

/// The error of a client connecting with `cc` to a server with `sc`.
fn client_error(sc: Arc<ServerConfig>, cc: Arc<ClientConfig>, name: &str) -> sock::Error {
    let name = name.to_owned();
    let (_, c) = pair(
        sc,
        |conn| async move {
            let _ = conn.handshake(Some(clock() + 5.0)).await;
            Ok(())
        },
        move |addr| async move {
            let conn = connect(&addr, &name, cc).await?;
            conn.handshake(Some(clock() + 5.0)).await
        },
    );
    c.unwrap_err()
}

#[test]
fn bad_certificates_each_fail_with_their_reason() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let t0 = clock();
        // A certificate for another name.
        let e = client_error(ca.leaf(&["example.org"]).server(), client(&ca), "localhost");
        assert_eq!(e.kind(), ErrorKind::CertificateInvalid, "{e}");
        assert!(e.message().contains("name"), "{e}");
        // An expired one.
        let e = client_error(
            ca.expired(&["localhost"]).server(),
            client(&ca),
            "localhost",
        );
        assert_eq!(e.kind(), ErrorKind::CertificateInvalid, "{e}");
        assert!(e.message().to_lowercase().contains("expired"), "{e}");
        // One from a CA the client does not trust.
        let other = Ca::new("other CA");
        let e = client_error(
            other.leaf(&["localhost"]).server(),
            client(&ca),
            "localhost",
        );
        assert_eq!(e.kind(), ErrorKind::CertificateInvalid, "{e}");
        assert!(e.message().to_lowercase().contains("issuer"), "{e}");
        assert!(clock() - t0 < 5.0, "no waiting for a failed handshake");
    });
}

#[test]
fn the_insecure_switches_relax_only_what_they_name() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let ok = |sc: Arc<ServerConfig>, o: sock_tls::TlsOptions| {
            let cc = sock_tls::client_config(&o).unwrap();
            let (_, c) = pair(
                sc,
                |conn| async move { conn.handshake(Some(clock() + 5.0)).await },
                move |addr| async move {
                    let conn = connect(&addr, "localhost", cc).await?;
                    conn.handshake(Some(clock() + 5.0)).await
                },
            );
            c
        };
        let mut o = client_options(&ca);
        o.insecure_noverifyname = true;
        ok(ca.leaf(&["example.org"]).server(), o.clone()).unwrap();
        // noverifyname does not pass an expired certificate...
        let e = ok(ca.expired(&["localhost"]).server(), o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CertificateInvalid);
        // ...noverifytime does.
        let mut o = client_options(&ca);
        o.insecure_noverifytime = true;
        ok(ca.expired(&["localhost"]).server(), o.clone()).unwrap();
        // Neither passes an unknown CA; noverifycert passes anything.
        let other = Ca::new("other CA");
        assert!(ok(other.leaf(&["localhost"]).server(), o).is_err());
        let o = sock_tls::TlsOptions {
            insecure_noverifycert: true,
            ..Default::default()
        };
        ok(other.expired(&["example.org"]).server(), o).unwrap();
    });
}

#[test]
fn a_peer_that_is_not_tls_fails_the_handshake_without_a_hang() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let cc = client(&ca);
        // A plain TCP server that answers like an HTTP server.
        let l = Tcp::new(Family::Inet).unwrap();
        l.listen(None, ("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let s = sock::newthread(async move {
            let (c, _, _) = l.accept(Some(clock() + 5.0)).await?;
            let mut b = [0u8; 512];
            let _ = c.recv(&mut b, Some(clock() + 5.0)).await?;
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n", None).await?;
            sock::sleep(0.2).await?;
            sock::Result::Ok(())
        });
        let c = sock::newthread(async move {
            let t0 = clock();
            let conn = connect(&addr, "localhost", cc).await?;
            let e = conn.handshake(Some(clock() + 5.0)).await.unwrap_err();
            sock::Result::Ok((e, clock() - t0))
        });
        sock::start().unwrap();
        s.result().unwrap().unwrap().unwrap();
        let (e, took) = c.result().unwrap().unwrap().unwrap();
        assert_eq!(e.kind(), ErrorKind::TlsHandshakeFailed, "{e}");
        assert!(e.message().contains("TLS"), "{e}");
        assert!(took < 2.0, "failed after {took} s");

        // A plain TCP client on a TLS server: the server's handshake fails.
        let leaf = ca.leaf(&["localhost"]);
        let (l, addr) = listener(leaf.server());
        let s = sock::newthread(async move {
            let (conn, _, _) = l.accept(Some(clock() + 5.0)).await?;
            let mut b = [0u8; 16];
            sock::Result::Ok(conn.recv(&mut b, Some(clock() + 5.0)).await.unwrap_err())
        });
        sock::newthread(async move {
            let c = Tcp::new(Family::Inet)?;
            c.connect(&addr, None).await?;
            c.sendall(b"GET / HTTP/1.0\r\n\r\n", None).await?;
            sock::sleep(0.2).await
        });
        sock::start().unwrap();
        let e = s.result().unwrap().unwrap().unwrap();
        assert_eq!(e.kind(), ErrorKind::TlsHandshakeFailed, "{e}");
    });
}

/// Reliability checklist: H7 (docs/reliability.md).
#[test]
fn a_handshake_with_a_silent_peer_times_out_on_time() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let cc = client(&ca);
        // A TCP listener that never answers.
        let l = Tcp::new(Family::Inet).unwrap();
        l.listen(None, ("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let c = sock::newthread(async move {
            let conn = connect(&addr, "localhost", cc).await?;
            let t0 = clock();
            let e = conn.handshake(Some(clock() + 0.3)).await.unwrap_err();
            sock::Result::Ok((e.kind(), clock() - t0))
        });
        sock::start().unwrap();
        let (kind, took) = c.result().unwrap().unwrap().unwrap();
        assert_eq!(kind, ErrorKind::Timeout);
        assert!((0.3..1.5).contains(&took), "timed out after {took} s");
        drop(l);

        // A server whose client never speaks: its first recv times out.
        let leaf = ca.leaf(&["localhost"]);
        let (l, addr) = listener(leaf.server());
        let s = sock::newthread(async move {
            let (conn, _, _) = l.accept(Some(clock() + 5.0)).await?;
            let mut b = [0u8; 16];
            let t0 = clock();
            let e = conn.recv(&mut b, Some(clock() + 0.3)).await.unwrap_err();
            sock::Result::Ok((e.kind(), clock() - t0))
        });
        let keep = Rc::new(RefCell::new(None));
        let k = keep.clone();
        sock::newthread(async move {
            let c = Tcp::new(Family::Inet)?;
            c.connect(&addr, None).await?;
            *k.borrow_mut() = Some(c);
            sock::Result::Ok(())
        });
        sock::start().unwrap();
        let (kind, took) = s.result().unwrap().unwrap().unwrap();
        assert_eq!(kind, ErrorKind::Timeout);
        assert!((0.3..1.5).contains(&took), "timed out after {took} s");
    });
}

#[test]
fn alpn_and_the_negotiated_parameters() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let mut so = leaf.server_options();
        so.alpn = vec!["h2".into(), "http/1.1".into()];
        let sc = sock_tls::server_config(&so).unwrap();
        let mut co = client_options(&ca);
        co.alpn = vec!["http/1.1".into()];
        co.protocols = Some("tlsv1.2".into());
        let cc = sock_tls::client_config(&co).unwrap();
        let (s, c) = pair(
            sc,
            |conn| async move {
                conn.handshake(Some(clock() + 5.0)).await?;
                assert_eq!(conn.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
                assert_eq!(conn.server_name().as_deref(), Some("localhost"));
                Ok(())
            },
            move |addr| async move {
                let conn = connect(&addr, "localhost", cc).await?;
                conn.handshake(Some(clock() + 5.0)).await?;
                assert_eq!(conn.protocol_version(), Some("tlsv1.2"));
                assert_eq!(conn.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
                assert!(conn.cipher_suite().unwrap().starts_with("TLS_ECDHE_"));
                assert_eq!(conn.peer_certificates().len(), 1);
                Ok(())
            },
        );
        s.unwrap();
        c.unwrap();
    });
}

#[test]
fn a_second_connection_with_the_same_configs_resumes_its_session() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let sc = leaf.server();
        for version in ["tlsv1.3", "tlsv1.2"] {
            let mut co = client_options(&ca);
            co.protocols = Some(version.into());
            let cc = sock_tls::client_config(&co).unwrap();
            let (l, addr) = listener(sc.clone());
            let resumed = Rc::new(RefCell::new(Vec::new()));
            let r = resumed.clone();
            let s = sock::newthread(async move {
                for _ in 0..2 {
                    let (conn, _, _) = l.accept(Some(clock() + 5.0)).await?;
                    let mut b = [0u8; 4];
                    conn.recvall(&mut b, Some(clock() + 5.0)).await?;
                    conn.sendall(b"pong", None).await?;
                    conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
                }
                sock::Result::Ok(())
            });
            let c = sock::newthread(async move {
                for _ in 0..2 {
                    let conn = connect(&addr, "localhost", cc.clone()).await?;
                    conn.sendall(b"ping", Some(clock() + 5.0)).await?;
                    let mut got = Vec::new();
                    conn.recv_to_end(&mut got, Some(clock() + 5.0)).await?;
                    assert_eq!(got, b"pong");
                    r.borrow_mut().push(conn.is_resumed());
                }
                sock::Result::Ok(())
            });
            sock::start().unwrap();
            s.result().unwrap().unwrap().unwrap();
            c.result().unwrap().unwrap().unwrap();
            assert_eq!(*resumed.borrow(), [false, true], "{version}");
        }
    });
}

/// Reliability checklist: D9 (docs/reliability.md).
#[test]
fn one_thread_receives_while_another_sends_and_close_wakes_both() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let cc = client(&ca);
        let (l, addr) = listener(leaf.server());
        // The server echoes line by line until the client's close_notify.
        let s = sock::newthread(async move {
            let (conn, _, _) = l.accept(Some(clock() + 5.0)).await?;
            let mut b = [0u8; 4096];
            loop {
                let n = conn.recv(&mut b, Some(clock() + 5.0)).await?;
                if n == 0 {
                    return conn.shutdown(Shutdown::Write, None).await;
                }
                conn.sendall(&b[..n], None).await?;
            }
        });
        let c = sock::newthread(async move {
            let conn = Rc::new(connect(&addr, "localhost", cc).await?);
            conn.handshake(Some(clock() + 5.0)).await?;
            let reader = {
                let conn = conn.clone();
                sock::newthread(async move {
                    let mut got = Vec::new();
                    conn.recv_to_end(&mut got, Some(clock() + 5.0)).await?;
                    sock::Result::Ok(got.len())
                })
            };
            for _ in 0..100 {
                conn.sendall(&[b'x'; 1000], Some(clock() + 5.0)).await?;
            }
            conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
            let n = reader.join().await.unwrap()?;
            assert_eq!(n, 100_000);

            // close() from another thread wakes a parked recv with `closed`.
            sock::Result::Ok(())
        });
        sock::start().unwrap();
        s.result().unwrap().unwrap().unwrap();
        c.result().unwrap().unwrap().unwrap();

        let (l, addr) = listener(leaf.server());
        let cc = client(&ca);
        let keep = sock::newthread(async move {
            let (conn, _, _) = l.accept(Some(clock() + 5.0)).await?;
            conn.handshake(Some(clock() + 5.0)).await?;
            sock::sleep(1.0).await?;
            sock::Result::Ok(())
        });
        let c = sock::newthread(async move {
            let conn = Rc::new(connect(&addr, "localhost", cc).await?);
            conn.handshake(Some(clock() + 5.0)).await?;
            let c2 = conn.clone();
            sock::newthread(async move {
                sock::sleep(0.05).await?;
                c2.close();
                sock::Result::Ok(())
            });
            let mut b = [0u8; 16];
            let t0 = clock();
            let e = conn.recv(&mut b, Some(clock() + 5.0)).await.unwrap_err();
            assert!(conn.is_closed());
            sock::Result::Ok((e.kind(), clock() - t0))
        });
        sock::start().unwrap();
        keep.result().unwrap().unwrap().unwrap();
        let (kind, took) = c.result().unwrap().unwrap().unwrap();
        assert_eq!(kind, ErrorKind::Closed);
        assert!(took < 0.5, "woken after {took} s");
    });
}

#[test]
fn end_of_stream_without_close_notify_is_eof() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let cc = client(&ca);
        let (s, c) = pair(
            leaf.server(),
            |conn| async move {
                conn.sendall(b"partial", Some(clock() + 5.0)).await?;
                // A FIN without close_notify (a truncation).
                conn.tcp().shutdown(Shutdown::Write)?;
                sock::sleep(0.2).await
            },
            move |addr| async move {
                let conn = connect(&addr, "localhost", cc).await?;
                let mut got = Vec::new();
                let e = conn
                    .recv_to_end(&mut got, Some(clock() + 5.0))
                    .await
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Eof, "{e}");
                assert_eq!(got, b"partial");
                Ok(())
            },
        );
        s.unwrap();
        c.unwrap();
    });
}

/// Reliability checklist: E2 (docs/reliability.md).
#[test]
fn shutdown_after_the_peer_is_gone_is_not_an_error() {
    // An HTTP server's usual end: it answers with `Connection: close`, the
    // client reads the answer and closes at once; the server's close_notify
    // then meets a closed socket, whose reset comes back before the TCP
    // shutdown (at once on loopback). The close_notify was sent; the
    // shutdown succeeds, as libtls's tls_close does.
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let cc = client(&ca);
        let (s, c) = pair(
            leaf.server(),
            |conn| async move {
                conn.sendall(b"bye", Some(clock() + 5.0)).await?;
                // The client closes without close_notify: eof.
                let mut b = [0u8; 16];
                let e = conn.recv(&mut b, Some(clock() + 5.0)).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Eof, "{e}");
                conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await
            },
            move |addr| async move {
                let conn = connect(&addr, "localhost", cc).await?;
                let mut b = [0u8; 3];
                conn.recvall(&mut b, Some(clock() + 5.0)).await?;
                assert_eq!(&b, b"bye");
                conn.tcp().close();
                Ok(())
            },
        );
        c.unwrap();
        s.unwrap();
    });
}

/// Reliability checklist: D10 (docs/reliability.md).
#[test]
fn lines_over_tls_and_recv_after_them() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let cc = client(&ca);
        let (s, c) = pair(
            leaf.server(),
            |conn| async move {
                conn.sendall(b"one\r\ntwo\nthree and more", Some(clock() + 5.0))
                    .await?;
                conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await
            },
            move |addr| async move {
                let conn = connect(&addr, "localhost", cc).await?;
                let mut line = Vec::new();
                assert_eq!(
                    conn.read_line(&mut line, 64, false, Some(clock() + 5.0))
                        .await?,
                    5
                );
                assert_eq!(line, b"one");
                line.clear();
                conn.read_line(&mut line, 64, true, Some(clock() + 5.0))
                    .await?;
                assert_eq!(line, b"two\n");
                // Over the maximum: the bytes stay, recv takes them.
                let e = conn
                    .read_line(&mut line, 4, false, Some(clock() + 5.0))
                    .await
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::MessageTooBig);
                let mut b = [0u8; 5];
                conn.recvall(&mut b, Some(clock() + 5.0)).await?;
                assert_eq!(&b, b"three");
                line.clear();
                conn.read_line(&mut line, 64, false, Some(clock() + 5.0))
                    .await?;
                assert_eq!(line, b" and more");
                assert_eq!(
                    conn.read_line(&mut line, 64, false, Some(clock() + 5.0))
                        .await?,
                    0
                );
                assert_eq!(sock::read_buffers().0, 0, "the buffer went back");
                Ok(())
            },
        );
        s.unwrap();
        c.unwrap();
    });
}

/// Reliability checklist: E3 (docs/reliability.md).
#[test]
fn a_send_after_shutdown_fails_at_once() {
    bounded(60.0, || {
        let ca = Ca::new("test CA");
        let leaf = ca.leaf(&["localhost"]);
        let cc = client(&ca);
        let (s, c) = pair(
            leaf.server(),
            |conn| async move {
                let mut got = Vec::new();
                conn.recv_to_end(&mut got, Some(clock() + 5.0)).await?;
                assert_eq!(got, b"before");
                Ok(())
            },
            move |addr| async move {
                let conn = connect(&addr, "localhost", cc).await?;
                conn.sendall(b"before", Some(clock() + 5.0)).await?;
                conn.shutdown(Shutdown::Write, Some(clock() + 5.0)).await?;
                let e = conn
                    .sendall(b"after", Some(clock() + 5.0))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::Closed),
                    "{e}"
                );
                Ok(())
            },
        );
        s.unwrap();
        c.unwrap();
    });
}
