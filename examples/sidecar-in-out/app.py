#!/usr/bin/env python3
"""A service behind its own Envoy sidecar (seed 001), standard library only.

    python3 app.py backend 8620
    python3 app.py frontend 8610 http://127.0.0.1:8602/ backend

GET / answers `NAME: trace <x-b3-traceid> request <x-request-id>`, the trace
headers its sidecar's inbound listener passed on. With a call URL and Host,
it first calls that service through its sidecar's outbound listener, passing
the trace headers on (all an application must do for a trace to join up),
and appends `; <host> says: <answer>`. GET /healthz answers ok.
"""
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRACE_HEADERS = ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags")
# The sidecar is on loopback: never send these calls to an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.answer(200, "ok")
        text = f"{NAME}: trace {self.headers.get('x-b3-traceid', '-')} request {self.headers.get('x-request-id', '-')}"
        if CALL:
            url, host = CALL
            headers = {"Host": host}
            headers.update({h: self.headers[h] for h in TRACE_HEADERS if self.headers.get(h)})
            try:
                with OPENER.open(urllib.request.Request(url, headers=headers), timeout=10) as r:
                    said = r.read().decode(errors="replace").strip()
            except urllib.error.HTTPError as e:
                said = f"{e.code} {e.read().decode(errors='replace').strip()}"
            except OSError as e:
                said = f"cannot reach {url}: {e}"
            text += f"; {host} says: {said}"
        self.answer(200, text)

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
    NAME, PORT = sys.argv[1], int(sys.argv[2])
    CALL = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else None
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
