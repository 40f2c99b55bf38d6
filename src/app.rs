//! The one place that wires tasks and channels together. Each input owns
//! its channel; one builder task combines them into what is served.
//!
//! ```text
//! profile::watch (reload) ─watch<Arc<Profile>>──┬──────────────▶ builder ─watch<Arc<Published>>─▶ ADS streams ─▶ Envoy
//!                                               ├─▶ discovery ─watch<Arc<Discovered>>─▶ builder   ├─▶ admin server
//!                                               └─▶ registered ─watch<Arc<EndpointSet>>─▶ builder └─▶ prober
//! prober (probe.rs) ─watch<Arc<Marks>>─▶ builder; ─watch<Arc<Probes>>─▶ admin server
//! reload status, Published, sources, stream registry, probes ─▶ events ─watch<EventLog>─▶ admin (/status, the page)
//! ```
//!
//! The builder task ([`run_builder`]) is the single writer of what is
//! served; everything downstream reads. A change is translated and
//! published only if every proxy's snapshot is consistent, so a bad one
//! changes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::{self, Discovery, SourceStatus};
use crate::metrics::XdsMetrics;
use crate::model::{Discovered, EndpointSet, Marks, Profile, Published};
use crate::overrides::OverrideStore;
use crate::probe::Prober;
use crate::probe::report::Probes;
use crate::profile::watch::ReloadStatus;
use crate::publish::Builder;
use crate::registered::Registry;
use crate::tls::{TlsError, TlsFiles};
use crate::xds::registry::StreamRegistry;
use crate::xds::server::AdsService;
use crate::xds::server::XdsListener;
use crate::xds::snapshot::SnapshotError;

pub mod connect;
pub mod docker;

/// What a daemon does beyond serving its first profile.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where registered endpoints are kept across restarts; `None` keeps
    /// them in memory only.
    pub state_file: Option<PathBuf>,
    /// The profile file to follow for hot reload; `None` serves the first
    /// profile until the daemon stops.
    pub follow: Option<PathBuf>,
    /// Serve xDS over mutual TLS with these files, and serve each Envoy
    /// only the proxy its client certificate names.
    pub tls: Option<TlsFiles>,
    /// Serve the admin API over mutual TLS too (for a non-loopback address).
    pub admin_tls: bool,
    /// Discovery's timeouts and backoff.
    pub discovery: discovery::Options,
    /// What one client may hold on the xDS and admin listeners.
    pub limits: crate::accept::Limits,
    /// Edge probing's pace and concurrency.
    pub probe: crate::probe::Options,
    /// Where overrides set at run time are kept across restarts; `None`
    /// keeps them in memory only.
    pub overrides_file: Option<PathBuf>,
    /// The developer's identity, sent in the profile's identity header on
    /// every request; `None` sends none.
    pub identity: Option<String>,
}

