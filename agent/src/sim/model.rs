//! The simulated host: its VMs with their load curves, its devices and LUNs
//! with their fill and IO, its services, the phases of the scenario applied
//! at their time, and the counters a real host's collectors would read.
//! Pure and deterministic: the runtime calls [`SimHost::step`] with the
//! time since the start; the same seed and steps give the same figures.

use std::collections::BTreeMap;

use super::{
    scenario::{HostEvent, HostKind, PhaseSpec, Scenario, ServiceState},
    units::human_bytes,
};

/// Load averages decay like the kernel's: over 1, 5 and 15 minutes.
const LOAD_WINDOWS: [f64; 3] = [60.0, 300.0, 900.0];

/// Where a VM is in its life here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    Running,
    /// Prepared to leave; still running here until released.
    Migrating,
    /// Being copied here; not running yet.
    Incoming,
}

impl VmState {
    /// The inventory's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::Migrating => "migrating",
            VmState::Incoming => "incoming",
        }
    }
}

/// What a VM is, whichever host it runs on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmProfile {
    pub vcpus: u32,
    pub memory_bytes: u64,
    /// Resident memory; 0 takes `memory_bytes`.
    pub resident_bytes: u64,
    /// Busy cores it asks for now.
    pub cpu_cores: f64,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    pub unmovable_reason: String,
}

/// A VM here.
#[derive(Clone, Debug)]
pub struct SimVm {
    pub profile: VmProfile,
    /// Sine on top of the load: amplitude (cores) and period (seconds).
    pub wave: (f64, f64),
    pub state: VmState,
    /// Busy cores at the last step.
    pub cpu_now: f64,
    /// CPU seconds used here so far.
    pub cpu_seconds: f64,
}

/// A storage device.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub group: String,
    pub shared: bool,
    pub capacity: u64,
    /// Bytes of data other than the LUNs.
    pub other_used: f64,
    pub fill_per_second: f64,
    /// IOPS besides the LUNs'.
    pub iops: f64,
    pub latency_seconds: f64,
    pub io: Io,
}

/// Where a LUN copy is in a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LunState {
    Active,
    /// Prepared to leave; still served here until released.
    Leaving,
    /// Being copied here; not served yet.
    Incoming,
}

impl LunState {
    /// The inventory's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LunState::Active => "active",
            LunState::Leaving => "leaving",
            LunState::Incoming => "incoming",
        }
    }
}

/// What a LUN is, whichever device holds it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LunProfile {
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub iops: f64,
    pub consumer: String,
}

/// A copy of a LUN on one device here.
#[derive(Clone, Debug)]
pub struct SimLun {
    pub size: u64,
    pub used: f64,
    pub fill_per_second: f64,
    pub iops: f64,
    pub pinned: bool,
    pub consumer: String,
    pub state: LunState,
    pub io: Io,
}

/// IO counters, as /proc/diskstats would count them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Io {
    pub reads: f64,
    pub writes: f64,
    pub read_bytes: f64,
    pub written_bytes: f64,
    pub io_seconds: f64,
}

impl Io {
    /// `iops` for `dt` seconds, 70 % reads, at `latency` each.
    fn add(&mut self, iops: f64, dt: f64, io_size: f64, latency: f64) {
        let ios = iops * dt;
        self.reads += ios * READ_SHARE;
        self.writes += ios * (1.0 - READ_SHARE);
        self.read_bytes += ios * READ_SHARE * io_size;
        self.written_bytes += ios * (1.0 - READ_SHARE) * io_size;
        self.io_seconds += ios * latency;
    }
}

/// The read share of simulated IO: the usual 70/30 mix of VM storage.
const READ_SHARE: f64 = 0.7;

/// Something the runtime reports or acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Happening {
    /// A phase was applied (or skipped), in words.
    Phase(String),
    /// A service changed state.
    Service { name: String, up: bool },
    /// The host dies.
    Crash,
}

/// The simulated host.
#[derive(Debug)]
pub struct SimHost {
    pub name: String,
    pub kind: HostKind,
    pub cores: u32,
    pub memory_bytes: u64,
    pub base_cpu: f64,
    pub base_memory: u64,
    pub copy_per_second: u64,
    noise: f64,
    io_size: f64,
    rng: fastrand::Rng,
    /// Seconds since the start, as of the last step.
    pub now: f64,
    pub vms: BTreeMap<String, SimVm>,
    pub devices: BTreeMap<String, SimDevice>,
    /// LUN copies by (LUN, device): a move within the host has two.
    pub luns: BTreeMap<(String, String), SimLun>,
    /// Services and whether each is up.
    pub services: BTreeMap<String, bool>,
    phases: Vec<PhaseSpec>,
    next_phase: usize,
    /// (busy, idle) seconds of each CPU.
    pub cpu_seconds: Vec<(f64, f64)>,
    /// Busy cores at the last step.
    pub busy_cores: f64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
}

