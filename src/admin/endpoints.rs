//! `/v1/clusters/{name}/endpoints`: endpoints registered at run time.
//!
//! `GET` lists them, `PUT` replaces them with a JSON array of
//! `{address, zone?, weight?, metadata?}`, `DELETE` empties the cluster.
//! Each answers the cluster's endpoints afterwards. Refusals carry
//! [`RegisterError::http_status`] and `{"error": "..."}`, and change nothing.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tracing::warn;

use super::{AdminState, MAX_BODY_BYTES, http};
use crate::registered::{RegisterError, RegisteredEndpoint};

const PREFIX: &str = "/v1/clusters/";
const SUFFIX: &str = "/endpoints";

/// The cluster name in an endpoints path.
pub fn cluster_of(path: &str) -> Option<&str> {
    let name = path.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

pub async fn handle(state: &AdminState, cluster: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let result = match *req.method() {
        Method::GET => state.registry.get(cluster),
        Method::PUT => {
            let body = match http::read_body(req, MAX_BODY_BYTES).await {
                Ok(b) => b,
                Err(response) => return *response,
            };
            let endpoints: Vec<RegisteredEndpoint> = match serde_json::from_slice(&body) {
                Ok(e) => e,
                Err(e) => {
                    return http::error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "the body is not a JSON array of {{\"address\": \"ip:port\", \"zone\"?, \"weight\"?, \"metadata\"?}}: {e}"
                        ),
                    );
                }
            };
            set(state, cluster, endpoints).await
        }
        Method::DELETE => set(state, cluster, Vec::new()).await,
        _ => return http::method_not_allowed("GET, PUT, DELETE"),
    };
    match result {
        Ok(endpoints) => http::json(StatusCode::OK, &endpoints),
        Err(e) => {
            if !e.is_client_error() {
                warn!(cluster, error = %e, "registering endpoints failed");
            }
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            http::error(status, &e.to_string())
        }
    }
}

/// Translation and the state file's fsync block; keep them off the
/// runtime's workers, which also serve xDS.
async fn set(
    state: &AdminState,
    cluster: &str,
    endpoints: Vec<RegisteredEndpoint>,
) -> Result<Vec<RegisteredEndpoint>, RegisterError> {
    let registry = state.registry.clone();
    let cluster = cluster.to_string();
    tokio::task::spawn_blocking(move || {
        registry.set(&cluster, &endpoints).map(|eps| eps.iter().map(RegisteredEndpoint::from_endpoint).collect())
    })
    .await
    .expect("registering endpoints does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_is_the_single_segment_between_prefix_and_suffix() {
        assert_eq!(cluster_of("/v1/clusters/api/endpoints"), Some("api"));
        assert_eq!(cluster_of("/v1/clusters//endpoints"), None);
        assert_eq!(cluster_of("/v1/clusters/a/b/endpoints"), None);
        assert_eq!(cluster_of("/v1/clusters/api"), None);
    }
}
