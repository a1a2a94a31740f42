//! Building the [`Cluster`] from a snapshot: validating it, giving hosts
//! and VMs positions sorted by id (so input order never changes a plan),
//! reducing usage windows to percentiles, and attaching the constraints.

use super::{
    PlannerError, PlannerSettings,
    cluster::{Cluster, HostInfo, HostIx, HostLoad, VmInfo, VmIx},
    snapshot::{AntiAffinityGroup, ClusterSnapshot, Headroom, HostState},
    usage::percentile,
};

/// Ids of the snapshot by sorted position, for binary-search lookups.
struct Ids<'s> {
    snapshot: &'s ClusterSnapshot,
    hosts: Vec<usize>,
    vms: Vec<usize>,
    tenants: Vec<&'s str>,
}

impl<'s> Ids<'s> {
    fn new(snapshot: &'s ClusterSnapshot) -> Result<Self, PlannerError> {
        let hosts = sorted_unique("host", snapshot.hosts.iter().map(|h| h.id.as_str()))?;
        let vms = sorted_unique("vm", snapshot.vms.iter().map(|v| v.id.as_str()))?;
        let mut tenants: Vec<&str> = snapshot
            .vms
            .iter()
            .map(|v| v.tenant.as_str())
            .chain(
                snapshot
                    .constraints
                    .reservations
                    .iter()
                    .map(|r| r.tenant.as_str()),
            )
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        Ok(Ids {
            snapshot,
            hosts,
            vms,
            tenants,
        })
    }

    fn host(&self, id: &str, place: &dyn Fn() -> String) -> Result<HostIx, PlannerError> {
        self.hosts
            .binary_search_by(|&i| self.snapshot.hosts[i].id.as_str().cmp(id))
            .map_err(|_| PlannerError::UnknownHost {
                place: place(),
                host: id.to_owned(),
            })
    }

    fn vm(&self, id: &str, place: &dyn Fn() -> String) -> Result<VmIx, PlannerError> {
        self.vms
            .binary_search_by(|&i| self.snapshot.vms[i].id.as_str().cmp(id))
            .map_err(|_| PlannerError::UnknownVm {
                place: place(),
                vm: id.to_owned(),
            })
    }

    fn tenant(&self, name: &str) -> u32 {
        self.tenants
            .binary_search(&name)
            .expect("every tenant was collected") as u32
    }
}

/// Positions of `ids` in sorted order; an error names a duplicate.
fn sorted_unique<'a>(
    kind: &'static str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<Vec<usize>, PlannerError> {
    let ids: Vec<&str> = ids.collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_unstable_by(|&a, &b| ids[a].cmp(ids[b]));
    match order.windows(2).find(|w| ids[w[0]] == ids[w[1]]) {
        Some(w) => Err(PlannerError::Duplicate {
            kind,
            id: ids[w[0]].to_owned(),
        }),
        None => Ok(order),
    }
}

/// Indexes and validates `snapshot`.
pub fn build(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
) -> Result<Cluster, PlannerError> {
    settings.validate()?;
    let c = &snapshot.constraints;
    check_headroom("constraints.headroom", &c.headroom)?;
    if let Some(ratio) = c.cpu_allocation_ratio
        && !(ratio.is_finite() && ratio > 0.0)
    {
        return Err(PlannerError::OutOfRange {
            place: "constraints.cpu_allocation_ratio".to_owned(),
            value: ratio,
            expected: "a finite number > 0",
        });
    }
    let ids = Ids::new(snapshot)?;
    let mut hosts = host_infos(&ids, settings)?;
    add_reservations(&ids, &mut hosts)?;
    let (group_names, vms) = vm_infos(&ids, settings.percentile)?;
    let mut cluster = Cluster {
        hosts,
        vms,
        group_names,
        tenant_names: ids.tenants.iter().map(|t| (*t).to_owned()).collect(),
        initial: Vec::new(),
    };
    cluster.initial = initial_loads(&cluster, &ids, settings.percentile);
    Ok(cluster)
}

fn host_infos(ids: &Ids<'_>, settings: &PlannerSettings) -> Result<Vec<HostInfo>, PlannerError> {
    let c = &ids.snapshot.constraints;
    let mut hosts = Vec::with_capacity(ids.hosts.len());
    for &i in &ids.hosts {
        let h = &ids.snapshot.hosts[i];
        let place = format!("host `{}`", h.id);
        if h.cores == 0 {
            return Err(PlannerError::OutOfRange {
                place: format!("{place}.cores"),
                value: 0.0,
                expected: "at least 1",
            });
        }
        check_samples(|| place.clone(), &h.cpu_samples)?;
        let headroom = h.headroom.unwrap_or(c.headroom);
        check_headroom(&format!("{place}.headroom"), &headroom)?;
        let threshold = h.cpu_threshold.unwrap_or(settings.cpu_threshold);
        check_fraction(&format!("{place}.cpu_threshold"), threshold)?;
        let cores = f64::from(h.cores);
        hosts.push(HostInfo {
            id: h.id.clone(),
            state: h.state,
            cores,
            cpu_capacity: cores * (1.0 - headroom.cpu_fraction),
            memory_capacity: (h.memory_bytes as f64 * (1.0 - headroom.memory_fraction)) as u64,
            vcpu_capacity: c.cpu_allocation_ratio.map(|r| r * cores),
            threshold,
            reservations: Vec::new(),
        });
    }
    Ok(hosts)
}