/// Why a daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A running devbridge: xDS server, admin server, the inputs and the builder.
pub struct Daemon {
    pub registry: Arc<Registry>,
    pub overrides: Arc<OverrideStore>,
    pub metrics: Arc<XdsMetrics>,
    /// Every connected Envoy, as its ADS stream reports it.
    pub streams: Arc<StreamRegistry>,
    published: watch::Receiver<Arc<Published>>,
    reload: watch::Receiver<ReloadStatus>,
    /// The xDS TCP address (unspecified, port 0, when serving on a Unix socket).
    pub xds_addr: SocketAddr,
    /// The xDS Unix socket, when serving on one.
    pub xds_socket: Option<PathBuf>,
    pub admin_addr: Option<SocketAddr>,
    discovery: Discovery,
    events: watch::Receiver<crate::events::EventLog>,
    prober: Prober,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    xds_task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Daemon {
    /// Translates `profile`, publishes it and starts serving on the given
    /// (already bound) listeners, with discovery at its default timeouts.
    pub fn start(
        profile: Profile,
        xds: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        Self::start_with(profile, xds, admin, shutdown, Options::default())
    }

    pub fn start_with(
        profile: Profile,
        xds: impl Into<XdsListener>,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
        options: Options,
    ) -> Result<Self, StartError> {
        let xds = xds.into();
        // Bad TLS files stop the start, before anything listens.
        let xds_tls = options.tls.as_ref().map(|f| f.acceptor(&[b"h2"])).transpose()?;
        let admin_tls = match (&options.tls, options.admin_tls) {
            (Some(files), true) => Some(files.acceptor(&[b"http/1.1"])?),
            _ => None,
        };
        let (reload, reload_rx) = watch::channel(ReloadStatus::loaded(profile.file.clone()));
        let profile = Arc::new(profile);
        let (profile_tx, profile_rx) = watch::channel(profile.clone());
        let (registry, registered) = Registry::open(profile_rx.clone(), options.state_file);
        let (overrides, personal) = OverrideStore::open(profile_rx.clone(), options.overrides_file, options.identity);
        let builder = Builder::with_personal(profile, registered.borrow().clone(), personal.borrow().clone())?;
        let (published, rx) = watch::channel(builder.published().clone());
        let metrics = Arc::new(XdsMetrics::default());
        let tracker = TaskTracker::new();
        // Without a file to follow, the profile's sender is dropped here and
        // the first profile stays in force.
        let follow = options.follow.clone();
        if let Some(path) = options.follow {
            let span = tracing::info_span!("reload", file = %path.display());
            tracker.spawn(tracing::Instrument::instrument(
                crate::profile::watch::follow(path, profile_tx, reload, metrics.clone(), shutdown.clone()),
                span,
            ));
        }
        let (discovery, discovered) =
            discovery::spawn(profile_rx.clone(), metrics.clone(), options.discovery, &tracker, shutdown.clone());
        let prober = crate::probe::spawn(rx.clone(), metrics.clone(), options.probe, &tracker, shutdown.clone());
        tracker.spawn(crate::overrides::run_expiry(overrides.clone(), personal.clone(), shutdown.clone()));
        let inputs =
            Inputs { profile: profile_rx.clone(), discovered, registered, marks: prober.marks.clone(), personal };
        tracker.spawn(tracing::Instrument::instrument(
            run_builder(builder, inputs, published, shutdown.clone()),
            tracing::info_span!("builder"),
        ));
        let (xds_addr, xds_socket) = match &xds {
            XdsListener::Tcp(l) => (l.local_addr().expect("bound listener has an address"), None),
            XdsListener::Unix(l) => (
                SocketAddr::from(([0, 0, 0, 0], 0)),
                l.local_addr().ok().and_then(|a| a.as_pathname().map(PathBuf::from)),
            ),
        };
        let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
        let streams = StreamRegistry::new();
        let mut service = AdsService::new(rx.clone(), metrics.clone(), shutdown.clone(), tracker.clone())
            .with_registry(streams.clone());
        if xds_tls.is_some() {
            service = service.requiring_identity();
        }
        let xds_task = tokio::spawn(crate::xds::server::serve(xds, service, xds_tls, options.limits, shutdown.clone()));
        let (events_tx, events) = watch::channel(crate::events::EventLog::default());
        let inputs = crate::events::Inputs {
            reload: reload_rx.clone(),
            published: rx.clone(),
            sources: discovery.sources(),
            streams: streams.clone(),
            probes: prober.probes.clone(),
        };
        tracker.spawn(tracing::Instrument::instrument(
            crate::events::run(inputs, events_tx, shutdown.clone()),
            tracing::info_span!("events"),
        ));
        if let Some(admin) = admin {
            let state = crate::admin::AdminState {
                published: rx.clone(),
                profile: profile_rx,
                registry: registry.clone(),
                overrides: overrides.clone(),
                streams: streams.clone(),
                rest: Arc::default(),
                metrics: metrics.clone(),
                reload: reload_rx.clone(),
                sources: Arc::new(crate::admin::DiscoverySources(discovery.sources())),
                probes: prober.probes.clone(),
                follow,
                listen: crate::status::ListenInfo {
                    xds: match &xds_socket {
                        Some(path) => format!("unix:{}", path.display()),
                        None => xds_addr.to_string(),
                    },
                    admin: admin_addr.map(|a| a.to_string()).unwrap_or_default(),
                    pid: std::process::id(),
                },
                events: events.clone(),
            };
            tracker.spawn(crate::admin::serve(admin, state, admin_tls, options.limits, shutdown.clone()));
        }
        Ok(Self {
            registry,
            overrides,
            metrics,
            streams,
            published: rx,
            reload: reload_rx,
            xds_addr,
            xds_socket,
            admin_addr,
            discovery,
            events,
            prober,
            shutdown,
            tracker,
            xds_task,
        })
    }

    /// Each Kubernetes source's status (connected or degraded, counts,
    /// skipped pods), updated on every change.
    pub fn sources(&self) -> watch::Receiver<Vec<SourceStatus>> {
        self.discovery.sources()
    }

    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// What the probes find, updated after each round that changed it.
    pub fn probes(&self) -> watch::Receiver<Arc<Probes>> {
        self.prober.probes.clone()
    }

    /// What is served, as every reader sees it; `changed` fires on the
    /// next publish.
    pub fn published(&self) -> watch::Receiver<Arc<Published>> {
        let mut rx = self.published.clone();
        rx.mark_unchanged();
        rx
    }

    /// What is served now.
    pub fn current(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }

    /// The reload state of the profile in force; `changed` fires on the
    /// next change.
    pub fn reload_status(&self) -> watch::Receiver<ReloadStatus> {
        let mut rx = self.reload.clone();
        rx.mark_unchanged();
        rx
    }

    /// The events log (`events.rs`); `changed` fires on every input change it sees.
    pub fn events(&self) -> watch::Receiver<crate::events::EventLog> {
        self.events.clone()
    }

    /// Runs Envoy under the daemon's task tracker: restarted when it exits,
    /// stopped on shutdown before [`wait`](Self::wait) returns.
    pub fn supervise_envoy(&self, cmd: crate::supervise::EnvoyCommand, proxy: &str) {
        let span = tracing::info_span!("envoy", proxy = %proxy);
        self.tracker
            .spawn(tracing::Instrument::instrument(crate::supervise::supervise(cmd, self.shutdown.clone()), span));
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits for shutdown to be requested, then for every task to end.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        self.tracker.close();
        self.tracker.wait().await;
        match self.xds_task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("xDS server failed: {e}")),
            Err(e) => Err(anyhow::anyhow!("xDS server task panicked: {e}")),
        }
    }
}

