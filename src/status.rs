//! `/status`: the one schema the admin server writes and `devbridge status`
//! reads. Every struct defaults each field it lacks, so a `status` of one
//! version reads a daemon of another.
//!
//! [`client`] fetches it; [`render`](mod@render) shows it to people.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::TlsRefusal;
use crate::profile::watch::ReloadStatus;
use crate::registered::RegisteredEndpoint;
use crate::xds::registry::StreamInfo;

pub mod client;
pub mod render;

pub use client::{DEFAULT_TIMEOUT, EXIT_NOT_READY, StatusError, exit_code, fetch, parse};
pub use render::{ago, render};

/// The body of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// devbridge's version.
    pub devbridge: String,
    /// The daemon's clock, in milliseconds since the Unix epoch, so clients
    /// compute ages against it.
    pub now_ms: u64,
    pub ready: bool,
    pub profile: Option<ProfileInfo>,
    pub reload: ReloadStatus,
    pub proxies: BTreeMap<String, ProxyStatus>,
    /// Registered clusters and their endpoints.
    pub registered: BTreeMap<String, Vec<RegisteredEndpoint>>,
    /// Every connected Envoy (one per ADS stream).
    pub envoys: Vec<StreamInfo>,
    /// Envoys polling over REST, heard from in the last minute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest_clients: Vec<StreamInfo>,
    /// Each discovery source's state.
    pub sources: Vec<SourceReport>,
    /// Refusals at the xDS port: TLS handshakes and certificate identities.
    pub refused: Refused,
    /// Where the daemon listens, so a client can say which daemon it asked.
    pub listen: ListenInfo,
    /// What the laptop's probes find, per probed cluster (`probe.rs`).
    pub probes: BTreeMap<String, ClusterProbes>,
    /// The last events (reloads, NACKs, discovery and probe changes),
    /// oldest first; the status page shows them.
    pub events: Vec<Event>,
    /// Overrides in force: run-time ones newest first, then the profile's.
    pub overrides: Vec<crate::overrides::OverrideReport>,
    /// The identity header every request carries, and its value, when one is sent.
    pub identity: Option<(String, String)>,
}

/// The daemon's listeners.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenInfo {
    /// The xDS address (`host:port`), or `unix:PATH`.
    pub xds: String,
    pub admin: String,
    pub pid: u32,
}

/// One cluster's endpoints as the laptop's probes see them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterProbes {
    /// `tcp connect`, or `http GET /healthz`.
    pub kind: String,
    /// Endpoints the cluster has now.
    pub endpoints: usize,
    /// Of them, probed at least once and last found reachable / unreachable.
    pub reachable: usize,
    pub unreachable: usize,
    /// Why not every endpoint is probed each round (rotation over a large
    /// set), or why probe results did not change what Envoy is told.
    pub note: Option<String>,
    /// One line in words, e.g. `healthy: 3/3 reachable`.
    pub summary: String,
    /// Per endpoint, in the cluster's order (at most the ones probed).
    pub results: Vec<EndpointProbe>,
}

/// One endpoint's last probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointProbe {
    pub address: String,
    pub zone: Option<String>,
    pub state: ProbeState,
    /// The last probe's latency, when it answered.
    pub latency_ms: Option<f64>,
    /// Why the last probe failed.
    pub error: Option<String>,
    /// When the current state began, and when the last probe ended (ms since the epoch).
    pub since_ms: Option<u64>,
    pub last_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    /// Not probed yet.
    #[default]
    Unknown,
    Reachable,
    Unreachable,
}

/// Something that happened, for the status page and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    pub at_ms: u64,
    /// `start`, `reload`, `reload_failed`, `envoy`, `ack`, `nack`, `discovery`, `endpoints`, `probe` (`events::diff::Kind`).
    pub kind: String,
    /// One line for people, e.g. `reload: route added: demo.example.com /api -> api`.
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileInfo {
    pub name: String,
    pub file: String,
}

/// One proxy's snapshot versions: the whole and per type (`CDS`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyStatus {
    pub version: String,
    pub types: BTreeMap<String, String>,
    /// The proxy's TCP services, in profile order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<crate::explain::TcpServiceReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Refused {
    pub tls_handshakes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tls: Option<TlsRefusal>,
    /// Envoys whose client certificate names another proxy than their node.
    pub identity: u64,
}

/// One discovery source (a Kubernetes watch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceReport {
    /// E.g. `pods "app=edge-envoy" in edge via context staging`.
    pub name: String,
    /// The API server's address, once a client exists.
    pub server: Option<String>,
    /// The clusters this watch fills.
    pub clusters: Vec<String>,
    pub state: SourceState,
    /// When the state began, in milliseconds since the Unix epoch.
    pub since_ms: Option<u64>,
    /// Why reading fails, while degraded.
    pub error: Option<String>,
    /// Whether any list has completed: without one, there is no data at all.
    pub synced: bool,
    pub last_event_ms: Option<u64>,
    /// How old the served data may be; `None` before the first list.
    pub data_age_ms: Option<u64>,
    /// Objects held (pods, EndpointSlices or nodes).
    pub seen: usize,
    /// Objects that gave at least one cluster an endpoint.
    pub selected: usize,
    /// Every pod (or slice endpoint) a cluster skipped, and why.
    pub skipped: Vec<SkippedReport>,
    /// The state in words, API server and probes together: the line a user
    /// sees first, e.g. `API server unreachable (VPN down?)`, `3 edges
    /// listed, 0 reachable (VPN or firewall?)`, `healthy: 3/3 reachable`.
    pub summary: String,
}

/// A source's state as `/status` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    #[default]
    Connecting,
    Connected,
    /// Reading fails; the last known endpoints keep being served.
    Degraded,
    /// A state this version does not know (from a newer daemon).
    #[serde(other)]
    Unknown,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Degraded => "degraded",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SkippedReport {
    pub cluster: String,
    /// `namespace/name` of the pod.
    pub object: String,
    pub reason: String,
}

#[cfg(test)]
mod tests;
