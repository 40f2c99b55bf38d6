use super::*;
use crate::xds::snapshot::testing::mk_translated;

#[test]
fn each_type_is_laid_out_as_envoys_own_dump_with_every_resource() {
    let s = mk_translated();
    let dump = dump_snapshot(&s);
    assert_eq!(dump["version"], s.version);
    let configs = dump["configs"].as_array().unwrap();
    assert_eq!(
        configs.iter().map(|c| c["@type"].as_str().unwrap()).collect::<Vec<_>>(),
        ResourceType::ALL.map(dump_type_url)
    );
    let cluster = &configs[0]["dynamic_active_clusters"][0];
    assert_eq!(cluster["version_info"], s.resources(ResourceType::Cluster).version);
    assert_eq!(cluster["cluster"]["@type"], "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    assert_eq!(cluster["cluster"]["name"], "web");
    assert_eq!(cluster["cluster"]["type"], "EDS");
    let cla = &configs[1]["dynamic_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(cla["cluster_name"], "web");
    assert_eq!(cla["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"], 9001);
    let listener = &configs[2]["dynamic_listeners"][0];
    assert_eq!(listener["name"], "listener_8080");
    let hcm = &listener["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "an Any is written with its type and fields"
    );
    assert_eq!(hcm["rds"]["route_config_name"], "routes_8080");
    let rc = &configs[3]["dynamic_route_configs"][0]["route_config"];
    assert_eq!(rc["virtual_hosts"][0]["routes"][0]["route"]["cluster"], "web");
}
