//! Per-VM, per-device and per-LUN usage for the telemetry summary, read
//! from a scrape's `hyperwatch_vm_*` and `hyperwatch_storage_*` families:
//! levels as they are, rates from the counters' change since the previous
//! summary. Real collectors and the simulator export the same families, so
//! both are summarised by this one code.

use std::collections::BTreeMap;

use hyperwatch_proto::v1;

use crate::metrics::{Family, Sample, Value};

/// IO counters of one device or LUN at one summary.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Io {
    ios: f64,
    bytes: f64,
    io_seconds: Option<f64>,
}

/// Counters of the previous summary.
#[derive(Debug, Default)]
struct Counters {
    /// Seconds on the caller's monotonic clock.
    at: f64,
    vm_cpu: BTreeMap<String, f64>,
    devices: BTreeMap<String, Io>,
    luns: BTreeMap<String, Io>,
}

/// Remembers counters between summaries.
#[derive(Debug, Default)]
pub struct UsageRates {
    previous: Option<Counters>,
}

/// The structured usage of one summary.
#[derive(Debug, Default, PartialEq)]
pub struct Usage {
    pub vms: Vec<v1::VmUsage>,
    pub devices: Vec<v1::DeviceUsage>,
    pub luns: Vec<v1::LunUsage>,
}

