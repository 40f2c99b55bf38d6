//! Profile text in, readable JSON out: each test translates a small profile
//! and compares the dump of one resource with the whole expected value.

use serde_json::json;

use super::*;
use crate::model::EndpointSet;
use crate::profile::Profile;
use crate::xds::translate::translate_proxy;

fn mk_profile(extra: &str) -> Profile {
    let src = format!(
        r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:8080"]
[[domains]]
name = "a.test:8080"
aliases = ["b.test"]
{extra}
"#
    );
    crate::profile::parse_profile("test.toml", "test", &src).unwrap_or_else(|e| panic!("invalid test profile:\n{e}"))
}

fn mk_dump(extra: &str) -> Value {
    let profile = mk_profile(extra);
    dump_snapshot(&translate_proxy(&profile, &profile.proxies["p"], &EndpointSet::new()).expect("consistent"))
}

fn resource(dump: &Value, ty: &str, name: &str) -> Value {
    dump[ty]["resources"][name].clone()
}

#[test]
fn a_listener_shows_its_address_stat_prefix_and_route_configuration() {
    let dump = mk_dump("");
    assert_eq!(
        resource(&dump, "listeners", "listener_8080"),
        json!({
            "address": "127.0.0.1:8080",
            "http_connection_managers": [
                { "stat_prefix": "ingress_8080", "rds": "routes_8080", "http_filters": ["envoy.filters.http.router"] }
            ]
        })
    );
    assert_eq!(resource(&dump, "routes", "routes_8080")["virtual_hosts"][0]["routes"], json!([]));
}

#[test]
fn a_listener_with_tracing_shows_the_zipkin_collector_and_sampling() {
    let dump = mk_dump(
        r#"
[tracing]
zipkin = { cluster = "zipkin", path = "/api/v2/spans" }
sampling = 50
[clusters.zipkin.static]
"#,
    );
    assert_eq!(
        resource(&dump, "listeners", "listener_8080"),
        json!({
            "address": "127.0.0.1:8080",
            "http_connection_managers": [{
                "stat_prefix": "ingress_8080",
                "rds": "routes_8080",
                "http_filters": ["envoy.filters.http.router"],
                "tracing": { "zipkin": { "cluster": "zipkin", "path": "/api/v2/spans" }, "sampling": 50.0 }
            }]
        })
    );
    assert_eq!(
        resource(&dump, "clusters", "zipkin"),
        json!({ "type": "EDS", "lb": "ROUND_ROBIN", "connect_timeout": "1s" })
    );
}

#[test]
fn every_type_is_listed_with_its_version() {
    let dump = mk_dump("");
    for ty in ["clusters", "endpoints", "listeners", "routes"] {
        assert!(dump[ty]["version"].as_str().is_some_and(|v| v.len() == 16), "{ty}: {dump}");
    }
    assert_eq!(dump["clusters"]["resources"], json!({}));
}

#[test]
fn routes_show_their_match_and_action() {
    let dump = mk_dump(
        r#"
[[domains.routes]]
path = "/exact"
methods = ["GET"]
headers = [{ name = "x-dev", exact = "me" }, { name = "x-off", present = false }]
query = [{ name = "v", prefix = "2" }]
weighted_clusters = [{ cluster = "c", weight = 90 }, { cluster = "d", weight = 10 }]
timeout = "2s"
retries = { count = 3, on = ["5xx"], per_try_timeout = "500ms" }
host_rewrite = "up.test"
request_headers_add = { x-from = "devbridge" }
[[domains.routes]]
prefix = "/old"
redirect = { path = "/new", code = 302 }
[[domains.routes]]
regex = "/teapot/.*"
direct_response = { status = 418, body = "short and stout" }
[[domains.routes]]
prefix = "/"
cluster = "c"
prefix_rewrite = "/v2/"
[clusters.c.static]
[clusters.d.static]
"#,
    );
    assert_eq!(
        resource(&dump, "routes", "routes_8080"),
        json!({ "virtual_hosts": [{
            "name": "a.test:8080",
            "domains": ["a.test", "a.test:8080", "b.test", "b.test:8080"],
            "routes": [
                {
                    "match": {
                        "path": "/exact",
                        "headers": [
                            { "name": "x-dev", "exact": "me" },
                            { "name": "x-off", "present": false },
                            { "name": ":method", "regex": "GET" },
                        ],
                        "query": [{ "name": "v", "prefix": "2" }],
                    },
                    "route": {
                        "weighted_clusters": [{ "cluster": "c", "weight": 90 }, { "cluster": "d", "weight": 10 }],
                        "timeout": "2s",
                        "host_rewrite": "up.test",
                        "retries": { "count": 3, "on": ["5xx"], "per_try_timeout": "500ms" },
                    },
                    "request_headers_add": { "x-from": "devbridge" },
                },
                { "match": { "prefix": "/old" }, "redirect": { "path": "/new", "code": 302 } },
                { "match": { "regex": "/teapot/.*" }, "direct_response": { "status": 418, "body": "short and stout" } },
                { "match": { "prefix": "/" }, "route": { "cluster": "c", "prefix_rewrite": "/v2/" } },
            ],
        }]})
    );
}

