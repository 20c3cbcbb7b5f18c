//! Threads: the task table, their wakers, and the handle that joins them.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::error::{Error, ErrorKind, Result};

/// Identifies a sock thread on its loop (index and generation, so an id is
/// never confused with a later thread that reuses the index).
///
/// # Examples
///
/// ```
/// use std::collections::HashSet;
///
/// let a = sock::newthread(async {}).id(); // finishes at once, freeing its slot
/// let b = sock::newthread(async {}).id(); // reuses the slot, not the id
/// assert_ne!(a, b);
/// let ids: HashSet<sock::ThreadId> = [a, b, a].into_iter().collect();
/// assert_eq!(ids.len(), 2);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadId {
    pub(crate) index: u32,
    /// Never 0: an `Option<ThreadId>` (a socket's waiter, say) is as small
    /// as the id.
    pub(crate) gen: NonZeroU32,
}

impl fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadId({}.{})", self.index, self.gen)
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.gen)
    }
}

/// The boxed future of a thread and the waker it is polled with.
pub(crate) struct TaskBody {
    pub(crate) future: Pin<Box<dyn Future<Output = ()>>>,
    pub(crate) waker: Waker,
}

/// A slot of the task table.
pub(crate) struct TaskSlot {
    pub(crate) gen: NonZeroU32,
    /// `None` while the thread is being polled (its body is on the stack).
    pub(crate) body: Option<TaskBody>,
    /// Already in the run queue: a second wake-up does not queue it twice.
    pub(crate) queued: bool,
    /// Where it stands with `suspend` (see `park.rs`).
    pub(crate) park: super::park::Park,
}

/// The `std::task::Waker` of a thread, for futures that are not sock's own
/// (sock's sockets and timers wake threads directly, without wakers).
pub(crate) struct TaskWaker {
    pub(crate) id: ThreadId,
    pub(crate) remote: Arc<super::remote::Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.remote.wake(self.id);
    }
}

/// What a thread's future may return: `()` or a `Result` whose error is reported
/// when nobody joins the thread.
///
/// # Examples
///
/// ```
/// use sock::ThreadOutput;
///
/// assert_eq!(().failure(), None); // `()` never fails
/// assert_eq!(Err::<(), _>("disk full").failure().as_deref(), Some("disk full"));
/// // So both of these futures can be threads:
/// sock::newthread(async {});
/// sock::newthread(async { "7".parse::<u32>() });
/// ```
pub trait ThreadOutput: 'static {
    /// The failure to report, if the output is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sock::{Error, ErrorKind, ThreadOutput};
    ///
    /// let ok: sock::Result<u16> = Ok(80);
    /// assert_eq!(ok.failure(), None);
    /// let err: sock::Result<u16> = Err(Error::new(ErrorKind::Timeout));
    /// assert!(err.failure().unwrap().starts_with("timeout: "));
    /// ```
    fn failure(&self) -> Option<String>;
}

impl ThreadOutput for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T: 'static, E: fmt::Display + 'static> ThreadOutput for std::result::Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(|e| e.to_string())
    }
}

/// The shared state between a thread and its [`Thread`] handle.
pub(crate) struct JoinState<T> {
    pub(crate) id: Cell<Option<ThreadId>>,
    result: Cell<Option<Result<T>>>,
    finished: Cell<bool>,
    /// The thread waiting in `join`, on its loop.
    joiner: Cell<Option<(std::rc::Weak<super::Core>, ThreadId)>>,
    handle_alive: Cell<bool>,
}

impl<T: ThreadOutput> JoinState<T> {
    pub(crate) fn new() -> Self {
        JoinState {
            id: Cell::new(None),
            result: Cell::new(None),
            finished: Cell::new(false),
            joiner: Cell::new(None),
            handle_alive: Cell::new(true),
        }
    }

    pub(crate) fn finish(&self, out: Result<T>) {
        if !self.handle_alive.get() {
            if let Ok(v) = &out {
                if let Some(msg) = v.failure() {
                    super::report(self.id.get(), &msg);
                }
            }
            self.finished.set(true);
            return;
        }
        self.result.set(Some(out));
        self.finished.set(true);
        let joiner = self.joiner.take();
        if let Some((core, id)) = joiner {
            if let Some(core) = core.upgrade() {
                core.wake(id);
            }
        }
    }
}

