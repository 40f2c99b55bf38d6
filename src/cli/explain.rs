//! `devbridge explain`: a thin client of the daemon's `POST /v1/explain`,
//! found by `--admin` or `--daemon PROFILE`, or, with `--profile`, the same
//! code over a profile file alone.

use std::process::ExitCode;

use super::{EXIT_INVALID, ExplainArgs};
use crate::explain::{self, ExplainRequest, Live, render};
use crate::settings::Flags;

pub fn run(args: &ExplainArgs, flags: &Flags) -> anyhow::Result<ExitCode> {
    let mut headers = Vec::new();
    for h in &args.headers {
        match h.split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_string(), v.trim().to_string())),
            None => {
                eprintln!("devbridge: -H {h:?} is not `Name: value`");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    let ask =
        ExplainRequest { url: args.url.clone(), method: Some(args.method.clone()), headers, proxy: args.proxy.clone() };
    // Bad input is refused here, daemon or not.
    let req = match explain::Request::parse(&ask) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("devbridge: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let answer = match &args.profile {
        Some(p) => {
            let profile = match super::load_profile(p) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            explain::explain(&profile, &req, args.proxy.as_deref(), &Live::default())
                .map_err(|e| (EXIT_INVALID, e.to_string()))
        }
        None => match super::find_daemon(flags, args.daemon.as_deref())? {
            Ok(target) => super::post_admin(&target, "/v1/explain", &ask)?,
            Err(e) => Err(e),
        },
    };
    let e = match answer {
        Ok(e) => e,
        Err((code, message)) => {
            eprintln!("devbridge: {message}");
            return Ok(ExitCode::from(code));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", render::render(&e, render::Style { color: super::color() }));
    }
    Ok(ExitCode::from(e.outcome.exit_code()))
}
