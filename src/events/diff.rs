//! What changed between two looks at one of the daemon's inputs, as
//! events in words. Pure: the events task (`events.rs`) turns each input
//! into the digest here, keeps the last one, and stamps what this returns
//! with the time.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{EndpointSet, Endpoints};

/// At most this many items (endpoints, probe changes) are named in one
/// event; the rest are counted.
pub const MAX_NAMED: usize = 3;

/// What kind of thing happened; `/status` shows it as [`Kind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Start,
    Reload,
    ReloadFailed,
    Envoy,
    Ack,
    Nack,
    Discovery,
    Endpoints,
    Probe,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Reload => "reload",
            Kind::ReloadFailed => "reload_failed",
            Kind::Envoy => "envoy",
            Kind::Ack => "ack",
            Kind::Nack => "nack",
            Kind::Discovery => "discovery",
            Kind::Endpoints => "endpoints",
            Kind::Probe => "probe",
        }
    }
}

pub type Found = Vec<(Kind, String)>;

/// The reloader's counters and last words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    pub ok: u64,
    pub failed: u64,
    pub last_change: Option<String>,
    pub errors: Vec<String>,
}

pub fn reload(old: &Reload, new: &Reload) -> Found {
    let mut out = Vec::new();
    if new.ok > old.ok {
        let change = new.last_change.as_deref().unwrap_or("no change to what is served");
        out.push((Kind::Reload, format!("reload: {change}")));
    }
    if new.failed > old.failed {
        let first = new.errors.first().map_or("no error text", String::as_str);
        let more = match new.errors.len() {
            0 | 1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        out.push((
            Kind::ReloadFailed,
            format!("reload rejected, the last good profile is still served: {first}{more}"),
        ));
    }
    out
}

/// One ADS stream, as the events see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envoy {
    pub peer: Option<String>,
    pub node_id: Option<String>,
    pub proxy: Option<String>,
    pub unmatched: Option<String>,
    /// Per type (`CDS`, ...): the version acked.
    pub acked: BTreeMap<String, String>,
    /// Per type: the version rejected and Envoy's text.
    pub nacks: BTreeMap<String, (String, String)>,
}

impl Envoy {
    fn name(&self, stream: u64) -> String {
        match (&self.proxy, &self.node_id) {
            (Some(p), _) => p.clone(),
            (None, Some(id)) if !id.is_empty() => format!("node {id}"),
            _ => format!("stream {stream}"),
        }
    }

    fn identified(&self) -> bool {
        self.proxy.is_some() || self.unmatched.is_some()
    }
}

/// Envoys connecting, matching no proxy, going away, ACKing and NACKing;
/// keyed by stream.
pub fn envoys(old: &BTreeMap<u64, Envoy>, new: &BTreeMap<u64, Envoy>) -> Found {
    let mut out = Vec::new();
    let none = Envoy::default();
    for (id, e) in new {
        let was = old.get(id).unwrap_or(&none);
        let name = e.name(*id);
        let from = e.peer.as_deref().map(|p| format!(" from {p}")).unwrap_or_default();
        if e.identified() && !was.identified() {
            match (&e.proxy, &e.unmatched) {
                (Some(_), _) => out.push((Kind::Envoy, format!("{name} connected{from} (stream {id})"))),
                (None, Some(why)) => out.push((Kind::Envoy, format!("{name}{from} is served nothing: {why}"))),
                _ => {}
            }
        }
        for (ty, (version, error)) in &e.nacks {
            if was.nacks.get(ty) != Some(&(version.clone(), error.clone())) {
                out.push((Kind::Nack, format!("{name} NACKed {ty} version {}: {error}", short(version))));
            }
        }
        let acked: Vec<&str> =
            e.acked.iter().filter(|(ty, v)| was.acked.get(*ty) != Some(*v)).map(|(ty, _)| ty.as_str()).collect();
        if !acked.is_empty() {
            out.push((Kind::Ack, format!("{name} acked {}", acked.join(", "))));
        }
    }
    for (id, e) in old {
        if !new.contains_key(id) && e.identified() {
            out.push((Kind::Envoy, format!("{} disconnected (stream {id})", e.name(*id))));
        }
    }
    out
}

