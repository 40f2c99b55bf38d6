//! First contact with a staging cluster: what its API server shows
//! (`devbridge discover`) and a starter profile written from it
//! (`devbridge init`). Pure: the pods and nodes come in as a listed
//! [`Inventory`], text goes out; [`fetch`] reads the API server and
//! `cli::onboard` runs the two commands.
//!
//! Whether a pod would be selected is not decided here: the [`Starter`]
//! profile is rendered, validated by `profile::validate` and planned by
//! `discovery::plan` like any profile `connect` serves, and each pod goes
//! through `discovery::index::select_pod`, the function every watch uses.

pub mod fetch;
pub mod starter;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::discovery::error::KubeError;
use crate::discovery::index::objects::{NodeInfo, Object, PodInfo};
use crate::discovery::index::{SkipReason, Store, select_pod};
use crate::discovery::plan::PodRule;
use crate::model::{AddressKind, PortRef};
pub use starter::Starter;

/// What was asked of the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// A kubeconfig file; `None` for the standard loading rules.
    pub kubeconfig: Option<String>,
    /// A context of it; `None` for its current context.
    pub context: Option<String>,
    pub namespace: String,
    /// A label selector; `None` lists every pod of the namespace.
    pub selector: Option<String>,
}

/// The nodes, when the identity may list them (zones and node addresses
/// come from them); otherwise why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Nodes {
    Listed(Vec<NodeInfo>),
    Unreadable(KubeError),
}

/// One read of the API server: the pods a query matched, and the nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The API server's URL (never credentials).
    pub server: String,
    pub query: Query,
    /// In the order listed.
    pub pods: Vec<PodInfo>,
    pub nodes: Nodes,
}

impl Inventory {
    fn node(&self, name: Option<&str>) -> Option<&NodeInfo> {
        match &self.nodes {
            Nodes::Listed(nodes) => nodes.iter().find(|n| Some(n.name.as_str()) == name),
            Nodes::Unreadable(_) => None,
        }
    }

    /// The pod's zone as the nodes say it, or why it is not known.
    pub fn zone(&self, pod: &PodInfo) -> Result<String, String> {
        let Some(name) = pod.node.as_deref() else { return Err("not scheduled on a node".into()) };
        match (&self.nodes, self.node(Some(name))) {
            (Nodes::Unreadable(_), _) => Err("nodes not readable".into()),
            (_, None) => Err(format!("node {name} not listed")),
            (_, Some(n)) => n.zone.clone().ok_or_else(|| format!("node {name} has no {} label", ZONE_LABEL)),
        }
    }

    /// Every zone the pods' nodes name.
    pub fn zones(&self) -> BTreeSet<String> {
        self.pods.iter().filter_map(|p| self.zone(p).ok()).collect()
    }

    fn node_store(&self) -> Store {
        let nodes = match &self.nodes {
            Nodes::Listed(nodes) => nodes.clone(),
            Nodes::Unreadable(_) => vec![],
        };
        Store::listed(nodes.into_iter().map(Object::Node))
    }

    /// What `rule` makes of each pod, in listing order: the endpoint, or why it is skipped.
    pub fn verdicts(&self, rule: &PodRule) -> Vec<Result<SocketAddr, SkipReason>> {
        let nodes = self.node_store();
        self.pods.iter().map(|p| select_pod(rule, p, Some(&nodes)).map(|e| e.addr)).collect()
    }
}

const ZONE_LABEL: &str = crate::discovery::index::objects::ZONE_LABEL;

/// `8080` is a port number, anything else a port name (validated with the profile).
pub fn parse_port(s: &str) -> PortRef {
    match s.parse::<u16>() {
        Ok(n) => PortRef::Number(n),
        Err(_) => PortRef::Name(s.to_string()),
    }
}

pub fn port_text(p: &PortRef) -> String {
    match p {
        PortRef::Number(n) => n.to_string(),
        PortRef::Name(n) => format!("{n:?}"),
    }
}

pub fn address_text(a: AddressKind) -> &'static str {
    match a {
        AddressKind::Pod => "pod",
        AddressKind::NodeInternal => "node-internal",
        AddressKind::NodeExternal => "node-external",
    }
}

fn ports(pod: &PodInfo) -> String {
    let all: Vec<String> = pod
        .ports
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{n}={}", p.port),
            None => p.port.to_string(),
        })
        .collect();
    if all.is_empty() { "none declared".into() } else { all.join(", ") }
}

fn state(pod: &PodInfo) -> String {
    let mut s = pod.phase.clone();
    s.push_str(if pod.ready { ", Ready" } else { ", not Ready" });
    if pod.terminating {
        s.push_str(", terminating");
    }
    s
}

fn where_text(q: &Query) -> String {
    let mut s = match &q.context {
        Some(c) => format!("context {c}"),
        None => "the current context".to_string(),
    };
    if let Some(k) = &q.kubeconfig {
        let _ = write!(s, " of {k}");
    }
    s
}

