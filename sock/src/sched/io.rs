//! Threads meet sockets: registrations with a loop's reactor, and the futures
//! that drive blocking operations ([`Drive`]) or wait for readiness alone
//! ([`Wait`]).
//!
//! [`Drive`] is the one driver of every blocking call of the Rust API (and
//! of the operations a language binding hands it): it steps the operation
//! (`step::Op`), parks the thread on the direction a step asks for, under the
//! operation's deadline, and steps again when woken. "Now" for deadlines is
//! the loop's cached time ([`Core::now`]), read once per iteration.
//!
//! # Readiness: no syscall that is known to fail
//!
//! Inside a thread of the loop, an attempt in a direction that the reactor
//! does not consider ready parks at once instead of making the syscall that
//! would return `EAGAIN` ([`Registration::step`]). Outside the loop's
//! threads (code that polls by itself) every attempt makes its syscall.

use std::future::Future;
use std::io;
use std::ops::Deref;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::timers::TimerId;
use super::{Core, ThreadId};
use crate::error::{Error, ErrorKind, Result};
use crate::reactor::Direction;
use crate::step::{Op, Step};
use crate::time::Deadline;

/// A socket's registration with the loop it was made in.
#[derive(Debug)]
pub(crate) struct Registration {
    core: Rc<Core>,
    token: usize,
}

impl Registration {
    /// Registers `fd` with the current loop for both directions; `exclusive`:
    /// see `sys::Poller::add` (a listener that several loops hold).
    pub(crate) fn new(fd: RawFd, exclusive: bool) -> Result<Registration> {
        super::with_core(|c| Registration::new_in(c, fd, exclusive))
    }

    /// Registers `fd` with the loop `c`.
    fn new_in(c: &Rc<Core>, fd: RawFd, exclusive: bool) -> Result<Registration> {
        let token = c.reactor.register(c.poller()?, c.index(), fd, exclusive)?;
        Ok(Registration {
            core: Rc::clone(c),
            token,
        })
    }

    /// Registers `fd` with this registration's loop, whatever loop is
    /// current (a listener's accepted connections belong to its loop).
    pub(crate) fn sibling(&self, fd: RawFd) -> Result<Registration> {
        Registration::new_in(&self.core, fd, false)
    }

    /// The same registration under a second owner: for a socket moved to a
    /// new handle (`Socket::detach`), whose old
    /// handle no longer deregisters (it has no descriptor).
    pub(crate) fn moved(&self) -> Registration {
        Registration {
            core: Rc::clone(&self.core),
            token: self.token,
        }
    }

    /// Unregisters the socket (before its descriptor is closed) and wakes the
    /// threads parked on it; they step again and see the socket closed.
    pub(crate) fn deregister(&self) {
        let c = &self.core;
        c.reactor
            .deregister(c.poller().ok(), self.token, |id| c.wake(id));
    }

    /// Whether an attempt in `dir` may be made now (`force`: whatever the
    /// readiness says): false inside a thread of this loop when no event
    /// came since the last attempt found nothing, and, to write, whenever
    /// another operation has the socket's write turn (see the reactor's
    /// "Who waits").
    #[inline(always)]
    pub(crate) fn may_attempt(&self, dir: Direction, force: bool) -> bool {
        let c = &self.core;
        match dir {
            Direction::Read => {
                force || c.current().is_none() || c.reactor.is_ready(self.token, dir)
            }
            Direction::Write => {
                let me = c.current();
                c.reactor.may_write(self.token, force || me.is_none(), me)
            }
        }
    }

    /// Records that an attempt in `dir` found nothing to do (see
    /// `Reactor::clear_ready`).
    pub(crate) fn clear_ready(&self, dir: Direction) {
        self.core.reactor.clear_ready(self.token, dir);
    }

