#!/usr/bin/env bash
# The main demo, in LuaJIT: builds the module (scripts/build-lua.sh, which
# installs luajit if it is missing), then runs examples/lua/demo.lua: an echo
# server and many client threads in one process on loopback, printing progress
# and the throughput reached. Arguments go to the demo.
#
#   bash scripts/demo-lua.sh                # 200 clients, 2 s per phase
#   bash scripts/demo-lua.sh 1000 5         # [clients] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

# The build's own messages (and the LUA_CPATH hint it prints) go to stderr, so
# that the demo's output alone is on stdout.
bash scripts/build-lua.sh >&2

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

printf '==> luajit examples/lua/demo.lua %s\n' "$*" >&2
LUA_CPATH="$target/lua/?.so;;" exec luajit examples/lua/demo.lua "$@"
