#!/usr/bin/env python3
"""The driver of benches/load.sh (which builds the binaries and calls this): nginx, the bare
pingora floor, Aralez (and optionally a second Aralez binary, "base") in one interleaved run.

Rows: tiny (2 B), 1k, 100k over plain HTTP, and tls-tiny, tls-100k over TLS 1.3 (every proxy
terminates TLS with the same ECDSA P-256 certificate; the upstream is plain HTTP/1.1 keep-alive).
Per row and proxy: req/s, p50, p99 (wrk) and proxy CPU µs per request (the sum over the proxy's
threads of /proc/PID/task/*/schedstat run time, nanosecond resolution), medians over the rounds,
each with its ratio to nginx and to the floor. Then memory: KiB of RSS per idle keep-alive client
connection (one request each, then idle) at each count of IDLE_COUNTS, and the RSS a while
(SETTLE seconds) after they closed against the RSS before they opened. Everything goes to the
CSV too. The proxies are pinned to CPU 0, wrk and the backend to CPU 1.
"""
import csv
import os
import re
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ENV = os.environ
SECS = int(ENV.get("SECS", "5"))
ROUNDS = int(ENV.get("ROUNDS", "3"))
CONNS = int(ENV.get("CONNS", "50"))
IDLE_COUNTS = [int(n) for n in ENV.get("IDLE_COUNTS", "2000 10000").split()]
SETTLE = int(ENV.get("SETTLE", "60"))
BIN = ENV["ARALEZ_BIN"]
BARE = ENV["BARE_BIN"]
BASE = ENV.get("ARALEZ_BASE", "")
CSV_PATH = ENV.get("CSV", "target/load.csv")
ROWS = ENV.get("ROWS", "tiny 1k 100k tls-tiny tls-100k").split()
# TRAFFIC=1: the traffic policy on for Aralez's route (a rate limit and a 4xx limit that never
# trigger, so every request pays for the limiter) and health checks every second.
TRAFFIC = ENV.get("TRAFFIC", "0") == "1"
# HANDSHAKES=1: full TLS handshakes per second and proxy CPU per handshake (`openssl s_time
# -new`, a new connection per handshake, no resumption), SECS per round.
HANDSHAKES = ENV.get("HANDSHAKES", "1") == "1"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

work = tempfile.mkdtemp(prefix="aralez-load.")
os.chmod(work, 0o755)
children = []


def port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def spawn(cmd, log, cpu):
    proc = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, log), "w"))
    children.append(proc)
    return proc


def cleanup(*_):
    for pidfile in ("backend.pid", "nginx.pid"):
        try:
            os.kill(int(open(os.path.join(work, pidfile)).read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    for proc in children:
        if proc.poll() is None:
            proc.terminate()
    for proc in children:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    subprocess.run(["rm", "-rf", work])


signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

www = os.path.join(work, "www")
os.mkdir(www)
open(os.path.join(www, "tiny"), "w").write("ok")
open(os.path.join(www, "1k"), "w").write("a" * 1024)
open(os.path.join(www, "100k"), "w").write("b" * 102400)
cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out",
                cert], check=True, capture_output=True)
certs = os.path.join(work, "certs")
os.mkdir(certs)
subprocess.run(["cp", cert, os.path.join(certs, "default.crt")], check=True)
subprocess.run(["cp", key, os.path.join(certs, "default.key")], check=True)

BACK = port()
ports = {who: (port(), port()) for who in ("nginx", "bare", "aralez", "base")}
maxconn = max(IDLE_COUNTS + [1000]) + 1000

open(os.path.join(work, "backend.conf"), "w").write(f"""
worker_processes 1;
worker_rlimit_nofile {maxconn * 2};
pid {work}/backend.pid;
error_log {work}/backend.err;
events {{ worker_connections {maxconn}; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{BACK}; root {www}; location / {{ default_type text/plain; }} }}
}}
""")
plain, tls = ports["nginx"]
open(os.path.join(work, "nginx.conf"), "w").write(f"""
worker_processes 1;
worker_rlimit_nofile {maxconn * 2};
pid {work}/nginx.pid;
error_log {work}/nginx.err;
events {{ worker_connections {maxconn * 2}; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{BACK}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{plain};
    listen 127.0.0.1:{tls} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      add_header X-Proxy-From Aralez;
    }}
  }}
}}
""")