    /// One step of a single attempt `f` in `dir`: `Wait(dir)` without the
    /// syscall when the direction is not ready (unless `force`) or another
    /// operation has the write turn, `Wait(dir)` on `EAGAIN`, else its
    /// result (`EINTR` is retried).
    #[inline(always)]
    pub(crate) fn step<T>(
        &self,
        dir: Direction,
        force: bool,
        f: impl FnMut() -> io::Result<T>,
    ) -> Step<T> {
        if !self.may_attempt(dir, force) {
            return Step::Wait(dir);
        }
        match self.core.reactor.attempt(self.token, dir, f) {
            Ok(Some(v)) => Step::Ready(Ok(v)),
            Ok(None) => Step::Wait(dir),
            Err(e) => Step::Ready(Err(e.into())),
        }
    }

    /// The `not_in_thread` error outside the threads of this loop.
    pub(crate) fn require_thread(&self) -> Result<()> {
        match self.core.current() {
            Some(_) => Ok(()),
            None => Err(Error::new(ErrorKind::NotInThread)),
        }
    }

    /// The future that drives `op` on this socket until `deadline` (an
    /// invalid deadline is the future's error); `shared`: waits to read
    /// together with other threads (acceptors on one listener). It holds the
    /// loop (`'static`: for a binding's thread futures); the blocking calls
    /// of the Rust API borrow it ([`drive_ref`](Self::drive_ref)).
    pub(crate) fn drive<O: Op>(
        &self,
        op: O,
        deadline: Result<Option<Instant>>,
        shared: bool,
    ) -> Drive<O> {
        Drive(self.driver(Rc::clone(&self.core), op, deadline, shared))
    }

    /// [`drive`](Self::drive) with the loop borrowed from this registration
    /// (no reference count per call).
    #[inline]
    pub(crate) fn drive_ref<O: Op>(
        &self,
        op: O,
        deadline: Result<Option<Instant>>,
        shared: bool,
    ) -> Driver<&Core, O> {
        self.driver(&*self.core, op, deadline, shared)
    }

    #[inline]
    fn driver<C: Deref<Target = Core>, O>(
        &self,
        core: C,
        op: O,
        deadline: Result<Option<Instant>>,
        shared: bool,
    ) -> Driver<C, O> {
        Driver {
            parking: Parking::new(core, self.token, Direction::Read, deadline, shared),
            op,
        }
    }

    /// Runs `fut` (the name lookup of a `connect`) as this socket's waiter
    /// in `dir`, so that closing the socket wakes it: it then ends with
    /// `closed` at once, whatever `fut` was waiting for. The poller is not
    /// armed for it (an unconnected socket is always "ready": arming would
    /// spin). Outside the loop's threads it is `fut`.
    pub(crate) async fn until_closed<T>(
        &self,
        dir: Direction,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let mut fut = std::pin::pin!(fut);
        let mut held = Held {
            reg: self,
            dir,
            who: None,
        };
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            match held.hold() {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// A wait for readiness alone: see [`Wait`].
    pub(crate) fn wait(
        &self,
        dir: Direction,
        deadline: Result<Option<Instant>>,
        shared: bool,
    ) -> Wait {
        let core = Rc::clone(&self.core);
        Wait {
            parking: Parking::new(core, self.token, dir, deadline, shared),
            started: false,
        }
    }
}

/// The waiter entry of [`Registration::until_closed`]: set while its future
/// waits, removed when it ends.
struct Held<'a> {
    reg: &'a Registration,
    dir: Direction,
    who: Option<ThreadId>,
}

impl Held<'_> {
    /// Holds the waiter entry for the current thread (again, after an event
    /// took it): `closed` if the socket is gone, `busy` if another thread
    /// waits to read (a writer queues for its turn).
    fn hold(&mut self) -> Result<()> {
        let Some(me) = self.reg.core.current() else {
            return Ok(());
        };
        let r = self
            .reg
            .core
            .reactor
            .hold(self.reg.token, self.dir, false, me);
        self.who = Some(me);
        r.map(drop)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(me) = self.who.take() {
            let c = &self.reg.core;
            c.reactor
                .unpark(self.reg.token, self.dir, false, me, |id| c.wake(id));
        }
    }
}

