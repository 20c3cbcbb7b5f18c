//! `loadgen`: the load generator of the benchmark harness (`bench/run.sh`).
//!
//! One OS thread, raw edge-triggered epoll through `libc`, no runtime and no
//! allocation on the hot path: it has to cost less per operation than the
//! fastest server it measures (the hand-written C epoll server), so that the
//! server, not the load generator, is what a run measures. Every run prints
//! its own CPU time beside the server's, which shows whether that holds.
//!
//! ```text
//! loadgen MODE --addr IP:PORT [options]
//!
//!   echo   W1:  --conns connections each send --size bytes and wait for
//!               their echo before sending the next message -> msg/s, latency
//!   bulk   W1b: --conns connections stream --size-byte writes and read the
//!               echo back, at most --window bytes in flight each -> bytes/s
//!   http   W2:  --conns keep-alive connections each send an HTTP/1.1 GET and
//!               wait for the whole answer (its length learnt from the first
//!               one: header + Content-Length) before sending the next
//!               -> requests/s, latency (the harness's callgrind mode; the
//!               normal mode runs W2 with wrk)
//!   conn   W3:  --conns at a time: connect, send one HTTP/1.1 request with
//!               "Connection: close", read the answer to the server's close,
//!               close -> connections/s, latency
//!   http --tls  W5: http over TLS (the handshakes in the warm-up)
//!   conn --tls  W6: conn over TLS, a full handshake per connection; W6r
//!               with --resume: sessions resumed (TLS 1.3 tickets)
//!   idle   W4:  open --conns connections, --batch at a time, send nothing,
//!               wait until the server holds them all (its descriptors in
//!               /proc), then report the growth of its resident memory
//!   probe       no network: a busy loop on CPU 0 and one on CPU 1 at once for
//!               --duration seconds; reports the loop rate of each, a measure
//!               of how much CPU the (virtual) machine gives right now
//!
//! options:
//!   --warmup S     load before the measurement starts (echo, bulk, conn)
//!   --duration S   length of the measurement
//!   --pids P,P     the server's processes: their CPU time (utime + stime in
//!                  /proc/PID/stat) is read at the start and end of the
//!                  measurement; idle mode counts their descriptors and memory
//!   --timeout S    idle mode: give up when the server stops accepting
//!   --sync         (echo, bulk, http, conn) align the measurement with an
//!                  outside observer (the harness's callgrind and strace
//!                  runs): at the end of the warm-up, and again at the end of
//!                  the measurement, stop starting operations and wait until
//!                  none is in flight (no byte unanswered, no connection
//!                  open), then print the line `sync start` (`sync end`) on
//!                  stdout and wait for a line on stdin before going on. The
//!                  operations reported are then exactly those the server
//!                  served between the two lines.
//!   --tls          (http, conn) over TLS (tls.rs): rustls, TLS 1.3 with
//!                  TLS_AES_128_GCM_SHA256 and X25519 only
//!   --ca FILE      --tls: the one certificate (PEM) trusted; the server's
//!                  chain and name are verified
//!   --servername N --tls: the name sent (SNI) and verified (localhost)
//!   --resume       --tls conn: resume sessions (off: every handshake full)
//! ```
//!
//! It prints one JSON object on stdout (also on failure, with an "error"
//! member; the exit status is then 1). All traffic goes to the address given,
//! which the harness keeps on 127.0.0.1; every run ends by itself at its
//! deadline.

use std::io;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

mod sys;
mod tls;

