//! Hosts, VMs, devices and telemetry for the builders' tests.

use std::{
    ops::{Deref, DerefMut},
    sync::Arc,
};

use hyperwatch_proto::v1;

use super::HostCapacity;
use crate::{health::HostState, usage_window::UsageWindows};

/// A host under construction.
#[derive(Clone)]
pub struct TestHost {
    pub capacity: HostCapacity,
}

impl Deref for TestHost {
    type Target = HostCapacity;
    fn deref(&self) -> &HostCapacity {
        &self.capacity
    }
}

impl DerefMut for TestHost {
    fn deref_mut(&mut self) -> &mut HostCapacity {
        &mut self.capacity
    }
}

impl TestHost {
    pub fn record(&mut self, t: &v1::Telemetry) {
        let cores = self.capacity.inventory.cpu_cores;
        Arc::make_mut(&mut self.capacity.usage).record(t, cores);
    }

    pub fn roles(&mut self, roles: &[&str]) {
        Arc::make_mut(&mut self.capacity.inventory).roles =
            roles.iter().map(|r| (*r).to_owned()).collect();
    }

    pub fn storage(&mut self, devices: Vec<v1::StorageDevice>) {
        Arc::make_mut(&mut self.capacity.inventory).storage = devices;
    }
}

/// A healthy, connected hypervisor with 8 cores, 64 GiB and `vms`.
pub fn host(id: &str, vms: &[v1::VirtualMachine]) -> TestHost {
    TestHost {
        capacity: HostCapacity {
            id: id.to_owned(),
            state: HostState::Healthy,
            maintenance: false,
            connected: true,
            inventory: Arc::new(v1::Inventory {
                cpu_cores: 8,
                memory_bytes: 64 << 30,
                vms: vms.to_vec(),
                roles: vec!["hypervisor".into()],
                revision: 1,
                ..Default::default()
            }),
            usage: Arc::new(UsageWindows::default()),
        },
    }
}

/// A VM of tenant acme with 2 vCPUs and 2 GiB, labelled app = its name.
pub fn vm(name: &str, state: &str) -> v1::VirtualMachine {
    v1::VirtualMachine {
        name: name.to_owned(),
        vcpus: 2,
        memory_bytes: 2 << 30,
        state: state.to_owned(),
        tenant: "acme".into(),
        labels: [("app".to_owned(), name.to_owned())].into(),
        ..Default::default()
    }
}

/// A summary: host utilisation `cpu`, 4 GiB used; each VM with its busy
/// cores and 1 GiB resident.
pub fn telemetry(cpu: f64, vms: &[(&str, f64)]) -> v1::Telemetry {
    v1::Telemetry {
        cpu_utilisation: Some(cpu),
        memory_used_bytes: Some(4 << 30),
        vm_usage: vms
            .iter()
            .map(|(name, cores)| v1::VmUsage {
                name: (*name).to_owned(),
                cpu_cores: Some(*cores),
                memory_resident_bytes: 1 << 30,
            })
            .collect(),
        ..Default::default()
    }
}

/// A 100 GiB simulated device with `luns`.
pub fn device(name: &str, group: &str, shared: bool, luns: Vec<v1::Lun>) -> v1::StorageDevice {
    v1::StorageDevice {
        name: name.to_owned(),
        kind: "simulated".into(),
        capacity_bytes: 100 << 30,
        used_bytes: 0,
        luns,
        group: group.to_owned(),
        shared_group: shared,
    }
}

/// A 10 GiB LUN with 8 GiB allocated.
pub fn lun(id: &str, state: &str) -> v1::Lun {
    v1::Lun {
        id: id.to_owned(),
        size_bytes: 10 << 30,
        used_bytes: 8 << 30,
        state: state.to_owned(),
        ..Default::default()
    }
}

/// A summary of one device (2 ms latency) and its LUNs (5 GiB used each).
pub fn storage_telemetry(
    device: &str,
    used: u64,
    iops: f64,
    luns: &[(&str, f64)],
) -> v1::Telemetry {
    v1::Telemetry {
        device_usage: vec![v1::DeviceUsage {
            device: device.to_owned(),
            used_bytes: used,
            iops: Some(iops),
            throughput_bytes_per_second: Some(iops * 16384.0),
            io_latency_seconds: Some(0.002),
        }],
        lun_usage: luns
            .iter()
            .map(|(lun, iops)| v1::LunUsage {
                lun: (*lun).to_owned(),
                device: device.to_owned(),
                used_bytes: 5 << 30,
                iops: Some(*iops),
                throughput_bytes_per_second: None,
            })
            .collect(),
        ..Default::default()
    }
}
