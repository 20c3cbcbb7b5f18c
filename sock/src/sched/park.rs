//! Parking a thread until another thread lets it go: [`suspend`] and
//! [`resume`] (the seed's later `sock.suspend` / `sock.resume`), and the
//! sleep that another thread can cut short ([`SleepJob`]).
//!
//! A suspended thread waits for nothing the loop knows of: no socket, no
//! deadline. Its task slot says so ([`Park::Suspended`]), so that
//! [`resume`] can tell a suspended thread from one that waits for I/O or a
//! time (resuming those is a programmer error) and run it at once, from the
//! caller, until it next blocks.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{with_core, Core, Sleep, ThreadId};
use crate::error::{Error, ErrorKind, Result};

/// Where a thread stands with [`suspend`]: kept in its task slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Park {
    /// Not suspended (running, waiting for something else, or queued).
    #[default]
    None,
    /// Parked in a [`Suspend`] that [`resume`] has not let go yet.
    Suspended,
    /// Let go by [`resume`]; its [`Suspend`] completes when polled next.
    Resumed,
}

impl Core {
    /// Sets the park state of the thread `id`; returns the state it had.
    fn set_park(&self, id: ThreadId, park: Park) -> Park {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get_mut(id.index as usize) {
            Some(slot) if slot.gen == id.gen => std::mem::replace(&mut slot.park, park),
            _ => Park::None,
        }
    }

    /// [`resume`] on this loop.
    fn resume(&self, id: ThreadId) -> Result<()> {
        let inline = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(id.index as usize) {
                Some(slot) if slot.gen == id.gen && slot.park == Park::Suspended => {
                    slot.park = Park::Resumed;
                    slot.body.is_some()
                }
                _ => {
                    return Err(Error::with_message(
                        ErrorKind::InvalidArgument,
                        format!(
                            "thread {id} is not suspended (it is running, waits for \
                             I/O or a time, or has finished)"
                        ),
                    ))
                }
            }
        };
        if inline {
            self.run(id);
        } else {
            // Suspended while its own poll is still on the stack (it handed
            // control to the caller from inside it): it goes on when that
            // poll looks at its `Suspend` again, or from the run queue.
            self.wake(id);
        }
        Ok(())
    }
}

/// Parks the current thread until another thread (or code outside the
/// loop's threads) calls [`resume`] with its id; other threads run
/// meanwhile. The thread waits for nothing else: no socket, no deadline (it
/// does not keep the loop alive on its own, but it counts as a live thread).
///
/// Completes with the `not_in_thread` error outside sock threads. Values
/// pass between the two sides through shared state (an `Rc<Cell<_>>`).
///
/// # Examples
///
/// Two threads taking turns: `resume` runs the other thread at once, until
/// it next blocks.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// let worker = sock::newthread(async move {
///     for i in 0..3 {
///         l.borrow_mut().push(format!("worker {i}"));
///         sock::suspend().await?;
///     }
///     sock::Result::Ok(())
/// });
/// let id = worker.id();
/// for i in 0..3 {
///     log.borrow_mut().push(format!("main {i}"));
///     sock::resume(id).unwrap(); // the worker runs now, until it suspends
/// }
/// assert_eq!(
///     *log.borrow(),
///     ["worker 0", "main 0", "worker 1", "main 1", "worker 2", "main 2"]
/// );
/// assert!(worker.is_finished());
/// // It has finished: resuming it again is an error.
/// assert_eq!(sock::resume(id).unwrap_err().name(), "invalid_argument");
/// ```
pub fn suspend() -> Suspend {
    Suspend { parked: None }
}

/// Runs the thread `id` of the current loop, now, from the caller, until it
/// next blocks or finishes: it must be parked in [`suspend`].
///
/// Returns the `invalid_argument` error, and leaves the thread as it was,
/// when it is not suspended: running (the caller itself, or a thread that
/// resumed the caller), waiting for I/O or a time, or finished. Callable
/// from inside a sock thread or from outside the loop's threads.
///
/// A thread that suspended from inside its own resume of the caller (the
/// two hand control back and forth) is queued instead: it goes on as soon
/// as the caller blocks.
pub fn resume(id: ThreadId) -> Result<()> {
    with_core(|c| c.resume(id))
}

/// The future of [`suspend`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Suspend {
    /// The loop and the thread, once parked.
    parked: Option<(Rc<Core>, ThreadId)>,
}

impl Future for Suspend {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let Some((c, me)) = &this.parked {
            if c.set_park(*me, Park::Suspended) == Park::Resumed {
                c.set_park(*me, Park::None);
                this.parked = None;
                return Poll::Ready(Ok(()));
            }
            // A wake-up from elsewhere (a foreign waker): still suspended.
            return Poll::Pending;
        }
        with_core(|c| {
            let Some(me) = c.current() else {
                return Poll::Ready(Err(Error::new(ErrorKind::NotInThread)));
            };
            c.set_park(me, Park::Suspended);
            this.parked = Some((Rc::clone(c), me));
            Poll::Pending
        })
    }
}

