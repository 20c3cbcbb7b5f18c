//! Lookups off the loop: [`resolve`] runs `getaddrinfo` on a small pool of
//! resolver OS threads and parks only the sock thread that asked, under a
//! deadline.
//!
//! The pool is made on first use and shared by every loop of the process:
//! at most [`set_resolver_threads`] threads (default 4, as libuv's pool),
//! each created when a lookup is queued and no thread is idle, each ending
//! after some seconds without work. A burst of lookups queues. A finished
//! lookup stores its result in the asker's slot and wakes the asking thread
//! through its waker, which is the loop's cross-thread wake-up. A lookup
//! whose asker gave up (its deadline passed, or it was dropped) still runs
//! to its end in the pool (`getaddrinfo` cannot be cancelled); its result
//! is then dropped with the slot.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use std::borrow::Cow;

use crate::addr::{addr_with, AddrList, Hints, Port, ToAddr};
use crate::error::{Error, ErrorKind, Result};

/// How long an idle resolver thread waits for work before it ends.
const IDLE: Duration = Duration::from_secs(5);

/// A queued lookup.
type Job = Box<dyn FnOnce() + Send>;

/// The pool's queue and its threads' count.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads alive, and those of them waiting for work.
    threads: usize,
    idle: usize,
}

struct Pool {
    queue: Mutex<Queue>,
    work: Condvar,
}

/// The most resolver threads at once (see [`set_resolver_threads`]).
static MAX_THREADS: AtomicUsize = AtomicUsize::new(4);

/// A delay added to every lookup of the pool, in microseconds: the test
/// hook of a slow resolver ([`set_lookup_delay`]).
static DELAY_US: AtomicU64 = AtomicU64::new(0);

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        queue: Mutex::new(Queue::default()),
        work: Condvar::new(),
    })
}

/// Locks the queue; a panic of another holder does not poison it for good
/// (the queue stays consistent: every change is one push or pop).
fn lock(p: &Pool) -> std::sync::MutexGuard<'_, Queue> {
    p.queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Queues `job` on the pool, starting a thread if none is idle and the
/// pool has room. Fails only when the OS refuses the first thread.
fn submit(job: Job) -> Result<()> {
    let p = pool();
    let mut q = lock(p);
    q.jobs.push_back(job);
    if q.idle == 0 && q.threads < MAX_THREADS.load(Ordering::Relaxed).max(1) {
        q.threads += 1;
        let spawned = std::thread::Builder::new()
            .name("sock-resolver".into())
            .spawn(worker);
        if let Err(e) = spawned {
            q.threads -= 1;
            if q.threads == 0 {
                q.jobs.pop_back();
                return Err(Error::with_message(
                    ErrorKind::NoBufferSpace,
                    format!("cannot start a resolver thread: {e}"),
                ));
            }
        }
    }
    drop(q);
    p.work.notify_one();
    Ok(())
}

/// A resolver thread: runs queued lookups until it has been idle for
/// [`IDLE`].
fn worker() {
    let p = pool();
    let mut q = lock(p);
    loop {
        if let Some(job) = q.jobs.pop_front() {
            drop(q);
            // A job never panics through here: its lookup's panic is its own.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            q = lock(p);
            continue;
        }
        q.idle += 1;
        let (guard, timeout) = p
            .work
            .wait_timeout(q, IDLE)
            .unwrap_or_else(|e| e.into_inner());
        q = guard;
        q.idle -= 1;
        if timeout.timed_out() && q.jobs.is_empty() {
            q.threads -= 1;
            return;
        }
    }
}

