//! Storage inventory: the devices and LUNs this host really has, read by
//! the configured backends, with their capacity, use and IO counters. The
//! `storage` collector exports it as `hyperwatch_storage_*` metrics; the
//! watchdog's rebalancer plans with it once it is streamed (the
//! [`StorageInventory`] struct is what goes over the wire).
//!
//! Layout:
//! * [`lvm`]: LVM volume groups: PVs as devices, LVs as LUNs (`vgs`/`pvs`/`lvs` JSON).
//! * [`dirpool`]: directory pools: a mounted file system as a device, image files as LUNs.
//! * [`block`]: plain block devices from /sys/block, partitions as LUNs.
//! * [`diskstats`]: /proc/diskstats counters, matched to devices and LUNs.
//! * [`collector`]: the `storage` collector and IOPS from successive scrapes.

pub mod block;
pub mod collector;
pub mod dirpool;
pub mod diskstats;
pub mod lvm;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::StorageConfig;

/// What a storage backend could not read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("running `{command}`: {message}")]
    Command { command: String, message: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {what}: {message}")]
    Parse { what: String, message: String },
}

/// Which backend found a device or LUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Lvm,
    DirectoryPool,
    Block,
    /// A device of a simulated storage host (`hyperwatch-agent --simulate`).
    Simulated,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Lvm => "lvm",
            Backend::DirectoryPool => "directory_pool",
            Backend::Block => "block",
            Backend::Simulated => "simulated",
        }
    }
}

/// IO counters since boot, as /proc/diskstats counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IoCounters {
    pub reads_completed: u64,
    pub writes_completed: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// Milliseconds spent on reads and writes (for mean latency).
    pub io_time_ms: u64,
}

/// IO rates between two inventories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IoRates {
    pub iops: f64,
    pub bytes_per_second: f64,
    /// Mean time per IO over the interval, when there was IO.
    pub latency_seconds: Option<f64>,
}

/// One storage device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageDevice {
    /// The name LUN moves use: a PV path, a pool name, a block device name.
    pub id: String,
    pub backend: Backend,
    /// The group its LUNs can move within (the VG; `pools`; `block`).
    pub group: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    /// The kernel block device behind it, when there is one.
    pub kernel_device: Option<String>,
    pub io: Option<IoCounters>,
    /// Filled from the previous inventory by the collector.
    pub rates: Option<IoRates>,
}

/// One LUN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageLun {
    /// `vg/lv`, an image file name, a partition name.
    pub id: String,
    pub backend: Backend,
    /// The device that holds it (for an LV on several PVs, the first).
    pub device: String,
    pub size_bytes: u64,
    /// Bytes really allocated (sparse images, thin LVs), when known.
    pub allocated_bytes: Option<u64>,
    pub kernel_device: Option<String>,
    pub io: Option<IoCounters>,
    pub rates: Option<IoRates>,
}

/// Every device and LUN the configured backends found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageInventory {
    pub devices: Vec<StorageDevice>,
    pub luns: Vec<StorageLun>,
}

/// Reads every configured backend; `procfs` and `sysfs` are the roots.
pub fn inventory(
    config: &StorageConfig,
    procfs: &std::path::Path,
    sysfs: &std::path::Path,
) -> Result<StorageInventory, StorageError> {
    let mut inv = StorageInventory::default();
    if !config.lvm_volume_groups.is_empty() {
        lvm::read(config, &mut inv)?;
    }
    for (name, dir) in &config.directory_pools {
        dirpool::read(name, dir, &mut inv)?;
    }
    for name in &config.block_devices {
        block::read(sysfs, name, &mut inv)?;
    }
    let stats = diskstats::read(procfs)?;
    diskstats::attach(&stats, &mut inv);
    Ok(inv)
}
