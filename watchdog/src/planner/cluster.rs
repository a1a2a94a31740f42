//! The snapshot indexed for planning: hosts and VMs by position (sorted by
//! id, so input order never changes a plan), usage reduced to percentiles,
//! and the one feasibility check every placement goes through.

use std::collections::BTreeMap;

use super::{
    PlannerError, PlannerSettings,
    plan::{Rejection, Resource},
    snapshot::{ClusterSnapshot, HostState},
};

/// Index of a host in [`Cluster::hosts`].
pub type HostIx = usize;
/// Index of a VM in [`Cluster::vms`].
pub type VmIx = usize;

/// Static facts about a host, derived once from the snapshot.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub id: String,
    pub state: HostState,
    pub cores: f64,
    /// Busy cores allowed (cores minus headroom).
    pub cpu_capacity: f64,
    /// Allocatable memory, bytes (memory minus headroom).
    pub memory_capacity: u64,
    /// vCPUs allowed, when an allocation ratio is set.
    pub vcpu_capacity: Option<f64>,
    pub threshold: f64,
    /// Reservations held on this host, one per tenant (summed), sorted by
    /// tenant: (tenant, cores, bytes).
    pub reservations: Vec<(u32, f64, u64)>,
}

/// Static facts about a VM.
#[derive(Debug, Clone)]
pub struct VmInfo {
    pub id: String,
    /// The host it is on in the snapshot.
    pub host: HostIx,
    /// Busy cores (percentile over the window).
    pub cpu: f64,
    /// Allocated memory, bytes.
    pub memory: u64,
    /// Resident memory, bytes (percentile): what a live migration copies.
    pub resident: u64,
    pub vcpus: u32,
    pub tenant: u32,
    /// Anti-affinity groups it belongs to.
    pub groups: Vec<u32>,
    pub priority: i32,
    pub pin: Option<HostIx>,
    pub unmovable: Option<String>,
}

/// What occupies one host: the sums the feasibility check compares with the
/// host's capacity.
#[derive(Debug, Clone, Default)]
pub struct HostLoad {
    /// Busy cores, hypervisor overhead included.
    pub cpu: f64,
    /// Allocated memory plus the hypervisor's own, bytes.
    pub memory: u64,
    pub vcpus: u32,
    /// Per reservation of the host (same order as `HostInfo::reservations`):
    /// what the reserving tenant's VMs use here.
    pub reserved_use: Vec<(f64, u64)>,
    /// Anti-affinity groups present, with how many members.
    pub groups: Vec<(u32, u32)>,
}

/// The indexed snapshot.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub hosts: Vec<HostInfo>,
    pub vms: Vec<VmInfo>,
    pub group_names: Vec<String>,
    pub tenant_names: Vec<String>,
    /// The load of every host as in the snapshot (VMs of failed hosts are
    /// not counted anywhere: they are not running).
    pub initial: Vec<HostLoad>,
}

impl Cluster {
    /// Indexes and validates `snapshot`; errors name the offending entry.
    pub fn new(
        snapshot: &ClusterSnapshot,
        settings: &PlannerSettings,
    ) -> Result<Self, PlannerError> {
        super::index::build(snapshot, settings)
    }

    /// Adds `vm` to `load`, the load of `host`.
    pub fn add(&self, vm: VmIx, load: &mut HostLoad, host: HostIx) {
        let v = &self.vms[vm];
        load.cpu += v.cpu;
        load.memory += v.memory;
        load.vcpus += v.vcpus;
        for (n, &(tenant, _, _)) in self.hosts[host].reservations.iter().enumerate() {
            if tenant == v.tenant {
                load.reserved_use[n].0 += v.cpu;
                load.reserved_use[n].1 += v.memory;
            }
        }
        for &g in &v.groups {
            match load.groups.iter_mut().find(|(group, _)| *group == g) {
                Some((_, count)) => *count += 1,
                None => load.groups.push((g, 1)),
            }
        }
    }

    /// Removes `vm` from `load`, the load of `host`.
    pub fn remove(&self, vm: VmIx, load: &mut HostLoad, host: HostIx) {
        let v = &self.vms[vm];
        load.cpu = (load.cpu - v.cpu).max(0.0);
        load.memory = load.memory.saturating_sub(v.memory);
        load.vcpus = load.vcpus.saturating_sub(v.vcpus);
        for (n, &(tenant, _, _)) in self.hosts[host].reservations.iter().enumerate() {
            if tenant == v.tenant {
                load.reserved_use[n].0 = (load.reserved_use[n].0 - v.cpu).max(0.0);
                load.reserved_use[n].1 = load.reserved_use[n].1.saturating_sub(v.memory);
            }
        }
        for &g in &v.groups {
            if let Some((_, count)) = load.groups.iter_mut().find(|(group, _)| *group == g) {
                *count = count.saturating_sub(1);
            }
        }
        load.groups.retain(|&(_, count)| count > 0);
    }

