//! Sockets: the primitives under `tcp`, `udp` and `raw` objects.
//!
//! The userdata [`LSock`] owns a core socket. Its methods are the non-blocking
//! halves of the seed's calls: each makes one attempt and returns the result,
//! `false` if it would block, or `nil, err, code, msg` on failure. The Lua
//! layer (`lua/sock.lua`) checks the arguments it can check cheaply (buffers
//! against `ffi.sizeof`), loops, and yields to wait.
//!
//! Buffers come as a Lua string (sending only), an FFI array (its address is
//! `lua_topointer` of the cdata), or, for pointer cdata, the address as a
//! number that the Lua layer computed: the caller vouches for its length.
//!
//! The hottest attempts, `send` and `recv`, are not methods: the Lua layer
//! makes them through the FFI fast path (`fast.rs`), on the socket's handle
//! (which `R.socket` and `try_accept` return with the userdata).

use mlua::prelude::*;

use sock::{
    Direction, Family, Opt, OptType, OptVal, Protocol, Raw, Shutdown, SocketType, Tcp, Udp,
};

use crate::addr::{self, Addr};
use crate::error::{fail, fail_with, Arg};

/// The core socket of a `tcp`, `udp` or `raw` object.
pub(crate) enum Kind {
    /// A TCP (or Unix stream) socket.
    Tcp(Tcp),
    /// A UDP (or Unix datagram) socket.
    Udp(Udp),
    /// A raw socket.
    Raw(Raw),
}

/// The socket userdata (`__name` "sock.socket").
///
/// The Lua layer also reaches it through the FFI fast path (`fast.rs`), by its
/// handle: the value's address is registered in the handle table once it is in
/// its userdata ([`LSock::new_userdata`]) and removed when it is dropped, so
/// the value is never moved out of its userdata (no `take`), and every method
/// takes `&self`.
pub(crate) struct LSock {
    kind: Kind,
    /// The fast-path handle (0 until registered).
    handle: std::cell::Cell<u64>,
}

impl Drop for LSock {
    fn drop(&mut self) {
        if self.handle.get() != 0 {
            crate::fast::unregister(self.handle.get());
        }
    }
}

/// Calls a method of the socket, whatever its kind.
macro_rules! any {
    ($s:expr, $x:ident => $e:expr) => {
        match &$s.kind {
            Kind::Tcp($x) => $e,
            Kind::Udp($x) => $e,
            Kind::Raw($x) => $e,
        }
    };
}

/// Calls a datagram method, or raises for a TCP socket.
macro_rules! datagram {
    ($s:expr, $func:literal, $x:ident => $e:expr) => {
        match &$s.kind {
            Kind::Udp($x) => $e,
            Kind::Raw($x) => $e,
            Kind::Tcp(_) => return Err(Arg::new($func, 1, "self").error("not a datagram socket")),
        }
    };
}

impl LSock {
    /// The wait of the blocking calls on this socket.
    pub(crate) fn wait(&self, dir: Direction, expires: Option<f64>) -> sock::Wait {
        any!(self, s => s.wait(dir, expires))
    }

