//! Finding hosts for a VM that has to move (its host failed or is in
//! maintenance, or it is pinned elsewhere): preferably the host that ends
//! least utilized, so a failover does not create the next hot spot.

use super::{
    cluster::{Cluster, HostIx, HostLoad, VmIx},
    plan::UnplacedReason,
};

/// Up to `limit` hosts that accept `vm` under `loads`, best first (least
/// utilized after taking it, then lowest index), never the host in `skip`.
/// A pinned VM only ever gets its pin host; an unmovable one none.
pub fn preferred_hosts(
    cluster: &Cluster,
    loads: &[HostLoad],
    vm: VmIx,
    skip: Option<HostIx>,
    limit: usize,
) -> Vec<HostIx> {
    let v = &cluster.vms[vm];
    if v.unmovable.is_some() {
        return Vec::new();
    }
    if let Some(pin) = v.pin {
        let accepts = Some(pin) != skip && cluster.check(vm, pin, &loads[pin]).is_ok();
        return if accepts { vec![pin] } else { Vec::new() };
    }
    // The best `limit` so far, sorted; ties keep the lower index first, so
    // the choice depends on nothing but the snapshot.
    let mut best: Vec<(f64, HostIx)> = Vec::with_capacity(limit + 1);
    for host in cluster.active_hosts() {
        if Some(host) == skip {
            continue;
        }
        let after = cluster.utilization(host, &loads[host]) + v.cpu / cluster.hosts[host].cores;
        if best.len() == limit && best.last().is_some_and(|&(u, _)| after >= u) {
            continue;
        }
        if cluster.check(vm, host, &loads[host]).is_ok() {
            let at = best.partition_point(|&(u, _)| u <= after);
            best.insert(at, (after, host));
            best.truncate(limit);
        }
    }
    best.into_iter().map(|(_, host)| host).collect()
}

/// Why no host takes `vm` under `loads`.
pub fn why_unplaced(cluster: &Cluster, loads: &[HostLoad], vm: VmIx) -> UnplacedReason {
    let v = &cluster.vms[vm];
    if let Some(because) = &v.unmovable {
        return UnplacedReason::Unmovable {
            because: because.clone(),
        };
    }
    if let Some(pin) = v.pin {
        // None only if the pin host would take the VM after all.
        let rejection = cluster.check(vm, pin, &loads[pin]).err();
        return UnplacedReason::PinnedTo {
            host: cluster.hosts[pin].id.clone(),
            rejection,
        };
    }
    UnplacedReason::NoFeasibleHost {
        rejections: cluster.rejections(vm, loads),
    }
}

/// VMs in the order they claim hosts: highest priority first, then the
/// biggest (they are the hardest to fit), then by id.
pub fn claim_order(cluster: &Cluster, mut vms: Vec<VmIx>) -> Vec<VmIx> {
    vms.sort_by(|&a, &b| {
        let (va, vb) = (&cluster.vms[a], &cluster.vms[b]);
        vb.priority
            .cmp(&va.priority)
            .then(vb.memory.cmp(&va.memory))
            .then(vb.cpu.total_cmp(&va.cpu))
            .then(a.cmp(&b))
    });
    vms
}
