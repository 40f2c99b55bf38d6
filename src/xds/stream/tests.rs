//! The ADS protocol rules of [`StreamState`], one per test, on snapshots built
//! from hand-made resources so every version and name is known.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use prost::Message;

use super::*;
use crate::xds::snapshot::testing::{mk_cla, mk_parts, mk_translated};
use crate::xds::snapshot::{CLUSTER_TYPE_URL, SnapshotParts};
use crate::xds::translate;

use ResourceType::{Cluster as Cds, Endpoint as Eds, Listener as Lds, Route as Rds};

// ---- builders --------------------------------------------------------------

fn mk_snapshot(parts: SnapshotParts) -> Arc<Snapshot> {
    Arc::new(Snapshot::build("proxy", parts).expect("consistent"))
}

fn mk_request(ty: ResourceType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_string(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: ty.type_url().to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

/// The ACK of `resp`, still asking for `names`.
fn mk_ack(resp: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    let ty = ResourceType::from_type_url(&resp.type_url).expect("known type");
    mk_request(ty, names, &resp.version_info, &resp.nonce)
}

/// A change of subscription to `names`, answering the last response of `ty`
/// (as Envoy asks for a new cluster's endpoints).
fn mk_resubscribe(s: &StreamState, ty: ResourceType, names: &[&str]) -> DiscoveryRequest {
    let sent = s.type_state(ty).sent.as_ref().expect("something of this type was sent");
    mk_request(ty, names, &sent.version, &sent.nonce)
}

/// The NACK of `resp`, reporting the previously accepted `version` (empty if none).
fn mk_nack(resp: &DiscoveryResponse, names: &[&str], version: &str) -> DiscoveryRequest {
    let ty = ResourceType::from_type_url(&resp.type_url).expect("known type");
    DiscoveryRequest {
        error_detail: Some(Status { code: 3, message: "bad config".into(), ..Default::default() }),
        ..mk_request(ty, names, version, &resp.nonce)
    }
}

// ---- reading responses -----------------------------------------------------

/// (type, version, resource names, nonce) of one response.
type Summary = (ResourceType, String, Vec<String>, String);

fn resource_name(ty: ResourceType, any: &Any) -> String {
    assert_eq!(any.type_url, ty.type_url(), "resource packed with the response's type");
    let bytes = any.value.as_slice();
    match ty {
        Cds => Cluster::decode(bytes).expect("cluster").name,
        Eds => endpoint::ClusterLoadAssignment::decode(bytes).expect("load assignment").cluster_name,
        Lds => listener::Listener::decode(bytes).expect("listener").name,
        Rds => route::RouteConfiguration::decode(bytes).expect("route configuration").name,
    }
}

fn summary(responses: &[DiscoveryResponse]) -> Vec<Summary> {
    responses
        .iter()
        .map(|r| {
            let ty = ResourceType::from_type_url(&r.type_url).expect("known type");
            let names = r.resources.iter().map(|a| resource_name(ty, a)).collect();
            (ty, r.version_info.clone(), names, r.nonce.clone())
        })
        .collect()
}

fn sm(ty: ResourceType, version: &str, names: &[&str], nonce: &str) -> Summary {
    (ty, version.to_string(), names.iter().map(|n| n.to_string()).collect(), nonce.to_string())
}

fn version(s: &Snapshot, ty: ResourceType) -> String {
    s.resources(ty).version.clone()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn sent(version: &str, nonce: &str, names: &[&str]) -> Option<Sent> {
    Some(Sent { version: version.to_string(), nonce: nonce.to_string(), names: set(names) })
}

/// A stream holding `snapshot` that has subscribed to all four types the
/// way Envoy does (CDS and LDS wildcard, EDS and RDS by name) and ACKed
/// everything. Nonces 1-4 are used.
fn mk_connected(snapshot: &Arc<Snapshot>) -> StreamState {
    let mut s = StreamState::new();
    assert_eq!(s.on_snapshot(Some(snapshot.clone())), vec![]);
    let clusters: Vec<String> = snapshot.resources(Cds).names().into_iter().collect();
    let clusters: Vec<&str> = clusters.iter().map(String::as_str).collect();
    let routes: Vec<String> = snapshot.resources(Rds).names().into_iter().collect();
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    for (ty, names) in [(Cds, &[][..]), (Eds, &clusters[..]), (Lds, &[][..]), (Rds, &routes[..])] {
        let (_, out) = s.on_request(&mk_request(ty, names, "", ""));
        assert_eq!(out.len(), 1, "{} answered", ty.short());
        let (events, more) = s.on_request(&mk_ack(&out[0], names));
        assert_eq!(events, vec![Event::Ack { ty, version: out[0].version_info.clone() }]);
        assert_eq!(more, vec![]);
    }
    s
}

// ---- requests --------------------------------------------------------------

#[test]
fn initial_wildcard_cds_request_gets_all_clusters() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[8080]));
    let mut s = StreamState::new();
    assert_eq!(s.on_snapshot(Some(snap.clone())), vec![]);

    let (events, out) = s.on_request(&mk_request(Cds, &[], "", ""));

    assert_eq!(events, vec![]);
    assert_eq!(summary(&out), vec![sm(Cds, &version(&snap, Cds), &["a", "b"], "1")]);
    let bodies: Vec<Any> = snap.resources(Cds).items.values().map(|r| Any::clone(&r.body)).collect();
    assert_eq!(out[0].resources, bodies);
    assert_eq!(
        s.type_state(Cds),
        &TypeState {
            subscription: Subscription::Wildcard { legacy: true },
            sent: sent(&version(&snap, Cds), "1", &["a", "b"]),
            acked_version: None,
            nack: None,
            force: false,
        }
    );
}

