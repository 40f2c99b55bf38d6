//! Load assignments: the model's endpoints as `ClusterLoadAssignment`s.
//!
//! Two encoders that must group and order alike live here together.
//! [`to_load_assignment`] builds the message (full translation).
//! [`LoadAssignmentCache`] serves the EDS-only path: a pod event changes one
//! endpoint, but building a `ClusterLoadAssignment` of 10,000 endpoints as a
//! message and encoding it took most of 10 ms. The cache keeps, per cluster,
//! the endpoints of its last build in sorted order, each with its encoded
//! `LbEndpoint`; the next build walks the new sorted list along it and
//! encodes only the endpoints it lacks. When only a few differ (a pod
//! event), they are removed from and inserted into the kept list in place,
//! and nothing else is moved or encoded. The load assignment is then spliced
//! from those bytes: a protobuf message's encoding is the concatenation of
//! its fields' encodings, and a repeated message field is, per element, its
//! key, its length as a varint and its bytes. Fields go in the order prost
//! writes them, so the result decodes to exactly what [`to_load_assignment`]
//! builds (and, without multi-entry metadata maps, is byte for byte its
//! encoding). The content hash is the same one, computed from the model: it
//! combines per-endpoint hashes, which are kept along with the encodings.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::google::protobuf as pbwk;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::snapshot::Resource;
use super::{socket_address, u32v};
use crate::model::{self as profile, Endpoint, Profile};

// Field numbers from envoy/config/endpoint/v3/endpoint.proto and
// endpoint_components.proto.
const CLUSTER_NAME: u32 = 1; // ClusterLoadAssignment.cluster_name
const ENDPOINTS: u32 = 2; // ClusterLoadAssignment.endpoints
const LB_ENDPOINTS: u32 = 2; // LocalityLbEndpoints.lb_endpoints

/// Per cluster, the endpoints of its last build, sorted, each with its
/// encoded `LbEndpoint`. Bounded: a build keeps only the endpoints it used,
/// and [`retain`](Self::retain) drops the clusters no longer discovered.
#[derive(Debug, Default)]
pub struct LoadAssignmentCache {
    clusters: HashMap<String, Vec<Encoded>>,
}

/// One endpoint with its encoded `LbEndpoint` and its share of the content
/// hash, both costly enough with 10,000 endpoints to be worth keeping.
#[derive(Debug)]
struct Encoded {
    endpoint: Endpoint,
    hash: u64,
    bytes: Vec<u8>,
}

impl Encoded {
    fn new(e: &Endpoint) -> Self {
        Self { endpoint: e.clone(), hash: endpoint_hash(e), bytes: to_lb_endpoint(e).encode_to_vec() }
    }
}

impl LoadAssignmentCache {
    /// The load assignment of `cluster`, packed: the resource
    /// `Resource::with_content_hash(to_load_assignment(cluster, eps))` would be.
    pub fn to_resource(&mut self, cluster: &str, eps: &[Endpoint]) -> Resource {
        let mut sorted: Vec<&Endpoint> = eps.iter().collect();
        sorted.sort_unstable();
        let encoded = self.encode_endpoints(cluster, &sorted);
        let hash = content_hash(cluster, encoded.iter().map(|e| e.hash));
        let value = splice(cluster, &encoded);
        self.clusters.insert(cluster.to_string(), encoded);
        Resource::from_encoded::<endpoint::ClusterLoadAssignment>(cluster, value, hash)
    }

