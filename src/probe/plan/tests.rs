//! Targets from what is served, rotation, state transitions, marks, words.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::model::{Discovered, EndpointSet, Published};
use crate::profile::parse_profile;

fn mk_published(src: &str, discovered: &[(&str, &[&str])]) -> Published {
    let profile = Arc::new(parse_profile("t.toml", "t", src).expect("valid"));
    let endpoint = |a: &&str| Endpoint {
        unhealthy: false,
        addr: a.parse().unwrap(),
        zone: Some("z1".into()),
        weight: None,
        metadata: Default::default(),
    };
    let endpoints: EndpointSet =
        discovered.iter().map(|(c, eps)| (c.to_string(), eps.iter().map(endpoint).collect())).collect();
    Published {
        profile,
        snapshots: BTreeMap::new(),
        discovered: Arc::new(Discovered { endpoints, changed: Default::default(), generation: 1 }),
        registered: Arc::new(EndpointSet::new()),
        changed_at: Instant::now(),
    }
}

const PROFILE: &str = r#"
    [zones.z]
    [proxies.a]
    zone = "z"
    domains = ["a.test:8080"]
    [[domains]]
    name = "a.test:8080"
    routes = [
        { prefix = "/edge", cluster = "edge" },
        { prefix = "/local", cluster = "local" },
        { prefix = "/hc", cluster = "checked" },
        { prefix = "/off", cluster = "off" },
        { prefix = "/names", cluster = "names" },
    ]
    [clusters.edge.kubernetes]
    selector = "app=edge"
    port = 80
    [clusters.local]
    static.endpoints = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", zone = "z" }]
    [clusters.checked]
    health_check = { path = "/healthz" }
    static.endpoints = [{ address = "127.0.0.1:9003" }]
    [clusters.off]
    probe = false
    static.endpoints = [{ address = "127.0.0.1:9004" }]
    [clusters.names]
    dns.hosts = ["edge.test:80"]
    [clusters.unused]
    static.endpoints = [{ address = "127.0.0.1:9005" }]
"#;

fn mk_target(cluster: &str, n: usize) -> Target {
    Target {
        cluster: cluster.into(),
        probe: Probe::Tcp,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
        may_mark: true,
        endpoints: (0..n).map(|i| (format!("10.0.{}.{}:80", i / 250, i % 250 + 1).parse().unwrap(), None)).collect(),
        loopback_skipped: 0,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn refused() -> Result<Duration, String> {
    Err("connection refused (nothing listens on the port)".into())
}

fn ok() -> Result<Duration, String> {
    Ok(Duration::from_millis(3))
}

#[test]
fn targets_are_the_used_clusters_with_a_probe_and_their_endpoints() {
    let p = mk_published(PROFILE, &[("edge", &["10.1.0.1:80", "10.1.0.2:80"])]);
    let t = targets(&p, &Pacing::default());
    let names: Vec<&str> = t.iter().map(|t| t.cluster.as_str()).collect();
    // Not `off` (probe = false), not `names` (DNS), not `unused` (no route).
    assert_eq!(names, ["checked", "edge", "local"]);
    assert_eq!(t[1].endpoints, [(addr("10.1.0.1:80"), Some("z1".into())), (addr("10.1.0.2:80"), Some("z1".into()))]);
    assert_eq!(t[2].endpoints, [(addr("127.0.0.1:9001"), None), (addr("127.0.0.1:9002"), Some("z".into()))]);
    assert_eq!((t[1].interval, t[1].timeout, t[1].may_mark), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, true));
    // A health check's path is probed; its cluster is Envoy's to judge.
    // With Envoy's Host: the cluster's name, unless the check names one.
    assert_eq!(t[0].probe, Probe::Http { path: "/healthz".into(), host: Some("checked".into()) });
    assert!(!t[0].may_mark);
}

#[test]
fn with_sidecars_in_containers_loopback_endpoints_are_not_probed_and_the_summary_says_why() {
    let p = mk_published(PROFILE, &[("edge", &["10.1.0.1:80", "127.0.0.1:80"])]);
    let pacing = Pacing { skip_loopback: true, ..Pacing::default() };
    let t = targets(&p, &pacing);
    // `local` has only loopback endpoints, `edge` one of two.
    assert_eq!((t[2].endpoints.len(), t[2].loopback_skipped), (0, 2));
    assert_eq!(t[1].endpoints, [(addr("10.1.0.1:80"), Some("z1".into()))]);
    let mut b = Board::new(32);
    b.set_targets(t);
    let jobs = b.due(0, 0);
    assert!(jobs.iter().all(|j| !j.addr.ip().is_loopback()), "{jobs:?}");
    assert_eq!(
        b.clusters["local"].summary(),
        "2 loopback endpoints not probed: the sidecars run in containers, whose loopback is their own"
    );
    assert_eq!(
        b.clusters["edge"].summary(),
        "1 endpoint, not probed yet; 1 loopback endpoint not probed: the sidecars run in containers, whose loopback is their own"
    );
    // Without containers, loopback is this machine's and is probed.
    assert_eq!(targets(&p, &Pacing::default())[2].endpoints.len(), 2);
}

#[test]
fn a_cluster_without_endpoints_costs_nothing() {
    let p = mk_published(PROFILE, &[]);
    let mut b = Board::new(32);
    b.set_targets(targets(&p, &Pacing::default()));
    let jobs = b.due(0, 0);
    assert!(jobs.iter().all(|j| j.cluster != "edge"), "{jobs:?}");
    assert_eq!(b.clusters["edge"].summary(), "no endpoints");
}

#[test]
fn a_small_cluster_is_probed_whole_each_interval() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 3)]);
    assert_eq!(b.next_due_ms(), Some(0));
    assert_eq!(b.due(1_000, 0).len(), 3);
    assert_eq!(b.due(5_000, 0).len(), 0, "not due before the interval");
    assert_eq!(b.next_due_ms(), Some(11_000));
    assert_eq!(b.due(11_000, 0).len(), 3);
}

