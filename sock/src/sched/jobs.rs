//! Timed jobs: [`run_at`], [`run_after`] and [`run_every`] start a thread
//! when their time comes.
//!
//! A pending job is an entry of the loop's timer heap and of its job table,
//! nothing more: no thread waits for it. When its time comes the loop calls
//! its action, which starts the thread; a repeating job is armed again when
//! that thread's run ends (so runs of one job never overlap), unless it was
//! cancelled or its run said to stop.

use std::future::Future;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::timers::TimerId;
use super::{newthread, with_core, Core, ThreadOutput};
use crate::error::{Error, ErrorKind, Result};

/// Names a job in its loop's job table (index and generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobKey {
    index: u32,
    gen: u32,
}

/// What a job does when its time comes.
enum Action {
    /// Starts its thread; the job is then over.
    Once(Box<dyn FnOnce()>),
    /// Starts a run (a thread that arms the job again when it ends); `None`
    /// while the action is being called.
    Every(Option<Box<dyn FnMut(JobKey, Instant)>>),
}

/// An entry of the job table.
pub(crate) struct Job {
    gen: u32,
    /// Its timer while it waits for its time; `None` while a run is going.
    timer: Option<TimerId>,
    at: Instant,
    action: Action,
}

impl Core {
    /// Adds a job due at `at`.
    fn add_job(&self, at: Instant, action: Action) -> JobKey {
        let mut jobs = self.jobs.borrow_mut();
        let entry = jobs.vacant_entry();
        let gen = self.next_gen().get();
        let key = JobKey {
            index: entry.key() as u32,
            gen,
        };
        let timer = self.timers.borrow_mut().insert(at, super::Due::Job(key));
        entry.insert(Job {
            gen,
            timer: Some(timer),
            at,
            action,
        });
        key
    }

    /// Whether `key` names a job of this loop.
    fn has_job(&self, key: JobKey) -> bool {
        matches!(self.jobs.borrow().get(key.index as usize), Some(j) if j.gen == key.gen)
    }

    /// Removes the job `key`; returns whether it was there.
    fn remove_job(&self, key: JobKey) -> bool {
        let job = {
            let mut jobs = self.jobs.borrow_mut();
            match jobs.get(key.index as usize) {
                Some(j) if j.gen == key.gen => jobs.remove(key.index as usize),
                _ => return false,
            }
        };
        if let Some(t) = job.timer {
            self.timers.borrow_mut().remove(t);
        }
        // Dropped outside the borrow: the action may hold anything.
        drop(job);
        true
    }

    /// The job `key`'s time has come (its timer has just fired).
    pub(crate) fn fire_job(&self, key: JobKey) {
        let action = {
            let mut jobs = self.jobs.borrow_mut();
            let Some(job) = jobs
                .get_mut(key.index as usize)
                .filter(|j| j.gen == key.gen)
            else {
                return;
            };
            job.timer = None;
            if let Action::Every(f) = &mut job.action {
                Err((f.take(), job.at))
            } else {
                match jobs.remove(key.index as usize).action {
                    Action::Once(f) => Ok(f),
                    Action::Every(_) => return,
                }
            }
        };
        match action {
            Ok(start) => start(),
            Err((Some(mut start), at)) => {
                start(key, at);
                // Back in place, unless the run cancelled the job already.
                let mut jobs = self.jobs.borrow_mut();
                if let Some(job) = jobs
                    .get_mut(key.index as usize)
                    .filter(|j| j.gen == key.gen)
                {
                    job.action = Action::Every(Some(start));
                }
            }
            Err((None, _)) => {}
        }
    }

    /// A run of the repeating job `key`, due at `at`, has ended: arms it for
    /// its next time, `every` after `at` (or now, if that has passed).
    fn rearm(&self, key: JobKey, at: Instant, every: Duration) {
        let next = (at + every).max(Instant::now());
        let mut jobs = self.jobs.borrow_mut();
        if let Some(job) = jobs
            .get_mut(key.index as usize)
            .filter(|j| j.gen == key.gen)
        {
            job.at = next;
            job.timer = Some(self.timers.borrow_mut().insert(next, super::Due::Job(key)));
        }
    }

    /// The number of pending jobs (they keep the loop alive).
    pub(crate) fn live_jobs(&self) -> usize {
        self.jobs.borrow().len()
    }
}

/// A pending job of [`run_at`], [`run_after`] or [`run_every`]. Dropping the
/// handle does not cancel the job; [`cancel`](Self::cancel) does.
#[derive(Debug, Clone)]
pub struct Timer {
    core: Weak<Core>,
    key: JobKey,
}

impl Timer {
    /// Cancels the job: a thread that it has not started yet will not start,
    /// and a repeating job starts no more runs (a run in progress goes on).
    /// Returns whether the job was still there (not yet run, or repeating).
    pub fn cancel(&self) -> bool {
        self.core.upgrade().is_some_and(|c| c.remove_job(self.key))
    }

