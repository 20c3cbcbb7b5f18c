"""The instruction-count mode of the benchmark harness: `bash bench/run.sh
--callgrind` (bench.py --callgrind), with --servers and --workloads as usual.

Instead of CPU time, which moves from run to run on a small virtual machine,
it counts for each server and workload (W1, W1b, W2, W3, and the TLS W5, W6,
W6r for the servers with TLS):

- the user-space instructions the server executes per operation (callgrind's
  Ir: the server started under `valgrind --tool=callgrind`; the counters are
  zeroed with `callgrind_control --zero` after the warm-up and dumped with
  `callgrind_control --dump` after the measured run);
- the system calls it makes per operation (a second run at normal speed,
  `strace -c -f -p PID` attached for the measured run only).

The load generator runs with --sync: at the end of the warm-up and at the end
of the measured run it lets every operation in flight finish, then waits for
this script (which zeroes or dumps the counters, or attaches or detaches
strace) before going on. The operations it reports are then exactly those
the server served between zero and dump. W2 uses the load generator's http
mode (64 keep-alive connections, one request in flight each, as wrk -c64
does) rather than wrk, which could not be aligned so.

Writes CALLGRIND.md, callgrind.json and the raw dumps (callgrind.out.SERVER.W,
for callgrind_annotate or kcachegrind) and strace summaries
(strace.SERVER.W.txt) to bench/out/callgrind/ (or --out).
"""

import copy
import json
import os
import re
import select
import signal
import subprocess
import time

WORKLOADS = ("W1", "W1b", "W2", "W3", "W5", "W6", "W6r")
TLS = ("W5", "W6", "W6r")
BULK_CHUNK = 16384

# What one operation is, per workload.
OPS = {"W1": "message (64 B echoed)", "W1b": "16 KiB chunk echoed", "W2": "request (keep-alive)",
       "W3": "connection (accept, request, answer, close)",
       "W5": "request (keep-alive, over TLS)",
       "W6": "TLS connection (accept, full handshake, request, answer, close_notify, close)",
       "W6r": "TLS connection with a resumed handshake (a TLS 1.3 ticket)"}


def loadgen_mode(wl, B):
    return {"W1": ["echo", "--conns", "64", "--size", "64"],
            "W1b": ["bulk", "--conns", "16", "--size", str(BULK_CHUNK)],
            "W2": ["http", "--conns", "64"],
            "W3": ["conn", "--conns", "64"],
            "W5": ["http", "--conns", "64"] + B.tls_args("W5"),
            "W6": ["conn", "--conns", "64"] + B.tls_args("W6"),
            "W6r": ["conn", "--conns", "64"] + B.tls_args("W6r")}[wl]


def ref_of(wl):
    """The server ratios are to: C; nginx in the TLS workloads."""
    return "nginx" if wl in TLS else "c"


def ops_of(wl, res):
    """The operations of a load generator's report (W1b: 16 KiB chunks echoed)."""
    if wl == "W1b":
        return res.get("bytes", 0) / BULK_CHUNK
    return res.get("ops", 0)


def lua_host(B):
    """bench/out/bin/luajit-host (servers/lua/luajit_host.c, built by run.sh
    --callgrind): luajit with the names of LuaJIT's functions; None if it
    was not built."""
    path = os.path.join(B.HERE, "out", "bin", "luajit-host")
    return path if os.access(path, os.X_OK) else None


def hosted(server, host):
    """The server, its `luajit` replaced with `host`."""
    if not host:
        return server
    s = copy.copy(server)
    swap = lambda argv: [host if i == 0 and a == "luajit" else a for i, a in enumerate(argv)]
    s.cmd = lambda e, h, o: swap(server.cmd(e, h, o))
    if server.tls:
        s.tls = lambda e, h, t, o: swap(server.tls(e, h, t, o))
    return s


