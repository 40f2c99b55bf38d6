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
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::{self, DiscoveredEndpoints, Discovery, SourceStatus};
use crate::metrics::XdsMetrics;
use crate::profile::Profile;
use crate::publish::Publisher;
use crate::xds::server::AdsService;
use crate::xds::snapshot::SnapshotError;

/// A running devbridge: xDS server, admin server and the publisher.
pub struct Daemon {
    pub publisher: Arc<Publisher>,
    pub metrics: Arc<XdsMetrics>,
    pub xds_addr: SocketAddr,
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
    ) -> Result<Self, SnapshotError> {
        Self::start_with(profile, xds, admin, shutdown, discovery::Options::default())
    }

    /// [`Daemon::start`] with discovery's timeouts and backoff given.
    pub fn start_with(
        profile: Profile,
        xds: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
        discovery: discovery::Options,
    ) -> Result<Self, SnapshotError> {
        let publisher = Publisher::new(profile)?;
        let rx = publisher.subscribe();
        let metrics = Arc::new(XdsMetrics::default());
        let tracker = TaskTracker::new();
        let xds_addr = xds.local_addr().expect("bound listener has an address");
        let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
        let service = AdsService::new(rx.clone(), metrics.clone(), shutdown.clone(), tracker.clone());
        let xds_task = tokio::spawn(crate::xds::server::serve(xds, service, shutdown.clone()));
        if let Some(admin) = admin {
            tracker.spawn(crate::admin::serve(admin, rx, shutdown.clone()));
        }
        let discovery = discovery::spawn(publisher.clone(), discovery, &tracker, shutdown.clone());
        Ok(Self { publisher, metrics, xds_addr, admin_addr, discovery, shutdown, tracker, xds_task })
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
