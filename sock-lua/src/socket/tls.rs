//! TLS sockets (`require'sock_tls'`, the original's `sock_libtls`): the
//! configuration userdata and the wrapping of a TCP socket into a TLS
//! stream, over the `sock-tls` crate.
//!
//! A TLS socket is an ordinary socket userdata ([`LSock`]) whose kind is
//! [`Kind::Tls`]: the fast path and the pending operations ([`super::op`])
//! step the TLS stream instead of the socket, so `send`, `recv`, `sendall`,
//! `recvall` and everything the Lua layer builds on them work unchanged, with
//! the same deadlines (a deadline that passes closes the stream, with its
//! close_notify). Wrapping moves the TCP socket out of its userdata
//! ([`sock::Tcp::detach`]): the plain object is closed from then on.
//!
//! `lua/tls.lua` reads the options table (files through `opt.loadfile` or
//! `io.open`) and hands this part a flat table of strings and booleans.

use std::sync::Arc;

use mlua::prelude::*;
use sock_tls::{ClientConfig, KeyPair, ServerConfig, TlsOptions, TlsStream};

use super::op::LuaOp;
use super::{closed_values, table, Kind, LSock};
use crate::error::{fail, Arg};

/// A TLS configuration (`stls.config(opt)`): built once, shared by every
/// connection made with it (and with it the session cache and the ticket
/// keys). Each side is built when first used.
pub(crate) struct LConfig {
    options: TlsOptions,
    client: Option<Arc<ClientConfig>>,
    server: Option<Arc<ServerConfig>>,
}

impl LuaUserData for LConfig {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.tls_config");
    }
}

/// A string field of `t`, as bytes.
fn bytes(t: &LuaTable, k: &str) -> LuaResult<Option<Vec<u8>>> {
    Ok(t.get::<Option<LuaString>>(k)?
        .map(|s| s.as_bytes().to_vec()))
}

fn text(t: &LuaTable, k: &str) -> LuaResult<Option<String>> {
    Ok(t.get::<Option<LuaString>>(k)?
        .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned()))
}

