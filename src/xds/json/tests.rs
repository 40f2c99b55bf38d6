use super::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::util::pack_any;

#[test]
fn a_cluster_is_written_as_envoy_writes_it() {
    let c = Cluster {
        name: "c".into(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration { seconds: 1, nanos: 500_000_000 }),
        ..Default::default()
    };
    let json = any_to_json(&pack_any(c)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "c",
            "connect_timeout": "1.500s"
        })
    );
}

#[test]
fn a_request_is_read_from_json_with_either_field_spelling() {
    let r = request_from_json(
        br#"{"version_info": "v1", "node": {"id": "n", "cluster": "p"}, "resourceNames": ["a"], "response_nonce": "", "future_field": 1}"#,
    )
    .unwrap();
    assert_eq!(r.version_info, "v1");
    assert_eq!(r.node.unwrap().cluster, "p");
    assert_eq!(r.resource_names, ["a"]);
}

#[test]
fn bad_json_is_an_error_not_a_panic() {
    for bad in [&b"{"[..], b"[]", b"{\"node\": 3}", b"{} trailing", b""] {
        assert!(request_from_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}
