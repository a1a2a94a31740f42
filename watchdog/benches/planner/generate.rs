//! Seeded synthetic clusters for the planner benchmark: equal hosts, 20 VMs
//! each, a skewed load (one host in ten runs hot), noisy usage windows with
//! occasional spikes, and a sprinkling of every constraint.

use std::collections::BTreeMap;

use hyperwatch::planner::{
    AntiAffinityGroup, ClusterSnapshot, Constraints, Headroom, Host, HostState, Reservation, Vm,
};

/// Cores per host: a common two-socket hypervisor today.
const HOST_CORES: u32 = 64;
const GIB: u64 = 1 << 30;
/// Memory per host, bytes.
const HOST_MEMORY: u64 = 512 * GIB;
pub const VMS_PER_HOST: usize = 20;
/// Samples per usage window: one minute at the agent's 5 s interval.
const WINDOW: usize = 12;
/// VM sizes (vCPUs) and how often each occurs, weights summing to 100.
const VCPU_SIZES: &[(u32, u32)] = &[(1, 10), (2, 30), (4, 30), (8, 20), (16, 10)];
/// One host in this many runs hot (its VMs twice as busy): the skew.
const HOT_EVERY: usize = 10;
/// A host's busy cores cannot exceed its cores: a saturated host's VMs are
/// scaled down to this fraction of them.
const SATURATION: f64 = 0.98;
/// Chance that one sample of a window is a spike (three times the usage).
const SPIKE_CHANCE: f64 = 0.02;
const TENANTS: usize = 50;

/// SplitMix64: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn pick_vcpus(rng: &mut Rng) -> u32 {
    let mut roll = rng.below(100) as u32;
    for &(vcpus, weight) in VCPU_SIZES {
        if roll < weight {
            return vcpus;
        }
        roll -= weight;
    }
    VCPU_SIZES[VCPU_SIZES.len() - 1].0
}

/// A window of samples around `level`: ±10 % noise, rare spikes.
fn window(rng: &mut Rng, level: f64) -> Vec<f64> {
    (0..WINDOW)
        .map(|_| {
            let spike = if rng.unit() < SPIKE_CHANCE { 3.0 } else { 1.0 };
            level * (0.9 + 0.2 * rng.unit()) * spike
        })
        .collect()
}

/// A cluster of `hosts` hosts with 20 VMs each, deterministic in `seed`.
pub fn cluster(hosts: usize, seed: u64) -> ClusterSnapshot {
    let mut rng = Rng::new(seed);
    let mut snapshot = ClusterSnapshot {
        constraints: Constraints {
            headroom: Headroom::default(),
            cpu_allocation_ratio: Some(4.0),
            ..Constraints::default()
        },
        ..ClusterSnapshot::default()
    };
    for h in 0..hosts {
        let host_id = format!("host-{h:05}");
        let hot = h % HOT_EVERY == 0;
        let mut host_cpu = vec![1.0; WINDOW]; // the hypervisor's own core
        let mut host_memory = vec![8 * GIB; WINDOW];
        let first = snapshot.vms.len();
        for n in 0..VMS_PER_HOST {
            let vcpus = pick_vcpus(&mut rng);
            let memory_bytes = u64::from(vcpus) * [2, 4, 4, 6][rng.below(4)] * GIB;
            let activity = (0.05 + 0.4 * rng.unit()) * if hot { 2.2 } else { 1.0 };
            let cpu_samples = window(&mut rng, f64::from(vcpus) * activity.min(1.0));
            let resident = (memory_bytes as f64 * (0.3 + 0.6 * rng.unit())) as u64;
            let memory_samples = vec![resident; WINDOW];
            for total in &mut host_memory {
                *total += resident;
            }
            snapshot.vms.push(Vm {
                id: format!("vm-{h:05}-{n:02}"),
                host: host_id.clone(),
                vcpus,
                memory_bytes,
                cpu_samples,
                memory_samples,
                tenant: format!("tenant-{:02}", rng.below(TENANTS)),
                labels: BTreeMap::new(),
                priority: rng.below(3) as i32,
            });
        }
        saturate(&mut snapshot.vms[first..]);
        for vm in &snapshot.vms[first..] {
            for (total, s) in host_cpu.iter_mut().zip(&vm.cpu_samples) {
                *total += s;
            }
        }
        snapshot.hosts.push(Host {
            id: host_id,
            cores: HOST_CORES,
            memory_bytes: HOST_MEMORY,
            cpu_samples: host_cpu,
            memory_samples: host_memory,
            state: HostState::Healthy,
            cpu_threshold: None,
            headroom: None,
        });
    }
    add_constraints(&mut snapshot, &mut rng);
    snapshot
}

/// Scales the VMs' samples so that no sample of their sum exceeds
/// [`SATURATION`] of the host's cores.
fn saturate(vms: &mut [Vm]) {
    let capacity = SATURATION * f64::from(HOST_CORES) - 1.0;
    for s in 0..WINDOW {
        let total: f64 = vms.iter().map(|v| v.cpu_samples[s]).sum();
        if total > capacity {
            for vm in vms.iter_mut() {
                vm.cpu_samples[s] *= capacity / total;
            }
        }
    }
}

/// Replica triples of VMs on distinct hosts (1 % of VMs), pinned and
/// unmovable VMs (0.5 % each), and a reservation on one host in twenty.
fn add_constraints(snapshot: &mut ClusterSnapshot, rng: &mut Rng) {
    let hosts = snapshot.hosts.len();
    let c = &mut snapshot.constraints;
    for g in 0..snapshot.vms.len() / 300 {
        let first = rng.below(hosts);
        let vms = (0..3)
            .map(|k| {
                format!(
                    "vm-{:05}-{:02}",
                    (first + k * hosts / 3) % hosts,
                    rng.below(VMS_PER_HOST)
                )
            })
            .collect();
        c.anti_affinity.push(AntiAffinityGroup {
            name: format!("replicas-{g}"),
            vms,
        });
    }
    for _ in 0..snapshot.vms.len() / 200 {
        let vm = &snapshot.vms[rng.below(snapshot.vms.len())];
        c.pinned.insert(vm.id.clone(), vm.host.clone());
        let vm = &snapshot.vms[rng.below(snapshot.vms.len())];
        c.unmovable
            .insert(vm.id.clone(), "passed-through NIC".to_owned());
    }
    for h in (0..hosts).step_by(20) {
        c.reservations.push(Reservation {
            tenant: format!("tenant-{:02}", rng.below(TENANTS)),
            host: snapshot.hosts[h].id.clone(),
            cpu_cores: 8.0,
            memory_bytes: 64 * GIB,
        });
    }
}
