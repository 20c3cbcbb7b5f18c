//! Address lookup: host names, ports and socket addresses.
//!
//! This module mirrors the "address lookup" part of the Lua API:
//!
//! | Lua                    | Rust                                              |
//! |------------------------|---------------------------------------------------|
//! | `sock.addr(...) -> ai` | [`addr`], [`addr_with`]                           |
//! | `ai:next()`, `ai:addrs()` | [`AddrList::get`], [`AddrList::addrs`]         |
//! | `ai:type()`, `ai:family()`, `ai:protocol()` | [`AddrInfo::socket_type`], [`AddrInfo::family`], [`AddrInfo::protocol`] |
//! | `ai:name()`            | [`AddrInfo::name`]                                |
//! | `ai:tostring()`        | [`AddrInfo::tostring`] (and `Display`)            |
//! | `ai.addr`              | [`AddrInfo::addr`] ([`SockAddr`])                 |
//! | `sa:family()`, `sa:port()`, `sa:addr()`, `sa:tostring()` | [`SockAddr::family`], [`SockAddr::port`], [`SockAddr::ip`], [`SockAddr::tostring`] |
//! | `ip:tobinary()`, `ip:tostring()` | [`Ip::tobinary`], [`Ip::tostring`]      |
//! | `ai:free()`            | dropping the [`AddrList`]                         |
//!
//! The lookup itself is `getaddrinfo(3)`: the host can be a name (resolved through
//! `/etc/hosts`, DNS, ...), a numeric IPv4 or IPv6 address, or `"*"` for "all
//! interfaces"; the port can be a number, a service name (`"http"`) or 0 for "any
//! port". The optional [`Hints`] restrict the socket type, the family and the
//! protocol of the results and pass [`AddrFlags`] to the resolver.
//!
//! Every API that takes a host and a port also takes an already resolved address:
//! see [`ToAddr`].
//!
//! [`addr`] and [`addr_with`] call `getaddrinfo` on the calling OS thread, which
//! it blocks while it resolves a name that needs the network. Inside a sock
//! thread use [`resolve`](crate::resolve): the lookup runs on the resolver
//! pool, under a deadline, and parks only the calling thread.
//!
//! ```
//! let list = sock::addr("127.0.0.1", 8080)?;
//! let ai = list.first();
//! assert_eq!(ai.family(), sock::Family::Inet);
//! assert_eq!(ai.addr().port(), 8080);
//! assert_eq!(ai.to_string(), "127.0.0.1:8080");
//! # Ok::<(), sock::Error>(())
//! ```
#![deny(missing_docs)]

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{BitOr, BitOrAssign};
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::addr as sys;

/// The `invalid_argument` error for a name that is not one of `valid`.
fn invalid_name<'a>(what: &str, name: &str, valid: impl Iterator<Item = &'a str>) -> Error {
    let valid: Vec<&str> = valid.collect();
    Error::with_message(
        ErrorKind::InvalidArgument,
        format!(
            "invalid {what} '{name}' (expected one of: {})",
            valid.join(", ")
        ),
    )
}

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $name:literal => $raw:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $ty {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $ty {
            #[doc = concat!("Every ", $what, ", in declaration order.")]
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            #[doc = concat!("The name of this ", $what, ", as used by the Lua API ",
                "(and by [`FromStr`] and [`Display`](fmt::Display)).")]
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }

            /// The value of the OS constant, or `None` if it is not one of ours.
            pub(crate) fn from_raw(raw: i32) -> Option<Self> {
                $(if raw == $raw {
                    return Some($ty::$variant);
                })*
                None
            }

            /// The OS constant.
            pub(crate) fn to_raw(self) -> i32 {
                match self {
                    $($ty::$variant => $raw,)*
                }
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            #[doc = concat!("Parses a ", $what, " name (ASCII case-insensitive); ",
                "any other string is an `invalid_argument` error naming the valid values.")]
            fn from_str(s: &str) -> Result<Self> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| invalid_name($what, s, $ty::ALL.iter().map(|v| v.name())))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }
    };
}

named_enum! {
    /// A socket type: `"tcp"` (stream), `"udp"` (datagram) or `"raw"`.
    ///
    /// ```
    /// use sock::SocketType;
    /// assert_eq!("udp".parse::<SocketType>()?, SocketType::Udp);
    /// assert_eq!(SocketType::Tcp.name(), "tcp");
    /// assert_eq!(SocketType::Raw.to_string(), "raw");
    /// assert_eq!("sctp".parse::<SocketType>().unwrap_err().name(), "invalid_argument");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub enum SocketType ("socket type") {
        /// A stream socket (`SOCK_STREAM`); named after its usual protocol.
        Tcp = "tcp" => sys::SOCK_STREAM,
        /// A datagram socket (`SOCK_DGRAM`); named after its usual protocol.
        Udp = "udp" => sys::SOCK_DGRAM,
        /// A raw socket (`SOCK_RAW`).
        Raw = "raw" => sys::SOCK_RAW,
    }
}

named_enum! {
    /// An address family: `"inet"` (IPv4), `"inet6"` (IPv6) or `"unix"`.
    ///
    /// ```
    /// use sock::Family;
    /// assert_eq!("inet6".parse::<Family>()?, Family::Inet6);
    /// assert_eq!(Family::Unix.name(), "unix");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub enum Family ("address family") {
        /// IPv4 (`AF_INET`).
        Inet = "inet" => sys::AF_INET,
        /// IPv6 (`AF_INET6`).
        Inet6 = "inet6" => sys::AF_INET6,
        /// Unix-domain sockets (`AF_UNIX`): filesystem paths and, on Linux,
        /// abstract names.
        Unix = "unix" => sys::AF_UNIX,
    }
}

named_enum! {
    /// A protocol: `"ip"`, `"ipv6"`, `"tcp"`, `"udp"`, `"raw"`, `"icmp"`, `"igmp"`
    /// or `"icmpv6"` (the `IPPROTO_*` constants).
    ///
    /// When none is given, the protocol follows the socket type: see
    /// [`Protocol::default_for`].
    ///
    /// ```
    /// use sock::{Protocol, SocketType};
    /// assert_eq!("icmpv6".parse::<Protocol>()?, Protocol::Icmpv6);
    /// assert_eq!(Protocol::default_for(SocketType::Udp), Protocol::Udp);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub enum Protocol ("protocol") {
        /// `IPPROTO_IP` (0, which also means "the default protocol").
        Ip = "ip" => sys::IPPROTO_IP,
        /// `IPPROTO_IPV6`.
        Ipv6 = "ipv6" => sys::IPPROTO_IPV6,
        /// `IPPROTO_TCP`.
        Tcp = "tcp" => sys::IPPROTO_TCP,
        /// `IPPROTO_UDP`.
        Udp = "udp" => sys::IPPROTO_UDP,
        /// `IPPROTO_RAW`.
        Raw = "raw" => sys::IPPROTO_RAW,
        /// `IPPROTO_ICMP`.
        Icmp = "icmp" => sys::IPPROTO_ICMP,
        /// `IPPROTO_IGMP`.
        Igmp = "igmp" => sys::IPPROTO_IGMP,
        /// `IPPROTO_ICMPV6`.
        Icmpv6 = "icmpv6" => sys::IPPROTO_ICMPV6,
    }
}

