#!/usr/bin/env bash
# End-to-end load, in one interleaved run: nginx, the bare pingora floor (benches/bare_pingora.rs)
# and Aralez (plus, optionally, a second Aralez binary to compare commits), 1 worker thread each,
# the same loopback nginx backend with upstream keep-alive. Rows: tiny, 1 KiB, 100 KiB, TLS tiny,
# TLS 100 KiB. Prints req/s, p50/p99 latency and proxy CPU µs per request (medians over the
# rounds) with their ratios to nginx and to the floor, then KiB of RSS per idle keep-alive client
# connection at 2,000 and 10,000 connections and the RSS one minute after they closed; writes
# everything to a CSV. The proxies are pinned to CPU 0, wrk and the backend to CPU 1.
# The method and the last results are in docs/performance.md; the driver is benches/load.py.
#
# Usage: benches/load.sh [--quick] [seconds-per-round (default 5)] [rounds (default 3)]
#   --quick: 2 s rounds, 1 round, 2,000 idle connections, RSS 10 s after close (~2 min; for CI).
# Env: ARALEZ_BIN=path    measure that aralez binary instead of target/$PROFILE/aralez;
#      ARALEZ_BASE=path   run that binary too, as "base", in the same rounds (before/after);
#      PROFILE=release    which cargo profile to build and use (`profiling` builds in minutes;
#                         `dev` is what CI runs once, to check that the script works: its
#                         numbers mean nothing);
#      CONNS=50           wrk connections; IDLE_COUNTS="2000 10000"; SETTLE=60 (seconds);
#      ROWS="tiny 1k 100k tls-tiny tls-100k"; CSV=target/load.csv; NO_BUILD=1 skips cargo;
#      TRAFFIC=1 turns Aralez's traffic policy on (limits that never trigger, health checks
#      every second); HANDSHAKES=0 skips the full TLS handshake rounds (openssl s_time).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --quick ]; then
  shift
  export SECS=${1:-2} ROUNDS=${2:-1} IDLE_COUNTS=${IDLE_COUNTS:-2000} SETTLE=${SETTLE:-10}
  export HANDSHAKES=${HANDSHAKES:-0}
else
  export SECS=${1:-5} ROUNDS=${2:-3}
fi
PROFILE=${PROFILE:-release}
bash scripts/deps.sh wrk nginx-light openssl python3
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --profile "$PROFILE" -q --bin aralez --example bare_pingora
fi
dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
export BARE_BIN=${BARE_BIN:-$PWD/target/$dir/examples/bare_pingora}
export ARALEZ_BIN=${ARALEZ_BIN:-$PWD/target/$dir/aralez}
export CSV=${CSV:-$PWD/target/load.csv}
ulimit -n "$(ulimit -Hn)"
exec python3 benches/load.py
