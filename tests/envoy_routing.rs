//! devbridge + a real Envoy + loopback upstreams: every kind of route in a
//! profile does to real traffic what the profile says.

mod support;

use std::net::SocketAddr;

use devbridge::app::Daemon;
use devbridge::bootstrap::{XdsApi, bootstrap_for, select_proxy, to_yaml};
use devbridge::profile::parse_profile;
use support::{Envoy, Upstream, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

struct Setup {
    _daemon: Daemon,
    envoy: Envoy,
    listener: SocketAddr,
    a: Upstream,
    b: Upstream,
    flaky: Upstream,
}

async fn setup(api: XdsApi) -> Setup {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    // Fails twice, then answers: a route retrying twice on 5xx still succeeds.
    let flaky = Upstream::start_failing("flaky", 2).await;
    let port = free_port();
    let profile = format!(
        r#"
[zones.dev-local]

[proxies.sidecar]
zone = "dev-local"
admin = "127.0.0.1:0"
domains = ["a.test:{port}", "b.test:{port}"]

[[domains]]
name = "a.test:{port}"
aliases = ["alias-a.test"]

[[domains.routes]]
path = "/exact"
cluster = "b"

[[domains.routes]]
regex = "/items/[0-9]+"
cluster = "b"

[[domains.routes]]
prefix = "/api"
headers = [{{ name = "x-dev", exact = "canary" }}]
cluster = "b"

[[domains.routes]]
prefix = "/api"
headers = [{{ name = "x-debug", present = true, invert = true }}]
methods = ["GET"]
cluster = "a"
request_headers_add = {{ x-devbridge = "yes" }}
prefix_rewrite = "/rewritten"
host_rewrite = "upstream.internal"

[[domains.routes]]
prefix = "/split"
weighted_clusters = [{{ cluster = "a", weight = 50 }}, {{ cluster = "b", weight = 50 }}]

[[domains.routes]]
prefix = "/retry"
cluster = "flaky"
retries = {{ count = 2, on = ["5xx"] }}

[[domains.routes]]
path = "/direct"
direct_response = {{ status = 418, body = "short and stout" }}

[[domains.routes]]
path = "/old"
redirect = {{ path = "/new", code = 302 }}

[[domains]]
name = "b.test:{port}"

[[domains.routes]]
prefix = "/"
cluster = "b"

[clusters.a.static]
endpoints = [{{ address = "{a}" }}]

[clusters.b.static]
endpoints = [{{ address = "{b}", zone = "z1", metadata = {{ role = "edge" }} }}]

[clusters.flaky]
connect_timeout = "500ms"
[clusters.flaky.static]
endpoints = [{{ address = "{flaky}" }}]
"#,
        a = a.addr,
        b = b.addr,
        flaky = flaky.addr,
    );
    let profile = parse_profile("routing.toml", "routing", &profile).expect("profile is valid");
    let proxy = select_proxy(&profile, None).unwrap().clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start(profile, xds, None, CancellationToken::new()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap_for(&proxy, "127.0.0.1", xds_port, api))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    envoy.wait_listening(listener).await;
    Setup { _daemon: daemon, envoy, listener, a, b, flaky }
}

both_protocols!(routes_in_a_profile_steer_real_traffic_through_envoy);
async fn routes_in_a_profile_steer_real_traffic_through_envoy(api: XdsApi) {
    let s = setup(api).await;
    let get = |host: &'static str, path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let addr = s.listener;
        async move { http_get(addr, host, path, headers).await.expect("request through envoy") }
    };

    // Host routing: the same path goes to different clusters per domain,
    // with or without the port, and through an alias.
    assert_eq!(get("b.test", "/api/x", &[]).await.body, "b GET /api/x\n");
    let with_port = format!("b.test:{}", s.listener.port());
    let r = http_get(s.listener, &with_port, "/api/x", &[]).await.unwrap();
    assert_eq!(r.body, "b GET /api/x\n");

    // Prefix route with rewrite, host rewrite and an added header.
    let r = get("alias-a.test", "/api/users", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "a GET /rewritten/users\n"));
    assert_eq!(r.headers.get("x-echo-x-devbridge").map(String::as_str), Some("yes"));
    assert_eq!(r.headers.get("x-echo-host").map(String::as_str), Some("upstream.internal"));

    // Header matches: an exact header sends to b; an inverted presence
    // match makes x-debug fall through to no route.
    assert_eq!(get("a.test", "/api/users", &[("x-dev", "canary")]).await.body, "b GET /api/users\n");
    assert_eq!(get("a.test", "/api/users", &[("x-debug", "1")]).await.status, 404);

    // Exact and regex paths: the regex must match the whole path.
    assert_eq!(get("a.test", "/exact", &[]).await.body, "b GET /exact\n");
    assert_eq!(get("a.test", "/exact/more", &[]).await.status, 404);
    assert_eq!(get("a.test", "/items/42", &[]).await.body, "b GET /items/42\n");
    assert_eq!(get("a.test", "/items/4x", &[]).await.status, 404);

    // Direct response and redirect come from Envoy itself.
    let r = get("a.test", "/direct", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (418, "short and stout"));
    let r = get("a.test", "/old", &[]).await;
    assert_eq!((r.status, r.headers.get("location").map(String::as_str)), (302, Some("http://a.test/new")));

    // Unknown route and unknown host: 404.
    assert_eq!(get("a.test", "/nothing-here", &[]).await.status, 404);
    assert_eq!(get("unknown.test", "/api/x", &[]).await.status, 404);

    // Retries: the upstream fails twice, the third try answers.
    let r = get("a.test", "/retry", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "flaky GET /retry\n"));
    assert_eq!(s.flaky.hits(), 3);

    // Weighted split, 50/50 over 200 requests: each side gets far more than
    // 50 unless the split is broken (that is over 7 standard deviations).
    let (before_a, before_b) = (s.a.hits(), s.b.hits());
    for _ in 0..200 {
        assert_eq!(get("a.test", "/split", &[]).await.status, 200);
    }
    let (to_a, to_b) = (s.a.hits() - before_a, s.b.hits() - before_b);
    assert_eq!(to_a + to_b, 200);
    assert!(to_a > 50 && to_b > 50, "split was {to_a}/{to_b}");

    // Envoy accepted every update devbridge sent.
    let stats = s.envoy.stats().await;
    for key in ["listener_manager.lds.update_rejected", "cluster_manager.cds.update_rejected"] {
        assert_eq!(stats.get(key).copied(), Some(0), "{key}");
    }
    let rejected: Vec<(&String, &u64)> =
        stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", s.envoy.log());
}

