use super::*;
use crate::profile::parse_profile;

fn mk_profile() -> Profile {
    let src = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["demo.test:8888", "other.test:8888"]

[[domains]]
name = "demo.test:8888"
aliases = ["*.demo.test", "localhost"]

[[domains.routes]]
path = "/healthz"
direct_response = { status = 200, body = "ok" }

[[domains.routes]]
prefix = "/api"
headers = [{ name = "x-dev", exact = "me" }]
cluster = "local"

[[domains.routes]]
prefix = "/api"
query = [{ name = "v", regex = "[0-9]+" }]
methods = ["POST"]
weighted_clusters = [{ cluster = "edge", weight = 3 }, { cluster = "local", weight = 1 }]

[[domains.routes]]
prefix = "/api"
cluster = "edge"
timeout = "5s"
prefix_rewrite = "/v2"
retries = { count = 2, on = ["5xx"] }

[[domains]]
name = "other.test:8888"
[[domains.routes]]
prefix = "/"
headers = [{ name = "x-debug", present = true, invert = true }]
redirect = { https = true, path = "/moved" }

[clusters.local.static]
endpoints = [{ address = "127.0.0.1:9001", zone = "z" }]

[clusters.edge.kubernetes]
namespace = "edge"
selector = "app=edge"
port = "http"
"#;
    parse_profile("t.toml", "t", src).unwrap()
}

fn mk_req(url: &str, method: &str, headers: &[(&str, &str)]) -> Request {
    Request::parse(&ExplainRequest {
        url: url.into(),
        method: Some(method.into()),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        proxy: None,
    })
    .unwrap()
}

fn run(url: &str, method: &str, headers: &[(&str, &str)]) -> Explanation {
    explain(&mk_profile(), &mk_req(url, method, headers), None, &Live::default()).unwrap()
}

#[test]
fn the_first_route_that_matches_wins_and_later_ones_are_not_reached() {
    let e = run("http://demo.test:8888/api/x", "GET", &[("X-Dev", "me")]);
    assert_eq!(e.outcome, Outcome::Routed);
    assert_eq!(e.chosen, Some(1));
    assert_eq!(
        e.routes.iter().map(|r| (r.matched, r.reached)).collect::<Vec<_>>(),
        [(false, true), (true, true), (false, false), (true, false)]
    );
    assert_eq!(e.virtual_host.unwrap().matched, "demo.test:8888");
    assert_eq!(e.clusters[0].endpoints.as_ref().unwrap()[0].address, "127.0.0.1:9001");
}

#[test]
fn each_failed_condition_says_what_the_request_had() {
    let e = run("http://demo.test:8888/api/x?v=1x", "POST", &[]);
    assert_eq!(e.chosen, Some(3));
    let why: Vec<(&str, bool, &str)> =
        e.routes[2].conditions.iter().map(|c| (c.kind.as_str(), c.ok, c.why.as_str())).collect();
    assert_eq!(
        why,
        [
            ("path", true, "/api/x starts with /api"),
            ("method", true, "method is POST"),
            ("query", false, "?v is \"1x\"")
        ]
    );
    assert_eq!(e.routes[1].conditions[1].why, "x-dev is not sent");
}

#[test]
fn weighted_shares_rewrites_and_retries_are_reported() {
    let e = run("http://localhost:8888/api/x?v=12", "POST", &[]);
    let Some(Action::Forward { shares, .. }) = &e.action else { panic!("{e:?}") };
    assert_eq!(
        shares.iter().map(|s| (s.cluster.as_str(), s.percent)).collect::<Vec<_>>(),
        [("edge", 75.0), ("local", 25.0)]
    );
    let e = run("http://localhost:8888/api/x?q=1", "GET", &[]);
    assert_eq!(
        e.action,
        Some(Action::Forward {
            shares: vec![Share { cluster: "edge".into(), weight: 1, percent: 100.0 }],
            timeout: "5s".into(),
            timeout_is_default: false,
            retries: Some("2 retries on 5xx".into()),
            path_rewrite: Some("/v2/x?q=1".into()),
            host_rewrite: None,
            headers_added: vec![],
        })
    );
    // Found at run time and no daemon: unknown, not empty.
    assert_eq!(e.clusters[0].endpoints, None);
    assert_eq!(e.outcome, Outcome::Routed);
}