impl SimHost {
    /// The host at the start of `scenario`.
    pub fn new(scenario: &Scenario) -> Self {
        let h = &scenario.host;
        let mut phases = scenario.phases.clone();
        phases.sort_by(|a, b| a.at.0.total_cmp(&b.at.0));
        let vms = scenario
            .vms
            .iter()
            .map(|v| {
                let profile = VmProfile {
                    vcpus: v.vcpus,
                    memory_bytes: v.memory.0,
                    resident_bytes: v.resident.map_or(v.memory.0, |r| r.0),
                    cpu_cores: v.cpu_cores,
                    tenant: v.tenant.clone(),
                    labels: v.labels.clone(),
                    priority: v.priority,
                    unmovable_reason: v.unmovable.clone(),
                };
                let vm = SimVm {
                    wave: (v.cpu_amplitude, v.cpu_period.0),
                    cpu_now: v.cpu_cores,
                    profile,
                    state: VmState::Running,
                    cpu_seconds: 0.0,
                };
                (v.name.clone(), vm)
            })
            .collect();
        let devices = scenario
            .devices
            .iter()
            .map(|d| {
                let device = SimDevice {
                    group: d.group.clone(),
                    shared: d.shared,
                    capacity: d.capacity.0,
                    other_used: d.used.0 as f64,
                    fill_per_second: d.fill_per_second.0 as f64,
                    iops: d.iops,
                    latency_seconds: d.latency_ms / 1e3,
                    io: Io::default(),
                };
                (d.id.clone(), device)
            })
            .collect();
        let luns = scenario
            .luns
            .iter()
            .map(|l| {
                let lun = SimLun {
                    size: l.size.0,
                    used: l.used.map_or(l.size.0, |u| u.0) as f64,
                    fill_per_second: l.fill_per_second.0 as f64,
                    iops: l.iops,
                    pinned: l.pinned,
                    consumer: l.consumer.clone(),
                    state: LunState::Active,
                    io: Io::default(),
                };
                ((l.id.clone(), l.device.clone()), lun)
            })
            .collect();
        Self {
            name: h.name.clone(),
            kind: h.kind,
            cores: h.cores,
            memory_bytes: h.memory.0,
            base_cpu: h.base_cpu_cores,
            base_memory: h.base_memory.0,
            copy_per_second: h.copy_per_second.0,
            noise: h.noise,
            io_size: h.io_size.0 as f64,
            rng: fastrand::Rng::with_seed(h.seed),
            now: 0.0,
            vms,
            devices,
            luns,
            services: scenario
                .services
                .iter()
                .map(|s| (s.name.clone(), true))
                .collect(),
            phases,
            next_phase: 0,
            cpu_seconds: vec![(0.0, 0.0); h.cores as usize],
            busy_cores: 0.0,
            load: [0.0; 3],
        }
    }

    /// Advances to `now` seconds after the start: integrates load, fill and
    /// IO over the elapsed time, then applies the phases now due.
    pub fn step(&mut self, now: f64) -> Vec<Happening> {
        self.advance(now);
        let mut out = Vec::new();
        while let Some(p) = self.phases.get(self.next_phase).filter(|p| p.at.0 <= now) {
            let p = p.clone();
            self.next_phase += 1;
            self.apply(&p, &mut out);
        }
        out
    }

    /// Integrates load, fill and IO up to `now` without applying phases:
    /// a scrape calls it, so counters are exact at the moment they are read
    /// (phases wait for the next [`SimHost::step`], at most a tick).
    pub fn advance(&mut self, now: f64) {
        let dt = now - self.now;
        if dt > 0.0 {
            self.now = now;
            self.step_cpu(dt);
            self.step_storage(dt);
        }
    }

    fn jitter(&mut self) -> f64 {
        1.0 + self.noise * (self.rng.f64() * 2.0 - 1.0)
    }

    fn step_cpu(&mut self, dt: f64) {
        let now = self.now;
        let mut busy = self.base_cpu * self.jitter();
        let names: Vec<String> = self.vms.keys().cloned().collect();
        for name in names {
            let j = self.jitter();
            let vm = self.vms.get_mut(&name).expect("listed");
            if vm.state == VmState::Incoming {
                vm.cpu_now = 0.0;
                continue;
            }
            let (amplitude, period) = vm.wave;
            let wave = amplitude * (std::f64::consts::TAU * now / period).sin();
            vm.cpu_now =
                ((vm.profile.cpu_cores + wave) * j).clamp(0.0, f64::from(vm.profile.vcpus));
            vm.cpu_seconds += vm.cpu_now * dt;
            busy += vm.cpu_now;
        }
        let cores = f64::from(self.cores);
        self.busy_cores = busy.clamp(0.0, cores);
        let share = self.busy_cores / cores;
        for (b, i) in &mut self.cpu_seconds {
            *b += share * dt;
            *i += (1.0 - share) * dt;
        }
        for (load, window) in self.load.iter_mut().zip(LOAD_WINDOWS) {
            let keep = (-dt / window).exp();
            *load = *load * keep + self.busy_cores * (1.0 - keep);
        }
    }

