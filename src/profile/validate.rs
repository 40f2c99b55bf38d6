//! Raw profile -> validated [`Profile`], collecting every problem at once.
//!
//! Each error names the file, the line and column of the offending value, the
//! key path (`domains[0].routes[2].cluster`), the bad value and what was
//! expected. Validation is pure: it never touches the file system or network.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use super::raw::*;
use super::*;

/// Envoy's admin default, used when a proxy names none.
pub const DEFAULT_ENVOY_ADMIN: &str = "127.0.0.1:9901";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_ON: &[&str] = &["5xx", "reset", "connect-failure"];

const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
const LB_POLICIES: &[&str] = &["round_robin", "least_request", "random", "ring_hash"];

/// One located problem in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Key path of the offending value, e.g. `domains[0].routes[2].cluster`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a profile, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses and validates profile text. `file` is used in messages only;
/// `default_name` is the profile name when the file gives none.
pub fn parse_profile(file: &str, default_name: &str, src: &str) -> Result<Profile, ProfileErrors> {
    let mut cx = Cx { file, src, errors: Vec::new() };
    let raw: RawProfile = match toml::from_str(src) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let key = src.get(span.clone()).filter(|k| !k.contains('\n') && k.len() < 80).unwrap_or("").to_string();
            let message = e.message().trim().to_string();
            cx.err(span, key, message);
            return Err(ProfileErrors(cx.errors));
        }
    };
    let profile = cx.profile(raw, default_name);
    if cx.errors.is_empty() {
        Ok(profile)
    } else {
        cx.errors.sort_by_key(|e| (e.line, e.column));
        Err(ProfileErrors(cx.errors))
    }
}

