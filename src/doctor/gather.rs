//! The I/O of `devbridge doctor`: reads each link of the chain and hands
//! the facts to the verdict builders of [`crate::doctor`].
//!
//! Every read is bounded by a timeout, and nothing here writes anywhere:
//! the API server is asked `SelfSubjectAccessReview`s (which any user may
//! create and which change nothing) and lists; ports are tried by binding
//! and releasing them at once; Envoy's admin is only read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use kube::config::{AuthInfo, Kubeconfig};

use super::{
    Access, AuthFact, Check, DaemonAnswer, EnvoyFact, KubeconfigFact, PortFact, ProbeFact, Report, RouteFact, Step,
    TypeFact,
};
use crate::discovery::Options;
use crate::discovery::plan::{Conn, Plan, Rule};
use crate::model::{Profile, Source};
use crate::probe::check::{self as probe, Probe};
use crate::profile::load::{self, LoadError};
use crate::settings::{self, Flags, Settings};
use crate::status::{self, Status};

/// How long one network step (a connect, a request, a probe) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an exec credential plugin may take (it may open a browser: not waited for).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(20);
/// Endpoints doctor probes itself per cluster, at most.
pub const MAX_PROBES: usize = 16;

/// What `doctor` was asked.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The profile as named (or as the daemon serves it).
    pub profile: Option<String>,
    /// Its daemon's admin address and where that came from.
    pub admin: SocketAddr,
    pub admin_origin: String,
    pub flags: Flags,
}

/// Walks the chain: profile, settings, daemon, proxies, Kubernetes sources, edges.
pub async fn run(ask: &Ask) -> Report {
    let mut checks = Vec::new();
    let profile = match &ask.profile {
        Some(arg) => {
            let (check, profile) = load_profile(arg);
            checks.push(check);
            profile
        }
        None => {
            checks.push(Check::failed(
                super::PROFILE,
                "found and valid",
                "no profile named, and no daemon answers to say which it serves",
                "name one: devbridge doctor PROFILE (devbridge profiles lists them)",
            ));
            None
        }
    };
    checks.push(settings_check(&ask.flags, profile.as_ref()));
    checks.push(envoy_binary().await);

    let status = daemon(ask, &mut checks).await;
    if let Some(p) = &profile {
        for proxy in p.proxies.values() {
            if let Some(s) = &status {
                checks.extend(super::envoy_checks(&proxy.name, &envoys_of(s, &proxy.name)));
            }
            checks.extend(ports(p, &proxy.name).await);
        }
        let endpoints = kubernetes(p, &mut checks).await;
        edges(p, status.as_ref(), &endpoints, &mut checks).await;
    }
    Report { profile: profile.map(|p| p.name.clone()), checks }
}

fn load_profile(arg: &str) -> (Check, Option<Profile>) {
    let loaded = load::resolve(arg, &load::search_path()).and_then(|l| load::load(&l).map(|p| (p, l)));
    match loaded {
        Ok((p, l)) => (super::profile_check(arg, Ok((l.to_string(), p.proxies.len(), p.clusters.len()))), Some(p)),
        Err(LoadError::Invalid(errors)) => {
            let mut lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            lines.extend(errors.more());
            (super::profile_check(arg, Err(lines)), None)
        }
        Err(e) => (super::profile_check(arg, Err(vec![e.to_string()])), None),
    }
}

