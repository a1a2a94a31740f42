//! Property tests of the rebalancer on random clusters: whatever the input,
//! a plan never overfills a device at any step (one at a time or side by
//! side as its dependencies allow), never moves a pinned LUN, never uses a
//! device in maintenance, and is the same for the same snapshot in any order.

use std::collections::BTreeMap;

use hyperwatch::rebalancer::{
    Device, DeviceGroup, DeviceState, Lun, Plan, Snapshot, Thresholds, plan,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn thresholds() -> impl Strategy<Value = Thresholds> {
    (
        0.5f64..=1.0,
        prop::option::of(0.005f64..0.05),
        prop::option::of(0.1f64..=1.0),
        prop::option::of(0.0f64..0.3),
        0.0f64..1.0,
    )
        .prop_map(|(cap, lat, share, cb, ib)| Thresholds {
            max_capacity_used: cap,
            max_latency_seconds: lat,
            max_iops_share: share,
            capacity_band: cb,
            iops_band: ib,
            idle_iops: 1.0,
        })
}

fn state() -> impl Strategy<Value = DeviceState> {
    prop_oneof![
        6 => Just(DeviceState::Active),
        1 => Just(DeviceState::Maintenance),
        1 => Just(DeviceState::Draining),
    ]
}

/// A random cluster: 1-3 groups, 2-12 devices, up to 80 LUNs, devices
/// often over their thresholds.
fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        prop::collection::vec(thresholds(), 1..=3),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                10u64..200,
                state(),
                prop::option::of(0.001f64..0.06),
            ),
            2..=12,
        ),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                1u64..40,
                0.0f64..500.0,
                prop::bool::weighted(0.15),
            ),
            0..=80,
        ),
    )
        .prop_map(|(groups, devices, luns)| {
            let groups: Vec<DeviceGroup> = groups
                .into_iter()
                .enumerate()
                .map(|(i, thresholds)| DeviceGroup {
                    name: format!("g{i}"),
                    thresholds,
                })
                .collect();
            let mut devices: Vec<Device> = devices
                .into_iter()
                .enumerate()
                .map(|(i, (g, cap, state, latency))| Device {
                    id: format!("d{i:02}"),
                    group: g.get(&groups).name.clone(),
                    capacity_bytes: cap * GIB,
                    used_bytes: 0,
                    iops: 0.0,
                    latency_seconds: latency,
                    state,
                })
                .collect();
            let mut placed = Vec::new();
            for (i, (d, size, iops, pinned)) in luns.into_iter().enumerate() {
                let di = d.index(devices.len());
                let dev = &mut devices[di];
                // LUNs never exceed their device's capacity in a real system.
                if dev.used_bytes + size * GIB > dev.capacity_bytes {
                    continue;
                }
                dev.used_bytes += size * GIB;
                dev.iops += iops;
                placed.push(Lun {
                    id: format!("l{i:03}"),
                    device: dev.id.clone(),
                    size_bytes: size * GIB,
                    iops,
                    pinned,
                });
            }
            Snapshot {
                groups,
                devices,
                luns: placed,
            }
        })
}

/// Each device's capacity threshold in bytes, as an operator reads it.
fn limits(s: &Snapshot) -> BTreeMap<&str, u64> {
    s.devices
        .iter()
        .map(|d| {
            let t = &s
                .groups
                .iter()
                .find(|g| g.name == d.group)
                .unwrap()
                .thresholds;
            (
                d.id.as_str(),
                (d.capacity_bytes as f64 * t.max_capacity_used).floor() as u64,
            )
        })
        .collect()
}

/// Runs the plan one move at a time and checks every step.
fn check_sequential(s: &Snapshot, p: &Plan) -> Result<(), TestCaseError> {
    let devices: BTreeMap<&str, &Device> = s.devices.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut used: BTreeMap<&str, u64> = s
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.used_bytes))
        .collect();
    let mut lun_at: BTreeMap<&str, &str> = s
        .luns
        .iter()
        .map(|l| (l.id.as_str(), l.device.as_str()))
        .collect();
    let luns: BTreeMap<&str, &Lun> = s.luns.iter().map(|l| (l.id.as_str(), l)).collect();
    let limit = limits(s);
    let mut moved = std::collections::BTreeSet::new();
    for (k, m) in p.moves.iter().enumerate() {
        let lun = luns[m.lun.as_str()];
        prop_assert!(!lun.pinned, "move {k} moves pinned LUN {}", m.lun);
        prop_assert!(moved.insert(m.lun.as_str()), "LUN {} moves twice", m.lun);
        prop_assert_eq!(
            lun_at[m.lun.as_str()],
            m.from.as_str(),
            "move {} starts where the LUN is",
            k
        );
        prop_assert_eq!(m.bytes, lun.size_bytes);
        let (from, to) = (devices[m.from.as_str()], devices[m.to.as_str()]);
        prop_assert_eq!(&from.group, &to.group, "move {} leaves its group", k);
        prop_assert!(
            from.state != DeviceState::Maintenance,
            "move {k} off a device in maintenance"
        );
        prop_assert!(
            to.state == DeviceState::Active,
            "move {k} onto a {:?} device",
            to.state
        );
        // The copy exists on both sides until the move is done.
        let during = used[m.to.as_str()] + m.bytes;
        prop_assert!(
            during <= limit[m.to.as_str()] && during <= to.capacity_bytes,
            "move {k} overfills {}: {during} > {}",
            m.to,
            limit[m.to.as_str()]
        );
        *used.get_mut(m.to.as_str()).unwrap() = during;
        *used.get_mut(m.from.as_str()).unwrap() -= m.bytes;
        lun_at.insert(m.lun.as_str(), m.to.as_str());
        for &d in &m.after {
            prop_assert!(d < k, "move {k} waits for later move {d}");
        }
    }
    Ok(())
}

