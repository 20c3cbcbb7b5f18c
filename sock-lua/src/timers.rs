//! `sock.runat`, `sock.runafter`, `sock.runevery`: Lua functions run in new
//! sock threads when their time comes, over the core's timed jobs
//! ([`sock::run_at`], [`sock::run_every`]).
//!
//! A pending timer is a job of the state's loop (an entry of its timer heap)
//! and a number: `lua/sock.lua` keeps the function under that number. When
//! the job's time comes, `R.timer_thread(n, once)` (Lua) gives the
//! coroutine of the run, ready to start as `newthread` leaves one, and the
//! job runs it as a sock thread ([`LuaThread`]). A repeating job is armed
//! again when its run ends; a run whose function returns false cancels its
//! timer from Lua.

use mlua::prelude::*;

use crate::error::{fail, usage_error};
use crate::sched::LuaThread;
use crate::state::lp;

/// The userdata of a pending timer (`__name` "sock.timer").
struct LTimer(sock::Timer);

impl LuaUserData for LTimer {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.timer");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("cancel", |_, t, ()| Ok(t.0.cancel()));
        m.add_method("pending", |_, t, ()| Ok(t.0.is_pending()));
    }
}

/// The sock thread of a run of the timer `n`: the coroutine that Lua's
/// `R.timer_thread` makes, or none (a thread that ends at once) when Lua has
/// no function under `n` any more.
fn run_of(lua: &mlua::WeakLua, n: f64, once: bool, reporter: i64) -> Option<LuaThread> {
    let lua = lua.try_upgrade()?;
    let makers: LuaTable = lua.named_registry_value(TIMER_THREADS).ok()?;
    let make: LuaFunction = makers.raw_get(reporter).ok()?;
    let co: Option<mlua::Thread> = make.call((n, once)).ok()?;
    LuaThread::new(&lua, co?, reporter).ok()
}

/// The run as a future: the thread, or nothing to do.
async fn run(thread: Option<LuaThread>) {
    if let Some(t) = thread {
        t.await;
    }
}

/// The registry table of the `R.timer_thread` functions of the module's
/// loads, by the number of the load's error reporter (a reload keeps its
/// own timers: each load has its table of timer functions).
const TIMER_THREADS: &str = "sock.timer_threads";

/// `R.runat(t, n, reporter)`: the timer that runs Lua's function `n` once
/// at `t` on the clock.
fn runat(lua: &Lua, (t, n, reporter): (f64, f64, i64)) -> LuaResult<LuaMultiValue> {
    let weak = lua.weak();
    let r = lp(lua)?.enter(|| sock::run_at(t, move || run(run_of(&weak, n, true, reporter))));
    timer(lua, "sock.runat", r)
}

/// `R.runevery(s, n, reporter)`: the timer that runs Lua's function `n`
/// every `s` seconds.
fn runevery(lua: &Lua, (s, n, reporter): (f64, f64, i64)) -> LuaResult<LuaMultiValue> {
    let weak = lua.weak();
    let r = lp(lua)?.enter(|| {
        sock::run_every(s, move || {
            let thread = run_of(&weak, n, false, reporter);
            async move {
                run(thread).await;
                true // a run that returned false has cancelled the timer
            }
        })
    });
    timer(lua, "sock.runevery", r)
}

/// The timer userdata, or the error: a bad time raises.
fn timer(lua: &Lua, func: &str, r: sock::Result<sock::Timer>) -> LuaResult<LuaMultiValue> {
    match r {
        Ok(t) => LTimer(t).into_lua_multi(lua),
        Err(e) if e.kind() == sock::ErrorKind::InvalidArgument => {
            Err(usage_error(func, e.message()))
        }
        Err(e) => fail(lua, &e),
    }
}

/// `R.set_timer_thread(reporter, f)`: the function that gives the
/// coroutines of the runs of the timers of the module load whose reporter
/// is `reporter`.
fn set_timer_thread(lua: &Lua, (reporter, f): (i64, LuaFunction)) -> LuaResult<()> {
    let makers = match lua.named_registry_value::<Option<LuaTable>>(TIMER_THREADS)? {
        Some(t) => t,
        None => {
            let t = lua.create_table()?;
            lua.set_named_registry_value(TIMER_THREADS, &t)?;
            t
        }
    };
    makers.raw_set(reporter, f)
}

/// Adds `R.runat`, `R.runevery` and `R.set_timer_thread` to `R`.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    r.set("runat", lua.create_function(runat)?)?;
    r.set("runevery", lua.create_function(runevery)?)?;
    r.set("set_timer_thread", lua.create_function(set_timer_thread)?)?;
    Ok(())
}
