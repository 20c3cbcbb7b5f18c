//! The LuaJIT module of sock: `local sock = require'sock'`.
//!
//! The module exposes the seed API (`sock-api.txt`) on top of the Rust core
//! (the `sock` crate). It is built in two layers:
//!
//! * **Rust primitives** (this crate's `src/*.rs`): every part adds its functions
//!   to a private table `R` through its `register(lua, R)`, and defines its
//!   userdata types (`ai`, `sa`, `ip`, sockets, ...).
//! * **Lua chunks** (`lua/*.lua`, embedded with `include_str!`): run in order, each
//!   called as `chunk(M, R)`, where `M` is the module table being built. They
//!   define the public API on `M` from the primitives of `R`, doing in Lua what
//!   Lua does best (yields, FFI cdata). A chunk's name is `=sock/<file>`, so its
//!   errors read `sock/addr.lua:12: ...`.
//!
//! `R` is not reachable from Lua code other than the chunks.
//!
//! # Layers
//!
//! Each part uses only the parts above it in this list (no circles):
//!
//! | part | what it holds |
//! |------|---------------|
//! | `error.rs`, `handles.rs`, `state.rs` | error conventions; checked handles; the state's loop |
//! | `addr.rs` | `ai`, `sa`, `ip` objects, the address arguments |
//! | `socket/` | the socket userdata, the state's handle table, the blocking calls as core operations (`op.rs`) and their FFI fast path (`fast.rs`) |
//! | `osthread.rs` | OS threads with a state of their own |
//! | `sleep_job.rs` | sleeps that another thread can cut short |
//! | `sched.rs` | sock threads: coroutines resumed by the core's loop, driving the pending calls; `suspend`/`resume` |
//! | `timers.rs` | `runat`/`runevery`: functions run in new threads when their time comes |
//! | `lib.rs` | the module: the parts, then the Lua chunks |
//!
//! The policy of every blocking call (retries, deadlines, the walk over the
//! resolved addresses of a connect, the messages) is the core's: a call is a
//! core operation (`sock::op`) that the binding steps once and, if it would
//! block, hands to the core's driver. The Lua layer checks arguments and
//! yields.
//!
//! The hot paths skip mlua: the first steps of `send`, `recv`, `sendall` and
//! `recvall` are plain C functions that the Lua layer calls through LuaJIT's
//! FFI (`socket/fast.rs`: the table and handle they take, their results,
//! their safety contract), and the scheduler resumes a waiting thread and
//! reads its next request on the raw C API (`sched.rs`, "The switch, on the
//! raw C API").
//!
//! # Per-state data
//!
//! Two Lua states may load the module on one OS thread, and one state may load it
//! twice (`package.loaded.sock = nil; require'sock'`). So nothing that belongs to
//! a Lua state is kept in a `thread_local!` or a `static`: each part keeps its
//! per-state data in the state's app data ([`mlua::Lua::set_app_data`], one slot
//! per Rust type: the loop, the socket table, the scheduler's thread table),
//! made by the first load and kept by a reload, whose module shares the
//! threads and sockets of the first. Never hold an app data borrow across a
//! call into Lua (which may re-enter the module).
//!
//! # Conventions
//!
//! The error conventions (`nil, err, code, msg` for runtime failures, raised
//! errors naming the function and argument for programmer errors) are in
//! `error.rs`.
//!
//! # Building
//!
//! `scripts/build-lua.sh` builds `target/lua/sock.so` (release) and prints the
//! `LUA_CPATH` to use; `--install` copies it to LuaJIT's system C path.

use mlua::prelude::*;

mod addr;
mod error;
mod handles;
mod osthread;
mod sched;
mod sleep_job;
mod socket;
mod state;
mod timers;

/// The function each Rust part exports: adds its primitives to `R`.
type Register = fn(&Lua, &LuaTable) -> LuaResult<()>;

/// The Rust parts, registered in this order.
const PARTS: &[Register] = &[
    addr::register,
    socket::register,
    sleep_job::register,
    sched::register,
    timers::register,
    |lua, r| osthread::register(lua, r, open),
];

