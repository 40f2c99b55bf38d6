//! What a profile edit changes: a one-line summary for the reload log line
//! and `/status` (the [`Display`](std::fmt::Display) of [`ProfileDiff`]),
//! and per proxy, route by route in words, for `devbridge diff`, which prints
//! the same summary line: what `diff` promises is what reload reports. Pure.

mod words;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Profile, Route};

/// What changed between two profiles, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileDiff {
    pub proxies: NameDiff,
    pub domains: NameDiff,
    pub clusters: NameDiff,
    /// Routes are counted per domain; a route is identified by its match.
    pub routes: Counts,
    /// `[tracing]` was added, removed or changed.
    pub tracing: bool,
    /// Per proxy, each change it would see, in words.
    pub per_proxy: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NameDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// Domains whose routes, the same ones, come in another order (first
    /// match wins, so they may route differently).
    pub reordered: usize,
}

impl ProfileDiff {
    pub fn between(old: &Profile, new: &Profile) -> Self {
        let mut routes = Counts::default();
        for name in old.domains.keys().chain(new.domains.keys()).collect::<BTreeSet<_>>() {
            let by_match = |p: &Profile| -> BTreeMap<String, Route> {
                p.domains
                    .get(name)
                    .map(|d| d.routes.iter().map(|r| (format!("{:?}", r.matcher), r.clone())).collect())
                    .unwrap_or_default()
            };
            let (a, b) = (by_match(old), by_match(new));
            routes.added += b.keys().filter(|k| !a.contains_key(*k)).count();
            routes.removed += a.keys().filter(|k| !b.contains_key(*k)).count();
            // Same match, different action. (A route moved among the others
            // is not counted: after an insertion every later route moves.)
            routes.changed += a.iter().filter(|(k, r)| b.get(*k).is_some_and(|s| s != *r)).count();
            let order = |p: &Profile, other: &BTreeMap<String, Route>| -> Vec<String> {
                p.domains
                    .get(name)
                    .map(|d| {
                        d.routes.iter().map(|r| format!("{:?}", r.matcher)).filter(|k| other.contains_key(k)).collect()
                    })
                    .unwrap_or_default()
            };
            if order(old, &b) != order(new, &a) {
                routes.reordered += 1;
            }
        }
        // Domains compare without their routes, which are counted above.
        let strip = |p: &Profile| -> BTreeMap<String, (String, u16, Vec<String>)> {
            p.domains.iter().map(|(n, d)| (n.clone(), (d.host.clone(), d.port, d.aliases.clone()))).collect()
        };
        Self {
            proxies: NameDiff::of(&old.proxies, &new.proxies),
            domains: NameDiff::of(&strip(old), &strip(new)),
            clusters: NameDiff::of(&old.clusters, &new.clusters),
            routes,
            tracing: old.tracing != new.tracing,
            per_proxy: words::per_proxy(old, new),
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// What `devbridge diff` asks the daemon (the body of `POST /v1/diff`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffRequest {
    /// Where `text` was read from, for messages.
    pub file: Option<String>,
    /// The profile to compare; `None`: the file the daemon follows, as it is on disk now.
    pub text: Option<String>,
}

/// `devbridge diff`'s answer (the body of the admin API's `POST /v1/diff`):
/// the change, or why the new profile cannot be served.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffAnswer {
    /// What is compared against: `profile demo (profiles/demo.toml)`.
    pub against: String,
    /// The file whose profile would be served.
    pub file: String,
    /// Located errors, as `devbridge check` prints them; when any, no diff.
    pub errors: Vec<String>,
    /// The one-line summary, as the reload log line and `/status` show it.
    pub summary: String,
    pub diff: Option<ProfileDiff>,
}

/// What serving `text` (read from `file`) would change against `served`:
/// parsed, validated and checked to translate as a reload does.
pub fn compare(served: &Profile, file: &str, text: &str) -> DiffAnswer {
    let against = format!("profile {} ({})", served.name, served.file);
    let stem = std::path::Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or("profile");
    let errors = |errors: Vec<String>| DiffAnswer {
        against: against.clone(),
        file: file.to_string(),
        errors,
        ..Default::default()
    };
    let new = match super::parse_profile(file, stem, text) {
        Ok(p) => p,
        Err(e) => {
            let mut lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
            lines.extend(e.more());
            return errors(lines);
        }
    };
    if let Err(e) = crate::publish::check(&new) {
        return errors(vec![format!("{file}: the profile is valid but cannot be served: {e}")]);
    }
    let diff = ProfileDiff::between(served, &new);
    DiffAnswer { against, file: file.to_string(), errors: vec![], summary: diff.to_string(), diff: Some(diff) }
}

impl NameDiff {
    fn of<T: PartialEq>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>) -> Self {
        Self {
            added: new.keys().filter(|k| !old.contains_key(*k)).cloned().collect(),
            removed: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
            changed: old.iter().filter(|(k, v)| new.get(*k).is_some_and(|n| n != *v)).map(|(k, _)| k.clone()).collect(),
        }
    }

    fn describe(&self, kind: &str) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.added.iter().map(|n| format!("+{n}")));
        parts.extend(self.removed.iter().map(|n| format!("-{n}")));
        parts.extend(self.changed.iter().map(|n| format!("~{n}")));
        (!parts.is_empty()).then(|| format!("{kind} {}", parts.join(" ")))
    }
}

