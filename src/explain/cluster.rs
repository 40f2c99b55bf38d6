//! The run-time half of an explanation: a cluster's endpoints and where
//! they come from, the sources that fill it, and what the proxy's Envoys
//! acknowledged. Pure: the admin server fills [`Live`] from its state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Cluster, Endpoint, EndpointSet, LbPolicy, PortRef, Proxy, Source};

/// What a running daemon knows beyond the profile. `Live::default()` is a
/// profile alone: no endpoints found at run time, no Envoys.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Whether this is a daemon's state.
    pub daemon: bool,
    pub discovered: EndpointSet,
    pub registered: EndpointSet,
    pub sources: Vec<SourceInfo>,
    /// Per proxy: the snapshot version and each type's (`LDS`, `RDS`, `CDS`, `EDS`).
    pub snapshots: BTreeMap<String, (String, BTreeMap<String, String>)>,
    pub envoys: Vec<EnvoyStream>,
}

/// One discovery source (a Kubernetes watch), as the explanation shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceInfo {
    pub name: String,
    pub clusters: Vec<String>,
    /// `connecting`, `connected` or `degraded`.
    pub state: String,
    pub error: Option<String>,
    /// How old the endpoints served may be; `None` before the first list.
    pub data_age_ms: Option<u64>,
    /// Pods skipped: (cluster, `namespace/name`, why).
    pub skipped: Vec<(String, String, String)>,
}

/// One connected Envoy's ADS stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvoyStream {
    pub stream: u64,
    pub node_id: String,
    pub peer: Option<String>,
    pub proxy: Option<String>,
    /// Per type short name (`RDS`, ...).
    pub types: BTreeMap<String, StreamType>,
}

/// One type on one stream: the last version acknowledged, and the last NACK.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamType {
    pub acked: Option<String>,
    /// (version, Envoy's text).
    pub nack: Option<(String, String)>,
}

