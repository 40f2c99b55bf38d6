//! `devbridge connect --envoy`: devbridge runs the sidecar Envoy, restarts
//! it when it dies, and stops it on shutdown.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::{Upstream, eventually, free_port, http_get};

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// Child process ids of `pid` (every thread's children).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_envoy_serves_is_restarted_when_killed_and_stops_with_devbridge() {
    let edge = Upstream::start("edge").await;
    let (port, xds, admin) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("sup.toml");
    std::fs::write(
        &profile,
        format!(
            "[zones.z]\n[proxies.sidecar]\nzone = \"z\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"svc.test:{port}\"]\n\
             [[domains]]\nname = \"svc.test:{port}\"\n[[domains.routes]]\ncluster = \"edge\"\n\
             [clusters.edge.static]\nendpoints = [{{ address = \"{}\" }}]\n",
            edge.addr
        ),
    )
    .unwrap();
    let daemon = support::Reaped::new(
        Command::new(BIN)
            .arg("connect")
            .arg(&profile)
            .args(["--xds-listen", &format!("127.0.0.1:{xds}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
            .arg("--envoy")
            .arg("--envoy-bin")
            .arg(support::envoy_binary())
            .env("XDG_STATE_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    let serves = || async move {
        http_get(listener, "svc.test", "/x", &[]).await.ok().filter(|r| r.status == 200).map(|r| r.body)
    };
    assert_eq!(eventually("the supervised Envoy to serve", 400, serves).await, "edge GET /x\n");

    let first = children(daemon.id());
    assert_eq!(first.len(), 1, "one Envoy child: {first:?}");
    Command::new("kill").args(["-KILL", &first[0].to_string()]).status().unwrap();
    let second = eventually("a new Envoy", 400, || {
        let now: Vec<u32> = children(daemon.id()).into_iter().filter(|p| *p != first[0] && alive(*p)).collect();
        async move { now.first().copied() }
    })
    .await;
    assert_eq!(eventually("the restarted Envoy to serve", 400, serves).await, "edge GET /x\n");

    Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let daemon = daemon.into_inner();
    let out = tokio::task::spawn_blocking(move || daemon.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!alive(second), "Envoy {second} outlived devbridge");
    for line in ["Envoy started", "Envoy exited; restarting it", "stopping Envoy", "devbridge stopped"] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn connect_envoy_without_an_envoy_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("devbridge");
    std::fs::copy(BIN, &lone).unwrap();
    let out = Command::new(&lone)
        .args(["connect", "demo", "--envoy"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "devbridge: no Envoy binary found (looked for `envoy` on PATH and next to devbridge at {}); install one with `./install.sh --with-envoy`, or pass --envoy-bin PATH\n",
            dir.path().join("envoy").display()
        )
    );
}
