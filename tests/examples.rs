//! The runnable examples under `examples/`, run as their READMEs say, with
//! `--once`, against a real Envoy: the requests each README shows get the
//! answers it promises. The container files are also parsed and checked
//! against the runbook commands that feed them: minikube cannot run here, so
//! that is all it gets (`tests/containers.rs` runs the docker and compose
//! runbooks against a real Docker daemon).
//!
//! The example scripts use fixed loopback ports, so they run one at a time
//! (`EXAMPLES`); each picks ports that no other test uses.

mod support;

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// Held while an example script runs: they listen on fixed ports.
static EXAMPLES: Mutex<()> = Mutex::new(());

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script --once` from the repository root with this build's
/// devbridge and the tests' Envoy; returns its standard output.
fn run_example(script: &str) -> String {
    let _one_at_a_time = EXAMPLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let started = Instant::now();
    let out = run_once(script);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{script} --once took {:?}", started.elapsed());
    stdout
}

/// `script --once`, bounded: after 120 s the script and everything it
/// started (its process group) are killed.
fn run_once(script: &str) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let child = Command::new("bash")
        .arg(script)
        .arg("--once")
        .current_dir(root())
        .env("DEVBRIDGE_BIN", BIN)
        .env("ENVOY_BIN", support::envoy_binary())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run bash");
    let group = format!("-{}", child.id());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx.recv_timeout(std::time::Duration::from_secs(120)).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        rx.recv().expect("the script's output")
    });
    out.expect("wait for bash")
}

/// The answers: every line that is not a command (`$ ...`) or a comment (`# ...`).
fn answers(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| !l.starts_with("$ ") && !l.starts_with("# ") && !l.is_empty()).collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

/// The one line of a README that starts with `start` and contains every one of `with`, as words.
fn runbook_line(readme: &str, start: &str, with: &[&str]) -> Vec<String> {
    let lines: Vec<&str> =
        readme.lines().filter(|l| l.starts_with(start) && with.iter().all(|w| l.contains(w))).collect();
    assert_eq!(lines.len(), 1, "expected one `{start} ... {with:?}` line in the runbook, found {lines:?}");
    lines[0].split_whitespace().map(str::to_string).collect()
}

/// The word after `flag`, or the part after `flag=`.
fn arg(words: &[String], flag: &str) -> String {
    if let Some(i) = words.iter().position(|w| w == flag) {
        return words.get(i + 1).unwrap_or_else(|| panic!("{flag} without a value in {words:?}")).clone();
    }
    let prefix = format!("{flag}=");
    words.iter().find_map(|w| w.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {flag} in {words:?}")).to_string()
}

/// `base/relative` without `.` components, as compose resolves a volume source.
fn resolve(base: &str, relative: &str) -> PathBuf {
    Path::new(base).join(relative).components().filter(|c| *c != Component::CurDir).collect()
}

/// The file Envoy is started with: the word after `-c` in a container's command and args.
fn envoy_config_arg(container: &Value) -> String {
    let words: Vec<String> = ["command", "args"]
        .iter()
        .filter_map(|k| container[*k].as_array())
        .flatten()
        .map(|w| w.as_str().expect("string arguments").to_string())
        .collect();
    arg(&words, "-c")
}

// ------------------------------------------------------------------ the README's demo

/// `examples/demo/run.sh --once`: the README's quick start, end to end. It
/// uses the default ports (8888, 9001, 9002, 9901, 18000, 18001).
#[test]
fn the_demo_example_runs() {
    let stdout = run_example("examples/demo/run.sh");
    let answers = answers(&stdout);
    assert_eq!(answers[0], "ok from the devbridge demo");
    let mut edges = vec![answers[1].split(' ').next().unwrap(), answers[2].split(' ').next().unwrap()];
    edges.sort();
    assert_eq!(edges, vec!["edge-1", "edge-2"], "round robin over both edges:\n{stdout}");
    assert!(answers[3].starts_with("edge-2 GET /api/colors"), "x-dev: canary goes to edge-2:\n{stdout}");
    assert_eq!(answers[4], "404");
}

/// With one of its ports taken (another demo still running), the demo
/// stops before starting anything, names the port and exits non-zero,
/// instead of printing whatever the other process answers.
#[test]
fn the_demo_fails_early_when_its_ports_are_taken() {
    let _one_at_a_time = EXAMPLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // A port some other process already holds is as taken as one held here.
    let _held: Vec<std::net::TcpListener> =
        [8888, 18000].iter().filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).ok()).collect();
    let out = run_once("examples/demo/run.sh");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "nothing was asked: {stdout}");
    assert!(
        stderr.starts_with("demo: 127.0.0.1:8888 is in use (another example or the demo still running?)"),
        "{stderr}"
    );
}

