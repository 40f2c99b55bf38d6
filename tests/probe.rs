//! Edge probing with real sockets, a real Envoy and the fake API server:
//! an endpoint that stops listening turns unreachable in `/status` and
//! `/metrics`, is published UNHEALTHY (Envoy stops sending it requests) and
//! comes back; a cluster none of whose endpoints answers is not marked and
//! says why; a source's summary names the broken link (API server down,
//! no pod matching, edges unreachable).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use devbridge::app::{Daemon, Options};
use devbridge::bootstrap::{bootstrap, to_yaml};
use devbridge::probe::plan::Pacing;
use devbridge::status::{ProbeState, Status};
use devbridge::xds::ResourceType;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message;
use support::fake_kube::{FakeKube, Kind, pod};
use support::kube::{EDGE, TOKEN, mk_options, mk_source};
use support::{Envoy, ProfileFile, eventually, free_port, http_get, loopback_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Probing every 200 ms, so state changes show within a second.
fn mk_probe_options() -> devbridge::probe::Options {
    devbridge::probe::Options {
        pacing: Pacing {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(150),
            max_per_round: 32,
            skip_loopback: false,
        },
        ..Default::default()
    }
}

fn mk_profile(port: u16, endpoints: &[SocketAddr]) -> String {
    mk_profile_with(port, endpoints, "")
}

/// [`mk_profile`] with `extra` keys in cluster `edge`.
fn mk_profile_with(port: u16, endpoints: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("{{ address = \"{a}\" }}")).collect();
    format!(
        "[zones.dev-local]\n[proxies.sidecar]\nzone = \"dev-local\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"x.test:{port}\"]\n\
         [[domains]]\nname = \"x.test:{port}\"\n[[domains.routes]]\ncluster = \"edge\"\n\
         [clusters.edge]\nconnect_timeout = \"250ms\"\n{extra}\nstatic.endpoints = [{}]\n",
        list.join(", ")
    )
}

/// A loopback HTTP server on `listener` answering `name` to every request.
fn serve(listener: TcpListener, name: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return; // a probe: connect and close
                }
                let reply =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}", name.len());
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    })
}

async fn status(admin: SocketAddr) -> Status {
    let r = http_get(admin, "admin", "/status", &[]).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_str(&r.body).unwrap()
}

