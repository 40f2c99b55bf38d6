//! The ADS gRPC server: a thin async shell around [`StreamState`] (state of
//! the world) and [`DeltaState`] (incremental), both on the one service.
//!
//! Each stream is one task selecting over Envoy's requests, the published
//! snapshots (a `watch` channel with one writer, the app) and shutdown. All
//! protocol decisions are made by the pure state; this file only moves
//! messages, matches the Envoy's node to a proxy, logs, counts, and
//! reports the stream to the connected-Envoy [`StreamRegistry`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::delta::DeltaState;
use super::node::{Change, NodeId, NodeMatch};
use super::registry::{NodeInfo, StreamEntry, StreamInfo, StreamRegistry, TypeInfo};
use super::snapshot::Snapshot;
use super::stream::{Event, StreamState};
use crate::accept::{self, Accept, HTTP2_PREFACE_LEN, Limits, Plain};
use crate::metrics::XdsMetrics;
use crate::model::{Published, now_ms};
use crate::throttle::Throttle;

/// Largest request accepted from an Envoy. Requests are small (names and a
/// node); anything near this is garbage.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// HTTP/2 PINGs notice a dead peer (a laptop that slept, a killed Envoy).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_QUEUE: usize = 16;

/// Per-stream WARNs, one per reason per interval: a client opening streams
/// in a loop must not flood the log.
static WARNINGS: Throttle = Throttle::new(crate::throttle::DEFAULT_INTERVAL);

/// The ADS service handed to tonic.
#[derive(Clone)]
pub struct AdsService {
    published: watch::Receiver<Arc<Published>>,
    metrics: Arc<XdsMetrics>,
    streams: Arc<StreamRegistry>,
    /// With mutual TLS: an Envoy is served only the proxy its client
    /// certificate names.
    require_identity: bool,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl AdsService {
    pub fn new(
        published: watch::Receiver<Arc<Published>>,
        metrics: Arc<XdsMetrics>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self { published, metrics, streams: StreamRegistry::new(), require_identity: false, shutdown, tracker }
    }

    /// Serves each Envoy only the proxy its client certificate names.
    pub fn requiring_identity(mut self) -> Self {
        self.require_identity = true;
        self
    }

    /// Reports every stream to `streams` (by default, a registry of its own).
    pub fn with_registry(mut self, streams: Arc<StreamRegistry>) -> Self {
        self.streams = streams;
        self
    }
}

/// What the stream task needs of a protocol variant: its messages, and the
/// pure state that decides what to send.
trait Protocol: Default + Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: Send + 'static;
    /// As `/status` shows it.
    const NAME: &'static str;
    fn node(req: &Self::Request) -> Option<&Node>;
    fn type_url(req: &Self::Request) -> &str;
    fn on_request(&mut self, req: &Self::Request) -> (Vec<Event>, Vec<Self::Response>);
    fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>) -> Vec<Self::Response>;
    fn snapshot(&self) -> Option<&Arc<Snapshot>>;
    fn report(&self, nack_at_ms: &[Option<u64>; 4]) -> BTreeMap<String, TypeInfo>;
    /// Type URL, version, nonce, resources carried and removed, for the log.
    fn describe(r: &Self::Response) -> (&str, &str, &str, usize, usize);
}

impl Protocol for StreamState {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "sotw";
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn type_url(req: &DiscoveryRequest) -> &str {
        &req.type_url
    }
    fn on_request(&mut self, req: &DiscoveryRequest) -> (Vec<Event>, Vec<DiscoveryResponse>) {
        StreamState::on_request(self, req)
    }
    fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>) -> Vec<DiscoveryResponse> {
        StreamState::on_snapshot(self, snapshot)
    }
    fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        StreamState::snapshot(self)
    }
    fn report(&self, nack_at_ms: &[Option<u64>; 4]) -> BTreeMap<String, TypeInfo> {
        StreamInfo::types_from(self, nack_at_ms)
    }
    fn describe(r: &DiscoveryResponse) -> (&str, &str, &str, usize, usize) {
        (&r.type_url, &r.version_info, &r.nonce, r.resources.len(), 0)
    }
}

