//! Threads: Lua coroutines scheduled by the core's loop.
//!
//! Each Lua state gets its own [`sock::Loop`] (in its app data), entered around
//! every call that starts threads, makes sockets or runs the loop, so that two
//! states on one OS thread never run each other's threads.
//!
//! A sock thread is a core thread whose future ([`LuaThread`]) resumes a Lua
//! coroutine. Rust never yields: the Lua layer (`lua/sock.lua`) makes a
//! non-blocking attempt through a primitive and, when it would block, yields
//! the request to this future (approach "c2" of the binding notes):
//!
//! * `yield(WAIT, socket, dir, expires)`: park on the socket's direction with a
//!   deadline (a core [`sock::Wait`]); resumed with `true` (try again) or
//!   `nil, err, code, msg` (`timeout`, `closed`, `busy`);
//! * `yield(WAIT, nil, nil, t)`: sleep until `t` (a core [`sock::Sleep`]); with
//!   `t` nil, yield once to the other threads;
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
//! The future resumes coroutines through Lua's own `coroutine.resume`, so that
//! an error value reaches the consumer (or `sock.onerror`) as it was raised,
//! and it keeps the Lua values of a parked thread in a Lua table (its slot in
//! the registry), not as mlua references: see [`LuaThread`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use mlua::prelude::*;

use crate::error::{fail, usage_error};

/// The per-state data of the scheduler.
pub(crate) struct State {
    /// The loop of this Lua state.
    pub(crate) lp: Rc<sock::Loop>,
    /// The key of the next thread in the registry table [`THREADS`].
    next_id: Cell<i64>,
}

/// The loop of `lua`'s state.
pub(crate) fn lp(lua: &Lua) -> LuaResult<Rc<sock::Loop>> {
    match lua.app_data_ref::<State>() {
        Some(s) => Ok(Rc::clone(&s.lp)),
        None => Err(usage_error("sock", "module not initialized")),
    }
}

/// The registry table of the Lua values of the live threads: thread id ->
/// slot (see [`LuaThread`]).
const THREADS: &str = "sock.threads";

/// What a suspended Lua thread waits for, and then what it is resumed with.
enum Next {
    Resume(LuaMultiValue),
    Io(sock::Wait),
    Sleep(sock::Sleep),
    Yield(bool),
}

/// The future of one sock thread.
///
/// Its Lua values live in Lua, in its slot, the table `THREADS[id]`:
/// `slot[1..depth]` is the stack of coroutines (the consumer at the bottom and
/// the generators it resumed through the trampoline above it), `slot.report`
/// the error reporter and `slot.resume` Lua's `coroutine.resume`. A parked
/// thread holds no mlua reference: mlua keeps those on one auxiliary Lua
/// stack, which LuaJIT limits to about 8000 slots, and that would cap the
/// number of threads that can wait at once.
struct LuaThread {
    lua: mlua::WeakLua,
    id: i64,
    depth: usize,
    next: Next,
}