def extra_args(server):
    """nginx forks its worker from its master: one process here, under
    valgrind as under strace."""
    return ["-g", "master_process off;"] if server.key in ("nginx-lua", "nginx") else []


# Processes -------------------------------------------------------------------

def run_synced(B, args, on_sync, timeout):
    """Runs the load generator with --sync, calling on_sync("start") and
    on_sync("end") at its sync lines before it goes on. Returns its report,
    with an "error" member when it or on_sync failed."""
    argv = ["taskset", "-c", B.LOADGEN_CPU, os.path.join(B.TARGET, "loadgen")] + args + ["--sync"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    problems, last, synced = [], "", []
    try:
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise subprocess.TimeoutExpired(argv, timeout)
            ready, _, _ = select.select([p.stdout], [], [], min(left, 1.0))
            if not ready:
                continue
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("sync "):
                what = line.split()[1]
                synced.append(what)
                err = on_sync(what)
                if err:
                    problems.append(err)
                p.stdin.write("go\n")
                p.stdin.flush()
            elif line.strip():
                last = line
        p.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return {"error": f"load generator timed out after {timeout:.0f} s"}
    except BrokenPipeError:
        p.kill()
        p.wait()
        return {"error": "load generator exited at a sync point"}
    finally:
        err_text = p.stderr.read() if p.stderr else ""
        for f in (p.stdin, p.stdout, p.stderr):
            try:
                f.close()
            except (OSError, AttributeError):
                pass
    try:
        res = json.loads(last)
    except ValueError:
        return {"error": f"load generator failed: {(err_text or last).strip()[:200]}"}
    if synced != ["start", "end"] and "error" not in res:
        res["error"] = f"load generator synced {synced}, not at start and end"
    if problems and "error" not in res:
        res["error"] = problems[0]
    return res


def callgrind_control(what, pid):
    try:
        r = subprocess.run(["callgrind_control", f"--{what}", str(pid)], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return f"callgrind_control --{what} timed out"
    if r.returncode != 0 or "OK" not in r.stdout:
        return f"callgrind_control --{what} failed: {(r.stderr or r.stdout).strip()[:200]}"
    return None


def start(B, server, wl, ports, cfg, wrap=()):
    """Starts a server (under `wrap`) for a workload; (running, None) or
    (None, reason)."""
    running = B.Running(server, ports, cfg.work, wrap=list(wrap), extra=extra_args(server),
                        tls=wl in TLS)
    why = running.wait_ready(B.ready_ports(server, wl, ports), timeout=cfg.start_timeout)
    if why:
        tail = running.tail()
        running.stop()
        return None, f"server did not start: {why}" + (f" ({tail})" if tail else "")
    return running, None


def port_of(server, wl, ports):
    if wl in TLS:
        return ports[2]
    return ports[1] if wl in ("W2", "W3") else ports[0]


def callgrind_cell(B, server, wl, ports, cfg):
    """The instructions run: the server under callgrind, zero after the
    warm-up, dump after the measured run."""
    dump = os.path.join(cfg.dir, f"callgrind.out.{server.key}.{wl}")
    base = dump + ".run"  # callgrind writes its dumps to base.1, base.2...
    for f in (dump, base, base + ".1"):
        if os.path.exists(f):
            os.unlink(f)
    wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={base}",
            "--smc-check=all-non-file"]
    t0 = time.time()
    running, why = start(B, server, wl, ports, cfg, wrap)
    if why:
        return {"error": why}
    started = time.time() - t0
    try:
        pid = running.proc.pid  # taskset execs valgrind: the same process

        def on_sync(what):
            time.sleep(cfg.settle)  # whatever the server does after its last answer
            return callgrind_control("zero" if what == "start" else "dump", pid)

        args = loadgen_mode(wl, B) + ["--addr", f"127.0.0.1:{port_of(server, wl, ports)}",
                                   "--warmup", str(cfg.cg_warmup), "--duration", str(cfg.cg_duration)]
        res = run_synced(B, args, on_sync, cfg.cg_warmup + cfg.cg_duration + 150)
        if "error" in res and not running.alive():
            tail = running.tail()
            res["error"] = "the server died" + (f": {tail}" if tail else "") + f" ({res['error']})"
    finally:
        running.stop()
    for f in (base,):  # the rest of the run, written at exit
        if os.path.exists(f):
            os.unlink(f)
    if "error" in res:
        return res
    if not os.path.exists(base + ".1"):
        return {"error": "callgrind wrote no dump"}
    os.replace(base + ".1", dump)
    ir = dump_total(dump)
    ops = ops_of(wl, res)
    if not ir or not ops:
        return {"error": f"nothing measured (Ir {ir}, operations {ops})"}
    out = {"ir": ir, "ops": ops, "ir_op": ir / ops, "rate": ops / res["secs"], "secs": res["secs"],
           "start_s": started, "dump": os.path.basename(dump)}
    prof = profile(dump)
    out["top_self"] = [(n, v / ops) for n, v in prof["self"][:cfg.top]]
    out["top_incl"] = [(n, v / ops) for n, v in prof["incl"][:cfg.top]]
    return out


def strace_cell(B, server, wl, ports, cfg):
    """The system calls run: the server at normal speed, strace -c attached
    for the measured run only."""
    txt = os.path.join(cfg.dir, f"strace.{server.key}.{wl}.txt")
    if os.path.exists(txt):
        os.unlink(txt)
    running, why = start(B, server, wl, ports, cfg)
    if why:
        return {"error": why}
    tracer = {}
    try:
        pid = running.proc.pid

        def on_sync(what):
            if what == "start":
                p = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", txt],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
                tracer["p"] = p
                ready, _, _ = select.select([p.stderr], [], [], 20)
                line = p.stderr.readline() if ready else ""
                if "attached" not in line:
                    return f"strace did not attach: {line.strip()[:200]}"
                time.sleep(0.1)
                return None
            time.sleep(cfg.strace_settle)
            p = tracer.get("p")
            if not p:
                return "strace was not started"
            p.send_signal(signal.SIGINT)
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                return "strace did not stop"
            return None

        args = loadgen_mode(wl, B) + ["--addr", f"127.0.0.1:{port_of(server, wl, ports)}",
                                   "--warmup", str(cfg.st_warmup), "--duration", str(cfg.st_duration)]
        res = run_synced(B, args, on_sync, cfg.st_warmup + cfg.st_duration + 150)
    finally:
        p = tracer.get("p")
        if p and p.poll() is None:
            p.kill()
            p.communicate()
        running.stop()
    if "error" in res:
        return res
    calls = parse_strace(txt)
    ops = ops_of(wl, res)
    if not calls or not ops:
        return {"error": f"nothing measured ({sum(calls.values()) if calls else 0} system calls, "
                         f"{ops} operations)"}
    total = sum(calls.values())
    return {"syscalls": total, "ops": ops, "sys_op": total / ops, "rate": ops / res["secs"],
            "per_op": sorted(((k, v / ops) for k, v in calls.items()), key=lambda kv: -kv[1]),
            "file": os.path.basename(txt)}


# Parsing ---------------------------------------------------------------------

def dump_total(path):
    """The Ir total of a callgrind dump (its totals: line, else summary:)."""
    total = summary = None
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                total = int(line.split()[1])
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    return total if total is not None else summary


def profile(path):
    """Self and inclusive Ir per function of a callgrind dump, highest first.

    Parsed here rather than with callgrind_annotate: its 3.19 counts the
    cost of a call made before `--zero` (a calls=0 line) as the caller's own,
    so that main and everything below it show 100 % self. Inclusive is self
    plus the calls made to other functions; a cycle (LuaJIT's bytecode
    handlers jump into each other, which callgrind counts as calls; names
    with a 'N are recursion levels) counts more than once, so functions whose
    inclusive cost exceeds the total, or that are in a recursion, are left
    out of that list, and so are those with 95 % of the total or more (main
    and the event loop around everything)."""
    names = {"ob": {}, "fn": {}, "fl": {}}
    kind_of = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn", "fl": "fl", "fi": "fl",
               "fe": "fl", "cfi": "fl", "cfl": "fl"}
    self_ir, calls_ir = {}, {}
    files = {}  # function -> its source file (the fl= before its fn=)
    fn = ob = fl = None
    call_ob = call_fn = None
    in_call = False
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                if in_call:
                    in_call = False
                    if call_fn != fn:
                        calls_ir[fn] = calls_ir.get(fn, 0) + cost
                else:
                    self_ir[fn] = self_ir.get(fn, 0) + cost
                continue
            key, eq, val = line.rstrip("\n").partition("=")
            if not eq:
                continue
            if key in kind_of:
                kind = kind_of[key]
                m = re.match(r"\((\d+)\)(?: (.*))?$", val)
                if m:
                    if m.group(2) is not None:
                        names[kind][m.group(1)] = m.group(2)
                    name = names[kind].get(m.group(1), "?")
                else:
                    name = val
                if key == "ob":
                    ob = name
                elif key == "fl":
                    fl = name
                elif key == "fn":
                    fn = f"{name} [{os.path.basename(ob or '?')}]"
                    files.setdefault(fn, fl or "")
                elif key == "cob":
                    call_ob = name
                elif key == "cfn":
                    call_fn = f"{name} [{os.path.basename(call_ob or ob or '?')}]"
            elif key == "calls":
                in_call = True
                call_ob = None
    total = sum(self_ir.values())
    incl = {k: self_ir.get(k, 0) + calls_ir.get(k, 0) for k in set(self_ir) | set(calls_ir)}
    incl = {k: v for k, v in incl.items() if v < 0.95 * total and "'" not in k.split(" [")[0]}
    order = lambda d: sorted(((k, v) for k, v in d.items() if k and v), key=lambda kv: -kv[1])
    return {"self": order(self_ir), "incl": order(incl), "files": files}


