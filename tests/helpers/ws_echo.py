"""WebSocket echo server and client for tests/protocols_e2e.rs (Python `websockets`).

server:  prints `READY <port>`; greets each connection with "welcome", echoes every message
         (text and binary), and on "close-me" closes with code 4001 "server-bye".
client URL [--ca FILE] [--connect HOST:PORT]: talks to URL (through the proxy) and prints a JSON
         report of what it saw.
"""
import json
import socket
import ssl
import sys


def server():
    from websockets.sync.server import serve

    def handler(ws):
        ws.send("welcome")
        for msg in ws:
            if msg == "close-me":
                ws.close(4001, "server-bye")
                return
            ws.send(msg)

    with serve(handler, "127.0.0.1", 0) as srv:
        print("READY", srv.socket.getsockname()[1], flush=True)
        srv.serve_forever()


def client(url, ca, connect):
    from websockets.sync.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed

    host, port = connect.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    kwargs = {"sock": sock, "open_timeout": 10, "close_timeout": 10}
    if url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=ca)
        kwargs["ssl"] = ctx
    report = {}
    with ws_connect(url, **kwargs) as ws:
        report["greeting"] = ws.recv(timeout=10)
        ws.send("hello")
        report["text"] = ws.recv(timeout=10)
        ws.send(b"\x00\x01binary\xff")
        report["binary"] = list(ws.recv(timeout=10))
        big = "x" * 200000
        ws.send(big)
        report["big_ok"] = ws.recv(timeout=10) == big
        # client-initiated close on a second connection is below; here the server closes
        ws.send("close-me")
        try:
            ws.recv(timeout=10)
            report["closed"] = None
        except ConnectionClosed as e:
            report["closed"] = [e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None]
    sock = socket.create_connection((host, int(port)), timeout=10)
    kwargs["sock"] = sock
    with ws_connect(url, **kwargs) as ws:
        ws.recv(timeout=10)
        ws.close(1000, "client-bye")
        report["client_close"] = [ws.close_code, ws.close_reason]
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server()
    else:
        args = sys.argv[3:]
        ca = args[args.index("--ca") + 1] if "--ca" in args else None
        connect = args[args.index("--connect") + 1]
        client(sys.argv[2], ca, connect)
