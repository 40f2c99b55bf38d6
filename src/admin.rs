//! The admin HTTP server (hyper, HTTP/1.1, loopback by default).
//!
//! | path | what |
//! | --- | --- |
//! | `GET /` | the status page: proxies, domains, routes, clusters, endpoints, Envoys, sources, events; live |
//! | `GET /v1/view` | JSON: what is served, as the page draws it (proxy -> domains -> routes -> clusters -> endpoints) |
//! | `GET /v1/events` | server-sent events: a message whenever something the page shows may have changed |
//! | `GET /healthz` | the process is alive |
//! | `GET /readyz` | a profile is loaded, its snapshots built, and every discovery source synced once |
//! | `GET /status` | JSON: profile, reload state, snapshot versions, registered endpoints, connected Envoys, sources |
//! | `GET /config_dump` | JSON: what each proxy is served, per type and resource (devbridge's view) |
//! | `GET /metrics` | Prometheus (OpenMetrics text) |
//! | `GET, PUT, DELETE /v1/clusters/{name}/endpoints` | endpoints registered at run time |
//! | `POST /v1/explain` | JSON in and out: where a request would go, and why (`devbridge explain`) |
//! | `POST /v1/diff` | JSON in and out: what serving a profile would change (`devbridge diff`) |
//! | `GET, POST, DELETE /v1/overrides[/ID]` | overrides set at run time (`devbridge override`) |
//!
//! Every handler reads shared state by cloning it out of its `watch` or
//! mutex; none holds a lock across an `.await`.

mod diff;
mod endpoints;
mod explain;
mod http;
mod overrides;
mod page;
mod rest;
mod status;

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::accept::{self, Accept, Guarded, Limits, Plain};
use crate::metrics::{METRICS_CONTENT_TYPE, XdsMetrics};
use crate::model::Published;
use crate::profile::watch::ReloadStatus;
use crate::registered::Registry;
use crate::status::SourceReport;
use crate::xds::registry::StreamRegistry;

/// Largest request body accepted (a registered endpoint list); more is 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the discovery sources tell the admin API: readiness and a state per
/// source.
pub trait SourcesView: Send + Sync {
    /// Whether every discovery source has synced at least once; `/readyz`
    /// waits for it.
    fn all_synced_once(&self) -> bool;
    /// Each source's state for `/status`.
    fn status(&self) -> Vec<SourceReport>;
}

/// The Kubernetes discovery sources, as `/status` and `/readyz` see them.
#[derive(Debug, Clone)]
pub struct DiscoverySources(pub tokio::sync::watch::Receiver<Vec<crate::discovery::SourceStatus>>);

impl SourcesView for DiscoverySources {
    fn all_synced_once(&self) -> bool {
        self.0.borrow().iter().all(|s| s.synced)
    }

    fn status(&self) -> Vec<SourceReport> {
        let now = std::time::SystemTime::now();
        self.0.borrow().iter().map(|s| s.report(now)).collect()
    }
}

/// Everything the admin API reads or changes.
#[derive(Clone)]
pub struct AdminState {
    pub published: watch::Receiver<Arc<Published>>,
    /// The profile in force as loaded, before overrides and the identity are
    /// applied: what a profile edit is compared with (`/v1/diff`).
    pub profile: watch::Receiver<Arc<crate::model::Profile>>,
    pub registry: Arc<Registry>,
    /// Overrides set at run time (`/v1/overrides`).
    pub overrides: Arc<crate::overrides::OverrideStore>,
    pub streams: Arc<StreamRegistry>,
    /// Envoys polling over REST (`admin/rest.rs`).
    pub rest: Arc<crate::xds::registry::RestClients>,
    pub metrics: Arc<XdsMetrics>,
    pub reload: watch::Receiver<ReloadStatus>,
    pub sources: Arc<dyn SourcesView>,
    /// What the laptop's probes find (`probe.rs`).
    pub probes: watch::Receiver<Arc<crate::probe::report::Probes>>,
    /// The profile file the daemon follows, if any (`devbridge diff` without a file reads it).
    pub follow: Option<std::path::PathBuf>,
    /// Where the daemon listens and its pid, for `/status`'s `listen`.
    pub listen: crate::status::ListenInfo,
    /// The events log (`events.rs`): `/status` shows its last events, the page waits on it.
    pub events: watch::Receiver<crate::events::EventLog>,
}

