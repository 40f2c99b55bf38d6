//! Clusters: sources (static, dns, kubernetes, kubernetes_service) and their options.

use super::*;

#[test]
fn cluster_without_a_source_is_rejected() {
    let errors = mk_errors(
        r#"
        [clusters.edge]
        lb = "random"
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:1:11: clusters.edge: has 0 sources; expected exactly one of [clusters.edge.static], \
             [clusters.edge.dns], [clusters.edge.kubernetes], [clusters.edge.kubernetes_service] or [clusters.edge.registered]"]
    );
}

#[test]
fn cluster_with_two_sources_is_rejected() {
    let errors = mk_errors(
        r#"
        [clusters.edge.static]
        endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.edge.dns]
        hosts = ["edge.svc:80"]
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:1:11: clusters.edge: has 2 sources; expected exactly one of [clusters.edge.static], \
             [clusters.edge.dns], [clusters.edge.kubernetes], [clusters.edge.kubernetes_service] or [clusters.edge.registered]"]
    );
}

#[test]
fn cluster_options_are_checked() {
    let errors = mk_errors(
        r#"
        [clusters.edge]
        lb = "fastest"
        connect_timeout = "0s"
        circuit_breakers = { max_connections = -1, max_requests = 10 }
        health_check = { path = "healthz", interval = "often", unhealthy_threshold = 0 }
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:6: clusters.edge.lb: "fastest" is not allowed; expected one of: round_robin, least_request, random, ring_hash, maglev"#,
            r#"t.toml:3:19: clusters.edge.connect_timeout: a duration of zero is not allowed; expected e.g. "250ms""#,
            r#"t.toml:4:40: clusters.edge.circuit_breakers.max_connections: -1 is out of range; expected 0 to 4294967295"#,
            r#"t.toml:5:25: clusters.edge.health_check.path: "healthz" must start with '/'"#,
            r#"t.toml:5:47: clusters.edge.health_check.interval: "often" is not a duration; expected e.g. "250ms", "5s", "1m""#,
            r#"t.toml:5:78: clusters.edge.health_check.unhealthy_threshold: 0 is out of range; expected 1 to 1000"#,
        ]
    );
}

#[test]
fn cluster_options_are_parsed() {
    let p = mk_profile(
        r#"
        [clusters.grpc]
        lb = "least_request"
        connect_timeout = "2s"
        http2 = true
        circuit_breakers = { max_requests = 10 }
        health_check = { path = "/healthz", host = "grpc.test", unhealthy_threshold = 3 }
        tls = { sni = "grpc.test" }
        static.endpoints = [{ address = "10.0.0.1:443", weight = 5 }]
        "#,
    );
    assert_eq!(
        p.clusters["grpc"],
        Cluster {
            name: "grpc".into(),
            source: Source::Static(vec![Endpoint { weight: Some(5), ..mk_endpoint("10.0.0.1:443") }]),
            lb: LbPolicy::LeastRequest,
            connect_timeout: Duration::from_secs(2),
            http2: true,
            health_check: Some(HealthCheck {
                path: Some("/healthz".into()),
                host: Some("grpc.test".into()),
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(1),
                healthy_threshold: 1,
                unhealthy_threshold: 3,
            }),
            circuit_breakers: Some(CircuitBreakers { max_requests: Some(10), ..Default::default() }),
            tls: Some(UpstreamTls { sni: Some("grpc.test".into()), ca_file: None }),
            // A health check's path is probed by default.
            probe: Some(ProbeSpec {
                probe: Probe::Http { path: "/healthz".into(), host: Some("grpc.test".into()) },
                interval: None,
                timeout: None,
            }),
            outlier_detection: None,
            zone_priority: vec![],
            subset_keys: vec![],
            subset_fallback: SubsetFallback::Any,
        }
    );
}

#[test]
fn static_endpoints_are_checked() {
    let errors = mk_errors(
        r#"
        [clusters.edge.static]
        endpoints = [
          { address = "127.0.0.1:9001" },
          { address = "edge:9001" },
          { address = "127.0.0.1:9002", weight = 0 },
        ]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:4:15: clusters.edge.static.endpoints[1].address: "edge:9001" is not an ip:port address, e.g. 127.0.0.1:9001"#,
            r#"t.toml:5:42: clusters.edge.static.endpoints[2].weight: 0 is out of range; expected 1 to 128"#,
        ]
    );
}

