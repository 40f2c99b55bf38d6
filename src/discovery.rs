//! Endpoints found at run time, per cluster.
//!
//! Static clusters carry their endpoints in the profile; every other EDS
//! cluster (the `kubernetes` source) is filled from here. Until discovery
//! reports a cluster, it has no endpoints: Envoy answers 503 "no healthy
//! upstream" for it, which is the truth.

use std::collections::BTreeMap;

use crate::profile::Endpoint;

/// Discovered endpoints by cluster name.
pub type DiscoveredEndpoints = BTreeMap<String, Vec<Endpoint>>;
