//! The TLS client of W5 (`http --tls`) and W6 (`conn --tls`): a rustls
//! `ClientConnection` (ring provider) per connection, non-blocking, driven
//! by the same one-thread edge-triggered epoll loop as the plaintext modes:
//! records in with `read_tls` and `process_new_packets` when the socket is
//! readable, out with `write_tls` (one gathering `sendmsg` for the records
//! queued) until the socket is full, then again at its `EPOLLOUT`.
//!
//! The client offers TLS 1.3 only, the suite TLS_AES_128_GCM_SHA256 and the
//! group X25519 only, so every server is held to the same handshake. It
//! verifies the server: the certificate chain up to the one trusted
//! certificate `--ca` (bench/run.sh's self-signed ECDSA P-256 certificate)
//! and the name `--servername` (`localhost`). Session resumption is off
//! unless `--resume` (W6r): then tickets are cached (rustls's in-memory
//! store) and every handshake after the first offers one.
//!
//! The plaintext modes do not go through here: their loops are those of
//! main.rs, unchanged.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};

use crate::sys::{self, Epoll};
use crate::{
    answer_complete, connect_all, hangup, report_window, Args, Clock, Failure, Report, Res, SPIN_MS,
};

/// The client configuration of every connection of a run.
fn client_config(a: &Args) -> Res<Arc<ClientConfig>> {
    let ca = a.ca.as_deref().ok_or("--tls needs --ca FILE".to_string())?;
    let pem = std::fs::read(ca).map_err(|e| format!("--ca {ca}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("--ca {ca}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca {ca}: not a usable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(Failure(format!("--ca {ca}: no certificate")));
    }
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    p.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let mut c = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.resumption = if a.resume {
        Resumption::in_memory_sessions(256)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(c))
}

fn server_name(a: &Args) -> Res<ServerName<'static>> {
    ServerName::try_from(a.servername.clone())
        .map_err(|_| Failure(format!("--servername: not a valid name: {}", a.servername)))
}

/// The socket as rustls reads and writes it. `drained`: a read returned
/// less than it asked for (or would block), so the socket is empty until
/// its next edge.
struct Sock {
    fd: i32,
    drained: bool,
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match sys::recv(self.fd, buf)? {
            Some(n) => {
                self.drained = n < buf.len();
                Ok(n)
            }
            None => {
                self.drained = true;
                Err(would_block())
            }
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.fd, buf)?.ok_or_else(would_block)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::sendv(self.fd, bufs)?.ok_or_else(would_block)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One TLS connection: its socket and its rustls state.
struct Tls {
    fd: i32,
    conn: ClientConnection,
}

impl Tls {
    fn new(fd: i32, config: &Arc<ClientConfig>, name: &ServerName<'static>) -> Res<Tls> {
        let conn = ClientConnection::new(config.clone(), name.clone())
            .map_err(|e| format!("TLS client: {e}"))?;
        Ok(Tls { fd, conn })
    }

    /// Queues plaintext (before the end of the handshake rustls keeps it,
    /// and sends it after the client's Finished) and writes what it can.
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(msg)?;
        self.flush()
    }

