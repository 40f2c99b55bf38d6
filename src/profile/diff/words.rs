//! What changed, in words: one line per route, domain, cluster or proxy
//! setting that differs, for `devbridge diff`. Pure.

use std::collections::BTreeMap;

use crate::explain::{cluster::policy, cluster::source_detail, describe_action, describe_match};
use crate::model::{Cluster, Domain, Forward, Profile, Proxy, Route, RouteAction};

/// `old -> new` for each field that differs, `; `-joined; `None` when equal.
fn fields(pairs: &[(&str, String, String)]) -> Option<String> {
    let changed: Vec<String> = pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| if what.is_empty() { format!("{a} -> {b}") } else { format!("{what} {a} -> {b}") })
        .collect();
    (!changed.is_empty()).then(|| changed.join("; "))
}

fn opt<T: std::fmt::Display>(v: &Option<T>, none: &str) -> String {
    v.as_ref().map_or(none.to_string(), |v| v.to_string())
}

fn forward_fields(f: &Forward) -> Vec<(&'static str, String)> {
    let d = |d: &Option<std::time::Duration>| opt(&d.map(|d| humantime::format_duration(d).to_string()), "none");
    let retries = f.retries.as_ref().map(|r| {
        let per_try =
            r.per_try_timeout.map(|t| format!(", {} per try", humantime::format_duration(t))).unwrap_or_default();
        let codes: Vec<String> = r.status_codes.iter().map(u16::to_string).collect();
        let codes = if codes.is_empty() { String::new() } else { format!(" ({})", codes.join(",")) };
        format!("{} on {}{codes}{per_try}", r.count, r.on.join(","))
    });
    let headers: Vec<String> = f.request_headers_add.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let hash: Vec<String> = f.hash_policy.iter().map(crate::explain::describe_hash).collect();
    vec![
        ("hash_policy", if hash.is_empty() { "none".into() } else { hash.join(", ") }),
        ("mirror", f.mirror.as_ref().map_or("none".into(), |m| format!("{} {}%", m.cluster, m.percent))),
        ("fault", f.fault.as_ref().map_or("none".into(), crate::model::Fault::describe)),
        ("timeout", d(&f.timeout)),
        ("retries", opt(&retries, "none")),
        ("prefix_rewrite", opt(&f.prefix_rewrite, "none")),
        ("host_rewrite", opt(&f.host_rewrite, "none")),
        ("headers added", if headers.is_empty() { "none".into() } else { headers.join(", ") }),
    ]
}

/// How a route with the same match changed: `cluster edge -> local-copy; timeout 10s -> 5s`.
pub fn route_change(old: &Route, new: &Route) -> Option<String> {
    let mut pairs = vec![("", describe_action(&old.action), describe_action(&new.action))];
    if let (RouteAction::Forward(a), RouteAction::Forward(b)) = (&old.action, &new.action) {
        for ((what, x), (_, y)) in forward_fields(a).into_iter().zip(forward_fields(b)) {
            pairs.push((what, x, y));
        }
    } else if old.action != new.action && pairs[0].1 == pairs[0].2 {
        // Same words, other details (a direct response's body, say).
        pairs[0].2.push_str(" (changed)");
    }
    let headers = |r: &Route| {
        let mut h: Vec<String> = r.response_headers_add.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        h.extend(r.response_headers_remove.iter().map(|k| format!("-{k}")));
        if h.is_empty() { "none".to_string() } else { h.join(", ") }
    };
    pairs.push(("response headers", headers(old), headers(new)));
    let cors = |r: &Route| r.cors.as_ref().map_or("none".to_string(), crate::explain::describe_cors);
    pairs.push(("cors", cors(old), cors(new)));
    fields(&pairs)
}

