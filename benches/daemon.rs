//! Whole-daemon benchmark: the `devbridge` binary as a user runs it,
//! measured, not asserted. Run with `cargo bench --bench daemon` (Envoy from
//! `tests/run.sh`'s .venv, or DEVBRIDGE_ENVOY). Each figure is printed beside
//! its comparison, measured in the same run on the same machine:
//!
//! 1. start -> first config: `devbridge connect` spawned until an ADS client
//!    that speaks like Envoy holds CDS, EDS, LDS and RDS; beside it,
//!    `devbridge check` of the same profile (process start, read, parse,
//!    validate: the part of start-up that cannot be skipped). For the demo
//!    profile and for 2,000 routes with 10,000 endpoints.
//! 2. idle: CPU time and resident memory of a daemon over a quiet window, with
//!    1 and with 100 connected clients that ACK everything; beside it, a bare
//!    tonic ADS server (this binary, re-run in that mode) holding as many
//!    streams and answering nothing: the floor of the stack.
//! 3. restart: a real Envoy connected, a bounded request loop through it;
//!    the daemon is stopped (SIGTERM) and started again, and timed until the
//!    Envoy has re-ACKed all four types (read from `/status`). Failed
//!    requests are counted; beside it, the first start's time to the same
//!    state.
//!
//! `cargo bench --bench daemon -- start|idle|restart` runs one part;
//! `DEVBRIDGE_BENCH_BIN=PATH` measures that binary instead of the bench
//! profile's own build (the release build, whose code layout differs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use support::ads::envoy_request;
use support::{Envoy, free_port, http_get};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The binary measured: the bench profile's build, or `DEVBRIDGE_BENCH_BIN`
/// (e.g. `target/release/devbridge`, the build users run), read once and
/// made absolute so a child's working directory cannot change what runs.
static BIN: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
    let bin = std::env::var_os("DEVBRIDGE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_devbridge").into());
    std::fs::canonicalize(&bin).unwrap_or_else(|e| panic!("the binary to measure, {}: {e}", bin.display()))
});
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

const STARTS: usize = 20;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const RESTARTS: usize = 10;
/// The kernel's unit for utime/stime in /proc/PID/stat (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;
/// Set (to a listen address) when this binary runs as the bare tonic server.
const BARE_ENV: &str = "DEVBRIDGE_BENCH_BARE_TONIC";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if let Ok(addr) = std::env::var(BARE_ENV) {
        rt.block_on(bare_tonic(addr.parse().expect("listen address")));
        return;
    }
    // `cargo bench --bench daemon -- idle` runs one part; no name runs all.
    let parts: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        STATE.set(dir.path().join("state")).unwrap();
        if run("start") {
            let large = dir.path().join("large.toml");
            std::fs::write(&large, large_profile()).unwrap();
            println!("start -> first config (every type held by an Envoy-like client)");
            start_to_first_config("demo", "demo").await;
            start_to_first_config("2,000 routes, 10,000 endpoints", large.to_str().unwrap()).await;
        }
        if run("idle") {
            println!("\nidle over {} s (demo profile)", IDLE_WINDOW.as_secs());
            idle().await;
        }
        if run("restart") {
            println!("\nrestart under a request loop (real Envoy)");
            restart().await;
        }
    });
}

/// Every daemon's state directory (registered endpoints); main removes it.
static STATE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// A running `devbridge connect`, ended by SIGTERM on drop.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn spawn(profile: &str, xds: SocketAddr, admin: SocketAddr) -> Self {
        let child = Command::new(&*BIN)
            .args(["connect", profile, "--xds-listen", &xds.to_string(), "--admin-listen", &admin.to_string()])
            .env("XDG_CONFIG_HOME", "/nonexistent-devbridge-bench")
            .env("XDG_STATE_HOME", STATE.get().expect("set in main"))
            .env("DEVBRIDGE_LOG", "warn")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start devbridge");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit (bounded; SIGKILL past it).
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..500 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---- 1. start -> first config ---------------------------------------------

