//! The status page in a real headless browser: Debian's `chromium`, driven
//! by `chromedriver` over WebDriver's HTTP JSON API. `tests/run.sh`
//! installs both when missing; without them this test fails, unless
//! `DEVBRIDGE_SKIP_BROWSER` says why it cannot run (run.sh sets it when
//! apt-get is impossible).
//!
//! A daemon on the demo profile (its ports made free ones) and a real
//! Envoy: the page shows the demo's routes and endpoints and the Envoy's
//! ACK; an edit of the profile appears on the same page, without a reload.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use support::{Envoy, Upstream, eventually, free_port, http_get, http_request};

const BIN: &str = env!("CARGO_BIN_EXE_devbridge");

/// Chromium's flags that work in a container without a display or a sandbox.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn which(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n))).find(|p| p.is_file())
}

/// A chromedriver we started and its one session; both end when dropped.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: PathBuf, chromedriver: PathBuf) -> Self {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let user_data = tempfile::tempdir().unwrap();
        let mut browser = Self { driver, addr, session: String::new(), _profile: user_data };
        eventually("chromedriver to answer", 200, || async move {
            let r = http_get(addr, "127.0.0.1", "/status", &[]).await.ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            (v["value"]["ready"] == true).then_some(())
        })
        .await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser._profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = browser.call("POST", "/session", Some(caps)).await;
        browser.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        browser
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json")];
        let r = http_request(self.addr, method, "127.0.0.1", path, &headers, body.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("chromedriver said {}: {e}", r.body));
        assert_eq!(r.status, 200, "chromedriver {method} {path}: {v}");
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call("POST", &format!("/session/{}/url", self.session), Some(json!({"url": url}))).await;
    }

    /// Runs `script` (a function body) in the page; what it returns.
    async fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn text(&self) -> String {
        self.run("return document.body.innerText").await.as_str().unwrap_or_default().to_string()
    }

    /// Waits (bounded) until the page's text has every one of `wanted`.
    async fn wait_for(&self, what: &str, wanted: &[&str]) -> String {
        let mut last = String::new();
        for _ in 0..300 {
            last = self.text().await;
            if wanted.iter().all(|w| last.contains(w)) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the page never showed {what} ({wanted:?}); it shows:\n{last}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (chromedriver quits its Chromium), then chromedriver.
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(self.addr) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                self.session
            );
            let _ = s.write_all(req.as_bytes());
            // The answer comes once Chromium is gone; chromedriver may keep the connection open.
            let _ = s.read(&mut [0u8; 4096]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The devbridge daemon we started; SIGTERM and wait when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..400 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_demo_and_follows_a_profile_edit_live() {
    let (Some(chromium), Some(chromedriver)) = (
        which("DEVBRIDGE_CHROMIUM", &["chromium", "chromium-browser"]),
        which("DEVBRIDGE_CHROMEDRIVER", &["chromedriver"]),
    ) else {
        match std::env::var("DEVBRIDGE_SKIP_BROWSER") {
            Ok(why) => {
                eprintln!("skipping the status page browser test: {why}");
                return;
            }
            Err(_) => panic!(
                "chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver; tests/run.sh does it)"
            ),
        }
    };
    support::envoy_binary();

    // The demo profile, on free ports, in a file the daemon follows; its two
    // stand-in edges are real listeners, probed every second.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listen_port = free_port();
    let (edge1, edge2) = (Upstream::start("edge-1").await, Upstream::start("edge-2").await);
    let (e1, e2) = (edge1.addr.to_string(), edge2.addr.to_string());
    let demo = std::fs::read_to_string(root.join("profiles/demo.toml"))
        .unwrap()
        .replace("8888", &listen_port.to_string())
        .replace("127.0.0.1:9001", &e1)
        .replace("127.0.0.1:9002", &e2)
        .replace("[clusters.edge]\n", "[clusters.edge]\nprobe = { interval = \"1s\", timeout = \"500ms\" }\n")
        .replace("zone = \"dev-local\"\ndomains", "zone = \"dev-local\"\nadmin = \"127.0.0.1:0\"\ndomains");
    assert!(demo.contains("admin = \"127.0.0.1:0\""), "the demo's proxy moved; update this test");
    assert!(demo.contains("probe = {"), "the demo's edge cluster moved; update this test");
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("demo.toml");
    std::fs::write(&profile, &demo).unwrap();
    let (xds_port, admin_port) = (free_port(), free_port());
    let _daemon = Daemon(
        Command::new(BIN)
            .args(["connect", profile.to_str().unwrap(), "--xds-listen", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let page = eventually("the admin port to serve the page", 200, || async move {
        http_get(admin, "127.0.0.1", "/", &[]).await.ok().filter(|r| r.status == 200)
    })
    .await;
    let csp = &page.headers["content-security-policy"];
    assert!(csp.starts_with("default-src 'none'; script-src 'sha256-") && csp.contains("connect-src 'self'"), "{csp}");

    let boot = Command::new(BIN)
        .args(["bootstrap", profile.to_str().unwrap(), "--xds-address", &format!("127.0.0.1:{xds_port}")])
        .output()
        .unwrap();
    assert_eq!(boot.status.code(), Some(0), "{}", String::from_utf8_lossy(&boot.stderr));
    let envoy = Envoy::start(&String::from_utf8(boot.stdout).unwrap()).await;
    envoy.wait_configured().await;

    let browser = Browser::start(chromium, chromedriver).await;
    browser.open(&format!("http://127.0.0.1:{admin_port}/")).await;
    let text = browser
        .wait_for(
            "the demo's routes, endpoints, the Envoy's ACK and the start event",
            &[
                "proxy dev-proxy",
                &format!("demo.example.com:{listen_port}"),
                "path /healthz",
                "prefix /api, header x-dev = \"canary\"",
                "cluster edge",
                &e1,
                &e2,
                "zone dev-local",
                "reachable",
                "acked CDS EDS LDS RDS",
                "live",
                "devbridge started: profile demo",
                "All well: 1 Envoy up to date, every cluster has endpoints",
            ],
        )
        .await;
    assert!(!text.contains("prefix /added"), "{text}");
    assert!(text.contains("no discovery sources"), "{text}");

    // A mark in the page: if it survives, the update came without a reload.
    browser.run("window.devbridgeTestMark = 42; return true").await;
    let edited = demo
        .replace("[clusters.edge]", "[[domains.routes]]\nprefix = \"/added\"\ncluster = \"edge\"\n\n[clusters.edge]");
    let tmp = dir.path().join("demo.toml.tmp");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, &profile).unwrap();
    let text = browser.wait_for("the added route and the reload event", &["prefix /added", "reload: routes +1"]).await;
    assert!(text.contains("acked CDS EDS LDS RDS") || text.contains("waiting for"), "{text}");
    assert_eq!(browser.run("return window.devbridgeTestMark").await, json!(42), "the page was reloaded");
    // Envoy ACKs the new version, and the page says so.
    browser.wait_for("the Envoy's ACK of the edit", &["acked CDS EDS LDS RDS", "dev-proxy acked"]).await;

    // An edge stops listening: the page names it, and the event log says so.
    drop(edge2);
    browser
        .wait_for(
            "the stopped edge as unreachable",
            &["unreachable: connection refused", &format!("{e2} unreachable (connection refused")],
        )
        .await;
    drop(browser);
    drop(envoy);
}
