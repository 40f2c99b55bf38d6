//! The starter profile `devbridge init` writes: one zone, one proxy, one
//! domain routed to a `kubernetes` cluster of the edge Envoys, each key with
//! a comment saying why it has that value. Pure.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Inventory, Nodes, address_text, port_text};
use crate::discovery::plan::{Plan, PodRule, Rule};
use crate::model::{AddressKind, PortRef, Profile};
use crate::profile::validate::{ProfileErrors, parse_profile};

/// The cluster of edge Envoys in a starter profile.
pub const CLUSTER: &str = "edge";
/// The proxy (the sidecar Envoy) of a starter profile.
pub const PROXY: &str = "dev-proxy";
/// The zone of the laptop's sidecar.
pub const ZONE: &str = "dev-local";
/// The domain when none is given: the Host the service sends.
pub const DEFAULT_DOMAIN: &str = "demo.example.com:8888";

/// The keys of a starter profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starter {
    pub name: String,
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub namespace: String,
    pub selector: String,
    pub port: PortRef,
    pub address: AddressKind,
    pub host_network: bool,
    pub node_zones: bool,
    /// `host:port` the sidecar serves.
    pub domain: String,
}

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

impl Starter {
    /// The profile as validated, with the keys alone (no inventory).
    pub fn profile(&self) -> Result<Profile, ProfileErrors> {
        parse_profile(&format!("{}.toml", self.name), &self.name, &self.text(None))
    }

    /// How the edge cluster selects pods: the plan `connect` would make of this profile.
    pub fn rule(&self) -> Result<PodRule, ProfileErrors> {
        let plan = Plan::from_profile(&self.profile()?);
        match plan.clusters.get(CLUSTER).map(|c| &c.rule) {
            Some(Rule::Pods(rule)) => Ok(rule.clone()),
            _ => unreachable!("a starter profile's edge cluster is a kubernetes cluster"),
        }
    }

    /// Adjusts the choices that depend on what the API server shows: pods
    /// only on the pod network take `host_network = false`; zones are used
    /// when the nodes are readable and name them.
    pub fn fit(&mut self, found: &Inventory) {
        let on_host = found.pods.iter().filter(|p| p.host_network).count();
        if !found.pods.is_empty() && on_host == 0 {
            self.host_network = false;
        }
        self.node_zones = matches!(found.nodes, Nodes::Listed(_)) && !found.zones().is_empty();
    }

