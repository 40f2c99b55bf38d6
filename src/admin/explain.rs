//! `POST /v1/explain`: where a request would go, with what the daemon
//! knows at run time. The body is an [`ExplainRequest`]; the answer is an
//! [`Explanation`](crate::explain::Explanation) (200, also when nothing
//! matches), or `{"error": ...}` with 400 for input that names nothing.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

use super::{AdminState, MAX_BODY_BYTES, http};
use crate::explain::{self, EnvoyStream, ExplainRequest, Live, SourceInfo, StreamType};
use crate::model::Published;
use crate::xds::ResourceType;

pub const PATH: &str = "/v1/explain";

pub async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let want = "{\"url\": \"http://host:port/path\", \"method\"?, \"headers\"?: [[name, value]], \"proxy\"?}";
    let ask: ExplainRequest = match http::post_json(req, MAX_BODY_BYTES, want).await {
        Ok(a) => a,
        Err(response) => return *response,
    };
    let published = state.published.borrow().clone();
    let answer = explain::Request::parse(&ask)
        .and_then(|r| explain::explain(&published.profile, &r, ask.proxy.as_deref(), &live(state, &published)));
    match answer {
        Ok(e) => http::json(StatusCode::OK, &e),
        Err(e) => http::error(StatusCode::BAD_REQUEST, &e.0),
    }
}

/// What the daemon serves and knows now, for [`explain::explain`].
pub fn live(state: &AdminState, published: &Published) -> Live {
    let sources = state
        .sources
        .status()
        .into_iter()
        .map(|s| SourceInfo {
            name: s.name,
            clusters: s.clusters,
            state: s.state.as_str().to_string(),
            error: s.error,
            data_age_ms: s.data_age_ms,
            skipped: s.skipped.into_iter().map(|k| (k.cluster, k.object, k.reason)).collect(),
        })
        .collect();
    let snapshots = published
        .snapshots
        .iter()
        .map(|(name, s)| {
            let types = ResourceType::ALL.map(|t| (t.short().to_string(), s.resources(t).version.clone())).into();
            (name.clone(), (s.version.clone(), types))
        })
        .collect();
    let envoys = state
        .streams
        .all()
        .into_iter()
        .map(|i| EnvoyStream {
            stream: i.stream,
            node_id: i.node.map(|n| n.id).unwrap_or_default(),
            peer: i.peer,
            proxy: i.proxy,
            types: i
                .types
                .into_iter()
                .map(|(k, t)| (k, StreamType { acked: t.acked, nack: t.last_nack.map(|n| (n.version, n.error)) }))
                .collect(),
        })
        .collect();
    Live {
        daemon: true,
        discovered: published.discovered.endpoints.clone(),
        registered: (*published.registered).clone(),
        sources,
        snapshots,
        envoys,
    }
}
