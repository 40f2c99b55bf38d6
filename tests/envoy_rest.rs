//! Seed 003 as it was written: an Envoy whose configuration comes over
//! REST (JSON polled over HTTP/1.1, `api_type: REST`, a `refresh_delay`)
//! from devbridge's admin port, and whose endpoints are registered and
//! removed through the admin API: 503 while the cluster is empty, requests
//! cycling over the endpoints when there are several, following each change.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use devbridge::app::Daemon;
use devbridge::bootstrap::{XdsApi, XdsTarget, bootstrap_with, select_proxy, to_yaml};
use devbridge::profile::parse_profile;
use devbridge::xds::ResourceType;
use support::{Envoy, Upstream, eventually, free_port, http_get, http_request, loopback_listener};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_polling_rest_follows_endpoints_registered_and_removed() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let port = free_port();
    let profile = format!(
        r#"
[zones.dev-local]

[proxies.sidecar]
zone = "dev-local"
admin = "127.0.0.1:0"
domains = ["svc.test:{port}"]

[[domains]]
name = "svc.test:{port}"

[[domains.routes]]
prefix = "/"
cluster = "edge"

[clusters.edge.registered]
"#
    );
    let profile = parse_profile("rest.toml", "rest", &profile).expect("profile is valid");
    let proxy = select_proxy(&profile, None).unwrap().clone();
    let daemon =
        Daemon::start(profile, loopback_listener().await, Some(loopback_listener().await), CancellationToken::new())
            .unwrap();
    let admin = daemon.admin_addr.unwrap();
    let target = XdsTarget::Tcp { host: "127.0.0.1".into(), port: admin.port() };
    let envoy = Envoy::start(&to_yaml(&bootstrap_with(&proxy, &target, None, XdsApi::Rest))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    envoy.wait_listening(listener).await;

    let get = || async { http_get(listener, "svc.test", "/", &[]).await.expect("a request through envoy") };
    let register = |addrs: Vec<SocketAddr>| async move {
        let body = serde_json::to_string(
            &addrs.iter().map(|a| serde_json::json!({ "address": a.to_string() })).collect::<Vec<_>>(),
        )
        .unwrap();
        let r = http_request(admin, "PUT", "admin", "/v1/clusters/edge/endpoints", &[], body.as_bytes()).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    };
    // No endpoints yet: 503.
    assert_eq!(get().await.status, 503);

    // Two endpoints: requests cycle over both.
    register(vec![a.addr, b.addr]).await;
    let names = || async {
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let r = get().await;
            if r.status == 200 {
                seen.insert(r.body.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
        seen
    };
    eventually("requests to cycle over both endpoints", 200, || async {
        (names().await == BTreeSet::from(["a".to_string(), "b".to_string()])).then_some(())
    })
    .await;

    // One removed: all go to the other.
    register(vec![b.addr]).await;
    eventually("only b to answer", 200, || async {
        (names().await == BTreeSet::from(["b".to_string()])).then_some(())
    })
    .await;
    let hits = a.hits();
    for _ in 0..10 {
        assert!(get().await.body.starts_with("b "));
    }
    assert_eq!(a.hits(), hits, "a removed endpoint gets nothing");

    // All removed: 503 again.
    let r = http_request(admin, "DELETE", "admin", "/v1/clusters/edge/endpoints", &[], b"").await.unwrap();
    assert_eq!(r.status, 200);
    eventually("503 once the cluster is empty", 200, || async { (get().await.status == 503).then_some(()) }).await;

    let stats = envoy.stats().await;
    let rejected: Vec<_> = stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", envoy.log());
    assert!(stats.get("cluster_manager.cds.update_success").is_some_and(|n| *n > 0), "CDS came over REST");
    assert!(stats.get("cluster.edge.update_success").is_some_and(|n| *n > 0), "EDS came over REST");
    assert!(daemon.streams.all().is_empty(), "no gRPC stream: everything came over REST");
    // The polling Envoy is listed in /status, with what it holds per type.
    let status = http_get(admin, "admin", "/status", &[]).await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let clients = status["rest_clients"].as_array().expect("rest_clients in /status");
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!((clients[0]["protocol"].as_str(), clients[0]["proxy"].as_str()), (Some("rest"), Some("sidecar")));
    for ty in ["CDS", "EDS", "LDS", "RDS"] {
        let t = &clients[0]["types"][ty];
        assert!(t["acked"].is_string() && t.get("last_nack").is_none(), "{ty}: {t}");
    }
    for ty in ResourceType::ALL {
        assert_eq!(daemon.metrics.nacks(ty), 0, "{} NACKs", ty.short());
    }
}

/// Bad REST polls: a 400 saying why for junk, another type's URL or no
/// node, a 404 saying why for a node that matches no proxy, 405 for GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rest_polls_are_told_why() {
    let profile = parse_profile(
        "rest.toml",
        "rest",
        "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:18557\"]\n[[domains]]\nname = \"a.test:18557\"\n\
         [[domains.routes]]\ncluster = \"c\"\n[clusters.c.static]\nendpoints = [{ address = \"127.0.0.1:9\" }]\n",
    )
    .unwrap();
    let daemon =
        Daemon::start(profile, loopback_listener().await, Some(loopback_listener().await), CancellationToken::new())
            .unwrap();
    let admin = daemon.admin_addr.unwrap();
    let post = |path: &'static str, body: &'static str| async move {
        http_request(admin, "POST", "admin", path, &[], body.as_bytes()).await.unwrap()
    };
    let node = r#""node": {"id": "p-1", "cluster": "p"}"#;
    for (body, status, why) in [
        ("{not json", 400, "not a JSON DiscoveryRequest"),
        (r#"{"node": {"id": 3}}"#, 400, "not a JSON DiscoveryRequest"),
        (
            r#"{"type_url": "type.googleapis.com/envoy.config.listener.v3.Listener", "node": {"cluster": "p"}}"#,
            400,
            "this path serves",
        ),
        ("{}", 400, "names no node"),
        (r#"{"node": {"id": "x", "cluster": "nobody"}}"#, 404, "no proxy of profile rest matches"),
    ] {
        let r = post("/v3/discovery:clusters", body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(why), "{body}: {}", r.body);
    }
    let r = http_get(admin, "admin", "/v3/discovery:clusters", &[]).await.unwrap();
    assert_eq!(r.status, 405);
    // The unknown node is in /status, with why it is served nothing.
    let status = http_get(admin, "admin", "/status", &[]).await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let lost = status["rest_clients"].as_array().unwrap().iter().find(|c| c["node"]["cluster"] == "nobody").cloned();
    let why = lost.expect("the unknown node is listed")["unmatched"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("no proxy of profile rest matches"), "{why}");

    // A good poll, and the same poll again: the same version and body.
    let body: &'static str = Box::leak(format!("{{{node}}}").into_boxed_str());
    let first = post("/v3/discovery:clusters", body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let v: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(v["resources"][0]["@type"], "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    assert_eq!(v["resources"][0]["name"], "c");
    assert_eq!(
        v["resources"][0]["eds_cluster_config"]["eds_config"]["api_config_source"]["api_type"], "REST",
        "the cluster's endpoints come over REST too"
    );
    assert_eq!(post("/v3/discovery:clusters", body).await.body, first.body);
}
