//! `runqueue`: hyperwatch_runqueue_latency_seconds, the time threads wait
//! between becoming runnable and running, measured in the kernel by the
//! scheduler programs (sched_wakeup, sched_wakeup_new, sched_switch).

use std::sync::Arc;

use agent_common::runq::HOST_HIST;

use super::{CollectError, Collector, histogram};
use crate::{
    ebpf::Ebpf,
    metrics::{Families, Kind, Sample},
};

pub struct RunqueueCollector {
    ebpf: Arc<Ebpf>,
}

impl RunqueueCollector {
    pub fn new(ebpf: Arc<Ebpf>) -> Self {
        Self { ebpf }
    }
}

impl Collector for RunqueueCollector {
    fn name(&self) -> &'static str {
        "runqueue"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let hist = self
            .ebpf
            .runq_hist(HOST_HIST)
            .map_err(|e| CollectError::Map {
                map: "RUNQ_HIST",
                message: e.to_string(),
            })?;
        out.add(
            "hyperwatch_runqueue_latency_seconds",
            "Time threads waited in a run queue between becoming runnable (woken or preempted) and running.",
            Kind::Histogram,
        )
        .samples
        .push(Sample {
            labels: Vec::new(),
            value: histogram::seconds(&hist),
        });
        Ok(())
    }
}
