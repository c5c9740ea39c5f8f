#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + golden + end-to-end tests, example configs
# through `aralez check`, fuzz seed replay (inside `cargo test`) and a short fuzz run per target
# when a nightly toolchain is present. Usage: scripts/test.sh [--no-fuzz] [--static-release]
set -euo pipefail
cd "$(dirname "$0")/.."
# every system package of every step, up front: the static build runs in the background and two
# apt-get runs at once would fight over dpkg's lock
bash scripts/deps.sh cmake build-essential pkg-config curl openssl file libssl-dev pebble \
  rustc-web cargo-web rust-web-src buildah ca-certificates iproute2 util-linux procps \
  redis-server wrk nginx-light
# clients and servers of the TLS/protocol end-to-end tests (tests/helpers/*.py); zig for the
# static build
python3 -c "import grpc, websockets, h2" 2>/dev/null || pip install --quiet grpcio websockets h2
python3 -c "import ziglang" 2>/dev/null || pip install --quiet ziglang

# The static musl binary: CI builds it with the unoptimised `static-ci` profile (same toolchain,
# sysroot and static linking), `--static-release` with the shipped release profile. It is mostly
# one core of serial work (zig building musl's libc, cmake's checks, the link), so it starts now,
# in the background, and its step below waits for it.
static_profile=static-ci
case " $* " in *" --static-release "*) static_profile=release ;; esac
static_bin=$PWD/target/x86_64-unknown-linux-musl/$static_profile/aralez
mkdir -p target
rm -f target/static-build.rc
( STATIC_PROFILE=$static_profile bash scripts/build-static.sh > target/static-build.log 2>&1
  echo $? > target/static-build.rc ) &
static_job=$!
trap 'kill $static_job 2>/dev/null || true' EXIT
static_started=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
# the heap-profiling build (libc allocator, docs/performance.md) must keep compiling
cargo clippy --bin aralez --features system-allocator -- -D warnings

step "cargo test --no-run (the test binaries, while the static build runs)"
cargo test --workspace --no-run

# the OpenSSL build too: the static build is mostly one core by now, the other one is free
step "openssl feature: build (its TLS and protocol suites run later)"
# a separate target dir: the feature switch would otherwise rebuild pingora back and forth
openssl=no
if dpkg -s libssl-dev >/dev/null 2>&1; then
  openssl=yes
  cargo build --no-default-features --features openssl --target-dir target/openssl
  cargo test --no-default-features --features openssl --target-dir target/openssl \
    --test e2e --no-run
else
  echo "SKIP: libssl-dev is missing and cannot be installed here; openssl feature not built" >&2
fi

if ! [[ " $* " == *" --no-fuzz "* ]]; then
  step "fuzz targets: build (they run at the end)"
  bash fuzz/run.sh --build-only
fi

# the timing-sensitive end-to-end tests run on a quiet machine: wait for the static build first
step "static musl build ($static_profile profile, started in the background)"
t0=$(date +%s)
wait $static_job || true
tail -n 12 target/static-build.log
if [ "$(cat target/static-build.rc 2>/dev/null)" != 0 ]; then
  cat target/static-build.log >&2
  echo "static build failed" >&2
  exit 1
fi
t1=$(date +%s)
echo "static build: $((t1 - static_started))s in the background, waited $((t1 - t0))s for it"

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

step "smoke e2e against the static binary, container"
t1=$(date +%s)
# the e2e harness runs ARALEZ_TEST_BIN instead of the debug build: proxying, TLS (h2, upstream
# TLS with an empty CA store as in the image), hot reload and the process lifecycle
ARALEZ_TEST_BIN=$static_bin \
  cargo test --test e2e -- --exact \
  proxy::routes_balances_and_injects_headers \
  proxy::post_bodies_and_head_pass_through \
  proxy::upstream_failures_give_502_and_503 \
  protocols::h2c_prior_knowledge_and_http1_on_the_plain_listener \
  protocols::tls_upstream_works_with_an_empty_system_ca_store \
  tls::sni_picks_exact_then_wildcard_then_default \
  tls::dropped_in_pair_is_served_over_h2_without_restart \
  reload::a_valid_edit_applies_within_two_seconds \
  reload::an_invalid_edit_keeps_the_old_plan_serving \
  process::pid_file_and_graceful_sigterm 2>&1 | tee target/static-e2e-output.txt
# --exact: a renamed test would silently drop out of the list
grep -q "test result: ok. 10 passed" target/static-e2e-output.txt \
  || { echo "static e2e smoke: expected 10 tests to pass" >&2; exit 1; }
t2=$(date +%s)
STATIC_BIN=$static_bin bash scripts/container-test.sh
t3=$(date +%s)
echo "static: e2e smoke $((t2 - t1))s, container $((t3 - t2))s"

step "benches/load.sh --quick on the debug build (the script works; its numbers mean nothing)"
PROFILE=dev CSV=target/load-smoke.csv bash benches/load.sh --quick 1 1

step "openssl feature: the TLS and protocol end-to-end suites against it"
if [ "$openssl" = yes ]; then
  cargo test --no-default-features --features openssl --target-dir target/openssl \
    --test e2e -- tls:: protocols::
fi

if ! [[ " $* " == *" --no-fuzz "* ]]; then
  step "fuzz targets, briefly"
  bash fuzz/run.sh 20
fi

step "done"
