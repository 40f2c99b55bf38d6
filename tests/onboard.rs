//! `devbridge discover` and `devbridge init` as a user runs them, against the
//! fake API server: which pods a profile would select or skip and why, an
//! RBAC refusal, a server that does not answer, bad flags; and the profile
//! `init` writes passes `check` and, served, routes a real Envoy's request
//! to the edge it found.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Output};

use devbridge::app::Daemon;
use devbridge::bootstrap::{bootstrap, to_yaml};
use serde_json::{Value, json};
use support::fake_kube::{FakeKube, Kind, node, pod};
use support::kube::{TOKEN, connected, mk_options, wait_sources};
use support::{Envoy, Upstream, eventually, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// Runs the binary off the runtime that serves the fake API server.
async fn devbridge(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env("XDG_CONFIG_HOME", "/nonexistent-devbridge-test")
            .env_remove("KUBECONFIG")
            .env_remove("DEVBRIDGE_LOG")
            .output()
            .expect("run devbridge")
    })
    .await
    .unwrap()
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Four pods behind `app=edge-envoy` (one ready edge, one not Ready, one
/// without the `http` port, one on the pod network), a pod of another app,
/// and their node in zone `zone-a`.
fn mk_cluster(fake: &FakeKube, http_port: u16) {
    let edge = [("app", "edge-envoy")];
    fake.apply(Kind::Pods, pod("edge", "edge-1", &edge, "127.0.0.1", &[("http", http_port), ("admin", 9901)], true));
    fake.apply(Kind::Pods, pod("edge", "edge-2", &edge, "127.0.0.2", &[("http", http_port)], false));
    fake.apply(Kind::Pods, pod("edge", "edge-3", &edge, "127.0.0.3", &[("admin", 9901)], true));
    let mut web = pod("edge", "edge-4", &edge, "10.244.0.7", &[("http", 8080)], true);
    web["spec"]["hostNetwork"] = json!(false);
    fake.apply(Kind::Pods, web);
    fake.apply(Kind::Pods, pod("edge", "other", &[("app", "other")], "127.0.0.9", &[("http", 80)], true));
    fake.apply(Kind::Nodes, node("node-1", Some("zone-a"), Some("127.0.0.1"), None));
}

/// The `select` / `skip` line of each pod block, by pod name.
fn verdicts(stdout: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pod = String::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("pod ") {
            pod = rest.split_whitespace().next().unwrap_or_default().to_string();
        } else if let Some(v) = line.strip_prefix("  select   ").or_else(|| line.strip_prefix("  skip     ")) {
            let kind = if line.starts_with("  select") { "select" } else { "skip" };
            out.push((pod.clone(), format!("{kind}: {v}")));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_the_pods_and_which_a_profile_selects_or_skips_and_why() {
    let fake = FakeKube::start_new(TOKEN).await;
    mk_cluster(&fake, 8080);
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let base = ["discover", "--kubeconfig", &kc, "--context", "fake", "--namespace", "edge"];

    let out = devbridge(args(&[&base[..], &["--selector", "app=edge-envoy", "--port", "http"]].concat())).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().next().unwrap(),
        format!("http://{} (context fake of {kc}), namespace edge, selector \"app=edge-envoy\": 4 pods", fake.addr)
    );
    assert_eq!(
        verdicts(&stdout),
        [
            ("edge-1", "select: 127.0.0.1:8080"),
            ("edge-2", "skip: not Ready"),
            ("edge-3", "skip: has no port named \"http\"; it has admin=9901"),
            ("edge-4", "skip: not on hostNetwork (set host_network = false to take pods on the pod network)"),
        ]
        .map(|(p, v)| (p.to_string(), v.to_string()))
    );
    assert!(stdout.contains("\npod edge-1  Running, Ready\n  network  hostNetwork, IP 127.0.0.1\n  node     node-1, zone zone-a\n  ports    http=8080, admin=9901\n  labels   app=edge-envoy\n"), "{stdout}");
    assert!(stdout.ends_with("selects 1 of 4 pods\n"), "{stdout}");

    // --json: the same, for scripts.
    let out =
        devbridge(args(&[&base[..], &["--selector", "app=edge-envoy", "--port", "http", "--json"]].concat())).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["selected"], 1);
    assert_eq!(v["pods"][0]["selected"], "127.0.0.1:8080");
    assert_eq!(v["pods"][0]["zone"], "zone-a");
    assert_eq!(v["pods"][1]["skipped"], "not Ready");

    // No selector: every pod of the namespace, and what to pass next.
    let out = devbridge(args(&base)).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.lines().next().unwrap().ends_with("namespace edge: 5 pods"), "{stdout}");
    assert!(stdout.contains("\npod other  Running, Ready\n"), "{stdout}");
    assert!(verdicts(&stdout).is_empty(), "{stdout}");
    assert!(stdout.ends_with("pass --selector KEY=VALUE (one of the labels above) and --port NAME to see which pods a profile would select\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_names_the_refused_verb_and_resource_and_how_to_check_it() {
    let fake = FakeKube::start_new(TOKEN).await;
    mk_cluster(&fake, 8080);
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let argv = args(&[
        "discover",
        "--kubeconfig",
        &kc,
        "--namespace",
        "edge",
        "--selector",
        "app=edge-envoy",
        "--port",
        "http",
    ]);

    // Nodes refused (the minimal role): the pods are listed, zones unknown.
    fake.forbid(Kind::Nodes, true);
    let out = devbridge(argv.clone()).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "\nzones unknown: cannot list nodes (the API server http://{} refused to let us list nodes (403)",
            fake.addr
        )),
        "{stdout}"
    );
    assert!(stdout.contains("  node     node-1, zone unknown (nodes not readable)\n"), "{stdout}");
    assert_eq!(verdicts(&stdout)[0], ("edge-1".to_string(), "select: 127.0.0.1:8080".to_string()));

    // Pods refused: nothing to list; the verb, the resource and the check.
    fake.forbid(Kind::Pods, true);
    let out = devbridge(argv).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(out.stdout.is_empty());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("devbridge: the API server http://{} refused to let us list pods (403): pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"edge\"; see examples/rbac.yaml for the minimal role", fake.addr).as_str(),
            format!("  check: kubectl auth can-i list pods --namespace edge --kubeconfig {kc}").as_str(),
            format!("  ask the cluster admin to grant examples/rbac.yaml's role to the identity `kubectl auth whoami --kubeconfig {kc}` shows").as_str(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_and_init_exit_69_when_the_api_server_does_not_answer() {
    let fake = FakeKube::start_new(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    fake.stop();
    let out = devbridge(args(&["discover", "--kubeconfig", &kc, "--namespace", "edge"])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.starts_with(&format!("devbridge: is the VPN up? the API server http://{} did not answer: ", fake.addr)),
        "{stderr}"
    );
    let profile = dir.path().join("p.toml");
    let out = devbridge(args(&[
        "init",
        "p",
        "--kubeconfig",
        &kc,
        "--namespace",
        "edge",
        "--selector",
        "app=edge",
        "--port",
        "http",
        "--out",
        profile.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    assert!(!profile.exists(), "nothing is written when nothing was read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_64_naming_the_flag_before_the_api_server_is_asked() {
    let fake = FakeKube::start_new(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let out = devbridge(args(&[
        "discover",
        "--kubeconfig",
        &kc,
        "--namespace",
        "Edge",
        "--selector",
        "app in (edge",
        "--port",
        "HTTP",
    ]))
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    let flags: Vec<&str> = stderr.lines().map(|l| l.split(": ").nth(1).unwrap_or_default()).collect();
    assert_eq!(flags, ["--namespace", "--selector", "--port"], "{stderr}");
    assert_eq!(fake.lists(Kind::Pods), 0, "nothing was asked of the API server");
    let out = devbridge(args(&[
        "init",
        "my profile",
        "--kubeconfig",
        &kc,
        "--namespace",
        "edge",
        "--selector",
        "app=e",
        "--port",
        "http",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).starts_with("devbridge: <name>: \"my profile\" is not a valid name"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_init_writes_passes_check_and_routes_a_real_envoy_to_the_edge() {
    let edge = Upstream::start("edge-1").await;
    let fake = FakeKube::start_new(TOKEN).await;
    mk_cluster(&fake, edge.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let listen_port = free_port();
    let domain = format!("x.test:{listen_port}");
    let file = dir.path().join("staging.toml");
    let file_arg = file.to_str().unwrap().to_string();
    let init = args(&[
        "init",
        "staging",
        "--kubeconfig",
        &kc,
        "--context",
        "fake",
        "--namespace",
        "edge",
        "--selector",
        "app=edge-envoy",
        "--port",
        "http",
        "--domain",
        &domain,
        "--out",
        &file_arg,
    ]);
    let out = devbridge(init.clone()).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(verdicts(&stdout)[0], ("edge-1".to_string(), format!("select: 127.0.0.1:{}", edge.addr.port())));
    assert!(
        stdout.ends_with(&format!(
            "wrote {file_arg}\nnext: devbridge check {file_arg} && devbridge connect {file_arg} --envoy\n"
        )),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("node_zones = true\n"), "{written}");
    assert!(written.contains("selector = \"app=edge-envoy\"   # 4 pods match now\n"), "{written}");

    let check = devbridge(args(&["check", &file_arg])).await;
    assert_eq!(check.status.code(), Some(0), "{}\n{written}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("cluster edge (kubernetes): pods \"app=edge-envoy\" in edge"),
        "{}",
        text(&check.stdout)
    );

    // Written once: a second init refuses, --force replaces it.
    let again = devbridge(init.clone()).await;
    assert_eq!(again.status.code(), Some(64));
    assert_eq!(text(&again.stderr), format!("devbridge: {file_arg} exists; pass --force to overwrite it\n"));
    let forced = devbridge([init, args(&["--force"])].concat()).await;
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));

    // Served: Envoy reaches the one ready edge through the route init wrote.
    let profile = devbridge::profile::load::load_file(&file).unwrap();
    let mut proxy = profile.proxies["dev-proxy"].clone();
    proxy.admin = "127.0.0.1:0".parse().unwrap(); // the default 9901 may be taken here
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start_with(profile, xds, None, CancellationToken::new(), mk_options()).unwrap();
    wait_sources(&daemon, "the edge source connected", connected).await;
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], listen_port));
    envoy.wait_listening(listener).await;
    let r = eventually("the edge to answer through Envoy", 200, || async {
        let r = http_get(listener, "x.test", "/api/colors", &[]).await.ok()?;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.body, "edge-1 GET /api/colors\n");
    assert_eq!(edge.hits(), 1);
}