impl Protocol for DeltaState {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const NAME: &'static str = "delta";
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }
    fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> (Vec<Event>, Vec<DeltaDiscoveryResponse>) {
        DeltaState::on_request(self, req)
    }
    fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>) -> Vec<DeltaDiscoveryResponse> {
        DeltaState::on_snapshot(self, snapshot)
    }
    fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        DeltaState::snapshot(self)
    }
    fn report(&self, nack_at_ms: &[Option<u64>; 4]) -> BTreeMap<String, TypeInfo> {
        StreamInfo::types_from_delta(self, nack_at_ms)
    }
    fn describe(r: &DeltaDiscoveryResponse) -> (&str, &str, &str, usize, usize) {
        (&r.type_url, &r.system_version_info, &r.nonce, r.resources.len(), r.removed_resources.len())
    }
}

impl AdsService {
    /// Starts the task serving one stream of either protocol.
    fn start<P: Protocol>(
        &self,
        request: Request<Streaming<P::Request>>,
    ) -> ReceiverStream<Result<P::Response, Status>> {
        let peer = request.remote_addr();
        // The certificate was verified against devbridge's CA by the TLS layer.
        let identity =
            request.peer_certs().and_then(|certs| certs.first().and_then(|c| crate::certs::proxy_identity(c.as_ref())));
        let identity = if self.require_identity { Some(identity) } else { None };
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        let entry = self.streams.register(peer.map(|p| p.to_string()), P::NAME, now_ms());
        let stream = AdsStream::<P> {
            inbound: request.into_inner(),
            tx,
            published: self.published.clone(),
            metrics: self.metrics.clone(),
            state: P::default(),
            matched: NodeMatch::default(),
            node: None,
            identity,
            nack_at_ms: [None; 4],
            matched_change: Instant::now(),
            entry,
        };
        let span =
            info_span!("ads", peer = %peer.map_or_else(|| "-".to_string(), |p| p.to_string()), protocol = P::NAME);
        self.tracker.spawn(stream.run(self.shutdown.clone()).instrument(span));
        ReceiverStream::new(rx)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.start::<StreamState>(request)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.start::<DeltaState>(request)))
    }
}

struct AdsStream<P: Protocol> {
    inbound: Streaming<P::Request>,
    tx: mpsc::Sender<Result<P::Response, Status>>,
    published: watch::Receiver<Arc<Published>>,
    metrics: Arc<XdsMetrics>,
    state: P,
    /// Which proxy this Envoy is, and why none when none.
    matched: NodeMatch,
    node: Option<Node>,
    /// With mutual TLS, the proxy the client certificate names (`Some(None)`:
    /// it names none); `None` when identities are not checked.
    identity: Option<Option<String>>,
    /// Per type, when the NACK the protocol state holds arrived.
    nack_at_ms: [Option<u64>; 4],
    /// When the publication last matched against was published.
    matched_change: Instant,
    entry: StreamEntry,
}

impl<P: Protocol> AdsStream<P> {
    async fn run(mut self, shutdown: CancellationToken) {
        self.metrics.streams_active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.streams_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let end = self.serve(shutdown).await;
        self.metrics.streams_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        info!(proxy = self.matched.proxy.as_deref().unwrap_or("-"), reason = end, "ADS stream ended");
    }

    async fn serve(&mut self, shutdown: CancellationToken) -> &'static str {
        loop {
            // Set when the responses were caused by a published change.
            let mut caused_by: Option<Instant> = None;
            let responses = tokio::select! {
                _ = shutdown.cancelled() => return "shutdown",
                msg = self.inbound.message() => match msg {
                    Ok(Some(req)) => self.on_request(req),
                    Ok(None) => return "closed by Envoy",
                    Err(status) => {
                        debug!(code = ?status.code(), message = status.message(), "ADS stream error");
                        // Tell the client why its stream ends (e.g. a request over the size limit).
                        let _ = self.tx.try_send(Err(status));
                        return "stream error";
                    }
                },
                changed = self.published.changed() => {
                    if changed.is_err() {
                        return "publisher stopped";
                    }
                    let responses = self.on_published();
                    caused_by = Some(self.matched_change);
                    responses
                }
            };
            for r in responses {
                let (type_url, version, nonce, resources, removed) = P::describe(&r);
                if let Some(ty) = super::ResourceType::from_type_url(type_url) {
                    self.metrics.push(ty);
                    debug!(r#type = ty.short(), version, nonce, resources, removed, "push");
                }
                if self.tx.send(Ok(r)).await.is_err() {
                    return "client gone";
                }
                if let Some(at) = caused_by {
                    self.metrics.change_pushed(at.elapsed());
                }
            }
            self.report();
        }
    }

