//! Hot reload with a real Envoy: edits reach Envoy, a bad edit changes
//! nothing and is reported with its location, and traffic on an untouched
//! route never fails while the profile is edited, broken, fixed, renamed
//! over, deleted and recreated, or swapped under a ConfigMap-style link.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use devbridge::app::{Daemon, Options};
use devbridge::bootstrap::{bootstrap, to_yaml};
use devbridge::profile::load::load_file;
use support::{Envoy, Upstream, eventually, free_port, http_get, loopback_listener};
use tokio_util::sync::CancellationToken;

fn mk_profile(port: u16, stable: SocketAddr, extra_route: &str) -> String {
    format!(
        r#"[zones.dev-local]
[proxies.sidecar]
zone = "dev-local"
admin = "127.0.0.1:0"
domains = ["x.test:{port}"]

[[domains]]
name = "x.test:{port}"

[[domains.routes]]
prefix = "/stable"
cluster = "stable"
{extra_route}
[clusters.stable.static]
endpoints = [{{ address = "{stable}" }}]
"#
    )
}

fn direct(path: &str, body: &str) -> String {
    format!("[[domains.routes]]\npath = \"{path}\"\ndirect_response = {{ status = 200, body = \"{body}\" }}\n")
}

/// Writes `text` the way editors and Kubernetes do: a new file renamed over
/// the old one.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Setup {
    daemon: Daemon,
    _envoy: Envoy,
    listener: SocketAddr,
    stable: Upstream,
    port: u16,
    /// Requests to /stable that did not answer 200, and requests sent.
    failures: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    traffic: tokio::task::JoinHandle<()>,
}

