//! Address lookup against loopback, numeric addresses, `/etc/hosts` and
//! `/etc/services` only: no test needs the network. A lookup that could fall
//! through to DNS runs on a helper thread with a deadline and the test is skipped
//! (with a printed reason) if it does not answer in time.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use sock::{
    addr, addr_with, AddrFlags, AddrList, ErrorKind, Family, Hints, Ip, Protocol, SockAddr,
    SocketType, ToAddr,
};

fn hints(family: Option<Family>, socket_type: Option<SocketType>, flags: AddrFlags) -> Hints {
    Hints {
        socket_type,
        family,
        protocol: None,
        flags,
    }
}

/// Runs a lookup that might reach a name server on a helper thread; `None` if it
/// did not finish within a few seconds.
fn bounded_lookup(host: &'static str, port: u16, h: Hints) -> Option<sock::Result<AddrList>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(addr_with(host, port, &h));
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

fn ips(list: &AddrList) -> HashSet<IpAddr> {
    list.addrs()
        .map(|ai| ai.addr().ip().unwrap().to_std())
        .collect()
}

/// Reliability checklist: G1 (docs/reliability.md).
#[test]
fn wildcard_is_passive_any_address() {
    let list = addr_with(
        "*",
        8080,
        &hints(Some(Family::Inet), None, AddrFlags::empty()),
    )
    .unwrap();
    for ai in &list {
        assert_eq!(
            ai.addr().ip().unwrap().to_std(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(ai.addr().port(), 8080);
        assert_eq!(ai.to_string(), "0.0.0.0:8080");
    }
    let list = addr_with(
        "*",
        8080,
        &hints(Some(Family::Inet6), None, AddrFlags::PASSIVE),
    )
    .unwrap();
    for ai in &list {
        assert_eq!(
            ai.addr().ip().unwrap().to_std(),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
        assert_eq!(ai.to_string(), "[::]:8080");
    }
    // No family: only wildcard addresses, of either family.
    let list = addr("*", 0).unwrap();
    assert!(!list.is_empty());
    for ai in &list {
        assert!(ai.addr().ip().unwrap().to_std().is_unspecified(), "{ai}");
        assert_eq!(ai.addr().port(), 0);
    }
}

#[test]
fn port_zero_means_any_port() {
    let list = addr("127.0.0.1", 0).unwrap();
    assert!(list.addrs().all(|ai| ai.addr().port() == 0));
    let list = addr("127.0.0.1", "0").unwrap();
    assert_eq!(list.first().addr().port(), 0);
}

#[test]
fn numeric_ipv4() {
    let h = hints(None, Some(SocketType::Tcp), AddrFlags::empty());
    let list = addr_with("127.0.0.1", 80, &h).unwrap();
    assert_eq!(list.len(), 1);
    let ai = list.first();
    assert_eq!(ai.family(), Family::Inet);
    assert_eq!(ai.socket_type(), SocketType::Tcp);
    assert_eq!(ai.protocol(), Protocol::Tcp);
    assert_eq!(ai.name(), None);
    assert_eq!(ai.addr().family(), Family::Inet);
    assert_eq!(ai.addr().port(), 80);
    assert_eq!(
        ai.addr().to_std(),
        Some(SocketAddr::from(([127, 0, 0, 1], 80)))
    );
    assert_eq!(ai.tostring(), "127.0.0.1:80");
    assert_eq!(list.to_string(), "127.0.0.1:80");
    assert_eq!(ai.addr().ip().unwrap().tostring(), "127.0.0.1");
}

/// Reliability checklist: G4 (docs/reliability.md).
#[test]
fn numeric_ipv6() {
    let h = hints(None, Some(SocketType::Udp), AddrFlags::NUMERICHOST);
    let list = addr_with("::1", 53, &h).unwrap();
    assert_eq!(list.len(), 1);
    let ai = list.first();
    assert_eq!(ai.family(), Family::Inet6);
    assert_eq!(ai.socket_type(), SocketType::Udp);
    assert_eq!(ai.protocol(), Protocol::Udp);
    assert_eq!(ai.to_string(), "[::1]:53");
    assert_eq!(
        ai.addr().ip().unwrap().to_std(),
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    );
    // A numeric scope id survives the lookup and the formatting.
    let list = addr_with("fe80::1%1", 80, &h).unwrap();
    assert_eq!(list.first().addr().scope_id(), 1);
    assert_eq!(list.first().to_string(), "[fe80::1%1]:80");
}

#[test]
fn localhost_inet_is_127_0_0_1() {
    let h = hints(
        Some(Family::Inet),
        Some(SocketType::Tcp),
        AddrFlags::empty(),
    );
    let Some(res) = bounded_lookup("localhost", 80, h) else {
        eprintln!("skipped: looking up 'localhost' did not finish in time");
        return;
    };
    let list = res.unwrap();
    assert!(
        ips(&list).contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "{list:?}"
    );
    for ai in &list {
        assert_eq!(ai.family(), Family::Inet);
        assert_eq!(ai.socket_type(), SocketType::Tcp);
    }
}

#[test]
fn localhost_inet6_is_loopback() {
    let h = hints(
        Some(Family::Inet6),
        Some(SocketType::Tcp),
        AddrFlags::empty(),
    );
    let list = match bounded_lookup("localhost", 80, h) {
        None => {
            eprintln!("skipped: looking up 'localhost' (inet6) did not finish in time");
            return;
        }
        Some(Err(e)) => {
            eprintln!("skipped: this machine has no IPv6 entry for 'localhost' ({e})");
            return;
        }
        Some(Ok(list)) => list,
    };
    if !ips(&list).contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)) {
        eprintln!("skipped: this machine has no ::1 entry for 'localhost' ({list:?})");
        return;
    }
    for ai in &list {
        assert_eq!(ai.family(), Family::Inet6);
        assert_eq!(ai.socket_type(), SocketType::Tcp);
    }
}

/// Reliability checklist: G1 (docs/reliability.md).
#[test]
fn numerichost_rejects_names() {
    let h = hints(None, None, AddrFlags::NUMERICHOST);
    let e = addr_with("localhost", 80, &h).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostNotFound);
    assert_eq!(e.name(), "host_not_found");
    assert_ne!(e.code(), 0);
}

/// Reliability checklist: B5 (docs/reliability.md).
#[test]
fn error_message_has_resolver_text_and_what_was_looked_up() {
    let h = hints(None, None, AddrFlags::NUMERICHOST);
    let e = addr_with("x.invalid", 80, &h).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostNotFound);
    let msg = e.message();
    assert!(msg.ends_with(" (host 'x.invalid', port 80)"), "{msg}");
    let text = msg.strip_suffix(" (host 'x.invalid', port 80)").unwrap();
    assert!(!text.is_empty(), "{msg}");
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    assert_eq!(text, "Name or service not known");
    // The same code always gives the same resolver text.
    let e2 = addr_with("also.invalid", "http", &h).unwrap_err();
    assert_eq!(e2.code(), e.code());
    assert!(e2.message().starts_with(text), "{}", e2.message());
    assert!(
        e2.message().ends_with("(host 'also.invalid', port 'http')"),
        "{}",
        e2.message()
    );
}

