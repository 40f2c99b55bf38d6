//! The [`Builder`]: what Envoys are served, from the three inputs.
//!
//! The profile in force, the discovered endpoints and the registered ones
//! each arrive on their own channel (see `app`); the one builder task hands
//! each new value to the matching step here and publishes what it returns.
//! Everything here is pure: no runtime, no channel.
//!
//! A new profile or new registered endpoints translate everything; a change
//! whose translation fails is refused whole and leaves both the inputs and
//! what is served untouched. The prober's unhealthy marks are a fourth
//! input: a change translates everything too (they change when an endpoint
//! stops or starts answering, seconds apart at the most), and every path
//! publishes the marked clusters' endpoints with their marks. Discovered endpoints take a shorter path: only
//! the load assignments of the clusters discovery reports as changed are
//! rebuilt, in the snapshots of the proxies that use them; listeners, routes
//! and clusters are reused as they are. Edge pods come and go far more often
//! than profiles change, and an edge may have thousands of pods: each load
//! assignment is packed once for every proxy, reusing the encoding of the
//! endpoints that did not change ([`LoadAssignmentCache`]), and whether
//! anything changed is decided by snapshot versions, not by comparing every
//! resource's bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::model::{Discovered, Endpoint, EndpointSet, Endpoints, Marks, Profile, Published, Source};
use crate::personal::Personal;
use crate::xds::load_assignment::{LoadAssignmentCache, translate_load_assignments};
use crate::xds::snapshot::Snapshot;
use crate::xds::snapshot::SnapshotError;
use crate::xds::translate::{translate, translate_endpoints, translate_proxy_with};

/// Whether `profile` can be served at all: its snapshots are consistent.
/// Endpoints only fill load assignments, so checking without them holds
/// for any endpoints.
pub fn check(profile: &Profile) -> Result<(), SnapshotError> {
    translate(profile, &EndpointSet::new()).map(drop)
}

/// The inputs last built from, and what was built.
#[derive(Debug)]
pub struct Builder {
    /// The profile in force as the reloader sent it; `profile` is it with
    /// `personal` applied, which is what is translated and published.
    base: Arc<Profile>,
    personal: Arc<Personal>,
    profile: Arc<Profile>,
    discovered: Arc<Discovered>,
    registered: Arc<EndpointSet>,
    marks: Arc<Marks>,
    /// The endpoint lists of the marked clusters, marked: looked up before
    /// the registered and discovered ones.
    marked: EndpointSet,
    /// The EDS-only path's encoded endpoints.
    load_assignments: LoadAssignmentCache,
    published: Arc<Published>,
}

impl Builder {
    /// Translates the first profile with the registered endpoints restored
    /// at start-up; fails if it cannot be served.
    pub fn new(profile: Arc<Profile>, registered: Arc<EndpointSet>) -> Result<Self, SnapshotError> {
        Self::with_personal(profile, registered, Arc::default())
    }

    /// [`Builder::new`] with what is personal to the developer applied; an
    /// override that cannot be served fails it too (the caller drops it).
    pub fn with_personal(
        base: Arc<Profile>,
        registered: Arc<EndpointSet>,
        personal: Arc<Personal>,
    ) -> Result<Self, SnapshotError> {
        let profile = crate::personal::apply(&base, &personal);
        let discovered = Arc::new(Discovered::default());
        let published = Arc::new(build(&profile, &discovered, &registered, &EndpointSet::new())?);
        Ok(Self {
            base,
            personal,
            profile,
            discovered,
            registered,
            marks: Arc::default(),
            marked: EndpointSet::new(),
            load_assignments: LoadAssignmentCache::default(),
            published,
        })
    }

    /// What is served now.
    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    /// Serves a new profile. `Some` when anything Envoy sees changed.
    pub fn set_profile(&mut self, base: Arc<Profile>) -> Result<Option<Arc<Published>>, SnapshotError> {
        if Arc::ptr_eq(&base, &self.base) {
            return Ok(None);
        }
        self.serve(base, self.personal.clone())
    }

