//! `ebpf_cost`: the agent's own kernel cost, per program, from the kernel's
//! BPF run-time statistics (BPF_ENABLE_STATS): runs, run time, and whether
//! the program is attached (a program over its budget is detached).

use std::sync::Arc;

use super::{CollectError, Collector};
use crate::{
    ebpf::{Ebpf, ProgramStatus},
    metrics::{Families, Kind},
};

pub struct EbpfCostCollector {
    ebpf: Arc<Ebpf>,
}

impl EbpfCostCollector {
    pub fn new(ebpf: Arc<Ebpf>) -> Self {
        Self { ebpf }
    }
}

impl Collector for EbpfCostCollector {
    fn name(&self) -> &'static str {
        "ebpf_cost"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let stats = self.ebpf.program_stats();
        out.gauge(
            "hyperwatch_ebpf_stats_enabled",
            "Whether the kernel's BPF run-time statistics are on (1), which the cost metrics need.",
            if self.ebpf.stats_enabled() { 1.0 } else { 0.0 },
        );
        let runs = out.add(
            "hyperwatch_ebpf_program_runs",
            "Times each eBPF program of the agent ran (kernel BPF statistics).",
            Kind::Counter,
        );
        for p in &stats {
            runs.push(vec![("program", p.name.to_owned())], p.run_count as f64);
        }
        let time = out.add(
            "hyperwatch_ebpf_program_run_seconds",
            "Time each eBPF program of the agent ran in the kernel (kernel BPF statistics).",
            Kind::Counter,
        );
        for p in &stats {
            time.push(
                vec![("program", p.name.to_owned())],
                p.run_time_ns as f64 / 1e9,
            );
        }
        let attached = out.add(
            "hyperwatch_ebpf_program_attached",
            "Whether each eBPF program is attached (1); 0 when this kernel lacks its tracepoint, the kernel refused it, or it was detached for exceeding its budget.",
            Kind::Gauge,
        );
        for p in &stats {
            attached.push(
                vec![("program", p.name.to_owned())],
                if p.status == ProgramStatus::Attached {
                    1.0
                } else {
                    0.0
                },
            );
        }
        Ok(())
    }
}
