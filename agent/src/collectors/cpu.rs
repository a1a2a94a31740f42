//! `cpu`: node_cpu_seconds_total{cpu,mode} and
//! node_cpu_guest_seconds_total{cpu,mode} from the per-CPU lines of
//! /proc/stat, as node_exporter 1.5 reports them.
//!
//! Hand-parsed: procfs's `KernelStats` keeps the per-CPU lines in a `Vec`
//! without their CPU number, so an offline CPU would shift the labels of
//! every CPU after it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::{CollectError, Collector, parse_error, read};
use crate::metrics::{Families, Kind};

/// The `mode` label of the first eight columns of a cpuN line, in the
/// kernel's order (Documentation/filesystems/proc.rst, "1.7 Miscellaneous
/// kernel statistics in /proc/stat").
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
/// Columns 9 and 10 (guest, guest_nice) under their node_exporter `mode`.
const GUEST_MODES: [&str; 2] = ["user", "nice"];
/// Columns a cpuN line has had since Linux 2.6.33; older kernels print
/// fewer, and the missing ones read as zero (as in node_exporter).
const COLUMNS: usize = MODES.len() + GUEST_MODES.len();
/// Columns every kernel prints: user, nice, system, idle.
const REQUIRED_COLUMNS: usize = 4;
/// Index of `idle` in a row of columns.
const IDLE: usize = 3;
/// node_exporter's `jumpBackSeconds`: an idle counter that moves back this
/// far means the CPU was unplugged and plugged again, so its counters
/// start over instead of being held at their old values.
const JUMP_BACK_SECONDS: f64 = 3.0;

/// Seconds per column of one CPU.
type CpuSeconds = [f64; COLUMNS];

pub struct CpuCollector {
    path: PathBuf,
    /// USER_HZ: the unit of /proc/stat times.
    ticks_per_second: f64,
    /// What each online CPU reported last, to keep the counters monotonic
    /// (iowait, for one, can go back: proc(5)).
    last: Mutex<BTreeMap<u32, CpuSeconds>>,
}

impl CpuCollector {
    pub fn new(procfs: &Path) -> Self {
        Self {
            path: procfs.join("stat"),
            ticks_per_second: procfs::ticks_per_second() as f64,
            last: Mutex::new(BTreeMap::new()),
        }
    }

    /// node_exporter 1.5's `updateCPUStats`: a column that went back keeps
    /// its previous value, unless idle went back by JUMP_BACK_SECONDS or
    /// more (a hotplug), which restarts that CPU. CPUs no longer listed are
    /// forgotten, so one that comes back online starts afresh.
    fn monotonic(&self, now: Vec<(u32, CpuSeconds)>) -> Vec<(u32, CpuSeconds)> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|cpu, _| now.iter().any(|(c, _)| c == cpu));
        now.into_iter()
            .map(|(cpu, new)| {
                let kept = last.entry(cpu).or_insert([0.0; COLUMNS]);
                if kept[IDLE] - new[IDLE] >= JUMP_BACK_SECONDS {
                    tracing::debug!(cpu, "CPU idle counter jumped back: hotplug, restarting");
                    *kept = [0.0; COLUMNS];
                }
                for (k, n) in kept.iter_mut().zip(new) {
                    if n >= *k {
                        *k = n;
                    }
                }
                (cpu, *kept)
            })
            .collect()
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let text = read(&self.path)?;
        let cpus = parse(&text, self.ticks_per_second).map_err(|m| parse_error(&self.path, m))?;
        let cpus = self.monotonic(cpus);
        let seconds = out.add(
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            Kind::Counter,
        );
        for (cpu, times) in &cpus {
            for (mode, value) in MODES.iter().zip(times) {
                seconds.push(
                    vec![("cpu", cpu.to_string()), ("mode", (*mode).to_owned())],
                    *value,
                );
            }
        }
        let guest = out.add(
            "node_cpu_guest_seconds",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            Kind::Counter,
        );
        for (cpu, times) in &cpus {
            for (mode, value) in GUEST_MODES.iter().zip(&times[MODES.len()..]) {
                guest.push(
                    vec![("cpu", cpu.to_string()), ("mode", (*mode).to_owned())],
                    *value,
                );
            }
        }
        Ok(())
    }
}

