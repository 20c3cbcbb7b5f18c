//! TLS streams over sock's [`Tcp`]: [`TlsStream`] (a client or a server
//! connection) and [`TlsListener`] (accepts connections that handshake on
//! their first I/O).
//!
//! A stream is a rustls connection (the TLS state machine, in a `RefCell`)
//! and the socket. Every blocking call is a step function (`step_recv`,
//! `step_send`, ...) driven by the socket's own driver ([`Tcp::drive`]), so
//! it has the same deadline policy as every call of sock: try first, wait for
//! the direction the TLS engine needs (reading or writing records), one
//! forced last attempt at the deadline, then `timeout`. The connection is
//! borrowed only inside a step, never across a wait: one thread may receive
//! while another sends.
//!
//! Records go out as rustls queues them, with one gathering `sendmsg` for
//! all the records queued ([`Tcp::step_send_vectored`]); a call returns only
//! once its records are in the kernel, so nothing waits in the engine while
//! the program waits for an answer.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use rustls_pki_types::ServerName;
use sock::op::{Op, ReadBuffer, Step};
use sock::{Error, ErrorKind, Result, Shutdown, SockAddr, Tcp};

/// The socket as the TLS engine reads and writes it: each call one
/// non-blocking step of the socket; the step's wait or error is kept for
/// the driver (the engine sees `WouldBlock` or a generic error).
struct Io<'a> {
    tcp: &'a Tcp,
    force: bool,
    /// What stopped the last call: a direction to wait for, or an error.
    stop: Option<Step<()>>,
}

