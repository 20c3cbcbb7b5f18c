//! C6: running out of descriptors while connections wait to be accepted does
//! not make `accept` spin, and the listener recovers. Alone in its binary: it
//! lowers the process's descriptor limit.

mod util;

use sock::{ErrorKind, Family, Tcp};
use util::{listener, run, within};

fn set_nofile(soft: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

/// Reliability checklist: C6 (docs/reliability.md).
#[test]
fn accept_out_of_descriptors_sheds_and_recovers() {
    run(10.0, async {
        let (l, addr) = listener(Family::Inet);
        let c1 = Tcp::new(Family::Inet)?;
        // The lowest free descriptor number as the limit: none can be opened.
        let lowest_free = {
            use std::os::fd::AsRawFd;
            std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64
        };
        let old = set_nofile(lowest_free);
        assert!(std::fs::File::open("/dev/null").is_err(), "limit in force");
        c1.connect(addr.clone(), within(2.0)).await?;
        let e = l.accept(within(2.0)).await.map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooManyOpenFiles, "{e}");
        // The pending connection was shed: the client sees it closed...
        let mut b = [0u8; 1];
        match c1.recv(&mut b, within(2.0)).await {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
        // ...and accepting again waits (no spinning on it) until the deadline.
        let t0 = sock::clock();
        let e = l.accept(Some(t0 + 0.1)).await.map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        set_nofile(old);
        // With descriptors back, the listener works.
        let c2 = Tcp::new(Family::Inet)?;
        c2.connect(addr, within(2.0)).await?;
        let (s, _, _) = l.accept(within(2.0)).await?;
        s.sendall(b"k", within(1.0)).await?;
        c2.recvall(&mut b, within(1.0)).await?;
        assert_eq!(&b, b"k");
        Ok(())
    });
}
