//! What the benchmark's Rust servers share: the command line, the buffer size
//! and the HTTP/1.1 hello world, so that sock and tokio do the same work as the
//! C and Lua servers (see bench/README.md).
//!
//! Every server takes `ECHO_PORT HTTP_PORT` and listens on 127.0.0.1:
//! - echo: reads what is there (up to [`BUF`] bytes) and writes it back;
//! - HTTP: answers every complete request in what it read (pipelining) with
//!   [`KEEP_ALIVE`], or with [`CLOSE`] and then closes when the request says
//!   `Connection: close`.
//!
//! sock's server also takes `TLS_PORT CERT KEY` after them (W5, W6): the
//! HTTP hello world over TLS on a third port, with the certificate and key
//! (PEM files) and the one handshake of every TLS server of the harness
//! ([`TLS_PROTOCOLS`], [`TLS_CIPHERS`], [`TLS_CURVES`]).

/// The per-connection buffer of the echo and HTTP handlers, in bytes (the
/// harness subtracts it from the idle memory per connection, W4).
pub const BUF: usize = 16 * 1024;

/// The answer to a keep-alive request.
pub const KEEP_ALIVE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

/// The answer to a request with `Connection: close`.
pub const CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";

/// The listen backlog of every benchmark server.
pub const BACKLOG: u32 = 1024;

/// The TLS protocol versions of every TLS server of the harness (as
/// nginx's `ssl_protocols TLSv1.3`).
pub const TLS_PROTOCOLS: &str = "tlsv1.3";

/// The one cipher suite (nginx: `ssl_conf_command Ciphersuites`).
pub const TLS_CIPHERS: &str = "TLS_AES_128_GCM_SHA256";

/// The one key exchange group (nginx: `ssl_ecdh_curve X25519`).
pub const TLS_CURVES: &str = "x25519";

/// The TLS server's arguments, after the two ports: `TLS_PORT CERT KEY`
/// (the port, the certificate's and the key's PEM files), if given; exits
/// with a usage message when they are incomplete.
pub fn tls_args() -> Option<(u16, String, String)> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() <= 3 {
        return None;
    }
    match (
        args.get(3).and_then(|p| p.parse::<u16>().ok()),
        args.get(4),
        args.get(5),
    ) {
        (Some(p), Some(cert), Some(key)) => Some((p, cert.clone(), key.clone())),
        _ => {
            eprintln!("usage: {} ECHO_PORT HTTP_PORT [TLS_PORT CERT KEY]", args[0]);
            std::process::exit(2);
        }
    }
}

/// The two ports from the command line (`ECHO_PORT HTTP_PORT`); exits with a
/// usage message when they are missing.
pub fn ports() -> (u16, u16) {
    let args: Vec<String> = std::env::args().collect();
    let port = |i: usize| args.get(i).and_then(|p| p.parse::<u16>().ok());
    match (port(1), port(2)) {
        (Some(e), Some(h)) => (e, h),
        _ => {
            eprintln!("usage: {} ECHO_PORT HTTP_PORT [args]", args[0]);
            std::process::exit(2);
        }
    }
}

/// The answers to the complete requests at the start of `buf`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes of `buf` taken by complete requests.
    pub used: usize,
    /// Keep-alive requests answered before the end or a close.
    pub answers: usize,
    /// The last complete request asked to close (answer with [`CLOSE`] after
    /// the others, then close).
    pub close: bool,
}

/// Finds the complete requests (header ending in an empty line) at the start
/// of `buf`; request bodies are not supported (a hello world gets GETs).
pub fn parse(buf: &[u8]) -> Parsed {
    let mut p = Parsed::default();
    while let Some(end) = find(&buf[p.used..], b"\r\n\r\n") {
        let head = &buf[p.used..p.used + end + 4];
        p.used += end + 4;
        if wants_close(head) {
            p.close = true;
            break;
        }
        p.answers += 1;
    }
    p
}

/// The position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a request header has `Connection: close` (any case).
pub fn wants_close(head: &[u8]) -> bool {
    const C: &[u8] = b"\nconnection: close";
    head.windows(C.len()).any(|w| w.eq_ignore_ascii_case(C))
}

/// The bytes to send for `p`: the keep-alive answers, then the close answer.
pub fn answers(p: &Parsed, out: &mut Vec<u8>) {
    out.clear();
    for _ in 0..p.answers {
        out.extend_from_slice(KEEP_ALIVE);
    }
    if p.close {
        out.extend_from_slice(CLOSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_and_partial_requests() {
        let r = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /";
        let p = parse(r);
        assert_eq!(
            p,
            Parsed {
                used: 54,
                answers: 2,
                close: false
            }
        );
        let r = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n";
        assert_eq!(
            parse(r),
            Parsed {
                used: r.len(),
                answers: 0,
                close: true
            }
        );
        let mut out = Vec::new();
        answers(
            &Parsed {
                used: 0,
                answers: 1,
                close: true,
            },
            &mut out,
        );
        assert_eq!(out.len(), KEEP_ALIVE.len() + CLOSE.len());
    }
}
