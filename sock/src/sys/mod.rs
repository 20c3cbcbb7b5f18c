//! Platform code, behind one small contract.
//!
//! Everything above this module is portable; everything OS-specific lives below it.
//! Each backend provides (keep every backend in sync with this list):
//!
//! * `Poller`: the readiness queue of one loop.
//!   - `Poller::new()` creates a private instance; `share()` (epoll only) gives
//!     the descriptor of its socket instance for other loops, and
//!     `Poller::from_shared(fd)` joins one, see `epoll_fd` in the crate root. A
//!     shared instance delivers any loop's events to whichever loop waits: the
//!     reactor routes them by the loop in their token.
//!   - `add(fd, token, exclusive)` registers a socket once for its whole life,
//!     for both directions. The epoll backend is edge-triggered; backends that
//!     cannot do edges register in one-shot mode and rely on `arm`.
//!     `exclusive` asks that an arrival wake one of the pollers that hold the
//!     socket, not all (`EPOLLEXCLUSIVE`; ignored where there is no such thing).
//!   - `arm(fd, token, read, write)` is called when a thread parks on a socket;
//!     one-shot backends (re-)enable interest there, edge-triggered ones do nothing.
//!   - `delete(fd)` unregisters before the descriptor is closed.
//!   - `wait(&mut Events, timeout)` takes a batch of events; `timeout` is rounded
//!     up to the backend's resolution, never down, so a deadline is never early.
//!   - `notifier()` gives a `Notifier` (`Send + Sync`) whose `notify()` wakes a
//!     blocked `wait` from any OS thread; the wake-up shows up as an event with
//!     `WAKE_TOKEN`.
//! * `Events`: a reusable batch; `iter()` yields [`Event`]s.
//! * `Error::from_errno` (in `unix::errno`): the one table from OS codes to
//!   normalized error kinds, and the constructor that reads it.
//! * `socket`: the few socket calls that `socket2` does not cover (`accept4` with
//!   flags, the send flags that suppress `SIGPIPE`).
//! * `addr`: `getaddrinfo`. `sockopt`: options by name. `clock`: the
//!   system's monotonic clock in seconds (what `clock()` reads).

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod epoll;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub(crate) use epoll::{Events, Notifier, Poller};

#[cfg(any(not(target_os = "linux"), feature = "portable"))]
mod portable;
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
pub(crate) use portable::{Events, Notifier, Poller};

/// Whether the backend reports every arrival as an event, whether or not a
/// thread waits (edge-triggered epoll): the reactor then skips attempts that
/// readiness says would fail. One-shot backends report only while armed.
pub(crate) const EDGE_TRIGGERED: bool = cfg!(all(target_os = "linux", not(feature = "portable")));

/// The token reserved for the loop's own wake-up notifications.
pub(crate) const WAKE_TOKEN: usize = usize::MAX;

/// One readiness event, normalized across backends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    /// The token given to `Poller::add`.
    pub token: usize,
    /// The socket can be read (or has hung up: a read will not block).
    pub readable: bool,
    /// The socket can be written (or has failed: a write will not block).
    pub writable: bool,
    /// The socket hung up or failed (peer shutdown, reset, error): reads will
    /// not block again, and no further edge may come to say so.
    pub hangup: bool,
}

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(not(unix))]
compile_error!("sock supports Unix systems (epoll on Linux, the portable backend elsewhere); the Windows socket layer (sys/windows) is not written yet");
