//! Spine benchmark: what a profile change costs devbridge, measured, not
//! asserted. Run with `cargo bench --bench spine`; prints medians and p99.
//!
//! 1. validate: parse + validate a large profile (TOML text -> model).
//! 2. translate: model -> every Snapshot (all four types, hashed, checked).
//! 3. push: the builder's step for a profile differing in one endpoint,
//!    handed to the ADS server as the builder task does -> the EDS response
//!    arriving at a real gRPC client (tonic, envoy-types) over loopback, the
//!    client having ACKed everything like Envoy does; split into publish
//!    (full re-translation) and the stream + wire share.
//!
//! The large profile: 50 domains on 5 ports, 20 routes each (1,000 routes),
//! 100 static clusters of 100 endpoints (10,000 endpoints).

#[path = "support/large_profile.rs"]
mod large;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use std::sync::Arc;

use devbridge::metrics::XdsMetrics;
use devbridge::model::EndpointSet;
use devbridge::profile::{Profile, parse_profile};
use devbridge::publish::Builder;
use devbridge::xds::server::AdsService;
use devbridge::xds::translate::translate;
use large::{CLUSTERS, Change, DOMAINS, ENDPOINTS, PORTS, ROUTES, large_profile};
use support::ads::{AdsClient, envoy_request};
use tokio_util::sync::CancellationToken;

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

/// Subscribes to everything like Envoy and ACKs each response.
async fn subscribe_all(c: &mut AdsClient, profile: &Profile) {
    let cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    let eds = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    let lds = "type.googleapis.com/envoy.config.listener.v3.Listener";
    let rds = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    let clusters: Vec<String> = profile.clusters.keys().cloned().collect();
    let routes: Vec<String> = (0..PORTS).map(|p| format!("routes_{}", 20000 + p)).collect();
    for (ty, names) in [(cds, vec![]), (eds, clusters), (lds, vec![]), (rds, routes)] {
        c.send(envoy_request("p", ty, names.clone(), None)).await;
        let r = c.recv().await;
        c.send(envoy_request("p", ty, names, Some(&r))).await;
    }
}

fn main() {
    let src_a = large_profile(&Change::default());
    let src_b = large_profile(&Change { port: 9001, ..Change::default() });
    println!(
        "devbridge spine benchmark ({} routes, {} endpoints; {} cores)",
        DOMAINS * ROUTES,
        CLUSTERS * ENDPOINTS,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("profile text: {} KiB", src_a.len() / 1024);

    support::report("validate (parse + validate)", time(20, || parse_profile("bench.toml", "bench", &src_a).unwrap()));
    let a = parse_profile("bench.toml", "bench", &src_a).unwrap();
    let b = parse_profile("bench.toml", "bench", &src_b).unwrap();
    let none = EndpointSet::new();
    support::report("translate (all four types, one proxy)", time(50, || translate(&a, &none).unwrap()));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let listener = support::loopback_listener().await;
        let addr = listener.local_addr().unwrap();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let mut builder = Builder::new(a.clone(), Arc::default()).unwrap();
        let (published, rx) = tokio::sync::watch::channel(builder.published().clone());
        let (shutdown, tracker) = (CancellationToken::new(), tokio_util::task::TaskTracker::new());
        let service = AdsService::new(rx, Arc::new(XdsMetrics::default()), shutdown.clone(), tracker);
        tokio::spawn(devbridge::xds::server::serve(
            listener.into(),
            service,
            None,
            devbridge::accept::Limits::default(),
            shutdown,
        ));
        let mut client = AdsClient::connect_to(addr).await;
        subscribe_all(&mut client, &a).await;

        let (mut publish, mut push, mut wire, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
        for i in 0..200 {
            let next = if i % 2 == 0 { b.clone() } else { a.clone() };
            let t = Instant::now();
            published.send_replace(builder.set_profile(next).unwrap().expect("an endpoint differs"));
            let published = t.elapsed();
            publish.push(published);
            let r = client.recv().await;
            push.push(t.elapsed());
            wire.push(t.elapsed() - published);
            assert!(r.type_url.ends_with("ClusterLoadAssignment"), "only EDS changes: got {}", r.type_url);
            bytes = r.resources.iter().map(|a| a.value.len()).sum();
            let names = r.resources.len();
            client.send(envoy_request("p", &r.type_url, a.clusters.keys().cloned().collect(), Some(&r))).await;
            assert_eq!(names, 1, "only the changed load assignment is sent");
        }
        support::report("publish: translate + diff + hand-off", publish);
        support::report("published -> EDS at the client (stream+wire)", wire);
        support::report("one endpoint changed -> EDS at the client", push);
        println!("EDS response: {bytes} bytes (the one changed load assignment of {CLUSTERS})");
    });
}
