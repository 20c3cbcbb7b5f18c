//! UDP: sendto/recvnext with source addresses, connect filtering, empty and
//! over-size datagrams, timeouts, a lossless 10,000-datagram stream, ICMP
//! errors, bind conflicts and options. Loopback only, every wait bounded.

mod util;

use std::cell::Cell;
use std::rc::Rc;

use sock::{ErrorKind, Family, OptVal, SockAddr, Udp};
use util::{has_ipv6, run, within};

/// A UDP socket of `family` bound to the loopback address at an ephemeral port.
fn bound(family: Family) -> sock::Result<(Udp, SockAddr)> {
    let host = if family == Family::Inet6 {
        "::1"
    } else {
        "127.0.0.1"
    };
    let u = Udp::new(family)?;
    u.bind((host, 0))?;
    let a = u.local_addr()?;
    Ok((u, a))
}

/// A loopback port with nothing bound to it (for UDP), found by binding and
/// closing a socket.
fn closed_port(family: Family) -> u16 {
    let (u, a) = bound(family).unwrap();
    u.close();
    a.port()
}

/// Receives one datagram on `u` and returns its bytes and source.
async fn recv_one(u: &Udp, limit: f64) -> sock::Result<(Vec<u8>, SockAddr)> {
    let mut buf = [0u8; 2048];
    let (n, from) = u.recvnext(&mut buf, within(limit)).await?;
    Ok((buf[..n].to_vec(), from))
}

/// Asserts that nothing arrives on `u` for `wait` seconds: the receive must
/// fail with `timeout`, neither early nor more than 50 ms late.
async fn assert_nothing_arrives(u: &Udp, wait: f64, why: &str) -> sock::Result<()> {
    let mut buf = [0u8; 2048];
    let t0 = sock::clock();
    match u.recvnext(&mut buf, Some(t0 + wait)).await {
        Ok((n, from)) => panic!(
            "{why}: a datagram arrived: {:?} from {from}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Timeout, "{why}: {e}");
            let late = sock::clock() - (t0 + wait);
            assert!(late >= 0.0, "{why}: timed out {late} s early");
            assert!(late < 0.05, "{why}: timed out {late} s late");
        }
    }
    Ok(())
}

/// F1: the source address reported by recvnext is the sender's, both ways.
async fn sendto_recvnext_round_trip(family: Family) -> sock::Result<()> {
    let (a, a_addr) = bound(family)?;
    let (b, b_addr) = bound(family)?;
    assert_eq!(b.sendto(&a_addr, b"ping", within(1.0)).await?, 4);
    let (data, from) = recv_one(&a, 1.0).await?;
    assert_eq!(data, b"ping");
    assert_eq!(from, b_addr, "recvnext reports the sender's address");
    // Reply to the address recvnext gave.
    assert_eq!(a.sendto(&from, b"pong", within(1.0)).await?, 4);
    let (data, from) = recv_one(&b, 1.0).await?;
    assert_eq!(data, b"pong");
    assert_eq!(from, a_addr);
    // An unbound sender is bound implicitly by sendto; the source is its
    // loopback address and the port it got.
    let c = Udp::new(family)?;
    let host = a_addr.ip().unwrap().tostring();
    c.sendto((host.as_str(), a_addr.port()), b"implicit", within(1.0))
        .await?;
    let c_port = c.local_addr()?.port();
    assert_ne!(c_port, 0, "sendto bound the socket");
    let (data, from) = recv_one(&a, 1.0).await?;
    assert_eq!(data, b"implicit");
    assert_eq!(from.port(), c_port);
    assert_eq!(from.ip().unwrap().tostring(), host);
    assert_eq!(from.family(), family);
    Ok(())
}

