//! The system calls of the load generator, through `libc`: non-blocking TCP
//! sockets, epoll, and what /proc tells about the server's processes.

use std::io;
use std::net::SocketAddrV4;

/// Edge-triggered, both directions, and the peer's close.
pub const EV_ALL: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll(i32);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointer arguments.
        Ok(Epoll(cvt(unsafe {
            libc::epoll_create1(libc::EPOLL_CLOEXEC)
        })?))
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.0, op, fd, &mut ev) })?;
        Ok(())
    }

    pub fn add(&self, fd: i32, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub fn modify(&self, fd: i32, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Waits at most `ms` milliseconds; returns the events received.
    pub fn wait<'a>(
        &self,
        evs: &'a mut [libc::epoll_event],
        ms: i32,
    ) -> io::Result<&'a [libc::epoll_event]> {
        loop {
            // SAFETY: `evs` is valid for `evs.len()` events.
            let n = unsafe { libc::epoll_wait(self.0, evs.as_mut_ptr(), evs.len() as i32, ms) };
            if n >= 0 {
                return Ok(&evs[..n as usize]);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// A buffer for `n` events.
pub fn events(n: usize) -> Vec<libc::epoll_event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; n]
}

/// A non-blocking TCP socket with TCP_NODELAY whose connect has started.
pub fn tcp_connect(addr: &SocketAddrV4) -> io::Result<i32> {
    // SAFETY: no pointer arguments.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call and its size is given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in and its size is given.
    let r = unsafe {
        libc::connect(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            close(fd);
            return Err(e);
        }
    }
    Ok(fd)
}

/// The result of a non-blocking connect: Ok when it succeeded.
pub fn so_error(fd: i32) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` outlive the call; `len` is the size of `err`.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut len,
        )
    })?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// Sends what the socket takes: `None` when it would block.
pub fn send(fd: i32, buf: &[u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

/// Sends the buffers with one `sendmsg` (what the socket takes): `None` when
/// it would block.
pub fn sendv(fd: i32, bufs: &[std::io::IoSlice<'_>]) -> io::Result<Option<usize>> {
    // SAFETY: an all-zero msghdr is valid (no address, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix; sendmsg only reads them.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(1024) as _;
    loop {
        // SAFETY: `msg` points at `bufs`, valid for the duration of the call.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

/// Receives what is there: `Some(0)` at the end of the stream, `None` when it
/// would block.
pub fn recv(fd: i32, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

pub fn close(fd: i32) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Raises the soft limit on descriptors to the hard one (W4 holds 10,000).
pub fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0 && l.rlim_cur < l.rlim_max {
        l.rlim_cur = l.rlim_max;
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
    }
}

/// CPU seconds (user, user + system) this process has used.
pub fn self_cpu() -> (f64, f64) {
    // SAFETY: an all-zero rusage is valid, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// Clock ticks per second, the unit of /proc/PID/stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: no pointer arguments.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime and stime of a process (all its threads), in clock ticks; an error
/// once it has exited (also while it is a zombie).
pub fn proc_cpu_ticks(pid: i32) -> io::Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may
    // contain anything: state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')').ok_or_else(|| io::Error::other("bad stat"))? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return Err(io::Error::other("a zombie"));
    }
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((num(11), num(12)))
}

/// The resident memory of a process, in bytes.
pub fn proc_rss(pid: i32) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: no pointer arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Ok(pages * page)
}

/// The number of descriptors a process has open; an error once it has exited.
pub fn proc_fd_count(pid: i32) -> io::Result<usize> {
    proc_cpu_ticks(pid)?; // not a zombie, whose descriptors are all closed
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Pins the calling thread to one CPU (ignored where that CPU does not exist).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET writes
    // within it, and sched_setaffinity reads it for its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
