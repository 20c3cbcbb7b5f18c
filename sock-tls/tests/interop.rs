//! TLS with other implementations on loopback: curl and `openssl s_client`
//! against sock's server, sock's client against `openssl s_server` and a
//! Python `ssl` server; TLS 1.2 and 1.3, ALPN, close_notify both ways, and
//! the errors of bad certificates as each side sees them.
//!
//! A test whose program (`curl`, `openssl`, `python3`) is missing says so
//! and passes; scripts/test.sh installs them.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;

use sock::{clock, ErrorKind, Family, Shutdown, Tcp};
use sock_tls::{ClientConfig, ServerConfig, TlsListener, TlsStream};
use util::{bounded, client, client_options, free_port, have, Ca, Leaf, Proc};

/// Whether `program` is there; if not, the test says so and is skipped.
fn need(program: &str) -> bool {
    let arg = if program == "openssl" {
        "version"
    } else {
        "--version"
    };
    let ok = have(program, arg);
    if !ok {
        eprintln!("skipped: `{program}` is not installed");
    }
    ok
}

/// A file of one test (each test its own names: tests run in parallel).
fn file(test: &str, name: &str, contents: &str) -> PathBuf {
    util::temp_file(&format!("{test}-{name}"), contents)
}

/// The certificate and key of `leaf` as files, for a program.
fn leaf_files(test: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    (
        file(test, "leaf.pem", &leaf.cert),
        file(test, "leaf.key", &leaf.key),
    )
}

/// A TLS listener on a loopback port: it and its port.
fn listener(config: Arc<ServerConfig>) -> (TlsListener, u16) {
    let l = Tcp::new(Family::Inet).unwrap();
    l.listen(None, ("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    (TlsListener::new(l, config), port)
}

/// Reads until `buf` holds `end`: whether it came before the stream ended.
async fn recv_until(conn: &TlsStream, buf: &mut Vec<u8>, end: &[u8]) -> sock::Result<bool> {
    let mut b = [0u8; 4096];
    while !buf.windows(end.len()).any(|w| w == end) {
        let n = conn.recv(&mut b, Some(clock() + 10.0)).await?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&b[..n]);
    }
    Ok(true)
}

/// After our close_notify: reads until the peer ends its side too (its
/// close_notify or a bare FIN, either will do), so the socket is not closed
/// under data the peer still sends.
async fn drain(conn: &TlsStream) {
    let mut b = [0u8; 4096];
    while let Ok(n) = conn.recv(&mut b, Some(clock() + 5.0)).await {
        if n == 0 {
            break;
        }
    }
}

/// What sock's server saw of one connection.
#[derive(Debug)]
struct Seen {
    /// What the handler returned (the request).
    request: String,
    version: Option<&'static str>,
    alpn: Option<Vec<u8>>,
    server_name: Option<String>,
}

/// Runs a sock loop that accepts one connection on `l` and serves it with
/// `serve` (which returns the request it read): what it saw.
fn serve_one<F>(
    l: TlsListener,
    serve: impl FnOnce(Rc<TlsStream>) -> F + 'static,
) -> sock::Result<Seen>
where
    F: std::future::Future<Output = sock::Result<String>> + 'static,
{
    let t = sock::newthread(async move {
        let (conn, _, _) = l.accept(Some(clock() + 15.0)).await?;
        let conn = Rc::new(conn);
        let request = serve(conn.clone()).await?;
        sock::Result::Ok(Seen {
            request,
            version: conn.protocol_version(),
            alpn: conn.alpn_protocol(),
            server_name: conn.server_name(),
        })
    });
    sock::start().unwrap();
    t.result().unwrap().unwrap()
}

/// An HTTP/1.1 handler: reads the request head, answers `body` with
/// `Connection: close`, sends close_notify and FIN.
async fn http(conn: Rc<TlsStream>, body: &'static str) -> sock::Result<String> {
    let mut req = Vec::new();
    assert!(
        recv_until(&conn, &mut req, b"\r\n\r\n").await?,
        "the request ended early: {:?}",
        String::from_utf8_lossy(&req)
    );
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.sendall(answer.as_bytes(), Some(clock() + 10.0))
        .await?;
    conn.shutdown(Shutdown::Write, Some(clock() + 10.0)).await?;
    drain(&conn).await;
    Ok(String::from_utf8_lossy(&req).into_owned())
}

/// curl for `https://localhost:PORT/hello` (localhost resolved to
/// 127.0.0.1), trusting `ca`, with `extra` arguments. No configuration file,
/// no proxy.
fn curl(port: u16, ca: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("curl");
    c.arg("-q")
        .args(["--silent", "--show-error", "--noproxy", "*"])
        .args(["--max-time", "20"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .args(extra)
        .arg(format!("https://localhost:{port}/hello"));
    c
}

#[test]
fn curl_gets_a_page_from_the_sock_server_over_tls_1_2_and_1_3() {
    if !need("curl") {
        return;
    }
    bounded(90.0, || {
        let ca = Ca::new("interop CA");
        let ca_pem = file("curl-ok", "ca.pem", &ca.pem());
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        let mut so = leaf.server_options();
        so.alpn = vec!["http/1.1".into()];
        let sc = sock_tls::server_config(&so).unwrap();
        let cases: [(&[&str], &str); 3] = [
            (&[], "tlsv1.3"),
            (&["--tlsv1.2", "--tls-max", "1.2"], "tlsv1.2"),
            (&["--tlsv1.3"], "tlsv1.3"),
        ];
        for (flags, version) in cases {
            let (l, port) = listener(sc.clone());
            let curl = Proc::spawn(&mut curl(port, &ca_pem, flags));
            let seen = serve_one(l, |c| http(c, "hello from sock\n"));
            let out = curl.wait(20.0);
            let seen = seen.unwrap_or_else(|e| panic!("{flags:?}: {e}; curl: {out:?}"));
            assert!(out.status.success(), "{flags:?}: {out:?}");
            assert_eq!(out.stdout, "hello from sock\n", "{flags:?}: {out:?}");
            assert!(
                seen.request.starts_with("GET /hello HTTP/1.1\r\n"),
                "{seen:?}"
            );
            assert!(
                seen.request
                    .to_ascii_lowercase()
                    .contains(&format!("\r\nhost: localhost:{port}\r\n")),
                "{seen:?}"
            );
            assert_eq!(seen.version, Some(version), "{flags:?}");
            assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]), "{flags:?}");
            assert_eq!(seen.server_name.as_deref(), Some("localhost"), "{flags:?}");
        }
    });
}

