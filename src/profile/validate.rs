//! Raw profile -> validated [`Profile`], collecting every problem at once.
//!
//! Each error names the file, the line and column of the offending value, the
//! key path (`domains[0].routes[2].cluster`), the bad value and what was
//! expected. Validation is pure: it never touches the file system or network.
//!
//! This file holds the error types, the entry point, the walk over the whole
//! profile and the checks shared by every section; the sections themselves
//! live in `clusters` (sources, health checks), `routes` (domains, matches,
//! actions, shadowing), `proxies` (zones, domains served, node identity),
//! `proxyless` (what a gRPC client takes) and `tracing` (the span collector).
//! All of them add methods to the one `Cx` that collects errors.

mod clusters;
mod doc;
mod proxies;
mod proxyless;
mod re2;
mod routes;
#[cfg(test)]
mod tests;
mod tracing;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;

use super::raw::*;
use super::*;

/// Envoy's admin default, used when a proxy names none.
pub const DEFAULT_ENVOY_ADMIN: &str = "127.0.0.1:9901";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_ON: &[&str] = &["5xx", "reset", "connect-failure"];
/// The header that carries the developer's identity when `[identity]` names none.
pub const DEFAULT_IDENTITY_HEADER: &str = "x-dev-user";

/// One located problem in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Key path of the offending value, e.g. `domains[0].routes[2].cluster`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// How many errors a report lists; the rest are only counted, so a profile
/// with thousands of mistakes (one repeated route) reads as a report.
pub const MAX_REPORTED_ERRORS: usize = 50;

/// Every problem found in a profile, in file order: the first
/// [`MAX_REPORTED_ERRORS`], and how many more were found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileErrors(pub Vec<ProfileError>, pub usize);

impl ProfileErrors {
    /// Every error found, listed or not.
    pub fn total(&self) -> usize {
        self.0.len() + self.1
    }

    /// The report line by line: each listed error, then the line that
    /// stands for the rest, as every reader of a report shows it.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).chain(self.more()).collect()
    }

    /// The line that stands for the errors not listed, if any.
    pub fn more(&self) -> Option<String> {
        (self.1 > 0).then(|| format!("... and {} more (only the first {} are listed)", self.1, self.0.len()))
    }
}

impl From<Vec<ProfileError>> for ProfileErrors {
    fn from(mut errors: Vec<ProfileError>) -> Self {
        let more = errors.len().saturating_sub(MAX_REPORTED_ERRORS);
        errors.truncate(MAX_REPORTED_ERRORS);
        Self(errors, more)
    }
}

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        if let Some(more) = self.more() {
            write!(f, "\n{more}")?;
        }
        Ok(())
    }
}

/// Parses and validates profile text. `file` is used in messages only;
/// `default_name` is the profile name when the file gives none.
pub fn parse_profile(file: &str, default_name: &str, src: &str) -> Result<Profile, ProfileErrors> {
    let mut cx = Cx::new(file, src);
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            // A duplicate key is pointed at by the span; other syntax errors
            // point at whatever character broke the grammar, no key to name.
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim();
            let key = src.get(span.clone()).filter(|k| message.starts_with("duplicate key") && !k.contains('\n'));
            cx.err(span, key.unwrap_or(""), message);
            return Err(cx.finish());
        }
    };
    if doc.get_ref().is_empty() {
        // Serving nothing is never what was meant: a profile with no keys is
        // a file not written yet, or emptied by mistake.
        cx.err(
            0..0,
            "",
            "the profile is empty (no keys, only blank lines or comments); expected at least a [proxies.NAME] table",
        );
        return Err(cx.finish());
    }
    let Some(raw) = cx.deserialize(doc) else {
        return Err(cx.finish());
    };
    let mut profile = cx.profile(raw, default_name);
    profile.text = crate::model::TextHash::of(src.as_bytes());
    if cx.errors.is_empty() { Ok(profile) } else { Err(cx.finish()) }
}

/// The validation context: the text being checked and the errors found so far.
struct Cx<'a> {
    file: &'a str,
    src: &'a str,
    /// Byte offset of the start of each line, to turn spans into line:column.
    line_starts: Vec<usize>,
    errors: Vec<ProfileError>,
    /// Key paths of tables that had unknown keys removed: what they mean is
    /// uncertain (a `prefx` read as no prefix), so no other error is
    /// inferred from comparing them with the rest.
    tainted: std::collections::HashSet<String>,
}