    /// The profile text; with `found`, its comments say what the API server showed.
    pub fn text(&self, found: Option<&Inventory>) -> String {
        let mut o = String::new();
        let (host, port) = self.domain.rsplit_once(':').unwrap_or((self.domain.as_str(), "8888"));
        let name = &self.name;
        let context = self.context.as_deref().map(|c| format!("context {c}")).unwrap_or("the current context".into());
        let _ = writeln!(o, "# Profile {name:?}: a starting point written by `devbridge init`.");
        if let Some(f) = found {
            let selected = self.rule().map(|r| f.verdicts(&r).iter().filter(|v| v.is_ok()).count()).unwrap_or(0);
            let _ = writeln!(
                o,
                "# The API server {} ({context}) showed {} in namespace {} matching {:?}; this profile selects {selected} of them now.",
                f.server,
                plural(f.pods.len(), "pod"),
                self.namespace,
                self.selector
            );
            if f.pods.is_empty() {
                w(&mut o, "# No pod matched: check the selector with `devbridge discover` before connecting.");
            }
        }
        w(&mut o, "#");
        w(&mut o, "# Next:");
        let _ = writeln!(o, "#   devbridge check {name}");
        let _ = writeln!(o, "#   devbridge connect {name} --envoy   # serves it, and runs the sidecar Envoy");
        let _ = writeln!(o, "#   curl -H 'Host: {host}' http://127.0.0.1:{port}/");
        w(&mut o, "");
        let _ = writeln!(o, "name = {}", q(name));
        let _ = writeln!(
            o,
            "description = {}",
            q(&format!("Laptop sidecar bridged to the edge Envoys in namespace {} ({context})", self.namespace))
        );
        w(&mut o, "");
        w(&mut o, "# The zone of the sidecar on this laptop: `devbridge bootstrap` writes it into");
        w(&mut o, "# the Envoy's node.locality.zone.");
        let _ = writeln!(o, "[zones.{ZONE}]");
        w(&mut o, "description = \"this laptop\"");
        w(&mut o, "");
        w(&mut o, "# The sidecar Envoy next to your service. It is matched by its node.cluster (the");
        w(&mut o, "# proxy's name) and listens on 127.0.0.1 for the domains it lists.");
        let _ = writeln!(o, "[proxies.{PROXY}]");
        let _ = writeln!(o, "zone = {}", q(ZONE));
        let _ = writeln!(o, "domains = [{}]", q(&self.domain));
        w(&mut o, "");
        let _ = writeln!(o, "# What your service calls: http://127.0.0.1:{port} with `Host: {host}`. The edges");
        w(&mut o, "# route by Host, so use the name staging knows the service by (`--domain HOST:PORT`);");
        w(&mut o, "# `aliases = [...]` adds more hosts on the same port.");
        w(&mut o, "[[domains]]");
        let _ = writeln!(o, "name = {}", q(&self.domain));
        w(&mut o, "");
        w(&mut o, "# Every request to it goes to the edges. Put more specific routes (one path to a");
        w(&mut o, "# local copy, a header match) above this one: the first match wins.");
        w(&mut o, "[[domains.routes]]");
        w(&mut o, "prefix = \"/\"");
        let _ = writeln!(o, "cluster = {}", q(CLUSTER));
        w(&mut o, "timeout = \"10s\"");
        w(&mut o, "# A new connection that fails is tried again (an edge just went away).");
        w(&mut o, "retries = { count = 2, on = [\"connect-failure\", \"refused-stream\", \"gateway-error\"] }");
        w(&mut o, "");
        let _ = writeln!(o, "[clusters.{CLUSTER}]");
        w(&mut o, "connect_timeout = \"1s\"   # a round trip over the VPN; raise it for a slow link");
        w(&mut o, "");
        w(&mut o, "# The edge Envoys, found through the Kubernetes API with your kubeconfig: read-only,");
        w(&mut o, "# `get`, `list`, `watch` on pods (examples/rbac.yaml; `kubectl auth can-i watch pods`).");
        let _ = writeln!(o, "[clusters.{CLUSTER}.kubernetes]");
        if let Some(k) = &self.kubeconfig {
            let _ = writeln!(o, "kubeconfig = {}", q(k));
        }
        match &self.context {
            Some(c) => {
                let _ = writeln!(o, "context = {}", q(c));
            }
            None => w(&mut o, "# context: none given, so the kubeconfig's current context is used"),
        }
        let _ = writeln!(o, "namespace = {}", q(&self.namespace));
        let matched = found.map(|f| match f.pods.len() {
            1 => "   # 1 pod matches now".to_string(),
            n => format!("   # {n} pods match now"),
        });
        let _ = writeln!(o, "selector = {}{}", q(&self.selector), matched.unwrap_or_default());
        self.port_lines(&mut o, found);
        self.address_lines(&mut o, found);
        self.network_lines(&mut o, found);
        self.zone_lines(&mut o, found);
        o
    }

    fn port_lines(&self, o: &mut String, found: Option<&Inventory>) {
        let declaring = |f: &Inventory| {
            f.pods
                .iter()
                .filter(|p| {
                    p.ports.iter().any(|c| match &self.port {
                        PortRef::Name(n) => c.name.as_deref() == Some(n.as_str()),
                        PortRef::Number(n) => c.port == *n,
                    })
                })
                .count()
        };
        let why = match (&self.port, found) {
            (PortRef::Name(_), Some(f)) => {
                format!("   # {} of {} declare it; a name survives a change of number", declaring(f), f.pods.len())
            }
            (PortRef::Name(_), None) => "   # a container port name: it survives a change of number".into(),
            (PortRef::Number(n), Some(f)) => {
                let named: BTreeSet<&str> = f
                    .pods
                    .iter()
                    .flat_map(|p| p.ports.iter())
                    .filter(|c| c.port == *n)
                    .filter_map(|c| c.name.as_deref())
                    .collect();
                match named.iter().next() {
                    Some(name) => format!(
                        "   # {} of {} declare it; its name {name:?} would survive a renumbering",
                        declaring(f),
                        f.pods.len()
                    ),
                    None => format!("   # {} of {} declare it", declaring(f), f.pods.len()),
                }
            }
            (PortRef::Number(_), None) => String::new(),
        };
        let _ = writeln!(o, "port = {}{why}", port_text(&self.port));
    }

