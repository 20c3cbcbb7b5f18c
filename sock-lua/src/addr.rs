//! Address lookup: `sock.addr(...)` and the `ai`, `sa` and `ip` objects.
//!
//! | Lua | here |
//! | --- | --- |
//! | `sock.addr(host, port, [socket_type], [family], [protocol], [flags]) -> ai` | `R.addr` ([`sock::addr_with`]) |
//! | `sock.addr(ai) -> ai` | the same object, passed through |
//! | `ai:free()`, `ai:next()`, `ai:addrs()`, `ai:type()`, `ai:family()`, `ai:protocol()`, `ai:name()`, `ai:tostring()`, `ai.addr` | [`Ai`] |
//! | `sa:family()`, `sa:port()`, `sa:tostring()`, `sa:addr()` | [`Sa`] |
//! | `ip:tobinary()`, `ip:tostring()` | [`Ip`]; the cdata is made by `lua/addr.lua` |
//!
//! Arguments of `sock.addr`:
//!
//! * `host`: a host name, a numeric IPv4/IPv6 address, `'*'` (all interfaces),
//!   or with family `'unix'` a socket path. An `ai` is passed through (the same
//!   object); an `sa` gives a one-entry `ai` (an extension of the seed).
//! * `port`: a number 0-65535, a service name or numeric string, or nil (0).
//! * `socket_type`: `'tcp'`, `'udp'`, `'raw'`, or 0/nil for all.
//! * `family`: `'inet'`, `'inet6'`, `'unix'`, or 0/nil for all.
//! * `protocol`: `'ip'`, `'ipv6'`, `'tcp'`, `'udp'`, `'raw'`, `'icmp'`, `'igmp'`,
//!   `'icmpv6'`, or 0/nil for the default of the socket type.
//! * `flags`: the resolver flags in any form the original's `glue.bor()` took: a
//!   string of names separated by spaces (or commas), a list
//!   `{'passive', 'numerichost'}`, a set `{passive = true}` (or both in one
//!   table), or 0/nil for none. Names: `passive`, `cannonname` (the seed's
//!   spelling) or `canonname`, `numerichost`, `numericserv`, `all`, `v4mapped`,
//!   `addrconfig`.
//!
//! A failed lookup returns `nil, err, code, msg` (see `error.rs`): `err` is the
//! normalized name (`'host_not_found'`, `'service_not_found'`, ...), `code` the
//! resolver's `EAI_*` code, `msg` the resolver's text and what was looked up.
//! Arguments of a wrong type, names that are not in the lists above and ports
//! out of range are programmer errors and raise.
//!
//! All the `ai` objects of one lookup share its list: `ai:free()` on any of them
//! frees it (idempotent), and any later use of one of them (a method, `ai.addr`,
//! passing it where an address is expected) raises. `tostring(ai)` still works and
//! says `freed`. The GC frees lists that nobody frees.
//!
//! For the rest of the binding (sockets): [`ai_ref`] and [`sockaddr`] take the
//! resolved address out of an `ai` / `sa` userdata, [`new_ai`] and [`new_sa`] make
//! them, [`resolve`] turns `host, port` arguments (or an `ai` / `sa`) into an
//! address, and [`socket_type_arg`], [`family_arg`], [`protocol_arg`],
//! [`flags_arg`] parse the names.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use mlua::prelude::*;
use sock::{
    AddrFlags, AddrInfo, AddrList, Family, Hints, Port, Protocol, SockAddr, SocketType, ToAddr,
};

use crate::error::{self, Arg};

/// Adds the address primitives to `R`:
///
/// * `R.addr(...)`: `sock.addr` itself;
/// * `R.sa_of_peer(bytes)`, `R.PEER_MAX`: the `sa` of an accepted
///   connection's remote address, which the Lua layer keeps as bytes until a
///   method needs it ([`peer_bytes`]);
/// * `R.set_tobinary(f)`: sets the function `ip:tobinary()` passes the address
///   bytes (a string) to; its results are `ip:tobinary()`'s (`lua/addr.lua` makes
///   a `uint8_t[n]` cdata and its length).
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    r.set("addr", lua.create_function(addr)?)?;
    r.set("LOOKUP", lookup_mark())?;
    r.set("sa_of_peer", lua.create_function(sa_of_peer)?)?;
    r.set("PEER_MAX", PEER_MAX)?;
    r.set(
        "set_tobinary",
        lua.create_function(|lua, f: LuaValue| {
            let LuaValue::Function(f) = f else {
                return Err(Arg::new("R.set_tobinary", 1, "f").type_error("function", &f));
            };
            let key = lua.create_registry_value(f)?;
            lua.set_app_data(AddrState { tobinary: key });
            Ok(())
        })?,
    )?;
    Ok(())
}