#[test]
fn a_large_cluster_is_probed_in_turns_and_says_so() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 1_000)]);
    let mut seen = BTreeSet::new();
    for round in 0..32u64 {
        let jobs = b.due(round * 10_000, 0);
        assert_eq!(jobs.len(), 32, "never more than the cap in a round");
        seen.extend(jobs.iter().map(|j| j.addr));
    }
    assert_eq!(seen.len(), 1_000, "every endpoint probed within ceil(1000/32) rounds");
    assert_eq!(
        b.clusters["edge"].note(32, &Marks::new()).as_deref(),
        Some("1000 endpoints: at most 32 probed per round, in turns; each is probed every 32 rounds (about 5m 20s)")
    );
}

#[test]
fn state_changes_carry_since_when_latency_and_the_last_error() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 2)]);
    let a = addr("10.0.0.1:80");
    assert_eq!(b.record("edge", a, ok(), 100).map(|c| c.reach), Some(Reach::Reachable));
    assert_eq!(b.record("edge", a, ok(), 200), None, "no change, no event");
    let change = b.record("edge", a, refused(), 300).unwrap();
    assert_eq!(change.reach, Reach::Unreachable);
    assert_eq!(change.error.as_deref(), Some("connection refused (nothing listens on the port)"));
    let e = &b.clusters["edge"].endpoints[&a];
    assert_eq!(
        *e,
        EndpointState {
            zone: None,
            reach: Reach::Unreachable,
            since_ms: Some(300),
            last_ms: Some(300),
            latency: None,
            error: Some("connection refused (nothing listens on the port)".into()),
            failures: 1,
        }
    );
    b.record("edge", a, refused(), 400);
    assert_eq!(b.clusters["edge"].endpoints[&a].since_ms, Some(300), "since the state began");
    assert_eq!(b.record("edge", addr("10.9.9.9:80"), ok(), 500), None, "an endpoint not probed is ignored");
}

