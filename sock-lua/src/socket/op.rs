//! The blocking calls of the Lua API as core operations ([`sock::op`]).
//!
//! Each call makes its first step at once, in the function Lua called (an
//! FFI function of `fast.rs`, or a method of the socket userdata). If the
//! step is over, its results go back as values. If it would block, the
//! operation is kept as the state's *pending* operation ([`Table`]), the
//! function returns [`PENDING`], and the Lua layer yields `OP, expires` to the
//! scheduler (`sched.rs`), which takes the pending operation and drives it
//! with the core's own driver ([`sock::op::Drive`]): the waits, the
//! deadline, the forced last attempt and the retries are the core's, not the
//! binding's. The thread is resumed with the operation's results.
//!
//! A pending operation names its socket by handle and looks it up at every
//! step: a socket collected meanwhile is unknown (`closed`), never freed
//! memory.

use std::ffi::c_void;
use std::rc::Rc;

use mlua::prelude::*;
use sock::op::{Connect, Op, RecvAll, SendAll, Step};
use sock::{AddrList, Direction, Error, ErrorKind, SockAddr, Tcp};

use super::{closed_values, Kind, LSock, Table};
use crate::error::{fail, fail_with};

/// What a function returns (a light userdata) when its operation is pending:
/// the Lua layer then yields `OP, expires`.
pub(crate) fn pending_mark() -> LuaLightUserData {
    static MARK: u8 = 0;
    LuaLightUserData(&MARK as *const u8 as *mut c_void)
}

/// A buffer that the Lua layer checked: a Lua string's bytes (sending only)
/// or FFI memory of at least `len` bytes. It stays valid while the call that
/// gave it is on its coroutine's stack, which is as long as the operation
/// lives: the coroutine is suspended inside that call until the operation is
/// over, and an operation is dropped with its thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawBuf {
    ptr: *mut u8,
    len: usize,
}