    /// Writes the queued records until none is left or the socket is full
    /// (the rest at the next `EPOLLOUT`).
    fn flush(&mut self) -> io::Result<()> {
        let mut s = Sock {
            fd: self.fd,
            drained: false,
        };
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut s) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads the records the socket has (to a short read, or to the end
    /// after a hang-up), processes them and hands the plaintext to `seen`.
    /// Returns true once the server ended the stream (close_notify, or the
    /// end of the TCP stream). Records the handshake queued are written by
    /// the caller's `flush`.
    fn pump(
        &mut self,
        buf: &mut [u8],
        hangup: bool,
        mut seen: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<bool> {
        let mut s = Sock {
            fd: self.fd,
            drained: false,
        };
        loop {
            let n = match self.conn.read_tls(&mut s) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.conn.process_new_packets().map_err(io::Error::other)?;
            loop {
                match self.conn.reader().read(buf) {
                    Ok(0) => return Ok(true), // close_notify
                    Ok(k) => seen(&buf[..k])?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            if n == 0 || (s.drained && !hangup) {
                return Ok(n == 0);
            }
        }
    }

    /// What the handshake agreed: version, suite, group.
    fn agreed(&self) -> String {
        let version = match self.conn.protocol_version() {
            Some(v) => format!("{v:?}"),
            None => "?".into(),
        };
        let suite = self
            .conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("?");
        let group = match self.conn.negotiated_key_exchange_group() {
            Some(g) => format!("{:?}", g.name()),
            None => "?".into(),
        };
        format!("{version} {suite} {group}")
    }
}

/// Handshakes on `c`, sends `req` and reads the whole answer: its length.
fn answer_len(ep: &Epoll, c: &mut Tls, req: &[u8], deadline: Instant) -> Res<usize> {
    c.send(req)?;
    let mut got: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut evs = sys::events(256);
    loop {
        let closed = c.pump(&mut buf, true, |d| {
            got.extend_from_slice(d);
            Ok(())
        })?;
        c.flush()?;
        if let Some(total) = answer_complete(&got)? {
            return Ok(total);
        }
        if closed {
            return Err(Failure("the server closed a keep-alive connection".into()));
        }
        if Instant::now() >= deadline {
            return Err(Failure("no complete answer to the first request".into()));
        }
        ep.wait(&mut evs, 10)?;
    }
}

/// W5 (`http --tls`): HTTPS keep-alive requests, one in flight per
/// connection; the handshakes happen in the warm-up.
pub(crate) fn run_https(a: &Args, r: &mut Report) -> Res<()> {
    r.num("conns", a.conns as f64);
    let config = client_config(a)?;
    let name = server_name(a)?;
    let ep = Epoll::new()?;
    let fds = connect_all(
        &ep,
        &a.addr,
        a.conns,
        Instant::now() + Duration::from_secs(10),
    )?;
    let mut conns = Vec::with_capacity(fds.len());
    for &fd in &fds {
        conns.push(Tls::new(fd, &config, &name)?);
    }
    let req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", a.addr).into_bytes();
    let reply = answer_len(
        &ep,
        &mut conns[0],
        &req,
        Instant::now() + Duration::from_secs(30),
    )?;
    r.str("tls", conns[0].agreed());
    r.num("size", req.len() as f64);
    r.num("reply", reply as f64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = vec![0usize; a.conns];
    let mut sent_at = vec![Instant::now(); a.conns];
    let mut busy = vec![false; a.conns];
    let mut in_flight = 0u64;
    let mut lat: Vec<u32> = Vec::with_capacity(4 << 20);
    let mut ops = 0u64;
    let mut clock = Clock::new(a);
    let mut evs = sys::events(1024);
    // Starts a request on every connection that has none.
    let start_all = |now: Instant,
                     conns: &mut [Tls],
                     sent_at: &mut [Instant],
                     busy: &mut [bool],
                     in_flight: &mut u64|
     -> Res<()> {
        for i in 0..conns.len() {
            if !busy[i] {
                busy[i] = true;
                *in_flight += 1;
                sent_at[i] = now;
                conns[i].send(&req)?;
            }
        }
        Ok(())
    };
    start_all(
        Instant::now(),
        &mut conns,
        &mut sent_at,
        &mut busy,
        &mut in_flight,
    )?;
    while !clock.done() {
        let n = ep.wait(&mut evs, SPIN_MS)?.len();
        let mut now = Instant::now();
        if clock.tick(now, in_flight, &a.pids)? {
            now = Instant::now(); // (--sync: after the wait for the observer)
            ops = 0;
            lat.clear();
            start_all(now, &mut conns, &mut sent_at, &mut busy, &mut in_flight)?;
        }
        for e in &evs[..n] {
            let i = e.u64 as usize;
            let c = &mut conns[i];
            let g = &mut got[i];
            let closed = c.pump(&mut buf, hangup(e.events), |d| {
                *g += d.len();
                Ok(())
            })?;
            if closed {
                return Err(Failure("the server closed a connection".into()));
            }
            c.flush()?;
            if busy[i] && got[i] >= reply {
                got[i] -= reply;
                if clock.measuring() {
                    ops += 1;
                    lat.push(
                        now.duration_since(sent_at[i])
                            .as_nanos()
                            .min(u32::MAX as u128) as u32,
                    );
                }
                if clock.issuing() {
                    sent_at[i] = now;
                    c.send(&req)?;
                } else {
                    busy[i] = false;
                    in_flight -= 1;
                }
            }
        }
    }
    let (start, stop) = clock.window();
    report_window(r, &start, &stop, ops, ops * reply as u64, &mut lat);
    for fd in fds {
        sys::close(fd);
    }
    Ok(())
}

/// One W6 connection slot.
struct Slot {
    tls: Option<Tls>,
    gen: u32,
    connected: bool,
    got: usize,
    t0: Instant,
}

/// W6 (`conn --tls`): a new TLS connection per request: connect, full
/// handshake (or, with `--resume`, a resumed one where a ticket is cached),
/// `GET /` with `Connection: close`, the answer up to the server's
/// close_notify (or close), close.
pub(crate) fn run_conn(a: &Args, r: &mut Report) -> Res<()> {
    r.num("conns", a.conns as f64);
    r.str("resumption", if a.resume { "on" } else { "off" });
    let config = client_config(a)?;
    let name = server_name(a)?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.addr
    );
    let req = req.as_bytes();
    let ep = Epoll::new()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut slots: Vec<Slot> = (0..a.conns)
        .map(|_| Slot {
            tls: None,
            gen: 0,
            connected: false,
            got: 0,
            t0: Instant::now(),
        })
        .collect();
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let (mut ops, mut errors, mut failed_in_a_row) = (0u64, 0u64, 0u64);
    let mut resumed = 0u64;
    let mut agreed: Option<String> = None;
    let open = |i: usize, s: &mut Slot| -> Res<()> {
        s.gen = s.gen.wrapping_add(1);
        s.connected = false;
        s.got = 0;
        s.t0 = Instant::now();
        let fd = sys::tcp_connect(&a.addr)?;
        let mut tls = match Tls::new(fd, &config, &name) {
            Ok(t) => t,
            Err(e) => {
                sys::close(fd);
                return Err(e);
            }
        };
        // Kept until the handshake is over.
        tls.conn.writer().write_all(req)?;
        s.tls = Some(tls);
        ep.add(fd, sys::EV_ALL, ((s.gen as u64) << 32) | i as u64)?;
        Ok(())
    };
    for (i, s) in slots.iter_mut().enumerate() {
        open(i, s)?;
    }
    let mut open_conns = a.conns as u64;
    let mut clock = Clock::new(a);
    let mut evs = sys::events(1024);
    while !clock.done() {
        let n = ep.wait(&mut evs, SPIN_MS)?.len();
        let mut now = Instant::now();
        if clock.tick(now, open_conns, &a.pids)? {
            now = Instant::now(); // (--sync: after the wait for the observer)
            ops = 0;
            errors = 0;
            resumed = 0;
            lat.clear();
            for (i, s) in slots.iter_mut().enumerate() {
                if s.tls.is_none() {
                    open(i, s)?;
                    open_conns += 1;
                }
            }
        }
        for e in &evs[..n] {
            let i = (e.u64 & 0xffff_ffff) as usize;
            let s = &mut slots[i];
            if s.tls.is_none() || (e.u64 >> 32) as u32 != s.gen {
                continue; // an event of a connection already closed
            }
            // Ok(true): the answer is complete; Ok(false): more to come.
            let step = |s: &mut Slot, buf: &mut [u8]| -> io::Result<bool> {
                let tls = s.tls.as_mut().expect("open");
                if !s.connected {
                    if e.events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                        return Ok(false);
                    }
                    sys::so_error(tls.fd)?;
                    s.connected = true;
                    tls.flush()?; // the ClientHello
                    if e.events & libc::EPOLLIN as u32 == 0 {
                        return Ok(false);
                    }
                }
                let got = &mut s.got;
                let closed = tls.pump(buf, hangup(e.events), |d| {
                    if *got == 0 && !d.starts_with(b"HTTP/1.1 200") {
                        return Err(io::Error::other("not an HTTP 200 answer"));
                    }
                    *got += d.len();
                    Ok(())
                })?;
                if closed {
                    return if s.got > 0 {
                        Ok(true)
                    } else {
                        Err(io::Error::other("closed without an answer"))
                    };
                }
                tls.flush()?;
                Ok(false)
            };
            match step(s, &mut buf) {
                Ok(false) => continue,
                Ok(true) => {
                    failed_in_a_row = 0;
                    let tls = s.tls.as_ref().expect("open");
                    if agreed.is_none() {
                        agreed = Some(tls.agreed());
                    }
                    if clock.measuring() {
                        ops += 1;
                        if tls.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
                            resumed += 1;
                        }
                        lat.push(now.duration_since(s.t0).as_nanos().min(u32::MAX as u128) as u32);
                    }
                }
                Err(err) => {
                    if err.raw_os_error() == Some(libc::ECONNREFUSED) {
                        return Err(Failure("connection refused: the server is gone".into()));
                    }
                    errors += 1;
                    failed_in_a_row += 1;
                    if failed_in_a_row > 1000 {
                        return Err(Failure(format!("1000 connections in a row failed: {err}")));
                    }
                }
            }
            if let Some(tls) = s.tls.take() {
                sys::close(tls.fd);
            }
            if clock.issuing() {
                open(i, s)?;
            } else {
                open_conns -= 1;
            }
        }
    }
    r.num("errors", errors as f64);
    r.num("resumed", resumed as f64);
    if let Some(t) = agreed {
        r.str("tls", t);
    }
    let (start, stop) = clock.window();
    report_window(r, &start, &stop, ops, 0, &mut lat);
    for s in slots {
        if let Some(tls) = s.tls {
            sys::close(tls.fd);
        }
    }
    Ok(())
}
