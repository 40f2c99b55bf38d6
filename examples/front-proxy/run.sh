#!/usr/bin/env bash
# Seed 004: two film instances (127.0.0.1:8411, :8412), a rating service
# (:8421), devbridge serving front-proxy.toml, and the front proxy Envoy
# (127.0.0.1:8400, admin :9400) from `devbridge bootstrap`. Prints the
# requests of README.md, then keeps running until Ctrl-C (or exits with --once).
source "$(dirname "$0")/../common.sh"
dir=examples/front-proxy
need_free_ports 8400 8411 8412 8421 9400 18400 18401

start python3 "$dir/service.py" films films-1 8411
start python3 "$dir/service.py" films films-2 8412
start python3 "$dir/service.py" ratings ratings-1 8421
start "$devbridge" connect "$dir/front-proxy.toml" --log info 2>"$work/devbridge.log"
start_envoy "$dir/front-proxy.toml" front-proxy

for port in 8411 8412 8421; do
  wait_for "the service on 127.0.0.1:$port" curl -sS --max-time 1 -o /dev/null "http://127.0.0.1:$port/"
done
wait_for "the front proxy's /films route" http_ok http://127.0.0.1:8400/films
wait_for "the front proxy's /ratings route" http_ok http://127.0.0.1:8400/ratings
# Count from here: the waits above also went through the proxy.
curl -fsS --max-time 2 -o /dev/null -X POST http://127.0.0.1:9400/reset_counters

for _ in 1 2 3 4; do show http://127.0.0.1:8400/films; done
show http://127.0.0.1:8400/ratings
show -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8400/nowhere
echo "\$ curl -s http://127.0.0.1:9400/stats/prometheus | grep upstream_rq_total | grep -E 'films|ratings'"
curl -sS --max-time 5 http://127.0.0.1:9400/stats/prometheus | grep '^envoy_cluster_upstream_rq_total{' | grep -E '"(films|ratings)"'

keep_running "front proxy on 127.0.0.1:8400 (metrics: http://127.0.0.1:9400/stats/prometheus)"
