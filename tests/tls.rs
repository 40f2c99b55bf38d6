//! Mutual TLS on the xDS port with a real Envoy, proxy identity, refusals
//! visible in /status and /metrics, and the Unix-socket path.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use devbridge::app::{Daemon, Options};
use devbridge::bootstrap::{ClientTls, XdsApi, XdsTarget, bootstrap_with, to_yaml};
use devbridge::certs::{CertPaths, init, issue};
use devbridge::profile::{Profile, parse_profile};
use devbridge::tls::TlsFiles;
use devbridge::xds::server::bind_unix;
use serde_json::Value;
use support::{Envoy, Upstream, eventually, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

fn mk_profile(port: u16, edge: SocketAddr) -> Profile {
    let src = format!(
        "[zones.z]\n\
         [proxies.sidecar]\nzone = \"z\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"a.test:{port}\"]\n\
         [proxies.other]\nzone = \"z\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"a.test:{port}\"]\n\
         [[domains]]\nname = \"a.test:{port}\"\n[[domains.routes]]\ncluster = \"edge\"\n\
         [clusters.edge.static]\nendpoints = [{{ address = \"{edge}\" }}]\n"
    );
    parse_profile("tls.toml", "tls", &src).unwrap()
}

struct Setup {
    daemon: Daemon,
    profile: Profile,
    certs: CertPaths,
    dir: tempfile::TempDir,
    listener: SocketAddr,
    _edge: Upstream,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let certs = CertPaths::new(dir.path().join("tls"));
    init(&certs, &[]).unwrap();
    let edge = Upstream::start("edge").await;
    let port = free_port();
    let profile = mk_profile(port, edge.addr);
    let options = Options { tls: Some(TlsFiles::from_paths(&certs)), ..Options::default() };
    let daemon = Daemon::start_with(
        profile.clone(),
        loopback_listener().await,
        Some(loopback_listener().await),
        CancellationToken::new(),
        options,
    )
    .unwrap();
    Setup { daemon, profile, certs, dir, listener: SocketAddr::from(([127, 0, 0, 1], port)), _edge: edge }
}

impl Setup {
    fn bootstrap(&self, proxy: &str, cert_dir: &Path) -> String {
        let target = XdsTarget::Tcp { host: "127.0.0.1".into(), port: self.daemon.xds_addr.port() };
        let tls = ClientTls { dir: cert_dir.display().to_string(), host_dir: None };
        to_yaml(&bootstrap_with(&self.profile.proxies[proxy], &target, Some(&tls), XdsApi::Grpc))
    }

    async fn status(&self) -> Value {
        let r = http_get(self.daemon.admin_addr.unwrap(), "admin", "/status", &[]).await.unwrap();
        serde_json::from_str(&r.body).unwrap()
    }

    async fn metric(&self, name: &str) -> u64 {
        let r = http_get(self.daemon.admin_addr.unwrap(), "admin", "/metrics", &[]).await.unwrap();
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{}", r.body))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_with_its_own_certificate_gets_its_config_over_mutual_tls() {
    let s = setup().await;
    let client = issue(&s.certs, "sidecar", None).unwrap();
    let envoy = Envoy::start(&s.bootstrap("sidecar", &client)).await;
    envoy.wait_listening(s.listener).await;
    assert_eq!(http_get(s.listener, "a.test", "/x", &[]).await.unwrap().body, "edge GET /x\n");
    let status = s.status().await;
    assert_eq!(status["envoys"][0]["proxy"], "sidecar", "{status:#}");
    assert_eq!(status["refused"]["tls_handshakes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_without_a_good_certificate_get_nothing_and_the_refusal_is_visible() {
    let s = setup().await;

    // 1. No client certificate at all.
    let ours = issue(&s.certs, "sidecar", None).unwrap();
    let mut no_cert: Value = serde_json::to_value(bootstrap_with(
        &s.profile.proxies["sidecar"],
        &XdsTarget::Tcp { host: "127.0.0.1".into(), port: s.daemon.xds_addr.port() },
        Some(&ClientTls { dir: ours.display().to_string(), host_dir: None }),
        XdsApi::Grpc,
    ))
    .unwrap();
    let ctx = &mut no_cert["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"];
    ctx.as_object_mut().unwrap().remove("tls_certificates");
    let envoy = Envoy::start(&to_yaml(&no_cert)).await;
    eventually("the handshake without a certificate to be refused", 200, || async {
        (s.metric("devbridge_xds_tls_refused_total").await >= 1).then_some(())
    })
    .await;
    assert_eq!(envoy.stat("listener_manager.lds.update_success").await, 0);
    let status = s.status().await;
    assert!(status["refused"]["last_tls"]["reason"].as_str().unwrap().contains("certificate"), "{status:#}");
    assert_eq!(status["envoys"], serde_json::json!([]));
    drop(envoy);

    // 2. A certificate from another CA (trusting ours).
    let other_ca = CertPaths::new(s.dir.path().join("other-ca"));
    init(&other_ca, &[]).unwrap();
    let foreign = issue(&other_ca, "sidecar", None).unwrap();
    std::fs::copy(s.certs.ca_cert(), foreign.join("ca.pem")).unwrap();
    let before = s.metric("devbridge_xds_tls_refused_total").await;
    let envoy = Envoy::start(&s.bootstrap("sidecar", &foreign)).await;
    eventually("the foreign certificate to be refused", 200, || async {
        (s.metric("devbridge_xds_tls_refused_total").await > before).then_some(())
    })
    .await;
    assert_eq!(envoy.stat("listener_manager.lds.update_success").await, 0);
    drop(envoy);

    // 3. A good certificate, but for another proxy than the node claims.
    let others = issue(&s.certs, "other", None).unwrap();
    let envoy = Envoy::start(&s.bootstrap("sidecar", &others)).await;
    let status = eventually("the impostor to be refused", 200, || async {
        let st = s.status().await;
        (st["refused"]["identity"] == 1).then_some(st)
    })
    .await;
    assert_eq!(
        status["envoys"][0]["unmatched"], "its client certificate names other, but its node claims proxy sidecar",
        "{status:#}"
    );
    assert_eq!(s.metric("devbridge_xds_identity_refused_total").await, 1);
    assert_eq!(envoy.stat("listener_manager.lds.update_success").await, 0);
    assert_eq!(envoy.stat("cluster_manager.cds.update_success").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_the_tls_port_fails_cleanly_and_the_server_keeps_serving() {
    let s = setup().await;
    let addr = s.daemon.xds_addr;
    // A plain-text gRPC client: its stream fails, nothing else does.
    let plain = envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await;
    if let Ok(mut client) = plain {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        assert!(client.stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx)).await.is_err());
    }
    // Garbage bytes, then a hang-up.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n\x00\x01\x02garbage").await.unwrap();
    drop(raw);
    eventually("both refusals to be counted", 200, || async {
        (s.metric("devbridge_xds_tls_refused_total").await >= 2).then_some(())
    })
    .await;
    // A proper Envoy is still served.
    let client = issue(&s.certs, "sidecar", None).unwrap();
    let envoy = Envoy::start(&s.bootstrap("sidecar", &client)).await;
    envoy.wait_listening(s.listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_reaches_devbridge_over_a_private_unix_socket() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("xds.sock");
    let edge = Upstream::start("edge").await;
    let port = free_port();
    let profile = mk_profile(port, edge.addr);
    let daemon = Daemon::start_with(
        profile.clone(),
        bind_unix(&socket).unwrap(),
        None,
        CancellationToken::new(),
        Options::default(),
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(daemon.xds_socket.as_deref(), Some(socket.as_path()));
    let target = XdsTarget::Pipe { path: socket.display().to_string() };
    let envoy = Envoy::start(&to_yaml(&bootstrap_with(&profile.proxies["sidecar"], &target, None, XdsApi::Grpc))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    envoy.wait_listening(listener).await;
    assert_eq!(http_get(listener, "a.test", "/u", &[]).await.unwrap().body, "edge GET /u\n");
}
