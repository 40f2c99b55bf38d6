//! What a proxy is served, as readable JSON, for the admin `/config_dump`.
//! Pure.
//!
//! envoy-types has no serde and does not expose its descriptor set, so each
//! resource is decoded from its `Any` and rendered by hand, for exactly the
//! fields [`translate`](super::translate) sets. This is devbridge's view:
//! what it sends. What Envoy applied (and defaults it filled in) is Envoy's
//! own admin `/config_dump`.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf as pbwk;
use prost::{Message, Name};
use serde_json::{Map, Value, json};

use super::snapshot::{ResourceType, Snapshot};

/// One proxy's snapshot: its version and, per type, the type's version and
/// every resource by name.
pub fn dump_snapshot(s: &Snapshot) -> Value {
    let mut out = Map::new();
    out.insert("version".into(), json!(s.version));
    for ty in ResourceType::ALL {
        let resources = s.resources(ty);
        let items: Map<String, Value> =
            resources.items.iter().map(|(name, r)| (name.clone(), dump_any(ty, &r.body))).collect();
        out.insert(type_key(ty).into(), json!({ "version": resources.version, "resources": items }));
    }
    Value::Object(out)
}

/// The key a type's resources are listed under.
pub fn type_key(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::Route => "routes",
    }
}

fn dump_any(ty: ResourceType, any: &pbwk::Any) -> Value {
    let decoded = match ty {
        ResourceType::Cluster => decode::<cluster::Cluster>(any).map(|c| dump_cluster(&c)),
        ResourceType::Endpoint => decode::<endpoint::ClusterLoadAssignment>(any).map(|c| dump_load_assignment(&c)),
        ResourceType::Listener => decode::<listener::Listener>(any).map(|l| dump_listener(&l)),
        ResourceType::Route => decode::<route::RouteConfiguration>(any).map(|r| dump_route_configuration(&r)),
    };
    decoded.unwrap_or_else(|e| json!({ "error": e }))
}

fn decode<M: Message + Name + Default>(any: &pbwk::Any) -> Result<M, String> {
    if any.type_url != M::type_url() {
        return Err(format!("expected {}, found {}", M::type_url(), any.type_url));
    }
    M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode {}: {e}", any.type_url))
}

/// Inserts `v` unless it is null, so a dump shows only what is set.
fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    if !v.is_null() {
        m.insert(k.to_string(), v);
    }
}

fn duration(d: Option<&pbwk::Duration>) -> Value {
    match d {
        Some(d) if d.seconds >= 0 && d.nanos >= 0 => {
            json!(humantime::format_duration(Duration::new(d.seconds as u64, d.nanos as u32)).to_string())
        }
        Some(d) => json!(format!("{}s {}ns", d.seconds, d.nanos)),
        None => Value::Null,
    }
}

fn u32v(v: Option<&pbwk::UInt32Value>) -> Value {
    v.map_or(Value::Null, |v| json!(v.value))
}

fn address(a: Option<&core::Address>) -> Value {
    let Some(core::address::Address::SocketAddress(sa)) = a.and_then(|a| a.address.as_ref()) else {
        return Value::Null;
    };
    let port = match sa.port_specifier {
        Some(core::socket_address::PortSpecifier::PortValue(p)) => p.to_string(),
        Some(core::socket_address::PortSpecifier::NamedPort(ref n)) => n.clone(),
        None => String::new(),
    };
    let host = if sa.address.contains(':') { format!("[{}]", sa.address) } else { sa.address.clone() };
    json!(format!("{host}:{port}"))
}

fn enum_name(name: Option<&str>, value: i32) -> Value {
    json!(name.map_or_else(|| value.to_string(), str::to_string))
}

