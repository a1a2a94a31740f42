//! A plan narrowed to one host: the migrations off it and those they wait
//! for, rebuilt move by move so that their dependencies, explanations and
//! the cluster's figures describe only what is kept. A recovery step that
//! relieves one overloaded (or failed) host runs this instead of the whole
//! cluster's plan.
//!
//! Why the narrowed plan stays feasible: the planner's dependencies make
//! every execution feasible that starts a migration only after those it
//! depends on (see `sequence`); the kept set contains every dependency of
//! every kept move, so running only it is one such execution with the other
//! moves never started.

use super::{
    PlannerError, PlannerSettings,
    cluster::Cluster,
    plan::{Change, MigrationPlan, Rejection},
    sequence::Sequence,
    snapshot::ClusterSnapshot,
};

/// The plan for one host and what it does to that host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRelief {
    /// The moves off the host and the moves they wait for.
    pub plan: MigrationPlan,
    /// The host's utilization (busy cores / cores) now and once the plan
    /// is done; meaningless for a failed host (its last report).
    pub utilization: Change,
    /// Its utilization threshold.
    pub threshold: f64,
}

/// Why a plan cannot be narrowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FocusError {
    #[error(transparent)]
    Planner(#[from] PlannerError),
    #[error("host `{0}` is not in the snapshot")]
    UnknownHost(String),
    #[error(
        "the plan names vm `{0}`, which is not in the snapshot; narrow a plan with the snapshot it was made from"
    )]
    UnknownVm(String),
    #[error(
        "migration of `{vm}` to `{host}` no longer fits ({rejection}); narrow a plan with the snapshot it was made from"
    )]
    Infeasible {
        vm: String,
        host: String,
        rejection: Rejection,
    },
}

