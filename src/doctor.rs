//! `devbridge doctor`: the chain from a profile to the edges as a list of
//! checks, each ok, warning or failed, with what was found and the fix.
//!
//! Pure: [`gather`] does the I/O (files, the daemon's `/status`, Envoy's
//! admin, the API server, probes, `ip route`) and hands each link's facts
//! to the builders here, which decide the verdicts; [`render`](mod@render)
//! shows a [`Report`] to people and [`Report`] serialises as `--json`.
//! No builder is given a credential: facts name the kind of credential and
//! its expiry, never its value.

pub mod gather;
pub mod render;
pub mod source;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

pub use source::{
    Access, AuthFact, KubeconfigFact, MAX_CLOCK_SKEW, PodVerdict, Step, api_server_check, auth_check, clock_check,
    kube_subject, kubeconfig_check, rbac_check, selector_check,
};

/// A check's outcome. `Failed` makes `doctor` exit 1; a `Warning` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Failed,
}

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked: `profile`, `daemon`, `proxy dev-proxy`,
    /// `kubernetes context fake of /k/config`, `cluster edge`.
    pub subject: String,
    /// The check, e.g. `found and valid`.
    pub name: String,
    pub verdict: Verdict,
    /// What was found, in one line.
    pub found: String,
    /// What to do, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// More lines: each setting, each skip reason, each probe.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Check {
    pub fn ok(subject: impl Into<String>, name: &str, found: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            name: name.to_string(),
            verdict: Verdict::Ok,
            found: found.into(),
            fix: None,
            details: vec![],
        }
    }

    pub fn warning(subject: impl Into<String>, name: &str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { verdict: Verdict::Warning, fix: Some(fix.into()), ..Self::ok(subject, name, found) }
    }

    pub fn failed(subject: impl Into<String>, name: &str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { verdict: Verdict::Failed, fix: Some(fix.into()), ..Self::ok(subject, name, found) }
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
}

/// Every check `doctor` made, in the order of the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The profile checked, when one was found.
    pub profile: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn count(&self, v: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == v).count()
    }

    /// The first failed check: the broken link nearest the laptop.
    pub fn broken_link(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.verdict == Verdict::Failed)
    }

    /// 0 when nothing failed, 1 when something did.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.broken_link().is_some())
    }

    /// The last line: all ok, or how many failed and the first broken link.
    pub fn summary(&self) -> String {
        let warnings = match self.count(Verdict::Warning) {
            0 => String::new(),
            1 => " (1 warning)".to_string(),
            n => format!(" ({n} warnings)"),
        };
        match self.broken_link() {
            None => format!("all {} checks ok{warnings}", self.checks.len()),
            Some(c) => format!(
                "{} of {} checks failed{warnings}; the first broken link: {}: {}: {}",
                self.count(Verdict::Failed),
                self.checks.len(),
                c.subject,
                c.name,
                c.found
            ),
        }
    }

    /// The report as `--json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a report serialises");
        v["ok"] = serde_json::json!(self.exit_code() == 0);
        v["failed"] = serde_json::json!(self.count(Verdict::Failed));
        v["warnings"] = serde_json::json!(self.count(Verdict::Warning));
        v["summary"] = serde_json::json!(self.summary());
        v
    }
}

/// A duration as people read a timing: `0.4 ms`, `12 ms`, `1.2 s`.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    match ms {
        ms if ms < 10.0 => format!("{ms:.1} ms"),
        ms if ms < 1000.0 => format!("{ms:.0} ms"),
        ms => format!("{:.1} s", ms / 1e3),
    }
}

/// `1 proxy`, `2 proxies`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub const PROFILE: &str = "profile";
pub const ENVOY: &str = "envoy";
pub const DAEMON: &str = "daemon";

/// The profile was found and is valid: its location and size, or every error.
pub fn profile_check(arg: &str, loaded: Result<(String, usize, usize), Vec<String>>) -> Check {
    match loaded {
        Ok((location, proxies, clusters)) => Check::ok(
            PROFILE,
            "found and valid",
            format!("{location}: {}, {}", plural(proxies, "proxy", "proxies"), plural(clusters, "cluster", "clusters")),
        ),
        Err(errors) => Check::failed(
            PROFILE,
            "found and valid",
            errors.first().cloned().unwrap_or_else(|| format!("profile {arg:?} cannot be loaded")),
            format!("fix the profile (`devbridge check {arg}` lists every error), or `devbridge profiles`"),
        )
        .with_details(errors.into_iter().skip(1).collect()),
    }
}

/// The settings in force: `(key, value, where it came from)` each.
pub fn settings_check(rows: Result<Vec<(String, String, String)>, String>) -> Check {
    match rows {
        Ok(rows) => Check::ok(PROFILE, "settings in force", format!("{} settings", rows.len()))
            .with_details(rows.into_iter().map(|(k, v, o)| format!("{k} = {v}  ({o})")).collect()),
        Err(e) => Check::failed(PROFILE, "settings in force", e, "fix the settings file or the DEVBRIDGE_* variable"),
    }
}

