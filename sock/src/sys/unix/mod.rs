//! Unix.
pub(crate) mod addr;
mod errno;
pub(crate) mod socket;
pub(crate) mod sockopt;