impl<'a> Cx<'a> {
    fn new(file: &'a str, src: &'a str) -> Self {
        let line_starts = std::iter::once(0).chain(src.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Cx { file, src, line_starts, errors: Vec::new(), tainted: Default::default() }
    }

    /// Every error, in file order, capped.
    fn finish(&mut self) -> ProfileErrors {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|e| (e.line, e.column));
        ProfileErrors::from(errors)
    }

    fn err(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let at = span.start.min(self.src.len());
        let line = self.line_starts.partition_point(|s| *s <= at);
        let start = self.line_starts[line - 1];
        let column = self.src.get(start..at).map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(ProfileError {
            file: self.file.to_string(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        });
    }

    /// The raw profile, reporting every unknown key (each located, with its
    /// key path and the nearest known key) rather than only the first.
    ///
    /// serde stops at the first unknown key and names the keys its table
    /// takes; each unknown key is then removed from the document, with every
    /// other key of the same kind of table that the list does not name, and
    /// the document read again. Any other error (a wrong type, a missing
    /// key) ends the reading: what follows it cannot be read soundly.
    fn deserialize(&mut self, mut doc: S<DeTable<'a>>) -> Option<RawProfile> {
        for _ in 0..MAX_REPORTED_ERRORS {
            let e = match RawProfile::deserialize(toml::de::Deserializer::from(doc.clone())) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim();
            if let Some(rest) = message.strip_prefix("unknown field `") {
                // serde's text: "unknown field `x`, expected `a`" or
                // "... expected one of `a`, `b`" or "... there are no fields".
                let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
                let found = doc::find_key(doc.get_ref(), &span);
                if let Some(path) = found {
                    let removed = doc::remove_unknown(doc.get_mut(), &path[..path.len() - 1], &expected);
                    for doc::Removed { span, key, name, table } in &removed {
                        self.tainted.insert(table.clone());
                        let message = match nearest(name, expected.iter().copied()) {
                            Some(near) => format!("unknown key {name:?}; did you mean {near:?}?"),
                            None if expected.is_empty() => format!("unknown key {name:?}; this table takes no keys"),
                            None => format!("unknown key {name:?}; expected one of: {}", expected.join(", ")),
                        };
                        self.err(span.clone(), key.clone(), message);
                    }
                    if !removed.is_empty() {
                        continue;
                    }
                }
            }
            let (span, key) = doc::locate(doc.get_ref(), span);
            // serde names the Rust type of a value that is a number or a name.
            let message = if message.ends_with("untagged enum RawPort") {
                "invalid type: expected a port number or a port name"
            } else {
                message
            };
            self.err(span, key, message.to_string());
            return None;
        }
        None
    }
    fn profile(&mut self, raw: RawProfile, default_name: &str) -> Profile {
        let name = match raw.name {
            Some(n) => {
                self.check_name(&n, "name");
                n.into_inner()
            }
            None => default_name.to_string(),
        };
        let listen = raw.listen.map(|l| self.listen(l)).unwrap_or_default();

        let mut zones = BTreeMap::new();
        for (name, z) in raw.zones {
            self.check_name(&name, &format!("zones.{}", name.get_ref()));
            let name = name.into_inner();
            zones.insert(name.clone(), Zone { name, description: z.description });
        }

        // References are checked against every name the file declares, valid
        // or not: a cluster with a bad timeout is reported once, not again by
        // each route that uses it.
        let cluster_names: BTreeSet<String> = raw.clusters.keys().map(|n| n.get_ref().clone()).collect();
        let mut clusters = BTreeMap::new();
        for (name, c) in raw.clusters {
            let key = format!("clusters.{}", name.get_ref());
            self.check_name(&name, &key);
            if let Some(c) = self.cluster(&name, c, &key) {
                clusters.insert(c.name.clone(), c);
            }
        }

        let domain_names: BTreeSet<String> = raw.domains.iter().map(|d| d.name.get_ref().clone()).collect();
        let mut domains = BTreeMap::new();
        // (host, port) -> the domain that claims it, to catch duplicates.
        let mut hosts: BTreeMap<(String, u16), String> = BTreeMap::new();
        for (i, d) in raw.domains.into_iter().enumerate() {
            let key = format!("domains[{i}]");
            if let Some(d) = self.domain(d, &key, &cluster_names, &clusters, &mut hosts) {
                if domains.contains_key(&d.name) {
                    continue; // reported by `domain` through `hosts`
                }
                domains.insert(d.name.clone(), d);
            }
        }

        fill_subset_keys(&mut clusters, &domains);
        let identity_header = match raw.identity.map(S::into_inner) {
            None => Some(DEFAULT_IDENTITY_HEADER.to_string()),
            Some(RawIdentity { enabled: Some(false), .. }) => None,
            Some(RawIdentity { header: None, .. }) => Some(DEFAULT_IDENTITY_HEADER.to_string()),
            Some(RawIdentity { header: Some(h), .. }) => self.identity_header(&h),
        };
        let overrides = raw
            .overrides
            .iter()
            .enumerate()
            .filter_map(|(i, o)| self.standing_override(i, o.get_ref(), &domains, &cluster_names))
            .collect();
        let proxies = self.proxies(raw.proxies, &zones, &domain_names, &domains, &cluster_names, &clusters);
        let tracing = raw.tracing.and_then(|t| self.tracing(t, &cluster_names));

        Profile {
            name,
            file: self.file.to_string(),
            description: raw.description,
            listen,
            zones,
            proxies,
            domains,
            clusters,
            tracing,
            identity_header,
            overrides,
            text: Default::default(),
        }
    }

    fn identity_header(&mut self, h: &S<String>) -> Option<String> {
        let lower = h.get_ref().to_ascii_lowercase();
        if !is_header_name(&lower) || lower == "host" {
            self.err(
                h.span(),
                "identity.header",
                format!("{:?} is not a header name, e.g. \"x-dev-user\"", h.get_ref()),
            );
            return None;
        }
        Some(lower)
    }

    /// `[[overrides]]` entry `i`: a known domain, a path prefix, exactly one
    /// of `to` (an address) and `cluster`.
    fn standing_override(
        &mut self,
        i: usize,
        o: &RawOverride,
        domains: &BTreeMap<String, Domain>,
        clusters: &BTreeSet<String>,
    ) -> Option<Override> {
        let key = format!("overrides[{i}]");
        let before = self.errors.len();
        if !domains.contains_key(o.domain.get_ref()) {
            let known = known_list(domains.keys(), "none");
            self.err(
                o.domain.span(),
                format!("{key}.domain"),
                format!("{:?} is not a domain; known domains: {known}", o.domain.get_ref()),
            );
        }
        let prefix = match &o.prefix {
            None => Some("/".to_string()),
            Some(p) => self.path(p, &format!("{key}.prefix")),
        };
        let mut headers = Vec::new();
        for (k, v) in &o.headers {
            let lower = k.get_ref().to_ascii_lowercase();
            if !is_header_name(&lower) {
                self.err(k.span(), format!("{key}.headers"), format!("{:?} is not a header name", k.get_ref()));
            }
            self.header_value(v, &format!("{key}.headers.{}", k.get_ref()));
            headers.push((lower, v.get_ref().clone()));
        }
        let to = match (&o.to, &o.cluster) {
            (Some(a), None) => self.socket_addr(a, &format!("{key}.to")).map(OverrideTarget::Address),
            (None, Some(c)) => self
                .cluster_ref(c, &format!("{key}.cluster"), clusters)
                .then(|| OverrideTarget::Cluster(c.get_ref().clone())),
            _ => {
                self.err(
                    o.domain.span(),
                    key.clone(),
                    "expected exactly one of to = \"127.0.0.1:5000\" or cluster = \"NAME\"",
                );
                None
            }
        };
        if self.errors.len() > before {
            return None;
        }
        Some(Override {
            id: format!("profile-{i}"),
            domain: o.domain.get_ref().clone(),
            prefix: prefix?,
            headers,
            to: to?,
            mirror: o.mirror,
            fault: None,
            proxy: None,
            expires_at_ms: None,
        })
    }

    fn listen(&mut self, l: RawListen) -> ListenOverrides {
        let xds = l.xds.as_ref().and_then(|a| self.socket_addr(a, "listen.xds"));
        let admin = l.admin.as_ref().and_then(|a| self.socket_addr(a, "listen.admin"));
        // Port 0 asks the OS for a free port, so two of those never collide.
        if let (Some(a), Some(v)) = (admin, &l.admin)
            && xds == admin
            && a.port() != 0
        {
            self.err(v.span(), "listen.admin", format!("{a} is also listen.xds; expected a different address or port"));
        }
        ListenOverrides { xds, admin }
    }

    fn check_name(&mut self, name: &S<String>, key: &str) {
        let ok = !name.get_ref().is_empty()
            && name.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                name.span(),
                key,
                format!("{:?} is not a valid name; expected letters, digits, '-', '_' or '.'", name.get_ref()),
            );
        }
    }

    fn socket_addr(&mut self, v: &S<String>, key: &str) -> Option<SocketAddr> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(v.span(), key, format!("{:?} is not an ip:port address, e.g. 127.0.0.1:9001", v.get_ref()));
                None
            }
        }
    }

    fn duration(&mut self, v: &S<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.err(v.span(), key, "a duration of zero is not allowed; expected e.g. \"250ms\"");
                None
            }
            Err(_) => {
                self.err(
                    v.span(),
                    key,
                    format!("{:?} is not a duration; expected e.g. \"250ms\", \"5s\", \"1m\"", v.get_ref()),
                );
                None
            }
        }
    }

    /// An optional duration: `None` when absent, `Some(None)` when invalid (reported).
    fn opt_duration(&mut self, v: &Option<S<String>>, key: &str) -> Option<Option<Duration>> {
        match v {
            None => Some(None),
            Some(v) => self.duration(v, key).map(Some),
        }
    }

    fn int(&mut self, v: &S<i64>, key: &str, range: RangeInclusive<i64>) -> Option<u32> {
        let n = *v.get_ref();
        if range.contains(&n) {
            u32::try_from(n).ok()
        } else {
            self.err(v.span(), key, format!("{n} is out of range; expected {} to {}", range.start(), range.end()));
            None
        }
    }

    fn regex(&mut self, v: &S<String>, key: &str) -> Option<String> {
        // The `regex` crate implements RE2's syntax (no backreferences, no
        // look-around), which is what Envoy's safe_regex uses.
        match regex::Regex::new(v.get_ref()) {
            Ok(_) => match re2::program_size(v.get_ref()) {
                Some(n) if n > re2::ENVOY_MAX_PROGRAM_SIZE => {
                    self.err(
                        v.span(),
                        key,
                        format!(
                            "{:?} is too large for Envoy: its RE2 program size is about {n}, over Envoy's limit of {}; \
                             expected a simpler regex (fewer repetitions, alternatives or Unicode classes)",
                            v.get_ref(),
                            re2::ENVOY_MAX_PROGRAM_SIZE
                        ),
                    );
                    None
                }
                _ => Some(v.get_ref().clone()),
            },
            Err(e) => {
                // A syntax error renders as the pattern, a caret line and
                // `error: <why>`; keep only the why.
                let detail = e.to_string();
                let detail = detail.lines().last().unwrap_or("").trim();
                let detail = detail.strip_prefix("error: ").unwrap_or(detail);
                self.err(v.span(), key, format!("{:?} is not a valid RE2 regex: {detail}", v.get_ref()));
                None
            }
        }
    }

    /// A header value Envoy would take: no CR, LF or NUL, which it refuses
    /// (they would split or end the header on the wire).
    fn header_value(&mut self, v: &S<String>, key: &str) -> bool {
        let bad = v.get_ref().chars().find(|c| matches!(c, '\r' | '\n' | '\0'));
        if let Some(c) = bad {
            self.err(
                v.span(),
                key,
                format!("{:?} contains {c:?}; Envoy refuses CR, LF and NUL in header values", v.get_ref()),
            );
        }
        bad.is_none()
    }

    fn one_of<'s>(&mut self, v: &'s S<String>, key: &str, allowed: &[&str]) -> Option<&'s str> {
        if allowed.contains(&v.get_ref().as_str()) {
            return Some(v.get_ref());
        }
        let message = match nearest(v.get_ref(), allowed.iter().copied()) {
            Some(near) => format!("{:?} is not allowed; did you mean {near:?}?", v.get_ref()),
            None => format!("{:?} is not allowed; expected one of: {}", v.get_ref(), allowed.join(", ")),
        };
        self.err(v.span(), key, message);
        None
    }

    fn path(&mut self, p: &S<String>, key: &str) -> Option<String> {
        if p.get_ref().starts_with('/') {
            Some(p.get_ref().clone())
        } else {
            self.err(p.span(), key, format!("{:?} must start with '/'", p.get_ref()));
            None
        }
    }

    /// A host name, optionally with `:port`, as Envoy takes for host rewrites and redirects.
    fn host(&mut self, h: &S<String>, key: &str) -> Option<String> {
        let host = split_host_port(h.get_ref()).map_or(h.get_ref().as_str(), |(h, _)| h);
        if valid_host(host) {
            Some(h.get_ref().clone())
        } else {
            self.err(h.span(), key, format!("{:?} is not a host name", h.get_ref()));
            None
        }
    }
}