impl Protocol {
    /// The protocol used when none is given: tcp for [`SocketType::Tcp`], udp for
    /// [`SocketType::Udp`] and raw for [`SocketType::Raw`].
    ///
    /// ```
    /// use sock::{Protocol, SocketType};
    /// assert_eq!(Protocol::default_for(SocketType::Tcp), Protocol::Tcp);
    /// assert_eq!(Protocol::default_for(SocketType::Raw), Protocol::Raw);
    /// ```
    pub const fn default_for(socket_type: SocketType) -> Protocol {
        match socket_type {
            SocketType::Tcp => Protocol::Tcp,
            SocketType::Udp => Protocol::Udp,
            SocketType::Raw => Protocol::Raw,
        }
    }
}

/// Flags for the resolver (`getaddrinfo`'s `AI_*` flags), combined with `|`.
///
/// ```
/// use sock::AddrFlags;
/// let f = AddrFlags::PASSIVE | AddrFlags::NUMERICHOST;
/// assert!(f.contains(AddrFlags::PASSIVE));
/// assert!(!f.contains(AddrFlags::CANONNAME));
/// assert_eq!(AddrFlags::from_names("passive, numerichost")?, f);
/// assert_eq!(format!("{f:?}"), "AddrFlags(passive | numerichost)");
/// # Ok::<(), sock::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AddrFlags(u32);

impl AddrFlags {
    /// `AI_PASSIVE`: the address is for `bind`; with the host `"*"` it gives the
    /// wildcard address (`0.0.0.0`, `::`). Implied by the host `"*"`.
    pub const PASSIVE: AddrFlags = AddrFlags(1 << 0);
    /// `AI_CANONNAME`: report the canonical name of the host in
    /// [`AddrInfo::name`] of the first entry.
    pub const CANONNAME: AddrFlags = AddrFlags(1 << 1);
    /// `AI_NUMERICHOST`: the host must be a numeric address; never query a
    /// name server.
    pub const NUMERICHOST: AddrFlags = AddrFlags(1 << 2);
    /// `AI_NUMERICSERV`: the port must be numeric; never look up a service name.
    pub const NUMERICSERV: AddrFlags = AddrFlags(1 << 3);
    /// `AI_ALL`: with [`V4MAPPED`](AddrFlags::V4MAPPED), return both IPv6 and
    /// v4-mapped IPv4 addresses.
    pub const ALL: AddrFlags = AddrFlags(1 << 4);
    /// `AI_V4MAPPED`: with family inet6, return IPv4 addresses as v4-mapped
    /// IPv6 addresses (`::ffff:a.b.c.d`) when there is no IPv6 address.
    pub const V4MAPPED: AddrFlags = AddrFlags(1 << 5);
    /// `AI_ADDRCONFIG`: return IPv4 (IPv6) addresses only if the machine has a
    /// non-loopback IPv4 (IPv6) address configured.
    pub const ADDRCONFIG: AddrFlags = AddrFlags(1 << 6);

    const TABLE: [(AddrFlags, &'static str, i32); 7] = [
        (AddrFlags::PASSIVE, "passive", sys::AI_PASSIVE),
        (AddrFlags::CANONNAME, "canonname", sys::AI_CANONNAME),
        (AddrFlags::NUMERICHOST, "numerichost", sys::AI_NUMERICHOST),
        (AddrFlags::NUMERICSERV, "numericserv", sys::AI_NUMERICSERV),
        (AddrFlags::ALL, "all", sys::AI_ALL),
        (AddrFlags::V4MAPPED, "v4mapped", sys::AI_V4MAPPED),
        (AddrFlags::ADDRCONFIG, "addrconfig", sys::AI_ADDRCONFIG),
    ];

    /// No flag.
    ///
    /// ```
    /// assert!(sock::AddrFlags::empty().is_empty());
    /// ```
    pub const fn empty() -> AddrFlags {
        AddrFlags(0)
    }

    /// Whether no flag is set.
    ///
    /// ```
    /// assert!(!sock::AddrFlags::ALL.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set in `self`.
    ///
    /// ```
    /// use sock::AddrFlags;
    /// let f = AddrFlags::V4MAPPED | AddrFlags::ALL;
    /// assert!(f.contains(AddrFlags::ALL));
    /// assert!(f.contains(AddrFlags::V4MAPPED | AddrFlags::ALL));
    /// assert!(!f.contains(AddrFlags::ALL | AddrFlags::PASSIVE));
    /// ```
    pub const fn contains(self, other: AddrFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses flag names separated by spaces and/or commas: `passive`,
    /// `canonname` (also spelled `cannonname`, as in the Lua documentation),
    /// `numerichost`, `numericserv`, `all`, `v4mapped`, `addrconfig` (ASCII
    /// case-insensitive). An empty string gives no flag. An unknown name is an
    /// `invalid_argument` error listing the valid names.
    ///
    /// ```
    /// use sock::AddrFlags;
    /// let f = AddrFlags::from_names("v4mapped all")?;
    /// assert_eq!(f, AddrFlags::V4MAPPED | AddrFlags::ALL);
    /// assert_eq!(AddrFlags::from_names("cannonname")?, AddrFlags::CANONNAME);
    /// let err = AddrFlags::from_names("passive,bogus").unwrap_err();
    /// assert_eq!(err.name(), "invalid_argument");
    /// assert!(err.message().contains("numerichost"));
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn from_names(s: &str) -> Result<AddrFlags> {
        let mut flags = AddrFlags::empty();
        for word in s.split(|c: char| c == ',' || c.is_whitespace()) {
            if word.is_empty() {
                continue;
            }
            if word.eq_ignore_ascii_case("cannonname") {
                flags |= AddrFlags::CANONNAME;
                continue;
            }
            match Self::TABLE
                .iter()
                .find(|(_, name, _)| name.eq_ignore_ascii_case(word))
            {
                Some(&(flag, _, _)) => flags |= flag,
                None => {
                    return Err(invalid_name(
                        "address flag",
                        word,
                        Self::TABLE.iter().map(|&(_, name, _)| name),
                    ))
                }
            }
        }
        Ok(flags)
    }

    /// The names of the flags that are set, in the order of [`from_names`](Self::from_names).
    fn names(self) -> impl Iterator<Item = &'static str> {
        Self::TABLE
            .iter()
            .filter(move |&&(flag, _, _)| self.contains(flag))
            .map(|&(_, name, _)| name)
    }

    /// The `AI_*` bits for `getaddrinfo`.
    pub(crate) fn to_raw(self) -> i32 {
        Self::TABLE
            .iter()
            .filter(|&&(flag, _, _)| self.contains(flag))
            .fold(0, |acc, &(_, _, raw)| acc | raw)
    }

    /// The flags of the OS's `AI_*` bits OR-ed together (the numeric form the
    /// original library's `glue.bor()` produced); `invalid_argument` for a bit
    /// that is none of them.
    ///
    /// ```
    /// use sock::AddrFlags;
    /// let f = AddrFlags::from_raw(libc::AI_PASSIVE | libc::AI_NUMERICHOST).unwrap();
    /// assert_eq!(f, AddrFlags::PASSIVE | AddrFlags::NUMERICHOST);
    /// assert_eq!(AddrFlags::from_raw(0).unwrap(), AddrFlags::empty());
    /// assert_eq!(AddrFlags::from_raw(1 << 20).unwrap_err().name(), "invalid_argument");
    /// ```
    pub fn from_raw(raw: i32) -> Result<AddrFlags> {
        let mut flags = AddrFlags::empty();
        let mut left = raw;
        for &(flag, _, bits) in &Self::TABLE {
            if raw & bits == bits && bits != 0 {
                flags |= flag;
                left &= !bits;
            }
        }
        if left != 0 {
            let msg = format!("unknown address flag bits {left:#x} (in {raw:#x})");
            return Err(Error::with_message(ErrorKind::InvalidArgument, msg));
        }
        Ok(flags)
    }
}

impl BitOr for AddrFlags {
    type Output = AddrFlags;

