//! `cpu_busy`: hyperwatch_cpu_busy_seconds_total{cpu}, each CPU's non-idle
//! time as the sched_switch program measures it in the kernel.

use std::sync::Arc;

use agent_common::cpu::CpuBusy;

use super::{CollectError, Collector};
use crate::{
    ebpf::Ebpf,
    metrics::{Families, Kind},
};

pub struct CpuBusyCollector {
    ebpf: Arc<Ebpf>,
}

impl CpuBusyCollector {
    pub fn new(ebpf: Arc<Ebpf>) -> Self {
        Self { ebpf }
    }
}

impl Collector for CpuBusyCollector {
    fn name(&self) -> &'static str {
        "cpu_busy"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let records = self.ebpf.cpu_busy().map_err(|message| CollectError::Map {
            map: "CPU_BUSY",
            message,
        })?;
        let now = monotonic_ns();
        let family = out.add(
            "hyperwatch_cpu_busy_seconds",
            "Non-idle time of each CPU, measured in the kernel at every context switch.",
            Kind::Counter,
        );
        for (cpu, record) in records.iter().enumerate() {
            // A CPU never seen switching is offline or not present.
            if record.last_switch_ns == 0 {
                continue;
            }
            family.push(vec![("cpu", cpu.to_string())], busy_seconds(record, now));
        }
        Ok(())
    }
}

/// Busy time up to `now`: what the kernel accumulated, plus the running
/// stretch since the last switch when a task (not idle) holds the CPU, so a
/// thread spinning without switching is counted while it spins.
pub(crate) fn busy_seconds(record: &CpuBusy, now_ns: u64) -> f64 {
    let running = if record.current_is_idle == 0 {
        now_ns.saturating_sub(record.last_switch_ns)
    } else {
        0
    };
    (record.busy_ns + running) as f64 / 1e9
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns().
fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_cpu_counts_its_current_stretch() {
        let r = CpuBusy {
            busy_ns: 2_000_000_000,
            last_switch_ns: 10_000_000_000,
            current_is_idle: 0,
            _pad: 0,
        };
        assert_eq!(busy_seconds(&r, 10_500_000_000), 2.5);
    }

    #[test]
    fn an_idle_cpu_counts_only_what_was_accumulated() {
        let r = CpuBusy {
            busy_ns: 2_000_000_000,
            last_switch_ns: 10_000_000_000,
            current_is_idle: 1,
            _pad: 0,
        };
        assert_eq!(busy_seconds(&r, 99_000_000_000), 2.0);
    }
}
