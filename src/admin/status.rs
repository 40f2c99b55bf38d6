//! The bodies of `/status` and `/config_dump`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::AdminState;
use crate::model::Published;
use crate::model::now_ms;
use crate::profile::watch::ReloadStatus;
use crate::registered::RegisteredEndpoint;
use crate::xds::ResourceType;
use crate::xds::dump::dump_snapshot;
use crate::xds::registry::StreamInfo;

/// What `/config_dump` says about itself.
pub const CONFIG_DUMP_NOTE: &str =
    "devbridge's view: what it serves each proxy. Envoy's own admin /config_dump shows what Envoy applied.";

#[derive(Debug, Clone, Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub file: String,
}

/// One proxy's snapshot versions: the whole and per type.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    pub version: String,
    pub types: BTreeMap<&'static str, String>,
}

/// The body of `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// devbridge's version.
    pub devbridge: &'static str,
    /// The daemon's clock, in milliseconds since the Unix epoch, so clients
    /// compute ages against it.
    pub now_ms: u64,
    pub ready: bool,
    pub profile: ProfileInfo,
    pub reload: ReloadStatus,
    pub proxies: BTreeMap<String, ProxyStatus>,
    /// Registered clusters and their endpoints.
    pub registered: BTreeMap<String, Vec<RegisteredEndpoint>>,
    /// Every connected Envoy (one per ADS stream).
    pub envoys: Vec<StreamInfo>,
    /// Each discovery source's state.
    pub sources: Vec<Value>,
    /// Refusals at the xDS port: TLS handshakes and certificate identities.
    pub refused: Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub tls_handshakes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tls: Option<crate::metrics::TlsRefusal>,
    /// Envoys whose client certificate names another proxy than their node.
    pub identity: u64,
}

pub fn build(state: &AdminState) -> Status {
    let published = state.published.borrow().clone();
    Status {
        devbridge: env!("CARGO_PKG_VERSION"),
        now_ms: now_ms(),
        ready: state.readiness().is_ok(),
        profile: ProfileInfo { name: published.profile.name.clone(), file: published.profile.file.clone() },
        reload: state.reload.borrow().clone(),
        proxies: published
            .snapshots
            .iter()
            .map(|(name, s)| {
                let types = ResourceType::ALL.map(|t| (t.short(), s.resources(t).version.clone())).into();
                (name.clone(), ProxyStatus { version: s.version.clone(), types })
            })
            .collect(),
        registered: state.registry.report(),
        envoys: state.streams.all(),
        sources: state.sources.status(),
        refused: Refused {
            tls_handshakes: state.metrics.tls_refused.load(std::sync::atomic::Ordering::Relaxed),
            last_tls: state.metrics.last_tls_refusal.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            identity: state.metrics.identity_refused.load(std::sync::atomic::Ordering::Relaxed),
        },
    }
}

pub fn config_dump(published: &Published) -> Value {
    let proxies: serde_json::Map<String, Value> =
        published.snapshots.iter().map(|(name, s)| (name.clone(), dump_snapshot(s))).collect();
    json!({
        "note": CONFIG_DUMP_NOTE,
        "profile": published.profile.name,
        "proxies": proxies,
    })
}
