//! Hot reload: follows a profile file and hands every good edit on, as the
//! one writer of `watch<Arc<Profile>>` (a profile is sent only once it translates).
//!
//! The watcher follows the file's directory rather than the file, so it sees
//! editors' and Kubernetes' atomic renames and symlink swaps (a ConfigMap
//! volume swaps a `..data` link); when the file is itself a link, the
//! target's directory is followed too.
//!
//! Only events that can change what the file holds lead to a read; opening,
//! reading and closing a file unwritten (which every read of the profile,
//! ours included, causes) never do. When a read comes depends on how the
//! file changed, so that a file is never read half written:
//!
//! - renamed or linked into place, deleted, or a directory on its path
//!   swapped: read at once. A rename delivers a file its writer finished.
//! - written in place: read only once the writer has closed it and it has
//!   then stayed unchanged (no write event; the same size, modification time
//!   and content) for [`DEFAULT_SETTLE_AFTER_CLOSE`], which covers writers
//!   that close and append again. A writer that never closes it is given
//!   [`DEFAULT_UNCLOSED_QUIET`] without writing instead.
//!
//! Only content that differs from the last read is parsed. Reading,
//! validation and translation run on a blocking thread, never on the async
//! workers that serve Envoy and the admin API.
//!
//! A good edit is published at once. A bad one, or an empty or missing
//! file, is given [`DEFAULT_SETTLE`] to be finished (or to come back) before
//! it is reported: one WARN with every located error, the error in
//! [`ReloadStatus`] until a good edit replaces it, and the last good profile
//! still served. A failing watcher is recreated and the file read again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::diff::ProfileDiff;
use super::{Profile, parse_profile};
use crate::metrics::XdsMetrics;
use crate::model::{TextHash, now_ms};

/// How long a file written in place must stay closed and unchanged before
/// it is read. A writer that closes the file and opens it again to append
/// (a script's `>` then `>>`, a tool that writes a header first) has this
/// long between the two before its first part is taken for the whole file.
/// Half a second covers such writers, including one that pauses a few
/// hundred milliseconds to compute the rest, and is still short for a
/// person saving in an editor that writes in place. Renames do not wait.
pub const DEFAULT_SETTLE_AFTER_CLOSE: Duration = Duration::from_millis(500);
/// A file written in place whose writer keeps it open is read after this
/// long without a write (then [`DEFAULT_SETTLE_AFTER_CLOSE`] as for a close).
pub const DEFAULT_UNCLOSED_QUIET: Duration = Duration::from_secs(2);
/// How long an unparseable, empty or missing file may stay so before it is
/// reported: time for a writer to finish or for a deleted file to return.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(100);
/// Wait before recreating a failed watcher.
pub const DEFAULT_REWATCH_BACKOFF: Duration = Duration::from_secs(1);

/// The reload state of the profile in force, for `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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

/// A rejected edit: every located error, as `file:line:col: key: message`
/// (the first 50, then a line saying how many more), as its WARN lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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

/// Follows `path` until `shutdown`, sending every good edit on `profile`.
pub async fn follow(
    path: PathBuf,
    profile: watch::Sender<Arc<Profile>>,
    status: watch::Sender<ReloadStatus>,
    metrics: Arc<XdsMetrics>,
    shutdown: CancellationToken,
) {
    let loader = Loader { path: path.clone(), real: None, profile, status, metrics, last_read: None, pending: None };
    let mut r = Reloader { link: path.clone(), path, loader: Arc::new(Mutex::new(loader)), write: Write::Idle };
    // The profile in force was read just before; only a change is served.
    if !r.blocking(&shutdown, Loader::remember).await {
        return;
    }
    loop {
        let (watcher, dirs, mut events) = match r.watch() {
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
        r.write = Write::Idle;
        if !r.blocking(&shutdown, Loader::check).await {
            return;
        }
        debug!(dirs = ?dirs, "following the profile");
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

/// Where a write of the file in place stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    /// No write seen since the last read.
    Idle,
    /// Written and not closed yet: read once closed, or after `quiet_until`.
    Open { quiet_until: Instant },
    /// Closed after writing: read at `until` if the file is still `seen`
    /// (`None` until it has been looked at).
    Closed { until: Instant, seen: Option<Seen> },
}

/// What a file looked like, to tell whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    hash: u64,
}

/// The event loop: decides, from the events, when the file is read.
struct Reloader {
    path: PathBuf,
    /// The path as events name it: in the canonical directory.
    link: PathBuf,
    /// Reads, parses and serves; used only on a blocking thread.
    loader: Arc<Mutex<Loader>>,
    write: Write,
}

/// What a batch of events asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wants {
    /// Read now, unless the file is being written in place (then the rule
    /// for writes in place decides when).
    read: bool,
}

