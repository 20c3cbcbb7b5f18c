//! The binding's two kinds of failure, and the helpers every part uses for them.
//!
//! **Runtime failures** (the network, the resolver, the OS said no) are values,
//! as the seed says ("all functions return nil, err, errcode on error"):
//!
//! ```lua
//! local ai, err, code, msg = sock.addr('no.such.host', 80)
//! -- ai = nil, err = 'host_not_found', code = -2 (EAI_NONAME), msg = 'Name or service not known (host ...)'
//! ```
//!
//! * `err` is [`sock::Error::name`], the stable, normalized name (`"timeout"`,
//!   `"connection_refused"`, ...), so it can be used as a conditional;
//! * `code` is [`sock::Error::code`]: the `errno`, the resolver's `EAI_*` code, or 0
//!   for the library's own conditions;
//! * `msg` (a 4th value, beyond the seed) is [`sock::Error::message`], the
//!   human-readable text (for a lookup: the resolver's text and what was looked up);
//! * a function whose failure carries more (e.g. bytes done) returns it after
//!   these four: see [`fail_with`].
//!
//! Build them with [`fail`], [`fail_with`] or [`ret`].
//!
//! **Programmer errors** (an argument of the wrong type or out of range, an
//! unknown option name, a freed or closed object used) raise a Lua error whose
//! text names the function and the argument, like `luaL_argerror` does:
//!
//! ```text
//! sock.addr: bad argument #2 'port' (number or string expected, got table)
//! ai:type: bad argument #1 'self' (address list freed with ai:free())
//! ```
//!
//! Build them with [`Arg::error`], [`Arg::type_error`] or [`usage_error`].
//!
//! The raised value is mlua's error object (a userdata): `tostring(e)` is the text
//! above followed by a newline and a stack traceback, so Lua code matches it with
//! `tostring(e):find(...)` (or `:match('^[^\n]*')` for the first line). Errors
//! that the embedded Lua chunks raise with `error()` are plain strings; both
//! print the same way when uncaught.

use std::fmt;

use mlua::prelude::*;

/// A programmer error: the message is the whole text, with no prefix (mlua's
/// `RuntimeError` would add `"runtime error: "`).
#[derive(Debug)]
struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A programmer error of function `func` that is not about one argument, e.g.
/// `usage_error("sock.start", "called from inside a thread")`.
pub(crate) fn usage_error(func: &str, msg: impl fmt::Display) -> LuaError {
    LuaError::external(UsageError(format!("{func}: {msg}")))
}

/// `"<func>: bad argument #<pos> '<name>' (<msg>)"`: the one form of an
/// argument's error (see [`Arg`]; `func` may be a Lua string here).
pub(crate) fn bad_argument(func: &str, pos: usize, name: &str, msg: impl fmt::Display) -> LuaError {
    usage_error(func, format_args!("bad argument #{pos} '{name}' ({msg})"))
}

/// One argument of one function, to name it in a programmer error:
/// `Arg::new("sock.addr", 2, "port")`. For methods, `self` is argument #1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arg {
    /// The function as a Lua programmer writes it: `"sock.addr"`, `"ai:next"`.
    pub(crate) func: &'static str,
    /// The 1-based position of the argument (for a method, `self` is #1).
    pub(crate) pos: usize,
    /// The argument's name in the seed API (`"port"`, `"expires"`, `"self"`).
    pub(crate) name: &'static str,
}

impl Arg {
    /// Argument `pos`, named `name`, of function `func`.
    pub(crate) const fn new(func: &'static str, pos: usize, name: &'static str) -> Arg {
        Arg { func, pos, name }
    }

    /// `"<func>: bad argument #<pos> '<name>' (<msg>)"`.
    pub(crate) fn error(self, msg: impl fmt::Display) -> LuaError {
        bad_argument(self.func, self.pos, self.name, msg)
    }

    /// `"... (<expected> expected, got <type of got>)"`, e.g. `"(number or string
    /// expected, got table)"`.
    pub(crate) fn type_error(self, expected: &str, got: &LuaValue) -> LuaError {
        self.error(format_args!("{expected} expected, got {}", type_name(got)))
    }
}

/// The type of a value as Lua's `type()` names it, except that a userdata with a
/// `__name` metafield (every sock object: `sock.ai`, `sock.sa`, `sock.ip`, ...) is
/// named by it.
pub(crate) fn type_name(v: &LuaValue) -> String {
    match v {
        LuaValue::Nil => "nil".into(),
        LuaValue::Boolean(_) => "boolean".into(),
        LuaValue::Integer(_) | LuaValue::Number(_) => "number".into(),
        LuaValue::String(_) => "string".into(),
        LuaValue::Table(_) => "table".into(),
        LuaValue::Function(_) => "function".into(),
        LuaValue::Thread(_) => "thread".into(),
        LuaValue::LightUserData(_) => "userdata".into(),
        LuaValue::UserData(ud) => match ud.type_name() {
            Ok(name) => name.to_string_lossy(),
            Err(_) => "userdata".into(),
        },
        LuaValue::Error(_) => "error".into(),
        // On LuaJIT the only other kind of value is FFI cdata.
        _ => "cdata".into(),
    }
}

/// The values of a runtime failure: `nil, err, code, msg`.
pub(crate) fn fail(lua: &Lua, e: &sock::Error) -> LuaResult<LuaMultiValue> {
    fail_with(lua, e, ())
}

/// The values of a runtime failure that carries more: `nil, err, code, msg,
/// extra...` (e.g. `extra` = the bytes done before a `sendall` failed).
pub(crate) fn fail_with(
    lua: &Lua,
    e: &sock::Error,
    extra: impl IntoLuaMulti,
) -> LuaResult<LuaMultiValue> {
    let mut values = extra.into_lua_multi(lua)?;
    values.push_front(LuaValue::String(lua.create_string(e.message())?));
    values.push_front(LuaValue::Integer(e.code().into()));
    values.push_front(LuaValue::String(lua.create_string(e.name())?));
    values.push_front(LuaValue::Nil);
    Ok(values)
}

/// The values of a result: the value(s) of `Ok`, or [`fail`] for `Err`.
#[allow(dead_code, reason = "for the socket part")]
pub(crate) fn ret<T: IntoLuaMulti>(lua: &Lua, r: sock::Result<T>) -> LuaResult<LuaMultiValue> {
    match r {
        Ok(v) => v.into_lua_multi(lua),
        Err(e) => fail(lua, &e),
    }
}
