//! A host's usage over a bounded window of telemetry summaries: the host's
//! busy cores and used memory, each VM's busy cores and resident memory,
//! each storage device's used bytes, IOPS, throughput and IO latency, each
//! LUN's used bytes and IOPS. The planner and the rebalancer read
//! percentiles over these windows, so one spike moves nothing.

use std::collections::{BTreeMap, VecDeque};

use hyperwatch_proto::v1;
use serde::Serialize;

use crate::planner::percentile;

/// Summaries kept per host: 60 is ten minutes at the agent's default 10 s
/// telemetry (a minute at 1 s), and leaves the planner's p90 six samples
/// above it, so no single spike decides.
pub const USAGE_WINDOW: usize = 60;

/// The latest samples of one figure, oldest first, at most `capacity`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window<T> {
    samples: VecDeque<T>,
}

impl<T: Copy> Window<T> {
    fn push(&mut self, value: T, capacity: usize) {
        if self.samples.len() >= capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(value);
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<T> {
        self.samples.back().copied()
    }

    /// Every sample, oldest first.
    pub fn to_vec(&self) -> Vec<T> {
        self.samples.iter().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// One VM's usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VmWindow {
    pub cpu_cores: Window<f64>,
    pub memory_resident_bytes: Window<u64>,
}

/// One storage device's usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceWindow {
    pub used_bytes: Window<u64>,
    pub iops: Window<f64>,
    pub throughput_bytes_per_second: Window<f64>,
    pub io_latency_seconds: Window<f64>,
}

/// One LUN's usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LunWindow {
    /// The device that held it at the latest sample.
    pub device: String,
    pub used_bytes: Window<u64>,
    pub iops: Window<f64>,
}

/// Everything measured on one host, over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageWindows {
    capacity: usize,
    /// Summaries recorded since the host was first seen.
    pub summaries: u64,
    /// Busy cores of the whole host (utilisation times its cores).
    pub cpu_cores: Window<f64>,
    pub memory_used_bytes: Window<u64>,
    pub vms: BTreeMap<String, VmWindow>,
    pub devices: BTreeMap<String, DeviceWindow>,
    pub luns: BTreeMap<String, LunWindow>,
}

impl Default for UsageWindows {
    fn default() -> Self {
        Self::new(USAGE_WINDOW)
    }
}

impl UsageWindows {
    /// Empty windows of at most `capacity` samples each (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            summaries: 0,
            cpu_cores: Window::default(),
            memory_used_bytes: Window::default(),
            vms: BTreeMap::new(),
            devices: BTreeMap::new(),
            luns: BTreeMap::new(),
        }
    }

    /// The most samples a window keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a telemetry summary of a host with `cores` CPUs. Figures the
    /// summary lacks (rates in an agent's first one) are not sampled.
    pub fn record(&mut self, t: &v1::Telemetry, cores: u32) {
        let cap = self.capacity;
        self.summaries += 1;
        if let Some(u) = t.cpu_utilisation.filter(|_| cores > 0) {
            self.cpu_cores.push(u * f64::from(cores), cap);
        }
        if let Some(m) = t.memory_used_bytes {
            self.memory_used_bytes.push(m, cap);
        }
        for v in &t.vm_usage {
            let w = self.vms.entry(v.name.clone()).or_default();
            if let Some(c) = v.cpu_cores {
                w.cpu_cores.push(c, cap);
            }
            w.memory_resident_bytes.push(v.memory_resident_bytes, cap);
        }
        for d in &t.device_usage {
            let w = self.devices.entry(d.device.clone()).or_default();
            w.used_bytes.push(d.used_bytes, cap);
            if let Some(i) = d.iops {
                w.iops.push(i, cap);
            }
            if let Some(b) = d.throughput_bytes_per_second {
                w.throughput_bytes_per_second.push(b, cap);
            }
            if let Some(l) = d.io_latency_seconds {
                w.io_latency_seconds.push(l, cap);
            }
        }
        for l in &t.lun_usage {
            let w = self.luns.entry(l.lun.clone()).or_default();
            w.device.clone_from(&l.device);
            w.used_bytes.push(l.used_bytes, cap);
            if let Some(i) = l.iops {
                w.iops.push(i, cap);
            }
        }
    }

    /// Forgets the VMs, devices and LUNs `inventory` no longer lists (a VM
    /// that migrated away starts a new window where it arrives).
    pub fn retain(&mut self, inventory: &v1::Inventory) {
        self.vms
            .retain(|name, _| inventory.vms.iter().any(|v| &v.name == name));
        self.devices
            .retain(|id, _| inventory.storage.iter().any(|d| &d.name == id));
        self.luns.retain(|id, _| {
            inventory
                .storage
                .iter()
                .any(|d| d.luns.iter().any(|l| &l.id == id))
        });
    }
}

/// A window in figures, for the API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub latest: f64,
    pub p50: f64,
    /// What the planner reads by default.
    pub p90: f64,
    pub max: f64,
    pub samples: usize,
}

impl Stat {
    /// None for an empty window.
    fn of<T: Copy + Into<f64>>(w: &Window<T>) -> Option<Self> {
        let values: Vec<f64> = w.samples.iter().map(|&v| v.into()).collect();
        Some(Stat {
            latest: *values.last()?,
            p50: percentile(&values, 0.5)?,
            p90: percentile(&values, 0.9)?,
            max: values.iter().copied().fold(f64::MIN, f64::max),
            samples: values.len(),
        })
    }
}