/// Each cluster's label sets that routes pick its endpoints by: a route's
/// `subset` together with a split entry's, as Envoy merges them.
fn fill_subset_keys(clusters: &mut BTreeMap<String, Cluster>, domains: &BTreeMap<String, Domain>) {
    let mut keys: BTreeMap<&str, BTreeSet<Vec<String>>> = BTreeMap::new();
    for r in domains.values().flat_map(|d| &d.routes) {
        let RouteAction::Forward(f) = &r.action else { continue };
        let picks: Vec<(&str, Labels)> = match &f.target {
            Target::Cluster(c) => vec![(c.as_str(), f.subset.clone())],
            Target::Weighted(ws) => ws
                .iter()
                .map(|s| {
                    let mut labels = f.subset.clone();
                    labels.extend(s.subset.clone());
                    (s.cluster.as_str(), labels)
                })
                .collect(),
        };
        for (c, labels) in picks.into_iter().filter(|(_, l)| !l.is_empty()) {
            keys.entry(c).or_default().insert(labels.into_keys().collect());
        }
    }
    for (name, sets) in keys {
        if let Some(c) = clusters.get_mut(name) {
            c.subset_keys = sets.into_iter().collect();
        }
    }
}

/// Whether `name` (lower-cased) is a header name Envoy takes for adding or
/// removing: letters, digits, `-` and `_`.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

