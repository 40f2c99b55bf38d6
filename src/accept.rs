//! The one accept loop of every listener (xDS over TCP, TLS or a Unix
//! socket; the admin API over TCP or TLS), and the limits it enforces.
//!
//! What a hostile or broken client can hold is bounded here:
//! - connections per listener ([`Limits::max_connections`]): at the cap the
//!   loop stops accepting (new clients wait in the kernel's backlog) until
//!   one closes;
//! - time to first request bytes ([`Limits::read_timeout`]): from the TCP
//!   accept, a client has that long to finish its TLS handshake and send its
//!   first bytes (the whole HTTP/2 preface on the xDS port), or it is closed;
//!   the admin server adds hyper's header-read timeout for every request;
//! - accept errors (`EMFILE`, `ENFILE`, `ENOBUFS`) back off from 50 ms
//!   doubling to 1 s instead of spinning, with one WARN per burst.
//!
//! Each TLS handshake runs in its own task, so a slow client stalls nobody.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::throttle::Throttle;

/// How long a client has from connecting to its first request bytes
/// (TLS handshake included), and, on the admin port, to send each
/// request's headers.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener. An Envoy holds one; the admin API is
/// used by people and scripts.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Concurrent ADS streams on one HTTP/2 connection. Envoy opens one.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 16;
/// The HTTP/2 client preface: an xDS client must send all of it in time.
pub const HTTP2_PREFACE_LEN: usize = 24;

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

static AT_CAP: Throttle = Throttle::new(crate::throttle::DEFAULT_INTERVAL);

/// What one client may hold on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub read_timeout: Duration,
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
        }
    }
}

/// A listener the accept loop can drive.
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, String)>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;
    async fn accept(&self) -> io::Result<(TcpStream, String)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Without TCP_NODELAY a 40 KB push waits on Nagle and delayed ACKs (~40 ms).
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(20));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        Ok((stream, peer.to_string()))
    }
}

impl Listener for UnixListener {
    type Io = UnixStream;
    async fn accept(&self) -> io::Result<(UnixStream, String)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, "unix".to_string()))
    }
}

/// The step between accepting a socket and serving it: none, or TLS.
pub trait Handshake<S>: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn handshake(&self, stream: S) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// No handshake: the socket is served as accepted.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Handshake<S> for Plain {
    type Io = S;
    async fn handshake(&self, stream: S) -> io::Result<S> {
        Ok(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Handshake<S> for tokio_rustls::TlsAcceptor {
    type Io = tokio_rustls::server::TlsStream<S>;
    async fn handshake(&self, stream: S) -> io::Result<Self::Io> {
        self.accept(stream).await
    }
}

/// Called with the peer and the reason when a handshake fails or times out.
pub type OnRefused = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How one listener accepts.
#[derive(Clone)]
pub struct Accept {
    /// Names the listener in log lines ("xDS", "admin").
    pub what: &'static str,
    pub limits: Limits,
    /// Bytes the client must send within the read timeout.
    pub first_bytes: usize,
    pub on_refused: Option<OnRefused>,
}

/// Accepts on `listener` until `shutdown`, runs `handshake` on each
/// connection and yields the finished ones, each holding its connection
/// slot until it is dropped.
pub fn incoming<L, H>(
    listener: L,
    handshake: H,
    accept: Accept,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<Guarded<H::Io>>>
where
    L: Listener,
    H: Handshake<L::Io>,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, handshake, accept, tx, shutdown));
    ReceiverStream::new(rx)
}

