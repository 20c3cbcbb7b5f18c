//! Socket options on Unix: the `(level, optname)` of each option name, the
//! number-to-name maps of the read-only options, and the raw
//! `getsockopt(2)`/`setsockopt(2)` calls.
//!
//! The portable side ([`crate::opt`]) owns the names, the value kinds and the
//! checks of the values; this module only knows the numbers and the C layouts:
//! a plain `int`, `struct linger`, `struct timeval`, and for the multicast
//! options `struct in_addr`, `struct ip_mreq` and `struct ipv6_mreq`.
//!
//! An option that [`crate::opt`] knows but that has no row in [`ROWS`] on this
//! platform fails with `not_supported`.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use libc::{c_int, socklen_t};

use crate::error::{Error, ErrorKind, Result};

/// Where an option lives: the `level` and `optname` arguments of
/// `getsockopt`/`setsockopt`.
#[derive(Clone, Copy, Debug)]
struct Row {
    /// The portable name, as in [`crate::opt`].
    name: &'static str,
    /// `SOL_SOCKET`, `IPPROTO_TCP`, `IPPROTO_IP`, `IPPROTO_IPV6`, ...
    level: c_int,
    /// `SO_*`, `TCP_*`, `IP_*`, `IPV6_*`.
    optname: c_int,
}

const fn row(name: &'static str, level: c_int, optname: c_int) -> Row {
    Row {
        name,
        level,
        optname,
    }
}

const SOL_SOCKET: c_int = libc::SOL_SOCKET;
const TCP: c_int = libc::IPPROTO_TCP;
const IP: c_int = libc::IPPROTO_IP;
const IPV6: c_int = libc::IPPROTO_IPV6;

/// Every option this platform has, by portable name. Rows whose constant only
/// exists on some systems are gated here, never in a function body.
static ROWS: &[Row] = &[
    row("ip_add_membership", IP, libc::IP_ADD_MEMBERSHIP),
    row("ip_drop_membership", IP, libc::IP_DROP_MEMBERSHIP),
    row("ip_multicast_if", IP, libc::IP_MULTICAST_IF),
    row("ip_multicast_loop", IP, libc::IP_MULTICAST_LOOP),
    row("ip_multicast_ttl", IP, libc::IP_MULTICAST_TTL),
    row("ip_tos", IP, libc::IP_TOS),
    row("ip_ttl", IP, libc::IP_TTL),
    // Linux names the RFC 3493 IPV6_JOIN_GROUP/IPV6_LEAVE_GROUP after the IPv4
    // options (same numbers, same struct ipv6_mreq).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("ipv6_join_group", IPV6, libc::IPV6_ADD_MEMBERSHIP),
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    row("ipv6_join_group", IPV6, libc::IPV6_JOIN_GROUP),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("ipv6_leave_group", IPV6, libc::IPV6_DROP_MEMBERSHIP),
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    row("ipv6_leave_group", IPV6, libc::IPV6_LEAVE_GROUP),
    row("ipv6_multicast_hops", IPV6, libc::IPV6_MULTICAST_HOPS),
    row("ipv6_multicast_if", IPV6, libc::IPV6_MULTICAST_IF),
    row("ipv6_multicast_loop", IPV6, libc::IPV6_MULTICAST_LOOP),
    row("ipv6_unicast_hops", IPV6, libc::IPV6_UNICAST_HOPS),
    row("ipv6_v6only", IPV6, libc::IPV6_V6ONLY),
    row("so_acceptconn", SOL_SOCKET, libc::SO_ACCEPTCONN),
    row("so_broadcast", SOL_SOCKET, libc::SO_BROADCAST),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("so_domain", SOL_SOCKET, libc::SO_DOMAIN),
    row("so_dontroute", SOL_SOCKET, libc::SO_DONTROUTE),
    row("so_error", SOL_SOCKET, libc::SO_ERROR),
    row("so_keepalive", SOL_SOCKET, libc::SO_KEEPALIVE),
    row("so_linger", SOL_SOCKET, libc::SO_LINGER),
    row("so_oobinline", SOL_SOCKET, libc::SO_OOBINLINE),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("so_priority", SOL_SOCKET, libc::SO_PRIORITY),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("so_protocol", SOL_SOCKET, libc::SO_PROTOCOL),
    row("so_rcvbuf", SOL_SOCKET, libc::SO_RCVBUF),
    row("so_rcvlowat", SOL_SOCKET, libc::SO_RCVLOWAT),
    row("so_rcvtimeo", SOL_SOCKET, libc::SO_RCVTIMEO),
    row("so_reuseaddr", SOL_SOCKET, libc::SO_REUSEADDR),
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    row("so_reuseport", SOL_SOCKET, libc::SO_REUSEPORT),
    row("so_sndbuf", SOL_SOCKET, libc::SO_SNDBUF),
    row("so_sndlowat", SOL_SOCKET, libc::SO_SNDLOWAT),
    row("so_sndtimeo", SOL_SOCKET, libc::SO_SNDTIMEO),
    row("so_type", SOL_SOCKET, libc::SO_TYPE),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("tcp_cork", TCP, libc::TCP_CORK),
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd"
    ))]
    row("tcp_keepcnt", TCP, libc::TCP_KEEPCNT),
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd"
    ))]
    row("tcp_keepidle", TCP, libc::TCP_KEEPIDLE),
    // Apple calls the idle time before the first keep-alive probe TCP_KEEPALIVE.
    #[cfg(target_vendor = "apple")]
    row("tcp_keepidle", TCP, libc::TCP_KEEPALIVE),
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd"
    ))]
    row("tcp_keepintvl", TCP, libc::TCP_KEEPINTVL),
    row("tcp_maxseg", TCP, libc::TCP_MAXSEG),
    row("tcp_nodelay", TCP, libc::TCP_NODELAY),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("tcp_quickack", TCP, libc::TCP_QUICKACK),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    row("tcp_user_timeout", TCP, libc::TCP_USER_TIMEOUT),
];

