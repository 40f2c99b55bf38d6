//! Endpoints found at run time, per cluster: the `kubernetes` source (pods
//! by label) and the `kubernetes_service` source (a Service's
//! EndpointSlices), read from the laptop with the `kube` crate.
//!
//! ```text
//! reload ─watch<Arc<Profile>>─▶ run loop ─ plan ─▶ one task per watch (kube.rs) ──┐
//!                                 ▲ (profile changed: re-plan)                      │ mpsc<Msg>
//!                                 └──────────────── Index (pure) ◀──────────────────┘
//!           run loop ─▶ watch<Arc<Discovered>> (endpoints + changed clusters) ─▶ builder
//!           run loop ─▶ watch<Vec<SourceStatus>>
//! ```
//!
//! Failure semantics: a source that fails keeps its last known endpoints
//! (the index only replaces them with a completed list), is marked degraded
//! with the error and since when, and retries by itself with a backoff; the
//! first completed list marks it connected again. A clock jump (the laptop
//! slept) makes every source list again. Until discovery reports a cluster,
//! it has no endpoints: Envoy answers 503 "no healthy upstream", the truth.
//!
//! Static clusters carry their endpoints in the profile and never pass here.

pub mod error;
pub mod index;
pub mod kube;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::metrics::XdsMetrics;
use crate::model::{Discovered, EndpointSet, Profile};
use index::{Index, Skipped};
use kube::{Clients, Msg, Report};
use plan::{Plan, WatchKey};

/// The server ends each watch after this and kube resumes it from the last
/// resourceVersion. It must stay below [`DEFAULT_READ_TIMEOUT`], or a quiet
/// but healthy watch would trip the read timeout.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A request (a list, or a watch between events) that receives no byte for
/// this long fails. This is what notices a VPN that drops packets silently:
/// kube's own default is none (a dead watch was noticed after ~5 minutes).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Connecting to the API server; over a VPN this is one round trip.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before retrying a failed source; doubles up to the maximum.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between retries of a server that answers with errors.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// While the API server does not answer, a TCP connect to it this often:
/// its return (the VPN back up) is noticed within this, whatever the
/// backoff, so listing again is done within a second of its return.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often the wall clock is compared with the monotonic clock.
pub const DEFAULT_CLOCK_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// A wall clock that moved this much more (or less) than the monotonic
/// clock means the laptop slept: every source lists again.
pub const DEFAULT_CLOCK_JUMP: Duration = Duration::from_secs(10);

/// Timeouts and retry pacing (tests shorten them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub watch_timeout: Duration,
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub probe_interval: Duration,
    pub clock_check_interval: Duration,
    pub clock_jump: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            watch_timeout: DEFAULT_WATCH_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            clock_check_interval: DEFAULT_CLOCK_CHECK_INTERVAL,
            clock_jump: DEFAULT_CLOCK_JUMP,
        }
    }
}

/// Whether a source is being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// No list has completed yet (and no error either).
    Connecting,
    /// The last list completed and the watch is running.
    Connected { since: SystemTime },
    /// Reading fails; the last known endpoints keep being served.
    Degraded { error: String, since: SystemTime },
}

/// One watch, as the status work shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// E.g. `pods "app=edge-envoy" in edge via context staging`.
    pub name: String,
    /// The API server's address, once a client exists.
    pub server: Option<String>,
    /// The clusters this watch fills.
    pub clusters: Vec<String>,
    pub state: SourceState,
    /// When a list completed or an object last changed.
    pub last_event: Option<SystemTime>,
    /// Whether any list has completed: without one, there is no data at all.
    pub synced: bool,
    /// Objects held (pods, EndpointSlices or nodes).
    pub seen: usize,
    /// Objects that gave at least one cluster an endpoint.
    pub selected: usize,
    /// Every pod (or slice endpoint) a cluster skipped, and why.
    pub skipped: Vec<Skipped>,
}

impl SourceStatus {
    /// How old the served data may be: zero while connected; while
    /// degraded, the time since reading stopped working.
    pub fn data_age(&self, now: SystemTime) -> Option<Duration> {
        match &self.state {
            _ if !self.synced => None,
            SourceState::Degraded { since, .. } => Some(now.duration_since(*since).unwrap_or_default()),
            _ => Some(Duration::ZERO),
        }
    }

    pub fn is_degraded(&self) -> bool {
        matches!(self.state, SourceState::Degraded { .. })
    }

