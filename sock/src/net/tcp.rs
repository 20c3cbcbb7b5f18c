//! TCP sockets.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use crate::addr::{AddrFlags, Family, Protocol, SockAddr, SocketType, ToAddr};
use crate::error::{Error, ErrorKind, Result};
use crate::reactor::Dir;
use crate::socket::{socket_common, Socket};
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
/// in each direction; a second one gets the `busy` error.
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
/// sock::newthread(async move {
///     let (conn, _remote, _local) = srv.accept(None).await.unwrap();
///     let mut buf = [0u8; 5];
///     conn.recvall(&mut buf, None).await.unwrap();
///     conn.sendall(&buf, None).await.unwrap();
/// });
/// sock::newthread(async move {
///     let c = Tcp::new(Family::Inet).unwrap();
///     c.connect(addr, Some(sock::clock() + 5.0)).await.unwrap();
///     c.sendall(b"hello", None).await.unwrap();
///     let mut buf = [0u8; 5];
///     c.recvall(&mut buf, None).await.unwrap();
///     assert_eq!(&buf, b"hello");
/// });
/// sock::start().unwrap();
/// ```
#[derive(Debug)]
pub struct Tcp {
    s: Socket,
    /// A listener's local address when it is not a wildcard: every accepted
    /// connection has it as its local address, without a `getsockname`.
    listen_addr: RefCell<Option<SockAddr>>,
}

/// Which direction [`Tcp::shutdown`] closes: the seed's `'r'`, `'w'`, `'rw'`.
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

socket_common!(Tcp);

impl Tcp {
    /// Makes a TCP socket of `family` (`sock.tcp(family)`; the seed's default
    /// family is `Inet`).
    pub fn new(family: Family) -> Result<Tcp> {
        Tcp::with_protocol(family, None)
    }

    /// Makes a TCP socket with an explicit protocol (`sock.tcp(family, protocol)`).
    pub fn with_protocol(family: Family, protocol: Option<Protocol>) -> Result<Tcp> {
        let s = Socket::new(SocketType::Tcp, family, protocol)?;
        Ok(Tcp {
            s,
            listen_addr: RefCell::new(None),
        })
    }

    /// Connects to `addr` (host and port, or a resolved address), trying each
    /// resolved address in order under the one deadline `expires`.
    ///
    /// Binds implicitly. After a `timeout`, calling `connect` again goes on
    /// waiting for the same attempt. Errors: `connection_refused`, `timeout`,
    /// `host_not_found`, `network_unreachable`, `already_connected`, ...
    pub async fn connect(&self, addr: impl ToAddr, expires: Option<f64>) -> Result<()> {
        let deadline = deadline(expires)?;
        let list = addr.to_addr(&self.s.hints(AddrFlags::empty()))?;
        let mut last = None;
        for ai in list.addrs() {
            match self.s.connect_one(ai.addr(), deadline).await {
                Ok(()) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Closed) => {
                    return Err(e)
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::HostNotFound)))
    }

    /// Puts the socket in listening mode (`tcp:listen([backlog, ]host, port)`),
    /// binding it to `addr` first unless it is bound already (then `addr` is
    /// ignored). `backlog` `None` means the maximum the system allows.
    pub fn listen(&self, backlog: Option<u32>, addr: impl ToAddr) -> Result<()> {
        if !self.s.is_bound() {
            self.s.bind(addr)?;
        }
        sys::socket::reserve_fd();
        let backlog = backlog.map_or(i32::MAX, |b| b.min(i32::MAX as u32) as i32);
        self.s.call(|s| s.listen(backlog))?;
        let local = self.s.local_addr()?;
        let specific = local.ip().is_some_and(|ip| !ip.to_std().is_unspecified());
        *self.listen_addr.borrow_mut() = specific.then_some(local);
        Ok(())
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
    pub async fn accept(&self, expires: Option<f64>) -> Result<(Tcp, SockAddr, SockAddr)> {
        let deadline = deadline(expires)?;
        let (conn, remote) = self
            .s
            .io(Dir::Read, deadline, sys::socket::accept_or_shed)
            .shared()
            .await?;
        let s = Socket::from_socket2(conn, SocketType::Tcp, self.s.family(), self.s.protocol())?;
        let conn = Tcp {
            s,
            listen_addr: RefCell::new(None),
        };
        let local = match &*self.listen_addr.borrow() {
            Some(a) => a.clone(),
            None => conn.local_addr()?,
        };
        Ok((conn, SockAddr::from(remote), local))
    }

    /// Sends bytes; returns how many the kernel took (at least one, unless
    /// `buf` is empty). Waits while the send buffer is full.
    pub async fn send(&self, buf: &[u8], expires: Option<f64>) -> Result<usize> {
        self.s.send(buf, deadline(expires)?).await
    }

    /// Receives up to `buf.len()` bytes: returns what is there without waiting
    /// to fill the buffer, waiting only when nothing is. Returns 0 at end of
    /// stream (the peer sent a FIN), every time after that too.
    pub async fn recv(&self, buf: &mut [u8], expires: Option<f64>) -> Result<usize> {
        self.s.recv(buf, deadline(expires)?).await
    }

    /// Sends all of `buf`, repeating `send` under one deadline. On error,
    /// [`Error::done`] tells how many bytes were sent.
    pub async fn sendall(&self, buf: &[u8], expires: Option<f64>) -> Result<()> {
        let deadline = deadline(expires)?;
        let mut done = 0;
        while done < buf.len() {
            match self.s.send(&buf[done..], deadline).await {
                Ok(n) => done += n,
                Err(e) => return Err(e.with_done(done)),
            }
        }
        Ok(())
    }

    /// Fills all of `buf`, repeating `recv` under one deadline. If the stream
    /// ends first the error is `eof`; on any error [`Error::done`] tells how
    /// many bytes were received (they are in `buf`).
    pub async fn recvall(&self, buf: &mut [u8], expires: Option<f64>) -> Result<()> {
        let deadline = deadline(expires)?;
        let mut done = 0;
        while done < buf.len() {
            match self.s.recv(&mut buf[done..], deadline).await {
                Ok(0) => return Err(Error::new(ErrorKind::Eof).with_done(done)),
                Ok(n) => done += n,
                Err(e) => return Err(e.with_done(done)),
            }
        }
        Ok(())
    }

    /// Shuts down one or both directions; does not block. `Write` sends a FIN
    /// after the pending data: the peer's `recv` returns 0 while this side can
    /// still receive what the peer sends back.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        let how = match how {
            Shutdown::Read => std::net::Shutdown::Read,
            Shutdown::Write => std::net::Shutdown::Write,
            Shutdown::Both => std::net::Shutdown::Both,
        };
        self.s.call(|s| s.shutdown(how))
    }
}