#[test]
fn endpoint_listed_twice_is_rejected() {
    let errors = mk_errors(
        r#"
        [clusters.edge.static]
        endpoints = [
          { address = "127.0.0.1:9001", zone = "a" },
          { address = "127.0.0.1:9001", zone = "b" },
        ]
        "#,
    );
    assert_eq!(errors, ["t.toml:4:3: clusters.edge.static.endpoints[1]: endpoint 127.0.0.1:9001 is listed twice"]);
}

#[test]
fn dns_hosts_must_be_host_port() {
    let errors = mk_errors(
        r#"
        [clusters.edge.dns]
        hosts = ["edge.svc", "bad host:80", "edge.svc:0", "edge.svc:8080"]
        lookup = "fast"
        [clusters.none.dns]
        hosts = []
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:10: clusters.edge.dns.hosts[0]: "edge.svc" is not host:port, e.g. "films.svc:8080""#,
            r#"t.toml:2:22: clusters.edge.dns.hosts[1]: "bad host:80" is not host:port, e.g. "films.svc:8080""#,
            r#"t.toml:2:37: clusters.edge.dns.hosts[2]: "edge.svc:0" is not host:port, e.g. "films.svc:8080""#,
            r#"t.toml:3:10: clusters.edge.dns.lookup: "fast" is not allowed; expected one of: strict, logical"#,
            r#"t.toml:4:1: clusters.none.dns.hosts: is empty; expected at least one host:port"#,
        ]
    );
}

#[test]
fn logical_dns_with_several_hosts_is_rejected() {
    let errors = mk_errors(
        r#"
        [clusters.edge.dns]
        hosts = ["a.svc:80", "b.svc:80"]
        lookup = "logical"
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:1:1: clusters.edge.dns.hosts: has 2 hosts; lookup = "logical" takes exactly one (use "strict" for several)"#
        ]
    );
}

#[test]
fn dns_source_is_parsed() {
    let p = mk_profile(
        r#"
        [clusters.edge.dns]
        hosts = ["Edge.svc:8080", "[::1]:80"]
        "#,
    );
    assert_eq!(
        p.clusters["edge"].source,
        Source::Dns { hosts: vec![("Edge.svc".into(), 8080), ("::1".into(), 80)], lookup: DnsLookup::Strict }
    );
}

#[test]
fn kubernetes_source_fields_are_checked() {
    let errors = mk_errors(
        r#"
        [clusters.a.kubernetes]
        namespace = "Edge"
        namespaces = ["ok", "-bad"]
        selector = "app=edge,"
        port = 0
        address = "node"
        [clusters.b.kubernetes]
        namespaces = ["ok", "not_ok"]
        selector = "app in edge"
        port = "HTTP"
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:13: clusters.a.kubernetes.namespace: give either namespace or namespaces, not both"#,
            r#"t.toml:2:13: clusters.a.kubernetes.namespace: "Edge" is not a valid namespace (a DNS label)"#,
            r#"t.toml:3:21: clusters.a.kubernetes.namespaces[1]: "-bad" is not a valid namespace (a DNS label)"#,
            r#"t.toml:4:12: clusters.a.kubernetes.selector: "app=edge," is not a label selector: term "" is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key"#,
            r#"t.toml:5:8: clusters.a.kubernetes.port: 0 is not a container port; expected a number 1-65535 or a port name (up to 15 lowercase letters, digits, '-')"#,
            r#"t.toml:6:11: clusters.a.kubernetes.address: "node" is not allowed; expected one of: pod, node-internal, node-external"#,
            r#"t.toml:8:21: clusters.b.kubernetes.namespaces[1]: "not_ok" is not a valid namespace (a DNS label)"#,
            r#"t.toml:9:12: clusters.b.kubernetes.selector: "app in edge" is not a label selector: term "app in edge" is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key"#,
            r#"t.toml:10:8: clusters.b.kubernetes.port: "HTTP" is not a container port; expected a number 1-65535 or a port name (up to 15 lowercase letters, digits, '-')"#,
        ]
    );
}

#[test]
fn kubernetes_source_is_parsed_with_defaults() {
    let p = mk_profile(
        r#"
        [clusters.edge.kubernetes]
        selector = "app=edge-envoy, tier in (a, b)"
        port = "http"
        "#,
    );
    assert_eq!(
        p.clusters["edge"].source,
        Source::Kubernetes(KubernetesSource {
            kubeconfig: None,
            context: None,
            namespaces: vec!["default".into()],
            selector: "app=edge-envoy, tier in (a, b)".into(),
            field_selector: None,
            port: PortRef::Name("http".into()),
            address: AddressKind::Pod,
            host_network: true,
            node_zones: false,
        })
    );
}

