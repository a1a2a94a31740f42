//! `diskstats`: block device counters from /proc/diskstats and the disk
//! identity udev records, with node_exporter 1.5's names: node_disk_*.
//!
//! Hand-parsed: node_exporter reports exactly the statistics the kernel
//! printed (11 before Linux 4.18, 15 before 5.5, 17 since), and procfs's
//! `DiskStat` turns a malformed optional field into "absent" instead of an
//! error, so the count cannot be trusted from it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{CollectError, Collector, parse_error, read};
use crate::{
    config::DeviceCollector,
    metrics::{Families, Family, Kind},
};

/// Sectors in /proc/diskstats are 512 bytes whatever the device's block
/// size (Documentation/block/stat.rst).
const SECTOR_BYTES: f64 = 512.0;
/// Times are in milliseconds; node_exporter multiplies by this constant
/// (not dividing by 1000, which can differ in the last bit).
const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;
/// Major, minor and name precede the statistics.
const ID_FIELDS: usize = 3;
/// Statistics every kernel since 2.6 prints.
const MIN_STATS: usize = 11;

/// How a statistic becomes a sample value.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Sectors,
    Milliseconds,
}

/// The statistics in /proc/diskstats column order (Documentation/
/// admin-guide/iostats.rst): node_exporter family (counters without
/// `_total`), help, kind, unit.
#[rustfmt::skip]
const STATS: [(&str, &str, Kind, Unit); 17] = {
    use Kind::{Counter as C, Gauge as G};
    use Unit::{Count as N, Milliseconds as Ms, Sectors as S};
    [
        ("node_disk_reads_completed", "The total number of reads completed successfully.", C, N),
        ("node_disk_reads_merged", "The total number of reads merged.", C, N),
        ("node_disk_read_bytes", "The total number of bytes read successfully.", C, S),
        ("node_disk_read_time_seconds", "The total number of seconds spent by all reads.", C, Ms),
        ("node_disk_writes_completed", "The total number of writes completed successfully.", C, N),
        ("node_disk_writes_merged", "The number of writes merged.", C, N),
        ("node_disk_written_bytes", "The total number of bytes written successfully.", C, S),
        ("node_disk_write_time_seconds", "This is the total number of seconds spent by all writes.", C, Ms),
        ("node_disk_io_now", "The number of I/Os currently in progress.", G, N),
        ("node_disk_io_time_seconds", "Total seconds spent doing I/Os.", C, Ms),
        ("node_disk_io_time_weighted_seconds", "The weighted # of seconds spent doing I/Os.", C, Ms),
        ("node_disk_discards_completed", "The total number of discards completed successfully.", C, N),
        ("node_disk_discards_merged", "The total number of discards merged.", C, N),
        // Sectors, not bytes: node_exporter 1.5 does not convert this one.
        ("node_disk_discarded_sectors", "The total number of sectors discarded successfully.", C, N),
        ("node_disk_discard_time_seconds", "This is the total number of seconds spent by all discards.", C, Ms),
        ("node_disk_flush_requests", "The total number of flush requests completed successfully", C, N),
        ("node_disk_flush_requests_time_seconds", "This is the total number of seconds spent by all flush requests.", C, Ms),
    ]
};

/// udev properties of an ATA disk that node_exporter reports as gauges.
#[rustfmt::skip]
const ATA: [(&str, &str, &str); 3] = [
    ("ID_ATA_WRITE_CACHE", "node_disk_ata_write_cache", "ATA disk has a write cache."),
    ("ID_ATA_WRITE_CACHE_ENABLED", "node_disk_ata_write_cache_enabled", "ATA disk has its write cache enabled."),
    ("ID_ATA_ROTATION_RATE_RPM", "node_disk_ata_rotation_rate_rpm", "ATA disk rotation rate in RPMs (0 for SSDs)."),
];

pub struct DiskstatsCollector {
    path: PathBuf,
    udev_data: PathBuf,
    devices: DeviceCollector,
}

impl DiskstatsCollector {
    pub fn new(procfs: &Path, udev_data: PathBuf, devices: DeviceCollector) -> Self {
        Self {
            path: procfs.join("diskstats"),
            udev_data,
            devices,
        }
    }

