//! devbridge + real proxyless gRPC clients (Python's `grpcio`, which reads
//! xDS itself: no Envoy): a client dialling `xds:///greeter` is served an
//! API listener, its route configuration, EDS clusters and endpoints; calls
//! spread over both backends, follow an endpoint removed from the profile,
//! and honour a weighted split. A target the profile does not serve shows
//! in the stream's report.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use devbridge::app::Daemon;
use devbridge::bootstrap::{XdsTarget, grpc_bootstrap, select_proxy_of};
use devbridge::model::ProxyKind;
use devbridge::xds::ResourceType;
use support::{ProfileFile, envoy_binary, eventually, free_port, loopback_listener};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

/// The virtualenv's Python, beside its Envoy (`tests/run.sh` installs both).
fn python() -> PathBuf {
    envoy_binary().with_file_name("python")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxyless/greeter.py")
}

/// A greeter backend answering every call with its name; killed on drop.
struct Greeter(#[allow(dead_code)] Child);

impl Greeter {
    async fn start(port: u16, name: &str) -> Self {
        let mut child = Command::new(python())
            .arg(script())
            .args(["serve", &port.to_string(), name])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python from the test virtualenv (tests/run.sh installs grpcio)");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = out.next_line().await.unwrap();
        assert_eq!(line.as_deref(), Some("serving"), "greeter {name} did not start");
        Self(child)
    }
}

/// A proxyless client on one channel; each round makes `n` calls and says
/// who answered and which errors came back.
struct Client {
    _child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Round {
    answers: BTreeMap<String, u32>,
    errors: BTreeMap<String, u32>,
}

impl Client {
    fn start(bootstrap: &Path, target: &str) -> Self {
        let mut child = Command::new(python())
            .arg(script())
            .args(["client", target])
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python from the test virtualenv");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { _child: child, stdin, out }
    }

    async fn ask(&mut self, n: u32) {
        self.stdin.write_all(format!("{n}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn answer(&mut self) -> Round {
        let line = self.out.next_line().await.unwrap().expect("the client answers each round");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    async fn calls(&mut self, n: u32) -> Round {
        self.ask(n).await;
        self.answer().await
    }

    /// Rounds of `n` calls until one satisfies `done` (at most 50 rounds).
    async fn until(&mut self, what: &str, n: u32, done: impl Fn(&Round) -> bool) -> Round {
        let mut last = Round::default();
        for _ in 0..50 {
            last = self.calls(n).await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what}: the last round was {last:?}");
    }
}

fn profile_text(greeters: &[u16], one: u16, three: u16) -> String {
    let endpoints: Vec<String> = greeters.iter().map(|p| format!("{{ address = \"127.0.0.1:{p}\" }}")).collect();
    format!(
        r#"
[zones.dev-local]

[proxies.app]
zone = "dev-local"
kind = "grpc"
domains = ["greeter:50051", "split:50051"]

[[domains]]
name = "greeter:50051"

[[domains.routes]]
prefix = "/greeter.Greeter/"
cluster = "greeter"
timeout = "3s"
retries = {{ count = 2, on = ["unavailable"] }}

[[domains]]
name = "split:50051"

[[domains.routes]]
prefix = "/"
weighted_clusters = [{{ cluster = "one", weight = 3 }}, {{ cluster = "three", weight = 1 }}]

[clusters.greeter.static]
endpoints = [{endpoints}]

[clusters.one.static]
endpoints = [{{ address = "127.0.0.1:{one}" }}]

[clusters.three.static]
endpoints = [{{ address = "127.0.0.1:{three}" }}]
"#,
        endpoints = endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxyless_grpc_client_follows_routes_endpoints_and_splits() {
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let _one = Greeter::start(p1, "one").await;
    let _two = Greeter::start(p2, "two").await;
    let _three = Greeter::start(p3, "three").await;
    let file = ProfileFile::new("proxyless", &profile_text(&[p1, p2], p1, p3));
    let profile = file.load();
    let proxy = select_proxy_of(&profile, None, ProxyKind::Grpc).unwrap().clone();
    let xds = loopback_listener().await;
    let port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start_with(profile, xds, None, CancellationToken::new(), file.options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("grpc-bootstrap.json");
    let value = grpc_bootstrap(&proxy, &XdsTarget::Tcp { host: "127.0.0.1".into(), port }, None);
    std::fs::write(&bootstrap, serde_json::to_vec_pretty(&value).unwrap()).unwrap();

    // Round robin over both backends, reached by the host alone.
    let mut greeter = Client::start(&bootstrap, "xds:///greeter");
    greeter.until("both backends to answer", 20, |r| r.errors.is_empty() && r.answers.len() == 2).await;
    let spread = greeter.calls(40).await;
    assert!(spread.errors.is_empty(), "{spread:?}");
    assert_eq!(spread.answers.values().sum::<u32>(), 40);
    assert!(spread.answers.values().all(|n| *n >= 10), "round robin spreads the calls: {spread:?}");

    // One backend leaves the profile: the same channel sends every call to the other.
    file.edit(&daemon, &profile_text(&[p1], p1, p3)).await;
    greeter.until("only the remaining backend to answer", 20, |r| r.answers.keys().eq(["one"])).await;
    let after = greeter.calls(40).await;
    assert_eq!(after.answers, BTreeMap::from([("one".to_string(), 40)]), "{after:?}");

    // A weighted split, 3 to 1, on another target (by host and port).
    let mut split = Client::start(&bootstrap, "xds:///split:50051");
    split.until("the split to answer", 10, |r| r.errors.is_empty() && !r.answers.is_empty()).await;
    let shares = split.calls(400).await;
    assert!(shares.errors.is_empty(), "{shares:?}");
    let (one, three) =
        (shares.answers.get("one").copied().unwrap_or(0), shares.answers.get("three").copied().unwrap_or(0));
    assert_eq!(one + three, 400, "{shares:?}");
    assert!((240..=360).contains(&one), "3:1 split of 400 calls gave {one} to one, {three} to three");

    // A target nobody declared is reported on the client's stream.
    let mut lost = Client::start(&bootstrap, "xds:///nothing");
    lost.ask(1).await;
    let report = eventually("the missing target in the stream report", 200, || async {
        daemon.streams.all().into_iter().find(|s| s.types.get("LDS").is_some_and(|t| t.missing == ["nothing"]))
    })
    .await;
    assert_eq!(report.proxy.as_deref(), Some("app"));
    let failed = lost.answer().await;
    assert_eq!(failed.errors.values().sum::<u32>(), 1, "{failed:?}");

    let streams = daemon.streams.all();
    assert_eq!(streams.len(), 3, "{streams:?}");
    for s in &streams {
        assert_eq!(s.protocol, "sotw");
        assert_eq!(s.proxy.as_deref(), Some("app"));
        let agent = &s.node.as_ref().unwrap().user_agent;
        // `gRPC C-core linux Python C-core 58.0.0 Python 1.85.3`, say.
        assert!(agent.starts_with("gRPC") && agent.contains("Python"), "{agent}");
        assert!(s.types.values().all(|t| t.last_nack.is_none()), "{s:?}");
    }
    for ty in ResourceType::ALL {
        assert_eq!(daemon.metrics.nacks(ty), 0, "{} NACKs", ty.short());
    }
}