def aralez_conf(who):
    plain, tls = ports[who]
    adm = port()
    open(os.path.join(work, f"{who}.yaml"), "w").write(f"""
proxy_address_http: "127.0.0.1:{plain}"
proxy_address_tls: "127.0.0.1:{tls}"
proxy_certificates: {certs}
config_address: "127.0.0.1:{adm}"
upstreams_conf: {who}-upstreams.yaml
upgrade_sock: {work}/{who}.sock
threads: 1
log_level: error
access_log: off
max_connections: 0
""" + ("hc_interval: 1\n" if TRAFFIC else ""))
    limits = "rate_limit: 100000000\nx4xx_limit: 100000000\n" if TRAFFIC else ""
    open(os.path.join(work, f"{who}-upstreams.yaml"), "w").write(f"""
provider: file
{limits}DEFAULT:
  paths:
    "/":
      client_headers: ["X-Proxy-From:Aralez"]
      servers: ["127.0.0.1:{BACK}"]
""")
    return adm


procs = {}
WHO = ["nginx", "bare", "aralez"] + (["base"] if BASE else [])
try:
    subprocess.run(["taskset", "-c", "1", "nginx", "-c", f"{work}/backend.conf", "-p", work],
                   check=True)
    subprocess.run(["taskset", "-c", "0", "nginx", "-c", f"{work}/nginx.conf", "-p", work],
                   check=True)
    plain, tls = ports["bare"]
    procs["bare"] = spawn([BARE, f"127.0.0.1:{plain}", f"127.0.0.1:{BACK}", f"127.0.0.1:{tls}",
                           cert, key], "bare.err", "0")
    admins = {}
    for who, binary in (("aralez", BIN), ("base", BASE)):
        if binary:
            admins[who] = aralez_conf(who)
            procs[who] = spawn([binary, "-c", os.path.join(work, f"{who}.yaml")],
                               f"{who}.err", "0")
    deadline = time.monotonic() + 30
    for who in WHO:
        while True:
            try:
                socket.create_connection(("127.0.0.1", ports[who][0]), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"{who} did not start: {open(os.path.join(work, who + '.err')).read()}"
                             if who != "nginx" else "nginx did not start")
                time.sleep(0.1)
    master = int(open(os.path.join(work, "nginx.pid")).read())
    kids = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    pids = {"nginx": int(kids.split()[0])}
    pids.update({who: p.pid for who, p in procs.items()})

    def cpu_ns(pid):
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total

    def ms(text):
        m = re.match(r"([\d.]+)(us|ms|s|m)", text)
        if not m:
            raise ValueError(f"unreadable latency {text!r}")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]

    def round_of(who, row):
        tls_row = row.startswith("tls-")
        size = row.removeprefix("tls-")
        plain, tls = ports[who]
        url = f"https://127.0.0.1:{tls}/{size}" if tls_row else f"http://127.0.0.1:{plain}/{size}"
        t0 = cpu_ns(pids[who])
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{CONNS}", f"-d{SECS}s",
                              "--latency", url], capture_output=True, text=True).stdout
        t1 = cpu_ns(pids[who])
        if not re.search(r"(\d+) requests in", out) or not re.search(r"^\s+50%\s+\S+", out, re.M):
            sys.exit(f"{who} {row}: wrk did not measure anything:\n{out}")
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        if reqs == 0:
            sys.exit(f"{who} {row}: no request answered:\n{out}")
        errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "cpu": (t1 - t0) / 1000 / max(reqs, 1),
            "errors": int(errs.group(1)) if errs else 0,
        }

    # warm-up, not measured: upstream connections pooled, TLS session state, allocator caches
    for who in WHO:
        for url in (f"http://127.0.0.1:{ports[who][0]}/tiny",
                    f"https://127.0.0.1:{ports[who][1]}/tiny"):
            subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{CONNS}", "-d1s", url],
                           capture_output=True)

    csv_rows = []
    print(f"{'row':9} {'proxy':7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10}"
          f" {'cpu/nginx':>9} {'cpu/floor':>9} {'non2xx':>6}")
    for row in ROWS:
        samples = {who: [] for who in WHO}
        for _ in range(ROUNDS):
            for who in WHO:
                samples[who].append(round_of(who, row))
        med = {who: {k: statistics.median(s[k] for s in samples[who])
                     for k in ("rps", "p50", "p99", "cpu")} for who in WHO}
        for who in WHO:
            m = med[who]
            to_nginx = m["cpu"] / med["nginx"]["cpu"]
            to_floor = m["cpu"] / med["bare"]["cpu"]
            errors = sum(s["errors"] for s in samples[who])
            print(f"{row:9} {who:7} {m['rps']:8.0f} {m['p50']:7.2f} {m['p99']:7.2f}"
                  f" {m['cpu']:10.2f} {to_nginx:9.2f} {to_floor:9.2f} {errors:6}")
            csv_rows.append([row, who, f"{m['rps']:.0f}", f"{m['p50']:.3f}", f"{m['p99']:.3f}",
                             f"{m['cpu']:.2f}", f"{to_nginx:.3f}", f"{to_floor:.3f}",
                             f"{m['rps'] / med['nginx']['rps']:.3f}",
                             f"{m['p99'] / med['nginx']['p99']:.3f}", errors, "", "", ""])
        sys.stdout.flush()

    if HANDSHAKES:
        print(f"\n{'handshake':9} {'proxy':7} {'per s':>8} {'cpu us':>8} {'cpu/nginx':>9} {'cpu/floor':>9}")
        hs = {who: [] for who in WHO}
        for _ in range(ROUNDS):
            for who in WHO:
                t0 = cpu_ns(pids[who])
                out = subprocess.run(["taskset", "-c", "1", "openssl", "s_time", "-connect",
                                      f"127.0.0.1:{ports[who][1]}", "-new", "-time", str(SECS)],
                                     capture_output=True, text=True).stdout
                t1 = cpu_ns(pids[who])
                m = re.search(r"(\d+) connections in ([\d.]+) real seconds", out)
                n, real = (int(m.group(1)), float(m.group(2))) if m else (0, float(SECS))
                hs[who].append((n / real, (t1 - t0) / 1000 / max(n, 1)))
        med = {who: (statistics.median(r for r, _ in hs[who]),
                     statistics.median(c for _, c in hs[who])) for who in WHO}
        for who in WHO:
            rate, cpu = med[who]
            to_nginx, to_floor = cpu / max(med["nginx"][1], 0.01), cpu / max(med["bare"][1], 0.01)
            print(f"{'full':9} {who:7} {rate:8.0f} {cpu:8.0f} {to_nginx:9.2f} {to_floor:9.2f}")
            csv_rows.append(["tls-handshake", who, f"{rate:.0f}", "", "", f"{cpu:.1f}",
                             f"{to_nginx:.3f}", f"{to_floor:.3f}",
                             f"{rate / max(med['nginx'][0], 0.01):.3f}", "", 0, "", "", ""])
        sys.stdout.flush()

    def rss_kib(pid):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def open_idle(who, n):
        """n keep-alive connections that made one request each, left open."""
        plain, _ = ports[who]
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", plain), timeout=10)
            s.sendall(b"GET /tiny HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while not (b"\r\n\r\n" in data and data.endswith(b"ok")):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            socks.append(s)
        return socks

    print()
    print(f"{'idle':9} {'proxy':7} {'KiB/conn':>8} {'/nginx':>7} {'/floor':>7}")
    idle_before = {who: rss_kib(pids[who]) for who in WHO}
    for n in IDLE_COUNTS:
        kib = {}
        for who in WHO:
            before = rss_kib(pids[who])
            socks = open_idle(who, n)
            time.sleep(1)
            kib[who] = (rss_kib(pids[who]) - before) / n
            for s in socks:
                s.close()
            time.sleep(1)
        for who in WHO:
            to_nginx = kib[who] / max(kib["nginx"], 0.1)
            to_floor = kib[who] / max(kib["bare"], 0.1)
            print(f"{n:<9} {who:7} {kib[who]:8.1f} {to_nginx:7.2f} {to_floor:7.2f}")
            csv_rows.append([f"idle-{n}", who, "", "", "", "", "", "", "", "", "",
                             f"{kib[who]:.1f}", f"{to_nginx:.3f}", f"{to_floor:.3f}"])
        sys.stdout.flush()
    time.sleep(SETTLE)
    print()
    print(f"RSS {SETTLE} s after the idle connections closed, against before they opened:")
    for who in WHO:
        after = rss_kib(pids[who])
        growth = (after - idle_before[who]) / max(idle_before[who], 1) * 100
        print(f"  {who:7} {idle_before[who]:8} KiB -> {after:8} KiB ({growth:+.0f}%)")
        csv_rows.append([f"rss-after-close-{SETTLE}s", who, "", "", "", "", "", "", "", "", "",
                         after, f"{growth:.1f}", idle_before[who]])
    os.makedirs(os.path.dirname(CSV_PATH) or ".", exist_ok=True)
    with open(CSV_PATH, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "proxy", "req_per_s", "p50_ms", "p99_ms", "cpu_us_per_req",
                    "cpu_to_nginx", "cpu_to_floor", "rps_to_nginx", "p99_to_nginx", "non2xx",
                    "kib_or_rss", "to_nginx_or_growth_pct", "to_floor_or_rss_before"])
        w.writerows(csv_rows)
    print(f"\nCSV: {CSV_PATH}")
    failed = [f"{r[0]} {r[1]}" for r in csv_rows if isinstance(r[10], int) and r[10] > 0]
    if failed:
        sys.exit(f"non-2xx answers in: {', '.join(failed)}")
finally:
    cleanup()
