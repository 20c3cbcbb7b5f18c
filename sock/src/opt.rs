//! Socket options by name: the values of `s:setopt(opt, val)` and `s:getopt(opt)`.
//!
//! An option is named by a lower-case string (`"so_rcvbuf"`, `"tcp_nodelay"`, ...)
//! and its value is an [`OptVal`]. [`names`] lists every valid name. The names are
//! the same on every platform; an option the platform lacks fails with
//! `not_supported`.
//!
//! # Values
//!
//! | value type | `getopt` returns        | `setopt` accepts                                      |
//! |------------|-------------------------|-------------------------------------------------------|
//! | bool       | [`OptVal::Bool`]        | `Bool`, or `Int` (non-zero is `true`)                 |
//! | int        | [`OptVal::Int`]         | `Int` (in the range of a C `int`)                     |
//! | secs       | [`OptVal::Secs`]        | `Secs` or `Int`, in seconds, not negative; 0 is none  |
//! | linger     | `Bool(false)` or `Int`  | `Bool(false)`, or `Int`/`Secs` seconds (see below)    |
//! | name       | [`OptVal::Str`]         | read-only                                             |
//! | addr       | [`OptVal::Str`], e.g. `"127.0.0.1"` | `Str`: an IPv4 address                    |
//! | group      | write-only              | `Str`: `"group"` or `"group interface"` (see below)   |
//! | group6     | write-only              | `Str`: `"group"` or `"group interface_index"` (see below) |
//!
//! A `group` value is an IPv4 multicast address, optionally followed by the IPv4
//! address of the local interface to use (`0.0.0.0`, the default, lets the OS
//! choose by its routes): `"239.255.0.1"`, `"239.255.0.1 192.168.1.5"`. A `group6`
//! value is an IPv6 multicast address, optionally followed by an interface index
//! (0, the default, lets the OS choose): `"ff02::1:3 1"`. The two words are
//! separated by spaces or a comma. The strings may be built at run time:
//! `OptVal::from(format!("{group} {iface}"))`.
//!
//! Anything else, an unknown name, setting a read-only option or reading a
//! write-only one is an `invalid_argument` error; an error of the OS keeps its
//! `errno` (e.g. an option of the wrong protocol, such as `tcp_nodelay` on a UDP
//! socket, is `not_supported`; a group that is not a multicast address is
//! `invalid_argument` with `EINVAL`).
//!
//! A caller that checks its arguments before calling (a binding to another
//! language, which reports a bad name and a bad value at different argument
//! positions) finds the option with [`Opt::find`], converts its own value by
//! [`Opt::value_type`], and builds its errors with [`unknown_option`],
//! [`Opt::read_only`], [`Opt::write_only`] and [`Opt::bad_value`]: the very
//! errors, with the same messages, that `setopt` and `getopt` return. After
//! those checks, an `invalid_argument` error of `setopt` with `code` 0 is about
//! the value (out of range, not an address, ...).
//!
//! # Options
//!
//! | name               | value  | access | meaning |
//! |--------------------|--------|--------|---------|
//! | `so_acceptconn`    | bool   | read   | The socket is listening. |
//! | `so_broadcast`     | bool   | rw     | Allow sending datagrams to a broadcast address. |
//! | `so_domain`        | name   | read   | Address family: `"inet"`, `"inet6"`, `"unix"` (an `Int` for other families). Linux only. |
//! | `so_dontroute`     | bool   | rw     | Send only to directly connected hosts, bypassing routing. |
//! | `so_error`         | int    | read   | The pending socket error as an `errno` value, 0 when none. Reading it clears it, as the OS does: the error of a failed non-blocking connect reads once, then 0. |
//! | `so_keepalive`     | bool   | rw     | Send TCP keep-alive probes on an idle connection (see `tcp_keep*`). |
//! | `so_linger`        | linger | rw     | What `close` does with unsent data. Set `Bool(false)`: off, close returns at once and the OS keeps sending in the background (the default). Set `Int(n)` or `Secs(n)`: on, with a linger time of `n` whole seconds (a fraction rounds up); `0` makes close discard unsent data and send a TCP RST instead of a FIN. Get: `Bool(false)` when off, `Int(n)` when on. On this library's non-blocking sockets close never waits for the linger time. |
//! | `so_oobinline`     | bool   | rw     | Receive TCP urgent (out-of-band) data inline with the normal data. |
//! | `so_priority`      | int    | rw     | Queueing priority of outgoing packets (0 to 6 without `CAP_NET_ADMIN`). Linux only. |
//! | `so_protocol`      | name   | read   | Protocol: `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"`, `"igmp"`, `"ipv6"`, `"raw"`, or an `Int` for other numbers (`Int(0)` on Unix-domain sockets). Linux only. |
//! | `so_rcvbuf`        | int    | rw     | Receive buffer size in bytes. Linux doubles the value you set (for its bookkeeping) and `getopt` reports the doubled value; it also caps it at `net.core.rmem_max`. |
//! | `so_rcvlowat`      | int    | rw     | Bytes that must be queued before a receive is ready. Linux turns 0 into 1. |
//! | `so_rcvtimeo`      | secs   | rw     | Timeout of blocking receives (`struct timeval`, microsecond precision, rounded by Linux to its clock tick); 0 is none. No effect on this library's sockets, which are non-blocking: use the `expires` argument of the I/O calls. |
//! | `so_reuseaddr`     | bool   | rw     | Allow binding a local address still in `TIME_WAIT`. |
//! | `so_reuseport`     | bool   | rw     | Allow several sockets to bind the same address and port (Linux balances incoming connections and datagrams between them). |
//! | `so_sndbuf`        | int    | rw     | Send buffer size in bytes. Linux doubles the value you set and `getopt` reports the doubled value; it also caps it at `net.core.wmem_max`. |
//! | `so_sndlowat`      | int    | rw     | Bytes of buffer space that must be free before a send is ready. Linux does not allow changing it: `setopt` fails with `not_supported` (`getopt` reads 1). |
//! | `so_sndtimeo`      | secs   | rw     | Timeout of blocking sends, as `so_rcvtimeo`; no effect on this library's non-blocking sockets. |
//! | `so_type`          | name   | read   | Socket type: `"tcp"` (`SOCK_STREAM`, on any family), `"udp"` (`SOCK_DGRAM`), `"raw"`, `"seqpacket"`, or an `Int` for others. |
//! | `tcp_cork`         | bool   | rw     | Hold back partial segments until the option is cleared (or 200 ms pass). Linux only. |
//! | `tcp_keepcnt`      | int    | rw     | Keep-alive probes sent without reply before the connection is dropped. |
//! | `tcp_keepidle`     | int    | rw     | Seconds of idleness before the first keep-alive probe (with `so_keepalive`). |
//! | `tcp_keepintvl`    | int    | rw     | Seconds between keep-alive probes. |
//! | `tcp_maxseg`       | int    | rw     | Maximum segment size in bytes; set it before connecting. Before the connection, Linux reads back the value set (536 when unset); after, the MSS in use. |
//! | `tcp_nodelay`      | bool   | rw     | Disable Nagle's algorithm: send small segments at once. |
//! | `tcp_quickack`     | bool   | rw     | Send ACKs at once instead of delaying them. Linux may clear it by itself later: it is not permanent. Linux only. |
//! | `tcp_user_timeout` | int    | rw     | Milliseconds that sent data may stay unacknowledged before the connection is dropped; 0 is the system default. Linux only. |
//! | `ip_add_membership`| group  | write  | Join an IPv4 multicast group on an interface: datagrams sent to the group (and the bound port) are received. Joining the same group twice on one interface is `address_already_in_use`. |
//! | `ip_drop_membership`| group | write  | Leave a group joined with `ip_add_membership` (same value); a group not joined is `address_not_available`. Closing the socket leaves its groups. |
//! | `ip_multicast_if`  | addr   | rw     | The local interface, by its IPv4 address, that outgoing multicast datagrams leave from; `"0.0.0.0"` (the default) lets the OS choose by its routes. An address that no interface has is `address_not_available`. |
//! | `ip_multicast_loop`| bool   | rw     | Deliver outgoing multicast datagrams to the sockets of this host that joined the group too (on by default). |
//! | `ip_multicast_ttl` | int    | rw     | Time-to-live of outgoing IPv4 multicast datagrams, 0 to 255 (1 by default: the local network only; 0: this host only). Linux turns -1 into 1. |
//! | `ip_tos`           | int    | rw     | Type-of-service / DSCP byte of outgoing IPv4 packets. On TCP sockets Linux keeps the two ECN bits for itself. |
//! | `ip_ttl`           | int    | rw     | Time-to-live of outgoing IPv4 packets (1 to 255; -1 resets to the default). |
//! | `ipv6_join_group`  | group6 | write  | Join an IPv6 multicast group on an interface (`IPV6_ADD_MEMBERSHIP` on Linux). |
//! | `ipv6_leave_group` | group6 | write  | Leave a group joined with `ipv6_join_group` (same value); a group not joined is `address_not_available`. |
//! | `ipv6_multicast_hops`| int  | rw     | Hop limit of outgoing IPv6 multicast datagrams, 0 to 255 (1 by default; -1 resets to the default). |
//! | `ipv6_multicast_if`| int    | rw     | Index of the interface that outgoing IPv6 multicast datagrams leave from; 0 (the default) lets the OS choose. |
//! | `ipv6_multicast_loop`| bool | rw     | Deliver outgoing IPv6 multicast datagrams to the sockets of this host that joined the group too (on by default). |
//! | `ipv6_unicast_hops`| int    | rw     | Hop limit of outgoing unicast IPv6 packets (1 to 255; -1 resets to the default). |
//! | `ipv6_v6only`      | bool   | rw     | An `inet6` socket only talks IPv6 (no IPv4-mapped addresses); set it before `bind`. |
//!
//! `ip_*` options are for `inet` sockets and `ipv6_*` options for `inet6`
//! sockets. An `ipv6_*` option on an `inet` socket fails with `not_supported`;
//! Linux accepts `ip_*` options on an `inet6` socket too, where they apply to its
//! IPv4 traffic (IPv4-mapped addresses, with `ipv6_v6only` off). `tcp_*` options
//! work on TCP sockets only; the multicast options are for UDP sockets.
//!
//! ```
//! use sock::OptVal;
//!
//! let group = String::from("239.255.0.1"); // e.g. read from a configuration
//! let join = OptVal::from(format!("{group} 0.0.0.0"));
//! assert_eq!(join.as_str(), Some("239.255.0.1 0.0.0.0"));
//! // s.setopt("ip_add_membership", join)?; ... s.setopt("ip_drop_membership", group)?;
//! ```

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use libc::c_int;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::sockopt;

