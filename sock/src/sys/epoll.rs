//! The Linux backend: edge-triggered epoll, one registration per socket for its
//! whole life, events taken in batches, an eventfd for cross-thread wake-ups.
//!
//! Every socket is added once with `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`.
//! With edges, the kernel reports each transition once; the loop never re-arms
//! and never changes interest, so a parked thread costs no syscall beyond the
//! `EAGAIN` that made it park. The price is that a wake-up carries no promise:
//! the woken operation retries its syscall and parks again on `EAGAIN`.
//!
//! # Sharing one instance between loops
//!
//! Alone, a loop waits on its instance directly: sockets and the loop's
//! wake-up eventfd are in it. Once the instance is shared (its descriptor
//! exported with [`Poller::share`], or another loop's joined with
//! [`Poller::from_shared`]), the sockets stay in the shared instance and each
//! loop waits on a private instance of its own that holds its eventfd and the
//! shared instance (nested epoll, edge-triggered). A wake-up meant for one loop
//! can then never be taken by another; an event of the shared instance wakes
//! the loops that wait, and whichever takes it (`epoll_wait` with no timeout on
//! the shared instance) hands it to the socket's owner (the reactor's routing,
//! by the loop in the token). A loop that took a full batch drains the rest
//! before its next blocking wait, since no new edge may come for what is left.

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};

use super::{Event, WAKE_TOKEN};

/// How many events one `epoll_wait` can return.
const BATCH: usize = 1024;

/// The token of the shared instance inside a loop's private one.
const SHARED_TOKEN: u64 = u64::MAX - 1;

/// An epoll instance and the eventfd that wakes it.
pub(crate) struct Poller {
    /// Where sockets are registered: this loop's instance, or a shared one.
    epoll: OwnedFd,
    /// Once shared: this loop's own instance, holding its eventfd and
    /// `epoll`; the loop waits there (see the module docs).
    private: OnceCell<OwnedFd>,
    /// A full batch was taken from the shared instance: take the rest before
    /// blocking.
    backlog: Cell<bool>,
    /// The events of the private instance (two at most), kept for reuse.
    mine: RefCell<Vec<epoll::Event>>,
    waker: Arc<OwnedFd>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("epoll", &self.epoll)
            .field("shared", &self.private.get().is_some())
            .finish()
    }
}

/// Wakes a [`Poller`] from any OS thread.
#[derive(Clone, Debug)]
pub(crate) struct Notifier {
    waker: Arc<OwnedFd>,
}

/// A reusable batch of epoll events.
pub(crate) struct Events {
    list: Vec<epoll::Event>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("len", &self.list.len())
            .finish()
    }
}

