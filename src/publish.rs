//! The [`Publisher`]: the one writer of what Envoys are served.
//!
//! Its inputs are the profile in force and the endpoints found at run time,
//! each set by the task that owns it (profile reload, discovery, the admin
//! API). Any change re-translates and publishes through a `watch` channel,
//! but only when the result differs; a change whose translation fails is
//! refused whole and leaves both the inputs and what is served untouched.
//!
//! Discovered endpoints take a shorter path: only the load assignments of
//! the clusters whose endpoints changed are rebuilt, in the snapshots of the
//! proxies that use them; listeners, routes and clusters are reused as they
//! are. Edge pods come and go far more often than profiles change, and an
//! edge may have thousands of pods: each load assignment is packed once for
//! every proxy, reusing the encoding of the endpoints that did not change
//! ([`LoadAssignmentCache`]), and whether anything changed is decided by
//! snapshot versions, not by comparing every resource's bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::discovery::DiscoveredEndpoints;
use crate::profile::Profile;
use crate::xds::Snapshot;
use crate::xds::load_assignment::LoadAssignmentCache;
use crate::xds::server::Published;
use crate::xds::snapshot::SnapshotError;
use crate::xds::translate::{translate, translate_endpoints, translate_load_assignments};

/// What translation reads.
#[derive(Debug, Clone)]
struct Inputs {
    profile: Arc<Profile>,
    /// Endpoints found by discovery (the `kubernetes` sources).
    discovered: Arc<DiscoveredEndpoints>,
    /// Endpoints registered at run time through the admin API.
    registered: Arc<DiscoveredEndpoints>,
}

pub struct Publisher {
    tx: watch::Sender<Arc<Published>>,
    // Held only while translating, never across an await.
    inputs: Mutex<Inputs>,
    /// The EDS-only path's encoded endpoints. Locked only while `inputs` is.
    load_assignments: Mutex<LoadAssignmentCache>,
}

impl Publisher {
    /// Translates the first profile; fails if it cannot be served.
    pub fn new(profile: Profile) -> Result<Arc<Self>, SnapshotError> {
        let inputs = Inputs { profile: Arc::new(profile), discovered: Arc::default(), registered: Arc::default() };
        let published = build(&inputs)?;
        let (tx, _) = watch::channel(Arc::new(published));
        Ok(Arc::new(Self { tx, inputs: Mutex::new(inputs), load_assignments: Mutex::default() }))
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> Arc<Published> {
        self.tx.borrow().clone()
    }

    /// Serves a new profile. Returns whether anything Envoy sees changed.
    pub fn set_profile(&self, profile: Profile) -> Result<bool, SnapshotError> {
        self.update(|i| i.profile = Arc::new(profile))
    }

    /// Replaces the discovered endpoints. Rebuilds only the load
    /// assignments that changed (see the module doc).
    pub fn set_discovered(&self, endpoints: Arc<DiscoveredEndpoints>) -> Result<bool, SnapshotError> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Registered endpoints win over discovered ones of the same cluster.
        let changed: BTreeSet<String> = inputs
            .discovered
            .keys()
            .chain(endpoints.keys())
            .filter(|c| inputs.discovered.get(*c) != endpoints.get(*c) && !inputs.registered.contains_key(*c))
            .cloned()
            .collect();
        if changed.is_empty() {
            inputs.discovered = endpoints;
            return Ok(false);
        }
        let current = self.tx.borrow().clone();
        if current.profile.as_ref().is_none_or(|p| !Arc::ptr_eq(p, &inputs.profile) && **p != *inputs.profile) {
            // Not what `update` last published: translate everything.
            drop(inputs);
            return self.update(|i| i.discovered = endpoints);
        }
        let profile = inputs.profile.clone();
        let registered = inputs.registered.clone();
        let lookup = |name: &str| registered.get(name).or_else(|| endpoints.get(name)).map(Vec::as_slice);
        let updated = {
            let mut cache = self.load_assignments.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.retain(|c| endpoints.contains_key(c));
            translate_load_assignments(&profile, &changed, &lookup, &mut cache)
        };
        let mut snapshots = current.snapshots.clone();
        for (name, snapshot) in &current.snapshots {
            let Some(proxy) = profile.proxies.get(name) else { continue };
            let next = translate_endpoints(&profile, proxy, snapshot, &updated)
                .inspect_err(|e| warn!(error = %e, "endpoint update failed; keeping the previous configuration"))?;
            if let Some(next) = next {
                debug!(profile = %profile.name, proxy = %name, version = %next.version, "endpoints updated");
                snapshots.insert(name.clone(), Arc::new(next));
            }
        }
        inputs.discovered = endpoints.clone();
        let published = Published { profile: Some(profile), snapshots, changed_at: std::time::Instant::now() };
        Ok(self.send(published))
    }

    /// Replaces the endpoints registered through the admin API.
    pub fn set_registered(&self, endpoints: Arc<DiscoveredEndpoints>) -> Result<bool, SnapshotError> {
        self.update(|i| i.registered = endpoints)
    }

    /// Sets the profile and the discovered endpoints at once.
    pub fn set(&self, profile: Profile, discovered: Arc<DiscoveredEndpoints>) -> Result<bool, SnapshotError> {
        self.update(|i| {
            i.profile = Arc::new(profile);
            i.discovered = discovered;
        })
    }

    fn update(&self, change: impl FnOnce(&mut Inputs)) -> Result<bool, SnapshotError> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = inputs.clone();
        change(&mut next);
        let published = build(&next)
            .inspect_err(|e| warn!(error = %e, "translation failed; keeping the previous configuration"))?;
        *inputs = next;
        Ok(self.send(published))
    }

    /// Publishes when anything differs; returns whether it did.
    fn send(&self, mut published: Published) -> bool {
        self.tx.send_if_modified(|current| {
            let changed = !same_profile(&current.profile, &published.profile)
                || !same_snapshots(&current.snapshots, &published.snapshots);
            if changed {
                // Streams measure change-to-push latency from here.
                published.changed_at = std::time::Instant::now();
                *current = Arc::new(published);
            }
            changed
        })
    }
}

fn same_profile(a: &Option<Arc<Profile>>, b: &Option<Arc<Profile>>) -> bool {
    match (a, b) {
        // The EDS-only path publishes the profile it found published.
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// Compares versions (see [`Snapshot::same_version`]). Besides being cheap,
/// this does not mistake metadata maps encoded in another order for a change.
fn same_snapshots(a: &BTreeMap<String, Arc<Snapshot>>, b: &BTreeMap<String, Arc<Snapshot>>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((n, s), (m, t))| n == m && (Arc::ptr_eq(s, t) || s.same_version(t)))
}

fn build(inputs: &Inputs) -> Result<Published, SnapshotError> {
    let snapshots = if inputs.registered.is_empty() {
        translate(&inputs.profile, &inputs.discovered)?
    } else {
        let endpoints: DiscoveredEndpoints =
            inputs.discovered.iter().chain(inputs.registered.iter()).map(|(k, v)| (k.clone(), v.clone())).collect();
        translate(&inputs.profile, &endpoints)?
    };
    for (proxy, s) in &snapshots {
        info!(profile = %inputs.profile.name, %proxy, version = %s.version, "snapshot built");
    }
    Ok(Published { profile: Some(inputs.profile.clone()), snapshots, changed_at: std::time::Instant::now() })
}

#[cfg(test)]
mod tests;
