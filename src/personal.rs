//! Personal routing: the profile as one developer's sidecar serves it. Pure.
//!
//! [`apply`] takes the profile in force and what is personal to the
//! developer ([`Personal`]: overrides set at run time, the identity) and
//! returns the profile the builder translates: each override a route placed
//! before its domain's own routes (run-time ones first, newest first, then
//! the profile's `[[overrides]]`), each override to an address a static
//! cluster `override-<id>`, and the identity header on every domain, added
//! only when a request does not carry it already. [`check`] says why a new
//! override cannot be applied, in words the admin API returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::explain::matching;
use crate::model::{
    Cluster, Endpoint, Forward, LbPolicy, Override, OverrideTarget, PathMatch, Profile, Route, RouteAction, RouteMatch,
    Source, Target, ValueMatch, ValueMatchKind,
};

/// What is personal to the developer, besides the profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Personal {
    /// The developer's identity, sent in the profile's identity header.
    pub identity: Option<String>,
    /// Overrides set at run time, oldest first.
    pub overrides: Vec<Override>,
}

/// How long an override to an address waits for its connection.
pub const OVERRIDE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The profile with `personal` applied; `profile` itself (the same `Arc`)
/// when there is nothing to apply.
pub fn apply(profile: &Arc<Profile>, personal: &Personal) -> Arc<Profile> {
    let identity = personal.identity.as_ref().zip(profile.identity_header.as_ref());
    if identity.is_none() && profile.overrides.is_empty() && personal.overrides.is_empty() {
        return profile.clone();
    }
    let mut out = (**profile).clone();
    // Newest first: the last one set wins where two take the same requests.
    let overrides: Vec<&Override> = personal.overrides.iter().rev().chain(&profile.overrides).collect();
    // Per domain, its overrides' routes in order, each with the proxy it
    // is for (`None`: every proxy serving the domain).
    let mut added: BTreeMap<String, Vec<(Option<&str>, Route)>> = BTreeMap::new();
    for o in overrides {
        let Some(domain) = profile.domains.get(&o.domain) else { continue };
        if let OverrideTarget::Address(addr) = &o.to {
            out.clusters.insert(o.cluster_name(), local_cluster(&o.cluster_name(), *addr));
        }
        let entry = added.entry(o.domain.clone()).or_default();
        match (&o.to, &o.fault) {
            (OverrideTarget::Route, Some(fault)) => {
                entry.extend(faulted_copies(o, fault, &domain.routes).into_iter().map(|r| (o.proxy.as_deref(), r)))
            }
            // Nowhere to send and nothing to inject: `check` refuses it.
            (OverrideTarget::Route, None) => {}
            _ => entry.push((o.proxy.as_deref(), route_for(o, &domain.routes))),
        }
    }
    for (name, routes) in added {
        let Some(base) = profile.domains.get(&name) else { continue };
        // A proxy with overrides of its own gets the domain as a copy of
        // its own, `<domain>#<proxy>`, with those and the shared ones.
        let scoped: std::collections::BTreeSet<&str> = routes.iter().filter_map(|(p, _)| *p).collect();
        for proxy in scoped {
            let Some(p) = out.proxies.get_mut(proxy).filter(|p| p.domains.contains(&name)) else { continue };
            let copy_name = format!("{name}#{proxy}");
            for d in p.domains.iter_mut().filter(|d| **d == name) {
                d.clone_from(&copy_name);
            }
            let mut copy = base.clone();
            copy.name = copy_name.clone();
            let mine = routes.iter().filter(|(p, _)| p.is_none_or(|p| p == proxy)).map(|(_, r)| r.clone());
            copy.routes = mine.chain(base.routes.iter().cloned()).collect();
            out.domains.insert(copy_name, copy);
        }
        if let Some(d) = out.domains.get_mut(&name) {
            let shared = routes.iter().filter(|(p, _)| p.is_none()).map(|(_, r)| r.clone());
            d.routes = shared.chain(base.routes.iter().cloned()).collect();
        }
    }
    if let Some((value, header)) = identity {
        for d in out.domains.values_mut() {
            d.headers_if_absent = vec![(header.clone(), value.clone())];
        }
    }
    Arc::new(out)
}

