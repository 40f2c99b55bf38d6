//! Discovery benchmark: how long a pod change takes to reach Envoy,
//! measured, not asserted. Run with `cargo bench --bench discovery`.
//!
//! Pod events go through the in-process fake API server
//! (tests/support/fake_kube.rs) and kube's real client, over loopback:
//!
//! 1. A 10-pod edge cluster, 200 readiness flips of one pod: event in the
//!    API server -> published (discovery's local work: decode, index, EDS-only
//!    publish) -> EDS response at an ADS client (tonic, ACKing like Envoy)
//!    -> and, with a real Envoy instead, Envoy's ACK of it.
//! 2. A 10,000-pod edge cluster, one pod flipping: the same through the
//!    fake server.
//! 3. The local work alone (index apply + EDS-only publish, no I/O) of one
//!    pod flipping in a cluster of 1,000, 10,000 and 100,000 pods, beside a
//!    full translation's build of the same load assignment.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use devbridge::app::Daemon;
use devbridge::bootstrap::{bootstrap, to_yaml};
use devbridge::discovery::index::objects::{Object, PodInfo};
use devbridge::discovery::index::{Change, Index};
use devbridge::discovery::plan::Plan;
use devbridge::model::{Discovered, EndpointSet};
use devbridge::profile::Profile;
use devbridge::publish::Builder;
use devbridge::xds::ResourceType;
use devbridge::xds::load_assignment::LoadAssignmentCache;
use devbridge::xds::translate::to_load_assignment;
use k8s_openapi::api::core::v1::Pod;
use support::ads::{AdsClient, envoy_request};
use support::fake_kube::{FakeKube, Kind, pod};
use support::kube::{EDGE, TOKEN, mk_profile};
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 200;
/// Pod `i` of the edge: loopback addresses only (nothing connects to them).
fn edge_pod(i: usize, ready: bool) -> serde_json::Value {
    let ip = format!("127.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, (i & 255).max(1));
    pod("edge", &format!("edge-{i}"), &[("app", "edge-envoy")], &ip, &[("http", 8000 + (i % 1000) as u16)], ready)
}

/// Subscribes to everything like Envoy and ACKs each response.
async fn subscribe_all(c: &mut AdsClient, port: u16) {
    for (ty, names) in [
        (ResourceType::Cluster, vec![]),
        (ResourceType::Endpoint, vec!["edge".to_string()]),
        (ResourceType::Listener, vec![]),
        (ResourceType::Route, vec![format!("routes_{port}")]),
    ] {
        c.send(envoy_request("sidecar", ty.type_url(), names.clone(), None)).await;
        let r = c.recv().await;
        c.send(envoy_request("sidecar", ty.type_url(), names, Some(&r))).await;
    }
}

/// Records when each publish happens.
fn publish_times(daemon: &Daemon) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut published = daemon.published();
    tokio::spawn(async move {
        while published.changed().await.is_ok() {
            let _ = tx.send(Instant::now());
        }
    });
    rx
}

struct Setup {
    fake: FakeKube,
    daemon: Daemon,
    port: u16,
    profile: Profile,
    _dir: tempfile::TempDir,
}

async fn mk_setup(pods: usize) -> Setup {
    let fake = FakeKube::start_new(TOKEN).await;
    for i in 0..pods {
        fake.apply(Kind::Pods, edge_pod(i, true));
    }
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let profile = mk_profile(port, &fake.kubeconfig(dir.path()), &["edge"], EDGE);
    let listener = support::loopback_listener().await;
    let daemon = Daemon::start_with(
        profile.clone(),
        listener,
        None,
        CancellationToken::new(),
        devbridge::app::Options::default(),
    )
    .unwrap();
    let eds_of = |d: &Daemon| support::kube::served(d, "edge").len();
    support::eventually("the edge pods to be served", 2000, || async { (eds_of(&daemon) == pods).then_some(()) }).await;
    Setup { fake, daemon, port, profile, _dir: dir }
}

/// Flips pod 0's readiness `EVENTS` times; per event, the time to the
/// publish and to the EDS response at an ADS client.
async fn through_client(s: &Setup, label: &str) {
    let mut client = AdsClient::connect(&s.daemon).await;
    subscribe_all(&mut client, s.port).await;
    let mut published = publish_times(&s.daemon);
    let (mut to_publish, mut to_client, mut bytes) = (Vec::new(), Vec::new(), 0);
    for i in 0..EVENTS {
        let t = Instant::now();
        s.fake.apply(Kind::Pods, edge_pod(0, i % 2 == 1));
        let r = client.recv().await;
        to_client.push(t.elapsed());
        to_publish.push(published.recv().await.unwrap() - t);
        assert!(r.type_url.ends_with("ClusterLoadAssignment"), "only EDS changes: got {}", r.type_url);
        bytes = r.resources.iter().map(|a| a.value.len()).sum();
        client.send(envoy_request("sidecar", &r.type_url, vec!["edge".into()], Some(&r))).await;
    }
    support::report(&format!("{label}: pod event -> published"), to_publish);
    support::report(&format!("{label}: pod event -> EDS at an ADS client"), to_client);
    println!("{label}: EDS response {bytes} bytes");
}

