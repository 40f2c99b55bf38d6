//! Everything Envoy-facing: model -> protobuf translation, snapshots, the
//! per-stream ADS protocol state, and the tonic server.
//!
//! `translate`, `load_assignment`, `snapshot`, `stream` and `dump` are pure (no tokio, no tonic
//! service, no I/O); `server` is the thin async shell around `stream`.
//! Generated protobuf types stay inside this module.

pub mod dump;
pub mod load_assignment;
pub mod registry;
pub mod server;
pub mod snapshot;
pub mod stream;
pub mod translate;

pub use snapshot::{ResourceType, Snapshot};
