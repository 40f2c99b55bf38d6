//! `devbridge explain`: where a request would go, and why. Pure.
//!
//! [`explain`] takes a profile, a request and what the daemon knows at run
//! time ([`Live`]; empty without a daemon) and returns an [`Explanation`]:
//! the proxy and listener, the virtual host and the name that matched, every
//! route of it in order with each condition and why it held or failed, the
//! action of the first route that matched (shares, rewrites, headers,
//! timeout, retries), each cluster it sends to with its endpoints and where
//! they come from, and whether the Envoys of that proxy acknowledged what
//! is explained. Matching follows Envoy as `xds::translate` configures it
//! ([`matching`]); `tests/explain_envoy.rs` checks it against a real Envoy.
//!
//! The [`Explanation`] is the body of the admin API's `POST /v1/explain`
//! and what `devbridge explain --json` prints; [`render`](mod@render) shows it to people.

pub mod cluster;
pub mod matching;
pub mod render;
pub mod request;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use cluster::{EnvoyStream, Live, SourceInfo, StreamType, TypeAck};
use matching::{Condition, Seen};
pub use request::{BadRequest, ExplainRequest, Request};

use crate::model::{Domain, Profile, Proxy, Redirect, RouteAction, Target, TcpService};

/// Envoy's route timeout when a route sets none.
pub const ENVOY_DEFAULT_TIMEOUT: &str = "15s";

/// How an explained request ends, and the exit code `devbridge explain` gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A route matched and, when it forwards, every cluster it sends to has endpoints (or they are unknown).
    Routed,
    /// No proxy listens on the port.
    NoListener,
    /// The listener has no virtual host for the `Host` header (Envoy: 404).
    NoVirtualHost,
    /// The virtual host has no route for the request (Envoy: 404).
    #[default]
    NoRoute,
    /// A route matched, but a cluster it sends to has no endpoints (Envoy: 503).
    NoEndpoints,
}

impl Outcome {
    /// 0 routed, 1 not (no route, no endpoints).
    pub fn exit_code(self) -> u8 {
        if self == Outcome::Routed { 0 } else { 1 }
    }
}

/// The answer: everything about one request's way through one proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Explanation {
    pub profile: String,
    pub request: Request,
    pub outcome: Outcome,
    /// The proxy explained, and the others that listen on the port (chosen with `--proxy`).
    pub proxy: Option<String>,
    /// E.g. `listener_8888 on 127.0.0.1:8888`.
    pub listener: Option<String>,
    pub virtual_host: Option<VirtualHostMatch>,
    /// Every route of the virtual host, in order.
    pub routes: Vec<RouteVerdict>,
    /// Index of the route that wins.
    pub chosen: Option<usize>,
    pub action: Option<Action>,
    /// The clusters the action sends to, in its order.
    pub clusters: Vec<cluster::ClusterReport>,
    /// What the proxy is served now and what its Envoys acknowledged; empty without a daemon.
    pub served: Option<cluster::Served>,
    /// When nothing matched: what is closest (hosts served, routes nearly matched).
    pub candidates: Vec<String>,
    /// Whether run-time state (endpoints, sources, Envoys) is included.
    pub live: bool,
    /// The TCP service listening on the port, when it is one: then there
    /// is no virtual host or route, every connection goes to its cluster.
    pub tcp: Option<TcpMatch>,
}

/// A TCP service a connection reaches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpMatch {
    pub service: String,
    pub cluster: String,
    /// The idle timeout, e.g. `30m`, or Envoy's default.
    pub idle_timeout: String,
    pub idle_timeout_is_default: bool,
}

/// A TCP service: where the sidecar listens and the cluster it forwards to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpServiceReport {
    pub name: String,
    /// `address:port` the sidecar listens on.
    pub listen: String,
    pub cluster: String,
}

impl TcpServiceReport {
    /// Every TCP service of a proxy, as `/status` and the status page show them.
    pub fn of(proxy: &crate::model::Proxy) -> Vec<Self> {
        proxy
            .tcp
            .iter()
            .map(|t| Self {
                name: t.name.clone(),
                listen: std::net::SocketAddr::new(proxy.listen_address, t.port).to_string(),
                cluster: t.cluster.clone(),
            })
            .collect()
    }
}