fn settings_check(flags: &Flags, profile: Option<&Profile>) -> Check {
    let listen = profile.map(|p| &p.listen);
    let rows = Settings::load(flags, listen).map_err(|e| e.to_string()).map(|s| {
        let value = |key: &str| match key {
            "xds_listen" => s.xds_listen.to_string(),
            "admin_listen" => s.admin_listen.to_string(),
            "log" => s.log.clone(),
            "log_format" => format!("{:?}", s.log_format).to_lowercase(),
            "tls" => s.tls.to_string(),
            "tls_dir" => s.tls_dir.as_ref().map_or_else(|| "(default)".into(), |p| p.display().to_string()),
            "insecure" => s.insecure.to_string(),
            "read_timeout" => humantime::format_duration(s.read_timeout).to_string(),
            "max_connections" => s.max_connections.to_string(),
            "max_streams_per_connection" => s.max_streams_per_connection.to_string(),
            _ => String::new(),
        };
        settings::KEYS
            .iter()
            .map(|k| (k.to_string(), value(k), settings::origin(k, flags, listen).to_string()))
            .collect()
    });
    super::settings_check(rows)
}

async fn envoy_binary() -> Check {
    let found = match crate::supervise::find_envoy(None) {
        Err(e) => Err(e.to_string()),
        Ok(bin) => {
            let out = tokio::time::timeout(
                STEP_TIMEOUT * 3,
                tokio::process::Command::new(&bin).arg("--version").kill_on_drop(true).output(),
            )
            .await;
            let version = match out {
                Ok(Ok(o)) => {
                    let text = String::from_utf8_lossy(&o.stdout);
                    text.split_once("version:").map_or_else(|| text.trim().to_string(), |(_, v)| v.trim().to_string())
                }
                Ok(Err(e)) => format!("cannot run it: {e}"),
                Err(_) => "`--version` did not answer".to_string(),
            };
            Ok((bin.display().to_string(), version))
        }
    };
    super::envoy_binary_check(found)
}

