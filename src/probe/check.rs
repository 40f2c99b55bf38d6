//! One probe of one endpoint: a TCP connect, or an HTTP/1.1 GET of a path
//! over that connection. Each is bounded by a timeout that covers the
//! connect and the answer together; nothing is retried here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use crate::model::Probe;

/// Why a probe failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?} (dropped: VPN or firewall?)")]
    Timeout(Duration),
    #[error("connection refused (nothing listens on the port)")]
    Refused,
    #[error("no route to host")]
    Unreachable,
    #[error("connect failed: {0}")]
    Connect(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("not HTTP: {0}")]
    Http(String),
}

/// A probe that answered: how long it took, and the HTTP status if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub latency: Duration,
    pub status: Option<u16>,
}

/// Runs `probe` against `addr` within `timeout`.
pub async fn run(probe: &Probe, addr: SocketAddr, timeout: Duration) -> Result<Answer, ProbeError> {
    let start = Instant::now();
    let work = async {
        let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
        match probe {
            Probe::Tcp => Ok(None),
            Probe::Http { path, host } => http_get(stream, addr, path, host.as_deref()).await.map(Some),
        }
    };
    let status = tokio::time::timeout(timeout, work).await.map_err(|_| ProbeError::Timeout(timeout))??;
    let answer = Answer { latency: start.elapsed(), status };
    match status {
        Some(code) if code >= 400 => Err(ProbeError::Status(code)),
        _ => Ok(answer),
    }
}

fn connect_error(e: std::io::Error) -> ProbeError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => ProbeError::Refused,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => ProbeError::Unreachable,
        _ => ProbeError::Connect(e.to_string()),
    }
}

async fn http_get(stream: TcpStream, addr: SocketAddr, path: &str, host: Option<&str>) -> Result<u16, ProbeError> {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host = host.map_or_else(|| addr.to_string(), str::to_string);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, concat!("devbridge-probe/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    let answer = send.send_request(req).await.map_err(|e| ProbeError::Http(e.to_string()));
    driver.abort();
    Ok(answer?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn http_server(status_line: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
            assert!(req.to_ascii_lowercase().contains("host: edge.example\r\n"), "{req}");
            let reply = format!("{status_line}\r\ncontent-length: 0\r\n\r\n");
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        addr
    }

    fn http() -> Probe {
        Probe::Http { path: "/healthz".into(), host: Some("edge.example".into()) }
    }

    #[tokio::test]
    async fn tcp_connect_to_a_listener_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let answer = run(&Probe::Tcp, listener.local_addr().unwrap(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.status, None);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        // The listener is dropped: nothing listens there now.
        assert_eq!(run(&Probe::Tcp, addr, Duration::from_secs(5)).await, Err(ProbeError::Refused));
    }

    #[tokio::test]
    async fn http_get_sends_path_and_host_and_reads_the_status() {
        let ok = run(&http(), http_server("HTTP/1.1 204 No Content").await, Duration::from_secs(5)).await.unwrap();
        assert_eq!(ok.status, Some(204));
        let bad = run(&http(), http_server("HTTP/1.1 503 Service Unavailable").await, Duration::from_secs(5)).await;
        assert_eq!(bad, Err(ProbeError::Status(503)));
    }

    #[tokio::test]
    async fn a_listener_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted by the kernel's backlog, never read: the GET gets no answer.
        let got = run(&http(), addr, Duration::from_millis(200)).await;
        assert_eq!(got, Err(ProbeError::Timeout(Duration::from_millis(200))));
        drop(listener);
    }
}
