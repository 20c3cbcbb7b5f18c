//! The I/O table of a loop: socket registrations, readiness, and who waits.
//!
//! A socket is registered with the poller of its loop once, when it is
//! created, under a token that names its slot in the loop's I/O table and the
//! slot's generation. The slot records which waiter (a thread id, to the
//! scheduler) waits to read and which waits to write. An event hands the
//! waiter(s) of its directions back to the caller (`dispatch`'s `wake`); an
//! event whose token is stale (the socket was closed, its slot reused) is
//! recognized by the generation and dropped, so it never reaches a later
//! socket that got the same descriptor or slot.
//!
//! The reactor knows nothing of threads, timers or deadlines: the scheduler
//! (`sched::io`) parks its threads here and queues the ones handed back. Every
//! blocking operation is a step-able state machine (`step::Op`) that the
//! scheduler drives: try the syscall first ([`Reactor::attempt`]: `EINTR`
//! retried, `EAGAIN` is "wait"), park only when it would block.
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

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;

use slab::Slab;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{Event, Poller};

/// The state of one registered socket in the loop's I/O table.
#[derive(Debug)]
struct IoSlot<W> {
    gen: u32,
    fd: RawFd,
    reader: Option<W>,
    writer: Option<W>,
    /// Readers that may wait together (acceptors on one listener); none, and
    /// so one pointer, for every other socket. (Boxed: a `Vec` here would be
    /// three words in every socket's slot, for the few listeners.)
    #[allow(clippy::box_collection)]
    shared: Option<Box<Vec<W>>>,
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

impl<W> IoSlot<W> {
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

/// The I/O table of one loop: its registered sockets, by token, with their
/// readiness and their waiters (`W`: the scheduler's thread ids).
#[derive(Debug)]
pub(crate) struct Reactor<W> {
    io: RefCell<Slab<IoSlot<W>>>,
    gen: Cell<u32>,
}

impl<W: Copy + PartialEq> Reactor<W> {
    pub(crate) fn new() -> Reactor<W> {
        Reactor {
            io: RefCell::new(Slab::new()),
            gen: Cell::new(0),
        }
    }

    /// Registers `fd` with `poller` for both directions, for the loop `lp`
    /// (the token routes its events there); `exclusive`: see
    /// `sys::Poller::add` (a listener that several loops hold).
    pub(crate) fn register(
        &self,
        poller: &Poller,
        lp: u16,
        fd: RawFd,
        exclusive: bool,
    ) -> Result<usize> {
        let gen = self.gen.get().wrapping_add(1) & GEN_MASK;
        self.gen.set(gen);
        let slot = IoSlot {
            gen,
            fd,
            reader: None,
            writer: None,
            shared: None,
            ready: READY_READ | READY_WRITE,
        };
        let index = self.io.borrow_mut().insert(slot);
        let token = token(lp, index, gen);
        if let Err(e) = poller.add(fd, token, exclusive) {
            self.io.borrow_mut().remove(index);
            return Err(e.into());
        }
        Ok(token)
    }

    /// Unregisters the socket of `token` (before its descriptor is closed)
    /// and hands its waiters to `wake`: they retry and see the socket closed.
    pub(crate) fn deregister(
        &self,
        poller: Option<&Poller>,
        token: usize,
        mut wake: impl FnMut(W),
    ) {
        let (index, gen) = untoken(token);
        let slot = {
            let mut io = self.io.borrow_mut();
            match io.get(index) {
                Some(s) if s.gen == gen => Some(io.remove(index)),
                _ => None,
            }
        };
        if let Some(slot) = slot {
            if let Some(p) = poller {
                let _ = p.delete(slot.fd);
            }
            for w in [slot.reader, slot.writer]
                .into_iter()
                .flatten()
                .chain(slot.shared.into_iter().flat_map(|v| *v))
            {
                wake(w);
            }
        }
    }

    /// Whether an attempt in `dir` may succeed: false when no event came
    /// since the last attempt found nothing (see the module docs). A closed
    /// socket is "ready": the attempt reports it.
    #[inline]
    pub(crate) fn is_ready(&self, token: usize, dir: Direction) -> bool {
        let (index, gen) = untoken(token);
        match self.io.borrow().get(index) {
            Some(slot) if slot.gen == gen => slot.is_ready(dir),
            _ => true,
        }
    }

