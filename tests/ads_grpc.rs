//! The ADS server spoken to by a real gRPC client (tonic, with Envoy's
//! protobufs from envoy-types), in process, on loopback.

mod support;

use std::time::Duration;

use devbridge::app::Daemon;
use devbridge::profile::{Profile, parse_profile};
use devbridge::xds::ResourceType;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use prost::Message;
use support::ProfileFile;
use support::ads::AdsClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn mk_source(extra_proxy: bool, timeout: &str) -> String {
    let mut src = format!(
        r#"
[zones.dev-local]

[proxies.p1]
zone = "dev-local"
domains = ["one.test:10001"]

[proxies.p2]
zone = "dev-local"
domains = ["two.test:10002"]

[[domains]]
name = "one.test:10001"
[[domains.routes]]
cluster = "c1"

[[domains]]
name = "two.test:10002"
[[domains.routes]]
prefix = "/shared"
cluster = "c1"
[[domains.routes]]
cluster = "c2"

[clusters.c1]
connect_timeout = "{timeout}"
[clusters.c1.static]
endpoints = [{{ address = "127.0.0.1:9101" }}]

[clusters.c2.static]
endpoints = [{{ address = "127.0.0.1:9102" }}, {{ address = "127.0.0.1:9103" }}]
"#
    );
    if extra_proxy {
        src.push_str("\n[proxies.ghost]\nzone = \"dev-local\"\ndomains = [\"one.test:10001\"]\n");
    }
    src
}

fn mk_profile(extra_proxy: bool, timeout: &str) -> Profile {
    parse_profile("grpc.toml", "grpc", &mk_source(extra_proxy, timeout)).expect("valid profile")
}

fn mk_node(cluster: &str) -> Node {
    Node {
        id: format!("{cluster}-1"),
        cluster: cluster.to_string(),
        locality: Some(Locality { zone: "dev-local".into(), ..Default::default() }),
        ..Default::default()
    }
}