impl RawBuf {
    /// # Safety
    ///
    /// `ptr` is valid for reads of `len` bytes (and for writes, if the
    /// operation receives) for as long as the operation lives (see the type),
    /// and nothing else writes them meanwhile. A null `ptr` needs `len` 0.
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> RawBuf {
        RawBuf { ptr, len }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: by `new`'s contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: by `new`'s contract (a receiving operation's buffer is
        // writable FFI memory: strings are refused for receiving).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A blocking call of the Lua API, with its arguments and its progress.
#[derive(Debug)]
pub(crate) enum LuaOp {
    /// `s:send`.
    Send(RawBuf),
    /// `s:recv`.
    Recv(RawBuf),
    /// `tcp:sendall`.
    SendAll(SendAll, RawBuf),
    /// `tcp:recvall`.
    RecvAll(RecvAll, RawBuf),
    /// `tcp:accept`.
    Accept,
    /// `tcp:connect`, over the resolved addresses.
    Connect(Box<Connect<AddrList>>),
    /// `udp:sendto`.
    SendTo(Box<SockAddr>, RawBuf),
    /// `udp:recvnext`.
    RecvNext(RawBuf),
    /// `send` (`all` false) and `sendall` on a TLS stream: `done` is the
    /// bytes the engine took.
    TlsSend {
        /// Bytes of the buffer the TLS engine took so far.
        done: usize,
        /// The buffer.
        buf: RawBuf,
        /// `sendall`.
        all: bool,
    },
    /// `recvall` on a TLS stream: `done` bytes received so far.
    TlsRecvAll(usize, RawBuf),
    /// `cs:handshake`.
    TlsHandshake,
    /// `cs:shutdown`: close_notify (queued yet?), then the TCP shutdown.
    TlsShutdown(sock::Shutdown, bool),
    /// `readline`, `readuntil`: a record of at most `max` bytes up to its
    /// delimiter (kept or not), as a string or into `into`.
    ReadUntil {
        /// The delimiter.
        delim: Delim,
        /// The most bytes a record may have, its delimiter included.
        max: usize,
        /// Whether the delimiter is part of the result.
        keep: bool,
        /// The buffer to copy the record to (else a string).
        into: Option<RawBuf>,
    },
    /// `readn` (`want` = `max` = n), `readsome` (`want` 1): buffered bytes,
    /// at least `want`, at most `max`, as a string.
    ReadFill {
        /// How many bytes the result needs (fewer at the end: `closed`).
        want: usize,
        /// The most bytes taken.
        max: usize,
    },
}

/// The delimiter of a [`LuaOp::ReadUntil`].
#[derive(Debug)]
pub(crate) enum Delim {
    /// `\n` (a `\r` before it goes with it).
    Line,
    /// Any bytes.
    Bytes(Box<[u8]>),
}

impl Delim {
    fn bytes(&self) -> &[u8] {
        match self {
            Delim::Line => b"\n",
            Delim::Bytes(b) => b,
        }
    }
}

/// The buffered reads of a stream (TCP or TLS), as the binding steps them.
trait Buffered {
    fn step_read_until(&self, delim: &[u8], max: usize, force: bool) -> Step<usize>;
    fn step_read_fill(&self, want: usize, cap: usize, force: bool) -> Step<usize>;
    fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R;
    fn consume_buffered(&self, n: usize);
}

macro_rules! buffered {
    ($t:ty) => {
        impl Buffered for $t {
            fn step_read_until(&self, delim: &[u8], max: usize, force: bool) -> Step<usize> {
                <$t>::step_read_until(self, delim, max, force)
            }
            fn step_read_fill(&self, want: usize, cap: usize, force: bool) -> Step<usize> {
                <$t>::step_read_fill(self, want, cap, force)
            }
            fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                <$t>::with_buffered(self, f)
            }
            fn consume_buffered(&self, n: usize) {
                <$t>::consume_buffered(self, n)
            }
        }
    };
}
buffered!(Tcp);
buffered!(sock_tls::TlsStream);

/// One step of a buffered read on `b`.
fn step_buffered(op: &mut LuaOp, b: &impl Buffered, force: bool) -> Step<Out> {
    let step = match op {
        LuaOp::ReadUntil {
            delim,
            max,
            keep,
            into,
        } => b.step_read_until(delim.bytes(), *max, force).and_then(|n| {
            let len = b.with_buffered(|r| sock::op::record_len(&r[..n], delim.bytes(), *keep));
            Ok(match into {
                Some(buf) => {
                    let dst = buf.bytes_mut();
                    let len = len.min(dst.len());
                    b.with_buffered(|r| dst[..len].copy_from_slice(&r[..len]));
                    b.consume_buffered(n);
                    Out::Count(len)
                }
                None => Out::Record { n, len },
            })
        }),
        LuaOp::ReadFill { want, max } => {
            let (want, max) = (*want, *max);
            b.step_read_fill(want, max, force).and_then(|have| {
                if have < want {
                    // The end came first: the bytes stay buffered.
                    return Err(peer_closed(0));
                }
                let n = have.min(max);
                Ok(Out::Record { n, len: n })
            })
        }
        _ => return wrong_kind("stream"),
    };
    match step {
        // The seed's end of stream.
        Step::Ready(Err(e)) if e.kind() == ErrorKind::Eof => Step::Ready(Err(peer_closed(0))),
        other => other,
    }
}

/// The string of a finished buffered read (`Out::Record`) on the socket
/// `s`: its first `len` bytes, then `n` bytes are taken. (Making the string
/// may run the collector, which cannot free `s`: the calling thread holds
/// its object.)
pub(crate) fn record_string(lua: &Lua, s: &LSock, n: usize, len: usize) -> LuaResult<LuaString> {
    fn take(lua: &Lua, b: &impl Buffered, n: usize, len: usize) -> LuaResult<LuaString> {
        let st = b.with_buffered(|r| lua.create_string(&r[..len.min(r.len())]))?;
        b.consume_buffered(n);
        Ok(st)
    }
    match &s.kind {
        Kind::Tcp(t) => take(lua, t, n, len),
        Kind::Tls(t) => take(lua, &**t, n, len),
        _ => Err(crate::error::usage_error("sock", "not a stream socket")),
    }
}

/// The result of a finished [`LuaOp`]: a word, so that the hot paths move
/// no addresses around (an accepted connection and a datagram's source wait
/// in the table, [`Extra`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Out {
    /// Bytes sent or received.
    Count(usize),
    /// `sendall`, `recvall`, `connect`: done.
    Done,
    /// A connection, kept in the table until the Lua layer takes it
    /// ([`Table::keep_accepted`]).
    Accepted,
    /// A datagram's length; its source is [`Extra::From`].
    Datagram(usize),
    /// A buffered read's result: `len` bytes of the read-ahead (of `n` to
    /// take), made a string by [`values`].
    Record {
        /// Bytes to take from the buffer.
        n: usize,
        /// Bytes of the result (without a delimiter that is not kept).
        len: usize,
    },
}

/// The large part of a result, kept in the table from the step that made it
/// to the conversion of its values (no Lua code runs in between).
pub(crate) enum Extra {
    /// A datagram's source, and whether the datagram was cut to the buffer.
    From(SockAddr, bool),
}

/// The seed's end of stream: a TCP `recv` (or a Unix stream's) that finds the
/// stream ended, 0 bytes into a buffer that has room, is `nil, 'closed'`
/// ("when a FIN is received recv() returns nil,'closed'"). A datagram of 0
/// bytes stays 0, and so does a `recv` into no room.
pub(crate) fn seed_recv(kind: &Kind, len: usize, step: Step<usize>) -> Step<usize> {
    match step {
        Step::Ready(Ok(0)) if len > 0 && matches!(kind, Kind::Tcp(_) | Kind::Tls(_)) => {
            Step::Ready(Err(peer_closed(0)))
        }
        // A TLS stream that ended without close_notify ends too.
        Step::Ready(Err(e)) if e.kind() == ErrorKind::Eof => Step::Ready(Err(Error::with_message(
            ErrorKind::Closed,
            e.message().to_owned(),
        ))),
        other => other,
    }
}

/// One step of `recvall` on a TLS stream (the core's `RecvAll` for a TLS
/// stream): `eof` with the bytes received if the stream ends first.
pub(crate) fn tls_recvall(
    t: &sock_tls::TlsStream,
    done: &mut usize,
    buf: &mut [u8],
    force: bool,
) -> Step<()> {
    while *done < buf.len() {
        match t.step_recv(&mut buf[*done..], force) {
            Step::Ready(Ok(0)) => {
                return Step::Ready(Err(Error::new(ErrorKind::Eof).with_done(*done)))
            }
            Step::Ready(Ok(n)) => *done += n,
            Step::Ready(Err(e)) => {
                let e = match e.kind() {
                    ErrorKind::Eof => Error::new(ErrorKind::Eof),
                    _ => e,
                };
                return Step::Ready(Err(e.with_done(*done)));
            }
            Step::Wait(d) => return Step::Wait(d),
            Step::Sleep(at) => return Step::Sleep(at),
        }
    }
    Step::Ready(Ok(()))
}

/// The seed's end of stream for `recvall`: `nil, 'closed'`, with the bytes it
/// received before.
pub(crate) fn seed_recvall(step: Step<()>) -> Step<()> {
    match step {
        Step::Ready(Err(e)) if e.kind() == ErrorKind::Eof => {
            Step::Ready(Err(peer_closed(e.done())))
        }
        other => other,
    }
}

/// The `closed` of a stream that the peer ended (its FIN).
fn peer_closed(done: usize) -> Error {
    let msg = "the peer closed the connection (end of stream)";
    Error::with_message(ErrorKind::Closed, msg).with_done(done)
}

/// The error of a TCP call on another kind of socket (the Lua layer only
/// makes them on TCP objects).
fn wrong_kind(what: &str) -> Step<Out> {
    let msg = format!("not a {what} socket");
    Step::Ready(Err(Error::with_message(ErrorKind::InvalidArgument, msg)))
}

impl LuaOp {
    /// One step on the socket `s`.
    pub(crate) fn step(&mut self, s: &LSock, force: bool) -> Step<Out> {
        if s.is_closed() {
            // With the bytes moved so far (a `sendall` that the close woke).
            return Step::Ready(Err(self.fail(Error::new(ErrorKind::Closed))));
        }
        match (self, &s.kind) {
            (op @ (LuaOp::ReadUntil { .. } | LuaOp::ReadFill { .. }), Kind::Tcp(t)) => {
                step_buffered(op, t, force)
            }
            (op @ (LuaOp::ReadUntil { .. } | LuaOp::ReadFill { .. }), Kind::Tls(t)) => {
                step_buffered(op, &**t, force)
            }
            (LuaOp::ReadUntil { .. } | LuaOp::ReadFill { .. }, _) => wrong_kind("stream"),
            (LuaOp::Recv(b), Kind::Tls(t)) => {
                let len = b.len;
                seed_recv(&s.kind, len, t.step_recv(b.bytes_mut(), force)).map(Out::Count)
            }
            (LuaOp::TlsSend { done, buf, all }, Kind::Tls(t)) => {
                let all = *all;
                t.step_send(done, buf.bytes(), all, force)
                    .map(|n| match all {
                        true => Out::Done,
                        false => Out::Count(n),
                    })
            }
            (LuaOp::TlsRecvAll(done, b), Kind::Tls(t)) => {
                seed_recvall(tls_recvall(t, done, b.bytes_mut(), force)).map(|()| Out::Done)
            }
            (LuaOp::TlsHandshake, Kind::Tls(t)) => t.step_handshake(force).map(|()| Out::Done),
            (LuaOp::TlsShutdown(how, notified), Kind::Tls(t)) => {
                t.step_shutdown(*how, notified, force).map(|()| Out::Done)
            }
            (
                LuaOp::Send(_)
                | LuaOp::SendAll(..)
                | LuaOp::RecvAll(..)
                | LuaOp::Accept
                | LuaOp::Connect(_)
                | LuaOp::SendTo(..)
                | LuaOp::RecvNext(_),
                Kind::Tls(_),
            ) => wrong_kind("plain"),
            (
                LuaOp::TlsSend { .. }
                | LuaOp::TlsRecvAll(..)
                | LuaOp::TlsHandshake
                | LuaOp::TlsShutdown(..),
                _,
            ) => wrong_kind("TLS"),
            (LuaOp::Send(b), k) => any_kind!(k, x => x.step_send(b.bytes(), force)).map(Out::Count),
            (LuaOp::Recv(b), k) => {
                let len = b.len;
                seed_recv(k, len, any_kind!(k, x => x.step_recv(b.bytes_mut(), force)))
                    .map(Out::Count)
            }
            (LuaOp::SendAll(all, b), Kind::Tcp(t)) => {
                all.step(t, b.bytes(), force).map(|()| Out::Done)
            }
            (LuaOp::RecvAll(all, b), Kind::Tcp(t)) => {
                seed_recvall(all.step(t, b.bytes_mut(), force)).map(|()| Out::Done)
            }
            (LuaOp::Accept, Kind::Tcp(t)) => t.step_accept(force).map(|(c, remote, local)| {
                s.table.keep_accepted(s.handle.get(), c, remote, local);
                Out::Accepted
            }),
            (LuaOp::Connect(c), Kind::Tcp(t)) => c.step(t, force).map(|()| Out::Done),
            (LuaOp::SendAll(..) | LuaOp::RecvAll(..) | LuaOp::Accept | LuaOp::Connect(_), _) => {
                wrong_kind("TCP")
            }
            (LuaOp::SendTo(sa, b), Kind::Udp(u)) => {
                u.step_sendto(sa, b.bytes(), force).map(Out::Count)
            }
            (LuaOp::SendTo(sa, b), Kind::Raw(r)) => {
                r.step_sendto(sa, b.bytes(), force).map(Out::Count)
            }
            (LuaOp::RecvNext(b), Kind::Udp(u)) => u
                .step_recvnext_cut(b.bytes_mut(), force)
                .map(|(n, sa, cut)| s.table.datagram(n, sa, cut)),
            (LuaOp::RecvNext(b), Kind::Raw(r)) => r
                .step_recvnext_cut(b.bytes_mut(), force)
                .map(|(n, sa, cut)| s.table.datagram(n, sa, cut)),
            (LuaOp::SendTo(..) | LuaOp::RecvNext(_), Kind::Tcp(_)) => wrong_kind("datagram"),
        }
    }