/// The row of `name`, or `not_supported` when this platform lacks the option.
fn lookup(name: &str) -> Result<Row> {
    // (Sorted by name: a test checks it.)
    ROWS.binary_search_by(|r| r.name.cmp(name))
        .map(|i| ROWS[i])
        .map_err(|_| {
            Error::with_message(
                ErrorKind::NotSupported,
                format!("socket option {name} is not supported on this platform"),
            )
        })
}

/// The C types this module passes to `getsockopt`/`setsockopt`.
///
/// Implemented only for C structs made of integers and byte arrays (`int`,
/// `struct linger`, `struct timeval`, `struct in_addr`, `struct ip_mreq`,
/// `struct ipv6_mreq`): every bit pattern is a valid value, which the raw calls
/// below rely on. The trait is private so nothing else can implement it.
trait CType: Copy {
    /// The all-zero value.
    fn zeroed() -> Self;
}

impl CType for c_int {
    fn zeroed() -> Self {
        0
    }
}

impl CType for libc::linger {
    fn zeroed() -> Self {
        libc::linger {
            l_onoff: 0,
            l_linger: 0,
        }
    }
}

impl CType for libc::timeval {
    fn zeroed() -> Self {
        libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        }
    }
}

impl CType for libc::in_addr {
    fn zeroed() -> Self {
        in_addr(Ipv4Addr::UNSPECIFIED)
    }
}

impl CType for libc::ip_mreq {
    fn zeroed() -> Self {
        libc::ip_mreq {
            imr_multiaddr: libc::in_addr::zeroed(),
            imr_interface: libc::in_addr::zeroed(),
        }
    }
}

impl CType for libc::ipv6_mreq {
    fn zeroed() -> Self {
        libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr { s6_addr: [0; 16] },
            ipv6mr_interface: 0,
        }
    }
}

/// `getsockopt` of a `T`.
fn get<T: CType>(fd: BorrowedFd<'_>, row: Row) -> Result<T> {
    let mut val = T::zeroed();
    let mut len = mem::size_of::<T>() as socklen_t;
    // SAFETY: `val` is a live, writable, initialized `T` and `len` is its size, so
    // the kernel writes at most `size_of::<T>()` bytes into it (and updates `len`,
    // a live `socklen_t`). `T: CType` is plain integers and byte arrays, so
    // whatever bytes it writes (possibly fewer, over the zeroed value) form a
    // valid `T`. `fd` is borrowed, so it stays open for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            row.level,
            row.optname,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(val)
}

