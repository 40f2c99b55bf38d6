//! An in-process fake Kubernetes API server, at the HTTP level, for kube's
//! real client: pods, nodes and `discovery.k8s.io/v1` EndpointSlices.
//!
//! Real list/watch semantics: every write bumps one resourceVersion; a list
//! returns the items and the version it is at; `?watch=1&resourceVersion=N`
//! replays the history after N, then streams newline-delimited events
//! (ADDED, MODIFIED, DELETED, a BOOKMARK once caught up) until
//! `timeoutSeconds`. Label selectors (`k=v`, `k!=v`, `k`, `!k`, `k in (..)`,
//! `k notin (..)`) and simple field selectors apply, and an object leaving a
//! watch's selector is sent as DELETED, as the real server does. After
//! [`FakeKube::compact`], a watch from an older version gets a 410 Gone
//! ERROR event (or, with [`FakeKube::set_http_410`], an HTTP 410).
//!
//! Faults: [`FakeKube::drop_connections`] cuts every connection mid-stream,
//! [`FakeKube::end_watches`] ends every open watch as its timeout would,
//! [`FakeKube::hang`] makes the server go silent (a VPN dropping packets),
//! [`FakeKube::stop`] / [`FakeKube::start`] take it down and back up on the
//! same port. Requests need `Authorization: Bearer <token>`; with
//! [`FakeKube::forbid`], requests for a kind are refused with 403, as RBAC
//! refuses a user without the role, and a `SelfSubjectAccessReview`
//! (`POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`) for it
//! answers `allowed: false`. Every answer has a `Date` header, off by
//! [`FakeKube::set_clock_offset`] to play a server whose clock is wrong.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pods,
    Nodes,
    Slices,
}

