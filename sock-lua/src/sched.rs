//! Threads: Lua coroutines scheduled by the core's loop.
//!
//! A sock thread is a core thread whose future ([`LuaThread`]) resumes a Lua
//! coroutine, in the loop of its Lua state (`state.rs`). Rust never yields:
//! the Lua layer (`lua/sock.lua`) yields requests to this future (approach
//! "c2" of the binding notes):
//!
//! * `yield(OP, expires)`: drive the state's pending call (`socket/op.rs`: a
//!   blocking call whose first step would block) with the core's driver
//!   ([`sock::op::Drive`]) until it is over or `expires` passes; resumed with
//!   the call's results (`n`, `true`, ... or `nil, err, code, msg`);
//! * `yield(SLEEP, t)`: sleep until `t` (a core [`sock::Sleep`]); with `t`
//!   nil, yield once to the other threads;
//! * `yield(JOIN, t)`: wait until the OS thread `t` (`osthread.rs`) has
//!   finished; resumed with `true`;
//! * `yield(TRANSFER, co, ...)`: resume the generator `co` on behalf of the
//!   yielding coroutine (`sock.cowrap`, and `coroutine.resume`/`wrap` inside
//!   sock threads): the generator runs as part of this thread, so its I/O waits
//!   park the thread; its yields, returns or errors go back to the consumer as
//!   `true, values...` / `false, err`;
//! * any other yield of a top-level thread: a cooperative reschedule.
//!
//! A request is registered only once its yield reaches this future, so a yield
//! that fails (across a C call boundary) leaves nothing stale behind.
//!
//! The future keeps the Lua values of a parked thread in a Lua table (its slot
//! in the registry), not as mlua references: see [`LuaThread`].
//!
//! # The switch, on the raw C API
//!
//! Every wait is a yield to this future and a resume from it, so that path is
//! kept off mlua: the future holds the raw state of its top coroutine (mlua's
//! [`Thread::state`](mlua::Thread::state), valid while the slot anchors the
//! coroutine), pushes `true` on it and calls `lua_resume` directly, as mlua's
//! own `Thread::resume` and LuaJIT's `coroutine.resume` do, and reads a wait
//! request from the coroutine's stack in place ([`wait_request_raw`]). No
//! mlua reference, protected call, `LuaMultiValue` or registry lookup is made
//! on that path; the pending call names its socket by its handle (a number,
//! see `handles.rs`), not by its userdata, so no userdata borrow either, and
//! a call that moved bytes resumes its thread with the count on the same
//! raw path. The resume
//! leaves an error value as it was raised, like `coroutine.resume`, so it
//! reaches the consumer (or `sock.onerror`) unchanged.
//!
//! A thread's start and its common end take the same path: `newthread`
//! resumes the new coroutine once itself, in Lua, which leaves its function
//! and arguments in place on its stack before its first yield, so that the
//! scheduler starts it with an empty resume; a thread that returns has its
//! results dropped and its slot cleared in place. (Measured in the harness's
//! W3, a connection per request: 39.2k to 27.5k instructions per connection
//! for the LuaJIT server, from mlua's argument and result conversions and
//! registry lookups by name.)
//!
//! Everything else a coroutine can do (fail, transfer, a generator's yield)
//! is rarer and goes through mlua ([`LuaThread::step`]), with what
//! `coroutine.resume` would have returned.
//!
//! Measured with `sock-lua/bench/percall.lua` (2 vCPU VM, LuaJIT 2.1.0-beta3):
//! a yield + resume (`sock.sleep_until(0)`, which includes the core's sleep
//! and one `epoll_wait`) went from 850 ns through `coroutine.resume` called
//! from mlua (about 575 ns more than the same in Rust, 276 ns) to about
//! 340 ns; an `exec_raw` (protected) version of the same took 630 ns.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_int;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use mlua::ffi;
use mlua::prelude::*;

use crate::error::{fail, usage_error};
use crate::socket::op::{values, values_of_error, Driven, Out};
use crate::socket::Table;
use crate::state::lp;

/// The per-state data of the scheduler.
pub(crate) struct State {
    /// The state's socket table (its pending call).
    sockets: Rc<Table>,
    /// The key of the next new thread in the registry table [`THREADS`]
    /// when no key is free.
    next_id: Cell<i64>,
    /// The keys of ended threads, taken again first: the keys stay dense
    /// (1 to the most threads alive at once), so the table keeps its
    /// threads in its array part (8 bytes a thread instead of a hash node).
    free_ids: RefCell<Vec<i64>>,
    /// The registry table [`THREADS`], kept here: a thread's start and end
    /// use it without a registry lookup by name.
    threads: LuaTable,
    /// The threads parked in `sock.suspend`, by the coroutine that called it
    /// (its state's address): what `sock.resume(co)` resumes.
    suspended: RefCell<HashMap<usize, sock::ThreadId>>,
}