#[test]
fn a_cluster_shows_its_type_lb_timeouts_health_check_breakers_tls_and_http2() {
    let dump = mk_dump(
        r#"
[[domains.routes]]
cluster = "c"
[clusters.c]
lb = "least_request"
connect_timeout = "250ms"
http2 = true
health_check = { path = "/healthz", host = "up.test", interval = "2s" }
circuit_breakers = { max_connections = 10, max_retries = 2 }
tls = { sni = "up.test", ca_file = "/etc/ca.pem" }
[clusters.c.static]
endpoints = [{ address = "10.0.0.1:443" }]
"#,
    );
    assert_eq!(
        resource(&dump, "clusters", "c"),
        json!({
            "type": "EDS",
            "lb": "LEAST_REQUEST",
            "connect_timeout": "250ms",
            "health_checks": [{
                "path": "/healthz", "host": "up.test", "interval": "2s", "timeout": "1s",
                "healthy_threshold": 1, "unhealthy_threshold": 2,
            }],
            "ignore_health_on_host_removal": true,
            "circuit_breakers": [{ "max_connections": 10, "max_retries": 2 }],
            "tls": { "sni": "up.test", "ca_file": "/etc/ca.pem", "alpn": ["h2"] },
            "http2": true,
        })
    );
}

#[test]
fn tls_without_a_ca_says_the_certificate_is_not_verified() {
    let dump = mk_dump("[[domains.routes]]\ncluster = \"c\"\n[clusters.c]\ntls = {}\n[clusters.c.static]\n");
    assert_eq!(
        resource(&dump, "clusters", "c")["tls"],
        json!({ "ca_file": "(none: the certificate is not verified)" })
    );
}

#[test]
fn a_dns_cluster_shows_its_hosts() {
    let dump = mk_dump("[[domains.routes]]\ncluster = \"c\"\n[clusters.c.dns]\nhosts = [\"localhost:9000\"]\n");
    assert_eq!(
        resource(&dump, "clusters", "c"),
        json!({
            "type": "STRICT_DNS",
            "lb": "ROUND_ROBIN",
            "connect_timeout": "1s",
            "dns_lookup_family": "V4_PREFERRED",
            "hosts": [{ "endpoints": [{ "address": "localhost:9000" }] }],
        })
    );
}

#[test]
fn a_load_assignment_shows_localities_endpoints_weights_and_metadata() {
    let dump = mk_dump(
        r#"
[[domains.routes]]
cluster = "c"
[clusters.c.static]
endpoints = [
  { address = "10.0.0.2:80", zone = "z1", weight = 3, metadata = { canary = "true" } },
  { address = "10.0.0.1:80", zone = "z1" },
  { address = "10.0.0.3:80" },
]
"#,
    );
    assert_eq!(
        resource(&dump, "endpoints", "c"),
        json!({
            "cluster": "c",
            "localities": [
                { "endpoints": [{ "address": "10.0.0.3:80" }] },
                { "zone": "z1", "endpoints": [
                    { "address": "10.0.0.1:80" },
                    { "address": "10.0.0.2:80", "weight": 3, "metadata": { "envoy.lb": { "canary": "true" } } },
                ] },
            ],
        })
    );
}

#[test]
fn a_resource_that_does_not_decode_says_so() {
    let any = pbwk::Any { type_url: "type.googleapis.com/x.Y".into(), value: vec![] };
    assert_eq!(
        dump_any(ResourceType::Cluster, &any),
        json!({ "error": "expected type.googleapis.com/envoy.config.cluster.v3.Cluster, found type.googleapis.com/x.Y" })
    );
}

#[test]
fn an_endpoint_marked_by_the_probes_shows_its_health_status() {
    let profile = mk_profile(
        r#"
[[domains.routes]]
cluster = "c"
[clusters.c.static]
endpoints = [{ address = "10.0.0.1:80" }, { address = "10.0.0.2:80" }]
"#,
    );
    let crate::model::Source::Static(eps) = &profile.clusters["c"].source else { unreachable!() };
    let marked: crate::model::Endpoints = eps
        .iter()
        .map(|e| crate::model::Endpoint {
            unhealthy: e.addr.port() == 80 && e.addr.ip().to_string() == "10.0.0.2",
            ..e.clone()
        })
        .collect();
    let lookup = EndpointSet::from([("c".to_string(), marked)]);
    let dump = dump_snapshot(&translate_proxy(&profile, &profile.proxies["p"], &lookup).expect("consistent"));
    assert_eq!(
        resource(&dump, "endpoints", "c"),
        json!({
            "cluster": "c",
            "localities": [{ "endpoints": [
                { "address": "10.0.0.1:80" },
                { "address": "10.0.0.2:80", "health_status": "UNHEALTHY" },
            ] }],
        })
    );
}

#[test]
fn a_tcp_service_listener_shows_its_tcp_proxy_and_a_tcp_check_says_so() {
    let src = r#"
[zones.z]
[proxies.p]
zone = "z"
tcp = [{ name = "pg", port = 15432, cluster = "db", idle_timeout = "30m" }]
[clusters.db]
health_check = { tcp = true }
static.endpoints = [{ address = "127.0.0.1:5432" }]
"#;
    let profile = crate::profile::parse_profile("t.toml", "t", src).unwrap();
    let snapshot =
        crate::xds::translate::translate_proxy(&profile, &profile.proxies["p"], &Default::default()).unwrap();
    let dump = dump_snapshot(&snapshot);
    assert_eq!(
        resource(&dump, "listeners", "tcp_pg"),
        json!({
            "address": "127.0.0.1:15432",
            "tcp_proxies": [{
                "stat_prefix": "tcp_pg", "cluster": "db", "idle_timeout": "30m",
                "access_log": ["envoy.access_loggers.stdout"],
            }],
        })
    );
    assert_eq!(resource(&dump, "clusters", "db")["health_checks"][0]["tcp_health_check"], json!({}));
}
