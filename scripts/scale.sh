#!/usr/bin/env bash
# scale.sh: the scale and soak runs of the LuaJIT module, each in its own
# processes (a server and a client, on loopback):
#
#   15,000 connections open at once in one LuaJIT server, a line echoed on
#   each; connect/request/close cycles (the server closing first), with the
#   server's descriptors and resident memory flat after the first tenth;
#   100,000 pending deadlines firing in order.
#
#   bash scripts/scale.sh            # the CI form: 100,000 cycles
#   bash scripts/scale.sh --full     # 1,000,000 cycles (the soak)
#
# Uses the release module of scripts/build-lua.sh (target/lua, built if
# missing). Needs 15,100 descriptors per process: the soft limit is raised to
# the hard one; below that the connection run says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

cycles=100000
conns=15000
deadlines=100000
for a in "$@"; do
    case "$a" in
        --full) cycles=1000000 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "scale.sh: unknown argument '$a'" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
if [ ! -e "$target/lua/sock.so" ]; then bash scripts/build-lua.sh >/dev/null; fi
export LUA_CPATH="$target/lua/?.so;;"
dir=sock-lua/tests/scale

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tmp=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

start_server() {
    luajit "$dir/server.lua" >"$tmp/port" 2>"$tmp/server.err" &
    server=$!
    for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        sleep 0.05
    done
    port=$(head -n1 "$tmp/port")
    [ -n "$port" ] || { echo "scale.sh: the server did not start" >&2; cat "$tmp/server.err" >&2; exit 1; }
}

stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
}

limit=$(ulimit -n)
if [ "$limit" = unlimited ] || [ "$limit" -ge $((conns + 100)) ]; then
    start_server
    timeout 120 luajit "$dir/client.lua" conns "$conns" "$port"
    stop_server
else
    echo "conns: skipped: $limit descriptors allowed, $((conns + 100)) needed"
fi

start_server
timeout 1200 luajit "$dir/client.lua" cycles "$cycles" "$port" "$server"
stop_server

timeout 120 luajit "$dir/client.lua" deadlines "$deadlines"
