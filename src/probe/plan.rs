//! What to probe and what the probes found: pure, no runtime.
//!
//! [`targets`] reads a [`Published`] into the endpoints each probed
//! cluster has. A [`Board`] keeps every endpoint's state across rounds: it
//! says which endpoints are due (at most [`DEFAULT_MAX_PER_ROUND`] of a
//! cluster per round, rotating through a larger set, so thousands of edges
//! never become a probe storm), takes each result, and tells which
//! endpoints may be published as unhealthy ([`Board::marks`]).
//!
//! Times are milliseconds on a caller-given clock, so tests drive it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::{Endpoint, Probe, Published, Source};

/// How often each endpoint of a cluster is probed, unless the cluster says.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// How long one probe may take: well under the interval, so a round that
/// meets only silence ends long before the next.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many endpoints of one cluster per round; a larger cluster
/// is probed in turns.
pub const DEFAULT_MAX_PER_ROUND: usize = 32;
/// Consecutive failed probes before an endpoint may be published unhealthy.
pub const UNHEALTHY_AFTER: u32 = 2;
/// At most this many endpoints per cluster are listed in `/status`.
pub const MAX_LISTED: usize = 256;

/// The daemon's pacing, which a cluster's `probe` table may override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacing {
    pub interval: Duration,
    pub timeout: Duration,
    pub max_per_round: usize,
    /// The sidecars run in containers (`connect --for docker`): a loopback
    /// endpoint is on the container's own loopback, which a probe from this
    /// machine cannot reach, so it is not probed (and never marked).
    pub skip_loopback: bool,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            max_per_round: DEFAULT_MAX_PER_ROUND,
            skip_loopback: false,
        }
    }
}

/// One probed cluster: how, how often, and its endpoints now.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub cluster: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Whether probe results may mark its endpoints unhealthy: not when the
    /// cluster has its own active health check (Envoy's checks govern).
    pub may_mark: bool,
    /// In the cluster's order, each address once.
    pub endpoints: Vec<(SocketAddr, Option<String>)>,
    /// Loopback endpoints left out ([`Pacing::skip_loopback`]).
    pub loopback_skipped: usize,
}

/// The clusters some proxy uses that have a probe, with the endpoints
/// `published` gives them: static ones from the profile, the others as the
/// builder took them (registered winning over discovered).
pub fn targets(published: &Published, pacing: &Pacing) -> Vec<Target> {
    let profile = &published.profile;
    let mut used: Vec<&crate::model::Cluster> = profile.proxies.values().flat_map(|p| profile.clusters_of(p)).collect();
    used.sort_by(|a, b| a.name.cmp(&b.name));
    used.dedup_by(|a, b| a.name == b.name);
    used.into_iter()
        .filter_map(|c| {
            let spec = c.probe.as_ref()?;
            let eps: Vec<&Endpoint> = match &c.source {
                Source::Static(eps) => eps.iter().collect(),
                Source::Dns { .. } => return None,
                _ => published
                    .registered
                    .get(&c.name)
                    .or_else(|| published.discovered.endpoints.get(&c.name))
                    .map_or_else(Vec::new, |e| e.iter().collect()),
            };
            let mut seen = BTreeSet::new();
            let (mut endpoints, mut loopback_skipped) = (Vec::new(), 0);
            for e in eps.iter().filter(|e| seen.insert(e.addr)) {
                match pacing.skip_loopback && e.addr.ip().is_loopback() {
                    true => loopback_skipped += 1,
                    false => endpoints.push((e.addr, e.zone.clone())),
                }
            }
            let interval = spec.interval.unwrap_or(pacing.interval);
            // A daemon-wide timeout longer than a cluster's interval is cut to half of it.
            let timeout = spec.timeout.unwrap_or(pacing.timeout.min(interval / 2));
            Some(Target {
                cluster: c.name.clone(),
                probe: spec.probe.clone(),
                interval,
                timeout,
                may_mark: c.health_check.is_none(),
                endpoints,
                loopback_skipped,
            })
        })
        .collect()
}

/// Whether the laptop reaches an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reach {
    #[default]
    Unknown,
    Reachable,
    Unreachable,
}

/// One endpoint's probe history, as far as it matters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointState {
    pub zone: Option<String>,
    pub reach: Reach,
    /// When `reach` began, and when the last probe ended.
    pub since_ms: Option<u64>,
    pub last_ms: Option<u64>,
    pub latency: Option<Duration>,
    pub error: Option<String>,
    /// Failed probes in a row.
    pub failures: u32,
}

/// One probe to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub cluster: String,
    pub addr: SocketAddr,
    pub probe: Probe,
    pub timeout: Duration,
}

/// A probed cluster's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    pub target: Target,
    /// By address; the target's list gives the order.
    pub endpoints: BTreeMap<SocketAddr, EndpointState>,
    /// Where the next round starts in the target's list (rotation).
    cursor: usize,
    /// When the next round is due; `None`: at once.
    due_ms: Option<u64>,
}