/// The daemon's checks; its status when it answers.
async fn daemon(ask: &Ask, checks: &mut Vec<Check>) -> Option<Status> {
    let answer = match status::fetch(ask.admin, STEP_TIMEOUT).await {
        Ok(body) => status::parse(ask.admin, &body).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let named = ask.profile.as_deref().map(|arg| {
        crate::profile::load::resolve(arg, &load::search_path())
            .ok()
            .and_then(|l| load::load(&l).ok())
            .map_or_else(|| arg.to_string(), |p| p.name)
    });
    let fact = match &answer {
        Err(e) => DaemonAnswer::NotRunning(e.trim_end_matches(" (--admin)").to_string()),
        Ok(s) => DaemonAnswer::Serves {
            version: s.devbridge.clone(),
            pid: s.listen.pid,
            profile: s.profile.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            file: s.profile.as_ref().map(|p| p.file.clone()).unwrap_or_default(),
            ready: s.ready,
        },
    };
    checks.push(super::daemon_check(ask.admin, &ask.admin_origin, named.as_deref(), &fact));
    let s = answer.ok()?;
    if !s.listen.xds.is_empty() {
        let at = s.listen.xds.clone();
        let start = Instant::now();
        let result = match at.strip_prefix("unix:") {
            Some(path) => {
                tokio::time::timeout(STEP_TIMEOUT, tokio::net::UnixStream::connect(path)).await.map(|r| r.map(drop))
            }
            None => match at.parse::<SocketAddr>() {
                Ok(a) => {
                    let (host, port) = settings::reachable_xds_address(a);
                    tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
                        .await
                        .map(|r| r.map(drop))
                }
                Err(e) => Ok(Err(std::io::Error::other(e.to_string()))),
            },
        };
        let result = match result {
            Ok(Ok(())) => Ok(start.elapsed()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {STEP_TIMEOUT:?}")),
        };
        checks.push(super::xds_check(&at, result));
    }
    Some(s)
}

fn envoys_of(s: &Status, proxy: &str) -> Vec<EnvoyFact> {
    s.envoys
        .iter()
        .filter(|e| e.proxy.as_deref() == Some(proxy))
        .map(|e| EnvoyFact {
            node_id: e.node.as_ref().map(|n| n.id.clone()).unwrap_or_default(),
            peer: e.peer.clone().unwrap_or_else(|| "?".into()),
            types: e
                .types
                .iter()
                .map(|(ty, t)| {
                    let nack = t.last_nack.as_ref().map(|n| (n.version.clone(), n.error.clone()));
                    (ty.clone(), TypeFact { sent: t.sent.clone(), acked: t.acked.clone(), nack })
                })
                .collect(),
        })
        .collect()
}

/// The ports a proxy's Envoy binds: one per domain port on its listen address, and its admin.
async fn ports(p: &Profile, proxy: &str) -> Vec<Check> {
    let Some(px) = p.proxies.get(proxy) else { return vec![] };
    let mut wanted: BTreeMap<SocketAddr, String> = BTreeMap::new();
    for d in px.domains.iter().filter_map(|d| p.domains.get(d)) {
        let what = wanted.entry(SocketAddr::new(px.listen_address, d.port)).or_insert_with(|| "listener".into());
        what.push_str(&format!(" {}", d.name));
    }
    if px.admin.port() != 0 {
        wanted.insert(px.admin, "Envoy admin".into());
    }
    let mut out = Vec::new();
    for (addr, what) in wanted {
        let fact = port_fact(addr, px.admin, what == "Envoy admin").await;
        out.push(super::port_check(proxy, &what, addr, &fact));
    }
    out
}

async fn port_fact(addr: SocketAddr, envoy_admin: SocketAddr, is_admin: bool) -> PortFact {
    match std::net::TcpListener::bind(addr) {
        Ok(l) => {
            drop(l);
            return PortFact::Free;
        }
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => return PortFact::Unknown(e.to_string()),
        Err(_) => {}
    }
    if envoy_admin.port() == 0 {
        return PortFact::Unknown("in use; the proxy names no Envoy admin address to ask whose".into());
    }
    let (host, port) = settings::reachable_xds_address(envoy_admin);
    let Ok(ip) = host.parse::<IpAddr>() else { return PortFact::Unknown("bad admin address".into()) };
    let admin = SocketAddr::new(ip, port);
    let path = if is_admin { "/server_info" } else { "/listeners?format=json" };
    match status::client::exchange(admin, "GET", path, None, STEP_TIMEOUT).await {
        Ok((200, _)) if is_admin => PortFact::HeldByEnvoy,
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let holds = v["listener_statuses"].as_array().into_iter().flatten().any(|l| {
                let sa = &l["local_address"]["socket_address"];
                sa["port_value"].as_u64() == Some(u64::from(addr.port()))
            });
            if holds { PortFact::HeldByEnvoy } else { PortFact::InUse }
        }
        _ => PortFact::InUse,
    }
}

/// Every Kubernetes source's checks; the endpoints each cluster's pods give.
async fn kubernetes(p: &Profile, checks: &mut Vec<Check>) -> BTreeMap<String, Vec<SocketAddr>> {
    let plan = Plan::from_profile(p);
    let mut by_conn: BTreeMap<Conn, Vec<&crate::model::Cluster>> = BTreeMap::new();
    for c in p.clusters.values() {
        let conn = match &c.source {
            Source::Kubernetes(k) => Conn { kubeconfig: k.kubeconfig.clone(), context: k.context.clone() },
            Source::KubernetesService(s) => Conn { kubeconfig: s.kubeconfig.clone(), context: s.context.clone() },
            _ => continue,
        };
        by_conn.entry(conn).or_default().push(c);
    }
    let mut endpoints = BTreeMap::new();
    let opts = Options { connect_timeout: STEP_TIMEOUT, read_timeout: STEP_TIMEOUT, ..Options::default() };
    for (conn, clusters) in by_conn {
        let desc = conn.to_string();
        let kc = kubeconfig(&conn);
        checks.push(super::kubeconfig_check(&desc, kc.as_ref().map(|(f, ..)| f.clone()).map_err(Clone::clone)));
        let Ok((fact, auth)) = kc else { continue };
        let steps = reach(&fact.server).await;
        let reached = steps.iter().all(|s| s.result.is_ok());
        checks.push(super::api_server_check(&desc, &fact.server, &steps));
        let auth = credentials(auth.as_ref()).await;
        checks.push(super::auth_check(&desc, &auth, crate::model::now_ms()));
        if !reached {
            continue;
        }
        let client = match crate::discovery::kube::connect(conn.clone(), opts.clone()).await {
            Ok(c) => c.client,
            Err(e) => {
                checks.push(Check::failed(super::kube_subject(&desc), "client", e.to_string(), "see the checks above"));
                continue;
            }
        };
        // What the watches need: list and watch of each resource they read.
        let mut asks: BTreeSet<(&str, &str, Option<String>)> = BTreeSet::new();
        for c in &clusters {
            match &c.source {
                Source::Kubernetes(k) => {
                    for ns in &k.namespaces {
                        asks.insert(("", "pods", Some(ns.clone())));
                    }
                    if k.needs_nodes() {
                        asks.insert(("", "nodes", None));
                    }
                }
                Source::KubernetesService(s) => {
                    asks.insert(("discovery.k8s.io", "endpointslices", Some(s.namespace.clone())));
                }
                _ => {}
            }
        }
        let mut answers = Vec::new();
        let mut skew = None;
        for (group, resource, ns) in &asks {
            for verb in ["list", "watch"] {
                let (access, date) = review(&client, verb, group, resource, ns.as_deref()).await;
                if let (None, Some(date)) = (skew, date) {
                    skew = Some(date);
                }
                answers.push((verb.to_string(), resource.to_string(), ns.clone(), access));
            }
        }
        let unauthorized = answers.iter().any(|a| matches!(a.3, Access::Failed(401, _)));
        checks.push(super::rbac_check(&desc, &answers));
        checks.push(super::clock_check(&desc, skew));
        if unauthorized {
            continue;
        }
        for c in &clusters {
            let (Source::Kubernetes(k), Some(plan)) = (&c.source, plan.clusters.get(&c.name)) else { continue };
            let Rule::Pods(rule) = &plan.rule else { continue };
            let mut all = Vec::new();
            let mut failed = None;
            for ns in &k.namespaces {
                let q = crate::onboard::Query {
                    kubeconfig: conn.kubeconfig.clone(),
                    context: conn.context.clone(),
                    namespace: ns.clone(),
                    selector: Some(k.selector.clone()),
                };
                match crate::onboard::fetch::inventory(&q, &opts).await {
                    Ok(inv) => {
                        let names = inv.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name));
                        let verdicts = inv.verdicts(rule).into_iter().map(|v| v.map_err(|e| e.to_string()));
                        all.extend(names.zip(verdicts));
                    }
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            let what = format!("{} in {}", k.selector, k.namespaces.join(", "));
            endpoints.insert(c.name.clone(), all.iter().filter_map(|(_, v)| v.as_ref().ok().copied()).collect());
            let verdicts = match failed {
                Some(e) => Err(e),
                None => Ok(all),
            };
            checks.push(super::selector_check(&desc, &c.name, &what, verdicts));
        }
    }
    endpoints
}

/// The kubeconfig a connection names, its context's server and user.
fn kubeconfig(conn: &Conn) -> Result<(KubeconfigFact, Option<AuthInfo>), String> {
    let (kc, path) = match &conn.kubeconfig {
        Some(p) => {
            let path = crate::discovery::kube::expand_home(p);
            (Kubeconfig::read_from(&path).map_err(|e| format!("cannot read kubeconfig {path}: {e}"))?, path)
        }
        None => {
            let path = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
            (Kubeconfig::read().map_err(|e| format!("cannot read kubeconfig {path}: {e}"))?, path)
        }
    };
    let name = conn
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| format!("{path} names no current-context and the profile names no context"))?;
    let ctx = kc.contexts.iter().find(|c| c.name == name).and_then(|c| c.context.clone()).ok_or_else(|| {
        let has: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        format!("{path} has no context {name:?} (it has: {})", has.join(", "))
    })?;
    let server = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| format!("{path}: context {name:?} names cluster {:?}, which has no server", ctx.cluster))?;
    let auth =
        ctx.user.as_ref().and_then(|u| kc.auth_infos.iter().find(|a| &a.name == u)).and_then(|a| a.auth_info.clone());
    let kind = match &auth {
        None => "no user".to_string(),
        Some(a) => auth_kind(a),
    };
    Ok((KubeconfigFact { path, context: name, server: server.trim_end_matches('/').to_string(), auth: kind }, auth))
}

