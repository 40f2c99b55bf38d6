//! The container runbooks of `examples/pyservice/README.md`, run command by
//! command as written, against a real Docker daemon: `docker run` and
//! docker compose, each with its Envoy sidecar reaching devbridge on the host
//! over mutual TLS at `host.docker.internal`, and `curl` on the host getting
//! the answer through the service, the sidecar, devbridge's route and the
//! stand-in edge. The docker runbook then restarts devbridge, and then the
//! sidecar, under a request loop from the host.
//!
//! `tests/run.sh` installs and starts the daemon and builds the images the
//! runbooks name (`tests/docker/images.sh`); without them this test fails,
//! unless `DEVBRIDGE_SKIP_DOCKER` says why it cannot run. The runbooks run
//! in a copy of the example (so `out/` of the checkout is not touched), with
//! a HOME of their own (the certificates) and this build's devbridge first
//! on PATH. Every container and network they make is removed when the test
//! ends, passing or failing; names the runbooks use that are already taken
//! stop the test before it starts anything.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::Reaped;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");
const README: &str = "examples/pyservice/README.md";
/// The runbooks' fixed ports and container names: one runbook at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// Where the runbooks publish pyservice on the host.
const SERVICE: &str = "127.0.0.1:8180";
/// The `docker run` runbook's containers.
const CONTAINERS: &[&str] = &["pyservice", "pyservice-edge", "pyservice-envoy"];
/// The compose project: the directory of compose.yaml.
const PROJECT: &str = "pyservice";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the daemon and images are there; `false` (skip) only when
/// `DEVBRIDGE_SKIP_DOCKER` says why they cannot be.
fn docker_ready() -> bool {
    let info = Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status();
    let images = Command::new("docker")
        .args(["image", "inspect", "python:3.12-slim", "envoyproxy/envoy:v1.40-latest"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if info.is_ok_and(|s| s.success()) && images.is_ok_and(|s| s.success()) {
        return true;
    }
    match std::env::var("DEVBRIDGE_SKIP_DOCKER") {
        Ok(why) => {
            eprintln!("skipping the container runbooks: {why}");
            false
        }
        Err(_) => panic!(
            "a Docker daemon with the images python:3.12-slim and envoyproxy/envoy:v1.40-latest is needed; \
             tests/run.sh (as root) installs docker.io, starts dockerd and builds them (tests/docker/images.sh)"
        ),
    }
}

// ------------------------------------------------------------------ the README, read as a runbook

/// The shell commands of the `sh` blocks under the heading `## title`,
/// with continued lines (`\`) joined.
fn commands(readme: &str, title: &str) -> Vec<String> {
    let heading = format!("## {title}\n");
    let start = readme.find(&heading).unwrap_or_else(|| panic!("no {heading:?} in {README}")) + heading.len();
    let section = &readme[start..readme[start..].find("\n## ").map_or(readme.len(), |i| start + i)];
    let (mut out, mut in_block, mut pending) = (Vec::new(), false, String::new());
    for line in section.lines() {
        match line.trim_end() {
            "```sh" => in_block = true,
            "```" => in_block = false,
            l if in_block => match l.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => out.push(std::mem::take(&mut pending) + l),
            },
            _ => {}
        }
    }
    assert!(!out.is_empty(), "no commands under {heading:?}");
    out
}

/// The one inline command of a section's text starting with `start`
/// (`` `docker rm -f ...` stops it``).
fn inline(readme: &str, start: &str) -> String {
    let found: Vec<&str> = readme.split('`').skip(1).step_by(2).filter(|c| c.starts_with(start)).collect();
    assert_eq!(found.len(), 1, "expected one `{start} ...` in {README}: {found:?}");
    found[0].to_string()
}

/// Where the runbooks run: a copy of the example at its repository path, a
/// HOME for the certificates, this build's devbridge first on PATH, and
/// the Compose command this machine has.
struct Runbook {
    dir: tempfile::TempDir,
    path: String,
    compose: &'static str,
}

impl Runbook {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let example = dir.path().join("examples");
        std::fs::create_dir_all(&example).unwrap();
        let copied = Command::new("cp").arg("-r").arg(root().join("examples/pyservice")).arg(&example).status();
        assert!(copied.unwrap().success());
        let _ = std::fs::remove_dir_all(example.join("pyservice/out"));
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("devbridge")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let v2 = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
        Self { dir, path, compose: if v2 { "docker compose" } else { "docker-compose" } }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir.path())
            .env("PATH", &self.path)
            .env("HOME", self.home())
            // The base images exist only on this machine: the classic
            // builder uses them as they are, where BuildKit (when the buildx
            // plugin is installed) would ask a registry for their metadata.
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("DEVBRIDGE_XDS_LISTEN")
            .env_remove("DEVBRIDGE_ADMIN_LISTEN");
        c
    }

    /// A runbook line, with v1's `docker-compose` when the v2 plugin is missing.
    fn line(&self, line: &str) -> String {
        line.replace("docker compose ", &format!("{} ", self.compose))
    }

    /// Runs one line with bash, bounded; its output, failing the test when it fails.
    fn run(&self, line: &str) -> String {
        let line = self.line(line);
        eprintln!("$ {line}");
        let out = bounded(self.command("bash").args(["-c", &line]), Duration::from_secs(300));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "`{line}` failed ({}):\n{text}", out.status);
        text
    }

    /// `devbridge connect ...` in the background, once its admin API answers.
    fn start_devbridge(&self, line: &str) -> Reaped {
        eprintln!("$ {line} &");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&words[..2], ["devbridge", "connect"], "{line}");
        let log = std::fs::File::create(self.dir.path().join("devbridge.log")).unwrap();
        let child = self
            .command(BIN)
            .args(&words[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start devbridge");
        let daemon = Reaped::new(child);
        let ready = poll(Duration::from_secs(20), || self.status().is_some());
        assert!(ready, "devbridge did not answer within 20 s:\n{}", self.devbridge_log());
        daemon
    }

    /// `devbridge status` of the example's profile, when the daemon answers.
    fn status(&self) -> Option<String> {
        let out = self.command(BIN).args(["status", "examples/pyservice/pyservice.toml"]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("devbridge ").then_some(text)
    }

    fn devbridge_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("devbridge.log")).unwrap_or_default()
    }

    /// Every command of the README's section `title`, in order; its `curl`
    /// lines until the answer starts with `expect`, which the README promises.
    fn run_section(&self, readme: &str, title: &str, expect: &str) {
        assert!(readme.contains(&format!("Expect `{}", expect.trim_end())), "{README} promises {expect:?}");
        for line in commands(readme, title) {
            if line.starts_with("curl ") {
                self.curl_until(&line, expect);
            } else {
                self.run(&line);
            }
        }
    }

    /// What the runbook's stop `lines` remove, removed when the guard drops.
    fn cleanup(&self, lines: Vec<String>) -> Cleanup {
        Cleanup { lines, dir: self.dir.path().to_path_buf(), path: self.path.clone() }
    }

    /// The runbook's `curl` line, until its answer starts with `expect`
    /// (the sidecar needs a moment to get its listener), bounded.
    fn curl_until(&self, line: &str, expect: &str) -> String {
        assert!(line.starts_with("curl "), "{line}");
        let mut last = String::new();
        let answered = poll(Duration::from_secs(60), || {
            let out = self.command("bash").args(["-c", &format!("{line} --silent --max-time 5")]).output().unwrap();
            last = String::from_utf8_lossy(&out.stdout).to_string();
            last.starts_with(expect)
        });
        assert!(answered, "`{line}` never answered {expect:?}; last answer {last:?}\n{}", self.devbridge_log());
        eprintln!("{last}");
        last
    }
}

