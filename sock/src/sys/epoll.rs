//! The Linux backend: edge-triggered epoll, one registration per socket for its
//! whole life, events taken in batches, an eventfd for cross-thread wake-ups.
//!
//! Every socket is added once with `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`.
//! With edges, the kernel reports each transition once; the loop never re-arms
//! and never changes interest, so a parked thread costs no syscall beyond the
//! `EAGAIN` that made it park. The price is that a wake-up carries no promise:
//! the woken operation retries its syscall and parks again on `EAGAIN`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};

use super::{Event, WAKE_TOKEN};

/// How many events one `epoll_wait` can return.
const BATCH: usize = 1024;

/// An epoll instance and the eventfd that wakes it.
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
    waker: Arc<OwnedFd>,
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
        // Anything but an epoll instance fails there, when the wake-up eventfd
        // is added to it (EINVAL).
        Poller::with_epoll(epoll)
    }

    fn with_epoll(epoll: OwnedFd) -> io::Result<Poller> {
        let waker = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &waker,
            epoll::EventData::new_u64(WAKE_TOKEN as u64),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        Ok(Poller {
            epoll,
            waker: Arc::new(waker),
        })
    }

    /// The epoll file descriptor (to share the instance with another loop).
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    /// Registers `fd` for both directions, edge-triggered.
    pub(crate) fn add(&self, fd: RawFd, token: usize) -> io::Result<()> {
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ET;
        epoll::add(
            &self.epoll,
            borrow(fd),
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

    /// Unregisters `fd`. `ENOENT` (already gone) is not an error.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        match epoll::delete(&self.epoll, borrow(fd)) {
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
        match epoll::wait(&self.epoll, spare_capacity(&mut events.list), ts.as_ref()) {
            Ok(_) => Ok(()),
            Err(e) if e == rustix::io::Errno::INTR => Ok(()),
            Err(e) => Err(e.into()),
        }
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

fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the reactor only passes descriptors of sockets that are open for
    // the duration of the call (registration happens after creation, deletion
    // before close); the borrow does not outlive the epoll_ctl call it is made for.
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