pub fn dump_cluster(c: &cluster::Cluster) -> Value {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, LbPolicy};
    let mut m = Map::new();
    let kind = match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => enum_name(DiscoveryType::try_from(t).ok().map(|t| t.as_str_name()), t),
        Some(ClusterDiscoveryType::ClusterType(ref ct)) => json!(ct.name),
        None => Value::Null,
    };
    put(&mut m, "type", kind);
    put(&mut m, "lb", enum_name(LbPolicy::try_from(c.lb_policy).ok().map(|p| p.as_str_name()), c.lb_policy));
    put(&mut m, "connect_timeout", duration(c.connect_timeout.as_ref()));
    if c.dns_lookup_family != 0 {
        let f = c.dns_lookup_family;
        put(&mut m, "dns_lookup_family", enum_name(DnsLookupFamily::try_from(f).ok().map(|f| f.as_str_name()), f));
    }
    if let Some(cla) = &c.load_assignment {
        put(&mut m, "hosts", dump_load_assignment(cla)["localities"].clone());
    }
    let checks: Vec<Value> = c.health_checks.iter().map(dump_health_check).collect();
    if !checks.is_empty() {
        m.insert("health_checks".into(), json!(checks));
        if c.ignore_health_on_host_removal {
            m.insert("ignore_health_on_host_removal".into(), json!(true));
        }
    }
    if let Some(cb) = &c.circuit_breakers {
        let thresholds: Vec<Value> = cb
            .thresholds
            .iter()
            .map(|t| {
                let mut tm = Map::new();
                put(&mut tm, "max_connections", u32v(t.max_connections.as_ref()));
                put(&mut tm, "max_pending_requests", u32v(t.max_pending_requests.as_ref()));
                put(&mut tm, "max_requests", u32v(t.max_requests.as_ref()));
                put(&mut tm, "max_retries", u32v(t.max_retries.as_ref()));
                Value::Object(tm)
            })
            .collect();
        m.insert("circuit_breakers".into(), json!(thresholds));
    }
    if let Some(ts) = &c.transport_socket {
        put(&mut m, "tls", dump_transport_socket(ts));
    }
    let http2 = c.typed_extension_protocol_options.values().any(|any| {
        decode::<envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions>(any).is_ok_and(|o| {
            use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
                UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
            };
            matches!(
                o.upstream_protocol_options,
                Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
                    if matches!(e.protocol_config, Some(ProtocolConfig::Http2ProtocolOptions(_)))
            )
        })
    });
    if http2 {
        m.insert("http2".into(), json!(true));
    }
    Value::Object(m)
}

fn dump_health_check(hc: &core::HealthCheck) -> Value {
    let mut m = Map::new();
    match &hc.health_checker {
        Some(core::health_check::HealthChecker::HttpHealthCheck(h)) => {
            put(&mut m, "path", json!(h.path));
            if !h.host.is_empty() {
                put(&mut m, "host", json!(h.host));
            }
        }
        Some(core::health_check::HealthChecker::TcpHealthCheck(_)) => put(&mut m, "tcp_health_check", json!({})),
        _ => {}
    }
    put(&mut m, "interval", duration(hc.interval.as_ref()));
    put(&mut m, "timeout", duration(hc.timeout.as_ref()));
    put(&mut m, "healthy_threshold", u32v(hc.healthy_threshold.as_ref()));
    put(&mut m, "unhealthy_threshold", u32v(hc.unhealthy_threshold.as_ref()));
    Value::Object(m)
}

fn dump_transport_socket(ts: &core::TransportSocket) -> Value {
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        return json!({ "name": ts.name });
    };
    let ctx = match decode::<tls::UpstreamTlsContext>(any) {
        Ok(ctx) => ctx,
        Err(e) => return json!({ "name": ts.name, "error": e }),
    };
    let mut m = Map::new();
    if !ctx.sni.is_empty() {
        m.insert("sni".into(), json!(ctx.sni));
    }
    let common = ctx.common_tls_context.unwrap_or_default();
    let ca = match &common.validation_context_type {
        Some(tls::common_tls_context::ValidationContextType::ValidationContext(v)) => {
            v.trusted_ca.as_ref().map_or(Value::Null, data_source)
        }
        _ => Value::Null,
    };
    // Without a CA the upstream certificate is not verified: say so.
    m.insert("ca_file".into(), if ca.is_null() { json!("(none: the certificate is not verified)") } else { ca });
    if !common.alpn_protocols.is_empty() {
        m.insert("alpn".into(), json!(common.alpn_protocols));
    }
    Value::Object(m)
}

