//! Profiles on disk: TOML in, a validated [`Profile`](crate::model::Profile)
//! out, with every problem located (`file:line:col`), and how profiles are
//! found and followed.
//!
//! `raw` mirrors the TOML; `validate` turns it into the model, reporting
//! every problem at once with its location; `load` finds profiles on disk;
//! `watch` follows one file and hands each good edit on.

pub mod diff;
pub mod load;
pub mod raw;
pub mod validate;
pub mod watch;

pub use crate::model::profile::*;
pub use validate::{ProfileError, ProfileErrors, parse_profile};
