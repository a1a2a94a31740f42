//! The planner's working copy of a snapshot: devices and LUNs sorted by name
//! (so input order never changes a plan), each device's limits, and the
//! load that moves shift from device to device.

use super::{
    plan::{GroupSpread, IopsCause},
    snapshot::{DeviceState, Snapshot},
};

/// One device as the planner sees it.
#[derive(Clone, Debug)]
pub(super) struct Dev {
    pub id: String,
    pub group: usize,
    pub capacity: u64,
    pub used: u64,
    pub iops: f64,
    pub state: DeviceState,
    /// Most bytes it may hold (its capacity threshold); 0 when draining.
    pub cap_limit: u64,
    /// Most IOPS it may serve, and which threshold sets that.
    pub iops_limit: f64,
    pub iops_cause: IopsCause,
    /// Its LUNs at the start, by index, sorted by name.
    pub luns: Vec<usize>,
}

/// One LUN as the planner sees it.
#[derive(Clone, Debug)]
pub(super) struct LunState {
    pub id: String,
    pub size: u64,
    pub iops: f64,
    pub pinned: bool,
    /// Where it is now in the plan.
    pub device: usize,
    /// Already moved once: a plan moves a LUN at most once.
    pub moved: bool,
}

/// A group's name and the devices in it, by index.
#[derive(Clone, Debug)]
pub(super) struct Group {
    pub name: String,
    pub devices: Vec<usize>,
    /// Infinite when unset: no device is then above or below it.
    pub capacity_band: f64,
    pub iops_band: f64,
    pub idle_iops: f64,
}

/// The whole working state.
#[derive(Clone, Debug)]
pub(super) struct State {
    pub groups: Vec<Group>,
    pub devs: Vec<Dev>,
    pub luns: Vec<LunState>,
}

