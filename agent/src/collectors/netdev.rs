//! `netdev`: network interface counters from /proc/net/dev as
//! node_network_{receive,transmit}_*_total{device}, named as node_exporter
//! 1.5 names them. Parsed with procfs's `InterfaceDeviceStatus`.
//!
//! node_exporter 1.5 reads the same counters over netlink by default
//! (`--collector.netdev.netlink`), with the same names and values, plus
//! node_network_receive_nohandler_total, which /proc/net/dev lacks and is
//! not reported here.

use std::path::{Path, PathBuf};

use procfs::{FromBufRead, net::DeviceStatus, net::InterfaceDeviceStatus};

use super::{CollectError, Collector, parse_error, read};
use crate::{
    config::DeviceCollector,
    metrics::{Families, Kind},
};

/// Column of /proc/net/dev -> node_exporter statistic name.
type Column = (&'static str, fn(&DeviceStatus) -> u64);

/// The sixteen columns of /proc/net/dev (net/core/net-procfs.c), under the
/// names node_exporter gives them.
const COLUMNS: [Column; 16] = [
    ("receive_bytes", |d| d.recv_bytes),
    ("receive_packets", |d| d.recv_packets),
    ("receive_errs", |d| d.recv_errs),
    ("receive_drop", |d| d.recv_drop),
    ("receive_fifo", |d| d.recv_fifo),
    ("receive_frame", |d| d.recv_frame),
    ("receive_compressed", |d| d.recv_compressed),
    ("receive_multicast", |d| d.recv_multicast),
    ("transmit_bytes", |d| d.sent_bytes),
    ("transmit_packets", |d| d.sent_packets),
    ("transmit_errs", |d| d.sent_errs),
    ("transmit_drop", |d| d.sent_drop),
    ("transmit_fifo", |d| d.sent_fifo),
    ("transmit_colls", |d| d.sent_colls),
    ("transmit_carrier", |d| d.sent_carrier),
    ("transmit_compressed", |d| d.sent_compressed),
];

pub struct NetdevCollector {
    path: PathBuf,
    devices: DeviceCollector,
}

impl NetdevCollector {
    pub fn new(procfs: &Path, devices: DeviceCollector) -> Self {
        Self {
            path: procfs.join("net/dev"),
            devices,
        }
    }
}

impl Collector for NetdevCollector {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let text = read(&self.path)?;
        let mut devices = parse(&text).map_err(|m| parse_error(&self.path, m))?;
        devices.retain(|d| self.devices.accepts(&d.name));
        if devices.is_empty() {
            return Ok(()); // node_exporter shows no families then either
        }
        for (statistic, value) in COLUMNS {
            let family = out.add(
                &format!("node_network_{statistic}"),
                &format!("Network device statistic {statistic}."),
                Kind::Counter,
            );
            for device in &devices {
                family.push(vec![("device", device.name.clone())], value(device) as f64);
            }
        }
        Ok(())
    }
}

/// The interfaces of /proc/net/dev, sorted by name.
fn parse(text: &str) -> Result<Vec<DeviceStatus>, String> {
    check_header(text)?;
    let status = InterfaceDeviceStatus::from_buf_read(text.as_bytes())
        .map_err(|e| format!("not in /proc/net/dev format: {e}"))?;
    let mut devices: Vec<DeviceStatus> = status.0.into_values().collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(devices)
}

/// procfs skips the two header lines unseen; a file that is not
/// /proc/net/dev at all should fail rather than lose two interfaces.
fn check_header(text: &str) -> Result<(), String> {
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(first), Some(second)) if first.starts_with("Inter-|") && second.contains('|') => {
            Ok(())
        }
        _ => Err("missing the two header lines (Inter-| Receive ... | Transmit)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorsConfig;

    fn fixture(name: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc/net-dev");
        std::fs::read_to_string(format!("{dir}/{name}")).unwrap()
    }

    fn collect(text: &str, devices: DeviceCollector) -> Families {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/dev"), text).unwrap();
        let mut out = Families::default();
        NetdevCollector::new(dir.path(), devices)
            .collect(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn parses_a_real_sample() {
        let devices = parse(&fixture("real-6.18")).unwrap();
        let names: Vec<_> = devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["eth0", "ifb0", "ifb1", "lo"]);
        assert_eq!(devices[0].recv_bytes, 274355561);
        assert_eq!(devices[0].sent_packets, 5066);
    }

    #[test]
    fn odd_names_and_counters_near_u64_wrap() {
        let out = collect(
            &fixture("odd-names-near-wrap"),
            CollectorsConfig::default().netdev,
        );
        let bytes = out.find("node_network_receive_bytes").unwrap();
        assert_eq!(bytes.kind, Kind::Counter);
        assert_eq!(bytes.help, "Network device statistic receive_bytes.");
        let mut names: Vec<_> = bytes
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "a\"b\\c",
                "br-1a2b",
                "enp3s0f1",
                "eth0.100",
                "lo",
                "veth@x",
                "vnet12345678"
            ]
        );
        assert_eq!(bytes.get(&[("device", "br-1a2b")]), Some(u64::MAX as f64));
        let carrier = out.find("node_network_transmit_carrier").unwrap();
        assert_eq!(carrier.get(&[("device", "veth@x")]), Some(11.0));
        assert_eq!(out.0.len(), COLUMNS.len());
    }

    #[test]
    fn include_and_exclude_patterns_apply() {
        let config = crate::config::parse(
            "[collectors.netdev]\ndevice_include = '^(veth|br-)'\ndevice_exclude = 'x$'\n",
            "t.toml",
        )
        .unwrap();
        let out = collect(&fixture("odd-names-near-wrap"), config.collectors.netdev);
        let bytes = out.find("node_network_receive_bytes").unwrap();
        assert_eq!(bytes.samples.len(), 1);
        assert!(bytes.get(&[("device", "br-1a2b")]).is_some());
    }

    #[test]
    fn no_accepted_device_means_no_families() {
        let config =
            crate::config::parse("[collectors.netdev]\ndevice_include = '^none$'\n", "t.toml")
                .unwrap();
        assert!(
            collect(&fixture("real-6.18"), config.collectors.netdev)
                .0
                .is_empty()
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        let real = fixture("real-6.18");
        assert!(parse(&real.replace("274355561", "-1")).is_err());
        assert!(parse(&format!("{real}  eth9: 1 2 3\n")).is_err());
        let headerless: String = real.lines().skip(2).map(|l| format!("{l}\n")).collect();
        assert!(parse(&headerless).unwrap_err().contains("header"));
        assert!(parse("").is_err());
        let overflow = format!("{real}  eth9: {}0{}\n", u64::MAX, " 0".repeat(15));
        assert!(parse(&overflow).is_err());
    }
}