/// `setsockopt` of a `T`.
fn set<T: CType>(fd: BorrowedFd<'_>, row: Row, val: T) -> Result<()> {
    // SAFETY: the pointer is to a live, initialized `T` and the length passed is
    // exactly its size, so the kernel reads only valid memory; it does not keep
    // the pointer after the call. `fd` is borrowed, so it stays open meanwhile.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            row.level,
            row.optname,
            (&val as *const T).cast(),
            mem::size_of::<T>() as socklen_t,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

/// Reads an `int` option (flags, sizes, counts, `SO_ERROR`, `SO_TYPE`, ...).
pub(crate) fn get_int(fd: BorrowedFd<'_>, name: &str) -> Result<c_int> {
    get(fd, lookup(name)?)
}

/// Writes an `int` option.
pub(crate) fn set_int(fd: BorrowedFd<'_>, name: &str, val: c_int) -> Result<()> {
    set(fd, lookup(name)?, val)
}

/// Reads a `struct linger` option: `None` when lingering is off, else the
/// linger time in seconds.
pub(crate) fn get_linger(fd: BorrowedFd<'_>, name: &str) -> Result<Option<u32>> {
    let l: libc::linger = get(fd, lookup(name)?)?;
    Ok((l.l_onoff != 0).then(|| u32::try_from(l.l_linger).unwrap_or(0)))
}

/// Writes a `struct linger` option: `None` turns lingering off, `Some(secs)`
/// turns it on (`Some(0)`: reset the connection on close).
pub(crate) fn set_linger(fd: BorrowedFd<'_>, name: &str, secs: Option<u32>) -> Result<()> {
    let row = lookup(name)?;
    let l = match secs {
        None => libc::linger {
            l_onoff: 0,
            l_linger: 0,
        },
        Some(secs) => libc::linger {
            l_onoff: 1,
            l_linger: to_c_int(name, secs)?,
        },
    };
    set(fd, row, l)
}

/// Reads a `struct timeval` option; zero means "no timeout".
pub(crate) fn get_timeval(fd: BorrowedFd<'_>, name: &str) -> Result<Duration> {
    let tv: libc::timeval = get(fd, lookup(name)?)?;
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let usecs = u64::try_from(tv.tv_usec).unwrap_or(0);
    Ok(Duration::from_secs(secs) + Duration::from_micros(usecs))
}

/// Writes a `struct timeval` option; zero means "no timeout". Sub-microsecond
/// parts round up, so a non-zero duration never becomes "no timeout".
pub(crate) fn set_timeval(fd: BorrowedFd<'_>, name: &str, d: Duration) -> Result<()> {
    let row = lookup(name)?;
    let mut secs = d.as_secs();
    let mut usecs = d.subsec_nanos().div_ceil(1000);
    if usecs == 1_000_000 {
        secs += 1;
        usecs = 0;
    }
    let too_large = || {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("{name}: {secs} s is too large"),
        )
    };
    let usecs = i32::try_from(usecs).map_err(|_| too_large())?;
    let tv = libc::timeval {
        tv_sec: secs.try_into().map_err(|_| too_large())?,
        tv_usec: usecs.into(),
    };
    set(fd, row, tv)
}

/// Reads a `struct in_addr` option (`IP_MULTICAST_IF`); `0.0.0.0` when unset.
pub(crate) fn get_in_addr(fd: BorrowedFd<'_>, name: &str) -> Result<Ipv4Addr> {
    let a: libc::in_addr = get(fd, lookup(name)?)?;
    // `s_addr` is in network byte order: its bytes in memory are the octets.
    Ok(Ipv4Addr::from(a.s_addr.to_ne_bytes()))
}

/// Writes a `struct in_addr` option (`IP_MULTICAST_IF`; `0.0.0.0` resets it).
pub(crate) fn set_in_addr(fd: BorrowedFd<'_>, name: &str, addr: Ipv4Addr) -> Result<()> {
    set(fd, lookup(name)?, in_addr(addr))
}

/// Writes a `struct ip_mreq` option (`IP_ADD_MEMBERSHIP`, `IP_DROP_MEMBERSHIP`):
/// the IPv4 multicast `group` on the local interface with address `interface`
/// (`0.0.0.0`: the OS chooses by its routes).
pub(crate) fn set_ip_mreq(
    fd: BorrowedFd<'_>,
    name: &str,
    group: Ipv4Addr,
    interface: Ipv4Addr,
) -> Result<()> {
    let mreq = libc::ip_mreq {
        imr_multiaddr: in_addr(group),
        imr_interface: in_addr(interface),
    };
    set(fd, lookup(name)?, mreq)
}

