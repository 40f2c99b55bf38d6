//! The validated profile: one environment's zones, proxies, domains,
//! routes and clusters, as every part of devbridge reads it. `crate::profile`
//! builds it from TOML; nothing here knows about files.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// One environment: what local proxies should serve, and where its endpoints come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// Where it was read from, as shown in messages.
    pub file: String,
    pub description: Option<String>,
    pub listen: ListenOverrides,
    pub zones: BTreeMap<String, Zone>,
    pub proxies: BTreeMap<String, Proxy>,
    /// Keyed by `host:port`.
    pub domains: BTreeMap<String, Domain>,
    pub clusters: BTreeMap<String, Cluster>,
    /// Where every proxy reports trace spans, when set.
    pub tracing: Option<Tracing>,
    /// The request header that carries the developer's identity on every
    /// request the sidecars send; `None`: none is added.
    pub identity_header: Option<String>,
    /// Standing overrides (`[[overrides]]`), before any set at run time.
    pub overrides: Vec<Override>,
    /// The text it was parsed from, hashed.
    pub text: TextHash,
}

/// A hash of a profile's text, so the reloader can tell whether the file
/// still holds the profile in force without reading it again. Two profiles
/// are equal by what they say, so every `TextHash` equals every other.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextHash(pub u64);

impl TextHash {
    pub fn of(bytes: &[u8]) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Self(h.finish())
    }
}

impl PartialEq for TextHash {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenOverrides {
    pub xds: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub description: Option<String>,
}

/// One Envoy (or a set of identical ones), recognised by its bootstrap node.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    pub name: String,
    pub zone: String,
    /// Must equal the Envoy's `node.cluster`; defaults to the proxy name.
    pub node_cluster: String,
    /// When set, must equal the Envoy's `node.id`.
    pub node_id: Option<String>,
    /// Domain names (`host:port`) this proxy serves, in profile order.
    pub domains: Vec<String>,
    /// The address the proxy's listeners bind to.
    pub listen_address: IpAddr,
    /// The Envoy admin address written into its bootstrap.
    pub admin: SocketAddr,
    /// Plain TCP services (databases, caches, brokers): a local port
    /// forwarded to a cluster, in profile order.
    pub tcp: Vec<TcpService>,
    /// What takes this configuration: an Envoy, or a gRPC application that
    /// reads xDS itself.
    pub kind: ProxyKind,
}

/// Who is behind a proxy's node identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyKind {
    /// An Envoy sidecar: a listener per port, its domains as virtual hosts.
    #[default]
    Envoy,
    /// A proxyless gRPC client: each domain is an `xds:///` target, served
    /// as an API listener named after it (gRFC A27).
    Grpc,
}

/// A local TCP port whose connections Envoy's TCP proxy forwards, byte for
/// byte, to one endpoint of a cluster (chosen per connection).
#[derive(Debug, Clone, PartialEq)]
pub struct TcpService {
    pub name: String,
    pub port: u16,
    pub cluster: String,
    /// How long a connection may carry no bytes either way before Envoy
    /// closes it; `None` is Envoy's default, one hour.
    pub idle_timeout: Option<Duration>,
}

impl Proxy {
    /// Whether an Envoy that states this node identity is this proxy. A node
    /// that states no zone matches on cluster and id alone.
    pub fn matches(&self, node_cluster: &str, node_id: &str, node_zone: &str) -> bool {
        self.node_cluster == node_cluster
            && self.node_id.as_deref().is_none_or(|id| id == node_id)
            && (node_zone.is_empty() || node_zone == self.zone)
    }

    /// The ports this proxy's HTTP domains listen on, each once, ascending
    /// (TCP services have a port each, in [`Proxy::tcp`]); none for a
    /// proxyless gRPC client, which listens on nothing.
    pub fn ports(&self, profile: &Profile) -> Vec<u16> {
        if self.kind == ProxyKind::Grpc {
            return vec![];
        }
        let mut ports: Vec<u16> = self.domains.iter().filter_map(|d| profile.domains.get(d).map(|d| d.port)).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// `host:port` that a proxy listens for: a virtual host on that port's listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub aliases: Vec<String>,
    pub routes: Vec<Route>,
    /// CORS for every route of the domain (a route's own replaces it).
    pub cors: Option<Cors>,
    /// Headers added to every request of the domain unless the request
    /// has them already (the developer's identity); set at run time.
    pub headers_if_absent: Vec<(String, String)>,
}

/// One route sent elsewhere for a while, without editing the profile: its
/// requests (a path prefix, optionally some header values) go to a local
/// address or another cluster, or are mirrored there. Placed before the
/// domain's own routes, so it wins; the route it stands in front of lends
/// it its timeout, retries and added headers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Override {
    /// Short and unique: `o1`, `o2`, ...; `profile-N` for standing ones.
    pub id: String,
    /// The domain (`host:port`) whose requests it takes.
    pub domain: String,
    pub prefix: String,
    /// Exact header values the request must also have (names lower-case).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub to: OverrideTarget,
    /// Mirror instead: the profile's route answers, `to` gets a copy.
    #[serde(default)]
    pub mirror: bool,
    /// Faults Envoy injects into these requests (delays, aborts).
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Only for this proxy's Envoys; `None`: every proxy serving the domain.
    #[serde(default)]
    pub proxy: Option<String>,
    /// When it ends by itself, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideTarget {
    /// A local copy, e.g. `127.0.0.1:5000`.
    Address(SocketAddr),
    /// A cluster of the profile (registered ones included).
    Cluster(String),
    /// Where the profile's own route sends them: for an override that only
    /// injects faults.
    Route,
}