/// Runs the plan side by side in a random order its dependencies allow
/// (start any ready move or finish any running one) and checks that no
/// destination ever holds more than its threshold.
fn check_concurrent(
    s: &Snapshot,
    p: &Plan,
    choices: &[prop::sample::Index],
) -> Result<(), TestCaseError> {
    let limit = limits(s);
    let mut used: BTreeMap<&str, u64> = s
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.used_bytes))
        .collect();
    let n = p.moves.len();
    let (mut started, mut finished) = (vec![false; n], vec![false; n]);
    let mut choice = choices.iter().cycle();
    while finished.iter().any(|f| !f) {
        let ready: Vec<usize> = (0..n)
            .filter(|&k| !started[k] && p.moves[k].after.iter().all(|&d| finished[d]))
            .collect();
        let running: Vec<usize> = (0..n).filter(|&k| started[k] && !finished[k]).collect();
        prop_assert!(!ready.is_empty() || !running.is_empty(), "dependency cycle");
        let pick = choice.next().unwrap().index(ready.len() + running.len());
        if pick < ready.len() {
            let m = &p.moves[ready[pick]];
            started[ready[pick]] = true;
            let to = used.get_mut(m.to.as_str()).unwrap();
            *to += m.bytes;
            prop_assert!(
                *to <= limit[m.to.as_str()],
                "side by side, {} overfills {}",
                m.lun,
                m.to
            );
        } else {
            let k = running[pick - ready.len()];
            finished[k] = true;
            *used.get_mut(p.moves[k].from.as_str()).unwrap() -= p.moves[k].bytes;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_plan_overfills_pins_or_uses_maintenance(s in snapshot()) {
        let p = plan(&s).unwrap();
        check_sequential(&s, &p)?;
    }

    #[test]
    fn side_by_side_within_dependencies_never_overfills(
        s in snapshot(),
        choices in prop::collection::vec(any::<prop::sample::Index>(), 1..64),
    ) {
        let p = plan(&s).unwrap();
        check_concurrent(&s, &p, &choices)?;
    }

    #[test]
    fn the_same_snapshot_in_any_order_gives_the_same_plan(
        s in snapshot(),
        rotate in any::<prop::sample::Index>(),
    ) {
        let first = plan(&s).unwrap();
        let mut shuffled = s.clone();
        shuffled.devices.reverse();
        let r = rotate.index(shuffled.luns.len().max(1));
        if !shuffled.luns.is_empty() {
            shuffled.luns.rotate_left(r);
        }
        shuffled.groups.reverse();
        prop_assert_eq!(&first, &plan(&shuffled).unwrap());
        prop_assert_eq!(&first, &plan(&s).unwrap());
    }

    #[test]
    fn every_device_ends_under_its_thresholds_or_is_reported(s in snapshot()) {
        let p = plan(&s).unwrap();
        let limit = limits(&s);
        let mut used: BTreeMap<&str, u64> = s.devices.iter().map(|d| (d.id.as_str(), d.used_bytes)).collect();
        for m in &p.moves {
            *used.get_mut(m.to.as_str()).unwrap() += m.bytes;
            *used.get_mut(m.from.as_str()).unwrap() -= m.bytes;
        }
        for d in &s.devices {
            let over = match d.state {
                DeviceState::Draining => s.luns.iter().any(|l| l.device == d.id && !l.pinned && !p.moves.iter().any(|m| m.lun == l.id)),
                _ => used[d.id.as_str()] > limit[d.id.as_str()],
            };
            if over {
                prop_assert!(
                    p.unresolved.iter().any(|u| u.device == d.id),
                    "{} ends over its capacity threshold but is not reported", d.id
                );
            }
        }
    }
}
