use super::*;
use crate::model::Published;
use crate::profile::parse_profile;
use crate::publish::Builder;
use crate::xds::ResourceType;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message;

const PROFILE: &str = r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["svc.test:8080"]
[[domains]]
name = "svc.test:8080"
[[domains.routes]]
prefix = "/static"
cluster = "fixed"
[[domains.routes]]
cluster = "svc"
[clusters.svc.registered]
[clusters.fixed.static]
endpoints = [{ address = "127.0.0.1:9000" }]
"#;

/// The builder, fed what the registry sends, as the builder task would.
struct Publisher {
    builder: std::cell::RefCell<Builder>,
    registered: watch::Receiver<Arc<EndpointSet>>,
}

impl Publisher {
    fn current(&self) -> Arc<Published> {
        let mut builder = self.builder.borrow_mut();
        builder.set_registered(self.registered.borrow().clone()).unwrap();
        builder.published().clone()
    }
}

fn mk_registry(state: Option<PathBuf>) -> (Publisher, Arc<Registry>) {
    let profile = Arc::new(parse_profile("r.toml", "r", PROFILE).unwrap());
    let (_, rx) = watch::channel(profile.clone());
    let (registry, registered) = Registry::open(rx, state);
    let builder = Builder::new(profile, registered.borrow().clone()).unwrap();
    (Publisher { builder: builder.into(), registered }, registry)
}

fn mk_endpoint(address: &str) -> RegisteredEndpoint {
    RegisteredEndpoint { address: address.into(), zone: None, weight: None, metadata: BTreeMap::new() }
}

/// The addresses Envoy would get for `cluster`.
fn served(publisher: &Publisher, cluster: &str) -> Vec<String> {
    let published = publisher.current();
    let r = &published.snapshots["p"].resources(ResourceType::Endpoint).items[cluster];
    let cla = ClusterLoadAssignment::decode(r.body.value.as_slice()).unwrap();
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| match &e.host_identifier {
            Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                match ep.address.as_ref().and_then(|a| a.address.as_ref()) {
                    Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => {
                        format!("{}:{:?}", s.address, s.port_specifier)
                    }
                    _ => String::new(),
                }
            }
            _ => String::new(),
        })
        .collect()
}

#[test]
fn registered_endpoints_are_served_and_emptied() {
    let (publisher, registry) = mk_registry(None);
    assert_eq!(served(&publisher, "svc"), Vec::<String>::new());

    let set = registry
        .set(
            "svc",
            &[
                RegisteredEndpoint {
                    zone: Some("us-east-1a".into()),
                    weight: Some(3),
                    metadata: [("canary".to_string(), "true".to_string())].into(),
                    ..mk_endpoint("127.0.0.1:9001")
                },
                mk_endpoint("127.0.0.1:9002"),
            ],
        )
        .unwrap();
    assert_eq!(
        set[0],
        Endpoint {
            unhealthy: false,
            addr: "127.0.0.1:9001".parse().unwrap(),
            zone: Some("us-east-1a".into()),
            weight: Some(3),
            metadata: std::sync::Arc::new([("canary".to_string(), "true".to_string())].into()),
        }
    );
    assert_eq!(served(&publisher, "svc"), ["127.0.0.1:Some(PortValue(9002))", "127.0.0.1:Some(PortValue(9001))"]);

    registry.set("svc", &[]).unwrap();
    assert_eq!(served(&publisher, "svc"), Vec::<String>::new());
    assert_eq!(registry.all(), EndpointSet::new());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (publisher, registry) = mk_registry(None);
    registry.set("svc", &[mk_endpoint("127.0.0.1:9001")]).unwrap();
    let before = publisher.current();

    let errors: Vec<(u16, String)> = [
        registry.set("nope", &[mk_endpoint("127.0.0.1:1")]),
        registry.set("fixed", &[mk_endpoint("127.0.0.1:1")]),
        registry.set("svc", &[mk_endpoint("127.0.0.1:1"), mk_endpoint("localhost:80")]),
        registry.set("svc", &[RegisteredEndpoint { weight: Some(0), ..mk_endpoint("127.0.0.1:1") }]),
        registry.set("svc", &[mk_endpoint("127.0.0.1:1"), mk_endpoint("127.0.0.1:1")]),
    ]
    .into_iter()
    .map(|r| {
        let e = r.unwrap_err();
        (e.http_status(), e.to_string())
    })
    .collect();

    assert_eq!(
        errors,
        [
            (404, "no cluster \"nope\" in profile \"r\"; registered clusters: svc".to_string()),
            (409, "cluster \"fixed\" takes its endpoints from its static source; only clusters with a [clusters.fixed.registered] source accept registered endpoints".to_string()),
            (400, "endpoint [1]: address \"localhost:80\" is not ip:port, e.g. 127.0.0.1:9001".to_string()),
            (400, "endpoint [0]: weight 0 is out of range; expected 1 to 128".to_string()),
            (400, "endpoint [1]: 127.0.0.1:1 is listed twice".to_string()),
        ]
    );
    assert!(Arc::ptr_eq(&before, &publisher.current()), "nothing was republished");
    assert_eq!(registry.all()["svc"].len(), 1);
}

