//! (profile, discovered endpoints) -> one [`Snapshot`] per proxy. Pure.
//!
//! Per proxy: a listener per port of its domains, each with an HTTP
//! connection manager fetching route configuration `routes_<port>` over ADS;
//! a virtual host per domain on that port; the clusters its routes name,
//! EDS for `static`, `kubernetes` and `registered` sources and STRICT/LOGICAL DNS for
//! `dns`; a load assignment per EDS cluster, endpoints grouped by zone.
//! With `[tracing]`, every connection manager reports spans to the Zipkin
//! collector, whose cluster every proxy then gets. Each TCP service is a
//! listener `tcp_<name>` of its own, a TCP proxy to its cluster. A
//! proxyless gRPC client (`kind = "grpc"`) gets API listeners instead
//! (`proxyless`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::accesslog::v3 as accesslog;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::config::trace::v3 as trace;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3 as stream_log;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as common_fault;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3 as cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as fault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as upstream_http;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3 as percent;
use envoy_types::pb::google::protobuf as pbwk;
use envoy_types::util::pack_any;

use super::load_assignment::lb_endpoint;
pub use super::load_assignment::{Lookup, to_load_assignment, to_load_assignment_in};
use super::snapshot::{Resource, Snapshot, SnapshotError, SnapshotParts};
use super::{socket_address, u32v};
use crate::model::{self as profile, EndpointSet, Endpoints, Profile, Proxy};

/// Name of the route configuration for a port's listener.
pub fn route_config_name(port: u16) -> String {
    format!("routes_{port}")
}

/// Name of the listener for a port.
pub fn listener_name(port: u16) -> String {
    format!("listener_{port}")
}

/// Name of the listener for a TCP service.
pub fn tcp_listener_name(service: &str) -> String {
    format!("tcp_{service}")
}

/// Builds every proxy's snapshot. One inconsistent snapshot fails the whole
/// translation: a profile is published whole or not at all.
pub fn translate(
    profile: &Profile,
    discovered: &EndpointSet,
) -> Result<BTreeMap<String, Arc<Snapshot>>, SnapshotError> {
    profile.proxies.values().map(|p| Ok((p.name.clone(), Arc::new(translate_proxy(profile, p, discovered)?)))).collect()
}

pub fn translate_proxy(profile: &Profile, proxy: &Proxy, discovered: &EndpointSet) -> Result<Snapshot, SnapshotError> {
    translate_proxy_with(profile, proxy, &|name| discovered.get(name))
}

/// [`translate_proxy`] with the run-time endpoints behind a lookup, so
/// callers holding several maps need not merge them first.
pub fn translate_proxy_with<'a>(
    profile: &Profile,
    proxy: &Proxy,
    discovered: &Lookup<'a>,
) -> Result<Snapshot, SnapshotError> {
    if proxy.kind == profile::ProxyKind::Grpc {
        return proxyless::translate_grpc_proxy(profile, proxy, discovered);
    }
    let mut parts = SnapshotParts::default();
    for c in profile.clusters_of(proxy) {
        parts.clusters.push(to_cluster(c));
        if let Some(eps) = eds_endpoints(c, discovered(&c.name)) {
            parts.endpoints.push(to_load_assignment_in(&c.name, eps, &c.zone_priority));
        }
    }
    for port in proxy.ports(profile) {
        let domains: Vec<&profile::Domain> =
            proxy.domains.iter().filter_map(|d| profile.domains.get(d)).filter(|d| d.port == port).collect();
        // The CORS filter is in a listener's chain only when one of its
        // domains or routes sets a policy.
        let uses_cors = domains.iter().any(|d| d.cors.is_some() || d.routes.iter().any(|r| r.cors.is_some()));
        // So is the fault filter, when one of its routes injects faults.
        let uses_fault = domains
            .iter()
            .flat_map(|d| &d.routes)
            .any(|r| matches!(&r.action, profile::RouteAction::Forward(f) if f.fault.is_some()));
        parts.listeners.push(to_listener(proxy, port, profile.tracing.as_ref(), uses_cors, uses_fault));
        parts.routes.push(to_route_configuration(port, &domains));
    }
    for t in &proxy.tcp {
        parts.listeners.push(to_tcp_listener(proxy, t));
    }
    Snapshot::build(&proxy.name, parts)
}

