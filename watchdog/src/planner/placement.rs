//! Finding a host for a VM that has to move (its host failed or is in
//! maintenance, or it is pinned elsewhere): the host that takes it and ends
//! least utilized, so a failover does not create the next hot spot.

use super::{
    cluster::{HostIx, VmIx},
    plan::UnplacedReason,
    sequence::Sequence,
};

/// The host `vm` should go to now, or why there is none.
pub fn best_host(sequence: &Sequence<'_>, vm: VmIx) -> Result<HostIx, UnplacedReason> {
    let cluster = sequence.cluster;
    let v = &cluster.vms[vm];
    if let Some(because) = &v.unmovable {
        return Err(UnplacedReason::Unmovable {
            because: because.clone(),
        });
    }
    if let Some(pin) = v.pin {
        return match sequence.check(vm, pin) {
            Ok(()) => Ok(pin),
            Err(rejection) => Err(UnplacedReason::PinnedTo {
                host: cluster.hosts[pin].id.clone(),
                rejection,
            }),
        };
    }
    let mut best: Option<(f64, HostIx)> = None;
    for host in cluster.active_hosts() {
        if sequence.location[vm] == Some(host) {
            continue;
        }
        let after = sequence.utilization(host) + v.cpu / cluster.hosts[host].cores;
        // Ties go to the lower index: the plan must not depend on anything
        // but the snapshot.
        if best.is_none_or(|(u, _)| after < u) && sequence.check(vm, host).is_ok() {
            best = Some((after, host));
        }
    }
    best.map(|(_, host)| host)
        .ok_or_else(|| UnplacedReason::NoFeasibleHost {
            rejections: cluster.rejections(vm, &sequence.loads),
        })
}

/// VMs in the order they claim hosts: highest priority first, then the
/// biggest (they are the hardest to fit), then by id.
pub fn claim_order(sequence: &Sequence<'_>, mut vms: Vec<VmIx>) -> Vec<VmIx> {
    let cluster = sequence.cluster;
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