/// `/config_dump` is Envoy's own JSON of what is served: each cluster,
/// listener and route configuration devbridge dumps equals the one Envoy's
/// `/config_dump` shows once it applied it (every route kind of this
/// profile included). Envoy dumps load assignments from the hosts it holds
/// (health status, its defaults filled in), so those agree on addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devbridges_dump_of_each_resource_equals_envoys_after_the_ack() {
    let s = setup(XdsApi::Grpc).await;
    s.envoy.wait_configured().await;
    let ours = devbridge::xds::dump::dump_snapshot(&s._daemon.current().snapshots["sidecar"]);
    let r = http_get(s.envoy.admin, "admin", "/config_dump?include_eds", &[]).await.unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let by_type = |dump: &serde_json::Value, ty: &str| -> serde_json::Value {
        dump["configs"].as_array().unwrap().iter().find(|c| c["@type"] == ty).cloned().unwrap_or_default()
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        ("type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters", &["cluster"]),
        ("type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs", &["endpoint_config"]),
        ("type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners", &["active_state", "listener"]),
        ("type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs", &["route_config"]),
    ];
    let mut compared = 0;
    for (ty, key, path) in cases {
        let pick = |entry: &serde_json::Value| path.iter().fold(entry.clone(), |v, k| v[*k].clone());
        let envoy_has: Vec<serde_json::Value> =
            by_type(&theirs, ty)[key].as_array().cloned().unwrap_or_default().iter().map(pick).collect();
        for entry in by_type(&ours, ty)[key].as_array().unwrap() {
            let resource = pick(entry);
            let name = resource.get("name").or(resource.get("cluster_name")).cloned().unwrap_or_default();
            let name_of = |v: &serde_json::Value| v.get("name").or(v.get("cluster_name")).cloned().unwrap_or_default();
            let envoy = envoy_has.iter().find(|v| name_of(v) == name).cloned();
            if key == "dynamic_endpoint_configs" {
                let addresses = |v: &serde_json::Value| -> Vec<serde_json::Value> {
                    let localities = v["endpoints"].as_array().cloned().unwrap_or_default();
                    localities
                        .iter()
                        .flat_map(|l| l["lb_endpoints"].as_array().cloned().unwrap_or_default())
                        .map(|e| e["endpoint"]["address"].clone())
                        .collect()
                };
                assert_eq!(envoy.as_ref().map(addresses), Some(addresses(&resource)), "{ty} {name}");
            } else {
                assert_eq!(envoy, Some(resource), "{ty} {name}: Envoy's dump against devbridge's");
            }
            compared += 1;
        }
    }
    assert!(compared >= 8, "{compared} resources compared");
}