struct Cx<'a> {
    file: &'a str,
    src: &'a str,
    errors: Vec<ProfileError>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let before = &self.src[..span.start.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(ProfileError {
            file: self.file.to_string(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        });
    }

    fn profile(&mut self, raw: RawProfile, default_name: &str) -> Profile {
        let name = match raw.name {
            Some(n) => {
                self.check_name(&n, "name");
                n.into_inner()
            }
            None => default_name.to_string(),
        };
        let listen = raw.listen.map(|l| self.listen(l)).unwrap_or_default();

        let mut zones = BTreeMap::new();
        for (name, z) in raw.zones {
            self.check_name(&name, &format!("zones.{}", name.get_ref()));
            let name = name.into_inner();
            zones.insert(name.clone(), Zone { name, description: z.description });
        }

        let mut clusters = BTreeMap::new();
        for (name, c) in raw.clusters {
            let key = format!("clusters.{}", name.get_ref());
            self.check_name(&name, &key);
            if let Some(c) = self.cluster(&name, c, &key) {
                clusters.insert(c.name.clone(), c);
            }
        }

        let mut domains = BTreeMap::new();
        // (host, port) -> the domain that claims it, to catch duplicates.
        let mut hosts: BTreeMap<(String, u16), String> = BTreeMap::new();
        for (i, d) in raw.domains.into_iter().enumerate() {
            let key = format!("domains[{i}]");
            if let Some(d) = self.domain(d, &key, &clusters, &mut hosts) {
                if domains.contains_key(&d.name) {
                    continue; // reported by `domain` through `hosts`
                }
                domains.insert(d.name.clone(), d);
            }
        }

        let mut proxies = BTreeMap::new();
        let mut identities: BTreeMap<(String, Option<String>, String), String> = BTreeMap::new();
        for (name, p) in raw.proxies {
            let key = format!("proxies.{}", name.get_ref());
            self.check_name(&name, &key);
            let span = name.span();
            if let Some(p) = self.proxy(name.into_inner(), p, &key, &zones, &domains) {
                let id = (p.node_cluster.clone(), p.node_id.clone(), p.zone.clone());
                if let Some(other) = identities.get(&id) {
                    self.err(
                        span,
                        key,
                        format!(
                            "matches the same Envoy nodes as proxy {other:?} (node.cluster {:?}); \
                             give one of them a different node_cluster or node_id",
                            p.node_cluster
                        ),
                    );
                } else {
                    identities.insert(id, p.name.clone());
                }
                proxies.insert(p.name.clone(), p);
            }
        }

        Profile {
            name,
            file: self.file.to_string(),
            description: raw.description,
            listen,
            zones,
            proxies,
            domains,
            clusters,
        }
    }

    fn listen(&mut self, l: RawListen) -> ListenOverrides {
        ListenOverrides {
            xds: l.xds.and_then(|a| self.socket_addr(&a, "listen.xds")),
            admin: l.admin.and_then(|a| self.socket_addr(&a, "listen.admin")),
        }
    }

    fn check_name(&mut self, name: &S<String>, key: &str) {
        let ok = !name.get_ref().is_empty()
            && name.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                name.span(),
                key,
                format!("{:?} is not a valid name; expected letters, digits, '-', '_' or '.'", name.get_ref()),
            );
        }
    }

    fn socket_addr(&mut self, v: &S<String>, key: &str) -> Option<SocketAddr> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(v.span(), key, format!("{:?} is not an ip:port address, e.g. 127.0.0.1:9001", v.get_ref()));
                None
            }
        }
    }

    fn duration(&mut self, v: &S<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.err(v.span(), key, "a duration of zero is not allowed; expected e.g. \"250ms\"");
                None
            }
            Err(_) => {
                self.err(
                    v.span(),
                    key,
                    format!("{:?} is not a duration; expected e.g. \"250ms\", \"5s\", \"1m\"", v.get_ref()),
                );
                None
            }
        }
    }

    fn int(&mut self, v: &S<i64>, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<u32> {
        let n = *v.get_ref();
        if range.contains(&n) {
            u32::try_from(n).ok()
        } else {
            self.err(v.span(), key, format!("{n} is out of range; expected {} to {}", range.start(), range.end()));
            None
        }
    }

    fn regex(&mut self, v: &S<String>, key: &str) -> Option<String> {
        // The `regex` crate implements RE2's syntax (no backreferences, no
        // look-around), which is what Envoy's safe_regex uses.
        match regex::Regex::new(v.get_ref()) {
            Ok(_) => Some(v.get_ref().clone()),
            Err(e) => {
                let detail = e.to_string();
                let detail = detail.lines().last().unwrap_or("").trim().to_string();
                self.err(v.span(), key, format!("{:?} is not a valid RE2 regex: {detail}", v.get_ref()));
                None
            }
        }
    }

    fn one_of<'s>(&mut self, v: &'s S<String>, key: &str, allowed: &[&str]) -> Option<&'s str> {
        if allowed.contains(&v.get_ref().as_str()) {
            Some(v.get_ref())
        } else {
            self.err(
                v.span(),
                key,
                format!("{:?} is not allowed; expected one of: {}", v.get_ref(), allowed.join(", ")),
            );
            None
        }
    }

    fn cluster(&mut self, name: &S<String>, c: RawCluster, key: &str) -> Option<Cluster> {
        let sources = [c.static_.is_some(), c.dns.is_some(), c.kubernetes.is_some()];
        let source = match (c.static_, c.dns, c.kubernetes) {
            (Some(s), None, None) => self.static_source(s.into_inner(), &format!("{key}.static")),
            (None, Some(d), None) => self.dns_source(d, &format!("{key}.dns")),
            (None, None, Some(k)) => self.kube_source(k.into_inner(), &format!("{key}.kubernetes")),
            _ => {
                let n = sources.iter().filter(|s| **s).count();
                self.err(
                    name.span(),
                    key,
                    format!(
                        "has {n} sources; expected exactly one of [{key}.static], [{key}.dns] or [{key}.kubernetes]"
                    ),
                );
                None
            }
        };
        let lb = match &c.lb {
            None => Some(LbPolicy::RoundRobin),
            Some(v) => self.one_of(v, &format!("{key}.lb"), LB_POLICIES).map(|p| match p {
                "least_request" => LbPolicy::LeastRequest,
                "random" => LbPolicy::Random,
                "ring_hash" => LbPolicy::RingHash,
                _ => LbPolicy::RoundRobin,
            }),
        };
        let connect_timeout = match &c.connect_timeout {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some(v) => self.duration(v, &format!("{key}.connect_timeout")),
        };
        let health_check = c.health_check.map(|h| self.health_check(h, &format!("{key}.health_check")));
        let circuit_breakers = c.circuit_breakers.map(|cb| {
            let cb = cb.into_inner();
            let mut field = |v: &Option<S<i64>>, f: &str| {
                v.as_ref().and_then(|v| self.int(v, &format!("{key}.circuit_breakers.{f}"), 0..=u32::MAX as i64))
            };
            CircuitBreakers {
                max_connections: field(&cb.max_connections, "max_connections"),
                max_pending_requests: field(&cb.max_pending_requests, "max_pending_requests"),
                max_requests: field(&cb.max_requests, "max_requests"),
                max_retries: field(&cb.max_retries, "max_retries"),
            }
        });
        let tls = c.tls.map(|t| {
            let t = t.into_inner();
            UpstreamTls { sni: t.sni.map(S::into_inner), ca_file: t.ca_file.map(S::into_inner) }
        });
        Some(Cluster {
            name: name.get_ref().clone(),
            source: source?,
            lb: lb?,
            connect_timeout: connect_timeout?,
            http2: c.http2,
            health_check: health_check.flatten(),
            circuit_breakers,
            tls,
        })
    }

    fn static_source(&mut self, s: RawStatic, key: &str) -> Option<Source> {
        let mut endpoints = Vec::new();
        let mut seen = BTreeSet::new();
        let mut ok = true;
        for (i, e) in s.endpoints.into_iter().enumerate() {
            let key = format!("{key}.endpoints[{i}]");
            let e_span = e.span();
            let e = e.into_inner();
            let addr = self.socket_addr(&e.address, &format!("{key}.address"));
            let weight = e.weight.as_ref().and_then(|w| self.int(w, &format!("{key}.weight"), 1..=128));
            if e.weight.is_some() && weight.is_none() {
                ok = false;
            }
            let Some(addr) = addr else {
                ok = false;
                continue;
            };
            if !seen.insert(addr) {
                self.err(e_span, key, format!("endpoint {addr} is listed twice"));
                ok = false;
            }
            endpoints.push(Endpoint { addr, zone: e.zone.map(S::into_inner), weight, metadata: e.metadata });
        }
        ok.then_some(Source::Static(endpoints))
    }

    fn dns_source(&mut self, d: S<RawDns>, key: &str) -> Option<Source> {
        let span = d.span();
        let d = d.into_inner();
        let lookup = match &d.lookup {
            None => Some(DnsLookup::Strict),
            Some(v) => self
                .one_of(v, &format!("{key}.lookup"), &["strict", "logical"])
                .map(|l| if l == "logical" { DnsLookup::Logical } else { DnsLookup::Strict }),
        };
        let mut hosts = Vec::new();
        let mut ok = true;
        for (i, h) in d.hosts.iter().enumerate() {
            match split_host_port(h.get_ref()) {
                Some((host, port)) if valid_host(host) => hosts.push((host.to_string(), port)),
                _ => {
                    self.err(
                        h.span(),
                        format!("{key}.hosts[{i}]"),
                        format!("{:?} is not host:port, e.g. \"films.svc:8080\"", h.get_ref()),
                    );
                    ok = false;
                }
            }
        }
        if d.hosts.is_empty() {
            self.err(span.clone(), format!("{key}.hosts"), "is empty; expected at least one host:port");
            ok = false;
        }
        if lookup == Some(DnsLookup::Logical) && d.hosts.len() > 1 {
            self.err(
                span,
                format!("{key}.hosts"),
                format!(
                    "has {} hosts; lookup = \"logical\" takes exactly one (use \"strict\" for several)",
                    d.hosts.len()
                ),
            );
            ok = false;
        }
        ok.then_some(Source::Dns { hosts, lookup: lookup? })
    }

    fn kube_source(&mut self, k: RawKubernetes, key: &str) -> Option<Source> {
        let mut ok = true;
        let mut namespaces: Vec<String> = Vec::new();
        if let Some(ns) = &k.namespace {
            if !k.namespaces.is_empty() {
                self.err(ns.span(), format!("{key}.namespace"), "give either namespace or namespaces, not both");
                ok = false;
            }
            namespaces.push(ns.get_ref().clone());
        }
        namespaces.extend(k.namespaces.iter().map(|n| n.get_ref().clone()));
        for (i, ns) in k.namespace.iter().chain(k.namespaces.iter()).enumerate() {
            if !is_dns_label(ns.get_ref()) {
                let key =
                    if k.namespace.is_some() { format!("{key}.namespace") } else { format!("{key}.namespaces[{i}]") };
                self.err(ns.span(), key, format!("{:?} is not a valid namespace (a DNS label)", ns.get_ref()));
                ok = false;
            }
        }
        if namespaces.is_empty() {
            namespaces.push("default".to_string());
        }
        if let Err(why) = check_label_selector(k.selector.get_ref()) {
            self.err(
                k.selector.span(),
                format!("{key}.selector"),
                format!("{:?} is not a label selector: {why}", k.selector.get_ref()),
            );
            ok = false;
        }
        let port = match k.port.get_ref() {
            RawPort::Number(n) if (1..=65535).contains(n) => Some(PortRef::Number(*n as u16)),
            RawPort::Name(n) if is_port_name(n) => Some(PortRef::Name(n.clone())),
            other => {
                let shown = match other {
                    RawPort::Number(n) => n.to_string(),
                    RawPort::Name(n) => format!("{n:?}"),
                };
                self.err(
                    k.port.span(),
                    format!("{key}.port"),
                    format!("{shown} is not a container port; expected a number 1-65535 or a port name (up to 15 lowercase letters, digits, '-')"),
                );
                None
            }
        };
        let address = match &k.address {
            None => Some(AddressKind::Pod),
            Some(v) => {
                self.one_of(v, &format!("{key}.address"), &["pod", "node-internal", "node-external"]).map(|a| match a {
                    "node-internal" => AddressKind::NodeInternal,
                    "node-external" => AddressKind::NodeExternal,
                    _ => AddressKind::Pod,
                })
            }
        };
        let source = KubernetesSource {
            kubeconfig: k.kubeconfig.map(S::into_inner),
            context: k.context.map(S::into_inner),
            namespaces,
            selector: k.selector.into_inner(),
            field_selector: k.field_selector.map(S::into_inner),
            port: port?,
            address: address?,
            host_network: k.host_network.unwrap_or(true),
        };
        ok.then_some(Source::Kubernetes(source))
    }

    fn health_check(&mut self, h: S<RawHealthCheck>, key: &str) -> Option<HealthCheck> {
        let h = h.into_inner();
        let mut ok = true;
        if !h.path.get_ref().starts_with('/') {
            self.err(h.path.span(), format!("{key}.path"), format!("{:?} must start with '/'", h.path.get_ref()));
            ok = false;
        }
        let mut dur = |v: &Option<S<String>>, f: &str, d: Duration| match v {
            None => Some(d),
            Some(v) => self.duration(v, &format!("{key}.{f}")),
        };
        let interval = dur(&h.interval, "interval", Duration::from_secs(5));
        let timeout = dur(&h.timeout, "timeout", Duration::from_secs(1));
        let mut threshold = |v: &Option<S<i64>>, f: &str, d: u32| match v {
            None => Some(d),
            Some(v) => self.int(v, &format!("{key}.{f}"), 1..=1000),
        };
        let healthy_threshold = threshold(&h.healthy_threshold, "healthy_threshold", 1);
        let unhealthy_threshold = threshold(&h.unhealthy_threshold, "unhealthy_threshold", 2);
        if !ok {
            return None;
        }
        Some(HealthCheck {
            path: h.path.into_inner(),
            host: h.host,
            interval: interval?,
            timeout: timeout?,
            healthy_threshold: healthy_threshold?,
            unhealthy_threshold: unhealthy_threshold?,
        })
    }

    fn domain(
        &mut self,
        d: RawDomain,
        key: &str,
        clusters: &BTreeMap<String, Cluster>,
        hosts: &mut BTreeMap<(String, u16), String>,
    ) -> Option<Domain> {
        let Some((host, port)) = split_host_port(d.name.get_ref()).filter(|(h, _)| valid_host(h)) else {
            self.err(
                d.name.span(),
                format!("{key}.name"),
                format!("{:?} is not host:port, e.g. \"demo.example.com:8888\"", d.name.get_ref()),
            );
            return None;
        };
        let name = d.name.get_ref().clone();
        let mut claim = |cx: &mut Self, h: &S<String>, host: &str, k: String| {
            let host = host.to_ascii_lowercase();
            match hosts.get(&(host.clone(), port)) {
                Some(other) => cx.err(
                    h.span(),
                    k,
                    format!("{host}:{port} is already served by domain {other:?}; a host may appear once per port"),
                ),
                None => {
                    hosts.insert((host, port), name.clone());
                }
            }
        };
        claim(self, &d.name, host, format!("{key}.name"));
        let mut aliases = Vec::new();
        for (i, a) in d.aliases.iter().enumerate() {
            let k = format!("{key}.aliases[{i}]");
            if valid_host(a.get_ref().strip_prefix("*.").unwrap_or(a.get_ref())) {
                claim(self, a, a.get_ref(), k);
                aliases.push(a.get_ref().to_ascii_lowercase());
            } else {
                self.err(a.span(), k, format!("{:?} is not a host name", a.get_ref()));
            }
        }

        let mut routes: Vec<(Range<usize>, Route)> = Vec::new();
        for (i, r) in d.routes.into_iter().enumerate() {
            let k = format!("{key}.routes[{i}]");
            let span = r.span();
            if let Some(route) = self.route(r.into_inner(), span.clone(), &k, clusters) {
                if let Some(j) = routes.iter().position(|(_, earlier)| shadows(&earlier.matcher, &route.matcher)) {
                    self.err(
                        span.clone(),
                        k,
                        format!("is shadowed by {key}.routes[{j}], which matches every request this one does; put the more specific route first"),
                    );
                }
                routes.push((span, route));
            }
        }
        Some(Domain {
            name: name.clone(),
            host: host.to_ascii_lowercase(),
            port,
            aliases,
            routes: routes.into_iter().map(|(_, r)| r).collect(),
        })
    }

    fn route(
        &mut self,
        r: RawRoute,
        span: Range<usize>,
        key: &str,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Option<Route> {
        let mut ok = true;
        let path = match (&r.prefix, &r.path, &r.regex) {
            (None, None, None) => Some(PathMatch::Prefix("/".into())),
            (Some(p), None, None) => self.path(p, &format!("{key}.prefix")).map(PathMatch::Prefix),
            (None, Some(p), None) => self.path(p, &format!("{key}.path")).map(PathMatch::Exact),
            (None, None, Some(p)) => self.regex(p, &format!("{key}.regex")).map(PathMatch::Regex),
            _ => {
                let second = [&r.prefix, &r.path, &r.regex].into_iter().flatten().nth(1).map(|s| s.span());
                self.err(second.unwrap_or(span.clone()), key, "give only one of prefix, path or regex");
                None
            }
        };
        let headers = self.value_matches(&r.headers, &format!("{key}.headers"), true);
        let query = self.value_matches(&r.query, &format!("{key}.query"), false);
        let mut methods = Vec::new();
        for (i, m) in r.methods.iter().enumerate() {
            let upper = m.get_ref().to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                methods.push(upper);
            } else {
                self.err(
                    m.span(),
                    format!("{key}.methods[{i}]"),
                    format!("{:?} is not an HTTP method; expected one of: {}", m.get_ref(), METHODS.join(", ")),
                );
                ok = false;
            }
        }

        let actions =
            [r.cluster.is_some(), r.weighted_clusters.is_some(), r.redirect.is_some(), r.direct_response.is_some()];
        let action = match actions.iter().filter(|a| **a).count() {
            1 => {
                if r.redirect.is_some() || r.direct_response.is_some() {
                    self.only_forward(&r, key);
                }
                if let Some(redirect) = r.redirect {
                    self.redirect(redirect, &format!("{key}.redirect")).map(RouteAction::Redirect)
                } else if let Some(d) = r.direct_response {
                    let d = d.into_inner();
                    self.int(&d.status, &format!("{key}.direct_response.status"), 200..=599)
                        .map(|s| RouteAction::DirectResponse { status: s as u16, body: d.body })
                } else {
                    self.forward(r, key, clusters).map(RouteAction::Forward)
                }
            }
            n => {
                self.err(
                    span,
                    key,
                    format!("has {n} actions; expected exactly one of cluster, weighted_clusters, redirect or direct_response"),
                );
                None
            }
        };
        if !ok {
            return None;
        }
        Some(Route { matcher: RouteMatch { path: path?, headers: headers?, query: query?, methods }, action: action? })
    }

    fn only_forward(&mut self, r: &RawRoute, key: &str) {
        let forward_only: [(&str, Option<Range<usize>>); 5] = [
            ("timeout", r.timeout.as_ref().map(|v| v.span())),
            ("retries", r.retries.as_ref().map(|v| v.span())),
            ("prefix_rewrite", r.prefix_rewrite.as_ref().map(|v| v.span())),
            ("host_rewrite", r.host_rewrite.as_ref().map(|v| v.span())),
            ("request_headers_add", r.request_headers_add.keys().next().map(|k| k.span())),
        ];
        for (f, span) in forward_only {
            if let Some(span) = span {
                self.err(span, format!("{key}.{f}"), "applies only to routes that forward to a cluster");
            }
        }
    }

    fn path(&mut self, p: &S<String>, key: &str) -> Option<String> {
        if p.get_ref().starts_with('/') {
            Some(p.get_ref().clone())
        } else {
            self.err(p.span(), key, format!("{:?} must start with '/'", p.get_ref()));
            None
        }
    }

    fn value_matches(&mut self, ms: &[S<RawValueMatch>], key: &str, header: bool) -> Option<Vec<ValueMatch>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, m) in ms.iter().enumerate() {
            let key = format!("{key}[{i}]");
            let m = m.get_ref();
            let forbidden = if header { "()<>@,;\\\"/[]?={} " } else { "&=# " };
            let name_ok = !m.name.get_ref().is_empty()
                && m.name.get_ref().chars().all(|c| c.is_ascii_graphic() && !forbidden.contains(c));
            if !name_ok {
                self.err(m.name.span(), format!("{key}.name"), format!("{:?} is not a valid name", m.name.get_ref()));
                ok = false;
            }
            let kinds = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some(), m.present.is_some()];
            let kind = match (&m.exact, &m.prefix, &m.regex, &m.present) {
                (Some(v), None, None, None) => Some(ValueMatchKind::Exact(v.get_ref().clone())),
                (None, Some(v), None, None) => Some(ValueMatchKind::Prefix(v.get_ref().clone())),
                (None, None, Some(v), None) => self.regex(v, &format!("{key}.regex")).map(ValueMatchKind::Regex),
                (None, None, None, Some(v)) => Some(ValueMatchKind::Present(*v.get_ref())),
                _ => {
                    let n = kinds.iter().filter(|k| **k).count();
                    self.err(
                        m.name.span(),
                        key.clone(),
                        format!("has {n} conditions; expected exactly one of exact, prefix, regex or present"),
                    );
                    None
                }
            };
            let Some(kind) = kind else {
                ok = false;
                continue;
            };
            let name = if header { m.name.get_ref().to_ascii_lowercase() } else { m.name.get_ref().clone() };
            out.push(ValueMatch { name, kind, invert: m.invert });
        }
        ok.then_some(out)
    }

    fn cluster_ref(&mut self, c: &S<String>, key: &str, clusters: &BTreeMap<String, Cluster>) -> bool {
        if clusters.contains_key(c.get_ref()) {
            return true;
        }
        let known: Vec<&str> = clusters.keys().map(String::as_str).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        self.err(c.span(), key, format!("{:?} is not a cluster; known clusters: {known}", c.get_ref()));
        false
    }

    fn forward(&mut self, r: RawRoute, key: &str, clusters: &BTreeMap<String, Cluster>) -> Option<Forward> {
        let target = if let Some(c) = &r.cluster {
            self.cluster_ref(c, &format!("{key}.cluster"), clusters).then(|| Target::Cluster(c.get_ref().clone()))
        } else {
            let w = r.weighted_clusters.as_ref()?;
            let mut out = Vec::new();
            let mut ok = true;
            for (i, wc) in w.get_ref().iter().enumerate() {
                let k = format!("{key}.weighted_clusters[{i}]");
                ok &= self.cluster_ref(&wc.cluster, &format!("{k}.cluster"), clusters);
                match self.int(&wc.weight, &format!("{k}.weight"), 0..=1_000_000) {
                    Some(n) => out.push((wc.cluster.get_ref().clone(), n)),
                    None => ok = false,
                }
            }
            if out.is_empty() || out.iter().all(|(_, n)| *n == 0) {
                self.err(
                    w.span(),
                    format!("{key}.weighted_clusters"),
                    "needs at least one cluster with a weight above 0",
                );
                ok = false;
            }
            ok.then_some(Target::Weighted(out))
        };
        let timeout = match &r.timeout {
            Some(t) => Some(self.duration(t, &format!("{key}.timeout"))?),
            None => None,
        };
        let retries = match r.retries {
            None => None,
            Some(rt) => {
                let k = format!("{key}.retries");
                let rt = rt.into_inner();
                let count = match &rt.count {
                    None => Some(1),
                    Some(c) => self.int(c, &format!("{k}.count"), 0..=100),
                };
                let mut on = Vec::new();
                for (i, cond) in rt.on.iter().enumerate() {
                    on.push(self.one_of(cond, &format!("{k}.on[{i}]"), RETRY_CONDITIONS).map(str::to_string));
                }
                let on: Option<Vec<String>> = if rt.on.is_empty() {
                    Some(DEFAULT_RETRY_ON.iter().map(|s| s.to_string()).collect())
                } else {
                    on.into_iter().collect()
                };
                let per_try_timeout = match &rt.per_try_timeout {
                    Some(t) => Some(self.duration(t, &format!("{k}.per_try_timeout"))?),
                    None => None,
                };
                Some(Retries { count: count?, on: on?, per_try_timeout })
            }
        };
        let host_rewrite = match &r.host_rewrite {
            Some(h) if !valid_host(split_host_port(h.get_ref()).map_or(h.get_ref().as_str(), |(h, _)| h)) => {
                self.err(h.span(), format!("{key}.host_rewrite"), format!("{:?} is not a host name", h.get_ref()));
                return None;
            }
            other => other.as_ref().map(|h| h.get_ref().clone()),
        };
        let prefix_rewrite = r.prefix_rewrite.as_ref().map(|p| p.get_ref().clone());
        if let (Some(p), Some(_)) = (&r.prefix_rewrite, &r.regex) {
            // Envoy rejects prefix_rewrite on a safe_regex route at load time.
            self.err(p.span(), format!("{key}.prefix_rewrite"), "cannot be used with a regex match");
            return None;
        }
        let mut request_headers_add = Vec::new();
        for (name, value) in &r.request_headers_add {
            if name.get_ref().is_empty()
                || !name.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                self.err(
                    name.span(),
                    format!("{key}.request_headers_add"),
                    format!("{:?} is not a header name", name.get_ref()),
                );
                return None;
            }
            request_headers_add.push((name.get_ref().to_ascii_lowercase(), value.get_ref().clone()));
        }
        Some(Forward { target: target?, timeout, retries, prefix_rewrite, host_rewrite, request_headers_add })
    }

    fn redirect(&mut self, r: S<RawRedirect>, key: &str) -> Option<Redirect> {
        let span = r.span();
        let r = r.into_inner();
        let code = match &r.code {
            None => Some(301),
            Some(c) if [301, 302, 303, 307, 308].contains(c.get_ref()) => Some(*c.get_ref() as u16),
            Some(c) => {
                self.err(
                    c.span(),
                    format!("{key}.code"),
                    format!("{} is not a redirect code; expected 301, 302, 303, 307 or 308", c.get_ref()),
                );
                None
            }
        };
        if r.host.is_none() && r.path.is_none() && !r.https {
            self.err(span, key, "redirects nowhere; set host, path or https = true");
            return None;
        }
        let path = match &r.path {
            Some(p) => Some(self.path(p, &format!("{key}.path"))?),
            None => None,
        };
        Some(Redirect { host: r.host.map(S::into_inner), path, https: r.https, code: code? })
    }

    fn proxy(
        &mut self,
        name: String,
        p: RawProxy,
        key: &str,
        zones: &BTreeMap<String, Zone>,
        domains: &BTreeMap<String, Domain>,
    ) -> Option<Proxy> {
        let mut ok = true;
        if !zones.contains_key(p.zone.get_ref()) {
            let known: Vec<&str> = zones.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none (add a [zones.NAME] table)".to_string() } else { known.join(", ") };
            self.err(
                p.zone.span(),
                format!("{key}.zone"),
                format!("{:?} is not a zone; known zones: {known}", p.zone.get_ref()),
            );
            ok = false;
        }
        let mut seen = BTreeSet::new();
        for (i, d) in p.domains.iter().enumerate() {
            let k = format!("{key}.domains[{i}]");
            if !domains.contains_key(d.get_ref()) {
                let known: Vec<&str> = domains.keys().map(String::as_str).collect();
                self.err(
                    d.span(),
                    k,
                    format!(
                        "{:?} is not a domain; known domains: {}",
                        d.get_ref(),
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                );
                ok = false;
            } else if !seen.insert(d.get_ref().clone()) {
                self.err(d.span(), k, format!("{:?} is listed twice", d.get_ref()));
                ok = false;
            }
        }
        let listen_address = match &p.listen_address {
            None => Some(IpAddr::from([127, 0, 0, 1])),
            Some(a) => match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.err(
                        a.span(),
                        format!("{key}.listen_address"),
                        format!("{:?} is not an IP address, e.g. 127.0.0.1 or 0.0.0.0", a.get_ref()),
                    );
                    None
                }
            },
        };
        let admin = match &p.admin {
            None => DEFAULT_ENVOY_ADMIN.parse().ok(),
            Some(a) => self.socket_addr(a, &format!("{key}.admin")),
        };
        for (f, v) in [("node_cluster", &p.node_cluster), ("node_id", &p.node_id)] {
            if let Some(v) = v.as_ref().filter(|v| v.get_ref().is_empty()) {
                self.err(v.span(), format!("{key}.{f}"), "is empty");
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(Proxy {
            node_cluster: p.node_cluster.map_or_else(|| name.clone(), S::into_inner),
            node_id: p.node_id.map(S::into_inner),
            zone: p.zone.into_inner(),
            domains: p.domains.into_iter().map(S::into_inner).collect(),
            listen_address: listen_address?,
            admin: admin?,
            name,
        })
    }
}

