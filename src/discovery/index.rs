//! The endpoint index: watch events in, endpoints per cluster out. Pure: no
//! kube client, no runtime, no clock.
//!
//! Each watch has a [`Store`] that applies kube's watcher events. A relist
//! (`Init`, `InitApply`.., `InitDone`) is collected aside and swapped in
//! whole at `InitDone`, so readers never see a half-listed set, and neither
//! `Init` nor an error clears anything: the last known objects stay until
//! the API server says otherwise.
//!
//! For each cluster, every object gets a [`Selection`]: its endpoints, or
//! why it was skipped. Selections are recomputed only for the objects an
//! event touched, so one pod changing among ten thousand costs one pod,
//! and each cluster's endpoints are kept sorted as they change, as a list
//! in shared chunks ([`Endpoints`]): an edit remakes the chunk it falls in,
//! and what is handed on is the list itself, sharing its other chunks with
//! the list before it (which is how the EDS packer knows what to encode).

pub mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

use objects::{ContainerPort, NodeInfo, Object, PodInfo, SliceInfo};

use super::plan::{Plan, PodRule, Rule, WatchKey};
use crate::model::{AddressKind, Endpoint, PortRef};
use crate::model::{EndpointSet, Endpoints};

/// A watcher event (kube's `watcher::Event`) on a reduced object.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A relist starts; what is known stays until it is done.
    Init,
    InitApply(Object),
    /// The relist is complete: it replaces what was known, at once.
    InitDone,
    Apply(Object),
    Delete(Object),
}

/// What one event changed in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Touched {
    Nothing,
    Keys(Vec<String>),
    All,
}

/// The objects of one watch, by key.
#[derive(Debug, Default)]
pub struct Store {
    live: BTreeMap<String, Object>,
    relist: Option<BTreeMap<String, Object>>,
    /// A list has completed at least once.
    synced: bool,
}

impl Store {
    fn apply(&mut self, change: Change) -> Touched {
        match change {
            Change::Init => {
                self.relist = Some(BTreeMap::new());
                Touched::Nothing
            }
            Change::InitApply(o) => {
                self.relist.get_or_insert_default().insert(o.key(), o);
                Touched::Nothing
            }
            Change::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let first = !self.synced;
                self.synced = true;
                if listed == self.live && !first {
                    return Touched::Nothing;
                }
                self.live = listed;
                Touched::All
            }
            Change::Apply(o) => {
                let key = o.key();
                if self.live.get(&key) == Some(&o) {
                    return Touched::Nothing;
                }
                self.live.insert(key.clone(), o);
                Touched::Keys(vec![key])
            }
            Change::Delete(o) => {
                let key = o.key();
                match self.live.remove(&key) {
                    Some(_) => Touched::Keys(vec![key]),
                    None => Touched::Nothing,
                }
            }
        }
    }

    /// A store holding `objects`, as a completed list would leave it (for
    /// selecting pods read once, outside a watch).
    pub fn listed(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut store = Self::default();
        store.apply(Change::Init);
        for o in objects {
            store.apply(Change::InitApply(o));
        }
        store.apply(Change::InitDone);
        store
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn synced(&self) -> bool {
        self.synced
    }

    fn node(&self, name: &str) -> Option<&NodeInfo> {
        match self.live.get(name) {
            Some(Object::Node(n)) => Some(n),
            _ => None,
        }
    }
}

/// Why an object gave a cluster no endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    Terminating,
    NotRunning { phase: String },
    NotReady,
    NotHostNetwork,
    NoPodIp,
    NoPort { port: PortRef, has: Vec<String> },
    NotScheduled,
    NodeUnknown { node: String },
    NoNodeAddress { node: String, kind: &'static str },
    NoAddress,
}

