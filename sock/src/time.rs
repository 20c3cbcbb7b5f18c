//! The clock and absolute deadlines.
//!
//! [`clock`] is monotonic seconds since a process-wide origin, as an `f64`. Every
//! blocking call takes `expires: Option<f64>`, an absolute value on that clock
//! (`clock() + 0.5` means "half a second from now"). Inside the library a
//! deadline is an [`Instant`]; the conversion happens once, when the call starts,
//! so one deadline bounds a whole composite operation (`sendall`, `connect`
//! over several addresses) without being reset per syscall.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Monotonic time in seconds, the clock of every `expires` argument.
///
/// The origin is fixed for the process, so values are comparable between OS
/// threads. The clock never goes backwards and is not affected by changes of
/// the wall clock.
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
    origin().elapsed().as_secs_f64()
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
        Some(t) if t <= 0.0 => Ok(Some(origin())),
        Some(t) => Ok(origin().checked_add(Duration::from_secs_f64(t))),
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
        assert_eq!(deadline(Some(-5.0)).unwrap(), Some(origin()));
        assert_eq!(deadline(Some(f64::NEG_INFINITY)).unwrap(), Some(origin()));
        assert_eq!(
            deadline(Some(f64::NAN)).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let now = clock();
        let d = deadline(Some(now + 1.5)).unwrap().unwrap();
        let back = d.duration_since(origin()).as_secs_f64();
        assert!((back - (now + 1.5)).abs() < 1e-6);
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
