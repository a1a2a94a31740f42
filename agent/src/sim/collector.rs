//! The simulated host's /metrics: the same families, names and labels the
//! real collectors export (node_cpu_seconds_total, node_memory_*,
//! node_load*, hyperwatch_vm_*, hyperwatch_storage_*,
//! hyperwatch_service_up), so dashboards, the telemetry summary and the
//! watchdog cannot tell a simulated host from a real one by its figures.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use super::model::{LunState, SimHost};
use crate::{
    collectors::{CollectError, Collector},
    metrics::{Families, Kind},
    storage::{
        Backend, IoCounters, StorageDevice, StorageInventory, StorageLun, collector::export,
    },
};

/// Exports the model's figures.
pub struct SimCollector {
    host: Arc<Mutex<SimHost>>,
    /// The simulation's start: a scrape brings the model up to now.
    start: Instant,
}

impl SimCollector {
    pub fn new(host: Arc<Mutex<SimHost>>, start: Instant) -> Self {
        Self { host, start }
    }
}

impl Collector for SimCollector {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let mut h = self.host.lock().unwrap_or_else(|p| p.into_inner());
        h.advance(self.start.elapsed().as_secs_f64());
        host_families(&h, out);
        vm_families(&h, out);
        export(&storage_inventory(&h), out);
        let up = out.add(
            "hyperwatch_service_up",
            "Whether a watched service is up (1) or down (0).",
            Kind::Gauge,
        );
        for (name, is_up) in &h.services {
            up.push(
                vec![("service", name.clone()), ("kind", "simulated".into())],
                if *is_up { 1.0 } else { 0.0 },
            );
        }
        Ok(())
    }
}

fn host_families(h: &SimHost, out: &mut Families) {
    let cpu = out.add(
        "node_cpu_seconds",
        "Seconds the CPUs spent in each mode.",
        Kind::Counter,
    );
    for (i, (busy, idle)) in h.cpu_seconds.iter().enumerate() {
        cpu.push(vec![("cpu", i.to_string()), ("mode", "idle".into())], *idle);
        cpu.push(vec![("cpu", i.to_string()), ("mode", "user".into())], *busy);
    }
    let used = h.memory_used();
    out.gauge(
        "node_memory_MemTotal_bytes",
        "Memory information field MemTotal_bytes.",
        h.memory_bytes as f64,
    );
    out.gauge(
        "node_memory_MemAvailable_bytes",
        "Memory information field MemAvailable_bytes.",
        h.memory_bytes.saturating_sub(used) as f64,
    );
    for (name, value) in ["node_load1", "node_load5", "node_load15"]
        .into_iter()
        .zip(h.load)
    {
        out.gauge(name, "Load average.", value);
    }
}

fn vm_families(h: &SimHost, out: &mut Families) {
    out.add(
        "hyperwatch_vms",
        "VMs found on this host, by inventory source (libvirt or proc).",
        Kind::Gauge,
    )
    .push(vec![("source", "simulated".into())], h.vms.len() as f64);
    let families: [(&str, &str, Kind); 5] = [
        (
            "hyperwatch_vm_info",
            "A VM on this host (value 1) with its UUID, qemu pid and accelerator.",
            Kind::Gauge,
        ),
        (
            "hyperwatch_vm_vcpus",
            "Virtual CPUs of each VM.",
            Kind::Gauge,
        ),
        (
            "hyperwatch_vm_memory_bytes",
            "Memory size each VM was given.",
            Kind::Gauge,
        ),
        (
            "hyperwatch_vm_cpu_seconds",
            "CPU time of each VM's qemu process (vCPUs and emulation threads).",
            Kind::Counter,
        ),
        (
            "hyperwatch_vm_memory_resident_bytes",
            "Resident memory of each VM's qemu process.",
            Kind::Gauge,
        ),
    ];
    for (k, (name, help, kind)) in families.into_iter().enumerate() {
        let f = out.add(name, help, kind);
        for (vm, v) in &h.vms {
            let label = || vec![("vm", vm.clone())];
            match k {
                0 => f.push(
                    vec![
                        ("vm", vm.clone()),
                        ("uuid", String::new()),
                        ("pid", "0".into()),
                        ("accelerator", "simulated".into()),
                    ],
                    1.0,
                ),
                1 => f.push(label(), f64::from(v.profile.vcpus)),
                2 => f.push(label(), v.profile.memory_bytes as f64),
                3 => f.push(label(), v.cpu_seconds),
                _ => f.push(label(), v.profile.resident_bytes as f64),
            };
        }
    }
}

/// The model's storage as the storage collector's inventory, so that the
/// same export names it. Copies still arriving are not served yet.
pub fn storage_inventory(h: &SimHost) -> StorageInventory {
    let counters = |io: &super::model::Io| IoCounters {
        reads_completed: io.reads as u64,
        writes_completed: io.writes as u64,
        read_bytes: io.read_bytes as u64,
        written_bytes: io.written_bytes as u64,
        io_time_ms: (io.io_seconds * 1e3) as u64,
    };
    StorageInventory {
        devices: h
            .devices
            .iter()
            .map(|(id, d)| StorageDevice {
                id: id.clone(),
                backend: Backend::Simulated,
                group: d.group.clone(),
                capacity_bytes: d.capacity,
                used_bytes: h.device_used(id),
                kernel_device: None,
                io: Some(counters(&d.io)),
                rates: None,
            })
            .collect(),
        luns: h
            .luns
            .iter()
            .filter(|(_, l)| l.state != LunState::Incoming)
            .map(|((id, device), l)| StorageLun {
                id: id.clone(),
                backend: Backend::Simulated,
                device: device.clone(),
                size_bytes: l.size,
                allocated_bytes: Some(l.used as u64),
                kernel_device: None,
                io: Some(counters(&l.io)),
                rates: None,
            })
            .collect(),
    }
}