/// Writes a `struct ipv6_mreq` option (`IPV6_ADD_MEMBERSHIP`,
/// `IPV6_DROP_MEMBERSHIP`): the IPv6 multicast `group` on the interface with
/// index `index` (0: the OS chooses). The caller checks that `index` fits a C
/// `int` (the field is an `int` on Android, an `unsigned int` elsewhere).
pub(crate) fn set_ipv6_mreq(
    fd: BorrowedFd<'_>,
    name: &str,
    group: Ipv6Addr,
    index: u32,
) -> Result<()> {
    let mut mreq = libc::ipv6_mreq::zeroed();
    mreq.ipv6mr_multiaddr.s6_addr = group.octets();
    mreq.ipv6mr_interface = index as _;
    set(fd, lookup(name)?, mreq)
}

/// The `struct in_addr` of an IPv4 address (network byte order).
fn in_addr(addr: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from_ne_bytes(addr.octets()),
    }
}

fn to_c_int(name: &str, n: u32) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("{name}: {n} is out of range"),
        )
    })
}

/// The name of a socket type (`SO_TYPE`): `"tcp"` for `SOCK_STREAM`, `"udp"` for
/// `SOCK_DGRAM`, `"raw"`, `"seqpacket"`.
pub(crate) fn type_name(n: c_int) -> Option<&'static str> {
    TYPE_NAMES.iter().find(|&&(v, _)| v == n).map(|&(_, s)| s)
}

/// The name of an address family (`SO_DOMAIN`): `"inet"`, `"inet6"`, `"unix"`.
pub(crate) fn domain_name(n: c_int) -> Option<&'static str> {
    DOMAIN_NAMES.iter().find(|&&(v, _)| v == n).map(|&(_, s)| s)
}

/// The name of an IP protocol (`SO_PROTOCOL`): `"tcp"`, `"udp"`, `"icmp"`, ...
/// Protocol 0 (the family's default, e.g. on Unix-domain sockets) has none.
pub(crate) fn protocol_name(n: c_int) -> Option<&'static str> {
    PROTOCOL_NAMES
        .iter()
        .find(|&&(v, _)| v == n)
        .map(|&(_, s)| s)
}

static TYPE_NAMES: &[(c_int, &str)] = &[
    (libc::SOCK_STREAM, "tcp"),
    (libc::SOCK_DGRAM, "udp"),
    (libc::SOCK_RAW, "raw"),
    (libc::SOCK_SEQPACKET, "seqpacket"),
];

static DOMAIN_NAMES: &[(c_int, &str)] = &[
    (libc::AF_INET, "inet"),
    (libc::AF_INET6, "inet6"),
    (libc::AF_UNIX, "unix"),
];

static PROTOCOL_NAMES: &[(c_int, &str)] = &[
    (libc::IPPROTO_ICMP, "icmp"),
    (libc::IPPROTO_IGMP, "igmp"),
    (libc::IPPROTO_TCP, "tcp"),
    (libc::IPPROTO_UDP, "udp"),
    (libc::IPPROTO_IPV6, "ipv6"),
    (libc::IPPROTO_ICMPV6, "icmpv6"),
    (libc::IPPROTO_RAW, "raw"),
];

/// Every name with a row on this platform (for tests cross-checking the tables).
#[cfg(test)]
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    ROWS.iter().map(|r| r.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sorted_and_every_one_is_found() {
        assert!(
            ROWS.windows(2).all(|w| w[0].name < w[1].name),
            "sorted, unique"
        );
        for r in ROWS {
            assert_eq!(lookup(r.name).unwrap().optname, r.optname, "{}", r.name);
        }
    }

    #[test]
    fn rows_are_unique() {
        let mut names: Vec<&str> = names().collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate row");
    }

    #[test]
    fn missing_row_is_not_supported() {
        let e = lookup("so_nonexistent").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported);
        assert!(e.message().contains("so_nonexistent"), "{}", e.message());
    }

    #[test]
    fn number_names() {
        assert_eq!(type_name(libc::SOCK_STREAM), Some("tcp"));
        assert_eq!(type_name(libc::SOCK_DGRAM), Some("udp"));
        assert_eq!(type_name(libc::SOCK_SEQPACKET), Some("seqpacket"));
        assert_eq!(domain_name(libc::AF_INET6), Some("inet6"));
        assert_eq!(domain_name(libc::AF_UNIX), Some("unix"));
        assert_eq!(protocol_name(libc::IPPROTO_ICMPV6), Some("icmpv6"));
        assert_eq!(protocol_name(0), None);
        assert_eq!(type_name(-1), None);
    }
}
