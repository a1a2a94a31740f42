//! An independent replay of a plan against a snapshot: every constraint
//! checked on the destination at the moment each migration starts, with VMs
//! in flight counted on both hosts and sources freed only on completion.
//!
//! It shares nothing with the planner but the percentile function, so it
//! catches the planner's mistakes; the tests drive it through random
//! concurrent schedules. Run [`verify`] before executing a plan against a
//! fresher snapshot to learn whether the plan still holds.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    PlannerSettings,
    plan::{MigrationPlan, MoveKind},
    snapshot::{ClusterSnapshot, HostState},
    usage::percentile,
};

/// Slack for float sums taken in a different order than the planner's.
const CPU_SLACK: f64 = 1e-6;

/// A plan step that breaks a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("migration {index} ({vm}): {what}")]
pub struct Violation {
    pub index: usize,
    pub vm: String,
    pub what: String,
}

struct HostModel {
    state: HostState,
    cores: f64,
    cpu_capacity: f64,
    memory_capacity: f64,
    vcpu_capacity: Option<f64>,
    own_cpu: f64,
    own_memory: f64,
    reservations: Vec<(String, f64, f64)>,
}

struct VmModel {
    cpu: f64,
    memory: f64,
    vcpus: f64,
    tenant: String,
    groups: Vec<String>,
    pin: Option<String>,
    unmovable: bool,
}

/// The cluster while a plan runs.
pub struct Replay<'p> {
    plan: &'p MigrationPlan,
    hosts: BTreeMap<String, HostModel>,
    vms: BTreeMap<String, VmModel>,
    /// VMs occupying each host (a VM in flight occupies two).
    residents: BTreeMap<String, BTreeSet<String>>,
    /// Where each VM runs (its destination once started there).
    location: BTreeMap<String, String>,
    started: Vec<bool>,
    completed: Vec<bool>,
    /// How many migrations of the plan move each VM.
    moves_of: BTreeMap<String, usize>,
}

