//! Property test: any sequence of requests (well-formed or not: unknown
//! type URLs, stale and invented nonces, NACKs, `*`, names that do not
//! exist) and snapshots leaves [`StreamState`] answering within the rules:
//! no panic, nonces strictly increasing, only requested types pushed, named
//! subscriptions never sent more than asked for, and a NACK never answered
//! with a resend. Bounded: 256 cases of up to 40 steps.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::rpc::Status;
use proptest::prelude::*;

use super::*;
use crate::xds::snapshot::SnapshotParts;
use crate::xds::snapshot::testing::{mk_cla, mk_parts};

const NAMES: [&str; 6] = ["a", "b", "c", "routes_8080", "routes_9090", "*"];

#[derive(Debug, Clone)]
enum Step {
    Request { ty: usize, names: Vec<usize>, nonce: NonceChoice, nack: bool, version: String },
    Snapshot { clusters: Vec<usize>, ports: Vec<bool>, endpoint_port: u16 },
    NoSnapshot,
}

#[derive(Debug, Clone)]
enum NonceChoice {
    None,
    Latest,
    Invented(String),
}

fn step() -> impl Strategy<Value = Step> {
    let request = (
        0usize..5,
        proptest::collection::vec(0usize..NAMES.len(), 0..4),
        prop_oneof![
            Just(NonceChoice::None),
            Just(NonceChoice::Latest),
            "[0-9a-z]{0,3}".prop_map(NonceChoice::Invented)
        ],
        any::<bool>(),
        "[0-9a-f]{0,4}",
    )
        .prop_map(|(ty, names, nonce, nack, version)| Step::Request { ty, names, nonce, nack, version });
    let snapshot =
        (proptest::collection::vec(0usize..3, 0..4), proptest::collection::vec(any::<bool>(), 2), 9000u16..9003)
            .prop_map(|(clusters, ports, endpoint_port)| Step::Snapshot { clusters, ports, endpoint_port });
    prop_oneof![6 => request, 3 => snapshot, 1 => Just(Step::NoSnapshot)]
}

fn mk_snapshot(clusters: &[usize], ports: &[bool], endpoint_port: u16) -> Arc<Snapshot> {
    let names: BTreeSet<&str> = clusters.iter().map(|i| ["a", "b", "c"][*i]).collect();
    let names: Vec<&str> = names.into_iter().collect();
    let ports: Vec<u16> = [8080, 9090].into_iter().zip(ports).filter(|(_, on)| **on).map(|(p, _)| p).collect();
    let mut parts: SnapshotParts = mk_parts(&names, &ports);
    if let Some(first) = names.first() {
        parts.endpoints.retain(|(c, _)| c.cluster_name != *first);
        parts.endpoints.push(mk_cla(first, endpoint_port));
    }
    Arc::new(Snapshot::build("proxy", parts).expect("consistent"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_request_sequence_is_answered_within_the_rules(steps in proptest::collection::vec(step(), 1..40)) {
        let mut s = StreamState::new();
        let mut last_nonce = 0u64;
        for step in steps {
            let (responses, request) = match step {
                Step::Snapshot { clusters, ports, endpoint_port } => {
                    (s.on_snapshot(Some(mk_snapshot(&clusters, &ports, endpoint_port))), None)
                }
                Step::NoSnapshot => (s.on_snapshot(None), None),
                Step::Request { ty, names, nonce, nack, version } => {
                    let type_url = ResourceType::ALL
                        .get(ty)
                        .map_or("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", |t| t.type_url());
                    let latest = ResourceType::from_type_url(type_url)
                        .and_then(|t| s.type_state(t).sent.as_ref().map(|x| x.nonce.clone()));
                    let req = DiscoveryRequest {
                        type_url: type_url.to_string(),
                        resource_names: names.iter().map(|i| NAMES[*i].to_string()).collect(),
                        version_info: version,
                        response_nonce: match nonce {
                            NonceChoice::None => String::new(),
                            NonceChoice::Latest => latest.unwrap_or_default(),
                            NonceChoice::Invented(n) => n,
                        },
                        error_detail: nack.then(|| Status { code: 3, message: "rejected".into(), details: vec![] }),
                        ..Default::default()
                    };
                    let rejected = ResourceType::from_type_url(type_url)
                        .and_then(|t| s.type_state(t).sent.as_ref().map(|x| x.names.clone()));
                    let (events, responses) = s.on_request(&req);
                    // The rule that matters most: a NACK is never answered by
                    // sending the rejected content again (the same version
                    // and resources; a new subscription is answered).
                    for e in &events {
                        if let Event::Nack { ty, version, .. } = e {
                            // Other types may follow a NACK (a CDS NACK releases
                            // held-back route configurations): only this type's count.
                            let again = responses.iter().filter(|r| r.type_url == ty.type_url()).any(|r| {
                                let names: BTreeSet<String> =
                                    r.resources.iter().map(|a| resource_name(*ty, a)).collect();
                                &r.version_info == version && Some(&names) == rejected.as_ref()
                            });
                            prop_assert!(!again, "NACKed version {version} of {} resent", ty.short());
                        }
                    }
                    (responses, Some(req))
                }
            };
            for r in &responses {
                let ty = ResourceType::from_type_url(&r.type_url);
                prop_assert!(ty.is_some(), "pushed an unknown type {}", r.type_url);
                let ty = ty.unwrap();
                let nonce: u64 = r.nonce.parse().expect("numeric nonce");
                prop_assert!(nonce > last_nonce, "nonce {nonce} after {last_nonce}");
                last_nonce = nonce;
                let state = s.type_state(ty);
                prop_assert!(state.subscription != Subscription::None, "{} pushed without a request", ty.short());
                if let Subscription::Names(asked) = &state.subscription {
                    // Only make-before-break may add what the client already held.
                    if !r.version_info.contains("-keeping-") {
                        for any in &r.resources {
                            let name = resource_name(ty, any);
                            prop_assert!(asked.contains(&name), "{} sent {name} not asked for ({asked:?})", ty.short());
                        }
                    }
                }
            }
            let _ = request;
        }
    }
}

fn resource_name(ty: ResourceType, any: &envoy_types::pb::google::protobuf::Any) -> String {
    use envoy_types::pb::envoy::config::{cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment};
    use envoy_types::pb::envoy::config::{listener::v3::Listener, route::v3::RouteConfiguration};
    use prost::Message;
    let bytes = any.value.as_slice();
    match ty {
        ResourceType::Cluster => Cluster::decode(bytes).unwrap().name,
        ResourceType::Endpoint => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
        ResourceType::Listener => Listener::decode(bytes).unwrap().name,
        ResourceType::Route => RouteConfiguration::decode(bytes).unwrap().name,
    }
}
