//! The words a user reads first, for each state of a source.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::model::Probe;
use crate::probe::plan::Target;
use crate::profile::parse_profile;
use crate::status::SkippedReport;

fn mk_profile() -> Profile {
    parse_profile(
        "t.toml",
        "t",
        r#"
        [clusters.edge.kubernetes]
        namespace = "edge"
        selector = "app=edge-envoy"
        port = 80
        "#,
    )
    .expect("valid")
}

fn mk_source(state: SourceState, error: Option<String>, selected: usize) -> SourceReport {
    SourceReport {
        name: r#"pods "app=edge-envoy" in edge via context staging"#.into(),
        clusters: vec!["edge".into()],
        state,
        error,
        synced: true,
        seen: selected,
        selected,
        ..Default::default()
    }
}

/// A board where `edge` has `n` endpoints, the first `up` reachable and
/// the rest refused (`None`: not probed).
fn mk_probes(n: usize, up: Option<usize>) -> Probes {
    let mut b = Board::new(32);
    let addrs: Vec<SocketAddr> = (1..=n).map(|i| format!("10.0.0.{i}:80").parse().unwrap()).collect();
    b.set_targets(vec![Target {
        cluster: "edge".into(),
        probe: Probe::Tcp,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
        may_mark: true,
        endpoints: addrs.iter().map(|a| (*a, Some("z1".into()))).collect(),
        loopback_skipped: 0,
    }]);
    if let Some(up) = up {
        for (i, a) in addrs.iter().enumerate() {
            let r = if i < up { Ok(Duration::from_micros(1500)) } else { Err("connection refused".to_string()) };
            b.record("edge", *a, r, 1_000);
        }
    }
    Probes::of(&b, &b.marks())
}

fn summary(src: &SourceReport, probes: &Probes) -> String {
    source_summary(src, &mk_profile(), probes)
}

#[test]
fn the_api_server_down_is_said_first() {
    let error = KubeError::Unreachable { server: "https://10.0.0.1:6443".into(), reason: "timed out".into() };
    let src = mk_source(SourceState::Degraded, Some(error.to_string()), 3);
    assert_eq!(summary(&src, &Probes::default()), "API server unreachable (VPN down?)");
    assert_eq!(
        summary(&src, &mk_probes(3, Some(0))),
        "API server unreachable (VPN down?); serving 3 last known edges, 0 reachable"
    );
    let forbidden = KubeError::Forbidden {
        server: "https://10.0.0.1:6443".into(),
        verb: "list",
        resource: "pods",
        code: 403,
        message: "no".into(),
    };
    let src = mk_source(SourceState::Degraded, Some(forbidden.to_string()), 0);
    assert_eq!(summary(&src, &Probes::default()), "API server refuses access (RBAC or credentials?)");
}

#[test]
fn edges_listed_but_unreachable_blame_the_network() {
    let src = mk_source(SourceState::Connected, None, 3);
    assert_eq!(summary(&src, &mk_probes(3, Some(0))), "3 edges listed, 0 reachable (VPN or firewall?)");
    assert_eq!(summary(&src, &mk_probes(3, Some(2))), "degraded: 2/3 reachable");
    assert_eq!(summary(&src, &mk_probes(3, Some(3))), "healthy: 3/3 reachable");
    assert_eq!(summary(&src, &mk_probes(3, None)), "3 edges listed, not probed yet");
}

#[test]
fn no_matching_pod_says_why_each_was_skipped() {
    let mut src = mk_source(SourceState::Connected, None, 0);
    src.seen = 12;
    src.skipped = (0..12)
        .map(|i| SkippedReport { cluster: "edge".into(), object: format!("edge/edge-{i}"), reason: "not Ready".into() })
        .collect();
    assert_eq!(summary(&src, &mk_probes(0, None)), "0 pods match app=edge-envoy in edge (12 skipped: 12 not Ready)");
    src.skipped[0].reason = "terminating".into();
    assert_eq!(
        summary(&src, &mk_probes(0, None)),
        "0 pods match app=edge-envoy in edge (12 skipped: 11 not Ready, 1 terminating)"
    );
    src.skipped.clear();
    src.seen = 0;
    assert_eq!(summary(&src, &mk_probes(0, None)), "0 pods match app=edge-envoy in edge");
}

#[test]
fn a_source_not_yet_listed_is_connecting() {
    let mut src = mk_source(SourceState::Connecting, None, 0);
    src.synced = false;
    assert_eq!(summary(&src, &Probes::default()), "connecting to the API server");
}

#[test]
fn cluster_probes_list_each_endpoint_with_its_state() {
    let p = mk_probes(2, Some(1));
    let c = &p.clusters["edge"];
    assert_eq!(
        *c,
        ClusterProbes {
            kind: "tcp connect".into(),
            endpoints: 2,
            reachable: 1,
            unreachable: 1,
            note: None,
            summary: "degraded: 1/2 reachable, 1 unreachable".into(),
            results: vec![
                EndpointProbe {
                    address: "10.0.0.1:80".into(),
                    zone: Some("z1".into()),
                    state: ProbeState::Reachable,
                    latency_ms: Some(1.5),
                    error: None,
                    since_ms: Some(1_000),
                    last_ms: Some(1_000),
                },
                EndpointProbe {
                    address: "10.0.0.2:80".into(),
                    zone: Some("z1".into()),
                    state: ProbeState::Unreachable,
                    latency_ms: None,
                    error: Some("connection refused".into()),
                    since_ms: Some(1_000),
                    last_ms: Some(1_000),
                },
            ],
        }
    );
    assert_eq!(p.counts["edge"], Counts { endpoints: 2, reachable: 1, unreachable: 1, unknown: 0 });
}
