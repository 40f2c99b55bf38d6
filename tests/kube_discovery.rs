//! Kubernetes discovery against an in-process fake API server, driven by
//! kube's real client: selection, skip reasons, node addresses and zones,
//! shared watches, EndpointSlices, and the faults (server down, silent,
//! connections cut, 410 Gone, forced relists), with no token in any log.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devbridge::app::{Daemon, Options};
use devbridge::discovery::index::{SkipReason, Skipped};
use devbridge::discovery::{SourceState, SourceStatus};
use devbridge::profile::PortRef;
use support::fake_kube::{FakeKube, Kind, endpoint_slice, node, pod};
use support::kube::{
    EDGE, TOKEN, connected, degraded, mk_options, mk_source, served, served_in, source_counters, wait_served,
    wait_sources,
};
use support::{ProfileFile, eventually, free_port, loopback_listener};
use tokio_util::sync::CancellationToken;

const LABELS: &[(&str, &str)] = &[("app", "edge-envoy")];

/// Every log line of this test binary, at debug level and above.
fn logged() -> String {
    support::logs::captured("debug")
}

struct Setup {
    fake: FakeKube,
    daemon: Daemon,
    kubeconfig: String,
    port: u16,
    file: ProfileFile,
    _dir: tempfile::TempDir,
}

async fn mk_setup(names: &[&str], clusters: &str, objects: Vec<(Kind, serde_json::Value)>) -> Setup {
    mk_setup_with(names, clusters, objects, mk_options(), false).await
}

