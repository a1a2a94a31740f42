//! Failover mode: every VM of every failed host is placed at once, highest
//! priority first, on healthy hosts with room, honouring every constraint;
//! the ones that fit nowhere are reported with the reasons.

use super::{
    PlannerError, PlannerSettings,
    cluster::Cluster,
    placement::{best_host, claim_order},
    plan::{MigrationPlan, MoveReason, PlanMode, Unplaced},
    sequence::Sequence,
    snapshot::{ClusterSnapshot, HostState},
};

/// Plans the restart of the failed hosts' VMs.
pub fn failover(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
) -> Result<MigrationPlan, PlannerError> {
    let cluster = Cluster::new(snapshot, settings)?;
    let mut sequence = Sequence::new(&cluster, true);
    let before = sequence.figures();
    let stranded = (0..cluster.vms.len())
        .filter(|&vm| cluster.hosts[cluster.vms[vm].host].state == HostState::Failed)
        .collect();
    let mut unplaced = Vec::new();
    for vm in claim_order(&sequence, stranded) {
        match best_host(&sequence, vm) {
            Ok(host) => sequence.push(vm, host, MoveReason::Failover),
            Err(reason) => {
                let v = &cluster.vms[vm];
                unplaced.push(Unplaced {
                    vm: v.id.clone(),
                    host: cluster.hosts[v.host].id.clone(),
                    priority: v.priority,
                    reason,
                    after_migrations: sequence.len(),
                });
            }
        }
    }
    Ok(sequence.finish(PlanMode::Failover, unplaced, before))
}
