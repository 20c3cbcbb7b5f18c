//! Socket registrations and the one wait/retry helper every blocking call uses.
//!
//! A socket is registered with the poller of its loop once, when it is
//! created, under a token that names its slot in the loop's I/O table and the
//! slot's generation. The slot records which thread waits to read and which
//! waits to write. An event wakes the waiter(s) of its directions; an event
//! whose token is stale (the socket was closed, its slot reused) is recognized
//! by the generation and dropped, so it never reaches a later socket that got
//! the same descriptor or slot.
//!
//! Every blocking operation is an [`IoOp`]: it tries the syscall first; only on
//! `EAGAIN` does it park the thread on (socket, direction, deadline), and when
//! woken it tries the syscall again. `EINTR` is retried at once. Past its
//! deadline the operation fails with `timeout` and leaves the socket usable;
//! a deadline never wins over an operation that can complete immediately.
//!
//! [`Wait`] is the same parking without the syscall, for code that makes its
//! own non-blocking attempts (a language binding: try, and on "would block"
//! wait, then try again).
//!
//! # Readiness: no syscall that is known to fail
//!
//! Each slot remembers, per direction, whether an attempt may succeed: set by
//! every event, cleared when an attempt finds nothing (`EAGAIN`) and, for
//! reads on a stream, when a read comes back short (the receive queue was
//! emptied: what tokio does too). Inside a thread of the loop, an attempt in
//! a direction that is not ready parks at once instead of making the syscall
//! that would return `EAGAIN`: in a request/response exchange that is one
//! `recv` in two. The edge-triggered backend reports every arrival after the
//! clear as a new event, so nothing is missed; a hang-up or an error
//! (`EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`) marks the read side ready for good,
//! since no edge follows it. Outside the loop's threads (code that polls by
//! itself) every attempt makes its syscall, and so does every attempt with a
//! one-shot backend (`sys::EDGE_TRIGGERED` is false), which reports events
//! only while a thread waits.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::sched::{timers::TimerId, Core, ThreadId};
use crate::sys::{Event, Poller};

/// The state of one registered socket in the loop's I/O table.
#[derive(Debug)]
pub(crate) struct IoSlot {
    gen: u32,
    fd: RawFd,
    reader: Option<ThreadId>,
    writer: Option<ThreadId>,
    /// Readers that may wait together (acceptors on one listener); none, and
    /// so one pointer, for every other socket. (Boxed: a `Vec` here would be
    /// three words in every socket's slot, for the few listeners.)
    #[allow(clippy::box_collection)]
    shared: Option<Box<Vec<ThreadId>>>,
    /// Which directions may be ready (`READY_*` bits): see the module docs.
    ready: u8,
}

/// An attempt to read may succeed.
const READY_READ: u8 = 1;
/// An attempt to write may succeed.
const READY_WRITE: u8 = 2;
/// The socket hung up or failed: reads never wait again (sticky).
const READY_HUP: u8 = 4;

fn ready_bit(dir: Direction) -> u8 {
    match dir {
        Direction::Read => READY_READ,
        Direction::Write => READY_WRITE,
    }
}

impl IoSlot {
    fn has_readers(&self) -> bool {
        self.reader.is_some() || self.shared.as_ref().is_some_and(|v| !v.is_empty())
    }

    fn is_ready(&self, dir: Direction) -> bool {
        let bits = match dir {
            Direction::Read => READY_READ | READY_HUP,
            Direction::Write => READY_WRITE,
        };
        self.ready & bits != 0
    }
}

/// A direction of I/O to wait for.
///
/// ```
/// assert_ne!(sock::Direction::Read, sock::Direction::Write);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Readable: data, a connection to accept, end of stream or an error.
    Read,
    /// Writable: room in the send buffer, a finished connect, or an error.
    Write,
}

// A token: the loop's index (12 bits: several loops may share a poller, and
// an event goes to the loop of its socket), the slot's generation (20 bits)
// and the slot's index (32 bits). Loop index 0xfff is never a loop's, so the
// backends' reserved tokens (all ones and the like) are nobody's sockets.
const GEN_BITS: u32 = 20;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

