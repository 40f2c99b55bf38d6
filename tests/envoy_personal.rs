//! Personal routing through a real Envoy: overrides set at run time (admin
//! API and `devbridge override`), standing `[[overrides]]`, the identity
//! header on every call, and an override that mirrors.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use devbridge::app::{Daemon, Options};
use devbridge::bootstrap::{bootstrap, select_proxy, to_yaml};
use serde_json::{Value, json};
use support::{
    Envoy, HttpResponse, ProfileFile, Upstream, eventually, free_port, http_get, http_request, loopback_listener,
};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

fn profile(port: u16, edge: SocketAddr, standing: SocketAddr) -> String {
    format!(
        r#"
[zones.dev-local]

[proxies.sidecar]
zone = "dev-local"
admin = "127.0.0.1:0"
domains = ["app.test:{port}"]

[[domains]]
name = "app.test:{port}"

[[domains.routes]]
prefix = "/api"
cluster = "edge"
timeout = "5s"

[[domains.routes]]
prefix = "/"
cluster = "edge"

[clusters.edge.static]
endpoints = [{{ address = "{edge}" }}]

[[overrides]]
domain = "app.test:{port}"
prefix = "/standing"
to = "{standing}"
"#
    )
}

async fn start(file: &ProfileFile, state: &Path) -> Daemon {
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    let options = Options {
        overrides_file: Some(state.join("t.overrides.json")),
        identity: Some("dev@example.com".into()),
        ..file.options()
    };
    Daemon::start_with(file.load(), xds, Some(admin), CancellationToken::new(), options).unwrap()
}

async fn envoy_for(daemon: &Daemon, file: &ProfileFile) -> Envoy {
    let profile = file.load();
    let proxy = select_proxy(&profile, None).unwrap().clone();
    Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", daemon.xds_addr.port()))).await
}

async fn admin(daemon: &Daemon, method: &str, path: &str, body: Value) -> HttpResponse {
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    http_request(daemon.admin_addr.unwrap(), method, "admin", path, &[], &body).await.expect("admin answers")
}

/// Who answered `path` through the sidecar: the first word of the body.
async fn who(listener: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let r = http_get(listener, "app.test", path, headers).await.expect("request through envoy");
    assert_eq!(r.status, 200, "{path}: {r:?}");
    r.body.split_whitespace().next().unwrap_or_default().to_string()
}

