//! The socket core shared by every socket type: the descriptor, its
//! registration, close, bind, options, addresses, and the raw send/recv.
//!
//! A socket owns its descriptor until [`close`](Socket::close) (or drop). The
//! descriptor sits in a `RefCell<Option<_>>`: a closed socket has none, so every
//! later call fails with `closed` (`EBADF` is classified as `closed` too), and
//! `close` can be called through a shared reference while other threads are
//! parked on the socket: it wakes them and they see `closed`.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use crate::addr::{AddrFlags, Family, Hints, Protocol, SockAddr, SocketType, ToAddr};
use crate::error::{Error, ErrorKind, Result};
use crate::net::buffer::ReadAhead;
use crate::opt::{self, OptVal};
use crate::reactor::Direction;
use crate::sched::io::{Drive, Driver, Registration, Wait};
use crate::sched::Core;
use crate::step::{Op, Step};
use crate::sys;

const BOUND: u8 = 1;
const LINGER: u8 = 2;
const CONNECTING: u8 = 4;
const CONNECTED: u8 = 8;
const LISTENING: u8 = 16;

/// The portable part of every socket.
#[derive(Debug)]
pub(crate) struct Socket {
    inner: RefCell<Option<socket2::Socket>>,
    reg: Registration,
    ty: SocketType,
    family: Family,
    protocol: Protocol,
    flags: Cell<u8>,
    /// What few sockets have (see [`Extra`]): boxed, so that every other
    /// socket pays one word for it.
    extra: ExtraCell,
    /// Bytes read ahead by a stream's buffered reads (`Tcp::read_line`, ...),
    /// which every read takes first; pooled memory only while it holds
    /// bytes, given back at close.
    pub(crate) rbuf: ReadAhead,
    /// Registered with this OS thread's loop: not `Send`.
    _not_send: PhantomData<*const ()>,
}

/// The state of a socket that few sockets have.
#[derive(Debug, Default)]
struct Extra {
    /// The file a Unix-domain socket created by binding to a path, with its
    /// device and inode: removed on close if it is still that file.
    unix_file: Option<(PathBuf, u64, u64)>,
    /// A listener's local address when it is not a wildcard: every accepted
    /// connection has it as its local address, without a `getsockname`.
    listen_addr: Option<SockAddr>,
}

/// Where a socket keeps its [`Extra`], if it has one.
#[derive(Default)]
struct ExtraCell(Cell<Option<Box<Extra>>>);

impl std::fmt::Debug for ExtraCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0.take();
        let r = e.fmt(f);
        self.0.set(e);
        r
    }
}

