//! The index on its own: selection with reasons, atomic relists, node
//! addresses and zones, shared watches, EndpointSlices.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

use super::objects::SliceEndpoint;
use super::*;
use crate::discovery::plan::Conn;
use crate::profile::parse_profile;

const EDGE: &str = r#"
    [clusters.edge.kubernetes]
    context = "staging"
    namespace = "edge"
    selector = "app=edge-envoy"
    port = "http"
"#;

fn mk_plan(src: &str) -> Plan {
    Plan::from_profile(&parse_profile("t.toml", "t", src).expect("valid profile"))
}

fn mk_index(src: &str) -> Index {
    let mut index = Index::default();
    index.set_plan(mk_plan(src));
    index
}

fn mk_conn() -> Conn {
    Conn { kubeconfig: None, context: Some("staging".into()) }
}

fn mk_pods_key(namespace: &str, selector: &str) -> WatchKey {
    WatchKey::Pods { conn: mk_conn(), namespace: namespace.into(), selector: selector.into(), field_selector: None }
}

fn mk_nodes_key() -> WatchKey {
    WatchKey::Nodes { conn: mk_conn() }
}

/// A pod that counts: Running, Ready, on hostNetwork, port `http` = 8080.
fn mk_pod(name: &str, ip: &str) -> PodInfo {
    PodInfo {
        namespace: "edge".into(),
        name: name.into(),
        phase: "Running".into(),
        ready: true,
        terminating: false,
        host_network: true,
        pod_ip: Some(ip.parse().unwrap()),
        node: Some(format!("node-{ip}")),
        labels: BTreeMap::from([("app".into(), "edge-envoy".into())]).into(),
        ports: vec![ContainerPort { name: Some("http".into()), port: 8080 }, ContainerPort { name: None, port: 9901 }],
    }
}

fn mk_node(name: &str, zone: Option<&str>, internal: Option<&str>, external: Option<&str>) -> NodeInfo {
    let ip = |s: Option<&str>| s.map(|s| s.parse::<IpAddr>().unwrap());
    NodeInfo { name: name.into(), zone: zone.map(Into::into), internal_ip: ip(internal), external_ip: ip(external) }
}

fn mk_endpoint(addr: &str, zone: Option<&str>) -> Endpoint {
    Endpoint {
        unhealthy: false,
        addr: addr.parse().unwrap(),
        zone: zone.map(Into::into),
        weight: None,
        metadata: BTreeMap::from([("app".into(), "edge-envoy".into())]).into(),
    }
}

fn mk_skipped(cluster: &str, object: &str, reason: SkipReason) -> Skipped {
    Skipped { cluster: cluster.into(), object: object.into(), reason }
}

/// Lists `pods` as one completed relist.
fn list(index: &mut Index, key: &WatchKey, objects: Vec<Object>) -> BTreeSet<String> {
    index.apply(key, Change::Init);
    for o in objects {
        index.apply(key, Change::InitApply(o));
    }
    index.apply(key, Change::InitDone)
}

