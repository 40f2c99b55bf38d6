//! Traffic policies: outlier detection, zone priority, subsets, hash
//! policies, retriable status codes, CORS and response headers.

use super::*;

const BASE: &str = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:80"]
[clusters.edge]
lb = "ring_hash"
static.endpoints = [{ address = "127.0.0.1:9001", metadata = { track = "canary" } }]
[clusters.rr.static]
endpoints = [{ address = "127.0.0.1:9002" }]
[clusters.names.dns]
hosts = ["edge.test:80"]
[[domains]]
name = "a.test:80"
"#;

#[test]
fn policies_are_read_into_the_model() {
    let p = mk_profile(&format!(
        r#"{BASE}
cors = {{ allow_origins = ["http://localhost:3000"], allow_methods = ["get"], max_age = "10m" }}
[[domains.routes]]
prefix = "/c"
cluster = "edge"
subset = {{ track = "canary" }}
hash_policy = [{{ header = "X-User" }}, {{ cookie = "s", ttl = "1h" }}, {{ source_ip = true }}]
retries = {{ count = 2, on = ["5xx"], status_codes = [503, 503, 429] }}
response_headers_add = {{ X-Served-By = "devbridge" }}
response_headers_remove = ["Server-Timing"]
[[domains.routes]]
prefix = "/"
weighted_clusters = [{{ cluster = "rr", weight = 1 }}, {{ cluster = "edge", weight = 1, subset = {{ track = "canary", tier = "a" }} }}]
"#
    ));
    let d = &p.domains["a.test:80"];
    assert_eq!(
        d.cors,
        Some(Cors {
            allow_origins: vec!["http://localhost:3000".into()],
            allow_methods: vec!["GET".into()],
            allow_headers: vec![],
            expose_headers: vec![],
            max_age: Some(Duration::from_secs(600)),
            allow_credentials: false,
        })
    );
    let r = &d.routes[0];
    assert_eq!(r.response_headers_add, [("x-served-by".to_string(), "devbridge".to_string())]);
    assert_eq!(r.response_headers_remove, ["server-timing"]);
    let RouteAction::Forward(f) = &r.action else { panic!("forwards") };
    assert_eq!(f.subset, Labels::from([("track".into(), "canary".into())]));
    assert_eq!(
        f.hash_policy,
        [
            HashPolicy::Header("x-user".into()),
            HashPolicy::Cookie { name: "s".into(), ttl: Some(Duration::from_secs(3600)) },
            HashPolicy::SourceIp
        ]
    );
    let retries = f.retries.clone().unwrap();
    // Listing codes asks for retriable-status-codes; a code listed twice is one.
    assert_eq!(retries.on, ["5xx", "retriable-status-codes"]);
    assert_eq!(retries.status_codes, [503, 429]);
    // The cluster learns the label sets its routes pick by.
    assert_eq!(
        p.clusters["edge"].subset_keys,
        [vec!["tier".to_string(), "track".to_string()], vec!["track".to_string()]]
    );
    assert!(p.clusters["rr"].subset_keys.is_empty());
}

#[test]
fn cluster_policies_are_read_and_checked() {
    let p = mk_profile(&format!(
        r#"{BASE}
routes = [{{ prefix = "/", cluster = "db" }}]
[clusters.db]
lb = "maglev"
zone_priority = ["zone-a", "zone-b"]
subset_fallback = "none"
outlier_detection = {{ consecutive_5xx = 3, consecutive_gateway_failure = 2, interval = "5s", base_ejection_time = "1m", max_ejection_percent = 50 }}
static.endpoints = [{{ address = "127.0.0.1:5432" }}]
"#
    ));
    let c = &p.clusters["db"];
    assert_eq!(c.lb, LbPolicy::Maglev);
    assert_eq!(c.zone_priority, ["zone-a", "zone-b"]);
    assert_eq!(c.subset_fallback, SubsetFallback::NoEndpoint);
    assert_eq!(
        c.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: Some(3),
            consecutive_gateway_failure: Some(2),
            interval: Some(Duration::from_secs(5)),
            base_ejection_time: Some(Duration::from_secs(60)),
            max_ejection_percent: Some(50),
        })
    );

    let errors = mk_errors(
        r#"
        [clusters.db]
        zone_priority = ["a", "a", ""]
        subset_fallback = "default"
        outlier_detection = { consecutive_5xx = 0, max_ejection_percent = 101, interval = "soon" }
        static.endpoints = [{ address = "127.0.0.1:5432" }]
        [clusters.names]
        zone_priority = ["a"]
        dns.hosts = ["edge.test:80"]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:23: clusters.db.zone_priority[1]: "a" is listed twice"#,
            r#"t.toml:2:28: clusters.db.zone_priority[2]: is empty; expected a zone name"#,
            r#"t.toml:3:19: clusters.db.subset_fallback: "default" is not allowed; expected one of: any, none"#,
            r#"t.toml:4:41: clusters.db.outlier_detection.consecutive_5xx: 0 is out of range; expected 1 to 1000"#,
            r#"t.toml:4:67: clusters.db.outlier_detection.max_ejection_percent: 101 is out of range; expected 0 to 100"#,
            r#"t.toml:4:83: clusters.db.outlier_detection.interval: "soon" is not a duration; expected e.g. "250ms", "5s", "1m""#,
            r#"t.toml:7:18: clusters.names.zone_priority: a dns cluster's endpoints have no zones"#,
        ]
    );
}