async fn metric_lines(admin: SocketAddr, prefix: &str) -> Vec<String> {
    let r = http_get(admin, "admin", "/metrics", &[]).await.unwrap();
    r.body.lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

/// Waits until `/status` shows `cluster` with this summary; returns the status.
async fn wait_summary(admin: SocketAddr, cluster: &str, want: &str) -> Status {
    eventually(&format!("{cluster}: {want}"), 400, || async move {
        let s = status(admin).await;
        (s.probes.get(cluster).is_some_and(|p| p.summary == want)).then_some(s)
    })
    .await
}

/// The health status of each endpoint served to `sidecar` for `cluster`,
/// by address (0 UNKNOWN, 2 UNHEALTHY).
fn health(daemon: &Daemon, cluster: &str) -> Vec<(String, i32)> {
    let published = daemon.current();
    let r = &published.snapshots["sidecar"].resources(ResourceType::Endpoint).items[cluster];
    let cla = ClusterLoadAssignment::decode(r.body.value.as_slice()).unwrap();
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            use envoy_types::pb::envoy::config::core::v3::address::Address;
            use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else { panic!("no endpoint") };
            let Some(Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.as_ref()) else {
                panic!("no socket address")
            };
            let port = match sa.port_specifier {
                Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => p,
                _ => 0,
            };
            (format!("{}:{port}", sa.address), e.health_status)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `(address, health)` pairs in the order [`health`] gives them.
fn mk_health(pairs: &[(SocketAddr, i32)]) -> Vec<(String, i32)> {
    let set: std::collections::BTreeSet<_> = pairs.iter().map(|(a, h)| (a.to_string(), *h)).collect();
    set.into_iter().collect()
}

/// Sends `n` requests through Envoy (no retries); how many did not answer 200.
async fn failures(listener: SocketAddr, n: usize) -> usize {
    let mut failed = 0;
    for _ in 0..n {
        match http_get(listener, "x.test", "/", &[]).await {
            Ok(r) if r.status == 200 => {}
            _ => failed += 1,
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_stops_listening_is_unreachable_marked_unhealthy_and_comes_back() {
    let (l1, l2) = (loopback_listener().await, loopback_listener().await);
    let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let _u1 = serve(l1, "u1");
    let u2 = serve(l2, "u2");
    let port = free_port();
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    let file = ProfileFile::new("probe", &mk_profile(port, &[a1, a2]));
    let profile = file.load();
    let proxy = profile.proxies["sidecar"].clone();
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    let (xds_port, admin_addr) = (xds.local_addr().unwrap().port(), admin.local_addr().unwrap());
    let options = Options { probe: mk_probe_options(), ..file.options() };
    let daemon = Daemon::start_with(profile, xds, Some(admin), CancellationToken::new(), options).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    envoy.wait_listening(listener).await;

    let s = wait_summary(admin_addr, "edge", "healthy: 2/2 reachable").await;
    let edge = &s.probes["edge"];
    assert_eq!((edge.kind.as_str(), edge.endpoints, edge.reachable, edge.unreachable), ("tcp connect", 2, 2, 0));
    assert!(edge.results.iter().all(|r| r.state == ProbeState::Reachable && r.latency_ms.is_some()), "{edge:?}");
    assert_eq!(failures(listener, 20).await, 0);

    // u2 stops listening.
    u2.abort();
    let _ = u2.await;
    let s = wait_summary(admin_addr, "edge", "degraded: 1/2 reachable, 1 unreachable").await;
    let down = s.probes["edge"].results.iter().find(|r| r.address == a2.to_string()).unwrap();
    assert_eq!(down.state, ProbeState::Unreachable);
    assert_eq!(down.error.as_deref(), Some("connection refused (nothing listens on the port)"));
    assert!(down.since_ms.is_some() && down.last_ms.is_some(), "{down:?}");
    // The change is an event for the status page, naming the endpoint and why.
    let want = format!("{a2} unreachable (connection refused (nothing listens on the port))");
    eventually("the probe change as an event", 400, || async {
        status(admin_addr).await.events.into_iter().find(|e| e.kind == "probe" && e.text.contains(&want))
    })
    .await;
    let metrics = metric_lines(admin_addr, "devbridge_probe_endpoints").await;
    assert!(
        metrics.contains(&r#"devbridge_probe_endpoints{cluster="edge",state="unreachable"} 1"#.to_string()),
        "{metrics:?}"
    );
    assert!(
        metrics.contains(&r#"devbridge_probe_endpoints{cluster="edge",state="reachable"} 1"#.to_string()),
        "{metrics:?}"
    );
    let latency = metric_lines(admin_addr, "devbridge_probe_latency_seconds_count").await;
    assert!(latency.iter().any(|l| !l.ends_with(" 0")), "{latency:?}");

    // Two failures in a row while u1 answers: published UNHEALTHY, and Envoy
    // sends u2 nothing.
    eventually("u2 published unhealthy", 400, || async {
        (health(&daemon, "edge") == mk_health(&[(a1, 0), (a2, 2)])).then_some(())
    })
    .await;
    let note =
        wait_summary(admin_addr, "edge", "degraded: 1/2 reachable, 1 unreachable").await.probes["edge"].note.clone();
    assert_eq!(note.as_deref(), Some("1 published as unhealthy after 2 failed probes in a row: Envoy avoids it"));
    eventually("envoy to take u2 out", 400, || async {
        (envoy.stat("cluster.edge.membership_healthy").await == 1).then_some(())
    })
    .await;
    assert_eq!(failures(listener, 50).await, 0, "no request reaches the closed port");

    // u2 listens again on the same address: reachable, unmarked.
    let _u2 = serve(TcpListener::bind(a2).await.unwrap(), "u2");
    wait_summary(admin_addr, "edge", "healthy: 2/2 reachable").await;
    eventually("u2 published healthy again", 400, || async {
        (health(&daemon, "edge") == mk_health(&[(a1, 0), (a2, 0)])).then_some(())
    })
    .await;
    for ty in ResourceType::ALL {
        assert_eq!(daemon.metrics.nacks(ty), 0, "{} NACKs", ty.short());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_no_endpoint_reachable_is_not_marked_and_says_why() {
    let (a1, a2) = (SocketAddr::from(([127, 0, 0, 1], free_port())), SocketAddr::from(([127, 0, 0, 1], free_port())));
    let port = free_port();
    let file = ProfileFile::new("probe", &mk_profile(port, &[a1, a2]));
    let admin = loopback_listener().await;
    let admin_addr = admin.local_addr().unwrap();
    let options = Options { probe: mk_probe_options(), ..file.options() };
    let daemon =
        Daemon::start_with(file.load(), loopback_listener().await, Some(admin), CancellationToken::new(), options)
            .unwrap();
    let want = "2 endpoints listed, 0 reachable: connection refused (nothing listens on the port)";
    wait_summary(admin_addr, "edge", want).await;
    // Several rounds later, still nothing is marked.
    eventually("three more rounds", 400, || async {
        let s = status(admin_addr).await;
        let rounds = s.probes["edge"].results.iter().filter_map(|r| r.last_ms).min()?
            > s.probes["edge"].results[0].since_ms? + 600;
        rounds.then_some(())
    })
    .await;
    assert_eq!(health(&daemon, "edge"), mk_health(&[(a1, 0), (a2, 0)]));
    let s = status(admin_addr).await;
    assert_eq!(
        s.probes["edge"].note.as_deref(),
        Some("none reachable: nothing marked unhealthy; Envoy keeps trying them all")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_summary_names_the_broken_link() {
    let fake = FakeKube::start_new(TOKEN).await;
    let labels = &[("app", "edge-envoy")];
    fake.apply(Kind::Pods, pod("edge", "e1", labels, "127.0.0.1", &[("http", 9)], false));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path());
    let file = ProfileFile::new("kube", &mk_source(free_port(), &kubeconfig, &["edge"], EDGE));
    let admin = loopback_listener().await;
    let admin_addr = admin.local_addr().unwrap();
    let options = Options { probe: mk_probe_options(), follow: file.options().follow, ..mk_options() };
    let _daemon =
        Daemon::start_with(file.load(), loopback_listener().await, Some(admin), CancellationToken::new(), options)
            .unwrap();
    let summary = |want: &'static str| async move {
        eventually(want, 400, || async move {
            let s = status(admin_addr).await;
            let got = s.sources.first().map(|s| s.summary.clone()).unwrap_or_default();
            (got == want).then_some(())
        })
        .await
    };
    summary("0 pods match app=edge-envoy in edge (1 skipped: 1 not Ready)").await;

    // The pod becomes Ready on a port that answers.
    let edge = loopback_listener().await;
    let edge_port = edge.local_addr().unwrap().port();
    let server = serve(edge, "edge");
    fake.apply(Kind::Pods, pod("edge", "e1", labels, "127.0.0.1", &[("http", edge_port)], true));
    summary("healthy: 1/1 reachable").await;

    // The edge's port closes: listed, but not reachable.
    server.abort();
    let _ = server.await;
    summary("1 edge listed, 0 reachable (VPN or firewall?)").await;

    // And the API server goes too: "VPN down".
    fake.stop();
    summary("API server unreachable (VPN down?); serving 1 last known edge, 0 reachable").await;
}

/// The measurement in docs/benchmarks.md: two endpoints, one whose port is
/// closed, requests through a real Envoy without retries; failures with the
/// probes' marks and with `probe = false` (nothing marked). Printed; the
/// only assertions are that marks leave no failure and that without them
/// some requests fail (Envoy round-robins onto the closed port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_keeps_requests_off_a_closed_port_measured() {
    const N: usize = 200;
    let mut figures = Vec::new();
    for (label, extra) in [("probe marks (default)", ""), ("probe = false (no marks)", "probe = false")] {
        let l1 = loopback_listener().await;
        let a1 = l1.local_addr().unwrap();
        let _u1 = serve(l1, "u1");
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let port = free_port();
        let listener = SocketAddr::from(([127, 0, 0, 1], port));
        let file = ProfileFile::new("measure", &mk_profile_with(port, &[a1, closed], extra));
        let profile = file.load();
        let proxy = profile.proxies["sidecar"].clone();
        let xds = loopback_listener().await;
        let xds_port = xds.local_addr().unwrap().port();
        let options = Options { probe: mk_probe_options(), ..file.options() };
        let started = std::time::Instant::now();
        let daemon = Daemon::start_with(profile, xds, None, CancellationToken::new(), options).unwrap();
        let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
        envoy.wait_listening(listener).await;
        if extra.is_empty() {
            eventually("the closed port marked", 400, || async {
                (health(&daemon, "edge") == mk_health(&[(a1, 0), (closed, 2)])).then_some(())
            })
            .await;
            eventually("envoy to take it out", 400, || async {
                (envoy.stat("cluster.edge.membership_healthy").await == 1).then_some(())
            })
            .await;
        }
        let ready = started.elapsed();
        let failed = failures(listener, N).await;
        figures.push((label, failed, ready));
        if extra.is_empty() {
            assert_eq!(failed, 0, "marked: Envoy sends the closed port nothing");
        } else {
            assert!(failed > 0, "unmarked: round robin reaches the closed port");
        }
    }
    for (label, failed, ready) in figures {
        println!("{label:<28} {failed:>3} of {N} requests failed   (start to measuring: {ready:.1?})");
    }
}
