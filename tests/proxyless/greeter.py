"""A greeter for the proxyless gRPC test (tests/envoy_proxyless.rs), with no
generated code: requests and answers are raw bytes.

  greeter.py serve PORT NAME   answers every /greeter.Greeter/SayHello with NAME
  greeter.py client TARGET     reads a count per line on stdin, makes that many
                               calls on one channel to TARGET (xds:///...), and
                               prints one JSON line: {"answers": {NAME: n}, "errors": {CODE: n}}
"""

import json
import sys
from concurrent import futures

import grpc

METHOD = "/greeter.Greeter/SayHello"


def serve(port, name):
    answer = name.encode()
    handler = grpc.method_handlers_generic_handler(
        "greeter.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(lambda req, ctx: answer)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def client(target):
    with grpc.insecure_channel(target) as channel:
        say_hello = channel.unary_unary(METHOD)
        for line in sys.stdin:
            answers, errors = {}, {}
            for _ in range(int(line)):
                try:
                    name = say_hello(b"hi", timeout=5).decode()
                    answers[name] = answers.get(name, 0) + 1
                except grpc.RpcError as e:
                    code = e.code().name
                    errors[code] = errors.get(code, 0) + 1
                    if len(errors) == 1 and errors[code] == 1:
                        print(f"first error: {code}: {e.details()}", file=sys.stderr, flush=True)
            print(json.dumps({"answers": answers, "errors": errors}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        client(sys.argv[2])