    fn step_storage(&mut self, dt: f64) {
        let io_size = self.io_size;
        for ((_, device), lun) in &mut self.luns {
            let Some(d) = self.devices.get_mut(device) else {
                continue;
            };
            lun.used = (lun.used + lun.fill_per_second * dt).min(lun.size as f64);
            if lun.state != LunState::Incoming {
                lun.io.add(lun.iops, dt, io_size, d.latency_seconds);
                d.io.add(lun.iops, dt, io_size, d.latency_seconds);
            }
        }
        let ids: Vec<String> = self.devices.keys().cloned().collect();
        for id in ids {
            let luns = self.lun_bytes(&id);
            let d = self.devices.get_mut(&id).expect("listed");
            let room = (d.capacity as f64 - luns).max(0.0);
            d.other_used = (d.other_used + d.fill_per_second * dt).min(room);
            let (iops, latency) = (d.iops, d.latency_seconds);
            d.io.add(iops, dt, io_size, latency);
        }
    }

    /// Bytes the LUN copies on `device` occupy.
    fn lun_bytes(&self, device: &str) -> f64 {
        self.luns
            .iter()
            .filter(|((_, d), _)| d == device)
            .map(|(_, l)| l.used)
            .sum()
    }

    /// Bytes in use on `device`.
    pub fn device_used(&self, device: &str) -> u64 {
        let other = self.devices.get(device).map_or(0.0, |d| d.other_used);
        (other + self.lun_bytes(device)) as u64
    }

    /// Used memory: the host's own and every VM's resident memory.
    pub fn memory_used(&self) -> u64 {
        let vms: u64 = self.vms.values().map(|v| v.profile.resident_bytes).sum();
        (self.base_memory + vms).min(self.memory_bytes)
    }

    fn apply(&mut self, p: &PhaseSpec, out: &mut Vec<Happening>) {
        let say = if p.say.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.say)
        };
        let mut said = |text: String| out.push(Happening::Phase(format!("{text}{say}")));
        if let Some(name) = &p.vm {
            let Some(vm) = self.vms.get_mut(name) else {
                said(format!("vm {name} is not on this host; phase skipped"));
                return;
            };
            if let Some(c) = p.cpu_cores {
                vm.profile.cpu_cores = c.min(f64::from(vm.profile.vcpus));
                said(format!("vm {name} load goes to {c} cores"));
            }
            if let Some(r) = p.resident {
                vm.profile.resident_bytes = r.0.min(vm.profile.memory_bytes);
                said(format!(
                    "vm {name} resident memory goes to {}",
                    human_bytes(r.0)
                ));
            }
        } else if let Some(id) = &p.device {
            let d = self.devices.get_mut(id).expect("checked in the scenario");
            if let Some(f) = p.fill_per_second {
                d.fill_per_second = f.0 as f64;
                said(format!("device {id} fills at {}/s", human_bytes(f.0)));
            }
            if let Some(i) = p.iops {
                d.iops = i;
                said(format!("device {id} serves {i} IOPS besides its LUNs"));
            }
            if let Some(l) = p.latency_ms {
                d.latency_seconds = l / 1e3;
                said(format!("device {id} latency goes to {l} ms"));
            }
        } else if let Some(id) = &p.lun {
            let Some(lun) = self
                .luns
                .iter_mut()
                .find(|((l, _), x)| l == id && x.state != LunState::Incoming)
                .map(|(_, x)| x)
            else {
                said(format!("lun {id} is not on this host; phase skipped"));
                return;
            };
            if let Some(f) = p.fill_per_second {
                lun.fill_per_second = f.0 as f64;
                said(format!("lun {id} fills at {}/s", human_bytes(f.0)));
            }
            if let Some(i) = p.iops {
                lun.iops = i;
                said(format!("lun {id} serves {i} IOPS"));
            }
        } else if let (Some(name), Some(state)) = (&p.service, p.state) {
            let up = state == ServiceState::Up;
            let was = self.services.insert(name.clone(), up);
            said(format!(
                "service {name} {}",
                if up { "comes up" } else { "crashes" }
            ));
            if was != Some(up) {
                out.push(Happening::Service {
                    name: name.clone(),
                    up,
                });
            }
        } else if p.host == Some(HostEvent::Crash) {
            said("the host crashes".into());
            out.push(Happening::Crash);
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
