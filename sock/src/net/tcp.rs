//! TCP sockets.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use crate::addr::{AddrFlags, AddrList, Family, Protocol, SockAddr, SocketType, ToAddr};
use crate::error::{Error, ErrorKind, Result};
use crate::net::buffer::ReadBuffer;
use crate::reactor::Direction;
use crate::socket::{eof, socket_common, Socket};
use crate::step::{Op, Step};
use crate::sys;
use crate::time::deadline;

/// A TCP socket: a listener, an accepted connection, or a client.
///
/// Blocking calls (`connect`, `accept`, `send`, `recv`, ...) are `async`: they
/// must be awaited inside a sock thread ([`newthread`](crate::newthread)), where
/// they suspend only their thread. Each takes `expires`, an absolute deadline on
/// [`clock`](crate::clock) (`None` = no deadline); past it the call fails with
/// `timeout` and the socket stays usable (no data is lost).
///
/// To share a socket between threads (a reader and a writer, for full duplex),
/// put it in an `Rc`: every method takes `&self`. At most one thread may wait
/// to read; a second one gets the `busy` error. Several threads may write:
/// they take turns, each call's bytes contiguous on the stream (see
/// [`send`](Self::send) and [`sendall`](Self::sendall)).
///
/// ```
/// use std::rc::Rc;
/// use sock::{Family, Tcp};
///
/// let server = Rc::new(Tcp::new(Family::Inet).unwrap());
/// server.listen(None, ("127.0.0.1", 0)).unwrap();
/// let addr = server.local_addr().unwrap();
///
/// let srv = server.clone();
/// let t1 = sock::newthread(async move {
///     let (conn, _remote, _local) = srv.accept(None).await?;
///     let mut buf = [0u8; 5];
///     conn.recvall(&mut buf, None).await?;
///     conn.sendall(&buf, None).await
/// });
/// let t2 = sock::newthread(async move {
///     let c = Tcp::new(Family::Inet)?;
///     c.connect(addr, Some(sock::clock() + 5.0)).await?;
///     c.sendall(b"hello", None).await?;
///     let mut buf = [0u8; 5];
///     c.recvall(&mut buf, None).await?;
///     assert_eq!(&buf, b"hello");
///     sock::Result::Ok(())
/// });
/// sock::start().unwrap();
/// // A panic inside a thread is caught and reported; check the outcomes here.
/// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
/// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
/// ```
#[derive(Debug)]
pub struct Tcp {
    s: Socket,
}

/// Which direction [`Tcp::shutdown`] closes: the seed's `'r'`, `'w'`, `'rw'`.
///
/// ```
/// use sock::Shutdown;
/// assert_eq!("rw".parse::<Shutdown>().unwrap(), Shutdown::Both);
/// assert_eq!(Shutdown::Write.to_string(), "w");
/// assert_eq!("x".parse::<Shutdown>().unwrap_err().name(), "invalid_argument");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `'r'`: no more receiving.
    Read,
    /// `'w'`: no more sending; the peer reads end of stream once the pending
    /// data is delivered (a FIN).
    Write,
    /// `'rw'`: both.
    Both,
}

impl FromStr for Shutdown {
    type Err = Error;

    fn from_str(s: &str) -> Result<Shutdown> {
        match s {
            "r" => Ok(Shutdown::Read),
            "w" => Ok(Shutdown::Write),
            "rw" => Ok(Shutdown::Both),
            _ => Err(Error::with_message(
                ErrorKind::InvalidArgument,
                format!("invalid shutdown direction '{s}' (valid: 'r', 'w', 'rw')"),
            )),
        }
    }
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shutdown::Read => "r",
            Shutdown::Write => "w",
            Shutdown::Both => "rw",
        })
    }
}

socket_common!(Tcp, "sock::Tcp::new(sock::Family::Inet).unwrap()");

impl Tcp {
    /// Makes a TCP socket of `family` (`sock.tcp(family)`; the seed's default
    /// family is `Inet`).
    ///
    /// ```
    /// let t = sock::Tcp::new(sock::Family::Inet6).unwrap();
    /// assert_eq!(t.family(), sock::Family::Inet6);
    /// ```
    pub fn new(family: Family) -> Result<Tcp> {
        Tcp::with_protocol(family, None)
    }

    /// Makes a TCP socket with an explicit protocol (`sock.tcp(family, protocol)`).
    ///
    /// ```
    /// let t = sock::Tcp::with_protocol(sock::Family::Inet, Some(sock::Protocol::Tcp)).unwrap();
    /// assert_eq!(t.protocol(), sock::Protocol::Tcp);
    /// ```
    pub fn with_protocol(family: Family, protocol: Option<Protocol>) -> Result<Tcp> {
        let s = Socket::new(SocketType::Tcp, family, protocol)?;
        Ok(Tcp { s })
    }

