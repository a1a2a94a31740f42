//! `pressure`: pressure stall information (PSI) from /proc/pressure as
//! node_pressure_*_seconds_total, named as node_exporter names them. Each
//! line is parsed with procfs's `parse_pressure_record`; its whole-file
//! parsers insist on a `full` line, which /proc/pressure/cpu lacks before
//! Linux 5.13 and node_exporter does not need.
//!
//! A kernel without PSI (before 4.20, CONFIG_PSI=n, or booted with psi=0)
//! gets node_exporter's answer: no data, collector failed, debug log only.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::{CollectError, Collector, parse_error};
use crate::metrics::{Families, Kind};

/// A family reported from one line of a pressure file.
type Series = Option<(&'static str, &'static str)>;

/// A file under /proc/pressure and what node_exporter reports from its
/// `some` and `full` lines.
struct Resource {
    file: &'static str,
    some: Series,
    full: Series,
    /// Whether a kernel with PSI always has the file. /proc/pressure/irq
    /// came in Linux 6.1 and needs CONFIG_IRQ_TIME_ACCOUNTING.
    always: bool,
}

/// node_exporter 1.5's three resources, and irq, which node_exporter
/// reports under this name and help from 1.8 on.
const RESOURCES: [Resource; 4] = [
    Resource {
        file: "cpu",
        some: Some((
            "node_pressure_cpu_waiting_seconds",
            "Total time in seconds that processes have waited for CPU time",
        )),
        full: None,
        always: true,
    },
    Resource {
        file: "io",
        some: Some((
            "node_pressure_io_waiting_seconds",
            "Total time in seconds that processes have waited due to IO congestion",
        )),
        full: Some((
            "node_pressure_io_stalled_seconds",
            "Total time in seconds no process could make progress due to IO congestion",
        )),
        always: true,
    },
    Resource {
        file: "memory",
        some: Some((
            "node_pressure_memory_waiting_seconds",
            "Total time in seconds that processes have waited for memory",
        )),
        full: Some((
            "node_pressure_memory_stalled_seconds",
            "Total time in seconds no process could make progress due to memory congestion",
        )),
        always: true,
    },
    Resource {
        file: "irq",
        some: None,
        full: Some((
            "node_pressure_irq_stalled_seconds",
            "Total time in seconds no process could make progress due to IRQ congestion",
        )),
        always: false,
    },
];

/// PSI totals are in microseconds. node_exporter divides by 1000 twice,
/// which can differ in the last bit from one division by a million.
const MICROS_PER_MILLI: f64 = 1000.0;
const MILLIS_PER_SECOND: f64 = 1000.0;

pub struct PressureCollector {
    dir: PathBuf,
}

impl PressureCollector {
    pub fn new(procfs: &Path) -> Self {
        Self {
            dir: procfs.join("pressure"),
        }
    }
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        for resource in &RESOURCES {
            let path = self.dir.join(resource.file);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !resource.always => continue,
                Err(e) => return Err(read_error(path, e)),
            };
            let (some, full) = parse(&text).map_err(|m| parse_error(&path, m))?;
            for (series, total, line) in
                [(resource.some, some, "some"), (resource.full, full, "full")]
            {
                let Some((name, help)) = series else { continue };
                let total = total.ok_or_else(|| parse_error(&path, format!("no `{line}` line")))?;
                let seconds = total as f64 / MICROS_PER_MILLI / MILLIS_PER_SECOND;
                out.add(name, help, Kind::Counter).push(Vec::new(), seconds);
            }
        }
        Ok(())
    }
}

/// node_exporter's classification: a missing file or a kernel that
/// refuses PSI (EOPNOTSUPP with psi=0) is "no data", anything else a
/// failure.
fn read_error(path: PathBuf, source: io::Error) -> CollectError {
    if source.kind() == io::ErrorKind::NotFound {
        CollectError::NoData {
            path,
            reason: "pressure stall information is unavailable: it needs Linux 4.20 or later \
                     built with CONFIG_PSI",
        }
    } else if source.raw_os_error() == Some(libc::EOPNOTSUPP) {
        CollectError::NoData {
            path,
            reason: "pressure stall information is disabled: add psi=1 to the kernel command line",
        }
    } else {
        CollectError::Read { path, source }
    }
}

