//! Consistency checks and versions of [`Snapshot::build`], on hand-made parts.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::google::protobuf::Any;

use super::testing::{mk_ads, mk_cla, mk_cluster, mk_listener, mk_parts, mk_route_config};
use super::*;

fn names(s: &Snapshot, ty: ResourceType) -> Vec<String> {
    s.resources(ty).names().into_iter().collect()
}

fn versions(s: &Snapshot) -> [String; 4] {
    ResourceType::ALL.map(|t| s.resources(t).version.clone())
}

#[test]
fn consistent_parts_build_a_snapshot_of_all_four_types() {
    let snapshot = Snapshot::build("p", mk_parts(&["a", "b"], &[8080, 9090])).expect("consistent");

    assert_eq!(snapshot.proxy, "p");
    assert_eq!(
        ResourceType::ALL.map(|t| names(&snapshot, t)),
        [vec!["a", "b"], vec!["a", "b"], vec!["listener_8080", "listener_9090"], vec!["routes_8080", "routes_9090"],]
    );
    let cluster = &snapshot.resources(ResourceType::Cluster).items["a"];
    assert_eq!(cluster.body.type_url, CLUSTER_TYPE_URL);
    assert_eq!(cluster.body.value, mk_cluster("a").encode_to_vec());
}

#[test]
fn versions_follow_content_type_by_type() {
    let first = Snapshot::build("p", mk_parts(&["a"], &[8080])).expect("consistent");
    let same = Snapshot::build("p", mk_parts(&["a"], &[8080])).expect("consistent");
    let moved = Snapshot::build("p", SnapshotParts { endpoints: vec![mk_cla("a", 9001)], ..mk_parts(&["a"], &[8080]) })
        .expect("consistent");

    assert_eq!((versions(&same), &same.version), (versions(&first), &first.version));
    let [cds, eds, lds, rds] = versions(&first);
    let [cds2, eds2, lds2, rds2] = versions(&moved);
    assert_eq!((cds2, lds2, rds2), (cds, lds, rds));
    assert_ne!(eds2, eds);
    assert_ne!(moved.version, first.version);
}

#[test]
fn listener_naming_a_missing_route_configuration_is_rejected() {
    let parts = SnapshotParts { routes: vec![], ..mk_parts(&["a"], &[8080]) };

    assert_eq!(
        Snapshot::build("p", parts),
        Err(SnapshotError::MissingRoute { listener: "listener_8080".into(), route: "routes_8080".into() })
    );
}

#[test]
fn eds_cluster_without_its_load_assignment_is_rejected() {
    let parts = SnapshotParts { endpoints: vec![mk_cla("b", 9000)], ..mk_parts(&["a", "b"], &[]) };

    assert_eq!(
        Snapshot::build("p", parts),
        Err(SnapshotError::MissingEndpoints { cluster: "a".into(), name: "a".into() })
    );
}

#[test]
fn eds_cluster_with_a_service_name_needs_the_load_assignment_of_that_name() {
    let mut parts = mk_parts(&["a"], &[]);
    parts.clusters[0].eds_cluster_config =
        Some(EdsClusterConfig { eds_config: Some(mk_ads()), service_name: "a-svc".into() });

    assert_eq!(
        Snapshot::build("p", parts),
        Err(SnapshotError::MissingEndpoints { cluster: "a".into(), name: "a-svc".into() })
    );
}

#[test]
fn dns_cluster_needs_no_load_assignment() {
    let mut parts = mk_parts(&["a"], &[]);
    parts.clusters[0].cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
    parts.endpoints.clear();

    assert!(Snapshot::build("p", parts).is_ok());
}

#[test]
fn route_to_a_missing_cluster_is_rejected() {
    let parts =
        SnapshotParts { routes: vec![mk_route_config("routes_8080", &["a", "ghost"])], ..mk_parts(&["a"], &[8080]) };

    assert_eq!(
        Snapshot::build("p", parts),
        Err(SnapshotError::MissingCluster { route: "routes_8080".into(), cluster: "ghost".into() })
    );
}

#[test]
fn weighted_route_to_a_missing_cluster_is_rejected() {
    use route::route_action::ClusterSpecifier;
    let mut rc = mk_route_config("routes_8080", &["a"]);
    let weighted = route::WeightedCluster {
        clusters: ["a", "ghost"]
            .map(|c| route::weighted_cluster::ClusterWeight { name: c.into(), ..Default::default() })
            .into(),
        ..Default::default()
    };
    let Some(route::route::Action::Route(action)) = &mut rc.virtual_hosts[0].routes[0].action else {
        panic!("a forwarding route")
    };
    action.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(weighted));
    let parts = SnapshotParts { routes: vec![rc], ..mk_parts(&["a"], &[8080]) };

    assert_eq!(
        Snapshot::build("p", parts),
        Err(SnapshotError::MissingCluster { route: "routes_8080".into(), cluster: "ghost".into() })
    );
}