#[test]
fn kubernetes_source_takes_node_addresses_and_zones() {
    let p = mk_profile(
        r#"
        [clusters.edge.kubernetes]
        kubeconfig = "/tmp/kubeconfig"
        context = "staging"
        namespaces = ["edge", "edge-canary"]
        selector = "app=edge-envoy"
        field_selector = "spec.nodeName!=bad"
        port = 8080
        address = "node-external"
        host_network = false
        node_zones = true
        "#,
    );
    let want = KubernetesSource {
        kubeconfig: Some("/tmp/kubeconfig".into()),
        context: Some("staging".into()),
        namespaces: vec!["edge".into(), "edge-canary".into()],
        selector: "app=edge-envoy".into(),
        field_selector: Some("spec.nodeName!=bad".into()),
        port: PortRef::Number(8080),
        address: AddressKind::NodeExternal,
        host_network: false,
        node_zones: true,
    };
    assert_eq!(p.clusters["edge"].source, Source::Kubernetes(want.clone()));
    assert!(want.needs_nodes());
}

#[test]
fn kubernetes_service_source_is_parsed_with_defaults() {
    let p = mk_profile(
        r#"
        [clusters.films.kubernetes_service]
        service = "films"
        port = "http"
        "#,
    );
    assert_eq!(
        p.clusters["films"].source,
        Source::KubernetesService(KubernetesServiceSource {
            kubeconfig: None,
            context: None,
            namespace: "default".into(),
            service: "films".into(),
            port: PortRef::Name("http".into()),
        })
    );
}

#[test]
fn kubernetes_service_source_fields_are_checked() {
    let errors = mk_errors(
        r#"
        [clusters.a.kubernetes_service]
        namespace = "Films"
        service = "9films"
        port = 70000
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:13: clusters.a.kubernetes_service.namespace: "Films" is not a valid namespace (a DNS label)"#,
            r#"t.toml:3:11: clusters.a.kubernetes_service.service: "9films" is not a service name (a DNS label starting with a letter)"#,
            r#"t.toml:4:8: clusters.a.kubernetes_service.port: 70000 is not a service port; expected a number 1-65535 or a port name (up to 15 lowercase letters, digits, '-')"#,
        ]
    );
}

#[test]
fn kubernetes_service_source_rejects_pod_selection_keys() {
    let errors = mk_errors(
        r#"
        [clusters.a.kubernetes_service]
        service = "films"
        selector = "app=films"
        port = 80
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:3:1: clusters.a.kubernetes_service.selector: unknown key "selector"; expected one of: kubeconfig, context, namespace, service, port"#
        ]
    );
}

#[test]
fn cluster_with_pods_and_service_sources_is_rejected() {
    let errors = mk_errors(
        r#"
        [clusters.edge.kubernetes]
        selector = "app=edge"
        port = 80
        [clusters.edge.kubernetes_service]
        service = "edge"
        port = 80
        "#,
    );
    assert_eq!(
        errors,
        ["t.toml:1:11: clusters.edge: has 2 sources; expected exactly one of [clusters.edge.static], \
             [clusters.edge.dns], [clusters.edge.kubernetes], [clusters.edge.kubernetes_service] or [clusters.edge.registered]"]
    );
}

