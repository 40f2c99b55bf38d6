//! `devbridge diff`: what serving a profile would change. A thin client of
//! the daemon's `POST /v1/diff`, or, with `--against`, the same comparison
//! of two files without a daemon.

use std::process::ExitCode;

use super::{DiffArgs, EXIT_INVALID};
use crate::explain::render::Style;
use crate::profile::diff::{DiffAnswer, compare};
use crate::profile::load;
use crate::settings::Flags;

/// Exit 0 no change, 1 changes, 64 invalid (as `diff` does), 69 no daemon.
pub fn run(args: &DiffArgs, flags: &Flags) -> anyhow::Result<ExitCode> {
    // The profile to serve, as (display name, text); `None`: the daemon's own file.
    let new = match &args.profile {
        Some(arg) => match read(arg) {
            Ok(t) => Some(t),
            Err(code) => return Ok(code),
        },
        None if args.against.is_some() => {
            eprintln!("devbridge: --against compares two files; name the profile to compare with it");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        None => None,
    };
    let answer = match &args.against {
        Some(against) => {
            let served = match super::load_profile(against) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let (file, text) = new.expect("a profile is named with --against");
            compare(&served, &file, &text)
        }
        None => match ask_daemon(new, args.profile.as_deref(), flags)? {
            Ok(a) => a,
            Err((code, message)) => {
                eprintln!("devbridge: {message}");
                return Ok(ExitCode::from(code));
            }
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if answer.errors.is_empty() {
        print!("{}", render(&answer, Style { color: super::color() }));
    } else {
        for e in &answer.errors {
            eprintln!("error: {e}");
        }
        eprintln!("devbridge: {} cannot be served; nothing to compare", answer.file);
    }
    Ok(ExitCode::from(match &answer.diff {
        _ if !answer.errors.is_empty() => EXIT_INVALID,
        Some(d) if !d.is_empty() => 1,
        _ => 0,
    }))
}

/// A profile's file name and text, found as `check` finds it.
fn read(arg: &str) -> Result<(String, String), ExitCode> {
    let fail = |e: String| {
        eprintln!("devbridge: {e}");
        ExitCode::from(EXIT_INVALID)
    };
    match load::resolve(arg, &load::search_path()).map_err(|e| fail(e.to_string()))? {
        load::Location::File(path) => match std::fs::read(&path) {
            Ok(bytes) => {
                let file = path.display().to_string();
                let text = load::profile_text(&file, &bytes).map_err(|e| fail(e.to_string()))?;
                Ok((file, text.to_string()))
            }
            Err(e) => Err(fail(format!("cannot read {}: {e}", path.display()))),
        },
        location @ load::Location::Embedded(name) => {
            Ok((location.to_string(), load::embedded(name).unwrap_or_default().to_string()))
        }
    }
}

/// Asks the daemon `profile`'s `[listen]` names (or the one `--admin` and
/// the settings name). The profile is the edit to compare, so it may be
/// named otherwise than the one served (`edited-demo.toml` against `demo`):
/// the answer's first line says which profile the daemon serves.
fn ask_daemon(
    new: Option<(String, String)>,
    profile: Option<&str>,
    flags: &Flags,
) -> anyhow::Result<Result<DiffAnswer, (u8, String)>> {
    let target = match super::find_daemon(flags, profile)? {
        Ok(t) => super::DaemonTarget { profile: None, ..t },
        Err(e) => return Ok(Err(e)),
    };
    let ask =
        crate::profile::diff::DiffRequest { file: new.as_ref().map(|(f, _)| f.clone()), text: new.map(|(_, t)| t) };
    super::post_admin(&target, "/v1/diff", &ask)
}

/// The change for people: the summary line reload will log, then each proxy's changes.
pub fn render(a: &DiffAnswer, st: Style) -> String {
    let mut out = format!("{} against {}\n", a.file, a.against);
    let Some(d) = &a.diff else { return out };
    if d.is_empty() {
        out.push_str("no change: nothing Envoy is served would change\n");
        return out;
    }
    out.push_str(&format!("change: {}\n", st.bold(&a.summary)));
    for (proxy, lines) in &d.per_proxy {
        out.push_str(&format!("proxy {}:\n", st.bold(proxy)));
        for l in lines {
            let l = if l.starts_with("+ ") || l.contains(": + ") {
                st.green(l)
            } else if l.starts_with("- ") || l.contains(": - ") {
                st.red(l)
            } else {
                l.clone()
            };
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}
