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
}

/// The loop of `lua`'s state.
pub(crate) fn lp(lua: &Lua) -> LuaResult<Rc<sock::Loop>> {
    match lua.app_data_ref::<State>() {
        Some(s) => Ok(Rc::clone(&s.lp)),
        None => Err(usage_error("sock", "module not initialized")),
    }
}

/// The sentinels that mark requests in yields, and the error reporter.
#[derive(Clone)]
struct Protocol {
    wait: LuaLightUserData,
    transfer: LuaLightUserData,
    failed: LuaLightUserData,
    report: LuaFunction,
}

/// What a suspended Lua thread waits for, and then what it is resumed with.
enum Next {
    Resume(LuaMultiValue),
    Io(sock::Wait),
    Sleep(sock::Sleep),
    Yield(bool),
}

/// The future of one sock thread: a stack of coroutines, the consumer at the
/// bottom and the generators it resumed through the trampoline above it.
struct LuaThread {
    lua: mlua::WeakLua,
    stack: Vec<mlua::Thread>,
    next: Next,
    proto: Protocol,
}

impl LuaThread {
    /// Turns what the top coroutine yielded or returned into what comes next;
    /// returns true when the whole thread is done.
    fn step(
        &mut self,
        lua: &Lua,
        co: &mlua::Thread,
        r: LuaResult<LuaMultiValue>,
    ) -> LuaResult<bool> {
        let finished = co.status() != LuaThreadStatus::Resumable;
        let vals = match r {
            Ok(v) => v,
            Err(e) => {
                // A coroutine that raised without the xpcall wrapper (a plain
                // generator): its error as a string.
                self.stack.pop();
                let msg = e.to_string();
                if self.stack.is_empty() {
                    self.report(lua, LuaValue::String(lua.create_string(&msg)?), co)?;
                    return Ok(true);
                }
                self.next = Next::Resume((false, msg).into_lua_multi(lua)?);
                return Ok(false);
            }
        };
        if finished {
            self.stack.pop();
            let failed = is_mark(vals.front(), self.proto.failed);
            if self.stack.is_empty() {
                if failed {
                    let err = vals.get(1).cloned().unwrap_or(LuaValue::Nil);
                    self.report(lua, err, co)?;
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
        let mut vals = vals;
        if is_mark(vals.front(), self.proto.wait) {
            vals.pop_front();
            self.next = wait_request(lua, vals)?;
        } else if is_mark(vals.front(), self.proto.transfer) {
            vals.pop_front();
            self.next = self.transfer(lua, vals)?;
        } else if self.stack.len() > 1 {
            // A generator yielded values to its consumer; it stays suspended.
            self.stack.pop();
            vals.push_front(LuaValue::Boolean(true));
            self.next = Next::Resume(vals);
        } else {
            self.next = Next::Yield(false);
        }
        Ok(false)
    }

    /// `TRANSFER, co, args...`: run the generator `co` for the coroutine on top.
    fn transfer(&mut self, lua: &Lua, mut vals: LuaMultiValue) -> LuaResult<Next> {
        let co = match vals.pop_front() {
            Some(LuaValue::Thread(co)) => co,
            _ => return Err(usage_error("sock.cowrap", "transfer without a coroutine")),
        };
        let refuse = |msg: &str| Ok(Next::Resume((false, msg).into_lua_multi(lua)?));
        if co.status() != LuaThreadStatus::Resumable {
            return refuse("cannot resume dead coroutine");
        }
        if self.stack.iter().any(|c| c == &co) {
            return refuse("cannot resume non-suspended coroutine");
        }
        self.stack.push(co);
        Ok(Next::Resume(vals))
    }

    fn report(&self, lua: &Lua, err: LuaValue, co: &mlua::Thread) -> LuaResult<()> {
        let _ = lua;
        // A failing reporter must not take the loop down.
        let _ = self.proto.report.call::<()>((err, co.clone()));
        Ok(())
    }
}

fn is_mark(v: Option<&LuaValue>, mark: LuaLightUserData) -> bool {
    matches!(v, Some(LuaValue::LightUserData(p)) if *p == mark)
}

/// Parses `socket, dir, expires` (or `nil, nil, t` for a sleep).
fn wait_request(lua: &Lua, vals: LuaMultiValue) -> LuaResult<Next> {
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
            None => {
                let _ = lua;
                Next::Yield(false)
            }
        }),
    }
}

impl Future for LuaThread {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let Some(co) = this.stack.last().cloned() else {
                return Poll::Ready(());
            };
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
            let r = co.resume::<LuaMultiValue>(args);
            match this.step(&lua, &co, r) {
                Ok(false) => continue,
                Ok(true) | Err(_) => return Poll::Ready(()),
            }
        }
    }
}

/// `R.spawn(co, ...)`: starts the coroutine `co` as a sock thread at once.
fn spawn(lua: &Lua, (co, args): (mlua::Thread, LuaMultiValue)) -> LuaResult<()> {
    let r: LuaTable = lua.named_registry_value("sock.R")?;
    let proto = Protocol {
        wait: r.get("WAIT")?,
        transfer: r.get("TRANSFER")?,
        failed: r.get("FAILED")?,
        report: r.get("report")?,
    };
    let fut = LuaThread {
        lua: lua.weak(),
        stack: vec![co],
        next: Next::Resume(args),
        proto,
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

/// Adds the scheduler's primitives to `R` and this state's loop.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    if lua.app_data_ref::<State>().is_none() {
        lua.set_app_data(State {
            lp: Rc::new(sock::Loop::new()),
        });
    }
    // Distinct addresses for the sentinels: fields of a static.
    static MARKS: [u8; 3] = [0; 3];
    r.set("WAIT", LuaLightUserData(&MARKS[0] as *const u8 as *mut _))?;
    r.set(
        "TRANSFER",
        LuaLightUserData(&MARKS[1] as *const u8 as *mut _),
    )?;
    r.set("FAILED", LuaLightUserData(&MARKS[2] as *const u8 as *mut _))?;
    lua.set_named_registry_value("sock.R", r.clone())?;
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
