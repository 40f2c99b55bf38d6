#!/usr/bin/env python3
"""An upstream host for the endpoint-discovery example (seed 003's server.py),
standard library only: answers every GET with its name and address.

    python3 upstream.py upstream-1 8301      # 127.0.0.1:8301
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        host, port = self.server.server_address[:2]
        body = f"{self.server.name} ({host}:{port})\n".encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.name = sys.argv[1]
    server.serve_forever()