impl LuaThread {
    /// Turns what the top coroutine yielded or returned into what comes next;
    /// returns true when the whole thread is done.
    fn step(
        &mut self,
        lua: &Lua,
        slot: &LuaTable,
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
                report(slot, err, co);
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
                    report(slot, err, co);
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
        if is_mark(vals.front(), mark(WAIT)) {
            vals.pop_front();
            self.next = wait_request(vals)?;
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
    fn pop(&mut self, slot: &LuaTable) -> LuaResult<()> {
        slot.raw_set(self.depth, LuaValue::Nil)?;
        self.depth -= 1;
        Ok(())
    }

    /// `TRANSFER, co, args...`: run the generator `co` for the coroutine on top.
    fn transfer(&mut self, lua: &Lua, slot: &LuaTable, mut vals: LuaMultiValue) -> LuaResult<Next> {
        let co = match vals.pop_front() {
            Some(LuaValue::Thread(co)) => co,
            _ => return Err(usage_error("sock.cowrap", "transfer without a coroutine")),
        };
        let refuse = |msg: &str| Ok(Next::Resume((false, msg).into_lua_multi(lua)?));
        if co.status() != LuaThreadStatus::Resumable {
            return refuse("cannot resume dead coroutine");
        }
        for i in 1..=self.depth {
            if slot.raw_get::<mlua::Thread>(i)? == co {
                return refuse("cannot resume non-suspended coroutine");
            }
        }
        self.depth += 1;
        slot.raw_set(self.depth, co)?;
        Ok(Next::Resume(vals))
    }

    /// One step of the thread: resumes its top coroutine with `args` and
    /// handles what comes out. Ok(true) when the thread is done.
    fn run(&mut self, lua: &Lua, args: LuaMultiValue) -> LuaResult<bool> {
        let threads: LuaTable = lua.named_registry_value(THREADS)?;
        let slot: LuaTable = threads.raw_get(self.id)?;
        let co: mlua::Thread = slot.raw_get(self.depth)?;
        let resume: LuaFunction = slot.raw_get("resume")?;
        let mut all = args;
        all.push_front(LuaValue::Thread(co.clone()));
        let r = resume.call::<LuaMultiValue>(all);
        let done = self.step(lua, &slot, &co, r);
        if !matches!(done, Ok(false)) {
            threads.raw_set(self.id, LuaValue::Nil)?;
        }
        done
    }
}

/// Calls the reporter of the thread with its error.
fn report(slot: &LuaTable, err: LuaValue, co: &mlua::Thread) {
    // A failing reporter must not take the loop down.
    if let Ok(f) = slot.raw_get::<LuaFunction>("report") {
        let _ = f.call::<()>((err, co.clone()));
    }
}

/// The sentinels that mark requests in yields.
const WAIT: usize = 0;
const TRANSFER: usize = 1;
const FAILED: usize = 2;

/// The sentinel `i` (`WAIT`, `TRANSFER`, `FAILED`): distinct addresses, the
/// elements of a static, the same for every state and module load.
fn mark(i: usize) -> LuaLightUserData {
    static MARKS: [u8; 3] = [0; 3];
    LuaLightUserData(&MARKS[i] as *const u8 as *mut _)
}

fn is_mark(v: Option<&LuaValue>, mark: LuaLightUserData) -> bool {
    matches!(v, Some(LuaValue::LightUserData(p)) if *p == mark)
}

/// Parses `socket, dir, expires` (or `nil, nil, t` for a sleep).
fn wait_request(vals: LuaMultiValue) -> LuaResult<Next> {
    let mut it = vals.into_iter();
    let (obj, dir, expires) = (it.next(), it.next(), it.next());
    let expires = match expires {
        Some(LuaValue::Number(t)) => Some(t),
        Some(LuaValue::Integer(t)) => Some(t as f64),
        _ => None,
    };
    match obj {
        Some(LuaValue::UserData(ud)) => {
            let dir = match dir {
                Some(LuaValue::Integer(1)) | Some(LuaValue::Number(1.0)) => sock::Direction::Write,
                _ => sock::Direction::Read,
            };
            let s = ud.borrow::<crate::socket::LSock>()?;
            Ok(Next::Io(s.wait(dir, expires)))
        }
        _ => Ok(match expires {
            Some(t) => Next::Sleep(sock::sleep_until(t)),
            None => Next::Yield(false),
        }),
    }
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
            let args = match &mut this.next {
                Next::Resume(args) => std::mem::take(args),
                Next::Io(w) => match Pin::new(w).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => LuaMultiValue::from_iter([LuaValue::Boolean(true)]),
                    Poll::Ready(Err(e)) => match fail(&lua, &e) {
                        Ok(v) => v,
                        Err(_) => return Poll::Ready(()),
                    },
                },
                Next::Sleep(s) => match Pin::new(s).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => LuaMultiValue::new(),
                    Poll::Ready(Err(e)) => match fail(&lua, &e) {
                        Ok(v) => v,
                        Err(_) => return Poll::Ready(()),
                    },
                },
                Next::Yield(done) => {
                    if !*done {
                        *done = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    LuaMultiValue::new()
                }
            };
            this.next = Next::Resume(LuaMultiValue::new());
            match this.run(&lua, args) {
                Ok(false) => continue,
                Ok(true) | Err(_) => return Poll::Ready(()),
            }
        }
    }
}

/// `R.spawn(co, report, resume, ...)`: starts the coroutine `co` as a sock
/// thread at once; `report(err, co)` receives its error if it raises, and
/// `resume` is Lua's `coroutine.resume` (which, unlike a resume from Rust,
/// returns an error value as it was raised). Both come with each thread, from
/// the module table that made it: after a reload (`package.loaded.sock = nil;
/// require'sock'`) each module's threads still report to that module's
/// `sock.onerror`.
fn spawn(
    lua: &Lua,
    (co, report, resume, args): (mlua::Thread, LuaFunction, LuaFunction, LuaMultiValue),
) -> LuaResult<()> {
    let id = match lua.app_data_ref::<State>() {
        Some(s) => {
            let id = s.next_id.get();
            s.next_id.set(id + 1);
            id
        }
        None => return Err(usage_error("sock", "module not initialized")),
    };
    let slot = lua.create_table()?;
    slot.raw_set(1, co)?;
    slot.raw_set("report", report)?;
    slot.raw_set("resume", resume)?;
    let threads: LuaTable = lua.named_registry_value(THREADS)?;
    threads.raw_set(id, slot)?;
    let fut = LuaThread {
        lua: lua.weak(),
        id,
        depth: 1,
        next: Next::Resume(args),
    };
    lp(lua)?.enter(|| {
        sock::newthread(fut);
    });
    Ok(())
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

/// `R.start()`: runs this state's loop until its threads are done or `stop`.
fn start(lua: &Lua, (): ()) -> LuaResult<LuaMultiValue> {
    match lp(lua)?.enter(sock::start) {
        Ok(()) => true.into_lua_multi(lua),
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
    if lua.app_data_ref::<State>().is_none() {
        lua.set_app_data(State {
            lp: Rc::new(sock::Loop::new()),
            next_id: Cell::new(1),
        });
    }
    r.set("WAIT", mark(WAIT))?;
    r.set("TRANSFER", mark(TRANSFER))?;
    r.set("FAILED", mark(FAILED))?;
    per_state(lua, THREADS, || lua.create_table())?;
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
    r.set("poll", lua.create_function(poll)?)?;
    r.set("start", lua.create_function(start)?)?;
    r.set(
        "stop",
        lua.create_function(|lua, ()| lp(lua).map(|l| l.enter(sock::stop)))?,
    )?;
    r.set("clock", lua.create_function(|_, ()| Ok(sock::clock()))?)?;
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
