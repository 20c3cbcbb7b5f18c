//! The FFI fast path: the first steps of `send`, `recv`, `sendall`,
//! `recvall` and `accept` as plain C functions that the Lua layer calls
//! through LuaJIT's FFI, on a socket's *handle*.
//!
//! A call into an mlua userdata method costs about 60 ns under the JIT (an
//! mlua function about 22 ns, and neither is compiled: the trace stops at the
//! C call); an FFI call into an `extern "C"` function compiles to a plain
//! call, about 3 ns. The first steps of `s:send`, `s:recv`, `tcp:sendall`,
//! `tcp:recvall` and `tcp:accept` are therefore the exported functions
//! below; they make the core's own steps (`step_send`, `step_recv`,
//! `SendAll`, `RecvAll`, `step_accept`), and a call that would block becomes
//! the pending call that the scheduler drives with the same operation, so
//! the paths cannot disagree. `s:close`, which every connection makes, is
//! one too ([`sock_lua_close`]), and so is `s:setopt` of a flag or an
//! integer ([`sock_lua_setopt`], by the option's index, which the Lua layer
//! keeps by name), the other option every server sets on every connection
//! (`tcp_nodelay`). Everything else stays on mlua.
//!
//! An accepted connection needs a userdata, which only the Lua C API can
//! make: [`sock_lua_accept`] leaves the connection in the table and writes
//! its remote address's bytes for the Lua layer's peer object (no `sa` is
//! made, see `docs/design.md`, *Accepting in Lua*), and one mlua function,
//! `R.take_accepted`, then makes the userdata.
//!
//! # Handles: checked, never trusted
//!
//! Each function takes the state's handle table ([`Table`], whose address the
//! Lua layer holds as an upvalue, `R.sockets`) and a socket's handle, which it
//! validates ([`crate::handles`]): a handle that Lua code forged or kept after
//! a collection acts as a closed socket, and never reaches freed memory.
//!
//! A closed socket keeps its entry (the userdata lives on) and has no
//! descriptor: the call says so ([`CLOSED`]) instead of touching a descriptor
//! number that the next socket may have been given.
//!
//! # How Lua finds these functions
//!
//! `R.fast` gives their addresses (light userdata), which the Lua layer casts
//! to FFI function pointer types (`ffi.typeof`, no `ffi.cdef`, so a reload of
//! the module or a user's own declarations cannot clash). That is the library
//! that `require` loaded, whatever path, loader or static link brought it in.
//! The functions are also exported (`#[no_mangle]`, stable names and C ABI),
//! so that tools (`perf`, `nm`) can name them.
//!
//! # Results, without allocation
//!
//! Each function makes the first step of its call (`op.rs`) and returns a C
//! `int`:
//!
//! * `n >= 0`: done: `n` bytes (`send`, `recv`), or 0 (`sendall`, `recvall`),
//!   or the length of the remote address's bytes (`accept`);
//! * [`PENDING`] (-1): the call would block and is the state's pending call:
//!   the Lua layer yields `OP, expires`, and the scheduler drives it;
//! * [`CLOSED`] (-2): the socket was closed (or the handle is unknown): the
//!   Lua layer returns `nil, 'closed'`;
//! * [`FAILED`] (-3): the call failed; the error waits in the table for
//!   `R.failed`, which turns it into the usual `nil, err, code, msg`.
//!
//! An `int` and not a `ssize_t`: LuaJIT returns 64-bit integers as boxed
//! cdata (an allocation per call outside compiled code), 32-bit ones as plain
//! numbers. A single `send` or `recv` moves at most [`MAX_IO`] bytes (what
//! Linux moves at most in one call anyway), so every count fits.
//!
//! # Safety
//!
//! The buffer is the one `unsafe` promise the caller makes: the Lua layer
//! (`lua/sock.lua`) passes what its checked `bufarg` gave (`len` at most
//! `ffi.sizeof` of an array, or the string's length; pointer cdata is the
//! caller's word, as in the mlua methods), and keeps it on its coroutine's
//! stack while the call is pending. The table is the one `R.sockets` gave.