/// Reliability checklist: F1 (docs/reliability.md).
#[test]
fn sendto_recvnext_source_address_v4() {
    run(5.0, async {
        sendto_recvnext_round_trip(Family::Inet).await?;
        let (a, a_addr) = bound(Family::Inet)?;
        let (b, b_addr) = bound(Family::Inet)?;
        b.sendto(&a_addr, b"x", within(1.0)).await?;
        let (_, from) = recv_one(&a, 1.0).await?;
        assert_eq!(from.tostring(), format!("127.0.0.1:{}", b_addr.port()));
        assert_eq!(a.socket_type(), sock::SocketType::Udp);
        assert_eq!(a.family(), Family::Inet);
        assert_eq!(a.protocol(), sock::Protocol::Udp);
        Ok(())
    });
}

/// Reliability checklist: F1 (docs/reliability.md).
#[test]
fn sendto_recvnext_source_address_v6() {
    if !has_ipv6() {
        eprintln!("skipped: no IPv6 on loopback");
        return;
    }
    run(5.0, async {
        sendto_recvnext_round_trip(Family::Inet6).await?;
        let (a, a_addr) = bound(Family::Inet6)?;
        let (b, b_addr) = bound(Family::Inet6)?;
        b.sendto(&a_addr, b"x", within(1.0)).await?;
        let (_, from) = recv_one(&a, 1.0).await?;
        assert_eq!(from.tostring(), format!("[::1]:{}", b_addr.port()));
        assert_eq!(a.family(), Family::Inet6);
        Ok(())
    });
}

/// F2 with three sockets: A connected to B receives only B's datagrams;
/// connecting again to C switches the filter; `connect(("*", 0))` removes it.
async fn filter_switch_unfilter(a: Udp) -> sock::Result<()> {
    let a_addr = a.local_addr()?;
    let (b, b_addr) = bound(Family::Inet)?;
    let (c, c_addr) = bound(Family::Inet)?;

    // Connected to B: C's datagram (sent first) is filtered, B's arrives.
    a.connect(&b_addr)?;
    assert_eq!(a.peer_addr()?, b_addr);
    assert_eq!(a.local_addr()?, a_addr, "connect keeps the bound address");
    c.sendto(&a_addr, b"c1", within(1.0)).await?;
    b.sendto(&a_addr, b"b1", within(1.0)).await?;
    let (data, from) = recv_one(&a, 1.0).await?;
    assert_eq!(
        (data.as_slice(), &from),
        (&b"b1"[..], &b_addr),
        "only B's datagram gets through"
    );
    assert_nothing_arrives(&a, 0.1, "C's datagram while connected to B").await?;

    // Connected to C now: B is filtered.
    a.connect(&c_addr)?;
    assert_eq!(a.peer_addr()?, c_addr);
    b.sendto(&a_addr, b"b2", within(1.0)).await?;
    c.sendto(&a_addr, b"c2", within(1.0)).await?;
    let (data, from) = recv_one(&a, 1.0).await?;
    assert_eq!((data.as_slice(), &from), (&b"c2"[..], &c_addr));
    assert_nothing_arrives(&a, 0.1, "B's datagram while connected to C").await?;
    // send goes to the connected peer.
    a.send(b"to c", within(1.0)).await?;
    let (data, from) = recv_one(&c, 1.0).await?;
    assert_eq!((data.as_slice(), &from), (&b"to c"[..], &a_addr));

    // ("*", 0): unfiltered, both arrive.
    a.connect(("*", 0))?;
    assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    assert_eq!(
        a.local_addr()?,
        a_addr,
        "disconnect keeps the bound address"
    );
    b.sendto(&a_addr, b"b3", within(1.0)).await?;
    c.sendto(&a_addr, b"c3", within(1.0)).await?;
    let mut got = vec![recv_one(&a, 1.0).await?, recv_one(&a, 1.0).await?];
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![(b"b3".to_vec(), b_addr), (b"c3".to_vec(), c_addr)],
        "both peers' datagrams arrive once unfiltered"
    );
    Ok(())
}

/// F2 on a socket bound to an explicit port.
#[test]
fn connect_filters_switches_and_unfilters() {
    run(10.0, async {
        let port = closed_port(Family::Inet);
        let a = Udp::new(Family::Inet)?;
        a.bind(("127.0.0.1", port))?;
        filter_switch_unfilter(a).await
    });
}

