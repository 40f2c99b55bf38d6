//! `devbridge status` for people: a pure rendering of a [`Status`], with
//! ages taken against the daemon's clock (`now_ms`), not the caller's.

use std::fmt::Write as _;

use super::{ClusterProbes, ProbeState, SourceReport, SourceState, Status};
use crate::registered::RegisteredEndpoint;
use crate::xds::registry::StreamInfo;

/// `then` as an age against `now` (both in ms since the epoch), coarse.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m {}s ago", s / 60, s % 60),
        3600..86400 => format!("{}h {}m ago", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h ago", s / 86400, s % 86400 / 3600),
    }
}

/// The readable summary of a daemon's status at `addr`.
pub fn render(s: &Status, addr: &str) -> String {
    let mut out = String::new();
    let now = s.now_ms;
    let ready = if s.ready { "ready" } else { "NOT READY" };
    // The pid tells two daemons apart (an older one does not send it).
    let pid = match s.listen.pid {
        0 => String::new(),
        pid => format!(" (pid {pid})"),
    };
    let _ = writeln!(out, "devbridge {} at {addr}{pid}: {ready}", s.devbridge);
    // What a user reads first: each source's state and each other probed
    // cluster's, in words.
    for src in s.sources.iter().filter(|src| !src.summary.is_empty()) {
        let _ = writeln!(out, "  {}: {}", src.name, src.summary);
    }
    let by_source: std::collections::BTreeSet<&str> =
        s.sources.iter().flat_map(|src| src.clusters.iter().map(String::as_str)).collect();
    for (cluster, p) in s.probes.iter().filter(|(c, _)| !by_source.contains(c.as_str())) {
        let _ = writeln!(out, "  cluster {cluster}: {}", p.summary);
    }
    match &s.profile {
        Some(p) => {
            let _ = writeln!(out, "profile {} ({}), loaded {}", p.name, p.file, ago(now, s.reload.loaded_at_ms));
        }
        None => out.push_str("profile: none loaded\n"),
    }
    let r = &s.reload;
    let _ = write!(out, "reloads: {} ok, {} failed", r.reloads_ok, r.reloads_failed);
    if let Some(change) = &r.last_change {
        let _ = write!(out, "; last change: {change}");
    }
    out.push('\n');
    if let Some(e) = &r.error {
        let _ = writeln!(
            out,
            "last reload FAILED {} (the previous profile is still served; fix the file to reload):",
            ago(now, e.at_ms)
        );
        for line in &e.errors {
            let _ = writeln!(out, "  {line}");
        }
    }

    out.push_str("proxies:\n");
    if s.proxies.is_empty() {
        out.push_str("  none\n");
    }
    for (name, p) in &s.proxies {
        let _ = writeln!(out, "  {name}  version {}", p.version);
        for t in &p.tcp {
            let _ = writeln!(out, "    tcp {}: {} -> cluster {}", t.name, t.listen, t.cluster);
        }
    }

    if let Some((header, who)) = &s.identity {
        let _ = writeln!(out, "identity: {header}: {who} (added to every request that has none)");
    }
    if !s.overrides.is_empty() {
        out.push_str("overrides (first match wins, before the profile's routes):\n");
        for o in &s.overrides {
            let until = o
                .inner
                .expires_at_ms
                .map(|t| {
                    let left = std::time::Duration::from_secs(t.saturating_sub(s.now_ms) / 1000);
                    format!(", expires in {}", humantime::format_duration(left))
                })
                .unwrap_or_default();
            let _ = writeln!(out, "  {}  {} ({}{until})", o.inner.id, o.description, o.source);
        }
    }
    let rest =
        if s.rest_clients.is_empty() { String::new() } else { format!(", {} polling REST", s.rest_clients.len()) };
    let _ = writeln!(out, "envoys: {} connected{rest}", s.envoys.len());
    for e in s.envoys.iter().chain(&s.rest_clients) {
        render_envoy(&mut out, e, now);
    }

    if s.sources.is_empty() {
        out.push_str("sources: none\n");
    } else {
        out.push_str("sources:\n");
        for src in &s.sources {
            render_source(&mut out, src, s.now_ms);
        }
    }

    if !s.probes.is_empty() {
        out.push_str("probes (from this machine):\n");
        for (cluster, p) in &s.probes {
            render_probes(&mut out, cluster, p, now);
        }
    }

    if !s.registered.is_empty() {
        out.push_str("registered endpoints:\n");
        for (cluster, eps) in &s.registered {
            let list: Vec<String> = eps.iter().map(endpoint).collect();
            let list = if list.is_empty() { "none".to_string() } else { list.join(", ") };
            let _ = writeln!(out, "  {cluster}: {list}");
        }
    }
    out
}