#[test]
fn curl_that_does_not_trust_the_ca_fails_and_the_server_sees_its_alert() {
    if !need("curl") {
        return;
    }
    bounded(60.0, || {
        let ca = Ca::new("interop CA");
        let other = Ca::new("other CA");
        let other_pem = file("curl-untrusted", "other.pem", &other.pem());
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        for flags in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"]] {
            let (l, port) = listener(leaf.server());
            let curl = Proc::spawn(&mut curl(port, &other_pem, flags));
            let t0 = clock();
            let seen = serve_one(l, |c| http(c, "never\n"));
            let took = clock() - t0;
            let out = curl.wait(20.0);
            // curl: "SSL certificate problem: unable to get local issuer
            // certificate".
            assert_eq!(out.status.code(), Some(60), "{flags:?}: {out:?}");
            assert!(out.stdout.is_empty(), "{out:?}");
            let e = seen.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TlsHandshakeFailed, "{flags:?}: {e}");
            // OpenSSL's alert for an unknown issuer, or its close.
            let m = e.message().to_lowercase();
            assert!(
                m.contains("unknownca") || m.contains("closed"),
                "{flags:?}: {e}"
            );
            assert!(took < 10.0, "the failed handshake took {took} s");
        }
    });
}

/// `openssl s_client` to sock's server at `port`, trusting `ca`, checking
/// the chain and the name, with `extra` arguments; it goes on reading after
/// the end of its stdin, until the server closes.
fn s_client(port: u16, ca: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("openssl");
    c.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-ign_eof"])
        .args(extra);
    c
}