impl<'a> Io<'a> {
    fn new(tcp: &'a Tcp, force: bool) -> Io<'a> {
        Io {
            tcp,
            force,
            stop: None,
        }
    }

    fn done(&mut self, step: Step<usize>) -> io::Result<usize> {
        match step {
            Step::Ready(Ok(n)) => Ok(n),
            Step::Ready(Err(e)) => {
                self.stop = Some(Step::Ready(Err(e)));
                Err(io::Error::other("socket error"))
            }
            Step::Wait(d) => {
                self.stop = Some(Step::Wait(d));
                Err(io::ErrorKind::WouldBlock.into())
            }
            Step::Sleep(t) => {
                self.stop = Some(Step::Sleep(t));
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }

    /// The step that stopped the engine's call `e`.
    fn stopped<T>(self, e: io::Error) -> Step<T> {
        match self.stop {
            Some(Step::Wait(d)) => Step::Wait(d),
            Some(Step::Sleep(t)) => Step::Sleep(t),
            Some(Step::Ready(Err(e))) => Step::Ready(Err(e)),
            // An error of the engine itself (its buffers).
            _ => Step::Ready(Err(Error::with_message(ErrorKind::TlsError, e.to_string()))),
        }
    }
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = self.tcp.step_recv(buf, self.force);
        self.done(step)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let step = self.tcp.step_send(buf, self.force);
        self.done(step)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let step = self.tcp.step_send_vectored(bufs, self.force);
        self.done(step)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A rustls error as sock's: certificate errors are `certificate_invalid`,
/// the rest `tls_handshake_failed` during the handshake and `tls_error`
/// after it.
fn tls_error(e: rustls::Error, handshaking: bool) -> Error {
    use rustls::Error as E;
    let kind = match &e {
        E::InvalidCertificate(_) => ErrorKind::CertificateInvalid,
        _ if handshaking => ErrorKind::TlsHandshakeFailed,
        _ => ErrorKind::TlsError,
    };
    let hint = match &e {
        E::InvalidMessage(_)
        | E::InappropriateHandshakeMessage { .. }
        | E::InappropriateMessage { .. }
            if handshaking =>
        {
            " (is the peer speaking TLS?)"
        }
        _ => "",
    };
    Error::with_message(kind, format!("{e}{hint}"))
}

/// `name` as rustls takes it, or `invalid_argument`.
fn server_name_of(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).map_err(|_| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("'{name}' is not a valid server name"),
        )
    })
}

fn handshake_eof() -> Error {
    Error::with_message(
        ErrorKind::TlsHandshakeFailed,
        "the peer closed the connection during the handshake",
    )
}

/// A TLS connection over a TCP socket.
///
/// Made with [`client`](Self::client) over a connected socket, or by a
/// [`TlsListener`] (or [`server`](Self::server)) on the server side. The
/// handshake runs on the first call that needs it
/// ([`handshake`](Self::handshake) runs it explicitly), under that call's
/// deadline. Every call is sock's: an absolute deadline (`expires`), errors as
/// values, one waiting thread per direction (a reader and a writer may share
/// the stream). A `send` returns once its records are in the kernel.
///
/// ```
/// # use std::sync::Arc;
/// # fn configs() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
/// #     let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// #     let mut s = sock_tls::TlsOptions::default();
/// #     s.keypairs.push(sock_tls::KeyPair {
/// #         cert: ck.cert.pem().into_bytes(),
/// #         key: ck.signing_key.serialize_pem().into_bytes(),
/// #         ocsp_staple: None,
/// #     });
/// #     let mut c = sock_tls::TlsOptions::default();
/// #     c.ca = Some(ck.cert.pem().into_bytes());
/// #     (sock_tls::client_config(&c).unwrap(), sock_tls::server_config(&s).unwrap())
/// # }
/// use sock::{Family, Tcp};
/// use sock_tls::{TlsListener, TlsStream};
///
/// let (client_config, server_config) = configs(); // a CA, a certificate for "localhost"
/// let l = Tcp::new(Family::Inet).unwrap();
/// l.listen(None, ("127.0.0.1", 0)).unwrap();
/// let addr = l.local_addr().unwrap();
/// let l = TlsListener::new(l, server_config);
/// let server = sock::newthread(async move {
///     let (conn, _, _) = l.accept(None).await?;
///     let mut buf = [0u8; 5];
///     conn.recvall(&mut buf, Some(sock::clock() + 5.0)).await?;
///     conn.sendall(&buf, None).await?; // echo
///     conn.shutdown(sock::Shutdown::Write, None).await // close_notify, then FIN
/// });
/// let client = sock::newthread(async move {
///     let tcp = Tcp::new(Family::Inet)?;
///     tcp.connect(addr, Some(sock::clock() + 5.0)).await?;
///     let conn = TlsStream::client(tcp, "localhost", client_config)?;
///     conn.sendall(b"hello", Some(sock::clock() + 5.0)).await?;
///     let mut got = Vec::new();
///     conn.recv_to_end(&mut got, Some(sock::clock() + 5.0)).await?;
///     assert_eq!(got, b"hello");
///     assert_eq!(conn.protocol_version(), Some("tlsv1.3"));
///     sock::Result::Ok(())
/// });
/// sock::start().unwrap();
/// assert!(matches!(server.result(), Some(Ok(Ok(())))));
/// assert!(matches!(client.result(), Some(Ok(Ok(())))));
/// ```
pub struct TlsStream {
    tcp: Tcp,
    conn: RefCell<Connection>,
    /// Plaintext read ahead by the buffered reads (`read_line`, ...), which
    /// every read takes first; pooled memory only while it holds bytes.
    rbuf: RefCell<ReadBuffer>,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("version", &self.protocol_version())
            .finish()
    }
}

impl TlsStream {
    /// A client connection over the connected socket `tcp`, to the server
    /// `server_name` (a DNS name or an IP address: what the certificate is
    /// verified against, and the SNI sent). No I/O yet.
    pub fn client(tcp: Tcp, server_name: &str, config: Arc<ClientConfig>) -> Result<TlsStream> {
        let name = server_name_of(server_name)?;
        let conn = ClientConnection::new(config, name).map_err(|e| tls_error(e, true))?;
        Ok(TlsStream::with(tcp, conn.into()))
    }

