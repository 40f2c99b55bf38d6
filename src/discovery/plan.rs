//! Which watches a profile needs and which clusters each one serves. Pure.
//!
//! One watch per (kubeconfig, context, namespace, selector): two clusters
//! that pick the same pods on different ports share it. Nodes are watched
//! once per API server, and only when some cluster on it uses node addresses
//! or zones, so the minimal RBAC stays "read pods".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{AddressKind, PortRef, Profile, Source};

/// One API server, as the kubeconfig names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Conn {
    /// A kubeconfig file; `None` for the standard loading rules (`KUBECONFIG`, `~/.kube/config`).
    pub kubeconfig: Option<String>,
    /// A context in it; `None` for its current context.
    pub context: Option<String>,
}

impl fmt::Display for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Some(c) => write!(f, "context {c}")?,
            None => write!(f, "the current context")?,
        }
        match &self.kubeconfig {
            Some(k) => write!(f, " of {k}"),
            None => Ok(()),
        }
    }
}

/// One list+watch against the API server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKey {
    Pods { conn: Conn, namespace: String, selector: String, field_selector: Option<String> },
    Slices { conn: Conn, namespace: String, service: String },
    Nodes { conn: Conn },
}

impl WatchKey {
    pub fn conn(&self) -> &Conn {
        match self {
            WatchKey::Pods { conn, .. } | WatchKey::Slices { conn, .. } | WatchKey::Nodes { conn } => conn,
        }
    }
}

impl fmt::Display for WatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchKey::Pods { conn, namespace, selector, field_selector } => {
                write!(f, "pods {selector:?}")?;
                if let Some(fs) = field_selector {
                    write!(f, " (fields {fs:?})")?;
                }
                write!(f, " in {namespace} via {conn}")
            }
            WatchKey::Slices { conn, namespace, service } => {
                write!(f, "endpointslices of service {namespace}/{service} via {conn}")
            }
            WatchKey::Nodes { conn } => write!(f, "nodes via {conn}"),
        }
    }
}

/// How a cluster turns watched objects into endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Pods(PodRule),
    /// EndpointSlice endpoints on this port (the Service port's name, or the number).
    Service(PortRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRule {
    pub port: PortRef,
    pub address: AddressKind,
    /// Only pods with `hostNetwork: true` count.
    pub host_network: bool,
    pub node_zones: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    pub rule: Rule,
    /// The watches whose objects become this cluster's endpoints.
    pub watches: Vec<WatchKey>,
    /// The nodes watch, when the rule needs node addresses or zones.
    pub nodes: Option<WatchKey>,
}

/// Every discovered cluster of a profile, and how it is watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub clusters: BTreeMap<String, ClusterPlan>,
}

impl Plan {
    pub fn from_profile(profile: &Profile) -> Self {
        let mut clusters = BTreeMap::new();
        for c in profile.clusters.values() {
            let plan = match &c.source {
                Source::Kubernetes(k) => {
                    let conn = Conn { kubeconfig: k.kubeconfig.clone(), context: k.context.clone() };
                    let watches = k
                        .namespaces
                        .iter()
                        .map(|ns| WatchKey::Pods {
                            conn: conn.clone(),
                            namespace: ns.clone(),
                            selector: normalize_selector(&k.selector),
                            field_selector: k.field_selector.as_deref().map(normalize_selector),
                        })
                        .collect();
                    let rule = PodRule {
                        port: k.port.clone(),
                        address: k.address,
                        host_network: k.host_network,
                        node_zones: k.node_zones,
                    };
                    let nodes = k.needs_nodes().then_some(WatchKey::Nodes { conn });
                    ClusterPlan { rule: Rule::Pods(rule), watches, nodes }
                }
                Source::KubernetesService(s) => {
                    let conn = Conn { kubeconfig: s.kubeconfig.clone(), context: s.context.clone() };
                    let watch = WatchKey::Slices { conn, namespace: s.namespace.clone(), service: s.service.clone() };
                    ClusterPlan { rule: Rule::Service(s.port.clone()), watches: vec![watch], nodes: None }
                }
                Source::Static(_) | Source::Dns { .. } | Source::Registered => continue,
            };
            clusters.insert(c.name.clone(), plan);
        }
        Self { clusters }
    }

    /// Every watch, with the clusters that read it.
    pub fn watches(&self) -> BTreeMap<WatchKey, BTreeSet<String>> {
        let mut out: BTreeMap<WatchKey, BTreeSet<String>> = BTreeMap::new();
        for (name, c) in &self.clusters {
            for w in c.watches.iter().chain(c.nodes.as_ref()) {
                out.entry(w.clone()).or_default().insert(name.clone());
            }
        }
        out
    }
}

/// `app = edge , tier in (a,b)` and `app=edge,tier in (a,b)` are one watch.
fn normalize_selector(s: &str) -> String {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
        .iter()
        .map(|t| {
            let t = t.trim();
            match t.find(['=', '!']) {
                // `k = v`, `k != v`: spaces around the operator mean nothing.
                Some(_) if !t.contains('(') => t.split_whitespace().collect::<String>(),
                _ => t.split_whitespace().collect::<Vec<_>>().join(" "),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_that_differ_only_in_spaces_are_one_watch() {
        assert_eq!(normalize_selector(" app = edge ,  tier in (a, b), !x"), "app=edge,tier in (a, b),!x");
        assert_eq!(normalize_selector("app=edge,tier in (a, b),!x"), "app=edge,tier in (a, b),!x");
    }
}
