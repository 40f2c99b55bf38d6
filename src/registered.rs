//! Endpoints registered at run time: the admin API sets a `registered`
//! cluster's endpoints, they reach Envoy as an EDS push, and they survive a
//! restart in a state file written atomically.
//!
//! The [`Registry`] is the one writer of `watch<Arc<EndpointSet>>`: a new
//! set is sent only once it translates and the state file holds it.
//!
//! Bad input changes nothing: an unknown cluster, a cluster of another
//! source or a malformed endpoint is refused before anything is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use tokio::sync::watch;

use crate::model::{Endpoint, EndpointSet, Profile, Source};
use crate::xds::snapshot::SnapshotError;

/// Largest weight accepted, as in profiles.
pub const MAX_WEIGHT: u32 = 128;

/// One endpoint as the admin API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredEndpoint {
    /// `ip:port`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl RegisteredEndpoint {
    fn to_endpoint(&self, index: usize) -> Result<Endpoint, RegisterError> {
        let bad = |reason: String| RegisterError::BadEndpoint { index, reason };
        let addr: SocketAddr = self
            .address
            .parse()
            .map_err(|_| bad(format!("address {:?} is not ip:port, e.g. 127.0.0.1:9001", self.address)))?;
        if addr.port() == 0 {
            return Err(bad(format!("address {:?} has port 0", self.address)));
        }
        // 0.0.0.0 and :: mean "any address" to a listener; as an endpoint
        // Envoy would connect to itself.
        if addr.ip().to_canonical().is_unspecified() {
            return Err(bad(format!(
                "address {:?} is unspecified (any address); expected the address of a host, e.g. 127.0.0.1",
                self.address
            )));
        }
        if let Some(w) = self.weight.filter(|w| !(1..=MAX_WEIGHT).contains(w)) {
            return Err(bad(format!("weight {w} is out of range; expected 1 to {MAX_WEIGHT}")));
        }
        if self.zone.as_ref().is_some_and(|z| z.is_empty()) {
            return Err(bad("zone is empty; leave it out instead".into()));
        }
        if let Some(z) = self.zone.as_ref().filter(|z| z.chars().any(char::is_control)) {
            return Err(bad(format!("zone {z:?} contains a control character; expected a name like \"eu-west-1a\"")));
        }
        Ok(Endpoint {
            unhealthy: false,
            addr,
            zone: self.zone.clone(),
            weight: self.weight,
            metadata: Arc::new(self.metadata.clone()),
        })
    }

    pub fn from_endpoint(e: &Endpoint) -> Self {
        Self { address: e.addr.to_string(), zone: e.zone.clone(), weight: e.weight, metadata: (*e.metadata).clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("no cluster {cluster:?} in profile {profile:?}; registered clusters: {known}")]
    UnknownCluster { cluster: String, profile: String, known: String },
    #[error(
        "cluster {cluster:?} takes its endpoints from its {kind} source; only clusters with a [clusters.{cluster}.registered] source accept registered endpoints"
    )]
    NotRegistered { cluster: String, kind: &'static str },
    #[error("endpoint [{index}]: {reason}")]
    BadEndpoint { index: usize, reason: String },
    #[error("endpoint [{index}]: {address} is listed twice")]
    Duplicate { index: usize, address: SocketAddr },
    #[error("cannot write the state file {}: {source}", path.display())]
    Persist { path: PathBuf, source: std::io::Error },
    #[error("the new endpoints cannot be served: {0}")]
    Publish(#[from] SnapshotError),
}

impl RegisterError {
    /// Whether the caller sent something wrong (4xx) rather than the daemon
    /// failing (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::UnknownCluster { .. }
                | Self::NotRegistered { .. }
                | Self::BadEndpoint { .. }
                | Self::Duplicate { .. }
        )
    }

    /// The HTTP status the admin API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UnknownCluster { .. } => 404,
            Self::NotRegistered { .. } => 409,
            Self::BadEndpoint { .. } | Self::Duplicate { .. } => 400,
            Self::Persist { .. } | Self::Publish(_) => 500,
        }
    }
}

/// The registered endpoints of every cluster, and where they are kept.
pub struct Registry {
    /// The profile in force: which clusters take registered endpoints.
    profile: watch::Receiver<Arc<Profile>>,
    state_file: Option<PathBuf>,
    // Held across translation and the state-file write, never across an
    // await; what it holds is what was last sent.
    endpoints: Mutex<watch::Sender<Arc<EndpointSet>>>,
}

