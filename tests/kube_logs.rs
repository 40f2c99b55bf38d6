//! What the `devbridge` binary logs, with its default log filter, when the
//! API server of a Kubernetes source does not answer: one WARN for the state
//! change, in words true of the case, and nothing from kube's own retries;
//! the retries are counted in `/metrics` instead.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::fake_kube::FakeKube;
use support::kube::{EDGE, TOKEN, mk_source, source_counters};
use support::{eventually, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_one_warn_and_no_error_however_often_it_is_retried() {
    // A kubeconfig for a server that is gone: its port refuses.
    let fake = FakeKube::start_new(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let server = format!("http://{}", fake.addr);
    fake.stop();
    let (listen_port, xds_port, admin_port) = (free_port(), free_port(), free_port());
    let profile = dir.path().join("down.toml");
    std::fs::write(&profile, mk_source(listen_port, &kubeconfig, &["edge"], EDGE)).unwrap();
    let daemon = support::Reaped::new(
        Command::new(BIN)
            .args(["connect", profile.to_str().unwrap(), "--xds-listen", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path())
            .env_remove("DEVBRIDGE_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // The default backoff (0.5 s, 1 s, 2 s, ...) retries three times in
    // about 1.5 s; the bound is generous.
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let source = format!(r#"pods "app=edge-envoy" in edge via the current context of {kubeconfig}"#);
    let errors = ("devbridge_source_errors_total".to_string(), source);
    let retried = eventually("three failed attempts in /metrics", 400, || async {
        let c = match support::http_get(admin, "admin", "/metrics", &[]).await {
            Ok(_) => source_counters(admin).await,
            Err(_) => return None,
        };
        c.get(&errors).copied().filter(|n| *n >= 3)
    })
    .await;

    let kill = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let daemon = daemon.into_inner();
    let out = tokio::task::spawn_blocking(move || daemon.wait_with_output()).await.unwrap().unwrap();
    let stderr = without_ansi(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let loud: Vec<&str> = stderr.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    assert_eq!(loud.len(), 1, "{retried} failed attempts, one line for the state change:\n{stderr}");
    let warn = loud[0];
    assert!(warn.contains(" WARN "), "{warn}");
    assert!(warn.contains("source degraded before its first list; no endpoints yet; retrying"), "{warn}");
    assert!(warn.contains(&format!("is the VPN up? the API server {server} did not answer")), "{warn}");
    assert!(!stderr.contains(TOKEN), "the token reached a log line");
}

/// The text without terminal colour codes (`ESC [ ... letter`).
fn without_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}
