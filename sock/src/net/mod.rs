//! The typed sockets, each over the shared socket core (`socket.rs`).

pub mod buffer;
pub mod raw;
pub mod tcp;
pub mod udp;
