use std::collections::BTreeMap;

use super::*;
use crate::discovery::index::objects::ContainerPort;

fn mk_pod(name: &str, ready: bool, host_network: bool, ports: &[(&str, u16)]) -> PodInfo {
    PodInfo {
        namespace: "edge".into(),
        name: name.into(),
        phase: "Running".into(),
        ready,
        terminating: false,
        host_network,
        pod_ip: Some("10.0.0.5".parse().unwrap()),
        node: Some("node-1".into()),
        labels: BTreeMap::from([("app".to_string(), "edge-envoy".to_string())]).into(),
        ports: ports.iter().map(|(n, p)| ContainerPort { name: Some(n.to_string()), port: *p }).collect(),
    }
}

fn mk_node(zone: Option<&str>) -> NodeInfo {
    NodeInfo { name: "node-1".into(), zone: zone.map(str::to_string), internal_ip: None, external_ip: None }
}

fn mk_inventory(pods: Vec<PodInfo>, nodes: Nodes) -> Inventory {
    Inventory {
        server: "https://10.0.0.1:6443".into(),
        query: Query {
            kubeconfig: None,
            context: Some("staging".into()),
            namespace: "edge".into(),
            selector: Some("app=edge-envoy".into()),
        },
        pods,
        nodes,
    }
}

fn mk_starter() -> Starter {
    Starter {
        name: "staging".into(),
        kubeconfig: None,
        context: Some("staging".into()),
        namespace: "edge".into(),
        selector: "app=edge-envoy".into(),
        port: PortRef::Name("http".into()),
        address: AddressKind::Pod,
        host_network: true,
        node_zones: false,
        domain: starter::DEFAULT_DOMAIN.into(),
    }
}

fn forbidden(resource: &'static str) -> KubeError {
    KubeError::Forbidden {
        server: "https://10.0.0.1:6443".into(),
        verb: "list",
        resource,
        code: 403,
        message: format!("{resource} is forbidden"),
    }
}

#[test]
fn the_listing_shows_each_pod_and_what_the_profile_makes_of_it() {
    let inv = mk_inventory(
        vec![
            mk_pod("edge-a", true, true, &[("http", 8080), ("admin", 9901)]),
            mk_pod("edge-b", false, true, &[("http", 8080)]),
            mk_pod("edge-c", true, true, &[("admin", 9901)]),
            mk_pod("web", true, false, &[("http", 8080)]),
        ],
        Nodes::Listed(vec![mk_node(Some("eu-1a"))]),
    );
    let rule = mk_starter().rule().unwrap();
    let text = render(&inv, Some(&rule));
    let want = "\
https://10.0.0.1:6443 (context staging), namespace edge, selector \"app=edge-envoy\": 4 pods

pod edge-a  Running, Ready
  network  hostNetwork, IP 10.0.0.5
  node     node-1, zone eu-1a
  ports    http=8080, admin=9901
  labels   app=edge-envoy
  select   10.0.0.5:8080

pod edge-b  Running, not Ready
  network  hostNetwork, IP 10.0.0.5
  node     node-1, zone eu-1a
  ports    http=8080
  labels   app=edge-envoy
  skip     not Ready

pod edge-c  Running, Ready
  network  hostNetwork, IP 10.0.0.5
  node     node-1, zone eu-1a
  ports    admin=9901
  labels   app=edge-envoy
  skip     has no port named \"http\"; it has admin=9901

pod web  Running, Ready
  network  pod network, IP 10.0.0.5
  node     node-1, zone eu-1a
  ports    http=8080
  labels   app=edge-envoy
  skip     not on hostNetwork (set host_network = false to take pods on the pod network)

a profile with this selector, port \"http\", address \"pod\", host_network = true selects 1 of 4 pods
";
    assert_eq!(text, want);
}

#[test]
fn unreadable_nodes_leave_zones_unknown_and_say_why() {
    let inv =
        mk_inventory(vec![mk_pod("edge-a", true, true, &[("http", 8080)])], Nodes::Unreadable(forbidden("nodes")));
    let text = render(&inv, None);
    assert!(text.contains("\nzones unknown: cannot list nodes (the API server https://10.0.0.1:6443 refused to let us list nodes (403)"), "{text}");
    assert!(text.contains("  node     node-1, zone unknown (nodes not readable)\n"), "{text}");
    assert!(
        text.ends_with(
            "pass --port NAME or --port NUMBER (every pod has http) to see which pods a profile would select\n"
        ),
        "{text}"
    );
    let json = to_json(&inv, None);
    assert_eq!(json["pods"][0]["zone"], Value::Null);
    assert_eq!(json["nodes"]["readable"], false);
}

