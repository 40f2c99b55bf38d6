//! The edge to the Kubernetes API: clients and watches. All the I/O of
//! discovery is here; what the events mean is decided by the index.
//!
//! A client is made once per (kubeconfig, context) and shared by the watches
//! on that API server. Making one may run an exec credential plugin (EKS,
//! GKE, kubelogin), which blocks, so it runs on the blocking pool (kube
//! does the same when the plugin's token expires and is refreshed).
//!
//! A watch task runs kube's `watcher` (list, then watch from the list's
//! resourceVersion, restarted by kube whenever the server ends a watch).
//! On any error it reports, waits out a backoff and starts over with a fresh
//! list: the index swaps that list in whole, so nothing is lost in between,
//! and the first completed list is the proof that the source is back.
//!
//! A backoff that has grown to seconds would make the return of an API
//! server that was down wait that long. So while the server does not answer,
//! the task also tries a bare TCP connect to its address once a
//! `probe_interval`: when a connect that failed succeeds, the server is back
//! and the task lists at once. A connect that succeeds from the start (a
//! silent server, a load balancer without backends) proves nothing, and the
//! backoff decides; two connects a second are no load on a server that is down.
//!
//! kube logs every failed request itself (an ERROR per retry from its HTTP
//! layer). Those duplicate what the task reports, once per state change, so
//! [`log_filter`] turns kube's own targets off unless a filter names them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use tokio::sync::{Notify, OnceCell, mpsc};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Options;
use super::index::Change;
use super::index::objects::{NodeInfo, Object, PodInfo, SERVICE_NAME_LABEL, SliceInfo};
use super::plan::{Conn, WatchKey};

pub use super::error::KubeError;

/// The tracing targets of the kube crate, quiet by default: see [`log_filter`].
pub const KUBE_LOG_TARGETS: [&str; 2] = ["kube_client", "kube_runtime"];

/// The log filter the daemon uses for `filter` (RUST_LOG syntax): kube's own
/// targets are turned off unless `filter` names them. Every failure kube
/// logs (an ERROR per failed request, a WARN per 403 retry) is one the watch
/// reports itself, once per state change; `info,kube_client=debug` shows
/// kube's lines again.
pub fn log_filter(filter: &str) -> String {
    let mut out = filter.trim().trim_end_matches(',').to_string();
    for target in KUBE_LOG_TARGETS.iter().filter(|t| !filter.contains(*t)) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(target);
        out.push_str("=off");
    }
    out
}

/// A client and the address it talks to (for messages; never credentials).
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub server: String,
    /// `host:port` to probe while the server does not answer; `None`
    /// behind an HTTP proxy, where a connect proves nothing about the server.
    pub probe: Option<String>,
}

/// One client per API server, made on first use. The mutex guards only
/// the map; connecting happens in the cell, outside it.
#[derive(Clone, Default)]
pub struct Clients {
    cells: Arc<Mutex<std::collections::BTreeMap<Conn, Arc<OnceCell<Connection>>>>>,
}

impl Clients {
    async fn get(&self, conn: &Conn, opts: &Options) -> Result<Connection, KubeError> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(conn.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| connect(conn.clone(), opts.clone())).await.cloned()
    }

    /// Forgets clients no watch uses any more.
    pub fn retain(&self, keep: impl Fn(&Conn) -> bool) {
        self.cells.lock().unwrap_or_else(|p| p.into_inner()).retain(|c, _| keep(c));
    }
}

/// Loads the kubeconfig and makes a client, off the async workers. Every
/// reader of the API server (the watches, `devbridge discover`) gets its
/// client here, so they authenticate alike.
pub async fn connect(conn: Conn, opts: Options) -> Result<Connection, KubeError> {
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let kc_opts = KubeConfigOptions { context: conn.context.clone(), cluster: None, user: None };
        let mut config = match &conn.kubeconfig {
            Some(path) => {
                let path = expand_home(path);
                let kc = Kubeconfig::read_from(&path)
                    .map_err(|e| KubeError::Kubeconfig { path: path.clone(), reason: e.to_string() })?;
                handle
                    .block_on(Config::from_custom_kubeconfig(kc, &kc_opts))
                    .map_err(|e| KubeError::Kubeconfig { path, reason: e.to_string() })?
            }
            None => handle
                .block_on(Config::from_kubeconfig(&kc_opts))
                .map_err(|e| KubeError::Context { conn: conn.to_string(), reason: e.to_string() })?,
        };
        config.connect_timeout = Some(opts.connect_timeout);
        config.read_timeout = Some(opts.read_timeout);
        config.write_timeout = Some(opts.read_timeout);
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let url = &config.cluster_url;
        let probe = probe_address(url.scheme_str(), url.host(), url.port_u16()).filter(|_| config.proxy_url.is_none());
        // Building the client runs an exec plugin, if the user has one.
        let client = Client::try_from(config)
            .map_err(|e| KubeError::Client { server: server.clone(), reason: e.to_string() })?;
        Ok(Connection { client, server, probe })
    });
    task.await.map_err(|e| KubeError::Client { server: "(unknown)".into(), reason: e.to_string() })?
}