    /// Checks that `server_name` is a DNS name or an IP address, as
    /// [`client`](Self::client) does (`invalid_argument` otherwise): for a
    /// caller that must know before it gives up its socket.
    ///
    /// ```
    /// assert!(sock_tls::TlsStream::check_server_name("example.com").is_ok());
    /// assert!(sock_tls::TlsStream::check_server_name("::1").is_ok());
    /// assert!(sock_tls::TlsStream::check_server_name("not a name!").is_err());
    /// ```
    pub fn check_server_name(server_name: &str) -> Result<()> {
        server_name_of(server_name).map(drop)
    }

    /// A server connection over the accepted socket `tcp`. No I/O yet.
    pub fn server(tcp: Tcp, config: Arc<ServerConfig>) -> Result<TlsStream> {
        let conn = ServerConnection::new(config).map_err(|e| tls_error(e, true))?;
        Ok(TlsStream::with(tcp, conn.into()))
    }

    fn with(tcp: Tcp, conn: Connection) -> TlsStream {
        TlsStream {
            tcp,
            conn: RefCell::new(conn),
            rbuf: RefCell::default(),
        }
    }

    /// The TCP socket (for options and addresses; reading or writing it
    /// directly would corrupt the TLS stream).
    pub fn tcp(&self) -> &Tcp {
        &self.tcp
    }

    /// Writes the queued records: ready when none is left.
    fn flush(&self, conn: &mut Connection, force: bool) -> Step<()> {
        while conn.wants_write() {
            let mut io = Io::new(&self.tcp, force);
            if let Err(e) = conn.write_tls(&mut io) {
                return io.stopped(e);
            }
        }
        Step::Ready(Ok(()))
    }

    /// Reads records once and processes them: `true` if some came, `false`
    /// at the end of the stream.
    fn fill(&self, conn: &mut Connection, force: bool) -> Step<bool> {
        let mut io = Io::new(&self.tcp, force);
        let n = match conn.read_tls(&mut io) {
            Ok(n) => n,
            Err(e) => return io.stopped(e),
        };
        let handshaking = conn.is_handshaking();
        if let Err(e) = conn.process_new_packets() {
            // The alert rustls queued for the peer: one attempt.
            let _ = self.flush(conn, true);
            return Step::Ready(Err(tls_error(e, handshaking)));
        }
        Step::Ready(Ok(n > 0))
    }

    /// Handshake steps until it is over.
    fn handshake_on(&self, conn: &mut Connection, force: bool) -> Step<()> {
        loop {
            if let s @ (Step::Wait(_) | Step::Sleep(_) | Step::Ready(Err(_))) =
                self.flush(conn, force)
            {
                return s;
            }
            if !conn.is_handshaking() {
                return Step::Ready(Ok(()));
            }
            match self.fill(conn, force) {
                Step::Ready(Ok(true)) => {}
                Step::Ready(Ok(false)) => return Step::Ready(Err(handshake_eof())),
                Step::Ready(Err(e)) => return Step::Ready(Err(e)),
                Step::Wait(d) => return Step::Wait(d),
                Step::Sleep(t) => return Step::Sleep(t),
            }
        }
    }

