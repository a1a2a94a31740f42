//! Rebalance mode: empty maintenance hosts, return pinned VMs, then bring
//! every host under its threshold and the spread under its target with few
//! migrations and few bytes copied (the last part in `balance`).

use super::{
    PlannerError, PlannerSettings,
    balance::balance,
    cluster::{Cluster, VmIx},
    placement::{claim_order, preferred_hosts, why_unplaced},
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
    let waiting = mandatory_moves(&mut sequence, must_move(&cluster));
    let budget = settings.max_migrations.unwrap_or(usize::MAX);
    balance(&mut sequence, settings.spread_target, budget);
    // Balancing may have freed room on a pinned VM's host.
    let waiting = mandatory_moves(&mut sequence, waiting);
    let unplaced = waiting
        .into_iter()
        .map(|vm| {
            let v = &cluster.vms[vm];
            Unplaced {
                vm: v.id.clone(),
                host: cluster.hosts[v.host].id.clone(),
                priority: v.priority,
                reason: why_unplaced(&cluster, &sequence.loads, vm),
            }
        })
        .collect();
    Ok(sequence.finish(PlanMode::Rebalance, unplaced, before))
}

/// The VMs that have to move: every pinned VM not on its host, then every
/// VM of a maintenance host, each in claim order.
fn must_move(cluster: &Cluster) -> Vec<VmIx> {
    let (returning, evacuating): (Vec<VmIx>, Vec<VmIx>) = (0..cluster.vms.len())
        .filter(|&vm| {
            let v = &cluster.vms[vm];
            match cluster.hosts[v.host].state {
                HostState::Maintenance => true,
                HostState::Healthy => v.pin.is_some_and(|pin| pin != v.host),
                HostState::Failed | HostState::Stopped => false,
            }
        })
        .partition(|&vm| cluster.hosts[cluster.vms[vm].host].state == HostState::Healthy);
    // Pinned VMs going home first: each has one possible host, and leaving
    // frees room for the VMs that can go anywhere.
    let mut order = claim_order(cluster, returning);
    order.extend(claim_order(cluster, evacuating));
    order
}

/// Moves what it can of `waiting` (in claim order), in passes until nothing
/// more moves: a pinned VM going home frees room that a VM leaving
/// maintenance may need. Returns the VMs still waiting.
fn mandatory_moves(sequence: &mut Sequence<'_>, mut waiting: Vec<VmIx>) -> Vec<VmIx> {
    let cluster = sequence.cluster;
    loop {
        let mut still = Vec::new();
        for &vm in &waiting {
            let Some(&host) = preferred_hosts(cluster, &sequence.loads, vm, None, 1).first() else {
                still.push(vm);
                continue;
            };
            let reason = if cluster.hosts[cluster.vms[vm].host].state == HostState::Maintenance {
                MoveReason::Maintenance
            } else {
                MoveReason::ReturnToPin
            };
            sequence.push(vm, host, reason);
        }
        if still.len() == waiting.len() {
            return still;
        }
        waiting = still;
    }
}
