//! What a proxyless gRPC client (`kind = "grpc"`) can take: gRPC's xDS
//! support (gRFC A27 and those after it) covers routing by path and
//! headers, cluster and weighted targets, timeouts, retries on gRPC status
//! codes, and EDS clusters balanced round robin, least request or ring
//! hash. A setting it cannot honour is a mistake in the profile, not a
//! silent no-op: each is named here, with the domain reference as its place.

use super::*;

/// Every setting of `domain`, and of the clusters its routes use, that a
/// proxyless gRPC client would not honour, in profile order.
pub fn grpc_problems(domain: &Domain, clusters: &BTreeMap<String, Cluster>) -> Vec<String> {
    let mut out = Vec::new();
    if domain.cors.is_some() {
        out.push("sets cors, which only browsers use".to_string());
    }
    let mut used = BTreeSet::new();
    for (i, r) in domain.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if !r.matcher.query.is_empty() {
            out.push(format!("{at} matches query parameters, which gRPC calls do not have"));
        }
        if !r.matcher.methods.is_empty() {
            out.push(format!("{at} matches methods; every gRPC call is a POST"));
        }
        if !r.response_headers_add.is_empty() || !r.response_headers_remove.is_empty() {
            out.push(format!("{at} edits response headers, which gRPC clients do not do"));
        }
        if r.cors.is_some() {
            out.push(format!("{at} sets cors, which only browsers use"));
        }
        let f = match &r.action {
            RouteAction::Forward(f) => f,
            RouteAction::Redirect(_) => {
                out.push(format!("{at} redirects; a gRPC client can only forward a call to a cluster"));
                continue;
            }
            RouteAction::DirectResponse { .. } => {
                out.push(format!("{at} answers directly; a gRPC client can only forward a call to a cluster"));
                continue;
            }
        };
        let unsupported = [
            (f.prefix_rewrite.is_some(), "prefix_rewrite"),
            (f.host_rewrite.is_some(), "host_rewrite"),
            (!f.request_headers_add.is_empty(), "request_headers_add"),
            (f.mirror.is_some(), "mirror"),
            (f.fault.is_some(), "fault"),
            (
                !f.subset.is_empty()
                    || matches!(&f.target, Target::Weighted(w) if w.iter().any(|s| !s.subset.is_empty())),
                "subset",
            ),
        ];
        for (_, what) in unsupported.iter().filter(|(set, _)| *set) {
            out.push(format!("{at} sets {what}, which gRPC clients do not support"));
        }
        if f.hash_policy.iter().any(|h| !matches!(h, HashPolicy::Header(_))) {
            out.push(format!("{at} hashes by cookie or source address; gRPC clients hash by header only"));
        }
        if let Some(rt) = &f.retries {
            if rt.per_try_timeout.is_some() {
                out.push(format!("{at} sets retries.per_try_timeout, which gRPC clients do not support"));
            }
            if !rt.status_codes.is_empty() {
                out.push(format!(
                    "{at} retries on HTTP status codes; gRPC clients retry on gRPC status names in retries.on ({})",
                    GRPC_RETRY_ON.join(", ")
                ));
            }
        }
        used.extend(f.target.clusters().into_iter().map(str::to_string));
    }
    for c in used.iter().filter_map(|n| clusters.get(n)) {
        let name = &c.name;
        if let Source::Dns { .. } = c.source {
            out.push(format!(
                "cluster {name:?} resolves host names itself (source dns); gRPC clients take endpoints over EDS: \
                 use a static, kubernetes or registered source"
            ));
        }
        if matches!(c.lb, LbPolicy::Random | LbPolicy::Maglev) {
            out.push(format!(
                "cluster {name:?} balances {}; gRPC clients support round_robin, least_request and ring_hash",
                if c.lb == LbPolicy::Random { "at random" } else { "by maglev" }
            ));
        }
        if c.tls.is_some() {
            out.push(format!(
                "cluster {name:?} uses TLS to its endpoints, which is not served to gRPC clients \
                 (their xDS TLS needs certificate providers in the client's bootstrap)"
            ));
        }
    }
    out
}