impl Override {
    /// The cluster an override to an address sends to.
    pub fn cluster_name(&self) -> String {
        match &self.to {
            OverrideTarget::Address(_) => format!("override-{}", self.id),
            OverrideTarget::Cluster(c) => c.clone(),
            OverrideTarget::Route => String::new(),
        }
    }

    /// `demo.example.com:8888/api [x-dev=me] -> 127.0.0.1:5000`, as lists show it.
    pub fn describe(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let headers = if headers.is_empty() { String::new() } else { format!(" [{}]", headers.join(", ")) };
        let to = match &self.to {
            OverrideTarget::Address(a) => a.to_string(),
            OverrideTarget::Cluster(c) => format!("cluster {c}"),
            OverrideTarget::Route => "its route".to_string(),
        };
        let how = if self.mirror { "mirrored to" } else { "->" };
        let fault = self.fault.as_ref().map(|f| format!(" with {}", f.describe())).unwrap_or_default();
        let proxy = self.proxy.as_ref().map(|p| format!(" (proxy {p})")).unwrap_or_default();
        format!("{}{}{headers} {how} {to}{fault}{proxy}", self.domain, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Headers set on the response (replacing one of the same name), and
    /// headers removed from it, whatever the action.
    pub response_headers_add: Vec<(String, String)>,
    pub response_headers_remove: Vec<String>,
    pub cors: Option<Cors>,
    /// The override this route stands for, when it is one.
    pub override_id: Option<String>,
}

/// Cross-origin requests a browser may make (Envoy's CORS filter answers
/// preflights and adds the `access-control-*` headers).
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    /// Exact origins, e.g. `http://localhost:3000`; `*` allows any.
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: bool,
}

/// Endpoint labels to match (`canary = "true"`), by name.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub headers: Vec<ValueMatch>,
    pub query: Vec<ValueMatch>,
    /// Upper-case HTTP methods; empty means any.
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(String),
}

/// A match on one header or query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMatch {
    pub name: String,
    pub kind: ValueMatchKind,
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatchKind {
    Exact(String),
    Prefix(String),
    Regex(String),
    /// `present = true` matches when the value is there, `false` when it is not.
    Present(bool),
}

// Most routes forward, so boxing `Forward` would save nothing and cost a
// pointer chase on every route.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(Forward),
    Redirect(Redirect),
    DirectResponse { status: u16, body: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub target: Target,
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
    pub prefix_rewrite: Option<String>,
    pub host_rewrite: Option<String>,
    pub request_headers_add: Vec<(String, String)>,
    /// Only endpoints with these labels (Envoy subset load balancing);
    /// empty: any endpoint.
    pub subset: Labels,
    /// How a hashing load balancer (`ring_hash`, `maglev`) keys a request,
    /// first policy that yields a value wins; empty: a random key.
    pub hash_policy: Vec<HashPolicy>,
    /// A copy of each request (of a share of them) sent to another cluster,
    /// whose answers are dropped: a local copy sees staging's traffic.
    pub mirror: Option<Mirror>,
    /// Delays or failures Envoy injects, to see how the caller copes.
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    /// Share of requests mirrored, 0-100.
    pub percent: u32,
}

/// Envoy's HTTP fault injection on a route.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    /// A fixed delay for this share (0-100) of requests.
    pub delay: Option<(Duration, u32)>,
    /// This status, answered by Envoy itself, for this share of requests.
    pub abort: Option<(u16, u32)>,
}

impl Fault {
    /// `delay 2s for 10%, abort 503 for 5%`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((d, p)) = self.delay {
            parts.push(format!("delay {} for {p}%", humantime::format_duration(d)));
        }
        if let Some((s, p)) = self.abort {
            parts.push(format!("abort {s} for {p}%"));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashPolicy {
    /// The value of a request header.
    Header(String),
    /// A cookie's value; with a `ttl`, Envoy sets the cookie when absent.
    Cookie { name: String, ttl: Option<Duration> },
    /// The client's address.
    SourceIp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Cluster(String),
    /// Clusters with relative weights.
    Weighted(Vec<Split>),
}

/// One cluster of a weighted split.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub cluster: String,
    pub weight: u32,
    /// Only endpoints with these labels, on top of the route's `subset`.
    pub subset: Labels,
}

