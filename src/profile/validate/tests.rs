//! Validation tests: small profiles in, whole error lists or whole model
//! values out. Each profile is written flush left after `dedent`, so the line
//! numbers in the expected errors are the lines as they read here.

mod clusters;
mod policies;
mod proxies;
mod routes;
mod tracing;

use super::*;

/// Strips the leading newline and the common indentation of a test profile.
fn dedent(s: &str) -> String {
    let s = s.strip_prefix('\n').unwrap_or(s);
    let indent = s.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    s.lines().map(|l| l.get(indent..).unwrap_or("")).collect::<Vec<_>>().join("\n") + "\n"
}

/// Parses a profile that must be valid.
fn mk_profile(src: &str) -> Profile {
    match parse_profile("t.toml", "t", &dedent(src)) {
        Ok(p) => p,
        Err(e) => panic!("expected a valid profile, got:\n{e}"),
    }
}

/// Parses a profile that must be invalid, rendering each error as `devbridge check` prints it.
fn mk_errors(src: &str) -> Vec<String> {
    match parse_profile("t.toml", "t", &dedent(src)) {
        Ok(p) => panic!("expected errors, got {p:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn mk_endpoint(addr: &str) -> Endpoint {
    Endpoint { unhealthy: false, addr: addr.parse().unwrap(), zone: None, weight: None, metadata: Default::default() }
}

fn mk_forward(target: Target) -> Forward {
    Forward {
        target,
        timeout: None,
        retries: None,
        prefix_rewrite: None,
        host_rewrite: None,
        request_headers_add: vec![],
        subset: Default::default(),
        hash_policy: vec![],
        mirror: None,
        fault: None,
    }
}

/// A route with no response headers or CORS of its own.
fn mk_route(matcher: RouteMatch, action: RouteAction) -> Route {
    Route {
        matcher,
        action,
        response_headers_add: vec![],
        response_headers_remove: vec![],
        cors: None,
        override_id: None,
    }
}

fn mk_match(path: PathMatch) -> RouteMatch {
    RouteMatch { path, headers: vec![], query: vec![], methods: vec![] }
}

fn mk_value_match(name: &str, kind: ValueMatchKind, invert: bool) -> ValueMatch {
    ValueMatch { name: name.into(), kind, invert }
}

// ---------------------------------------------------------------- the whole file

#[test]
fn demo_profile_parses_into_the_expected_model() {
    let p = parse_profile("demo.toml", "demo", include_str!("../../../profiles/demo.toml")).unwrap();

    assert_eq!(p.name, "demo");
    assert_eq!(p.file, "demo.toml");
    assert_eq!(p.listen, ListenOverrides::default());
    assert_eq!(
        p.zones,
        BTreeMap::from([(
            "dev-local".to_string(),
            Zone { name: "dev-local".into(), description: Some("this laptop".into()) }
        )])
    );
    assert_eq!(
        p.proxies["dev-proxy"],
        Proxy {
            name: "dev-proxy".into(),
            zone: "dev-local".into(),
            node_cluster: "dev-proxy".into(),
            node_id: None,
            domains: vec!["demo.example.com:8888".into()],
            listen_address: IpAddr::from([127, 0, 0, 1]),
            admin: "127.0.0.1:9901".parse().unwrap(),
            tcp: vec![],
            kind: ProxyKind::Envoy,
        }
    );

    let healthz = mk_route(
        mk_match(PathMatch::Exact("/healthz".into())),
        RouteAction::DirectResponse { status: 200, body: Some("ok from the devbridge demo\n".into()) },
    );
    let version = mk_route(
        mk_match(PathMatch::Exact("/version".into())),
        RouteAction::DirectResponse { status: 200, body: Some("devbridge demo profile\n".into()) },
    );
    let canary = mk_route(
        RouteMatch {
            headers: vec![mk_value_match("x-dev", ValueMatchKind::Exact("canary".into()), false)],
            ..mk_match(PathMatch::Prefix("/api".into()))
        },
        RouteAction::Forward(mk_forward(Target::Cluster("edge-canary".into()))),
    );
    let edge = mk_route(
        mk_match(PathMatch::Prefix("/api".into())),
        RouteAction::Forward(Forward {
            timeout: Some(Duration::from_secs(5)),
            retries: Some(Retries {
                count: 2,
                on: vec!["connect-failure".into(), "5xx".into()],
                status_codes: vec![],
                per_try_timeout: Some(Duration::from_secs(2)),
            }),
            request_headers_add: vec![("x-devbridge-profile".into(), "demo".into())],
            ..mk_forward(Target::Cluster("edge".into()))
        }),
    );
    assert_eq!(
        p.domains["demo.example.com:8888"],
        Domain {
            name: "demo.example.com:8888".into(),
            host: "demo.example.com".into(),
            port: 8888,
            aliases: vec!["localhost".into(), "127.0.0.1".into()],
            routes: vec![healthz, version, canary, edge],
            cors: None,
            headers_if_absent: vec![],
        }
    );

    let endpoint = |addr: &str, key: &str, value: &str| Endpoint {
        zone: Some("dev-local".into()),
        metadata: BTreeMap::from([(key.to_string(), value.to_string())]).into(),
        ..mk_endpoint(addr)
    };
    assert_eq!(
        p.clusters["edge"],
        Cluster {
            name: "edge".into(),
            source: Source::Static(vec![
                endpoint("127.0.0.1:9001", "name", "edge-1"),
                endpoint("127.0.0.1:9002", "name", "edge-2"),
            ]),
            lb: LbPolicy::RoundRobin,
            connect_timeout: Duration::from_millis(250),
            http2: false,
            health_check: None,
            circuit_breakers: None,
            tls: None,
            probe: Some(ProbeSpec { probe: Probe::Tcp, interval: None, timeout: None }),
            outlier_detection: None,
            zone_priority: vec![],
            subset_keys: vec![],
            subset_fallback: SubsetFallback::Any,
        }
    );
    assert_eq!(p.clusters["edge-canary"].source, Source::Static(vec![endpoint("127.0.0.1:9002", "canary", "true")]));
    assert_eq!(p.clusters["edge-canary"].connect_timeout, DEFAULT_CONNECT_TIMEOUT);
}

#[test]
fn three_independent_mistakes_are_reported_as_three_located_errors_in_line_order() {
    let errors = mk_errors(
        r#"
        [zones.dev]

        [proxies.p]
        zone = "dve"
        domains = ["a.test:80"]

        [[domains]]
        name = "a.test:80"

        [[domains.routes]]
        prefix = "/api"
        cluster = "edgee"

        [clusters.edge]
        connect_timeout = "fast"
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:8: proxies.p.zone: "dve" is not a zone; known zones: dev"#,
            r#"t.toml:12:11: domains[0].routes[0].cluster: "edgee" is not a cluster; known clusters: edge"#,
            r#"t.toml:15:19: clusters.edge.connect_timeout: "fast" is not a duration; expected e.g. "250ms", "5s", "1m""#,
        ]
    );
}

#[test]
fn toml_syntax_error_is_located_without_a_key() {
    let errors = mk_errors(
        r#"
        description = "x"
        name = = "y"
        "#,
    );
    assert_eq!(errors, ["t.toml:2:8: extra `=`, expected nothing"]);
}

#[test]
fn unknown_key_is_located_and_named() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        descripton = "typo"
        "#,
    );
    assert_eq!(errors, [r#"t.toml:2:1: zones.dev.descripton: unknown key "descripton"; did you mean "description"?"#]);
}

#[test]
fn missing_required_key_is_located_at_its_table() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [proxies.p]
        domains = []
        "#,
    );
    assert_eq!(errors, ["t.toml:2:1: proxies.p: missing field `zone`"]);
}