/// `host:port` of an API server URL's parts, with the scheme's default port.
fn probe_address(scheme: Option<&str>, host: Option<&str>, port: Option<u16>) -> Option<String> {
    let port = port.unwrap_or(if scheme == Some("http") { 80 } else { 443 });
    Some(format!("{}:{port}", host?))
}

/// `~/x` as `$HOME/x`, as kubectl reads a kubeconfig path.
pub fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_string(),
    }
}

/// What a watch task tells the discovery loop.
#[derive(Debug)]
pub enum Report {
    Change(Change),
    Failed(KubeError),
    /// The task's client is ready; `server` is for messages.
    Server(String),
}

/// A report from one watch task (`id` tells a stopped task's late reports apart).
#[derive(Debug)]
pub struct Msg {
    pub watch: WatchKey,
    pub id: u64,
    pub report: Report,
}

/// Exponential backoff between attempts, reset by a completed list.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(opts: &Options) -> Self {
        Self { next: opts.backoff_min, min: opts.backoff_min, max: opts.backoff_max }
    }
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Runs one watch until cancelled. `relist` forces a fresh list (after a
/// clock jump); errors are reported and retried after a backoff.
pub async fn run_watch(
    watch: WatchKey,
    id: u64,
    clients: Clients,
    opts: Options,
    tx: mpsc::Sender<Msg>,
    relist: Arc<Notify>,
    cancel: CancellationToken,
) {
    let send = |report: Report| {
        let tx = tx.clone();
        let watch = watch.clone();
        async move { tx.send(Msg { watch, id, report }).await.is_ok() }
    };
    let mut backoff = Backoff::new(&opts);
    loop {
        // An exec plugin may take its time (a browser login): stay cancellable.
        let got = tokio::select! {
            _ = cancel.cancelled() => return,
            got = clients.get(watch.conn(), &opts) => got,
        };
        let conn = match got {
            Ok(c) => c,
            Err(e) => {
                if !send(Report::Failed(e)).await {
                    return;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next()) => continue,
                }
            }
        };
        if !send(Report::Server(conn.server.clone())).await {
            return;
        }
        let mut stream = events(&watch, &conn.client, &opts);
        let next = loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = relist.notified() => break Next::List,
                ev = stream.next() => match ev {
                    Some(Ok(change)) => {
                        if change == Change::InitDone {
                            backoff.reset();
                        }
                        if !send(Report::Change(change)).await {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let e = describe(&e, &conn.server, &watch);
                        let next = match &e {
                            KubeError::Gone { .. } => Next::List,
                            KubeError::Unreachable { .. } => Next::Backoff { probe: conn.probe.clone() },
                            _ => Next::Backoff { probe: None },
                        };
                        if !send(Report::Failed(e)).await {
                            return;
                        }
                        break next;
                    }
                    // kube's watcher never ends; if it does, start over.
                    None => break Next::Backoff { probe: None },
                },
            }
        };
        if let Next::Backoff { probe } = next {
            let wait = backoff.next();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = answers_again(probe.as_deref(), opts.probe_interval) => {
                    debug!(server = %conn.server, "the API server answers again; listing now");
                }
            }
        }
    }
}

/// What a watch does after its stream stops.
enum Next {
    /// List again at once (a 410, a forced relist).
    List,
    /// Wait out the backoff, or less if the probe sees the server return.
    Backoff { probe: Option<String> },
}

