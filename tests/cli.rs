//! The `devbridge` binary as a user runs it: `check`, `profiles`,
//! `bootstrap` into a real Envoy, and `connect` with graceful shutdown.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::{Envoy, Upstream, free_port, http_get};

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

fn devbridge(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_CONFIG_HOME", "/nonexistent-devbridge-test")
        .env_remove("DEVBRIDGE_PROFILE_PATH")
        .output()
        .expect("run devbridge")
}

#[test]
fn check_prints_every_located_error_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"[zones.dev-local]

[proxies.sidecar]
zone = "dev-local"
domains = ["demo.example.com:8888"]

[[domains]]
name = "demo.example.com:8888"

[[domains.routes]]
prefix = "/api"
cluster = "edgee"

[[domains.routes]]
regex = "/items/(?=x)"
cluster = "edge"

[clusters.edge]
connect_timeout = "soon"
[clusters.edge.static]
endpoints = [{ address = "127.0.0.1:9001" }]
"#,
    )
    .unwrap();
    let out = devbridge(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    let file = path.display();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert_eq!(
        errors[0],
        format!("error: {file}:12:11: domains[0].routes[0].cluster: \"edgee\" is not a cluster; known clusters: edge")
    );
    assert!(
        errors[1].starts_with(&format!(
            "error: {file}:15:9: domains[0].routes[1].regex: \"/items/(?=x)\" is not a valid RE2 regex"
        )),
        "{}",
        errors[1]
    );
    assert_eq!(
        errors[2],
        format!(
            "error: {file}:19:19: clusters.edge.connect_timeout: \"soon\" is not a duration; expected e.g. \"250ms\", \"5s\", \"1m\""
        )
    );
    assert!(stderr.ends_with("has 3 error(s)\n"), "{stderr}");
}