/// Attaches the reservations to their hosts. One tenant's reservations on
/// one host add up: its VMs count once against the sum.
fn add_reservations(ids: &Ids<'_>, hosts: &mut [HostInfo]) -> Result<(), PlannerError> {
    for (n, r) in ids.snapshot.constraints.reservations.iter().enumerate() {
        let place = format!("constraints.reservations[{n}]");
        let host = ids.host(&r.host, &|| place.clone())?;
        if !(r.cpu_cores.is_finite() && r.cpu_cores >= 0.0) {
            return Err(PlannerError::OutOfRange {
                place: format!("{place}.cpu_cores"),
                value: r.cpu_cores,
                expected: "a finite number >= 0",
            });
        }
        let tenant = ids.tenant(&r.tenant);
        let held = &mut hosts[host].reservations;
        match held.iter_mut().find(|(t, _, _)| *t == tenant) {
            Some((_, cpu, memory)) => {
                *cpu += r.cpu_cores;
                *memory += r.memory_bytes;
            }
            None => held.push((tenant, r.cpu_cores, r.memory_bytes)),
        }
    }
    for host in hosts {
        host.reservations.sort_by_key(|&(tenant, _, _)| tenant);
    }
    Ok(())
}

/// The VMs with their usage percentiles and constraints, and the
/// anti-affinity group names (sorted).
fn vm_infos(ids: &Ids<'_>, p: f64) -> Result<(Vec<String>, Vec<VmInfo>), PlannerError> {
    let c = &ids.snapshot.constraints;
    let n = ids.vms.len();
    let mut groups: Vec<&AntiAffinityGroup> = c.anti_affinity.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let mut vm_groups: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (g, group) in groups.iter().enumerate() {
        for id in &group.vms {
            let vm = ids.vm(id, &|| format!("anti-affinity group `{}`", group.name))?;
            if !vm_groups[vm].contains(&(g as u32)) {
                vm_groups[vm].push(g as u32);
            }
        }
    }
    let mut pins: Vec<Option<HostIx>> = vec![None; n];
    for (vm, host) in &c.pinned {
        let v = ids.vm(vm, &|| "constraints.pinned".to_owned())?;
        pins[v] = Some(ids.host(host, &|| format!("constraints.pinned.{vm}"))?);
    }
    let mut unmovable: Vec<Option<String>> = vec![None; n];
    for (vm, why) in &c.unmovable {
        unmovable[ids.vm(vm, &|| "constraints.unmovable".to_owned())?] = Some(why.clone());
    }
    let mut vms = Vec::with_capacity(n);
    for (ix, &i) in ids.vms.iter().enumerate() {
        let v = &ids.snapshot.vms[i];
        check_samples(|| format!("vm `{}`", v.id), &v.cpu_samples)?;
        vms.push(VmInfo {
            id: v.id.clone(),
            host: ids.host(&v.host, &|| format!("vm `{}`.host", v.id))?,
            // Unknown usage is taken at its maximum: a plan built on it can
            // only be too careful.
            cpu: percentile(&v.cpu_samples, p).unwrap_or(f64::from(v.vcpus)),
            memory: v.memory_bytes,
            resident: percentile(&v.memory_samples, p)
                .unwrap_or(v.memory_bytes)
                .min(v.memory_bytes),
            vcpus: v.vcpus,
            tenant: ids.tenant(&v.tenant),
            groups: std::mem::take(&mut vm_groups[ix]),
            priority: v.priority,
            pin: pins[ix],
            unmovable: unmovable[ix].take(),
        });
    }
    Ok((groups.iter().map(|g| g.name.clone()).collect(), vms))
}

/// Each host's load in the snapshot: its VMs plus what the host itself
/// uses beyond them (the hypervisor: the host's percentile minus the sum of
/// its VMs'). VMs of failed hosts count nowhere: they are not running.
fn initial_loads(cluster: &Cluster, ids: &Ids<'_>, p: f64) -> Vec<HostLoad> {
    let mut loads: Vec<HostLoad> = cluster
        .hosts
        .iter()
        .map(|h| HostLoad {
            reserved_use: vec![(0.0, 0); h.reservations.len()],
            ..HostLoad::default()
        })
        .collect();
    let mut resident = vec![0u64; cluster.hosts.len()];
    for (ix, vm) in cluster.vms.iter().enumerate() {
        if cluster.hosts[vm.host].state != HostState::Failed {
            cluster.add(ix, &mut loads[vm.host], vm.host);
            resident[vm.host] += vm.resident;
        }
    }
    for (ix, &i) in ids.hosts.iter().enumerate() {
        let h = &ids.snapshot.hosts[i];
        let load = &mut loads[ix];
        if let Some(busy) = percentile(&h.cpu_samples, p) {
            load.cpu += (busy - load.cpu).max(0.0);
        }
        if let Some(used) = percentile(&h.memory_samples, p) {
            load.memory += used.saturating_sub(resident[ix]);
        }
    }
    loads
}

fn check_samples(place: impl Fn() -> String, samples: &[f64]) -> Result<(), PlannerError> {
    match samples.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        Some(&bad) => Err(PlannerError::OutOfRange {
            place: format!("{}.cpu_samples", place()),
            value: bad,
            expected: "finite numbers >= 0",
        }),
        None => Ok(()),
    }
}

fn check_headroom(place: &str, headroom: &Headroom) -> Result<(), PlannerError> {
    for (field, value) in [
        ("cpu_fraction", headroom.cpu_fraction),
        ("memory_fraction", headroom.memory_fraction),
    ] {
        if !(0.0..1.0).contains(&value) {
            return Err(PlannerError::OutOfRange {
                place: format!("{place}.{field}"),
                value,
                expected: "0 <= value < 1",
            });
        }
    }
    Ok(())
}

pub(super) fn check_fraction(place: &str, value: f64) -> Result<(), PlannerError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(PlannerError::OutOfRange {
            place: place.to_owned(),
            value,
            expected: "0 < value <= 1",
        })
    }
}
