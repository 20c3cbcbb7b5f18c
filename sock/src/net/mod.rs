//! The typed sockets, each over the shared [`Socket`](crate::socket) core.

pub mod tcp;
