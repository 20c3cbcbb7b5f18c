//! The typed sockets, each over the shared socket core (`socket.rs`).

pub mod tcp;
