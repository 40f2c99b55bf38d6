//! Domains and routes: hosts, matches, actions and shadowing.

use super::*;

#[test]
fn route_to_unknown_cluster_is_rejected_with_known_clusters() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [{ cluster = "edgee" }]
        [clusters.edge.dns]
        hosts = ["edge.svc:80"]
        [clusters.local.dns]
        hosts = ["localhost:80"]
        "#,
    );
    assert_eq!(
        errors,
        [r#"t.toml:3:23: domains[0].routes[0].cluster: "edgee" is not a cluster; known clusters: edge, local"#]
    );
}

#[test]
fn route_to_a_cluster_that_failed_validation_is_not_reported_again() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [{ cluster = "edge" }]
        [clusters.edge]
        connect_timeout = "soon"
        dns.hosts = ["edge.svc:80"]
        "#,
    );
    assert_eq!(
        errors,
        [r#"t.toml:5:19: clusters.edge.connect_timeout: "soon" is not a duration; expected e.g. "250ms", "5s", "1m""#]
    );
}

#[test]
fn weighted_clusters_are_checked() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        weighted_clusters = [{ cluster = "edge", weight = 1 }, { cluster = "nope", weight = 1 }]
        [[domains.routes]]
        prefix = "/zero"
        weighted_clusters = [{ cluster = "edge", weight = 0 }]
        [[domains.routes]]
        prefix = "/negative"
        weighted_clusters = [{ cluster = "edge", weight = -1 }, { cluster = "edge", weight = 0 }]
        [[domains.routes]]
        prefix = "/empty"
        weighted_clusters = []
        [clusters.edge.dns]
        hosts = ["edge.svc:80"]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:68: domains[0].routes[0].weighted_clusters[1].cluster: "nope" is not a cluster; known clusters: edge"#,
            r#"t.toml:7:21: domains[0].routes[1].weighted_clusters: needs at least one cluster with a weight above 0"#,
            r#"t.toml:10:51: domains[0].routes[2].weighted_clusters[0].weight: -1 is out of range; expected 0 to 1000000"#,
            r#"t.toml:13:21: domains[0].routes[3].weighted_clusters: needs at least one cluster with a weight above 0"#,
        ]
    );
}

#[test]
fn weighted_clusters_are_parsed() {
    let p = mk_profile(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [{ weighted_clusters = [{ cluster = "a", weight = 90 }, { cluster = "b", weight = 10 }] }]
        [clusters.a.dns]
        hosts = ["a.svc:80"]
        [clusters.b.dns]
        hosts = ["b.svc:80"]
        "#,
    );
    assert_eq!(
        p.domains["a.test:80"].routes[0].action,
        RouteAction::Forward(mk_forward(Target::Weighted(vec![
            Split { cluster: "a".into(), weight: 90, subset: Default::default() },
            Split { cluster: "b".into(), weight: 10, subset: Default::default() },
        ])))
    );
}

#[test]
fn route_without_an_action_is_rejected() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        prefix = "/api"
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:3:1: domains[0].routes[0]: has 0 actions; expected exactly one of cluster, weighted_clusters, \
             redirect or direct_response"]
    );
}

#[test]
fn route_with_two_actions_is_rejected_at_the_second() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        cluster = "edge"
        direct_response = { status = 200 }
        [clusters.edge.dns]
        hosts = ["edge.svc:80"]
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:5:19: domains[0].routes[0]: has 2 actions; expected exactly one of cluster, weighted_clusters, \
             redirect or direct_response"]
    );
}

#[test]
fn forward_only_keys_on_a_redirect_or_direct_response_are_rejected() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        path = "/old"
        redirect = { path = "/new" }
        timeout = "1s"
        retries = { count = 1 }
        [[domains.routes]]
        path = "/teapot"
        direct_response = { status = 418 }
        prefix_rewrite = "/x"
        host_rewrite = "b.test"
        request_headers_add = { x-a = "1" }
        "#,
    );
    assert_eq!(
        errors,
        [
            "t.toml:6:11: domains[0].routes[0].timeout: applies only to routes that forward to a cluster",
            "t.toml:7:11: domains[0].routes[0].retries: applies only to routes that forward to a cluster",
            "t.toml:11:18: domains[0].routes[1].prefix_rewrite: applies only to routes that forward to a cluster",
            "t.toml:12:16: domains[0].routes[1].host_rewrite: applies only to routes that forward to a cluster",
            "t.toml:13:25: domains[0].routes[1].request_headers_add: applies only to routes that forward to a cluster",
        ]
    );
}

