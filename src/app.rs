//! The one place that wires tasks and channels together.
//!
//! ```text
//! profile, discovered + registered endpoints ─▶ Publisher ─watch<Published>─▶ ADS stream tasks ─▶ Envoy
//!                  ▲                                          ├────────▶ admin server
//!     discovery ───┘ (EDS only)  ◀── profile changes ─────────┘
//! ```
//!
//! The [`Publisher`] is the single writer of what is served; everything
//! downstream reads. A change is translated whole and published only if
//! every proxy's snapshot is consistent, so a bad one changes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::{self, DiscoveredEndpoints, Discovery, SourceStatus};
use crate::metrics::XdsMetrics;
use crate::profile::Profile;
use crate::profile::watch::ReloadStatus;
use crate::publish::Publisher;
use crate::registered::Registry;
use crate::tls::{TlsError, TlsFiles};
use crate::xds::registry::StreamRegistry;
use crate::xds::server::AdsService;
use crate::xds::server::XdsListener;
use crate::xds::snapshot::SnapshotError;

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
}

/// Why a daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A running devbridge: xDS server, admin server and the publisher.
pub struct Daemon {
    pub publisher: Arc<Publisher>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<XdsMetrics>,
    /// Every connected Envoy, as its ADS stream reports it.
    pub streams: Arc<StreamRegistry>,
    /// Written by the reload task; read by the admin API.
    pub reload: watch::Sender<ReloadStatus>,
    /// The xDS TCP address (unspecified, port 0, when serving on a Unix socket).
    pub xds_addr: SocketAddr,
    /// The xDS Unix socket, when serving on one.
    pub xds_socket: Option<PathBuf>,
    pub admin_addr: Option<SocketAddr>,
    discovery: Discovery,
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
        let (reload, _) = watch::channel(ReloadStatus::loaded(profile.file.clone()));
        let publisher = Publisher::new(profile)?;
        let registry = Registry::open(publisher.clone(), options.state_file);
        let metrics = Arc::new(XdsMetrics::default());
        let tracker = TaskTracker::new();
        if let Some(path) = options.follow {
            let span = tracing::info_span!("reload", file = %path.display());
            tracker.spawn(tracing::Instrument::instrument(
                crate::profile::watch::follow(
                    path,
                    publisher.clone(),
                    reload.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                ),
                span,
            ));
        }
        let discovery = discovery::spawn(publisher.clone(), options.discovery, &tracker, shutdown.clone());
        let rx = publisher.subscribe();
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
        let xds_task = tokio::spawn(crate::xds::server::serve(xds, service, xds_tls, shutdown.clone()));
        if let Some(admin) = admin {
            let state = crate::admin::AdminState {
                published: rx,
                registry: registry.clone(),
                streams: streams.clone(),
                metrics: metrics.clone(),
                reload: reload.subscribe(),
                sources: Arc::new(crate::admin::DiscoverySources(discovery.sources())),
            };
            tracker.spawn(crate::admin::serve(admin, state, admin_tls, shutdown.clone()));
        }
        Ok(Self {
            publisher,
            registry,
            metrics,
            streams,
            reload,
            xds_addr,
            xds_socket,
            admin_addr,
            discovery,
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

    /// Serves a new profile and discovered endpoints. On error nothing
    /// changes and the last good snapshots keep being served.
    pub fn publish(&self, profile: Profile, discovered: &DiscoveredEndpoints) -> Result<(), SnapshotError> {
        self.publisher.set(profile, Arc::new(discovered.clone())).map(|_| ())
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