/// The windows of one host in figures (`GET /api/v1/hosts/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageView {
    /// The most samples a window keeps.
    pub window: usize,
    pub summaries: u64,
    pub cpu_cores: Option<Stat>,
    pub memory_used_bytes: Option<Stat>,
    pub vms: BTreeMap<String, VmUsageView>,
    pub devices: BTreeMap<String, DeviceUsageView>,
    pub luns: BTreeMap<String, LunUsageView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VmUsageView {
    pub cpu_cores: Option<Stat>,
    pub memory_resident_bytes: Option<Stat>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceUsageView {
    pub used_bytes: Option<Stat>,
    pub iops: Option<Stat>,
    pub throughput_bytes_per_second: Option<Stat>,
    pub io_latency_seconds: Option<Stat>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LunUsageView {
    pub device: String,
    pub used_bytes: Option<Stat>,
    pub iops: Option<Stat>,
}

/// Byte counts as figures: exact below 2^53, far beyond any device.
fn bytes(w: &Window<u64>) -> Option<Stat> {
    let as_f64 = Window {
        samples: w.samples.iter().map(|&b| b as f64).collect(),
    };
    Stat::of(&as_f64)
}

impl UsageWindows {
    /// The windows in figures.
    pub fn view(&self) -> UsageView {
        UsageView {
            window: self.capacity,
            summaries: self.summaries,
            cpu_cores: Stat::of(&self.cpu_cores),
            memory_used_bytes: bytes(&self.memory_used_bytes),
            vms: self
                .vms
                .iter()
                .map(|(k, w)| {
                    let v = VmUsageView {
                        cpu_cores: Stat::of(&w.cpu_cores),
                        memory_resident_bytes: bytes(&w.memory_resident_bytes),
                    };
                    (k.clone(), v)
                })
                .collect(),
            devices: self
                .devices
                .iter()
                .map(|(k, w)| {
                    let v = DeviceUsageView {
                        used_bytes: bytes(&w.used_bytes),
                        iops: Stat::of(&w.iops),
                        throughput_bytes_per_second: Stat::of(&w.throughput_bytes_per_second),
                        io_latency_seconds: Stat::of(&w.io_latency_seconds),
                    };
                    (k.clone(), v)
                })
                .collect(),
            luns: self
                .luns
                .iter()
                .map(|(k, w)| {
                    let v = LunUsageView {
                        device: w.device.clone(),
                        used_bytes: bytes(&w.used_bytes),
                        iops: Stat::of(&w.iops),
                    };
                    (k.clone(), v)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(cpu: Option<f64>, vm_cores: Option<f64>, iops: f64) -> v1::Telemetry {
        v1::Telemetry {
            cpu_utilisation: cpu,
            memory_used_bytes: Some(100),
            vm_usage: vec![v1::VmUsage {
                name: "web".into(),
                cpu_cores: vm_cores,
                memory_resident_bytes: 64,
            }],
            device_usage: vec![v1::DeviceUsage {
                device: "d1".into(),
                used_bytes: 10,
                iops: Some(iops),
                throughput_bytes_per_second: None,
                io_latency_seconds: Some(0.002),
            }],
            lun_usage: vec![v1::LunUsage {
                lun: "v1".into(),
                device: "d1".into(),
                used_bytes: 5,
                iops: Some(iops / 2.0),
                throughput_bytes_per_second: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn windows_are_bounded_and_keep_the_newest() {
        let mut w = UsageWindows::new(3);
        w.record(&telemetry(None, None, 1.0), 8);
        assert!(w.cpu_cores.is_empty(), "no utilisation in a first summary");
        assert!(w.vms["web"].cpu_cores.is_empty());
        assert_eq!(w.vms["web"].memory_resident_bytes.to_vec(), vec![64]);
        for i in 2..=5 {
            w.record(&telemetry(Some(0.25), Some(f64::from(i)), f64::from(i)), 8);
        }
        assert_eq!(w.summaries, 5);
        assert_eq!(w.cpu_cores.to_vec(), vec![2.0, 2.0, 2.0], "0.25 of 8 cores");
        assert_eq!(w.vms["web"].cpu_cores.to_vec(), vec![3.0, 4.0, 5.0]);
        assert_eq!(w.devices["d1"].iops.to_vec(), vec![3.0, 4.0, 5.0]);
        assert_eq!(w.devices["d1"].io_latency_seconds.latest(), Some(0.002));
        assert!(w.devices["d1"].throughput_bytes_per_second.is_empty());
        assert_eq!(w.luns["v1"].iops.latest(), Some(2.5));
        assert_eq!(w.luns["v1"].device, "d1");
        let view = w.view();
        let web = view.vms["web"].cpu_cores.clone().unwrap();
        assert_eq!(
            (web.latest, web.p50, web.max, web.samples),
            (5.0, 4.0, 5.0, 3)
        );
        assert_eq!(view.window, 3);
        assert!(view.devices["d1"].throughput_bytes_per_second.is_none());
    }

    #[test]
    fn what_leaves_the_inventory_leaves_the_windows() {
        let mut w = UsageWindows::default();
        w.record(&telemetry(Some(0.5), Some(1.0), 1.0), 4);
        let inventory = v1::Inventory {
            storage: vec![v1::StorageDevice {
                name: "d1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        w.retain(&inventory);
        assert!(w.vms.is_empty() && w.luns.is_empty());
        assert!(w.devices.contains_key("d1"));
        assert_eq!(w.cpu_cores.len(), 1, "the host's own windows stay");
    }
}