impl Target {
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            Target::Cluster(c) => vec![c.as_str()],
            Target::Weighted(w) => w.iter().map(|s| s.cluster.as_str()).collect(),
        }
    }
}

/// The gRPC status names gRPC's own retry policy understands (gRFC A44):
/// what a proxyless gRPC client can be told to retry on.
pub const GRPC_RETRY_ON: &[&str] = &["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"];

#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    pub count: u32,
    /// Envoy `retry_on` conditions, e.g. `5xx`, `connect-failure`.
    pub on: Vec<String>,
    /// Status codes retried (`retriable-status-codes`, then in `on`).
    pub status_codes: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    pub host: Option<String>,
    pub path: Option<String>,
    pub https: bool,
    pub code: u16,
}

/// Tracing for every HTTP connection manager of every proxy: Envoy starts
/// or continues a trace (B3 headers, `x-request-id`) and reports its spans
/// to a Zipkin-compatible collector (Zipkin itself, Jaeger's Zipkin port).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    pub zipkin: Zipkin,
    /// Share of requests that start a trace, in percent (0-100).
    pub sampling: f64,
}

/// A Zipkin collector: the profile cluster that reaches it and the path
/// spans are POSTed to (Zipkin API v2, JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zipkin {
    pub cluster: String,
    pub path: String,
}

/// A named set of endpoints and the policy for using them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub source: Source,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    /// Speak HTTP/2 to the upstream (gRPC services).
    pub http2: bool,
    pub health_check: Option<HealthCheck>,
    pub circuit_breakers: Option<CircuitBreakers>,
    pub tls: Option<UpstreamTls>,
    /// How devbridge probes the endpoints from the laptop; `None` when it
    /// does not (`probe = false`, or a DNS cluster: Envoy resolves those).
    pub probe: Option<ProbeSpec>,
    /// Passive ejection: Envoy ejects an endpoint its traffic finds failing.
    pub outlier_detection: Option<OutlierDetection>,
    /// Zones in order of preference: endpoints of the first are Envoy
    /// priority 0, of the next 1, and so on, others last; Envoy fails over
    /// to the next priority as one's endpoints turn unhealthy. Empty: every
    /// endpoint at priority 0.
    pub zone_priority: Vec<String>,
    /// The label sets routes pick endpoints by (each sorted), filled from
    /// the routes that use the cluster; empty: no subset load balancing.
    pub subset_keys: Vec<Vec<String>>,
    /// What a route whose subset matches no endpoint gets.
    pub subset_fallback: SubsetFallback,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SubsetFallback {
    /// Any endpoint of the cluster.
    #[default]
    Any,
    /// None: Envoy answers 503.
    NoEndpoint,
}

/// Envoy outlier detection; `None` fields are Envoy's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutlierDetection {
    /// Consecutive 5xx answers (or connect failures) that eject (Envoy: 5).
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502, 503 and 504 answers that eject (off unless set).
    pub consecutive_gateway_failure: Option<u32>,
    /// How often ejections are reconsidered (Envoy: 10 s).
    pub interval: Option<Duration>,
    /// How long a first ejection lasts, times the ejections so far (Envoy: 30 s).
    pub base_ejection_time: Option<Duration>,
    /// At most this share of the cluster is ejected, in percent (Envoy: 10;
    /// one endpoint always may be).
    pub max_ejection_percent: Option<u32>,
}

/// What the laptop does to each endpoint of a cluster to tell whether it
/// is reachable (`crate::probe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Open a TCP connection and close it.
    Tcp,
    /// `GET path` with this `Host` (the endpoint's address when `None`);
    /// any answer below 400 counts as reachable and healthy.
    Http { path: String, host: Option<String> },
}

impl Probe {
    /// `tcp connect` or `http GET /healthz`, as `/status` names it.
    pub fn describe(&self) -> String {
        match self {
            Probe::Tcp => "tcp connect".to_string(),
            Probe::Http { path, .. } => format!("http GET {path}"),
        }
    }
}

