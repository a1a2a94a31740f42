//! LUN plans from the registry: the rebalancer's snapshot of every storage
//! device, a plan (narrowed to the target device when there is one, and to
//! at most `max_moves`), its record in the history, the check against a
//! fresh snapshot before it runs, and the executor's outcomes per move.

use std::collections::BTreeMap;

use super::{
    config::StorageConfig,
    history::{MoveRecord, MoveState, PlanDetail, PlanRecord, TargetLoad},
    step::{PlanOrder, Refusal},
};
use crate::{
    cluster_view::{HostCapacity, rebalancer_snapshot},
    lun_mover::MoveOutcome,
    rebalancer::{self, DeviceState, GroupSpread, Plan, Snapshot},
};

/// A LUN plan for an order, with what its record says about it.
#[derive(Clone, Debug)]
pub struct LunPlan {
    pub plan: Plan,
    /// The target device's fill (moves off one device).
    pub target_load: Option<TargetLoad>,
    /// Capacity spread (standard deviation of fill) before and after, in
    /// the target's group or, without a target, the most uneven group.
    pub spread: (f64, f64),
    /// Where each LUN was in the snapshot, for a simulated mover.
    pub locations: Vec<(String, String)>,
    /// What the snapshot left out.
    pub notes: Vec<String>,
    /// Why the plan was made.
    pub reason: String,
}

/// The rebalancer's snapshot of `hosts` under `config`'s thresholds.
pub fn snapshot(hosts: &[HostCapacity], config: &StorageConfig) -> (Snapshot, Vec<String>) {
    let built = rebalancer_snapshot(hosts, &config.groups, &config.thresholds, config.percentile);
    (built.snapshot, built.notes)
}

/// Plans LUN moves off `target` (`HOST/DEVICE`), or across every device.
pub fn make(
    hosts: &[HostCapacity],
    config: &StorageConfig,
    target: Option<&str>,
) -> Result<LunPlan, Refusal> {
    let (snapshot, notes) = snapshot(hosts, config);
    let group_of = |id: &str| {
        snapshot
            .devices
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.group.clone())
    };
    let group = match target {
        None => None,
        Some(t) => Some(group_of(t).ok_or_else(|| {
            Refusal::UnknownTarget(format!(
                "no storage device {t:?} in the cluster (name it HOST/DEVICE)"
            ))
        })?),
    };
    let failed = |e: rebalancer::RebalanceError| {
        Refusal::Failed(format!(
            "the rebalancer cannot use the cluster's snapshot: {e}"
        ))
    };
    let full = rebalancer::plan(&snapshot).map_err(failed)?;
    let max = (config.max_moves > 0).then_some(config.max_moves);
    let narrowed = rebalancer::narrow(&snapshot, &full, target, max).map_err(failed)?;
    let plan = narrowed.plan;
    let target_load = narrowed.device_fill.map(|f| TargetLoad {
        before: f.before,
        after: f.after,
        threshold: f.max,
    });
    let spread = |spreads: &[GroupSpread]| match &group {
        Some(g) => spreads
            .iter()
            .find(|s| &s.group == g)
            .map_or(0.0, |s| s.capacity_stddev),
        None => spreads
            .iter()
            .map(|s| s.capacity_stddev)
            .fold(0.0, f64::max),
    };
    let pct = |v: f64| v * 100.0;
    let reason = match (target, target_load) {
        (Some(t), Some(l)) => format!(
            "{t} {:.0}% full (threshold {:.0}%)",
            pct(l.before),
            pct(l.threshold)
        ),
        _ => {
            let sources: BTreeMap<&str, ()> =
                plan.moves.iter().map(|m| (m.from.as_str(), ())).collect();
            format!(
                "storage check: {} device(s) to relieve, {} problem(s) no move fixes",
                sources.len(),
                plan.unresolved.len()
            )
        }
    };
    Ok(LunPlan {
        spread: (spread(&plan.before), spread(&plan.after)),
        target_load,
        locations: snapshot
            .luns
            .iter()
            .map(|l| (l.id.clone(), l.device.clone()))
            .collect(),
        plan,
        notes,
        reason,
    })
}

