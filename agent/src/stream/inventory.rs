//! The host's inventory for the watchdog: its size, the VMs from the VM
//! tracker and the devices and LUNs of the storage backends, numbered by
//! revision. The stream sends the latest in every hello and an
//! `InventoryUpdate` after every change; changing usage figures (used
//! bytes) alone are not a change, telemetry carries those.

use std::{path::PathBuf, sync::Arc, time::Duration};

use hyperwatch_proto::v1;
use tokio::sync::watch;

use crate::{
    config::StorageConfig,
    storage::{self, StorageInventory},
    vm::{Vm, VmInventory, tracker::VmTracker},
};

/// The `Inventory.roles` word of a host that runs VMs.
pub const ROLE_HYPERVISOR: &str = "hypervisor";
/// The `Inventory.roles` word of a host that serves LUNs.
pub const ROLE_STORAGE: &str = "storage";

/// How often the VM tracker's inventory (in memory, refreshed by its own
/// task) is compared with the last one published: a VM that starts or
/// leaves reaches the watchdog within a second of the tracker seeing it.
const VM_CHECK: Duration = Duration::from_secs(1);
/// How often the storage backends are read for the inventory: `lvs`/`pvs`
/// cost tens of milliseconds, and LUNs are created or moved in minutes.
const STORAGE_REFRESH: Duration = Duration::from_secs(10);

/// The latest inventory, shared by its producers and the stream.
#[derive(Debug)]
pub struct InventoryPublisher {
    tx: watch::Sender<Arc<v1::Inventory>>,
}

impl Default for InventoryPublisher {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(Arc::new(v1::Inventory::default())),
        }
    }
}

impl InventoryPublisher {
    /// Publishes `inventory` with the next revision when its VMs or storage
    /// layout differ from the last one published; returns whether it did.
    pub fn publish(&self, inventory: v1::Inventory) -> bool {
        let mut next = Some(inventory);
        self.tx.send_if_modified(|current| {
            let mut inventory = next.take().expect("called once");
            if current.revision > 0 && same_layout(current, &inventory) {
                return false;
            }
            inventory.revision = current.revision + 1;
            *current = Arc::new(inventory);
            true
        })
    }

    /// The latest inventory (revision 0 before the first publication).
    pub fn current(&self) -> Arc<v1::Inventory> {
        self.tx.borrow().clone()
    }

    /// Tells its holder about every publication from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<v1::Inventory>> {
        self.tx.subscribe()
    }
}

/// Whether two inventories list the same host, VMs and storage layout,
/// ignoring the used-bytes figures that change with every write.
pub fn same_layout(a: &v1::Inventory, b: &v1::Inventory) -> bool {
    let layout = |i: &v1::Inventory| {
        let mut i = i.clone();
        i.revision = 0;
        for d in &mut i.storage {
            d.used_bytes = 0;
            for l in &mut d.luns {
                l.used_bytes = 0;
            }
        }
        i
    };
    layout(a) == layout(b)
}

/// A VM of the tracker as the protocol carries it: the tracker lists the
/// VMs whose qemu process runs.
pub fn vm_message(vm: &Vm) -> v1::VirtualMachine {
    v1::VirtualMachine {
        name: vm.name.clone(),
        uuid: vm.uuid.clone().unwrap_or_default(),
        vcpus: vm.vcpus,
        memory_bytes: vm.memory_bytes,
        state: "running".into(),
        ..Default::default()
    }
}

/// The storage inventory as devices with their LUNs. Groups of real
/// backends are local to the host (an LVM volume group lives on one host).
pub fn storage_messages(inv: &StorageInventory) -> Vec<v1::StorageDevice> {
    inv.devices
        .iter()
        .map(|d| v1::StorageDevice {
            name: d.id.clone(),
            kind: d.backend.label().to_owned(),
            capacity_bytes: d.capacity_bytes,
            used_bytes: d.used_bytes,
            group: d.group.clone(),
            shared_group: false,
            luns: inv
                .luns
                .iter()
                .filter(|l| l.device == d.id)
                .map(|l| v1::Lun {
                    id: l.id.clone(),
                    size_bytes: l.size_bytes,
                    consumer: String::new(),
                    used_bytes: l.allocated_bytes.unwrap_or(0),
                    pinned: false,
                    state: String::new(),
                })
                .collect(),
        })
        .collect()
}

