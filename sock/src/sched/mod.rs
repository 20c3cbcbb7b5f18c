//! The loop: lightweight threads, their run queue, timers, and the poll that
//! drives them.
//!
//! Each OS thread has its own loop, created on first use. A sock thread is a
//! future owned by the loop ([`newthread`]); it runs until it would block, and
//! a blocking call parks it on a socket direction and/or a deadline. One
//! iteration of the loop ([`poll`]) is:
//!
//! 1. compute how long to wait: zero if a thread is runnable, else until the
//!    earliest deadline, capped by the caller's timeout;
//! 2. wait for readiness events (epoll, or the portable backend) in one batch
//!    and queue the threads parked on the sockets that became ready;
//! 3. queue the threads woken from other OS threads or by foreign wakers;
//! 4. queue the threads whose deadlines passed (every iteration, so deadlines
//!    fire under load too);
//! 5. run the queued threads, in the order they were queued.
//!
//! Nothing here takes a lock on the single-threaded path: the state is in
//! `RefCell`s of a thread-local, and only wake-ups from other OS threads go
//! through a mutex.

pub(crate) mod io;
mod jobs;
mod park;
pub(crate) mod remote;
mod task;
pub(crate) mod timers;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU32;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use slab::Slab;

use crate::error::{Error, ErrorKind, Result};
use crate::reactor::{loop_of, Reactor};
use crate::sys::{Events, Poller, WAKE_TOKEN};
use remote::{Inbox, Remote};
use task::{JoinState, TaskBody, TaskSlot, TaskWaker};
use timers::Timers;

pub use jobs::{run_after, run_at, run_every, Timer};
pub use park::{resume, suspend, JobSleep, SleepJob, Suspend};
pub use task::{Thread, ThreadId, ThreadOutput};

/// What a timer of the loop's heap is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Due {
    /// Wakes a thread (a deadline, a sleep).
    Thread(ThreadId),
    /// Calls a job's action ([`run_at`], ...).
    Job(jobs::JobKey),
}

impl From<ThreadId> for Due {
    fn from(id: ThreadId) -> Due {
        Due::Thread(id)
    }
}

/// The per-OS-thread loop.
pub(crate) struct Core {
    /// Created on first need, so that threads and timers work without a poller.
    poller: OnceCell<Poller>,
    /// An epoll instance to join instead of creating one (see [`set_epoll_fd`]).
    shared_fd: Cell<Option<RawFd>>,
    /// The I/O table: registered sockets and the threads parked on them.
    pub(crate) reactor: Reactor<ThreadId>,
    /// The loop's time: read once per iteration (after the wait), and when a
    /// thread starts outside the loop; deadlines are checked against it.
    now: Cell<Instant>,
    tasks: RefCell<Slab<TaskSlot>>,
    task_gen: Cell<u32>,
    run_queue: RefCell<VecDeque<ThreadId>>,
    pub(crate) timers: RefCell<Timers<Due>>,
    /// The pending jobs of [`run_at`] and its kin.
    jobs: RefCell<Slab<jobs::Job>>,
    current: Cell<Option<ThreadId>>,
    stopping: Cell<bool>,
    polling: Cell<bool>,
    events: RefCell<Events>,
    remote: Arc<Remote>,
    inbox: RefCell<Inbox>,
    /// Events of other loops' sockets taken from a shared poller, to route.
    foreign: RefCell<Vec<(u16, crate::sys::Event)>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("index", &self.remote.index)
            .field("threads", &self.tasks.borrow().len())
            .finish()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.remote.unregister();
    }
}

/// (An `Rc`: a report calls a clone, so the handler may replace itself.)
type ErrorHandler = Rc<dyn Fn(Option<ThreadId>, &str)>;

/// The default loop of an OS thread; its threads are dropped (cancelled) when
/// the OS thread exits, which also breaks the cycles sockets inside threads
/// make with their loop.
struct DefaultLoop(Rc<Core>);

impl Drop for DefaultLoop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

thread_local! {
    static DEFAULT: DefaultLoop = DefaultLoop(Rc::new(Core::new()));
    /// The loop entered with [`Loop::enter`], if any; else the default one is current.
    static ENTERED: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    static ERROR_HANDLER: RefCell<Option<ErrorHandler>> = const { RefCell::new(None) };
}