/// One Envoy's ACKs of several types arrive one by one: an ACK event that
/// follows one of the same Envoy merges into it (`p acked CDS` and `p acked
/// EDS, LDS` are `p acked CDS, EDS, LDS`).
pub fn merge_acks(last: &str, next: &str) -> Option<String> {
    const SEP: &str = " acked ";
    let (who, types) = last.split_once(SEP)?;
    let (who_next, more) = next.split_once(SEP)?;
    if who != who_next {
        return None;
    }
    let mut all: Vec<&str> = types.split(", ").collect();
    for t in more.split(", ") {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    Some(format!("{who}{SEP}{}", all.join(", ")))
}

/// Versions are content hashes: the first 12 characters name one.
fn short(v: &str) -> &str {
    v.get(..12).unwrap_or(v)
}

/// One discovery source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// `connecting`, `connected`, `degraded`.
    pub state: String,
    pub error: Option<String>,
    /// The line in words (API server and probes), when there is one.
    pub summary: String,
}

/// Sources changing state, error or summary; keyed by name.
pub fn sources(old: &BTreeMap<String, Source>, new: &BTreeMap<String, Source>) -> Found {
    new.iter()
        .filter(|(name, s)| old.get(*name) != Some(*s))
        .map(|(name, s)| {
            let words = match (&s.error, s.summary.is_empty()) {
                (_, false) => format!("{}: {}", s.state, s.summary),
                (Some(e), true) => format!("{}: {e}", s.state),
                (None, true) => s.state.clone(),
            };
            (Kind::Discovery, format!("{name}: {words}"))
        })
        .collect()
}

/// The endpoints of clusters filled at run time (discovered or
/// registered) that are in both sets: a cluster only in one came or went
/// with a profile reload, which says so itself.
pub fn endpoints(old: &EndpointSet, new: &EndpointSet) -> Found {
    let mut out = Vec::new();
    for (cluster, eps) in new {
        let Some(was) = old.get(cluster) else { continue };
        if Endpoints::ptr_eq(was, eps) || was == eps {
            continue;
        }
        // Sets: a cluster may hold thousands of endpoints.
        let addrs = |set: &Endpoints| set.iter().map(|e| e.addr).collect::<BTreeSet<_>>();
        let (before, after) = (addrs(was), addrs(eps));
        let added: Vec<String> = after.difference(&before).map(|a| a.to_string()).collect();
        let removed: Vec<String> = before.difference(&after).map(|a| a.to_string()).collect();
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("+{}", named(&added)));
        }
        if !removed.is_empty() {
            parts.push(format!("-{}", named(&removed)));
        }
        if parts.is_empty() {
            parts.push("zones, weights or metadata changed".into());
        }
        out.push((
            Kind::Endpoints,
            format!("cluster {cluster}: {} -> {} endpoints ({})", was.len(), eps.len(), parts.join(", ")),
        ));
    }
    out
}

/// `a, b, c and 4 more`.
fn named(items: &[String]) -> String {
    let shown = items.iter().take(MAX_NAMED).cloned().collect::<Vec<_>>().join(", ");
    match items.len().saturating_sub(MAX_NAMED) {
        0 => shown,
        n => format!("{shown} and {n} more"),
    }
}

/// One probed cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    pub summary: String,
    /// Per endpoint address: `reachable`, `unreachable` or `unknown`, and the last error.
    pub endpoints: BTreeMap<String, (String, Option<String>)>,
}