    fn tcp(&self, func: &'static str) -> LuaResult<&Tcp> {
        match &self.kind {
            Kind::Tcp(t) => Ok(t),
            _ => Err(Arg::new(func, 1, "self").error("not a TCP socket")),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        any!(self, s => s.is_closed())
    }

    /// Makes the userdata of a socket and registers it with the fast path:
    /// the userdata and its handle (a number, see `fast.rs`).
    pub(crate) fn new_userdata(lua: &Lua, kind: Kind) -> LuaResult<(LuaAnyUserData, f64)> {
        let ud = lua.create_userdata(LSock {
            kind,
            handle: std::cell::Cell::new(0),
        })?;
        let s = ud.borrow::<LSock>()?;
        // Its final address: mlua never moves a userdata's value (and this
        // module never takes it out).
        let h = crate::fast::register(&*s);
        s.handle.set(h);
        drop(s);
        Ok((ud, h as f64))
    }

    /// One non-blocking send (the fast path's attempt).
    pub(crate) fn try_send(&self, buf: &[u8]) -> sock::Result<Option<usize>> {
        any!(self, s => s.try_send(buf))
    }

    /// One non-blocking receive (the fast path's attempt).
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> sock::Result<Option<usize>> {
        any!(self, s => s.try_recv(buf))
    }

    /// Raises for a socket used after `close()`.
    fn live(&self, func: &'static str) -> LuaResult<&Self> {
        match self.is_closed() {
            true => Err(Arg::new(func, 1, "self").error("socket is closed")),
            false => Ok(self),
        }
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
    /// The bytes to send.
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the pointer is a Lua string's bytes or the payload of an FFI
        // cdata (or an address the Lua layer computed from pointer cdata, which
        // the caller vouches for), alive on the calling Lua stack for this call;
        // the Lua layer checked `len` against the string's length or
        // `ffi.sizeof` of the array.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes to receive into.
    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as for `bytes`; strings are refused for receiving, so the
        // memory is an FFI buffer Lua code owns and may be written; nothing
        // else reads or writes it during this call.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) }
    }
}

/// `n`, `false` (would block), or the failure.
fn progress<T: IntoLuaMulti>(lua: &Lua, r: sock::Result<Option<T>>) -> LuaResult<LuaMultiValue> {
    match r {
        Ok(Some(v)) => v.into_lua_multi(lua),
        Ok(None) => false.into_lua_multi(lua),
        Err(e) if e.kind() == sock::ErrorKind::MessageTooBig && e.done() > 0 => {
            fail_with(lua, &e, e.done())
        }
        Err(e) => fail(lua, &e),
    }
}

/// Resolves `host, port` (or an ai/sa) with the socket's hints.
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
        Ok(a) => Ok(Ok(a)),
        Err(e) => Ok(Err(fail(lua, &e)?)),
    }
}

