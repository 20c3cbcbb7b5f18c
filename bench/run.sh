#!/usr/bin/env bash
# The benchmark harness, end to end: installs or builds every peer, runs every
# server under every workload in interleaved rounds, and writes BENCHMARKS.md
# with a PNG chart.
#
#   bash bench/run.sh            # 4 rounds of 2 s runs (about 10 minutes):
#                                # writes bench/BENCHMARKS.md, bench/benchmarks.png
#   bash bench/run.sh --quick    # 1 round of 1 s runs (about 80 s), for CI:
#                                # writes bench/out/quick/BENCHMARKS.md and .png
#   bash bench/run.sh --callgrind  # instructions (callgrind) and system calls
#                                # (strace) per operation, W1-W3 and the TLS
#                                # W5, W6, W6r, about 10 min: writes
#                                # bench/out/callgrind/CALLGRIND.md and the
#                                # dumps (not for CI)
#   bash bench/run.sh --soak     # the soak of scripts/scale.sh at full
#                                # length: 1,000,000 connect/request/close
#                                # cycles on the LuaJIT module, descriptors
#                                # and memory flat (CI runs 100,000)
#
# Further options go to bench/bench.py (--rounds N, --duration S, --servers
# c,sock-rust,..., --workloads W1,W2,..., --out DIR; --help lists them).
# --callgrind also installs valgrind, strace and libluajit-5.1-dev, and builds
# bench/out/bin/luajit-host (luajit with LuaJIT's symbols, for the profiles).
#
# Installs with apt-get (Debian): luajit, lua-luv, lua-cqueues, lua-socket,
# lua-copas, nginx, wrk, openssl, and unpacks libnginx-mod-http-lua in bench/out (its
# luajit2 cannot be installed beside Debian's luajit); builds with cargo the
# load generator and the Rust servers (bench/ is a workspace of its own, its
# target folder bench/target), with gcc the C server, with scripts/build-lua.sh
# the LuaJIT module, with cargo in the repository's workspace the multicore
# example; makes the TLS workloads' certificate with openssl (a new one at
# every run, in bench/out/tls: self-signed ECDSA P-256 for localhost and
# 127.0.0.1); installs matplotlib from PyPI in bench/out/venv for the chart. A
# peer that fails to install, build or start is reported as missing in
# BENCHMARKS.md; the exit status is non-zero only when the harness itself
# cannot run (no load generator, no Python).
set -uo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
OUT=$BENCH/out
mkdir -p "$OUT/logs" "$OUT/bin"
SETUP_LOG=$OUT/logs/setup.log
: >"$SETUP_LOG"

callgrind=0
for a in "$@"; do
    case "$a" in
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; exit 0 ;;
        --callgrind) callgrind=1 ;;
        --soak) exec bash "$ROOT/scripts/scale.sh" --full ;;
    esac
done

export CARGO_TERM_COLOR=never
step() { printf '==> %s\n' "$*"; }
warn() { printf 'bench/run.sh: %s\n' "$*" >&2; }
# Runs a command with its output in the setup log; prints the log's tail if
# it fails.
logged() {
    printf '\n$ %s\n' "$*" >>"$SETUP_LOG"
    if "$@" >>"$SETUP_LOG" 2>&1; then return 0; fi
    warn "failed: $* (see $SETUP_LOG)"
    tail -n 5 "$SETUP_LOG" | sed 's/^/    /' >&2
    return 1
}

t0=$(date +%s)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# 1. Debian packages ------------------------------------------------------------
# Each group is installed on its own, so that one that fails leaves the others.
groups=(
    "luajit:luajit"
    "lua-luv:lua-luv"
    "lua-cqueues:lua-cqueues"
    "lua-socket lua-copas:lua-socket lua-copas"
    "nginx libpcre3:nginx libpcre3"
    "wrk:wrk"
    "openssl:openssl"
    "gcc:gcc"
    "python3:python3"
)
if [ "$callgrind" = 1 ]; then
    groups+=("valgrind:valgrind" "strace:strace" "libluajit-5.1-dev:libluajit-5.1-dev")
fi
missing_pkgs() { # the packages of a list that are not installed
    for p in $1; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$p"
    done
}
need=""
for g in "${groups[@]}"; do need+=$(missing_pkgs "${g%%:*}"); done
if [ -n "$need" ]; then
    step "installing Debian packages: $need"
    if command -v apt-get >/dev/null 2>&1; then
        logged $sudo apt-get update -qq || true
        # Keep apt from starting services (nginx would listen on port 80):
        # a policy-rc.d of our own, only if there is none, removed after.
        policy=/usr/sbin/policy-rc.d
        made_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && made_policy=1
        fi
        for g in "${groups[@]}"; do
            pkgs=$(missing_pkgs "${g%%:*}")
            [ -z "$pkgs" ] && continue
            # shellcheck disable=SC2086
            logged $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends $pkgs || warn "could not install: $pkgs"
        done
        if [ "$made_policy" = 1 ]; then $sudo rm -f "$policy"; fi
    else
        warn "no apt-get: cannot install $need"
    fi
fi

