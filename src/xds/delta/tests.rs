//! The delta ADS rules of [`DeltaState`], one per test, on the hand-made
//! snapshots the state-of-the-world tests use.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::xds::snapshot::testing::{mk_cla, mk_parts, mk_translated};
use crate::xds::snapshot::{Snapshot, SnapshotParts};

use ResourceType::{Cluster as Cds, Endpoint as Eds, Listener as Lds, Route as Rds};

// ---- builders --------------------------------------------------------------

fn mk_snapshot(parts: SnapshotParts) -> Arc<Snapshot> {
    Arc::new(Snapshot::build("proxy", parts).expect("consistent"))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn subscribe(ty: ResourceType, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().to_string(),
        resource_names_subscribe: strings(names),
        ..Default::default()
    }
}

fn unsubscribe(ty: ResourceType, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().to_string(),
        resource_names_unsubscribe: strings(names),
        ..Default::default()
    }
}

fn ack(resp: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest { type_url: resp.type_url.clone(), response_nonce: resp.nonce.clone(), ..Default::default() }
}

fn nack(resp: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(Status { code: 13, message: "bad config".into(), ..Default::default() }),
        ..ack(resp)
    }
}

// ---- reading responses -----------------------------------------------------

/// (type, names sent, names removed, nonce) of one response.
type Summary = (ResourceType, Vec<String>, Vec<String>, String);

fn summary(responses: &[DeltaDiscoveryResponse]) -> Vec<Summary> {
    responses
        .iter()
        .map(|r| {
            let ty = ResourceType::from_type_url(&r.type_url).expect("known type");
            for res in &r.resources {
                assert_eq!(res.resource.as_ref().map(|a| a.type_url.as_str()), Some(ty.type_url()));
            }
            let names = r.resources.iter().map(|res| res.name.clone()).collect();
            (ty, names, r.removed_resources.clone(), r.nonce.clone())
        })
        .collect()
}

fn sm(ty: ResourceType, names: &[&str], removed: &[&str], nonce: &str) -> Summary {
    (ty, strings(names), strings(removed), nonce.to_string())
}

/// Gives the `i`th cluster of `parts` other content.
fn change_cluster(parts: &mut SnapshotParts, i: usize) {
    parts.clusters[i].connect_timeout = Some(crate::xds::translate::duration(std::time::Duration::from_secs(3)));
}

/// The version a client reports for `name` of `ty` as held from `snap`.
fn held_version(snap: &Snapshot, ty: ResourceType, name: &str) -> String {
    resource_version(snap.resources(ty).items[name].hash)
}

/// A stream holding `snapshot` that subscribed the way Envoy does (CDS and
/// LDS wildcard, EDS and RDS by name) and ACKed everything. Nonces 1-4.
fn mk_connected(snapshot: &Arc<Snapshot>) -> DeltaState {
    let mut s = DeltaState::new();
    assert_eq!(s.on_snapshot(Some(snapshot.clone())), vec![]);
    let clusters: Vec<String> = snapshot.resources(Cds).names().into_iter().collect();
    let clusters: Vec<&str> = clusters.iter().map(String::as_str).collect();
    let routes: Vec<String> = snapshot.resources(Rds).names().into_iter().collect();
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    for (ty, names) in [(Cds, &[][..]), (Eds, &clusters[..]), (Lds, &[][..]), (Rds, &routes[..])] {
        let (_, out) = s.on_request(&subscribe(ty, names));
        assert_eq!(out.len(), 1, "{} answered", ty.short());
        let (events, more) = s.on_request(&ack(&out[0]));
        assert_eq!(events, vec![Event::Ack { ty, version: snapshot.resources(ty).version.clone() }]);
        assert_eq!(more, vec![]);
    }
    s
}

// ---- requests --------------------------------------------------------------

