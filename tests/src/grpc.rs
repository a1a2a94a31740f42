//! A raw gRPC-over-TLS client: HTTP/2 (h2) straight on rustls, so tests can
//! send the watchdog what no well-behaved agent would: truncated and
//! oversized frames, storms of hellos.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use hyperwatch_proto::v1;
use prost::Message;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::watchdog::ClusterCerts;

/// The stream method's path.
pub const SESSION_PATH: &str = "/hyperwatch.v1.Stream/Session";

/// A TLS connection to the watchdog with the agent certificate `cert_name`.
pub async fn connect(
    addr: SocketAddr,
    certs: &ClusterCerts,
    cert_name: &str,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(certs.path("ca.pem"))?)?;
    let chain = vec![CertificateDer::from_pem_file(
        certs.path(&format!("{cert_name}.pem")),
    )?];
    let key = PrivateKeyDer::from_pem_file(certs.path(&format!("{cert_name}.key")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.context("TCP connect")?;
    let name = ServerName::IpAddress(addr.ip().into());
    Ok(TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?)
}

/// An open Session stream: send frames with `body`, read the answer with
/// `response`.
pub struct RawSession {
    pub body: h2::SendStream<Bytes>,
    pub response: h2::client::ResponseFuture,
    /// Keeps the connection's driver task alive.
    pub connection: tokio::task::JoinHandle<()>,
}

/// HTTP/2 handshake and the Session request headers.
pub async fn open(
    addr: SocketAddr,
    certs: &ClusterCerts,
    cert_name: &str,
) -> anyhow::Result<RawSession> {
    let tls = connect(addr, certs, cert_name).await?;
    let (client, conn) = h2::client::handshake(tls).await?;
    let connection = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await?;
    let request = http::Request::post(format!("https://{addr}{SESSION_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (response, body) = client.send_request(request, false)?;
    Ok(RawSession {
        body,
        response,
        connection,
    })
}

/// A gRPC frame: flag 0 (not compressed), big-endian length, bytes.
pub fn frame(payload: &[u8]) -> Bytes {
    frame_claiming(payload, payload.len() as u32)
}

/// A frame whose header claims `length` bytes, whatever follows.
pub fn frame_claiming(payload: &[u8], length: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(0);
    b.put_u32(length);
    b.put_slice(payload);
    b.freeze()
}

/// An encoded hello for `host`.
pub fn hello(host: &str) -> Vec<u8> {
    v1::AgentMessage {
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
            host_id: host.into(),
            boot_id: "storm".into(),
            agent_instance: 1,
            heartbeat_interval_ms: 1000,
            ..Default::default()
        })),
    }
    .encode_to_vec()
}