/// The endpoints an EDS cluster is served, given those found at run time
/// for it; `None` for a DNS cluster, whose endpoints Envoy resolves itself.
fn eds_endpoints<'a>(
    c: &'a profile::Cluster,
    found: Option<&'a Endpoints>,
) -> Option<Box<dyn Iterator<Item = &'a profile::Endpoint> + 'a>> {
    match (&c.source, found) {
        (profile::Source::Dns { .. }, _) => None,
        // The lookup may give a static cluster's endpoints too: the
        // builder does, with the probes' unhealthy marks on them.
        (_, Some(found)) => Some(Box::new(found.iter())),
        (profile::Source::Static(eps), None) => Some(Box::new(eps.iter())),
        (
            profile::Source::Kubernetes(_) | profile::Source::KubernetesService(_) | profile::Source::Registered,
            None,
        ) => Some(Box::new(std::iter::empty())),
    }
}

/// The EDS-only path, second step: `snapshot` (this proxy's, for this
/// profile) with the load assignments it uses among `updated` replaced,
/// every other resource reused. `None` when the proxy uses none of them.
/// Listeners, routes and clusters are not translated again.
pub fn translate_endpoints(
    profile: &Profile,
    proxy: &Proxy,
    snapshot: &Snapshot,
    updated: &BTreeMap<String, Resource>,
) -> Result<Option<Snapshot>, SnapshotError> {
    let updates: Vec<Resource> =
        profile.clusters_of(proxy).into_iter().filter_map(|c| updated.get(&c.name)).cloned().collect();
    if updates.is_empty() {
        return Ok(None);
    }
    snapshot.with_load_assignments(updates).map(Some)
}

