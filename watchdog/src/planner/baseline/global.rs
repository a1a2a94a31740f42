//! The global greedy baseline, stronger than Watcher: each iteration
//! searches every VM of every host against the current cluster and makes
//! the single migration that most reduces the standard deviation of host
//! utilization, until the spread meets the target, no migration reduces it,
//! or `max_iterations` is hit.
//!
//! Watcher's `workload_stabilization` ([`super::watcher`]) ranks its
//! candidates once per audit against the cluster as it was; this one
//! re-ranks after every move, which is what makes it the stronger (and on
//! large clusters the far slower) of the two. The destination tried is the
//! coolest host that accepts the VM, which is the spread-optimal one when
//! hosts have equal cores. Like the planner, it moves a VM at most once.

use std::collections::BTreeSet;

use super::{
    super::{
        PlannerError, PlannerSettings,
        cluster::{Cluster, GAIN_EPSILON, HostIx, Utilization, VmIx},
        plan::{MoveReason, PlanMode},
        sequence::{Sequence, figures},
        snapshot::ClusterSnapshot,
    },
    BaselineRun,
};

/// Runs the greedy balancer on `snapshot`.
pub fn greedy_rebalance(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
    max_iterations: usize,
) -> Result<BaselineRun, PlannerError> {
    let cluster = Cluster::new(snapshot, settings)?;
    let before = figures(&cluster, &cluster.initial);
    let mut sequence = Sequence::new(&cluster, true);
    // Healthy hosts by utilization: the hottest are the best sources, the
    // coolest the best destinations.
    let mut by_load: BTreeSet<(Utilization, HostIx)> = cluster
        .active_hosts()
        .map(|h| (Utilization(sequence.utilization(h)), h))
        .collect();
    let mut on_host: Vec<Vec<VmIx>> = vec![Vec::new(); cluster.hosts.len()];
    for (vm, v) in cluster.vms.iter().enumerate() {
        if sequence.location[vm] == Some(v.host) && v.unmovable.is_none() && v.pin.is_none() {
            on_host[v.host].push(vm);
        }
    }
    let mut iterations = 0;
    while sequence.spread() > settings.spread_target && iterations < max_iterations {
        iterations += 1;
        let Some((gain, vm, from, to)) = best_move(&sequence, &by_load, &on_host) else {
            break;
        };
        by_load.remove(&(Utilization(sequence.utilization(from)), from));
        by_load.remove(&(Utilization(sequence.utilization(to)), to));
        sequence.push(
            vm,
            to,
            MoveReason::Spread {
                gain,
                target: settings.spread_target,
            },
        );
        by_load.insert((Utilization(sequence.utilization(from)), from));
        by_load.insert((Utilization(sequence.utilization(to)), to));
        on_host[from].retain(|&v| v != vm);
    }
    let capped = iterations >= max_iterations && sequence.spread() > settings.spread_target;
    Ok(BaselineRun {
        plan: sequence.finish(PlanMode::Rebalance, Vec::new(), before),
        rounds: iterations,
        capped,
    })
}

/// The feasible migration that most reduces the sum of squared
/// utilizations (with equal cores, the variance), if any reduces it.
fn best_move(
    sequence: &Sequence<'_>,
    by_load: &BTreeSet<(Utilization, HostIx)>,
    on_host: &[Vec<VmIx>],
) -> Option<(f64, VmIx, HostIx, HostIx)> {
    let cluster = sequence.cluster;
    let coolest = by_load.first()?.0.0;
    let mut best: Option<(f64, VmIx, HostIx, HostIx)> = None;
    for &(Utilization(ua), from) in by_load.iter().rev() {
        // No VM of this host or any cooler one can gain more than moving
        // half the gap to the coolest host.
        if best.is_some_and(|(gain, ..)| (ua - coolest).powi(2) / 2.0 <= gain) {
            break;
        }
        for &vm in &on_host[from] {
            if sequence.moved[vm] {
                continue;
            }
            for &(Utilization(ub), to) in by_load.iter().filter(|&&(_, h)| h != from) {
                let (ya, yb) = (
                    cluster.vms[vm].cpu / cluster.hosts[from].cores,
                    cluster.vms[vm].cpu / cluster.hosts[to].cores,
                );
                let gain = ua * ua - (ua - ya).powi(2) + ub * ub - (ub + yb).powi(2);
                if gain <= best.map_or(GAIN_EPSILON, |b| b.0) {
                    break; // cooler destinations were better; warmer ones are worse
                }
                if sequence.check(vm, to).is_ok() {
                    best = Some((gain, vm, from, to));
                    break;
                }
            }
        }
    }
    best
}
