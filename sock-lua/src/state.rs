//! The per-state data every part shares: the loop of this Lua state.
//!
//! Each Lua state gets its own [`sock::Loop`] (in its app data), entered
//! around every call that starts threads, makes sockets or runs the loop, so
//! that two states on one OS thread never run each other's threads.

use std::rc::Rc;

use mlua::prelude::*;

use crate::error::usage_error;

/// The loop of a Lua state (its app data).
struct StateLoop(Rc<sock::Loop>);

/// Gives `lua`'s state its loop, once (a reload of the module keeps it).
pub(crate) fn init(lua: &Lua) {
    if lua.app_data_ref::<StateLoop>().is_none() {
        lua.set_app_data(StateLoop(Rc::new(sock::Loop::new())));
    }
}

/// The loop of `lua`'s state.
pub(crate) fn lp(lua: &Lua) -> LuaResult<Rc<sock::Loop>> {
    match lua.app_data_ref::<StateLoop>() {
        Some(s) => Ok(Rc::clone(&s.0)),
        None => Err(usage_error("sock", "module not initialized")),
    }
}