impl Core {
    fn new() -> Core {
        Core {
            poller: OnceCell::new(),
            shared_fd: Cell::new(None),
            reactor: Reactor::new(),
            now: Cell::new(Instant::now()),
            tasks: RefCell::new(Slab::new()),
            task_gen: Cell::new(0),
            run_queue: RefCell::new(VecDeque::new()),
            timers: RefCell::new(Timers::new()),
            jobs: RefCell::new(Slab::new()),
            current: Cell::new(None),
            stopping: Cell::new(false),
            polling: Cell::new(false),
            events: RefCell::new(Events::new()),
            remote: Remote::register(),
            inbox: RefCell::new(Inbox::default()),
            foreign: RefCell::new(Vec::new()),
        }
    }

    /// The error of a loop that cannot share its poller: the registry of
    /// loops that route events is full.
    fn require_sharing(&self) -> Result<()> {
        match self.remote.can_share() {
            true => Ok(()),
            false => Err(Error::with_message(
                ErrorKind::NotSupported,
                "too many loops share pollers (at most 4095 at once)",
            )),
        }
    }

    /// The loop's index in its sockets' tokens.
    pub(crate) fn index(&self) -> u16 {
        self.remote.index
    }

    /// Drops every thread (cancelling what it waits for). Their futures are
    /// dropped outside the table's borrow: their destructors use the loop.
    fn shutdown(&self) {
        let slots: Vec<TaskSlot> = self.tasks.borrow_mut().drain().collect();
        self.run_queue.borrow_mut().clear();
        drop(slots);
        let jobs: Vec<jobs::Job> = self.jobs.borrow_mut().drain().collect();
        drop(jobs);
    }

    /// The poller, created on first use.
    #[inline]
    pub(crate) fn poller(&self) -> Result<&Poller> {
        match self.poller.get() {
            Some(p) => Ok(p),
            None => self.new_poller(),
        }
    }

    /// Creates the poller (its first use).
    #[cold]
    fn new_poller(&self) -> Result<&Poller> {
        let p = match self.shared_fd.get() {
            Some(fd) => Poller::from_shared(fd)?,
            None => Poller::new()?,
        };
        let _ = self.remote.notifier.set(p.notifier());
        Ok(self.poller.get_or_init(|| p))
    }

    /// Queues a thread to run (once, however often it is woken).
    pub(crate) fn wake(&self, id: ThreadId) {
        let mut tasks = self.tasks.borrow_mut();
        if let Some(slot) = tasks.get_mut(id.index as usize) {
            if slot.gen == id.gen && !slot.queued {
                slot.queued = true;
                self.run_queue.borrow_mut().push_back(id);
            }
        }
    }

    pub(crate) fn current(&self) -> Option<ThreadId> {
        self.current.get()
    }

    /// The loop's time (see the field).
    pub(crate) fn now(&self) -> Instant {
        self.now.get()
    }

    /// Reads the clock into the loop's time.
    fn update_now(&self) -> Instant {
        let now = Instant::now();
        self.now.set(now);
        now
    }

    /// A new generation for a slot of the task or job table: ids of a
    /// reused slot never match the earlier ones.
    fn next_gen(&self) -> NonZeroU32 {
        // Wrapped, it skips 0: never a generation.
        let gen = NonZeroU32::new(self.task_gen.get().wrapping_add(1)).unwrap_or(NonZeroU32::MIN);
        self.task_gen.set(gen.get());
        gen
    }

