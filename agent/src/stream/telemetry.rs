//! Turns a scrape (`Agent::gather()`) into a compact telemetry summary: CPU
//! utilisation since the previous summary, memory used and total, load
//! averages, each VM's, device's and LUN's usage (see [`super::usage`]),
//! and the series the configuration names.

use hyperwatch_proto::v1;

use super::usage::UsageRates;
use crate::metrics::{Family, Value};

/// Remembers the previous CPU counters so utilisation covers the interval.
#[derive(Debug, Default)]
pub struct Summariser {
    /// (busy seconds, total seconds) from node_cpu_seconds_total.
    previous_cpu: Option<(f64, f64)>,
    /// Names of further series to include, by family name.
    extra: Vec<String>,
    /// Counters of VMs, devices and LUNs from the previous summary.
    usage: UsageRates,
}

impl Summariser {
    pub fn new(extra: Vec<String>) -> Self {
        Self {
            previous_cpu: None,
            extra,
            usage: UsageRates::default(),
        }
    }

    /// The summary of `families`, scraped at `at` seconds on a monotonic
    /// clock (sequence number and times set by the caller).
    pub fn summarise(&mut self, families: &[Family], at: f64) -> v1::Telemetry {
        let find = |name: &str| families.iter().find(|f| f.name == name);
        let scalar = |name: &str| find(name).and_then(|f| f.get(&[]));
        let mut t = v1::Telemetry {
            load1: scalar("node_load1"),
            load5: scalar("node_load5"),
            load15: scalar("node_load15"),
            ..Default::default()
        };
        let total = scalar("node_memory_MemTotal_bytes");
        let available = scalar("node_memory_MemAvailable_bytes");
        t.memory_total_bytes = total.map(|v| v as u64);
        t.memory_used_bytes = total.zip(available).map(|(t, a)| (t - a).max(0.0) as u64);
        // Counter families are named without `_total` (the encoder adds it);
        // accept the suffixed name too.
        let cpu_family = find("node_cpu_seconds").or_else(|| find("node_cpu_seconds_total"));
        if let Some(cpu) = cpu_family.map(cpu_totals) {
            if let Some((busy0, total0)) = self.previous_cpu {
                let (busy, total) = (cpu.0 - busy0, cpu.1 - total0);
                if total > 0.0 {
                    t.cpu_utilisation = Some((busy / total).clamp(0.0, 1.0));
                }
            }
            self.previous_cpu = Some(cpu);
        }
        let usage = self.usage.summarise(families, at);
        t.vm_usage = usage.vms;
        t.device_usage = usage.devices;
        t.lun_usage = usage.luns;
        for name in &self.extra {
            let Some(f) = find(name) else { continue };
            for s in &f.samples {
                if let Value::Scalar(v) = s.value {
                    t.samples.push(v1::Sample {
                        name: f.name.clone(),
                        labels: s
                            .labels
                            .iter()
                            .map(|(k, v)| v1::Label {
                                name: (*k).to_owned(),
                                value: v.clone(),
                            })
                            .collect(),
                        value: v,
                    });
                }
            }
        }
        t
    }
}

/// Busy and total CPU seconds over all CPUs (idle and iowait are not busy).
fn cpu_totals(f: &Family) -> (f64, f64) {
    let mut busy = 0.0;
    let mut total = 0.0;
    for s in &f.samples {
        let Value::Scalar(v) = s.value else { continue };
        total += v;
        let mode = s
            .labels
            .iter()
            .find(|(k, _)| *k == "mode")
            .map(|(_, m)| m.as_str());
        if !matches!(mode, Some("idle" | "iowait")) {
            busy += v;
        }
    }
    (busy, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Kind;

    fn cpu(idle: f64, user: f64) -> Family {
        let mut f = Family::new("node_cpu_seconds", "", Kind::Counter);
        f.push(vec![("cpu", "0".into()), ("mode", "idle".into())], idle);
        f.push(vec![("cpu", "0".into()), ("mode", "user".into())], user);
        f
    }

    #[test]
    fn summarises_load_memory_cpu_and_named_series() {
        let mut s = Summariser::new(vec!["node_load1".into()]);
        let first = vec![
            cpu(100.0, 100.0),
            Family::new("node_load1", "", Kind::Gauge).with(0.5),
        ];
        let t = s.summarise(&first, 0.0);
        assert_eq!(t.load1, Some(0.5));
        assert_eq!(t.cpu_utilisation, None, "needs two scrapes");
        assert_eq!(t.samples.len(), 1);
        let second = vec![
            cpu(103.0, 101.0),
            Family::new("node_memory_MemTotal_bytes", "", Kind::Gauge).with(1000.0),
            Family::new("node_memory_MemAvailable_bytes", "", Kind::Gauge).with(400.0),
        ];
        let t = s.summarise(&second, 1.0);
        assert_eq!(t.cpu_utilisation, Some(0.25));
        assert_eq!(
            (t.memory_used_bytes, t.memory_total_bytes),
            (Some(600), Some(1000))
        );
        assert_eq!(t.load1, None);
    }
}