/// A thread parked (or about to park) on one direction of a socket, with a
/// deadline: the bookkeeping shared by [`Drive`] and [`Wait`]. `C` holds the
/// loop: an `Rc<Core>`, or a `&Core` borrowed for the length of one call.
#[derive(Debug)]
struct Parking<C: Deref<Target = Core>> {
    core: C,
    token: usize,
    dir: Direction,
    deadline: Option<Deadline>,
    /// The deadline's timer, or while `napping` the timer of a
    /// [`Step::Sleep`] (at its instant or the deadline, whichever is first).
    timer: Option<TimerId>,
    napping: bool,
    /// The thread this parking registered as a waiter, if any.
    parked: Option<ThreadId>,
    /// Several threads may wait together (read direction only).
    shared: bool,
    /// The deadline given was invalid (NaN: `time::deadline`'s error,
    /// reported when the future is polled).
    invalid: bool,
}

impl<C: Deref<Target = Core>> Parking<C> {
    #[inline]
    fn new(
        core: C,
        token: usize,
        dir: Direction,
        deadline: Result<Option<Instant>>,
        shared: bool,
    ) -> Parking<C> {
        Parking {
            core,
            token,
            dir,
            invalid: deadline.is_err(),
            deadline: deadline.unwrap_or(None).map(Deadline::new),
            timer: None,
            napping: false,
            parked: None,
            shared,
        }
    }

    /// Whether the deadline has passed, by the loop's time.
    #[inline]
    fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|d| self.core.now() >= d.instant())
    }

    /// Arms the deadline's timer for `me`, once.
    #[inline]
    fn arm_deadline(&mut self, me: ThreadId) {
        if let (Some(d), None) = (self.deadline.map(Deadline::instant), self.timer) {
            self.timer = Some(self.core.timers.borrow_mut().insert(d, me.into()));
        }
    }

    /// Whether this parking waits among readers that wait together.
    #[inline]
    fn shares(&self) -> bool {
        self.shared && self.dir == Direction::Read
    }

    /// Parks the current thread on this socket's direction `dir` and deadline.
    #[inline]
    fn park(&mut self, dir: Direction, me: ThreadId) -> Result<()> {
        if dir != self.dir {
            self.unpark_io();
            self.dir = dir;
        }
        let c = &self.core;
        c.reactor
            .park(c.poller()?, self.token, dir, self.shares(), me)?;
        self.parked = Some(me);
        self.arm_deadline(me);
        Ok(())
    }

    /// Sleeps the current thread until `t` (or its deadline, if sooner).
    fn nap(&mut self, t: Instant, me: ThreadId) {
        self.unpark_io();
        self.remove_timer();
        let at = self.deadline.map_or(t, |d| d.instant().min(t));
        self.timer = Some(self.core.timers.borrow_mut().insert(at, me.into()));
        self.napping = true;
    }

    /// Removes the timer, if any.
    #[inline]
    fn remove_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            self.core.timers.borrow_mut().remove(t);
        }
    }

    /// Removes the waiter entry, if this parking set it.
    #[inline]
    fn unpark_io(&mut self) {
        if let Some(me) = self.parked.take() {
            let c = &self.core;
            c.reactor
                .unpark(self.token, self.dir, self.shares(), me, |id| c.wake(id));
        }
    }

    /// Ends a nap: its timer goes (the deadline's is armed again when the
    /// thread parks).
    #[inline]
    fn unnap(&mut self) {
        if std::mem::take(&mut self.napping) {
            self.remove_timer();
        }
    }

    /// Clears the waiter entry and the timers, if this parking set them.
    #[inline]
    fn unpark(&mut self) {
        if self.timer.is_some() || self.parked.is_some() {
            self.unpark_all();
        }
    }

    /// [`unpark`](Self::unpark) when something is set (kept out of line:
    /// the common end of an operation that never waited sets nothing).
    #[inline(never)]
    fn unpark_all(&mut self) {
        self.remove_timer();
        self.napping = false;
        self.unpark_io();
    }
}

impl<C: Deref<Target = Core>> Drop for Parking<C> {
    fn drop(&mut self) {
        self.unpark();
    }
}

