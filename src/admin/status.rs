//! The bodies of `/status` and `/config_dump`.

use serde_json::{Value, json};

use super::AdminState;
use crate::explain::TcpServiceReport;
use crate::model::Published;
use crate::model::now_ms;
use crate::status::{ProfileInfo, ProxyStatus, Refused, Status};
use crate::xds::ResourceType;
use crate::xds::dump::dump_snapshot;

/// What `/config_dump` says about itself.
pub const CONFIG_DUMP_NOTE: &str = "devbridge's view: what it serves each proxy, in the layout and JSON of Envoy's own admin /config_dump, which shows what Envoy applied.";

pub fn build(state: &AdminState) -> Status {
    let published = state.published.borrow().clone();
    let probes = state.probes.borrow().clone();
    let mut sources = state.sources.status();
    for s in &mut sources {
        s.summary = crate::probe::report::source_summary(s, &published.profile, &probes);
    }
    Status {
        devbridge: env!("CARGO_PKG_VERSION").to_string(),
        now_ms: now_ms(),
        ready: state.readiness().is_ok(),
        profile: Some(ProfileInfo { name: published.profile.name.clone(), file: published.profile.file.clone() }),
        reload: state.reload.borrow().clone(),
        proxies: published
            .snapshots
            .iter()
            .map(|(name, s)| {
                let types = ResourceType::ALL.map(|t| (t.short().to_string(), s.resources(t).version.clone())).into();
                let tcp = published.profile.proxies.get(name).map(TcpServiceReport::of).unwrap_or_default();
                (name.clone(), ProxyStatus { version: s.version.clone(), types, tcp })
            })
            .collect(),
        registered: state.registry.report(),
        envoys: state.streams.all(),
        rest_clients: state.rest.all(crate::model::now_ms()),
        sources,
        probes: probes.clusters.clone(),
        refused: Refused {
            tls_handshakes: state.metrics.tls_refused.load(std::sync::atomic::Ordering::Relaxed),
            last_tls: state.metrics.last_tls_refusal.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            identity: state.metrics.identity_refused.load(std::sync::atomic::Ordering::Relaxed),
        },
        listen: state.listen.clone(),
        events: state.events.borrow().last(crate::events::SHOWN),
        overrides: state.overrides.list(),
        identity: published.profile.domains.values().find_map(|d| d.headers_if_absent.first().cloned()),
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