#[test]
fn wrong_value_type_is_located_at_the_value() {
    let errors = mk_errors(
        r#"
        name = 3
        "#,
    );
    assert_eq!(errors, ["t.toml:1:8: name: invalid type: integer `3`, expected a string"]);
}

#[test]
fn every_unknown_key_is_reported_at_once_with_the_nearest_key_and_the_other_mistakes_too() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [proxies.p]
        zone = "dev"
        domanis = ["a.test:80"]
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        prefx = "/api"
        cluster = "edge"
        retries = { count = 2, onn = ["5xx"] }
        [[domains.routes]]
        prefx = "/web"
        cluster = "edge"
        timeot = "1s"
        [clusters.edge]
        lb = "round_robn"
        static.endpoints = [{ address = "127.0.0.1:9001", zoen = "dev" }]
        [clusters.other.registered]
        anything = 1
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:1: proxies.p.domanis: unknown key "domanis"; did you mean "domains"?"#,
            r#"t.toml:8:1: domains[0].routes[0].prefx: unknown key "prefx"; did you mean "prefix"?"#,
            r#"t.toml:10:24: domains[0].routes[0].retries.onn: unknown key "onn"; did you mean "on"?"#,
            r#"t.toml:12:1: domains[0].routes[1].prefx: unknown key "prefx"; did you mean "prefix"?"#,
            r#"t.toml:14:1: domains[0].routes[1].timeot: unknown key "timeot"; did you mean "timeout"?"#,
            r#"t.toml:16:6: clusters.edge.lb: "round_robn" is not allowed; did you mean "round_robin"?"#,
            r#"t.toml:17:51: clusters.edge.static.endpoints[0].zoen: unknown key "zoen"; did you mean "zone"?"#,
            r#"t.toml:19:1: clusters.other.registered.anything: unknown key "anything"; this table takes no keys"#,
        ]
    );
}

