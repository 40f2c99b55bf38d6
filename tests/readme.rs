//! The README's Quick start, run as written. Every `console` block of the
//! `## Quick start` section is a list of `$ command` lines, each followed by
//! the answer the README says it prints. This test runs the commands in
//! order from the repository root, in bash, with this build's `devbridge`
//! and the tests' Envoy first on `PATH` (`~/.local/bin/devbridge` is this
//! build too), and compares every answer with the README's.
//!
//! - `$ ./install.sh --with-envoy` is not run (it builds a release binary
//!   and installs into the home directory; `tests/install.rs` covers it).
//!   The test only checks that `install.sh` takes `--with-envoy`.
//! - A command ending in `&`, and `devbridge connect` (which the README
//!   runs in a terminal of its own), are started in the background and kept
//!   running; at the end `connect` gets the README's Ctrl-C (SIGINT) and
//!   must exit 0, taking its Envoy with it.
//! - Any other command must exit 0 and print the README's answer. The
//!   answer is compared line by line in any order (Envoy's round robin
//!   starts at a random endpoint), with trailing spaces trimmed and three
//!   things that change from run to run normalised on both sides: content
//!   versions (16 hex digits), ages (`3s ago`), an Envoy's client port and
//!   the daemon's pid (`(pid 4242)`).
//!   A command is retried, every 200 ms for at most 30 s, until its answer
//!   matches, because the daemon, Envoy and the stand-in edges start in
//!   the background.
//!
//! The demo uses fixed loopback ports; the test waits (bounded) for them
//! to be free and fails naming the ones still taken.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use regex::Regex;

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// The demo's ports: Envoy's listener and admin, the stand-in edges, xDS, admin.
const DEMO_PORTS: [u16; 7] = [8888, 9901, 9001, 9002, 9100, 18000, 18001];
/// How long one command may take to give the README's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// How long one attempt of a command may run before it is killed.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);
/// How long the demo's ports may stay taken by something else.
const PORTS_FREE_WITHIN: Duration = Duration::from_secs(60);
/// How long `connect` may take to stop after Ctrl-C.
const STOP_WITHIN: Duration = Duration::from_secs(10);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `$ command` and the lines the README shows under it.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    command: String,
    answer: Vec<String>,
}

/// The Quick start section: from `## Quick start` to the next `## ` heading.
fn quick_start(readme: &str) -> &str {
    let start = readme.find("\n## Quick start\n").expect("README.md has a `## Quick start` section");
    let body = &readme[start + 1..];
    let end = body[3..].find("\n## ").map(|i| i + 3).unwrap_or(body.len());
    &body[..end]
}

/// Every `$ ` command of the section's fenced blocks, with its answer.
/// Every block must be a `console` block, so none goes unchecked.
fn steps(section: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if let Some(info) = line.strip_prefix("```") {
            if !in_block {
                assert_eq!(
                    info.trim(),
                    "console",
                    "every code block of the Quick start is a `console` block that this test runs; found ```{info}"
                );
            }
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            assert!(!command.ends_with('\\'), "one command per line: {command}");
            steps.push(Step { command: command.to_string(), answer: Vec::new() });
        } else {
            let step = steps.last_mut().unwrap_or_else(|| panic!("an answer before any command: {line}"));
            step.answer.push(line.to_string());
        }
    }
    assert!(!in_block, "an unclosed code block in the Quick start");
    steps
}

/// What changes from run to run, made equal on both sides.
struct Normalise {
    version: Regex,
    ago: Regex,
    peer: Regex,
    pid: Regex,
}

impl Normalise {
    fn new() -> Self {
        Normalise {
            version: Regex::new(r"\b[0-9a-f]{16}\b").unwrap(),
            ago: Regex::new(r"\b(\d+[dhm] )?\d+[dhms] ago\b").unwrap(),
            peer: Regex::new(r"from 127\.0\.0\.1:\d+").unwrap(),
            pid: Regex::new(r"\(pid \d+\)").unwrap(),
        }
    }

    fn lines(&self, lines: &[String]) -> Vec<String> {
        let mut out: Vec<String> = lines
            .iter()
            .map(|l| {
                let l = self.version.replace_all(l.trim_end(), "<version>");
                let l = self.ago.replace_all(&l, "<age> ago");
                let l = self.pid.replace_all(&l, "(pid <pid>)");
                self.peer.replace_all(&l, "from 127.0.0.1:<port>").into_owned()
            })
            .collect();
        out.sort();
        out
    }
}

/// The processes the Quick start leaves running, ended (by pid) on drop.
#[derive(Default)]
struct Background {
    connect: Option<Child>,
    others: Vec<Child>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for child in self.connect.iter_mut().chain(self.others.iter_mut()) {
            if child.try_wait().ok().flatten().is_none() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
                let _ = child.wait();
            }
        }
    }
}

/// A bin directory holding `devbridge` (this build) and `envoy` (the tests').
fn bin_dir(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("devbridge")).unwrap();
    std::os::unix::fs::symlink(support::envoy_binary(), bin.join("envoy")).unwrap();
    bin
}

fn bash(command: &str, path: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(command).current_dir(root()).env("PATH", path).stdin(Stdio::null());
    // The identity the README shows, and state files (overrides, registered
    // endpoints) of this run's own.
    cmd.env("DEVBRIDGE_IDENTITY", "you@example.com").env("XDG_STATE_HOME", state_dir());
    cmd
}

/// A state directory for this test run, made on first use.
fn state_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a state directory")).path()
}

