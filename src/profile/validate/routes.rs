//! Domains and their routes: host:port names and aliases, path/header/query
//! matches, the one action per route (forward, redirect or direct response),
//! and routes that can never match because an earlier one takes their requests.

use std::collections::HashMap;

use super::*;

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
    // gRPC status names: for gRPC upstreams, and proxyless gRPC clients.
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];
/// Envoy's default `max_direct_response_body_size_bytes`.
pub const MAX_DIRECT_RESPONSE_BODY: usize = 4096;
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

impl Cx<'_> {
    /// `clusters` holds every cluster name the profile declares; `hosts` maps
    /// each (host, port) claimed so far to its domain, to catch duplicates.
    /// `valid` holds the clusters that passed, for what routes ask of them.
    pub(super) fn domain(
        &mut self,
        d: RawDomain,
        key: &str,
        clusters: &BTreeSet<String>,
        valid: &BTreeMap<String, Cluster>,
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

        let mut routes: Vec<Route> = Vec::new();
        let mut earlier = ShadowIndex::default();
        for (i, r) in d.routes.into_iter().enumerate() {
            let k = format!("{key}.routes[{i}]");
            let span = r.span();
            if let Some(route) = self.route(r.into_inner(), span.clone(), &k, clusters, valid) {
                // A route with an unknown key (say `prefx`) neither shadows
                // nor is shadowed: what it was meant to match is unknown.
                let known = !self.tainted.contains(&k);
                let shadowed_by = known.then(|| earlier.first_shadowing(&route.matcher)).flatten();
                if known {
                    earlier.add(&route.matcher, i);
                }
                if let Some(j) = shadowed_by {
                    self.err(
                        span,
                        k,
                        format!(
                            "is shadowed by {key}.routes[{j}], which matches every request this one does; \
                             put the more specific route first"
                        ),
                    );
                }
                routes.push(route);
            }
        }
        let cors = match d.cors {
            None => Some(None),
            Some(c) => self.cors(&c, &format!("{key}.cors")).map(Some),
        };
        Some(Domain {
            name,
            host: host.to_ascii_lowercase(),
            port,
            aliases,
            routes,
            cors: cors?,
            headers_if_absent: Vec::new(),
        })
    }

    fn route(
        &mut self,
        r: RawRoute,
        span: Range<usize>,
        key: &str,
        clusters: &BTreeSet<String>,
        valid: &BTreeMap<String, Cluster>,
    ) -> Option<Route> {
        let mut ok = true;
        let mut response_headers_add = Vec::new();
        for (name, value) in &r.response_headers_add {
            let k = format!("{key}.response_headers_add");
            match self.header_name(name, &k) {
                Some(n) => response_headers_add.push((n, value.get_ref().clone())),
                None => ok = false,
            }
            ok &= self.header_value(value, &format!("{k}.{}", name.get_ref()));
        }
        let mut response_headers_remove = Vec::new();
        for (i, name) in r.response_headers_remove.iter().enumerate() {
            match self.header_name(name, &format!("{key}.response_headers_remove[{i}]")) {
                Some(n) => response_headers_remove.push(n),
                None => ok = false,
            }
        }
        let cors = match &r.cors {
            None => Some(None),
            Some(c) => self.cors(c, &format!("{key}.cors")).map(Some),
        };
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

        let actions: Vec<Range<usize>> = [
            r.cluster.as_ref().map(|v| v.span()),
            r.weighted_clusters.as_ref().map(|v| v.span()),
            r.redirect.as_ref().map(|v| v.span()),
            r.direct_response.as_ref().map(|v| v.span()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let action = match actions.len() {
            1 => {
                if (r.redirect.is_some() || r.direct_response.is_some()) && !self.only_forward(&r, key) {
                    ok = false;
                }
                if let Some(redirect) = r.redirect {
                    self.redirect(redirect, &format!("{key}.redirect")).map(RouteAction::Redirect)
                } else if let Some(d) = r.direct_response {
                    let d = d.into_inner();
                    let status = self.int(&d.status, &format!("{key}.direct_response.status"), 200..=599);
                    let body = match d.body {
                        Some(b) if b.get_ref().len() > MAX_DIRECT_RESPONSE_BODY => {
                            self.err(
                                b.span(),
                                format!("{key}.direct_response.body"),
                                format!(
                                    "is {} bytes; Envoy refuses direct response bodies over {MAX_DIRECT_RESPONSE_BODY} bytes",
                                    b.get_ref().len()
                                ),
                            );
                            None
                        }
                        b => Some(b.map(S::into_inner)),
                    };
                    status.zip(body).map(|(s, body)| RouteAction::DirectResponse { status: s as u16, body })
                } else {
                    self.forward(r, key, clusters, valid).map(RouteAction::Forward)
                }
            }
            n => {
                // Point at the second action when there is one: the first is
                // usually what was meant.
                self.err(
                    actions.get(1).cloned().unwrap_or(span),
                    key,
                    format!(
                        "has {n} actions; expected exactly one of cluster, weighted_clusters, redirect or direct_response"
                    ),
                );
                None
            }
        };
        if !ok {
            return None;
        }
        Some(Route {
            matcher: RouteMatch { path: path?, headers: headers?, query: query?, methods },
            action: action?,
            response_headers_add,
            response_headers_remove,
            cors: cors?,
            override_id: None,
        })
    }

    /// A header name as Envoy takes it for adding or removing, lower-cased:
    /// letters, digits, `-` and `_`, not `host` nor a pseudo-header.
    fn header_name(&mut self, name: &S<String>, key: &str) -> Option<String> {
        let lower = name.get_ref().to_ascii_lowercase();
        if !is_header_name(&lower) {
            self.err(name.span(), key, format!("{:?} is not a header name", name.get_ref()));
            return None;
        }
        if lower == "host" {
            self.err(name.span(), key, format!("{:?} cannot be changed here", name.get_ref()));
            return None;
        }
        Some(lower)
    }

    /// CORS: at least one origin, each `*` or `scheme://host[:port]`.
    fn cors(&mut self, c: &S<RawCors>, key: &str) -> Option<Cors> {
        let span = c.span();
        let c = c.get_ref();
        let mut ok = true;
        if c.allow_origins.is_empty() {
            self.err(span, key, "needs allow_origins, e.g. [\"http://localhost:3000\"] or [\"*\"]");
            ok = false;
        }
        for (i, o) in c.allow_origins.iter().enumerate() {
            let v = o.get_ref();
            let origin_ok = v == "*"
                || v.split_once("://").is_some_and(|(scheme, rest)| {
                    !scheme.is_empty()
                        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                        && !rest.is_empty()
                        && !rest.contains('/')
                });
            if !origin_ok {
                self.err(
                    o.span(),
                    format!("{key}.allow_origins[{i}]"),
                    format!(
                        "{v:?} is not an origin; expected \"*\" or scheme://host[:port], e.g. \"http://localhost:3000\""
                    ),
                );
                ok = false;
            }
        }
        let mut allow_methods = Vec::new();
        for (i, m) in c.allow_methods.iter().enumerate() {
            let upper = m.get_ref().to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                allow_methods.push(upper);
            } else {
                self.err(
                    m.span(),
                    format!("{key}.allow_methods[{i}]"),
                    format!("{:?} is not an HTTP method; expected one of: {}", m.get_ref(), METHODS.join(", ")),
                );
                ok = false;
            }
        }
        let mut names = |list: &[S<String>], f: &str| -> Option<Vec<String>> {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, h) in list.iter().enumerate() {
                let k = format!("{key}.{f}[{i}]");
                let lower = h.get_ref().to_ascii_lowercase();
                if !is_header_name(&lower) {
                    self.err(h.span(), k, format!("{:?} is not a header name", h.get_ref()));
                    ok = false;
                } else {
                    out.push(lower);
                }
            }
            ok.then_some(out)
        };
        let allow_headers = names(&c.allow_headers, "allow_headers");
        let expose_headers = names(&c.expose_headers, "expose_headers");
        let max_age = self.opt_duration(&c.max_age, &format!("{key}.max_age"));
        if !ok {
            return None;
        }
        Some(Cors {
            allow_origins: c.allow_origins.iter().map(|o| o.get_ref().clone()).collect(),
            allow_methods,
            allow_headers: allow_headers?,
            expose_headers: expose_headers?,
            max_age: max_age?,
            allow_credentials: c.allow_credentials,
        })
    }

    /// Endpoint labels to pick by: non-empty names and values.
    fn labels(&mut self, raw: &BTreeMap<S<String>, S<String>>, key: &str) -> Option<Labels> {
        let mut out = Labels::new();
        let mut ok = true;
        for (k, v) in raw {
            if k.get_ref().is_empty() {
                self.err(k.span(), key, "a label name is empty");
                ok = false;
            } else if v.get_ref().is_empty() {
                self.err(v.span(), format!("{key}.{}", k.get_ref()), "is empty; expected the label's value");
                ok = false;
            } else {
                out.insert(k.get_ref().clone(), v.get_ref().clone());
            }
        }
        ok.then_some(out)
    }

    fn hash_policy(&mut self, raw: &[S<RawHashPolicy>], key: &str) -> Option<Vec<HashPolicy>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, h) in raw.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let h_span = h.span();
            let h = h.get_ref();
            let policy = match (&h.header, &h.cookie, &h.source_ip) {
                (Some(name), None, None) => {
                    if h.ttl.is_some() {
                        self.err(h_span.clone(), format!("{k}.ttl"), "applies only to a cookie");
                        None
                    } else {
                        self.header_name(name, &format!("{k}.header")).map(HashPolicy::Header)
                    }
                }
                (None, Some(name), None) => {
                    let name_ok = !name.get_ref().is_empty()
                        && name.get_ref().chars().all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c));
                    if !name_ok {
                        self.err(
                            name.span(),
                            format!("{k}.cookie"),
                            format!("{:?} is not a cookie name", name.get_ref()),
                        );
                    }
                    let ttl = self.opt_duration(&h.ttl, &format!("{k}.ttl"));
                    name_ok.then_some(()).and(ttl).map(|ttl| HashPolicy::Cookie { name: name.get_ref().clone(), ttl })
                }
                (None, None, Some(on)) if *on.get_ref() => {
                    if h.ttl.is_some() {
                        self.err(h_span.clone(), format!("{k}.ttl"), "applies only to a cookie");
                        None
                    } else {
                        Some(HashPolicy::SourceIp)
                    }
                }
                (None, None, Some(on)) => {
                    self.err(on.span(), format!("{k}.source_ip"), "source_ip = false hashes nothing; remove the entry");
                    None
                }
                _ => {
                    self.err(
                        h_span,
                        k,
                        "expected exactly one of header = \"NAME\", cookie = \"NAME\" or source_ip = true",
                    );
                    None
                }
            };
            match policy {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reports forward-only keys on a route that does not forward; true when there are none.
    fn only_forward(&mut self, r: &RawRoute, key: &str) -> bool {
        let forward_only: [(&str, Option<Range<usize>>); 9] = [
            ("mirror", r.mirror.as_ref().map(|v| v.span())),
            ("fault", r.fault.as_ref().map(|v| v.span())),
            ("subset", r.subset.keys().next().map(|k| k.span())),
            ("hash_policy", r.hash_policy.first().map(|v| v.span())),
            ("timeout", r.timeout.as_ref().map(|v| v.span())),
            ("retries", r.retries.as_ref().map(|v| v.span())),
            ("prefix_rewrite", r.prefix_rewrite.as_ref().map(|v| v.span())),
            ("host_rewrite", r.host_rewrite.as_ref().map(|v| v.span())),
            ("request_headers_add", r.request_headers_add.keys().next().map(|k| k.span())),
        ];
        let mut ok = true;
        for (f, span) in forward_only {
            if let Some(span) = span {
                self.err(span, format!("{key}.{f}"), "applies only to routes that forward to a cluster");
                ok = false;
            }
        }
        ok
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
            // Envoy's StringMatcher and RegexMatcher refuse an empty prefix or regex.
            for (what, v) in [("prefix", &m.prefix), ("regex", &m.regex)] {
                if let Some(v) = v.as_ref().filter(|v| v.get_ref().is_empty()) {
                    self.err(
                        v.span(),
                        format!("{key}.{what}"),
                        format!(
                            "an empty {what} is refused by Envoy; expected at least one character, \
                             or present = true to match any value"
                        ),
                    );
                    ok = false;
                }
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
            // Envoy's QueryParameterMatcher has neither invert_match nor a
            // way to match an absent parameter; headers have both.
            let invert = m.invert.as_ref().is_some_and(|i| *i.get_ref());
            if let Some(at) = m.invert.as_ref().filter(|i| !header && *i.get_ref()).map(|i| i.span()) {
                self.err(
                    at,
                    format!("{key}.invert"),
                    "true is not supported: Envoy cannot invert a query parameter match; \
                     expected false (only header matches can be inverted)",
                );
                ok = false;
            }
            if let (false, Some(p)) = (header, m.present.as_ref().filter(|p| !*p.get_ref())) {
                self.err(
                    p.span(),
                    format!("{key}.present"),
                    "false is not supported: Envoy cannot match an absent query parameter; \
                     expected true (only header matches can use present = false)",
                );
                ok = false;
            }
            let Some(kind) = kind else {
                ok = false;
                continue;
            };
            let name = if header { m.name.get_ref().to_ascii_lowercase() } else { m.name.get_ref().clone() };
            out.push(ValueMatch { name, kind, invert });
        }
        ok.then_some(out)
    }

    pub(super) fn cluster_ref(&mut self, c: &S<String>, key: &str, clusters: &BTreeSet<String>) -> bool {
        if clusters.contains(c.get_ref()) {
            return true;
        }
        let known = known_list(clusters, "none");
        self.err(c.span(), key, format!("{:?} is not a cluster; known clusters: {known}", c.get_ref()));
        false
    }

    fn forward(
        &mut self,
        r: RawRoute,
        key: &str,
        clusters: &BTreeSet<String>,
        valid: &BTreeMap<String, Cluster>,
    ) -> Option<Forward> {
        let target = if let Some(c) = &r.cluster {
            self.cluster_ref(c, &format!("{key}.cluster"), clusters).then(|| Target::Cluster(c.get_ref().clone()))
        } else {
            let w = r.weighted_clusters.as_ref()?;
            let mut out = Vec::new();
            let mut ok = true;
            for (i, wc) in w.get_ref().iter().enumerate() {
                let k = format!("{key}.weighted_clusters[{i}]");
                ok &= self.cluster_ref(&wc.cluster, &format!("{k}.cluster"), clusters);
                let subset = self.labels(&wc.subset, &format!("{k}.subset"));
                match (self.int(&wc.weight, &format!("{k}.weight"), 0..=1_000_000), subset) {
                    (Some(n), Some(subset)) => {
                        out.push(Split { cluster: wc.cluster.get_ref().clone(), weight: n, subset })
                    }
                    _ => ok = false,
                }
            }
            // Only when every weight was read: a bad weight is its own error.
            if out.len() == w.get_ref().len() && out.iter().all(|s| s.weight == 0) {
                self.err(
                    w.span(),
                    format!("{key}.weighted_clusters"),
                    "needs at least one cluster with a weight above 0",
                );
                ok = false;
            }
            ok.then_some(Target::Weighted(out))
        };
        let timeout = self.opt_duration(&r.timeout, &format!("{key}.timeout"));
        let retries = match &r.retries {
            None => Some(None),
            Some(rt) => self.retries(rt.get_ref(), &format!("{key}.retries")).map(Some),
        };
        let host_rewrite = match &r.host_rewrite {
            None => Some(None),
            Some(h) => self.host(h, &format!("{key}.host_rewrite")).map(Some),
        };
        let prefix_rewrite = match (&r.prefix_rewrite, &r.regex) {
            (Some(p), Some(_)) => {
                // Envoy rejects prefix_rewrite on a safe_regex route at load time.
                self.err(p.span(), format!("{key}.prefix_rewrite"), "cannot be used with a regex match");
                None
            }
            (p, _) => Some(p.as_ref().map(|p| p.get_ref().clone())),
        };
        let mut request_headers_add = Vec::new();
        let mut headers_ok = true;
        for (name, value) in &r.request_headers_add {
            let k = format!("{key}.request_headers_add");
            let value_key = format!("{k}.{}", name.get_ref());
            let lower = name.get_ref().to_ascii_lowercase();
            if !is_header_name(&lower) {
                self.err(name.span(), k, format!("{:?} is not a header name", name.get_ref()));
                headers_ok = false;
            } else if lower == "host" {
                // Envoy refuses to add `host` (or `:`-prefixed) headers.
                self.err(name.span(), k, format!("{:?} cannot be added; expected host_rewrite", name.get_ref()));
                headers_ok = false;
            }
            headers_ok &= self.header_value(value, &value_key);
            request_headers_add.push((lower, value.get_ref().clone()));
        }
        let subset = self.labels(&r.subset, &format!("{key}.subset"));
        let hash_policy = self.hash_policy(&r.hash_policy, &format!("{key}.hash_policy"));
        // What the route asks of its clusters: labels to pick endpoints by
        // (a DNS cluster's have none), a hashing balancer for a hash policy.
        let mut asks_ok = true;
        if let Some(t) = &target {
            let labelled =
                !r.subset.is_empty() || matches!(t, Target::Weighted(ws) if ws.iter().any(|s| !s.subset.is_empty()));
            for c in t.clusters().into_iter().filter_map(|c| valid.get(c)) {
                if labelled && matches!(c.source, Source::Dns { .. }) {
                    let span = r
                        .subset
                        .keys()
                        .next()
                        .map(|k| k.span())
                        .unwrap_or_else(|| r.weighted_clusters.as_ref().map(|w| w.span()).unwrap_or(0..0));
                    self.err(
                        span,
                        format!("{key}.subset"),
                        format!("cluster {:?} is a dns cluster: its endpoints have no labels to pick by", c.name),
                    );
                    asks_ok = false;
                }
                if let Some(h) = r.hash_policy.first().filter(|_| !c.lb.hashes()) {
                    self.err(
                        h.span(),
                        format!("{key}.hash_policy"),
                        format!(
                            "cluster {:?} does not balance by hash; set lb = \"ring_hash\" or \"maglev\" on it",
                            c.name
                        ),
                    );
                    asks_ok = false;
                }
            }
        }
        let mirror = match &r.mirror {
            None => Some(None),
            Some(m) => {
                let k = format!("{key}.mirror");
                let m = m.get_ref();
                let cluster_ok = self.cluster_ref(&m.cluster, &format!("{k}.cluster"), clusters);
                let percent = match &m.percent {
                    None => Some(100),
                    Some(p) => self.int(p, &format!("{k}.percent"), 0..=100),
                };
                percent
                    .filter(|_| cluster_ok)
                    .map(|percent| Some(Mirror { cluster: m.cluster.get_ref().clone(), percent }))
            }
        };
        let fault = match &r.fault {
            None => Some(None),
            Some(f) => self.fault(f, &format!("{key}.fault")).map(Some),
        };
        if !asks_ok {
            return None;
        }
        Some(Forward {
            mirror: mirror?,
            fault: fault?,
            subset: subset?,
            hash_policy: hash_policy?,
            target: target?,
            timeout: timeout?,
            retries: retries?,
            prefix_rewrite: prefix_rewrite?,
            host_rewrite: host_rewrite?,
            request_headers_add: headers_ok.then_some(request_headers_add)?,
        })
    }

    fn fault(&mut self, f: &S<RawFault>, key: &str) -> Option<Fault> {
        let span = f.span();
        let f = f.get_ref();
        let mut percent = |v: &Option<S<i64>>, k: &str| match v {
            None => Some(100),
            Some(p) => self.int(p, &format!("{key}.{k}"), 0..=100),
        };
        let delay_percent = percent(&f.delay_percent, "delay_percent");
        let abort_percent = percent(&f.abort_percent, "abort_percent");
        let delay = self.opt_duration(&f.delay, &format!("{key}.delay"));
        let abort = match &f.abort {
            None => Some(None),
            Some(s) => self.int(s, &format!("{key}.abort"), 200..=599).map(|s| Some(s as u16)),
        };
        let mut ok = true;
        for (what, given, needs) in [
            ("delay_percent", f.delay_percent.as_ref(), f.delay.is_some()),
            ("abort_percent", f.abort_percent.as_ref(), f.abort.is_some()),
        ] {
            if let (Some(p), false) = (given, needs) {
                let needed = what.trim_end_matches("_percent");
                self.err(p.span(), format!("{key}.{what}"), format!("needs {needed} to be set"));
                ok = false;
            }
        }
        if f.delay.is_none() && f.abort.is_none() {
            self.err(span, key, "injects nothing; set delay = \"2s\" and/or abort = 503");
            ok = false;
        }
        let (delay, abort) = (delay?, abort?);
        let (delay_percent, abort_percent) = (delay_percent?, abort_percent?);
        ok.then(|| Fault { delay: delay.map(|d| (d, delay_percent)), abort: abort.map(|a| (a, abort_percent)) })
    }

    fn retries(&mut self, rt: &RawRetries, key: &str) -> Option<Retries> {
        let count = match &rt.count {
            None => Some(1),
            Some(c) => self.int(c, &format!("{key}.count"), 0..=100),
        };
        let on: Option<Vec<String>> = if rt.on.is_empty() {
            Some(DEFAULT_RETRY_ON.iter().map(|s| s.to_string()).collect())
        } else {
            let on: Vec<Option<String>> = (rt.on.iter().enumerate())
                .map(|(i, cond)| self.one_of(cond, &format!("{key}.on[{i}]"), RETRY_CONDITIONS).map(str::to_string))
                .collect();
            on.into_iter().collect()
        };
        let per_try_timeout = self.opt_duration(&rt.per_try_timeout, &format!("{key}.per_try_timeout"));
        let mut status_codes = Vec::new();
        let mut codes_ok = true;
        for (i, c) in rt.status_codes.iter().enumerate() {
            match self.int(c, &format!("{key}.status_codes[{i}]"), 100..=599) {
                Some(n) if !status_codes.contains(&(n as u16)) => status_codes.push(n as u16),
                Some(_) => {}
                None => codes_ok = false,
            }
        }
        // Status codes are retried under `retriable-status-codes`: listing
        // codes asks for it.
        let on = on.map(|mut on| {
            if !status_codes.is_empty() && !on.iter().any(|c| c == "retriable-status-codes") {
                on.push("retriable-status-codes".to_string());
            }
            on
        });
        Some(Retries {
            count: count?,
            on: on?,
            status_codes: codes_ok.then_some(status_codes)?,
            per_try_timeout: per_try_timeout?,
        })
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
        let host = match &r.host {
            None => Some(None),
            Some(h) => self.host(h, &format!("{key}.host")).map(Some),
        };
        let path = match &r.path {
            None => Some(None),
            Some(p) => self.path(p, &format!("{key}.path")).map(Some),
        };
        Some(Redirect { host: host?, path: path?, https: r.https, code: code? })
    }
}

