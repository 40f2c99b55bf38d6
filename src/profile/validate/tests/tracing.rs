//! `[tracing]`: the Zipkin collector and the sampling share.

use super::*;

#[test]
fn tracing_names_a_collector_cluster_and_defaults_to_sampling_everything() {
    let p = mk_profile(
        r#"
        [tracing]
        zipkin = { cluster = "zipkin", path = "/api/v2/spans" }

        [clusters.zipkin.static]
        endpoints = [{ address = "127.0.0.1:9411" }]
        "#,
    );
    assert_eq!(
        p.tracing,
        Some(Tracing { zipkin: Zipkin { cluster: "zipkin".into(), path: "/api/v2/spans".into() }, sampling: 100.0 })
    );
}

#[test]
fn sampling_is_a_percentage_and_an_integer_will_do() {
    let p = mk_profile(
        r#"
        [tracing]
        zipkin = { cluster = "zipkin", path = "/api/v2/spans" }
        sampling = 25

        [clusters.zipkin.dns]
        hosts = ["localhost:9411"]
        "#,
    );
    assert_eq!(p.tracing.map(|t| t.sampling), Some(25.0));
}

#[test]
fn a_profile_without_tracing_has_none() {
    assert_eq!(mk_profile("[zones.dev]").tracing, None);
}

#[test]
fn tracing_collector_path_and_sampling_are_checked() {
    let errors = mk_errors(
        r#"
        [tracing]
        zipkin = { cluster = "zipkn", path = "api/v2/spans" }
        sampling = 100.5

        [clusters.zipkin.static]
        endpoints = [{ address = "127.0.0.1:9411" }]
        "#,
    );
    assert_eq!(
        errors,
        [
            r#"t.toml:2:22: tracing.zipkin.cluster: "zipkn" is not a cluster; known clusters: zipkin"#,
            r#"t.toml:2:38: tracing.zipkin.path: "api/v2/spans" must start with '/'"#,
            r#"t.toml:3:12: tracing.sampling: 100.5 is out of range; expected a percentage from 0 to 100"#,
        ]
    );
}

#[test]
fn tracing_needs_a_zipkin_collector() {
    let errors = mk_errors(
        r#"
        [tracing]
        sampling = 10
        "#,
    );
    assert_eq!(errors, ["t.toml:1:1: tracing: missing field `zipkin`"]);
}