    /// Adds a thread; `future` reports its own output and panics (`Finish`).
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()>>>) -> ThreadId {
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let gen = self.next_gen();
        let id = ThreadId {
            index: entry.key() as u32,
            gen,
        };
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            remote: Arc::clone(&self.remote),
        }));
        entry.insert(TaskSlot {
            gen,
            body: Some(TaskBody { future, waker }),
            queued: false,
            park: park::Park::None,
        });
        id
    }

    /// Polls one thread, if it still exists and is not already being polled.
    fn run(&self, id: ThreadId) {
        let body = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(id.index as usize) {
                Some(slot) if slot.gen == id.gen => {
                    slot.queued = false;
                    slot.body.take()
                }
                _ => None,
            }
        };
        let Some(mut body) = body else { return };
        let prev = self.current.replace(Some(id));
        // `Finish` catches the thread's panics; the loop never sees one.
        let res = task::poll_body(&mut body);
        self.current.set(prev);
        match res {
            Poll::Pending => {
                if let Some(slot) = self.tasks.borrow_mut().get_mut(id.index as usize) {
                    slot.body = Some(body);
                }
            }
            Poll::Ready(()) => {
                // Dropped outside the borrow: its destructors may use the loop
                // (and may panic, after a thread that panicked).
                self.tasks.borrow_mut().remove(id.index as usize);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(body)));
            }
        }
    }

    fn live_threads(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// One iteration of the loop; see the module docs. Returns whether any
    /// thread was resumed.
    fn poll_once(&self, max_wait: Option<std::time::Duration>) -> Result<bool> {
        if self.current.get().is_some() || self.polling.get() {
            return Err(Error::with_message(
                ErrorKind::InvalidArgument,
                "poll/start cannot be called from inside a sock thread",
            ));
        }
        if self.live_threads() == 0 && self.live_jobs() == 0 {
            return Err(Error::new(ErrorKind::Empty));
        }
        self.polling.set(true);
        let r = self.poll_inner(max_wait);
        self.polling.set(false);
        r
    }

    fn poll_inner(&self, max_wait: Option<std::time::Duration>) -> Result<bool> {
        // The poller (and so the notifier of cross-thread wake-ups) must exist
        // before the remote queue is read: a wake-up pushed in between would
        // otherwise not interrupt the wait.
        let poller = self.poller()?;
        self.take_remote();
        let timeout = if !self.run_queue.borrow().is_empty() {
            Some(std::time::Duration::ZERO)
        } else {
            let next = self.timers.borrow().next_deadline();
            let now = self.update_now();
            let until_timer = next.map(|d| d.saturating_duration_since(now));
            match (max_wait, until_timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        {
            let mut events = self.events.borrow_mut();
            let mut foreign = self.foreign.borrow_mut();
            poller.wait(&mut events, timeout)?;
            for ev in events.iter() {
                if ev.token == WAKE_TOKEN {
                    poller.drain_notifications();
                    continue;
                }
                match loop_of(ev.token) {
                    lp if lp == self.remote.index => self.dispatch(poller, ev),
                    lp => foreign.push((lp, ev)),
                }
            }
            remote::route(&mut foreign);
        }
        self.take_remote();
        self.update_now();
        self.fire_timers();
        // Run the threads queued so far; those queued meanwhile wait for the
        // next iteration, so a thread that keeps yielding cannot starve I/O.
        let n = self.run_queue.borrow().len();
        for _ in 0..n {
            let next = self.run_queue.borrow_mut().pop_front();
            match next {
                Some(id) => self.run(id),
                None => break,
            }
        }
        Ok(n > 0)
    }

    /// Wakes the threads and dispatches the events that other OS threads
    /// handed in.
    fn take_remote(&self) {
        let mut inbox = self.inbox.borrow_mut();
        self.remote.take(&mut inbox);
        for id in inbox.threads.drain(..) {
            self.wake(id);
        }
        if !inbox.events.is_empty() {
            if let Ok(poller) = self.poller() {
                for ev in inbox.events.drain(..) {
                    self.dispatch(poller, ev);
                }
            }
        }
    }

    /// Queues the threads that the reactor hands back for an event.
    fn dispatch(&self, poller: &Poller, ev: crate::sys::Event) {
        self.reactor.dispatch(poller, ev, |id| self.wake(id));
    }

    fn fire_timers(&self) {
        let now = self.now();
        loop {
            let expired = self.timers.borrow_mut().pop_expired(now);
            match expired {
                Some(Due::Thread(id)) => self.wake(id),
                Some(Due::Job(key)) => self.fire_job(key),
                None => return,
            }
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// An event loop of your own, for code that needs several loops on one OS
/// thread (a host with several Lua states, each with its loop).
///
/// Every OS thread has a default loop, which the free functions ([`newthread`],
/// [`start`], [`poll`], ...) and new sockets use. Inside [`Loop::enter`] they
/// use this loop instead. A socket stays with the loop it was made in.
/// Dropping a `Loop` cancels its threads.
///
/// ```
/// let a = sock::Loop::new();
/// let t = a.enter(|| sock::newthread(async { sock::sleep(0.01).await }));
/// sock::start().unwrap(); // the default loop: nothing to do
/// assert!(!t.is_finished());
/// a.enter(|| sock::start()).unwrap();
/// assert!(t.is_finished());
/// ```
#[derive(Debug)]
pub struct Loop {
    core: Rc<Core>,
}

impl Loop {
    /// Makes a loop (its poller is created on first use).
    ///
    /// ```
    /// let l = sock::Loop::new();
    /// assert_eq!(l.enter(|| sock::poll(Some(0.0))).unwrap_err().name(), "empty");
    /// ```
    #[allow(clippy::new_without_default)] // A loop is a resource, not a value.
    pub fn new() -> Loop {
        Loop {
            core: Rc::new(Core::new()),
        }
    }

    /// Runs `f` with this loop as the current one; nests, and restores the
    /// previous one on return (also when `f` panics).
    ///
    /// ```
    /// let l = sock::Loop::new();
    /// let id = l.enter(|| sock::newthread(async { sock::sleep(0.01).await }).id());
    /// assert!(l.enter(|| sock::poll(Some(1.0))).unwrap()); // the thread woke
    /// # let _ = id;
    /// ```
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Rc<Core>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                let _ = ENTERED.try_with(|e| *e.borrow_mut() = prev);
            }
        }
        let prev = ENTERED.with(|e| e.borrow_mut().replace(Rc::clone(&self.core)));
        let _restore = Restore(prev);
        f()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

/// Runs `f` with the current loop: the one entered with [`Loop::enter`], or
/// this OS thread's default loop.
pub(crate) fn with_core<R>(f: impl FnOnce(&Rc<Core>) -> R) -> R {
    match ENTERED.with(|e| e.borrow().clone()) {
        Some(c) => f(&c),
        None => DEFAULT.with(|d| f(&d.0)),
    }
}

/// Like [`with_core`], but `None` while the thread-locals are being destroyed.
pub(crate) fn try_with_core<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    match ENTERED.try_with(|e| e.borrow().clone()).ok()? {
        Some(c) => Some(f(&c)),
        None => DEFAULT.try_with(|d| f(&d.0)).ok(),
    }
}

pub(crate) fn current_id() -> Option<ThreadId> {
    try_with_core(|c| c.current.get()).flatten()
}

fn report(id: Option<ThreadId>, msg: &str) {
    // The handler is called outside the cell's borrow: it may call
    // `set_error_handler` itself. Its panic is reported, never passed on
    // into the loop (the report may come from inside `start`).
    let handler = ERROR_HANDLER
        .try_with(|h| h.borrow().clone())
        .ok()
        .flatten();
    let handled = match handler {
        Some(f) => match catch_unwind(AssertUnwindSafe(|| f(id, msg))) {
            Ok(()) => true,
            Err(payload) => {
                eprintln!(
                    "sock: the error handler panicked: {}",
                    panic_message(&payload)
                );
                false
            }
        },
        None => false,
    };
    if !handled {
        match id {
            Some(id) => eprintln!("sock: thread {id} failed: {msg}"),
            None => eprintln!("sock: thread failed: {msg}"),
        }
    }
}

/// Starts a sock thread running `future`, at once: `newthread` returns when the
/// thread first blocks (or finishes), and the loop ([`start`], [`poll`])
/// resumes it when what it waits for is ready.
///
/// The thread lives on the calling OS thread's loop. A panic inside it is
/// caught and reported; the loop and the other threads go on. The output is
/// `()` or a `Result`; an error that nobody [`join`](Thread::join)s is
/// reported too (by default on stderr; see [`set_error_handler`]).
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let log = Rc::new(Cell::new(0));
/// let l = log.clone();
/// sock::newthread(async move {
///     l.set(1);                      // runs before newthread returns
///     sock::sleep(0.01).await.unwrap();
///     l.set(2);                      // runs inside sock::start()
/// });
/// assert_eq!(log.get(), 1);
/// sock::start().unwrap();
/// assert_eq!(log.get(), 2);
/// ```
pub fn newthread<F>(future: F) -> Thread<F::Output>
where
    F: Future + 'static,
    F::Output: ThreadOutput,
{
    let state = Rc::new(JoinState::new());
    let id = launch(future, Some(Rc::clone(&state)));
    Thread { id, state }
}

/// Starts a thread as [`newthread`] does, without a handle to join it: for
/// the threads nobody joins (a connection's handler, say), nothing is kept
/// for a join (`newthread`'s handle and the state it shares with the thread
/// cost about 100 bytes a thread). An error the thread returns, or its
/// panic, goes to the error handler (see [`set_error_handler`]), as for a
/// thread whose handle was dropped.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let done = Rc::new(Cell::new(0));
/// let d = done.clone();
/// let id = sock::newthread_detached(async move {
///     sock::sleep(0.01).await?;
///     d.set(d.get() + 1);
///     sock::Result::Ok(())
/// });
/// assert_eq!(done.get(), 0); // parked in its sleep
/// sock::start().unwrap();
/// assert_eq!(done.get(), 1);
/// assert_ne!(sock::newthread_detached(async {}), id); // a new id
/// ```
pub fn newthread_detached<F>(future: F) -> ThreadId
where
    F: Future + 'static,
    F::Output: ThreadOutput,
{
    launch(future, None)
}

/// Makes the thread of `future` (its output to `state`, or reported when
/// there is none) and runs it to its first suspension.
fn launch<F>(future: F, state: Option<Rc<JoinState<F::Output>>>) -> ThreadId
where
    F: Future + 'static,
    F::Output: ThreadOutput,
{
    let done = match &state {
        Some(s) => Done::Join(Rc::clone(s)),
        None => Done::Report,
    };
    // Allocated first, then written: the future goes from the caller straight
    // to the heap (`Box::pin(Finish { .. })` built the value on the stack and
    // copied it twice, 32 KiB of copies for a thread with a 16 KiB buffer).
    let body = Box::into_pin(Box::write(Box::new_uninit(), Finish { future, done }));
    with_core(|c| {
        let id = c.spawn(body);
        if let Some(s) = state {
            s.id.set(Some(id)); // before its first run, which may report
        }
        if !c.polling.get() {
            // Started outside the loop: its deadlines see the current time.
            c.update_now();
        }
        c.run(id);
        id
    })
}

/// Where a thread's output goes.
enum Done<T> {
    /// To the handle's join state.
    Join(Rc<JoinState<T>>),
    /// To the error handler, if it is a failure (a detached thread).
    Report,
    /// Delivered: the thread is over.
    Delivered,
}

pin_project_lite::pin_project! {
    /// A thread's future and where its output goes. (An `async move` block
    /// around the future would keep it twice: once as the captured value and
    /// once in the awaiting state, doubling what an idle thread holds.)
    struct Finish<F: Future> {
        #[pin]
        future: F,
        done: Done<F::Output>,
    }
}

impl<F: Future> Future for Finish<F>
where
    F::Output: ThreadOutput,
{
    type Output = ();

    /// Polls the thread's future; its output, or its panic, goes to the
    /// join state (a panicked thread is done: the loop then drops it).
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.project();
        if matches!(this.done, Done::Delivered) {
            return Poll::Ready(()); // finished: the future is not polled again
        }
        let out = match catch_unwind(AssertUnwindSafe(|| this.future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => Ok(out),
            Err(payload) => Err(panic_message(&payload)),
        };
        match (std::mem::replace(this.done, Done::Delivered), out) {
            (Done::Join(state), Ok(out)) => state.finish(Ok(out)),
            (Done::Join(state), Err(msg)) => state.panicked(msg),
            (Done::Report, Ok(out)) => {
                if let Some(msg) = out.failure() {
                    report(currentthread(), &msg);
                }
            }
            (Done::Report, Err(msg)) => report(currentthread(), &format!("panicked: {msg}")),
            (Done::Delivered, _) => {}
        }
        Poll::Ready(())
    }
}

/// The sock thread that is running, or `None` outside sock threads.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
///
/// assert_eq!(sock::currentthread(), None); // not inside a sock thread
/// let ids = Rc::new(RefCell::new(Vec::new()));
/// let i = ids.clone();
/// let t = sock::newthread(async move {
///     i.borrow_mut().push(sock::currentthread());
///     sock::sleep(0.001).await?; // the id survives suspension
///     i.borrow_mut().push(sock::currentthread());
///     sock::Result::Ok(())
/// });
/// let id = t.id();
/// sock::start().unwrap();
/// assert_eq!(*ids.borrow(), [Some(id), Some(id)]);
/// ```
pub fn currentthread() -> Option<ThreadId> {
    current_id()
}

/// Runs one iteration of the loop: waits up to `timeout` seconds (`None` or
/// anything from 2^31 - 1 on means no limit) for I/O or a deadline, and resumes
/// the threads that were waiting for them.
///
/// Returns `Ok(true)` if it resumed at least one thread and `Ok(false)` if the
/// timeout passed without resuming any. With no live thread it returns the `empty` error
/// at once instead of waiting forever. It cannot be called from inside a thread.
///
/// # Examples
///
/// Driving the loop by hand, with a bounded wait per iteration:
///
/// ```
/// assert_eq!(sock::poll(Some(0.0)).unwrap_err().name(), "empty"); // no threads
/// let t = sock::newthread(async { sock::sleep(0.01).await });
/// let give_up = sock::clock() + 1.0;
/// while !t.is_finished() && sock::clock() < give_up {
///     sock::poll(Some(0.1)).unwrap();
/// }
/// assert!(t.is_finished());
/// ```
pub fn poll(timeout: Option<f64>) -> Result<bool> {
    let max_wait = crate::time::timeout(timeout);
    with_core(|c| c.poll_once(max_wait))
}

/// Runs the loop until every thread has finished or [`stop`] was called.
///
/// ```
/// sock::newthread(async { sock::sleep(0.001).await.unwrap() });
/// sock::start().unwrap();
/// ```
pub fn start() -> Result<()> {
    with_core(|c| c.start(None)).map(|_| ())
}

/// [`start`] for at most `timeout` seconds: returns `Ok(true)` when every
/// thread and job is done or [`stop`] was called, and `Ok(false)` when the
/// time ran out first (the threads that are still waiting stay parked).
///
/// ```
/// let t = sock::newthread(async { sock::sleep(3600.0).await });
/// assert!(!sock::start_for(0.01).unwrap()); // the time ran out
/// assert!(!t.is_finished());
/// ```
pub fn start_for(timeout: f64) -> Result<bool> {
    if timeout.is_nan() {
        return Err(Error::with_message(
            ErrorKind::InvalidArgument,
            "the timeout is NaN",
        ));
    }
    let until = crate::time::deadline(Some(crate::time::clock() + timeout))?;
    with_core(|c| c.start(until))
}

impl Core {
    /// The loop of [`start`], until `until` if given: whether it ended
    /// before that.
    fn start(&self, until: Option<Instant>) -> Result<bool> {
        if self.current.get().is_some() {
            return Err(Error::with_message(
                ErrorKind::InvalidArgument,
                "poll/start cannot be called from inside a sock thread",
            ));
        }
        let r = loop {
            if self.stopping.get() {
                break Ok(true);
            }
            let max_wait = match until {
                Some(u) => match u.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break Ok(false),
                },
                None => None,
            };
            match self.poll_once(max_wait) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Empty => break Ok(true),
                Err(e) => break Err(e),
            }
        };
        self.stopping.set(false);
        r
    }
}

/// Tells [`start`] to return after the current iteration (callable from inside
/// a thread). Threads that are still waiting stay parked, and a later `start`
/// or `poll` resumes them.
///
/// # Examples
///
/// ```
/// let t = sock::newthread(async {
///     sock::sleep(0.01).await?;
///     sock::stop(); // start() returns after this iteration...
///     sock::sleep(3600.0).await // ...although this thread still waits
/// });
/// sock::start().unwrap();
/// assert!(!t.is_finished());
/// ```
pub fn stop() {
    with_core(|c| c.stopping.set(true));
}

/// Sets the function that receives the failures of threads (panics, and errors
/// returned by threads that nobody joins) of every loop that runs on this OS
/// thread (its default loop and any [`Loop`] entered on it). The default
/// prints them to stderr. The handler may set another (which gets the next
/// failure); if it panics, its panic is printed to stderr with the failure
/// and the loop goes on.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use sock::{Error, ErrorKind};
///
/// let failures = Rc::new(RefCell::new(Vec::new()));
/// let f = failures.clone();
/// sock::set_error_handler(move |_id, msg| f.borrow_mut().push(msg.to_owned()));
/// // A detached thread (its handle dropped) whose error nobody joins:
/// drop(sock::newthread(async { Err::<(), _>(Error::new(ErrorKind::Timeout)) }));
/// sock::start().unwrap();
/// assert_eq!(failures.borrow().len(), 1);
/// assert!(failures.borrow()[0].starts_with("timeout"));
/// ```
pub fn set_error_handler(handler: impl Fn(Option<ThreadId>, &str) + 'static) {
    ERROR_HANDLER.with(|h| *h.borrow_mut() = Some(Rc::new(handler)));
}

/// Suspends the current thread until the clock reaches `t` (see
/// [`clock`](crate::clock)); other threads run meanwhile. A time in the past
/// still yields once to the other runnable threads.
///
/// Returns the `not_in_thread` error outside sock threads.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let woke = Rc::new(Cell::new(0.0));
/// let w = woke.clone();
/// let at = sock::clock() + 0.02;
/// sock::newthread(async move {
///     sock::sleep_until(at).await?;
///     w.set(sock::clock());
///     sock::Result::Ok(())
/// });
/// sock::start().unwrap();
/// assert!(woke.get() >= at);
/// ```
pub fn sleep_until(t: f64) -> Sleep {
    Sleep {
        deadline: crate::time::deadline(Some(t)),
        timer: None,
        yielded: false,
    }
}

/// [`sleep_until`] an instant (a deadline already converted).
pub(crate) fn sleep_until_instant(d: Instant) -> Sleep {
    Sleep {
        deadline: Ok(Some(d)),
        timer: None,
        yielded: false,
    }
}

/// Suspends the current thread for `s` seconds; other threads run meanwhile.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let slept = Rc::new(Cell::new(0.0));
/// let s = slept.clone();
/// sock::newthread(async move {
///     let t0 = sock::clock();
///     sock::sleep(0.02).await.unwrap();
///     s.set(sock::clock() - t0);
/// });
/// sock::start().unwrap();
/// // Checked here: a panic inside a thread is caught and reported.
/// assert!(slept.get() >= 0.02);
/// ```
pub fn sleep(s: f64) -> Sleep {
    sleep_until(crate::time::clock() + s)
}

/// The future of [`sleep`] and [`sleep_until`]: a named type, so that code
/// driving threads by hand (a language binding) can hold one without boxing.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Result<Option<Instant>>,
    timer: Option<(Rc<Core>, timers::TimerId)>,
    yielded: bool,
}