#[test]
fn a_first_request_with_no_names_is_a_wildcard_and_gets_everything_with_per_resource_versions() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[8080]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap.clone()));

    let (events, out) = s.on_request(&subscribe(Cds, &[]));

    assert_eq!(events, vec![]);
    assert_eq!(summary(&out), vec![sm(Cds, &["a", "b"], &[], "1")]);
    assert_eq!(out[0].system_version_info, snap.resources(Cds).version);
    for res in &out[0].resources {
        let r = &snap.resources(Cds).items[&res.name];
        assert_eq!(res.version, resource_version(r.hash));
        assert_eq!(res.resource.as_ref(), Some(&*r.body));
    }
    assert!(s.type_state(Cds).wildcard);
}

#[test]
fn a_request_before_any_snapshot_is_answered_when_the_snapshot_arrives() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = DeltaState::new();

    assert_eq!(s.on_request(&subscribe(Cds, &[])), (vec![], vec![]));

    assert_eq!(summary(&s.on_snapshot(Some(snap))), vec![sm(Cds, &["a"], &[], "1")]);
}

#[test]
fn names_are_added_and_dropped_one_request_at_a_time() {
    let snap = mk_snapshot(mk_parts(&["a", "b", "c"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap));

    let (_, out) = s.on_request(&subscribe(Eds, &["a"]));
    assert_eq!(summary(&out), vec![sm(Eds, &["a"], &[], "1")]);
    assert!(!s.type_state(Eds).wildcard, "naming resources first is no wildcard");
    // Adding a name sends only that one.
    let (_, out) = s.on_request(&subscribe(Eds, &["b"]));
    assert_eq!(summary(&out), vec![sm(Eds, &["b"], &[], "2")]);
    // Dropping one sends nothing; naming it again sends it again.
    assert_eq!(s.on_request(&unsubscribe(Eds, &["a"])).1, vec![]);
    assert_eq!(s.type_state(Eds).held.keys().collect::<Vec<_>>(), ["b"]);
    let (_, out) = s.on_request(&subscribe(Eds, &["a"]));
    assert_eq!(summary(&out), vec![sm(Eds, &["a"], &[], "3")]);
}

#[test]
fn a_name_subscribed_again_is_sent_again_even_if_unchanged() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap));
    s.on_request(&subscribe(Eds, &["a"]));

    let (_, out) = s.on_request(&subscribe(Eds, &["a"]));

    assert_eq!(summary(&out), vec![sm(Eds, &["a"], &[], "2")]);
}

#[test]
fn a_name_that_does_not_exist_is_answered_as_removed_once() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap));

    let (_, out) = s.on_request(&subscribe(Eds, &["a", "nope"]));
    assert_eq!(summary(&out), vec![sm(Eds, &["a"], &["nope"], "1")]);
    let (_, out) = s.on_request(&ack(&out[0]));
    assert_eq!(out, vec![], "told once");

    // Once it exists, it comes.
    let later = mk_snapshot(mk_parts(&["a", "nope"], &[]));
    assert_eq!(summary(&s.on_snapshot(Some(later))), vec![sm(Eds, &["nope"], &[], "2")]);
}

#[test]
fn star_subscribes_to_everything_and_unsubscribing_it_keeps_only_the_names() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap.clone()));

    let (_, out) = s.on_request(&subscribe(Cds, &["a"]));
    assert_eq!(summary(&out), vec![sm(Cds, &["a"], &[], "1")]);
    let (_, out) = s.on_request(&subscribe(Cds, &["*"]));
    assert_eq!(summary(&out), vec![sm(Cds, &["b"], &[], "2")]);
    assert_eq!(s.on_request(&unsubscribe(Cds, &["*"])).1, vec![]);

    assert_eq!(s.type_state(Cds).held.keys().collect::<Vec<_>>(), ["a"]);
    // A change to `b` is no longer sent; one to `a` is.
    let mut parts = mk_parts(&["a", "b"], &[]);
    change_cluster(&mut parts, 0);
    change_cluster(&mut parts, 1);
    let out = s.on_snapshot(Some(mk_snapshot(parts)));
    assert_eq!(summary(&out)[0], sm(Cds, &["a"], &[], "3"));
}