# The parts of a TLS server's cost, by function: its name, its object (the
# file name) and its source file, as callgrind has them; the first that
# matches. Functions of ring have its sources (ring-0.17.x/, its assembly
# and C included); OpenSSL's have only their object.
COMPONENTS = [
    ("crypto", "ring (its Rust, C and assembly), OpenSSL's libcrypto",
     lambda n, ob, fl: "/ring-" in fl or "ring_core_" in n or re.search(r"\bring::", n) is not None
     or ob.startswith("libcrypto")),
    ("TLS", "rustls, webpki, OpenSSL's libssl",
     lambda n, ob, fl: "/rustls" in fl or re.search(r"\b(rustls|webpki)\w*::", n) is not None
     or ob.startswith("libssl")),
    ("sock", "sock, sock-tls, the Lua module",
     lambda n, ob, fl: re.search(r"/sock(-tls|-lua)?/src/", fl) is not None
     or re.search(r"\bsock(_tls|_lua)?::", n) is not None or ob.startswith("sock.so")),
    ("libc", "libc (malloc, memcpy, the system call wrappers)",
     lambda n, ob, fl: ob.startswith("libc.so") or ob.startswith("libc-")),
    ("other", "the rest: the program and its HTTP handler, nginx itself, Rust's std and "
     "allocator, LuaJIT", lambda n, ob, fl: True),
]


