//! sock: coroutine-style async sockets on the OS's native poller.
//!
//! Code reads sequentially; a call that would block suspends only its own
//! lightweight thread, and the loop resumes it when its socket is ready or its
//! deadline passes. The names and semantics follow the seed API of the Lua
//! library (`sock.newthread`, `tcp:accept`, `sock.sleep`, ...).
//!
//! - A **thread** is a future started with [`newthread`]: it runs at once until
//!   its first blocking call. [`start`] runs the loop until every thread is done
//!   or [`stop`] is called ([`start_for`]: for at most some seconds); [`poll`]
//!   runs one iteration.
//! - A thread can **park** until another lets it go: [`suspend`] and
//!   [`resume`] (the other runs at once, until it next blocks), and a sleep
//!   that another thread can cut short ([`SleepJob`]). **Timed jobs**
//!   ([`run_at`], [`run_after`], [`run_every`]) start a thread when their
//!   time comes; until then they are entries of the loop's timer heap.
//! - Every blocking call takes **`expires`**, an absolute time on [`clock`]
//!   (`None` = no deadline). When it passes the call fails with
//!   [`ErrorKind::Timeout`] and the socket stays usable.
//! - Every fallible call returns [`Result`]; [`Error::name`] is a stable,
//!   normalized name such as `"connection_refused"`.
//! - [`addr()`] looks up addresses; anything taking host and port also takes a
//!   resolved address ([`ToAddr`]).
//!
//! ```
//! use sock::{Family, Tcp};
//!
//! let server = Tcp::new(Family::Inet).unwrap();
//! server.listen(None, ("127.0.0.1", 0)).unwrap();
//! let addr = server.local_addr().unwrap();
//!
//! let t1 = sock::newthread(async move {
//!     let (conn, _remote, _local) = server.accept(None).await?;
//!     let mut buf = [0u8; 4];
//!     conn.recvall(&mut buf, None).await?;
//!     conn.sendall(&buf, None).await
//! });
//! let t2 = sock::newthread(async move {
//!     let c = Tcp::new(Family::Inet)?;
//!     c.connect(addr, Some(sock::clock() + 1.0)).await?;
//!     c.sendall(b"ping", None).await?;
//!     let mut buf = [0u8; 4];
//!     c.recvall(&mut buf, Some(sock::clock() + 1.0)).await?;
//!     assert_eq!(&buf, b"ping");
//!     sock::Result::Ok(())
//! });
//! sock::start().unwrap();
//! assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
//! assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
//! ```
//!
//! # Threads of the OS
//!
//! Each OS thread has its own loop, created on first use; sockets belong to the
//! loop of the OS thread that made them and are not `Send`.
//!
//! # Implementation
//!
//! | OS | backend |
//! | --- | --- |
//! | Linux | edge-triggered epoll (or the portable backend with the `portable` feature) |
//! | BSD, macOS | kqueue, through the `polling` crate |
//! | others | what the `polling` crate offers (IOCP/AFD on Windows, event ports, poll) |
//!
//! The socket layer is written for Unix; Windows sockets are not supported yet.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod addr;
pub mod error;
pub mod net;
pub mod opt;
mod reactor;
mod resolve;
mod sched;
mod socket;
mod step;
mod sys;
mod time;

pub mod op {
    //! Blocking operations as step-able state machines, for code that drives
    //! them itself (a language binding) or writes its own: "try; then ready, or
    //! wait for a direction (or a time), under a deadline".
    //!
    //! Every blocking call of this crate is an [`Op`] driven by [`Drive`]; the
    //! multi-step ones are public here ([`Connect`] over several addresses,
    //! [`SendAll`], [`RecvAll`]), and each socket has its single-attempt steps
    //! (`step_send`, `step_recv`, `Tcp::step_accept`, ...) and a `drive` method
    //! that runs any [`Op`] on it under a deadline.
    //!
    //! ```
    //! use sock::op::{Op, Step};
    //! use sock::{Family, Tcp};
    //!
    //! // An operation of one's own: send a greeting, all of it.
    //! struct Greet<'a> {
    //!     conn: &'a Tcp,
    //!     all: sock::op::SendAll,
    //! }
    //! impl Op for Greet<'_> {
    //!     type Output = ();
    //!     fn step(&mut self, force: bool) -> Step<()> {
    //!         self.all.step(self.conn, b"hello", force)
    //!     }
    //! }
    //!
    //! let l = Tcp::new(Family::Inet).unwrap();
    //! l.listen(None, ("127.0.0.1", 0)).unwrap();
    //! let addr = l.local_addr().unwrap();
    //! let t = sock::newthread(async move {
    //!     let c = Tcp::new(Family::Inet)?;
    //!     c.connect(addr, None).await?;
    //!     let (conn, _, _) = l.accept(None).await?;
    //!     let greet = Greet { conn: &conn, all: sock::op::SendAll::new() };
    //!     conn.drive(greet, Some(sock::clock() + 5.0)).await?;
    //!     let mut buf = [0u8; 5];
    //!     c.recvall(&mut buf, None).await?;
    //!     assert_eq!(&buf, b"hello");
    //!     sock::Result::Ok(())
    //! });
    //! sock::start().unwrap();
    //! assert!(matches!(t.result(), Some(Ok(Ok(())))));
    //! ```

    pub use crate::net::buffer::{record_len, ReadBuffer, CHUNK};
    pub use crate::net::tcp::{Connect, RecvAll, SendAll};
    pub use crate::sched::io::Drive;
    pub use crate::step::{Op, Step};
}

pub use addr::{
    addr, addr_with, AddrFlags, AddrInfo, AddrList, Family, Hints, Ip, Port, Protocol, SockAddr,
    SocketType, ToAddr,
};
pub use error::{Error, ErrorKind, Result};
pub use net::buffer::read_buffers;
pub use net::raw::Raw;
pub use net::tcp::{Shutdown, Tcp};
pub use net::udp::Udp;
pub use opt::{Opt, OptType, OptVal};
pub use reactor::Direction;
pub use resolve::{
    needs_resolver, resolve, resolver_threads, resolver_threads_alive, set_lookup_delay,
    set_resolver_threads,
};
pub use sched::io::Wait;
pub use sched::{
    currentthread, epoll_fd, newthread, newthread_detached, poll, resume, run_after, run_at,
    run_every, set_epoll_fd, set_error_handler, sleep, sleep_until, start, start_for, stop,
    suspend, JobSleep, Loop, SharedPoller, Sleep, SleepJob, Suspend, Thread, ThreadId,
    ThreadOutput, Timer,
};
pub use time::clock;

/// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