    fn bitor(self, rhs: AddrFlags) -> AddrFlags {
        AddrFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for AddrFlags {
    fn bitor_assign(&mut self, rhs: AddrFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for AddrFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddrFlags(")?;
        let mut first = true;
        for name in self.names() {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        f.write_str(")")
    }
}

/// The flag names separated by spaces (what [`AddrFlags::from_names`] parses).
impl fmt::Display for AddrFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().collect();
        f.pad(&names.join(" "))
    }
}

/// Parses with [`AddrFlags::from_names`].
impl FromStr for AddrFlags {
    type Err = Error;

    fn from_str(s: &str) -> Result<AddrFlags> {
        AddrFlags::from_names(s)
    }
}

/// What to look for: the optional socket type, family and protocol of the
/// results, and the resolver flags. `None` means "all" (0 for `getaddrinfo`).
///
/// Sockets pass hints with their own socket type and family, so they only get
/// addresses they can use.
///
/// ```
/// use sock::{Family, Hints, SocketType};
/// let hints = Hints {
///     socket_type: Some(SocketType::Udp),
///     family: Some(Family::Inet),
///     ..Hints::default()
/// };
/// let list = sock::addr_with("127.0.0.1", 53, &hints)?;
/// assert_eq!(list.len(), 1);
/// assert_eq!(list.first().socket_type(), SocketType::Udp);
/// # Ok::<(), sock::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// Only results of this socket type (`None`: tcp, udp and raw).
    pub socket_type: Option<SocketType>,
    /// Only results of this family (`None`: inet and inet6). With
    /// `Some(Family::Unix)` the host is a unix socket path and there is no
    /// lookup.
    pub family: Option<Family>,
    /// Only results of this protocol (`None`: any).
    pub protocol: Option<Protocol>,
    /// Resolver flags.
    pub flags: AddrFlags,
}

/// A port: a number, a service name (`"http"`, looked up in `/etc/services`) or
/// a numeric string. Port 0 (and the empty string) means "any port".
///
/// Implemented for `u16`, `str`, `String` and references to them.
///
/// ```
/// use sock::Port;
/// assert_eq!(80.to_service(), "80");
/// assert_eq!("http".to_service(), "http");
/// assert_eq!(String::new().to_service(), "0");
/// ```
pub trait Port {
    /// The service string passed to the resolver: the decimal port or the
    /// service name.
    fn to_service(&self) -> Cow<'_, str>;
}

impl Port for u16 {
    fn to_service(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl Port for str {
    fn to_service(&self) -> Cow<'_, str> {
        if self.is_empty() {
            Cow::Borrowed("0")
        } else {
            Cow::Borrowed(self)
        }
    }
}

impl Port for String {
    fn to_service(&self) -> Cow<'_, str> {
        self.as_str().to_service()
    }
}

impl<T: Port + ?Sized> Port for &T {
    fn to_service(&self) -> Cow<'_, str> {
        (**self).to_service()
    }
}

/// Looks up `host` and `port` with default [`Hints`] (every socket type and
/// family, no flag).
///
/// `host` is a host name, a numeric IPv4 or IPv6 address, or `"*"` for all
/// interfaces (the wildcard address). See [`addr_with`] for the details and the
/// errors.
///
/// ```
/// let list = sock::addr("::1", "443")?;
/// assert_eq!(list.first().family(), sock::Family::Inet6);
/// assert_eq!(list.first().to_string(), "[::1]:443");
/// # Ok::<(), sock::Error>(())
/// ```
pub fn addr(host: &str, port: impl Port) -> Result<AddrList> {
    addr_with(host, port, &Hints::default())
}

/// Looks up `host` and `port` (`getaddrinfo`), keeping only the results that
/// match `hints`.
///
/// * `host` is a host name, a numeric address, or `"*"` which means all
///   interfaces: the resolver gets no host and the flag
///   [`PASSIVE`](AddrFlags::PASSIVE), and returns the wildcard addresses.
/// * `port` is a number, a service name or 0 for any port: see [`Port`].
/// * With `hints.family == Some(Family::Unix)` there is no lookup: `host` is a
///   filesystem path (or, on Linux, `@name` for an abstract name, see
///   [`SockAddr::unix`]), `port` is ignored, and the result is one entry of the
///   socket type of `hints` (default tcp, i.e. stream).
///
/// A successful lookup is never empty.
///
/// # Errors
///
/// An empty host is `invalid_argument`. Resolver errors keep the `EAI_*` code
/// ([`Error::code`]); their message is the resolver's text followed by what was
/// looked up, e.g. `"Name or service not known (host 'x.invalid', port 80)"`.
/// Their kinds: `host_not_found` (no such host, or no address of the asked
/// family), `try_again`, `lookup_failed`, `address_family_not_supported`,
/// `service_not_found`, `not_supported` (socket type), `invalid_argument` (bad
/// flags), `no_buffer_space`, or the kind of the OS error for `EAI_SYSTEM`.
///
/// ```
/// use sock::{AddrFlags, Hints};
/// let hints = Hints { flags: AddrFlags::NUMERICHOST, ..Hints::default() };
/// let err = sock::addr_with("localhost", 80, &hints).unwrap_err();
/// assert_eq!(err.name(), "host_not_found");
/// assert!(err.message().contains("(host 'localhost', port 80)"));
/// ```
pub fn addr_with(host: &str, port: impl Port, hints: &Hints) -> Result<AddrList> {
    lookup(host, &port.to_service(), hints)
}

fn lookup(host: &str, service: &str, hints: &Hints) -> Result<AddrList> {
    if host.is_empty() {
        return Err(Error::with_message(
            ErrorKind::InvalidArgument,
            "empty host",
        ));
    }
    if hints.family == Some(Family::Unix) {
        // '*' is the unnamed address: `bind` then picks an abstract name
        // (Linux's autobind) and a datagram `connect` removes the peer.
        let addr = match host {
            "*" => SockAddr(crate::sys::socket::unnamed_unix()),
            path => SockAddr::unix(path)?,
        };
        let socket_type = hints.socket_type.unwrap_or(SocketType::Tcp);
        return Ok(AddrList::from_sockaddr(addr, socket_type));
    }
    if let Some(list) = numeric(host, service, hints) {
        return Ok(list);
    }
    lookup_resolver(host, service, hints)
}

/// The lookup of a numeric address and port of one socket type, made
/// without `getaddrinfo` (it would only parse them): the same single entry.
/// `None` when the resolver is needed, or may answer differently (a flag
/// besides `PASSIVE` and the numeric ones, no socket type, a family hint
/// that does not match, forms that only `inet_aton` reads such as `127.1`,
/// scoped IPv6 addresses).
fn numeric(host: &str, service: &str, hints: &Hints) -> Option<AddrList> {
    let plain = AddrFlags::PASSIVE | AddrFlags::NUMERICHOST | AddrFlags::NUMERICSERV;
    if hints.flags.0 & !plain.0 != 0 || !service.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let socket_type = hints.socket_type?;
    let ip: IpAddr = host.parse().ok()?;
    let port: u16 = service.parse().ok()?;
    let family = match ip {
        IpAddr::V4(_) => Family::Inet,
        IpAddr::V6(_) => Family::Inet6,
    };
    if hints.family.is_some_and(|f| f != family) {
        return None;
    }
    let protocol = match (socket_type, hints.protocol) {
        (SocketType::Raw, p) => p.unwrap_or(Protocol::Raw),
        (_, Some(Protocol::Ip) | None) => Protocol::default_for(socket_type),
        (_, Some(p)) if p == Protocol::default_for(socket_type) => p,
        _ => return None, // the resolver's answer (it refuses most)
    };
    Some(AddrList {
        entries: vec![AddrInfo {
            socket_type,
            protocol,
            name: None,
            addr: SockAddr::from(SocketAddr::new(ip, port)),
        }],
    })
}

/// The lookup through `getaddrinfo`.
fn lookup_resolver(host: &str, service: &str, hints: &Hints) -> Result<AddrList> {
    let mut flags = hints.flags;
    let node = if host == "*" {
        flags |= AddrFlags::PASSIVE;
        None
    } else {
        Some(host)
    };
    // getaddrinfo refuses every service for raw sockets (EAI_SERVICE), yet a
    // port means nothing to them: look up as datagram, then mark the entries raw.
    let raw = hints.socket_type == Some(SocketType::Raw);
    let (socket_type, protocol) = match raw {
        true => (Some(SocketType::Udp), None),
        false => (hints.socket_type, hints.protocol),
    };
    let raw_hints = sys::RawHints {
        socktype: socket_type.map_or(0, SocketType::to_raw),
        family: hints.family.map_or(sys::AF_UNSPEC, Family::to_raw),
        protocol: protocol.map_or(0, Protocol::to_raw),
        flags: flags.to_raw(),
    };
    let context = || {
        if service.bytes().all(|b| b.is_ascii_digit()) {
            format!("host '{host}', port {service}")
        } else {
            format!("host '{host}', port '{service}'")
        }
    };
    let found = sys::getaddrinfo(node, service, &raw_hints, &context)?;
    let mut name = None;
    let mut entries = Vec::with_capacity(found.len());
    for r in found {
        if name.is_none() {
            name = r.canonname;
        }
        let (Some(socket_type), Some(_)) =
            (SocketType::from_raw(r.socktype), Family::from_raw(r.family))
        else {
            continue; // a socket type or family we do not model
        };
        let protocol = match Protocol::from_raw(r.protocol) {
            Some(Protocol::Ip) | None => Protocol::default_for(socket_type),
            Some(p) => p,
        };
        let (socket_type, protocol) = match raw {
            true => (SocketType::Raw, hints.protocol.unwrap_or(Protocol::Raw)),
            false => (socket_type, protocol),
        };
        entries.push(AddrInfo {
            socket_type,
            protocol,
            name: None,
            addr: SockAddr(r.addr),
        });
    }
    match entries.first_mut() {
        Some(first) => first.name = name,
        None => {
            return Err(Error::from_parts(
                ErrorKind::HostNotFound,
                0,
                format!("no usable address ({})", context()),
            ))
        }
    }
    Ok(AddrList { entries })
}

/// The result of a lookup: a non-empty list of [`AddrInfo`] entries, in the
/// resolver's order of preference.
///
/// ```
/// let list = sock::addr("127.0.0.1", 80)?;
/// for ai in &list {
///     assert_eq!(ai.addr().to_string(), "127.0.0.1:80");
/// }
/// assert_eq!(list.to_string(), "127.0.0.1:80");
/// # Ok::<(), sock::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AddrList {
    /// Never empty.
    entries: Vec<AddrInfo>,
}