async fn accept_loop<L, H>(
    listener: L,
    handshake: H,
    accept: Accept,
    tx: mpsc::Sender<io::Result<Guarded<H::Io>>>,
    shutdown: CancellationToken,
) where
    L: Listener,
    H: Handshake<L::Io>,
{
    let slots = Arc::new(Semaphore::new(accept.limits.max_connections.max(1)));
    let mut backoff: Option<Duration> = None;
    let mut failed = 0u64;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(held) = AT_CAP.allow(accept.what) {
                    warn!(
                        listener = accept.what,
                        max_connections = accept.limits.max_connections,
                        suppressed = held,
                        "connection limit reached; new connections wait until one closes (max_connections)"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                }
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if per_connection(&e) => {
                debug!(listener = accept.what, error = %e, "a connection failed before it was accepted");
                continue;
            }
            Err(e) => {
                // Out of descriptors or buffers: retrying at once would spin a
                // core until one frees, so wait, longer each time.
                let wait = backoff.map_or(BACKOFF_START, |b| (b * 2).min(BACKOFF_MAX));
                if backoff.is_none() {
                    warn!(listener = accept.what, error = %e,
                        "cannot accept connections; retrying with backoff up to 1 s (raise the open-file limit, `ulimit -n`?)");
                }
                backoff = Some(wait);
                failed += 1;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        if backoff.take().is_some() {
            info!(listener = accept.what, failed, "accepting connections again");
            failed = 0;
        }
        let (handshake, tx, accept) = (handshake.clone(), tx.clone(), accept.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + accept.limits.read_timeout;
            let reason = match tokio::time::timeout_at(deadline, handshake.handshake(stream)).await {
                Ok(Ok(io)) => {
                    let _ = tx.send(Ok(Guarded::new(io, permit, deadline, accept.first_bytes))).await;
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no handshake within {:?}", accept.limits.read_timeout),
            };
            match &accept.on_refused {
                Some(f) => f(&peer, &reason),
                None => debug!(listener = accept.what, %peer, %reason, "handshake failed"),
            }
        });
    }
}

/// Errors that concern one connection only (it was reset before we took
/// it); the listener itself is fine.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// An accepted connection: holds its connection slot, and fails its reads
/// if the client has not sent its first bytes by the deadline.
pub struct Guarded<IO> {
    io: IO,
    deadline: Option<Pin<Box<Sleep>>>,
    first_bytes_left: usize,
    _slot: OwnedSemaphorePermit,
}

impl<IO> Guarded<IO> {
    fn new(io: IO, slot: OwnedSemaphorePermit, deadline: Instant, first_bytes: usize) -> Self {
        let deadline = (first_bytes > 0).then(|| Box::pin(tokio::time::sleep_until(deadline)));
        Self { io, deadline, first_bytes_left: first_bytes, _slot: slot }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    let n = buf.filled().len() - before;
                    this.first_bytes_left = this.first_bytes_left.saturating_sub(n);
                    if this.first_bytes_left == 0 {
                        this.deadline = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this.deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no request in time (read_timeout)",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// tonic reads the peer address and certificates from the inner stream.
impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Raises this process's soft open-file limit to its hard limit, so a
/// burst of connections meets the connection cap before `EMFILE`. Returns
/// the limit now in force; failures leave the limit as it was.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(hard),
        Err(e) => {
            debug!(soft, hard, error = %e, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn mk_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        (client, l.accept().await.unwrap().0)
    }

    fn mk_slot() -> OwnedSemaphorePermit {
        Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap()
    }

    #[tokio::test]
    async fn a_client_silent_past_the_deadline_fails_the_read() {
        let (_client, server) = mk_pair().await;
        let mut g = Guarded::new(server, mk_slot(), Instant::now() + Duration::from_millis(50), 24);
        let read = tokio::time::timeout(Duration::from_secs(30), g.read(&mut [0u8; 64])).await;
        assert_eq!(read.expect("the deadline ends the read").unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_client_that_sent_its_first_bytes_in_time_may_then_be_quiet() {
        let (mut client, server) = mk_pair().await;
        let mut g = Guarded::new(server, mk_slot(), Instant::now() + Duration::from_millis(50), 4);
        client.write_all(b"PRI *").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(g.read(&mut buf).await.unwrap(), 5);
        // Well past the deadline, a read simply waits for more.
        let quiet = tokio::time::timeout(Duration::from_millis(400), g.read(&mut buf)).await;
        assert!(quiet.is_err(), "the read must still be waiting: {quiet:?}");
    }
}
