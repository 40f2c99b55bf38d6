//! The admin API with a real Envoy: seed 003 (endpoints registered at run
//! time: traffic flows, stops with 503 "no healthy upstream", cycles through
//! several), and a real NACK shown in /status and /metrics and not resent.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use devbridge::app::{Daemon, Options};
use devbridge::bootstrap::{bootstrap, to_yaml};
use devbridge::xds::ResourceType;
use serde_json::Value;
use support::{
    Envoy, HttpResponse, ProfileFile, Upstream, eventually, free_port, http_get, http_request, loopback_listener,
};
use tokio_util::sync::CancellationToken;

fn mk_profile(port: u16, cluster: &str) -> String {
    format!(
        "[zones.dev-local]\n[proxies.sidecar]\nzone = \"dev-local\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"svc.test:{port}\"]\n[[domains]]\nname = \"svc.test:{port}\"\n[[domains.routes]]\ncluster = \"svc\"\n{cluster}"
    )
}

/// A daemon following `file`, and an Envoy connected to it.
async fn start(file: &ProfileFile, state_file: Option<std::path::PathBuf>) -> (Daemon, Envoy, SocketAddr) {
    let profile = file.load();
    let proxy = profile.proxies["sidecar"].clone();
    let listener = SocketAddr::from(([127, 0, 0, 1], proxy.ports(&profile)[0]));
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start_with(
        profile,
        xds,
        Some(admin),
        CancellationToken::new(),
        Options { state_file, ..file.options() },
    )
    .unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    envoy.wait_listening(listener).await;
    (daemon, envoy, listener)
}

async fn admin(daemon: &Daemon, method: &str, path: &str, body: &str) -> HttpResponse {
    http_request(daemon.admin_addr.unwrap(), method, "admin", path, &[], body.as_bytes()).await.expect("admin answers")
}

