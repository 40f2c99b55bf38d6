//! State of the world against delta xDS, for the changes that matter: what
//! each protocol sends for one change, measured, not asserted. Run with
//! `cargo bench --bench protocols`.
//!
//! One proxy with 1,000 routes (50 domains on 5 ports, 20 routes each) and
//! 100 static clusters of 100 endpoints (10,000 endpoints). A client that
//! behaves as Envoy does (wildcard CDS and LDS, EDS and RDS by name, every
//! response ACKed, new names subscribed as clusters and listeners arrive)
//! is driven against each protocol's pure stream state in one process, so
//! the figures are the protocol's own: the responses and their bytes for
//! one change, and the time from the new snapshot to the client's last ACK
//! (the state's work plus encoding each response, no socket). Per change:
//!
//! 1. one endpoint of 10,000 changes;
//! 2. one route of 1,000 changes (its timeout);
//! 3. a new cluster of 100 endpoints, and the route that sends to it;
//! 4. the client reconnects holding everything (a devbridge restart): the
//!    state of the world sends everything again, delta what differs.

#[path = "support/large_profile.rs"]
mod large;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use devbridge::model::EndpointSet;
use devbridge::profile::parse_profile;
use devbridge::xds::delta::{DeltaState, resource_version};
use devbridge::xds::stream::StreamState;
use devbridge::xds::translate::translate;
use devbridge::xds::{ResourceType, Snapshot};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use large::{CLUSTERS, Change, DOMAINS, ENDPOINTS, ROUTES, large_profile};
use prost::Message;

const ROUNDS: usize = 100;

fn snapshot(text: &str) -> Arc<Snapshot> {
    let profile = parse_profile("bench.toml", "bench", text).unwrap();
    translate(&profile, &EndpointSet::new()).unwrap().remove("p").unwrap()
}

/// What one change cost: responses, bytes on the wire, and the time.
#[derive(Default)]
struct Cost {
    responses: usize,
    bytes: usize,
    resources: usize,
}

/// The names Envoy subscribes to by name once it has `snapshot`'s
/// clusters (their load assignments) and listeners (their routes).
fn named(snapshot: &Snapshot, ty: ResourceType) -> Vec<String> {
    snapshot.resources(ty).names().into_iter().collect()
}

/// The same interface over both protocols, so one client drives either.
trait Driven {
    fn name() -> &'static str;
    /// The stream after `snapshot` was served to the client and ACKed.
    fn settled(snapshot: &Arc<Snapshot>) -> Self;
    /// A new snapshot and every exchange it causes, until the client is quiet.
    fn change(&mut self, snapshot: &Arc<Snapshot>) -> Cost;
    /// A client reconnecting to a new stream serving `snapshot`, holding `held`.
    fn reconnect(held: &Arc<Snapshot>, snapshot: &Arc<Snapshot>) -> Cost;
}

struct Sotw {
    state: StreamState,
    nonces: BTreeMap<ResourceType, (String, String)>,
    names: BTreeMap<ResourceType, Vec<String>>,
}

impl Sotw {
    fn request(&self, ty: ResourceType) -> DiscoveryRequest {
        let (version, nonce) = self.nonces.get(&ty).cloned().unwrap_or_default();
        DiscoveryRequest {
            version_info: version,
            resource_names: self.names.get(&ty).cloned().unwrap_or_default(),
            type_url: ty.type_url().to_string(),
            response_nonce: nonce,
            ..Default::default()
        }
    }

    fn drive(&mut self, first: Vec<DiscoveryResponse>) -> Cost {
        let mut cost = Cost::default();
        let mut queue: VecDeque<DiscoveryResponse> = first.into();
        while let Some(r) = queue.pop_front() {
            cost.responses += 1;
            cost.resources += r.resources.len();
            cost.bytes += std::hint::black_box(r.encode_to_vec()).len();
            let ty = ResourceType::from_type_url(&r.type_url).unwrap();
            self.nonces.insert(ty, (r.version_info.clone(), r.nonce.clone()));
            queue.extend(self.state.on_request(&self.request(ty)).1);
            // Envoy asks for the endpoints of the clusters and the routes of
            // the listeners it was just given.
            let follow = match ty {
                ResourceType::Cluster => Some(ResourceType::Endpoint),
                ResourceType::Listener => Some(ResourceType::Route),
                _ => None,
            };
            if let Some(dep) = follow {
                let want = named(self.state.snapshot().unwrap(), dep);
                if self.names.get(&dep) != Some(&want) {
                    self.names.insert(dep, want);
                    queue.extend(self.state.on_request(&self.request(dep)).1);
                }
            }
        }
        cost
    }
}