#[test]
fn request_before_any_snapshot_is_answered_when_the_snapshot_arrives() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = StreamState::new();

    assert_eq!(s.on_request(&mk_request(Cds, &[], "", "")), (vec![], vec![]));
    let out = s.on_snapshot(Some(snap.clone()));

    assert_eq!(summary(&out), vec![sm(Cds, &version(&snap, Cds), &["a"], "1")]);
}

#[test]
fn ack_is_recorded_and_answered_with_nothing() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(snap.clone()));
    let (_, out) = s.on_request(&mk_request(Cds, &[], "", ""));

    let (events, more) = s.on_request(&mk_ack(&out[0], &[]));

    let v = version(&snap, Cds);
    assert_eq!(events, vec![Event::Ack { ty: Cds, version: v.clone() }]);
    assert_eq!(more, vec![]);
    assert_eq!(
        s.type_state(Cds),
        &TypeState {
            subscription: Subscription::Wildcard { legacy: true },
            sent: sent(&v, "1", &["a"]),
            acked_version: Some(v.clone()),
            nack: None,
            force: false,
        }
    );
}

#[test]
fn nack_is_recorded_and_the_rejected_version_is_not_sent_again() {
    let first = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = mk_connected(&first);
    let second = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let out = s.on_snapshot(Some(second.clone()));
    let cds = out.iter().find(|r| r.type_url == CLUSTER_TYPE_URL).expect("CDS pushed").clone();

    let nack = mk_nack(&cds, &[], &version(&first, Cds));
    let (events, more) = s.on_request(&nack);

    let rejected = version(&second, Cds);
    assert_eq!(events, vec![Event::Nack { ty: Cds, version: rejected.clone(), message: "bad config".into() }]);
    assert_eq!(more, vec![]);
    let expected = TypeState {
        subscription: Subscription::Wildcard { legacy: true },
        sent: sent(&rejected, &cds.nonce, &["a", "b"]),
        acked_version: Some(version(&first, Cds)),
        nack: Some(Nack { version: rejected.clone(), nonce: cds.nonce.clone(), message: "bad config".into() }),
        force: false,
    };
    assert_eq!(s.type_state(Cds), &expected);

    // Envoy repeats its NACK (e.g. after a reconnect of a subscription):
    // nothing is sent, and the rejection is reported only once.
    let (events, again) = s.on_request(&nack);
    assert_eq!((events, again), (vec![], vec![]));
    // Republishing the same snapshot does not push it either.
    assert_eq!(s.on_snapshot(Some(second.clone())), vec![]);
    assert_eq!(s.type_state(Cds), &expected);
}

