//! Test helpers: certificates made by the test (a CA and the certificates it
//! signs, never committed keys), configurations from them, a bound on each
//! test's time, and child processes (other TLS implementations) that are
//! always killed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sock_tls::{ClientConfig, ServerConfig, TlsOptions};

/// A test CA.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain and key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_owned());
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate that expired in 2021.
    pub fn expired(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], f: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        f(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Leaf {
    pub fn keypair(&self) -> sock_tls::KeyPair {
        sock_tls::KeyPair {
            cert: self.cert.clone().into_bytes(),
            key: self.key.clone().into_bytes(),
            ocsp_staple: None,
        }
    }

    /// Server options with this certificate.
    pub fn server_options(&self) -> TlsOptions {
        let mut o = TlsOptions::default();
        o.keypairs.push(self.keypair());
        o
    }

    pub fn server(&self) -> Arc<ServerConfig> {
        sock_tls::server_config(&self.server_options()).unwrap()
    }
}

/// Client options trusting `ca`.
pub fn client_options(ca: &Ca) -> TlsOptions {
    TlsOptions {
        ca: Some(ca.pem().into_bytes()),
        ..TlsOptions::default()
    }
}

pub fn client(ca: &Ca) -> Arc<ClientConfig> {
    sock_tls::client_config(&client_options(ca)).unwrap()
}

/// Runs `f` on a thread of its own and fails if it takes longer than
/// `secs`: a test that would hang fails instead.
pub fn bounded<T: Send + 'static>(secs: f64, f: impl FnOnce() -> T + Send + 'static) -> T {
    // SOCK_TEST_TIME_SCALE: see scripts/memcheck.sh (valgrind is slower).
    let scale = std::env::var("SOCK_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| *f >= 1.0)
        .unwrap_or(1.0);
    let secs = secs * scale;
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs_f64(secs)) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        // The thread ended without a value: it panicked.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            // The hung thread's children would outlive the test otherwise.
            kill_children_of(h.thread().id());
            panic!("the test took more than {secs} s")
        }
    }
}

/// A file in a fresh temporary directory of this process.
pub fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sock-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

/// The children every test thread started, by the thread that started them,
/// so that [`bounded`] kills those of a test that hangs.
static CHILDREN: Mutex<Vec<(ThreadId, Weak<Mutex<Child>>)>> = Mutex::new(Vec::new());

fn kill_children_of(thread: ThreadId) {
    let mut all = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(t, w)| {
        if *t != thread {
            return w.strong_count() > 0;
        }
        if let Some(c) = w.upgrade() {
            let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
            let _ = c.kill();
            let _ = c.wait();
        }
        false
    });
}

/// Whether the program `cmd` runs (with `arg`, such as `--version`).
pub fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback TCP port (bound once by the system, then released) for
/// a child process to listen on.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process, killed and reaped when dropped (a failing test too):
/// its stdout and stderr are read as they come by threads of their own (a
/// full pipe never stalls it), its stdout also line by line.
pub struct Proc {
    name: String,
    child: Arc<Mutex<Child>>,
    stdin: Option<std::process::ChildStdin>,
    lines: Receiver<Vec<u8>>,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

/// What a child wrote and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Proc {
    /// Starts `cmd` with its stdin, stdout and stderr piped.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let name = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        let out = std::thread::spawn(move || {
            let mut all = Vec::new();
            loop {
                let mut line = Vec::new();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return all,
                    Ok(_) => {
                        all.extend_from_slice(&line);
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let err = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        let child = Arc::new(Mutex::new(child));
        let me = std::thread::current().id();
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((me, Arc::downgrade(&child)));
        Proc {
            name,
            child,
            stdin,
            lines,
            out: Some(out),
            err: Some(err),
        }
    }

    /// Writes `data` on the child's stdin.
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (its end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line of the child's stdout, waiting at most `secs`.
    pub fn line(&mut self, secs: f64) -> String {
        match self.lines.recv_timeout(Duration::from_secs_f64(secs)) {
            Ok(l) => String::from_utf8_lossy(&l).into_owned(),
            Err(RecvTimeoutError::Timeout) => panic!("{}: no line in {secs} s", self.name),
            Err(RecvTimeoutError::Disconnected) => {
                let o = self.kill();
                panic!("{}: ended without a line: {o:?}", self.name)
            }
        }
    }

    /// Whether the child is still running.
    pub fn running(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// Waits at most `secs` for the child to end (closing its stdin first),
    /// and what it wrote; a child still running then is killed and the test
    /// fails.
    pub fn wait(self, secs: f64) -> Output {
        self.wait_for(secs, &"")
    }

    /// [`wait`](Self::wait), with `context` in the failure's message.
    pub fn wait_for(mut self, secs: f64, context: &dyn std::fmt::Debug) -> Output {
        self.close_stdin();
        let until = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let status = self.child.lock().unwrap().try_wait().unwrap();
            if let Some(status) = status {
                return self.output(status);
            }
            if Instant::now() >= until {
                let o = self.kill();
                panic!(
                    "{} still ran after {secs} s: {o:?} ({context:?})",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the child (if it still runs) and returns what it wrote.
    pub fn kill(&mut self) -> Output {
        self.close_stdin();
        let status = {
            let mut c = self.child.lock().unwrap();
            let _ = c.kill();
            c.wait().unwrap()
        };
        self.output(status)
    }

    fn output(&mut self, status: ExitStatus) -> Output {
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            h.map(|h| String::from_utf8_lossy(&h.join().unwrap()).into_owned())
                .unwrap_or_default()
        };
        Output {
            status,
            stdout: text(self.out.take()),
            stderr: text(self.err.take()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = c.kill();
        let _ = c.wait();
    }
}