impl AddrList {
    /// A list of one entry for an already known address. The protocol is the
    /// default for `socket_type` (for a unix address: [`Protocol::Ip`], i.e. 0).
    ///
    /// ```
    /// use sock::{AddrList, SockAddr, SocketType};
    /// let sa: SockAddr = "127.0.0.1:9".parse()?;
    /// let list = AddrList::from_sockaddr(sa, SocketType::Udp);
    /// assert_eq!(list.len(), 1);
    /// assert_eq!(list.first().protocol(), sock::Protocol::Udp);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn from_sockaddr(addr: SockAddr, socket_type: SocketType) -> AddrList {
        AddrList {
            entries: vec![AddrInfo::new(addr, socket_type)],
        }
    }

    /// A list of already known addresses, in order (what a connect tries in
    /// turn); `host_not_found` if there is none.
    ///
    /// ```
    /// use sock::{AddrList, SocketType};
    /// let list = AddrList::from_sockaddrs(
    ///     ["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
    ///     SocketType::Tcp,
    /// )
    /// .unwrap();
    /// assert_eq!(list.len(), 2);
    /// assert_eq!(list.get(1).unwrap().addr().port(), 2);
    /// let none = AddrList::from_sockaddrs([], SocketType::Tcp).unwrap_err();
    /// assert_eq!(none.name(), "host_not_found");
    /// ```
    pub fn from_sockaddrs(
        addrs: impl IntoIterator<Item = SockAddr>,
        socket_type: SocketType,
    ) -> Result<AddrList> {
        let entries: Vec<AddrInfo> = addrs
            .into_iter()
            .map(|a| AddrInfo::new(a, socket_type))
            .collect();
        if entries.is_empty() {
            let msg = "no address given";
            return Err(Error::with_message(ErrorKind::HostNotFound, msg));
        }
        Ok(AddrList { entries })
    }

    /// The number of entries (at least 1).
    ///
    /// ```
    /// // One entry per socket type: tcp, udp (and raw, on Linux).
    /// assert!(sock::addr("127.0.0.1", 80)?.len() >= 2);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always `false`: a list holds at least one entry.
    ///
    /// ```
    /// assert!(!sock::addr("127.0.0.1", 80)?.is_empty());
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first (preferred) entry.
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// assert_eq!(list.first().addr().port(), 80);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn first(&self) -> &AddrInfo {
        &self.entries[0]
    }

    /// The entry at `index`, if any (Lua's `ai:next()` is `get(i + 1)`).
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// assert!(list.get(0).is_some());
    /// assert!(list.get(list.len()).is_none());
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<&AddrInfo> {
        self.entries.get(index)
    }

    /// Iterates over the entries.
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// let types: Vec<_> = list.addrs().map(|ai| ai.socket_type().name()).collect();
    /// assert!(types.contains(&"tcp") && types.contains(&"udp"));
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn addrs(&self) -> std::slice::Iter<'_, AddrInfo> {
        self.entries.iter()
    }
}

impl<'a> IntoIterator for &'a AddrList {
    type Item = &'a AddrInfo;
    type IntoIter = std::slice::Iter<'a, AddrInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl IntoIterator for AddrList {
    type Item = AddrInfo;
    type IntoIter = std::vec::IntoIter<AddrInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// The address of the first entry.
impl fmt::Display for AddrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.first(), f)
    }
}

/// One result of a lookup: a socket type, a family, a protocol and an address
/// (and, on the first entry, the canonical name when it was asked for).
///
/// ```
/// use sock::{Family, Protocol, SocketType};
/// let list = sock::addr("127.0.0.1", 80)?;
/// let ai = list.addrs().find(|ai| ai.socket_type() == SocketType::Tcp).unwrap();
/// assert_eq!(ai.family(), Family::Inet);
/// assert_eq!(ai.protocol(), Protocol::Tcp);
/// assert_eq!(ai.tostring(), "127.0.0.1:80");
/// # Ok::<(), sock::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AddrInfo {
    socket_type: SocketType,
    protocol: Protocol,
    name: Option<String>,
    addr: SockAddr,
}

impl AddrInfo {
    fn new(addr: SockAddr, socket_type: SocketType) -> AddrInfo {
        let protocol = if addr.try_family() == Some(Family::Unix) {
            Protocol::Ip
        } else {
            Protocol::default_for(socket_type)
        };
        AddrInfo {
            socket_type,
            protocol,
            name: None,
            addr,
        }
    }