    /// Records that an attempt in `dir` found nothing to do (`EAGAIN`, or a
    /// short read on a stream): until the next event, attempts in that
    /// direction park without their syscall. Nothing with a one-shot
    /// backend, whose events come only while a thread waits (a thread that
    /// tries and then sleeps instead of waiting would never see its socket
    /// ready again).
    #[inline]
    pub(crate) fn clear_ready(&self, token: usize, dir: Direction) {
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

    /// One attempt of `f` on the socket of `token`: `EINTR` is retried, and
    /// `EAGAIN` is `Ok(None)` and clears the direction's readiness.
    #[inline(always)]
    pub(crate) fn attempt<T>(
        &self,
        token: usize,
        dir: Direction,
        mut f: impl FnMut() -> io::Result<T>,
    ) -> io::Result<Option<T>> {
        loop {
            match f() {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.clear_ready(token, dir);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Parks `w` on the direction `dir` of the socket of `token` (`shared`:
    /// among the readers that wait together, acceptors on one listener), and
    /// arms the poller. `closed` if the socket is gone, `busy` if another
    /// waiter has that direction.
    #[inline]
    pub(crate) fn park(
        &self,
        poller: &Poller,
        token: usize,
        dir: Direction,
        shared: bool,
        w: W,
    ) -> Result<()> {
        let (fd, read, write) = self.hold(token, dir, shared, w)?;
        poller.arm(fd, token, read, write)?;
        Ok(())
    }

    /// Makes `w` the waiter of the direction `dir` (as [`park`](Self::park)
    /// does) without arming the poller: `w` is woken when the socket is
    /// closed, and by an event only if some other waiter armed it. Answers
    /// the descriptor and the directions that have waiters.
    #[inline(always)]
    pub(crate) fn hold(
        &self,
        token: usize,
        dir: Direction,
        shared: bool,
        w: W,
    ) -> Result<(RawFd, bool, bool)> {
        let (index, gen) = untoken(token);
        let mut io = self.io.borrow_mut();
        let slot = match io.get_mut(index) {
            Some(s) if s.gen == gen => s,
            _ => return Err(Error::new(ErrorKind::Closed)),
        };
        if shared {
            let list = slot.shared.get_or_insert_with(Box::default);
            if !list.contains(&w) {
                list.push(w);
            }
        } else {
            let waiter = match dir {
                Direction::Read => &mut slot.reader,
                Direction::Write => &mut slot.writer,
            };
            match *waiter {
                Some(other) if other != w => return Err(Error::new(ErrorKind::Busy)),
                _ => *waiter = Some(w),
            }
        }
        Ok((slot.fd, slot.has_readers(), slot.writer.is_some()))
    }

    /// Whether `w` still waits on the socket (`Some(true)`), was handed back
    /// by an event (`Some(false)`), or the socket is gone (`None`).
    #[inline]
    pub(crate) fn is_parked(
        &self,
        token: usize,
        dir: Direction,
        shared: bool,
        w: W,
    ) -> Option<bool> {
        let (index, gen) = untoken(token);
        let io = self.io.borrow();
        let slot = io.get(index).filter(|s| s.gen == gen)?;
        Some(match (shared, dir) {
            (true, _) => slot.shared.as_ref().is_some_and(|v| v.contains(&w)),
            (false, Direction::Read) => slot.reader == Some(w),
            (false, Direction::Write) => slot.writer == Some(w),
        })
    }

    /// Removes `w` from the waiters of the socket, if it is there.
    #[inline]
    pub(crate) fn unpark(&self, token: usize, dir: Direction, shared: bool, w: W) {
        let (index, gen) = untoken(token);
        let mut io = self.io.borrow_mut();
        let Some(slot) = io.get_mut(index).filter(|s| s.gen == gen) else {
            return;
        };
        if shared {
            if let Some(v) = slot.shared.as_mut() {
                v.retain(|&id| id != w);
            }
            return;
        }
        let waiter = match dir {
            Direction::Read => &mut slot.reader,
            Direction::Write => &mut slot.writer,
        };
        if *waiter == Some(w) {
            *waiter = None;
        }
    }

    /// Handles one readiness event: hands the waiters of the ready
    /// directions to `wake`. Events of closed sockets (stale generation) are
    /// dropped.
    pub(crate) fn dispatch(&self, poller: &Poller, ev: Event, mut wake: impl FnMut(W)) {
        let (index, gen) = untoken(ev.token);
        let mut io = self.io.borrow_mut();
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
                wake(id);
            }
            shared.clear();
        }
        if slot.has_readers() || slot.writer.is_some() {
            // One-shot backends disabled the whole registration when it fired.
            let _ = poller.arm(slot.fd, ev.token, slot.has_readers(), slot.writer.is_some());
        }
        drop(io);
        for id in [r, w].into_iter().flatten() {
            wake(id);
        }
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

    fn event(token: usize, readable: bool, writable: bool) -> Event {
        Event {
            token,
            readable,
            writable,
            hangup: false,
        }
    }

    #[test]
    fn waiters_are_handed_back_and_stale_events_dropped() {
        use std::os::fd::AsRawFd;
        let poller = Poller::new().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let r: Reactor<u32> = Reactor::new();
        let t = r.register(&poller, 3, a.as_raw_fd(), false).unwrap();
        assert_eq!(loop_of(t), 3);
        r.park(&poller, t, Direction::Read, false, 7).unwrap();
        let busy = r.park(&poller, t, Direction::Read, false, 8).unwrap_err();
        assert_eq!(busy.kind(), ErrorKind::Busy);
        r.park(&poller, t, Direction::Write, false, 9).unwrap();
        let mut woken = Vec::new();
        // A read event hands back the reader only; the writer still waits.
        r.dispatch(&poller, event(t, true, false), |w| woken.push(w));
        assert_eq!(woken, [7]);
        assert_eq!(r.is_parked(t, Direction::Read, false, 7), Some(false));
        assert_eq!(r.is_parked(t, Direction::Write, false, 9), Some(true));
        // Closing hands back whoever is left.
        r.deregister(Some(&poller), t, |w| woken.push(w));
        assert_eq!(woken, [7, 9]);
        assert_eq!(r.is_parked(t, Direction::Write, false, 9), None);
        // The slot's next socket has a new token: the old one's events wake
        // nobody, and parking on it says closed.
        let t2 = r.register(&poller, 3, a.as_raw_fd(), false).unwrap();
        assert_ne!(t2, t);
        r.park(&poller, t2, Direction::Read, false, 1).unwrap();
        r.dispatch(&poller, event(t, true, true), |w| woken.push(w));
        assert_eq!(woken, [7, 9]);
        let closed = r.park(&poller, t, Direction::Read, false, 2).unwrap_err();
        assert_eq!(closed.kind(), ErrorKind::Closed);
    }

    #[test]
    fn shared_readers_all_retry_in_rotating_order() {
        use std::os::fd::AsRawFd;
        let poller = Poller::new().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let r: Reactor<u32> = Reactor::new();
        let t = r.register(&poller, 0, a.as_raw_fd(), false).unwrap();
        for w in [1, 2, 3] {
            r.park(&poller, t, Direction::Read, true, w).unwrap();
        }
        r.unpark(t, Direction::Read, true, 2);
        let mut woken = Vec::new();
        r.dispatch(&poller, event(t, true, false), |w| woken.push(w));
        assert_eq!(woken, [3, 1]);
        assert_eq!(r.is_parked(t, Direction::Read, true, 1), Some(false));
    }

    #[test]
    fn readiness_is_cleared_by_would_block_and_set_by_events() {
        use std::os::fd::AsRawFd;
        let poller = Poller::new().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let r: Reactor<u32> = Reactor::new();
        let t = r.register(&poller, 0, a.as_raw_fd(), false).unwrap();
        assert!(
            r.is_ready(t, Direction::Read),
            "new sockets are tried first"
        );
        let mut calls = 0;
        let got = r.attempt(t, Direction::Read, || {
            calls += 1;
            match calls {
                1 => Err(io::Error::from(io::ErrorKind::Interrupted)),
                _ => Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock)),
            }
        });
        assert!(matches!(got, Ok(None)), "EAGAIN is 'would block'");
        assert_eq!(calls, 2, "EINTR is retried");
        assert_eq!(r.is_ready(t, Direction::Read), !crate::sys::EDGE_TRIGGERED);
        r.dispatch(&poller, event(t, true, false), |_| {});
        assert!(r.is_ready(t, Direction::Read));
    }
}