fn data_source(d: &core::DataSource) -> Value {
    match &d.specifier {
        Some(core::data_source::Specifier::Filename(f)) => json!(f),
        Some(core::data_source::Specifier::InlineString(s)) => json!(s),
        Some(core::data_source::Specifier::InlineBytes(b)) => json!(String::from_utf8_lossy(b)),
        Some(core::data_source::Specifier::EnvironmentVariable(v)) => json!(format!("${v}")),
        None => Value::Null,
    }
}

pub fn dump_load_assignment(cla: &endpoint::ClusterLoadAssignment) -> Value {
    let localities: Vec<Value> = cla
        .endpoints
        .iter()
        .map(|l| {
            let mut lm = Map::new();
            put(
                &mut lm,
                "zone",
                l.locality.as_ref().filter(|l| !l.zone.is_empty()).map_or(Value::Null, |l| json!(l.zone)),
            );
            let eps: Vec<Value> = l.lb_endpoints.iter().map(dump_lb_endpoint).collect();
            lm.insert("endpoints".into(), json!(eps));
            Value::Object(lm)
        })
        .collect();
    json!({ "cluster": cla.cluster_name, "localities": localities })
}

fn dump_lb_endpoint(e: &endpoint::LbEndpoint) -> Value {
    let mut m = Map::new();
    if let Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier {
        put(&mut m, "address", address(ep.address.as_ref()));
    }
    put(&mut m, "weight", u32v(e.load_balancing_weight.as_ref()));
    // Only UNHEALTHY is ever sent: the probes' mark.
    if e.health_status != 0 {
        let name = envoy_types::pb::envoy::config::core::v3::HealthStatus::try_from(e.health_status)
            .map_or_else(|_| e.health_status.to_string(), |h| h.as_str_name().to_string());
        m.insert("health_status".into(), json!(name));
    }
    if let Some(md) = &e.metadata {
        let mut all = Map::new();
        for (ns, fields) in &md.filter_metadata {
            let f: Map<String, Value> = fields.fields.iter().map(|(k, v)| (k.clone(), struct_value(v))).collect();
            all.insert(ns.clone(), Value::Object(f));
        }
        m.insert("metadata".into(), Value::Object(all));
    }
    Value::Object(m)
}

fn struct_value(v: &pbwk::Value) -> Value {
    use pbwk::value::Kind;
    match &v.kind {
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => {
            Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), struct_value(v))).collect())
        }
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(struct_value).collect()),
        Some(Kind::NullValue(_)) | None => Value::Null,
    }
}

pub fn dump_listener(l: &listener::Listener) -> Value {
    let mut m = Map::new();
    put(&mut m, "address", address(l.address.as_ref()));
    let mut managers = Vec::new();
    let mut tcp_proxies = Vec::new();
    for chain in &l.filter_chains {
        for f in &chain.filters {
            let Some(listener::filter::ConfigType::TypedConfig(any)) = &f.config_type else { continue };
            if any.type_url == tcp::TcpProxy::type_url() {
                tcp_proxies.push(match decode::<tcp::TcpProxy>(any) {
                    Ok(t) => {
                        let mut tm = Map::new();
                        tm.insert("stat_prefix".into(), json!(t.stat_prefix));
                        if let Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(c)) = &t.cluster_specifier {
                            tm.insert("cluster".into(), json!(c));
                        }
                        put(&mut tm, "idle_timeout", duration(t.idle_timeout.as_ref()));
                        let logs: Vec<&str> = t.access_log.iter().map(|l| l.name.as_str()).collect();
                        tm.insert("access_log".into(), json!(logs));
                        Value::Object(tm)
                    }
                    Err(e) => json!({ "filter": f.name, "error": e }),
                });
                continue;
            }
            managers.push(match decode::<hcm::HttpConnectionManager>(any) {
                Ok(h) => {
                    let mut hm = Map::new();
                    hm.insert("stat_prefix".into(), json!(h.stat_prefix));
                    if let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) = &h.route_specifier {
                        hm.insert("rds".into(), json!(rds.route_config_name));
                    }
                    let filters: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
                    hm.insert("http_filters".into(), json!(filters));
                    if let Some(t) = &h.tracing {
                        hm.insert("tracing".into(), dump_tracing(t));
                    }
                    Value::Object(hm)
                }
                Err(e) => json!({ "filter": f.name, "error": e }),
            });
        }
    }
    if !tcp_proxies.is_empty() {
        m.insert("tcp_proxies".into(), json!(tcp_proxies));
    }
    if !managers.is_empty() || tcp_proxies.is_empty() {
        m.insert("http_connection_managers".into(), json!(managers));
    }
    Value::Object(m)
}

