#!/usr/bin/env bash
# Builds the LuaJIT module `sock` (crate sock-lua) in release mode, copies it to
# target/lua/sock.so, checks that luajit loads it, and prints the LUA_CPATH to use.
#
#   bash scripts/build-lua.sh             # build target/lua/sock.so
#   bash scripts/build-lua.sh --install   # ... and copy it into LuaJIT's C path
#                                         # (/usr/local/lib/lua/5.1/sock.so), so
#                                         # that plain `luajit` finds require'sock'
#
# Installs luajit with apt-get when it is missing (the build itself needs only
# cargo: the module takes the lua_* symbols from the luajit that loads it).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

install=0
for a in "$@"; do
    case "$a" in
        --install) install=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-lua.sh: unknown argument '$a'" >&2; usage >&2; exit 2 ;;
    esac
done

step() { printf '==> %s\n' "$*"; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if ! command -v luajit >/dev/null 2>&1; then
    step "installing luajit (apt-get)"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq luajit
fi

step "cargo build --release -p sock-lua"
cargo build --release -p sock-lua

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
mkdir -p "$target/lua"
cp "$target/release/libsock_lua.so" "$target/lua/sock.so"
# require'sock_tls' and require'sock_libtls' (the original's name) open the
# same library through links (one copy of the module in the process).
ln -sf sock.so "$target/lua/sock_tls.so"
ln -sf sock.so "$target/lua/sock_libtls.so"
step "built $target/lua/sock.so"

# Load it from a folder without a ./sock.so, so only LUA_CPATH can find it.
check='local sock = require"sock"; assert(sock.addr("127.0.0.1", 1):tostring() == "127.0.0.1:1")'
(cd / && LUA_CPATH="$target/lua/?.so" luajit -e "$check")

if [ "$install" = 1 ]; then
    # The system C folder in luajit's default package.cpath.
    dest=$(cd / && env -u LUA_CPATH luajit -e '
        for p in package.cpath:gmatch("[^;]+") do
            local d = p:match("^(/usr/local/lib/lua/5%.1)/%?%.so$")
            if d then print(d) return end
        end')
    dest="${dest:-/usr/local/lib/lua/5.1}"
    $sudo mkdir -p "$dest"
    $sudo install -m 0644 "$target/lua/sock.so" "$dest/sock.so"
    $sudo ln -sf sock.so "$dest/sock_tls.so"
    $sudo ln -sf sock.so "$dest/sock_libtls.so"
    (cd / && env -u LUA_CPATH luajit -e "$check")
    step "installed $dest/sock.so: luajit -e \"require'sock'\" works from anywhere"
else
    echo "To use it, set:"
    echo "export LUA_CPATH='$target/lua/?.so;;'"
fi