/// The options from the flat table `lua/tls.lua` made.
fn options(t: &LuaTable) -> LuaResult<TlsOptions> {
    let mut o = TlsOptions {
        ca: bytes(t, "ca")?,
        protocols: text(t, "protocols")?,
        ciphers: text(t, "ciphers")?,
        curves: text(t, "curves")?,
        prefer_client_ciphers: t
            .get::<Option<bool>>("prefer_ciphers_client")?
            .unwrap_or(false),
        insecure_noverifycert: t
            .get::<Option<bool>>("insecure_noverifycert")?
            .unwrap_or(false),
        insecure_noverifyname: t
            .get::<Option<bool>>("insecure_noverifyname")?
            .unwrap_or(false),
        insecure_noverifytime: t
            .get::<Option<bool>>("insecure_noverifytime")?
            .unwrap_or(false),
        verify_client: t.get::<Option<bool>>("verify_client")?.unwrap_or(false),
        verify_client_optional: t
            .get::<Option<bool>>("verify_client_optional")?
            .unwrap_or(false),
        ..TlsOptions::default()
    };
    if let Some(alpn) = text(t, "alpn")? {
        o.alpn = alpn
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(pairs) = t.get::<Option<LuaTable>>("keypairs")? {
        for kp in pairs.sequence_values::<LuaTable>() {
            let kp = kp?;
            o.keypairs.push(KeyPair {
                cert: bytes(&kp, "cert")?.unwrap_or_default(),
                key: bytes(&kp, "key")?.unwrap_or_default(),
                ocsp_staple: bytes(&kp, "ocsp_staple")?,
            });
        }
    }
    Ok(o)
}

/// `R.tls_config(t)`: a configuration userdata (the options are checked
/// when a side is first built).
fn new_config(lua: &Lua, t: LuaTable) -> LuaResult<LuaAnyUserData> {
    lua.create_userdata(LConfig {
        options: options(&t)?,
        client: None,
        server: None,
    })
}

/// `R.tls_check(conf, server)`: builds the configuration's side now: `true`,
/// or `nil, err, code, msg` for bad options.
fn check(lua: &Lua, (conf, server): (LuaAnyUserData, bool)) -> LuaResult<LuaMultiValue> {
    let mut c = conf.borrow_mut::<LConfig>()?;
    let r = if server {
        side_server(&mut c).map(drop)
    } else {
        side_client(&mut c).map(drop)
    };
    crate::error::ret(lua, r.map(|()| true))
}

fn side_client(c: &mut LConfig) -> sock::Result<Arc<ClientConfig>> {
    if let Some(cc) = &c.client {
        return Ok(cc.clone());
    }
    let cc = sock_tls::client_config(&c.options)?;
    c.client = Some(cc.clone());
    Ok(cc)
}

fn side_server(c: &mut LConfig) -> sock::Result<Arc<ServerConfig>> {
    if let Some(sc) = &c.server {
        return Ok(sc.clone());
    }
    let sc = sock_tls::server_config(&c.options)?;
    c.server = Some(sc.clone());
    Ok(sc)
}

/// `R.tls_wrap(s, conf, servername)`: the TCP socket userdata `s` as a TLS
/// stream, a client one for `servername`, else a server one: the new
/// socket userdata and its handle, or `nil, err, code, msg`. `s` is closed
/// from then on (its socket moved).
fn wrap(
    lua: &Lua,
    (s, conf, name): (LuaAnyUserData, LuaAnyUserData, Option<LuaString>),
) -> LuaResult<LuaMultiValue> {
    let func = if name.is_some() {
        "stls.client_stcp"
    } else {
        "stls.server_stcp"
    };
    let sock_ud = s
        .borrow::<LSock>()
        .map_err(|_| Arg::new(func, 1, "tcp").error("TCP socket expected"))?;
    let tcp = match &sock_ud.kind {
        Kind::Tcp(t) => t,
        Kind::Tls(_) => return Err(Arg::new(func, 1, "tcp").error("already a TLS socket")),
        _ => return Err(Arg::new(func, 1, "tcp").error("TCP socket expected")),
    };
    let mut c = conf.borrow_mut::<LConfig>()?;
    let made = match &name {
        Some(n) => side_client(&mut c).and_then(|cc| {
            let n = n.to_str().map_err(|_| {
                sock::Error::with_message(sock::ErrorKind::InvalidArgument, "bad server name")
            })?;
            // Checked first: a refused name leaves the plain socket as it was.
            TlsStream::check_server_name(&n)?;
            TlsStream::client(tcp.detach()?, &n, cc)
        }),
        None => side_server(&mut c).and_then(|sc| TlsStream::server(tcp.detach()?, sc)),
    };
    drop(c);
    match made {
        Ok(stream) => {
            let t = table(lua)?;
            LSock::new_userdata(lua, &t, Kind::Tls(Box::new(stream)))?.into_lua_multi(lua)
        }
        Err(e) => fail(lua, &e),
    }
}

/// The methods of TLS sockets on the socket userdata: `handshake` (a
/// blocking call) and what the handshake agreed. On other sockets they
/// raise.
pub(crate) fn add_methods<M: LuaUserDataMethods<LSock>>(m: &mut M) {
    fn stream<'a>(s: &'a LSock, func: &'static str) -> LuaResult<&'a TlsStream> {
        match &s.kind {
            Kind::Tls(t) => Ok(t),
            _ => Err(Arg::new(func, 1, "self").error("not a TLS socket")),
        }
    }
    m.add_method("tls_handshake", |lua, s, ()| {
        stream(live!(lua, s), "cs:handshake")?;
        s.call(lua, LuaOp::TlsHandshake)
    });
    m.add_method("tls_version", |_, s, ()| {
        Ok(stream(s, "cs:version")?.protocol_version())
    });
    m.add_method("tls_cipher", |_, s, ()| {
        Ok(stream(s, "cs:cipher")?.cipher_suite())
    });
    m.add_method("tls_alpn", |lua, s, ()| {
        match stream(s, "cs:alpn_selected")?.alpn_protocol() {
            Some(p) => Ok(LuaValue::String(lua.create_string(p)?)),
            None => Ok(LuaValue::Nil),
        }
    });
    m.add_method("tls_resumed", |_, s, ()| {
        Ok(stream(s, "cs:session_resumed")?.is_resumed())
    });
    m.add_method("tls_servername", |_, s, ()| {
        Ok(stream(s, "cs:servername")?.server_name())
    });
    m.add_method("tls_handshaking", |_, s, ()| {
        Ok(stream(s, "cs:handshaking")?.is_handshaking())
    });
}

/// Adds `R.tls_config`, `R.tls_check` and `R.tls_wrap`.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    r.set("tls_config", lua.create_function(new_config)?)?;
    r.set("tls_check", lua.create_function(check)?)?;
    r.set("tls_wrap", lua.create_function(wrap)?)?;
    Ok(())
}