impl Registry {
    /// Loads what an earlier run registered (a missing file is an empty
    /// registry; an unreadable one is reported and treated as empty). The
    /// receiver starts with what was restored.
    pub fn open(
        profile: watch::Receiver<Arc<Profile>>,
        state_file: Option<PathBuf>,
    ) -> (Arc<Self>, watch::Receiver<Arc<EndpointSet>>) {
        if let Some(path) = &state_file {
            remove_stale_temporary(path);
        }
        let stored = state_file.as_deref().map(load_state).unwrap_or_default();
        let (mut endpoints, dropped) = restorable(&profile.borrow(), stored);
        if !dropped.is_empty() {
            // Not served, so not kept or shown either; the next write of the
            // state file leaves them out.
            warn!(
                clusters = %dropped.join(", "),
                "stored registered endpoints dropped: the profile declares no such registered cluster"
            );
        }
        if !endpoints.is_empty() {
            let n: usize = endpoints.values().map(|e| e.len()).sum();
            match check(&profile.borrow(), &endpoints) {
                Ok(()) => info!(clusters = endpoints.len(), endpoints = n, "restored registered endpoints"),
                Err(e) => {
                    // Kept neither in memory nor served: the two agree.
                    warn!(error = %e, "restored registered endpoints cannot be served; ignoring them");
                    endpoints = EndpointSet::new();
                }
            }
        }
        let (tx, rx) = watch::channel(Arc::new(endpoints));
        (Arc::new(Self { profile, state_file, endpoints: Mutex::new(tx) }), rx)
    }

    /// Every cluster's registered endpoints.
    pub fn all(&self) -> EndpointSet {
        (**self.lock().borrow()).clone()
    }

    /// `cluster`'s registered endpoints, as the API shows them; an error if
    /// the profile in force has no such `registered` cluster.
    pub fn get(&self, cluster: &str) -> Result<Vec<RegisteredEndpoint>, RegisterError> {
        check_cluster(&self.profile.borrow(), cluster)?;
        Ok(self
            .all()
            .get(cluster)
            .map(|eps| eps.iter().map(RegisteredEndpoint::from_endpoint).collect())
            .unwrap_or_default())
    }

    /// Every `registered` cluster of the profile in force (empty ones too)
    /// and every cluster holding registered endpoints, as the API shows them.
    pub fn report(&self) -> BTreeMap<String, Vec<RegisteredEndpoint>> {
        let mut out: BTreeMap<String, Vec<RegisteredEndpoint>> = self
            .profile
            .borrow()
            .clusters
            .values()
            .filter(|c| c.source == Source::Registered)
            .map(|c| (c.name.clone(), Vec::new()))
            .collect();
        for (cluster, eps) in self.all().iter() {
            out.insert(cluster.clone(), eps.iter().map(RegisteredEndpoint::from_endpoint).collect());
        }
        out
    }