fn dump_tracing(t: &hcm::http_connection_manager::Tracing) -> Value {
    use envoy_types::pb::envoy::config::trace::v3::{ZipkinConfig, tracing::http::ConfigType};
    let mut m = Map::new();
    if let Some(p) = &t.provider {
        let zipkin = match &p.config_type {
            Some(ConfigType::TypedConfig(any)) => decode::<ZipkinConfig>(any),
            None => Err("no provider configuration".into()),
        };
        let provider = match zipkin {
            Ok(z) => json!({ "cluster": z.collector_cluster, "path": z.collector_endpoint }),
            Err(e) => json!({ "name": p.name, "error": e }),
        };
        m.insert("zipkin".into(), provider);
    }
    put(&mut m, "sampling", t.random_sampling.as_ref().map_or(Value::Null, |p| json!(p.value)));
    Value::Object(m)
}

pub fn dump_route_configuration(rc: &route::RouteConfiguration) -> Value {
    let hosts: Vec<Value> = rc
        .virtual_hosts
        .iter()
        .map(|vh| {
            let routes: Vec<Value> = vh.routes.iter().map(dump_route).collect();
            json!({ "name": vh.name, "domains": vh.domains, "routes": routes })
        })
        .collect();
    json!({ "virtual_hosts": hosts })
}

fn string_match(m: Option<&matcher::StringMatcher>) -> (&'static str, Value) {
    use matcher::string_matcher::MatchPattern;
    match m.and_then(|m| m.match_pattern.as_ref()) {
        Some(MatchPattern::Exact(v)) => ("exact", json!(v)),
        Some(MatchPattern::Prefix(v)) => ("prefix", json!(v)),
        Some(MatchPattern::Suffix(v)) => ("suffix", json!(v)),
        Some(MatchPattern::Contains(v)) => ("contains", json!(v)),
        Some(MatchPattern::SafeRegex(r)) => ("regex", json!(r.regex)),
        _ => ("unknown", Value::Null),
    }
}

