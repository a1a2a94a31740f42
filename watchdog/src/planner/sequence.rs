//! Building a plan one move at a time: the cluster as it is after the moves
//! so far, and for each new move the earlier moves it must wait for.
//!
//! Why the dependencies make every concurrent execution safe: a VM in
//! flight occupies both hosts, and a source is only freed when its move
//! completes. Take any moment of an execution and a destination `d`; let `k`
//! be the latest (in plan order) move into `d` that has started. The VMs on
//! `d` are then at most its snapshot VMs, plus moves into `d` up to `k`,
//! minus the moves out of `d` that `k` waited for. Each move `k` is given
//! exactly enough of the earlier moves out of its destination (in plan
//! order) for that set to fit, so the moment is feasible. Every constraint
//! (capacity, reservations, anti-affinity) only gets harder as VMs are
//! added, which is what makes "at most" enough. (For reservations this
//! needs one reservation per tenant and host: a VM of the tenant lowers what
//! is held back by at most its own size. `cluster` sums them.)

use super::{
    cluster::{Cluster, HostIx, HostLoad, VmIx},
    plan::{
        Change, ClusterFigures, Migration, MigrationPlan, MoveKind, MoveReason, PlanMode,
        Rejection, Unplaced,
    },
    snapshot::HostState,
};

/// One planned move, before it is spelled out as a [`Migration`].
#[derive(Debug, Clone)]
struct Step {
    vm: VmIx,
    from: HostIx,
    to: HostIx,
    reason: MoveReason,
    depends_on: Vec<usize>,
    source: Change,
    destination: Change,
}

/// The cluster after the moves so far.
#[derive(Debug)]
pub struct Sequence<'c> {
    pub cluster: &'c Cluster,
    /// Each host's load after the moves so far.
    pub loads: Vec<HostLoad>,
    /// Where each VM runs now; `None` while it is on a failed host.
    pub location: Vec<Option<HostIx>>,
    /// Whether the VM already moves in this plan (a VM moves at most once).
    pub moved: Vec<bool>,
    /// With dependency tracking: each host's snapshot load plus every move
    /// into it so far, nothing taken out.
    inbound_only: Option<Vec<HostLoad>>,
    /// With dependency tracking: per host, the steps moving VMs out of it.
    outbound: Vec<Vec<usize>>,
    steps: Vec<Step>,
    sum_u: f64,
    sum_u2: f64,
    active: usize,
}

impl<'c> Sequence<'c> {
    /// The cluster as in the snapshot. `track_dependencies` is off for trial
    /// runs whose steps are thrown away.
    pub fn new(cluster: &'c Cluster, track_dependencies: bool) -> Self {
        let location = cluster
            .vms
            .iter()
            .map(|v| (cluster.hosts[v.host].state != HostState::Failed).then_some(v.host))
            .collect();
        let mut sequence = Sequence {
            cluster,
            loads: cluster.initial.clone(),
            location,
            moved: vec![false; cluster.vms.len()],
            inbound_only: track_dependencies.then(|| cluster.initial.clone()),
            outbound: if track_dependencies {
                vec![Vec::new(); cluster.hosts.len()]
            } else {
                Vec::new()
            },
            steps: Vec::new(),
            sum_u: 0.0,
            sum_u2: 0.0,
            active: 0,
        };
        for h in cluster.active_hosts() {
            let u = sequence.utilization(h);
            sequence.sum_u += u;
            sequence.sum_u2 += u * u;
            sequence.active += 1;
        }
        sequence
    }

    pub fn utilization(&self, host: HostIx) -> f64 {
        self.cluster.utilization(host, &self.loads[host])
    }

    /// Whether `vm` may move to `host` now.
    pub fn check(&self, vm: VmIx, host: HostIx) -> Result<(), Rejection> {
        self.cluster.check(vm, host, &self.loads[host])
    }

