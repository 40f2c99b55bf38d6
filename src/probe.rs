//! Edge probing: whether the laptop reaches each endpoint devbridge
//! serves, and how fast.
//!
//! ```text
//! builder ─watch<Arc<Published>>─▶ prober (this task) ─ plan::Board ─┬─ watch<Arc<Probes>> ─▶ admin (/status, /metrics)
//!                                    │ check::run, ≤ 16 at once       └─ watch<Arc<Marks>>  ─▶ builder (EDS health_status)
//! ```
//!
//! [`check`] is one probe (a TCP connect, or an HTTP GET of a path), shared
//! by this prober and `devbridge doctor`; [`plan`] decides what to probe
//! and keeps what was found (pure); [`report`] shows it in `/status`.
//!
//! Every endpoint of every cluster a proxy uses is probed from the laptop
//! each interval (10 s; a cluster's `probe` table may say otherwise), at
//! most [`plan::DEFAULT_MAX_PER_ROUND`] per cluster per round, in turns
//! over a larger set; at most [`DEFAULT_CONCURRENCY`] at once, each start
//! jittered, each bounded by a timeout well under the interval (2 s). A
//! cluster without endpoints costs nothing; DNS clusters are not probed
//! (Envoy resolves their names; devbridge has no addresses).

pub mod check;
pub mod plan;
pub mod report;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::metrics::XdsMetrics;
use crate::model::{Published, now_ms};
use plan::{Board, Change, Marks, Pacing, Reach};
use report::Probes;

/// At most this many probes in flight at once, over all clusters.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// A probe's start is delayed by a random time up to a quarter of its
/// timeout, at most this, so a round's probes do not leave in one burst.
pub const MAX_JITTER: Duration = Duration::from_secs(1);

/// The prober's pacing (tests shorten it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub pacing: Pacing,
    pub concurrency: usize,
    /// `false`: nothing is probed; `/status` shows no probes.
    pub enabled: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { pacing: Pacing::default(), concurrency: DEFAULT_CONCURRENCY, enabled: true }
    }
}

/// The prober's two outputs; it is the one writer of both.
#[derive(Debug, Clone)]
pub struct Prober {
    /// What every probed cluster's endpoints answered, for `/status`.
    pub probes: watch::Receiver<Arc<Probes>>,
    /// The endpoints to publish unhealthy; changes only when they do.
    pub marks: watch::Receiver<Arc<Marks>>,
}

/// Starts the prober on `published`, in `tracker`, until `shutdown`.
pub fn spawn(
    published: watch::Receiver<Arc<Published>>,
    metrics: Arc<XdsMetrics>,
    options: Options,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Prober {
    let (probes_tx, probes) = watch::channel(Arc::new(Probes::default()));
    let (marks_tx, marks) = watch::channel(Arc::new(Marks::new()));
    if options.enabled {
        let run = Run { probes: probes_tx, marks: marks_tx, metrics, options, start: Instant::now() };
        tracker.spawn(run.run(published, shutdown).instrument(info_span!("probe")));
    }
    Prober { probes, marks }
}

struct Run {
    probes: watch::Sender<Arc<Probes>>,
    marks: watch::Sender<Arc<Marks>>,
    metrics: Arc<XdsMetrics>,
    options: Options,
    /// The board's due times are on this monotonic clock; results carry
    /// the wall clock, which `/status` shows.
    start: Instant,
}

impl Run {
    fn mono_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run(self, mut published: watch::Receiver<Arc<Published>>, shutdown: CancellationToken) {
        let mut board = Board::new(self.options.pacing.max_per_round);
        board.set_targets(plan::targets(&published.borrow_and_update(), &self.options.pacing));
        self.publish(&board);
        let semaphore = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        loop {
            let wait = board.next_due_ms().map(|d| Duration::from_millis(d.saturating_sub(self.mono_ms())));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = published.changed() => {
                    if r.is_err() {
                        return;
                    }
                    board.set_targets(plan::targets(&published.borrow_and_update(), &self.options.pacing));
                    self.publish(&board);
                    continue;
                }
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            }
            let jobs = board.due(self.mono_ms(), 0);
            if jobs.is_empty() {
                continue;
            }
            let mut round = JoinSet::new();
            for job in jobs {
                let semaphore = semaphore.clone();
                let jitter = jitter(job.timeout / 4);
                round.spawn(async move {
                    tokio::time::sleep(jitter).await;
                    let _permit = semaphore.acquire_owned().await;
                    let result = check::run(&job.probe, job.addr, job.timeout).await;
                    (job, result)
                });
            }
            let mut changes = Vec::new();
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = round.join_next() => next,
                };
                let Some(Ok((job, result))) = next else {
                    if next.is_none() {
                        break;
                    }
                    continue;
                };
                if let Ok(answer) = &result {
                    self.metrics.probe_latency(answer.latency);
                }
                let result = result.map(|a| a.latency).map_err(|e| e.to_string());
                changes.extend(board.record(&job.cluster, job.addr, result, now_ms()));
            }
            log_changes(&changes);
            self.publish(&board);
        }
    }

    /// Sends what the board shows, and the marks when they changed.
    fn publish(&self, board: &Board) {
        let marks = board.marks();
        if **self.marks.borrow() != marks {
            info!(
                clusters = marks.len(),
                endpoints = marks.values().map(|m| m.len()).sum::<usize>(),
                "unhealthy marks changed"
            );
            self.marks.send_replace(Arc::new(marks.clone()));
        }
        let probes = Probes::of(board, &marks);
        self.metrics.set_probe_counts(
            probes.counts.iter().map(|(c, n)| (c.clone(), [n.reachable, n.unreachable, n.unknown])).collect(),
        );
        self.probes.send_if_modified(|p| {
            if **p == probes {
                return false;
            }
            *p = Arc::new(probes);
            true
        });
    }
}

/// One line per cluster and direction: a VPN going down turns thousands
/// of endpoints unreachable at once, which is one event, not thousands.
fn log_changes(changes: &[Change]) {
    let mut by: BTreeMap<(&str, bool), Vec<&Change>> = BTreeMap::new();
    // A first probe that answers is no news.
    for c in changes.iter().filter(|c| !(c.from == Reach::Unknown && c.reach == Reach::Reachable)) {
        by.entry((&c.cluster, c.reach == Reach::Reachable)).or_default().push(c);
    }
    for ((cluster, up), eps) in by {
        let list: Vec<String> = eps
            .iter()
            .take(5)
            .map(|c| match &c.error {
                Some(e) => format!("{} ({e})", c.addr),
                None => c.addr.to_string(),
            })
            .collect();
        let more = if eps.len() > 5 { format!(" and {} more", eps.len() - 5) } else { String::new() };
        if up {
            info!(%cluster, count = eps.len(), "reachable again: {}{more}", list.join(", "));
        } else {
            warn!(%cluster, count = eps.len(), "unreachable from this machine: {}{more}", list.join(", "));
        }
    }
}

/// A random duration below `max` (capped at [`MAX_JITTER`]).
fn jitter(max: Duration) -> Duration {
    let max = max.min(MAX_JITTER).as_micros() as u64;
    if max == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    Duration::from_micros(h.finish() % max)
}
