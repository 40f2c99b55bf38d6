//! Bad input on the wire gets an error for that stream or request and never
//! crashes or stalls the daemon: random bytes, an HTTP/2 preface followed by
//! junk, an oversized gRPC message, unknown type URLs, and junk to the admin
//! API. Bounded: a fixed number of inputs from a seeded generator.

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