/// Whether `earlier` matches every request `later` matches, so `later` can never win.
/// Conservative: only says yes when it can prove it.
fn shadows(earlier: &RouteMatch, later: &RouteMatch) -> bool {
    let path_covers = match (&earlier.path, &later.path) {
        (PathMatch::Prefix(p), PathMatch::Prefix(q)) => q.starts_with(p.as_str()),
        (PathMatch::Prefix(p), PathMatch::Exact(q)) => q.starts_with(p.as_str()),
        (PathMatch::Prefix(p), PathMatch::Regex(_)) => p == "/",
        (PathMatch::Exact(p), PathMatch::Exact(q)) => p == q,
        (PathMatch::Regex(p), PathMatch::Regex(q)) => p == q,
        _ => false,
    };
    let constraints_covered = earlier.headers.iter().all(|h| later.headers.contains(h))
        && earlier.query.iter().all(|q| later.query.contains(q))
        && (earlier.methods.is_empty()
            || (!later.methods.is_empty() && later.methods.iter().all(|m| earlier.methods.contains(m))));
    path_covers && constraints_covered
}

/// Splits `host:port`, accepting `[v6]:port`.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

fn valid_host(h: &str) -> bool {
    h.parse::<IpAddr>().is_ok()
        || (!h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
}

/// Checks Kubernetes label selector syntax: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// `k in (a,b)`, `k notin (a,b)`, joined by commas.
pub(crate) fn check_label_selector(sel: &str) -> Result<(), String> {
    let mut rest = sel.trim();
    if rest.is_empty() {
        return Err("it is empty; expected e.g. \"app=edge-envoy\"".into());
    }
    let key_ok = |k: &str| {
        let name = k.rsplit('/').next().unwrap_or(k);
        !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && k.matches('/').count() <= 1
    };
    let value_ok = |v: &str| v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    while !rest.is_empty() {
        // A term ends at the first comma outside parentheses.
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => return true,
                    _ => {}
                }
                false
            })
            .map_or(rest.len(), |(i, _)| i);
        let term = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("").trim();
        let words: Vec<&str> = term.split_whitespace().collect();
        let ok = if let Some((k, v)) =
            term.split_once("!=").or_else(|| term.split_once("==")).or_else(|| term.split_once('='))
        {
            key_ok(k.trim()) && value_ok(v.trim())
        } else if words.len() >= 3 && (words[1] == "in" || words[1] == "notin") {
            let set = words[2..].join("");
            key_ok(words[0])
                && set.starts_with('(')
                && set.ends_with(')')
                && set[1..set.len() - 1].split(',').all(|v| value_ok(v.trim()))
        } else if let Some(k) = term.strip_prefix('!') {
            key_ok(k.trim())
        } else {
            words.len() == 1 && key_ok(term)
        };
        if !ok {
            return Err(format!(
                "term {term:?} is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key"
            ));
        }
    }
    Ok(())
}
