//! The probes as `/status` shows them: per cluster ([`ClusterProbes`]) and
//! folded into each discovery source's one-line summary. Pure; outside the
//! layering test's core only because the status schema sits beside its
//! client.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Board, Counts, Marks, Reach, plural};
use crate::discovery::error::KubeError;
use crate::model::{Profile, Source};
use crate::status::{ClusterProbes, EndpointProbe, ProbeState, SourceReport, SourceState};

/// What the prober publishes: every probed cluster, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probes {
    pub clusters: BTreeMap<String, ClusterProbes>,
    /// What each cluster counts, for `/metrics`.
    pub counts: BTreeMap<String, Counts>,
}

impl Probes {
    /// The board as `/status` shows it, `marks` being what the builder is told.
    pub fn of(board: &Board, marks: &Marks) -> Self {
        let mut clusters = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (name, s) in &board.clusters {
            let c = s.counts();
            let results = s
                .target
                .endpoints
                .iter()
                .take(super::plan::MAX_LISTED)
                .filter_map(|(addr, _)| s.endpoints.get(addr).map(|e| (addr, e)))
                .map(|(addr, e)| EndpointProbe {
                    address: addr.to_string(),
                    zone: e.zone.clone(),
                    state: match e.reach {
                        Reach::Unknown => ProbeState::Unknown,
                        Reach::Reachable => ProbeState::Reachable,
                        Reach::Unreachable => ProbeState::Unreachable,
                    },
                    latency_ms: e.latency.map(|l| l.as_secs_f64() * 1000.0),
                    error: e.error.clone(),
                    since_ms: e.since_ms,
                    last_ms: e.last_ms,
                })
                .collect();
            clusters.insert(
                name.clone(),
                ClusterProbes {
                    kind: s.target.probe.describe(),
                    endpoints: c.endpoints,
                    reachable: c.reachable,
                    unreachable: c.unreachable,
                    note: s.note(board.max_per_round, marks),
                    summary: s.summary(),
                    results,
                },
            );
            counts.insert(name.clone(), c);
        }
        Self { clusters, counts }
    }

    /// The counts of these clusters together (each once).
    fn total<'a>(&self, clusters: impl IntoIterator<Item = &'a String>) -> Option<Counts> {
        let names: BTreeSet<&String> = clusters.into_iter().collect();
        let mut total = None::<Counts>;
        for n in names {
            if let Some(c) = self.counts.get(n) {
                total.get_or_insert_with(Counts::default).add(*c);
            }
        }
        total
    }
}

/// A discovery source's state in words, API server and probes together:
/// the line a user reads first.
pub fn source_summary(src: &SourceReport, profile: &Profile, probes: &Probes) -> String {
    let edges = probes.total(&src.clusters);
    let api = match src.state {
        SourceState::Degraded => Some(api_trouble(src.error.as_deref().unwrap_or_default())),
        SourceState::Connecting if !src.synced => return "connecting to the API server".to_string(),
        _ => None,
    };
    if let Some(api) = api {
        return match edges {
            Some(c) if c.endpoints > 0 => {
                format!("{api}; serving {} last known {}, {}", c.endpoints, plural(c.endpoints, "edge"), reach_words(c))
            }
            _ => api,
        };
    }
    if src.selected == 0 {
        return nothing_matches(src, profile);
    }
    match edges {
        None => format!("{} {} listed (not probed)", src.selected, plural(src.selected, "edge")),
        Some(c) if c.endpoints == 0 => nothing_matches(src, profile),
        Some(c) if c.unknown == c.endpoints => {
            format!("{} {} listed, not probed yet", c.endpoints, plural(c.endpoints, "edge"))
        }
        Some(c) if c.reachable == c.endpoints => format!("healthy: {}/{} reachable", c.reachable, c.endpoints),
        Some(c) if c.reachable == 0 => {
            format!("{} {} listed, 0 reachable (VPN or firewall?)", c.endpoints, plural(c.endpoints, "edge"))
        }
        Some(c) => format!("degraded: {}/{} reachable", c.reachable, c.endpoints),
    }
}

fn reach_words(c: Counts) -> String {
    match c {
        _ if c.unknown == c.endpoints => "not probed yet".to_string(),
        _ if c.reachable == c.endpoints => "all reachable".to_string(),
        _ => format!("{} reachable", c.reachable),
    }
}

/// The API server's trouble in a few words, from the source's error
/// (`KubeError`'s text: the source keeps only its words).
fn api_trouble(error: &str) -> String {
    let unreachable = KubeError::Unreachable { server: String::new(), reason: String::new() }.to_string();
    let prefix = |e: &str| e.split(' ').take(4).collect::<Vec<_>>().join(" ");
    if error.starts_with(&prefix(&unreachable)) {
        "API server unreachable (VPN down?)".to_string()
    } else if error.contains(" refused to let us ") {
        "API server refuses access (RBAC or credentials?)".to_string()
    } else if error.starts_with("cannot ") {
        "cannot reach the API server: kubeconfig or context problem".to_string()
    } else {
        "API server failing".to_string()
    }
}

/// `0 pods match app=edge-envoy in edge (12 skipped: 12 not Ready)`.
fn nothing_matches(src: &SourceReport, profile: &Profile) -> String {
    let what = src
        .clusters
        .iter()
        .filter_map(|c| profile.clusters.get(c))
        .find_map(|c| match &c.source {
            Source::Kubernetes(k) => {
                // The watch's name says which of the namespaces it reads.
                let ns = src
                    .name
                    .strip_prefix(&format!("pods {:?}", k.selector))
                    .and_then(|r| r.split(" in ").nth(1))
                    .and_then(|r| r.split(" via ").next())
                    .map_or_else(|| k.namespaces.join(", "), str::to_string);
                Some(format!("0 pods match {} in {ns}", k.selector))
            }
            Source::KubernetesService(s) => Some(format!("0 ready endpoints in service {}/{}", s.namespace, s.service)),
            _ => None,
        })
        .unwrap_or_else(|| format!("0 of {} objects give an endpoint", src.seen));
    let mut reasons: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &src.skipped {
        reasons.entry(&s.reason).or_default().insert(&s.object);
    }
    if reasons.is_empty() {
        return what;
    }
    let objects: BTreeSet<&str> = reasons.values().flatten().copied().collect();
    let mut by_count: Vec<(usize, &str)> = reasons.iter().map(|(r, o)| (o.len(), *r)).collect();
    by_count.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let list: Vec<String> = by_count.iter().map(|(n, r)| format!("{n} {r}")).collect();
    format!("{what} ({} skipped: {})", objects.len(), list.join(", "))
}

#[cfg(test)]
mod tests;