/// Why `o` cannot be applied to `profile`, if it cannot: an unknown domain
/// (with the list of domains) or cluster, a bad prefix or header.
pub fn check(profile: &Profile, o: &Override) -> Result<(), String> {
    if !profile.domains.contains_key(&o.domain) {
        let known: Vec<&str> = profile.domains.keys().map(String::as_str).collect();
        return Err(format!(
            "profile {} has no domain {:?}; its domains: {}",
            profile.name,
            o.domain,
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ));
    }
    if let Some(proxy) = &o.proxy {
        let serving: Vec<&str> =
            profile.proxies.values().filter(|p| p.domains.contains(&o.domain)).map(|p| p.name.as_str()).collect();
        if !serving.contains(&proxy.as_str()) {
            return Err(format!(
                "proxy {proxy:?} does not serve {}; the proxies that do: {}",
                o.domain,
                if serving.is_empty() { "none".to_string() } else { serving.join(", ") }
            ));
        }
    }
    if !o.prefix.starts_with('/') || o.prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{:?} is not a path prefix; expected one starting with '/', e.g. /api", o.prefix));
    }
    for (k, v) in &o.headers {
        if !crate::profile::validate::is_header_name(k) {
            return Err(format!("{k:?} is not a header name"));
        }
        if v.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
            return Err(format!("the value of header {k} contains CR, LF or NUL"));
        }
    }
    match &o.to {
        OverrideTarget::Cluster(c) if !profile.clusters.contains_key(c) => {
            let known: Vec<&str> = profile.clusters.keys().map(String::as_str).collect();
            Err(format!("profile {} has no cluster {c:?}; its clusters: {}", profile.name, known.join(", ")))
        }
        OverrideTarget::Address(a) if a.port() == 0 => Err(format!("{a} has port 0; expected the local copy's port")),
        OverrideTarget::Route if o.fault.is_none() => {
            Err("an override needs somewhere to send to (--to), or faults to inject (--fault-*)".to_string())
        }
        OverrideTarget::Route if o.mirror => Err("a mirror needs somewhere to send the copy (--to)".to_string()),
        _ => Ok(()),
    }
}