impl Reloader {
    /// Watches the file's directory and, for a link, its target's (each by
    /// its canonical path, so that events name the file one way).
    fn watch(&mut self) -> notify::Result<(notify::RecommendedWatcher, Vec<PathBuf>, Events)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        })?;
        let dir = std::fs::canonicalize(parent(&self.path))?;
        if let Some(name) = self.path.file_name() {
            self.link = dir.join(name);
        }
        let mut dirs = vec![dir];
        if let Ok(target) = std::fs::canonicalize(&self.path) {
            let d = parent(&target);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        for d in &dirs {
            watcher.watch(d, RecursiveMode::NonRecursive)?;
        }
        Ok((watcher, dirs, rx))
    }

    async fn run(&mut self, events: &mut Events, shutdown: &CancellationToken) -> End {
        loop {
            let timer = self.next_timer();
            tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                ev = events.recv() => {
                    // Take every event already queued: one save makes
                    // several, and they are acted on once.
                    let mut batch = vec![ev];
                    while let Ok(ev) = events.try_recv() {
                        batch.push(Some(ev));
                    }
                    let mut wants = Wants::default();
                    for ev in batch {
                        match ev {
                            None => return End::WatcherFailed("event channel closed".into()),
                            Some(Err(e)) => return End::WatcherFailed(e.to_string()),
                            Some(Ok(ev)) => self.on_event(&ev, &mut wants),
                        }
                    }
                    if !self.act(wants, shutdown).await {
                        return End::Shutdown;
                    }
                },
                _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    if !self.on_timer(shutdown).await {
                        return End::Shutdown;
                    }
                }
            }
        }
    }

    /// Files the event under what it means for the profile.
    fn on_event(&mut self, ev: &notify::Event, wants: &mut Wants) {
        if matches!(ev.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write)) {
            return;
        }
        let is_target = ev.paths.iter().any(|p| self.is_target(p));
        match ev.kind {
            // Opening, reading and closing unwritten change nothing; every
            // read of the file (ours too) makes them.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) if is_target => self.closed(),
            EventKind::Access(_) => {}
            // A file created is empty and about to be written, unless it
            // is a link. A rename or a link delivers a complete file; a
            // removal leaves none to be torn.
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                let new_file = matches!(ev.kind, EventKind::Create(CreateKind::File | CreateKind::Any))
                    && !ev.paths.iter().any(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink()));
                match (is_target, new_file) {
                    (true, true) => self.opened(),
                    // Replaced whole: a write in place before this one no
                    // longer concerns the profile.
                    (true, false) => {
                        self.write = Write::Idle;
                        wants.read = true;
                    }
                    // Another file being written will be renamed into
                    // place if it is meant to be the profile.
                    (false, true) => {}
                    // A link or directory on the path (a ConfigMap's
                    // `..data`) may have changed what the path names.
                    (false, false) => wants.read = true,
                }
            }
            // Permissions or ownership: the file may have become readable
            // (or not).
            EventKind::Modify(ModifyKind::Metadata(_)) if is_target => wants.read = true,
            EventKind::Modify(ModifyKind::Metadata(_)) => {}
            EventKind::Modify(_) if is_target => self.opened(),
            EventKind::Modify(_) => {}
            // Events were lost (or the platform cannot say what happened):
            // treat it as a write just closed.
            EventKind::Any | EventKind::Other => self.closed(),
        }
    }

    fn is_target(&self, p: &Path) -> bool {
        let loader = self.loader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        p == self.link || loader.real.as_deref() == Some(p)
    }

    fn opened(&mut self) {
        self.write = Write::Open { quiet_until: Instant::now() + DEFAULT_UNCLOSED_QUIET };
    }

    fn closed(&mut self) {
        self.write = Write::Closed { until: Instant::now() + DEFAULT_SETTLE_AFTER_CLOSE, seen: None };
    }

    /// Does what a batch of events asked for. False on shutdown.
    async fn act(&mut self, wants: Wants, shutdown: &CancellationToken) -> bool {
        if wants.read && self.write == Write::Idle {
            return self.blocking(shutdown, Loader::check).await;
        }
        if let Write::Closed { until, seen: None } = self.write {
            let Some(seen) = self.blocking_value(shutdown, |l| l.look()).await else { return false };
            self.write = Write::Closed { until, seen };
        }
        true
    }

    /// When something is due: a settled write, a writer quiet for long, or
    /// a problem to report.
    fn next_timer(&self) -> Option<Instant> {
        match self.write {
            Write::Open { quiet_until } => Some(quiet_until),
            Write::Closed { until, .. } => Some(until),
            // A problem is reported only when no write may still fix it.
            Write::Idle => {
                let loader = self.loader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                loader.pending.as_ref().map(|(at, _)| *at)
            }
        }
    }

    async fn on_timer(&mut self, shutdown: &CancellationToken) -> bool {
        match std::mem::replace(&mut self.write, Write::Idle) {
            Write::Open { .. } => {
                self.closed();
                self.act(Wants::default(), shutdown).await
            }
            Write::Closed { seen, .. } => {
                let Some(unchanged) = self.blocking_value(shutdown, move |l| l.check_if_still(seen.as_ref())).await
                else {
                    return false;
                };
                if !unchanged {
                    // Changed without an event seen yet: settle again.
                    self.closed();
                    return self.act(Wants::default(), shutdown).await;
                }
                true
            }
            Write::Idle => {
                let mut loader = self.loader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                loader.report_pending();
                true
            }
        }
    }

    /// Runs `job` on a blocking thread. False on shutdown.
    async fn blocking(&self, shutdown: &CancellationToken, job: fn(&mut Loader)) -> bool {
        self.blocking_value(shutdown, job).await.is_some()
    }

    /// Runs `job` on a blocking thread; `None` on shutdown. Reading a large
    /// file, validating and translating it must not hold up an async worker.
    async fn blocking_value<T: Send + 'static>(
        &self,
        shutdown: &CancellationToken,
        job: impl FnOnce(&mut Loader) -> T + Send + 'static,
    ) -> Option<T> {
        let loader = self.loader.clone();
        // The reload span (it names the file) goes along to the thread.
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut loader = loader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            job(&mut loader)
        });
        tokio::select! {
            _ = shutdown.cancelled() => None,
            done = task => match done {
                Ok(v) => Some(v),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down.
                Err(_) => None,
            },
        }
    }
}

