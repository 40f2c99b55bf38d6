//! No secret reaches a log line, an error, `/status`, `/config_dump` or
//! `/metrics`: a bearer token delivered by a kubeconfig exec plugin (the
//! EKS / GKE / kubelogin path), and the TLS private keys. Everything is
//! logged at trace level and searched.

mod support;

use devbridge::app::{Daemon, Options};
use devbridge::certs::{CertPaths, init, issue};
use devbridge::profile::parse_profile;
use devbridge::tls::TlsFiles;
use support::fake_kube::{FakeKube, Kind, pod};
use support::kube::{mk_discovery_options, wait_served};
use support::{free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

/// Delivered only by the exec plugin, never written in the kubeconfig.
const EXEC_TOKEN: &str = "exec-plugin-token-51d0c3aa-do-not-log";

/// The base64 body of a PEM file: what a leaked key would show.
fn pem_body(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_exec_plugins_and_private_keys_reach_no_log_status_or_dump() {
    support::logs::captured("trace");
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeKube::start_new(EXEC_TOKEN).await;
    fake.apply(Kind::Pods, pod("edge", "e1", &[("app", "edge")], "127.0.0.1", &[("http", 9001)], true));
    // A kubeconfig whose user gets its token from an exec plugin.
    let plugin = dir.path().join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{EXEC_TOKEN}\"}}}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let with_static_token = fake.kubeconfig(dir.path());
    let text = std::fs::read_to_string(&with_static_token).unwrap();
    let text = text.replace(
        &format!("    token: {EXEC_TOKEN}\n"),
        &format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin.display()
        ),
    );
    assert!(!text.contains(EXEC_TOKEN), "the kubeconfig itself holds no token");
    std::fs::write(&with_static_token, text).unwrap();

    let certs = CertPaths::new(dir.path().join("tls"));
    init(&certs, &[]).unwrap();
    let client = issue(&certs, "sidecar", None).unwrap();

    let port = free_port();
    let profile = parse_profile(
        "secrets.toml",
        "secrets",
        &format!(
            "[zones.z]\n[proxies.sidecar]\nzone = \"z\"\ndomains = [\"a.test:{port}\"]\n\
             [[domains]]\nname = \"a.test:{port}\"\n[[domains.routes]]\ncluster = \"edge\"\n\
             [clusters.edge.kubernetes]\nkubeconfig = \"{}\"\nnamespace = \"edge\"\nselector = \"app=edge\"\nport = \"http\"\n",
            with_static_token
        ),
    )
    .unwrap();
    let options =
        Options { tls: Some(TlsFiles::from_paths(&certs)), discovery: mk_discovery_options(), ..Options::default() };
    let daemon = Daemon::start_with(
        profile,
        loopback_listener().await,
        Some(loopback_listener().await),
        CancellationToken::new(),
        options,
    )
    .unwrap();
    // The exec plugin's token worked: the API server answered.
    wait_served(&daemon, "edge", &["127.0.0.1:9001"]).await;

    // A refused token makes an error message too; it must not carry it either.
    let admin = daemon.admin_addr.unwrap();
    let mut seen = String::new();
    for path in ["/status", "/config_dump", "/metrics"] {
        seen.push_str(&http_get(admin, "admin", path, &[]).await.unwrap().body);
    }
    let bad_put = support::http_request(
        admin,
        "PUT",
        "admin",
        "/v1/clusters/edge/endpoints",
        &[("content-type", "application/json")],
        format!("[{{\"address\": \"{EXEC_TOKEN}\"}}]").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(bad_put.status, 409, "{}", bad_put.body);
    seen.push_str(&bad_put.body);
    seen.push_str(&support::logs::captured("trace"));
    assert!(seen.contains("edge"), "the search covers real output");

    assert!(!seen.contains(EXEC_TOKEN), "the exec plugin's token leaked");
    for key in [certs.ca_key(), certs.server_key(), client.join("key.pem")] {
        let body = pem_body(&key);
        assert!(!seen.contains(&body[..40]), "{} leaked", key.display());
    }
    assert!(!seen.contains("PRIVATE KEY"), "a private key leaked");
}