use sys::Epoll;

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Args {
    mode: String,
    addr: SocketAddrV4,
    conns: usize,
    size: usize,
    window: usize,
    warmup: f64,
    duration: f64,
    pids: Vec<i32>,
    batch: usize,
    timeout: f64,
    sync: bool,
    tls: bool,
    ca: Option<String>,
    servername: String,
    resume: bool,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut it = std::env::args().skip(1);
        let mode = it
            .next()
            .ok_or("usage: loadgen echo|bulk|http|conn|idle|probe --addr IP:PORT [--tls] ...")?;
        if !matches!(
            mode.as_str(),
            "echo" | "bulk" | "http" | "conn" | "idle" | "probe"
        ) {
            return Err(format!(
                "unknown mode '{mode}' (echo, bulk, http, conn, idle, probe)"
            ));
        }
        let mut a = Args {
            mode,
            addr: "127.0.0.1:0".parse().expect("a valid address"),
            conns: 64,
            size: 64,
            window: 256 * 1024,
            warmup: 0.5,
            duration: 3.0,
            pids: Vec::new(),
            batch: 250,
            timeout: 20.0,
            sync: false,
            tls: false,
            ca: None,
            servername: "localhost".into(),
            resume: false,
        };
        while let Some(k) = it.next() {
            let flag = match k.as_str() {
                "--sync" => Some(&mut a.sync),
                "--tls" => Some(&mut a.tls),
                "--resume" => Some(&mut a.resume),
                _ => None,
            };
            if let Some(f) = flag {
                *f = true;
                continue;
            }
            let v = it.next().ok_or(format!("{k}: value missing"))?;
            let num = |v: &str| {
                v.parse::<f64>()
                    .map_err(|_| format!("{k}: not a number: {v}"))
            };
            match k.as_str() {
                "--addr" => {
                    a.addr = v
                        .parse()
                        .map_err(|_| format!("--addr: not IPv4:port: {v}"))?
                }
                "--conns" => a.conns = num(&v)? as usize,
                "--size" => a.size = num(&v)? as usize,
                "--window" => a.window = num(&v)? as usize,
                "--warmup" => a.warmup = num(&v)?,
                "--duration" => a.duration = num(&v)?,
                "--batch" => a.batch = num(&v)? as usize,
                "--timeout" => a.timeout = num(&v)?,
                "--ca" => a.ca = Some(v),
                "--servername" => a.servername = v,
                "--pids" => {
                    a.pids = v
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse().map_err(|_| format!("--pids: not a pid: {s}")))
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(format!("unknown option '{k}'")),
            }
        }
        if a.conns == 0 || a.size == 0 || a.batch == 0 || a.duration <= 0.0 {
            return Err("--conns, --size, --batch and --duration must be positive".into());
        }
        if a.tls && !matches!(a.mode.as_str(), "http" | "conn") {
            return Err("--tls is for the http and conn modes".into());
        }
        if a.tls && a.ca.is_none() {
            return Err("--tls needs --ca FILE (the certificate to trust)".into());
        }
        if a.resume && !(a.tls && a.mode == "conn") {
            return Err("--resume is for conn --tls".into());
        }
        Ok(a)
    }
}

/// A JSON value of the report.
#[derive(Debug, Clone)]
enum Val {
    Num(f64),
    Str(String),
}

/// The report: members in the order they were set.
#[derive(Debug, Default)]
struct Report(Vec<(&'static str, Val)>);

impl Report {
    fn num(&mut self, k: &'static str, v: f64) {
        self.0.push((k, Val::Num(v)));
    }
    fn str(&mut self, k: &'static str, v: impl Into<String>) {
        self.0.push((k, Val::Str(v.into())));
    }
    fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("\"{k}\": "));
            match v {
                Val::Num(x) if x.is_finite() => s.push_str(&format!("{x}")),
                Val::Num(_) => s.push_str("null"),
                Val::Str(t) => {
                    s.push('"');
                    for c in t.chars() {
                        match c {
                            '"' => s.push_str("\\\""),
                            '\\' => s.push_str("\\\\"),
                            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                            c => s.push(c),
                        }
                    }
                    s.push('"');
                }
            }
        }
        s.push('}');
        s
    }
}

/// A failed run: the message, and what was measured before it failed.
#[derive(Debug)]
struct Failure(String);

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure(e.to_string())
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure(e)
    }
}

type Res<T> = Result<T, Failure>;

/// The wait of the timed loops: 0 = busy polling.
const SPIN_MS: i32 = 10;

fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    sys::raise_fd_limit();
    let mut report = Report::default();
    report.str("mode", args.mode.clone());
    let r = match args.mode.as_str() {
        "http" if args.tls => tls::run_https(&args, &mut report),
        "conn" if args.tls => tls::run_conn(&args, &mut report),
        "echo" | "http" => run_echo(&args, &mut report),
        "bulk" => run_bulk(&args, &mut report),
        "conn" => run_conn(&args, &mut report),
        "idle" => run_idle(&args, &mut report),
        _ => run_probe(&args, &mut report),
    };
    let code = match r {
        Ok(()) => 0,
        Err(Failure(e)) => {
            report.str("error", e);
            1
        }
    };
    println!("{}", report.to_json());
    std::process::exit(code);
}

