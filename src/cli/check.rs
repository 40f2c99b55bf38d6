//! `devbridge check` and `devbridge profiles`.

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

/// What `check` prints of a valid profile.
pub fn summary(p: &Profile) -> String {
    let routes: usize = p.domains.values().map(|d| d.routes.len()).sum();
    let mut out = format!(
        "profile {} ({}): ok\n  {} zones, {} proxies, {} domains, {} routes, {} clusters\n",
        p.name,
        p.file,
        p.zones.len(),
        p.proxies.len(),
        p.domains.len(),
        routes,
        p.clusters.len()
    );
    for proxy in p.proxies.values() {
        out.push_str(&format!(
            "  proxy {} (zone {}, node.cluster {:?}): {}\n",
            proxy.name,
            proxy.zone,
            proxy.node_cluster,
            proxy.domains.join(", ")
        ));
    }
    for d in p.domains.values() {
        out.push_str(&format!("  domain {}: {} routes\n", d.name, d.routes.len()));
    }
    for c in p.clusters.values() {
        let detail = match &c.source {
            Source::Static(eps) => format!("{} endpoints", eps.len()),
            Source::Dns { hosts, .. } => hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(", "),
            Source::Kubernetes(k) => format!("pods {:?} in {}", k.selector, k.namespaces.join(",")),
            Source::KubernetesService(k) => format!("service {}/{}", k.namespace, k.service),
            Source::Registered => "endpoints set through the admin API".to_string(),
        };
        out.push_str(&format!("  cluster {} ({}): {detail}\n", c.name, c.source.kind()));
    }
    out
}