async fn setup(file: &Path, follow: PathBuf) -> Setup {
    let stable = Upstream::start("stable").await;
    let port = free_port();
    std::fs::write(file, mk_profile(port, stable.addr, "")).unwrap();
    let profile = load_file(&follow).unwrap();
    let proxy = profile.proxies["sidecar"].clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let options = Options { follow: Some(follow), ..Options::default() };
    let admin = loopback_listener().await;
    let daemon = Daemon::start_with(profile, xds, Some(admin), CancellationToken::new(), options).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    envoy.wait_listening(listener).await;

    // Traffic on a route no edit touches, for as long as the test runs
    // (bounded: at most 4,000 requests).
    let (failures, sent, stop) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (f, n, s) = (failures.clone(), sent.clone(), stop.clone());
    let traffic = tokio::spawn(async move {
        for _ in 0..4000 {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let ok = matches!(http_get(listener, "x.test", "/stable", &[]).await, Ok(r) if r.status == 200);
            n.fetch_add(1, Ordering::SeqCst);
            if !ok {
                f.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    Setup { daemon, _envoy: envoy, listener, stable, port, failures, sent, stop, traffic }
}

impl Setup {
    async fn body(&self, path: &str) -> (u16, String) {
        let r = http_get(self.listener, "x.test", path, &[]).await.unwrap();
        (r.status, r.body)
    }

    async fn wait_for(&self, path: &str, want: (u16, &str)) {
        eventually(&format!("{path} to answer {want:?}"), 200, || async move {
            let got = self.body(path).await;
            (got.0 == want.0 && got.1 == want.1).then_some(())
        })
        .await;
    }

    fn profile(&self, extra: &str) -> String {
        mk_profile(self.port, self.stable.addr, extra)
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.traffic.await.unwrap();
        let (sent, failed) = (self.sent.load(Ordering::SeqCst), self.failures.load(Ordering::SeqCst));
        assert!(sent > 0);
        assert_eq!(failed, 0, "{failed} of {sent} requests to the untouched route failed during the edits");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_break_fix_rename_and_recreate_are_followed_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.toml");
    let s = setup(&file, file.clone()).await;
    let status = s.daemon.reload_status();

    // An edit: a new route.
    write_atomically(&file, &s.profile(&direct("/new", "one")));
    s.wait_for("/new", (200, "one")).await;
    assert_eq!(status.borrow().reloads_ok, 1);
    assert_eq!(status.borrow().last_change.as_deref(), Some("routes +1"));

    // A bad edit: the old route keeps answering; the error is located.
    let broken = s.profile(&direct("/new", "two")).replace("cluster = \"stable\"", "cluster = \"stabel\"");
    write_atomically(&file, &broken);
    let error = eventually("the bad edit to be reported", 200, || {
        let e = status.borrow().error.clone();
        async move { e }
    })
    .await;
    assert_eq!(
        error.errors,
        [format!(
            "{}:12:11: domains[0].routes[0].cluster: \"stabel\" is not a cluster; known clusters: stable",
            file.display()
        )]
    );
    assert_eq!(s.body("/new").await, (200, "one".into()));
    assert_eq!(status.borrow().reloads_failed, 1);
    // The admin API shows it too.
    let admin = s.daemon.admin_addr.unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&http_get(admin, "admin", "/status", &[]).await.unwrap().body).unwrap();
    assert_eq!(json["reload"]["error"]["errors"], serde_json::json!(error.errors));
    assert_eq!(json["reload"]["reloads_failed"], 1);

    // The fix replaces the error.
    write_atomically(&file, &s.profile(&direct("/new", "three")));
    s.wait_for("/new", (200, "three")).await;
    assert_eq!(status.borrow().error, None);

    // Deleted, then created again: served again once it is back.
    std::fs::remove_file(&file).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    std::fs::write(&file, s.profile(&direct("/new", "four"))).unwrap();
    s.wait_for("/new", (200, "four")).await;

    // Written in place (truncate, then write), as some editors do: no error
    // is reported for the moment the file is empty.
    let failed_before = status.borrow().reloads_failed;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&file).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        f.write_all(s.profile(&direct("/new", "five")).as_bytes()).unwrap();
    }
    s.wait_for("/new", (200, "five")).await;
    assert_eq!(status.borrow().reloads_failed, failed_before);
    s.finish().await;
}

/// Kubernetes mounts a ConfigMap as `name -> ..data/name` with `..data` a
/// link to a timestamped directory, and updates it by swapping `..data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..v1")).unwrap();
    std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/dev.toml", root.join("dev.toml")).unwrap();
    let s = setup(&root.join("..v1/dev.toml"), root.join("dev.toml")).await;

    std::fs::create_dir(root.join("..v2")).unwrap();
    std::fs::write(root.join("..v2/dev.toml"), s.profile(&direct("/cm", "swapped"))).unwrap();
    std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..v1")).unwrap();

    s.wait_for("/cm", (200, "swapped")).await;
    s.finish().await;
}

/// A reload reads the file by the same rule as start-up and `check`: text
/// that is not UTF-8 (here a Latin-1 "café") is refused at its byte, never
/// served as replacement characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_is_not_utf8_is_refused_at_its_byte_and_the_old_profile_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.toml");
    let s = setup(&file, file.clone()).await;
    let status = s.daemon.reload_status();
    write_atomically(&file, &s.profile(&direct("/new", "one")));
    s.wait_for("/new", (200, "one")).await;

    let text = s.profile(&direct("/new", "cafX"));
    let at = text.find("cafX").unwrap() + 3;
    let mut bytes = text.into_bytes();
    bytes[at] = 0xe9;
    let tmp = file.with_extension("tmp~");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &file).unwrap();

    let error = eventually("the Latin-1 edit to be reported", 200, || {
        let e = status.borrow().error.clone();
        async move { e }
    })
    .await;
    let before = std::str::from_utf8(&bytes[..at]).unwrap();
    let (line, column) = (before.lines().count(), before.rsplit('\n').next().unwrap().chars().count() + 1);
    assert_eq!(
        error.errors,
        [format!(
            "{}:{line}:{column}: invalid UTF-8 at byte {at} (0xe9); profiles must be UTF-8 (was the file saved as Latin-1?)",
            file.display()
        )]
    );
    assert_eq!(s.body("/new").await, (200, "one".into()));
    s.finish().await;
}