/// F2 on a socket bound to an ephemeral port (`("127.0.0.1", 0)`), the usual
/// case.
#[test]
fn connect_filters_switches_and_unfilters_on_an_ephemeral_port() {
    run(10.0, async {
        let (a, _) = bound(Family::Inet)?;
        filter_switch_unfilter(a).await
    });
}

/// The same bug seen through disconnect() on a socket connect() bound
/// implicitly: it is no longer bound after disconnect.
#[test]
fn disconnect_keeps_the_implicit_port() {
    run(5.0, async {
        let (_b, b_addr) = bound(Family::Inet)?;
        let a = Udp::new(Family::Inet)?;
        a.connect(&b_addr)?;
        let before = a.local_addr()?;
        assert_ne!(before.port(), 0, "connect bound the socket");
        a.disconnect()?;
        assert_eq!(a.local_addr()?.port(), before.port(), "the port is kept");
        Ok(())
    });
}

/// F2: disconnect twice -> not_connected; send without a peer ->
/// destination_required; a disconnected socket has no peer for send again.
#[test]
fn disconnect_twice_and_send_unconnected() {
    run(5.0, async {
        let (a, _) = bound(Family::Inet)?;
        let (_b, b_addr) = bound(Family::Inet)?;
        let e = a.disconnect().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotConnected, "never connected: {e}");
        let e = a.send(b"x", within(1.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DestinationRequired, "{e}");
        assert_eq!(e.name(), "destination_required");
        a.connect(&b_addr)?;
        a.disconnect()?;
        let e = a.disconnect().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotConnected, "second disconnect: {e}");
        assert_eq!(e.name(), "not_connected");
        let e = a.send(b"x", within(1.0)).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::DestinationRequired,
            "after disconnect: {e}"
        );
        Ok(())
    });
}

/// Seed: sendto works "regardless of whether the socket is connected".
/// Reliability checklist: F2 (docs/reliability.md).
#[test]
fn sendto_on_a_connected_socket_reaches_another_address() {
    run(5.0, async {
        let (a, a_addr) = bound(Family::Inet)?;
        let (b, b_addr) = bound(Family::Inet)?;
        let (c, c_addr) = bound(Family::Inet)?;
        a.connect(&b_addr)?;
        assert_eq!(a.sendto(&c_addr, b"to c", within(1.0)).await?, 4);
        let (data, from) = recv_one(&c, 1.0).await?;
        assert_eq!((data.as_slice(), &from), (&b"to c"[..], &a_addr));
        // The connection is unchanged: send still goes to B.
        assert_eq!(a.peer_addr()?, b_addr);
        a.send(b"to b", within(1.0)).await?;
        let (data, from) = recv_one(&b, 1.0).await?;
        assert_eq!((data.as_slice(), &from), (&b"to b"[..], &a_addr));
        Ok(())
    });
}

/// Empty datagrams are datagrams of length 0, not end of stream, both ways.
/// Reliability checklist: D4 (docs/reliability.md).
#[test]
fn empty_datagrams_both_ways() {
    run(5.0, async {
        let (a, a_addr) = bound(Family::Inet)?;
        let (b, b_addr) = bound(Family::Inet)?;
        assert_eq!(b.sendto(&a_addr, b"", within(1.0)).await?, 0);
        let mut buf = [0xaau8; 8];
        let (n, from) = a.recvnext(&mut buf, within(1.0)).await?;
        assert_eq!((n, &from), (0, &b_addr));
        assert_eq!(buf, [0xaa; 8], "nothing written for an empty datagram");
        a.connect(&b_addr)?;
        assert_eq!(a.send(b"", within(1.0)).await?, 0);
        assert_eq!(b.recv(&mut buf, within(1.0)).await?, 0);
        // Not EOF: the socket goes on receiving, and another empty one reads
        // as 0 again.
        a.send(b"after", within(1.0)).await?;
        a.send(b"", within(1.0)).await?;
        assert_eq!(b.recv(&mut buf, within(1.0)).await?, 5);
        assert_eq!(&buf[..5], b"after");
        assert_eq!(b.recv(&mut buf, within(1.0)).await?, 0);
        assert_nothing_arrives(&b, 0.05, "after the empty datagram").await?;
        Ok(())
    });
}