/// Envoy's TCP proxy idle timeout when a service sets none.
pub const ENVOY_DEFAULT_TCP_IDLE_TIMEOUT: &str = "1h";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualHostMatch {
    /// The domain (`host:port`) whose virtual host it is.
    pub domain: String,
    /// The name that matched the `Host` header.
    pub matched: String,
    pub wildcard: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteVerdict {
    /// Position in the domain's routes (`routes[N]` in the profile).
    pub index: usize,
    /// The match in a few words, e.g. `prefix /api, header x-dev = "me"`.
    pub matcher: String,
    /// What it does, e.g. `cluster edge`.
    pub action: String,
    pub matched: bool,
    /// False for the routes after the winner: Envoy never looks at them.
    pub reached: bool,
    /// The override this route stands for (`devbridge override`, `[[overrides]]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_id: Option<String>,
    pub conditions: Vec<ConditionReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConditionReport {
    pub kind: String,
    pub what: String,
    pub ok: bool,
    pub why: String,
}

impl From<Condition> for ConditionReport {
    fn from(c: Condition) -> Self {
        Self { kind: c.kind.to_string(), what: c.what, ok: c.ok, why: c.why }
    }
}

/// What the winning route does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Forward {
        /// Each cluster with its weight and share in percent (one cluster: 100).
        shares: Vec<Share>,
        /// The route's timeout, or Envoy's default.
        timeout: String,
        timeout_is_default: bool,
        /// E.g. `2 retries on connect-failure,5xx, 2s per try`; `None` for none.
        retries: Option<String>,
        /// The path and host the upstream sees, when rewritten.
        path_rewrite: Option<String>,
        host_rewrite: Option<String>,
        headers_added: Vec<(String, String)>,
    },
    Redirect {
        code: u16,
        location: String,
    },
    DirectResponse {
        status: u16,
        body: Option<String>,
    },
}