#[test]
fn new_snapshot_after_a_nack_is_sent() {
    let first = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = mk_connected(&first);
    let second = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let out = s.on_snapshot(Some(second.clone()));
    s.on_request(&mk_nack(&out[0], &[], &version(&first, Cds)));

    let third = mk_snapshot(mk_parts(&["a", "c"], &[]));
    let out = s.on_snapshot(Some(third.clone()));

    // `b` was last sent (if rejected), so the first CDS still carries it,
    // and the final CDS drops `b`. `a` is unchanged, so Envoy keeps it and
    // its endpoints: EDS is not sent again.
    let v = version(&third, Cds);
    assert_eq!(
        summary(&out),
        vec![sm(Cds, &format!("{v}-keeping-1"), &["a", "b", "c"], "6"), sm(Cds, &v, &["a", "c"], "7"),]
    );
}

#[test]
fn stale_nonce_is_ignored() {
    let first = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(first.clone()));
    let (_, out1) = s.on_request(&mk_request(Cds, &[], "", ""));
    let second = mk_snapshot(mk_parts(&["b"], &[]));
    let out2 = s.on_snapshot(Some(second.clone()));
    let before = s.type_state(Cds).clone();

    // The ACK of the first response arrives after the second was sent.
    let (events, more) = s.on_request(&mk_ack(&out1[0], &["a"]));

    assert_eq!(events, vec![Event::Stale { ty: Cds, nonce: out1[0].nonce.clone() }]);
    assert_eq!(more, vec![]);
    assert_eq!(s.type_state(Cds), &before, "neither the ACK nor the names are taken");
    assert_eq!(before.acked_version, None);
    assert_eq!(before.sent.map(|s| s.nonce), out2.last().map(|r| r.nonce.clone()));
}

#[test]
fn first_request_of_a_type_with_a_nonce_from_another_stream_is_answered() {
    // A client that reconnects may still carry the last nonce of its old
    // stream; nothing was sent on this one, so it is not a stale answer.
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(snap.clone()));

    let (events, out) = s.on_request(&mk_request(Cds, &[], "old-version", "41"));

    assert_eq!(events, vec![]);
    assert_eq!(summary(&out), vec![sm(Cds, &version(&snap, Cds), &["a"], "1")]);
    assert_eq!(s.type_state(Cds).acked_version, None);
}

// ---- subscriptions ---------------------------------------------------------

#[test]
fn empty_name_lists_keep_a_legacy_wildcard() {
    let first = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(first.clone()));
    let (_, out) = s.on_request(&mk_request(Cds, &[], "", ""));
    s.on_request(&mk_ack(&out[0], &[]));

    let second = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let out = s.on_snapshot(Some(second.clone()));

    assert_eq!(s.type_state(Cds).subscription, Subscription::Wildcard { legacy: true });
    assert_eq!(summary(&out), vec![sm(Cds, &version(&second, Cds), &["a", "b"], "2")]);
}

#[test]
fn star_is_a_wildcard() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(snap.clone()));

    let (_, out) = s.on_request(&mk_request(Cds, &["*"], "", ""));

    assert_eq!(summary(&out), vec![sm(Cds, &version(&snap, Cds), &["a", "b"], "1")]);
    assert_eq!(s.type_state(Cds).subscription, Subscription::Wildcard { legacy: false });

    // `*` together with names is still everything.
    let (_, out) = s.on_request(&mk_request(Cds, &["a", "*"], &version(&snap, Cds), "1"));
    assert_eq!(out, vec![]);
    assert_eq!(s.type_state(Cds).subscription, Subscription::Wildcard { legacy: false });
}

#[test]
fn empty_list_after_naming_resources_unsubscribes() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(snap.clone()));
    let (_, out) = s.on_request(&mk_request(Eds, &["a"], "", ""));

    let (events, more) = s.on_request(&mk_ack(&out[0], &[]));

    let v = version(&snap, Eds);
    assert_eq!(events, vec![Event::Ack { ty: Eds, version: v.clone() }]);
    assert_eq!(more, vec![]);
    assert_eq!(
        s.type_state(Eds),
        &TypeState {
            subscription: Subscription::Names(BTreeSet::new()),
            // The client dropped what it had: nothing is held any more.
            sent: sent(&v, "1", &[]),
            acked_version: Some(v.clone()),
            nack: None,
            force: false,
        }
    );
    // A new snapshot is not pushed to a client that wants nothing.
    let changed = SnapshotParts { endpoints: vec![mk_cla("a", 9001), mk_cla("b", 9000)], ..mk_parts(&["a", "b"], &[]) };
    assert_eq!(s.on_snapshot(Some(mk_snapshot(changed))), vec![]);
}