/// One runbook at a time, once the daemon and images are there and the
/// runbooks' names are free: the lock, the README and a fresh runbook
/// directory; `None` when `DEVBRIDGE_SKIP_DOCKER` says to skip.
fn start() -> Option<(std::sync::MutexGuard<'static, ()>, String, Runbook)> {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !docker_ready() {
        return None;
    }
    names_are_free();
    let readme = std::fs::read_to_string(root().join(README)).unwrap();
    Some((one, readme, Runbook::new()))
}

/// Removes what the runbooks make, when the test ends however it ends.
struct Cleanup {
    lines: Vec<String>,
    dir: PathBuf,
    path: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for line in &self.lines {
            let mut c = Command::new("bash");
            c.args(["-c", line]).current_dir(&self.dir).env("PATH", &self.path);
            let _ = bounded(c.stdout(Stdio::null()).stderr(Stdio::null()), Duration::from_secs(120));
        }
    }
}

/// Fails before anything starts when a name the runbooks use is taken:
/// those containers are not this test's to remove.
fn names_are_free() {
    let out = Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
    let names = String::from_utf8_lossy(&out.stdout).to_string();
    let taken: Vec<&str> = names
        .lines()
        .filter(|n| {
            CONTAINERS.contains(n) || n.starts_with(&format!("{PROJECT}_")) || n.starts_with(&format!("{PROJECT}-"))
        })
        .collect();
    assert!(
        taken.is_empty(),
        "containers named as the runbooks' exist already: {taken:?}; remove them (docker rm -f ...) or set DEVBRIDGE_SKIP_DOCKER"
    );
}