fn closed() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl Socket {
    /// Creates a non-blocking, close-on-exec socket and registers it.
    pub(crate) fn new(
        ty: SocketType,
        family: Family,
        protocol: Option<Protocol>,
    ) -> Result<Socket> {
        let protocol = match (family, protocol) {
            (_, Some(p)) => p,
            // Unix-domain sockets have no protocol: 0.
            (Family::Unix, None) => Protocol::Ip,
            (_, None) => Protocol::default_for(ty),
        };
        let raw_ty = socket2::Type::from(ty.to_raw()).nonblocking().cloexec();
        let proto = match family {
            Family::Unix => None,
            _ => Some(socket2::Protocol::from(protocol.to_raw())),
        };
        let s = socket2::Socket::new(socket2::Domain::from(family.to_raw()), raw_ty, proto)?;
        Socket::from_socket2(s, ty, family, protocol)
    }

    /// Wraps an open, non-blocking socket and registers it.
    pub(crate) fn from_socket2(
        s: socket2::Socket,
        ty: SocketType,
        family: Family,
        protocol: Protocol,
    ) -> Result<Socket> {
        Socket::register(s, ty, family, protocol, false)
    }

    /// Wraps a connection this listener accepted (open, non-blocking): of
    /// the listener's type, registered with the listener's loop whatever
    /// loop is current.
    pub(crate) fn accepted(&self, s: socket2::Socket) -> Result<Socket> {
        let reg = self.reg.sibling(s.as_raw_fd())?;
        Ok(Socket::with_registration(
            s,
            reg,
            self.ty,
            self.family,
            self.protocol,
        ))
    }

    /// Wraps a listening TCP socket made elsewhere (non-blocking from now
    /// on), registered exclusively: other loops may hold the same listener,
    /// and an arrival wakes one of them.
    pub(crate) fn adopt_listener(s: socket2::Socket) -> Result<Socket> {
        let family = match (s.local_addr()?.domain(), s.r#type()?) {
            (socket2::Domain::IPV4, socket2::Type::STREAM) => Family::Inet,
            (socket2::Domain::IPV6, socket2::Type::STREAM) => Family::Inet6,
            _ => {
                return Err(Error::with_message(
                    ErrorKind::InvalidArgument,
                    "not a TCP socket",
                ))
            }
        };
        s.set_nonblocking(true)?;
        let s = Socket::register(s, SocketType::Tcp, family, Protocol::Tcp, true)?;
        s.set_flag(BOUND | LISTENING, true);
        Ok(s)
    }

    fn register(
        s: socket2::Socket,
        ty: SocketType,
        family: Family,
        protocol: Protocol,
        exclusive: bool,
    ) -> Result<Socket> {
        let reg = Registration::new(s.as_raw_fd(), exclusive)?;
        Ok(Socket::with_registration(s, reg, ty, family, protocol))
    }

    fn with_registration(
        s: socket2::Socket,
        reg: Registration,
        ty: SocketType,
        family: Family,
        protocol: Protocol,
    ) -> Socket {
        Socket {
            inner: RefCell::new(Some(s)),
            reg,
            ty,
            family,
            protocol,
            flags: Cell::new(0),
            extra: ExtraCell::default(),
            rbuf: ReadAhead::default(),
            _not_send: PhantomData,
        }
    }

    fn flag(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    fn set_flag(&self, f: u8, on: bool) {
        let v = self.flags.get();
        self.flags.set(if on { v | f } else { v & !f });
    }

    pub(crate) fn socket_type(&self) -> SocketType {
        self.ty
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Runs `f` on the descriptor, or fails with `EBADF` (`closed`).
    #[inline]
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&socket2::Socket) -> io::Result<T>,
    ) -> io::Result<T> {
        match &*self.inner.borrow() {
            Some(s) => f(s),
            None => Err(closed()),
        }
    }

    /// Like [`with`](Socket::with), with the error converted.
    pub(crate) fn call<T>(&self, f: impl FnOnce(&socket2::Socket) -> io::Result<T>) -> Result<T> {
        self.with(f).map_err(Error::from)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.borrow().is_none()
    }

    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.inner.borrow().as_ref().map(|s| s.as_raw_fd())
    }

    /// The hints to resolve addresses for this socket with.
    pub(crate) fn hints(&self, flags: AddrFlags) -> Hints {
        Hints {
            socket_type: Some(self.ty),
            family: Some(self.family),
            protocol: None,
            flags,
        }
    }

    /// Moves the socket (descriptor, registration, state) to a new value;
    /// this one is left closed, without closing anything. `closed` if it is.
    pub(crate) fn detach(&self) -> Result<Socket> {
        let s = self.inner.borrow_mut().take().ok_or_else(closed)?;
        Ok(Socket {
            inner: RefCell::new(Some(s)),
            reg: self.reg.moved(),
            ty: self.ty,
            family: self.family,
            protocol: self.protocol,
            flags: Cell::new(self.flags.get()),
            extra: ExtraCell(Cell::new(self.extra.0.take())),
            rbuf: self.rbuf.take(),
            _not_send: PhantomData,
        })
    }

    /// Unregisters, wakes the parked threads, and closes the descriptor.
    /// Idempotent.
    pub(crate) fn close(&self) {
        let Some(s) = self.inner.borrow_mut().take() else {
            return;
        };
        self.reg.deregister();
        drop(self.rbuf.take()); // nothing is read any more
        if self.flag(LINGER) {
            // A non-zero linger would make close(2) block this OS thread, and
            // with it every sock thread; let the kernel finish in the background.
            let _ = s.set_linger(None);
        }
        drop(s);
        if let Some((path, dev, ino)) = self.with_extra(|e| e.unix_file.take()) {
            if let Ok(m) = std::fs::symlink_metadata(&path) {
                if (m.dev(), m.ino()) == (dev, ino) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    /// Runs `f` on the socket's [`Extra`] (made when first needed; dropped
    /// when `f` leaves nothing in it).
    fn with_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        let mut e = self.extra.0.take().unwrap_or_default();
        let r = f(&mut e);
        if e.unix_file.is_some() || e.listen_addr.is_some() {
            self.extra.0.set(Some(e));
        }
        r
    }

    /// A listener's local address when it is not a wildcard (see
    /// [`set_listen_addr`](Self::set_listen_addr)).
    pub(crate) fn listen_addr(&self) -> Option<SockAddr> {
        let e = self.extra.0.take()?;
        let a = e.listen_addr.clone();
        self.extra.0.set(Some(e));
        a
    }

    /// Keeps (or forgets) a listener's local address: every connection it
    /// accepts has it as its local address.
    pub(crate) fn set_listen_addr(&self, a: Option<SockAddr>) {
        self.with_extra(|e| e.listen_addr = a);
    }

    pub(crate) fn bind(&self, addr: impl ToAddr) -> Result<()> {
        let list = addr.to_addr(&self.hints(AddrFlags::PASSIVE))?;
        let sa = list.first().addr();
        self.call(|s| s.bind(sa.as_socket2()))?;
        self.set_flag(BOUND, true);
        if let Some(path) = sa.path() {
            if let Ok(m) = std::fs::symlink_metadata(&path) {
                self.with_extra(|e| e.unix_file = Some((path, m.dev(), m.ino())));
            }
        }
        Ok(())
    }

    pub(crate) fn is_bound(&self) -> bool {
        self.flag(BOUND)
    }

    pub(crate) fn setopt(&self, name: &str, val: impl Into<OptVal>) -> Result<()> {
        let val = val.into();
        let opt = self.call(|s| Ok(opt::setopt(s.as_fd(), name, &val)))??;
        self.after_setopt(opt, &val);
        Ok(())
    }

    pub(crate) fn setopt_opt(&self, opt: opt::Opt, val: impl Into<OptVal>) -> Result<()> {
        let val = val.into();
        self.call(|s| Ok(opt::setopt_opt(s.as_fd(), opt, &val)))??;
        self.after_setopt(opt, &val);
        Ok(())
    }

    /// What a set option changes here: `so_linger` on makes `close` block.
    fn after_setopt(&self, opt: opt::Opt, val: &OptVal) {
        if opt.name() == "so_linger" {
            let on = matches!(val, OptVal::Int(n) if *n > 0)
                || matches!(val, OptVal::Secs(x) if *x > 0.0);
            self.set_flag(LINGER, on);
        }
    }

    pub(crate) fn getopt(&self, name: &str) -> Result<OptVal> {
        self.call(|s| Ok(opt::getopt(s.as_fd(), name)))?
    }

    pub(crate) fn local_addr(&self) -> Result<SockAddr> {
        self.call(|s| s.local_addr()).map(SockAddr::from)
    }

    pub(crate) fn peer_addr(&self) -> Result<SockAddr> {
        self.call(|s| s.peer_addr()).map(SockAddr::from)
    }

    /// The future that drives `op` on this socket until `deadline`: see
    /// [`Drive`]. On a listener, readers wait together (several threads may
    /// accept).
    pub(crate) fn drive<O: Op>(&self, op: O, deadline: Result<Option<Instant>>) -> Drive<O> {
        self.reg.drive(op, deadline, self.flag(LISTENING))
    }

    /// [`drive`](Self::drive) borrowing the loop for the length of the call:
    /// the blocking calls of the Rust API.
    #[inline]
    pub(crate) fn drive_ref<O: Op>(
        &self,
        op: O,
        deadline: Result<Option<Instant>>,
    ) -> Driver<&Core, O> {
        self.reg.drive_ref(op, deadline, self.flag(LISTENING))
    }

    /// The blocking call of the single attempt `op` in `dir`.
    pub(crate) fn io<'a, T>(
        &'a self,
        dir: Direction,
        deadline: Result<Option<Instant>>,
        op: impl FnMut(&socket2::Socket) -> io::Result<T> + Unpin + 'a,
    ) -> Driver<&'a Core, impl Op<Output = T> + Unpin + 'a> {
        self.drive_ref(Attempt { s: self, dir, op }, deadline)
    }

    /// A wait for readiness alone: see [`Wait`]. On a listener, readers wait
    /// together (several threads may accept).
    pub(crate) fn wait(&self, dir: Direction, expires: Option<f64>) -> Wait {
        let shared = dir == Direction::Read && self.flag(LISTENING);
        self.reg.wait(dir, crate::time::deadline(expires), shared)
    }

    /// Runs `fut` so that closing this socket ends it with `closed` at once:
    /// see [`Registration::until_closed`].
    pub(crate) async fn until_closed<T>(
        &self,
        dir: Direction,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.reg.until_closed(dir, fut).await
    }

    /// Marks the socket as a listener (after `listen(2)`).
    pub(crate) fn set_listening(&self) {
        self.set_flag(LISTENING, true);
    }

    /// The `not_in_thread` error outside the threads of this socket's loop.
    pub(crate) fn require_thread(&self) -> Result<()> {
        self.reg.require_thread()
    }

    /// One step of the single attempt `op` in `dir` (`EINTR` is retried):
    /// `Wait(dir)` if it would block. Inside a thread of the loop, a
    /// direction that no event made ready since the last `EAGAIN` answers
    /// `Wait(dir)` without the syscall (see the reactor's readiness), unless
    /// `force`.
    #[inline(always)]
    pub(crate) fn step<T>(
        &self,
        dir: Direction,
        force: bool,
        mut op: impl FnMut(&socket2::Socket) -> io::Result<T>,
    ) -> Step<T> {
        self.reg.step(dir, force, || self.with(&mut op))
    }

    /// One read from a stream; a short one emptied the receive queue, so the
    /// next read waits for an event first.
    pub(crate) fn read_stream(&self, s: &socket2::Socket, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = s;
        let n = s.read(buf)?;
        if n > 0 && n < buf.len() {
            self.reg.clear_ready(Direction::Read);
        }
        Ok(n)
    }

    /// One step of a read from a stream.
    pub(crate) fn step_recv_stream(&self, buf: &mut [u8], force: bool) -> Step<usize> {
        self.step(Direction::Read, force, |s| self.read_stream(s, buf))
    }

    pub(crate) fn send<'a>(
        &'a self,
        buf: &'a [u8],
        deadline: Result<Option<Instant>>,
    ) -> Driver<&'a Core, impl Op<Output = usize> + Unpin + 'a> {
        self.io(Direction::Write, deadline, |s| {
            s.send_with_flags(buf, sys::socket::SEND_FLAGS)
        })
    }

    /// One non-blocking step of `connect(2)`: `Ok(true)` once connected,
    /// `Ok(false)` while the connection is in progress (wait until writable,
    /// then call again: Linux then reports the outcome, success or the error).
    ///
    /// A connect that timed out is still in progress in the kernel, so a new
    /// call goes on with it (`EALREADY`). Linux answers the first `connect(2)`
    /// after a completed non-blocking one with success rather than `EISCONN`,
    /// so the state is tracked to report `already_connected` consistently. A
    /// full Unix listener backlog is `try_again`: no readiness tells when it
    /// has room.
    pub(crate) fn try_connect(&self, sa: &SockAddr) -> Result<bool> {
        if self.flag(CONNECTED) {
            return Err(Error::from_errno(libc::EISCONN));
        }
        let r = self.with(|s| s.connect(sa.as_socket2()));
        let code = r.as_ref().err().and_then(io::Error::raw_os_error);
        let connected = match code {
            None => true,
            Some(libc::EISCONN) if self.flag(CONNECTING) => true,
            Some(libc::EINPROGRESS | libc::EALREADY | libc::EINTR) => {
                self.set_flag(CONNECTING, true);
                return Ok(false);
            }
            Some(libc::EAGAIN) if self.family == Family::Unix => {
                let msg = "the Unix listener's backlog is full";
                return Err(Error::with_message(ErrorKind::TryAgain, msg));
            }
            Some(_) => {
                self.set_flag(CONNECTING, false);
                return Err(r.unwrap_err().into());
            }
        };
        self.set_flag(CONNECTING, false);
        self.set_flag(CONNECTED, connected);
        Ok(true)
    }
}