#[test]
fn unspecified_addresses_mapped_duplicates_and_control_characters_in_zones_are_refused() {
    let (publisher, registry) = mk_registry(None);
    let before = publisher.current();
    let errors: Vec<(u16, String)> = [
        registry.set("svc", &[mk_endpoint("0.0.0.0:9001")]),
        registry.set("svc", &[mk_endpoint("[::]:9001")]),
        registry.set("svc", &[mk_endpoint("[::ffff:0.0.0.0]:9001")]),
        registry.set("svc", &[mk_endpoint("127.0.0.1:9001"), mk_endpoint("[::ffff:127.0.0.1]:9001")]),
        registry.set("svc", &[RegisteredEndpoint { zone: Some("eu\n1".into()), ..mk_endpoint("127.0.0.1:1") }]),
    ]
    .into_iter()
    .map(|r| {
        let e = r.unwrap_err();
        (e.http_status(), e.to_string())
    })
    .collect();
    assert_eq!(
        errors,
        [
            (400, "endpoint [0]: address \"0.0.0.0:9001\" is unspecified (any address); expected the address of a host, e.g. 127.0.0.1".to_string()),
            (400, "endpoint [0]: address \"[::]:9001\" is unspecified (any address); expected the address of a host, e.g. 127.0.0.1".to_string()),
            (400, "endpoint [0]: address \"[::ffff:0.0.0.0]:9001\" is unspecified (any address); expected the address of a host, e.g. 127.0.0.1".to_string()),
            (400, "endpoint [1]: [::ffff:127.0.0.1]:9001 is listed twice".to_string()),
            (400, "endpoint [0]: zone \"eu\\n1\" contains a control character; expected a name like \"eu-west-1a\"".to_string()),
        ]
    );
    assert!(Arc::ptr_eq(&before, &publisher.current()), "nothing was republished");
}

#[test]
fn registered_endpoints_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("r.registered.json");
    {
        let (_, registry) = mk_registry(Some(state.clone()));
        registry.set("svc", &[mk_endpoint("127.0.0.1:9001"), mk_endpoint("127.0.0.1:9002")]).unwrap();
    }
    let (publisher, registry) = mk_registry(Some(state.clone()));
    assert_eq!(registry.all()["svc"].len(), 2);
    assert_eq!(served(&publisher, "svc").len(), 2);
    // Only the final file is left: the temporary one was renamed over it.
    let files: Vec<String> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(files, ["r.registered.json"]);
}

#[test]
fn an_unreadable_state_file_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("r.registered.json");
    std::fs::write(&state, "{ not json").unwrap();
    let (_, registry) = mk_registry(Some(state));
    assert_eq!(registry.all(), EndpointSet::new());
}

