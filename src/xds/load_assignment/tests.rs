//! The spliced load assignment decodes to what `to_load_assignment` builds,
//! on the first build and after endpoints come, go and change.

use std::collections::BTreeMap;

use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

use super::*;
use crate::xds::translate::to_load_assignment;

fn mk_endpoint(addr: &str, zone: Option<&str>, weight: Option<u32>, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        unhealthy: false,
        addr: addr.parse().unwrap(),
        zone: zone.map(str::to_string),
        weight,
        metadata: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>().into(),
    }
}

/// Zones (and none), weights, several metadata labels, out of order.
fn mk_endpoints() -> Vec<Endpoint> {
    vec![
        mk_endpoint("10.0.0.3:80", Some("b"), None, &[("app", "edge")]),
        mk_endpoint("10.0.0.1:80", Some("a"), Some(1), &[]),
        mk_endpoint("10.0.0.2:8080", Some("a"), Some(5), &[("app", "edge"), ("canary", "true"), ("version", "v2")]),
        mk_endpoint("[fd00::1]:443", None, None, &[("app", "edge"), ("pod", "edge-0")]),
        mk_endpoint("10.0.0.9:80", None, Some(3), &[]),
        mk_endpoint("10.0.0.4:80", Some("a"), None, &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]),
    ]
}

/// What the message path packs: the resource the cache must reproduce.
fn mk_expected(cluster: &str, eps: &[Endpoint]) -> (endpoint::ClusterLoadAssignment, Resource) {
    let (cla, hash) = to_load_assignment(cluster, eps);
    let resource = Resource::with_content_hash(cluster, &cla, hash);
    (cla, resource)
}

fn assert_same(cluster: &str, eps: &[Endpoint], got: &Resource) {
    let (cla, expected) = mk_expected(cluster, eps);
    let decoded = endpoint::ClusterLoadAssignment::decode(got.body.value.as_slice()).expect("decodes");
    assert_eq!(decoded, cla);
    assert_eq!((&got.name, &got.body.type_url, got.hash), (&expected.name, &expected.body.type_url, expected.hash));
}

/// The cache keeps exactly `eps`, sorted, for `cluster`.
fn assert_cache_holds(cache: &LoadAssignmentCache, cluster: &str, eps: &[Endpoint], why: &str) {
    let mut sorted = eps.to_vec();
    sorted.sort();
    let cached: Vec<Endpoint> = cache.clusters[cluster].iter().map(|e| e.endpoint.clone()).collect();
    assert_eq!(cached, sorted, "{why}");
}

#[test]
fn spliced_load_assignment_decodes_to_the_message_built_the_old_way() {
    let eps = mk_endpoints();
    let got = LoadAssignmentCache::default().to_resource("edge", &eps);
    assert_same("edge", &eps, &got);
}

#[test]
fn spliced_load_assignment_is_the_prost_encoding_when_no_map_has_two_entries() {
    let eps: Vec<Endpoint> = mk_endpoints().into_iter().filter(|e| e.metadata.len() <= 1).collect();
    let got = LoadAssignmentCache::default().to_resource("edge", &eps);
    let (_, expected) = mk_expected("edge", &eps);
    assert_eq!(got, expected);
}

#[test]
fn no_endpoints_is_a_load_assignment_with_only_the_cluster_name() {
    let got = LoadAssignmentCache::default().to_resource("edge", &[]);
    assert_eq!(got, mk_expected("edge", &[]).1);
}

#[test]
fn later_builds_reuse_unchanged_endpoints_and_keep_only_the_last_ones() {
    let mut cache = LoadAssignmentCache::default();
    let mut eps = mk_endpoints();
    cache.to_resource("edge", &eps);

    // One endpoint changes (a label), one goes, one comes.
    std::sync::Arc::make_mut(&mut eps[0].metadata).insert("ready".into(), "false".into());
    eps.remove(1);
    eps.push(mk_endpoint("10.0.0.5:80", Some("c"), Some(2), &[("app", "edge"), ("pod", "edge-5")]));
    let got = cache.to_resource("edge", &eps);
    assert_same("edge", &eps, &got);
    assert_cache_holds(&cache, "edge", &eps, "the cache holds exactly the endpoints of the last build");

    let got = cache.to_resource("edge", &eps[..2]);
    assert_same("edge", &eps[..2], &got);
    assert_eq!(cache.clusters["edge"].len(), 2);
}

#[test]
fn clusters_share_no_entries_and_retain_drops_them() {
    let mut cache = LoadAssignmentCache::default();
    let eps = mk_endpoints();
    cache.to_resource("edge", &eps);
    let got = cache.to_resource("films", &eps[..3]);
    assert_same("films", &eps[..3], &got);
    assert_eq!(cache.clusters["edge"].len(), eps.len());

    cache.retain(|c| c == "films");
    assert_eq!(cache.clusters.keys().collect::<Vec<_>>(), ["films"]);
}

#[test]
fn the_eds_only_path_builds_a_cluster_with_zone_priorities_whole() {
    let src = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:80"]
[[domains]]
name = "a.test:80"
routes = [{ prefix = "/", cluster = "edge" }]
[clusters.edge]
zone_priority = ["b"]
kubernetes = { namespace = "edge", selector = "app=edge", port = "http" }
"#;
    let profile = crate::profile::parse_profile("t.toml", "t", src).unwrap();
    let eps = mk_endpoints();
    let lookup = |name: &str| (name == "edge").then_some(eps.as_slice());
    let changed = std::collections::BTreeSet::from(["edge".to_string()]);
    let mut cache = LoadAssignmentCache::default();
    let updated = translate_load_assignments(&profile, &changed, &lookup, &mut cache);
    let (cla, hash) = crate::xds::translate::to_load_assignment_in("edge", &eps, &["b".to_string()]);
    // Metadata maps encode in varying order: compare what it decodes to.
    let got = endpoint::ClusterLoadAssignment::decode(updated["edge"].body.value.as_slice()).unwrap();
    let expected = Resource::with_content_hash("edge", &cla, hash);
    assert_eq!((got, updated["edge"].hash), (cla.clone(), expected.hash));
    let priorities: Vec<u32> = cla.endpoints.iter().map(|l| l.priority).collect();
    // No zone, a, b: b first, the rest after it.
    assert_eq!(priorities, [1, 1, 0]);
}

/// A long run of builds, each a few endpoints away from the last (edited in
/// place) or many (built again along it), every one equal to a build from
/// scratch, and the cache always holding exactly the last build's endpoints.
#[test]
fn edits_in_place_and_rebuilds_give_what_a_build_from_scratch_gives() {
    let mut cache = LoadAssignmentCache::default();
    let mut live: BTreeMap<u16, Endpoint> = BTreeMap::new();
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut next = move |n: u64| rng.next_u64() % n;
    for round in 0..200 {
        // Mostly one or two changes; now and then more than are edited in place.
        let changes = if round % 17 == 0 { 2 * MAX_EDITS as u64 } else { next(3) + 1 };
        for _ in 0..changes {
            let port = next(120) as u16 + 1;
            if live.remove(&port).is_none() {
                let zone = ["a", "b"][next(2) as usize];
                live.insert(port, mk_endpoint(&format!("10.0.0.1:{port}"), Some(zone), None, &[("app", "edge")]));
            }
        }
        // Handed over in no particular order.
        let mut eps: Vec<Endpoint> = live.values().cloned().collect();
        eps.reverse();
        let got = cache.to_resource("edge", &eps);
        assert_same("edge", &eps, &got);
        assert_cache_holds(&cache, "edge", &eps, &format!("round {round}"));
    }
}
