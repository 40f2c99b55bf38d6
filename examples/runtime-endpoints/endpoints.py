#!/usr/bin/env python3
"""Prints the endpoints Envoy holds for one cluster, one line each, from its
admin config dump on standard input:

    curl -s 'http://127.0.0.1:9300/config_dump?resource=dynamic_endpoint_configs&include_eds' \
      | python3 endpoints.py myservice
    127.0.0.1:8301 zone=us-central1-a weight=50 envoy.lb={"canary": "false"}
"""
import json
import sys

cluster = sys.argv[1]
for config in json.load(sys.stdin).get("configs", []):
    assignment = config.get("endpoint_config", {})
    if assignment.get("cluster_name") != cluster:
        continue
    for locality in assignment.get("endpoints", []):
        zone = locality.get("locality", {}).get("zone", "")
        for e in locality.get("lb_endpoints", []):
            a = e["endpoint"]["address"]["socket_address"]
            lb = e.get("metadata", {}).get("filter_metadata", {}).get("envoy.lb", {})
            weight = e.get("load_balancing_weight", 1)
            print(f"{a['address']}:{a['port_value']} zone={zone} weight={weight} envoy.lb={json.dumps(lb, sort_keys=True)}")