/// Per-Lua-state data of this part (in the state's app data).
struct AddrState {
    /// The function that turns the address bytes (a string) into the results of
    /// `ip:tobinary()`; set by `lua/addr.lua`.
    tobinary: LuaRegistryKey,
}

/// `sock.addr(host, port, [socket_type], [family], [protocol], [flags])`, or
/// `sock.addr(ai)`.
fn addr(lua: &Lua, args: LuaMultiValue) -> LuaResult<LuaMultiValue> {
    const F: &str = "sock.addr";
    let arg = |i: usize| args.get(i).cloned().unwrap_or(LuaValue::Nil);
    // No host and no port: any address, port 0 (as the original took it).
    let host = match (arg(0), arg(1)) {
        (LuaValue::Nil, LuaValue::Nil) => LuaValue::String(lua.create_string("*")?),
        (host, _) => host,
    };
    // An ai is passed through as is (after checking it was not freed).
    if let LuaValue::UserData(ud) = &host {
        if ai_ref(ud, Arg::new(F, 1, "host"))?.is_some() {
            return host.into_lua_multi(lua);
        }
    }
    let hints = Hints {
        socket_type: socket_type_arg(&arg(2), Arg::new(F, 3, "socket_type"))?,
        family: family_arg(&arg(3), Arg::new(F, 4, "family"))?,
        protocol: protocol_arg(&arg(4), Arg::new(F, 5, "protocol"))?,
        flags: flags_arg(&arg(5), Arg::new(F, 6, "flags"))?,
    };
    let found = resolve(
        &host,
        Arg::new(F, 1, "host"),
        &arg(1),
        Arg::new(F, 2, "port"),
        &hints,
    )?;
    match found {
        Ok(Addr::Lookup(lk)) => deferred(lua, lk),
        Ok(Addr::Ai(_)) => host.into_lua_multi(lua), // (already returned above)
        Ok(Addr::Sa(sa)) => {
            let socket_type = hints.socket_type.unwrap_or(SocketType::Tcp);
            new_ai(lua, AddrList::from_sockaddr(sa, socket_type))?.into_lua_multi(lua)
        }
        Ok(Addr::List(list)) => lookup_values(lua, Ok(list)),
        Err(e) => lookup_values(lua, Err(e)),
    }
}

/// An address given as Lua arguments: what [`resolve`] returns. Every form is a
/// [`ToAddr`], so it can be passed to the core's socket calls as is.
#[derive(Clone, Debug)]
pub(crate) enum Addr {
    /// An `ai` object (already resolved).
    Ai(AiRef),
    /// An `sa` object.
    Sa(SockAddr),
    /// The result of looking up a host and a port.
    List(AddrList),
    /// A lookup still to make (a host name, see [`resolve`]): a sock thread
    /// makes it off the loop (`sched.rs`); as a [`ToAddr`] it is the
    /// blocking lookup.
    Lookup(Lookup),
}

/// A host name and a port to look up, with the hints.
#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    pub(crate) host: String,
    pub(crate) service: String,
    pub(crate) hints: Hints,
}

impl Lookup {
    /// The blocking lookup.
    pub(crate) fn run(&self) -> sock::Result<AddrList> {
        sock::addr_with(&self.host, self.service.as_str(), &self.hints)
    }
}

/// The userdata of a lookup that a sock thread makes off the loop: what a
/// call returns, after the mark `R.LOOKUP`, when the host needs the
/// resolver; `lua/addr.lua` then yields it to the scheduler (inside a sock
/// thread) or makes it at once (`lk:blocking()`).
pub(crate) struct LLookup {
    lookup: std::cell::RefCell<Option<Lookup>>,
    /// Set by `lk:cancel()` (the socket it is for was closed).
    cancel: std::rc::Rc<Cancel>,
}

/// The cancel of a lookup in flight: a flag and the waker of the thread
/// that waits for it.
#[derive(Default)]
pub(crate) struct Cancel {
    flag: std::cell::Cell<bool>,
    waker: std::cell::RefCell<Option<std::task::Waker>>,
}