async fn answered_by(listener: SocketAddr, path: &str, headers: &[(&str, &str)], name: &str) {
    let mut last = None;
    for _ in 0..400 {
        let r = http_get(listener, "app.test", path, headers).await.expect("request through envoy");
        // Never a failed request while an override comes or goes: a new
        // cluster is warm before a route names it, an old one stays until
        // no route does.
        assert_eq!(r.status, 200, "{path}: {r:?}");
        if r.body.split_whitespace().next() == Some(name) {
            return;
        }
        last = Some(r);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} was not answered by {name}; last answer: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_send_a_route_to_a_local_copy_and_end_by_expiry_removal_or_restart() {
    let (edge, local, standing) =
        (Upstream::start("edge").await, Upstream::start("local").await, Upstream::start("standing").await);
    let port = free_port();
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    let file = ProfileFile::new("personal", &profile(port, edge.addr, standing.addr));
    let state = tempfile::tempdir().unwrap();
    let daemon = start(&file, state.path()).await;
    let envoy = envoy_for(&daemon, &file).await;
    envoy.wait_listening(listener).await;

    // The identity reaches the edge on every call; a value the local
    // service set itself is kept.
    let r = http_get(listener, "app.test", "/api/x", &[]).await.unwrap();
    assert_eq!(r.headers.get("x-echo-x-dev-user").map(String::as_str), Some("dev@example.com"), "{r:?}");
    let r = http_get(listener, "app.test", "/api/x", &[("x-dev-user", "mine")]).await.unwrap();
    assert_eq!(r.headers.get("x-echo-x-dev-user").map(String::as_str), Some("mine"), "{r:?}");

    // The profile's standing override.
    assert_eq!(who(listener, "/standing/x", &[]).await, "standing");

    // An override by the API: /api goes to the local copy, the rest to the edge.
    let r = admin(&daemon, "POST", "/v1/overrides", json!({ "target": "app.test/api", "to": local.addr.to_string() }))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let o1: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(o1["id"], "o1");
    answered_by(listener, "/api/users", &[], "local").await;
    assert_eq!(who(listener, "/other", &[]).await, "edge");
    // The identity is added on the override's route too.
    let r = http_get(listener, "app.test", "/api/users", &[]).await.unwrap();
    assert_eq!(r.headers.get("x-echo-x-dev-user").map(String::as_str), Some("dev@example.com"));

    // A header-scoped override takes only the requests with the header.
    let ask =
        json!({ "target": format!("app.test:{port}/other"), "to": local.addr.to_string(), "headers": ["x-dev=me"] });
    assert_eq!(admin(&daemon, "POST", "/v1/overrides", ask).await.status, 201);
    answered_by(listener, "/other", &[("x-dev", "me")], "local").await;
    assert_eq!(who(listener, "/other", &[]).await, "edge");
    assert_eq!(who(listener, "/other", &[("x-dev", "you")]).await, "edge");

    // One that lasts a few seconds ends by itself, and traffic returns.
    let ask = json!({ "target": "app.test/expiring", "to": local.addr.to_string(), "for": "4s" });
    assert_eq!(admin(&daemon, "POST", "/v1/overrides", ask).await.status, 201);
    answered_by(listener, "/expiring", &[], "local").await;
    answered_by(listener, "/expiring", &[], "edge").await;
    let list: Vec<Value> =
        serde_json::from_str(&admin(&daemon, "GET", "/v1/overrides", Value::Null).await.body).unwrap();
    let ids: Vec<&str> = list.iter().filter_map(|o| o["id"].as_str()).collect();
    assert_eq!(ids, ["o2", "o1", "profile-0"]);

    // A mirror: the edge answers, the local copy sees a copy.
    let hits = local.hits();
    let ask = json!({ "target": "app.test/mirrored", "to": local.addr.to_string(), "mirror": true });
    assert_eq!(admin(&daemon, "POST", "/v1/overrides", ask).await.status, 201);
    eventually("the mirror to be served", 400, || async {
        (who(listener, "/mirrored", &[]).await == "edge" && local.hits() > hits).then_some(())
    })
    .await;

    // Faults on the way to the edge: every /flaky request is aborted by
    // Envoy; other routes are untouched; removing it ends the faults.
    let ask = json!({ "target": "app.test/flaky", "fault": { "abort": 503 } });
    let r = admin(&daemon, "POST", "/v1/overrides", ask).await;
    assert_eq!(r.status, 201, "{r:?}");
    let fault_id = serde_json::from_str::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_string();
    let e = &envoy;
    eventually("the fault to be injected", 400, || async move {
        let r = http_get(listener, "app.test", "/flaky", &[]).await.ok()?;
        (r.status == 503 && r.body == "fault filter abort").then_some(())
    })
    .await;
    assert!(e.stat(&format!("http.ingress_{port}.fault.aborts_injected")).await > 0);
    assert_eq!(who(listener, "/other", &[]).await, "edge");
    let r = admin(&daemon, "DELETE", &format!("/v1/overrides/{fault_id}"), Value::Null).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Until the next push reaches Envoy the fault may still answer.
    eventually("the fault to end", 400, || async move {
        let r = http_get(listener, "app.test", "/flaky", &[]).await.ok()?;
        (r.status == 200 && r.body.starts_with("edge ")).then_some(())
    })
    .await;

    // Bad input: a 4xx saying why, and nothing changes.
    let before = admin(&daemon, "GET", "/v1/overrides", Value::Null).await.body;
    for (ask, why) in [
        (json!({ "target": "nope.test/api", "to": "127.0.0.1:5000" }), "its domains: app.test:"),
        (json!({ "target": "app.test/api", "to": "nowhere" }), "is neither an ip:port address"),
        (json!({ "target": "app.test/api", "to": "127.0.0.1:5000", "for": "soon" }), "is not a duration"),
        (json!({ "target": "app.test/api", "to": "127.0.0.1:5000", "headers": ["x"] }), "is not name=value"),
        (json!({ "target": "app.test/api" , "tto": "x" }), "the body is not"),
    ] {
        let r = admin(&daemon, "POST", "/v1/overrides", ask.clone()).await;
        assert_eq!(r.status, 400, "{ask}: {r:?}");
        assert!(r.body.contains(why), "{ask}: {}", r.body);
    }
    let r = admin(&daemon, "DELETE", "/v1/overrides/o9", Value::Null).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(admin(&daemon, "GET", "/v1/overrides", Value::Null).await.body, before);

    // An unchanged profile file is no change: overrides are not part of it.
    let d: Value = serde_json::from_str(&admin(&daemon, "POST", "/v1/diff", json!({})).await.body).unwrap();
    assert_eq!(d["summary"], "nothing Envoy is served changed", "{d}");

    // /status, /metrics and explain show them.
    let status: Value = serde_json::from_str(&admin(&daemon, "GET", "/status", Value::Null).await.body).unwrap();
    assert_eq!(status["overrides"].as_array().map(Vec::len), Some(4), "{status}");
    assert_eq!(status["identity"], json!(["x-dev-user", "dev@example.com"]));
    let metrics = admin(&daemon, "GET", "/metrics", Value::Null).await.body;
    assert!(metrics.contains("devbridge_overrides 4"), "{metrics}");
    let e = admin(&daemon, "POST", "/v1/explain", json!({ "url": format!("http://app.test:{port}/api/users") })).await;
    let e: Value = serde_json::from_str(&e.body).unwrap();
    let chosen = e["chosen"].as_u64().unwrap() as usize;
    assert_eq!(e["routes"][chosen]["override_id"], "o1", "{e}");

    // A restart keeps them: a new daemon on the same state file serves o1.
    drop(envoy);
    daemon.shutdown_token().cancel();
    daemon.wait().await.unwrap();
    let daemon = start(&file, state.path()).await;
    let envoy = envoy_for(&daemon, &file).await;
    envoy.wait_listening(listener).await;
    answered_by(listener, "/api/users", &[], "local").await;
    answered_by(listener, "/other", &[("x-dev", "me")], "local").await;

    // The CLI is a thin client of the same API.
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--admin", &daemon.admin_addr.unwrap().to_string()])
            .env_remove("DEVBRIDGE_ADMIN_LISTEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = cli(&["override", "rm", "o1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!("removed o1: app.test:{port}/api -> {}", local.addr)), "{out}");
    answered_by(listener, "/api/users", &[], "edge").await;
    let (code, out, err) = cli(&["override", "add", "app.test/api", "--to", &local.addr.to_string(), "--for", "1h"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("o4: ") && out.contains("expires in 59m"), "{out}");
    answered_by(listener, "/api/users", &[], "local").await;
    let (code, out, _) = cli(&["override", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("profile-0") && out.contains("(profile)"), "{out}");
    let (code, _, err) = cli(&["override", "add", "nope.test/api", "--to", "127.0.0.1:5000"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("has no domain for \"nope.test\""), "{err}");
    let (code, out, err) = cli(&["override", "rm", "--all"]);
    assert_eq!(code, Some(0), "{out}{err}");
    answered_by(listener, "/api/users", &[], "edge").await;
    assert_eq!(who(listener, "/standing", &[]).await, "standing");

    let stats = envoy.stats().await;
    let rejected: Vec<(&String, &u64)> =
        stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", envoy.log());
}
