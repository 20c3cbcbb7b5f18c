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
//! # Who waits
//!
//! One reader at a time: a second one is `busy` (acceptors on a listener
//! are the exception: they wait together, `shared`). Writers take turns
//! instead: the slot's `writer` is the one whose turn it is, an operation
//! that wrote part of its bytes (or waited to write) and holds the write
//! side until it ends, so that its bytes stay contiguous on the stream;
//! the others queue, in the order they came. A writer that finds the turn
//! free writes at once (and takes the turn only if it must wait). Ending
//! (done, failed, timed out: [`Reactor::unpark`]) passes the turn to the
//! first queued writer, which is handed back to be woken; an attempt to
//! write by anyone else while the turn is taken waits without its syscall
//! ([`Reactor::may_write`]), forced or not. An event wakes the writer
//! whose turn it is if it waits for one; queued writers wait for their
//! turn, not for events. Closing the socket wakes them all. The queue is
//! in the slot's boxed lists, allocated when a second writer queues and
//! freed when the last one leaves.
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
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use slab::Slab;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{Event, Poller};

/// The state of one registered socket in the loop's I/O table.
#[derive(Debug)]
struct IoSlot<W> {
    /// The generation (low [`GEN_BITS`] bits) and, in the top byte, which
    /// directions may be ready (`READY_*` bits: see the module docs) and
    /// the write turn's `WRITER_PARKED` and `WRITE_TURN`: one word for
    /// both, so that a slot is four words.
    tag: u32,
    fd: RawFd,
    reader: Option<W>,
    /// The writer whose turn it is (see "Who waits" in the module docs): it
    /// waits for an event if `WRITER_PARKED` is set in `ready`.
    writer: Option<W>,
    /// The lists that few sockets need, allocated when first needed: the
    /// readers that wait together (acceptors on one listener) and the
    /// writers queued for their turn. None, and so one pointer, for every
    /// other socket. (Boxed: the lists here would be seven words in every
    /// socket's slot.)
    lists: Option<Box<Lists<W>>>,
}

/// The waiters of a slot that are lists.
#[derive(Debug)]
struct Lists<W> {
    /// Readers that wait together: every event wakes them all.
    shared: Vec<W>,
    /// Writers waiting for the write turn, in the order they came.
    writers: VecDeque<W>,
}

impl<W> Default for Lists<W> {
    fn default() -> Lists<W> {
        Lists {
            shared: Vec::new(),
            writers: VecDeque::new(),
        }
    }
}

/// An attempt to read may succeed.
const READY_READ: u8 = 1;
/// An attempt to write may succeed.
const READY_WRITE: u8 = 2;
/// The socket hung up or failed: reads never wait again (sticky).
const READY_HUP: u8 = 4;
/// The writer whose turn it is waits for an event (not a readiness bit).
const WRITER_PARKED: u8 = 8;
/// A writer has the turn (`writer` is set; kept here too, so that the
/// attempts' check is one test of this byte while nobody has it).
const WRITE_TURN: u8 = 16;
/// Registered exclusively (`EPOLLEXCLUSIVE`: a listener that several loops
/// hold, each a duplicate of it): its close must unregister it explicitly,
/// since the other loops' duplicates keep the file open, and a
/// registration left behind could take the one wake-up a connection gets.
const EXCLUSIVE: u8 = 32;

fn ready_bit(dir: Direction) -> u8 {
    match dir {
        Direction::Read => READY_READ,
        Direction::Write => READY_WRITE,
    }
}

impl<W: Copy + PartialEq> IoSlot<W> {
    #[inline(always)]
    fn gen(&self) -> u32 {
        self.tag & GEN_MASK
    }

    /// The `READY_*`, `WRITER_PARKED` and `WRITE_TURN` bits.
    #[inline(always)]
    fn ready(&self) -> u8 {
        (self.tag >> READY_SHIFT) as u8
    }

    #[inline(always)]
    fn set_ready(&mut self, bits: u8) {
        self.tag = (self.tag & GEN_MASK) | (u32::from(bits) << READY_SHIFT);
    }

    fn has_readers(&self) -> bool {
        self.reader.is_some() || self.lists.as_ref().is_some_and(|l| !l.shared.is_empty())
    }

