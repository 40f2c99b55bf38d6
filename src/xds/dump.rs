//! What a proxy is served, in Envoy's own JSON, for the admin
//! `/config_dump`. Pure.
//!
//! Each proxy's resources are laid out as Envoy's `/config_dump` lays out
//! what it applied: one entry per type in `configs`, tagged with the
//! `envoy.admin.v3` dump type, each resource under the same keys
//! (`dynamic_active_clusters[].cluster`, `dynamic_endpoint_configs[].
//! endpoint_config`, `dynamic_listeners[].active_state.listener`,
//! `dynamic_route_configs[].route_config`), and each resource written by
//! reflection from Envoy's descriptors (`xds::json`), as Envoy writes it.
//! So `jq` paths work on both, and a resource devbridge serves can be
//! compared with the one Envoy shows after its ACK. This is what devbridge
//! sends; Envoy's dump adds what it filled in (timestamps, warming state).

use serde_json::{Value, json};

use super::json::any_to_json;
use super::snapshot::{Resource, ResourceType, Snapshot};

/// One proxy's snapshot: its version and, per type, what Envoy's own dump
/// of that type would show once it applied it.
pub fn dump_snapshot(s: &Snapshot) -> Value {
    let configs: Vec<Value> = ResourceType::ALL.into_iter().map(|ty| dump_type(s, ty)).collect();
    json!({ "version": s.version, "configs": configs })
}

/// The `envoy.admin.v3` dump type Envoy lists a resource type under.
pub fn dump_type_url(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        ResourceType::Endpoint => "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
        ResourceType::Listener => "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        ResourceType::Route => "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
    }
}

/// A resource as Envoy's JSON; an error in its place if it cannot be read.
pub fn resource_json(r: &Resource) -> Value {
    any_to_json(&r.body).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

fn dump_type(s: &Snapshot, ty: ResourceType) -> Value {
    let resources = s.resources(ty);
    let version = &resources.version;
    let entries: Vec<Value> = resources
        .items
        .values()
        .map(|r| {
            let body = resource_json(r);
            match ty {
                ResourceType::Cluster => json!({ "version_info": version, "cluster": body }),
                ResourceType::Endpoint => json!({ "version_info": version, "endpoint_config": body }),
                ResourceType::Listener => {
                    json!({ "name": r.name, "active_state": { "version_info": version, "listener": body } })
                }
                ResourceType::Route => json!({ "version_info": version, "route_config": body }),
            }
        })
        .collect();
    let key = match ty {
        ResourceType::Cluster => "dynamic_active_clusters",
        ResourceType::Endpoint => "dynamic_endpoint_configs",
        ResourceType::Listener => "dynamic_listeners",
        ResourceType::Route => "dynamic_route_configs",
    };
    let mut out = json!({ "@type": dump_type_url(ty) });
    if matches!(ty, ResourceType::Cluster | ResourceType::Listener) {
        out["version_info"] = json!(version);
    }
    out[key] = Value::Array(entries);
    out
}

#[cfg(test)]
mod tests;
