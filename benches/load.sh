#!/usr/bin/env bash
# End-to-end load: wrk against Aralez and against nginx (1 worker each, same loopback backend,
# upstream keepalive), interleaved rounds, for tiny, 1 KiB and 100 KiB responses.
# A bare pingora proxy (benches/bare_pingora.rs) runs alongside as the floor.
# Prints req/s, p99 latency and proxy CPU time per request for both, and the ratios.
# The proxies are pinned to CPU 0, wrk and the backend to CPU 1.
# Usage: benches/load.sh [seconds-per-round (default 5)] [rounds (default 3)]
# Env: TRAFFIC=1 turns the traffic policy on for the bench route (a rate limit and a 4xx limit that
#      never trigger, so every request pays for the limiter, and health checks every second);
#      ARALEZ_BIN=path measures another aralez binary (e.g. one built from an older commit);
#      ARALEZ_BASE=path runs that binary too, as "base", in the same interleaved rounds (before/after
#      comparisons from one run; plain HTTP only).
# TLS=1: Aralez and nginx terminate TLS (same ECDSA P-256 certificate, TLS 1.3; wrk keeps its
# connections, so this is TLS-terminated request cost), and a last section measures the cost of a
# full handshake (`openssl s_time -new`: new connections per second, and proxy CPU per handshake).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
CONNS=${CONNS:-32}
TLS=${TLS:-0}
bash scripts/deps.sh wrk nginx-light cmake build-essential pkg-config
cargo build --release -q --bin aralez --example bare_pingora
BARE=$PWD/target/release/examples/bare_pingora
BIN=${ARALEZ_BIN:-$PWD/target/release/aralez}
WORK=$(mktemp -d /tmp/aralez-load.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 0.3; rm -rf "$WORK"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACK=$(port); NGX=$(port); ARZ=$(port); ADM=$(port); BAR=$(port); BASE_P=$(port); BASE_ADM=$(port)
BASE_BIN=${ARALEZ_BASE:-}

chmod 755 "$WORK"; mkdir -p "$WORK/www"
printf 'ok' > "$WORK/www/tiny"
head -c 1024 /dev/zero | tr '\0' 'a' > "$WORK/www/1k"
head -c 102400 /dev/zero | tr '\0' 'b' > "$WORK/www/100k"

cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
pid $WORK/backend.pid;
error_log $WORK/backend.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$BACK; root $WORK/www; location / { default_type text/plain; } }
}
NGINX

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  upstream backend { server 127.0.0.1:$BACK; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      add_header X-Proxy-From Aralez;
    }
  }
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
if [ "${TRAFFIC:-0}" = 1 ]; then
  echo "hc_interval: 1" >> "$WORK/main.yaml"
  cat > "$WORK/upstreams.yaml" <<YAML
provider: file
rate_limit: 100000000
x4xx_limit: 100000000
DEFAULT:
  paths:
    "/":
      client_headers: ["X-Proxy-From:Aralez"]
      servers: ["127.0.0.1:$BACK"]
YAML
fi

SCHEME=http; ARZ_PORT=$ARZ
if [ "$TLS" = 1 ]; then
  mkdir -p "$WORK/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/certs/default.key" -out "$WORK/certs/default.crt" 2>/dev/null
  sed -i "s|listen 127.0.0.1:$NGX;|listen 127.0.0.1:$NGX ssl; ssl_certificate $WORK/certs/default.crt; ssl_certificate_key $WORK/certs/default.key; ssl_protocols TLSv1.2 TLSv1.3;|" "$WORK/nginx.conf"
  ARZ_TLS=$(port)
  printf 'proxy_address_tls: "127.0.0.1:%s"\nproxy_certificates: %s\n' "$ARZ_TLS" "$WORK/certs" >> "$WORK/main.yaml"
  SCHEME=https; ARZ_PORT=$ARZ_TLS
fi

taskset -c 1 nginx -c "$WORK/backend.conf" -p "$WORK"
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK"
taskset -c 0 "$BIN" -c "$WORK/main.yaml" 2>"$WORK/aralez.err" &
echo $! > "$WORK/aralez.pid"
taskset -c 0 "$BARE" "127.0.0.1:$BAR" "127.0.0.1:$BACK" 2>"$WORK/bare.err" &
echo $! > "$WORK/bare.pid"
WHO="nginx bare aralez"
if [ -n "$BASE_BIN" ]; then
  sed -e "s/127.0.0.1:$ARZ/127.0.0.1:$BASE_P/" -e "s/127.0.0.1:$ADM/127.0.0.1:$BASE_ADM/" \
    -e "s|aralez.sock|base.sock|" "$WORK/main.yaml" > "$WORK/base.yaml"
  cp "$WORK/upstreams.yaml" "$WORK/base-upstreams.yaml"
  sed -i "s|upstreams_conf: upstreams.yaml|upstreams_conf: base-upstreams.yaml|" "$WORK/base.yaml"
  taskset -c 0 "$BASE_BIN" -c "$WORK/base.yaml" 2>"$WORK/base.err" &
  echo $! > "$WORK/base.pid"
  WHO="nginx bare base aralez"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BASE_ADM/readyz" >/dev/null && break; sleep 0.1; done
fi
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null && break; sleep 0.1; done
NGX_PID=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)   # the worker
ARZ_PID=$(cat "$WORK/aralez.pid")
BAR_PID=$(cat "$WORK/bare.pid")

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# one round: prints "req_per_s p99_ms cpu_us_per_req"
round() {
  local url=$1 pid=$2
  local t0; t0=$(cpu_ticks "$pid")
  local out; out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$url")
  local t1; t1=$(cpu_ticks "$pid")
  python3 - "$out" "$t0" "$t1" "$TCK" <<'PY'
import re, sys
out, t0, t1, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
cpu_us = (t1 - t0) * 1e6 / tck / max(reqs, 1)
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"{rps:.0f} {p99:.2f} {cpu_us:.2f} {errs.group(1) if errs else 0}")
PY
}