    /// Whether the call moves a whole buffer (`sendall`, `recvall`): its
    /// failures end with the bytes moved.
    pub(crate) fn moves_all(&self) -> bool {
        matches!(
            self,
            LuaOp::SendAll(..)
                | LuaOp::RecvAll(..)
                | LuaOp::TlsSend { all: true, .. }
                | LuaOp::TlsRecvAll(..)
        )
    }

    /// The error `e` as this call reports it (with the bytes moved).
    pub(crate) fn fail(&self, e: Error) -> Error {
        match self {
            LuaOp::SendAll(all, _) => all.fail(e),
            LuaOp::RecvAll(all, _) => all.fail(e),
            LuaOp::TlsSend { done, .. } | LuaOp::TlsRecvAll(done, _) => e.with_done(*done),
            _ => e,
        }
    }
}

/// A call whose first step would block, waiting to be driven.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The socket's handle.
    h: u64,
    op: LuaOp,
    /// The direction the first step waits for: the driver's first step
    /// returns it without a second attempt (a second `connect(2)` right
    /// after the first). (A first step that sleeps is simply made again.)
    first: Option<Direction>,
}

impl Pending {
    /// Makes the first step of `op` on the socket `s` (handle `h`): its
    /// result, or `None` once the call is `t`'s pending operation.
    #[inline]
    pub(crate) fn first_step(
        t: &Table,
        s: &LSock,
        h: u64,
        mut op: LuaOp,
    ) -> Option<sock::Result<Out>> {
        let first = op.step(s, false);
        Pending::after_first(t, h, first, || op)
    }