/// What answered at the daemon's admin address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAnswer {
    /// Nothing, or not devbridge: why.
    NotRunning(String),
    Serves {
        version: String,
        pid: u32,
        profile: String,
        file: String,
        ready: bool,
    },
}

/// A daemon is running for the profile (its admin API answers), and serves it.
pub fn daemon_check(addr: SocketAddr, origin: &str, named: Option<&str>, answer: &DaemonAnswer) -> Check {
    let name = "running (admin API answers)";
    match answer {
        DaemonAnswer::NotRunning(e) => Check::failed(
            DAEMON,
            name,
            format!("the daemon is not running: {e} (address from {origin})"),
            match named {
                Some(p) => format!("devbridge connect {p}"),
                None => "devbridge connect PROFILE, or name the profile: devbridge doctor PROFILE".into(),
            },
        ),
        DaemonAnswer::Serves { version, pid, profile, file, ready } => {
            let found = format!(
                "devbridge {version} at {addr} (pid {pid}), profile {profile} ({file}){}",
                if *ready { ", ready" } else { ", NOT READY" }
            );
            match named {
                _ if !*ready && named.is_none_or(|n| n == profile) => Check::warning(
                    DAEMON,
                    name,
                    found,
                    "it waits for a discovery source to sync once (`devbridge status` says which; the checks below say why)",
                ),
                Some(n) if n != profile => Check::failed(
                    DAEMON,
                    name,
                    format!("{found}: another profile than {n}"),
                    format!(
                        "the daemon at {addr} is not {n}'s: start it (devbridge connect {n}) on another admin \
                         address ([listen] admin in the profile), or stop pid {pid}"
                    ),
                ),
                _ => Check::ok(DAEMON, name, found),
            }
        }
    }
}

/// The daemon's xDS address takes connections.
pub fn xds_check(at: &str, answer: Result<Duration, String>) -> Check {
    match answer {
        Ok(d) => Check::ok(DAEMON, "xDS address answers", format!("{at} accepts connections ({})", ms(d))),
        Err(e) => Check::failed(
            DAEMON,
            "xDS address answers",
            format!("{at}: {e}"),
            "the daemon is not serving xDS there: restart it (devbridge connect PROFILE)",
        ),
    }
}

/// One resource type as an Envoy's ADS stream reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFact {
    pub sent: Option<String>,
    pub acked: Option<String>,
    /// The version rejected and Envoy's text.
    pub nack: Option<(String, String)>,
}

/// One connected Envoy of a proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyFact {
    pub node_id: String,
    pub peer: String,
    pub types: BTreeMap<String, TypeFact>,
}

pub fn proxy_subject(proxy: &str) -> String {
    format!("proxy {proxy}")
}

/// The proxy's Envoys: connected, and each type ACKed at the version sent, or NACKed (Envoy's text).
pub fn envoy_checks(proxy: &str, envoys: &[EnvoyFact]) -> Vec<Check> {
    let subject = proxy_subject(proxy);
    if envoys.is_empty() {
        return vec![Check::warning(
            subject,
            "an Envoy is connected",
            "no Envoy is connected for this proxy",
            format!(
                "start its Envoy: devbridge connect PROFILE --envoy --proxy {proxy}, or envoy -c with `devbridge \
                 bootstrap PROFILE --proxy {proxy}`"
            ),
        )];
    }
    let mut out = Vec::new();
    for e in envoys {
        let who = format!("Envoy {} from {}", e.node_id, e.peer);
        out.push(Check::ok(subject.clone(), "an Envoy is connected", who.clone()));
        let nacked: Vec<String> = e
            .types
            .iter()
            .filter_map(|(ty, t)| match (&t.sent, &t.nack) {
                (Some(s), Some((v, text))) if s == v => Some(format!("{ty} {v}: {text}")),
                _ => None,
            })
            .collect();
        let waiting: Vec<&str> = e
            .types
            .iter()
            .filter(|(_, t)| t.sent.is_some() && t.sent != t.acked && t.nack.as_ref().map(|n| &n.0) != t.sent.as_ref())
            .map(|(ty, _)| ty.as_str())
            .collect();
        let name = "ACKed the latest version";
        let check = if !nacked.is_empty() {
            Check::failed(
                subject.clone(),
                name,
                format!("{who} REJECTED {}", nacked.join("; ")),
                "Envoy refused the configuration (its words above); fix what it names in the profile, or \
                 free what it cannot bind; the previous configuration keeps serving",
            )
        } else if !waiting.is_empty() {
            Check::warning(
                subject.clone(),
                name,
                format!("{who} has not ACKed {} yet", waiting.join(", ")),
                "wait a moment and run doctor again; if it stays, see the Envoy's log",
            )
        } else {
            let acked: Vec<String> =
                e.types.iter().map(|(ty, t)| format!("{ty} {}", t.acked.as_deref().unwrap_or("-"))).collect();
            Check::ok(subject.clone(), name, format!("{who}: {}", acked.join(", ")))
        };
        out.push(check);
    }
    out
}

