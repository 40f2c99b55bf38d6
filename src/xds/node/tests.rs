use super::*;
use crate::profile::parse_profile;

fn mk_profile() -> Profile {
    let src = r#"
        [zones.z1]
        [zones.z2]
        [proxies.a]
        zone = "z1"
        node_cluster = "edge"
        domains = ["a.test:8080"]
        [proxies.b]
        zone = "z2"
        node_cluster = "edge"
        domains = ["a.test:8080"]
        [[domains]]
        name = "a.test:8080"
        routes = [{ prefix = "/", direct_response = { status = 200 } }]
    "#;
    parse_profile("n.toml", "n", src).expect("valid")
}

fn mk_node<'a>(cluster: &'a str, zone: &'a str) -> NodeId<'a> {
    NodeId { cluster, id: "envoy-1", zone }
}

#[test]
fn a_node_stating_its_zone_is_that_zones_proxy_and_is_reported_once() {
    let (profile, mut m) = (mk_profile(), NodeMatch::default());
    assert_eq!(m.update(&profile, mk_node("edge", "z2"), None), Change::Matched("b".into()));
    assert_eq!((m.proxy.as_deref(), m.unmatched.as_deref()), (Some("b"), None));
    assert_eq!(m.update(&profile, mk_node("edge", "z2"), None), Change::Quiet);
}

#[test]
fn an_unknown_node_is_warned_about_once_with_every_known_proxy() {
    let (profile, mut m) = (mk_profile(), NodeMatch::default());
    let known = vec![
        "a (node.cluster=\"edge\", zone=\"z1\")".to_string(),
        "b (node.cluster=\"edge\", zone=\"z2\")".to_string(),
    ];
    assert_eq!(m.update(&profile, mk_node("web", "z1"), None), Change::NoProxy { profile: "n".into(), known });
    assert_eq!(
        m.unmatched.as_deref(),
        Some("no proxy of profile n matches node.cluster \"web\", node.id \"envoy-1\", zone \"z1\"")
    );
    assert_eq!(m.update(&profile, mk_node("web", "z1"), None), Change::Quiet);
    assert_eq!(m.proxy, None);
}

#[test]
fn a_node_without_a_zone_matching_several_proxies_gets_none() {
    let (profile, mut m) = (mk_profile(), NodeMatch::default());
    let change = m.update(&profile, mk_node("edge", ""), None);
    assert_eq!(change, Change::Ambiguous { profile: "n".into(), candidates: vec!["a".into(), "b".into()] });
    assert_eq!(
        m.unmatched.as_deref(),
        Some("the node states no zone and matches several proxies (a, b); set node.locality.zone")
    );
}

#[test]
fn a_certificate_naming_another_proxy_is_refused_once_per_reason() {
    let (profile, mut m) = (mk_profile(), NodeMatch::default());
    let why = "its client certificate names b, but its node claims proxy a".to_string();
    assert_eq!(m.update(&profile, mk_node("edge", "z1"), Some(Some("b"))), Change::Refused(why.clone()));
    assert_eq!((m.proxy.as_deref(), m.unmatched.as_deref()), (None, Some(why.as_str())));
    assert_eq!(m.update(&profile, mk_node("edge", "z1"), Some(Some("b"))), Change::Quiet);
    let none = "its client certificate names no proxy, but its node claims proxy a".to_string();
    assert_eq!(m.update(&profile, mk_node("edge", "z1"), Some(None)), Change::Refused(none));
    assert_eq!(m.update(&profile, mk_node("edge", "z1"), Some(Some("a"))), Change::Matched("a".into()));
}
