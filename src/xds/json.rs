//! Envoy's proto3 JSON, by reflection: messages are converted through
//! `prost-reflect` over the descriptor set `build.rs` compiles from the
//! `.proto` files `envoy-types` ships, so every field, enum, well-known
//! type and `Any` is written (and read) as Envoy's own JSON printer and
//! parser do, field names as in the `.proto` files (`connect_timeout`, as
//! Envoy's `/config_dump` writes them). No I/O; the descriptor pool is
//! decoded once, on first use, so a daemon that never needs JSON never
//! holds it.

use std::sync::OnceLock;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The descriptors of every message devbridge serves.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).expect("build.rs wrote a valid descriptor set"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("no message type {0} is known")]
    UnknownType(String),
    #[error("{0}")]
    Invalid(String),
}

/// `message` (of the full protobuf name `name`) as Envoy's JSON.
pub fn to_json(name: &str, message: &[u8]) -> Result<serde_json::Value, JsonError> {
    let desc = pool().get_message_by_name(name).ok_or_else(|| JsonError::UnknownType(name.to_string()))?;
    let dynamic = DynamicMessage::decode(desc, message).map_err(|e| JsonError::Invalid(e.to_string()))?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError::Invalid(e.to_string()))
}

/// A resource as Envoy's JSON: `{"@type": ..., fields}`.
pub fn any_to_json(any: &Any) -> Result<serde_json::Value, JsonError> {
    to_json("google.protobuf.Any", &any.encode_to_vec())
}

/// A `DiscoveryResponse` as the JSON a REST subscription reads.
pub fn response_to_json(response: &DiscoveryResponse) -> Result<serde_json::Value, JsonError> {
    to_json("envoy.service.discovery.v3.DiscoveryResponse", &response.encode_to_vec())
}

/// A `DiscoveryRequest` from the JSON a REST subscription sends. Fields
/// this version does not know are skipped, as proto3 JSON parsers may.
pub fn request_from_json(text: &[u8]) -> Result<DiscoveryRequest, JsonError> {
    let desc = pool()
        .get_message_by_name("envoy.service.discovery.v3.DiscoveryRequest")
        .expect("the descriptor set has DiscoveryRequest");
    let mut de = serde_json::Deserializer::from_slice(text);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(desc, &mut de, &options)
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    de.end().map_err(|e| JsonError::Invalid(e.to_string()))?;
    dynamic.transcode_to::<DiscoveryRequest>().map_err(|e| JsonError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests;