fn token(lp: u16, index: usize, gen: u32) -> usize {
    (usize::from(lp) << 52) | (((gen & GEN_MASK) as usize) << 32) | (index & 0xffff_ffff)
}

/// The slot's index and generation of a token (of this loop).
fn untoken(token: usize) -> (usize, u32) {
    (token & 0xffff_ffff, (token >> 32) as u32 & GEN_MASK)
}

/// The loop a token belongs to.
pub(crate) fn loop_of(token: usize) -> u16 {
    (token >> 52) as u16
}

// Tokens take 64 bits.
const _: () = assert!(usize::BITS == 64, "sock needs a 64-bit target");

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
        crate::sched::with_core(|c| {
            let poller = c.poller()?;
            let gen = c.io_gen.get().wrapping_add(1) & GEN_MASK;
            c.io_gen.set(gen);
            let slot = IoSlot {
                gen,
                fd,
                reader: None,
                writer: None,
                shared: None,
                ready: READY_READ | READY_WRITE,
            };
            let index = c.io.borrow_mut().insert(slot);
            let token = token(c.index(), index, gen);
            if let Err(e) = poller.add(fd, token, exclusive) {
                c.io.borrow_mut().remove(index);
                return Err(e.into());
            }
            Ok(Registration {
                core: Rc::clone(c),
                token,
            })
        })
    }

    /// Unregisters the socket (before its descriptor is closed) and wakes the
    /// threads parked on it; they retry their syscall and see the socket closed.
    pub(crate) fn deregister(&self) {
        let c = &self.core;
        let (index, gen) = untoken(self.token);
        let slot = {
            let mut io = c.io.borrow_mut();
            match io.get(index) {
                Some(s) if s.gen == gen => Some(io.remove(index)),
                _ => None,
            }
        };
        if let Some(slot) = slot {
            if let Ok(p) = c.poller() {
                let _ = p.delete(slot.fd);
            }
            for id in [slot.reader, slot.writer]
                .into_iter()
                .flatten()
                .chain(slot.shared.into_iter().flat_map(|v| *v))
            {
                c.wake(id);
            }
        }
    }

    /// Whether an attempt in `dir` may succeed: false only inside a thread of
    /// this loop, when no event came since the last attempt found nothing (see
    /// the module docs). A closed socket is "ready": the attempt reports it.
    pub(crate) fn is_ready(&self, dir: Direction) -> bool {
        self.core.current().is_none() || self.core.io_ready(self.token, dir)
    }

    /// Records that an attempt in `dir` found nothing to do (`EAGAIN`, or a
    /// short read on a stream): until the next event, attempts in that
    /// direction park without their syscall.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        self.core.io_clear_ready(self.token, dir);
    }

    /// One attempt in `dir`, whatever the readiness: see [`Core::attempt`].
    #[inline]
    pub(crate) fn attempt<A: Attempt>(
        &self,
        dir: Direction,
        a: &mut A,
    ) -> io::Result<Option<A::Output>> {
        self.core.attempt(self.token, dir, a)
    }

    /// The `not_in_thread` error outside the threads of this loop.
    pub(crate) fn require_thread(&self) -> Result<()> {
        match self.core.current() {
            Some(_) => Ok(()),
            None => Err(Error::new(ErrorKind::NotInThread)),
        }
    }

    /// Waits for `attempt` to succeed until `deadline` (an invalid deadline
    /// is the future's error): see [`IoOp`].
    pub(crate) fn io<A: Attempt>(
        &self,
        dir: Direction,
        deadline: Result<Option<Instant>>,
        attempt: A,
    ) -> IoOp<'_, A> {
        let (deadline, invalid) = split(deadline);
        IoOp {
            core: &self.core,
            parking: Parking::new(self.token, dir, deadline),
            invalid,
            attempt,
        }
    }

    /// A wait for readiness alone: see [`Wait`].
    pub(crate) fn wait(&self, dir: Direction, deadline: Result<Option<Instant>>) -> Wait {
        let (deadline, invalid) = split(deadline);
        Wait {
            core: Rc::clone(&self.core),
            parking: Parking::new(self.token, dir, deadline),
            invalid,
            started: false,
        }
    }
}