#[test]
fn an_unknown_key_far_from_every_known_one_lists_the_known_keys() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        colour = "blue"
        "#,
    );
    assert_eq!(errors, [r#"t.toml:2:1: zones.dev.colour: unknown key "colour"; expected one of: description"#]);
}

#[test]
fn a_wrong_type_deep_in_the_file_names_its_full_key_path() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [clusters.edge.static]
        endpoints = [{ address = "127.0.0.1:1" }, { address = 3 }]
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:3:55: clusters.edge.static.endpoints[1].address: invalid type: integer `3`, expected a string"]
    );
}

#[test]
fn a_missing_key_in_a_deeply_nested_table_is_located_at_its_header() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [clusters.edge.dns]
        hosts = ["a.test:80"]
        [tracing.zipkin]
        cluster = "edge"
        "#,
    );
    assert_eq!(errors, ["t.toml:4:1: tracing.zipkin: missing field `path`"]);

    let errors = mk_errors(
        r#"
        [zones.dev]
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        prefix = "/"
        [domains.routes.direct_response]
        body = "x"
        "#,
    );
    assert_eq!(errors, ["t.toml:6:1: domains[0].routes[0].direct_response: missing field `status`"]);

    let errors = mk_errors(
        r#"
        [zones.dev]
        [clusters.edge.kubernetes.port]
        name = "http"
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:2:1: clusters.edge.kubernetes.port: invalid type: expected a port number or a port name"]
    );
}

#[test]
fn an_empty_or_comment_only_profile_is_a_mistake() {
    for src in ["", "\n\n", "# a profile, some day\n"] {
        let errors = parse_profile("t.toml", "t", src).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "t.toml:1:1: the profile is empty (no keys, only blank lines or comments); \
             expected at least a [proxies.NAME] table",
            "{src:?}"
        );
    }
}

#[test]
fn what_envoy_would_refuse_is_rejected() {
    let body = "x".repeat(4097);
    let errors = mk_errors(&format!(
        r#"
        [zones.dev]
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        path = "/big"
        direct_response = {{ status = 200, body = "{body}" }}
        [[domains.routes]]
        regex = "/a{{97}}"
        cluster = "edge"
        [[domains.routes]]
        headers = [{{ name = "x-id", regex = "[0-9a-f]{{40}}-[0-9a-f]{{40}}" }}]
        cluster = "edge"
        request_headers_add = {{ x-split = "a\r\nb" }}
        [clusters.edge]
        tls = {{ sni = "{sni}" }}
        health_check = {{ path = "/", host = "up\u0000.test" }}
        static.endpoints = [{{ address = "127.0.0.1:0" }}]
        "#,
        sni = "s".repeat(256)
    ));
    assert_eq!(
        errors,
        [
            "t.toml:6:42: domains[0].routes[0].direct_response.body: is 4097 bytes; Envoy refuses direct response bodies over 4096 bytes".to_string(),
            r#"t.toml:8:9: domains[0].routes[1].regex: "/a{97}" is too large for Envoy: its RE2 program size is about 102, over Envoy's limit of 100; expected a simpler regex (fewer repetitions, alternatives or Unicode classes)"#.to_string(),
            r#"t.toml:11:37: domains[0].routes[2].headers[0].regex: "[0-9a-f]{40}-[0-9a-f]{40}" is too large for Envoy: its RE2 program size is about 165, over Envoy's limit of 100; expected a simpler regex (fewer repetitions, alternatives or Unicode classes)"#.to_string(),
            r#"t.toml:13:35: domains[0].routes[2].request_headers_add.x-split: "a\r\nb" contains '\r'; Envoy refuses CR, LF and NUL in header values"#.to_string(),
            "t.toml:15:15: clusters.edge.tls.sni: is 256 characters; Envoy refuses an SNI over 255".to_string(),
            r#"t.toml:16:37: clusters.edge.health_check.host: "up\0.test" contains '\0'; Envoy refuses CR, LF and NUL in header values"#.to_string(),
            "t.toml:17:33: clusters.edge.static.endpoints[0].address: 127.0.0.1:0 has port 0; expected 1-65535".to_string(),
        ]
    );
}

// ---------------------------------------------------------------- names and addresses

