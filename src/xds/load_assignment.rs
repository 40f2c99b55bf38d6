//! Load assignments: the model's endpoints as `ClusterLoadAssignment`s.
//!
//! Two encoders that must group and order alike live here together.
//! [`to_load_assignment`] builds the message (full translation).
//! [`LoadAssignmentCache`] serves the EDS-only path: a pod event changes one
//! endpoint, but building a `ClusterLoadAssignment` of 10,000 endpoints as a
//! message and encoding it took most of 10 ms. Endpoint lists come in shared
//! chunks ([`Endpoints`]), and a list with one endpoint changed shares all
//! its chunks but one with the list before it. The cache keeps, per
//! cluster, each chunk of its last build encoded (per zone, the chunk's
//! `LbEndpoint` entries with their weight and hash); the next build encodes
//! only the chunks it has not seen, by address. The load assignment is then
//! spliced from those bytes: a protobuf message's encoding is the
//! concatenation of its fields' encodings, and a repeated message field is,
//! per element, its key, its length as a varint and its bytes. Fields go in
//! the order prost writes them, so the result decodes to exactly what
//! [`to_load_assignment`] builds (and, without multi-entry metadata maps, is
//! byte for byte its encoding). The content hash is the same one, computed
//! from the model: a sum of per-endpoint hashes, kept per chunk.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::google::protobuf as pbwk;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::snapshot::Resource;
use super::{socket_address, u32v};
use crate::model::endpoints::Chunk;
use crate::model::{self as profile, Endpoint, Endpoints, Profile};

// Field numbers from envoy/config/endpoint/v3/endpoint.proto and
// endpoint_components.proto.
const CLUSTER_NAME: u32 = 1; // ClusterLoadAssignment.cluster_name
const ENDPOINTS: u32 = 2; // ClusterLoadAssignment.endpoints
const LB_ENDPOINTS: u32 = 2; // LocalityLbEndpoints.lb_endpoints

/// Per cluster, the encoding of each chunk of its last build, in order; the
/// next build finds them by the chunk's address. Bounded: a build keeps only the chunks it used, and
/// [`retain`](Self::retain) drops the clusters no longer discovered.
#[derive(Debug, Default)]
pub struct LoadAssignmentCache {
    clusters: HashMap<String, Vec<Packed>>,
}

/// One chunk's endpoints encoded: per zone, in zone order, their
/// `LbEndpoint`s as entries of `lb_endpoints` (key, length, bytes) with
/// their weight, and the chunk's share of the content hash.
#[derive(Debug)]
struct Packed {
    /// Held, so that no other chunk gets its address while it is cached;
    /// its address is its key.
    chunk: Chunk,
    zones: Vec<ZonePart>,
    hash: u64,
}

#[derive(Debug)]
struct ZonePart {
    zone: Option<String>,
    entries: Vec<u8>,
    weight: u32,
}

impl Packed {
    fn new(chunk: &Chunk) -> Self {
        let mut zones: BTreeMap<Option<&str>, (Vec<u8>, u32)> = BTreeMap::new();
        let mut hash = 0u64;
        for e in chunk.iter() {
            let (entries, weight) = zones.entry(e.zone.as_deref()).or_default();
            let lb = to_lb_endpoint(e);
            put_header(LB_ENDPOINTS, lb.encoded_len(), entries);
            lb.encode(entries).expect("a Vec grows as needed");
            *weight = weight.saturating_add(e.weight.unwrap_or(1));
            hash = hash.wrapping_add(endpoint_hash(e));
        }
        let zones = zones
            .into_iter()
            .map(|(zone, (entries, weight))| ZonePart { zone: zone.map(str::to_string), entries, weight })
            .collect();
        Self { chunk: chunk.clone(), zones, hash }
    }
}

/// A chunk's key in the cache: its address.
fn address(chunk: &Chunk) -> usize {
    Arc::as_ptr(chunk) as *const Endpoint as usize
}

impl LoadAssignmentCache {
    /// The load assignment of `cluster`, packed: the resource
    /// `Resource::with_content_hash(to_load_assignment(cluster, eps))` would
    /// be. Chunks of `eps` that the last build had are not encoded again.
    pub fn to_resource(&mut self, cluster: &str, eps: &Endpoints) -> Resource {
        let mut previous: HashMap<usize, Packed> =
            self.clusters.remove(cluster).into_iter().flatten().map(|p| (address(&p.chunk), p)).collect();
        let packed: Vec<Packed> =
            eps.chunks().iter().map(|c| previous.remove(&address(c)).unwrap_or_else(|| Packed::new(c))).collect();
        let sum = packed.iter().fold(0u64, |sum, p| sum.wrapping_add(p.hash));
        let hash = content_hash(cluster, eps.len(), sum);
        let value = splice(cluster, &packed);
        self.clusters.insert(cluster.to_string(), packed);
        Resource::from_encoded::<endpoint::ClusterLoadAssignment>(cluster, value, hash)
    }

