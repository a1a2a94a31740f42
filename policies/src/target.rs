//! What policies watch: targets (host, vm, service, storage device, lun),
//! how they are named, their labels, and the selectors that pick them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::glob;

/// The kinds of thing a policy can watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A hypervisor or storage host (one agent).
    Host,
    /// A virtual server on a host.
    Vm,
    /// A named service an agent watches.
    Service,
    /// A storage device a host serves.
    StorageDevice,
    /// A LUN on a storage device.
    Lun,
}

impl TargetKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Host,
        TargetKind::Vm,
        TargetKind::Service,
        TargetKind::StorageDevice,
        TargetKind::Lun,
    ];

    /// The name used in files and target references.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Host => "host",
            TargetKind::Vm => "vm",
            TargetKind::Service => "service",
            TargetKind::StorageDevice => "storage-device",
            TargetKind::Lun => "lun",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one target: its kind and an id unique within that kind,
/// written `kind:id` (`host:hv1`, `service:hv1/nginx`, `lun:array1/7`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetRef {
    /// What kind of thing it is.
    pub kind: TargetKind,
    /// Its id, unique within the kind.
    pub id: String,
}

/// A target reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid target `{text}`: write KIND:ID with KIND one of host, vm, service, storage-device, lun (for example `service:hv1/nginx`)"
)]
pub struct TargetRefError {
    /// What was written.
    pub text: String,
}

impl TargetRef {
    /// A reference to the host called `id`.
    pub fn host(id: &str) -> TargetRef {
        TargetRef {
            kind: TargetKind::Host,
            id: id.to_owned(),
        }
    }

    /// A reference of any kind.
    pub fn new(kind: TargetKind, id: &str) -> TargetRef {
        TargetRef {
            kind,
            id: id.to_owned(),
        }
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl FromStr for TargetRef {
    type Err = TargetRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TargetRefError { text: s.to_owned() };
        let (kind, id) = s.split_once(':').ok_or_else(err)?;
        let kind = TargetKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(err)?;
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(err());
        }
        Ok(TargetRef::new(kind, id))
    }
}

// Serialized as the `kind:id` string so maps keyed by targets stay JSON maps.
impl Serialize for TargetRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TargetRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the inventory says about a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Which target this is.
    pub target: TargetRef,
    /// Its short name, matched by `name` selectors (`nginx` for
    /// `service:hv1/nginx`).
    pub name: String,
    /// The host it runs on or is served by; a host names itself. Failure and
    /// maintenance of that host inhibit this target's incidents, and its
    /// labels (cluster, rack, ...) are inherited.
    pub host: Option<String>,
    /// Labels such as cluster, rack and tenant; they override the host's.
    pub labels: BTreeMap<String, String>,
}

impl TargetInfo {
    /// A target with no labels, named after the last `/` part of its id and
    /// placed on the host its id starts with (`service:hv1/nginx` is
    /// `nginx` on `hv1`), the convention agents use.
    pub fn bare(target: TargetRef) -> TargetInfo {
        let name = target
            .id
            .rsplit('/')
            .next()
            .unwrap_or(&target.id)
            .to_owned();
        let host = match target.kind {
            TargetKind::Host => Some(target.id.clone()),
            _ => target.id.split_once('/').map(|(h, _)| h.to_owned()),
        };
        TargetInfo {
            target,
            name,
            host,
            labels: BTreeMap::new(),
        }
    }
}

/// The states the failure detector gives a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// Heartbeats arrive on time.
    Healthy,
    /// Heartbeats are late; not yet declared failed.
    Suspect,
    /// Declared failed: silent past the detector's threshold.
    Failed,
    /// Heartbeats came back after a failure.
    Recovered,
    /// The agent said goodbye: stopped on purpose (`systemctl stop`, an
    /// upgrade), not failed; stopped until its next hello.
    Stopped,
}

impl HostState {
    /// Every state, as written in policies (`state = "host"`, `is = "failed"`).
    pub const ALL: [HostState; 5] = [
        HostState::Healthy,
        HostState::Suspect,
        HostState::Failed,
        HostState::Recovered,
        HostState::Stopped,
    ];

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Healthy => "healthy",
            HostState::Suspect => "suspect",
            HostState::Failed => "failed",
            HostState::Recovered => "recovered",
            HostState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state name under which the detector's host state is visible to
/// conditions (`state = "host"`).
pub const HOST_STATE: &str = "host";

/// Picks targets: a kind and, per label, the patterns one of which the
/// label's value must match. Built-in labels: `name`, `host`, `id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selector {
    /// The kind of target.
    pub kind: TargetKind,
    /// Label name to patterns (any may match); every label must match.
    pub labels: BTreeMap<String, Vec<String>>,
}

impl Selector {
    /// Whether a target of `kind` with these effective labels is selected.
    pub fn matches(&self, kind: TargetKind, labels: &BTreeMap<String, String>) -> bool {
        kind == self.kind
            && self.labels.iter().all(|(label, patterns)| {
                labels
                    .get(label)
                    .is_some_and(|v| patterns.iter().any(|p| glob::matches(p, v)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_refs_round_trip_and_reject_junk() {
        let t: TargetRef = "service:hv1/nginx".parse().unwrap();
        assert_eq!(t.kind, TargetKind::Service);
        assert_eq!(t.to_string(), "service:hv1/nginx");
        assert!("hv1".parse::<TargetRef>().is_err());
        assert!("disk:sda".parse::<TargetRef>().is_err());
        assert!("host:".parse::<TargetRef>().is_err());
    }

    #[test]
    fn bare_targets_follow_the_agent_naming_convention() {
        let t = TargetInfo::bare("service:hv1/nginx".parse().unwrap());
        assert_eq!((t.name.as_str(), t.host.as_deref()), ("nginx", Some("hv1")));
        let h = TargetInfo::bare(TargetRef::host("hv2"));
        assert_eq!((h.name.as_str(), h.host.as_deref()), ("hv2", Some("hv2")));
    }

    #[test]
    fn selectors_need_every_label_to_match_one_pattern() {
        let s = Selector {
            kind: TargetKind::Service,
            labels: BTreeMap::from([
                ("name".into(), vec!["nginx".into(), "pg*".into()]),
                ("cluster".into(), vec!["prod-*".into()]),
            ]),
        };
        let labels = |name: &str, cluster: Option<&str>| {
            let mut m = BTreeMap::from([("name".to_owned(), name.to_owned())]);
            if let Some(c) = cluster {
                m.insert("cluster".into(), c.into());
            }
            m
        };
        assert!(s.matches(TargetKind::Service, &labels("pgbouncer", Some("prod-eu"))));
        assert!(!s.matches(TargetKind::Service, &labels("redis", Some("prod-eu"))));
        assert!(!s.matches(TargetKind::Service, &labels("nginx", None)));
        assert!(!s.matches(TargetKind::Vm, &labels("nginx", Some("prod-eu"))));
    }
}