/// The listing `devbridge discover` prints: every pod with its state,
/// network, node, zone, IP, ports and labels, and, given a rule, whether a
/// profile with it would select the pod or skip it and why.
pub fn render(inv: &Inventory, rule: Option<&PodRule>) -> String {
    let q = &inv.query;
    let mut out = String::new();
    let selector = q.selector.as_deref().map(|s| format!(", selector {s:?}")).unwrap_or_default();
    let count = match inv.pods.len() {
        1 => "1 pod".to_string(),
        n => format!("{n} pods"),
    };
    let _ = writeln!(out, "{} ({}), namespace {}{selector}: {count}", inv.server, where_text(q), q.namespace);
    if let Nodes::Unreadable(e) = &inv.nodes {
        let _ = writeln!(out, "zones unknown: cannot list nodes ({e})");
    }
    let verdicts = rule.map(|r| inv.verdicts(r));
    for (i, pod) in inv.pods.iter().enumerate() {
        let zone = match inv.zone(pod) {
            Ok(z) => z,
            Err(why) => format!("unknown ({why})"),
        };
        let ip = pod.pod_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "none".into());
        let net = if pod.host_network { "hostNetwork" } else { "pod network" };
        let node = pod.node.as_deref().unwrap_or("(none)");
        let _ = writeln!(out, "\npod {}  {}", pod.name, state(pod));
        let _ = writeln!(out, "  network  {net}, IP {ip}");
        let _ = writeln!(out, "  node     {node}, zone {zone}");
        let _ = writeln!(out, "  ports    {}", ports(pod));
        let labels: Vec<String> = pod.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  labels   {}", if labels.is_empty() { "none".into() } else { labels.join(", ") });
        match verdicts.as_ref().map(|v| &v[i]) {
            Some(Ok(addr)) => {
                let _ = writeln!(out, "  select   {addr}");
            }
            Some(Err(why)) => {
                let _ = writeln!(out, "  skip     {why}");
            }
            None => {}
        }
    }
    out.push('\n');
    match (rule, &verdicts, &q.selector) {
        (Some(rule), Some(v), _) => {
            let selected = v.iter().filter(|v| v.is_ok()).count();
            let _ = writeln!(
                out,
                "a profile with this selector, port {}, address {:?}, host_network = {} selects {selected} of {count}",
                port_text(&rule.port),
                address_text(rule.address),
                rule.host_network,
            );
        }
        (_, _, None) => {
            out.push_str("pass --selector KEY=VALUE (one of the labels above) and --port NAME to see which pods a profile would select\n");
        }
        (_, _, Some(_)) => {
            let names = common_port_names(&inv.pods);
            let hint = match names.as_slice() {
                [] => String::new(),
                n => format!(" (every pod has {})", n.join(", ")),
            };
            let _ = writeln!(out, "pass --port NAME or --port NUMBER{hint} to see which pods a profile would select");
        }
    }
    out
}

/// The port names every pod declares.
pub fn common_port_names(pods: &[PodInfo]) -> Vec<String> {
    let mut names: Option<BTreeSet<String>> = None;
    for p in pods {
        let here: BTreeSet<String> = p.ports.iter().filter_map(|c| c.name.clone()).collect();
        names = Some(match names {
            None => here,
            Some(n) => n.intersection(&here).cloned().collect(),
        });
    }
    names.unwrap_or_default().into_iter().collect()
}

/// The listing as JSON (`devbridge discover --json`).
pub fn to_json(inv: &Inventory, rule: Option<&PodRule>) -> Value {
    let verdicts = rule.map(|r| inv.verdicts(r));
    let pods: Vec<Value> = inv
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v = json!({
                "namespace": p.namespace,
                "name": p.name,
                "phase": p.phase,
                "ready": p.ready,
                "terminating": p.terminating,
                "host_network": p.host_network,
                "ip": p.pod_ip.map(|ip| ip.to_string()),
                "node": p.node,
                "zone": inv.zone(p).ok(),
                "ports": p.ports.iter().map(|c| json!({ "name": c.name, "port": c.port })).collect::<Vec<_>>(),
                "labels": *p.labels,
            });
            match verdicts.as_ref().map(|v| &v[i]) {
                Some(Ok(addr)) => v["selected"] = json!(addr.to_string()),
                Some(Err(why)) => v["skipped"] = json!(why.to_string()),
                None => {}
            }
            v
        })
        .collect();
    let q = &inv.query;
    let mut out = json!({
        "server": inv.server,
        "context": q.context,
        "kubeconfig": q.kubeconfig,
        "namespace": q.namespace,
        "selector": q.selector,
        "nodes": match &inv.nodes {
            Nodes::Listed(n) => json!({ "readable": true, "count": n.len() }),
            Nodes::Unreadable(e) => json!({ "readable": false, "error": e.to_string() }),
        },
        "pods": pods,
    });
    if let (Some(rule), Some(v)) = (rule, &verdicts) {
        out["rule"] = json!({
            "port": match &rule.port { PortRef::Number(n) => json!(n), PortRef::Name(n) => json!(n) },
            "address": address_text(rule.address),
            "host_network": rule.host_network,
            "node_zones": rule.node_zones,
        });
        out["selected"] = json!(v.iter().filter(|v| v.is_ok()).count());
    }
    out
}

/// What to run to see the refusal for oneself, and whom to ask.
pub fn hint(e: &KubeError, q: &Query) -> Option<String> {
    let mut target = String::new();
    if let Some(c) = &q.context {
        target += &format!(" --context {c}");
    }
    if let Some(k) = &q.kubeconfig {
        target += &format!(" --kubeconfig {k}");
    }
    match e {
        KubeError::Forbidden { code: 401, .. } => Some(format!(
            "  the API server did not accept the credentials; log in again (`kubectl auth whoami{target}` shows whether it does)"
        )),
        KubeError::Forbidden { verb, resource, .. } => {
            let ns = if *resource == "nodes" { String::new() } else { format!(" --namespace {}", q.namespace) };
            Some(format!(
                "  check: kubectl auth can-i {verb} {resource}{ns}{target}\n  \
                 ask the cluster admin to grant examples/rbac.yaml's role to the identity `kubectl auth whoami{target}` shows"
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