impl Driven for Sotw {
    fn name() -> &'static str {
        "sotw"
    }

    fn settled(snapshot: &Arc<Snapshot>) -> Self {
        let mut s = Sotw { state: StreamState::new(), nonces: BTreeMap::new(), names: BTreeMap::new() };
        s.state.on_snapshot(Some(snapshot.clone()));
        for ty in [ResourceType::Cluster, ResourceType::Listener] {
            let first = s.state.on_request(&s.request(ty)).1;
            s.drive(first);
        }
        s
    }

    fn change(&mut self, snapshot: &Arc<Snapshot>) -> Cost {
        let first = self.state.on_snapshot(Some(snapshot.clone()));
        self.drive(first)
    }

    fn reconnect(held: &Arc<Snapshot>, snapshot: &Arc<Snapshot>) -> Cost {
        // Envoy asks again for all it has, naming the versions it holds.
        let mut s = Sotw { state: StreamState::new(), nonces: BTreeMap::new(), names: BTreeMap::new() };
        s.state.on_snapshot(Some(snapshot.clone()));
        s.names.insert(ResourceType::Endpoint, named(held, ResourceType::Endpoint));
        s.names.insert(ResourceType::Route, named(held, ResourceType::Route));
        let mut first = Vec::new();
        for ty in ResourceType::ALL {
            let mut req = s.request(ty);
            req.version_info = held.resources(ty).version.clone();
            first.extend(s.state.on_request(&req).1);
        }
        s.drive(first)
    }
}

struct Delta {
    state: DeltaState,
    subscribed: BTreeMap<ResourceType, BTreeSet<String>>,
}

impl Delta {
    fn drive(&mut self, first: Vec<DeltaDiscoveryResponse>) -> Cost {
        let mut cost = Cost::default();
        let mut queue: VecDeque<DeltaDiscoveryResponse> = first.into();
        while let Some(r) = queue.pop_front() {
            cost.responses += 1;
            cost.resources += r.resources.len() + r.removed_resources.len();
            cost.bytes += std::hint::black_box(r.encode_to_vec()).len();
            let ty = ResourceType::from_type_url(&r.type_url).unwrap();
            let ack = DeltaDiscoveryRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                ..Default::default()
            };
            queue.extend(self.state.on_request(&ack).1);
            let follow = match ty {
                ResourceType::Cluster => Some(ResourceType::Endpoint),
                ResourceType::Listener => Some(ResourceType::Route),
                _ => None,
            };
            if let Some(dep) = follow {
                let want: BTreeSet<String> = named(self.state.snapshot().unwrap(), dep).into_iter().collect();
                let have = self.subscribed.entry(dep).or_default();
                let add: Vec<String> = want.difference(have).cloned().collect();
                let drop: Vec<String> = have.difference(&want).cloned().collect();
                if !add.is_empty() || !drop.is_empty() {
                    *have = want;
                    let req = DeltaDiscoveryRequest {
                        type_url: dep.type_url().to_string(),
                        resource_names_subscribe: add,
                        resource_names_unsubscribe: drop,
                        ..Default::default()
                    };
                    queue.extend(self.state.on_request(&req).1);
                }
            }
        }
        cost
    }
}

