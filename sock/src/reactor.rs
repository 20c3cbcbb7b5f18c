//! Socket registrations and the one wait/retry helper every blocking call uses.
//!
//! A socket is registered with the poller once, when it is created, under a
//! token that names its slot in the loop's I/O table and the slot's generation.
//! The slot records which thread waits to read and which waits to write. An
//! event wakes the waiter(s) of its directions; an event whose token is stale
//! (the socket was closed, its slot reused) is recognized by the generation and
//! dropped, so it never reaches a later socket that got the same descriptor or
//! slot.
//!
//! Every blocking operation is an [`IoOp`]: it tries the syscall first; only on
//! `EAGAIN` does it park the thread on (socket, direction, deadline), and when
//! woken it tries the syscall again. `EINTR` is retried at once. Past its
//! deadline the operation fails with `timeout` and leaves the socket usable;
//! a deadline never wins over an operation that can complete immediately.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::sched::{self, timers::TimerId, Core, ThreadId};
use crate::sys::{Event, Poller};

/// The state of one registered socket in the loop's I/O table.
#[derive(Debug)]
pub(crate) struct IoSlot {
    gen: u32,
    fd: RawFd,
    reader: Option<ThreadId>,
    writer: Option<ThreadId>,
    /// Readers that may wait together (acceptors on one listener); empty, and
    /// so not allocated, for every other socket.
    shared: Vec<ThreadId>,
}

impl IoSlot {
    fn has_readers(&self) -> bool {
        self.reader.is_some() || !self.shared.is_empty()
    }
}

/// A direction of I/O to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

fn token(index: usize, gen: u32) -> usize {
    ((gen as usize) << 32) | index
}

fn untoken(token: usize) -> (usize, u32) {
    (token & 0xffff_ffff, (token >> 32) as u32)
}

/// A socket's registration with its OS thread's loop.
#[derive(Debug)]
pub(crate) struct Registration {
    token: usize,
}

impl Registration {
    /// Registers `fd` with this OS thread's loop for both directions.
    pub(crate) fn new(fd: RawFd) -> Result<Registration> {
        sched::with_core(|c| {
            let poller = c.poller()?;
            let gen = c.io_gen.get().wrapping_add(1) & 0x7fff_ffff;
            c.io_gen.set(gen);
            let index = c.io.borrow_mut().insert(IoSlot {
                gen,
                fd,
                reader: None,
                writer: None,
                shared: Vec::new(),
            });
            let token = token(index, gen);
            if let Err(e) = poller.add(fd, token) {
                c.io.borrow_mut().remove(index);
                return Err(e.into());
            }
            Ok(Registration { token })
        })
    }

    /// Unregisters the socket (before its descriptor is closed) and wakes the
    /// threads parked on it; they retry their syscall and see the socket closed.
    pub(crate) fn deregister(&self) {
        let _ = sched::try_with_core(|c| {
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
                    .chain(slot.shared)
                {
                    c.wake(id);
                }
            }
        });
    }

    /// Waits for `op` to succeed: see [`IoOp`].
    pub(crate) fn io<T, F>(&self, dir: Dir, deadline: Option<Instant>, op: F) -> IoOp<F>
    where
        F: FnMut() -> io::Result<T>,
    {
        IoOp {
            token: self.token,
            dir,
            deadline,
            timer: None,
            parked: None,
            park_first: false,
            shared: false,
            op,
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
    if ev.readable && !slot.shared.is_empty() {
        // Everyone retries; the order rotates so that the work spreads.
        slot.shared.rotate_left(1);
        for &id in &slot.shared {
            c.wake(id);
        }
        slot.shared.clear();
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

/// A blocking operation: try `op`, park on `EAGAIN`, retry when woken.
#[derive(Debug)]
pub(crate) struct IoOp<F> {
    token: usize,
    dir: Dir,
    deadline: Option<Instant>,
    timer: Option<TimerId>,
    /// The thread this operation parked as a waiter, if any.
    parked: Option<ThreadId>,
    /// Park before the first attempt (the caller just got `EINPROGRESS`).
    park_first: bool,
    /// Several threads may wait together (read direction only).
    shared: bool,
    op: F,
}

impl<F> IoOp<F> {
    /// Skips the first attempt: the caller knows it would block.
    pub(crate) fn park_first(mut self) -> Self {
        self.park_first = true;
        self
    }

    /// Lets several threads wait to read together, each woken by every event
    /// (for `accept`: each retries, the ones that find nothing park again).
    pub(crate) fn shared(mut self) -> Self {
        self.shared = true;
        self
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
            if !slot.shared.contains(&me) {
                slot.shared.push(me);
            }
        } else {
            let waiter = match self.dir {
                Dir::Read => &mut slot.reader,
                Dir::Write => &mut slot.writer,
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

    /// Clears the waiter entry and the deadline, if this operation set them.
    fn unpark(&mut self, c: &Core) {
        if let Some(t) = self.timer.take() {
            c.timers.borrow_mut().remove(t);
        }
        let Some(me) = self.parked.take() else { return };
        let (index, gen) = untoken(self.token);
        if let Some(slot) = c.io.borrow_mut().get_mut(index) {
            if slot.gen == gen {
                if self.shared {
                    slot.shared.retain(|&id| id != me);
                    return;
                }
                let waiter = match self.dir {
                    Dir::Read => &mut slot.reader,
                    Dir::Write => &mut slot.writer,
                };
                if *waiter == Some(me) {
                    *waiter = None;
                }
            }
        }
    }
}

impl<T, F: FnMut() -> io::Result<T> + Unpin> Future for IoOp<F> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        sched::with_core(|c| {
            let Some(me) = c.current() else {
                return Poll::Ready(Err(Error::new(ErrorKind::NotInThread)));
            };
            if !std::mem::take(&mut this.park_first) {
                loop {
                    match (this.op)() {
                        Ok(v) => {
                            this.unpark(c);
                            return Poll::Ready(Ok(v));
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            this.unpark(c);
                            return Poll::Ready(Err(e.into()));
                        }
                    }
                }
                if this.deadline.is_some_and(|d| Instant::now() >= d) {
                    this.unpark(c);
                    return Poll::Ready(Err(Error::new(ErrorKind::Timeout)));
                }
            }
            match this.park(c, me) {
                Ok(()) => Poll::Pending,
                Err(e) => {
                    this.unpark(c);
                    Poll::Ready(Err(e))
                }
            }
        })
    }
}

impl<F> Drop for IoOp<F> {
    fn drop(&mut self) {
        if self.parked.is_some() || self.timer.is_some() {
            let _ = sched::try_with_core(|c| self.unpark(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (i, g) in [(0usize, 1u32), (12345, 0x7fff_ffff), (0xffff_fffe, 7)] {
            assert_eq!(untoken(token(i, g)), (i, g));
            assert_ne!(token(i, g), crate::sys::WAKE_TOKEN);
        }
    }
}
