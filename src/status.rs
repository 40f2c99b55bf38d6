//! `devbridge status`: reads `/status` from a running daemon's admin API and
//! renders it for people.
//!
//! The client reads into views of its own, every field defaulted, so a
//! `status` of one version reads a daemon of another; rendering is pure and
//! takes ages against the daemon's clock (`now_ms`), not the caller's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;

use crate::xds::registry::StreamInfo;

/// How long `status` waits to connect and for the whole answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no devbridge answers at {addr}; is `devbridge connect` running? (--admin)")]
    NotRunning { addr: SocketAddr },
    #[error("{addr} did not answer /status within {timeout:?}; is it devbridge's admin address? (--admin)")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} does not speak devbridge's admin API ({reason}); is it devbridge's admin address? (--admin)")]
    NotDevbridge { addr: SocketAddr, reason: String },
}

/// The body of `GET /status` at `addr`.
pub async fn fetch(addr: SocketAddr, timeout: Duration) -> Result<String, StatusError> {
    let not_devbridge = |reason: String| StatusError::NotDevbridge { addr, reason };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|_| StatusError::NotRunning { addr })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| not_devbridge(e.to_string()))?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/status")
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::new())
            .expect("a static request is valid");
        let resp = sender.send_request(req).await.map_err(|e| not_devbridge(e.to_string()))?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| not_devbridge(e.to_string()))?.to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(not_devbridge(format!("/status answered HTTP {status}")));
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| StatusError::Timeout { addr, timeout })?
}

/// What `devbridge status` exits with when the daemon answers but is not
/// ready (it prints `NOT READY`), so scripts can wait on it. Ready is 0; no
/// daemon answering is 69.
pub const EXIT_NOT_READY: u8 = 1;

/// The exit code for a status that was read: 0 when ready, else
/// [`EXIT_NOT_READY`].
pub fn exit_code(s: &StatusView) -> u8 {
    if s.ready { 0 } else { EXIT_NOT_READY }
}

/// Parses a `/status` body.
pub fn parse(addr: SocketAddr, body: &str) -> Result<StatusView, StatusError> {
    serde_json::from_str(body)
        .map_err(|e| StatusError::NotDevbridge { addr, reason: format!("/status is not JSON: {e}") })
}

/// What `status` reads of `/status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatusView {
    pub devbridge: String,
    pub now_ms: u64,
    pub ready: bool,
    pub profile: Option<ProfileView>,
    pub reload: ReloadView,
    pub proxies: BTreeMap<String, ProxyView>,
    pub registered: BTreeMap<String, Vec<EndpointView>>,
    pub envoys: Vec<StreamInfo>,
    pub sources: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProfileView {
    pub name: String,
    pub file: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReloadView {
    pub file: String,
    pub loaded_at_ms: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_change: Option<String>,
    pub error: Option<ReloadErrorView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReloadErrorView {
    pub at_ms: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProxyView {
    pub version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EndpointView {
    pub address: String,
    pub zone: Option<String>,
    pub weight: Option<u32>,
    pub metadata: BTreeMap<String, String>,
}

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
pub fn render(s: &StatusView, addr: &str) -> String {
    let mut out = String::new();
    let now = s.now_ms;
    let ready = if s.ready { "ready" } else { "NOT READY" };
    let _ = writeln!(out, "devbridge {} at {addr}: {ready}", s.devbridge);
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
    }

    let _ = writeln!(out, "envoys: {} connected", s.envoys.len());
    for e in &s.envoys {
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
    let _ = writeln!(out, "  {who} from {peer}, connected {}", ago(now, e.connected_at_ms));
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
    }
}

/// A source is shown by its `name`, `kind` and `state`, then any other
/// fields as `key=value`: their shape belongs to discovery.
fn render_source(out: &mut String, src: &Value, now: u64) {
    let text = |k: &str| src.get(k).and_then(Value::as_str).map(str::to_string);
    let num = |k: &str| src.get(k).and_then(Value::as_u64);
    let mut line = format!("  {}: {}", text("name").unwrap_or_else(|| "?".into()), text("state").unwrap_or_default());
    if let Some(since) = num("since_ms") {
        let _ = write!(line, " since {}", ago(now, since));
    }
    if text("state").as_deref() == Some("degraded") {
        match num("data_age_ms") {
            Some(ms) => {
                let old = ago(now, now.saturating_sub(ms)).trim_end_matches(" ago").to_string();
                let _ = write!(line, " (serving the last known endpoints, {old} old)");
            }
            None => line.push_str(" (no data yet)"),
        }
    }
    let _ = write!(line, "; {} seen, {} selected", num("seen").unwrap_or(0), num("selected").unwrap_or(0));
    if let Some(clusters) = src.get("clusters").and_then(Value::as_array) {
        let names: Vec<&str> = clusters.iter().filter_map(Value::as_str).collect();
        let _ = write!(line, "; clusters {}", names.join(", "));
    }
    out.push_str(&line);
    out.push('\n');
    if let Some(error) = text("error") {
        let _ = writeln!(out, "    error: {error}");
    }
    for skip in src.get("skipped").and_then(Value::as_array).into_iter().flatten() {
        let f = |k: &str| skip.get(k).and_then(Value::as_str).unwrap_or("?");
        let _ = writeln!(out, "    skipped {} for {}: {}", f("object"), f("cluster"), f("reason"));
    }
}

fn endpoint(e: &EndpointView) -> String {
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

#[cfg(test)]
mod tests;
