//! The events log: one task watches the channels that already exist (the
//! reload status, what is published, discovery's sources, the ADS streams'
//! registry) and turns their changes into [`Event`]s, kept in a bounded
//! ring, oldest first. It is the one writer of `watch<EventLog>`; `/status`
//! shows the last [`SHOWN`] and the status page waits on its `changes`.
//!
//! Each input is turned into a digest ([`diff`]'s types), and the pure
//! functions of [`diff`] say in words what changed since the last digest.
//!
//! Each input is one field of [`Inputs`], one `select!` arm in [`run`]
//! and a digest that [`diff`] compares.

pub mod diff;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::discovery::SourceStatus;
use crate::model::{EndpointSet, Endpoints, Published, Source};
use crate::profile::watch::ReloadStatus;
use crate::status::{ClusterProbes, Event, ProbeState};
use crate::xds::registry::{StreamInfo, StreamRegistry};
use diff::Found;

/// How many events the ring keeps.
pub const CAPACITY: usize = 200;
/// How many `/status` shows.
pub const SHOWN: usize = 50;

/// The ring of events, and a count of every input change seen (with or
/// without an event), so a reader can wait for anything new.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    pub changes: u64,
    pub events: VecDeque<Event>,
}

impl EventLog {
    /// Adds `found` at `at_ms`, dropping the oldest beyond [`CAPACITY`]; an
    /// ACK right after an ACK of the same Envoy merges into it.
    pub fn push(&mut self, at_ms: u64, found: Found) {
        for (kind, text) in found {
            if kind == diff::Kind::Ack
                && let Some(last) = self.events.back_mut().filter(|e| e.kind == kind.as_str())
                && let Some(merged) = diff::merge_acks(&last.text, &text)
            {
                last.text = merged;
                last.at_ms = at_ms;
                continue;
            }
            if self.events.len() == CAPACITY {
                self.events.pop_front();
            }
            self.events.push_back(Event { at_ms, kind: kind.as_str().to_string(), text });
        }
    }

    /// The last `n` events, oldest first.
    pub fn last(&self, n: usize) -> Vec<Event> {
        self.events.iter().skip(self.events.len().saturating_sub(n)).cloned().collect()
    }
}

/// What the events task reads: each channel keeps its own writer.
pub struct Inputs {
    /// Written by the reloader (`profile::watch`).
    pub reload: watch::Receiver<ReloadStatus>,
    /// Written by the builder (`app::run_builder`).
    pub published: watch::Receiver<Arc<Published>>,
    /// Written by the discovery loop.
    pub sources: watch::Receiver<Vec<SourceStatus>>,
    /// Written by the ADS stream tasks.
    pub streams: Arc<StreamRegistry>,
    /// Written by the prober (`probe.rs`).
    pub probes: watch::Receiver<Arc<crate::probe::report::Probes>>,
}

