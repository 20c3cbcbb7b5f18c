//! Sockets: the userdata under `tcp`, `udp` and `raw` objects, the state's
//! table of socket handles, and the blocking calls.
//!
//! The userdata [`LSock`] owns a core socket; its methods are the seed's
//! calls. The blocking ones (`connect`, `sendto`, `recvnext`, and `send`,
//! `recv`, `sendall`, `recvall`, `accept` through the FFI fast path of
//! [`fast`]) are core operations ([`op`]): the first step is made here, and
//! a call that would block becomes the state's pending operation, which the
//! scheduler drives once the Lua layer yields (`OP, expires`). The Lua layer
//! (`lua/sock.lua`) keeps the argument checks it can make cheaply (buffers
//! against `ffi.sizeof`) and the yield; the policy (retries, deadlines,
//! addresses, messages) is the core's.
//!
//! Buffers come as a Lua string (sending only), an FFI array (its address is
//! `lua_topointer` of the cdata), or, for pointer cdata, the address as a
//! number that the Lua layer computed: the caller vouches for its length.
//!
//! # The handle table, per Lua state
//!
//! Each Lua state has one [`Table`] (in its app data, shared by every load of
//! the module): the handles of its live sockets ([`crate::handles`]), the
//! pending operation, the error of the last failed fast-path call, the
//! connection an accept made until the Lua layer takes it, and the local
//! address its last accept returned. The Lua layer holds its address
//! (`R.sockets`) and passes it to the fast path's functions; every socket
//! userdata keeps the table alive (`Rc`), so the table outlives every handle.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;

use mlua::prelude::*;

use sock::{Family, Opt, OptType, OptVal, Protocol, Raw, Shutdown, SockAddr, SocketType, Tcp, Udp};

use crate::addr::{self, Addr};
use crate::error::{fail, Arg};
use crate::handles::Handles;

/// Calls a method of a core socket, whatever its kind.
macro_rules! any_kind {
    ($k:expr, $x:ident => $e:expr) => {
        match $k {
            Kind::Tcp($x) => $e,
            Kind::Udp($x) => $e,
            Kind::Raw($x) => $e,
            // The socket under the TLS stream (options, addresses, state).
            Kind::Tls(t) => {
                let $x = t.tcp();
                $e
            }
        }
    };
}

/// Calls a method of the socket, whatever its kind.
macro_rules! any {
    ($s:expr, $x:ident => $e:expr) => {
        any_kind!(&$s.kind, $x => $e)
    };
}

/// Calls a datagram method, or raises for a TCP socket.
macro_rules! datagram {
    ($s:expr, $func:literal, $x:ident => $e:expr) => {
        match &$s.kind {
            Kind::Udp($x) => $e,
            Kind::Raw($x) => $e,
            Kind::Tcp(_) | Kind::Tls(_) => {
                return Err(Arg::new($func, 1, "self").error("not a datagram socket"))
            }
        }
    };
}

/// The socket, or a return from the calling method with the `closed`
/// result: a socket closed before (by this thread or another) answers
/// `nil, 'closed'` to every call, as a thread parked in a call gets.
macro_rules! live {
    ($lua:expr, $s:expr) => {
        match $s.is_closed() {
            true => return closed_values($lua),
            false => $s,
        }
    };
}

pub(crate) mod fast;
pub(crate) mod op;
pub(crate) mod tls;

use op::{LuaOp, Pending, RawBuf};

/// The core socket of a `tcp`, `udp` or `raw` object.
pub(crate) enum Kind {
    /// A TCP (or Unix stream) socket.
    Tcp(Tcp),
    /// A UDP (or Unix datagram) socket.
    Udp(Udp),
    /// A raw socket.
    Raw(Raw),
    /// A TLS stream over a TCP socket (`sock_tls`; boxed: the rustls
    /// connection is large, and plain sockets should not pay for it).
    Tls(Box<sock_tls::TlsStream>),
}

