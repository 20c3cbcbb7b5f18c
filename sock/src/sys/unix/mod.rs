//! Unix.
pub(crate) mod addr;
mod errno;
pub(crate) mod sockopt;
pub(crate) use errno::error_kind;
pub(crate) mod socket;