    /// Connects to `addr` (host and port, or a resolved address), trying each
    /// resolved address in order under the one deadline `expires`.
    ///
    /// Binds implicitly. After a `timeout`, calling `connect` again goes on
    /// waiting for the same attempt. A host name is looked up off the loop
    /// (see [`resolve`](crate::resolve)); closing the socket from another
    /// thread meanwhile ends the call at once with `closed`.
    /// Errors: `connection_refused`, `timeout`,
    /// `host_not_found`, `network_unreachable`, `already_connected`, ...
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let port = l.local_addr().unwrap().port();
    /// let t1 = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(("127.0.0.1", port), Some(sock::clock() + 1.0)).await?;
    ///     assert_eq!(c.peer_addr()?.port(), port);
    ///     // Nobody listens on the port of a closed listener.
    ///     l.close();
    ///     let e = Tcp::new(Family::Inet)?.connect(("127.0.0.1", port), None).await;
    ///     assert_eq!(e.unwrap_err().name(), "connection_refused");
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// ```
    pub async fn connect(&self, addr: impl ToAddr, expires: Option<f64>) -> Result<()> {
        let deadline = deadline(expires)?;
        self.s.require_thread()?;
        let hints = self.s.hints(AddrFlags::empty());
        // A close from another thread while the host is looked up wakes
        // this one with `closed` (it holds the socket's write direction, as
        // the connect itself will).
        let lookup = crate::resolve::to_addr(&addr, &hints, expires);
        let list = self.s.until_closed(Direction::Write, lookup).await?;
        let op = ConnectOn {
            tcp: self,
            connect: Connect::new(list.as_ref()),
        };
        self.s.drive_ref(op, Ok(deadline)).await
    }

    /// Moves the socket to a new `Tcp` (the same descriptor, registration
    /// and state) and leaves this one closed without closing the socket:
    /// for a layer that takes over a socket it was given by reference (a
    /// binding's TLS wrapper). Threads should not be waiting on it. `closed`
    /// if it is closed.
    ///
    /// ```
    /// let a = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// a.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let b = a.detach().unwrap();
    /// assert!(a.is_closed() && !b.is_closed());
    /// assert!(b.local_addr().unwrap().port() > 0);
    /// assert_eq!(a.detach().unwrap_err().name(), "closed");
    /// ```
    pub fn detach(&self) -> Result<Tcp> {
        Ok(Tcp {
            s: self.s.detach()?,
        })
    }

    /// The hints this socket resolves addresses with (its family, type and
    /// protocol): for a [`Connect`] made from a host and port.
    ///
    /// ```
    /// let t = sock::Tcp::new(sock::Family::Inet6).unwrap();
    /// let list = sock::addr_with("::1", 80, &t.hints()).unwrap();
    /// assert_eq!(list.first().family(), sock::Family::Inet6);
    /// ```
    pub fn hints(&self) -> crate::Hints {
        self.s.hints(AddrFlags::empty())
    }

    /// Puts the socket in listening mode (`tcp:listen([backlog, ]host, port)`),
    /// binding it to `addr` first unless it is bound already (then `addr` is
    /// ignored). `backlog` `None` means the maximum the system allows.
    ///
    /// ```
    /// let l = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// l.listen(Some(128), ("127.0.0.1", 0)).unwrap();
    /// assert_eq!(l.getopt("so_acceptconn").unwrap(), sock::OptVal::Bool(true));
    /// ```
    pub fn listen(&self, backlog: Option<u32>, addr: impl ToAddr) -> Result<()> {
        if !self.s.is_bound() {
            self.s.bind(addr)?;
        }
        sys::socket::reserve_fd();
        let backlog = backlog.map_or(i32::MAX, |b| b.min(i32::MAX as u32) as i32);
        self.s.call(|s| s.listen(backlog))?;
        self.s.set_listening();
        self.keep_listen_addr()
    }

    /// Keeps the listener's local address when it is not a wildcard: every
    /// accepted connection has it as its local address.
    fn keep_listen_addr(&self) -> Result<()> {
        let local = self.s.local_addr()?;
        let specific = local.ip().is_some_and(|ip| !ip.to_std().is_unspecified());
        self.s.set_listen_addr(specific.then_some(local));
        Ok(())
    }

    /// Adopts a listening socket made elsewhere into this OS thread's loop:
    /// the way for several loops, on several OS threads, to accept from one
    /// listener. Each loop adopts its own clone (`try_clone`) of a
    /// `std::net::TcpListener`; on Linux's epoll the registration is exclusive
    /// (`EPOLLEXCLUSIVE`), so that a connection wakes one of the waiting
    /// loops, not all. The socket becomes non-blocking.
    ///
    /// (For servers, one `so_reuseport` listener per loop is the other way:
    /// the kernel then spreads the connections over the loops' own accept
    /// queues. `examples/multicore.rs` measures both.)
    ///
    /// Errors: `invalid_argument` for a socket that is not IPv4 or IPv6 TCP;
    /// one that is not listening fails in `accept`.
    ///
    /// ```
    /// use sock::Tcp;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let clone = listener.try_clone().unwrap(); // one per loop
    /// let worker = std::thread::spawn(move || {
    ///     // The worker's OS thread: its loop accepts from the listener.
    ///     let l = Tcp::from_listener(clone).unwrap();
    ///     let t = sock::newthread(async move {
    ///         l.accept(Some(sock::clock() + 5.0)).await.map(|_| ())
    ///     });
    ///     sock::start().unwrap();
    ///     matches!(t.result(), Some(Ok(Ok(()))))
    /// });
    /// let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    /// assert!(worker.join().unwrap());
    /// ```
    pub fn from_listener(listener: std::net::TcpListener) -> Result<Tcp> {
        let s = Socket::adopt_listener(socket2::Socket::from(listener))?;
        sys::socket::reserve_fd();
        let l = Tcp { s };
        l.keep_listen_addr()?;
        Ok(l)
    }