/// The socket userdata (`__name` "sock.socket").
///
/// The fast path and the pending operations reach it by its handle: the
/// value's address is registered in its state's [`Table`] once it is in its
/// userdata ([`LSock::new_userdata`]) and removed when it is dropped, so the
/// value is never moved out of its userdata (no `take`), and every method
/// takes `&self`.
pub(crate) struct LSock {
    kind: Kind,
    /// The handle (0 until registered).
    handle: Cell<u64>,
    table: Rc<Table>,
}

impl Drop for LSock {
    fn drop(&mut self) {
        if self.handle.get() != 0 {
            self.table.handles.borrow_mut().remove(self.handle.get());
        }
    }
}

/// The socket handles of one Lua state, and what its blocking calls leave
/// for the scheduler and the Lua layer (see the module docs).
pub(crate) struct Table {
    /// (`NonNull`: an entry is two words, not three.)
    handles: RefCell<Handles<NonNull<LSock>>>,
    /// The call whose first step would block, until the scheduler takes it.
    pending: Cell<Option<Pending>>,
    /// The error of the last failed fast-path call, and whether its call
    /// moves a whole buffer (`R.failed` gives its values).
    error: Cell<Option<(sock::Error, bool)>>,
    /// The listener (handle) whose accept returned a local address last,
    /// and that address.
    last_local: RefCell<Option<(u64, SockAddr)>>,
    /// The large part of the last finished call's result.
    extra: Cell<Option<op::Extra>>,
    /// The connection the last accept made, until the Lua layer takes it.
    accepted: RefCell<Option<Accepted>>,
}

/// An accepted connection, from its accept (the fast path's first step, or
/// the pending call's last) to the Lua layer's `R.take_accepted`, which
/// makes its userdata. No Lua code runs in between: the Lua layer takes it
/// right after the call or the resume that reported it, allocating nothing
/// before (see `lua/sock.lua`, `tcp:accept`).
struct Accepted {
    /// The listener's handle.
    listener: u64,
    conn: Tcp,
    remote: SockAddr,
    local: SockAddr,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").finish_non_exhaustive()
    }
}

impl Table {
    fn new() -> Table {
        Table {
            handles: RefCell::new(Handles::new()),
            pending: Cell::new(None),
            error: Cell::new(None),
            last_local: RefCell::new(None),
            extra: Cell::new(None),
            accepted: RefCell::new(None),
        }
    }

    /// A datagram's result: its length, with its source (and whether it was
    /// cut to the buffer) kept for the values.
    fn datagram(&self, n: usize, from: SockAddr, cut: bool) -> op::Out {
        self.extra.set(Some(op::Extra::From(from, cut)));
        op::Out::Datagram(n)
    }

    /// The address of the live socket of the handle `h`, if it is known. The
    /// socket stays alive while no Lua code runs (a collection is the only
    /// way to drop it), and every access to an `LSock` is shared (`&self`
    /// methods, interior mutability).
    #[inline]
    pub(crate) fn get(&self, h: u64) -> Option<*const LSock> {
        self.handles
            .borrow()
            .get(h)
            .map(|p| p.as_ptr().cast_const())
    }

    /// Calls `f` with the socket of the handle `h`, if the handle is known.
    /// `f` must not run Lua code.
    #[inline]
    pub(crate) fn with<R>(&self, h: u64, f: impl FnOnce(&LSock) -> R) -> Option<R> {
        let p = self.get(h)?;
        // SAFETY: an entry holds the address of a live `LSock` (registered
        // once the value was at its final place in its userdata, removed by
        // its `Drop`); it cannot be dropped during `f`, which runs no Lua code
        // (see `get`), and a shared reference is sound (see `get`).
        Some(f(unsafe { &*p }))
    }

    /// Keeps `p` as the pending call (replacing one that was never taken:
    /// its yield failed).
    pub(crate) fn set_pending(&self, p: Pending) {
        self.pending.set(Some(p));
    }

    /// Takes the pending call.
    pub(crate) fn take_pending(&self) -> Option<Pending> {
        self.pending.take()
    }

    /// Keeps the error of a failed fast-path call.
    pub(crate) fn set_error(&self, e: sock::Error, all: bool) {
        self.error.set(Some((e, all)));
    }