impl Future for Sleep {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let deadline = match &this.deadline {
            Ok(d) => *d,
            Err(e) => return Poll::Ready(Err(e.clone())),
        };
        with_core(|c| {
            let Some(me) = c.current.get() else {
                return Poll::Ready(Err(Error::new(ErrorKind::NotInThread)));
            };
            if deadline.is_some_and(|d| d <= Instant::now()) {
                if this.yielded || this.timer.is_some() {
                    this.cancel();
                    return Poll::Ready(Ok(()));
                }
                // A deadline already past still yields once to the others.
                this.yielded = true;
                c.wake(me);
                return Poll::Pending;
            }
            if let (None, Some(d)) = (&this.timer, deadline) {
                let id = c.timers.borrow_mut().insert(d, me.into());
                this.timer = Some((Rc::clone(c), id));
            }
            Poll::Pending
        })
    }
}

impl Sleep {
    fn cancel(&mut self) {
        if let Some((c, t)) = self.timer.take() {
            c.timers.borrow_mut().remove(t);
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Gets the loop's epoll descriptor (creating the instance if needed), to
/// share it with loops on other OS threads through [`set_epoll_fd`].
///
/// Returns the `not_supported` error with the portable backend.
///
/// # Examples
///
/// ```
/// match sock::epoll_fd() {
///     Ok(fd) => assert_eq!(sock::epoll_fd().unwrap(), fd), // the same instance
///     Err(e) => assert_eq!(e.name(), "not_supported"),    // portable backend
/// }
/// ```
pub fn epoll_fd() -> Result<RawFd> {
    with_core(|c| {
        c.require_sharing()?;
        Ok(c.poller()?.share()?)
    })
}

/// Makes this OS thread's loop use the epoll instance `fd` (from [`epoll_fd`]
/// on another OS thread) instead of creating its own. Must be called before the
/// loop's first I/O; the loop keeps a duplicate of `fd`.
///
/// # Examples
///
/// ```
/// if let Ok(fd) = sock::epoll_fd() {
///     std::thread::spawn(move || {
///         sock::set_epoll_fd(fd).unwrap(); // before this loop's first I/O
///         sock::newthread(async { sock::sleep(0.01).await });
///         sock::start().unwrap();
///     })
///     .join()
///     .unwrap();
///     // Too late for this OS thread's loop: it already has its instance.
///     assert_eq!(sock::set_epoll_fd(fd).unwrap_err().name(), "invalid_argument");
/// }
/// ```
pub fn set_epoll_fd(fd: RawFd) -> Result<()> {
    with_core(|c| {
        if c.poller.get().is_some() {
            return Err(Error::with_message(
                ErrorKind::InvalidArgument,
                "set_epoll_fd must be called before this loop's first I/O",
            ));
        }
        c.require_sharing()?;
        c.shared_fd.set(Some(fd));
        let r = c.poller().map(|_| ());
        if r.is_err() {
            // Leave the loop as it was: its next use creates its own poller.
            c.shared_fd.set(None);
        }
        r
    })
}

/// One poller shared by the loops of several OS threads, as a value that can
/// be sent to them: the safe form of [`epoll_fd`] and [`set_epoll_fd`]. It
/// holds its own duplicate of the instance, so it stays valid whatever
/// happens to the loop it came from.
///
/// Whichever loop's wait takes an event of the shared instance, the loop that
/// owns the socket resumes the thread waiting on it (the event is handed
/// over). Sharing costs a second `epoll_wait` per wait (each loop waits on an
/// instance of its own that holds the shared one) and, for events that the
/// owner did not take itself, a hand-over: for servers that want every core,
/// one loop per OS thread with a listener each (`so_reuseport`) and no sharing
/// is faster; see the multi-core example (`examples/multicore.rs`).
///
/// # Examples
///
/// ```
/// # if sock::epoll_fd().is_err() { return; } // the portable backend
/// let poller = sock::SharedPoller::current().unwrap();
/// let worker = std::thread::spawn(move || {
///     poller.join().unwrap(); // before this OS thread's loop does any I/O
///     sock::newthread(async { sock::sleep(0.01).await });
///     sock::start().unwrap();
/// });
/// worker.join().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SharedPoller {
    fd: Arc<std::os::fd::OwnedFd>,
}

impl SharedPoller {
    /// The poller of this OS thread's loop (the current loop), shared from
    /// now on: `not_supported` with the portable backend.
    pub fn current() -> Result<SharedPoller> {
        with_core(|c| {
            c.require_sharing()?;
            let owned = c.poller()?.share_owned()?;
            Ok(SharedPoller {
                fd: Arc::new(owned),
            })
        })
    }

    /// Makes the current loop use this poller: as [`set_epoll_fd`], before
    /// the loop's first I/O.
    pub fn join(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        set_epoll_fd(self.fd.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle thread holds is its future, once: a thread that parks with
    /// a 16 KiB buffer costs 16 KiB plus a few words, not twice that.
    #[test]
    fn a_thread_holds_its_future_once() {
        let user = async {
            let buf = [0u8; 16384];
            sleep(1.0).await?;
            Result::Ok(buf.len())
        };
        let user_size = std::mem::size_of_val(&user);
        let body = Finish {
            future: user,
            done: Done::Join(Rc::new(JoinState::new())),
        };
        let body_size = std::mem::size_of_val(&body);
        assert!(user_size >= 16384);
        assert!(
            body_size <= user_size + 16,
            "{body_size} for a {user_size}-byte future"
        );
    }
}