    /// Accepts a connection: returns it with its remote and local addresses.
    ///
    /// The new socket is non-blocking, close-on-exec, and registered with this
    /// loop. On `timeout` the listener stays usable. Several threads may wait
    /// in `accept` on one listener; each connection goes to exactly one of them.
    ///
    /// When the process is out of descriptors the pending connection is
    /// accepted and closed at once (through a descriptor kept in reserve) and
    /// the call fails with `too_many_open_files`: retrying does not spin on a
    /// connection that can never be accepted.
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t1 = sock::newthread(async move {
    ///     let (conn, remote, local) = l.accept(Some(sock::clock() + 1.0)).await?;
    ///     assert_eq!(local, l.local_addr()?);
    ///     assert_eq!(remote, conn.peer_addr()?);
    ///     // With no client, accept times out and the listener stays usable.
    ///     let e = l.accept(Some(sock::clock() + 0.01)).await.map(|_| ());
    ///     assert_eq!(e.unwrap_err().name(), "timeout");
    ///     sock::Result::Ok(())
    /// });
    /// let t2 = sock::newthread(async move { Tcp::new(Family::Inet)?.connect(addr, None).await });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
    /// ```
    pub async fn accept(&self, expires: Option<f64>) -> Result<(Tcp, SockAddr, SockAddr)> {
        let deadline = deadline(expires)?;
        self.s.require_thread()?;
        self.s.drive_ref(AcceptOn(self), Ok(deadline)).await
    }

    /// Sends bytes; returns how many the kernel took (at least one, unless
    /// `buf` is empty). Waits while the send buffer is full.
    ///
    /// Several threads may send on one socket (this and
    /// [`sendall`](Self::sendall) alike): a call that finds nobody else
    /// writing and room in the buffer sends at once; one that must wait holds the socket's
    /// write turn until it ends (done, failed, timed out, or the socket
    /// closed), and the others queue behind it and are served in the order
    /// they came, each under its own deadline (a queued call that times out
    /// leaves the queue having sent nothing). So the bytes of one call are
    /// never mixed with another's on the stream. Closing the socket wakes
    /// every queued writer with `closed`. Reading is not shared: a second
    /// thread that waits to read while one already does gets `busy`.
    ///
    /// ```
    /// # let (a, b) = sock_pair();
    /// let t1 = sock::newthread(async move {
    ///     assert_eq!(a.send(b"hi", None).await?, 2);
    ///     let mut buf = [0u8; 8];
    ///     assert_eq!(b.recv(&mut buf, None).await?, 2);
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// # fn sock_pair() -> (sock::Tcp, sock::Tcp) {
    /// #     let l = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// #     l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// #     let c = std::rc::Rc::new(std::cell::RefCell::new(None));
    /// #     let (c2, addr) = (c.clone(), l.local_addr().unwrap());
    /// #     sock::newthread(async move {
    /// #         let t = sock::Tcp::new(sock::Family::Inet)?;
    /// #         t.connect(addr, None).await?;
    /// #         *c2.borrow_mut() = Some(t);
    /// #         sock::Result::Ok(())
    /// #     });
    /// #     let s = std::rc::Rc::new(std::cell::RefCell::new(None));
    /// #     let s2 = s.clone();
    /// #     sock::newthread(async move { *s2.borrow_mut() = Some(l.accept(None).await?.0); sock::Result::Ok(()) });
    /// #     sock::start().unwrap();
    /// #     let (c, s) = (c.borrow_mut().take().unwrap(), s.borrow_mut().take().unwrap());
    /// #     (c, s)
    /// # }
    /// ```
    pub fn send<'a>(
        &'a self,
        buf: &'a [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = Result<usize>> + 'a {
        self.s.send(buf, deadline(expires))
    }

    /// Receives up to `buf.len()` bytes: returns what is there without waiting
    /// to fill the buffer, waiting only when nothing is. Returns 0 at end of
    /// stream (the peer sent a FIN), every time after that too.
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t1 = sock::newthread(async move {
    ///     let (conn, _, _) = l.accept(None).await?;
    ///     conn.sendall(b"abc", None).await // then conn is dropped: FIN
    /// });
    /// let t2 = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, None).await?;
    ///     let mut buf = [0u8; 100];
    ///     let mut got = 0;
    ///     loop {
    ///         match c.recv(&mut buf[got..], Some(sock::clock() + 1.0)).await? {
    ///             0 => break, // end of stream
    ///             n => got += n,
    ///         }
    ///     }
    ///     assert_eq!(&buf[..got], b"abc");
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
    /// ```
    pub fn recv<'a>(
        &'a self,
        buf: &'a mut [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = Result<usize>> + 'a {
        self.s
            .drive_ref(RecvOn { tcp: self, buf }, deadline(expires))
    }

    /// Sends all of `buf`, repeating `send` under one deadline. On error,
    /// [`Error::done`] tells how many bytes were sent.
    ///
    /// Several threads may `sendall` (or [`send`](Self::send)) on one socket:
    /// each call's bytes go out contiguous, never mixed with another's, and
    /// the calls that wait are served in the order they came, each under its
    /// own deadline (a second reader, by contrast, gets `busy`). A call that
    /// has sent part of its buffer holds the socket's write side until it is
    /// over; closing the socket wakes every queued writer with `closed`.
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t1 = sock::newthread(async move {
    ///     let (conn, _, _) = l.accept(None).await?;
    ///     conn.sendall(&vec![7u8; 1 << 20], Some(sock::clock() + 5.0)).await
    /// });
    /// let t2 = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, None).await?;
    ///     let mut buf = vec![0u8; 1 << 20];
    ///     c.recvall(&mut buf, Some(sock::clock() + 5.0)).await?;
    ///     assert!(buf.iter().all(|&b| b == 7));
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
    /// ```
    pub fn sendall<'a>(
        &'a self,
        buf: &'a [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = Result<()>> + 'a {
        let op = AllOn {
            tcp: self,
            all: SendAll::new(),
            buf,
        };
        self.s.drive_ref(op, deadline(expires))
    }

    /// Fills all of `buf`, repeating `recv` under one deadline. If the stream
    /// ends first the error is `eof`; on any error [`Error::done`] tells how
    /// many bytes were received (they are in `buf`).
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t1 = sock::newthread(async move {
    ///     let (conn, _, _) = l.accept(None).await?;
    ///     conn.sendall(b"only 10 b", None).await
    /// });
    /// let t2 = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, None).await?;
    ///     let mut buf = [0u8; 64];
    ///     let e = c.recvall(&mut buf, Some(sock::clock() + 1.0)).await.unwrap_err();
    ///     assert_eq!((e.name(), e.done()), ("eof", 9));
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
    /// ```
    pub fn recvall<'a>(
        &'a self,
        buf: &'a mut [u8],
        expires: Option<f64>,
    ) -> impl Future<Output = Result<()>> + 'a {
        let op = AllOn {
            tcp: self,
            all: RecvAll::new(),
            buf,
        };
        self.s.drive_ref(op, deadline(expires))
    }

    /// Receives until the peer closes, appending to `buf` (which grows as a
    /// `Vec` does; each receive takes up to 64 KiB), under one deadline: the number of bytes
    /// appended. On error [`Error::done`] tells how many were appended (they
    /// are in `buf`). The later versions' `recvall()` without a buffer.
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t1 = sock::newthread(async move {
    ///     let (conn, _, _) = l.accept(None).await?;
    ///     conn.sendall(&vec![7u8; 300_000], None).await // then dropped: FIN
    /// });
    /// let t2 = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, None).await?;
    ///     let mut all = Vec::new();
    ///     let n = c.recv_to_end(&mut all, Some(sock::clock() + 5.0)).await?;
    ///     assert_eq!((n, all.len()), (300_000, 300_000));
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
    /// ```
    pub async fn recv_to_end(&self, buf: &mut Vec<u8>, expires: Option<f64>) -> Result<usize> {
        const STEP: usize = 64 * 1024;
        let start = buf.len();
        loop {
            let len = buf.len();
            buf.resize(len + STEP, 0);
            match self.recv(&mut buf[len..], expires).await {
                Ok(0) => {
                    buf.truncate(len);
                    return Ok(len - start);
                }
                Ok(n) => buf.truncate(len + n),
                Err(e) => {
                    buf.truncate(len);
                    return Err(e.with_done(len - start));
                }
            }
        }
    }

    /// One non-blocking `accept`: the connection with its remote and local
    /// addresses, or `None` if none is pending. For code that waits by itself
    /// (see [`wait`](Self::wait)); [`accept`](Self::accept) is this plus the wait.
    ///
    /// ```
    /// let l = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// assert!(l.try_accept().unwrap().is_none());
    /// ```
    pub fn try_accept(&self) -> Result<Option<(Tcp, SockAddr, SockAddr)>> {
        self.step_accept(false).ready()
    }

    /// One step of [`accept`](Self::accept), for an [`Op`]: `force` makes
    /// the attempt whatever the readiness.
    ///
    /// ```
    /// let l = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// assert!(!l.step_accept(true).is_ready()); // nobody connects
    /// ```
    pub fn step_accept(&self, force: bool) -> Step<(Tcp, SockAddr, SockAddr)> {
        self.s
            .step(Direction::Read, force, sys::socket::accept_or_shed)
            .and_then(|(conn, remote)| {
                let s = self.s.accepted(conn)?;
                let conn = Tcp { s };
                let local = match self.s.listen_addr() {
                    Some(a) => a,
                    None => conn.local_addr()?,
                };
                Ok((conn, SockAddr::from(remote), local))
            })
    }

    /// One non-blocking step of connecting to `addr`: `Ok(true)` once
    /// connected, `Ok(false)` while in progress (wait until writable, then call
    /// again to learn the outcome). [`connect`](Self::connect) is this plus the
    /// lookup and the waits.
    ///
    /// ```
    /// let l = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let c = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// while !c.try_connect(&addr).unwrap() {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// }
    /// assert_eq!(c.peer_addr().unwrap(), addr);
    /// ```
    pub fn try_connect(&self, addr: &SockAddr) -> Result<bool> {
        self.s.try_connect(addr)
    }

    /// One non-blocking `send`: how many bytes the kernel took, or `None` if
    /// its buffer is full.
    ///
    /// ```
    /// let t = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// assert!(t.try_send(b"x").is_err()); // not connected
    /// # let _ = "broken_pipe on Linux, not_connected elsewhere";
    /// ```
    pub fn try_send(&self, buf: &[u8]) -> Result<Option<usize>> {
        self.s.step_send(buf, false).ready()
    }

    /// One step of [`send`](Self::send), for an [`Op`].
    ///
    /// ```
    /// let t = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// assert!(t.step_send(b"x", false).ready().is_err()); // not connected
    /// ```
    pub fn step_send(&self, buf: &[u8], force: bool) -> Step<usize> {
        self.s.step_send(buf, force)
    }

    /// One non-blocking gathering send of `bufs` in one syscall (`sendmsg`),
    /// as a step: the bytes sent (from the first buffer on), or `Wait`.
    /// For layers that queue several records (TLS).
    ///
    /// ```
    /// use std::io::IoSlice;
    /// let t = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// let s = t.step_send_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"c")], true);
    /// assert!(s.ready().is_err()); // not connected
    /// ```
    pub fn step_send_vectored(&self, bufs: &[std::io::IoSlice<'_>], force: bool) -> Step<usize> {
        self.s.step_send_vectored(bufs, force)
    }

    /// One non-blocking `recv`: the bytes read (0 at end of stream), or
    /// `None` if nothing is there yet.
    ///
    /// ```
    /// let t = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// let mut buf = [0u8; 4];
    /// assert_eq!(t.try_recv(&mut buf).unwrap_err().name(), "not_connected");
    /// ```
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.step_recv(buf, false).ready()
    }

    /// One step of [`recv`](Self::recv), for an [`Op`].
    ///
    /// ```
    /// let t = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// assert!(t.step_recv(&mut [0u8; 4], false).ready().is_err()); // not connected
    /// ```
    #[inline(always)]
    pub fn step_recv(&self, buf: &mut [u8], force: bool) -> Step<usize> {
        if !self.s.rbuf.is_empty() {
            return Step::Ready(Ok(self.take_buffered(buf).unwrap_or(0)));
        }
        // The one attempt, inlined: the hot path of every stream read.
        self.s
            .step(Direction::Read, force, |sk| self.s.read_stream(sk, buf))
    }

    /// Bytes the buffered reads left, if any, moved into `buf`.
    #[inline(never)]
    fn take_buffered(&self, buf: &mut [u8]) -> Option<usize> {
        self.s.rbuf.take_into(buf)
    }

    /// Calls `f` with the read-ahead buffer.
    fn with_rbuf<R>(&self, f: impl FnOnce(&mut ReadBuffer) -> R) -> R {
        self.s.rbuf.with(f)
    }

    /// Reads a line: appends it to `out` (with its end, `\n` or `\r\n`, if
    /// `keep_eol`) and returns the bytes it took from the stream, the end
    /// included; 0 at the end of the stream. The last line may lack its end.
    /// A line longer than `max` bytes (its end included) is
    /// `message_too_big`, and its bytes stay readable (by `recv`, say). The
    /// bytes read past the line stay buffered for the next read of any kind;
    /// the buffer is the loop's pooled memory only while it holds some, so a
    /// connection waiting for its next line holds none.
    ///
    /// ```
    /// use sock::{Family, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, None).await?;
    ///     let (s, _, _) = l.accept(None).await?;
    ///     c.sendall(b"HELO x\r\nQUIT\n", None).await?;
    ///     drop(c);
    ///     let mut line = Vec::new();
    ///     assert_eq!(s.read_line(&mut line, 512, false, None).await?, 8);
    ///     assert_eq!(line, b"HELO x");
    ///     line.clear();
    ///     s.read_line(&mut line, 512, false, None).await?;
    ///     assert_eq!(line, b"QUIT");
    ///     assert_eq!(s.read_line(&mut line, 512, false, None).await?, 0); // the end
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t.result(), Some(Ok(Ok(())))));
    /// ```
    pub fn read_line<'a>(
        &'a self,
        out: &'a mut Vec<u8>,
        max: usize,
        keep_eol: bool,
        expires: Option<f64>,
    ) -> impl Future<Output = Result<usize>> + 'a {
        // `read_until`'s future itself: a thread parked in a line holds it
        // once, not inside a second future that keeps these arguments too.
        self.read_until(b"\n", out, max, keep_eol, expires)
    }

    /// Reads up to and including the delimiter `delim` (see
    /// [`read_line`](Self::read_line), whose delimiter is `\n`): appends
    /// the record to `out`, with `delim` if `keep`, and returns the bytes
    /// taken from the stream; 0 at the end of the stream.
    pub fn read_until<'a>(
        &'a self,
        delim: &'a [u8],
        out: &'a mut Vec<u8>,
        max: usize,
        keep: bool,
        expires: Option<f64>,
    ) -> impl Future<Output = Result<usize>> + 'a {
        // The driver of the operation, which takes the record out itself:
        // a thread parked in a line holds this and nothing more.
        let op = UntilOn {
            tcp: self,
            delim,
            max,
            keep,
            out,
        };
        self.s.drive_ref(op, deadline(expires))
    }

    /// One step of [`read_until`](Self::read_until), for an [`Op`] (a
    /// binding's): the record's length once it is buffered whole (its bytes:
    /// [`with_buffered`](Self::with_buffered), then
    /// [`consume_buffered`](Self::consume_buffered); without the delimiter:
    /// [`record_len`](crate::op::record_len)); `eof` at the end of the
    /// stream with nothing buffered.
    pub fn step_read_until(&self, delim: &[u8], max: usize, force: bool) -> Step<usize> {
        self.with_rbuf(|b| b.step_until(delim, max, force, |b, f| self.s.step_recv_stream(b, f)))
    }

    /// One step of buffering at least `want` bytes (at most `cap`), for an
    /// [`Op`] (a binding's exact or "what is there" reads): the bytes
    /// buffered; at the end of the stream what there is, `eof` if nothing.
    pub fn step_read_fill(&self, want: usize, cap: usize, force: bool) -> Step<usize> {
        self.with_rbuf(|b| b.step_fill_to(want, cap, force, |b, f| self.s.step_recv_stream(b, f)))
    }

    /// Calls `f` with the bytes the buffered reads hold (not taking them).
    pub fn with_buffered<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.with_rbuf(|b| f(b.buffered()))
    }

    /// Takes the first `n` buffered bytes (after
    /// [`step_read_until`](Self::step_read_until) or
    /// [`step_read_fill`](Self::step_read_fill) and
    /// [`with_buffered`](Self::with_buffered)).
    pub fn consume_buffered(&self, n: usize) {
        self.with_rbuf(|b| b.consume(n))
    }

    /// How many bytes the buffered reads hold (read from the socket, not yet
    /// taken).
    pub fn buffered(&self) -> usize {
        self.with_rbuf(|b| b.len())
    }

    /// Waits until the socket may be ready in `dir`, or `expires` passes: the
    /// wait of the blocking calls without their syscall, for code that makes
    /// its own non-blocking attempts (the `try_` methods). `Ok(())` means "try
    /// again" (the attempt may still find nothing); see [`Wait`](crate::Wait).
    /// On a listener, several threads may wait to read (accept) together.
    ///
    /// ```
    /// let l = sock::Tcp::new(sock::Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let t = sock::newthread(async move {
    ///     // No client comes: the wait ends at its deadline.
    ///     let r = l.wait(sock::Direction::Read, Some(sock::clock() + 0.01)).await;
    ///     assert_eq!(r.unwrap_err().name(), "timeout");
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t.result(), Some(Ok(Ok(())))));
    /// ```
    pub fn wait(&self, dir: crate::Direction, expires: Option<f64>) -> crate::Wait {
        self.s.wait(dir, expires)
    }

    /// Shuts down one or both directions; does not block. `Write` sends a FIN
    /// after the pending data: the peer's `recv` returns 0 while this side can
    /// still receive what the peer sends back.
    ///
    /// ```
    /// use sock::{Family, Shutdown, Tcp};
    /// let l = Tcp::new(Family::Inet).unwrap();
    /// l.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let t1 = sock::newthread(async move {
    ///     let (conn, _, _) = l.accept(None).await?;
    ///     let mut buf = [0u8; 8];
    ///     assert_eq!(conn.recv(&mut buf, None).await?, 0); // the client's FIN
    ///     conn.sendall(b"bye", None).await // the server can still send
    /// });
    /// let t2 = sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, None).await?;
    ///     c.shutdown("w".parse::<Shutdown>()?)?;
    ///     let mut buf = [0u8; 3];
    ///     c.recvall(&mut buf, Some(sock::clock() + 1.0)).await?;
    ///     assert_eq!(&buf, b"bye");
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert!(matches!(t1.result(), Some(Ok(Ok(_)))));
    /// assert!(matches!(t2.result(), Some(Ok(Ok(_)))));
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        let how = match how {
            Shutdown::Read => std::net::Shutdown::Read,
            Shutdown::Write => std::net::Shutdown::Write,
            Shutdown::Both => std::net::Shutdown::Both,
        };
        self.s.call(|s| s.shutdown(how))
    }
}

