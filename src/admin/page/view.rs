//! `GET /v1/view`: what is served, as the status page draws it: each proxy
//! -> its domains -> routes -> clusters -> endpoints. Pure: built from
//! [`Published`] alone (the profile in force and the endpoint sets it
//! was built from).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::explain::cluster::{EndpointReport, source_detail};
use crate::explain::{describe_action, describe_match};
use crate::model::{Cluster, Published, RouteAction, Source};

pub const PATH: &str = "/v1/view";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct View {
    pub profile: String,
    pub file: String,
    pub proxies: Vec<ProxyView>,
    /// Every cluster a proxy's routes use, by name.
    pub clusters: BTreeMap<String, ClusterView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyView {
    pub name: String,
    pub zone: String,
    /// The `node.cluster` an Envoy states to be this proxy.
    pub node_cluster: String,
    /// The snapshot version served (what `/status` envoys ACK).
    pub version: String,
    pub domains: Vec<DomainView>,
    /// TCP services: a local port forwarded to a cluster.
    pub tcp: Vec<crate::explain::TcpServiceReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DomainView {
    /// `host:port`.
    pub name: String,
    pub aliases: Vec<String>,
    /// In the order Envoy tries them.
    pub routes: Vec<RouteView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteView {
    /// E.g. `prefix /api, header x-dev = canary`.
    pub matcher: String,
    /// E.g. `cluster edge`, `direct response 200`.
    pub action: String,
    /// The clusters it sends to (none for a redirect or direct response).
    pub clusters: Vec<String>,
    /// The override this route stands for, when it is one.
    pub override_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterView {
    /// `static`, `dns`, `kubernetes`, `kubernetes_service`, `registered`.
    pub source: String,
    /// The source in words.
    pub detail: String,
    /// What is served; for `dns`, the names Envoy resolves.
    pub endpoints: Vec<EndpointReport>,
}

pub fn build(p: &Published) -> View {
    let profile = &p.profile;
    let proxies = profile
        .proxies
        .values()
        .map(|proxy| ProxyView {
            name: proxy.name.clone(),
            zone: proxy.zone.clone(),
            node_cluster: proxy.node_cluster.clone(),
            version: p.snapshots.get(&proxy.name).map(|s| s.version.clone()).unwrap_or_default(),
            domains: proxy
                .domains
                .iter()
                .filter_map(|d| profile.domains.get(d))
                .map(|d| DomainView {
                    name: d.name.clone(),
                    aliases: d.aliases.clone(),
                    routes: d
                        .routes
                        .iter()
                        .map(|r| RouteView {
                            matcher: describe_match(r),
                            action: describe_action(&r.action),
                            clusters: match &r.action {
                                RouteAction::Forward(f) => f.target.clusters().into_iter().map(String::from).collect(),
                                _ => Vec::new(),
                            },
                            override_id: r.override_id.clone(),
                        })
                        .collect(),
                })
                .collect(),
            tcp: crate::explain::TcpServiceReport::of(proxy),
        })
        .collect();
    let clusters = profile
        .proxies
        .values()
        .flat_map(|proxy| profile.clusters_of(proxy))
        .map(|c| (c.name.clone(), cluster(p, c)))
        .collect();
    View { profile: profile.name.clone(), file: profile.file.clone(), proxies, clusters }
}

fn cluster(p: &Published, c: &Cluster) -> ClusterView {
    let runtime = |origin: &str, set: &crate::model::EndpointSet| {
        set.get(&c.name).map(|eps| eps.iter().map(|e| EndpointReport::of(e, origin)).collect::<Vec<_>>())
    };
    let endpoints = match &c.source {
        Source::Static(eps) => eps.iter().map(|e| EndpointReport::of(e, "static")).collect(),
        Source::Dns { hosts, .. } => hosts
            .iter()
            .map(|(h, port)| EndpointReport {
                address: format!("{h}:{port}"),
                origin: "dns".into(),
                ..Default::default()
            })
            .collect(),
        // Registered endpoints win over discovered ones, as in what is served.
        _ => runtime("registered", &p.registered)
            .or_else(|| runtime("discovered", &p.discovered.endpoints))
            .unwrap_or_default(),
    };
    ClusterView { source: c.source.kind().to_string(), detail: source_detail(&c.source), endpoints }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;
    use crate::publish::Builder;

    const PROFILE: &str = r#"
[zones.dev-local]
[proxies.dev-proxy]
zone = "dev-local"
domains = ["demo.example.com:8888"]
[[domains]]
name = "demo.example.com:8888"
aliases = ["localhost"]
[[domains.routes]]
path = "/healthz"
direct_response = { status = 200 }
[[domains.routes]]
prefix = "/api"
headers = [{ name = "x-dev", exact = "canary" }]
cluster = "edge"
[[domains.routes]]
prefix = "/"
cluster = "runtime"
[clusters.edge.static]
endpoints = [{ address = "127.0.0.1:9001", zone = "dev-local", metadata = { name = "edge-1" } }]
[clusters.runtime.registered]
"#;

    #[test]
    fn the_view_follows_proxy_domains_routes_clusters_and_endpoints() {
        let profile = crate::profile::parse_profile("demo.toml", "demo", PROFILE).unwrap();
        let registered = std::sync::Arc::new(crate::model::EndpointSet::from([(
            "runtime".to_string(),
            vec![Endpoint {
                addr: "127.0.0.1:7000".parse().unwrap(),
                zone: None,
                weight: Some(3),
                metadata: Default::default(),
                unhealthy: false,
            }]
            .into(),
        )]));
        let builder = Builder::new(std::sync::Arc::new(profile), registered).unwrap();
        let published = builder.published();
        let view = build(published);
        assert_eq!(view.profile, "demo");
        assert_eq!(view.proxies.len(), 1);
        let proxy = &view.proxies[0];
        assert_eq!((proxy.name.as_str(), proxy.zone.as_str()), ("dev-proxy", "dev-local"));
        assert_eq!(proxy.version, published.snapshots["dev-proxy"].version);
        assert_eq!(
            proxy.domains,
            vec![DomainView {
                name: "demo.example.com:8888".into(),
                aliases: vec!["localhost".into()],
                routes: vec![
                    RouteView {
                        matcher: "path /healthz".into(),
                        action: "direct response 200".into(),
                        clusters: vec![],
                        override_id: None,
                    },
                    RouteView {
                        matcher: "prefix /api, header x-dev = \"canary\"".into(),
                        action: "cluster edge".into(),
                        clusters: vec!["edge".into()],
                        override_id: None,
                    },
                    RouteView {
                        matcher: "prefix /".into(),
                        action: "cluster runtime".into(),
                        clusters: vec!["runtime".into()],
                        override_id: None,
                    },
                ],
            }]
        );
        assert_eq!(view.clusters.keys().collect::<Vec<_>>(), ["edge", "runtime"]);
        assert_eq!(
            view.clusters["edge"].endpoints,
            vec![EndpointReport {
                address: "127.0.0.1:9001".into(),
                zone: Some("dev-local".into()),
                weight: None,
                origin: "static".into(),
                metadata: BTreeMap::from([("name".into(), "edge-1".into())]),
            }]
        );
        assert_eq!(view.clusters["runtime"].source, "registered");
        assert_eq!(
            view.clusters["runtime"].endpoints,
            vec![EndpointReport {
                address: "127.0.0.1:7000".into(),
                weight: Some(3),
                origin: "registered".into(),
                ..Default::default()
            }]
        );
    }
}
