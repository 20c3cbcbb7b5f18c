#!/usr/bin/env python3
"""The benchmark driver: runs every server under every workload in interleaved
rounds and writes BENCHMARKS.md (and, through chart.py, the PNG chart).

bench/run.sh installs and builds everything, then calls this script; it needs
only the Python standard library. See bench/README.md for what is measured.

  python3 bench/bench.py [--quick] [--rounds N] [--duration S]
                         [--servers a,b] [--workloads W1,W2] [--out DIR]
  python3 bench/bench.py --report-only RESULTS.json --out DIR
  python3 bench/bench.py --callgrind [--servers a,b] [--workloads W1,W2] [--out DIR]

--callgrind is the instruction-count mode (callgrind.py): user-space
instructions per operation under callgrind and system calls per operation
under strace, instead of CPU time; it writes CALLGRIND.md to
bench/out/callgrind/ (or --out).

A server that cannot start, or a run that fails, is recorded and reported as
missing; the exit status is 0 unless the harness itself is broken (no load
generator, no results at all).
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER_CPU, LOADGEN_CPU = "0", "1"


# Servers ---------------------------------------------------------------------

class Server:
    """A server of the comparison: how to start it and what it serves."""

    def __init__(self, key, label, group, cmd, buf=0, echo=True, idle=True, env=None, check=None,
                 note="", workers=1, base=None, section="main", listeners=None, tls=None,
                 tls_check=None, only=None):
        self.key = key          # short name, used in files and options
        self.label = label      # name in the table and the chart
        self.group = group      # colour in the chart: c, sock, tokio, lua, nginx
        self.cmd = cmd          # function (echo_port, http_port, out) -> argv
        self.buf = buf          # the program's own buffer per connection, bytes
        self.echo = echo        # serves echo (W1, W1b); all serve HTTP
        self.idle = idle        # runs W4 (idle connections, on its HTTP port if not echo)
        self.env = env or {}
        self.check = check      # function () -> None or the reason it is missing
        self.note = note
        self.workers = workers  # worker threads with a loop each: > 1 runs on 2 CPUs
        # the listening sockets on its HTTP port once it is ready (so_reuseport: one a worker)
        self.listeners = listeners or workers
        self.base = base        # multicore: the key of the same program with 1 worker
        self.section = section  # "main": in the main tables; "multicore": in Multi-core only
        # The TLS workloads (W5, W6, W6r): function (echo_port, http_port,
        # tls_port, out) -> argv of the server with its TLS port too; None:
        # no TLS. tls_check: as check, for the TLS part only.
        self.tls = tls
        self.tls_check = tls_check
        # The workloads it runs, if not all it can (a W4-only variant).
        self.only = only

    def serves(self, wl):
        """Whether the server runs the workload (key): the HTTP-only ones
        skip W1 and W1b, the multicore ones W4 as well; the TLS workloads
        are for the servers with a TLS port."""
        if self.only is not None and wl not in self.only:
            return False
        if wl in TLS_WORKLOADS:
            return self.tls is not None
        if wl in ("W1", "W1b"):
            return self.echo
        if wl == "W4":
            return self.idle
        return True

    @property
    def multicore(self):
        return self.section == "multicore"


def exists(path, what):
    return None if os.path.exists(path) else f"{what} not built ({os.path.relpath(path, ROOT)} missing)"


def lua_check(module, package, code=None):
    def check():
        if not shutil.which("luajit"):
            return "luajit not installed"
        env = dict(os.environ, **LUA_ENV)
        r = subprocess.run(["luajit", "-e", code or f"require'{module}'"], env=env,
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["?"])[0]
            return f"LuaJIT cannot load '{module}' ({package}): {last}"
        return None
    return check


TARGET = os.path.join(HERE, "target", "release")
LUA = os.path.join(HERE, "servers", "lua")
LUA_ENV = {"LUA_CPATH": os.path.join(ROOT, "target", "lua", "?.so") + ";;"}
NGINX_ROOT = os.path.join(HERE, "out", "nginx-lua", "root")
# The multicore examples of the repository (built by run.sh in the root workspace).
MULTICORE_RS = os.path.join(ROOT, "target", "release", "examples", "multicore")
MULTICORE_LUA = os.path.join(ROOT, "examples", "lua", "multicore.lua")


def multicore_rust(workers, shared=False, one_listener=False):
    """The Rust multicore example: `multicore WORKERS PORT 0 [--shared]
    [--one-listener]` (0: until killed); HTTP only."""
    return lambda e, h, o: ([MULTICORE_RS, str(workers), str(h), "0"]
                            + (["--shared"] if shared else [])
                            + (["--one-listener"] if one_listener else []))


def multicore_lua(workers):
    return lambda e, h, o: ["luajit", MULTICORE_LUA, str(workers), str(h), "0"]


def multicore_lua_check():
    if not os.path.exists(MULTICORE_LUA):
        return f"{os.path.relpath(MULTICORE_LUA, ROOT)} missing"
    return lua_check("sock", "target/lua/sock.so, scripts/build-lua.sh",
                     "assert(require'sock'.osthread, 'the module has no sock.osthread')")()


def multicore_note(n):
    who = "1 worker OS thread with" if n == 1 else f"{n} worker OS threads, each with"
    return (f"HTTP only; {who} its own loop and its own so_reuseport listener on the port, a "
            "sock thread per connection, a 4 KiB buffer in it")


def nginx_cmd(e, h, out):
    d = os.path.join(out, "nginx")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    with open(os.path.join(HERE, "servers", "nginx", "nginx.conf.in")) as f:
        conf = f.read()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else nofile
    for k, v in {"@MODULES@": os.path.join(NGINX_ROOT, "usr", "lib", "nginx", "modules"),
                 "@LUA_PATH@": os.path.join(NGINX_ROOT, "usr", "share", "lua", "5.1"),
                 "@PREFIX@": d, "@HTTP_PORT@": str(h), "@NOFILE@": str(nofile),
                 "@CONNECTIONS@": str(max(1024, nofile - 100))}.items():
        conf = conf.replace(k, v)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")]


# The TLS certificate of W5 and W6 (bench/run.sh makes it with openssl, at
# every run): self-signed, ECDSA P-256, for localhost and 127.0.0.1.
TLS_DIR = os.path.join(HERE, "out", "tls")
CERT, KEY = os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem")
TLS_WORKLOADS = ("W5", "W6", "W6r")


def cert_check():
    if not (os.path.exists(CERT) and os.path.exists(KEY)):
        return (f"no TLS certificate ({os.path.relpath(CERT, ROOT)} and key.pem: bench/run.sh "
                "makes them with openssl)")
    return None


def nginx_tls_cmd(e, h, t, out):
    """Plain nginx (no module): HTTP on h, and with t the same over TLS."""
    d = os.path.join(out, "nginx-tls")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    with open(os.path.join(HERE, "servers", "nginx", "nginx-tls.conf.in")) as f:
        conf = f.read()
    if t is None:  # the TLS server block is only for the TLS runs
        conf = re.sub(r"\n *# tls \{\n.*?# tls \}\n", "\n", conf, flags=re.S)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else nofile
    for k, v in {"@PREFIX@": d, "@HTTP_PORT@": str(h), "@TLS_PORT@": str(t), "@CERT@": CERT,
                 "@KEY@": KEY, "@NOFILE@": str(nofile),
                 "@CONNECTIONS@": str(max(1024, nofile - 100))}.items():
        conf = conf.replace(k, v)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")]


def nginx_check():
    if not shutil.which("nginx"):
        return "nginx not installed"
    if not os.path.exists(os.path.join(NGINX_ROOT, "usr", "lib", "nginx", "modules",
                                       "ngx_http_lua_module.so")):
        return "the lua module (libnginx-mod-http-lua) was not unpacked"
    return None


SERVERS = [
    Server("c", "C epoll", "c", lambda e, h, o: [os.path.join(HERE, "out", "bin", "epoll_server"), str(e), str(h)],
           check=lambda: exists(os.path.join(HERE, "out", "bin", "epoll_server"), "the C server"),
           note="hand-written, edge-triggered epoll, one static read buffer"),
    Server("sock-rust", "sock (Rust)", "sock",
           lambda e, h, o: [os.path.join(TARGET, "sock-server"), str(e), str(h)], buf=16384,
           check=lambda: exists(os.path.join(TARGET, "sock-server"), "sock-server"),
           tls=lambda e, h, t, o: [os.path.join(TARGET, "sock-server"), str(e), str(h), str(t),
                                   CERT, KEY],
           note="a sock thread per connection, 16 KiB buffer in it; TLS: sock-tls's TlsListener "
                "and TlsStream, the same handler"),
    Server("sock-rust-lines", "sock (Rust) line reader", "sock",
           lambda e, h, o: [os.path.join(TARGET, "sock-server"), str(e), str(h)],
           env={"SOCK_BENCH_LINES": "1"}, only=("W4",),
           check=lambda: exists(os.path.join(TARGET, "sock-server"), "sock-server"),
           note="W4 only: the same server with its echo written on the buffered reader "
                "(Tcp::read_line, then sendall of the line): no buffer of its own, a pooled "
                "one only while bytes wait"),
    # The multicore examples: HTTP only (W2, W3), like nginx+lua; see "Multi-core"
    # in BENCHMARKS.md.
    Server("sock-rust-mc1", "sock (Rust) multicore ×1", "sock", multicore_rust(1), buf=4096,
           echo=False, idle=False, base="sock-rust-mc1", section="multicore",
           check=lambda: exists(MULTICORE_RS, "the multicore example (examples/multicore.rs)"),
           note="examples/multicore.rs, " + multicore_note(1)),
    Server("sock-rust-mc2", "sock (Rust) multicore ×2", "sock", multicore_rust(2), buf=4096,
           echo=False, idle=False, workers=2, base="sock-rust-mc1", section="multicore",
           check=lambda: exists(MULTICORE_RS, "the multicore example (examples/multicore.rs)"),
           note="examples/multicore.rs, " + multicore_note(2)),
    Server("sock-rust-mc2s", "sock (Rust) multicore ×2 shared poller", "sock",
           multicore_rust(2, shared=True), buf=4096, echo=False, idle=False, workers=2,
           base="sock-rust-mc1", section="multicore",
           check=lambda: exists(MULTICORE_RS, "the multicore example (examples/multicore.rs)"),
           note="examples/multicore.rs --shared, " + multicore_note(2)
           + "; the workers' loops share one epoll instance (sock::SharedPoller), an event "
             "is handed to the worker that owns the socket"),
    Server("sock-rust-mc2x", "sock (Rust) multicore ×2 one listener", "sock",
           multicore_rust(2, one_listener=True), buf=4096, echo=False, idle=False, workers=2,
           listeners=1,
           base="sock-rust-mc1", section="multicore",
           check=lambda: exists(MULTICORE_RS, "the multicore example (examples/multicore.rs)"),
           note="examples/multicore.rs --one-listener, HTTP only; 2 worker OS threads, each "
                "with its own loop, accepting from one listener (each loop adopts a clone: "
                "Tcp::from_listener, registered with EPOLLEXCLUSIVE), a sock thread per "
                "connection, a 4 KiB buffer in it"),
    Server("sock-lua", "sock (LuaJIT)", "sock",
           lambda e, h, o: ["luajit", os.path.join(LUA, "sock_server.lua"), str(e), str(h)], buf=16384,
           env=LUA_ENV, check=lua_check("sock", "target/lua/sock.so, scripts/build-lua.sh"),
           tls=lambda e, h, t, o: ["luajit", os.path.join(LUA, "sock_server.lua"), str(e), str(h),
                                   str(t), CERT, KEY],
           tls_check=lua_check("sock_tls", "target/lua/sock_tls.so, scripts/build-lua.sh"),
           note="the LuaJIT module: a sock thread per connection, a 16 KiB cdata buffer"
                " (from a free list, given back when the connection ends); TLS: "
                "require'sock_tls', server_stcp over the listener, the same handler"),
    Server("sock-lua-lines", "sock (LuaJIT) line reader", "sock",
           lambda e, h, o: ["luajit", os.path.join(LUA, "sock_server.lua"), str(e), str(h)],
           env=dict(LUA_ENV, SOCK_BENCH_LINES="1"), only=("W4",),
           check=lua_check("sock", "target/lua/sock.so, scripts/build-lua.sh"),
           note="W4 only: the same server with its echo written on the buffered reader "
                "(c:readline(), then sendall of the line): no buffer of its own"),
    Server("sock-lua-mc1", "sock (LuaJIT) multicore ×1", "sock", multicore_lua(1), buf=4096,
           echo=False, idle=False, base="sock-lua-mc1", env=LUA_ENV, section="multicore",
           check=multicore_lua_check,
           note="examples/lua/multicore.lua, " + multicore_note(1)
           + " (cdata, reused); the worker is a sock.osthread, its loop shares the main state's poller"),
    Server("sock-lua-mc2", "sock (LuaJIT) multicore ×2", "sock", multicore_lua(2), buf=4096,
           echo=False, idle=False, workers=2, base="sock-lua-mc1", env=LUA_ENV,
           section="multicore", check=multicore_lua_check,
           note="examples/lua/multicore.lua, " + multicore_note(2)
           + " (cdata, reused); the workers are sock.osthread states whose loops share one poller"),
    Server("tokio-ct", "tokio current_thread", "tokio",
           lambda e, h, o: [os.path.join(TARGET, "tokio-server"), str(e), str(h), "current_thread"],
           buf=16384, check=lambda: exists(os.path.join(TARGET, "tokio-server"), "tokio-server"),
           note="a task per connection, 16 KiB buffer in it"),
    Server("tokio-mt", "tokio multi_thread", "tokio",
           lambda e, h, o: [os.path.join(TARGET, "tokio-server"), str(e), str(h), "multi_thread"],
           buf=16384, check=lambda: exists(os.path.join(TARGET, "tokio-server"), "tokio-server"),
           note="default runtime: one worker on the one CPU it may use"),
    Server("luv", "luv", "lua", lambda e, h, o: ["luajit", os.path.join(LUA, "luv_server.lua"), str(e), str(h)],
           check=lua_check("luv", "lua-luv"), note="libuv callbacks, a string per read"),
    Server("cqueues", "cqueues", "lua",
           lambda e, h, o: ["luajit", os.path.join(LUA, "cqueues_server.lua"), str(e), str(h)],
           check=lua_check("cqueues", "lua-cqueues"), note="a coroutine per connection, cqueues' own buffers"),
    Server("copas", "LuaSocket+copas", "lua",
           lambda e, h, o: ["luajit", os.path.join(LUA, "copas_server.lua"), str(e), str(h)],
           check=lua_check("copas", "lua-copas, lua-socket"), note="socket.select() under copas"),
    Server("nginx-lua", "nginx+lua", "nginx", nginx_cmd, echo=False, env={
        "LD_LIBRARY_PATH": os.path.join(NGINX_ROOT, "usr", "lib", "x86_64-linux-gnu")},
        check=nginx_check, note="one worker, content_by_lua_block (HTTP only)"),
    # The reference of the TLS workloads (the C server has no TLS).
    Server("nginx", "nginx", "nginx", lambda e, h, o: nginx_tls_cmd(e, h, None, o), echo=False,
           idle=False, tls=nginx_tls_cmd,
           check=lambda: None if shutil.which("nginx") else "nginx not installed",
           note="Debian's nginx, no module: one worker, `return 200`, HTTP and HTTPS (TLS 1.3, "
                "TLS_AES_128_GCM_SHA256, X25519: ssl_protocols, ssl_conf_command Ciphersuites, "
                "ssl_ecdh_curve); the reference of the TLS workloads"),
]


# Workloads -------------------------------------------------------------------

class Workload:
    def __init__(self, key, title, unit, op, cpu_unit, http=False, short="", tls=False):
        self.key, self.title, self.unit, self.op = key, title, unit, op
        self.cpu_unit, self.http, self.short = cpu_unit, http, short
        self.tls = tls
        # The server the ratios are to: the C server, which has no TLS;
        # nginx for the TLS workloads.
        self.ref = "nginx" if tls else "c"


WORKLOADS = [
    Workload("W1", "W1 echo ping-pong: 64 connections, 64-byte messages, each waits for its echo",
             "msg/s", "msg", "µs/msg", short="W1 echo"),
    Workload("W1b", "W1b bulk echo: 16 connections streaming 16 KiB writes", "MB/s", "MB", "µs/MB",
             short="W1b bulk"),
    Workload("W2", "W2 HTTP/1.1 keep-alive hello world: wrk -t1 -c64", "req/s", "req", "µs/req",
             http=True, short="W2 HTTP"),
    Workload("W3", "W3 a new connection per request: 64 at a time, HTTP with Connection: close",
             "conn/s", "conn", "µs/conn", http=True, short="W3 connect"),
    Workload("W4", "W4 idle connections parked in recv: resident memory per connection",
             "B/conn", "conn", "B/conn", short="W4 idle"),
    Workload("W5", "W5 HTTPS keep-alive hello world: 64 connections, one request in flight each",
             "req/s", "req", "µs/req", http=True, short="W5 HTTPS", tls=True),
    Workload("W6", "W6 a new TLS connection per request: 64 at a time, a full handshake each "
             "(no resumption), Connection: close", "conn/s", "conn", "µs/conn", http=True,
             short="W6 TLS connect", tls=True),
    Workload("W6r", "W6r as W6 with session resumption: TLS 1.3 tickets", "conn/s", "conn",
             "µs/conn", http=True, short="W6r TLS resumed", tls=True),
]


def ref_label(w):
    """The name of a workload's reference server in column heads: C, nginx."""
    return "C" if w.ref == "c" else w.ref