# nginx's Lua module: Debian's libnginx-mod-http-lua depends on luajit2
# (libluajit2-5.1-2), which conflicts with the libluajit-5.1-2 of luajit and
# wrk. So it is downloaded and unpacked here, not installed; bench.py starts
# nginx with LD_LIBRARY_PATH on the unpacked luajit2.
NGX=$OUT/nginx-lua
if [ ! -e "$NGX/root/usr/lib/nginx/modules/ngx_http_lua_module.so" ] && command -v nginx >/dev/null 2>&1; then
    step "unpacking nginx's Lua module (libnginx-mod-http-lua and its dependencies)"
    rm -rf "$NGX" && mkdir -p "$NGX/debs"
    chmod 777 "$NGX/debs" 2>/dev/null || true # apt's _apt user downloads there
    if (cd "$NGX/debs" && logged apt-get download libnginx-mod-http-ndk libnginx-mod-http-lua \
        lua-resty-core lua-resty-lrucache libluajit2-5.1-2); then
        for d in "$NGX"/debs/*.deb; do logged dpkg-deb -x "$d" "$NGX/root" || true; done
    else
        warn "nginx+lua will be missing"
    fi
fi

# 2. Builds ------------------------------------------------------------------------
step "building the C server (gcc -O2)"
if command -v gcc >/dev/null 2>&1; then
    logged gcc -O2 -Wall -Wextra -o "$OUT/bin/epoll_server" "$BENCH/servers/c/epoll_server.c" ||
        rm -f "$OUT/bin/epoll_server"
else
    warn "no gcc: the C server will be missing"
fi

if [ "$callgrind" = 1 ]; then
    # The Lua servers' luajit, with the names of LuaJIT's functions (Debian's
    # /usr/bin/luajit is stripped): linked with the static library of the same
    # build. Without it they run under luajit, their profiles less readable.
    step "building luajit-host (luajit with LuaJIT's symbols, for the callgrind profiles)"
    lj_a=$(ls /usr/lib/*/libluajit-5.1.a /usr/lib/libluajit-5.1.a 2>/dev/null | head -n 1)
    lj_inc=$(pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
    rm -f "$OUT/bin/luajit-host"
    if [ -n "$lj_a" ] && command -v gcc >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        logged gcc -O2 -Wall -Wextra -o "$OUT/bin/luajit-host" "$BENCH/servers/lua/luajit_host.c" \
            $lj_inc "$lj_a" -lm -ldl -Wl,-E || rm -f "$OUT/bin/luajit-host"
    else
        warn "no libluajit-5.1.a (libluajit-5.1-dev) or no gcc: the Lua servers run under luajit"
    fi
fi

step "building the load generator and the Rust servers (cargo, bench/ workspace)"
if ! command -v cargo >/dev/null 2>&1; then
    warn "cargo is not installed: the harness cannot run"
    exit 1
fi
if ! (cd "$BENCH" && logged cargo build --release -p bench-loadgen); then
    warn "the load generator does not build: the harness cannot run"
    exit 1
fi
rm -f "$BENCH/target/release/sock-server" "$BENCH/target/release/tokio-server"
(cd "$BENCH" && logged cargo build --release -p bench-servers --no-default-features --features sock \
    --bin sock-server) || warn "sock (Rust) will be missing"
(cd "$BENCH" && logged cargo build --release -p bench-servers --no-default-features --features tokio \
    --bin tokio-server) || warn "tokio will be missing"

step "building the LuaJIT module (scripts/build-lua.sh)"
rm -f "$ROOT/target/lua/sock.so"
logged bash "$ROOT/scripts/build-lua.sh" || warn "sock (LuaJIT) will be missing"

# The multicore example servers (bench.py's sock-rust-mc*; the LuaJIT ones
# run examples/lua/multicore.lua with the module above): the repository's own
# workspace, so its target folder.
step "building the multicore example (cargo, the repository's workspace)"
rm -f "$ROOT/target/release/examples/multicore"
(cd "$ROOT" && logged cargo build --release -j 2 -p sock-examples --example multicore) ||
    warn "sock (Rust) multicore will be missing"

# The TLS workloads' certificate (W5, W6, W6r): one self-signed ECDSA P-256
# certificate for localhost and 127.0.0.1 (not a CA: the load generator
# trusts it as it is), made anew at every run, never committed (bench/out is
# ignored). Every TLS server uses it; without it the TLS runs fail.
step "making the TLS certificate (openssl: ECDSA P-256, bench/out/tls)"
mkdir -p "$OUT/tls"
rm -f "$OUT/tls/cert.pem" "$OUT/tls/key.pem"
if command -v openssl >/dev/null 2>&1; then
    logged openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" ||
        { rm -f "$OUT/tls/cert.pem" "$OUT/tls/key.pem"; warn "the TLS workloads will fail"; }
else
    warn "no openssl: the TLS workloads will fail"
fi

# 3. The chart's Python ------------------------------------------------------------
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then
    warn "no python3: the harness cannot run"
    exit 1
fi
CHART_PY=""
if [ "$callgrind" = 1 ]; then
    : # no chart in the callgrind mode
elif "$PY" -c 'import matplotlib' >/dev/null 2>&1; then
    CHART_PY=$PY
elif [ -x "$OUT/venv/bin/python" ] && "$OUT/venv/bin/python" -c 'import matplotlib' >/dev/null 2>&1; then
    CHART_PY=$OUT/venv/bin/python
else
    step "installing matplotlib (PyPI) in bench/out/venv"
    if logged "$PY" -m venv "$OUT/venv" && logged "$OUT/venv/bin/pip" install -q matplotlib; then
        CHART_PY=$OUT/venv/bin/python
    elif command -v apt-get >/dev/null 2>&1 &&
        logged $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib &&
        /usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1; then
        CHART_PY=/usr/bin/python3
    else
        warn "no matplotlib: BENCHMARKS.md will have no chart"
    fi
fi

# 4. Run ---------------------------------------------------------------------------------
# W4 holds 10,000 connections: as many descriptors as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
t1=$(date +%s)
step "setup took $((t1 - t0)) s; running the benchmarks"
"$PY" "$BENCH/bench.py" --chart-python "$CHART_PY" "$@"
status=$?
step "bench/run.sh took $(($(date +%s) - t0)) s"
exit $status
