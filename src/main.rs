//! The `devbridge` command line: parses arguments, sets up logging and
//! hands over to the library.

use std::io::Write;
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
use tracing::{info, warn};

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
        /// Serve xDS over mutual TLS with the certificates of `devbridge certs init`
        /// (and the admin API too when it is not on loopback). Env: DEVBRIDGE_TLS.
        #[arg(long)]
        tls: bool,
        /// Where `devbridge certs init` wrote them (default ~/.config/devbridge/tls).
        #[arg(long)]
        tls_dir: Option<PathBuf>,
        /// Allow a non-loopback address without TLS: anyone who reaches it gets the
        /// routing configuration. Logged at WARN on every start.
        #[arg(long)]
        insecure: bool,
        /// Serve xDS on this Unix socket (mode 0600) instead of TCP; for Envoys on
        /// this machine (`devbridge bootstrap --xds-socket`).
        #[arg(long, conflicts_with_all = ["xds_listen", "tls"])]
        xds_socket: Option<PathBuf>,
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
        /// Reach devbridge over mutual TLS (`devbridge connect --tls`).
        #[arg(long)]
        tls: bool,
        /// With --tls: the directory, as the sidecar sees it, holding the proxy's
        /// ca.pem, cert.pem and key.pem (`devbridge certs issue <proxy>`). Default: the
        /// proxy's directory under ~/.config/devbridge/tls for a process,
        /// /etc/devbridge/tls in a container.
        #[arg(long, requires = "tls")]
        tls_dir: Option<String>,
        /// Reach devbridge on this Unix socket (`devbridge connect --xds-socket`).
        #[arg(long, conflicts_with = "xds_address")]
        xds_socket: Option<String>,
    },
    /// Make the local CA and certificates for TLS between Envoy and devbridge.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
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

