//! What one client may hold on the xDS and admin ports: a slowloris, silent
//! and half-open sockets are closed after the read timeout, one HTTP/2
//! connection gets at most the stream cap however many it opens, repeated
//! WARNs are rate-limited, and at the open-file limit the accept loop waits
//! instead of spinning. Every wait is bounded; no timing is asserted beyond
//! generous bounds.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use devbridge::accept::Limits;
use devbridge::app::{Daemon, Options};
use devbridge::profile::{Profile, parse_profile};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use support::{eventually, free_port, http_get, loopback_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Far longer than any read timeout used here: a socket still open by then
/// was never going to be closed.
const GENEROUS: Duration = Duration::from_secs(20);

const PROFILE: &str = "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:18556\"]\n[[domains]]\nname = \"a.test:18556\"\n\
     [[domains.routes]]\ncluster = \"c\"\n[clusters.c.static]\nendpoints = [{ address = \"127.0.0.1:9\" }]\n";

fn mk_profile() -> Profile {
    parse_profile("limits.toml", "limits", PROFILE).unwrap()
}

fn mk_limits(read_timeout: Duration) -> Limits {
    Limits { read_timeout, ..Limits::default() }
}

async fn mk_daemon(limits: Limits) -> Daemon {
    let options = Options { limits, ..Options::default() };
    Daemon::start_with(
        mk_profile(),
        loopback_listener().await,
        Some(loopback_listener().await),
        CancellationToken::new(),
        options,
    )
    .unwrap()
}

/// Waits (at most [`GENEROUS`]) for the daemon to close `s`; a read that
/// returns data is drained and waited past.
async fn closed_by_daemon(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(GENEROUS, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_on_the_admin_port_is_closed_after_the_read_timeout() {
    let daemon = mk_daemon(mk_limits(Duration::from_millis(300))).await;
    let admin = daemon.admin_addr.unwrap();
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: admin\r\n").await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // One header byte every 50 ms, for at most 20 s.
    let drip = tokio::spawn(async move {
        for i in 0..400 {
            if wr.write_all(if i % 8 == 7 { b"\r\n" } else { b"x-a: b" }).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = [0u8; 4096];
    let answer = tokio::time::timeout(GENEROUS, async {
        let mut got = Vec::new();
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the daemon must close a connection that never finishes its headers");
    // Closed, not answered: the request never completed.
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "{}", String::from_utf8_lossy(&answer));
    drip.abort();
    assert_eq!(http_get(admin, "admin", "/healthz", &[]).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_open_sockets_on_both_ports_are_closed_after_the_read_timeout() {
    let daemon = mk_daemon(mk_limits(Duration::from_millis(300))).await;
    let (xds, admin) = (daemon.xds_addr, daemon.admin_addr.unwrap());
    let mut sockets = Vec::new();
    for addr in [xds, admin] {
        for _ in 0..20 {
            sockets.push(TcpStream::connect(addr).await.unwrap());
        }
        // Half-open: the client closed its sending side and says nothing more.
        let half = TcpStream::connect(addr).await.unwrap();
        let half = half.into_std().unwrap();
        half.shutdown(std::net::Shutdown::Write).unwrap();
        sockets.push(TcpStream::from_std(half).unwrap());
    }
    // Half an HTTP/2 preface, then silence.
    let mut partial = TcpStream::connect(xds).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    sockets.push(partial);
    // All waited on at once, so the bound is GENEROUS in total.
    let waits: Vec<_> =
        sockets.into_iter().map(|mut s| tokio::spawn(async move { closed_by_daemon(&mut s).await })).collect();
    let mut still_open = 0;
    for w in waits {
        if !w.await.unwrap() {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "sockets the daemon left open");
    // An Envoy that speaks in time is served as before.
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{xds}")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(mk_request("p")).await.unwrap();
    let mut stream =
        client.stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let first = tokio::time::timeout(GENEROUS, stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.type_url, CDS);
}

fn mk_request(node_cluster: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: CDS.into(),
        node: Some(Node { id: "n-1".into(), cluster: node_cluster.into(), ..Default::default() }),
        ..Default::default()
    }
}

/// 1,000 ADS streams on one HTTP/2 connection, from a node no proxy
/// matches: the daemon serves at most the cap at once and logs one WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_gets_at_most_the_stream_cap_and_repeated_warnings_are_rate_limited() {
    support::logs::captured("info");
    let limits = Limits { max_streams_per_connection: 16, ..Limits::default() };
    let daemon = mk_daemon(limits).await;
    let client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", daemon.xds_addr)).await.unwrap();
    let mut tasks = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..1000 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.try_send(mk_request("nobody")).unwrap();
        senders.push(tx);
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let _stream = client.stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
            std::future::pending::<()>().await;
        }));
    }
    let active = || daemon.metrics.streams_active.load(Ordering::Relaxed);
    eventually("the first 16 streams to be served", 400, || {
        let n = active();
        async move { (n >= 16).then_some(()) }
    })
    .await;
    // However long the client keeps pushing, no more are served at once.
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(active());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(most, 16);
    assert_eq!(daemon.streams.all().len(), 16);
    let logs = support::logs::captured("info");
    let warned = logs.lines().filter(|l| l.contains("Envoy matches no proxy in the profile")).count();
    assert_eq!(warned, 1, "{logs}");
    for t in tasks {
        t.abort();
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): utime is the 14th, stime the 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// The daemon binary under a hard limit of 64 open files, 80 idle
/// connections to its admin port: it waits for a descriptor instead of
/// spinning on `EMFILE`, and serves again once they are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_file_limit_the_accept_loop_waits_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("limits.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let (xds_port, admin_port) = (free_port(), free_port());
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let mut daemon = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_devbridge"))
        .args(["connect", profile.to_str().unwrap(), "--xds-listen", &format!("127.0.0.1:{xds_port}")])
        .args(["--admin-listen", &admin.to_string()])
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        // The idle connections must outlive the measurement.
        .env("DEVBRIDGE_READ_TIMEOUT", "120s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the daemon to answer", 200, || async {
        http_get(admin, "admin", "/healthz", &[]).await.ok().filter(|r| r.status == 200)
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(TcpStream::connect(admin).await.unwrap());
    }
    // Let the daemon run into the limit, then measure what waiting costs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = daemon.id();
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(pid) - before;
    // Spinning costs a whole core (2 s of ticks); waiting costs next to nothing.
    assert!(used < clock_ticks_per_second() / 2, "the daemon used {used} ticks in 2 s at the fd limit");
    drop(idle);
    eventually("the daemon to serve again", 200, || async {
        http_get(admin, "admin", "/healthz", &[]).await.ok().filter(|r| r.status == 200)
    })
    .await;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let status = tokio::task::spawn_blocking(move || daemon.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}