#[test]
fn a_node_without_the_zone_label_is_said_so() {
    let inv = mk_inventory(vec![mk_pod("edge-a", true, true, &[("http", 8080)])], Nodes::Listed(vec![mk_node(None)]));
    assert_eq!(inv.zone(&inv.pods[0]), Err("node node-1 has no topology.kubernetes.io/zone label".to_string()));
}

#[test]
fn the_json_listing_carries_each_verdict() {
    let inv = mk_inventory(
        vec![mk_pod("edge-a", true, true, &[("http", 8080)]), mk_pod("edge-b", false, true, &[("http", 8080)])],
        Nodes::Listed(vec![mk_node(Some("eu-1a"))]),
    );
    let json = to_json(&inv, Some(&mk_starter().rule().unwrap()));
    assert_eq!(json["pods"][0]["selected"], "10.0.0.5:8080");
    assert_eq!(json["pods"][0]["zone"], "eu-1a");
    assert_eq!(json["pods"][0]["ports"], json!([{ "name": "http", "port": 8080 }]));
    assert_eq!(json["pods"][1]["skipped"], "not Ready");
    assert_eq!(json["selected"], 1);
    assert_eq!(json["rule"], json!({ "port": "http", "address": "pod", "host_network": true, "node_zones": false }));
}

#[test]
fn the_starter_profile_validates_with_and_without_what_was_found() {
    let mut s = mk_starter();
    let inv = mk_inventory(
        vec![mk_pod("edge-a", true, true, &[("http", 8080)]), mk_pod("edge-b", true, true, &[("http", 8080)])],
        Nodes::Listed(vec![mk_node(Some("eu-1a"))]),
    );
    s.fit(&inv);
    assert!(s.node_zones, "readable nodes with zones turn zones on");
    assert!(s.host_network);
    let text = s.text(Some(&inv));
    let p = crate::profile::parse_profile("staging.toml", "staging", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.name, "staging");
    assert_eq!(p.proxies[starter::PROXY].domains, vec![starter::DEFAULT_DOMAIN.to_string()]);
    let crate::model::Source::Kubernetes(k) = &p.clusters[starter::CLUSTER].source else { panic!("{text}") };
    assert_eq!(
        (k.context.as_deref(), k.namespaces.as_slice(), k.selector.as_str()),
        (Some("staging"), &["edge".to_string()][..], "app=edge-envoy")
    );
    assert_eq!(k.port, PortRef::Name("http".into()));
    assert!(k.node_zones && k.host_network && k.address == AddressKind::Pod);
    // Each choice is explained where it is made.
    for (key, comment) in [
        ("selector = \"app=edge-envoy\"", "# 2 pods match now"),
        ("port = \"http\"", "# 2 of 2 declare it"),
        ("host_network = true", "# 2 of 2 on hostNetwork: only such pods count"),
    ] {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key}:\n{text}"));
        assert!(line.contains(comment), "{line}");
    }
    assert!(text.contains("# Pods on hostNetwork: their pod IP is their node's IP (10.0.0.5)"), "{text}");
    assert!(text.contains("topology.kubernetes.io/zone (eu-1a)"), "{text}");
    // And with nothing found, it is still a valid profile.
    mk_starter().profile().unwrap();
}

#[test]
fn pods_only_on_the_pod_network_make_the_starter_take_them() {
    let mut s = mk_starter();
    let inv = mk_inventory(vec![mk_pod("web", true, false, &[("http", 8080)])], Nodes::Unreadable(forbidden("nodes")));
    s.fit(&inv);
    assert!(!s.host_network && !s.node_zones);
    assert_eq!(inv.verdicts(&s.rule().unwrap()), vec![Ok("10.0.0.5:8080".parse().unwrap())]);
    let text = s.text(Some(&inv));
    assert!(text.contains("host_network = false   # 0 of 1 on hostNetwork: pods on the pod network count"), "{text}");
    assert!(
        text.contains("# node_zones = true puts each edge in its node's zone; off: nodes are not readable"),
        "{text}"
    );
    crate::profile::parse_profile("s.toml", "s", &text).unwrap();
}

#[test]
fn a_bad_selector_or_port_is_an_error_of_the_profile_at_its_key() {
    let mut s = mk_starter();
    s.selector = "app in (edge".into();
    s.port = PortRef::Name("HTTP".into());
    let errors = s.rule().unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["clusters.edge.kubernetes.selector", "clusters.edge.kubernetes.port"]);
}

#[test]
fn a_refusal_hint_names_the_can_i_command() {
    let q = mk_inventory(vec![], Nodes::Listed(vec![])).query;
    assert_eq!(
        hint(&forbidden("pods"), &q).unwrap(),
        "  check: kubectl auth can-i list pods --namespace edge --context staging\n  \
         ask the cluster admin to grant examples/rbac.yaml's role to the identity `kubectl auth whoami --context staging` shows"
    );
}