    /// Drops the clusters for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.clusters.retain(|c, _| keep(c));
    }

    /// `sorted` with each endpoint's encoding, taken from the last build
    /// when it had the endpoint; the last build's other endpoints are
    /// dropped, which keeps the cache to the endpoints in use.
    fn encode_endpoints(&mut self, cluster: &str, sorted: &[&Endpoint]) -> Vec<Encoded> {
        let mut previous = self.clusters.remove(cluster).unwrap_or_default();
        if edit_in_place(&mut previous, sorted) {
            return previous;
        }
        let mut previous = previous.into_iter().peekable();
        sorted
            .iter()
            .map(|&e| {
                // Both lists are sorted, so one pass along the old one finds
                // every endpoint it has.
                while previous.next_if(|p| p.endpoint < *e).is_some() {}
                previous.next_if(|p| p.endpoint == *e).unwrap_or_else(|| Encoded::new(e))
            })
            .collect()
    }
}

/// At most this many endpoints added or removed are edited into the last
/// build in place; more, and the list is built again along it. Each edit
/// moves the entries after it (a memmove of about a megabyte for 10,000),
/// far less than rebuilding the list, but not without bound.
const MAX_EDITS: usize = 32;

/// Turns `previous` (the last build, sorted) into `sorted`'s encodings by
/// removing and inserting the few endpoints that differ, keeping every
/// other entry where it is; `false`, leaving `previous` as it was, when
/// more than [`MAX_EDITS`] differ. One pass of comparisons finds them.
fn edit_in_place(previous: &mut Vec<Encoded>, sorted: &[&Endpoint]) -> bool {
    // (index in previous to remove) and (index in sorted to insert).
    let (mut gone, mut new) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < previous.len() || j < sorted.len() {
        // Past the end of one list, everything left in the other differs.
        let order = match (previous.get(i), sorted.get(j)) {
            (Some(p), Some(e)) => p.endpoint.cmp(e),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Equal => (i, j) = (i + 1, j + 1),
            Ordering::Less => {
                gone.push(i);
                i += 1;
            }
            Ordering::Greater => {
                new.push(j);
                j += 1;
            }
        }
        if gone.len() + new.len() > MAX_EDITS {
            return false;
        }
    }
    // Removals from the back keep the earlier indices valid; then each
    // insertion goes at its place in the final list, in ascending order.
    for &i in gone.iter().rev() {
        previous.remove(i);
    }
    for &j in &new {
        previous.insert(j, Encoded::new(sorted[j]));
    }
    true
}

/// The encoded `ClusterLoadAssignment`: one locality per zone in zone order
/// (endpoints without a zone first), each holding its endpoints in sorted
/// order, as `to_load_assignment` groups them.
fn splice(cluster: &str, endpoints: &[Encoded]) -> Vec<u8> {
    let mut by_zone: BTreeMap<Option<&str>, (Vec<&[u8]>, u32)> = BTreeMap::new();
    for e in endpoints {
        let (bytes, weight) = by_zone.entry(e.endpoint.zone.as_deref()).or_default();
        bytes.push(&e.bytes);
        *weight = weight.saturating_add(e.endpoint.weight.unwrap_or(1));
    }
    let localities: Vec<Locality> = by_zone
        .into_iter()
        .map(|(zone, (lb_endpoints, weight))| {
            // In prost's field order the locality comes before the
            // endpoints, and their weight after them.
            let head = endpoint::LocalityLbEndpoints {
                locality: Some(core::Locality { zone: zone.unwrap_or_default().to_string(), ..Default::default() }),
                ..Default::default()
            }
            .encode_to_vec();
            let tail = endpoint::LocalityLbEndpoints {
                load_balancing_weight: Some(locality_weight(weight)),
                ..Default::default()
            }
            .encode_to_vec();
            let len =
                head.len() + lb_endpoints.iter().map(|b| field_len(LB_ENDPOINTS, b.len())).sum::<usize>() + tail.len();
            Locality { head, lb_endpoints, tail, len }
        })
        .collect();

    // proto3 leaves an empty string out, as prost does.
    let name_len = if cluster.is_empty() { 0 } else { field_len(CLUSTER_NAME, cluster.len()) };
    let total = name_len + localities.iter().map(|l| field_len(ENDPOINTS, l.len)).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    if !cluster.is_empty() {
        put_header(CLUSTER_NAME, cluster.len(), &mut out);
        out.extend_from_slice(cluster.as_bytes());
    }
    for Locality { head, lb_endpoints, tail, len } in localities {
        put_header(ENDPOINTS, len, &mut out);
        out.extend_from_slice(&head);
        for bytes in lb_endpoints {
            put_header(LB_ENDPOINTS, bytes.len(), &mut out);
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&tail);
    }
    debug_assert_eq!(out.len(), total, "the lengths computed match what was written");
    out
}

