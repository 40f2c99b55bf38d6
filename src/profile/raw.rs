//! The profile file as written: serde structs that mirror the TOML one to one.
//!
//! Every struct rejects unknown keys, and every value that validation may
//! complain about is wrapped in [`Spanned`] so the error can point at it.
//! Nothing here is checked beyond TOML's own types; `validate` does that.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Option<S<String>>,
    pub description: Option<String>,
    pub listen: Option<RawListen>,
    #[serde(default)]
    pub zones: BTreeMap<S<String>, RawZone>,
    #[serde(default)]
    pub proxies: BTreeMap<S<String>, RawProxy>,
    #[serde(default)]
    pub domains: Vec<RawDomain>,
    #[serde(default)]
    pub clusters: BTreeMap<S<String>, RawCluster>,
    pub tracing: Option<S<RawTracing>>,
    pub identity: Option<S<RawIdentity>>,
    #[serde(default)]
    pub overrides: Vec<S<RawOverride>>,
}

/// `[identity]`: the header that carries the developer's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub header: Option<S<String>>,
    pub enabled: Option<bool>,
}

/// `[[overrides]]`: a standing override.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    pub domain: S<String>,
    pub prefix: Option<S<String>>,
    #[serde(default)]
    pub headers: BTreeMap<S<String>, S<String>>,
    pub to: Option<S<String>>,
    pub cluster: Option<S<String>>,
    #[serde(default)]
    pub mirror: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    pub zipkin: S<RawZipkin>,
    pub sampling: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZipkin {
    pub cluster: S<String>,
    pub path: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub xds: Option<S<String>>,
    pub admin: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub zone: S<String>,
    pub node_cluster: Option<S<String>>,
    pub node_id: Option<S<String>>,
    #[serde(default)]
    pub domains: Vec<S<String>>,
    pub listen_address: Option<S<String>>,
    pub admin: Option<S<String>>,
    #[serde(default)]
    pub tcp: Vec<S<RawTcp>>,
    pub kind: Option<S<String>>,
}

/// `[[proxies.NAME.tcp]]`: a local port forwarded to a cluster over TCP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    pub name: S<String>,
    pub port: S<i64>,
    pub cluster: S<String>,
    pub idle_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDomain {
    pub name: S<String>,
    #[serde(default)]
    pub aliases: Vec<S<String>>,
    #[serde(default)]
    pub routes: Vec<S<RawRoute>>,
    pub cors: Option<S<RawCors>>,
}

/// `cors = { allow_origins = [...], ... }` on a domain or a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    #[serde(default)]
    pub allow_origins: Vec<S<String>>,
    #[serde(default)]
    pub allow_methods: Vec<S<String>>,
    #[serde(default)]
    pub allow_headers: Vec<S<String>>,
    #[serde(default)]
    pub expose_headers: Vec<S<String>>,
    pub max_age: Option<S<String>>,
    #[serde(default)]
    pub allow_credentials: bool,
}

/// One `hash_policy` entry: exactly one of `header`, `cookie`, `source_ip`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHashPolicy {
    pub header: Option<S<String>>,
    pub cookie: Option<S<String>>,
    /// With `cookie`: Envoy sets the cookie, for this long, when absent.
    pub ttl: Option<S<String>>,
    pub source_ip: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: Option<S<String>>,
    pub path: Option<S<String>>,
    pub regex: Option<S<String>>,
    #[serde(default)]
    pub headers: Vec<S<RawValueMatch>>,
    #[serde(default)]
    pub query: Vec<S<RawValueMatch>>,
    #[serde(default)]
    pub methods: Vec<S<String>>,

    pub cluster: Option<S<String>>,
    pub weighted_clusters: Option<S<Vec<RawWeighted>>>,
    pub redirect: Option<S<RawRedirect>>,
    pub direct_response: Option<S<RawDirectResponse>>,

    pub timeout: Option<S<String>>,
    pub retries: Option<S<RawRetries>>,
    pub prefix_rewrite: Option<S<String>>,
    pub host_rewrite: Option<S<String>>,
    #[serde(default)]
    pub request_headers_add: BTreeMap<S<String>, S<String>>,
    #[serde(default)]
    pub response_headers_add: BTreeMap<S<String>, S<String>>,
    #[serde(default)]
    pub response_headers_remove: Vec<S<String>>,
    pub cors: Option<S<RawCors>>,
    #[serde(default)]
    pub subset: BTreeMap<S<String>, S<String>>,
    #[serde(default)]
    pub hash_policy: Vec<S<RawHashPolicy>>,
    pub mirror: Option<S<RawMirror>>,
    pub fault: Option<S<RawFault>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub cluster: S<String>,
    pub percent: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub delay: Option<S<String>>,
    pub delay_percent: Option<S<i64>>,
    pub abort: Option<S<i64>>,
    pub abort_percent: Option<S<i64>>,
}

