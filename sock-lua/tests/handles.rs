//! The handle table's unit tests (`src/handles.rs`), run here: the module
//! crate is a `cdylib` whose own tests are off (`test = false`).
#[path = "../src/handles.rs"]
#[allow(dead_code)]
mod handles;
