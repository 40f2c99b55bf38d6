//! `devbridge doctor` as a user runs it, one test per broken link it claims
//! to find: no daemon, the API server down, RBAC's 403, an expired exec
//! credential, no pod matching, a clock off, an unreachable edge, an Envoy
//! NACK, a port held by another process; and a healthy chain (a daemon, a
//! real Envoy, the fake API server, a live edge) that exits 0. Also
//! `status PROFILE` finding its daemon from the profile's `[listen]`.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use devbridge::app::Daemon;
use devbridge::bootstrap::{bootstrap, to_yaml};
use serde_json::Value;
use support::fake_kube::{FakeKube, Kind, pod};
use support::kube::{TOKEN, mk_options};
use support::{Envoy, ProfileFile, Upstream, eventually, free_port};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// Runs `devbridge ARGS` with no user settings or profiles and the test Envoy on PATH.
async fn devbridge(args: &[&str]) -> std::process::Output {
    let envoy_dir = support::envoy_binary().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(envoy_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_CONFIG_HOME", "/nonexistent-devbridge-test")
        .env("PATH", path)
        .env_remove("DEVBRIDGE_PROFILE_PATH")
        .env_remove("DEVBRIDGE_ADMIN_LISTEN")
        .env_remove("DEVBRIDGE_XDS_LISTEN")
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run devbridge")
}

/// `devbridge doctor FILE --json`: the exit code and the report.
async fn doctor(profile: &Path) -> (i32, Value) {
    doctor_with(&[profile.to_str().unwrap()]).await
}

/// `devbridge doctor ARGS --json`.
async fn doctor_with(args: &[&str]) -> (i32, Value) {
    let out = devbridge(&[&["doctor", "--json"], args].concat()).await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

/// The one check named `name` (a prefix), as (verdict, found).
fn check(report: &Value, name: &str) -> (String, String) {
    let found: Vec<&Value> =
        report["checks"].as_array().unwrap().iter().filter(|c| c["name"].as_str().unwrap().starts_with(name)).collect();
    assert_eq!(found.len(), 1, "one check {name:?} in {report:#}");
    (found[0]["verdict"].as_str().unwrap().to_string(), found[0]["found"].as_str().unwrap().to_string())
}

/// A profile: proxy `sidecar` on `port` (Envoy admin on `envoy_admin`) routing to cluster `edge`,
/// whose source is `cluster` (TOML under `[clusters.edge]`); `listen` is a `[listen]` table or "".
fn mk_profile(listen: &str, port: u16, envoy_admin: u16, cluster: &str) -> String {
    format!(
        "{listen}\n[zones.dev-local]\n[proxies.sidecar]\nzone = \"dev-local\"\nadmin = \"127.0.0.1:{envoy_admin}\"\n\
         domains = [\"x.test:{port}\"]\n[[domains]]\nname = \"x.test:{port}\"\n[[domains.routes]]\ncluster = \"edge\"\n\
         [clusters.edge]\n{cluster}"
    )
}

fn kube_source(kubeconfig: &str) -> String {
    format!(
        "[clusters.edge.kubernetes]\nkubeconfig = \"{kubeconfig}\"\nnamespace = \"edge\"\nselector = \"app=edge-envoy\"\nport = \"http\"\n"
    )
}

fn edge_pod(name: &str, port: u16, ready: bool) -> Value {
    pod("edge", name, &[("app", "edge-envoy")], "127.0.0.1", &[("http", port)], ready)
}

/// A fake API server with its kubeconfig, and a profile reading it.
struct Kube {
    fake: FakeKube,
    _dir: tempfile::TempDir,
    file: ProfileFile,
}

async fn mk_kube() -> Kube {
    let fake = FakeKube::start_new(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let file = ProfileFile::new("kube", &mk_profile("", free_port(), free_port(), &kube_source(&kc)));
    Kube { fake, _dir: dir, file }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_server_down_and_no_daemon_doctor_names_both() {
    let k = mk_kube().await;
    k.fake.stop();
    // Not the default address, where another daemon may run on this machine.
    let admin = format!("127.0.0.1:{}", free_port());
    let (code, r) = doctor_with(&[k.file.path.to_str().unwrap(), "--admin", &admin]).await;
    assert_eq!(code, 1);
    let (verdict, found) = check(&r, "running (admin API answers)");
    assert_eq!(verdict, "failed");
    assert_eq!(
        found,
        format!(
            "the daemon is not running: no devbridge answers at {admin}; is `devbridge connect` running? \
             (address from command-line flag)"
        )
    );
    let (verdict, found) = check(&r, "API server answers");
    assert_eq!(verdict, "failed");
    let server = format!("http://{}", k.fake.addr);
    assert!(found.starts_with(&format!("{server}: DNS ")), "{found}");
    assert!(found.contains(&format!(", TCP FAILED: {}: Connection refused", k.fake.addr)), "{found}");
    // The local checks still ran.
    assert_eq!(check(&r, "kubeconfig and context").0, "ok");
    assert_eq!(check(&r, "found and valid").0, "ok");
    assert!(r["checks"].as_array().unwrap().iter().all(|c| !c["name"].as_str().unwrap().starts_with("RBAC")));
    // The first broken link is the daemon: nearest the laptop.
    assert!(r["summary"].as_str().unwrap().contains("the first broken link: daemon:"), "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_from_rbac_is_named_with_the_verb_and_resource() {
    let k = mk_kube().await;
    k.fake.apply(Kind::Pods, edge_pod("edge-1", 1, true));
    k.fake.forbid(Kind::Pods, true);
    let (code, r) = doctor(&k.file.path).await;
    assert_eq!(code, 1);
    let (verdict, found) = check(&r, "RBAC allows");
    assert_eq!((verdict.as_str(), found.as_str()), ("failed", "list pods in edge: DENIED"));
    assert!(k.fake.reviews() >= 2, "asked with SelfSubjectAccessReviews");
    let (verdict, found) = check(&r, "cluster edge: selector matches pods");
    assert_eq!(verdict, "failed");
    assert!(found.starts_with("cannot list app=edge-envoy in edge: the API server"), "{found}");
    assert!(found.contains("refused to let us list pods (403)"), "{found}");
    assert_eq!(check(&r, "API server answers").0, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_exec_credential_fails_and_its_token_is_never_printed() {
    let k = mk_kube().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("login-plugin");
    let credential = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{TOKEN}","expirationTimestamp":"2020-01-01T00:00:00Z"}}}}"#
    );
    std::fs::write(&plugin, format!("#!/bin/sh\necho '{credential}'\n")).unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: dev\nusers:\n- name: dev\n  user:\n    exec:\n      \
             apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            k.fake.addr,
            plugin.display()
        ),
    )
    .unwrap();
    let file =
        ProfileFile::new("exec", &mk_profile("", free_port(), free_port(), &kube_source(kubeconfig.to_str().unwrap())));
    let out = devbridge(&["doctor", file.path.to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.contains("credentials:")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("  FAILED  credentials: the exec plugin "), "{line}");
    assert!(line.contains("gave a credential that expired "), "{line}");
    assert!(text.contains("exec plugin"), "{text}");
    let json = devbridge(&["doctor", file.path.to_str().unwrap(), "--json"]).await;
    for output in [&out.stdout, &out.stderr, &json.stdout, &json.stderr] {
        assert!(!String::from_utf8_lossy(output).contains(TOKEN), "the token was printed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_pod_and_skipped_pods_are_told_apart() {
    let k = mk_kube().await;
    let (code, r) = doctor(&k.file.path).await;
    assert_eq!(code, 1);
    assert_eq!(check(&r, "cluster edge: selector").1, "0 pods match app=edge-envoy in edge");
    assert_eq!(check(&r, "RBAC allows").0, "ok");

    k.fake.apply(Kind::Pods, edge_pod("edge-1", 1, false));
    let (_, r) = doctor(&k.file.path).await;
    assert_eq!(
        check(&r, "cluster edge: selector"),
        ("failed".into(), "0 of 1 pods matching app=edge-envoy in edge selected (1 skipped: 1 not Ready)".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_edge_and_a_clock_off_by_ten_minutes_fail() {
    let k = mk_kube().await;
    let closed = free_port();
    k.fake.apply(Kind::Pods, edge_pod("edge-1", closed, true));
    k.fake.set_clock_offset(600);
    let (code, r) = doctor(&k.file.path).await;
    assert_eq!(code, 1);
    assert_eq!(check(&r, "cluster edge: selector").0, "ok");
    let (verdict, found) = check(&r, "edges answer probes");
    assert_eq!(
        (verdict.as_str(), found.as_str()),
        ("failed", "1 edge listed, 0 reachable by tcp connect (doctor's own probes)")
    );
    let (verdict, found) = check(&r, "route to the edges");
    assert_eq!((verdict.as_str(), found.as_str()), ("ok", "127.0.0.1 leaves by lo (source 127.0.0.1)"));
    let (verdict, found) = check(&r, "clock agrees");
    assert_eq!(verdict, "failed");
    assert!(found.starts_with("this clock is 9m 5") || found.starts_with("this clock is 10m"), "{found}");
    assert!(found.ends_with("behind the API server's"), "{found}");
}

/// A daemon serving `text` on the addresses its `[listen]` names, and an Envoy for `sidecar`.
async fn mk_daemon(text: &str, xds: u16, admin: u16) -> (Daemon, ProfileFile) {
    let file = ProfileFile::new("chain", text);
    let xds = tokio::net::TcpListener::bind(("127.0.0.1", xds)).await.unwrap();
    let admin = tokio::net::TcpListener::bind(("127.0.0.1", admin)).await.unwrap();
    let options = devbridge::app::Options { follow: Some(file.path.clone()), ..mk_options() };
    let daemon = Daemon::start_with(file.load(), xds, Some(admin), CancellationToken::new(), options).unwrap();
    (daemon, file)
}

async fn mk_envoy(daemon: &Daemon) -> Envoy {
    let proxy = daemon.current().profile.proxies["sidecar"].clone();
    Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", daemon.xds_addr.port()))).await
}

fn listen(xds: u16, admin: u16) -> String {
    format!("[listen]\nxds = \"127.0.0.1:{xds}\"\nadmin = \"127.0.0.1:{admin}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_chain_exits_0_and_status_finds_the_daemon_from_the_profile() {
    let k = mk_kube().await;
    let edge = Upstream::start("edge").await;
    k.fake.apply(Kind::Pods, edge_pod("edge-1", edge.addr.port(), true));
    let (xds, admin, port) = (free_port(), free_port(), free_port());
    let kc = k._dir.path().join("kubeconfig");
    let text = mk_profile(&listen(xds, admin), port, free_port(), &kube_source(kc.to_str().unwrap()));
    let (daemon, file) = mk_daemon(&text, xds, admin).await;
    let envoy = mk_envoy(&daemon).await;
    envoy.wait_listening(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let path = file.path.to_str().unwrap();
    // Envoy ACKs every type, and the edge is served.
    let out = eventually("doctor to find the chain healthy", 100, || async {
        let out = devbridge(&["doctor", path]).await;
        (out.status.code() == Some(0)).then_some(out)
    })
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!(
            "  ok      running (admin API answers): devbridge {} at 127.0.0.1:{admin} (pid {}), profile chain",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ),
        format!("  ok      xDS address answers: 127.0.0.1:{xds} accepts connections"),
        "  ok      an Envoy is connected: Envoy sidecar from 127.0.0.1:".into(),
        "  ok      ACKed the latest version: Envoy sidecar".into(),
        format!(
            "  ok      ports free or held by its Envoy: 127.0.0.1:{port} (listener x.test:{port}) is held by the proxy's Envoy"
        ),
        "  ok      RBAC allows list and watch: list pods in edge: allowed; watch pods in edge: allowed".into(),
        "  ok      cluster edge: selector matches pods: 1 of 1 pods matching app=edge-envoy in edge selected".into(),
        // The daemon's probes once they have answered, doctor's own before.
        "  ok      edges answer probes: 1/1 reachable by tcp connect (".into(),
        "  ok      clock agrees with the API server: within ".into(),
    ] {
        assert!(text.lines().any(|l| l.starts_with(&line)), "no line {line:?} in\n{text}");
    }
    assert!(text.lines().last().unwrap().starts_with("all "), "{text}");
    assert!(text.contains("admin_listen = 127.0.0.1:") && text.contains("(the profile's [listen])"), "{text}");

    // Without a profile, doctor checks the one the daemon serves.
    let (code, r) = doctor_with(&["--admin", &format!("127.0.0.1:{admin}")]).await;
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["profile"], "chain");
    assert!(check(&r, "found and valid").1.starts_with(&format!("{path}: 1 proxy, 1 cluster")), "{r:#}");

    // `status PROFILE` asks the daemon the profile's [listen] names, and says which one it is.
    let out = devbridge(&["status", path]).await;
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        format!("devbridge {} at 127.0.0.1:{admin} (pid {}): ready", env!("CARGO_PKG_VERSION"), std::process::id())
    );
    assert_eq!(out.status.code(), Some(0));
    // Another profile whose [listen] points at the same address is told it reached another's daemon.
    let other =
        ProfileFile::new("other", &mk_profile(&listen(xds, admin), free_port(), 0, "[clusters.edge.registered]\n"));
    let out = devbridge(&["status", other.path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("devbridge: the devbridge at 127.0.0.1:{admin} serves profile \"chain\" (")),
        "{stderr}"
    );
    assert!(stderr.contains("not \"other\"; is `devbridge connect other` running?"), "{stderr}");
    // diff finds the daemon the same way; the edit it compares may have another name, and its
    // first line says which profile it is compared with.
    let out = devbridge(&["diff", other.path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert_eq!(first, format!("{} against profile chain ({path})", other.path.display()));
    // explain --daemon names the daemon's profile: the wrong one is refused.
    let url = format!("http://x.test:{port}/");
    let out = devbridge(&["explain", "--daemon", other.path.to_str().unwrap(), &url]).await;
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serves profile \"chain\""), "{out:?}");
    let out = devbridge(&["explain", "--daemon", path, &url]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&edge.addr.to_string()), "{out:?}");
    // A bad edit on disk still names the [listen] its daemon was started with.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("chain.toml");
    std::fs::write(
        &broken,
        format!(
            "{}
not_a_key = 1
",
            listen(xds, admin)
        ),
    )
    .unwrap();
    let out = devbridge(&["status", broken.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    drop(edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_nack_is_shown_with_envoys_text() {
    let edge = Upstream::start("edge").await;
    let (xds, admin, port) = (free_port(), free_port(), free_port());
    let cluster = format!(
        "tls = {{ ca_file = \"/nonexistent/ca.pem\" }}\n[clusters.edge.static]\nendpoints = [{{ address = \"{}\" }}]\n",
        edge.addr
    );
    let (daemon, file) = mk_daemon(&mk_profile(&listen(xds, admin), port, free_port(), &cluster), xds, admin).await;
    let _envoy = mk_envoy(&daemon).await;
    let r = eventually("doctor to see the NACK", 100, || async {
        let (code, r) = doctor(&file.path).await;
        let (verdict, _) = check(&r, "ACKed the latest version");
        (code == 1 && verdict == "failed").then_some(r)
    })
    .await;
    let found = check(&r, "ACKed the latest version").1;
    assert!(found.starts_with("Envoy sidecar from 127.0.0.1:"), "{found}");
    assert!(
        found.contains(" REJECTED CDS ")
            && found.ends_with(": Error adding/updating cluster(s) edge: Invalid path: /nonexistent/ca.pem"),
        "{found}"
    );
    assert_eq!(check(&r, "edges answer probes").0, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_port_held_by_another_process_is_named() {
    let edge = Upstream::start("edge").await;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let (xds, admin) = (free_port(), free_port());
    let cluster = format!("[clusters.edge.static]\nendpoints = [{{ address = \"{}\" }}]\n", edge.addr);
    let (daemon, file) = mk_daemon(&mk_profile(&listen(xds, admin), port, free_port(), &cluster), xds, admin).await;
    let _envoy = mk_envoy(&daemon).await;
    let r = eventually("doctor to see the listener refused", 100, || async {
        let (code, r) = doctor(&file.path).await;
        (code == 1 && check(&r, "ACKed the latest version").0 == "failed").then_some(r)
    })
    .await;
    let ports: Vec<&Value> =
        r["checks"].as_array().unwrap().iter().filter(|c| c["name"] == "ports free or held by its Envoy").collect();
    let listener =
        ports.iter().find(|c| c["found"].as_str().unwrap().starts_with(&format!("127.0.0.1:{port} "))).unwrap();
    assert_eq!(listener["verdict"], "failed");
    assert_eq!(
        listener["found"],
        format!("127.0.0.1:{port} (listener x.test:{port}) is in use by another process, not the proxy's Envoy")
    );
    assert!(listener["fix"].as_str().unwrap().contains(&format!("ss -ltnp 'sport = :{port}'")), "{listener:#}");
    // Envoy's own words for it: it could not bind the listener.
    let found = check(&r, "ACKed the latest version").1;
    assert!(found.contains(" REJECTED LDS ") && found.contains("Address already in use"), "{found}");
    // The Envoy's admin port is its own.
    assert!(ports.iter().any(|c| c["verdict"] == "ok"
        && c["found"].as_str().unwrap().ends_with("(Envoy admin) is held by the proxy's Envoy")));
    drop(squatter);
}