impl Driven for Delta {
    fn name() -> &'static str {
        "delta"
    }

    fn settled(snapshot: &Arc<Snapshot>) -> Self {
        let mut d = Delta { state: DeltaState::new(), subscribed: BTreeMap::new() };
        d.state.on_snapshot(Some(snapshot.clone()));
        for ty in [ResourceType::Cluster, ResourceType::Listener] {
            let req = DeltaDiscoveryRequest { type_url: ty.type_url().to_string(), ..Default::default() };
            let first = d.state.on_request(&req).1;
            d.drive(first);
        }
        d
    }

    fn change(&mut self, snapshot: &Arc<Snapshot>) -> Cost {
        let first = self.state.on_snapshot(Some(snapshot.clone()));
        self.drive(first)
    }

    fn reconnect(held: &Arc<Snapshot>, snapshot: &Arc<Snapshot>) -> Cost {
        // Envoy lists what it holds, at the versions it holds.
        let mut d = Delta { state: DeltaState::new(), subscribed: BTreeMap::new() };
        d.state.on_snapshot(Some(snapshot.clone()));
        let mut first = Vec::new();
        for ty in ResourceType::ALL {
            let names = named(held, ty);
            let by_name = matches!(ty, ResourceType::Endpoint | ResourceType::Route);
            if by_name {
                d.subscribed.insert(ty, names.iter().cloned().collect());
            }
            let req = DeltaDiscoveryRequest {
                type_url: ty.type_url().to_string(),
                resource_names_subscribe: if by_name { names } else { vec![] },
                initial_resource_versions: held
                    .resources(ty)
                    .items
                    .iter()
                    .map(|(n, r)| (n.clone(), resource_version(r.hash)))
                    .collect(),
                ..Default::default()
            };
            first.extend(d.state.on_request(&req).1);
        }
        d.drive(first)
    }
}

/// `ROUNDS` changes, alternating `a` -> `b` (the change) and `b` -> `a`
/// (back), on one settled stream; the times are of both, the costs of each.
fn changes<P: Driven>(label: &str, a: &Arc<Snapshot>, b: &Arc<Snapshot>) {
    let mut stream = P::settled(a);
    let (mut samples, mut there, mut back) = (Vec::new(), Cost::default(), Cost::default());
    for i in 0..ROUNDS {
        let next = if i % 2 == 0 { b } else { a };
        let t = Instant::now();
        let cost = stream.change(next);
        samples.push(t.elapsed());
        if i % 2 == 0 {
            there = cost;
        } else {
            back = cost;
        }
    }
    support::report(&format!("{label}, {}", P::name()), samples);
    println!("    the change: {}; back: {}", there.line(), back.line());
}

fn reconnects<P: Driven>(label: &str, held: &Arc<Snapshot>, now: &Arc<Snapshot>) {
    let (mut samples, mut cost) = (Vec::new(), Cost::default());
    for _ in 0..ROUNDS / 4 {
        let t = Instant::now();
        cost = P::reconnect(held, now);
        samples.push(t.elapsed());
    }
    support::report(&format!("{label}, {}", P::name()), samples);
    println!("    {}", cost.line());
}

impl Cost {
    fn line(&self) -> String {
        format!("{} responses, {} resources, {} bytes", self.responses, self.resources, self.bytes)
    }
}
fn main() {
    println!(
        "devbridge protocols benchmark ({} routes, {} endpoints; {} cores): state of the world against delta",
        DOMAINS * ROUTES,
        CLUSTERS * ENDPOINTS,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let base = snapshot(&large_profile(&Change::default()));
    let cases = [
        ("one endpoint of 10,000 changed", snapshot(&large_profile(&Change { port: 9001, ..Change::default() }))),
        ("one route of 1,000 changed", snapshot(&large_profile(&Change { first_timeout: "6s", ..Change::default() }))),
        (
            "a new cluster (and its route)",
            snapshot(&large_profile(&Change { first_cluster: "c100", extra_clusters: 1, ..Change::default() })),
        ),
    ];
    for (label, next) in &cases {
        changes::<Sotw>(label, &base, next);
        changes::<Delta>(label, &base, next);
    }
    let (label, next) = &cases[0];
    let label = format!("reconnect after a restart, {label}");
    reconnects::<Sotw>(&label, &base, next);
    reconnects::<Delta>(&label, &base, next);
    reconnects::<Sotw>("reconnect after a restart, nothing changed", &base, &base);
    reconnects::<Delta>("reconnect after a restart, nothing changed", &base, &base);
}
