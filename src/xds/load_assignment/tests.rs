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

/// The cache keeps exactly the chunks of `eps` for `cluster`.
fn assert_cache_holds(cache: &LoadAssignmentCache, cluster: &str, eps: &Endpoints, why: &str) {
    let cached: Vec<usize> = cache.clusters[cluster].iter().map(|p| address(&p.chunk)).collect();
    let chunks: Vec<usize> = eps.chunks().iter().map(address).collect();
    assert_eq!(cached, chunks, "{why}");
}

/// Packs `eps` as a new list (no chunk of it cached).
fn pack(cache: &mut LoadAssignmentCache, cluster: &str, eps: &[Endpoint]) -> Resource {
    cache.to_resource(cluster, &Endpoints::from(eps))
}

/// Many endpoints in two zones (and none), some weighted, a label each.
fn mk_many(n: u16) -> Vec<Endpoint> {
    (1..=n)
        .map(|port| {
            let zone = [None, Some("a"), Some("b")][port as usize % 3];
            let weight = (port % 5 == 0).then_some(u32::from(port % 7) + 1);
            mk_endpoint(&format!("10.0.0.1:{port}"), zone, weight, &[("pod", &format!("edge-{port}"))])
        })
        .collect()
}

#[test]
fn spliced_load_assignment_decodes_to_the_message_built_the_old_way() {
    let eps = mk_endpoints();
    let got = pack(&mut LoadAssignmentCache::default(), "edge", &eps);
    assert_same("edge", &eps, &got);
}

#[test]
fn spliced_load_assignment_is_the_prost_encoding_when_no_map_has_two_entries() {
    let eps: Vec<Endpoint> = mk_endpoints().into_iter().filter(|e| e.metadata.len() <= 1).collect();
    let got = pack(&mut LoadAssignmentCache::default(), "edge", &eps);
    let (_, expected) = mk_expected("edge", &eps);
    assert_eq!(got, expected);
}

#[test]
fn no_endpoints_is_a_load_assignment_with_only_the_cluster_name() {
    let got = pack(&mut LoadAssignmentCache::default(), "edge", &[]);
    assert_eq!(got, mk_expected("edge", &[]).1);
}

#[test]
fn later_builds_encode_only_the_chunks_they_have_not_seen() {
    let mut cache = LoadAssignmentCache::default();
    let eps = Endpoints::from(mk_many(1000));
    assert!(eps.chunks().len() > 3, "several chunks");
    let got = cache.to_resource("edge", &eps);
    assert_same("edge", &eps.to_vec(), &got);
    // Where each chunk's encoding lives: a chunk not encoded again keeps it.
    let entries = |cache: &LoadAssignmentCache| -> BTreeMap<usize, *const u8> {
        cache.clusters["edge"].iter().map(|p| (address(&p.chunk), p.zones[0].entries.as_ptr())).collect()
    };
    let before = entries(&cache);

    // One endpoint changes (a label), one goes, one comes.
    let all = eps.to_vec();
    let mut relabelled = all[500].clone();
    std::sync::Arc::make_mut(&mut relabelled.metadata).insert("ready".into(), "false".into());
    let gone = [all[500].clone(), all[10].clone()];
    let new = [relabelled, mk_endpoint("10.0.0.2:80", Some("c"), Some(2), &[("app", "edge")])];
    let next = eps.edited(&gone, &new);
    let got = cache.to_resource("edge", &next);
    assert_same("edge", &next.to_vec(), &got);
    assert_cache_holds(&cache, "edge", &next, "the cache holds exactly the chunks of the last build");
    let after = entries(&cache);
    let kept = after.iter().filter(|(k, p)| before.get(k) == Some(p)).count();
    assert!(kept >= next.chunks().len() - 3, "only the edited chunks are encoded again: {kept} of {}", after.len());

    let fewer = Endpoints::from(&all[..2]);
    let got = cache.to_resource("edge", &fewer);
    assert_same("edge", &all[..2], &got);
    assert_cache_holds(&cache, "edge", &fewer, "only the last build's chunks stay");
}

#[test]
fn clusters_share_no_entries_and_retain_drops_them() {
    let mut cache = LoadAssignmentCache::default();
    let eps = mk_endpoints();
    pack(&mut cache, "edge", &eps);
    let got = pack(&mut cache, "films", &eps[..3]);
    assert_same("films", &eps[..3], &got);
    assert_eq!(cache.clusters["edge"].len(), 1, "one chunk of six");

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
    let list = Endpoints::from(eps.as_slice());
    let lookup = |name: &str| (name == "edge").then_some(&list);
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

/// A long run of builds, each a few endpoints away from the last (an edit
/// of the last list) or many, or a list made anew, every one equal to a
/// build from scratch, and the cache always holding exactly the last
/// build's chunks.
#[test]
fn edited_and_new_lists_give_what_a_build_from_scratch_gives() {
    let mut cache = LoadAssignmentCache::default();
    let mut live: BTreeMap<u16, Endpoint> = BTreeMap::new();
    let mut list = Endpoints::default();
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut next = move |n: u64| rng.next_u64() % n;
    for round in 0..300 {
        // Mostly one or two changes; now and then many.
        let changes = if round % 17 == 0 { 100 } else { next(3) + 1 };
        let (mut gone, mut new) = (Vec::new(), Vec::new());
        for _ in 0..changes {
            let port = next(600) as u16 + 1;
            match live.remove(&port) {
                // One that came in this round goes again: neither.
                Some(e) => match new.iter().position(|n| *n == e) {
                    Some(i) => drop(new.remove(i)),
                    None => gone.push(e),
                },
                None => {
                    let zone = ["a", "b"][next(2) as usize];
                    let e = mk_endpoint(&format!("10.0.0.1:{port}"), Some(zone), None, &[("app", "edge")]);
                    live.insert(port, e.clone());
                    new.push(e);
                }
            }
        }
        list = if round % 23 == 0 { live.values().cloned().collect() } else { list.edited(&gone, &new) };
        let eps: Vec<Endpoint> = live.values().cloned().collect();
        assert_eq!(list, eps, "round {round}");
        let got = cache.to_resource("edge", &list);
        assert_same("edge", &eps, &got);
        assert_cache_holds(&cache, "edge", &list, &format!("round {round}"));
    }
}
