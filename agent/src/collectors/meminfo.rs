//! `meminfo`: one node_memory_* gauge per line of /proc/meminfo, named as
//! node_exporter 1.5 names them.
//!
//! Hand-parsed: procfs's `Meminfo` is a fixed struct that drops the lines
//! it does not know and the kernel's own field names, which are the
//! metric names here.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{CollectError, Collector, parse_error, read};
use crate::metrics::{Families, Kind};

/// Lines with a unit are in kB (the kernel prints no other unit), and
/// node_exporter multiplies them by this.
const BYTES_PER_KB: f64 = 1024.0;

pub struct MeminfoCollector {
    path: PathBuf,
}

impl MeminfoCollector {
    pub fn new(procfs: &Path) -> Self {
        Self {
            path: procfs.join("meminfo"),
        }
    }
}

impl Collector for MeminfoCollector {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let fields = parse(&read(&self.path)?).map_err(|m| parse_error(&self.path, m))?;
        for (key, value) in fields {
            let help = format!("Memory information field {key}.");
            // node_exporter types a field ending in `_total` as a counter;
            // the encoder puts the suffix back.
            let (name, kind) = match key.strip_suffix("_total") {
                Some(stem) => (format!("node_memory_{stem}"), Kind::Counter),
                None => (format!("node_memory_{key}"), Kind::Gauge),
            };
            out.add(&name, &help, kind).push(Vec::new(), value);
        }
        Ok(())
    }
}

/// Field name (sanitised, with `_bytes` for kB lines) to value, like
/// node_exporter's `parseMemInfo`. A repeated name keeps its last value.
fn parse(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut fields = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let place = || format!("line {}", index + 1);
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let (raw_key, value, unit) = match parts[..] {
            [] => continue, // some kernels print an empty line
            [key, value] => (key, value, None),
            [key, value, unit] => (key, value, Some(unit)),
            _ => {
                return Err(format!(
                    "{}: expected `Name: value [kB]`: {line:?}",
                    place()
                ));
            }
        };
        let key = raw_key
            .strip_suffix(':')
            .ok_or_else(|| format!("{}: no colon after {raw_key:?}", place()))?;
        let mut key = sanitise(key);
        let mut value: f64 = value
            .parse()
            .map_err(|_| format!("{}: bad value {value:?} for {key}", place()))?;
        if unit.is_some() {
            value *= BYTES_PER_KB;
            key.push_str("_bytes");
        }
        if !is_metric_name_tail(&key) {
            return Err(format!(
                "{}: {key:?} cannot be part of a metric name",
                place()
            ));
        }
        fields.insert(key, value);
    }
    if fields.is_empty() {
        return Err("no fields".into());
    }
    Ok(fields)
}

/// `Active(anon)` -> `Active_anon`: node_exporter replaces the greedy match
/// of `\((.*)\)` with `_$1`.
fn sanitise(key: &str) -> String {
    match (key.find('('), key.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            format!(
                "{}_{}{}",
                &key[..open],
                &key[open + 1..close],
                &key[close + 1..]
            )
        }
        _ => key.to_owned(),
    }
}

/// Whether `node_memory_` + `tail` is a valid Prometheus metric name.
fn is_metric_name_tail(tail: &str) -> bool {
    !tail.is_empty()
        && tail
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_sample_in_bytes() {
        let f = parse(include_str!("../../tests/fixtures/proc/meminfo/real-6.18")).unwrap();
        assert_eq!(f["MemTotal_bytes"], 24684084.0 * 1024.0);
        assert_eq!(f["Active_anon_bytes"], 1568.0 * 1024.0);
        assert_eq!(f["Inactive_file_bytes"], 1623084.0 * 1024.0);
        assert_eq!(f["VmallocTotal_bytes"], 34359738367.0 * 1024.0);
        assert_eq!(f["HugePages_Total"], 0.0);
        assert!(!f.contains_key("HugePages_Total_bytes"));
        assert_eq!(f.len(), 54);
    }

    #[test]
    fn odd_lines_follow_node_exporter() {
        let f = parse(include_str!("../../tests/fixtures/proc/meminfo/odd-lines")).unwrap();
        assert_eq!(f["HugePages_Total"], 512.0);
        assert_eq!(f["Hugepagesize_bytes"], 1048576.0 * 1024.0);
        assert_eq!(f["Unaccepted_bytes"], 0.0);
        assert_eq!(f["Active_file_bytes"], 4096.0);
        assert_eq!(f["MemTotal_bytes"], u64::MAX as f64 * 1024.0);
        assert_eq!(f["Committed_AS_bytes"], -2048.0);
    }

    #[test]
    fn sanitising_is_greedy_like_node_exporters_regex() {
        assert_eq!(sanitise("Active(anon)"), "Active_anon");
        assert_eq!(sanitise("A(b)c(d)"), "A_b)c(d");
        assert_eq!(sanitise("Plain"), "Plain");
        assert_eq!(sanitise("Odd)("), "Odd)(");
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let err = parse("MemTotal: 1 kB\nMemFree 2 kB\n").unwrap_err();
        assert!(err.starts_with("line 2: no colon"), "{err}");
        assert!(
            parse("MemTotal: x kB\n")
                .unwrap_err()
                .contains("bad value \"x\"")
        );
        assert!(parse("MemTotal: 1 kB extra\n").is_err());
        assert!(parse("MemTotal:\n").is_err());
        assert!(
            parse("Mem-Total: 1 kB\n")
                .unwrap_err()
                .contains("metric name")
        );
        assert_eq!(parse("\n").unwrap_err(), "no fields");
    }

    #[test]
    fn collect_makes_gauges_named_like_node_exporter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal:  4 kB\nActive(anon): 2 kB\nHugePages_Free: 3\nPgsteal_total: 5\n",
        )
        .unwrap();
        let mut out = Families::default();
        MeminfoCollector::new(dir.path()).collect(&mut out).unwrap();
        let anon = out.find("node_memory_Active_anon_bytes").unwrap();
        assert_eq!(anon.kind, Kind::Gauge);
        assert_eq!(anon.help, "Memory information field Active_anon_bytes.");
        assert_eq!(anon.get(&[]), Some(2048.0));
        let free = out.find("node_memory_HugePages_Free").unwrap();
        assert_eq!(free.get(&[]), Some(3.0));
        let counter = out.find("node_memory_Pgsteal").unwrap();
        assert_eq!(counter.kind, Kind::Counter);
        assert_eq!(counter.help, "Memory information field Pgsteal_total.");
    }
}
