#!/usr/bin/env bash
# Seed 000: the user service behind an edge Envoy, scaled from one replica to
# three. devbridge serves a copy of scaled-service.toml and follows it;
# scaling starts two more replicas (127.0.0.1:8502, :8503) and lists them in
# that copy, and the edge Envoy (127.0.0.1:8500, admin :9500) cycles through
# all three. Prints the requests of README.md, then keeps running until
# Ctrl-C (or exits with --once).
source "$(dirname "$0")/../common.sh"
dir=examples/scaled-service
need_free_ports 8500 8501 8502 8503 9500 18500 18501

profile="$work/scaled-service.toml"
cp "$dir/scaled-service.toml" "$profile"
replica() { start python3 "$dir/usersvc.py" "usersvc-$1" "850$1"; wait_for "usersvc-$1" http_ok "http://127.0.0.1:850$1/user/health"; }
healthy_hosts_are() { [ "$(curl -s --max-time 2 http://127.0.0.1:9500/clusters | grep -c '^usersvc::.*::health_flags::healthy$')" = "$1" ]; }

replica 1
start "$devbridge" connect "$profile" --log info 2>"$work/devbridge.log"
start_envoy "$profile" edge-envoy
wait_for "the edge Envoy's route to usersvc" http_ok http://127.0.0.1:8500/user/health

echo "# one replica"
for _ in 1 2 3; do show http://127.0.0.1:8500/user/health; done

echo "# scale to three: two more replicas, listed in the profile (devbridge follows the file)"
replica 2
replica 3
endpoints='endpoints = [{ address = "127.0.0.1:8501" }, { address = "127.0.0.1:8502" }, { address = "127.0.0.1:8503" }]'
sed "s/^endpoints = .*/$endpoints/" "$profile" > "$profile.new"
mv "$profile.new" "$profile"
echo "# $endpoints"
wait_for "three healthy replicas in the edge Envoy" healthy_hosts_are 3
for _ in 1 2 3 4 5 6; do show http://127.0.0.1:8500/user/health; done

keep_running "edge Envoy on 127.0.0.1:8500 (admin 127.0.0.1:9500); the profile devbridge follows: $profile"
