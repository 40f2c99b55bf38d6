//! Soak, bounded: API server disconnects and forced `410 Gone`s against the
//! fake API server while endpoints churn. After the last fault, what is
//! served equals the API server's final list (nothing lost, nothing stale),
//! and no publish ever lost an endpoint that never went away (an error
//! never empties or shrinks a cluster).
//!
//! CI runs [`CI_DISCONNECTS`] disconnects and [`CI_GONES`] 410s (about
//! 10 s); the full count, [`FULL_DISCONNECTS`] and [`FULL_GONES`] (about
//! 50 s on a busy 2-core machine), is the ignored test:
//! `cargo test --test kube_soak -- --ignored`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devbridge::app::Daemon;
use serde_json::Value;
use support::fake_kube::{FakeKube, Kind, pod};
use support::kube::{EDGE, TOKEN, connected, mk_options, mk_profile, served, served_in, wait_served, wait_sources};
use support::{free_port, loopback_listener};
use tokio_util::sync::CancellationToken;

const CI_DISCONNECTS: usize = 200;
const CI_GONES: usize = 20;
const FULL_DISCONNECTS: usize = 1000;
const FULL_GONES: usize = 100;

const LABELS: &[(&str, &str)] = &[("app", "edge-envoy")];
/// Pods that never change: every publish must hold them.
const STABLE: u16 = 5;
/// Pods that are added, made unready and deleted in turn.
const CHURNING: usize = 20;

fn mk_pod(name: &str, port: u16, ready: bool) -> Value {
    pod("edge", name, LABELS, "127.0.0.1", &[("http", port)], ready)
}

/// The endpoints the API server's pods give now (Ready ones), sorted as served.
fn expected(fake: &FakeKube) -> Vec<String> {
    let mut out: Vec<String> = fake
        .objects(Kind::Pods)
        .iter()
        .filter(|p| p["status"]["conditions"][0]["status"] == "True")
        .map(|p| format!("127.0.0.1:{}", p["spec"]["containers"][0]["ports"][0]["containerPort"]))
        .collect();
    out.sort();
    out
}

/// Polls `f` every millisecond, at most `bound`; panics naming `what`.
async fn until(what: &str, bound: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < bound, "gave up waiting for {what} after {bound:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One churn step on the churning pods: add, unready, ready, delete in turn.
fn churn(fake: &FakeKube, step: usize) {
    let (k, phase) = (step % CHURNING, (step / CHURNING) % 4);
    let name = format!("c{k}");
    let port = 9100 + k as u16;
    match phase {
        0 | 2 => fake.apply(Kind::Pods, mk_pod(&name, port, true)),
        1 => fake.apply(Kind::Pods, mk_pod(&name, port, false)),
        _ => fake.delete(Kind::Pods, "edge", &name),
    }
}

async fn soak(disconnects: usize, gones: usize) {
    let fake = FakeKube::start_new(TOKEN).await;
    for i in 0..STABLE {
        fake.apply(Kind::Pods, mk_pod(&format!("s{i}"), 9000 + i, true));
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = mk_profile(free_port(), &fake.kubeconfig(dir.path()), &["edge"], EDGE);
    let mut options = mk_options();
    // Retries at once: the soak is about correctness, not pacing.
    options.discovery.backoff_min = Duration::from_millis(1);
    options.discovery.backoff_max = Duration::from_millis(5);
    let daemon =
        Daemon::start_with(profile, loopback_listener().await, None, CancellationToken::new(), options).unwrap();
    let stable: Vec<String> = (0..STABLE).map(|i| format!("127.0.0.1:{}", 9000 + i)).collect();
    wait_served(&daemon, "edge", &stable.iter().map(String::as_str).collect::<Vec<_>>()).await;
    wait_sources(&daemon, "connected", connected).await;
    let published = record(&daemon);

    let bound = Duration::from_secs(10);
    let every = disconnects / gones.max(1);
    let (mut step, mut gone) = (0, 0);
    for i in 0..disconnects {
        churn(&fake, step);
        step += 1;
        if gone < gones && i % every == 0 {
            // The watch misses a change, the history is compacted, and the
            // server ends the watch: kube resumes from a version that is
            // gone (a 410 event, or HTTP 410 every other time), and only
            // that makes the source list again.
            let (lists, watches) = (fake.lists(Kind::Pods), fake.watches(Kind::Pods));
            fake.set_http_410(gone % 2 == 1);
            fake.pause_watches(true);
            churn(&fake, step);
            step += 1;
            fake.compact();
            fake.pause_watches(false);
            fake.end_watches();
            until(&format!("a relist and a watch after 410 number {gone}"), bound, || {
                fake.lists(Kind::Pods) > lists && fake.watches(Kind::Pods) > watches + 1
            })
            .await;
            gone += 1;
        }
        let watches = fake.watches(Kind::Pods);
        fake.drop_connections();
        // A new watch is open to cut next: kube resumed the cut one (a cut
        // between chunks reads as the server ending it), or the source
        // failed and listed again.
        until(&format!("a watch after disconnect {i}"), bound, || fake.watches(Kind::Pods) > watches).await;
        churn(&fake, step);
        step += 1;
    }
    assert_eq!(gone, gones);

    // The final state: exactly the API server's list, nothing lost or stale.
    let want = expected(&fake);
    wait_served(&daemon, "edge", &want.iter().map(String::as_str).collect::<Vec<_>>()).await;
    wait_sources(&daemon, "connected at the end", connected).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(served(&daemon, "edge"), want, "still the final list after settling");
    let (lists, watches) = (fake.lists(Kind::Pods), fake.watches(Kind::Pods));

    let published = published.lock().unwrap();
    let shrunk: Vec<&Vec<String>> = published.iter().filter(|eps| !stable.iter().all(|s| eps.contains(s))).collect();
    assert!(
        shrunk.is_empty(),
        "{} of {} publishes lost a stable endpoint: {:?}",
        shrunk.len(),
        published.len(),
        shrunk.first()
    );
    eprintln!(
        "soak: {disconnects} disconnects, {gones} 410s, {step} churn steps: {lists} lists, {watches} watches, {} publishes",
        published.len()
    );
}

/// Every endpoint set `edge` is published with.
fn record(daemon: &Daemon) -> Arc<Mutex<Vec<Vec<String>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (mut rx, out) = (daemon.published(), seen.clone());
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let published = rx.borrow_and_update().clone();
            out.lock().unwrap().push(served_in(&published, "edge"));
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_and_410s_while_pods_churn_lose_nothing_and_never_shrink_a_cluster() {
    soak(CI_DISCONNECTS, CI_GONES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full soak, about 50 s: cargo test --test kube_soak -- --ignored"]
async fn a_thousand_disconnects_and_a_hundred_410s_while_pods_churn_lose_nothing() {
    soak(FULL_DISCONNECTS, FULL_GONES).await;
}