# Processes -------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def children(pid):
    """The process and its descendants (nginx: master and worker)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def server_cpus(server):
    """The CPUs a server is pinned to: the server CPU (0); for a server with
    more than one worker, the load generator's CPU (1) as well."""
    if server.workers > 1 and LOADGEN_CPU != SERVER_CPU:
        return f"{SERVER_CPU},{LOADGEN_CPU}"
    return SERVER_CPU


def listeners(port):
    """The sockets listening on 127.0.0.1:port (so_reuseport: one per worker)."""
    want = f"0100007F:{port:04X}"
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            for line in f:
                t = line.split()
                if len(t) > 3 and t[1] == want and t[3] == "0A":
                    n += 1
    except OSError:
        return None
    return n


def cpu_seconds(pids):
    """CPU seconds of the processes: (user, user + system)."""
    u = t = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            raise OSError(f"process {p} has exited")
        u += int(fields[11])
        t += int(fields[11]) + int(fields[12])
    hz = os.sysconf("SC_CLK_TCK")
    return u / hz, t / hz


class Running:
    """A started server: its process group is ended by stop()."""

    def __init__(self, server, ports, out, wrap=(), extra=(), tls=False):
        """ports: echo, HTTP, TLS; wrap: a command the server runs under
        (valgrind ...); extra: arguments after the server's own; tls: with
        its TLS port (the TLS workloads)."""
        self.server = server
        log = open(os.path.join(out, "logs", f"{server.key}.log"), "a")
        log.write(f"\n--- {time.strftime('%H:%M:%S')} start\n")
        log.flush()
        cmd = (server.tls(ports[0], ports[1], ports[2], out) if tls
               else server.cmd(ports[0], ports[1], out))
        argv = ["taskset", "-c", server_cpus(server)] + list(wrap) + cmd + list(extra)
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **server.env), start_new_session=True,
                                     cwd=HERE)
        self.log = log
        self.pids = [self.proc.pid]

    def wait_ready(self, ports, timeout=10.0):
        """Waits until the server listens on its ports; None or the reason it failed."""
        until = time.time() + timeout
        while time.time() < until:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode} at start"
            if all(port_open(p) for p in ports) and (
                    (listeners(ports[-1]) or 0) >= self.server.listeners):
                # (every worker listens: so_reuseport spreads the connections
                # only over the listeners there are when they come)
                time.sleep(0.05)
                self.pids = children(self.proc.pid)
                return None
            time.sleep(0.05)
        return f"not listening after {timeout:.0f} s"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)
        # Whatever of the group is left (nginx's worker after its master).
        for p in self.pids:
            try:
                os.kill(p, 0)
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()

    def tail(self):
        """The first line the server wrote to its log in this run (its error)."""
        try:
            with open(self.log.name) as f:
                text = f.read()
        except OSError:
            return ""
        lines = [l.strip() for l in text.rsplit("\n--- ", 1)[-1].splitlines()[1:] if l.strip()]
        return lines[0][:200] if lines else ""


