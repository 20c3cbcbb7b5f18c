//! TCP: connect, accept, send/recv, close semantics, shutdown, timeouts.

mod util;

use std::rc::Rc;

use sock::{ErrorKind, Family, Shutdown, Tcp};
use util::{listener, run, within};

#[test]
fn echo_once() {
    run(5.0, async {
        let (l, addr) = listener(Family::Inet);
        sock::newthread(async move {
            let (c, remote, local) = l.accept(within(2.0)).await?;
            assert_eq!(remote.ip().unwrap().tostring(), "127.0.0.1");
            assert_eq!(local.port(), l.local_addr()?.port());
            let mut buf = [0u8; 5];
            c.recvall(&mut buf, within(2.0)).await?;
            c.sendall(&buf, within(2.0)).await?;
            sock::Result::Ok(())
        });
        let c = Tcp::new(Family::Inet)?;
        c.connect(addr, within(2.0)).await?;
        c.sendall(b"hello", within(2.0)).await?;
        let mut buf = [0u8; 5];
        c.recvall(&mut buf, within(2.0)).await?;
        assert_eq!(&buf, b"hello");
        Ok(())
    });
}