impl Kind {
    fn list_kind(self) -> (&'static str, &'static str) {
        match self {
            Kind::Pods => ("v1", "PodList"),
            Kind::Nodes => ("v1", "NodeList"),
            Kind::Slices => ("discovery.k8s.io/v1", "EndpointSliceList"),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    rv: u64,
    kind: Kind,
    typ: &'static str,
    object: Value,
    old: Option<Value>,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
    log: Vec<Entry>,
    /// Watches from a version below this get 410 Gone.
    compacted: u64,
    hang: bool,
    /// Open watches deliver no live events (they miss them).
    paused: bool,
    http_410: bool,
    /// Kinds the token may not read (403 Forbidden).
    forbidden: std::collections::BTreeSet<Kind>,
    lists: BTreeMap<Kind, usize>,
    watches: BTreeMap<Kind, usize>,
    /// Seconds the server's clock (its `Date` header) is ahead of the real one.
    clock_offset: i64,
    reviews: usize,
}

pub struct FakeKube {
    pub addr: SocketAddr,
    token: String,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Entry>,
    /// Bumped to end every open watch cleanly.
    ends: Arc<watch::Sender<u64>>,
    /// Connections and watch streams.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    accept: Mutex<Option<AbortHandle>>,
}

type Body = BoxBody<Bytes, Infallible>;

impl FakeKube {
    pub async fn start_new(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, _) = broadcast::channel(4096);
        let fake = Self {
            addr,
            token: token.to_string(),
            state: Arc::default(),
            events,
            ends: Arc::new(watch::channel(0).0),
            tasks: Arc::default(),
            accept: Mutex::default(),
        };
        fake.serve(listener);
        fake
    }

    /// A kubeconfig file pointing at this server with a token user.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> String {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: dev\nusers:\n- name: dev\n  user:\n    token: {}\n",
            self.addr, self.token
        );
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn serve(&self, listener: TcpListener) {
        let (state, events, tasks, token) =
            (self.state.clone(), self.events.clone(), self.tasks.clone(), self.token.clone());
        let ends = self.ends.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (state, events, tasks, token) = (state.clone(), events.clone(), tasks.clone(), token.clone());
                let ends = ends.clone();
                let tasks_inner = tasks.clone();
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (state, events, tasks, token) =
                            (state.clone(), events.clone(), tasks_inner.clone(), token.clone());
                        let ended = ends.subscribe();
                        async move {
                            let offset = state.lock().unwrap().clock_offset;
                            let mut resp = handle(req, state, events, ended, tasks, &token).await;
                            let now = std::time::SystemTime::now();
                            let at = if offset >= 0 {
                                now + Duration::from_secs(offset as u64)
                            } else {
                                now - Duration::from_secs(offset.unsigned_abs())
                            };
                            resp.headers_mut().insert("date", httpdate::fmt_http_date(at).parse().unwrap());
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        *self.accept.lock().unwrap() = Some(accept.abort_handle());
    }

    /// Cuts every connection mid-stream; the server keeps accepting.
    pub fn drop_connections(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Ends every open watch cleanly, as its `timeoutSeconds` would: the
    /// client resumes it from the last resourceVersion it saw.
    pub fn end_watches(&self) {
        self.ends.send_modify(|n| *n += 1);
    }

    /// The server goes away: connections cut, the port refuses.
    pub fn stop(&self) {
        if let Some(a) = self.accept.lock().unwrap().take() {
            a.abort();
        }
        self.drop_connections();
    }

    /// Back on the same port, with the same objects and history.
    pub async fn start(&self) {
        // The old listener closes when its aborted task is dropped: soon.
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                return self.serve(listener);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fake API server could not bind {} again", self.addr);
    }

    /// Silence: open watches stop sending, new requests get no answer.
    pub fn hang(&self, on: bool) {
        self.state.lock().unwrap().hang = on;
    }

    /// Open watches miss the live events while paused; with [`Self::compact`]
    /// this makes the next resumed watch start from a version that is gone.
    pub fn pause_watches(&self, on: bool) {
        self.state.lock().unwrap().paused = on;
    }

    /// Forgets the history: a watch from any version before now gets 410.
    pub fn compact(&self) {
        let mut s = self.state.lock().unwrap();
        s.compacted = s.rv + 1;
        s.log.clear();
    }

    /// Answer a too-old watch with HTTP 410 instead of an ERROR event.
    pub fn set_http_410(&self, on: bool) {
        self.state.lock().unwrap().http_410 = on;
    }

    /// Refuse (or allow again) every request for `kind` with 403 Forbidden.
    pub fn forbid(&self, kind: Kind, on: bool) {
        let mut s = self.state.lock().unwrap();
        if on {
            s.forbidden.insert(kind);
        } else {
            s.forbidden.remove(&kind);
        }
    }

    /// The server's clock runs `secs` ahead (negative: behind), as its `Date` header shows.
    pub fn set_clock_offset(&self, secs: i64) {
        self.state.lock().unwrap().clock_offset = secs;
    }

    /// SelfSubjectAccessReviews answered.
    pub fn reviews(&self) -> usize {
        self.state.lock().unwrap().reviews
    }

    pub fn lists(&self, kind: Kind) -> usize {
        self.state.lock().unwrap().lists.get(&kind).copied().unwrap_or(0)
    }

    pub fn watches(&self, kind: Kind) -> usize {
        self.state.lock().unwrap().watches.get(&kind).copied().unwrap_or(0)
    }

    /// Every object of `kind`, as a list would return it now.
    pub fn objects(&self, kind: Kind) -> Vec<Value> {
        self.state.lock().unwrap().objects.iter().filter(|((k, ..), _)| *k == kind).map(|(_, o)| o.clone()).collect()
    }

    pub fn resource_version(&self) -> u64 {
        self.state.lock().unwrap().rv
    }

    /// Creates or replaces an object (ADDED or MODIFIED).
    pub fn apply(&self, kind: Kind, mut object: Value) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = object_key(kind, &object);
        let old = s.objects.insert(key, object.clone());
        let typ = if old.is_some() { "MODIFIED" } else { "ADDED" };
        let entry = Entry { rv, kind, typ, object, old };
        s.log.push(entry.clone());
        let _ = self.events.send(entry);
    }

    /// Deletes an object (DELETED), if it exists.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        let Some(mut object) = s.objects.remove(&(kind, namespace.to_string(), name.to_string())) else { return };
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let entry = Entry { rv, kind, typ: "DELETED", object, old: None };
        s.log.push(entry.clone());
        let _ = self.events.send(entry);
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop();
    }
}