/// F4: a datagram larger than the buffer is truncated and reported as
/// message_too_big with done() = buffer length and the prefix in the buffer;
/// the socket stays usable. A datagram too large to send is message_too_big.
#[test]
fn oversize_datagram_is_message_too_big_and_socket_stays_usable() {
    run(5.0, async {
        let (a, a_addr) = bound(Family::Inet)?;
        let (b, b_addr) = bound(Family::Inet)?;
        let big: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        b.sendto(&a_addr, &big, within(1.0)).await?;
        let mut small = [0u8; 100];
        let e = a.recvnext(&mut small, within(1.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MessageTooBig, "{e}");
        assert_eq!(e.name(), "message_too_big");
        assert_eq!(e.done(), 100, "done() is the bytes kept");
        assert_eq!(&small[..], &big[..100], "the buffer holds the prefix");
        // The rest of that datagram is gone: the next read is the next datagram.
        b.sendto(&a_addr, b"next", within(1.0)).await?;
        let (n, from) = a.recvnext(&mut small, within(1.0)).await?;
        assert_eq!((&small[..n], &from), (&b"next"[..], &b_addr));
        // Same through recv.
        b.sendto(&a_addr, &big, within(1.0)).await?;
        let mut tiny = [0u8; 3];
        let e = a.recv(&mut tiny, within(1.0)).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.done(), &tiny),
            (ErrorKind::MessageTooBig, 3, &[0, 7, 14])
        );
        // An exact fit is not truncation.
        b.sendto(&a_addr, &big[..100], within(1.0)).await?;
        assert_eq!(a.recv(&mut small, within(1.0)).await?, 100);
        // A zero-length buffer: a non-empty datagram is truncated to nothing.
        b.sendto(&a_addr, b"x", within(1.0)).await?;
        let e = a.recv(&mut [], within(1.0)).await.unwrap_err();
        assert_eq!((e.kind(), e.done()), (ErrorKind::MessageTooBig, 0));
        // Sending more than a UDP datagram can carry.
        let huge = vec![0u8; 70_000];
        let e = b.sendto(&a_addr, &huge, within(1.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MessageTooBig, "{e}");
        // Still usable both ways.
        b.sendto(&a_addr, b"ok", within(1.0)).await?;
        let (n, _) = a.recvnext(&mut small, within(1.0)).await?;
        assert_eq!(&small[..n], b"ok");
        Ok(())
    });
}

/// H2/H6: recvnext times out within 50 ms of its deadline, never early, and the
/// socket stays usable.
#[test]
fn recvnext_times_out_on_time_and_socket_stays_usable() {
    run(5.0, async {
        let (a, a_addr) = bound(Family::Inet)?;
        let (b, _) = bound(Family::Inet)?;
        for wait in [0.01, 0.1, 0.25] {
            assert_nothing_arrives(&a, wait, "idle socket").await?;
        }
        // recv too.
        let mut buf = [0u8; 4];
        let t0 = sock::clock();
        let e = a.recv(&mut buf, Some(t0 + 0.1)).await.unwrap_err();
        let late = sock::clock() - (t0 + 0.1);
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!((0.0..0.05).contains(&late), "recv timed out {late} s off");
        b.sendto(&a_addr, b"late", within(1.0)).await?;
        let (data, _) = recv_one(&a, 1.0).await?;
        assert_eq!(data, b"late");
        Ok(())
    });
}

