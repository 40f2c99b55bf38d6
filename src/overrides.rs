//! Overrides set at run time (`devbridge override add`, `POST /v1/overrides`),
//! kept in a state file and ended by themselves when they expire.
//!
//! The store owns its channel: each change sends a new [`Personal`] (the
//! overrides and the developer's identity), which the builder applies to
//! the profile in force (`crate::personal`). A change is sent only once the
//! profile with it applied translates and the state file holds it, so a
//! refused override leaves memory, Envoy and disk as they were.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::model::{Override, OverrideTarget, Profile, now_ms};
use crate::personal::{self, Personal};

pub const PATH: &str = "/v1/overrides";

/// The body of `POST /v1/overrides`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverrideRequest {
    /// `host[:port]/path`: the domain (by name, host or alias) and the path prefix.
    pub target: String,
    /// `ip:port` of a local copy, or the name of a profile cluster.
    pub to: String,
    /// `name=value` pairs the request must also carry.
    pub headers: Vec<String>,
    /// How long it lasts, e.g. `2h`; none: until removed.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub mirror: bool,
    /// Faults to inject into these requests; with no `to`, on the way to
    /// where the profile's route sends them.
    pub fault: Option<FaultRequest>,
    /// Only for this proxy's Envoys (default: every proxy serving the domain).
    pub proxy: Option<String>,
}

/// `{"delay": "2s", "delay_percent": 10, "abort": 503, "abort_percent": 5}`;
/// a percent left out is 100.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRequest {
    pub delay: Option<String>,
    pub delay_percent: Option<u32>,
    pub abort: Option<u16>,
    pub abort_percent: Option<u32>,
}

/// An override as lists show it: where it came from, and the words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideReport {
    #[serde(flatten)]
    pub inner: Override,
    /// `api` (set at run time) or `profile` (`[[overrides]]`).
    pub source: String,
    pub description: String,
}

impl OverrideReport {
    pub fn of(o: &Override, source: &str) -> Self {
        Self { inner: o.clone(), source: source.to_string(), description: o.describe() }
    }
}

/// Why an override was refused (HTTP 400 or 404), or could not be kept (500).
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("{0}")]
    Invalid(String),
    #[error("no override {id:?}; overrides: {known}")]
    NotFound { id: String, known: String },
    #[error("the profile with this override cannot be served: {0}")]
    Untranslatable(String),
    #[error("cannot write {path}: {source}")]
    Persist { path: PathBuf, source: std::io::Error },
}

impl OverrideError {
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid(_) | Self::Untranslatable(_) => 400,
            Self::NotFound { .. } => 404,
            Self::Persist { .. } => 500,
        }
    }
}

pub struct OverrideStore {
    /// The profile in force as loaded (without overrides applied).
    profile: watch::Receiver<Arc<Profile>>,
    state_file: Option<PathBuf>,
    // Held across the check and the state-file write, never across an await.
    personal: Mutex<watch::Sender<Arc<Personal>>>,
}

impl OverrideStore {
    /// Restores what an earlier run set (dropping what has expired or no
    /// longer applies, with a WARN naming each); the receiver starts with it.
    pub fn open(
        profile: watch::Receiver<Arc<Profile>>,
        state_file: Option<PathBuf>,
        identity: Option<String>,
    ) -> (Arc<Self>, watch::Receiver<Arc<Personal>>) {
        if let Some(path) = &state_file {
            crate::registered::remove_stale_temporary(path);
        }
        let stored = state_file.as_deref().map(load_state).unwrap_or_default();
        let now = now_ms();
        let base = profile.borrow().clone();
        let mut overrides = Vec::new();
        for o in stored {
            if o.expires_at_ms.is_some_and(|t| t <= now) {
                info!(id = %o.id, "override {} expired while devbridge was stopped", o.describe());
                continue;
            }
            match personal::check(&base, &o) {
                Ok(()) => overrides.push(o),
                Err(why) => warn!(id = %o.id, "stored override {} dropped: {why}", o.describe()),
            }
        }
        let mut restored = Personal { identity, overrides };
        // Only restored overrides need the check: the builder translates the
        // profile with the identity anyway, and would refuse it the same way.
        if !restored.overrides.is_empty() && crate::publish::check(&personal::apply(&base, &restored)).is_err() {
            warn!("the stored overrides cannot be served with this profile; starting without them");
            restored.overrides.clear();
        }
        if !restored.overrides.is_empty() {
            info!(overrides = restored.overrides.len(), "restored overrides");
        }
        let (tx, rx) = watch::channel(Arc::new(restored));
        (Arc::new(Self { profile, state_file, personal: Mutex::new(tx) }), rx)
    }