/// The sock thread parked in `sock.suspend` by the coroutine `co`, if any.
pub(crate) fn suspended(lua: &Lua, co: &mlua::Thread) -> Option<sock::ThreadId> {
    let s = lua.app_data_ref::<State>()?;
    let id = s.suspended.borrow().get(&(co.state() as usize)).copied();
    id
}

/// The registry table [`THREADS`] of `lua`'s state.
fn threads(lua: &Lua) -> LuaResult<LuaTable> {
    match lua.app_data_ref::<State>() {
        Some(s) => Ok(s.threads.clone()),
        None => Err(usage_error("sock", "module not initialized")),
    }
}

/// The registry table of the Lua values of the live threads: thread id ->
/// slot (see [`LuaThread`]).
const THREADS: &str = "sock.threads";

/// The registry table of the error reporters of the module's loads (a reload
/// keeps its own `sock.onerror`): reporter -> number and number -> reporter.
const REPORTERS: &str = "sock.reporters";

/// What a suspended Lua thread waits for, and then what it is resumed with.
enum Next {
    /// Not started: the coroutine waits in its first yield, with its function
    /// and arguments in place (`lua/sock.lua`'s `newthread`).
    Start,
    Resume(LuaMultiValue),
    /// `yield(OP, expires)`: the pending call, driven by the core.
    Op(sock::op::Drive<Driven>),
    Sleep(sock::Sleep),
    Yield(bool),
    /// `yield(JOIN, t)`: until the OS thread `t` has finished.
    Join(crate::osthread::Finished),
    /// `yield(SUSPEND[, co])`: parked until `sock.resume`; the coroutine
    /// `co` (a thread parked the same way) is resumed once this one is
    /// parked (`sock.transfer`).
    Suspend(sock::Suspend, Option<sock::ThreadId>),
    /// `yield(JOBSLEEP, sj, t)`: a sleep that `sj:wakeup` can cut short.
    JobSleep(sock::JobSleep),
    /// `yield(LOOKUP, lk, expires)`: a name lookup off the loop.
    Lookup(Pin<Box<dyn Future<Output = sock::Result<sock::AddrList>>>>),
}

/// The future of one sock thread.
///
/// Its Lua values live in Lua, in its slot `THREADS[id]`: its coroutine, or,
/// while generators run on it, the table of its stack of coroutines
/// (`[1..depth]`: the consumer at the bottom and the generators it resumed
/// through the trampoline above it). The error reporter of the module load
/// that started it is `REPORTERS[reporter]`. A parked thread holds no mlua
/// reference: mlua keeps those on one auxiliary Lua stack, which LuaJIT
/// limits to about 8000 slots, and that would cap the number of threads that
/// can wait at once. It holds the raw state of its top coroutine instead
/// (`co`), which the slot keeps alive. (One Lua value per idle thread, not a
/// table: 136 bytes less per idle connection.)
pub(crate) struct LuaThread {
    lua: mlua::WeakLua,
    id: i64,
    /// The Lua state of the top coroutine: anchored in the slot, so valid
    /// until this future takes it out of the slot (and updated then).
    co: *mut ffi::lua_State,
    depth: usize,
    reporter: i64,
    /// The state's socket table: where its pending calls wait.
    sockets: Rc<Table>,
    next: Next,
}

/// A thread's slot, `THREADS[id]`, seen as its stack of coroutines.
struct Slot {
    threads: LuaTable,
    id: i64,
}

impl Slot {
    fn new(lua: &Lua, id: i64) -> LuaResult<Slot> {
        Ok(Slot {
            threads: threads(lua)?,
            id,
        })
    }

    /// The coroutine at `depth` (1: the thread's own).
    fn get(&self, depth: usize) -> LuaResult<mlua::Thread> {
        match self.threads.raw_get::<LuaValue>(self.id)? {
            LuaValue::Thread(t) if depth == 1 => Ok(t),
            LuaValue::Table(t) => t.raw_get(depth),
            _ => Err(usage_error("sock", "thread slot lost")),
        }
    }

    /// Puts `co` at `depth` (the stack had `depth - 1` coroutines).
    fn push(&self, lua: &Lua, depth: usize, co: mlua::Thread) -> LuaResult<()> {
        match self.threads.raw_get::<LuaValue>(self.id)? {
            LuaValue::Table(t) => t.raw_set(depth, co),
            LuaValue::Thread(bottom) => {
                let t = lua.create_table()?;
                t.raw_set(1, bottom)?;
                t.raw_set(depth, co)?;
                self.threads.raw_set(self.id, t)
            }
            _ => Err(usage_error("sock", "thread slot lost")),
        }
    }

