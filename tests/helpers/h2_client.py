"""A raw HTTP/2 (h2c prior knowledge) client for the edge tests.

usage: h2_client.py PORT MODE
  ok        POST with a 3-byte body and a matching content-length
  cl_zero   POST with content-length: 0 and then a 3-byte DATA frame
  cl_short  POST with content-length: 10 and a 3-byte body
  connect   CONNECT a:443 (refused with 405)
  big       POST declaring content-length: 1000, body not sent (client_max_body_size tests)
Prints `status=NNN` (and ` server=...` when a Server field came) for a response, `reset=CODE` for a stream reset, `goaway=CODE` or `closed`.
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    if mode == "connect":
        conn.send_headers(1, [(":method", "CONNECT"), (":authority", "a:443")])
    else:
        length = {"ok": "3", "cl_zero": "0", "cl_short": "10", "big": "1000"}[mode]
        headers = [(":method", "POST"), (":path", "/h2"), (":authority", "a"), (":scheme", "http"), ("content-length", length)]
        conn.send_headers(1, headers)
    if mode not in ("big", "connect"):
        # h2 refuses to send more data than declared: bypass its check for the malformed modes
        conn.streams[1]._expected_content_length = None
        conn.send_data(1, b"abc", end_stream=True)
    s.sendall(conn.data_to_send())
    while True:
        try:
            data = s.recv(65536)
        except socket.timeout:
            print("timeout")
            return
        if not data:
            print("closed")
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                fields = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v) for k, v in ev.headers)
                server = " server=%s" % fields["server"] if "server" in fields else ""
                print("status=%s%s" % (fields[":status"], server))
                return
            if isinstance(ev, h2.events.StreamReset):
                print("reset=%d" % ev.error_code)
                return
            if isinstance(ev, h2.events.ConnectionTerminated):
                print("goaway=%d" % ev.error_code)
                return
        s.sendall(conn.data_to_send())


main()
