//! The admin HTTP server (hyper, loopback by default): `/healthz` (the
//! process is alive) and `/readyz` (a profile is loaded and its first
//! snapshot is published).

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::xds::server::Published;

/// Serves admin requests on an already-bound listener until `shutdown`.
pub async fn serve(listener: TcpListener, published: watch::Receiver<Arc<Published>>, shutdown: CancellationToken) {
    info!(addr = ?listener.local_addr().ok(), "admin server listening");
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "admin accept failed");
                    continue;
                }
            },
        };
        let published = published.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let svc = service_fn(move |req| {
                let published = published.clone();
                async move { Ok::<_, Infallible>(handle(&req, &published)) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "admin connection error") },
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

fn handle(req: &Request<Incoming>, published: &watch::Receiver<Arc<Published>>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let p = published.borrow();
            match &p.profile {
                Some(profile) => {
                    text(StatusCode::OK, &format!("ready: profile {} ({} proxies)\n", profile.name, p.snapshots.len()))
                }
                None => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no profile published yet\n"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found; try /healthz or /readyz\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}
