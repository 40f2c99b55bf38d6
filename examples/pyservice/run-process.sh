#!/usr/bin/env bash
# Seed 002 with OS processes: the stand-in edge on 127.0.0.1:9180, pyservice
# on 127.0.0.1:8180, and `devbridge connect --envoy`, which serves the
# profile and runs the sidecar Envoy (127.0.0.1:8888, admin :9190).
# Prints the requests of README.md, then keeps running until Ctrl-C (or
# exits after them with --once).
source "$(dirname "$0")/../common.sh"
dir=examples/pyservice
need_free_ports 8180 8888 9180 9190 18100 18101

start_edge() { PORT=9180 start python3 "$dir/edge.py"; edge_pid=$!; }
start_edge
WHERE=process PORT=8180 start python3 "$dir/service.py"
start "$devbridge" connect "$dir/pyservice.toml" --envoy --envoy-bin "$envoy" --log info 2>"$work/devbridge.log"

wait_for "pyservice on 127.0.0.1:8180" http_ok http://127.0.0.1:8180/healthz
wait_for "the stand-in edge on 127.0.0.1:9180" http_ok http://127.0.0.1:9180/api
wait_for "the sidecar's route to the edge" http_ok http://127.0.0.1:8888/api -H 'Host: demo.example.com'

show http://127.0.0.1:8180/service/1
show http://127.0.0.1:8180/trace/1
echo "# the edge goes away"
kill "$edge_pid"
wait "$edge_pid" 2>/dev/null || true
show http://127.0.0.1:8180/trace/1
echo "# and comes back"
start_edge
wait_for "the stand-in edge on 127.0.0.1:9180" http_ok http://127.0.0.1:9180/api
show http://127.0.0.1:8180/trace/1

keep_running "pyservice on 127.0.0.1:8180, its sidecar on 127.0.0.1:8888 (admin 127.0.0.1:9190), devbridge admin 127.0.0.1:18101"
