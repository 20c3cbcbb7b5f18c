//! TLS for sock's TCP sockets, on rustls (with its ring provider; no
//! OpenSSL).
//!
//! * [`client_config`] and [`server_config`] build a configuration once from
//!   [`TlsOptions`] (the keys of the original `sock_libtls` options: CA,
//!   certificates and keys, protocols, ALPN, ciphers, curves, the insecure
//!   switches); every connection made with it shares it, and with it the
//!   session cache and the ticket keys (sessions resume). A rustls
//!   `ClientConfig` or `ServerConfig` built by hand works as well.
//! * [`TlsStream`] is one connection over a [`sock::Tcp`]: `handshake`,
//!   `recv`, `recvall`, `send`, `sendall`, `shutdown`, `close`, each with
//!   sock's absolute deadline (`expires`, in [`sock::clock`] seconds) and
//!   its errors as values (`certificate_invalid`, `tls_handshake_failed`,
//!   `tls_error`, `timeout`, `closed`, ...).
//! * [`TlsListener`] accepts TLS connections.
//!
//! Verification is on by default (the chain up to a trusted root, the
//! validity period, the server name); server name indication is sent. A
//! stream sends close_notify on `shutdown` and `close`.
//!
//! See [`TlsStream`] for an echo server and its client, and
//! `examples/https.rs` for an HTTPS server and client. An HTTPS GET from a
//! local server:
//!
//! ```
//! use sock::{clock, Family, Tcp};
//! use sock_tls::{KeyPair, TlsListener, TlsOptions, TlsStream};
//!
//! // A certificate for "localhost" (made here; a real server loads its own).
//! let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let server = sock_tls::server_config(&TlsOptions {
//!     keypairs: vec![KeyPair {
//!         cert: ck.cert.pem().into_bytes(),
//!         key: ck.signing_key.serialize_pem().into_bytes(),
//!         ocsp_staple: None,
//!     }],
//!     ..TlsOptions::default()
//! })
//! .unwrap();
//! // The client trusts that certificate (by default: the system's roots).
//! let client = sock_tls::client_config(&TlsOptions {
//!     ca: Some(ck.cert.pem().into_bytes()),
//!     ..TlsOptions::default()
//! })
//! .unwrap();
//!
//! let l = Tcp::new(Family::Inet).unwrap();
//! l.listen(None, ("127.0.0.1", 0)).unwrap();
//! let port = l.local_addr().unwrap().port();
//! let l = TlsListener::new(l, server);
//! sock::newthread(async move {
//!     let (conn, _, _) = l.accept(None).await?;
//!     let mut req = [0u8; 1024];
//!     conn.recv(&mut req, Some(clock() + 5.0)).await?; // (a real server parses it)
//!     conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", None)
//!         .await?;
//!     conn.shutdown(sock::Shutdown::Write, Some(clock() + 5.0)).await
//! });
//! let get = sock::newthread(async move {
//!     let tcp = Tcp::new(Family::Inet)?;
//!     tcp.connect(("127.0.0.1", port), Some(clock() + 5.0)).await?;
//!     let conn = TlsStream::client(tcp, "localhost", client)?;
//!     conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", Some(clock() + 5.0))
//!         .await?; // the handshake first, under the same deadline
//!     let mut answer = Vec::new();
//!     conn.recv_to_end(&mut answer, Some(clock() + 5.0)).await?;
//!     sock::Result::Ok(String::from_utf8(answer).unwrap())
//! });
//! sock::start().unwrap();
//! let answer = get.result().unwrap().unwrap().unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("hi"));
//! ```

mod config;
mod stream;

pub use config::{client_config, server_config, KeyPair, TlsOptions};
pub use rustls::{ClientConfig, ServerConfig};
pub use stream::{TlsListener, TlsStream};