/// What the builder reads: one channel per input, each with one writer.
pub struct Inputs {
    /// Written by the reloader (`profile::watch`).
    pub profile: watch::Receiver<Arc<Profile>>,
    /// Written by the discovery loop.
    pub discovered: watch::Receiver<Arc<Discovered>>,
    /// Written by the [`Registry`].
    pub registered: watch::Receiver<Arc<EndpointSet>>,
    /// Written by the prober (`probe.rs`): endpoints to publish unhealthy.
    pub marks: watch::Receiver<Arc<Marks>>,
    /// Written by the [`OverrideStore`]: overrides and the identity.
    pub personal: watch::Receiver<Arc<crate::personal::Personal>>,
}

/// The builder task: the one writer of `watch<Arc<Published>>`. Hands each
/// input's new value to its [`Builder`] step and publishes what changed; a
/// step that fails leaves what is served as it was. An input whose writer
/// is gone keeps its last value.
pub async fn run_builder(
    mut builder: Builder,
    mut inputs: Inputs,
    published: watch::Sender<Arc<Published>>,
    shutdown: CancellationToken,
) {
    let mut open = [true; 5];
    loop {
        let step = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = inputs.profile.changed(), if open[0] => match r {
                Ok(()) => builder.set_profile(inputs.profile.borrow_and_update().clone()),
                Err(_) => { open[0] = false; continue }
            },
            r = inputs.registered.changed(), if open[1] => match r {
                Ok(()) => builder.set_registered(inputs.registered.borrow_and_update().clone()),
                Err(_) => { open[1] = false; continue }
            },
            r = inputs.discovered.changed(), if open[2] => match r {
                Ok(()) => builder.set_discovered(inputs.discovered.borrow_and_update().clone()),
                Err(_) => { open[2] = false; continue }
            },
            r = inputs.marks.changed(), if open[3] => match r {
                Ok(()) => builder.set_marks(inputs.marks.borrow_and_update().clone()),
                Err(_) => { open[3] = false; continue }
            },
            r = inputs.personal.changed(), if open[4] => match r {
                Ok(()) => builder.set_personal(inputs.personal.borrow_and_update().clone()),
                Err(_) => { open[4] = false; continue }
            },
        };
        // Failures are logged by the builder; the last good stays served.
        if let Ok(Some(next)) = step {
            published.send_replace(next);
        }
    }
}