    /// This source as `/status` shows it, with ages against `now`.
    pub fn report(&self, now: SystemTime) -> crate::status::SourceReport {
        use crate::status::{SkippedReport, SourceState as Shown};
        let ms = |t: SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let (state, since, error) = match &self.state {
            SourceState::Connecting => (Shown::Connecting, None, None),
            SourceState::Connected { since } => (Shown::Connected, Some(ms(*since)), None),
            SourceState::Degraded { error, since } => (Shown::Degraded, Some(ms(*since)), Some(error.clone())),
        };
        crate::status::SourceReport {
            name: self.name.clone(),
            server: self.server.clone(),
            clusters: self.clusters.clone(),
            state,
            since_ms: since,
            error,
            synced: self.synced,
            last_event_ms: self.last_event.map(ms),
            data_age_ms: self.data_age(now).map(|d| d.as_millis() as u64),
            seen: self.seen,
            selected: self.selected,
            skipped: self
                .skipped
                .iter()
                .map(|k| SkippedReport {
                    cluster: k.cluster.clone(),
                    object: k.object.clone(),
                    reason: k.reason.to_string(),
                })
                .collect(),
            summary: String::new(),
        }
    }
}

/// A handle on the running discovery.
#[derive(Debug, Clone)]
pub struct Discovery {
    status: watch::Receiver<Vec<SourceStatus>>,
    relist: Arc<Notify>,
}

impl Discovery {
    /// Every watch's status, updated on each change.
    pub fn sources(&self) -> watch::Receiver<Vec<SourceStatus>> {
        self.status.clone()
    }

    /// Makes every source list again (what a clock jump does).
    pub fn relist(&self) {
        self.relist.notify_one();
    }
}