/// Endpoints whose probe state changed to reachable or unreachable, one
/// event per cluster; an endpoint not probed yet is not an event.
pub fn probes(old: &BTreeMap<String, Probed>, new: &BTreeMap<String, Probed>) -> Found {
    let mut out = Vec::new();
    for (cluster, p) in new {
        let was = old.get(cluster);
        let changed: Vec<String> = p
            .endpoints
            .iter()
            .filter(|(_, (state, _))| state != "unknown")
            .filter(|(addr, (state, _))| was.and_then(|w| w.endpoints.get(*addr)).map(|(s, _)| s) != Some(state))
            .map(|(addr, (state, error))| match error {
                Some(e) if state == "unreachable" => format!("{addr} {state} ({e})"),
                _ => format!("{addr} {state}"),
            })
            .collect();
        if changed.is_empty() {
            continue;
        }
        let summary = if p.summary.is_empty() { String::new() } else { format!("{}; ", p.summary) };
        out.push((Kind::Probe, format!("cluster {cluster}: {summary}{}", named(&changed))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;

    fn mk_endpoints(addrs: &[&str]) -> crate::model::Endpoints {
        addrs
            .iter()
            .map(|a| Endpoint {
                addr: a.parse().unwrap(),
                zone: None,
                weight: None,
                metadata: Default::default(),
                unhealthy: false,
            })
            .collect::<Vec<_>>()
            .into()
    }

    fn mk_envoy(proxy: &str, acked: &[(&str, &str)]) -> Envoy {
        Envoy {
            peer: Some("127.0.0.1:5000".into()),
            node_id: Some("laptop".into()),
            proxy: Some(proxy.into()),
            acked: acked.iter().map(|(t, v)| (t.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_reload_says_what_changed_and_a_bad_one_its_first_error() {
        let old = Reload { ok: 1, ..Default::default() };
        let good = Reload { ok: 2, last_change: Some("route added: demo.example.com:8888 /new".into()), ..old.clone() };
        assert_eq!(reload(&old, &good), vec![(Kind::Reload, "reload: route added: demo.example.com:8888 /new".into())]);
        let bad = Reload {
            failed: 1,
            errors: vec!["demo.toml:3:1: x: bad".into(), "demo.toml:4:1: y: bad".into()],
            ..good.clone()
        };
        assert_eq!(
            reload(&good, &bad),
            vec![(
                Kind::ReloadFailed,
                "reload rejected, the last good profile is still served: demo.toml:3:1: x: bad (and 1 more)".into()
            )]
        );
        assert_eq!(reload(&bad, &bad), vec![]);
    }

    #[test]
    fn an_envoy_connecting_acking_nacking_and_leaving_is_four_events() {
        let empty = BTreeMap::new();
        // Registered before its first request names a node: not yet an event.
        let anonymous = BTreeMap::from([(3, Envoy { peer: Some("127.0.0.1:5000".into()), ..Default::default() })]);
        assert_eq!(envoys(&empty, &anonymous), vec![]);
        let connected = BTreeMap::from([(3, mk_envoy("dev-proxy", &[]))]);
        assert_eq!(
            envoys(&anonymous, &connected),
            vec![(Kind::Envoy, "dev-proxy connected from 127.0.0.1:5000 (stream 3)".into())]
        );
        let acked = BTreeMap::from([(3, mk_envoy("dev-proxy", &[("CDS", "v1"), ("LDS", "v1")]))]);
        assert_eq!(envoys(&connected, &acked), vec![(Kind::Ack, "dev-proxy acked CDS, LDS".into())]);
        let mut nacked = acked.clone();
        nacked.get_mut(&3).unwrap().nacks.insert("LDS".into(), ("0123456789abcdef".into(), "bad listener".into()));
        assert_eq!(
            envoys(&acked, &nacked),
            vec![(Kind::Nack, "dev-proxy NACKed LDS version 0123456789ab: bad listener".into())]
        );
        assert_eq!(envoys(&nacked, &nacked), vec![]);
        assert_eq!(envoys(&nacked, &empty), vec![(Kind::Envoy, "dev-proxy disconnected (stream 3)".into())]);
    }

    #[test]
    fn acks_of_one_envoy_merge_and_of_two_do_not() {
        assert_eq!(merge_acks("p acked CDS", "p acked EDS, CDS").as_deref(), Some("p acked CDS, EDS"));
        assert_eq!(merge_acks("p acked CDS", "q acked EDS"), None);
        assert_eq!(merge_acks("p connected", "p acked EDS"), None);
    }

    #[test]
    fn an_envoy_that_matches_no_proxy_says_why() {
        let e = Envoy {
            node_id: Some("x".into()),
            unmatched: Some("no proxy has node.cluster y".into()),
            ..Default::default()
        };
        assert_eq!(
            envoys(&BTreeMap::new(), &BTreeMap::from([(1, e)])),
            vec![(Kind::Envoy, "node x is served nothing: no proxy has node.cluster y".into())]
        );
    }

    #[test]
    fn a_source_changing_state_is_an_event_with_its_summary_or_error() {
        let name = "pods \"app=edge\" in edge".to_string();
        let connecting = BTreeMap::from([(name.clone(), Source { state: "connecting".into(), ..Default::default() })]);
        let degraded = BTreeMap::from([(
            name.clone(),
            Source { state: "degraded".into(), error: Some("API server unreachable".into()), summary: String::new() },
        )]);
        assert_eq!(
            sources(&connecting, &degraded),
            vec![(Kind::Discovery, format!("{name}: degraded: API server unreachable"))]
        );
        let healthy = BTreeMap::from([(
            name.clone(),
            Source { state: "connected".into(), error: None, summary: "healthy: 3/3 reachable".into() },
        )]);
        assert_eq!(
            sources(&degraded, &healthy),
            vec![(Kind::Discovery, format!("{name}: connected: healthy: 3/3 reachable"))]
        );
        assert_eq!(sources(&healthy, &healthy), vec![]);
    }

    #[test]
    fn endpoints_added_and_removed_are_named_up_to_three() {
        let old = EndpointSet::from([
            ("edge".to_string(), mk_endpoints(&["10.0.0.1:80", "10.0.0.2:80"])),
            ("gone".to_string(), mk_endpoints(&["10.0.0.9:80"])),
        ]);
        let new = EndpointSet::from([
            (
                "edge".to_string(),
                mk_endpoints(&["10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80", "10.0.0.6:80"]),
            ),
            ("added".to_string(), mk_endpoints(&["10.0.0.8:80"])),
        ]);
        assert_eq!(
            endpoints(&old, &new),
            vec![(
                Kind::Endpoints,
                "cluster edge: 2 -> 5 endpoints (+10.0.0.3:80, 10.0.0.4:80, 10.0.0.5:80 and 1 more, -10.0.0.1:80)"
                    .into()
            )]
        );
        assert_eq!(endpoints(&new, &new), vec![]);
    }

    #[test]
    fn a_probe_state_change_is_an_event_and_a_first_unknown_is_not() {
        let mk = |summary: &str, eps: &[(&str, &str, Option<&str>)]| {
            BTreeMap::from([(
                "edge".to_string(),
                Probed {
                    summary: summary.into(),
                    endpoints: eps
                        .iter()
                        .map(|(a, s, e)| (a.to_string(), (s.to_string(), e.map(String::from))))
                        .collect(),
                },
            )])
        };
        let unknown = mk("", &[("10.0.0.1:80", "unknown", None)]);
        assert_eq!(probes(&BTreeMap::new(), &unknown), vec![]);
        let up = mk("healthy: 1/1 reachable", &[("10.0.0.1:80", "reachable", None)]);
        assert_eq!(
            probes(&unknown, &up),
            vec![(Kind::Probe, "cluster edge: healthy: 1/1 reachable; 10.0.0.1:80 reachable".into())]
        );
        let down = mk("1 edge listed, 0 reachable", &[("10.0.0.1:80", "unreachable", Some("timed out"))]);
        assert_eq!(
            probes(&up, &down),
            vec![(Kind::Probe, "cluster edge: 1 edge listed, 0 reachable; 10.0.0.1:80 unreachable (timed out)".into())]
        );
        assert_eq!(probes(&down, &down), vec![]);
    }
}