/// Runs the events task until `shutdown`, writing `log`. The values in
/// force at the start are the baseline: only changes after it are events.
pub async fn run(mut inputs: Inputs, log: watch::Sender<EventLog>, shutdown: CancellationToken) {
    let mut streams_changed = inputs.streams.changes();
    streams_changed.borrow_and_update();
    let published = inputs.published.borrow_and_update().clone();
    // The start is the baseline of what is served; an Envoy, a reload or a
    // source that came before this task first looked is still an event.
    let mut seen = Seen {
        reload: diff::Reload::default(),
        envoys: BTreeMap::new(),
        sources: BTreeMap::new(),
        endpoints: endpoints_digest(&published),
        probes: BTreeMap::new(),
    };
    let proxies = match published.snapshots.len() {
        1 => "1 proxy".to_string(),
        n => format!("{n} proxies"),
    };
    log.send_modify(|l| {
        l.push(
            crate::model::now_ms(),
            vec![(
                diff::Kind::Start,
                format!(
                    "devbridge started: profile {} ({}), {proxies}",
                    published.profile.name, published.profile.file
                ),
            )],
        );
        l.push(crate::model::now_ms(), seen.reload(reload_digest(&inputs.reload.borrow_and_update())));
        l.push(crate::model::now_ms(), seen.envoys(envoys_digest(&inputs.streams.all())));
        l.push(crate::model::now_ms(), seen.sources(sources_digest(&inputs.sources.borrow_and_update())));
        l.push(crate::model::now_ms(), seen.probes(probe_digest(&inputs.probes.borrow_and_update().clusters)));
    });
    // An input whose writer is gone keeps its last value.
    let mut open = [true; 5];
    loop {
        let found = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = inputs.reload.changed(), if open[0] => match r {
                Ok(()) => seen.reload(reload_digest(&inputs.reload.borrow_and_update())),
                Err(_) => { open[0] = false; continue }
            },
            r = inputs.published.changed(), if open[1] => match r {
                Ok(()) => seen.endpoints(endpoints_digest(&inputs.published.borrow_and_update().clone())),
                Err(_) => { open[1] = false; continue }
            },
            r = inputs.sources.changed(), if open[2] => match r {
                Ok(()) => seen.sources(sources_digest(&inputs.sources.borrow_and_update())),
                Err(_) => { open[2] = false; continue }
            },
            r = streams_changed.changed(), if open[3] => match r {
                Ok(()) => {
                    streams_changed.borrow_and_update();
                    seen.envoys(envoys_digest(&inputs.streams.all()))
                }
                Err(_) => { open[3] = false; continue }
            },
            r = inputs.probes.changed(), if open[4] => match r {
                Ok(()) => seen.probes(probe_digest(&inputs.probes.borrow_and_update().clusters)),
                Err(_) => { open[4] = false; continue }
            },
        };
        let at = crate::model::now_ms();
        log.send_modify(|l| {
            l.changes = l.changes.wrapping_add(1);
            l.push(at, found);
        });
    }
}

/// The last digest of each input.
struct Seen {
    reload: diff::Reload,
    envoys: BTreeMap<u64, diff::Envoy>,
    sources: BTreeMap<String, diff::Source>,
    endpoints: EndpointSet,
    probes: BTreeMap<String, diff::Probed>,
}

impl Seen {
    fn reload(&mut self, new: diff::Reload) -> Found {
        let found = diff::reload(&self.reload, &new);
        self.reload = new;
        found
    }

    fn envoys(&mut self, new: BTreeMap<u64, diff::Envoy>) -> Found {
        let found = diff::envoys(&self.envoys, &new);
        self.envoys = new;
        found
    }

    fn sources(&mut self, new: BTreeMap<String, diff::Source>) -> Found {
        let found = diff::sources(&self.sources, &new);
        self.sources = new;
        found
    }

    fn probes(&mut self, new: BTreeMap<String, diff::Probed>) -> Found {
        let found = diff::probes(&self.probes, &new);
        self.probes = new;
        found
    }

    fn endpoints(&mut self, new: EndpointSet) -> Found {
        let found = diff::endpoints(&self.endpoints, &new);
        self.endpoints = new;
        found
    }
}

fn reload_digest(r: &ReloadStatus) -> diff::Reload {
    diff::Reload {
        ok: r.reloads_ok,
        failed: r.reloads_failed,
        last_change: r.last_change.clone(),
        errors: r.error.as_ref().map(|e| e.errors.clone()).unwrap_or_default(),
    }
}

fn envoys_digest(streams: &[StreamInfo]) -> BTreeMap<u64, diff::Envoy> {
    streams
        .iter()
        .map(|s| {
            let e = diff::Envoy {
                peer: s.peer.clone(),
                node_id: s.node.as_ref().map(|n| n.id.clone()),
                proxy: s.proxy.clone(),
                unmatched: s.unmatched.clone(),
                acked: s.types.iter().filter_map(|(t, i)| Some((t.clone(), i.acked.clone()?))).collect(),
                nacks: s
                    .types
                    .iter()
                    .filter_map(|(t, i)| {
                        i.last_nack.as_ref().map(|n| (t.clone(), (n.version.clone(), n.error.clone())))
                    })
                    .collect(),
            };
            (s.stream, e)
        })
        .collect()
}