// Measurement --------------------------------------------------------------

/// CPU seconds (user, user + system) of the server's processes, from /proc.
fn server_cpu(pids: &[i32]) -> Res<(f64, f64)> {
    let (mut user, mut sys) = (0u64, 0u64);
    for &p in pids {
        let (u, s) =
            sys::proc_cpu_ticks(p).map_err(|e| format!("server process {p} is gone ({e})"))?;
        user += u;
        sys += s;
    }
    let hz = sys::clock_ticks() as f64;
    Ok((user as f64 / hz, (user + sys) as f64 / hz))
}

/// The start (or end) of a measurement window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    /// The server's CPU seconds: user, user + system.
    server: (f64, f64),
    /// The load generator's own: user, user + system.
    own: (f64, f64),
}

impl Mark {
    fn now(pids: &[i32]) -> Res<Mark> {
        Ok(Mark {
            at: Instant::now(),
            server: server_cpu(pids)?,
            own: sys::self_cpu(),
        })
    }

    /// The CPU times from `a` to this mark.
    fn report_cpu(&self, a: &Mark, r: &mut Report) {
        r.num("server_cpu_s", self.server.1 - a.server.1);
        r.num("server_user_s", self.server.0 - a.server.0);
        r.num("loadgen_cpu_s", self.own.1 - a.own.1);
        r.num("loadgen_user_s", self.own.0 - a.own.0);
    }
}

/// Writes what every timed run reports: operations, rates, CPU, latency.
fn report_window(r: &mut Report, a: &Mark, b: &Mark, ops: u64, bytes: u64, lat: &mut [u32]) {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    r.num("secs", secs);
    r.num("ops", ops as f64);
    r.num("rate", ops as f64 / secs);
    r.num("bytes", bytes as f64);
    r.num("bytes_per_s", bytes as f64 / secs);
    b.report_cpu(a, r);
    if !lat.is_empty() {
        lat.sort_unstable();
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        r.num("p50_us", q(0.50));
        r.num("p99_us", q(0.99));
        r.num("p999_us", q(0.999));
        r.num("max_us", q(1.0));
    }
}

/// The phases of a timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Operations go on; none is counted.
    Warmup,
    /// `--sync`: no new operation until none is in flight, then `sync start`.
    DrainToStart,
    /// Operations go on and are counted.
    Measure,
    /// `--sync`: no new operation; those in flight are still counted; when
    /// none is left, the end of the measurement and `sync end`.
    DrainToEnd,
    Done,
}

/// The phases of a timed run, and its marks.
#[derive(Debug)]
struct Clock {
    warm_end: Instant,
    duration: Duration,
    end: Instant,
    sync: bool,
    phase: Phase,
    drain_deadline: Instant,
    start: Option<Mark>,
    stop: Option<Mark>,
}

/// How long draining may take before the run fails.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

impl Clock {
    fn new(a: &Args) -> Clock {
        let now = Instant::now();
        let warm_end = now + Duration::from_secs_f64(a.warmup.max(0.0));
        let duration = Duration::from_secs_f64(a.duration);
        Clock {
            warm_end,
            duration,
            end: warm_end + duration,
            sync: a.sync,
            phase: Phase::Warmup,
            drain_deadline: now,
            start: None,
            stop: None,
        }
    }