fn render_envoy(out: &mut String, e: &StreamInfo, now: u64) {
    let who = match &e.node {
        Some(n) => {
            format!("{} (node.cluster {}, zone {})", n.id, n.cluster, if n.zone.is_empty() { "-" } else { &n.zone })
        }
        None => "(no node yet)".to_string(),
    };
    let peer = e.peer.as_deref().unwrap_or("?");
    let protocol = if e.protocol == "delta" { ", delta xDS" } else { "" };
    let agent = match &e.node {
        Some(n) if !n.user_agent.is_empty() => format!(", {}", n.user_agent),
        _ => String::new(),
    };
    if e.protocol == "rest" {
        let _ = writeln!(out, "  {who}, polling REST xDS since {}{agent}", ago(now, e.connected_at_ms));
    } else {
        let _ = writeln!(out, "  {who} from {peer}, connected {}{protocol}{agent}", ago(now, e.connected_at_ms));
    }
    match (&e.proxy, &e.unmatched) {
        (Some(p), _) => {
            let _ = writeln!(out, "    proxy {p}");
        }
        (None, Some(why)) => {
            let _ = writeln!(out, "    UNMATCHED, served nothing: {why}");
        }
        (None, None) => {}
    }
    for (ty, t) in &e.types {
        let sent = t.sent.as_deref().unwrap_or("-");
        let acked = t.acked.as_deref().unwrap_or("-");
        let state = match (&t.sent, &t.acked, &t.last_nack) {
            (None, _, _) => "nothing sent",
            (Some(s), _, Some(n)) if &n.version == s => "REJECTED",
            (Some(s), Some(a), _) if s == a => "acked",
            _ => "waiting for ACK",
        };
        let _ = writeln!(out, "    {ty}  {state:<15} sent {sent}  acked {acked}");
        if let Some(n) = &t.last_nack {
            let _ = writeln!(out, "         last NACK {} of {}: {}", ago(now, n.at_ms), n.version, n.error);
        }
        if !t.missing.is_empty() {
            let _ = writeln!(out, "         asked for what the profile does not serve it: {}", t.missing.join(", "));
        }
    }
}

fn render_source(out: &mut String, src: &SourceReport, now: u64) {
    let mut line = format!("  {}: {}", src.name, src.state.as_str());
    if let Some(since) = src.since_ms {
        let _ = write!(line, " since {}", ago(now, since));
    }
    if src.state == SourceState::Degraded {
        match src.data_age_ms {
            Some(ms) => {
                let old = ago(now, now.saturating_sub(ms)).trim_end_matches(" ago").to_string();
                let _ = write!(line, " (serving the last known endpoints, {old} old)");
            }
            None => line.push_str(" (no data yet)"),
        }
    }
    let _ = write!(line, "; {} seen, {} selected", src.seen, src.selected);
    let _ = write!(line, "; clusters {}", src.clusters.join(", "));
    out.push_str(&line);
    out.push('\n');
    if let Some(error) = &src.error {
        let _ = writeln!(out, "    error: {error}");
    }
    for skip in &src.skipped {
        let _ = writeln!(out, "    skipped {} for {}: {}", skip.object, skip.cluster, skip.reason);
    }
}

/// Most endpoints listed one per line, unreachable ones first.
const MAX_PROBE_LINES: usize = 10;

fn render_probes(out: &mut String, cluster: &str, p: &ClusterProbes, now: u64) {
    let _ = writeln!(out, "  {cluster} ({}): {}", p.kind, p.summary);
    if let Some(note) = &p.note {
        let _ = writeln!(out, "    note: {note}");
    }
    let mut listed: Vec<_> = p.results.iter().filter(|r| r.state == ProbeState::Unreachable).collect();
    listed.extend(p.results.iter().filter(|r| r.state != ProbeState::Unreachable));
    for r in listed.iter().take(MAX_PROBE_LINES) {
        let zone = r.zone.as_deref().map_or_else(String::new, |z| format!(" ({z})"));
        let since = r.since_ms.map_or_else(String::new, |t| format!(" since {}", ago(now, t)));
        let what = match r.state {
            ProbeState::Reachable => {
                format!("reachable{since}, {:.1} ms", r.latency_ms.unwrap_or_default())
            }
            ProbeState::Unreachable => format!("UNREACHABLE{since}: {}", r.error.as_deref().unwrap_or("?")),
            ProbeState::Unknown => "not probed yet".to_string(),
        };
        let _ = writeln!(out, "    {}{zone} {what}", r.address);
    }
    if listed.len() > MAX_PROBE_LINES {
        let _ = writeln!(out, "    ... {} more (see /status)", listed.len() - MAX_PROBE_LINES);
    }
}

fn endpoint(e: &RegisteredEndpoint) -> String {
    let mut tags: Vec<String> = Vec::new();
    if let Some(z) = &e.zone {
        tags.push(format!("zone {z}"));
    }
    if let Some(w) = e.weight {
        tags.push(format!("weight {w}"));
    }
    tags.extend(e.metadata.iter().map(|(k, v)| format!("{k}={v}")));
    if tags.is_empty() { e.address.clone() } else { format!("{} ({})", e.address, tags.join(", ")) }
}