#[test]
fn listener_with_an_undecodable_connection_manager_is_rejected() {
    let mut listener = mk_listener(8080);
    let garbage = vec![0xff, 0xff, 0xff];
    let Some(filter::ConfigType::TypedConfig(any)) = &mut listener.filter_chains[0].filters[0].config_type else {
        panic!("a typed filter")
    };
    any.value = garbage.clone();
    let reason = HttpConnectionManager::decode(garbage.as_slice()).expect_err("garbage").to_string();
    let parts = SnapshotParts { listeners: vec![listener], ..mk_parts(&["a"], &[8080]) };

    assert_eq!(
        Snapshot::build("p", parts),
        Err(SnapshotError::BadListener { listener: "listener_8080".into(), reason })
    );
}

#[test]
fn duplicate_names_are_rejected_for_every_type() {
    let mut clusters = mk_parts(&["a"], &[8080]);
    clusters.clusters.push(mk_cluster("a"));
    let mut endpoints = mk_parts(&["a"], &[8080]);
    endpoints.endpoints.push(mk_cla("a", 9001));
    let mut listeners = mk_parts(&["a"], &[8080]);
    listeners.listeners.push(mk_listener(8080));
    let mut routes = mk_parts(&["a"], &[8080]);
    routes.routes.push(mk_route_config("routes_8080", &[]));

    let errors: Vec<_> =
        [clusters, endpoints, listeners, routes].into_iter().map(|p| Snapshot::build("p", p).err()).collect();

    let dup =
        |type_url: &str, name: &str| Some(SnapshotError::Duplicate { type_url: type_url.into(), name: name.into() });
    assert_eq!(
        errors,
        [
            dup(CLUSTER_TYPE_URL, "a"),
            dup(ENDPOINT_TYPE_URL, "a"),
            dup(LISTENER_TYPE_URL, "listener_8080"),
            dup(ROUTE_TYPE_URL, "routes_8080"),
        ]
    );
}

#[test]
fn errors_name_what_is_missing_and_where() {
    let errors = [
        SnapshotError::MissingRoute { listener: "listener_8080".into(), route: "routes_8080".into() },
        SnapshotError::MissingEndpoints { cluster: "a".into(), name: "a-svc".into() },
        SnapshotError::MissingCluster { route: "routes_8080".into(), cluster: "ghost".into() },
        SnapshotError::Duplicate { type_url: LISTENER_TYPE_URL.into(), name: "listener_8080".into() },
    ];

    assert_eq!(
        errors.map(|e| e.to_string()),
        [
            r#"listener "listener_8080" names route configuration "routes_8080", which the snapshot lacks"#,
            r#"cluster "a" takes its endpoints from EDS, but the snapshot has no load assignment "a-svc""#,
            r#"route configuration "routes_8080" sends traffic to cluster "ghost", which the snapshot lacks"#,
            r#"two resources of type type.googleapis.com/envoy.config.listener.v3.Listener are named "listener_8080""#,
        ]
    );
}

#[test]
fn resource_packs_its_message_with_the_type_url() {
    let rc = mk_route_config("routes_8080", &["a"]);

    let r = Resource::new("routes_8080", &rc);

    assert_eq!(*r.body, Any { type_url: ROUTE_TYPE_URL.into(), value: rc.encode_to_vec() });
    assert_eq!(r.name, "routes_8080");
}

#[test]
fn replacing_a_load_assignment_equals_building_with_it() {
    let first = Snapshot::build("p", mk_parts(&["a", "b"], &[8080])).expect("consistent");
    let built = Snapshot::build(
        "p",
        SnapshotParts { endpoints: vec![mk_cla("a", 9001), mk_cla("b", 9000)], ..mk_parts(&["a", "b"], &[8080]) },
    )
    .expect("consistent");

    let replaced = first.with_endpoints(vec![mk_cla("a", 9001)]).expect("a is in the snapshot");

    assert_eq!(replaced, built);
    let [cds, _, lds, rds] = versions(&first);
    let [cds2, eds2, lds2, rds2] = versions(&replaced);
    assert_eq!((cds2, lds2, rds2), (cds, lds, rds), "only the EDS version changes");
    assert_ne!(eds2, versions(&first)[1]);
}

#[test]
fn replacing_a_load_assignment_the_snapshot_lacks_is_rejected() {
    let first = Snapshot::build("p", mk_parts(&["a"], &[8080])).expect("consistent");

    assert_eq!(
        first.with_endpoints(vec![mk_cla("z", 9001)]),
        Err(SnapshotError::UnknownEndpoints { name: "z".into() })
    );
}
