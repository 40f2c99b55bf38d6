#!/usr/bin/env bash
# Seed 001: a frontend and a backend app, each with its own Envoy sidecar
# configured by devbridge from sidecar-in-out.toml (two proxies, so two
# Envoys from two `devbridge bootstrap` outputs), a stand-in Zipkin collector
# on 127.0.0.1:8640, and Prometheus stats on each sidecar's admin port.
# Prints the requests of README.md, then keeps running until Ctrl-C (or
# exits with --once).
source "$(dirname "$0")/../common.sh"
dir=examples/sidecar-in-out
profile="$dir/sidecar-in-out.toml"
need_free_ports 8601 8602 8610 8620 8621 8640 9610 9620 18600 18601

start python3 "$dir/collector.py" 8640
start python3 "$dir/app.py" backend 8620
start python3 "$dir/app.py" frontend 8610 http://127.0.0.1:8602/ backend
start "$devbridge" connect "$profile" --log info 2>"$work/devbridge.log"
start_envoy "$profile" frontend
start_envoy "$profile" backend

healthy() { # ADMIN_PORT CLUSTER: the cluster's one host passes its health check
  curl -s --max-time 2 "http://127.0.0.1:$1/clusters" | grep -qx "$2::.*::health_flags::healthy"
}
wait_for "the collector" curl -fsS --max-time 1 -o /dev/null http://127.0.0.1:8640/api/v2/services
wait_for "the frontend sidecar to find the frontend app healthy" healthy 9610 frontend-app
wait_for "the frontend sidecar to find the backend (through its sidecar) healthy" healthy 9610 backend
wait_for "the backend sidecar to find the backend app healthy" healthy 9620 backend-app
# Count from here: the health checks above are not part of the story.
for port in 9610 9620; do curl -fsS --max-time 2 -o /dev/null -X POST "http://127.0.0.1:$port/reset_counters"; done

echo "# through the frontend's inbound listener; the frontend calls the backend through its outbound one"
for i in 1 2 3 4 5; do show http://127.0.0.1:8601/ | tee "$work/answer-$i"; done

# Envoy sends spans in batches (5 per worker thread, or every 5 s).
trace=$(sed -n 's/^frontend: trace \([0-9a-f]*\) .*/\1/p' "$work/answer-1")
spans_of() {
  curl -s --max-time 2 "http://127.0.0.1:8640/api/v2/trace/$1" | python3 -c '
import json, sys
for s in sorted(json.load(sys.stdin), key=lambda s: (s["localEndpoint"]["serviceName"], s.get("kind", ""), s["name"])):
    print(s["localEndpoint"]["serviceName"], s.get("kind", "-"), s["name"])'
}
wait_for "the first request's spans from both sidecars" test "$(spans_of "$trace" | wc -l)" -ge 3
echo "# the first request's trace, as the Zipkin collector got it: each hop reports its own span"
echo "\$ curl -s http://127.0.0.1:8640/api/v2/trace/$trace   # service, kind, name of each span"
spans_of "$trace"

echo "# Prometheus: the frontend sidecar's view of the backend"
echo "\$ curl -s http://127.0.0.1:9610/stats/prometheus | grep -E '^envoy_cluster_(upstream_rq_total|health_check_healthy)\\{envoy_cluster_name=\"backend\"\\}'"
curl -sS --max-time 5 http://127.0.0.1:9610/stats/prometheus \
  | grep -E '^envoy_cluster_(upstream_rq_total|health_check_healthy)\{envoy_cluster_name="backend"\}'

keep_running "frontend at 127.0.0.1:8601 (sidecar admin 127.0.0.1:9610), backend sidecar admin 127.0.0.1:9620, spans at 127.0.0.1:8640"
