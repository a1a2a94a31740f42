//! `cpu_stuck`: hyperwatch_cpu_since_last_switch_seconds{cpu}, how long each
//! CPU has run its current task without a context switch (0 while idle).
//! The events for CPUs past the threshold come from [`crate::stuck`].

use std::sync::Arc;

use super::{CollectError, Collector};
use crate::{
    clock::monotonic_ns,
    ebpf::Ebpf,
    metrics::{Families, Kind},
    stuck::since_last_switch,
};

pub struct CpuStuckCollector {
    ebpf: Arc<Ebpf>,
}

impl CpuStuckCollector {
    pub fn new(ebpf: Arc<Ebpf>) -> Self {
        Self { ebpf }
    }
}

impl Collector for CpuStuckCollector {
    fn name(&self) -> &'static str {
        "cpu_stuck"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let records = self.ebpf.cpu_busy().map_err(|message| CollectError::Map {
            map: "CPU_BUSY",
            message,
        })?;
        let now = monotonic_ns();
        let family = out.add(
            "hyperwatch_cpu_since_last_switch_seconds",
            "Time each CPU has run its current task without a context switch; 0 while the CPU is idle.",
            Kind::Gauge,
        );
        for (cpu, record) in records.iter().enumerate() {
            if let Some(seconds) = since_last_switch(record, now) {
                family.push(vec![("cpu", cpu.to_string())], seconds);
            }
        }
        Ok(())
    }
}