/// Whether `earlier` matches every request `later` matches, so `later` can never win.
/// Conservative: only says yes when it can prove it. [`ShadowIndex`] finds
/// the first such earlier route without comparing against each one.
#[cfg(test)]
pub(super) fn shadows(earlier: &RouteMatch, later: &RouteMatch) -> bool {
    let path_covers = match (&earlier.path, &later.path) {
        (PathMatch::Prefix(p), PathMatch::Prefix(q)) => q.starts_with(p.as_str()),
        (PathMatch::Prefix(p), PathMatch::Exact(q)) => q.starts_with(p.as_str()),
        (PathMatch::Prefix(p), PathMatch::Regex(_)) => p == "/",
        (PathMatch::Exact(p), PathMatch::Exact(q)) => p == q,
        (PathMatch::Regex(p), PathMatch::Regex(q)) => p == q,
        _ => false,
    };
    // Every constraint of `earlier` must also bind `later`; extra constraints
    // on `later` only narrow it further.
    let constraints_covered = earlier.headers.iter().all(|h| later.headers.contains(h))
        && earlier.query.iter().all(|q| later.query.contains(q))
        && methods_covered(&earlier.methods, &later.methods);
    path_covers && constraints_covered
}

/// No methods means any method; otherwise `later`'s methods must all be `earlier`'s.
fn methods_covered(earlier: &[String], later: &[String]) -> bool {
    earlier.is_empty() || (!later.is_empty() && later.iter().all(|m| earlier.contains(m)))
}