impl LuaUserData for LSock {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.socket");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        // `cached`: the local address this listener's last accept returned;
        // it is returned again when it is the same (a listener on one address
        // reports one local address: no new object per connection).
        m.add_method("try_accept", |lua, s, cached: LuaValue| {
            let t = s.live("tcp:accept")?.tcp("tcp:accept")?;
            match t.try_accept() {
                Ok(Some((conn, remote, local))) => {
                    // The new socket's fast-path handle comes along.
                    let (ud, h) = LSock::new_userdata(lua, Kind::Tcp(conn))?;
                    let local = addr::reuse_sa(lua, cached, local)?;
                    (ud, addr::new_sa(lua, remote)?, local, h).into_lua_multi(lua)
                }
                Ok(None) => false.into_lua_multi(lua),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("try_connect", |lua, s, ud: LuaAnyUserData| {
            let t = s.live("tcp:connect")?.tcp("tcp:connect")?;
            let arg = Arg::new("tcp:connect", 2, "addr");
            let sa = match addr::ai_ref(&ud, arg)? {
                Some(ai) => ai.info().addr().clone(),
                None => addr::sockaddr(&ud)
                    .ok_or_else(|| arg.type_error("ai or sa", &LuaValue::UserData(ud.clone())))?,
            };
            match t.try_connect(&sa) {
                Ok(done) => done.into_lua_multi(lua),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method(
            "resolve",
            |lua, s, (host, port, af): (LuaValue, LuaValue, LuaValue)| {
                let s = s.live("tcp:connect")?;
                // An ai or sa given in place of the host is used as it is.
                let given = host.clone();
                match resolve(
                    lua,
                    s,
                    "tcp:connect",
                    2,
                    &(host, port, af),
                    sock::AddrFlags::empty(),
                )? {
                    Ok(Addr::List(list)) => addr::new_ai(lua, list)?.into_lua_multi(lua),
                    Ok(_) => given.into_lua_multi(lua),
                    Err(failed) => Ok(failed),
                }
            },
        );
        m.add_method(
            "try_sendto",
            |lua, s, (host, port, buf, len, af): (LuaValue, LuaValue, LuaValue, usize, LuaValue)| {
                let s = s.live("udp:sendto")?;
                let b = buf_arg(&buf, len, false, Arg::new("udp:sendto", 4, "buf"))?;
                let a = match resolve(
                    lua,
                    s,
                    "udp:sendto",
                    2,
                    &(host, port, af),
                    sock::AddrFlags::empty(),
                )? {
                    Ok(a) => a,
                    Err(failed) => return Ok(failed),
                };
                let sa = match sock::ToAddr::to_addr(&a, &s.hints(sock::AddrFlags::empty())) {
                    Ok(list) => list.first().addr().clone(),
                    Err(e) => return fail(lua, &e),
                };
                progress(
                    lua,
                    datagram!(s, "udp:sendto", x => x.try_sendto(&sa, b.bytes())),
                )
            },
        );
        m.add_method("try_recvnext", |lua, s, (buf, len): (LuaValue, usize)| {
            let s = s.live("udp:recvnext")?;
            let mut b = buf_arg(&buf, len, true, Arg::new("udp:recvnext", 2, "buf"))?;
            match datagram!(s, "udp:recvnext", x => x.try_recvnext(b.bytes_mut())) {
                Ok(Some((n, from))) => (n, addr::new_sa(lua, from)?).into_lua_multi(lua),
                other => progress(lua, other.map(|o| o.map(|(n, _)| n))),
            }
        });
        m.add_method(
            "connect_datagram",
            |lua, s, (host, port, af): (LuaValue, LuaValue, LuaValue)| {
                let s = s.live("udp:connect")?;
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
                let s = s.live("s:bind")?;
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
                let t = s.live("tcp:listen")?.tcp("tcp:listen")?;
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
            let t = s.live("tcp:shutdown")?.tcp("tcp:shutdown")?;
            let arg = Arg::new("tcp:shutdown", 2, "how");
            let how: Shutdown = match &how {
                LuaValue::Nil => Shutdown::Both,
                LuaValue::String(h) => match h.to_str()?.parse() {
                    Ok(h) => h,
                    Err(_) => return Err(arg.error("'r', 'w' or 'rw' expected")),
                },
                other => return Err(arg.type_error("'r', 'w' or 'rw'", other)),
            };
            crate::error::ret(lua, t.shutdown(how).map(|()| true))
        });
        m.add_method("setopt", |lua, s, (name, val): (LuaValue, LuaValue)| {
            let s = s.live("s:setopt")?;
            let opt_arg = Arg::new("s:setopt", 2, "opt");
            let val_arg = Arg::new("s:setopt", 3, "value");
            let name = opt_name(&name, opt_arg)?;
            let v = lua_optval(&val, val_arg)?;
            let opt = find_opt(&name, opt_arg)?;
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
            let s = s.live("s:getopt")?;
            let opt_arg = Arg::new("s:getopt", 2, "opt");
            let name = opt_name(&name, opt_arg)?;
            let opt = find_opt(&name, opt_arg)?;
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
            any!(s, x => x.close());
            Ok(true)
        });
        m.add_method("closed", |_, s, ()| Ok(s.is_closed()));
        m.add_method("type", |_, s, ()| Ok(s.socket_type().name()));
        m.add_method("family", |_, s, ()| Ok(s.family().name()));
        m.add_method("protocol", |_, s, ()| Ok(any!(s, x => x.protocol()).name()));
        m.add_method("local_addr", |lua, s, ()| {
            let s = s.live("s:getsockname")?;
            match any!(s, x => x.local_addr()) {
                Ok(sa) => addr::new_sa(lua, sa)?.into_lua_multi(lua),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("peer_addr", |lua, s, ()| {
            let s = s.live("s:getpeername")?;
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
fn find_opt(name: &str, arg: Arg) -> LuaResult<Opt> {
    Opt::find(name).ok_or_else(|| arg.error(sock::opt::unknown_option(name).message()))
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
    let lp = crate::sched::lp(lua)?;
    let made = lp.enter(|| -> sock::Result<Kind> {
        Ok(match ty.as_str() {
            "tcp" => Kind::Tcp(Tcp::with_protocol(family, protocol)?),
            "udp" => Kind::Udp(Udp::with_protocol(family, protocol)?),
            _ => Kind::Raw(Raw::with_protocol(family, protocol)?),
        })
    });
    match made {
        Ok(k) => LSock::new_userdata(lua, k)?.into_lua_multi(lua),
        Err(e) => fail(lua, &e),
    }
}

/// Adds the socket primitives to `R`.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    r.set("socket", lua.create_function(new_socket)?)?;
    Ok(())
}