/// The same flips with a real Envoy: time to its ACK of the EDS update.
async fn through_envoy(s: &Setup) {
    let Ok(_) = std::panic::catch_unwind(support::envoy_binary) else {
        println!("(no Envoy binary: set DEVBRIDGE_ENVOY or run tests/run.sh for the Envoy ACK figures)");
        return;
    };
    let proxy = s.profile.proxies["sidecar"].clone();
    let xds_port = s.daemon.xds_addr.port();
    let envoy = support::Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    envoy.wait_configured().await;
    let acks = || s.daemon.metrics.acks(ResourceType::Endpoint);
    // Let the initial EDS exchange finish, so the first ACK counted is ours.
    support::eventually("Envoy's first EDS ACK", 400, || async { (acks() > 0).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut to_ack = Vec::new();
    for i in 0..EVENTS {
        let before = acks();
        let t = Instant::now();
        // Pod 0 is Ready after the client run: flip it to not Ready first.
        s.fake.apply(Kind::Pods, edge_pod(0, i % 2 == 1));
        let deadline = t + Duration::from_secs(10);
        while acks() == before {
            assert!(Instant::now() < deadline, "no EDS ACK from Envoy within 10 s");
            tokio::task::yield_now().await;
        }
        to_ack.push(t.elapsed());
    }
    support::report("10 pods: pod event -> Envoy ACK (real Envoy)", to_ack);
}

/// Index apply + EDS-only publish of one changed pod among `n`, no I/O.
fn local_work(n: usize) {
    let profile = mk_profile(18888, "/nonexistent", &["edge"], EDGE);
    let mut builder = Builder::new(Arc::new(profile.clone()), Arc::default()).unwrap();
    let mut index = Index::default();
    index.set_plan(Plan::from_profile(&profile));
    let key = index.plan().watches().into_keys().next().unwrap();
    let info = |i: usize, ready: bool| {
        let pod: Pod = serde_json::from_value(edge_pod(i, ready)).unwrap();
        Object::Pod(PodInfo::from_pod(&pod))
    };
    index.apply(&key, Change::Init);
    for i in 0..n {
        index.apply(&key, Change::InitApply(info(i, true)));
    }
    index.apply(&key, Change::InitDone);
    let all = index.plan().clusters.keys().cloned().collect();
    let mut sent = Arc::new(Discovered { endpoints: index.discovered(), changed: all, generation: 1 });
    builder.set_discovered(sent.clone()).unwrap();
    let (mut apply, mut publish) = (Vec::new(), Vec::new());
    for i in 0..EVENTS {
        let object = info(0, i % 2 == 1);
        let t = Instant::now();
        let changed: std::collections::BTreeSet<String> =
            index.apply(&key, Change::Apply(object)).into_iter().collect();
        let next: EndpointSet = sent
            .endpoints
            .iter()
            .map(|(c, eps)| (c.clone(), if changed.contains(c) { index.endpoints(c) } else { eps.clone() }))
            .collect();
        apply.push(t.elapsed());
        let t2 = Instant::now();
        sent = Arc::new(Discovered { endpoints: next, changed, generation: sent.generation + 1 });
        assert!(builder.set_discovered(sent.clone()).unwrap().is_some());
        publish.push(t2.elapsed());
    }
    let eps = index.endpoints("edge");
    let build: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(to_load_assignment("edge", &eps));
            t.elapsed()
        })
        .collect();
    // What the EDS-only path does instead: one endpoint differs from the
    // cached build each time.
    let mut cache = LoadAssignmentCache::default();
    let first = eps.iter().next().cloned().into_iter().collect::<Vec<_>>();
    let flipped = eps.edited(&first, &[]);
    cache.to_resource("edge", &eps);
    let pack: Vec<Duration> = (0..50)
        .map(|i| {
            let t = Instant::now();
            std::hint::black_box(cache.to_resource("edge", if i % 2 == 0 { &flipped } else { &eps }));
            t.elapsed()
        })
        .collect();
    let total: Vec<Duration> = apply.iter().zip(&publish).map(|(a, b)| *a + *b).collect();
    support::report(&format!("{n} pods: index apply + endpoint list (local)"), apply);
    support::report(&format!("{n} pods: EDS-only publish (local)"), publish);
    support::report(&format!("{n} pods: one pod changed, local work in all"), total);
    support::report(&format!("{n} pods: of which packing the load assignment"), pack);
    support::report(&format!("{n} pods: (a full translation's load assignment)"), build);
}

fn main() {
    println!(
        "devbridge discovery benchmark ({EVENTS} events per figure; {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // `cargo bench --bench discovery -- local` runs one part (`wire` or
    // `local`); no name runs both.
    let parts: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if run("wire") {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let small = mk_setup(10).await;
            through_client(&small, "10 pods").await;
            through_envoy(&small).await;
            drop(small);
            let large = mk_setup(10_000).await;
            through_client(&large, "10000 pods").await;
        });
    }
    // The cost of one changed pod should grow with what changed, not with
    // the cluster: the same figures at three sizes.
    if run("local") {
        for n in [1_000, 10_000, 100_000] {
            local_work(n);
        }
    }
}
