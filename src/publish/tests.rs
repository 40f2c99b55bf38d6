//! The EDS-only path: what it publishes equals a full translation, and it
//! touches nothing but load assignments.

use std::collections::BTreeMap;

use super::*;
use crate::profile::{Endpoint, parse_profile};
use crate::xds::ResourceType;

fn mk_profile() -> Profile {
    let src = r#"
        [zones.z]
        [proxies.a]
        zone = "z"
        domains = ["a.test:8080"]
        [proxies.b]
        zone = "z"
        domains = ["b.test:8080"]
        [[domains]]
        name = "a.test:8080"
        routes = [{ prefix = "/", cluster = "edge" }]
        [[domains]]
        name = "b.test:8080"
        routes = [{ prefix = "/", cluster = "films" }]
        [clusters.edge.kubernetes]
        selector = "app=edge"
        port = 80
        [clusters.films.kubernetes_service]
        service = "films"
        port = 80
        [clusters.idle.kubernetes]
        selector = "app=idle"
        port = 80
    "#;
    parse_profile("t.toml", "t", src).expect("valid")
}

fn mk_endpoints(clusters: &[(&str, &[&str])]) -> Arc<DiscoveredEndpoints> {
    let endpoint = |a: &&str| Endpoint {
        addr: a.parse().unwrap(),
        zone: Some("z1".into()),
        weight: None,
        metadata: BTreeMap::from([("app".to_string(), "edge".to_string())]),
    };
    Arc::new(clusters.iter().map(|(c, eps)| (c.to_string(), eps.iter().map(endpoint).collect())).collect())
}

fn versions(p: &Published, proxy: &str) -> [String; 4] {
    ResourceType::ALL.map(|t| p.snapshots[proxy].resources(t).version.clone())
}

#[test]
fn discovered_endpoints_change_only_the_load_assignments_of_the_proxies_using_them() {
    let publisher = Publisher::new(mk_profile()).unwrap();
    publisher.set_discovered(mk_endpoints(&[("edge", &["10.0.0.1:80"]), ("films", &["10.1.0.1:80"])])).unwrap();
    let before = publisher.current();

    let next = mk_endpoints(&[("edge", &["10.0.0.1:80", "10.0.0.2:80"]), ("films", &["10.1.0.1:80"])]);
    assert_eq!(publisher.set_discovered(next.clone()), Ok(true));
    let after = publisher.current();

    let full = translate(&mk_profile(), &next).unwrap();
    assert_eq!(after.snapshots, full, "the EDS-only path publishes what a full translation would");
    let [cds, eds, lds, rds] = versions(&before, "a");
    let [cds2, eds2, lds2, rds2] = versions(&after, "a");
    assert_eq!((cds2, lds2, rds2), (cds, lds, rds));
    assert_ne!(eds2, eds);
    assert!(Arc::ptr_eq(&before.snapshots["b"], &after.snapshots["b"]), "proxy b does not use edge");
}

#[test]
fn endpoints_of_a_cluster_no_proxy_uses_publish_nothing() {
    let publisher = Publisher::new(mk_profile()).unwrap();
    let before = publisher.current();

    assert_eq!(publisher.set_discovered(mk_endpoints(&[("idle", &["10.9.0.1:80"])])), Ok(false));
    assert!(Arc::ptr_eq(&before, &publisher.current()));
}

#[test]
fn registered_endpoints_win_over_discovered_ones() {
    let publisher = Publisher::new(mk_profile()).unwrap();
    publisher.set_registered(mk_endpoints(&[("edge", &["10.5.0.1:80"])])).unwrap();
    let before = publisher.current();

    assert_eq!(publisher.set_discovered(mk_endpoints(&[("edge", &["10.0.0.1:80"])])), Ok(false));
    assert!(Arc::ptr_eq(&before, &publisher.current()));
}

#[test]
fn a_new_profile_keeps_the_discovered_endpoints() {
    let publisher = Publisher::new(mk_profile()).unwrap();
    let eps = mk_endpoints(&[("edge", &["10.0.0.1:80"])]);
    publisher.set_discovered(eps.clone()).unwrap();
    let mut edited = mk_profile();
    edited.clusters.get_mut("edge").unwrap().connect_timeout = std::time::Duration::from_secs(3);

    assert_eq!(publisher.set_profile(edited.clone()), Ok(true));
    assert_eq!(publisher.current().snapshots, translate(&edited, &eps).unwrap());
}
