//! `schedstat`: per-CPU scheduler statistics from /proc/schedstat as
//! node_schedstat_{running,waiting}_seconds_total{cpu} and
//! node_schedstat_timeslices_total{cpu}, as node_exporter 1.5 reports them.
//!
//! Hand-parsed: procfs reads only the per-process /proc/PID/schedstat.
//! A kernel without /proc/schedstat (CONFIG_SCHEDSTATS=n) gets
//! node_exporter's answer: no data, collector failed, debug log only.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::{CollectError, Collector, parse_error};
use crate::metrics::{Families, Kind};

/// Numbers on a cpuN line since schedstat version 15 (Linux 4.6;
/// Documentation/scheduler/sched-stats.rst); the last three are the ones
/// reported.
const CPU_FIELDS: usize = 9;
/// Index of "time spent running by tasks on this processor (ns)"; waiting
/// time and timeslices follow it.
const RUNNING: usize = 6;
/// The running and waiting times are in nanoseconds.
const NANOS_PER_SECOND: f64 = 1e9;

/// node_exporter's families (without `_total`), help, and value.
type Family = (&'static str, &'static str, fn(&CpuSchedstat) -> f64);

const FAMILIES: [Family; 3] = [
    (
        "node_schedstat_running_seconds",
        "Number of seconds CPU spent running a process.",
        |c| c.running_ns as f64 / NANOS_PER_SECOND,
    ),
    (
        "node_schedstat_waiting_seconds",
        "Number of seconds spent by processing waiting for this CPU.",
        |c| c.waiting_ns as f64 / NANOS_PER_SECOND,
    ),
    (
        "node_schedstat_timeslices",
        "Number of timeslices executed by CPU.",
        |c| c.timeslices as f64,
    ),
];

pub struct SchedstatCollector {
    path: PathBuf,
}

impl SchedstatCollector {
    pub fn new(procfs: &Path) -> Self {
        Self {
            path: procfs.join("schedstat"),
        }
    }
}

impl Collector for SchedstatCollector {
    fn name(&self) -> &'static str {
        "schedstat"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                CollectError::NoData {
                    path: self.path.clone(),
                    reason: "the kernel is built without CONFIG_SCHEDSTATS",
                }
            } else {
                CollectError::Read {
                    path: self.path.clone(),
                    source,
                }
            }
        })?;
        let cpus = parse(&text).map_err(|m| parse_error(&self.path, m))?;
        for (name, help, value) in FAMILIES {
            let family = out.add(name, help, Kind::Counter);
            for cpu in &cpus {
                family.push(vec![("cpu", cpu.cpu.to_owned())], value(cpu));
            }
        }
        Ok(())
    }
}

/// The reported figures of one cpuN line.
#[derive(Debug, PartialEq)]
struct CpuSchedstat<'a> {
    /// N, as written.
    cpu: &'a str,
    running_ns: u64,
    waiting_ns: u64,
    timeslices: u64,
}

/// Every cpuN line of /proc/schedstat; domain lines are skipped.
fn parse(text: &str) -> Result<Vec<CpuSchedstat<'_>>, String> {
    let mut cpus = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(cpu) = fields.next().and_then(|f| f.strip_prefix("cpu")) else {
            continue;
        };
        if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("line {}: bad CPU in {line:?}", index + 1));
        }
        let numbers = fields
            .take(CPU_FIELDS)
            .map(str::parse::<u64>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("line {}: {e} in {line:?}", index + 1))?;
        if numbers.len() < CPU_FIELDS {
            return Err(format!(
                "line {}: cpu{cpu} has {} numbers, expected {CPU_FIELDS}",
                index + 1,
                numbers.len()
            ));
        }
        cpus.push(CpuSchedstat {
            cpu,
            running_ns: numbers[RUNNING],
            waiting_ns: numbers[RUNNING + 1],
            timeslices: numbers[RUNNING + 2],
        });
    }
    if cpus.is_empty() {
        return Err("no cpuN lines".into());
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc/schedstat");
        std::fs::read_to_string(format!("{dir}/{name}")).unwrap()
    }

    #[test]
    fn parses_version_15_and_skips_domain_lines() {
        let text = fixture("v15-2cpu");
        let cpus = parse(&text).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            cpus[1],
            CpuSchedstat {
                cpu: "1",
                running_ns: 2049263729358765,
                waiting_ns: 339402183472193,
                timeslices: 4712389503,
            }
        );
    }

    #[test]
    fn offline_cpus_are_absent_in_version_17() {
        let text = fixture("v17-offline-cpu");
        let cpus: Vec<_> = parse(&text).unwrap().iter().map(|c| c.cpu).collect();
        assert_eq!(cpus, ["0", "1", "3"]);
    }

    #[test]
    fn collect_converts_like_node_exporter_near_u64_wrap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schedstat"), fixture("near-wrap")).unwrap();
        let mut out = Families::default();
        SchedstatCollector::new(dir.path())
            .collect(&mut out)
            .unwrap();
        let max = u64::MAX as f64;
        let cpu0 = [("cpu", "0")];
        let running = out.find("node_schedstat_running_seconds").unwrap();
        assert_eq!(running.kind, Kind::Counter);
        assert_eq!(running.get(&cpu0), Some(max / 1e9));
        let waiting = out.find("node_schedstat_waiting_seconds").unwrap();
        assert_eq!(waiting.get(&[("cpu", "1")]), Some(1.0));
        let slices = out.find("node_schedstat_timeslices").unwrap();
        assert_eq!(slices.get(&cpu0), Some(max));
    }

    #[test]
    fn a_kernel_without_schedstats_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let err = SchedstatCollector::new(dir.path())
            .collect(&mut Families::default())
            .unwrap_err();
        assert!(matches!(err, CollectError::NoData { .. }), "{err}");
        assert!(err.to_string().contains("/schedstat"), "{err}");
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let err = parse("version 15\ncpu0 1 2 3 4 5 6 7 8\n").unwrap_err();
        assert!(err.starts_with("line 2: cpu0 has 8 numbers"), "{err}");
        assert!(
            parse("cpu0 1 2 3 4 5 6 7 x 9\n")
                .unwrap_err()
                .contains("invalid digit")
        );
        assert!(parse("cpux 1 2 3 4 5 6 7 8 9\n").is_err());
        assert_eq!(parse("version 15\n").unwrap_err(), "no cpuN lines");
    }
}