/// A line echo handler: reads one line, answers "echo: " and the line,
/// then close_notify and FIN.
async fn echo_line(conn: Rc<TlsStream>) -> sock::Result<String> {
    let mut line = Vec::new();
    assert!(
        recv_until(&conn, &mut line, b"\n").await?,
        "the stream ended before a line: {:?}",
        String::from_utf8_lossy(&line)
    );
    let mut answer = b"echo: ".to_vec();
    answer.extend_from_slice(&line);
    conn.sendall(&answer, Some(clock() + 10.0)).await?;
    conn.shutdown(Shutdown::Write, Some(clock() + 10.0)).await?;
    drain(&conn).await;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[test]
fn openssl_s_client_verifies_the_sock_server_and_gets_its_echo() {
    if !need("openssl") {
        return;
    }
    bounded(90.0, || {
        let ca = Ca::new("interop CA");
        let ca_pem = file("s_client", "ca.pem", &ca.pem());
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        let sc = leaf.server();
        for (flag, version, name) in [
            ("-tls1_2", "tlsv1.2", "TLSv1.2"),
            ("-tls1_3", "tlsv1.3", "TLSv1.3"),
        ] {
            let (l, port) = listener(sc.clone());
            let mut client = Proc::spawn(&mut s_client(port, &ca_pem, &[flag]));
            client.write_stdin(b"hello from s_client\n");
            client.close_stdin();
            let seen = serve_one(l, echo_line);
            let out = client.wait(20.0);
            let seen = seen.unwrap_or_else(|e| panic!("{flag}: {e}; s_client: {out:?}"));
            assert_eq!(seen.request, "hello from s_client\n");
            assert_eq!(seen.version, Some(version));
            assert_eq!(seen.server_name.as_deref(), Some("localhost"));
            assert!(
                out.stdout.contains("\necho: hello from s_client\n"),
                "{flag}: {out:?}"
            );
            assert!(
                out.stdout.contains("Verify return code: 0 (ok)"),
                "{flag}: {out:?}"
            );
            assert!(
                out.stdout.contains(&format!("Protocol  : {name}")),
                "{flag}: {out:?}"
            );
            assert!(out.status.success(), "{flag}: {out:?}");
        }
    });
}

/// `openssl s_server` on `port` with `leaf`, for one connection, with
/// `extra` arguments (`-rev`: it answers each line reversed).
fn s_server(test: &str, port: u16, leaf: &Leaf, extra: &[&str]) -> Proc {
    let (cert, key) = leaf_files(test, leaf);
    Proc::spawn(
        Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(["-naccept", "1"])
            .args(extra),
    )
}

/// A TCP connection to 127.0.0.1:`port`, where `server` is starting: tries
/// again while the port refuses, for at most 10 s, and fails at once if the
/// server ended.
async fn connect_when_up(port: u16, server: &Proc) -> sock::Result<Tcp> {
    let until = clock() + 10.0;
    loop {
        let tcp = Tcp::new(Family::Inet)?;
        match tcp.connect(("127.0.0.1", port), Some(clock() + 5.0)).await {
            // While nothing listens, a connect whose own port happens to be
            // `port` connects to itself (TCP's simultaneous open): again.
            Ok(()) if tcp.local_addr()?.port() == port => tcp.close(),
            Ok(()) => return Ok(tcp),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                assert!(server.running(), "the server ended before it listened");
            }
            Err(e) => return Err(e),
        }
        if clock() > until {
            return Err(sock::Error::with_message(
                ErrorKind::Timeout,
                format!("nothing listened on port {port} in 10 s"),
            ));
        }
        sock::sleep(0.02).await?;
    }
}

/// Runs a sock loop with one client thread that connects to the server
/// `server` on `port` as "localhost" with `cc` and runs `talk`: its result.
fn with_client<T, F>(
    port: u16,
    server: &Rc<Proc>,
    cc: Arc<ClientConfig>,
    talk: impl FnOnce(TlsStream) -> F + 'static,
) -> sock::Result<T>
where
    T: 'static,
    F: std::future::Future<Output = sock::Result<T>> + 'static,
    sock::Result<T>: sock::ThreadOutput,
{
    let server = server.clone();
    let t = sock::newthread(async move {
        let tcp = connect_when_up(port, &server).await?;
        talk(TlsStream::client(tcp, "localhost", cc)?).await
    });
    sock::start().unwrap();
    t.result().unwrap().unwrap()
}