/// The record of `luns`, made for `order` in `plan_seconds`.
pub fn record(
    id: String,
    order: &PlanOrder,
    luns: &LunPlan,
    plan_seconds: f64,
    dry_run: bool,
) -> PlanRecord {
    let mut r = PlanRecord::new(id, order, dry_run, plan_seconds);
    let p = &luns.plan;
    let state = r.initial_move_state();
    r.moves = p
        .moves
        .iter()
        .map(|m| MoveRecord {
            item: m.lun.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            how: "lun".to_owned(),
            bytes: m.bytes,
            depends_on: m.after.clone(),
            why: m.to_string(),
            state,
            error: None,
            elapsed_ms: None,
        })
        .collect();
    r.unplaced = p
        .unresolved
        .iter()
        .map(|u| format!("{}: {}", u.device, u.problem))
        .collect();
    r.explanation = p
        .moves
        .iter()
        .enumerate()
        .map(|(i, m)| format!("#{i} {m}"))
        .chain(r.unplaced.iter().cloned())
        .chain(p.idle_candidates.iter().map(|c| {
            format!(
                "idle candidate: {} serves {:.1} IOPS with {} LUN(s); it could be spun down (reported only)",
                c.device, c.iops, c.luns
            )
        }))
        .collect();
    r.reason.clone_from(&luns.reason);
    r.notes.clone_from(&luns.notes);
    (r.spread_before, r.spread_after) = luns.spread;
    r.target_load = luns.target_load;
    r.bytes_to_move = p.bytes_moved();
    r.detail = Some(PlanDetail::Luns(p.clone()));
    r
}

/// Whether `plan` still holds in the storage as `hosts` show it now: run
/// one at a time in plan order, every LUN is where the plan found it and
/// movable, and every destination stays active and under its capacity
/// threshold.
pub fn still_holds(
    hosts: &[HostCapacity],
    config: &StorageConfig,
    plan: &Plan,
) -> Result<(), String> {
    let (fresh, _) = snapshot(hosts, config);
    let limit: BTreeMap<&str, f64> = fresh
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.thresholds.max_capacity_used))
        .collect();
    let mut lun_bytes: BTreeMap<&str, u64> = BTreeMap::new();
    for l in &fresh.luns {
        *lun_bytes.entry(&l.device).or_default() += l.size_bytes;
    }
    let mut used: BTreeMap<&str, u64> = fresh
        .devices
        .iter()
        .map(|d| {
            let luns = lun_bytes.get(d.id.as_str()).copied().unwrap_or(0);
            (d.id.as_str(), d.used_bytes.max(luns))
        })
        .collect();
    let mut at: BTreeMap<&str, &str> = fresh
        .luns
        .iter()
        .map(|l| (l.id.as_str(), l.device.as_str()))
        .collect();
    let changed = |i: usize, what: String| {
        format!(
            "the storage changed since the plan was made, so it no longer holds: move #{i} ({what})"
        )
    };
    for (i, m) in plan.moves.iter().enumerate() {
        let lun = fresh.luns.iter().find(|l| l.id == m.lun);
        match lun {
            None => return Err(changed(i, format!("{} is gone", m.lun))),
            Some(l) if l.pinned => {
                return Err(changed(i, format!("{} is pinned or already moving", m.lun)));
            }
            Some(_) if at.get(m.lun.as_str()) != Some(&m.from.as_str()) => {
                return Err(changed(i, format!("{} is not on {}", m.lun, m.from)));
            }
            Some(_) => {}
        }
        let Some(to) = fresh.devices.iter().find(|d| d.id == m.to) else {
            return Err(changed(i, format!("{} is gone", m.to)));
        };
        if to.state != DeviceState::Active {
            return Err(changed(i, format!("{} is {:?}", m.to, to.state)));
        }
        let cap = limit.get(to.group.as_str()).copied().unwrap_or(1.0) * to.capacity_bytes as f64;
        let arriving = used.get(m.to.as_str()).copied().unwrap_or(0) + m.bytes;
        if arriving as f64 > cap {
            return Err(changed(
                i,
                format!(
                    "{} would hold {arriving} bytes, over its threshold of {cap:.0}",
                    m.to
                ),
            ));
        }
        used.insert(&m.to, arriving);
        if let Some(u) = used.get_mut(m.from.as_str()) {
            *u = u.saturating_sub(m.bytes);
        }
        at.insert(&m.lun, &m.to);
    }
    Ok(())
}

/// Writes the LUN executor's outcomes into the record's moves.
pub fn apply(r: &mut PlanRecord, outcomes: &[MoveOutcome]) {
    for (m, o) in r.moves.iter_mut().zip(outcomes) {
        let whole = |rolled_back: bool| {
            if rolled_back {
                "rolled back: the LUN is whole at its source"
            } else {
                "not settled: its journal is kept and the next start finishes or rolls it back"
            }
        };
        (m.state, m.error) = match o {
            MoveOutcome::WouldRun { .. } => (MoveState::WouldRun, None),
            MoveOutcome::Done => (MoveState::Done, None),
            MoveOutcome::Failed { error, rolled_back } => (
                MoveState::Failed,
                Some(format!("{error} ({})", whole(*rolled_back))),
            ),
            MoveOutcome::TimedOut { rolled_back } => (
                MoveState::TimedOut,
                Some(format!("out of time ({})", whole(*rolled_back))),
            ),
            MoveOutcome::Skipped { waiting_for } => (
                MoveState::Skipped,
                Some(format!(
                    "move #{waiting_for}, which it waits for, did not finish"
                )),
            ),
        };
    }
}

