#!/usr/bin/env bash
# Runs every check and test of the project, as CI does: formatting, lints, docs,
# the reliability table, doc tests, the demo, and the whole test suite once
# with each poller backend.
# It installs what it needs (luajit, python3, openssl and curl for the TLS
# interop tests, cargo-nextest, rustfmt, clippy if missing) by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

missing=()
for p in luajit openssl curl python3; do
    command -v "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]} (Debian packages)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
        step "installing $c"
        rustup component add "$c"
    fi
done

step "format"
cargo fmt --all --check

step "clippy (epoll backend, then portable backend)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p sock --all-targets --features portable -- -D warnings

step "rustdoc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "reliability checklist (docs/reliability.md names tests that exist)"
python3 scripts/check-reliability.py

step "doc tests"
cargo test -p sock -p sock-tls --doc

step "demo (short run)"
cargo run --release -q -p sock-examples --example demo -- 50 0.3

step "HTTPS example (short run)"
cargo run --release -q -p sock-examples --example https -- 200

step "Lua module and its examples (release build)"
bash scripts/check-lua-examples.sh

step "scale and soak (LuaJIT: 15,000 connections, 100,000 cycles, 100,000 deadlines)"
bash scripts/scale.sh

step "test suite, portable backend (polling crate)"
cargo nextest run -p sock --features portable

step "test suite, epoll backend"
cargo nextest run --workspace