    /// Keeps the connection that an accept on the listener of handle `h`
    /// made, for [`take_accepted`](Self::take_accepted) (a connection kept
    /// before and never taken is dropped: closed).
    pub(crate) fn keep_accepted(&self, h: u64, conn: Tcp, remote: SockAddr, local: SockAddr) {
        *self.accepted.borrow_mut() = Some(Accepted {
            listener: h,
            conn,
            remote,
            local,
        });
    }

    /// Calls `f` with the remote address of the connection that the
    /// listener of handle `h` accepted, if one waits to be taken.
    pub(crate) fn with_accepted_remote<R>(
        &self,
        h: u64,
        f: impl FnOnce(&SockAddr) -> R,
    ) -> Option<R> {
        match &*self.accepted.borrow() {
            Some(a) if a.listener == h => Some(f(&a.remote)),
            _ => None,
        }
    }

    /// `R.take_accepted(h, remote)`: the connection that the listener of
    /// handle `h` accepted (see [`keep_accepted`](Self::keep_accepted)) as
    /// the new socket's userdata and handle, then the local address (nil
    /// when it is the one this listener's last accept returned: the Lua layer
    /// keeps that one, one object for all its connections), then, if
    /// `remote` (the Lua layer keeps no bytes for it:
    /// [`addr::peer_bytes`]), the remote address as an `sa`. `nil,
    /// 'closed'` if no connection waits for `h`.
    fn take_accepted(self: &Rc<Table>, lua: &Lua, h: u64, remote: bool) -> LuaResult<Values4> {
        let taken = {
            let mut slot = self.accepted.borrow_mut();
            match &*slot {
                Some(a) if a.listener == h => slot.take(),
                _ => None,
            }
        };
        let Some(a) = taken else {
            let mut v = closed_values(lua)?.into_iter();
            let mut next = || v.next().unwrap_or(LuaValue::Nil);
            return Ok((next(), next(), next(), next()));
        };
        let (ud, ch) = LSock::new_userdata(lua, self, Kind::Tcp(a.conn))?;
        let same = matches!(&*self.last_local.borrow(), Some((l, x)) if *l == h && *x == a.local);
        let local = match same {
            true => LuaValue::Nil,
            false => {
                let sa = addr::new_sa(lua, a.local.clone())?;
                *self.last_local.borrow_mut() = Some((h, a.local));
                LuaValue::UserData(sa)
            }
        };
        let remote = match remote {
            false => LuaValue::Nil,
            true => LuaValue::UserData(addr::new_sa(lua, a.remote)?),
        };
        Ok((LuaValue::UserData(ud), LuaValue::Number(ch), local, remote))
    }
}

/// Four values, pushed as they are (no `MultiValue` on the way).
type Values4 = (LuaValue, LuaValue, LuaValue, LuaValue);

/// The result of a call on a closed socket (or one that its handle does not
/// name any more): `nil, 'closed', 0, msg`.
pub(crate) fn closed_values(lua: &Lua) -> LuaResult<LuaMultiValue> {
    fail(lua, &sock::Error::new(sock::ErrorKind::Closed))
}

/// The handle table of `lua`'s state.
pub(crate) fn table(lua: &Lua) -> LuaResult<Rc<Table>> {
    match lua.app_data_ref::<Rc<Table>>() {
        Some(t) => Ok(Rc::clone(&t)),
        None => Err(crate::error::usage_error("sock", "module not initialized")),
    }
}

