#!/usr/bin/env python3
"""Slowloris against a real aralez: N sockets that send one header line every second and never
finish their request head, plus silent sockets, while a normal client keeps asking. Prints when
the slow sockets were closed (relative to client_header_timeout), what the normal client saw, and
the proxy's RSS idle, under attack and after.

usage: benches/slowloris.py [--bin target/release/aralez] [--sockets 1000] [--silent 100]
                            [--header-timeout 10]
Everything listens on 127.0.0.1 and is stopped at the end; every loop is bounded.
"""
import argparse
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def origin(listener, stop):
    """A tiny HTTP/1.1 origin: 200 'ok' to every request, keep-alive."""
    def serve(c):
        buf = b""
        c.settimeout(1)
        while not stop.is_set():
            try:
                d = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            buf += d
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c.close()
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = listener.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def normal_client(port, stop, results):
    while not stop.is_set():
        t = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            s.close()
            results.append((data[:12] == b"HTTP/1.1 200", time.time() - t))
        except OSError:
            results.append((False, time.time() - t))
        time.sleep(0.25)


def attack(a, http, proc, idle):
    """One attack; prints what happened; 0 when every slow socket was closed and the normal
    client was always answered."""
    stop = threading.Event()
    sel = selectors.DefaultSelector()
    opened = {}
    start = time.time()
    for i in range(a.sockets + a.silent):
        s = socket.create_connection(("127.0.0.1", http))
        if i < a.sockets:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i < a.sockets)
        opened[s] = time.time()
    open_time = time.time() - start
    results = []
    client = threading.Thread(target=normal_client, args=(http, stop, results), daemon=True)
    client.start()

    closed = []
    peak = idle
    last_line = time.time()
    deadline = start + 3 * a.header_timeout + 10
    while sel.get_map() and time.time() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                closed.append(time.time() - opened[s])
                sel.unregister(s)
                s.close()
        if time.time() - last_line >= 1:
            last_line = time.time()
            peak = max(peak, rss_kib(proc.pid))
            for key in list(sel.get_map().values()):
                if key.data:
                    try:
                        key.fileobj.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
    still_open = len(sel.get_map())
    time.sleep(2)
    after = rss_kib(proc.pid)
    stop.set()
    client.join(timeout=6)
    ok = sum(1 for good, _ in results if good)
    lat = sorted(t for _, t in results)
    print("slow sockets: %d (one header line per second) + %d silent, opened in %.1f s"
          % (a.sockets, a.silent, open_time))
    print("client_header_timeout: %d s" % a.header_timeout)
    if closed:
        closed.sort()
        print("closed by the proxy: %d; after %.1f s (first) .. %.1f s (median) .. %.1f s (last); still open: %d"
              % (len(closed), closed[0], closed[len(closed) // 2], closed[-1], still_open))
    print("normal client during the attack: %d/%d answered 200; latency median %.1f ms, max %.1f ms"
          % (ok, len(results), 1000 * lat[len(lat) // 2] if lat else 0, 1000 * lat[-1] if lat else 0))
    print("proxy RSS: idle %.1f MiB, peak under attack %.1f MiB (%.1f KiB per socket), 2 s after %.1f MiB"
          % (idle / 1024, peak / 1024, (peak - idle) / (a.sockets + a.silent), after / 1024))
    stop.set()
    return 0 if still_open == 0 and ok == len(results) else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/aralez")
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--silent", type=int, default=100)
    ap.add_argument("--header-timeout", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2,
                    help="attacks on the same process (a later round reusing the memory of the "
                         "first shows retention by the allocator, not a leak)")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="aralez-slowloris.")
    back = socket.socket()
    back.bind(("127.0.0.1", 0))
    back.listen(256)
    stop = threading.Event()
    threading.Thread(target=origin, args=(back, stop), daemon=True).start()
    http, admin = free_port(), free_port()
    with open(os.path.join(work, "upstreams.yaml"), "w") as f:
        f.write('provider: file\nDEFAULT:\n  paths:\n    "/":\n      servers: ["127.0.0.1:%d"]\n'
                % back.getsockname()[1])
    with open(os.path.join(work, "main.yaml"), "w") as f:
        f.write('proxy_address_http: "127.0.0.1:%d"\nconfig_address: "127.0.0.1:%d"\n'
                'upstreams_conf: upstreams.yaml\nupgrade_sock: "%s/u.sock"\naccess_log: off\n'
                'client_header_timeout: %d\nlog_level: warn\n'
                % (http, admin, work, a.header_timeout))
    proc = subprocess.Popen([a.bin, "-c", os.path.join(work, "main.yaml")],
                            stderr=open(os.path.join(work, "aralez.log"), "w"))
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        idle = rss_kib(proc.pid)

        verdict = 0
        for r in range(a.rounds):
            print("round %d:" % (r + 1))
            verdict |= attack(a, http, proc, idle)
        time.sleep(8)
        print("proxy RSS 10 s after the last round: %.1f MiB" % (rss_kib(proc.pid) / 1024))
        return verdict

    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