impl SkipReason {
    /// Whether the skip comes from the profile not fitting the pods (worth a
    /// warning), rather than from a pod starting or stopping.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Self::NotHostNetwork | Self::NoPort { .. } | Self::NoNodeAddress { .. })
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Terminating => write!(f, "terminating"),
            Self::NotRunning { phase } => write!(f, "phase is {phase}, not Running"),
            Self::NotReady => write!(f, "not Ready"),
            Self::NotHostNetwork => {
                write!(f, "not on hostNetwork (set host_network = false to take pods on the pod network)")
            }
            Self::NoPodIp => write!(f, "has no pod IP yet"),
            Self::NoPort { port, has } => {
                match port {
                    PortRef::Name(n) => write!(f, "has no port named {n:?}")?,
                    PortRef::Number(n) => write!(f, "has no port {n}")?,
                }
                match has.as_slice() {
                    [] => write!(f, "; it declares no ports"),
                    has => write!(f, "; it has {}", has.join(", ")),
                }
            }
            Self::NotScheduled => write!(f, "is not scheduled on a node yet"),
            Self::NodeUnknown { node } => write!(f, "runs on node {node}, which the nodes watch has not seen"),
            Self::NoNodeAddress { node, kind } => write!(f, "its node {node} has no {kind}"),
            Self::NoAddress => write!(f, "has no IP address"),
        }
    }
}

/// One skipped pod (or EndpointSlice endpoint) and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub cluster: String,
    /// `namespace/name` of the pod (for slices: of the pod behind the endpoint).
    pub object: String,
    pub reason: SkipReason,
}

/// What selection made of one object for one cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub endpoints: Vec<Endpoint>,
    pub skipped: Vec<(String, SkipReason)>,
}

/// Per watch: how many objects it holds, how many give an endpoint, and
/// every skipped one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchStats {
    pub seen: usize,
    pub selected: usize,
    pub skipped: Vec<Skipped>,
}

/// Every store of a plan and the endpoints each cluster gets from them.
#[derive(Debug, Default)]
pub struct Index {
    plan: Plan,
    readers: BTreeMap<WatchKey, BTreeSet<String>>,
    stores: BTreeMap<WatchKey, Store>,
    /// cluster -> object key -> selection.
    selections: BTreeMap<String, BTreeMap<String, Selection>>,
    /// cluster -> every selected endpoint, sorted: kept up to date one
    /// object at a time, so a list of 10,000 is never gathered and sorted
    /// again, nor copied, when one pod changes.
    sorted: BTreeMap<String, Endpoints>,
}

