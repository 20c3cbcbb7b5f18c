//! Unix-domain sockets: stream echo over a path with the addresses each side
//! sees, the socket file's life, abstract names (Linux), datagram sockets,
//! flow control, 1,000 clients, and connecting where nobody listens.
//! Everything in a fresh temporary directory, every wait bounded.

mod util;

use std::cell::Cell;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sock::{ErrorKind, Family, OptVal, Protocol, SockAddr, SocketType, Tcp, Udp};
use util::{run, within};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed (with its content)
/// when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sock-unix-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    /// A path in the directory, as a string (what the API takes as host).
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_socket_file(p: &str) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn exists(p: &str) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// A unique abstract name (`@...`).
#[cfg(target_os = "linux")]
fn abstract_name(what: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("@sock-test-{}-{what}-{n}", std::process::id())
}

/// Stream echo over a path: the addresses each side sees, type/family/protocol.
#[test]
fn stream_echo_over_a_path() {
    let dir = TempDir::new();
    let path = dir.path("echo.sock");
    run(5.0, async move {
        let l = Tcp::new(Family::Unix)?;
        assert_eq!(l.socket_type(), SocketType::Tcp);
        assert_eq!(l.family(), Family::Unix);
        assert_eq!(l.protocol(), Protocol::Ip);
        l.listen(None, (path.as_str(), 0))?;
        assert!(is_socket_file(&path), "listening creates the socket file");
        let la = l.local_addr()?;
        assert_eq!(la.family(), Family::Unix);
        assert_eq!(la.tostring(), path);
        assert_eq!(la.path(), Some(PathBuf::from(&path)));
        assert_eq!(la.port(), 0);
        assert_eq!(la.ip(), None);
        assert_eq!(l.getopt("so_acceptconn")?, OptVal::Bool(true));

        let srv = sock::newthread(async move {
            let (s, remote, local) = l.accept(within(2.0)).await?;
            assert_eq!(s.family(), Family::Unix);
            assert_eq!(s.socket_type(), SocketType::Tcp);
            let mut buf = [0u8; 64];
            loop {
                let n = s.recv(&mut buf, within(2.0)).await?;
                if n == 0 {
                    break;
                }
                s.sendall(&buf[..n], within(2.0)).await?;
            }
            sock::Result::Ok((remote, local, l))
        });
        let c = Tcp::new(Family::Unix)?;
        c.connect((path.as_str(), 0), within(2.0)).await?;
        assert_eq!(c.peer_addr()?.tostring(), path);
        assert_eq!(c.local_addr()?.tostring(), "", "the client is unnamed");
        for msg in [&b"hello"[..], b"over a unix path", &[0u8; 40]] {
            c.sendall(msg, within(1.0)).await?;
            let mut back = vec![0u8; msg.len()];
            c.recvall(&mut back, within(1.0)).await?;
            assert_eq!(back, msg);
        }
        c.shutdown(sock::Shutdown::Write)?;
        let mut b = [0u8; 4];
        assert_eq!(c.recv(&mut b, within(1.0)).await?, 0, "the server closed");
        let (remote, local, l) = srv.join().await??;
        assert_eq!(remote.family(), Family::Unix);
        assert_eq!(remote.tostring(), "", "an unnamed peer formats as \"\"");
        assert_eq!(remote.path(), None);
        assert_eq!(remote.unix_name(), None);
        assert_eq!(local.tostring(), path);
        // Closing the listener removes its file.
        assert!(is_socket_file(&path));
        l.close();
        assert!(!exists(&path), "close removes the socket file");
        Ok(())
    });
}

