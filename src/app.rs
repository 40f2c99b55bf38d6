//! The one place that wires tasks and channels together.
//!
//! ```text
//! Profile ──translate()──▶ Published ──watch──▶ ADS stream tasks ──▶ Envoy
//!                              └──────watch──▶ admin server
//! ```
//!
//! [`Daemon`] owns the single writer of the `watch` channel; everything
//! downstream reads. A new profile is translated whole and published only
//! if every proxy's snapshot is consistent, so a bad one changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::discovery::DiscoveredEndpoints;
use crate::metrics::XdsMetrics;
use crate::profile::Profile;
use crate::xds::server::{AdsService, Published};
use crate::xds::snapshot::SnapshotError;
use crate::xds::translate::translate;

/// A running devbridge: xDS server, admin server and the publisher.
pub struct Daemon {
    publisher: watch::Sender<Arc<Published>>,
    pub metrics: Arc<XdsMetrics>,
    pub xds_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    xds_task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Daemon {
    /// Translates `profile`, publishes it and starts serving on the given
    /// (already bound) listeners.
    pub fn start(
        profile: Profile,
        xds: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<Self, SnapshotError> {
        let published = build(profile, &DiscoveredEndpoints::new())?;
        let (publisher, rx) = watch::channel(Arc::new(published));
        let metrics = Arc::new(XdsMetrics::default());
        let tracker = TaskTracker::new();
        let xds_addr = xds.local_addr().expect("bound listener has an address");
        let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
        let service = AdsService::new(rx.clone(), metrics.clone(), shutdown.clone(), tracker.clone());
        let xds_task = tokio::spawn(crate::xds::server::serve(xds, service, shutdown.clone()));
        if let Some(admin) = admin {
            tracker.spawn(crate::admin::serve(admin, rx, shutdown.clone()));
        }
        Ok(Self { publisher, metrics, xds_addr, admin_addr, shutdown, tracker, xds_task })
    }

    /// Translates and publishes a new profile. On error nothing changes and
    /// the last good snapshots keep being served.
    pub fn publish(&self, profile: Profile, discovered: &DiscoveredEndpoints) -> Result<(), SnapshotError> {
        let published = build(profile, discovered)?;
        self.publisher.send_if_modified(|current| {
            let changed = current.profile != published.profile || current.snapshots != published.snapshots;
            if changed {
                *current = Arc::new(published);
            }
            changed
        });
        Ok(())
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

fn build(profile: Profile, discovered: &DiscoveredEndpoints) -> Result<Published, SnapshotError> {
    let snapshots = translate(&profile, discovered)
        .inspect_err(|e| warn!(error = %e, "translation failed; keeping the previous configuration"))?;
    for (proxy, s) in &snapshots {
        info!(profile = %profile.name, %proxy, version = %s.version, "snapshot built");
    }
    Ok(Published { profile: Some(Arc::new(profile)), snapshots })
}