#[test]
fn every_forward_problem_in_one_route_is_reported() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        regex = '/v[0-9]+/.*'
        cluster = "edge"
        timeout = "5 parsecs"
        retries = { count = 101, on = ["5xx", "teapot"], per_try_timeout = "0ms" }
        prefix_rewrite = "/"
        host_rewrite = "b test"
        request_headers_add = { "x a" = "1", Host = "b.test" }
        [clusters.edge.dns]
        hosts = ["edge.svc:80"]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:6:11: domains[0].routes[0].timeout: "5 parsecs" is not a duration; expected e.g. "250ms", "5s", "1m""#,
            r#"t.toml:7:21: domains[0].routes[0].retries.count: 101 is out of range; expected 0 to 100"#,
            r#"t.toml:7:39: domains[0].routes[0].retries.on[1]: "teapot" is not allowed; expected one of: 5xx, gateway-error, reset, reset-before-request, connect-failure, envoy-ratelimited, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable"#,
            r#"t.toml:7:68: domains[0].routes[0].retries.per_try_timeout: a duration of zero is not allowed; expected e.g. "250ms""#,
            r#"t.toml:8:18: domains[0].routes[0].prefix_rewrite: cannot be used with a regex match"#,
            r#"t.toml:9:16: domains[0].routes[0].host_rewrite: "b test" is not a host name"#,
            r#"t.toml:10:25: domains[0].routes[0].request_headers_add: "x a" is not a header name"#,
            r#"t.toml:10:38: domains[0].routes[0].request_headers_add: "Host" cannot be added; expected host_rewrite"#,
        ]
    );
}

#[test]
fn redirect_is_checked() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        path = "/a"
        redirect = { path = "/b", code = 300 }
        [[domains.routes]]
        path = "/c"
        redirect = { code = 302 }
        [[domains.routes]]
        path = "/d"
        redirect = { host = "https://b.test", path = "e" }
        "#,
    );
    assert_eq!(
        errors,
        [
            "t.toml:5:34: domains[0].routes[0].redirect.code: 300 is not a redirect code; expected 301, 302, 303, 307 or 308",
            "t.toml:8:12: domains[0].routes[1].redirect: redirects nowhere; set host, path or https = true",
            r#"t.toml:11:21: domains[0].routes[2].redirect.host: "https://b.test" is not a host name"#,
            r#"t.toml:11:46: domains[0].routes[2].redirect.path: "e" must start with '/'"#,
        ]
    );
}

#[test]
fn redirect_is_parsed() {
    let p = mk_profile(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [{ redirect = { host = "b.test:8443", https = true, code = 308 } }]
        "#,
    );
    assert_eq!(
        p.domains["a.test:80"].routes[0],
        mk_route(
            mk_match(PathMatch::Prefix("/".into())),
            RouteAction::Redirect(Redirect { host: Some("b.test:8443".into()), path: None, https: true, code: 308 }),
        )
    );
}

#[test]
fn direct_response_status_must_be_200_to_599() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [
          { path = "/a", direct_response = { status = 199 } },
          { path = "/b", direct_response = { status = 600 } },
        ]
        "#,
    );
    assert_eq!(
        errors,
        [
            "t.toml:4:47: domains[0].routes[0].direct_response.status: 199 is out of range; expected 200 to 599",
            "t.toml:5:47: domains[0].routes[1].direct_response.status: 600 is out of range; expected 200 to 599",
        ]
    );
}

#[test]
fn route_matches_are_checked() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        prefix = "api"
        direct_response = { status = 200 }
        [[domains.routes]]
        prefix = "/a"
        path = "/b"
        direct_response = { status = 200 }
        [[domains.routes]]
        regex = '(a)\1'
        methods = ["GET", "FETCH"]
        direct_response = { status = 200 }
        [[domains.routes]]
        path = "/c"
        headers = [{ name = "x y", exact = "1" }, { name = "x-a", regex = '(?=a)' }, { name = "x-b", exact = "1", prefix = "2" }]
        direct_response = { status = 200 }
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:10: domains[0].routes[0].prefix: "api" must start with '/'"#,
            r#"t.toml:8:8: domains[0].routes[1]: give only one of prefix, path or regex"#,
            r#"t.toml:11:9: domains[0].routes[2].regex: "(a)\\1" is not a valid RE2 regex: backreferences are not supported"#,
            r#"t.toml:12:19: domains[0].routes[2].methods[1]: "FETCH" is not an HTTP method; expected one of: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"#,
            r#"t.toml:16:21: domains[0].routes[3].headers[0].name: "x y" is not a valid name"#,
            r#"t.toml:16:67: domains[0].routes[3].headers[1].regex: "(?=a)" is not a valid RE2 regex: look-around, including look-ahead and look-behind, is not supported"#,
            r#"t.toml:16:87: domains[0].routes[3].headers[2]: has 2 conditions; expected exactly one of exact, prefix, regex or present"#,
        ]
    );
}

