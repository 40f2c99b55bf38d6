#!/usr/bin/env bash
# The demo, whole, on this machine: devbridge serving profiles/demo.toml, two
# stand-in edges on 127.0.0.1:9001/9002, and an Envoy sidecar on :8888 built
# from `devbridge bootstrap`. Prints a few requests, each as a command that
# can be pasted back, then keeps running until Ctrl-C (or exits after them
# with --once). Its ports are checked first: with another demo still running
# it stops at once and names the port.
#
# Needs: devbridge (DEVBRIDGE_BIN, else on PATH, else target/*/devbridge),
# envoy (ENVOY_BIN, else on PATH, else .venv/bin/envoy), python3, curl.
source "$(dirname "$0")/../common.sh"
need_free_ports 8888 9001 9002 9901 18000 18001

start python3 examples/demo/edge.py edge-1 9001
start python3 examples/demo/edge.py edge-2 9002
start "$devbridge" connect profiles/demo.toml --log warn 2>"$work/devbridge.log"
start_envoy profiles/demo.toml dev-proxy

wait_for "the stand-in edge on 127.0.0.1:9001" http_ok http://127.0.0.1:9001/
wait_for "the stand-in edge on 127.0.0.1:9002" http_ok http://127.0.0.1:9002/
wait_for "the sidecar on 127.0.0.1:8888" http_ok http://127.0.0.1:8888/healthz -H 'Host: demo.example.com'

show -H 'Host: demo.example.com' http://127.0.0.1:8888/healthz
show -H 'Host: demo.example.com' http://127.0.0.1:8888/api/colors
show -H 'Host: demo.example.com' http://127.0.0.1:8888/api/colors
show -H 'Host: demo.example.com' -H 'x-dev: canary' http://127.0.0.1:8888/api/colors
show -o /dev/null -w '%{http_code}\n' -H 'Host: demo.example.com' http://127.0.0.1:8888/unknown

keep_running "demo running: sidecar on 127.0.0.1:8888, Envoy admin on 127.0.0.1:9901"
