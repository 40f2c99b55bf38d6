#!/usr/bin/env python3
"""A stand-in Zipkin collector (standard library only, loopback): keeps the
spans Envoy POSTs to /api/v2/spans (Zipkin API v2, JSON) in memory and
answers the two Zipkin queries this example needs:

    GET /api/v2/services         the service names seen
    GET /api/v2/trace/<traceId>  the spans of one trace

    python3 collector.py 8640
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SPANS = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.read_body()
        if self.path != "/api/v2/spans":
            return self.answer(404, {"error": f"no {self.path}"})
        try:
            spans = json.loads(body)
        except ValueError as e:
            return self.answer(400, {"error": str(e)})
        with LOCK:
            SPANS.extend(spans)
        self.answer(202, None)

    def do_GET(self):
        with LOCK:
            spans = list(SPANS)
        if self.path == "/api/v2/services":
            names = {s.get("localEndpoint", {}).get("serviceName") for s in spans}
            return self.answer(200, sorted(n for n in names if n))
        if self.path.startswith("/api/v2/trace/"):
            trace = self.path.rsplit("/", 1)[1]
            found = [s for s in spans if s.get("traceId") == trace]
            return self.answer(200 if found else 404, found)
        self.answer(404, {"error": f"no {self.path}"})

    def read_body(self):
        # Envoy sends its span reports chunked.
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def answer(self, status, doc):
        body = b"" if doc is None else (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