    /// Keeps `op` as `t`'s pending call if its first step, `first`, would
    /// block; else gives that step's result. (For the fast path, whose
    /// first steps call the core directly: no `LuaOp` is made unless the
    /// call waits.)
    #[inline]
    pub(crate) fn after_first<T>(
        t: &Table,
        h: u64,
        first: Step<T>,
        op: impl FnOnce() -> LuaOp,
    ) -> Option<sock::Result<T>> {
        let first = match first {
            Step::Ready(r) => return Some(r),
            Step::Wait(d) => Some(d),
            Step::Sleep(_) => None,
        };
        t.set_pending(Pending { h, op: op(), first });
        None
    }

    /// The core future that drives this call on its socket until `expires`,
    /// or the call back if its handle names no socket any more.
    pub(crate) fn drive(
        self,
        t: &Rc<Table>,
        expires: Option<f64>,
    ) -> Result<sock::op::Drive<Driven>, Pending> {
        let Some(s) = t.get(self.h) else {
            return Err(self);
        };
        let driven = Driven {
            table: Rc::clone(t),
            p: self,
        };
        // SAFETY: see `Table::get` (a live socket, and no Lua code runs here).
        Ok(unsafe { &*s }.drive(driven, expires))
    }

    /// The call.
    pub(crate) fn op(&self) -> &LuaOp {
        &self.op
    }
}

