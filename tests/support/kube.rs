//! Helpers for discovery tests: a daemon on a fake API server, what it
//! serves, and its sources' status.

use std::sync::Arc;
use std::time::Duration;

use devbridge::app::Daemon;
use devbridge::discovery::{Options, SourceState, SourceStatus};
use devbridge::model::Published;
use devbridge::profile::{Profile, parse_profile};
use devbridge::xds::ResourceType;
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use prost::Message;

use super::eventually;

/// A fake server's bearer token: it must never reach a log line.
pub const TOKEN: &str = "sekrit-7f3a9c1e-never-log-me";

/// A daemon's options with [`mk_discovery_options`].
pub fn mk_options() -> devbridge::app::Options {
    devbridge::app::Options { discovery: mk_discovery_options(), ..Default::default() }
}

/// Short timeouts so faults show in seconds, not minutes.
pub fn mk_discovery_options() -> Options {
    Options {
        watch_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(300),
        probe_interval: Duration::from_millis(100),
        // Off: a test that wants a relist asks for one.
        clock_check_interval: Duration::from_secs(3600),
        clock_jump: Duration::from_secs(3600),
    }
}

/// Cluster `edge`: the pods labelled `app=edge-envoy` in namespace `edge`,
/// port `http`, through the kubeconfig `{kc}` (for [`mk_profile`]).
pub const EDGE: &str = r#"
[clusters.edge.kubernetes]
kubeconfig = "{kc}"
namespace = "edge"
selector = "app=edge-envoy"
port = "http"
"#;

/// A profile whose proxy `sidecar` listens on `port` and routes
/// `/c/<cluster>` to each cluster; `clusters` is TOML, where `{kc}` stands
/// for the kubeconfig path.
pub fn mk_profile(port: u16, kubeconfig: &str, names: &[&str], clusters: &str) -> Profile {
    let src = mk_source(port, kubeconfig, names, clusters);
    parse_profile("kube.toml", "kube", &src).unwrap_or_else(|e| panic!("invalid test profile:\n{e}"))
}

/// [`mk_profile`]'s TOML.
pub fn mk_source(port: u16, kubeconfig: &str, names: &[&str], clusters: &str) -> String {
    let mut src = format!(
        "[zones.dev-local]\n[proxies.sidecar]\nzone = \"dev-local\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"x.test:{port}\"]\n[[domains]]\nname = \"x.test:{port}\"\n"
    );
    for n in names {
        src += &format!("[[domains.routes]]\nprefix = \"/c/{n}\"\ncluster = \"{n}\"\n");
    }
    src += &clusters.replace("{kc}", kubeconfig);
    src
}

/// The endpoints served to `sidecar` for `cluster`: `ip:port`, with
/// `@zone` when the endpoint has one.
pub fn served(daemon: &Daemon, cluster: &str) -> Vec<String> {
    served_in(&daemon.current(), cluster)
}

/// [`served`], in one published state.
pub fn served_in(published: &Published, cluster: &str) -> Vec<String> {
    let Some(snapshot) = published.snapshots.get("sidecar") else { return vec![] };
    let Some(r) = snapshot.resources(ResourceType::Endpoint).items.get(cluster) else { return vec![] };
    let cla = ClusterLoadAssignment::decode(r.body.value.as_slice()).unwrap();
    let mut out = Vec::new();
    for l in &cla.endpoints {
        for e in &l.lb_endpoints {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else { continue };
            let Some(Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.as_ref()) else {
                continue;
            };
            let port = match sa.port_specifier {
                Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => p,
                _ => 0,
            };
            let zone =
                l.locality.as_ref().filter(|l| !l.zone.is_empty()).map(|l| format!("@{}", l.zone)).unwrap_or_default();
            out.push(format!("{}:{port}{zone}", sa.address));
        }
    }
    out
}

/// Waits until `cluster` serves exactly `want`.
pub async fn wait_served(daemon: &Daemon, cluster: &str, want: &[&str]) {
    eventually(&format!("{cluster} to serve {want:?}"), 400, || async move {
        (served(daemon, cluster) == want).then_some(())
    })
    .await;
}

/// Waits until the sources' status satisfies `f`; returns it.
pub async fn wait_sources(daemon: &Daemon, what: &str, f: impl Fn(&[SourceStatus]) -> bool) -> Vec<SourceStatus> {
    let rx = daemon.sources();
    let f = Arc::new(f);
    eventually(what, 400, || {
        let s = rx.borrow().clone();
        let f = f.clone();
        async move { f(&s).then_some(s) }
    })
    .await
}

pub fn connected(s: &[SourceStatus]) -> bool {
    !s.is_empty() && s.iter().all(|s| matches!(s.state, SourceState::Connected { .. }))
}

pub fn degraded(s: &[SourceStatus]) -> bool {
    !s.is_empty() && s.iter().all(SourceStatus::is_degraded)
}

/// The `devbridge_source_events_total` and `devbridge_source_errors_total`
/// samples of a daemon's `/metrics`, by (metric, source). Read by hand: the
/// source names hold quotes, whose escapes a Prometheus text parser may not undo.
pub async fn source_counters(admin: std::net::SocketAddr) -> std::collections::BTreeMap<(String, String), u64> {
    let r = super::http_get(admin, "admin", "/metrics", &[]).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    r.body
        .lines()
        .filter(|l| l.starts_with("devbridge_source_"))
        .map(|l| {
            let sample = || -> Option<((String, String), u64)> {
                let (metric, rest) = l.split_once("{source=\"")?;
                let (label, value) = rest.rsplit_once("\"} ")?;
                let source = label.replace("\\\"", "\"").replace("\\\\", "\\");
                Some(((metric.to_string(), source), value.parse().ok()?))
            };
            sample().unwrap_or_else(|| panic!("not a source sample: {l}"))
        })
        .collect()
}