    /// Every override: run-time ones (newest first, as they apply) then the profile's.
    pub fn list(&self) -> Vec<OverrideReport> {
        let personal = self.lock().borrow().clone();
        let profile = self.profile.borrow().clone();
        personal
            .overrides
            .iter()
            .rev()
            .map(|o| OverrideReport::of(o, "api"))
            .chain(profile.overrides.iter().map(|o| OverrideReport::of(o, "profile")))
            .collect()
    }

    /// Adds an override; it is served on the next push.
    pub fn add(&self, req: &OverrideRequest) -> Result<Override, OverrideError> {
        let profile = self.profile.borrow().clone();
        let tx = self.lock();
        let current = tx.borrow().clone();
        let id = next_id(&current.overrides);
        let o = parse_request(&profile, req, id, now_ms())?;
        personal::check(&profile, &o).map_err(OverrideError::Invalid)?;
        let mut next = (*current).clone();
        next.overrides.push(o.clone());
        self.commit(&tx, &profile, next)?;
        info!(id = %o.id, "override set: {}", o.describe());
        Ok(o)
    }

    /// Removes one override by id, or every run-time one (`None`).
    pub fn remove(&self, id: Option<&str>) -> Result<Vec<Override>, OverrideError> {
        let profile = self.profile.borrow().clone();
        let tx = self.lock();
        let current = tx.borrow().clone();
        let (gone, kept): (Vec<Override>, Vec<Override>) =
            current.overrides.iter().cloned().partition(|o| id.is_none_or(|id| o.id == id));
        if let (Some(id), true) = (id, gone.is_empty()) {
            let known: Vec<&str> = current.overrides.iter().map(|o| o.id.as_str()).collect();
            let standing = profile.overrides.iter().any(|o| o.id == id);
            return Err(if standing {
                OverrideError::Invalid(format!("{id} is declared in the profile ([[overrides]]); remove it there"))
            } else {
                OverrideError::NotFound {
                    id: id.to_string(),
                    known: if known.is_empty() { "none".to_string() } else { known.join(", ") },
                }
            });
        }
        if gone.is_empty() {
            return Ok(gone);
        }
        self.commit(&tx, &profile, Personal { overrides: kept, ..(*current).clone() })?;
        for o in &gone {
            info!(id = %o.id, "override removed: {}", o.describe());
        }
        Ok(gone)
    }

    /// Removes every override expired at `now`; returns them.
    pub fn expire(&self, now: u64) -> Vec<Override> {
        let profile = self.profile.borrow().clone();
        let tx = self.lock();
        let current = tx.borrow().clone();
        let (gone, kept): (Vec<Override>, Vec<Override>) =
            current.overrides.iter().cloned().partition(|o| o.expires_at_ms.is_some_and(|t| t <= now));
        if gone.is_empty() {
            return gone;
        }
        if let Err(e) = self.commit(&tx, &profile, Personal { overrides: kept, ..(*current).clone() }) {
            warn!(error = %e, "expired overrides could not be removed; trying again in a second");
            return Vec::new();
        }
        for o in &gone {
            info!(id = %o.id, "override expired: {}", o.describe());
        }
        gone
    }

    /// When the next run-time override expires, in milliseconds since the epoch.
    pub fn next_expiry(&self) -> Option<u64> {
        self.lock().borrow().overrides.iter().filter_map(|o| o.expires_at_ms).min()
    }

    /// How many overrides apply now, run-time and standing.
    pub fn count(&self) -> usize {
        self.lock().borrow().overrides.len() + self.profile.borrow().overrides.len()
    }