/// The commands the demo prints paste back into a shell as they are.
#[test]
fn the_demo_prints_commands_that_paste_back() {
    let script = read("examples/demo/run.sh");
    let shown: Vec<&str> = script.lines().filter(|l| l.starts_with("show ")).collect();
    assert!(shown.iter().any(|l| l.contains("-H 'Host: demo.example.com'")), "{script}");
    let stdout = run_example("examples/demo/run.sh");
    let commands: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("$ ")).collect();
    assert_eq!(commands.len(), shown.len(), "{stdout}");
    for (printed, written) in commands.iter().zip(&shown) {
        assert_eq!(format!("show {}", printed.strip_prefix("curl ").unwrap()), **written, "{stdout}");
    }
}

/// No runbook passes `certs init` a `--san` the certificate has anyway.
#[test]
fn no_runbook_repeats_a_default_certificate_name() {
    let defaults: Vec<&str> =
        devbridge::certs::DEFAULT_SERVER_NAMES.iter().chain(devbridge::certs::DEFAULT_SERVER_IPS).copied().collect();
    let mut docs = vec![root().join("README.md")];
    for dir in ["examples", "docs"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            docs.push(if path.is_dir() { path.join("README.md") } else { path });
        }
    }
    let mut repeated = Vec::new();
    for doc in docs.iter().filter(|d| d.extension().is_some_and(|e| e == "md") && d.is_file()) {
        for line in std::fs::read_to_string(doc).unwrap().lines().filter(|l| l.contains("certs init ")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(2).filter(|w| w[0] == "--san" && defaults.contains(&w[1])) {
                repeated.push(format!("{}: --san {}", doc.strip_prefix(root()).unwrap().display(), pair[1]));
            }
        }
    }
    assert_eq!(repeated, Vec::<String>::new(), "these are in every certificate already");
}

#[test]
fn every_example_profile_is_valid() {
    let mut checked = Vec::new();
    for dir in std::fs::read_dir(root().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
                assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
                checked.push(path.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "examples/front-proxy/front-proxy.toml",
            "examples/pyservice/pyservice.toml",
            "examples/runtime-endpoints/runtime-endpoints.toml",
            "examples/scaled-service/scaled-service.toml",
            "examples/sidecar-in-out/sidecar-in-out.toml",
        ]
    );
}

// ------------------------------------------------------------------ seed 002

#[test]
fn pyservice_in_process_mode_answers_through_its_sidecar_and_the_stand_in_edge() {
    let stdout = run_example("examples/pyservice/run-process.sh");
    let got = answers(&stdout);
    // The address pyservice resolves its hostname to is whatever this
    // machine says; it must be an IP, and the same in every answer.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let resolved = got[0].rsplit("resolvedhostname: ").next().unwrap();
    assert!(resolved.parse::<std::net::IpAddr>().is_ok(), "{stdout}");
    let tail = format!("(service 1)! hostname: {hostname} resolvedhostname: {resolved}");
    assert_eq!(
        got,
        [
            format!("Hello from process {tail}"),
            format!("Hello from process -- 00ff00 {tail}"),
            format!(
                "Hello from process -- upstream connect error or disconnect/reset before headers. \
                 reset reason: remote connection failure {tail}"
            ),
            format!("Hello from process -- 00ff00 {tail}"),
        ],
        "{stdout}"
    );
}