/// Routes with more header and query conditions than this are checked
/// against earlier routes with none of them or all of them, not against every
/// subset (2^n lookups).
const MAX_SUBSET_CONDITIONS: usize = 10;

/// The earlier routes of one domain, indexed so that finding the first one
/// that shadows a new route costs about (its path's length) x (subsets of its
/// conditions) lookups instead of one comparison per earlier route: a domain
/// with 50,000 routes is checked in linear time.
///
/// An earlier route shadows a later one when its path covers the later path
/// (a prefix of it, or the same exact path or regex) and its header and query
/// conditions are a subset of the later route's: so the candidates are found
/// by looking up each prefix of the later path and each subset of its
/// conditions.
/// Sorted condition ids -> (methods, first route index) per distinct method set.
type ByConditions = HashMap<Vec<u32>, Vec<(Vec<String>, usize)>>;

#[derive(Default)]
pub(super) struct ShadowIndex {
    /// (path kind, path) -> sorted condition ids -> (methods, first route index) per distinct method set.
    by_path: HashMap<(u8, String), ByConditions>,
    /// Each distinct condition seen, as an id.
    conditions: HashMap<(bool, String, u8, String, bool), u32>,
}

const PREFIX: u8 = 0;
const EXACT: u8 = 1;
const REGEX: u8 = 2;