/// The value of a socket option: what `getopt` returns and `setopt` takes (see
/// the [module documentation](self) for which option takes which value).
///
/// ```
/// use sock::OptVal;
///
/// assert_eq!(OptVal::from(true), OptVal::Bool(true));
/// assert_eq!(OptVal::from(65536).as_int(), Some(65536));
/// assert_eq!(OptVal::from(1.5).as_secs(), Some(1.5));
/// assert_eq!(OptVal::from("tcp").as_str(), Some("tcp"));
/// // A string built at run time (a multicast group, an interface address):
/// let group = format!("239.255.0.{}", 1);
/// assert_eq!(OptVal::from(group).as_str(), Some("239.255.0.1"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum OptVal {
    /// A flag (`so_reuseaddr`, `tcp_nodelay`, ...), or `false` for `so_linger` off.
    Bool(bool),
    /// A number: a size, a count, a time in the option's own unit, an `errno`.
    Int(i64),
    /// A time in seconds, with a fractional part (`so_rcvtimeo`, `so_sndtimeo`).
    Secs(f64),
    /// A string: a name read from `so_type`, `so_domain`, `so_protocol`
    /// (borrowed), an address read from `ip_multicast_if` (owned), or a value
    /// given to `ip_add_membership`, `ip_multicast_if`, ... (either; see
    /// `From<&'static str>` and `From<String>`).
    Str(Cow<'static, str>),
}

impl OptVal {
    /// The flag, if this is a [`Bool`](OptVal::Bool).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            OptVal::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The number, if this is an [`Int`](OptVal::Int).
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            OptVal::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The seconds, if this is [`Secs`](OptVal::Secs), or an [`Int`](OptVal::Int)
    /// taken as whole seconds.
    pub fn as_secs(&self) -> Option<f64> {
        match *self {
            OptVal::Secs(s) => Some(s),
            OptVal::Int(n) => Some(n as f64),
            _ => None,
        }
    }

    /// The string, if this is a [`Str`](OptVal::Str).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            OptVal::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&'static str> for OptVal {
    fn from(s: &'static str) -> Self {
        OptVal::Str(Cow::Borrowed(s))
    }
}

impl From<String> for OptVal {
    fn from(s: String) -> Self {
        OptVal::Str(Cow::Owned(s))
    }
}

impl From<bool> for OptVal {
    fn from(b: bool) -> Self {
        OptVal::Bool(b)
    }
}

impl From<i32> for OptVal {
    fn from(n: i32) -> Self {
        OptVal::Int(n.into())
    }
}

impl From<i64> for OptVal {
    fn from(n: i64) -> Self {
        OptVal::Int(n)
    }
}

impl From<u32> for OptVal {
    fn from(n: u32) -> Self {
        OptVal::Int(n.into())
    }
}

impl From<f64> for OptVal {
    fn from(s: f64) -> Self {
        OptVal::Secs(s)
    }
}

impl From<Duration> for OptVal {
    fn from(d: Duration) -> Self {
        OptVal::Secs(d.as_secs_f64())
    }
}

/// The type of an option's value: how it is represented in C, and which
/// [`OptVal`] it takes and gives (see the [module documentation](self)).
///
/// [`Opt::value_type`] tells the type of an option, so that a caller (such as a
/// binding to another language) can convert a value of its own to the right
/// [`OptVal`] before calling `setopt`.
///
/// ```
/// use sock::opt::{Opt, OptType};
///
/// assert_eq!(Opt::find("tcp_nodelay").unwrap().value_type(), OptType::Bool);
/// assert_eq!(Opt::find("so_rcvtimeo").unwrap().value_type(), OptType::Secs);
/// assert_eq!(OptType::Int.expected(), "an integer");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptType {
    /// A C `int` used as a flag: [`OptVal::Bool`] (`setopt` also takes an
    /// [`OptVal::Int`], non-zero meaning `true`).
    Bool,
    /// A C `int`: [`OptVal::Int`], in the range of a C `int`.
    Int,
    /// A `struct timeval`: [`OptVal::Secs`] (`setopt` also takes an
    /// [`OptVal::Int`] of whole seconds), not negative; 0 is none.
    Secs,
    /// A `struct linger`: `Bool(false)` (off), or `Int`/`Secs` seconds (on);
    /// `getopt` gives `Bool(false)` or `Int`.
    Linger,
    /// A C `int` shown as a name ([`OptVal::Str`], e.g. `"tcp"`), or as an
    /// [`OptVal::Int`] when the number has no name. Read-only.
    Name,
    /// A `struct in_addr`: [`OptVal::Str`] holding an IPv4 address.
    Addr,
    /// A `struct ip_mreq`: [`OptVal::Str`] `"group [interface]"` of IPv4
    /// addresses. Write-only.
    Group,
    /// A `struct ipv6_mreq`: [`OptVal::Str`] `"group [interface_index]"`.
    /// Write-only.
    Group6,
}

impl OptType {
    /// What `setopt` takes for an option of this type, as a phrase that follows
    /// "takes" in the message of a bad value (`"a boolean"`, `"an integer"`,
    /// `"seconds"`, ...).
    ///
    /// ```
    /// assert_eq!(sock::opt::OptType::Bool.expected(), "a boolean");
    /// ```
    pub fn expected(self) -> &'static str {
        match self {
            OptType::Bool => "a boolean",
            OptType::Int => "an integer",
            OptType::Secs => "seconds",
            OptType::Linger => "false or seconds",
            OptType::Name => "no value (it is read-only)",
            OptType::Addr => "an IPv4 address string",
            OptType::Group => "a string \"group\" or \"group interface\" of IPv4 addresses",
            OptType::Group6 => {
                "a string \"group\" or \"group interface_index\" (an IPv6 address and a number)"
            }
        }
    }
}

/// Whether an option can be read, written, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
}

/// The map of a [`OptType::Name`] option from the C `int` to its name.
type NameMap = fn(c_int) -> Option<&'static str>;

/// One row of the table of options.
#[derive(Debug)]
struct OptRow {
    name: &'static str,
    kind: OptType,
    access: Access,
    /// The names of the values, for [`OptType::Name`] rows only (a test checks it).
    names: Option<NameMap>,
}

/// A read-write option.
const fn rw(name: &'static str, kind: OptType) -> OptRow {
    OptRow {
        name,
        kind,
        access: Access::ReadWrite,
        names: None,
    }
}

/// A read-only option.
const fn ro(name: &'static str, kind: OptType) -> OptRow {
    OptRow {
        name,
        kind,
        access: Access::Read,
        names: None,
    }
}

/// A read-only option of type [`OptType::Name`], its values named by `names`.
const fn ro_name(name: &'static str, names: NameMap) -> OptRow {
    OptRow {
        name,
        kind: OptType::Name,
        access: Access::Read,
        names: Some(names),
    }
}

/// A write-only option (an action, such as joining a multicast group).
const fn wo(name: &'static str, kind: OptType) -> OptRow {
    OptRow {
        name,
        kind,
        access: Access::Write,
        names: None,
    }
}

