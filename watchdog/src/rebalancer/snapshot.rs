//! The rebalancer's input: device groups with their thresholds, the storage
//! devices and the LUNs on them, and the checks they must pass before a plan
//! is made.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::RebalanceError;

/// Everything the rebalancer looks at: one moment of the cluster's storage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Groups of interchangeable devices; a LUN moves only within its group.
    pub groups: Vec<DeviceGroup>,
    /// Every storage device; each names its group.
    pub devices: Vec<Device>,
    /// Every LUN; each names the device that holds it.
    pub luns: Vec<Lun>,
}

/// Devices a LUN can move between (one LVM volume group, one storage tier),
/// with the thresholds that apply to each of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroup {
    /// The group's name, unique in the snapshot.
    pub name: String,
    /// Thresholds and balance bands of the group's devices.
    #[serde(default)]
    pub thresholds: Thresholds,
}

/// When a device is overloaded, and how even the group should be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Highest share of a device's capacity that may be used (0 < x <= 1).
    pub max_capacity_used: f64,
    /// Highest IO latency in seconds a device may show; unset: not checked.
    pub max_latency_seconds: Option<f64>,
    /// Highest share (0 < x <= 1) of the group's IOPS one device may serve;
    /// unset: not checked.
    pub max_iops_share: Option<f64>,
    /// Unset (the default): capacity moves only to bring devices under
    /// `max_capacity_used`, each shed LUN going to the emptiest device (and
    /// moves made for IO prefer emptier devices). Set: a device whose used
    /// fraction is further than this many points (0.10 = ten percentage
    /// points) from the group's mean is evened out towards it too, which
    /// copies about as many bytes as it takes off the fullest devices.
    pub capacity_band: Option<f64>,
    /// A device whose IOPS are within this fraction of the group's mean
    /// IOPS per device (0.25 = 25%) counts as balanced; `inf` turns IO
    /// balancing off.
    pub iops_band: f64,
    /// A device serving at most this many IOPS after the plan is reported as
    /// an idle candidate (it could be spun down); negative: never.
    pub idle_iops: f64,
}

/// OpenStack Watcher's storage_capacity_balance default `volume_threshold`
/// is 80%: the capacity an operator expects to be the alarm line.
pub const DEFAULT_MAX_CAPACITY_USED: f64 = 0.80;
/// IO load fluctuates more than capacity between samples, so the IOPS band
/// is wider (25% of the mean) to keep LUNs from moving on noise.
pub const DEFAULT_IOPS_BAND: f64 = 0.25;
/// One IO per second averaged over the sampling window: what a device whose
/// LUNs are only touched by monitoring shows.
pub const DEFAULT_IDLE_IOPS: f64 = 1.0;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_capacity_used: DEFAULT_MAX_CAPACITY_USED,
            max_latency_seconds: None,
            max_iops_share: None,
            // Evening capacity beyond the thresholds is paid for byte for
            // byte; like VMware Storage DRS and Watcher's
            // storage_capacity_balance, capacity moves by default only when
            // a device crosses its threshold. IO evening stays on: dense LUNs
            // even out IOPS for few bytes.
            capacity_band: None,
            iops_band: DEFAULT_IOPS_BAND,
            idle_iops: DEFAULT_IDLE_IOPS,
        }
    }
}

/// One storage device: an LVM physical volume, a directory pool's file
/// system, a block device, an array's pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Unique name (an LVM PV path, a pool name).
    pub id: String,
    /// The group it belongs to.
    pub group: String,
    /// Usable bytes.
    pub capacity_bytes: u64,
    /// Bytes in use, LUNs and anything else; when less than the LUNs on it
    /// (a snapshot taken while they grew), the LUNs' sum is used.
    pub used_bytes: u64,
    /// IO operations per second it serves; when less than its LUNs' sum,
    /// that sum is used.
    #[serde(default)]
    pub iops: f64,
    /// Mean IO latency in seconds at those IOPS, when measured.
    #[serde(default)]
    pub latency_seconds: Option<f64>,
    /// Whether LUNs may be moved to and from it.
    #[serde(default)]
    pub state: DeviceState,
}