/// A parked recvnext wakes when a datagram arrives, not at its deadline.
#[test]
fn parked_recvnext_wakes_on_arrival() {
    run(5.0, async {
        let (a, a_addr) = bound(Family::Inet)?;
        let (b, b_addr) = bound(Family::Inet)?;
        let reader = sock::newthread(async move {
            let t0 = sock::clock();
            let r = recv_one(&a, 3.0).await?;
            sock::Result::Ok((r, sock::clock() - t0))
        });
        sock::sleep(0.05).await?;
        b.sendto(&a_addr, b"wake", within(1.0)).await?;
        let ((data, from), waited) = reader.join().await??;
        assert_eq!((data.as_slice(), &from), (&b"wake"[..], &b_addr));
        assert!(waited < 0.5, "woken after {waited} s, not on arrival");
        Ok(())
    });
}

/// 10,000 datagrams through one socket, none lost, in order, each carrying
/// its sequence number. The sender keeps at most 256 in flight: the receiver
/// acknowledges through a shared counter.
#[test]
fn ten_thousand_datagrams_none_lost() {
    run(60.0, async {
        const N: u32 = 10_000;
        const WINDOW: u32 = 256;
        let rx = Udp::new(Family::Inet)?;
        rx.setopt("so_rcvbuf", 4 << 20)?;
        rx.bind(("127.0.0.1", 0))?;
        let rcvbuf = rx.getopt("so_rcvbuf")?;
        let to = rx.local_addr()?;
        let (tx, tx_addr) = bound(Family::Inet)?;
        let acked = Rc::new(Cell::new(0u32));
        let ack = Rc::clone(&acked);
        fn payload(i: u32) -> Vec<u8> {
            let mut p = i.to_be_bytes().to_vec();
            p.extend((0..i % 97).map(|k| (i as u8).wrapping_add(k as u8)));
            p
        }
        let sender = sock::newthread(async move {
            let give_up = sock::clock() + 30.0;
            let mut stalls = 0u64;
            for i in 0..N {
                while i - ack.get() >= WINDOW {
                    if sock::clock() > give_up {
                        panic!("sender: window stuck at {i} sent, {} acked", ack.get());
                    }
                    stalls += 1;
                    sock::sleep(0.0).await?;
                }
                let p = payload(i);
                assert_eq!(tx.sendto(&to, &p, within(5.0)).await?, p.len());
            }
            sock::Result::Ok(stalls)
        });
        let mut buf = [0u8; 256];
        for expect in 0..N {
            let (n, from) = match rx.recvnext(&mut buf, within(2.0)).await {
                Ok(x) => x,
                Err(e) => panic!(
                    "datagram {expect} of {N} never arrived ({e}): lost with at most \
                     {WINDOW} in flight and so_rcvbuf = {rcvbuf:?}"
                ),
            };
            assert_eq!(from, tx_addr);
            assert!(n >= 4, "datagram {expect}: {n} bytes");
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert_eq!(
                seq, expect,
                "expected datagram {expect}, got {seq}: lost or reordered \
                 (so_rcvbuf = {rcvbuf:?}, window {WINDOW})"
            );
            assert_eq!(&buf[..n], payload(seq).as_slice(), "datagram {seq} content");
            acked.set(expect + 1);
        }
        let stalls = sender.join().await??;
        eprintln!("sender waited for the window {stalls} times");
        assert_nothing_arrives(&rx, 0.05, "after the last datagram").await?;
        Ok(())
    });
}