/// Drives a blocking operation ([`Op`]) on a socket: steps it, parks the
/// thread where a step asks, and steps again when woken, until the operation
/// is over or its deadline has passed (one last forced step, then `timeout`).
///
/// A named future rather than an `async fn` so that a thread parked in it
/// holds only this (the socket's loop, the parking and the operation): the
/// state of an idle connection's thread is mostly this. Get one from a
/// socket's `drive` method, or from any of its blocking calls.
///
/// It fails with `not_in_thread` outside sock threads, with `busy` if another
/// thread waits to read (writers queue for the socket's write turn instead,
/// and an operation that waits to write holds it until it ends: see
/// [`Tcp::send`](crate::Tcp::send)), with `closed` if the socket is gone.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Drive<O>(Driver<Rc<Core>, O>);

impl<O> Drive<O> {
    /// The operation (its progress: the bytes a `sendall` moved, say).
    pub fn op(&self) -> &O {
        &self.0.op
    }
}

impl<O: Op + Unpin> Future for Drive<O> {
    type Output = Result<O::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

/// [`Drive`] with the loop held as `C` (the blocking calls of the Rust API
/// borrow it).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct Driver<C: Deref<Target = Core>, O> {
    parking: Parking<C>,
    op: O,
}

impl<C: Deref<Target = Core> + Unpin, O: Op + Unpin> Future for Driver<C, O> {
    type Output = Result<O::Output>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.parking.invalid {
            return Poll::Ready(Err(this.op.fail(crate::time::invalid_expires())));
        }
        let Some(me) = this.parking.core.current() else {
            let e = Error::new(ErrorKind::NotInThread);
            return Poll::Ready(Err(this.op.fail(e)));
        };
        this.parking.unnap();
        let expired = this.parking.expired();
        let e = match this.op.step(expired) {
            Step::Ready(r) => {
                this.parking.unpark();
                return Poll::Ready(r);
            }
            _ if expired => Error::new(ErrorKind::Timeout),
            Step::Wait(dir) => match this.parking.park(dir, me) {
                Ok(()) => return Poll::Pending,
                Err(e) => e,
            },
            Step::Sleep(t) => {
                this.parking.nap(t, me);
                return Poll::Pending;
            }
        };
        this.parking.unpark();
        Poll::Ready(Err(this.op.fail(e)))
    }
}

/// Waits until one direction of a socket may be ready, or its deadline passes:
/// the parking of a blocking call without its syscall, for code that makes its
/// own non-blocking attempts. Get one from a socket's `wait` method.
///
/// It resolves to `Ok(())` when an event arrived for that direction: the
/// caller tries its operation again, which may still find nothing to do, and
/// then waits again. It fails with `closed` if the socket was closed meanwhile,
/// with `timeout` once the deadline has passed (at once if it had already
/// passed), with `busy` if another thread waits to read, and with
/// `not_in_thread` outside sock threads. A wait to write takes its place
/// among the socket's writers (see [`Tcp::send`](crate::Tcp::send)): it
/// resolves when it is its turn and the socket may be writable, and ending it
/// passes the turn on, so an attempt that follows may find another writer's
/// turn (and wait again).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Wait {
    parking: Parking<Rc<Core>>,
    started: bool,
}

impl Future for Wait {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.parking.invalid) {
            return Poll::Ready(Err(crate::time::invalid_expires()));
        }
        let p = &mut this.parking;
        let Some(me) = p.core.current() else {
            return Poll::Ready(Err(Error::new(ErrorKind::NotInThread)));
        };
        if !std::mem::replace(&mut this.started, true) {
            if p.expired() {
                return Poll::Ready(Err(Error::new(ErrorKind::Timeout)));
            }
            return match p.park(p.dir, me) {
                Ok(()) => Poll::Pending,
                Err(e) => {
                    p.unpark();
                    Poll::Ready(Err(e))
                }
            };
        }
        let r = match p.core.reactor.is_parked(p.token, p.dir, p.shares(), me) {
            Some(true) if !p.expired() => return Poll::Pending,
            Some(true) => Err(Error::new(ErrorKind::Timeout)),
            Some(false) => Ok(()),
            None => Err(Error::new(ErrorKind::Closed)),
        };
        p.unpark();
        Poll::Ready(r)
    }
}