/// Sends a line to an `s_server -rev`, reads the reversed line, ends with
/// close_notify: the version agreed and the ALPN protocol.
async fn reversed(conn: TlsStream) -> sock::Result<(Option<&'static str>, Option<Vec<u8>>)> {
    conn.sendall(b"hello s_server\n", Some(clock() + 10.0))
        .await?;
    let mut got = Vec::new();
    assert!(recv_until(&conn, &mut got, b"\n").await?, "{got:?}");
    assert_eq!(String::from_utf8_lossy(&got), "revres_s olleh\n");
    conn.shutdown(Shutdown::Write, Some(clock() + 10.0)).await?;
    Ok((conn.protocol_version(), conn.alpn_protocol()))
}

/// Waits for the server of one connection to end: what it wrote. `client`
/// (what the client got) tells more if it does not end.
fn finish(server: Rc<Proc>, client: &dyn std::fmt::Debug) -> util::Output {
    match Rc::try_unwrap(server) {
        Ok(p) => p.wait_for(20.0, client),
        Err(_) => panic!("the server is still shared"),
    }
}

#[test]
fn the_sock_client_talks_to_openssl_s_server_over_tls_1_2_and_1_3() {
    if !need("openssl") {
        return;
    }
    bounded(90.0, || {
        let ca = Ca::new("interop CA");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        for (flag, version) in [("-tls1_2", "tlsv1.2"), ("-tls1_3", "tlsv1.3")] {
            let port = free_port();
            let server = Rc::new(s_server("s_server", port, &leaf, &[flag, "-rev"]));
            let r = with_client(port, &server, client(&ca), reversed);
            let out = finish(server, &r);
            let (v, alpn) = r.unwrap_or_else(|e| panic!("{flag}: {e}; s_server: {out:?}"));
            assert_eq!(v, Some(version));
            assert_eq!(alpn, None);
            assert!(out.status.success(), "{flag}: {out:?}");
            // It saw our close_notify as the end of the connection.
            assert!(out.stderr.contains("CONNECTION CLOSED"), "{flag}: {out:?}");
        }
    });
}

#[test]
fn alpn_with_openssl_s_server() {
    if !need("openssl") {
        return;
    }
    bounded(90.0, || {
        let ca = Ca::new("interop CA");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        for protocols in ["tlsv1.2", "tlsv1.3"] {
            let mut co = client_options(&ca);
            co.protocols = Some(protocols.into());
            co.alpn = vec!["h2".into(), "http/1.1".into()];
            let cc = sock_tls::client_config(&co).unwrap();
            let port = free_port();
            let server = Rc::new(s_server(
                "alpn",
                port,
                &leaf,
                &["-alpn", "http/1.1", "-rev"],
            ));
            let r = with_client(port, &server, cc, reversed);
            let out = finish(server, &r);
            let (v, alpn) = r.unwrap_or_else(|e| panic!("{protocols}: {e}; s_server: {out:?}"));
            assert_eq!(v, Some(protocols));
            assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "{protocols}");
            assert!(out.status.success(), "{out:?}");
        }

        // No protocol in common: s_server refuses with an alert.
        let mut co = client_options(&ca);
        co.alpn = vec!["h2".into()];
        let cc = sock_tls::client_config(&co).unwrap();
        let port = free_port();
        let server = Rc::new(s_server("alpn-none", port, &leaf, &["-alpn", "http/1.1"]));
        let r = with_client(port, &server, cc, |conn| async move {
            conn.handshake(Some(clock() + 10.0)).await
        });
        let out = finish(server, &r);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TlsHandshakeFailed, "{e}");
        assert!(e.message().contains("NoApplicationProtocol"), "{e}");
        assert!(out.stderr.contains("no application protocol"), "{out:?}");
    });
}