    /// Removes the coroutine at `depth` (the top); back to a plain coroutine
    /// when one is left.
    fn pop(&self, depth: usize) -> LuaResult<()> {
        if let LuaValue::Table(t) = self.threads.raw_get::<LuaValue>(self.id)? {
            t.raw_set(depth, LuaValue::Nil)?;
            if depth == 2 {
                let bottom: LuaValue = t.raw_get(1)?;
                self.threads.raw_set(self.id, bottom)?;
            }
        }
        Ok(())
    }
}

impl LuaThread {
    /// Turns what the top coroutine yielded or returned into what comes next;
    /// returns true when the whole thread is done.
    fn step(
        &mut self,
        lua: &Lua,
        slot: &Slot,
        co: &mlua::Thread,
        r: LuaResult<LuaMultiValue>,
    ) -> LuaResult<bool> {
        let finished = co.status() != LuaThreadStatus::Resumable;
        // What `coroutine.resume` returned: true, values... or false, err.
        let mut vals = r?;
        if vals.pop_front() != Some(LuaValue::Boolean(true)) {
            // A coroutine that raised without the xpcall wrapper (a plain
            // generator): its error value, as it was raised.
            self.pop(slot)?;
            let err = vals.pop_front().unwrap_or(LuaValue::Nil);
            if self.depth == 0 {
                report(lua, self.reporter, err, co);
                return Ok(true);
            }
            self.next = Next::Resume((false, err).into_lua_multi(lua)?);
            return Ok(false);
        }
        if finished {
            self.pop(slot)?;
            let failed = is_mark(vals.front(), mark(FAILED));
            if self.depth == 0 {
                if failed {
                    let err = vals.get(1).cloned().unwrap_or(LuaValue::Nil);
                    report(lua, self.reporter, err, co);
                }
                return Ok(true);
            }
            let mut out = vals;
            if failed {
                out.pop_front();
                out.truncate(1);
                out.push_front(LuaValue::Boolean(false));
            } else {
                out.push_front(LuaValue::Boolean(true));
            }
            self.next = Next::Resume(out);
            return Ok(false);
        }
        // (A wait request never comes here: `run` takes every one.)
        if is_mark(vals.front(), mark(SUSPEND)) {
            let target = match vals.get(1) {
                Some(LuaValue::Thread(t)) => Some(
                    suspended(lua, t)
                        .ok_or_else(|| usage_error("sock.transfer", "thread not suspended"))?,
                ),
                _ => None,
            };
            if let Some(me) = sock::currentthread() {
                if let Some(s) = lua.app_data_ref::<State>() {
                    s.suspended.borrow_mut().insert(co.state() as usize, me);
                }
            }
            self.next = Next::Suspend(sock::suspend(), target);
        } else if is_mark(vals.front(), crate::addr::lookup_mark()) {
            let lk = match vals.get(1) {
                Some(LuaValue::UserData(ud)) => ud.borrow::<crate::addr::LLookup>()?.take(),
                _ => None,
            };
            let Some((lk, cancel)) = lk else {
                return Err(usage_error("sock.addr", "lookup request without a lookup"));
            };
            let expires = match vals.get(2) {
                Some(LuaValue::Number(t)) => Some(*t),
                _ => None,
            };
            self.next = Next::Lookup(Box::pin(crate::addr::cancellable(lk, cancel, expires)));
        } else if is_mark(vals.front(), mark(JOBSLEEP)) {
            self.next = match (vals.get(1), vals.get(2)) {
                (Some(LuaValue::UserData(ud)), Some(LuaValue::Number(t))) => {
                    Next::JobSleep(ud.borrow::<crate::sleep_job::LSleepJob>()?.sleep_until(*t))
                }
                _ => return Err(usage_error("sj:sleep", "sleep request without a job")),
            };
        } else if is_mark(vals.front(), mark(JOIN)) {
            self.next = match vals.get(1) {
                Some(LuaValue::UserData(ud)) => {
                    Next::Join(ud.borrow::<crate::osthread::LOsThread>()?.finished())
                }
                _ => return Err(usage_error("t:join", "join request without a thread")),
            };
        } else if is_mark(vals.front(), mark(TRANSFER)) {
            vals.pop_front();
            self.next = self.transfer(lua, slot, vals)?;
        } else if self.depth > 1 {
            // A generator yielded values to its consumer; it stays suspended.
            self.pop(slot)?;
            vals.push_front(LuaValue::Boolean(true));
            self.next = Next::Resume(vals);
        } else {
            self.next = Next::Yield(false);
        }
        Ok(false)
    }

    /// Removes the top coroutine of the stack.
    fn pop(&mut self, slot: &Slot) -> LuaResult<()> {
        slot.pop(self.depth)?;
        self.depth -= 1;
        Ok(())
    }

