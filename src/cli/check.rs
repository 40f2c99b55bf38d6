//! `devbridge check` and `devbridge profiles`.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::model::{Profile, Source};
use crate::profile::load;

/// Validates a profile and prints its summary; exit 64 on errors.
pub fn check(profile: &str) -> ExitCode {
    match super::load_profile(profile) {
        Ok(p) => {
            print!("{}", summary(&p));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Lists the profiles found and where; an earlier directory shadows a later one.
pub fn profiles() -> ExitCode {
    let found = load::list(&load::search_path());
    if found.is_empty() {
        println!("no profiles found; looked in:");
        for d in load::search_path() {
            println!("  {}", d.display());
        }
    }
    for f in found {
        let note = if f.active { "" } else { "  (shadowed by an earlier one)" };
        println!("{:<20} {}{note}", f.name, f.location);
    }
    ExitCode::SUCCESS
}

/// `1 zone`, `2 zones`: a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `check` prints of a valid profile: counts, then each proxy, domain and cluster.
pub fn summary(p: &Profile) -> String {
    let routes: usize = p.domains.values().map(|d| d.routes.len()).sum();
    let mut out = format!(
        "profile {} ({}): ok\n  {}, {}, {}, {}, {}\n",
        p.name,
        p.file,
        count(p.zones.len(), "zone", "zones"),
        count(p.proxies.len(), "proxy", "proxies"),
        count(p.domains.len(), "domain", "domains"),
        count(routes, "route", "routes"),
        count(p.clusters.len(), "cluster", "clusters"),
    );
    for proxy in p.proxies.values() {
        let grpc = proxy.kind == crate::model::ProxyKind::Grpc;
        let served: Vec<String> = if grpc {
            crate::xds::translate::grpc_targets(p, proxy).into_iter().map(|(t, _)| format!("xds:///{t}")).collect()
        } else {
            proxy
                .domains
                .iter()
                .cloned()
                .chain(proxy.tcp.iter().map(|t| format!("tcp {} :{} -> {}", t.name, t.port, t.cluster)))
                .collect()
        };
        let served = if served.is_empty() { "nothing served".to_string() } else { served.join(", ") };
        let kind = if grpc { ", proxyless gRPC" } else { "" };
        let _ = writeln!(
            out,
            "  proxy {} (zone {}, node.cluster {:?}{kind}): {served}",
            proxy.name, proxy.zone, proxy.node_cluster
        );
    }
    for d in p.domains.values() {
        let _ = writeln!(out, "  domain {}: {}", d.name, count(d.routes.len(), "route", "routes"));
    }
    for c in p.clusters.values() {
        let detail = match &c.source {
            Source::Static(eps) => count(eps.len(), "endpoint", "endpoints"),
            Source::Dns { hosts, .. } => hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(", "),
            Source::Kubernetes(k) => format!("pods {:?} in {}", k.selector, k.namespaces.join(",")),
            Source::KubernetesService(k) => format!("service {}/{}", k.namespace, k.service),
            Source::Registered => "endpoints set through the admin API".to_string(),
        };
        let _ = writeln!(out, "  cluster {} ({}): {detail}", c.name, c.source.kind());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::parse_profile;

    #[test]
    fn one_of_a_kind_is_counted_in_the_singular() {
        let p = parse_profile(
            "one.toml",
            "one",
            "[zones.z]\n[proxies.p]\nzone = \"z\"\ndomains = [\"a.test:80\"]\n[[domains]]\nname = \"a.test:80\"\n\
             [[domains.routes]]\ncluster = \"c\"\n[clusters.c.static]\nendpoints = [{ address = \"127.0.0.1:1\" }]\n",
        )
        .unwrap();
        assert_eq!(
            summary(&p),
            "profile one (one.toml): ok\n  1 zone, 1 proxy, 1 domain, 1 route, 1 cluster\n  \
             proxy p (zone z, node.cluster \"p\"): a.test:80\n  domain a.test:80: 1 route\n  \
             cluster c (static): 1 endpoint\n"
        );
    }

    #[test]
    fn counts_other_than_one_are_plural() {
        assert_eq!(count(0, "zone", "zones"), "0 zones");
        assert_eq!(count(2, "proxy", "proxies"), "2 proxies");
    }
}