/// A domain's route changes, one line each, routes identified by their match.
pub fn domain_routes(name: &str, old: Option<&Domain>, new: Option<&Domain>) -> Vec<String> {
    fn by_match(d: Option<&Domain>) -> Vec<(String, &Route)> {
        d.map(|d| d.routes.iter().map(|r| (format!("{:?}", r.matcher), r)).collect()).unwrap_or_default()
    }
    let (a, b) = (by_match(old), by_match(new));
    let a_map: BTreeMap<&String, &Route> = a.iter().map(|(k, r)| (k, *r)).collect();
    let b_map: BTreeMap<&String, &Route> = b.iter().map(|(k, r)| (k, *r)).collect();
    let mut out = Vec::new();
    for (i, (k, r)) in b.iter().enumerate() {
        match a_map.get(k) {
            None => out.push(format!("{name}: + route [{i}] {} -> {}", describe_match(r), describe_action(&r.action))),
            Some(o) => {
                if let Some(change) = route_change(o, r) {
                    out.push(format!("{name} {}: {change}", describe_match(r)));
                }
            }
        }
    }
    for (k, r) in &a {
        if !b_map.contains_key(k) {
            out.push(format!("{name}: - route {} -> {}", describe_match(r), describe_action(&r.action)));
        }
    }
    // First match wins: the same routes in another order route differently.
    let common_a: Vec<&String> = a.iter().map(|(k, _)| k).filter(|k| b_map.contains_key(k)).collect();
    let common_b: Vec<(&String, &Route)> =
        b.iter().map(|(k, r)| (k, *r)).filter(|(k, _)| a_map.contains_key(k)).collect();
    if common_a != common_b.iter().map(|(k, _)| *k).collect::<Vec<_>>() {
        let order: Vec<String> = common_b.iter().map(|(_, r)| describe_match(r)).collect();
        out.push(format!("{name}: routes reordered, now: {}", order.join(" | ")));
    }
    out
}

/// A domain's own changes (not its routes).
pub fn domain_change(old: &Domain, new: &Domain) -> Option<String> {
    let cors = |d: &Domain| d.cors.as_ref().map_or("none".to_string(), crate::explain::describe_cors);
    fields(&[
        ("aliases", format!("[{}]", old.aliases.join(", ")), format!("[{}]", new.aliases.join(", "))),
        ("cors", cors(old), cors(new)),
    ])
    .map(|c| format!("domain {}: {c}", new.name))
}

