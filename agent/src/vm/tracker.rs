//! The current VM inventory, each VM's slot in the kernel's per-VM
//! run-queue histograms, and the kernel's thread map kept in step: every
//! thread of a VM's qemu process is tagged with the VM's slot, so its waits
//! land in that VM's histogram too.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use agent_common::runq::{MAX_VMS, NO_VM, VM_HIST_BASE};

use super::{Vm, VmInventory};
use crate::ebpf::Ebpf;

/// The inventory and the slots; shared by the refresh task and /metrics.
pub struct VmTracker {
    ebpf: Option<Arc<Ebpf>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    inventory: VmInventory,
    /// qemu pid -> slot. A restarted VM is a new process and a new slot.
    slots: BTreeMap<u32, u32>,
    /// Thread id -> slot as last written to the kernel.
    tagged: HashMap<u32, u32>,
    /// Whether running out of slots was logged.
    warned_full: bool,
}

impl VmTracker {
    pub fn new(ebpf: Option<Arc<Ebpf>>) -> Self {
        Self {
            ebpf,
            state: Mutex::new(State::default()),
        }
    }

    /// The latest inventory.
    pub fn inventory(&self) -> VmInventory {
        self.lock().inventory.clone()
    }

    /// Each VM with its histogram index in RUNQ_HIST, when it has a slot.
    pub fn vms_with_hist(&self) -> Vec<(Vm, Option<u32>)> {
        let state = self.lock();
        state
            .inventory
            .vms
            .iter()
            .map(|vm| {
                (
                    vm.clone(),
                    state.slots.get(&vm.pid).map(|s| VM_HIST_BASE + s),
                )
            })
            .collect()
    }

    /// Replaces the inventory: frees the slots of VMs gone, gives new VMs a
    /// slot (with a zeroed histogram) and re-tags threads in the kernel.
    pub fn update(&self, inventory: VmInventory) {
        let mut state = self.lock();
        let live: Vec<u32> = inventory.vms.iter().map(|v| v.pid).collect();
        state.slots.retain(|pid, _| live.contains(pid));
        for vm in inventory.vms.iter().filter(|v| v.pid != 0) {
            if state.slots.contains_key(&vm.pid) {
                continue;
            }
            let used: Vec<u32> = state.slots.values().copied().collect();
            let Some(slot) = (0..MAX_VMS).find(|s| !used.contains(s)) else {
                if !state.warned_full {
                    tracing::warn!(max = MAX_VMS, vm = %vm.name, "more VMs than run-queue slots; the rest have no per-VM histogram");
                    state.warned_full = true;
                }
                continue;
            };
            if let Some(ebpf) = &self.ebpf
                && let Err(e) = ebpf.reset_runq_hist(VM_HIST_BASE + slot)
            {
                tracing::warn!(error = %e, vm = %vm.name, "cannot reset the VM's run-queue histogram");
                continue;
            }
            state.slots.insert(vm.pid, slot);
        }
        let mut wanted = HashMap::new();
        for vm in &inventory.vms {
            if let Some(&slot) = state.slots.get(&vm.pid) {
                wanted.extend(vm.threads.iter().map(|&tid| (tid, slot)));
            }
        }
        if let Some(ebpf) = &self.ebpf {
            sync_threads(ebpf, &state.tagged, &wanted);
        }
        state.tagged = wanted;
        state.inventory = inventory;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Writes the wanted tags (again: the LRU map may have evicted one) and
/// clears the tags of threads no longer in a VM.
fn sync_threads(ebpf: &Ebpf, tagged: &HashMap<u32, u32>, wanted: &HashMap<u32, u32>) {
    let untag = tagged
        .keys()
        .filter(|tid| !wanted.contains_key(tid))
        .map(|&t| (t, NO_VM));
    let tag = wanted.iter().map(|(&t, &s)| (t, s));
    for (tid, slot) in untag.chain(tag) {
        if let Err(e) = ebpf.set_task_vm(tid, slot) {
            tracing::debug!(tid, error = %e, "cannot tag thread for per-VM run-queue latency");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, pid: u32) -> Vm {
        Vm {
            name: name.into(),
            uuid: None,
            pid,
            vcpus: 1,
            memory_bytes: 1,
            accelerator: "tcg".into(),
            tap_interfaces: vec![],
            threads: vec![pid, pid + 1],
        }
    }

    #[test]
    fn slots_are_kept_freed_and_reused() {
        let t = VmTracker::new(None);
        t.update(VmInventory {
            vms: vec![vm("a", 10), vm("b", 20)],
            ..Default::default()
        });
        let slots = t.vms_with_hist();
        assert_eq!(slots[0].1, Some(VM_HIST_BASE));
        assert_eq!(slots[1].1, Some(VM_HIST_BASE + 1));
        // a stops, c starts: c takes a's freed slot, b keeps its own.
        t.update(VmInventory {
            vms: vec![vm("b", 20), vm("c", 30)],
            ..Default::default()
        });
        let slots = t.vms_with_hist();
        assert_eq!(
            (slots[0].0.name.as_str(), slots[0].1),
            ("b", Some(VM_HIST_BASE + 1))
        );
        assert_eq!(
            (slots[1].0.name.as_str(), slots[1].1),
            ("c", Some(VM_HIST_BASE))
        );
        assert_eq!(t.inventory().vms.len(), 2);
    }
}