def run_loadgen(args, timeout):
    argv = ([] if args[0] == "probe" else ["taskset", "-c", LOADGEN_CPU]) + [
        os.path.join(TARGET, "loadgen")] + args
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"load generator timed out after {timeout:.0f} s"}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"load generator failed: {(r.stderr or r.stdout).strip()[:200]}"}


def parse_wrk(text):
    """Requests, seconds, p99 (µs) and errors from wrk --latency output."""
    def dur_us(v, unit):
        return float(v) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[unit]
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    if not m:
        return None
    res = {"ops": int(m.group(1)), "secs": dur_us(m.group(2), m.group(3)) / 1e6}
    p = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if p:
        res["p99_us"] = dur_us(p.group(1), p.group(2))
    p = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if p:
        res["p50_us"] = dur_us(p.group(1), p.group(2))
    errs = 0
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if e:
        errs += sum(int(x) for x in e.groups())
    e = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if e:
        errs += int(e.group(1))
    res["errors"] = errs
    return res


def run_wrk(port, running, cfg):
    url = f"http://127.0.0.1:{port}/"
    base = ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", "-c64"]
    if cfg.wrk_warmup > 0:
        subprocess.run(base + [f"-d{cfg.wrk_warmup}s", url], capture_output=True,
                       timeout=cfg.wrk_warmup + 15)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        cpu0 = cpu_seconds(running.pids)
        t0 = time.time()
        r = subprocess.run(base + [f"-d{cfg.wrk_duration}s", "--latency", url],
                           capture_output=True, text=True, timeout=cfg.wrk_duration + 20)
        t1 = time.time()
        cpu1 = cpu_seconds(running.pids)
    except subprocess.TimeoutExpired:
        return {"error": "wrk timed out"}
    except OSError:
        return {"error": "the server exited during the run"}
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = parse_wrk(r.stdout)
    if res is None:
        return {"error": f"wrk failed: {(r.stderr or r.stdout).strip()[:200]}"}
    if res["ops"] == 0:
        return {"error": "wrk got no answer"}
    res["rate"] = res["ops"] / res["secs"]
    res["server_cpu_s"] = cpu1[1] - cpu0[1]
    res["server_user_s"] = cpu1[0] - cpu0[0]
    res["loadgen_cpu_s"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    res["loadgen_user_s"] = ru1.ru_utime - ru0.ru_utime
    res["wall_s"] = t1 - t0
    if res["errors"]:
        res["error"] = f"wrk counted {res['errors']} errors"
    return res


def probe():
    """The machine's speed now: loops per second of a busy loop, the lower of
    CPU 0 and CPU 1 running it at once (a VM's CPUs are not always all there)."""
    r = run_loadgen(["probe", "--duration", "0.1"], 10)
    try:
        return min(r["cpu0_loops_per_s"], r["cpu1_loops_per_s"])
    except (KeyError, TypeError):
        return None


def run_cell(server, wl, ports, cfg):
    """Starts the server, runs one workload against it, stops it."""
    speed = probe()
    res = run_cell_2(server, wl, ports, cfg)
    res["speed"] = speed
    return res


def ready_ports(server, wl, ports):
    """The ports a server listens on once it is ready, for a workload (the
    last one is the port whose listeners are counted)."""
    if wl in TLS_WORKLOADS:
        return [ports[1], ports[2]]
    return [ports[1]] if not server.echo else [ports[0], ports[1]]


def port_for(server, wl, ports):
    """The port the load goes to."""
    if wl.tls:
        return ports[2]
    return ports[1] if (wl.http or not server.echo) else ports[0]


def tls_args(wl):
    """The load generator's TLS options for a TLS workload."""
    return ["--tls", "--ca", CERT] + (["--resume"] if wl == "W6r" else [])


def run_cell_2(server, wl, ports, cfg):
    running = Running(server, ports, cfg.out, tls=wl.tls)
    try:
        why = running.wait_ready(ready_ports(server, wl.key, ports))
        if why:
            tail = running.tail()
            return {"error": f"server did not start: {why}" + (f" ({tail})" if tail else ""),
                    "start_failed": True}
        pids = ",".join(map(str, running.pids))
        port = port_for(server, wl, ports)
        common = ["--addr", f"127.0.0.1:{port}", "--pids", pids]
        timed = ["--warmup", str(cfg.warmup), "--duration", str(cfg.duration)]
        limit = cfg.warmup + cfg.duration + 30
        if wl.key == "W1":
            res = run_loadgen(["echo", "--conns", "64", "--size", "64"] + timed + common, limit)
        elif wl.key == "W1b":
            res = run_loadgen(["bulk", "--conns", "16", "--size", "16384"] + timed + common, limit)
        elif wl.key == "W2":
            res = run_wrk(port, running, cfg)
        elif wl.key == "W3":
            res = run_loadgen(["conn", "--conns", "64"] + timed + common, limit)
        elif wl.key == "W5":
            res = run_loadgen(["http", "--conns", "64"] + tls_args(wl.key) + timed + common, limit)
        elif wl.key in ("W6", "W6r"):
            res = run_loadgen(["conn", "--conns", "64"] + tls_args(wl.key) + timed + common, limit)
        else:
            res = run_loadgen(["idle", "--conns", str(cfg.idle_conns), "--timeout", "30"] + common, 60)
        if "error" in res and not running.alive():
            tail = running.tail()
            res["error"] = ("the server died" + (f": {tail}" if tail else "")
                            + f" (load generator: {res['error']})")
        return res
    finally:
        running.stop()


# Statistics ------------------------------------------------------------------

def metrics(wl, server, res):
    """The figures of one run: rate, p99, server CPU per op, utilisations."""
    m = {}
    if "error" in res:
        m["error"] = res["error"]
    ops, secs = res.get("ops"), res.get("secs") or res.get("wall_s")
    if wl.key == "W4":
        if "bytes_per_conn" in res:
            m["rate"] = res["bytes_per_conn"]
            m["library"] = res["bytes_per_conn"] - server.buf
            m["held"] = res.get("held")
        return m
    if not ops or not secs or "error" in res:
        return m
    if wl.key == "W1b":
        mb = res["bytes"] / 1e6
        m["rate"] = mb / secs
        m["cpu_op"] = res["server_cpu_s"] / mb * 1e6 if mb else None
        m["lg_op"] = res["loadgen_cpu_s"] / mb * 1e6 if mb else None
    else:
        m["rate"] = ops / secs
        m["cpu_op"] = res["server_cpu_s"] / ops * 1e6
        m["lg_op"] = res["loadgen_cpu_s"] / ops * 1e6
    if "p99_us" in res:
        m["p99"] = res["p99_us"]
    if "resumed" in res:
        m["resumed"] = res["resumed"] / ops * 100
    m["srv_util"] = res["server_cpu_s"] / secs * 100
    lg_secs = res.get("wall_s", secs)
    m["lg_util"] = res["loadgen_cpu_s"] / lg_secs * 100
    if res.get("server_cpu_s") and "server_user_s" in res:
        m["srv_user"] = res["server_user_s"] / res["server_cpu_s"] * 100
    if res.get("loadgen_cpu_s") and "loadgen_user_s" in res:
        m["lg_user"] = res["loadgen_user_s"] / res["loadgen_cpu_s"] * 100
    return m


def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def aggregate(results):
    """Per (workload, server): medians with min and max over the rounds, and
    the ratio of CPU per operation to the reference server's in the same
    round (the C server's; nginx's in the TLS workloads)."""
    agg = {}
    for r in results:
        agg.setdefault((r["workload"], r["server"]), []).append(r)
    ref = {w.key: w.ref for w in WORKLOADS}
    c_by_round = {(r["workload"], r["round"]): r["m"].get("cpu_op")
                  for r in results if r["server"] == ref.get(r["workload"], "c")
                  and "error" not in r["m"]}
    out = {}
    for key, runs in agg.items():
        ok = [r for r in runs if "error" not in r["m"] and r["m"].get("rate") is not None]
        errs = [r["m"]["error"] for r in runs if "error" in r["m"]]
        cell = {"runs": len(runs), "ok": len(ok), "errors": errs}
        for k in ("rate", "p99", "cpu_op", "lg_op", "srv_util", "lg_util", "srv_user", "lg_user",
                  "library", "held", "resumed"):
            v = summary([r["m"].get(k) for r in ok])
            if v:
                cell[k] = v
        ratios = []
        for r in ok:
            base = c_by_round.get((r["workload"], r["round"]))
            if base and r["m"].get("cpu_op"):
                ratios.append(r["m"]["cpu_op"] / base)
        v = summary(ratios)
        if v:
            cell["ratio"] = v
        out[key] = cell
    return out


def speeds(results):
    """Each run's machine speed relative to the fastest probe of the run."""
    best = max([r["raw"].get("speed") or 0 for r in results] or [0])
    if not best:
        return []
    return [(r, r["raw"]["speed"] / best) for r in results if r["raw"].get("speed")]


# Report ----------------------------------------------------------------------

def fmt(x, digits=3):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits - 1}f}" if abs(x) >= 1 else f"{x:.{digits}f}"


