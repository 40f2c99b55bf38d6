//! An [`Explanation`] for people. Pure: the caller says whether to colour
//! (a terminal without `NO_COLOR`).

use std::fmt::Write as _;

use super::{Action, Explanation, Outcome};

/// ANSI styles, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
    pub fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn red(self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
}

/// Milliseconds as a coarse age: `4s`, `3m 5s`, `2h 10m`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

pub fn render(e: &Explanation, st: Style) -> String {
    let mut out = String::new();
    let r = &e.request;
    let origin = if e.live { "live" } else { "from the profile alone: no run-time endpoints or Envoys" };
    let _ = writeln!(
        out,
        "{} {}  {}",
        st.bold(if r.tcp { "TCP" } else { &r.method }),
        st.bold(&r.url()),
        st.dim(&format!("(profile {}, {origin})", e.profile))
    );
    let host = (r.authority != r.target).then(|| format!("host: {}", r.authority));
    if !r.headers.is_empty() || host.is_some() {
        let hs: Vec<String> = host.into_iter().chain(r.headers.iter().map(|(k, v)| format!("{k}: {v}"))).collect();
        let _ = writeln!(out, "headers: {}", hs.join(", "));
    }
    match (&e.proxy, &e.listener) {
        (Some(p), Some(l)) => {
            let _ = writeln!(out, "proxy {p}, {l}");
        }
        _ => {
            let _ = writeln!(out, "{}", st.red(&format!("no proxy listens on port {}", r.port)));
        }
    }
    if e.outcome == Outcome::NoListener || e.outcome == Outcome::NoVirtualHost {
        if e.outcome == Outcome::NoVirtualHost {
            let _ = writeln!(
                out,
                "{}",
                st.red(&format!("no virtual host for Host {:?} on port {}: Envoy answers 404", r.authority, r.port))
            );
        }
        let _ = writeln!(out, "{}", if r.tcp { "TCP services:" } else { "hosts served:" });
        if e.candidates.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for c in &e.candidates {
            let _ = writeln!(out, "  {c}");
        }
        return finish(out, e, st);
    }
    if let Some(t) = &e.tcp {
        let default = if t.idle_timeout_is_default { " (Envoy's default)" } else { "" };
        let _ = writeln!(
            out,
            "TCP service {}: every connection goes to {}, byte for byte",
            st.bold(&t.service),
            st.bold(&t.cluster)
        );
        let _ = writeln!(out, "  idle timeout {}{default}; connect timeout is the cluster's", t.idle_timeout);
        clusters(&mut out, e, st);
        return finish(out, e, st);
    }
    if let Some(v) = &e.virtual_host {
        let how = if v.wildcard { "wildcard " } else { "" };
        let _ =
            writeln!(out, "virtual host {} (Host {:?} matched {how}{:?})", st.bold(&v.domain), r.authority, v.matched);
    }
    let _ = writeln!(out, "routes, in order (first match wins):");
    for v in &e.routes {
        let chosen = e.chosen == Some(v.index);
        let mark = match (chosen, v.reached) {
            (true, _) => st.green("MATCH"),
            (false, false) => st.dim("-    "),
            (false, true) => st.red("no   "),
        };
        let by = v.override_id.as_ref().map(|id| format!("  (override {id})")).unwrap_or_default();
        let line = format!("[{}] {} -> {}{by}", v.index, v.matcher, v.action);
        let line = if v.reached { line } else { st.dim(&line) };
        let tail = match (v.reached, v.matched) {
            (true, _) => String::new(),
            (false, true) => st.dim("  (not reached; would match too)"),
            (false, false) => st.dim("  (not reached)"),
        };
        let _ = writeln!(out, "  {mark} {line}{tail}");
        if v.reached {
            for c in &v.conditions {
                let ok = if c.ok { st.green("ok  ") } else { st.red("FAIL") };
                // A path condition names its kind already (`prefix /api`).
                let what = if c.kind == "path" { c.what.clone() } else { format!("{} {}", c.kind, c.what) };
                let _ = writeln!(out, "          {ok} {what}: {}", c.why);
            }
        }
    }
    if e.chosen.is_none() {
        let _ = writeln!(out, "{}", st.red("no route matches: Envoy answers 404"));
        if !e.candidates.is_empty() {
            let _ = writeln!(out, "nearest:");
            for c in &e.candidates {
                let _ = writeln!(out, "  {c}");
            }
        }
        return finish(out, e, st);
    }
    match &e.action {
        Some(Action::Forward {
            shares,
            timeout,
            timeout_is_default,
            retries,
            path_rewrite,
            host_rewrite,
            headers_added,
        }) => {
            let to: Vec<String> =
                shares.iter().map(|s| format!("{} ({}%, weight {})", s.cluster, s.percent, s.weight)).collect();
            let to = if shares.len() == 1 { shares[0].cluster.clone() } else { to.join(", ") };
            let _ = writeln!(out, "action: forward to {}", st.bold(&to));
            let default = if *timeout_is_default { " (Envoy's default)" } else { "" };
            let retries = retries.clone().unwrap_or_else(|| "no retries".into());
            let _ = writeln!(out, "  timeout {timeout}{default}; {retries}");
            if let Some(p) = path_rewrite {
                let _ = writeln!(out, "  path rewritten to {p}");
            }
            if let Some(h) = host_rewrite {
                let _ = writeln!(out, "  Host rewritten to {h}");
            }
            for (k, v) in headers_added {
                let _ = writeln!(out, "  adds header {k}: {v}");
            }
        }
        Some(Action::Redirect { code, location }) => {
            let _ = writeln!(out, "action: redirect {code} to {location}");
        }
        Some(Action::DirectResponse { status, body }) => {
            let body = body.as_ref().map(|b| format!(" {:?}", b)).unwrap_or_default();
            let _ = writeln!(out, "action: Envoy answers {status}{body}");
        }
        None => {}
    }
    clusters(&mut out, e, st);
    finish(out, e, st)
}