use std::ffi::{c_int, c_void};

use mlua::prelude::*;

use sock::op::{RecvAll, SendAll, Step};
use sock::opt::{Opt, OptType};
use sock::{ErrorKind, OptVal};

use crate::addr::PEER_MAX;

use super::op::{seed_recv, seed_recvall, values_of_error, LuaOp, Pending, RawBuf};
use super::{Kind, LSock, Table};
use crate::error::usage_error;

/// The result of a call that would block: it is the state's pending call.
pub const PENDING: c_int = -1;

/// The result of a call on a closed socket, or with an unknown handle.
pub const CLOSED: c_int = -2;

/// The result of a failed call: `R.failed` gives the error.
pub const FAILED: c_int = -3;

/// The result of `accept` on a socket that is not a plain TCP one (a UDP,
/// raw or TLS socket): the Lua layer raises, as for any misused method.
pub const NOT_TCP: c_int = -4;

/// The result of a call that the fast path leaves to the mlua method
/// (`setopt` with a value it does not take, and its usage errors).
pub const SLOW: c_int = -5;

/// The most bytes one call sends or receives: Linux's own limit for one call
/// (`MAX_RW_COUNT`), below `i32::MAX`. A larger `len` is a partial send or
/// receive, which the callers handle already.
pub const MAX_IO: usize = 0x7fff_f000;

/// The live socket of the handle `h`, if any.
#[inline]
fn live(t: &Table, h: u64) -> Option<&LSock> {
    let p = t.get(h)?;
    // SAFETY: a live socket of the table (see `Table::get`); no Lua code runs
    // during the fast path's calls, which are the only users of the reference.
    let s = unsafe { &*p };
    (!s.is_closed()).then_some(s)
}

/// A first step's result as the fast path returns it: `n` (or 0 for `true`),
/// [`PENDING`] (`op` is the pending call), or [`FAILED`].
#[inline]
fn finish(t: &Table, h: u64, first: Step<usize>, all: bool, op: impl FnOnce() -> LuaOp) -> c_int {
    match Pending::after_first(t, h, first, op) {
        None => PENDING,
        Some(Ok(n)) => n as c_int,
        Some(Err(e)) => {
            t.set_error(e, all);
            FAILED
        }
    }
}

/// The table behind the address the Lua layer passes.
///
/// # Safety
///
/// `t` is `R.sockets` of the calling state: the address of its live table.
unsafe fn table<'a>(t: *const c_void) -> &'a Table {
    // SAFETY: by the contract.
    unsafe { &*(t as *const Table) }
}

/// `s:send`: one send of up to `len` bytes at `buf` on the socket of the
/// handle `h`: the bytes taken, [`PENDING`], [`CLOSED`] or [`FAILED`].
///
/// # Safety
///
/// `t` is the state's table (`R.sockets`); `buf` is valid for reads of `len`
/// bytes, not written meanwhile, for as long as the call lives (a pending
/// call: until the thread is resumed). The handle needs no promise.
#[no_mangle]
pub unsafe extern "C" fn sock_lua_send(
    t: *const c_void,
    h: u64,
    buf: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: by the contract.
    let (t, b) = unsafe { (table(t), RawBuf::new(buf as *mut u8, len.min(MAX_IO))) };
    let Some(s) = live(t, h) else { return CLOSED };
    if let Kind::Tls(tls) = &s.kind {
        return tls_send(t, h, tls, b, false);
    }
    let first = any_kind!(&s.kind, x => x.step_send(b.bytes(), false));
    finish(t, h, first, false, || LuaOp::Send(b))
}

