//! VM plans from the registry: the planner's snapshot of the hosts, a
//! failover or rebalance plan (narrowed to the target host when there is
//! one), its record in the history, the check against a fresh snapshot
//! before it runs, and the executor's outcomes written back per move.

use super::{
    config::PlannerConfig,
    history::{Kind, MoveRecord, MoveState, PlanDetail, PlanRecord, TargetLoad},
    step::{PlanOrder, Refusal},
};
use crate::{
    cluster_view::{HostCapacity, planner_snapshot},
    health::HostState,
    migration::{ExecutionReport, MoveStatus, Stage},
    planner::{self, MigrationPlan, MoveKind, verify::verify},
};

/// A VM plan for an order, with what its record says about it.
#[derive(Clone, Debug)]
pub struct VmPlan {
    pub plan: MigrationPlan,
    /// The target host's utilization (rebalance of one host).
    pub target_load: Option<TargetLoad>,
    /// What the snapshot left out.
    pub notes: Vec<String>,
    /// Why the plan was made.
    pub reason: String,
}

/// Plans `kind` (failover or rebalance) for `target`, or for the whole
/// cluster, from `hosts`.
pub fn make(
    hosts: &[HostCapacity],
    config: &PlannerConfig,
    kind: Kind,
    target: Option<&str>,
) -> Result<VmPlan, Refusal> {
    let built = planner_snapshot(hosts, config.constraints.clone());
    let snapshot = &built.snapshot;
    let settings = config.settings();
    if let Some(t) = target
        && !snapshot.hosts.iter().any(|h| h.id == t)
    {
        return Err(Refusal::UnknownTarget(format!(
            "no hypervisor {t:?} in the cluster"
        )));
    }
    let failed: Vec<&str> = hosts
        .iter()
        .filter(|h| h.state == HostState::Failed && h.is_hypervisor())
        .map(|h| h.id.as_str())
        .collect();
    let full = match kind {
        Kind::Failover => {
            if let Some(t) = target
                && !failed.contains(&t)
            {
                let state = hosts
                    .iter()
                    .find(|h| h.id == t)
                    .map_or("unknown", |h| h.state.as_str());
                return Err(Refusal::Conflict(format!(
                    "{t} is {state}, not failed: failover restarts a host's VMs only once the failure detector has declared it failed (until then it may still run them)"
                )));
            }
            planner::failover(snapshot, &settings)
        }
        Kind::Rebalance => planner::rebalance(snapshot, &settings),
        Kind::MoveLuns => unreachable!("LUN plans are made in lun_plans"),
    }
    .map_err(|e| Refusal::Failed(format!("the planner cannot use the cluster's snapshot: {e}")))?;
    let (plan, target_load) = match target {
        None => (full, None),
        Some(t) => {
            let relief = planner::relieve(snapshot, &settings, &full, t)
                .map_err(|e| Refusal::Failed(format!("narrowing the plan to {t}: {e}")))?;
            let load = (kind == Kind::Rebalance).then_some(TargetLoad {
                before: relief.utilization.before,
                after: relief.utilization.after,
                threshold: relief.threshold,
            });
            (relief.plan, load)
        }
    };
    let pct = |v: f64| v * 100.0;
    let reason = match (kind, target, target_load) {
        (Kind::Failover, Some(t), _) => format!("{t} failed"),
        (Kind::Failover, None, _) if failed.is_empty() => "no host has failed".to_owned(),
        (Kind::Failover, None, _) => format!("failed: {}", failed.join(", ")),
        (_, Some(t), Some(l)) => format!(
            "{t} {:.0}% busy (threshold {:.0}%)",
            pct(l.before),
            pct(l.threshold)
        ),
        _ => format!(
            "capacity check: spread {:.3} (target {:.3}), {} host(s) over their threshold",
            plan.before.spread, settings.spread_target, plan.before.hosts_over_threshold
        ),
    };
    Ok(VmPlan {
        plan,
        target_load,
        notes: built.notes,
        reason,
    })
}

