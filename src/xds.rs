//! Everything Envoy-facing: model -> protobuf translation, snapshots, the
//! per-stream ADS protocol state, and the tonic server.
//!
//! `translate`, `load_assignment`, `node`, `snapshot`, `stream`, `delta`, `rest`, `json` and `dump` are pure (no
//! tokio, no tonic service, no I/O); `server` is the thin async shell around `stream` and `delta`.
//! Generated protobuf types stay inside this module.

pub mod delta;
pub mod dump;
pub mod json;
pub mod load_assignment;
pub mod node;
pub mod registry;
pub mod rest;
pub mod server;
pub mod snapshot;
pub mod stream;
pub mod translate;

pub use snapshot::{ResourceType, Snapshot};

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf as pbwk;

pub(crate) fn u32v(v: u32) -> pbwk::UInt32Value {
    pbwk::UInt32Value { value: v }
}

pub(crate) fn socket_address(ip: impl ToString, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}