/// Where the real inventory comes from.
pub struct RealSources {
    /// The host part (cores, memory, kernel, roles).
    pub base: v1::Inventory,
    /// The VMs, when the `vm` collector runs.
    pub vms: Option<Arc<VmTracker>>,
    /// The storage backends and /proc, /sys roots, when storage is configured.
    pub storage: Option<(StorageConfig, PathBuf, PathBuf)>,
}

impl RealSources {
    /// The inventory from the given VMs and storage.
    fn inventory(&self, vms: &VmInventory, storage: &StorageInventory) -> v1::Inventory {
        let mut inv = self.base.clone();
        inv.vms = vms.vms.iter().map(vm_message).collect();
        inv.storage = storage_messages(storage);
        inv
    }
}

/// Publishes the real host's inventory now and after every change, forever.
pub async fn watch_real(publisher: Arc<InventoryPublisher>, sources: RealSources) {
    let mut storage = StorageInventory::default();
    let mut storage_error = String::new();
    let mut tick = tokio::time::interval(VM_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_storage_read: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        if let Some((config, procfs, sysfs)) = &sources.storage
            && last_storage_read.is_none_or(|t| t.elapsed() >= STORAGE_REFRESH)
        {
            last_storage_read = Some(tokio::time::Instant::now());
            let (config, procfs, sysfs) = (config.clone(), procfs.clone(), sysfs.clone());
            let read =
                tokio::task::spawn_blocking(move || storage::inventory(&config, &procfs, &sysfs))
                    .await;
            match read {
                Ok(Ok(inv)) => {
                    storage_error.clear();
                    storage = inv;
                }
                Ok(Err(e)) => {
                    let message = e.to_string();
                    if message != storage_error {
                        tracing::warn!(error = %message, "storage inventory failed; keeping the last one");
                        storage_error = message;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "storage inventory task failed"),
            }
        }
        let vms = sources
            .vms
            .as_ref()
            .map(|t| t.inventory())
            .unwrap_or_default();
        let inventory = sources.inventory(&vms, &storage);
        if publisher.publish(inventory) {
            let current = publisher.current();
            tracing::info!(
                revision = current.revision,
                vms = current.vms.len(),
                devices = current.storage.len(),
                "inventory changed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, StorageDevice, StorageLun};

    fn inventory(vms: &[&str], used: u64) -> v1::Inventory {
        v1::Inventory {
            cpu_cores: 4,
            vms: vms
                .iter()
                .map(|n| v1::VirtualMachine {
                    name: (*n).into(),
                    state: "running".into(),
                    ..Default::default()
                })
                .collect(),
            storage: vec![v1::StorageDevice {
                name: "d1".into(),
                used_bytes: used,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_new_revision_only_when_the_layout_changes() {
        let p = InventoryPublisher::default();
        let mut rx = p.subscribe();
        assert!(p.publish(inventory(&["a"], 10)));
        assert_eq!(p.current().revision, 1);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert!(!p.publish(inventory(&["a"], 99)), "used bytes are usage");
        assert!(!rx.has_changed().unwrap());
        assert_eq!(p.current().storage[0].used_bytes, 10);
        assert!(p.publish(inventory(&["a", "b"], 99)));
        assert_eq!(p.current().revision, 2);
        assert_eq!(p.current().vms.len(), 2);
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn storage_devices_carry_their_luns() {
        let inv = StorageInventory {
            devices: vec![StorageDevice {
                id: "/dev/loop0".into(),
                backend: Backend::Lvm,
                group: "vg0".into(),
                capacity_bytes: 100,
                used_bytes: 40,
                kernel_device: None,
                io: None,
                rates: None,
            }],
            luns: vec![StorageLun {
                id: "vg0/data".into(),
                backend: Backend::Lvm,
                device: "/dev/loop0".into(),
                size_bytes: 40,
                allocated_bytes: Some(12),
                kernel_device: None,
                io: None,
                rates: None,
            }],
        };
        let d = &storage_messages(&inv)[0];
        assert_eq!(
            (d.name.as_str(), d.kind.as_str(), d.group.as_str()),
            ("/dev/loop0", "lvm", "vg0")
        );
        assert!(!d.shared_group);
        assert_eq!(
            (
                d.luns[0].id.as_str(),
                d.luns[0].size_bytes,
                d.luns[0].used_bytes
            ),
            ("vg0/data", 40, 12)
        );
    }
}
