use super::*;
use crate::xds::snapshot::testing::mk_translated;

fn source() -> core::ConfigSource {
    rest_source("devbridge_xds")
}

#[test]
fn paths_name_the_four_types() {
    assert_eq!(PATHS.map(|p| type_of_path(p).unwrap()), ResourceType::ALL);
    assert_eq!(type_of_path("/v3/discovery:secrets"), None);
    assert_eq!(type_of_path("/v2/discovery:clusters"), None);
}

#[test]
fn clusters_and_listeners_name_the_rest_source_instead_of_ads() {
    let s = mk_translated();
    let cds = respond(&s, ResourceType::Cluster, &[], &source());
    assert_eq!(cds.resources.len(), s.resources(ResourceType::Cluster).items.len());
    for any in &cds.resources {
        let c = Cluster::decode(any.value.as_slice()).unwrap();
        if let Some(eds) = c.eds_cluster_config {
            assert_eq!(eds.eds_config, Some(source()), "{}", c.name);
        }
    }
    let lds = respond(&s, ResourceType::Listener, &[], &source());
    let mut managers = 0;
    for any in &lds.resources {
        let l = Listener::decode(any.value.as_slice()).unwrap();
        for f in l.filter_chains.iter().flat_map(|c| &c.filters) {
            let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(a)) = &f.config_type
            else {
                continue;
            };
            if a.type_url == hcm::HttpConnectionManager::type_url() {
                let m = hcm::HttpConnectionManager::decode(a.value.as_slice()).unwrap();
                let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) = m.route_specifier else { panic!() };
                assert_eq!(rds.config_source, Some(source()));
                managers += 1;
            }
        }
    }
    assert!(managers > 0);
}

/// Two clusters, each with its load assignment.
fn mk_two() -> Snapshot {
    let src = r#"
[zones.local]
[proxies.p]
zone = "local"
domains = ["a.test:8080"]
[[domains]]
name = "a.test:8080"
routes = [{ prefix = "/a", cluster = "a" }, { prefix = "/", cluster = "b" }]
[clusters.a.static]
endpoints = [{ address = "127.0.0.1:9001" }]
[clusters.b.static]
endpoints = [{ address = "127.0.0.1:9002" }]
"#;
    let profile = crate::profile::parse_profile("t.toml", "t", src).expect("valid profile");
    crate::xds::translate::translate_proxy(&profile, &profile.proxies["p"], &crate::model::EndpointSet::new())
        .expect("consistent")
}

#[test]
fn named_resources_only_and_the_same_content_the_same_version() {
    let s = mk_two();
    let all: Vec<String> = s.resources(ResourceType::Endpoint).names().into_iter().collect();
    let one = respond(&s, ResourceType::Endpoint, &all[..1], &source());
    assert_eq!(one.resources.len(), 1);
    let again = respond(&s, ResourceType::Endpoint, &[all[0].clone(), all[0].clone(), "missing".into()], &source());
    assert_eq!(again, one, "duplicates and unknown names change nothing");
    assert_eq!(all.len(), 2);
    let both = respond(&s, ResourceType::Endpoint, &all, &source());
    assert_eq!(both.resources.len(), 2);
    assert_ne!(both.version_info, one.version_info);
    assert_eq!(both.type_url, ResourceType::Endpoint.type_url());
}
