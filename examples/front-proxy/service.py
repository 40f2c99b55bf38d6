#!/usr/bin/env python3
"""The seed's film and rating services (standard library only), on loopback.

    python3 service.py films films-1 8411     GET /films   -> the films, and which instance answered
    python3 service.py ratings ratings-1 8421 GET /ratings -> the ratings, and which instance answered
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = {
    "films": [{"id": "1", "name": "Anand", "language": "Hindi"}],
    "ratings": [{"id": "1", "name": "Anand", "rating": "5"}],
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        kind = self.server.kind
        if self.path.rstrip("/") == f"/{kind}" or self.path.startswith(f"/{kind}?"):
            status, doc = 200, {"served_by": self.server.name, kind: DATA[kind]}
        else:
            status, doc = 404, {"served_by": self.server.name, "error": f"no {self.path}"}
        body = (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    kind, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.kind, server.name = kind, name
    server.serve_forever()