#[test]
fn query_matches_cannot_be_inverted_or_match_absence() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        query = [{ name = "debug", exact = "1", invert = true }, { name = "trace", present = false }]
        direct_response = { status = 200 }
        [[domains.routes]]
        path = "/b"
        direct_response = { status = 200 }
        [[domains.routes.query]]
        name = "debug"
        present = true
        invert = true
        "#,
    );
    assert_eq!(
        errors,
        [
            "t.toml:4:50: domains[0].routes[0].query[0].invert: true is not supported: Envoy cannot invert a query \
             parameter match; expected false (only header matches can be inverted)",
            "t.toml:4:86: domains[0].routes[0].query[1].present: false is not supported: Envoy cannot match an absent \
             query parameter; expected true (only header matches can use present = false)",
            "t.toml:12:10: domains[0].routes[1].query[0].invert: true is not supported: Envoy cannot invert a query \
             parameter match; expected false (only header matches can be inverted)",
        ]
    );
}

#[test]
fn header_matches_can_be_inverted_and_match_absence() {
    let p = mk_profile(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        headers = [{ name = "X-Dev", present = false }, { name = "x-env", prefix = "prod", invert = true }]
        query = [{ name = "Debug", regex = "1|true" }, { name = "trace", present = true }]
        methods = ["get", "POST"]
        direct_response = { status = 204 }
        "#,
    );
    assert_eq!(
        p.domains["a.test:80"].routes[0].matcher,
        RouteMatch {
            path: PathMatch::Prefix("/".into()),
            headers: vec![
                mk_value_match("x-dev", ValueMatchKind::Present(false), false),
                mk_value_match("x-env", ValueMatchKind::Prefix("prod".into()), true),
            ],
            query: vec![
                mk_value_match("Debug", ValueMatchKind::Regex("1|true".into()), false),
                mk_value_match("trace", ValueMatchKind::Present(true), false),
            ],
            methods: vec!["GET".into(), "POST".into()],
        }
    );
}

#[test]
fn domain_names_and_aliases_must_be_hosts() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test"
        [[domains]]
        name = "b.test:80"
        aliases = ["b.test:80", "*.b.test", "b_test"]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:8: domains[0].name: "a.test" is not host:port, e.g. "demo.example.com:8888""#,
            r#"t.toml:5:12: domains[1].aliases[0]: "b.test:80" is not a host name"#,
        ]
    );
}

#[test]
fn a_host_may_appear_once_per_port() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        aliases = ["localhost"]
        [[domains]]
        name = "A.test:80"
        [[domains]]
        name = "b.test:80"
        aliases = ["LOCALHOST", "b.test"]
        [[domains]]
        name = "a.test:81"
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:5:8: domains[1].name: a.test:80 is already served by domain "a.test:80"; a host may appear once per port"#,
            r#"t.toml:8:12: domains[2].aliases[0]: localhost:80 is already served by domain "a.test:80"; a host may appear once per port"#,
            r#"t.toml:8:25: domains[2].aliases[1]: b.test:80 is already served by domain "b.test:80"; a host may appear once per port"#,
        ]
    );
}

// ---------------------------------------------------------------- shadowed routes

#[test]
fn root_prefix_before_a_longer_prefix_shadows_it() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        prefix = "/"
        direct_response = { status = 200 }
        [[domains.routes]]
        prefix = "/api"
        direct_response = { status = 201 }
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:6:1: domains[0].routes[1]: is shadowed by domains[0].routes[0], which matches every request \
             this one does; put the more specific route first"]
    );
}

#[test]
fn unconstrained_route_shadows_a_later_one_with_headers() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [
          { prefix = "/", direct_response = { status = 200 } },
          { prefix = "/api", headers = [{ name = "x-dev", exact = "canary" }], direct_response = { status = 201 } },
        ]
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:5:3: domains[0].routes[1]: is shadowed by domains[0].routes[0], which matches every request \
             this one does; put the more specific route first"]
    );
}

#[test]
fn route_with_a_header_does_not_shadow_a_later_one_without() {
    let p = mk_profile(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [
          { prefix = "/", headers = [{ name = "x-dev", exact = "canary" }], direct_response = { status = 200 } },
          { prefix = "/api", direct_response = { status = 201 } },
          { prefix = "/", methods = ["GET"], direct_response = { status = 202 } },
          { prefix = "/", direct_response = { status = 203 } },
        ]
        "#,
    );
    assert_eq!(p.domains["a.test:80"].routes.len(), 4);
}