/// Connecting over a list of resolved addresses as an [`Op`]'s state: each
/// address in turn, under the one deadline of the driver.
///
/// An address that fails (refused, unreachable, ...) passes to the next; the
/// last error is the result if every one fails (`host_not_found` for an
/// empty list). A timeout or a closed socket ends the whole operation. A full
/// Unix listener backlog (`try_again`, which no readiness announces) is tried
/// again every millisecond. `L` is the list, owned or borrowed.
///
/// ```
/// use sock::op::{Connect, Op, Step};
/// use sock::{Family, Tcp};
///
/// // A connect of one's own, driven on its socket.
/// struct Dial<'a> {
///     tcp: &'a Tcp,
///     connect: Connect<sock::AddrList>,
/// }
/// impl Op for Dial<'_> {
///     type Output = ();
///     fn step(&mut self, force: bool) -> Step<()> {
///         self.connect.step(self.tcp, force)
///     }
/// }
///
/// let l = Tcp::new(Family::Inet).unwrap();
/// l.listen(None, ("127.0.0.1", 0)).unwrap();
/// let port = l.local_addr().unwrap().port();
/// let t = sock::newthread(async move {
///     let tcp = Tcp::new(Family::Inet)?;
///     let list = sock::addr_with("127.0.0.1", port, &tcp.hints())?;
///     let dial = Dial { tcp: &tcp, connect: Connect::new(list) };
///     tcp.drive(dial, Some(sock::clock() + 5.0)).await?;
///     sock::Result::Ok(tcp.peer_addr()?.port())
/// });
/// sock::start().unwrap();
/// assert!(matches!(t.result(), Some(Ok(Ok(p))) if p == port));
/// ```
#[derive(Debug)]
pub struct Connect<L> {
    list: L,
    next: usize,
    last: Option<Error>,
}

