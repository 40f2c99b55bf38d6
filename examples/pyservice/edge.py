#!/usr/bin/env python3
"""A stand-in for the staging edge Envoy and the service behind it: like the
seed's remote demo service, it answers every GET with a hex color (COLOR,
default 00ff00). Loopback only: BIND 127.0.0.1, PORT 9180.
"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLOR = os.environ.get("COLOR", "00ff00")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (COLOR + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = (os.environ.get("BIND", "127.0.0.1"), int(os.environ.get("PORT", "9180")))
    ThreadingHTTPServer(server, Handler).serve_forever()