/// Every option, sorted by name (a test checks it). The platform numbers are in
/// `sys::sockopt`, by the same names.
static OPTS: &[OptRow] = &[
    wo("ip_add_membership", OptType::Group),
    wo("ip_drop_membership", OptType::Group),
    rw("ip_multicast_if", OptType::Addr),
    rw("ip_multicast_loop", OptType::Bool),
    rw("ip_multicast_ttl", OptType::Int),
    rw("ip_tos", OptType::Int),
    rw("ip_ttl", OptType::Int),
    wo("ipv6_join_group", OptType::Group6),
    wo("ipv6_leave_group", OptType::Group6),
    rw("ipv6_multicast_hops", OptType::Int),
    rw("ipv6_multicast_if", OptType::Int),
    rw("ipv6_multicast_loop", OptType::Bool),
    rw("ipv6_unicast_hops", OptType::Int),
    rw("ipv6_v6only", OptType::Bool),
    ro("so_acceptconn", OptType::Bool),
    rw("so_broadcast", OptType::Bool),
    ro_name("so_domain", sockopt::domain_name),
    rw("so_dontroute", OptType::Bool),
    ro("so_error", OptType::Int),
    rw("so_keepalive", OptType::Bool),
    rw("so_linger", OptType::Linger),
    rw("so_oobinline", OptType::Bool),
    rw("so_priority", OptType::Int),
    ro_name("so_protocol", sockopt::protocol_name),
    rw("so_rcvbuf", OptType::Int),
    rw("so_rcvlowat", OptType::Int),
    rw("so_rcvtimeo", OptType::Secs),
    rw("so_reuseaddr", OptType::Bool),
    rw("so_reuseport", OptType::Bool),
    rw("so_sndbuf", OptType::Int),
    rw("so_sndlowat", OptType::Int),
    rw("so_sndtimeo", OptType::Secs),
    ro_name("so_type", sockopt::type_name),
    rw("tcp_cork", OptType::Bool),
    rw("tcp_keepcnt", OptType::Int),
    rw("tcp_keepidle", OptType::Int),
    rw("tcp_keepintvl", OptType::Int),
    rw("tcp_maxseg", OptType::Int),
    rw("tcp_nodelay", OptType::Bool),
    rw("tcp_quickack", OptType::Bool),
    rw("tcp_user_timeout", OptType::Int),
];

/// Every valid option name, sorted.
///
/// ```
/// assert!(sock::opt::names().any(|n| n == "tcp_nodelay"));
/// ```
pub fn names() -> impl Iterator<Item = &'static str> {
    OPTS.iter().map(|o| o.name)
}

/// An option of the table, found by its name with [`Opt::find`]: its
/// [`name`](Opt::name), the [type of its value](Opt::value_type), whether it
/// can be [read](Opt::readable) and [written](Opt::writable), and the errors of
/// its misuse (the same errors, with the same messages, as `setopt` and
/// `getopt` give).
///
/// ```
/// use sock::opt::{Opt, OptType};
/// use sock::OptVal;
///
/// let o = Opt::find("so_type").unwrap();
/// assert_eq!((o.name(), o.value_type()), ("so_type", OptType::Name));
/// assert!(o.readable() && !o.writable());
/// assert!(Opt::find("so_bogus").is_none());
/// assert_eq!(sock::opt::unknown_option("so_bogus").name(), "invalid_argument");
///
/// let nodelay = Opt::find("tcp_nodelay").unwrap();
/// let e = nodelay.bad_value(&OptVal::from("yes"));
/// assert_eq!(e.message(), r#"socket option tcp_nodelay takes a boolean, not Str("yes")"#);
/// ```
#[derive(Clone, Copy)]
pub struct Opt(&'static OptRow);

impl Opt {
    /// The option named `name` (lower case, as [`names`] lists them), or `None`
    /// when there is no such option (see [`unknown_option`] for its error).
    pub fn find(name: &str) -> Option<Opt> {
        row(name).map(Opt)
    }

    /// The option's place in the table of options, in the order of
    /// [`names`]: a small number for a binding to name the option by
    /// (see [`from_index`](Self::from_index)).
    ///
    /// ```
    /// use sock::opt::Opt;
    /// let o = Opt::find("tcp_nodelay").unwrap();
    /// assert_eq!(Opt::from_index(o.index()).unwrap().name(), "tcp_nodelay");
    /// assert_eq!(sock::opt::names().nth(o.index()), Some("tcp_nodelay"));
    /// ```
    pub fn index(self) -> usize {
        // (A row of the table: its offset over the row size is its index.)
        (self.0 as *const OptRow as usize - OPTS.as_ptr() as usize) / std::mem::size_of::<OptRow>()
    }

    /// The option at `index` in the table of options ([`index`](Self::index)),
    /// or `None` past its end.
    ///
    /// ```
    /// use sock::opt::Opt;
    /// assert_eq!(Opt::from_index(0).unwrap().name(), sock::opt::names().next().unwrap());
    /// assert!(Opt::from_index(usize::MAX).is_none());
    /// ```
    pub fn from_index(index: usize) -> Option<Opt> {
        OPTS.get(index).map(Opt)
    }

    /// The name of the option, e.g. `"so_rcvbuf"`.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The type of the option's value.
    pub fn value_type(self) -> OptType {
        self.0.kind
    }

    /// Whether `getopt` can read the option (every option but the write-only
    /// actions such as `ip_add_membership`).
    pub fn readable(self) -> bool {
        self.0.access != Access::Write
    }

    /// Whether `setopt` can set the option (every option but the read-only ones
    /// such as `so_type`).
    pub fn writable(self) -> bool {
        self.0.access != Access::Read
    }

    /// The `invalid_argument` error of `setopt` on this option with a value of
    /// the wrong type, e.g. `"socket option tcp_nodelay takes a boolean, not
    /// Str(\"yes\")"` (see [`OptType::expected`]).
    pub fn bad_value(self, val: &OptVal) -> Error {
        bad_value(self.0.name, self.0.kind, val)
    }

    /// The `invalid_argument` error of `setopt` on this option when it is
    /// read-only: `"socket option so_type is read-only"`.
    pub fn read_only(self) -> Error {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("socket option {} is read-only", self.0.name),
        )
    }

    /// The `invalid_argument` error of `getopt` on this option when it is
    /// write-only: `"socket option ip_add_membership is write-only"`.
    pub fn write_only(self) -> Error {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("socket option {} is write-only", self.0.name),
        )
    }
}

impl std::fmt::Debug for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opt")
            .field("name", &self.0.name)
            .field("value_type", &self.0.kind)
            .field("access", &self.0.access)
            .finish()
    }
}

impl PartialEq for Opt {
    fn eq(&self, other: &Opt) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Opt {}

/// The `invalid_argument` error of `setopt` and `getopt` for an unknown option
/// name: `"unknown socket option \"so_bogus\"; valid options: ip_add_membership,
/// ..."` (every name of [`names`]).
///
/// ```
/// let e = sock::opt::unknown_option("so_bogus");
/// assert_eq!(e.kind(), sock::ErrorKind::InvalidArgument);
/// assert!(e.message().starts_with("unknown socket option \"so_bogus\"; valid options: "));
/// ```
pub fn unknown_option(name: &str) -> Error {
    Error::with_message(
        ErrorKind::InvalidArgument,
        format!(
            "unknown socket option {name:?}; valid options: {}",
            names().collect::<Vec<_>>().join(", ")
        ),
    )
}

/// The options of other platforms that the original library names (Windows'
/// `SOL_SOCKET` and `IPPROTO_TCP` options, in its spelling), sorted: known
/// names, so that code written for it gets `not_supported` here rather than
/// an error for a name that does not exist.
static ELSEWHERE: &[&str] = &[
    "so_bsp_state",
    "so_conditional_accept",
    "so_connect_time",
    "so_dontlinger",
    "so_exclusiveaddruse",
    "so_group_id",
    "so_group_priority",
    "so_max_msg_size",
    "so_pause_accept",
    "so_port_scalability",
    "so_protocol_info",
    "so_randomize_port",
    "so_reuse_multicastport",
    "so_reuse_unicastport",
    "so_update_accept_context",
    "so_update_connect_context",
    "tcp_bsdurgent",
    "tcp_expedited_1122",
    "tcp_fail_connect_on_icmp_error",
    "tcp_icmp_error_info",
    "tcp_maxrt",
    "tcp_maxrtms",
    "tcp_timestamps",
];

/// Whether `name` is an option of another platform only (see
/// [`not_here`]): the original library's Windows options.
///
/// ```
/// assert!(sock::opt::elsewhere("so_conditional_accept"));
/// assert!(!sock::opt::elsewhere("so_reuseaddr") && !sock::opt::elsewhere("so_bogus"));
/// ```
pub fn elsewhere(name: &str) -> bool {
    spelled_either_way(name, |n| ELSEWHERE.binary_search(&n).ok()).is_some()
}

/// `find(name)`, or `find("so_" + name)`: the later versions' spelling of
/// the socket-level names, without `so_` (`reuseaddr`); the `tcp_*` and
/// `ip*` names keep theirs.
fn spelled_either_way<T>(name: &str, find: impl Fn(&str) -> Option<T>) -> Option<T> {
    find(name).or_else(|| {
        let mut buf = [0u8; 64];
        let full = buf.get_mut(..name.len() + 3)?;
        full[..3].copy_from_slice(b"so_");
        full[3..].copy_from_slice(name.as_bytes());
        find(std::str::from_utf8(full).ok()?)
    })
}

/// The error of an option that exists on another platform only:
/// `not_supported`.
///
/// ```
/// let t = sock::Tcp::new(sock::Family::Inet).unwrap();
/// let e = t.getopt("so_conditional_accept").unwrap_err();
/// assert_eq!(e.name(), "not_supported");
/// assert_eq!(e.message(), sock::opt::not_here("so_conditional_accept").message());
/// ```
pub fn not_here(name: &str) -> Error {
    Error::with_message(
        ErrorKind::NotSupported,
        format!("socket option {name:?} is not available on this platform"),
    )
}

/// The row of `name`, if there is one.
fn row(name: &str) -> Option<&'static OptRow> {
    spelled_either_way(name, |name| {
        OPTS.binary_search_by(|o| o.name.cmp(name))
            .ok()
            .map(|i| &OPTS[i])
    })
}