/// Starts discovery for the profile in force, following its changes. The
/// receiver gets every cluster's endpoints and which clusters changed;
/// each source's events and errors are counted in `metrics`.
pub fn spawn(
    profile: watch::Receiver<Arc<Profile>>,
    metrics: Arc<XdsMetrics>,
    opts: Options,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> (Discovery, watch::Receiver<Arc<Discovered>>) {
    let (status_tx, status) = watch::channel(Vec::new());
    let (out, discovered) = watch::channel(Arc::new(Discovered::default()));
    let relist = Arc::new(Notify::new());
    let run = Run::new(out, metrics, opts, tracker.clone(), shutdown);
    tracker.spawn(run.run(profile, status_tx, relist.clone()).instrument(info_span!("discovery")));
    (Discovery { status, relist }, discovered)
}

/// Whether the wall clock moved differently from the monotonic clock by
/// more than `threshold` (a laptop that slept, or a clock set by hand).
pub fn clock_jumped(monotonic: Duration, wall: Result<Duration, Duration>, threshold: Duration) -> bool {
    match wall {
        Ok(wall) => wall.abs_diff(monotonic) > threshold,
        // The wall clock went backwards.
        Err(back) => back + monotonic > threshold,
    }
}

struct Source {
    id: u64,
    cancel: CancellationToken,
    relist: Arc<Notify>,
    state: SourceState,
    server: Option<String>,
    last_event: Option<SystemTime>,
    clusters: Vec<String>,
}

/// The discovery loop's state: the only writer of the index and the status.
struct Run {
    /// What was last sent: the one writer of the discovered endpoints.
    out: watch::Sender<Arc<Discovered>>,
    metrics: Arc<XdsMetrics>,
    opts: Options,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    index: Index,
    sources: BTreeMap<WatchKey, Source>,
    clients: Clients,
    tx: mpsc::Sender<Msg>,
    rx: Option<mpsc::Receiver<Msg>>,
    next_id: u64,
    status: Vec<SourceStatus>,
}

/// Messages handled before publishing once: a relist of thousands of pods
/// is one publish, not thousands.
const BATCH: usize = 1024;

impl Run {
    fn new(
        out: watch::Sender<Arc<Discovered>>,
        metrics: Arc<XdsMetrics>,
        opts: Options,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(BATCH);
        Self {
            out,
            metrics,
            opts,
            tracker,
            shutdown,
            index: Index::default(),
            sources: BTreeMap::new(),
            clients: Clients::default(),
            tx,
            rx: Some(rx),
            next_id: 0,
            status: Vec::new(),
        }
    }

    async fn run(
        mut self,
        mut profiles: watch::Receiver<Arc<Profile>>,
        status_tx: watch::Sender<Vec<SourceStatus>>,
        relist: Arc<Notify>,
    ) {
        let mut rx = self.rx.take().expect("run once");
        // Without a reloader the first profile stays in force.
        let mut following = true;
        let mut profile: Option<Arc<Profile>> = None;
        let mut tick = tokio::time::interval(self.opts.clock_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clocks = (Instant::now(), SystemTime::now());
        loop {
            let current = profiles.borrow_and_update().clone();
            if profile.as_ref().is_none_or(|p| !Arc::ptr_eq(p, &current)) {
                self.replan(&current);
                profile = Some(current);
                self.update_status(&status_tx);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = profiles.changed(), if following => following = r.is_ok(),
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    let mut changed = BTreeSet::new();
                    self.handle(msg, &mut changed);
                    for _ in 0..BATCH {
                        match rx.try_recv() {
                            Ok(msg) => self.handle(msg, &mut changed),
                            Err(_) => break,
                        }
                    }
                    self.publish(&changed);
                    self.update_status(&status_tx);
                }
                _ = relist.notified() => self.relist_all("asked to"),
                _ = tick.tick() => {
                    let now = (Instant::now(), SystemTime::now());
                    let wall = now.1.duration_since(clocks.1).map_err(|e| e.duration());
                    if clock_jumped(now.0 - clocks.0, wall, self.opts.clock_jump) {
                        self.relist_all("the clock jumped (did the laptop sleep?)");
                    }
                    clocks = now;
                }
            }
        }
        for s in self.sources.values() {
            s.cancel.cancel();
        }
    }

    /// Follows a new profile: starts the watches it adds, stops those it
    /// drops, keeps the others (and their data) running.
    fn replan(&mut self, profile: &Profile) {
        let plan = Plan::from_profile(profile);
        if &plan == self.index.plan() {
            return;
        }
        self.index.set_plan(plan);
        let wanted = self.index.plan().watches();
        self.sources.retain(|key, s| {
            let keep = wanted.contains_key(key);
            if !keep {
                s.cancel.cancel();
                info!(source = %key, "watch stopped: no cluster uses it any more");
            }
            keep
        });
        for (key, clusters) in &wanted {
            let clusters: Vec<String> = clusters.iter().cloned().collect();
            if let Some(s) = self.sources.get_mut(key) {
                s.clusters = clusters;
                continue;
            }
            self.next_id += 1;
            let (id, cancel, relist) = (self.next_id, self.shutdown.child_token(), Arc::new(Notify::new()));
            info!(source = %key, clusters = ?clusters, "watch starting");
            let task = kube::run_watch(
                key.clone(),
                id,
                self.clients.clone(),
                self.opts.clone(),
                self.tx.clone(),
                relist.clone(),
                cancel.clone(),
            );
            self.tracker.spawn(task.instrument(info_span!("watch", source = %key)));
            let source =
                Source { id, cancel, relist, state: SourceState::Connecting, server: None, last_event: None, clusters };
            self.sources.insert(key.clone(), source);
        }
        self.clients.retain(|c| wanted.keys().any(|k| k.conn() == c));
        // Only the clusters whose endpoints the new plan changes are sent.
        let sent = self.out.borrow().clone();
        let clusters = &self.index.plan().clusters;
        let changed = clusters
            .keys()
            .filter(|c| sent.endpoints.get(*c).is_none_or(|e| *e != self.index.endpoints(c)))
            .chain(sent.endpoints.keys().filter(|c| !clusters.contains_key(*c)))
            .cloned()
            .collect();
        self.publish(&changed);
    }

    fn handle(&mut self, msg: Msg, changed: &mut BTreeSet<String>) {
        let Some(source) = self.sources.get_mut(&msg.watch).filter(|s| s.id == msg.id) else { return };
        let key = &msg.watch;
        match msg.report {
            Report::Server(server) => source.server = Some(server),
            Report::Change(change) => {
                let done = change == index::Change::InitDone;
                let counts =
                    matches!(change, index::Change::InitDone | index::Change::Apply(_) | index::Change::Delete(_));
                // An object received, in a list or a watch event.
                if matches!(change, index::Change::InitApply(_) | index::Change::Apply(_) | index::Change::Delete(_)) {
                    self.metrics.source_event(&key.to_string());
                }
                changed.extend(self.index.apply(key, change));
                if counts {
                    source.last_event = Some(SystemTime::now());
                }
                if done && !matches!(source.state, SourceState::Connected { .. }) {
                    let stats = self.index.stats(key);
                    match &source.state {
                        SourceState::Degraded { since, .. } => info!(
                            source = %key,
                            seen = stats.seen,
                            selected = stats.selected,
                            down_for = ?since.elapsed().unwrap_or_default(),
                            "source reconnected"
                        ),
                        _ => info!(
                            source = %key,
                            server = source.server.as_deref().unwrap_or(""),
                            seen = stats.seen,
                            selected = stats.selected,
                            "source connected"
                        ),
                    }
                    source.state = SourceState::Connected { since: SystemTime::now() };
                }
            }
            // Routine: the source lists again and stays connected, so it is
            // not counted as an error.
            Report::Failed(e) if e.is_gone() => info!(source = %key, "resourceVersion expired (410 Gone); relisting"),
            Report::Failed(e) => {
                // Every failed attempt counts; the log has one line per state change.
                self.metrics.source_error(&key.to_string());
                let error = e.to_string();
                match &mut source.state {
                    SourceState::Degraded { error: old, .. } => {
                        if *old != error {
                            debug!(source = %key, %error, "source still degraded");
                            *old = error;
                        }
                    }
                    state => {
                        // What is served now, in words true of the case.
                        let synced = self.index.store(key).is_some_and(|s| s.synced());
                        let served: usize = source.clusters.iter().map(|c| self.index.endpoints(c).len()).sum();
                        if synced {
                            let from =
                                humantime::format_rfc3339_seconds(source.last_event.unwrap_or_else(SystemTime::now));
                            let noun = if served == 1 { "endpoint" } else { "endpoints" };
                            warn!(
                                source = %key,
                                clusters = ?source.clusters,
                                %error,
                                "source degraded; serving {served} last known {noun}, data from {from}; retrying"
                            );
                        } else {
                            warn!(
                                source = %key,
                                clusters = ?source.clusters,
                                %error,
                                "source degraded before its first list; no endpoints yet; retrying"
                            );
                        }
                        *state = SourceState::Degraded { error, since: SystemTime::now() };
                    }
                }
            }
        }
    }

    /// Sends every cluster's endpoints, naming the `changed` ones; the
    /// others keep their shared lists.
    fn publish(&mut self, changed: &BTreeSet<String>) {
        if changed.is_empty() {
            return;
        }
        let sent = self.out.borrow().clone();
        let endpoints: EndpointSet = self
            .index
            .plan()
            .clusters
            .keys()
            .map(|c| match sent.endpoints.get(c) {
                Some(eps) if !changed.contains(c) => (c.clone(), eps.clone()),
                _ => (c.clone(), self.index.endpoints(c)),
            })
            .collect();
        let generation = sent.generation + 1;
        self.out.send_replace(Arc::new(Discovered { endpoints, changed: changed.clone(), generation }));
    }

    fn relist_all(&self, why: &str) {
        info!(sources = self.sources.len(), "{why}; listing every source again");
        for s in self.sources.values() {
            s.relist.notify_one();
        }
    }

    fn update_status(&mut self, tx: &watch::Sender<Vec<SourceStatus>>) {
        let status: Vec<SourceStatus> = self
            .sources
            .iter()
            .map(|(key, s)| {
                let stats = self.index.stats(key);
                SourceStatus {
                    name: key.to_string(),
                    server: s.server.clone(),
                    clusters: s.clusters.clone(),
                    state: s.state.clone(),
                    last_event: s.last_event,
                    synced: self.index.store(key).is_some_and(|s| s.synced()),
                    seen: stats.seen,
                    selected: stats.selected,
                    skipped: stats.skipped,
                }
            })
            .collect();
        log_skips(&self.status, &status);
        self.status = status.clone();
        tx.send_if_modified(|current| {
            let changed = *current != status;
            if changed {
                *current = status;
            }
            changed
        });
    }
}

/// Logs each pod that is newly skipped: a warning when the profile does not
/// fit the pods (a missing port, hostNetwork), which users otherwise hunt
/// for; a debug line for pods starting or stopping.
fn log_skips(before: &[SourceStatus], after: &[SourceStatus]) {
    let old: BTreeSet<(&str, &Skipped)> =
        before.iter().flat_map(|s| s.skipped.iter().map(move |k| (s.name.as_str(), k))).collect();
    for s in after {
        for k in &s.skipped {
            if old.contains(&(s.name.as_str(), k)) {
                continue;
            }
            if k.reason.is_mismatch() {
                warn!(source = %s.name, cluster = %k.cluster, pod = %k.object, reason = %k.reason, "pod skipped");
            } else {
                debug!(source = %s.name, cluster = %k.cluster, pod = %k.object, reason = %k.reason, "pod skipped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn wall_clock_ahead_of_the_monotonic_clock_is_a_jump() {
        assert!(clock_jumped(S(5), Ok(S(3600)), S(10)), "an hour asleep");
        assert!(clock_jumped(S(5), Err(S(60)), S(10)), "the clock set back a minute");
        assert!(!clock_jumped(S(5), Ok(S(6)), S(10)), "a busy machine is not a jump");
        assert!(!clock_jumped(S(5), Err(S(1)), S(10)), "an NTP nudge is not a jump");
    }
}
