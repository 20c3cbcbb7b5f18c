//! Raw sockets: ICMP and ICMPv6 echo through loopback, connect filtering,
//! truncation and timeouts (as root), and `access_denied` without privilege
//! (J3). Loopback only, every wait bounded.

mod util;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

use sock::{ErrorKind, Family, Protocol, Raw, SockAddr, SocketType};
use util::{has_ipv6, run, within};

/// Set in the environment of the unprivileged child run of this binary.
const CHILD_ENV: &str = "SOCK_RAW_TEST_UNPRIVILEGED_CHILD";
/// The uid and gid of `nobody`.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// An ICMP identifier unlikely to collide with another test's or process's.
fn unique_id() -> u16 {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    (std::process::id() as u16)
        .wrapping_mul(131)
        .wrapping_add(n.wrapping_mul(7919))
}

/// An ICMP (v4) echo request with a valid checksum.
fn echo_request_v4(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(checksum(&m), 0, "a checksummed message sums to zero");
    m
}

/// Makes an ICMP raw socket, or says why the test is skipped.
fn icmp_socket() -> Option<Raw> {
    if !is_root() {
        eprintln!("skipped: not root (raw sockets need CAP_NET_RAW)");
        return None;
    }
    Some(Raw::with_protocol(Family::Inet, Some(Protocol::Icmp)).unwrap())
}

/// An ICMP message received on a raw IPv4 socket, split from its IP header.
struct V4 {
    src: [u8; 4],
    icmp: Vec<u8>,
}

fn parse_v4(pkt: &[u8]) -> V4 {
    assert!(pkt.len() >= 20, "shorter than an IP header: {pkt:?}");
    assert_eq!(pkt[0] >> 4, 4, "an IPv4 header first");
    let ihl = (pkt[0] & 0x0f) as usize * 4;
    assert_eq!(pkt[9], 1, "protocol ICMP in the IP header");
    V4 {
        src: pkt[12..16].try_into().unwrap(),
        icmp: pkt[ihl..].to_vec(),
    }
}

/// Receives on `r` until the echo reply with `id` and `seq` arrives; returns
/// it, its source, and every other datagram seen meanwhile (by source).
async fn await_reply_v4(
    r: &Raw,
    id: u16,
    seq: u16,
    limit: f64,
) -> sock::Result<(V4, SockAddr, Vec<[u8; 4]>)> {
    let end = sock::clock() + limit;
    let mut buf = [0u8; 2048];
    let mut others = Vec::new();
    loop {
        let (n, from) = r.recvnext(&mut buf, Some(end)).await?;
        let m = parse_v4(&buf[..n]);
        assert_eq!(
            from.ip().unwrap().tobinary(),
            &m.src,
            "recvnext's address is the IP source"
        );
        if m.icmp.len() >= 8
            && m.icmp[0] == 0
            && m.icmp[4..6] == id.to_be_bytes()
            && m.icmp[6..8] == seq.to_be_bytes()
        {
            return Ok((m, from, others));
        }
        others.push(m.src);
    }
}

/// An ICMP echo request to 127.0.0.1 and its reply through the loop.
#[test]
fn icmp_echo_to_loopback() {
    let Some(r) = icmp_socket() else { return };
    assert_eq!(r.socket_type(), SocketType::Raw);
    assert_eq!(r.family(), Family::Inet);
    assert_eq!(r.protocol(), Protocol::Icmp);
    run(5.0, async move {
        let id = unique_id();
        let payload = b"sock raw echo payload";
        let req = echo_request_v4(id, 1, payload);
        assert_eq!(
            r.sendto(("127.0.0.1", 0), &req, within(1.0)).await?,
            req.len()
        );
        let (reply, from, _) = await_reply_v4(&r, id, 1, 2.0).await?;
        assert_eq!(from.ip().unwrap().tostring(), "127.0.0.1");
        assert_eq!(from.family(), Family::Inet);
        assert_eq!(from.port(), 0, "raw addresses have no port");
        assert_eq!(reply.src, [127, 0, 0, 1]);
        assert_eq!(reply.icmp[1], 0, "code 0");
        assert_eq!(checksum(&reply.icmp), 0, "the reply's checksum is valid");
        assert_eq!(&reply.icmp[8..], payload, "the payload comes back");
        Ok(())
    });
}