impl<L: std::borrow::Borrow<AddrList>> Connect<L> {
    /// A connect to the addresses of `list`, from the first.
    pub fn new(list: L) -> Connect<L> {
        Connect {
            list,
            next: 0,
            last: None,
        }
    }

    /// The index of the address being tried.
    pub fn address(&self) -> usize {
        self.next
    }

    /// One step on `tcp`: connected, wait until writable (in progress), or
    /// sleep (a full Unix backlog). `force` needs nothing here: the
    /// connect's own syscall reports its outcome.
    pub fn step(&mut self, tcp: &Tcp, _force: bool) -> Step<()> {
        loop {
            let Some(ai) = self.list.borrow().addrs().nth(self.next) else {
                let e = self.last.take();
                return Step::Ready(Err(e.unwrap_or_else(|| Error::new(ErrorKind::HostNotFound))));
            };
            match tcp.s.try_connect(ai.addr()) {
                Ok(true) => return Step::Ready(Ok(())),
                Ok(false) => return Step::Wait(Direction::Write),
                Err(e) if e.kind() == ErrorKind::TryAgain => {
                    let soon = std::time::Instant::now() + std::time::Duration::from_millis(1);
                    return Step::Sleep(soon);
                }
                Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Closed) => {
                    return Step::Ready(Err(e))
                }
                Err(e) => {
                    self.last = Some(e);
                    self.next += 1;
                }
            }
        }
    }
}

