//! A proxyless gRPC client's snapshot (gRFC A27): for each domain it is
//! served, an API listener named after the `xds:///` target (its
//! `host:port`, and its host alone when no other domain of the proxy has
//! that host) whose connection manager fetches the route configuration
//! named after the domain; EDS clusters (gRPC refuses other kinds) and
//! their load assignments, the same as an Envoy gets.
//!
//! Validation has refused what gRPC cannot honour
//! (`profile::validate::proxyless`); what is set at run time (overrides)
//! is mapped where gRPC has an equivalent and otherwise left out: a
//! mirror, faults and added request headers.

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::util::pack_any;

use super::{Lookup, Snapshot, SnapshotError, SnapshotParts, ads, eds_endpoints, to_cluster, to_load_assignment_in};
use crate::model::{self as profile, Profile, Proxy};

/// Envoy's retry conditions that a gRPC client sees as UNAVAILABLE.
const UNAVAILABLE: &[&str] =
    &["5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "refused-stream"];

/// The `xds:///` targets a proxyless client reaches a domain by, each an
/// API listener's name: `host:port`, and `host` when no other domain of the
/// proxy has that host.
pub fn grpc_targets<'p>(profile: &'p Profile, proxy: &'p Proxy) -> Vec<(String, &'p profile::Domain)> {
    let domains: Vec<&profile::Domain> = proxy.domains.iter().filter_map(|d| profile.domains.get(d)).collect();
    let mut out = Vec::new();
    for d in &domains {
        out.push((d.name.clone(), *d));
        if domains.iter().filter(|o| o.host == d.host).count() == 1 && d.host != d.name {
            out.push((d.host.clone(), *d));
        }
    }
    out
}

pub fn translate_grpc_proxy(
    profile: &Profile,
    proxy: &Proxy,
    discovered: &Lookup<'_>,
) -> Result<Snapshot, SnapshotError> {
    let mut parts = SnapshotParts::default();
    for c in profile.clusters_of(proxy) {
        // A DNS cluster is refused by validation: gRPC takes EDS clusters only.
        let Some(eps) = eds_endpoints(c, discovered(&c.name)) else { continue };
        parts.clusters.push(to_grpc_cluster(c));
        parts.endpoints.push(to_load_assignment_in(&c.name, eps, &c.zone_priority));
    }
    for (target, domain) in grpc_targets(profile, proxy) {
        parts.listeners.push(to_api_listener(&target, &domain.name));
    }
    for d in proxy.domains.iter().filter_map(|d| profile.domains.get(d)) {
        parts.routes.push(to_grpc_route_configuration(d));
    }
    Snapshot::build(&proxy.name, parts)
}

/// Envoy's cluster, without what gRPC does not read or would refuse:
/// active health checks (the laptop's probes still mark endpoints
/// unhealthy in EDS), upstream HTTP/2 options (gRPC is HTTP/2) and subsets.
fn to_grpc_cluster(c: &profile::Cluster) -> cluster::Cluster {
    let mut out = to_cluster(c);
    out.health_checks.clear();
    out.ignore_health_on_host_removal = false;
    out.typed_extension_protocol_options.clear();
    out.lb_subset_config = None;
    out
}

/// An API listener: a connection manager with only the router filter,
/// fetching `route_config` over ADS.
fn to_api_listener(name: &str, route_config: &str) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source: Some(ads()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: vec![hcm::HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    listener::Listener {
        name: name.to_string(),
        api_listener: Some(listener::ApiListener { api_listener: Some(pack_any(manager)) }),
        ..Default::default()
    }
}

/// One virtual host for the domain, matched against the channel's
/// authority (the target): `host` and `host:port`, aliases too.
fn to_grpc_route_configuration(d: &profile::Domain) -> route::RouteConfiguration {
    let mut vhost = super::to_virtual_host(d);
    vhost.request_headers_to_add.clear();
    vhost.typed_per_filter_config.clear();
    for r in &mut vhost.routes {
        to_grpc_route(r);
    }
    route::RouteConfiguration { name: d.name.clone(), virtual_hosts: vec![vhost], ..Default::default() }
}

/// Envoy's route, as gRPC reads it: the timeout as the stream's maximum
/// duration (gRFC A31), retries on gRPC status names (A44), and nothing
/// gRPC has no equivalent for.
fn to_grpc_route(r: &mut route::Route) {
    r.request_headers_to_add.clear();
    r.typed_per_filter_config.clear();
    r.response_headers_to_add.clear();
    r.response_headers_to_remove.clear();
    let Some(route::route::Action::Route(action)) = &mut r.action else { return };
    if let Some(t) = action.timeout.take() {
        action.max_stream_duration =
            Some(route::route_action::MaxStreamDuration { max_stream_duration: Some(t), ..Default::default() });
    }
    action.request_mirror_policies.clear();
    action.metadata_match = None;
    action.retry_policy = action.retry_policy.take().filter(|p| p.num_retries.is_some_and(|n| n.value > 0)).map(|p| {
        // Envoy's conditions for a failed or reset upstream (5xx, reset,
        // connect-failure, ...) are, for a gRPC call, its UNAVAILABLE status.
        let mut on: Vec<&str> = Vec::new();
        for c in p.retry_on.split(',') {
            let c = if profile::GRPC_RETRY_ON.contains(&c) {
                c
            } else if UNAVAILABLE.contains(&c) {
                "unavailable"
            } else {
                continue;
            };
            if !on.contains(&c) {
                on.push(c);
            }
        }
        if on.is_empty() {
            on.push("unavailable");
        }
        route::RetryPolicy { retry_on: on.join(","), num_retries: p.num_retries, ..Default::default() }
    });
    if let Some(route::route_action::ClusterSpecifier::WeightedClusters(w)) = &mut action.cluster_specifier {
        for c in &mut w.clusters {
            c.metadata_match = None;
        }
    }
}
