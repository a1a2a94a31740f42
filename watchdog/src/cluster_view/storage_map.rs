//! The storage map `GET /api/v1/storage` serves: per host, its devices
//! with their fill, IO figures and the LUNs on them (the LUN distribution),
//! for operators and the status page.

use serde::Serialize;

use super::HostCapacity;
use crate::health::HostState;

/// Every host that has storage devices, by id.
#[derive(Clone, Debug, Serialize)]
pub struct StorageMap {
    pub hosts: Vec<StorageHost>,
}

/// One host's devices.
#[derive(Clone, Debug, Serialize)]
pub struct StorageHost {
    pub host: String,
    pub state: HostState,
    pub maintenance: bool,
    pub connected: bool,
    /// Revision of the inventory the devices come from.
    pub inventory_revision: u64,
    pub devices: Vec<DeviceEntry>,
}

/// One device: its latest figures and the LUNs on it.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceEntry {
    pub id: String,
    /// The backend: lvm, directory_pool, block, simulated.
    pub kind: String,
    pub group: String,
    /// Whether LUNs may move to devices of the group on other hosts.
    pub shared_group: bool,
    pub capacity_bytes: u64,
    /// The latest telemetry sample, else the inventory's figure.
    pub used_bytes: u64,
    /// used_bytes / capacity_bytes.
    pub used_fraction: f64,
    /// Latest IOPS, throughput and mean IO latency, when measured.
    pub iops: Option<f64>,
    pub throughput_bytes_per_second: Option<f64>,
    pub io_latency_seconds: Option<f64>,
    /// Bytes the LUNs on it use, and how many there are.
    pub lun_bytes: u64,
    pub lun_count: usize,
    pub luns: Vec<LunEntry>,
}

/// One LUN copy on a device.
#[derive(Clone, Debug, Serialize)]
pub struct LunEntry {
    pub id: String,
    /// active, leaving or incoming (during a move).
    pub state: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub iops: Option<f64>,
    pub consumer: String,
    pub pinned: bool,
}

/// The map of `hosts`.
pub fn storage_map(hosts: &[HostCapacity]) -> StorageMap {
    let hosts = hosts
        .iter()
        .filter(|h| !h.inventory.storage.is_empty())
        .map(|h| StorageHost {
            host: h.id.clone(),
            state: h.state,
            maintenance: h.maintenance,
            connected: h.connected,
            inventory_revision: h.inventory.revision,
            devices: h
                .inventory
                .storage
                .iter()
                .map(|d| {
                    let w = h.usage.devices.get(&d.name);
                    let used = w
                        .and_then(|w| w.used_bytes.latest())
                        .unwrap_or(d.used_bytes);
                    let luns: Vec<LunEntry> = d
                        .luns
                        .iter()
                        .map(|l| {
                            let lw = h.usage.luns.get(&l.id).filter(|lw| lw.device == d.name);
                            LunEntry {
                                id: l.id.clone(),
                                state: if l.state.is_empty() {
                                    "active".into()
                                } else {
                                    l.state.clone()
                                },
                                size_bytes: l.size_bytes,
                                used_bytes: lw
                                    .and_then(|w| w.used_bytes.latest())
                                    .unwrap_or(l.used_bytes),
                                iops: lw.and_then(|w| w.iops.latest()),
                                consumer: l.consumer.clone(),
                                pinned: l.pinned,
                            }
                        })
                        .collect();
                    DeviceEntry {
                        id: d.name.clone(),
                        kind: d.kind.clone(),
                        group: d.group.clone(),
                        shared_group: d.shared_group,
                        capacity_bytes: d.capacity_bytes,
                        used_bytes: used,
                        used_fraction: if d.capacity_bytes > 0 {
                            used as f64 / d.capacity_bytes as f64
                        } else {
                            0.0
                        },
                        iops: w.and_then(|w| w.iops.latest()),
                        throughput_bytes_per_second: w
                            .and_then(|w| w.throughput_bytes_per_second.latest()),
                        io_latency_seconds: w.and_then(|w| w.io_latency_seconds.latest()),
                        lun_bytes: luns.iter().map(|l| l.used_bytes).sum(),
                        lun_count: luns.len(),
                        luns,
                    }
                })
                .collect(),
        })
        .collect();
    StorageMap { hosts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_view::test_hosts::{device, host, lun, storage_telemetry};

    #[test]
    fn devices_with_their_luns_and_latest_figures() {
        let mut st = host("st-1", &[]);
        st.storage(vec![device(
            "d1",
            "tier1",
            true,
            vec![lun("vol-1", "active"), lun("vol-2", "leaving")],
        )]);
        st.record(&storage_telemetry(
            "d1",
            50 << 30,
            300.0,
            &[("vol-1", 120.0)],
        ));
        let hv = host("hv-1", &[]);
        let map = storage_map(&[hv.capacity, st.capacity]);
        assert_eq!(map.hosts.len(), 1, "hosts without storage are left out");
        let d = &map.hosts[0].devices[0];
        assert_eq!((d.id.as_str(), d.used_bytes), ("d1", 50 << 30));
        assert_eq!(d.used_fraction, 0.5);
        assert_eq!(d.iops, Some(300.0));
        assert_eq!(d.lun_count, 2);
        assert_eq!(d.lun_bytes, (5 << 30) + (8 << 30));
        assert_eq!(d.luns[1].state, "leaving");
        assert_eq!(d.luns[0].iops, Some(120.0));
        let json = serde_json::to_value(&map).unwrap();
        assert_eq!(json["hosts"][0]["devices"][0]["luns"][0]["id"], "vol-1");
    }
}
