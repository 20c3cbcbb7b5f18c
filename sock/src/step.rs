//! Blocking operations as step-able state machines: the one policy of every
//! blocking call, driven by the Rust futures ([`Drive`](crate::op::Drive))
//! and by language bindings alike.
//!
//! An operation keeps its progress between steps (the bytes `sendall` sent,
//! the address `connect` tries). One step makes its non-blocking attempts and
//! says what comes next: done ([`Step::Ready`]), wait until the socket may be
//! ready in a direction ([`Step::Wait`]), or try again at a given instant
//! ([`Step::Sleep`]: a full Unix listener backlog, which no readiness
//! announces). The driver owns the deadline: it parks on what a step asks
//! for, and once the deadline has passed it makes one last step with `force`
//! (an attempt whatever the readiness says: a deadline never wins over an
//! operation that can complete at once) and then fails with `timeout`.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::reactor::Direction;

/// What one step of an [`Op`] leads to.
#[derive(Debug)]
#[must_use]
pub enum Step<T> {
    /// The operation is over: its result.
    Ready(Result<T>),
    /// The operation would block: step again once the socket may be ready
    /// in this direction (or, past the deadline, once more with `force`).
    Wait(Direction),
    /// Step again at this instant (or at the deadline, if sooner).
    Sleep(Instant),
}

impl<T> Step<T> {
    /// Whether the operation is over.
    ///
    /// ```
    /// use sock::op::Step;
    /// assert!(Step::Ready(Ok(1)).is_ready());
    /// assert!(!Step::<()>::Wait(sock::Direction::Read).is_ready());
    /// ```
    pub fn is_ready(&self) -> bool {
        matches!(self, Step::Ready(_))
    }

    /// A single attempt's step as a non-blocking result: `None` if it would
    /// block (what the `try_` methods return).
    ///
    /// ```
    /// use sock::op::Step;
    /// assert_eq!(Step::Ready(Ok(3)).ready().unwrap(), Some(3));
    /// assert_eq!(Step::<u8>::Wait(sock::Direction::Write).ready().unwrap(), None);
    /// ```
    pub fn ready(self) -> Result<Option<T>> {
        match self {
            Step::Ready(r) => r.map(Some),
            Step::Wait(_) | Step::Sleep(_) => Ok(None),
        }
    }

    /// The step with a successful result passed through `f`.
    ///
    /// ```
    /// use sock::op::Step;
    /// let s = Step::Ready(Ok(2)).and_then(|n| if n > 1 { Ok(n) } else { Err(sock::Error::new(sock::ErrorKind::Eof)) });
    /// assert!(matches!(s, Step::Ready(Ok(2))));
    /// ```
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Result<U>) -> Step<U> {
        match self {
            Step::Ready(r) => Step::Ready(r.and_then(f)),
            Step::Wait(d) => Step::Wait(d),
            Step::Sleep(t) => Step::Sleep(t),
        }
    }

    /// The step with the result mapped by `f`.
    ///
    /// ```
    /// use sock::op::Step;
    /// let s = Step::Ready(Ok(2)).map(|n| n * 2);
    /// assert!(matches!(s, Step::Ready(Ok(4))));
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Ready(r) => Step::Ready(r.map(f)),
            Step::Wait(d) => Step::Wait(d),
            Step::Sleep(t) => Step::Sleep(t),
        }
    }
}

/// A blocking operation as a state machine: see the [module docs](crate::op).
pub trait Op {
    /// The result of the operation.
    type Output;

    /// One step. `force`: the deadline has passed, so make the attempt even
    /// if readiness says it would block; the driver fails with `timeout` if
    /// the step still asks to wait.
    fn step(&mut self, force: bool) -> Step<Self::Output>;

    /// The error to report for `e`, which ended the operation from outside a
    /// step (`timeout`, `busy`, `closed`, `not_in_thread`): `sendall` and
    /// `recvall` add the bytes they moved.
    fn fail(&self, e: Error) -> Error {
        e
    }
}
