//! The socket calls that `socket2` does not cover as this library needs them.

use std::fs::File;
use std::io;
use std::sync::Mutex;

use socket2::{SockAddr, Socket};

/// A descriptor kept in reserve for [`accept_or_shed`]: with edge-triggered polling, a
/// connection that cannot be accepted for lack of descriptors would stay in the
/// backlog with no new edge to report it, and a caller that retries would spin.
static RESERVE: Mutex<Option<File>> = Mutex::new(None);

/// Opens the reserve descriptor if it is not open (called by `listen`).
pub(crate) fn reserve_fd() {
    let mut r = RESERVE.lock().unwrap_or_else(|e| e.into_inner());
    if r.is_none() {
        *r = File::open("/dev/null").ok();
    }
}

/// [`accept`], and when it fails with `EMFILE`/`ENFILE`: frees the reserve
/// descriptor and accepts again. If a connection was pending, it is closed at
/// once (the client sees its connection closed) and the error is reported;
/// if none was, the result is `WouldBlock`, so the caller waits for the next
/// connection instead of spinning (Linux checks the descriptor limit before
/// the backlog). The reserve is taken again either way. This is libuv's
/// EMFILE trick.
pub(crate) fn accept_or_shed(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let r = accept(listener);
    let Err(e) = &r else { return r };
    if !matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return r;
    }
    let mut reserve = RESERVE.lock().unwrap_or_else(|e| e.into_inner());
    if reserve.take().is_none() {
        return r;
    }
    let shed = accept(listener);
    *reserve = File::open("/dev/null").ok();
    match shed {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
        _ => r,
    }
}

pub(crate) use imp::{accept, SEND_FLAGS};

/// Systems with `MSG_NOSIGNAL` and `accept4`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd};

    use socket2::{SockAddr, Socket};

    /// Flags for every `send`/`sendto`: never raise `SIGPIPE` (a Rust library
    /// loaded into LuaJIT does not get std's startup `SIG_IGN`), get `EPIPE`.
    pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

    /// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the accepted socket and its peer.
    pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
        let fd = listener.as_raw_fd();
        // SAFETY:
        // - `try_init` hands us zeroed storage and its length, exactly what
        //   accept4 expects as its address out-parameters;
        // - accept4 either fails (-1) or returns a new descriptor that nothing
        //   else owns, so wrapping it in a `Socket` gives it a single owner.
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
}

/// Systems without them (Apple's).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
mod imp {
    use std::io;

    use socket2::{SockAddr, Socket};

    /// No `MSG_NOSIGNAL` here: `socket2` sets `SO_NOSIGPIPE` on every socket it
    /// creates, and `accept` below does it for accepted ones.
    pub(crate) const SEND_FLAGS: libc::c_int = 0;

    /// `accept`, then non-blocking, close-on-exec and no SIGPIPE.
    pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
        let (s, addr) = listener.accept()?;
        s.set_nonblocking(true)?;
        #[cfg(target_vendor = "apple")]
        s.set_nosigpipe(true)?;
        Ok((s, addr))
    }
}

/// `connect` to an `AF_UNSPEC` address: dissolves a datagram socket's
/// association (the seed's `connect('*', 0)`).
pub(crate) fn disconnect(s: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `sockaddr` is a valid value of the plain C struct.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: `addr` is a valid, initialized sockaddr of `len` bytes that
    // outlives the call; the descriptor is open (borrowed from `s`).
    match unsafe { libc::connect(s.as_raw_fd(), &addr, len) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// `recvfrom(MSG_TRUNC)` on a datagram socket: the datagram's full length
/// (larger than `buf` when it was truncated) and, if `from`, its source.
pub(crate) fn recv_datagram(
    s: &Socket,
    buf: &mut [u8],
    from: bool,
) -> io::Result<(usize, Option<SockAddr>)> {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let (ptr, len) = (buf.as_mut_ptr().cast::<libc::c_void>(), buf.len());
    if !from {
        // SAFETY: `ptr` is valid for writes of `len` bytes for the duration
        // of the call (it comes from `buf`), and the kernel writes at most
        // `len` bytes; no address is asked for.
        let n = unsafe {
            libc::recvfrom(
                fd,
                ptr,
                len,
                libc::MSG_TRUNC,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        return if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok((n as usize, None))
        };
    }
    // SAFETY:
    // - `ptr` is valid for writes of `len` bytes (from `buf`), the kernel
    //   writes at most `len` bytes;
    // - `try_init` gives zeroed address storage and its length, as recvfrom
    //   expects for its out-parameters.
    let (n, addr) = unsafe {
        SockAddr::try_init(|storage, addr_len| {
            match libc::recvfrom(fd, ptr, len, libc::MSG_TRUNC, storage.cast(), addr_len) {
                n if n < 0 => Err(io::Error::last_os_error()),
                n => Ok(n as usize),
            }
        })?
    };
    // An unbound Unix-domain sender has no name: the kernel gives a length of
    // 0, which would leave the storage's family unset (0).
    let addr = if addr.len() == 0 {
        unnamed_unix()
    } else {
        addr
    };
    Ok((n, Some(addr)))
}

/// The address of an unnamed Unix-domain socket: only the family.
pub(crate) fn unnamed_unix() -> SockAddr {
    // SAFETY: `try_init` gives zeroed storage of the right size; writing the
    // family through the `sockaddr` view of it and reporting the length of the
    // family field alone is how the kernel describes an unnamed socket.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            (*storage.cast::<libc::sockaddr>()).sa_family = libc::AF_UNIX as libc::sa_family_t;
            *len = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
            Ok(())
        })
    }
    .expect("no error is returned");
    addr
}
