//! SMTP sessions for the email channel. lettre speaks the protocol (EHLO,
//! STARTTLS, AUTH, MAIL/RCPT/DATA); this file opens the sockets, so that
//! they carry TCP_NODELAY, and keeps a few idle sessions for reuse.
//!
//! Why not lettre's own transport: it writes a message and its final "."
//! in two writes on a socket with Nagle's algorithm on, so the "." waits
//! for the relay's delayed ACK (40 ms on Linux). Measured against aiosmtpd
//! on loopback, every message then took 45 ms even on a pooled session,
//! which caps one session at ~22 messages/s; with TCP_NODELAY the same
//! message takes about a millisecond.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use lettre::{
    address::Envelope,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
        extension::ClientId,
        response::Response,
    },
};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// Idle sessions kept per relay: as many as the channel sends at once
/// by default, so a steady flow never reconnects.
const MAX_IDLE: usize = 4;

/// How a session is protected.
#[derive(Clone)]
pub enum Protection {
    /// STARTTLS after the greeting, required (never downgraded).
    Starttls(TlsParameters),
    /// TLS from the first byte.
    Implicit {
        /// The TLS configuration (roots: the system's plus the relay's CA).
        config: Arc<rustls::ClientConfig>,
        /// The name the certificate must carry.
        name: ServerName<'static>,
    },
    /// No TLS (a loopback relay only; checked by the channel).
    None,
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The TCP connection failed.
    #[error("connecting: {0}")]
    Connect(io::Error),
    /// The TLS handshake of implicit TLS failed.
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    /// The relay answered with an error, or the session broke.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl SmtpError {
    /// A 5xx answer: the relay refuses, a retry will not change it.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmtpError::Smtp(e) if e.is_permanent())
    }
}

/// One relay: where it is, how to protect and authenticate the session,
/// and its idle sessions.
pub struct Relay {
    host: String,
    port: u16,
    protection: Protection,
    credentials: Option<Credentials>,
    hello: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
}

impl Relay {
    /// A relay; nothing is connected until the first send.
    pub fn new(
        host: String,
        port: u16,
        protection: Protection,
        credentials: Option<Credentials>,
    ) -> Self {
        Self {
            host,
            port,
            protection,
            credentials,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(SmtpError::Connect)?;
        tcp.set_nodelay(true).map_err(SmtpError::Connect)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.protection {
            Protection::Implicit { config, name } => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(SmtpError::Tls)?;
                Box::new(TlsSession(tls))
            }
            Protection::Starttls(_) | Protection::None => Box::new(tcp),
        };
        let mut session = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        if let Protection::Starttls(parameters) = &self.protection {
            session.starttls(parameters.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            session
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(session)
    }

    /// Sends one message, on an idle session that still answers, or a new one.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, SmtpError> {
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut session = match reused {
            Some(mut s) => {
                // The relay may have closed an idle session (its timeout).
                if s.test_connected().await {
                    s
                } else {
                    self.connect().await?
                }
            }
            None => self.connect().await?,
        };
        let response = session.send(envelope, message).await?;
        if !session.has_broken() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(session);
            }
        }
        Ok(response)
    }
}

/// Builds the rustls configuration for implicit TLS: the system's roots and
/// an optional extra CA (PEM).
pub fn implicit_tls_config(extra_ca: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_ca {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS session lettre can speak SMTP over.
#[derive(Debug)]
struct TlsSession(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsSession {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSession {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