/// What changed an endpoint's state, for the log and the events list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub cluster: String,
    pub addr: SocketAddr,
    /// What it was before (`Unknown` for a first probe) and is now.
    pub from: Reach,
    pub reach: Reach,
    pub error: Option<String>,
}

pub use crate::model::Marks;

/// Every probed cluster's endpoints and what their probes found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    pub clusters: BTreeMap<String, ClusterState>,
    pub max_per_round: usize,
}

impl Board {
    pub fn new(max_per_round: usize) -> Self {
        Self { clusters: BTreeMap::new(), max_per_round: max_per_round.max(1) }
    }

    /// Takes the clusters and endpoints to probe now. An endpoint that
    /// stays keeps its state; one that is gone is forgotten; a new one is
    /// unknown until probed. A cluster whose probe or pacing changed is
    /// probed again at once.
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        let mut old = std::mem::take(&mut self.clusters);
        for t in targets {
            let state = match old.remove(&t.cluster) {
                Some(mut s) => {
                    let same_probe = s.target.probe == t.probe && s.target.interval == t.interval;
                    let keep: BTreeSet<SocketAddr> = t.endpoints.iter().map(|(a, _)| *a).collect();
                    s.endpoints.retain(|a, _| keep.contains(a));
                    if !same_probe {
                        s.endpoints
                            .values_mut()
                            .for_each(|e| *e = EndpointState { zone: e.zone.clone(), ..Default::default() });
                        s.due_ms = None;
                    }
                    // New endpoints are probed in the next round, not an interval later.
                    if t.endpoints.iter().any(|(a, _)| !s.endpoints.contains_key(a))
                        && t.endpoints.len() <= self.max_per_round
                    {
                        s.due_ms = None;
                    }
                    s.cursor = if t.endpoints.is_empty() { 0 } else { s.cursor % t.endpoints.len() };
                    s.target = t;
                    s
                }
                None => ClusterState { target: t, endpoints: BTreeMap::new(), cursor: 0, due_ms: None },
            };
            let mut state = state;
            for (addr, zone) in &state.target.endpoints {
                state.endpoints.entry(*addr).or_default().zone = zone.clone();
            }
            self.clusters.insert(state.target.cluster.clone(), state);
        }
    }

    /// The probes due at `now_ms`: of each due cluster, every endpoint, or
    /// the next `max_per_round` in turn. Each due cluster's next round is
    /// set `interval` (plus `jitter_ms`) later. A cluster without
    /// endpoints costs nothing.
    pub fn due(&mut self, now_ms: u64, jitter_ms: u64) -> Vec<Job> {
        let cap = self.max_per_round;
        let mut jobs = Vec::new();
        for s in self.clusters.values_mut() {
            if s.target.endpoints.is_empty() || s.due_ms.is_some_and(|d| d > now_ms) {
                continue;
            }
            let n = s.target.endpoints.len();
            let take = n.min(cap);
            for i in 0..take {
                let (addr, _) = &s.target.endpoints[(s.cursor + i) % n];
                jobs.push(Job {
                    cluster: s.target.cluster.clone(),
                    addr: *addr,
                    probe: s.target.probe.clone(),
                    timeout: s.target.timeout,
                });
            }
            s.cursor = (s.cursor + take) % n;
            s.due_ms = Some(now_ms + s.target.interval.as_millis() as u64 + jitter_ms);
        }
        jobs
    }

    /// When the next cluster is due; `None` when nothing is to be probed.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.clusters.values().filter(|s| !s.target.endpoints.is_empty()).map(|s| s.due_ms.unwrap_or(0)).min()
    }

    /// Takes one probe's result (its latency, or why it failed). `Some`
    /// when the endpoint's reachability changed. A result for an endpoint
    /// no longer probed is dropped.
    pub fn record(
        &mut self,
        cluster: &str,
        addr: SocketAddr,
        result: Result<Duration, String>,
        now_ms: u64,
    ) -> Option<Change> {
        let e = self.clusters.get_mut(cluster)?.endpoints.get_mut(&addr)?;
        let reach = if result.is_ok() { Reach::Reachable } else { Reach::Unreachable };
        e.last_ms = Some(now_ms);
        match result {
            Ok(latency) => {
                e.latency = Some(latency);
                e.error = None;
                e.failures = 0;
            }
            Err(why) => {
                e.latency = None;
                e.error = Some(why);
                e.failures = e.failures.saturating_add(1);
            }
        }
        if e.reach == reach {
            return None;
        }
        let from = std::mem::replace(&mut e.reach, reach);
        e.since_ms = Some(now_ms);
        Some(Change { cluster: cluster.to_string(), addr, from, reach, error: e.error.clone() })
    }

    /// The endpoints to publish unhealthy: of each cluster that may be
    /// marked, those that failed [`UNHEALTHY_AFTER`] probes in a row, but
    /// only while some endpoint of the cluster is reachable. When none is,
    /// the fault is most likely the laptop's own network (VPN down, Wi-Fi
    /// gone): marking every endpoint would tell Envoy nothing it can use,
    /// so nothing is marked and the cluster's note says so.
    pub fn marks(&self) -> Marks {
        self.clusters
            .iter()
            .filter(|(_, s)| s.target.may_mark && s.endpoints.values().any(|e| e.reach == Reach::Reachable))
            .filter_map(|(name, s)| {
                let bad: BTreeSet<SocketAddr> =
                    s.endpoints.iter().filter(|(_, e)| e.failures >= UNHEALTHY_AFTER).map(|(a, _)| *a).collect();
                (!bad.is_empty()).then(|| (name.clone(), bad))
            })
            .collect()
    }
}

