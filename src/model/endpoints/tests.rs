//! Edits keep the list sorted, equal to the list built whole, chunked
//! within bounds, and sharing every chunk they do not touch.

use std::collections::BTreeMap;

use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

use super::*;

fn ep(i: u32) -> Endpoint {
    Endpoint {
        unhealthy: false,
        addr: std::net::SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 80)),
        zone: Some(format!("z{}", i % 3)),
        weight: None,
        metadata: Arc::new(BTreeMap::new()),
    }
}

fn assert_well_formed(list: &Endpoints, why: &str) {
    let all = list.to_vec();
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{why}: sorted");
    assert_eq!(list.len(), all.len(), "{why}: len");
    let chunks = list.chunks();
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 2 * CHUNK), "{why}: chunk sizes");
}

#[test]
fn a_list_is_sorted_and_chunked() {
    let list = Endpoints::new((0..1000).rev().map(ep).collect());
    assert_well_formed(&list, "new");
    assert_eq!(list.to_vec(), (0..1000).map(ep).collect::<Vec<_>>());
    assert_eq!(Endpoints::new(vec![]).chunks().len(), 0);
    assert!(Endpoints::default().is_empty());
}

#[test]
fn one_endpoint_changed_remakes_one_chunk_and_shares_the_others() {
    let list = Endpoints::new((0..10_000).map(|i| ep(i * 2)).collect());
    let next = list.edited(&[ep(5000)], &[ep(5001)]);
    assert_well_formed(&next, "edited");
    let shared = next.chunks().iter().filter(|c| list.chunks().iter().any(|d| Arc::ptr_eq(c, d))).count();
    assert_eq!(shared, list.chunks().len() - 1, "all chunks but the edited one are shared");
    assert!(next.iter().any(|e| *e == ep(5001)) && !next.iter().any(|e| *e == ep(5000)));
    assert!(!Endpoints::ptr_eq(&list, &next));
    assert_ne!(list, next);
    assert_eq!(next.edited(&[ep(5001)], &[ep(5000)]), list, "equal however chunked");
}

#[test]
fn random_edits_agree_with_a_sorted_vec() {
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut next = move |n: usize| (rng.next_u64() % n as u64) as usize;
    let mut model: Vec<Endpoint> = (0..300).map(|i| ep(i * 3)).collect();
    let mut list = Endpoints::new(model.clone());
    for round in 0..2000 {
        let mut gone = Vec::new();
        let mut new = Vec::new();
        for _ in 0..next(4) {
            if !model.is_empty() && next(2) == 0 {
                gone.push(model[next(model.len())].clone());
            } else {
                new.push(ep(next(2000) as u32));
            }
        }
        // Sometimes an endpoint the list lacks: ignored.
        if round % 7 == 0 {
            gone.push(ep(1_000_000));
        }
        for g in &gone {
            if let Some(i) = model.iter().position(|e| e == g) {
                model.remove(i);
            }
        }
        model.extend(new.iter().cloned());
        model.sort();
        list = list.edited(&gone, &new);
        assert_well_formed(&list, &format!("round {round}"));
        assert_eq!(list.to_vec(), model, "round {round}");
    }
}

#[test]
fn emptied_and_refilled() {
    let all: Vec<Endpoint> = (0..200).map(ep).collect();
    let list = Endpoints::new(all.clone());
    let empty = list.edited(&all, &[]);
    assert!(empty.is_empty() && empty.chunks().is_empty());
    let again = empty.edited(&[], &all);
    assert_well_formed(&again, "refilled");
    assert_eq!(again, list);
}
