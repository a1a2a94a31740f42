//! The rebalancer's output: ordered LUN moves with their dependencies and a
//! reason each, the problems no move could fix, power-saving idle
//! candidates, and how even each group is before and after.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What to do, in an order that never overfills a device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Moves in an order that is safe when run one at a time; `after` says
    /// which may run side by side.
    pub moves: Vec<Move>,
    /// Devices still over a threshold when the plan is done, and why.
    pub unresolved: Vec<Unresolved>,
    /// Devices whose LUNs are rarely used after the plan: they could be
    /// spun down. Reported only; nothing acts on them.
    pub idle_candidates: Vec<IdleCandidate>,
    /// Per group, how even its active devices are now.
    pub before: Vec<GroupSpread>,
    /// Per group, how even they are once every move is done.
    pub after: Vec<GroupSpread>,
}

impl Plan {
    /// Total bytes the moves copy.
    pub fn bytes_moved(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes).sum()
    }
}

/// One LUN moved from one device to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Move {
    /// The LUN.
    pub lun: String,
    /// Its device now.
    pub from: String,
    /// Its device afterwards, in the same group.
    pub to: String,
    /// Bytes copied (the LUN's size on its device).
    pub bytes: u64,
    /// IOPS that leave `from` for `to`.
    pub iops: f64,
    /// Indices into [`Plan::moves`] of the moves that must be finished
    /// before this one starts: they free the room it needs on `to`. Any
    /// moves whose dependencies are done may run at the same time without
    /// filling a destination beyond its capacity threshold.
    pub after: Vec<usize>,
    /// Why the LUN moves.
    pub reason: Reason,
    /// The destination's used fraction once this move is done (in plan
    /// order).
    pub to_used_fraction: f64,
    /// The destination's IOPS once this move is done (in plan order).
    pub to_iops: f64,
}

/// Why a LUN moves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Its device uses more of its capacity than the threshold allows.
    CapacityOver {
        used_fraction: f64,
        max_fraction: f64,
    },
    /// Its device serves more IOPS than a threshold allows.
    IopsOver {
        iops: f64,
        limit: f64,
        cause: IopsCause,
    },
    /// Its device is being drained.
    Draining,
    /// Its device is fuller than the group's mean plus the band.
    CapacityAboveBand {
        used_fraction: f64,
        mean: f64,
        band: f64,
    },
    /// Its device is busier than the group's mean plus the band.
    IopsAboveBand { iops: f64, mean: f64, band: f64 },
    /// The destination is emptier than the group's mean minus the band.
    CapacityBelowBand {
        used_fraction: f64,
        mean: f64,
        band: f64,
    },
    /// The destination is idler than the group's mean minus the band.
    IopsBelowBand { iops: f64, mean: f64, band: f64 },
}

/// Which threshold sets a device's IOPS limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IopsCause {
    /// No IOPS threshold applies.
    None,
    /// `max_iops_share` of the group's IOPS.
    Share { max_share: f64 },
    /// `max_latency_seconds`: with latency growing in proportion to IOPS,
    /// the IOPS at which the device would reach it.
    Latency {
        latency_seconds: f64,
        max_seconds: f64,
    },
    /// A draining device may keep no IO.
    Draining,
}

/// A device the plan leaves over a threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The device.
    pub device: String,
    /// What is wrong and why no move fixes it.
    pub problem: String,
}

/// A device that could be spun down to save power.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleCandidate {
    /// The device.
    pub device: String,
    /// IOPS it serves after the plan.
    pub iops: f64,
    /// LUNs on it after the plan.
    pub luns: usize,
}

/// How even a group's active devices are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSpread {
    /// The group.
    pub group: String,
    /// Active devices counted.
    pub devices: usize,
    /// Lowest used fraction.
    pub capacity_min: f64,
    /// Highest used fraction.
    pub capacity_max: f64,
    /// Standard deviation of the used fractions.
    pub capacity_stddev: f64,
    /// Highest IOPS over the mean IOPS per device (1.0 is perfectly even).
    pub iops_max_over_mean: f64,
    /// Coefficient of variation of IOPS per device (0.0 is perfectly even).
    pub iops_cv: f64,
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "move {} ({}, {:.0} IOPS) from {} to {}: ",
            self.lun,
            Bytes(self.bytes),
            self.iops,
            self.from,
            self.to
        )?;
        let pct = |x: f64| x * 100.0;
        match &self.reason {
            Reason::CapacityOver {
                used_fraction,
                max_fraction,
            } => write!(
                f,
                "{} is {:.1}% full, over its {:.1}% threshold",
                self.from,
                pct(*used_fraction),
                pct(*max_fraction)
            )?,
            Reason::IopsOver { iops, limit, cause } => {
                write!(
                    f,
                    "{} serves {iops:.0} IOPS, over its limit of {limit:.0}",
                    self.from
                )?;
                match cause {
                    IopsCause::Share { max_share } => {
                        write!(f, " ({:.1}% of the group's IOPS)", pct(*max_share))?
                    }
                    IopsCause::Latency {
                        latency_seconds,
                        max_seconds,
                    } => write!(
                        f,
                        " (latency {:.1} ms over {:.1} ms, scaled with IOPS)",
                        latency_seconds * 1e3,
                        max_seconds * 1e3
                    )?,
                    IopsCause::None | IopsCause::Draining => {}
                }
            }
            Reason::Draining => write!(f, "{} is being drained", self.from)?,
            Reason::CapacityAboveBand {
                used_fraction,
                mean,
                band,
            } => write!(
                f,
                "{} is {:.1}% full, above the group mean {:.1}% + {:.1} points",
                self.from,
                pct(*used_fraction),
                pct(*mean),
                pct(*band)
            )?,
            Reason::IopsAboveBand { iops, mean, band } => write!(
                f,
                "{} serves {iops:.0} IOPS, above the group mean {mean:.0} + {:.0}%",
                self.from,
                pct(*band)
            )?,
            Reason::CapacityBelowBand {
                used_fraction,
                mean,
                band,
            } => write!(
                f,
                "{} is {:.1}% full, below the group mean {:.1}% - {:.1} points",
                self.to,
                pct(*used_fraction),
                pct(*mean),
                pct(*band)
            )?,
            Reason::IopsBelowBand { iops, mean, band } => write!(
                f,
                "{} serves {iops:.0} IOPS, below the group mean {mean:.0} - {:.0}%",
                self.to,
                pct(*band)
            )?,
        }
        write!(
            f,
            "; {} will be {:.1}% full serving {:.0} IOPS",
            self.to,
            pct(self.to_used_fraction),
            self.to_iops
        )?;
        if !self.after.is_empty() {
            write!(f, " (after moves {:?} free its room)", self.after)?;
        }
        Ok(())
    }
}

/// A byte count in binary units, for explanations.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}
