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

fn mk_endpoints(clusters: &[(&str, &[&str])]) -> Arc<EndpointSet> {
    let endpoint = |a: &&str| Endpoint {
        unhealthy: false,
        addr: a.parse().unwrap(),
        zone: Some("z1".into()),
        weight: None,
        metadata: BTreeMap::from([("app".to_string(), "edge".to_string())]).into(),
    };
    Arc::new(clusters.iter().map(|(c, eps)| (c.to_string(), eps.iter().map(endpoint).collect())).collect())
}

/// What discovery sends after `before`: the next generation, naming the
/// clusters whose endpoints differ.
fn mk_discovered(before: &Discovered, clusters: &[(&str, &[&str])]) -> Arc<Discovered> {
    let endpoints = (*mk_endpoints(clusters)).clone();
    let changed = before
        .endpoints
        .keys()
        .chain(endpoints.keys())
        .filter(|c| before.endpoints.get(*c) != endpoints.get(*c))
        .cloned()
        .collect();
    Arc::new(Discovered { endpoints, changed, generation: before.generation + 1 })
}

fn mk_builder() -> Builder {
    Builder::new(Arc::new(mk_profile()), Arc::default()).unwrap()
}

fn versions(p: &Published, proxy: &str) -> [String; 4] {
    ResourceType::ALL.map(|t| p.snapshots[proxy].resources(t).version.clone())
}

#[test]
fn discovered_endpoints_change_only_the_load_assignments_of_the_proxies_using_them() {
    let mut builder = mk_builder();
    let first = mk_discovered(&Discovered::default(), &[("edge", &["10.0.0.1:80"]), ("films", &["10.1.0.1:80"])]);
    builder.set_discovered(first.clone()).unwrap();
    let before = builder.published().clone();

    let next = mk_discovered(&first, &[("edge", &["10.0.0.1:80", "10.0.0.2:80"]), ("films", &["10.1.0.1:80"])]);
    assert_eq!(builder.set_discovered(next.clone()).map(|p| p.is_some()), Ok(true));
    let after = builder.published().clone();

    let full = translate(&mk_profile(), &next.endpoints).unwrap();
    assert_eq!(after.snapshots, full, "the EDS-only path publishes what a full translation would");
    let [cds, eds, lds, rds] = versions(&before, "a");
    let [cds2, eds2, lds2, rds2] = versions(&after, "a");
    assert_eq!((cds2, lds2, rds2), (cds, lds, rds));
    assert_ne!(eds2, eds);
    assert!(Arc::ptr_eq(&before.snapshots["b"], &after.snapshots["b"]), "proxy b does not use edge");
}

#[test]
fn a_skipped_generation_is_caught_up_from_the_shared_lists() {
    let mut builder = mk_builder();
    let first = mk_discovered(&Discovered::default(), &[("edge", &["10.0.0.1:80"]), ("films", &["10.1.0.1:80"])]);
    builder.set_discovered(first.clone()).unwrap();
    // Generation 2 changed films; the builder only sees generation 3,
    // which changed edge.
    let second = mk_discovered(&first, &[("edge", &["10.0.0.1:80"]), ("films", &["10.1.0.2:80"])]);
    let mut third = (*mk_discovered(&second, &[("edge", &["10.0.0.2:80"]), ("films", &["10.1.0.2:80"])])).clone();
    third.endpoints.insert("films".into(), second.endpoints["films"].clone());

    assert_eq!(builder.set_discovered(Arc::new(third.clone())).map(|p| p.is_some()), Ok(true));
    assert_eq!(builder.published().snapshots, translate(&mk_profile(), &third.endpoints).unwrap());
}

#[test]
fn endpoints_of_a_cluster_no_proxy_uses_publish_nothing() {
    let mut builder = mk_builder();
    let before = builder.published().clone();

    let idle = mk_discovered(&Discovered::default(), &[("idle", &["10.9.0.1:80"])]);
    assert_eq!(builder.set_discovered(idle).map(|p| p.is_some()), Ok(false));
    assert!(Arc::ptr_eq(&before, builder.published()));
}

#[test]
fn registered_endpoints_win_over_discovered_ones() {
    let mut builder = mk_builder();
    builder.set_registered(mk_endpoints(&[("edge", &["10.5.0.1:80"])])).unwrap();
    let before = builder.published().clone();

    let edge = mk_discovered(&Discovered::default(), &[("edge", &["10.0.0.1:80"])]);
    assert_eq!(builder.set_discovered(edge).map(|p| p.is_some()), Ok(false));
    assert!(Arc::ptr_eq(&before, builder.published()));
}

