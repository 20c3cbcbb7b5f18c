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
//! See [`TlsStream`] for an echo server and its client.

mod config;
mod stream;

pub use config::{client_config, server_config, KeyPair, TlsOptions};
pub use rustls::{ClientConfig, ServerConfig};
pub use stream::{TlsListener, TlsStream};