    /// Called after every wait, with the operations in flight (any count,
    /// only zero matters). Returns true when the measurement starts: the
    /// caller then resets its counters and, with `--sync`, starts an
    /// operation on every connection (none is in flight then).
    fn tick(&mut self, now: Instant, in_flight: u64, pids: &[i32]) -> Res<bool> {
        match self.phase {
            Phase::Warmup if now >= self.warm_end => {
                if self.sync {
                    self.phase = Phase::DrainToStart;
                    self.drain_deadline = now + DRAIN_LIMIT;
                    return self.tick(now, in_flight, pids);
                }
                self.begin(pids)?;
                Ok(true)
            }
            Phase::DrainToStart if in_flight == 0 => {
                sync_point("start")?;
                self.begin(pids)?;
                Ok(true)
            }
            Phase::Measure if now >= self.end => {
                if self.sync {
                    self.phase = Phase::DrainToEnd;
                    self.drain_deadline = now + DRAIN_LIMIT;
                    return self.tick(now, in_flight, pids);
                }
                self.stop = Some(Mark::now(pids)?);
                self.phase = Phase::Done;
                Ok(false)
            }
            Phase::DrainToEnd if in_flight == 0 => {
                self.stop = Some(Mark::now(pids)?);
                self.phase = Phase::Done;
                sync_point("end")?;
                Ok(false)
            }
            Phase::DrainToStart | Phase::DrainToEnd if now >= self.drain_deadline => {
                Err(Failure(format!(
                    "--sync: operations still in flight after {} s of draining",
                    DRAIN_LIMIT.as_secs()
                )))
            }
            _ => Ok(false),
        }
    }

    fn begin(&mut self, pids: &[i32]) -> Res<()> {
        let m = Mark::now(pids)?;
        self.end = m.at + self.duration;
        self.start = Some(m);
        self.phase = Phase::Measure;
        Ok(())
    }

    /// Whether new operations may start.
    fn issuing(&self) -> bool {
        matches!(self.phase, Phase::Warmup | Phase::Measure)
    }
    /// Whether completed operations count.
    fn measuring(&self) -> bool {
        matches!(self.phase, Phase::Measure | Phase::DrainToEnd)
    }
    fn done(&self) -> bool {
        self.phase == Phase::Done
    }
    /// The start and end marks of a finished run.
    fn window(&self) -> (Mark, Mark) {
        (self.start.expect("measured"), self.stop.expect("ended"))
    }
}

/// `--sync`: tells the observer (a line on stdout) and waits for its answer
/// (a line on stdin).
fn sync_point(what: &str) -> Res<()> {
    use std::io::{BufRead, Write};
    let mut out = io::stdout().lock();
    writeln!(out, "sync {what}")?;
    out.flush()?;
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line)? == 0 {
        return Err(Failure("--sync: standard input closed".into()));
    }
    Ok(())
}

// Connections --------------------------------------------------------------

/// Opens `n` connections and waits until every one is established.
fn connect_all(ep: &Epoll, addr: &SocketAddrV4, n: usize, deadline: Instant) -> Res<Vec<i32>> {
    let mut fds = Vec::with_capacity(n);
    for i in 0..n {
        let fd = sys::tcp_connect(addr)?;
        ep.add(fd, sys::EV_ALL, i as u64)?;
        fds.push(fd);
    }
    let mut up = vec![false; n];
    let mut left = n;
    let mut evs = sys::events(256);
    while left > 0 {
        if Instant::now() >= deadline {
            return Err(Failure(format!(
                "{left} of {n} connections not established in time"
            )));
        }
        for e in ep.wait(&mut evs, 10)? {
            let i = e.u64 as usize;
            if up[i] || e.events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                continue;
            }
            sys::so_error(fds[i]).map_err(|e| format!("connect: {e}"))?;
            up[i] = true;
            left -= 1;
        }
    }
    Ok(fds)
}

/// Whether an event says the peer closed or failed: then a read must go on
/// to EAGAIN or end of stream. Otherwise a short read means the socket is
/// drained (edge-triggered: data that arrives later brings a new event).
fn hangup(events: u32) -> bool {
    events & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
}

/// The length of the server's answer to `req` on `fd` (a complete HTTP/1.1
/// 200 answer: its header and Content-Length bytes of body), asked and read
/// once before a keep-alive run.
fn answer_len(ep: &Epoll, fd: i32, req: &[u8], deadline: Instant) -> Res<usize> {
    if sys::send(fd, req)? != Some(req.len()) {
        return Err(Failure("short send of the first request".into()));
    }
    let mut got: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut evs = sys::events(256);
    loop {
        loop {
            match sys::recv(fd, &mut buf)? {
                Some(0) => return Err(Failure("the server closed a keep-alive connection".into())),
                Some(k) => got.extend_from_slice(&buf[..k]),
                None => break,
            }
        }
        if let Some(total) = answer_complete(&got)? {
            return Ok(total);
        }
        if Instant::now() >= deadline {
            return Err(Failure("no complete answer to the first request".into()));
        }
        ep.wait(&mut evs, 10)?;
    }
}