/// Reliability checklist: G1 (docs/reliability.md).
#[test]
fn numericserv_rejects_service_names() {
    let h = hints(
        None,
        Some(SocketType::Tcp),
        AddrFlags::NUMERICSERV | AddrFlags::NUMERICHOST,
    );
    let e = addr_with("127.0.0.1", "http", &h).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::HostNotFound | ErrorKind::ServiceNotFound
        ),
        "{e}"
    );
    assert!(e.message().contains("port 'http'"), "{e}");
    // A numeric string is fine.
    let list = addr_with("127.0.0.1", "8080", &h).unwrap();
    assert_eq!(list.first().addr().port(), 8080);
}

#[test]
fn service_names_resolve() {
    if !std::path::Path::new("/etc/services").exists() {
        eprintln!("skipped: no /etc/services on this machine");
        return;
    }
    let h = hints(None, Some(SocketType::Tcp), AddrFlags::NUMERICHOST);
    let list = match addr_with("127.0.0.1", "http", &h) {
        Ok(list) => list,
        Err(e) => {
            eprintln!("skipped: /etc/services has no usable 'http' entry ({e})");
            return;
        }
    };
    assert_eq!(list.first().addr().port(), 80);
    let e = addr_with("127.0.0.1", "no-such-service-xyz", &h).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::ServiceNotFound | ErrorKind::HostNotFound
        ),
        "{e}"
    );
}

/// Reliability checklist: G1 (docs/reliability.md).
#[test]
fn canonname_sets_the_name_of_the_first_entry() {
    let h = hints(Some(Family::Inet), None, AddrFlags::CANONNAME);
    let Some(res) = bounded_lookup("localhost", 80, h) else {
        eprintln!("skipped: looking up 'localhost' did not finish in time");
        return;
    };
    let list = res.unwrap();
    let name = list.first().name().expect("canonical name");
    assert!(!name.is_empty());
    assert!(list.addrs().skip(1).all(|ai| ai.name().is_none()));
    // Without the flag there is no name.
    let list = addr_with("127.0.0.1", 80, &hints(None, None, AddrFlags::empty())).unwrap();
    assert!(list.addrs().all(|ai| ai.name().is_none()));
    // A numeric host is its own canonical name.
    let list = addr_with("127.0.0.1", 80, &hints(None, None, AddrFlags::CANONNAME)).unwrap();
    assert_eq!(list.first().name(), Some("127.0.0.1"));
}

