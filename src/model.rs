//! The nouns every part shares: the validated profile, the endpoints found
//! or registered at run time, and what is served. No I/O and no runtime:
//! `profile` builds the model from TOML, `discovery` and `registered` fill
//! endpoint sets, `publish` turns them into [`Published`].

pub mod endpoints;
pub mod profile;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

pub use endpoints::Endpoints;
pub use profile::*;

use crate::xds::snapshot::Snapshot;

/// Endpoints found or registered at run time, by cluster name.
pub type EndpointSet = BTreeMap<String, Endpoints>;

/// Endpoints to publish with EDS health status UNHEALTHY, by cluster: what
/// the prober found unreachable while others of the cluster answer.
pub type Marks = BTreeMap<String, BTreeSet<std::net::SocketAddr>>;

/// What discovery publishes: every cluster's endpoints, and which clusters
/// changed since the set of the previous generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovered {
    pub endpoints: EndpointSet,
    /// The clusters whose endpoints differ from generation `generation - 1`.
    pub changed: BTreeSet<String>,
    /// Counts the sets sent; a reader that skipped one cannot rely on `changed`.
    pub generation: u64,
}

/// What is served: the profile in force and each proxy's snapshot.
#[derive(Debug)]
pub struct Published {
    pub profile: Arc<Profile>,
    pub snapshots: BTreeMap<String, Arc<Snapshot>>,
    /// The endpoints found and registered at run time it was built from
    /// (registered ones win for a cluster in both), for `explain`.
    pub discovered: Arc<Discovered>,
    pub registered: Arc<EndpointSet>,
    /// When it was published: the start of the change-to-push latency that
    /// streams measure.
    pub changed_at: Instant,
}

/// Milliseconds since the Unix epoch, as `/status` shows times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