#[test]
fn pyservice_compose_sidecar_mounts_the_bootstrap_and_tls_files_the_runbook_writes() {
    let readme = read("examples/pyservice/README.md");
    let bootstrap = runbook_line(&readme, "devbridge bootstrap", &["--for compose"]);
    assert_eq!(arg(&bootstrap, "--proxy"), "dev-proxy");
    assert!(bootstrap.contains(&"--tls".to_string()), "the sidecar reaches devbridge over TLS: {bootstrap:?}");
    let certs = runbook_line(&readme, "devbridge certs issue", &["dev-proxy"]);
    let compose = yaml("examples/pyservice/compose.yaml");
    // Compose v1 (Debian's docker-compose 1.29) refuses a top-level `name:`.
    assert_eq!(compose["name"], Value::Null, "compose.yaml must be read by Compose v1 and v2 alike");

    let service = &compose["services"]["pyservice"];
    assert_eq!(service["build"], ".");
    assert_eq!(service["ports"], serde_json::json!(["127.0.0.1:8180:8080"]));
    assert_eq!(service["extra_hosts"], serde_json::json!(["host.docker.internal:host-gateway"]));
    let sidecar = &compose["services"]["envoy"];
    assert_eq!(sidecar["network_mode"], "service:pyservice", "the sidecar shares pyservice's network namespace");
    let mounts: Vec<(PathBuf, String)> = sidecar["volumes"]
        .as_array()
        .expect("sidecar volumes")
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            (resolve("examples/pyservice", parts[0]), parts[1].to_string())
        })
        .collect();
    assert_eq!(
        mounts,
        [
            (PathBuf::from(arg(&bootstrap, "--out")), envoy_config_arg(sidecar)),
            (PathBuf::from(arg(&certs, "--out")), "/etc/devbridge/tls".to_string()),
        ]
    );
    assert_eq!(compose["services"]["edge"]["network_mode"], "service:pyservice");
}

#[test]
fn pyservice_minikube_sidecar_reads_the_config_map_key_at_the_path_envoy_is_given() {
    let readme = read("examples/pyservice/README.md");
    let bootstrap = runbook_line(&readme, "devbridge bootstrap", &["--for minikube"]);
    assert!(bootstrap.contains(&"--tls".to_string()), "{bootstrap:?}");
    let configmap = runbook_line(&readme, "kubectl create configmap", &[]);
    let secret = runbook_line(&readme, "kubectl create secret generic", &[]);
    let certs = runbook_line(&readme, "devbridge certs issue", &["dev-proxy"]);
    // `--from-file=envoy.yaml=FILE`: the key envoy.yaml holds the bootstrap written above.
    assert_eq!(arg(&configmap, "--from-file"), format!("envoy.yaml={}", arg(&bootstrap, "--out")));
    assert_eq!(arg(&secret, "--from-file"), arg(&certs, "--out"));

    let deployment = yaml("examples/pyservice/k8s/deployment.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let container =
        |name: &str| pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().expect(name);
    let volume = |name: &Value| pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == *name).cloned();
    let envoy = container("envoy");
    let mut mounted = Vec::new();
    for m in envoy["volumeMounts"].as_array().expect("envoy mounts") {
        let v = volume(&m["name"]).expect("a mounted volume is declared");
        let dir = m["mountPath"].as_str().unwrap().to_string();
        if let Some(cm) = v["configMap"]["name"].as_str() {
            // Without `items`, each key is a file named after it.
            assert_eq!(v["configMap"]["items"], Value::Null);
            mounted.push(("configMap", cm.to_string(), format!("{dir}/envoy.yaml")));
        } else if let Some(s) = v["secret"]["secretName"].as_str() {
            mounted.push(("secret", s.to_string(), dir));
        }
    }
    // `kubectl create configmap NAME ...`, `kubectl create secret generic NAME ...`
    assert_eq!(
        mounted,
        [
            ("configMap", configmap[3].clone(), envoy_config_arg(&envoy)),
            ("secret", secret[4].clone(), "/etc/devbridge/tls".to_string()),
        ]
    );

    let service = yaml("examples/pyservice/k8s/service.yaml");
    assert_eq!(service["kind"], "Service");
    assert_eq!(&service["spec"]["selector"], labels);
    let target = &service["spec"]["ports"][0]["targetPort"];
    let ports = container("pyservice")["ports"].clone();
    assert!(ports.as_array().unwrap().iter().any(|p| p["name"] == *target), "{target} is a pyservice port");
}

