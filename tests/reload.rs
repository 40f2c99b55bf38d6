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
    // (The status follows the publication, not the other way round.)
    eventually("the error to be cleared", 200, || {
        let cleared = status.borrow().error.is_none();
        async move { cleared.then_some(()) }
    })
    .await;

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

/// What every test in this binary logs at (the first caller installs it).
const LOG_FILTER: &str = "info,devbridge=debug";

/// Log lines about `file` that contain `what`.
fn log_lines(file: &Path, what: &str) -> Vec<String> {
    let file = file.display().to_string();
    support::logs::captured(LOG_FILTER)
        .lines()
        .filter(|l| l.contains(what) && l.contains(&file))
        .map(str::to_string)
        .collect()
}

/// Waits until the reloader of `file` has finished starting: from then on
/// only an edit may make it read the file.
async fn wait_following(file: &Path) {
    eventually("the reloader to follow the profile", 200, || {
        let n = log_lines(file, "following the profile").len();
        async move { (n > 0).then_some(()) }
    })
    .await;
}

/// A daemon that follows `file` and has an admin API, with no Envoy.
async fn mk_daemon(file: &Path, text: &str) -> Daemon {
    std::fs::write(file, text).unwrap();
    let profile = load_file(file).unwrap();
    let options = Options { follow: Some(file.to_path_buf()), ..Options::default() };
    let (xds, admin) = (loopback_listener().await, loopback_listener().await);
    Daemon::start_with(profile, xds, Some(admin), CancellationToken::new(), options).unwrap()
}

/// `mk_profile` with `padding` (TOML comment lines) right after the proxy's
/// `zone` line. A file cut there is a valid profile whose proxy serves
/// nothing: publishing it would make Envoy drop its listener.
fn mk_padded_profile(port: u16, stable: SocketAddr, extra_route: &str, padding: &str) -> (String, usize) {
    let whole = mk_profile(port, stable, extra_route);
    let zone = "zone = \"dev-local\"\n";
    let cut = whole.find(zone).unwrap() + zone.len();
    (format!("{}{padding}{}", &whole[..cut], &whole[cut..]), cut)
}

/// A small deterministic generator (xorshift64*), so a failing run can be
/// repeated from the seed it prints.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// How a test writer puts a profile in place without renaming it.
#[derive(Debug, Clone, Copy)]
enum InPlace {
    /// One open file: each piece written and flushed, a pause, the next.
    OneOpen,
    /// Like `>` then `>>` in a shell: the first piece truncates, every
    /// later one opens the file again to append, each closed at once.
    Reopened,
}