impl UsageRates {
    /// The usage in `families`, sampled at `at` seconds (monotonic).
    pub fn summarise(&mut self, families: &[Family], at: f64) -> Usage {
        let find = |name: &str| families.iter().find(|f| f.name == name);
        let now = Counters {
            at,
            vm_cpu: by_label(find("hyperwatch_vm_cpu_seconds"), "vm"),
            devices: io(families, "device", "device"),
            luns: io(families, "lun", "lun"),
        };
        let seconds = self
            .previous
            .as_ref()
            .map(|p| at - p.at)
            .filter(|s| *s > 0.0);
        let previous = self.previous.as_ref();
        // A counter that went down was reset (a restarted VM): no rate.
        let rate = |before: Option<f64>, after: f64| {
            let (before, s) = (before?, seconds?);
            (after >= before).then(|| (after - before) / s)
        };

        let resident = by_label(find("hyperwatch_vm_memory_resident_bytes"), "vm");
        let mut names: Vec<&String> = now.vm_cpu.keys().chain(resident.keys()).collect();
        names.sort();
        names.dedup();
        let vms = names
            .into_iter()
            .map(|name| v1::VmUsage {
                name: name.clone(),
                cpu_cores: now
                    .vm_cpu
                    .get(name)
                    .and_then(|&cpu| rate(previous.and_then(|p| p.vm_cpu.get(name).copied()), cpu)),
                memory_resident_bytes: resident.get(name).map_or(0, |&b| b as u64),
            })
            .collect();

        let io_rates = |before: Option<&Io>, after: &Io| {
            let iops = rate(before.map(|b| b.ios), after.ios);
            let throughput = rate(before.map(|b| b.bytes), after.bytes);
            let latency = match (before, iops) {
                (Some(b), Some(_)) if after.ios > b.ios => after
                    .io_seconds
                    .zip(b.io_seconds)
                    .filter(|(t1, t0)| t1 >= t0)
                    .map(|(t1, t0)| (t1 - t0) / (after.ios - b.ios)),
                _ => None,
            };
            (iops, throughput, latency)
        };

        let used = by_label(find("hyperwatch_storage_device_used_bytes"), "device");
        let mut ids: Vec<&String> = used.keys().chain(now.devices.keys()).collect();
        ids.sort();
        ids.dedup();
        let devices = ids
            .into_iter()
            .map(|id| {
                let (iops, throughput, latency) = match now.devices.get(id) {
                    Some(after) => io_rates(previous.and_then(|p| p.devices.get(id)), after),
                    None => (None, None, None),
                };
                v1::DeviceUsage {
                    device: id.clone(),
                    used_bytes: used.get(id).map_or(0, |&b| b as u64),
                    iops,
                    throughput_bytes_per_second: throughput,
                    io_latency_seconds: latency,
                }
            })
            .collect();

        let size = by_label(find("hyperwatch_storage_lun_size_bytes"), "lun");
        let allocated = by_label(find("hyperwatch_storage_lun_allocated_bytes"), "lun");
        let device_of = labels_of(find("hyperwatch_storage_lun_size_bytes"), "lun", "device");
        let luns = size
            .iter()
            .map(|(id, &size)| {
                let (iops, throughput, _) = match now.luns.get(id) {
                    Some(after) => io_rates(previous.and_then(|p| p.luns.get(id)), after),
                    None => (None, None, None),
                };
                v1::LunUsage {
                    lun: id.clone(),
                    device: device_of.get(id).cloned().unwrap_or_default(),
                    used_bytes: allocated.get(id).copied().unwrap_or(size) as u64,
                    iops,
                    throughput_bytes_per_second: throughput,
                }
            })
            .collect();
        self.previous = Some(now);
        Usage { vms, devices, luns }
    }
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// Scalar samples of `family` by the value of their `key` label.
fn by_label(family: Option<&Family>, key: &str) -> BTreeMap<String, f64> {
    family
        .into_iter()
        .flat_map(|f| &f.samples)
        .filter_map(|s| match s.value {
            Value::Scalar(v) => Some((label(s, key)?.to_owned(), v)),
            Value::Histogram { .. } => None,
        })
        .collect()
}

/// The `other` label of each sample of `family`, by its `key` label.
fn labels_of(family: Option<&Family>, key: &str, other: &str) -> BTreeMap<String, String> {
    family
        .into_iter()
        .flat_map(|f| &f.samples)
        .filter_map(|s| Some((label(s, key)?.to_owned(), label(s, other)?.to_owned())))
        .collect()
}

/// The IO counters of every `kind` ("device" or "lun") by its `key` label.
fn io(families: &[Family], kind: &str, key: &str) -> BTreeMap<String, Io> {
    let get = |suffix: &str| {
        let name = format!("hyperwatch_storage_{kind}_{suffix}");
        by_label(families.iter().find(|f| f.name == name), key)
    };
    let (reads, writes) = (get("reads_completed"), get("writes_completed"));
    let (read, written) = (get("read_bytes"), get("written_bytes"));
    let time = get("io_time_seconds");
    reads
        .iter()
        .filter_map(|(id, r)| {
            Some((
                id.clone(),
                Io {
                    ios: r + writes.get(id)?,
                    bytes: read.get(id).copied().unwrap_or(0.0)
                        + written.get(id).copied().unwrap_or(0.0),
                    io_seconds: time.get(id).copied(),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;

    fn family(name: &str, kind: Kind, samples: &[(&[(&'static str, &str)], f64)]) -> Family {
        let mut f = Family::new(name, "", kind);
        for (labels, v) in samples {
            f.push(
                labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
                *v,
            );
        }
        f
    }

    fn scrape(cpu: f64, ios: f64, io_seconds: f64, lun_ios: f64) -> Vec<Family> {
        let dev: &[(&'static str, &str)] = &[("device", "d1")];
        let lun: &[(&'static str, &str)] = &[("lun", "v1"), ("device", "d1")];
        vec![
            family(
                "hyperwatch_vm_cpu_seconds",
                Kind::Counter,
                &[(&[("vm", "web")], cpu)],
            ),
            family(
                "hyperwatch_vm_memory_resident_bytes",
                Kind::Gauge,
                &[(&[("vm", "web")], 4096.0)],
            ),
            family(
                "hyperwatch_storage_device_used_bytes",
                Kind::Gauge,
                &[(dev, 500.0)],
            ),
            family(
                "hyperwatch_storage_device_reads_completed",
                Kind::Counter,
                &[(dev, ios / 2.0)],
            ),
            family(
                "hyperwatch_storage_device_writes_completed",
                Kind::Counter,
                &[(dev, ios / 2.0)],
            ),
            family(
                "hyperwatch_storage_device_read_bytes",
                Kind::Counter,
                &[(dev, ios * 4096.0)],
            ),
            family(
                "hyperwatch_storage_device_io_time_seconds",
                Kind::Counter,
                &[(dev, io_seconds)],
            ),
            family(
                "hyperwatch_storage_lun_size_bytes",
                Kind::Gauge,
                &[(lun, 300.0)],
            ),
            family(
                "hyperwatch_storage_lun_allocated_bytes",
                Kind::Gauge,
                &[(lun, 120.0)],
            ),
            family(
                "hyperwatch_storage_lun_reads_completed",
                Kind::Counter,
                &[(lun, lun_ios)],
            ),
            family(
                "hyperwatch_storage_lun_writes_completed",
                Kind::Counter,
                &[(lun, 0.0)],
            ),
        ]
    }

    #[test]
    fn levels_at_once_and_rates_from_the_second_summary() {
        let mut u = UsageRates::default();
        let first = u.summarise(&scrape(10.0, 1000.0, 1.0, 50.0), 100.0);
        assert_eq!(first.vms[0].memory_resident_bytes, 4096);
        assert_eq!(first.vms[0].cpu_cores, None);
        assert_eq!(first.devices[0].used_bytes, 500);
        assert_eq!(first.devices[0].iops, None);
        assert_eq!(first.luns[0].used_bytes, 120, "allocated beats size");
        assert_eq!(first.luns[0].device, "d1");

        let second = u.summarise(&scrape(25.0, 3000.0, 3.0, 250.0), 110.0);
        assert_eq!(second.vms[0].cpu_cores, Some(1.5));
        let d = &second.devices[0];
        assert_eq!(d.iops, Some(200.0));
        assert_eq!(d.throughput_bytes_per_second, Some(2000.0 * 4096.0 / 10.0));
        assert_eq!(d.io_latency_seconds, Some(2.0 / 2000.0));
        assert_eq!(second.luns[0].iops, Some(20.0));
    }

    #[test]
    fn a_reset_counter_gives_no_rate() {
        let mut u = UsageRates::default();
        u.summarise(&scrape(100.0, 1000.0, 1.0, 50.0), 0.0);
        let after = u.summarise(&scrape(3.0, 1000.0, 1.0, 50.0), 5.0);
        assert_eq!(after.vms[0].cpu_cores, None, "a restarted VM");
        assert_eq!(after.devices[0].iops, Some(0.0));
        assert_eq!(
            after.devices[0].io_latency_seconds, None,
            "no IO, no latency"
        );
    }
}