    /// Standard deviation of utilization over the healthy hosts, kept up to
    /// date move by move.
    pub fn spread(&self) -> f64 {
        if self.active == 0 {
            return 0.0;
        }
        let n = self.active as f64;
        let mean = self.sum_u / n;
        (self.sum_u2 / n - mean * mean).max(0.0).sqrt()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Adds the move of `vm` to `to`; the caller has checked it fits.
    pub fn push(&mut self, vm: VmIx, to: HostIx, reason: MoveReason) {
        debug_assert!(self.check(vm, to).is_ok(), "planned move must fit");
        debug_assert!(!self.moved[vm], "a VM moves at most once per plan");
        let cluster = self.cluster;
        let from = cluster.vms[vm].host;
        let depends_on = self.dependencies(vm, to);
        let index = self.steps.len();
        if let Some(inbound) = &mut self.inbound_only {
            cluster.add(vm, &mut inbound[to], to);
            self.outbound[from].push(index);
        }
        let source_before = self.utilization(from);
        let destination_before = self.utilization(to);
        if self.location[vm].is_some() {
            cluster.remove(vm, &mut self.loads[from], from);
        }
        cluster.add(vm, &mut self.loads[to], to);
        self.location[vm] = Some(to);
        self.moved[vm] = true;
        let source_after = self.utilization(from);
        let destination_after = self.utilization(to);
        for (host, before, after) in [
            (from, source_before, source_after),
            (to, destination_before, destination_after),
        ] {
            if cluster.hosts[host].state == HostState::Healthy {
                self.sum_u += after - before;
                self.sum_u2 += after * after - before * before;
            }
        }
        self.steps.push(Step {
            vm,
            from,
            to,
            reason,
            depends_on,
            source: Change {
                before: source_before,
                after: source_after,
            },
            destination: Change {
                before: destination_before,
                after: destination_after,
            },
        });
    }

    /// The fewest earlier moves out of `to` (taken in plan order) whose
    /// completion leaves room for `vm` even if every earlier move into `to`
    /// has started.
    fn dependencies(&self, vm: VmIx, to: HostIx) -> Vec<usize> {
        let Some(inbound) = &self.inbound_only else {
            return Vec::new();
        };
        if self.cluster.check(vm, to, &inbound[to]).is_ok() {
            return Vec::new();
        }
        let mut load = inbound[to].clone();
        let mut depends_on = Vec::new();
        for &step in &self.outbound[to] {
            self.cluster.remove(self.steps[step].vm, &mut load, to);
            depends_on.push(step);
            if self.cluster.check(vm, to, &load).is_ok() {
                break;
            }
        }
        depends_on
    }

    /// Exact figures over the healthy hosts under the current loads.
    pub fn figures(&self) -> ClusterFigures {
        figures(self.cluster, &self.loads)
    }

    /// Spells the steps out as a plan.
    pub fn finish(
        self,
        mode: PlanMode,
        unplaced: Vec<Unplaced>,
        before: ClusterFigures,
    ) -> MigrationPlan {
        let after = self.figures();
        let cluster = self.cluster;
        let migrations = self
            .steps
            .into_iter()
            .map(|s| {
                let vm = &cluster.vms[s.vm];
                let kind = if cluster.hosts[s.from].state == HostState::Failed {
                    MoveKind::Restart
                } else {
                    MoveKind::Live
                };
                Migration {
                    vm: vm.id.clone(),
                    source: cluster.hosts[s.from].id.clone(),
                    destination: cluster.hosts[s.to].id.clone(),
                    kind,
                    depends_on: s.depends_on,
                    cpu_cores: vm.cpu,
                    memory_bytes: vm.memory,
                    bytes_to_copy: if kind == MoveKind::Live {
                        vm.resident
                    } else {
                        0
                    },
                    reason: s.reason,
                    source_utilization: s.source,
                    destination_utilization: s.destination,
                }
            })
            .collect();
        MigrationPlan {
            mode,
            migrations,
            unplaced,
            before,
            after,
        }
    }
}

/// Figures over the healthy hosts under `loads`.
pub fn figures(cluster: &Cluster, loads: &[HostLoad]) -> ClusterFigures {
    let utilization: Vec<(f64, f64)> = cluster
        .active_hosts()
        .map(|h| {
            (
                cluster.utilization(h, &loads[h]),
                cluster.hosts[h].threshold,
            )
        })
        .collect();
    if utilization.is_empty() {
        return ClusterFigures {
            spread: 0.0,
            mean_utilization: 0.0,
            max_utilization: 0.0,
            hosts_over_threshold: 0,
        };
    }
    let n = utilization.len() as f64;
    let mean = utilization.iter().map(|u| u.0).sum::<f64>() / n;
    let variance = utilization
        .iter()
        .map(|u| (u.0 - mean).powi(2))
        .sum::<f64>()
        / n;
    ClusterFigures {
        spread: variance.sqrt(),
        mean_utilization: mean,
        max_utilization: utilization.iter().map(|u| u.0).fold(0.0, f64::max),
        hosts_over_threshold: utilization.iter().filter(|(u, t)| u > t).count(),
    }
}
