//! Process-wide resource checks (descriptor counts): alone in their own test
//! binary, since tests in one binary share the process and its descriptors.

mod util;

use std::rc::Rc;

use sock::{Family, Tcp};
use util::{listener, open_fds, run, within};

/// K1/K2: 10,000 connections opened, echoed and closed leave no descriptor
/// behind, and they work past fd 1024: 625 connections, 1,250 descriptors,
/// are open at once (the reason select() is out).
#[test]
fn ten_thousand_connections_leak_no_fds() {
    run(120.0, async {
        const TOTAL: usize = 10_000;
        const BATCH: usize = 625;
        let mut highest = 0;
        // A first listener: the loop's own descriptors (poller, wake-up, the
        // reserve kept against EMFILE) exist from here on.
        drop(listener(Family::Inet));
        let before = open_fds();
        {
            let (l, addr) = listener(Family::Inet);
            let l = Rc::new(l);
            for _ in 0..TOTAL / BATCH {
                let l2 = Rc::clone(&l);
                let srv = sock::newthread(async move {
                    let mut held = Vec::new();
                    for _ in 0..BATCH {
                        let (c, _, _) = l2.accept(within(10.0)).await?;
                        held.push(c);
                    }
                    for c in &held {
                        let mut b = [0u8; 1];
                        c.recvall(&mut b, within(10.0)).await?;
                        c.sendall(&b, within(10.0)).await?;
                    }
                    sock::Result::Ok(())
                });
                let mut clients = Vec::new();
                for _ in 0..BATCH {
                    let c = Tcp::new(Family::Inet)?;
                    c.connect(addr.clone(), within(10.0)).await?;
                    c.sendall(b"!", within(10.0)).await?;
                    highest = highest.max(c.as_raw_fd().unwrap_or(0));
                    clients.push(c);
                }
                srv.join().await??;
                for c in &clients {
                    let mut b = [0u8; 1];
                    c.recvall(&mut b, within(10.0)).await?;
                    assert_eq!(&b, b"!");
                }
            }
        }
        assert_eq!(open_fds(), before, "descriptors leaked");
        assert!(highest > 1024, "the highest descriptor was {highest}");
        Ok(())
    });
}