    /// Whether the writer whose turn it is waits for an event.
    fn writer_parked(&self) -> bool {
        self.ready() & WRITER_PARKED != 0
    }

    fn is_ready(&self, dir: Direction) -> bool {
        let bits = match dir {
            Direction::Read => READY_READ | READY_HUP,
            Direction::Write => READY_WRITE,
        };
        self.ready() & bits != 0
    }

    /// Whether `me` may write now: nobody has the turn, or `me` has it.
    #[inline(always)]
    fn may_write(&self, me: Option<W>) -> bool {
        self.ready() & WRITE_TURN == 0 || self.writer == me
    }

    /// Gives the turn to `w` (or nobody).
    fn set_writer(&mut self, w: Option<W>) {
        self.writer = w;
        self.set_ready((self.ready() & !WRITE_TURN) | (w.is_some() as u8 * WRITE_TURN));
    }

    /// Whether `w` is one of the writers queued for their turn.
    fn is_queued(&self, w: W) -> bool {
        self.lists.as_ref().is_some_and(|l| l.writers.contains(&w))
    }

    /// The turn passes from its writer to the first queued one (if any),
    /// which is answered: it is to be woken.
    fn pass_turn(&mut self) -> Option<W> {
        self.set_ready(self.ready() & !WRITER_PARKED);
        let next = self.lists.as_mut().and_then(|l| l.writers.pop_front());
        self.set_writer(next);
        if self
            .lists
            .as_ref()
            .is_some_and(|l| l.writers.is_empty() && l.shared.is_empty())
        {
            // The queue's memory goes with its last writer.
            self.lists = None;
        }
        self.writer
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
/// Where a slot's ready bits sit in its tag, above the generation.
const READY_SHIFT: u32 = 24;

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
            tag: gen
                | (u32::from(READY_READ | READY_WRITE | (exclusive as u8 * EXCLUSIVE))
                    << READY_SHIFT),
            fd,
            reader: None,
            writer: None,
            lists: None,
        };
        let index = self.io.borrow_mut().insert(slot);
        let token = token(lp, index, gen);
        if let Err(e) = poller.add(fd, token, exclusive) {
            self.io.borrow_mut().remove(index);
            return Err(e.into());
        }
        Ok(token)
    }

    /// Unregisters the socket of `token` (before its descriptor is closed:
    /// with a backend whose close unregisters, `Poller::CLOSE_UNREGISTERS`,
    /// only here, without a syscall) and hands its waiters to `wake`: they
    /// retry and see the socket closed.
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
                Some(s) if s.gen() == gen => Some(io.remove(index)),
                _ => None,
            }
        };
        if let Some(slot) = slot {
            // (With epoll the close that follows unregisters it, unless a
            // duplicate held elsewhere keeps the file open: `EXCLUSIVE`.)
            let explicit = !Poller::CLOSE_UNREGISTERS || slot.ready() & EXCLUSIVE != 0;
            if let Some(p) = poller.filter(|_| explicit) {
                let _ = p.delete(slot.fd);
            }
            let (shared, writers) = match slot.lists {
                Some(l) => (l.shared, l.writers),
                None => Default::default(),
            };
            for w in [slot.reader, slot.writer]
                .into_iter()
                .flatten()
                .chain(shared)
                .chain(writers)
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
            Some(slot) if slot.gen() == gen => slot.is_ready(dir),
            _ => true,
        }
    }

    /// Whether `me` (`None`: code outside the loop's threads) may make an
    /// attempt to write: nobody else has the write turn (see "Who waits"),
    /// and the socket may be writable (or `any`: whatever the readiness
    /// says). A closed socket says yes: the attempt reports it.
    #[inline(always)]
    pub(crate) fn may_write(&self, token: usize, any: bool, me: Option<W>) -> bool {
        let (index, gen) = untoken(token);
        match self.io.borrow().get(index) {
            Some(slot) if slot.gen() == gen => {
                let r = slot.ready();
                if r & (READY_WRITE | WRITE_TURN) == READY_WRITE {
                    return true;
                }
                (any || r & READY_WRITE != 0) && slot.may_write(me)
            }
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
            if slot.gen() == gen {
                slot.set_ready(slot.ready() & !ready_bit(dir));
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
    /// reader waits (not shared); a writer takes the write turn if it is
    /// free (or its own), else queues for it (see the module docs).
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

    /// Makes `w` a waiter of the direction `dir` (as [`park`](Self::park)
    /// does) without arming the poller: `w` is woken when the socket is
    /// closed, and by an event only if some other waiter armed it. Answers
    /// the descriptor and the directions that wait for events.
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
            Some(s) if s.gen() == gen => s,
            _ => return Err(Error::new(ErrorKind::Closed)),
        };
        match (shared, dir) {
            (true, _) => {
                let list = &mut slot.lists.get_or_insert_with(Box::default).shared;
                if !list.contains(&w) {
                    list.push(w);
                }
            }
            (false, Direction::Read) => match slot.reader {
                Some(other) if other != w => return Err(Error::new(ErrorKind::Busy)),
                _ => slot.reader = Some(w),
            },
            (false, Direction::Write) => {
                if slot.may_write(Some(w)) {
                    slot.set_writer(Some(w));
                    slot.set_ready(slot.ready() | WRITER_PARKED);
                } else if !slot.is_queued(w) {
                    let lists = slot.lists.get_or_insert_with(Box::default);
                    lists.writers.push_back(w);
                }
            }
        }
        Ok((slot.fd, slot.has_readers(), slot.writer_parked()))
    }

    /// Whether `w` still waits on the socket (`Some(true)`: parked, or a
    /// writer queued for its turn), was handed back (`Some(false)`: by an
    /// event, or a writer given its turn), or the socket is gone (`None`).
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
        let slot = io.get(index).filter(|s| s.gen() == gen)?;
        Some(match (shared, dir) {
            (true, _) => slot.lists.as_ref().is_some_and(|l| l.shared.contains(&w)),
            (false, Direction::Read) => slot.reader == Some(w),
            (false, Direction::Write) => {
                (slot.writer == Some(w) && slot.writer_parked()) || slot.is_queued(w)
            }
        })
    }

    /// Removes `w` from the waiters of the socket, if it is there. A writer
    /// whose turn it was passes the turn to the first queued one, which is
    /// handed to `wake`.
    #[inline]
    pub(crate) fn unpark(
        &self,
        token: usize,
        dir: Direction,
        shared: bool,
        w: W,
        wake: impl FnOnce(W),
    ) {
        let (index, gen) = untoken(token);
        let mut io = self.io.borrow_mut();
        let Some(slot) = io.get_mut(index).filter(|s| s.gen() == gen) else {
            return;
        };
        match (shared, dir) {
            (true, _) => {
                if let Some(l) = slot.lists.as_mut() {
                    l.shared.retain(|&id| id != w);
                }
            }
            (false, Direction::Read) => {
                if slot.reader == Some(w) {
                    slot.reader = None;
                }
            }
            (false, Direction::Write) if slot.writer == Some(w) => {
                if let Some(next) = slot.pass_turn() {
                    drop(io);
                    wake(next);
                }
            }
            (false, Direction::Write) => {
                if let Some(l) = slot.lists.as_mut() {
                    l.writers.retain(|&id| id != w);
                }
            }
        }
    }

    /// Handles one readiness event: hands the waiters of the ready
    /// directions to `wake` (of the writers, the one whose turn it is, if it
    /// waits for an event: it keeps its turn). Events of closed sockets
    /// (stale generation) are dropped.
    pub(crate) fn dispatch(&self, poller: &Poller, ev: Event, mut wake: impl FnMut(W)) {
        let (index, gen) = untoken(ev.token);
        let mut io = self.io.borrow_mut();
        let Some(slot) = io.get_mut(index) else {
            return;
        };
        if slot.gen() != gen {
            return;
        }
        slot.set_ready(
            slot.ready()
                | (ev.readable as u8 * READY_READ)
                | (ev.writable as u8 * READY_WRITE)
                | (ev.hangup as u8 * READY_HUP),
        );
        let r = if ev.readable {
            slot.reader.take()
        } else {
            None
        };
        let w = if ev.writable && slot.writer_parked() {
            slot.set_ready(slot.ready() & !WRITER_PARKED);
            slot.writer
        } else {
            None
        };
        if let Some(shared) = slot
            .lists
            .as_mut()
            .map(|l| &mut l.shared)
            .filter(|v| ev.readable && !v.is_empty())
        {
            // Everyone retries; the order rotates so that the work spreads.
            shared.rotate_left(1);
            for &id in shared.iter() {
                wake(id);
            }
            shared.clear();
        }
        if slot.has_readers() || slot.writer_parked() {
            // One-shot backends disabled the whole registration when it fired.
            let _ = poller.arm(slot.fd, ev.token, slot.has_readers(), slot.writer_parked());
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
        // The descriptor is closed (which unregisters it, with epoll), and
        // the slot's next socket, likely with the same descriptor number,
        // has a new token: the old one's events wake nobody, and parking on
        // it says closed.
        drop(a);
        let (a2, _b2) = std::os::unix::net::UnixStream::pair().unwrap();
        let t2 = r.register(&poller, 3, a2.as_raw_fd(), false).unwrap();
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
        r.unpark(t, Direction::Read, true, 2, |_| unreachable!());
        let mut woken = Vec::new();
        r.dispatch(&poller, event(t, true, false), |w| woken.push(w));
        assert_eq!(woken, [3, 1]);
        assert_eq!(r.is_parked(t, Direction::Read, true, 1), Some(false));
    }

    #[test]
    fn writers_take_turns_in_order_of_arrival() {
        use std::os::fd::AsRawFd;
        let poller = Poller::new().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let r: Reactor<u32> = Reactor::new();
        let t = r.register(&poller, 0, a.as_raw_fd(), false).unwrap();
        let slot_size = std::mem::size_of::<IoSlot<crate::sched::ThreadId>>();
        assert!(slot_size <= 48, "an I/O slot takes {slot_size} bytes");
        // Anyone may write while nobody has the turn.
        assert!(r.may_write(t, false, Some(5)));
        assert!(r.may_write(t, false, None));
        for w in [1, 2, 3] {
            r.park(&poller, t, Direction::Write, false, w).unwrap();
        }
        assert!(r.io.borrow()[0].lists.is_some());
        // 1 has the turn: nobody else writes, forced or not, in a thread or not.
        assert!(r.may_write(t, false, Some(1)));
        assert!(!r.may_write(t, true, Some(2)));
        assert!(!r.may_write(t, true, None));
        assert!(r.is_ready(t, Direction::Read), "reads go on");
        // An event wakes the writer whose turn it is; it keeps the turn.
        let mut woken = Vec::new();
        r.dispatch(&poller, event(t, false, true), |w| woken.push(w));
        assert_eq!(woken, [1]);
        assert_eq!(r.is_parked(t, Direction::Write, false, 1), Some(false));
        assert_eq!(r.is_parked(t, Direction::Write, false, 2), Some(true));
        r.dispatch(&poller, event(t, false, true), |w| woken.push(w));
        assert_eq!(woken, [1], "queued writers wait for their turn, not events");
        // 2 leaves the queue (its deadline); 1 ends: the turn goes to 3.
        r.unpark(t, Direction::Write, false, 2, |_| unreachable!());
        r.unpark(t, Direction::Write, false, 1, |w| woken.push(w));
        assert_eq!(woken, [1, 3]);
        assert!(r.may_write(t, false, Some(3)));
        assert!(!r.may_write(t, false, Some(1)));
        assert!(r.io.borrow()[0].lists.is_none(), "the empty queue is freed");
        r.unpark(t, Direction::Write, false, 3, |_| unreachable!());
        assert!(r.may_write(t, false, Some(1)));
        // Closing wakes the writer with the turn and the queued ones.
        for w in [4, 5, 6] {
            r.park(&poller, t, Direction::Write, false, w).unwrap();
        }
        woken.clear();
        r.deregister(Some(&poller), t, |w| woken.push(w));
        assert_eq!(woken, [4, 5, 6]);
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
        let ready = r.is_ready(t, Direction::Read);
        assert_eq!(ready, !crate::sys::EDGE_TRIGGERED);
        r.dispatch(&poller, event(t, true, false), |_| {});
        assert!(r.is_ready(t, Direction::Read));
    }
}