#[test]
fn resubscribing_after_unsubscribing_everything_sends_the_resources_again() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(snap.clone()));
    let (_, out) = s.on_request(&mk_request(Eds, &["a"], "", ""));
    s.on_request(&mk_ack(&out[0], &[]));

    let (_, again) = s.on_request(&mk_request(Eds, &["a"], &out[0].version_info, &out[0].nonce));

    assert_eq!(summary(&again), vec![sm(Eds, &version(&snap, Eds), &["a"], "2")]);
}

#[test]
fn named_eds_subscription_gets_only_named_resources_and_name_changes_are_answered() {
    let snap = mk_snapshot(mk_parts(&["a", "b", "c"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(snap.clone()));
    let v = version(&snap, Eds);

    let (_, first) = s.on_request(&mk_request(Eds, &["a", "missing"], "", ""));
    let (_, same) = s.on_request(&mk_ack(&first[0], &["a", "missing"]));
    let (_, wider) = s.on_request(&mk_ack(&first[0], &["a", "c"]));

    assert_eq!(summary(&first), vec![sm(Eds, &v, &["a"], "1")]);
    assert_eq!(same, vec![]);
    // The client holds `a` already: only the newly named `c` is sent.
    assert_eq!(summary(&wider), vec![sm(Eds, &v, &["c"], "2")]);
    assert_eq!(
        s.type_state(Eds),
        &TypeState {
            subscription: Subscription::Names(set(&["a", "c"])),
            sent: sent(&v, "2", &["c"]),
            acked_version: Some(v.clone()),
            nack: None,
            force: false,
        }
    );
}

#[test]
fn a_type_never_requested_is_never_pushed() {
    let first = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(first.clone()));
    let (_, out) = s.on_request(&mk_request(Cds, &[], "", ""));
    s.on_request(&mk_ack(&out[0], &[]));

    let second = mk_snapshot(mk_parts(&["b"], &[8080, 8081]));
    let out = s.on_snapshot(Some(second.clone()));

    let v = version(&second, Cds);
    assert_eq!(summary(&out), vec![sm(Cds, &format!("{v}-keeping-1"), &["a", "b"], "2"), sm(Cds, &v, &["b"], "3")]);
    for ty in [Eds, Lds, Rds] {
        assert_eq!(s.type_state(ty).subscription, Subscription::None);
        assert_eq!(s.type_state(ty).sent, None);
    }
}

#[test]
fn unknown_type_url_is_reported_and_ignored() {
    let mut s = StreamState::new();
    s.on_snapshot(Some(mk_snapshot(mk_parts(&["a"], &[]))));
    let url = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

    let (events, out) = s.on_request(&DiscoveryRequest { type_url: url.into(), ..Default::default() });

    assert_eq!(events, vec![Event::UnknownType { type_url: url.into() }]);
    assert_eq!(out, vec![]);
    for ty in ResourceType::ALL {
        assert_eq!(s.type_state(ty), &TypeState::default());
    }
}

// ---- snapshots -------------------------------------------------------------

#[test]
fn snapshot_change_is_sent_make_before_break() {
    let first = mk_snapshot(mk_parts(&["a", "b"], &[8080, 8081]));
    let mut s = mk_connected(&first);
    // `b` and port 8081 go away, `c` and port 8082 come in.
    let second = mk_snapshot(mk_parts(&["a", "c"], &[8080, 8082]));

    let out = s.on_snapshot(Some(second.clone()));

    let (cds, lds) = (version(&second, Cds), version(&second, Lds));
    assert_eq!(
        summary(&out),
        vec![
            sm(Cds, &format!("{cds}-keeping-1"), &["a", "b", "c"], "5"),
            // `a` is unchanged, so its endpoints are not sent again; EDS by
            // name: Envoy asks for `c` once it sees the cluster.
            sm(Lds, &format!("{lds}-keeping-1"), &["listener_8080", "listener_8081", "listener_8082"], "6"),
        ]
    );
    let kept_b = &out[0].resources[1];
    assert_eq!(kept_b, &*first.resources(Cds).items["b"].body, "the removed cluster is kept as it was");

    // The routes to `c` wait until `c` has its endpoints: then they come,
    // and the removal pass after them.
    let (_, more) = s.on_request(&mk_resubscribe(&s, Eds, &["a", "c"]));
    assert_eq!(
        summary(&more),
        vec![
            sm(Eds, &version(&second, Eds), &["c"], "7"),
            sm(Rds, &version(&second, Rds), &["routes_8080"], "8"),
            sm(Cds, &cds, &["a", "c"], "9"),
            sm(Lds, &lds, &["listener_8080", "listener_8082"], "10"),
        ]
    );
}

#[test]
fn make_before_break_settles_once_envoy_acks() {
    let first = mk_snapshot(mk_parts(&["a", "b"], &[8080]));
    let mut s = mk_connected(&first);
    let second = mk_snapshot(mk_parts(&["a", "c"], &[8080]));
    let out = s.on_snapshot(Some(second.clone()));
    assert_eq!(
        summary(&out).iter().map(|r| r.0).collect::<Vec<_>>(),
        [Cds],
        "CDS keeping b (a unchanged: no EDS); RDS waits for c"
    );

    // Envoy ACKs what it applied, then asks for the new cluster's
    // endpoints: they come, then the routes and the final CDS.
    assert_eq!(s.on_request(&mk_ack(&out[0], &[])).1, vec![]);
    let more = s.on_request(&mk_resubscribe(&s, Eds, &["a", "c"])).1;
    assert_eq!(
        summary(&more),
        vec![
            sm(Eds, &version(&second, Eds), &["c"], "6"),
            sm(Rds, &version(&second, Rds), &["routes_8080"], "7"),
            sm(Cds, &version(&second, Cds), &["a", "c"], "8"),
        ]
    );
    for (r, names) in [(&more[0], &["a", "c"][..]), (&more[1], &["routes_8080"][..]), (&more[2], &[][..])] {
        assert_eq!(s.on_request(&mk_ack(r, names)).1, vec![]);
    }
    assert_eq!(s.type_state(Cds).acked_version, Some(version(&second, Cds)));
}

#[test]
fn a_nack_of_the_new_clusters_releases_the_routes_held_back() {
    let first = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&first);
    let second = mk_snapshot(mk_parts(&["a", "c"], &[8080]));
    let out = s.on_snapshot(Some(second.clone()));
    assert_eq!(summary(&out).iter().map(|r| r.0).collect::<Vec<_>>(), [Cds]);
    let (_, more) = s.on_request(&mk_nack(&out[0], &[], &version(&first, Cds)));
    assert_eq!(summary(&more), vec![sm(Rds, &version(&second, Rds), &["routes_8080"], "6")]);
}