async fn write_in_pieces(file: &Path, text: &str, cuts: &[usize], pauses: &[u64], how: InPlace) {
    use std::io::Write;
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).chain([text.len()]).collect();
    let mut open = None;
    for (i, piece) in bounds.windows(2).enumerate() {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(pauses[i - 1])).await;
        }
        let mut f = match open.take() {
            Some(f) => f,
            None if i == 0 => std::fs::File::create(file).unwrap(),
            None => std::fs::OpenOptions::new().append(true).open(file).unwrap(),
        };
        f.write_all(&text.as_bytes()[piece[0]..piece[1]]).unwrap();
        f.flush().unwrap();
        if matches!(how, InPlace::OneOpen) {
            open = Some(f);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_written_in_place_in_pieces_is_served_only_once_whole() {
    support::logs::captured(LOG_FILTER);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.toml");
    let s = setup(&file, file.clone()).await;
    let status = s.daemon.reload_status();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("pieces and pauses from seed {seed}");
    let mut rng = Rng(seed);

    // Each round writes a whole profile in place, cut (among 1 to 3 random
    // places) just after the proxy's zone line. A writer that keeps the
    // file open pauses up to 400 ms between pieces; one that reopens it
    // pauses less than the settle window after a close (500 ms).
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        let body = format!("round {round}");
        let (how, padding, max_pause) = match round % 3 {
            0 => (InPlace::OneOpen, String::new(), 400),
            1 => (InPlace::Reopened, String::new(), 300),
            // 20 MB, most of it a comment after the cut, written by one
            // open file 64 KiB at a time.
            _ => {
                (InPlace::OneOpen, "# padding padding padding padding padding padding padding pad\n".repeat(330_000), 1)
            }
        };
        let (text, zone_cut) = mk_padded_profile(s.port, s.stable.addr, &direct("/round", &body), &padding);
        let mut cuts = vec![zone_cut];
        if padding.is_empty() {
            for _ in 0..rng.below(3) {
                cuts.push(1 + rng.below(text.len() as u64 - 1) as usize);
            }
        } else {
            cuts.extend((zone_cut..text.len()).step_by(64 * 1024).skip(1));
        }
        cuts.sort_unstable();
        cuts.dedup();
        let pauses: Vec<u64> = cuts.iter().map(|_| rng.below(max_pause + 1)).collect();
        write_in_pieces(&file, &text, &cuts, &pauses, how).await;
        s.wait_for("/round", (200, body.as_str())).await;
        assert_eq!(
            (status.borrow().reloads_ok, status.borrow().reloads_failed),
            (round as u64 + 1, 0),
            "round {round} ({how:?}, cuts {cuts:?}, pauses {pauses:?}): one reload per whole file, none for a piece"
        );
    }
    let reloads = log_lines(&file, "profile reloaded");
    assert_eq!(reloads.len(), ROUNDS, "one reload per whole file, none for a piece: {reloads:#?}");
    assert!(log_lines(&file, "profile edit rejected").is_empty());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_profile_is_not_read_again() {
    support::logs::captured(LOG_FILTER);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idle.toml");
    let _daemon = mk_daemon(&file, &mk_profile(free_port(), SocketAddr::from(([127, 0, 0, 1], 9)), "")).await;
    wait_following(&file).await;
    let after_start = log_lines(&file, "profile read").len();

    // Nothing touches the file: a few seconds of watching it must not read it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let reads = log_lines(&file, "profile read");
    assert_eq!(reads.len(), after_start, "the idle profile was read again: {:#?}", &reads[after_start..]);
}

/// `routes` more routes on the one domain: enough to keep validation and
/// translation busy for a while.
fn mk_huge_profile(port: u16, routes: usize) -> String {
    let extra: String = (0..routes).map(|i| direct(&format!("/r{i}"), &format!("r{i}"))).collect();
    mk_profile(port, SocketAddr::from(([127, 0, 0, 1], 9)), &extra)
}

/// One worker thread: a reload that validated on it would hold up
/// everything else the daemon serves.
#[tokio::test(flavor = "current_thread")]
async fn the_admin_api_answers_while_a_huge_profile_is_validated() {
    support::logs::captured(LOG_FILTER);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.toml");
    let port = free_port();
    let daemon = mk_daemon(&file, &mk_profile(port, SocketAddr::from(([127, 0, 0, 1], 9)), "")).await;
    let admin = daemon.admin_addr.unwrap();
    wait_following(&file).await;
    let reads_before = log_lines(&file, "profile read").len();

    write_atomically(&file, &mk_huge_profile(port, 5_000));
    // Between the reload's read and its end, /healthz must answer.
    let (mut during, mut done) = (0, false);
    for _ in 0..100_000 {
        if !log_lines(&file, "profile reloaded").is_empty() {
            done = true;
            break;
        }
        if log_lines(&file, "profile read").len() == reads_before {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            continue;
        }
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), http_get(admin, "admin", "/healthz", &[]))
            .await
            .expect("/healthz answers")
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
        if log_lines(&file, "profile reloaded").is_empty() {
            during += 1;
        }
    }
    assert!(done, "the huge profile was never reloaded");
    assert_eq!(daemon.reload_status().borrow().reloads_ok, 1);
    assert!(during > 0, "/healthz never answered while the huge profile was being validated");
}

/// An edit made while the daemon starts (after the profile was read, before
/// its watcher exists) is served, not mistaken for the profile in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_the_daemon_starts_is_served() {
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let port = free_port();
    let file = support::ProfileFile::new("starting", &mk_profile(port, upstream, ""));
    let profile = file.load();
    let edited = mk_profile(port, upstream, &direct("/new", "late"));
    write_atomically(&file.path, &edited);
    let expected = devbridge::profile::parse_profile(&file.path.display().to_string(), "starting", &edited).unwrap();
    let shutdown = CancellationToken::new();
    let daemon =
        Daemon::start_with(profile, loopback_listener().await, None, shutdown.clone(), file.options()).unwrap();
    eventually("the edit made during start-up to be served", 400, || async {
        (*daemon.current().profile == expected).then_some(())
    })
    .await;
    shutdown.cancel();
    daemon.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_edit_with_more_errors_than_are_listed_says_how_many_more_in_the_log_and_status() {
    support::logs::captured(LOG_FILTER);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many-errors.toml");
    let port = free_port();
    let stable = SocketAddr::from(([127, 0, 0, 1], 9));
    let daemon = mk_daemon(&file, &mk_profile(port, stable, "")).await;
    wait_following(&file).await;

    // 60 routes to a cluster the profile lacks: 60 errors, 50 listed.
    let bad: String =
        (0..60).map(|i| format!("[[domains.routes]]\nprefix = \"/r{i}\"\ncluster = \"nope\"\n")).collect();
    write_atomically(&file, &mk_profile(port, stable, &bad));
    let status = daemon.reload_status();
    eventually("the edit to be rejected", 400, || {
        let failed = status.borrow().reloads_failed;
        async move { (failed > 0).then_some(()) }
    })
    .await;
    let errors = status.borrow().error.clone().expect("the rejection is shown").errors;
    let more = "... and 10 more (only the first 50 are listed)";
    assert_eq!(errors.len(), 51);
    assert_eq!(errors.last().map(String::as_str), Some(more), "{errors:#?}");
    let logs = support::logs::captured(LOG_FILTER);
    let warn = logs
        .split_inclusive('\n')
        .skip_while(|l| !(l.contains("profile edit rejected") && l.contains(&file.display().to_string())))
        .collect::<String>();
    assert!(warn.contains(more), "the WARN says how many more: {warn}");
}
