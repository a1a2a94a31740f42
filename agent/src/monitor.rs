//! Periodic kernel checks: stuck CPUs (from the per-CPU switch stamps) and
//! the eBPF cost budget (from the kernel's BPF statistics). Each runs as a
//! task until the agent stops.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    clock::monotonic_ns,
    ebpf::{Ebpf, budget::BudgetConfig},
    events::{AgentEvent, EventBus},
    stuck::{StuckChange, StuckDetector},
};

/// The longest time between CPU checks: a stuck CPU is reported within a
/// second of crossing the threshold, at the cost of one small map read.
const STUCK_CHECK_MAX: Duration = Duration::from_secs(1);
/// The shortest: no point in reading the map more often.
const STUCK_CHECK_MIN: Duration = Duration::from_millis(50);

/// Checks four times per threshold (a short threshold is seen in time),
/// between the two bounds.
fn stuck_check_interval(threshold_seconds: f64) -> Duration {
    Duration::from_secs_f64(threshold_seconds.max(0.0) / 4.0)
        .clamp(STUCK_CHECK_MIN, STUCK_CHECK_MAX)
}

/// Publishes CpuStuck / CpuRecovered events.
pub async fn watch_stuck_cpus(ebpf: Arc<Ebpf>, threshold_seconds: f64, bus: EventBus) {
    let mut detector = StuckDetector::new(threshold_seconds);
    let mut ticks = tokio::time::interval(stuck_check_interval(threshold_seconds));
    loop {
        ticks.tick().await;
        let records = match ebpf.cpu_busy() {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "reading CPU_BUSY for stuck CPUs");
                continue;
            }
        };
        for change in detector.update(&records, monotonic_ns()) {
            let at = SystemTime::now();
            let event = match change {
                StuckChange::Stuck {
                    cpu,
                    since_switch_seconds,
                } => {
                    tracing::warn!(cpu, since_switch_seconds, "CPU stuck: no context switch");
                    AgentEvent::CpuStuck {
                        cpu,
                        since_switch_seconds,
                        at,
                    }
                }
                StuckChange::Recovered { cpu, stuck_seconds } => {
                    tracing::info!(cpu, stuck_seconds, "CPU switching again");
                    AgentEvent::CpuRecovered {
                        cpu,
                        stuck_seconds,
                        at,
                    }
                }
            };
            bus.publish(event);
        }
    }
}

/// Detaches programs over their budget, logging why and publishing it.
pub async fn enforce_budget(ebpf: Arc<Ebpf>, budget: BudgetConfig, bus: EventBus) {
    let mut ticks = tokio::time::interval(budget.interval());
    ticks.tick().await;
    let mut before = ebpf.program_stats();
    let mut then = Instant::now();
    loop {
        ticks.tick().await;
        let after = ebpf.program_stats();
        let now = Instant::now();
        for (program, reason) in budget.over_budget(&before, &after, now - then) {
            match ebpf.detach(program, reason.clone()) {
                Ok(()) => {
                    tracing::error!(program, %reason, "eBPF program over its budget: detached; the other programs keep running");
                    bus.publish(AgentEvent::EbpfProgramDetached {
                        program: program.to_owned(),
                        reason,
                        at: SystemTime::now(),
                    });
                }
                Err(e) => {
                    tracing::error!(program, error = %e, "cannot detach eBPF program over its budget")
                }
            }
        }
        before = after;
        then = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stuck_check_follows_the_threshold_within_bounds() {
        assert_eq!(stuck_check_interval(20.0), STUCK_CHECK_MAX);
        assert_eq!(stuck_check_interval(0.4), Duration::from_millis(100));
        assert_eq!(stuck_check_interval(0.0), STUCK_CHECK_MIN);
    }
}