fn condition_key(header: bool, m: &ValueMatch) -> (bool, String, u8, String, bool) {
    let (tag, value) = match &m.kind {
        ValueMatchKind::Exact(v) => (0, v.clone()),
        ValueMatchKind::Prefix(v) => (1, v.clone()),
        ValueMatchKind::Regex(v) => (2, v.clone()),
        ValueMatchKind::Present(p) => (3, p.to_string()),
    };
    (header, m.name.clone(), tag, value, m.invert)
}

fn path_key(p: &PathMatch) -> (u8, String) {
    match p {
        PathMatch::Prefix(p) => (PREFIX, p.clone()),
        PathMatch::Exact(p) => (EXACT, p.clone()),
        PathMatch::Regex(p) => (REGEX, p.clone()),
    }
}

impl ShadowIndex {
    fn condition_ids(&self, m: &RouteMatch) -> Vec<Option<u32>> {
        let headers = m.headers.iter().map(|h| condition_key(true, h));
        let query = m.query.iter().map(|q| condition_key(false, q));
        headers.chain(query).map(|k| self.conditions.get(&k).copied()).collect()
    }

    pub(super) fn add(&mut self, m: &RouteMatch, index: usize) {
        let headers = m.headers.iter().map(|h| condition_key(true, h));
        let query = m.query.iter().map(|q| condition_key(false, q));
        let mut ids: Vec<u32> = headers
            .chain(query)
            .map(|k| {
                let next = self.conditions.len() as u32;
                *self.conditions.entry(k).or_insert(next)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let by_methods = self.by_path.entry(path_key(&m.path)).or_default().entry(ids).or_default();
        // The first route with these methods is the one that shadows; later
        // equal ones add nothing.
        if !by_methods.iter().any(|(ms, _)| ms == &m.methods) {
            by_methods.push((m.methods.clone(), index));
        }
    }

    /// The index of the first earlier route that shadows `later`.
    pub(super) fn first_shadowing(&self, later: &RouteMatch) -> Option<usize> {
        // A condition no earlier route has cannot be in an earlier route's set.
        let mut known: Vec<u32> = self.condition_ids(later).into_iter().flatten().collect();
        known.sort_unstable();
        known.dedup();
        let subsets: Vec<Vec<u32>> = if known.len() <= MAX_SUBSET_CONDITIONS {
            (0u32..1 << known.len())
                .map(|mask| (0..known.len()).filter(|b| mask & (1 << b) != 0).map(|b| known[b]).collect())
                .collect()
        } else {
            vec![vec![], known.clone()]
        };
        let prefixes = |q: &str| -> Vec<(u8, String)> {
            q.char_indices().map(|(i, c)| (PREFIX, q[..i + c.len_utf8()].to_string())).collect()
        };
        let paths: Vec<(u8, String)> = match &later.path {
            PathMatch::Prefix(q) => prefixes(q),
            PathMatch::Exact(q) => prefixes(q).into_iter().chain([(EXACT, q.clone())]).collect(),
            PathMatch::Regex(q) => vec![(PREFIX, "/".to_string()), (REGEX, q.clone())],
        };
        let mut first: Option<usize> = None;
        for p in &paths {
            let Some(by_conditions) = self.by_path.get(p) else { continue };
            for subset in &subsets {
                let Some(by_methods) = by_conditions.get(subset) else { continue };
                for (methods, index) in by_methods {
                    if methods_covered(methods, &later.methods) && first.is_none_or(|f| *index < f) {
                        first = Some(*index);
                    }
                }
            }
        }
        first
    }
}