/// `plan`, made by [`rebalance`](super::rebalance) or
/// [`failover`](super::failover) from `snapshot` and `settings`, narrowed
/// to the migrations off `host` and those they depend on (directly or
/// not), in plan order. VMs of `host` it could not place stay listed.
pub fn relieve(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
    plan: &MigrationPlan,
    host: &str,
) -> Result<HostRelief, FocusError> {
    let cluster = Cluster::new(snapshot, settings)?;
    let host_ix = |id: &str| cluster.hosts.binary_search_by(|h| h.id.as_str().cmp(id));
    let target = host_ix(host).map_err(|_| FocusError::UnknownHost(host.to_owned()))?;

    // Dependencies point at earlier moves: one backward pass closes the set.
    let mut keep: Vec<bool> = plan.migrations.iter().map(|m| m.source == host).collect();
    for i in (0..keep.len()).rev() {
        if keep[i] {
            for &d in &plan.migrations[i].depends_on {
                keep[d] = true;
            }
        }
    }

    let mut sequence = Sequence::new(&cluster, true);
    let before = sequence.figures();
    let utilization_before = sequence.utilization(target);
    for m in plan
        .migrations
        .iter()
        .zip(&keep)
        .filter_map(|(m, k)| k.then_some(m))
    {
        let vm = cluster
            .vms
            .binary_search_by(|v| v.id.as_str().cmp(&m.vm))
            .map_err(|_| FocusError::UnknownVm(m.vm.clone()))?;
        let to =
            host_ix(&m.destination).map_err(|_| FocusError::UnknownHost(m.destination.clone()))?;
        sequence
            .check(vm, to)
            .map_err(|rejection| FocusError::Infeasible {
                vm: m.vm.clone(),
                host: m.destination.clone(),
                rejection,
            })?;
        sequence.push(vm, to, m.reason.clone());
    }
    let utilization = Change {
        before: utilization_before,
        after: sequence.utilization(target),
    };
    let unplaced = plan
        .unplaced
        .iter()
        .filter(|u| u.host == host)
        .cloned()
        .collect();
    Ok(HostRelief {
        plan: sequence.finish(plan.mode, unplaced, before),
        utilization,
        threshold: cluster.hosts[target].threshold,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::planner::{
        Host, HostState, Migration, MoveKind, MoveReason, PlanMode, Vm, failover, rebalance,
        verify::verify,
    };

    const GIB: u64 = 1 << 30;

    fn host(id: &str, busy: f64, state: HostState) -> Host {
        Host {
            id: id.into(),
            cores: 10,
            memory_bytes: 64 * GIB,
            cpu_samples: vec![busy],
            memory_samples: Vec::new(),
            state,
            cpu_threshold: None,
            headroom: None,
        }
    }

    fn vm(id: &str, host: &str, cpu: f64) -> Vm {
        Vm {
            id: id.into(),
            host: host.into(),
            vcpus: 4,
            memory_bytes: 4 * GIB,
            cpu_samples: vec![cpu],
            memory_samples: Vec::new(),
            tenant: String::new(),
            labels: BTreeMap::new(),
            priority: 0,
        }
    }

    /// Two overloaded hosts (a, c) and two idle ones.
    fn two_hot_hosts() -> ClusterSnapshot {
        let h = HostState::Healthy;
        let mut vms = Vec::new();
        for (host, n) in [("a", 4), ("c", 4)] {
            for i in 0..n {
                vms.push(vm(&format!("{host}-{i}"), host, 2.2));
            }
        }
        ClusterSnapshot {
            hosts: vec![
                host("a", 8.8, h),
                host("b", 0.5, h),
                host("c", 8.8, h),
                host("d", 0.5, h),
            ],
            vms,
            constraints: Default::default(),
        }
    }

    #[test]
    fn only_the_named_hosts_moves_are_kept_and_figures_recomputed() {
        let s = two_hot_hosts();
        let settings = PlannerSettings::default();
        let full = rebalance(&s, &settings).unwrap();
        assert!(full.migrations.iter().any(|m| m.source == "a"));
        assert!(full.migrations.iter().any(|m| m.source == "c"));
        let relief = relieve(&s, &settings, &full, "a").unwrap();
        let p = &relief.plan;
        assert!(!p.migrations.is_empty());
        assert!(p.migrations.iter().all(|m| m.source == "a"), "{p:#?}");
        assert!(relief.utilization.before > 0.8 && relief.utilization.after <= 0.8);
        assert_eq!(relief.threshold, 0.8);
        assert_eq!(p.before, full.before);
        assert!(
            p.after.spread > full.after.spread,
            "c is still hot: the narrowed plan narrows the spread less"
        );
        assert_eq!(p.after.hosts_over_threshold, 1, "c is still over");
        verify(&s, &settings, p).expect("the narrowed plan is feasible");
        let last = p.migrations.last().unwrap();
        assert_eq!(
            last.source_utilization.after, relief.utilization.after,
            "explanations describe the narrowed plan"
        );
    }

    /// A hand-made step: `relieve` rebuilds everything but the order,
    /// the VM, the hosts, the reason and the dependencies.
    fn step(vm: &str, from: &str, to: &str, depends_on: Vec<usize>) -> Migration {
        let zero = Change {
            before: 0.0,
            after: 0.0,
        };
        Migration {
            vm: vm.into(),
            source: from.into(),
            destination: to.into(),
            kind: MoveKind::Live,
            depends_on,
            cpu_cores: 0.0,
            memory_bytes: 0,
            bytes_to_copy: 0,
            reason: MoveReason::OverThreshold { threshold: 0.8 },
            source_utilization: zero,
            destination_utilization: zero,
        }
    }

    #[test]
    fn a_move_the_kept_ones_wait_for_is_kept_too() {
        // a-1 fits on b only once b-0 has left for d: that move is kept
        // although it is not a's; e's move to d is not.
        let h = HostState::Healthy;
        let s = ClusterSnapshot {
            hosts: vec![
                host("a", 9.5, h),
                host("b", 8.0, h),
                host("d", 0.0, h),
                host("e", 0.5, h),
            ],
            vms: vec![
                vm("a-0", "a", 4.5),
                vm("a-1", "a", 5.0),
                vm("b-0", "b", 8.0),
                vm("e-0", "e", 0.5),
            ],
            constraints: Default::default(),
        };
        let settings = PlannerSettings::default();
        let figures = rebalance(&s, &settings).unwrap().before;
        let plan = MigrationPlan {
            mode: PlanMode::Rebalance,
            migrations: vec![
                step("b-0", "b", "d", vec![]),
                step("e-0", "e", "d", vec![]),
                step("a-1", "a", "b", vec![0]),
            ],
            unplaced: Vec::new(),
            before: figures,
            after: figures,
        };
        verify(&s, &settings, &plan).expect("the hand-made plan is feasible");
        let relief = relieve(&s, &settings, &plan, "a").unwrap();
        let kept: Vec<(&str, &[usize])> = relief
            .plan
            .migrations
            .iter()
            .map(|m| (m.vm.as_str(), m.depends_on.as_slice()))
            .collect();
        assert_eq!(kept, [("b-0", &[][..]), ("a-1", &[0][..])]);
        verify(&s, &settings, &relief.plan).unwrap();
        assert_eq!(relief.utilization.before, 0.95);
        assert_eq!(relief.utilization.after, 0.45);
        let none = relieve(&s, &settings, &plan, "d").unwrap();
        assert!(none.plan.migrations.is_empty(), "nothing leaves d");
        assert_eq!(none.utilization.before, none.utilization.after);
    }

    #[test]
    fn a_failover_is_narrowed_to_one_failed_host() {
        let mut s = two_hot_hosts();
        s.hosts[0].state = HostState::Failed;
        s.hosts[2].state = HostState::Failed;
        for v in &mut s.vms {
            v.cpu_samples = vec![0.5];
        }
        let settings = PlannerSettings::default();
        let full = failover(&s, &settings).unwrap();
        assert_eq!(full.migrations.len(), 8);
        let relief = relieve(&s, &settings, &full, "c").unwrap();
        assert_eq!(relief.plan.migrations.len(), 4);
        assert!(
            relief
                .plan
                .migrations
                .iter()
                .all(|m| m.source == "c" && m.kind == MoveKind::Restart)
        );
        verify(&s, &settings, &relief.plan).unwrap();
    }

    #[test]
    fn unknown_names_are_errors() {
        let s = two_hot_hosts();
        let settings = PlannerSettings::default();
        let full = rebalance(&s, &settings).unwrap();
        assert_eq!(
            relieve(&s, &settings, &full, "zz").unwrap_err(),
            FocusError::UnknownHost("zz".into())
        );
        let mut other = s.clone();
        other.vms.retain(|v| v.host != "a");
        assert!(matches!(
            relieve(&other, &settings, &full, "a").unwrap_err(),
            FocusError::UnknownVm(_)
        ));
    }
}
