//! The cluster's certificates (rcgen): a CA per cluster, agent certificates
//! naming `spiffe://CLUSTER/host/HOST`, watchdog certificates naming
//! `spiffe://CLUSTER/watchdog/NAME` plus the DNS names and addresses agents
//! dial. Behind `hyperwatch certs init` and `hyperwatch certs issue`.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use hyperwatch_proto::spiffe::{Role, SpiffeId, valid_name};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA lasts ten years: re-keying a cluster is a planned event.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Agent and watchdog certificates last a year.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Backdating absorbs clock differences between hosts.
const BACKDATE: Duration = Duration::from_secs(3600);

/// What went wrong making or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{0:?} is not a valid name (letters, digits, '-', '.', '_'; 1 to 253 bytes)")]
    BadName(String),
    #[error("{path} already exists; refusing to overwrite a CA (remove it first if you mean it)")]
    Exists { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cluster CA in {} ({source}); create one with `hyperwatch certs init --cluster NAME --dir {}`", dir.display(), dir.display())]
    NoCa {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A CA certificate and key, in PEM.
#[derive(Clone, Debug)]
pub struct CaPem {
    pub cert: String,
    pub key: String,
    pub cluster: String,
}

/// A certificate and its key, in PEM.
#[derive(Clone, Debug)]
pub struct LeafPem {
    pub cert: String,
    pub key: String,
}

/// Validity window of a certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago for `length`.
    pub fn starting_now(length: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - BACKDATE,
            not_after: now + length,
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        params.not_before = self.not_before.into();
        params.not_after = self.not_after.into();
    }
}

/// Makes the CA of `cluster`.
pub fn new_ca(cluster: &str) -> Result<CaPem, CertsError> {
    if !valid_name(cluster) {
        return Err(CertsError::BadName(cluster.to_owned()));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("hyperwatch cluster {cluster} CA"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![uri(&SpiffeId {
        cluster: cluster.into(),
        role: Role::Cluster,
    })?];
    Validity::starting_now(CA_VALIDITY).apply(&mut params);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(CaPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
        cluster: cluster.to_owned(),
    })
}

/// Issues a certificate for `role` signed by `ca`. A watchdog certificate
/// also names `dns` and `ips` (what agents dial) and serves TLS; an agent
/// certificate is for client authentication.
pub fn issue(
    ca: &CaPem,
    role: Role,
    dns: &[String],
    ips: &[IpAddr],
    validity: Validity,
) -> Result<LeafPem, CertsError> {
    let name = match &role {
        Role::Host(h) | Role::Watchdog(h) => h.clone(),
        Role::Cluster => return Err(CertsError::BadName("the cluster itself".into())),
    };
    if !valid_name(&name) {
        return Err(CertsError::BadName(name));
    }
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, name.clone());
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let watchdog = matches!(role, Role::Watchdog(_));
    params.extended_key_usages = if watchdog {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let mut sans = vec![uri(&SpiffeId {
        cluster: ca.cluster.clone(),
        role,
    })?];
    if watchdog {
        for d in dns {
            sans.push(SanType::DnsName(d.clone().try_into()?));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    }
    params.subject_alt_names = sans;
    validity.apply(&mut params);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(LeafPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn uri(id: &SpiffeId) -> Result<SanType, CertsError> {
    Ok(SanType::URI(id.to_string().try_into()?))
}

/// The hyperwatch identities (URI SANs) in a DER certificate.
pub fn identities(der: &[u8]) -> Result<Vec<SpiffeId>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => SpiffeId::parse(u).ok(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The CA files in `dir`.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// Writes a new CA for `cluster` into `dir`; never overwrites one.
pub fn init_dir(cluster: &str, dir: &Path) -> Result<(PathBuf, PathBuf), CertsError> {
    let (cert_path, key_path) = ca_paths(dir);
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(CertsError::Exists { path: p.clone() });
        }
    }
    let ca = new_ca(cluster)?;
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    write(&cert_path, &ca.cert, 0o644)?;
    write(&key_path, &ca.key, 0o600)?;
    Ok((cert_path, key_path))
}

/// Reads the CA in `dir` and the cluster name it carries.
pub fn read_ca(dir: &Path) -> Result<CaPem, CertsError> {
    let (cert_path, key_path) = ca_paths(dir);
    let no_ca = |e: CertsError| match e {
        CertsError::Read { source, .. } => CertsError::NoCa {
            dir: dir.to_owned(),
            source,
        },
        other => other,
    };
    let cert = read(&cert_path).map_err(no_ca)?;
    let key = read(&key_path).map_err(no_ca)?;
    let cluster = cluster_of_ca_pem(&cert).map_err(|message| CertsError::Parse {
        path: cert_path,
        message,
    })?;
    Ok(CaPem { cert, key, cluster })
}

/// The cluster a CA certificate (PEM) names in its `spiffe://CLUSTER` URI.
pub fn cluster_of_ca_pem(pem: &str) -> Result<String, String> {
    let der = rustls_pemfile_first(pem)?;
    identities(&der)?
        .into_iter()
        .find(|id| id.role == Role::Cluster)
        .map(|id| id.cluster)
        .ok_or_else(|| "the CA certificate names no cluster (no spiffe://CLUSTER URI); make it with `hyperwatch certs init`".into())
}

fn rustls_pemfile_first(pem: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| "no certificate in PEM".to_owned())?
        .map(|c| c.to_vec())
        .map_err(|e| format!("bad PEM: {e}"))
}

/// Issues into `dir`: NAME.pem and NAME.key.
pub fn issue_dir(
    dir: &Path,
    role: Role,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<(PathBuf, PathBuf), CertsError> {
    let ca = read_ca(dir)?;
    let name = match &role {
        Role::Host(n) | Role::Watchdog(n) => n.clone(),
        Role::Cluster => String::new(),
    };
    let leaf = issue(&ca, role, dns, ips, Validity::starting_now(LEAF_VALIDITY))?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    write(&cert_path, &leaf.cert, 0o644)?;
    write(&key_path, &leaf.key, 0o600)?;
    Ok((cert_path, key_path))
}

fn read(path: &Path) -> Result<String, CertsError> {
    std::fs::read_to_string(path).map_err(|source| CertsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), CertsError> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let fail = |source| CertsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_certificate_names_its_cluster_and_host() {
        let ca = new_ca("prod").unwrap();
        assert_eq!(cluster_of_ca_pem(&ca.cert).unwrap(), "prod");
        let leaf = issue(
            &ca,
            Role::Host("hv1".into()),
            &[],
            &[],
            Validity::starting_now(LEAF_VALIDITY),
        )
        .unwrap();
        let der = rustls_pemfile_first(&leaf.cert).unwrap();
        assert_eq!(
            identities(&der).unwrap(),
            vec![SpiffeId::host("prod", "hv1")]
        );
    }

    #[test]
    fn init_refuses_to_overwrite_and_issue_writes_private_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        init_dir("c1", dir.path()).unwrap();
        assert!(matches!(
            init_dir("c1", dir.path()),
            Err(CertsError::Exists { .. })
        ));
        let (_, key) = issue_dir(dir.path(), Role::Host("h1".into()), &[], &[]).unwrap();
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            issue_dir(dir.path(), Role::Host("bad name".into()), &[], &[]),
            Err(CertsError::BadName(_))
        ));
    }
}