#[test]
fn names_outside_letters_digits_and_punctuation_are_rejected() {
    let errors = mk_errors(
        r#"
        name = "my profile"
        [zones."dev laptop"]
        [clusters."edge/1".dns]
        hosts = ["edge.svc:80"]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:1:8: name: "my profile" is not a valid name; expected letters, digits, '-', '_' or '.'"#,
            r#"t.toml:2:8: zones.dev laptop: "dev laptop" is not a valid name; expected letters, digits, '-', '_' or '.'"#,
            r#"t.toml:3:11: clusters.edge/1: "edge/1" is not a valid name; expected letters, digits, '-', '_' or '.'"#,
        ]
    );
}

#[test]
fn listen_addresses_must_be_ip_port_and_distinct() {
    let errors = mk_errors(
        r#"
        [listen]
        xds = "localhost:18000"
        admin = "127.0.0.1"
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:7: listen.xds: "localhost:18000" is not an ip:port address, e.g. 127.0.0.1:9001"#,
            r#"t.toml:3:9: listen.admin: "127.0.0.1" is not an ip:port address, e.g. 127.0.0.1:9001"#,
        ]
    );

    let errors = mk_errors(
        r#"
        [listen]
        xds = "127.0.0.1:18000"
        admin = "127.0.0.1:18000"
        "#,
    );
    assert_eq!(
        errors,
        [r#"t.toml:3:9: listen.admin: 127.0.0.1:18000 is also listen.xds; expected a different address or port"#]
    );
}

#[test]
fn listen_overrides_are_parsed() {
    let p = mk_profile(
        r#"
        [listen]
        xds = "127.0.0.1:18001"
        admin = "[::1]:18002"
        "#,
    );
    assert_eq!(
        p.listen,
        ListenOverrides { xds: Some("127.0.0.1:18001".parse().unwrap()), admin: Some("[::1]:18002".parse().unwrap()) }
    );
}

#[test]
fn proxy_listen_and_admin_addresses_are_checked() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [proxies.p]
        zone = "dev"
        listen_address = "127.0.0.1:8888"
        admin = "localhost"
        node_cluster = ""
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:18: proxies.p.listen_address: "127.0.0.1:8888" is not an IP address, e.g. 127.0.0.1 or 0.0.0.0"#,
            r#"t.toml:5:9: proxies.p.admin: "localhost" is not an ip:port address, e.g. 127.0.0.1:9001"#,
            r#"t.toml:6:16: proxies.p.node_cluster: is empty"#,
        ]
    );
}

// ---------------------------------------------------------------- proxies

#[test]
fn proxy_references_are_checked() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [zones.ci]
        [proxies.p]
        zone = "prod"
        domains = ["a.test:80", "b.test:80", "a.test:80"]
        [[domains]]
        name = "a.test:80"
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:8: proxies.p.zone: "prod" is not a zone; known zones: ci, dev"#,
            r#"t.toml:5:25: proxies.p.domains[1]: "b.test:80" is not a domain; known domains: a.test:80"#,
            r#"t.toml:5:38: proxies.p.domains[2]: "a.test:80" is listed twice"#,
        ]
    );
}

#[test]
fn proxy_in_a_profile_without_zones_says_how_to_add_one() {
    let errors = mk_errors(
        r#"
        [proxies.p]
        zone = "dev"
        "#,
    );
    assert_eq!(
        errors,
        [r#"t.toml:2:8: proxies.p.zone: "dev" is not a zone; known zones: none (add a [zones.NAME] table)"#]
    );
}

#[test]
fn two_proxies_matching_the_same_nodes_are_rejected() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [proxies.a]
        zone = "dev"
        node_cluster = "sidecar"
        [proxies.b]
        zone = "dev"
        node_cluster = "sidecar"
        node_id = "laptop"
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:5:10: proxies.b: matches the same Envoy nodes as proxy "a" (node.cluster "sidecar"); give one of them a different node_cluster or node_id"#
        ]
    );
}

#[test]
fn proxies_told_apart_by_node_id_or_zone_are_accepted() {
    let p = mk_profile(
        r#"
        [zones.dev]
        [zones.ci]
        [proxies.a]
        zone = "dev"
        node_cluster = "sidecar"
        node_id = "laptop"
        [proxies.b]
        zone = "dev"
        node_cluster = "sidecar"
        node_id = "desktop"
        [proxies.c]
        zone = "ci"
        node_cluster = "sidecar"
        "#,
    );
    assert_eq!(p.proxy_for_node("sidecar", "desktop", "dev").map(|p| p.name.as_str()), Some("b"));
    assert_eq!(p.proxy_for_node("sidecar", "anything", "ci").map(|p| p.name.as_str()), Some("c"));
}