fn sources_digest(sources: &[SourceStatus]) -> BTreeMap<String, diff::Source> {
    let now = std::time::SystemTime::now();
    sources
        .iter()
        .map(|s| {
            let r = s.report(now);
            (r.name.clone(), diff::Source { state: r.state.as_str().to_string(), error: r.error, summary: r.summary })
        })
        .collect()
}

/// The endpoints of every cluster the profile fills at run time, as
/// served: registered ones win over discovered ones; none yet is empty.
fn endpoints_digest(p: &Published) -> EndpointSet {
    let empty = Endpoints::default();
    p.profile
        .clusters
        .values()
        .filter(|c| matches!(c.source, Source::Kubernetes(_) | Source::KubernetesService(_) | Source::Registered))
        .map(|c| {
            let eps = p.registered.get(&c.name).or_else(|| p.discovered.endpoints.get(&c.name));
            (c.name.clone(), eps.cloned().unwrap_or_else(|| empty.clone()))
        })
        .collect()
}

/// The probe results (`Status.probes`) as [`diff::probes`] reads them.
pub fn probe_digest(probes: &BTreeMap<String, ClusterProbes>) -> BTreeMap<String, diff::Probed> {
    let state = |s: ProbeState| match s {
        ProbeState::Unknown => "unknown",
        ProbeState::Reachable => "reachable",
        ProbeState::Unreachable => "unreachable",
    };
    probes
        .iter()
        .map(|(cluster, p)| {
            let endpoints =
                p.results.iter().map(|r| (r.address.clone(), (state(r.state).to_string(), r.error.clone()))).collect();
            (cluster.clone(), diff::Probed { summary: p.summary.clone(), endpoints })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::EndpointProbe;

    #[test]
    fn the_ring_keeps_the_newest_events_oldest_first() {
        let mut log = EventLog::default();
        for i in 0..(CAPACITY as u64 + 5) {
            log.push(i, vec![(diff::Kind::Reload, format!("reload {i}"))]);
        }
        assert_eq!(log.events.len(), CAPACITY);
        assert_eq!(log.events.front().unwrap().text, "reload 5");
        let last: Vec<String> = log.last(2).into_iter().map(|e| e.text).collect();
        assert_eq!(last, ["reload 203", "reload 204"]);
        assert_eq!(log.last(SHOWN).len(), SHOWN);
    }

    #[test]
    fn acks_one_after_another_are_one_event() {
        let mut log = EventLog::default();
        log.push(1, vec![(diff::Kind::Ack, "p acked CDS".into())]);
        log.push(2, vec![(diff::Kind::Ack, "p acked EDS".into()), (diff::Kind::Ack, "p acked LDS, RDS".into())]);
        let texts: Vec<(u64, String)> = log.events.iter().map(|e| (e.at_ms, e.text.clone())).collect();
        assert_eq!(texts, [(2, "p acked CDS, EDS, LDS, RDS".to_string())]);
        log.push(3, vec![(diff::Kind::Reload, "reload: routes +1".into()), (diff::Kind::Ack, "p acked RDS".into())]);
        assert_eq!(log.events.len(), 3);
    }

    #[test]
    fn probe_results_become_a_digest_by_address() {
        let probes = BTreeMap::from([(
            "edge".to_string(),
            ClusterProbes {
                summary: "healthy: 1/1 reachable".into(),
                results: vec![EndpointProbe {
                    address: "10.0.0.1:80".into(),
                    state: ProbeState::Reachable,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )]);
        assert_eq!(
            probe_digest(&probes),
            BTreeMap::from([(
                "edge".to_string(),
                diff::Probed {
                    summary: "healthy: 1/1 reachable".into(),
                    endpoints: BTreeMap::from([("10.0.0.1:80".to_string(), ("reachable".to_string(), None))]),
                }
            )])
        );
    }
}