    /// Checks that `next` can be served, writes it, and sends it on.
    fn commit(
        &self,
        tx: &watch::Sender<Arc<Personal>>,
        profile: &Arc<Profile>,
        next: Personal,
    ) -> Result<(), OverrideError> {
        crate::publish::check(&personal::apply(profile, &next))
            .map_err(|e| OverrideError::Untranslatable(e.to_string()))?;
        if let Some(path) = &self.state_file {
            crate::registered::write_json_atomically(path, &next.overrides)
                .map_err(|source| OverrideError::Persist { path: path.clone(), source })?;
        }
        tx.send_replace(Arc::new(next));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, watch::Sender<Arc<Personal>>> {
        self.personal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends overrides when they expire: sleeps until the next expiry, or until
/// the overrides change; with none expiring it only waits.
pub async fn run_expiry(
    store: Arc<OverrideStore>,
    mut changes: watch::Receiver<Arc<Personal>>,
    shutdown: CancellationToken,
) {
    loop {
        let wait = store.next_expiry().map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            _ = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {
                let expiring = store.clone();
                // The check translates and the write syncs: off the workers.
                let _ = tokio::task::spawn_blocking(move || expiring.expire(now_ms())).await;
                if store.next_expiry().is_some_and(|t| t <= now_ms()) {
                    // A failed write: try again in a second, not in a loop.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// `o1`, `o2`, ...: one more than the highest in use.
fn next_id(overrides: &[Override]) -> String {
    let used: BTreeSet<u64> =
        overrides.iter().filter_map(|o| o.id.strip_prefix('o').and_then(|n| n.parse().ok())).collect();
    format!("o{}", used.last().map_or(1, |n| n + 1))
}

/// The override a request asks for, or why it cannot be one.
pub fn parse_request(
    profile: &Profile,
    req: &OverrideRequest,
    id: String,
    now: u64,
) -> Result<Override, OverrideError> {
    let invalid = OverrideError::Invalid;
    let (domain, prefix) = personal::resolve_target(profile, &req.target).map_err(invalid)?;
    let fault = req.fault.as_ref().map(parse_fault).transpose().map_err(invalid)?;
    let to = req.to.trim();
    let to = if to.is_empty() && fault.is_some() {
        OverrideTarget::Route
    } else if to.is_empty() {
        return Err(invalid(
            "\"to\" is empty; expected ip:port of a local copy (e.g. 127.0.0.1:5000) or a cluster".into(),
        ));
    } else if let Ok(addr) = to.parse::<SocketAddr>() {
        OverrideTarget::Address(addr)
    } else if let Some(port) = to.strip_prefix("localhost:").and_then(|p| p.parse::<u16>().ok()) {
        OverrideTarget::Address(SocketAddr::from(([127, 0, 0, 1], port)))
    } else if profile.clusters.contains_key(to) {
        OverrideTarget::Cluster(to.to_string())
    } else {
        return Err(invalid(format!(
            "{to:?} is neither an ip:port address (e.g. 127.0.0.1:5000) nor a cluster of profile {}; its clusters: {}",
            profile.name,
            profile.clusters.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let mut headers = Vec::new();
    for h in &req.headers {
        let Some((k, v)) = h.split_once('=').or_else(|| h.split_once(':')) else {
            return Err(invalid(format!("header {h:?} is not name=value, e.g. x-dev=me")));
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let expires_at_ms = match req.for_.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => match humantime::parse_duration(f) {
            Ok(d) if !d.is_zero() => Some(now.saturating_add(d.as_millis() as u64)),
            _ => return Err(invalid(format!("{f:?} is not a duration; expected e.g. \"30m\", \"2h\""))),
        },
    };
    let proxy = req.proxy.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
    Ok(Override { id, domain, prefix, headers, to, mirror: req.mirror, fault, proxy, expires_at_ms })
}

/// The faults a request asks for, or why they are not faults.
fn parse_fault(f: &FaultRequest) -> Result<crate::model::Fault, String> {
    let percent = |p: Option<u32>, what: &str| match p {
        None => Ok(100),
        Some(p) if p <= 100 => Ok(p),
        Some(p) => Err(format!("{what} {p} is out of range; expected 0 to 100")),
    };
    let delay = match f.delay.as_deref() {
        None => None,
        Some(d) => match humantime::parse_duration(d.trim()) {
            Ok(d) if !d.is_zero() => Some((d, percent(f.delay_percent, "delay_percent")?)),
            _ => return Err(format!("fault delay {d:?} is not a duration; expected e.g. \"2s\"")),
        },
    };
    let abort = match f.abort {
        None => None,
        Some(s) if (200..=599).contains(&s) => Some((s, percent(f.abort_percent, "abort_percent")?)),
        Some(s) => return Err(format!("fault abort {s} is not a status; expected 200 to 599")),
    };
    if delay.is_none() && abort.is_none() {
        return Err("the fault injects nothing; give a delay and/or an abort status".into());
    }
    if f.delay_percent.is_some() && delay.is_none() || f.abort_percent.is_some() && abort.is_none() {
        return Err("a fault percent needs its delay or abort".into());
    }
    Ok(crate::model::Fault { delay, abort })
}

fn load_state(path: &Path) -> Vec<Override> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e, "overrides file is not valid; starting without overrides");
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read overrides; starting without them");
            Vec::new()
        }
    }
}

/// The default state file: beside the registered endpoints',
/// `$XDG_STATE_HOME/devbridge/<profile>.overrides.json`.
pub fn default_state_file(profile: &str) -> Option<PathBuf> {
    crate::registered::default_state_file(profile).map(|p| p.with_file_name(format!("{profile}.overrides.json")))
}

#[cfg(test)]
mod tests;
