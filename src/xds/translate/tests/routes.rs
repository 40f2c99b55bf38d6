//! Route configurations and listeners: every match and action a profile
//! can write, and how domains become listeners and virtual hosts.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_action::{ClusterSpecifier, HostRewriteSpecifier};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;

use super::*;

#[test]
fn route_configuration_translates_every_match_and_action() {
    let profile = mk_profile(
        r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["api.test:8080"]

[[domains]]
name = "api.test:8080"

[[domains.routes]]
path = "/exact"
methods = ["get", "POST"]
cluster = "a"

[[domains.routes]]
regex = "/items/[0-9]+"
headers = [
  { name = "X-Exact", exact = "1" },
  { name = "x-prefix", prefix = "pre" },
  { name = "x-regex", regex = "^v[0-9]$" },
  { name = "x-present", present = true },
  { name = "x-not", exact = "no", invert = true },
]
query = [{ name = "debug", exact = "1" }, { name = "trace", present = true }]
weighted_clusters = [{ cluster = "a", weight = 90 }, { cluster = "b", weight = 10 }]

[[domains.routes]]
prefix = "/old"
redirect = { host = "new.test", path = "/new", https = true, code = 308 }

[[domains.routes]]
prefix = "/gone"
direct_response = { status = 410, body = "gone" }

[[domains.routes]]
prefix = "/api"
cluster = "b"
timeout = "5s"
retries = { count = 2, on = ["connect-failure", "5xx"], per_try_timeout = "2s" }
prefix_rewrite = "/v2"
host_rewrite = "backend.internal"
request_headers_add = { X-Dev = "me", x-trace = "on" }

[clusters.a.static]
endpoints = [{ address = "10.0.0.1:80" }]
[clusters.b.static]
endpoints = [{ address = "10.0.0.2:80" }]
"#,
    );
    let mk_match = |path: PathSpecifier| route::RouteMatch { path_specifier: Some(path), ..Default::default() };
    let header = |name: &str, spec: HeaderMatchSpecifier, invert: bool| route::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    };
    let forward = |spec: ClusterSpecifier| route::RouteAction { cluster_specifier: Some(spec), ..Default::default() };
    let routes = vec![
        route::Route {
            r#match: Some(route::RouteMatch {
                headers: vec![header(
                    ":method",
                    HeaderMatchSpecifier::StringMatch(string_match(MatchPattern::SafeRegex(regex("GET|POST")))),
                    false,
                )],
                ..mk_match(PathSpecifier::Path("/exact".into()))
            }),
            action: Some(route::route::Action::Route(forward(ClusterSpecifier::Cluster("a".into())))),
            ..Default::default()
        },
        route::Route {
            r#match: Some(route::RouteMatch {
                headers: vec![
                    header(
                        "x-exact",
                        HeaderMatchSpecifier::StringMatch(string_match(MatchPattern::Exact("1".into()))),
                        false,
                    ),
                    header(
                        "x-prefix",
                        HeaderMatchSpecifier::StringMatch(string_match(MatchPattern::Prefix("pre".into()))),
                        false,
                    ),
                    header(
                        "x-regex",
                        HeaderMatchSpecifier::StringMatch(string_match(MatchPattern::SafeRegex(regex("^v[0-9]$")))),
                        false,
                    ),
                    header("x-present", HeaderMatchSpecifier::PresentMatch(true), false),
                    header(
                        "x-not",
                        HeaderMatchSpecifier::StringMatch(string_match(MatchPattern::Exact("no".into()))),
                        true,
                    ),
                ],
                query_parameters: vec![
                    route::QueryParameterMatcher {
                        name: "debug".into(),
                        query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(string_match(
                            MatchPattern::Exact("1".into()),
                        ))),
                    },
                    route::QueryParameterMatcher {
                        name: "trace".into(),
                        query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::PresentMatch(true)),
                    },
                ],
                ..mk_match(PathSpecifier::SafeRegex(regex("/items/[0-9]+")))
            }),
            action: Some(route::route::Action::Route(forward(ClusterSpecifier::WeightedClusters(
                route::WeightedCluster {
                    clusters: vec![
                        route::weighted_cluster::ClusterWeight {
                            name: "a".into(),
                            weight: u32s(90),
                            ..Default::default()
                        },
                        route::weighted_cluster::ClusterWeight {
                            name: "b".into(),
                            weight: u32s(10),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
            )))),
            ..Default::default()
        },
        route::Route {
            r#match: Some(mk_match(PathSpecifier::Prefix("/old".into()))),
            action: Some(route::route::Action::Redirect(route::RedirectAction {
                host_redirect: "new.test".into(),
                path_rewrite_specifier: Some(route::redirect_action::PathRewriteSpecifier::PathRedirect("/new".into())),
                scheme_rewrite_specifier: Some(route::redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)),
                response_code: route::redirect_action::RedirectResponseCode::PermanentRedirect as i32,
                ..Default::default()
            })),
            ..Default::default()
        },
        route::Route {
            r#match: Some(mk_match(PathSpecifier::Prefix("/gone".into()))),
            action: Some(route::route::Action::DirectResponse(route::DirectResponseAction {
                status: 410,
                body: Some(core::DataSource {
                    specifier: Some(core::data_source::Specifier::InlineString("gone".into())),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        },
        route::Route {
            r#match: Some(mk_match(PathSpecifier::Prefix("/api".into()))),
            action: Some(route::route::Action::Route(route::RouteAction {
                timeout: ms(5000),
                retry_policy: Some(route::RetryPolicy {
                    retry_on: "connect-failure,5xx".into(),
                    num_retries: u32s(2),
                    per_try_timeout: ms(2000),
                    ..Default::default()
                }),
                prefix_rewrite: "/v2".into(),
                host_rewrite_specifier: Some(HostRewriteSpecifier::HostRewriteLiteral("backend.internal".into())),
                ..forward(ClusterSpecifier::Cluster("b".into()))
            })),
            request_headers_to_add: [("x-dev", "me"), ("x-trace", "on")]
                .iter()
                .map(|(k, v)| core::HeaderValueOption {
                    header: Some(core::HeaderValue { key: k.to_string(), value: v.to_string(), ..Default::default() }),
                    append_action: core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
    ];
    let expected = route::RouteConfiguration {
        name: "routes_8080".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "api.test:8080".into(),
            domains: vec!["api.test".into(), "api.test:8080".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    };

    let snapshot = mk_snapshot(&profile);

    assert_eq!(decode::<route::RouteConfiguration>(&snapshot, ResourceType::Route, "routes_8080"), expected);
}

#[test]
fn one_listener_per_port_with_a_virtual_host_per_domain() {
    let profile = mk_profile(
        r#"
[zones.local]
[proxies.p]
zone = "local"
listen_address = "0.0.0.0"
domains = ["b.test:8080", "c.test:9090", "a.test:8080"]
[[domains]]
name = "a.test:8080"
aliases = ["a", "*.a.test"]
[[domains.routes]]
direct_response = { status = 200 }
[[domains]]
name = "b.test:8080"
[[domains.routes]]
direct_response = { status = 200 }
[[domains]]
name = "c.test:9090"
aliases = ["c"]
[[domains.routes]]
direct_response = { status = 200 }
"#,
    );
    let mk_listener = |port: u16| {
        let manager = hcm::HttpConnectionManager {
            stat_prefix: format!("ingress_{port}"),
            codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
                config_source: Some(ads()),
                route_config_name: format!("routes_{port}"),
            })),
            http_filters: vec![hcm::HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
                ..Default::default()
            }],
            ..Default::default()
        };
        listener::Listener {
            name: format!("listener_{port}"),
            address: Some(socket_address("0.0.0.0", port)),
            filter_chains: vec![listener::FilterChain {
                filters: vec![listener::Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(listener::filter::ConfigType::TypedConfig(pack_any(manager))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    };
    let vhost = |d: &profile::Domain| {
        let r = route::Route {
            r#match: Some(route::RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(route::route::Action::DirectResponse(route::DirectResponseAction {
                status: 200,
                ..Default::default()
            })),
            ..Default::default()
        };
        (d.name.clone(), vec![r])
    };
    let hosts = |vh: &route::VirtualHost| (vh.name.clone(), vh.domains.clone());

    let snapshot = mk_snapshot(&profile);

    assert_eq!(names(&snapshot, ResourceType::Listener), ["listener_8080", "listener_9090"]);
    for port in [8080, 9090] {
        assert_eq!(
            decode::<listener::Listener>(&snapshot, ResourceType::Listener, &listener_name(port)),
            mk_listener(port)
        );
    }
    let rc8080: route::RouteConfiguration = decode(&snapshot, ResourceType::Route, "routes_8080");
    let rc9090: route::RouteConfiguration = decode(&snapshot, ResourceType::Route, "routes_9090");
    // Virtual hosts follow the proxy's domain order.
    assert_eq!(
        rc8080.virtual_hosts.iter().map(hosts).collect::<Vec<_>>(),
        [
            ("b.test:8080".to_string(), vec!["b.test".to_string(), "b.test:8080".into()]),
            (
                "a.test:8080".to_string(),
                vec![
                    "a.test".into(),
                    "a.test:8080".into(),
                    "a".into(),
                    "a:8080".into(),
                    "*.a.test".into(),
                    "*.a.test:8080".into()
                ],
            ),
        ]
    );
    assert_eq!(
        rc9090.virtual_hosts.iter().map(hosts).collect::<Vec<_>>(),
        [("c.test:9090".to_string(), vec!["c.test".to_string(), "c.test:9090".into(), "c".into(), "c:9090".into()])]
    );
    let all = rc8080.virtual_hosts.iter().chain(&rc9090.virtual_hosts);
    assert_eq!(
        all.map(|vh| (vh.name.clone(), vh.routes.clone())).collect::<Vec<_>>(),
        ["b.test:8080", "a.test:8080", "c.test:9090"].map(|d| vhost(&profile.domains[d]))
    );
}

#[test]
fn ipv6_literal_hosts_are_bracketed_in_virtual_host_domains() {
    let profile = mk_profile(
        r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["[::1]:8080"]
[[domains]]
name = "[::1]:8080"
aliases = ["localhost"]
[[domains.routes]]
direct_response = { status = 200 }
"#,
    );
    let rc: route::RouteConfiguration = decode(&mk_snapshot(&profile), ResourceType::Route, "routes_8080");
    assert_eq!(rc.virtual_hosts[0].domains, ["[::1]", "[::1]:8080", "localhost", "localhost:8080"]);
}