    /// The socket type.
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// assert_eq!(list.first().socket_type().name(), "tcp");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn socket_type(&self) -> SocketType {
        self.socket_type
    }

    /// The address family (that of [`addr`](Self::addr)).
    ///
    /// # Panics
    ///
    /// Only for an address of a foreign family: see [`SockAddr::family`].
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// assert_eq!(list.first().family().name(), "inet");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn family(&self) -> Family {
        self.addr.family()
    }

    /// The protocol. When the resolver reports none (0), this is the default for
    /// the socket type ([`Protocol::default_for`]); for unix addresses it is
    /// [`Protocol::Ip`] (0, the only protocol unix sockets accept).
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// assert_eq!(list.first().protocol().name(), "tcp");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The canonical name of the host: set on the first entry when the lookup
    /// asked for [`AddrFlags::CANONNAME`], `None` otherwise.
    ///
    /// ```
    /// use sock::{AddrFlags, Hints};
    /// let hints = Hints { flags: AddrFlags::CANONNAME, ..Hints::default() };
    /// let list = sock::addr_with("127.0.0.1", 80, &hints)?;
    /// assert_eq!(list.first().name(), Some("127.0.0.1"));
    /// assert_eq!(sock::addr("127.0.0.1", 80)?.first().name(), None);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The socket address.
    ///
    /// ```
    /// let list = sock::addr("127.0.0.1", 80)?;
    /// assert_eq!(list.first().addr().port(), 80);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn addr(&self) -> &SockAddr {
        &self.addr
    }

    /// The formatted address (same as `to_string()`): see [`SockAddr::tostring`].
    ///
    /// ```
    /// let list = sock::addr("::1", 80)?;
    /// assert_eq!(list.first().tostring(), "[::1]:80");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn tostring(&self) -> String {
        self.addr.tostring()
    }
}

/// The address: see [`SockAddr`]'s `Display`.
impl fmt::Display for AddrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.addr, f)
    }
}

/// A socket address: IPv4 or IPv6 address and port, or unix socket path.
///
/// Formats (`Display`, [`tostring`](Self::tostring)) as `"ip:port"` for IPv4,
/// `"[ip]:port"` for IPv6 (`"[ip%scope_id]:port"` with a non-zero scope id), and
/// the path (`"@name"` for an abstract name, `""` for an unnamed socket) for unix.
/// `Debug` prints the same text. Parses (`FromStr`) a numeric `"ip:port"` or
/// `"[ipv6%scope_id]:port"`.
///
/// ```
/// use sock::{Family, SockAddr};
/// let sa: SockAddr = "[fe80::1%2]:80".parse()?;
/// assert_eq!(sa.family(), Family::Inet6);
/// assert_eq!(sa.port(), 80);
/// assert_eq!(sa.scope_id(), 2);
/// assert_eq!(sa.to_string(), "[fe80::1%2]:80");
/// let unix = SockAddr::unix("/tmp/app.sock")?;
/// assert_eq!(unix.to_string(), "/tmp/app.sock");
/// # Ok::<(), sock::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SockAddr(socket2::SockAddr);

impl SockAddr {
    /// A unix-domain socket address. A leading `@` names an address in the
    /// Linux (and Android) abstract namespace; elsewhere it is part of the path.
    ///
    /// # Errors
    ///
    /// `invalid_argument` for an empty path, a path with a NUL byte or one too
    /// long for `sockaddr_un`.
    ///
    /// ```
    /// use sock::SockAddr;
    /// let sa = SockAddr::unix("/run/app.sock")?;
    /// assert_eq!(sa.path(), Some("/run/app.sock".into()));
    /// assert_eq!(sa.port(), 0);
    /// assert_eq!(SockAddr::unix("").unwrap_err().name(), "invalid_argument");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn unix(path: &str) -> Result<SockAddr> {
        sys::unix_sockaddr(path).map(SockAddr)
    }

    /// The address family.
    ///
    /// # Panics
    ///
    /// If the address is of a family other than inet, inet6 and unix, which is
    /// only possible for a [`socket2::SockAddr`] converted with `From`; use
    /// [`try_family`](Self::try_family) for those.
    ///
    /// ```
    /// let sa: sock::SockAddr = "10.0.0.1:1".parse()?;
    /// assert_eq!(sa.family(), sock::Family::Inet);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn family(&self) -> Family {
        match self.try_family() {
            Some(family) => family,
            None => panic!("address of unsupported family {}", self.0.family()),
        }
    }

    /// The address family, or `None` for a family other than inet, inet6 and
    /// unix.
    ///
    /// ```
    /// let sa = sock::SockAddr::unix("/tmp/s")?;
    /// assert_eq!(sa.try_family(), Some(sock::Family::Unix));
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn try_family(&self) -> Option<Family> {
        Family::from_raw(i32::from(self.0.family()))
    }

    /// The port: 0 for unix addresses.
    ///
    /// ```
    /// let sa: sock::SockAddr = "127.0.0.1:8080".parse()?;
    /// assert_eq!(sa.port(), 8080);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.0.as_socket().map_or(0, |s| s.port())
    }

    /// The IP address (Lua's `sa:addr()`): `None` for unix addresses.
    ///
    /// ```
    /// let sa: sock::SockAddr = "127.0.0.1:80".parse()?;
    /// assert_eq!(sa.ip().unwrap().tobinary(), &[127, 0, 0, 1]);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn ip(&self) -> Option<Ip> {
        self.0.as_socket().map(|s| Ip::new(s.ip()))
    }

    /// The IPv6 scope id (interface index): 0 for other addresses.
    ///
    /// ```
    /// let sa: sock::SockAddr = "[fe80::1%3]:80".parse()?;
    /// assert_eq!(sa.scope_id(), 3);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn scope_id(&self) -> u32 {
        self.0.as_socket_ipv6().map_or(0, |s| s.scope_id())
    }

    /// The filesystem path of a unix address: `None` for other families and for
    /// unnamed and abstract unix addresses (see [`unix_name`](Self::unix_name)).
    ///
    /// ```
    /// let sa = sock::SockAddr::unix("/tmp/s")?;
    /// assert_eq!(sa.path(), Some(std::path::PathBuf::from("/tmp/s")));
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn path(&self) -> Option<PathBuf> {
        self.0.as_pathname().map(PathBuf::from)
    }

    /// The name of a unix address as text: the path for a pathname address,
    /// `"@name"` for an abstract one (Linux); `None` for unnamed unix addresses
    /// and other families. Non-UTF-8 bytes are replaced with U+FFFD.
    ///
    /// ```
    /// let sa = sock::SockAddr::unix("/tmp/s")?;
    /// assert_eq!(sa.unix_name().as_deref(), Some("/tmp/s"));
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(sock::SockAddr::unix("@svc")?.unix_name().as_deref(), Some("@svc"));
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn unix_name(&self) -> Option<String> {
        if let Some(path) = self.0.as_pathname() {
            return Some(path.to_string_lossy().into_owned());
        }
        self.0
            .as_abstract_namespace()
            .map(|name| format!("@{}", String::from_utf8_lossy(name)))
    }

    /// The underlying `socket2` address.
    ///
    /// ```
    /// let sa: sock::SockAddr = "127.0.0.1:80".parse()?;
    /// assert!(sa.as_socket2().is_ipv4());
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn as_socket2(&self) -> &socket2::SockAddr {
        &self.0
    }

    /// The address as a standard socket address: `None` for unix addresses.
    ///
    /// ```
    /// let sa: sock::SockAddr = "127.0.0.1:80".parse()?;
    /// assert_eq!(sa.to_std(), Some("127.0.0.1:80".parse().unwrap()));
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn to_std(&self) -> Option<SocketAddr> {
        self.0.as_socket()
    }

    /// The formatted address (same as `to_string()`): `"ip:port"`,
    /// `"[ipv6]:port"`, `"[ipv6%scope_id]:port"`, or the unix path (`"@name"` for
    /// an abstract name, `""` for an unnamed socket).
    ///
    /// ```
    /// let sa: sock::SockAddr = "[::ffff:1.2.3.4]:5".parse()?;
    /// assert_eq!(sa.tostring(), "[::ffff:1.2.3.4]:5");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn tostring(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v4) = self.0.as_socket_ipv4() {
            write!(f, "{}:{}", v4.ip(), v4.port())
        } else if let Some(v6) = self.0.as_socket_ipv6() {
            if v6.scope_id() != 0 {
                write!(f, "[{}%{}]:{}", v6.ip(), v6.scope_id(), v6.port())
            } else {
                write!(f, "[{}]:{}", v6.ip(), v6.port())
            }
        } else if self.0.is_unix() {
            f.write_str(&self.unix_name().unwrap_or_default())
        } else {
            write!(f, "<address of family {}>", self.0.family())
        }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SockAddr({:?})", self.to_string())
    }
}