/// Reads the file, and parses and serves what changed. Its methods block.
struct Loader {
    path: PathBuf,
    /// What the path resolved to at the last read (links followed).
    real: Option<PathBuf>,
    /// The profile in force: the last good edit.
    profile: watch::Sender<Arc<Profile>>,
    status: watch::Sender<ReloadStatus>,
    metrics: Arc<XdsMetrics>,
    /// Hash of the last content read, good or bad.
    last_read: Option<u64>,
    /// A problem not reported yet, and when to report it.
    pending: Option<(Instant, Vec<String>)>,
}

impl Loader {
    fn read(&mut self) -> std::io::Result<Vec<u8>> {
        self.real = std::fs::canonicalize(&self.path).ok();
        let bytes = std::fs::read(&self.path)?;
        debug!(bytes = bytes.len(), "profile read");
        Ok(bytes)
    }

    /// Takes the text of the profile in force as the last read, without
    /// reading the file: an edit made since it was read (while the daemon
    /// started) is then a change that the first check serves.
    fn remember(&mut self) {
        self.real = std::fs::canonicalize(&self.path).ok();
        self.last_read = Some(self.profile.borrow().text.0);
    }

    /// What the file looks like now; `None` when it cannot be read.
    fn look(&mut self) -> Option<Seen> {
        let before = std::fs::metadata(&self.path).ok()?;
        let bytes = self.read().ok()?;
        Some(Seen { len: before.len(), modified: before.modified().ok(), hash: TextHash::of(&bytes).0 })
    }

