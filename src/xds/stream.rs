//! The state-of-the-world ADS protocol for one stream, as a plain struct.
//!
//! [`StreamState`] takes Envoy's requests and new snapshots and returns the
//! responses to send, in order; it never blocks and does no I/O, so every
//! protocol rule is unit-tested here without tonic. The rules:
//!
//! * A request whose `response_nonce` is not the last nonce sent for its
//!   type is stale and is ignored entirely. Before anything of a type was
//!   sent on this stream there is no nonce to be stale against: such a
//!   request (a client that reconnected still carrying an old nonce) is a
//!   first request.
//! * A request answering our last nonce with `error_detail` is a NACK: it is
//!   recorded and the rejected version is never sent again; the stream waits
//!   for a snapshot with a different version. Otherwise it is an ACK.
//! * Subscriptions: on a type's first request an empty name list means
//!   "everything" (legacy wildcard) and keeps meaning it while the lists stay
//!   empty; `*` always means everything; once a client has named resources,
//!   an empty list unsubscribes from all of them. An unsubscribed client
//!   drops what it had, so naming resources again gets them sent again.
//! * A new snapshot is sent make-before-break: CDS, EDS, LDS, RDS with the
//!   additions and changes (clusters and listeners about to be removed, if
//!   the client has them, are kept in that first pass), then CDS and LDS
//!   once more without them.
//! * CDS and LDS responses carry every resource subscribed to; EDS and RDS
//!   responses carry only the resources the client does not hold at their
//!   current content (the xDS spec allows this for those types, and Envoy
//!   updates just the clusters and route configurations named), so one
//!   changed endpoint costs one load assignment on the wire, not all.
//! * A new EDS cluster is warm before a route names it: when a snapshot
//!   adds clusters whose endpoints the client has not asked for yet (Envoy
//!   asks once it has the cluster), the route configurations and the
//!   removal pass wait until the client asks for them and gets them (or
//!   NACKs the clusters). Sent at once, a route to a cluster still warming
//!   answers 503 until its endpoints arrive.
//! * Warming: after clusters are sent, the endpoints of those Envoy creates
//!   or re-creates (new, or changed: it leaves an unchanged cluster as it
//!   is) are sent again even if unchanged, and after listeners, their route
//!   configurations, so a re-created cluster or listener never waits for
//!   data it already had. The final removal pass re-creates nothing, so it
//!   forces nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use super::snapshot::{Resource, ResourceType, Snapshot};

/// What a client subscribed to for one type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Subscription {
    /// No request of this type yet.
    #[default]
    None,
    /// Everything; `legacy` when it came from empty name lists.
    Wildcard { legacy: bool },
    /// These names only (possibly none).
    Names(BTreeSet<String>),
}

/// The last response sent for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub version: String,
    pub nonce: String,
    /// The resources the client holds from it; cleared when it unsubscribes
    /// from everything.
    pub names: BTreeSet<String>,
}

/// Envoy's rejection of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub version: String,
    pub nonce: String,
    pub message: String,
}

/// Per-type protocol state, readable for status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeState {
    pub subscription: Subscription,
    pub sent: Option<Sent>,
    pub acked_version: Option<String>,
    pub nack: Option<Nack>,
    /// Send at the next chance even if unchanged (a dependent resource was
    /// just re-sent and is warming).
    force: bool,
}

/// Something worth logging or counting that a request told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ack {
        ty: ResourceType,
        version: String,
    },
    Nack {
        ty: ResourceType,
        version: String,
        message: String,
    },
    /// A request answering a nonce that is not the latest; ignored.
    Stale {
        ty: ResourceType,
        nonce: String,
    },
    /// A type devbridge does not serve (e.g. SDS); ignored.
    UnknownType {
        type_url: String,
    },
    /// A delta client subscribed to more names than one stream keeps; the
    /// rest of the request's names were ignored.
    TooManyNames {
        ty: ResourceType,
        limit: usize,
    },
}

/// The protocol state of one ADS stream.
#[derive(Debug, Default)]
pub struct StreamState {
    types: [TypeState; 4],
    /// Per type, what the client holds: name -> content hash of the resource
    /// last sent under that name.
    held: [BTreeMap<String, u64>; 4],
    snapshot: Option<Arc<Snapshot>>,
    nonce: u64,
    /// RDS and the removal pass of the last snapshot, held back until the
    /// client holds the endpoints of these new clusters.
    deferred: Option<Deferred>,
}

#[derive(Debug)]
struct Deferred {
    waiting: BTreeSet<String>,
    removals: Vec<ResourceType>,
}