/// A client bound to a path of its own is seen by that path; a resolved
/// `SockAddr::unix` works as well as a (path, port) pair.
#[test]
fn named_client_and_resolved_address() {
    let dir = TempDir::new();
    let (spath, cpath) = (dir.path("server.sock"), dir.path("client.sock"));
    run(5.0, async move {
        let l = Tcp::new(Family::Unix)?;
        l.listen(Some(16), SockAddr::unix(&spath)?)?;
        let c = Tcp::new(Family::Unix)?;
        c.bind((cpath.as_str(), 0))?;
        assert!(is_socket_file(&cpath));
        c.connect(SockAddr::unix(&spath)?, within(2.0)).await?;
        let (s, remote, _) = l.accept(within(2.0)).await?;
        assert_eq!(remote.tostring(), cpath);
        assert_eq!(s.peer_addr()?.tostring(), cpath);
        assert_eq!(c.local_addr()?.tostring(), cpath);
        drop(c);
        assert!(
            !exists(&cpath),
            "dropping the bound client removes its file"
        );
        let mut b = [0u8; 1];
        assert_eq!(s.recv(&mut b, within(1.0)).await?, 0);
        drop(l);
        assert!(!exists(&spath), "dropping the listener removes its file");
        Ok(())
    });
}

/// The socket file is removed on close only if it is still the file the bind
/// created: a file put in its place meanwhile survives.
#[test]
fn socket_file_replaced_meanwhile_is_not_removed() {
    let dir = TempDir::new();
    let path = dir.path("replaced.sock");
    // Replaced by a regular file.
    let l = Tcp::new(Family::Unix).unwrap();
    l.listen(None, (path.as_str(), 0)).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not a socket").unwrap();
    l.close();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not a socket",
        "another file at the path is left alone"
    );
    std::fs::remove_file(&path).unwrap();

    // Replaced by another listener's socket: closing the first leaves the
    // second's file, and the second still accepts.
    let first = Tcp::new(Family::Unix).unwrap();
    first.listen(None, (path.as_str(), 0)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let second = Tcp::new(Family::Unix).unwrap();
    second.listen(None, (path.as_str(), 0)).unwrap();
    first.close();
    assert!(is_socket_file(&path), "the second listener's file stays");
    let p = path.clone();
    run(5.0, async move {
        let c = Tcp::new(Family::Unix)?;
        c.connect((p.as_str(), 0), within(2.0)).await?;
        second.accept(within(2.0)).await?;
        second.close();
        assert!(!exists(&p));
        Ok(())
    });
}