async fn start_to_first_config(label: &str, profile: &str) {
    let node = if profile == "demo" { "dev-proxy" } else { "p" };
    let mut served = Vec::new();
    let mut checked = Vec::new();
    for _ in 0..STARTS {
        let t = Instant::now();
        let out =
            Command::new(&*BIN).args(["check", profile]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
        assert!(out.status.success(), "check {profile}: {}", String::from_utf8_lossy(&out.stderr));
        checked.push(t.elapsed());

        let (xds, admin) = (loopback(free_port()), loopback(free_port()));
        let t = Instant::now();
        let daemon = Daemon::spawn(profile, xds, admin);
        let mut client = loop {
            match AdsClient::connect(xds, node).await {
                Some(c) => break c,
                None if t.elapsed() < Duration::from_secs(30) => tokio::time::sleep(Duration::from_millis(1)).await,
                None => panic!("devbridge did not serve xDS on {xds} within 30 s"),
            }
        };
        client.until_configured().await;
        served.push(t.elapsed());
        drop(daemon);
    }
    support::report(&format!("{label}: spawn -> all four types held"), served);
    support::report(&format!("{label}: `devbridge check` (comparison)"), checked);
}

/// An ADS client that behaves like Envoy: CDS and LDS by wildcard, EDS for
/// the EDS clusters CDS names, RDS for the route configurations LDS names,
/// every response ACKed.
struct AdsClient {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: tonic::Streaming<DiscoveryResponse>,
    node: String,
    /// Names subscribed per type (EDS, RDS).
    subs: BTreeMap<String, Vec<String>>,
    seen: BTreeSet<String>,
}

impl AdsClient {
    async fn connect(addr: SocketAddr, node: &str) -> Option<Self> {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await.ok()?;
        let (tx, rx) = mpsc::channel(16);
        tx.send(envoy_request(node, CDS, vec![], None)).await.ok()?;
        tx.send(envoy_request(node, LDS, vec![], None)).await.ok()?;
        let rx = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.ok()?.into_inner();
        Some(Self { tx, rx, node: node.to_string(), subs: BTreeMap::new(), seen: BTreeSet::new() })
    }

    /// Answers one response as Envoy would; `None` when the stream ended.
    async fn step(&mut self) -> Option<()> {
        let resp = self.rx.message().await.ok()??;
        let ty = resp.type_url.clone();
        // EDS and RDS are ACKed with the names subscribed, CDS and LDS by wildcard.
        let ack_names = self.subs.get(&ty).cloned().unwrap_or_default();
        self.tx.send(envoy_request(&self.node, &ty, ack_names, Some(&resp))).await.ok()?;
        match ty.as_str() {
            CDS => {
                let clusters = cluster_names(&resp);
                self.subscribe(EDS, clusters).await?;
            }
            LDS => {
                let routes = route_names(&resp);
                self.subscribe(RDS, routes).await?;
            }
            _ => {}
        }
        self.seen.insert(ty);
        Some(())
    }

    async fn subscribe(&mut self, ty: &str, names: Vec<String>) -> Option<()> {
        if names.is_empty() {
            self.seen.insert(ty.to_string());
            return Some(());
        }
        if self.subs.get(ty) == Some(&names) {
            return Some(());
        }
        self.subs.insert(ty.to_string(), names.clone());
        self.tx.send(envoy_request(&self.node, ty, names, None)).await.ok()
    }

    async fn until_configured(&mut self) {
        let all = [CDS, EDS, LDS, RDS];
        while !all.iter().all(|t| self.seen.contains(*t)) {
            tokio::time::timeout(Duration::from_secs(30), self.step())
                .await
                .expect("a response within 30 s")
                .expect("stream open");
        }
    }
}

fn cluster_names(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .filter_map(|any| Cluster::decode(any.value.as_slice()).ok())
        .filter(|c| c.eds_cluster_config.is_some())
        .map(|c| c.name)
        .collect()
}

fn route_names(resp: &DiscoveryResponse) -> Vec<String> {
    let mut names = BTreeSet::new();
    for l in resp.resources.iter().filter_map(|any| Listener::decode(any.value.as_slice()).ok()) {
        for filter in l.filter_chains.iter().flat_map(|c| &c.filters) {
            let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
                &filter.config_type
            else {
                continue;
            };
            if let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                && let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier
            {
                names.insert(rds.route_config_name);
            }
        }
    }
    names.into_iter().collect()
}

fn large_profile() -> String {
    const DOMAINS: usize = 100;
    const PORTS: usize = 10;
    const ROUTES: usize = 20;
    const CLUSTERS: usize = 100;
    const ENDPOINTS: usize = 100;
    let mut s = String::from("[zones.dev-local]\n[proxies.p]\nzone = \"dev-local\"\ndomains = [");
    s += &(0..DOMAINS).map(|d| format!("\"d{d}.test:{}\"", 20000 + d % PORTS)).collect::<Vec<_>>().join(", ");
    s += "]\n";
    for d in 0..DOMAINS {
        s += &format!("[[domains]]\nname = \"d{d}.test:{}\"\n", 20000 + d % PORTS);
        for r in 0..ROUTES {
            s += &format!("[[domains.routes]]\nprefix = \"/r{r}/\"\ncluster = \"c{}\"\n", (d * ROUTES + r) % CLUSTERS);
        }
    }
    for c in 0..CLUSTERS {
        s += &format!("[clusters.c{c}.static]\nendpoints = [\n");
        for e in 0..ENDPOINTS {
            s += &format!("  {{ address = \"127.1.{c}.{}:{}\", zone = \"z{}\" }},\n", e + 1, 8000 + e, e % 3);
        }
        s += "]\n";
    }
    s
}

// ---- 2. idle ----------------------------------------------------------------

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process alive");
    // Fields after the command name (which may hold spaces) start at state.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / TICKS_PER_SECOND
}

/// Resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process alive");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

async fn idle() {
    let (xds, admin) = (loopback(free_port()), loopback(free_port()));
    let daemon = Daemon::spawn("demo", xds, admin);
    let bare_addr = loopback(free_port());
    let mut bare = Command::new(std::env::current_exe().unwrap())
        .env(BARE_ENV, bare_addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut clients = Vec::new();
    let mut bare_clients = Vec::new();
    for n in [0usize, 1, 100] {
        while clients.len() < n {
            clients.push(connect_and_hold(xds, "dev-proxy").await);
            bare_clients.push(connect_and_hold(bare_addr, "dev-proxy").await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (pid, bare_pid) = (daemon.pid(), bare.id());
        let (before, bare_before) = (cpu_seconds(pid), cpu_seconds(bare_pid));
        tokio::time::sleep(IDLE_WINDOW).await;
        let cpu = (cpu_seconds(pid) - before) / IDLE_WINDOW.as_secs_f64() * 100.0;
        let bare_cpu = (cpu_seconds(bare_pid) - bare_before) / IDLE_WINDOW.as_secs_f64() * 100.0;
        println!(
            "{:<52} cpu {cpu:>6.2} % of a core   rss {:>6.1} MiB   (bare tonic: cpu {bare_cpu:.2} %, rss {:.1} MiB)",
            format!("devbridge, {n} connected clients"),
            rss_mib(pid),
            rss_mib(bare_pid),
        );
    }
    println!("  (CPU resolution: 1 tick = 0.01 s, {:.2} % over the window)", 1.0 / IDLE_WINDOW.as_secs_f64());
    let served: u64 = clients.iter().map(|c: &Held| c.responses.load(Ordering::Relaxed)).sum();
    println!("  ({served} responses answered by the daemon's clients)");
    drop(clients);
    drop(bare_clients);
    let _ = bare.kill();
    let _ = bare.wait();
    drop(daemon);
}

/// A client stream held open in its own task, answering like Envoy.
struct Held {
    responses: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect_and_hold(addr: SocketAddr, node: &str) -> Held {
    let responses = Arc::new(AtomicU64::new(0));
    let counter = responses.clone();
    let node = node.to_string();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut client = AdsClient::connect(addr, &node).await.expect("connect");
        let _ = ready_tx.send(());
        while client.step().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let _ = ready_rx.await;
    Held { responses, task }
}

/// The floor: a tonic ADS server that holds every stream and answers nothing.
async fn bare_tonic(addr: SocketAddr) {
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    };
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
    use tonic::{Request, Response, Status, Streaming};
    type Out<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;
    struct Bare;
    #[tonic::async_trait]
    impl AggregatedDiscoveryService for Bare {
        type StreamAggregatedResourcesStream = Out<DiscoveryResponse>;
        type DeltaAggregatedResourcesStream = Out<DeltaDiscoveryResponse>;
        async fn stream_aggregated_resources(
            &self,
            req: Request<Streaming<DiscoveryRequest>>,
        ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
            let mut inbound = req.into_inner();
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                while let Ok(Some(_)) = inbound.message().await {}
                drop(tx);
            });
            Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
        }
        async fn delta_aggregated_resources(
            &self,
            _: Request<Streaming<DeltaDiscoveryRequest>>,
        ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
            Err(Status::unimplemented("delta"))
        }
    }
    tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(Bare))
        .serve(addr)
        .await
        .unwrap();
}

