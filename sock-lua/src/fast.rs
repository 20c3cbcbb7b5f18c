//! The FFI fast path: `send` and `recv` attempts as plain C functions that the
//! Lua layer calls through LuaJIT's FFI, on a socket's *handle*.
//!
//! A call into an mlua userdata method costs about 60 ns under the JIT (an
//! mlua function about 22 ns, and neither is compiled: the trace stops at the
//! C call); an FFI call into an `extern "C"` function compiles to a plain
//! call, about 3 ns. The per-call attempts of `s:send`, `s:recv`,
//! `tcp:sendall` and `tcp:recvall` are therefore the exported functions
//! below; they make the core's own attempts (`try_send`, `try_recv`), so the
//! two paths cannot disagree. Everything else stays on mlua.
//!
//! # Handles: checked, never trusted
//!
//! The Lua wrapper of a socket keeps, beside its userdata, a handle: a number
//! that names the socket in this OS thread's handle table (an index and a
//! generation, below 2^53 so that a Lua number holds it exactly). The table
//! holds the address of the socket's Rust value ([`LSock`]), registered when
//! the userdata is made and removed when it is dropped (collected), and the
//! generation of the slot changes on every removal. Every call validates its
//! handle against the table (an index and a compare, about 1 ns): a handle
//! that Lua code forged, kept after a collection, or took from another socket
//! finds no entry, or finds another *live* socket, and never a freed one. So
//! no Lua code, however wrong, can make these functions touch freed memory.
//! The table is per OS thread, like the sockets' loops: a handle used on
//! another OS thread is simply unknown there.
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
//! Each function returns a C `int`:
//!
//! * `n >= 0`: done, `n` bytes;
//! * [`WOULD_BLOCK`] (-1): nothing done, wait and try again;
//! * [`CLOSED`] (-2): the socket was closed (or the handle is unknown): a
//!   programmer error, which the Lua layer raises;
//! * [`FAILED`] (-3): the attempt failed; the error waits in a per-thread slot
//!   for `R.failed`, which turns it into the usual `nil, err, code, msg`.
//!
//! An `int` and not a `ssize_t`: LuaJIT returns 64-bit integers as boxed
//! cdata (an allocation per call outside compiled code), 32-bit ones as plain
//! numbers. A single call moves at most [`MAX_IO`] bytes (what Linux moves at
//! most in one call anyway), so every count fits.
//!
//! # Safety
//!
//! The buffer is the one `unsafe` promise the caller makes: the Lua layer
//! (`lua/sock.lua`) passes what its checked `bufarg` gave (`len` at most
//! `ffi.sizeof` of an array, or the string's length; pointer cdata is the
//! caller's word, as in the mlua methods), with the offset of
//! `sendall`/`recvall` within that length.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};

use mlua::prelude::*;

use crate::error::{fail_with, usage_error};
use crate::socket::LSock;

/// The result of an attempt that would block.
pub const WOULD_BLOCK: c_int = -1;

/// The result of an attempt on a closed socket, or with an unknown handle.
pub const CLOSED: c_int = -2;

/// The result of a failed attempt: `R.failed` gives the error.
pub const FAILED: c_int = -3;

/// The most bytes one call sends or receives: Linux's own limit for one call
/// (`MAX_RW_COUNT`), below `i32::MAX`. A larger `len` is a partial send or
/// receive, which the callers handle already.
pub const MAX_IO: usize = 0x7fff_f000;

/// Generations stay below 2^21 so that a handle (generation << 32 | index)
/// stays below 2^53, exact in a Lua number.
const GEN_MASK: u32 = (1 << 21) - 1;

/// One entry of the handle table: the socket's address while its userdata
/// lives, null while the entry is free.
struct Entry {
    gen: u32,
    sock: *const LSock,
}