/// The length of the one HTTP/1.1 200 answer in `got` (its header and
/// Content-Length bytes of body) once it is all there; an error if it is not
/// a 200 answer, or if more than one answer came.
fn answer_complete(got: &[u8]) -> Res<Option<usize>> {
    let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(Failure("not an HTTP/1.1 200 answer".into()));
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("the answer has no Content-Length".to_string())?;
    let total = h + 4 + len;
    if got.len() > total {
        return Err(Failure("more than one answer to one request".into()));
    }
    Ok((got.len() == total).then_some(total))
}

/// W1 (echo mode): ping-pong; W2 (http mode): keep-alive requests, one in
/// flight per connection.
fn run_echo(a: &Args, r: &mut Report) -> Res<()> {
    let http = a.mode == "http";
    r.num("conns", a.conns as f64);
    let ep = Epoll::new()?;
    let fds = connect_all(
        &ep,
        &a.addr,
        a.conns,
        Instant::now() + Duration::from_secs(10),
    )?;
    // What each connection sends, and the length of the answer it waits for.
    let (msg, reply) = if http {
        let req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", a.addr).into_bytes();
        let reply = answer_len(&ep, fds[0], &req, Instant::now() + Duration::from_secs(30))?;
        (req, reply)
    } else {
        (vec![0x5au8; a.size], a.size)
    };
    r.num("size", msg.len() as f64);
    r.num("reply", reply as f64);
    let mut buf = vec![0u8; 64 * 1024];
    // Per connection: bytes of the answer received, bytes of the message
    // still to send, when the message went out, whether one is in flight.
    let mut got = vec![0usize; a.conns];
    let mut unsent = vec![0usize; a.conns];
    let mut sent_at = vec![Instant::now(); a.conns];
    let mut busy = vec![false; a.conns];
    let mut in_flight = 0u64;
    let mut lat: Vec<u32> = Vec::with_capacity(4 << 20);
    let mut ops = 0u64;
    let mut clock = Clock::new(a);
    let mut evs = sys::events(1024);
    let send = |i: usize, unsent: &mut [usize]| -> Res<()> {
        while unsent[i] > 0 {
            match sys::send(fds[i], &msg[msg.len() - unsent[i]..])? {
                Some(n) => unsent[i] -= n,
                None => break, // EPOLLOUT will come
            }
        }
        Ok(())
    };
    // Starts a message (request) on every connection that has none.
    let start_all = |now: Instant,
                     unsent: &mut [usize],
                     sent_at: &mut [Instant],
                     busy: &mut [bool],
                     in_flight: &mut u64|
     -> Res<()> {
        for i in 0..a.conns {
            if !busy[i] {
                busy[i] = true;
                *in_flight += 1;
                unsent[i] = msg.len();
                sent_at[i] = now;
                send(i, unsent)?;
            }
        }
        Ok(())
    };
    start_all(
        Instant::now(),
        &mut unsent,
        &mut sent_at,
        &mut busy,
        &mut in_flight,
    )?;
    while !clock.done() {
        let n = ep.wait(&mut evs, SPIN_MS)?.len();
        let mut now = Instant::now();
        if clock.tick(now, in_flight, &a.pids)? {
            now = Instant::now(); // (--sync: after the wait for the observer)
            ops = 0;
            lat.clear();
            start_all(now, &mut unsent, &mut sent_at, &mut busy, &mut in_flight)?;
        }
        for e in &evs[..n] {
            let i = e.u64 as usize;
            if unsent[i] > 0 {
                send(i, &mut unsent)?;
            }
            loop {
                match sys::recv(fds[i], &mut buf)? {
                    Some(0) => return Err(Failure("the server closed a connection".into())),
                    Some(k) => {
                        got[i] += k;
                        if k < buf.len() && !hangup(e.events) {
                            break;
                        }
                    }
                    None => break,
                }
            }
            if busy[i] && got[i] >= reply && unsent[i] == 0 {
                got[i] -= reply;
                if clock.measuring() {
                    ops += 1;
                    lat.push(
                        now.duration_since(sent_at[i])
                            .as_nanos()
                            .min(u32::MAX as u128) as u32,
                    );
                }
                if clock.issuing() {
                    unsent[i] = msg.len();
                    sent_at[i] = now;
                    send(i, &mut unsent)?;
                } else {
                    busy[i] = false;
                    in_flight -= 1;
                }
            }
        }
    }
    let (start, stop) = clock.window();
    report_window(r, &start, &stop, ops, ops * reply as u64, &mut lat);
    for fd in fds {
        sys::close(fd);
    }
    Ok(())
}