#[test]
fn removed_cluster_is_kept_only_if_the_client_has_it() {
    let first = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let mut s = StreamState::new();
    s.on_snapshot(Some(first.clone()));
    let (_, out) = s.on_request(&mk_request(Cds, &["a"], "", ""));
    s.on_request(&mk_ack(&out[0], &["a"]));

    let second = mk_snapshot(mk_parts(&["a"], &[]));
    let out = s.on_snapshot(Some(second.clone()));

    assert_eq!(summary(&out), vec![sm(Cds, &version(&second, Cds), &["a"], "2")]);
}

#[test]
fn changed_cluster_makes_its_unchanged_endpoints_be_sent_again() {
    let first = mk_snapshot(mk_parts(&["a", "b"], &[8080]));
    let mut s = mk_connected(&first);
    let mut parts = mk_parts(&["a", "b"], &[8080]);
    parts.clusters[0].connect_timeout = Some(translate::duration(std::time::Duration::from_secs(3)));
    let second = mk_snapshot(parts);
    assert_eq!(version(&first, Eds), version(&second, Eds));

    let out = s.on_snapshot(Some(second.clone()));

    // Envoy re-creates `a` and waits for its endpoints; `b` is unchanged,
    // Envoy keeps it as it is, and its endpoints are not sent.
    assert_eq!(
        summary(&out),
        vec![sm(Cds, &version(&second, Cds), &["a", "b"], "5"), sm(Eds, &version(&second, Eds), &["a"], "6")]
    );
    assert!(!s.type_state(Eds).force, "warming is satisfied");
}

