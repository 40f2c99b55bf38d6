//! Builders for small hand-made snapshot parts, shared by the tests of
//! `snapshot` and `stream`.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::util::pack_any;

use super::SnapshotParts;
use crate::xds::translate;

pub(crate) fn mk_ads() -> core::ConfigSource {
    core::ConfigSource {
        resource_api_version: core::ApiVersion::V3 as i32,
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(core::AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// An EDS cluster fed over ADS.
pub(crate) fn mk_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig { eds_config: Some(mk_ads()), service_name: String::new() }),
        ..Default::default()
    }
}

/// A load assignment with one endpoint on `port`; the hash stands for the
/// model it was built from, so it changes with the port.
pub(crate) fn mk_cla(name: &str, port: u16) -> (endpoint::ClusterLoadAssignment, u64) {
    let cla = endpoint::ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![endpoint::LocalityLbEndpoints {
            lb_endpoints: vec![endpoint::LbEndpoint {
                host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(endpoint::Endpoint {
                    address: Some(crate::xds::socket_address("127.0.0.1", port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    (cla, u64::from(port))
}

/// A listener on `port` whose HTTP connection manager fetches `routes_<port>` over ADS.
pub(crate) fn mk_listener(port: u16) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: format!("ingress_{port}"),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source: Some(mk_ads()),
            route_config_name: translate::route_config_name(port),
        })),
        ..Default::default()
    };
    listener::Listener {
        name: translate::listener_name(port),
        address: Some(crate::xds::socket_address("127.0.0.1", port)),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A route configuration with one virtual host sending `/<cluster>` to each cluster.
pub(crate) fn mk_route_config(name: &str, clusters: &[&str]) -> route::RouteConfiguration {
    let routes = clusters
        .iter()
        .map(|c| route::Route {
            r#match: Some(route::RouteMatch {
                path_specifier: Some(route::route_match::PathSpecifier::Prefix(format!("/{c}"))),
                ..Default::default()
            }),
            action: Some(route::route::Action::Route(route::RouteAction {
                cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(c.to_string())),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    route::RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vec![route::VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Parts with the given clusters (endpoint port 9000) and one listener per
/// port, each routing to every cluster.
pub(crate) fn mk_parts(clusters: &[&str], ports: &[u16]) -> SnapshotParts {
    SnapshotParts {
        clusters: clusters.iter().map(|c| mk_cluster(c)).collect(),
        endpoints: clusters.iter().map(|c| mk_cla(c, 9000)).collect(),
        listeners: ports.iter().map(|p| mk_listener(*p)).collect(),
        routes: ports.iter().map(|p| mk_route_config(&translate::route_config_name(*p), clusters)).collect(),
    }
}

/// The snapshot of a one-domain, one-cluster profile, as translation
/// builds it for proxy `p`.
pub(crate) fn mk_translated() -> super::Snapshot {
    let src = r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["a.test:8080"]
[[domains]]
name = "a.test:8080"
[[domains.routes]]
cluster = "web"
[clusters.web.static]
endpoints = [{ address = "127.0.0.1:9001" }]
"#;
    let profile = crate::profile::parse_profile("t.toml", "t", src).expect("valid profile");
    translate::translate_proxy(&profile, &profile.proxies["p"], &crate::model::EndpointSet::new()).expect("consistent")
}
