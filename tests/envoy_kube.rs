//! A real Envoy routes to edge pods found through a (fake) Kubernetes API
//! server: a pod becoming ready gets traffic, a deleted pod stops getting
//! it, the API server dying leaves the last endpoints routed (and the
//! source degraded), and its return resumes discovery. Endpoint changes
//! reach Envoy as EDS only, and Envoy rejects nothing.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use devbridge::app::Daemon;
use devbridge::bootstrap::{XdsApi, bootstrap_for, to_yaml};
use devbridge::xds::ResourceType;
use support::fake_kube::{FakeKube, Kind, pod};
use support::kube::{EDGE, TOKEN, connected, degraded, mk_options, mk_profile, wait_sources};
use support::{Envoy, Upstream, eventually, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

/// An edge pod on hostNetwork whose container port `http` is a loopback upstream.
fn edge(name: &str, upstream: &Upstream, ready: bool) -> serde_json::Value {
    pod("edge", name, &[("app", "edge-envoy")], "127.0.0.1", &[("http", upstream.addr.port())], ready)
}

/// Sends `n` requests; returns the upstreams that answered (all must be 200).
async fn answering(listener: SocketAddr, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let r = http_get(listener, "x.test", "/c/edge", &[]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        seen.insert(r.body.split_whitespace().next().unwrap_or_default().to_string());
    }
    seen
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

both_protocols!(envoy_follows_edge_pods_and_keeps_routing_while_the_api_server_is_down);
async fn envoy_follows_edge_pods_and_keeps_routing_while_the_api_server_is_down(api: XdsApi) {
    let (u1, u2, u3) =
        (Upstream::start("edge-1").await, Upstream::start("edge-2").await, Upstream::start("edge-3").await);
    let fake = FakeKube::start_new(TOKEN).await;
    fake.apply(Kind::Pods, edge("edge-1", &u1, false));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    let profile = mk_profile(port, &fake.kubeconfig(dir.path()), &["edge"], EDGE);
    let proxy = profile.proxies["sidecar"].clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start_with(profile, xds, None, CancellationToken::new(), mk_options()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap_for(&proxy, "127.0.0.1", xds_port, api))).await;
    envoy.wait_listening(listener).await;
    wait_sources(&daemon, "edge connected", connected).await;
    let protocols: Vec<String> = daemon.streams.all().into_iter().map(|s| s.protocol).collect();
    assert_eq!(protocols, [api.protocol()], "Envoy speaks the protocol its bootstrap names");

    // Not Ready: no healthy upstream.
    assert_eq!(http_get(listener, "x.test", "/c/edge", &[]).await.unwrap().status, 503);
    let cds_pushes = daemon.metrics.pushes(ResourceType::Cluster);

    // 1. The pod becomes Ready: Envoy routes to it.
    fake.apply(Kind::Pods, edge("edge-1", &u1, true));
    eventually("edge-1 to get traffic", 200, || async {
        let r = http_get(listener, "x.test", "/c/edge", &[]).await.unwrap();
        (r.status == 200 && r.body.starts_with("edge-1 ")).then_some(())
    })
    .await;

    // 2. A second pod: both get traffic (round robin).
    fake.apply(Kind::Pods, edge("edge-2", &u2, true));
    eventually("both edges to get traffic", 200, || async {
        (answering(listener, 4).await == names(&["edge-1", "edge-2"])).then_some(())
    })
    .await;

    // 3. edge-1 deleted: only edge-2 is left.
    fake.delete(Kind::Pods, "edge", "edge-1");
    eventually("edge-1 to be removed", 200, || async {
        (answering(listener, 4).await == names(&["edge-2"])).then_some(())
    })
    .await;

    // 4. The API server dies: Envoy keeps routing to the last endpoints,
    //    and the source says it is degraded.
    fake.stop();
    wait_sources(&daemon, "edge degraded", degraded).await;
    assert_eq!(answering(listener, 10).await, names(&["edge-2"]), "the last endpoints keep serving");

    // 5. It comes back, with a pod added meanwhile: discovery resumes.
    fake.apply(Kind::Pods, edge("edge-3", &u3, true));
    fake.start().await;
    wait_sources(&daemon, "edge connected again", connected).await;
    eventually("edge-3 to get traffic", 200, || async {
        (answering(listener, 4).await == names(&["edge-2", "edge-3"])).then_some(())
    })
    .await;

    assert_eq!(daemon.metrics.pushes(ResourceType::Cluster), cds_pushes, "endpoint changes are EDS only");
    let stats = envoy.stats().await;
    let rejected: Vec<_> = stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", envoy.log());
    for ty in ResourceType::ALL {
        assert_eq!(daemon.metrics.nacks(ty), 0, "{} NACKs", ty.short());
    }
}