impl Drop for Suspend {
    fn drop(&mut self) {
        if let Some((c, me)) = self.parked.take() {
            c.set_park(me, Park::None);
        }
    }
}

/// A sleep that another thread can cut short: one thread at a time sleeps
/// in [`sleep`](Self::sleep) or [`sleep_until`](Self::sleep_until), and
/// [`wakeup`](Self::wakeup) ends that sleep early. The timer is the loop's
/// own (no thread besides the sleeper); clones share the job.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let job = sock::SleepJob::new();
/// let woken = Rc::new(Cell::new(None));
/// let (j, w) = (job.clone(), woken.clone());
/// sock::newthread(async move {
///     // Would sleep an hour; the other thread wakes it first.
///     w.set(Some(j.sleep(3600.0).await?));
///     sock::Result::Ok(())
/// });
/// sock::newthread(async move {
///     sock::sleep(0.01).await?;
///     assert!(job.wakeup()); // a thread was sleeping
///     assert!(!job.wakeup()); // not any more
///     sock::Result::Ok(())
/// });
/// sock::start().unwrap();
/// assert_eq!(woken.get(), Some(true)); // woken early, not run its course
/// ```
#[derive(Clone, Debug, Default)]
pub struct SleepJob {
    inner: Rc<JobState>,
}

#[derive(Debug, Default)]
struct JobState {
    /// The sleeping thread and its loop.
    sleeper: RefCell<Option<(Rc<Core>, ThreadId)>>,
    /// Set by `wakeup` for the sleep in progress.
    woken: Cell<bool>,
}

impl SleepJob {
    /// A job with no sleeper.
    pub fn new() -> SleepJob {
        SleepJob::default()
    }

    /// Sleeps the current thread for `s` seconds, unless [`wakeup`](Self::wakeup)
    /// comes first. Completes with `Ok(true)` when woken, `Ok(false)` when
    /// the time ran its course; `not_in_thread` outside sock threads, and
    /// `invalid_argument` when another thread already sleeps on this job.
    pub fn sleep(&self, s: f64) -> JobSleep {
        self.sleep_until(crate::time::clock() + s)
    }

    /// As [`sleep`](Self::sleep), until the clock reaches `t` (see
    /// [`clock`](crate::clock)).
    pub fn sleep_until(&self, t: f64) -> JobSleep {
        JobSleep {
            job: Rc::clone(&self.inner),
            sleep: super::sleep_until(t),
            registered: false,
        }
    }

    /// Ends the sleep in progress early: its thread is queued to run, and
    /// its sleep completes with `Ok(true)`. Returns whether a thread was
    /// sleeping (with none, nothing happens).
    pub fn wakeup(&self) -> bool {
        let Some((core, id)) = self.inner.sleeper.borrow_mut().take() else {
            return false;
        };
        self.inner.woken.set(true);
        core.wake(id);
        true
    }

    /// Whether a thread sleeps on this job now.
    pub fn is_sleeping(&self) -> bool {
        self.inner.sleeper.borrow().is_some()
    }
}

/// The future of [`SleepJob::sleep`] and [`SleepJob::sleep_until`]:
/// `Ok(true)` when woken early, `Ok(false)` when the time ran its course.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct JobSleep {
    job: Rc<JobState>,
    sleep: Sleep,
    /// This sleep is the job's (its sleeper, or woken by `wakeup`).
    registered: bool,
}

impl Future for JobSleep {
    type Output = Result<bool>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<bool>> {
        let this = self.get_mut();
        if this.registered && this.job.woken.take() {
            this.registered = false;
            return Poll::Ready(Ok(true));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(r) => {
                this.release();
                Poll::Ready(r.map(|()| false))
            }
            Poll::Pending if this.registered => Poll::Pending,
            Poll::Pending => {
                let mut sleeper = this.job.sleeper.borrow_mut();
                if sleeper.is_some() || this.job.woken.get() {
                    return Poll::Ready(Err(Error::with_message(
                        ErrorKind::InvalidArgument,
                        "another thread already sleeps on this sleep job",
                    )));
                }
                // `Sleep` returned Pending: inside a thread of this loop.
                *sleeper = with_core(|c| c.current().map(|me| (Rc::clone(c), me)));
                this.registered = true;
                Poll::Pending
            }
        }
    }
}

impl JobSleep {
    /// Gives the job back (no sleeper, no wake-up pending for this sleep).
    fn release(&mut self) {
        if std::mem::take(&mut self.registered) {
            self.job.sleeper.borrow_mut().take();
            self.job.woken.set(false);
        }
    }
}

impl Drop for JobSleep {
    fn drop(&mut self) {
        self.release();
    }
}
