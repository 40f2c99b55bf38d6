//! `devbridge status [PROFILE]`: asks a running daemon and prints its answer.

use std::process::ExitCode;

use super::{EXIT_UNAVAILABLE, StatusArgs};
use crate::settings::{Flags, Origin};
use crate::status;

/// Exit 0 when ready, 1 when not ([`status::EXIT_NOT_READY`]), 69 when no
/// daemon answers or the one answering serves another profile than the one named.
pub fn run(args: &StatusArgs, flags: &Flags) -> anyhow::Result<ExitCode> {
    let target = match super::find_daemon(flags, args.profile.as_deref())? {
        Ok(t) => t,
        Err((code, e)) => {
            eprintln!("devbridge: {e}");
            return Ok(ExitCode::from(code));
        }
    };
    let addr = target.addr;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = match rt.block_on(status::fetch(addr, status::DEFAULT_TIMEOUT)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("devbridge: {e}");
            if target.origin != Origin::Flag {
                eprintln!("  (the admin address {addr} came from {})", target.origin);
            }
            return Ok(ExitCode::from(EXIT_UNAVAILABLE));
        }
    };
    let parsed = status::parse(addr, &body);
    if args.json {
        print!("{body}");
    }
    let view = match parsed {
        Ok(view) => view,
        Err(_) if args.json => return Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("devbridge: {e}");
            return Ok(ExitCode::from(EXIT_UNAVAILABLE));
        }
    };
    if !args.json {
        print!("{}", status::render(&view, &addr.to_string()));
    }
    if let Err(e) = super::serves_named(&target, &view) {
        eprintln!("devbridge: {e}");
        return Ok(ExitCode::from(EXIT_UNAVAILABLE));
    }
    Ok(ExitCode::from(status::exit_code(&view)))
}