/// Datagram operations (UDP, raw, Unix datagram sockets).
impl Socket {
    /// Sets the peer that `send` uses and that filters what `recv` gets; a
    /// wildcard address with port 0 (`("*", 0)`) removes it.
    pub(crate) fn connect_datagram(&self, addr: impl ToAddr) -> Result<()> {
        let list = addr.to_addr(&self.hints(AddrFlags::empty()))?;
        let sa = list.first().addr();
        let any_ip = sa.ip().is_some_and(|ip| ip.to_std().is_unspecified()) && sa.port() == 0;
        let unnamed = sa.try_family() == Some(Family::Unix) && sa.unix_name().is_none();
        if any_ip || unnamed {
            return self.disconnect_datagram();
        }
        self.call(|s| s.connect(sa.as_socket2()))?;
        self.set_flag(CONNECTED, true);
        Ok(())
    }

    /// Removes the peer set by `connect_datagram`; `not_connected` if none.
    ///
    /// Linux unbinds a datagram socket whose port was chosen implicitly (by
    /// `connect`, or a bind to port 0) when it is disconnected; the socket is
    /// bound back to the port it had (on the address the kernel left it), so
    /// that it keeps receiving what is sent to it. A raw socket cannot be put back and is
    /// refused with `not_supported`.
    pub(crate) fn disconnect_datagram(&self) -> Result<()> {
        if !self.flag(CONNECTED) {
            return self.call(|_| Err(io::Error::from_raw_os_error(libc::ENOTCONN)));
        }
        if self.ty == SocketType::Raw {
            let msg =
                "a raw socket cannot be disconnected (Linux stops its delivery): make a new one";
            return Err(Error::with_message(ErrorKind::NotSupported, msg));
        }
        let before = self.local_addr().ok();
        self.call(sys::socket::disconnect)?;
        self.set_flag(CONNECTED, false);
        let port = before.as_ref().map_or(0, SockAddr::port);
        let after = self.local_addr().ok().and_then(|a| a.to_std());
        if let Some(after) = after.filter(|a| a.port() == 0 && port != 0) {
            // The address stays as the kernel left it: the bound one, or any.
            let sa = SockAddr::from(std::net::SocketAddr::new(after.ip(), port));
            self.call(|s| s.bind(sa.as_socket2()))?;
        }
        Ok(())
    }

