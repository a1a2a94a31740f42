//! The simulated host's inventory as the protocol carries it: VMs with
//! their state during a migration, devices with the LUN copies on them.

use hyperwatch_proto::v1;

use super::{model::SimHost, scenario::HostKind};
use crate::stream::inventory::{ROLE_HYPERVISOR, ROLE_STORAGE};

/// The kernel release a simulated host reports.
pub const SIMULATED_KERNEL: &str = "simulated";

/// The inventory of `h` (revision set by the publisher).
pub fn inventory(h: &SimHost) -> v1::Inventory {
    let role = match h.kind {
        HostKind::Hypervisor => ROLE_HYPERVISOR,
        HostKind::Storage => ROLE_STORAGE,
    };
    v1::Inventory {
        cpu_cores: h.cores,
        memory_bytes: h.memory_bytes,
        kernel_release: SIMULATED_KERNEL.into(),
        roles: vec![role.into()],
        revision: 0,
        services: h.services.keys().cloned().collect(),
        vms: h
            .vms
            .iter()
            .map(|(name, vm)| {
                let p = &vm.profile;
                v1::VirtualMachine {
                    name: name.clone(),
                    uuid: String::new(),
                    vcpus: p.vcpus,
                    memory_bytes: p.memory_bytes,
                    state: vm.state.as_str().into(),
                    tenant: p.tenant.clone(),
                    labels: p.labels.clone().into_iter().collect(),
                    priority: p.priority,
                    unmovable_reason: p.unmovable_reason.clone(),
                }
            })
            .collect(),
        storage: h
            .devices
            .iter()
            .map(|(id, d)| v1::StorageDevice {
                name: id.clone(),
                kind: crate::storage::Backend::Simulated.label().into(),
                capacity_bytes: d.capacity,
                used_bytes: h.device_used(id),
                group: d.group.clone(),
                shared_group: d.shared,
                luns: h
                    .luns
                    .iter()
                    .filter(|((_, device), _)| device == id)
                    .map(|((lun, _), l)| v1::Lun {
                        id: lun.clone(),
                        size_bytes: l.size,
                        consumer: l.consumer.clone(),
                        used_bytes: l.used as u64,
                        pinned: l.pinned,
                        state: l.state.as_str().into(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
