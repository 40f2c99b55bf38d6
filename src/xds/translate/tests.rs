//! Profile text in, whole Envoy resources out: each test writes down the
//! protobuf Envoy should get and compares it with the translation.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::xds::snapshot::ResourceType;
use prost::Message;

mod routes;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::health_check::{HealthChecker, HttpHealthCheck};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

fn mk_profile(src: &str) -> Profile {
    crate::profile::parse_profile("test.toml", "test", src).unwrap_or_else(|e| panic!("invalid test profile:\n{e}"))
}

/// The snapshot of proxy `p`, with no discovered endpoints.
fn mk_snapshot(profile: &Profile) -> Snapshot {
    translate_proxy(profile, &profile.proxies["p"], &EndpointSet::new()).expect("consistent")
}

fn decode<M: prost::Message + Default>(s: &Snapshot, ty: ResourceType, name: &str) -> M {
    let r = s.resources(ty).items.get(name).unwrap_or_else(|| panic!("{} has no {name:?}", ty.short()));
    M::decode(r.body.value.as_slice()).expect("decodes")
}

fn names(s: &Snapshot, ty: ResourceType) -> Vec<String> {
    s.resources(ty).names().into_iter().collect()
}

/// The HTTP filters of the connection manager of the listener on `port`, by name.
fn http_filters(s: &Snapshot, port: u16) -> Vec<String> {
    let l = decode::<listener::Listener>(s, ResourceType::Listener, &listener_name(port));
    let Some(listener::filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("typed config")
    };
    let m = hcm::HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    m.http_filters.iter().map(|f| f.name.clone()).collect()
}

fn ms(ms: u64) -> Option<pbwk::Duration> {
    Some(duration(Duration::from_millis(ms)))
}

fn u32s(v: u32) -> Option<pbwk::UInt32Value> {
    Some(pbwk::UInt32Value { value: v })
}

fn string_match(p: MatchPattern) -> matcher::StringMatcher {
    matcher::StringMatcher { match_pattern: Some(p), ..Default::default() }
}

fn regex(re: &str) -> matcher::RegexMatcher {
    matcher::RegexMatcher { regex: re.into(), ..Default::default() }
}

fn mk_lb_endpoint(ip: &str, port: u16, weight: Option<u32>, labels: &[(&str, &str)]) -> endpoint::LbEndpoint {
    let metadata = (!labels.is_empty()).then(|| {
        let fields = labels
            .iter()
            .map(|(k, v)| (k.to_string(), pbwk::Value { kind: Some(pbwk::value::Kind::StringValue(v.to_string())) }))
            .collect();
        core::Metadata {
            filter_metadata: [("envoy.lb".to_string(), pbwk::Struct { fields })].into(),
            ..Default::default()
        }
    });
    endpoint::LbEndpoint {
        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(endpoint::Endpoint {
            address: Some(socket_address(ip, port)),
            ..Default::default()
        })),
        load_balancing_weight: weight.and_then(u32s),
        metadata,
        ..Default::default()
    }
}

const ONE_ROUTE: &str = r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["api.test:8080"]
[[domains]]
name = "api.test:8080"
[[domains.routes]]
cluster = "api"
"#;

