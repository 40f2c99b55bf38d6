//! REST xDS (Envoy's `api_type: REST`, seed 003's Envoy): a poll for one
//! type is answered with the client's resources of that type from the same
//! snapshot the streams serve. Pure: the admin server parses the request
//! (`xds::json`), finds the proxy, and writes what [`respond`] returns.
//!
//! The served resources name ADS as the source of a cluster's endpoints
//! and a listener's routes; a REST client has no ADS stream, so each is
//! rewritten to name the REST source instead. The version is a hash of the
//! resources answered (names and contents): the same poll at the same
//! content gets the same version and body, which Envoy takes as no change.
//! REST has no nonce: an ACK is the client's next poll naming the version,
//! a NACK one with `error_detail`; a NACKed version is answered again on
//! every poll (nothing is pushed, so there is no loop to break), and the
//! rejection is reported once.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::snapshot::{Resource, ResourceType, Snapshot, hash_of};

/// How often a REST client polls: the `refresh_delay` in the bootstrap and
/// in the served resources' REST sources. Seed 003 polled every 5 s; a
/// developer expects an edit or an endpoint change within about a second,
/// as over gRPC, and on loopback a poll per type per second costs little.
pub const REFRESH_DELAY: Duration = Duration::from_secs(1);

/// The resource type a REST path asks for (`/v3/discovery:clusters`, ...).
pub fn type_of_path(path: &str) -> Option<ResourceType> {
    Some(match path.strip_prefix("/v3/discovery:")? {
        "clusters" => ResourceType::Cluster,
        "endpoints" => ResourceType::Endpoint,
        "listeners" => ResourceType::Listener,
        "routes" => ResourceType::Route,
        _ => return None,
    })
}

/// The REST paths, each once, for messages.
pub const PATHS: [&str; 4] =
    ["/v3/discovery:clusters", "/v3/discovery:endpoints", "/v3/discovery:listeners", "/v3/discovery:routes"];

/// A config source that polls devbridge over REST through `cluster`.
pub fn rest_source(cluster: &str) -> core::ConfigSource {
    core::ConfigSource {
        resource_api_version: core::ApiVersion::V3 as i32,
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::ApiConfigSource(
            core::ApiConfigSource {
                api_type: core::api_config_source::ApiType::Rest as i32,
                transport_api_version: core::ApiVersion::V3 as i32,
                cluster_names: vec![cluster.to_string()],
                refresh_delay: Some(super::translate::duration(REFRESH_DELAY)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// The answer to a poll for `ty` naming `names` (none: every resource of
/// the type, as for CDS and LDS), its sources rewritten to `source`.
pub fn respond(
    snapshot: &Snapshot,
    ty: ResourceType,
    names: &[String],
    source: &core::ConfigSource,
) -> DiscoveryResponse {
    let items = &snapshot.resources(ty).items;
    let chosen: Vec<&Resource> = if names.is_empty() || names.iter().any(|n| n == "*") {
        items.values().collect()
    } else {
        let mut names: Vec<&String> = names.iter().collect();
        names.sort();
        names.dedup();
        names.into_iter().filter_map(|n| items.get(n)).collect()
    };
    let version = format!("{:016x}", hash_of(chosen.iter().map(|r| (&r.name, r.hash)).collect::<Vec<_>>()));
    DiscoveryResponse {
        version_info: version,
        resources: chosen.iter().map(|r| with_source(ty, &r.body, source)).collect(),
        type_url: ty.type_url().to_string(),
        ..Default::default()
    }
}

/// A resource whose ADS sources name `source` instead.
fn with_source(ty: ResourceType, body: &Any, source: &core::ConfigSource) -> Any {
    match ty {
        ResourceType::Cluster => {
            let Ok(mut c) = Cluster::decode(body.value.as_slice()) else { return body.clone() };
            if let Some(eds) = c.eds_cluster_config.as_mut() {
                eds.eds_config = Some(source.clone());
            }
            pack_any(c)
        }
        ResourceType::Listener => {
            let Ok(mut l) = Listener::decode(body.value.as_slice()) else { return body.clone() };
            for chain in &mut l.filter_chains {
                for f in &mut chain.filters {
                    if let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
                        &mut f.config_type
                    {
                        *any = manager_with_source(any, source);
                    }
                }
            }
            if let Some(api) = l.api_listener.as_mut().and_then(|a| a.api_listener.as_mut()) {
                *api = manager_with_source(api, source);
            }
            pack_any(l)
        }
        ResourceType::Endpoint | ResourceType::Route => body.clone(),
    }
}

/// An HTTP connection manager fetching its routes from `source`; any other
/// filter as it is.
fn manager_with_source(any: &Any, source: &core::ConfigSource) -> Any {
    if any.type_url != hcm::HttpConnectionManager::type_url() {
        return any.clone();
    }
    let Ok(mut m) = hcm::HttpConnectionManager::decode(any.value.as_slice()) else { return any.clone() };
    if let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) = m.route_specifier.as_mut() {
        rds.config_source = Some(source.clone());
    }
    pack_any(m)
}

#[cfg(test)]
mod tests;