/// [`Connect`] on its socket, for [`Tcp::connect`].
struct ConnectOn<'a, L> {
    tcp: &'a Tcp,
    connect: Connect<L>,
}

impl<L: std::borrow::Borrow<AddrList>> Op for ConnectOn<'_, L> {
    type Output = ();

    fn step(&mut self, force: bool) -> Step<()> {
        self.connect.step(self.tcp, force)
    }
}

/// [`Tcp::step_accept`] as an [`Op`], for [`Tcp::accept`].
struct AcceptOn<'a>(&'a Tcp);

impl Op for AcceptOn<'_> {
    type Output = (Tcp, SockAddr, SockAddr);

    fn step(&mut self, force: bool) -> Step<Self::Output> {
        self.0.step_accept(force)
    }
}

/// [`Tcp::step_recv`] as an [`Op`], for [`Tcp::recv`]: buffered bytes first.
struct RecvOn<'a, 'b> {
    tcp: &'a Tcp,
    buf: &'b mut [u8],
}

impl Op for RecvOn<'_, '_> {
    type Output = usize;

    #[inline(always)]
    fn step(&mut self, force: bool) -> Step<usize> {
        self.tcp.step_recv(self.buf, force)
    }
}

/// [`Tcp::step_read_until`] as an [`Op`], for [`Tcp::read_until`].
struct UntilOn<'a> {
    tcp: &'a Tcp,
    delim: &'a [u8],
    max: usize,
    keep: bool,
    /// Where the record goes once it is buffered whole.
    out: &'a mut Vec<u8>,
}

