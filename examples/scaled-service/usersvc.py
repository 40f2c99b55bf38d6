#!/usr/bin/env python3
"""One replica of seed 000's user service (standard library only), on loopback:

    python3 usersvc.py usersvc-1 8501
    GET /user/health -> {"hostname": "usersvc-1", "msg": "user health check OK", "ok": true, "resolvedname": "127.0.0.1:8501"}

`hostname` is the replica's name (a pod name in the seed), `resolvedname`
its address.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        host, port = self.server.server_address[:2]
        if self.path == "/user/health":
            status = 200
            doc = {"hostname": self.server.name, "msg": "user health check OK", "ok": True, "resolvedname": f"{host}:{port}"}
        else:
            status, doc = 404, {"hostname": self.server.name, "msg": f"no {self.path}", "ok": False}
        body = (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.name = sys.argv[1]
    server.serve_forever()