#[test]
fn check_summarises_the_demo_profile() {
    let out = devbridge(&["check", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().take(2).collect::<Vec<_>>(),
        vec!["profile demo (profiles/demo.toml): ok", "  1 zone, 1 proxy, 1 domain, 4 routes, 2 clusters"]
    );
}

#[test]
fn every_bundled_profile_and_the_readme_example_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        let out = devbridge(&["check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        checked.push(path.file_name().unwrap().to_string_lossy().to_string());
    }
    checked.sort();
    assert_eq!(checked, ["demo.toml", "staging.toml"]);

    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = readme.split("### Annotated example").nth(1).expect("README has an annotated example");
    let toml = example.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml block");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readme-example.toml");
    std::fs::write(&path, toml).unwrap();
    let out = devbridge(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "README example: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn profiles_lists_the_bundled_demo() {
    let out = devbridge(&["profiles"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["demo", "profiles/demo.toml"]),
        "{stdout}"
    );
}

#[test]
fn bootstrap_without_proxy_on_a_many_proxy_profile_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.toml");
    std::fs::write(&path, "[zones.z]\n[proxies.a]\nzone = \"z\"\n[proxies.b]\nzone = \"z\"\n").unwrap();
    let out = devbridge(&["bootstrap", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "devbridge: profile \"two\" has 2 proxies (a, b); name one with --proxy\n"
    );
}

#[test]
fn bootstrap_for_grpc_writes_the_json_a_grpc_client_reads_for_its_grpc_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.toml");
    std::fs::write(
        &path,
        "[listen]\nxds = \"127.0.0.1:2000\"\n[zones.z]\n[proxies.sidecar]\nzone = \"z\"\n\
         [proxies.app]\nzone = \"z\"\nkind = \"grpc\"\nnode_id = \"app-1\"\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    // The only gRPC proxy is picked without --proxy, and the only Envoy one likewise.
    let out = devbridge(&["bootstrap", path, "--for", "grpc"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON, which gRPC reads");
    assert_eq!(
        v,
        serde_json::json!({
            "xds_servers": [{
                "server_uri": "127.0.0.1:2000",
                "channel_creds": [{ "type": "insecure" }],
                "server_features": ["xds_v3"]
            }],
            "node": { "id": "app-1", "cluster": "app", "locality": { "zone": "z" } }
        })
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("GRPC_XDS_BOOTSTRAP"));
    assert_eq!(devbridge(&["bootstrap", path]).status.code(), Some(0));

    let refused = |args: &[&str], why: &str| {
        let out = devbridge(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    };
    refused(&["bootstrap", path, "--for", "grpc", "--proxy", "sidecar"], "proxy \"sidecar\" is an Envoy proxy");
    refused(&["bootstrap", path, "--proxy", "app"], "is a proxyless gRPC client");
    refused(&["bootstrap", path, "--for", "grpc", "--xds", "delta"], "state-of-the-world xDS over gRPC only");
}

#[test]
fn xds_address_comes_from_env_over_profile_and_from_the_flag_over_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.toml");
    std::fs::write(&path, "[listen]\nxds = \"127.0.0.1:2000\"\n[zones.z]\n[proxies.a]\nzone = \"z\"\n").unwrap();
    let port_in = |out: std::process::Output| -> String {
        let yaml = String::from_utf8(out.stdout).unwrap();
        yaml.lines().rev().find(|l| l.trim_start().starts_with("port_value:")).unwrap().trim().to_string()
    };
    let path = path.to_str().unwrap();
    assert_eq!(port_in(devbridge(&["bootstrap", path])), "port_value: 2000");
    let with_env =
        Command::new(BIN).args(["bootstrap", path]).env("DEVBRIDGE_XDS_LISTEN", "127.0.0.1:3000").output().unwrap();
    assert_eq!(port_in(with_env), "port_value: 3000");
    let with_flag = Command::new(BIN)
        .args(["bootstrap", path, "--xds-address", "devbridge.local:4000"])
        .env("DEVBRIDGE_XDS_LISTEN", "127.0.0.1:3000")
        .output()
        .unwrap();
    assert_eq!(port_in(with_flag), "port_value: 4000");
}

/// The whole path with the real binary: `connect` serves, `bootstrap`
/// writes the Envoy config, Envoy routes to a loopback upstream, SIGTERM
/// stops devbridge cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_bootstrap_drive_a_real_envoy_and_stop_on_sigterm() {
    // Before anything is spawned: a missing Envoy must not orphan a daemon.
    support::envoy_binary();
    let edge = Upstream::start("edge").await;
    let (listen_port, xds_port, admin_port) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("e2e.toml");
    std::fs::write(
        &profile,
        format!(
            r#"[zones.dev-local]
[proxies.dev-proxy]
zone = "dev-local"
admin = "127.0.0.1:0"
domains = ["demo.example.com:{listen_port}"]
[[domains]]
name = "demo.example.com:{listen_port}"
[[domains.routes]]
prefix = "/api"
cluster = "edge"
[clusters.edge.static]
endpoints = [{{ address = "{}" }}]
"#,
            edge.addr
        ),
    )
    .unwrap();
    let profile = profile.to_str().unwrap();
    let daemon = support::Reaped::new(
        Command::new(BIN)
            .args(["connect", profile, "--xds-listen", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .env("XDG_STATE_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let boot = devbridge(&["bootstrap", profile, "--xds-address", &format!("127.0.0.1:{xds_port}")]);
    assert_eq!(boot.status.code(), Some(0));
    let envoy = Envoy::start(&String::from_utf8(boot.stdout).unwrap()).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], listen_port));
    envoy.wait_listening(listener).await;
    let r = http_get(listener, "demo.example.com", "/api/colors", &[])
        .await
        .unwrap_or_else(|e| panic!("request to {listener}: {e}\n{}", envoy.log()));
    assert_eq!((r.status, r.body.as_str()), (200, "edge GET /api/colors\n"));
    let ready = http_get(SocketAddr::from(([127, 0, 0, 1], admin_port)), "admin", "/readyz", &[]).await.unwrap();
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready: profile e2e (1 proxy)\n"));

    // `devbridge status` shows the Envoy and, once it has ACKed all four types, says so.
    let admin = format!("127.0.0.1:{admin_port}");
    let status = support::eventually("devbridge status to show every type ACKed", 200, || {
        let out = devbridge(&["status", "--admin", &admin]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let acked = ["CDS", "EDS", "LDS", "RDS"].iter().all(|t| stdout.contains(&format!("    {t}  acked ")));
        async move { (out.status.code() == Some(0) && acked).then_some(stdout) }
    })
    .await;
    // The header, then the summary lines (indented), then the profile.
    let lines: Vec<&str> = status.lines().filter(|l| !l.starts_with("  ")).collect();
    assert_eq!(lines[0], format!("devbridge {} at {admin} (pid {}): ready", env!("CARGO_PKG_VERSION"), daemon.id()));
    assert!(lines[1].starts_with(&format!("profile e2e ({profile}), loaded ")), "{status}");
    assert!(status.lines().nth(1).is_some_and(|l| l.starts_with("  cluster edge: ")), "{status}");
    assert!(
        status.contains("envoys: 1 connected\n  dev-proxy (node.cluster dev-proxy, zone dev-local) from 127.0.0.1:"),
        "{status}"
    );
    assert!(status.contains("\n    proxy dev-proxy\n"), "{status}");
    let json = devbridge(&["status", "--admin", &admin, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(json["envoys"][0]["proxy"], "dev-proxy");
    assert_eq!(json["profile"]["name"], "e2e");

    let kill = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let daemon = daemon.into_inner();
    let out = tokio::task::spawn_blocking(move || daemon.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("devbridge stopped"), "{stderr}");
    // Said when the listeners are bound, before any Envoy connects; addresses as written.
    let listening = stderr.lines().find(|l| l.contains("devbridge is serving")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(listening.ends_with(&format!(" xds=127.0.0.1:{xds_port} admin=127.0.0.1:{admin_port}")), "{listening}");
    assert!(!stderr.contains("connected;") && !stderr.contains("Some("), "{stderr}");
    // Envoy keeps serving its last config while devbridge is away.
    let r = http_get(listener, "demo.example.com", "/api/still", &[]).await.unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn status_says_so_when_nothing_answers_at_the_admin_address() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = devbridge(&["status", "--admin", &addr]);
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("devbridge: no devbridge answers at {addr}; is `devbridge connect` running? (--admin)\n")
    );
    assert_eq!(out.stdout, b"");
}

/// `envoy --mode validate` accepts every bootstrap `devbridge bootstrap`
/// can produce: each bundled profile, each runtime, YAML and JSON.
#[test]
fn every_bootstrap_for_every_runtime_passes_envoy_validate() {
    let envoy = support::envoy_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for profile in ["demo", "staging"] {
        for runtime in ["process", "docker", "compose", "minikube"] {
            for format in ["yaml", "json"] {
                let out = dir.path().join(format!("{profile}-{runtime}.{format}"));
                let written = devbridge(&[
                    "bootstrap",
                    profile,
                    "--for",
                    runtime,
                    "--format",
                    format,
                    "--out",
                    out.to_str().unwrap(),
                ]);
                assert_eq!(written.status.code(), Some(0), "{}", String::from_utf8_lossy(&written.stderr));
                let check = Command::new(&envoy).args(["--mode", "validate", "-c"]).arg(&out).output().unwrap();
                assert!(
                    check.status.success(),
                    "{profile} {runtime} {format}: {}",
                    String::from_utf8_lossy(&check.stderr)
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 16);
    // The runtime decides where Envoy looks for devbridge.
    let yaml = |runtime: &str| String::from_utf8(devbridge(&["bootstrap", "demo", "--for", runtime]).stdout).unwrap();
    assert!(yaml("process").contains("address: \"127.0.0.1\"\n                      port_value: 18000"));
    assert!(yaml("docker").contains("address: \"host.docker.internal\""));
    assert!(yaml("compose").contains("extra_hosts: [\"host.docker.internal:host-gateway\"]"));
    assert!(yaml("minikube").contains("address: \"host.minikube.internal\""));
}

#[test]
fn connect_refuses_a_non_loopback_address_without_tls() {
    let out = devbridge(&["connect", "demo", "--xds-listen", "0.0.0.0:18999"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap(),
        "devbridge: refusing to serve xDS on 0.0.0.0:18999 without TLS: anyone who can reach it would get the routing configuration. Run `devbridge certs init` and add --tls, or listen on 127.0.0.1 (--insecure accepts the risk)"
    );
}

/// The runbooks' way: `certs issue --out out/tls`, then a container
/// bootstrap into `out/`: its notes mount that folder (no other), and
/// `certs issue` names `--tls-dir` only for an Envoy on this machine, since
/// a container's bootstrap looks at /etc/devbridge/tls.
#[test]
fn tls_messages_name_the_folder_the_certificate_is_in() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["certs", "init"]);
    let issued = run(&["certs", "issue", "dev-proxy", "--out", "out/tls"]);
    assert!(issued.contains("mount this folder at /etc/devbridge/tls"), "{issued}");
    assert!(issued.contains("devbridge bootstrap <profile> --proxy dev-proxy --for docker --tls   (or"), "{issued}");
    assert!(
        issued.trim_end().ends_with("devbridge bootstrap <profile> --proxy dev-proxy --tls --tls-dir out/tls"),
        "{issued}"
    );
    let by_default = run(&["certs", "issue", "dev-proxy"]);
    assert!(!by_default.contains("--tls-dir"), "the default place needs no --tls-dir: {by_default}");

    let profile = format!("{}/examples/pyservice/pyservice.toml", env!("CARGO_MANIFEST_DIR"));
    run(&["bootstrap", &profile, "--for", "docker", "--tls", "--out", "out/envoy-docker.yaml"]);
    let text = std::fs::read_to_string(dir.path().join("out/envoy-docker.yaml")).unwrap();
    let beside = dir.path().canonicalize().unwrap().join("out/tls");
    assert!(text.contains(&format!("#     -v {}:/etc/devbridge/tls:ro ...", beside.display())), "{text}");
    assert!(
        text.contains(
            "# devbridge must serve TLS where containers reach it: devbridge connect <profile> --tls --for docker"
        ),
        "{text}"
    );

    // Elsewhere, with no certificate beside it: the one in the default place.
    run(&["bootstrap", &profile, "--for", "compose", "--tls", "--out", "other.yaml"]);
    let text = std::fs::read_to_string(dir.path().join("other.yaml")).unwrap();
    let default = dir.path().canonicalize().unwrap().join(".config/devbridge/tls/proxies/dev-proxy");
    assert!(text.contains(&format!("#   volumes: [\"{}:/etc/devbridge/tls:ro\"]", default.display())), "{text}");
}

#[test]
fn connect_for_a_runtime_it_cannot_place_says_what_to_pass_and_exits_64() {
    for (runtime, says) in [("minikube", "pass --xds-listen"), ("grpc", "leave out --for")] {
        let out = devbridge(&["connect", "demo", "--for", runtime]);
        assert_eq!(out.status.code(), Some(64), "{runtime}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{runtime}: {stderr}");
    }
    // One address at a time.
    let out = devbridge(&["connect", "demo", "--for", "docker", "--xds-listen", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `certs init` and `certs issue` write what `bootstrap --tls` points Envoy
/// at, and Envoy accepts those bootstraps (TLS and Unix socket).
#[test]
fn certs_and_tls_bootstraps_pass_envoy_validate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let init = devbridge(&["certs", "init", "--dir", tls.to_str().unwrap(), "--san", "devbridge.lan"]);
    assert_eq!(init.status.code(), Some(0), "{}", String::from_utf8_lossy(&init.stderr));
    let stdout = String::from_utf8(init.stdout).unwrap();
    assert!(
        stdout.contains(
            "valid for: localhost, host.docker.internal, host.minikube.internal, 127.0.0.1, ::1, devbridge.lan"
        ),
        "{stdout}"
    );
    let issued = devbridge(&["certs", "issue", "dev-proxy", "--dir", tls.to_str().unwrap()]);
    assert_eq!(issued.status.code(), Some(0));
    let client = tls.join("proxies/dev-proxy");
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(client.join(f).is_file(), "{f}");
    }
    let envoy = support::envoy_binary();
    for (i, args) in [
        vec!["--tls", "--tls-dir", client.to_str().unwrap()],
        vec!["--for", "docker", "--tls", "--tls-dir", client.to_str().unwrap()],
        vec!["--for", "minikube", "--tls", "--tls-dir", client.to_str().unwrap(), "--format", "json"],
        vec!["--xds-socket", "/run/devbridge/xds.sock"],
    ]
    .into_iter()
    .enumerate()
    {
        let ext = if args.contains(&"json") { "json" } else { "yaml" };
        let out = dir.path().join(format!("b{i}.{ext}"));
        let mut all = vec!["bootstrap", "demo", "--out", out.to_str().unwrap()];
        all.extend(args);
        let written = devbridge(&all);
        assert_eq!(written.status.code(), Some(0), "{}", String::from_utf8_lossy(&written.stderr));
        let check = Command::new(&envoy).args(["--mode", "validate", "-c"]).arg(&out).output().unwrap();
        assert!(check.status.success(), "{all:?}: {}", String::from_utf8_lossy(&check.stderr));
    }
}

#[test]
fn check_rejects_an_empty_profile_and_a_latin1_one_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "# to be written\n\n").unwrap();
    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"description = \"\xe9t\xe9\"\n").unwrap();
    for (path, error) in [
        (
            &empty,
            "1:1: the profile is empty (no keys, only blank lines or comments); expected at least a [proxies.NAME] table",
        ),
        (&latin1, "1:16: invalid UTF-8 at byte 15 (0xe9); profiles must be UTF-8 (was the file saved as Latin-1?)"),
    ] {
        let out = devbridge(&["check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(64));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let name = path.display();
        assert_eq!(stderr, format!("error: {name}:{error}\ndevbridge: profile \"{name}\" has 1 error(s)\n"));
    }
}

#[test]
fn check_lists_fifty_errors_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.toml");
    let routes = "[[domains.routes]]\nprefix = \"/api\"\ndirect_response = { status = 200 }\n".repeat(8000);
    std::fs::write(&path, format!("[[domains]]\nname = \"a.test:80\"\n{routes}")).unwrap();
    let out = devbridge(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 52, "{stderr}");
    assert_eq!(lines[50], "error: ... and 7949 more (only the first 50 are listed)");
    assert_eq!(lines[51], format!("devbridge: profile \"{}\" has 7999 error(s)", path.display()));
}

/// `devbridge connect` on `profile` with the given ports, its output piped.
fn mk_connect(profile: &str, xds_port: u16, admin_port: u16, state: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["connect", profile, "--xds-listen", &format!("127.0.0.1:{xds_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("XDG_CONFIG_HOME", state)
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Sends SIGTERM and waits, at most 20 s, for the daemon to exit.
async fn terminate(daemon: support::Reaped) -> std::process::ExitStatus {
    let mut daemon = daemon.into_inner();
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    for _ in 0..400 {
        if let Some(status) = daemon.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    panic!("devbridge did not end within 20 s of SIGTERM");
}

const STATIC_PROFILE: &str = "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:18557\"]\n[[domains]]\nname = \"a.test:18557\"\n\
     [[domains.routes]]\ncluster = \"c\"\n[clusters.c.static]\nendpoints = [{ address = \"127.0.0.1:9\" }]\n";

/// `devbridge connect demo 2>&1 | head -2`: once the reader of its log is
/// gone, the daemon keeps serving xDS and admin, and SIGTERM still ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_log_reader_went_away_keeps_serving_and_stops_on_sigterm() {
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("pipe.toml");
    std::fs::write(&profile, STATIC_PROFILE).unwrap();
    let (xds_port, admin_port) = (free_port(), free_port());
    let mut daemon = support::Reaped::new(
        mk_connect(profile.to_str().unwrap(), xds_port, admin_port, dir.path())
            .args(["--log", "debug"])
            .spawn()
            .unwrap(),
    );
    // Like `head -2`: read two lines, then go away.
    let stderr = daemon.stderr.take().unwrap();
    let first_two = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stderr).lines();
        let two: Vec<String> = lines.by_ref().take(2).map(|l| l.unwrap()).collect();
        drop(lines);
        two
    })
    .await
    .unwrap();
    assert_eq!(first_two.len(), 2);
    // Not a terminal: no colour codes.
    assert!(first_two.iter().all(|l| !l.contains('\u{1b}')), "{first_two:?}");

    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let node = Node { id: "p-1".into(), cluster: "p".into(), ..Default::default() };
    // Every stream logs (debug and info) into the closed pipe; each must still be served.
    for round in 0..5 {
        let mut client = support::eventually("the xDS port to answer", 200, || async {
            AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{xds_port}")).await.ok()
        })
        .await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(DiscoveryRequest {
            type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
            node: Some(node.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut stream = client
            .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await;
        let answer = answer.unwrap_or_else(|_| panic!("round {round}: no CDS answer within 10 s")).unwrap().unwrap();
        assert_eq!(answer.resources.len(), 1, "round {round}");
        let health = http_get(admin, "admin", "/healthz", &[]).await.unwrap();
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "round {round}");
    }
    let status = terminate(daemon).await;
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bind_failure_is_printed_once_without_colour() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = mk_connect("demo", port, free_port(), dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "devbridge: cannot listen for xDS on 127.0.0.1:{port}; is another devbridge running? (--xds-listen): Address already in use (os error 98)\n"
        )
    );
}

/// A daemon whose Kubernetes source cannot sync prints NOT READY and
/// `devbridge status` exits 1, as the README documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_1_while_the_daemon_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    // A kubeconfig naming an API server that is not there.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: dev\nusers:\n- name: dev\n  user:\n    token: t\n",
            free_port()
        ),
    )
    .unwrap();
    let profile = dir.path().join("unready.toml");
    std::fs::write(
        &profile,
        format!(
            "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:18558\"]\n[[domains]]\nname = \"a.test:18558\"\n\
             [[domains.routes]]\ncluster = \"edge\"\n[clusters.edge.kubernetes]\nkubeconfig = \"{}\"\nnamespace = \"edge\"\n\
             selector = \"app=edge\"\nport = \"http\"\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let (xds_port, admin_port) = (free_port(), free_port());
    let daemon = support::Reaped::new(
        mk_connect(profile.to_str().unwrap(), xds_port, admin_port, dir.path()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let admin = format!("127.0.0.1:{admin_port}");
    let out = support::eventually("devbridge status to reach the daemon", 200, || {
        let out = devbridge(&["status", "--admin", &admin]);
        async move { (out.status.code() != Some(69)).then_some(out) }
    })
    .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        (out.status.code(), stdout.lines().next()),
        (
            Some(1),
            Some(
                format!("devbridge {} at {admin} (pid {}): NOT READY", env!("CARGO_PKG_VERSION"), daemon.id()).as_str()
            )
        )
    );
    let json = devbridge(&["status", "--admin", &admin, "--json"]);
    assert_eq!(json.status.code(), Some(1));
    assert_eq!(terminate(daemon).await.code(), Some(0));
}
