//! `devbridge doctor [PROFILE]`: finds the profile and its daemon as
//! `status` does, runs [`crate::doctor::gather`] and prints the report.

use std::process::ExitCode;

use super::DoctorArgs;
use crate::doctor::{gather, render};
use crate::settings::Flags;
use crate::status;

/// Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 64 bad input.
pub fn run(args: &DoctorArgs, flags: &Flags) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // Without a profile named, the one the daemon serves.
    let profile = match &args.profile {
        Some(p) => Some(p.clone()),
        None => {
            let addr = super::admin_address(flags)?;
            let body = rt.block_on(status::fetch(addr, status::DEFAULT_TIMEOUT)).ok();
            let served = body.and_then(|b| status::parse(addr, &b).ok()).and_then(|s| s.profile);
            served.map(|p| if std::path::Path::new(&p.file).is_file() { p.file } else { p.name })
        }
    };
    let target = match super::find_daemon(flags, profile.as_deref())? {
        Ok(t) => t,
        // A profile that cannot be found is the first check's failure; the daemon is looked for where the settings say.
        Err(_) => super::find_daemon(flags, None)?.map_err(|(_, e)| anyhow::anyhow!(e))?,
    };
    let ask =
        gather::Ask { profile, admin: target.addr, admin_origin: target.origin.to_string(), flags: flags.clone() };
    let report = rt.block_on(gather::run(&ask));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", render::render(&report, super::color()));
    }
    Ok(ExitCode::from(report.exit_code()))
}
