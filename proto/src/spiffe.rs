//! The identities in hyperwatch certificates: a URI SAN
//! `spiffe://CLUSTER/host/HOST` for an agent and
//! `spiffe://CLUSTER/watchdog/NAME` for a watchdog; the CA carries
//! `spiffe://CLUSTER`.

use std::fmt;

/// What a certificate's URI names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    /// The cluster (trust domain).
    pub cluster: String,
    /// Whose certificate it is.
    pub role: Role,
}

/// Agent, watchdog or the cluster's CA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// An agent on host NAME.
    Host(String),
    /// A watchdog called NAME.
    Watchdog(String),
    /// The cluster CA itself.
    Cluster,
}

/// A URI that is not a hyperwatch identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{uri:?} is not a hyperwatch identity (expected spiffe://CLUSTER/host/HOST): {why}")]
pub struct ParseError {
    pub uri: String,
    pub why: &'static str,
}

impl SpiffeId {
    /// The identity of the agent on `host` in `cluster`.
    pub fn host(cluster: &str, host: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            role: Role::Host(host.to_owned()),
        }
    }

    /// The host name when this is an agent identity.
    pub fn host_name(&self) -> Option<&str> {
        match &self.role {
            Role::Host(h) => Some(h),
            _ => None,
        }
    }

    /// Parses `spiffe://CLUSTER[/host/HOST | /watchdog/NAME]`.
    pub fn parse(uri: &str) -> Result<Self, ParseError> {
        let fail = |why| ParseError {
            uri: uri.to_owned(),
            why,
        };
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| fail("scheme is not spiffe://"))?;
        let mut parts = rest.split('/');
        let cluster = parts.next().unwrap_or_default();
        if !valid_name(cluster) {
            return Err(fail("bad cluster name"));
        }
        let role = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => Role::Cluster,
            (Some("host"), Some(h), None) if valid_name(h) => Role::Host(h.to_owned()),
            (Some("watchdog"), Some(w), None) if valid_name(w) => Role::Watchdog(w.to_owned()),
            _ => return Err(fail("path is not /host/HOST or /watchdog/NAME")),
        };
        Ok(Self {
            cluster: cluster.to_owned(),
            role,
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.cluster)?;
        match &self.role {
            Role::Host(h) => write!(f, "/host/{h}"),
            Role::Watchdog(w) => write!(f, "/watchdog/{w}"),
            Role::Cluster => Ok(()),
        }
    }
}

/// Whether `name` can be a cluster or host name: DNS-label characters and
/// dots, 1 to 253 bytes, as host names are.
pub fn valid_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_role() {
        for uri in [
            "spiffe://prod-eu",
            "spiffe://prod-eu/host/hv-17.example",
            "spiffe://prod-eu/watchdog/wd1",
        ] {
            assert_eq!(SpiffeId::parse(uri).unwrap().to_string(), uri);
        }
        assert_eq!(
            SpiffeId::parse("spiffe://c/host/h").unwrap(),
            SpiffeId::host("c", "h")
        );
    }

    #[test]
    fn refuses_what_is_not_an_identity() {
        for uri in [
            "https://c/host/h",
            "spiffe:///host/h",
            "spiffe://c/host/",
            "spiffe://c/host/h/extra",
            "spiffe://c/vm/h",
            "spiffe://c/host/h h",
        ] {
            assert!(SpiffeId::parse(uri).is_err(), "{uri}");
        }
    }
}
