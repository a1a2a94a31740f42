//! Rebalance mode: empty maintenance hosts, return pinned VMs, then bring
//! every host under its threshold and the spread under its target with few
//! migrations and few bytes copied (the last part in `balance`).

use super::{
    PlannerError, PlannerSettings,
    balance::balance,
    cluster::{Cluster, VmIx},
    placement::{best_host, claim_order},
    plan::{MigrationPlan, MoveReason, PlanMode, Unplaced},
    sequence::{Sequence, figures},
    snapshot::{ClusterSnapshot, HostState},
};

/// Plans a rebalance of the cluster.
pub fn rebalance(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
) -> Result<MigrationPlan, PlannerError> {
    let cluster = Cluster::new(snapshot, settings)?;
    let before = figures(&cluster, &cluster.initial);
    let mut sequence = Sequence::new(&cluster, true);
    let unplaced = mandatory_moves(&mut sequence);
    let budget = settings.max_migrations.unwrap_or(usize::MAX);
    balance(&mut sequence, settings.spread_target, budget);
    Ok(sequence.finish(PlanMode::Rebalance, unplaced, before))
}

/// Moves every VM off maintenance hosts and every pinned VM back to its
/// host; returns the ones that cannot go.
fn mandatory_moves(sequence: &mut Sequence<'_>) -> Vec<Unplaced> {
    let cluster = sequence.cluster;
    let must_move: Vec<VmIx> = (0..cluster.vms.len())
        .filter(|&vm| {
            let v = &cluster.vms[vm];
            match cluster.hosts[v.host].state {
                HostState::Maintenance => true,
                HostState::Healthy => v.pin.is_some_and(|pin| pin != v.host),
                HostState::Failed => false,
            }
        })
        .collect();
    let mut unplaced = Vec::new();
    for vm in claim_order(sequence, must_move) {
        let v = &cluster.vms[vm];
        let reason = if cluster.hosts[v.host].state == HostState::Maintenance {
            MoveReason::Maintenance
        } else {
            MoveReason::ReturnToPin
        };
        match best_host(sequence, vm) {
            Ok(host) => sequence.push(vm, host, reason),
            Err(why) => unplaced.push(Unplaced {
                vm: v.id.clone(),
                host: cluster.hosts[v.host].id.clone(),
                priority: v.priority,
                reason: why,
                after_migrations: sequence.len(),
            }),
        }
    }
    unplaced
}
