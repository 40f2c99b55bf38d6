//! A `/status` body in, the whole summary out.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_800_000_000_000;

fn mk_status(extra: Value) -> Status {
    let mut base = json!({
        "devbridge": "0.1.0",
        "now_ms": NOW,
        "ready": true,
        "profile": { "name": "demo", "file": "profiles/demo.toml" },
        "reload": { "file": "profiles/demo.toml", "loaded_at_ms": NOW - 125_000, "reloads_ok": 2, "reloads_failed": 0 },
        "proxies": { "dev-proxy": { "version": "v-all", "types": { "CDS": "v-cds" } } },
        "registered": {},
        "envoys": [],
        "sources": [],
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(base).expect("a status view")
}

#[test]
fn an_idle_daemon_shows_its_profile_proxies_and_nothing_connected() {
    assert_eq!(
        render(&mk_status(json!({})), "127.0.0.1:18001"),
        "devbridge 0.1.0 at 127.0.0.1:18001: ready
profile demo (profiles/demo.toml), loaded 2m 5s ago
reloads: 2 ok, 0 failed
proxies:
  dev-proxy  version v-all
envoys: 0 connected
sources: none
"
    );
}

#[test]
fn a_connected_envoy_shows_its_ack_state_per_type_and_nack_text() {
    let status = mk_status(json!({
        "envoys": [{
            "stream": 3,
            "peer": "127.0.0.1:5555",
            "node": { "id": "dev-proxy-1", "cluster": "dev-proxy", "zone": "dev-local" },
            "proxy": "dev-proxy",
            "connected_at_ms": NOW - 3_600_000 * 2 - 60_000,
            "types": {
                "CDS": { "sent": "c2", "acked": "c1",
                         "last_nack": { "version": "c2", "error": "Invalid path: /nonexistent/ca.pem", "at_ms": NOW - 4_000 } },
                "EDS": { "sent": "e1", "acked": "e1" },
                "LDS": { "sent": "l2", "acked": "l1" },
            },
        }, {
            "stream": 4,
            "peer": "127.0.0.1:6666",
            "node": { "id": "x", "cluster": "ghost", "zone": "" },
            "proxy": null,
            "unmatched": "no proxy of profile demo matches node.cluster \"ghost\"",
            "connected_at_ms": NOW,
            "types": { "CDS": {} },
        }],
    }));
    let text = render(&status, "127.0.0.1:18001");
    let envoys: Vec<&str> =
        text.lines().skip_while(|l| !l.starts_with("envoys:")).take_while(|l| !l.starts_with("sources")).collect();
    assert_eq!(
        envoys,
        [
            "envoys: 2 connected",
            "  dev-proxy-1 (node.cluster dev-proxy, zone dev-local) from 127.0.0.1:5555, connected 2h 1m ago",
            "    proxy dev-proxy",
            "    CDS  REJECTED        sent c2  acked c1",
            "         last NACK 4s ago of c2: Invalid path: /nonexistent/ca.pem",
            "    EDS  acked           sent e1  acked e1",
            "    LDS  waiting for ACK sent l2  acked l1",
            "  x (node.cluster ghost, zone -) from 127.0.0.1:6666, connected 0s ago",
            "    UNMATCHED, served nothing: no proxy of profile demo matches node.cluster \"ghost\"",
            "    CDS  nothing sent    sent -  acked -",
        ]
    );
}

#[test]
fn a_failed_reload_shows_every_located_error() {
    let status = mk_status(json!({
        "reload": {
            "file": "profiles/demo.toml", "loaded_at_ms": NOW - 10_000, "reloads_ok": 1, "reloads_failed": 1,
            "last_change": "routes: 1 added",
            "error": { "at_ms": NOW - 1_000, "errors": ["profiles/demo.toml:3:9: domains[0].name: bad", "profiles/demo.toml:7:1: x: y"] },
        },
    }));
    let text = render(&status, "a");
    assert_eq!(
        text.lines().skip(2).take(4).collect::<Vec<_>>(),
        [
            "reloads: 1 ok, 1 failed; last change: routes: 1 added",
            "last reload FAILED 1s ago (the previous profile is still served; fix the file to reload):",
            "  profiles/demo.toml:3:9: domains[0].name: bad",
            "  profiles/demo.toml:7:1: x: y",
        ]
    );
}

#[test]
fn sources_and_registered_endpoints_are_listed() {
    let status = mk_status(json!({
        "sources": [
            { "name": "pods \"app=edge\" in edge via context staging", "clusters": ["edge"], "state": "connected",
              "since_ms": NOW - 120_000, "synced": true, "data_age_ms": 0, "seen": 4, "selected": 3,
              "skipped": [{ "cluster": "edge", "object": "edge/e4", "reason": "has no container port \"http\"" }] },
            { "name": "nodes via context staging", "clusters": ["edge"], "state": "degraded",
              "since_ms": NOW - 30_000, "error": "the API server did not answer; is the VPN up?",
              "synced": true, "data_age_ms": 30_000, "seen": 2, "selected": 2, "skipped": [] },
        ],
        "registered": {
            "api": [
                { "address": "127.0.0.1:9001", "zone": "z1", "weight": 2 },
                { "address": "127.0.0.1:9002", "metadata": { "canary": "true" } },
            ],
            "empty": [],
        },
    }));
    let text = render(&status, "a");
    assert_eq!(
        text.lines().skip_while(|l| !l.starts_with("sources")).collect::<Vec<_>>(),
        [
            "sources:",
            "  pods \"app=edge\" in edge via context staging: connected since 2m 0s ago; 4 seen, 3 selected; clusters edge",
            "    skipped edge/e4 for edge: has no container port \"http\"",
            "  nodes via context staging: degraded since 30s ago (serving the last known endpoints, 30s old); 2 seen, 2 selected; clusters edge",
            "    error: the API server did not answer; is the VPN up?",
            "registered endpoints:",
            "  api: 127.0.0.1:9001 (zone z1, weight 2), 127.0.0.1:9002 (canary=true)",
            "  empty: none",
        ]
    );
}

#[test]
fn ages_are_coarse() {
    assert_eq!(
        [ago(NOW, NOW + 5), ago(NOW, NOW - 59_999), ago(NOW, NOW - 86_400_000 * 3 - 3_600_000)],
        ["0s ago", "59s ago", "3d 1h ago"]
    );
}

#[test]
fn a_body_that_is_not_status_json_is_not_devbridge() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(
        parse(addr, "<html>").unwrap_err().to_string(),
        "127.0.0.1:1 does not speak devbridge's admin API (/status is not JSON: expected value at line 1 column 1); is it devbridge's admin address? (--admin)"
    );
}

#[test]
fn summaries_come_first_and_each_probed_cluster_lists_its_endpoints() {
    let status = mk_status(json!({
        "sources": [{
            "name": "pods \"app=edge-envoy\" in edge via context staging",
            "clusters": ["edge"],
            "state": "degraded",
            "since_ms": NOW - 30_000,
            "error": "is the VPN up? the API server https://10.0.0.1:6443 did not answer: timed out",
            "synced": true,
            "data_age_ms": 30_000,
            "seen": 2,
            "selected": 2,
            "summary": "API server unreachable (VPN down?); serving 2 last known edges, 0 reachable",
        }],
        "probes": {
            "edge": {
                "kind": "tcp connect", "endpoints": 2, "reachable": 0, "unreachable": 2,
                "note": "none reachable: nothing marked unhealthy (most likely this machine's own network: VPN down?); Envoy keeps trying them all",
                "summary": "2 endpoints listed, 0 reachable (VPN or firewall?)",
                "results": [
                    { "address": "10.0.0.1:80", "zone": "eu-1a", "state": "unreachable", "since_ms": NOW - 20_000,
                      "error": "no answer within 2s (dropped: VPN or firewall?)" },
                    { "address": "10.0.0.2:80", "state": "unknown" },
                ],
            },
            "local": {
                "kind": "http GET /healthz", "endpoints": 1, "reachable": 1, "unreachable": 0,
                "summary": "healthy: 1/1 reachable",
                "results": [{ "address": "127.0.0.1:9001", "state": "reachable", "latency_ms": 0.42, "since_ms": NOW - 60_000 }],
            },
        },
    }));
    let text = render(&status, "127.0.0.1:18001");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "devbridge 0.1.0 at 127.0.0.1:18001: ready",
            "  pods \"app=edge-envoy\" in edge via context staging: API server unreachable (VPN down?); serving 2 last known edges, 0 reachable",
            "  cluster local: healthy: 1/1 reachable",
        ]
    );
    let probes: Vec<&str> = lines.iter().copied().skip_while(|l| !l.starts_with("probes")).collect();
    assert_eq!(
        probes,
        [
            "probes (from this machine):",
            "  edge (tcp connect): 2 endpoints listed, 0 reachable (VPN or firewall?)",
            "    note: none reachable: nothing marked unhealthy (most likely this machine's own network: VPN down?); Envoy keeps trying them all",
            "    10.0.0.1:80 (eu-1a) UNREACHABLE since 20s ago: no answer within 2s (dropped: VPN or firewall?)",
            "    10.0.0.2:80 not probed yet",
            "  local (http GET /healthz): healthy: 1/1 reachable",
            "    127.0.0.1:9001 reachable since 1m 0s ago, 0.4 ms",
        ]
    );
}
