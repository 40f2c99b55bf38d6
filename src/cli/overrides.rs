//! `devbridge override add|list|rm`: a thin client of the daemon's
//! `/v1/overrides` (see `crate::overrides`).

use std::net::SocketAddr;
use std::process::ExitCode;

use super::{DaemonTarget, EXIT_UNAVAILABLE};
use crate::overrides::{OverrideReport, OverrideRequest, PATH};
use crate::settings::Flags;

#[derive(Debug, clap::Subcommand)]
pub enum OverrideCommand {
    /// Send one route to a local copy (or another cluster) until removed or expired.
    ///
    /// TARGET is `host[:port]/path`: the domain, by name, host or alias, and the path prefix whose
    /// requests the override takes, before the profile's own routes. Example:
    /// `devbridge override add demo.example.com/api --to 127.0.0.1:5000 --for 2h`.
    Add {
        target: String,
        /// `ip:port` of the local copy, or the name of a profile cluster (may be
        /// left out with --fault-*: faults on the way to where the route goes).
        #[arg(long, default_value = "", required_unless_present_any = ["fault_delay", "fault_abort"])]
        to: String,
        /// Delay these requests by this long, e.g. `2s`.
        #[arg(long)]
        fault_delay: Option<String>,
        /// Share of requests delayed, 0-100 (default 100).
        #[arg(long, requires = "fault_delay")]
        fault_delay_percent: Option<u32>,
        /// Answer these requests with this status instead, e.g. 503.
        #[arg(long)]
        fault_abort: Option<u16>,
        /// Share of requests aborted, 0-100 (default 100).
        #[arg(long, requires = "fault_abort")]
        fault_abort_percent: Option<u32>,
        /// Only requests with this header value (`name=value`, repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// How long it lasts, e.g. `30m`, `2h` (default: until removed).
        #[arg(long = "for")]
        for_: Option<String>,
        /// Mirror instead: staging answers, the local copy gets a copy of each request.
        #[arg(long)]
        mirror: bool,
        /// Only for this proxy's Envoys (default: every proxy serving the domain).
        #[arg(long)]
        proxy: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// List the overrides in force (run-time ones newest first, then the profile's).
    List {
        /// Print the JSON the daemon answers.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Remove an override by id, or every run-time one with --all.
    Rm {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Ask the daemon serving this profile (name or file), found as `status` finds it.
    #[arg(long)]
    pub daemon: Option<String>,
    /// The daemon's admin address. Env: DEVBRIDGE_ADMIN_LISTEN. Default 127.0.0.1:18001.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
}

impl OverrideCommand {
    pub fn admin(&self) -> Option<SocketAddr> {
        match self {
            Self::Add { daemon, .. } | Self::List { daemon, .. } | Self::Rm { daemon, .. } => daemon.admin,
        }
    }

    fn daemon(&self) -> Option<&str> {
        match self {
            Self::Add { daemon, .. } | Self::List { daemon, .. } | Self::Rm { daemon, .. } => daemon.daemon.as_deref(),
        }
    }
}

/// Exit 0 done, 64 refused (unknown domain, bad address, ...), 69 no daemon.
pub fn run(cmd: &OverrideCommand, flags: &Flags) -> anyhow::Result<ExitCode> {
    let target = match super::find_daemon(flags, cmd.daemon())? {
        Ok(t) => t,
        Err((code, e)) => {
            eprintln!("devbridge: {e}");
            return Ok(ExitCode::from(code));
        }
    };
    let answer = match cmd {
        OverrideCommand::Add {
            target: t,
            to,
            headers,
            for_,
            mirror,
            fault_delay,
            fault_delay_percent,
            fault_abort,
            fault_abort_percent,
            proxy,
            ..
        } => {
            let fault = (fault_delay.is_some() || fault_abort.is_some()).then(|| crate::overrides::FaultRequest {
                delay: fault_delay.clone(),
                delay_percent: *fault_delay_percent,
                abort: *fault_abort,
                abort_percent: *fault_abort_percent,
            });
            let ask = OverrideRequest {
                target: t.clone(),
                to: to.clone(),
                headers: headers.clone(),
                for_: for_.clone(),
                mirror: *mirror,
                fault,
                proxy: proxy.clone(),
            };
            exchange(&target, "POST", PATH.to_string(), Some(serde_json::to_string(&ask)?))?
                .and_then(|body| parse::<OverrideReport>(&target, &body))
                .map(|o| {
                    let until = o.inner.expires_at_ms.map(|t| format!(", expires in {}", left(t))).unwrap_or_default();
                    println!("{}: {}{until}", o.inner.id, o.description);
                })
        }
        OverrideCommand::List { json, .. } => exchange(&target, "GET", PATH.to_string(), None)?.and_then(|body| {
            if *json {
                print!("{body}");
                return Ok(());
            }
            let list: Vec<OverrideReport> = parse(&target, &body)?;
            if list.is_empty() {
                println!("no overrides");
            }
            for o in list {
                let until = o.inner.expires_at_ms.map(|t| format!("  (expires in {})", left(t))).unwrap_or_default();
                let from = if o.source == "profile" { "  (profile)" } else { "" };
                println!("{:<10} {}{until}{from}", o.inner.id, o.description);
            }
            Ok(())
        }),
        OverrideCommand::Rm { id, .. } => {
            let path = match id {
                Some(id) => format!("{PATH}/{id}"),
                None => PATH.to_string(),
            };
            exchange(&target, "DELETE", path, None)?.and_then(|body| parse::<Vec<OverrideReport>>(&target, &body)).map(
                |gone| {
                    if gone.is_empty() {
                        println!("no overrides to remove");
                    }
                    for o in gone {
                        println!("removed {}: {}", o.inner.id, o.description);
                    }
                },
            )
        }
    };
    Ok(match answer {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("devbridge: {e}");
            ExitCode::from(code)
        }
    })
}

/// One request to the daemon: its 2xx body, or the exit code and why not.
/// Only listing treats a 404 as a daemon that has no overrides API; for the
/// others it is the daemon refusing (no such override).
fn exchange(
    target: &DaemonTarget,
    method: &str,
    path: String,
    body: Option<String>,
) -> anyhow::Result<Result<String, (u8, String)>> {
    let listing = method == "GET" && path == PATH;
    let refusals: &[u16] = if listing { &[400] } else { &[400, 404] };
    super::admin_exchange(target, method, &path, body, refusals)
}

fn parse<T: serde::de::DeserializeOwned>(target: &DaemonTarget, body: &str) -> Result<T, (u8, String)> {
    serde_json::from_str(body)
        .map_err(|e| (EXIT_UNAVAILABLE, format!("{} answered {PATH} with something else: {e}", target.addr)))
}

/// Time left until `at` (ms since the epoch), coarse: `1h 59m`, `42s`.
fn left(at: u64) -> String {
    let secs = at.saturating_sub(crate::model::now_ms()) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}