    pub(crate) async fn send_to(
        &self,
        addr: &SockAddr,
        buf: &[u8],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let sa = addr.as_socket2();
        self.io(Direction::Write, Ok(deadline), |s| {
            s.send_to_with_flags(buf, sa, sys::socket::SEND_FLAGS)
        })
        .await
    }

    /// Receives one datagram; one larger than `buf` is truncated and reported
    /// as `message_too_big` with the bytes kept in `done`.
    pub(crate) async fn recv_datagram(
        &self,
        buf: &mut [u8],
        from: bool,
        deadline: Option<Instant>,
    ) -> Result<(usize, Option<SockAddr>)> {
        let cap = buf.len();
        let r = self.io(Direction::Read, Ok(deadline), |s| {
            sys::socket::recv_datagram(s, buf, from)
        });
        truncation(cap, r.await?)
    }

    /// One step of [`recv_datagram`](Self::recv_datagram) (see
    /// [`step`](Self::step) for `force`).
    pub(crate) fn step_recv_datagram(
        &self,
        buf: &mut [u8],
        from: bool,
        force: bool,
    ) -> Step<(usize, Option<SockAddr>)> {
        let cap = buf.len();
        self.step_datagram(buf, from, force)
            .and_then(|got| truncation(cap, got))
    }

