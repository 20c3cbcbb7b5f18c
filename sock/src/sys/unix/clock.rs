//! The system's monotonic clock (`CLOCK_MONOTONIC`), in seconds: the clock of
//! the original library's `time.clock()`, which `sock::clock()` reads.

/// `CLOCK_MONOTONIC` now, in seconds.
pub(crate) fn monotonic_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec`, which `ts` is; the
    // clock id is one every Unix has. It cannot fail with these arguments.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