def components(path, ops):
    """Self Ir per operation of a dump by component (COMPONENTS), or None."""
    try:
        prof = profile(path)
    except OSError:
        return None
    out = {k: 0 for k, _, _ in COMPONENTS}
    for name, v in prof["self"]:
        fn, _, ob = name.rpartition(" [")
        ob = ob.rstrip("]")
        fl = prof["files"].get(name, "")
        for k, _, test in COMPONENTS:
            if test(fn, ob, fl):
                out[k] += v / ops
                break
    return out


def parse_strace(path):
    """System call counts from `strace -c` output: {name: calls}."""
    calls = {}
    try:
        with open(path) as f:
            for line in f:
                t = line.split()
                if len(t) < 5 or t[-1] == "total" or not re.match(r"^[\d.]+$", t[0]):
                    continue
                # % time, seconds, usecs/call, calls, [errors], syscall
                try:
                    calls[t[-1]] = calls.get(t[-1], 0) + int(t[3])
                except ValueError:
                    pass
    except OSError:
        return {}
    return calls


# Driver ----------------------------------------------------------------------

def main(a, B):
    """bench.py --callgrind: runs every selected server under every selected
    workload of W1, W1b, W2, W3, W5, W6, W6r; writes CALLGRIND.md."""
    import argparse
    out = os.path.abspath(a.out or os.path.join(B.HERE, "out", "callgrind"))
    os.makedirs(out, exist_ok=True)
    work = os.path.join(B.HERE, "out")
    missing_tools = [t for t in ("valgrind", "callgrind_control", "strace") if not B.shutil.which(t)]
    if missing_tools:
        print(f"bench: --callgrind needs {', '.join(missing_tools)} (bash bench/run.sh --callgrind "
              "installs them)", file=B.sys.stderr)
        return 1
    cfg = argparse.Namespace(
        dir=out, work=work, start_timeout=120.0, settle=0.5, strace_settle=0.2, top=12,
        cg_warmup=a.warmup if a.warmup is not None else 2.0,
        cg_duration=a.duration or 3.0, st_warmup=0.5, st_duration=2.0)
    servers = [s for s in B.SERVERS if not a.servers or s.key in a.servers.split(",")]
    wls = [w for w in WORKLOADS if not a.workloads or w in a.workloads.split(",")]
    if a.workloads and any(w not in WORKLOADS for w in a.workloads.split(",")):
        print("bench: --callgrind runs W1, W1b, W2, W3, W5, W6 and W6r only (W4 measures memory)")
    unavailable = B.missing_servers(servers)
    tls_unavailable = B.missing_tls(servers, [w for w in B.WORKLOADS if w.key in wls], unavailable)
    ports = B.three_ports()
    t_start = time.time()
    cells = []
    host = lua_host(B)
    if not host:
        print("bench: no bench/out/bin/luajit-host: the Lua servers run under Debian's stripped "
              "luajit, LuaJIT's functions are bare addresses in their profiles")
    todo = [(w, s) for w in wls for s in servers
            if s.key not in unavailable and s.serves(w)]
    start_failures = {}
    for i, (w, s) in enumerate(todo, 1):
        if s.key in unavailable:
            continue
        t0 = time.time()
        tls = w in TLS
        if tls and s.key in tls_unavailable:
            cg = st = {"error": tls_unavailable[s.key]}
        else:
            cg = callgrind_cell(B, hosted(s, host), w, ports, cfg)
            st = strace_cell(B, hosted(s, host), w, ports, cfg)
        # Two failed starts: the server (its TLS part, in a TLS workload) is
        # missing from then on.
        if "server did not start" in cg.get("error", "") and "server did not start" in st.get("error", ""):
            start_failures[(s.key, tls)] = start_failures.get((s.key, tls), 0) + 1
            if start_failures[(s.key, tls)] >= 2:
                (tls_unavailable if tls else unavailable)[s.key] = cg["error"]
        cells.append({"workload": w, "server": s.key, "callgrind": cg, "strace": st})
        print(f"[{i}/{len(todo)}] {w:<3} {s.label:<21} " + describe(cg, st)
              + f" ({time.time() - t0:.0f} s)", flush=True)
    data = {"mode": "callgrind",
            "config": {"servers": [s.key for s in servers], "workloads": wls,
                       "cg_warmup": cfg.cg_warmup, "cg_duration": cfg.cg_duration,
                       "st_warmup": cfg.st_warmup, "st_duration": cfg.st_duration},
            "env": B.environment(), "tools": tool_versions(B), "lua_host": bool(host),
            "unavailable": unavailable,
            "cells": cells, "elapsed_s": time.time() - t_start}
    raw = os.path.join(out, "callgrind.json")
    with open(raw, "w") as f:
        json.dump(data, f, indent=1)
    md = os.path.join(out, "CALLGRIND.md")
    write_markdown(md, data, B)
    print(f"bench: {len(cells)} cells in {data['elapsed_s']:.0f} s; wrote {md} (raw: {raw}; "
          f"dumps: {out}/callgrind.out.*)")
    if cells and all("error" in c["callgrind"] and "error" in c["strace"] for c in cells):
        print("bench: every run failed: the harness is broken", file=B.sys.stderr)
        return 1
    return 0


