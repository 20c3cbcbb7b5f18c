//! Socket options through the public API: `OptVal`, `opt::names`, and
//! `setopt`/`getopt` on `Tcp` sockets.
//!
//! The exhaustive per-option tests (unconnected and IPv6 sockets, `so_error`,
//! Linux specifics) are unit tests in `src/opt.rs`.
#![cfg(unix)]

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use sock::opt::names;
use sock::{ErrorKind, Family, OptVal, Tcp};

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
}

#[test]
fn optval_from_and_accessors() {
    assert_eq!(OptVal::from(false).as_bool(), Some(false));
    assert_eq!(OptVal::from(5i32).as_int(), Some(5));
    assert_eq!(OptVal::from(5u32).as_int(), Some(5));
    assert_eq!(OptVal::from(-5i64).as_int(), Some(-5));
    assert_eq!(OptVal::from(0.75).as_secs(), Some(0.75));
    assert_eq!(OptVal::from(0.75).as_int(), None);
    assert_eq!(OptVal::Str("inet").as_str(), Some("inet"));
}

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
    assert_eq!(server.getopt("so_type").unwrap(), OptVal::Str("tcp"));
    if cfg!(target_os = "linux") {
        assert_eq!(server.getopt("so_protocol").unwrap(), OptVal::Str("tcp"));
        assert_eq!(client.getopt("so_domain").unwrap(), OptVal::Str("inet"));
        let six = Tcp::new(Family::Inet6).unwrap();
        assert_eq!(six.getopt("so_domain").unwrap(), OptVal::Str("inet6"));
        six.setopt("ipv6_v6only", true).unwrap();
        assert_eq!(six.getopt("ipv6_v6only").unwrap(), OptVal::Bool(true));
    }
}

#[test]
fn errors() {
    let t = Tcp::new(Family::Inet).unwrap();

    let e = t.getopt("no_such_option").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("no_such_option") && e.message().contains("so_rcvbuf"));

    let e = t.setopt("so_type", 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("read-only"), "{}", e.message());

    let e = t.setopt("so_rcvbuf", true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t.setopt("so_sndtimeo", -1.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    if cfg!(target_os = "linux") {
        let e = t.setopt("so_sndlowat", 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
    }
}
