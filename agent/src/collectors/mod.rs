//! The collectors: one file each, one small trait, and the registry that
//! runs the enabled ones for a scrape.
//!
//! Every /proc and /sys read goes through the configured roots
//! ([`crate::config::PathsConfig`]), so each parser is tested on fixture
//! trees. A collector that fails contributes no samples, only
//! `hyperwatch_scrape_collector_success{collector} 0`; the others still serve.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use crate::{
    config::Config,
    ebpf::Ebpf,
    metrics::{Families, Family, Kind},
};

mod cpu;
mod cpu_busy;
mod cpu_stuck;
mod disk_latency;
pub(crate) mod diskstats;
mod ebpf_cost;
mod histogram;
mod loadavg;
mod meminfo;
mod netdev;
mod pressure;
mod process_exits;
mod runqueue;
mod schedstat;
mod services;
mod stat;
mod vm;

pub use self::{
    process_exits::ProcessExitsCollector, services::ServicesCollector, vm::VmCollector,
};

/// What went wrong in one collection.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("reading eBPF map {map}: {message}")]
    Map { map: &'static str, message: String },
    /// The kernel does not provide this data (node_exporter's ErrNoData):
    /// the collector reports failure, but it is logged at debug level only,
    /// since it repeats on every scrape and is no fault of the host.
    #[error("{path}: no data: {reason}")]
    NoData { path: PathBuf, reason: &'static str },
}

/// One source of metrics.
pub trait Collector: Send + Sync {
    /// The name in `--collector.NAME` and in the `collector` label.
    fn name(&self) -> &'static str;
    /// Appends this collector's families to `out`.
    fn collect(&self, out: &mut Families) -> Result<(), CollectError>;
}

/// The collectors this agent knows, with a line of help for `--help`.
pub const COLLECTORS: &[(&str, &str)] = &[
    ("cpu", "CPU time by mode from /proc/stat"),
    (
        "stat",
        "context switches, forks, interrupts, boot time, processes from /proc/stat",
    ),
    ("loadavg", "load averages from /proc/loadavg"),
    ("meminfo", "memory usage from /proc/meminfo"),
    ("diskstats", "block device IO counters from /proc/diskstats"),
    ("netdev", "network interface counters from /proc/net/dev"),
    ("pressure", "pressure stall information from /proc/pressure"),
    (
        "schedstat",
        "per-CPU scheduler statistics from /proc/schedstat",
    ),
    (
        "cpu_busy",
        "per-CPU busy time measured in the kernel by eBPF (sched_switch)",
    ),
    (
        "storage",
        "storage devices and LUNs of the [storage] backends (LVM, directory pools, block)",
    ),
    (
        "runqueue",
        "run-queue latency histogram measured by eBPF (sched_wakeup, sched_switch)",
    ),
    (
        "disk_latency",
        "disk IO latency histograms by device and operation, by eBPF (block_rq_*)",
    ),
    (
        "process_exits",
        "process exits by outcome and OOM kills, by eBPF (sched_process_exit, oom)",
    ),
    (
        "cpu_stuck",
        "time since each CPU's last context switch, and stuck-CPU events (eBPF)",
    ),
    (
        "ebpf_cost",
        "run count and run time of each of the agent's eBPF programs",
    ),
    (
        "vm",
        "the VMs on this host (libvirt or qemu in /proc): inventory, CPU, memory, disk, network",
    ),
];

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A parse error for `path`.
pub(crate) fn parse_error(path: &Path, message: impl Into<String>) -> CollectError {
    CollectError::Parse {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The enabled collectors, in scrape order.
pub struct Registry {
    collectors: Vec<Box<dyn Collector>>,
}

impl Registry {
    /// Builds the collectors `config` enables. eBPF collectors are added only
    /// when the programs are loaded.
    pub fn new(config: &Config, ebpf: Option<Arc<Ebpf>>) -> Self {
        let c = &config.collectors;
        let proc = config.paths.procfs.clone();
        let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
        if c.cpu.enabled {
            collectors.push(Box::new(cpu::CpuCollector::new(&proc)));
        }
        if c.stat.enabled {
            collectors.push(Box::new(stat::StatCollector::new(&proc)));
        }
        if c.loadavg.enabled {
            collectors.push(Box::new(loadavg::LoadavgCollector::new(proc.clone())));
        }
        if c.meminfo.enabled {
            collectors.push(Box::new(meminfo::MeminfoCollector::new(&proc)));
        }
        if c.diskstats.enabled {
            collectors.push(Box::new(diskstats::DiskstatsCollector::new(
                &proc,
                config.paths.udev_data.clone(),
                c.diskstats.clone(),
            )));
        }
        if c.netdev.enabled {
            collectors.push(Box::new(netdev::NetdevCollector::new(
                &proc,
                c.netdev.clone(),
            )));
        }
        if c.pressure.enabled {
            collectors.push(Box::new(pressure::PressureCollector::new(&proc)));
        }
        if c.schedstat.enabled {
            collectors.push(Box::new(schedstat::SchedstatCollector::new(&proc)));
        }
        if c.storage.enabled {
            collectors.push(Box::new(crate::storage::collector::StorageCollector::new(
                config.storage.clone(),
                proc.clone(),
                config.paths.sysfs.clone(),
            )));
        }
        if let (true, Some(ebpf)) = (c.cpu_busy.enabled, &ebpf) {
            collectors.push(Box::new(cpu_busy::CpuBusyCollector::new(ebpf.clone())));
        }
        if let Some(ebpf) = &ebpf {
            if c.runqueue.enabled {
                collectors.push(Box::new(runqueue::RunqueueCollector::new(ebpf.clone())));
            }
            if c.disk_latency.enabled {
                collectors.push(Box::new(disk_latency::DiskLatencyCollector::new(
                    ebpf.clone(),
                    config.paths.sysfs.clone(),
                    c.disk_latency.clone(),
                )));
            }
            if c.cpu_stuck.enabled {
                collectors.push(Box::new(cpu_stuck::CpuStuckCollector::new(ebpf.clone())));
            }
            if c.ebpf_cost.enabled {
                collectors.push(Box::new(ebpf_cost::EbpfCostCollector::new(ebpf.clone())));
            }
        }
        Self { collectors }
    }

    /// Adds a collector that needs state the registry does not build (the
    /// exit feed, the VM tracker, the service states).
    pub fn push(&mut self, collector: Box<dyn Collector>) {
        self.collectors.push(collector);
    }

    /// Names of the collectors that run.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.collectors.iter().map(|c| c.name())
    }

    /// Runs every collector and returns their families followed by the
    /// per-collector success and duration families.
    pub fn gather(&self) -> Vec<Family> {
        let mut all = Families::default();
        let mut success = Family::new(
            "hyperwatch_scrape_collector_success",
            "Whether a collector succeeded (1) or failed (0) in this scrape.",
            Kind::Gauge,
        );
        let mut duration = Family::new(
            "hyperwatch_scrape_collector_duration_seconds",
            "Time a collector took in this scrape.",
            Kind::Gauge,
        );
        for collector in &self.collectors {
            let start = Instant::now();
            let mut out = Families::default();
            let ok = match collector.collect(&mut out) {
                Ok(()) => {
                    all.0.append(&mut out.0);
                    true
                }
                Err(e @ CollectError::NoData { .. }) => {
                    tracing::debug!(collector = collector.name(), error = %e, "collector has no data");
                    false
                }
                Err(e) => {
                    tracing::warn!(collector = collector.name(), error = %e, "collector failed");
                    false
                }
            };
            let label = vec![("collector", collector.name().to_owned())];
            duration.push(label.clone(), start.elapsed().as_secs_f64());
            success.push(label, if ok { 1.0 } else { 0.0 });
        }
        all.0.push(success);
        all.0.push(duration);
        all.0
    }
}
