//! `stat`: context switches, forks, interrupts, boot time and runnable and
//! blocked processes from /proc/stat, as node_exporter 1.5 reports them.
//!
//! Hand-parsed: procfs's `KernelStats` has no interrupt total and fails on
//! any odd per-CPU line, which is the `cpu` collector's business.

use std::path::{Path, PathBuf};

use super::{CollectError, Collector, parse_error, read};
use crate::metrics::{Families, Kind};

/// The /proc/stat keys this collector reports, each with its node_exporter
/// family (counters without `_total`), help and kind.
const KEYS: [(&str, &str, &str, Kind); 6] = [
    (
        "intr",
        "node_intr",
        "Total number of interrupts serviced.",
        Kind::Counter,
    ),
    (
        "ctxt",
        "node_context_switches",
        "Total number of context switches.",
        Kind::Counter,
    ),
    (
        "processes",
        "node_forks",
        "Total number of forks.",
        Kind::Counter,
    ),
    (
        "btime",
        "node_boot_time_seconds",
        "Node boot time, in unixtime.",
        Kind::Gauge,
    ),
    (
        "procs_running",
        "node_procs_running",
        "Number of processes in runnable state.",
        Kind::Gauge,
    ),
    (
        "procs_blocked",
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
        Kind::Gauge,
    ),
];

pub struct StatCollector {
    path: PathBuf,
}

impl StatCollector {
    pub fn new(procfs: &Path) -> Self {
        Self {
            path: procfs.join("stat"),
        }
    }
}

impl Collector for StatCollector {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let values = parse(&read(&self.path)?).map_err(|m| parse_error(&self.path, m))?;
        for ((_, name, help, kind), value) in KEYS.iter().zip(values) {
            out.add(name, help, *kind).push(Vec::new(), value as f64);
        }
        Ok(())
    }
}

/// The value of each of [`KEYS`], in that order. For `intr` it is the
/// first number, the total; the per-IRQ counts after it are not reported.
fn parse(text: &str) -> Result<[u64; KEYS.len()], String> {
    let mut values = [None; KEYS.len()];
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        let Some(slot) = KEYS.iter().position(|k| k.0 == key) else {
            continue;
        };
        let field = fields.next().unwrap_or("");
        let value = field
            .parse()
            .map_err(|_| format!("line {}: bad {key} value {field:?}", index + 1))?;
        values[slot] = Some(value);
    }
    let mut out = [0; KEYS.len()];
    for ((slot, value), key) in out.iter_mut().zip(values).zip(KEYS) {
        *slot = value.ok_or_else(|| format!("no `{}` line", key.0))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_sample() {
        let v = parse(include_str!(
            "../../tests/fixtures/proc/stat/real-6.18-2cpu"
        ))
        .unwrap();
        assert_eq!(v, [490666, 755665, 19896, 1795878897, 1, 0]);
    }

    #[test]
    fn parses_a_sample_with_offline_cpus() {
        let v = parse(include_str!("../../tests/fixtures/proc/stat/offline-cpus")).unwrap();
        assert_eq!(v, [771203995, 1293847562, 8127364, 1700000000, 5, 1]);
    }

    #[test]
    fn counters_near_u64_wrap_parse_without_loss_of_sign() {
        let v = parse(include_str!("../../tests/fixtures/proc/stat/near-wrap")).unwrap();
        assert_eq!(v[0], u64::MAX);
        assert_eq!(v[1], u64::MAX);
        assert_eq!(v[2] as f64, 18446744073709551615.0);
    }

    #[test]
    fn a_missing_key_or_bad_value_is_an_error() {
        let text = include_str!("../../tests/fixtures/proc/stat/real-6.18-2cpu");
        let without_btime: String = text
            .lines()
            .filter(|l| !l.starts_with("btime"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&without_btime).unwrap_err(), "no `btime` line");
        let err = parse(&text.replace("ctxt 755665", "ctxt -1")).unwrap_err();
        assert!(err.ends_with("bad ctxt value \"-1\""), "{err}");
        let err = parse(&text.replace("ctxt 755665", "ctxt")).unwrap_err();
        assert!(err.ends_with("bad ctxt value \"\""), "{err}");
    }

    #[test]
    fn collect_reports_node_exporter_families() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/proc/stat/real-6.18-2cpu"
            ),
            dir.path().join("stat"),
        )
        .unwrap();
        let mut out = Families::default();
        StatCollector::new(dir.path()).collect(&mut out).unwrap();
        let ctxt = out.find("node_context_switches").unwrap();
        assert_eq!((ctxt.kind, ctxt.get(&[])), (Kind::Counter, Some(755665.0)));
        let btime = out.find("node_boot_time_seconds").unwrap();
        assert_eq!(
            (btime.kind, btime.get(&[])),
            (Kind::Gauge, Some(1795878897.0))
        );
        assert_eq!(out.0.len(), KEYS.len());
    }
}
