//! Load assignments for the EDS-only path, encoded by reusing the bytes of
//! every endpoint that did not change.
//!
//! A pod event changes one endpoint, but building a `ClusterLoadAssignment`
//! of 10,000 endpoints as a message and encoding it took most of 10 ms.
//! [`LoadAssignmentCache`] keeps, per cluster, the endpoints of its last
//! build in sorted order, each with its encoded `LbEndpoint`; the next build
//! walks the new sorted list along it and encodes only the endpoints it
//! lacks. The load assignment is then spliced from those bytes: a protobuf
//! message's encoding is the concatenation of its fields' encodings, and a
//! repeated message field is, per element, its key, its length as a varint
//! and its bytes. Fields go in the order prost writes them, so the result
//! decodes to exactly what [`to_load_assignment`] builds (and, without
//! multi-entry metadata maps, is byte for byte its encoding). The content
//! hash is the same one, computed from the model: it combines per-endpoint
//! hashes, which are kept along with the encodings.
//!
//! [`to_load_assignment`]: super::translate::to_load_assignment

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::snapshot::Resource;
use super::translate::{content_hash, endpoint_hash, to_lb_endpoint};
use crate::profile::Endpoint;

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

impl LoadAssignmentCache {
    /// The load assignment of `cluster`, packed: the resource
    /// `Resource::with_content_hash(to_load_assignment(cluster, eps))` would be.
    pub fn to_resource(&mut self, cluster: &str, eps: &[Endpoint]) -> Resource {
        let mut sorted: Vec<&Endpoint> = eps.iter().collect();
        sorted.sort();
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
        let mut previous = self.clusters.remove(cluster).unwrap_or_default().into_iter().peekable();
        sorted
            .iter()
            .map(|&e| {
                // Both lists are sorted, so one pass along the old one finds
                // every endpoint it has.
                while previous.next_if(|p| p.endpoint < *e).is_some() {}
                previous.next_if(|p| p.endpoint == *e).unwrap_or_else(|| Encoded {
                    endpoint: e.clone(),
                    hash: endpoint_hash(e),
                    bytes: to_lb_endpoint(e).encode_to_vec(),
                })
            })
            .collect()
    }
}

/// The encoded `ClusterLoadAssignment`: one locality per zone in zone order
/// (endpoints without a zone first), each holding its endpoints in sorted
/// order, as `to_load_assignment` groups them.
fn splice(cluster: &str, endpoints: &[Encoded]) -> Vec<u8> {
    let mut by_zone: BTreeMap<Option<&str>, Vec<&[u8]>> = BTreeMap::new();
    for e in endpoints {
        by_zone.entry(e.endpoint.zone.as_deref()).or_default().push(&e.bytes);
    }
    let localities: Vec<Locality> = by_zone
        .into_iter()
        .map(|(zone, lb_endpoints)| {
            // The locality comes before the endpoints in prost's field order.
            let head = endpoint::LocalityLbEndpoints {
                locality: zone.map(|z| core::Locality { zone: z.to_string(), ..Default::default() }),
                ..Default::default()
            }
            .encode_to_vec();
            let len = head.len() + lb_endpoints.iter().map(|b| field_len(LB_ENDPOINTS, b.len())).sum::<usize>();
            Locality { head, lb_endpoints, len }
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
    for Locality { head, lb_endpoints, len } in localities {
        put_header(ENDPOINTS, len, &mut out);
        out.extend_from_slice(&head);
        for bytes in lb_endpoints {
            put_header(LB_ENDPOINTS, bytes.len(), &mut out);
            out.extend_from_slice(bytes);
        }
    }
    debug_assert_eq!(out.len(), total, "the lengths computed match what was written");
    out
}

/// One `LocalityLbEndpoints` in pieces: its encoding without the endpoints,
/// the endpoints' encodings, and the length of the whole.
struct Locality<'a> {
    head: Vec<u8>,
    lb_endpoints: Vec<&'a [u8]>,
    len: usize,
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

#[cfg(test)]
mod tests;
