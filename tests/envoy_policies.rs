//! The traffic policies of the profile reference, each against a real Envoy
//! and loopback upstreams: outlier detection, zone failover, subsets by
//! endpoint label, hash affinity, retriable status codes, CORS and response
//! headers. Each test's profile is the reference's example on free ports.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use devbridge::app::Daemon;
use devbridge::bootstrap::{bootstrap, select_proxy, to_yaml};
use devbridge::profile::parse_profile;
use support::{Envoy, HttpResponse, Upstream, eventually, free_port, http_get, http_request, loopback_listener};
use tokio_util::sync::CancellationToken;

struct Setup {
    _daemon: Daemon,
    envoy: Envoy,
    listener: SocketAddr,
}

/// devbridge serving `body` (domains and clusters) to one proxy whose one
/// domain is `app.test:<port>`, and a real Envoy connected to it.
async fn setup(body: &str) -> Setup {
    let port = free_port();
    let text = format!(
        r#"
[zones.dev-local]

[proxies.sidecar]
zone = "dev-local"
admin = "127.0.0.1:0"
domains = ["app.test:{port}"]

[[domains]]
name = "app.test:{port}"
{body}
"#
    );
    let profile = parse_profile("policies.toml", "policies", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let proxy = select_proxy(&profile, None).unwrap().clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start(profile, xds, None, CancellationToken::new()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    envoy.wait_listening(listener).await;
    Setup { _daemon: daemon, envoy, listener }
}

impl Setup {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_get(self.listener, "app.test", path, headers).await.expect("request through envoy")
    }

    /// Which upstream answered: the first word of its body.
    async fn who(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let r = self.get(path, headers).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        r.body.split_whitespace().next().unwrap_or_default().to_string()
    }

    async fn assert_accepted(&self) {
        let stats = self.envoy.stats().await;
        let rejected: Vec<(&String, &u64)> =
            stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
        assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", self.envoy.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_an_endpoint_its_traffic_finds_failing() {
    let (good, bad) = (Upstream::start("good").await, Upstream::start("bad").await);
    bad.set_failing(true);
    let s = setup(&format!(
        r#"
routes = [{{ prefix = "/", cluster = "edge" }}]

[clusters.edge]
outlier_detection = {{ consecutive_5xx = 2, interval = "1s", base_ejection_time = "30s", max_ejection_percent = 50 }}
static.endpoints = [{{ address = "{}" }}, {{ address = "{}" }}]
"#,
        good.addr, bad.addr
    ))
    .await;
    // Round robin sends every other request to the failing edge, until its
    // second 503 in a row ejects it (bounded: 40 requests).
    let mut failed = 0;
    for _ in 0..40 {
        if s.envoy.stat("cluster.edge.outlier_detection.ejections_active").await > 0 {
            break;
        }
        failed += usize::from(s.get("/x", &[]).await.status == 503);
    }
    assert_eq!(s.envoy.stat("cluster.edge.outlier_detection.ejections_active").await, 1, "{}", s.envoy.log());
    assert_eq!(failed, 2, "the edge is ejected after its second failure in a row");
    // Ejected for 30 s: every request now goes to the good edge.
    for _ in 0..10 {
        assert_eq!(s.who("/x", &[]).await, "good");
    }
    s.assert_accepted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_priority_fails_over_to_the_next_zone_and_back() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let s = setup(&format!(
        r#"
routes = [{{ prefix = "/", cluster = "edge" }}]

[clusters.edge]
zone_priority = ["zone-a", "zone-b"]
health_check = {{ path = "/healthz", interval = "300ms", timeout = "200ms", unhealthy_threshold = 1, healthy_threshold = 1 }}
static.endpoints = [{{ address = "{}", zone = "zone-b" }}, {{ address = "{}", zone = "zone-a" }}]
"#,
        b.addr, a.addr
    ))
    .await;
    let s = &s;
    let all_to = |name: &'static str| async move {
        for _ in 0..8 {
            if s.get("/x", &[]).await.body.split_whitespace().next() != Some(name) {
                return None;
            }
        }
        Some(())
    };
    // Zone a first: it has the healthy endpoint of priority 0.
    eventually("every request to zone a", 200, || all_to("a")).await;
    // Its endpoint fails its checks: Envoy fails over to zone b...
    a.set_failing(true);
    eventually("every request to zone b", 200, || all_to("b")).await;
    // ...and comes back once it passes them again.
    a.set_failing(false);
    eventually("every request back to zone a", 200, || all_to("a")).await;
    s.assert_accepted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsets_pick_endpoints_by_label_with_a_fallback() {
    let (stable, canary) = (Upstream::start("stable").await, Upstream::start("canary").await);
    let endpoints = format!(
        r#"[{{ address = "{}", metadata = {{ track = "stable" }} }}, {{ address = "{}", metadata = {{ track = "canary" }} }}]"#,
        stable.addr, canary.addr
    );
    let s = setup(&format!(
        r#"
[[domains.routes]]
prefix = "/canary"
cluster = "edge"
subset = {{ track = "canary" }}

[[domains.routes]]
prefix = "/split"
weighted_clusters = [
  {{ cluster = "edge", weight = 50, subset = {{ track = "canary" }} }},
  {{ cluster = "edge", weight = 50, subset = {{ track = "stable" }} }},
]

[[domains.routes]]
prefix = "/nightly"
cluster = "edge"
subset = {{ track = "nightly" }}

[[domains.routes]]
prefix = "/strict"
cluster = "strict"
subset = {{ track = "nightly" }}

[[domains.routes]]
prefix = "/"
cluster = "edge"
subset = {{ track = "stable" }}

[clusters.edge.static]
endpoints = {endpoints}

[clusters.strict]
subset_fallback = "none"
static.endpoints = {endpoints}
"#
    ))
    .await;
    for _ in 0..6 {
        assert_eq!(s.who("/canary/x", &[]).await, "canary");
        assert_eq!(s.who("/x", &[]).await, "stable");
    }
    // A split by labels reaches both; 40 requests at 50/50 miss neither
    // side unless the split is broken (a chance of 2 in 10^12).
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(s.who("/split", &[]).await);
    }
    assert_eq!(seen, BTreeSet::from(["canary".to_string(), "stable".to_string()]));
    // No endpoint is labelled nightly: any endpoint, or none (503).
    assert!(["canary", "stable"].contains(&s.who("/nightly", &[]).await.as_str()));
    assert_eq!(s.get("/strict", &[]).await.status, 503);
    s.assert_accepted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_policy_keeps_each_key_on_one_endpoint() {
    let ups = [Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await];
    let endpoints: Vec<String> = ups.iter().map(|u| format!("{{ address = \"{}\" }}", u.addr)).collect();
    let s = setup(&format!(
        r#"
[[domains.routes]]
prefix = "/cookie"
cluster = "sticky"
hash_policy = [{{ cookie = "devbridge-affinity", ttl = "1h" }}]

[[domains.routes]]
prefix = "/"
cluster = "users"
hash_policy = [{{ header = "x-user" }}, {{ source_ip = true }}]

[clusters.users]
lb = "ring_hash"
static.endpoints = [{eps}]

[clusters.sticky]
lb = "maglev"
static.endpoints = [{eps}]
"#,
        eps = endpoints.join(", ")
    ))
    .await;
    let mut used = BTreeSet::new();
    for user in 0..12 {
        let user = format!("user-{user}");
        let first = s.who("/x", &[("x-user", &user)]).await;
        for _ in 0..4 {
            assert_eq!(s.who("/x", &[("x-user", &user)]).await, first, "{user} moved");
        }
        used.insert(first);
    }
    // Twelve keys over three endpoints all on one: a chance under 1 in 10^5.
    assert!(used.len() > 1, "every key hashed to {used:?}");
    // Without the header, the client's address keys it: one endpoint.
    let by_ip = s.who("/x", &[]).await;
    for _ in 0..4 {
        assert_eq!(s.who("/x", &[]).await, by_ip);
    }
    // A cookie policy with a ttl makes Envoy set the cookie; sent back, it
    // keeps the client on its endpoint.
    let r = s.get("/cookie", &[]).await;
    let cookie = r.headers.get("set-cookie").cloned().unwrap_or_else(|| panic!("no set-cookie: {r:?}"));
    assert!(cookie.starts_with("devbridge-affinity=") && cookie.contains("Max-Age=3600"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let first = s.who("/cookie", &[("cookie", &pair)]).await;
    for _ in 0..4 {
        assert_eq!(s.who("/cookie", &[("cookie", &pair)]).await, first);
    }
    s.assert_accepted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_cors_and_response_headers_do_what_the_profile_says() {
    let app = Upstream::start("app").await;
    // Each fails its first two requests with 503.
    let flaky = Upstream::start_failing("flaky", 2).await;
    let other = Upstream::start_failing("other", 2).await;
    let s = setup(&format!(
        r#"
cors = {{ allow_origins = ["http://localhost:3000"], allow_methods = ["GET", "POST"], allow_headers = ["x-dev"], max_age = "10m" }}

[[domains.routes]]
prefix = "/retry"
cluster = "flaky"
retries = {{ count = 2, on = ["retriable-status-codes"], status_codes = [503] }}

[[domains.routes]]
prefix = "/no-retry"
cluster = "other"
retries = {{ count = 2, status_codes = [502], on = ["retriable-status-codes"] }}

[[domains.routes]]
prefix = "/open"
cluster = "app"
cors = {{ allow_origins = ["*"] }}

[[domains.routes]]
prefix = "/"
cluster = "app"
response_headers_add = {{ x-served-by = "devbridge" }}
response_headers_remove = ["x-echo-x-secret"]

[clusters.app.static]
endpoints = [{{ address = "{}" }}]
[clusters.flaky.static]
endpoints = [{{ address = "{}" }}]
[clusters.other.static]
endpoints = [{{ address = "{}" }}]
"#,
        app.addr, flaky.addr, other.addr
    ))
    .await;

    // Retried on the status code listed: the third try answers.
    assert_eq!(s.who("/retry", &[]).await, "flaky");
    assert_eq!(flaky.hits(), 3);
    // Not retried on a code that is not listed.
    assert_eq!(s.get("/no-retry", &[]).await.status, 503);
    assert_eq!(other.hits(), 1);

    // Response headers: one added, one the upstream sent removed.
    let r = s.get("/api", &[("x-secret", "s3cret"), ("x-kept", "yes")]).await;
    assert_eq!(r.headers.get("x-served-by").map(String::as_str), Some("devbridge"), "{r:?}");
    assert_eq!(r.headers.get("x-echo-x-secret"), None, "{r:?}");
    assert_eq!(r.headers.get("x-echo-x-kept").map(String::as_str), Some("yes"), "{r:?}");

    // CORS: a preflight from the allowed origin is answered by Envoy...
    let preflight = [
        ("origin", "http://localhost:3000"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "x-dev"),
    ];
    let hits = app.hits();
    let r = http_request(s.listener, "OPTIONS", "app.test", "/api", &preflight, b"").await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let h = |r: &HttpResponse, k: &str| r.headers.get(k).cloned().unwrap_or_default();
    assert_eq!(h(&r, "access-control-allow-origin"), "http://localhost:3000");
    assert_eq!(h(&r, "access-control-allow-methods"), "GET,POST");
    assert_eq!(h(&r, "access-control-allow-headers"), "x-dev");
    assert_eq!(h(&r, "access-control-max-age"), "600");
    assert_eq!(app.hits(), hits, "a preflight never reaches the upstream");
    // ...a request from it is marked allowed, one from elsewhere is not.
    let r = s.get("/api", &[("origin", "http://localhost:3000")]).await;
    assert_eq!(h(&r, "access-control-allow-origin"), "http://localhost:3000");
    let r = s.get("/api", &[("origin", "http://elsewhere.test")]).await;
    assert_eq!(r.headers.get("access-control-allow-origin"), None, "{r:?}");
    // A route's own policy replaces the domain's: any origin.
    let r = s.get("/open", &[("origin", "http://elsewhere.test")]).await;
    assert_eq!(h(&r, "access-control-allow-origin"), "http://elsewhere.test");
    s.assert_accepted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_shadows_requests_to_a_local_copy_and_faults_hold_their_shares() {
    let (edge, local) = (Upstream::start("edge").await, Upstream::start("local").await);
    let s = setup(&format!(
        r#"
[[domains.routes]]
prefix = "/mirrored"
cluster = "edge"
mirror = {{ cluster = "local-copy" }}

[[domains.routes]]
prefix = "/flaky"
cluster = "edge"
fault = {{ abort = 503, abort_percent = 50 }}

[[domains.routes]]
prefix = "/slow"
cluster = "edge"
fault = {{ delay = "20ms", delay_percent = 50 }}

[[domains.routes]]
prefix = "/"
cluster = "edge"

[clusters.edge.static]
endpoints = [{{ address = "{}" }}]
[clusters.local-copy.static]
endpoints = [{{ address = "{}" }}]
"#,
        edge.addr, local.addr
    ))
    .await;

    // The edge answers; the local copy gets a shadow of each request
    // (Envoy sends it beside the real one, and drops its answer).
    for i in 0..5 {
        let r = s.get(&format!("/mirrored/{i}"), &[]).await;
        assert_eq!((r.status, r.body.as_str()), (200, format!("edge GET /mirrored/{i}\n").as_str()));
    }
    let l = &local;
    eventually("the local copy to see 5 shadows", 200, || async move { (l.hits() == 5).then_some(()) }).await;
    assert_eq!(edge.hits(), 5);
    // Other routes are not mirrored.
    s.who("/other", &[]).await;
    assert_eq!(local.hits(), 5);

    // Abort 50% of 200 requests: more than 60 and fewer than 140 fail
    // unless the share is broken (over 5.6 standard deviations out).
    let mut aborted = 0;
    for _ in 0..200 {
        let r = s.get("/flaky", &[]).await;
        assert!(r.status == 200 || r.status == 503, "{r:?}");
        aborted += usize::from(r.status == 503);
    }
    assert!(aborted > 60 && aborted < 140, "{aborted} of 200 aborted");
    // Delay 50% of 60 requests, counted by Envoy: 10 to 50.
    for _ in 0..60 {
        assert_eq!(s.get("/slow", &[]).await.status, 200);
    }
    let port = s.listener.port();
    let delayed = s.envoy.stat(&format!("http.ingress_{port}.fault.delays_injected")).await;
    assert!(delayed > 10 && delayed < 50, "{delayed} of 60 delayed");
    assert_eq!(s.envoy.stat(&format!("http.ingress_{port}.fault.aborts_injected")).await as usize, aborted);
    s.assert_accepted().await;
}