/// A raw socket connected to 127.0.0.1 only sees datagrams from 127.0.0.1: the
/// reply from 127.0.0.2 is filtered; unconnected, it is not.
#[test]
fn connected_raw_socket_filters_by_source() {
    let Some(r) = icmp_socket() else { return };
    let Some(watch) = icmp_socket() else { return };
    run(5.0, async move {
        let id = unique_id();
        r.connect(("127.0.0.1", 0))?;
        // (No peer_addr check: Linux's getpeername answers ENOTCONN on a
        // connected raw socket, which has no port.)
        // Through an unconnected socket, so that both replies exist.
        watch
            .sendto(
                ("127.0.0.2", 0),
                &echo_request_v4(id, 1, b"two"),
                within(1.0),
            )
            .await?;
        // The unconnected socket sees the reply from 127.0.0.2.
        let (_, from, _) = await_reply_v4(&watch, id, 1, 2.0).await?;
        assert_eq!(from.ip().unwrap().tostring(), "127.0.0.2");
        // send on the connected socket goes to 127.0.0.1.
        r.send(&echo_request_v4(id, 2, b"one"), within(1.0)).await?;
        let (reply, _, others) = await_reply_v4(&r, id, 2, 2.0).await?;
        assert_eq!(reply.src, [127, 0, 0, 1]);
        assert!(
            others.iter().all(|s| *s == [127, 0, 0, 1]),
            "only datagrams from 127.0.0.1 on the connected socket: {others:?}"
        );
        Ok(())
    });
}

/// Linux stops delivering to a raw socket that is disconnected (the kernel
/// unhashes it and nothing puts it back), so disconnecting one is refused with
/// `not_supported`, and the socket keeps its filter and keeps receiving.
#[test]
fn raw_disconnect_is_refused_and_the_socket_keeps_working() {
    let Some(r) = icmp_socket() else { return };
    run(5.0, async move {
        let id = unique_id();
        r.connect(("127.0.0.5", 0))?;
        for e in [
            r.connect(("*", 0)).unwrap_err(),
            r.disconnect().unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
        }
        r.send(&echo_request_v4(id, 1, b"still"), within(1.0))
            .await?;
        let (reply, _, _) = await_reply_v4(&r, id, 1, 2.0).await?;
        assert_eq!(
            reply.src,
            [127, 0, 0, 5],
            "still connected, still receiving"
        );
        Ok(())
    });
}

/// A raw datagram larger than the buffer is message_too_big with the prefix
/// kept; recv honours its deadline (a source nothing comes from).
/// Reliability checklist: F4 (docs/reliability.md).
#[test]
fn raw_truncation_and_timeout() {
    let Some(r) = icmp_socket() else { return };
    run(5.0, async move {
        let id = unique_id();
        // Only 127.0.0.4 gets through: our echo's reply, nothing else.
        r.connect(("127.0.0.4", 0))?;
        r.send(&echo_request_v4(id, 1, &[0x55; 100]), within(1.0))
            .await?;
        let mut small = [0u8; 10];
        let e = r.recv(&mut small, within(2.0)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MessageTooBig, "{e}");
        assert_eq!(e.done(), 10);
        assert_eq!(small[0] >> 4, 4, "the prefix is the IP header");
        assert_eq!(small[9], 1, "protocol ICMP in the kept header");
        // Nothing else comes from 127.0.0.4: the timeout is on time.
        let t0 = sock::clock();
        let mut buf = [0u8; 1500];
        let e = r.recv(&mut buf, Some(t0 + 0.1)).await.unwrap_err();
        let late = sock::clock() - (t0 + 0.1);
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!((0.0..0.05).contains(&late), "timed out {late} s off");
        // Still usable.
        r.send(&echo_request_v4(id, 2, b"x"), within(1.0)).await?;
        let (reply, _, others) = await_reply_v4(&r, id, 2, 2.0).await?;
        assert_eq!(reply.src, [127, 0, 0, 4]);
        assert!(others.is_empty(), "{others:?}");
        Ok(())
    });
}

