//! Envoy's request matching, as `xds::translate` configures it, with the
//! reason for every verdict. Pure.
//!
//! - Virtual host: the `Host` header, lower-cased, against each domain's
//!   names: exact names first, then `*.suffix` wildcards longest first (a
//!   wildcard matches at least one character); the port is part of the name
//!   (translate lists every host with and without `:port`).
//! - Route: first match wins. The path (without the query string) is
//!   matched case-sensitively by prefix, exactly, or by a regex that must
//!   match all of it; every header matcher must hold (a missing header fails
//!   a value matcher even when inverted; `present` compares presence, and
//!   `invert` flips it); every query parameter matcher must hold (the first
//!   value of the parameter, not percent-decoded); methods are a regex on
//!   `:method`.
//! - Regexes are RE2 full matches. The `regex` crate speaks RE2's syntax;
//!   its `\d`, `\w`, `\s` and `\b` are Unicode-aware where RE2's are ASCII,
//!   so ASCII input (every path, nearly every header) is matched with
//!   Unicode off, which is RE2 exactly. Other input may differ from Envoy
//!   on those four classes only.

use std::collections::BTreeMap;

use crate::model::{Domain, PathMatch, Route, ValueMatch, ValueMatchKind};

/// A request as Envoy's router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen<'a> {
    /// `:authority` (the `Host` header), as sent.
    pub authority: &'a str,
    /// `:path` as sent, with the query string.
    pub path: &'a str,
    pub method: &'a str,
    /// Every other header by lower-case name, values in order.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Seen<'_> {
    /// The path without query string or fragment, as Envoy's path matchers see it.
    pub fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or_default()
    }

    /// A header's values, the pseudo-headers included.
    pub fn header(&self, name: &str) -> Option<Vec<String>> {
        let one = |v: &str| Some(vec![v.to_string()]);
        match name {
            ":method" => one(self.method),
            ":path" => one(self.path),
            ":authority" => one(self.authority),
            ":scheme" => one("http"),
            _ => self.headers.get(name).cloned(),
        }
    }

    /// The first value of a query parameter, as Envoy reads it: split on
    /// `&`, the name before the first `=`, nothing decoded; a parameter
    /// without `=` has the empty value.
    pub fn query(&self, name: &str) -> Option<&str> {
        let query = self.path.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or_default();
        query.split('&').find_map(|p| match p.split_once('=') {
            Some((k, v)) => (k == name).then_some(v),
            None => (p == name).then_some(""),
        })
    }
}

/// How a host matched a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMatch {
    /// Index into the domains given.
    pub domain: usize,
    /// The virtual host's entry that matched, e.g. `demo.example.com:8888` or `*.example.com`.
    pub entry: String,
    pub wildcard: bool,
}

/// The names translate gives a domain's virtual host, in its order.
pub fn virtual_host_names(d: &Domain) -> Vec<String> {
    let mut names = Vec::new();
    for h in std::iter::once(&d.host).chain(&d.aliases) {
        let h = if h.contains(':') { format!("[{h}]") } else { h.clone() };
        names.push(h.clone());
        names.push(format!("{h}:{}", d.port));
    }
    names
}

/// The virtual host Envoy picks for `authority` among `domains` (one port's).
pub fn find_virtual_host(domains: &[&Domain], authority: &str) -> Option<HostMatch> {
    let host = authority.to_ascii_lowercase();
    let names: Vec<(usize, String)> =
        domains.iter().enumerate().flat_map(|(i, d)| virtual_host_names(d).into_iter().map(move |n| (i, n))).collect();
    if let Some((i, n)) = names.iter().find(|(_, n)| *n == host) {
        return Some(HostMatch { domain: *i, entry: n.clone(), wildcard: false });
    }
    // Longest suffix first; the `*` stands for at least one character.
    let mut wildcards: Vec<&(usize, String)> = names.iter().filter(|(_, n)| n.starts_with('*')).collect();
    wildcards.sort_by_key(|(_, n)| std::cmp::Reverse(n.len()));
    wildcards.into_iter().find(|(_, n)| host.len() > n.len() - 1 && host.ends_with(&n[1..])).map(|(i, n)| HostMatch {
        domain: *i,
        entry: n.clone(),
        wildcard: true,
    })
}

/// One condition of a route and whether the request met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `path`, `header`, `query` or `method`.
    pub kind: &'static str,
    /// The condition, e.g. `prefix /api` or `x-dev = "canary"`.
    pub what: String,
    pub ok: bool,
    /// Why it held or failed, naming what the request had.
    pub why: String,
}