fn auth_kind(a: &AuthInfo) -> String {
    if let Some(e) = &a.exec {
        format!("exec plugin {}", e.command.as_deref().unwrap_or("(no command)"))
    } else if a.token.is_some() {
        "token".into()
    } else if a.token_file.is_some() {
        "token file".into()
    } else if a.client_certificate.is_some() || a.client_certificate_data.is_some() {
        "client certificate".into()
    } else if let Some(p) = &a.auth_provider {
        format!("auth-provider {}", p.name)
    } else if a.username.is_some() {
        "basic auth".into()
    } else {
        "no credentials".into()
    }
}

/// DNS, TCP and (for https) TLS to the API server, each timed.
async fn reach(server: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let uri: hyper::Uri = match server.parse() {
        Ok(u) => u,
        Err(e) => return vec![Step { name: "DNS", result: Err(format!("{server} is not a URL: {e}")) }],
    };
    let tls = uri.scheme_str() != Some("http");
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let start = Instant::now();
    let resolved = tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await;
    let addrs: Vec<SocketAddr> = match resolved {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return vec![Step { name: "DNS", result: Err(format!("{host}: {e}")) }],
        Err(_) => return vec![Step { name: "DNS", result: Err(format!("{host}: no answer within {STEP_TIMEOUT:?}")) }],
    };
    let Some(first) = addrs.first().copied() else {
        return vec![Step { name: "DNS", result: Err(format!("{host} resolves to no address")) }];
    };
    steps.push(Step { name: "DNS", result: Ok((start.elapsed(), format!("{host} -> {}", first.ip()))) });
    let start = Instant::now();
    let stream = match tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect(first)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            steps.push(Step { name: "TCP", result: Err(format!("{first}: {e}")) });
            return steps;
        }
        Err(_) => {
            steps.push(Step {
                name: "TCP",
                result: Err(format!("{first}: no answer within {STEP_TIMEOUT:?} (dropped)")),
            });
            return steps;
        }
    };
    steps.push(Step { name: "TCP", result: Ok((start.elapsed(), first.to_string())) });
    if tls {
        steps.push(Step { name: "TLS", result: handshake(stream, &host).await });
    } else {
        steps.push(Step { name: "TLS", result: Ok((Duration::ZERO, "not used: http://".into())) });
    }
    steps
}

