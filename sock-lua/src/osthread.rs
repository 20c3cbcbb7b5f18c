//! OS threads from Lua: `sock.osthread(f | code, ...)` runs a function (its
//! bytecode, from `string.dump`) or a chunk of Lua source in a new OS thread,
//! in a fresh Lua state that has the standard libraries and `sock` loaded and
//! whose loop shares the poller of the state that started it; `t:join()`
//! returns `true, results...` or `false, err`.
//!
//! Lua values cannot cross states, so the arguments and the results are
//! copied: nil, booleans, numbers and strings only (anything else is an
//! argument error when starting, and the thread's error when returning).
//!
//! Joining inside a sock thread parks only that thread: the scheduler awaits
//! [`Finished`] (the request `yield(JOIN, t)` of `lua/sock.lua`), which the OS
//! thread wakes through the loop's cross-thread waker when it is done.
//! Outside sock threads, `join` blocks the OS thread. A handle collected
//! without a join detaches the thread.
//!
//! The OS thread publishes its outcome only once its Lua state is closed (its
//! sockets with it), so that a join never waits for that cleanup.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use mlua::prelude::*;

use crate::error::{usage_error, Arg};

/// A value that can cross from one Lua state to another.
#[derive(Debug, Clone)]
enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(Vec<u8>),
}

impl Val {
    /// The copy of `v`, or the name of its type if it cannot cross.
    fn from_lua(v: &LuaValue) -> Result<Val, String> {
        Ok(match v {
            LuaValue::Nil => Val::Nil,
            LuaValue::Boolean(b) => Val::Bool(*b),
            LuaValue::Integer(i) => Val::Int(*i),
            LuaValue::Number(n) => Val::Num(*n),
            LuaValue::String(s) => Val::Str(s.as_bytes().to_vec()),
            // LuaJIT's cdata is the only value mlua calls "other".
            LuaValue::Other(..) => return Err("cdata".to_owned()),
            other => return Err(other.type_name().to_owned()),
        })
    }

    fn into_lua(self, lua: &Lua) -> LuaResult<LuaValue> {
        Ok(match self {
            Val::Nil => LuaValue::Nil,
            Val::Bool(b) => LuaValue::Boolean(b),
            Val::Int(i) => LuaValue::Integer(i),
            Val::Num(n) => LuaValue::Number(n),
            Val::Str(s) => LuaValue::String(lua.create_string(s)?),
        })
    }
}

/// What the OS thread leaves: its results, or its error's text.
type Outcome = Result<Vec<Val>, String>;

/// Shared by the OS thread and its handle.
#[derive(Default)]
struct Shared {
    outcome: Option<Outcome>,
    /// Set once the outcome is published.
    done: bool,
    /// The sock thread waiting in `join`.
    waker: Option<Waker>,
}