    /// Reads and serves the file if it is still as `seen` (size,
    /// modification time and content); returns whether it was.
    fn check_if_still(&mut self, seen: Option<&Seen>) -> bool {
        let Some(seen) = seen else {
            // It could not be read when it was closed: report what it is now.
            self.check();
            return true;
        };
        let read = std::fs::metadata(&self.path).and_then(|before| {
            let bytes = self.read()?;
            let after = std::fs::metadata(&self.path)?;
            Ok((before, bytes, after))
        });
        match read {
            Ok((before, bytes, after)) => {
                let now = Seen { len: before.len(), modified: before.modified().ok(), hash: TextHash::of(&bytes).0 };
                if now != *seen || after.len() != before.len() || after.modified().ok() != now.modified {
                    return false;
                }
                self.take(&bytes);
                true
            }
            Err(e) => {
                self.unreadable(&e);
                true
            }
        }
    }

    /// Reads the file and serves it if it changed and is good.
    fn check(&mut self) {
        match self.read() {
            Ok(bytes) => self.take(&bytes),
            Err(e) => self.unreadable(&e),
        }
    }

    fn unreadable(&mut self, e: &std::io::Error) {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            format!("{}: the profile file is gone; still serving the last good profile", self.path.display())
        } else {
            format!("{}: cannot read the profile: {e}", self.path.display())
        };
        self.last_read = None;
        self.defer(vec![why]);
    }

    /// Parses and serves `bytes` if they differ from the last read.
    fn take(&mut self, bytes: &[u8]) {
        let h = TextHash::of(bytes).0;
        if self.last_read == Some(h) {
            return;
        }
        self.last_read = Some(h);
        let Ok(text) =
            super::load::profile_text(&self.path.display().to_string(), bytes).map_err(|e| self.defer(e.lines()))
        else {
            return;
        };
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
        match parse_profile(&file, stem, text) {
            Ok(profile) => self.serve(profile),
            Err(errors) => self.defer(errors.lines()),
        }
    }
    /// Where a good parsed profile leaves the reloader: sent on once it
    /// translates, or reported.
    fn serve(&mut self, profile: Profile) {
        self.pending = None;
        if let Err(e) = crate::publish::check(&profile) {
            return self
                .report(vec![format!("{}: the profile is valid but cannot be served: {e}", self.path.display())]);
        }
        let summary = ProfileDiff::between(&self.profile.borrow(), &profile).to_string();
        let name = profile.name.clone();
        // The status before the profile: whoever sees the new profile served
        // (an Envoy's answer, `/status`'s versions) then finds the reload
        // counted; it translates, so it will be served.
        self.metrics.reload(true);
        self.status.send_modify(|s| {
            s.loaded_at_ms = now_ms();
            s.reloads_ok += 1;
            s.last_change = Some(summary.clone());
            s.error = None;
        });
        self.profile.send_replace(Arc::new(profile));
        // The log line last: it may wait for its writer.
        info!(profile = %name, file = %self.path.display(), change = %summary, "profile reloaded");
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

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