/// `s:recv`: one receive into the `len` bytes at `buf` from the socket of
/// the handle `h`: the bytes received (0 at the end of a TCP stream),
/// [`PENDING`], [`CLOSED`] or [`FAILED`] (a datagram larger than `len` is
/// `message_too_big`, as in the core).
///
/// # Safety
///
/// As [`sock_lua_send`], and `buf` is valid for writes, and nothing else reads
/// or writes it while the call lives.
#[no_mangle]
pub unsafe extern "C" fn sock_lua_recv(
    t: *const c_void,
    h: u64,
    buf: *mut u8,
    len: usize,
) -> c_int {
    // SAFETY: by the contract.
    let (t, mut b) = unsafe { (table(t), RawBuf::new(buf, len.min(MAX_IO))) };
    let Some(s) = live(t, h) else { return CLOSED };
    let first = match &s.kind {
        Kind::Tls(tls) => tls.step_recv(b.bytes_mut(), false),
        k => any_kind!(k, x => x.step_recv(b.bytes_mut(), false)),
    };
    finish(t, h, seed_recv(&s.kind, len, first), false, || {
        LuaOp::Recv(b)
    })
}

/// `tcp:sendall`: sends all `len` bytes at `buf`: 0 (done), [`PENDING`],
/// [`CLOSED`] or [`FAILED`] (`R.failed` then adds the bytes sent).
///
/// # Safety
///
/// As [`sock_lua_send`].
#[no_mangle]
pub unsafe extern "C" fn sock_lua_sendall(
    t: *const c_void,
    h: u64,
    buf: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: by the contract.
    let (t, b) = unsafe { (table(t), RawBuf::new(buf as *mut u8, len)) };
    let s = match live(t, h).map(|s| &s.kind) {
        Some(Kind::Tcp(s)) => s,
        Some(Kind::Tls(tls)) => return tls_send(t, h, tls, b, true),
        _ => return CLOSED,
    };
    let mut all = SendAll::new();
    let first = all.step(s, b.bytes(), false).map(|()| 0);
    finish(t, h, first, true, || LuaOp::SendAll(all, b))
}

/// `tcp:recvall`: fills the `len` bytes at `buf`: 0 (done), [`PENDING`],
/// [`CLOSED`] or [`FAILED`] (`eof` if the stream ends first; `R.failed` then
/// adds the bytes received).
///
/// # Safety
///
/// As [`sock_lua_recv`].
#[no_mangle]
pub unsafe extern "C" fn sock_lua_recvall(
    t: *const c_void,
    h: u64,
    buf: *mut u8,
    len: usize,
) -> c_int {
    // SAFETY: by the contract.
    let (t, mut b) = unsafe { (table(t), RawBuf::new(buf, len)) };
    let s = match live(t, h).map(|s| &s.kind) {
        Some(Kind::Tcp(s)) => s,
        Some(Kind::Tls(tls)) => {
            let mut done = 0;
            let first = seed_recvall(super::op::tls_recvall(tls, &mut done, b.bytes_mut(), false));
            return finish(t, h, first.map(|()| 0), true, || LuaOp::TlsRecvAll(done, b));
        }
        _ => return CLOSED,
    };
    let mut all = RecvAll::new();
    let first = seed_recvall(all.step(s, b.bytes_mut(), false)).map(|()| 0);
    finish(t, h, first, true, || LuaOp::RecvAll(all, b))
}