/// The Lua chunks, `(chunk name, source)`, run in this order after every part
/// is registered.
const CHUNKS: &[(&str, &str)] = &[
    ("=sock/addr.lua", include_str!("../lua/addr.lua")),
    ("=sock/sock.lua", include_str!("../lua/sock.lua")),
    ("=sock/tls.lua", include_str!("../lua/tls.lua")),
];

/// Builds the module table `M` in `lua`: registers every Rust part in a fresh
/// primitives table `R`, then runs every embedded Lua chunk with `(M, R)`.
///
/// This is what `require'sock'` calls (through `luaopen_sock`); calling it again
/// (a reload) builds a new, independent module table.
///
/// # Errors
///
/// Any error of a part's registration or of a chunk (a bug in the module), or a
/// Lua memory error.
pub fn open(lua: &Lua) -> LuaResult<LuaTable> {
    let m = lua.create_table()?;
    let r = lua.create_table()?;
    state::init(lua);
    for register in PARTS {
        register(lua, &r)?;
    }
    for &(name, source) in CHUNKS {
        lua.load(source)
            .set_name(name)
            .into_function()?
            .call::<()>((&m, &r))?;
    }
    Ok(m)
}

/// The module's entry point, `luaopen_sock`, called by `require'sock'`.
#[mlua::lua_module(name = "sock", skip_memory_check)]
fn sock(lua: &Lua) -> LuaResult<LuaTable> {
    pin_library();
    open(lua)
}

/// The TLS module (`lua/tls.lua`), loading `sock` first if no one did: what
/// `require'sock_tls'` and `require'sock_libtls'` find through the links
/// `sock_tls.so` and `sock_libtls.so` to this library (`require'sock'`
/// also makes both available through `package.preload`).
fn tls_module(lua: &Lua) -> LuaResult<LuaTable> {
    let package: LuaTable = lua.globals().get("package")?;
    let loaded: LuaTable = package.get("loaded")?;
    if loaded.get::<LuaValue>("sock")?.is_nil() {
        let m = sock(lua)?;
        loaded.set("sock", m)?;
    }
    let preload: LuaTable = package.get("preload")?;
    preload.get::<LuaFunction>("sock_tls")?.call(())
}

/// `luaopen_sock_tls`: `require'sock_tls'`.
#[mlua::lua_module(name = "sock_tls", skip_memory_check)]
fn sock_tls(lua: &Lua) -> LuaResult<LuaTable> {
    tls_module(lua)
}

/// `luaopen_sock_libtls`: `require'sock_libtls'`, the original's name.
#[mlua::lua_module(name = "sock_libtls", skip_memory_check)]
fn sock_libtls(lua: &Lua) -> LuaResult<LuaTable> {
    tls_module(lua)
}

/// Keeps this library mapped until the process exits.
///
/// Lua unloads a C module (`dlclose`) when the state that loaded it is closed,
/// but the module's loops live in thread-locals whose destructors run when the
/// OS thread exits, possibly after that: their code must still be there. The
/// library is opened once more with `RTLD_NODELETE`, which makes the dynamic
/// loader ignore every later unload (LuaJIT issue #1049 describes the same
/// hazard for finalizers).
fn pin_library() {
    use std::sync::Once;
    static PINNED: Once = Once::new();
    PINNED.call_once(|| {
        // SAFETY: `dladdr` only reads the loader's tables for the address of a
        // function of this library and fills `info`, a plain C struct we own;
        // `dlopen` with `RTLD_NOLOAD` opens no new object: it takes one more
        // reference on this already-loaded library (found by the path `dladdr`
        // gave, a NUL-terminated string owned by the loader) and marks it
        // `RTLD_NODELETE`. The handle is deliberately never closed.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let addr = pin_library as *const libc::c_void;
            if libc::dladdr(addr, &mut info) != 0 && !info.dli_fname.is_null() {
                let flags = libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE;
                libc::dlopen(info.dli_fname, flags);
            }
        }
    });
}
