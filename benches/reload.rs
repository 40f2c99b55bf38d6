//! Reload benchmark: a profile edit (write + rename) until Envoy has it,
//! measured, not asserted. Run with `cargo bench --bench reload` (after
//! `tests/run.sh` has installed Envoy into .venv, or with DEVBRIDGE_ENVOY).
//!
//! Each of 200 edits changes one route's direct-response body. For each:
//! - edit -> push sent: devbridge's own share (file event, read, parse,
//!   validate, translate, RDS response written; a rename is read at once);
//! - edit -> Envoy ACK: the ACK arriving back at devbridge;
//! - edit -> Envoy stats: Envoy's RDS `update_success` counter seen through
//!   its admin API (polled, so it includes up to one admin round trip).
//!
//! The floor to compare with, in the same run: a second Envoy whose route
//! configuration comes from a file it watches itself (`path_config_source`),
//! given the same change by the same write + rename, timed the same way
//! through its stats.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use devbridge::app::{Daemon, Options};
use devbridge::bootstrap::{bootstrap, to_yaml};
use devbridge::profile::load::load_file;
use devbridge::xds::ResourceType;
use support::{Envoy, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

const EDITS: usize = 200;

fn profile(port: u16, body: &str) -> String {
    format!(
        "[zones.z]\n[proxies.p]\nzone = \"z\"\nadmin = \"127.0.0.1:0\"\ndomains = [\"b.test:{port}\"]\n\
         [[domains]]\nname = \"b.test:{port}\"\n[[domains.routes]]\npath = \"/v\"\n\
         direct_response = {{ status = 200, body = \"{body}\" }}\n"
    )
}

/// The same route, as a file Envoy reads itself.
fn rds_file(body: &str) -> String {
    format!(
        r#"{{"resources": [{{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
  "name": "file_routes",
  "virtual_hosts": [{{"name": "b", "domains": ["*"], "routes": [{{"match": {{"path": "/v"}},
    "direct_response": {{"status": 200, "body": {{"inline_string": "{body}"}}}}}}]}}]}}]}}"#
    )
}

fn file_bootstrap(dir: &Path, port: u16) -> String {
    format!(
        r#"{{"node": {{"id": "file", "cluster": "file"}},
"admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": 0}}}}}},
"static_resources": {{"listeners": [{{"name": "l", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {port}}}}},
  "filter_chains": [{{"filters": [{{"name": "envoy.filters.network.http_connection_manager",
    "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "file", "http_filters": [{{"name": "envoy.filters.http.router",
        "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}],
      "rds": {{"route_config_name": "file_routes", "config_source": {{"resource_api_version": "V3",
        "path_config_source": {{"path": "{rds}", "watched_directory": {{"path": "{dir}"}}}}}}}}}}}}]}}]}}]}}}}"#,
        rds = dir.join("rds.json").display(),
        dir = dir.display(),
    )
}

fn write_renamed(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn stat(envoy: &Envoy, name: &str) -> u64 {
    let r =
        http_get(envoy.admin, "admin", &format!("/stats?filter=^{}$", name.replace('.', "\\.")), &[]).await.unwrap();
    r.body
        .lines()
        .find_map(|l| l.split_once(": ").and_then(|(k, v)| (k == name).then(|| v.trim().parse().ok()).flatten()))
        .unwrap_or(0)
}

/// Polls `name` until it exceeds `before`; returns when it did.
async fn until_stat_above(envoy: &Envoy, name: &str, before: u64) -> Instant {
    for _ in 0..20_000 {
        if stat(envoy, name).await > before {
            return Instant::now();
        }
    }
    panic!("{name} never rose above {before}");
}

/// The `q` quantile of `samples`, picked as `support::report` does.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Spins (yielding) until `f` is true; returns when it was.
async fn until(mut f: impl FnMut() -> bool) -> Instant {
    for _ in 0..50_000_000u64 {
        if f() {
            return Instant::now();
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never became true");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bench.toml");
        let port = free_port();
        std::fs::write(&file, profile(port, "start")).unwrap();
        let p = load_file(&file).unwrap();
        let proxy = p.proxies["p"].clone();
        let xds = loopback_listener().await;
        let xds_port = xds.local_addr().unwrap().port();
        let options = Options { follow: Some(file.clone()), ..Options::default() };
        let daemon = Daemon::start_with(p, xds, None, CancellationToken::new(), options).unwrap();
        let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
        envoy.wait_listening(SocketAddr::from(([127, 0, 0, 1], port))).await;

        let fdir = tempfile::tempdir().unwrap();
        let fport = free_port();
        std::fs::write(fdir.path().join("rds.json"), rds_file("start")).unwrap();
        let file_envoy = Envoy::start(&file_bootstrap(fdir.path(), fport)).await;
        file_envoy.wait_accepting(SocketAddr::from(([127, 0, 0, 1], fport))).await;

        let rds_stat = format!("http.ingress_{port}.rds.routes_{port}.update_success");
        let file_stat = "http.file.rds.file_routes.update_success";
        let (mut push, mut ack, mut seen, mut file_seen) = (vec![], vec![], vec![], vec![]);
        for i in 0..EDITS {
            let (pushes, acks) = (daemon.metrics.pushes(ResourceType::Route), daemon.metrics.acks(ResourceType::Route));
            let before = stat(&envoy, &rds_stat).await;
            let text = profile(port, &format!("edit {i}"));
            let t = Instant::now();
            write_renamed(&file, &text);
            push.push(until(|| daemon.metrics.pushes(ResourceType::Route) > pushes).await - t);
            ack.push(until(|| daemon.metrics.acks(ResourceType::Route) > acks).await - t);
            seen.push(until_stat_above(&envoy, &rds_stat, before).await - t);

            let before = stat(&file_envoy, file_stat).await;
            let text = rds_file(&format!("edit {i}"));
            let t = Instant::now();
            write_renamed(&fdir.path().join("rds.json"), &text);
            file_seen.push(until_stat_above(&file_envoy, file_stat, before).await - t);
            // Let both settle so edits are not coalesced.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let body = http_get(SocketAddr::from(([127, 0, 0, 1], port)), "b.test", "/v", &[]).await.unwrap().body;
        assert_eq!(body, format!("edit {}", EDITS - 1));
        println!(
            "reload benchmark: {EDITS} edits (write + rename), one RDS change each; {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let ratio = |ours: &[Duration]| {
            let r = |q| quantile(ours, q).as_secs_f64() / quantile(&file_seen, q).as_secs_f64();
            format!("p50 {:.2}x, p99 {:.2}x", r(0.5), r(0.99))
        };
        let ratios = format!(
            "against Envoy's own file watch: edit -> ACK {}; edit -> stats (the same measure) {}",
            ratio(&ack),
            ratio(&seen)
        );
        support::report("devbridge: edit -> push sent", push);
        support::report("devbridge: edit -> Envoy ACK", ack);
        support::report("devbridge: edit -> Envoy stats show it", seen);
        support::report("Envoy's own file watch: edit -> stats show it", file_seen);
        println!("{ratios}");
    });
}