impl Default for Action {
    fn default() -> Self {
        Action::DirectResponse { status: 404, body: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Share {
    pub cluster: String,
    pub weight: u32,
    pub percent: f64,
}

/// Explains `req` through the profile's proxy `proxy` (or the one that
/// listens on the request's port). `Err` only for input that names nothing
/// (an unknown proxy, or several listening on the port).
pub fn explain(profile: &Profile, req: &Request, proxy: Option<&str>, live: &Live) -> Result<Explanation, BadRequest> {
    let mut out =
        Explanation { profile: profile.name.clone(), request: req.clone(), live: live.is_live(), ..Default::default() };
    if let Some((p, t)) = pick_tcp(profile, req.port, proxy)? {
        explain_tcp(&mut out, profile, p, t, live);
        return Ok(out);
    }
    let proxy = match pick_proxy(profile, req.port, proxy)? {
        Some(p) if !req.tcp => p,
        _ => {
            out.outcome = Outcome::NoListener;
            out.candidates = if req.tcp { tcp_services(profile) } else { served_hosts(profile, None) };
            return Ok(out);
        }
    };
    out.proxy = Some(proxy.name.clone());
    out.listener = Some(format!(
        "{} on {}",
        crate::xds::translate::listener_name(req.port),
        std::net::SocketAddr::new(proxy.listen_address, req.port)
    ));
    out.served = live.served(proxy);
    let domains: Vec<&Domain> =
        proxy.domains.iter().filter_map(|d| profile.domains.get(d)).filter(|d| d.port == req.port).collect();
    let seen = req.seen();
    let Some(host) = matching::find_virtual_host(&domains, seen.authority) else {
        out.outcome = Outcome::NoVirtualHost;
        out.candidates = served_hosts(profile, Some(proxy));
        return Ok(out);
    };
    let domain = domains[host.domain];
    out.virtual_host =
        Some(VirtualHostMatch { domain: domain.name.clone(), matched: host.entry, wildcard: host.wildcard });
    for (i, r) in domain.routes.iter().enumerate() {
        let conditions = matching::conditions(r, &seen);
        let matched = conditions.iter().all(|c| c.ok);
        if matched && out.chosen.is_none() {
            out.chosen = Some(i);
        }
        out.routes.push(RouteVerdict {
            index: i,
            matcher: describe_match(r),
            action: describe_action(&r.action),
            matched,
            reached: out.chosen.is_none_or(|c| c >= i),
            conditions: conditions.into_iter().map(Into::into).collect(),
            override_id: r.override_id.clone(),
        });
    }
    let Some(chosen) = out.chosen else {
        out.outcome = Outcome::NoRoute;
        out.candidates = nearest_routes(&out.routes);
        return Ok(out);
    };
    let route = &domain.routes[chosen];
    out.action = Some(action(route, req, &seen));
    out.outcome = Outcome::Routed;
    if let RouteAction::Forward(f) = &route.action {
        for name in f.target.clusters() {
            if let Some(c) = profile.clusters.get(name) {
                out.clusters.push(live.cluster_report(c));
            }
        }
        let receives = |c: &cluster::ClusterReport| match &f.target {
            Target::Cluster(_) => true,
            Target::Weighted(ws) => ws.iter().any(|s| s.cluster == c.name && s.weight > 0),
        };
        if out.clusters.iter().any(|c| receives(c) && c.endpoints.as_ref().is_some_and(Vec::is_empty)) {
            out.outcome = Outcome::NoEndpoints;
        }
    }
    Ok(out)
}

/// The TCP service on `port`, of the proxy named or of the one proxy that
/// has one there.
fn pick_tcp<'p>(
    profile: &'p Profile,
    port: u16,
    named: Option<&str>,
) -> Result<Option<(&'p Proxy, &'p TcpService)>, BadRequest> {
    let on_port: Vec<(&Proxy, &TcpService)> = profile
        .proxies
        .values()
        .filter(|p| named.is_none_or(|n| n == p.name))
        .filter_map(|p| p.tcp.iter().find(|t| t.port == port).map(|t| (p, t)))
        .collect();
    match on_port.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(BadRequest(format!(
            "proxies {} all have a TCP service on port {port}; choose one with --proxy",
            many.iter().map(|(p, _)| p.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A connection to a TCP service: it goes to the service's cluster.
fn explain_tcp(out: &mut Explanation, profile: &Profile, proxy: &Proxy, t: &TcpService, live: &Live) {
    out.proxy = Some(proxy.name.clone());
    out.listener = Some(format!(
        "{} on {}",
        crate::xds::translate::tcp_listener_name(&t.name),
        std::net::SocketAddr::new(proxy.listen_address, t.port)
    ));
    out.served = live.served(proxy);
    out.tcp = Some(TcpMatch {
        service: t.name.clone(),
        cluster: t.cluster.clone(),
        idle_timeout: t
            .idle_timeout
            .map_or_else(|| ENVOY_DEFAULT_TCP_IDLE_TIMEOUT.to_string(), |d| humantime::format_duration(d).to_string()),
        idle_timeout_is_default: t.idle_timeout.is_none(),
    });
    out.clusters = profile.clusters.get(&t.cluster).map(|c| live.cluster_report(c)).into_iter().collect();
    out.outcome = if out.clusters.iter().any(|c| c.endpoints.as_ref().is_some_and(Vec::is_empty)) {
        Outcome::NoEndpoints
    } else {
        Outcome::Routed
    };
}

/// Every TCP service, as `tcp://address:port (proxy P, service S)`.
fn tcp_services(profile: &Profile) -> Vec<String> {
    let mut out: Vec<String> = profile
        .proxies
        .values()
        .flat_map(|p| {
            p.tcp.iter().map(move |t| {
                format!(
                    "tcp://{} (proxy {}, service {})",
                    std::net::SocketAddr::new(p.listen_address, t.port),
                    p.name,
                    t.name
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// The proxy to explain: the one named, else the one listening on `port`.
fn pick_proxy<'p>(profile: &'p Profile, port: u16, named: Option<&str>) -> Result<Option<&'p Proxy>, BadRequest> {
    if let Some(name) = named {
        return match profile.proxies.get(name) {
            Some(p) if p.ports(profile).contains(&port) => Ok(Some(p)),
            Some(_) => Ok(None),
            None => Err(BadRequest(format!(
                "profile {} has no proxy {name:?}; its proxies: {}",
                profile.name,
                profile.proxies.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        };
    }
    let listening: Vec<&Proxy> = profile.proxies.values().filter(|p| p.ports(profile).contains(&port)).collect();
    match listening.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(BadRequest(format!(
            "proxies {} all listen on port {port}; choose one with --proxy",
            many.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Every `host:port` served (by one proxy, or by any), with aliases.
fn served_hosts(profile: &Profile, proxy: Option<&Proxy>) -> Vec<String> {
    let names: Vec<&String> = match proxy {
        Some(p) => p.domains.iter().collect(),
        None => profile.proxies.values().flat_map(|p| &p.domains).collect(),
    };
    let mut out: Vec<String> = names
        .into_iter()
        .filter_map(|n| profile.domains.get(n))
        .map(|d| {
            let aliases = d.aliases.iter().map(|a| format!("{a}:{}", d.port)).collect::<Vec<_>>();
            if aliases.is_empty() { d.name.clone() } else { format!("{} (also {})", d.name, aliases.join(", ")) }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The routes that failed fewest conditions, best first (at most three).
fn nearest_routes(routes: &[RouteVerdict]) -> Vec<String> {
    let mut by_failures: Vec<(usize, &RouteVerdict)> =
        routes.iter().map(|r| (r.conditions.iter().filter(|c| !c.ok).count(), r)).collect();
    by_failures.sort_by_key(|(n, r)| (*n, r.index));
    by_failures
        .into_iter()
        .take(3)
        .map(|(_, r)| {
            let failed: Vec<String> = r.conditions.iter().filter(|c| !c.ok).map(|c| c.why.clone()).collect();
            format!("routes[{}] {} -> {}: {}", r.index, r.matcher, r.action, failed.join("; "))
        })
        .collect()
}

/// A route's match in a few words.
pub fn describe_match(r: &crate::model::Route) -> String {
    let m = &r.matcher;
    let mut parts = vec![match &m.path {
        crate::model::PathMatch::Prefix(p) => format!("prefix {p}"),
        crate::model::PathMatch::Exact(p) => format!("path {p}"),
        crate::model::PathMatch::Regex(p) => format!("regex {p}"),
    }];
    parts.extend(m.headers.iter().map(|h| format!("header {}", matching::describe_value(h, " "))));
    parts.extend(m.query.iter().map(|q| format!("query {}", matching::describe_value(q, " "))));
    if !m.methods.is_empty() {
        parts.push(format!("method {}", m.methods.join("|")));
    }
    parts.join(", ")
}

/// Labels in a few words: `[canary=true]`, or nothing.
fn describe_labels(labels: &crate::model::Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{}]", l.join(","))
}

/// A hash policy in a few words: `header x-user`, `cookie sticky (set for 1h)`, `source ip`.
pub fn describe_hash(h: &crate::model::HashPolicy) -> String {
    match h {
        crate::model::HashPolicy::Header(n) => format!("header {n}"),
        crate::model::HashPolicy::Cookie { name, ttl: None } => format!("cookie {name}"),
        crate::model::HashPolicy::Cookie { name, ttl: Some(t) } => {
            format!("cookie {name} (set for {})", humantime::format_duration(*t))
        }
        crate::model::HashPolicy::SourceIp => "source ip".to_string(),
    }
}

/// A CORS policy in a few words: `origins http://localhost:3000; methods GET,POST`.
pub fn describe_cors(c: &crate::model::Cors) -> String {
    let mut parts = vec![format!("origins {}", c.allow_origins.join(" "))];
    if !c.allow_methods.is_empty() {
        parts.push(format!("methods {}", c.allow_methods.join(",")));
    }
    if !c.allow_headers.is_empty() {
        parts.push(format!("headers {}", c.allow_headers.join(",")));
    }
    if !c.expose_headers.is_empty() {
        parts.push(format!("exposes {}", c.expose_headers.join(",")));
    }
    if let Some(a) = c.max_age {
        parts.push(format!("max age {}", humantime::format_duration(a)));
    }
    if c.allow_credentials {
        parts.push("credentials".to_string());
    }
    parts.join("; ")
}

/// A route's action in a few words: `cluster edge`, `edge 90% / canary 10%`,
/// `cluster edge[canary=true]`, `redirect 301 to ...`.
pub fn describe_action(a: &RouteAction) -> String {
    match a {
        RouteAction::Forward(f) => {
            let route_labels = describe_labels(&f.subset);
            let mut hash = if f.hash_policy.is_empty() {
                String::new()
            } else {
                format!(" by hash of {}", f.hash_policy.iter().map(describe_hash).collect::<Vec<_>>().join(", "))
            };
            if let Some(m) = &f.mirror {
                hash.push_str(&format!(", mirrored to {} ({}%)", m.cluster, m.percent));
            }
            if let Some(fl) = &f.fault {
                hash.push_str(&format!(", faults: {}", fl.describe()));
            }
            match &f.target {
                Target::Cluster(c) => format!("cluster {c}{route_labels}{hash}"),
                Target::Weighted(ws) => {
                    let shares: Vec<String> = shares(ws)
                        .into_iter()
                        .zip(ws)
                        .map(|(s, w)| {
                            let mut labels = f.subset.clone();
                            labels.extend(w.subset.clone());
                            format!("{}{} {}%", s.cluster, describe_labels(&labels), s.percent)
                        })
                        .collect();
                    format!("clusters {}{hash}", shares.join(" / "))
                }
            }
        }
        RouteAction::Redirect(rd) => {
            let mut to = Vec::new();
            if rd.https {
                to.push("https".to_string());
            }
            if let Some(h) = &rd.host {
                to.push(format!("host {h}"));
            }
            if let Some(p) = &rd.path {
                to.push(format!("path {p}"));
            }
            format!("redirect {} to {}", rd.code, to.join(", "))
        }
        RouteAction::DirectResponse { status, .. } => format!("direct response {status}"),
    }
}

fn shares(ws: &[crate::model::Split]) -> Vec<Share> {
    let total: u64 = ws.iter().map(|s| u64::from(s.weight)).sum();
    ws.iter()
        .map(|s| {
            let percent = if total == 0 { 0.0 } else { (f64::from(s.weight) * 1000.0 / total as f64).round() / 10.0 };
            Share { cluster: s.cluster.clone(), weight: s.weight, percent }
        })
        .collect()
}

fn action(route: &crate::model::Route, req: &Request, seen: &Seen) -> Action {
    match &route.action {
        RouteAction::Forward(f) => {
            let shares = match &f.target {
                Target::Cluster(c) => vec![Share { cluster: c.clone(), weight: 1, percent: 100.0 }],
                Target::Weighted(ws) => shares(ws),
            };
            let retries = f.retries.as_ref().map(|r| {
                let per_try = r.per_try_timeout.map(|d| format!(", {} per try", humantime::format_duration(d)));
                let s = if r.count == 1 { "" } else { "s" };
                format!(
                    "{} retr{} on {}{}",
                    r.count,
                    if s.is_empty() { "y" } else { "ies" },
                    r.on.join(","),
                    per_try.unwrap_or_default()
                )
            });
            // Envoy swaps the part of the path the route matched (its prefix,
            // or the whole exact path) for the rewrite; the query stays.
            let path_rewrite = f.prefix_rewrite.as_ref().map(|to| {
                let matched = match &route.matcher.path {
                    crate::model::PathMatch::Prefix(p) | crate::model::PathMatch::Exact(p) => p.len(),
                    crate::model::PathMatch::Regex(_) => 0,
                };
                format!("{to}{}", &req.path[matched.min(req.path.len())..])
            });
            Action::Forward {
                shares,
                timeout: f
                    .timeout
                    .map_or(ENVOY_DEFAULT_TIMEOUT.to_string(), |d| humantime::format_duration(d).to_string()),
                timeout_is_default: f.timeout.is_none(),
                retries,
                path_rewrite,
                host_rewrite: f.host_rewrite.clone(),
                headers_added: f.request_headers_add.clone(),
            }
        }
        RouteAction::Redirect(rd) => Action::Redirect { code: rd.code, location: location(rd, seen) },
        RouteAction::DirectResponse { status, body } => Action::DirectResponse { status: *status, body: body.clone() },
    }
}

/// Where Envoy's redirect sends the client: the scheme, host and path it
/// replaces, the rest of the request's (the query is kept).
fn location(rd: &Redirect, seen: &Seen) -> String {
    let scheme = if rd.https { "https" } else { "http" };
    let host = match &rd.host {
        Some(h) => h.clone(),
        // Envoy drops the request's port when switching to https.
        None if rd.https => seen.authority.rsplit_once(':').map_or(seen.authority, |(h, _)| h).to_string(),
        None => seen.authority.to_string(),
    };
    let path = match &rd.path {
        Some(p) => match seen.path.split_once('?') {
            Some((_, q)) if !p.contains('?') => format!("{p}?{q}"),
            _ => p.clone(),
        },
        None => seen.path.to_string(),
    };
    format!("{scheme}://{host}{path}")
}

/// The headers of a request by lower-case name, values in order.
pub fn header_map(headers: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        out.entry(k.to_ascii_lowercase()).or_default().push(v.clone());
    }
    out
}

#[cfg(test)]
mod tests;