impl Index {
    /// Follows a new plan: stores of watches it keeps stay, the others go,
    /// and every cluster is selected again (its rule may have changed).
    pub fn set_plan(&mut self, plan: Plan) {
        let readers = plan.watches();
        self.stores.retain(|k, _| readers.contains_key(k));
        for k in readers.keys() {
            self.stores.entry(k.clone()).or_default();
        }
        self.plan = plan;
        self.readers = readers;
        self.selections.clear();
        self.sorted.clear();
        let names: Vec<String> = self.plan.clusters.keys().cloned().collect();
        for name in names {
            self.reselect_cluster(&name);
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn store(&self, key: &WatchKey) -> Option<&Store> {
        self.stores.get(key)
    }

    /// Applies one event of `key`'s watch; returns the clusters whose
    /// endpoints changed. Events of a watch the plan no longer has are ignored.
    pub fn apply(&mut self, key: &WatchKey, change: Change) -> BTreeSet<String> {
        let Some(store) = self.stores.get_mut(key) else { return BTreeSet::new() };
        let touched = store.apply(change);
        let readers = self.readers.get(key).cloned().unwrap_or_default();
        let mut changed = BTreeSet::new();
        for cluster in readers {
            let moved = match (&touched, key) {
                (Touched::Nothing, _) => false,
                // A node change can move any pod of the cluster (address, zone).
                (Touched::All, _) | (Touched::Keys(_), WatchKey::Nodes { .. }) => self.reselect_cluster(&cluster),
                (Touched::Keys(keys), _) => {
                    // Every key is reselected: no short-circuit.
                    let mut moved = false;
                    for k in keys {
                        moved |= self.reselect_object(&cluster, key, k);
                    }
                    moved
                }
            };
            if moved {
                changed.insert(cluster);
            }
        }
        changed
    }

    /// A cluster's endpoints, sorted (a shared list: cloning it is cheap).
    pub fn endpoints(&self, cluster: &str) -> Endpoints {
        self.sorted.get(cluster).cloned().unwrap_or_default()
    }

    /// Every planned cluster's endpoints.
    pub fn discovered(&self) -> EndpointSet {
        self.plan.clusters.keys().map(|c| (c.clone(), self.endpoints(c))).collect()
    }

    /// What a watch holds and what its clusters made of it.
    pub fn stats(&self, key: &WatchKey) -> WatchStats {
        let Some(store) = self.stores.get(key) else { return WatchStats::default() };
        if matches!(key, WatchKey::Nodes { .. }) {
            return WatchStats { seen: store.len(), selected: 0, skipped: vec![] };
        }
        let mut selected = BTreeSet::new();
        let mut skipped = Vec::new();
        for cluster in self.readers.get(key).into_iter().flatten() {
            let Some(sel) = self.selections.get(cluster) else { continue };
            for k in store.live.keys() {
                let Some(s) = sel.get(k) else { continue };
                if !s.endpoints.is_empty() {
                    selected.insert(k);
                }
                skipped.extend(s.skipped.iter().map(|(object, reason)| Skipped {
                    cluster: cluster.clone(),
                    object: object.clone(),
                    reason: reason.clone(),
                }));
            }
        }
        skipped.sort();
        WatchStats { seen: store.len(), selected: selected.len(), skipped }
    }

    /// Selects every object of a cluster again; returns whether its
    /// endpoints changed.
    fn reselect_cluster(&mut self, cluster: &str) -> bool {
        let Some(plan) = self.plan.clusters.get(cluster) else { return false };
        let mut out = BTreeMap::new();
        for w in &plan.watches {
            let Some(store) = self.stores.get(w) else { continue };
            for (k, o) in &store.live {
                out.insert(k.clone(), select(&plan.rule, o, plan.nodes.as_ref().and_then(|n| self.stores.get(n))));
            }
        }
        let endpoints = |m: &BTreeMap<String, Selection>| {
            m.iter().filter(|(_, s)| !s.endpoints.is_empty()).map(|(k, s)| (k.clone(), s.endpoints.clone())).collect()
        };
        let after: BTreeMap<String, Vec<Endpoint>> = endpoints(&out);
        let sorted = out.values().flat_map(|s| s.endpoints.iter().cloned()).collect();
        self.sorted.insert(cluster.to_string(), sorted);
        let before = self.selections.insert(cluster.to_string(), out);
        before.as_ref().map(endpoints) != Some(after)
    }

    /// Selects one object again; returns whether its endpoints changed.
    fn reselect_object(&mut self, cluster: &str, watch: &WatchKey, key: &str) -> bool {
        let Some(plan) = self.plan.clusters.get(cluster) else { return false };
        let object = self.stores.get(watch).and_then(|s| s.live.get(key));
        let nodes = plan.nodes.as_ref().and_then(|n| self.stores.get(n));
        let selection = object.map(|o| select(&plan.rule, o, nodes));
        let sel = self.selections.entry(cluster.to_string()).or_default();
        let before = match selection {
            Some(s) => sel.insert(key.to_string(), s),
            None => sel.remove(key),
        };
        let before = before.map(|s| s.endpoints).unwrap_or_default();
        let after = sel.get(key).map_or(&[][..], |s| s.endpoints.as_slice());
        if before == after {
            return false;
        }
        let sorted = self.sorted.entry(cluster.to_string()).or_default();
        *sorted = sorted.edited(&before, after);
        true
    }
}

fn select(rule: &Rule, object: &Object, nodes: Option<&Store>) -> Selection {
    match (rule, object) {
        (Rule::Pods(rule), Object::Pod(pod)) => {
            let object = format!("{}/{}", pod.namespace, pod.name);
            match select_pod(rule, pod, nodes) {
                Ok(e) => Selection { endpoints: vec![e], skipped: vec![] },
                Err(reason) => Selection { endpoints: vec![], skipped: vec![(object, reason)] },
            }
        }
        (Rule::Service(port), Object::Slice(slice)) => select_slice(port, slice),
        _ => Selection::default(),
    }
}

/// A pod counts when it is Running, Ready, not terminating, on hostNetwork
/// (unless the profile says otherwise), and declares the port.
pub fn select_pod(rule: &PodRule, pod: &PodInfo, nodes: Option<&Store>) -> Result<Endpoint, SkipReason> {
    if pod.terminating {
        return Err(SkipReason::Terminating);
    }
    if pod.phase != "Running" {
        return Err(SkipReason::NotRunning { phase: pod.phase.clone() });
    }
    if !pod.ready {
        return Err(SkipReason::NotReady);
    }
    if rule.host_network && !pod.host_network {
        return Err(SkipReason::NotHostNetwork);
    }
    let port = find_port(&pod.ports, &rule.port)?;
    let node = pod.node.as_deref().and_then(|n| nodes.and_then(|s| s.node(n)));
    let ip = match rule.address {
        AddressKind::Pod => pod.pod_ip.ok_or(SkipReason::NoPodIp)?,
        kind @ (AddressKind::NodeInternal | AddressKind::NodeExternal) => {
            let name = pod.node.as_deref().ok_or(SkipReason::NotScheduled)?;
            let node = node.ok_or_else(|| SkipReason::NodeUnknown { node: name.to_string() })?;
            let (ip, what) = match kind {
                AddressKind::NodeInternal => (node.internal_ip, "InternalIP"),
                _ => (node.external_ip, "ExternalIP"),
            };
            ip.ok_or_else(|| SkipReason::NoNodeAddress { node: name.to_string(), kind: what })?
        }
    };
    Ok(Endpoint {
        unhealthy: false,
        addr: SocketAddr::new(ip, port),
        // An unknown node or a node without the label leaves the endpoint
        // zoneless rather than dropping it: a zone only steers preference.
        zone: if rule.node_zones { node.and_then(|n| n.zone.clone()) } else { None },
        weight: None,
        metadata: pod.labels.clone(),
    })
}

/// The ready endpoints of one EndpointSlice on the cluster's port.
pub fn select_slice(port: &PortRef, slice: &SliceInfo) -> Selection {
    let mut out = Selection::default();
    let port = find_port(&slice.ports, port);
    for e in &slice.endpoints {
        let object = format!("{}/{}", slice.namespace, e.name);
        let selected = match (&port, e.address) {
            (_, _) if e.terminating => Err(SkipReason::Terminating),
            (_, _) if !e.ready => Err(SkipReason::NotReady),
            (Err(why), _) => Err(why.clone()),
            (_, None) => Err(SkipReason::NoAddress),
            (Ok(port), Some(ip)) => Ok(Endpoint {
                unhealthy: false,
                addr: SocketAddr::new(ip, *port),
                zone: e.zone.clone(),
                weight: None,
                metadata: Default::default(),
            }),
        };
        match selected {
            Ok(ep) => out.endpoints.push(ep),
            Err(reason) => out.skipped.push((object, reason)),
        }
    }
    out
}

fn find_port(ports: &[ContainerPort], want: &PortRef) -> Result<u16, SkipReason> {
    let found = ports.iter().find(|p| match want {
        PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
        PortRef::Number(n) => p.port == *n,
    });
    found.map(|p| p.port).ok_or_else(|| SkipReason::NoPort {
        port: want.clone(),
        has: ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{n}={}", p.port),
                None => p.port.to_string(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