fn object_key(kind: Kind, o: &Value) -> (Kind, String, String) {
    let m = &o["metadata"];
    (kind, m["namespace"].as_str().unwrap_or("").to_string(), m["name"].as_str().unwrap_or("").to_string())
}

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Entry>,
    mut ended: watch::Receiver<u64>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    token: &str,
) -> Response<Body> {
    // A silent network: no answer while hanging (the client gives up).
    while state.lock().unwrap().hang {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let authorized =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"));
    if !authorized {
        return respond(StatusCode::UNAUTHORIZED, status_body(401, "Unauthorized", "Unauthorized"));
    }
    let path = req.uri().path().to_string();
    if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" && req.method() == hyper::Method::POST {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return access_review(&state, &body);
    }
    let query = parse_query(req.uri().query().unwrap_or(""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, namespace) = match segments.as_slice() {
        ["api", "v1", "namespaces", ns, "pods"] => (Kind::Pods, Some(ns.to_string())),
        ["api", "v1", "nodes"] => (Kind::Nodes, None),
        ["apis", "discovery.k8s.io", "v1", "namespaces", ns, "endpointslices"] => (Kind::Slices, Some(ns.to_string())),
        _ => return respond(StatusCode::NOT_FOUND, status_body(404, "NotFound", &format!("no route {path}"))),
    };
    if state.lock().unwrap().forbidden.contains(&kind) {
        let resource = match kind {
            Kind::Pods => "pods",
            Kind::Nodes => "nodes",
            Kind::Slices => "endpointslices",
        };
        let scope = match &namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        let message = format!(
            "{resource} is forbidden: User \"dev\" cannot list resource \"{resource}\" in API group \"\" {scope}"
        );
        return respond(StatusCode::FORBIDDEN, status_body(403, "Forbidden", &message));
    }
    let filter = Filter {
        kind,
        namespace,
        labels: query.get("labelSelector").cloned().unwrap_or_default(),
        fields: query.get("fieldSelector").cloned().unwrap_or_default(),
    };
    let watching = matches!(query.get("watch").map(String::as_str), Some("1" | "true"));
    if !watching {
        let mut s = state.lock().unwrap();
        *s.lists.entry(kind).or_default() += 1;
        let items: Vec<Value> =
            s.objects.iter().filter(|((k, ..), o)| *k == kind && filter.matches(o)).map(|(_, o)| o.clone()).collect();
        let (api_version, list_kind) = kind.list_kind();
        return respond(
            StatusCode::OK,
            json!({"apiVersion": api_version, "kind": list_kind,
                   "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
        );
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let timeout = query.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(290u64);
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1024);
    let (replay, live, gone, http_410, now) = {
        let mut s = state.lock().unwrap();
        *s.watches.entry(kind).or_default() += 1;
        let gone = from < s.compacted;
        let replay: Vec<Entry> = s.log.iter().filter(|e| e.rv > from).cloned().collect();
        (replay, events.subscribe(), gone, s.http_410, s.rv)
    };
    if gone && http_410 {
        return respond(StatusCode::GONE, status_body(410, "Expired", &format!("too old resource version: {from}")));
    }
    let producer = tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(Ok(Frame::data(Bytes::from(format!("{v}\n"))))).await.is_ok() }
        };
        if gone {
            let status = status_body(410, "Expired", &format!("too old resource version: {from} ({now})"));
            let _ = send(json!({"type": "ERROR", "object": status})).await;
            return;
        }
        for e in &replay {
            if let Some(ev) = filter.event(e)
                && !send(ev).await
            {
                return;
            }
        }
        if bookmarks {
            let (api_version, list_kind) = kind.list_kind();
            let bm = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version,
                "kind": list_kind.trim_end_matches("List"), "metadata": {"resourceVersion": now.to_string()}}});
            if !send(bm).await {
                return;
            }
        }
        let mut live = live;
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = ended.changed() => return,
                e = live.recv() => {
                    let Ok(e) = e else { return };
                    let skip = { let s = state.lock().unwrap(); s.hang || s.paused };
                    if e.rv <= now || skip {
                        continue;
                    }
                    if let Some(ev) = filter.event(&e)
                        && !send(ev).await
                    {
                        return;
                    }
                }
            }
        }
    });
    tasks.lock().unwrap().push(producer.abort_handle());
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(ReceiverStream::new(rx))))
        .unwrap()
}