impl LLookup {
    /// The lookup (once) and its cancel, for the scheduler.
    pub(crate) fn take(&self) -> Option<(Lookup, std::rc::Rc<Cancel>)> {
        let lk = self.lookup.borrow_mut().take()?;
        Some((lk, std::rc::Rc::clone(&self.cancel)))
    }
}

/// `lookup` under `cancel`: the `closed` error as soon as it is cancelled.
pub(crate) async fn cancellable(
    lookup: Lookup,
    cancel: std::rc::Rc<Cancel>,
    expires: Option<f64>,
) -> sock::Result<AddrList> {
    let resolve = sock::resolve(
        &lookup.host,
        lookup.service.as_str(),
        &lookup.hints,
        expires,
    );
    let mut resolve = std::pin::pin!(resolve);
    std::future::poll_fn(|cx| {
        if cancel.flag.get() {
            return std::task::Poll::Ready(Err(sock::Error::with_message(
                sock::ErrorKind::Closed,
                "the socket was closed during its name lookup",
            )));
        }
        *cancel.waker.borrow_mut() = Some(cx.waker().clone());
        std::future::Future::poll(resolve.as_mut(), cx)
    })
    .await
}

impl LuaUserData for LLookup {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("blocking", |lua, l, ()| {
            match l.lookup.borrow_mut().take() {
                Some(lk) => lookup_values(lua, lk.run()),
                None => Err(mlua::Error::runtime("sock: lookup already made")),
            }
        });
        // Ends the wait for the lookup with `closed` (its socket was closed).
        m.add_method("cancel", |_, l, ()| {
            l.cancel.flag.set(true);
            if let Some(w) = l.cancel.waker.borrow_mut().take() {
                w.wake();
            }
            Ok(())
        });
    }
}

/// The values of a lookup's result: an ai, or `nil, err, code, msg`.
pub(crate) fn lookup_values(lua: &Lua, r: sock::Result<AddrList>) -> LuaResult<LuaMultiValue> {
    match r {
        Ok(list) => new_ai(lua, list)?.into_lua_multi(lua),
        Err(e) => error::fail(lua, &e),
    }
}

/// The mark before an [`LLookup`] in a call's results (and in the yield that
/// hands it to the scheduler).
pub(crate) fn lookup_mark() -> LuaLightUserData {
    static MARK: u8 = 0;
    LuaLightUserData(&MARK as *const u8 as *mut _)
}

/// `R.LOOKUP, lk` for a deferred lookup.
pub(crate) fn deferred(lua: &Lua, lk: Lookup) -> LuaResult<LuaMultiValue> {
    let lk = LLookup {
        lookup: std::cell::RefCell::new(Some(lk)),
        cancel: Default::default(),
    };
    (lookup_mark(), lk).into_lua_multi(lua)
}

impl ToAddr for Addr {
    fn to_addr(&self, hints: &Hints) -> sock::Result<Cow<'_, AddrList>> {
        match self {
            Addr::Ai(ai) => ai.to_addr(hints),
            Addr::Sa(sa) => sa.to_addr(hints),
            Addr::List(list) => list.to_addr(hints),
            Addr::Lookup(lk) => lk.run().map(Cow::Owned),
        }
    }

    fn sockaddr(&self) -> Option<&SockAddr> {
        match self {
            Addr::Ai(ai) => ai.sockaddr(),
            Addr::Sa(sa) => Some(sa),
            Addr::List(list) => list.sockaddr(),
            Addr::Lookup(_) => None,
        }
    }
}