impl std::fmt::Display for ProfileDiff {
    /// `routes +1 ~2, clusters +films -old ~edge`: `+` added, `-` removed, `~` changed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing Envoy is served changed");
        }
        let r = self.routes;
        let routes = (r != Counts::default()).then(|| {
            let mut parts = Vec::new();
            for (sign, n) in [('+', r.added), ('-', r.removed), ('~', r.changed)] {
                if n > 0 {
                    parts.push(format!("{sign}{n}"));
                }
            }
            if r.reordered > 0 {
                parts.push(format!("reordered in {} domain{}", r.reordered, if r.reordered == 1 { "" } else { "s" }));
            }
            format!("routes {}", parts.join(" "))
        });
        let parts: Vec<String> = [
            routes,
            self.clusters.describe("clusters"),
            self.domains.describe("domains"),
            self.proxies.describe("proxies"),
            self.tracing.then(|| "tracing".to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::parse_profile;

    fn mk_profile(extra: &str) -> Profile {
        let src = format!(
            r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:80"]
[[domains]]
name = "a.test:80"
[[domains.routes]]
prefix = "/api"
cluster = "edge"
{extra}
[clusters.edge.static]
endpoints = [{{ address = "127.0.0.1:9001" }}]
[clusters.old.static]
endpoints = []
"#
        );
        parse_profile("d.toml", "d", &src).unwrap()
    }

    #[test]
    fn an_identical_profile_changes_nothing() {
        let d = ProfileDiff::between(&mk_profile(""), &mk_profile(""));
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "nothing Envoy is served changed");
    }

    #[test]
    fn added_and_changed_routes_and_clusters_are_named() {
        let old = mk_profile("");
        let mut new = mk_profile("[[domains.routes]]\npath = \"/health\"\ndirect_response = { status = 200 }\n");
        new.clusters.remove("old");
        let edge = new.clusters.get_mut("edge").unwrap();
        edge.connect_timeout = std::time::Duration::from_secs(3);
        let d = ProfileDiff::between(&old, &new);
        assert_eq!(d.routes, Counts { added: 1, ..Counts::default() });
        assert_eq!(d.clusters, NameDiff { added: vec![], removed: vec!["old".into()], changed: vec!["edge".into()] });
        assert_eq!((d.domains.clone(), d.proxies.clone(), d.tracing), Default::default());
        assert_eq!(
            d.per_proxy["p"],
            [
                "a.test:80: + route [1] path /health -> direct response 200",
                "cluster edge: connect timeout 1s -> connect timeout 3s",
            ]
        );
        assert_eq!(d.to_string(), "routes +1, clusters -old ~edge");
    }

    #[test]
    fn a_tracing_change_is_named() {
        let old = mk_profile("");
        let new = mk_profile("[tracing]\nzipkin = { cluster = \"edge\", path = \"/api/v2/spans\" }\n");
        assert_eq!(ProfileDiff::between(&old, &new).to_string(), "tracing");
        assert!(ProfileDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn a_route_with_the_same_match_and_a_new_action_is_changed() {
        let old = mk_profile("");
        let mut new = mk_profile("");
        let d = new.domains.get_mut("a.test:80").unwrap();
        d.routes[0].action = crate::profile::RouteAction::DirectResponse { status: 204, body: None };
        assert_eq!(ProfileDiff::between(&old, &new).to_string(), "routes ~1");
    }

    #[test]
    fn a_route_change_is_told_field_by_field() {
        let old = mk_profile("timeout = \"10s\"\n[[domains.routes]]\npath = \"/x\"\ncluster = \"old\"\n");
        let new = mk_profile("timeout = \"5s\"\n[[domains.routes]]\npath = \"/x\"\ncluster = \"edge\"\n");
        let d = ProfileDiff::between(&old, &new);
        assert_eq!(
            d.per_proxy["p"],
            [
                "a.test:80 prefix /api: timeout 10s -> 5s",
                "a.test:80 path /x: cluster old -> cluster edge",
                "- cluster old"
            ]
        );
        assert_eq!(d.to_string(), "routes ~2");
    }

    #[test]
    fn the_same_routes_in_another_order_are_a_change() {
        let old = mk_profile("[[domains.routes]]\npath = \"/x\"\ncluster = \"old\"\n");
        let mut new = old.clone();
        new.domains.get_mut("a.test:80").unwrap().routes.reverse();
        let d = ProfileDiff::between(&old, &new);
        assert_eq!(d.to_string(), "routes reordered in 1 domain");
        assert_eq!(d.per_proxy["p"], ["a.test:80: routes reordered, now: path /x | prefix /api"]);
    }

    #[test]
    fn tcp_services_added_changed_and_removed_are_told() {
        let mut old = mk_profile("");
        let mut new = old.clone();
        let svc = |name: &str, port: u16, cluster: &str| crate::model::TcpService {
            name: name.into(),
            port,
            cluster: cluster.into(),
            idle_timeout: None,
        };
        old.proxies.get_mut("p").unwrap().tcp = vec![svc("pg", 15432, "edge"), svc("redis", 16379, "edge")];
        new.proxies.get_mut("p").unwrap().tcp = vec![svc("pg", 15433, "old"), svc("mq", 15672, "edge")];
        let d = ProfileDiff::between(&old, &new);
        assert_eq!(
            d.per_proxy["p"],
            [
                "+ tcp mq :15672 -> cluster edge",
                "tcp pg: port 15432 -> 15433; cluster edge -> old",
                "- tcp redis",
                "+ cluster old (static 0 endpoints in the profile)",
            ]
        );
        assert_eq!(d.to_string(), "proxies ~p");
    }

    #[test]
    fn an_invalid_profile_is_its_located_errors() {
        let served = mk_profile("");
        let a = compare(&served, "new.toml", "[proxies.p]\nzone = 1\n");
        assert_eq!(a.diff, None);
        assert_eq!(a.errors.len(), 1);
        assert!(a.errors[0].starts_with("new.toml:2:8: "), "{:?}", a.errors);
    }
}