/// The cpuN lines of /proc/stat as (N, seconds per column), in file order.
/// Offline CPUs have no line and so no entry.
fn parse(text: &str, ticks_per_second: f64) -> Result<Vec<(u32, CpuSeconds)>, String> {
    let mut cpus = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(id) = fields
            .next()
            .and_then(|f| f.strip_prefix("cpu"))
            .filter(|id| !id.is_empty())
        else {
            continue; // not a per-CPU line (the `cpu` total has no number)
        };
        let place = || format!("line {}", index + 1);
        let id: u32 = id
            .parse()
            .map_err(|_| format!("{}: bad CPU number in {line:?}", place()))?;
        let mut seconds = [0.0; COLUMNS];
        let mut columns = 0;
        for (slot, field) in seconds.iter_mut().zip(&mut fields) {
            let ticks: u64 = field
                .parse()
                .map_err(|_| format!("{}: bad tick count {field:?} for cpu{id}", place()))?;
            // The same operation as node_exporter: float ticks / USER_HZ.
            *slot = ticks as f64 / ticks_per_second;
            columns += 1;
        }
        if columns < REQUIRED_COLUMNS {
            return Err(format!(
                "{}: cpu{id} has {columns} columns, expected at least {REQUIRED_COLUMNS}",
                place()
            ));
        }
        cpus.push((id, seconds));
    }
    if cpus.is_empty() {
        return Err("no per-CPU (cpuN) lines".into());
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// USER_HZ on every Linux architecture node_exporter supports.
    const HZ: f64 = 100.0;

    fn collector() -> CpuCollector {
        CpuCollector::new(Path::new("/nonexistent-procfs"))
    }

    #[test]
    fn parses_a_real_two_cpu_sample() {
        let cpus = parse(
            include_str!("../../tests/fixtures/proc/stat/real-6.18-2cpu"),
            HZ,
        )
        .unwrap();
        assert_eq!(cpus.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1]);
        // cpu0 17270 0 4122 54125 92 0 18 6 0 0
        assert_eq!(cpus[0].1[0], 172.7);
        assert_eq!(cpus[0].1[IDLE], 541.25);
        assert_eq!(cpus[0].1[7], 0.06);
    }

    #[test]
    fn offline_cpus_are_absent_and_labels_keep_their_numbers() {
        let cpus = parse(
            include_str!("../../tests/fixtures/proc/stat/offline-cpus"),
            HZ,
        )
        .unwrap();
        assert_eq!(cpus.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 2, 3, 6]);
        // cpu6's guest and guest_nice columns: 1234 and 56 ticks.
        assert_eq!(cpus[3].1[8..], [12.34, 0.56]);
    }

    #[test]
    fn counters_near_u64_wrap_stay_positive() {
        let cpus = parse(include_str!("../../tests/fixtures/proc/stat/near-wrap"), HZ).unwrap();
        assert_eq!(cpus[0].1[0], u64::MAX as f64 / HZ);
        assert!(cpus.iter().flat_map(|c| c.1).all(|v| v >= 0.0));
    }

    #[test]
    fn old_kernels_with_four_columns_read_the_rest_as_zero() {
        let cpus = parse("cpu  4 0 0 4\ncpu0 4 0 0 4\n", HZ).unwrap();
        assert_eq!(
            cpus[0].1,
            [0.04, 0.0, 0.0, 0.04, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let err = parse("cpu  1 2 3 4\ncpu0 1 2 x 4\n", HZ).unwrap_err();
        assert!(err.starts_with("line 2: bad tick count \"x\""), "{err}");
        let err = parse("cpu0 1 2 3\n", HZ).unwrap_err();
        assert!(err.contains("3 columns"), "{err}");
        assert!(parse("cpuX 1 2 3 4\n", HZ).is_err());
        assert_eq!(
            parse("intr 1\n", HZ).unwrap_err(),
            "no per-CPU (cpuN) lines"
        );
        assert!(parse(&format!("cpu0 {}0 0 0 0\n", u64::MAX), HZ).is_err());
    }

    #[test]
    fn a_counter_that_goes_back_keeps_its_last_value() {
        let c = collector();
        let mut t = [1.0, 0.0, 1.0, 100.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        c.monotonic(vec![(0, t)]);
        t[4] = 49.0; // iowait went back
        t[IDLE] = 101.0;
        let out = c.monotonic(vec![(0, t)]);
        assert_eq!(out[0].1[4], 50.0);
        assert_eq!(out[0].1[IDLE], 101.0);
    }

    #[test]
    fn idle_jumping_back_restarts_the_cpu_as_a_hotplug() {
        let c = collector();
        c.monotonic(vec![(
            1,
            [5.0, 0.0, 0.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        )]);
        let out = c.monotonic(vec![(
            1,
            [1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        )]);
        assert_eq!(out[0].1[0], 1.0);
        assert_eq!(out[0].1[IDLE], 2.0);
    }

    #[test]
    fn a_cpu_that_went_offline_starts_afresh_when_it_returns() {
        let c = collector();
        let busy = [9.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        c.monotonic(vec![(0, busy), (1, busy)]);
        c.monotonic(vec![(0, busy)]);
        let back = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let out = c.monotonic(vec![(0, busy), (1, back)]);
        assert_eq!(out[1], (1, back));
    }

    #[test]
    fn collect_names_families_like_node_exporter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/proc/stat/offline-cpus"
            ),
            dir.path().join("stat"),
        )
        .unwrap();
        let c = CpuCollector::new(dir.path());
        let mut out = Families::default();
        c.collect(&mut out).unwrap();
        let seconds = out.find("node_cpu_seconds").unwrap();
        assert_eq!(seconds.kind, Kind::Counter);
        assert_eq!(seconds.samples.len(), 4 * MODES.len());
        assert!(seconds.get(&[("cpu", "1"), ("mode", "idle")]).is_none());
        let guest = out.find("node_cpu_guest_seconds").unwrap();
        let ticks = procfs::ticks_per_second() as f64;
        assert_eq!(
            guest.get(&[("cpu", "6"), ("mode", "user")]),
            Some(1234.0 / ticks)
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = collector().collect(&mut Families::default()).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-procfs/stat"),
            "{err}"
        );
    }
}