#[test]
fn changed_listener_makes_its_unchanged_routes_be_sent_again() {
    let first = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&first);
    let mut parts = mk_parts(&["a"], &[8080]);
    parts.listeners[0].stat_prefix = "renamed".into();
    let second = mk_snapshot(parts);
    assert_eq!(version(&first, Rds), version(&second, Rds));

    let out = s.on_snapshot(Some(second.clone()));

    assert_eq!(
        summary(&out),
        vec![
            sm(Lds, &version(&second, Lds), &["listener_8080"], "5"),
            sm(Rds, &version(&second, Rds), &["routes_8080"], "6")
        ]
    );
}

#[test]
fn eds_and_rds_responses_carry_only_what_changed() {
    let first = mk_snapshot(SnapshotParts {
        endpoints: vec![mk_cla("a", 9001), mk_cla("b", 9002), mk_cla("c", 9003)],
        ..mk_parts(&["a", "b", "c"], &[8080])
    });
    let mut s = mk_connected(&first);
    // Only b's endpoints change; a and c stay as the client holds them.
    let second = mk_snapshot(SnapshotParts {
        endpoints: vec![mk_cla("a", 9001), mk_cla("b", 9999), mk_cla("c", 9003)],
        ..mk_parts(&["a", "b", "c"], &[8080])
    });

    let out = s.on_snapshot(Some(second.clone()));
    assert_eq!(summary(&out), vec![sm(Eds, &version(&second, Eds), &["b"], "5")]);

    // Back to the first content: b again, and nothing else.
    let back = s.on_snapshot(Some(first.clone()));
    assert_eq!(summary(&back), vec![sm(Eds, &version(&first, Eds), &["b"], "6")]);
}

#[test]
fn changed_endpoints_alone_send_only_eds() {
    let first = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&first);
    let second = mk_snapshot(SnapshotParts { endpoints: vec![mk_cla("a", 9001)], ..mk_parts(&["a"], &[8080]) });

    let out = s.on_snapshot(Some(second.clone()));

    assert_eq!(summary(&out), vec![sm(Eds, &version(&second, Eds), &["a"], "5")]);
}

#[test]
fn no_snapshot_sends_nothing_and_keeps_what_was_sent() {
    let snap = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&snap);
    let before: Vec<TypeState> = ResourceType::ALL.iter().map(|t| s.type_state(*t).clone()).collect();

    assert_eq!(s.on_snapshot(None), vec![]);
    assert_eq!(s.snapshot(), None);
    // Requests while there is no snapshot are recorded but not answered.
    let (_, out) = s.on_request(&mk_request(Cds, &[], &version(&snap, Cds), "1"));
    assert_eq!(out, vec![]);
    // The same snapshot coming back changes nothing for the client.
    assert_eq!(s.on_snapshot(Some(snap.clone())), vec![]);
    let after: Vec<TypeState> = ResourceType::ALL.iter().map(|t| s.type_state(*t).clone()).collect();
    assert_eq!(after, before);
}

#[test]
fn translated_profile_is_served_in_full_to_an_envoy_like_client() {
    let snap = Arc::new(mk_translated());

    let s = mk_connected(&snap);

    let expected: BTreeMap<ResourceType, Option<Sent>> = [
        (Cds, sent(&version(&snap, Cds), "1", &["web"])),
        (Eds, sent(&version(&snap, Eds), "2", &["web"])),
        (Lds, sent(&version(&snap, Lds), "3", &["listener_8080"])),
        (Rds, sent(&version(&snap, Rds), "4", &["routes_8080"])),
    ]
    .into();
    let actual: BTreeMap<ResourceType, Option<Sent>> =
        ResourceType::ALL.iter().map(|t| (*t, s.type_state(*t).sent.clone())).collect();
    assert_eq!(actual, expected);
}