/// W1b: streaming echo.
fn run_bulk(a: &Args, r: &mut Report) -> Res<()> {
    r.num("conns", a.conns as f64);
    r.num("size", a.size as f64);
    r.num("window", a.window as f64);
    let window = a.window.max(a.size);
    let ep = Epoll::new()?;
    let fds = connect_all(
        &ep,
        &a.addr,
        a.conns,
        Instant::now() + Duration::from_secs(10),
    )?;
    let chunk = vec![0xa5u8; a.size];
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = vec![0u64; a.conns];
    let mut recvd = vec![0u64; a.conns];
    let mut bytes = 0u64;
    let mut clock = Clock::new(a);
    let mut evs = sys::events(256);
    // Sends while the window allows; a write is a whole chunk unless the
    // socket is full (then the rest of it first, on EPOLLOUT).
    let fill = |i: usize, sent: &mut [u64], recvd: &[u64]| -> Res<()> {
        while sent[i] - recvd[i] + (a.size as u64) <= window as u64
            || !sent[i].is_multiple_of(a.size as u64)
        {
            let off = (sent[i] % a.size as u64) as usize;
            match sys::send(fds[i], &chunk[off..])? {
                Some(n) => sent[i] += n as u64,
                None => break,
            }
        }
        Ok(())
    };
    for i in 0..a.conns {
        fill(i, &mut sent, &recvd)?;
    }
    // Bytes sent and not yet echoed, over all connections.
    let unanswered = |sent: &[u64], recvd: &[u64]| -> u64 {
        sent.iter().sum::<u64>() - recvd.iter().sum::<u64>()
    };
    while !clock.done() {
        let n = ep.wait(&mut evs, SPIN_MS)?.len();
        let now = Instant::now();
        // (The sums only while draining: they are not free.)
        let in_flight = if clock.issuing() {
            1
        } else {
            unanswered(&sent, &recvd)
        };
        if clock.tick(now, in_flight, &a.pids)? {
            bytes = 0;
            if a.sync {
                for i in 0..a.conns {
                    fill(i, &mut sent, &recvd)?;
                }
            }
        }
        for e in &evs[..n] {
            let i = e.u64 as usize;
            loop {
                match sys::recv(fds[i], &mut buf)? {
                    Some(0) => return Err(Failure("the server closed a connection".into())),
                    Some(k) => {
                        recvd[i] += k as u64;
                        if clock.measuring() {
                            bytes += k as u64;
                        }
                        if k < buf.len() && !hangup(e.events) {
                            break;
                        }
                    }
                    None => break,
                }
            }
            if clock.issuing() {
                fill(i, &mut sent, &recvd)?;
            }
        }
    }
    let (start, stop) = clock.window();
    let ops = bytes / a.size as u64;
    report_window(r, &start, &stop, ops, bytes, &mut []);
    for fd in fds {
        sys::close(fd);
    }
    Ok(())
}

/// One W3 connection slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    fd: i32,
    gen: u32,
    sent: bool,
    got: usize,
    t0: Instant,
}

