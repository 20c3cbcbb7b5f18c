//! Unix.
pub(crate) mod addr;
pub(crate) mod clock;
mod errno;
pub(crate) mod socket;
pub(crate) mod sockopt;