#[test]
fn route_policies_report_every_mistake_located() {
    let errors = mk_errors(&format!(
        r#"{BASE}
cors = {{ allow_methods = ["FETCH"] }}
[[domains.routes]]
prefix = "/a"
cluster = "rr"
hash_policy = [{{ header = "x-user" }}]
[[domains.routes]]
prefix = "/b"
cluster = "names"
subset = {{ track = "canary" }}
[[domains.routes]]
prefix = "/c"
cluster = "edge"
hash_policy = [{{ header = "x-user", cookie = "c" }}, {{ source_ip = false }}, {{ header = "x", ttl = "1h" }}]
retries = {{ status_codes = [99] }}
cors = {{ allow_origins = ["localhost:3000", "*"] }}
response_headers_add = {{ "bad header" = "x" }}
[[domains.routes]]
path = "/d"
direct_response = {{ status = 200 }}
subset = {{ track = "canary" }}
"#
    ));
    assert_eq!(
        errors,
        [
            r#"t.toml:15:8: domains[0].cors: needs allow_origins, e.g. ["http://localhost:3000"] or ["*"]"#,
            r#"t.toml:15:27: domains[0].cors.allow_methods[0]: "FETCH" is not an HTTP method; expected one of: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"#,
            r#"t.toml:19:16: domains[0].routes[0].hash_policy: cluster "rr" does not balance by hash; set lb = "ring_hash" or "maglev" on it"#,
            r#"t.toml:23:12: domains[0].routes[1].subset: cluster "names" is a dns cluster: its endpoints have no labels to pick by"#,
            r#"t.toml:27:16: domains[0].routes[2].hash_policy[0]: expected exactly one of header = "NAME", cookie = "NAME" or source_ip = true"#,
            r#"t.toml:27:67: domains[0].routes[2].hash_policy[1].source_ip: source_ip = false hashes nothing; remove the entry"#,
            r#"t.toml:27:76: domains[0].routes[2].hash_policy[2].ttl: applies only to a cookie"#,
            r#"t.toml:28:29: domains[0].routes[2].retries.status_codes[0]: 99 is out of range; expected 100 to 599"#,
            r#"t.toml:29:27: domains[0].routes[2].cors.allow_origins[0]: "localhost:3000" is not an origin; expected "*" or scheme://host[:port], e.g. "http://localhost:3000""#,
            r#"t.toml:30:26: domains[0].routes[2].response_headers_add: "bad header" is not a header name"#,
            r#"t.toml:34:12: domains[0].routes[3].subset: applies only to routes that forward to a cluster"#,
        ]
    );
}

#[test]
fn mirror_and_fault_are_read_and_checked() {
    let p = mk_profile(&format!(
        r#"{BASE}
[[domains.routes]]
prefix = "/"
cluster = "rr"
mirror = {{ cluster = "edge", percent = 25 }}
fault = {{ delay = "2s", delay_percent = 10, abort = 503 }}
"#
    ));
    let RouteAction::Forward(f) = &p.domains["a.test:80"].routes[0].action else { panic!("forwards") };
    assert_eq!(f.mirror, Some(Mirror { cluster: "edge".into(), percent: 25 }));
    assert_eq!(f.fault, Some(Fault { delay: Some((Duration::from_secs(2), 10)), abort: Some((503, 100)) }));
    // The mirror's cluster is served to the proxy too.
    let names: Vec<&str> = p.clusters_of(&p.proxies["p"]).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["edge", "rr"]);

    let errors = mk_errors(&format!(
        r#"{BASE}
[[domains.routes]]
prefix = "/a"
cluster = "rr"
mirror = {{ cluster = "nowhere", percent = 101 }}
fault = {{ delay_percent = 10 }}
[[domains.routes]]
prefix = "/b"
cluster = "rr"
fault = {{ abort = 700, delay = "0s" }}
[[domains.routes]]
path = "/c"
redirect = {{ path = "/d" }}
fault = {{ abort = 503 }}
"#
    ));
    assert_eq!(
        errors,
        [
            r#"t.toml:18:22: domains[0].routes[0].mirror.cluster: "nowhere" is not a cluster; known clusters: edge, names, rr"#,
            r#"t.toml:18:43: domains[0].routes[0].mirror.percent: 101 is out of range; expected 0 to 100"#,
            r#"t.toml:19:9: domains[0].routes[0].fault: injects nothing; set delay = "2s" and/or abort = 503"#,
            r#"t.toml:19:27: domains[0].routes[0].fault.delay_percent: needs delay to be set"#,
            r#"t.toml:23:19: domains[0].routes[1].fault.abort: 700 is out of range; expected 200 to 599"#,
            r#"t.toml:23:32: domains[0].routes[1].fault.delay: a duration of zero is not allowed; expected e.g. "250ms""#,
            r#"t.toml:27:9: domains[0].routes[2].fault: applies only to routes that forward to a cluster"#,
        ]
    );
}