/// A pending call as the core's driver sees it.
#[derive(Debug)]
pub(crate) struct Driven {
    table: Rc<Table>,
    p: Pending,
}

impl Driven {
    /// The call.
    pub(crate) fn op(&self) -> &LuaOp {
        &self.p.op
    }

    /// The socket's handle.
    pub(crate) fn handle(&self) -> u64 {
        self.p.h
    }
}

impl Op for Driven {
    type Output = Out;

    fn step(&mut self, force: bool) -> Step<Out> {
        if let (Some(d), false) = (self.p.first.take(), force) {
            return Step::Wait(d);
        }
        let p = &mut self.p;
        self.table
            .with(p.h, |s| p.op.step(s, force))
            .unwrap_or_else(|| Step::Ready(Err(Error::new(ErrorKind::Closed))))
    }

    /// The seed's deadline: "if the expiration clock is reached before the
    /// operation completes the socket is forcibly closed and nil, 'timeout'
    /// is returned". The close wakes the other threads waiting on the
    /// socket, which see `closed`.
    fn fail(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::Timeout {
            self.table.with(self.p.h, |s| s.close());
        }
        self.p.op.fail(e)
    }
}

/// The values of a failed call: `nil, err, code, msg`, then the bytes moved
/// for `sendall`/`recvall` (`all`), or the bytes a truncated datagram kept.
pub(crate) fn values_of_error(lua: &Lua, e: &Error, all: bool) -> LuaResult<LuaMultiValue> {
    if all || (e.kind() == ErrorKind::MessageTooBig && e.done() > 0) {
        return fail_with(lua, e, e.done());
    }
    fail(lua, e)
}

/// The values of a finished call on the socket of handle `h` in `t`: `n`;
/// `true` (also for a connection, which waits in the table for the Lua layer
/// to take it: `fast::sock_lua_peer`, `R.take_accepted`); `n, sa`; or the
/// failure.
pub(crate) fn values(
    lua: &Lua,
    t: &Rc<Table>,
    h: u64,
    all: bool,
    r: sock::Result<Out>,
) -> LuaResult<LuaMultiValue> {
    let lost = || crate::error::usage_error("sock", "a call's result was lost");
    match r {
        Ok(Out::Count(n)) => n.into_lua_multi(lua),
        Ok(Out::Done | Out::Accepted) => true.into_lua_multi(lua),
        Ok(Out::Record { n, len }) => match t.get(h) {
            // SAFETY: see `Table::get`: a live socket; the only Lua code that
            // runs meanwhile is the collector (making the string), and the
            // thread that made this call holds the socket's object.
            Some(p) => record_string(lua, unsafe { &*p }, n, len)?.into_lua_multi(lua),
            None => closed_values(lua),
        },
        Ok(Out::Datagram(n)) => match t.extra.take() {
            Some(Extra::From(sa, false)) => (n, crate::addr::new_sa(lua, sa)?).into_lua_multi(lua),
            Some(Extra::From(sa, true)) => {
                (n, crate::addr::new_sa(lua, sa)?, "truncated").into_lua_multi(lua)
            }
            _ => Err(lost()),
        },
        Err(e) => values_of_error(lua, &e, all),
    }
}