/// Marks every move of `r` failed with `error` (the executor refused the
/// whole plan).
pub fn fail_all(r: &mut PlanRecord, error: &str) {
    for m in &mut r.moves {
        m.state = MoveState::Failed;
        m.error = Some(error.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cluster_view::test_hosts::{device, host, lun, storage_telemetry},
        placement::history::{Kind, Trigger},
    };

    /// st-a/d1 90 % full with two LUNs, st-b/d1 10 % full; one group.
    fn storage() -> Vec<HostCapacity> {
        let mut a = host("st-a", &[]);
        a.roles(&["storage"]);
        a.storage(vec![device(
            "d1",
            "fast",
            true,
            vec![lun("vol-1", "active"), lun("vol-2", "active")],
        )]);
        a.record(&storage_telemetry("d1", 90 << 30, 100.0, &[]));
        let mut b = host("st-b", &[]);
        b.roles(&["storage"]);
        b.storage(vec![device("d1", "fast", true, vec![])]);
        b.record(&storage_telemetry("d1", 10 << 30, 10.0, &[]));
        vec![a.capacity, b.capacity]
    }

    fn order(target: Option<&str>) -> PlanOrder {
        PlanOrder {
            kind: Kind::MoveLuns,
            target: target.map(str::to_owned),
            trigger: Trigger::Policy,
            execute: None,
        }
    }

    #[test]
    fn moves_off_a_full_device_are_planned_explained_and_still_hold() {
        let hosts = storage();
        let config = StorageConfig::default();
        let made = make(&hosts, &config, Some("st-a/d1")).unwrap();
        assert!(!made.plan.moves.is_empty());
        assert!(
            made.plan
                .moves
                .iter()
                .all(|m| m.from == "st-a/d1" && m.to == "st-b/d1")
        );
        let load = made.target_load.unwrap();
        assert_eq!((load.before, load.threshold), (0.9, 0.8));
        assert!(load.after <= 0.8);
        assert_eq!(made.reason, "st-a/d1 90% full (threshold 80%)");
        assert!(made.spread.1 < made.spread.0, "{:?}", made.spread);
        let r = record("p-1".into(), &order(Some("st-a/d1")), &made, 0.0, false);
        assert!(
            r.moves
                .iter()
                .all(|m| m.how == "lun" && m.state == MoveState::Pending)
        );
        assert!(
            r.explanation[0].starts_with("#0 move st-a/vol-"),
            "{:?}",
            r.explanation
        );
        still_holds(&hosts, &config, &made.plan).unwrap();
        assert!(matches!(
            make(&hosts, &config, Some("st-a/d9")).unwrap_err(),
            Refusal::UnknownTarget(_)
        ));
    }

    #[test]
    fn a_plan_no_longer_holds_when_its_destination_filled_up() {
        let mut hosts = storage();
        let config = StorageConfig::default();
        let made = make(&hosts, &config, None).unwrap();
        let mut b = crate::cluster_view::test_hosts::TestHost {
            capacity: hosts[1].clone(),
        };
        b.record(&storage_telemetry("d1", 79 << 30, 10.0, &[]));
        hosts[1] = b.capacity;
        let err = still_holds(&hosts, &config, &made.plan).unwrap_err();
        assert!(
            err.contains("move #0") && err.contains("over its threshold"),
            "{err}"
        );
    }

    #[test]
    fn max_moves_bounds_a_plan_and_outcomes_are_written_back() {
        let hosts = storage();
        let config = StorageConfig {
            max_moves: 1,
            ..StorageConfig::default()
        };
        let made = make(&hosts, &config, None).unwrap();
        assert_eq!(made.plan.moves.len(), 1);
        let mut r = record("p-2".into(), &order(None), &made, 0.0, false);
        apply(
            &mut r,
            &[MoveOutcome::Failed {
                error: "copy failed".into(),
                rolled_back: true,
            }],
        );
        assert_eq!(r.moves[0].state, MoveState::Failed);
        assert_eq!(
            r.moves[0].error.as_deref(),
            Some("copy failed (rolled back: the LUN is whole at its source)")
        );
        fail_all(&mut r, "a move is unsettled");
        assert_eq!(r.moves[0].error.as_deref(), Some("a move is unsettled"));
    }
}