impl<T: ThreadOutput> JoinState<T> {
    /// Reports the thread's panic and finishes it with the error.
    pub(crate) fn panicked(&self, message: String) {
        let msg = format!("panicked: {message}");
        super::report(self.id.get(), &msg);
        self.finish(Err(Error::with_message(ErrorKind::Other, msg)));
    }
}

/// A handle to a sock thread started with [`newthread`](crate::newthread).
///
/// Dropping the handle detaches the thread: it goes on running, and an error it
/// returns is reported to the error handler (see
/// [`set_error_handler`](crate::set_error_handler)) instead of being lost.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let done = Rc::new(Cell::new(false));
/// let d = done.clone();
/// drop(sock::newthread(async move {
///     sock::sleep(0.01).await?;
///     d.set(true);
///     sock::Result::Ok(())
/// })); // detached: it goes on running
/// sock::start().unwrap();
/// assert!(done.get());
/// ```
pub struct Thread<T: ThreadOutput> {
    pub(crate) id: ThreadId,
    pub(crate) state: Rc<JoinState<T>>,
}

impl<T: ThreadOutput> fmt::Debug for Thread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id)
            .field("finished", &self.state.finished.get())
            .finish()
    }
}

impl<T: ThreadOutput> Thread<T> {
    /// The thread's id (as [`currentthread`](crate::currentthread) returns inside it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let seen = Rc::new(Cell::new(None));
    /// let s = seen.clone();
    /// let t = sock::newthread(async move { s.set(sock::currentthread()) });
    /// assert_eq!(seen.get(), Some(t.id()));
    /// ```
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// Whether the thread has finished (returned or panicked).
    ///
    /// # Examples
    ///
    /// ```
    /// let quick = sock::newthread(async {});
    /// let slow = sock::newthread(async { sock::sleep(0.01).await });
    /// assert!(quick.is_finished()); // it never blocked
    /// assert!(!slow.is_finished());
    /// sock::start().unwrap();
    /// assert!(slow.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }

    /// The output of a finished thread, for code outside threads (after
    /// [`start`](crate::start) or [`poll`](crate::poll)): `None` while it
    /// runs, then `Some(output)` once, or `Some(Err(..))` if it panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = sock::newthread(async {
    ///     sock::sleep(0.01).await?;
    ///     sock::Result::Ok(6 * 7)
    /// });
    /// assert!(t.result().is_none()); // still sleeping
    /// sock::start().unwrap();
    /// assert_eq!(t.result().unwrap().unwrap().unwrap(), 42);
    ///
    /// let p = sock::newthread(async { assert_eq!(1 + 1, 3, "boom") });
    /// assert!(p.result().unwrap().unwrap_err().message().contains("boom"));
    /// ```
    pub fn result(&self) -> Option<Result<T>> {
        self.state.result.take()
    }

    /// Waits for the thread to finish and returns its output, or an error if it
    /// panicked. Must be awaited inside a sock thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let answer = Rc::new(Cell::new(0));
    /// let a = answer.clone();
    /// sock::newthread(async move {
    ///     let worker = sock::newthread(async {
    ///         sock::sleep(0.01).await?;
    ///         sock::Result::Ok(42)
    ///     });
    ///     a.set(worker.join().await??); // the join's error, then the worker's
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert_eq!(answer.get(), 42);
    /// ```
    pub async fn join(self) -> Result<T> {
        std::future::poll_fn(|_| {
            if let Some(r) = self.state.result.take() {
                return Poll::Ready(r);
            }
            super::with_core(|c| match c.current() {
                None => Poll::Ready(Err(Error::new(ErrorKind::NotInThread))),
                Some(me) => {
                    self.state.joiner.set(Some((Rc::downgrade(c), me)));
                    Poll::Pending
                }
            })
        })
        .await
    }
}

impl<T: ThreadOutput> Drop for Thread<T> {
    fn drop(&mut self) {
        self.state.handle_alive.set(false);
        if let Some(Ok(v)) = self.state.result.take() {
            if let Some(msg) = v.failure() {
                super::report(Some(self.id), &msg);
            }
        }
    }
}

/// Polls a body with its own waker.
pub(crate) fn poll_body(body: &mut TaskBody) -> Poll<()> {
    let mut cx = Context::from_waker(&body.waker);
    body.future.as_mut().poll(&mut cx)
}
