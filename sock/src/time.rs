//! The clock and absolute deadlines.
//!
//! [`clock`] is the system's monotonic clock (`CLOCK_MONOTONIC`) in seconds, as
//! an `f64`: the clock of the original library's `time.clock()`. Every
//! blocking call takes `expires: Option<f64>`, an absolute value on that clock
//! (`clock() + 0.5` means "half a second from now"). Inside the library a
//! deadline is an [`Instant`]; the conversion happens once, when the call starts,
//! so one deadline bounds a whole composite operation (`sendall`, `connect`
//! over several addresses) without being reset per syscall.

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// An instant and the clock's reading then, taken once per process: the
/// clock is the reading plus the time since that instant (so that it is
/// exactly as monotonic as `Instant`, which deadlines are).
static ORIGIN: OnceLock<(Instant, f64)> = OnceLock::new();

fn origin() -> (Instant, f64) {
    *ORIGIN.get_or_init(|| (Instant::now(), crate::sys::clock::monotonic_secs()))
}

/// Monotonic time in seconds, the clock of every `expires` argument: the
/// system's `CLOCK_MONOTONIC` (on Linux, the time since boot), as the
/// original library's `time.clock()` reads it.
///
/// Values are comparable between OS threads and processes. The clock never
/// goes backwards and is not affected by changes of the wall clock. A
/// duration passed by mistake as `expires` (`5` for "five seconds") is a time
/// long past.
///
/// ```
/// let t0 = sock::clock();
/// let t1 = sock::clock();
/// assert!(t1 >= t0);
///
/// // A deadline is an absolute value on this clock: 10 ms from now.
/// let expires = sock::clock() + 0.01;
/// sock::newthread(async move { sock::sleep_until(expires).await });
/// sock::start().unwrap();
/// assert!(sock::clock() >= expires);
/// ```
pub fn clock() -> f64 {
    let (at, secs) = origin();
    secs + at.elapsed().as_secs_f64()
}

/// Deadlines past this many seconds are treated as "never" (about 31,700 years).
const FOREVER: f64 = 1e12;

/// Converts an `expires` value to a deadline. `None`, `+inf` and huge values
/// mean no deadline; values in the past are deadlines that have already
/// passed; NaN is an invalid argument.
pub(crate) fn deadline(expires: Option<f64>) -> Result<Option<Instant>> {
    match expires {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(invalid_expires()),
        Some(t) if t >= FOREVER => Ok(None),
        Some(t) => {
            let (at, secs) = origin();
            match t - secs {
                d if d <= 0.0 => Ok(Some(at)),
                d => Ok(at.checked_add(Duration::from_secs_f64(d))),
            }
        }
    }
}

/// A deadline in one word: nanoseconds after the clock's origin, plus one,
/// so that an `Option<Deadline>` (a parked call's) is one word too. No
/// deadline is before the origin ([`deadline`] makes earlier times the
/// origin itself: they have passed either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline(NonZeroU64);

impl Deadline {
    /// The deadline at `at` (the origin if `at` is before it).
    pub(crate) fn new(at: Instant) -> Deadline {
        let ns = at.saturating_duration_since(origin().0).as_nanos();
        Deadline(NonZeroU64::MIN.saturating_add(u64::try_from(ns).unwrap_or(u64::MAX)))
    }

    /// The instant of the deadline.
    pub(crate) fn instant(self) -> Instant {
        origin().0 + Duration::from_nanos(self.0.get() - 1)
    }
}

/// The error of an `expires` that is no time (NaN).
pub(crate) fn invalid_expires() -> Error {
    Error::with_message(ErrorKind::InvalidArgument, "expires is NaN")
}

/// Converts a relative timeout in seconds to a duration; `None`, negative...
/// Negative and NaN are zero; infinite or huge are `None` (wait forever).
pub(crate) fn timeout(secs: Option<f64>) -> Option<Duration> {
    match secs {
        None => None,
        Some(s) if s.is_nan() || s <= 0.0 => Some(Duration::ZERO),
        // The seed: "anything beyond 2^31-1 taken as infinite".
        Some(s) if s >= 2_147_483_647.0 => None,
        Some(s) => Some(Duration::from_secs_f64(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_convert_and_saturate() {
        assert_eq!(deadline(None).unwrap(), None);
        assert_eq!(deadline(Some(f64::INFINITY)).unwrap(), None);
        assert_eq!(deadline(Some(1e300)).unwrap(), None);
        let (at, secs) = origin();
        assert_eq!(deadline(Some(-5.0)).unwrap(), Some(at));
        assert_eq!(deadline(Some(f64::NEG_INFINITY)).unwrap(), Some(at));
        // A duration given as a time (5 s, 0.5 s) is long past.
        assert!(secs > 5.0, "the clock is the time since boot");
        assert_eq!(deadline(Some(5.0)).unwrap(), Some(at));
        assert_eq!(
            deadline(Some(f64::NAN)).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let now = clock();
        let d = deadline(Some(now + 1.5)).unwrap().unwrap();
        let back = secs + d.duration_since(at).as_secs_f64();
        assert!((back - (now + 1.5)).abs() < 1e-6);
    }

    #[test]
    fn the_clock_is_the_system_monotonic_clock() {
        let a = crate::sys::clock::monotonic_secs();
        let c = clock();
        let b = crate::sys::clock::monotonic_secs();
        assert!(a - 0.001 <= c && c <= b + 0.001, "{a} <= {c} <= {b}");
    }

    #[test]
    fn timeouts_clamp() {
        assert_eq!(timeout(None), None);
        assert_eq!(timeout(Some(-1.0)), Some(Duration::ZERO));
        assert_eq!(timeout(Some(f64::NAN)), Some(Duration::ZERO));
        assert_eq!(timeout(Some(2f64.powi(31))), None);
        assert_eq!(timeout(Some(1e-11)), Some(Duration::from_secs_f64(1e-11)));
    }
}