/// Turns the `host, port` arguments of a function into an address: an `ai` or
/// `sa` object in place of `host` is taken as is (`port` is then ignored);
/// otherwise `host` (a string) and `port` (a number, a service name, or nil for
/// 0) are looked up with `hints` ([`sock::addr_with`]) when no resolver is
/// needed (numeric hosts, `'*'`); a host name is not looked up here: the
/// result is [`Addr::Lookup`], for a sock thread to make off the loop.
///
/// The outer error is a programmer error to raise (a wrong type, a freed ai, a
/// port out of range); the inner one is the lookup's runtime failure (return it
/// with [`error::fail`]).
pub(crate) fn resolve(
    host: &LuaValue,
    host_arg: Arg,
    port: &LuaValue,
    port_arg: Arg,
    hints: &Hints,
) -> LuaResult<sock::Result<Addr>> {
    const EXPECTED: &str = "string, ai or sa";
    let host = match host {
        LuaValue::String(s) => s,
        LuaValue::UserData(ud) => {
            if let Some(ai) = ai_ref(ud, host_arg)? {
                return Ok(Ok(Addr::Ai(ai)));
            }
            if let Some(sa) = sockaddr(ud) {
                return Ok(Ok(Addr::Sa(sa)));
            }
            return Err(host_arg.type_error(EXPECTED, host));
        }
        _ => return Err(host_arg.type_error(EXPECTED, host)),
    };
    let host = host
        .to_str()
        .map_err(|_| host_arg.error("not valid UTF-8"))?;
    let service = match port {
        LuaValue::Nil => 0u16.to_service().into_owned(),
        LuaValue::Integer(_) | LuaValue::Number(_) => {
            port_number(port, port_arg)?.to_service().into_owned()
        }
        LuaValue::String(s) => {
            let s = s.to_str().map_err(|_| port_arg.error("not valid UTF-8"))?;
            s.to_service().into_owned()
        }
        _ => return Err(port_arg.type_error("number or string", port)),
    };
    if sock::needs_resolver(&host, service.as_str(), hints) {
        return Ok(Ok(Addr::Lookup(Lookup {
            host: host.to_owned(),
            service,
            hints: hints.clone(),
        })));
    }
    Ok(sock::addr_with(&host, service.as_str(), hints).map(Addr::List))
}

/// A port number: an integer 0-65535.
fn port_number(v: &LuaValue, arg: Arg) -> LuaResult<u16> {
    let n = match *v {
        LuaValue::Integer(i) => i as f64,
        LuaValue::Number(n) => n,
        _ => return Err(arg.type_error("number or string", v)),
    };
    if n.fract() != 0.0 || !(0.0..=65535.0).contains(&n) {
        return Err(arg.error(format_args!("port {n} not an integer in 0-65535")));
    }
    Ok(n as u16)
}

/// Whether `v` means "none" for an optional name: nil, or the seed's 0.
fn is_none(v: &LuaValue) -> bool {
    match *v {
        LuaValue::Nil => true,
        LuaValue::Integer(i) => i == 0,
        LuaValue::Number(n) => n == 0.0,
        _ => false,
    }
}

/// An optional name among `T`'s: nil or 0 is `None`, a valid name (ASCII
/// case-insensitive) is `Some`, anything else raises, naming the valid values.
fn name_arg<T: std::str::FromStr<Err = sock::Error>>(
    v: &LuaValue,
    arg: Arg,
    names: &[&str],
) -> LuaResult<Option<T>> {
    if is_none(v) {
        return Ok(None);
    }
    let expected = || {
        let names: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        format!("{} or 0", names.join(", "))
    };
    let LuaValue::String(s) = v else {
        return Err(arg.type_error(&expected(), v));
    };
    let s = s.to_string_lossy();
    s.parse()
        .map(Some)
        .map_err(|_| arg.error(format_args!("'{s}' is not one of {}", expected())))
}

/// A socket type argument: `'tcp'`, `'udp'`, `'raw'`, or nil/0 (`None`, all).
/// Anything else raises.
pub(crate) fn socket_type_arg(v: &LuaValue, arg: Arg) -> LuaResult<Option<SocketType>> {
    let names: Vec<&str> = SocketType::ALL.iter().map(|t| t.name()).collect();
    name_arg(v, arg, &names)
}

/// A family argument: `'inet'`, `'inet6'`, `'unix'`, or nil/0 (`None`, all).
/// Anything else raises.
pub(crate) fn family_arg(v: &LuaValue, arg: Arg) -> LuaResult<Option<Family>> {
    let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
    name_arg(v, arg, &names)
}

/// A protocol argument: `'ip'`, `'ipv6'`, `'tcp'`, `'udp'`, `'raw'`, `'icmp'`,
/// `'igmp'`, `'icmpv6'`, or nil/0 (`None`, the default). Anything else raises.
pub(crate) fn protocol_arg(v: &LuaValue, arg: Arg) -> LuaResult<Option<Protocol>> {
    let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
    name_arg(v, arg, &names)
}