    /// Drops the clusters for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.clusters.retain(|c, _| keep(c));
    }
}

/// The encoded `ClusterLoadAssignment`: one locality per zone in zone order
/// (endpoints without a zone first), each holding its endpoints in sorted
/// order, as `to_load_assignment` groups them: the chunks in order, and in
/// each chunk the entries of that zone.
fn splice(cluster: &str, chunks: &[Packed]) -> Vec<u8> {
    let mut by_zone: BTreeMap<Option<&str>, (Vec<&[u8]>, u32)> = BTreeMap::new();
    for part in chunks.iter().flat_map(|p| &p.zones) {
        let (entries, weight) = by_zone.entry(part.zone.as_deref()).or_default();
        entries.push(&part.entries);
        *weight = weight.saturating_add(part.weight);
    }
    let localities: Vec<Locality> = by_zone
        .into_iter()
        .map(|(zone, (entries, weight))| {
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
            let len = head.len() + entries.iter().map(|b| b.len()).sum::<usize>() + tail.len();
            Locality { head, entries, tail, len }
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
    for Locality { head, entries, tail, len } in localities {
        put_header(ENDPOINTS, len, &mut out);
        out.extend_from_slice(&head);
        for bytes in entries {
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&tail);
    }
    debug_assert_eq!(out.len(), total, "the lengths computed match what was written");
    out
}

/// One `LocalityLbEndpoints` in pieces: its encoding before the endpoints,
/// the endpoints' entries (each chunk's run of them), its encoding after
/// them, and the length of the whole.
struct Locality<'a> {
    head: Vec<u8>,
    entries: Vec<&'a [u8]>,
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
pub type Lookup<'a> = dyn Fn(&str) -> Option<&'a Endpoints> + 'a;

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
    let none = Endpoints::default();
    used.into_values()
        .filter(|c| changed.contains(&c.name))
        .filter(|c| matches!(c.source, profile::Source::Kubernetes(_) | profile::Source::KubernetesService(_)))
        .map(|c| {
            let eps = discovered(&c.name).unwrap_or(&none);
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
pub fn to_load_assignment<'a>(
    cluster: &str,
    eps: impl IntoIterator<Item = &'a profile::Endpoint>,
) -> (endpoint::ClusterLoadAssignment, u64) {
    to_load_assignment_in(cluster, eps, &[])
}

/// [`to_load_assignment`] with the cluster's `zone_priority`: each
/// locality's Envoy priority is its zone's place in the list (zones not
/// listed, and endpoints without a zone, after every listed one),
/// renumbered from 0 without gaps over the zones that have endpoints, as
/// Envoy expects.
pub fn to_load_assignment_in<'a>(
    cluster: &str,
    eps: impl IntoIterator<Item = &'a profile::Endpoint>,
    zone_priority: &[String],
) -> (endpoint::ClusterLoadAssignment, u64) {
    let mut sorted: Vec<&profile::Endpoint> = eps.into_iter().collect();
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
    let sum = sorted.iter().fold(0u64, |sum, e| sum.wrapping_add(endpoint_hash(e)));
    let hash = content_hash(cluster, sorted.len(), sum);
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

/// The version-defining hash of a load assignment: its cluster, how many
/// endpoints it has and the sum of their hashes (see [`endpoint_hash`]).
/// From the model rather than the encoding, whose metadata maps encode in
/// varying order. A sum, which does not depend on how the endpoints are
/// grouped, so the EDS-only path adds up the sums it kept per chunk, and
/// the full build, the same endpoints one by one, to the same hash. (A
/// load assignment's endpoints are a set: their order is not content.)
pub(crate) fn content_hash(cluster: &str, count: usize, endpoint_hash_sum: u64) -> u64 {
    let mut h = DefaultHasher::new();
    cluster.hash(&mut h);
    h.write_usize(count);
    h.write_u64(endpoint_hash_sum);
    h.finish()
}

pub(crate) fn endpoint_hash(e: &profile::Endpoint) -> u64 {
    super::snapshot::hash_of(e)
}

#[cfg(test)]
mod tests;
