#!/usr/bin/env python3
"""pyservice, the service under development in seed 002 (standard library only).

    GET /service/1  Hello from <where> (service 1)! hostname: <hostname> resolvedhostname: <ip>
    GET /trace/1    calls the upstream through the Envoy sidecar and puts what came
                    back after "Hello from <where> -- "
    GET /healthz    ok

Environment: WHERE (default "process"), BIND (127.0.0.1), PORT (8180),
UPSTREAM_URL (http://127.0.0.1:8888/api: the sidecar's listener) and
UPSTREAM_HOST (demo.example.com: the domain devbridge routes).
Trace headers of the request served are passed on to the upstream call, as
a service behind Envoy must for its traces to join up.
"""
import os
import socket
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WHERE = os.environ.get("WHERE", "process")
BIND = os.environ.get("BIND", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8180"))
UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8888/api")
UPSTREAM_HOST = os.environ.get("UPSTREAM_HOST", "demo.example.com")
TRACE_HEADERS = ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags")

HOSTNAME = socket.gethostname()
try:
    RESOLVED = socket.gethostbyname(HOSTNAME)
except OSError:
    RESOLVED = "unknown"

# The sidecar is on loopback: never send these calls to an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call_upstream(incoming):
    headers = {"Host": UPSTREAM_HOST}
    headers.update({h: incoming[h] for h in TRACE_HEADERS if incoming.get(h)})
    request = urllib.request.Request(UPSTREAM_URL, headers=headers)
    try:
        with OPENER.open(request, timeout=10) as r:
            return r.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as e:  # Envoy's own answers: 503 no healthy upstream, ...
        return e.read().decode(errors="replace").strip() or f"HTTP {e.code}"
    except OSError as e:
        return f"cannot reach the sidecar at {UPSTREAM_URL}: {e}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        tail = f"(service 1)! hostname: {HOSTNAME} resolvedhostname: {RESOLVED}"
        if self.path == "/service/1":
            self.answer(200, f"Hello from {WHERE} {tail}")
        elif self.path == "/trace/1":
            self.answer(200, f"Hello from {WHERE} -- {call_upstream(self.headers)} {tail}")
        elif self.path == "/healthz":
            self.answer(200, "ok")
        else:
            self.answer(404, "not found")

    def answer(self, status, text):
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer((BIND, PORT), Handler).serve_forever()
