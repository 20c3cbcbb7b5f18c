//! `sock.sleep_job()`: a sleep that another thread can cut short, over the
//! core's [`sock::SleepJob`] (its timer is the loop's own).
//!
//! The userdata holds the job; `lua/sock.lua` makes the object around it:
//! `sj:sleep_until(t)` yields `JOBSLEEP, job, t` to the scheduler
//! (`sched.rs`), which resumes the thread with `true` when `sj:wakeup` came
//! first and with nothing when the time ran its course; the wake-up's values
//! pass in Lua.

use mlua::prelude::*;

/// The userdata of a sleep job (`__name` "sock.sleep_job").
pub(crate) struct LSleepJob(sock::SleepJob);

impl LSleepJob {
    /// The sleep until `t` on the clock, for the scheduler.
    pub(crate) fn sleep_until(&self, t: f64) -> sock::JobSleep {
        self.0.sleep_until(t)
    }
}

impl LuaUserData for LSleepJob {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.sleep_job");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        // Whether a thread sleeps on the job now.
        m.add_method("sleeping", |_, j, ()| Ok(j.0.is_sleeping()));
        // Ends the sleep in progress: whether there was one.
        m.add_method("wakeup", |_, j, ()| Ok(j.0.wakeup()));
    }
}

/// Adds `R.sleep_job()` to `R`.
pub(crate) fn register(lua: &Lua, r: &LuaTable) -> LuaResult<()> {
    r.set(
        "sleep_job",
        lua.create_function(|_, ()| Ok(LSleepJob(sock::SleepJob::new())))?,
    )
}