/// F3: a connected UDP socket whose peer port is closed gets
/// connection_refused on the next recv (the ICMP port unreachable).
#[test]
fn connected_to_a_closed_port_recv_is_connection_refused() {
    run(5.0, async {
        let port = closed_port(Family::Inet);
        let u = Udp::new(Family::Inet)?;
        u.connect(("127.0.0.1", port))?;
        u.send(b"anyone?", within(1.0)).await?;
        let mut buf = [0u8; 16];
        let e = u.recv(&mut buf, within(2.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert_eq!(e.name(), "connection_refused");
        // The error is reported once; the socket stays usable.
        assert_nothing_arrives_on_recv(&u).await?;
        Ok(())
    });
}

async fn assert_nothing_arrives_on_recv(u: &Udp) -> sock::Result<()> {
    let mut buf = [0u8; 16];
    let e = u.recv(&mut buf, within(0.05)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    Ok(())
}

/// F3/I1 with the reader already parked: the ICMP error wakes it at once.
#[test]
fn icmp_error_wakes_a_parked_reader() {
    run(5.0, async {
        let port = closed_port(Family::Inet);
        let u = Rc::new(Udp::new(Family::Inet)?);
        u.connect(("127.0.0.1", port))?;
        let r = Rc::clone(&u);
        let reader = sock::newthread(async move {
            let mut buf = [0u8; 16];
            let t0 = sock::clock();
            let res = r.recv(&mut buf, within(3.0)).await;
            sock::Result::Ok((res, sock::clock() - t0))
        });
        sock::sleep(0.05).await?;
        u.send(b"x", within(1.0)).await?;
        let (res, waited) = reader.join().await??;
        let e = res.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert!(waited < 0.5, "woken after {waited} s, not by the error");
        Ok(())
    });
}

/// Reliability checklist: F3 (docs/reliability.md).
#[test]
fn connected_to_a_closed_port_v6() {
    if !has_ipv6() {
        eprintln!("skipped: no IPv6 on loopback");
        return;
    }
    run(5.0, async {
        let port = closed_port(Family::Inet6);
        let u = Udp::new(Family::Inet6)?;
        u.connect(("::1", port))?;
        u.send(b"anyone?", within(1.0)).await?;
        let mut buf = [0u8; 16];
        let e = u.recv(&mut buf, within(2.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        Ok(())
    });
}

/// F3: an unconnected socket sending to a closed port gets no error.
#[test]
fn unconnected_send_to_a_closed_port_is_silent() {
    run(5.0, async {
        let port = closed_port(Family::Inet);
        let (u, u_addr) = bound(Family::Inet)?;
        u.sendto(("127.0.0.1", port), b"x", within(1.0)).await?;
        assert_nothing_arrives(&u, 0.1, "unconnected, after an ICMP error").await?;
        // Still usable.
        let (b, _) = bound(Family::Inet)?;
        b.sendto(&u_addr, b"y", within(1.0)).await?;
        assert_eq!(recv_one(&u, 1.0).await?.0, b"y");
        Ok(())
    });
}

/// C1/F6: binding a used port -> address_already_in_use; with so_reuseaddr
/// on both sockets it works; on only one it does not.
#[test]
fn bind_twice_and_reuseaddr() {
    for (family, host) in [(Family::Inet, "127.0.0.1"), (Family::Inet6, "::1")] {
        if family == Family::Inet6 && !has_ipv6() {
            eprintln!("skipped the IPv6 case: no IPv6 on loopback");
            continue;
        }
        let (_a, a_addr) = bound(family).unwrap();
        let b = Udp::new(family).unwrap();
        let e = b.bind(&a_addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddressAlreadyInUse, "{host}: {e}");
        assert_eq!(e.name(), "address_already_in_use");

        let a = Udp::new(family).unwrap();
        a.setopt("so_reuseaddr", true).unwrap();
        a.bind((host, 0)).unwrap();
        let addr = a.local_addr().unwrap();
        let b = Udp::new(family).unwrap();
        b.setopt("so_reuseaddr", true).unwrap();
        b.bind(&addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        assert_eq!(b.getopt("so_reuseaddr").unwrap(), OptVal::Bool(true));
        let c = Udp::new(family).unwrap();
        let e = c.bind(&addr).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::AddressAlreadyInUse,
            "{host}: without so_reuseaddr on the third: {e}"
        );
    }
}

/// C8 for UDP: with so_reuseport two sockets share a port and every datagram
/// goes to exactly one of them; without it, address_already_in_use.
#[test]
fn reuseport_shares_a_port() {
    run(10.0, async {
        let a = Udp::new(Family::Inet)?;
        a.setopt("so_reuseport", true)?;
        a.bind(("127.0.0.1", 0))?;
        let addr = a.local_addr()?;
        let b = Udp::new(Family::Inet)?;
        b.setopt("so_reuseport", true)?;
        b.bind(&addr)?;
        assert_eq!(b.local_addr()?, addr);
        let c = Udp::new(Family::Inet)?;
        let e = c.bind(&addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddressAlreadyInUse, "{e}");
        // 40 senders (distinct source ports, so they hash apart).
        const SENDERS: usize = 40;
        let mut senders = Vec::new();
        for i in 0..SENDERS {
            let s = Udp::new(Family::Inet)?;
            s.sendto(&addr, format!("{i}").as_bytes(), within(1.0))
                .await?;
            senders.push(s);
        }
        let mut got = Vec::new();
        for u in [&a, &b] {
            let mut buf = [0u8; 16];
            loop {
                match u.recvnext(&mut buf, within(0.05)).await {
                    Ok((n, _)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e) if e.kind() == ErrorKind::Timeout => break,
                    Err(e) => return Err(e),
                }
            }
        }
        got.sort_by_key(|s| s.parse::<usize>().unwrap());
        let want: Vec<String> = (0..SENDERS).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "each datagram arrives exactly once");
        Ok(())
    });
}

/// F5: so_broadcast round trip; a broadcast send without it is access_denied;
/// with it, a datagram to the loopback broadcast address arrives.
#[test]
fn broadcast_option_and_loopback_broadcast() {
    run(5.0, async {
        let u = Udp::new(Family::Inet)?;
        assert_eq!(u.getopt("so_broadcast")?, OptVal::Bool(false));
        u.setopt("so_broadcast", true)?;
        assert_eq!(u.getopt("so_broadcast")?, OptVal::Bool(true));
        u.setopt("so_broadcast", false)?;
        assert_eq!(u.getopt("so_broadcast")?, OptVal::Bool(false));

        // 127.255.255.255 is the broadcast address of lo (local table): the
        // datagram never leaves the host.
        let rx = Udp::new(Family::Inet)?;
        rx.bind(("*", 0))?;
        let port = rx.local_addr()?.port();
        let e = u
            .sendto(("127.255.255.255", port), b"no", within(1.0))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
        u.setopt("so_broadcast", true)?;
        assert_eq!(
            u.sendto(("127.255.255.255", port), b"all", within(1.0))
                .await?,
            3
        );
        let (data, from) = recv_one(&rx, 1.0).await?;
        assert_eq!(data, b"all");
        assert_eq!(from.port(), u.local_addr()?.port());
        assert_eq!(from.ip().unwrap().tostring(), "127.0.0.1");
        Ok(())
    });
}

/// F5: the multicast options, when the library has them.
#[test]
fn multicast_options_round_trip() {
    let names: Vec<&str> = sock::opt::names().collect();
    let u = Udp::new(Family::Inet).unwrap();
    let mut tested = 0;
    if names.contains(&"ip_multicast_ttl") {
        for ttl in [5, 1, 255] {
            u.setopt("ip_multicast_ttl", ttl).unwrap();
            assert_eq!(u.getopt("ip_multicast_ttl").unwrap(), OptVal::Int(ttl));
        }
        tested += 1;
    } else {
        eprintln!("skipped ip_multicast_ttl: not among sock::opt::names()");
    }
    if names.contains(&"ip_multicast_loop") {
        u.setopt("ip_multicast_loop", false).unwrap();
        assert_eq!(u.getopt("ip_multicast_loop").unwrap(), OptVal::Bool(false));
        u.setopt("ip_multicast_loop", true).unwrap();
        assert_eq!(u.getopt("ip_multicast_loop").unwrap(), OptVal::Bool(true));
        tested += 1;
    } else {
        eprintln!("skipped ip_multicast_loop: not among sock::opt::names()");
    }
    if has_ipv6() {
        let u6 = Udp::new(Family::Inet6).unwrap();
        if names.contains(&"ipv6_multicast_hops") {
            u6.setopt("ipv6_multicast_hops", 7).unwrap();
            assert_eq!(u6.getopt("ipv6_multicast_hops").unwrap(), OptVal::Int(7));
            tested += 1;
        }
        if names.contains(&"ipv6_multicast_loop") {
            u6.setopt("ipv6_multicast_loop", false).unwrap();
            assert_eq!(
                u6.getopt("ipv6_multicast_loop").unwrap(),
                OptVal::Bool(false)
            );
            tested += 1;
        }
    }
    eprintln!("{tested} multicast options round-tripped");
}

/// F5/A4: options on a closed socket fail with `closed`; so does every call.
#[test]
fn closed_udp_socket() {
    run(5.0, async {
        let (u, _) = bound(Family::Inet)?;
        u.close();
        assert_eq!(
            u.setopt("so_broadcast", true).unwrap_err().kind(),
            ErrorKind::Closed
        );
        assert_eq!(u.getopt("so_rcvbuf").unwrap_err().kind(), ErrorKind::Closed);
        assert_eq!(
            u.sendto(("127.0.0.1", 9), b"x", within(1.0))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Closed
        );
        let mut buf = [0u8; 4];
        assert_eq!(
            u.recvnext(&mut buf, within(1.0)).await.unwrap_err().kind(),
            ErrorKind::Closed
        );
        assert_eq!(
            u.connect(("127.0.0.1", 9)).unwrap_err().kind(),
            ErrorKind::Closed
        );
        assert_eq!(u.disconnect().unwrap_err().kind(), ErrorKind::Closed);
        Ok(())
    });
}

/// close() while a thread is parked in recvnext wakes it with `closed`.
/// Reliability checklist: A3 (docs/reliability.md).
#[test]
fn close_wakes_a_parked_recvnext() {
    run(5.0, async {
        let (u, _) = bound(Family::Inet)?;
        let u = Rc::new(u);
        let r = Rc::clone(&u);
        let reader = sock::newthread(async move {
            let t0 = sock::clock();
            let res = recv_one(&r, 3.0).await.map(|_| ());
            sock::Result::Ok((res, sock::clock() - t0))
        });
        sock::sleep(0.05).await?;
        u.close();
        let (res, waited) = reader.join().await??;
        assert_eq!(res.unwrap_err().kind(), ErrorKind::Closed);
        assert!(waited < 0.5, "woken after {waited} s, not at close");
        Ok(())
    });
}

/// A v4 socket cannot send to a v6 address.
#[test]
fn sendto_the_other_family() {
    run(5.0, async {
        let u = Udp::new(Family::Inet)?;
        let v6: SockAddr = "[::1]:9".parse()?;
        let e = u.sendto(&v6, b"x", within(1.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddressFamilyNotSupported, "{e}");
        Ok(())
    });
}

/// `step_recvnext_cut`: a datagram longer than the buffer is its first bytes,
/// the source and `true` (the kernel drops the rest); one that fits is
/// `false`. `recvnext` reports the same datagram as `message_too_big`.
/// Reliability checklist: F4 (docs/reliability.md).
#[test]
fn a_cut_datagram_as_a_value() {
    use sock::op::Step;
    run(5.0, async {
        let (a, pa) = bound(Family::Inet)?;
        let (b, pb) = bound(Family::Inet)?;
        b.sendto(&pa, b"abcdefghij", within(1.0)).await?;
        b.sendto(&pa, b"xy", within(1.0)).await?;
        b.sendto(&pa, b"0123456789", within(1.0)).await?;
        a.wait(sock::Direction::Read, within(1.0)).await?;
        let mut buf = [0u8; 4];
        match a.step_recvnext_cut(&mut buf, true) {
            Step::Ready(Ok((n, from, cut))) => {
                assert_eq!((n, cut), (4, true));
                assert_eq!(from, pb);
                assert_eq!(&buf, b"abcd");
            }
            other => panic!("{other:?}"),
        }
        match a.step_recvnext_cut(&mut buf, true) {
            Step::Ready(Ok((n, _, cut))) => assert_eq!((n, cut), (2, false)),
            other => panic!("{other:?}"),
        }
        let e = a.recvnext(&mut buf, within(1.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MessageTooBig);
        assert_eq!(e.done(), 4);
        Ok(())
    });
}
