//! Accepts TCP connections and completes their TLS handshakes off the accept loop, yielding only the connections whose client passed mTLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use super::reload::ReloadingConfig;

/// Longest a client may take to finish its handshake; a silent peer must not hold a task
/// and a socket for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a refused connection is drained while its client reads the alert.
const LINGER: Duration = Duration::from_secs(2);

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin
/// while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Handshaken connections waiting for the server to take them.
const QUEUE: usize = 64;

/// The connections of `listener` that completed a TLS handshake with the config current
/// at their accept time, for `Server::serve_with_incoming_shutdown`. A refused or stalled
/// handshake is logged with the peer's address and dropped; the stream never yields an
/// error. Accepting stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ReloadingConfig>,
) -> ReceiverStream<Result<TlsStream, io::Error>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(accept_loop(listener, config, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ReloadingConfig>,
    tx: mpsc::Sender<Result<TlsStream, io::Error>>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept on the TLS listener failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // gRPC exchanges small frames; Nagle would hold them back.
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%peer, %error, "TCP_NODELAY on an accepted connection");
        }
        let acceptor = TlsAcceptor::from(config.current());
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(stream) = handshake(acceptor, tcp, peer).await {
                // The server is gone if the channel is closed: the connection just drops.
                let _ = tx.send(Ok(stream)).await;
            }
        });
    }
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr) -> Option<TlsStream> {
    let accept = acceptor.accept(tcp).into_fallible();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(inner)) => Some(TlsStream::new(inner)),
        Ok(Err((error, tcp))) => {
            if is_tls_refusal(&error) {
                warn!(%peer, %error, "TLS handshake refused");
            } else {
                // A peer that connects and closes (a port scan, a TCP probe) is no news.
                debug!(%peer, %error, "TLS handshake failed");
            }
            close_gently(tcp).await;
            None
        }
        Err(_) => {
            warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
            None
        }
    }
}

/// Closes a refused connection so that its client reads the TLS alert saying why. A TLS
/// 1.3 client sends its first requests right after its certificate; closing with them
/// unread makes the kernel send a reset, which can destroy the alert before it is read.
/// So: FIN after the alert, then read and drop what comes until the client closes too.
async fn close_gently(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Whether rustls itself refused the peer (bad or missing certificate, protocol error),
/// as opposed to the connection going away.
fn is_tls_refusal(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>())
}

/// A server-side TLS connection whose client presented a certificate the CA accepted.
#[derive(Debug)]
pub struct TlsStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
}

/// What a request served over TLS knows of its connection (a request extension).
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    /// The TCP addresses.
    pub tcp: TcpConnectInfo,
    /// The client's certificate chain, leaf first.
    pub peer_certificates: Arc<[CertificateDer<'static>]>,
}

impl TlsStream {
    fn new(inner: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        Self { inner }
    }
}

impl Connected for TlsStream {
    type ConnectInfo = TlsConnectInfo;

    fn connect_info(&self) -> TlsConnectInfo {
        let (tcp, session) = self.inner.get_ref();
        TlsConnectInfo {
            tcp: tcp.connect_info(),
            peer_certificates: session.peer_certificates().unwrap_or_default().into(),
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