#[test]
fn a_legacy_wildcard_stays_a_wildcard_when_names_are_added() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap));
    s.on_request(&subscribe(Cds, &[]));

    s.on_request(&subscribe(Cds, &["c"]));

    assert!(s.type_state(Cds).wildcard);
    let grown = mk_snapshot(mk_parts(&["a", "b", "d"], &[]));
    assert_eq!(summary(&s.on_snapshot(Some(grown)))[0], sm(Cds, &["d"], &[], "3"));
}

#[test]
fn an_ack_is_recorded_by_the_version_of_the_response_it_answers() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap.clone()));
    let (_, out) = s.on_request(&subscribe(Cds, &[]));

    let (events, more) = s.on_request(&ack(&out[0]));

    assert_eq!(events, vec![Event::Ack { ty: Cds, version: snap.resources(Cds).version.clone() }]);
    assert_eq!(more, vec![]);
    assert_eq!(s.type_state(Cds).acked_version, Some(snap.resources(Cds).version.clone()));
    assert_eq!(s.type_state(Cds).sent_version, Some(snap.resources(Cds).version.clone()));
}

#[test]
fn a_nacked_resource_is_not_sent_again_until_it_changes() {
    let first = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(first.clone()));
    let (_, out) = s.on_request(&subscribe(Eds, &["a"]));

    let (events, more) = s.on_request(&nack(&out[0]));

    assert_eq!(
        events,
        vec![Event::Nack { ty: Eds, version: first.resources(Eds).version.clone(), message: "bad config".into() }]
    );
    assert_eq!(more, vec![], "no resend loop");
    // The same content again (e.g. republished unchanged) is not sent; a change is.
    let same = mk_snapshot(mk_parts(&["a"], &[]));
    assert_eq!(s.on_snapshot(Some(same)), vec![]);
    let mut parts = mk_parts(&["a"], &[]);
    parts.endpoints = vec![mk_cla("a", 9001)];
    assert_eq!(summary(&s.on_snapshot(Some(mk_snapshot(parts)))), vec![sm(Eds, &["a"], &[], "2")]);
    assert!(s.type_state(Eds).nack.is_some(), "the last NACK stays shown");
}

#[test]
fn a_request_with_a_nonce_not_sent_on_this_stream_still_changes_the_subscription() {
    let snap = mk_snapshot(mk_parts(&["a", "b"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap));
    s.on_request(&subscribe(Eds, &["a"]));

    let req = DeltaDiscoveryRequest { response_nonce: "from-another-stream".into(), ..subscribe(Eds, &["b"]) };
    let (events, out) = s.on_request(&req);

    assert_eq!(events, vec![Event::Stale { ty: Eds, nonce: "from-another-stream".into() }]);
    assert_eq!(summary(&out), vec![sm(Eds, &["b"], &[], "2")]);
}

#[test]
fn a_reconnecting_client_is_sent_only_what_changed() {
    let before = mk_snapshot(mk_parts(&["a", "b", "c"], &[]));
    let mut parts = mk_parts(&["a", "b"], &[]);
    parts.endpoints = vec![mk_cla("a", 9000), mk_cla("b", 9001)];
    let now = mk_snapshot(parts);
    let mut s = DeltaState::new();
    s.on_snapshot(Some(now));

    // Envoy, reconnecting, names what it wants and lists what it holds.
    let initial: HashMap<String, String> =
        ["a", "b", "c"].iter().map(|n| (n.to_string(), held_version(&before, Eds, n))).collect();
    let req = DeltaDiscoveryRequest { initial_resource_versions: initial, ..subscribe(Eds, &["a", "b", "c"]) };
    let (_, out) = s.on_request(&req);

    // `c` is gone: Envoy drops its endpoints with the cluster, which the
    // CDS stream removes (the next test).
    assert_eq!(summary(&out), vec![sm(Eds, &["b"], &[], "1")]);
}

#[test]
fn a_reconnecting_wildcard_client_is_told_what_is_gone() {
    let before = mk_snapshot(mk_parts(&["a", "b"], &[8080]));
    let now = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(now));

    let initial: HashMap<String, String> =
        ["a", "b"].iter().map(|n| (n.to_string(), held_version(&before, Cds, n))).collect();
    let req = DeltaDiscoveryRequest { initial_resource_versions: initial, ..subscribe(Cds, &[]) };
    let (_, out) = s.on_request(&req);

    assert_eq!(summary(&out), vec![sm(Cds, &[], &["b"], "1")]);
}

