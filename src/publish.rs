//! The [`Publisher`]: the one writer of what Envoys are served.
//!
//! Its inputs are the profile in force and the endpoints found at run time,
//! each set by the task that owns it (profile reload, discovery, the admin
//! API). Any change re-translates and publishes through a `watch` channel,
//! but only when the result differs; a change whose translation fails is
//! refused whole and leaves both the inputs and what is served untouched.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::discovery::DiscoveredEndpoints;
use crate::profile::Profile;
use crate::xds::server::Published;
use crate::xds::snapshot::SnapshotError;
use crate::xds::translate::translate;

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
}

impl Publisher {
    /// Translates the first profile; fails if it cannot be served.
    pub fn new(profile: Profile) -> Result<Arc<Self>, SnapshotError> {
        let inputs = Inputs { profile: Arc::new(profile), discovered: Arc::default(), registered: Arc::default() };
        let published = build(&inputs)?;
        let (tx, _) = watch::channel(Arc::new(published));
        Ok(Arc::new(Self { tx, inputs: Mutex::new(inputs) }))
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

    /// Replaces the discovered endpoints.
    pub fn set_discovered(&self, endpoints: Arc<DiscoveredEndpoints>) -> Result<bool, SnapshotError> {
        self.update(|i| i.discovered = endpoints)
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
        let mut published = build(&next)
            .inspect_err(|e| warn!(error = %e, "translation failed; keeping the previous configuration"))?;
        *inputs = next;
        let changed = self.tx.send_if_modified(|current| {
            let changed = current.profile != published.profile || current.snapshots != published.snapshots;
            if changed {
                // Streams measure change-to-push latency from here.
                published.changed_at = std::time::Instant::now();
                *current = Arc::new(published);
            }
            changed
        });
        Ok(changed)
    }
}

fn build(inputs: &Inputs) -> Result<Published, SnapshotError> {
    let endpoints: DiscoveredEndpoints = if inputs.registered.is_empty() {
        (*inputs.discovered).clone()
    } else {
        inputs.discovered.iter().chain(inputs.registered.iter()).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let snapshots = translate(&inputs.profile, &endpoints)?;
    for (proxy, s) in &snapshots {
        info!(profile = %inputs.profile.name, %proxy, version = %s.version, "snapshot built");
    }
    Ok(Published { profile: Some(inputs.profile.clone()), snapshots, changed_at: std::time::Instant::now() })
}