    fn address_lines(&self, o: &mut String, found: Option<&Inventory>) {
        let ips: Vec<String> = found
            .map(|f| {
                // The addresses of the pods this profile takes.
                let taken = f.pods.iter().filter(|p| p.host_network || !self.host_network);
                taken.filter_map(|p| p.pod_ip).map(|ip| ip.to_string()).collect::<BTreeSet<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .collect();
        // Three are enough to recognise the network; more is said as "...".
        let seen = match ips.len() {
            0 => String::new(),
            1..=3 => format!(" ({})", ips.join(", ")),
            _ => format!(" ({}, ...)", ips[..3].join(", ")),
        };
        match (self.address, self.host_network) {
            (AddressKind::Pod, true) => {
                let _ = writeln!(o, "# Pods on hostNetwork: their pod IP is their node's IP{seen},");
                w(o, "# which a VPN to the cluster's nodes routes. If yours routes only the nodes' other address, use");
                w(o, "# \"node-internal\" or \"node-external\" (needs read access to nodes).");
            }
            (AddressKind::Pod, false) => {
                let _ = writeln!(o, "# Pods on the pod network: their pod IPs{seen} must be routed by your VPN;");
                w(o, "# if only node addresses are, reach the edges through a hostNetwork port instead.");
            }
            (_, _) => {
                w(o, "# The node's address rather than the pod IP: for VPNs that route only node");
                w(o, "# addresses. Needs read access to nodes (examples/rbac.yaml, the ClusterRole).");
            }
        }
        let _ = writeln!(o, "address = {}", q(address_text(self.address)));
    }

    fn network_lines(&self, o: &mut String, found: Option<&Inventory>) {
        let on_host = found.map(|f| (f.pods.iter().filter(|p| p.host_network).count(), f.pods.len()));
        let why = match (self.host_network, on_host) {
            (true, Some((h, n))) if h == n && n > 0 => format!("   # {n} of {n} on hostNetwork: only such pods count"),
            (true, Some((h, n))) if n > 0 => {
                format!("   # {h} of {n} on hostNetwork; the others are skipped (false takes them too)")
            }
            (true, _) => "   # only pods on hostNetwork count, as edge Envoys usually are".into(),
            (false, Some((0, n))) if n > 0 => format!("   # 0 of {n} on hostNetwork: pods on the pod network count"),
            (false, _) => "   # take pods on the pod network too".into(),
        };
        let _ = writeln!(o, "host_network = {}{why}", self.host_network);
    }

    fn zone_lines(&self, o: &mut String, found: Option<&Inventory>) {
        let zones = found.map(|f| f.zones().into_iter().collect::<Vec<_>>().join(", ")).unwrap_or_default();
        if self.node_zones {
            let _ = writeln!(o, "# Each edge in the EDS locality of its node's topology.kubernetes.io/zone ({zones}),");
            w(o, "# so Envoy's zone preference and failover work. Needs read access to nodes.");
            w(o, "node_zones = true");
        } else {
            let why = match found.map(|f| &f.nodes) {
                Some(Nodes::Unreadable(_)) => "nodes are not readable with this identity",
                Some(Nodes::Listed(_)) => "the nodes name no zone",
                None => "zones need read access to nodes",
            };
            let _ = writeln!(o, "# node_zones = true puts each edge in its node's zone; off: {why}.");
        }
    }
}

fn w(o: &mut String, line: &str) {
    o.push_str(line);
    o.push('\n');
}