async fn status(daemon: &Daemon) -> Value {
    serde_json::from_str(&admin(daemon, "GET", "/status", "").await.body).expect("/status is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_registered_through_the_api_carry_traffic_to_a_real_envoy() {
    let (u1, u2, u3) = (Upstream::start("u1").await, Upstream::start("u2").await, Upstream::start("u3").await);
    let dir = tempfile::tempdir().unwrap();
    let file = ProfileFile::new("envoy-admin", &mk_profile(free_port(), "[clusters.svc.registered]\n"));
    let (daemon, envoy, listener) = start(&file, Some(dir.path().join("state.json"))).await;
    let get = || async { http_get(listener, "svc.test", "/hello", &[]).await.unwrap() };
    let path = "/v1/clusters/svc/endpoints";

    // Nothing registered yet: Envoy has the cluster and no endpoint.
    let r = get().await;
    assert_eq!((r.status, r.body.as_str()), (503, "no healthy upstream"));

    // One endpoint: traffic flows.
    let put = admin(&daemon, "PUT", path, &format!(r#"[{{"address": "{}"}}]"#, u1.addr)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    eventually("traffic to reach u1", 200, || async { (get().await.body == "u1 GET /hello\n").then_some(()) }).await;

    // Removed: Envoy answers 503 "no healthy upstream".
    assert_eq!(admin(&daemon, "DELETE", path, "").await.status, 200);
    eventually("Envoy to lose the endpoint", 200, || async {
        let r = get().await;
        (r.status == 503 && r.body == "no healthy upstream").then_some(())
    })
    .await;

    // Several, with their tags: round robin cycles through all of them.
    let several = format!(
        r#"[{{"address": "{}", "zone": "dev-local"}}, {{"address": "{}", "zone": "dev-local", "weight": 2}},
            {{"address": "{}", "metadata": {{"canary": "true"}}}}]"#,
        u1.addr, u2.addr, u3.addr
    );
    assert_eq!(admin(&daemon, "PUT", path, &several).await.status, 200);
    // Each request is a new connection; Envoy may still be applying the
    // push for the first few, so allow a bounded number of them.
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let r = get().await;
        if r.status == 200 {
            seen.insert(r.body.split(' ').next().unwrap_or_default().to_string());
        }
        if seen.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seen, BTreeSet::from(["u1".to_string(), "u2".to_string(), "u3".to_string()]));

    // The tags reached Envoy: its /clusters lists each host's zone and weight.
    let clusters = http_get(envoy.admin, "admin", "/clusters", &[]).await.unwrap().body;
    for expected in [
        format!("svc::{}::zone::dev-local", u1.addr),
        format!("svc::{}::weight::2", u2.addr),
        format!("svc::{}::zone::", u3.addr),
    ] {
        assert!(clusters.lines().any(|l| l == expected), "{expected} not in Envoy's /clusters:\n{clusters}");
    }
    assert_eq!(envoy.stat("cluster_manager.cds.update_rejected").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_envoy_nack_shows_in_status_and_metrics_and_is_not_resent() {
    let up = Upstream::start("up").await;
    let port = free_port();
    let cluster = |extra: &str| {
        format!("[clusters.svc]\n{extra}\n[clusters.svc.static]\nendpoints = [{{ address = \"{}\" }}]\n", up.addr)
    };
    let file = ProfileFile::new("envoy-admin", &mk_profile(port, &cluster("")));
    let (daemon, envoy, listener) = start(&file, None).await;
    eventually("every type ACKed in /status", 200, || async {
        let s = status(&daemon).await;
        let types = &s["envoys"][0]["types"];
        ["CDS", "EDS", "LDS", "RDS"]
            .iter()
            .all(|t| types[t]["acked"].is_string() && types[t]["acked"] == types[t]["sent"])
            .then_some(())
    })
    .await;

    // devbridge's validation accepts a CA file it cannot see; Envoy cannot load it.
    file.edit(&daemon, &mk_profile(port, &cluster("tls = { ca_file = \"/nonexistent/ca.pem\" }"))).await;
    let nack = eventually("the NACK in /status", 200, || async {
        let s = status(&daemon).await;
        let n = s["envoys"][0]["types"]["CDS"]["last_nack"].clone();
        n.is_object().then_some((s, n))
    })
    .await;
    let (s, nack) = nack;
    assert_eq!(nack["error"], "Error adding/updating cluster(s) svc: Invalid path: /nonexistent/ca.pem");
    assert_eq!(nack["version"], s["envoys"][0]["types"]["CDS"]["sent"]);
    assert_ne!(s["envoys"][0]["types"]["CDS"]["acked"], nack["version"]);
    let metrics = admin(&daemon, "GET", "/metrics", "").await.body;
    assert!(metrics.lines().any(|l| l == "devbridge_xds_nacks_total{type=\"CDS\"} 1"), "{metrics}");
    // Envoy keeps serving what it had.
    assert_eq!(http_get(listener, "svc.test", "/still", &[]).await.unwrap().status, 200);

    // The next good profile is sent and ACKed on the same stream; had the
    // rejected version been sent again, its second NACK would have arrived
    // first (the stream is ordered).
    let pushes = daemon.metrics.pushes(ResourceType::Cluster);
    file.edit(&daemon, &mk_profile(port, &cluster("connect_timeout = \"2s\""))).await;
    let s = eventually("the good profile ACKed", 200, || async {
        let s = status(&daemon).await;
        let cds = &s["envoys"][0]["types"]["CDS"];
        (cds["acked"] == cds["sent"] && cds["sent"] != nack["version"]).then_some(s)
    })
    .await;
    assert_eq!(s["envoys"].as_array().unwrap().len(), 1);
    assert_eq!(s["envoys"][0]["stream"], 1, "the stream stayed up");
    assert_eq!(daemon.metrics.nacks(ResourceType::Cluster), 1);
    assert_eq!(daemon.metrics.pushes(ResourceType::Cluster), pushes + 1);
    assert_eq!(envoy.stat("cluster_manager.cds.update_rejected").await, 1);
}
