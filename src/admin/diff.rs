//! `POST /v1/diff`: what serving a profile would change against what is
//! served now. The body is a [`DiffRequest`]; without a text, the file the
//! daemon follows is read as it is on disk now. The answer is a
//! [`DiffAnswer`] (200, with located errors when the profile is invalid),
//! or `{"error": ...}` with 400 when there is nothing to compare.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

use super::{AdminState, MAX_BODY_BYTES, http};
use crate::profile::diff::{DiffRequest, compare};
use crate::profile::load;

pub const PATH: &str = "/v1/diff";

pub async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ask: DiffRequest = match http::post_json(req, MAX_BODY_BYTES, "{\"file\"?, \"text\"?}").await {
        Ok(a) => a,
        Err(response) => return *response,
    };
    // Against the profile as loaded: overrides are not part of the file.
    let served = state.profile.borrow().clone();
    let follow = state.follow.clone();
    // Reading the file and validating are blocking work: off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        let (file, text) = match (ask.text, follow) {
            (Some(text), _) => (ask.file.unwrap_or_else(|| "<request>".into()), text),
            (None, Some(path)) => {
                let file = path.display().to_string();
                let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {file}: {e}"))?;
                let text = load::profile_text(&file, &bytes).map_err(|e| e.to_string())?;
                (file, text.to_string())
            }
            (None, None) => {
                return Err(format!(
                    "this daemon follows no file (it serves {}); name the profile to compare",
                    served.file
                ));
            }
        };
        Ok(compare(&served, &file, &text))
    })
    .await;
    match answer {
        Ok(Ok(a)) => http::json(StatusCode::OK, &a),
        Ok(Err(e)) => http::error(StatusCode::BAD_REQUEST, &e),
        Err(e) => http::error(StatusCode::INTERNAL_SERVER_ERROR, &format!("the comparison failed: {e}")),
    }
}