/// Answers a SelfSubjectAccessReview as RBAC would: allowed unless the
/// resource's kind is forbidden.
fn access_review(state: &Mutex<State>, body: &[u8]) -> Response<Body> {
    let Ok(mut review) = serde_json::from_slice::<Value>(body) else {
        return respond(StatusCode::BAD_REQUEST, status_body(400, "BadRequest", "not JSON"));
    };
    let attrs = &review["spec"]["resourceAttributes"];
    let kind = match attrs["resource"].as_str() {
        Some("pods") => Some(Kind::Pods),
        Some("nodes") => Some(Kind::Nodes),
        Some("endpointslices") => Some(Kind::Slices),
        _ => None,
    };
    let mut s = state.lock().unwrap();
    s.reviews += 1;
    let allowed = kind.is_some_and(|k| !s.forbidden.contains(&k));
    let reason = if allowed { "RBAC: allowed by RoleBinding \"edge-reader\"" } else { "" };
    review["status"] = json!({"allowed": allowed, "reason": reason});
    respond(StatusCode::CREATED, review)
}

/// What one request selects.
#[derive(Clone)]
struct Filter {
    kind: Kind,
    namespace: Option<String>,
    labels: String,
    fields: String,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns));
        ns_ok && labels_match(&self.labels, &o["metadata"]["labels"]) && fields_match(&self.fields, o)
    }

    /// The watch event for a change, as a watch with this filter sees it.
    fn event(&self, e: &Entry) -> Option<Value> {
        if e.kind != self.kind {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.old.as_ref().is_some_and(|o| self.matches(o));
        let typ = match (e.typ, before, now) {
            ("DELETED", _, true) => "DELETED",
            ("ADDED", _, true) | ("MODIFIED", false, true) => "ADDED",
            ("MODIFIED", true, true) => "MODIFIED",
            ("MODIFIED", true, false) => "DELETED",
            _ => return None,
        };
        Some(json!({"type": typ, "object": e.object}))
    }
}

fn split_terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

fn labels_match(selector: &str, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    split_terms(selector).into_iter().all(|t| {
        let set = |t: &str, op: &str| {
            let (k, vs) = t.split_once(op)?;
            let vs = vs.trim().trim_start_matches('(').trim_end_matches(')');
            Some((k.trim().to_string(), vs.split(',').map(|v| v.trim().to_string()).collect::<Vec<_>>()))
        };
        if let Some((k, vs)) = set(t, " notin ") {
            !get(&k).is_some_and(|v| vs.iter().any(|x| x == v))
        } else if let Some((k, vs)) = set(t, " in ") {
            get(&k).is_some_and(|v| vs.iter().any(|x| x == v))
        } else if let Some((k, v)) = t.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some(k) = t.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(t).is_some()
        }
    })
}

/// `metadata.name=x`, `spec.nodeName!=y`, `status.phase=Running`: dotted paths.
fn fields_match(selector: &str, o: &Value) -> bool {
    let get = |path: &str| path.split('.').try_fold(o, |v, k| v.get(k)).and_then(Value::as_str).unwrap_or("");
    split_terms(selector).into_iter().all(|t| {
        if let Some((k, v)) = t.split_once("!=") {
            get(k) != v
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            get(k) == v
        } else {
            true
        }
    })
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pod as the API server returns it: Running, on hostNetwork, on
/// `node-1`, with the given container ports; Ready when `ready`.
pub fn pod(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    ip: &str,
    ports: &[(&str, u16)],
    ready: bool,
) -> Value {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let ports: Vec<Value> =
        ports.iter().map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"})).collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels, "uid": format!("uid-{namespace}-{name}")},
        "spec": {"hostNetwork": true, "nodeName": "node-1",
                 "containers": [{"name": "envoy", "image": "envoyproxy/envoy", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": ip,
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

/// A node with a zone label and addresses.
pub fn node(name: &str, zone: Option<&str>, internal: Option<&str>, external: Option<&str>) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(name));
    if let Some(z) = zone {
        labels.insert("topology.kubernetes.io/zone".into(), json!(z));
    }
    let mut addresses = vec![json!({"type": "Hostname", "address": name})];
    if let Some(ip) = internal {
        addresses.push(json!({"type": "InternalIP", "address": ip}));
    }
    if let Some(ip) = external {
        addresses.push(json!({"type": "ExternalIP", "address": ip}));
    }
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
           "status": {"addresses": addresses}})
}

/// An EndpointSlice of `service` with one port and (address, ready) endpoints.
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    port: (&str, u16),
    endpoints: &[(&str, bool)],
) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready)| {
            json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": false},
                   "zone": "zone-a", "targetRef": {"kind": "Pod", "namespace": namespace, "name": format!("pod-{ip}")}})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": port.0, "port": port.1, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}
