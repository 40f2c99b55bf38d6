use super::*;
use crate::profile::parse_profile;

const PROFILE: &str = r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["demo.test:8888", "other.test:8888"]
[[domains]]
name = "demo.test:8888"
aliases = ["localhost"]
[[domains.routes]]
path = "/healthz"
direct_response = { status = 200 }
[[domains.routes]]
prefix = "/api"
cluster = "edge"
timeout = "5s"
retries = { count = 2 }
request_headers_add = { x-from = "devbridge" }
[[domains]]
name = "other.test:8888"
routes = [{ prefix = "/", cluster = "edge" }]
[clusters.edge.static]
endpoints = [{ address = "10.0.0.1:80" }]
[clusters.local.static]
endpoints = [{ address = "127.0.0.1:5001" }]
"#;

fn mk_profile(extra: &str) -> Arc<Profile> {
    Arc::new(parse_profile("t.toml", "t", &format!("{PROFILE}{extra}")).unwrap())
}

fn mk_override(id: &str, prefix: &str, to: OverrideTarget) -> Override {
    Override {
        id: id.into(),
        domain: "demo.test:8888".into(),
        prefix: prefix.into(),
        headers: vec![],
        to,
        mirror: false,
        fault: None,
        proxy: None,
        expires_at_ms: None,
    }
}

#[test]
fn nothing_personal_is_the_same_profile() {
    let p = mk_profile("[identity]\nenabled = false\n");
    assert!(Arc::ptr_eq(&apply(&p, &Personal::default()), &p));
    assert!(Arc::ptr_eq(&apply(&p, &Personal { identity: Some("me".into()), overrides: vec![] }), &p));
}

#[test]
fn an_override_goes_first_with_the_policies_of_the_route_it_stands_in_front_of() {
    let p = mk_profile("");
    let o = mk_override("o1", "/api/users", OverrideTarget::Address("127.0.0.1:5000".parse().unwrap()));
    let out = apply(&p, &Personal { identity: None, overrides: vec![o] });
    let routes = &out.domains["demo.test:8888"].routes;
    assert_eq!(routes.len(), 3);
    assert_eq!(routes[0].override_id.as_deref(), Some("o1"));
    assert_eq!(routes[0].matcher.path, PathMatch::Prefix("/api/users".into()));
    let RouteAction::Forward(f) = &routes[0].action else { panic!("forwards") };
    assert_eq!(f.target, Target::Cluster("override-o1".into()));
    assert_eq!(f.timeout, Some(Duration::from_secs(5)));
    assert_eq!(f.retries.as_ref().map(|r| r.count), Some(2));
    assert_eq!(f.request_headers_add, [("x-from".to_string(), "devbridge".to_string())]);
    let Source::Static(eps) = &out.clusters["override-o1"].source else { panic!("static") };
    assert_eq!(eps[0].addr, "127.0.0.1:5000".parse().unwrap());
    // The other domain is untouched, and the translation holds.
    assert_eq!(out.domains["other.test:8888"], p.domains["other.test:8888"]);
    crate::publish::check(&out).unwrap();
}

#[test]
fn run_time_overrides_come_newest_first_then_the_profiles_own() {
    let p = mk_profile(
        r#"
[[overrides]]
domain = "demo.test:8888"
prefix = "/api"
cluster = "local"
"#,
    );
    assert_eq!(p.overrides[0].id, "profile-0");
    let overrides = vec![
        mk_override("o1", "/api", OverrideTarget::Cluster("local".into())),
        Override {
            headers: vec![("x-dev".into(), "me".into())],
            mirror: true,
            ..mk_override("o2", "/api", OverrideTarget::Address("127.0.0.1:5000".parse().unwrap()))
        },
    ];
    let out = apply(&p, &Personal { identity: None, overrides });
    let ids: Vec<Option<&str>> =
        out.domains["demo.test:8888"].routes.iter().map(|r| r.override_id.as_deref()).collect();
    assert_eq!(ids, [Some("o2"), Some("o1"), Some("profile-0"), None, None]);
    // A mirror keeps the route's own target and copies to the override's.
    let RouteAction::Forward(f) = &out.domains["demo.test:8888"].routes[0].action else { panic!("forwards") };
    assert_eq!(f.target, Target::Cluster("edge".into()));
    assert_eq!(f.mirror.as_ref().map(|m| m.cluster.as_str()), Some("override-o2"));
    assert_eq!(out.domains["demo.test:8888"].routes[0].matcher.headers[0].name, "x-dev");
}

#[test]
fn the_identity_is_added_to_every_domain_when_absent() {
    let p = mk_profile("[identity]\nheader = \"X-Dev-Who\"\n");
    let out = apply(&p, &Personal { identity: Some("me@example.com".into()), overrides: vec![] });
    for d in out.domains.values() {
        assert_eq!(d.headers_if_absent, [("x-dev-who".to_string(), "me@example.com".to_string())]);
    }
    // The default header, without an [identity] table.
    assert_eq!(mk_profile("").identity_header.as_deref(), Some("x-dev-user"));
}

