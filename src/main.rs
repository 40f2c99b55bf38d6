//! The `devbridge` command line: parses arguments, sets up logging and
//! hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use devbridge::bootstrap::{Format, Runtime};
use devbridge::profile::load::{self, LoadError};
use devbridge::profile::{Profile, Source};
use devbridge::settings::{Flags, LogFormat, Settings};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Exit code for an invalid profile or usage (EX_USAGE / EX_DATAERR family).
const EXIT_INVALID: u8 = 64;
/// Exit code when something needed is not there: no daemon answers
/// `status`, no Envoy for `connect --envoy` (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "devbridge",
    version,
    about = "Control plane for a local Envoy sidecar bridging a laptop to remote staging"
)]
struct Cli {
    /// Log filter, RUST_LOG style (e.g. `info,devbridge=debug`). Env: DEVBRIDGE_LOG.
    #[arg(long, global = true)]
    log: Option<String>,
    /// Log line format. Env: DEVBRIDGE_LOG_FORMAT.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Settings file (default: ~/.config/devbridge/settings.toml when present).
    #[arg(long, global = true)]
    settings: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a profile's configuration to Envoy over xDS until Ctrl-C.
    Connect {
        /// Profile name (looked up in the search path) or path to a .toml file.
        profile: String,
        /// xDS (ADS gRPC) listen address. Env: DEVBRIDGE_XDS_LISTEN. Default 127.0.0.1:18000.
        #[arg(long)]
        xds_listen: Option<SocketAddr>,
        /// Admin HTTP listen address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Also run the sidecar Envoy (OS-process runtime), supervised: restarted
        /// when it exits, stopped on shutdown.
        #[arg(long)]
        envoy: bool,
        /// With --envoy: the proxy that Envoy is (may be left out when the profile has one).
        #[arg(long, requires = "envoy")]
        proxy: Option<String>,
        /// With --envoy: the Envoy binary (default: `envoy` on PATH, then next to devbridge).
        #[arg(long, requires = "envoy")]
        envoy_bin: Option<PathBuf>,
    },
    /// Validate a profile and print a summary; exit 64 on errors.
    Check { profile: String },
    /// Print the Envoy bootstrap (YAML) for one of the profile's proxies.
    Bootstrap {
        profile: String,
        /// Proxy name; may be left out when the profile has exactly one.
        #[arg(long)]
        proxy: Option<String>,
        /// Where Envoy reaches devbridge, HOST:PORT (default: per runtime, on the xDS listen port).
        #[arg(long)]
        xds_address: Option<String>,
        /// Where the sidecar runs: decides the address it reaches devbridge at.
        #[arg(long = "for", value_enum, default_value = "process")]
        runtime: Runtime,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
    },
    /// List the profiles found and where.
    Profiles,
    /// Show what a running devbridge serves: profile, reloads, connected Envoys and their ACKs.
    Status {
        /// The daemon's admin address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut flags = Flags {
        settings_file: cli.settings.clone(),
        log: cli.log.clone(),
        log_format: cli.log_format,
        ..Flags::default()
    };
    match &cli.command {
        Command::Connect { xds_listen, admin_listen, .. } => {
            flags.xds_listen = *xds_listen;
            flags.admin_listen = *admin_listen;
        }
        Command::Status { admin, .. } => flags.admin_listen = *admin,
        _ => {}
    }
    let settings = match Settings::load(&flags, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("devbridge: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    init_logging(&settings);
    match run(cli.command, &flags) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            eprintln!("devbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(s: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&s.log).unwrap_or_else(|e| {
        eprintln!("devbridge: log filter {:?} is invalid ({e}); using \"info\"", s.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match s.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Loads a profile; on errors prints every one and returns the exit code.
fn load_profile(arg: &str) -> Result<Profile, ExitCode> {
    load_located(arg).map(|(p, _)| p)
}

/// Loads a profile and says where it came from.
fn load_located(arg: &str) -> Result<(Profile, load::Location), ExitCode> {
    let loaded = load::resolve(arg, &load::search_path()).and_then(|l| load::load(&l).map(|p| (p, l)));
    loaded.map_err(|e| {
        match &e {
            LoadError::Invalid(errors) => {
                for err in &errors.0 {
                    eprintln!("error: {err}");
                }
                eprintln!("devbridge: profile {arg:?} has {} error(s)", errors.0.len());
            }
            other => eprintln!("devbridge: {other}"),
        }
        ExitCode::from(EXIT_INVALID)
    })
}

fn run(command: Command, flags: &Flags) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { profile } => {
            let p = match load_profile(&profile) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            print!("{}", summary(&p));
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles => {
            let found = load::list(&load::search_path());
            if found.is_empty() {
                println!("no profiles found; looked in:");
                for d in load::search_path() {
                    println!("  {}", d.display());
                }
            }
            for f in found {
                let note = if f.active { "" } else { "  (shadowed by an earlier one)" };
                println!("{:<20} {}{note}", f.name, f.location);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bootstrap { profile, proxy, xds_address, runtime, out, format } => {
            let p = match load_profile(&profile) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let proxy = match devbridge::bootstrap::select_proxy(&p, proxy.as_deref()) {
                Ok(proxy) => proxy,
                Err(e) => {
                    eprintln!("devbridge: {e}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let (host, port) = match xds_address {
                Some(a) => {
                    let (h, port) = a.rsplit_once(':').context("--xds-address must be HOST:PORT")?;
                    let port: u16 = port.parse().context("--xds-address port must be a number")?;
                    (h.trim_start_matches('[').trim_end_matches(']').to_string(), port)
                }
                None => {
                    let listen = Settings::load(flags, Some(&p.listen))?.xds_listen;
                    (runtime.xds_host(listen), listen.port())
                }
            };
            let notes = runtime.notes(&p.name, &proxy.name, &format!("{host}:{port}"));
            let text =
                devbridge::bootstrap::render(&devbridge::bootstrap::bootstrap(proxy, &host, port), format, &notes);
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {} ({runtime:?} bootstrap for proxy {})", path.display(), proxy.name);
                    if format == Format::Json {
                        notes.iter().skip(1).for_each(|n| eprintln!("  {n}"));
                    }
                }
                None => {
                    print!("{text}");
                    if format == Format::Json {
                        notes.iter().for_each(|n| eprintln!("{n}"));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, .. } => {
            let settings = Settings::load(flags, None)?;
            // A daemon listening on 0.0.0.0 is reached on loopback.
            let (host, port) = devbridge::settings::reachable_xds_address(settings.admin_listen);
            let addr = SocketAddr::new(host.parse()?, port);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let body = match rt.block_on(devbridge::status::fetch(addr, devbridge::status::DEFAULT_TIMEOUT)) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("devbridge: {e}");
                    return Ok(ExitCode::from(EXIT_UNAVAILABLE));
                }
            };
            if json {
                print!("{body}");
            } else {
                match devbridge::status::parse(addr, &body) {
                    Ok(view) => print!("{}", devbridge::status::render(&view, &addr.to_string())),
                    Err(e) => {
                        eprintln!("devbridge: {e}");
                        return Ok(ExitCode::from(EXIT_UNAVAILABLE));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Connect { profile, envoy, proxy, envoy_bin, .. } => {
            let (p, location) = match load_located(&profile) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            // Check the sidecar can be run before anything starts.
            let sidecar = if envoy {
                let bin = match devbridge::supervise::find_envoy(envoy_bin.as_deref()) {
                    Ok(bin) => bin,
                    Err(e) => {
                        eprintln!("devbridge: {e}");
                        return Ok(ExitCode::from(EXIT_UNAVAILABLE));
                    }
                };
                match devbridge::bootstrap::select_proxy(&p, proxy.as_deref()) {
                    Ok(proxy) => Some((bin, proxy.clone())),
                    Err(e) => {
                        eprintln!("devbridge: {e}");
                        return Ok(ExitCode::from(EXIT_INVALID));
                    }
                }
            } else {
                None
            };
            let settings = Settings::load(flags, Some(&p.listen))?;
            let follow = match location {
                load::Location::File(path) => Some(path),
                load::Location::Embedded(_) => None,
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(connect(p, settings, follow, sidecar))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(
    profile: Profile,
    settings: Settings,
    follow: Option<PathBuf>,
    sidecar: Option<(PathBuf, devbridge::profile::Proxy)>,
) -> anyhow::Result<()> {
    for (what, addr) in [("xDS", settings.xds_listen), ("admin", settings.admin_listen)] {
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "refusing to serve {what} on {addr}: only loopback addresses are allowed until TLS is configured; use 127.0.0.1"
            );
        }
    }
    let xds = tokio::net::TcpListener::bind(settings.xds_listen).await.with_context(|| {
        format!("cannot listen for xDS on {}; is another devbridge running? (--xds-listen)", settings.xds_listen)
    })?;
    let admin = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("cannot listen for admin on {} (--admin-listen)", settings.admin_listen))?;
    let shutdown = CancellationToken::new();
    let name = profile.name.clone();
    let file = profile.file.clone();
    if follow.is_none() {
        info!(profile = %profile.name, "the profile is compiled in; edits are not followed (copy it into a profile directory to edit it)");
    }
    let options =
        devbridge::app::Options { state_file: devbridge::registered::default_state_file(&profile.name), follow };
    let daemon = devbridge::app::Daemon::start_with(profile, xds, Some(admin), shutdown.clone(), options)?;
    info!(profile = %name, %file, xds = %daemon.xds_addr, admin = ?daemon.admin_addr, "devbridge connected; point Envoy at the xDS address (devbridge bootstrap)");
    // The supervised Envoy's bootstrap lives in a private directory removed on exit.
    let mut envoy_task = None;
    let _envoy_dir = match sidecar {
        Some((bin, proxy)) => {
            let dir = tempfile::Builder::new()
                .prefix("devbridge-envoy-")
                .tempdir()
                .context("cannot create a directory for Envoy's bootstrap")?;
            let bootstrap = dir.path().join(format!("{}.yaml", proxy.name));
            let (host, port) = devbridge::settings::reachable_xds_address(daemon.xds_addr);
            let notes = Runtime::Process.notes(&name, &proxy.name, &format!("{host}:{port}"));
            let text = devbridge::bootstrap::render(
                &devbridge::bootstrap::bootstrap(&proxy, &host, port),
                Format::Yaml,
                &notes,
            );
            std::fs::write(&bootstrap, text).with_context(|| format!("cannot write {}", bootstrap.display()))?;
            let cmd = devbridge::supervise::EnvoyCommand {
                bin,
                bootstrap,
                admin_address_path: dir.path().join("envoy-admin-address"),
            };
            let span = tracing::info_span!("envoy", proxy = %proxy.name);
            envoy_task = Some(tokio::spawn(tracing::Instrument::instrument(
                devbridge::supervise::supervise(cmd, shutdown.clone()),
                span,
            )));
            Some(dir)
        }
        None => None,
    };
    tokio::spawn(signals(shutdown));
    daemon.wait().await?;
    if let Some(task) = envoy_task {
        let _ = task.await;
    }
    info!("devbridge stopped");
    Ok(())
}

/// First Ctrl-C or SIGTERM: graceful shutdown. Second: exit at once.
async fn signals(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for round in 0..2 {
        match term.as_mut() {
            Some(t) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} },
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        if round == 0 {
            info!("shutting down; press Ctrl-C again to exit at once");
            shutdown.cancel();
        }
    }
    warn!("second signal: exiting now");
    std::process::exit(130);
}

fn summary(p: &Profile) -> String {
    let routes: usize = p.domains.values().map(|d| d.routes.len()).sum();
    let mut out = format!(
        "profile {} ({}): ok\n  {} zones, {} proxies, {} domains, {} routes, {} clusters\n",
        p.name,
        p.file,
        p.zones.len(),
        p.proxies.len(),
        p.domains.len(),
        routes,
        p.clusters.len()
    );
    for proxy in p.proxies.values() {
        out.push_str(&format!(
            "  proxy {} (zone {}, node.cluster {:?}): {}\n",
            proxy.name,
            proxy.zone,
            proxy.node_cluster,
            proxy.domains.join(", ")
        ));
    }
    for d in p.domains.values() {
        out.push_str(&format!("  domain {}: {} routes\n", d.name, d.routes.len()));
    }
    for c in p.clusters.values() {
        let detail = match &c.source {
            Source::Static(eps) => format!("{} endpoints", eps.len()),
            Source::Dns { hosts, .. } => hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(", "),
            Source::Kubernetes(k) => format!("pods {:?} in {}", k.selector, k.namespaces.join(",")),
            Source::Registered => "endpoints set through the admin API".to_string(),
        };
        out.push_str(&format!("  cluster {} ({}): {detail}\n", c.name, c.source.kind()));
    }
    out
}
