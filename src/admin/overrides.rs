//! `/v1/overrides`: overrides set at run time.
//!
//! `GET /v1/overrides` lists every override (run-time ones, newest first,
//! then the profile's `[[overrides]]`); `POST` adds one from
//! `{"target": "host[:port]/path", "to": "ip:port" | "CLUSTER", "headers"?:
//! ["name=value"], "for"?: "2h", "mirror"?: bool}` and answers it (201);
//! `DELETE /v1/overrides/ID` removes one, `DELETE /v1/overrides` every
//! run-time one; both answer what was removed. Refusals are 4xx with
//! `{"error": "..."}` and change nothing.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tracing::warn;

use super::{AdminState, MAX_BODY_BYTES, http};
use crate::overrides::{OverrideError, OverrideReport, OverrideRequest, PATH};

/// `Some(None)` for `/v1/overrides`, `Some(Some(id))` for `/v1/overrides/ID`.
pub fn id_of(path: &str) -> Option<Option<&str>> {
    let rest = path.strip_prefix(PATH)?;
    match rest.strip_prefix('/') {
        None if rest.is_empty() => Some(None),
        Some(id) if !id.is_empty() && !id.contains('/') => Some(Some(id)),
        _ => None,
    }
}

pub async fn handle(state: &AdminState, id: Option<&str>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let store = state.overrides.clone();
    let result = match (req.method().clone(), id) {
        (Method::GET, None) => return http::json(StatusCode::OK, &store.list()),
        (Method::POST, None) => {
            let body = match http::read_body(req, MAX_BODY_BYTES).await {
                Ok(b) => b,
                Err(response) => return *response,
            };
            let ask: OverrideRequest = match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => {
                    return http::error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "the body is not {{\"target\": \"host[:port]/path\", \"to\": \"ip:port or cluster\", \"headers\"?, \"for\"?, \"mirror\"?}}: {e}"
                        ),
                    );
                }
            };
            // The check translates and the state file syncs: off the workers.
            match tokio::task::spawn_blocking(move || store.add(&ask)).await.expect("adding does not panic") {
                Ok(o) => return http::json(StatusCode::CREATED, &OverrideReport::of(&o, "api")),
                Err(e) => Err(e),
            }
        }
        (Method::DELETE, id) => {
            let id = id.map(str::to_string);
            tokio::task::spawn_blocking(move || store.remove(id.as_deref()))
                .await
                .expect("removing does not panic")
                .map(|gone| gone.iter().map(|o| OverrideReport::of(o, "api")).collect::<Vec<_>>())
        }
        (_, None) => return http::method_not_allowed("GET, POST, DELETE"),
        (_, Some(_)) => return http::method_not_allowed("DELETE"),
    };
    match result {
        Ok(gone) => http::json(StatusCode::OK, &gone),
        Err(e) => error(e),
    }
}

fn error(e: OverrideError) -> Response<Full<Bytes>> {
    if e.http_status() >= 500 {
        warn!(error = %e, "an override could not be changed");
    }
    http::error(StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_one_segment_after_the_path() {
        assert_eq!(id_of("/v1/overrides"), Some(None));
        assert_eq!(id_of("/v1/overrides/o1"), Some(Some("o1")));
        assert_eq!(id_of("/v1/overrides/"), None);
        assert_eq!(id_of("/v1/overrides/a/b"), None);
        assert_eq!(id_of("/v1/overridesx"), None);
    }
}