    /// [`step_recv_datagram`](Self::step_recv_datagram) that reports a
    /// datagram larger than `buf` as a value: the buffer's worth (the kernel
    /// drops the rest), and `true`.
    pub(crate) fn step_recv_datagram_cut(
        &self,
        buf: &mut [u8],
        from: bool,
        force: bool,
    ) -> Step<(usize, Option<SockAddr>, bool)> {
        let cap = buf.len();
        self.step_datagram(buf, from, force)
            .map(|(n, addr)| (n.min(cap), addr.map(SockAddr::from), n > cap))
    }

    /// One step of a datagram's receive, as the kernel reports it (its full
    /// length, `MSG_TRUNC`) for the two steps above to report a cut.
    fn step_datagram(
        &self,
        buf: &mut [u8],
        from: bool,
        force: bool,
    ) -> Step<(usize, Option<socket2::SockAddr>)> {
        self.step(Direction::Read, force, |s| {
            sys::socket::recv_datagram(s, buf, from)
        })
    }

    /// One step of a `sendto`.
    pub(crate) fn step_send_to(&self, addr: &SockAddr, buf: &[u8], force: bool) -> Step<usize> {
        let sa = addr.as_socket2();
        self.step(Direction::Write, force, |s| {
            s.send_to_with_flags(buf, sa, sys::socket::SEND_FLAGS)
        })
    }

    /// One step of a `send`.
    pub(crate) fn step_send(&self, buf: &[u8], force: bool) -> Step<usize> {
        self.step(Direction::Write, force, |s| {
            s.send_with_flags(buf, sys::socket::SEND_FLAGS)
        })
    }

    /// One gathering send of `bufs` (`sendmsg`): several buffers, one syscall.
    pub(crate) fn step_send_vectored(&self, bufs: &[io::IoSlice<'_>], force: bool) -> Step<usize> {
        self.step(Direction::Write, force, |s| {
            s.send_vectored_with_flags(bufs, sys::socket::SEND_FLAGS)
        })
    }
}

/// A single attempt as an [`Op`]: the blocking `send`, `recv`, `sendto`, ...
/// of every socket type.
struct Attempt<'a, F> {
    s: &'a Socket,
    dir: Direction,
    op: F,
}

impl<T, F: FnMut(&socket2::Socket) -> io::Result<T>> Op for Attempt<'_, F> {
    type Output = T;

    #[inline(always)]
    fn step(&mut self, force: bool) -> Step<T> {
        self.s.step(self.dir, force, &mut self.op)
    }
}

/// The end of a stream before `recvall` was done, as an I/O error that
/// [`Error`] turns into `eof`.
pub(crate) fn eof() -> io::Error {
    io::Error::from(io::ErrorKind::UnexpectedEof)
}

/// Reports a datagram longer than the buffer (`MSG_TRUNC` gives its length).
fn truncation(
    cap: usize,
    (n, addr): (usize, Option<socket2::SockAddr>),
) -> Result<(usize, Option<SockAddr>)> {
    if n > cap {
        let msg = format!("datagram of {n} bytes truncated to the buffer's {cap}");
        return Err(Error::with_message(ErrorKind::MessageTooBig, msg).with_done(cap));
    }
    Ok((n, addr.map(SockAddr::from)))
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}

