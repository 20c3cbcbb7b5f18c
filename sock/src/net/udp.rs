//! UDP sockets (and Unix-domain datagram sockets: family `Unix`).

use crate::addr::{Family, Protocol, SocketType};
use crate::error::Result;
use crate::socket::{datagram_common, socket_common, Socket};

/// A UDP socket (`sock.udp(family)`), or a Unix-domain datagram socket with
/// family `Unix`.
///
/// Unconnected, it sends to any address with [`sendto`](Udp::sendto) and
/// receives from anyone with [`recvnext`](Udp::recvnext), which also tells who
/// sent. [`connect`](Udp::connect) sets a default peer for
/// [`send`](Udp::send) and filters incoming datagrams to that peer;
/// `connect(("*", 0))` removes the filter. Options such as `so_broadcast` and
/// the multicast ones (`ip_add_membership`, ...) are set by name.
///
/// ```
/// use sock::{Family, Udp};
/// let a = Udp::new(Family::Inet).unwrap();
/// a.bind(("127.0.0.1", 0)).unwrap();
/// let to = a.local_addr().unwrap();
/// let t = sock::newthread(async move {
///     let b = Udp::new(Family::Inet)?;
///     b.sendto(&to, b"ping", None).await?;
///     let mut buf = [0u8; 16];
///     let (n, from) = a.recvnext(&mut buf, Some(sock::clock() + 1.0)).await?;
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(from.port(), b.local_addr()?.port()); // b was bound on sending
///     sock::Result::Ok(())
/// });
/// sock::start().unwrap();
/// assert!(matches!(t.result(), Some(Ok(Ok(())))));
/// ```
#[derive(Debug)]
pub struct Udp {
    s: Socket,
}

socket_common!(Udp, "sock::Udp::new(sock::Family::Inet).unwrap()");

datagram_common!(
    Udp,
    "sock::Udp::new(sock::Family::Inet).unwrap()",
    connect: "```
let (a, b) = (sock::Udp::new(sock::Family::Inet).unwrap(), sock::Udp::new(sock::Family::Inet).unwrap());
a.bind((\"127.0.0.1\", 0)).unwrap();
b.connect(a.local_addr().unwrap()).unwrap();
assert_eq!(b.peer_addr().unwrap(), a.local_addr().unwrap());
b.connect((\"*\", 0)).unwrap(); // unfiltered again
assert_eq!(b.peer_addr().unwrap_err().name(), \"not_connected\");
```",
    disconnect: "```
let u = sock::Udp::new(sock::Family::Inet).unwrap();
u.connect((\"127.0.0.1\", 9)).unwrap();
u.disconnect().unwrap();
assert_eq!(u.disconnect().unwrap_err().name(), \"not_connected\");
```",
    send: "```
let a = sock::Udp::new(sock::Family::Inet).unwrap();
a.bind((\"127.0.0.1\", 0)).unwrap();
let to = a.local_addr().unwrap();
let t = sock::newthread(async move {
    let b = sock::Udp::new(sock::Family::Inet)?;
    assert_eq!(b.send(b\"x\", None).await.unwrap_err().name(), \"destination_required\");
    b.connect(to)?;
    assert_eq!(b.send(b\"\", None).await?, 0); // an empty datagram
    let mut buf = [0u8; 4];
    assert_eq!(a.recv(&mut buf, Some(sock::clock() + 1.0)).await?, 0);
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    recv: "```
let a = sock::Udp::new(sock::Family::Inet).unwrap();
a.bind((\"127.0.0.1\", 0)).unwrap();
let to = a.local_addr().unwrap();
let t = sock::newthread(async move {
    let b = sock::Udp::new(sock::Family::Inet)?;
    b.sendto(&to, b\"0123456789\", None).await?;
    let mut small = [0u8; 4];
    let e = a.recv(&mut small, Some(sock::clock() + 1.0)).await.unwrap_err();
    assert_eq!((e.name(), e.done(), &small), (\"message_too_big\", 4, b\"0123\"));
    let e = a.recv(&mut small, Some(sock::clock() + 0.01)).await.unwrap_err();
    assert_eq!(e.name(), \"timeout\");
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    sendto: "```
let a = sock::Udp::new(sock::Family::Inet).unwrap();
a.bind((\"127.0.0.1\", 0)).unwrap();
let port = a.local_addr().unwrap().port();
let t = sock::newthread(async move {
    let b = sock::Udp::new(sock::Family::Inet)?;
    assert_eq!(b.sendto((\"127.0.0.1\", port), b\"hi\", None).await?, 2);
    let mut buf = [0u8; 2];
    a.recv(&mut buf, Some(sock::clock() + 1.0)).await?;
    assert_eq!(&buf, b\"hi\");
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    recvnext: "```
let a = sock::Udp::new(sock::Family::Inet).unwrap();
a.bind((\"127.0.0.1\", 0)).unwrap();
let to = a.local_addr().unwrap();
let t = sock::newthread(async move {
    let b = sock::Udp::new(sock::Family::Inet)?;
    b.sendto(&to, b\"who\", None).await?;
    let mut buf = [0u8; 8];
    let (n, from) = a.recvnext(&mut buf, Some(sock::clock() + 1.0)).await?;
    assert_eq!((n, from.port()), (3, b.local_addr()?.port()));
    assert_eq!(from.ip().unwrap().tostring(), \"127.0.0.1\");
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```",
    wait: "```
let u = sock::Udp::new(sock::Family::Inet).unwrap();
u.bind((\"127.0.0.1\", 0)).unwrap();
let t = sock::newthread(async move {
    // Nothing arrives: the wait ends at its deadline.
    let r = u.wait(sock::Direction::Read, Some(sock::clock() + 0.01)).await;
    assert_eq!(r.unwrap_err().name(), \"timeout\");
    sock::Result::Ok(())
});
sock::start().unwrap();
assert!(matches!(t.result(), Some(Ok(Ok(())))));
```"
);

impl Udp {
    /// Makes a UDP socket of `family` (`sock.udp(family)`; the seed's default
    /// family is `Inet`); with `Unix`, a Unix-domain datagram socket.
    ///
    /// ```
    /// let u = sock::Udp::new(sock::Family::Inet6).unwrap();
    /// assert_eq!(u.socket_type(), sock::SocketType::Udp);
    /// ```
    pub fn new(family: Family) -> Result<Udp> {
        Udp::with_protocol(family, None)
    }

    /// Makes a UDP socket with an explicit protocol (`sock.udp(family, protocol)`).
    ///
    /// ```
    /// let u = sock::Udp::with_protocol(sock::Family::Inet, Some(sock::Protocol::Udp)).unwrap();
    /// assert_eq!(u.protocol(), sock::Protocol::Udp);
    /// ```
    pub fn with_protocol(family: Family, protocol: Option<Protocol>) -> Result<Udp> {
        Ok(Udp {
            s: Socket::new(SocketType::Udp, family, protocol)?,
        })
    }
}
