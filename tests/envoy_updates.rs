//! A real Envoy follows profile changes published while it is connected:
//! an endpoint change (EDS only), a cluster and route swapped in and out
//! (make-before-break), with no request failing during the switch and no
//! update rejected.

mod support;

use std::net::SocketAddr;

use devbridge::app::Daemon;
use devbridge::bootstrap::{XdsApi, bootstrap_for, to_yaml};

use devbridge::xds::ResourceType;
use support::{Envoy, ProfileFile, Upstream, eventually, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

fn mk_profile(port: u16, routes: &[(&str, &str)], clusters: &[(&str, SocketAddr)]) -> String {
    let mut src = format!(
        "[zones.dev-local]\n[proxies.sidecar]\nzone = \"dev-local\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"x.test:{port}\"]\n[[domains]]\nname = \"x.test:{port}\"\n"
    );
    for (prefix, cluster) in routes {
        src += &format!("[[domains.routes]]\nprefix = \"{prefix}\"\ncluster = \"{cluster}\"\n");
    }
    for (name, addr) in clusters {
        src += &format!("[clusters.{name}.static]\nendpoints = [{{ address = \"{addr}\" }}]\n");
    }
    src
}

both_protocols!(envoy_follows_endpoint_cluster_and_route_changes_without_failing_a_request);
async fn envoy_follows_endpoint_cluster_and_route_changes_without_failing_a_request(api: XdsApi) {
    let (u1, u2, u3) = (Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await);
    let port = free_port();
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    let v1 = mk_profile(port, &[("/a", "ca"), ("/b", "cb")], &[("ca", u1.addr), ("cb", u2.addr)]);
    let file = ProfileFile::new("updates", &v1);
    let v1 = file.load();
    let proxy = v1.proxies["sidecar"].clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start_with(v1, xds, None, CancellationToken::new(), file.options()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap_for(&proxy, "127.0.0.1", xds_port, api))).await;
    envoy.wait_listening(listener).await;
    let body = |path: &'static str| async move { http_get(listener, "x.test", path, &[]).await.unwrap() };
    assert_eq!(body("/a").await.body, "u1 GET /a\n");
    let protocols: Vec<String> = daemon.streams.all().into_iter().map(|s| s.protocol).collect();
    assert_eq!(protocols, [api.protocol()], "Envoy speaks the protocol its bootstrap names");
    let eds_pushes = daemon.metrics.pushes(ResourceType::Endpoint);
    let cds_pushes = daemon.metrics.pushes(ResourceType::Cluster);

    // 1. Only ca's endpoint changes: an EDS push, and traffic moves.
    file.edit(&daemon, &mk_profile(port, &[("/a", "ca"), ("/b", "cb")], &[("ca", u3.addr), ("cb", u2.addr)])).await;
    eventually("/a to reach u3", 200, || async {
        let r = body("/a").await;
        assert_eq!(r.status, 200, "no request fails while endpoints change");
        (r.body == "u3 GET /a\n").then_some(())
    })
    .await;
    assert_eq!(body("/b").await.body, "u2 GET /b\n");
    assert_eq!(daemon.metrics.pushes(ResourceType::Endpoint), eds_pushes + 1);
    assert_eq!(daemon.metrics.pushes(ResourceType::Cluster), cds_pushes, "an endpoint change sends no CDS");

    // 2. Route /b and cluster cb go; route /c and cluster cc come. /a keeps
    //    answering throughout.
    file.edit(&daemon, &mk_profile(port, &[("/a", "ca"), ("/c", "cc")], &[("ca", u3.addr), ("cc", u1.addr)])).await;
    eventually("/c to reach u1", 200, || async {
        assert_eq!(body("/a").await.status, 200, "an unrelated route keeps working during the switch");
        let r = body("/c").await;
        (r.body == "u1 GET /c\n").then_some(())
    })
    .await;
    assert_eq!(body("/b").await.status, 404);
    eventually("cb to be removed from Envoy", 200, || async {
        let s = envoy.stats().await;
        (!s.keys().any(|k| k.starts_with("cluster.cb."))).then_some(())
    })
    .await;

    let stats = envoy.stats().await;
    let rejected: Vec<_> = stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", envoy.log());
    let log = envoy.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[error]")).collect();
    assert!(errors.is_empty(), "Envoy logged errors:\n{}", errors.join("\n"));
    assert_eq!(stats.get("cluster_manager.cds.update_rejected"), Some(&0));
    assert_eq!(stats.get("listener_manager.lds.update_rejected"), Some(&0));
    for ty in ResourceType::ALL {
        assert_eq!(daemon.metrics.nacks(ty), 0, "{} NACKs", ty.short());
    }
}

// A restarted devbridge on the same port is picked up: traffic never stops
// (Envoy keeps its config meanwhile) and follows the change made while
// devbridge was down. A delta Envoy lists what it holds when it reconnects,
// so it is sent only the one load assignment that changed; a
// state-of-the-world Envoy is sent everything again.
both_protocols!(a_restarted_devbridge_sends_a_delta_envoy_only_what_changed);
async fn a_restarted_devbridge_sends_a_delta_envoy_only_what_changed(api: XdsApi) {
    let (u1, u2, u3) = (Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await);
    let port = free_port();
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    let routes = [("/a", "ca"), ("/b", "cb")];
    let v1 = mk_profile(port, &routes, &[("ca", u1.addr), ("cb", u2.addr)]);
    let file = ProfileFile::new("restart", &v1);
    let proxy = file.load().proxies["sidecar"].clone();
    let xds = loopback_listener().await;
    let xds_addr = xds.local_addr().unwrap();
    let token = CancellationToken::new();
    let daemon = Daemon::start_with(file.load(), xds, None, token.clone(), file.options()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap_for(&proxy, "127.0.0.1", xds_addr.port(), api))).await;
    envoy.wait_listening(listener).await;
    let body = |path: &'static str| async move { http_get(listener, "x.test", path, &[]).await.unwrap() };
    assert_eq!(body("/a").await.body, "u1 GET /a\n");

    token.cancel();
    daemon.wait().await.unwrap();
    assert_eq!(body("/a").await.body, "u1 GET /a\n", "Envoy keeps serving while devbridge is down");
    std::fs::write(&file.path, mk_profile(port, &routes, &[("ca", u3.addr), ("cb", u2.addr)])).unwrap();
    let xds = tokio::net::TcpListener::bind(xds_addr).await.expect("the same port again");
    let daemon = Daemon::start_with(file.load(), xds, None, CancellationToken::new(), file.options()).unwrap();

    eventually("/a to reach u3", 200, || async {
        let r = body("/a").await;
        assert_eq!(r.status, 200, "no request fails across the restart");
        (r.body == "u3 GET /a\n").then_some(())
    })
    .await;
    assert_eq!(body("/b").await.body, "u2 GET /b\n");
    let pushes: Vec<u64> = ResourceType::ALL.iter().map(|ty| daemon.metrics.pushes(*ty)).collect();
    match api {
        XdsApi::Delta => assert_eq!(pushes, [0, 1, 0, 0], "only EDS, once (CDS, EDS, LDS, RDS)"),
        XdsApi::Grpc => assert!(pushes.iter().all(|n| *n >= 1), "every type again: {pushes:?}"),
        XdsApi::Rest => unreachable!("a stream test"),
    }
    let rejected: Vec<_> =
        envoy.stats().await.into_iter().filter(|(k, v)| k.ends_with("update_rejected") && *v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", envoy.log());
}
