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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

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

/// The kubeconfig and context a source names, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigFact {
    pub path: String,
    pub context: String,
    pub server: String,
    /// How the user authenticates: `token`, `client certificate`, `exec plugin aws`, ...
    pub auth: String,
}

pub fn kube_subject(conn: &str) -> String {
    format!("kubernetes {conn}")
}

/// The kubeconfig exists and has the context.
pub fn kubeconfig_check(conn: &str, found: Result<KubeconfigFact, String>) -> Check {
    let subject = kube_subject(conn);
    match found {
        Ok(k) => Check::ok(
            subject,
            "kubeconfig and context",
            format!("{}: context {}, server {}, {}", k.path, k.context, k.server, k.auth),
        ),
        Err(e) => Check::failed(
            subject,
            "kubeconfig and context",
            e,
            "name an existing file and context in the profile (kubeconfig, context); `kubectl config get-contexts` lists them",
        ),
    }
}

/// One step of reaching the API server: DNS, TCP or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    /// How long it took and what it found, or why it failed.
    pub result: Result<(Duration, String), String>,
}

/// The API server answers: DNS, TCP and TLS in turn, each with its timing.
pub fn api_server_check(conn: &str, server: &str, steps: &[Step]) -> Check {
    let subject = kube_subject(conn);
    let name = "API server answers";
    let lines: Vec<String> = steps
        .iter()
        .map(|s| match &s.result {
            Ok((d, what)) => format!("{} {} ({what})", s.name, ms(*d)),
            Err(e) => format!("{} FAILED: {e}", s.name),
        })
        .collect();
    match steps.iter().find(|s| s.result.is_err()) {
        None => Check::ok(subject, name, format!("{server}: {}", lines.join(", "))),
        Some(s) => {
            let fix = match s.name {
                "DNS" => "the name does not resolve: is the VPN up (its DNS)? check the server in the kubeconfig",
                "TCP" => "is the VPN up? the API server's address does not take connections from this laptop",
                _ => "the TLS handshake fails: is the kubeconfig's certificate-authority the cluster's?",
            };
            Check::failed(subject, name, format!("{server}: {}", lines.join(", ")), fix)
        }
    }
}

/// How the kubeconfig's user proves who it is, as found (never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFact {
    /// A token, a token file or a client certificate in the kubeconfig.
    Static(String),
    /// An exec plugin ran: its command, and the credential's expiry (ms since the epoch), if it gave one.
    Exec { command: String, result: Result<Option<u64>, String> },
    /// No credentials at all.
    Anonymous,
    /// Something doctor does not run (an auth-provider).
    Other(String),
}

/// Authentication works: the exec plugin runs, its credential has not expired.
pub fn auth_check(conn: &str, fact: &AuthFact, now_ms: u64) -> Check {
    let subject = kube_subject(conn);
    let name = "credentials";
    match fact {
        AuthFact::Static(kind) => Check::ok(subject, name, format!("{kind} in the kubeconfig")),
        AuthFact::Anonymous => Check::warning(
            subject,
            name,
            "the kubeconfig's user has no credentials",
            "log in (the cluster's login command) so the kubeconfig has a user with credentials",
        ),
        AuthFact::Other(kind) => Check::ok(subject, name, format!("{kind} (not run by doctor)")),
        AuthFact::Exec { command, result: Err(e) } => Check::failed(
            subject,
            name,
            format!("the exec plugin {command} failed: {e}"),
            format!("run the plugin by hand ({command}) or log in again with the cluster's login command"),
        ),
        AuthFact::Exec { command, result: Ok(None) } => {
            Check::ok(subject, name, format!("exec plugin {command} gave a credential (no expiry)"))
        }
        AuthFact::Exec { command, result: Ok(Some(expiry)) } if *expiry <= now_ms => Check::failed(
            subject,
            name,
            format!(
                "the exec plugin {command} gave a credential that expired {} ago",
                humantime::format_duration(Duration::from_secs((now_ms - expiry) / 1000))
            ),
            "log in again (the cluster's login command refreshes what the plugin hands out)",
        ),
        AuthFact::Exec { command, result: Ok(Some(expiry)) } => Check::ok(
            subject,
            name,
            format!(
                "exec plugin {command} gave a credential valid for {}",
                humantime::format_duration(Duration::from_secs((expiry - now_ms) / 1000))
            ),
        ),
    }
}

/// What a SelfSubjectAccessReview answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Denied(String),
    /// The review itself failed: the code (401 = credentials refused) and text.
    Failed(u16, String),
}

