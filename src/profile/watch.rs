//! Hot reload: follows a profile file and serves every good edit.
//!
//! The watcher follows the file's directory rather than the file, so it sees
//! editors' and Kubernetes' atomic renames and symlink swaps (a ConfigMap
//! volume swaps a `..data` link); when the file is itself a link, the
//! target's directory is followed too. Any event there leads to one read of
//! the file, and only content that differs from the last read is parsed.
//!
//! A good edit is published at once (after a 2 ms quiet period that gathers
//! the events of one save). A bad one, or an empty or missing file, is
//! given [`DEFAULT_SETTLE`] to be finished by its writer before it is
//! reported: one WARN with every located error, the error in
//! [`ReloadStatus`] until a good edit replaces it, and the last good profile
//! still served. A failing watcher is recreated and the file read again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::diff::ProfileDiff;
use super::{Profile, parse_profile};
use crate::metrics::XdsMetrics;
use crate::publish::Publisher;

/// Events closer together than this are one save.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(2);
/// A save is never held back longer than this, however busy the directory.
pub const DEFAULT_MAX_BATCH: Duration = Duration::from_millis(50);
/// How long an unparseable, empty or missing file may stay so before it is
/// reported: time for an editor writing in place to finish.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(100);
/// Wait before recreating a failed watcher.
pub const DEFAULT_REWATCH_BACKOFF: Duration = Duration::from_secs(1);

/// The reload state of the profile in force, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// The file followed (or where the embedded profile came from).
    pub file: String,
    /// When the profile in force was read, in milliseconds since the Unix epoch.
    pub loaded_at_ms: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// One line on what the last successful reload changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// The last failed reload, shown until a good edit replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReloadError>,
}

/// A rejected edit: every located error, as `file:line:col: key: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadError {
    pub at_ms: u64,
    pub errors: Vec<String>,
}

