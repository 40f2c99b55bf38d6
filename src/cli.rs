//! The command line: every subcommand and flag, and the front-ends of the
//! commands that print and exit (`check`, `profiles`, `bootstrap`,
//! `status`, `explain`, `diff`, `doctor`, `certs`, `discover`, `init`). `connect` is wired in [`crate::app::connect`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bootstrap::{Format, Runtime};
use crate::model::ListenOverrides;
use crate::model::Profile;
use crate::profile::load::{self, LoadError};
use crate::settings::{Flags, LogFormat, Origin};

pub mod bootstrap;
pub mod certs;
pub mod check;
pub mod diff;
pub mod doctor;
pub mod explain;
pub mod onboard;
pub mod overrides;
pub mod status;

/// Exit code for an invalid profile or usage (EX_USAGE / EX_DATAERR family).
pub const EXIT_INVALID: u8 = 64;
/// Exit code when something needed is not there: no daemon answers
/// `status`, no Envoy for `connect --envoy` (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "devbridge",
    version,
    about = "Control plane for a local Envoy sidecar bridging a laptop to remote staging"
)]
pub struct Cli {
    /// Log filter, RUST_LOG style (e.g. `info,devbridge=debug`). Env: DEVBRIDGE_LOG.
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log line format. Env: DEVBRIDGE_LOG_FORMAT.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Settings file (default: ~/.config/devbridge/settings.toml when present).
    #[arg(long, global = true)]
    pub settings: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve a profile's configuration to Envoy over xDS until Ctrl-C.
    Connect(ConnectArgs),
    /// Validate a profile and print a summary; exit 64 on errors.
    Check { profile: String },
    /// List the pods the API server shows (labels, ports, hostNetwork, node, zone,
    /// readiness) and which a profile would select or skip, and why. Read-only.
    Discover(onboard::DiscoverArgs),
    /// Write a starter profile for the edge pods the API server shows.
    Init(onboard::InitArgs),
    /// Print the Envoy bootstrap (YAML) for one of the profile's proxies.
    Bootstrap(BootstrapArgs),
    /// Make the local CA and certificates for TLS between Envoy and devbridge.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// List the profiles found and where.
    Profiles,
    /// Show what a running devbridge serves: profile, reloads, connected Envoys and their ACKs.
    Status(StatusArgs),
    /// Show where a request would go, and why: route by route, to the endpoints.
    ///
    /// The listener, the virtual host, every route in order with why it did or did not match, the
    /// action, the cluster and its endpoints, and what the proxy's Envoys acknowledged. Exit 0
    /// routed, 1 no route or no endpoints, 64 bad input, 69 no daemon.
    Explain(ExplainArgs),
    /// Show what serving a profile would change, per proxy and route by route.
    ///
    /// Against what the daemon serves, or another file (`--against`). The summary line is the one
    /// the reload will log. Exit 0 no change, 1 changes, 64 invalid, 69 no daemon.
    Diff(DiffArgs),
    /// Walk the chain from profile to edges and say which link is broken, with the fix.
    ///
    /// The profile and settings, the daemon and its Envoys, the Envoy binary and ports, each
    /// Kubernetes source (kubeconfig, API server, credentials, RBAC, selector, clock) and the
    /// edges (probes, route). Works without a daemon. Exit 0 all ok (warnings allowed), 1 a
    /// check failed, 64 bad input.
    Doctor(DoctorArgs),
    /// Send a route to a local copy (or mirror it) for a while, without editing the profile.
    ///
    /// `add demo.example.com/api --to 127.0.0.1:5000 [--header x-dev=me] [--for 2h] [--mirror]`,
    /// `list`, `rm ID | --all`. Asks the running daemon; takes effect on its next push. Exit 0 done,
    /// 64 refused, 69 no daemon.
    Override {
        #[command(subcommand)]
        command: overrides::OverrideCommand,
    },
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create the CA (once) and devbridge's server certificate, valid for
    /// localhost, 127.0.0.1, ::1, host.docker.internal, host.minikube.internal
    /// and every --san.
    Init {
        /// Another name or IP address devbridge is reached by (repeatable).
        #[arg(long)]
        san: Vec<String>,
        /// Where to keep them (default ~/.config/devbridge/tls).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Issue a client certificate for one proxy: ca.pem, cert.pem, key.pem.
    Issue {
        proxy: String,
        /// Write into this directory (default: ~/.config/devbridge/tls/proxies/<proxy>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the CA is (default ~/.config/devbridge/tls).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Profile name (looked up in the search path) or path to a .toml file.
    pub profile: String,
    /// xDS (ADS gRPC) listen address. Env: DEVBRIDGE_XDS_LISTEN. Default 127.0.0.1:18000.
    #[arg(long)]
    pub xds_listen: Option<SocketAddr>,
    /// Admin HTTP listen address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Also run the sidecar Envoy (OS-process runtime), supervised: restarted
    /// when it exits, stopped on shutdown.
    #[arg(long)]
    pub envoy: bool,
    /// With --envoy: the proxy that Envoy is (may be left out when the profile has one).
    #[arg(long, requires = "envoy")]
    pub proxy: Option<String>,
    /// With --envoy: the Envoy binary (default: `envoy` on PATH, then next to devbridge).
    #[arg(long, requires = "envoy")]
    pub envoy_bin: Option<PathBuf>,
    /// Serve xDS over mutual TLS with the certificates of `devbridge certs init`
    /// (and the admin API too when it is not on loopback). Env: DEVBRIDGE_TLS.
    #[arg(long)]
    pub tls: bool,
    /// Where `devbridge certs init` wrote them (default ~/.config/devbridge/tls).
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Allow a non-loopback address without TLS: anyone who reaches it gets the
    /// routing configuration. Logged at WARN on every start.
    #[arg(long)]
    pub insecure: bool,
    /// Serve xDS on this Unix socket (mode 0600) instead of TCP; for Envoys on
    /// this machine (`devbridge bootstrap --xds-socket`).
    #[arg(long, conflicts_with_all = ["xds_listen", "tls"])]
    pub xds_socket: Option<PathBuf>,
    /// With --envoy: the xDS protocol it speaks, `grpc` (state of the world), `delta`,
    /// or `rest` (JSON polled from the admin port).
    #[arg(long = "xds", value_enum, default_value = "grpc", requires = "envoy")]
    pub xds: crate::bootstrap::XdsApi,
    /// Where the sidecars run: `docker` or `compose` listens for xDS where containers
    /// reach this host as host.docker.internal (Linux: docker's bridge address only;
    /// Docker Desktop: 127.0.0.1), on the xDS port. Beyond loopback that needs --tls.
    #[arg(long = "for", value_enum, value_name = "RUNTIME", conflicts_with_all = ["xds_listen", "xds_socket", "envoy"])]
    pub runtime: Option<Runtime>,
}

#[derive(Debug, clap::Args)]
pub struct BootstrapArgs {
    pub profile: String,
    /// Proxy name; may be left out when the profile has exactly one.
    #[arg(long)]
    pub proxy: Option<String>,
    /// Where Envoy reaches devbridge, HOST:PORT (default: per runtime, on the xDS listen port).
    #[arg(long)]
    pub xds_address: Option<String>,
    /// Where the sidecar runs: decides the address it reaches devbridge at.
    #[arg(long = "for", value_enum, default_value = "process")]
    pub runtime: Runtime,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: Format,
    /// Reach devbridge over mutual TLS (`devbridge connect --tls`).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: the directory, as the sidecar sees it, holding the proxy's
    /// ca.pem, cert.pem and key.pem (`devbridge certs issue <proxy>`). Default: the
    /// proxy's directory under ~/.config/devbridge/tls for a process,
    /// /etc/devbridge/tls in a container.
    #[arg(long, requires = "tls")]
    pub tls_dir: Option<String>,
    /// Reach devbridge on this Unix socket (`devbridge connect --xds-socket`).
    #[arg(long, conflicts_with = "xds_address")]
    pub xds_socket: Option<String>,
    /// The xDS protocol the sidecar speaks: `grpc` (state of the world),
    /// `delta` (incremental: only what changed is sent, also after a reconnect),
    /// or `rest` (JSON polled over HTTP/1.1 from the admin port, every second).
    #[arg(long = "xds", value_enum, default_value = "grpc")]
    pub xds: crate::bootstrap::XdsApi,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Ask the daemon serving this profile (name or file): its admin address from the
    /// profile's `[listen]`, the settings and the environment, as `connect` finds it.
    pub profile: Option<String>,
    /// The daemon's admin address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Print the raw /status JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The URL as the local service calls it, e.g. http://demo.example.com:8888/api/colors.
    pub url: String,
    /// A request header, `Name: value` (repeatable); `Host: ...` replaces the URL's host.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The request method.
    #[arg(short = 'X', long = "request", value_name = "METHOD", default_value = "GET")]
    pub method: String,
    /// The proxy whose Envoy gets the request (default: the one listening on the URL's port).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Explain from this profile (name or file) alone, without a daemon: no run-time endpoints
    /// or Envoys.
    #[arg(long, conflicts_with_all = ["admin", "daemon"])]
    pub profile: Option<String>,
    /// Ask the daemon serving this profile (name or file), found from its `[listen]`, the
    /// settings and the environment, as `connect` finds it.
    #[arg(long, value_name = "PROFILE")]
    pub daemon: Option<String>,
    /// The daemon's admin address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Print the explanation as JSON (the admin API's answer).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The profile (name or file) to compare; default: the file the daemon follows, as it is on
    /// disk now. Its daemon is found from its `[listen]`, the settings and the environment.
    pub profile: Option<String>,
    /// Compare against this profile file instead of what the daemon serves (no daemon needed).
    #[arg(long, value_name = "FILE", conflicts_with = "admin")]
    pub against: Option<String>,
    /// The daemon's admin address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Print the changes as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The profile (name or file) to check; default: the one the daemon serves.
    pub profile: Option<String>,
    /// The daemon's admin address (default: found from the profile, as `status` finds it).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The flags that layer over settings files and the environment.
    pub fn flags(&self) -> Flags {
        let mut flags = Flags {
            settings_file: self.settings.clone(),
            log: self.log.clone(),
            log_format: self.log_format,
            ..Flags::default()
        };
        match &self.command {
            Command::Connect(c) => {
                flags.xds_listen = c.xds_listen;
                flags.admin_listen = c.admin_listen;
                flags.tls = c.tls.then_some(true);
                flags.tls_dir = c.tls_dir.clone();
                flags.insecure = c.insecure.then_some(true);
            }
            Command::Status(s) => flags.admin_listen = s.admin,
            Command::Explain(e) => flags.admin_listen = e.admin,
            Command::Diff(d) => flags.admin_listen = d.admin,
            Command::Doctor(d) => flags.admin_listen = d.admin,
            Command::Override { command } => flags.admin_listen = command.admin(),
            _ => {}
        }
        flags
    }
}

/// The daemon a client command talks to, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonTarget {
    /// Its admin address, as this machine reaches it (a daemon listening on
    /// 0.0.0.0 is reached on loopback).
    pub addr: SocketAddr,
    /// The profile named to find it, if one was.
    pub profile: Option<String>,
    /// Where the address came from: a flag, the environment, the profile's
    /// `[listen]`, the settings file, or the default.
    pub origin: Origin,
}

impl DaemonTarget {
    /// `127.0.0.1:18001 (the profile's [listen])`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.addr, self.origin)
    }
}