#[test]
fn eds_cluster_carries_lb_timeouts_health_check_breakers_tls_and_http2() {
    let profile = mk_profile(&format!(
        r#"{ONE_ROUTE}
[clusters.api]
lb = "least_request"
connect_timeout = "250ms"
http2 = true
health_check = {{ path = "/healthz", host = "api.internal", interval = "3s", timeout = "500ms", healthy_threshold = 2, unhealthy_threshold = 3 }}
circuit_breakers = {{ max_connections = 10, max_pending_requests = 20, max_requests = 30, max_retries = 4 }}
tls = {{ sni = "api.internal", ca_file = "/etc/devbridge/ca.pem" }}
[clusters.api.static]
endpoints = [{{ address = "10.0.0.1:443" }}]
"#
    ));

    let tls = tls::UpstreamTlsContext {
        sni: "api.internal".into(),
        common_tls_context: Some(tls::CommonTlsContext {
            alpn_protocols: vec!["h2".into()],
            validation_context_type: Some(tls::common_tls_context::ValidationContextType::ValidationContext(
                tls::CertificateValidationContext {
                    trusted_ca: Some(core::DataSource {
                        specifier: Some(core::data_source::Specifier::Filename("/etc/devbridge/ca.pem".into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let http2 = upstream_http::HttpProtocolOptions {
        upstream_protocol_options: Some(upstream_http::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            upstream_http::http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    upstream_http::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        core::Http2ProtocolOptions::default(),
                    ),
                ),
            },
        )),
        ..Default::default()
    };
    let expected = cluster::Cluster {
        name: "api".into(),
        connect_timeout: ms(250),
        lb_policy: LbPolicy::LeastRequest as i32,
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() }),
        health_checks: vec![core::HealthCheck {
            timeout: ms(500),
            interval: ms(3000),
            no_traffic_interval: ms(3000),
            healthy_threshold: u32s(2),
            unhealthy_threshold: u32s(3),
            health_checker: Some(HealthChecker::HttpHealthCheck(HttpHealthCheck {
                path: "/healthz".into(),
                host: "api.internal".into(),
                ..Default::default()
            })),
            ..Default::default()
        }],
        // A removed endpoint leaves at once, passing its checks or not.
        ignore_health_on_host_removal: true,
        circuit_breakers: Some(cluster::CircuitBreakers {
            thresholds: vec![cluster::circuit_breakers::Thresholds {
                max_connections: u32s(10),
                max_pending_requests: u32s(20),
                max_requests: u32s(30),
                max_retries: u32s(4),
                ..Default::default()
            }],
            ..Default::default()
        }),
        transport_socket: Some(core::TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(core::transport_socket::ConfigType::TypedConfig(pack_any(tls))),
        }),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(http2),
        )]
        .into(),
        ..Default::default()
    };

    assert_eq!(to_cluster(&profile.clusters["api"]), expected);
    let snapshot = mk_snapshot(&profile);
    assert_eq!(decode::<cluster::Cluster>(&snapshot, ResourceType::Cluster, "api"), expected);
}

#[test]
fn dns_clusters_resolve_ipv4_first_and_carry_their_hosts() {
    let profile = mk_profile(
        r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["api.test:8080"]
[[domains]]
name = "api.test:8080"
[[domains.routes]]
prefix = "/strict"
cluster = "strict"
[[domains.routes]]
prefix = "/logical"
cluster = "logical"
[clusters.strict.dns]
hosts = ["films.svc:8080", "localhost:9000"]
[clusters.logical]
lb = "random"
[clusters.logical.dns]
hosts = ["big.example.com:443"]
lookup = "logical"
"#,
    );
    let mk_dns = |name: &str, kind: DiscoveryType, lb: LbPolicy, hosts: &[(&str, u16)]| cluster::Cluster {
        name: name.into(),
        connect_timeout: ms(1000),
        lb_policy: lb as i32,
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        dns_lookup_family: DnsLookupFamily::V4Preferred as i32,
        load_assignment: Some(endpoint::ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![endpoint::LocalityLbEndpoints {
                lb_endpoints: hosts.iter().map(|(h, p)| mk_lb_endpoint(h, *p, None, &[])).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };

    assert_eq!(
        to_cluster(&profile.clusters["strict"]),
        mk_dns("strict", DiscoveryType::StrictDns, LbPolicy::RoundRobin, &[("films.svc", 8080), ("localhost", 9000)])
    );
    assert_eq!(
        to_cluster(&profile.clusters["logical"]),
        mk_dns("logical", DiscoveryType::LogicalDns, LbPolicy::Random, &[("big.example.com", 443)])
    );
    // Envoy resolves DNS clusters itself: there is nothing to send over EDS.
    let snapshot = mk_snapshot(&profile);
    assert_eq!(names(&snapshot, ResourceType::Cluster), ["logical", "strict"]);
    assert_eq!(names(&snapshot, ResourceType::Endpoint), Vec::<String>::new());
}

#[test]
fn load_assignment_groups_endpoints_by_zone_with_weights_and_metadata() {
    let profile = mk_profile(&format!(
        r#"{ONE_ROUTE}
[clusters.api.static]
endpoints = [
  {{ address = "10.0.0.3:80", zone = "b" }},
  {{ address = "10.0.0.2:80", zone = "a", weight = 5, metadata = {{ version = "v2", canary = "true" }} }},
  {{ address = "10.0.0.9:80" }},
  {{ address = "10.0.0.1:80", zone = "a", weight = 1 }},
]
"#
    ));
    let profile::Source::Static(eps) = &profile.clusters["api"].source else { panic!("static source") };
    let locality = |zone: &str| Some(core::Locality { zone: zone.into(), ..Default::default() });
    let expected = endpoint::ClusterLoadAssignment {
        cluster_name: "api".into(),
        endpoints: vec![
            // Endpoints without a zone share the locality without one. Each
            // locality weighs what its endpoints weigh (1 each unless set):
            // gRPC clients give a locality without a weight no traffic.
            endpoint::LocalityLbEndpoints {
                locality: locality(""),
                lb_endpoints: vec![mk_lb_endpoint("10.0.0.9", 80, None, &[])],
                load_balancing_weight: Some(u32v(1)),
                ..Default::default()
            },
            endpoint::LocalityLbEndpoints {
                locality: locality("a"),
                lb_endpoints: vec![
                    mk_lb_endpoint("10.0.0.1", 80, Some(1), &[]),
                    mk_lb_endpoint("10.0.0.2", 80, Some(5), &[("canary", "true"), ("version", "v2")]),
                ],
                load_balancing_weight: Some(u32v(6)),
                ..Default::default()
            },
            endpoint::LocalityLbEndpoints {
                locality: locality("b"),
                lb_endpoints: vec![mk_lb_endpoint("10.0.0.3", 80, None, &[])],
                load_balancing_weight: Some(u32v(1)),
                ..Default::default()
            },
        ],
        ..Default::default()
    };

    let (cla, hash) = to_load_assignment("api", eps);

    assert_eq!(cla, expected);
    let mut reversed = eps.clone();
    reversed.reverse();
    assert_eq!(to_load_assignment("api", &reversed), (expected.clone(), hash), "input order does not matter");
    let snapshot = mk_snapshot(&profile);
    assert_eq!(decode::<endpoint::ClusterLoadAssignment>(&snapshot, ResourceType::Endpoint, "api"), expected);
}

#[test]
fn kubernetes_cluster_takes_discovered_endpoints_and_is_empty_until_then() {
    let profile = mk_profile(&format!(
        r#"{ONE_ROUTE}
[clusters.api.kubernetes]
selector = "app=api"
port = 8080
"#
    ));
    let proxy = &profile.proxies["p"];
    let discovered: EndpointSet = [(
        "api".to_string(),
        vec![profile::Endpoint {
            unhealthy: false,
            addr: "10.1.0.7:8080".parse().unwrap(),
            zone: None,
            weight: None,
            metadata: Default::default(),
        }]
        .into(),
    )]
    .into();

    let before = translate_proxy(&profile, proxy, &EndpointSet::new()).expect("consistent");
    let after = translate_proxy(&profile, proxy, &discovered).expect("consistent");

    let cla = |s: &Snapshot| decode::<endpoint::ClusterLoadAssignment>(s, ResourceType::Endpoint, "api");
    assert_eq!(cla(&before), endpoint::ClusterLoadAssignment { cluster_name: "api".into(), ..Default::default() });
    assert_eq!(
        cla(&after),
        endpoint::ClusterLoadAssignment {
            cluster_name: "api".into(),
            endpoints: vec![endpoint::LocalityLbEndpoints {
                locality: Some(core::Locality::default()),
                lb_endpoints: vec![mk_lb_endpoint("10.1.0.7", 8080, None, &[])],
                load_balancing_weight: Some(u32v(1)),
                ..Default::default()
            }],
            ..Default::default()
        }
    );
}

const TWO_PROXIES: &str = r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["a.test:8080"]
[proxies.q]
zone = "local"
domains = ["b.test:9090"]
[[domains]]
name = "a.test:8080"
[[domains.routes]]
cluster = "a"
[[domains]]
name = "b.test:9090"
[[domains.routes]]
cluster = "b"
[clusters.a.static]
endpoints = [{ address = "10.0.0.1:80", zone = "local", metadata = { app = "a", track = "stable", version = "1", owner = "me" } }]
[clusters.b.static]
endpoints = [{ address = "10.0.0.2:80" }, { address = "10.0.0.3:80", metadata = { app = "b", track = "canary" } }]
"#;

#[test]
fn each_proxy_gets_only_its_own_clusters_and_listeners() {
    let profile = mk_profile(TWO_PROXIES);

    let snapshots = translate(&profile, &EndpointSet::new()).expect("consistent");

    let contents = |proxy: &str| {
        let s = &snapshots[proxy];
        assert_eq!(s.proxy, proxy);
        ResourceType::ALL.map(|t| names(s, t))
    };
    assert_eq!(snapshots.keys().collect::<Vec<_>>(), ["p", "q"]);
    assert_eq!(contents("p"), [vec!["a"], vec!["a"], vec!["listener_8080"], vec!["routes_8080"]]);
    assert_eq!(contents("q"), [vec!["b"], vec!["b"], vec!["listener_9090"], vec!["routes_9090"]]);
    assert_ne!(snapshots["p"].version, snapshots["q"].version);
}

#[test]
fn tracing_reaches_every_connection_manager_and_every_proxy_gets_the_collector() {
    let profile = mk_profile(&format!(
        r#"{TWO_PROXIES}
[tracing]
zipkin = {{ cluster = "zipkin", path = "/api/v2/spans" }}
sampling = 25
[clusters.zipkin.static]
endpoints = [{{ address = "127.0.0.1:9411" }}]
"#
    ));
    let zipkin = trace::ZipkinConfig {
        collector_cluster: "zipkin".into(),
        collector_endpoint: "/api/v2/spans".into(),
        collector_endpoint_version: trace::zipkin_config::CollectorEndpointVersion::HttpJson as i32,
        shared_span_context: Some(pbwk::BoolValue { value: false }),
        ..Default::default()
    };
    let expected = hcm::http_connection_manager::Tracing {
        random_sampling: Some(percent::Percent { value: 25.0 }),
        provider: Some(trace::tracing::Http {
            name: "envoy.tracers.zipkin".into(),
            config_type: Some(trace::tracing::http::ConfigType::TypedConfig(pack_any(zipkin))),
        }),
        ..Default::default()
    };

    let snapshots = translate(&profile, &EndpointSet::new()).expect("consistent");

    for (proxy, port, own) in [("p", 8080, "a"), ("q", 9090, "b")] {
        let s = &snapshots[proxy];
        let l = decode::<listener::Listener>(s, ResourceType::Listener, &listener_name(port));
        let Some(listener::filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
            panic!("{proxy}: no typed config");
        };
        let manager = hcm::HttpConnectionManager::decode(any.value.as_slice()).expect("decodes");
        assert_eq!(manager.tracing, Some(expected.clone()), "{proxy}");
        assert_eq!(names(s, ResourceType::Cluster), [own, "zipkin"], "{proxy} gets the collector");
        assert_eq!(names(s, ResourceType::Endpoint), [own, "zipkin"], "{proxy} gets the collector's endpoints");
    }
}

#[test]
fn without_tracing_a_connection_manager_has_none() {
    let snapshots = translate(&mk_profile(TWO_PROXIES), &EndpointSet::new()).expect("consistent");
    let l = decode::<listener::Listener>(&snapshots["p"], ResourceType::Listener, "listener_8080");
    let Some(listener::filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("no typed config");
    };
    assert_eq!(hcm::HttpConnectionManager::decode(any.value.as_slice()).expect("decodes").tracing, None);
}

/// Every proxy's type versions and snapshot version.
fn versions(profile: &Profile) -> BTreeMap<String, (String, [String; 4])> {
    translate(profile, &EndpointSet::new())
        .expect("consistent")
        .into_iter()
        .map(|(p, s)| {
            let types = ResourceType::ALL.map(|t| s.resources(t).version.clone());
            (p, (s.version.clone(), types))
        })
        .collect()
}

#[test]
fn same_input_gives_the_same_versions() {
    // Endpoint metadata is a protobuf map, encoded in a different order from
    // one build to the next; versions must not follow that order.
    let first = versions(&mk_profile(TWO_PROXIES));
    for _ in 0..20 {
        assert_eq!(versions(&mk_profile(TWO_PROXIES)), first);
    }
}

#[test]
fn changing_only_an_endpoint_changes_only_the_eds_version() {
    let before = versions(&mk_profile(TWO_PROXIES));
    let after = versions(&mk_profile(&TWO_PROXIES.replace("10.0.0.2:80", "10.0.0.4:80")));

    assert_eq!(after["p"], before["p"], "proxy p does not use cluster b");
    let [cds, eds, lds, rds] = &before["q"].1;
    let [cds2, eds2, lds2, rds2] = &after["q"].1;
    assert_eq!((cds2, lds2, rds2), (cds, lds, rds));
    assert_ne!(eds2, eds);
    assert_ne!(after["q"].0, before["q"].0);
}

#[test]
fn a_tcp_service_is_a_listener_of_its_own_proxying_to_its_cluster_and_logged() {
    let profile = mk_profile(
        r#"
[zones.z]
[proxies.p]
zone = "z"
listen_address = "127.0.0.2"
tcp = [{ name = "pg", port = 15432, cluster = "db", idle_timeout = "30m" }]
[clusters.db]
connect_timeout = "2s"
health_check = { tcp = true, interval = "3s" }
static.endpoints = [{ address = "127.0.0.1:5432" }]
"#,
    );
    let s = mk_snapshot(&profile);
    assert_eq!(names(&s, ResourceType::Listener), ["tcp_pg"]);
    assert!(names(&s, ResourceType::Route).is_empty());
    assert_eq!(names(&s, ResourceType::Cluster), ["db"]);

    let l = decode::<listener::Listener>(&s, ResourceType::Listener, "tcp_pg");
    assert_eq!(l.address, Some(crate::xds::socket_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap(), 15432)));
    let filter = &l.filter_chains[0].filters[0];
    assert_eq!(filter.name, "envoy.filters.network.tcp_proxy");
    let Some(listener::filter::ConfigType::TypedConfig(any)) = &filter.config_type else { panic!("typed config") };
    let t = tcp::TcpProxy::decode(any.value.as_slice()).unwrap();
    assert_eq!(t.stat_prefix, "tcp_pg");
    assert_eq!(t.cluster_specifier, Some(tcp::tcp_proxy::ClusterSpecifier::Cluster("db".into())));
    assert_eq!(t.idle_timeout, ms(30 * 60 * 1000));
    assert_eq!(t.access_log.len(), 1);
    assert_eq!(t.access_log[0].name, "envoy.access_loggers.stdout");
    let Some(accesslog::access_log::ConfigType::TypedConfig(log)) = &t.access_log[0].config_type else {
        panic!("typed access log")
    };
    let log = stream_log::StdoutAccessLog::decode(log.value.as_slice()).unwrap();
    let Some(stream_log::stdout_access_log::AccessLogFormat::LogFormat(f)) = log.access_log_format else {
        panic!("a format")
    };
    let Some(core::substitution_format_string::Format::TextFormatSource(src)) = f.format else { panic!("text") };
    let Some(core::data_source::Specifier::InlineString(text)) = src.specifier else { panic!("inline") };
    assert!(text.starts_with("[%START_TIME%] tcp pg %DOWNSTREAM_REMOTE_ADDRESS% -> %UPSTREAM_HOST%"), "{text}");

    // Health checked by connecting: no payload to send or expect.
    let c = decode::<cluster::Cluster>(&s, ResourceType::Cluster, "db");
    assert_eq!(c.connect_timeout, ms(2000));
    let hc = &c.health_checks[0];
    assert_eq!(hc.interval, ms(3000));
    assert_eq!(hc.health_checker, Some(HealthChecker::TcpHealthCheck(Default::default())));
}

#[test]
fn a_tcp_service_beside_http_domains_adds_a_listener_and_its_cluster() {
    let profile = mk_profile(
        r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["web.test:8080"]
tcp = [{ name = "pg", port = 15432, cluster = "db" }]
[[domains]]
name = "web.test:8080"
routes = [{ prefix = "/", cluster = "web" }]
[clusters.web.static]
endpoints = [{ address = "127.0.0.1:9001" }]
[clusters.db.static]
endpoints = [{ address = "127.0.0.1:5432" }]
"#,
    );
    let s = mk_snapshot(&profile);
    assert_eq!(names(&s, ResourceType::Listener), ["listener_8080", "tcp_pg"]);
    assert_eq!(names(&s, ResourceType::Cluster), ["db", "web"]);
    assert_eq!(names(&s, ResourceType::Endpoint), ["db", "web"]);
    // Left unset, the idle timeout is Envoy's own default (one hour).
    let l = decode::<listener::Listener>(&s, ResourceType::Listener, "tcp_pg");
    let Some(listener::filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("typed config")
    };
    assert_eq!(tcp::TcpProxy::decode(any.value.as_slice()).unwrap().idle_timeout, None);
}

#[test]
fn traffic_policies_reach_clusters_routes_and_the_connection_manager() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::lb_subset_config::LbSubsetFallbackPolicy;
    let profile = mk_profile(
        r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:8080", "b.test:8081"]
[[domains]]
name = "a.test:8080"
cors = { allow_origins = ["http://localhost:3000", "*"], allow_methods = ["GET", "POST"], max_age = "10m", allow_credentials = true }
[[domains.routes]]
prefix = "/c"
cluster = "edge"
subset = { track = "canary" }
hash_policy = [{ header = "x-user" }, { cookie = "s", ttl = "1h" }, { source_ip = true }]
retries = { count = 2, on = ["reset"], status_codes = [503] }
response_headers_add = { x-served-by = "devbridge" }
response_headers_remove = ["x-internal"]
[[domains.routes]]
prefix = "/"
weighted_clusters = [{ cluster = "edge", weight = 9 }, { cluster = "edge", weight = 1, subset = { track = "canary" } }]
[[domains]]
name = "b.test:8081"
routes = [{ prefix = "/", cluster = "edge" }]
[clusters.edge]
lb = "maglev"
subset_fallback = "none"
zone_priority = ["zone-b", "zone-a"]
outlier_detection = { consecutive_gateway_failure = 3, interval = "2s", max_ejection_percent = 50 }
static.endpoints = [
  { address = "10.0.0.1:80", zone = "zone-a" },
  { address = "10.0.0.2:80", zone = "zone-b", metadata = { track = "canary" } },
  { address = "10.0.0.3:80", zone = "zone-c" },
]
"#,
    );
    let s = mk_snapshot(&profile);

    let c = decode::<cluster::Cluster>(&s, ResourceType::Cluster, "edge");
    assert_eq!(c.lb_policy, LbPolicy::Maglev as i32);
    let od = c.outlier_detection.unwrap();
    assert_eq!(
        (od.consecutive_5xx, od.consecutive_gateway_failure, od.enforcing_consecutive_gateway_failure),
        (None, u32s(3), u32s(100))
    );
    assert_eq!((od.interval, od.max_ejection_percent, od.base_ejection_time), (ms(2000), u32s(50), None));
    let subsets = c.lb_subset_config.unwrap();
    assert_eq!(subsets.fallback_policy, LbSubsetFallbackPolicy::NoFallback as i32);
    let keys: Vec<Vec<String>> = subsets.subset_selectors.iter().map(|s| s.keys.clone()).collect();
    assert_eq!(keys, [vec!["track".to_string()]]);

    // Zones by preference: b first, a next, the unlisted c last.
    let cla = decode::<endpoint::ClusterLoadAssignment>(&s, ResourceType::Endpoint, "edge");
    let priorities: Vec<(String, u32)> = cla
        .endpoints
        .iter()
        .map(|l| (l.locality.as_ref().map(|l| l.zone.clone()).unwrap_or_default(), l.priority))
        .collect();
    assert_eq!(priorities, [("zone-a".into(), 1), ("zone-b".into(), 0), ("zone-c".into(), 2)]);

    let rc = decode::<route::RouteConfiguration>(&s, ResourceType::Route, "routes_8080");
    let vh = &rc.virtual_hosts[0];
    let policy = cors::CorsPolicy::decode(vh.typed_per_filter_config[CORS_FILTER].value.as_slice()).unwrap();
    use matcher::string_matcher::MatchPattern;
    assert_eq!(
        policy.allow_origin_string_match,
        [
            string_match(MatchPattern::Exact("http://localhost:3000".into())),
            string_match(MatchPattern::SafeRegex(regex(".*")))
        ]
    );
    assert_eq!((policy.allow_methods.as_str(), policy.max_age.as_str()), ("GET,POST", "600"));
    assert_eq!(policy.allow_credentials, Some(pbwk::BoolValue { value: true }));

    let r = &vh.routes[0];
    assert_eq!(r.response_headers_to_remove, ["x-internal"]);
    assert_eq!(r.response_headers_to_add[0].header.as_ref().unwrap().key, "x-served-by");
    let Some(route::route::Action::Route(a)) = &r.action else { panic!("a route action") };
    let canary = core::Metadata {
        filter_metadata: [(
            "envoy.lb".to_string(),
            pbwk::Struct {
                fields: [(
                    "track".to_string(),
                    pbwk::Value { kind: Some(pbwk::value::Kind::StringValue("canary".into())) },
                )]
                .into(),
            },
        )]
        .into(),
        ..Default::default()
    };
    assert_eq!(a.metadata_match, Some(canary.clone()));
    assert_eq!(a.hash_policy.len(), 3);
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(
        (retry.retry_on.as_str(), retry.retriable_status_codes.as_slice()),
        ("reset,retriable-status-codes", &[503][..])
    );
    let Some(route::route::Action::Route(split)) = &vh.routes[1].action else { panic!("a route action") };
    let Some(route::route_action::ClusterSpecifier::WeightedClusters(w)) = &split.cluster_specifier else {
        panic!("weighted")
    };
    assert_eq!(w.clusters[0].metadata_match, None);
    assert_eq!(w.clusters[1].metadata_match, Some(canary));

    // The CORS filter is in the chain of the listener whose domain uses it,
    // before the router, and not in the other's.
    let filters = |port: u16| http_filters(&s, port);
    assert_eq!(filters(8080), [CORS_FILTER, "envoy.filters.http.router"]);
    assert_eq!(filters(8081), ["envoy.filters.http.router"]);
}

#[test]
fn a_change_of_zone_priority_alone_is_a_new_load_assignment() {
    let eps = [profile::Endpoint {
        addr: "10.0.0.1:80".parse().unwrap(),
        zone: Some("a".into()),
        weight: None,
        metadata: Default::default(),
        unhealthy: false,
    }];
    let (_, plain) = to_load_assignment("c", &eps);
    let (_, listed) = to_load_assignment_in("c", &eps, &["a".to_string()]);
    let (_, other) = to_load_assignment_in("c", &eps, &["b".to_string(), "a".to_string()]);
    assert_ne!(plain, listed);
    assert_ne!(listed, other);
    assert_eq!(to_load_assignment_in("c", &eps, &[]).1, plain);
}

#[test]
fn a_mirror_and_a_fault_reach_the_route_and_the_fault_filter_only_its_listener() {
    let profile = mk_profile(
        r#"
[zones.z]
[proxies.p]
zone = "z"
domains = ["a.test:8080", "b.test:8081"]
[[domains]]
name = "a.test:8080"
routes = [{ prefix = "/", cluster = "edge", mirror = { cluster = "local", percent = 30 }, fault = { delay = "2s", delay_percent = 10, abort = 503, abort_percent = 5 } }]
[[domains]]
name = "b.test:8081"
routes = [{ prefix = "/", cluster = "edge" }]
[clusters.edge.static]
endpoints = [{ address = "10.0.0.1:80" }]
[clusters.local.static]
endpoints = [{ address = "127.0.0.1:5000" }]
"#,
    );
    let s = mk_snapshot(&profile);
    assert_eq!(names(&s, ResourceType::Cluster), ["edge", "local"]);
    let rc = decode::<route::RouteConfiguration>(&s, ResourceType::Route, "routes_8080");
    let r = &rc.virtual_hosts[0].routes[0];
    let Some(route::route::Action::Route(a)) = &r.action else { panic!("a route action") };
    let m = &a.request_mirror_policies[0];
    assert_eq!(m.cluster, "local");
    assert_eq!(m.runtime_fraction.as_ref().unwrap().default_value, Some(percent_of(30)));
    let f = fault::HttpFault::decode(r.typed_per_filter_config[FAULT_FILTER].value.as_slice()).unwrap();
    assert_eq!(f, to_fault(&profile::Fault { delay: Some((Duration::from_secs(2), 10)), abort: Some((503, 5)) }));
    let delay = f.delay.unwrap();
    assert_eq!(delay.percentage, Some(percent_of(10)));
    assert_eq!(
        delay.fault_delay_secifier,
        Some(common_fault::fault_delay::FaultDelaySecifier::FixedDelay(duration(Duration::from_secs(2))))
    );
    assert_eq!(f.abort.unwrap().error_type, Some(fault::fault_abort::ErrorType::HttpStatus(503)));

    let filters = |port: u16| http_filters(&s, port);
    assert_eq!(filters(8080), [FAULT_FILTER, "envoy.filters.http.router"]);
    assert_eq!(filters(8081), ["envoy.filters.http.router"]);
}

#[test]
fn a_proxyless_grpc_client_gets_api_listeners_named_after_its_targets() {
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    let profile = mk_profile(
        r#"
[zones.z]
[proxies.p]
zone = "z"
kind = "grpc"
domains = ["greeter:50051", "other:50051", "other:50052"]

[[domains]]
name = "greeter:50051"
[[domains.routes]]
prefix = "/greeter.Greeter/"
cluster = "greeter"
timeout = "3s"
retries = { count = 2, on = ["5xx", "deadline-exceeded"] }

[[domains]]
name = "other:50051"
routes = [{ prefix = "/", cluster = "greeter" }]
[[domains]]
name = "other:50052"
routes = [{ prefix = "/", cluster = "greeter" }]

[clusters.greeter]
health_check = { path = "/healthz" }
[clusters.greeter.static]
endpoints = [{ address = "127.0.0.1:9001" }]
"#,
    );
    let s = mk_snapshot(&profile);
    // The host alone names a target only where it is unambiguous.
    assert_eq!(names(&s, ResourceType::Listener), ["greeter", "greeter:50051", "other:50051", "other:50052"]);
    assert_eq!(names(&s, ResourceType::Route), ["greeter:50051", "other:50051", "other:50052"]);
    for target in ["greeter", "greeter:50051"] {
        let l: Listener = decode(&s, ResourceType::Listener, target);
        assert!(l.address.is_none() && l.filter_chains.is_empty(), "an API listener binds nothing");
        let any = l.api_listener.and_then(|a| a.api_listener).expect("api_listener");
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        assert_eq!(hcm.http_filters.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["envoy.filters.http.router"]);
        let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier else { panic!("rds") };
        assert_eq!(rds.route_config_name, "greeter:50051");
    }
    let rc: RouteConfiguration = decode(&s, ResourceType::Route, "greeter:50051");
    assert_eq!(rc.virtual_hosts[0].domains, ["greeter", "greeter:50051"]);
    let Some(route::route::Action::Route(action)) = &rc.virtual_hosts[0].routes[0].action else { panic!("route") };
    // gRPC reads a route's timeout from max_stream_duration (gRFC A31) and
    // retries on gRPC status names (A44): 5xx means UNAVAILABLE to it.
    assert_eq!(action.timeout, None);
    assert_eq!(
        action.max_stream_duration.as_ref().and_then(|m| m.max_stream_duration),
        Some(duration(Duration::from_secs(3)))
    );
    let retry = action.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_on, "unavailable,deadline-exceeded");
    assert_eq!(retry.num_retries, Some(u32v(2)));
    let c: cluster::Cluster = decode(&s, ResourceType::Cluster, "greeter");
    assert!(c.health_checks.is_empty() && c.eds_cluster_config.is_some(), "{c:?}");
    assert_eq!(names(&s, ResourceType::Endpoint), ["greeter"]);
}
