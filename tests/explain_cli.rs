//! `devbridge explain` and `devbridge diff` as a user runs them: the binary
//! against a running daemon's admin API, and without one (`--profile`,
//! `--against`); their exit codes, text and JSON.

mod support;

use std::process::{Command, Output};

use devbridge::app::Daemon;
use devbridge::explain::{Explanation, Outcome};
use devbridge::profile::diff::DiffAnswer;
use support::{ProfileFile, free_port, loopback_listener};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

fn demo() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/demo.toml")).unwrap()
}

/// Runs the binary off the async workers, colour off.
async fn devbridge(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).env("NO_COLOR", "1").output().unwrap())
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_asks_the_daemon_and_exits_by_outcome() {
    let file = ProfileFile::new("demo", &demo());
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    let daemon = Daemon::start_with(file.load(), xds, Some(admin), CancellationToken::new(), file.options()).unwrap();
    let addr = daemon.admin_addr.unwrap().to_string();

    let o = devbridge(args(&[
        "explain",
        "http://demo.example.com:8888/api/colors",
        "-H",
        "x-dev: canary",
        "--admin",
        &addr,
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = text(&o);
    assert!(out.contains("MATCH [2] prefix /api, header x-dev = \"canary\" -> cluster edge-canary"), "{out}");
    assert!(out.contains("127.0.0.1:9002  zone dev-local  static  canary=true"), "{out}");
    assert!(out.contains("envoy: none connected as proxy dev-proxy"), "{out}");
    assert!(!out.contains('\x1b'), "NO_COLOR: {out}");

    let o =
        devbridge(args(&["explain", "http://localhost:8888/nothing", "-X", "POST", "--admin", &addr, "--json"])).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e: Explanation = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((e.outcome, e.live, e.request.method.as_str()), (Outcome::NoRoute, true, "POST"));
    assert_eq!(e.routes.len(), 4);
    assert!(!e.candidates.is_empty());

    let o = devbridge(args(&["explain", "http://elsewhere.test:8888/", "--admin", &addr])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("demo.example.com:8888 (also localhost:8888, 127.0.0.1:8888)"), "{}", text(&o));

    // Bad input, daemon or not; an unknown proxy is the daemon's refusal.
    assert_eq!(devbridge(args(&["explain", "https://x/", "--admin", &addr])).await.status.code(), Some(64));
    let o = devbridge(args(&["explain", "http://localhost:8888/", "--proxy", "nope", "--admin", &addr])).await;
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no proxy \"nope\""), "{o:?}");

    // Nothing listening: 69.
    let none = format!("127.0.0.1:{}", free_port());
    assert_eq!(devbridge(args(&["explain", "http://localhost:8888/", "--admin", &none])).await.status.code(), Some(69));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_from_a_profile_alone_needs_no_daemon() {
    let o = devbridge(args(&[
        "explain",
        "http://127.0.0.1:8888/api",
        "-H",
        "Host: demo.example.com",
        "--profile",
        "staging",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = text(&o);
    assert!(out.contains("from the profile alone"), "{out}");
    assert!(out.contains("MATCH [1] prefix /api -> cluster edge"), "{out}");
    assert!(out.contains("endpoints: found at run time"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_what_an_edit_would_change_and_reload_reports_the_same() {
    let file = ProfileFile::new("demo", &demo());
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    let daemon = Daemon::start_with(file.load(), xds, Some(admin), CancellationToken::new(), file.options()).unwrap();
    let addr = daemon.admin_addr.unwrap().to_string();
    let edited = demo().replace("timeout = \"5s\"", "timeout = \"3s\"").replace(
        "headers = [{ name = \"x-dev\", exact = \"canary\" }]\ncluster = \"edge-canary\"",
        "headers = [{ name = \"x-dev\", exact = \"canary\" }]\ncluster = \"edge\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("demo.toml");
    std::fs::write(&copy, &edited).unwrap();
    let copy = copy.display().to_string();

    // The file the daemon follows is unchanged: no change.
    let o = devbridge(args(&["diff", "--admin", &addr])).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(text(&o).contains("no change"), "{}", text(&o));

    let o = devbridge(args(&["diff", &copy, "--admin", &addr])).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = text(&o);
    let expected = [
        "change: routes ~2",
        "proxy dev-proxy:",
        "  demo.example.com:8888 prefix /api, header x-dev = \"canary\": cluster edge-canary -> cluster edge",
        "  demo.example.com:8888 prefix /api: timeout 5s -> 3s",
        "  - cluster edge-canary",
    ];
    for line in expected {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }

    // Two files, no daemon; JSON for scripts.
    let o = devbridge(args(&["diff", &copy, "--against", &file.path.display().to_string(), "--json"])).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let a: DiffAnswer = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(a.summary, "routes ~2");

    // An invalid edit: its located errors, exit 64.
    std::fs::write(dir.path().join("bad.toml"), "[proxies.p]\nzone = \"nope\"\n").unwrap();
    let o = devbridge(args(&["diff", &dir.path().join("bad.toml").display().to_string(), "--admin", &addr])).await;
    assert_eq!(o.status.code(), Some(64), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.toml:2:8: proxies.p.zone:"), "{o:?}");

    // What diff promised is what the reload reports.
    file.edit(&daemon, &edited).await;
    let reload = daemon.reload_status().borrow().clone();
    assert_eq!(reload.last_change.as_deref(), Some(a.summary.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_both_commands() {
    let out = text(&devbridge(args(&["--help"])).await);
    assert!(out.contains("  explain    Show where a request would go"), "{out}");
    assert!(out.contains("  diff       Show what serving a profile would change"), "{out}");
}