def tool_versions(B):
    return {"valgrind": B.cmd_version(["valgrind", "--version"], r"valgrind-(\S+)"),
            "strace": B.cmd_version(["strace", "-V"], r"version (\S+)")}


def describe(cg, st):
    a = (f"FAILED: {cg['error']}" if "error" in cg
         else f"{cg['ir_op']:,.0f} Ir/op ({cg['ops']:,.0f} ops at {cg['rate']:,.0f}/s under callgrind)")
    b = (f"FAILED: {st['error']}" if "error" in st
         else f"{st['sys_op']:.2f} syscalls/op (" + ", ".join(
             f"{k} {v:.2f}" for k, v in st["per_op"][:3]) + ")")
    return f"{a}; {b}"


# Report ----------------------------------------------------------------------

def num(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def write_markdown(path, data, B):
    cfg, env = data["config"], data["env"]
    servers = [s for s in B.SERVERS if s.key in cfg["servers"]]
    wls = [w for w in WORKLOADS if w in cfg["workloads"]]
    short = {w.key: w.short for w in B.WORKLOADS}
    cell = {(c["workload"], c["server"]): c for c in data["cells"]}

    def ir_op(w, s):
        c = cell.get((w, s), {}).get("callgrind", {})
        return c.get("ir_op")

    def missing(w, s, part):
        if not s.serves(w):
            return "n/a"
        if s.key in data["unavailable"] and (w, s.key) not in cell:
            return "missing"
        c = cell.get((w, s.key), {}).get(part)
        return "failed" if c and "error" in c else "missing"

    L = ["# Instructions and system calls per operation\n"]
    L.append(f"Written by `bash bench/run.sh --callgrind` on {env['date']}; see bench/README.md "
             "(*The callgrind mode*). Unlike the CPU times of BENCHMARKS.md these counts do not "
             "depend on how busy the machine is: two runs of the compiled servers (C, Rust) "
             "agree to about 0.1 %; the LuaJIT servers' can differ by up to about 10 %, when "
             "LuaJIT compiles a different set of traces (which depends on the order of "
             "events). Lower is better. Kernel time is not in these instructions: the system "
             "calls per operation beside them are the other half of the cost.\n")
    L.append(f"- Machine: {env.get('cpu')}, {env.get('cpus')} CPUs, Linux {env.get('kernel')}; "
             f"servers pinned to CPU {B.SERVER_CPU}"
             + (f" (the 2-worker multicore servers to CPUs {B.SERVER_CPU} and {B.LOADGEN_CPU}; "
                "under valgrind their threads run one at a time)"
                if any(s.workers > 1 for s in servers) and B.SERVER_CPU != B.LOADGEN_CPU else "")
             + f", the load generator (bench/loadgen --sync) to CPU {B.LOADGEN_CPU}; all traffic "
             "on 127.0.0.1.")
    L.append(f"- Instructions: the server under valgrind {data['tools'].get('valgrind')} "
             f"--tool=callgrind, {cfg['cg_warmup']} s warm-up, then `callgrind_control --zero`, "
             f"{cfg['cg_duration']} s of load, `callgrind_control --dump`. Ir is every user-space "
             "instruction of the server's process (all threads, libc included, the kernel "
             "not), divided by the operations the load generator "
             "counted between zero and dump.")
    L.append(f"- System calls: a second run at normal speed, {cfg['st_warmup']} s warm-up, then "
             f"`strace -c -f -p PID` (strace {data['tools'].get('strace')}) attached for "
             f"{cfg['st_duration']} s of load; all the server's threads.")
    L.append("- An operation: " + "; ".join(f"{w} a {OPS[w]}" for w in wls) + ". W2 is driven by "
             "the load generator's http mode (64 keep-alive connections, one request in flight "
             "each), not wrk.")
    L.append("- The LuaJIT servers run under " + (
        "bench/out/bin/luajit-host (servers/lua/luajit_host.c): luajit linked with Debian's "
        "libluajit-5.1.a, the same LuaJIT with its function names, where /usr/bin/luajit is "
        "stripped." if data.get("lua_host") else "Debian's luajit, which is stripped: LuaJIT's "
        "own functions are bare addresses in the profiles.") + " Code without a symbol "
        "(`0x... [???]`) is LuaJIT's compiled traces.")
    L.append("- Callgrind counts an instruction with a `rep` prefix once per iteration: a memset "
             "or memcpy by `rep stosb`/`rep movsb` (glibc's choice for a few KiB and more) costs "
             "one Ir per byte here and much less on the CPU. Zeroing a 16 KiB buffer per "
             "connection shows as about 16,000 Ir in W3.")
    L.append(f"- Commit {env.get('commit')}; rustc {env['versions'].get('rustc')}, luajit "
             f"{env['versions'].get('luajit')}. Total {data['elapsed_s'] / 60:.1f} min.\n")

    def summary(title, value):
        """A table of every server by workload: `value(w, s)` is a cell's text."""
        L.append(f"## {title}\n")
        L.append("| server | " + " | ".join(short.get(w, w) for w in wls) + " |")
        L.append("|---|" + "---|" * len(wls))
        for s in servers:
            L.append("| " + " | ".join([s.label] + [value(w, s) for w in wls]) + " |")
        L.append("")

    def instructions(w, s):
        v, base = ir_op(w, s.key), ir_op(w, ref_of(w))
        if v is None:
            return missing(w, s, "callgrind")
        return f"{num(v)}" + (f" ({v / base:.2f}x)" if base else "")

    def syscalls(w, s):
        c = cell.get((w, s.key), {}).get("strace", {})
        return num(c["sys_op"]) if "sys_op" in c else missing(w, s, "strace")

    summary("Instructions per operation (× the C epoll server"
            + ("; TLS workloads: × nginx, the C server has no TLS" if any(w in TLS for w in wls)
               else "") + ")", instructions)
    summary("System calls per operation", syscalls)

    for w in wls:
        L.append(f"## {short.get(w, w)}: one operation is a {OPS[w]}\n")
        L.append(f"| server | Ir/op | × {'nginx' if w in TLS else 'C'} | syscalls/op | "
                 "top 3 syscalls per op | "
                 "ops/s under callgrind | ops counted (callgrind, strace) |")
        L.append("|---|---|---|---|---|---|---|")
        for s in servers:
            c = cell.get((w, s.key))
            if not c:
                L.append(f"| {s.label} | {missing(w, s, 'callgrind')} | | | | | |")
                continue
            cg, st = c["callgrind"], c["strace"]
            base = ir_op(w, ref_of(w))
            row = [s.label]
            if "error" in cg:
                row += ["failed", "", ""]
            else:
                row += [num(cg["ir_op"]), f"{cg['ir_op'] / base:.2f}x" if base else "–", ""]
            if "error" in st:
                row[3] = "failed"
                row += ["", ""]
            else:
                row[3] = num(st["sys_op"])
                row += [", ".join(f"{k} {v:.2f}" for k, v in st["per_op"][:3]), ""]
            row[5] = num(cg.get("rate"))
            row.append(f"{num(cg.get('ops'))}, {num(st.get('ops'))}")
            L.append("| " + " | ".join(row) + " |")
        L.append("")

    tls_wls = [w for w in wls if w in TLS]
    if tls_wls:
        L.append("## The TLS workloads by component\n")
        L.append("Self Ir per operation, summed by where the function is: "
                 + "; ".join(f"*{k}*: {what}" for k, what, _ in COMPONENTS)
                 + ". From the dumps in this folder (a function goes to the first part its "
                 "source file, name or object belongs to; generic code goes where its source "
                 "is). Under valgrind the CPU has no ADX and no SHA extensions (valgrind hides "
                 "them), so ring and OpenSSL take their generic X25519 and AVX SHA-256 code: "
                 "the handshake's crypto counts more instructions here than the same "
                 "libraries run natively.\n")
        names = [k for k, _, _ in COMPONENTS]
        L.append("| workload | server | Ir/op | " + " | ".join(names) + " |")
        L.append("|---|---|---|" + "---|" * len(names))
        for w in tls_wls:
            for s in servers:
                cg = cell.get((w, s.key), {}).get("callgrind", {})
                if "dump" not in cg:
                    continue
                comp = components(os.path.join(os.path.dirname(path), cg["dump"]), cg["ops"])
                if not comp:
                    continue
                L.append(f"| {short.get(w, w)} | {s.label} | {num(cg['ir_op'])} | " + " | ".join(
                    f"{num(comp[k])} ({comp[k] / cg['ir_op'] * 100:.0f} %)" for k in names) + " |")
        L.append("")

    L.append("## Where the instructions go\n")
    L.append("Per cell, the functions with the most instructions of their own (self Ir per "
             "operation), from the dump in this folder; `???` or a bare address is code without "
             "a symbol, e.g. LuaJIT's compiled traces. More: "
             "`callgrind_annotate --inclusive=yes callgrind.out.SERVER.W`, or kcachegrind. "
             "(callgrind_annotate 3.19's self column is wrong for these dumps: it counts the "
             "calls made before the zero as their caller's own.)\n")
    for w in wls:
        L.append(f"<details><summary>{short.get(w, w)}</summary>\n")
        for s in servers:
            cg = cell.get((w, s.key), {}).get("callgrind", {})
            if "top_self" not in cg:
                continue
            L.append(f"**{s.label}** ({num(cg['ir_op'])} Ir/op, `{cg['dump']}`)\n")
            L.append("| self Ir/op | function |")
            L.append("|---|---|")
            for name, v in cg["top_self"][:8]:
                L.append(f"| {num(v)} | `{name[:140]}` |")
            L.append("")
        L.append("</details>\n")

    miss = []
    for s in servers:
        if s.key in data["unavailable"]:
            miss.append(f"- **{s.label}**: {data['unavailable'][s.key]}")
    for c in data["cells"]:
        for part in ("callgrind", "strace"):
            if "error" in c[part]:
                miss.append(f"- {B.label_of(c['server'])}, {c['workload']} ({part}): "
                            f"{c[part]['error']}")
    L.append("## Missing and failed\n")
    L.append("\n".join(miss) if miss else "Nothing: every server ran every workload it serves.")
    L.append("")
    L.append("nginx+lua serves HTTP only (W2, W3); nginx (no module) HTTP and HTTPS (W2, W3, W5, "
             "W6, W6r); both run with `master_process off` here, the one process doing what the "
             "worker does in the other runs. The TLS workloads run on sock's servers and nginx; "
             "their handshake: TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, the ECDSA P-256 "
             "certificate of bench/run.sh.\n")
    with open(path, "w") as f:
        f.write("\n".join(L))