/// Generates the methods every socket type shares, delegating to its
/// `Socket` field, with their docs. `$new` is an expression that makes a
/// socket of the type, for the examples.
macro_rules! socket_common {
    ($ty:ident, $new:literal) => {
        impl $ty {
            /// The socket type: `Tcp`, `Udp` or `Raw` (the seed's `s:type()`).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            #[doc = concat!("assert_eq!(s.socket_type(), sock::SocketType::", stringify!($ty), ");")]
            /// ```
            pub fn socket_type(&self) -> $crate::SocketType {
                self.s.socket_type()
            }

            /// The address family: `Inet`, `Inet6` or `Unix` (`s:family()`).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// assert_eq!(s.family(), sock::Family::Inet);
            /// ```
            pub fn family(&self) -> $crate::Family {
                self.s.family()
            }

            /// The protocol (`s:protocol()`).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            #[doc = concat!("assert_eq!(s.protocol(), sock::Protocol::", stringify!($ty), ");")]
            /// ```
            pub fn protocol(&self) -> $crate::Protocol {
                self.s.protocol()
            }

            /// Closes the socket (`s:close()`): unregisters it, wakes every
            /// thread blocked on it with the `closed` error, and closes the
            /// descriptor. Calling it again does nothing; every other call on
            /// a closed socket fails with `closed`. Dropping the socket closes it.
            ///
            /// For TCP the kernel sends a RST instead of a FIN when unread
            /// data is pending or `so_linger` was set to 0. A non-zero
            /// `so_linger` does not block: the kernel finishes sending in the
            /// background.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.close();
            /// s.close(); // no-op
            /// assert_eq!(s.getopt("so_type").unwrap_err().name(), "closed");
            /// ```
            pub fn close(&self) {
                self.s.close()
            }

            /// Whether [`close`](Self::close) was called.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// assert!(!s.is_closed());
            /// s.close();
            /// assert!(s.is_closed());
            /// ```
            pub fn is_closed(&self) -> bool {
                self.s.is_closed()
            }

            /// Binds the socket to a local address (`s:bind(host, port)`):
            /// `("*", 0)` is every interface and a port chosen by the system.
            /// Takes host and port, or an already resolved address.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.bind(("127.0.0.1", 0)).unwrap();
            /// assert_ne!(s.local_addr().unwrap().port(), 0);
            /// ```
            pub fn bind(&self, addr: impl $crate::ToAddr) -> $crate::Result<()> {
                self.s.bind(addr)
            }

            /// Sets a socket option by name (`s:setopt(name, value)`); see
            /// [`opt`](crate::opt) for the names and their values.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.setopt("so_reuseaddr", true).unwrap();
            /// assert_eq!(s.getopt("so_reuseaddr").unwrap(), sock::OptVal::Bool(true));
            /// assert_eq!(s.setopt("so_bogus", 1).unwrap_err().name(), "invalid_argument");
            /// ```
            pub fn setopt(&self, name: &str, val: impl Into<$crate::OptVal>) -> $crate::Result<()> {
                self.s.setopt(name, val)
            }

            /// Sets the socket option `opt` ([`Opt::find`](crate::opt::Opt::find)):
            /// [`setopt`](Self::setopt) without looking the name up, for
            /// bindings that keep the options they set.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// let o = sock::opt::Opt::find("so_reuseaddr").unwrap();
            /// s.setopt_opt(o, true).unwrap();
            /// assert_eq!(s.getopt("so_reuseaddr").unwrap(), sock::OptVal::Bool(true));
            /// let t = sock::opt::Opt::find("so_type").unwrap();
            /// assert_eq!(s.setopt_opt(t, 1).unwrap_err().name(), "invalid_argument");
            /// ```
            pub fn setopt_opt(
                &self,
                opt: $crate::opt::Opt,
                val: impl Into<$crate::OptVal>,
            ) -> $crate::Result<()> {
                self.s.setopt_opt(opt, val)
            }

            /// Reads a socket option by name (`s:getopt(name)`).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// assert_eq!(s.getopt("so_error").unwrap(), sock::OptVal::Int(0));
            /// ```
            pub fn getopt(&self, name: &str) -> $crate::Result<$crate::OptVal> {
                self.s.getopt(name)
            }

            /// The local address (`getsockname`).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.bind(("127.0.0.1", 0)).unwrap();
            /// assert!(s.local_addr().unwrap().tostring().starts_with("127.0.0.1:"));
            /// ```
            pub fn local_addr(&self) -> $crate::Result<$crate::SockAddr> {
                self.s.local_addr()
            }

            /// The peer's address (`getpeername`); `not_connected` if there is none.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// assert_eq!(s.peer_addr().unwrap_err().name(), "not_connected");
            /// ```
            pub fn peer_addr(&self) -> $crate::Result<$crate::SockAddr> {
                self.s.peer_addr()
            }

            /// The descriptor, or `None` once closed.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// assert!(s.as_raw_fd().is_some());
            /// s.close();
            /// assert_eq!(s.as_raw_fd(), None);
            /// ```
            pub fn as_raw_fd(&self) -> Option<std::os::fd::RawFd> {
                self.s.raw_fd()
            }

            /// Drives `op`, an operation on this socket, until it is over or
            /// `expires` passes: parks the thread where a step asks and steps
            /// again when woken (see [`op`]($crate::op)). A step past the
            /// deadline is forced; if it still asks to wait, the result is
            /// `timeout` (through [`Op::fail`]($crate::op::Op::fail)).
            ///
            /// ```
            /// use sock::op::{Op, Step};
            #[doc = concat!("let s = ", $new, ";")]
            /// struct Never;
            /// impl Op for Never {
            ///     type Output = ();
            ///     fn step(&mut self, _force: bool) -> Step<()> {
            ///         Step::Wait(sock::Direction::Read)
            ///     }
            /// }
            /// let t = sock::newthread(async move {
            ///     let e = s.drive(Never, Some(sock::clock() + 0.01)).await.unwrap_err();
            ///     assert_eq!(e.name(), "timeout");
            /// });
            /// sock::start().unwrap();
            /// assert!(matches!(t.result(), Some(Ok(()))));
            /// ```
            pub fn drive<O: $crate::op::Op + Unpin>(
                &self,
                op: O,
                expires: Option<f64>,
            ) -> $crate::op::Drive<O> {
                self.s.drive(op, $crate::time::deadline(expires))
            }
        }
    };
}
pub(crate) use socket_common;