/// The handle table of one OS thread.
struct Handles {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

thread_local! {
    static HANDLES: RefCell<Handles> = const {
        RefCell::new(Handles { entries: Vec::new(), free: Vec::new() })
    };
    /// The error of the last [`FAILED`] attempt on this OS thread.
    static LAST_ERROR: Cell<Option<sock::Error>> = const { Cell::new(None) };
}

/// Registers the socket at `sock` (its final address, inside its userdata)
/// and returns its handle. [`unregister`] must run before that memory is
/// freed or reused: `LSock`'s `Drop` does it.
pub(crate) fn register(sock: *const LSock) -> u64 {
    HANDLES.with(|t| {
        let mut t = t.borrow_mut();
        let index = match t.free.pop() {
            Some(i) => i,
            None => {
                t.entries.push(Entry {
                    gen: 0,
                    sock: std::ptr::null(),
                });
                (t.entries.len() - 1) as u32
            }
        };
        let e = &mut t.entries[index as usize];
        e.gen = (e.gen & GEN_MASK) % GEN_MASK + 1; // 1..=GEN_MASK, never 0
        e.sock = sock;
        (u64::from(e.gen) << 32) | u64::from(index)
    })
}

/// Removes the handle `h` (a collected socket): the entry is free, and the
/// handle is unknown from now on.
pub(crate) fn unregister(h: u64) {
    // At thread exit the table may be gone already: nothing to check then.
    let _ = HANDLES.try_with(|t| {
        let mut t = t.borrow_mut();
        let (index, gen) = ((h & 0xffff_ffff) as u32, (h >> 32) as u32);
        if let Some(e) = t.entries.get_mut(index as usize) {
            if e.gen == gen && !e.sock.is_null() {
                e.sock = std::ptr::null();
                t.free.push(index);
            }
        }
    });
}

/// The address registered under the handle `h`, if the handle is known.
fn lookup(h: u64) -> Option<*const LSock> {
    let (index, gen) = ((h & 0xffff_ffff) as usize, (h >> 32) as u32);
    HANDLES.with(|t| match t.borrow().entries.get(index) {
        Some(e) if e.gen == gen && !e.sock.is_null() => Some(e.sock),
        _ => None,
    })
}

/// Calls `f` with the socket of the handle `h`, if the handle is known.
pub(crate) fn with_handle<R>(h: u64, f: impl FnOnce(&LSock) -> R) -> Option<R> {
    let p = lookup(h)?;
    // SAFETY: an entry holds the address of a live `LSock` (registered once
    // the value was at its final place in its userdata, removed by its
    // `Drop`); it cannot be dropped during `f`, which runs no Lua code (a
    // collection is the only way to drop it). Every access to an `LSock` is
    // shared (`&self` methods, interior mutability), so a shared reference
    // for this call is sound.
    Some(f(unsafe { &*p }))
}

/// `f` on the live socket of the handle `h`, its result as the fast path
/// returns it: [`CLOSED`] for a closed socket or an unknown handle.
fn attempt(h: u64, f: impl FnOnce(&LSock) -> sock::Result<Option<usize>>) -> c_int {
    match with_handle(h, |s| (!s.is_closed()).then(|| f(s))).flatten() {
        None => CLOSED,
        Some(Ok(Some(n))) => n.min(MAX_IO) as c_int,
        Some(Ok(None)) => WOULD_BLOCK,
        Some(Err(e)) => {
            LAST_ERROR.set(Some(e));
            FAILED
        }
    }
}

/// One non-blocking send of `len` bytes at `buf + off` on the socket of the
/// handle `h`: the bytes taken, [`WOULD_BLOCK`], [`CLOSED`] or [`FAILED`].
/// The core's `try_send`, for any socket type.
///
/// # Safety
///
/// `buf` is valid for reads of `off + len` bytes for the whole call, and not
/// written during it (a Lua string or FFI memory, checked by the Lua layer).
/// The handle needs no promise: an unknown one gives [`CLOSED`].
#[no_mangle]
pub unsafe extern "C" fn sock_lua_send(h: u64, buf: *const u8, off: usize, len: usize) -> c_int {
    attempt(h, |s| {
        let len = len.min(MAX_IO);
        let bytes: &[u8] = match len {
            0 => &[],
            // SAFETY: `off + len` bytes from `buf` are valid for reads and not
            // written during the call (contract).
            _ => unsafe { std::slice::from_raw_parts(buf.add(off), len) },
        };
        s.try_send(bytes)
    })
}

/// One non-blocking receive into the `len` bytes at `buf + off` from the
/// socket of the handle `h`: the bytes received (0 at the end of a TCP
/// stream), [`WOULD_BLOCK`], [`CLOSED`] or [`FAILED`] (a datagram larger than
/// `len` is `message_too_big`, as in the core).
///
/// # Safety
///
/// `buf` is valid for writes of `off + len` bytes for the whole call, and
/// nothing else reads or writes them during it (FFI memory, checked by the
/// Lua layer). The handle needs no promise.
#[no_mangle]
pub unsafe extern "C" fn sock_lua_recv(h: u64, buf: *mut u8, off: usize, len: usize) -> c_int {
    attempt(h, |s| {
        let len = len.min(MAX_IO);
        let bytes: &mut [u8] = match len {
            0 => &mut [],
            // SAFETY: `off + len` bytes from `buf` are valid for writes and
            // nothing else touches them during the call (contract).
            _ => unsafe { std::slice::from_raw_parts_mut(buf.add(off), len) },
        };
        s.try_recv(bytes)
    })
}

/// Whether the socket of the handle `h` is usable: 1, or 0 once it is closed
/// (or the handle is unknown). The Lua layer's cheap `closed` check
/// (`sendall`, `recvall`).
#[no_mangle]
pub extern "C" fn sock_lua_live(h: u64) -> c_int {
    with_handle(h, |s| !s.is_closed() as c_int).unwrap_or(0)
}

/// A function's address, as a light userdata for `ffi.cast`.
fn address(f: *const ()) -> LuaLightUserData {
    LuaLightUserData(f as *mut c_void)
}

/// `R.failed(func, done)`: the values of the last [`FAILED`] attempt, `nil,
/// err, code, msg` and then `done` when given (the bytes that `sendall` or
/// `recvall` moved before), else the bytes the error reports (a truncated
/// datagram's kept length), if any. Raises if there is no such error (a bug).
fn failed(lua: &Lua, (func, done): (LuaString, Option<usize>)) -> LuaResult<LuaMultiValue> {
    let Some(e) = LAST_ERROR.take() else {
        return Err(usage_error(&func.to_str()?, "no failed attempt to report"));
    };
    match done.or((e.done() > 0).then(|| e.done())) {
        Some(n) => fail_with(lua, &e, n),
        None => fail_with(lua, &e, ()),
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
pub(crate) fn register_lua(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    let fast = lua.create_table()?;
    fast.set("send", address(sock_lua_send as *const ()))?;
    fast.set("recv", address(sock_lua_recv as *const ()))?;
    fast.set("live", address(sock_lua_live as *const ()))?;
    fast.set("WOULD_BLOCK", WOULD_BLOCK)?;
    fast.set("CLOSED", CLOSED)?;
    r.set("fast", fast)?;
    r.set("failed", lua.create_function(failed)?)?;
    r.set("address", lua.create_function(payload_address)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_checked_and_never_reused_as_is() {
        // Addresses only: these tests never dereference them.
        let a = 0x1000 as *const LSock;
        let b = 0x2000 as *const LSock;
        let ha = register(a);
        assert!(ha < 1 << 53);
        let found = lookup;
        assert_eq!(found(ha), Some(a));
        unregister(ha);
        assert_eq!(found(ha), None, "a removed handle is unknown");
        let hb = register(b);
        assert_eq!(hb & 0xffff_ffff, ha & 0xffff_ffff, "the slot is reused");
        assert_ne!(hb, ha, "with a new generation");
        assert_eq!(found(ha), None);
        assert_eq!(found(hb), Some(b));
        unregister(ha); // a stale handle removes nothing
        assert_eq!(found(hb), Some(b));
        for forged in [0, u64::MAX, hb + 1, hb ^ (1 << 40)] {
            assert_eq!(found(forged), None, "forged handle {forged:#x}");
        }
        unregister(hb);
    }

    #[test]
    fn generations_wrap_below_2_pow_21_and_skip_zero() {
        let p = 0x3000 as *const LSock;
        let mut seen_low = false;
        for _ in 0..(GEN_MASK as usize + 5) {
            let h = register(p);
            let g = (h >> 32) as u32;
            assert!((1..=GEN_MASK).contains(&g));
            seen_low |= g == 1;
            unregister(h);
        }
        assert!(seen_low, "the generation wrapped");
    }
}