/// [`mk_setup`] with these options, and an admin server when `admin`.
async fn mk_setup_with(
    names: &[&str],
    clusters: &str,
    objects: Vec<(Kind, serde_json::Value)>,
    options: Options,
    admin: bool,
) -> Setup {
    logged();
    let fake = FakeKube::start_new(TOKEN).await;
    for (kind, o) in objects {
        fake.apply(kind, o);
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let port = free_port();
    let file = ProfileFile::new("kube", &mk_source(port, &kubeconfig, names, clusters));
    let options = Options { follow: file.options().follow, ..options };
    let admin = if admin { Some(loopback_listener().await) } else { None };
    let daemon =
        Daemon::start_with(file.load(), loopback_listener().await, admin, CancellationToken::new(), options).unwrap();
    Setup { fake, daemon, kubeconfig, port, file, _dir: dir }
}

fn edge_pod(name: &str, port: u16, ready: bool) -> (Kind, serde_json::Value) {
    (Kind::Pods, pod("edge", name, LABELS, "127.0.0.1", &[("http", port)], ready))
}

/// A status without its times, for whole-value comparison.
fn timeless(s: &SourceStatus) -> (String, Vec<String>, &'static str, bool, usize, usize, Vec<Skipped>) {
    let state = match s.state {
        SourceState::Connecting => "connecting",
        SourceState::Connected { .. } => "connected",
        SourceState::Degraded { .. } => "degraded",
    };
    (s.name.clone(), s.clusters.clone(), state, s.synced, s.seen, s.selected, s.skipped.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_become_ready_are_served_and_deleted_pods_are_removed() {
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, false)]).await;
    wait_sources(&s.daemon, "edge connected", connected).await;
    assert_eq!(served(&s.daemon, "edge"), Vec::<String>::new(), "not Ready yet");

    s.fake.apply(Kind::Pods, pod("edge", "e1", LABELS, "127.0.0.1", &[("http", 9001)], true));
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    s.fake.apply(Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.2", &[("http", 9002)], true));
    s.fake.apply(Kind::Pods, pod("other", "x1", LABELS, "127.0.0.9", &[("http", 9009)], true));
    s.fake.apply(Kind::Pods, pod("edge", "x2", &[("app", "other")], "127.0.0.8", &[("http", 9008)], true));
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001", "127.0.0.2:9002"]).await;

    s.fake.delete(Kind::Pods, "edge", "e1");
    wait_served(&s.daemon, "edge", &["127.0.0.2:9002"]).await;
    assert_eq!(s.fake.lists(Kind::Nodes), 0, "nodes are not read when neither zones nor node addresses are used");
    let status = wait_sources(&s.daemon, "counts", |s| s.first().is_some_and(|s| s.seen == 1)).await;
    assert_eq!(
        status.iter().map(timeless).collect::<Vec<_>>(),
        [(
            r#"pods "app=edge-envoy" in edge via the current context of {kc}"#.replace("{kc}", &s.kubeconfig),
            vec!["edge".to_string()],
            "connected",
            true,
            1,
            1,
            vec![]
        )]
    );
    assert_eq!(status[0].server.as_deref(), Some(format!("http://{}", s.fake.addr).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_without_the_port_is_skipped_and_the_status_says_why() {
    let no_port = (Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.2", &[("admin", 9901)], true));
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, true), no_port]).await;

    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    let status = wait_sources(&s.daemon, "the skipped pod", |s| s.first().is_some_and(|s| s.seen == 2)).await;
    let reason = SkipReason::NoPort { port: PortRef::Name("http".into()), has: vec!["admin=9901".into()] };
    assert_eq!(status[0].skipped, [Skipped { cluster: "edge".into(), object: "edge/e2".into(), reason }]);
    assert_eq!((status[0].seen, status[0].selected), (2, 1));
    let log = logged();
    assert!(log.contains(r#"pod skipped"#) && log.contains(r#"has no port named "http"; it has admin=9901"#), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_addresses_and_zones_are_taken_from_the_nodes() {
    let clusters = r#"
[clusters.internal.kubernetes]
kubeconfig = "{kc}"
namespace = "edge"
selector = "app=edge-envoy"
port = "http"
address = "node-internal"
node_zones = true
[clusters.external.kubernetes]
kubeconfig = "{kc}"
namespace = "edge"
selector = "app=edge-envoy"
port = "http"
address = "node-external"
"#;
    let mut on_node2 = pod("edge", "e2", LABELS, "10.9.0.2", &[("http", 8080)], true);
    on_node2["spec"]["nodeName"] = "node-2".into();
    let objects = vec![
        (Kind::Pods, pod("edge", "e1", LABELS, "10.9.0.1", &[("http", 8080)], true)),
        (Kind::Pods, on_node2),
        (Kind::Nodes, node("node-1", Some("zone-a"), Some("127.0.1.1"), Some("127.0.2.1"))),
        (Kind::Nodes, node("node-2", Some("zone-b"), Some("127.0.1.2"), None)),
    ];
    let s = mk_setup(&["internal", "external"], clusters, objects).await;

    wait_served(&s.daemon, "internal", &["127.0.1.1:8080@zone-a", "127.0.1.2:8080@zone-b"]).await;
    wait_served(&s.daemon, "external", &["127.0.2.1:8080"]).await;
    let status = wait_sources(&s.daemon, "both watches", |s| s.len() == 2 && connected(s)).await;
    assert_eq!(
        status[0].skipped,
        [Skipped {
            cluster: "external".into(),
            object: "edge/e2".into(),
            reason: SkipReason::NoNodeAddress { node: "node-2".into(), kind: "ExternalIP" },
        }]
    );
    assert_eq!(status[1].name, format!("nodes via the current context of {}", s.kubeconfig));

    // A node's zone label changes: the endpoint moves locality.
    s.fake.apply(Kind::Nodes, node("node-2", Some("zone-c"), Some("127.0.1.2"), None));
    wait_served(&s.daemon, "internal", &["127.0.1.1:8080@zone-a", "127.0.1.2:8080@zone-c"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_that_select_the_same_pods_share_one_watch() {
    let clusters = format!(
        "{EDGE}[clusters.admin.kubernetes]\nkubeconfig = \"{{kc}}\"\nnamespace = \"edge\"\nselector = \"app = edge-envoy\"\nport = \"admin\"\n"
    );
    let both = (Kind::Pods, pod("edge", "e1", LABELS, "127.0.0.1", &[("http", 9001), ("admin", 9901)], true));
    let s = mk_setup(&["edge", "admin"], &clusters, vec![both]).await;

    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    wait_served(&s.daemon, "admin", &["127.0.0.1:9901"]).await;
    let status = wait_sources(&s.daemon, "connected", connected).await;
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].clusters, ["admin", "edge"]);
    assert_eq!((s.fake.lists(Kind::Pods), s.fake.watches(Kind::Pods) >= 1), (1, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_served_from_its_endpoint_slices() {
    let clusters = r#"
[clusters.films.kubernetes_service]
kubeconfig = "{kc}"
namespace = "films"
service = "films"
port = "http"
"#;
    let slice =
        endpoint_slice("films", "films-abc", "films", ("http", 8000), &[("127.0.3.1", true), ("127.0.3.2", false)]);
    let other = endpoint_slice("films", "ratings-x", "ratings", ("http", 8000), &[("127.0.4.1", true)]);
    let s = mk_setup(&["films"], clusters, vec![(Kind::Slices, slice), (Kind::Slices, other)]).await;

    wait_served(&s.daemon, "films", &["127.0.3.1:8000@zone-a"]).await;
    let scaled =
        endpoint_slice("films", "films-abc", "films", ("http", 8000), &[("127.0.3.1", true), ("127.0.3.2", true)]);
    s.fake.apply(Kind::Slices, scaled);
    wait_served(&s.daemon, "films", &["127.0.3.1:8000@zone-a", "127.0.3.2:8000@zone-a"]).await;
    s.fake.delete(Kind::Slices, "films", "films-abc");
    wait_served(&s.daemon, "films", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_down_keeps_the_last_endpoints_and_degrades_until_it_returns() {
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, true)]).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    wait_sources(&s.daemon, "connected", connected).await;

    s.fake.stop();
    let status = wait_sources(&s.daemon, "degraded", degraded).await;
    let SourceState::Degraded { error, .. } = &status[0].state else { unreachable!() };
    let hint = format!("is the VPN up? the API server http://{} did not answer", s.fake.addr);
    assert!(error.starts_with(&hint), "{error}");
    assert!(status[0].data_age(std::time::SystemTime::now()).is_some());
    assert_eq!(served(&s.daemon, "edge"), ["127.0.0.1:9001"], "the last known endpoints stay");

    // Changes while it is down are picked up when it returns.
    s.fake.apply(Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.2", &[("http", 9002)], true));
    s.fake.start().await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001", "127.0.0.2:9002"]).await;
    wait_sources(&s.daemon, "connected again", connected).await;

    let log = logged();
    let warned = lines_of(&log, &s.kubeconfig, "source degraded");
    assert_eq!(warned.len(), 1, "one WARN for the state change: {warned:#?}");
    assert!(warned[0].contains(" WARN ") && warned[0].contains(&hint), "{}", warned[0]);
    assert!(warned[0].contains("serving 1 last known endpoint, data from 20"), "{}", warned[0]);
    assert!(log.contains("source reconnected"), "{log}");
    assert!(!log.contains(TOKEN), "the token reached a log line");
}

/// The log lines of the source read through `kubeconfig` that contain `what`.
fn lines_of<'a>(log: &'a str, kubeconfig: &str, what: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(&format!("of {kubeconfig}")) && l.contains(what)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_returns_is_listed_again_at_once_not_after_the_backoff() {
    // Every retry waits 30 s: within the 5 s bound below, only the probe
    // (a connect every 0.5 s) can bring the source back.
    let mut options = mk_options();
    options.discovery.backoff_min = Duration::from_secs(30);
    options.discovery.backoff_max = Duration::from_secs(30);
    options.discovery.probe_interval = devbridge::discovery::DEFAULT_PROBE_INTERVAL;
    let s = mk_setup_with(&["edge"], EDGE, vec![edge_pod("e1", 9001, true)], options, false).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    wait_sources(&s.daemon, "connected", connected).await;
    let lists = s.fake.lists(Kind::Pods);

    s.fake.stop();
    wait_sources(&s.daemon, "degraded", degraded).await;
    // Down for a few probes, which find the port refusing and list nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.fake.apply(Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.2", &[("http", 9002)], true));
    s.fake.start().await;
    let returned = std::time::Instant::now();

    eventually("reconnected within 5 s of the server's return", 100, || async {
        let back = served(&s.daemon, "edge") == ["127.0.0.1:9001", "127.0.0.2:9002"]
            && connected(&s.daemon.sources().borrow());
        back.then_some(())
    })
    .await;
    // Measured, not asserted: at most the probe's interval and a list.
    eprintln!("served again {:?} after the API server returned", returned.elapsed());
    assert_eq!(s.fake.lists(Kind::Pods), lists + 1, "one list when it returned, none while it was down");
    assert_eq!(lines_of(&logged(), &s.kubeconfig, "source reconnected").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_watch_moves_the_source_counters_in_metrics() {
    let s = mk_setup_with(
        &["edge"],
        EDGE,
        vec![edge_pod("e1", 9001, true), edge_pod("e2", 9002, false)],
        mk_options(),
        true,
    )
    .await;
    let admin = s.daemon.admin_addr.unwrap();
    let source = format!(r#"pods "app=edge-envoy" in edge via the current context of {}"#, s.kubeconfig);
    let events = ("devbridge_source_events_total".to_string(), source.clone());
    let errors = ("devbridge_source_errors_total".to_string(), source.clone());
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    wait_sources(&s.daemon, "connected", connected).await;
    // The list's two pods; no error yet.
    assert_eq!(source_counters(admin).await, [(events.clone(), 2)].into());

    // Two watch events: a pod becomes ready, one is deleted.
    s.fake.apply(Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.1", &[("http", 9002)], true));
    s.fake.delete(Kind::Pods, "edge", "e1");
    wait_served(&s.daemon, "edge", &["127.0.0.1:9002"]).await;
    assert_eq!(source_counters(admin).await, [(events.clone(), 4)].into());

    // The server goes away: every failed attempt counts, no event does.
    s.fake.stop();
    wait_sources(&s.daemon, "degraded", degraded).await;
    let counters = eventually("two failed attempts", 200, || async {
        let c = source_counters(admin).await;
        (c.get(&errors).is_some_and(|n| *n >= 2)).then_some(c)
    })
    .await;
    assert_eq!(counters.get(&events), Some(&4), "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_api_server_is_noticed_and_the_watch_recovers() {
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, true)]).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;

    s.fake.hang(true);
    let status = wait_sources(&s.daemon, "degraded by silence", degraded).await;
    let SourceState::Degraded { error, .. } = &status[0].state else { unreachable!() };
    assert!(error.contains("did not answer"), "{error}");
    assert_eq!(served(&s.daemon, "edge"), ["127.0.0.1:9001"]);

    s.fake.hang(false);
    wait_sources(&s.daemon, "connected again", connected).await;
    // Cut connections mid-watch: the watch starts over and misses nothing.
    s.fake.drop_connections();
    s.fake.apply(Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.2", &[("http", 9002)], true));
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001", "127.0.0.2:9002"]).await;
}

/// Records every endpoint set `cluster` is published with.
fn record(daemon: &Daemon, cluster: &'static str) -> Arc<Mutex<Vec<Vec<String>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (mut rx, out) = (daemon.published(), seen.clone());
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let published = rx.borrow_and_update().clone();
            out.lock().unwrap().push(served_in(&published, cluster));
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_resource_version_relists_without_a_gap() {
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, true)]).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let (mut rx, out) = (s.daemon.sources(), statuses.clone());
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            out.lock().unwrap().push(rx.borrow().clone());
        }
    });
    let published = record(&s.daemon, "edge");

    // The watch misses a change and the history is compacted: the next
    // resumed watch (every second) gets a 410 ERROR event and the source
    // lists again.
    s.fake.pause_watches(true);
    s.fake.apply(Kind::Pods, pod("edge", "e2", LABELS, "127.0.0.2", &[("http", 9002)], true));
    s.fake.compact();
    s.fake.pause_watches(false);
    eventually("a relist after 410", 400, || async { (s.fake.lists(Kind::Pods) >= 2).then_some(()) }).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001", "127.0.0.2:9002"]).await;

    // Then HTTP 410 on the watch request itself.
    let lists = s.fake.lists(Kind::Pods);
    s.fake.set_http_410(true);
    s.fake.pause_watches(true);
    s.fake.delete(Kind::Pods, "edge", "e1");
    s.fake.compact();
    s.fake.pause_watches(false);
    eventually("a relist after HTTP 410", 400, || async { (s.fake.lists(Kind::Pods) > lists).then_some(()) }).await;
    wait_served(&s.daemon, "edge", &["127.0.0.2:9002"]).await;

    assert!(published.lock().unwrap().iter().all(|eps| !eps.is_empty()), "edge was never published empty");
    let statuses = statuses.lock().unwrap();
    assert!(!statuses.iter().flatten().any(SourceStatus::is_degraded), "a 410 is routine, not trouble");
    assert!(logged().contains("410 Gone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_relist_lists_again_without_a_gap() {
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, true)]).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;
    let published = record(&s.daemon, "edge");
    let lists = s.fake.lists(Kind::Pods);

    // What a clock jump (the laptop waking up) does.
    s.daemon.discovery().relist();

    eventually("a relist", 400, || async { (s.fake.lists(Kind::Pods) > lists).then_some(()) }).await;
    wait_sources(&s.daemon, "connected", connected).await;
    assert_eq!(served(&s.daemon, "edge"), ["127.0.0.1:9001"]);
    assert!(published.lock().unwrap().is_empty(), "an identical relist publishes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_profile_moves_the_watches() {
    let canary = (Kind::Pods, pod("edge", "c1", &[("app", "edge-canary")], "127.0.0.5", &[("http", 9005)], true));
    let s = mk_setup(&["edge"], EDGE, vec![edge_pod("e1", 9001, true), canary]).await;
    wait_served(&s.daemon, "edge", &["127.0.0.1:9001"]).await;

    let moved = mk_source(s.port, &s.kubeconfig, &["edge"], &EDGE.replace("app=edge-envoy", "app=edge-canary"));
    s.file.edit(&s.daemon, &moved).await;

    wait_served(&s.daemon, "edge", &["127.0.0.5:9005"]).await;
    let status = wait_sources(&s.daemon, "one new watch", |s| s.len() == 1 && connected(s)).await;
    assert!(status[0].name.starts_with(r#"pods "app=edge-canary""#), "{}", status[0].name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_degrades_the_source_with_an_rbac_hint_and_is_never_logged() {
    let s = mk_setup(&["edge"], EDGE, vec![]).await;
    // Running first: the edit below is then a change of a running daemon.
    wait_sources(&s.daemon, "connected", connected).await;
    let wrong = s.kubeconfig.replace("kubeconfig", "kubeconfig-wrong");
    let text = std::fs::read_to_string(&s.kubeconfig).unwrap().replace(TOKEN, "wrong-token-also-secret-42");
    std::fs::write(&wrong, text).unwrap();

    let profile = mk_source(s.port, &wrong, &["edge"], EDGE);
    s.file.edit(&s.daemon, &profile).await;

    let status = wait_sources(&s.daemon, "refused", |s| s.len() == 1 && degraded(s)).await;
    let SourceState::Degraded { error, .. } = &status[0].state else { unreachable!() };
    assert!(error.contains("refused to let us list pods (401)") && error.contains("examples/rbac.yaml"), "{error}");
    let log = logged();
    assert!(!log.contains("wrong-token-also-secret-42") && !log.contains(TOKEN), "a token reached a log line");
    let warned = lines_of(&log, &wrong, "source degraded");
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(warned[0].contains("source degraded before its first list; no endpoints yet; retrying"), "{}", warned[0]);
}