#[test]
fn targets_keep_the_state_of_endpoints_that_stay() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 2)]);
    b.due(0, 0);
    b.record("edge", addr("10.0.0.1:80"), ok(), 100);
    b.record("edge", addr("10.0.0.2:80"), refused(), 100);
    let mut t = mk_target("edge", 1);
    t.endpoints.push((addr("10.0.0.3:80"), None));
    b.set_targets(vec![t]);
    let s = &b.clusters["edge"];
    assert_eq!(s.endpoints[&addr("10.0.0.1:80")].reach, Reach::Reachable);
    assert!(!s.endpoints.contains_key(&addr("10.0.0.2:80")), "gone: forgotten");
    assert_eq!(s.endpoints[&addr("10.0.0.3:80")].reach, Reach::Unknown);
    assert_eq!(b.next_due_ms(), Some(0), "a new endpoint is probed at once");
    assert_eq!(s.summary(), "healthy: 1/2 reachable, 1 not probed yet");
}

#[test]
fn two_failures_mark_an_endpoint_while_another_is_reachable() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 2)]);
    let (a, c) = (addr("10.0.0.1:80"), addr("10.0.0.2:80"));
    b.record("edge", a, ok(), 1);
    b.record("edge", c, refused(), 1);
    assert_eq!(b.marks(), Marks::new(), "one failure is not enough");
    b.record("edge", c, refused(), 2);
    assert_eq!(b.marks(), Marks::from([("edge".to_string(), BTreeSet::from([c]))]));
    let s = &b.clusters["edge"];
    assert_eq!(s.summary(), "degraded: 1/2 reachable, 1 unreachable");
    assert_eq!(
        s.note(32, &b.marks()).as_deref(),
        Some("1 published as unhealthy after 2 failed probes in a row: Envoy avoids it")
    );
    b.record("edge", c, ok(), 3);
    assert_eq!(b.marks(), Marks::new(), "one answer clears it");
}

#[test]
fn nothing_is_marked_when_no_endpoint_is_reachable() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 2)]);
    for t in 0..3 {
        b.record("edge", addr("10.0.0.1:80"), Err("no answer within 2s (dropped: VPN or firewall?)".into()), t);
        b.record("edge", addr("10.0.0.2:80"), refused(), t);
    }
    assert_eq!(b.marks(), Marks::new());
    let s = &b.clusters["edge"];
    assert_eq!(s.summary(), "2 endpoints listed, 0 reachable (VPN or firewall?)");
    assert_eq!(
        s.note(32, &b.marks()).as_deref(),
        Some(
            "none reachable: nothing marked unhealthy (most likely this machine's own network: VPN down?); Envoy keeps trying them all"
        )
    );
}

#[test]
fn one_shared_error_is_named_in_the_summary() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 2)]);
    b.record("edge", addr("10.0.0.1:80"), refused(), 1);
    b.record("edge", addr("10.0.0.2:80"), refused(), 1);
    assert_eq!(
        b.clusters["edge"].summary(),
        "2 endpoints listed, 0 reachable: connection refused (nothing listens on the port)"
    );
}

#[test]
fn a_cluster_with_its_own_health_check_is_never_marked() {
    let mut b = Board::new(32);
    let mut t = mk_target("edge", 2);
    t.may_mark = false;
    b.set_targets(vec![t]);
    b.record("edge", addr("10.0.0.1:80"), ok(), 1);
    for t in 0..3 {
        b.record("edge", addr("10.0.0.2:80"), refused(), t);
    }
    assert_eq!(b.marks(), Marks::new());
    assert_eq!(
        b.clusters["edge"].note(32, &Marks::new()).as_deref(),
        Some("the cluster's own health check decides in Envoy; probes mark nothing")
    );
}

#[test]
fn a_changed_probe_starts_over() {
    let mut b = Board::new(32);
    b.set_targets(vec![mk_target("edge", 1)]);
    b.due(0, 0);
    b.record("edge", addr("10.0.0.1:80"), ok(), 1);
    let mut t = mk_target("edge", 1);
    t.probe = Probe::Http { path: "/healthz".into(), host: None };
    b.set_targets(vec![t]);
    assert_eq!(b.clusters["edge"].endpoints[&addr("10.0.0.1:80")].reach, Reach::Unknown);
    assert_eq!(b.next_due_ms(), Some(0));
    assert_eq!(b.clusters["edge"].summary(), "1 endpoint, not probed yet");
}
