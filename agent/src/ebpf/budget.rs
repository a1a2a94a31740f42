//! The agent's own eBPF cost: each program's run count and run time from
//! the kernel's statistics, compared between two checks against a budget.
//! A program over it is detached by the caller; the decision here is pure.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use super::{ProgramStats, ProgramStatus};

/// The cost a program may have before the agent detaches it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Average nanoseconds per event a program may take over one check
    /// interval. 0 turns the check off.
    pub max_ns_per_event: u64,
    /// Share of one CPU a program may use over one check interval (0.25 is a
    /// quarter of a core). 0 turns the check off.
    pub max_cpu_share: f64,
    /// Seconds between checks.
    pub check_interval_seconds: f64,
    /// A program is judged only when it ran at least this often in the
    /// interval, so a few cold first runs cannot detach it.
    pub min_runs: u64,
    /// Per-program `max_ns_per_event`, by program name.
    #[serde(deserialize_with = "known_programs")]
    pub programs: BTreeMap<String, u64>,
}

/// 5 µs per event: the hot programs cost ~150 ns; the rare ones (process
/// exit, exec) run cache-cold and cost ~1 µs on a loaded EPYC guest; only a
/// program gone wrong reaches five times that.
const DEFAULT_MAX_NS_PER_EVENT: u64 = 5_000;
/// A quarter of a core: sched_switch at 150 ns on a hypervisor switching a
/// million times a second (spread over all its CPUs) stays below it.
const DEFAULT_MAX_CPU_SHARE: f64 = 0.25;
/// Checks every 5 s: long enough to average thousands of events.
const DEFAULT_CHECK_INTERVAL_SECONDS: f64 = 5.0;
/// 100 runs: enough that a few cache-cold runs do not dominate the mean.
const DEFAULT_MIN_RUNS: u64 = 100;

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_ns_per_event: DEFAULT_MAX_NS_PER_EVENT,
            max_cpu_share: DEFAULT_MAX_CPU_SHARE,
            check_interval_seconds: DEFAULT_CHECK_INTERVAL_SECONDS,
            min_runs: DEFAULT_MIN_RUNS,
            programs: BTreeMap::new(),
        }
    }
}

/// The per-program table, with every name checked against the programs.
fn known_programs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, u64>, D::Error> {
    let programs = BTreeMap::<String, u64>::deserialize(d)?;
    if let Some(unknown) = programs
        .keys()
        .find(|name| super::programs::spec(name).is_none())
    {
        let known: Vec<&str> = super::programs::PROGRAMS.iter().map(|p| p.name).collect();
        return Err(serde::de::Error::custom(format!(
            "unknown eBPF program `{unknown}`; the programs are {}",
            known.join(", ")
        )));
    }
    Ok(programs)
}

impl BudgetConfig {
    /// The interval between checks.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.check_interval_seconds.max(0.1))
    }

    /// Programs over budget between two snapshots `elapsed` apart, with the
    /// reason to log.
    pub fn over_budget(
        &self,
        before: &[ProgramStats],
        after: &[ProgramStats],
        elapsed: Duration,
    ) -> Vec<(&'static str, String)> {
        let mut over = Vec::new();
        for now in after {
            if now.status != ProgramStatus::Attached {
                continue;
            }
            let Some(then) = before.iter().find(|p| p.name == now.name) else {
                continue;
            };
            let runs = now.run_count.saturating_sub(then.run_count);
            let ns = now.run_time_ns.saturating_sub(then.run_time_ns);
            if runs < self.min_runs.max(1) {
                continue;
            }
            let per_event = ns / runs;
            let limit = self
                .programs
                .get(now.name)
                .copied()
                .unwrap_or(self.max_ns_per_event);
            let share = ns as f64 / elapsed.as_nanos().max(1) as f64;
            if limit > 0 && per_event > limit {
                over.push((
                    now.name,
                    format!(
                        "{per_event} ns per event over {runs} events exceeds the budget of {limit} ns"
                    ),
                ));
            } else if self.max_cpu_share > 0.0 && share > self.max_cpu_share {
                over.push((
                    now.name,
                    format!(
                        "{:.1} % of a CPU over {:.1} s exceeds the budget of {:.1} %",
                        share * 100.0,
                        elapsed.as_secs_f64(),
                        self.max_cpu_share * 100.0
                    ),
                ));
            }
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &'static str, runs: u64, ns: u64) -> ProgramStats {
        ProgramStats {
            name,
            status: ProgramStatus::Attached,
            run_count: runs,
            run_time_ns: ns,
        }
    }

    #[test]
    fn a_program_over_its_ns_budget_is_named_with_the_figures() {
        let b = BudgetConfig::default();
        let before = [
            stats("sched_switch", 1_000, 100_000),
            stats("block_rq_issue", 0, 0),
        ];
        let after = [
            stats("sched_switch", 11_000, 1_100_000),  // 100 ns/event
            stats("block_rq_issue", 1_000, 6_000_000), // 6000 ns/event
        ];
        let over = b.over_budget(&before, &after, Duration::from_secs(5));
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].0, "block_rq_issue");
        assert!(
            over[0].1.contains("6000 ns per event over 1000 events"),
            "{}",
            over[0].1
        );
    }

    #[test]
    fn per_program_limits_override_the_default() {
        let mut b = BudgetConfig::default();
        b.programs.insert("sched_switch".into(), 50);
        let over = b.over_budget(
            &[stats("sched_switch", 0, 0)],
            &[stats("sched_switch", 10_000, 1_000_000)],
            Duration::from_secs(5),
        );
        assert_eq!(over[0].0, "sched_switch");
    }

    #[test]
    fn cpu_share_is_checked_and_few_runs_are_not_judged() {
        let b = BudgetConfig {
            max_cpu_share: 0.01,
            ..BudgetConfig::default()
        };
        // 100 ns per event, but 2e6 events in 1 s: 20 % of a CPU.
        let over = b.over_budget(
            &[stats("sched_switch", 0, 0)],
            &[stats("sched_switch", 2_000_000, 200_000_000)],
            Duration::from_secs(1),
        );
        assert!(over[0].1.contains("20.0 % of a CPU"), "{}", over[0].1);
        let few = b.over_budget(
            &[stats("sched_switch", 0, 0)],
            &[stats("sched_switch", 10, 10_000_000)],
            Duration::from_secs(1),
        );
        assert!(few.is_empty());
    }

    #[test]
    fn program_names_are_checked_when_read() {
        let ok: BudgetConfig = toml::from_str("[programs]\nsched_switch = 300\n").unwrap();
        assert_eq!(ok.programs["sched_switch"], 300);
        let err = toml::from_str::<BudgetConfig>("[programs]\nsched_swich = 300\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown eBPF program `sched_swich`; the programs are sched_wakeup"),
            "{err}"
        );
    }

    #[test]
    fn detached_programs_are_not_judged_again() {
        let b = BudgetConfig::default();
        let mut after = stats("sched_wakeup", 1_000, 1_000_000_000);
        after.status = ProgramStatus::Detached("over".into());
        assert!(
            b.over_budget(
                &[stats("sched_wakeup", 0, 0)],
                &[after],
                Duration::from_secs(1)
            )
            .is_empty()
        );
    }
}