impl Op for UntilOn<'_> {
    type Output = usize;

    fn step(&mut self, force: bool) -> Step<usize> {
        match self.tcp.step_read_until(self.delim, self.max, force) {
            Step::Ready(Ok(n)) => {
                let (delim, keep) = (self.delim, self.keep);
                self.tcp
                    .with_rbuf(|b| b.take_record(n, delim, keep, self.out));
                Step::Ready(Ok(n))
            }
            Step::Ready(Err(e)) if e.kind() == ErrorKind::Eof => Step::Ready(Ok(0)),
            other => other,
        }
    }
}

/// Sending all of a buffer as an [`Op`]'s state: as many sends as the kernel
/// takes, resumed where the last step stopped. Its errors carry the bytes
/// sent ([`Error::done`]).
///
/// ```
/// let all = sock::op::SendAll::new();
/// assert_eq!(all.done(), 0);
/// ```
#[derive(Debug, Default)]
pub struct SendAll {
    done: usize,
}

impl SendAll {
    /// A send of a whole buffer, none of it sent yet.
    pub fn new() -> SendAll {
        SendAll { done: 0 }
    }

    /// The bytes sent so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// One step on `tcp` with `buf` (the same buffer at every step): sends
    /// until all of it went, or the kernel takes no more.
    #[inline]
    pub fn step(&mut self, tcp: &Tcp, buf: &[u8], force: bool) -> Step<()> {
        if self.done >= buf.len() {
            return Step::Ready(Ok(()));
        }
        let done = &mut self.done;
        let s = &tcp.s;
        let step = s.step(Direction::Write, force, |sk| {
            while *done < buf.len() {
                *done += sk.send_with_flags(&buf[*done..], sys::socket::SEND_FLAGS)?;
            }
            Ok(())
        });
        match step {
            Step::Ready(Err(e)) => Step::Ready(Err(self.fail(e))),
            other => other,
        }
    }