    /// `TRANSFER, co, args...`: run the generator `co` for the coroutine on top.
    fn transfer(&mut self, lua: &Lua, slot: &Slot, mut vals: LuaMultiValue) -> LuaResult<Next> {
        let co = match vals.pop_front() {
            Some(LuaValue::Thread(co)) => co,
            _ => return Err(usage_error("sock.cowrap", "transfer without a coroutine")),
        };
        let refuse = |msg: &str| Ok(Next::Resume((false, msg).into_lua_multi(lua)?));
        if co.status() != LuaThreadStatus::Resumable {
            return refuse(DEAD);
        }
        for i in 1..=self.depth {
            if slot.get(i)? == co {
                return refuse(NOT_SUSPENDED);
            }
        }
        self.depth += 1;
        slot.push(lua, self.depth, co)?;
        Ok(Next::Resume(vals))
    }

    /// One step of the thread: resumes its top coroutine with `args` and
    /// handles what comes out. Ok(true) when the thread is done.
    ///
    /// The resume and its common outcome, a wait request, take the raw C API
    /// on the coroutine's own stack ([`resume_raw`]): no mlua reference, no
    /// protected call and no value conversion on the path every wait takes.
    /// Anything else (a thread that finished or failed, a transfer, a
    /// generator's yield) comes back as `coroutine.resume` would return it,
    /// for [`step`](Self::step).
    fn run(&mut self, lua: &Lua, args: Args) -> LuaResult<bool> {
        let co = self.co;
        // SAFETY (every block below): `co` is the state of the top coroutine,
        // which the slot `THREADS[id]` anchors (so it is alive) until this
        // future removes it, in a Lua state that is alive (the caller holds
        // it); no Lua code runs between the calls except inside
        // `lua_resume`, which is how coroutines run.
        if let Err(msg) = unsafe { resumable(co) } {
            return self.finish_step(lua, Ok((false, msg).into_lua_multi(lua)?));
        }
        let nargs = match args {
            Args::None => 0,
            Args::True => {
                if unsafe { ffi::lua_checkstack(co, 1) } == 0 {
                    return Err(usage_error("sock", "coroutine stack overflow"));
                }
                unsafe { ffi::lua_pushboolean(co, 1) };
                1
            }
            Args::Number(n) => {
                if unsafe { ffi::lua_checkstack(co, 1) } == 0 {
                    return Err(usage_error("sock", "coroutine stack overflow"));
                }
                unsafe { ffi::lua_pushnumber(co, n) };
                1
            }
            Args::Values(v) => {
                let mut n = None;
                // SAFETY: `exec_raw` runs the closure in a protected call with
                // the values (and nothing else) on `l`'s stack.
                unsafe {
                    lua.exec_raw::<()>(v, |l| {
                        let k = ffi::lua_gettop(l);
                        if ffi::lua_checkstack(co, k) != 0 {
                            ffi::lua_xmove(l, co, k);
                            n = Some(k);
                        }
                    })?;
                }
                n.ok_or_else(|| usage_error("sock", "coroutine stack overflow"))?
            }
        };
        let (ret, nres) = unsafe { resume_raw(co, nargs) };
        // The common end, a thread that returned: its results go (nobody
        // joins a Lua thread) and so does its slot.
        if ret == ffi::LUA_OK && self.depth == 1 && !unsafe { first_is(co, nres, FAILED) } {
            unsafe { ffi::lua_settop(co, 0) };
            self.depth = 0;
            release(lua, self.id)?;
            return Ok(true);
        }
        if ret == ffi::LUA_YIELD {
            if let Some(request) = unsafe { request_raw(co, nres) } {
                unsafe { ffi::lua_settop(co, 0) };
                self.next = match request {
                    Request::Op(expires) => self.drive(lua, expires)?,
                    Request::Sleep(Some(t)) => Next::Sleep(sock::sleep_until(t)),
                    Request::Sleep(None) => Next::Yield(false),
                };
                return Ok(false);
            }
        }
        // What `coroutine.resume` returns: true, values... or false, err.
        // SAFETY: `exec_raw` gives a protected call, with 3 free slots.
        let r = unsafe {
            lua.exec_raw::<LuaMultiValue>((), |l| {
                let ok = matches!(ret, ffi::LUA_OK | ffi::LUA_YIELD);
                // A failed coroutine has its error value on top of its stack.
                let n = if ok { nres } else { 1 };
                if ffi::lua_checkstack(l, n + 1) != 0 {
                    ffi::lua_pushboolean(l, ok as c_int);
                    ffi::lua_xmove(co, l, n);
                }
                ffi::lua_settop(co, 0);
            })
        };
        self.finish_step(lua, r)
    }

