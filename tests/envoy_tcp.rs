//! A TCP service through a real Envoy: two real PostgreSQL servers on
//! loopback, queried with `psql` through the sidecar's TCP port while the
//! profile switches the service's endpoints under it.
//!
//! PostgreSQL's server binaries (`initdb`, `postgres`) come from Debian's
//! `postgresql` package; `tests/run.sh` installs it when it is missing and
//! it runs as root, and otherwise sets `DEVBRIDGE_SKIP_POSTGRES` to say why
//! this test cannot run. The servers run as `nobody` when the tests run as
//! root (PostgreSQL refuses to run as root).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use devbridge::app::Daemon;
use devbridge::bootstrap::{bootstrap, select_proxy, to_yaml};
use support::{Envoy, ProfileFile, eventually, free_port, loopback_listener};
use tokio_util::sync::CancellationToken;

/// Where `initdb` and `postgres` are: `DEVBRIDGE_PG_BIN`, else `PATH`,
/// else Debian's `/usr/lib/postgresql/<version>/bin`, newest first.
fn postgres_bin() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("DEVBRIDGE_PG_BIN").map(PathBuf::from) {
        return has(&d).then_some(d);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(d) = std::env::split_paths(&path).find(|d| has(d)) {
        return Some(d);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has(d))
        .collect();
    versions.sort_by_key(|d| {
        d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop()
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A command for PostgreSQL's server side, as `nobody` when we are root.
fn server_command(bin: &Path, args: &[&str]) -> Command {
    if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

/// A PostgreSQL server on a loopback port, stopped (fast shutdown, by its
/// own id) when dropped.
struct Postgres {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Postgres {
    async fn start(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let data = dir.path().join("data");
        let data_s = data.display().to_string();
        let out = server_command(
            &bin.join("initdb"),
            &["-D", &data_s, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
        )
        .output()
        .expect("run initdb");
        assert!(out.status.success(), "initdb failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let (port_s, sockets) = (port.to_string(), dir.path().display().to_string());
        let child = server_command(
            &bin.join("postgres"),
            &[
                "-D",
                &data_s,
                "-p",
                &port_s,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("unix_socket_directories={sockets}"),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=20",
                "-c",
                "shared_buffers=8MB",
                "-c",
                "dynamic_shared_memory_type=mmap",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start postgres");
        let pg = Postgres { child, port, dir };
        let addr = pg.addr();
        eventually("postgres to answer", 400, || async move { psql(addr, "select 1").await.ok() }).await;
        pg
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: it ends every session.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        for _ in 0..200 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn psql_command(addr: SocketAddr) -> Command {
    let mut c = Command::new("psql");
    c.arg("-X")
        .arg("-At")
        .arg(format!("host={} port={} user=postgres dbname=postgres connect_timeout=5", addr.ip(), addr.port()))
        .env("PGAPPNAME", "devbridge-test");
    c
}

/// Runs `sql` with psql against `addr`: its output trimmed, or its error.
async fn psql(addr: SocketAddr, sql: &str) -> Result<String, String> {
    let sql = sql.to_string();
    tokio::task::spawn_blocking(move || {
        let out = psql_command(addr).arg("-c").arg(&sql).stdin(Stdio::null()).output().expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    })
    .await
    .unwrap()
}

/// A psql session reading SQL from a pipe, for a session that must stay
/// open (it holds a lock until `end`).
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Session {
    fn open(addr: SocketAddr, first: &str) -> Self {
        use std::io::Write as _;
        let mut child = psql_command(addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start psql");
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{first}").unwrap();
        stdin.flush().unwrap();
        Self { child, stdin: Some(stdin) }
    }

    /// Closes the session's input: psql ends, and the server ends the session.
    fn end(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn profile(tcp_port: u16, endpoints: &[SocketAddr]) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|a| format!("{{ address = \"{a}\" }}")).collect();
    format!(
        r#"
[zones.dev-local]

[proxies.sidecar]
zone = "dev-local"
admin = "127.0.0.1:0"
tcp = [{{ name = "postgres", port = {tcp_port}, cluster = "staging-db", idle_timeout = "10m" }}]

[clusters.staging-db]
connect_timeout = "1s"
health_check = {{ tcp = true, interval = "1s", timeout = "500ms" }}
static.endpoints = [{endpoints}]
"#,
        endpoints = endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reaches_postgres_through_the_sidecar_and_follows_endpoint_changes() {
    let Some(bin) = postgres_bin() else {
        match std::env::var("DEVBRIDGE_SKIP_POSTGRES") {
            Ok(why) => {
                eprintln!("skipping the PostgreSQL test: {why}");
                return;
            }
            Err(_) => panic!(
                "PostgreSQL's server (initdb, postgres) is needed (Debian: apt-get install postgresql; tests/run.sh does it)"
            ),
        }
    };
    support::envoy_binary();
    let (a, b) = (Postgres::start(&bin).await, Postgres::start(&bin).await);
    let port_of = |pg: &Postgres| pg.port.to_string();

    // The sidecar's TCP service forwards to server a.
    let tcp_port = free_port();
    let file = ProfileFile::new("tcp", &profile(tcp_port, &[a.addr()]));
    let loaded = file.load();
    let proxy = select_proxy(&loaded, None).unwrap().clone();
    let xds = loopback_listener().await;
    let xds_port = xds.local_addr().unwrap().port();
    let daemon = Daemon::start_with(loaded, xds, None, CancellationToken::new(), file.options()).unwrap();
    let envoy = Envoy::start(&to_yaml(&bootstrap(&proxy, "127.0.0.1", xds_port))).await;
    let sidecar = SocketAddr::from(([127, 0, 0, 1], tcp_port));
    envoy.wait_listening(sidecar).await;

    // A real query, answered by server a through the sidecar's port.
    let shown = eventually("a query through the sidecar", 400, || async {
        psql(sidecar, "select current_setting('port')").await.ok()
    })
    .await;
    assert_eq!(shown, port_of(&a), "{}", a.log());
    // Envoy checks the server by connecting to it.
    let e = &envoy;
    eventually("a passing TCP health check", 400, || async move {
        (e.stat("cluster.staging-db.health_check.success").await > 0).then_some(())
    })
    .await;

    // A session that stays open across the switch: through the sidecar it
    // waits on an advisory lock that a direct session to a holds.
    let holder = Session::open(a.addr(), "select pg_advisory_lock(42);");
    eventually("the lock to be held on a", 400, || async {
        (psql(a.addr(), "select count(*) from pg_locks where locktype = 'advisory' and granted").await.ok()? == "1")
            .then_some(())
    })
    .await;
    let long = {
        let mut c = psql_command(sidecar);
        c.args(["-c", "select pg_advisory_lock(42)", "-c", "select 'still ' || current_setting('port')"]);
        tokio::task::spawn_blocking(move || c.stdin(Stdio::null()).output().expect("run psql"))
    };
    eventually("the sidecar's session to wait on a", 400, || async {
        (psql(a.addr(), "select count(*) from pg_locks where locktype = 'advisory' and not granted").await.ok()? == "1")
            .then_some(())
    })
    .await;

    // Switch the service to server b: new connections go to b,
    file.edit(&daemon, &profile(tcp_port, &[b.addr()])).await;
    let b_port = port_of(&b);
    eventually("new connections to reach b", 400, || {
        let b_port = b_port.clone();
        async move { (psql(sidecar, "select current_setting('port')").await.ok()? == b_port).then_some(()) }
    })
    .await;
    // and only to b: a left the pool though it passes its health checks.
    for _ in 0..4 {
        assert_eq!(psql(sidecar, "select current_setting('port')").await, Ok(b_port.clone()));
    }
    // ...while the open one still talks to a, and finishes there.
    holder.end();
    let out = long.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().last(), Some(format!("still {}", a.port).as_str()), "{text}");

    // With no endpoints, a new connection is closed at once: nothing to reach.
    file.edit(&daemon, &profile(tcp_port, &[])).await;
    let refused = eventually("new connections to be refused", 400, || async {
        let r = psql(sidecar, "select 1").await;
        r.err()
    })
    .await;
    assert!(refused.contains("server closed the connection"), "{refused}");
    assert!(envoy.stat("cluster.staging-db.upstream_cx_none_healthy").await > 0);

    // Every connection is logged on Envoy's stdout, with where it went.
    let line_for = |pg: &Postgres| format!("tcp postgres 127.0.0.1:%-> {} (staging-db)", pg.addr());
    let (to_a, to_b) = (line_for(&a), line_for(&b));
    let logged = |l: &str, pattern: &str| {
        let (head, tail) = pattern.split_once('%').unwrap();
        l.contains(head) && l.contains(tail)
    };
    let log = eventually("access log lines for a and b", 400, || {
        let log = envoy.stdout();
        let both = log.lines().any(|l| logged(l, &to_a)) && log.lines().any(|l| logged(l, &to_b));
        async move { both.then_some(log) }
    })
    .await;
    assert!(log.lines().any(|l| logged(l, &to_a) && l.contains("sent=") && l.contains("received=")), "{log}");

    // Envoy took every update devbridge sent.
    let stats = envoy.stats().await;
    let rejected: Vec<(&String, &u64)> =
        stats.iter().filter(|(k, v)| k.ends_with("update_rejected") && **v > 0).collect();
    assert!(rejected.is_empty(), "rejected updates: {rejected:?}\n{}", envoy.log());
}
