#!/bin/sh
# As the published Envoy image's entry point: arguments that start with a
# dash are Envoy's flags. (It runs as root; the runbooks set ENVOY_UID=0.)
set -e
if [ "${1#-}" != "$1" ]; then
  set -- envoy "$@"
fi
exec "$@"