/// Parses a numeric `"ip:port"` or `"[ipv6]:port"` (`"[ipv6%scope_id]:port"`
/// with a numeric scope id). Anything else is `invalid_argument`.
impl FromStr for SockAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<SockAddr> {
        s.parse::<SocketAddr>().map(SockAddr::from).map_err(|_| {
            Error::with_message(
                ErrorKind::InvalidArgument,
                format!("invalid socket address '{s}' (expected 'ip:port' or '[ipv6]:port')"),
            )
        })
    }
}

impl From<socket2::SockAddr> for SockAddr {
    fn from(addr: socket2::SockAddr) -> SockAddr {
        SockAddr(addr)
    }
}

impl From<SockAddr> for socket2::SockAddr {
    fn from(addr: SockAddr) -> socket2::SockAddr {
        addr.0
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> SockAddr {
        SockAddr(socket2::SockAddr::from(addr))
    }
}

/// An IPv4 or IPv6 address (Lua's `ip` object), stored as its bytes in network
/// order so that [`tobinary`](Self::tobinary) can return a slice.
///
/// ```
/// use sock::Ip;
/// let ip: Ip = "::ffff:1.2.3.4".parse()?;
/// assert_eq!(ip.tobinary().len(), 16);
/// assert_eq!(ip.tostring(), "::ffff:1.2.3.4");
/// assert_eq!(Ip::from(std::net::Ipv4Addr::LOCALHOST).tobinary(), &[127, 0, 0, 1]);
/// # Ok::<(), sock::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ip {
    /// The address bytes; only the first `len` are used, the rest are zero.
    octets: [u8; 16],
    /// 4 or 16.
    len: u8,
}

impl Ip {
    /// The address `ip`.
    ///
    /// ```
    /// let ip = sock::Ip::new("10.1.2.3".parse().unwrap());
    /// assert_eq!(ip.tobinary(), &[10, 1, 2, 3]);
    /// ```
    pub fn new(ip: IpAddr) -> Ip {
        let mut octets = [0; 16];
        match ip {
            IpAddr::V4(v4) => {
                octets[..4].copy_from_slice(&v4.octets());
                Ip { octets, len: 4 }
            }
            IpAddr::V6(v6) => Ip {
                octets: v6.octets(),
                len: 16,
            },
        }
    }

    /// The address in binary form, network byte order: 4 bytes for IPv4, 16 for
    /// IPv6.
    ///
    /// ```
    /// let ip: sock::Ip = "::1".parse()?;
    /// let mut expect = [0u8; 16];
    /// expect[15] = 1;
    /// assert_eq!(ip.tobinary(), &expect);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn tobinary(&self) -> &[u8] {
        &self.octets[..usize::from(self.len)]
    }

    /// The family: [`Family::Inet`] or [`Family::Inet6`].
    ///
    /// ```
    /// let ip: sock::Ip = "::1".parse()?;
    /// assert_eq!(ip.family(), sock::Family::Inet6);
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn family(&self) -> Family {
        if self.len == 4 {
            Family::Inet
        } else {
            Family::Inet6
        }
    }

    /// The address as a standard IP address.
    ///
    /// ```
    /// let ip: sock::Ip = "127.0.0.1".parse()?;
    /// assert!(ip.to_std().is_loopback());
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn to_std(&self) -> IpAddr {
        if self.len == 4 {
            let [a, b, c, d, ..] = self.octets;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.octets))
        }
    }

    /// The address in text form (same as `to_string()`): `"127.0.0.1"`, `"::1"`,
    /// `"::ffff:1.2.3.4"` for a v4-mapped IPv6 address.
    ///
    /// ```
    /// let ip: sock::Ip = "0:0:0:0:0:0:0:1".parse()?;
    /// assert_eq!(ip.tostring(), "::1");
    /// # Ok::<(), sock::Error>(())
    /// ```
    pub fn tostring(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_std(), f)
    }
}

impl fmt::Debug for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ip({})", self.to_std())
    }
}

/// Parses a numeric IPv4 or IPv6 address; anything else is `invalid_argument`.
impl FromStr for Ip {
    type Err = Error;

    fn from_str(s: &str) -> Result<Ip> {
        s.parse::<IpAddr>().map(Ip::new).map_err(|_| {
            Error::with_message(
                ErrorKind::InvalidArgument,
                format!("invalid IP address '{s}'"),
            )
        })
    }
}

impl From<IpAddr> for Ip {
    fn from(ip: IpAddr) -> Ip {
        Ip::new(ip)
    }
}

impl From<Ipv4Addr> for Ip {
    fn from(ip: Ipv4Addr) -> Ip {
        Ip::new(IpAddr::V4(ip))
    }
}

impl From<Ipv6Addr> for Ip {
    fn from(ip: Ipv6Addr) -> Ip {
        Ip::new(IpAddr::V6(ip))
    }
}

impl From<Ip> for IpAddr {
    fn from(ip: Ip) -> IpAddr {
        ip.to_std()
    }
}

/// Something that gives an address list: a `(host, port)` pair to look up, or an
/// already resolved address.
///
/// Any API that takes a host and a port also takes an already resolved address
/// ([`AddrList`], [`AddrInfo`], [`SockAddr`], [`std::net::SocketAddr`]).
///
/// Callers (sockets) pass `hints` with their own socket type and family, so that
/// a lookup only returns addresses they can use: e.g. a TCP socket of family
/// inet6 resolving `("localhost", 80)` gets only `[::1]:80` stream entries. A
/// `(host, port)` pair is looked up with [`addr_with`] and these hints. An
/// [`AddrList`] is passed through as is (borrowed; the hints are ignored); an
/// [`AddrInfo`] gives a list of itself; a [`SockAddr`] or
/// [`std::net::SocketAddr`] gives one entry of the socket type of the hints
/// (default tcp).
///
/// ```
/// use sock::{Family, Hints, SocketType, ToAddr};
/// let hints = Hints {
///     socket_type: Some(SocketType::Tcp),
///     family: Some(Family::Inet),
///     ..Hints::default()
/// };
/// let list = ("127.0.0.1", 80).to_addr(&hints)?;
/// assert_eq!(list.len(), 1);
/// let again = list.to_addr(&hints)?; // already resolved: passed through
/// assert_eq!(again.first().addr(), list.first().addr());
/// let sa: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
/// assert_eq!(sa.to_addr(&hints)?.to_string(), "127.0.0.1:80");
/// # Ok::<(), sock::Error>(())
/// ```
pub trait ToAddr {
    /// The address list for this value, looked up with `hints` if needed.
    ///
    /// # Errors
    ///
    /// The lookup errors of [`addr_with`].
    fn to_addr(&self, hints: &Hints) -> Result<Cow<'_, AddrList>>;

