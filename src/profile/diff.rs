//! A one-line summary of what a profile edit changed, for the reload log
//! line and `/status`. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::{Profile, Route};

/// What changed between two profiles, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProfileDiff {
    pub proxies: NameDiff,
    pub domains: NameDiff,
    pub clusters: NameDiff,
    /// Routes are counted per domain; a route is identified by its match.
    pub routes: Counts,
    /// `[tracing]` was added, removed or changed.
    pub tracing: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NameDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
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
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
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
        assert_eq!(
            d,
            ProfileDiff {
                routes: Counts { added: 1, removed: 0, changed: 0 },
                clusters: NameDiff { added: vec![], removed: vec!["old".into()], changed: vec!["edge".into()] },
                ..ProfileDiff::default()
            }
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
}