impl State {
    /// Builds the state of a validated snapshot.
    pub fn new(snap: &Snapshot) -> Self {
        let mut group_names: Vec<&str> = snap.groups.iter().map(|g| g.name.as_str()).collect();
        group_names.sort_unstable();
        let group_index = |name: &str| group_names.binary_search(&name).expect("validated");

        let mut devices: Vec<&super::snapshot::Device> = snap.devices.iter().collect();
        devices.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let dev_index = |id: &str| {
            devices
                .binary_search_by(|d| d.id.as_str().cmp(id))
                .expect("validated")
        };
        let mut lun_refs: Vec<&super::snapshot::Lun> = snap.luns.iter().collect();
        lun_refs.sort_unstable_by(|a, b| a.id.cmp(&b.id));

        let mut on_device: Vec<Vec<usize>> = vec![Vec::new(); devices.len()];
        let luns: Vec<LunState> = lun_refs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let device = dev_index(&l.device);
                on_device[device].push(i);
                LunState {
                    id: l.id.clone(),
                    size: l.size_bytes,
                    iops: l.iops,
                    pinned: l.pinned,
                    device,
                    moved: false,
                }
            })
            .collect();

        let mut devs: Vec<Dev> = devices
            .iter()
            .zip(on_device)
            .map(|(d, mine)| {
                let lun_bytes: u64 = mine.iter().map(|&l| luns[l].size).sum();
                let lun_iops: f64 = mine.iter().map(|&l| luns[l].iops).sum();
                Dev {
                    id: d.id.clone(),
                    group: group_index(&d.group),
                    capacity: d.capacity_bytes,
                    used: d.used_bytes.max(lun_bytes),
                    iops: d.iops.max(lun_iops),
                    state: d.state,
                    cap_limit: 0,
                    iops_limit: f64::INFINITY,
                    iops_cause: IopsCause::None,
                    luns: mine,
                }
            })
            .collect();

        let mut groups: Vec<Group> = group_names
            .iter()
            .map(|name| {
                let t = &snap
                    .groups
                    .iter()
                    .find(|g| g.name == *name)
                    .expect("from the list")
                    .thresholds;
                Group {
                    name: (*name).to_owned(),
                    devices: Vec::new(),
                    capacity_band: t.capacity_band.unwrap_or(f64::INFINITY),
                    iops_band: t.iops_band,
                    idle_iops: t.idle_iops,
                }
            })
            .collect();
        for (i, d) in devs.iter().enumerate() {
            groups[d.group].devices.push(i);
        }

        for g in &snap.groups {
            let gi = group_index(&g.name);
            let t = &g.thresholds;
            let total_iops: f64 = groups[gi].devices.iter().map(|&d| devs[d].iops).sum();
            for &di in &groups[gi].devices {
                let latency = devices[di].latency_seconds;
                let d = &mut devs[di];
                d.cap_limit = match d.state {
                    DeviceState::Draining => 0,
                    _ => (d.capacity as f64 * t.max_capacity_used).floor() as u64,
                };
                if let Some(share) = t.max_iops_share {
                    let limit = share * total_iops;
                    if limit < d.iops_limit {
                        d.iops_limit = limit;
                        d.iops_cause = IopsCause::Share { max_share: share };
                    }
                }
                // Linear model: latency grows in proportion to the IOPS a
                // device serves, so at `max` it sustains iops * max / latency.
                if let (Some(max), Some(lat)) = (t.max_latency_seconds, latency)
                    && lat > 0.0
                    && d.iops > 0.0
                {
                    let limit = d.iops * max / lat;
                    if limit < d.iops_limit {
                        d.iops_limit = limit;
                        d.iops_cause = IopsCause::Latency {
                            latency_seconds: lat,
                            max_seconds: max,
                        };
                    }
                }
                if d.state == DeviceState::Draining {
                    d.iops_limit = 0.0;
                    d.iops_cause = IopsCause::Draining;
                }
            }
        }
        Self { groups, devs, luns }
    }

    /// Moves LUN `l` to device `to`, shifting its bytes and IOPS.
    pub fn apply(&mut self, l: usize, to: usize) {
        let lun = &mut self.luns[l];
        let from = lun.device;
        lun.device = to;
        lun.moved = true;
        let (size, iops) = (lun.size, lun.iops);
        self.devs[from].used -= size;
        self.devs[from].iops = (self.devs[from].iops - iops).max(0.0);
        self.devs[to].used += size;
        self.devs[to].iops += iops;
    }

    /// Whether `l` may leave its device now.
    pub fn movable(&self, l: usize) -> bool {
        let lun = &self.luns[l];
        !lun.pinned && !lun.moved
    }

    /// Whether `to` can take `l` within its capacity and IOPS limits.
    pub fn fits(&self, l: usize, to: usize) -> bool {
        let (lun, d) = (&self.luns[l], &self.devs[to]);
        d.state == DeviceState::Active
            && lun.device != to
            && d.used.saturating_add(lun.size) <= d.cap_limit
            && d.iops + lun.iops <= d.iops_limit
    }

    /// Active devices of group `g`.
    pub fn active(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        self.groups[g]
            .devices
            .iter()
            .copied()
            .filter(|&d| self.devs[d].state == DeviceState::Active)
    }

    /// Mean used fraction (bytes over capacity) and mean IOPS per device of
    /// the group's active devices.
    pub fn means(&self, g: usize) -> (f64, f64) {
        let (mut used, mut cap, mut iops, mut n) = (0u128, 0u128, 0.0, 0usize);
        for d in self.active(g) {
            let d = &self.devs[d];
            used += u128::from(d.used);
            cap += u128::from(d.capacity);
            iops += d.iops;
            n += 1;
        }
        if n == 0 {
            return (0.0, 0.0);
        }
        (used as f64 / cap as f64, iops / n as f64)
    }

    /// How even group `g`'s active devices are.
    pub fn spread(&self, g: usize) -> GroupSpread {
        let fractions: Vec<f64> = self
            .active(g)
            .map(|d| self.devs[d].used as f64 / self.devs[d].capacity as f64)
            .collect();
        let iops: Vec<f64> = self.active(g).map(|d| self.devs[d].iops).collect();
        let (_, mean_iops) = self.means(g);
        let max_iops = iops.iter().copied().fold(0.0, f64::max);
        GroupSpread {
            group: self.groups[g].name.clone(),
            devices: fractions.len(),
            capacity_min: fractions.iter().copied().fold(f64::INFINITY, f64::min),
            capacity_max: fractions.iter().copied().fold(0.0, f64::max),
            capacity_stddev: stddev(&fractions),
            iops_max_over_mean: if mean_iops > 0.0 {
                max_iops / mean_iops
            } else {
                0.0
            },
            iops_cv: if mean_iops > 0.0 {
                stddev(&iops) / mean_iops
            } else {
                0.0
            },
        }
    }
}

/// Population standard deviation; 0 for no values.
fn stddev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}