impl LSock {
    fn tcp(&self, func: &'static str) -> LuaResult<&Tcp> {
        match &self.kind {
            Kind::Tcp(t) => Ok(t),
            _ => Err(Arg::new(func, 1, "self").error("not a TCP socket")),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        any!(self, s => s.is_closed())
    }

    /// Closes the socket (FIN, or RST with unread data; a TLS stream sends
    /// its close_notify first), waking the threads parked on it.
    pub(crate) fn close(&self) {
        match &self.kind {
            Kind::Tls(t) => t.close(),
            _ => any!(self, s => s.close()),
        }
    }

    /// The core's driver of `op` on this socket, until `expires`.
    pub(crate) fn drive<O: sock::op::Op + Unpin>(
        &self,
        op: O,
        expires: Option<f64>,
    ) -> sock::op::Drive<O> {
        any!(self, s => s.drive(op, expires))
    }

    /// Makes the userdata of a socket and registers it in the state's table
    /// `t`: the userdata and its handle (a number, see [`crate::handles`]).
    pub(crate) fn new_userdata(
        lua: &Lua,
        t: &Rc<Table>,
        kind: Kind,
    ) -> LuaResult<(LuaAnyUserData, f64)> {
        let ud = lua.create_userdata(LSock {
            kind,
            handle: Cell::new(0),
            table: Rc::clone(t),
        })?;
        let s = ud.borrow::<LSock>()?;
        // Its final address: mlua never moves a userdata's value (and this
        // module never takes it out).
        let h = t.handles.borrow_mut().insert(NonNull::from(&*s));
        s.handle.set(h);
        drop(s);
        Ok((ud, h as f64))
    }

    fn socket_type(&self) -> SocketType {
        any!(self, s => s.socket_type())
    }

    fn family(&self) -> Family {
        any!(self, s => s.family())
    }

    fn hints(&self, flags: sock::AddrFlags) -> sock::Hints {
        sock::Hints {
            socket_type: Some(self.socket_type()),
            family: Some(self.family()),
            protocol: None,
            flags,
        }
    }

    /// A blocking call from an mlua method: its first step, and its values,
    /// or [`op::pending_mark`] once it is the state's pending call.
    fn call(&self, lua: &Lua, op: LuaOp) -> LuaResult<LuaMultiValue> {
        let (t, h, all) = (&self.table, self.handle.get(), op.moves_all());
        match Pending::first_step(t, self, h, op) {
            Some(r) => op::values(lua, t, h, all, r),
            None => op::pending_mark().into_lua_multi(lua),
        }
    }
}

/// A buffer argument: its address and length, checked by the Lua layer.
struct Buf {
    ptr: *const u8,
    len: usize,
}

/// Reads `buf, len`. `for_write`: the buffer receives data (a string is refused).
fn buf_arg(v: &LuaValue, len: usize, for_write: bool, arg: Arg) -> LuaResult<Buf> {
    let ptr = match v {
        LuaValue::String(s) if !for_write => {
            let b = s.as_bytes();
            if len > b.len() {
                return Err(arg.error("length exceeds the string"));
            }
            b.as_ptr()
        }
        LuaValue::Number(n) if *n >= 1.0 => *n as usize as *const u8,
        LuaValue::Integer(n) if *n >= 1 => *n as usize as *const u8,
        LuaValue::Nil | LuaValue::Boolean(_) | LuaValue::Table(_) | LuaValue::Function(_) => {
            return Err(arg.type_error("cdata buffer", v));
        }
        other => other.to_pointer() as *const u8,
    };
    if ptr.is_null() {
        return Err(arg.type_error("cdata buffer", v));
    }
    Ok(Buf { ptr, len })
}

impl Buf {
    /// The buffer for a call.
    fn raw(&self) -> RawBuf {
        // SAFETY: the pointer is a Lua string's bytes or the payload of an FFI
        // cdata (or an address the Lua layer computed from pointer cdata,
        // which the caller vouches for) that the Lua layer checked `len`
        // against; it stays on the calling coroutine's stack while the call
        // lives (see `RawBuf`). Receiving calls refuse strings.
        unsafe { RawBuf::new(self.ptr as *mut u8, self.len) }
    }
}

/// Resolves `host, port` (or an ai/sa) with the socket's hints. A host
/// that needs the resolver is not looked up here: the values to return are
/// then `R.LOOKUP, lk`, and `lua/sock.lua` makes the call again with the
/// lookup's ai.
fn resolve(
    lua: &Lua,
    s: &LSock,
    func: &'static str,
    first: usize,
    args: &(LuaValue, LuaValue, LuaValue),
    flags: sock::AddrFlags,
) -> LuaResult<Result<Addr, LuaMultiValue>> {
    let host = Arg::new(func, first, "host");
    let port = Arg::new(func, first + 1, "port");
    let flags = flags | addr::flags_arg(&args.2, Arg::new(func, first + 2, "af"))?;
    let p = &args.1;
    let h = match &args.0 {
        LuaValue::Nil => LuaValue::String(lua.create_string("*")?),
        v => v.clone(),
    };
    match addr::resolve(&h, host, p, port, &s.hints(flags))? {
        // A name: looked up off the loop first (`lua/addr.lua`), then the
        // call is made again with the result.
        Ok(Addr::Lookup(lk)) => Ok(Err(addr::deferred(lua, lk)?)),
        Ok(a) => Ok(Ok(a)),
        Err(e) => Ok(Err(fail(lua, &e)?)),
    }
}

impl LuaUserData for LSock {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.socket");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method(
            "connect",
            |lua, s, (host, port, af): (LuaValue, LuaValue, LuaValue)| {
                live!(lua, s).tcp("tcp:connect")?;
                let flags = sock::AddrFlags::empty();
                let a = match resolve(lua, s, "tcp:connect", 2, &(host, port, af), flags)? {
                    Ok(a) => a,
                    Err(failed) => return Ok(failed),
                };
                // A looked-up list is moved in; an ai or sa becomes one.
                let list = match a {
                    Addr::List(list) => list,
                    a => match sock::ToAddr::to_addr(&a, &s.hints(flags)) {
                        Ok(list) => list.into_owned(),
                        Err(e) => return fail(lua, &e),
                    },
                };
                let connect = sock::op::Connect::new(list);
                s.call(lua, LuaOp::Connect(Box::new(connect)))
            },
        );
        m.add_method("read_fill", |lua, s, (want, max): (usize, usize)| {
            live!(lua, s).call(lua, LuaOp::ReadFill { want, max })
        });
        m.add_method(
            "connect_datagram",
            |lua, s, (host, port, af): (LuaValue, LuaValue, LuaValue)| {
                let s = live!(lua, s);
                let a = match resolve(
                    lua,
                    s,
                    "udp:connect",
                    2,
                    &(host, port, af),
                    sock::AddrFlags::empty(),
                )? {
                    Ok(a) => a,
                    Err(failed) => return Ok(failed),
                };
                crate::error::ret(
                    lua,
                    datagram!(s, "udp:connect", x => x.connect(a)).map(|()| true),
                )
            },
        );
        m.add_method(
            "bind",
            |lua, s, (host, port, af): (LuaValue, LuaValue, LuaValue)| {
                let s = live!(lua, s);
                let a = match resolve(
                    lua,
                    s,
                    "s:bind",
                    2,
                    &(host, port, af),
                    sock::AddrFlags::PASSIVE,
                )? {
                    Ok(a) => a,
                    Err(failed) => return Ok(failed),
                };
                crate::error::ret(lua, any!(s, x => x.bind(a)).map(|()| true))
            },
        );
        m.add_method(
            "listen",
            |lua, s, (backlog, host, port, af): (Option<f64>, LuaValue, LuaValue, LuaValue)| {
                let t = live!(lua, s).tcp("tcp:listen")?;
                let backlog = backlog
                    .filter(|b| b.is_finite())
                    .map(|b| b.clamp(0.0, u32::MAX as f64) as u32);
                let a = match resolve(
                    lua,
                    s,
                    "tcp:listen",
                    3,
                    &(host, port, af),
                    sock::AddrFlags::PASSIVE,
                )? {
                    Ok(a) => a,
                    Err(failed) => return Ok(failed),
                };
                crate::error::ret(lua, t.listen(backlog, a).map(|()| true))
            },
        );
        m.add_method("shutdown", |lua, s, how: LuaValue| {
            let arg = Arg::new("tcp:shutdown", 2, "how");
            let how: Shutdown = match &how {
                LuaValue::Nil => Shutdown::Both,
                LuaValue::String(h) => match h.to_str()?.parse() {
                    Ok(h) => h,
                    Err(_) => return Err(arg.error("'r', 'w' or 'rw' expected")),
                },
                other => return Err(arg.type_error("'r', 'w' or 'rw'", other)),
            };
            // TLS: close_notify first, a blocking call.
            if let Kind::Tls(_) = &live!(lua, s).kind {
                return s.call(lua, LuaOp::TlsShutdown(how, false));
            }
            let t = s.tcp("tcp:shutdown")?;
            crate::error::ret(lua, t.shutdown(how).map(|()| true))
        });
        m.add_method("setopt", |lua, s, (name, val): (LuaValue, LuaValue)| {
            let s = live!(lua, s);
            let opt_arg = Arg::new("s:setopt", 2, "opt");
            let val_arg = Arg::new("s:setopt", 3, "value");
            let name = opt_name(&name, opt_arg)?;
            let v = lua_optval(&val, val_arg)?;
            let Some(opt) = Opt::find(&name) else {
                return unknown_opt(lua, &name, opt_arg);
            };
            if !opt.writable() {
                return Err(opt_arg.error(opt.read_only().message()));
            }
            let v = setopt_value(opt, v).map_err(|e| val_arg.error(e.message()))?;
            match any!(s, x => x.setopt(opt.name(), v)) {
                Ok(()) => true.into_lua_multi(lua),
                // The name, its access and the value's type are checked above:
                // a usage error left is about the value (out of range, ...).
                Err(e) if e.kind() == sock::ErrorKind::InvalidArgument && e.code() == 0 => {
                    Err(val_arg.error(e.message()))
                }
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("getopt", |lua, s, name: LuaValue| {
            let s = live!(lua, s);
            let opt_arg = Arg::new("s:getopt", 2, "opt");
            let name = opt_name(&name, opt_arg)?;
            let Some(opt) = Opt::find(&name) else {
                return unknown_opt(lua, &name, opt_arg);
            };
            if !opt.readable() {
                return Err(opt_arg.error(opt.write_only().message()));
            }
            match any!(s, x => x.getopt(opt.name())) {
                Ok(OptVal::Bool(b)) => b.into_lua_multi(lua),
                Ok(OptVal::Int(i)) => (i as f64).into_lua_multi(lua),
                Ok(OptVal::Secs(x)) => x.into_lua_multi(lua),
                Ok(OptVal::Str(st)) => st.as_ref().into_lua_multi(lua),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("close", |_, s, ()| {
            s.close();
            Ok(true)
        });
        tls::add_methods(m);
        m.add_method("closed", |_, s, ()| Ok(s.is_closed()));
        m.add_method("type", |_, s, ()| Ok(s.socket_type().name()));
        m.add_method("family", |_, s, ()| Ok(s.family().name()));
        m.add_method("protocol", |_, s, ()| Ok(any!(s, x => x.protocol()).name()));
        m.add_method("local_addr", |lua, s, ()| {
            let s = live!(lua, s);
            match any!(s, x => x.local_addr()) {
                Ok(sa) => addr::new_sa(lua, sa)?.into_lua_multi(lua),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("peer_addr", |lua, s, ()| {
            let s = live!(lua, s);
            match any!(s, x => x.peer_addr()) {
                Ok(sa) => addr::new_sa(lua, sa)?.into_lua_multi(lua),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("fd", |_, s, ()| Ok(any!(s, x => x.as_raw_fd())));
    }
}

/// An option name: a string (`s:setopt`, `s:getopt`), borrowed from Lua
/// (no copy per call).
fn opt_name(v: &LuaValue, arg: Arg) -> LuaResult<mlua::BorrowedStr> {
    match v {
        LuaValue::String(st) => Ok(st.to_str()?),
        other => Err(arg.type_error("string", other)),
    }
}

/// The option named `name`, or the core's "unknown socket option" error at `arg`.
/// An option name that is none of this platform's: `nil, 'not_supported'`
/// for an option of another platform (the original's Windows options),
/// else raises.
fn unknown_opt(lua: &Lua, name: &str, arg: Arg) -> LuaResult<LuaMultiValue> {
    match sock::opt::elsewhere(name) {
        true => fail(lua, &sock::opt::not_here(name)),
        false => Err(arg.error(sock::opt::unknown_option(name).message())),
    }
}

/// The value of `s:setopt` as its Lua type gives it: a boolean is `Bool`, a
/// whole number `Int`, another number `Secs`, a string `Str`; anything else is
/// a type error at `arg`. [`setopt_value`] then fits it to the option.
fn lua_optval(v: &LuaValue, arg: Arg) -> LuaResult<OptVal> {
    Ok(match v {
        LuaValue::Boolean(b) => OptVal::Bool(*b),
        LuaValue::Integer(i) => OptVal::Int(*i),
        LuaValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => OptVal::Int(*n as i64),
        LuaValue::Number(n) => OptVal::Secs(*n),
        LuaValue::String(st) => OptVal::from(st.to_str()?.to_string()),
        other => return Err(arg.type_error("boolean, number or string", other)),
    })
}

/// The value `v` for option `opt`, by the option's value type: a flag takes a
/// boolean or a whole number (non-zero is true), an integer a whole number,
/// seconds any number, a linger `false` or a number of seconds, an address or a
/// group a string. Otherwise the core's bad-value error for `opt`.
fn setopt_value(opt: Opt, v: OptVal) -> Result<OptVal, sock::Error> {
    Ok(match (opt.value_type(), v) {
        (OptType::Bool, v @ (OptVal::Bool(_) | OptVal::Int(_))) => v,
        (OptType::Int, v @ OptVal::Int(_)) => v,
        (OptType::Secs, OptVal::Int(n)) => OptVal::Secs(n as f64),
        (OptType::Secs, v @ OptVal::Secs(_)) => v,
        (OptType::Linger, v @ (OptVal::Bool(false) | OptVal::Int(_) | OptVal::Secs(_))) => v,
        (OptType::Addr | OptType::Group | OptType::Group6, v @ OptVal::Str(_)) => v,
        // (A Name option is read-only: refused before its value is looked at.)
        (_, v) => return Err(opt.bad_value(&v)),
    })
}

/// `R.socket(type, family, protocol)`: makes a socket in this state's loop.
fn new_socket(
    lua: &Lua,
    (ty, family, protocol): (String, LuaValue, LuaValue),
) -> LuaResult<LuaMultiValue> {
    let func: &'static str = match ty.as_str() {
        "tcp" => "sock.tcp",
        "udp" => "sock.udp",
        _ => "sock.raw",
    };
    let family = addr::family_arg(&family, Arg::new(func, 1, "family"))?.unwrap_or(Family::Inet);
    let protocol: Option<Protocol> = addr::protocol_arg(&protocol, Arg::new(func, 2, "protocol"))?;
    let lp = crate::state::lp(lua)?;
    let made = lp.enter(|| -> sock::Result<Kind> {
        Ok(match ty.as_str() {
            "tcp" => Kind::Tcp(Tcp::with_protocol(family, protocol)?),
            "udp" => Kind::Udp(Udp::with_protocol(family, protocol)?),
            _ => Kind::Raw(Raw::with_protocol(family, protocol)?),
        })
    });
    match made {
        Ok(k) => LSock::new_userdata(lua, &table(lua)?, k)?.into_lua_multi(lua),
        Err(e) => fail(lua, &e),
    }
}

/// Adds the socket primitives to `R`.
/// `R.not_in_thread(pending)`: the values of a blocking call made outside a
/// sock thread, `nil, 'not_in_thread', 0, msg` (and the bytes moved, for the
/// pending `sendall`/`recvall` when `pending` is true: it is dropped).
fn not_in_thread(lua: &Lua, pending: bool) -> LuaResult<LuaMultiValue> {
    let e = sock::Error::new(sock::ErrorKind::NotInThread);
    match pending
        .then(|| table(lua))
        .transpose()?
        .and_then(|t| t.take_pending())
    {
        Some(p) => op::values_of_error(lua, &p.op().fail(e), p.op().moves_all()),
        None => fail(lua, &e),
    }
}

/// Adds the socket primitives to `R`: `R.socket`, the handle table
/// (`R.sockets`), the pending mark (`R.PENDING`), `R.not_in_thread`,
/// `R.closed()` (the result of a call on a closed socket) and the fast path
/// (`R.fast`, `R.failed`, `R.address`).
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    if lua.app_data_ref::<Rc<Table>>().is_none() {
        lua.set_app_data(Rc::new(Table::new()));
    }
    let t = table(lua)?;
    r.set("sockets", LuaLightUserData(Rc::as_ptr(&t) as *mut _))?;
    r.set("PENDING", op::pending_mark())?;
    r.set("socket", lua.create_function(new_socket)?)?;
    r.set("not_in_thread", lua.create_function(not_in_thread)?)?;
    r.set("closed", lua.create_function(|lua, ()| closed_values(lua))?)?;
    let tk = Rc::clone(&t);
    r.set(
        "take_accepted",
        lua.create_function(move |lua, (h, remote): (f64, bool)| {
            tk.take_accepted(lua, h as u64, remote)
        })?,
    )?;
    r.set(
        "read_buffers",
        lua.create_function(|_, ()| Ok(sock::read_buffers()))?,
    )?;
    register_buffer_calls(lua, r)?;
    tls::register(lua, r)?;
    fast::register(lua, r)
}

/// The calls that take a buffer as an address (`buf_arg`: a number is an
/// address the Lua layer computed from pointer cdata it checked): functions
/// of `R`, which only the module's own Lua code holds, never methods of the
/// socket userdata, which every socket object carries (`_s`): no Lua
/// program can hand them an address.
fn register_buffer_calls(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    r.set(
        "sendto",
        lua.create_function(
            |lua,
             (ud, host, port, buf, len, af): (
                LuaAnyUserData,
                LuaValue,
                LuaValue,
                LuaValue,
                usize,
                LuaValue,
            )| {
                let s = ud.borrow::<LSock>()?;
                let s = live!(lua, &*s);
                let b = buf_arg(&buf, len, false, Arg::new("udp:sendto", 4, "buf"))?;
                let flags = sock::AddrFlags::empty();
                let a = match resolve(lua, s, "udp:sendto", 2, &(host, port, af), flags)? {
                    Ok(a) => a,
                    Err(failed) => return Ok(failed),
                };
                let sa = match sock::ToAddr::to_addr(&a, &s.hints(flags)) {
                    Ok(list) => list.first().addr().clone(),
                    Err(e) => return fail(lua, &e),
                };
                datagram!(s, "udp:sendto", _x => ());
                s.call(lua, LuaOp::SendTo(Box::new(sa), b.raw()))
            },
        )?,
    )?;
    r.set(
        "read_until",
        lua.create_function(
            |lua,
             (ud, delim, max, keep, buf, len): (
                LuaAnyUserData,
                Option<LuaString>,
                usize,
                bool,
                LuaValue,
                Option<usize>,
            )| {
                let s = ud.borrow::<LSock>()?;
                let s = live!(lua, &*s);
                let delim = match delim {
                    None => op::Delim::Line,
                    Some(d) => op::Delim::Bytes(d.as_bytes().to_vec().into_boxed_slice()),
                };
                let into = match (&buf, len) {
                    (LuaValue::Nil, _) => None,
                    (b, Some(len)) => {
                        Some(buf_arg(b, len, true, Arg::new("s:readline", 2, "buf"))?.raw())
                    }
                    (_, None) => {
                        return Err(Arg::new("s:readline", 3, "len").error("number expected"))
                    }
                };
                s.call(
                    lua,
                    LuaOp::ReadUntil {
                        delim,
                        max,
                        keep,
                        into,
                    },
                )
            },
        )?,
    )?;
    r.set(
        "recvnext",
        lua.create_function(|lua, (ud, buf, len): (LuaAnyUserData, LuaValue, usize)| {
            let s = ud.borrow::<LSock>()?;
            let s = live!(lua, &*s);
            let b = buf_arg(&buf, len, true, Arg::new("udp:recvnext", 2, "buf"))?;
            datagram!(s, "udp:recvnext", _x => ());
            s.call(lua, LuaOp::RecvNext(b.raw()))
        })?,
    )
}
