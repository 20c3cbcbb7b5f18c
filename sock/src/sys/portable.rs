//! The portable backend, over the `polling` crate: kqueue on BSD and macOS, IOCP
//! (through AFD) on Windows, event ports on illumos, epoll or poll(2) elsewhere.
//!
//! `polling` cannot do edge-triggered notification on every system, so this
//! backend registers each socket in one-shot mode with no interest, and enables
//! interest in `arm` when a thread parks on the socket. A fired one-shot
//! registration is disabled until the next `arm`, which the reactor issues for
//! any direction that still has a waiter after an event. That costs one
//! `modify` syscall per park, against none for the epoll backend.
//!
//! On Linux this backend is selected with the `portable` cargo feature, so that
//! the whole test suite runs over it too.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event as PEvent, PollMode};

use super::Event;

/// A `polling::Poller`.
#[derive(Debug)]
pub(crate) struct Poller {
    poller: Arc<polling::Poller>,
}

/// Wakes a [`Poller`] from any OS thread.
#[derive(Clone, Debug)]
pub(crate) struct Notifier {
    poller: Arc<polling::Poller>,
}

/// A reusable batch of events.
#[derive(Debug)]
pub(crate) struct Events {
    events: polling::Events,
}

impl Poller {
    /// Creates a poller.
    pub(crate) fn new() -> io::Result<Poller> {
        Ok(Poller {
            poller: Arc::new(polling::Poller::new()?),
        })
    }

    /// Sharing a poller by descriptor is an epoll feature.
    pub(crate) fn from_shared(_fd: RawFd) -> io::Result<Poller> {
        Err(no_sharing())
    }

    /// Sharing a poller by descriptor is an epoll feature.
    pub(crate) fn share(&self) -> io::Result<RawFd> {
        Err(no_sharing())
    }

    /// Sharing a poller by descriptor is an epoll feature.
    pub(crate) fn share_owned(&self) -> io::Result<std::os::fd::OwnedFd> {
        Err(no_sharing())
    }

    /// Registers `fd` in one-shot mode with no interest yet. (`exclusive` is
    /// an epoll feature; the other pollers wake every waiter.)
    pub(crate) fn add(&self, fd: RawFd, token: usize, _exclusive: bool) -> io::Result<()> {
        // SAFETY: the reactor deletes every registration (`delete`) before the
        // socket's descriptor is closed, as `polling` requires.
        unsafe {
            self.poller
                .add_with_mode(fd, PEvent::none(token), PollMode::Oneshot)
        }
    }

    /// Enables interest in the directions that have a waiter.
    pub(crate) fn arm(&self, fd: RawFd, token: usize, read: bool, write: bool) -> io::Result<()> {
        let ev = PEvent::new(token, read, write);
        // SAFETY: `fd` is a registered socket (deleted before its close).
        let fd = unsafe { borrow(fd) };
        self.poller.modify_with_mode(fd, ev, PollMode::Oneshot)
    }

    /// Whether closing a registered descriptor is enough to unregister it:
    /// no, `polling` keeps state of its own for every registration.
    pub(crate) const CLOSE_UNREGISTERS: bool = false;

    /// Unregisters `fd`.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: `fd` is a registered socket, deleted before its close.
        match self.poller.delete(unsafe { borrow(fd) }) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Waits for events until `timeout` (None = forever).
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.events.clear();
        match self.poller.wait(&mut events.events, timeout) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A handle that wakes this poller from any thread.
    pub(crate) fn notifier(&self) -> Notifier {
        Notifier {
            poller: Arc::clone(&self.poller),
        }
    }

    /// `polling` consumes its notifications itself.
    pub(crate) fn drain_notifications(&self) {}
}

impl Notifier {
    /// Wakes the poller.
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.poller.notify()
    }
}

impl Events {
    /// An empty batch.
    pub(crate) fn new() -> Events {
        let cap = std::num::NonZeroUsize::new(1024).expect("nonzero");
        Events {
            events: polling::Events::with_capacity(cap),
        }
    }

    /// The events of the last wait.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.events.iter().map(|e| {
            let failed = e.is_err().unwrap_or(false);
            Event {
                token: e.key,
                readable: e.readable || failed,
                writable: e.writable || failed,
                hangup: failed,
            }
        })
    }
}

/// The error of the sharing calls: this backend has no descriptor to share.
fn no_sharing() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "sharing a poller by descriptor needs the epoll backend",
    )
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