    /// The thread is no longer parked in `sock.suspend`.
    fn unsuspend(&self, lua: &Lua) {
        if let Some(s) = lua.app_data_ref::<State>() {
            s.suspended.borrow_mut().remove(&(self.co as usize));
        }
    }

    /// `yield(OP, expires)`: the core's driver of the state's pending call (or
    /// `closed` at once if its socket is gone).
    fn drive(&self, lua: &Lua, expires: Option<f64>) -> LuaResult<Next> {
        let closed = sock::Error::new(sock::ErrorKind::Closed);
        let Some(p) = self.sockets.take_pending() else {
            // Only `lua/sock.lua` yields OP, right after a call left one.
            return Ok(Next::Resume(fail(lua, &closed)?));
        };
        match p.drive(&self.sockets, expires) {
            Ok(d) => Ok(Next::Op(d)),
            Err(p) => Ok(Next::Resume(values_of_error(
                lua,
                &p.op().fail(closed),
                p.op().moves_all(),
            )?)),
        }
    }

    /// [`step`](Self::step) with the thread's slot, and what follows from it:
    /// the new top coroutine, or the slot removed once the thread is done.
    fn finish_step(&mut self, lua: &Lua, r: LuaResult<LuaMultiValue>) -> LuaResult<bool> {
        let slot = Slot::new(lua, self.id)?;
        let co = slot.get(self.depth)?;
        let done = self.step(lua, &slot, &co, r);
        match done {
            Ok(false) => {
                // A transfer or a generator's end changes the top coroutine.
                self.co = slot.get(self.depth)?.state();
            }
            _ => release(lua, self.id)?,
        }
        done
    }
}

/// Removes the slot of the thread `id` (it is done) and frees its key.
fn release(lua: &Lua, id: i64) -> LuaResult<()> {
    threads(lua)?.raw_set(id, LuaValue::Nil)?;
    if let Some(s) = lua.app_data_ref::<State>() {
        s.free_ids.borrow_mut().push(id); // nothing refers to it now
    }
    Ok(())
}

/// What a thread is resumed with.
enum Args {
    /// Nothing (after a sleep or a reschedule).
    None,
    /// `true` (a call that is done).
    True,
    /// A number (the bytes a call moved).
    Number(f64),
    /// Any values (results of a transfer, failures).
    Values(LuaMultiValue),
}

/// The values of the error `e`, to resume a thread with.
fn failed(lua: &Lua, e: &sock::Error) -> LuaResult<Args> {
    fail(lua, e).map(Args::Values)
}

/// What a finished call resumes its thread with: a count or `true` on the
/// raw path, anything else as values.
fn resume_with(
    lua: &Lua,
    sockets: &Rc<Table>,
    d: &sock::op::Drive<Driven>,
    r: sock::Result<Out>,
) -> LuaResult<Args> {
    let (h, all) = (d.op().handle(), d.op().op().moves_all());
    Ok(match r {
        Ok(Out::Count(n)) => Args::Number(n as f64),
        Ok(Out::Done) => Args::True,
        r => Args::Values(values(lua, sockets, h, all, r)?),
    })
}

/// A request that [`request_raw`] found.
enum Request {
    /// `yield(OP, expires)`: drive the pending call.
    Op(Option<f64>),
    /// `yield(SLEEP, t)`: a sleep until `t`, or with `t` nil a reschedule.
    Sleep(Option<f64>),
}

/// Whether the coroutine `co` can be resumed: suspended in a yield, or not
/// started (its function on its stack, no call frame); otherwise the message
/// `coroutine.resume` would give.
///
/// # Safety
///
/// `co` is a live Lua thread.
unsafe fn resumable(co: *mut ffi::lua_State) -> Result<(), &'static str> {
    // SAFETY: by the contract; `lua_Debug` is a plain C struct.
    unsafe {
        let status = ffi::lua_status(co);
        if status == ffi::LUA_YIELD {
            return Ok(());
        }
        if status != ffi::LUA_OK || ffi::lua_gettop(co) == 0 {
            return Err(DEAD);
        }
        let mut ar = std::mem::zeroed::<ffi::lua_Debug>();
        match ffi::lua_getstack(co, 0, &mut ar) {
            0 => Ok(()),
            _ => Err(NOT_SUSPENDED),
        }
    }
}

/// Resumes the coroutine `co` with the `nargs` values on top of its stack:
/// `lua_resume`'s status, and the number of values it yielded or returned.
/// (A coroutine that raised has its error value on top of its stack.)
///
/// This is what LuaJIT's `coroutine.resume` and mlua's `Thread::resume` do
/// once the arguments are on the coroutine's stack; the error value stays
/// as it was raised.
///
/// # Safety
///
/// `co` is a live, resumable Lua thread ([`resumable`]) of the running state,
/// with `nargs` values on top of its stack. `lua_resume` does not raise: it
/// returns the coroutine's errors.
unsafe fn resume_raw(co: *mut ffi::lua_State, nargs: c_int) -> (c_int, c_int) {
    let mut nres: c_int = 0;
    // SAFETY: by the contract.
    let ret = unsafe { ffi::lua_resume(co, std::ptr::null_mut(), nargs, &mut nres) };
    (ret, nres)
}