    /// Replaces this stream's entry in the registry with its current state.
    fn report(&self) {
        let node = self.node.as_ref().map(NodeInfo::of);
        let types = self.state.report(&self.nack_at_ms);
        self.entry.update(|info| {
            info.node = node;
            info.proxy = self.matched.proxy.clone();
            info.unmatched = self.matched.unmatched.clone();
            info.types = types;
        });
    }

    fn on_request(&mut self, req: P::Request) -> Vec<P::Response> {
        let mut out = Vec::new();
        if self.node.is_none() {
            let Some(node) = P::node(&req).cloned() else {
                if let Some(suppressed) = WARNINGS.allow("no node") {
                    warn!(type_url = %P::type_url(&req), suppressed, "first ADS request has no node; ignoring the stream until one names itself");
                }
                return out;
            };
            self.node = Some(node);
            out.extend(self.match_proxy());
        }
        let (events, responses) = self.state.on_request(&req);
        let proxy = self.matched.proxy.as_deref().unwrap_or("-");
        for e in events {
            match e {
                Event::Ack { ty, version } => {
                    self.metrics.ack(ty);
                    debug!(proxy, r#type = ty.short(), %version, "ACK");
                }
                Event::Nack { ty, version, message } => {
                    self.metrics.nack(ty);
                    self.nack_at_ms[ty.index()] = Some(now_ms());
                    warn!(proxy, r#type = ty.short(), %version, error = %message,
                        "Envoy rejected the configuration (NACK); it keeps its previous config, and this version will not be sent again");
                }
                Event::Stale { ty, nonce } => debug!(proxy, r#type = ty.short(), %nonce, "stale request ignored"),
                Event::UnknownType { type_url } => {
                    debug!(proxy, %type_url, "request for a type devbridge does not serve; ignored")
                }
                Event::TooManyNames { ty, limit } => {
                    if let Some(suppressed) = WARNINGS.allow("too many names") {
                        warn!(
                            proxy,
                            r#type = ty.short(),
                            limit,
                            suppressed,
                            "delta client subscribed to more resource names than a stream keeps; the rest were ignored"
                        );
                    }
                }
            }
        }
        out.extend(responses);
        out
    }

    fn on_published(&mut self) -> Vec<P::Response> {
        if self.node.is_none() {
            return vec![];
        }
        self.match_proxy()
    }

    /// Finds this Envoy's proxy in the current profile and hands its
    /// snapshot to the protocol state.
    fn match_proxy(&mut self) -> Vec<P::Response> {
        let published = self.published.borrow_and_update().clone();
        self.matched_change = published.changed_at;
        let node = self.node.as_ref().expect("node is set before matching");
        let zone = node.locality.as_ref().map_or("", |l| l.zone.as_str());
        let id = NodeId { cluster: &node.cluster, id: &node.id, zone };
        let identity = self.identity.as_ref().map(Option::as_deref);
        match self.matched.update(&published.profile, id, identity) {
            Change::Quiet => {}
            Change::Matched(p) => {
                info!(proxy = %p, node.id = %node.id, node.cluster = %node.cluster, zone, "Envoy matched a proxy")
            }
            Change::Refused(why) => {
                self.metrics.identity_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = WARNINGS.allow("identity refused") {
                    warn!(node.id = %node.id, node.cluster = %node.cluster, reason = %why, suppressed,
                        "refusing Envoy: certificate and node identity disagree; it gets no configuration (issue it its own certificate with `devbridge certs issue <proxy>`)");
                }
            }
            Change::NoProxy { profile, known } => {
                self.metrics.unknown_nodes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = WARNINGS.allow("unmatched node") {
                    warn!(node.id = %node.id, node.cluster = %node.cluster, zone, %profile,
                        known = %known.join(", "), suppressed,
                        "Envoy matches no proxy in the profile; it gets no configuration. Set its node.cluster (and node.locality.zone) to a proxy's, or use `devbridge bootstrap`");
                }
            }
            Change::Ambiguous { profile, candidates } => {
                self.metrics.unknown_nodes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = WARNINGS.allow("ambiguous node") {
                    warn!(node.id = %node.id, node.cluster = %node.cluster, %profile,
                        candidates = %candidates.join(", "), suppressed,
                        "Envoy states no zone and matches several proxies; it gets no configuration. Set node.locality.zone in its bootstrap (`devbridge bootstrap` does)");
                }
            }
        }
        let snapshot = self.matched.proxy.as_ref().and_then(|p| published.snapshots.get(p).cloned());
        if snapshot.as_ref().map(|s| &s.version) == self.state.snapshot().map(|s| &s.version) {
            return vec![];
        }
        self.state.on_snapshot(snapshot)
    }
}

/// Where the xDS server listens.
pub enum XdsListener {
    Tcp(TcpListener),
    /// A Unix domain socket (the OS-process runtime; mode 0600).
    Unix(tokio::net::UnixListener),
}

impl From<TcpListener> for XdsListener {
    fn from(l: TcpListener) -> Self {
        XdsListener::Tcp(l)
    }
}

impl From<tokio::net::UnixListener> for XdsListener {
    fn from(l: tokio::net::UnixListener) -> Self {
        XdsListener::Unix(l)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{} exists and is not a socket; not replacing it", .0.display())]
    NotASocket(std::path::PathBuf),
    #[error("cannot listen on {}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// Binds a Unix socket that only this user may use (mode 0600). A stale
/// socket from an earlier run is replaced; any other file is left alone.
pub fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener, BindError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let io = |source| BindError::Io { path: path.to_path_buf(), source };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves ADS on an already-bound listener until `shutdown` fires, then
/// lets open streams end. With `tls`, every TCP connection must complete a
/// mutual-TLS handshake first; refusals are counted, kept for `/status`
/// and logged, which tonic's own TLS would do silently. `limits` bound
/// connections, streams per connection and the time to the HTTP/2 preface.
pub async fn serve(
    listener: XdsListener,
    service: AdsService,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let metrics = service.metrics.clone();
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(DEFAULT_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(DEFAULT_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(limits.max_streams_per_connection))
        .add_service(
            AggregatedDiscoveryServiceServer::new(service).max_decoding_message_size(DEFAULT_MAX_REQUEST_BYTES),
        );
    let on_refused: accept::OnRefused = Arc::new(move |peer: &str, reason: &str| {
        if metrics.tls_refused(peer.to_string(), reason.to_string(), now_ms()) {
            warn!(%peer, %reason, "refused a connection to the xDS port: TLS handshake failed (does the Envoy present a certificate from `devbridge certs issue <proxy>`, over TLS?)");
        } else {
            debug!(%peer, %reason, "refused a connection to the xDS port: TLS handshake failed");
        }
    });
    let accept = Accept { what: "xDS", limits, first_bytes: HTTP2_PREFACE_LEN, on_refused: Some(on_refused) };
    let done = shutdown.clone().cancelled_owned();
    match (listener, tls) {
        (XdsListener::Tcp(listener), None) => {
            info!(addr = %listener.local_addr().map_or_else(|e| format!("unknown ({e})"), |a| a.to_string()), tls = false, "xDS server listening");
            router.serve_with_incoming_shutdown(accept::incoming(listener, Plain, accept, shutdown), done).await
        }
        (XdsListener::Tcp(listener), Some(acceptor)) => {
            info!(addr = %listener.local_addr().map_or_else(|e| format!("unknown ({e})"), |a| a.to_string()), tls = true, "xDS server listening");
            router.serve_with_incoming_shutdown(accept::incoming(listener, acceptor, accept, shutdown), done).await
        }
        (XdsListener::Unix(listener), _) => {
            // A Unix socket is protected by its 0600 mode; TLS is for TCP.
            info!(socket = %listener.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string())).unwrap_or_else(|| "unnamed".into()), "xDS server listening");
            router.serve_with_incoming_shutdown(accept::incoming(listener, Plain, accept, shutdown), done).await
        }
    }
}