#[test]
fn a_discovered_cluster_without_endpoints_on_a_daemon_is_no_endpoints() {
    let live = Live { daemon: true, ..Default::default() };
    let e = explain(&mk_profile(), &mk_req("http://demo.test:8888/api", "GET", &[]), None, &live).unwrap();
    assert_eq!((e.outcome, e.outcome.exit_code()), (Outcome::NoEndpoints, 1));
}

#[test]
fn wildcards_match_at_least_one_label_character_and_hosts_ignore_case() {
    assert_eq!(run("http://A.Demo.Test:8888/healthz", "GET", &[]).virtual_host.unwrap().matched, "*.demo.test:8888");
    let e = run("http://demo.test:8888/healthz", "GET", &[("host", "DEMO.test")]);
    assert_eq!(e.virtual_host.unwrap().matched, "demo.test");
    // `*.demo.test` does not match `.demo.test` itself.
    assert_eq!(run("http://.demo.test:8888/", "GET", &[]).outcome, Outcome::NoVirtualHost);
}

#[test]
fn an_unknown_host_names_the_hosts_served() {
    let e = run("http://nope.test:8888/", "GET", &[]);
    assert_eq!(e.outcome, Outcome::NoVirtualHost);
    assert_eq!(e.candidates, ["demo.test:8888 (also *.demo.test:8888, localhost:8888)", "other.test:8888"]);
    assert_eq!(run("http://demo.test:9999/", "GET", &[]).outcome, Outcome::NoListener);
}

#[test]
fn no_route_names_the_nearest_candidates() {
    let e = run("http://demo.test:8888/ap", "GET", &[]);
    assert_eq!(e.outcome, Outcome::NoRoute);
    assert_eq!(e.candidates[0], "routes[0] path /healthz -> direct response 200: /ap is not /healthz");
}

#[test]
fn an_inverted_presence_match_fails_when_the_header_is_sent() {
    assert_eq!(run("http://other.test:8888/a?b=c", "GET", &[("x-debug", "1")]).outcome, Outcome::NoRoute);
    let e = run("http://other.test:8888/a?b=c", "GET", &[]);
    assert_eq!(e.action, Some(Action::Redirect { code: 301, location: "https://other.test/moved?b=c".into() }));
}

#[test]
fn regexes_match_the_whole_value_with_ascii_classes() {
    assert!(matching::full_match("[0-9]+", "12"));
    assert!(!matching::full_match("[0-9]+", "12a"));
    assert!(!matching::full_match("a|b", "ab"));
    assert!(matching::full_match(r"\d+", "42"));
    assert!(matching::full_match("(?i)get", "GET"));
}

#[test]
fn query_parameters_are_read_as_envoy_reads_them() {
    let r = mk_req("http://x/p?a=1&b&a=2&c=x%20y", "GET", &[]);
    let s = r.seen();
    assert_eq!((s.query("a"), s.query("b"), s.query("c"), s.query("d")), (Some("1"), Some(""), Some("x%20y"), None));
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let parse = |url: &str| Request::parse(&ExplainRequest { url: url.into(), ..Default::default() });
    assert!(parse("https://x/").unwrap_err().0.contains("plain HTTP"));
    assert!(parse("http://x:99999/").is_err());
    assert!(parse("http:///path").is_err());
    assert_eq!(parse("demo.test:8888").unwrap().path, "/");
    assert_eq!(parse("http://demo.test?x=1#frag").unwrap().path, "/?x=1");
    assert_eq!(parse("http://[::1]:8080/a").unwrap().port, 8080);
}

#[test]
fn an_unknown_proxy_is_bad_input() {
    let r = mk_req("http://demo.test:8888/", "GET", &[]);
    assert!(explain(&mk_profile(), &r, Some("nope"), &Live::default()).is_err());
}