fn clusters(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn ready_pods_become_endpoints_with_their_labels_as_metadata() {
    let mut index = mk_index(EDGE);
    let key = mk_pods_key("edge", "app=edge-envoy");

    let changed =
        list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1")), Object::Pod(mk_pod("e2", "10.0.0.2"))]);

    assert_eq!(changed, clusters(&["edge"]));
    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.1:8080", None), mk_endpoint("10.0.0.2:8080", None)]);
    assert_eq!(index.stats(&key), WatchStats { seen: 2, selected: 2, skipped: vec![] });
}

#[test]
fn pods_that_do_not_count_are_skipped_each_with_its_reason() {
    let mut index = mk_index(EDGE);
    let key = mk_pods_key("edge", "app=edge-envoy");
    let pods = [
        PodInfo { terminating: true, ..mk_pod("a-terminating", "10.0.0.1") },
        PodInfo { phase: "Pending".into(), ..mk_pod("b-pending", "10.0.0.2") },
        PodInfo { ready: false, ..mk_pod("c-unready", "10.0.0.3") },
        PodInfo { host_network: false, ..mk_pod("d-pod-network", "10.0.0.4") },
        PodInfo {
            ports: vec![ContainerPort { name: Some("admin".into()), port: 9901 }],
            ..mk_pod("e-no-port", "10.0.0.5")
        },
        PodInfo { ports: vec![], ..mk_pod("f-no-ports", "10.0.0.6") },
        PodInfo { pod_ip: None, ..mk_pod("g-no-ip", "10.0.0.7") },
        mk_pod("h-good", "10.0.0.8"),
    ];

    list(&mut index, &key, pods.into_iter().map(Object::Pod).collect());

    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.8:8080", None)]);
    let no_port = |has: &[&str]| SkipReason::NoPort {
        port: PortRef::Name("http".into()),
        has: has.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(
        index.stats(&key),
        WatchStats {
            seen: 8,
            selected: 1,
            skipped: vec![
                mk_skipped("edge", "edge/a-terminating", SkipReason::Terminating),
                mk_skipped("edge", "edge/b-pending", SkipReason::NotRunning { phase: "Pending".into() }),
                mk_skipped("edge", "edge/c-unready", SkipReason::NotReady),
                mk_skipped("edge", "edge/d-pod-network", SkipReason::NotHostNetwork),
                mk_skipped("edge", "edge/e-no-port", no_port(&["admin=9901"])),
                mk_skipped("edge", "edge/f-no-ports", no_port(&[])),
                mk_skipped("edge", "edge/g-no-ip", SkipReason::NoPodIp),
            ],
        }
    );
}

#[test]
fn skip_reasons_say_what_to_look_at() {
    let no_port =
        SkipReason::NoPort { port: PortRef::Name("http".into()), has: vec!["admin=9901".into(), "80".into()] };
    assert_eq!(no_port.to_string(), r#"has no port named "http"; it has admin=9901, 80"#);
    assert_eq!(
        SkipReason::NoPort { port: PortRef::Number(8080), has: vec![] }.to_string(),
        "has no port 8080; it declares no ports"
    );
    assert_eq!(
        SkipReason::NoNodeAddress { node: "n1".into(), kind: "ExternalIP" }.to_string(),
        "its node n1 has no ExternalIP"
    );
    assert!(no_port.is_mismatch() && !SkipReason::NotReady.is_mismatch());
}

#[test]
fn a_relist_is_swapped_in_whole_at_init_done() {
    let mut index = mk_index(EDGE);
    let key = mk_pods_key("edge", "app=edge-envoy");
    list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1")), Object::Pod(mk_pod("e2", "10.0.0.2"))]);

    assert_eq!(index.apply(&key, Change::Init), clusters(&[]));
    assert_eq!(index.apply(&key, Change::InitApply(Object::Pod(mk_pod("e3", "10.0.0.3")))), clusters(&[]));
    assert_eq!(
        index.endpoints("edge"),
        [mk_endpoint("10.0.0.1:8080", None), mk_endpoint("10.0.0.2:8080", None)],
        "half a relist changes nothing"
    );

    assert_eq!(index.apply(&key, Change::InitDone), clusters(&["edge"]));
    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.3:8080", None)]);
}

#[test]
fn a_relist_that_never_completes_clears_nothing() {
    let mut index = mk_index(EDGE);
    let key = mk_pods_key("edge", "app=edge-envoy");
    list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1"))]);

    // The list fails half way (the watcher reports an error, then starts
    // over with Init): what was known stays.
    index.apply(&key, Change::Init);
    index.apply(&key, Change::InitApply(Object::Pod(mk_pod("e9", "10.0.0.9"))));
    index.apply(&key, Change::Init);

    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.1:8080", None)]);
    assert_eq!(list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1"))]), clusters(&[]), "same list");
    assert_eq!(list(&mut index, &key, vec![]), clusters(&["edge"]), "an empty list is served when it is the truth");
    assert_eq!(index.endpoints("edge"), []);
}

#[test]
fn pod_changes_are_applied_and_only_real_changes_count() {
    let mut index = mk_index(EDGE);
    let key = mk_pods_key("edge", "app=edge-envoy");
    list(&mut index, &key, vec![Object::Pod(PodInfo { ready: false, ..mk_pod("e1", "10.0.0.1") })]);
    assert_eq!(index.endpoints("edge"), []);

    assert_eq!(index.apply(&key, Change::Apply(Object::Pod(mk_pod("e1", "10.0.0.1")))), clusters(&["edge"]));
    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.1:8080", None)]);
    assert_eq!(index.apply(&key, Change::Apply(Object::Pod(mk_pod("e1", "10.0.0.1")))), clusters(&[]), "same pod");
    let other_port =
        PodInfo { ports: vec![ContainerPort { name: Some("admin".into()), port: 1 }], ..mk_pod("e1", "10.0.0.1") };
    assert_eq!(index.apply(&key, Change::Apply(Object::Pod(other_port))), clusters(&["edge"]));

    assert_eq!(index.apply(&key, Change::Delete(Object::Pod(mk_pod("e1", "10.0.0.1")))), clusters(&[]), "was skipped");
    assert_eq!(index.stats(&key), WatchStats::default());
    assert_eq!(index.apply(&key, Change::Apply(Object::Pod(mk_pod("e2", "10.0.0.2")))), clusters(&["edge"]));
    assert_eq!(index.apply(&key, Change::Delete(Object::Pod(mk_pod("e2", "10.0.0.2")))), clusters(&["edge"]));
    assert_eq!(index.endpoints("edge"), []);
}

#[test]
fn node_addresses_and_zones_come_from_the_node() {
    let src = r#"
        [clusters.internal.kubernetes]
        context = "staging"
        namespace = "edge"
        selector = "app=edge-envoy"
        port = "http"
        address = "node-internal"
        node_zones = true
        [clusters.external.kubernetes]
        context = "staging"
        namespace = "edge"
        selector = "app=edge-envoy"
        port = 8080
        address = "node-external"
    "#;
    let mut index = mk_index(src);
    let (pods, nodes) = (mk_pods_key("edge", "app=edge-envoy"), mk_nodes_key());
    let pod = |name: &str, node: Option<&str>| PodInfo { node: node.map(Into::into), ..mk_pod(name, "10.0.0.1") };
    list(
        &mut index,
        &pods,
        vec![
            Object::Pod(pod("a", Some("n1"))),
            Object::Pod(pod("b", Some("n2"))),
            Object::Pod(pod("c", Some("n3"))),
            Object::Pod(pod("d", None)),
        ],
    );
    assert_eq!(index.endpoints("internal"), [], "no node is known yet");

    let changed = list(
        &mut index,
        &nodes,
        vec![
            Object::Node(mk_node("n1", Some("eu-1a"), Some("192.168.0.1"), Some("203.0.113.1"))),
            Object::Node(mk_node("n2", None, Some("192.168.0.2"), None)),
        ],
    );

    assert_eq!(changed, clusters(&["external", "internal"]));
    assert_eq!(
        index.endpoints("internal"),
        [mk_endpoint("192.168.0.1:8080", Some("eu-1a")), mk_endpoint("192.168.0.2:8080", None)]
    );
    assert_eq!(index.endpoints("external"), [mk_endpoint("203.0.113.1:8080", None)], "zones only when asked");
    assert_eq!(
        index.stats(&pods).skipped,
        [
            mk_skipped("external", "edge/b", SkipReason::NoNodeAddress { node: "n2".into(), kind: "ExternalIP" }),
            mk_skipped("external", "edge/c", SkipReason::NodeUnknown { node: "n3".into() }),
            mk_skipped("external", "edge/d", SkipReason::NotScheduled),
            mk_skipped("internal", "edge/c", SkipReason::NodeUnknown { node: "n3".into() }),
            mk_skipped("internal", "edge/d", SkipReason::NotScheduled),
        ]
    );
    assert_eq!(index.stats(&nodes), WatchStats { seen: 2, selected: 0, skipped: vec![] });

    let moved = mk_node("n2", Some("eu-1b"), Some("192.168.0.2"), None);
    assert_eq!(index.apply(&nodes, Change::Apply(Object::Node(moved))), clusters(&["internal"]));
    assert_eq!(index.endpoints("internal").to_vec()[1], mk_endpoint("192.168.0.2:8080", Some("eu-1b")));
}

#[test]
fn zones_need_nodes_but_a_pod_on_an_unknown_node_keeps_its_endpoint() {
    let mut index = mk_index(&format!("{EDGE}node_zones = true\n"));
    let key = mk_pods_key("edge", "app=edge-envoy");

    list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1"))]);

    assert_eq!(index.plan().watches().keys().cloned().collect::<Vec<_>>(), [key, mk_nodes_key()]);
    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.1:8080", None)]);
}

#[test]
fn clusters_with_the_same_pods_share_one_watch_and_pick_their_own_ports() {
    let src = format!(
        "{EDGE}[clusters.admin.kubernetes]\ncontext = \"staging\"\nnamespace = \"edge\"\nselector = \"app = edge-envoy\"\nport = 9901\n"
    );
    let mut index = mk_index(&src);
    let key = mk_pods_key("edge", "app=edge-envoy");
    assert_eq!(index.plan().watches(), BTreeMap::from([(key.clone(), clusters(&["admin", "edge"]))]));

    let changed = list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1"))]);

    assert_eq!(changed, clusters(&["admin", "edge"]));
    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.1:8080", None)]);
    assert_eq!(index.endpoints("admin"), [mk_endpoint("10.0.0.1:9901", None)]);
    assert_eq!(index.stats(&key), WatchStats { seen: 1, selected: 1, skipped: vec![] });
}

#[test]
fn pods_on_the_pod_network_count_when_host_network_is_off() {
    let mut index = mk_index(&format!("{EDGE}host_network = false\n"));
    let key = mk_pods_key("edge", "app=edge-envoy");

    list(&mut index, &key, vec![Object::Pod(PodInfo { host_network: false, ..mk_pod("e1", "10.8.0.1") })]);

    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.8.0.1:8080", None)]);
}

fn mk_slice(name: &str, port: (&str, u16), endpoints: &[(&str, bool, bool)]) -> SliceInfo {
    SliceInfo {
        namespace: "films".into(),
        name: name.into(),
        ports: vec![ContainerPort { name: Some(port.0.into()), port: port.1 }],
        endpoints: endpoints
            .iter()
            .map(|(ip, ready, terminating)| SliceEndpoint {
                address: Some(ip.parse().unwrap()),
                ready: *ready,
                terminating: *terminating,
                zone: Some("eu-1a".into()),
                name: format!("pod-{ip}"),
            })
            .collect(),
    }
}

#[test]
fn endpoint_slices_give_the_ready_endpoints_on_the_service_port() {
    let src = r#"
        [clusters.films.kubernetes_service]
        context = "staging"
        namespace = "films"
        service = "films"
        port = "http"
    "#;
    let mut index = mk_index(src);
    let key = WatchKey::Slices { conn: mk_conn(), namespace: "films".into(), service: "films".into() };
    let a = mk_slice("films-a", ("http", 8000), &[("10.1.0.1", true, false), ("10.1.0.2", false, false)]);
    let b = mk_slice("films-b", ("grpc", 9000), &[("10.1.0.3", true, false)]);

    list(&mut index, &key, vec![Object::Slice(a.clone()), Object::Slice(b)]);

    let endpoint = |addr: &str| Endpoint { metadata: Default::default(), ..mk_endpoint(addr, Some("eu-1a")) };
    assert_eq!(index.endpoints("films"), [endpoint("10.1.0.1:8000")]);
    let no_port = SkipReason::NoPort { port: PortRef::Name("http".into()), has: vec!["grpc=9000".into()] };
    assert_eq!(
        index.stats(&key),
        WatchStats {
            seen: 2,
            selected: 1,
            skipped: vec![
                mk_skipped("films", "films/pod-10.1.0.2", SkipReason::NotReady),
                mk_skipped("films", "films/pod-10.1.0.3", no_port),
            ],
        }
    );

    let scaled = mk_slice("films-a", ("http", 8000), &[("10.1.0.1", false, true), ("10.1.0.2", true, false)]);
    assert_eq!(index.apply(&key, Change::Apply(Object::Slice(scaled))), clusters(&["films"]));
    assert_eq!(index.endpoints("films"), [endpoint("10.1.0.2:8000")]);
}

#[test]
fn a_new_plan_keeps_the_data_of_the_watches_it_keeps() {
    let mut index = mk_index(EDGE);
    let key = mk_pods_key("edge", "app=edge-envoy");
    list(&mut index, &key, vec![Object::Pod(mk_pod("e1", "10.0.0.1"))]);

    index.set_plan(mk_plan(&EDGE.replace("\"http\"", "9901")));
    assert_eq!(index.endpoints("edge"), [mk_endpoint("10.0.0.1:9901", None)], "same watch, new port");

    index.set_plan(mk_plan(&EDGE.replace("app=edge-envoy", "app=other")));
    assert_eq!(index.endpoints("edge"), [], "a new watch starts empty");
    assert_eq!(index.apply(&key, Change::Apply(Object::Pod(mk_pod("e2", "10.0.0.2")))), clusters(&[]), "stopped watch");
    assert!(index.store(&key).is_none());
}

/// The sorted list kept one object at a time is the list a fresh relist of
/// the same objects gives, after every event of a long mixed run: pods
/// turning ready and not, moving address, sharing an address, deleted.
#[test]
fn the_endpoint_list_kept_per_event_is_what_a_relist_gives() {
    let key = mk_pods_key("edge", "app=edge-envoy");
    let mut index = mk_index(EDGE);
    list(&mut index, &key, vec![]);
    let mut live: BTreeMap<String, PodInfo> = BTreeMap::new();
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut next = move |n: u64| rng.next_u64() % n;
    for step in 0..400 {
        let name = format!("e{}", next(12));
        // Eight addresses for twelve pods: some share one.
        let mut pod = mk_pod(&name, &format!("10.0.0.{}", next(8) + 1));
        pod.ready = next(4) != 0;
        if next(5) == 0 {
            if let Some(old) = live.remove(&name) {
                index.apply(&key, Change::Delete(Object::Pod(old)));
            }
        } else {
            live.insert(name, pod.clone());
            index.apply(&key, Change::Apply(Object::Pod(pod)));
        }
        let mut fresh = mk_index(EDGE);
        list(&mut fresh, &key, live.values().cloned().map(Object::Pod).collect());
        assert_eq!(index.endpoints("edge"), fresh.endpoints("edge"), "after step {step}");
        assert!(index.endpoints("edge").iter().is_sorted());
    }
    assert!(!index.endpoints("edge").is_empty(), "the run ends with endpoints to compare");
}