/// The record of `vm`, made for `order` in `plan_seconds`.
pub fn record(
    id: String,
    order: &PlanOrder,
    vm: &VmPlan,
    plan_seconds: f64,
    dry_run: bool,
) -> PlanRecord {
    let mut r = PlanRecord::new(id, order, dry_run, plan_seconds);
    let p = &vm.plan;
    let state = r.initial_move_state();
    r.moves = p
        .migrations
        .iter()
        .map(|m| MoveRecord {
            item: m.vm.clone(),
            from: m.source.clone(),
            to: m.destination.clone(),
            how: match m.kind {
                MoveKind::Live => "live",
                MoveKind::Restart => "restart",
            }
            .to_owned(),
            bytes: m.bytes_to_copy,
            depends_on: m.depends_on.clone(),
            why: m.to_string(),
            state,
            error: None,
            elapsed_ms: None,
        })
        .collect();
    r.explanation = p
        .migrations
        .iter()
        .enumerate()
        .map(|(i, m)| format!("#{i} {m}"))
        .chain(p.unplaced.iter().map(ToString::to_string))
        .collect();
    r.unplaced = p.unplaced.iter().map(ToString::to_string).collect();
    r.reason.clone_from(&vm.reason);
    r.notes.clone_from(&vm.notes);
    r.spread_before = p.before.spread;
    r.spread_after = p.after.spread;
    r.target_load = vm.target_load;
    r.bytes_to_move = p.bytes_moved();
    r.detail = Some(PlanDetail::Vms(p.clone()));
    r
}

/// Whether `plan` still holds in the cluster as `hosts` show it now: every
/// VM where the plan found it, every destination with room at every step.
pub fn still_holds(
    hosts: &[HostCapacity],
    config: &PlannerConfig,
    plan: &MigrationPlan,
) -> Result<(), String> {
    let fresh = planner_snapshot(hosts, config.constraints.clone());
    verify(&fresh.snapshot, &config.settings(), plan).map_err(|v| {
        format!("the cluster changed since the plan was made, so it no longer holds: {v}")
    })
}