/// A profile's name and `[listen]`, for finding its daemon. A profile whose
/// file does not validate still names its `[listen]`: its daemon may be
/// serving the last good version, so it is read from the TOML as written.
pub fn profile_listen(arg: &str) -> Result<(String, ListenOverrides), String> {
    let location = load::resolve(arg, &load::search_path()).map_err(|e| e.to_string())?;
    match load::load(&location) {
        Ok(p) => Ok((p.name, p.listen)),
        Err(LoadError::Invalid(_)) => {
            let text = match &location {
                load::Location::File(path) => std::fs::read_to_string(path).map_err(|e| e.to_string())?,
                load::Location::Embedded(name) => load::embedded(name).unwrap_or_default().to_string(),
            };
            let table: toml::Table = text.parse().map_err(|e| format!("profile {arg:?} is not TOML: {e}"))?;
            let stem = match &location {
                load::Location::File(p) => p.file_stem().and_then(|s| s.to_str()).unwrap_or(arg).to_string(),
                load::Location::Embedded(name) => name.to_string(),
            };
            let name = table.get("name").and_then(|v| v.as_str()).map_or(stem, str::to_string);
            let addr = |key: &str| -> Result<Option<SocketAddr>, String> {
                match table.get("listen").and_then(|l| l.get(key)) {
                    None => Ok(None),
                    Some(v) => v
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .map(Some)
                        .ok_or_else(|| format!("profile {arg:?}: listen.{key} = {v} is not an address HOST:PORT")),
                }
            };
            Ok((name, ListenOverrides { xds: addr("xds")?, admin: addr("admin")? }))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Finds the daemon a client command asks: `--admin` (in `flags`), else
/// the layers `connect` stacks for its admin address (the environment, the
/// named profile's `[listen]`, the settings file, the default), so a
/// profile's daemon is found where `connect PROFILE` put it.
pub fn find_daemon(flags: &Flags, profile: Option<&str>) -> anyhow::Result<Result<DaemonTarget, (u8, String)>> {
    let (name, listen) = match profile {
        None => (None, None),
        Some(arg) => match profile_listen(arg) {
            Ok((name, listen)) => (Some(name), Some(listen)),
            Err(e) => return Ok(Err((EXIT_INVALID, e))),
        },
    };
    let settings = crate::settings::Settings::load(flags, listen.as_ref())?;
    let (host, port) = crate::settings::reachable_xds_address(settings.admin_listen);
    let origin = crate::settings::origin("admin_listen", flags, listen.as_ref());
    Ok(Ok(DaemonTarget { addr: SocketAddr::new(host.parse()?, port), profile: name, origin }))
}

/// The address a client command reaches the daemon's admin API at, without
/// a profile: [`find_daemon`] with none.
pub fn admin_address(flags: &Flags) -> anyhow::Result<SocketAddr> {
    match find_daemon(flags, None)? {
        Ok(t) => Ok(t.addr),
        Err((_, e)) => Err(anyhow::anyhow!(e)),
    }
}

/// When a profile was named, whether the daemon at `target` serves it:
/// `Err` says plainly which profile it serves instead.
pub fn serves_named(target: &DaemonTarget, status: &crate::status::Status) -> Result<(), String> {
    let (Some(named), Some(served)) = (&target.profile, &status.profile) else { return Ok(()) };
    if *named == served.name {
        return Ok(());
    }
    let pid = match status.listen.pid {
        0 => String::new(),
        pid => format!(", pid {pid}"),
    };
    Err(format!(
        "the devbridge at {} serves profile {:?} ({}{pid}), not {named:?}; is `devbridge connect {named}` running? \
         (the address came from {})",
        target.addr, served.name, served.file, target.origin
    ))
}

/// Asks the daemon at `target` `POST path` with `ask` as JSON: its answer,
/// or the exit code and message for why there is none (64 for a refused
/// request, 69 for no daemon, one that serves another profile than the one
/// named, or one that does not know `path`).
pub fn post_admin<A: serde::Serialize, R: serde::de::DeserializeOwned>(
    target: &DaemonTarget,
    path: &str,
    ask: &A,
) -> anyhow::Result<Result<R, (u8, String)>> {
    let body = serde_json::to_string(ask)?;
    Ok(admin_exchange(target, "POST", path, Some(body), &[400])?.and_then(|body| {
        serde_json::from_str(&body)
            .map_err(|e| (EXIT_UNAVAILABLE, format!("{} answered {path} with something else: {e}", target.addr)))
    }))
}

/// One request to the daemon at `target` (after checking, when a profile
/// was named, that it serves it): the body of a 2xx answer, or the exit
/// code and message for why there is none. A status in `refusals` is the
/// daemon refusing the request (64, with its `error`); any other 404 means
/// it does not know `path`, and that and everything else is 69.
pub fn admin_exchange(
    target: &DaemonTarget,
    method: &str,
    path: &str,
    body: Option<String>,
    refusals: &[u16],
) -> anyhow::Result<Result<String, (u8, String)>> {
    use crate::status;
    let addr = target.addr;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if target.profile.is_some() {
        let checked = rt.block_on(status::fetch(addr, status::DEFAULT_TIMEOUT)).map_err(|e| e.to_string());
        let checked = checked.and_then(|b| status::parse(addr, &b).map_err(|e| e.to_string()));
        if let Err(e) = checked.and_then(|s| serves_named(target, &s)) {
            return Ok(Err((EXIT_UNAVAILABLE, e)));
        }
    }
    let answer = rt.block_on(status::client::exchange(addr, method, path, body, status::DEFAULT_TIMEOUT));
    Ok(match answer {
        Err(e) => Err((EXIT_UNAVAILABLE, e.to_string())),
        Ok((200..=299, body)) => Ok(body),
        Ok((code, body)) if refusals.contains(&code) => Err((EXIT_INVALID, error_text(&body))),
        Ok((404, _)) => {
            Err((EXIT_UNAVAILABLE, format!("the devbridge at {addr} has no {path}; is it an older version?")))
        }
        Ok((code, body)) => Err((EXIT_UNAVAILABLE, format!("{addr} answered HTTP {code}: {}", error_text(&body)))),
    })
}

/// The `error` of an admin API refusal, or the body as it is.
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

/// Whether output may be coloured: standard output is a terminal and
/// `NO_COLOR` is unset or empty.
pub fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Loads a profile and says where it came from; on errors prints every one
/// and returns the exit code.
pub fn load_located(arg: &str) -> Result<(Profile, load::Location), ExitCode> {
    let loaded = load::resolve(arg, &load::search_path()).and_then(|l| load::load(&l).map(|p| (p, l)));
    loaded.map_err(|e| {
        match &e {
            LoadError::Invalid(errors) => {
                for err in &errors.0 {
                    eprintln!("error: {err}");
                }
                if let Some(more) = errors.more() {
                    eprintln!("error: {more}");
                }
                eprintln!("devbridge: profile {arg:?} has {} error(s)", errors.total());
            }
            other => eprintln!("devbridge: {other}"),
        }
        ExitCode::from(EXIT_INVALID)
    })
}

/// Loads a profile; on errors prints every one and returns the exit code.
pub fn load_profile(arg: &str) -> Result<Profile, ExitCode> {
    load_located(arg).map(|(p, _)| p)
}