/// A cluster's probe: what, and how often (`None`: the daemon's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub probe: Probe,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Endpoints written in the profile.
    Static(Vec<Endpoint>),
    /// Host names that Envoy resolves itself.
    Dns { hosts: Vec<(String, u16)>, lookup: DnsLookup },
    /// Pods found through the Kubernetes API.
    Kubernetes(KubernetesSource),
    /// Endpoints set at run time through the admin API (`PUT
    /// /v1/clusters/NAME/endpoints`), kept across restarts in a state file.
    Registered,
    /// A Service's endpoints, from its EndpointSlices.
    KubernetesService(KubernetesServiceSource),
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Static(_) => "static",
            Source::Dns { .. } => "dns",
            Source::Kubernetes(_) => "kubernetes",
            Source::Registered => "registered",
            Source::KubernetesService(_) => "kubernetes_service",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsLookup {
    /// Every address a name resolves to is an endpoint (Envoy STRICT_DNS).
    Strict,
    /// The first address only, for large round-robin DNS (Envoy LOGICAL_DNS).
    Logical,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSource {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    pub selector: String,
    pub field_selector: Option<String>,
    pub port: PortRef,
    pub address: AddressKind,
    pub host_network: bool,
    /// Put each endpoint in its node's `topology.kubernetes.io/zone`
    /// (needs read access to nodes).
    pub node_zones: bool,
}

impl KubernetesSource {
    /// Whether the source needs the nodes of the cluster: for their
    /// addresses or their zones.
    pub fn needs_nodes(&self) -> bool {
        self.node_zones || self.address != AddressKind::Pod
    }
}

/// The ready endpoints of a Service, from its `discovery.k8s.io/v1`
/// EndpointSlices (for VPNs that route pod IPs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesServiceSource {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub namespace: String,
    pub service: String,
    /// The Service port's name, or the endpoints' (target) port number.
    pub port: PortRef,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressKind {
    Pod,
    NodeInternal,
    NodeExternal,
}

/// One upstream address with its locality and metadata. Ordered by its
/// fields in turn, as a derived order would be (see the `Ord` impl).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub zone: Option<String>,
    pub weight: Option<u32>,
    /// Shared: endpoint lists are rebuilt whenever one of their endpoints
    /// changes, and copying 10,000 maps each time cost more than the rest
    /// of an EDS update. Equal maps compare by pointer first.
    pub metadata: Arc<BTreeMap<String, String>>,
    /// Published with EDS health status UNHEALTHY: the laptop's probes
    /// failed to reach it while others of its cluster answer
    /// (`probe::plan::Board::marks`). Found and registered endpoints never
    /// are; only the builder sets it.
    pub unhealthy: bool,
}

/// The derived order, except that shared metadata maps are equal without
/// being walked: sorting and merging 10,000 endpoints compares many equal
/// ones, and walking their maps was most of an EDS update's time.
impl Ord for Endpoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.addr
            .cmp(&other.addr)
            .then_with(|| self.zone.cmp(&other.zone))
            .then_with(|| self.weight.cmp(&other.weight))
            .then_with(|| {
                if Arc::ptr_eq(&self.metadata, &other.metadata) {
                    std::cmp::Ordering::Equal
                } else {
                    self.metadata.cmp(&other.metadata)
                }
            })
            .then_with(|| self.unhealthy.cmp(&other.unhealthy))
    }
}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

impl LbPolicy {
    /// Whether the policy keys requests by a hash (and so takes `hash_policy`).
    pub fn hashes(self) -> bool {
        matches!(self, LbPolicy::RingHash | LbPolicy::Maglev)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// The path an HTTP check GETs; `None` checks by TCP connect.
    pub path: Option<String>,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CircuitBreakers {
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    pub sni: Option<String>,
    pub ca_file: Option<String>,
}

impl Profile {
    /// The clusters a proxy's routes and TCP services use, and the tracing
    /// collector's, each once, by name.
    pub fn clusters_of(&self, proxy: &Proxy) -> Vec<&Cluster> {
        let collector = self.tracing.as_ref().map(|t| t.zipkin.cluster.as_str());
        let mut names: Vec<&str> = proxy
            .domains
            .iter()
            .filter_map(|d| self.domains.get(d))
            .flat_map(|d| d.routes.iter())
            .filter_map(|r| match &r.action {
                RouteAction::Forward(f) => {
                    Some(f.target.clusters().into_iter().chain(f.mirror.as_ref().map(|m| m.cluster.as_str())))
                }
                _ => None,
            })
            .flatten()
            .chain(proxy.tcp.iter().map(|t| t.cluster.as_str()))
            .chain(collector)
            .collect();
        names.sort_unstable();
        names.dedup();
        names.iter().filter_map(|n| self.clusters.get(*n)).collect()
    }

    /// Every proxy an Envoy with this node identity could be. Validation
    /// rules out two for a node that states its zone; a node that states none
    /// can still match proxies of several zones, and then gets none of them.
    pub fn proxies_for_node(&self, cluster: &str, id: &str, zone: &str) -> Vec<&Proxy> {
        self.proxies.values().filter(|p| p.matches(cluster, id, zone)).collect()
    }

    /// The proxy an Envoy with this node identity is, when exactly one matches.
    pub fn proxy_for_node(&self, cluster: &str, id: &str, zone: &str) -> Option<&Proxy> {
        match self.proxies_for_node(cluster, id, zone).as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}