    /// Whether the job is still there: waiting for its time, or repeating.
    pub fn is_pending(&self) -> bool {
        self.core.upgrade().is_some_and(|c| c.has_job(self.key))
    }
}

/// The deadline of a job due at `t` on the clock, or `invalid_argument`.
fn due(t: f64) -> Result<Instant> {
    match crate::time::deadline(Some(t))? {
        Some(at) => Ok(at),
        None => Err(Error::with_message(
            ErrorKind::InvalidArgument,
            "a job's time must be finite",
        )),
    }
}

/// Starts `f()` as a sock thread when the clock reaches `t` (see
/// [`clock`](crate::clock)), from the loop ([`start`](crate::start),
/// [`poll`](crate::poll)); a time already past starts it at the loop's next
/// iteration. Until then the job is an entry of the loop's timer heap (no
/// thread waits for it) and keeps the loop alive.
///
/// The thread's output is reported as a detached thread's is (see
/// [`set_error_handler`](crate::set_error_handler)). Returns
/// `invalid_argument` for a time that is NaN.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let ran = Rc::new(Cell::new(0.0));
/// let r = ran.clone();
/// let at = sock::clock() + 0.01;
/// sock::run_at(at, move || async move { r.set(sock::clock()) }).unwrap();
/// let n = ran.clone();
/// let never = sock::run_at(at, move || async move { n.set(-1.0) }).unwrap();
/// assert!(never.cancel());
/// sock::start().unwrap(); // returns once no job and no thread is left
/// assert!(ran.get() >= at);
/// ```
pub fn run_at<F, Fut>(t: f64, f: F) -> Result<Timer>
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: ThreadOutput,
{
    let at = due(t)?;
    with_core(|c| {
        let key = c.add_job(at, Action::Once(Box::new(move || drop(newthread(f())))));
        Ok(Timer {
            core: Rc::downgrade(c),
            key,
        })
    })
}

/// [`run_at`] `s` seconds from now.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// sock::run_after(0.01, move || async move { r.set(true) }).unwrap();
/// sock::start().unwrap();
/// assert!(ran.get());
/// ```
pub fn run_after<F, Fut>(s: f64, f: F) -> Result<Timer>
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: ThreadOutput,
{
    run_at(crate::time::clock() + s, f)
}

/// Starts `f()` as a sock thread every `s` seconds, first `s` seconds from
/// now, until [`Timer::cancel`] or until a run completes with `false`. Runs
/// do not overlap: the next one is due `s` seconds after the last one was
/// due, or at once if that time passed while it ran. Between runs the job
/// is an entry of the loop's timer heap (no thread waits for it) and keeps
/// the loop alive.
///
/// Returns `invalid_argument` unless `s` is a positive number.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let runs = Rc::new(Cell::new(0));
/// let r = runs.clone();
/// sock::run_every(0.001, move || {
///     let r = r.clone();
///     async move {
///         r.set(r.get() + 1);
///         r.get() < 3 // the third run stops the job
///     }
/// })
/// .unwrap();
/// sock::start().unwrap();
/// assert_eq!(runs.get(), 3);
/// ```
pub fn run_every<F, Fut>(s: f64, mut f: F) -> Result<Timer>
where
    F: FnMut() -> Fut + 'static,
    Fut: Future<Output = bool> + 'static,
{
    if !(s > 0.0 && s.is_finite()) {
        return Err(Error::with_message(
            ErrorKind::InvalidArgument,
            "a repeating job's interval must be a positive number of seconds",
        ));
    }
    let every = Duration::from_secs_f64(s);
    let at = due(crate::time::clock() + s)?;
    with_core(|c| {
        let core = Rc::downgrade(c);
        let start = move |key: JobKey, at: Instant| {
            let run = Run {
                core: core.clone(),
                key,
                at,
                every,
                again: false,
            };
            let fut = f();
            drop(newthread(async move {
                let mut run = run;
                run.again = fut.await;
            }));
        };
        let key = c.add_job(at, Action::Every(Some(Box::new(start))));
        Ok(Timer {
            core: Rc::downgrade(c),
            key,
        })
    })
}

/// A run of a repeating job: when it ends (completed, panicked or dropped
/// with its loop) the job is armed again if the run said so, else removed.
struct Run {
    core: Weak<Core>,
    key: JobKey,
    at: Instant,
    every: Duration,
    again: bool,
}

impl Drop for Run {
    fn drop(&mut self) {
        let Some(c) = self.core.upgrade() else { return };
        if self.again {
            c.rearm(self.key, self.at, self.every);
        } else {
            c.remove_job(self.key);
        }
    }
}