/// A resolver flags argument, in the forms of the original's `glue.bor()`: a
/// string of names separated by spaces or commas, a table whose array part lists
/// names and/or whose string keys are names with a true value
/// (`{'passive', numerichost = true}`), or nil/0 for none. An unknown name or a
/// value of another type raises.
pub(crate) fn flags_arg(v: &LuaValue, arg: Arg) -> LuaResult<AddrFlags> {
    let parse = |s: &LuaString| {
        let s = s.to_string_lossy();
        AddrFlags::from_names(&s).map_err(|e| arg.error(e.message()))
    };
    match v {
        _ if is_none(v) => Ok(AddrFlags::empty()),
        LuaValue::String(s) => parse(s),
        // The OS's AI_* bits OR-ed, as the original's glue.bor() made them.
        LuaValue::Integer(n) => raw_flags(*n as f64, arg),
        LuaValue::Number(n) => raw_flags(*n, arg),
        LuaValue::Table(t) => {
            let mut flags = AddrFlags::empty();
            for pair in t.pairs::<LuaValue, LuaValue>() {
                let (k, val) = pair?;
                let name = match (&k, &val) {
                    // {'passive', ...}: a list of names.
                    (LuaValue::Integer(_) | LuaValue::Number(_), LuaValue::String(s)) => s,
                    // {passive = true}: a set of names.
                    (LuaValue::String(s), LuaValue::Boolean(on)) => match on {
                        true => s,
                        false => continue,
                    },
                    _ => {
                        return Err(arg.error(format_args!(
                            "flags table entries are names (list) or name = boolean (set), \
                             got [{}] = {}",
                            error::type_name(&k),
                            error::type_name(&val)
                        )))
                    }
                };
                flags |= parse(name)?;
            }
            Ok(flags)
        }
        _ => Err(arg.type_error("string, table or number", v)),
    }
}

/// Address flags given as a number: the OS's `AI_*` bits.
fn raw_flags(n: f64, arg: Arg) -> LuaResult<AddrFlags> {
    if !(n >= 0.0 && n <= f64::from(i32::MAX) && n.fract() == 0.0) {
        return Err(arg.error(format_args!("{n} is not a set of AI_* bits")));
    }
    AddrFlags::from_raw(n as i32).map_err(|e| arg.error(e.message()))
}

/// A lookup result shared by all the `ai` objects of one lookup: `None` once
/// freed.
#[derive(Debug)]
struct Shared(RefCell<Option<Rc<AddrList>>>);

/// `ai`: one entry of an address list (the list from this entry on, for
/// `ai:addrs()`). Cheap: the list is shared, `ai:next()` makes an object with
/// the next index.
#[derive(Debug)]
pub(crate) struct Ai {
    shared: Rc<Shared>,
    index: usize,
}

impl Ai {
    /// The list and this entry, or the programmer error of using a freed list.
    fn live(&self, arg: Arg) -> LuaResult<AiRef> {
        match &*self.shared.0.borrow() {
            Some(list) => Ok(AiRef {
                list: Rc::clone(list),
                index: self.index,
            }),
            None => Err(arg.error("address list freed with ai:free()")),
        }
    }

    /// The `ai` of entry `index` of the same list, or nil past the end.
    fn at(&self, lua: &Lua, list: &AddrList, index: usize) -> LuaResult<LuaValue> {
        if index >= list.len() {
            return Ok(LuaValue::Nil);
        }
        let ai = Ai {
            shared: Rc::clone(&self.shared),
            index,
        };
        Ok(LuaValue::UserData(lua.create_userdata(ai)?))
    }
}

/// `self` of the `ai` method `name` (its argument #1).
const fn self_arg(name: &'static str) -> Arg {
    Arg::new(name, 1, "self")
}

