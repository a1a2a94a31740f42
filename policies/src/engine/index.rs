//! The targets on each host: derived from the state, never persisted
//! (rebuilt on restore, so snapshots keep their format), and kept up to
//! date as targets come, change host and go. A host's change (failed,
//! maintenance, new labels) then reaches only what is on that host instead
//! of every target and every open incident.

use std::collections::{BTreeMap, BTreeSet};

use super::state::TargetEntry;
use crate::target::{TargetInfo, TargetKind, TargetRef};

/// Host id to the targets on it, the host itself included; ordered, so
/// that walking it is as deterministic as walking the state's maps.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct HostIndex {
    on_host: BTreeMap<String, BTreeSet<TargetRef>>,
}

/// The hosts a target is indexed under: the host its inventory names
/// (whose labels it inherits) and, for a host, itself (what inhibition and
/// maintenance go by). Usually one and the same.
fn host_keys(info: &TargetInfo) -> impl Iterator<Item = &str> {
    let own = (info.target.kind == TargetKind::Host).then_some(info.target.id.as_str());
    let named = info.host.as_deref().filter(|h| Some(*h) != own);
    own.into_iter().chain(named)
}

impl HostIndex {
    /// The index of a restored state's targets.
    pub fn build(targets: &BTreeMap<TargetRef, TargetEntry>) -> HostIndex {
        let mut index = HostIndex::default();
        for entry in targets.values() {
            index.insert(&entry.info);
        }
        index
    }

    /// A target arrived (or moved here).
    pub fn insert(&mut self, info: &TargetInfo) {
        for h in host_keys(info) {
            self.on_host
                .entry(h.to_owned())
                .or_default()
                .insert(info.target.clone());
        }
    }

    /// A target left (or moved away).
    pub fn remove(&mut self, info: &TargetInfo) {
        for h in host_keys(info) {
            if let Some(set) = self.on_host.get_mut(h) {
                set.remove(&info.target);
                if set.is_empty() {
                    self.on_host.remove(h);
                }
            }
        }
    }

    /// The targets on `host` (the host itself included), in target order.
    pub fn on(&self, host: &str) -> impl Iterator<Item = &TargetRef> {
        self.on_host.get(host).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_found_on_their_host_until_they_move_or_go() {
        let mut index = HostIndex::default();
        let host = TargetInfo::bare(TargetRef::host("hv1"));
        let svc = TargetInfo::bare("service:hv1/nginx".parse().unwrap());
        // A VM whose inventory names no host is on none.
        let lost = TargetInfo {
            host: None,
            ..TargetInfo::bare("vm:vm-7".parse().unwrap())
        };
        for t in [&host, &svc, &lost] {
            index.insert(t);
        }
        let on = |index: &HostIndex, h| index.on(h).map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(on(&index, "hv1"), ["host:hv1", "service:hv1/nginx"]);
        let moved = TargetInfo {
            host: Some("hv2".into()),
            ..svc.clone()
        };
        index.remove(&svc);
        index.insert(&moved);
        assert_eq!(on(&index, "hv1"), ["host:hv1"]);
        assert_eq!(on(&index, "hv2"), ["service:hv1/nginx"]);
        index.remove(&moved);
        assert!(on(&index, "hv2").is_empty());
        assert!(
            !index.on_host.contains_key("hv2"),
            "empty hosts are dropped"
        );
    }
}
