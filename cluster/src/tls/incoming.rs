//! TLS listeners: the accept loop hands each TCP connection to a task of its own for the
//! handshake (bounded in time and in number), so one slow or hostile client never holds up
//! the others; finished connections come out as [`TlsConn`]s, for tonic as a stream and
//! for axum as a [`TlsListener`]. A client speaking plaintext fails its handshake and is
//! dropped.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{NodeTls, PeerCert};

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; more connections wait to be accepted.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// Finished connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// One TLS connection, with what its client certificate proved.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    remote: SocketAddr,
    peer: PeerCert,
}

impl TlsConn {
    /// What the client certificate proved.
    pub fn peer(&self) -> PeerCert {
        self.peer
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// tonic puts the connection's [`PeerCert`] into every request's extensions, where the
/// auth layer reads it.
impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = PeerCert;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer
    }
}

/// Accepts on `listener` and runs the handshakes with `config`; the receiver yields the
/// finished connections until it is dropped (which ends the accept loop).
pub fn accept(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    tls: NodeTls,
) -> mpsc::Receiver<TlsConn> {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    let acceptor = TlsAcceptor::from(config);
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&pending).acquire_owned().await else {
                return;
            };
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let peer = tls.identify(stream.get_ref().1.peer_certificates());
                        let _ = tx
                            .send(TlsConn {
                                stream,
                                remote,
                                peer,
                            })
                            .await;
                    }
                    // A plaintext client, a certificate of another CA, a port scanner.
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// A TLS listener for axum.
pub struct TlsListener {
    accepted: mpsc::Receiver<TlsConn>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        tls: NodeTls,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self {
            accepted: accept(listener, config, tls),
            local,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => {
                let remote = conn.remote;
                (conn, remote)
            }
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The ALPN protocol of the HTTP listeners (axum serves HTTP/1.1 here).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// An HTTP listener (`/metrics`, `/mcp`): plaintext or TLS, one type for axum.
pub enum HttpListener {
    /// Plaintext.
    Plain(TcpListener),
    /// TLS with the node's certificate.
    Tls(TlsListener),
}

impl HttpListener {
    /// Binds `addr`, serving TLS with `tls` when given; `what` names the listener in errors.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<&NodeTls>,
        what: &str,
    ) -> Result<Self, crate::error::ClusterError> {
        let io = |source| crate::error::ClusterError::Io {
            context: format!("bind {what} address {addr}"),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(io)?;
        Ok(match tls {
            Some(tls) => {
                let config = tls.server_config(&[ALPN_HTTP1])?;
                Self::Tls(TlsListener::new(listener, config, tls.clone()).map_err(io)?)
            }
            None => Self::Plain(listener),
        })
    }

    /// The URL scheme clients use.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plain(_) => "http",
            Self::Tls(_) => "https",
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Plain(l) => l.local_addr(),
            Self::Tls(l) => Ok(l.local),
        }
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = tokio_util::either::Either<TcpStream, TlsConn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            Self::Plain(l) => {
                let (io, addr) = axum::serve::Listener::accept(l).await;
                let _ = io.set_nodelay(true);
                (tokio_util::either::Either::Left(io), addr)
            }
            Self::Tls(l) => {
                let (io, addr) = axum::serve::Listener::accept(l).await;
                (tokio_util::either::Either::Right(io), addr)
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        HttpListener::local_addr(self)
    }
}
