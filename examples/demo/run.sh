#!/usr/bin/env bash
# The demo, whole, on this machine: devbridge serving profiles/demo.toml, two
# stand-in edges on 127.0.0.1:9001/9002, and an Envoy sidecar on :8888 built
# from `devbridge bootstrap demo`. Prints a few requests, then keeps running
# until Ctrl-C (or exits after them with --once).
#
# Needs: devbridge (DEVBRIDGE_BIN, else on PATH, else target/*/devbridge),
# envoy (ENVOY_BIN, else on PATH, else .venv/bin/envoy), python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

once=0
[ "${1:-}" = "--once" ] && once=1

find_bin() { # name, env override, fallbacks...
  local name=$1 override=$2; shift 2
  if [ -n "$override" ]; then echo "$override"; return; fi
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  for f in "$@"; do [ -x "$f" ] && { echo "$f"; return; }; done
  echo "demo: cannot find $name; run ./install.sh --with-envoy first" >&2; exit 1
}
devbridge=$(find_bin devbridge "${DEVBRIDGE_BIN:-}" target/release/devbridge target/debug/devbridge)
envoy=$(find_bin envoy "${ENVOY_BIN:-}" .venv/bin/envoy "$HOME/.local/bin/envoy")

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

python3 examples/demo/edge.py edge-1 9001 & pids+=($!)
python3 examples/demo/edge.py edge-2 9002 & pids+=($!)
"$devbridge" connect profiles/demo.toml --log warn & pids+=($!)
"$devbridge" bootstrap profiles/demo.toml > "$work/envoy.yaml"
"$envoy" -c "$work/envoy.yaml" --disable-hot-restart --concurrency 1 -l warn --log-path "$work/envoy.log" & pids+=($!)

# Wait (bounded, 10 s) for both edges to listen and the sidecar to be configured.
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:9001/ 2>/dev/null \
    && curl -fsS -o /dev/null http://127.0.0.1:9002/ 2>/dev/null \
    && curl -fsS -o /dev/null -H 'Host: demo.example.com' http://127.0.0.1:8888/healthz 2>/dev/null \
    && break
  sleep 0.1
done

show() { echo "\$ curl $*"; curl -sS "$@"; }
show -H 'Host: demo.example.com' http://127.0.0.1:8888/healthz
show -H 'Host: demo.example.com' http://127.0.0.1:8888/api/colors
show -H 'Host: demo.example.com' http://127.0.0.1:8888/api/colors
show -H 'Host: demo.example.com' -H 'x-dev: canary' http://127.0.0.1:8888/api/colors
show -o /dev/null -w '%{http_code}\n' -H 'Host: demo.example.com' http://127.0.0.1:8888/unknown

[ "$once" = 1 ] && exit 0
echo "demo running: sidecar on 127.0.0.1:8888, Envoy admin on 127.0.0.1:9901; Ctrl-C stops it"
wait
