#!/usr/bin/env bash
# Instructions per proxied request, under valgrind's callgrind: a count that does not depend on
# machine load, for before/after comparisons of the request path (Aralez against the bare pingora
# floor, or two Aralez builds). A loopback nginx serves a 2-byte file; h2load sends a fixed number
# of HTTP/1.1 keep-alive requests over a few connections after a warm-up; the counters are zeroed
# after the warm-up and dumped after the run, so start-up is not counted.
# Usage: benches/callgrind.sh [requests (default 4000)]
# Env: PROFILE=profiling|release (which target/<profile> binaries, default profiling);
#      ARALEZ_BIN / BARE_BIN override the binaries; KEEP=1 keeps the callgrind.out files in
#      target/callgrind/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4000}
PROFILE=${PROFILE:-profiling}
BIN=${ARALEZ_BIN:-$PWD/target/$PROFILE/aralez}
BARE=${BARE_BIN:-$PWD/target/$PROFILE/examples/bare_pingora}
OUT=$PWD/target/callgrind; mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/aralez-cg.XXXXXX)
trap 'for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 0.3; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACK=$(port); ARZ=$(port); ADM=$(port); BAR=$(port)
chmod 755 "$WORK"; mkdir -p "$WORK/www"; printf 'ok' > "$WORK/www/tiny"
cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
pid $WORK/backend.pid;
error_log $WORK/backend.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACK; root $WORK/www; location / { default_type text/plain; } }
}
NGINX
cat > "$WORK/main.yaml" <<YAML
proxy_address_http: "127.0.0.1:$ARZ"
config_address: "127.0.0.1:$ADM"
upstreams_conf: upstreams.yaml
upgrade_sock: $WORK/aralez.sock
threads: 1
log_level: error
access_log: off
YAML
cat > "$WORK/upstreams.yaml" <<YAML
provider: file
DEFAULT:
  paths:
    "/":
      client_headers: ["X-Proxy-From:Aralez"]
      servers: ["127.0.0.1:$BACK"]
YAML
nginx -c "$WORK/backend.conf" -p "$WORK"

# measure NAME PORT CMD...: prints "NAME Ir/request"
measure() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.$name" "$@" \
    2>"$WORK/$name.vg" &
  local pid=$!; echo $pid > "$WORK/$name.pid"
  local up=0
  for _ in $(seq 300); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/tiny"; then up=1; break; fi
    sleep 0.2
  done
  [ $up = 1 ] || { echo "$name did not start" >&2; cat "$WORK/$name.vg" >&2; exit 1; }
  h2load --h1 -n 500 -c 4 "http://127.0.0.1:$port/tiny" >/dev/null
  callgrind_control -z $pid >/dev/null
  local res; res=$(h2load --h1 -n "$N" -c 4 "http://127.0.0.1:$port/tiny")
  grep -q "succeeded, 0 failed" <<<"$res" || { echo "$name: failures: $res" >&2; }
  grep -q "status codes: $N 2xx" <<<"$res" || { echo "$name: not all 2xx: $(grep 'status codes' <<<"$res")" >&2; }
  callgrind_control -d $pid >/dev/null
  kill $pid; wait $pid 2>/dev/null || true; rm -f "$WORK/$name.pid"
  # the dump after zeroing is the last file written: callgrind.out.NAME.<n>
  local dump; dump=$(ls -t "$OUT/callgrind.out.$name".* 2>/dev/null | grep -v '\.[0-9]*-' | head -1)
  local ir; ir=$(grep -h '^summary:' "$dump" | awk '{s+=$2} END {print s}')
  python3 -c "print(f'$name {$ir/$N:.0f} Ir/request')"
  [ "${KEEP:-0}" = 1 ] || rm -f "$OUT/callgrind.out.$name"*
}
measure bare "$BAR" "$BARE" "127.0.0.1:$BAR" "127.0.0.1:$BACK"
measure aralez "$ARZ" "$BIN" -c "$WORK/main.yaml"
