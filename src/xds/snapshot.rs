//! A [`Snapshot`]: every resource one proxy should have, of all four types at
//! once, versioned per type by content hash, and checked for consistency
//! before anyone can publish it (go-control-plane's `Consistent()`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType, cluster::DiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route, route_action::ClusterSpecifier};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT_TYPE_URL: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER_TYPE_URL: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE_URL: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The four resource types devbridge serves, in make-before-break order:
/// clusters before the endpoints that fill them, listeners before the
/// route configurations they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [Self::Cluster, Self::Endpoint, Self::Listener, Self::Route];

    pub fn type_url(self) -> &'static str {
        match self {
            Self::Cluster => CLUSTER_TYPE_URL,
            Self::Endpoint => ENDPOINT_TYPE_URL,
            Self::Listener => LISTENER_TYPE_URL,
            Self::Route => ROUTE_TYPE_URL,
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// The short name users know from Envoy: CDS, EDS, LDS, RDS.
    pub fn short(self) -> &'static str {
        match self {
            Self::Cluster => "CDS",
            Self::Endpoint => "EDS",
            Self::Listener => "LDS",
            Self::Route => "RDS",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One resource, packed, with a hash of its content. The body is shared:
/// a load assignment of 10,000 endpoints is 600 KB, and a snapshot that
/// changes one resource hands every other one on, to every proxy that uses
/// it, without copying its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub body: Arc<Any>,
    pub hash: u64,
}

impl Resource {
    /// Packs `msg`, hashing its encoding. Only for messages whose encoding is
    /// deterministic: no protobuf map with more than one entry.
    pub fn new<M: Message + Name>(name: impl Into<String>, msg: &M) -> Self {
        let value = msg.encode_to_vec();
        let hash = hash_of(&value);
        Self::with_hash(name, msg, value, hash)
    }

    /// Packs `msg` with a hash computed by the caller from the model it was
    /// built from. For messages holding protobuf maps (endpoint metadata),
    /// whose encoding order varies from one build to the next.
    pub fn with_content_hash<M: Message + Name>(name: impl Into<String>, msg: &M, content: impl Hash) -> Self {
        Self::with_hash(name, msg, msg.encode_to_vec(), hash_of(content))
    }

    /// [`with_content_hash`](Self::with_content_hash) for a message the
    /// caller encoded itself (`load_assignment.rs` splices load assignments).
    pub fn from_encoded<M: Name>(name: impl Into<String>, value: Vec<u8>, content: impl Hash) -> Self {
        Self { name: name.into(), body: Arc::new(Any { type_url: M::type_url(), value }), hash: hash_of(content) }
    }

    fn with_hash<M: Name>(name: impl Into<String>, _msg: &M, value: Vec<u8>, hash: u64) -> Self {
        Self { name: name.into(), body: Arc::new(Any { type_url: M::type_url(), value }), hash }
    }
}

/// All resources of one type, with the version Envoy sees.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub version: String,
    pub items: BTreeMap<String, Resource>,
}

impl Resources {
    fn new(items: Vec<Resource>) -> Result<Self, SnapshotError> {
        let mut map = BTreeMap::new();
        for r in items {
            if map.contains_key(&r.name) {
                return Err(SnapshotError::Duplicate { type_url: r.body.type_url.clone(), name: r.name });
            }
            map.insert(r.name.clone(), r);
        }
        Ok(Self::from_map(map))
    }

    fn from_map(map: BTreeMap<String, Resource>) -> Self {
        let mut h = DefaultHasher::new();
        for (name, r) in &map {
            name.hash(&mut h);
            r.hash.hash(&mut h);
        }
        Self { version: format!("{:016x}", h.finish()), items: map }
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.items.keys().cloned().collect()
    }
}

/// The typed resources a snapshot is built from.
#[derive(Debug, Default)]
pub struct SnapshotParts {
    pub clusters: Vec<Cluster>,
    /// Each load assignment with a hash of the model it was built from.
    pub endpoints: Vec<(ClusterLoadAssignment, u64)>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("listener {listener:?} names route configuration {route:?}, which the snapshot lacks")]
    MissingRoute { listener: String, route: String },
    #[error("cluster {cluster:?} takes its endpoints from EDS, but the snapshot has no load assignment {name:?}")]
    MissingEndpoints { cluster: String, name: String },
    #[error("route configuration {route:?} sends traffic to cluster {cluster:?}, which the snapshot lacks")]
    MissingCluster { route: String, cluster: String },
    #[error("listener {listener:?} has an HTTP connection manager that cannot be decoded: {reason}")]
    BadListener { listener: String, reason: String },
    #[error("two resources of type {type_url} are named {name:?}")]
    Duplicate { type_url: String, name: String },
    #[error("load assignment {name:?} replaces none in the snapshot; only a full translation may add one")]
    UnknownEndpoints { name: String },
}

/// Every resource one proxy should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub proxy: String,
    /// A hash of the four type versions.
    pub version: String,
    // Shared, so an endpoint change copies only the load assignments.
    resources: [Arc<Resources>; 4],
}