    /// The `E:` properties of udev's record for block device major:minor;
    /// none when udev has no record (no udev, or a container).
    fn udev_properties(&self, major: u32, minor: u32) -> HashMap<String, String> {
        let file = self.udev_data.join(format!("b{major}:{minor}"));
        let Ok(text) = std::fs::read_to_string(&file) else {
            return HashMap::new();
        };
        text.lines()
            .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl Collector for DiskstatsCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let text = read(&self.path)?;
        let disks = parse(&text).map_err(|m| parse_error(&self.path, m))?;
        let gauge = |name: &str, help: &str| Family::new(name, help, Kind::Gauge);
        let mut info = gauge("node_disk_info", "Info of /sys/block/<block_device>.");
        let mut stats: Vec<Family> = STATS
            .iter()
            .map(|(name, help, kind, _)| Family::new(*name, *help, *kind))
            .collect();
        let mut filesystem = gauge("node_disk_filesystem_info", "Info about disk filesystem.");
        let mut mapper = gauge(
            "node_disk_device_mapper_info",
            "Info about disk device mapper.",
        );
        let mut ata: Vec<Family> = ATA.iter().map(|(_, n, h)| gauge(n, h)).collect();

        for disk in disks.iter().filter(|d| self.devices.accepts(d.name)) {
            let device = || ("device", disk.name.to_owned());
            let udev = self.udev_properties(disk.major, disk.minor);
            let prop = |key: &str| udev.get(key).cloned().unwrap_or_default();
            info.push(
                vec![
                    device(),
                    ("major", disk.major.to_string()),
                    ("minor", disk.minor.to_string()),
                    ("path", prop("ID_PATH")),
                    ("wwn", prop("ID_WWN")),
                    ("model", prop("ID_MODEL")),
                    // node_exporter 1.5.0 reads no other serial property.
                    ("serial", prop("ID_SERIAL_SHORT")),
                    ("revision", prop("ID_REVISION")),
                ],
                1.0,
            );
            for ((family, (.., unit)), value) in stats.iter_mut().zip(STATS).zip(&disk.stats) {
                let value = *value as f64;
                let value = match unit {
                    Unit::Count => value,
                    Unit::Sectors => value * SECTOR_BYTES,
                    Unit::Milliseconds => value * SECONDS_PER_TICK,
                };
                family.push(vec![device()], value);
            }
            let labelled = |pairs: &[(&'static str, &str)]| {
                let pairs = pairs.iter().map(|(label, key)| (*label, prop(key)));
                std::iter::once(device()).chain(pairs).collect()
            };
            if !prop("ID_FS_TYPE").is_empty() {
                filesystem.push(
                    labelled(&[
                        ("type", "ID_FS_TYPE"),
                        ("usage", "ID_FS_USAGE"),
                        ("uuid", "ID_FS_UUID"),
                        ("version", "ID_FS_VERSION"),
                    ]),
                    1.0,
                );
            }
            if !prop("DM_NAME").is_empty() {
                mapper.push(
                    labelled(&[
                        ("name", "DM_NAME"),
                        ("uuid", "DM_UUID"),
                        ("vg_name", "DM_VG_NAME"),
                        ("lv_name", "DM_LV_NAME"),
                        ("lv_layer", "DM_LV_LAYER"),
                    ]),
                    1.0,
                );
            }
            if !prop("ID_ATA").is_empty() {
                for (family, (key, ..)) in ata.iter_mut().zip(ATA) {
                    // node_exporter skips a value that is not a number.
                    if let Some(value) = udev.get(key).and_then(|v| v.parse::<f64>().ok()) {
                        family.push(vec![device()], value);
                    }
                }
            }
        }
        let all = std::iter::once(info)
            .chain(stats)
            .chain([filesystem, mapper]);
        out.0
            .extend(all.chain(ata).filter(|f| !f.samples.is_empty()));
        Ok(())
    }
}

/// One line of /proc/diskstats.
#[derive(Debug, PartialEq)]
pub(crate) struct Disk<'a> {
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) name: &'a str,
    /// The statistics the kernel printed: 11, 15 or 17 (more are ignored),
    /// in the kernel's order (reads completed, reads merged, sectors read,
    /// ms reading, writes completed, ...).
    pub(crate) stats: Vec<u64>,
}