fn dump_route(r: &route::Route) -> Value {
    use route::header_matcher::HeaderMatchSpecifier;
    use route::query_parameter_matcher::QueryParameterMatchSpecifier;
    use route::route_match::PathSpecifier;
    let mut mm = Map::new();
    let rm = r.r#match.clone().unwrap_or_default();
    match &rm.path_specifier {
        Some(PathSpecifier::Prefix(p)) => put(&mut mm, "prefix", json!(p)),
        Some(PathSpecifier::Path(p)) => put(&mut mm, "path", json!(p)),
        Some(PathSpecifier::SafeRegex(re)) => put(&mut mm, "regex", json!(re.regex)),
        _ => {}
    }
    let headers: Vec<Value> = rm
        .headers
        .iter()
        .map(|h| {
            let mut hm = Map::new();
            hm.insert("name".into(), json!(h.name));
            match &h.header_match_specifier {
                Some(HeaderMatchSpecifier::PresentMatch(p)) => put(&mut hm, "present", json!(p)),
                Some(HeaderMatchSpecifier::StringMatch(sm)) => {
                    let (k, v) = string_match(Some(sm));
                    put(&mut hm, k, v);
                }
                _ => {}
            }
            if h.invert_match {
                hm.insert("invert".into(), json!(true));
            }
            Value::Object(hm)
        })
        .collect();
    if !headers.is_empty() {
        mm.insert("headers".into(), json!(headers));
    }
    let query: Vec<Value> = rm
        .query_parameters
        .iter()
        .map(|q| {
            let mut qm = Map::new();
            qm.insert("name".into(), json!(q.name));
            match &q.query_parameter_match_specifier {
                Some(QueryParameterMatchSpecifier::PresentMatch(p)) => put(&mut qm, "present", json!(p)),
                Some(QueryParameterMatchSpecifier::StringMatch(sm)) => {
                    let (k, v) = string_match(Some(sm));
                    put(&mut qm, k, v);
                }
                None => {}
            }
            Value::Object(qm)
        })
        .collect();
    if !query.is_empty() {
        mm.insert("query".into(), json!(query));
    }
    let mut out = Map::new();
    out.insert("match".into(), Value::Object(mm));
    match &r.action {
        Some(route::route::Action::Route(a)) => put(&mut out, "route", dump_route_action(a)),
        Some(route::route::Action::Redirect(rd)) => put(&mut out, "redirect", dump_redirect(rd)),
        Some(route::route::Action::DirectResponse(d)) => {
            let mut dm = Map::new();
            dm.insert("status".into(), json!(d.status));
            put(&mut dm, "body", d.body.as_ref().map_or(Value::Null, data_source));
            out.insert("direct_response".into(), Value::Object(dm));
        }
        _ => {}
    }
    if !r.request_headers_to_add.is_empty() {
        let add: Map<String, Value> = r
            .request_headers_to_add
            .iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), json!(h.value)))
            .collect();
        out.insert("request_headers_add".into(), Value::Object(add));
    }
    Value::Object(out)
}

fn dump_route_action(a: &route::RouteAction) -> Value {
    use route::route_action::{ClusterSpecifier, HostRewriteSpecifier};
    let mut m = Map::new();
    match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => put(&mut m, "cluster", json!(c)),
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let ws: Vec<Value> = w
                .clusters
                .iter()
                .map(|c| json!({ "cluster": c.name, "weight": c.weight.as_ref().map(|w| w.value) }))
                .collect();
            put(&mut m, "weighted_clusters", json!(ws));
        }
        _ => {}
    }
    put(&mut m, "timeout", duration(a.timeout.as_ref()));
    if !a.prefix_rewrite.is_empty() {
        m.insert("prefix_rewrite".into(), json!(a.prefix_rewrite));
    }
    if let Some(HostRewriteSpecifier::HostRewriteLiteral(h)) = &a.host_rewrite_specifier {
        m.insert("host_rewrite".into(), json!(h));
    }
    if let Some(rp) = &a.retry_policy {
        let mut rm = Map::new();
        put(&mut rm, "count", u32v(rp.num_retries.as_ref()));
        rm.insert("on".into(), json!(rp.retry_on.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>()));
        put(&mut rm, "per_try_timeout", duration(rp.per_try_timeout.as_ref()));
        m.insert("retries".into(), Value::Object(rm));
    }
    Value::Object(m)
}

fn dump_redirect(rd: &route::RedirectAction) -> Value {
    use route::redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let mut m = Map::new();
    if !rd.host_redirect.is_empty() {
        m.insert("host".into(), json!(rd.host_redirect));
    }
    if let Some(PathRewriteSpecifier::PathRedirect(p)) = &rd.path_rewrite_specifier {
        m.insert("path".into(), json!(p));
    }
    if let Some(SchemeRewriteSpecifier::HttpsRedirect(true)) = &rd.scheme_rewrite_specifier {
        m.insert("https".into(), json!(true));
    }
    let code = match RedirectResponseCode::try_from(rd.response_code) {
        Ok(RedirectResponseCode::Found) => 302,
        Ok(RedirectResponseCode::SeeOther) => 303,
        Ok(RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(RedirectResponseCode::PermanentRedirect) => 308,
        _ => 301,
    };
    m.insert("code".into(), json!(code));
    Value::Object(m)
}

#[cfg(test)]
mod tests;
