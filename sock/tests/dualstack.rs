//! IPv6 and dual-stack (G2-G4): a "::" socket with ipv6_v6only off accepts
//! IPv4 peers as ::ffff:a.b.c.d, with it on refuses them (TCP and UDP, set
//! explicitly); link-local scope ids; TCP and UDP echo over ::1. Loopback
//! only, every wait bounded; skipped when the machine has no IPv6.

mod util;

use sock::{ErrorKind, Family, OptVal, SockAddr, Tcp, Udp};
use util::{has_ipv6, run, within};

macro_rules! require_ipv6 {
    () => {
        if !has_ipv6() {
            eprintln!("skipped: no IPv6 on loopback");
            return;
        }
    };
}

/// A TCP listener on [::]:0 with ipv6_v6only set to `v6only` before binding.
fn wildcard_listener(v6only: bool) -> (Tcp, u16) {
    let l = Tcp::new(Family::Inet6).unwrap();
    l.setopt("ipv6_v6only", v6only).unwrap();
    assert_eq!(l.getopt("ipv6_v6only").unwrap(), OptVal::Bool(v6only));
    l.listen(None, ("::", 0)).unwrap();
    let a = l.local_addr().unwrap();
    assert_eq!(a.tostring(), format!("[::]:{}", a.port()));
    (l, a.port())
}

/// A UDP socket on [::]:0 with ipv6_v6only set to `v6only` before binding.
fn wildcard_udp(v6only: bool) -> (Udp, u16) {
    let u = Udp::new(Family::Inet6).unwrap();
    u.setopt("ipv6_v6only", v6only).unwrap();
    assert_eq!(u.getopt("ipv6_v6only").unwrap(), OptVal::Bool(v6only));
    u.bind(("::", 0)).unwrap();
    let port = u.local_addr().unwrap().port();
    (u, port)
}

/// G3: v6only off: an IPv4 client is accepted and seen as ::ffff:127.0.0.1.
#[test]
fn tcp_dual_stack_accepts_ipv4_as_mapped() {
    require_ipv6!();
    run(5.0, async {
        let (l, port) = wildcard_listener(false);
        let c = Tcp::new(Family::Inet)?;
        c.connect(("127.0.0.1", port), within(2.0)).await?;
        let (s, remote, local) = l.accept(within(2.0)).await?;
        let cport = c.local_addr()?.port();
        assert_eq!(remote.family(), Family::Inet6);
        assert_eq!(remote.ip().unwrap().tostring(), "::ffff:127.0.0.1");
        assert_eq!(remote.tostring(), format!("[::ffff:127.0.0.1]:{cport}"));
        assert_eq!(local.tostring(), format!("[::ffff:127.0.0.1]:{port}"));
        assert_eq!(s.peer_addr()?, remote);
        assert_eq!(c.peer_addr()?.tostring(), format!("127.0.0.1:{port}"));
        c.sendall(b"v4 in", within(1.0)).await?;
        let mut b = [0u8; 5];
        s.recvall(&mut b, within(1.0)).await?;
        assert_eq!(&b, b"v4 in");
        s.sendall(b"v6 out", within(1.0)).await?;
        let mut b = [0u8; 6];
        c.recvall(&mut b, within(1.0)).await?;
        assert_eq!(&b, b"v6 out");
        // IPv6 clients still work on the same listener.
        let c6 = Tcp::new(Family::Inet6)?;
        c6.connect(("::1", port), within(2.0)).await?;
        let (_, remote, _) = l.accept(within(2.0)).await?;
        assert_eq!(remote.ip().unwrap().tostring(), "::1");
        Ok(())
    });
}

/// G3: v6only on: an IPv4 connect is refused; IPv6 still accepted.
#[test]
fn tcp_v6only_refuses_ipv4() {
    require_ipv6!();
    run(5.0, async {
        let (l, port) = wildcard_listener(true);
        let c = Tcp::new(Family::Inet)?;
        let e = c
            .connect(("127.0.0.1", port), within(2.0))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        let c6 = Tcp::new(Family::Inet6)?;
        c6.connect(("::1", port), within(2.0)).await?;
        let (_, remote, _) = l.accept(within(2.0)).await?;
        assert_eq!(remote.ip().unwrap().tostring(), "::1");
        // Nothing else was queued: the IPv4 attempt never reached it.
        let e = l.accept(within(0.05)).await.map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        Ok(())
    });
}

