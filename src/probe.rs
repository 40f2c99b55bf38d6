//! Edge probing: whether the laptop reaches each endpoint devbridge
//! serves, and how fast.
//!
//! [`check`] is one probe (a TCP connect, or an HTTP GET of a path), shared
//! by the daemon's periodic prober and `devbridge doctor`.

pub mod check;
