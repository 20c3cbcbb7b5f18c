//! sock: coroutine-style async sockets.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod addr;
pub mod error;
pub mod net;
pub mod opt;
mod reactor;
mod sched;
mod socket;
mod sys;
mod time;

pub use addr::{
    addr, addr_with, AddrFlags, AddrInfo, AddrList, Family, Hints, Ip, Port, Protocol, SockAddr,
    SocketType, ToAddr,
};
pub use error::{Error, ErrorKind, Result};
pub use net::tcp::{Shutdown, Tcp};
pub use opt::OptVal;
pub use sched::{
    currentthread, epoll_fd, newthread, poll, set_epoll_fd, set_error_handler, sleep, sleep_until,
    start, stop, Thread, ThreadId, ThreadOutput,
};
pub use time::clock;