#[test]
fn pyservice_bootstraps_for_every_runtime_pass_envoy_validate() {
    let readme = read("examples/pyservice/README.md");
    let dir = tempfile::tempdir().unwrap();
    // Real certificates where the sidecar would have them mounted, so Envoy
    // can load what the TLS bootstrap names.
    let tls = dir.path().join("tls");
    for args in [vec!["certs", "init", "--dir"], vec!["certs", "issue", "dev-proxy", "--dir"]] {
        let made = Command::new(BIN).args(&args).arg(&tls).output().unwrap();
        assert!(made.status.success(), "{args:?}: {}", String::from_utf8_lossy(&made.stderr));
    }
    for runtime in ["compose", "docker", "minikube"] {
        // The runbook's own command, writing elsewhere, with the
        // certificates where this test made them.
        let mut words = runbook_line(&readme, "devbridge bootstrap", &[&format!("--for {runtime}")]);
        assert!(words.contains(&"--tls".to_string()), "{runtime}: the runbook uses TLS: {words:?}");
        words.retain(|w| !w.starts_with("--tls-dir"));
        words.push("--tls-dir".into());
        words.push(tls.join("proxies/dev-proxy").display().to_string());
        let out = dir.path().join(format!("{runtime}.yaml"));
        let i = words.iter().position(|w| w == "--out").unwrap();
        words[i + 1] = out.to_str().unwrap().to_string();
        let written = Command::new(BIN).args(&words[1..]).current_dir(root()).output().unwrap();
        assert!(written.status.success(), "{words:?}: {}", String::from_utf8_lossy(&written.stderr));
        let text = std::fs::read_to_string(&out).unwrap();
        let host = if runtime == "minikube" { "host.minikube.internal" } else { "host.docker.internal" };
        assert!(text.contains(&format!("address: \"{host}\"")), "{runtime}: {text}");
        let valid = Command::new(support::envoy_binary())
            .args(["--mode", "validate", "--disable-hot-restart", "-l", "error", "-c"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(valid.status.success(), "{runtime}: {}", String::from_utf8_lossy(&valid.stdout));
    }
}

// ------------------------------------------------------------------ seed 004

#[test]
fn front_proxy_routes_by_path_to_dns_named_services_in_turn_and_counts_for_prometheus() {
    let stdout = run_example("examples/front-proxy/run.sh");
    let got = answers(&stdout);
    let films = |by: &str| {
        format!(r#"{{"served_by": "{by}", "films": [{{"id": "1", "name": "Anand", "language": "Hindi"}}]}}"#)
    };
    // Round robin over the two instances: which one goes first varies.
    let first = if got[0] == films("films-1") { "films-1" } else { "films-2" };
    let second = if first == "films-1" { "films-2" } else { "films-1" };
    assert_eq!(
        got,
        [
            films(first),
            films(second),
            films(first),
            films(second),
            r#"{"served_by": "ratings-1", "ratings": [{"id": "1", "name": "Anand", "rating": "5"}]}"#.to_string(),
            "404".to_string(),
            r#"envoy_cluster_upstream_rq_total{envoy_cluster_name="films"} 4"#.to_string(),
            r#"envoy_cluster_upstream_rq_total{envoy_cluster_name="ratings"} 1"#.to_string(),
        ],
        "{stdout}"
    );
}

// ------------------------------------------------------------------ seed 003

#[test]
fn runtime_endpoints_added_removed_and_cycled_through_with_their_tags() {
    let stdout = run_example("examples/runtime-endpoints/run.sh");
    let got = answers(&stdout);
    let up = |i: usize| format!("200 upstream-{i} (127.0.0.1:830{i})");
    assert_eq!(
        got[..7],
        ["503 no healthy upstream", "200", &up(1), &up(1), "200", "503 no healthy upstream", "200"],
        "{stdout}"
    );
    // Six requests over three endpoints: each once, then again in the same order.
    let cycle = &got[7..13];
    let mut first_turn = cycle[..3].to_vec();
    first_turn.sort();
    assert_eq!(first_turn, [up(1), up(2), up(3)], "{stdout}");
    assert_eq!(cycle[3..], cycle[..3], "{stdout}");
    assert_eq!(
        got[13..],
        [
            r#"127.0.0.1:8301 zone=us-central1-a weight=50 envoy.lb={"canary": "false"}"#,
            r#"127.0.0.1:8302 zone=us-central1-b weight=50 envoy.lb={"canary": "false"}"#,
            r#"127.0.0.1:8303 zone=us-central1-b weight=50 envoy.lb={"canary": "true"}"#,
        ],
        "{stdout}"
    );
}

// ------------------------------------------------------------------ seed 000

#[test]
fn scaled_service_edge_cycles_through_every_replica_after_scaling() {
    let stdout = run_example("examples/scaled-service/run.sh");
    let got = answers(&stdout);
    let replica = |i: usize| {
        format!(
            r#"{{"hostname": "usersvc-{i}", "msg": "user health check OK", "ok": true, "resolvedname": "127.0.0.1:850{i}"}}"#
        )
    };
    assert_eq!(got[..3], [replica(1), replica(1), replica(1)], "{stdout}");
    let cycle = &got[3..];
    assert_eq!(cycle.len(), 6, "{stdout}");
    let mut first_turn = cycle[..3].to_vec();
    first_turn.sort();
    assert_eq!(first_turn, [replica(1), replica(2), replica(3)], "{stdout}");
    assert_eq!(cycle[3..], cycle[..3], "{stdout}");
}

// ------------------------------------------------------------------ seed 001

#[test]
fn sidecar_in_out_passes_trace_headers_to_the_backend_and_reports_spans_and_stats() {
    let stdout = run_example("examples/sidecar-in-out/run.sh");
    let got = answers(&stdout);
    assert_eq!(got.len(), 10, "{stdout}");
    let mut traces = Vec::new();
    for answer in &got[..5] {
        // frontend: trace T request R; backend says: backend: trace T request R
        let words: Vec<&str> = answer.split_whitespace().collect();
        let (trace, request) = (words[2], words[4].trim_end_matches(';'));
        assert_eq!(trace.len(), 16, "a 64-bit B3 trace id: {answer}");
        assert!(trace.chars().all(|c| c.is_ascii_hexdigit()), "{answer}");
        assert_eq!(
            *answer,
            format!(
                "frontend: trace {trace} request {request}; backend says: backend: trace {trace} request {request}"
            ),
            "the backend sees the frontend's trace"
        );
        traces.push(trace);
    }
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 5, "each request its own trace:\n{stdout}");
    assert_eq!(
        got[5..],
        [
            "backend SERVER backend",
            "frontend SERVER 127.0.0.1:8601",
            "frontend SERVER backend",
            r#"envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"} 5"#,
            r#"envoy_cluster_health_check_healthy{envoy_cluster_name="backend"} 1"#,
        ],
        "{stdout}"
    );
}