/// The row of `name`, or `invalid_argument` listing the valid names
/// (`not_supported` for an option of another platform).
fn lookup(name: &str) -> Result<&'static OptRow> {
    row(name).ok_or_else(|| match elsewhere(name) {
        true => not_here(name),
        false => unknown_option(name),
    })
}

/// Sets option `name` of the socket `fd` to `val`: the option found, then
/// [`setopt_opt`].
pub(crate) fn setopt(fd: BorrowedFd<'_>, name: &str, val: &OptVal) -> Result<Opt> {
    let opt = Opt(lookup(name)?);
    setopt_opt(fd, opt, val).map(|()| opt)
}

/// Sets the option `opt` of the socket `fd` to `val`.
pub(crate) fn setopt_opt(fd: BorrowedFd<'_>, opt: Opt, val: &OptVal) -> Result<()> {
    let row = opt.0;
    if !opt.writable() {
        return Err(opt.read_only());
    }
    let name = row.name;
    match row.kind {
        OptType::Bool => sockopt::set_int(fd, name, bool_arg(name, val)?.into()),
        OptType::Int => sockopt::set_int(fd, name, int_arg(name, val)?),
        OptType::Secs => sockopt::set_timeval(fd, name, secs_arg(name, val)?),
        OptType::Linger => sockopt::set_linger(fd, name, linger_arg(name, val)?),
        // Unreachable: every Name row is read-only (a test checks it).
        OptType::Name => Err(opt.read_only()),
        OptType::Addr => sockopt::set_in_addr(fd, name, addr_arg(name, val)?),
        OptType::Group => {
            let (group, interface) = group_arg(name, val)?;
            sockopt::set_ip_mreq(fd, name, group, interface)
        }
        OptType::Group6 => {
            let (group, index) = group6_arg(name, val)?;
            sockopt::set_ipv6_mreq(fd, name, group, index)
        }
    }
}

/// Reads option `name` of the socket `fd`.
pub(crate) fn getopt(fd: BorrowedFd<'_>, name: &str) -> Result<OptVal> {
    let row = lookup(name)?;
    let opt = Opt(row);
    if !opt.readable() {
        return Err(opt.write_only());
    }
    let name = row.name;
    Ok(match row.kind {
        OptType::Bool => OptVal::Bool(sockopt::get_int(fd, name)? != 0),
        OptType::Int => OptVal::Int(sockopt::get_int(fd, name)?.into()),
        OptType::Secs => OptVal::Secs(sockopt::get_timeval(fd, name)?.as_secs_f64()),
        OptType::Linger => match sockopt::get_linger(fd, name)? {
            None => OptVal::Bool(false),
            Some(secs) => OptVal::Int(secs.into()),
        },
        OptType::Name => {
            let n = sockopt::get_int(fd, name)?;
            row.names
                .and_then(|to_name| to_name(n))
                .map_or(OptVal::Int(n.into()), OptVal::from)
        }
        OptType::Addr => OptVal::from(sockopt::get_in_addr(fd, name)?.to_string()),
        // Unreachable: every Group row is write-only (a test checks it).
        OptType::Group | OptType::Group6 => return Err(opt.write_only()),
    })
}

/// The one message of a value of the wrong type for option `name` of type `ty`.
fn bad_value(name: &str, ty: OptType, val: &OptVal) -> Error {
    Error::with_message(
        ErrorKind::InvalidArgument,
        format!("socket option {name} takes {}, not {val:?}", ty.expected()),
    )
}

/// A flag: `Bool`, or `Int` with non-zero meaning `true`.
fn bool_arg(name: &str, val: &OptVal) -> Result<bool> {
    match *val {
        OptVal::Bool(b) => Ok(b),
        OptVal::Int(n) => Ok(n != 0),
        _ => Err(bad_value(name, OptType::Bool, val)),
    }
}

/// A C `int`: `Int` in range.
fn int_arg(name: &str, val: &OptVal) -> Result<c_int> {
    match *val {
        OptVal::Int(n) => c_int::try_from(n).map_err(|_| {
            Error::with_message(
                ErrorKind::InvalidArgument,
                format!("socket option {name}: {n} is out of range"),
            )
        }),
        _ => Err(bad_value(name, OptType::Int, val)),
    }
}

/// A time: `Secs` or `Int` seconds, not negative, finite.
fn secs_arg(name: &str, val: &OptVal) -> Result<Duration> {
    let secs = match *val {
        OptVal::Secs(s) => s,
        OptVal::Int(n) => n as f64,
        _ => return Err(bad_value(name, OptType::Secs, val)),
    };
    if secs < 0.0 {
        return Err(Error::with_message(
            ErrorKind::InvalidArgument,
            format!("socket option {name}: {secs} s is negative"),
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("socket option {name}: {secs} s is not a valid time"),
        )
    })
}

/// A linger setting: `Bool(false)` is off (`None`); `Int`/`Secs` seconds is on,
/// a fraction rounding up so that a short linger never becomes a reset.
fn linger_arg(name: &str, val: &OptVal) -> Result<Option<u32>> {
    let out_of_range = || {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!(
                "socket option {name} takes false or 0 to {} seconds, not {val:?}",
                c_int::MAX
            ),
        )
    };
    match *val {
        OptVal::Bool(false) => Ok(None),
        OptVal::Int(n) => match u32::try_from(n) {
            Ok(n) if c_int::try_from(n).is_ok() => Ok(Some(n)),
            _ => Err(out_of_range()),
        },
        OptVal::Secs(s) if (0.0..=f64::from(c_int::MAX)).contains(&s) => Ok(Some(s.ceil() as u32)),
        OptVal::Secs(_) => Err(out_of_range()),
        _ => Err(bad_value(name, OptType::Linger, val)),
    }
}

/// The value of an `addr` option: `Str` holding one IPv4 address.
fn addr_arg(name: &str, val: &OptVal) -> Result<Ipv4Addr> {
    match val {
        OptVal::Str(s) => ipv4_word(name, s.trim(), val),
        _ => Err(bad_value(name, OptType::Addr, val)),
    }
}

/// The value of a `group` option: `Str("group")` or `Str("group interface")`,
/// IPv4 addresses separated by spaces or a comma; the interface defaults to
/// `0.0.0.0` (any). Whether the group is a multicast address is left to the OS.
fn group_arg(name: &str, val: &OptVal) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let (group, interface) = two_words(name, val, OptType::Group)?;
    let group = ipv4_word(name, group, val)?;
    let interface = match interface {
        Some(w) => ipv4_word(name, w, val)?,
        None => Ipv4Addr::UNSPECIFIED,
    };
    Ok((group, interface))
}

/// The value of a `group6` option: `Str("group")` or
/// `Str("group interface_index")`, separated by spaces or a comma; the index
/// defaults to 0 (any). It must fit a C `int` (an index is never larger).
fn group6_arg(name: &str, val: &OptVal) -> Result<(Ipv6Addr, u32)> {
    let (group, index) = two_words(name, val, OptType::Group6)?;
    let group: Ipv6Addr = group.parse().map_err(|_| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("socket option {name}: {group:?} is not an IPv6 address (in {val:?})"),
        )
    })?;
    let index = match index {
        None => 0,
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|&n| c_int::try_from(n).is_ok())
            .ok_or_else(|| {
                Error::with_message(
                    ErrorKind::InvalidArgument,
                    format!("socket option {name}: {w:?} is not an interface index (in {val:?})"),
                )
            })?,
    };
    Ok((group, index))
}

/// The one or two words of a `Str` value, separated by spaces or a comma.
fn two_words<'a>(name: &str, val: &'a OptVal, ty: OptType) -> Result<(&'a str, Option<&'a str>)> {
    let OptVal::Str(s) = val else {
        return Err(bad_value(name, ty, val));
    };
    let mut words = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(first), second, None) => Ok((first, second)),
        _ => Err(bad_value(name, ty, val)),
    }
}