/// Finds the domain a `host[:port]/path` target names: by name, or by host
/// or alias when one domain has it. Returns the domain and the path.
pub fn resolve_target(profile: &Profile, target: &str) -> Result<(String, String), String> {
    let target = target.trim().trim_start_matches("http://");
    let (authority, path) = match target.find('/') {
        Some(i) => (&target[..i], target[i..].to_string()),
        None => (target, "/".to_string()),
    };
    let authority = authority.to_ascii_lowercase();
    if profile.domains.contains_key(&authority) {
        return Ok((authority, path));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse::<u16>().ok()),
        _ => (authority.clone(), None),
    };
    let matching: Vec<&String> = profile
        .domains
        .values()
        .filter(|d| port.is_none_or(|p| p == d.port))
        .filter(|d| d.host == host || d.aliases.contains(&host))
        .map(|d| &d.name)
        .collect();
    match matching.as_slice() {
        [one] => Ok(((*one).clone(), path)),
        [] => {
            let known: Vec<&str> = profile.domains.keys().map(String::as_str).collect();
            Err(format!(
                "profile {} has no domain for {authority:?}; its domains: {}",
                profile.name,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        }
        many => Err(format!(
            "{authority:?} is served on several ports ({}); name one, e.g. {}{path}",
            many.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
            many[0]
        )),
    }
}

/// A faults-only override: the domain's routes that can take requests
/// under its prefix, in their order, narrowed to the prefix (and its
/// headers), each with the faults. Every request under the prefix so meets
/// the route it met before, faults added; one outside it meets none of
/// them. A regex route cannot be narrowed: it is copied as it is, without
/// faults, so that it still takes what it took.
fn faulted_copies(o: &Override, fault: &crate::model::Fault, routes: &[Route]) -> Vec<Route> {
    let headers: Vec<ValueMatch> = o
        .headers
        .iter()
        .map(|(k, v)| ValueMatch { name: k.clone(), kind: ValueMatchKind::Exact(v.clone()), invert: false })
        .collect();
    let mut out = Vec::new();
    for r in routes {
        let mut copy = r.clone();
        copy.override_id = Some(o.id.clone());
        let narrowed = match &r.matcher.path {
            PathMatch::Prefix(p) | PathMatch::Exact(p) if p.starts_with(&o.prefix) => false,
            PathMatch::Prefix(p) if o.prefix.starts_with(p.as_str()) => true,
            PathMatch::Regex(_) => {
                out.push(copy);
                continue;
            }
            _ => continue,
        };
        if narrowed {
            // The matched prefix grows to the override's: a rewrite of the
            // old one keeps rewriting the same requests the same way.
            let PathMatch::Prefix(p) = &r.matcher.path else { unreachable!("only prefixes narrow") };
            let extra = &o.prefix[p.len()..];
            copy.matcher.path = PathMatch::Prefix(o.prefix.clone());
            if let RouteAction::Forward(f) = &mut copy.action
                && let Some(rewrite) = &mut f.prefix_rewrite
            {
                rewrite.push_str(extra);
            }
        }
        copy.matcher.headers.extend(headers.iter().cloned());
        if let RouteAction::Forward(f) = &mut copy.action {
            f.fault = Some(fault.clone());
        }
        out.push(copy);
    }
    out
}

/// The route an override stands for, before `routes` (its domain's).
fn route_for(o: &Override, routes: &[Route]) -> Route {
    let headers: Vec<ValueMatch> = o
        .headers
        .iter()
        .map(|(k, v)| ValueMatch { name: k.clone(), kind: ValueMatchKind::Exact(v.clone()), invert: false })
        .collect();
    let matcher = RouteMatch { path: PathMatch::Prefix(o.prefix.clone()), headers, query: vec![], methods: vec![] };
    // The profile route the same requests would reach lends its policies.
    let lender = lender(o, routes);
    let base = lender.and_then(|r| match &r.action {
        RouteAction::Forward(f) => Some(f.clone()),
        _ => None,
    });
    let to = o.cluster_name();
    let mut action = match (&o.to, o.mirror, base) {
        (_, true, Some(mut f)) => {
            f.mirror = Some(crate::model::Mirror { cluster: to, percent: 100 });
            RouteAction::Forward(f)
        }
        // Mirroring a route that does not forward mirrors nothing: the
        // route keeps its own answer.
        (_, true, None) => lender.map(|r| r.action.clone()).unwrap_or_else(|| forward_to(to, None)),
        (_, false, base) => forward_to(to, base),
    };
    // Faults need a forwarding route (Envoy's fault filter acts before the
    // router); a redirect or direct response keeps its answer.
    if let (Some(fault), RouteAction::Forward(f)) = (&o.fault, &mut action) {
        f.fault = Some(fault.clone());
    }
    Route {
        matcher,
        action,
        response_headers_add: lender.map(|r| r.response_headers_add.clone()).unwrap_or_default(),
        response_headers_remove: lender.map(|r| r.response_headers_remove.clone()).unwrap_or_default(),
        cors: lender.and_then(|r| r.cors.clone()),
        override_id: Some(o.id.clone()),
    }
}

/// The first route of the domain that a request for the override's prefix
/// (with its headers) matches.
fn lender<'r>(o: &Override, routes: &'r [Route]) -> Option<&'r Route> {
    let seen = matching::Seen {
        authority: "",
        path: &o.prefix,
        method: "GET",
        headers: crate::explain::header_map(&o.headers),
    };
    routes.iter().find(|r| matching::conditions(r, &seen).iter().all(|c| c.ok))
}

/// Forwarding to `cluster` with the lender's timeout, retries and added
/// headers, without its rewrites, subsets or splits: the override's target
/// is another set of endpoints.
fn forward_to(cluster: String, base: Option<Forward>) -> RouteAction {
    let base = base.as_ref();
    RouteAction::Forward(Forward {
        target: Target::Cluster(cluster),
        timeout: base.and_then(|f| f.timeout),
        retries: base.and_then(|f| f.retries.clone()),
        prefix_rewrite: None,
        host_rewrite: None,
        request_headers_add: base.map(|f| f.request_headers_add.clone()).unwrap_or_default(),
        subset: Default::default(),
        hash_policy: vec![],
        mirror: None,
        fault: None,
    })
}

/// A cluster for an override's local address: one static endpoint, probed
/// by TCP connect like any other.
fn local_cluster(name: &str, addr: std::net::SocketAddr) -> Cluster {
    Cluster {
        name: name.to_string(),
        source: Source::Static(vec![Endpoint {
            addr,
            zone: None,
            weight: None,
            metadata: Default::default(),
            unhealthy: false,
        }]),
        lb: LbPolicy::RoundRobin,
        connect_timeout: OVERRIDE_CONNECT_TIMEOUT,
        http2: false,
        health_check: None,
        circuit_breakers: None,
        tls: None,
        probe: Some(crate::model::ProbeSpec { probe: crate::model::Probe::Tcp, interval: None, timeout: None }),
        outlier_detection: None,
        zone_priority: vec![],
        subset_keys: vec![],
        subset_fallback: Default::default(),
    }
}

#[cfg(test)]
mod tests;
