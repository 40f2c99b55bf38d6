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