/// The candidate closest to `word` by edit distance, when it is close enough
/// to be a likely typo: at most a third of the longer word's length (at
/// least one edit) apart.
pub(crate) fn nearest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word.to_ascii_lowercase(), c), c))
        .filter(|(d, c)| *d <= (word.chars().count().max(c.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `known: a, b` for messages, or `none` when there is nothing to list.
fn known_list<'s>(names: impl IntoIterator<Item = &'s String>, none: &str) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() { none.to_string() } else { names.join(", ") }
}

/// Splits `host:port`, accepting `[v6]:port`.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

fn valid_host(h: &str) -> bool {
    h.parse::<IpAddr>().is_ok()
        || (!h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }))
}

/// Checks Kubernetes label selector syntax: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// `k in (a,b)`, `k notin (a,b)`, joined by commas.
pub(crate) fn check_label_selector(sel: &str) -> Result<(), String> {
    let mut rest = sel.trim();
    if rest.is_empty() {
        return Err("it is empty; expected e.g. \"app=edge-envoy\"".into());
    }
    let key_ok = |k: &str| {
        let name = k.rsplit('/').next().unwrap_or(k);
        !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && k.matches('/').count() <= 1
    };
    let value_ok = |v: &str| v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    loop {
        // A term ends at the first comma outside parentheses. A comma always
        // starts another term, so `app=a,` has an empty one and is rejected.
        let mut depth = 0;
        let comma = rest.char_indices().find(|(_, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => return true,
                _ => {}
            }
            false
        });
        let term = rest[..comma.map_or(rest.len(), |(i, _)| i)].trim();
        let words: Vec<&str> = term.split_whitespace().collect();
        let ok = if let Some((k, v)) =
            term.split_once("!=").or_else(|| term.split_once("==")).or_else(|| term.split_once('='))
        {
            key_ok(k.trim()) && value_ok(v.trim())
        } else if words.len() >= 3 && (words[1] == "in" || words[1] == "notin") {
            let set = words[2..].join("");
            key_ok(words[0])
                && set.starts_with('(')
                && set.ends_with(')')
                && set[1..set.len() - 1].split(',').all(|v| value_ok(v.trim()))
        } else if let Some(k) = term.strip_prefix('!') {
            key_ok(k.trim())
        } else {
            words.len() == 1 && key_ok(term)
        };
        if !ok {
            return Err(format!(
                "term {term:?} is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key"
            ));
        }
        match comma {
            Some((i, _)) => rest = rest[i + 1..].trim(),
            None => return Ok(()),
        }
    }
}