/// A TLS handshake that checks nothing but that TLS is spoken: which CA the
/// kubeconfig trusts is the client's business, and kube verifies it on every request.
async fn handshake(stream: tokio::net::TcpStream, host: &str) -> Result<(Duration, String), String> {
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    match tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(s)) => {
            let version = s.get_ref().1.protocol_version().map_or_else(|| "TLS".into(), |v| format!("{v:?}"));
            Ok((start.elapsed(), version))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no handshake within {STEP_TIMEOUT:?}")),
    }
}

/// Accepts any certificate: the handshake is timed, not trusted (nothing is sent over it).
#[derive(Debug)]
struct AnyCert(std::sync::Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        _: &[tokio_rustls::rustls::pki_types::CertificateDer<'_>],
        _: &tokio_rustls::rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: tokio_rustls::rustls::pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<tokio_rustls::rustls::client::danger::HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<tokio_rustls::rustls::client::danger::HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What the user's credentials are; an exec plugin is run, its credential
/// read for its expiry and dropped (never shown).
async fn credentials(auth: Option<&AuthInfo>) -> AuthFact {
    let Some(a) = auth else { return AuthFact::Anonymous };
    let Some(exec) = &a.exec else {
        return match auth_kind(a).as_str() {
            "no credentials" => AuthFact::Anonymous,
            k if k.starts_with("auth-provider") => AuthFact::Other(k.to_string()),
            k => AuthFact::Static(k.to_string()),
        };
    };
    let Some(command) = exec.command.clone() else {
        return AuthFact::Exec { command: "(none)".into(), result: Err("the exec entry names no command".into()) };
    };
    let mut cmd = tokio::process::Command::new(&command);
    cmd.args(exec.args.iter().flatten()).kill_on_drop(true).stdin(std::process::Stdio::null());
    for kv in exec.env.iter().flatten() {
        if let (Some(k), Some(v)) = (kv.get("name"), kv.get("value")) {
            cmd.env(k, v);
        }
    }
    let api = exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let info = serde_json::json!({"apiVersion": api, "kind": "ExecCredential", "spec": {"interactive": false}});
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    let result = match tokio::time::timeout(EXEC_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!("gave no answer within {EXEC_TIMEOUT:?} (does it wait for a login?)")),
        Ok(Err(e)) => Err(format!("cannot run it: {e}")),
        Ok(Ok(o)) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err.lines().next().unwrap_or("").chars().take(200).collect::<String>();
            Err(format!("it exited with {}: {first}", o.status))
        }
        Ok(Ok(o)) => expiry(&o.stdout),
    };
    AuthFact::Exec { command, result }
}