    /// Applies what is personal to the developer (overrides, identity).
    pub fn set_personal(&mut self, personal: Arc<Personal>) -> Result<Option<Arc<Published>>, SnapshotError> {
        if Arc::ptr_eq(&personal, &self.personal) || personal == self.personal {
            self.personal = personal;
            return Ok(None);
        }
        self.serve(self.base.clone(), personal)
    }

    /// Translates `base` with `personal` applied; on success both are in force.
    fn serve(&mut self, base: Arc<Profile>, personal: Arc<Personal>) -> Result<Option<Arc<Published>>, SnapshotError> {
        let profile = crate::personal::apply(&base, &personal);
        let marked = mark(&profile, &self.discovered, &self.registered, &self.marks, |_| true);
        let published = build(&profile, &self.discovered, &self.registered, &marked)
            .inspect_err(|e| warn!(error = %e, "translation failed; keeping the previous configuration"))?;
        self.base = base;
        self.personal = personal;
        self.profile = profile;
        self.marked = marked;
        Ok(self.publish(published))
    }

    /// Replaces the endpoints registered through the admin API.
    pub fn set_registered(&mut self, registered: Arc<EndpointSet>) -> Result<Option<Arc<Published>>, SnapshotError> {
        if Arc::ptr_eq(&registered, &self.registered) {
            return Ok(None);
        }
        let marked = mark(&self.profile, &self.discovered, &registered, &self.marks, |_| true);
        let published = build(&self.profile, &self.discovered, &registered, &marked)
            .inspect_err(|e| warn!(error = %e, "translation failed; keeping the previous configuration"))?;
        self.registered = registered;
        self.marked = marked;
        Ok(self.publish(published))
    }

    /// Takes the prober's unhealthy marks: the endpoints of the marked
    /// clusters are published with health status UNHEALTHY, the others as
    /// found.
    pub fn set_marks(&mut self, marks: Arc<Marks>) -> Result<Option<Arc<Published>>, SnapshotError> {
        if Arc::ptr_eq(&marks, &self.marks) || marks == self.marks {
            self.marks = marks;
            return Ok(None);
        }
        let marked = mark(&self.profile, &self.discovered, &self.registered, &marks, |_| true);
        let published = build(&self.profile, &self.discovered, &self.registered, &marked)
            .inspect_err(|e| warn!(error = %e, "translation failed; keeping the previous configuration"))?;
        self.marks = marks;
        self.marked = marked;
        Ok(self.publish(published))
    }

    /// Applies discovered endpoints: rebuilds only the load assignments of
    /// the clusters that changed (see the module doc).
    pub fn set_discovered(&mut self, discovered: Arc<Discovered>) -> Result<Option<Arc<Published>>, SnapshotError> {
        let mut changed = if discovered.generation == self.discovered.generation + 1 {
            discovered.changed.clone()
        } else {
            // A set was skipped (or refused): its changes are not in this
            // one's list, but the shared lists tell what was replaced.
            replaced(&self.discovered.endpoints, &discovered.endpoints)
        };
        // Registered endpoints win over discovered ones of the same cluster.
        changed.retain(|c| !self.registered.contains_key(c));
        if changed.is_empty() {
            self.discovered = discovered;
            return Ok(None);
        }
        // Only the changed clusters' marked lists are made again; the others
        // are shared as they are.
        let mut marked = self.marked.clone();
        marked.retain(|c, _| !changed.contains(c));
        marked.extend(mark(&self.profile, &discovered, &self.registered, &self.marks, |c| changed.contains(c)));
        let (profile, registered, endpoints) = (&self.profile, &self.registered, &discovered.endpoints);
        let lookup = |name: &str| marked.get(name).or_else(|| registered.get(name)).or_else(|| endpoints.get(name));
        self.load_assignments.retain(|c| endpoints.contains_key(c));
        let updated = translate_load_assignments(profile, &changed, &lookup, &mut self.load_assignments);
        let mut snapshots = self.published.snapshots.clone();
        for (name, snapshot) in &self.published.snapshots {
            let Some(proxy) = profile.proxies.get(name) else { continue };
            let next = translate_endpoints(profile, proxy, snapshot, &updated)
                .inspect_err(|e| warn!(error = %e, "endpoint update failed; keeping the previous configuration"))?;
            if let Some(next) = next {
                debug!(profile = %profile.name, proxy = %name, version = %next.version, "endpoints updated");
                snapshots.insert(name.clone(), Arc::new(next));
            }
        }
        let published = Published {
            profile: profile.clone(),
            snapshots,
            discovered: discovered.clone(),
            registered: registered.clone(),
            changed_at: Instant::now(),
        };
        self.discovered = discovered;
        self.marked = marked;
        Ok(self.publish(published))
    }