/// The Envoy binary `connect --envoy` would run, and its version.
pub fn envoy_binary_check(found: Result<(String, String), String>) -> Check {
    match found {
        Ok((path, version)) => Check::ok(ENVOY, "Envoy binary", format!("{path}: {version}")),
        Err(e) => Check::warning(
            ENVOY,
            "Envoy binary",
            e,
            "install Envoy (on PATH, or next to devbridge), or run it in a container (devbridge bootstrap --for docker)",
        ),
    }
}

/// Who holds a port a proxy's Envoy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortFact {
    /// Nothing listens on it: Envoy can bind it.
    Free,
    /// The proxy's own Envoy listens on it (its admin says so).
    HeldByEnvoy,
    /// Something else listens on it.
    InUse,
    /// Cannot tell (the error).
    Unknown(String),
}

/// A port a proxy's listener (or its admin) needs is free, or held by its own Envoy.
pub fn port_check(proxy: &str, what: &str, addr: SocketAddr, fact: &PortFact) -> Check {
    let subject = proxy_subject(proxy);
    let name = "ports free or held by its Envoy";
    match fact {
        PortFact::Free => Check::ok(subject, name, format!("{addr} ({what}) is free")),
        PortFact::HeldByEnvoy => Check::ok(subject, name, format!("{addr} ({what}) is held by the proxy's Envoy")),
        PortFact::InUse => Check::failed(
            subject,
            name,
            format!("{addr} ({what}) is in use by another process, not the proxy's Envoy"),
            format!(
                "stop what listens there (`ss -ltnp 'sport = :{}'` names it) or give the profile another port",
                addr.port()
            ),
        ),
        PortFact::Unknown(e) => {
            Check::warning(subject, name, format!("{addr} ({what}): {e}"), "check it by hand: ss -ltnp")
        }
    }
}

/// One endpoint's probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFact {
    pub address: String,
    /// Latency in ms, or why it failed.
    pub result: Result<f64, String>,
}

/// The route to an endpoint, as the OS tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFact {
    Via { dev: String, src: Option<String> },
    Unknown(String),
}

pub fn cluster_subject(cluster: &str) -> String {
    format!("cluster {cluster}")
}

/// The edges answer probes. `from` says whose probes: the daemon's or doctor's own.
pub fn probe_check(cluster: &str, kind: &str, from: &str, probes: &[ProbeFact]) -> Check {
    let subject = cluster_subject(cluster);
    let name = "edges answer probes";
    if probes.is_empty() {
        return Check::warning(subject, name, "no endpoints to probe", "see the source checks above");
    }
    let reachable = probes.iter().filter(|p| p.result.is_ok()).count();
    let details: Vec<String> = probes
        .iter()
        .map(|p| match &p.result {
            Ok(l) => format!("{} reachable ({l:.1} ms)", p.address),
            Err(e) => format!("{} UNREACHABLE: {e}", p.address),
        })
        .collect();
    let found = format!("{reachable}/{} reachable by {kind} ({from})", probes.len());
    match reachable {
        0 => Check::failed(
            subject,
            name,
            format!("{} listed, 0 reachable by {kind} ({from})", plural(probes.len(), "edge", "edges")),
            "is the VPN up and routing to the edges? a firewall may drop the port (see the route below)",
        )
        .with_details(details),
        n if n < probes.len() => Check::warning(
            subject,
            name,
            found,
            "some edges do not answer: Envoy avoids them once its health checks see it",
        )
        .with_details(details),
        _ => Check::ok(subject, name, found).with_details(details),
    }
}

/// The route to an edge leaves by which interface.
pub fn route_check(cluster: &str, address: &str, route: &RouteFact) -> Check {
    let subject = cluster_subject(cluster);
    let name = "route to the edges";
    match route {
        RouteFact::Via { dev, src } => Check::ok(
            subject,
            name,
            format!(
                "{address} leaves by {dev}{}",
                src.as_deref().map(|s| format!(" (source {s})")).unwrap_or_default()
            ),
        ),
        RouteFact::Unknown(why) => Check::ok(subject, name, format!("{address}: unknown ({why})")),
    }
}

/// `ip route get` output: the `dev` and `src` it names.
pub fn parse_ip_route(text: &str) -> Option<RouteFact> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1].to_string());
    Some(RouteFact::Via { dev: after("dev")?, src: after("src") })
}

#[cfg(test)]
mod tests;