/// Each cluster the request or connection goes to, with its endpoints and sources.
fn clusters(out: &mut String, e: &Explanation, st: Style) {
    let none = if e.tcp.is_some() {
        "no endpoints: Envoy closes each new connection (no healthy upstream)"
    } else {
        "no endpoints: Envoy answers 503 (no healthy upstream)"
    };
    for c in &e.clusters {
        let _ = writeln!(out, "cluster {} ({}): {}", st.bold(&c.name), c.source, c.source_detail);
        let _ = writeln!(out, "  {}", c.policy.join(", "));
        match &c.endpoints {
            None => {
                let _ = writeln!(
                    out,
                    "  endpoints: found at run time; ask a running daemon (without --profile) to list them"
                );
            }
            Some(eps) if eps.is_empty() => {
                let _ = writeln!(out, "  {}", st.red(none));
            }
            Some(eps) => {
                for ep in eps {
                    let mut parts = vec![ep.address.clone()];
                    if let Some(z) = &ep.zone {
                        parts.push(format!("zone {z}"));
                    }
                    if let Some(w) = ep.weight {
                        parts.push(format!("weight {w}"));
                    }
                    parts.push(ep.origin.clone());
                    parts.extend(ep.metadata.iter().map(|(k, v)| format!("{k}={v}")));
                    let _ = writeln!(out, "  {}", parts.join("  "));
                }
            }
        }
        for s in &c.sources {
            let state = match s.state.as_str() {
                "degraded" => st.yellow(&format!(
                    "degraded{} ({}); the last known endpoints are served",
                    s.data_age_ms.map(|a| format!(", data {} old", age(a))).unwrap_or_default(),
                    s.error.as_deref().unwrap_or("reading fails")
                )),
                other => other.to_string(),
            };
            let _ = writeln!(out, "  source {}: {state}", s.name);
            for (_, object, why) in &s.skipped {
                let _ = writeln!(out, "    skipped {object}: {why}");
            }
        }
    }
}

/// The acknowledgement lines and the verdict.
fn finish(mut out: String, e: &Explanation, st: Style) -> String {
    if let (Some(s), Some(p)) = (&e.served, &e.proxy) {
        if s.envoys.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                st.yellow(&format!("envoy: none connected as proxy {p}; version {} is not acknowledged", s.version))
            );
        }
        for a in &s.envoys {
            let who = format!(
                "node {} (stream {}{})",
                a.node_id,
                a.stream,
                a.peer.as_ref().map(|p| format!(", {p}")).unwrap_or_default()
            );
            match a.state.as_str() {
                "acked" => {
                    let _ = writeln!(out, "envoy: {who} {} version {}", st.green("ACKed"), s.version);
                }
                "nacked" => {
                    for t in a.types.iter().filter(|t| t.nack.is_some()) {
                        let _ = writeln!(
                            out,
                            "envoy: {who} {} {} {}: {}",
                            st.red("NACKed"),
                            t.kind,
                            t.served,
                            t.nack.as_deref().unwrap_or_default()
                        );
                    }
                }
                _ => {
                    let waiting: Vec<String> = a
                        .types
                        .iter()
                        .filter(|t| t.acked.as_ref() != Some(&t.served))
                        .map(|t| format!("{} {} (has {})", t.kind, t.served, t.acked.as_deref().unwrap_or("none")))
                        .collect();
                    let _ = writeln!(out, "envoy: {who} {}: {}", st.yellow("has not ACKed yet"), waiting.join(", "));
                }
            }
        }
    }
    let verdict = match e.outcome {
        Outcome::Routed => st.green("routed"),
        Outcome::NoListener => st.red("no listener"),
        Outcome::NoVirtualHost => st.red("no virtual host (404)"),
        Outcome::NoRoute => st.red("no route (404)"),
        Outcome::NoEndpoints if e.tcp.is_some() => st.red("no endpoints (connections closed)"),
        Outcome::NoEndpoints => st.red("no endpoints (503)"),
    };
    let _ = writeln!(out, "result: {verdict}");
    out
}