#[test]
fn a_new_profile_keeps_the_discovered_endpoints() {
    let mut builder = mk_builder();
    let eps = mk_discovered(&Discovered::default(), &[("edge", &["10.0.0.1:80"])]);
    builder.set_discovered(eps.clone()).unwrap();
    let mut edited = mk_profile();
    edited.clusters.get_mut("edge").unwrap().connect_timeout = std::time::Duration::from_secs(3);

    assert_eq!(builder.set_profile(Arc::new(edited.clone())).map(|p| p.is_some()), Ok(true));
    assert_eq!(builder.published().snapshots, translate(&edited, &eps.endpoints).unwrap());
}

#[test]
fn a_profile_that_cannot_be_served_changes_nothing() {
    let mut builder = mk_builder();
    let before = builder.published().clone();
    let mut broken = mk_profile();
    broken.clusters.remove("edge");

    assert!(check(&broken).is_err());
    assert!(builder.set_profile(Arc::new(broken)).is_err());
    assert!(Arc::ptr_eq(&before, builder.published()));
}

fn mk_marks(cluster: &str, addrs: &[&str]) -> Arc<Marks> {
    Arc::new(Marks::from([(cluster.to_string(), addrs.iter().map(|a| a.parse().unwrap()).collect())]))
}

/// `endpoints` with the marked addresses unhealthy, as a full translation
/// would take them.
fn mk_marked(endpoints: &EndpointSet, cluster: &str, addrs: &[&str]) -> EndpointSet {
    let mut out = endpoints.clone();
    let eps = out[cluster]
        .iter()
        .map(|e| Endpoint { unhealthy: addrs.contains(&e.addr.to_string().as_str()), ..e.clone() })
        .collect();
    out.insert(cluster.to_string(), eps);
    out
}

#[test]
fn marked_endpoints_are_published_unhealthy_on_every_path() {
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use prost::Message;
    let mut builder = mk_builder();
    let first = mk_discovered(&Discovered::default(), &[("edge", &["10.0.0.1:80", "10.0.0.2:80"])]);
    builder.set_discovered(first.clone()).unwrap();

    assert_eq!(builder.set_marks(mk_marks("edge", &["10.0.0.2:80"])).map(|p| p.is_some()), Ok(true));
    let marked = mk_marked(&first.endpoints, "edge", &["10.0.0.2:80"]);
    assert_eq!(builder.published().snapshots, translate(&mk_profile(), &marked).unwrap());
    let eds = &builder.published().snapshots["a"].resources(ResourceType::Endpoint).items["edge"];
    let cla = ClusterLoadAssignment::decode(eds.body.value.as_slice()).unwrap();
    let health: Vec<i32> = cla.endpoints[0].lb_endpoints.iter().map(|e| e.health_status).collect();
    assert_eq!(health, [0, 2], "UNKNOWN (taken as healthy), UNHEALTHY");

    // The EDS-only path keeps the marks on the new list.
    let next = mk_discovered(&first, &[("edge", &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])]);
    builder.set_discovered(next.clone()).unwrap();
    let marked = mk_marked(&next.endpoints, "edge", &["10.0.0.2:80"]);
    assert_eq!(builder.published().snapshots, translate(&mk_profile(), &marked).unwrap());

    // The same marks again change nothing; none brings the plain lists back.
    let before = builder.published().clone();
    assert_eq!(builder.set_marks(mk_marks("edge", &["10.0.0.2:80"])).map(|p| p.is_some()), Ok(false));
    assert!(Arc::ptr_eq(&before, builder.published()));
    assert_eq!(builder.set_marks(Arc::default()).map(|p| p.is_some()), Ok(true));
    assert_eq!(builder.published().snapshots, translate(&mk_profile(), &next.endpoints).unwrap());
}

#[test]
fn a_change_to_another_cluster_keeps_the_marked_list() {
    let mut builder = mk_builder();
    let first = mk_discovered(&Discovered::default(), &[("edge", &["10.0.0.1:80", "10.0.0.2:80"])]);
    builder.set_discovered(first.clone()).unwrap();
    builder.set_marks(mk_marks("edge", &["10.0.0.2:80"])).unwrap();

    let next = mk_discovered(&first, &[("edge", &["10.0.0.1:80", "10.0.0.2:80"]), ("films", &["10.1.0.1:80"])]);
    assert_eq!(next.changed.iter().collect::<Vec<_>>(), ["films"]);
    assert_eq!(builder.set_discovered(next.clone()).map(|p| p.is_some()), Ok(true));
    let marked = mk_marked(&next.endpoints, "edge", &["10.0.0.2:80"]);
    assert_eq!(builder.published().snapshots, translate(&mk_profile(), &marked).unwrap());
}