/// A cluster's changes: source, policy, static endpoints.
pub fn cluster_change(old: &Cluster, new: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    let name = &new.name;
    let (sa, sb) = (
        format!("{} {}", old.source.kind(), source_detail(&old.source)),
        format!("{} {}", new.source.kind(), source_detail(&new.source)),
    );
    let (ea, eb) = (endpoints(old), endpoints(new));
    let same_kind = old.source.kind() == new.source.kind();
    if sa != sb && !(same_kind && matches!(new.source, crate::model::Source::Static(_))) {
        out.push(format!("cluster {name}: source {sa} -> {sb}"));
    }
    for (addr, e) in &eb {
        match ea.get(addr) {
            None => out.push(format!("cluster {name}: + endpoint {addr}")),
            Some(o) if o != e => out.push(format!("cluster {name}: endpoint {addr} zone, weight or metadata changed")),
            Some(_) => {}
        }
    }
    for addr in ea.keys().filter(|a| !eb.contains_key(*a)) {
        out.push(format!("cluster {name}: - endpoint {addr}"));
    }
    let (pa, pb) = (policy(old), policy(new));
    if pa != pb {
        let gone: Vec<&String> = pa.iter().filter(|p| !pb.contains(p)).collect();
        let came: Vec<&String> = pb.iter().filter(|p| !pa.contains(p)).collect();
        let show = |v: Vec<&String>| {
            if v.is_empty() { "-".to_string() } else { v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") }
        };
        out.push(format!("cluster {name}: {} -> {}", show(gone), show(came)));
    }
    out
}

/// A proxy's own changes: zone, node identity, listen address, domains served.
pub fn proxy_change(old: &Proxy, new: &Proxy) -> Option<String> {
    fields(&[
        ("zone", old.zone.clone(), new.zone.clone()),
        ("node.cluster", old.node_cluster.clone(), new.node_cluster.clone()),
        ("node.id", opt(&old.node_id, "any"), opt(&new.node_id, "any")),
        ("listen_address", old.listen_address.to_string(), new.listen_address.to_string()),
        ("admin", old.admin.to_string(), new.admin.to_string()),
    ])
}

/// Every change each proxy would see, in words, by proxy name.
pub fn per_proxy(old: &Profile, new: &Profile) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> = old.proxies.keys().chain(new.proxies.keys()).collect();
    for name in names {
        let (po, pn) = (old.proxies.get(name), new.proxies.get(name));
        let mut lines = Vec::new();
        match (po, pn) {
            (None, Some(_)) => lines.push("proxy added".to_string()),
            (Some(_), None) => lines.push("proxy removed".to_string()),
            (Some(a), Some(b)) => lines.extend(proxy_change(a, b)),
            (None, None) => {}
        }
        let domains = |p: Option<&Proxy>| p.map(|p| p.domains.clone()).unwrap_or_default();
        let (da, db) = (domains(po), domains(pn));
        for d in &db {
            if !da.contains(d) {
                lines.push(format!("+ domain {d}"));
            }
        }
        for d in &da {
            if !db.contains(d) {
                lines.push(format!("- domain {d}"));
            }
        }
        for d in db.iter().filter(|d| da.contains(d)) {
            let (a, b) = (old.domains.get(d), new.domains.get(d));
            if let (Some(a), Some(b)) = (a, b) {
                lines.extend(domain_change(a, b));
            }
            lines.extend(domain_routes(d, a, b));
        }
        lines.extend(tcp_changes(po, pn));
        let (ca, cb) = (clusters(old, po), clusters(new, pn));
        for (n, c) in &cb {
            match ca.get(n) {
                None => lines.push(format!("+ cluster {n} ({} {})", c.source.kind(), source_detail(&c.source))),
                Some(o) => lines.extend(cluster_change(o, c)),
            }
        }
        for n in ca.keys().filter(|n| !cb.contains_key(*n)) {
            lines.push(format!("- cluster {n}"));
        }
        if old.tracing != new.tracing {
            let t = |p: &Profile| {
                p.tracing
                    .as_ref()
                    .map_or("off".to_string(), |t| format!("zipkin via {} ({}%)", t.zipkin.cluster, t.sampling))
            };
            lines.push(format!("tracing {} -> {}", t(old), t(new)));
        }
        if !lines.is_empty() {
            out.insert(name.clone(), lines);
        }
    }
    out
}

/// A proxy's TCP services added, removed or changed, by name.
fn tcp_changes(old: Option<&Proxy>, new: Option<&Proxy>) -> Vec<String> {
    let by_name = |p: Option<&Proxy>| -> BTreeMap<String, crate::model::TcpService> {
        p.map(|p| p.tcp.iter().map(|t| (t.name.clone(), t.clone())).collect()).unwrap_or_default()
    };
    let (a, b) = (by_name(old), by_name(new));
    let idle = |t: &crate::model::TcpService| {
        t.idle_timeout.map_or("Envoy's 1h".to_string(), |d| humantime::format_duration(d).to_string())
    };
    let mut out = Vec::new();
    for (n, t) in &b {
        match a.get(n) {
            None => out.push(format!("+ tcp {n} :{} -> cluster {}", t.port, t.cluster)),
            Some(o) => out.extend(
                fields(&[
                    ("port", o.port.to_string(), t.port.to_string()),
                    ("cluster", o.cluster.clone(), t.cluster.clone()),
                    ("idle_timeout", idle(o), idle(t)),
                ])
                .map(|f| format!("tcp {n}: {f}")),
            ),
        }
    }
    for n in a.keys().filter(|n| !b.contains_key(*n)) {
        out.push(format!("- tcp {n}"));
    }
    out
}

/// The clusters a proxy uses, by name.
fn clusters(p: &Profile, proxy: Option<&Proxy>) -> BTreeMap<String, Cluster> {
    proxy.map(|x| p.clusters_of(x).into_iter().map(|c| (c.name.clone(), c.clone())).collect()).unwrap_or_default()
}

/// A static cluster's endpoints by address; none for other sources.
fn endpoints(c: &Cluster) -> BTreeMap<String, &crate::model::Endpoint> {
    match &c.source {
        crate::model::Source::Static(eps) => eps.iter().map(|e| (e.addr.to_string(), e)).collect(),
        _ => BTreeMap::new(),
    }
}