// ---- 3. restart -------------------------------------------------------------

async fn restart() {
    let dir = tempfile::tempdir().unwrap();
    let (port, up) = (free_port(), free_port());
    // The cluster gives Envoy an EDS subscription; no request goes to it.
    let profile = dir.path().join("restart.toml");
    std::fs::write(
        &profile,
        format!(
            "[zones.dev-local]\n[proxies.p]\nzone = \"dev-local\"\nadmin = \"127.0.0.1:0\"\n\
             domains = [\"r.test:{port}\"]\n[[domains]]\nname = \"r.test:{port}\"\n\
             [[domains.routes]]\npath = \"/v\"\ndirect_response = {{ status = 200, body = \"v\" }}\n\
             [[domains.routes]]\nprefix = \"/up\"\ncluster = \"up\"\n\
             [clusters.up.static]\nendpoints = [{{ address = \"127.0.0.1:{up}\" }}]\n"
        ),
    )
    .unwrap();
    let profile = profile.to_str().unwrap().to_string();
    let (xds, admin) = (loopback(free_port()), loopback(free_port()));
    let bootstrap = Command::new(&*BIN)
        .args(["bootstrap", &profile, "--xds-address", &xds.to_string()])
        .output()
        .expect("devbridge bootstrap");
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
    let t = Instant::now();
    let mut daemon = Daemon::spawn(&profile, xds, admin);
    let envoy = Envoy::start(&String::from_utf8(bootstrap.stdout).unwrap()).await;
    wait_acked(admin, Duration::from_secs(30)).await;
    let first = t.elapsed();
    let listener = loopback(port);
    envoy.wait_listening(listener).await;

    let failed = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (failed, sent, stop) = (failed.clone(), sent.clone(), stop.clone());
        tokio::spawn(async move {
            // Bounded: at most 200,000 requests, and it ends when told.
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                match http_get(listener, "r.test", "/v", &[]).await {
                    Ok(r) if r.status == 200 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut samples = Vec::new();
    for _ in 0..RESTARTS {
        daemon.stop();
        let t = Instant::now();
        daemon = Daemon::spawn(&profile, xds, admin);
        wait_acked(admin, Duration::from_secs(30)).await;
        samples.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    support::report("restart -> Envoy re-ACKed all four types", samples);
    support::report("first start -> Envoy ACKed all four types (comparison)", vec![first]);
    println!(
        "  requests through Envoy during {RESTARTS} restarts: {} sent, {} failed",
        sent.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    drop(daemon);
    drop(envoy);
}

/// Polls `/status` until one Envoy holds every type at the version served.
async fn wait_acked(admin: SocketAddr, limit: Duration) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Ok(r) = http_get(admin, "admin", "/status", &[]).await
            && all_acked(&r.body)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no Envoy ACKed every type at {admin} within {limit:?}");
}

fn all_acked(body: &str) -> bool {
    let Ok(status) = serde_json::from_str::<serde_json::Value>(body) else { return false };
    let Some(envoys) = status["envoys"].as_array() else { return false };
    envoys.iter().any(|e| {
        let Some(proxy) = e["proxy"].as_str() else { return false };
        ["CDS", "EDS", "LDS", "RDS"].iter().all(|t| {
            let served = &status["proxies"][proxy]["types"][t];
            !served.is_null() && e["types"][t]["acked"] == *served
        })
    })
}