/// Every line of /proc/diskstats; also used by the storage inventory.
pub(crate) fn parse(text: &str) -> Result<Vec<Disk<'_>>, String> {
    let mut disks = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let place = || format!("line {}", index + 1);
        if fields.len() < ID_FIELDS + MIN_STATS {
            return Err(format!(
                "{}: {} fields, expected at least {}: {line:?}",
                place(),
                fields.len(),
                ID_FIELDS + MIN_STATS
            ));
        }
        let number = |field: &str| {
            field
                .parse::<u64>()
                .map_err(|_| format!("{}: bad number {field:?} in {line:?}", place()))
        };
        let id = |field: &str| {
            field
                .parse::<u32>()
                .map_err(|_| format!("{}: bad device number {field:?}", place()))
        };
        disks.push(Disk {
            major: id(fields[0])?,
            minor: id(fields[1])?,
            name: fields[2],
            stats: fields[ID_FIELDS..]
                .iter()
                .take(STATS.len())
                .map(|f| number(f))
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(disks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorsConfig;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/proc/diskstats/{name}")).unwrap()
    }

    /// Runs the collector with node_exporter's default device exclude on a
    /// procfs holding the fixture `name` and the fixture udev database.
    fn collect(name: &str) -> Families {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("diskstats"), fixture(name)).unwrap();
        let devices = CollectorsConfig::default().diskstats;
        let udev = format!("{FIXTURES}/udev/data").into();
        let mut out = Families::default();
        DiskstatsCollector::new(dir.path(), udev, devices)
            .collect(&mut out)
            .unwrap();
        out
    }

    fn value(out: &Families, family: &str, device: &str) -> Option<f64> {
        out.find(family)?.get(&[("device", device)])
    }

    #[test]
    fn parses_a_real_kernel_6_18_sample_with_17_statistics() {
        let text = fixture("real-6.18-20-fields");
        let disks = parse(&text).unwrap();
        let vda = disks.iter().find(|d| d.name == "vda").unwrap();
        assert_eq!((vda.major, vda.minor, vda.stats.len()), (254, 0, 17));
        assert_eq!(vda.stats[2], 6748882);
        assert_eq!(vda.stats[16], 101);
    }

    #[test]
    fn reports_what_each_kernel_generation_prints() {
        for (name, stats) in [
            ("kernel-4.14-14-fields", 11),
            ("kernel-4.19-18-fields", 15),
            ("real-6.18-20-fields", 17),
        ] {
            let out = collect(name);
            let per_device: usize = STATS[..stats]
                .iter()
                .filter(|s| out.find(s.0).is_some())
                .count();
            assert_eq!(per_device, stats, "{name}");
            assert!(
                STATS[stats..].iter().all(|s| out.find(s.0).is_none()),
                "{name}"
            );
        }
    }

    #[test]
    fn converts_sectors_and_milliseconds_like_node_exporter() {
        let out = collect("real-6.18-20-fields");
        assert_eq!(
            value(&out, "node_disk_read_bytes", "vda"),
            Some(6748882.0 * 512.0)
        );
        assert_eq!(
            value(&out, "node_disk_discard_time_seconds", "vda"),
            Some(811.0 * 0.001)
        );
        assert_eq!(
            value(&out, "node_disk_discarded_sectors", "vda"),
            Some(1141312.0)
        );
        assert_eq!(out.find("node_disk_io_now").unwrap().kind, Kind::Gauge);
        // loop and zram devices are excluded by default.
        assert_eq!(out.find("node_disk_info").unwrap().samples.len(), 1);
    }

    #[test]
    fn odd_device_names_and_counters_near_u64_wrap() {
        let out = collect("odd-names-near-wrap");
        let info = out.find("node_disk_info").unwrap();
        let mut names: Vec<_> = info
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["cciss!c0d0", "dm-0", "md127", "nbd0", "nvme0n1", "sr0"]
        );
        let max = u64::MAX as f64;
        assert_eq!(value(&out, "node_disk_reads_completed", "md127"), Some(max));
        assert_eq!(
            value(&out, "node_disk_read_bytes", "md127"),
            Some(max * 512.0)
        );
        assert_eq!(
            value(&out, "node_disk_flush_requests_time_seconds", "md127"),
            Some(max * 0.001)
        );
    }

    #[test]
    fn udev_records_give_disk_identity_filesystem_and_lvm_names() {
        let out = collect("odd-names-near-wrap");
        let info = out.find("node_disk_info").unwrap();
        let nvme = info
            .samples
            .iter()
            .find(|s| s.labels[0].1 == "nvme0n1")
            .unwrap();
        let label = |name: &str| nvme.labels.iter().find(|l| l.0 == name).unwrap().1.as_str();
        assert_eq!(label("model"), "Samsung SSD 980 PRO 1TB");
        assert_eq!(label("serial"), "S5GXNF0R123456");
        assert_eq!(label("wwn"), "eui.002538b111b2c3d4");
        let dm = out.find("node_disk_device_mapper_info").unwrap();
        assert_eq!(dm.samples.len(), 1);
        assert!(
            dm.samples[0]
                .labels
                .contains(&("lv_name", "root\"vm\\1".to_owned()))
        );
        let fs = out.find("node_disk_filesystem_info").unwrap();
        assert!(fs.samples[0].labels.contains(&("type", "ext4".to_owned())));
        assert_eq!(
            value(&out, "node_disk_ata_rotation_rate_rpm", "sr0"),
            Some(5400.0)
        );
        // ID_ATA_WRITE_CACHE is not a number in the fixture: skipped.
        assert!(out.find("node_disk_ata_write_cache").is_none());
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let short = "   8       0 sda 1 2 3 4 5 6 7 8 9 10\n";
        assert!(
            parse(short)
                .unwrap_err()
                .starts_with("line 1: 13 fields, expected at least 14")
        );
        let bad = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 x\n";
        assert!(parse(bad).unwrap_err().contains("bad number \"x\""));
        let overflow = format!("8 0 sda {}0 2 3 4 5 6 7 8 9 10 11\n", u64::MAX);
        assert!(parse(&overflow).is_err());
        assert!(parse("-8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").is_err());
    }
}
