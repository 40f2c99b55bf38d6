//! `POST /v3/discovery:{clusters,endpoints,listeners,routes}`: REST xDS for
//! an Envoy whose bootstrap says `api_type: REST` (`devbridge bootstrap
//! --xds rest`). The body is a JSON `DiscoveryRequest`; the answer a JSON
//! `DiscoveryResponse` of the client's resources of that type, from the
//! snapshot the streams serve (`xds::rest`), in Envoy's proto3 JSON
//! (`xds::json`). A bad body is a 400 saying why, a node that matches no
//! proxy a 404 saying why (one WARN per 10 s); a NACK (the poll carries
//! `error_detail`) is logged and counted once per version.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tracing::{info, warn};

use super::{AdminState, MAX_BODY_BYTES, http};
use crate::throttle::{DEFAULT_INTERVAL, Throttle};
use crate::xds::node::{NodeId, NodeMatch};
use crate::xds::registry::{NodeInfo, RestPoll};
use crate::xds::{ResourceType, json, rest};

/// One line per unknown node per 10 s.
static UNMATCHED: Throttle = Throttle::new(DEFAULT_INTERVAL);
/// A NACK is repeated on every poll until the content changes: reported once.
static NACKS: Throttle = Throttle::new(Duration::from_secs(24 * 3600));

pub async fn handle(state: &AdminState, ty: ResourceType, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::POST {
        return http::method_not_allowed("POST");
    }
    let body = match http::read_body(req, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let request = match json::request_from_json(&body) {
        Ok(r) => r,
        Err(e) => {
            return http::error(StatusCode::BAD_REQUEST, &format!("the body is not a JSON DiscoveryRequest: {e}"));
        }
    };
    if !request.type_url.is_empty() && request.type_url != ty.type_url() {
        return http::error(
            StatusCode::BAD_REQUEST,
            &format!("this path serves {}, the request asks for {}", ty.type_url(), request.type_url),
        );
    }
    let Some(node) = &request.node else {
        return http::error(StatusCode::BAD_REQUEST, "the DiscoveryRequest names no node (node.cluster, node.id)");
    };
    let published = state.published.borrow().clone();
    let zone = node.locality.as_ref().map(|l| l.zone.as_str()).unwrap_or_default();
    let id = NodeId { cluster: &node.cluster, id: &node.id, zone };
    let mut matched = NodeMatch::default();
    matched.update(&published.profile, id, None);
    let (Some(proxy), None) = (&matched.proxy, &matched.unmatched) else {
        let why = matched.unmatched.unwrap_or_else(|| "no proxy matches".into());
        state.rest.poll(poll(node, None, Some(why.clone()), ty, &request, None), crate::model::now_ms());
        if let Some(held) = UNMATCHED.allow(&format!("{}/{}", node.cluster, node.id)) {
            warn!(node.cluster = %node.cluster, node.id = %node.id, held_back = held, "REST xDS poll served nothing: {why}");
        }
        return http::error(StatusCode::NOT_FOUND, &why);
    };
    let Some(snapshot) = published.snapshots.get(proxy) else {
        return http::error(StatusCode::SERVICE_UNAVAILABLE, &format!("proxy {proxy} has no configuration yet"));
    };
    if let Some(status) = &request.error_detail {
        let error = crate::xds::stream::condense_nack(&status.message);
        if NACKS.allow(&format!("{proxy}/{}/{error}", ty.short())).is_some() {
            state.metrics.nack(ty);
            warn!(proxy = %proxy, r#type = ty.short(), error = %error, "Envoy rejected the configuration (NACK) over REST; it keeps its previous config");
        }
    }
    let source = rest::rest_source(crate::bootstrap::XDS_CLUSTER);
    let mut response = rest::respond(snapshot, ty, &request.resource_names, &source);
    // REST has no nonce of its own; the version names the content, and a
    // NACK says which version it rejects through this field.
    response.nonce = response.version_info.clone();
    if request.version_info != response.version_info
        && request.error_detail.is_none()
        && !request.version_info.is_empty()
    {
        info!(proxy = %proxy, r#type = ty.short(), version = %response.version_info, "REST xDS poll: new version");
    }
    let record = poll(node, Some(proxy.clone()), None, ty, &request, Some(response.version_info.clone()));
    state.rest.poll(record, crate::model::now_ms());
    match json::response_to_json(&response) {
        Ok(v) => http::json(StatusCode::OK, &v),
        Err(e) => http::error(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot write the response as JSON: {e}")),
    }
}

/// What the registry records of a poll.
fn poll(
    node: &envoy_types::pb::envoy::config::core::v3::Node,
    proxy: Option<String>,
    unmatched: Option<String>,
    ty: ResourceType,
    request: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest,
    answered: Option<String>,
) -> RestPoll {
    RestPoll {
        node: NodeInfo::of(node),
        proxy,
        unmatched,
        ty,
        holds: request.version_info.chars().take(64).collect(),
        answered,
        nack: request.error_detail.as_ref().map(|s| crate::xds::stream::condense_nack(&s.message)),
    }
}
