//! The perimeter: the watchdog's rustls server configuration (mutual TLS,
//! only the cluster CA's certificates) and the reading of a refused
//! handshake into a reason for logs and `hyperwatch_stream_rejected_total`.

use std::{path::Path, sync::Arc};

use hyperwatch_proto::spiffe::{Role, SpiffeId};
use rustls::{
    CertificateError, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

/// Why the server TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// A server configuration that demands a client certificate from the
/// cluster CA; HTTP/2 only (gRPC).
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certificates(ca)? {
        roots.add(c).map_err(|e| invalid(ca, e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(ca, e))?;
    let chain = certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(cert, e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(path, e))?;
    if certs.is_empty() {
        return Err(invalid(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The reason label for a failed handshake.
pub fn rejection_reason(error: &std::io::Error) -> &'static str {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => "unknown_ca",
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => "expired",
            CertificateError::Revoked => "revoked",
            _ => "bad_certificate",
        },
        Some(rustls::Error::NoCertificatesPresented) => "no_certificate",
        _ => "tls_handshake",
    }
}

/// The agent identity an accepted certificate carries, checked against
/// this watchdog's cluster; Err is the rejection reason.
pub fn agent_identity(cert: &CertificateDer<'_>, cluster: &str) -> Result<SpiffeId, &'static str> {
    let ids = crate::certs::identities(cert).map_err(|_| "bad_certificate")?;
    let Some(id) = ids.into_iter().find(|id| matches!(id.role, Role::Host(_))) else {
        return Err("not_an_agent_certificate");
    };
    if id.cluster != cluster {
        return Err("wrong_cluster");
    }
    Ok(id)
}