#[test]
fn a_repeated_header_matches_when_any_value_does_and_invert_flips_that() {
    let mut profile = mk_profile();
    let d = profile.domains.get_mut("demo.test:8888").unwrap();
    d.routes[1].matcher.headers[0].kind = crate::model::ValueMatchKind::Exact("me".into());
    let req = mk_req("http://demo.test:8888/api", "GET", &[("x-dev", "you"), ("x-dev", "me")]);
    let e = explain(&profile, &req, None, &Live::default()).unwrap();
    assert_eq!(e.chosen, Some(1));
    assert_eq!(e.routes[1].conditions[1].why, r#"x-dev is "you", "me""#);
    let d = profile.domains.get_mut("demo.test:8888").unwrap();
    d.routes[1].matcher.headers[0].invert = true;
    let e = explain(&profile, &req, None, &Live::default()).unwrap();
    assert_eq!(e.chosen, Some(3));
}

fn mk_live() -> Live {
    use std::collections::BTreeMap;
    let ep = crate::model::Endpoint {
        unhealthy: false,
        addr: "10.0.0.7:8080".parse().unwrap(),
        zone: Some("a".into()),
        weight: None,
        metadata: Default::default(),
    };
    let types: BTreeMap<String, String> =
        [("LDS", "l1"), ("RDS", "r2"), ("CDS", "c1"), ("EDS", "e1")].map(|(k, v)| (k.into(), v.into())).into();
    let stream_types = |rds: StreamType| -> BTreeMap<String, StreamType> {
        let ok = |v: &str| StreamType { acked: Some(v.into()), nack: None };
        [("LDS".into(), ok("l1")), ("RDS".into(), rds), ("CDS".into(), ok("c1")), ("EDS".into(), ok("e1"))].into()
    };
    Live {
        daemon: true,
        discovered: [("edge".to_string(), crate::model::Endpoints::from(vec![ep]))].into(),
        registered: Default::default(),
        sources: vec![SourceInfo {
            name: "pods \"app=edge\" in edge".into(),
            clusters: vec!["edge".into()],
            state: "degraded".into(),
            error: Some("is the VPN up?".into()),
            data_age_ms: Some(65_000),
            skipped: vec![
                ("edge".into(), "edge/pending-1".into(), "phase is Pending, not Running".into()),
                ("other".into(), "edge/x".into(), "not ready".into()),
            ],
        }],
        snapshots: [("p".to_string(), ("v9".to_string(), types))].into(),
        envoys: vec![
            EnvoyStream {
                stream: 1,
                node_id: "laptop".into(),
                proxy: Some("p".into()),
                types: stream_types(StreamType {
                    acked: Some("r1".into()),
                    nack: Some(("r2".into(), "bad regex".into())),
                }),
                ..Default::default()
            },
            EnvoyStream {
                stream: 2,
                node_id: "other".into(),
                proxy: Some("p".into()),
                types: stream_types(StreamType { acked: Some("r2".into()), nack: None }),
                ..Default::default()
            },
        ],
    }
}

#[test]
fn a_daemon_lists_discovered_endpoints_skipped_pods_a_degraded_source_and_acks() {
    let req = mk_req("http://demo.test:8888/api", "GET", &[]);
    let e = explain(&mk_profile(), &req, None, &mk_live()).unwrap();
    assert_eq!(e.outcome, Outcome::Routed);
    let c = &e.clusters[0];
    let eps = c.endpoints.as_ref().unwrap();
    assert_eq!((eps[0].address.as_str(), eps[0].origin.as_str()), ("10.0.0.7:8080", "discovered"));
    // Only this cluster's skipped pods.
    assert_eq!(
        c.sources[0].skipped,
        [("edge".to_string(), "edge/pending-1".to_string(), "phase is Pending, not Running".to_string())]
    );
    let served = e.served.as_ref().unwrap();
    assert_eq!(served.envoys.iter().map(|a| a.state.as_str()).collect::<Vec<_>>(), ["nacked", "acked"]);
    let text = render::render(&e, render::Style { color: false });
    for line in [
        "  10.0.0.7:8080  zone a  discovered",
        "  source pods \"app=edge\" in edge: degraded, data 1m 5s old (is the VPN up?); the last known endpoints are served",
        "    skipped edge/pending-1: phase is Pending, not Running",
        "envoy: node laptop (stream 1) NACKed RDS r2: bad regex",
        "envoy: node other (stream 2) ACKed version v9",
        "result: routed",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
}

#[test]
fn a_connection_to_a_tcp_service_goes_to_its_cluster() {
    let src = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["web.test:8080"]
tcp = [{ name = "pg", port = 15432, cluster = "db", idle_timeout = "30m" }]
[[domains]]
name = "web.test:8080"
routes = [{ prefix = "/", cluster = "db" }]
[clusters.db]
health_check = { tcp = true }
static.endpoints = [{ address = "127.0.0.1:5432" }]
"#;
    let profile = parse_profile("t.toml", "t", src).unwrap();
    let e = explain(&profile, &mk_req("tcp://localhost:15432", "GET", &[]), None, &Live::default()).unwrap();
    assert_eq!(e.outcome, Outcome::Routed);
    assert_eq!(e.listener.as_deref(), Some("tcp_pg on 127.0.0.1:15432"));
    assert_eq!(
        e.tcp,
        Some(TcpMatch {
            service: "pg".into(),
            cluster: "db".into(),
            idle_timeout: "30m".into(),
            idle_timeout_is_default: false
        })
    );
    assert_eq!(e.clusters[0].endpoints.as_ref().unwrap()[0].address, "127.0.0.1:5432");
    assert!(e.clusters[0].policy.contains(&"health check tcp connect every 5s".to_string()), "{:?}", e.clusters[0]);
    let text = render::render(&e, render::Style { color: false });
    assert!(text.starts_with("TCP tcp://localhost:15432"), "{text}");
    assert!(text.contains("TCP service pg: every connection goes to db, byte for byte"), "{text}");
    assert!(text.ends_with("result: routed\n"), "{text}");

    // Plain HTTP to the same port is a TCP connection too: the port decides.
    let e = explain(&profile, &mk_req("http://localhost:15432/x", "GET", &[]), None, &Live::default()).unwrap();
    assert_eq!(e.tcp.map(|t| t.service), Some("pg".into()));

    // A tcp:// URL to a port with no TCP service lists the services.
    let e = explain(&profile, &mk_req("tcp://localhost:8080", "GET", &[]), None, &Live::default()).unwrap();
    assert_eq!(e.outcome, Outcome::NoListener);
    assert_eq!(e.candidates, ["tcp://127.0.0.1:15432 (proxy p, service pg)"]);

    // A tcp:// URL needs a port.
    let r = Request::parse(&ExplainRequest { url: "tcp://localhost".into(), ..Default::default() });
    assert!(r.unwrap_err().0.contains("names no port"));
}

#[test]
fn a_route_and_cluster_say_their_policies_in_words() {
    let src = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:80"]
[[domains]]
name = "a.test:80"
[[domains.routes]]
prefix = "/"
cluster = "edge"
subset = { track = "canary" }
hash_policy = [{ header = "x-user" }]
[clusters.edge]
lb = "ring_hash"
zone_priority = ["a", "b"]
outlier_detection = { consecutive_5xx = 3, base_ejection_time = "30s" }
static.endpoints = [{ address = "127.0.0.1:9001", metadata = { track = "canary" } }]
"#;
    let profile = parse_profile("t.toml", "t", src).unwrap();
    let e = explain(&profile, &mk_req("http://a.test/x", "GET", &[]), None, &Live::default()).unwrap();
    assert_eq!(e.routes[0].action, "cluster edge[track=canary] by hash of header x-user");
    assert_eq!(
        e.clusters[0].policy,
        [
            "ring hash",
            "connect timeout 1s",
            "outlier detection: 3 5xx in a row, for 30s",
            "zones in order: a > b, then the rest",
            "subsets by track (else any endpoint)",
        ]
    );
}