/// A deadline as the futures keep it: the deadline, and whether it was
/// invalid (NaN: `time::deadline`'s error, reported when the future is polled).
fn split(deadline: Result<Option<Instant>>) -> (Option<Instant>, bool) {
    match deadline {
        Ok(d) => (d, false),
        Err(_) => (None, true),
    }
}

impl Core {
    /// One attempt of `a` on the socket of `token`: `EINTR` is retried, and
    /// `EAGAIN` is `Ok(None)` and clears the direction's readiness.
    #[inline]
    fn attempt<A: Attempt>(
        &self,
        token: usize,
        dir: Direction,
        a: &mut A,
    ) -> io::Result<Option<A::Output>> {
        loop {
            match a.attempt() {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.io_clear_ready(token, dir);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Registration::is_ready`] inside a thread.
    fn io_ready(&self, token: usize, dir: Direction) -> bool {
        let (index, gen) = untoken(token);
        match self.io.borrow().get(index) {
            Some(slot) if slot.gen == gen => slot.is_ready(dir),
            _ => true,
        }
    }

    /// [`Registration::clear_ready`]; nothing with a one-shot backend, whose
    /// events come only while a thread waits (a thread that tries and then
    /// sleeps instead of waiting would never see its socket ready again).
    fn io_clear_ready(&self, token: usize, dir: Direction) {
        if !crate::sys::EDGE_TRIGGERED {
            return;
        }
        let (index, gen) = untoken(token);
        if let Some(slot) = self.io.borrow_mut().get_mut(index) {
            if slot.gen == gen {
                slot.ready &= !ready_bit(dir);
            }
        }
    }
}

/// Handles one readiness event: wakes the waiters of the ready directions.
/// Events of closed sockets (stale generation) are dropped.
pub(crate) fn dispatch(c: &Core, poller: &Poller, ev: Event) {
    let (index, gen) = untoken(ev.token);
    let mut io = c.io.borrow_mut();
    let Some(slot) = io.get_mut(index) else {
        return;
    };
    if slot.gen != gen {
        return;
    }
    slot.ready |= (ev.readable as u8 * READY_READ)
        | (ev.writable as u8 * READY_WRITE)
        | (ev.hangup as u8 * READY_HUP);
    let r = if ev.readable {
        slot.reader.take()
    } else {
        None
    };
    let w = if ev.writable {
        slot.writer.take()
    } else {
        None
    };
    if let Some(shared) = slot
        .shared
        .as_mut()
        .filter(|v| ev.readable && !v.is_empty())
    {
        // Everyone retries; the order rotates so that the work spreads.
        shared.rotate_left(1);
        for &id in shared.iter() {
            c.wake(id);
        }
        shared.clear();
    }
    if slot.has_readers() || slot.writer.is_some() {
        // One-shot backends disabled the whole registration when it fired.
        let _ = poller.arm(slot.fd, ev.token, slot.has_readers(), slot.writer.is_some());
    }
    drop(io);
    for id in [r, w].into_iter().flatten() {
        c.wake(id);
    }
}

/// A thread parked (or about to park) on one direction of a socket, with a
/// deadline: the bookkeeping shared by [`IoOp`] and [`Wait`].
#[derive(Debug)]
struct Parking {
    token: usize,
    dir: Direction,
    deadline: Option<Instant>,
    timer: Option<TimerId>,
    /// The thread this parking registered as a waiter, if any.
    parked: Option<ThreadId>,
    /// Several threads may wait together (read direction only).
    shared: bool,
}

impl Parking {
    fn new(token: usize, dir: Direction, deadline: Option<Instant>) -> Parking {
        Parking {
            token,
            dir,
            deadline,
            timer: None,
            parked: None,
            shared: false,
        }
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Parks the current thread on this socket's direction and deadline.
    fn park(&mut self, c: &Core, me: ThreadId) -> Result<()> {
        let (index, gen) = untoken(self.token);
        let mut io = c.io.borrow_mut();
        let slot = match io.get_mut(index) {
            Some(s) if s.gen == gen => s,
            _ => return Err(Error::new(ErrorKind::Closed)),
        };
        if self.shared {
            let shared = slot.shared.get_or_insert_with(Box::default);
            if !shared.contains(&me) {
                shared.push(me);
            }
        } else {
            let waiter = match self.dir {
                Direction::Read => &mut slot.reader,
                Direction::Write => &mut slot.writer,
            };
            match *waiter {
                Some(other) if other != me => return Err(Error::new(ErrorKind::Busy)),
                _ => *waiter = Some(me),
            }
        }
        let (fd, read, write) = (slot.fd, slot.has_readers(), slot.writer.is_some());
        drop(io);
        c.poller()?.arm(fd, self.token, read, write)?;
        self.parked = Some(me);
        if let (Some(d), None) = (self.deadline, self.timer) {
            self.timer = Some(c.timers.borrow_mut().insert(d, me));
        }
        Ok(())
    }

    /// Whether the thread is still registered as a waiter (`Some(true)`), was
    /// taken by an event (`Some(false)`), or the socket is gone (`None`).
    fn still_parked(&self, c: &Core) -> Option<bool> {
        let (index, gen) = untoken(self.token);
        let io = c.io.borrow();
        let slot = io.get(index).filter(|s| s.gen == gen)?;
        let Some(me) = self.parked else {
            return Some(false);
        };
        Some(match (self.shared, self.dir) {
            (true, _) => slot.shared.as_ref().is_some_and(|v| v.contains(&me)),
            (false, Direction::Read) => slot.reader == Some(me),
            (false, Direction::Write) => slot.writer == Some(me),
        })
    }

    /// Clears the waiter entry and the deadline, if this parking set them.
    fn unpark(&mut self, c: &Core) {
        if let Some(t) = self.timer.take() {
            c.timers.borrow_mut().remove(t);
        }
        let Some(me) = self.parked.take() else { return };
        let (index, gen) = untoken(self.token);
        if let Some(slot) = c.io.borrow_mut().get_mut(index) {
            if slot.gen == gen {
                if self.shared {
                    if let Some(v) = slot.shared.as_mut() {
                        v.retain(|&id| id != me);
                    }
                    return;
                }
                let waiter = match self.dir {
                    Direction::Read => &mut slot.reader,
                    Direction::Write => &mut slot.writer,
                };
                if *waiter == Some(me) {
                    *waiter = None;
                }
            }
        }
    }
}

/// One non-blocking attempt of a blocking operation: what [`IoOp`] repeats.
/// A closure `FnMut() -> io::Result<T>` is one; operations that keep state
/// between attempts (`sendall`, `recvall`) are structs that also say when
/// there is nothing left to do and add what they did to an error.
pub(crate) trait Attempt {
    /// The result of the operation.
    type Output;

    /// One attempt: `WouldBlock` parks the thread until the next event.
    fn attempt(&mut self) -> io::Result<Self::Output>;

    /// Whether the attempt has work for the socket: when false it runs at
    /// once, whatever the readiness (an empty `sendall` does not wait).
    fn has_work(&self) -> bool {
        true
    }

    /// The error to report (`sendall` and `recvall` add the bytes done).
    fn failed(&self, e: Error) -> Error {
        e
    }
}

impl<T, F: FnMut() -> io::Result<T>> Attempt for F {
    type Output = T;

    fn attempt(&mut self) -> io::Result<T> {
        self()
    }
}

/// A blocking operation: try the attempt, park on `EAGAIN`, retry when woken.
///
/// A named future rather than an `async fn` so that a thread parked in it
/// holds only this (the socket's loop, the parking and the attempt's
/// captures): the state of an idle connection's thread is mostly this.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct IoOp<'a, A> {
    core: &'a Core,
    parking: Parking,
    /// The deadline given was invalid (NaN, `time::deadline`'s error).
    invalid: bool,
    attempt: A,
}

impl<A: Attempt + Unpin> Future for IoOp<'_, A> {
    type Output = Result<A::Output>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let c = this.core;
        if this.invalid {
            return Poll::Ready(Err(this.attempt.failed(crate::time::invalid_expires())));
        }
        let Some(me) = c.current() else {
            let e = Error::new(ErrorKind::NotInThread);
            return Poll::Ready(Err(this.attempt.failed(e)));
        };
        let dir = this.parking.dir;
        // Nothing to try until an event says so (a deadline that has passed
        // still gets its attempt: it never wins over data that is there).
        if c.io_ready(this.parking.token, dir) || this.parking.expired() || !this.attempt.has_work()
        {
            match c.attempt(this.parking.token, dir, &mut this.attempt) {
                Ok(Some(v)) => {
                    this.parking.unpark(c);
                    return Poll::Ready(Ok(v));
                }
                Ok(None) => {}
                Err(e) => {
                    this.parking.unpark(c);
                    return Poll::Ready(Err(this.attempt.failed(e.into())));
                }
            }
        }
        if this.parking.expired() {
            this.parking.unpark(c);
            let e = Error::new(ErrorKind::Timeout);
            return Poll::Ready(Err(this.attempt.failed(e)));
        }
        match this.parking.park(c, me) {
            Ok(()) => Poll::Pending,
            Err(e) => {
                this.parking.unpark(c);
                Poll::Ready(Err(this.attempt.failed(e)))
            }
        }
    }
}

impl<F> Drop for IoOp<'_, F> {
    fn drop(&mut self) {
        self.parking.unpark(self.core);
    }
}

/// Waits until one direction of a socket may be ready, or its deadline passes:
/// the parking of a blocking call without its syscall, for code that makes its
/// own non-blocking attempts (such as a language binding). Get one from a
/// socket's `wait` method.
///
/// It resolves to `Ok(())` when an event arrived for that direction: the
/// caller tries its operation again, which may still find nothing to do, and
/// then waits again. It fails with `closed` if the socket was closed meanwhile,
/// with `timeout` once the deadline has passed (at once if it had already
/// passed), with `busy` if another thread waits in that direction, and with
/// `not_in_thread` outside sock threads.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Wait {
    core: Rc<Core>,
    parking: Parking,
    /// The deadline given was invalid (NaN, `time::deadline`'s error).
    invalid: bool,
    started: bool,
}

impl Wait {
    /// Lets several threads wait together (see [`Tcp::accept`](crate::Tcp::accept)).
    pub(crate) fn shared(mut self) -> Self {
        self.parking.shared = true;
        self
    }
}

impl Future for Wait {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.invalid) {
            return Poll::Ready(Err(crate::time::invalid_expires()));
        }
        let c = Rc::clone(&this.core);
        let Some(me) = c.current() else {
            return Poll::Ready(Err(Error::new(ErrorKind::NotInThread)));
        };
        if !std::mem::replace(&mut this.started, true) {
            if this.parking.expired() {
                return Poll::Ready(Err(Error::new(ErrorKind::Timeout)));
            }
            return match this.parking.park(&c, me) {
                Ok(()) => Poll::Pending,
                Err(e) => {
                    this.parking.unpark(&c);
                    Poll::Ready(Err(e))
                }
            };
        }
        match this.parking.still_parked(&c) {
            Some(true) => {}
            Some(false) => {
                this.parking.unpark(&c);
                return Poll::Ready(Ok(()));
            }
            None => {
                this.parking.unpark(&c);
                return Poll::Ready(Err(Error::new(ErrorKind::Closed)));
            }
        }
        if this.parking.expired() {
            this.parking.unpark(&c);
            return Poll::Ready(Err(Error::new(ErrorKind::Timeout)));
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.parking.unpark(&self.core);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (lp, i, g) in [
            (0u16, 0usize, 1u32),
            (7, 12345, GEN_MASK),
            (0xffe, 0xffff_fffe, 7),
        ] {
            let t = token(lp, i, g);
            assert_eq!(untoken(t), (i, g));
            assert_eq!(loop_of(t), lp);
            assert_ne!(t, crate::sys::WAKE_TOKEN);
            assert_ne!(t, usize::MAX - 1);
        }
    }
}
