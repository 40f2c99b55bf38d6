//! Kubernetes objects reduced to what selection reads. Pure.
//!
//! A watch keeps tens of thousands of pods for hours; keeping only these
//! fields (not the whole `Pod`, with its managed fields and specs) keeps the
//! index small, and makes "did anything that matters change" a plain `==`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The node label that names its zone (the well-known topology label).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An object of one of the watched kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(PodInfo),
    Node(NodeInfo),
    Slice(SliceInfo),
}

impl Object {
    /// `namespace/name`, or `name` for cluster-scoped objects (nodes).
    pub fn key(&self) -> String {
        match self {
            Object::Pod(p) => format!("{}/{}", p.namespace, p.name),
            Object::Node(n) => n.name.clone(),
            Object::Slice(s) => format!("{}/{}", s.namespace, s.name),
        }
    }
}

/// A container port: its name, if any, and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    /// `status.phase`: `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set: the pod is going away.
    pub terminating: bool,
    pub host_network: bool,
    pub pod_ip: Option<IpAddr>,
    pub node: Option<String>,
    /// Shared with the pod's endpoint, which carries them as metadata.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Every container's ports, in spec order.
    pub ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub zone: Option<String>,
    pub internal_ip: Option<IpAddr>,
    pub external_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    pub namespace: String,
    pub name: String,
    /// `ports[]` of the slice: the Service port's name and the endpoints' port.
    pub ports: Vec<ContainerPort>,
    pub endpoints: Vec<SliceEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// The first address (all of an endpoint's addresses are fungible).
    pub address: Option<IpAddr>,
    pub ready: bool,
    pub terminating: bool,
    pub zone: Option<String>,
    /// The pod behind it, or the first address, for messages.
    pub name: String,
}

fn name_and_namespace(meta: &ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p > 0)
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Self {
        let (namespace, name) = name_and_namespace(&pod.metadata);
        let status = pod.status.as_ref();
        let spec = pod.spec.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let ports = spec
            .map(|s| {
                s.containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter_map(|p| Some(ContainerPort { name: p.name.clone(), port: port_u16(p.container_port)? }))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            namespace,
            name,
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".into()),
            ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            pod_ip: status.and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok()),
            node: spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            labels: Arc::new(pod.metadata.labels.clone().unwrap_or_default()),
            ports,
        }
    }
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> Self {
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        let address = |kind: &str| {
            addresses.and_then(|a| a.iter().filter(|a| a.type_ == kind).find_map(|a| a.address.parse().ok()))
        };
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            zone: node.metadata.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)).cloned(),
            internal_ip: address("InternalIP"),
            external_ip: address("ExternalIP"),
        }
    }
}

impl SliceInfo {
    pub fn from_slice(slice: &EndpointSlice) -> Self {
        let (namespace, name) = name_and_namespace(&slice.metadata);
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(ContainerPort { name: p.name.clone().filter(|n| !n.is_empty()), port: port_u16(p.port?)? })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .map(|e| {
                let conditions = e.conditions.as_ref();
                let address = e.addresses.first().and_then(|a| a.parse().ok());
                let name = e
                    .target_ref
                    .as_ref()
                    .and_then(|t| t.name.clone())
                    .or_else(|| e.addresses.first().cloned())
                    .unwrap_or_default();
                SliceEndpoint {
                    address,
                    // The API says an unknown readiness is to be taken as ready.
                    ready: conditions.and_then(|c| c.ready).unwrap_or(true),
                    terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                    zone: e.zone.clone(),
                    name,
                }
            })
            .collect();
        Self { namespace, name, ports, endpoints }
    }
}