fn mk_request(type_url: &str, node: Option<Node>, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        node,
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn names<M: Message + Default>(r: &DiscoveryResponse, name: impl Fn(&M) -> String) -> Vec<String> {
    r.resources.iter().map(|a| name(&M::decode(a.value.as_slice()).unwrap())).collect()
}

async fn start(profile: Profile) -> Daemon {
    Daemon::start(profile, support::loopback_listener().await, None, CancellationToken::new()).unwrap()
}

/// A daemon following `file`, to be edited.
async fn start_following(file: &ProfileFile) -> Daemon {
    let listener = support::loopback_listener().await;
    Daemon::start_with(file.load(), listener, None, CancellationToken::new(), file.options()).unwrap()
}

#[tokio::test]
async fn two_proxies_get_different_snapshots() {
    let daemon = start(mk_profile(false, "1s")).await;
    let mut c1 = AdsClient::connect(&daemon).await;
    let mut c2 = AdsClient::connect(&daemon).await;
    c1.send(mk_request(CDS, Some(mk_node("p1")), &[], "", "")).await;
    c2.send(mk_request(CDS, Some(mk_node("p2")), &[], "", "")).await;
    let (r1, r2) = (c1.recv().await, c2.recv().await);
    assert_eq!(names::<Cluster>(&r1, |c| c.name.clone()), vec!["c1"]);
    assert_eq!(names::<Cluster>(&r2, |c| c.name.clone()), vec!["c1", "c2"]);
    assert_ne!(r1.version_info, r2.version_info);

    // EDS by name: only what was asked for.
    c2.send(mk_request(CDS, None, &[], &r2.version_info, &r2.nonce)).await;
    c2.send(mk_request(EDS, None, &["c2"], "", "")).await;
    let e = c2.recv().await;
    assert_eq!(e.type_url, EDS);
    assert_eq!(names::<ClusterLoadAssignment>(&e, |c| c.cluster_name.clone()), vec!["c2"]);
}

#[tokio::test]
async fn a_nack_is_never_resent_and_the_next_snapshot_is_sent() {
    let file = ProfileFile::new("grpc", &mk_source(false, "1s"));
    let daemon = start_following(&file).await;
    let mut c = AdsClient::connect(&daemon).await;
    c.send(mk_request(CDS, Some(mk_node("p1")), &[], "", "")).await;
    let first = c.recv().await;

    let mut nack = mk_request(CDS, None, &[], "", &first.nonce);
    nack.error_detail = Some(Status { code: 3, message: "cluster c1: invalid thing".into(), details: vec![] });
    c.send(nack.clone()).await;
    // Envoy may repeat its request; that must not bring the rejected version back either.
    c.send(mk_request(CDS, None, &[], "", &first.nonce)).await;

    support::eventually("the NACK to be counted", 200, || {
        let n = daemon.metrics.nacks(ResourceType::Cluster);
        async move { (n == 1).then_some(()) }
    })
    .await;

    // The stream is ordered: had the rejected version been resent, it would
    // arrive before the answer to this new snapshot.
    file.edit(&daemon, &mk_source(false, "2s")).await;
    let next = c.recv().await;
    assert_ne!(next.version_info, first.version_info);
    let timeouts: Vec<i64> = next
        .resources
        .iter()
        .map(|a| Cluster::decode(a.value.as_slice()).unwrap().connect_timeout.unwrap().seconds)
        .collect();
    assert_eq!(timeouts, vec![2]);
    assert_eq!(daemon.metrics.nacks(ResourceType::Cluster), 1);
    assert_eq!(daemon.metrics.pushes(ResourceType::Cluster), 2);
}

#[tokio::test]
async fn an_unknown_node_gets_nothing_until_the_profile_names_it() {
    let file = ProfileFile::new("grpc", &mk_source(false, "1s"));
    let daemon = start_following(&file).await;
    let mut c = AdsClient::connect(&daemon).await;
    c.send(mk_request(CDS, Some(mk_node("ghost")), &[], "", "")).await;
    support::eventually("the unknown node to be counted", 200, || {
        let n = daemon.metrics.unknown_nodes.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert_eq!(daemon.metrics.pushes(ResourceType::Cluster), 0);

    file.edit(&daemon, &mk_source(true, "1s")).await;
    let r = c.recv().await;
    assert_eq!(names::<Cluster>(&r, |c| c.name.clone()), vec!["c1"]);
}

/// A delta stream: wildcard CDS, EDS by name, ACKs, a NACK that is not
/// resent, and an edit that sends only what changed.
#[tokio::test]
async fn delta_ads_sends_what_changed_and_never_resends_a_nack() {
    let file = ProfileFile::new("grpc-delta", &mk_source(false, "1s"));
    let daemon = start_following(&file).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", daemon.xds_addr)).await.unwrap();
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(8);
    let mut responses = client.delta_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut recv = async || {
        tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("a response within 10 s")
            .expect("no stream error")
            .expect("stream open")
    };
    let request = |type_url: &str, node: Option<Node>, subscribe: &[&str], nonce: &str| DeltaDiscoveryRequest {
        type_url: type_url.into(),
        node,
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    };

    tx.send(request(CDS, Some(mk_node("p2")), &[], "")).await.unwrap();
    let cds = recv().await;
    let names: Vec<&str> = cds.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["c1", "c2"]);
    assert!(cds.resources.iter().all(|r| r.version.len() == 16), "each resource has its own version");
    tx.send(request(CDS, None, &[], &cds.nonce)).await.unwrap();
    tx.send(request(EDS, None, &["c2"], "")).await.unwrap();
    let eds = recv().await;
    assert_eq!(eds.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["c2"]);
    let cla = ClusterLoadAssignment::decode(eds.resources[0].resource.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(cla.endpoints[0].lb_endpoints.len(), 2);
    tx.send(request(EDS, None, &[], &eds.nonce)).await.unwrap();

    // c1's timeout changes: only c1 is sent. Envoy rejects it.
    file.edit(&daemon, &mk_source(false, "2s")).await;
    let cds = recv().await;
    assert_eq!(cds.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["c1"]);
    assert!(cds.removed_resources.is_empty());
    let nack = DeltaDiscoveryRequest {
        error_detail: Some(Status { code: 13, message: "c1: bad timeout".into(), ..Default::default() }),
        ..request(CDS, None, &[], &cds.nonce)
    };
    tx.send(nack).await.unwrap();
    support::eventually("the NACK to be reported", 100, || async {
        let streams = daemon.streams.all();
        assert_eq!(streams[0].protocol, "delta");
        let nack = streams[0].types.get("CDS").and_then(|t| t.last_nack.clone());
        nack.filter(|n| n.error == "c1: bad timeout").map(|_| ())
    })
    .await;
    // The same content republished is not resent; the next change is.
    file.edit(&daemon, &mk_source(true, "2s")).await;
    file.edit(&daemon, &mk_source(false, "3s")).await;
    let cds = recv().await;
    assert_eq!(cds.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["c1"]);
    let c1 = Cluster::decode(cds.resources[0].resource.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(c1.connect_timeout.unwrap().seconds, 3, "the rejected 2s was not sent again");
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let daemon = start(mk_profile(false, "1s")).await;
    let token = daemon.shutdown_token();
    let mut c = AdsClient::connect(&daemon).await;
    c.send(mk_request(CDS, Some(mk_node("p1")), &[], "", "")).await;
    c.recv().await;
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await.expect("daemon stops").unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), c.rx.message()).await.expect("stream ends");
    assert!(matches!(end, Ok(None) | Err(_)), "stream should be over: {end:?}");
}
