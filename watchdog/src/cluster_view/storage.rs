//! The LUN rebalancer's input from the registry: every storage device of
//! every host with its capacity, used bytes (the latest sample), IOPS and
//! latency (a percentile over the window), and every LUN served from it
//! with its used bytes and IOPS. Devices and LUNs are named `HOST/NAME`;
//! a group is `HOST/GROUP` unless the agent marks it shared between hosts.

use std::collections::{BTreeMap, BTreeSet};

use super::{Built, HostCapacity, qualify};
use crate::{
    health,
    planner::percentile,
    rebalancer::{Device, DeviceGroup, DeviceState, Lun, Snapshot, Thresholds},
};

/// A LUN copy being copied onto its device: not served there yet.
const INCOMING: &str = "incoming";
/// A LUN copy prepared to leave: served until the destination takes over.
const LEAVING: &str = "leaving";

/// The rebalancer's snapshot of `hosts`. `thresholds` are by group name as
/// the agents report it (unqualified); other groups take `default`.
/// `p` (0..1] is the percentile of the IOPS and latency windows.
pub fn rebalancer_snapshot(
    hosts: &[HostCapacity],
    thresholds: &BTreeMap<String, Thresholds>,
    default: &Thresholds,
    p: f64,
) -> Built<Snapshot> {
    let mut notes = Vec::new();
    let mut snapshot = Snapshot::default();
    let mut groups = BTreeMap::new();
    // (group id, LUN name) -> index in snapshot.luns, to resolve copies.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for h in hosts {
        let state = if matches!(
            h.state,
            health::HostState::Failed | health::HostState::Stopped
        ) {
            // Unreachable (failed, or its agent stopped): nothing can be
            // copied to or off it.
            DeviceState::Maintenance
        } else if h.maintenance {
            DeviceState::Draining
        } else {
            DeviceState::Active
        };
        for d in &h.inventory.storage {
            let name = if d.group.is_empty() {
                "default"
            } else {
                &d.group
            };
            let group = if d.shared_group {
                name.to_owned()
            } else {
                qualify(&h.id, name)
            };
            groups
                .entry(group.clone())
                .or_insert_with(|| thresholds.get(name).unwrap_or(default).clone());
            let id = qualify(&h.id, &d.name);
            let window = h.usage.devices.get(&d.name);
            snapshot.devices.push(Device {
                id: id.clone(),
                group: group.clone(),
                capacity_bytes: d.capacity_bytes,
                used_bytes: window
                    .and_then(|w| w.used_bytes.latest())
                    .unwrap_or(d.used_bytes),
                iops: window
                    .and_then(|w| percentile(&w.iops.to_vec(), p))
                    .unwrap_or(0.0),
                latency_seconds: window.and_then(|w| percentile(&w.io_latency_seconds.to_vec(), p)),
                state,
            });
            for l in d.luns.iter().filter(|l| l.state != INCOMING) {
                let window = h.usage.luns.get(&l.id);
                let used = window
                    .and_then(|w| w.used_bytes.latest())
                    .filter(|u| *u > 0)
                    .unwrap_or(if l.used_bytes > 0 {
                        l.used_bytes
                    } else {
                        l.size_bytes
                    });
                let lun = Lun {
                    id: qualify(&h.id, &l.id),
                    device: id.clone(),
                    size_bytes: used,
                    iops: window
                        .and_then(|w| percentile(&w.iops.to_vec(), p))
                        .unwrap_or(0.0),
                    // A LUN in a move is not planned again until it settles.
                    pinned: l.pinned || l.state == LEAVING,
                };
                let key = (group.clone(), l.id.clone());
                match seen.get(&key) {
                    Some(&k) => {
                        let (keep, drop) = if l.state == LEAVING {
                            (snapshot.luns[k].id.clone(), lun.id.clone())
                        } else {
                            let dropped = std::mem::replace(&mut snapshot.luns[k], lun);
                            (snapshot.luns[k].id.clone(), dropped.id)
                        };
                        notes.push(format!(
                            "lun {} appears twice in group {}: {keep} counts, {drop} is left out",
                            l.id, key.0
                        ));
                    }
                    None => {
                        seen.insert(key, snapshot.luns.len());
                        snapshot.luns.push(lun);
                    }
                }
            }
        }
    }
    snapshot.groups = groups
        .into_iter()
        .map(|(name, thresholds)| DeviceGroup { name, thresholds })
        .collect();
    let names: BTreeSet<&str> = snapshot.luns.iter().map(|l| l.id.as_str()).collect();
    debug_assert_eq!(names.len(), snapshot.luns.len(), "LUN ids are unique");
    Built { snapshot, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_view::test_hosts::{device, host, lun, storage_telemetry};
    use crate::rebalancer;

    #[test]
    fn devices_and_luns_are_qualified_and_measured() {
        let mut st = host("st-1", &[]);
        st.roles(&["storage"]);
        st.storage(vec![
            device(
                "d1",
                "tier1",
                true,
                vec![lun("vol-1", "active"), lun("vol-2", "active")],
            ),
            device("d2", "local", false, vec![]),
        ]);
        for iops in [100.0, 900.0, 110.0] {
            st.record(&storage_telemetry(
                "d1",
                600 << 30,
                iops,
                &[("vol-1", iops / 2.0)],
            ));
        }
        let mut t = BTreeMap::new();
        t.insert(
            "tier1".to_owned(),
            Thresholds {
                max_capacity_used: 0.5,
                ..Thresholds::default()
            },
        );
        let built = rebalancer_snapshot(&[st.capacity], &t, &Thresholds::default(), 0.5);
        let s = &built.snapshot;
        assert!(built.notes.is_empty());
        let groups: Vec<_> = s
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.thresholds.max_capacity_used))
            .collect();
        assert_eq!(groups, [("st-1/local", 0.8), ("tier1", 0.5)]);
        let d1 = &s.devices[0];
        assert_eq!((d1.id.as_str(), d1.group.as_str()), ("st-1/d1", "tier1"));
        assert_eq!(d1.used_bytes, 600 << 30, "the latest sample");
        assert_eq!(d1.iops, 110.0, "the median, not the spike");
        assert_eq!(d1.latency_seconds, Some(0.002));
        assert_eq!(s.devices[1].used_bytes, 0, "no samples: the inventory's");
        let v1 = &s.luns[0];
        assert_eq!(
            (v1.id.as_str(), v1.device.as_str()),
            ("st-1/vol-1", "st-1/d1")
        );
        assert_eq!(v1.iops, 55.0);
        assert_eq!(v1.size_bytes, 5 << 30, "used bytes from telemetry");
        assert_eq!(s.luns[1].size_bytes, 8 << 30, "inventory used bytes");
        rebalancer::plan(s).expect("a valid snapshot");
    }

    #[test]
    fn a_lun_in_a_move_counts_once_and_is_not_planned_again() {
        let mut a = host("st-1", &[]);
        a.storage(vec![device(
            "d1",
            "tier1",
            true,
            vec![lun("vol-1", "leaving")],
        )]);
        let mut b = host("st-2", &[]);
        b.storage(vec![device(
            "d1",
            "tier1",
            true,
            vec![lun("vol-1", "incoming")],
        )]);
        b.state = health::HostState::Failed;
        let built = rebalancer_snapshot(
            &[a.capacity.clone(), b.capacity.clone()],
            &BTreeMap::new(),
            &Thresholds::default(),
            0.9,
        );
        assert_eq!(built.snapshot.luns.len(), 1);
        assert_eq!(built.snapshot.luns[0].id, "st-1/vol-1");
        assert!(built.snapshot.luns[0].pinned);
        assert_eq!(built.snapshot.devices[1].state, DeviceState::Maintenance);

        // The destination serves it now; the source's leaving copy is left out.
        b.storage(vec![device(
            "d1",
            "tier1",
            true,
            vec![lun("vol-1", "active")],
        )]);
        let built = rebalancer_snapshot(
            &[a.capacity, b.capacity],
            &BTreeMap::new(),
            &Thresholds::default(),
            0.9,
        );
        assert_eq!(built.snapshot.luns.len(), 1);
        assert_eq!(built.snapshot.luns[0].id, "st-2/vol-1");
        assert!(!built.snapshot.luns[0].pinned);
        assert_eq!(built.notes.len(), 1, "{:?}", built.notes);
        rebalancer::plan(&built.snapshot).expect("a valid snapshot");
    }
}