#[test]
fn exact_and_method_routes_are_shadowed_by_covering_earlier_ones() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        routes = [
          { path = "/a", direct_response = { status = 200 } },
          { path = "/a", methods = ["GET"], direct_response = { status = 201 } },
          { prefix = "/b", methods = ["GET", "HEAD"], direct_response = { status = 202 } },
          { path = "/b/c", methods = ["HEAD"], direct_response = { status = 203 } },
          { regex = "/d.*", direct_response = { status = 204 } },
          { regex = "/d.*", direct_response = { status = 205 } },
        ]
        "#,
    );
    assert_eq!(
        errors,
        [
            "t.toml:5:3: domains[0].routes[1]: is shadowed by domains[0].routes[0], which matches every request \
             this one does; put the more specific route first",
            "t.toml:7:3: domains[0].routes[3]: is shadowed by domains[0].routes[2], which matches every request \
             this one does; put the more specific route first",
            "t.toml:9:3: domains[0].routes[5]: is shadowed by domains[0].routes[4], which matches every request \
             this one does; put the more specific route first",
        ]
    );
}

#[test]
fn thousands_of_identical_routes_list_the_first_fifty_errors_and_count_the_rest() {
    let routes = "[[domains.routes]]\nprefix = \"/api\"\ndirect_response = { status = 200 }\n".repeat(8000);
    let src = format!("[[domains]]\nname = \"a.test:80\"\n{routes}");
    let errors = parse_profile("t.toml", "t", &src).unwrap_err();
    assert_eq!((errors.0.len(), errors.1, errors.total()), (MAX_REPORTED_ERRORS, 7999 - 50, 7999));
    assert_eq!(
        errors.0[49].to_string(),
        "t.toml:153:1: domains[0].routes[50]: is shadowed by domains[0].routes[0], which matches every request \
         this one does; put the more specific route first"
    );
    assert_eq!(errors.more().as_deref(), Some("... and 7949 more (only the first 50 are listed)"));
    assert!(errors.to_string().ends_with("\n... and 7949 more (only the first 50 are listed)"));
}

#[test]
fn the_shadow_index_finds_the_same_first_shadowing_route_as_comparing_with_each() {
    let header = |v: &str| mk_value_match("x-dev", ValueMatchKind::Exact(v.into()), false);
    let query = mk_value_match("q", ValueMatchKind::Present(true), false);
    let paths = [
        PathMatch::Prefix("/".into()),
        PathMatch::Prefix("/a".into()),
        PathMatch::Prefix("/ab".into()),
        PathMatch::Exact("/ab".into()),
        PathMatch::Exact("/abc".into()),
        PathMatch::Regex("/a.*".into()),
    ];
    let conditions: [(Vec<ValueMatch>, Vec<ValueMatch>); 4] = [
        (vec![], vec![]),
        (vec![header("1")], vec![]),
        (vec![header("1"), header("2")], vec![query.clone()]),
        (vec![], vec![query]),
    ];
    let methods: [Vec<String>; 3] = [vec![], vec!["GET".into()], vec!["GET".into(), "HEAD".into()]];
    let mut all = Vec::new();
    for p in &paths {
        for (h, q) in &conditions {
            for m in &methods {
                all.push(RouteMatch { path: p.clone(), headers: h.clone(), query: q.clone(), methods: m.clone() });
            }
        }
    }
    // Several orders of the 72 matchers, each checked route by route.
    let mut seed = 7u64;
    for _ in 0..20 {
        let mut order = all.clone();
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut index = crate::profile::validate::routes::ShadowIndex::default();
        for (i, later) in order.iter().enumerate() {
            let expected =
                order[..i].iter().position(|earlier| crate::profile::validate::routes::shadows(earlier, later));
            assert_eq!(index.first_shadowing(later), expected, "route {i}: {later:?}");
            index.add(later, i);
        }
    }
}

#[test]
fn an_empty_prefix_or_regex_in_a_value_match_is_refused_as_envoy_refuses_it() {
    let errors = mk_errors(
        r#"
        [[domains]]
        name = "a.test:80"
        [[domains.routes]]
        headers = [{ name = "x-a", prefix = "" }, { name = "x-b", regex = "" }, { name = "x-c", exact = "" }]
        query = [{ name = "q", prefix = "" }]
        direct_response = { status = 200 }
        "#,
    );
    assert_eq!(
        errors,
        [
            "t.toml:4:37: domains[0].routes[0].headers[0].prefix: an empty prefix is refused by Envoy; \
             expected at least one character, or present = true to match any value",
            "t.toml:4:67: domains[0].routes[0].headers[1].regex: an empty regex is refused by Envoy; \
             expected at least one character, or present = true to match any value",
            "t.toml:5:33: domains[0].routes[0].query[0].prefix: an empty prefix is refused by Envoy; \
             expected at least one character, or present = true to match any value",
        ]
    );
}