/// The expiry of an ExecCredential (ms since the epoch), read without keeping its token.
fn expiry(stdout: &[u8]) -> Result<Option<u64>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("its output is not an ExecCredential: {e}"))?;
    let s = &v["status"];
    if s["token"].as_str().is_none() && s["clientCertificateData"].as_str().is_none() {
        return Err("its ExecCredential has no token and no client certificate".into());
    }
    match s["expirationTimestamp"].as_str() {
        None => Ok(None),
        Some(t) => {
            let at = humantime::parse_rfc3339_weak(t).map_err(|e| format!("expirationTimestamp {t:?}: {e}"))?;
            Ok(Some(at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)))
        }
    }
}

/// One SelfSubjectAccessReview, and the clock skew its answer's `Date` shows.
async fn review(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> (Access, Option<i64>) {
    let body = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}}
    });
    let req = hyper::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.to_string().into_bytes()));
    let Ok(req) = req else { return (Access::Failed(0, "cannot build the request".into()), None) };
    let sent = SystemTime::now();
    let resp = match tokio::time::timeout(STEP_TIMEOUT, client.send(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (Access::Failed(0, e.to_string()), None),
        Err(_) => return (Access::Failed(0, format!("no answer within {STEP_TIMEOUT:?}")), None),
    };
    let skew = resp
        .headers()
        .get(hyper::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .map(|server| {
            // The Date is whole seconds, taken while the request was served.
            let here = sent + sent.elapsed().unwrap_or_default() / 2;
            match here.duration_since(server) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            }
        });
    let code = resp.status().as_u16();
    let bytes = match http_body_util::BodyExt::collect(resp.into_body()).await {
        Ok(b) => b.to_bytes(),
        Err(e) => return (Access::Failed(code, e.to_string()), skew),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let access = match code {
        200 | 201 if v["status"]["allowed"].as_bool() == Some(true) => Access::Allowed,
        200 | 201 => Access::Denied(v["status"]["reason"].as_str().unwrap_or_default().to_string()),
        _ => Access::Failed(code, v["message"].as_str().unwrap_or("no message").to_string()),
    };
    (access, skew)
}

/// The edges: each cluster's endpoints probed (the daemon's probes when it
/// has them), and the route to the first.
async fn edges(
    p: &Profile,
    status: Option<&Status>,
    discovered: &BTreeMap<String, Vec<SocketAddr>>,
    checks: &mut Vec<Check>,
) {
    for c in p.clusters.values() {
        let probe = match &c.health_check {
            Some(h) => Probe::Http { path: h.path.clone(), host: h.host.clone() },
            None => Probe::Tcp,
        };
        let daemon = status.and_then(|s| s.probes.get(&c.name)).filter(|cp| !cp.results.is_empty());
        let (facts, kind, from) = match daemon {
            Some(cp) => {
                let facts = cp
                    .results
                    .iter()
                    .filter(|r| r.state != crate::status::ProbeState::Unknown)
                    .map(|r| ProbeFact {
                        address: r.address.clone(),
                        result: match r.state {
                            crate::status::ProbeState::Reachable => Ok(r.latency_ms.unwrap_or_default()),
                            _ => Err(r.error.clone().unwrap_or_else(|| "unreachable".into())),
                        },
                    })
                    .collect();
                (facts, cp.kind.clone(), "the daemon's probes")
            }
            None => {
                let addrs: Vec<SocketAddr> = match &c.source {
                    Source::Static(eps) => eps.iter().map(|e| e.addr).collect(),
                    Source::Kubernetes(_) => discovered.get(&c.name).cloned().unwrap_or_default(),
                    Source::Registered => status
                        .and_then(|s| s.registered.get(&c.name))
                        .map(|eps| eps.iter().filter_map(|e| e.address.parse().ok()).collect())
                        .unwrap_or_default(),
                    // Envoy resolves DNS names itself; the Service's slices are the daemon's.
                    Source::Dns { .. } | Source::KubernetesService(_) => continue,
                };
                if matches!(c.source, Source::Kubernetes(_)) && !discovered.contains_key(&c.name) {
                    continue; // the source checks said why there is nothing
                }
                (probe_all(&probe, &addrs).await, probe.describe(), "doctor's own probes")
            }
        };
        checks.push(super::probe_check(&c.name, &kind, from, &facts));
        if let Some(first) = facts.first() {
            let ip = first.address.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or(first.address.clone());
            checks.push(super::route_check(&c.name, &ip, &route(&ip).await));
        }
    }
}

async fn probe_all(probe: &Probe, addrs: &[SocketAddr]) -> Vec<ProbeFact> {
    let mut set = tokio::task::JoinSet::new();
    for (i, addr) in addrs.iter().copied().take(MAX_PROBES).enumerate() {
        let probe = probe.clone();
        set.spawn(async move { (i, addr, probe::run(&probe, addr, STEP_TIMEOUT).await) });
    }
    let mut out: Vec<(usize, ProbeFact)> = Vec::new();
    while let Some(Ok((i, addr, r))) = set.join_next().await {
        let result = r.map(|a| a.latency.as_secs_f64() * 1e3).map_err(|e| e.to_string());
        out.push((i, ProbeFact { address: addr.to_string(), result }));
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, f)| f).collect()
}

/// Which interface the OS routes `ip` by (Linux: `ip route get`).
async fn route(ip: &str) -> RouteFact {
    if !cfg!(target_os = "linux") {
        return RouteFact::Unknown("this OS is not asked".into());
    }
    let out = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio::process::Command::new(ip_command()).args(["route", "get", ip]).kill_on_drop(true).output(),
    )
    .await;
    match out {
        Ok(Ok(o)) if o.status.success() => super::parse_ip_route(&String::from_utf8_lossy(&o.stdout))
            .unwrap_or_else(|| RouteFact::Unknown("`ip route get` named no device".into())),
        Ok(Ok(o)) => RouteFact::Unknown(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Ok(Err(e)) => RouteFact::Unknown(format!("cannot run `ip`: {e}")),
        Err(_) => RouteFact::Unknown("`ip route get` did not answer".into()),
    }
}

fn ip_command() -> PathBuf {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("ip"))
}
