//! The incremental (delta) ADS protocol for one stream, as a plain struct,
//! beside [`StreamState`](super::stream::StreamState)'s state of the world.
//!
//! [`DeltaState`] takes Envoy's `DeltaDiscoveryRequest`s and new snapshots
//! and returns the responses to send, in order; it never blocks and does no
//! I/O. The rules, from the xDS protocol's incremental variant:
//!
//! * Each resource has its own version: the hex of its content hash, the
//!   same in every devbridge run, so a client that reconnects (to this
//!   daemon or a restarted one) and lists what it holds in
//!   `initial_resource_versions` is sent only what differs, and the
//!   removal of what is gone.
//! * Subscriptions are deltas: `resource_names_subscribe` adds names,
//!   `resource_names_unsubscribe` drops them. A type's first request with
//!   both lists empty is a (legacy) wildcard; `*` subscribes to everything
//!   and unsubscribing `*` ends it. A subscription change always applies,
//!   whatever nonce the request carries. A name subscribed to again is sent
//!   again: the client may have forgotten it.
//! * A response carries only the resources the client does not hold at
//!   their current content, and in `removed_resources` the names of held
//!   clusters and listeners that are gone. A name the client asks for that does not exist
//!   is answered once in `removed_resources`, so it need not wait for its
//!   does-not-exist timeout.
//! * A request with `response_nonce` acknowledges that response; with
//!   `error_detail` it is a NACK, and the resources of that response are
//!   not sent again at the same content. (Envoy records the versions of a
//!   rejected response as held, so holding them is also what it believes.)
//!   A nonce this stream did not send, or sent too long ago, changes
//!   nothing but the subscription.
//! * A new snapshot is sent make-before-break: CDS, EDS, LDS, RDS with the
//!   additions and changes only, then a removal pass with the clusters and
//!   listeners that are gone. Their load assignments and route
//!   configurations are not named as removed: Envoy drops them with the
//!   cluster or listener (a draining listener keeps its routes, and Envoy
//!   ignores a route configuration's removal, logging an error). As in the state of the world, when the snapshot
//!   adds clusters whose endpoints the client does not hold, the route
//!   configurations and the removal pass wait until it holds them (Envoy
//!   subscribes once it has the cluster) or NACKs the clusters.
//! * Warming: a cluster that is sent (new or changed) is re-created by
//!   Envoy and waits for its endpoints, so its load assignment follows in
//!   the same pass even if unchanged; after listeners, the route
//!   configurations the client holds follow likewise.
//! * Memory is bounded: a client may name at most [`MAX_NAMES`] resources
//!   per type, and the nonces kept for ACK matching are the last
//!   [`IN_FLIGHT`] per type.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};

use super::snapshot::{ResourceType, Snapshot};
use super::stream::{Event, Nack, condense_nack};

/// The most names one client may subscribe to per type; more are ignored
/// (and reported). A profile's largest type is a few thousand clusters.
pub const MAX_NAMES: usize = 100_000;
/// Responses per type whose nonce an ACK or NACK may still answer.
pub const IN_FLIGHT: usize = 16;

const WILDCARD: &str = "*";

/// The per-resource version a delta client is told and reports back.
pub fn resource_version(hash: u64) -> String {
    format!("{hash:016x}")
}

fn parse_version(v: &str) -> Option<u64> {
    (v.len() == 16).then(|| u64::from_str_radix(v, 16).ok()).flatten()
}

/// One response still open to an ACK or a NACK.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    nonce: String,
    version: String,
    /// The resources it carried, at their content hash.
    resources: Vec<(String, u64)>,
}

/// One type's subscription and what the client holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaType {
    /// Set by the type's first request.
    pub started: bool,
    pub wildcard: bool,
    /// Names subscribed to explicitly.
    pub names: BTreeSet<String>,
    /// What the client holds: name -> content hash.
    pub held: BTreeMap<String, u64>,
    /// Names asked for that do not exist and were answered as removed.
    told_absent: BTreeSet<String>,
    /// Contents the client rejected, by name: never sent again.
    rejected: BTreeMap<String, u64>,
    /// Send these again even if held unchanged (their parent was re-sent).
    force: BTreeSet<String>,
    in_flight: VecDeque<InFlight>,
    /// The snapshot version of the last response sent, and of the last one
    /// acknowledged.
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    pub nack: Option<Nack>,
}

impl DeltaType {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// The protocol state of one delta ADS stream.
#[derive(Debug, Default)]
pub struct DeltaState {
    types: [DeltaType; 4],
    snapshot: Option<Arc<Snapshot>>,
    nonce: u64,
    /// RDS and the removal pass of the last snapshot, held back until the
    /// client holds the endpoints of these new clusters.
    deferred: Option<BTreeSet<String>>,
}

/// What a response may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Changes,
    Removals,
    Both,
}