    /// The one address this value already is, if it is one, so that a caller
    /// that needs a single address (`sendto`) can skip building a list.
    /// The default is `None`.
    ///
    /// ```
    /// use sock::ToAddr;
    /// let sa: sock::SockAddr = "127.0.0.1:53".parse().unwrap();
    /// assert_eq!(sa.sockaddr(), Some(&sa));
    /// assert_eq!(("127.0.0.1", 53).sockaddr(), None);
    /// ```
    fn sockaddr(&self) -> Option<&SockAddr> {
        None
    }

    /// The host and the service this value looks up, if it is one to look
    /// up, so that a blocking call inside a sock thread can make the lookup
    /// off the loop ([`resolve`](crate::resolve)). The default is `None`.
    ///
    /// ```
    /// use sock::ToAddr;
    /// let (host, service) = ("localhost", 80).host_port().unwrap();
    /// assert_eq!((host, &*service), ("localhost", "80"));
    /// ```
    fn host_port(&self) -> Option<(&str, Cow<'_, str>)> {
        None
    }
}

/// A host and a port, looked up with [`addr_with`]: `("localhost", 80)`,
/// `("*", 0)`, `(String, "http")`, ...
impl<H: AsRef<str>, P: Port> ToAddr for (H, P) {
    fn to_addr(&self, hints: &Hints) -> Result<Cow<'_, AddrList>> {
        lookup(self.0.as_ref(), &self.1.to_service(), hints).map(Cow::Owned)
    }

    fn host_port(&self) -> Option<(&str, Cow<'_, str>)> {
        Some((self.0.as_ref(), self.1.to_service()))
    }
}

impl ToAddr for AddrList {
    fn to_addr(&self, _hints: &Hints) -> Result<Cow<'_, AddrList>> {
        Ok(Cow::Borrowed(self))
    }

    fn sockaddr(&self) -> Option<&SockAddr> {
        Some(self.first().addr())
    }
}

impl ToAddr for AddrInfo {
    fn to_addr(&self, _hints: &Hints) -> Result<Cow<'_, AddrList>> {
        Ok(Cow::Owned(AddrList {
            entries: vec![self.clone()],
        }))
    }

    fn sockaddr(&self) -> Option<&SockAddr> {
        Some(self.addr())
    }
}

impl ToAddr for SockAddr {
    fn to_addr(&self, hints: &Hints) -> Result<Cow<'_, AddrList>> {
        let socket_type = hints.socket_type.unwrap_or(SocketType::Tcp);
        Ok(Cow::Owned(AddrList::from_sockaddr(
            self.clone(),
            socket_type,
        )))
    }

    fn sockaddr(&self) -> Option<&SockAddr> {
        Some(self)
    }
}

impl ToAddr for SocketAddr {
    fn to_addr(&self, hints: &Hints) -> Result<Cow<'_, AddrList>> {
        SockAddr::from(*self)
            .to_addr(hints)
            .map(|c| Cow::Owned(c.into_owned()))
    }
}