/// One IPv4 address, or `invalid_argument` naming it and the whole value.
fn ipv4_word(name: &str, word: &str, val: &OptVal) -> Result<Ipv4Addr> {
    word.parse().map_err(|_| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("socket option {name}: {word:?} is not an IPv4 address (in {val:?})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::ELSEWHERE;

    #[test]
    fn options_of_other_platforms_are_sorted_and_none_of_ours() {
        assert!(ELSEWHERE.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        for name in ELSEWHERE {
            assert!(super::Opt::find(name).is_none(), "{name} is ours");
        }
    }

    #[test]
    fn every_option_has_its_index_and_back() {
        for (i, name) in super::names().enumerate() {
            let o = super::Opt::find(name).unwrap();
            assert_eq!(o.index(), i, "{name}");
            assert_eq!(super::Opt::from_index(i).unwrap().name(), name);
        }
        assert!(super::Opt::from_index(super::names().count()).is_none());
    }

    #[test]
    fn setopt_opt_sets_what_setopt_sets() {
        let s = tcp4();
        let o = Opt::find("tcp_nodelay").unwrap();
        setopt_opt(s.as_fd(), o, &OptVal::Bool(true)).unwrap();
        assert_eq!(
            getopt(s.as_fd(), "tcp_nodelay").unwrap(),
            OptVal::Bool(true)
        );
        setopt_opt(s.as_fd(), o, &OptVal::Int(0)).unwrap();
        assert_eq!(
            getopt(s.as_fd(), "tcp_nodelay").unwrap(),
            OptVal::Bool(false)
        );
        let e = setopt_opt(s.as_fd(), o, &OptVal::from("yes")).unwrap_err();
        assert_eq!(e.name(), "invalid_argument");
        let ro = Opt::find("so_type").unwrap();
        assert_eq!(
            setopt_opt(s.as_fd(), ro, &OptVal::Int(1))
                .unwrap_err()
                .message(),
            ro.read_only().message()
        );
    }

    use super::*;

    use std::net::SocketAddr;
    use std::os::fd::AsFd;
    use std::time::Instant;

    use socket2::{Domain, Protocol, SockAddr, Socket, Type};

    // ---- pure logic -------------------------------------------------------

    #[test]
    fn names_sorted_unique_and_lookup_agrees() {
        let names: Vec<&str> = names().collect();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "not sorted/unique: {names:?}"
        );
        for n in &names {
            assert_eq!(lookup(n).unwrap().name, *n);
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        for required in [
            "so_reuseaddr",
            "so_reuseport",
            "so_keepalive",
            "so_broadcast",
            "so_dontroute",
            "so_oobinline",
            "so_rcvbuf",
            "so_sndbuf",
            "so_rcvlowat",
            "so_sndlowat",
            "so_priority",
            "so_linger",
            "so_rcvtimeo",
            "so_sndtimeo",
            "so_error",
            "so_type",
            "so_acceptconn",
            "so_domain",
            "so_protocol",
            "tcp_nodelay",
            "tcp_cork",
            "tcp_quickack",
            "tcp_keepidle",
            "tcp_keepintvl",
            "tcp_keepcnt",
            "tcp_maxseg",
            "tcp_user_timeout",
            "ipv6_v6only",
            "ip_ttl",
            "ipv6_unicast_hops",
            "ip_tos",
            "ip_add_membership",
            "ip_drop_membership",
            "ip_multicast_if",
            "ip_multicast_loop",
            "ip_multicast_ttl",
            "ipv6_join_group",
            "ipv6_leave_group",
            "ipv6_multicast_hops",
            "ipv6_multicast_if",
            "ipv6_multicast_loop",
        ] {
            assert!(names.contains(&required), "{required} missing");
        }
    }

    #[test]
    fn platform_rows_match_the_table() {
        // Every platform row has a portable name (the reverse may fail: an option
        // the platform lacks is not_supported).
        for n in sockopt::names() {
            assert!(lookup(n).is_ok(), "platform row {n} not in OPTS");
        }
        if cfg!(target_os = "linux") {
            let platform: Vec<&str> = sockopt::names().collect();
            for n in names() {
                assert!(platform.contains(&n), "{n} has no Linux row");
            }
        }
    }

    #[test]
    fn name_kinds_are_read_only_and_group_kinds_write_only() {
        for o in OPTS {
            match o.kind {
                OptType::Name => assert_eq!(o.access, Access::Read, "{}", o.name),
                OptType::Group | OptType::Group6 => {
                    assert_eq!(o.access, Access::Write, "{}", o.name)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn name_rows_and_only_they_have_a_name_map() {
        for o in OPTS {
            let is_name = o.kind == OptType::Name;
            assert_eq!(o.names.is_some(), is_name, "{}", o.name);
        }
    }

    #[test]
    fn opt_handle_agrees_with_the_table() {
        for o in OPTS {
            let opt = Opt::find(o.name).unwrap();
            assert_eq!(opt.name(), o.name);
            assert_eq!(opt.value_type(), o.kind, "{}", o.name);
            assert_eq!(opt.readable(), o.access != Access::Write, "{}", o.name);
            assert_eq!(opt.writable(), o.access != Access::Read, "{}", o.name);
            assert!(opt.readable() || opt.writable(), "{}", o.name);
            assert_eq!(opt, Opt::find(o.name).unwrap());
        }
        for bad in ["so_bogus", "SO_RCVBUF", "", "so_rcvbuf "] {
            assert!(Opt::find(bad).is_none(), "{bad:?}");
        }
        let o = Opt::find("so_type").unwrap();
        assert_eq!(
            format!("{o:?}"),
            "Opt { name: \"so_type\", value_type: Name, access: Read }"
        );
        assert_ne!(o, Opt::find("so_domain").unwrap());
    }

    #[test]
    fn every_type_says_what_it_expects() {
        for ty in [
            OptType::Bool,
            OptType::Int,
            OptType::Secs,
            OptType::Linger,
            OptType::Name,
            OptType::Addr,
            OptType::Group,
            OptType::Group6,
        ] {
            let phrase = ty.expected();
            assert!(!phrase.is_empty() && !phrase.ends_with('.'), "{ty:?}");
        }
        assert_eq!(OptType::Secs.expected(), "seconds");
    }

    /// The errors of the handle are the errors of `setopt`/`getopt` (kind, code
    /// and message), so a caller that checks first reports the same thing.
    #[test]
    fn opt_errors_are_the_errors_of_setopt_and_getopt() {
        let same = |a: &Error, b: &Error| {
            assert_eq!(
                (a.kind(), a.code(), a.message()),
                (b.kind(), b.code(), b.message())
            );
        };
        let s = tcp4();
        same(&unknown_option("so_bogus"), &set_err(&s, "so_bogus", 1));
        same(
            &unknown_option("so_bogus"),
            &getopt(s.as_fd(), "so_bogus").unwrap_err(),
        );
        let so_type = Opt::find("so_type").unwrap();
        same(&so_type.read_only(), &set_err(&s, "so_type", 1));
        let join = Opt::find("ip_add_membership").unwrap();
        same(
            &join.write_only(),
            &getopt(s.as_fd(), "ip_add_membership").unwrap_err(),
        );
        for (name, bad) in [
            ("tcp_nodelay", OptVal::from("yes")),
            ("tcp_nodelay", OptVal::Secs(1.5)),
            ("so_rcvbuf", OptVal::Secs(1.5)),
            ("so_rcvbuf", OptVal::Bool(true)),
            ("so_rcvtimeo", OptVal::from("1")),
            ("so_linger", OptVal::Bool(true)),
            ("so_linger", OptVal::from("off")),
            ("ip_multicast_if", OptVal::Int(1)),
            ("ip_add_membership", OptVal::Int(1)),
            ("ipv6_join_group", OptVal::Bool(false)),
        ] {
            let opt = Opt::find(name).unwrap();
            let e = opt.bad_value(&bad);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert_eq!(e.code(), 0);
            assert!(e.message().contains(opt.value_type().expected()), "{e}");
            same(&e, &set_err(&s, name, bad));
        }
    }

    #[test]
    fn unknown_name_lists_valid_names() {
        let e = lookup("so_bogus").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let m = e.message();
        assert!(m.contains("so_bogus"), "{m}");
        for n in names() {
            assert!(m.contains(n), "{n} not in {m}");
        }
    }

    #[test]
    fn optval_conversions_and_accessors() {
        assert_eq!(OptVal::from(true), OptVal::Bool(true));
        assert_eq!(OptVal::from(-3i32), OptVal::Int(-3));
        assert_eq!(OptVal::from(1i64 << 40), OptVal::Int(1 << 40));
        assert_eq!(OptVal::from(u32::MAX), OptVal::Int(u32::MAX.into()));
        assert_eq!(OptVal::from(0.25), OptVal::Secs(0.25));
        assert_eq!(OptVal::from(Duration::from_millis(1500)), OptVal::Secs(1.5));

        assert_eq!(OptVal::Bool(false).as_bool(), Some(false));
        assert_eq!(OptVal::Int(1).as_bool(), None);
        assert_eq!(OptVal::Int(7).as_int(), Some(7));
        assert_eq!(OptVal::Secs(7.0).as_int(), None);
        assert_eq!(OptVal::Secs(0.5).as_secs(), Some(0.5));
        assert_eq!(OptVal::Int(2).as_secs(), Some(2.0));
        assert_eq!(OptVal::Bool(true).as_secs(), None);
        assert_eq!(OptVal::Str("udp".into()).as_str(), Some("udp"));
        assert_eq!(OptVal::Int(0).as_str(), None);

        // Strings: borrowed statics and owned run-time strings compare by content.
        let borrowed = OptVal::from("239.255.0.1");
        assert!(matches!(
            borrowed,
            OptVal::Str(Cow::Borrowed("239.255.0.1"))
        ));
        let owned = OptVal::from(format!("239.255.0.{}", 1));
        assert!(matches!(&owned, OptVal::Str(Cow::Owned(s)) if s == "239.255.0.1"));
        assert_eq!(owned, borrowed);
        assert_eq!(owned.as_str(), Some("239.255.0.1"));
        assert_eq!(owned.as_int(), None);
    }

    #[test]
    fn group_values() {
        let any = Ipv4Addr::UNSPECIFIED;
        let g = Ipv4Addr::new(239, 255, 0, 1);
        let lo = Ipv4Addr::LOCALHOST;
        for (text, want) in [
            ("239.255.0.1", (g, any)),
            ("239.255.0.1 127.0.0.1", (g, lo)),
            ("239.255.0.1,127.0.0.1", (g, lo)),
            ("  239.255.0.1 ,\t127.0.0.1 ", (g, lo)),
            ("239.255.0.1 0.0.0.0", (g, any)),
            // Not multicast: left to the OS (EINVAL).
            ("10.1.2.3", (Ipv4Addr::new(10, 1, 2, 3), any)),
        ] {
            assert_eq!(
                group_arg("x", &OptVal::from(text)).unwrap(),
                want,
                "{text:?}"
            );
        }
        for (bad, named) in [
            ("", "\"\""),
            (" , ", "\" , \""),
            ("not-an-address", "not-an-address"),
            ("239.255.0.1 eth0", "eth0"),
            ("239.255.0.1 127.0.0.1 extra", "extra"),
            ("239.255.0.256", "239.255.0.256"),
            ("ff02::1", "ff02::1"),
        ] {
            let e = group_arg("ip_add_membership", &OptVal::from(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            let m = e.message();
            assert!(m.contains("ip_add_membership") && m.contains(named), "{m}");
        }
        for bad in [OptVal::Int(1), OptVal::Bool(true), OptVal::Secs(1.0)] {
            let e = group_arg("ip_add_membership", &bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            assert!(e.message().contains("string"), "{}", e.message());
        }
    }

    #[test]
    fn group6_values() {
        let g: Ipv6Addr = "ff02::1:3".parse().unwrap();
        for (text, want) in [
            ("ff02::1:3", (g, 0)),
            ("ff02::1:3 1", (g, 1)),
            ("ff02::1:3,2", (g, 2)),
            ("ff02::1:3 2147483647", (g, c_int::MAX as u32)),
        ] {
            assert_eq!(
                group6_arg("x", &OptVal::from(text)).unwrap(),
                want,
                "{text:?}"
            );
        }
        for (bad, named) in [
            ("", "\"\""),
            ("239.255.0.1", "239.255.0.1"),
            ("ff02::1:3 lo", "lo"),
            ("ff02::1:3 -1", "-1"),
            ("ff02::1:3 2147483648", "2147483648"),
            ("ff02::1:3 1 2", "1 2"),
            ("ff02::1:3%1", "ff02::1:3%1"),
        ] {
            let e = group6_arg("ipv6_join_group", &OptVal::from(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            let m = e.message();
            assert!(m.contains("ipv6_join_group") && m.contains(named), "{m}");
        }
        let e = group6_arg("ipv6_join_group", &OptVal::Int(1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn addr_values() {
        let v = OptVal::from(" 127.0.0.1 ");
        assert_eq!(addr_arg("x", &v).unwrap(), Ipv4Addr::LOCALHOST);
        for bad in ["", "localhost", "::1", "127.0.0.1 0.0.0.0"] {
            let e = addr_arg("ip_multicast_if", &OptVal::from(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            assert!(e.message().contains("ip_multicast_if"), "{}", e.message());
            assert!(e.message().contains(bad), "{}", e.message());
        }
        let e = addr_arg("ip_multicast_if", &OptVal::Int(0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn bool_values() {
        assert!(bool_arg("x", &OptVal::Bool(true)).unwrap());
        assert!(bool_arg("x", &OptVal::Int(-5)).unwrap());
        assert!(!bool_arg("x", &OptVal::Int(0)).unwrap());
        for bad in [OptVal::Secs(1.0), OptVal::Str("yes".into())] {
            assert_eq!(
                bool_arg("x", &bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
        }
    }

    #[test]
    fn int_values() {
        assert_eq!(int_arg("x", &OptVal::Int(-1)).unwrap(), -1);
        assert_eq!(
            int_arg("x", &OptVal::Int(c_int::MAX.into())).unwrap(),
            c_int::MAX
        );
        for bad in [
            OptVal::Bool(true),
            OptVal::Secs(1.0),
            OptVal::Str("1".into()),
            OptVal::Int(i64::from(c_int::MAX) + 1),
            OptVal::Int(i64::from(c_int::MIN) - 1),
        ] {
            let e = int_arg("so_rcvbuf", &bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains("so_rcvbuf"), "{}", e.message());
        }
    }

    #[test]
    fn secs_values() {
        assert_eq!(
            secs_arg("x", &OptVal::Int(3)).unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(
            secs_arg("x", &OptVal::Secs(1.25)).unwrap(),
            Duration::from_millis(1250)
        );
        assert_eq!(secs_arg("x", &OptVal::Secs(0.0)).unwrap(), Duration::ZERO);
        for bad in [
            OptVal::Int(-1),
            OptVal::Secs(-0.5),
            OptVal::Secs(f64::NAN),
            OptVal::Secs(f64::INFINITY),
            OptVal::Bool(true),
            OptVal::Str("1".into()),
        ] {
            let e = secs_arg("x", &bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn linger_values() {
        assert_eq!(linger_arg("x", &OptVal::Bool(false)).unwrap(), None);
        assert_eq!(linger_arg("x", &OptVal::Int(0)).unwrap(), Some(0));
        assert_eq!(linger_arg("x", &OptVal::Int(5)).unwrap(), Some(5));
        assert_eq!(linger_arg("x", &OptVal::Secs(0.0)).unwrap(), Some(0));
        assert_eq!(linger_arg("x", &OptVal::Secs(0.1)).unwrap(), Some(1));
        assert_eq!(linger_arg("x", &OptVal::Secs(2.0)).unwrap(), Some(2));
        for bad in [
            OptVal::Bool(true),
            OptVal::Int(-1),
            OptVal::Int(i64::from(c_int::MAX) + 1),
            OptVal::Secs(-1.0),
            OptVal::Secs(f64::NAN),
            OptVal::Str("off".into()),
        ] {
            let e = linger_arg("x", &bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    // ---- on real sockets --------------------------------------------------

    fn tcp4() -> Socket {
        Socket::new(Domain::IPV4, Type::STREAM, None).unwrap()
    }

    fn get(s: &Socket, name: &str) -> OptVal {
        getopt(s.as_fd(), name).unwrap_or_else(|e| panic!("getopt {name}: {e}"))
    }

    fn set(s: &Socket, name: &str, val: impl Into<OptVal>) {
        let val = val.into();
        setopt(s.as_fd(), name, &val).unwrap_or_else(|e| panic!("setopt {name} {val:?}: {e}"));
    }

    fn set_err(s: &Socket, name: &str, val: impl Into<OptVal>) -> Error {
        setopt(s.as_fd(), name, &val.into()).unwrap_err()
    }

    #[test]
    fn bool_options_round_trip_on_tcp4() {
        let s = tcp4();
        let mut bools = vec![
            "so_reuseaddr",
            "so_keepalive",
            "so_broadcast",
            "so_dontroute",
            "so_oobinline",
            "tcp_nodelay",
        ];
        if cfg!(target_os = "linux") {
            bools.extend(["so_reuseport", "tcp_cork", "tcp_quickack"]);
        }
        for name in bools {
            set(&s, name, true);
            assert_eq!(get(&s, name), OptVal::Bool(true), "{name}");
            set(&s, name, false);
            assert_eq!(get(&s, name), OptVal::Bool(false), "{name}");
            set(&s, name, 7); // Int: non-zero is true
            assert_eq!(get(&s, name), OptVal::Bool(true), "{name}");
            set(&s, name, 0);
            assert_eq!(get(&s, name), OptVal::Bool(false), "{name}");
        }
    }

    #[test]
    fn int_options_round_trip_on_tcp4() {
        let s = tcp4();
        let mut ints = vec![("ip_ttl", 42), ("ip_tos", 0x10), ("tcp_maxseg", 1000)];
        if cfg!(target_os = "linux") {
            ints.extend([
                ("so_rcvlowat", 16),
                ("so_priority", 3),
                ("tcp_keepidle", 60),
                ("tcp_keepintvl", 10),
                ("tcp_keepcnt", 5),
                ("tcp_user_timeout", 5000),
            ]);
        }
        for (name, n) in ints {
            set(&s, name, n);
            assert_eq!(get(&s, name), OptVal::Int(n.into()), "{name}");
        }
    }

    #[test]
    fn buffer_sizes() {
        let s = tcp4();
        for name in ["so_rcvbuf", "so_sndbuf"] {
            set(&s, name, 8192);
            let got = get(&s, name).as_int().unwrap();
            if cfg!(target_os = "linux") {
                assert_eq!(got, 16384, "{name}: Linux doubles the value set");
            } else {
                assert!(got >= 8192, "{name}: {got}");
            }
        }
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "Linux behavior")]
    fn sndlowat_is_fixed_on_linux() {
        let s = tcp4();
        assert_eq!(get(&s, "so_sndlowat"), OptVal::Int(1));
        assert_eq!(
            set_err(&s, "so_sndlowat", 4096).kind(),
            ErrorKind::NotSupported
        );
    }

    #[test]
    fn ipv6_options() {
        let Ok(s) = Socket::new(Domain::IPV6, Type::STREAM, None) else {
            eprintln!("no IPv6 here: skipped");
            return;
        };
        set(&s, "ipv6_v6only", true);
        assert_eq!(get(&s, "ipv6_v6only"), OptVal::Bool(true));
        set(&s, "ipv6_v6only", false);
        assert_eq!(get(&s, "ipv6_v6only"), OptVal::Bool(false));
        set(&s, "ipv6_unicast_hops", 17);
        assert_eq!(get(&s, "ipv6_unicast_hops"), OptVal::Int(17));
        if cfg!(target_os = "linux") {
            assert_eq!(get(&s, "so_domain"), OptVal::Str("inet6".into()));
            // An IPv6-level option on an IPv4 socket.
            let e = set_err(&tcp4(), "ipv6_unicast_hops", 17);
            assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
        }
    }

    #[test]
    #[cfg_attr(
        not(target_os = "linux"),
        ignore = "so_domain/so_protocol are Linux only"
    )]
    fn read_only_names() {
        let tcp = tcp4();
        assert_eq!(get(&tcp, "so_type"), OptVal::Str("tcp".into()));
        assert_eq!(get(&tcp, "so_domain"), OptVal::Str("inet".into()));
        assert_eq!(get(&tcp, "so_protocol"), OptVal::Str("tcp".into()));
        assert_eq!(get(&tcp, "so_acceptconn"), OptVal::Bool(false));

        // Names are the static strings of the table, not copies.
        assert!(matches!(
            get(&tcp, "so_type"),
            OptVal::Str(Cow::Borrowed("tcp"))
        ));

        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        assert_eq!(get(&udp, "so_type"), OptVal::Str("udp".into()));
        assert_eq!(get(&udp, "so_domain"), OptVal::Str("inet".into()));
        assert_eq!(get(&udp, "so_protocol"), OptVal::Str("udp".into()));
        assert_eq!(get(&udp, "so_acceptconn"), OptVal::Bool(false));

        let listener = tcp4();
        listener
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        listener.listen(8).unwrap();
        assert_eq!(get(&listener, "so_acceptconn"), OptVal::Bool(true));
        assert_eq!(get(&listener, "so_type"), OptVal::Str("tcp".into()));

        let unix = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        assert_eq!(get(&unix, "so_type"), OptVal::Str("seqpacket".into()));
        assert_eq!(get(&unix, "so_domain"), OptVal::Str("unix".into()));
        assert_eq!(get(&unix, "so_protocol"), OptVal::Int(0));

        let explicit = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        assert_eq!(get(&explicit, "so_protocol"), OptVal::Str("tcp".into()));
    }

    #[test]
    fn so_error_after_refused_connect_reads_once() {
        // A bound but not listening port refuses connections; keeping it bound
        // keeps anyone else from taking it during the test.
        let closed = tcp4();
        closed
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        let addr: SockAddr = closed.local_addr().unwrap();

        let s = tcp4();
        assert_eq!(get(&s, "so_error"), OptVal::Int(0));
        s.set_nonblocking(true).unwrap();
        match s.connect(&addr) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            other => panic!("expected EINPROGRESS, got {other:?}"),
        }
        // Reading 0 while the connect is pending consumes nothing: poll with it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            let err = get(&s, "so_error");
            if err != OptVal::Int(0) || Instant::now() > deadline {
                break err;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_eq!(err, OptVal::Int(libc::ECONNREFUSED.into()));
        assert_eq!(get(&s, "so_error"), OptVal::Int(0), "reading clears it");
    }

    #[test]
    fn linger_on_off_and_reset() {
        let s = tcp4();
        assert_eq!(get(&s, "so_linger"), OptVal::Bool(false));
        set(&s, "so_linger", 5);
        assert_eq!(get(&s, "so_linger"), OptVal::Int(5));
        set(&s, "so_linger", 0);
        assert_eq!(get(&s, "so_linger"), OptVal::Int(0));
        set(&s, "so_linger", 2.5);
        assert_eq!(get(&s, "so_linger"), OptVal::Int(3));
        set(&s, "so_linger", false);
        assert_eq!(get(&s, "so_linger"), OptVal::Bool(false));
        assert_eq!(
            set_err(&s, "so_linger", true).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            set_err(&s, "so_linger", -1).kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn timeouts_in_seconds() {
        let s = tcp4();
        for name in ["so_rcvtimeo", "so_sndtimeo"] {
            assert_eq!(get(&s, name), OptVal::Secs(0.0), "{name}: none by default");
            for want in [1.25, 0.5, 3.0] {
                set(&s, name, want);
                let got = get(&s, name).as_secs().unwrap();
                // Linux rounds to its clock tick (1 to 10 ms).
                assert!((got - want).abs() <= 0.011, "{name}: set {want}, got {got}");
            }
            set(&s, name, 2); // Int seconds
            let got = get(&s, name).as_secs().unwrap();
            assert!((got - 2.0).abs() <= 0.011, "{name}: {got}");
            set(&s, name, 0.0);
            assert_eq!(get(&s, name), OptVal::Secs(0.0), "{name}: 0 is none");
            // A tiny non-zero time is not "none".
            set(&s, name, 1e-9);
            assert!(get(&s, name).as_secs().unwrap() > 0.0, "{name}");
            assert_eq!(set_err(&s, name, -0.5).kind(), ErrorKind::InvalidArgument);
            assert_eq!(set_err(&s, name, -1).kind(), ErrorKind::InvalidArgument);
            assert_eq!(set_err(&s, name, true).kind(), ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn tcp_option_on_udp_is_not_supported() {
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let e = set_err(&udp, "tcp_nodelay", true);
        assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
        assert_ne!(e.code(), 0);
        let e = getopt(udp.as_fd(), "tcp_nodelay").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
    }

    #[test]
    fn errors_before_the_os() {
        let s = tcp4();
        let e = set_err(&s, "so_bogus", 1);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("so_bogus") && e.message().contains("tcp_nodelay"));
        let e = getopt(s.as_fd(), "SO_RCVBUF").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);

        for name in [
            "so_error",
            "so_type",
            "so_acceptconn",
            "so_domain",
            "so_protocol",
        ] {
            let e = set_err(&s, name, 1);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}");
            assert!(e.message().contains("read-only"), "{name}: {}", e.message());
        }

        assert_eq!(
            set_err(&s, "so_rcvbuf", true).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            set_err(&s, "so_rcvbuf", 1.5).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            set_err(&s, "so_rcvbuf", 1i64 << 40).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            set_err(&s, "tcp_nodelay", 1.0).kind(),
            ErrorKind::InvalidArgument
        );
        let e = setopt(s.as_fd(), "tcp_nodelay", &OptVal::Str("yes".into())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    // ---- multicast, on UDP sockets -----------------------------------------

    fn udp4() -> Socket {
        Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap()
    }

    /// A UDP socket of family `inet6`, or `None` (and a note) without IPv6.
    fn udp6() -> Option<Socket> {
        match Socket::new(Domain::IPV6, Type::DGRAM, None) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("skipped: no IPv6 socket here ({e})");
                None
            }
        }
    }

    fn get_err(s: &Socket, name: &str) -> Error {
        getopt(s.as_fd(), name).unwrap_err()
    }

    /// Checks an error that the OS may give when this host cannot do multicast
    /// (no multicast route, no such interface): an OS error with its `errno`
    /// normalized. Returns whether the error is one of those; panics otherwise.
    fn refused_by_the_host(e: &Error, what: &str) -> bool {
        let expected = match e.code() {
            libc::ENODEV => ErrorKind::Other,
            libc::EADDRNOTAVAIL => ErrorKind::AddressNotAvailable,
            _ => panic!("{what}: unexpected error {e} (errno {})", e.code()),
        };
        assert_eq!(e.kind(), expected, "{what}: {e}");
        eprintln!(
            "skipped: {what}: the kernel refused with {} (errno {}): no multicast route or interface here",
            e.kind(),
            e.code()
        );
        true
    }

    #[test]
    fn ipv4_multicast_options_round_trip() {
        let s = udp4();
        assert_eq!(get(&s, "ip_multicast_loop"), OptVal::Bool(true), "default");
        set(&s, "ip_multicast_loop", false);
        assert_eq!(get(&s, "ip_multicast_loop"), OptVal::Bool(false));
        set(&s, "ip_multicast_loop", 1);
        assert_eq!(get(&s, "ip_multicast_loop"), OptVal::Bool(true));

        assert_eq!(get(&s, "ip_multicast_ttl"), OptVal::Int(1), "default");
        for ttl in [0, 32, 255] {
            set(&s, "ip_multicast_ttl", ttl);
            assert_eq!(get(&s, "ip_multicast_ttl"), OptVal::Int(ttl.into()));
        }
        let e = set_err(&s, "ip_multicast_ttl", 256);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(e.code(), libc::EINVAL, "the OS checks the range");
        if cfg!(target_os = "linux") {
            set(&s, "ip_multicast_ttl", -1);
            assert_eq!(get(&s, "ip_multicast_ttl"), OptVal::Int(1), "-1 is 1");
        }

        let unset = get(&s, "ip_multicast_if");
        assert_eq!(unset, OptVal::from("0.0.0.0"));
        assert!(matches!(unset, OptVal::Str(Cow::Owned(_))), "{unset:?}");
        set(&s, "ip_multicast_if", "127.0.0.1");
        assert_eq!(get(&s, "ip_multicast_if").as_str(), Some("127.0.0.1"));
        set(&s, "ip_multicast_if", String::from("0.0.0.0"));
        assert_eq!(get(&s, "ip_multicast_if").as_str(), Some("0.0.0.0"));
        // An address that no interface of this host has (TEST-NET-3).
        let e = set_err(&s, "ip_multicast_if", "203.0.113.7");
        assert_eq!(e.kind(), ErrorKind::AddressNotAvailable, "{e}");
        for bad in [OptVal::from("lo"), OptVal::from("::1"), OptVal::Int(1)] {
            let e = set_err(&s, "ip_multicast_if", bad.clone());
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
            assert_eq!(e.code(), 0, "{bad:?}: rejected before the OS");
        }
        let e = set_err(&s, "ip_multicast_loop", "yes");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = set_err(&s, "ip_multicast_ttl", 1.5);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn ipv6_multicast_options_round_trip() {
        let Some(s) = udp6() else { return };
        assert_eq!(
            get(&s, "ipv6_multicast_loop"),
            OptVal::Bool(true),
            "default"
        );
        set(&s, "ipv6_multicast_loop", false);
        assert_eq!(get(&s, "ipv6_multicast_loop"), OptVal::Bool(false));
        set(&s, "ipv6_multicast_loop", true);
        assert_eq!(get(&s, "ipv6_multicast_loop"), OptVal::Bool(true));

        assert_eq!(get(&s, "ipv6_multicast_hops"), OptVal::Int(1), "default");
        for hops in [0, 7, 255] {
            set(&s, "ipv6_multicast_hops", hops);
            assert_eq!(get(&s, "ipv6_multicast_hops"), OptVal::Int(hops.into()));
        }
        set(&s, "ipv6_multicast_hops", -1);
        assert_eq!(
            get(&s, "ipv6_multicast_hops"),
            OptVal::Int(1),
            "-1: default"
        );
        let e = set_err(&s, "ipv6_multicast_hops", 256);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

        assert_eq!(get(&s, "ipv6_multicast_if"), OptVal::Int(0), "default");
        let lo = LOOPBACK_INDEX;
        set(&s, "ipv6_multicast_if", lo);
        assert_eq!(get(&s, "ipv6_multicast_if"), OptVal::Int(lo.into()));
        set(&s, "ipv6_multicast_if", 0);
        assert_eq!(get(&s, "ipv6_multicast_if"), OptVal::Int(0));
        let e = set_err(&s, "ipv6_multicast_if", "1");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);

        if cfg!(target_os = "linux") {
            // An IPv6-level option on an IPv4 socket.
            let e = set_err(&udp4(), "ipv6_multicast_hops", 3);
            assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
        }
    }

    /// The index of the loopback interface: `lo` is always 1 in a Linux network
    /// namespace (and `lo0` is 1 on the BSDs and macOS, as a rule).
    const LOOPBACK_INDEX: u32 = 1;

    #[test]
    fn ip_add_and_drop_membership() {
        // The interface by its address, the "any" interface explicitly, and the
        // default (any), separated by a space or a comma.
        for (join, iface) in [
            ("239.255.0.1 127.0.0.1", "127.0.0.1"),
            ("239.255.0.1,0.0.0.0", "0.0.0.0"),
            ("239.255.0.1", "0.0.0.0 (default)"),
        ] {
            let s = udp4();
            let what = format!("ip_add_membership 239.255.0.1 on {iface}");
            // A run-time string, as a user's group would be.
            match setopt(
                s.as_fd(),
                "ip_add_membership",
                &OptVal::from(join.to_string()),
            ) {
                Ok(_) => {}
                Err(e) => {
                    refused_by_the_host(&e, &what);
                    continue;
                }
            }
            // Joining twice on the same interface.
            let e = set_err(&s, "ip_add_membership", join);
            assert_eq!(
                e.kind(),
                ErrorKind::AddressAlreadyInUse,
                "{what} twice: {e}"
            );
            set(&s, "ip_drop_membership", join);
            // Now it is not joined any more.
            let e = set_err(&s, "ip_drop_membership", join);
            assert_eq!(e.kind(), ErrorKind::AddressNotAvailable, "{what}: {e}");
            assert_eq!(e.code(), libc::EADDRNOTAVAIL);
        }
    }

    #[test]
    fn ip_drop_membership_not_joined() {
        let s = udp4();
        let e = set_err(&s, "ip_drop_membership", "239.255.0.2 127.0.0.1");
        assert_eq!(e.kind(), ErrorKind::AddressNotAvailable, "{e}");
        assert_eq!(e.code(), libc::EADDRNOTAVAIL);
    }

    #[test]
    fn ipv6_join_and_leave_group() {
        let Some(s) = udp6() else { return };
        let join = format!("ff02::1:3 {LOOPBACK_INDEX}");
        let what = format!("ipv6_join_group {join}");
        match setopt(s.as_fd(), "ipv6_join_group", &OptVal::from(join.clone())) {
            Ok(_) => {
                let e = set_err(&s, "ipv6_join_group", join.clone());
                assert_eq!(
                    e.kind(),
                    ErrorKind::AddressAlreadyInUse,
                    "{what} twice: {e}"
                );
                set(&s, "ipv6_leave_group", join.clone());
                let e = set_err(&s, "ipv6_leave_group", join);
                assert_eq!(e.kind(), ErrorKind::AddressNotAvailable, "{what}: {e}");
            }
            Err(e) => {
                refused_by_the_host(&e, &what);
            }
        }
        // Never joined.
        let e = set_err(&s, "ipv6_leave_group", "ff02::1:4 1");
        assert_eq!(e.kind(), ErrorKind::AddressNotAvailable, "{e}");
    }

    #[test]
    fn multicast_errors() {
        let s = udp4();
        // Not an address, or the wrong family: ours, before the OS, naming it.
        for (bad, named) in [
            ("not-an-address", "not-an-address"),
            ("239.255.0.1 nowhere", "nowhere"),
            ("ff02::1:3", "ff02::1:3"),
        ] {
            for name in ["ip_add_membership", "ip_drop_membership"] {
                let e = set_err(&s, name, bad);
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name} {bad:?}");
                assert_eq!(e.code(), 0, "{name} {bad:?}: {e}");
                assert!(e.message().contains(named), "{}", e.message());
            }
        }
        // A unicast group: the OS says EINVAL.
        let e = set_err(&s, "ip_add_membership", "10.1.2.3 127.0.0.1");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(e.code(), libc::EINVAL, "{e}");
        // The wrong value type.
        for bad in [OptVal::Int(1), OptVal::Bool(true), OptVal::Secs(0.5)] {
            let e = set_err(&s, "ip_add_membership", bad.clone());
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            let e = set_err(&s, "ipv6_join_group", bad.clone());
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        // Write-only options cannot be read.
        for name in [
            "ip_add_membership",
            "ip_drop_membership",
            "ipv6_join_group",
            "ipv6_leave_group",
        ] {
            let e = get_err(&s, name);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}");
            assert!(
                e.message().contains("write-only"),
                "{name}: {}",
                e.message()
            );
            assert!(e.message().contains(name), "{}", e.message());
        }

        if let Some(s6) = udp6() {
            for bad in ["239.255.0.1", "ff02::1:3 lo", "ff02::1:3 -1"] {
                let e = set_err(&s6, "ipv6_join_group", bad);
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
                assert_eq!(e.code(), 0, "{bad:?}: {e}");
            }
            // A unicast group: the OS says EINVAL.
            let e = set_err(&s6, "ipv6_join_group", "::1 1");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert_eq!(e.code(), libc::EINVAL, "{e}");
            let e = get_err(&s6, "ipv6_leave_group");
            assert!(e.message().contains("write-only"), "{}", e.message());
        }
    }

    #[test]
    fn os_range_errors_keep_errno() {
        let s = tcp4();
        let e = set_err(&s, "ip_ttl", 1000);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.code(), libc::EINVAL);
    }
}
