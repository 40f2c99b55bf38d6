//! The I/O of `devbridge doctor`: reads each link of the chain and hands
//! the facts to the verdict builders of [`crate::doctor`].
//!
//! Every read is bounded by a timeout, and nothing here writes anywhere:
//! the API server is asked `SelfSubjectAccessReview`s (which any user may
//! create and which change nothing) and lists; ports are tried by binding
//! and releasing them at once; Envoy's admin is only read. The Kubernetes
//! links are read in [`source`].

mod source;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Check, DaemonAnswer, EnvoyFact, PortFact, ProbeFact, Report, RouteFact, TypeFact};
use crate::model::{Profile, Source};
use crate::probe::check::{self as probe, Probe};
use crate::profile::load::{self, LoadError};
use crate::settings::{self, Flags, Settings};
use crate::status::{self, Status};

/// How long one network step (a connect, a request, a probe) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(3);
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
        let endpoints = source::kubernetes(p, &mut checks).await;
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
            // Unset: the local CA's own place, as `connect --tls` uses it.
            "tls_dir" => s
                .tls_dir
                .clone()
                .or_else(|| crate::certs::CertPaths::default_location().map(|c| c.dir))
                .map_or_else(|| "none (no config directory: set tls_dir)".into(), |p| p.display().to_string()),
            "insecure" => s.insecure.to_string(),
            "read_timeout" => humantime::format_duration(s.read_timeout).to_string(),
            "max_connections" => s.max_connections.to_string(),
            "max_streams_per_connection" => s.max_streams_per_connection.to_string(),
            "identity" => {
                settings::identity(s.identity.as_deref()).unwrap_or_else(|| "none (no header is sent)".to_string())
            }
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
            // A profile that does not load is named as it would be: by its file's stem.
            .map_or_else(
                || std::path::Path::new(arg).file_stem().map_or(arg.to_string(), |s| s.to_string_lossy().into_owned()),
                |p| p.name,
            )
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
    // A proxyless gRPC application binds nothing for devbridge.
    if px.kind == crate::model::ProxyKind::Grpc {
        return vec![];
    }
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

/// The edges: each cluster's endpoints probed (the daemon's probes when it
/// has them), and the route to the first.
async fn edges(
    p: &Profile,
    status: Option<&Status>,
    discovered: &BTreeMap<String, Vec<SocketAddr>>,
    checks: &mut Vec<Check>,
) {
    for c in p.clusters.values() {
        // The cluster's own probe (a health check's GET, or a TCP connect);
        // with `probe = false` doctor still connects once.
        let probe = c.probe.as_ref().map_or(Probe::Tcp, |spec| spec.probe.clone());
        // The daemon's results, once its probes have answered at least once.
        let daemon = status
            .and_then(|s| s.probes.get(&c.name))
            .filter(|cp| cp.results.iter().any(|r| r.state != crate::status::ProbeState::Unknown));
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
