//! Response builders and the bounded body reader shared by the handlers.

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, header};
use serde::Serialize;

pub fn body(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

pub fn text(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    body(status, "text/plain; charset=utf-8", text.to_string())
}

/// Pretty JSON with a final newline: the admin API is read with curl.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(value).expect("admin values serialize");
    text.push('\n');
    body(status, "application/json", text)
}

/// `{"error": "..."}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

pub fn method_not_allowed(allow: &str) -> Response<Full<Bytes>> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, &format!("method not allowed; use {allow}"));
    r.headers_mut().insert(header::ALLOW, allow.parse().expect("a valid Allow value"));
    r
}

/// A `POST` whose body (at most `limit` bytes) is the JSON of a `T`; else
/// the 405, 413 or 400 to answer, the 400 saying `shape`.
pub async fn post_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
    shape: &str,
) -> Result<T, Box<Response<Full<Bytes>>>> {
    if req.method() != hyper::Method::POST {
        return Err(Box::new(method_not_allowed("POST")));
    }
    let body = read_body(req, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("the body is not {shape}: {e}"))))
}

/// Reads a whole request body of at most `limit` bytes; a larger one is a
/// 413 response, a broken one a 400.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Box<Response<Full<Bytes>>>> {
    let too_large =
        || Box::new(error(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body is larger than {limit} bytes")));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Box::new(error(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {e}")))),
    }
}