impl LuaUserData for Ai {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.ai");
        fields.add_field_method_get("addr", |lua, this| {
            let ai = this.live(Arg::new("ai.addr", 1, "self"))?;
            new_sa(lua, ai.info().addr().clone())
        });
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("free", |_, this, ()| {
            this.shared.0.borrow_mut().take();
            Ok(())
        });
        methods.add_method("next", |lua, this, ()| {
            let ai = this.live(self_arg("ai:next"))?;
            this.at(lua, &ai.list, ai.index + 1)
        });
        methods.add_method("addrs", |lua, this, ()| {
            this.live(self_arg("ai:addrs"))?;
            let first = Ai {
                shared: Rc::clone(&this.shared),
                index: this.index,
            };
            let next = Cell::new(this.index);
            lua.create_function(move |lua, _: LuaMultiValue| {
                let ai = first.live(self_arg("ai:addrs"))?;
                let i = next.get();
                next.set(i + 1);
                first.at(lua, &ai.list, i)
            })
        });
        methods.add_method("type", |_, this, ()| {
            Ok(this.live(self_arg("ai:type"))?.info().socket_type().name())
        });
        methods.add_method("family", |_, this, ()| {
            Ok(this.live(self_arg("ai:family"))?.info().family().name())
        });
        methods.add_method("protocol", |_, this, ()| {
            Ok(this.live(self_arg("ai:protocol"))?.info().protocol().name())
        });
        methods.add_method("name", |_, this, ()| {
            let ai = this.live(self_arg("ai:name"))?;
            Ok(ai.info().name().map(str::to_owned))
        });
        methods.add_method("tostring", |_, this, ()| {
            Ok(this.live(self_arg("ai:tostring"))?.info().tostring())
        });
        // Not raising for a freed list: `print(ai)` while debugging should work.
        methods.add_meta_method(LuaMetaMethod::ToString, |_, this, ()| Ok(this.to_string()));
    }
}

/// The resolved address an `ai` stands for: its list (shared, still valid after
/// `ai:free()`) and the index of its entry.
#[derive(Clone, Debug)]
pub(crate) struct AiRef {
    list: Rc<AddrList>,
    index: usize,
}

impl AiRef {
    /// The whole list the `ai` belongs to.
    #[allow(dead_code, reason = "for the socket part")]
    pub(crate) fn list(&self) -> &AddrList {
        &self.list
    }

    /// The index of the `ai`'s entry in [`list`](Self::list).
    #[allow(dead_code, reason = "for the socket part")]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The `ai`'s entry.
    pub(crate) fn info(&self) -> &AddrInfo {
        match self.list.get(self.index) {
            Some(info) => info,
            None => unreachable!("an ai's index is always in its list"),
        }
    }
}

/// The first `ai` of a list is the whole list; a later one is its entry alone
/// (the core has no list "from entry i on").
impl ToAddr for AiRef {
    fn to_addr(&self, hints: &Hints) -> sock::Result<Cow<'_, AddrList>> {
        match self.index {
            0 => Ok(Cow::Borrowed(&self.list)),
            _ => self.info().to_addr(hints),
        }
    }

    fn sockaddr(&self) -> Option<&SockAddr> {
        Some(self.info().addr())
    }
}

/// The address of an `ai` userdata: `Ok(None)` if `ud` is not an `ai`; raises
/// (naming `arg`) if its list was freed.
pub(crate) fn ai_ref(ud: &LuaAnyUserData, arg: Arg) -> LuaResult<Option<AiRef>> {
    if !ud.is::<Ai>() {
        return Ok(None);
    }
    let ai = ud.borrow::<Ai>()?;
    ai.live(arg).map(Some)
}

/// Makes the `ai` of the first entry of `list`.
pub(crate) fn new_ai(lua: &Lua, list: AddrList) -> LuaResult<LuaAnyUserData> {
    let ai = Ai {
        shared: Rc::new(Shared(RefCell::new(Some(Rc::new(list))))),
        index: 0,
    };
    lua.create_userdata(ai)
}

/// `sa`: a socket address.
#[derive(Debug)]
pub(crate) struct Sa(SockAddr);

impl LuaUserData for Sa {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.sa");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("family", |_, this, ()| {
            Ok(this.0.try_family().map(Family::name))
        });
        methods.add_method("port", |_, this, ()| Ok(this.0.port()));
        methods.add_method("tostring", |_, this, ()| Ok(this.0.tostring()));
        methods.add_method("addr", |lua, this, ()| match this.0.ip() {
            Some(ip) => Ok(LuaValue::UserData(lua.create_userdata(Ip(ip))?)),
            None => Ok(LuaValue::Nil),
        });
        methods.add_meta_method(LuaMetaMethod::ToString, |_, this, ()| Ok(this.0.tostring()));
        methods.add_meta_method(LuaMetaMethod::Eq, |_, this, other: LuaAnyUserData| {
            Ok(other.borrow::<Sa>().is_ok_and(|o| o.0 == this.0))
        });
    }
}

/// The socket address of an `sa` userdata, or `None` if `ud` is not an `sa`.
pub(crate) fn sockaddr(ud: &LuaAnyUserData) -> Option<SockAddr> {
    ud.borrow::<Sa>().ok().map(|sa| sa.0.clone())
}