/// `tcp:accept`: the first step of an accept on the listener of the handle
/// `h`: once a connection is accepted it waits in the table for
/// `R.take_accepted`, and the result is its remote address's bytes at `out`
/// as [`sock_lua_peer`] gives them; else [`PENDING`] (the pending call's end
/// keeps the connection the same way: [`sock_lua_peer`] then gives its
/// address), [`CLOSED`], [`FAILED`] or [`NOT_TCP`].
///
/// # Safety
///
/// `t` is the state's table (`R.sockets`); `out` is valid for writes of
/// [`PEER_MAX`] bytes. The handle needs no promise.
#[no_mangle]
pub unsafe extern "C" fn sock_lua_accept(t: *const c_void, h: u64, out: *mut u8) -> c_int {
    // SAFETY: by the contract.
    let t = unsafe { table(t) };
    let Some(s) = live(t, h) else { return CLOSED };
    let Kind::Tcp(l) = &s.kind else {
        return NOT_TCP;
    };
    match Pending::after_first(t, h, l.step_accept(false), || LuaOp::Accept) {
        None => PENDING,
        Some(Ok((conn, remote, local))) => {
            t.keep_accepted(h, conn, remote, local);
            // SAFETY: by the contract.
            unsafe { peer(t, h, out) }
        }
        Some(Err(e)) => {
            t.set_error(e, false);
            FAILED
        }
    }
}

/// The remote address of the connection that the listener of the handle `h`
/// accepted and that waits for `R.take_accepted`: its bytes written at
/// `out` ([`crate::addr::peer_bytes`]: an IPv4 or IPv6 address) and their
/// length, or 0 for another address (a unix one: `R.take_accepted` then
/// gives it as an `sa`); [`CLOSED`] if no connection waits for `h`.
///
/// # Safety
///
/// As [`sock_lua_accept`].
#[no_mangle]
pub unsafe extern "C" fn sock_lua_peer(t: *const c_void, h: u64, out: *mut u8) -> c_int {
    // SAFETY: by the contract.
    unsafe { peer(table(t), h, out) }
}

/// [`sock_lua_peer`] on the table.
///
/// # Safety
///
/// `out` is valid for writes of [`PEER_MAX`] bytes.
unsafe fn peer(t: &Table, h: u64, out: *mut u8) -> c_int {
    let mut b = [0u8; PEER_MAX];
    match t.with_accepted_remote(h, |sa| crate::addr::peer_bytes(sa, &mut b)) {
        None => CLOSED,
        Some(None) => 0,
        Some(Some(n)) => {
            // SAFETY: `out` is valid for `PEER_MAX` bytes (the contract), and
            // `n` is at most that.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), out, n) };
            n as c_int
        }
    }
}

/// `s:close`: closes the socket of the handle `h` (FIN, or RST with unread
/// data; a TLS stream queues its close_notify first), waking the threads
/// parked on it: 0, or [`CLOSED`] if the handle names no socket. Closing a
/// closed socket does nothing.
///
/// # Safety
///
/// `t` is the state's table (`R.sockets`). The handle needs no promise.
#[no_mangle]
pub unsafe extern "C" fn sock_lua_close(t: *const c_void, h: u64) -> c_int {
    // SAFETY: by the contract.
    let t = unsafe { table(t) };
    match t.with(h, |s| s.close()) {
        Some(()) => 0,
        None => CLOSED,
    }
}

/// `s:setopt` of a flag or integer option (`opt`: its index, as
/// `R.opt_index` gives it) to `val` (`flag`: the Lua value was a boolean):
/// 0 once set, [`CLOSED`], [`FAILED`], or [`SLOW`] for the mlua method to
/// make the call (and raise its usage errors: a boolean for an integer
/// option, a value out of range, an unknown index).
///
/// # Safety
///
/// `t` is the state's table (`R.sockets`). The other arguments need no
/// promise.
#[no_mangle]
pub unsafe extern "C" fn sock_lua_setopt(
    t: *const c_void,
    h: u64,
    opt: c_int,
    val: c_int,
    flag: c_int,
) -> c_int {
    // SAFETY: by the contract.
    let t = unsafe { table(t) };
    let Some(s) = live(t, h) else { return CLOSED };
    let Some(o) = usize::try_from(opt).ok().and_then(Opt::from_index) else {
        return SLOW;
    };
    let v = match (o.value_type(), flag != 0) {
        _ if !o.writable() => return SLOW,
        (OptType::Bool, true) => OptVal::Bool(val != 0),
        (OptType::Bool | OptType::Int, false) => OptVal::Int(val.into()),
        _ => return SLOW,
    };
    match any_kind!(&s.kind, x => x.setopt_opt(o, v)) {
        Ok(()) => 0,
        Err(e) if e.kind() == ErrorKind::InvalidArgument && e.code() == 0 => SLOW,
        Err(e) => {
            t.set_error(e, false);
            FAILED
        }
    }
}