impl DeltaState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn type_state(&self, ty: ResourceType) -> &DeltaType {
        &self.types[ty.index()]
    }

    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// Applies a request; returns what to log and the responses to send.
    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> (Vec<Event>, Vec<DeltaDiscoveryResponse>) {
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            return (vec![Event::UnknownType { type_url: req.type_url.clone() }], vec![]);
        };
        let mut events = Vec::new();
        let t = &mut self.types[ty.index()];
        let first = !t.started;
        t.started = true;
        if first && req.resource_names_subscribe.is_empty() && req.resource_names_unsubscribe.is_empty() {
            t.wildcard = true;
        }
        for name in &req.resource_names_subscribe {
            if name == WILDCARD {
                t.wildcard = true;
                continue;
            }
            if t.names.len() >= MAX_NAMES && !t.names.contains(name) {
                events.push(Event::TooManyNames { ty, limit: MAX_NAMES });
                break;
            }
            t.names.insert(name.clone());
            // Asked again: whatever the client had, it gets it again.
            t.held.remove(name);
            t.told_absent.remove(name);
        }
        for name in &req.resource_names_unsubscribe {
            if name == WILDCARD {
                t.wildcard = false;
                let names = &t.names;
                t.held.retain(|n, _| names.contains(n));
                t.told_absent.retain(|n| names.contains(n));
                continue;
            }
            t.names.remove(name);
            if !t.wildcard {
                t.held.remove(name);
            }
            t.told_absent.remove(name);
        }
        if first {
            // What the client kept from an earlier stream, at the versions
            // it reports; a version this daemon did not write counts as
            // not held.
            for (name, version) in &req.initial_resource_versions {
                if t.held.len() >= MAX_NAMES {
                    events.push(Event::TooManyNames { ty, limit: MAX_NAMES });
                    break;
                }
                if let Some(hash) = parse_version(version) {
                    t.held.insert(name.clone(), hash);
                }
            }
        }
        if !req.response_nonce.is_empty() {
            match t.in_flight.iter().position(|f| f.nonce == req.response_nonce) {
                None => events.push(Event::Stale { ty, nonce: req.response_nonce.clone() }),
                Some(at) => {
                    let answered = t.in_flight.remove(at).expect("position is in range");
                    match &req.error_detail {
                        Some(status) => {
                            let message = condense_nack(&status.message);
                            t.rejected.extend(answered.resources);
                            events.push(Event::Nack {
                                ty,
                                version: answered.version.clone(),
                                message: message.clone(),
                            });
                            t.nack = Some(Nack { version: answered.version, nonce: answered.nonce, message });
                        }
                        None => {
                            events.push(Event::Ack { ty, version: answered.version.clone() });
                            t.acked_version = Some(answered.version);
                        }
                    }
                }
            }
        }
        let deferred = self.deferred.is_some();
        // While routes are held back, nothing is removed and no route
        // configuration is sent: they come after the new endpoints.
        let pass = if deferred { Pass::Changes } else { Pass::Both };
        let mut responses: Vec<DeltaDiscoveryResponse> =
            if deferred && ty == ResourceType::Route { vec![] } else { self.respond(ty, pass).into_iter().collect() };
        if let Some(waiting) = &self.deferred {
            let held = &self.types[ResourceType::Endpoint.index()].held;
            let warm = ty == ResourceType::Endpoint && waiting.iter().all(|c| held.contains_key(c));
            let refused = ty == ResourceType::Cluster && events.iter().any(|e| matches!(e, Event::Nack { .. }));
            if warm || refused {
                self.deferred = None;
                responses.extend(self.respond(ResourceType::Route, Pass::Changes));
                responses.extend(self.removal_pass());
            }
        }
        (events, responses)
    }

    /// Takes a new snapshot (or none, when the proxy left the profile) and
    /// returns the responses that bring the client up to date, in
    /// make-before-break order.
    pub fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>) -> Vec<DeltaDiscoveryResponse> {
        self.snapshot = snapshot;
        self.deferred = None;
        if self.snapshot.is_none() {
            return vec![];
        }
        let mut out = Vec::new();
        let mut fresh = BTreeSet::new();
        for ty in ResourceType::ALL {
            if ty == ResourceType::Route {
                let waiting = self.not_warm(&fresh);
                if !waiting.is_empty() {
                    self.deferred = Some(waiting);
                    return out;
                }
            }
            let response = self.respond(ty, Pass::Changes);
            if let (ResourceType::Cluster, Some(r)) = (ty, &response) {
                fresh = r.resources.iter().map(|r| r.name.clone()).collect();
            }
            out.extend(response);
        }
        out.extend(self.removal_pass());
        out
    }

    fn removal_pass(&mut self) -> Vec<DeltaDiscoveryResponse> {
        ResourceType::ALL.into_iter().filter_map(|ty| self.respond(ty, Pass::Removals)).collect()
    }

    /// Of the clusters just sent, those with a load assignment the client
    /// does not hold, when it holds route configurations that a new version
    /// could point at them.
    fn not_warm(&self, sent: &BTreeSet<String>) -> BTreeSet<String> {
        let Some(snapshot) = &self.snapshot else { return BTreeSet::new() };
        let routes = &self.types[ResourceType::Route.index()];
        if routes.held.is_empty() || !self.types[ResourceType::Endpoint.index()].started {
            return BTreeSet::new();
        }
        let held = &self.types[ResourceType::Endpoint.index()].held;
        let endpoints = &snapshot.resources(ResourceType::Endpoint).items;
        sent.iter().filter(|c| endpoints.contains_key(*c) && !held.contains_key(*c)).cloned().collect()
    }

    /// The response for `ty` if the client should get one now.
    fn respond(&mut self, ty: ResourceType, pass: Pass) -> Option<DeltaDiscoveryResponse> {
        let snapshot = self.snapshot.clone()?;
        let resources = snapshot.resources(ty);
        let t = &mut self.types[ty.index()];
        if !t.started {
            return None;
        }
        let mut sent = Vec::new();
        let mut removed = Vec::new();
        if pass != Pass::Removals {
            let wanted: Box<dyn Iterator<Item = &super::snapshot::Resource>> = if t.wildcard {
                Box::new(resources.items.values())
            } else {
                Box::new(t.names.iter().filter_map(|n| resources.items.get(n)))
            };
            for r in wanted {
                let stale = t.held.get(&r.name) != Some(&r.hash) || t.force.contains(&r.name);
                if stale && t.rejected.get(&r.name) != Some(&r.hash) {
                    sent.push(r);
                }
            }
            t.force.clear();
            for r in &sent {
                t.held.insert(r.name.clone(), r.hash);
                t.told_absent.remove(&r.name);
                t.rejected.remove(&r.name);
            }
        }
        if pass != Pass::Changes {
            let gone: Vec<String> = t.held.keys().filter(|n| !resources.items.contains_key(*n)).cloned().collect();
            for name in gone {
                t.held.remove(&name);
                t.rejected.remove(&name);
                if t.wants(&name) {
                    t.told_absent.insert(name.clone());
                }
                // Envoy drops a load assignment or route configuration itself
                // when the cluster or listener naming it goes (and ignores a
                // route configuration's removal, with an error in its log).
                if matches!(ty, ResourceType::Cluster | ResourceType::Listener) {
                    removed.push(name);
                }
            }
            let absent: Vec<String> = t
                .names
                .iter()
                .filter(|n| !resources.items.contains_key(*n) && !t.told_absent.contains(*n))
                .cloned()
                .collect();
            t.told_absent.extend(absent.iter().cloned());
            removed.extend(absent);
            removed.sort();
        }
        if sent.is_empty() && removed.is_empty() {
            return None;
        }
        // What was (re)created waits for what fills it: the endpoints of the
        // clusters sent, the route configurations of the listeners sent.
        match ty {
            ResourceType::Cluster if !sent.is_empty() => {
                let names: Vec<String> = sent.iter().map(|r| r.name.clone()).collect();
                self.types[ResourceType::Endpoint.index()].force.extend(names);
            }
            ResourceType::Listener if !sent.is_empty() => {
                let routes = &mut self.types[ResourceType::Route.index()];
                let held: Vec<String> = routes.held.keys().cloned().collect();
                routes.force.extend(held);
            }
            _ => {}
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let t = &mut self.types[ty.index()];
        t.in_flight.push_back(InFlight {
            nonce: nonce.clone(),
            version: resources.version.clone(),
            resources: sent.iter().map(|r| (r.name.clone(), r.hash)).collect(),
        });
        if t.in_flight.len() > IN_FLIGHT {
            t.in_flight.pop_front();
        }
        t.sent_version = Some(resources.version.clone());
        Some(DeltaDiscoveryResponse {
            system_version_info: resources.version.clone(),
            resources: sent
                .into_iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: resource_version(r.hash),
                    resource: Some(envoy_types::pb::google::protobuf::Any::clone(&r.body)),
                    ..Default::default()
                })
                .collect(),
            type_url: ty.type_url().to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests;
