#!/usr/bin/env bash
# Runs every fuzz target for a short time (default 30 s each) from the committed seeds.
# The corpus is copied to a temporary directory, so nothing is written into the repository.
# Needs a nightly toolchain and cargo-fuzz; prints a skip line and exits 0 without them.
# Usage: fuzz/run.sh [seconds per target] | fuzz/run.sh --build-only (install and build, no run)
set -euo pipefail
secs="${1:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
if ! rustup toolchain list 2>/dev/null | grep -q nightly; then
    echo "fuzz: SKIP (no nightly toolchain; install with 'rustup toolchain install nightly')"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    if ! cargo install --quiet --locked cargo-fuzz; then
        echo "fuzz: SKIP (cargo-fuzz could not be installed)"
        exit 0
    fi
fi
if [ "$secs" = "--build-only" ]; then
    cd "$here"
    cargo +nightly fuzz build
    echo "fuzz: built"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"; rmdir "$here"/artifacts/* "$here"/artifacts 2>/dev/null || true' EXIT
cd "$here"
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$target"
    cp -r "seeds/$target/." "$work/$target/"
    echo "fuzz: $target for ${secs}s"
    cargo +nightly fuzz run "$target" "$work/$target" -- \
        -max_total_time="$secs" -artifact_prefix="$work/" -max_len=8192
done
echo "fuzz: OK"