/// W3: a new connection per request.
fn run_conn(a: &Args, r: &mut Report) -> Res<()> {
    r.num("conns", a.conns as f64);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.addr
    );
    let req = req.as_bytes();
    let ep = Epoll::new()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut slots = vec![
        Slot {
            fd: -1,
            gen: 0,
            sent: false,
            got: 0,
            t0: Instant::now()
        };
        a.conns
    ];
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let (mut ops, mut errors, mut failed_in_a_row) = (0u64, 0u64, 0u64);
    let open = |i: usize, s: &mut Slot| -> Res<()> {
        s.gen = s.gen.wrapping_add(1);
        s.sent = false;
        s.got = 0;
        s.t0 = Instant::now();
        s.fd = sys::tcp_connect(&a.addr)?;
        ep.add(s.fd, sys::EV_ALL, ((s.gen as u64) << 32) | i as u64)?;
        Ok(())
    };
    for (i, s) in slots.iter_mut().enumerate() {
        open(i, s)?;
    }
    let mut open_conns = a.conns as u64;
    let mut clock = Clock::new(a);
    let mut evs = sys::events(1024);
    while !clock.done() {
        let n = ep.wait(&mut evs, SPIN_MS)?.len();
        let mut now = Instant::now();
        if clock.tick(now, open_conns, &a.pids)? {
            now = Instant::now(); // (--sync: after the wait for the observer)
            ops = 0;
            errors = 0;
            lat.clear();
            for (i, s) in slots.iter_mut().enumerate() {
                if s.fd < 0 {
                    open(i, s)?;
                    open_conns += 1;
                }
            }
        }
        for e in &evs[..n] {
            let i = (e.u64 & 0xffff_ffff) as usize;
            let s = &mut slots[i];
            if s.fd < 0 || (e.u64 >> 32) as u32 != s.gen {
                continue; // an event of a connection already closed
            }
            // Ok(true): the answer is complete; Ok(false): more to come.
            let step = |s: &mut Slot, buf: &mut [u8]| -> io::Result<bool> {
                if !s.sent {
                    if e.events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                        return Ok(false);
                    }
                    sys::so_error(s.fd)?;
                    if sys::send(s.fd, req)? != Some(req.len()) {
                        return Err(io::Error::other("short send of the request"));
                    }
                    s.sent = true;
                }
                loop {
                    match sys::recv(s.fd, buf)? {
                        Some(0) => {
                            return if s.got > 0 {
                                Ok(true)
                            } else {
                                Err(io::Error::other("closed without an answer"))
                            }
                        }
                        Some(k) => {
                            if s.got == 0 && !buf[..k].starts_with(b"HTTP/1.1 200") {
                                return Err(io::Error::other("not an HTTP 200 answer"));
                            }
                            s.got += k;
                        }
                        None => return Ok(false),
                    }
                }
            };
            match step(s, &mut buf) {
                Ok(false) => continue,
                Ok(true) => {
                    failed_in_a_row = 0;
                    if clock.measuring() {
                        ops += 1;
                        lat.push(now.duration_since(s.t0).as_nanos().min(u32::MAX as u128) as u32);
                    }
                }
                Err(err) => {
                    if err.raw_os_error() == Some(libc::ECONNREFUSED) {
                        return Err(Failure("connection refused: the server is gone".into()));
                    }
                    errors += 1;
                    failed_in_a_row += 1;
                    if failed_in_a_row > 1000 {
                        return Err(Failure(format!("1000 connections in a row failed: {err}")));
                    }
                }
            }
            sys::close(s.fd);
            s.fd = -1;
            if clock.issuing() {
                open(i, s)?;
            } else {
                open_conns -= 1;
            }
        }
    }
    r.num("errors", errors as f64);
    let (start, stop) = clock.window();
    report_window(r, &start, &stop, ops, 0, &mut lat);
    for s in slots {
        if s.fd >= 0 {
            sys::close(s.fd);
        }
    }
    Ok(())
}

/// The descriptors the server's processes hold.
fn server_fds(pids: &[i32]) -> Res<usize> {
    let mut n = 0;
    for &p in pids {
        n += sys::proc_fd_count(p).map_err(|e| format!("server process {p} is gone ({e})"))?;
    }
    Ok(n)
}

/// The resident memory of the server's processes, in bytes.
fn server_rss(pids: &[i32]) -> Res<u64> {
    let mut n = 0;
    for &p in pids {
        n += sys::proc_rss(p).map_err(|e| format!("server process {p} is gone ({e})"))?;
    }
    Ok(n)
}