impl Poller {
    /// Creates a private epoll instance.
    pub(crate) fn new() -> io::Result<Poller> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Poller::with_epoll(epoll)
    }

    /// Joins the epoll instance behind `fd`, which stays owned by the caller
    /// (this poller keeps a duplicate, so either may be closed first).
    pub(crate) fn from_shared(fd: RawFd) -> io::Result<Poller> {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: `fd` is only borrowed for the duration of the `fcntl` that
        // duplicates it; a bad fd makes the call fail with EBADF, reported to the caller.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let epoll = rustix::io::fcntl_dupfd_cloexec(borrowed, 0)?;
        let waker = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        // Removing a descriptor it does not hold tells an epoll instance
        // (ENOENT) from anything else (EINVAL: a file, a socket, ...).
        match epoll::delete(&epoll, &waker) {
            Err(rustix::io::Errno::NOENT) => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("descriptor {fd} is not an epoll instance"),
                ))
            }
        }
        let p = Poller::with_parts(epoll, waker);
        p.make_private()?;
        Ok(p)
    }

    fn with_epoll(epoll: OwnedFd) -> io::Result<Poller> {
        let waker = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        add_waker(&epoll, &waker)?;
        Ok(Poller::with_parts(epoll, waker))
    }

    /// A poller of the socket instance `epoll` and the eventfd `waker`, not
    /// (yet) shared.
    fn with_parts(epoll: OwnedFd, waker: OwnedFd) -> Poller {
        Poller {
            epoll,
            private: OnceCell::new(),
            backlog: Cell::new(false),
            mine: RefCell::new(Vec::with_capacity(2)),
            waker: Arc::new(waker),
        }
    }

    /// Creates the private instance: the eventfd moves there, and the
    /// instance of the sockets is nested in it.
    fn make_private(&self) -> io::Result<()> {
        if self.private.get().is_some() {
            return Ok(());
        }
        let private = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &private,
            &self.epoll,
            epoll::EventData::new_u64(SHARED_TOKEN),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        // The eventfd leaves the shared instance, if it was there (a
        // notification written meanwhile stays in its counter, and adding it
        // reports it, as every add does for a ready descriptor).
        match epoll::delete(&self.epoll, &*self.waker) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        add_waker(&private, &self.waker)?;
        let _ = self.private.set(private);
        Ok(())
    }

    /// The descriptor of the instance the sockets are in, for other loops to
    /// join ([`from_shared`](Self::from_shared)); from now on this loop waits
    /// on a private instance (see the module docs).
    pub(crate) fn share(&self) -> io::Result<RawFd> {
        self.make_private()?;
        Ok(self.epoll.as_raw_fd())
    }

    /// [`share`](Self::share), as a duplicate descriptor of its own.
    pub(crate) fn share_owned(&self) -> io::Result<OwnedFd> {
        self.make_private()?;
        Ok(rustix::io::fcntl_dupfd_cloexec(&self.epoll, 0)?)
    }

    /// Registers `fd` for both directions, edge-triggered. `exclusive`
    /// (`EPOLLEXCLUSIVE`, for a listener that several epoll instances hold):
    /// an arrival wakes one of the instances that wait on it, not all; the
    /// kernel takes no `EPOLLRDHUP` with it, which a listener does not need.
    pub(crate) fn add(&self, fd: RawFd, token: usize, exclusive: bool) -> io::Result<()> {
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::ET
            | match exclusive {
                true => epoll::EventFlags::EXCLUSIVE,
                false => epoll::EventFlags::RDHUP,
            };
        // SAFETY: `fd` is a socket being registered: open for this call.
        let fd = unsafe { borrow(fd) };
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token as u64),
            flags,
        )
        .map_err(Into::into)
    }

    /// Edge-triggered registrations never need re-arming.
    #[inline]
    pub(crate) fn arm(
        &self,
        _fd: RawFd,
        _token: usize,
        _read: bool,
        _write: bool,
    ) -> io::Result<()> {
        Ok(())
    }

    /// Whether closing a registered descriptor is enough to unregister it,
    /// so that a close needs no [`delete`](Self::delete) first: with epoll,
    /// `close(2)` removes the registration with the open file's last
    /// descriptor. (If the file lives on in a duplicate, made by `dup` or a
    /// `fork` whose child has not yet called `exec`, the registration stays
    /// until the duplicate is closed too; its events carry the closed
    /// socket's token, whose generation the reactor no longer knows: they
    /// are dropped.) One `epoll_ctl` saved per connection.
    pub(crate) const CLOSE_UNREGISTERS: bool = true;

    /// Unregisters `fd`. `ENOENT` (already gone) is not an error.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: `fd` is a registered socket, deleted before its close.
        match epoll::delete(&self.epoll, unsafe { borrow(fd) }) {
            Err(e) if e == rustix::io::Errno::NOENT => Ok(()),
            r => r.map_err(Into::into),
        }
    }

    /// Waits for events until `timeout` (None = forever). `EINTR` returns with no events.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        // Kernels before 5.11 lack epoll_pwait2 and take whole milliseconds: round
        // up so that a 0.3 ms wait is not a busy 0 ms poll, and cap huge values.
        let ts = timeout.map(|d| {
            round_up_to_ms(Timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: d.subsec_nanos() as _,
            })
        });
        let Some(private) = self.private.get() else {
            return wait_on(&self.epoll, &mut events.list, ts.as_ref());
        };
        // Shared: the private instance says what happened; a full batch left
        // over from the last wait is taken without blocking.
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let ts = if self.backlog.get() {
            Some(&zero)
        } else {
            ts.as_ref()
        };
        let mut mine = self.mine.borrow_mut();
        mine.clear();
        wait_on(private, &mut mine, ts)?;
        let mut shared = self.backlog.replace(false);
        for e in mine.iter() {
            if e.data.u64() == SHARED_TOKEN {
                shared = true;
            } else {
                events.list.push(*e);
            }
        }
        if shared {
            let room = events.list.capacity() - events.list.len();
            let before = events.list.len();
            wait_on(&self.epoll, &mut events.list, Some(&zero))?;
            self.backlog.set(events.list.len() - before == room);
        }
        Ok(())
    }

    /// A handle that wakes this poller from any thread.
    pub(crate) fn notifier(&self) -> Notifier {
        Notifier {
            waker: Arc::clone(&self.waker),
        }
    }

    /// Consumes pending notifications (called when `WAKE_TOKEN` fires).
    pub(crate) fn drain_notifications(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&*self.waker, &mut buf);
    }
}