    /// The connection, or `closed` if a call on another thread has it (only
    /// the program's own re-entrant use could: steps never wait holding it).
    fn conn(&self) -> Result<std::cell::RefMut<'_, Connection>> {
        if self.tcp.is_closed() {
            return Err(Error::new(ErrorKind::Closed));
        }
        self.conn
            .try_borrow_mut()
            .map_err(|_| Error::new(ErrorKind::Busy))
    }

    /// One step of [`handshake`](Self::handshake), for an [`Op`].
    pub fn step_handshake(&self, force: bool) -> Step<()> {
        match self.conn() {
            Ok(mut c) => self.handshake_on(&mut c, force),
            Err(e) => Step::Ready(Err(e)),
        }
    }

    /// One step of [`recv`](Self::recv), for an [`Op`]: the bytes read (0 at
    /// the peer's close_notify), or the direction to wait for. Bytes the
    /// buffered reads hold come first.
    pub fn step_recv(&self, buf: &mut [u8], force: bool) -> Step<usize> {
        self.rbuf
            .borrow_mut()
            .step_some(buf, force, |b, f| self.step_recv_engine(b, f))
    }

    /// One step of [`read_until`](Self::read_until), for an [`Op`]: the
    /// record's length once it is buffered whole (see
    /// [`Tcp::step_read_until`]); `eof` at the end of the stream with
    /// nothing buffered.
    pub fn step_read_until(&self, delim: &[u8], max: usize, force: bool) -> Step<usize> {
        self.rbuf
            .borrow_mut()
            .step_until(delim, max, force, |b, f| self.step_recv_engine(b, f))
    }

    /// One step of buffering at least `want` bytes (at most `cap`): see
    /// [`Tcp::step_read_fill`].
    pub fn step_read_fill(&self, want: usize, cap: usize, force: bool) -> Step<usize> {
        self.rbuf
            .borrow_mut()
            .step_fill_to(want, cap, force, |b, f| self.step_recv_engine(b, f))
    }

    /// Calls `f` with the bytes the buffered reads hold (not taking them).
    pub fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.rbuf.borrow().buffered())
    }

    /// Takes the first `n` buffered bytes.
    pub fn consume_buffered(&self, n: usize) {
        self.rbuf.borrow_mut().consume(n)
    }

    /// Reads a line of at most `max` bytes into `out`: see
    /// [`Tcp::read_line`] (0 at the end of the stream, `message_too_big`
    /// over `max` with the bytes left readable).
    pub async fn read_line(
        &self,
        out: &mut Vec<u8>,
        max: usize,
        keep_eol: bool,
        expires: Option<f64>,
    ) -> Result<usize> {
        self.read_until(b"\n", out, max, keep_eol, expires).await
    }

    /// Reads up to and including `delim`: see [`Tcp::read_until`].
    pub async fn read_until(
        &self,
        delim: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        keep: bool,
        expires: Option<f64>,
    ) -> Result<usize> {
        struct Until<'a, 'b>(&'a TlsStream, &'b [u8], usize);
        impl Op for Until<'_, '_> {
            type Output = usize;
            fn step(&mut self, force: bool) -> Step<usize> {
                self.0.step_read_until(self.1, self.2, force)
            }
        }
        match self.tcp.drive(Until(self, delim, max), expires).await {
            Ok(n) => {
                self.rbuf.borrow_mut().take_record(n, delim, keep, out);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Eof && self.rbuf.borrow().is_empty() => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The engine's read (no read-ahead).
    fn step_recv_engine(&self, buf: &mut [u8], force: bool) -> Step<usize> {
        let mut conn = match self.conn() {
            Ok(c) => c,
            Err(e) => return Step::Ready(Err(e)),
        };
        loop {
            if conn.is_handshaking() {
                if let s @ (Step::Wait(_) | Step::Sleep(_) | Step::Ready(Err(_))) =
                    self.handshake_on(&mut conn, force)
                {
                    return s.map(|()| 0);
                }
            }
            match conn.reader().read(buf) {
                Ok(n) => return Step::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Step::Ready(Err(Error::with_message(
                        ErrorKind::Eof,
                        "the peer closed the connection without close_notify",
                    )))
                }
                Err(e) => {
                    return Step::Ready(Err(Error::with_message(
                        ErrorKind::TlsError,
                        e.to_string(),
                    )))
                }
            }
            // Records that reading made the engine queue (a key update).
            if let s @ (Step::Wait(_) | Step::Sleep(_) | Step::Ready(Err(_))) =
                self.flush(&mut conn, force)
            {
                return s.map(|()| 0);
            }
            match self.fill(&mut conn, force) {
                Step::Ready(Ok(_)) => {}
                Step::Ready(Err(e)) => return Step::Ready(Err(e)),
                Step::Wait(d) => return Step::Wait(d),
                Step::Sleep(t) => return Step::Sleep(t),
            }
        }
    }

    /// One step of [`send`](Self::send) (`all` false) or
    /// [`sendall`](Self::sendall) (`all` true), for an [`Op`]: `done` keeps
    /// the bytes of `buf` the engine took across steps. Ready with `done`
    /// once those bytes' records are all in the kernel.
    pub fn step_send(&self, done: &mut usize, buf: &[u8], all: bool, force: bool) -> Step<usize> {
        let mut conn = match self.conn() {
            Ok(c) => c,
            Err(e) => return Step::Ready(Err(e.with_done(*done))),
        };
        if conn.is_handshaking() {
            if let s @ (Step::Wait(_) | Step::Sleep(_) | Step::Ready(Err(_))) =
                self.handshake_on(&mut conn, force)
            {
                return s.map(|()| 0);
            }
        }
        loop {
            match self.flush(&mut conn, force) {
                Step::Ready(Ok(())) => {}
                Step::Ready(Err(e)) => return Step::Ready(Err(e.with_done(*done))),
                Step::Wait(d) => return Step::Wait(d),
                Step::Sleep(t) => return Step::Sleep(t),
            }
            if *done == buf.len() || (!all && *done > 0) {
                return Step::Ready(Ok(*done));
            }
            match conn.writer().write(&buf[*done..]) {
                // Nothing taken with nothing left to flush: the engine takes
                // no more data (after close_notify): no spin.
                Ok(0) => {
                    let e = Error::with_message(
                        ErrorKind::BrokenPipe,
                        "the TLS stream was shut down for sending",
                    );
                    return Step::Ready(Err(e.with_done(*done)));
                }
                Ok(n) => *done += n,
                Err(e) => {
                    let e = Error::with_message(ErrorKind::TlsError, e.to_string());
                    return Step::Ready(Err(e.with_done(*done)));
                }
            }
        }
    }

    /// One step of [`shutdown`](Self::shutdown), for an [`Op`]: `notified`
    /// keeps whether the close_notify is queued.
    pub fn step_shutdown(&self, how: Shutdown, notified: &mut bool, force: bool) -> Step<()> {
        if how != Shutdown::Read {
            let mut conn = match self.conn() {
                Ok(c) => c,
                Err(e) => return Step::Ready(Err(e)),
            };
            if !std::mem::replace(notified, true) {
                conn.send_close_notify();
            }
            if let s @ (Step::Wait(_) | Step::Sleep(_) | Step::Ready(Err(_))) =
                self.flush(&mut conn, force)
            {
                return s;
            }
            // The close_notify is out; a peer that closed already may have
            // reset the connection since (its answer to the close_notify):
            // the connection is over either way, as libtls's tls_close has it.
            return match self.tcp.shutdown(how) {
                Err(e) if e.kind() == ErrorKind::NotConnected => Step::Ready(Ok(())),
                r => Step::Ready(r),
            };
        }
        Step::Ready(self.tcp.shutdown(how))
    }

    /// Runs the handshake now (else the first `recv` or `send` does), under
    /// `expires`. Errors: `certificate_invalid` (with the reason),
    /// `tls_handshake_failed`, `timeout`, `closed`, the socket's errors.
    pub async fn handshake(&self, expires: Option<f64>) -> Result<()> {
        struct Hs<'a>(&'a TlsStream);
        impl Op for Hs<'_> {
            type Output = ();
            fn step(&mut self, force: bool) -> Step<()> {
                self.0.step_handshake(force)
            }
        }
        self.tcp.drive(Hs(self), expires).await
    }

    /// Receives up to `buf.len()` bytes of plaintext, waiting only while
    /// none is there. Returns 0 once the peer sent its close_notify; the end
    /// of the TCP stream without one is `eof` (the data may be truncated).
    pub async fn recv(&self, buf: &mut [u8], expires: Option<f64>) -> Result<usize> {
        struct Recv<'a, 'b>(&'a TlsStream, &'b mut [u8]);
        impl Op for Recv<'_, '_> {
            type Output = usize;
            fn step(&mut self, force: bool) -> Step<usize> {
                self.0.step_recv(self.1, force)
            }
        }
        self.tcp.drive(Recv(self, buf), expires).await
    }

    /// Fills all of `buf` under one deadline; `eof` if the stream ends first
    /// ([`Error::done`] tells how many bytes came).
    pub async fn recvall(&self, buf: &mut [u8], expires: Option<f64>) -> Result<()> {
        struct RecvAll<'a, 'b>(&'a TlsStream, &'b mut [u8], usize);
        impl Op for RecvAll<'_, '_> {
            type Output = ();
            fn step(&mut self, force: bool) -> Step<()> {
                while self.2 < self.1.len() {
                    match self.0.step_recv(&mut self.1[self.2..], force) {
                        Step::Ready(Ok(0)) => {
                            return Step::Ready(Err(Error::new(ErrorKind::Eof).with_done(self.2)))
                        }
                        Step::Ready(Ok(n)) => self.2 += n,
                        Step::Ready(Err(e)) => return Step::Ready(Err(e.with_done(self.2))),
                        Step::Wait(d) => return Step::Wait(d),
                        Step::Sleep(t) => return Step::Sleep(t),
                    }
                }
                Step::Ready(Ok(()))
            }
            fn fail(&self, e: Error) -> Error {
                e.with_done(self.2)
            }
        }
        self.tcp.drive(RecvAll(self, buf, 0), expires).await
    }

    /// Reads to the end of the stream (the peer's close_notify), appending
    /// to `buf`; returns the bytes appended.
    pub async fn recv_to_end(&self, buf: &mut Vec<u8>, expires: Option<f64>) -> Result<usize> {
        let start = buf.len();
        loop {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(buf.capacity().max(16 * 1024));
            }
            let len = buf.len();
            buf.resize(buf.capacity(), 0);
            let r = self.recv(&mut buf[len..], expires).await;
            match r {
                Ok(0) => {
                    buf.truncate(len);
                    return Ok(len - start);
                }
                Ok(n) => buf.truncate(len + n),
                Err(e) => {
                    buf.truncate(len);
                    return Err(e.with_done(len - start));
                }
            }
        }
    }

    /// Sends some of `buf` (at most what the engine buffers, 64 KiB) and
    /// returns how many bytes, once their records are in the kernel.
    pub async fn send(&self, buf: &[u8], expires: Option<f64>) -> Result<usize> {
        self.tcp.drive(Send::new(self, buf, false), expires).await
    }

    /// Sends all of `buf` under one deadline; on error [`Error::done`] tells
    /// how many bytes the engine took.
    pub async fn sendall(&self, buf: &[u8], expires: Option<f64>) -> Result<()> {
        self.tcp
            .drive(Send::new(self, buf, true), expires)
            .await
            .map(drop)
    }

    /// Ends the stream: for `Write` and `Both`, sends close_notify (the
    /// peer's `recv` returns 0) and waits until it is in the kernel, then
    /// shuts the TCP socket down in `how`. A peer that is gone by then (the
    /// connection reset after the close_notify went out: `not_connected`)
    /// is no error.
    pub async fn shutdown(&self, how: Shutdown, expires: Option<f64>) -> Result<()> {
        struct Shut<'a>(&'a TlsStream, Shutdown, bool);
        impl Op for Shut<'_> {
            type Output = ();
            fn step(&mut self, force: bool) -> Step<()> {
                self.0.step_shutdown(self.1, &mut self.2, force)
            }
        }
        self.tcp.drive(Shut(self, how, false), expires).await
    }

    /// Closes the connection: a close_notify if the handshake is over (one
    /// attempt, without waiting), then the socket's close. Threads waiting
    /// on the stream wake with `closed`. Idempotent.
    pub fn close(&self) {
        if self.tcp.is_closed() {
            return;
        }
        if let Ok(mut conn) = self.conn.try_borrow_mut() {
            if !conn.is_handshaking() {
                conn.send_close_notify();
                let _ = self.flush(&mut conn, true);
            }
        }
        if let Ok(mut b) = self.rbuf.try_borrow_mut() {
            *b = ReadBuffer::new(); // nothing is read any more
        }
        self.tcp.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.tcp.is_closed()
    }

    /// Whether the handshake is still to be made or going on.
    pub fn is_handshaking(&self) -> bool {
        self.conn.borrow().is_handshaking()
    }

    /// The protocol version agreed: `"tlsv1.2"` or `"tlsv1.3"`.
    pub fn protocol_version(&self) -> Option<&'static str> {
        use rustls::ProtocolVersion as V;
        match self.conn.borrow().protocol_version()? {
            V::TLSv1_3 => Some("tlsv1.3"),
            V::TLSv1_2 => Some("tlsv1.2"),
            _ => None,
        }
    }

    /// The cipher suite agreed, by its IANA name.
    pub fn cipher_suite(&self) -> Option<&'static str> {
        self.conn
            .borrow()
            .negotiated_cipher_suite()?
            .suite()
            .as_str()
    }

    /// The ALPN protocol agreed.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.borrow().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Whether the handshake resumed an earlier session.
    pub fn is_resumed(&self) -> bool {
        self.conn.borrow().handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The server name the client asked for (server side).
    pub fn server_name(&self) -> Option<String> {
        match &*self.conn.borrow() {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            Connection::Client(_) => None,
        }
    }

    /// The peer's certificate chain (DER, end entity first), once verified.
    pub fn peer_certificates(&self) -> Vec<Vec<u8>> {
        self.conn
            .borrow()
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.to_vec()).collect())
            .unwrap_or_default()
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        self.close();
    }
}

