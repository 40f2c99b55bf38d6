# Shared by the examples' run scripts; sourced, never run. It moves to the
# repository root and sets:
#   devbridge, envoy  the binaries: DEVBRIDGE_BIN / ENVOY_BIN, else on PATH,
#                     else target/{release,debug}/devbridge, .venv/bin/envoy,
#                     ~/.local/bin/envoy (what ./install.sh --with-envoy links)
#   work              a private directory for logs, bootstraps and state,
#                     removed on exit
#   once              1 when the script was given --once
# and provides: start (run in the background, stopped on exit), start_envoy
# (an Envoy from `devbridge bootstrap`), wait_for (bounded polling), show
# (print a request and its answer), need_free_ports.
# Every process started is stopped on exit (SIGTERM, SIGKILL after 10 s); on
# failure the tail of every log is printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

example=$(basename "$(dirname "$0")")
once=0
case "${1:-}" in
  --once) once=1 ;;
  "") ;;
  *) echo "usage: $0 [--once]" >&2; exit 64 ;;
esac

find_bin() { # name, env override, fallbacks...
  local name=$1 override=$2; shift 2
  if [ -n "$override" ]; then echo "$override"; return; fi
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  for f in "$@"; do [ -x "$f" ] && { echo "$f"; return; }; done
  echo "$example: cannot find $name; run ./install.sh --with-envoy (or set ${name^^}_BIN)" >&2
  exit 1
}
devbridge=$(find_bin devbridge "${DEVBRIDGE_BIN:-}" target/release/devbridge target/debug/devbridge)
envoy=$(find_bin envoy "${ENVOY_BIN:-}" .venv/bin/envoy "$HOME/.local/bin/envoy")

# The example's profile decides devbridge's addresses, not the caller's
# environment; registered endpoints live and die with this run.
unset DEVBRIDGE_XDS_LISTEN DEVBRIDGE_ADMIN_LISTEN DEVBRIDGE_PROFILE_PATH
work=$(mktemp -d "${TMPDIR:-/tmp}/devbridge-$example.XXXXXX")
export XDG_STATE_HOME="$work/state"

pids=()
start() { "$@" & pids+=($!); }

# start_envoy PROFILE PROXY: writes the proxy's bootstrap with `devbridge
# bootstrap` and runs Envoy on it, with one worker thread so that round robin
# is visible request by request (each worker keeps its own turn).
start_envoy() {
  local profile=$1 proxy=$2
  "$devbridge" bootstrap "$profile" --proxy "$proxy" --out "$work/$proxy.yaml" 2>/dev/null
  start "$envoy" -c "$work/$proxy.yaml" --disable-hot-restart --concurrency 1 -l info \
    --log-path "$work/envoy-$proxy.log"
}

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$code" != 0 ]; then
    for f in "$work"/*.log; do
      [ -f "$f" ] && { echo "--- $f (last 20 lines)"; tail -n 20 "$f"; }
    done >&2
  fi
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds, for
# at most 15 s.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 150); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$example: gave up waiting for $what" >&2
  return 1
}

# http_ok URL [curl args]: the URL answers 2xx.
http_ok() { local url=$1; shift; curl -fsS --max-time 2 -o /dev/null "$@" "$url"; }

# show CURL-ARGS...: prints the command (quoted so that it can be pasted),
# then the answer.
show() {
  local line="\$ curl" a
  for a in "$@"; do
    case "$a" in
      *[!A-Za-z0-9_./:=@%+-]*) line+=" '$a'" ;;
      *) line+=" $a" ;;
    esac
  done
  echo "$line"
  curl -sS --max-time 5 "$@"
}

# need_free_ports PORT...: fails early, naming the port, when one is taken.
need_free_ports() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$example: 127.0.0.1:$p is in use (another example or the demo still running?)" >&2
      exit 1
    fi
  done
}

# keep_running MESSAGE: without --once, wait for Ctrl-C.
keep_running() {
  [ "$once" = 1 ] && exit 0
  echo "$1; Ctrl-C stops it"
  wait
}
