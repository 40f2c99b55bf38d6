#!/usr/bin/env bash
# Seed 003: endpoints of `myservice` added and removed through devbridge's
# admin API while requests go through Envoy. Three upstreams listen on
# 127.0.0.1:8301-8303; devbridge serves runtime-endpoints.toml (admin API on
# 127.0.0.1:18301); Envoy listens on 127.0.0.1:8300 (admin :9300). Prints the
# steps of README.md, then keeps running until Ctrl-C (or exits with --once).
source "$(dirname "$0")/../common.sh"
dir=examples/runtime-endpoints
api=http://127.0.0.1:18301/v1/clusters/myservice/endpoints
need_free_ports 8300 8301 8302 8303 9300 18300 18301

for i in 1 2 3; do start python3 "$dir/upstream.py" "upstream-$i" "830$i"; done
start "$devbridge" connect "$dir/runtime-endpoints.toml" --log info 2>"$work/devbridge.log"
start_envoy "$dir/runtime-endpoints.toml" edge

# probe: one request through Envoy, printed as `STATUS BODY`.
probe() {
  echo "\$ curl http://127.0.0.1:8300/"
  local status
  status=$(curl -sS --max-time 5 -o "$work/body" -w '%{http_code}' http://127.0.0.1:8300/)
  echo "$status $(cat "$work/body")"
}
status_is() { [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:8300/)" = "$1" ]; }
answers() { curl -s --max-time 2 http://127.0.0.1:8300/ | grep -q "$1"; }
healthy_hosts_are() { [ "$(curl -s --max-time 2 http://127.0.0.1:9300/clusters | grep -c '^myservice::.*::health_flags::healthy$')" = "$1" ]; }
# register JSON: PUT the endpoint list (it replaces the whole list).
register() { show -o /dev/null -w '%{http_code}\n' -X PUT "$api" -d "$1"; }

for i in 1 2 3; do wait_for "upstream-$i" http_ok "http://127.0.0.1:830$i/"; done
wait_for "Envoy's listener on 127.0.0.1:8300" status_is 503

echo "# no endpoints yet: Envoy answers by itself"
probe
echo "# register one, with seed 003's tags: zone (az), weight, canary"
register '[{"address": "127.0.0.1:8301", "zone": "us-central1-a", "weight": 50, "metadata": {"canary": "false"}}]'
wait_for "upstream-1 to take traffic" answers upstream-1
probe
probe
echo "# remove it"
show -o /dev/null -w '%{http_code}\n' -X DELETE "$api"
wait_for "the endpoint to be gone" status_is 503
probe
echo "# register three: requests cycle through them"
register '[{"address": "127.0.0.1:8301", "zone": "us-central1-a", "weight": 50, "metadata": {"canary": "false"}}, {"address": "127.0.0.1:8302", "zone": "us-central1-b", "weight": 50, "metadata": {"canary": "false"}}, {"address": "127.0.0.1:8303", "zone": "us-central1-b", "weight": 50, "metadata": {"canary": "true"}}]'
wait_for "three endpoints in Envoy" healthy_hosts_are 3
for _ in 1 2 3 4 5 6; do probe; done
echo "# the tags, as Envoy holds them"
echo "\$ curl -s 'http://127.0.0.1:9300/config_dump?resource=dynamic_endpoint_configs&include_eds' | python3 $dir/endpoints.py myservice"
curl -sS --max-time 5 'http://127.0.0.1:9300/config_dump?resource=dynamic_endpoint_configs&include_eds' | python3 "$dir/endpoints.py" myservice

keep_running "Envoy on 127.0.0.1:8300, endpoints API at $api"