/// Adds the wake-up eventfd to `epoll`.
fn add_waker(epoll: &OwnedFd, waker: &OwnedFd) -> io::Result<()> {
    epoll::add(
        epoll,
        waker,
        epoll::EventData::new_u64(WAKE_TOKEN as u64),
        epoll::EventFlags::IN | epoll::EventFlags::ET,
    )
    .map_err(Into::into)
}

/// One `epoll_wait` on `epoll` into the spare room of `list`; `EINTR` is no
/// events.
fn wait_on(epoll: &OwnedFd, list: &mut Vec<epoll::Event>, ts: Option<&Timespec>) -> io::Result<()> {
    match epoll::wait(epoll, spare_capacity(list), ts) {
        Ok(_) => Ok(()),
        Err(e) if e == rustix::io::Errno::INTR => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn round_up_to_ms(t: Timespec) -> Timespec {
    const MAX_SECS: i64 = (i32::MAX / 1000) as i64;
    if t.tv_sec >= MAX_SECS {
        return Timespec {
            tv_sec: MAX_SECS,
            tv_nsec: 0,
        };
    }
    let ms = (t.tv_nsec + 999_999) / 1_000_000;
    Timespec {
        tv_sec: t.tv_sec + ms / 1000,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    }
}

impl Notifier {
    /// Wakes the poller; several notifications before a wait coalesce into one.
    pub(crate) fn notify(&self) -> io::Result<()> {
        match rustix::io::write(&*self.waker, &1u64.to_ne_bytes()) {
            // EAGAIN: the counter is saturated, a wake-up is pending anyway.
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Events {
    /// An empty batch with room for the backend's batch size.
    pub(crate) fn new() -> Events {
        Events {
            list: Vec::with_capacity(BATCH),
        }
    }

    /// The events of the last wait.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.list.iter().map(|e| {
            let flags = e.flags;
            let failed = flags.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP);
            Event {
                token: e.data.u64() as usize,
                // A hang-up or error wakes both directions: the next read or write
                // reports it instead of waiting for an edge that will not come.
                readable: failed
                    || flags.intersects(
                        epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::PRI,
                    ),
                writable: failed || flags.contains(epoll::EventFlags::OUT),
                hangup: failed || flags.contains(epoll::EventFlags::RDHUP),
            }
        })
    }
}

/// The descriptor `fd` as a borrow for one call into the poller.
///
/// # Safety
///
/// `fd` must be open until the borrow's last use: the reactor passes the
/// descriptors of its registered sockets only, which it registers after
/// their creation and deletes before their close.
unsafe fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the caller's promise (above).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        let t = round_up_to_ms(Timespec {
            tv_sec: 0,
            tv_nsec: 300_000,
        });
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 1_000_000));
        let t = round_up_to_ms(Timespec {
            tv_sec: 1,
            tv_nsec: 999_000_001,
        });
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 0));
        let t = round_up_to_ms(Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        });
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 0));
        let t = round_up_to_ms(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        assert!(t.tv_sec * 1000 <= i32::MAX as i64);
    }

    #[test]
    fn notify_wakes_a_wait() {
        let p = Poller::new().unwrap();
        let n = p.notifier();
        std::thread::spawn(move || n.notify().unwrap());
        let mut ev = Events::new();
        loop {
            p.wait(&mut ev, Some(Duration::from_secs(5))).unwrap();
            if ev.iter().any(|e| e.token == WAKE_TOKEN) {
                break;
            }
        }
        p.drain_notifications();
    }
}
