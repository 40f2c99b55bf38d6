//! The OS-process runtime: devbridge runs the sidecar Envoy itself
//! (`devbridge connect --envoy`), restarts it with backoff when it exits,
//! relays its log under devbridge's (Envoy's errors as WARN, the rest at
//! DEBUG), and stops it on shutdown: SIGTERM, then SIGKILL after a grace
//! period.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// First wait before restarting an Envoy that exited; doubles up to the max.
pub const DEFAULT_RESTART_BACKOFF: Duration = Duration::from_millis(500);
pub const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// An Envoy that ran this long before exiting restarts at the first backoff.
pub const DEFAULT_HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long Envoy gets to exit after SIGTERM before it is killed.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Envoy log lines kept to explain an exit.
const TAIL_LINES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("no Envoy binary at {}; pass the path of an executable envoy to --envoy-bin", .0.display())]
    NotAtPath(PathBuf),
    #[error(
        "no Envoy binary found (looked for `envoy` on PATH and next to devbridge{}); install one with `./install.sh --with-envoy`, or pass --envoy-bin PATH",
        beside.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default()
    )]
    NotFound { beside: Option<PathBuf> },
}

/// Finds Envoy: `explicit`, else `envoy` on PATH, else next to devbridge.
pub fn find_envoy(explicit: Option<&Path>) -> Result<PathBuf, SuperviseError> {
    if let Some(p) = explicit {
        return if is_executable(p) { Ok(p.to_path_buf()) } else { Err(SuperviseError::NotAtPath(p.to_path_buf())) };
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("envoy")).find(|p| is_executable(p)));
    if let Some(p) = on_path {
        return Ok(p);
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("envoy")));
    match beside {
        Some(p) if is_executable(&p) => Ok(p),
        other => Err(SuperviseError::NotFound { beside: other }),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct EnvoyCommand {
    pub bin: PathBuf,
    pub bootstrap: PathBuf,
    /// Envoy writes its admin address here once it listens.
    pub admin_address_path: PathBuf,
}

/// Runs Envoy until `shutdown`, restarting it whenever it exits.
pub async fn supervise(cmd: EnvoyCommand, shutdown: CancellationToken) {
    let mut backoff = DEFAULT_RESTART_BACKOFF;
    loop {
        let started = Instant::now();
        let mut child = match spawn(&cmd) {
            Ok(c) => c,
            Err(e) => {
                warn!(bin = %cmd.bin.display(), error = %e, "cannot start Envoy; retrying");
                if sleep_or_shutdown(backoff, &shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(DEFAULT_RESTART_BACKOFF_MAX);
                continue;
            }
        };
        let pid = child.id().unwrap_or_default();
        info!(pid, bin = %cmd.bin.display(), bootstrap = %cmd.bootstrap.display(), "Envoy started");
        let tail = Arc::new(Mutex::new(Tail::new(TAIL_LINES)));
        relay(child.stdout.take(), tail.clone());
        relay(child.stderr.take(), tail.clone());
        let admin_path = cmd.admin_address_path.clone();
        let announce = tokio::spawn(tracing::Instrument::in_current_span(async move {
            for _ in 0..100 {
                if let Some(a) = std::fs::read_to_string(&admin_path).ok().filter(|s| !s.trim().is_empty()) {
                    info!(admin = %a.trim(), "Envoy admin listening");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));

        let status = tokio::select! {
            status = child.wait() => status,
            _ = shutdown.cancelled() => {
                announce.abort();
                stop(&mut child, pid).await;
                return;
            }
        };
        announce.abort();
        let last = tail.lock().unwrap_or_else(|p| p.into_inner()).lines();
        if started.elapsed() >= DEFAULT_HEALTHY_RUN {
            backoff = DEFAULT_RESTART_BACKOFF;
        }
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        warn!(pid, %status, restart_in = ?backoff, last_lines = %last.join("\n"),
            "Envoy exited; restarting it");
        if sleep_or_shutdown(backoff, &shutdown).await {
            return;
        }
        backoff = (backoff * 2).min(DEFAULT_RESTART_BACKOFF_MAX);
    }
}

fn spawn(cmd: &EnvoyCommand) -> std::io::Result<Child> {
    let _ = std::fs::remove_file(&cmd.admin_address_path);
    Command::new(&cmd.bin)
        .arg("-c")
        .arg(&cmd.bootstrap)
        // Several sidecars may run on one machine: no shared memory between them.
        .arg("--disable-hot-restart")
        .arg("--admin-address-path")
        .arg(&cmd.admin_address_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

/// The last lines of a log, kept as they arrive: however long Envoy runs
/// and however much it logs, memory holds at most `capacity` lines.
#[derive(Debug)]
struct Tail {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Tail {
    fn new(capacity: usize) -> Self {
        Self { lines: VecDeque::with_capacity(capacity), capacity }
    }

    fn push(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// Relays Envoy's output: its errors as WARN, everything else at DEBUG.
/// Every line also goes to `tail`, to explain an exit.
fn relay(out: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>, tail: Arc<Mutex<Tail>>) {
    let Some(out) = out else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("][error][") || line.contains("][critical][") {
                warn!(target: "envoy", "{line}");
            } else {
                debug!(target: "envoy", "{line}");
            }
            tail.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
}

async fn stop(child: &mut Child, pid: u32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    info!(pid, "stopping Envoy");
    if let Ok(p) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    if tokio::time::timeout(DEFAULT_STOP_GRACE, child.wait()).await.is_err() {
        warn!(pid, grace = ?DEFAULT_STOP_GRACE, "Envoy did not stop after SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// Sleeps; true when shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_only_the_last_lines_as_they_arrive() {
        let mut tail = Tail::new(3);
        for i in 0..10_000 {
            tail.push(format!("line {i}"));
            assert!(tail.lines.len() <= 3, "never more than the capacity");
        }
        assert_eq!(tail.lines(), ["line 9997", "line 9998", "line 9999"]);
    }

    #[test]
    fn an_explicit_path_that_is_not_executable_is_refused_with_the_flag_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("envoy");
        std::fs::write(&plain, "not a program").unwrap();
        let err = find_envoy(Some(&plain)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("no Envoy binary at {}; pass the path of an executable envoy to --envoy-bin", plain.display())
        );
    }

    #[test]
    fn the_not_found_error_names_install_sh() {
        let err = SuperviseError::NotFound { beside: Some("/opt/bin/envoy".into()) }.to_string();
        assert_eq!(
            err,
            "no Envoy binary found (looked for `envoy` on PATH and next to devbridge at /opt/bin/envoy); install one with `./install.sh --with-envoy`, or pass --envoy-bin PATH"
        );
    }
}