/// Whether the first of the `nres` values on the stack of `co` is the
/// sentinel `i`.
///
/// # Safety
///
/// `co` is a live Lua thread with at least `nres` values on its stack.
unsafe fn first_is(co: *mut ffi::lua_State, nres: c_int, i: usize) -> bool {
    // SAFETY: by the contract.
    unsafe {
        nres >= 1
            && ffi::lua_type(co, 1) == ffi::LUA_TLIGHTUSERDATA
            && ffi::lua_touserdata(co, 1) == mark(i).0
    }
}

/// The request among the `nres` values that the coroutine `co` yielded
/// (`OP, expires` or `SLEEP, t`), or None for any other yield.
///
/// # Safety
///
/// `co` is a live Lua thread that has just yielded `nres` values, which are
/// all of its stack.
unsafe fn request_raw(co: *mut ffi::lua_State, nres: c_int) -> Option<Request> {
    // SAFETY: by the contract; indices past the top read as none.
    unsafe {
        let op = first_is(co, nres, OP);
        if !op && !first_is(co, nres, SLEEP) {
            return None;
        }
        let t = match ffi::lua_type(co, 2) {
            ffi::LUA_TNUMBER => Some(ffi::lua_tonumber(co, 2)),
            _ => None,
        };
        Some(match op {
            true => Request::Op(t),
            false => Request::Sleep(t),
        })
    }
}

/// Calls the reporter of the thread with its error.
fn report(lua: &Lua, reporter: i64, err: LuaValue, co: &mlua::Thread) {
    // A failing reporter must not take the loop down.
    let f = lua
        .named_registry_value::<LuaTable>(REPORTERS)
        .and_then(|t| t.raw_get::<LuaFunction>(reporter));
    if let Ok(f) = f {
        let _ = f.call::<()>((err, co.clone()));
    }
}

/// What `coroutine.resume` says of a coroutine that has finished.
const DEAD: &str = "cannot resume dead coroutine";

/// What `coroutine.resume` says of a coroutine that is running (the Lua
/// layer refuses with the same words: `R.NOT_SUSPENDED`).
const NOT_SUSPENDED: &str = "cannot resume non-suspended coroutine";

/// The sentinels that mark requests in yields.
const OP: usize = 0;
const TRANSFER: usize = 1;
const FAILED: usize = 2;
const JOIN: usize = 3;
const SLEEP: usize = 4;
const SUSPEND: usize = 5;
const JOBSLEEP: usize = 6;

/// The sentinel `i` (`OP`, `TRANSFER`, `FAILED`, `JOIN`, `SLEEP`, `SUSPEND`,
/// `JOBSLEEP`): distinct addresses, the elements of a static, the same for
/// every state and module load.
fn mark(i: usize) -> LuaLightUserData {
    static MARKS: [u8; 7] = [0; 7];
    LuaLightUserData(&MARKS[i] as *const u8 as *mut _)
}

fn is_mark(v: Option<&LuaValue>, mark: LuaLightUserData) -> bool {
    matches!(v, Some(LuaValue::LightUserData(p)) if *p == mark)
}

impl Future for LuaThread {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.depth == 0 {
                return Poll::Ready(());
            }
            // The state is gone (closed with this thread still parked): done.
            let Some(lua) = this.lua.try_upgrade() else {
                return Poll::Ready(());
            };
            // What to resume the thread with; an error making the values
            // (the state is failing) ends the thread.
            let args = match &mut this.next {
                Next::Start => Ok(Args::None),
                Next::Resume(args) => Ok(Args::Values(std::mem::take(args))),
                Next::Op(d) => match Pin::new(&mut *d).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => resume_with(&lua, &this.sockets, d, r),
                },
                Next::Sleep(s) => match Pin::new(s).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => Ok(Args::None),
                    Poll::Ready(Err(e)) => failed(&lua, &e),
                },
                Next::Join(f) => match Pin::new(f).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => Ok(Args::True),
                },
                Next::Suspend(s, target) => {
                    let r = match Pin::new(&mut *s).poll(cx) {
                        // Parked; then the thread it hands control to runs
                        // (which may hand control back at once: look again).
                        Poll::Pending => match target.take().map(sock::resume) {
                            None => return Poll::Pending,
                            Some(Ok(())) => continue,
                            Some(Err(e)) => Err(e),
                        },
                        Poll::Ready(r) => r,
                    };
                    this.unsuspend(&lua);
                    r.map_or_else(|e| failed(&lua, &e), |()| Ok(Args::None))
                }
                Next::Lookup(f) => match f.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => crate::addr::lookup_values(&lua, r).map(Args::Values),
                },
                Next::JobSleep(s) => match Pin::new(s).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(true)) => Ok(Args::True),
                    Poll::Ready(Ok(false)) => Ok(Args::None),
                    Poll::Ready(Err(e)) => failed(&lua, &e),
                },
                Next::Yield(done) => {
                    if !*done {
                        *done = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Ok(Args::None)
                }
            };
            let Ok(args) = args else {
                return Poll::Ready(());
            };
            this.next = Next::Resume(LuaMultiValue::new());
            match this.run(&lua, args) {
                Ok(false) => continue,
                Ok(true) | Err(_) => return Poll::Ready(()),
            }
        }
    }
}