def cell_text(s, digits=3):
    if not s:
        return "–"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def cmd_version(argv, pattern=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if pattern:
        m = re.search(pattern, text)
        return m.group(1) if m else None
    return text.splitlines()[0] if text else None


def dpkg_version(pkg):
    return cmd_version(["dpkg-query", "-W", "-f=${Version}", pkg])


def environment():
    env = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "kernel": platform.release(),
           "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            env["cpu"] = m.group(1).strip() if m else platform.processor()
    except OSError:
        env["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))
            env["memory"] = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    env["commit"] = cmd_version(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = cmd_version(["git", "-C", ROOT, "status", "--porcelain"])
    if env["commit"] and dirty:
        env["commit"] += " (with uncommitted changes)"
    tokio = rustls = None
    try:
        with open(os.path.join(HERE, "Cargo.lock")) as f:
            lock = f.read()
        m = re.search(r'name = "tokio"\nversion = "([^"]+)"', lock)
        tokio = m.group(1) if m else None
        m = re.search(r'name = "rustls"\nversion = "([^"]+)"', lock)
        rustls = m.group(1) if m else None
    except OSError:
        pass
    env["versions"] = {
        "rustc": cmd_version(["rustc", "--version"], r"rustc (\S+)"),
        "gcc": cmd_version(["gcc", "-dumpfullversion"]),
        "tokio": tokio,
        "rustls": rustls,
        "openssl": cmd_version(["openssl", "version"], r"OpenSSL (\S+)"),
        "luajit": cmd_version(["luajit", "-v"], r"LuaJIT (\S+)"),
        "lua-luv": dpkg_version("lua-luv"),
        "lua-cqueues": dpkg_version("lua-cqueues"),
        "lua-socket": dpkg_version("lua-socket"),
        "lua-copas": dpkg_version("lua-copas"),
        "nginx": cmd_version(["nginx", "-v"], r"nginx/(\S+)"),
        "libnginx-mod-http-lua": cmd_version(
            ["dpkg-deb", "-f"] + [os.path.join(HERE, "out", "nginx-lua", "debs", f)
                                  for f in sorted(os.listdir(os.path.join(HERE, "out", "nginx-lua", "debs")))
                                  if f.startswith("libnginx-mod-http-lua")][:1] + ["Version"])
        if os.path.isdir(os.path.join(HERE, "out", "nginx-lua", "debs")) else None,
        "wrk": cmd_version(["wrk", "-v"], r"wrk (\S+)"),
    }
    return env


def write_markdown(path, data, agg, chart_name):
    cfg, env = data["config"], data["env"]
    servers = [s for s in SERVERS if s.key in cfg["servers"]]
    wls = [w for w in WORKLOADS if w.key in cfg["workloads"]]
    # The reference server's cells: the C server's; nginx's in the TLS workloads.
    c_cells = {w.key: agg.get((w.key, w.ref), {}) for w in wls}
    L = []
    mode = ("the quick mode, a check that the harness works: its numbers are not for comparison"
            if cfg["quick"] else "the full run")
    L.append("# Benchmarks\n")
    L.append(f"Written by `bash bench/run.sh{' --quick' if cfg['quick'] else ''}` "
             f"({mode}) on {env['date']}; see bench/README.md for what each workload does and how "
             "it is measured. Each cell is the median over the rounds, with the lowest and highest "
             "value in parentheses.\n")
    L.append(f"- Machine: {env.get('cpu')}, {env.get('cpus')} CPUs, {env.get('memory', '?')}, "
             f"Linux {env.get('kernel')}; servers pinned to CPU {SERVER_CPU}"
             + (f" (the 2-worker multicore servers to CPUs {SERVER_CPU} and {LOADGEN_CPU})"
                if any(s.workers > 1 for s in servers) and SERVER_CPU != LOADGEN_CPU else "")
             + f", load generators (bench/loadgen, wrk) to CPU {LOADGEN_CPU}; all traffic on "
             "127.0.0.1.")
    L.append(f"- Run: {cfg['rounds']} interleaved round(s) (every server, then the next workload, "
             f"then the next round); {cfg['warmup']} s warm-up and {cfg['duration']} s measured per "
             f"run (wrk: {cfg['wrk_warmup']} s + {cfg['wrk_duration']} s); W4 with "
             f"{cfg['idle_conns']:,} connections. Total {data['elapsed_s'] / 60:.1f} min.")
    L.append(f"- Commit {env.get('commit')}; " + ", ".join(
        f"{k} {v}" for k, v in env["versions"].items() if v) + ".\n")
    if chart_name:
        L.append(f"![server CPU time per operation]({chart_name})\n")

    # The main tables leave the multicore servers to their own section.
    multi = [s for s in servers if s.multicore]
    servers_all, servers = servers, [s for s in servers if not s.multicore]

    # Summary: ratios against C.
    tls_wls = [w for w in wls if w.tls]
    L.append("## Server CPU time per operation, relative to the C epoll server"
             + (" (TLS: to nginx)" if tls_wls else "") + "\n")
    L.append("The figure to compare (lower is better): the server's CPU time (utime + stime from "
             "/proc/PID/stat) during the measured run divided by the operations it served, over "
             "the same for the hand-written C server in the same round: the median of the rounds' "
             "ratios, lowest and highest in parentheses. W4 is the memory per idle "
             "connection that the library holds (resident memory growth per connection minus the "
             "program's own buffers), in bytes."
             + (" The C server has no TLS: in the TLS workloads ("
                + ", ".join(w.key for w in tls_wls) + ") the ratio is to nginx in the same "
                "round, nginx being the reference for TLS." if tls_wls else "") + "\n")
    head = ["server"] + [w.short + (f" (× {ref_label(w)})" if w.tls else "")
                         for w in wls if w.key != "W4"] + (
        ["W4 library B/conn"] if any(w.key == "W4" for w in wls) else [])
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    # The columns in the header's order: W4 (bytes, not a ratio) last.
    cols = [w for w in wls if w.key != "W4"] + [w for w in wls if w.key == "W4"]
    for s in servers:
        row = [s.label]
        for w in cols:
            cell = agg.get((w.key, s.key), {})
            if w.key == "W4":
                row.append(fmt(cell["library"]["median"]) if "library" in cell else missing_word(cell, s, w))
                continue
            if "ratio" in cell:
                row.append(ratio_text(cell["ratio"]))
            else:
                row.append(missing_word(cell, s, w))
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    for w in wls:
        L.append(f"## {w.title}\n")
        if w.key == "W4":
            L.append("Connections opened 250 at a time, nothing sent; the server's resident memory "
                     "(/proc/PID/statm) once it holds all of them (its descriptors in /proc/PID/fd) "
                     "and its memory has settled, minus before, per connection. *Program buffers* "
                     "is what the benchmark program itself allocates per connection (its read "
                     "buffer); *library* is the rest.\n")
            L.append("| server | resident B/conn | program buffers B/conn | library B/conn | held |")
            L.append("|---|---|---|---|---|")
            for s in servers:
                cell = agg.get((w.key, s.key), {})
                if "rate" not in cell:
                    L.append(f"| {s.label} | {missing_word(cell, s, w, long=True)} | | | |")
                    continue
                L.append(f"| {s.label} | {cell_text(cell['rate'])} | {s.buf:,} | "
                         f"{cell_text(cell.get('library'))} | {fmt(cell['held']['median'])} |")
            L.append("")
            continue
        if w.tls:
            L.append(tls_text(w) + "\n")
        lat = w.key in ("W1", "W2", "W3", "W5", "W6", "W6r")
        resumed = w.key in ("W6", "W6r")
        cols = ["server", w.unit] + (["p99 µs"] if lat else []) + [
            f"server CPU {w.cpu_unit}", f"× {ref_label(w)}", "server CPU %", "load gen. CPU %"] + (
            ["resumed %"] if resumed else [])
        L.append("| " + " | ".join(cols) + " |")
        L.append("|" + "---|" * len(cols))
        base = c_cells[w.key].get("cpu_op")
        for s in servers:
            if w.tls and not s.serves(w.key):
                continue  # (the servers without TLS)
            cell = agg.get((w.key, s.key), {})
            if "rate" not in cell:
                L.append(f"| {s.label} | {missing_word(cell, s, w, long=True)} |" + " |" * (len(cols) - 2))
                continue
            ratio = ratio_text(cell["ratio"]) if "ratio" in cell else "–"
            row = [s.label, cell_text(cell["rate"])] + ([cell_text(cell.get("p99"))] if lat else []) + [
                cell_text(cell.get("cpu_op")), ratio, cell_text(cell.get("srv_util")),
                cell_text(cell.get("lg_util"))] + ([f"{cell['resumed']['median']:.0f}" if "resumed" in cell else "–"] if resumed else [])
            L.append("| " + " | ".join(row) + " |")
        L.append("")

    if multi:
        multicore_section(L, data, agg, servers_all, multi, wls, env)

    # Is the load generator fast enough?
    L.append("## The load generator against the C server" + (" (TLS: nginx)" if tls_wls else "")
             + "\n")
    L.append("bench/loadgen (W1, W1b, W3, W4"
             + (", and with its TLS client " + ", ".join(w.key for w in tls_wls) if tls_wls else "")
             + ") is one thread on raw epoll; W2 uses wrk. A server near "
             "100 % of its CPU is saturated: the load generator kept it busy. On loopback the "
             "kernel's TCP work for a packet, the receiver's part included, is charged to the "
             "process that sends it, so for ping-pong both sides cost about the same by "
             "construction; what the load generator adds of its own is its user-space time, "
             "shown as a share of its CPU time. Where it is at 100 % and the server is not, the "
             "load generator is the limit of the throughput, and the server's CPU time per "
             "operation is still the figure to compare.\n")
    L.append("| workload | server CPU/op | load generator CPU/op | server CPU % | "
             "load generator CPU % | load generator user-space share |")
    L.append("|---|---|---|---|---|---|")
    for w in wls:
        if w.key == "W4":
            continue
        c = c_cells[w.key]
        name = f"{w.short} ({label_of(w.ref)})"
        if "cpu_op" not in c:
            L.append(f"| {name} | missing | | | | |")
            continue
        L.append(f"| {name} | {fmt(c['cpu_op']['median'])} {w.cpu_unit} | "
                 f"{fmt(c['lg_op']['median'])} {w.cpu_unit} | {fmt(c['srv_util']['median'])} | "
                 f"{fmt(c['lg_util']['median'])} | "
                 f"{fmt(c['lg_user']['median']) + ' %' if 'lg_user' in c else '–'} |")
    L.append("")

    # How steady the machine was.
    sp = speeds(data["results"])
    if sp:
        vals = sorted(v for _, v in sp)
        slow = [(r, v) for r, v in sp if v < 0.85]
        L.append("## How steady the machine was\n")
        L.append("Before every run, a 0.1 s busy loop on CPU 0 and CPU 1 at once (`loadgen probe`) "
                 "measures how much CPU the machine gives; a virtual machine's CPUs are not always "
                 "all there, and then both the server and the load generator idle and the "
                 "throughput drops. Relative to the fastest probe of this run: median "
                 f"{statistics.median(vals) * 100:.0f} %, lowest {vals[0] * 100:.0f} %; "
                 f"{len(slow)} of {len(vals)} runs started below 85 %"
                 + (": " + ", ".join(f"{r['workload']} {label_of(r['server'])} round {r['round']} "
                                     f"({v * 100:.0f} %)" for r, v in slow[:12])
                    + (", ..." if len(slow) > 12 else "") if slow else "") + ".\n")

    # Missing and failures.
    miss = []
    for s in servers_all:
        if s.key in data["unavailable"]:
            miss.append(f"- **{s.label}**: {data['unavailable'][s.key]}")
            continue
        for w in wls:
            if not s.serves(w.key):
                continue
            cell = agg.get((w.key, s.key), {})
            if cell.get("errors"):
                n = len(cell["errors"])
                miss.append(f"- {s.label}, {w.key}: {n} of {cell['runs']} run(s) failed: "
                            f"{cell['errors'][0]}")
    L.append("## Missing and failed\n")
    L.append("\n".join(miss) if miss else "Nothing: every server ran every workload it serves.")
    L.append("")
    L.append("nginx+lua serves HTTP only (W2, W3, W4 on its HTTP port)"
             + ("; nginx (no module) serves HTTP and HTTPS (W2, W3, W5, W6, W6r), the TLS "
                "workloads' reference; the TLS workloads run on sock's servers and nginx only"
                if any(s.key == "nginx" for s in servers_all) else "")
             + ("; the multicore servers serve HTTP only and run W2 and W3 only" if multi else "")
             + ".")
    L.append("")
    L.append("## The servers\n")
    for s in servers_all:
        L.append(f"- {s.label}: {s.note}.")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def multicore_section(L, data, agg, servers, multi, wls, env):
    """The multicore servers' W2 and W3, beside C and sock's one-loop servers."""
    wls = [w for w in wls if w.key in ("W2", "W3")]
    if not wls:
        return
    by_key = {s.key: s for s in servers}
    rows = [by_key[k] for k in ("c", "sock-rust") if k in by_key]
    rows += [s for s in multi if s.key.startswith("sock-rust")]
    rows += [by_key[k] for k in ("sock-lua",) if k in by_key]
    rows += [s for s in multi if s not in rows]
    cpu_op = {(r["workload"], r["round"], r["server"]): r["m"].get("cpu_op")
              for r in data["results"] if "error" not in r["m"]}
    two = f"CPUs {SERVER_CPU} and {LOADGEN_CPU}" if SERVER_CPU != LOADGEN_CPU else f"CPU {SERVER_CPU}"
    L.append("## Multi-core\n")
    L.append("The multicore examples of the repository, HTTP only (W2, W3): "
             "`examples/multicore.rs` (`multicore N PORT 0 [--shared] [--one-listener]`) and "
             "`examples/lua/multicore.lua`. N worker OS threads, each with its own loop and its "
             "own `so_reuseport` listener on the port (the kernel spreads the connections over "
             "them), a sock thread per connection; with `--shared` the Rust workers' loops share "
             "one epoll instance and each event is handed to the worker that owns the socket; with "
             "`--one-listener` the Rust workers accept from one listener instead (each loop adopts "
             "a clone of it, registered with EPOLLEXCLUSIVE: a connection wakes one worker); the "
             "LuaJIT workers are `sock.osthread` states whose loops share one poller. C epoll and "
             "sock's one-loop servers (the tables above) are here for reference.\n")
    L.append(f"Placement: the 1-worker servers are pinned to CPU {SERVER_CPU} like every other "
             f"server, the 2-worker ones to {two} (`taskset -c {SERVER_CPU},{LOADGEN_CPU}`); the "
             f"load generator stays on CPU {LOADGEN_CPU}. On this {env.get('cpus')}-CPU machine "
             f"the load generator thus shares CPU {LOADGEN_CPU} with the second worker, so the "
             "throughput cannot scale 2x here. The figure to compare is again the server's "
             "CPU time per operation (all its threads): *× 1 worker* is its ratio to the same "
             "program with one worker in the same round, the cost of a second worker (and of a "
             "shared poller); *server CPU %* is of one CPU (up to 200 % with two workers).\n")

    def ratio_to(wl, key, ref):
        """key's CPU per operation over ref's: the median of the rounds' ratios."""
        v = summary([cpu_op[(wl, r["round"], key)] / cpu_op[(wl, r["round"], ref)]
                     for r in data["results"] if r["workload"] == wl and r["server"] == key
                     and cpu_op.get((wl, r["round"], key)) and cpu_op.get((wl, r["round"], ref))])
        return ratio_text(v) if v else "–"

    for w in wls:
        cols = ["server", "workers (CPUs)", w.unit, "p99 µs", f"server CPU {w.cpu_unit}", "× C",
                "× 1 worker", "server CPU %", "load gen. CPU %"]
        L.append(f"### {w.title}\n")
        L.append("| " + " | ".join(cols) + " |")
        L.append("|" + "---|" * len(cols))
        for s in rows:
            if not s.serves(w.key):
                continue
            cell = agg.get((w.key, s.key), {})
            where = (f"{s.workers} ({two})" if s.workers > 1 else f"{s.workers} (CPU {SERVER_CPU})")
            if "rate" not in cell:
                L.append(f"| {s.label} | {where} | {missing_word(cell, s, w, long=True)} |"
                         + " |" * (len(cols) - 3))
                continue
            row = [s.label, where, cell_text(cell["rate"]), cell_text(cell.get("p99")),
                   cell_text(cell.get("cpu_op")),
                   ratio_text(cell["ratio"]) if "ratio" in cell else "–",
                   ratio_to(w.key, s.key, s.base) if s.base else "–",
                   cell_text(cell.get("srv_util")), cell_text(cell.get("lg_util"))]
            L.append("| " + " | ".join(row) + " |")
        L.append("")


def tls_text(w):
    """What a TLS workload's table measures: the handshake and certificate."""
    what = {"W5": "64 keep-alive connections over TLS, one request in flight each (the load "
                  "generator's http mode with --tls; the handshakes are in the warm-up). One "
                  "operation: a request, one record each way",
            "W6": "64 at a time: connect, a full TLS handshake (the client offers no session: "
                  "no resumption), `GET /` with `Connection: close`, the answer up to the "
                  "server's close_notify, close. One operation: a connection",
            "W6r": "W6 with session resumption: the client caches the servers' TLS 1.3 tickets "
                   "(two after each handshake, the default of OpenSSL and rustls alike) and "
                   "offers one in every handshake (PSK with X25519: no certificate, no "
                   "signature). *Resumed %* is the share of the connections whose handshake "
                   "resumed. One operation: a connection"}[w.key]
    return (f"{what}. The handshake of every server: TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, "
            "the self-signed ECDSA P-256 certificate bench/run.sh generates (the load "
            "generator's rustls client trusts it and verifies it and the name localhost). "
            "The C server has no TLS: *× nginx* is the ratio to nginx in the same round.")


def ratio_text(r):
    if r["n"] == 1 or r["min"] == r["max"]:
        return f"{r['median']:.2f}x"
    return f"{r['median']:.2f}x ({r['min']:.2f}–{r['max']:.2f})"


def missing_word(cell, s, w, long=False):
    if not s.serves(w.key):
        return ("n/a (no TLS)" if w.tls else "n/a (HTTP only)") if long else "n/a"
    if not cell or cell.get("runs", 0) == 0:
        return "missing"
    if cell.get("errors"):
        return ("failed: " + cell["errors"][0][:200]) if long else "failed"
    return "–"


def label_of(key):
    return next((s.label for s in SERVERS if s.key == key), key)


def make_chart(data, agg, png, python):
    if not python:
        return "no Python with matplotlib"
    blob = {"config": data["config"], "env": data["env"], "servers": [
        {"key": s.key, "label": s.label, "group": s.group, "buf": s.buf, "echo": s.echo,
         "serves": [w.key for w in WORKLOADS if s.serves(w.key)], "workers": s.workers}
        for s in SERVERS if s.key in data["config"]["servers"]],
        "workloads": [{"key": w.key, "short": w.short, "cpu_unit": w.cpu_unit, "unit": w.unit,
                       "ref": w.ref}
                      for w in WORKLOADS if w.key in data["config"]["workloads"]],
        "cells": [{"workload": k[0], "server": k[1], **v} for k, v in agg.items()]}
    tmp = png + ".json"
    with open(tmp, "w") as f:
        json.dump(blob, f)
    r = subprocess.run([python, os.path.join(HERE, "chart.py"), tmp, png], capture_output=True,
                       text=True, timeout=120)
    os.unlink(tmp)
    if r.returncode != 0:
        return f"chart.py failed: {(r.stderr or r.stdout).strip()[-300:]}"
    return None


def report(data, out_md, chart_python):
    agg = aggregate(data["results"])
    png = os.path.splitext(out_md)[0].replace("BENCHMARKS", "benchmarks") + ".png"
    if os.path.basename(out_md) == "BENCHMARKS.md":
        png = os.path.join(os.path.dirname(out_md), "benchmarks.png")
    why = make_chart(data, agg, png, chart_python)
    if why:
        print(f"bench: no chart: {why}", file=sys.stderr)
    write_markdown(out_md, data, agg, None if why else os.path.basename(png))
    return png if not why else None


# Main ------------------------------------------------------------------------

def missing_tls(servers, wls, unavailable):
    """The servers whose TLS part is missing (no certificate, or their
    tls_check fails), with the reason (printed), when a TLS workload runs."""
    out = {}
    if not any(w.tls for w in wls):
        return out
    no_cert = cert_check()
    for s in servers:
        if s.tls is None or s.key in unavailable:
            continue
        why = no_cert or (s.tls_check() if s.tls_check else None)
        if why:
            out[s.key] = why
            print(f"bench: {s.label}: the TLS workloads will fail: {why}")
    return out


def three_ports():
    """Three distinct free ports: echo, HTTP, TLS."""
    ports = []
    while len(ports) < 3:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return tuple(ports)


def missing_servers(servers):
    """The servers that are not installed or built, with the reason (printed)."""
    unavailable = {}
    for s in servers:
        why = s.check() if s.check else None
        if why:
            unavailable[s.key] = why
            print(f"bench: {s.label} is missing: {why}")
    return unavailable


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one round, 1 s per run (CI)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=float, help="measured seconds per run")
    ap.add_argument("--warmup", type=float)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--servers", help="comma-separated keys: " + ",".join(s.key for s in SERVERS))
    ap.add_argument("--workloads", help="comma-separated: " + ",".join(w.key for w in WORKLOADS))
    ap.add_argument("--out", help="where BENCHMARKS.md and the chart go")
    ap.add_argument("--chart-python", default=os.environ.get("BENCH_CHART_PYTHON"),
                    help="a Python with matplotlib, for chart.py")
    ap.add_argument("--report-only", metavar="RESULTS_JSON", help="rewrite the report of a past run")
    ap.add_argument("--callgrind", action="store_true",
                    help="instructions (callgrind) and system calls (strace) per operation "
                         "instead of CPU time: W1, W1b, W2, W3, W5, W6, W6r; writes CALLGRIND.md in "
                         "bench/out/callgrind (or --out); --warmup and --duration are then the "
                         "callgrind run's (2 s and 3 s)")
    a = ap.parse_args()

    if a.report_only:
        with open(a.report_only) as f:
            data = json.load(f)
        if data.get("mode") == "callgrind":
            import callgrind
            out = os.path.abspath(a.out or os.path.dirname(os.path.abspath(a.report_only)))
            md = os.path.join(out, "CALLGRIND.md")
            callgrind.write_markdown(md, data, sys.modules[__name__])
            print(f"bench: wrote {md}")
            return 0

    out = os.path.abspath(a.out or (os.path.join(HERE, "out", "quick") if a.quick else HERE))
    work = os.path.join(HERE, "out")
    os.makedirs(os.path.join(work, "logs"), exist_ok=True)
    os.makedirs(out, exist_ok=True)
    md = os.path.join(out, "BENCHMARKS.md")

    if a.report_only:
        with open(a.report_only) as f:
            data = json.load(f)
        png = report(data, md, a.chart_python)
        print(f"bench: wrote {md}" + (f" and {png}" if png else ""))
        return 0

    if not os.access(os.path.join(TARGET, "loadgen"), os.X_OK):
        print("bench: the load generator is not built (bench/target/release/loadgen)", file=sys.stderr)
        return 1
    if os.cpu_count() < 2:
        global LOADGEN_CPU
        LOADGEN_CPU = "0"
        print("bench: one CPU only: server and load generator share it", file=sys.stderr)
    if a.callgrind:
        import callgrind
        return callgrind.main(a, sys.modules[__name__])

    quick = a.quick
    cfg = argparse.Namespace(
        quick=quick, rounds=a.rounds or (1 if quick else 4),
        duration=a.duration or (1.0 if quick else 2.0),
        warmup=a.warmup if a.warmup is not None else (0.2 if quick else 0.5),
        out=work)
    cfg.wrk_duration = max(1, round(cfg.duration))
    cfg.wrk_warmup = 0 if quick else 1
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < a.idle_conns + 200:
        print(f"bench: descriptor limit {hard}: W4 with {hard - 200} connections", file=sys.stderr)
        a.idle_conns = max(100, hard - 200)
    cfg.idle_conns = a.idle_conns
    try:  # the servers inherit the limit: W4 needs 10,000 descriptors
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    servers = [s for s in SERVERS if not a.servers or s.key in a.servers.split(",")]
    wls = [w for w in WORKLOADS if not a.workloads or w.key in a.workloads.split(",")]
    unavailable = missing_servers(servers)
    tls_unavailable = missing_tls(servers, wls, unavailable)
    ports = three_ports()

    t_start = time.time()
    results = []
    start_failures = {}
    total = cfg.rounds * sum(1 for w in wls for s in servers
                             if s.key not in unavailable and s.serves(w.key))
    done = 0
    for rnd in range(1, cfg.rounds + 1):
        for w in wls:
            for s in servers:
                if s.key in unavailable or not s.serves(w.key):
                    continue
                done += 1
                if w.tls and s.key in tls_unavailable:
                    # (not started: its TLS part is missing, or failed to start twice)
                    res = {"error": tls_unavailable[s.key]}
                else:
                    res = run_cell(s, w, ports, cfg)
                # A server that fails to start twice in a row is missing from
                # then on; one whose TLS part does, in the TLS workloads only.
                fails = (s.key, w.tls)
                if res.get("start_failed"):
                    start_failures[fails] = start_failures.get(fails, 0) + 1
                    if start_failures[fails] >= 2:
                        (tls_unavailable if w.tls else unavailable)[s.key] = res["error"]
                else:
                    start_failures[fails] = 0
                m = metrics(w, s, res)
                results.append({"round": rnd, "workload": w.key, "server": s.key, "raw": res, "m": m})
                print(f"[{done}/{total} round {rnd}] {w.key:<3} {s.label:<21} " + describe(w, m),
                      flush=True)
    data = {"config": {"quick": quick, "rounds": cfg.rounds, "duration": cfg.duration,
                       "warmup": cfg.warmup, "wrk_duration": cfg.wrk_duration,
                       "wrk_warmup": cfg.wrk_warmup, "idle_conns": cfg.idle_conns,
                       "servers": [s.key for s in servers], "workloads": [w.key for w in wls]},
            "env": environment(), "unavailable": unavailable, "results": results,
            "elapsed_s": time.time() - t_start}
    raw = os.path.join(work, "results-quick.json" if quick else "results.json")
    with open(raw, "w") as f:
        json.dump(data, f, indent=1)
    png = report(data, md, a.chart_python)
    print(f"bench: {len(results)} runs in {data['elapsed_s']:.0f} s; wrote {md}"
          + (f" and {png}" if png else "") + f" (raw results: {raw})")
    if results and all("error" in r["m"] for r in results):
        print("bench: every run failed: the harness is broken", file=sys.stderr)
        return 1
    return 0


def describe(w, m):
    if "error" in m:
        return "FAILED: " + m["error"]
    if w.key == "W4":
        return f"{fmt(m.get('rate'))} B/conn (library {fmt(m.get('library'))}), {m.get('held')} held"
    s = f"{fmt(m.get('rate'))} {w.unit}"
    if "p99" in m:
        s += f", p99 {fmt(m['p99'])} µs"
    if m.get("cpu_op") is not None:
        s += f", server {fmt(m['cpu_op'])} {w.cpu_unit}"
    s += f" (server CPU {fmt(m.get('srv_util'))} %, load generator {fmt(m.get('lg_util'))} %)"
    if "resumed" in m:
        s += f", {m['resumed']:.0f} % resumed"
    return s


if __name__ == "__main__":
    sys.exit(main())