/// Reliability checklist: G1 (docs/reliability.md).
#[test]
fn v4mapped_gives_mapped_ipv6() {
    let h = hints(
        Some(Family::Inet6),
        Some(SocketType::Tcp),
        AddrFlags::V4MAPPED,
    );
    let list = addr_with("127.0.0.1", 80, &h).unwrap();
    let ai = list.first();
    assert_eq!(ai.family(), Family::Inet6);
    let ip = ai.addr().ip().unwrap();
    assert_eq!(ip.tostring(), "::ffff:127.0.0.1");
    assert_eq!(
        ip.tobinary(),
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
    );
    assert_eq!(ai.to_string(), "[::ffff:127.0.0.1]:80");
    // Without the flag, an IPv4 address has no inet6 result.
    let h = hints(
        Some(Family::Inet6),
        Some(SocketType::Tcp),
        AddrFlags::NUMERICHOST,
    );
    assert!(addr_with("127.0.0.1", 80, &h).is_err());
}

/// Reliability checklist: G1 (docs/reliability.md).
#[test]
fn addrs_walks_the_whole_list() {
    let list = addr("127.0.0.1", 80).unwrap();
    let types: Vec<SocketType> = list.addrs().map(|ai| ai.socket_type()).collect();
    assert_eq!(types.len(), list.len());
    for t in [SocketType::Tcp, SocketType::Udp] {
        assert!(types.contains(&t), "{t} missing from {list:?}");
    }
    #[cfg(target_os = "linux")]
    assert!(
        types.contains(&SocketType::Raw),
        "raw missing from {list:?}"
    );
    for ai in &list {
        assert_eq!(ai.protocol(), Protocol::default_for(ai.socket_type()));
        assert_eq!(ai.to_string(), "127.0.0.1:80");
    }
    // get() walks the same list, then ends (Lua's ai:next()).
    let mut n = 0;
    while let Some(ai) = list.get(n) {
        assert_eq!(ai.socket_type(), types[n]);
        n += 1;
    }
    assert_eq!(n, list.len());
    assert_eq!(list.clone().into_iter().count(), list.len());
}

#[test]
fn tobinary_octets() {
    let v4 = addr("10.20.30.40", 1).unwrap().first().addr().ip().unwrap();
    assert_eq!(v4.tobinary(), &[10, 20, 30, 40]);
    assert_eq!(v4.family(), Family::Inet);
    let v6 = addr("2001:db8::ff", 1)
        .unwrap()
        .first()
        .addr()
        .ip()
        .unwrap();
    let b = v6.tobinary();
    assert_eq!(b.len(), 16);
    assert_eq!(&b[..4], &[0x20, 0x01, 0x0d, 0xb8]);
    assert_eq!(&b[4..15], &[0; 11]);
    assert_eq!(b[15], 0xff);
    assert_eq!(v6.tostring(), "2001:db8::ff");
    assert_eq!(Ip::from(Ipv6Addr::LOCALHOST).tostring(), "::1");
}

