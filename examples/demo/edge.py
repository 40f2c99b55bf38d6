#!/usr/bin/env python3
"""A stand-in for a remote edge Envoy: answers every request with its name,
the method, the path and the Host it was given. Loopback only.

    python3 examples/demo/edge.py edge-1 9001
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{self.server.name} {self.command} {self.path} host={self.headers.get('Host')}\n".encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def main():
    name, port = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.name = name
    server.serve_forever()


if __name__ == "__main__":
    main()
