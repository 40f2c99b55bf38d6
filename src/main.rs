//! The `devbridge` command line: parses arguments, sets up logging and
//! hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use devbridge::profile::load::{self, LoadError};
use devbridge::profile::{Profile, Source};
use devbridge::settings::{Flags, LogFormat, Settings};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Exit code for an invalid profile or usage (EX_USAGE / EX_DATAERR family).
const EXIT_INVALID: u8 = 64;

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
    },
    /// Validate a profile and print a summary; exit 64 on errors.
    Check { profile: String },
    /// Print the Envoy bootstrap (YAML) for one of the profile's proxies.
    Bootstrap {
        profile: String,
        /// Proxy name; may be left out when the profile has exactly one.
        #[arg(long)]
        proxy: Option<String>,
        /// Where Envoy reaches devbridge, HOST:PORT (default: the xDS listen address).
        #[arg(long)]
        xds_address: Option<String>,
    },
    /// List the profiles found and where.
    Profiles,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut flags = Flags {
        settings_file: cli.settings.clone(),
        log: cli.log.clone(),
        log_format: cli.log_format,
        ..Flags::default()
    };
    if let Command::Connect { xds_listen, admin_listen, .. } = &cli.command {
        flags.xds_listen = *xds_listen;
        flags.admin_listen = *admin_listen;
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
    let loaded = load::resolve(arg, &load::search_path()).and_then(|l| load::load(&l));
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
        Command::Bootstrap { profile, proxy, xds_address } => {
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
                    let s = Settings::load(flags, Some(&p.listen))?;
                    devbridge::settings::reachable_xds_address(s.xds_listen)
                }
            };
            print!("{}", devbridge::bootstrap::to_yaml(&devbridge::bootstrap::bootstrap(proxy, &host, port)));
            Ok(ExitCode::SUCCESS)
        }
        Command::Connect { profile, .. } => {
            let p = match load_profile(&profile) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let settings = Settings::load(flags, Some(&p.listen))?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(connect(p, settings))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(profile: Profile, settings: Settings) -> anyhow::Result<()> {
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
    let daemon = devbridge::app::Daemon::start(profile, xds, Some(admin), shutdown.clone())?;
    info!(profile = %name, %file, xds = %daemon.xds_addr, admin = ?daemon.admin_addr, "devbridge connected; point Envoy at the xDS address (devbridge bootstrap)");
    tokio::spawn(signals(shutdown));
    daemon.wait().await?;
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
            Source::KubernetesService(k) => format!("service {}/{}", k.namespace, k.service),
        };
        out.push_str(&format!("  cluster {} ({}): {detail}\n", c.name, c.source.kind()));
    }
    out
}