/// `R.opt_index(name)`: the index of the option `name` for
/// [`sock_lua_setopt`] if it is a writable flag or integer, else false.
fn opt_index(_: &Lua, name: LuaValue) -> LuaResult<LuaValue> {
    let LuaValue::String(name) = name else {
        return Ok(LuaValue::Boolean(false));
    };
    let Ok(name) = name.to_str() else {
        return Ok(LuaValue::Boolean(false));
    };
    Ok(match Opt::find(&name) {
        Some(o) if o.writable() && matches!(o.value_type(), OptType::Bool | OptType::Int) => {
            LuaValue::Integer(o.index() as _)
        }
        _ => LuaValue::Boolean(false),
    })
}

/// The first step of `send` (`all` false) or `sendall` on a TLS stream.
fn tls_send(t: &Table, h: u64, tls: &sock_tls::TlsStream, b: RawBuf, all: bool) -> c_int {
    let mut done = 0;
    let first = tls.step_send(&mut done, b.bytes(), all, false);
    let first = if all { first.map(|_| 0) } else { first };
    finish(t, h, first, all, || LuaOp::TlsSend { done, buf: b, all })
}

/// A function's address, as a light userdata for `ffi.cast`.
fn address(f: *const ()) -> LuaLightUserData {
    LuaLightUserData(f as *mut c_void)
}

/// `R.failed(func)`: the values of the last [`FAILED`] call, `nil, err,
/// code, msg`, then the bytes moved for `sendall`/`recvall` (or the bytes a
/// truncated datagram kept). Raises if there is no such error (a bug).
fn failed(lua: &Lua, func: LuaString) -> LuaResult<LuaMultiValue> {
    let t = super::table(lua)?;
    match t.error.take() {
        Some((e, all)) => values_of_error(lua, &e, all),
        None => Err(usage_error(&func.to_str()?, "no failed call to report")),
    }
}

/// `R.address(cdata)`: the address `lua_topointer` gives for a cdata (its
/// payload), for buffers that are neither arrays, structs nor pointers (boxed
/// scalars), whose address FFI conversions do not give.
fn payload_address(_: &Lua, v: LuaValue) -> LuaResult<f64> {
    Ok(v.to_pointer() as usize as f64)
}

/// Adds `R.fast` (the functions' addresses and results) and the slow-path
/// helpers to `R`.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    let fast = lua.create_table()?;
    fast.set("send", address(sock_lua_send as *const ()))?;
    fast.set("recv", address(sock_lua_recv as *const ()))?;
    fast.set("sendall", address(sock_lua_sendall as *const ()))?;
    fast.set("recvall", address(sock_lua_recvall as *const ()))?;
    fast.set("accept", address(sock_lua_accept as *const ()))?;
    fast.set("peer", address(sock_lua_peer as *const ()))?;
    fast.set("close", address(sock_lua_close as *const ()))?;
    fast.set("setopt", address(sock_lua_setopt as *const ()))?;
    fast.set("SLOW", SLOW)?;
    fast.set("PENDING", PENDING)?;
    fast.set("CLOSED", CLOSED)?;
    fast.set("NOT_TCP", NOT_TCP)?;
    r.set("fast", fast)?;
    r.set("failed", lua.create_function(failed)?)?;
    r.set("address", lua.create_function(payload_address)?)?;
    r.set("opt_index", lua.create_function(opt_index)?)?;
    Ok(())
}
