//! Proxies: TCP services.

use super::*;

const CLUSTERS: &str = r#"
[zones.dev]
[[domains]]
name = "web.test:8080"
routes = [{ prefix = "/", cluster = "web" }]
[clusters.web.static]
endpoints = [{ address = "127.0.0.1:9001" }]
[clusters.db.static]
endpoints = [{ address = "127.0.0.1:5432" }]
"#;

#[test]
fn tcp_services_are_read_in_order() {
    let p = mk_profile(&format!(
        r#"{CLUSTERS}
        [proxies.p]
        zone = "dev"
        domains = ["web.test:8080"]
        tcp = [
          {{ name = "postgres", port = 15432, cluster = "db", idle_timeout = "30m" }},
          {{ name = "cache", port = 16379, cluster = "web" }},
        ]
        "#
    ));
    let p_tcp = &p.proxies["p"].tcp;
    assert_eq!(
        p_tcp,
        &[
            TcpService {
                name: "postgres".into(),
                port: 15432,
                cluster: "db".into(),
                idle_timeout: Some(Duration::from_secs(1800))
            },
            TcpService { name: "cache".into(), port: 16379, cluster: "web".into(), idle_timeout: None },
        ]
    );
    // A TCP service's cluster is served to the proxy like a route's.
    let names: Vec<&str> = p.clusters_of(&p.proxies["p"]).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["db", "web"]);
}

#[test]
fn tcp_services_report_every_mistake_located() {
    let errors = mk_errors(&format!(
        r#"{CLUSTERS}
        [proxies.p]
        zone = "dev"
        domains = ["web.test:8080"]
        [[proxies.p.tcp]]
        name = "pg"
        port = 8080
        cluster = "dbb"
        [[proxies.p.tcp]]
        name = "pg"
        port = 0
        cluster = "db"
        idle_timeout = "long"
        [[proxies.p.tcp]]
        name = "a b"
        port = 15432
        cluster = "db"
        [[proxies.p.tcp]]
        name = "other"
        port = 15432
        cluster = "db"
        "#
    ));
    assert_eq!(
        errors,
        [
            r#"t.toml:15:16: proxies.p.tcp[0].port: 8080 is the port of domain "web.test:8080" on this proxy; expected a port of its own"#,
            r#"t.toml:16:19: proxies.p.tcp[0].cluster: "dbb" is not a cluster; known clusters: db, web"#,
            r#"t.toml:18:16: proxies.p.tcp[1].name: "pg" names another TCP service of this proxy too"#,
            r#"t.toml:19:16: proxies.p.tcp[1].port: 0 is out of range; expected 1 to 65535"#,
            r#"t.toml:21:24: proxies.p.tcp[1].idle_timeout: "long" is not a duration; expected e.g. "250ms", "5s", "1m""#,
            r#"t.toml:23:16: proxies.p.tcp[2].name: "a b" is not a valid name; expected letters, digits, '-', '_' or '.'"#,
            r#"t.toml:28:16: proxies.p.tcp[3].port: 15432 is also the port of TCP service "a b"; expected a port of its own"#,
        ]
    );
}

#[test]
fn an_unknown_key_in_a_tcp_service_is_named_with_the_nearest() {
    let errors = mk_errors(&format!(
        r#"{CLUSTERS}
        [proxies.p]
        zone = "dev"
        tcp = [{{ name = "pg", port = 15432, clustr = "db" }}]
        "#
    ));
    assert_eq!(
        errors,
        [
            "t.toml:12:16: proxies.p.tcp[0].name: missing field `cluster`",
            r#"t.toml:12:45: proxies.p.tcp[0].clustr: unknown key "clustr"; did you mean "cluster"?"#,
        ]
    );
}

// Proxyless gRPC clients.

#[test]
fn a_grpc_proxy_takes_domains_and_no_listeners() {
    let p = mk_profile(&format!(
        r#"{CLUSTERS}
        [proxies.app]
        zone = "dev"
        kind = "grpc"
        domains = ["web.test:8080"]
        [proxies.sidecar]
        zone = "dev"
        domains = ["web.test:8080"]
        "#
    ));
    assert_eq!(p.proxies["app"].kind, ProxyKind::Grpc);
    assert_eq!(p.proxies["sidecar"].kind, ProxyKind::Envoy);
}

#[test]
fn a_grpc_proxy_is_told_each_setting_grpc_cannot_honour() {
    let errors = mk_errors(
        r#"
        [zones.dev]
        [proxies.app]
        zone = "dev"
        kind = "grpc"
        admin = "127.0.0.1:9902"
        domains = ["api.test:50051"]
        tcp = [{ name = "db", port = 15432, cluster = "dns" }]
        [[domains]]
        name = "api.test:50051"
        [[domains.routes]]
        prefix = "/a"
        methods = ["GET"]
        cluster = "dns"
        [[domains.routes]]
        prefix = "/b"
        direct_response = { status = 200 }
        [[domains.routes]]
        prefix = "/c"
        cluster = "random"
        prefix_rewrite = "/x"
        retries = { count = 1, per_try_timeout = "1s" }
        [clusters.dns.dns]
        hosts = ["db.internal:5432"]
        [clusters.random]
        lb = "random"
        [clusters.random.static]
        endpoints = [{ address = "127.0.0.1:9001" }]
        "#,
    );
    let at = |col: usize, what: &str| {
        format!(
            r#"t.toml:6:{col}: proxies.app.domains[0]: domain "api.test:50051" {what} (this proxy is a proxyless gRPC client)"#
        )
    };
    assert_eq!(
        errors,
        [
            r#"t.toml:5:9: proxies.app.admin: a proxyless gRPC client (kind = "grpc") opens no listeners of its own; remove admin"#.to_string(),
            at(12, "routes[0] matches methods; every gRPC call is a POST"),
            at(12, "routes[1] answers directly; a gRPC client can only forward a call to a cluster"),
            at(12, "routes[2] sets prefix_rewrite, which gRPC clients do not support"),
            at(12, "routes[2] sets retries.per_try_timeout, which gRPC clients do not support"),
            at(
                12,
                "cluster \"dns\" resolves host names itself (source dns); gRPC clients take endpoints over EDS: \
                 use a static, kubernetes or registered source"
            ),
            at(12, "cluster \"random\" balances at random; gRPC clients support round_robin, least_request and ring_hash"),
            r#"t.toml:7:8: proxies.app.tcp: a proxyless gRPC client (kind = "grpc") opens no listeners of its own: serve TCP services from an Envoy proxy"#.to_string(),
        ]
    );
}

#[test]
fn a_proxy_kind_is_envoy_or_grpc() {
    let errors = mk_errors(&format!(
        r#"{CLUSTERS}
        [proxies.app]
        zone = "dev"
        kind = "grcp"
        "#
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].ends_with(r#"proxies.app.kind: "grcp" is not allowed; did you mean "grpc"?"#), "{errors:?}");
}
