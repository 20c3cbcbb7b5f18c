//! Raw sockets.

use crate::addr::{Family, Protocol, SocketType};
use crate::error::Result;
use crate::socket::{datagram_common, socket_common, Socket};

/// A raw socket (`sock.raw(family, protocol)`): whole IP datagrams of one
/// protocol (`Icmp`, `Icmpv6`, `Igmp`, `Raw`, ...), sent and received with the
/// datagram calls. On IPv4 what is received starts with the IP header.
///
/// Making one needs privilege (root or `CAP_NET_RAW` on Linux); without it
/// the error is `access_denied`.
///
/// ```
/// use sock::{Family, Protocol, Raw};
/// // An ICMP echo request to 127.0.0.1, and its reply.
/// let icmp = match Raw::with_protocol(Family::Inet, Some(Protocol::Icmp)) {
///     Ok(s) => s,
///     Err(e) => return assert_eq!(e.name(), "access_denied"), // not privileged
/// };
/// let id = std::process::id() as u16;
/// let mut req = [8u8, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1, b'p', b'i', b'n', b'g'];
/// let sum = checksum(&req);
/// req[2..4].copy_from_slice(&sum.to_be_bytes());
/// let t = sock::newthread(async move {
///     icmp.sendto(("127.0.0.1", 0), &req, None).await?;
///     let mut buf = [0u8; 1500];
///     loop {
///         // Every ICMP datagram of the host arrives here: find our reply.
///         let (n, from) = icmp.recvnext(&mut buf, Some(sock::clock() + 2.0)).await?;
///         let ihl = (buf[0] & 0x0f) as usize * 4; // IPv4 header length
///         let reply = &buf[ihl..n];
///         if reply[0] == 0 && reply[4..6] == req[4..6] {
///             assert_eq!(from.ip().unwrap().tostring(), "127.0.0.1");
///             assert_eq!(&reply[8..], b"ping");
///             return sock::Result::Ok(());
///         }
///     }
/// });
/// sock::start().unwrap();
/// assert!(matches!(t.result(), Some(Ok(Ok(())))));
///
/// fn checksum(data: &[u8]) -> u16 {
///     let mut sum: u32 = data.chunks(2)
///         .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
///         .sum();
///     while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16); }
///     !(sum as u16)
/// }
/// ```
#[derive(Debug)]
pub struct Raw {
    s: Socket,
}

socket_common!(
    Raw,
    "match sock::Raw::new(sock::Family::Inet) { Ok(s) => s, Err(e) => return assert_eq!(e.name(), \"access_denied\") }"
);

datagram_common!(
    Raw,
    "match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) { Ok(s) => s, Err(e) => return assert_eq!(e.name(), \"access_denied\") }",
    connect: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
r.connect((\"127.0.0.1\", 0)).unwrap(); // only ICMP from 127.0.0.1 now
// Linux stops delivering to a disconnected raw socket: refused.
assert_eq!(r.connect((\"*\", 0)).unwrap_err().name(), \"not_supported\");
```",
    disconnect: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
assert_eq!(r.disconnect().unwrap_err().name(), \"not_connected\");
r.connect((\"127.0.0.1\", 0)).unwrap();
// Linux stops delivering to a disconnected raw socket: refused.
assert_eq!(r.disconnect().unwrap_err().name(), \"not_supported\");
```",
    send: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
let t = sock::newthread(async move {
    let e = r.send(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0], None).await.unwrap_err();
    assert_eq!(e.name(), \"destination_required\");
    r.connect((\"127.0.0.1\", 0))?;
    // An echo request (type 8) with a valid checksum.
    assert_eq!(r.send(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0], None).await?, 8);
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    recv: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
let t = sock::newthread(async move {
    r.connect((\"127.0.0.1\", 0))?;
    r.send(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0], None).await?;
    let mut buf = [0u8; 1500];
    let n = r.recv(&mut buf, Some(sock::clock() + 2.0)).await?;
    assert!(n >= 28 && buf[0] >> 4 == 4); // an IPv4 header, then ICMP
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    sendto: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
let t = sock::newthread(async move {
    let n = r.sendto((\"127.0.0.1\", 0), &[8, 0, 0xf7, 0xff, 0, 0, 0, 0], None).await?;
    assert_eq!(n, 8);
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    recvnext: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
let t = sock::newthread(async move {
    r.sendto((\"127.0.0.1\", 0), &[8, 0, 0xf7, 0xff, 0, 0, 0, 0], None).await?;
    let mut buf = [0u8; 1500];
    let (n, from) = r.recvnext(&mut buf, Some(sock::clock() + 2.0)).await?;
    assert!(n >= 28);
    assert_eq!(from.family(), sock::Family::Inet);
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    wait: "```
let r = match sock::Raw::with_protocol(sock::Family::Inet, Some(sock::Protocol::Icmp)) {
    Ok(s) => s,
    Err(e) => return assert_eq!(e.name(), \"access_denied\"),
};
let t = sock::newthread(async move {
    r.sendto((\"127.0.0.1\", 0), &[8, 0, 0xf7, 0xff, 0, 0, 0, 0], None).await?;
    // The echo reply (at least) makes the socket readable.
    r.wait(sock::Direction::Read, Some(sock::clock() + 2.0)).await?;
    assert!(r.try_recvnext(&mut [0u8; 1500])?.is_some());
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```"
);

impl Raw {
    /// Makes a raw socket of `family` with the protocol `Raw`
    /// (`IPPROTO_RAW`: send-only, the caller writes the IP header);
    /// `access_denied` without privilege.
    ///
    /// ```
    /// match sock::Raw::new(sock::Family::Inet) {
    ///     Ok(r) => assert_eq!(r.protocol(), sock::Protocol::Raw),
    ///     Err(e) => assert_eq!(e.name(), "access_denied"),
    /// }
    /// ```
    pub fn new(family: Family) -> Result<Raw> {
        Raw::with_protocol(family, None)
    }

    /// Makes a raw socket for `protocol` (`sock.raw(family, protocol)`), e.g.
    /// `Icmp` on `Inet` or `Icmpv6` on `Inet6`.
    ///
    /// ```
    /// match sock::Raw::with_protocol(sock::Family::Inet6, Some(sock::Protocol::Icmpv6)) {
    ///     Ok(r) => assert_eq!(r.protocol(), sock::Protocol::Icmpv6),
    ///     Err(e) => assert_eq!(e.name(), "access_denied"),
    /// }
    /// ```
    pub fn with_protocol(family: Family, protocol: Option<Protocol>) -> Result<Raw> {
        Ok(Raw {
            s: Socket::new(SocketType::Raw, family, protocol)?,
        })
    }
}