/// What the proxy is served now, and what each of its Envoys made of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Served {
    pub version: String,
    pub envoys: Vec<EnvoyAck>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvoyAck {
    pub stream: u64,
    pub node_id: String,
    pub peer: Option<String>,
    /// `acked` (every type at the version served), `pending` or `nacked`.
    pub state: String,
    pub types: Vec<TypeAck>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TypeAck {
    /// `LDS`, `RDS`, `CDS`, `EDS`.
    pub kind: String,
    pub served: String,
    pub acked: Option<String>,
    /// Envoy's text, when it rejected the version served.
    pub nack: Option<String>,
}

/// One cluster the request is sent to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterReport {
    pub name: String,
    /// `static`, `dns`, `kubernetes`, `kubernetes_service` or `registered`.
    pub source: String,
    /// The source in words, e.g. `pods "app=edge-envoy" in edge via context staging, port http`.
    pub source_detail: String,
    /// Load balancing, connect timeout, health check, circuit breakers, TLS.
    pub policy: Vec<String>,
    /// `None` when not known here (found at run time, and no daemon asked).
    pub endpoints: Option<Vec<EndpointReport>>,
    /// The discovery sources that fill it.
    pub sources: Vec<SourceInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointReport {
    pub address: String,
    pub zone: Option<String>,
    pub weight: Option<u32>,
    /// `static` (the profile), `dns` (Envoy resolves it), `discovered` or `registered`.
    pub origin: String,
    pub metadata: BTreeMap<String, String>,
}

impl EndpointReport {
    /// `e` as `explain` and the status page's view show it, from `origin`.
    pub fn of(e: &Endpoint, origin: &str) -> Self {
        Self {
            address: e.addr.to_string(),
            zone: e.zone.clone(),
            weight: e.weight,
            origin: origin.to_string(),
            metadata: (*e.metadata).clone(),
        }
    }
}

impl Live {
    pub fn is_live(&self) -> bool {
        self.daemon
    }

    /// The proxy's served versions and each of its Envoys' acknowledgements.
    pub fn served(&self, proxy: &Proxy) -> Option<Served> {
        let (version, types) = self.snapshots.get(&proxy.name)?;
        let envoys = self
            .envoys
            .iter()
            .filter(|e| e.proxy.as_deref() == Some(proxy.name.as_str()))
            .map(|e| {
                // A type the Envoy never asked for (EDS without EDS clusters) is not waited on.
                let types: Vec<TypeAck> = types
                    .iter()
                    .filter(|(kind, _)| e.types.contains_key(*kind) || e.types.is_empty())
                    .map(|(kind, served)| {
                        let StreamType { acked, nack } = e.types.get(kind).cloned().unwrap_or_default();
                        let nack = nack.filter(|(v, _)| v == served).map(|(_, text)| text);
                        TypeAck { kind: kind.clone(), served: served.clone(), acked, nack }
                    })
                    .collect();
                let state = if types.iter().any(|t| t.nack.is_some()) {
                    "nacked"
                } else if types.iter().all(|t| t.acked.as_ref() == Some(&t.served)) {
                    "acked"
                } else {
                    "pending"
                };
                EnvoyAck {
                    stream: e.stream,
                    node_id: e.node_id.clone(),
                    peer: e.peer.clone(),
                    state: state.to_string(),
                    types,
                }
            })
            .collect();
        Some(Served { version: version.clone(), envoys })
    }

    /// A cluster's source, policy and endpoints, as far as known here.
    pub fn cluster_report(&self, c: &Cluster) -> ClusterReport {
        let runtime = |origin: &str, set: &EndpointSet| {
            set.get(&c.name).map(|eps| eps.iter().map(|e| EndpointReport::of(e, origin)).collect::<Vec<_>>())
        };
        // Registered endpoints win over discovered ones, as in what is served.
        let found = || runtime("registered", &self.registered).or_else(|| runtime("discovered", &self.discovered));
        let endpoints = match &c.source {
            Source::Static(eps) => Some(eps.iter().map(|e| EndpointReport::of(e, "static")).collect()),
            Source::Dns { hosts, .. } => Some(
                hosts
                    .iter()
                    .map(|(h, p)| EndpointReport {
                        address: format!("{h}:{p}"),
                        origin: "dns".into(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            _ if self.daemon => Some(found().unwrap_or_default()),
            _ => None,
        };
        let sources = self
            .sources
            .iter()
            .filter(|s| s.clusters.contains(&c.name))
            .map(|s| SourceInfo {
                skipped: s.skipped.iter().filter(|(cl, _, _)| cl == &c.name).cloned().collect(),
                ..s.clone()
            })
            .collect();
        ClusterReport {
            name: c.name.clone(),
            source: c.source.kind().to_string(),
            source_detail: source_detail(&c.source),
            policy: policy(c),
            endpoints,
            sources,
        }
    }
}

/// A source in words.
pub fn source_detail(s: &Source) -> String {
    let port = |p: &PortRef| match p {
        PortRef::Number(n) => n.to_string(),
        PortRef::Name(n) => n.clone(),
    };
    let via = |kubeconfig: &Option<String>, context: &Option<String>| {
        let mut v = String::new();
        if let Some(c) = context {
            v.push_str(&format!(" via context {c}"));
        }
        if let Some(k) = kubeconfig {
            v.push_str(&format!(" ({k})"));
        }
        v
    };
    match s {
        Source::Static(eps) if eps.len() == 1 => "1 endpoint in the profile".to_string(),
        Source::Static(eps) => format!("{} endpoints in the profile", eps.len()),
        Source::Dns { hosts, .. } => format!(
            "names Envoy resolves: {}",
            hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(", ")
        ),
        Source::Kubernetes(k) => format!(
            "pods {:?} in {}{}, port {}{}",
            k.selector,
            k.namespaces.join(","),
            via(&k.kubeconfig, &k.context),
            port(&k.port),
            if k.host_network { ", hostNetwork" } else { "" }
        ),
        Source::KubernetesService(k) => {
            format!("service {}/{}{}, port {}", k.namespace, k.service, via(&k.kubeconfig, &k.context), port(&k.port))
        }
        Source::Registered => "endpoints set through the admin API (PUT /v1/clusters/NAME/endpoints)".to_string(),
    }
}

/// A cluster's policy in words, one item each.
pub fn policy(c: &Cluster) -> Vec<String> {
    let lb = match c.lb {
        LbPolicy::RoundRobin => "round robin",
        LbPolicy::LeastRequest => "least request",
        LbPolicy::Random => "random",
        LbPolicy::RingHash => "ring hash",
        LbPolicy::Maglev => "maglev",
    };
    let mut out = vec![lb.to_string(), format!("connect timeout {}", humantime::format_duration(c.connect_timeout))];
    if c.http2 {
        out.push("HTTP/2".into());
    }
    if let Some(h) = &c.health_check {
        let what = h.path.as_deref().map_or_else(|| "tcp connect".to_string(), |p| format!("GET {p}"));
        out.push(format!("health check {what} every {}", humantime::format_duration(h.interval)));
    }
    if let Some(b) = &c.circuit_breakers {
        let limits: Vec<String> = [
            ("connections", b.max_connections),
            ("pending", b.max_pending_requests),
            ("requests", b.max_requests),
            ("retries", b.max_retries),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
        .collect();
        out.push(format!("circuit breakers: {}", limits.join(", ")));
    }
    if let Some(t) = &c.tls {
        out.push(match &t.sni {
            Some(sni) => format!("TLS (SNI {sni})"),
            None => "TLS".to_string(),
        });
    }
    if let Some(o) = &c.outlier_detection {
        let d = |d: Option<std::time::Duration>| d.map(|d| humantime::format_duration(d).to_string());
        let parts: Vec<String> = [
            o.consecutive_5xx.map(|n| format!("{n} 5xx in a row")),
            o.consecutive_gateway_failure.map(|n| format!("{n} gateway errors in a row")),
            d(o.interval).map(|i| format!("every {i}")),
            d(o.base_ejection_time).map(|t| format!("for {t}")),
            o.max_ejection_percent.map(|p| format!("at most {p}%")),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.push(if parts.is_empty() {
            "outlier detection (Envoy's defaults)".to_string()
        } else {
            format!("outlier detection: {}", parts.join(", "))
        });
    }
    if !c.zone_priority.is_empty() {
        out.push(format!("zones in order: {}, then the rest", c.zone_priority.join(" > ")));
    }
    if !c.subset_keys.is_empty() {
        let keys: Vec<String> = c.subset_keys.iter().map(|k| k.join("+")).collect();
        let fallback = match c.subset_fallback {
            crate::model::SubsetFallback::Any => "else any endpoint",
            crate::model::SubsetFallback::NoEndpoint => "else none (503)",
        };
        out.push(format!("subsets by {} ({fallback})", keys.join(", ")));
    }
    out
}
