#!/usr/bin/env bash
# memcheck.sh: the Rust test suites (sock, sock-tls) and the Lua suite under
# valgrind's memcheck; fails on any memcheck error. Not part of
# scripts/test.sh (about 15 minutes); run it by hand or as a CI mode:
#
#   bash scripts/memcheck.sh
#
# Under valgrind everything runs ten to fifty times slower. The tests'
# watchdogs are scaled (SOCK_TEST_TIME_SCALE=20), their own deadlines are
# not: a test that asserts a timing may fail there. Such failures are
# listed, and do not fail the run: what this run checks is memcheck's error
# count (invalid reads and writes, uses of uninitialised values, bad frees,
# mismatched allocations), which must be 0 in every process.
#
# scripts/memcheck.supp holds the suppressions, each with the reason it is
# not a fault of sock (today: memcheck's imprecise model of the AES-GCM
# assembly of ring, under TLS). LuaJIT runs clean without any. Leaks are not
# checked: the loops' thread-local state, the resolver pool and LuaJIT's own
# allocator live until the process exits by design.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind
fi
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export SOCK_TEST_TIME_SCALE=20
logs=$(mktemp -d)
vg=(valgrind -q --error-exitcode=99 --child-silent-after-fork=yes
    --suppressions="$PWD/scripts/memcheck.supp" --log-file="$logs/vg.%p.log")

step() { printf '\n==> %s\n' "$*"; }

step "building the test binaries"
cargo test -p sock -p sock-tls --tests --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bin"]:
        print(m["executable"])' >"$logs/binaries"
bash scripts/build-lua.sh >/dev/null

failed_tests=()
step "Rust suites under memcheck ($(wc -l <"$logs/binaries") binaries)"
while read -r bin; do
    name=$(basename "$bin")
    if "${vg[@]}" "$bin" --test-threads=2 -q >"$logs/$name.out" 2>&1; then
        printf 'ok      %s\n' "$name"
    else
        printf 'failing %s (see below)\n' "$name"
        failed_tests+=("$name")
    fi
done <"$logs/binaries"

step "Lua suite under memcheck"
if LUA_CPATH="$PWD/target/lua/?.so;;" "${vg[@]}" luajit sock-lua/tests/lua/run.lua \
    >"$logs/lua.out" 2>&1; then
    echo "ok      lua suite: $(tail -n1 "$logs/lua.out")"
else
    echo "failing lua suite: $(tail -n1 "$logs/lua.out")"
    failed_tests+=(lua)
fi

step "memcheck's findings"
errors=0
for f in "$logs"/vg.*.log; do
    [ -s "$f" ] || continue
    errors=1
    echo "--- $f"
    head -n 60 "$f"
done
for t in "${failed_tests[@]}"; do
    echo "--- test failures of $t (timing under valgrind, unless memcheck reported above):"
    grep -E "^test .* FAILED|^not ok|panicked at" "$logs/$t.out" 2>/dev/null | head -n 20 || true
done
if [ "$errors" = 1 ]; then
    echo "memcheck: errors found (logs in $logs)"
    exit 1
fi
echo "memcheck: no error in any process (${#failed_tests[@]} suite(s) with test failures listed above)"
