//! The `devbridge` command line: parses arguments, sets up logging and
//! hands each command to the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use devbridge::app::connect::{Connect, Sidecar, SidecarError};
use devbridge::app::docker::PrepareError;
use devbridge::cli::{self, Cli, Command, EXIT_INVALID, EXIT_UNAVAILABLE};
use devbridge::profile::load;
use devbridge::settings::{Flags, LogFormat, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = cli.flags();
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
    // The writer's channel is allocated and touched whole at start-up:
    // the default 128,000 lines were 4 MiB of an idle daemon's memory.
    const LOG_BUFFER_LINES: usize = 4096;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
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

fn run(command: Command, flags: &Flags) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { profile } => Ok(cli::check::check(&profile)),
        Command::Profiles => Ok(cli::check::profiles()),
        Command::Bootstrap(args) => cli::bootstrap::run(args, flags),
        Command::Status(args) => cli::status::run(&args, flags),
        Command::Override { command } => cli::overrides::run(&command, flags),
        Command::Explain(args) => cli::explain::run(&args, flags),
        Command::Diff(args) => cli::diff::run(&args, flags),
        Command::Doctor(args) => cli::doctor::run(&args, flags),
        Command::Certs { command } => cli::certs::run(command),
        Command::Discover(args) => Ok(ExitCode::from(cli::onboard::discover(args))),
        Command::Init(args) => Ok(ExitCode::from(cli::onboard::init(args))),
        Command::Connect(args) => {
            let (profile, location) = match cli::load_located(&args.profile) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            // Check the sidecar can be run before anything starts.
            let sidecar = match args.envoy {
                false => None,
                true => match Sidecar::find(&profile, args.proxy.as_deref(), args.envoy_bin.as_deref()) {
                    Ok(s) => Some(Sidecar { api: args.xds, ..s }),
                    Err(e) => {
                        eprintln!("devbridge: {e}");
                        let code = if matches!(e, SidecarError::NoEnvoy(_)) { EXIT_UNAVAILABLE } else { EXIT_INVALID };
                        return Ok(ExitCode::from(code));
                    }
                },
            };
            let mut settings = Settings::load(flags, Some(&profile.listen))?;
            // Sidecars in containers: where they reach this host, set before anything binds.
            let containers = match args.runtime.map(|r| devbridge::app::docker::prepare(r, &mut settings)) {
                None => None,
                Some(Ok(listen)) => listen,
                Some(Err(e)) => {
                    eprintln!("devbridge: {e}");
                    let code = match e {
                        PrepareError::Usage(_) => EXIT_INVALID,
                        PrepareError::Unavailable(_) => EXIT_UNAVAILABLE,
                    };
                    return Ok(ExitCode::from(code));
                }
            };
            if let Some(listen) = &containers {
                tracing::info!(xds = %listen.xds_listen, "listening for sidecars in containers on {}", listen.why);
            }
            let follow = match location {
                load::Location::File(path) => Some(path),
                load::Location::Embedded(_) => None,
            };
            let in_containers = containers.is_some();
            Connect { profile, settings, follow, sidecar, xds_socket: args.xds_socket, in_containers }
                .run_blocking()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