fn ads() -> core::ConfigSource {
    core::ConfigSource {
        resource_api_version: core::ApiVersion::V3 as i32,
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(core::AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub(crate) fn duration(d: Duration) -> pbwk::Duration {
    pbwk::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn to_cluster(c: &profile::Cluster) -> cluster::Cluster {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbPolicy};
    let lb_policy = match c.lb {
        profile::LbPolicy::RoundRobin => LbPolicy::RoundRobin,
        profile::LbPolicy::LeastRequest => LbPolicy::LeastRequest,
        profile::LbPolicy::Random => LbPolicy::Random,
        profile::LbPolicy::RingHash => LbPolicy::RingHash,
        profile::LbPolicy::Maglev => LbPolicy::Maglev,
    };
    let mut out = cluster::Cluster {
        name: c.name.clone(),
        connect_timeout: Some(duration(c.connect_timeout)),
        lb_policy: lb_policy as i32,
        ..Default::default()
    };
    match &c.source {
        profile::Source::Static(_)
        | profile::Source::Kubernetes(_)
        | profile::Source::KubernetesService(_)
        | profile::Source::Registered => {
            out.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            out.eds_cluster_config = Some(EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() });
        }
        profile::Source::Dns { hosts, lookup } => {
            let kind = match lookup {
                profile::DnsLookup::Strict => DiscoveryType::StrictDns,
                profile::DnsLookup::Logical => DiscoveryType::LogicalDns,
            };
            out.cluster_discovery_type = Some(ClusterDiscoveryType::Type(kind as i32));
            // Local names such as `localhost` resolve to ::1 first otherwise,
            // while most local services listen on IPv4 only.
            out.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
            out.load_assignment = Some(endpoint::ClusterLoadAssignment {
                cluster_name: c.name.clone(),
                endpoints: vec![endpoint::LocalityLbEndpoints {
                    lb_endpoints: hosts.iter().map(|(h, p)| lb_endpoint(socket_address(h, *p), None, None)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    if let Some(hc) = &c.health_check {
        // The profile and discovery say which endpoints exist: one removed
        // leaves at once, even while it passes its health checks (Envoy
        // keeps it until it fails them otherwise, so an endpoint switched
        // away from kept taking new connections).
        out.ignore_health_on_host_removal = true;
        out.health_checks.push(core::HealthCheck {
            timeout: Some(duration(hc.timeout)),
            interval: Some(duration(hc.interval)),
            // Envoy checks a cluster that has had no traffic yet only every
            // 60 s by default; a sidecar's upstreams often have none for a
            // while, and a check failed at start-up (the peer not up yet)
            // would stand for a minute. Check at the interval asked for.
            no_traffic_interval: Some(duration(hc.interval)),
            healthy_threshold: Some(u32v(hc.healthy_threshold)),
            unhealthy_threshold: Some(u32v(hc.unhealthy_threshold)),
            health_checker: Some(match &hc.path {
                Some(path) => core::health_check::HealthChecker::HttpHealthCheck(core::health_check::HttpHealthCheck {
                    path: path.clone(),
                    host: hc.host.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                // No payload: the check passes when the connection opens.
                None => core::health_check::HealthChecker::TcpHealthCheck(Default::default()),
            }),
            ..Default::default()
        });
    }
    if let Some(o) = &c.outlier_detection {
        out.outlier_detection = Some(cluster::OutlierDetection {
            consecutive_5xx: o.consecutive_5xx.map(u32v),
            // Envoy enforces gateway-failure ejection 0% of the time unless told.
            consecutive_gateway_failure: o.consecutive_gateway_failure.map(u32v),
            enforcing_consecutive_gateway_failure: o.consecutive_gateway_failure.map(|_| u32v(100)),
            interval: o.interval.map(duration),
            base_ejection_time: o.base_ejection_time.map(duration),
            max_ejection_percent: o.max_ejection_percent.map(u32v),
            ..Default::default()
        });
    }
    if !c.subset_keys.is_empty() {
        use cluster::cluster::{LbSubsetConfig, lb_subset_config::LbSubsetFallbackPolicy};
        let fallback = match c.subset_fallback {
            profile::SubsetFallback::Any => LbSubsetFallbackPolicy::AnyEndpoint,
            profile::SubsetFallback::NoEndpoint => LbSubsetFallbackPolicy::NoFallback,
        };
        out.lb_subset_config = Some(LbSubsetConfig {
            fallback_policy: fallback as i32,
            subset_selectors: c
                .subset_keys
                .iter()
                .map(|keys| cluster::cluster::lb_subset_config::LbSubsetSelector {
                    keys: keys.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    if let Some(cb) = &c.circuit_breakers {
        out.circuit_breakers = Some(cluster::CircuitBreakers {
            thresholds: vec![cluster::circuit_breakers::Thresholds {
                max_connections: cb.max_connections.map(u32v),
                max_pending_requests: cb.max_pending_requests.map(u32v),
                max_requests: cb.max_requests.map(u32v),
                max_retries: cb.max_retries.map(u32v),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    if let Some(t) = &c.tls {
        let validation = t.ca_file.as_ref().map(|ca| {
            tls::common_tls_context::ValidationContextType::ValidationContext(tls::CertificateValidationContext {
                trusted_ca: Some(core::DataSource {
                    specifier: Some(core::data_source::Specifier::Filename(ca.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        });
        let ctx = tls::UpstreamTlsContext {
            sni: t.sni.clone().unwrap_or_default(),
            common_tls_context: Some(tls::CommonTlsContext {
                // An HTTP/2 upstream behind TLS (gRPC) negotiates h2 by ALPN.
                alpn_protocols: if c.http2 { vec!["h2".into()] } else { vec![] },
                validation_context_type: validation,
                ..Default::default()
            }),
            ..Default::default()
        };
        out.transport_socket = Some(core::TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(core::transport_socket::ConfigType::TypedConfig(pack_any(ctx))),
        });
    }
    if c.http2 {
        use upstream_http::http_protocol_options::{
            ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
        };
        let opts = upstream_http::HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(core::Http2ProtocolOptions::default())),
            })),
            ..Default::default()
        };
        out.typed_extension_protocol_options
            .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(), pack_any(opts));
    }
    out
}

/// Zipkin tracing for a connection manager: B3 headers are started or
/// continued, and spans are POSTed as Zipkin v2 JSON to the collector.
pub fn to_tracing(t: &profile::Tracing) -> hcm::http_connection_manager::Tracing {
    use trace::zipkin_config::CollectorEndpointVersion;
    let zipkin = trace::ZipkinConfig {
        collector_cluster: t.zipkin.cluster.clone(),
        collector_endpoint: t.zipkin.path.clone(),
        collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
        // Each hop reports its own client and server spans.
        shared_span_context: Some(pbwk::BoolValue { value: false }),
        ..Default::default()
    };
    hcm::http_connection_manager::Tracing {
        random_sampling: Some(percent::Percent { value: t.sampling }),
        provider: Some(trace::tracing::Http {
            name: "envoy.tracers.zipkin".into(),
            config_type: Some(trace::tracing::http::ConfigType::TypedConfig(pack_any(zipkin))),
        }),
        ..Default::default()
    }
}

/// Where Envoy's CORS filter finds its policy in a virtual host's or route's
/// `typed_per_filter_config`.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Where Envoy's fault filter finds a route's faults.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

fn to_listener(
    proxy: &Proxy,
    port: u16,
    tracing: Option<&profile::Tracing>,
    uses_cors: bool,
    uses_fault: bool,
) -> listener::Listener {
    // The fault filter's own config injects nothing: only routes with a
    // `fault` (in their typed_per_filter_config) get faults.
    let fault_filter = uses_fault.then(|| hcm::HttpFilter {
        name: FAULT_FILTER.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(fault::HttpFault::default()))),
        ..Default::default()
    });
    let cors_filter = uses_cors.then(|| hcm::HttpFilter {
        name: CORS_FILTER.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(cors::Cors::default()))),
        ..Default::default()
    });
    let manager = hcm::HttpConnectionManager {
        stat_prefix: format!("ingress_{port}"),
        codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source: Some(ads()),
            route_config_name: route_config_name(port),
        })),
        http_filters: cors_filter
            .into_iter()
            .chain(fault_filter)
            .chain([hcm::HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
                ..Default::default()
            }])
            .collect(),
        tracing: tracing.map(to_tracing),
        ..Default::default()
    };
    listener::Listener {
        name: listener_name(port),
        address: Some(socket_address(proxy.listen_address, port)),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// What Envoy writes to its stdout for each TCP connection, when it closes.
pub const TCP_ACCESS_LOG_FORMAT: &str = "[%START_TIME%] tcp %ENVOY_LOG_NAME% %DOWNSTREAM_REMOTE_ADDRESS% -> %UPSTREAM_HOST% (%UPSTREAM_CLUSTER%) %RESPONSE_FLAGS% sent=%BYTES_SENT% received=%BYTES_RECEIVED% %DURATION%ms\n";

/// A TCP service's listener: every connection is proxied to one endpoint
/// of the cluster, chosen per connection, and logged when it closes.
fn to_tcp_listener(proxy: &Proxy, t: &profile::TcpService) -> listener::Listener {
    let format = TCP_ACCESS_LOG_FORMAT.replace("%ENVOY_LOG_NAME%", &t.name);
    let log = stream_log::StdoutAccessLog {
        access_log_format: Some(stream_log::stdout_access_log::AccessLogFormat::LogFormat(
            core::SubstitutionFormatString {
                format: Some(core::substitution_format_string::Format::TextFormatSource(core::DataSource {
                    specifier: Some(core::data_source::Specifier::InlineString(format)),
                    ..Default::default()
                })),
                ..Default::default()
            },
        )),
    };
    let proxy_filter = tcp::TcpProxy {
        stat_prefix: tcp_listener_name(&t.name),
        cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(t.cluster.clone())),
        idle_timeout: t.idle_timeout.map(duration),
        access_log: vec![accesslog::AccessLog {
            name: "envoy.access_loggers.stdout".into(),
            config_type: Some(accesslog::access_log::ConfigType::TypedConfig(pack_any(log))),
            ..Default::default()
        }],
        ..Default::default()
    };
    listener::Listener {
        name: tcp_listener_name(&t.name),
        address: Some(socket_address(proxy.listen_address, t.port)),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(pack_any(proxy_filter))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn to_route_configuration(port: u16, domains: &[&profile::Domain]) -> route::RouteConfiguration {
    route::RouteConfiguration {
        name: route_config_name(port),
        virtual_hosts: domains.iter().map(|d| to_virtual_host(d)).collect(),
        ..Default::default()
    }
}

fn to_virtual_host(d: &profile::Domain) -> route::VirtualHost {
    // Clients send `Host: name` or `Host: name:port`; serve both. An IPv6
    // literal appears in a Host header in brackets.
    let mut hosts = Vec::new();
    for h in std::iter::once(&d.host).chain(&d.aliases) {
        let h = if h.contains(':') { format!("[{h}]") } else { h.clone() };
        hosts.push(format!("{h}:{}", d.port));
        hosts.insert(hosts.len() - 1, h);
    }
    route::VirtualHost {
        name: d.name.clone(),
        domains: hosts,
        routes: d.routes.iter().map(to_route).collect(),
        typed_per_filter_config: d.cors.as_ref().map(cors_config).into_iter().collect(),
        // The developer's identity: never over a value the service set.
        request_headers_to_add: d
            .headers_if_absent
            .iter()
            .map(|(k, v)| core::HeaderValueOption {
                header: Some(core::HeaderValue { key: k.clone(), value: v.clone(), ..Default::default() }),
                append_action: core::header_value_option::HeaderAppendAction::AddIfAbsent as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A CORS policy, keyed for `typed_per_filter_config`.
fn cors_config(c: &profile::Cors) -> (String, pbwk::Any) {
    use matcher::string_matcher::MatchPattern;
    let origins = c
        .allow_origins
        .iter()
        .map(|o| matcher::StringMatcher {
            match_pattern: Some(if o == "*" {
                MatchPattern::SafeRegex(regex_matcher(".*"))
            } else {
                MatchPattern::Exact(o.clone())
            }),
            ..Default::default()
        })
        .collect();
    let policy = cors::CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.map(|d| d.as_secs().to_string()).unwrap_or_default(),
        allow_credentials: c.allow_credentials.then_some(pbwk::BoolValue { value: true }),
        ..Default::default()
    };
    (CORS_FILTER.to_string(), pack_any(policy))
}

/// Labels as Envoy matches them against endpoint metadata (`envoy.lb`).
fn metadata_match(labels: &profile::Labels) -> Option<core::Metadata> {
    (!labels.is_empty()).then(|| {
        let fields = labels
            .iter()
            .map(|(k, v)| (k.clone(), pbwk::Value { kind: Some(pbwk::value::Kind::StringValue(v.clone())) }))
            .collect();
        core::Metadata {
            filter_metadata: [("envoy.lb".to_string(), pbwk::Struct { fields })].into(),
            ..Default::default()
        }
    })
}

fn header_options(headers: &[(String, String)]) -> Vec<core::HeaderValueOption> {
    headers
        .iter()
        .map(|(k, v)| core::HeaderValueOption {
            header: Some(core::HeaderValue { key: k.clone(), value: v.clone(), ..Default::default() }),
            append_action: core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        })
        .collect()
}

fn string_matcher(kind: &profile::ValueMatchKind) -> Option<matcher::StringMatcher> {
    use matcher::string_matcher::MatchPattern;
    let pattern = match kind {
        profile::ValueMatchKind::Exact(v) => MatchPattern::Exact(v.clone()),
        profile::ValueMatchKind::Prefix(v) => MatchPattern::Prefix(v.clone()),
        profile::ValueMatchKind::Regex(v) => MatchPattern::SafeRegex(regex_matcher(v)),
        profile::ValueMatchKind::Present(_) => return None,
    };
    Some(matcher::StringMatcher { match_pattern: Some(pattern), ..Default::default() })
}

fn regex_matcher(re: &str) -> matcher::RegexMatcher {
    matcher::RegexMatcher { regex: re.to_string(), ..Default::default() }
}

fn to_route(r: &profile::Route) -> route::Route {
    use route::header_matcher::HeaderMatchSpecifier;
    use route::query_parameter_matcher::QueryParameterMatchSpecifier;
    use route::route_match::PathSpecifier;

    let path = match &r.matcher.path {
        profile::PathMatch::Prefix(p) => PathSpecifier::Prefix(p.clone()),
        profile::PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        profile::PathMatch::Regex(p) => PathSpecifier::SafeRegex(regex_matcher(p)),
    };
    let mut headers: Vec<route::HeaderMatcher> = r
        .matcher
        .headers
        .iter()
        .map(|h| route::HeaderMatcher {
            name: h.name.clone(),
            invert_match: h.invert,
            header_match_specifier: Some(match &h.kind {
                profile::ValueMatchKind::Present(p) => HeaderMatchSpecifier::PresentMatch(*p),
                other => HeaderMatchSpecifier::StringMatch(string_matcher(other).expect("not present")),
            }),
            ..Default::default()
        })
        .collect();
    if !r.matcher.methods.is_empty() {
        let methods = r.matcher.methods.join("|");
        headers.push(route::HeaderMatcher {
            name: ":method".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(matcher::StringMatcher {
                match_pattern: Some(matcher::string_matcher::MatchPattern::SafeRegex(regex_matcher(&methods))),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    let query_parameters = r
        .matcher
        .query
        .iter()
        .map(|q| route::QueryParameterMatcher {
            name: q.name.clone(),
            query_parameter_match_specifier: Some(match &q.kind {
                profile::ValueMatchKind::Present(p) => QueryParameterMatchSpecifier::PresentMatch(*p),
                other => QueryParameterMatchSpecifier::StringMatch(string_matcher(other).expect("not present")),
            }),
        })
        .collect();
    let matcher = route::RouteMatch { path_specifier: Some(path), headers, query_parameters, ..Default::default() };

    let mut out = route::Route {
        r#match: Some(matcher),
        response_headers_to_add: header_options(&r.response_headers_add),
        response_headers_to_remove: r.response_headers_remove.clone(),
        typed_per_filter_config: r.cors.as_ref().map(cors_config).into_iter().collect(),
        ..Default::default()
    };
    match &r.action {
        profile::RouteAction::Forward(f) => {
            out.action = Some(route::route::Action::Route(to_route_action(f)));
            out.request_headers_to_add = header_options(&f.request_headers_add);
            if let Some(fl) = &f.fault {
                out.typed_per_filter_config.insert(FAULT_FILTER.to_string(), pack_any(to_fault(fl)));
            }
        }
        profile::RouteAction::Redirect(rd) => {
            use route::redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
            let code = match rd.code {
                302 => RedirectResponseCode::Found,
                303 => RedirectResponseCode::SeeOther,
                307 => RedirectResponseCode::TemporaryRedirect,
                308 => RedirectResponseCode::PermanentRedirect,
                _ => RedirectResponseCode::MovedPermanently,
            };
            out.action = Some(route::route::Action::Redirect(route::RedirectAction {
                host_redirect: rd.host.clone().unwrap_or_default(),
                path_rewrite_specifier: rd.path.clone().map(PathRewriteSpecifier::PathRedirect),
                scheme_rewrite_specifier: rd.https.then_some(SchemeRewriteSpecifier::HttpsRedirect(true)),
                response_code: code as i32,
                ..Default::default()
            }));
        }
        profile::RouteAction::DirectResponse { status, body } => {
            out.action = Some(route::route::Action::DirectResponse(route::DirectResponseAction {
                status: u32::from(*status),
                body: body.as_ref().map(|b| core::DataSource {
                    specifier: Some(core::data_source::Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            }));
        }
    }
    out
}

fn to_route_action(f: &profile::Forward) -> route::RouteAction {
    use route::route_action::{ClusterSpecifier, HostRewriteSpecifier};
    let cluster_specifier = match &f.target {
        profile::Target::Cluster(c) => ClusterSpecifier::Cluster(c.clone()),
        profile::Target::Weighted(ws) => ClusterSpecifier::WeightedClusters(route::WeightedCluster {
            clusters: ws
                .iter()
                .map(|s| route::weighted_cluster::ClusterWeight {
                    name: s.cluster.clone(),
                    weight: Some(u32v(s.weight)),
                    metadata_match: metadata_match(&s.subset),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    route::RouteAction {
        cluster_specifier: Some(cluster_specifier),
        timeout: f.timeout.map(duration),
        prefix_rewrite: f.prefix_rewrite.clone().unwrap_or_default(),
        host_rewrite_specifier: f.host_rewrite.clone().map(HostRewriteSpecifier::HostRewriteLiteral),
        retry_policy: f.retries.as_ref().map(|r| route::RetryPolicy {
            retry_on: r.on.join(","),
            num_retries: Some(u32v(r.count)),
            per_try_timeout: r.per_try_timeout.map(duration),
            retriable_status_codes: r.status_codes.iter().map(|c| u32::from(*c)).collect(),
            ..Default::default()
        }),
        metadata_match: metadata_match(&f.subset),
        hash_policy: f.hash_policy.iter().map(to_hash_policy).collect(),
        request_mirror_policies: f
            .mirror
            .iter()
            .map(|m| route::route_action::RequestMirrorPolicy {
                cluster: m.cluster.clone(),
                runtime_fraction: Some(core::RuntimeFractionalPercent {
                    default_value: Some(percent_of(m.percent)),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn percent_of(p: u32) -> percent::FractionalPercent {
    percent::FractionalPercent {
        numerator: p,
        denominator: percent::fractional_percent::DenominatorType::Hundred as i32,
    }
}

fn to_fault(f: &profile::Fault) -> fault::HttpFault {
    fault::HttpFault {
        delay: f.delay.map(|(d, p)| common_fault::FaultDelay {
            percentage: Some(percent_of(p)),
            fault_delay_secifier: Some(common_fault::fault_delay::FaultDelaySecifier::FixedDelay(duration(d))),
        }),
        abort: f.abort.map(|(status, p)| fault::FaultAbort {
            percentage: Some(percent_of(p)),
            error_type: Some(fault::fault_abort::ErrorType::HttpStatus(u32::from(status))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn to_hash_policy(h: &profile::HashPolicy) -> route::route_action::HashPolicy {
    use route::route_action::hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier};
    let specifier = match h {
        profile::HashPolicy::Header(name) => {
            PolicySpecifier::Header(Header { header_name: name.clone(), ..Default::default() })
        }
        profile::HashPolicy::Cookie { name, ttl } => PolicySpecifier::Cookie(Cookie {
            name: name.clone(),
            ttl: ttl.map(duration),
            // A cookie Envoy sets applies to the whole site.
            path: if ttl.is_some() { "/".into() } else { String::new() },
            ..Default::default()
        }),
        profile::HashPolicy::SourceIp => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
        }
    };
    route::route_action::HashPolicy { policy_specifier: Some(specifier), ..Default::default() }
}

mod proxyless;
pub use proxyless::grpc_targets;

#[cfg(test)]
mod tests;