/// A header or query-parameter match: `name` plus exactly one of the rest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValueMatch {
    pub name: S<String>,
    pub exact: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub regex: Option<S<String>>,
    pub present: Option<S<bool>>,
    pub invert: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeighted {
    pub cluster: S<String>,
    pub weight: S<i64>,
    #[serde(default)]
    pub subset: BTreeMap<S<String>, S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    pub count: Option<S<i64>>,
    #[serde(default)]
    pub on: Vec<S<String>>,
    #[serde(default)]
    pub status_codes: Vec<S<i64>>,
    pub per_try_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub host: Option<S<String>>,
    pub path: Option<S<String>>,
    #[serde(default)]
    pub https: bool,
    pub code: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectResponse {
    pub status: S<i64>,
    pub body: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(rename = "static")]
    pub static_: Option<S<RawStatic>>,
    pub dns: Option<S<RawDns>>,
    pub kubernetes: Option<S<RawKubernetes>>,
    pub registered: Option<S<RawRegistered>>,
    pub kubernetes_service: Option<S<RawKubernetesService>>,
    pub lb: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    #[serde(default)]
    pub http2: bool,
    pub health_check: Option<S<RawHealthCheck>>,
    pub circuit_breakers: Option<S<RawCircuitBreakers>>,
    pub tls: Option<S<RawTls>>,
    pub probe: Option<S<RawProbe>>,
    pub outlier_detection: Option<S<RawOutlierDetection>>,
    #[serde(default)]
    pub zone_priority: Vec<S<String>>,
    pub subset_fallback: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlierDetection {
    pub consecutive_5xx: Option<S<i64>>,
    pub consecutive_gateway_failure: Option<S<i64>>,
    pub interval: Option<S<String>>,
    pub base_ejection_time: Option<S<String>>,
    pub max_ejection_percent: Option<S<i64>>,
}

/// `probe = false`, `probe = "tcp"`, or `probe = { path = "/healthz", .. }`.
/// Read by hand rather than `untagged`: serde's untagged enums buffer the
/// value and lose the spans (and the unknown key's name) inside the table.
#[derive(Debug)]
pub enum RawProbe {
    On(bool),
    Kind(String),
    Http(RawProbeHttp),
}

impl<'de> Deserialize<'de> for RawProbe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawProbe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("false, \"tcp\" or a table { path, host, interval, timeout }")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawProbe, E> {
                Ok(RawProbe::On(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawProbe, E> {
                Ok(RawProbe::Kind(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawProbe, A::Error> {
                RawProbeHttp::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(RawProbe::Http)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbeHttp {
    pub path: Option<S<String>>,
    pub host: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    #[serde(default)]
    pub endpoints: Vec<S<RawEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub address: S<String>,
    pub zone: Option<S<String>>,
    pub weight: Option<S<i64>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub hosts: Vec<S<String>>,
    pub lookup: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    pub kubeconfig: Option<S<String>>,
    pub context: Option<S<String>>,
    pub namespace: Option<S<String>>,
    #[serde(default)]
    pub namespaces: Vec<S<String>>,
    pub selector: S<String>,
    pub field_selector: Option<S<String>>,
    pub port: S<RawPort>,
    pub address: Option<S<String>>,
    pub host_network: Option<bool>,
    pub node_zones: Option<bool>,
}

/// A Service's endpoints, read from its `discovery.k8s.io/v1` EndpointSlices.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesService {
    pub kubeconfig: Option<S<String>>,
    pub context: Option<S<String>>,
    pub namespace: Option<S<String>>,
    pub service: S<String>,
    pub port: S<RawPort>,
}

/// Endpoints set at run time through the admin API; the table has no keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistered {}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPort {
    Number(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Option<S<String>>,
    /// `tcp = true`: check by opening a connection (no path).
    pub tcp: Option<S<bool>>,
    pub host: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub healthy_threshold: Option<S<i64>>,
    pub unhealthy_threshold: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreakers {
    pub max_connections: Option<S<i64>>,
    pub max_pending_requests: Option<S<i64>>,
    pub max_requests: Option<S<i64>>,
    pub max_retries: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub sni: Option<S<String>>,
    pub ca_file: Option<S<String>>,
}
