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

#[tokio::test]
async fn delta_ads_is_refused_with_a_hint() {
    let daemon = start(mk_profile(false, "1s")).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", daemon.xds_addr)).await.unwrap();
    let (_tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(1);
    let err = client.delta_aggregated_resources(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(err.message().starts_with("devbridge serves state-of-the-world ADS"), "{}", err.message());
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