/// A command's output, killed after `limit`.
fn bounded(command: &mut Command, limit: Duration) -> Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            rx.recv().expect("the output")
        })
        .expect("wait")
}

/// Polls `f` every 200 ms until it holds, for at most `limit`.
fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ------------------------------------------------------------------ a request loop from the host

/// `GET /trace/1` on pyservice, bounded: the body when the answer came
/// through the edge (`00ff00`).
fn through_the_edge() -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&SERVICE.parse().unwrap(), Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /trace/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    match answer.contains("00ff00") {
        true => Ok(answer),
        false => Err(answer.lines().last().unwrap_or_default().to_string()),
    }
}

/// Requests in a loop until stopped (or 5,000 of them), each with its time and outcome.
struct Requests {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, Result<String, String>)>>,
}

impl Requests {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..5_000 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                seen.push((Instant::now(), through_the_edge()));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<(Instant, Result<String, String>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

// ------------------------------------------------------------------ the runbooks

/// `devbridge status`: one Envoy connected, each of its four types acked.
fn all_acked(status: &str) -> bool {
    status.contains("envoys: 1 connected")
        && ["CDS", "EDS", "LDS", "RDS"]
            .iter()
            .all(|t| status.lines().any(|l| l.trim_start().starts_with(&format!("{t}  acked"))))
}

/// The TLS section's certificates, and devbridge started as it says.
fn tls_and_devbridge(book: &Runbook, readme: &str) -> (Reaped, String) {
    let mut connect = None;
    for line in commands(readme, "Containers: TLS to devbridge") {
        if line.starts_with("devbridge connect ") {
            connect = Some(line);
        } else {
            book.run(&line);
        }
    }
    let connect = connect.expect("the TLS section starts devbridge");
    assert!(connect.contains("--for docker") && connect.contains("--tls"), "{connect}");
    (book.start_devbridge(&connect), connect)
}

#[test]
fn the_docker_runbook_runs_as_written_and_survives_restarts_of_devbridge_and_the_sidecar() {
    let Some((_one, readme, book)) = start() else { return };
    let _cleanup = book.cleanup(vec![inline(&readme, "docker rm -f ")]);
    let (devbridge, connect) = tls_and_devbridge(&book, &readme);
    let log = book.devbridge_log();
    assert!(log.contains("listening for sidecars in containers on the address of docker's bridge"), "{log}");

    book.run_section(&readme, "docker", "Hello from docker -- 00ff00 (service 1)! hostname: ");
    let status = book.status().expect("devbridge answers");
    assert!(all_acked(&status) && status.contains("from 172."), "{status}");
    // The stand-in edge is on the containers' loopback, out of this
    // machine's reach: not probed, rather than reported unreachable.
    assert!(
        status.contains("cluster edge: 1 loopback endpoint not probed: the sidecars run in containers"),
        "{status}"
    );
    assert!(!status.contains("0 reachable"), "{status}");

    // devbridge restarted: Envoy keeps serving what it has, reconnects
    // within its backoff (0.1 s to 1 s), and no request fails.
    let requests = Requests::start();
    std::thread::sleep(Duration::from_secs(1));
    drop(devbridge);
    std::thread::sleep(Duration::from_millis(500));
    let devbridge = book.start_devbridge(&connect);
    let answering = Instant::now();
    let reconnected = poll(Duration::from_secs(15), || book.status().is_some_and(|s| all_acked(&s)));
    assert!(reconnected, "the sidecar did not reconnect to the restarted devbridge:\n{:?}", book.status());
    // Reported, not asserted: the bootstrap's backoff is 0.1 s to 1 s.
    eprintln!("the sidecar re-ACKed every type {:?} after devbridge answered again", answering.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    let across_devbridge = requests.finish();
    let failed: Vec<_> = across_devbridge.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(across_devbridge.len() > 20, "{} requests", across_devbridge.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the devbridge restart: {failed:?}",
        failed.len(),
        across_devbridge.len()
    );

    // The sidecar restarted: requests fail while it is down, then none.
    let requests = Requests::start();
    std::thread::sleep(Duration::from_millis(500));
    book.run("docker restart pyservice-envoy");
    // Running again; up once it first answers after this.
    let restarted = Instant::now();
    let up = poll(Duration::from_secs(60), || through_the_edge().is_ok());
    assert!(up, "the restarted sidecar never answered:\n{:?}", book.status());
    std::thread::sleep(Duration::from_secs(2));
    let across_sidecar = requests.finish();
    let first_ok = across_sidecar
        .iter()
        .find(|(at, r)| *at > restarted && r.is_ok())
        .map(|(at, _)| *at)
        .expect("an answer after the sidecar restart");
    let after: Vec<_> = across_sidecar.iter().filter(|(at, _)| *at >= first_ok).collect();
    let failed: Vec<_> = after.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(after.len() > 20, "{} requests after the sidecar was up", after.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed after the sidecar was up: {failed:?}",
        failed.len(),
        after.len()
    );
    let status = book.status().expect("devbridge answers");
    assert!(all_acked(&status), "{status}");
    eprintln!(
        "{} requests across the devbridge restart, all answered; {} after the sidecar was up again, all answered",
        across_devbridge.len(),
        after.len()
    );

    // The runbook's own stop line leaves none of its containers.
    book.run(&inline(&readme, "docker rm -f "));
    drop(devbridge);
    names_are_free();
}

#[test]
fn the_compose_runbook_runs_as_written_with_the_compose_this_machine_has() {
    let Some((_one, readme, book)) = start() else { return };
    let down = inline(&readme, "docker compose -f examples/pyservice/compose.yaml down");
    let _cleanup = book.cleanup(vec![book.line(&down) + " --remove-orphans"]);
    let (devbridge, _) = tls_and_devbridge(&book, &readme);

    eprintln!("compose: {}", book.compose);
    book.run_section(&readme, "docker compose", "Hello from compose -- 00ff00 (service 1)! hostname: ");
    let status = book.status().expect("devbridge answers");
    assert!(all_acked(&status), "{status}");

    book.run(&down);
    drop(devbridge);
    names_are_free();
    let networks = Command::new("docker").args(["network", "ls", "--format", "{{.Name}}"]).output().unwrap();
    let networks = String::from_utf8_lossy(&networks.stdout).to_string();
    assert!(!networks.lines().any(|n| n.starts_with(PROJECT)), "compose left its network: {networks}");
}