impl ReloadStatus {
    /// The status of a profile just loaded at start-up.
    pub fn loaded(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            loaded_at_ms: now_ms(),
            reloads_ok: 0,
            reloads_failed: 0,
            last_change: None,
            error: None,
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Follows `path` until `shutdown`, publishing every good edit.
pub async fn follow(
    path: PathBuf,
    publisher: Arc<Publisher>,
    status: watch::Sender<ReloadStatus>,
    metrics: Arc<XdsMetrics>,
    shutdown: CancellationToken,
) {
    let mut r = Reloader {
        last_read: std::fs::read(&path).ok().map(|b| hash(&b)),
        path,
        publisher,
        status,
        metrics,
        pending: None,
    };
    loop {
        let (watcher, mut events) = match r.watch() {
            Ok(w) => w,
            Err(e) => {
                warn!(path = %r.path.display(), error = %e, "cannot watch the profile's directory; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(DEFAULT_REWATCH_BACKOFF) => continue,
                }
            }
        };
        // Anything may have changed while there was no watcher.
        r.check();
        debug!("following the profile");
        let end = r.run(&mut events, &shutdown).await;
        drop(watcher);
        match end {
            End::Shutdown => return,
            End::WatcherFailed(e) => {
                warn!(path = %r.path.display(), error = %e, "profile watcher failed; recreating it");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(DEFAULT_REWATCH_BACKOFF) => {}
                }
            }
        }
    }
}

enum End {
    Shutdown,
    WatcherFailed(String),
}

type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

struct Reloader {
    path: PathBuf,
    publisher: Arc<Publisher>,
    status: watch::Sender<ReloadStatus>,
    metrics: Arc<XdsMetrics>,
    /// Hash of the last content read, good or bad.
    last_read: Option<u64>,
    /// A problem not reported yet, and when to report it.
    pending: Option<(Instant, Vec<String>)>,
}

impl Reloader {
    /// Watches the file's directory and, for a link, its target's.
    fn watch(&self) -> notify::Result<(notify::RecommendedWatcher, Events)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        })?;
        let mut dirs = vec![parent(&self.path)];
        if let Ok(target) = std::fs::canonicalize(&self.path) {
            let d = parent(&target);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        for d in &dirs {
            watcher.watch(d, RecursiveMode::NonRecursive)?;
        }
        Ok((watcher, rx))
    }

    async fn run(&mut self, events: &mut Events, shutdown: &CancellationToken) -> End {
        loop {
            let settle = self.pending.as_ref().map(|(at, _)| *at);
            tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                ev = events.recv() => match ev {
                    None => return End::WatcherFailed("event channel closed".into()),
                    Some(Err(e)) => return End::WatcherFailed(e.to_string()),
                    Some(Ok(_)) => {
                        if let Err(e) = gather(events).await {
                            return End::WatcherFailed(e);
                        }
                        self.check();
                    }
                },
                _ = tokio::time::sleep_until(settle.unwrap_or_else(Instant::now)), if settle.is_some() => {
                    self.report_pending();
                }
            }
        }
    }

    /// Reads the file and serves it if it changed and is good.
    fn check(&mut self) {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("{}: the profile file is gone; still serving the last good profile", self.path.display())
                } else {
                    format!("{}: cannot read the profile: {e}", self.path.display())
                };
                self.last_read = None;
                self.defer(vec![why]);
                return;
            }
        };
        debug!(bytes = bytes.len(), "profile read");
        let h = hash(&bytes);
        if self.last_read == Some(h) {
            return;
        }
        self.last_read = Some(h);
        let text = String::from_utf8_lossy(&bytes);
        if text.trim().is_empty() {
            // An editor that truncates before writing shows an empty file
            // for a moment; serving it would remove every route.
            self.defer(vec![format!(
                "{}: the profile file is empty; still serving the last good profile",
                self.path.display()
            )]);
            return;
        }
        let file = self.path.display().to_string();
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or("profile");
        match parse_profile(&file, stem, &text) {
            Ok(profile) => self.serve(profile),
            Err(errors) => self.defer(errors.0.iter().map(ToString::to_string).collect()),
        }
    }

    fn serve(&mut self, profile: Profile) {
        self.pending = None;
        // What is served now is the publisher's; the diff is against it.
        let summary = match &self.publisher.current().profile {
            Some(old) => ProfileDiff::between(old, &profile).to_string(),
            None => "first profile".to_string(),
        };
        let name = profile.name.clone();
        match self.publisher.set_profile(profile) {
            Ok(_) => {
                self.metrics.reload(true);
                info!(profile = %name, file = %self.path.display(), change = %summary, "profile reloaded");
                self.status.send_modify(|s| {
                    s.loaded_at_ms = now_ms();
                    s.reloads_ok += 1;
                    s.last_change = Some(summary);
                    s.error = None;
                });
            }
            Err(e) => {
                self.report(vec![format!("{}: the profile is valid but cannot be served: {e}", self.path.display())])
            }
        }
    }

    /// Holds a problem back for [`DEFAULT_SETTLE`]; a new event re-reads first.
    fn defer(&mut self, errors: Vec<String>) {
        let at = self.pending.as_ref().map_or_else(|| Instant::now() + DEFAULT_SETTLE, |(at, _)| *at);
        self.pending = Some((at, errors));
    }

    fn report_pending(&mut self) {
        if let Some((_, errors)) = self.pending.take() {
            self.report(errors);
        }
    }

    fn report(&mut self, errors: Vec<String>) {
        self.metrics.reload(false);
        warn!(file = %self.path.display(), errors = %errors.join("\n"),
            "profile edit rejected; still serving the last good profile");
        self.status.send_modify(|s| {
            s.reloads_failed += 1;
            s.error = Some(ReloadError { at_ms: now_ms(), errors });
        });
    }
}

/// Takes every event of one save: waits until the directory has been
/// quiet for [`DEFAULT_DEBOUNCE`], at most [`DEFAULT_MAX_BATCH`].
async fn gather(events: &mut Events) -> Result<(), String> {
    let deadline = Instant::now() + DEFAULT_MAX_BATCH;
    while Instant::now() < deadline {
        match tokio::time::timeout(DEFAULT_DEBOUNCE, events.recv()).await {
            Err(_) => return Ok(()),
            Ok(None) => return Err("event channel closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(_))) => {}
        }
    }
    Ok(())
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
