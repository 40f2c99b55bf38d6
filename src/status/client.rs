//! Reads `/status` from a running daemon's admin API.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::Status;

/// How long `status` waits to connect and for the whole answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no devbridge answers at {addr}; is `devbridge connect` running? (--admin)")]
    NotRunning { addr: SocketAddr },
    #[error("{addr} did not answer within {timeout:?}; is it devbridge's admin address? (--admin)")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} does not speak devbridge's admin API ({reason}); is it devbridge's admin address? (--admin)")]
    NotDevbridge { addr: SocketAddr, reason: String },
}

/// The body of `GET /status` at `addr`.
pub async fn fetch(addr: SocketAddr, timeout: Duration) -> Result<String, StatusError> {
    match exchange(addr, "GET", "/status", None, timeout).await? {
        (200..300, body) => Ok(body),
        (status, _) => Err(StatusError::NotDevbridge { addr, reason: format!("/status answered HTTP {status}") }),
    }
}

/// One request to the admin API at `addr`: the status code and body of
/// the answer, whatever the code. `body` is sent as JSON.
pub async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<String>,
    timeout: Duration,
) -> Result<(u16, String), StatusError> {
    let not_devbridge = |reason: String| StatusError::NotDevbridge { addr, reason };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|_| StatusError::NotRunning { addr })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| not_devbridge(e.to_string()))?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| not_devbridge(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| not_devbridge(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| not_devbridge(e.to_string()))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| StatusError::Timeout { addr, timeout })?
}

/// What `devbridge status` exits with when the daemon answers but is not
/// ready (it prints `NOT READY`), so scripts can wait on it. Ready is 0; no
/// daemon answering is 69.
pub const EXIT_NOT_READY: u8 = 1;

/// The exit code for a status that was read: 0 when ready, else
/// [`EXIT_NOT_READY`].
pub fn exit_code(s: &Status) -> u8 {
    if s.ready { 0 } else { EXIT_NOT_READY }
}

/// Parses a `/status` body.
pub fn parse(addr: SocketAddr, body: &str) -> Result<Status, StatusError> {
    serde_json::from_str(body)
        .map_err(|e| StatusError::NotDevbridge { addr, reason: format!("/status is not JSON: {e}") })
}
