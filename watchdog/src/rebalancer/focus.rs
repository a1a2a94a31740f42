//! A plan narrowed to one device: the LUN moves off it and the moves they
//! wait for, with every figure (destination fill after each move, group
//! spreads after the plan, idle candidates) recomputed for what is kept. A
//! recovery step that relieves one overfull device runs this instead of
//! the whole plan.
//!
//! The kept moves keep their `after` lists (renumbered): the proof in
//! `order` holds for any subset closed under `after`, since a destination
//! then receives only some of the incoming moves the full plan counted and
//! still waits for the outgoing ones that free its room.

use super::{
    RebalanceError, idle_candidates,
    plan::{Move, Plan},
    snapshot::Snapshot,
    state::State,
};

/// The plan for one device and what it does to that device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRelief {
    /// The moves off the device and the moves they wait for.
    pub plan: Plan,
    /// The device's used fraction (bytes over capacity) now.
    pub used_before: f64,
    /// ...and once the plan is done.
    pub used_after: f64,
    /// Its capacity threshold, as a fraction.
    pub max_used: f64,
}

/// `plan`, made by [`plan`](super::plan) from `snapshot`, narrowed to the
/// moves off `device` and those they wait for (directly or not), in plan
/// order. Problems the plan leaves on `device` stay listed.
pub fn relieve(snapshot: &Snapshot, plan: &Plan, device: &str) -> Result<DeviceRelief, RebalanceError> {
    snapshot.validate()?;
    let missing = |kind: &'static str, id: &str| RebalanceError::Invalid {
        kind,
        id: id.to_owned(),
        message: "not in the snapshot; narrow a plan with the snapshot it was made from".into(),
    };
    let initial = State::new(snapshot);
    let dev = |id: &str| {
        initial
            .devs
            .binary_search_by(|d| d.id.as_str().cmp(id))
            .map_err(|_| missing("device", id))
    };
    let target = dev(device)?;
    let max_used = snapshot
        .devices
        .iter()
        .find(|d| d.id == device)
        .and_then(|d| snapshot.groups.iter().find(|g| g.name == d.group))
        .map_or(1.0, |g| g.thresholds.max_capacity_used);

    let mut keep: Vec<bool> = plan.moves.iter().map(|m| m.from == device).collect();
    for i in (0..keep.len()).rev() {
        if keep[i] {
            for &d in &plan.moves[i].after {
                keep[d] = true;
            }
        }
    }
    let mut renumbered = vec![usize::MAX; keep.len()];
    let mut state = initial.clone();
    let mut moves = Vec::new();
    for (i, m) in plan.moves.iter().enumerate().filter(|&(i, _)| keep[i]) {
        let lun = state
            .luns
            .binary_search_by(|l| l.id.as_str().cmp(&m.lun))
            .map_err(|_| missing("lun", &m.lun))?;
        let (from, to) = (dev(&m.from)?, dev(&m.to)?);
        if state.luns[lun].device != from {
            return Err(RebalanceError::Invalid {
                kind: "lun",
                id: m.lun.clone(),
                message: format!("is not on {} in the snapshot", m.from),
            });
        }
        state.apply(lun, to);
        renumbered[i] = moves.len();
        let d = &state.devs[to];
        moves.push(Move {
            after: m.after.iter().map(|&a| renumbered[a]).collect(),
            to_used_fraction: d.used as f64 / d.capacity as f64,
            to_iops: d.iops,
            ..m.clone()
        });
    }
    let fill = |s: &State| {
        let d = &s.devs[target];
        d.used as f64 / d.capacity as f64
    };
    let groups = 0..state.groups.len();
    Ok(DeviceRelief {
        plan: Plan {
            moves,
            unresolved: plan
                .unresolved
                .iter()
                .filter(|u| u.device == device)
                .cloned()
                .collect(),
            idle_candidates: idle_candidates(&state),
            before: groups.clone().map(|g| initial.spread(g)).collect(),
            after: groups.map(|g| state.spread(g)).collect(),
        },
        used_before: fill(&initial),
        used_after: fill(&state),
        max_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rebalancer::{Device, DeviceGroup, DeviceState, Lun, Thresholds, plan};

    const GIB: u64 = 1 << 30;

    fn device(id: &str, used: u64) -> Device {
        Device {
            id: id.into(),
            group: "g".into(),
            capacity_bytes: 100 * GIB,
            used_bytes: used * GIB,
            iops: 0.0,
            latency_seconds: None,
            state: DeviceState::Active,
        }
    }

    fn lun(id: &str, device: &str, size: u64) -> Lun {
        Lun {
            id: id.into(),
            device: device.into(),
            size_bytes: size * GIB,
            iops: 0.0,
            pinned: false,
        }
    }

    /// d1 and d3 over 80 %, d2 and d4 nearly empty.
    fn two_full_devices() -> Snapshot {
        Snapshot {
            groups: vec![DeviceGroup {
                name: "g".into(),
                thresholds: Thresholds::default(),
            }],
            devices: vec![
                device("d1", 90),
                device("d2", 10),
                device("d3", 90),
                device("d4", 10),
            ],
            luns: vec![
                lun("a", "d1", 30),
                lun("b", "d1", 30),
                lun("c", "d3", 30),
                lun("d", "d3", 30),
            ],
        }
    }

    #[test]
    fn only_the_named_devices_moves_are_kept_and_figures_recomputed() {
        let s = two_full_devices();
        let full = plan(&s).unwrap();
        assert!(full.moves.iter().any(|m| m.from == "d1"));
        assert!(full.moves.iter().any(|m| m.from == "d3"));
        let relief = relieve(&s, &full, "d1").unwrap();
        let p = &relief.plan;
        assert!(!p.moves.is_empty());
        assert!(p.moves.iter().all(|m| m.from == "d1"), "{p:#?}");
        assert_eq!(relief.used_before, 0.9);
        assert!(relief.used_after <= 0.8, "{relief:?}");
        assert_eq!(relief.max_used, 0.8);
        assert_eq!(p.before, full.before);
        assert!(
            p.after[0].capacity_max >= 0.9,
            "d3 is still full: {:?}",
            p.after
        );
        assert_eq!(
            relieve(&s, &full, "d9").unwrap_err().to_string(),
            "device \"d9\": not in the snapshot; narrow a plan with the snapshot it was made from"
        );
    }

    #[test]
    fn a_move_the_kept_ones_wait_for_is_kept_and_renumbered() {
        // d2 has room for x only once y has left it for d4.
        let mut s = two_full_devices();
        s.devices[1].used_bytes = 75 * GIB;
        s.luns.push(lun("y", "d2", 40));
        let hand = Plan {
            moves: vec![
                step("c", "d3", "d4", vec![]),
                step("y", "d2", "d4", vec![]),
                step("a", "d1", "d2", vec![1]),
            ],
            ..Plan::default()
        };
        let relief = relieve(&s, &hand, "d1").unwrap();
        let kept: Vec<(&str, &[usize])> = relief
            .plan
            .moves
            .iter()
            .map(|m| (m.lun.as_str(), m.after.as_slice()))
            .collect();
        assert_eq!(kept, [("y", &[][..]), ("a", &[0][..])]);
        assert_eq!(relief.plan.moves[1].to_used_fraction, 0.65);
        assert_eq!(relief.used_after, 0.6);
    }

    fn step(lun: &str, from: &str, to: &str, after: Vec<usize>) -> Move {
        Move {
            lun: lun.into(),
            from: from.into(),
            to: to.into(),
            bytes: 0,
            iops: 0.0,
            after,
            reason: crate::rebalancer::Reason::Draining,
            to_used_fraction: 0.0,
            to_iops: 0.0,
        }
    }
}