#[test]
fn bad_certificates_of_openssl_s_server_are_certificate_invalid() {
    if !need("openssl") {
        return;
    }
    bounded(90.0, || {
        let ca = Ca::new("interop CA");
        let other = Ca::new("other CA");
        // The certificate, the words of the client's error, OpenSSL's words
        // for the alert the client sent.
        let cases = [
            (ca.leaf(&["example.org"]), "name", "bad certificate"),
            (ca.expired(&["localhost"]), "expired", "certificate expired"),
            (other.leaf(&["localhost"]), "issuer", "unknown ca"),
        ];
        for (i, (leaf, words, alert)) in cases.into_iter().enumerate() {
            for flag in ["-tls1_2", "-tls1_3"] {
                let port = free_port();
                let test = format!("bad-{i}{flag}");
                let server = Rc::new(s_server(&test, port, &leaf, &[flag]));
                let t0 = clock();
                let r = with_client(port, &server, client(&ca), |conn| async move {
                    conn.handshake(Some(clock() + 10.0)).await
                });
                let took = clock() - t0;
                let out = finish(server, &r);
                let e = r.unwrap_err();
                assert_eq!(
                    e.kind(),
                    ErrorKind::CertificateInvalid,
                    "{words} {flag}: {e}"
                );
                assert!(
                    e.message().to_lowercase().contains(words),
                    "{words} {flag}: {e}"
                );
                assert!(took < 10.0, "the failed handshake took {took} s");
                // The client's alert reached OpenSSL.
                assert!(out.stderr.contains(alert), "{words} {flag}: {out:?}");
            }
        }
    });
}

/// A Python `ssl` server for one connection: prints its port, reads a line,
/// answers it prefixed by the protocol version, then closes with
/// close_notify and waits for the client's (`unwrap`), and prints "clean".
const PYTHON_SERVER: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.bind(("127.0.0.1", 0))
ls.listen(1)
ls.settimeout(20)
print(ls.getsockname()[1], flush=True)
raw, _ = ls.accept()
raw.settimeout(20)
s = ctx.wrap_socket(raw, server_side=True)
line = b""
while not line.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("the stream ended before a line")
    line += chunk
s.sendall(b"python " + s.version().encode() + b": " + line)
plain = s.unwrap()
print("clean", flush=True)
plain.close()
"#;

#[test]
fn the_sock_client_talks_to_a_python_ssl_server() {
    if !need("python3") {
        return;
    }
    bounded(90.0, || {
        let ca = Ca::new("interop CA");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        let (cert, key) = leaf_files("python", &leaf);
        for (protocols, name) in [("tlsv1.2", "TLSv1.2"), ("tlsv1.3", "TLSv1.3")] {
            let mut co = client_options(&ca);
            co.protocols = Some(protocols.into());
            let cc = sock_tls::client_config(&co).unwrap();
            let mut server = Proc::spawn(
                Command::new("python3")
                    .args(["-c", PYTHON_SERVER])
                    .arg(&cert)
                    .arg(&key),
            );
            let port: u16 = server.line(20.0).trim().parse().unwrap();
            let server = Rc::new(server);
            let r = with_client(port, &server, cc, |conn| async move {
                conn.sendall(b"hello python\n", Some(clock() + 10.0))
                    .await?;
                // To the server's close_notify: no `eof`.
                let mut got = Vec::new();
                conn.recv_to_end(&mut got, Some(clock() + 10.0)).await?;
                conn.shutdown(Shutdown::Write, Some(clock() + 10.0)).await?;
                Ok((got, conn.protocol_version()))
            });
            let out = finish(server, &r);
            let (got, v) = r.unwrap_or_else(|e| panic!("{protocols}: {e}; python: {out:?}"));
            assert_eq!(
                String::from_utf8_lossy(&got),
                format!("python {name}: hello python\n")
            );
            assert_eq!(v, Some(protocols));
            // Python saw our close_notify.
            assert!(out.status.success(), "{protocols}: {out:?}");
            assert!(out.stdout.ends_with("clean\n"), "{protocols}: {out:?}");
        }
    });
}