/// One `LocalityLbEndpoints` in pieces: its encoding before the endpoints,
/// the endpoints' encodings, its encoding after them, and the length of the
/// whole.
struct Locality<'a> {
    head: Vec<u8>,
    lb_endpoints: Vec<&'a [u8]>,
    tail: Vec<u8>,
    len: usize,
}

/// A locality's weight: the sum of its endpoints' weights (1 each unless
/// set), capped so that the sum over a few hundred localities stays within
/// what Envoy accepts. Envoy reads locality weights only when told to
/// (`locality_weighted_lb_config`); gRPC clients always do, and give a
/// locality without a weight no traffic at all (gRFC A27).
fn locality_weight(sum: u32) -> pbwk::UInt32Value {
    u32v(sum.clamp(1, 1 << 24))
}

/// The encoded length of a length-delimited field of `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A length-delimited field's key and length; its bytes follow.
fn put_header(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// Endpoints found at run time, by cluster name.
pub type Lookup<'a> = dyn Fn(&str) -> Option<&'a [profile::Endpoint]> + 'a;

/// The EDS-only path, first step: the load assignments of the `changed`
/// run-time clusters some proxy uses, packed once for all of them, reusing
/// the encoding of unchanged endpoints kept in `cache`.
pub fn translate_load_assignments<'a>(
    profile: &Profile,
    changed: &BTreeSet<String>,
    discovered: &Lookup<'a>,
    cache: &mut LoadAssignmentCache,
) -> BTreeMap<String, Resource> {
    let used: BTreeMap<&str, &profile::Cluster> =
        profile.proxies.values().flat_map(|p| profile.clusters_of(p)).map(|c| (c.name.as_str(), c)).collect();
    used.into_values()
        .filter(|c| changed.contains(&c.name))
        .filter(|c| matches!(c.source, profile::Source::Kubernetes(_) | profile::Source::KubernetesService(_)))
        .map(|c| {
            let eps = discovered(&c.name).unwrap_or_default();
            let resource = if c.zone_priority.is_empty() {
                cache.to_resource(&c.name, eps)
            } else {
                // Priorities are not spliced: such a cluster is built whole.
                let (cla, hash) = to_load_assignment_in(&c.name, eps, &c.zone_priority);
                Resource::with_content_hash(&c.name, &cla, hash)
            };
            (c.name.clone(), resource)
        })
        .collect()
}

pub(super) fn lb_endpoint(
    addr: core::Address,
    weight: Option<u32>,
    metadata: Option<core::Metadata>,
) -> endpoint::LbEndpoint {
    endpoint::LbEndpoint {
        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(endpoint::Endpoint {
            address: Some(addr),
            ..Default::default()
        })),
        load_balancing_weight: weight.map(u32v),
        metadata,
        ..Default::default()
    }
}

/// Endpoint metadata goes under `envoy.lb`, where Envoy's subset load
/// balancer and header-to-metadata matching look for it.
fn to_metadata(labels: &BTreeMap<String, String>) -> Option<core::Metadata> {
    if labels.is_empty() {
        return None;
    }
    let fields = labels
        .iter()
        .map(|(k, v)| (k.clone(), pbwk::Value { kind: Some(pbwk::value::Kind::StringValue(v.clone())) }))
        .collect();
    let mut md = core::Metadata::default();
    md.filter_metadata.insert("envoy.lb".into(), pbwk::Struct { fields });
    Some(md)
}

