//! `vm`: the VMs on this host and their usage: hyperwatch_vms,
//! hyperwatch_vm_info, vCPUs and memory size, CPU seconds, resident memory,
//! disk and network bytes, and per-VM run-queue latency (eBPF).

use std::{path::PathBuf, sync::Arc};

use super::{CollectError, Collector, histogram};
use crate::{
    ebpf::Ebpf,
    metrics::{Families, Kind, Sample},
    vm::{tracker::VmTracker, usage},
};

pub struct VmCollector {
    tracker: Arc<VmTracker>,
    ebpf: Option<Arc<Ebpf>>,
    procfs: PathBuf,
    sysfs: PathBuf,
}

impl VmCollector {
    pub fn new(
        tracker: Arc<VmTracker>,
        ebpf: Option<Arc<Ebpf>>,
        procfs: PathBuf,
        sysfs: PathBuf,
    ) -> Self {
        Self {
            tracker,
            ebpf,
            procfs,
            sysfs,
        }
    }
}

impl Collector for VmCollector {
    fn name(&self) -> &'static str {
        "vm"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let vms = self.tracker.vms_with_hist();
        let source = self.tracker.inventory().source;
        out.add(
            "hyperwatch_vms",
            "VMs found on this host, by inventory source (libvirt or proc).",
            Kind::Gauge,
        )
        .push(
            vec![("source", source.as_str().to_owned())],
            vms.len() as f64,
        );

        let mut info = Vec::new();
        let mut vcpus = Vec::new();
        let mut memory = Vec::new();
        let mut cpu = Vec::new();
        let mut resident = Vec::new();
        let mut disk_read = Vec::new();
        let mut disk_written = Vec::new();
        let mut net_rx = Vec::new();
        let mut net_tx = Vec::new();
        let mut runq = Vec::new();
        for (vm, hist_index) in &vms {
            let label = || vec![("vm", vm.name.clone())];
            info.push((
                vec![
                    ("vm", vm.name.clone()),
                    ("uuid", vm.uuid.clone().unwrap_or_default()),
                    ("pid", vm.pid.to_string()),
                    ("accelerator", vm.accelerator.clone()),
                ],
                1.0,
            ));
            vcpus.push((label(), f64::from(vm.vcpus)));
            memory.push((label(), vm.memory_bytes as f64));
            if let Some(u) = usage::read(&self.procfs, &self.sysfs, vm.pid, &vm.tap_interfaces) {
                cpu.push((label(), u.cpu_seconds));
                resident.push((label(), u.resident_bytes as f64));
                disk_read.push((label(), u.disk_read_bytes as f64));
                disk_written.push((label(), u.disk_written_bytes as f64));
                for (tap, rx, tx) in u.network {
                    let l = vec![("vm", vm.name.clone()), ("interface", tap)];
                    net_rx.push((l.clone(), rx as f64));
                    net_tx.push((l, tx as f64));
                }
            }
            if let (Some(ebpf), Some(index)) = (&self.ebpf, hist_index) {
                let hist = ebpf.runq_hist(*index).map_err(|e| CollectError::Map {
                    map: "RUNQ_HIST",
                    message: e.to_string(),
                })?;
                runq.push(Sample {
                    labels: label(),
                    value: histogram::seconds(&hist),
                });
            }
        }
        let families: [(&str, &str, Kind, Vec<_>); 9] = [
            (
                "hyperwatch_vm_info",
                "A VM on this host (value 1) with its UUID, qemu pid and accelerator.",
                Kind::Gauge,
                info,
            ),
            (
                "hyperwatch_vm_vcpus",
                "Virtual CPUs of each VM.",
                Kind::Gauge,
                vcpus,
            ),
            (
                "hyperwatch_vm_memory_bytes",
                "Memory size each VM was given.",
                Kind::Gauge,
                memory,
            ),
            (
                "hyperwatch_vm_cpu_seconds",
                "CPU time of each VM's qemu process (vCPUs and emulation threads).",
                Kind::Counter,
                cpu,
            ),
            (
                "hyperwatch_vm_memory_resident_bytes",
                "Resident memory of each VM's qemu process.",
                Kind::Gauge,
                resident,
            ),
            (
                "hyperwatch_vm_disk_read_bytes",
                "Bytes each VM's qemu process read from storage (its disk images).",
                Kind::Counter,
                disk_read,
            ),
            (
                "hyperwatch_vm_disk_written_bytes",
                "Bytes each VM's qemu process wrote to storage (its disk images).",
                Kind::Counter,
                disk_written,
            ),
            (
                "hyperwatch_vm_network_receive_bytes",
                "Bytes each VM received on each tap interface (the tap's transmit counter).",
                Kind::Counter,
                net_rx,
            ),
            (
                "hyperwatch_vm_network_transmit_bytes",
                "Bytes each VM sent on each tap interface (the tap's receive counter).",
                Kind::Counter,
                net_tx,
            ),
        ];
        for (name, help, kind, samples) in families {
            let family = out.add(name, help, kind);
            for (labels, value) in samples {
                family.push(labels, value);
            }
        }
        if self.ebpf.is_some() {
            out.add(
                "hyperwatch_vm_runqueue_latency_seconds",
                "Time each VM's threads (vCPUs among them) waited in a run queue before running: how much a VM is held back by its neighbours.",
                Kind::Histogram,
            )
            .samples = runq;
        }
        Ok(())
    }
}