/// What the operator allows on a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// In service: a source and a destination of moves.
    #[default]
    Active,
    /// Being serviced: frozen. Nothing moves to it or off it (a copy would
    /// add IO to a device under repair); its violations are reported.
    Maintenance,
    /// To be emptied: every LUN that may move leaves it; never a destination.
    Draining,
}

/// One LUN: a logical volume, a disk image file, an array volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    /// Unique name (`vg/lv`, an image file name).
    pub id: String,
    /// The device that holds it now.
    pub device: String,
    /// Bytes it occupies on its device, and needs on a destination.
    pub size_bytes: u64,
    /// IO operations per second it sees.
    #[serde(default)]
    pub iops: f64,
    /// Must not move (pinned by the operator, or in use in a way a move
    /// would break).
    #[serde(default)]
    pub pinned: bool,
}

impl Snapshot {
    /// Checks names, references and ranges; the error names the item.
    pub fn validate(&self) -> Result<(), RebalanceError> {
        let mut groups = BTreeSet::new();
        for g in &self.groups {
            if !groups.insert(g.name.as_str()) {
                return Err(RebalanceError::Duplicate {
                    kind: "group",
                    id: g.name.clone(),
                });
            }
            g.thresholds.validate(&g.name)?;
        }
        let mut devices = BTreeSet::new();
        for d in &self.devices {
            let bad = |message: String| RebalanceError::Invalid {
                kind: "device",
                id: d.id.clone(),
                message,
            };
            if !devices.insert(d.id.as_str()) {
                return Err(RebalanceError::Duplicate {
                    kind: "device",
                    id: d.id.clone(),
                });
            }
            if !groups.contains(d.group.as_str()) {
                return Err(bad(format!("group {:?} is not defined", d.group)));
            }
            if d.capacity_bytes == 0 {
                return Err(bad("capacity_bytes must be above 0".into()));
            }
            if !(d.iops.is_finite() && d.iops >= 0.0) {
                return Err(bad(format!(
                    "iops must be a finite number >= 0, not {}",
                    d.iops
                )));
            }
            if let Some(l) = d.latency_seconds.filter(|l| !(l.is_finite() && *l >= 0.0)) {
                return Err(bad(format!(
                    "latency_seconds must be a finite number >= 0, not {l}"
                )));
            }
        }
        let mut luns = BTreeSet::new();
        for l in &self.luns {
            if !luns.insert(l.id.as_str()) {
                return Err(RebalanceError::Duplicate {
                    kind: "LUN",
                    id: l.id.clone(),
                });
            }
            let bad = |message: String| RebalanceError::Invalid {
                kind: "LUN",
                id: l.id.clone(),
                message,
            };
            if !devices.contains(l.device.as_str()) {
                return Err(bad(format!("device {:?} is not defined", l.device)));
            }
            if !(l.iops.is_finite() && l.iops >= 0.0) {
                return Err(bad(format!(
                    "iops must be a finite number >= 0, not {}",
                    l.iops
                )));
            }
        }
        Ok(())
    }
}

impl Thresholds {
    fn validate(&self, group: &str) -> Result<(), RebalanceError> {
        let bad = |message: String| RebalanceError::Invalid {
            kind: "group",
            id: group.to_owned(),
            message,
        };
        let fraction = |name: &str, v: f64| {
            if v > 0.0 && v <= 1.0 {
                Ok(())
            } else {
                Err(bad(format!("{name} must be in (0, 1], not {v}")))
            }
        };
        fraction("max_capacity_used", self.max_capacity_used)?;
        if let Some(s) = self.max_iops_share {
            fraction("max_iops_share", s)?;
        }
        if let Some(l) = self
            .max_latency_seconds
            .filter(|l| !(l.is_finite() && *l > 0.0))
        {
            return Err(bad(format!("max_latency_seconds must be above 0, not {l}")));
        }
        for (name, v) in [
            ("capacity_band", self.capacity_band.unwrap_or(0.0)),
            ("iops_band", self.iops_band),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(bad(format!("{name} must be a number >= 0, not {v}")));
            }
        }
        if self.idle_iops.is_nan() {
            return Err(bad("idle_iops must be a number".into()));
        }
        Ok(())
    }
}