impl<T: ToAddr + ?Sized> ToAddr for &T {
    fn to_addr(&self, hints: &Hints) -> Result<Cow<'_, AddrList>> {
        (**self).to_addr(hints)
    }

    fn sockaddr(&self) -> Option<&SockAddr> {
        (**self).sockaddr()
    }

    fn host_port(&self) -> Option<(&str, Cow<'_, str>)> {
        (**self).host_port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A numeric host and port need no resolver: the entry made without it
    /// is the one `getaddrinfo` gives.
    #[test]
    fn numeric_lookups_match_the_resolver() {
        let protocols = [
            None,
            Some(Protocol::Ip),
            Some(Protocol::Udp),
            Some(Protocol::Icmp),
        ];
        for host in [
            "127.0.0.1",
            "0.0.0.0",
            "10.1.2.3",
            "::1",
            "::",
            "fe80::1",
            "::ffff:1.2.3.4",
        ] {
            for socket_type in [SocketType::Tcp, SocketType::Udp, SocketType::Raw] {
                for family in [None, Some(Family::Inet), Some(Family::Inet6)] {
                    for protocol in protocols {
                        for flags in [
                            AddrFlags::empty(),
                            AddrFlags::PASSIVE,
                            AddrFlags::NUMERICHOST,
                        ] {
                            let hints = Hints {
                                socket_type: Some(socket_type),
                                family,
                                protocol,
                                flags,
                            };
                            let slow = lookup_resolver(host, "8080", &hints);
                            let Some(fast) = numeric(host, "8080", &hints) else {
                                // Left to the resolver: a family mismatch, or
                                // a protocol that is not the type's.
                                assert!(family.is_some() || protocol.is_some(), "{host} {hints:?}");
                                continue;
                            };
                            let slow = match slow {
                                Ok(l) => l,
                                Err(e) => panic!("{host} {hints:?}: only the resolver fails: {e}"),
                            };
                            let (a, b) = (fast.first(), slow.first());
                            assert_eq!(slow.len(), 1, "{host} {hints:?}");
                            assert_eq!(a.addr(), b.addr(), "{host} {hints:?}");
                            assert_eq!(a.socket_type(), b.socket_type(), "{host} {hints:?}");
                            assert_eq!(a.protocol(), b.protocol(), "{host} {hints:?}");
                            assert_eq!(a.name(), b.name(), "{host} {hints:?}");
                        }
                    }
                }
            }
        }
        // Forms the resolver reads and the fast path leaves to it.
        let tcp = Hints {
            socket_type: Some(SocketType::Tcp),
            ..Hints::default()
        };
        assert!(numeric("127.1", "80", &tcp).is_none());
        assert!(numeric("fe80::1%lo", "80", &tcp).is_none());
        assert!(numeric("127.0.0.1", "http", &tcp).is_none());
        assert!(numeric("127.0.0.1", "80", &Hints::default()).is_none());
        let canon = Hints {
            flags: AddrFlags::CANONNAME,
            ..tcp.clone()
        };
        assert!(numeric("127.0.0.1", "80", &canon).is_none());
        assert_eq!(
            lookup("127.1", "80", &tcp).unwrap().first().to_string(),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn enum_names_round_trip() {
        for &t in SocketType::ALL {
            assert_eq!(t.name().parse::<SocketType>().unwrap(), t);
            assert_eq!(SocketType::from_raw(t.to_raw()), Some(t));
            assert_eq!(t.to_string(), t.name());
        }
        for &f in Family::ALL {
            assert_eq!(f.name().parse::<Family>().unwrap(), f);
            assert_eq!(Family::from_raw(f.to_raw()), Some(f));
        }
        for &p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>().unwrap(), p);
            assert_eq!(Protocol::from_raw(p.to_raw()), Some(p));
        }
        assert_eq!("TCP".parse::<SocketType>().unwrap(), SocketType::Tcp);
        assert_eq!(Family::from_raw(-1), None);
    }

    #[test]
    fn enum_parse_errors_name_the_valid_values() {
        let e = "inet4".parse::<Family>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("inet, inet6, unix"), "{}", e.message());
        let e = "sctp".parse::<Protocol>().unwrap_err();
        assert!(e.message().contains("icmpv6"), "{}", e.message());
        assert!("".parse::<SocketType>().is_err());
    }

    #[test]
    fn default_protocols() {
        assert_eq!(Protocol::default_for(SocketType::Tcp), Protocol::Tcp);
        assert_eq!(Protocol::default_for(SocketType::Udp), Protocol::Udp);
        assert_eq!(Protocol::default_for(SocketType::Raw), Protocol::Raw);
    }

    #[test]
    fn flag_parsing() {
        assert_eq!(AddrFlags::from_names("").unwrap(), AddrFlags::empty());
        assert_eq!(AddrFlags::from_names(" , ").unwrap(), AddrFlags::empty());
        let all = AddrFlags::from_names(
            "passive canonname,numerichost, numericserv  all,v4mapped addrconfig",
        )
        .unwrap();
        for (flag, _, _) in AddrFlags::TABLE {
            assert!(all.contains(flag));
        }
        assert_eq!(
            AddrFlags::from_names("cannonname").unwrap(),
            AddrFlags::CANONNAME
        );
        assert_eq!(
            AddrFlags::from_names("PASSIVE").unwrap(),
            AddrFlags::PASSIVE
        );
        let e = AddrFlags::from_names("passive nope").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("'nope'"), "{}", e.message());
        assert!(
            e.message().contains("passive, canonname"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn flag_ops_and_formatting() {
        let mut f = AddrFlags::empty();
        assert!(f.is_empty());
        assert!(f.contains(AddrFlags::empty()));
        f |= AddrFlags::V4MAPPED;
        f |= AddrFlags::ALL;
        assert!(f.contains(AddrFlags::ALL | AddrFlags::V4MAPPED));
        assert!(!f.contains(AddrFlags::PASSIVE));
        assert_eq!(format!("{f:?}"), "AddrFlags(all | v4mapped)");
        assert_eq!(format!("{:?}", AddrFlags::empty()), "AddrFlags()");
        assert_eq!(f.to_string(), "all v4mapped");
        assert_eq!(f.to_string().parse::<AddrFlags>().unwrap(), f);
        assert_eq!(f.to_raw(), sys::AI_ALL | sys::AI_V4MAPPED);
        assert_eq!(AddrFlags::empty().to_raw(), 0);
    }

    #[test]
    fn port_services() {
        assert_eq!(0u16.to_service(), "0");
        assert_eq!(65535u16.to_service(), "65535");
        assert_eq!("http".to_service(), "http");
        assert_eq!("".to_service(), "0");
        assert_eq!(String::from("8080").to_service(), "8080");
        assert_eq!((&&"x").to_service(), "x");
    }

    #[test]
    fn sockaddr_v4_tostring() {
        let sa: SockAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(sa.to_string(), "127.0.0.1:80");
        assert_eq!(sa.tostring(), "127.0.0.1:80");
        assert_eq!(format!("{sa:?}"), "SockAddr(\"127.0.0.1:80\")");
        assert_eq!(sa.family(), Family::Inet);
        assert_eq!(sa.port(), 80);
        assert_eq!(sa.ip().unwrap().tobinary(), &[127, 0, 0, 1]);
        assert_eq!(sa.path(), None);
        assert_eq!(sa.unix_name(), None);
        assert_eq!(sa.to_std(), Some("127.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn sockaddr_v6_tostring() {
        let sa: SockAddr = "[::1]:443".parse().unwrap();
        assert_eq!(sa.to_string(), "[::1]:443");
        assert_eq!(sa.family(), Family::Inet6);
        assert_eq!(sa.scope_id(), 0);
        let sa: SockAddr = "[fe80::1%1]:80".parse().unwrap();
        assert_eq!(sa.to_string(), "[fe80::1%1]:80");
        assert_eq!(sa.scope_id(), 1);
        let std_addr = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::2".parse().unwrap(),
            8,
            0,
            42,
        ));
        assert_eq!(SockAddr::from(std_addr).to_string(), "[fe80::2%42]:8");
        let mapped: SockAddr = "[::ffff:1.2.3.4]:5".parse().unwrap();
        assert_eq!(mapped.to_string(), "[::ffff:1.2.3.4]:5");
        assert_eq!(mapped.ip().unwrap().tobinary().len(), 16);
    }

    #[test]
    fn sockaddr_unix_tostring() {
        let sa = SockAddr::unix("/tmp/sock-test.sock").unwrap();
        assert_eq!(sa.to_string(), "/tmp/sock-test.sock");
        assert_eq!(sa.family(), Family::Unix);
        assert_eq!(sa.port(), 0);
        assert_eq!(sa.ip(), None);
        assert_eq!(sa.to_std(), None);
        assert_eq!(sa.path(), Some(PathBuf::from("/tmp/sock-test.sock")));
        assert_eq!(sa.unix_name().as_deref(), Some("/tmp/sock-test.sock"));
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let abs = SockAddr::unix("@sock-test").unwrap();
            assert_eq!(abs.to_string(), "@sock-test");
            assert_eq!(abs.path(), None);
            assert_eq!(abs.family(), Family::Unix);
            assert_ne!(abs, SockAddr::unix("sock-test").unwrap());
        }
        assert_eq!(
            SockAddr::unix("").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn sockaddr_from_str_errors() {
        for bad in [
            "",
            "127.0.0.1",
            "localhost:80",
            "::1:80",
            "[::1]",
            "1.2.3.4:99999",
        ] {
            let e = bad.parse::<SockAddr>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn sockaddr_equality_and_conversions() {
        let a: SockAddr = "10.0.0.1:7".parse().unwrap();
        let b = SockAddr::from(SocketAddr::from(([10, 0, 0, 1], 7)));
        assert_eq!(a, b);
        let s2: socket2::SockAddr = b.clone().into();
        assert_eq!(SockAddr::from(s2), a);
        assert!(a.as_socket2().is_ipv4());
    }

    #[test]
    fn ip_binary_and_text() {
        let v4: Ip = "1.2.3.4".parse().unwrap();
        assert_eq!(v4.tobinary(), &[1, 2, 3, 4]);
        assert_eq!(v4.family(), Family::Inet);
        assert_eq!(v4.to_string(), "1.2.3.4");
        assert_eq!(format!("{v4:?}"), "Ip(1.2.3.4)");
        let v6: Ip = "2001:db8::1".parse().unwrap();
        assert_eq!(v6.tobinary().len(), 16);
        assert_eq!(&v6.tobinary()[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(v6.tobinary()[15], 1);
        assert_eq!(v6.to_string(), "2001:db8::1");
        let mapped: Ip = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(mapped.to_string(), "::ffff:1.2.3.4");
        assert_ne!(mapped, v4);
        assert_eq!(IpAddr::from(v4), v4.to_std());
        assert_eq!(
            "nope".parse::<Ip>().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn from_sockaddr_entries() {
        let list = AddrList::from_sockaddr("127.0.0.1:1".parse().unwrap(), SocketType::Udp);
        assert_eq!(list.len(), 1);
        assert!(!list.is_empty());
        assert_eq!(list.first().protocol(), Protocol::Udp);
        assert_eq!(list.first().name(), None);
        assert_eq!(list.to_string(), "127.0.0.1:1");
        let unix = AddrList::from_sockaddr(SockAddr::unix("/x").unwrap(), SocketType::Tcp);
        assert_eq!(unix.first().protocol(), Protocol::Ip);
        assert_eq!(unix.first().family(), Family::Unix);
    }
}