/// G3 for UDP: v6only off: a datagram to 127.0.0.1 arrives from
/// ::ffff:127.0.0.1, and the reply to that address reaches the IPv4 socket.
#[test]
fn udp_dual_stack_receives_ipv4_as_mapped() {
    require_ipv6!();
    run(5.0, async {
        let (u, port) = wildcard_udp(false);
        let v4 = Udp::new(Family::Inet)?;
        v4.bind(("127.0.0.1", 0))?;
        let v4_port = v4.local_addr()?.port();
        v4.sendto(("127.0.0.1", port), b"from v4", within(1.0))
            .await?;
        let mut buf = [0u8; 32];
        let (n, from) = u.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!(&buf[..n], b"from v4");
        assert_eq!(from.family(), Family::Inet6);
        assert_eq!(from.tostring(), format!("[::ffff:127.0.0.1]:{v4_port}"));
        u.sendto(&from, b"to v4", within(1.0)).await?;
        let (n, from) = v4.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!(&buf[..n], b"to v4");
        assert_eq!(from.tostring(), format!("127.0.0.1:{port}"));
        // A mapped address given as text works too.
        u.sendto(("::ffff:127.0.0.1", v4_port), b"mapped", within(1.0))
            .await?;
        let (n, _) = v4.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!(&buf[..n], b"mapped");
        Ok(())
    });
}

/// G3 for UDP: v6only on: the IPv4 datagram does not arrive (a short
/// deadline passes on time), an IPv6 one does.
#[test]
fn udp_v6only_ignores_ipv4() {
    require_ipv6!();
    run(5.0, async {
        let (u, port) = wildcard_udp(true);
        let v4 = Udp::new(Family::Inet)?;
        v4.sendto(("127.0.0.1", port), b"from v4", within(1.0))
            .await?;
        let mut buf = [0u8; 32];
        let t0 = sock::clock();
        match u.recvnext(&mut buf, Some(t0 + 0.1)).await {
            Ok((n, from)) => panic!(
                "an IPv4 datagram reached a v6only socket: {:?} from {from}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
                let late = sock::clock() - (t0 + 0.1);
                assert!((0.0..0.05).contains(&late), "timed out {late} s off");
            }
        }
        // A v6only socket cannot even address an IPv4-mapped destination.
        let e = u
            .sendto(("::ffff:127.0.0.1", 9), b"x", within(1.0))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
        let v6 = Udp::new(Family::Inet6)?;
        v6.sendto(("::1", port), b"from v6", within(1.0)).await?;
        let (n, from) = u.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!(&buf[..n], b"from v6");
        assert_eq!(from.ip().unwrap().tostring(), "::1");
        Ok(())
    });
}