/// Resolves when a TCP connect to `addr` succeeds after one failed, trying
/// once an `interval`; never without an address. One connect at a time,
/// each bounded by the interval, so a server that is down sees at most one
/// SYN an interval from each watch.
async fn answers_again(addr: Option<&str>, interval: Duration) {
    let Some(addr) = addr else { return std::future::pending().await };
    let mut failed = false;
    loop {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(interval, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) if failed => return,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => failed = true,
        }
        tokio::time::sleep_until(started + interval).await;
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<Change, watcher::Error>> + Send>>;

fn events(watch: &WatchKey, client: &Client, opts: &Options) -> Events {
    // Whole seconds; the server ends each watch after this and kube resumes
    // it from the last resourceVersion (no relist).
    let timeout = u32::try_from(opts.watch_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let cfg = watcher::Config::default().timeout(timeout);
    fn map<K>(e: watcher::Event<K>, f: impl Fn(&K) -> Object) -> Change {
        match e {
            watcher::Event::Init => Change::Init,
            watcher::Event::InitApply(o) => Change::InitApply(f(&o)),
            watcher::Event::InitDone => Change::InitDone,
            watcher::Event::Apply(o) => Change::Apply(f(&o)),
            watcher::Event::Delete(o) => Change::Delete(f(&o)),
        }
    }
    match watch {
        WatchKey::Pods { namespace, selector, field_selector, .. } => {
            let mut cfg = cfg.labels(selector);
            if let Some(fs) = field_selector {
                cfg = cfg.fields(fs);
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            Box::pin(watcher(api, cfg).map(|r| r.map(|e| map(e, |p| Object::Pod(PodInfo::from_pod(p))))))
        }
        WatchKey::Slices { namespace, service, .. } => {
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
            let cfg = cfg.labels(&format!("{SERVICE_NAME_LABEL}={service}"));
            Box::pin(watcher(api, cfg).map(|r| r.map(|e| map(e, |s| Object::Slice(SliceInfo::from_slice(s))))))
        }
        WatchKey::Nodes { .. } => {
            let api: Api<Node> = Api::all(client.clone());
            Box::pin(watcher(api, cfg).map(|r| r.map(|e| map(e, |n| Object::Node(NodeInfo::from_node(n))))))
        }
    }
}

/// Turns a watcher error into what the user should know, with a hint.
fn describe(e: &watcher::Error, server: &str, watch: &WatchKey) -> KubeError {
    let server = server.to_string();
    let (verb, client_err) = match e {
        watcher::Error::InitialListFailed(c) => ("list", c),
        watcher::Error::WatchStartFailed(c) | watcher::Error::WatchFailed(c) => ("watch", c),
        watcher::Error::WatchError(status) if status.code == 410 => return KubeError::Gone { server },
        watcher::Error::WatchError(status) => {
            return KubeError::Api { server, code: status.code, message: status.message.clone() };
        }
        watcher::Error::NoResourceVersion => {
            return KubeError::Api { server, code: 0, message: "the list had no resourceVersion".into() };
        }
    };
    let resource = match watch {
        WatchKey::Pods { .. } => "pods",
        WatchKey::Slices { .. } => "endpointslices",
        WatchKey::Nodes { .. } => "nodes",
    };
    describe_request(client_err, &server, verb, resource)
}

/// Turns a failed request (`verb` on `resource`) into what the user should
/// know: a refusal names the verb and resource, anything that is not an
/// answer from the server is "did not answer".
pub fn describe_request(e: &kube::Error, server: &str, verb: &'static str, resource: &'static str) -> KubeError {
    let server = server.to_string();
    match e {
        // Some servers answer a too-old watch with HTTP 410 rather than a
        // watch event; kube would then retry the same version forever.
        kube::Error::Api(s) if s.code == 410 => KubeError::Gone { server },
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            KubeError::Forbidden { server, verb, resource, code: s.code, message: s.message.clone() }
        }
        kube::Error::Api(s) => KubeError::Api { server, code: s.code, message: s.message.clone() },
        // It answered, so the VPN is up: say what came back instead.
        kube::Error::SerdeError(e) => KubeError::Garbled { server, reason: e.to_string() },
        other => KubeError::Unreachable { server, reason: error_chain(other) },
    }
}

/// The error and its causes on one line ("service error: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_targets_are_turned_off_unless_the_filter_names_them() {
        assert_eq!(log_filter("info"), "info,kube_client=off,kube_runtime=off");
        assert_eq!(log_filter("info,devbridge=debug,"), "info,devbridge=debug,kube_client=off,kube_runtime=off");
        assert_eq!(log_filter("debug,kube_client=debug"), "debug,kube_client=debug,kube_runtime=off");
        assert_eq!(log_filter(""), "kube_client=off,kube_runtime=off");
    }

    #[test]
    fn an_answer_that_does_not_parse_is_not_called_unreachable() {
        let garbled = kube::Error::SerdeError(serde_json::from_str::<u8>("<html>").unwrap_err());
        let e = describe_request(&garbled, "https://10.0.0.1:6443", "list", "nodes");
        assert!(matches!(e, KubeError::Garbled { .. }), "{e:?}");
        assert!(!e.to_string().contains("VPN"), "{e}");
        let refused = kube::Error::Service("connection refused".into());
        assert!(matches!(describe_request(&refused, "s", "list", "pods"), KubeError::Unreachable { .. }));
    }

    #[test]
    fn the_probe_goes_to_the_servers_host_and_port() {
        assert_eq!(probe_address(Some("https"), Some("10.0.0.1"), Some(6443)).as_deref(), Some("10.0.0.1:6443"));
        assert_eq!(probe_address(Some("https"), Some("api.example.com"), None).as_deref(), Some("api.example.com:443"));
        assert_eq!(probe_address(Some("http"), Some("[::1]"), None).as_deref(), Some("[::1]:80"));
        assert_eq!(probe_address(Some("https"), None, None), None);
    }

    #[tokio::test]
    async fn the_probe_waits_for_a_refused_port_to_accept() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let interval = Duration::from_millis(20);
        let probe = tokio::spawn(async move { answers_again(Some(&addr.to_string()), interval).await });
        // Refused a few times: still waiting.
        tokio::time::sleep(interval * 5).await;
        assert!(!probe.is_finished(), "a refused port is not a server that is back");
        let _back = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), probe).await.expect("noticed within the bound").unwrap();
    }

    #[tokio::test]
    async fn a_port_that_always_accepted_proves_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let probe = answers_again(Some(&addr), Duration::from_millis(20));
        assert!(tokio::time::timeout(Duration::from_millis(200), probe).await.is_err(), "the backoff decides");
    }
}
