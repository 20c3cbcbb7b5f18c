//! Socket options through the public API: `OptVal`, `opt::names` and the hidden
//! `__setopt_raw`/`__getopt_raw` test hooks, on sockets made with `std::net`.
//!
//! The exhaustive per-option tests (unconnected and IPv6 sockets, `so_error`,
//! Linux specifics) are unit tests in `src/opt.rs`.
#![cfg(unix)]

use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;

use sock::opt::{__getopt_raw as getopt, __setopt_raw as setopt, names};
use sock::{ErrorKind, OptVal};

fn pair() -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (listener, client, server)
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
    let fd = client.as_fd();
    for name in ["tcp_nodelay", "so_keepalive", "so_reuseaddr"] {
        setopt(fd, name, &true.into()).unwrap();
        assert_eq!(getopt(fd, name).unwrap(), OptVal::Bool(true), "{name}");
        setopt(fd, name, &false.into()).unwrap();
        assert_eq!(getopt(fd, name).unwrap(), OptVal::Bool(false), "{name}");
    }
    setopt(fd, "ip_ttl", &33.into()).unwrap();
    assert_eq!(getopt(fd, "ip_ttl").unwrap(), OptVal::Int(33));

    setopt(fd, "so_linger", &0.into()).unwrap();
    assert_eq!(getopt(fd, "so_linger").unwrap(), OptVal::Int(0));
    setopt(fd, "so_linger", &false.into()).unwrap();
    assert_eq!(getopt(fd, "so_linger").unwrap(), OptVal::Bool(false));

    setopt(fd, "so_rcvtimeo", &1.5.into()).unwrap();
    let got = getopt(fd, "so_rcvtimeo").unwrap().as_secs().unwrap();
    assert!((got - 1.5).abs() <= 0.011, "{got}");

    assert_eq!(getopt(fd, "so_error").unwrap(), OptVal::Int(0));
    assert!(getopt(fd, "tcp_maxseg").unwrap().as_int().unwrap() > 0);
}

#[test]
fn socket_kinds() {
    let (listener, client, server) = pair();
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    assert_eq!(
        getopt(listener.as_fd(), "so_acceptconn").unwrap(),
        OptVal::Bool(true)
    );
    assert_eq!(
        getopt(client.as_fd(), "so_acceptconn").unwrap(),
        OptVal::Bool(false)
    );
    assert_eq!(
        getopt(server.as_fd(), "so_type").unwrap(),
        OptVal::Str("tcp")
    );
    assert_eq!(getopt(udp.as_fd(), "so_type").unwrap(), OptVal::Str("udp"));
    assert_eq!(
        getopt(udp.as_fd(), "so_acceptconn").unwrap(),
        OptVal::Bool(false)
    );
    if cfg!(target_os = "linux") {
        assert_eq!(
            getopt(udp.as_fd(), "so_protocol").unwrap(),
            OptVal::Str("udp")
        );
        assert_eq!(
            getopt(client.as_fd(), "so_domain").unwrap(),
            OptVal::Str("inet")
        );
    }
}

#[test]
fn errors() {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let fd = udp.as_fd();

    let e = setopt(fd, "tcp_nodelay", &true.into()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");

    let e = getopt(fd, "no_such_option").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("no_such_option") && e.message().contains("so_rcvbuf"));

    let e = setopt(fd, "so_type", &1.into()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("read-only"), "{}", e.message());

    let e = setopt(fd, "so_rcvbuf", &true.into()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = setopt(fd, "so_sndtimeo", &(-1.0).into()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}
