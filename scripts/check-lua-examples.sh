#!/usr/bin/env bash
# Runs every Lua example against the built module, to keep them working:
#
# * every ```lua block of docs/lua-api.md, each as its own program: it must
#   exit 0 and write nothing to stderr (an error in a sock thread is reported
#   on stderr, not by the exit status);
# * examples/lua/: udp_echo.lua, lines.lua and a short demo.lua run to their
#   end; echo_server.lua is checked with echo_client.lua, http_hello.lua with
#   curl (and a short wrk run when wrk is installed), multicore.lua (two
#   worker OS threads) with curl; the servers are stopped.
#
#   bash scripts/check-lua-examples.sh          # builds the module first
#   bash scripts/check-lua-examples.sh --no-build
#
# Everything runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "check-lua-examples.sh: unknown argument '$a'" >&2; exit 2 ;;
    esac
done

if [ "$build" = 1 ]; then bash scripts/build-lua.sh >/dev/null; fi
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
export LUA_CPATH="$target/lua/?.so;;"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

failed=0
pass() { printf 'ok      %s\n' "$*"; }
fail() { printf 'FAILED  %s\n' "$*"; failed=1; }

# Runs a Lua program (file, then args): exit 0 and an empty stderr.
run() {
    local name=$1; shift
    if timeout 60 luajit "$@" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ]; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/    | /' "$tmp/out" "$tmp/err" | tail -n 30
    fi
}

# 1. The blocks of docs/lua-api.md.
awk -v dir="$tmp" '
    /^```lua[ \t]*$/ { n++; file = sprintf("%s/doc%02d.lua", dir, n); start = NR + 1; inblock = 1; next }
    /^```/ && inblock { inblock = 0; close(file); print file ":" start; next }
    inblock { print > file }
' docs/lua-api.md >"$tmp/blocks"
while IFS=: read -r file line; do
    run "docs/lua-api.md, the block at line $line" "$file"
done <"$tmp/blocks"

# 2. The examples that end by themselves.
run "examples/lua/udp_echo.lua" examples/lua/udp_echo.lua 100
run "examples/lua/lines.lua" examples/lua/lines.lua
run "examples/lua/demo.lua (20 clients, 0.3 s)" examples/lua/demo.lua 20 0.3

# Starts a server (file, args...) that prints its address; sets $port.
start_server() {
    local log=$tmp/$(basename "$1").log
    luajit "$@" >"$log" 2>&1 &
    pids+=($!)
    port=""
    for _ in $(seq 50); do
        port=$(grep -o -m1 ':[0-9][0-9]*' "$log" | tr -d : || true)
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    cat "$log" >&2
    return 1
}

# 3. The echo server, with the echo client.
if start_server examples/lua/echo_server.lua 0; then
    run "examples/lua/echo_client.lua against echo_server.lua" \
        examples/lua/echo_client.lua "$port" 2000
else
    fail "examples/lua/echo_server.lua did not start"
fi

# 4. The HTTP server, with curl and wrk.
if start_server examples/lua/http_hello.lua 0; then
    url="http://127.0.0.1:$port/"
    if command -v curl >/dev/null; then
        body=$(curl -s --max-time 5 "$url" "$url" -H 'Connection: keep-alive' || true)
        closed=$(curl -si --max-time 5 -H 'Connection: close' "$url" || true)
        if [ "$body" = "Hello, world!Hello, world!" ] \
            && grep -q 'Connection: close' <<<"$closed"; then
            pass "examples/lua/http_hello.lua with curl"
        else
            fail "examples/lua/http_hello.lua with curl: '$body'"
        fi
    else
        echo "skipped: http_hello.lua with curl (no curl)"
    fi
    if command -v wrk >/dev/null; then
        out=$(wrk -t1 -c16 -d1s "$url" 2>&1 || true)
        if grep -q 'requests in' <<<"$out" && ! grep -q -E 'Socket errors|Non-2xx' <<<"$out"; then
            pass "examples/lua/http_hello.lua with wrk ($(grep 'Requests/sec' <<<"$out" | tr -s ' '))"
        else
            fail "examples/lua/http_hello.lua with wrk"
            echo "$out" | sed 's/^/    | /'
        fi
    else
        echo "skipped: http_hello.lua with wrk (no wrk)"
    fi
else
    fail "examples/lua/http_hello.lua did not start"
fi

# 5. The multi-core server: two workers (OS threads) for 2 s, with curl; it
# prints each worker's count and the total when it stops by itself.
port=$(luajit -e "local s = require'sock'.tcp(); s:listen('127.0.0.1', 0); print(s:getsockname():port())")
log=$tmp/multicore.log
timeout 30 luajit examples/lua/multicore.lua 2 "$port" 2 >"$log" 2>&1 &
mc=$!
got=""
if command -v curl >/dev/null; then
    for _ in $(seq 40); do
        got=$(curl -s --max-time 2 "http://127.0.0.1:$port/" "http://127.0.0.1:$port/" || true)
        [ -n "$got" ] && break
        sleep 0.05
    done
fi
if wait "$mc" && grep -q '^total: ' "$log" && grep -q '^worker 2: ' "$log" \
    && { [ -z "$got" ] && ! command -v curl >/dev/null || [ "$got" = "Hello, world!Hello, world!" ]; }; then
    pass "examples/lua/multicore.lua (2 workers: $(grep '^total' "$log"))"
else
    fail "examples/lua/multicore.lua: '$got'"
    sed 's/^/    | /' "$log"
fi

if [ "$failed" = 0 ]; then echo "all Lua examples work"; else echo "some Lua examples failed"; fi
exit "$failed"