/// Every condition of `route` against `req`, in Envoy's order of checking.
/// The route matches when all hold.
pub fn conditions(route: &Route, req: &Seen) -> Vec<Condition> {
    let m = &route.matcher;
    let mut out = vec![path_condition(&m.path, req.path_only())];
    for h in &m.headers {
        out.push(header_condition(h, req));
    }
    if !m.methods.is_empty() {
        let ok = m.methods.iter().any(|x| x == req.method);
        let why = if ok {
            format!("method is {}", req.method)
        } else {
            format!("method is {}, not {}", req.method, m.methods.join(" or "))
        };
        out.push(Condition { kind: "method", what: m.methods.join("|"), ok, why });
    }
    for q in &m.query {
        out.push(query_condition(q, req));
    }
    out
}

fn path_condition(p: &PathMatch, path: &str) -> Condition {
    let (what, ok) = match p {
        PathMatch::Prefix(x) => (format!("prefix {x}"), path.starts_with(x.as_str())),
        PathMatch::Exact(x) => (format!("path {x}"), path == x),
        PathMatch::Regex(x) => (format!("regex {x}"), full_match(x, path)),
    };
    let why = match (p, ok) {
        (PathMatch::Prefix(x), false) => format!("{path} does not start with {x}"),
        (PathMatch::Prefix(x), true) => format!("{path} starts with {x}"),
        (PathMatch::Exact(x), false) => format!("{path} is not {x}"),
        (PathMatch::Exact(_), true) => format!("{path} is the path"),
        (PathMatch::Regex(_), false) => format!("{path} does not match all of it"),
        (PathMatch::Regex(_), true) => format!("{path} matches"),
    };
    Condition { kind: "path", what, ok, why }
}

/// `name = "v"`, `name ^= "v"`, `name ~ /re/` or `name present`, with `not` when inverted.
pub fn describe_value(v: &ValueMatch, sep: &str) -> String {
    let not = if v.invert { "not " } else { "" };
    match &v.kind {
        ValueMatchKind::Exact(x) => format!("{}{sep}{not}= {x:?}", v.name),
        ValueMatchKind::Prefix(x) => format!("{}{sep}{not}starts with {x:?}", v.name),
        ValueMatchKind::Regex(x) => format!("{}{sep}{not}matches /{x}/", v.name),
        ValueMatchKind::Present(true) => format!("{} {not}present", v.name),
        ValueMatchKind::Present(false) => format!("{} {}absent", v.name, not),
    }
}

fn value_ok(kind: &ValueMatchKind, value: &str) -> bool {
    match kind {
        ValueMatchKind::Exact(x) => value == x,
        ValueMatchKind::Prefix(x) => value.starts_with(x.as_str()),
        ValueMatchKind::Regex(x) => full_match(x, value),
        ValueMatchKind::Present(_) => true,
    }
}

fn header_condition(h: &ValueMatch, req: &Seen) -> Condition {
    let what = describe_value(h, " ");
    let value = req.header(&h.name);
    let (ok, why) = match (&h.kind, &value) {
        (ValueMatchKind::Present(p), v) => {
            let present = v.is_some();
            let ok = (present == *p) != h.invert;
            (ok, if present { format!("{} is sent", h.name) } else { format!("{} is not sent", h.name) })
        }
        // A value matcher never matches a missing header, inverted or not.
        (_, None) => (false, format!("{} is not sent", h.name)),
        (kind, Some(values)) => {
            let ok = values.iter().any(|v| value_ok(kind, v)) != h.invert;
            let shown: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            (ok, format!("{} is {}", h.name, shown.join(", ")))
        }
    };
    Condition { kind: "header", what, ok, why }
}

fn query_condition(q: &ValueMatch, req: &Seen) -> Condition {
    let what = describe_value(q, " ");
    let (ok, why) = match req.query(&q.name) {
        None => (false, format!("?{} is not in the query", q.name)),
        Some(v) => (value_ok(&q.kind, v), format!("?{} is {v:?}", q.name)),
    };
    Condition { kind: "query", what, ok, why }
}

/// Whether `re` matches all of `text`, as RE2's full match does.
pub fn full_match(re: &str, text: &str) -> bool {
    let anchored = format!("^(?:{re})$");
    if text.is_ascii()
        && let Ok(r) = regex::bytes::RegexBuilder::new(&anchored).unicode(false).build()
    {
        return r.is_match(text.as_bytes());
    }
    regex::Regex::new(&anchored).is_ok_and(|r| r.is_match(text))
}