/// RBAC allows what devbridge needs: one line per (verb, resource, namespace).
pub fn rbac_check(conn: &str, asked: &[(String, String, Option<String>, Access)]) -> Check {
    let subject = kube_subject(conn);
    let name = "RBAC allows list and watch";
    let line = |(verb, resource, ns, access): &(String, String, Option<String>, Access)| {
        let wher = ns.as_deref().map(|n| format!(" in {n}")).unwrap_or_default();
        let what = match access {
            Access::Allowed => "allowed".to_string(),
            Access::Denied(why) if why.is_empty() => "DENIED".to_string(),
            Access::Denied(why) => format!("DENIED ({why})"),
            Access::Failed(code, e) => format!("not answered ({code}: {e})"),
        };
        format!("{verb} {resource}{wher}: {what}")
    };
    let lines: Vec<String> = asked.iter().map(line).collect();
    let unauthorized = asked.iter().any(|a| matches!(a.3, Access::Failed(401, _)));
    let denied: Vec<String> = asked.iter().filter(|a| a.3 != Access::Allowed).map(line).collect();
    if unauthorized {
        return Check::failed(
            subject,
            name,
            "the API server did not accept the credentials (401)",
            "log in again; `kubectl auth whoami` shows whether the credentials work",
        )
        .with_details(lines);
    }
    match denied.first() {
        None => Check::ok(subject, name, lines.join("; ")),
        Some(first) => Check::failed(
            subject,
            name,
            first.clone(),
            "ask the cluster admin to grant examples/rbac.yaml's role to your identity (`kubectl auth whoami`)",
        )
        .with_details(lines),
    }
}

/// One pod listed (`namespace/name`): its endpoint, or why it is skipped.
pub type PodVerdict = (String, Result<SocketAddr, String>);

/// The selector matches pods, and why the skipped ones are skipped.
pub fn selector_check(conn: &str, cluster: &str, what: &str, verdicts: Result<Vec<PodVerdict>, String>) -> Check {
    let subject = kube_subject(conn);
    let name = format!("cluster {cluster}: selector matches pods");
    let verdicts = match verdicts {
        Ok(v) => v,
        Err(e) => {
            return Check::failed(subject, &name, format!("cannot list {what}: {e}"), "see the checks above");
        }
    };
    let selected = verdicts.iter().filter(|(_, v)| v.is_ok()).count();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, v) in &verdicts {
        if let Err(why) = v {
            *reasons.entry(why.as_str()).or_default() += 1;
        }
    }
    let skipped = verdicts.len() - selected;
    let why = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect::<Vec<_>>().join(", ");
    let details = verdicts.iter().map(|(pod, v)| match v {
        Ok(a) => format!("{pod}: selected, {a}"),
        Err(why) => format!("{pod}: skipped, {why}"),
    });
    let details: Vec<String> = details.take(20).collect();
    let name = name.as_str();
    if verdicts.is_empty() {
        return Check::failed(
            subject,
            name,
            format!("0 pods match {what}"),
            "check the selector and namespace against the pods: devbridge discover -n NAMESPACE",
        );
    }
    if selected == 0 {
        return Check::failed(
            subject,
            name,
            format!("0 of {} pods matching {what} selected ({skipped} skipped: {why})", verdicts.len()),
            "the pods do not fit the profile yet (the reasons above); devbridge discover shows each",
        )
        .with_details(details);
    }
    let found = match skipped {
        0 => format!("{selected} of {} pods matching {what} selected", verdicts.len()),
        _ => format!("{selected} of {} pods matching {what} selected ({skipped} skipped: {why})", verdicts.len()),
    };
    Check::ok(subject, name, found).with_details(details)
}

/// The most the laptop's clock may differ from the API server's.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The clock differs from the API server's (its `Date` header) by less than a minute.
/// `skew_ms`: the laptop's clock minus the server's.
pub fn clock_check(conn: &str, skew_ms: Option<i64>) -> Check {
    let subject = kube_subject(conn);
    let name = "clock agrees with the API server";
    match skew_ms {
        None => Check::warning(subject, name, "the API server sent no Date header", "compare the clocks by hand"),
        Some(s) if s.unsigned_abs() < MAX_CLOCK_SKEW.as_millis() as u64 => {
            Check::ok(subject, name, format!("within {} s", s.unsigned_abs().div_ceil(1000).max(1)))
        }
        Some(s) => Check::failed(
            subject,
            name,
            format!(
                "this clock is {} {} the API server's",
                humantime::format_duration(Duration::from_secs(s.unsigned_abs() / 1000)),
                if s > 0 { "ahead of" } else { "behind" }
            ),
            "set the clock (NTP): tokens and certificates are refused, and ages are wrong, when clocks disagree",
        ),
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