    /// Replaces `cluster`'s endpoints (an empty list empties it). They are
    /// sent on only once they translate and the state file holds them, so
    /// a failure leaves memory, Envoy and disk as they were.
    pub fn set(&self, cluster: &str, endpoints: &[RegisteredEndpoint]) -> Result<Vec<Endpoint>, RegisterError> {
        let profile = self.profile.borrow().clone();
        check_cluster(&profile, cluster)?;
        let mut parsed = Vec::with_capacity(endpoints.len());
        let mut seen = BTreeSet::new();
        for (index, e) in endpoints.iter().enumerate() {
            let e = e.to_endpoint(index)?;
            // ::ffff:127.0.0.1 is 127.0.0.1: the same endpoint twice.
            if !seen.insert(SocketAddr::new(e.addr.ip().to_canonical(), e.addr.port())) {
                return Err(RegisterError::Duplicate { index, address: e.addr });
            }
            parsed.push(e);
        }
        let tx = self.lock();
        let mut next = (**tx.borrow()).clone();
        if parsed.is_empty() {
            next.remove(cluster);
        } else {
            next.insert(cluster.to_string(), parsed.clone().into());
        }
        check(&profile, &next)?;
        if let Some((path, Err(source))) = self.state_file.as_ref().map(|p| (p, write_state(p, &next))) {
            return Err(RegisterError::Persist { path: path.clone(), source });
        }
        tx.send_replace(Arc::new(next));
        info!(cluster, endpoints = parsed.len(), "registered endpoints set");
        Ok(parsed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, watch::Sender<Arc<EndpointSet>>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What of the stored endpoints the profile can take back: those of its
/// `registered` clusters. The others are returned as `cluster (why)`.
fn restorable(profile: &Profile, stored: EndpointSet) -> (EndpointSet, Vec<String>) {
    let mut dropped = Vec::new();
    let kept = stored
        .into_iter()
        .filter(|(cluster, _)| match profile.clusters.get(cluster).map(|c| &c.source) {
            Some(Source::Registered) => true,
            Some(other) => {
                dropped.push(format!("{cluster} (a {} cluster in profile {:?})", other.kind(), profile.name));
                false
            }
            None => {
                dropped.push(format!("{cluster} (no such cluster in profile {:?})", profile.name));
                false
            }
        })
        .collect();
    (kept, dropped)
}

/// Whether `profile` can be served with these registered endpoints.
fn check(profile: &Profile, endpoints: &EndpointSet) -> Result<(), SnapshotError> {
    crate::xds::translate::translate(profile, endpoints).map(drop)
}

fn check_cluster(profile: &Profile, cluster: &str) -> Result<(), RegisterError> {
    match profile.clusters.get(cluster).map(|c| &c.source) {
        Some(Source::Registered) => Ok(()),
        Some(other) => Err(RegisterError::NotRegistered { cluster: cluster.to_string(), kind: other.kind() }),
        None => {
            let known: Vec<&str> =
                profile.clusters.values().filter(|c| c.source == Source::Registered).map(|c| c.name.as_str()).collect();
            Err(RegisterError::UnknownCluster {
                cluster: cluster.to_string(),
                profile: profile.name.clone(),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            })
        }
    }
}

/// The state file's format: cluster -> endpoints, as the API shows them.
type StateFile = BTreeMap<String, Vec<RegisteredEndpoint>>;

fn load_state(path: &Path) -> EndpointSet {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return EndpointSet::new(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read registered endpoints; starting without them");
            return EndpointSet::new();
        }
    };
    let parsed: StateFile = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "registered endpoints file is not valid; starting without them");
            return EndpointSet::new();
        }
    };
    let mut out = EndpointSet::new();
    for (cluster, eps) in parsed {
        let valid: Result<Vec<Endpoint>, _> = eps.iter().enumerate().map(|(i, e)| e.to_endpoint(i)).collect();
        match valid {
            Ok(v) => {
                out.insert(cluster, v.into());
            }
            Err(e) => warn!(%cluster, error = %e, "skipping a cluster's stored endpoints"),
        }
    }
    out
}

/// The temporary file [`write_atomically`] renames over `path`.
fn temporary_of(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("registered")))
}

/// A crash between writing the temporary file and renaming it leaves it
/// behind; it never holds anything the state file does not, as the rename
/// is what makes a write count.
pub(crate) fn remove_stale_temporary(path: &Path) {
    let tmp = temporary_of(path);
    match std::fs::remove_file(&tmp) {
        Ok(()) => info!(path = %tmp.display(), "removed a temporary state file left by an interrupted write"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %tmp.display(), error = %e, "cannot remove a temporary state file"),
    }
}

/// Writes the whole registry as its state file.
fn write_state(path: &Path, endpoints: &EndpointSet) -> std::io::Result<()> {
    let state: StateFile = endpoints
        .iter()
        .map(|(c, eps)| (c.clone(), eps.iter().map(RegisteredEndpoint::from_endpoint).collect()))
        .collect();
    write_json_atomically(path, &state)
}

/// Writes `value` as pretty JSON to a temporary file beside `path`, syncs
/// it and renames it over `path`, so a crash leaves either the old or the
/// new file (every state file of the daemon is written so).
pub(crate) fn write_json_atomically(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = temporary_of(path);
    if let Some(dir) = tmp.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(serde_json::to_string_pretty(value).map_err(std::io::Error::other)?.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The default state file for a profile:
/// `$XDG_STATE_HOME/devbridge/<profile>.registered.json`, default
/// `~/.local/state/devbridge/...`.
pub fn default_state_file(profile: &str) -> Option<PathBuf> {
    let dir = match (
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()),
        std::env::var_os("HOME"),
    ) {
        (Some(x), _) => x,
        (None, Some(h)) => PathBuf::from(h).join(".local").join("state"),
        (None, None) => return None,
    };
    Some(dir.join("devbridge").join(format!("{profile}.registered.json")))
}

#[cfg(test)]
mod tests;