/// Waits until the resident memory stops changing (three equal readings 100
/// ms apart, at most `limit`) and returns it.
fn settled_rss(pids: &[i32], limit: Duration) -> Res<u64> {
    let until = Instant::now() + limit;
    let mut last = server_rss(pids)?;
    let mut same = 0;
    while same < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        let now = server_rss(pids)?;
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// W4: memory per idle connection.
fn run_idle(a: &Args, r: &mut Report) -> Res<()> {
    if a.pids.is_empty() {
        return Err(Failure("idle mode needs --pids".into()));
    }
    r.num("conns", a.conns as f64);
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let rss0 = settled_rss(&a.pids, Duration::from_secs(1))?;
    let fds0 = server_fds(&a.pids)?;
    let cpu0 = Mark::now(&a.pids)?;
    let ep = Epoll::new()?;
    let mut fds: Vec<i32> = Vec::with_capacity(a.conns);
    let mut evs = sys::events(1024);
    let mut failure = None;
    'batches: while fds.len() < a.conns {
        // Connect a batch (never more than the server's listen backlog can
        // hold while it catches up), wait until every one is established...
        let first = fds.len();
        let k = a.batch.min(a.conns - first);
        for i in first..first + k {
            let fd = sys::tcp_connect(&a.addr)?;
            ep.add(fd, sys::EV_ALL, i as u64)?;
            fds.push(fd);
        }
        let mut left = k;
        while left > 0 {
            if Instant::now() >= deadline {
                failure = Some(format!("connections not established after {} s", a.timeout));
                break 'batches;
            }
            for e in ep.wait(&mut evs, 10)? {
                let i = e.u64 as usize;
                if i >= first && e.events & (libc::EPOLLOUT | libc::EPOLLERR) as u32 != 0 {
                    if let Err(err) = sys::so_error(fds[i]) {
                        failure = Some(format!("connect: {err}"));
                        break 'batches;
                    }
                    // Never again for this one: it is established.
                    ep.modify(fds[i], libc::EPOLLRDHUP as u32, i as u64)?;
                    left -= 1;
                }
            }
        }
        // ... and until the server has accepted them (its descriptors).
        let want = fds0 + fds.len();
        let batch_deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match server_fds(&a.pids) {
                Ok(n) if n >= want => break,
                Ok(n) if Instant::now() >= batch_deadline || Instant::now() >= deadline => {
                    failure = Some(format!(
                        "the server stopped accepting: it holds {} of {} connections",
                        n.saturating_sub(fds0),
                        fds.len()
                    ));
                    break 'batches;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(2)),
                Err(Failure(e)) => {
                    failure = Some(format!("after {} connections: {e}", first));
                    break 'batches;
                }
            }
        }
    }
    let held = server_fds(&a.pids)
        .map(|n| n.saturating_sub(fds0))
        .unwrap_or(0);
    r.num("connected", fds.len() as f64);
    r.num("held", held as f64);
    if let Some(f) = failure {
        for fd in fds {
            sys::close(fd);
        }
        return Err(Failure(f));
    }
    // Parked: every connection accepted, nothing sent. Let the server settle.
    let rss1 = settled_rss(&a.pids, Duration::from_secs(3))?;
    let cpu1 = Mark::now(&a.pids)?;
    r.num("rss_before", rss0 as f64);
    r.num("rss_after", rss1 as f64);
    r.num(
        "bytes_per_conn",
        (rss1 as f64 - rss0 as f64) / held.max(1) as f64,
    );
    r.num("ops", held as f64);
    cpu1.report_cpu(&cpu0, r);
    r.num("secs", cpu1.at.duration_since(cpu0.at).as_secs_f64());
    for fd in fds {
        sys::close(fd);
    }
    Ok(())
}

/// Counts iterations of a fixed loop for `secs` seconds of wall time.
fn spin(secs: f64) -> f64 {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let (mut n, mut x) = (0u64, 1u64);
    while Instant::now() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        n += 1000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The machine's speed now: a busy loop on each of CPUs 0 and 1 at once.
fn run_probe(a: &Args, r: &mut Report) -> Res<()> {
    let secs = a.duration;
    let other = std::thread::spawn(move || {
        sys::pin_to_cpu(0);
        spin(secs)
    });
    sys::pin_to_cpu(1);
    let cpu1 = spin(secs);
    let cpu0 = other
        .join()
        .map_err(|_| Failure("the probe thread panicked".into()))?;
    r.num("cpu0_loops_per_s", cpu0);
    r.num("cpu1_loops_per_s", cpu1);
    Ok(())
}
