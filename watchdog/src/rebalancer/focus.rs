//! A plan narrowed to one device and/or to its first moves: the LUN moves
//! off that device and the moves they wait for, at most so many, with
//! every figure (destination fill after each move, group spreads after the
//! plan, idle candidates) recomputed for what is kept. A recovery step that
//! relieves one overfull device runs this instead of the whole plan, and
//! the storage loop bounds its work with it.
//!
//! The kept moves keep their `after` lists (renumbered): the proof in
//! `order` holds for any subset closed under `after`, since a destination
//! then receives only some of the incoming moves the full plan counted and
//! still waits for the outgoing ones that free its room. A prefix (in plan
//! order) of a closed set is closed, since `after` points backwards.

use super::{
    RebalanceError, idle_candidates,
    plan::{Move, Plan},
    snapshot::Snapshot,
    state::State,
};

/// The narrowed plan and what it does to the device it relieves.
#[derive(Clone, Debug, PartialEq)]
pub struct Narrowed {
    pub plan: Plan,
    /// The device's fill, when narrowed to one.
    pub device_fill: Option<DeviceFill>,
}

/// A device's used fraction (bytes over capacity) before and after a plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceFill {
    pub before: f64,
    pub after: f64,
    /// Its capacity threshold, as a fraction.
    pub max: f64,
}

/// `plan`, made by [`plan`](super::plan) from `snapshot`, narrowed to the
/// moves off `device` (all moves when `None`) and those they wait for,
/// then to the first `max_moves` of those, in plan order. Problems the plan
/// leaves on `device` stay listed.
pub fn narrow(
    snapshot: &Snapshot,
    plan: &Plan,
    device: Option<&str>,
    max_moves: Option<usize>,
) -> Result<Narrowed, RebalanceError> {
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
    let target = device.map(dev).transpose()?;

    let mut keep: Vec<bool> = plan
        .moves
        .iter()
        .map(|m| device.is_none_or(|d| m.from == d))
        .collect();
    for i in (0..keep.len()).rev() {
        if keep[i] {
            for &d in &plan.moves[i].after {
                keep[d] = true;
            }
        }
    }
    let limit = max_moves.unwrap_or(usize::MAX);
    let mut renumbered = vec![usize::MAX; keep.len()];
    let mut state = initial.clone();
    let mut moves = Vec::new();
    for (i, m) in plan.moves.iter().enumerate().filter(|&(i, _)| keep[i]) {
        if moves.len() == limit {
            break;
        }
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
    let device_fill = target.map(|t| {
        let fill = |s: &State| s.devs[t].used as f64 / s.devs[t].capacity as f64;
        let max = snapshot
            .devices
            .iter()
            .find(|d| Some(d.id.as_str()) == device)
            .and_then(|d| snapshot.groups.iter().find(|g| g.name == d.group))
            .map_or(1.0, |g| g.thresholds.max_capacity_used);
        DeviceFill {
            before: fill(&initial),
            after: fill(&state),
            max,
        }
    });
    let groups = 0..state.groups.len();
    Ok(Narrowed {
        plan: Plan {
            moves,
            unresolved: plan
                .unresolved
                .iter()
                .filter(|u| device.is_none_or(|d| u.device == d))
                .cloned()
                .collect(),
            idle_candidates: idle_candidates(&state),
            before: groups.clone().map(|g| initial.spread(g)).collect(),
            after: groups.map(|g| state.spread(g)).collect(),
        },
        device_fill,
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
        let relief = narrow(&s, &full, Some("d1"), None).unwrap();
        let p = &relief.plan;
        assert!(!p.moves.is_empty());
        assert!(p.moves.iter().all(|m| m.from == "d1"), "{p:#?}");
        let fill = relief.device_fill.unwrap();
        assert_eq!(fill.before, 0.9);
        assert!(fill.after <= 0.8, "{relief:?}");
        assert_eq!(fill.max, 0.8);
        assert_eq!(p.before, full.before);
        assert!(
            p.after[0].capacity_max >= 0.9,
            "d3 is still full: {:?}",
            p.after
        );
        assert_eq!(
            narrow(&s, &full, Some("d9"), None).unwrap_err().to_string(),
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
        let relief = narrow(&s, &hand, Some("d1"), None).unwrap();
        let kept: Vec<(&str, &[usize])> = relief
            .plan
            .moves
            .iter()
            .map(|m| (m.lun.as_str(), m.after.as_slice()))
            .collect();
        assert_eq!(kept, [("y", &[][..]), ("a", &[0][..])]);
        assert_eq!(relief.plan.moves[1].to_used_fraction, 0.65);
        assert_eq!(relief.device_fill.unwrap().after, 0.6);

        // At most one move: the first of the kept ones, its figures with it.
        let one = narrow(&s, &hand, Some("d1"), Some(1)).unwrap();
        assert_eq!(one.plan.moves.len(), 1);
        assert_eq!(one.plan.moves[0].lun, "y");
        assert_eq!(one.device_fill.unwrap().after, 0.9, "d1 not relieved yet");
        let all = narrow(&s, &hand, None, Some(2)).unwrap();
        let luns: Vec<&str> = all.plan.moves.iter().map(|m| m.lun.as_str()).collect();
        assert_eq!(luns, ["c", "y"]);
        assert!(all.device_fill.is_none());
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
