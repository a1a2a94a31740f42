//! A missing or malformed procfs file fails only the collector that reads
//! it: `Registry::gather` reports it with
//! hyperwatch_scrape_collector_success 0 and no samples, and every other
//! collector still serves. Each case breaks one file of a copy of the
//! golden fixture tree.

use std::{
    fs,
    path::{Path, PathBuf},
};

use hyperwatch_agent::{collectors::Registry, config::Config, metrics::Family};

/// The procfs collectors and a family each one always exports on the
/// golden tree (counters without `_total`, as in the metric model).
const COLLECTORS: [(&str, &str); 8] = [
    ("cpu", "node_cpu_seconds"),
    ("stat", "node_context_switches"),
    ("loadavg", "node_load1"),
    ("meminfo", "node_memory_MemTotal_bytes"),
    ("diskstats", "node_disk_reads_completed"),
    ("netdev", "node_network_receive_bytes"),
    ("pressure", "node_pressure_cpu_waiting_seconds"),
    ("schedstat", "node_schedstat_running_seconds"),
];

/// A way to break a procfs tree, and the collectors it must fail.
type Case = (&'static str, fn(&Path), &'static [&'static str]);

const CASES: &[Case] = &[
    ("stat missing", |p| remove(p, "stat"), &["cpu", "stat"]),
    (
        "cpu line malformed",
        |p| edit(p, "stat", "cpu2 552011", "cpu2 x"),
        &["cpu"],
    ),
    (
        "ctxt line missing",
        |p| edit(p, "stat", "ctxt ", "ctxx "),
        &["stat"],
    ),
    ("loadavg missing", |p| remove(p, "loadavg"), &["loadavg"]),
    (
        "loadavg malformed",
        |p| write(p, "loadavg", "0.52\n"),
        &["loadavg"],
    ),
    ("meminfo missing", |p| remove(p, "meminfo"), &["meminfo"]),
    (
        "meminfo malformed",
        |p| edit(p, "meminfo", "MemFree:", "MemFree"),
        &["meminfo"],
    ),
    (
        "diskstats missing",
        |p| remove(p, "diskstats"),
        &["diskstats"],
    ),
    (
        "diskstats short line",
        |p| edit(p, "diskstats", " 1246716\n", "\n"),
        &["diskstats"],
    ),
    ("net/dev missing", |p| remove(p, "net/dev"), &["netdev"]),
    (
        "net/dev malformed",
        |p| edit(p, "net/dev", "veth@x: 246124373", "veth@x: -1"),
        &["netdev"],
    ),
    (
        "no PSI in the kernel",
        |p| fs::remove_dir_all(p.join("pressure")).unwrap(),
        &["pressure"],
    ),
    (
        "pressure io malformed",
        |p| write(p, "pressure/io", "some total=1\n"),
        &["pressure"],
    ),
    (
        "schedstat missing",
        |p| remove(p, "schedstat"),
        &["schedstat"],
    ),
    (
        "schedstat malformed",
        |p| edit(p, "schedstat", "cpu0 0 0 0 0 0 0", "cpu0 0 0"),
        &["schedstat"],
    ),
];

#[test]
fn one_broken_file_fails_only_its_collector() {
    let intact = gather(&copy_golden().path().join("proc"));
    for (collector, _) in COLLECTORS {
        assert_eq!(
            success(&intact, collector),
            1.0,
            "{collector} fails on the intact tree"
        );
    }
    for (case, break_tree, failing) in CASES {
        let tree = copy_golden();
        let proc = tree.path().join("proc");
        break_tree(&proc);
        let families = gather(&proc);
        for (collector, family) in COLLECTORS {
            let fails = failing.contains(&collector);
            assert_eq!(
                success(&families, collector),
                if fails { 0.0 } else { 1.0 },
                "{case}: success of {collector}"
            );
            assert_eq!(
                families.iter().any(|f| f.name == family),
                !fails,
                "{case}: {family} present"
            );
        }
    }
}

fn gather(proc: &Path) -> Vec<Family> {
    let mut config = Config::default();
    config.paths.procfs = proc.to_owned();
    config.paths.udev_data = proc.join("../udev/data");
    config.collectors.cpu_busy.enabled = false;
    Registry::new(&config, None).gather()
}

fn success(families: &[Family], collector: &str) -> f64 {
    families
        .iter()
        .find(|f| f.name == "hyperwatch_scrape_collector_success")
        .and_then(|f| f.get(&[("collector", collector)]))
        .unwrap_or_else(|| panic!("no success sample for {collector}"))
}

/// A private copy of tests/fixtures/golden.
fn copy_golden() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    copy_tree(&golden, dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn remove(proc: &Path, file: &str) {
    fs::remove_file(proc.join(file)).unwrap();
}

fn write(proc: &Path, file: &str, text: &str) {
    fs::write(proc.join(file), text).unwrap();
}

/// Replaces the first `from` in `file`, which must contain it.
fn edit(proc: &Path, file: &str, from: &str, to: &str) {
    let text = fs::read_to_string(proc.join(file)).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    fs::write(proc.join(file), text.replacen(from, to, 1)).unwrap();
}