/// `R.reporter(report)`: the number of the error reporter `report(err, co)`
/// of a module load, for `R.spawn`. Each load has its own: after a reload
/// (`package.loaded.sock = nil; require'sock'`) each module's threads still
/// report to that module's `sock.onerror`.
fn reporter(lua: &Lua, report: LuaFunction) -> LuaResult<i64> {
    // REPORTERS[f] = i, REPORTERS[i] = f.
    let reporters: LuaTable = lua.named_registry_value(REPORTERS)?;
    if let Some(i) = reporters.raw_get::<Option<i64>>(&report)? {
        return Ok(i);
    }
    let i = reporters.raw_len() as i64 + 1;
    reporters.raw_set(i, &report)?;
    reporters.raw_set(report, i)?;
    Ok(i)
}

/// `R.spawn(co, reporter)`: starts the coroutine `co` as a sock thread at
/// once. `co` waits in its first yield with its function and arguments in
/// place (`lua/sock.lua`'s `newthread` put them there), so the start is a
/// resume like every other, on the raw path; `reporter` is the number that
/// `R.reporter` gave for the module load that made it.
fn spawn(lua: &Lua, (co, reporter): (mlua::Thread, i64)) -> LuaResult<()> {
    let fut = LuaThread::new(lua, co, reporter)?;
    lp(lua)?.enter(|| {
        sock::newthread_detached(fut);
    });
    Ok(())
}

impl LuaThread {
    /// The future of a sock thread running the coroutine `co`, which waits in
    /// its first yield with its function and arguments in place; `reporter`:
    /// see [`spawn`].
    pub(crate) fn new(lua: &Lua, co: mlua::Thread, reporter: i64) -> LuaResult<LuaThread> {
        let (id, threads, sockets) = match lua.app_data_ref::<State>() {
            Some(s) => {
                let id = s.free_ids.borrow_mut().pop().unwrap_or_else(|| {
                    let id = s.next_id.get();
                    s.next_id.set(id + 1);
                    id
                });
                (id, s.threads.clone(), Rc::clone(&s.sockets))
            }
            None => return Err(usage_error("sock", "module not initialized")),
        };
        let co_state = co.state();
        threads.raw_set(id, co)?;
        Ok(LuaThread {
            lua: lua.weak(),
            id,
            co: co_state,
            depth: 1,
            reporter,
            sockets,
            next: Next::Start,
        })
    }
}

/// `R.resume(co)`: runs the thread parked in `sock.suspend` by the coroutine
/// `co`, now, until it next blocks: true, or false and why not.
fn resume(lua: &Lua, co: mlua::Thread) -> LuaResult<(bool, Option<String>)> {
    let Some(id) = suspended(lua, &co) else {
        let why = match co.status() {
            LuaThreadStatus::Finished | LuaThreadStatus::Error => "the thread has finished",
            LuaThreadStatus::Running | LuaThreadStatus::Normal => "the thread is running",
            LuaThreadStatus::Resumable => {
                "the thread is not suspended (it waits for I/O or a time, or is no sock thread)"
            }
        };
        return Ok((false, Some(why.to_owned())));
    };
    match lp(lua)?.enter(|| sock::resume(id)) {
        Ok(()) => Ok((true, None)),
        Err(e) => Ok((false, Some(e.message().to_owned()))),
    }
}

/// `R.poll(timeout)`: one iteration of this state's loop.
fn poll(lua: &Lua, timeout: Option<f64>) -> LuaResult<LuaMultiValue> {
    match lp(lua)?.enter(|| sock::poll(timeout)) {
        Ok(true) => true.into_lua_multi(lua),
        Ok(false) => (false, "timeout").into_lua_multi(lua),
        Err(e) if e.kind() == sock::ErrorKind::Empty => (false, "empty").into_lua_multi(lua),
        Err(e) if e.kind() == sock::ErrorKind::InvalidArgument => {
            Err(usage_error("sock.poll", e.message()))
        }
        Err(e) => fail(lua, &e),
    }
}