#[test]
fn label_selectors_follow_kubernetes_syntax() {
    for ok in ["app=a", "app==a", "app!=a", "app", "!app", "app in (a, b)", "app notin (a,b)", "k8s.io/app=a,tier"] {
        assert_eq!(check_label_selector(ok), Ok(()), "{ok}");
    }
    assert_eq!(check_label_selector(" "), Err(r#"it is empty; expected e.g. "app=edge-envoy""#.to_string()));
    assert_eq!(
        check_label_selector("app=a b"),
        Err(r#"term "app=a b" is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key"#.to_string())
    );
    assert_eq!(
        check_label_selector("a/b/c=d"),
        Err(r#"term "a/b/c=d" is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key"#.to_string())
    );
}

#[test]
fn registered_source_takes_no_keys() {
    let errors = mk_errors(
        r#"
        [clusters.svc.registered]
        endpoints = []
        "#,
    );
    assert_eq!(
        errors,
        [r#"t.toml:2:1: clusters.svc.registered.endpoints: unknown key "endpoints"; this table takes no keys"#]
    );
}

#[test]
fn probe_takes_false_tcp_or_an_http_get() {
    let p = mk_profile(
        r#"
        [clusters.off]
        probe = false
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.tcp]
        probe = "tcp"
        health_check = { path = "/healthz" }
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.get]
        probe = { path = "/ready", host = "edge.test", interval = "30s", timeout = "1s" }
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.paced]
        probe = { interval = "1m" }
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.names]
        dns.hosts = ["edge.test:80"]
        "#,
    );
    let probe = |c: &str| p.clusters[c].probe.clone();
    assert_eq!(probe("off"), None);
    assert_eq!(probe("tcp"), Some(ProbeSpec { probe: Probe::Tcp, interval: None, timeout: None }));
    assert_eq!(
        probe("get"),
        Some(ProbeSpec {
            probe: Probe::Http { path: "/ready".into(), host: Some("edge.test".into()) },
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(1)),
        })
    );
    assert_eq!(
        probe("paced"),
        Some(ProbeSpec { probe: Probe::Tcp, interval: Some(Duration::from_secs(60)), timeout: None })
    );
    // Envoy resolves DNS clusters; there is nothing to probe.
    assert_eq!(probe("names"), None);
}

#[test]
fn probe_errors_are_located() {
    let errors = mk_errors(
        r#"
        [clusters.a]
        probe = "icmp"
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.b]
        probe = { path = "ready", interval = "2s", timeout = "5s" }
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.c]
        probe = "http"
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        [clusters.d]
        probe = "tcp"
        dns.hosts = ["edge.test:80"]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:9: clusters.a.probe: "icmp" is not a probe; expected false, "tcp", or { path = "/healthz" } for an HTTP GET"#,
            r#"t.toml:5:18: clusters.b.probe.path: "ready" must start with '/'"#,
            r#"t.toml:5:54: clusters.b.probe.timeout: 5s is not shorter than the interval 2s"#,
            r#"t.toml:8:9: clusters.c.probe: "http" needs a path: write probe = { path = "/healthz" }"#,
            r#"t.toml:11:9: clusters.d.probe: a dns cluster is not probed: Envoy resolves the names, devbridge has no addresses"#,
        ]
    );
}

#[test]
fn an_unknown_probe_key_is_named() {
    let errors = mk_errors(
        r#"
        [clusters.a]
        probe = { paht = "/healthz" }
        static.endpoints = [{ address = "127.0.0.1:9001" }]
        "#,
    );
    assert_eq!(errors, [r#"t.toml:2:11: clusters.a.probe.paht: unknown key "paht"; did you mean "path"?"#]);
}

#[test]
fn a_health_check_is_http_with_a_path_or_tcp_by_connect() {
    let p = mk_profile(
        r#"
        [clusters.db]
        health_check = { tcp = true, interval = "2s" }
        static.endpoints = [{ address = "127.0.0.1:5432" }]
        "#,
    );
    let hc = p.clusters["db"].health_check.clone().unwrap();
    assert_eq!((hc.path, hc.host, hc.interval), (None, None, Duration::from_secs(2)));
    // With no path the laptop's probe is a TCP connect too.
    assert_eq!(p.clusters["db"].probe.as_ref().map(|p| p.probe.clone()), Some(Probe::Tcp));

    let errors = mk_errors(
        r#"
        [clusters.a]
        health_check = { interval = "2s" }
        static.endpoints = [{ address = "127.0.0.1:5432" }]
        [clusters.b]
        health_check = { path = "/healthz", tcp = true }
        static.endpoints = [{ address = "127.0.0.1:5432" }]
        [clusters.c]
        health_check = { tcp = true, host = "db.test" }
        static.endpoints = [{ address = "127.0.0.1:5432" }]
        [clusters.d]
        health_check = { tcp = false }
        static.endpoints = [{ address = "127.0.0.1:5432" }]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:16: clusters.a.health_check: expected path = "/healthz" (an HTTP GET) or tcp = true (a TCP connect)"#,
            r#"t.toml:5:43: clusters.b.health_check.tcp: a check is HTTP (path) or TCP (tcp = true), not both; remove one"#,
            r#"t.toml:8:37: clusters.c.health_check.host: a TCP check sends no request: remove host"#,
            r#"t.toml:11:24: clusters.d.health_check.tcp: tcp = false needs a path: write path = "/healthz""#,
        ]
    );
}
