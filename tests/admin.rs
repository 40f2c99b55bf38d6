//! The admin API in process, on loopback, with a real gRPC ADS client
//! (tests/support/ads.rs) standing in for Envoy: `/status` and `/metrics`
//! follow the stream's ACKs and NACKs, `/config_dump` shows each proxy's
//! resources, and registered endpoints reach the client as EDS pushes,
//! refuse bad input without changing anything, and survive a restart.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use devbridge::app::{Daemon, Options};
use devbridge::profile::{Profile, parse_profile};
use devbridge::xds::ResourceType;
use devbridge::xds::registry::{NackInfo, NodeInfo, StreamInfo, TypeInfo};
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use serde_json::{Value, json};
use support::ads::AdsClient;
use support::{HttpResponse, eventually, http_request, loopback_listener};
use tokio_util::sync::CancellationToken;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn mk_profile() -> Profile {
    let src = r#"
[zones.dev-local]
[proxies.p1]
zone = "dev-local"
domains = ["one.test:10001"]
[proxies.p2]
zone = "dev-local"
domains = ["two.test:10002"]
[[domains]]
name = "one.test:10001"
[[domains.routes]]
prefix = "/api"
cluster = "api"
[[domains.routes]]
cluster = "fixed"
[[domains]]
name = "two.test:10002"
[[domains.routes]]
cluster = "fixed"
[clusters.api.registered]
[clusters.fixed.static]
endpoints = [{ address = "127.0.0.1:9101" }]
"#;
    parse_profile("admin.toml", "admin", src).expect("valid profile")
}

fn mk_node(cluster: &str) -> Node {
    Node {
        id: format!("{cluster}-1"),
        cluster: cluster.to_string(),
        locality: Some(Locality { zone: "dev-local".into(), ..Default::default() }),
        ..Default::default()
    }
}