/// `R.start([timeout])`: runs this state's loop until its threads and timers
/// are done or `stop`, for at most `timeout` seconds: true, or false,
/// 'timeout' when the time ran out.
fn start(lua: &Lua, timeout: Option<f64>) -> LuaResult<LuaMultiValue> {
    let r = match timeout {
        None => lp(lua)?.enter(sock::start).map(|()| true),
        Some(t) => lp(lua)?.enter(|| sock::start_for(t)),
    };
    match r {
        Ok(true) => true.into_lua_multi(lua),
        Ok(false) => (false, "timeout").into_lua_multi(lua),
        Err(e) if e.kind() == sock::ErrorKind::InvalidArgument => {
            Err(usage_error("sock.start", e.message()))
        }
        Err(e) => fail(lua, &e),
    }
}

/// The value kept in the registry under `key`, made by `make` the first time.
fn per_state<T: FromLua + IntoLua + Clone>(
    lua: &Lua,
    key: &str,
    make: impl FnOnce() -> LuaResult<T>,
) -> LuaResult<T> {
    if let Some(v) = lua.named_registry_value::<Option<T>>(key)? {
        return Ok(v);
    }
    let v = make()?;
    lua.set_named_registry_value(key, v.clone())?;
    Ok(v)
}

/// Adds the scheduler's primitives to `R` and this state's loop.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    let threads = per_state(lua, THREADS, || lua.create_table())?;
    per_state(lua, REPORTERS, || lua.create_table())?;
    if lua.app_data_ref::<State>().is_none() {
        lua.set_app_data(State {
            sockets: crate::socket::table(lua)?,
            next_id: Cell::new(1),
            free_ids: RefCell::new(Vec::new()),
            threads,
            suspended: RefCell::new(HashMap::new()),
        });
    }
    r.set("NOT_SUSPENDED", NOT_SUSPENDED)?;
    r.set("OP", mark(OP))?;
    r.set("SLEEP", mark(SLEEP))?;
    r.set("TRANSFER", mark(TRANSFER))?;
    r.set("FAILED", mark(FAILED))?;
    r.set("JOIN", mark(JOIN))?;
    r.set("SUSPEND", mark(SUSPEND))?;
    r.set("JOBSLEEP", mark(JOBSLEEP))?;
    // Shared by every load of the module in this state (a reload must agree
    // with the threads of the first): the standard coroutine functions, as
    // they were before the first load replaced them, and the weak set of the
    // coroutines that sock threads are running now.
    let coroutine: LuaTable = lua.globals().get("coroutine")?;
    r.set(
        "co_resume",
        per_state(lua, "sock.coroutine.resume", || {
            coroutine.get::<LuaFunction>("resume")
        })?,
    )?;
    r.set(
        "co_wrap",
        per_state(lua, "sock.coroutine.wrap", || {
            coroutine.get::<LuaFunction>("wrap")
        })?,
    )?;
    let weak_keys = || {
        let t = lua.create_table()?;
        let mt = lua.create_table()?;
        mt.set("__mode", "k")?;
        t.set_metatable(Some(mt))?;
        Ok(t)
    };
    r.set("active", per_state(lua, "sock.active", weak_keys)?)?;
    r.set("spawn", lua.create_function(spawn)?)?;
    r.set("resume", lua.create_function(resume)?)?;
    r.set(
        "suspended",
        lua.create_function(|lua, co: mlua::Thread| Ok(suspended(lua, &co).is_some()))?,
    )?;
    r.set("reporter", lua.create_function(reporter)?)?;
    r.set("poll", lua.create_function(poll)?)?;
    r.set("start", lua.create_function(start)?)?;
    r.set(
        "stop",
        lua.create_function(|lua, ()| lp(lua).map(|l| l.enter(sock::stop)))?,
    )?;
    r.set("clock", lua.create_function(|_, ()| Ok(sock::clock()))?)?;
    // The test hook of a slow resolver (`sock._lookup_delay`, for tests).
    r.set(
        "lookup_delay",
        lua.create_function(|_, s: f64| {
            sock::set_lookup_delay(s);
            Ok(())
        })?,
    )?;
    r.set(
        "epoll_fd",
        lua.create_function(|lua, fd: Option<i32>| {
            let l = lp(lua)?;
            let r = l.enter(|| match fd {
                Some(fd) => sock::set_epoll_fd(fd).map(|()| fd),
                None => sock::epoll_fd(),
            });
            crate::error::ret(lua, r)
        })?,
    )?;
    Ok(())
}