/// `send` and `sendall` as an [`Op`].
struct Send<'a> {
    stream: &'a TlsStream,
    buf: &'a [u8],
    all: bool,
    done: usize,
}

impl<'a> Send<'a> {
    fn new(stream: &'a TlsStream, buf: &'a [u8], all: bool) -> Send<'a> {
        Send {
            stream,
            buf,
            all,
            done: 0,
        }
    }
}

impl Op for Send<'_> {
    type Output = usize;
    fn step(&mut self, force: bool) -> Step<usize> {
        self.stream
            .step_send(&mut self.done, self.buf, self.all, force)
    }
    fn fail(&self, e: Error) -> Error {
        e.with_done(self.done)
    }
}

/// A TCP listener whose accepted connections are TLS server streams, all
/// with one shared configuration.
#[derive(Debug)]
pub struct TlsListener {
    tcp: Tcp,
    config: Arc<ServerConfig>,
}

impl TlsListener {
    /// The listening socket `tcp` with the server configuration `config`.
    pub fn new(tcp: Tcp, config: Arc<ServerConfig>) -> TlsListener {
        TlsListener { tcp, config }
    }

    /// The listening socket.
    pub fn tcp(&self) -> &Tcp {
        &self.tcp
    }

    /// The configuration the accepted connections use.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Accepts a connection (as [`Tcp::accept`]): its handshake runs on its
    /// first I/O, in the thread that serves it, so a slow client never holds
    /// up the accepting thread. Returns the stream with the local and remote
    /// addresses.
    pub async fn accept(&self, expires: Option<f64>) -> Result<(TlsStream, SockAddr, SockAddr)> {
        let (tcp, local, remote) = self.tcp.accept(expires).await?;
        Ok((TlsStream::server(tcp, self.config.clone())?, local, remote))
    }

    /// Closes the listening socket.
    pub fn close(&self) {
        self.tcp.close();
    }
}