#[test]
fn bad_overrides_are_refused_in_words() {
    let p = mk_profile("");
    let unknown =
        Override { domain: "nope.test:1".into(), ..mk_override("o1", "/", OverrideTarget::Cluster("local".into())) };
    assert_eq!(
        check(&p, &unknown).unwrap_err(),
        "profile t has no domain \"nope.test:1\"; its domains: demo.test:8888, other.test:8888"
    );
    let bad_prefix = mk_override("o1", "api", OverrideTarget::Cluster("local".into()));
    assert!(check(&p, &bad_prefix).unwrap_err().contains("is not a path prefix"));
    let no_cluster = mk_override("o1", "/", OverrideTarget::Cluster("nope".into()));
    assert!(check(&p, &no_cluster).unwrap_err().starts_with("profile t has no cluster \"nope\""));
    let port0 = mk_override("o1", "/", OverrideTarget::Address("127.0.0.1:0".parse().unwrap()));
    assert!(check(&p, &port0).unwrap_err().contains("port 0"));
}

#[test]
fn a_target_names_its_domain_by_name_host_or_alias() {
    let p = mk_profile("");
    assert_eq!(resolve_target(&p, "demo.test/api").unwrap(), ("demo.test:8888".into(), "/api".into()));
    assert_eq!(resolve_target(&p, "demo.test:8888/api").unwrap(), ("demo.test:8888".into(), "/api".into()));
    assert_eq!(resolve_target(&p, "http://localhost:8888").unwrap(), ("demo.test:8888".into(), "/".into()));
    assert!(resolve_target(&p, "nope.test/api").unwrap_err().contains("its domains: demo.test:8888, other.test:8888"));
}

#[test]
fn an_override_for_one_proxy_leaves_the_others_of_its_domain_alone() {
    let p = mk_profile(
        r#"
[proxies.q]
zone = "z"
node_cluster = "q"
domains = ["demo.test:8888"]
"#,
    );
    let shared = mk_override("o1", "/api", OverrideTarget::Cluster("local".into()));
    let mine = Override { proxy: Some("q".into()), ..mk_override("o2", "/", OverrideTarget::Cluster("local".into())) };
    assert_eq!(check(&p, &mine), Ok(()));
    let out = apply(&p, &Personal { identity: None, overrides: vec![shared, mine] });
    assert_eq!(out.proxies["q"].domains, ["demo.test:8888#q"]);
    assert_eq!(out.proxies["p"].domains, ["demo.test:8888", "other.test:8888"]);
    let ids =
        |d: &str| -> Vec<Option<String>> { out.domains[d].routes.iter().map(|r| r.override_id.clone()).collect() };
    assert_eq!(ids("demo.test:8888#q"), [Some("o2".into()), Some("o1".into()), None, None]);
    assert_eq!(ids("demo.test:8888"), [Some("o1".into()), None, None]);
    crate::publish::check(&out).unwrap();

    let elsewhere =
        Override { proxy: Some("nope".into()), ..mk_override("o3", "/", OverrideTarget::Cluster("local".into())) };
    assert_eq!(
        check(&p, &elsewhere).unwrap_err(),
        "proxy \"nope\" does not serve demo.test:8888; the proxies that do: p, q"
    );
}

#[test]
fn faults_alone_keep_every_request_on_the_route_it_met_before() {
    let p = Arc::new(
        parse_profile(
            "t.toml",
            "t",
            r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["demo.test:8888"]
[[domains]]
name = "demo.test:8888"
[[domains.routes]]
regex = "/api/items/[0-9]+"
cluster = "local"
[[domains.routes]]
prefix = "/api"
headers = [{ name = "x-dev", exact = "canary" }]
cluster = "local"
[[domains.routes]]
prefix = "/api"
cluster = "edge"
prefix_rewrite = "/v2"
[[domains.routes]]
path = "/healthz"
direct_response = { status = 200 }
[clusters.edge.static]
endpoints = [{ address = "10.0.0.1:80" }]
[clusters.local.static]
endpoints = [{ address = "127.0.0.1:5001" }]
"#,
        )
        .unwrap(),
    );
    let fault = crate::model::Fault { delay: None, abort: Some((503, 100)) };
    let o = Override { fault: Some(fault.clone()), ..mk_override("o1", "/api/users", OverrideTarget::Route) };
    assert_eq!(check(&p, &o), Ok(()));
    let out = apply(&p, &Personal { identity: None, overrides: vec![o] });
    let routes = &out.domains["demo.test:8888"].routes;
    // The regex (as it was, no faults), the canary route and the plain one
    // narrowed to /api/users with faults; /healthz is not under the prefix.
    assert_eq!(routes.len(), 3 + 4);
    assert_eq!(routes[0].matcher.path, PathMatch::Regex("/api/items/[0-9]+".into()));
    let RouteAction::Forward(f0) = &routes[0].action else { panic!() };
    assert_eq!(f0.fault, None);
    assert_eq!(routes[1].matcher.path, PathMatch::Prefix("/api/users".into()));
    assert_eq!(routes[1].matcher.headers[0].name, "x-dev");
    let RouteAction::Forward(f1) = &routes[1].action else { panic!() };
    assert_eq!((f1.target.clone(), f1.fault.clone()), (Target::Cluster("local".into()), Some(fault.clone())));
    let RouteAction::Forward(f2) = &routes[2].action else { panic!() };
    assert_eq!(f2.target, Target::Cluster("edge".into()));
    // /api -> /v2 narrowed to /api/users -> /v2/users: the same rewrite.
    assert_eq!(f2.prefix_rewrite.as_deref(), Some("/v2/users"));
    assert!(routes[..3].iter().all(|r| r.override_id.as_deref() == Some("o1")));
    crate::publish::check(&out).unwrap();

    let nothing = mk_override("o2", "/api", OverrideTarget::Route);
    assert!(check(&p, &nothing).unwrap_err().contains("needs somewhere to send to"));
}