/// The `total` (microseconds) of the `some` and of the `full` line.
fn parse(text: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let (mut some, mut full) = (None, None);
    for (index, line) in text.lines().enumerate() {
        let slot = if line.starts_with("some ") {
            &mut some
        } else if line.starts_with("full ") {
            &mut full
        } else {
            continue; // node_exporter ignores any other line as well
        };
        let record = procfs::parse_pressure_record(line)
            .map_err(|e| format!("line {}: {e}: {line:?}", index + 1))?;
        *slot = Some(record.total);
    }
    Ok((some, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(tree: &str) -> Result<Families, CollectError> {
        let root = format!(
            "{}/tests/fixtures/proc/pressure/{tree}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut out = Families::default();
        PressureCollector::new(Path::new(&root)).collect(&mut out)?;
        Ok(out)
    }

    fn value(out: &Families, name: &str) -> Option<f64> {
        out.find(name)?.get(&[])
    }

    #[test]
    fn reports_node_exporters_five_series_from_a_real_sample() {
        let out = collect("psi-6.18").unwrap();
        let names: Vec<_> = out.0.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_pressure_cpu_waiting_seconds",
                "node_pressure_io_waiting_seconds",
                "node_pressure_io_stalled_seconds",
                "node_pressure_memory_waiting_seconds",
                "node_pressure_memory_stalled_seconds",
            ]
        );
        assert!(out.0.iter().all(|f| f.kind == Kind::Counter));
        // io: some total=6937530 µs.
        let io = value(&out, "node_pressure_io_waiting_seconds");
        assert_eq!(io, Some(6.93753));
    }

    #[test]
    fn irq_is_reported_when_the_kernel_has_it() {
        let out = collect("with-irq-6.18").unwrap();
        assert_eq!(
            value(&out, "node_pressure_irq_stalled_seconds"),
            Some(7.340032)
        );
        assert_eq!(out.0.len(), 6);
    }

    #[test]
    fn a_cpu_file_without_a_full_line_is_fine() {
        let out = collect("cpu-some-only-5.4").unwrap();
        assert_eq!(
            value(&out, "node_pressure_cpu_waiting_seconds"),
            Some(228.419263)
        );
    }

    #[test]
    fn totals_near_u64_wrap_stay_positive() {
        let out = collect("near-wrap").unwrap();
        let max = u64::MAX as f64 / 1000.0 / 1000.0;
        assert_eq!(value(&out, "node_pressure_cpu_waiting_seconds"), Some(max));
        assert_eq!(
            value(&out, "node_pressure_memory_stalled_seconds"),
            Some(max)
        );
    }

    #[test]
    fn a_kernel_without_psi_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Families::default();
        let err = PressureCollector::new(dir.path())
            .collect(&mut out)
            .unwrap_err();
        assert!(matches!(err, CollectError::NoData { .. }), "{err}");
        assert!(err.to_string().contains("CONFIG_PSI"), "{err}");
        assert!(out.0.is_empty());
    }

    #[test]
    fn psi_disabled_at_boot_is_no_data_and_other_errors_are_failures() {
        let refused = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
        let err = read_error("/proc/pressure/cpu".into(), refused);
        assert!(err.to_string().contains("psi=1"), "{err}");
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let err = read_error("/proc/pressure/cpu".into(), denied);
        assert!(matches!(err, CollectError::Read { .. }), "{err}");
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(parse("some avg10=0.00 avg60=0.00 avg300=0.00\n").is_err());
        assert!(parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=-4\n").is_err());
        let io_without_full = "some avg10=0.00 avg60=0.00 avg300=0.00 total=4\n";
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("pressure");
        std::fs::create_dir(&tree).unwrap();
        for file in ["cpu", "memory"] {
            let real = format!(
                "{}/tests/fixtures/proc/pressure/psi-6.18/pressure/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::copy(real, tree.join(file)).unwrap();
        }
        std::fs::write(tree.join("io"), io_without_full).unwrap();
        let err = PressureCollector::new(dir.path())
            .collect(&mut Families::default())
            .unwrap_err();
        assert!(
            err.to_string().ends_with("pressure/io: no `full` line"),
            "{err}"
        );
    }
}