/// Sets the most resolver threads that run lookups at once (at least 1;
/// default 4). Threads above a lowered limit end when their lookup does.
///
/// ```
/// sock::set_resolver_threads(2);
/// assert_eq!(sock::resolver_threads(), 2);
/// sock::set_resolver_threads(4);
/// ```
pub fn set_resolver_threads(n: usize) {
    MAX_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The most resolver threads that run lookups at once.
pub fn resolver_threads() -> usize {
    MAX_THREADS.load(Ordering::Relaxed)
}

/// The resolver threads alive now (for tests and monitoring).
pub fn resolver_threads_alive() -> usize {
    lock(pool()).threads
}

/// Test hook: delays every lookup that goes through the pool by `s`
/// seconds (0 removes the delay), to make a slow name server reproducible.
#[doc(hidden)]
pub fn set_lookup_delay(s: f64) {
    let us = if s > 0.0 { (s * 1e6) as u64 } else { 0 };
    DELAY_US.store(us, Ordering::Relaxed);
}

/// Where a lookup's result meets its asker.
#[derive(Default)]
struct Slot {
    result: Option<Result<AddrList>>,
    waker: Option<Waker>,
}

/// Looks up `host` and `port` as [`addr_with`] does, without blocking the
/// loop: inside a sock thread the lookup runs on the resolver pool and only
/// this thread waits, until the result comes or `expires` passes
/// (`timeout`; the lookup's late result is dropped). Outside sock threads it
/// is [`addr_with`], a blocking call.
///
/// Hosts that need no name server never leave the thread: numeric
/// addresses, `"*"`, and unix paths (family `Unix`), with a numeric port.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let ticker = sock::newthread(async move {
///     for _ in 0..3 {
///         sock::sleep(0.001).await?;
///         t.set(t.get() + 1);
///     }
///     sock::Result::Ok(())
/// });
/// let lookup = sock::newthread(async {
///     let list = sock::resolve("localhost", 80, &sock::Hints::default(), None).await?;
///     sock::Result::Ok(list.first().addr().port())
/// });
/// sock::start().unwrap();
/// assert!(matches!(lookup.result(), Some(Ok(Ok(80)))));
/// assert_eq!(ticks.get(), 3);
/// # drop(ticker);
/// ```
pub async fn resolve(
    host: &str,
    port: impl Port,
    hints: &Hints,
    expires: Option<f64>,
) -> Result<AddrList> {
    let service = port.to_service().into_owned();
    if crate::sched::current_id().is_none() || is_local(host, &service, hints) {
        return addr_with(host, service.as_str(), hints);
    }
    let deadline = crate::time::deadline(expires)?;
    let slot = Arc::new(Mutex::new(Slot::default()));
    let job = {
        let (slot, host, hints) = (Arc::clone(&slot), host.to_owned(), hints.clone());
        Box::new(move || {
            let delay = DELAY_US.load(Ordering::Relaxed);
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            let r = addr_with(&host, service.as_str(), &hints);
            let waker = {
                let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                s.result = Some(r);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        })
    };
    submit(job)?;
    Lookup {
        slot,
        timer: deadline.map(crate::sched::sleep_until_instant),
    }
    .await
}

/// `addr.to_addr(hints)`, with the lookup of a host name made off the loop
/// inside a sock thread (under `expires`): for the blocking calls that take
/// an address (`connect`, `sendto`).
pub(crate) async fn to_addr<'a, A: ToAddr + ?Sized>(
    addr: &'a A,
    hints: &Hints,
    expires: Option<f64>,
) -> Result<Cow<'a, AddrList>> {
    if let Some((host, service)) = addr.host_port() {
        if crate::sched::current_id().is_some() && !is_local(host, &service, hints) {
            return resolve(host, &*service, hints, expires)
                .await
                .map(Cow::Owned);
        }
    }
    addr.to_addr(hints)
}

/// Whether looking up `host` and `port` with `hints` goes to the resolver
/// (a name, or a service name): what [`resolve`] runs on the pool. Numeric
/// addresses, `"*"` and unix paths with a numeric port do not.
///
/// ```
/// use sock::Hints;
/// assert!(sock::needs_resolver("example.com", 80, &Hints::default()));
/// assert!(!sock::needs_resolver("::1", 80, &Hints::default()));
/// assert!(sock::needs_resolver("::1", "http", &Hints::default()));
/// ```
pub fn needs_resolver(host: &str, port: impl Port, hints: &Hints) -> bool {
    !is_local(host, &port.to_service(), hints)
}

/// Whether the lookup needs no name server (and so no resolver thread).
fn is_local(host: &str, service: &str, hints: &Hints) -> bool {
    let numeric_port = service.bytes().all(|b| b.is_ascii_digit());
    hints.family == Some(crate::addr::Family::Unix)
        || (numeric_port && (host == "*" || host.parse::<std::net::IpAddr>().is_ok()))
}

impl Drop for Lookup {
    fn drop(&mut self) {
        // Given up (or done): the lookup's end wakes nobody.
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).waker = None;
    }
}

/// The wait for a lookup on the pool, under its deadline.
struct Lookup {
    slot: Arc<Mutex<Slot>>,
    timer: Option<crate::sched::Sleep>,
}

impl Future for Lookup {
    type Output = Result<AddrList>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<AddrList>> {
        let this = self.get_mut();
        {
            let mut s = this.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = s.result.take() {
                return Poll::Ready(r);
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
        }
        if let Some(t) = &mut this.timer {
            if Pin::new(t).poll(cx).is_ready() {
                return Poll::Ready(Err(Error::with_message(
                    ErrorKind::Timeout,
                    "the name lookup did not finish before the deadline",
                )));
            }
        }
        Poll::Pending
    }
}