impl Snapshot {
    /// Checks that the parts are consistent and packs them.
    pub fn build(proxy: impl Into<String>, parts: SnapshotParts) -> Result<Self, SnapshotError> {
        check_consistent(&parts)?;
        let resources = [
            Resources::new(parts.clusters.iter().map(|c| Resource::new(&c.name, c)).collect())?,
            Resources::new(
                parts.endpoints.iter().map(|(cla, h)| Resource::with_content_hash(&cla.cluster_name, cla, h)).collect(),
            )?,
            Resources::new(parts.listeners.iter().map(|l| Resource::new(&l.name, l)).collect())?,
            Resources::new(parts.routes.iter().map(|r| Resource::new(&r.name, r)).collect())?,
        ];
        Ok(Self::assemble(proxy.into(), resources.map(Arc::new)))
    }

    fn assemble(proxy: String, resources: [Arc<Resources>; 4]) -> Self {
        let version = format!("{:016x}", hash_of(resources.iter().map(|r| &r.version).collect::<Vec<_>>()));
        Self { proxy, version, resources }
    }

    /// This snapshot with some load assignments replaced and every other
    /// resource reused as is: the EDS-only path for endpoint changes.
    ///
    /// Only load assignments the snapshot already has may be replaced. The
    /// clusters, listeners and routes are the ones `build` checked, and the
    /// set of load assignment names does not change, so the snapshot stays
    /// consistent without checking it again.
    pub fn with_endpoints(&self, updates: Vec<(ClusterLoadAssignment, u64)>) -> Result<Self, SnapshotError> {
        self.with_load_assignments(
            updates.iter().map(|(cla, hash)| Resource::with_content_hash(&cla.cluster_name, cla, hash)),
        )
    }

    /// [`with_endpoints`](Self::with_endpoints) with the load assignments
    /// already packed.
    pub fn with_load_assignments(&self, updates: impl IntoIterator<Item = Resource>) -> Result<Self, SnapshotError> {
        let mut items = self.resources[ResourceType::Endpoint.index()].items.clone();
        for r in updates {
            let Some(slot) = items.get_mut(&r.name) else {
                return Err(SnapshotError::UnknownEndpoints { name: r.name });
            };
            *slot = r;
        }
        let mut resources = self.resources.clone();
        resources[ResourceType::Endpoint.index()] = Arc::new(Resources::from_map(items));
        Ok(Self::assemble(self.proxy.clone(), resources))
    }

    /// Whether `other` serves the same resources. Versions hash every
    /// resource's content hash, so this compares two strings where `==`
    /// compares every resource's bytes (megabytes with large endpoint sets);
    /// it is also what streams go by (equal versions are not sent again).
    pub fn same_version(&self, other: &Snapshot) -> bool {
        self.proxy == other.proxy && self.version == other.version
    }

    pub fn resources(&self, t: ResourceType) -> &Resources {
        &self.resources[t.index()]
    }
}

fn check_consistent(parts: &SnapshotParts) -> Result<(), SnapshotError> {
    let routes: BTreeSet<&str> = parts.routes.iter().map(|r| r.name.as_str()).collect();
    for l in &parts.listeners {
        for name in listener_route_names(l)? {
            if !routes.contains(name.as_str()) {
                return Err(SnapshotError::MissingRoute { listener: l.name.clone(), route: name });
            }
        }
    }
    let assignments: BTreeSet<&str> = parts.endpoints.iter().map(|(c, _)| c.cluster_name.as_str()).collect();
    for c in &parts.clusters {
        if c.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)) {
            let name = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or(&c.name);
            if !assignments.contains(name) {
                return Err(SnapshotError::MissingEndpoints { cluster: c.name.clone(), name: name.to_string() });
            }
        }
    }
    let clusters: BTreeSet<&str> = parts.clusters.iter().map(|c| c.name.as_str()).collect();
    for rc in &parts.routes {
        for vh in &rc.virtual_hosts {
            for r in &vh.routes {
                let Some(route::Action::Route(action)) = &r.action else { continue };
                let named: Vec<&str> = match &action.cluster_specifier {
                    Some(ClusterSpecifier::Cluster(c)) => vec![c.as_str()],
                    Some(ClusterSpecifier::WeightedClusters(w)) => w.clusters.iter().map(|c| c.name.as_str()).collect(),
                    _ => vec![],
                };
                if let Some(missing) = named.into_iter().find(|c| !clusters.contains(c)) {
                    return Err(SnapshotError::MissingCluster { route: rc.name.clone(), cluster: missing.to_string() });
                }
            }
        }
    }
    Ok(())
}

/// The RDS route configuration names a listener's HTTP connection managers use.
pub fn listener_route_names(l: &Listener) -> Result<Vec<String>, SnapshotError> {
    let mut names = Vec::new();
    for chain in &l.filter_chains {
        for f in &chain.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else { continue };
            if any.type_url != HttpConnectionManager::type_url() {
                continue;
            }
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .map_err(|e| SnapshotError::BadListener { listener: l.name.clone(), reason: e.to_string() })?;
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.push(rds.route_config_name);
            }
        }
    }
    Ok(names)
}

pub(crate) fn hash_of(v: impl Hash) -> u64 {
    // DefaultHasher::new() uses fixed keys: stable within a build, which is
    // all a version needs (Envoy only compares versions for equality).
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