impl StreamState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn type_state(&self, ty: ResourceType) -> &TypeState {
        &self.types[ty.index()]
    }

    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// Applies a request; returns what to log and the responses to send.
    pub fn on_request(&mut self, req: &DiscoveryRequest) -> (Vec<Event>, Vec<DiscoveryResponse>) {
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            return (vec![Event::UnknownType { type_url: req.type_url.clone() }], vec![]);
        };
        let mut events = Vec::new();
        let ts = &mut self.types[ty.index()];
        // Before anything of this type was sent, a nonce can only be from an
        // earlier stream: the request is a first request.
        if let Some(sent) = ts.sent.as_ref().filter(|_| !req.response_nonce.is_empty()) {
            if sent.nonce != req.response_nonce {
                events.push(Event::Stale { ty, nonce: req.response_nonce.clone() });
                return (events, vec![]);
            }
            if let Some(status) = &req.error_detail {
                // Envoy repeats a NACK when it re-requests; report each rejection once.
                if ts.nack.as_ref().is_some_and(|n| n.nonce == sent.nonce) {
                    return (events, vec![]);
                }
                let message = condense_nack(&status.message);
                let nack = Nack { version: sent.version.clone(), nonce: sent.nonce.clone(), message };
                events.push(Event::Nack { ty, version: nack.version.clone(), message: nack.message.clone() });
                ts.nack = Some(nack);
            } else {
                ts.acked_version = Some(req.version_info.clone());
                events.push(Event::Ack { ty, version: req.version_info.clone() });
            }
        }
        ts.subscription = next_subscription(&ts.subscription, &req.resource_names);
        // While routes are held back, clusters and listeners keep what is
        // going away: the removal pass comes after the routes.
        let held_back = self.deferred.as_ref().is_some_and(|d| d.removals.contains(&ty));
        let mut responses: Vec<DiscoveryResponse> =
            if held_back { Vec::new() } else { self.respond(ty, None, true).into_iter().collect() };
        if let Some(d) = &self.deferred {
            let held = &self.held[ResourceType::Endpoint.index()];
            let warm = ty == ResourceType::Endpoint && d.waiting.iter().all(|c| held.contains_key(c));
            let refused = ty == ResourceType::Cluster && events.iter().any(|e| matches!(e, Event::Nack { .. }));
            if warm || refused {
                responses.extend(self.release());
            }
        }
        (events, responses)
    }

    /// What a deferred snapshot held back: its route configurations, then
    /// the removal pass.
    fn release(&mut self) -> Vec<DiscoveryResponse> {
        let Some(d) = self.deferred.take() else { return vec![] };
        let mut out: Vec<DiscoveryResponse> = self.respond(ResourceType::Route, None, true).into_iter().collect();
        for ty in d.removals {
            out.extend(self.respond(ty, None, false));
        }
        out
    }

    /// Takes a new snapshot (or none, when the proxy left the profile) and
    /// returns the responses that bring the client up to date, in
    /// make-before-break order.
    pub fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>) -> Vec<DiscoveryResponse> {
        let old = std::mem::replace(&mut self.snapshot, snapshot);
        self.deferred = None;
        if self.snapshot.is_none() {
            return vec![];
        }
        let mut out = Vec::new();
        let mut removals = Vec::new();
        let mut waiting = BTreeSet::new();
        for ty in ResourceType::ALL {
            if ty == ResourceType::Route {
                waiting = self.new_clusters_not_warm();
                if !waiting.is_empty() {
                    continue;
                }
            }
            // Keep resources that are about to disappear until the types
            // that refer to them have moved on.
            let keep = match (ty, &old) {
                (ResourceType::Cluster | ResourceType::Listener, Some(old)) => {
                    let new = self.snapshot.as_ref().map(|s| s.resources(ty).names()).unwrap_or_default();
                    let held = &self.held[ty.index()];
                    let gone: BTreeMap<_, _> = old
                        .resources(ty)
                        .items
                        .iter()
                        .filter(|(n, _)| !new.contains(*n) && held.contains_key(*n))
                        .map(|(n, r)| (n.clone(), Any::clone(&r.body)))
                        .collect();
                    if !gone.is_empty() {
                        removals.push(ty);
                    }
                    gone
                }
                _ => BTreeMap::new(),
            };
            let kept = (!keep.is_empty()).then_some(&keep);
            out.extend(self.respond(ty, kept, true));
        }
        if !waiting.is_empty() {
            self.deferred = Some(Deferred { waiting, removals });
            return out;
        }
        for ty in removals {
            // Only removals: what remains is what was just sent, so nothing
            // re-warms and dependents need not follow again.
            out.extend(self.respond(ty, None, false));
        }
        out
    }

    /// The snapshot's EDS clusters whose endpoints a client that names its
    /// EDS resources does not hold, when it holds route configurations that
    /// a new version could point at them.
    fn new_clusters_not_warm(&self) -> BTreeSet<String> {
        let Some(snapshot) = &self.snapshot else { return BTreeSet::new() };
        let named = matches!(self.types[ResourceType::Endpoint.index()].subscription, Subscription::Names(_));
        let routes_subscribed = !matches!(self.types[ResourceType::Route.index()].subscription, Subscription::None);
        let has_routes = !snapshot.resources(ResourceType::Route).items.is_empty();
        if !named || !routes_subscribed || !has_routes || self.types[ResourceType::Route.index()].sent.is_none() {
            return BTreeSet::new();
        }
        let held = &self.held[ResourceType::Endpoint.index()];
        snapshot.resources(ResourceType::Endpoint).items.keys().filter(|c| !held.contains_key(*c)).cloned().collect()
    }

    /// The response for `ty` if the client should get one now. `keep` adds
    /// resources from the previous snapshot, under a version of their own;
    /// `warm_dependents` makes the types that fill `ty` follow it.
    fn respond(
        &mut self,
        ty: ResourceType,
        keep: Option<&BTreeMap<String, Any>>,
        warm_dependents: bool,
    ) -> Option<DiscoveryResponse> {
        let snapshot = self.snapshot.clone()?;
        let ts = &self.types[ty.index()];
        let resources = snapshot.resources(ty);
        let wanted: BTreeMap<&String, &Resource> = match &ts.subscription {
            Subscription::None => return None,
            Subscription::Wildcard { .. } => resources.items.iter().collect(),
            Subscription::Names(names) => names.iter().filter_map(|n| resources.items.get_key_value(n)).collect(),
        };
        if matches!(&ts.subscription, Subscription::Names(n) if n.is_empty()) {
            // The client unsubscribed and dropped what it had; whatever it
            // names next is new to it, even at the same version.
            if let Some(sent) = &mut self.types[ty.index()].sent {
                sent.names.clear();
            }
            self.held[ty.index()].clear();
            return None;
        }
        let held = &self.held[ty.index()];
        let incremental = matches!(ty, ResourceType::Endpoint | ResourceType::Route) && !ts.force;
        let mut items: BTreeMap<String, Any> = wanted
            .iter()
            .filter(|(n, r)| !incremental || held.get(**n) != Some(&r.hash))
            .map(|(n, r)| ((*n).clone(), Any::clone(&r.body)))
            .collect();
        let mut version = resources.version.clone();
        if let Some(keep) = keep {
            items.extend(keep.iter().map(|(n, a)| (n.clone(), a.clone())));
            version = format!("{version}-keeping-{}", keep.len());
        }
        let names: BTreeSet<String> = items.keys().cloned().collect();
        let unchanged = if incremental {
            items.is_empty()
        } else {
            ts.sent.as_ref().is_some_and(|s| s.version == version && s.names == names)
        };
        if unchanged && !ts.force {
            return None;
        }
        // A rejected version is not sent again for the same names.
        if ts.nack.as_ref().is_some_and(|n| n.version == version) && ts.sent.as_ref().is_some_and(|s| s.names == names)
        {
            return None;
        }
        // Record what the client holds once this response is applied: all of
        // it for CDS and LDS; for EDS and RDS, what it had and still wants,
        // updated with what is sent.
        let held = &mut self.held[ty.index()];
        // The clusters Envoy creates or re-creates from this response: those
        // it did not hold at this content (it leaves an unchanged one as it is).
        let recreated: Vec<&String> = if ty == ResourceType::Cluster && warm_dependents {
            wanted
                .iter()
                .filter(|(n, r)| names.contains(**n) && held.get(**n) != Some(&r.hash))
                .map(|(n, _)| *n)
                .collect()
        } else {
            Vec::new()
        };
        if incremental {
            held.retain(|n, _| wanted.contains_key(n));
        } else {
            held.clear();
        }
        held.extend(wanted.iter().filter(|(n, _)| names.contains(**n)).map(|(n, r)| ((*n).clone(), r.hash)));
        // A re-created cluster waits for its endpoints again: they are no
        // longer held, so the next EDS response carries them even if
        // unchanged, and only them.
        let endpoints = &mut self.held[ResourceType::Endpoint.index()];
        for n in recreated {
            endpoints.remove(n);
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let ts = &mut self.types[ty.index()];
        ts.force = false;
        ts.sent = Some(Sent { version: version.clone(), nonce: nonce.clone(), names });
        // Dependents of what was just sent must follow, even if unchanged.
        match ty {
            ResourceType::Listener if warm_dependents => self.types[ResourceType::Route.index()].force = true,
            _ => {}
        }
        Some(DiscoveryResponse {
            version_info: version,
            resources: items.into_values().collect(),
            type_url: ty.type_url().to_string(),
            nonce,
            ..Default::default()
        })
    }
}

fn next_subscription(current: &Subscription, names: &[String]) -> Subscription {
    if names.iter().any(|n| n == "*") {
        return Subscription::Wildcard { legacy: false };
    }
    if names.is_empty() {
        return match current {
            Subscription::None | Subscription::Wildcard { legacy: true } => Subscription::Wildcard { legacy: true },
            _ => Subscription::Names(BTreeSet::new()),
        };
    }
    Subscription::Names(names.iter().cloned().collect())
}

mod nack;
pub use nack::condense_nack;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
