//! The socket calls that `socket2` does not cover as this library needs them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use socket2::{SockAddr, Socket};

/// Flags for every `send`/`sendto`: never raise `SIGPIPE` (a Rust library loaded
/// into LuaJIT does not get std's startup `SIG_IGN`), get `EPIPE` instead.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// Apple systems have no `MSG_NOSIGNAL`; `socket2` sets `SO_NOSIGPIPE` on every
/// socket it creates, and `accept` below does it for accepted ones.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the accepted socket and its peer.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let fd = listener.as_raw_fd();
    // SAFETY:
    // - `try_init` hands us zeroed storage and its length, exactly what accept4
    //   expects as its address out-parameters;
    // - accept4 either fails (-1) or returns a new descriptor that nothing else
    //   owns, so wrapping it in a `Socket` gives it a single owner.
    let (s, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            match libc::accept4(fd, storage.cast(), len, flags) {
                -1 => Err(io::Error::last_os_error()),
                fd => Ok(Socket::from_raw_fd(fd)),
            }
        })?
    };
    Ok((s, addr))
}

/// `accept`, then non-blocking, close-on-exec and no SIGPIPE (systems without accept4).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let (s, addr) = listener.accept()?;
    s.set_nonblocking(true)?;
    #[cfg(target_vendor = "apple")]
    s.set_nosigpipe(true)?;
    Ok((s, addr))
}