/// The handle of an OS thread (`sock.osthread`'s result, `__name`
/// "sock.osthread").
pub(crate) struct LOsThread {
    shared: Arc<Mutex<Shared>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The future a sock thread awaits in `join`: ready once the OS thread has
/// published its outcome.
pub(crate) struct Finished(Arc<Mutex<Shared>>);

impl Future for Finished {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.0);
        if s.done {
            return Poll::Ready(());
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl LOsThread {
    /// The future of a join from a sock thread.
    pub(crate) fn finished(&self) -> Finished {
        Finished(Arc::clone(&self.shared))
    }

    /// `true, results...` or `false, err`, once: a second join raises.
    fn take(&self, lua: &Lua) -> LuaResult<LuaMultiValue> {
        // The thread has published: joining it waits for its exit only.
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        let outcome = lock(&self.shared).outcome.take();
        match outcome {
            Some(Ok(vals)) => {
                let mut out = LuaMultiValue::new();
                out.push_back(LuaValue::Boolean(true));
                for v in vals {
                    out.push_back(v.into_lua(lua)?);
                }
                Ok(out)
            }
            Some(Err(msg)) => (false, msg).into_lua_multi(lua),
            None => Err(Arg::new("t:join", 1, "self").error("thread already joined")),
        }
    }
}

impl LuaUserData for LOsThread {
    fn add_fields<F: LuaUserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(LuaMetaMethod::Type, "sock.osthread");
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        // Whether the thread has finished (its outcome can be taken at once).
        m.add_method("done", |_, t, ()| Ok(lock(&t.shared).done));
        // The blocking join, outside sock threads.
        m.add_method("join_blocking", |lua, t, ()| t.take(lua));
        // The outcome, after the scheduler's wait (`Finished`).
        m.add_method("outcome", |lua, t, ()| t.take(lua));
    }
}

/// The body of the OS thread: a new state, `sock` in it, the shared poller,
/// the chunk called with the arguments.
/// The function that builds the module in a state (`crate::open`, handed
/// down by the module so that this layer does not reach up to it).
pub(crate) type Open = fn(&Lua) -> LuaResult<LuaTable>;

fn run(
    open: Open,
    code: Vec<u8>,
    name: String,
    args: Vec<Val>,
    poller: Option<sock::SharedPoller>,
) -> Outcome {
    // SAFETY: an unrestricted state (FFI, debug, C modules), as the state
    // that started the thread is: `sock` itself needs the FFI. The state is
    // used on this OS thread only and closed before the thread ends.
    let lua = unsafe { Lua::unsafe_new_with(LuaStdLib::ALL, LuaOptions::new()) };
    let outcome = (|| -> LuaResult<Outcome> {
        let m = open(&lua)?;
        let loaded: LuaTable = lua.globals().get::<LuaTable>("package")?.get("loaded")?;
        loaded.set("sock", &m)?;
        if let Some(p) = poller {
            crate::state::lp(&lua)?
                .enter(|| p.join())
                .map_err(|e| usage_error("sock.osthread", e))?;
        }
        let f = lua
            .load(&code[..])
            .set_name(format!("={name}"))
            .into_function()?;
        let traceback: LuaFunction = lua.globals().get::<LuaTable>("debug")?.get("traceback")?;
        let xpcall: LuaFunction = lua.globals().get("xpcall")?;
        let mut call = LuaMultiValue::new();
        call.push_back(LuaValue::Function(f));
        call.push_back(LuaValue::Function(traceback));
        for a in args {
            call.push_back(a.into_lua(&lua)?);
        }
        let mut res = xpcall.call::<LuaMultiValue>(call)?;
        if res.pop_front() != Some(LuaValue::Boolean(true)) {
            let err = res.pop_front().unwrap_or(LuaValue::Nil);
            return Ok(Err(err.to_string()?));
        }
        let mut vals = Vec::with_capacity(res.len());
        for (i, v) in res.iter().enumerate() {
            match Val::from_lua(v) {
                Ok(v) => vals.push(v),
                Err(ty) => {
                    return Ok(Err(format!(
                        "result #{} is a {ty}: only nil, booleans, numbers and strings cross OS threads",
                        i + 1
                    )))
                }
            }
        }
        Ok(Ok(vals))
    })();
    // Close the state (and its sockets) before publishing.
    drop(lua);
    outcome.unwrap_or_else(|e| Err(e.to_string()))
}

/// `R.osthread(code, name, ...)`: starts the OS thread; `code` is a chunk
/// (source or bytecode), `name` its chunk name for messages.
fn start(
    lua: &Lua,
    open: Open,
    (code, name, args): (LuaString, String, LuaMultiValue),
) -> LuaResult<LOsThread> {
    let mut vals = Vec::with_capacity(args.len());
    for (i, v) in args.iter().enumerate() {
        match Val::from_lua(v) {
            Ok(v) => vals.push(v),
            Err(ty) => {
                return Err(Arg::new("sock.osthread", i + 2, "...").error(format!(
                    "{ty} cannot cross OS threads (nil, boolean, number or string expected)"
                )))
            }
        }
    }
    // The poller of this state's loop, for the new one (none with the
    // portable backend: the new loop then polls on its own).
    let poller = crate::state::lp(lua)?
        .enter(sock::SharedPoller::current)
        .ok();
    let code = code.as_bytes().to_vec();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let s = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name("sock.osthread".into())
        .spawn(move || {
            // A panic (a bug) must still publish, or a join would wait forever.
            let run = std::panic::AssertUnwindSafe(|| run(open, code, name, vals, poller));
            let outcome = std::panic::catch_unwind(run)
                .unwrap_or_else(|_| Err("sock.osthread: the OS thread panicked".to_owned()));
            let waker = {
                let mut st = lock(&s);
                st.outcome = Some(outcome);
                st.done = true;
                st.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        })
        .map_err(|e| usage_error("sock.osthread", format!("cannot start an OS thread: {e}")))?;
    Ok(LOsThread {
        shared,
        handle: Mutex::new(Some(handle)),
    })
}

/// Adds `R.osthread` to `R`; its OS threads build the module with `open`.
pub(crate) fn register(lua: &Lua, r: &LuaTable, open: Open) -> LuaResult<()> {
    let f = lua.create_function(move |lua, args| start(lua, open, args))?;
    r.set("osthread", f)?;
    Ok(())
}