#[test]
fn a_version_another_server_wrote_counts_as_not_held() {
    let snap = mk_snapshot(mk_parts(&["a"], &[]));
    let mut s = DeltaState::new();
    s.on_snapshot(Some(snap));

    let initial: HashMap<String, String> = [("a".to_string(), "v7".to_string())].into();
    let req = DeltaDiscoveryRequest { initial_resource_versions: initial, ..subscribe(Eds, &["a"]) };

    assert_eq!(summary(&s.on_request(&req).1), vec![sm(Eds, &["a"], &[], "1")]);
}

#[test]
fn an_unknown_type_url_is_reported_and_ignored() {
    let mut s = DeltaState::new();
    let req = DeltaDiscoveryRequest { type_url: "type.googleapis.com/envoy.Secret".into(), ..Default::default() };

    let (events, out) = s.on_request(&req);

    assert_eq!(events, vec![Event::UnknownType { type_url: "type.googleapis.com/envoy.Secret".into() }]);
    assert_eq!(out, vec![]);
}

#[test]
fn subscriptions_beyond_the_limit_are_ignored_and_reported() {
    let mut s = DeltaState::new();
    let names: Vec<String> = (0..MAX_NAMES + 10).map(|i| format!("c{i}")).collect();
    let req = DeltaDiscoveryRequest {
        type_url: Eds.type_url().to_string(),
        resource_names_subscribe: names,
        ..Default::default()
    };

    let (events, _) = s.on_request(&req);

    assert_eq!(events, vec![Event::TooManyNames { ty: Eds, limit: MAX_NAMES }]);
    assert_eq!(s.type_state(Eds).names.len(), MAX_NAMES);
}

#[test]
fn nonces_kept_for_acks_are_bounded() {
    let mut s = DeltaState::new();
    s.on_snapshot(Some(mk_snapshot(mk_parts(&["a"], &[]))));
    let mut first = None;
    for _ in 0..IN_FLIGHT + 5 {
        let (_, out) = s.on_request(&subscribe(Eds, &["a"]));
        first.get_or_insert(out[0].clone());
    }
    assert_eq!(s.type_state(Eds).in_flight.len(), IN_FLIGHT);
    let (events, _) = s.on_request(&ack(&first.expect("sent")));
    assert_eq!(events, vec![Event::Stale { ty: Eds, nonce: "1".into() }]);
}

// ---- snapshots -------------------------------------------------------------

