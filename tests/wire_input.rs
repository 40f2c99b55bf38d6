//! Bad input on the wire gets an error for that stream or request and never
//! crashes or stalls the daemon: random bytes, an HTTP/2 preface followed by
//! junk, an oversized gRPC message, unknown type URLs, and junk to the admin
//! API; in delta and from proxyless gRPC clients, unknown names, too many
//! names, NACKs of every version and an unknown node. Bounded: a fixed
//! number of inputs from a seeded generator.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use devbridge::app::Daemon;
use devbridge::profile::parse_profile;
use devbridge::xds::ResourceType;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use support::ads::AdsClient;
use support::{http_get, http_request, loopback_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends `bytes`, then reads whatever comes back for a moment; every
/// outcome (answer, reset, silence) is acceptable except a hang of the daemon.
async fn poke(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return };
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await;
}

fn mk_request(type_url: &str, node: Option<Node>) -> DiscoveryRequest {
    DiscoveryRequest { type_url: type_url.into(), node, ..Default::default() }
}

fn node() -> Node {
    Node { id: "p-1".into(), cluster: "p".into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_the_xds_and_admin_ports_harms_nobody_else() {
    let profile = parse_profile(
        "wire.toml",
        "wire",
        "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:18555\"]\n[[domains]]\nname = \"a.test:18555\"\n\
         [[domains.routes]]\ncluster = \"c\"\n[clusters.c.static]\nendpoints = [{ address = \"127.0.0.1:9\" }]\n",
    )
    .unwrap();
    let daemon =
        Daemon::start(profile, loopback_listener().await, Some(loopback_listener().await), CancellationToken::new())
            .unwrap();
    let (xds, admin) = (daemon.xds_addr, daemon.admin_addr.unwrap());

    // A client connected before the storm must be unaffected by it.
    let mut steady = AdsClient::connect(&daemon).await;
    steady.send(mk_request(CDS, Some(node()))).await;
    let first = steady.recv().await;

    let mut rng = Rng(0x5eed_d0c5_u64);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for _ in 0..150 {
        poke(xds, &rng.bytes(4096)).await;
        let mut h2 = preface.to_vec();
        h2.extend(rng.bytes(512));
        poke(xds, &h2).await;
        poke(admin, &rng.bytes(4096)).await;
    }
    // Admin: a header block far too large, a body over the limit, bad JSON.
    poke(admin, format!("GET /status HTTP/1.1\r\nX-Big: {}\r\n\r\n", "x".repeat(200_000)).as_bytes()).await;
    let big = http_request(admin, "PUT", "admin", "/v1/clusters/c/endpoints", &[], &vec![b'['; 2 << 20]).await;
    assert!(big.is_err() || big.unwrap().status == 413);
    let bad = http_request(admin, "PUT", "admin", "/v1/clusters/c/endpoints", &[], b"{not json").await.unwrap();
    assert_eq!(bad.status, 400);

    // An oversized gRPC message ends that stream only.
    let mut huge = AdsClient::connect(&daemon).await;
    let mut req = mk_request(CDS, Some(node()));
    req.resource_names = vec!["x".repeat(5 << 20)];
    huge.send(req).await;
    let end = tokio::time::timeout(Duration::from_secs(10), huge.rx.message()).await.expect("an answer");
    let status = end.expect_err("an oversized request must fail its stream");
    assert!(status.message().contains("message length too large"), "{status:?}");

    // Unknown type URLs and a request without a node: ignored, stream lives.
    let mut odd = AdsClient::connect(&daemon).await;
    odd.send(mk_request("type.googleapis.com/no.such.Type", None)).await;
    odd.send(mk_request("type.googleapis.com/no.such.Type", Some(node()))).await;
    odd.send(mk_request("", Some(node()))).await;
    odd.send(mk_request(CDS, Some(node()))).await;
    assert_eq!(odd.recv().await.type_url, CDS);

    // Everyone else is still served: the steady stream acks, new clients connect.
    let mut ack = mk_request(CDS, None);
    ack.version_info = first.version_info.clone();
    ack.response_nonce = first.nonce.clone();
    steady.send(ack).await;
    support::eventually("the steady client's ACK", 200, || {
        let acks = daemon.metrics.acks(ResourceType::Cluster);
        async move { (acks >= 1).then_some(()) }
    })
    .await;
    let mut fresh = AdsClient::connect(&daemon).await;
    fresh.send(mk_request(CDS, Some(node()))).await;
    assert_eq!(fresh.recv().await.version_info, first.version_info);
    assert_eq!(http_get(admin, "admin", "/healthz", &[]).await.unwrap().status, 200);
}

/// Bad input in the other dialects: a delta client naming what does not
/// exist, naming far too much, NACKing every version and repeating its
/// NACK, and a proxyless gRPC client whose node matches no proxy. Each gets
/// what the protocol says (an answer once, or nothing, and a line in the
/// stream's report), memory stays bounded, nothing is resent in a loop, and
/// a client connected before it all is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_delta_and_proxyless_clients_get_what_the_protocol_says() {
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
    use envoy_types::pb::google::rpc::Status;
    use tokio_stream::wrappers::ReceiverStream;

    const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    let profile = parse_profile(
        "wire.toml",
        "wire",
        "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:18556\"]\n[[domains]]\nname = \"a.test:18556\"\n\
         [[domains.routes]]\ncluster = \"c\"\n[clusters.c.static]\nendpoints = [{ address = \"127.0.0.1:9\" }]\n",
    )
    .unwrap();
    let daemon = Daemon::start(profile, loopback_listener().await, None, CancellationToken::new()).unwrap();
    let mut steady = AdsClient::connect(&daemon).await;
    steady.send(mk_request(CDS, Some(node()))).await;
    let first = steady.recv().await;

    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", daemon.xds_addr)).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<DeltaDiscoveryRequest>(8);
    let mut responses = client.delta_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut recv = async || -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("a response within 10 s")
            .expect("no stream error")
            .expect("stream open")
    };
    let request = |type_url: &str, subscribe: Vec<String>, nonce: &str| DeltaDiscoveryRequest {
        type_url: type_url.into(),
        node: Some(node()),
        resource_names_subscribe: subscribe,
        response_nonce: nonce.into(),
        ..Default::default()
    };

    // An unknown type is ignored; names that do not exist are answered once
    // as removed, the one that does is sent.
    tx.send(request("type.googleapis.com/no.such.Type", vec![], "")).await.unwrap();
    tx.send(request(EDS, vec!["c".into(), "nope-1".into(), "nope-2".into()], "")).await.unwrap();
    let eds = recv().await;
    assert_eq!(eds.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(eds.removed_resources, ["nope-1", "nope-2"]);
    tx.send(request(EDS, vec![], &eds.nonce)).await.unwrap();

    // Far too many names: the stream keeps at most 100,000 per type and goes on.
    let many: Vec<String> = (0..120_000).map(|i| format!("n{i}")).collect();
    tx.send(request(EDS, many, "")).await.unwrap();
    let removed = recv().await;
    assert!(removed.removed_resources.len() <= 100_000, "{} names kept", removed.removed_resources.len());

    // A client that NACKs every version, and repeats its NACK: nothing is
    // resent at the same content, and the NACK is counted once.
    tx.send(request(CDS, vec![], "")).await.unwrap();
    let cds = recv().await;
    let nack = DeltaDiscoveryRequest {
        error_detail: Some(Status { code: 13, message: "rejected for a test".into(), ..Default::default() }),
        ..request(CDS, vec![], &cds.nonce)
    };
    for _ in 0..3 {
        tx.send(nack.clone()).await.unwrap();
    }
    support::eventually("the NACK to be counted", 200, || {
        let nacks = daemon.metrics.nacks(ResourceType::Cluster);
        async move { (nacks >= 1).then_some(()) }
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), responses.message()).await;
    assert!(quiet.is_err(), "nothing is resent after a NACK: {quiet:?}");
    assert_eq!(daemon.metrics.nacks(ResourceType::Cluster), 1);

    // A proxyless gRPC client whose node matches no proxy: its LDS request
    // gets nothing, and its stream says why.
    let lost = AdsClient::connect(&daemon).await;
    let mut req = mk_request(LDS, Some(Node { id: "app".into(), cluster: "nobody".into(), ..Default::default() }));
    req.resource_names = vec!["greeter:50051".into()];
    lost.send(req).await;
    let why = support::eventually("the unmatched stream in the registry", 200, || async {
        daemon
            .streams
            .all()
            .into_iter()
            .find_map(|s| s.unmatched.filter(|_| s.node.as_ref().is_some_and(|n| n.cluster == "nobody")))
    })
    .await;
    assert!(why.contains("no proxy of profile wire matches node.cluster \"nobody\""), "{why}");

    // The client connected before all this is still served.
    let mut ack = mk_request(CDS, None);
    ack.version_info = first.version_info.clone();
    ack.response_nonce = first.nonce.clone();
    steady.send(ack).await;
    let mut fresh = AdsClient::connect(&daemon).await;
    fresh.send(mk_request(CDS, Some(node()))).await;
    assert_eq!(fresh.recv().await.version_info, first.version_info);
}