/// Generates the datagram methods (`connect`, `disconnect`, `send`, `recv`,
/// `sendto`, `recvnext`) of a socket type over its `Socket` field. Each type
/// gives the examples of its own methods, as doc strings.
macro_rules! datagram_common {
    ($ty:ident, $new:literal, connect: $ex_connect:literal, disconnect: $ex_disconnect:literal,
     send: $ex_send:literal, recv: $ex_recv:literal, sendto: $ex_sendto:literal,
     recvnext: $ex_recvnext:literal, wait: $ex_wait:literal) => {
        impl $ty {
            /// Sets the default destination for [`send`](Self::send) and keeps
            /// only the datagrams that come from it (`connect(host, port)`).
            /// Binds the socket if it was not bound. It can be called again to
            /// change the peer; `("*", 0)` switches back to unfiltered (see
            /// [`disconnect`](Self::disconnect)). It does not block.
            ///
            #[doc = $ex_connect]
            pub fn connect(&self, addr: impl $crate::ToAddr) -> $crate::Result<()> {
                self.s.connect_datagram(addr)
            }

            /// Removes the peer set by [`connect`](Self::connect): datagrams
            /// from anywhere arrive again. `not_connected` if there was none;
            /// `not_supported` on a raw socket (Linux stops delivering to a
            /// disconnected raw socket: make a new one).
            ///
            #[doc = $ex_disconnect]
            pub fn disconnect(&self) -> $crate::Result<()> {
                self.s.disconnect_datagram()
            }

            /// Sends one datagram to the connected peer (empty datagrams are
            /// allowed); `destination_required` if not connected.
            ///
            #[doc = $ex_send]
            pub async fn send(&self, buf: &[u8], expires: Option<f64>) -> $crate::Result<usize> {
                self.s.send(buf, $crate::time::deadline(expires)).await
            }

            /// Receives one datagram from the connected peer (or from anyone if
            /// not connected) into `buf`; returns its length, which may be 0. A
            /// datagram larger than `buf` is truncated and the call fails with
            /// `message_too_big` ([`Error::done`](crate::Error::done) = the
            /// bytes kept); the socket stays usable.
            ///
            #[doc = $ex_recv]
            pub async fn recv(
                &self,
                buf: &mut [u8],
                expires: Option<f64>,
            ) -> $crate::Result<usize> {
                let deadline = $crate::time::deadline(expires)?;
                self.s
                    .recv_datagram(buf, false, deadline)
                    .await
                    .map(|(n, _)| n)
            }

            /// Sends one datagram to `addr` (host and port, or a resolved
            /// address), whether the socket is connected or not. Passing a
            /// resolved address skips the lookup.
            ///
            #[doc = $ex_sendto]
            pub async fn sendto(
                &self,
                addr: impl $crate::ToAddr,
                buf: &[u8],
                expires: Option<f64>,
            ) -> $crate::Result<usize> {
                let deadline = $crate::time::deadline(expires)?;
                if let Some(sa) = addr.sockaddr() {
                    return self.s.send_to(sa, buf, deadline).await;
                }
                let hints = self.s.hints($crate::AddrFlags::empty());
                let list = $crate::resolve::to_addr(&addr, &hints, expires).await?;
                self.s.send_to(list.first().addr(), buf, deadline).await
            }

            /// Receives the next datagram, wherever it came from, with its
            /// source address (`recvnext(buf, maxlen, expires) -> len, sa`).
            /// A connected socket still filters. Truncation is reported as in
            /// [`recv`](Self::recv).
            ///
            #[doc = $ex_recvnext]
            pub async fn recvnext(
                &self,
                buf: &mut [u8],
                expires: Option<f64>,
            ) -> $crate::Result<(usize, $crate::SockAddr)> {
                let deadline = $crate::time::deadline(expires)?;
                let (n, from) = self.s.recv_datagram(buf, true, deadline).await?;
                Ok((n, from.expect("recvfrom gives an address")))
            }

            /// Waits until the socket may be ready in `dir`, or `expires`
            /// passes: the wait of the blocking calls without their syscall,
            /// for code that makes its own non-blocking attempts (the `try_`
            /// methods). `Ok(())` means "try again" (the attempt may still find
            /// nothing); see [`Wait`](crate::Wait).
            ///
            #[doc = $ex_wait]
            pub fn wait(&self, dir: $crate::Direction, expires: Option<f64>) -> $crate::Wait {
                self.s.wait(dir, expires)
            }

            /// One non-blocking [`send`](Self::send): `None` if it would block.
            /// For code that waits by itself ([`wait`](Self::wait)).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// assert_eq!(s.try_send(b"x").unwrap_err().name(), "destination_required");
            /// ```
            pub fn try_send(&self, buf: &[u8]) -> $crate::Result<Option<usize>> {
                self.step_send(buf, false).ready()
            }

            /// One non-blocking [`recv`](Self::recv): `None` if nothing is there.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.connect(("127.0.0.1", 9)).unwrap(); // nobody sends from there
            /// assert_eq!(s.try_recv(&mut [0u8; 8]).unwrap(), None);
            /// ```
            pub fn try_recv(&self, buf: &mut [u8]) -> $crate::Result<Option<usize>> {
                self.step_recv(buf, false).ready()
            }

            /// One non-blocking [`sendto`](Self::sendto) to a resolved address.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// let to: sock::SockAddr = "127.0.0.1:9".parse().unwrap();
            /// assert!(s.try_sendto(&to, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]).unwrap().is_some());
            /// ```
            pub fn try_sendto(
                &self,
                addr: &$crate::SockAddr,
                buf: &[u8],
            ) -> $crate::Result<Option<usize>> {
                self.step_sendto(addr, buf, false).ready()
            }

            /// One non-blocking [`recvnext`](Self::recvnext): `None` if nothing is there.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.connect(("127.0.0.1", 9)).unwrap(); // nobody sends from there
            /// assert!(s.try_recvnext(&mut [0u8; 8]).unwrap().is_none());
            /// ```
            pub fn try_recvnext(
                &self,
                buf: &mut [u8],
            ) -> $crate::Result<Option<(usize, $crate::SockAddr)>> {
                self.step_recvnext(buf, false).ready()
            }

            /// One step of [`send`](Self::send), for an [`Op`]($crate::op::Op):
            /// `force` makes the attempt whatever the readiness.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// let r = s.step_send(b"x", false).ready();
            /// assert_eq!(r.unwrap_err().name(), "destination_required");
            /// ```
            pub fn step_send(&self, buf: &[u8], force: bool) -> $crate::op::Step<usize> {
                self.s.step_send(buf, force)
            }

            /// One step of [`recv`](Self::recv), for an [`Op`]($crate::op::Op).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.connect(("127.0.0.1", 9)).unwrap(); // nobody sends from there
            /// assert!(!s.step_recv(&mut [0u8; 8], true).is_ready());
            /// ```
            pub fn step_recv(&self, buf: &mut [u8], force: bool) -> $crate::op::Step<usize> {
                self.s.step_recv_datagram(buf, false, force).map(|(n, _)| n)
            }

            /// One step of [`sendto`](Self::sendto) to a resolved address, for
            /// an [`Op`]($crate::op::Op).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// let to: sock::SockAddr = "127.0.0.1:9".parse().unwrap();
            /// assert!(s.step_sendto(&to, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0], false).is_ready());
            /// ```
            pub fn step_sendto(
                &self,
                addr: &$crate::SockAddr,
                buf: &[u8],
                force: bool,
            ) -> $crate::op::Step<usize> {
                self.s.step_send_to(addr, buf, force)
            }

            /// One step of [`recvnext`](Self::recvnext), for an [`Op`]($crate::op::Op).
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.connect(("127.0.0.1", 9)).unwrap(); // nobody sends from there
            /// assert!(!s.step_recvnext(&mut [0u8; 8], true).is_ready());
            /// ```
            pub fn step_recvnext(
                &self,
                buf: &mut [u8],
                force: bool,
            ) -> $crate::op::Step<(usize, $crate::SockAddr)> {
                self.s
                    .step_recv_datagram(buf, true, force)
                    .map(|(n, from)| (n, from.expect("recvfrom gives an address")))
            }

            /// [`step_recvnext`](Self::step_recvnext) that reports a datagram
            /// larger than `buf` as a value: `(buf.len(), source, true)`, the
            /// rest of it dropped (as the kernel does), instead of
            /// `message_too_big`.
            ///
            /// ```
            #[doc = concat!("let s = ", $new, ";")]
            /// s.connect(("127.0.0.1", 9)).unwrap(); // nobody sends from there
            /// assert!(!s.step_recvnext_cut(&mut [0u8; 8], true).is_ready());
            /// ```
            pub fn step_recvnext_cut(
                &self,
                buf: &mut [u8],
                force: bool,
            ) -> $crate::op::Step<(usize, $crate::SockAddr, bool)> {
                self.s
                    .step_recv_datagram_cut(buf, true, force)
                    .map(|(n, from, cut)| (n, from.expect("recvfrom gives an address"), cut))
            }
        }
    };
}
pub(crate) use datagram_common;
