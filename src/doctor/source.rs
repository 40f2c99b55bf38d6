//! The Kubernetes links of `devbridge doctor`: kubeconfig and context, the
//! API server (DNS, TCP, TLS), credentials, RBAC, the selector and the
//! clock, as verdicts over facts [`super::gather`] collected. Pure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Check, ms};

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