    /// Keeps `published` when anything differs from what is served.
    fn publish(&mut self, mut published: Published) -> Option<Arc<Published>> {
        let current = &self.published;
        let same = (Arc::ptr_eq(&current.profile, &published.profile) || current.profile == published.profile)
            && same_snapshots(&current.snapshots, &published.snapshots);
        if same {
            return None;
        }
        // Streams measure change-to-push latency from here.
        published.changed_at = Instant::now();
        self.published = Arc::new(published);
        Some(self.published.clone())
    }
}

/// The clusters whose list in `b` is not the one in `a` (by pointer: lists
/// are shared, so an unchanged cluster keeps its list).
fn replaced(a: &EndpointSet, b: &EndpointSet) -> BTreeSet<String> {
    a.keys()
        .chain(b.keys())
        .filter(|c| match (a.get(*c), b.get(*c)) {
            (Some(x), Some(y)) => !Endpoints::ptr_eq(x, y),
            _ => true,
        })
        .cloned()
        .collect()
}

/// Compares versions (see [`Snapshot::same_version`]). Besides being cheap,
/// this does not mistake metadata maps encoded in another order for a change.
fn same_snapshots(a: &BTreeMap<String, Arc<Snapshot>>, b: &BTreeMap<String, Arc<Snapshot>>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((n, s), (m, t))| n == m && (Arc::ptr_eq(s, t) || s.same_version(t)))
}

/// The endpoint lists of the clusters `marks` names (those `only` keeps),
/// each endpoint it names marked unhealthy; from the same lists the lookups use.
fn mark(
    profile: &Profile,
    discovered: &Discovered,
    registered: &EndpointSet,
    marks: &Marks,
    only: impl Fn(&str) -> bool,
) -> EndpointSet {
    marks
        .iter()
        .filter(|(cluster, _)| only(cluster))
        .filter_map(|(cluster, addrs)| {
            let marked = |e: &Endpoint| Endpoint { unhealthy: addrs.contains(&e.addr), ..e.clone() };
            let eps = match registered.get(cluster).or_else(|| discovered.endpoints.get(cluster)) {
                Some(eps) => eps.iter().map(marked).collect(),
                None => match &profile.clusters.get(cluster)?.source {
                    Source::Static(eps) => eps.iter().map(marked).collect(),
                    _ => return None,
                },
            };
            Some((cluster.clone(), eps))
        })
        .collect()
}

/// Every proxy's snapshot, marked lists first, then registered endpoints
/// winning over discovered ones.
fn build(
    profile: &Arc<Profile>,
    discovered: &Arc<Discovered>,
    registered: &Arc<EndpointSet>,
    marked: &EndpointSet,
) -> Result<Published, SnapshotError> {
    let lookup =
        |name: &str| marked.get(name).or_else(|| registered.get(name)).or_else(|| discovered.endpoints.get(name));
    let snapshots = profile
        .proxies
        .values()
        .map(|p| Ok((p.name.clone(), Arc::new(translate_proxy_with(profile, p, &lookup)?))))
        .collect::<Result<BTreeMap<_, _>, SnapshotError>>()?;
    for (proxy, s) in &snapshots {
        info!(profile = %profile.name, %proxy, version = %s.version, "snapshot built");
    }
    Ok(Published {
        profile: profile.clone(),
        snapshots,
        discovered: discovered.clone(),
        registered: registered.clone(),
        changed_at: Instant::now(),
    })
}

#[cfg(test)]
mod tests;