/// Runs one attempt, killed after [`ATTEMPT_LIMIT`]: exit success and stdout.
fn attempt(command: &str, path: &str, out_file: &Path) -> (bool, String) {
    let out = std::fs::File::create(out_file).unwrap();
    let mut child = bash(command, path).stdout(out).stderr(Stdio::null()).spawn().expect("run bash");
    let started = Instant::now();
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if started.elapsed() > ATTEMPT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        sleep(Duration::from_millis(20));
    };
    (ok, std::fs::read_to_string(out_file).unwrap_or_default())
}

fn taken_ports() -> Vec<u16> {
    DEMO_PORTS.iter().copied().filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_err()).collect()
}

fn wait_for_free_ports() {
    let started = Instant::now();
    loop {
        let taken = taken_ports();
        if taken.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < PORTS_FREE_WITHIN,
            "the demo's loopback ports {taken:?} are taken (another demo or example running?); the Quick start needs them"
        );
        sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_quick_start_section_is_parsed_as_commands_and_answers() {
    let section = "## Quick start\n\ntext\n\n```console\n$ curl -s x\nok\n$ a &\n$ b\nl1\nl2\n```\n\n## Next\n\n```sh\nnot run\n```\n";
    let readme = format!("# t\n\n{section}");
    let got = steps(quick_start(&readme));
    let step = |c: &str, a: &[&str]| Step { command: c.into(), answer: a.iter().map(|s| s.to_string()).collect() };
    assert_eq!(got, vec![step("curl -s x", &["ok"]), step("a &", &[]), step("b", &["l1", "l2"])]);
}

#[test]
fn normalising_keeps_what_matters_and_drops_what_changes() {
    let n = Normalise::new();
    let a = n.lines(&["  CDS  acked  sent 9487003b992d0cbe  acked 9487003b992d0cbe".into(), "loaded 3s ago ".into()]);
    let b = n.lines(&["loaded 1m 5s ago".into(), "  CDS  acked  sent 0123456789abcdef  acked 0123456789abcdef".into()]);
    assert_eq!(a, b);
    let rejected = n.lines(&["  CDS  REJECTED  sent 9487003b992d0cbe  acked -".into(), "loaded 3s ago".into()]);
    assert_ne!(a, rejected);
    assert_ne!(n.lines(&["from 127.0.0.1:18001".into()]), n.lines(&["from 10.0.0.1:18001".into()]));
    assert_eq!(
        n.lines(&["at 127.0.0.1:18001 (pid 12): ready".into()]),
        n.lines(&["at 127.0.0.1:18001 (pid 4242): ready".into()])
    );
}

#[test]
fn the_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read README.md");
    let steps = steps(quick_start(&readme));
    assert!(
        steps.iter().any(|s| s.command.starts_with("devbridge connect demo --envoy")),
        "the Quick start leads with `devbridge connect demo --envoy`: {steps:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bin = bin_dir(dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let normalise = Normalise::new();
    wait_for_free_ports();

    let mut background = Background::default();
    let connect_log = dir.path().join("connect.log");
    for (i, step) in steps.iter().enumerate() {
        let command = step.command.replace("~/.local/bin/devbridge", "devbridge");
        if command == "./install.sh --with-envoy" {
            let script = std::fs::read_to_string(root().join("install.sh")).expect("read install.sh");
            assert!(script.contains("--with-envoy)"), "install.sh takes --with-envoy");
            continue;
        }
        let daemon = command.starts_with("devbridge connect ");
        if let Some(command) = command.strip_suffix('&').map(str::trim).or(daemon.then_some(command.as_str())) {
            assert!(step.answer.is_empty(), "a background command shows no answer: {step:?}");
            let log_path = if daemon { connect_log.clone() } else { dir.path().join(format!("background-{i}.log")) };
            let log = std::fs::File::create(log_path).unwrap();
            let child = bash(&format!("exec {command}"), &path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start a background command");
            if daemon {
                assert!(background.connect.is_none(), "one `devbridge connect` in the Quick start");
                background.connect = Some(child);
            } else {
                background.others.push(child);
            }
            continue;
        }

        let want = normalise.lines(&step.answer);
        let started = Instant::now();
        let out_file = dir.path().join("out");
        let mut last;
        loop {
            let (ok, stdout) = attempt(&command, &path, &out_file);
            let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
            if ok && normalise.lines(&lines) == want {
                break;
            }
            last = (ok, stdout);
            if let Some(connect) = background.connect.as_mut()
                && let Some(status) = connect.try_wait().unwrap()
            {
                let log = std::fs::read_to_string(&connect_log).unwrap_or_default();
                panic!("`devbridge connect` exited ({status}) while `{command}` waited for its answer:\n{log}");
            }
            assert!(
                started.elapsed() < ANSWER_WITHIN,
                "`{}` did not print what README.md shows within {ANSWER_WITHIN:?}.\nREADME:\n{}\nlast run (success: {}):\n{}",
                step.command,
                step.answer.join("\n"),
                last.0,
                last.1
            );
            sleep(Duration::from_millis(200));
        }
    }

    // The README's Ctrl-C: connect stops, and its Envoy with it.
    let mut connect = background.connect.take().expect("the Quick start runs `devbridge connect`");
    kill(Pid::from_raw(connect.id() as i32), Signal::SIGINT).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = connect.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > STOP_WITHIN {
            let _ = connect.kill();
            panic!("`devbridge connect` did not stop within {STOP_WITHIN:?} of Ctrl-C");
        }
        sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "`devbridge connect` exits 0 on Ctrl-C, got {status}");
    drop(background); // the stand-in edges
    let started = Instant::now();
    while !taken_ports().is_empty() {
        assert!(
            started.elapsed() < STOP_WITHIN,
            "after Ctrl-C and the edges' end, ports {:?} are still taken: Envoy was not stopped",
            taken_ports()
        );
        sleep(Duration::from_millis(50));
    }
}