#[test]
fn a_snapshot_change_is_sent_make_before_break() {
    let first = mk_snapshot(mk_parts(&["a", "b"], &[8080, 8081]));
    let mut s = mk_connected(&first);
    // `b` and port 8081 go away, `c` and port 8082 come in; the routes of
    // 8080 change (they name c).
    let second = mk_snapshot(mk_parts(&["a", "c"], &[8080, 8082]));

    let out = s.on_snapshot(Some(second.clone()));

    assert_eq!(
        summary(&out),
        vec![sm(Cds, &["c"], &[], "5"), sm(Lds, &["listener_8082"], &[], "6"),],
        "additions first; RDS waits until c has its endpoints, and nothing is removed yet"
    );
    // Envoy subscribes to c's endpoints and to the new listener's routes.
    let (_, more) = s.on_request(&subscribe(Rds, &["routes_8082"]));
    assert_eq!(more, vec![], "routes wait for c's endpoints");
    let (_, more) = s.on_request(&subscribe(Eds, &["c"]));
    assert_eq!(
        summary(&more),
        vec![
            sm(Eds, &["c"], &[], "7"),
            sm(Rds, &["routes_8080", "routes_8082"], &[], "8"),
            sm(Cds, &[], &["b"], "9"),
            sm(Lds, &[], &["listener_8081"], "10"),
        ]
    );
}

#[test]
fn a_nack_of_the_new_clusters_releases_what_was_held_back() {
    let first = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&first);
    let out = s.on_snapshot(Some(mk_snapshot(mk_parts(&["b"], &[8080]))));
    assert_eq!(summary(&out), vec![sm(Cds, &["b"], &[], "5")]);

    let (_, more) = s.on_request(&nack(&out[0]));

    assert_eq!(summary(&more), vec![sm(Rds, &["routes_8080"], &[], "6"), sm(Cds, &[], &["a"], "7")]);
}

#[test]
fn a_changed_cluster_is_followed_by_its_unchanged_endpoints() {
    let first = mk_snapshot(mk_parts(&["a", "b"], &[8080]));
    let mut s = mk_connected(&first);
    let mut parts = mk_parts(&["a", "b"], &[8080]);
    change_cluster(&mut parts, 0);

    let out = s.on_snapshot(Some(mk_snapshot(parts)));

    assert_eq!(summary(&out), vec![sm(Cds, &["a"], &[], "5"), sm(Eds, &["a"], &[], "6")]);
}

#[test]
fn a_changed_listener_is_followed_by_its_route_configuration() {
    let first = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&first);
    let mut parts = mk_parts(&["a"], &[8080]);
    parts.listeners[0].stat_prefix = "changed".into();

    let out = s.on_snapshot(Some(mk_snapshot(parts)));

    assert_eq!(summary(&out), vec![sm(Lds, &["listener_8080"], &[], "5"), sm(Rds, &["routes_8080"], &[], "6")]);
}

#[test]
fn one_changed_load_assignment_sends_only_that_one() {
    let first = mk_snapshot(mk_parts(&["a", "b", "c"], &[8080]));
    let mut s = mk_connected(&first);
    let mut parts = mk_parts(&["a", "b", "c"], &[8080]);
    parts.endpoints[1] = mk_cla("b", 9001);

    let out = s.on_snapshot(Some(mk_snapshot(parts)));

    assert_eq!(summary(&out), vec![sm(Eds, &["b"], &[], "5")]);
}

#[test]
fn an_unchanged_snapshot_sends_nothing_and_no_snapshot_keeps_what_was_sent() {
    let snap = mk_snapshot(mk_parts(&["a"], &[8080]));
    let mut s = mk_connected(&snap);

    assert_eq!(s.on_snapshot(Some(mk_snapshot(mk_parts(&["a"], &[8080])))), vec![]);
    assert_eq!(s.on_snapshot(None), vec![]);
    assert_eq!(s.type_state(Cds).held.len(), 1);
}

#[test]
fn a_translated_profile_is_served_in_full_to_an_envoy_like_client() {
    let snap = Arc::new(mk_translated());

    let s = mk_connected(&snap);

    for ty in ResourceType::ALL {
        let held: Vec<(&String, &u64)> = s.type_state(ty).held.iter().collect();
        let served: Vec<(&String, &u64)> = snap.resources(ty).items.iter().map(|(n, r)| (n, &r.hash)).collect();
        assert_eq!(held, served, "{} held", ty.short());
        assert_eq!(s.type_state(ty).acked_version.as_ref(), Some(&snap.resources(ty).version));
    }
}
