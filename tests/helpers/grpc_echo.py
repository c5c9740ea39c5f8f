"""gRPC echo server and client for tests/protocols_e2e.rs (Python `grpcio`, generic handlers:
raw bytes, no generated stubs).

server [--tls CERT KEY]: prints `READY <port>`. Methods of `/echo.Echo/`:
  Unary (echo with a trailer `x-trailer: unary`), Chat (bidirectional stream: echoes each message
  prefixed with its index), Fail (aborts with PERMISSION_DENIED "denied: no ticket").
client TARGET [--ca FILE --name NAME]: calls all three and prints a JSON report.
"""
import json
import sys
from concurrent import futures

import grpc


def server(tls):
    def unary(request, context):
        context.set_trailing_metadata((("x-trailer", "unary"),))
        return b"echo:" + request

    def chat(request_iterator, context):
        for i, msg in enumerate(request_iterator):
            yield b"%d:" % i + msg

    def fail(request, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "denied: no ticket")

    handler = grpc.method_handlers_generic_handler(
        "echo.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((handler,))
    if tls:
        cert, key = open(tls[0], "rb").read(), open(tls[1], "rb").read()
        port = srv.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(((key, cert),)))
    else:
        port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    print("READY", port, flush=True)
    srv.wait_for_termination()


def client(target, ca, name):
    if ca:
        creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
        channel = grpc.secure_channel(target, creds, options=(("grpc.ssl_target_name_override", name),))
    else:
        channel = grpc.insecure_channel(target)
    report = {}
    with channel:
        unary = channel.unary_unary("/echo.Echo/Unary")
        resp, call = unary.with_call(b"ping", timeout=10)
        report["unary"] = resp.decode()
        report["trailers"] = {k: v for k, v in call.trailing_metadata()}
        report["unary_code"] = str(call.code())
        chat = channel.stream_stream("/echo.Echo/Chat")
        msgs = [b"a", b"b", b"c", b"d" * 100000]
        out = [m.decode()[:10] for m in chat(iter(msgs), timeout=10)]
        report["chat"] = out
        try:
            channel.unary_unary("/echo.Echo/Fail")(b"x", timeout=10)
            report["fail"] = None
        except grpc.RpcError as e:
            report["fail"] = [str(e.code()), e.details()]
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        tls = None
        if "--tls" in sys.argv:
            i = sys.argv.index("--tls")
            tls = sys.argv[i + 1 : i + 3]
        server(tls)
    else:
        args = sys.argv[3:]
        ca = args[args.index("--ca") + 1] if "--ca" in args else None
        name = args[args.index("--name") + 1] if "--name" in args else None
        client(sys.argv[2], ca, name)