impl<'p> Replay<'p> {
    /// The snapshot's cluster, about to run `plan`. Ids the plan names must
    /// exist in the snapshot.
    pub fn new(
        snapshot: &ClusterSnapshot,
        settings: &PlannerSettings,
        plan: &'p MigrationPlan,
    ) -> Self {
        let p = settings.percentile;
        let c = &snapshot.constraints;
        let mut vms = BTreeMap::new();
        let mut residents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut location = BTreeMap::new();
        let mut vm_cpu_on: BTreeMap<&str, f64> = BTreeMap::new();
        let mut vm_resident_on: BTreeMap<&str, f64> = BTreeMap::new();
        let mut groups_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for g in &c.anti_affinity {
            for vm in &g.vms {
                let groups = groups_of.entry(vm).or_default();
                if !groups.contains(&g.name) {
                    groups.push(g.name.clone());
                }
            }
        }
        let failed: BTreeSet<&str> = snapshot
            .hosts
            .iter()
            .filter(|h| h.state == HostState::Failed)
            .map(|h| h.id.as_str())
            .collect();
        for v in &snapshot.vms {
            let cpu = percentile(&v.cpu_samples, p).unwrap_or(f64::from(v.vcpus));
            let resident = percentile(&v.memory_samples, p)
                .unwrap_or(v.memory_bytes)
                .min(v.memory_bytes);
            vms.insert(
                v.id.clone(),
                VmModel {
                    cpu,
                    memory: v.memory_bytes as f64,
                    vcpus: f64::from(v.vcpus),
                    tenant: v.tenant.clone(),
                    groups: c
                        .anti_affinity
                        .iter()
                        .filter(|g| g.vms.contains(&v.id))
                        .map(|g| g.name.clone())
                        .collect(),
                    pin: c.pinned.get(&v.id).cloned(),
                    unmovable: c.unmovable.contains_key(&v.id),
                },
            );
            location.insert(v.id.clone(), v.host.clone());
            if !failed.contains(v.host.as_str()) {
                residents
                    .entry(v.host.clone())
                    .or_default()
                    .insert(v.id.clone());
                *vm_cpu_on.entry(&v.host).or_default() += cpu;
                *vm_resident_on.entry(&v.host).or_default() += resident as f64;
            }
        }
        // Per host, per tenant, the sum of its reservations there.
        let mut reserved: BTreeMap<&str, BTreeMap<String, (f64, f64)>> = BTreeMap::new();
        for r in &c.reservations {
            let sum = reserved
                .entry(&r.host)
                .or_default()
                .entry(r.tenant.clone())
                .or_default();
            sum.0 += r.cpu_cores;
            sum.1 += r.memory_bytes as f64;
        }
        let mut hosts = BTreeMap::new();
        for h in &snapshot.hosts {
            let headroom = h.headroom.unwrap_or(c.headroom);
            let cores = f64::from(h.cores);
            let vm_cpu = vm_cpu_on.get(h.id.as_str()).copied().unwrap_or(0.0);
            let vm_resident = vm_resident_on.get(h.id.as_str()).copied().unwrap_or(0.0);
            hosts.insert(
                h.id.clone(),
                HostModel {
                    state: h.state,
                    cores,
                    cpu_capacity: cores * (1.0 - headroom.cpu_fraction),
                    memory_capacity: (h.memory_bytes as f64 * (1.0 - headroom.memory_fraction))
                        .floor(),
                    vcpu_capacity: c.cpu_allocation_ratio.map(|r| r * cores),
                    own_cpu: percentile(&h.cpu_samples, p)
                        .map_or(0.0, |busy| (busy - vm_cpu).max(0.0)),
                    own_memory: percentile(&h.memory_samples, p)
                        .map_or(0.0, |used| (used as f64 - vm_resident).max(0.0)),
                    reservations: reserved
                        .remove(h.id.as_str())
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(t, (c, m))| (t, c, m))
                        .collect(),
                },
            );
        }
        let mut moves_of = BTreeMap::new();
        for m in &plan.migrations {
            *moves_of.entry(m.vm.clone()).or_insert(0) += 1;
        }
        Replay {
            moves_of,
            plan,
            hosts,
            vms,
            residents,
            location,
            started: vec![false; plan.migrations.len()],
            completed: vec![false; plan.migrations.len()],
        }
    }

    /// Migrations whose dependencies have completed and that have not
    /// started.
    pub fn ready(&self) -> Vec<usize> {
        (0..self.plan.migrations.len())
            .filter(|&i| {
                !self.started[i]
                    && self.plan.migrations[i]
                        .depends_on
                        .iter()
                        .all(|&d| self.completed.get(d) == Some(&true))
            })
            .collect()
    }

    /// Migration `index` starts: the VM now occupies its destination too.
    pub fn start(&mut self, index: usize) -> Result<(), Violation> {
        let m = &self.plan.migrations[index];
        let fail = |what: String| Violation {
            index,
            vm: m.vm.clone(),
            what,
        };
        if self.started[index] {
            return Err(fail("started twice".to_owned()));
        }
        if let Some(&d) = m
            .depends_on
            .iter()
            .find(|&&d| self.completed.get(d) != Some(&true))
        {
            return Err(fail(format!(
                "starts before migration {d}, which it depends on, completed"
            )));
        }
        if self.moves_of.get(&m.vm).is_some_and(|&n| n > 1) {
            return Err(fail("the VM moves more than once in the plan".to_owned()));
        }
        let vm = self
            .vms
            .get(&m.vm)
            .ok_or_else(|| fail("VM not in the snapshot".to_owned()))?;
        let source = self
            .hosts
            .get(&m.source)
            .ok_or_else(|| fail(format!("source {} not in the snapshot", m.source)))?;
        if self.location.get(&m.vm) != Some(&m.source) {
            return Err(fail(format!("the VM is not on {}", m.source)));
        }
        if (source.state == HostState::Failed) != (m.kind == MoveKind::Restart) {
            return Err(fail(format!("{:?} from a {:?} host", m.kind, source.state)));
        }
        if vm.unmovable {
            return Err(fail("the VM is unmovable".to_owned()));
        }
        if vm.pin.as_ref().is_some_and(|pin| *pin != m.destination) {
            return Err(fail(format!(
                "the VM is pinned to {}",
                vm.pin.as_deref().unwrap_or_default()
            )));
        }
        self.residents
            .entry(m.destination.clone())
            .or_default()
            .insert(m.vm.clone());
        self.location.insert(m.vm.clone(), m.destination.clone());
        self.started[index] = true;
        self.host_problem(&m.destination, &m.vm)
            .map_or(Ok(()), |what| {
                Err(fail(format!("on {}: {what}", m.destination)))
            })
    }

    /// Migration `index` completes: the source copy is released.
    pub fn complete(&mut self, index: usize) {
        let m = &self.plan.migrations[index];
        if let Some(on_source) = self.residents.get_mut(&m.source) {
            on_source.remove(&m.vm);
        }
        self.completed[index] = true;
    }

    /// Why `vm` could not start on `host` now, if it could not.
    pub fn refusal(&self, vm: &str, host: &str) -> Option<String> {
        let mut with: BTreeSet<String> = self.residents.get(host).cloned().unwrap_or_default();
        if self.location.get(vm).map(String::as_str) == Some(host) {
            return Some("the VM is already there".to_owned());
        }
        if self
            .vms
            .get(vm)?
            .pin
            .as_deref()
            .is_some_and(|pin| pin != host)
        {
            return Some("pinned elsewhere".to_owned());
        }
        with.insert(vm.to_owned());
        self.problem(host, &with, vm)
    }

    fn host_problem(&self, host: &str, arriving: &str) -> Option<String> {
        self.problem(host, self.residents.get(host)?, arriving)
    }

    /// What is wrong with `host` running `residents` now that `arriving`
    /// (one of them) has joined, if anything.
    fn problem(&self, host: &str, residents: &BTreeSet<String>, arriving: &str) -> Option<String> {
        let Some(h) = self.hosts.get(host) else {
            return Some("host not in the snapshot".to_owned());
        };
        if h.state != HostState::Healthy {
            return Some(format!("host is {:?}", h.state));
        }
        let vms: Vec<&VmModel> = residents.iter().filter_map(|id| self.vms.get(id)).collect();
        let cpu = h.own_cpu + vms.iter().map(|v| v.cpu).sum::<f64>();
        let memory = h.own_memory + vms.iter().map(|v| v.memory).sum::<f64>();
        let vcpus = vms.iter().map(|v| v.vcpus).sum::<f64>();
        let (mut held_cpu, mut held_memory) = (0.0, 0.0);
        for (tenant, res_cpu, res_memory) in &h.reservations {
            let own = vms.iter().filter(|v| v.tenant == *tenant);
            let (used_cpu, used_memory) =
                own.fold((0.0, 0.0), |(c, m), v| (c + v.cpu, m + v.memory));
            held_cpu += (res_cpu - used_cpu).max(0.0);
            held_memory += (res_memory - used_memory).max(0.0);
        }
        if cpu + held_cpu > h.cpu_capacity + CPU_SLACK {
            return Some(format!(
                "CPU {cpu:.3} + reserved {held_cpu:.3} > capacity {:.3} of {} cores",
                h.cpu_capacity, h.cores
            ));
        }
        if memory + held_memory > h.memory_capacity {
            return Some(format!(
                "memory {memory} + reserved {held_memory} > capacity {}",
                h.memory_capacity
            ));
        }
        if let Some(cap) = h.vcpu_capacity
            && vcpus > cap
        {
            return Some(format!("{vcpus} vCPUs > {cap} allowed"));
        }
        // Only the arriving VM can break anti-affinity: partners that
        // already shared the host in the snapshot are not the plan's doing.
        let groups = self
            .vms
            .get(arriving)
            .map(|v| v.groups.as_slice())
            .unwrap_or_default();
        for other in residents.iter().filter(|id| *id != arriving) {
            let theirs = self
                .vms
                .get(other)
                .map(|v| v.groups.as_slice())
                .unwrap_or_default();
            if let Some(g) = groups.iter().find(|g| theirs.contains(g)) {
                return Some(format!(
                    "{arriving} joins {other} of anti-affinity group {g}"
                ));
            }
        }
        None
    }
}

/// Replays `plan` in its order, one migration at a time, and reports the
/// first broken rule.
pub fn verify(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
    plan: &MigrationPlan,
) -> Result<(), Violation> {
    let mut replay = Replay::new(snapshot, settings, plan);
    for index in 0..plan.migrations.len() {
        replay.start(index)?;
        replay.complete(index);
    }
    Ok(())
}
