//! The `storage` collector: reads the inventory each scrape, derives IOPS,
//! throughput and latency from the previous scrape's counters, and exports
//! `hyperwatch_storage_*` families.

use std::{path::PathBuf, sync::Mutex, time::Instant};

use super::{IoCounters, IoRates, StorageInventory, inventory};
use crate::{
    collectors::{CollectError, Collector},
    config::StorageConfig,
    metrics::{Families, Kind},
};

pub struct StorageCollector {
    config: StorageConfig,
    procfs: PathBuf,
    sysfs: PathBuf,
    last: Mutex<Option<(Instant, StorageInventory)>>,
}

impl StorageCollector {
    pub fn new(config: StorageConfig, procfs: PathBuf, sysfs: PathBuf) -> Self {
        Self {
            config,
            procfs,
            sysfs,
            last: Mutex::new(None),
        }
    }

    /// The inventory with rates since the previous call.
    pub fn read(&self) -> Result<StorageInventory, super::StorageError> {
        let mut inv = inventory(&self.config, &self.procfs, &self.sysfs)?;
        let now = Instant::now();
        let mut last = self.last.lock().expect("no panic while held");
        if let Some((then, prev)) = last.as_ref() {
            fill_rates(prev, &mut inv, now.duration_since(*then).as_secs_f64());
        }
        *last = Some((now, inv.clone()));
        Ok(inv)
    }
}

/// Sets `rates` of every device and LUN of `now` that `prev` also had.
pub fn fill_rates(prev: &StorageInventory, now: &mut StorageInventory, seconds: f64) {
    if seconds <= 0.0 {
        return;
    }
    let rate = |a: &IoCounters, b: &IoCounters| {
        let ios = (b.reads_completed + b.writes_completed)
            .saturating_sub(a.reads_completed + a.writes_completed);
        let bytes = (b.read_bytes + b.written_bytes).saturating_sub(a.read_bytes + a.written_bytes);
        let ms = b.io_time_ms.saturating_sub(a.io_time_ms);
        IoRates {
            iops: ios as f64 / seconds,
            bytes_per_second: bytes as f64 / seconds,
            latency_seconds: (ios > 0).then(|| ms as f64 / 1e3 / ios as f64),
        }
    };
    for d in &mut now.devices {
        let before = prev
            .devices
            .iter()
            .find(|p| p.id == d.id)
            .and_then(|p| p.io);
        if let (Some(a), Some(b)) = (before, d.io) {
            d.rates = Some(rate(&a, &b));
        }
    }
    for l in &mut now.luns {
        let before = prev.luns.iter().find(|p| p.id == l.id).and_then(|p| p.io);
        if let (Some(a), Some(b)) = (before, l.io) {
            l.rates = Some(rate(&a, &b));
        }
    }
}

impl Collector for StorageCollector {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let inv = self.read().map_err(|e| CollectError::Parse {
            path: PathBuf::from("storage inventory"),
            message: e.to_string(),
        })?;
        export(&inv, out);
        Ok(())
    }
}

/// The inventory as metric families.
pub fn export(inv: &StorageInventory, out: &mut Families) {
    type Labels = Vec<(&'static str, String)>;
    let dev: Vec<Labels> = inv
        .devices
        .iter()
        .map(|d| {
            vec![
                ("device", d.id.clone()),
                ("backend", d.backend.label().to_owned()),
                ("group", d.group.clone()),
            ]
        })
        .collect();
    let lun: Vec<Labels> = inv
        .luns
        .iter()
        .map(|l| {
            vec![
                ("lun", l.id.clone()),
                ("device", l.device.clone()),
                ("backend", l.backend.label().to_owned()),
            ]
        })
        .collect();
    let mut family = |name: &str, help: &str, kind: Kind, samples: Vec<(Labels, f64)>| {
        if !samples.is_empty() {
            let f = out.add(name, help, kind);
            for (labels, v) in samples {
                f.push(labels, v);
            }
        }
    };
    let devices = || inv.devices.iter().zip(&dev);
    let luns = || inv.luns.iter().zip(&lun);
    family(
        "hyperwatch_storage_device_capacity_bytes",
        "Usable bytes of a storage device.",
        Kind::Gauge,
        devices()
            .map(|(d, l)| (l.clone(), d.capacity_bytes as f64))
            .collect(),
    );
    family(
        "hyperwatch_storage_device_used_bytes",
        "Bytes in use on a storage device.",
        Kind::Gauge,
        devices()
            .map(|(d, l)| (l.clone(), d.used_bytes as f64))
            .collect(),
    );
    family(
        "hyperwatch_storage_lun_size_bytes",
        "Size of a LUN.",
        Kind::Gauge,
        luns()
            .map(|(x, l)| (l.clone(), x.size_bytes as f64))
            .collect(),
    );
    family(
        "hyperwatch_storage_lun_allocated_bytes",
        "Bytes a LUN really occupies (sparse images, thin volumes).",
        Kind::Gauge,
        luns()
            .filter_map(|(x, l)| Some((l.clone(), x.allocated_bytes? as f64)))
            .collect(),
    );
    /// A counter family: name suffix, help start, and its field.
    type IoFamily = (&'static str, &'static str, fn(&IoCounters) -> u64);
    let io_families: [IoFamily; 4] = [
        ("reads_completed", "Reads completed", |c| c.reads_completed),
        ("writes_completed", "Writes completed", |c| {
            c.writes_completed
        }),
        ("read_bytes", "Bytes read", |c| c.read_bytes),
        ("written_bytes", "Bytes written", |c| c.written_bytes),
    ];
    for (suffix, help, get) in io_families {
        family(
            &format!("hyperwatch_storage_device_{suffix}"),
            &format!("{help} by a storage device (/proc/diskstats)."),
            Kind::Counter,
            devices()
                .filter_map(|(d, l)| Some((l.clone(), get(d.io.as_ref()?) as f64)))
                .collect(),
        );
        family(
            &format!("hyperwatch_storage_lun_{suffix}"),
            &format!("{help} by a LUN (/proc/diskstats of its dm device)."),
            Kind::Counter,
            luns()
                .filter_map(|(x, l)| Some((l.clone(), get(x.io.as_ref()?) as f64)))
                .collect(),
        );
    }
    // Time spent on IO: with the IO counts it gives the mean latency over
    // any interval (node_exporter's node_disk_io_time_weighted idea, split
    // per device and LUN).
    let io_seconds = |c: &IoCounters| c.io_time_ms as f64 / 1e3;
    family(
        "hyperwatch_storage_device_io_time_seconds",
        "Seconds spent on reads and writes by a storage device (/proc/diskstats).",
        Kind::Counter,
        devices()
            .filter_map(|(d, l)| Some((l.clone(), io_seconds(d.io.as_ref()?))))
            .collect(),
    );
    family(
        "hyperwatch_storage_lun_io_time_seconds",
        "Seconds spent on reads and writes by a LUN (/proc/diskstats of its dm device).",
        Kind::Counter,
        luns()
            .filter_map(|(x, l)| Some((l.clone(), io_seconds(x.io.as_ref()?))))
            .collect(),
    );
    family(
        "hyperwatch_storage_device_iops",
        "IO operations per second of a storage device since the previous scrape.",
        Kind::Gauge,
        devices()
            .filter_map(|(d, l)| Some((l.clone(), d.rates?.iops)))
            .collect(),
    );
    family(
        "hyperwatch_storage_lun_iops",
        "IO operations per second of a LUN since the previous scrape.",
        Kind::Gauge,
        luns()
            .filter_map(|(x, l)| Some((l.clone(), x.rates?.iops)))
            .collect(),
    );
}