    /// `e` with the bytes sent.
    pub fn fail(&self, e: Error) -> Error {
        e.with_done(self.done)
    }
}

/// Filling a buffer as an [`Op`]'s state: reads until it is full, resumed
/// where the last step stopped; `eof` if the stream ends first. Its errors
/// carry the bytes received ([`Error::done`]).
///
/// ```
/// let all = sock::op::RecvAll::new();
/// assert_eq!(all.done(), 0);
/// ```
#[derive(Debug, Default)]
pub struct RecvAll {
    done: usize,
}

impl RecvAll {
    /// A receive into a whole buffer, none of it filled yet.
    pub fn new() -> RecvAll {
        RecvAll { done: 0 }
    }

    /// The bytes received so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// One step on `tcp` into `buf` (the same buffer at every step).
    #[inline]
    pub fn step(&mut self, tcp: &Tcp, buf: &mut [u8], force: bool) -> Step<()> {
        let from = self.done.min(buf.len());
        if let Some(n) = tcp.take_buffered(&mut buf[from..]) {
            self.done += n;
        }
        if self.done >= buf.len() {
            return Step::Ready(Ok(()));
        }
        let done = &mut self.done;
        let s = &tcp.s;
        let step = s.step(Direction::Read, force, |sk| {
            while *done < buf.len() {
                match s.read_stream(sk, &mut buf[*done..])? {
                    0 => return Err(eof()),
                    n => *done += n,
                }
            }
            Ok(())
        });
        match step {
            Step::Ready(Err(e)) => Step::Ready(Err(self.fail(e))),
            other => other,
        }
    }

    /// `e` with the bytes received (the end of the stream as plain `eof`).
    pub fn fail(&self, e: Error) -> Error {
        match e.kind() {
            ErrorKind::Eof => Error::new(ErrorKind::Eof).with_done(self.done),
            _ => e.with_done(self.done),
        }
    }
}

/// [`SendAll`] or [`RecvAll`] on its socket and buffer, for
/// [`Tcp::sendall`] and [`Tcp::recvall`].
struct AllOn<'a, A, B> {
    tcp: &'a Tcp,
    all: A,
    buf: B,
}

impl Op for AllOn<'_, SendAll, &[u8]> {
    type Output = ();

    fn step(&mut self, force: bool) -> Step<()> {
        self.all.step(self.tcp, self.buf, force)
    }

    fn fail(&self, e: Error) -> Error {
        self.all.fail(e)
    }
}

impl Op for AllOn<'_, RecvAll, &mut [u8]> {
    type Output = ();

    fn step(&mut self, force: bool) -> Step<()> {
        self.all.step(self.tcp, self.buf, force)
    }

    fn fail(&self, e: Error) -> Error {
        self.all.fail(e)
    }
}