/// An ICMPv6 echo to ::1: the kernel computes the checksum, and the reply
/// comes without an IP header.
#[test]
fn icmpv6_echo_to_loopback() {
    if !is_root() {
        eprintln!("skipped: not root (raw sockets need CAP_NET_RAW)");
        return;
    }
    if !has_ipv6() {
        eprintln!("skipped: no IPv6 on loopback");
        return;
    }
    let r = Raw::with_protocol(Family::Inet6, Some(Protocol::Icmpv6)).unwrap();
    assert_eq!(r.family(), Family::Inet6);
    assert_eq!(r.protocol(), Protocol::Icmpv6);
    run(5.0, async move {
        let id = unique_id();
        let payload = b"sock icmpv6 echo";
        // Type 128, code 0, checksum left 0 for the kernel.
        let mut req = vec![128, 0, 0, 0];
        req.extend_from_slice(&id.to_be_bytes());
        req.extend_from_slice(&7u16.to_be_bytes());
        req.extend_from_slice(payload);
        assert_eq!(r.sendto(("::1", 0), &req, within(1.0)).await?, req.len());
        let end = sock::clock() + 2.0;
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = r.recvnext(&mut buf, Some(end)).await?;
            let m = &buf[..n];
            // Our own request loops back too (type 128): skip it and others.
            if n < 8 || m[0] != 129 || m[4..6] != id.to_be_bytes() {
                continue;
            }
            assert_eq!(from.ip().unwrap().tostring(), "::1");
            assert_eq!(from.family(), Family::Inet6);
            assert_eq!(&m[6..8], &7u16.to_be_bytes());
            assert_eq!(&m[8..], payload, "no IP header: the ICMPv6 message itself");
            // The checksum covers a pseudo-header (RFC 4443 2.3).
            let mut pseudo = Vec::new();
            let lo = std::net::Ipv6Addr::LOCALHOST.octets();
            pseudo.extend_from_slice(&lo);
            pseudo.extend_from_slice(&lo);
            pseudo.extend_from_slice(&(n as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            pseudo.extend_from_slice(m);
            assert_eq!(checksum(&pseudo), 0, "the reply's checksum is valid");
            return Ok(());
        }
    });
}

/// J3: without privilege, making a raw socket is `access_denied`. As root the
/// check runs in a child: this test binary again, as uid/gid 65534, told by
/// an environment variable to run only the unprivileged checks.
#[test]
fn raw_socket_without_privilege_is_access_denied() {
    if std::env::var_os(CHILD_ENV).is_some() {
        unprivileged_checks();
        println!("unprivileged checks passed");
        return;
    }
    if !is_root() {
        unprivileged_checks();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let spawned = Command::new(&exe)
        .args([
            "--exact",
            "raw_socket_without_privilege_is_access_denied",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .uid(NOBODY)
        .gid(NOBODY)
        .output();
    let out = match spawned {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "skipped: cannot run {} as uid {NOBODY} ({e}): setuid is not permitted \
                 here or the binary is not executable by that user",
                exe.display()
            );
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the unprivileged child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("unprivileged checks passed") && stdout.contains("1 passed"),
        "the child did not run the checks:\n{stdout}\n{stderr}"
    );
}

/// What an unprivileged process sees.
fn unprivileged_checks() {
    assert!(!is_root(), "the checks must run without root");
    let e = Raw::new(Family::Inet).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    assert_eq!(e.name(), "access_denied");
    let e = Raw::with_protocol(Family::Inet, Some(Protocol::Icmp)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    if has_ipv6() {
        let e = Raw::with_protocol(Family::Inet6, Some(Protocol::Icmpv6)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    }
    // J3 too: a port below ip_unprivileged_port_start.
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start > 1 {
        let t = sock::Tcp::new(Family::Inet).unwrap();
        let e = t.bind(("127.0.0.1", 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "bind to port 1: {e}");
    } else {
        eprintln!("skipped the low-port bind: ip_unprivileged_port_start = {start}");
    }
}
