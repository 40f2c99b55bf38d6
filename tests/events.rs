//! The events log and the status page's endpoints, in process: a gRPC ADS
//! client stands in for Envoy, the profile is a followed file. Each change
//! (an Envoy connecting, ACKing, NACKing, leaving; registered endpoints; a
//! good and a bad edit; a Kubernetes source connecting, its API server
//! going away and returning) is an event in `/status`, `/v1/view` follows
//! what is served, and `/v1/events` sends a message after each change.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use devbridge::app::Daemon;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use serde_json::Value;
use support::ads::{AdsClient, envoy_request};
use support::{ProfileFile, eventually, http_get, http_request, loopback_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

const PROFILE: &str = r#"
[zones.dev-local]
[proxies.p1]
zone = "dev-local"
domains = ["one.test:10001"]
[[domains]]
name = "one.test:10001"
[[domains.routes]]
prefix = "/api"
cluster = "api"
[[domains.routes]]
cluster = "fixed"
[clusters.api.registered]
[clusters.fixed.static]
endpoints = [{ address = "127.0.0.1:9101" }]
"#;

async fn start(file: &ProfileFile) -> Daemon {
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    Daemon::start_with(file.load(), xds, Some(admin), CancellationToken::new(), file.options()).unwrap()
}

async fn get_json(admin: SocketAddr, path: &str) -> Value {
    let r = http_get(admin, "admin", path, &[]).await.expect("admin answers");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {}", r.body))
}

async fn event_texts(admin: SocketAddr) -> Vec<String> {
    let status = get_json(admin, "/status").await;
    status["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e["kind"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect()
}

/// Waits (bounded) until an event's `kind: text` starts with `prefix`.
async fn wait_event(admin: SocketAddr, prefix: &str) -> String {
    eventually(&format!("an event {prefix:?}"), 200, || async move {
        event_texts(admin).await.into_iter().find(|e| e.starts_with(prefix))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_an_event_in_status() {
    let file = ProfileFile::new("events", PROFILE);
    let daemon = start(&file).await;
    let admin = daemon.admin_addr.unwrap();
    wait_event(admin, "start: devbridge started: profile events").await;

    // An Envoy connects, ACKs CDS and NACKs EDS.
    let mut client = AdsClient::connect(&daemon).await;
    client.send(envoy_request("p1", CDS, vec![], None)).await;
    let cds = client.recv().await;
    client.send(envoy_request("p1", CDS, vec![], Some(&cds))).await;
    client.send(envoy_request("p1", EDS, vec!["api".into(), "fixed".into()], None)).await;
    let eds = client.recv().await;
    let mut nack = envoy_request("p1", EDS, vec!["api".into(), "fixed".into()], None);
    nack.response_nonce = eds.nonce.clone();
    nack.error_detail = Some(RpcStatus { code: 3, message: "api: rejected for a test".into(), details: vec![] });
    client.send(nack).await;
    let connected = wait_event(admin, "envoy: p1 connected from 127.0.0.1:").await;
    assert!(connected.ends_with(" (stream 1)"), "{connected}");
    wait_event(admin, "ack: p1 acked CDS").await;
    let nacked = wait_event(admin, "nack: p1 NACKed EDS version ").await;
    assert!(nacked.ends_with(": api: rejected for a test"), "{nacked}");

    // Registered endpoints.
    let put =
        http_request(admin, "PUT", "admin", "/v1/clusters/api/endpoints", &[], br#"[{"address": "127.0.0.1:7001"}]"#)
            .await
            .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    wait_event(admin, "endpoints: cluster api: 0 -> 1 endpoints (+127.0.0.1:7001)").await;
    let view = get_json(admin, "/v1/view").await;
    assert_eq!(view["clusters"]["api"]["endpoints"][0]["address"], "127.0.0.1:7001");
    assert_eq!(view["clusters"]["api"]["endpoints"][0]["origin"], "registered");

    // A good edit and a bad one.
    file.edit(&daemon, &PROFILE.replace("prefix = \"/api\"", "prefix = \"/v2\"")).await;
    wait_event(admin, "reload: reload: ").await;
    let view = get_json(admin, "/v1/view").await;
    assert_eq!(view["proxies"][0]["domains"][0]["routes"][0]["matcher"], "prefix /v2");
    std::fs::write(&file.path, PROFILE.replace("cluster = \"fixed\"", "cluster = \"fixd\"")).unwrap();
    let rejected = wait_event(admin, "reload_failed: reload rejected, the last good profile is still served: ").await;
    assert!(rejected.contains("\"fixd\" is not a cluster"), "{rejected}");

    drop(client);
    wait_event(admin, "envoy: p1 disconnected (stream 1)").await;
    // Oldest first. (A probe's answer may land after the disconnect: the
    // probes run on their own task.)
    let texts = event_texts(admin).await;
    let at = |prefix: &str| {
        texts.iter().position(|t| t.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {texts:#?}"))
    };
    assert_eq!(at("start: "), 0, "{texts:#?}");
    assert!(at("envoy: p1 connected") < at("reload_failed: "), "{texts:#?}");
    assert!(at("reload_failed: ") < at("envoy: p1 disconnected"), "{texts:#?}");
}

/// Reads from an open `/v1/events` answer until a whole `data:` message
/// arrives (bounded); its data. The HTTP head and chunk sizes around a
/// message are lines that are not `data:`.
async fn next_message(s: &mut tokio::net::TcpStream, buf: &mut String) -> u64 {
    let deadline = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = buf.find("\n\n") {
                let message: String = buf.drain(..end + 2).collect();
                if let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return data.trim().parse::<u64>().unwrap();
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the event stream closed");
            buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    deadline.await.expect("a message within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_a_message_after_each_change_and_ends_on_shutdown() {
    let file = ProfileFile::new("stream", PROFILE);
    let daemon = start(&file).await;
    let admin = daemon.admin_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: admin\r\n\r\n").await.unwrap();
    let mut buf = String::new();
    let first = next_message(&mut s, &mut buf).await;
    let put =
        http_request(admin, "PUT", "admin", "/v1/clusters/api/endpoints", &[], br#"[{"address": "127.0.0.1:7002"}]"#)
            .await
            .unwrap();
    assert_eq!(put.status, 200);
    let second = next_message(&mut s, &mut buf).await;
    assert!(second > first, "{first} then {second}");

    // The page and the view are plain GETs; the page carries its policy.
    let page = http_get(admin, "admin", "/", &[]).await.unwrap();
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.headers["content-security-policy"].starts_with("default-src 'none'; "));
    assert!(page.body.contains("<title>devbridge status</title>"));
    let post = http_request(admin, "POST", "admin", "/v1/events", &[], b"x").await.unwrap();
    assert_eq!(post.status, 405);

    // Shutdown ends the open stream: the socket reaches EOF.
    let token = daemon.shutdown_token();
    token.cancel();
    let eof = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.map(|_| ())
    })
    .await;
    assert!(eof.is_ok(), "the event stream stayed open after shutdown");
    daemon.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_source_going_down_and_back_is_an_event_each_way() {
    use support::fake_kube::{FakeKube, Kind, pod};
    let fake = FakeKube::start_new(support::kube::TOKEN).await;
    fake.apply(Kind::Pods, pod("edge", "e1", &[("app", "edge-envoy")], "127.0.0.1", &[("http", 9001)], true));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let src = support::kube::mk_source(support::free_port(), &kubeconfig, &["edge"], support::kube::EDGE);
    let file = ProfileFile::new("kube", &src);
    let options = devbridge::app::Options { follow: file.options().follow, ..support::kube::mk_options() };
    let daemon = Daemon::start_with(
        file.load(),
        loopback_listener().await,
        Some(loopback_listener().await),
        CancellationToken::new(),
        options,
    )
    .unwrap();
    let admin = daemon.admin_addr.unwrap();
    wait_event(admin, "endpoints: cluster edge: 0 -> 1 endpoints (+127.0.0.1:9001)").await;
    let connected = eventually("a connected event", 200, || async {
        event_texts(admin).await.into_iter().find(|e| e.starts_with("discovery: ") && e.ends_with(": connected"))
    })
    .await;
    assert!(connected.starts_with("discovery: pods \"app=edge-envoy\" in edge via "), "{connected}");

    fake.stop();
    let degraded = eventually("a degraded event", 200, || async {
        event_texts(admin).await.into_iter().find(|e| e.starts_with("discovery: ") && e.contains(": degraded: "))
    })
    .await;
    assert!(
        degraded.contains(&format!("is the VPN up? the API server http://{} did not answer", fake.addr)),
        "{degraded}"
    );
    fake.start().await;
    eventually("a connected event after the degraded one", 200, || async {
        let texts = event_texts(admin).await;
        let down = texts.iter().position(|e| e.contains(": degraded: "))?;
        texts[down..].iter().any(|e| e.starts_with("discovery: ") && e.contains(": connected")).then_some(())
    })
    .await;
}