#[test]
fn bad_names_are_invalid_argument() {
    let e = AddrFlags::from_names("passive, bogus").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message().contains("bogus") && e.message().contains("v4mapped"),
        "{e}"
    );
    assert_eq!(
        AddrFlags::from_names("cannonname").unwrap(),
        AddrFlags::CANONNAME
    );
    assert_eq!(
        AddrFlags::from_names("canonname").unwrap(),
        AddrFlags::CANONNAME
    );
    for e in [
        "sctp".parse::<SocketType>().unwrap_err(),
        "ipx".parse::<Family>().unwrap_err(),
        "gre".parse::<Protocol>().unwrap_err(),
        "localhost:80".parse::<SockAddr>().unwrap_err(),
        "1.2.3".parse::<Ip>().unwrap_err(),
    ] {
        assert_eq!(e.name(), "invalid_argument", "{e}");
    }
    assert_eq!(addr("", 80).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        addr("a\0b", 80).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn unix_family_gives_a_path_entry() {
    let h = hints(Some(Family::Unix), None, AddrFlags::empty());
    let list = addr_with("/tmp/sock-addr-test.sock", 0, &h).unwrap();
    assert_eq!(list.len(), 1);
    let ai = list.first();
    assert_eq!(ai.family(), Family::Unix);
    assert_eq!(ai.socket_type(), SocketType::Tcp);
    assert_eq!(ai.protocol(), Protocol::Ip);
    assert_eq!(ai.addr().path(), Some("/tmp/sock-addr-test.sock".into()));
    assert_eq!(ai.addr().port(), 0);
    assert!(ai.addr().ip().is_none());
    assert_eq!(ai.to_string(), "/tmp/sock-addr-test.sock");

    let h = hints(
        Some(Family::Unix),
        Some(SocketType::Udp),
        AddrFlags::empty(),
    );
    let list = addr_with("relative.sock", 0, &h).unwrap();
    assert_eq!(list.first().socket_type(), SocketType::Udp);
    assert_eq!(list.first().to_string(), "relative.sock");

    #[cfg(target_os = "linux")]
    {
        let list = addr_with("@sock-addr-test", 0, &h).unwrap();
        assert_eq!(list.first().addr().path(), None);
        assert_eq!(
            list.first().addr().unix_name().as_deref(),
            Some("@sock-addr-test")
        );
        assert_eq!(list.first().to_string(), "@sock-addr-test");
    }

    let long = "x".repeat(300);
    assert_eq!(
        addr_with(&long, 0, &h).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn to_addr_uses_the_callers_hints() {
    let tcp4 = hints(
        Some(Family::Inet),
        Some(SocketType::Tcp),
        AddrFlags::empty(),
    );
    let list = ("127.0.0.1", 80u16).to_addr(&tcp4).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list.first().socket_type(), SocketType::Tcp);
    let list = (String::from("127.0.0.1"), "8080")
        .to_addr(&tcp4)
        .unwrap()
        .into_owned();
    assert_eq!(list.first().addr().port(), 8080);
    let list = ("*", 0).to_addr(&tcp4).unwrap();
    assert_eq!(list.first().to_string(), "0.0.0.0:0");
    // A family the host does not have: an error, not a wrong address.
    assert!(("::1", 80).to_addr(&tcp4).is_err());

    // An inet6 TCP socket resolving "localhost" gets only ::1 stream entries.
    let tcp6 = hints(
        Some(Family::Inet6),
        Some(SocketType::Tcp),
        AddrFlags::empty(),
    );
    match bounded_lookup("localhost", 80, tcp6.clone()) {
        Some(Ok(list)) => {
            for ai in &list {
                assert_eq!(ai.family(), Family::Inet6);
                assert_eq!(ai.socket_type(), SocketType::Tcp);
            }
        }
        Some(Err(e)) => eprintln!("skipped inet6 part: no IPv6 entry for 'localhost' ({e})"),
        None => eprintln!("skipped inet6 part: lookup did not finish in time"),
    }
    let list = ("::1", 80).to_addr(&tcp6).unwrap();
    assert!(list.addrs().all(|ai| ai.family() == Family::Inet6));
}

#[test]
fn to_addr_passes_resolved_addresses_through() {
    let udp = hints(None, Some(SocketType::Udp), AddrFlags::empty());
    let list = addr("127.0.0.1", 80).unwrap();
    let same = list.to_addr(&udp).unwrap();
    assert!(matches!(same, std::borrow::Cow::Borrowed(_)));
    assert_eq!(same.len(), list.len());
    fn resolved_len(a: impl ToAddr, h: &Hints) -> usize {
        a.to_addr(h).unwrap().len()
    }
    assert_eq!(resolved_len(&list, &udp), list.len());

    let one = list.first().to_addr(&udp).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one.first().socket_type(), list.first().socket_type());

    let sa: SockAddr = "[::1]:9".parse().unwrap();
    let l = sa.to_addr(&udp).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l.first().socket_type(), SocketType::Udp);
    assert_eq!(l.first().protocol(), Protocol::Udp);
    assert_eq!(l.first().addr(), &sa);

    let std_addr = SocketAddr::from(([127, 0, 0, 1], 7));
    let l = std_addr.to_addr(&Hints::default()).unwrap();
    assert_eq!(l.first().socket_type(), SocketType::Tcp);
    assert_eq!(l.first().to_string(), "127.0.0.1:7");

    let l = AddrList::from_sockaddr(SockAddr::from(std_addr), SocketType::Raw);
    assert_eq!(l.first().protocol(), Protocol::Raw);
}

#[test]
fn sockaddr_text_round_trip() {
    for s in [
        "127.0.0.1:80",
        "[::1]:443",
        "[fe80::1%1]:80",
        "[::ffff:1.2.3.4]:5",
        "0.0.0.0:0",
    ] {
        let sa: SockAddr = s.parse().unwrap();
        assert_eq!(sa.to_string(), s);
        assert_eq!(sa.tostring(), s);
        assert_eq!(format!("{sa:?}"), format!("SockAddr({s:?})"));
    }
}
