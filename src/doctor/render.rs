//! `devbridge doctor` for people: each subject once, its checks under it,
//! the fix under a check that is not ok, and the summary line last.

use std::fmt::Write as _;

use super::{Report, Verdict};

/// The report as text, `color` for a terminal.
pub fn render(r: &Report, color: bool) -> String {
    let mut out = String::new();
    let mut subject: Option<&str> = None;
    for c in &r.checks {
        if subject != Some(c.subject.as_str()) {
            let _ = writeln!(out, "{}", c.subject);
            subject = Some(c.subject.as_str());
        }
        let (word, paint) = match c.verdict {
            Verdict::Ok => ("ok     ", "32"),
            Verdict::Warning => ("warning", "33"),
            Verdict::Failed => ("FAILED ", "31"),
        };
        let word = if color { format!("\x1b[{paint}m{word}\x1b[0m") } else { word.to_string() };
        let _ = writeln!(out, "  {word} {}: {}", c.name, c.found);
        for d in &c.details {
            let _ = writeln!(out, "            {d}");
        }
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "          fix: {fix}");
        }
    }
    let _ = writeln!(out, "{}", r.summary());
    out
}