/// Binding a path that exists is address_already_in_use, and closing the
/// socket whose bind failed does not remove the other's file.
/// Reliability checklist: C1 (docs/reliability.md).
#[test]
fn bind_to_an_existing_path() {
    let dir = TempDir::new();
    let path = dir.path("taken.sock");
    let l = Tcp::new(Family::Unix).unwrap();
    l.listen(None, (path.as_str(), 0)).unwrap();
    let other = Tcp::new(Family::Unix).unwrap();
    let e = other.bind((path.as_str(), 0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddressAlreadyInUse, "{e}");
    let e = other.listen(None, (path.as_str(), 0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddressAlreadyInUse, "{e}");
    other.close();
    assert!(
        is_socket_file(&path),
        "the failed socket does not remove the file"
    );
    // A datagram socket on the same path too.
    let u = Udp::new(Family::Unix).unwrap();
    let e = u.bind((path.as_str(), 0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddressAlreadyInUse, "{e}");
    drop(u);
    assert!(is_socket_file(&path));
    drop(l);
    assert!(!exists(&path));
}

/// Paths the address type refuses.
#[test]
fn invalid_unix_paths() {
    let long = format!("/tmp/{}", "x".repeat(200));
    let t = Tcp::new(Family::Unix).unwrap();
    let e = t.bind((long.as_str(), 0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = t.bind(("/tmp/a\0b", 0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(!t.is_closed());
}

/// Abstract names: '@name' (Linux), no file, free again after close.
#[cfg(target_os = "linux")]
#[test]
fn abstract_names() {
    let name = abstract_name("stream");
    run(5.0, async move {
        let l = Tcp::new(Family::Unix)?;
        l.listen(None, (name.as_str(), 0))?;
        let la = l.local_addr()?;
        assert_eq!(la.tostring(), name);
        assert_eq!(la.unix_name().as_deref(), Some(name.as_str()));
        assert_eq!(la.path(), None, "an abstract name is not a path");
        assert!(!exists(&name), "no file named after it in the cwd");
        let again = Tcp::new(Family::Unix)?;
        let e = again.bind((name.as_str(), 0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddressAlreadyInUse, "{e}");

        let c = Tcp::new(Family::Unix)?;
        c.connect((name.as_str(), 0), within(2.0)).await?;
        assert_eq!(c.peer_addr()?.tostring(), name);
        let (s, remote, local) = l.accept(within(2.0)).await?;
        assert_eq!(remote.tostring(), "");
        assert_eq!(local.tostring(), name);
        c.sendall(b"abstract", within(1.0)).await?;
        let mut b = [0u8; 8];
        s.recvall(&mut b, within(1.0)).await?;
        assert_eq!(&b, b"abstract");
        // Gone with the socket: the name can be bound again at once.
        l.close();
        again.listen(None, (name.as_str(), 0))?;
        assert_eq!(again.local_addr()?.tostring(), name);

        // Datagrams between two abstract names.
        let (an, bn) = (abstract_name("dgram-a"), abstract_name("dgram-b"));
        let a = Udp::new(Family::Unix)?;
        a.bind((an.as_str(), 0))?;
        let b = Udp::new(Family::Unix)?;
        b.bind((bn.as_str(), 0))?;
        b.sendto((an.as_str(), 0), b"hi", within(1.0)).await?;
        let mut buf = [0u8; 8];
        let (n, from) = a.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!((&buf[..n], from.tostring()), (&b"hi"[..], bn.clone()));
        Ok(())
    });
}

/// Unix datagram sockets: sendto/recvnext with the source path, replies to
/// it, connect/send/recv, empty and truncated datagrams, file cleanup.
/// Reliability checklist: D4 (docs/reliability.md).
#[test]
fn datagrams_over_paths() {
    let dir = TempDir::new();
    let (pa, pb) = (dir.path("a.sock"), dir.path("b.sock"));
    run(5.0, async move {
        let a = Udp::new(Family::Unix)?;
        assert_eq!(a.socket_type(), SocketType::Udp);
        assert_eq!(a.family(), Family::Unix);
        assert_eq!(a.protocol(), Protocol::Ip);
        a.bind((pa.as_str(), 0))?;
        let b = Udp::new(Family::Unix)?;
        b.bind((pb.as_str(), 0))?;
        assert!(is_socket_file(&pa) && is_socket_file(&pb));

        assert_eq!(b.sendto((pa.as_str(), 0), b"ping", within(1.0)).await?, 4);
        let mut buf = [0u8; 64];
        let (n, from) = a.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from.family(), Family::Unix);
        assert_eq!(from.tostring(), pb, "the source path");
        a.sendto(&from, b"pong", within(1.0)).await?;
        let (n, from) = b.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!((&buf[..n], from.tostring()), (&b"pong"[..], pa.clone()));

        // Connected: send and recv; empty datagrams are length 0.
        b.connect((pa.as_str(), 0))?;
        assert_eq!(b.peer_addr()?.tostring(), pa);
        b.send(b"", within(1.0)).await?;
        b.send(b"after empty", within(1.0)).await?;
        assert_eq!(a.recv(&mut buf, within(1.0)).await?, 0);
        assert_eq!(a.recv(&mut buf, within(1.0)).await?, 11);
        // Truncation is reported.
        b.send(&[9u8; 100], within(1.0)).await?;
        let mut small = [0u8; 10];
        let e = a.recv(&mut small, within(1.0)).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.done(), small),
            (ErrorKind::MessageTooBig, 10, [9u8; 10])
        );
        // Nothing else is queued: the rest of that datagram was dropped.
        let t0 = sock::clock();
        let e = a.recv(&mut buf, Some(t0 + 0.05)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(sock::clock() >= t0 + 0.05);

        a.close();
        b.close();
        assert!(!exists(&pa) && !exists(&pb), "close removes both files");
        Ok(())
    });
}

/// A datagram from an unbound unix socket: recvnext reports an unnamed unix
/// address, formatted as "".
#[test]
fn datagram_from_an_unnamed_sender() {
    let dir = TempDir::new();
    let pa = dir.path("a.sock");
    run(5.0, async move {
        let a = Udp::new(Family::Unix)?;
        a.bind((pa.as_str(), 0))?;
        let anon = Udp::new(Family::Unix)?;
        anon.sendto((pa.as_str(), 0), b"who?", within(1.0)).await?;
        let mut buf = [0u8; 16];
        let (n, from) = a.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!(&buf[..n], b"who?");
        assert_eq!(
            from.try_family(),
            Some(Family::Unix),
            "the source of a unix datagram is a unix address, got {from:?}"
        );
        assert_eq!(from.tostring(), "");
        assert_eq!(from.unix_name(), None);
        Ok(())
    });
}

/// Unix datagrams are reliable: with the receiver's queue full (a few
/// datagrams: net.unix.max_dgram_qlen), the sender waits instead of losing
/// any. Unconnected (sendto) and connected (send) senders.
#[test]
fn datagram_flow_control_loses_nothing() {
    let dir = TempDir::new();
    let pa = dir.path("sink.sock");
    run(30.0, async move {
        const N: u32 = 3000;
        let a = Udp::new(Family::Unix)?;
        a.bind((pa.as_str(), 0))?;
        for connected in [false, true] {
            let p = pa.clone();
            let sender = sock::newthread(async move {
                let s = Udp::new(Family::Unix)?;
                if connected {
                    s.connect((p.as_str(), 0))?;
                }
                let to = SockAddr::unix(&p)?;
                for i in 0..N {
                    let msg = i.to_be_bytes();
                    if connected {
                        s.send(&msg, within(5.0)).await?;
                    } else {
                        s.sendto(&to, &msg, within(5.0)).await?;
                    }
                }
                sock::Result::Ok(())
            });
            let mut buf = [0u8; 8];
            for i in 0..N {
                // Read slowly at first so that the sender finds the queue full.
                if i < 20 {
                    sock::sleep(0.002).await?;
                }
                let n = a.recv(&mut buf, within(5.0)).await.inspect_err(|_| {
                    eprintln!("connected = {connected}: datagram {i} of {N} missing");
                })?;
                assert_eq!(n, 4);
                assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()), i);
            }
            sender.join().await??;
        }
        Ok(())
    });
}

/// 1,000 client threads echo through one unix stream server (an acceptor
/// thread with a thread per connection), in one loop.
#[test]
fn thousand_clients_echo_through_one_unix_server() {
    let dir = TempDir::new();
    let path = dir.path("many.sock");
    run(60.0, async move {
        const CLIENTS: usize = 1000;
        const ROUNDS: usize = 3;
        let l = Tcp::new(Family::Unix)?;
        l.listen(None, (path.as_str(), 0))?;
        let acceptor = util::echo_server(l, CLIENTS);
        let done = Rc::new(Cell::new(0usize));
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            let (p, done) = (path.clone(), Rc::clone(&done));
            clients.push(sock::newthread(async move {
                let c = Tcp::new(Family::Unix)?;
                c.connect((p.as_str(), 0), within(20.0)).await?;
                for r in 0..ROUNDS {
                    let msg = format!("client {i} round {r}");
                    c.sendall(msg.as_bytes(), within(20.0)).await?;
                    let mut buf = vec![0u8; msg.len()];
                    c.recvall(&mut buf, within(20.0)).await?;
                    assert_eq!(buf, msg.as_bytes());
                }
                done.set(done.get() + 1);
                sock::Result::Ok(())
            }));
        }
        for t in clients {
            t.join().await??;
        }
        acceptor.join().await??;
        assert_eq!(done.get(), CLIENTS);
        Ok(())
    });
}

/// Connecting where nobody listens: a stale socket file, a socket that is
/// bound but not listening, and a regular file are connection_refused; a
/// missing path is not_found (ENOENT).
/// Reliability checklist: B1 (docs/reliability.md).
#[test]
fn connect_where_nobody_listens() {
    let dir = TempDir::new();
    let (missing, stale, unlistened, regular) = (
        dir.path("missing.sock"),
        dir.path("stale.sock"),
        dir.path("bound.sock"),
        dir.path("regular"),
    );
    // std does not remove the file of a closed listener: a stale socket file.
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(is_socket_file(&stale));
    std::fs::write(&regular, b"x").unwrap();
    run(5.0, async move {
        let bound = Tcp::new(Family::Unix)?;
        bound.bind((unlistened.as_str(), 0))?;
        for p in [&stale, &unlistened, &regular] {
            let c = Tcp::new(Family::Unix)?;
            let e = c.connect((p.as_str(), 0), within(1.0)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{p}: {e}");
            assert_eq!(e.name(), "connection_refused");
        }
        let c = Tcp::new(Family::Unix)?;
        let e = c
            .connect((missing.as_str(), 0), within(1.0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), libc::ENOENT, "{e}");
        assert_eq!(
            (e.kind(), e.name()),
            (ErrorKind::NotFound, "not_found"),
            "{e}"
        );
        // Datagrams: the same answers from sendto.
        let u = Udp::new(Family::Unix)?;
        let e = u
            .sendto((stale.as_str(), 0), b"x", within(1.0))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        let e = u
            .sendto((missing.as_str(), 0), b"x", within(1.0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), libc::ENOENT, "{e}");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        Ok(())
    });
    assert!(Path::new(&dir.0).exists());
}

/// `("*", 0)` on a Unix datagram socket is the unnamed address: `connect`
/// with it removes the peer (and a second time is `not_connected`).
/// Reliability checklist: F2 (docs/reliability.md).
#[test]
fn unix_datagram_connect_star_unfilters() {
    let dir = TempDir::new();
    let (p1, p2) = (dir.path("a.sock"), dir.path("b.sock"));
    run(5.0, async move {
        let a = Udp::new(Family::Unix)?;
        a.bind((p1.as_str(), 0))?;
        let b = Udp::new(Family::Unix)?;
        b.bind((p2.as_str(), 0))?;
        a.connect((p2.as_str(), 0))?;
        assert!(a.peer_addr().is_ok());
        a.connect(("*", 0))?;
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        assert_eq!(
            a.connect(("*", 0)).unwrap_err().kind(),
            ErrorKind::NotConnected
        );
        Ok(())
    });
}

/// A full Unix listener backlog: `connect(2)` says `EAGAIN` and no readiness
/// announces room, so a connect tries again every millisecond (a `Sleep`
/// step) until its deadline (`timeout`), and goes through once an accept
/// makes room.
#[test]
fn connect_to_a_full_unix_backlog_retries_until_room_or_deadline() {
    let dir = TempDir::new();
    let path = dir.path("full");
    run(10.0, async move {
        let l = Rc::new(Tcp::new(Family::Unix)?);
        l.listen(Some(0), (path.as_str(), 0))?;
        let sa = l.local_addr()?;
        // Fill the accept queue.
        let mut queued = Vec::new();
        loop {
            let c = Tcp::new(Family::Unix)?;
            match c.try_connect(&sa) {
                Ok(_) => queued.push(c),
                Err(e) if e.kind() == ErrorKind::TryAgain => break,
                Err(e) => return Err(e),
            }
            assert!(queued.len() < 1000, "the backlog never filled");
        }
        let c = Tcp::new(Family::Unix)?;
        let t0 = sock::clock();
        let e = c
            .connect((path.as_str(), 0), within(0.05))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(sock::clock() - t0 >= 0.05, "never early");
        // An accept in 20 ms makes room; a connect waiting meanwhile gets in.
        let l2 = Rc::clone(&l);
        let acceptor = sock::newthread(async move {
            sock::sleep(0.02).await?;
            l2.accept(within(2.0)).await.map(|_| ())
        });
        let c2 = Tcp::new(Family::Unix)?;
        c2.connect((path.as_str(), 0), within(2.0)).await?;
        assert!(sock::clock() - t0 >= 0.07, "it waited for the room");
        assert_eq!(c2.peer_addr()?.unix_name().as_deref(), Some(path.as_str()));
        drop(queued);
        let _ = acceptor;
        Ok(())
    });
}