#[test]
fn get_and_report_show_what_is_registered() {
    let (_publisher, registry) = mk_registry(None);
    assert_eq!(registry.get("svc").unwrap(), vec![]);
    assert_eq!(registry.report(), BTreeMap::from([("svc".to_string(), vec![])]));
    registry.set("svc", &[mk_endpoint("127.0.0.1:9001")]).unwrap();
    assert_eq!(registry.get("svc").unwrap(), vec![mk_endpoint("127.0.0.1:9001")]);
    assert_eq!(registry.report(), BTreeMap::from([("svc".to_string(), vec![mk_endpoint("127.0.0.1:9001")])]));
    assert_eq!(registry.get("fixed").unwrap_err().http_status(), 409);
    assert_eq!(registry.get("nope").unwrap_err().http_status(), 404);
}

#[test]
fn a_temporary_state_file_left_by_a_crash_is_removed_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("r.registered.json");
    {
        let (_, registry) = mk_registry(Some(state.clone()));
        registry.set("svc", &[mk_endpoint("127.0.0.1:9001")]).unwrap();
    }
    // Killed between creating the temporary file and renaming it.
    std::fs::write(dir.path().join(".r.registered.json.tmp"), "{ \"svc\": [").unwrap();
    let (publisher, registry) = mk_registry(Some(state.clone()));
    assert_eq!(served(&publisher, "svc"), ["127.0.0.1:Some(PortValue(9001))"]);
    assert_eq!(registry.all()["svc"].len(), 1);
    let files: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(files, ["r.registered.json"]);
}

#[test]
fn stored_endpoints_of_clusters_not_registered_in_the_profile_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("r.registered.json");
    std::fs::write(
        &state,
        r#"{ "svc": [{ "address": "127.0.0.1:9001" }],
             "fixed": [{ "address": "127.0.0.1:9002" }],
             "gone": [{ "address": "127.0.0.1:9003" }] }"#,
    )
    .unwrap();
    let (publisher, registry) = mk_registry(Some(state));
    assert_eq!(registry.all().keys().collect::<Vec<_>>(), ["svc"]);
    assert_eq!(registry.report().keys().collect::<Vec<_>>(), ["svc"], "what /status lists");
    assert_eq!(served(&publisher, "fixed"), ["127.0.0.1:Some(PortValue(9000))"], "the profile's own endpoints");
}

#[test]
fn why_stored_clusters_are_not_restored_is_said_per_cluster() {
    let profile = parse_profile("r.toml", "r", PROFILE).unwrap();
    let mk = |addr: &str| -> crate::model::Endpoints { vec![mk_endpoint(addr).to_endpoint(0).unwrap()].into() };
    let stored: EndpointSet = [("svc", mk("127.0.0.1:1")), ("fixed", mk("127.0.0.1:2")), ("gone", mk("127.0.0.1:3"))]
        .into_iter()
        .map(|(c, e)| (c.to_string(), e))
        .collect();
    let (kept, dropped) = restorable(&profile, stored);
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["svc"]);
    assert_eq!(
        dropped,
        [
            "fixed (a static cluster in profile \"r\")".to_string(),
            "gone (no such cluster in profile \"r\")".to_string()
        ]
    );
}

#[test]
fn restored_endpoints_that_cannot_be_served_are_kept_neither_in_memory_nor_served() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("r.registered.json");
    std::fs::write(&state, r#"{ "svc": [{ "address": "127.0.0.1:9001" }] }"#).unwrap();
    // A profile that does not translate: a route names a cluster it lacks.
    let mut profile = parse_profile("r.toml", "r", PROFILE).unwrap();
    profile.clusters.remove("fixed");
    let (_, rx) = watch::channel(Arc::new(profile));
    let (registry, registered) = Registry::open(rx, Some(state));
    assert_eq!(registry.all(), EndpointSet::new());
    assert_eq!(**registered.borrow(), EndpointSet::new());
    assert_eq!(registry.report(), BTreeMap::from([("svc".to_string(), vec![])]));
}
