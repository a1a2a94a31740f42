//! Accepting agent connections: the connection bound, the TLS handshake
//! with its time limit, the agent identity from the certificate, and
//! refusals counted by reason. Accepted connections flow to tonic as a
//! stream of [`Conn`].

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyperwatch_proto::spiffe::SpiffeId;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::{metrics::Metrics, tls};

/// Pause after a failed accept (out of file descriptors, usually) so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Handshaken connections waiting for tonic: enough for a reconnect storm
/// of a large cluster without blocking the handshakes.
const READY_QUEUE: usize = 1024;

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The certificate's identity; None on an insecure (plain TCP) listener.
    pub identity: Option<SpiffeId>,
}

/// An accepted agent connection, TLS or plain.
pub struct Conn {
    io: ConnIo,
    peer: PeerInfo,
    _slot: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

enum ConnIo {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ConnIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ConnIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ConnIo::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ConnIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            ConnIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            ConnIo::Tls(s) => s.is_write_vectored(),
            ConnIo::Plain(s) => s.is_write_vectored(),
        }
    }
}

/// How connections are admitted.
#[derive(Clone)]
pub struct Admission {
    /// None: plain TCP (insecure).
    pub tls: Option<TlsAcceptor>,
    pub cluster: String,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Accepts until the listener fails for good; yields admitted connections.
pub fn incoming(
    listener: TcpListener,
    admission: Admission,
) -> ReceiverStream<Result<Conn, io::Error>> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept_loop(listener, admission, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    admission: Admission,
    ready: mpsc::Sender<Result<Conn, io::Error>>,
) {
    let slots = Arc::new(Semaphore::new(admission.max_connections));
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            admission.metrics.rejected("too_many_connections");
            tracing::warn!(%addr, max = admission.max_connections, "connection refused: too many connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let admission = admission.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            if let Some(conn) = admit(tcp, addr, slot, &admission).await {
                let _ = ready.send(Ok(conn)).await;
            }
        });
    }
}

async fn admit(
    tcp: TcpStream,
    addr: SocketAddr,
    slot: OwnedSemaphorePermit,
    a: &Admission,
) -> Option<Conn> {
    let reject = |reason: &'static str, detail: String| {
        a.metrics.rejected(reason);
        tracing::warn!(%addr, reason, %detail, "agent connection refused");
        None
    };
    let (io, identity) = match &a.tls {
        None => (ConnIo::Plain(tcp), None),
        Some(acceptor) => {
            let tls = match tokio::time::timeout(a.handshake_timeout, acceptor.accept(tcp)).await {
                Err(_) => {
                    return reject(
                        "handshake_timeout",
                        format!("no TLS handshake within {:?}", a.handshake_timeout),
                    );
                }
                Ok(Err(e)) => return reject(tls::rejection_reason(&e), e.to_string()),
                Ok(Ok(s)) => s,
            };
            let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
                return reject("no_certificate", "no client certificate".into());
            };
            match tls::agent_identity(cert, &a.cluster) {
                Ok(id) => (ConnIo::Tls(Box::new(tls)), Some(id)),
                Err(reason) => {
                    return reject(
                        reason,
                        format!(
                            "certificate of cluster other than {:?} or not an agent's",
                            a.cluster
                        ),
                    );
                }
            }
        }
    };
    a.metrics.connections.inc();
    Some(Conn {
        io,
        peer: PeerInfo { addr, identity },
        _slot: slot,
        metrics: a.metrics.clone(),
    })
}
