//! Edge probing: whether the laptop reaches each endpoint devbridge
//! serves, and how fast.
//!
//! [`check`] is one probe (a TCP connect, or an HTTP GET of a path), shared
//! by the daemon's periodic prober and `devbridge doctor`; [`plan`] decides
//! what to probe and keeps what was found (pure); [`report`] shows it in
//! `/status`.

pub mod check;
pub mod plan;
pub mod report;