/// The load assignment for an EDS cluster, one locality per zone (endpoints
/// without a zone share the empty locality), with a hash of its inputs.
/// The EDS-only path encodes the same message by splicing
/// ([`LoadAssignmentCache`]); the two must group and order alike.
pub fn to_load_assignment(cluster: &str, eps: &[profile::Endpoint]) -> (endpoint::ClusterLoadAssignment, u64) {
    to_load_assignment_in(cluster, eps, &[])
}

/// [`to_load_assignment`] with the cluster's `zone_priority`: each
/// locality's Envoy priority is its zone's place in the list (zones not
/// listed, and endpoints without a zone, after every listed one),
/// renumbered from 0 without gaps over the zones that have endpoints, as
/// Envoy expects.
pub fn to_load_assignment_in(
    cluster: &str,
    eps: &[profile::Endpoint],
    zone_priority: &[String],
) -> (endpoint::ClusterLoadAssignment, u64) {
    let mut sorted: Vec<&profile::Endpoint> = eps.iter().collect();
    sorted.sort_unstable();
    let mut by_zone: BTreeMap<Option<&str>, (Vec<endpoint::LbEndpoint>, u32)> = BTreeMap::new();
    for e in &sorted {
        let (lb_endpoints, weight) = by_zone.entry(e.zone.as_deref()).or_default();
        lb_endpoints.push(to_lb_endpoint(e));
        *weight = weight.saturating_add(e.weight.unwrap_or(1));
    }
    let rank = |zone: Option<&str>| {
        zone.and_then(|z| zone_priority.iter().position(|p| p == z)).unwrap_or(zone_priority.len())
    };
    let ranks: BTreeSet<usize> = by_zone.keys().map(|z| rank(*z)).collect();
    let priority = |zone: Option<&str>| ranks.iter().position(|r| *r == rank(zone)).unwrap_or(0) as u32;
    let cla = endpoint::ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: by_zone
            .into_iter()
            .map(|(zone, (lb_endpoints, weight))| endpoint::LocalityLbEndpoints {
                locality: Some(core::Locality { zone: zone.unwrap_or_default().to_string(), ..Default::default() }),
                lb_endpoints,
                load_balancing_weight: Some(locality_weight(weight)),
                priority: if zone_priority.is_empty() { 0 } else { priority(zone) },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let hash = content_hash(cluster, sorted.iter().map(|e| endpoint_hash(e)));
    // The same endpoints in other priorities are another load assignment.
    let hash = if zone_priority.is_empty() { hash } else { super::snapshot::hash_of((hash, zone_priority)) };
    (cla, hash)
}

/// One endpoint of a load assignment.
/// A probe-marked endpoint says UNHEALTHY; the others say nothing (UNKNOWN,
/// which Envoy takes as healthy).
pub(crate) fn to_lb_endpoint(e: &profile::Endpoint) -> endpoint::LbEndpoint {
    let mut lb = lb_endpoint(socket_address(e.addr.ip(), e.addr.port()), e.weight, to_metadata(&e.metadata));
    if e.unhealthy {
        lb.health_status = core::HealthStatus::Unhealthy as i32;
    }
    lb
}

/// The version-defining hash of a load assignment: its cluster and the
/// hashes of its endpoints (see [`endpoint_hash`]) in sorted order. From the
/// model rather than the encoding, whose metadata maps encode in varying
/// order; per endpoint so the EDS-only path can reuse the hashes of the
/// endpoints that did not change.
pub(crate) fn content_hash(cluster: &str, endpoint_hashes: impl Iterator<Item = u64>) -> u64 {
    let mut h = DefaultHasher::new();
    cluster.hash(&mut h);
    for e in endpoint_hashes {
        h.write_u64(e);
    }
    h.finish()
}

pub(crate) fn endpoint_hash(e: &profile::Endpoint) -> u64 {
    super::snapshot::hash_of(e)
}

#[cfg(test)]
mod tests;