impl AdminState {
    /// Whether `/readyz` answers 200, and why not.
    pub fn readiness(&self) -> Result<String, String> {
        let published = self.published.borrow().clone();
        let profile = &published.profile;
        if !self.sources.all_synced_once() {
            return Err(format!("profile {} is loaded; waiting for every discovery source to sync once", profile.name));
        }
        Ok(format!(
            "profile {} ({})",
            profile.name,
            match published.snapshots.len() {
                1 => "1 proxy".to_string(),
                n => format!("{n} proxies"),
            }
        ))
    }
}

/// Serves admin requests on an already-bound listener until `shutdown`,
/// within `limits`: each request's headers must arrive within the read
/// timeout (a slowloris or a silent socket is closed), at most
/// `max_connections` at once.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    info!(addr = %listener.local_addr().map_or_else(|e| format!("unknown ({e})"), |a| a.to_string()), tls = tls.is_some(), "admin server listening");
    let accept = Accept { what: "admin", limits, first_bytes: 1, on_refused: None };
    match tls {
        None => {
            serve_incoming(accept::incoming(listener, Plain, accept, shutdown.clone()), state, limits, shutdown).await
        }
        Some(tls) => {
            serve_incoming(accept::incoming(listener, tls, accept, shutdown.clone()), state, limits, shutdown).await
        }
    }
}

async fn serve_incoming<IO>(
    mut incoming: ReceiverStream<std::io::Result<Guarded<IO>>>,
    state: AdminState,
    limits: Limits,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tracker = TaskTracker::new();
    while let Some(Ok(io)) = tokio::select! {
        _ = shutdown.cancelled() => None,
        next = incoming.next() => next,
    } {
        tracker.spawn(connection(TokioIo::new(io), state.clone(), limits, shutdown.clone()));
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection<IO>(io: TokioIo<IO>, state: AdminState, limits: Limits, shutdown: CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stop = shutdown.clone();
    let svc = service_fn(move |req| {
        let state = state.clone();
        let stop = stop.clone();
        async move { Ok::<_, Infallible>(respond(&state, req, stop).await) }
    });
    // The header-read timeout runs from the connection's start and between
    // keep-alive requests, so neither a slowloris nor an idle socket holds a slot.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(error = %e, "admin connection error") },
        _ = shutdown.cancelled() => {
            // Let a request in flight finish, then close.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Every answer: the event stream's body streams; all others are whole.
async fn respond(
    state: &AdminState,
    req: Request<Incoming>,
    shutdown: CancellationToken,
) -> Response<BoxBody<Bytes, Infallible>> {
    if req.uri().path() == page::EVENTS_PATH && req.method() == Method::GET {
        return page::events(state, shutdown);
    }
    handle(state, req).await.map(BodyExt::boxed)
}

async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if let Some(cluster) = endpoints::cluster_of(&path) {
        return endpoints::handle(state, cluster, req).await;
    }
    if path == explain::PATH {
        return explain::handle(state, req).await;
    }
    if let Some(id) = overrides::id_of(&path) {
        return overrides::handle(state, id, req).await;
    }
    if path == diff::PATH {
        return diff::handle(state, req).await;
    }
    if let Some(ty) = crate::xds::rest::type_of_path(&path) {
        return rest::handle(state, ty, req).await;
    }
    let known =
        ["/", "/healthz", "/readyz", "/status", "/config_dump", "/metrics", page::view::PATH, page::EVENTS_PATH];
    if !known.contains(&path.as_str()) {
        return http::text(
            StatusCode::NOT_FOUND,
            "not found; try / (the status page), /healthz, /readyz, /status, /config_dump, /metrics, /v1/view, /v1/events, /v1/explain, /v1/diff, /v1/overrides, /v1/clusters/NAME/endpoints or POST /v3/discovery:clusters (endpoints, listeners, routes)\n",
        );
    }
    if req.method() != Method::GET {
        return http::method_not_allowed("GET");
    }
    match path.as_str() {
        "/" => page::page(),
        page::view::PATH => http::json(StatusCode::OK, &page::view::build(&state.published.borrow().clone())),
        "/healthz" => http::text(StatusCode::OK, "ok\n"),
        "/readyz" => match state.readiness() {
            Ok(why) => http::text(StatusCode::OK, &format!("ready: {why}\n")),
            Err(why) => http::text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}\n")),
        },
        "/status" => http::json(StatusCode::OK, &status::build(state)),
        "/config_dump" => http::json(StatusCode::OK, &status::config_dump(&state.published.borrow().clone())),
        _ => {
            // A gauge read from the store at scrape time: it follows expiry and reloads.
            let n = state.overrides.count() as i64;
            state.metrics.overrides.store(n, std::sync::atomic::Ordering::Relaxed);
            http::body(StatusCode::OK, METRICS_CONTENT_TYPE, state.metrics.encode())
        }
    }
}