/// Makes an `sa`.
pub(crate) fn new_sa(lua: &Lua, sa: SockAddr) -> LuaResult<LuaAnyUserData> {
    lua.create_userdata(Sa(sa))
}

/// The most bytes of a peer address as [`peer_bytes`] writes it (IPv6).
pub(crate) const PEER_MAX: usize = 27;

/// The bytes of an IPv4 or IPv6 address that the Lua layer keeps for an
/// accepted connection's remote address, instead of an `sa` (its *peer*
/// objects, `lua/addr.lua`, make the `sa` only when a method needs it):
/// `4, port (2 bytes, big-endian), ip (4)` or `6, port, ip (16), flowinfo
/// (4, big-endian), scope_id (4, big-endian)`. Their length (7 or 27), or
/// `None` for another address (unix), which the Lua layer gets as an `sa`.
pub(crate) fn peer_bytes(sa: &SockAddr, out: &mut [u8; PEER_MAX]) -> Option<usize> {
    match sa.to_std()? {
        std::net::SocketAddr::V4(a) => {
            out[0] = 4;
            out[1..3].copy_from_slice(&a.port().to_be_bytes());
            out[3..7].copy_from_slice(&a.ip().octets());
            Some(7)
        }
        std::net::SocketAddr::V6(a) => {
            out[0] = 6;
            out[1..3].copy_from_slice(&a.port().to_be_bytes());
            out[3..19].copy_from_slice(&a.ip().octets());
            out[19..23].copy_from_slice(&a.flowinfo().to_be_bytes());
            out[23..27].copy_from_slice(&a.scope_id().to_be_bytes());
            Some(27)
        }
    }
}

/// The address of [`peer_bytes`]'s bytes, or `None` if `b` is not such bytes.
fn from_peer_bytes(b: &[u8]) -> Option<SockAddr> {
    let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let a = match (b.len(), b.first()) {
        (7, Some(4)) => std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::new(b[3], b[4], b[5], b[6]),
            u16::from_be_bytes([b[1], b[2]]),
        )),
        (27, Some(6)) => {
            let ip: [u8; 16] = b[3..19].try_into().ok()?;
            std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
                ip.into(),
                u16::from_be_bytes([b[1], b[2]]),
                be32(19),
                be32(23),
            ))
        }
        _ => return None,
    };
    Some(SockAddr::from(a))
}

/// `R.sa_of_peer(bytes)`: the `sa` of a peer object's bytes
/// ([`peer_bytes`]); raises for other bytes (Lua code may write into a peer
/// object's cdata: its bytes are checked, never trusted).
fn sa_of_peer(lua: &Lua, b: LuaString) -> LuaResult<LuaAnyUserData> {
    match from_peer_bytes(&b.as_bytes()) {
        Some(sa) => new_sa(lua, sa),
        None => Err(Arg::new("sa", 1, "self").error("not a socket address (damaged peer object)")),
    }
}

/// `ip`: an IPv4 or IPv6 address.
#[derive(Debug)]
struct Ip(sock::Ip);

impl LuaUserData for Ip {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.ip");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("tobinary", |lua, this, ()| {
            let bytes = lua.create_string(this.0.tobinary())?;
            // Take the function out before calling it: no app data borrow may
            // be held across a call into Lua.
            let f = match lua.app_data_ref::<AddrState>() {
                Some(state) => Some(lua.registry_value::<LuaFunction>(&state.tobinary)?),
                None => None,
            };
            match f {
                Some(f) => f.call::<LuaMultiValue>(bytes),
                // No FFI copier (not set up): the bytes as a string.
                None => (bytes, this.0.tobinary().len()).into_lua_multi(lua),
            }
        });
        methods.add_method("tostring", |_, this, ()| Ok(this.0.tostring()));
        methods.add_meta_method(LuaMetaMethod::ToString, |_, this, ()| Ok(this.0.tostring()));
        methods.add_meta_method(LuaMetaMethod::Eq, |_, this, other: LuaAnyUserData| {
            Ok(other.borrow::<Ip>().is_ok_and(|o| o.0 == this.0))
        });
    }
}

impl fmt::Display for Ai {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.shared.0.borrow() {
            Some(list) => match list.get(self.index) {
                Some(info) => fmt::Display::fmt(info, f),
                None => f.write_str("ai: invalid"),
            },
            None => f.write_str("ai: freed"),
        }
    }
}