/// Writes the executor's outcomes into the record's moves.
pub fn apply(r: &mut PlanRecord, report: &ExecutionReport) {
    for (m, o) in r.moves.iter_mut().zip(&report.outcomes) {
        m.elapsed_ms = Some(o.elapsed_ms);
        (m.state, m.error) = match &o.status {
            MoveStatus::WouldRun => (MoveState::WouldRun, None),
            MoveStatus::Done => (MoveState::Done, None),
            MoveStatus::Failed {
                stage,
                error,
                restored,
            } => {
                let left = match (stage, restored) {
                    (Stage::Release, _) => {
                        "the VM runs at its destination; its source copy is left"
                    }
                    (_, true) => "the VM runs at its source",
                    (_, false) => "undoing it failed too; check the VM by hand",
                };
                let stage = match stage {
                    Stage::Transfer => "transfer",
                    Stage::Confirm => "confirm",
                    Stage::Release => "release",
                };
                (
                    MoveState::Failed,
                    Some(format!("{stage} failed: {error} ({left})")),
                )
            }
            MoveStatus::Skipped { after } => (
                MoveState::Skipped,
                Some(format!(
                    "migration #{after}, which it waits for, did not complete"
                )),
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cluster_view::test_hosts::{host, telemetry, vm},
        migration::{MigrationRequest, MoveOutcome},
        placement::history::{PlanState, Trigger},
    };

    /// hv-a overloaded (7.6 of 8 cores), hv-b idle, hv-c failed with one VM.
    fn cluster() -> Vec<HostCapacity> {
        let mut a = host(
            "hv-a",
            &[
                vm("web-1", "running"),
                vm("web-2", "running"),
                vm("db-1", "running"),
            ],
        );
        a.record(&telemetry(
            0.95,
            &[("web-1", 2.5), ("web-2", 2.5), ("db-1", 2.5)],
        ));
        let mut b = host("hv-b", &[]);
        b.record(&telemetry(0.05, &[]));
        let mut c = host("hv-c", &[vm("app-1", "running")]);
        c.state = HostState::Failed;
        vec![a.capacity, b.capacity, c.capacity]
    }

    fn order(kind: Kind, target: Option<&str>) -> PlanOrder {
        PlanOrder {
            kind,
            target: target.map(str::to_owned),
            trigger: Trigger::Policy,
            execute: None,
        }
    }

    #[test]
    fn a_rebalance_of_one_host_moves_only_its_vms_and_says_why() {
        let hosts = cluster();
        let config = PlannerConfig::default();
        let made = make(&hosts, &config, Kind::Rebalance, Some("hv-a")).unwrap();
        assert!(!made.plan.migrations.is_empty());
        assert!(made.plan.migrations.iter().all(|m| m.source == "hv-a"));
        let load = made.target_load.unwrap();
        assert!(load.before > 0.9 && load.after <= 0.8, "{load:?}");
        assert_eq!(made.reason, "hv-a 95% busy (threshold 80%)");
        let r = record(
            "p-1".into(),
            &order(Kind::Rebalance, Some("hv-a")),
            &made,
            0.001,
            true,
        );
        assert_eq!(r.moves.len(), made.plan.migrations.len());
        assert!(
            r.moves
                .iter()
                .all(|m| m.state == MoveState::WouldRun && m.how == "live")
        );
        assert!(
            r.explanation[0].starts_with("#0 migrate "),
            "{:?}",
            r.explanation
        );
        assert!(r.spread_after < r.spread_before);
        assert_eq!(r.bytes_to_move, made.plan.bytes_moved());
        still_holds(&hosts, &config, &made.plan).expect("nothing changed");
    }

    #[test]
    fn a_failover_needs_a_failed_host_and_restarts_its_vms() {
        let hosts = cluster();
        let config = PlannerConfig::default();
        let refused = make(&hosts, &config, Kind::Failover, Some("hv-a")).unwrap_err();
        assert!(
            matches!(&refused, Refusal::Conflict(m) if m.starts_with("hv-a is healthy, not failed")),
            "{refused:?}"
        );
        let made = make(&hosts, &config, Kind::Failover, Some("hv-c")).unwrap();
        let moved: Vec<(&str, MoveKind)> = made
            .plan
            .migrations
            .iter()
            .map(|m| (m.vm.as_str(), m.kind))
            .collect();
        assert_eq!(moved, [("app-1", MoveKind::Restart)]);
        assert_eq!(made.reason, "hv-c failed");
        assert!(made.target_load.is_none());
        assert!(matches!(
            make(&hosts, &config, Kind::Failover, Some("hv-z")).unwrap_err(),
            Refusal::UnknownTarget(_)
        ));
    }

    #[test]
    fn a_plan_no_longer_holds_when_its_vm_has_gone() {
        let mut hosts = cluster();
        let config = PlannerConfig::default();
        let made = make(&hosts, &config, Kind::Rebalance, None).unwrap();
        let moved = made.plan.migrations[0].vm.clone();
        let a = std::sync::Arc::make_mut(&mut hosts[0].inventory);
        a.vms.retain(|v| v.name != moved);
        let err = still_holds(&hosts, &config, &made.plan).unwrap_err();
        assert!(
            err.contains(&moved) && err.contains("no longer holds"),
            "{err}"
        );
    }

    #[test]
    fn outcomes_are_written_back_per_move() {
        let hosts = cluster();
        let made = make(&hosts, &PlannerConfig::default(), Kind::Rebalance, None).unwrap();
        let mut r = record(
            "p-2".into(),
            &order(Kind::Rebalance, None),
            &made,
            0.0,
            false,
        );
        assert_eq!(r.state, PlanState::Running);
        let requests: Vec<MigrationRequest> = made
            .plan
            .migrations
            .iter()
            .enumerate()
            .map(|(i, m)| MigrationRequest::from_plan(i, m))
            .collect();
        let status = |i: usize| match i {
            0 => MoveStatus::Done,
            1 => MoveStatus::Failed {
                stage: Stage::Confirm,
                error: "not running".into(),
                restored: true,
            },
            _ => MoveStatus::Skipped { after: 1 },
        };
        let report = ExecutionReport {
            dry_run: false,
            actuator: "simulated".into(),
            outcomes: requests
                .into_iter()
                .enumerate()
                .map(|(i, request)| MoveOutcome {
                    request,
                    status: status(i),
                    elapsed_ms: 5,
                })
                .collect(),
            elapsed_ms: 10,
        };
        apply(&mut r, &report);
        assert_eq!(r.moves[0].state, MoveState::Done);
        if r.moves.len() > 1 {
            assert_eq!(r.moves[1].state, MoveState::Failed);
            assert_eq!(
                r.moves[1].error.as_deref(),
                Some("confirm failed: not running (the VM runs at its source)")
            );
        }
        assert!(r.moves.iter().all(|m| m.elapsed_ms == Some(5)));
    }
}
