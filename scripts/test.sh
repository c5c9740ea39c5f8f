#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + golden + end-to-end tests, example configs
# through `aralez check`, fuzz seed replay (inside `cargo test`) and a short fuzz run per target
# when a nightly toolchain is present. Usage: scripts/test.sh [--no-fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh cmake build-essential pkg-config curl openssl
# clients and servers of the TLS/protocol end-to-end tests (tests/helpers/*.py)
python3 -c "import grpc, websockets, h2" 2>/dev/null || pip install --quiet grpcio websockets h2

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (unit, golden fixtures, fuzz seed replay, end to end)"
cargo test --workspace 2>&1 | tee target/test-output.txt
grep -q "test result" target/test-output.txt

step "example configs through aralez check"
bin=target/debug/aralez
"$bin" check --main examples/main.yaml
"$bin" check --syntax-only --deny-warnings examples/upstreams.yaml
# the Aralez README's own examples (copies in the compiler's fixtures) are accepted as they are
"$bin" check compiler/tests/fixtures/seed_upstreams.yaml compiler/tests/fixtures/seed_upstreams_bench.yaml
"$bin" version

step "no openssl in the default build"
if cargo tree -e normal -i openssl-sys >/dev/null 2>&1; then
  echo "openssl-sys is in the default dependency tree" >&2
  exit 1
fi
echo "ok: no openssl-sys"

step "static musl release build"
if rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
  bash scripts/deps.sh musl-tools
  cargo build --release --target x86_64-unknown-linux-musl --bin aralez
  file target/x86_64-unknown-linux-musl/release/aralez || true
else
  echo "musl: SKIP (the x86_64-unknown-linux-musl target is not installed on this toolchain and cannot be downloaded here)"
fi

step "openssl feature: build, and the TLS and protocol end-to-end suites against it"
# a separate target dir: the feature switch would otherwise rebuild pingora back and forth
if bash scripts/deps.sh libssl-dev; then
  cargo build --no-default-features --features openssl --target-dir target/openssl
  cargo test --no-default-features --features openssl --target-dir target/openssl \
    --test e2e -- tls:: protocols::
else
  echo "SKIP: libssl-dev is missing and cannot be installed here; openssl feature not built" >&2
fi

if [ "${1:-}" != "--no-fuzz" ]; then
  step "fuzz targets, briefly"
  bash fuzz/run.sh 20
fi

step "done"
