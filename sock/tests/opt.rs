//! Socket options through the public API: `OptVal`, `opt::names`, and
//! `setopt`/`getopt` on `Tcp` sockets, and the multicast options on `Udp`.
//!
//! The exhaustive per-option tests (unconnected and IPv6 sockets, `so_error`,
//! Linux specifics) are unit tests in `src/opt.rs`.
#![cfg(unix)]

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use sock::opt::names;
use sock::{ErrorKind, Family, OptVal, Tcp, Udp};

/// A listener, and a connected client and server.
fn pair() -> (Tcp, Tcp, Tcp) {
    let (listener, addr) = util::listener(Family::Inet);
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    util::run(5.0, async move {
        let client = Tcp::new(Family::Inet)?;
        client.connect(addr, util::within(2.0)).await?;
        let (server, _, _) = listener.accept(util::within(2.0)).await?;
        *o.borrow_mut() = Some((listener, client, server));
        Ok(())
    });
    let p = out.borrow_mut().take().unwrap();
    p
}

#[test]
fn names_are_sorted_and_unique() {
    let names: Vec<&str> = names().collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert!(names.contains(&"so_rcvbuf") && names.contains(&"tcp_nodelay"));
    for multicast in [
        "ip_add_membership",
        "ip_drop_membership",
        "ip_multicast_if",
        "ip_multicast_loop",
        "ip_multicast_ttl",
        "ipv6_join_group",
        "ipv6_leave_group",
        "ipv6_multicast_hops",
        "ipv6_multicast_if",
        "ipv6_multicast_loop",
    ] {
        assert!(names.contains(&multicast), "{multicast} missing");
    }
}

#[test]
fn optval_from_and_accessors() {
    assert_eq!(OptVal::from(false).as_bool(), Some(false));
    assert_eq!(OptVal::from(5i32).as_int(), Some(5));
    assert_eq!(OptVal::from(5u32).as_int(), Some(5));
    assert_eq!(OptVal::from(-5i64).as_int(), Some(-5));
    assert_eq!(OptVal::from(0.75).as_secs(), Some(0.75));
    assert_eq!(OptVal::from(0.75).as_int(), None);
    assert_eq!(OptVal::Str("inet".into()).as_str(), Some("inet"));
    assert_eq!(OptVal::from("inet"), OptVal::Str("inet".into()));
    // A string built at run time, e.g. a multicast group the user gave.
    let group = String::from("239.255.0.1");
    let v = OptVal::from(format!("{group} 0.0.0.0"));
    assert_eq!(v.as_str(), Some("239.255.0.1 0.0.0.0"));
    assert_eq!(v, OptVal::from("239.255.0.1 0.0.0.0"));
    assert_eq!(OptVal::from(group).as_str(), Some("239.255.0.1"));
}

/// Reliability checklist: J1 (docs/reliability.md).
#[test]
fn round_trips_on_a_connected_tcp_socket() {
    let (_listener, client, _server) = pair();
    let setopt = |name: &str, v: &OptVal| client.setopt(name, v.clone());
    let getopt = |name: &str| client.getopt(name);
    for name in ["tcp_nodelay", "so_keepalive", "so_reuseaddr"] {
        setopt(name, &true.into()).unwrap();
        assert_eq!(getopt(name).unwrap(), OptVal::Bool(true), "{name}");
        setopt(name, &false.into()).unwrap();
        assert_eq!(getopt(name).unwrap(), OptVal::Bool(false), "{name}");
    }
    setopt("ip_ttl", &33.into()).unwrap();
    assert_eq!(getopt("ip_ttl").unwrap(), OptVal::Int(33));

    setopt("so_linger", &0.into()).unwrap();
    assert_eq!(getopt("so_linger").unwrap(), OptVal::Int(0));
    setopt("so_linger", &false.into()).unwrap();
    assert_eq!(getopt("so_linger").unwrap(), OptVal::Bool(false));

    setopt("so_rcvtimeo", &1.5.into()).unwrap();
    let got = getopt("so_rcvtimeo").unwrap().as_secs().unwrap();
    assert!((got - 1.5).abs() <= 0.011, "{got}");

    assert_eq!(getopt("so_error").unwrap(), OptVal::Int(0));
    assert!(getopt("tcp_maxseg").unwrap().as_int().unwrap() > 0);
}

#[test]
fn socket_kinds() {
    let (listener, client, server) = pair();
    assert_eq!(
        listener.getopt("so_acceptconn").unwrap(),
        OptVal::Bool(true)
    );
    assert_eq!(client.getopt("so_acceptconn").unwrap(), OptVal::Bool(false));
    assert_eq!(server.getopt("so_type").unwrap(), OptVal::Str("tcp".into()));
    if cfg!(target_os = "linux") {
        assert_eq!(
            server.getopt("so_protocol").unwrap(),
            OptVal::Str("tcp".into())
        );
        assert_eq!(
            client.getopt("so_domain").unwrap(),
            OptVal::Str("inet".into())
        );
        let six = Tcp::new(Family::Inet6).unwrap();
        assert_eq!(
            six.getopt("so_domain").unwrap(),
            OptVal::Str("inet6".into())
        );
        six.setopt("ipv6_v6only", true).unwrap();
        assert_eq!(six.getopt("ipv6_v6only").unwrap(), OptVal::Bool(true));
    }
}