fn mk_request(
    type_url: &str,
    node: Option<Node>,
    names: &[&str],
    answering: Option<&DiscoveryResponse>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        node,
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: answering.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: answering.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

async fn start(state_file: Option<PathBuf>) -> Daemon {
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    Daemon::start_with(
        mk_profile(),
        xds,
        Some(admin),
        CancellationToken::new(),
        Options { state_file, ..Options::default() },
    )
    .unwrap()
}

fn admin(daemon: &Daemon) -> SocketAddr {
    daemon.admin_addr.expect("admin listener")
}

async fn call(daemon: &Daemon, method: &str, path: &str, body: &str) -> HttpResponse {
    http_request(admin(daemon), method, "admin", path, &[], body.as_bytes()).await.expect("admin answers")
}

async fn get_json(daemon: &Daemon, path: &str) -> Value {
    let r = call(daemon, "GET", path, "").await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {}", r.body))
}

async fn envoys(daemon: &Daemon) -> Vec<StreamInfo> {
    serde_json::from_value(get_json(daemon, "/status").await["envoys"].clone()).expect("envoys as StreamInfo")
}

/// The samples of a scrape, as `name{labels} value` lines, after checking
/// that it parses and that every line is a sample or a known comment.
fn scrape(text: &str) -> Vec<String> {
    for line in text.lines() {
        let known_comment = ["# HELP ", "# TYPE ", "# UNIT ", "# EOF"].iter().any(|p| line.starts_with(p));
        let sample = matches!(prometheus_parse::LineInfo::parse(line), prometheus_parse::LineInfo::Sample { .. });
        assert!(known_comment || sample, "not Prometheus text: {line:?}");
    }
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    assert!(!parsed.samples.is_empty());
    text.lines().filter(|l| !l.starts_with('#')).map(String::from).collect()
}

#[tokio::test]
async fn status_and_metrics_follow_a_streams_acks_and_nacks() {
    let daemon = start(None).await;
    let mut client = AdsClient::connect(&daemon).await;
    client.send(mk_request(CDS, Some(mk_node("p1")), &[], None)).await;
    let cds = client.recv().await;
    client.send(mk_request(CDS, None, &[], Some(&cds))).await;
    client.send(mk_request(EDS, None, &["api", "fixed"], None)).await;
    let eds = client.recv().await;
    let mut nack = mk_request(EDS, None, &["api", "fixed"], None);
    nack.response_nonce = eds.nonce.clone();
    nack.error_detail =
        Some(RpcStatus { code: 3, message: "api: endpoint rejected for a test".into(), details: vec![] });
    client.send(nack).await;

    let seen = eventually("the NACK in /status", 200, || async {
        let all = envoys(&daemon).await;
        all.first().is_some_and(|e| e.types.get("EDS").is_some_and(|t| t.last_nack.is_some())).then_some(all)
    })
    .await;
    let [envoy] = seen.as_slice() else { panic!("one envoy expected: {seen:?}") };
    let nack_at = envoy.types["EDS"].last_nack.as_ref().unwrap().at_ms;
    assert!(nack_at >= envoy.connected_at_ms, "{envoy:?}");
    assert_eq!(
        envoy,
        &StreamInfo {
            stream: 1,
            peer: envoy.peer.clone().filter(|p| p.starts_with("127.0.0.1:")),
            protocol: "sotw".into(),
            node: Some(NodeInfo {
                id: "p1-1".into(),
                cluster: "p1".into(),
                zone: "dev-local".into(),
                user_agent: String::new()
            }),
            proxy: Some("p1".into()),
            unmatched: None,
            connected_at_ms: envoy.connected_at_ms,
            types: [
                (
                    "CDS".to_string(),
                    TypeInfo {
                        sent: Some(cds.version_info.clone()),
                        acked: Some(cds.version_info.clone()),
                        last_nack: None,
                        missing: vec![],
                    }
                ),
                (
                    "EDS".to_string(),
                    TypeInfo {
                        sent: Some(eds.version_info.clone()),
                        acked: None,
                        last_nack: Some(NackInfo {
                            version: eds.version_info.clone(),
                            error: "api: endpoint rejected for a test".into(),
                            at_ms: nack_at,
                        }),
                        missing: vec![],
                    }
                ),
            ]
            .into(),
        }
    );

    let metrics = call(&daemon, "GET", "/metrics", "").await;
    assert_eq!(metrics.headers["content-type"], devbridge::metrics::METRICS_CONTENT_TYPE);
    let samples = scrape(&metrics.body);
    for expected in [
        "devbridge_xds_streams 1",
        "devbridge_xds_pushes_total{type=\"CDS\"} 1",
        "devbridge_xds_pushes_total{type=\"EDS\"} 1",
        "devbridge_xds_acks_total{type=\"CDS\"} 1",
        "devbridge_xds_nacks_total{type=\"EDS\"} 1",
        "devbridge_xds_nacks_total{type=\"CDS\"} 0",
        "devbridge_profile_reloads_total{result=\"failed\"} 0",
    ] {
        assert!(samples.iter().any(|s| s == expected), "{expected} missing:\n{}", metrics.body);
    }

    drop(client);
    eventually("the envoy to leave /status", 200, || async { envoys(&daemon).await.is_empty().then_some(()) }).await;
}

#[tokio::test]
async fn an_envoy_that_matches_no_proxy_is_listed_with_why() {
    let daemon = start(None).await;
    let client = AdsClient::connect(&daemon).await;
    client.send(mk_request(CDS, Some(mk_node("ghost")), &[], None)).await;
    let unmatched = eventually("the unmatched envoy in /status", 200, || async {
        envoys(&daemon).await.first().and_then(|e| e.unmatched.clone())
    })
    .await;
    assert_eq!(
        unmatched,
        "no proxy of profile admin matches node.cluster \"ghost\", node.id \"ghost-1\", zone \"dev-local\""
    );
    assert!(
        scrape(&call(&daemon, "GET", "/metrics", "").await.body)
            .contains(&"devbridge_xds_unmatched_nodes_total 1".to_string())
    );
}

#[tokio::test]
async fn config_dump_lists_each_proxys_resources() {
    let daemon = start(None).await;
    let dump = get_json(&daemon, "/config_dump").await;
    // Laid out as Envoy's own /config_dump: per type, its dump type and entries.
    let names = |proxy: &str, at: usize, key: &str, name: &dyn Fn(&Value) -> String| -> Vec<String> {
        dump["proxies"][proxy]["configs"][at][key].as_array().map(|a| a.iter().map(name).collect()).unwrap_or_default()
    };
    let cluster = |e: &Value| e["cluster"]["name"].as_str().unwrap().to_string();
    let cla = |e: &Value| e["endpoint_config"]["cluster_name"].as_str().unwrap().to_string();
    let listener = |e: &Value| e["active_state"]["listener"]["name"].as_str().unwrap().to_string();
    let routes = |e: &Value| e["route_config"]["name"].as_str().unwrap().to_string();
    assert_eq!(names("p1", 0, "dynamic_active_clusters", &cluster), ["api", "fixed"]);
    assert_eq!(names("p1", 1, "dynamic_endpoint_configs", &cla), ["api", "fixed"]);
    assert_eq!(names("p1", 2, "dynamic_listeners", &listener), ["listener_10001"]);
    assert_eq!(names("p1", 3, "dynamic_route_configs", &routes), ["routes_10001"]);
    assert_eq!(names("p2", 0, "dynamic_active_clusters", &cluster), ["fixed"]);
    assert_eq!(names("p2", 2, "dynamic_listeners", &listener), ["listener_10002"]);
    assert_eq!(dump["proxies"]["p2"]["configs"][0]["@type"], "type.googleapis.com/envoy.admin.v3.ClustersConfigDump");
    assert_eq!(
        dump["proxies"]["p2"]["configs"][1]["dynamic_endpoint_configs"][0]["endpoint_config"],
        json!({
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": "fixed",
            "endpoints": [{
                "locality": {},
                "lb_endpoints": [{ "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 9101 } } } }],
                "load_balancing_weight": 1
            }]
        })
    );
    assert_eq!(dump["profile"], "admin");
    assert!(dump["note"].as_str().unwrap().contains("Envoy's own admin /config_dump"));
}

#[tokio::test]
async fn health_readiness_unknown_paths_and_methods() {
    let daemon = start(None).await;
    let healthz = call(&daemon, "GET", "/healthz", "").await;
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));
    let readyz = call(&daemon, "GET", "/readyz", "").await;
    assert_eq!((readyz.status, readyz.body.as_str()), (200, "ready: profile admin (2 proxies)\n"));
    assert_eq!(call(&daemon, "GET", "/nope", "").await.status, 404);
    let post = call(&daemon, "POST", "/status", "").await;
    assert_eq!((post.status, post.headers["allow"].as_str()), (405, "GET"));
    let status = get_json(&daemon, "/status").await;
    assert_eq!(status["profile"], json!({ "name": "admin", "file": "admin.toml" }));
    assert_eq!(status["sources"], json!([]));
    assert_eq!(status["ready"], json!(true));
    assert_eq!(status["registered"], json!({ "api": [] }));
    assert_eq!(status["proxies"].as_object().unwrap().keys().collect::<Vec<_>>(), ["p1", "p2"]);
}

/// The addresses in an EDS response's load assignment for `cluster`.
fn addresses(r: &DiscoveryResponse, cluster: &str) -> Vec<String> {
    let cla = r
        .resources
        .iter()
        .map(|a| ClusterLoadAssignment::decode(a.value.as_slice()).unwrap())
        .find(|c| c.cluster_name == cluster)
        .unwrap_or_else(|| panic!("no load assignment for {cluster} in {r:?}"));
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|e| match &e.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => match ep.address.as_ref()?.address.as_ref()? {
                Address::SocketAddress(sa) => match sa.port_specifier {
                    Some(PortSpecifier::PortValue(p)) => Some(format!("{}:{p}", sa.address)),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn registered_endpoints_are_pushed_refused_when_bad_emptied_and_restored_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("admin.registered.json");
    let daemon = start(Some(state.clone())).await;
    let mut client = AdsClient::connect(&daemon).await;
    client.send(mk_request(EDS, Some(mk_node("p1")), &["api"], None)).await;
    let empty = client.recv().await;
    assert_eq!(addresses(&empty, "api"), Vec::<String>::new());
    client.send(mk_request(EDS, None, &["api"], Some(&empty))).await;

    let path = "/v1/clusters/api/endpoints";
    let put = call(
        &daemon,
        "PUT",
        path,
        r#"[{"address": "127.0.0.1:9001", "zone": "z1", "weight": 2, "metadata": {"canary": "true"}}]"#,
    )
    .await;
    let registered =
        json!([{ "address": "127.0.0.1:9001", "zone": "z1", "weight": 2, "metadata": { "canary": "true" } }]);
    assert_eq!((put.status, serde_json::from_str::<Value>(&put.body).unwrap()), (200, registered.clone()));
    let pushed = client.recv().await;
    assert_eq!(addresses(&pushed, "api"), ["127.0.0.1:9001"]);
    client.send(mk_request(EDS, None, &["api"], Some(&pushed))).await;
    let eds_pushes = daemon.metrics.pushes(ResourceType::Endpoint);
    // That push was caused by a published change: its latency is observed.
    eventually("the change-to-push latency to be observed", 200, || async {
        let samples = scrape(&call(&daemon, "GET", "/metrics", "").await.body);
        samples.contains(&"devbridge_xds_change_to_push_seconds_count 1".to_string()).then_some(())
    })
    .await;

    // Refusals: status, message, and nothing changed.
    let refusals = [
        (
            "PUT",
            "/v1/clusters/nope/endpoints",
            "[]",
            404,
            "no cluster \"nope\" in profile \"admin\"; registered clusters: api",
        ),
        (
            "PUT",
            "/v1/clusters/fixed/endpoints",
            "[]",
            409,
            "cluster \"fixed\" takes its endpoints from its static source; only clusters with a [clusters.fixed.registered] source accept registered endpoints",
        ),
        (
            "PUT",
            path,
            r#"[{"address": "localhost:80"}]"#,
            400,
            "endpoint [0]: address \"localhost:80\" is not ip:port, e.g. 127.0.0.1:9001",
        ),
        (
            "PUT",
            path,
            r#"[{"address": "127.0.0.1:1", "weight": 0}]"#,
            400,
            "endpoint [0]: weight 0 is out of range; expected 1 to 128",
        ),
        ("DELETE", "/v1/clusters/fixed/endpoints", "", 409, ""),
    ];
    for (method, p, body, status, message) in refusals {
        let r = call(&daemon, method, p, body).await;
        assert_eq!(r.status, status, "{method} {p} {body}: {}", r.body);
        let error: Value = serde_json::from_str(&r.body).unwrap();
        if !message.is_empty() {
            assert_eq!(error, json!({ "error": message }));
        }
    }
    let bad_json = call(&daemon, "PUT", path, r#"[{"address": "127.0.0.1:1", "port": 2}]"#).await;
    assert_eq!(bad_json.status, 400);
    assert!(
        serde_json::from_str::<Value>(&bad_json.body).unwrap()["error"].as_str().unwrap().ends_with(
            "unknown field `port`, expected one of `address`, `zone`, `weight`, `metadata` at line 1 column 34"
        ),
        "{}",
        bad_json.body
    );
    let too_large =
        http_request(admin(&daemon), "PUT", "admin", path, &[("Content-Length", "2000000")], b"").await.unwrap();
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    let post = call(&daemon, "POST", path, "[]").await;
    assert_eq!((post.status, post.headers["allow"].as_str()), (405, "GET, PUT, DELETE"));
    assert_eq!(get_json(&daemon, path).await, registered);
    assert_eq!(daemon.metrics.pushes(ResourceType::Endpoint), eds_pushes, "a refusal pushes nothing");

    // DELETE empties the cluster, and the client is told.
    let deleted = call(&daemon, "DELETE", path, "").await;
    assert_eq!((deleted.status, deleted.body.trim()), (200, "[]"));
    let emptied = client.recv().await;
    assert_eq!(addresses(&emptied, "api"), Vec::<String>::new());

    // What is registered when devbridge stops is served after a restart.
    let put = call(&daemon, "PUT", path, r#"[{"address": "127.0.0.1:9002"}, {"address": "127.0.0.1:9003"}]"#).await;
    assert_eq!(put.status, 200, "{}", put.body);
    daemon.shutdown_token().cancel();
    tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await.expect("daemon stops").unwrap();
    let daemon = start(Some(state)).await;
    assert_eq!(
        get_json(&daemon, path).await,
        json!([{ "address": "127.0.0.1:9002" }, { "address": "127.0.0.1:9003" }])
    );
    let mut client = AdsClient::connect(&daemon).await;
    client.send(mk_request(EDS, Some(mk_node("p1")), &["api"], None)).await;
    assert_eq!(addresses(&client.recv().await, "api"), ["127.0.0.1:9002", "127.0.0.1:9003"]);
}