#[derive(Subcommand)]
enum CertsCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut flags = Flags {
        settings_file: cli.settings.clone(),
        log: cli.log.clone(),
        log_format: cli.log_format,
        ..Flags::default()
    };
    match &cli.command {
        Command::Connect { xds_listen, admin_listen, tls, tls_dir, insecure, .. } => {
            flags.xds_listen = *xds_listen;
            flags.admin_listen = *admin_listen;
            flags.tls = tls.then_some(true);
            flags.tls_dir = tls_dir.clone();
            flags.insecure = insecure.then_some(true);
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
    let logs = init_logging(&settings);
    let result = run(cli.command, &flags);
    // Lines logged before a fatal error come out before it.
    drop(logs);
    match result {
        Ok(code) => code,
        Err(e) => {
            // Once, on stderr; a closed stderr must not turn this into a panic.
            let _ = writeln!(std::io::stderr(), "devbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr through a writer thread that drops lines when
/// stderr cannot keep up and ignores write errors: a reader that stops
/// reading or goes away (`devbridge connect demo 2>&1 | head`) never blocks,
/// stops or panics the daemon. Colour only on a terminal.
fn init_logging(s: &Settings) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_new(devbridge::discovery::kube::log_filter(&s.log)).unwrap_or_else(|e| {
            let _ = writeln!(std::io::stderr(), "devbridge: log filter {:?} is invalid ({e}); using \"info\"", s.log);
            tracing_subscriber::EnvFilter::new(devbridge::discovery::kube::log_filter("info"))
        });
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("devbridge-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    match s.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    guard
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
        Command::Bootstrap { profile, proxy, xds_address, runtime, out, format, tls, tls_dir, xds_socket } => {
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
            let target = match xds_socket {
                Some(path) => devbridge::bootstrap::XdsTarget::Pipe { path },
                None => devbridge::bootstrap::XdsTarget::Tcp { host: host.clone(), port },
            };
            let client_tls = tls.then(|| devbridge::bootstrap::ClientTls {
                dir: tls_dir.unwrap_or_else(|| runtime.default_tls_dir(&proxy.name)),
            });
            let shown = match &target {
                devbridge::bootstrap::XdsTarget::Pipe { path } => format!("unix:{path}"),
                devbridge::bootstrap::XdsTarget::Tcp { .. } => format!("{host}:{port}"),
            };
            let notes = runtime.notes_with(&p.name, &proxy.name, &shown, client_tls.as_ref());
            let value = devbridge::bootstrap::bootstrap_with(proxy, &target, client_tls.as_ref());
            let text = devbridge::bootstrap::render(&value, format, &notes);
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
            let view = devbridge::status::parse(addr, &body);
            if json {
                print!("{body}");
            }
            let view = match view {
                Ok(view) => view,
                Err(_) if json => return Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("devbridge: {e}");
                    return Ok(ExitCode::from(EXIT_UNAVAILABLE));
                }
            };
            if !json {
                print!("{}", devbridge::status::render(&view, &addr.to_string()));
            }
            Ok(ExitCode::from(devbridge::status::exit_code(&view)))
        }
        Command::Certs { command } => certs(command),
        Command::Connect { profile, envoy, proxy, envoy_bin, xds_socket, .. } => {
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
            // More descriptors than the soft default, where the hard limit allows.
            let _ = devbridge::accept::raise_fd_limit();
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(connect(p, settings, follow, sidecar, xds_socket))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(
    profile: Profile,
    settings: Settings,
    follow: Option<PathBuf>,
    sidecar: Option<(PathBuf, devbridge::profile::Proxy)>,
    xds_socket: Option<PathBuf>,
) -> anyhow::Result<()> {
    // Nothing answers beyond loopback without TLS, unless the user insists.
    let exposed: Vec<(&str, SocketAddr)> = [("xDS", settings.xds_listen), ("admin", settings.admin_listen)]
        .into_iter()
        // An xDS Unix socket replaces the xDS TCP listener.
        .filter(|(what, a)| {
            let unused = *what == "xDS" && xds_socket.is_some();
            !unused && !a.ip().is_loopback()
        })
        .collect();
    for (what, addr) in &exposed {
        if settings.tls {
            continue;
        }
        if settings.insecure {
            warn!(%addr, what, "serving without TLS beyond loopback (--insecure): anyone who reaches this address gets the routing configuration and the admin API");
        } else {
            anyhow::bail!(
                "refusing to serve {what} on {addr} without TLS: anyone who can reach it would get the routing configuration{}. Run `devbridge certs init` and add --tls, or listen on 127.0.0.1 (--insecure accepts the risk)",
                if *what == "admin" { " and the admin API" } else { "" }
            );
        }
    }
    let tls_paths = settings
        .tls_dir
        .clone()
        .map(devbridge::certs::CertPaths::new)
        .or_else(devbridge::certs::CertPaths::default_location);
    let tls = match (settings.tls, &tls_paths) {
        (true, Some(paths)) => Some(devbridge::tls::TlsFiles::from_paths(paths)),
        (true, None) => anyhow::bail!("--tls needs a certificate directory; pass --tls-dir"),
        (false, _) => None,
    };
    let admin_tls = tls.is_some() && !settings.admin_listen.ip().is_loopback();
    let xds: devbridge::xds::server::XdsListener = match &xds_socket {
        Some(path) => devbridge::xds::server::bind_unix(path)?.into(),
        None => tokio::net::TcpListener::bind(settings.xds_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for xDS on {}; is another devbridge running? (--xds-listen)",
                    settings.xds_listen
                )
            })?
            .into(),
    };
    let admin = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("cannot listen for admin on {} (--admin-listen)", settings.admin_listen))?;
    let shutdown = CancellationToken::new();
    let name = profile.name.clone();
    let file = profile.file.clone();
    if follow.is_none() {
        info!(profile = %profile.name, "the profile is compiled in; edits are not followed (copy it into a profile directory to edit it)");
    }
    let options = devbridge::app::Options {
        state_file: devbridge::registered::default_state_file(&profile.name),
        follow,
        tls,
        admin_tls,
        discovery: Default::default(),
        limits: settings.limits(),
    };
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

fn certs(command: CertsCommand) -> anyhow::Result<ExitCode> {
    let paths = |dir: Option<PathBuf>| {
        dir.map(devbridge::certs::CertPaths::new)
            .or_else(devbridge::certs::CertPaths::default_location)
            .context("no config directory (set HOME or XDG_CONFIG_HOME, or pass --dir)")
    };
    match command {
        CertsCommand::Init { san, dir } => {
            let paths = paths(dir)?;
            let report = devbridge::certs::init(&paths, &san)?;
            if report.ca_created {
                println!("created the CA: {}", paths.ca_cert().display());
            } else {
                println!("kept the CA: {}", paths.ca_cert().display());
            }
            println!("issued devbridge's server certificate: {}", paths.server_cert().display());
            println!("  valid for: {}", report.server_names.join(", "));
            println!("next: devbridge certs issue <proxy>, then devbridge connect <profile> --tls");
        }
        CertsCommand::Issue { proxy, out, dir } => {
            let paths = paths(dir)?;
            let written = devbridge::certs::issue(&paths, &proxy, out.as_deref())?;
            println!("issued a client certificate for proxy {proxy:?} in {}", written.display());
            println!("  ca.pem, cert.pem, key.pem (0600); mount it where the sidecar runs and pass that path to");
            println!("  devbridge bootstrap <profile> --proxy {proxy} --tls --tls-dir <path>");
        }
    }
    Ok(ExitCode::SUCCESS)
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
            Source::Registered => "endpoints set through the admin API".to_string(),
        };
        out.push_str(&format!("  cluster {} ({}): {detail}\n", c.name, c.source.kind()));
    }
    out
}