/// Reliability checklist: F5 (docs/reliability.md).
#[test]
fn multicast_on_udp_through_loopback() {
    let r = Udp::new(Family::Inet).unwrap();
    r.bind(("0.0.0.0", 0)).unwrap();
    let port = r.local_addr().unwrap().port();
    // The group as a run-time string, as a user would give it.
    let group = String::from("239.255.0.1");
    let membership = format!("{group} 127.0.0.1");
    if let Err(e) = r.setopt("ip_add_membership", membership.clone()) {
        let expected = match e.code() {
            libc::ENODEV => ErrorKind::Other,
            libc::EADDRNOTAVAIL => ErrorKind::AddressNotAvailable,
            _ => panic!("ip_add_membership {membership}: {e}"),
        };
        assert_eq!(e.kind(), expected, "{e}");
        eprintln!("skipped: the kernel refused ip_add_membership on lo ({e}): no multicast here");
        return;
    }
    let e = r.getopt("ip_add_membership").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let s = Udp::new(Family::Inet).unwrap();
    assert_eq!(
        s.getopt("ip_multicast_if").unwrap(),
        OptVal::from("0.0.0.0")
    );
    s.setopt("ip_multicast_if", "127.0.0.1").unwrap();
    assert_eq!(
        s.getopt("ip_multicast_if").unwrap().as_str(),
        Some("127.0.0.1")
    );
    s.setopt("ip_multicast_loop", true).unwrap();
    assert_eq!(s.getopt("ip_multicast_loop").unwrap(), OptVal::Bool(true));
    s.setopt("ip_multicast_ttl", 1).unwrap();
    assert_eq!(s.getopt("ip_multicast_ttl").unwrap(), OptVal::Int(1));

    util::run(5.0, async move {
        s.sendto((group.as_str(), port), b"to the group", util::within(2.0))
            .await?;
        let mut buf = [0u8; 32];
        let (n, _) = r.recvnext(&mut buf, util::within(2.0)).await?;
        assert_eq!(&buf[..n], b"to the group");
        r.setopt("ip_drop_membership", membership.clone())?;
        let e = r.setopt("ip_drop_membership", membership).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddressNotAvailable, "{e}");
        Ok(())
    });
}

/// Reliability checklist: J1 (docs/reliability.md).
#[test]
fn errors() {
    let t = Tcp::new(Family::Inet).unwrap();

    let e = t.getopt("no_such_option").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("no_such_option") && e.message().contains("so_rcvbuf"));

    let e = t.setopt("so_type", 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("read-only"), "{}", e.message());

    // Write-only options (multicast membership) cannot be read; checked before
    // the OS, so on any socket.
    for name in ["ip_add_membership", "ipv6_leave_group"] {
        let e = t.getopt(name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}");
        assert!(e.message().contains("write-only"), "{}", e.message());
    }
    let e = t.setopt("ip_add_membership", "not-a-group").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("not-a-group"), "{}", e.message());
    let e = t.setopt("ip_add_membership", 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let e = t.setopt("so_rcvbuf", true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t.setopt("so_sndtimeo", -1.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    if cfg!(target_os = "linux") {
        let e = t.setopt("so_sndlowat", 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
    }
}

/// The later versions' spelling: socket-level names without `so_`
/// (`reuseaddr`); `tcp_*` and `ip*` names keep their prefix.
#[test]
fn socket_level_names_without_the_so_prefix() {
    let t = Tcp::new(Family::Inet).unwrap();
    t.setopt("reuseaddr", true).unwrap();
    assert_eq!(t.getopt("so_reuseaddr").unwrap(), OptVal::Bool(true));
    assert_eq!(t.getopt("reuseaddr").unwrap(), OptVal::Bool(true));
    assert_eq!(t.getopt("rcvbuf").unwrap(), t.getopt("so_rcvbuf").unwrap());
    assert_eq!(sock::Opt::find("reuseaddr").unwrap().name(), "so_reuseaddr");
    t.setopt("linger", 0).unwrap();
    assert_eq!(t.getopt("so_linger").unwrap(), OptVal::Int(0));
    for name in ["nodelay", "so_", "", "so_so_reuseaddr"] {
        let e = t.getopt(name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}");
    }
    let long = "x".repeat(100);
    assert!(sock::Opt::find(&long).is_none());
}

/// A name that the original library knows on Windows only: `not_supported`
/// here (and not the error of a name that does not exist).
/// Reliability checklist: J1 (docs/reliability.md).
#[test]
fn options_of_other_platforms_are_not_supported() {
    let t = Tcp::new(Family::Inet).unwrap();
    for name in ["so_conditional_accept", "conditional_accept", "tcp_maxrt"] {
        assert_eq!(
            t.getopt(name).unwrap_err().kind(),
            ErrorKind::NotSupported,
            "{name}"
        );
        let e = t.setopt(name, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported, "{name}");
    }
    assert_eq!(
        t.getopt("so_nonsense").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