    /// Whether `vm` may start running on `host`, whose current load is
    /// `load`: the host is healthy and allowed for the VM, and with the VM
    /// added, CPU, memory and vCPUs stay within capacity, other tenants'
    /// reservations stay whole, and no anti-affinity partner is there.
    pub fn check(&self, vm: VmIx, host: HostIx, load: &HostLoad) -> Result<(), Rejection> {
        let v = &self.vms[vm];
        let h = &self.hosts[host];
        if h.state != HostState::Healthy {
            return Err(Rejection::NotHealthy { state: h.state });
        }
        if let Some(pin) = v.pin.filter(|&pin| pin != host) {
            return Err(Rejection::Pinned {
                host: self.hosts[pin].id.clone(),
            });
        }
        if let Some(&(g, _)) = load.groups.iter().find(|(g, _)| v.groups.contains(g)) {
            return Err(Rejection::AntiAffinity {
                group: self.group_names[g as usize].clone(),
            });
        }
        // What the reservations still hold back beyond their tenant's use,
        // with the VM counted towards its own tenant's reservation.
        let (mut held_cpu, mut held_memory) = (0.0, 0u64);
        for (&(tenant, cpu, memory), &(used_cpu, used_memory)) in
            h.reservations.iter().zip(&load.reserved_use)
        {
            let (add_cpu, add_memory) = if tenant == v.tenant {
                (v.cpu, v.memory)
            } else {
                (0.0, 0)
            };
            held_cpu += (cpu - used_cpu - add_cpu).max(0.0);
            held_memory += memory.saturating_sub(used_memory + add_memory);
        }
        let memory = load.memory + v.memory;
        if memory > h.memory_capacity {
            return Err(Rejection::Capacity {
                resource: Resource::Memory,
                needed: v.memory as f64,
                free: h.memory_capacity.saturating_sub(load.memory) as f64,
            });
        }
        if memory + held_memory > h.memory_capacity {
            return Err(self.reserved_by_other(host, v.tenant, Resource::Memory));
        }
        let cpu = load.cpu + v.cpu;
        if cpu > h.cpu_capacity + CAPACITY_EPSILON {
            return Err(Rejection::Capacity {
                resource: Resource::Cpu,
                needed: v.cpu,
                free: (h.cpu_capacity - load.cpu).max(0.0),
            });
        }
        if cpu + held_cpu > h.cpu_capacity + CAPACITY_EPSILON {
            return Err(self.reserved_by_other(host, v.tenant, Resource::Cpu));
        }
        if let Some(cap) = h.vcpu_capacity
            && f64::from(load.vcpus + v.vcpus) > cap
        {
            return Err(Rejection::Capacity {
                resource: Resource::Vcpus,
                needed: f64::from(v.vcpus),
                free: (cap - f64::from(load.vcpus)).max(0.0),
            });
        }
        Ok(())
    }

    fn reserved_by_other(&self, host: HostIx, tenant: u32, resource: Resource) -> Rejection {
        let holder = self.hosts[host]
            .reservations
            .iter()
            .find(|r| r.0 != tenant)
            .map_or(tenant, |r| r.0);
        Rejection::Reserved {
            tenant: self.tenant_names[holder as usize].clone(),
            resource,
        }
    }

    /// Utilization of `host` under `load`: busy cores / cores.
    pub fn utilization(&self, host: HostIx, load: &HostLoad) -> f64 {
        load.cpu / self.hosts[host].cores
    }

    /// Hosts that count in the spread: the healthy ones (maintenance hosts
    /// are being emptied, failed ones run nothing).
    pub fn active_hosts(&self) -> impl Iterator<Item = HostIx> + '_ {
        (0..self.hosts.len()).filter(|&h| self.hosts[h].state == HostState::Healthy)
    }

    /// Counts of the reasons each host refuses `vm` under `loads`.
    /// The host the VM is on is left out: staying is not a placement.
    pub fn rejections(
        &self,
        vm: VmIx,
        loads: &[HostLoad],
    ) -> BTreeMap<super::plan::RejectionKind, usize> {
        let mut counts = BTreeMap::new();
        for (host, load) in loads.iter().enumerate() {
            if host == self.vms[vm].host {
                continue;
            }
            if let Err(why) = self.check(vm, host, load) {
                *counts.entry(why.kind()).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// Float slack in CPU comparisons: sums of f64 loads taken in different
/// orders differ in the last bits; a billionth of a core is far below any
/// measurement's precision.
pub const CAPACITY_EPSILON: f64 = 1e-9;

/// A move must lower the sum of squared utilizations by more than this:
/// swapping two hosts' utilizations gains exactly nothing, but rounding
/// can make it look like a gain of 1e-16.
pub const GAIN_EPSILON: f64 = 1e-9;

/// A utilization ordered by `f64::total_cmp`, for heaps and ordered sets
/// of hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Utilization(pub f64);

impl Eq for Utilization {}

impl PartialOrd for Utilization {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Utilization {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
