//! Stuck CPUs: a CPU that has run one task without a context switch far
//! longer than normal (a kernel soft lockup, a runaway real-time task, or a
//! vCPU thread pinned alone under NOHZ_FULL). The kernel programs stamp each
//! switch; this turns the stamps into the time since the last one and into
//! stuck/recovered events. Pure: the caller supplies the clock.

use std::collections::BTreeMap;

use agent_common::cpu::CpuBusy;
use serde::Deserialize;

/// Settings of the `cpu_stuck` collector.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StuckConfig {
    /// Whether the gauge and the events are produced.
    pub enabled: bool,
    /// A CPU busy this many seconds without a context switch is stuck.
    pub threshold_seconds: f64,
}

/// 20 s: the kernel's own soft-lockup report fires after 2 x
/// watchdog_thresh (10 s by default), and a healthy busy CPU switches at
/// least every few milliseconds whenever another task is runnable.
const DEFAULT_THRESHOLD_SECONDS: f64 = 20.0;

impl Default for StuckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold_seconds: DEFAULT_THRESHOLD_SECONDS,
        }
    }
}

/// Seconds since the CPU's last context switch while a task (not the idle
/// task) runs; 0 while idle (an idle tickless CPU does not switch either,
/// and that is not a problem); None for a CPU never seen switching
/// (offline or absent).
pub fn since_last_switch(record: &CpuBusy, now_ns: u64) -> Option<f64> {
    if record.last_switch_ns == 0 {
        return None;
    }
    if record.current_is_idle != 0 {
        return Some(0.0);
    }
    Some(now_ns.saturating_sub(record.last_switch_ns) as f64 / 1e9)
}

/// A change the detector saw.
#[derive(Clone, Debug, PartialEq)]
pub enum StuckChange {
    Stuck { cpu: u32, since_switch_seconds: f64 },
    Recovered { cpu: u32, stuck_seconds: f64 },
}

/// Remembers which CPUs are stuck, so each episode is reported once.
#[derive(Debug)]
pub struct StuckDetector {
    threshold_ns: u64,
    /// CPU -> last_switch_ns when it was found stuck.
    stuck: BTreeMap<u32, u64>,
}

impl StuckDetector {
    pub fn new(threshold_seconds: f64) -> Self {
        Self {
            threshold_ns: (threshold_seconds * 1e9) as u64,
            stuck: BTreeMap::new(),
        }
    }

    /// Compares the records (indexed by CPU) at `now_ns` with what it saw
    /// before.
    pub fn update(&mut self, records: &[CpuBusy], now_ns: u64) -> Vec<StuckChange> {
        let mut changes = Vec::new();
        for (cpu, record) in records.iter().enumerate() {
            let cpu = cpu as u32;
            if let Some(&since) = self.stuck.get(&cpu) {
                if record.last_switch_ns != since {
                    self.stuck.remove(&cpu);
                    changes.push(StuckChange::Recovered {
                        cpu,
                        stuck_seconds: record.last_switch_ns.saturating_sub(since) as f64 / 1e9,
                    });
                }
                continue;
            }
            let Some(seconds) = since_last_switch(record, now_ns) else {
                continue;
            };
            if seconds * 1e9 >= self.threshold_ns as f64 {
                self.stuck.insert(cpu, record.last_switch_ns);
                changes.push(StuckChange::Stuck {
                    cpu,
                    since_switch_seconds: seconds,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(last: u64, idle: bool) -> CpuBusy {
        CpuBusy {
            busy_ns: 0,
            last_switch_ns: last,
            current_is_idle: u32::from(idle),
            _pad: 0,
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn idle_and_absent_cpus_are_never_stuck() {
        assert_eq!(since_last_switch(&rec(0, false), 100 * S), None);
        assert_eq!(since_last_switch(&rec(S, true), 100 * S), Some(0.0));
        assert_eq!(since_last_switch(&rec(S, false), 3 * S), Some(2.0));
    }

    #[test]
    fn one_event_per_episode_then_recovery_with_its_length() {
        let mut d = StuckDetector::new(20.0);
        let cpus = [rec(10 * S, false), rec(10 * S, true)];
        assert!(d.update(&cpus, 29 * S).is_empty());
        assert_eq!(
            d.update(&cpus, 31 * S),
            vec![StuckChange::Stuck {
                cpu: 0,
                since_switch_seconds: 21.0
            }]
        );
        assert!(d.update(&cpus, 40 * S).is_empty(), "reported once");
        let switched = [rec(45 * S, false), rec(10 * S, true)];
        assert_eq!(
            d.update(&switched, 46 * S),
            vec![StuckChange::Recovered {
                cpu: 0,
                stuck_seconds: 35.0
            }]
        );
    }
}
