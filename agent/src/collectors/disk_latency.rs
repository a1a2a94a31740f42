//! `disk_latency`: hyperwatch_disk_io_latency_seconds{device,operation},
//! each block request's time from issue to the device until completion,
//! measured in the kernel (block_rq_issue, block_rq_complete).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use agent_common::disk::{MINOR_BITS, op_name};

use super::{CollectError, Collector, histogram};
use crate::{
    config::DeviceCollector,
    ebpf::Ebpf,
    metrics::{Families, Kind, Sample},
};

pub struct DiskLatencyCollector {
    ebpf: Arc<Ebpf>,
    sysfs: PathBuf,
    filter: DeviceCollector,
    /// Kernel dev_t -> device name, from /sys/dev/block.
    names: Mutex<HashMap<u32, String>>,
}

impl DiskLatencyCollector {
    pub fn new(ebpf: Arc<Ebpf>, sysfs: PathBuf, filter: DeviceCollector) -> Self {
        Self {
            ebpf,
            sysfs,
            filter,
            names: Mutex::new(HashMap::new()),
        }
    }

    fn device_name(&self, dev: u32) -> String {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .entry(dev)
            .or_insert_with(|| device_name(&self.sysfs, dev))
            .clone()
    }
}

/// The name of kernel dev_t `dev` (major << 20 | minor): DEVNAME from
/// /sys/dev/block/MAJOR:MINOR/uevent, or "MAJOR:MINOR" when the device is
/// gone or unnamed.
pub fn device_name(sysfs: &std::path::Path, dev: u32) -> String {
    let (major, minor) = (dev >> MINOR_BITS, dev & ((1 << MINOR_BITS) - 1));
    let uevent = sysfs.join(format!("dev/block/{major}:{minor}/uevent"));
    std::fs::read_to_string(uevent)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("DEVNAME="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("{major}:{minor}"))
}

impl Collector for DiskLatencyCollector {
    fn name(&self) -> &'static str {
        "disk_latency"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let hists = self.ebpf.disk_hists().map_err(|e| CollectError::Map {
            map: "DISK_HIST",
            message: e.to_string(),
        })?;
        let family = out.add(
            "hyperwatch_disk_io_latency_seconds",
            "Time block requests took from issue to the device until completion, by device and operation.",
            Kind::Histogram,
        );
        for (key, hist) in hists {
            let device = self.device_name(key.dev);
            if !self.filter.accepts(&device) {
                continue;
            }
            family.samples.push(Sample {
                labels: vec![
                    ("device", device),
                    ("operation", op_name(key.op).to_owned()),
                ],
                value: histogram::seconds(&hist),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_uevent_and_fall_back_to_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dev/block/7:3");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("uevent"),
            "MAJOR=7\nMINOR=3\nDEVNAME=loop3\nDEVTYPE=disk\n",
        )
        .unwrap();
        assert_eq!(device_name(dir.path(), (7 << 20) | 3), "loop3");
        assert_eq!(device_name(dir.path(), (259 << 20) | 1), "259:1");
    }
}