printf '%-6s %-7s %10s %9s %12s %6s\n' size proxy "req/s" "p99 ms" "cpu us/req" "non2xx"
for size in tiny 1k 100k; do
  declare -A sum=()
  for r in $(seq "$ROUNDS"); do
    for who in $WHO; do
      case $who in
        base) url="http://127.0.0.1:$BASE_P/$size"; pid=$(cat "$WORK/base.pid") ;;
        nginx) url="$SCHEME://127.0.0.1:$NGX/$size"; pid=$NGX_PID ;;
        bare) url="http://127.0.0.1:$BAR/$size"; pid=$BAR_PID ;;   # plain: the floor
        aralez) url="$SCHEME://127.0.0.1:$ARZ_PORT/$size"; pid=$ARZ_PID ;;
      esac
      read -r rps p99 cpu errs < <(round "$url" "$pid")
      printf '%-6s %-7s %10s %9s %12s %6s\n' "$size" "$who" "$rps" "$p99" "$cpu" "$errs"
      sum[$who.rps]=$(python3 -c "print(${sum[$who.rps]:-0}+$rps)")
      sum[$who.p99]=$(python3 -c "print(${sum[$who.p99]:-0}+$p99)")
      sum[$who.cpu]=$(python3 -c "print(${sum[$who.cpu]:-0}+$cpu)")
    done
  done
  python3 - "$size" "${sum[nginx.rps]}" "${sum[aralez.rps]}" "${sum[nginx.p99]}" "${sum[aralez.p99]}" "${sum[nginx.cpu]}" "${sum[aralez.cpu]}" "${sum[bare.cpu]}" <<'PY'
import sys
size, nr, ar, np_, ap, nc, ac, bc = sys.argv[1], *map(float, sys.argv[2:])
print(f"RATIO {size}: aralez/nginx  req/s {ar/nr:.2f}  p99 {ap/np_:.2f}  cpu/req {ac/nc:.2f}   aralez/bare-pingora cpu/req {ac/bc:.2f}")
PY
  if [ -n "$BASE_BIN" ]; then
    python3 -c "print(f'RATIO $size: aralez/base  req/s {${sum[aralez.rps]}/${sum[base.rps]}:.2f}  p99 {${sum[aralez.p99]}/${sum[base.p99]}:.2f}  cpu/req {${sum[aralez.cpu]}/${sum[base.cpu]}:.2f}')"
  fi
  unset sum
done
echo "RSS aralez idle-ish: $(awk '/VmRSS/{print $2" kB"}' /proc/$ARZ_PID/status)"

# memory per idle keep-alive client connection: IDLE connections that made one request each and
# stay open; RSS growth of the proxy process divided by their number
IDLE=${IDLE:-2000}
idle_kib() {
  local port=$1 pid=$2
  python3 - "$port" "$pid" "$IDLE" <<'PY'
import socket, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /tiny HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    socks.append(s)
time.sleep(1)
after = rss()
for s in socks:
    s.close()
print(f"{(after - before) / n:.1f}")
PY
}
if [ "$TLS" != 1 ]; then
  k_n=$(idle_kib "$NGX" "$NGX_PID"); k_b=$(idle_kib "$BAR" "$BAR_PID"); k_a=$(idle_kib "$ARZ" "$ARZ_PID")
  echo "KiB per idle keep-alive connection ($IDLE): nginx $k_n  bare $k_b  aralez $k_a"
  python3 -c "print(f'RATIO memory/connection: aralez/nginx {$k_a/max($k_n,0.1):.2f}  aralez/bare-pingora {$k_a/max($k_b,0.1):.2f}')"
fi

if [ "$TLS" = 1 ]; then
  # full handshakes: openssl s_time opens a new connection per handshake (no resumption)
  handshakes() {
    local port=$1 pid=$2
    local t0; t0=$(cpu_ticks "$pid")
    local out; out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" 2>/dev/null)
    local t1; t1=$(cpu_ticks "$pid")
    python3 - "$out" "$t0" "$t1" "$TCK" "$SECS" <<'PY'
import re, sys
out, t0, t1, tck, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
m = re.search(r"(\d+) connections in ([\d.]+) real seconds", out)
n, real = (int(m.group(1)), float(m.group(2))) if m else (0, secs)
print(f"{n/real:.0f} {(t1-t0)*1e6/tck/max(n,1):.0f}")
PY
  }
  printf '\n%-8s %14s %18s\n' proxy "handshakes/s" "cpu us/handshake"
  hs_n=0; hs_a=0; cpu_n=0; cpu_a=0
  for r in $(seq "$ROUNDS"); do
    read -r rate cpu < <(handshakes "$NGX" "$NGX_PID"); printf '%-8s %14s %18s\n' nginx "$rate" "$cpu"
    hs_n=$((hs_n+rate)); cpu_n=$((cpu_n+cpu))
    read -r rate cpu < <(handshakes "$ARZ_TLS" "$ARZ_PID"); printf '%-8s %14s %18s\n' aralez "$rate" "$cpu"
    hs_a=$((hs_a+rate)); cpu_a=$((cpu_a+cpu))
  done
  python3 -c "print(f'RATIO handshakes: aralez/nginx  rate {$hs_a/max($hs_n,1):.2f}  cpu/handshake {$cpu_a/max($cpu_n,1):.2f}')"
fi
