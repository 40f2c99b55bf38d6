//! The status page: `GET /` (one HTML file with its CSS and script inline,
//! no external asset), `GET /v1/view` (what is served, as the page draws
//! it) and `GET /v1/events` (server-sent events: one message whenever the
//! events task saw an input change).
//!
//! Live updates are pushed, not polled: an open page costs the daemon an
//! idle connection until something changes; then one small message, and
//! the page fetches `/status` and `/v1/view` once. Messages are at most
//! [`MIN_INTERVAL`] apart, so a burst of changes (a relist of thousands of
//! pods) is one refresh. An open page holds one admin connection (of
//! `max_connections`).

pub mod view;

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::AdminState;
use super::http;

pub const EVENTS_PATH: &str = "/v1/events";

/// The least time between two messages of one `/v1/events` stream.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// How long a browser waits before it reconnects a closed event stream.
const RETRY_MS: u64 = 1000;

const PAGE: &str = include_str!("page.html");

/// `GET /`: the page, with a Content-Security-Policy that lets it run only
/// its own inline script and style and talk only to this admin server.
pub fn page() -> Response<http_body_util::Full<Bytes>> {
    let mut r = http::body(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp().parse().expect("a valid header value"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

/// The page's policy: nothing from anywhere but this server's JSON, and
/// only the script and style the page carries (by their SHA-256).
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let script = hash_of(inline(PAGE, "script"));
        let style = hash_of(inline(PAGE, "style"));
        format!(
            "default-src 'none'; script-src '{script}'; style-src '{style}'; connect-src 'self'; img-src 'none'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// The text between `<tag>` and `</tag>` (the page has one of each).
fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = html.find(&open).map(|i| i + open.len()).expect("the page has its inline element");
    let end = html[start..].find(&format!("</{tag}>")).expect("the inline element is closed");
    &html[start..start + end]
}

/// `sha256-BASE64`, as CSP names an inline element.
fn hash_of(text: &str) -> String {
    format!("sha256-{}", base64(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET /v1/events`: `text/event-stream`, one message at once and one
/// after each change the events task sees (its `changes` count as data),
/// until the client goes or the daemon stops.
pub fn events(state: &AdminState, shutdown: CancellationToken) -> Response<BoxBody<Bytes, Infallible>> {
    let mut changes = state.events.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    // Ends with the stream: when the client is gone (the body dropped), on
    // shutdown, or when the events task is.
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let n = changes.borrow_and_update().changes;
            let retry = if first { format!("retry: {RETRY_MS}\n") } else { String::new() };
            first = false;
            if tx.send(Ok(Frame::data(Bytes::from(format!("{retry}data: {n}\n\n"))))).await.is_err() {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                r = changes.changed() => if r.is_err() { return },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep(MIN_INTERVAL) => {}
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed())
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_sha256_give_the_values_csp_expects() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(hash_of("abc"), "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn the_policy_names_the_pages_own_script_and_style_and_nothing_else() {
        let csp = csp();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"), "{csp}");
        assert!(csp.contains(&format!("script-src '{}'", hash_of(inline(PAGE, "script")))), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        // No other element the policy would have to allow.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        assert!(!PAGE.contains(" style=") && !PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