/// ipv6_v6only cannot change once bound, and it is an IPv6-only option.
/// Reliability checklist: G3 (docs/reliability.md).
#[test]
fn v6only_option_rules() {
    require_ipv6!();
    let (l, _) = wildcard_listener(false);
    let e = l.setopt("ipv6_v6only", true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(l.getopt("ipv6_v6only").unwrap(), OptVal::Bool(false));
    let v4 = Tcp::new(Family::Inet).unwrap();
    assert!(
        v4.getopt("ipv6_v6only").is_err(),
        "an IPv4 socket has no ipv6_v6only"
    );
}

/// G4: link-local addresses keep their scope id through parse and tostring.
#[test]
fn link_local_scope_ids() {
    let sa: SockAddr = "[fe80::1%1]:80".parse().unwrap();
    assert_eq!(sa.scope_id(), 1);
    assert_eq!(sa.port(), 80);
    assert_eq!(sa.family(), Family::Inet6);
    assert_eq!(sa.tostring(), "[fe80::1%1]:80");
    assert_eq!(sa.tostring().parse::<SockAddr>().unwrap(), sa);
    assert_eq!(sa.ip().unwrap().tostring(), "fe80::1");
    let none: SockAddr = "[fe80::1]:80".parse().unwrap();
    assert_eq!(
        (none.scope_id(), none.tostring().as_str()),
        (0, "[fe80::1]:80")
    );
    assert_ne!(none, sa, "the scope id is part of the address");
    // The resolver takes an interface name: lo is index 1 on Linux.
    if has_ipv6() {
        let lo = std::fs::read_to_string("/sys/class/net/lo/ifindex")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match sock::addr("fe80::1%lo", 80) {
            Ok(list) => {
                let a = list.first().addr();
                if let Some(idx) = lo {
                    assert_eq!(a.scope_id(), idx);
                    assert_eq!(a.tostring(), format!("[fe80::1%{idx}]:80"));
                }
            }
            Err(e) => eprintln!("skipped: the resolver refuses fe80::1%lo: {e}"),
        }
    }
}

/// G4: a scope-less link-local connect is refused locally (the kernel cannot
/// choose an interface): invalid_argument, for TCP and UDP. No packet leaves.
#[test]
fn scopeless_link_local_connect_is_invalid_argument() {
    require_ipv6!();
    run(5.0, async {
        let t = Tcp::new(Family::Inet6)?;
        let t0 = sock::clock();
        let e = t.connect(("fe80::1", 9), within(2.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(e.name(), "invalid_argument");
        assert!(sock::clock() - t0 < 0.5, "refused at once, not timed out");
        let u = Udp::new(Family::Inet6)?;
        let e = u.connect(("fe80::1", 9)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        // The socket stays usable.
        u.connect(("::1", 9))?;
        Ok(())
    });
}

/// G2: TCP echo over ::1.
#[test]
fn tcp_echo_over_ipv6_loopback() {
    require_ipv6!();
    run(5.0, async {
        let l = Tcp::new(Family::Inet6)?;
        l.listen(None, ("::1", 0))?;
        let addr = l.local_addr()?;
        assert_eq!(addr.tostring(), format!("[::1]:{}", addr.port()));
        let srv = sock::newthread(async move {
            let (s, remote, local) = l.accept(within(2.0)).await?;
            // Echoing a chunk in pieces: without nodelay, Nagle would hold
            // each later piece for the client's delayed ACK (~40 ms).
            s.setopt("tcp_nodelay", true)?;
            let mut buf = [0u8; 1024];
            loop {
                let n = s.recv(&mut buf, within(2.0)).await?;
                if n == 0 {
                    break;
                }
                s.sendall(&buf[..n], within(2.0)).await?;
            }
            sock::Result::Ok((remote, local))
        });
        let c = Tcp::new(Family::Inet6)?;
        c.connect(&addr, within(2.0)).await?;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut back = vec![0u8; data.len()];
        // Send and receive in chunks so that neither side's buffers fill up.
        for (out, inn) in data.chunks(4096).zip(back.chunks_mut(4096)) {
            c.sendall(out, within(2.0)).await?;
            c.recvall(inn, within(2.0)).await?;
        }
        assert!(back == data);
        c.shutdown(sock::Shutdown::Write)?;
        let (remote, local) = srv.join().await??;
        assert_eq!(remote, c.local_addr()?);
        assert_eq!(local, addr);
        assert_eq!(remote.ip().unwrap().tostring(), "::1");
        Ok(())
    });
}

/// G2/F1: UDP echo over ::1, with the source address both ways.
#[test]
fn udp_echo_over_ipv6_loopback() {
    require_ipv6!();
    run(5.0, async {
        let srv = Udp::new(Family::Inet6)?;
        srv.bind(("::1", 0))?;
        let addr = srv.local_addr()?;
        let echo = sock::newthread(async move {
            let mut buf = [0u8; 2048];
            for _ in 0..10 {
                let (n, from) = srv.recvnext(&mut buf, within(2.0)).await?;
                srv.sendto(&from, &buf[..n], within(2.0)).await?;
            }
            sock::Result::Ok(())
        });
        let c = Udp::new(Family::Inet6)?;
        c.connect(&addr)?;
        for i in 0..10usize {
            let msg = vec![i as u8; i * 100];
            c.send(&msg, within(1.0)).await?;
            let mut buf = [0u8; 2048];
            let (n, from) = c.recvnext(&mut buf, within(1.0)).await?;
            assert_eq!(&buf[..n], msg.as_slice());
            assert_eq!(from, addr);
        }
        echo.join().await??;
        Ok(())
    });
}

/// An IPv6 socket reaches an IPv4 listener through its mapped address.
#[test]
fn ipv6_client_to_ipv4_listener_through_a_mapped_address() {
    require_ipv6!();
    run(5.0, async {
        let l = Tcp::new(Family::Inet)?;
        l.listen(None, ("127.0.0.1", 0))?;
        let port = l.local_addr()?.port();
        let c = Tcp::new(Family::Inet6)?;
        c.setopt("ipv6_v6only", false)?;
        c.connect(("::ffff:127.0.0.1", port), within(2.0)).await?;
        assert_eq!(
            c.peer_addr()?.tostring(),
            format!("[::ffff:127.0.0.1]:{port}")
        );
        let (s, remote, _) = l.accept(within(2.0)).await?;
        assert_eq!(remote.family(), Family::Inet);
        assert_eq!(
            remote.tostring(),
            format!("127.0.0.1:{}", c.local_addr()?.port())
        );
        c.sendall(b"46", within(1.0)).await?;
        let mut b = [0u8; 2];
        s.recvall(&mut b, within(1.0)).await?;
        assert_eq!(&b, b"46");
        Ok(())
    });
}