impl ClusterState {
    /// Endpoints now, reachable, unreachable, not probed yet.
    pub fn counts(&self) -> Counts {
        let mut c = Counts { endpoints: self.target.endpoints.len(), ..Default::default() };
        for e in self.endpoints.values() {
            match e.reach {
                Reach::Reachable => c.reachable += 1,
                Reach::Unreachable => c.unreachable += 1,
                Reach::Unknown => c.unknown += 1,
            }
        }
        c
    }

    /// The cluster's state in one line, e.g. `healthy: 3/3 reachable`.
    pub fn summary(&self) -> String {
        let skipped = self.target.loopback_skipped;
        let mut line = self.probed_summary();
        if skipped > 0 {
            let what = format!(
                "{skipped} loopback {} not probed: the sidecars run in containers, whose loopback is their own",
                plural(skipped, "endpoint")
            );
            line = if self.target.endpoints.is_empty() { what } else { format!("{line}; {what}") };
        }
        line
    }

    fn probed_summary(&self) -> String {
        let c = self.counts();
        let n = c.endpoints;
        if n == 0 {
            return "no endpoints".to_string();
        }
        if c.unknown == n {
            return format!("{n} {}, not probed yet", plural(n, "endpoint"));
        }
        let pending = if c.unknown > 0 { format!(", {} not probed yet", c.unknown) } else { String::new() };
        if c.unreachable == 0 {
            return format!("healthy: {}/{n} reachable{pending}", c.reachable);
        }
        if c.reachable == 0 {
            let why = match self.common_error() {
                Some(e) => format!(": {e}"),
                None => " (VPN or firewall?)".to_string(),
            };
            return format!("{n} {} listed, 0 reachable{why}{pending}", plural(n, "endpoint"));
        }
        format!("degraded: {}/{n} reachable, {} unreachable{pending}", c.reachable, c.unreachable)
    }

    /// The error every unreachable endpoint shares, unless it is silence
    /// (a timeout: the packets went nowhere) or there is none in common.
    pub fn common_error(&self) -> Option<&str> {
        let errors: BTreeSet<&str> = self
            .endpoints
            .values()
            .filter(|e| e.reach == Reach::Unreachable)
            .filter_map(|e| e.error.as_deref())
            .collect();
        match errors.iter().next() {
            Some(e) if errors.len() == 1 && !e.starts_with("no answer within") => Some(e),
            _ => None,
        }
    }

    /// Why not every endpoint is probed each round, and what the probes
    /// change in what Envoy is told; `None` when there is nothing to say.
    pub fn note(&self, max_per_round: usize, marks: &Marks) -> Option<String> {
        let mut notes = Vec::new();
        let n = self.target.endpoints.len();
        if n > max_per_round {
            let rounds = n.div_ceil(max_per_round);
            notes.push(format!(
                "{n} endpoints: at most {max_per_round} probed per round, in turns; each is probed every {rounds} rounds (about {})",
                humantime::format_duration(self.target.interval * rounds as u32)
            ));
        }
        let c = self.counts();
        if c.unreachable > 0 {
            if !self.target.may_mark {
                notes.push("the cluster's own health check decides in Envoy; probes mark nothing".to_string());
            } else if c.reachable == 0 {
                // Silence from every endpoint is what a VPN that is down
                // looks like; refusals are answers, so the network works.
                let why = match self.common_error() {
                    None => " (most likely this machine's own network: VPN down?)",
                    Some(_) => "",
                };
                notes.push(format!("none reachable: nothing marked unhealthy{why}; Envoy keeps trying them all"));
            } else if let Some(m) = marks.get(&self.target.cluster) {
                notes.push(format!(
                    "{} published as unhealthy after {UNHEALTHY_AFTER} failed probes in a row: Envoy avoids {}",
                    m.len(),
                    if m.len() == 1 { "it" } else { "them" }
                ));
            }
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// A cluster's endpoints by probe state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub endpoints: usize,
    pub reachable: usize,
    pub unreachable: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn add(&mut self, o: Counts) {
        self.endpoints += o.endpoints;
        self.reachable += o.reachable;
        self.unreachable += o.unreachable;
        self.unknown += o.unknown;
    }
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}

#[cfg(test)]
mod tests;
