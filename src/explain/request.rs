//! The request to explain: a URL, a method and headers, as `curl` would
//! send them, turned into what Envoy's router sees. Pure.

use serde::{Deserialize, Serialize};

use super::matching::Seen;

/// What the client asks to explain (the body of `POST /v1/explain`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainRequest {
    /// `http://host[:port]/path?query`; the scheme may be left out.
    pub url: String,
    /// Default `GET`.
    pub method: Option<String>,
    /// `name: value` pairs, in order; a `Host` header replaces the URL's.
    pub headers: Vec<(String, String)>,
    pub proxy: Option<String>,
}

/// Input that names nothing to explain (exit 64, HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// The request as it reaches a proxy's listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    /// The listener's port: the URL's, or 80.
    pub port: u16,
    /// The `Host` header sent.
    pub authority: String,
    /// The URL's `host[:port]`, where the request is sent.
    pub target: String,
    /// The path with its query string, without any fragment.
    pub path: String,
    pub method: String,
    /// Every other header, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Headers Envoy sets before routing when the client sent none.
    pub added_by_envoy: Vec<(String, String)>,
    /// A `tcp://host:port` connection, for a TCP service: no HTTP at all.
    pub tcp: bool,
}

impl Request {
    /// Parses what a client sends, as curl would send it.
    pub fn parse(r: &ExplainRequest) -> Result<Self, BadRequest> {
        let bad = |why: String| Err(BadRequest(why));
        let url = r.url.trim();
        let (rest, tcp) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tcp") => (rest, true),
            Some((scheme, _)) => {
                return bad(format!(
                    "{url:?}: a proxy's listeners speak plain HTTP or TCP; \
                     expected an http:// or tcp:// URL, not {scheme}://"
                ));
            }
            None => (url, false),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() {
            return bad(format!("{url:?} names no host; expected e.g. http://demo.example.com:8888/api"));
        }
        if authority.contains('@') {
            return bad(format!("{url:?}: user names in URLs are not supported"));
        }
        let port = match port_of(authority) {
            Ok(None) if tcp => return bad(format!("{url:?} names no port; expected e.g. tcp://localhost:15432")),
            Ok(p) => p.unwrap_or(80),
            Err(()) => return bad(format!("{url:?}: the port of {authority:?} is not a number from 1 to 65535")),
        };
        if let Some(c) = path.chars().chain(authority.chars()).find(|c| c.is_whitespace() || c.is_control()) {
            return bad(format!("{url:?} contains {c:?}; percent-encode it"));
        }
        let method = r.method.clone().unwrap_or_else(|| "GET".to_string());
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphanumeric() || "-_!#$%&'*+.^`|~".contains(c)) {
            return bad(format!("{method:?} is not an HTTP method"));
        }
        let mut host = authority.to_string();
        let mut headers = Vec::new();
        for (k, v) in &r.headers {
            let name = k.trim().to_ascii_lowercase();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic() && !"()<>@,;\\\"/[]?={}:".contains(c)) {
                return bad(format!("{k:?} is not a header name"));
            }
            if v.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
                return bad(format!("the value of header {k} contains CR, LF or NUL"));
            }
            let value = v.trim().to_string();
            if name == "host" {
                host = value;
            } else {
                headers.push((name, value));
            }
        }
        // Envoy's connection manager sets these before routing, when missing.
        let mut added_by_envoy = Vec::new();
        for (name, value) in [("x-forwarded-proto", "http"), ("x-request-id", "(a generated UUID)")] {
            if !headers.iter().any(|(k, _)| k == name) {
                added_by_envoy.push((name.to_string(), value.to_string()));
            }
        }
        Ok(Request { port, authority: host, target: authority.to_string(), path, method, headers, added_by_envoy, tcp })
    }

    /// The URL the request is sent to (for messages).
    pub fn url(&self) -> String {
        if self.tcp { format!("tcp://{}", self.target) } else { format!("http://{}{}", self.target, self.path) }
    }

    /// What Envoy's router matches against.
    pub fn seen(&self) -> Seen<'_> {
        let all: Vec<(String, String)> = self.headers.iter().chain(&self.added_by_envoy).cloned().collect();
        Seen { authority: &self.authority, path: &self.path, method: &self.method, headers: super::header_map(&all) }
    }
}

/// The port of `host[:port]` or `[v6][:port]`; `Err` when it is not a port.
fn port_of(authority: &str) -> Result<Option<u16>, ()> {
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(_, rest)| rest).ok_or(())?,
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    match after_host.strip_prefix(':') {
        None if after_host.is_empty() => Ok(None),
        None => Err(()),
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).map(Some).ok_or(()),
    }
}
