//! The planner's output: an ordered list of migrations with their
//! dependencies and reasons, the VMs that could not be placed and why, and
//! the cluster's figures before and after.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

use super::snapshot::HostState;

/// What a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanMode {
    /// Even out load; empty maintenance hosts.
    Rebalance,
    /// Restart the VMs of failed hosts elsewhere.
    Failover,
}

/// An ordered list of migrations, feasible at every step in any execution
/// that starts a migration only after its `depends_on` have completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub mode: PlanMode,
    pub migrations: Vec<Migration>,
    /// VMs that had to move (failed or maintenance host, pinned elsewhere)
    /// but found no host.
    pub unplaced: Vec<Unplaced>,
    pub before: ClusterFigures,
    pub after: ClusterFigures,
}

impl MigrationPlan {
    /// Bytes live migrations copy (resident memory; restarts copy none).
    pub fn bytes_moved(&self) -> u64 {
        self.migrations.iter().map(|m| m.bytes_to_copy).sum()
    }
}

/// Utilization figures over the healthy hosts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterFigures {
    /// Standard deviation of host utilization (busy cores / cores).
    pub spread: f64,
    pub mean_utilization: f64,
    pub max_utilization: f64,
    /// Healthy hosts above their utilization threshold.
    pub hosts_over_threshold: usize,
}

/// One VM moving from one host to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub vm: String,
    pub source: String,
    pub destination: String,
    pub kind: MoveKind,
    /// Indices (into `migrations`) of the moves that must have completed
    /// before this one starts: they free what it needs on its destination.
    pub depends_on: Vec<usize>,
    /// Busy cores the VM brings to its destination.
    pub cpu_cores: f64,
    /// Memory it occupies there, bytes.
    pub memory_bytes: u64,
    /// Bytes a live migration copies (resident memory); 0 for a restart.
    pub bytes_to_copy: u64,
    pub reason: MoveReason,
    /// Source utilization before and after this move.
    pub source_utilization: Change,
    /// Destination utilization before and after this move.
    pub destination_utilization: Change,
}

/// How the VM gets to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// Live migration: the VM keeps running; the source copy is released
    /// once the destination runs it.
    Live,
    /// The source host is dead: the VM is started on the destination.
    Restart,
}

/// A figure before and after a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub before: f64,
    pub after: f64,
}

/// Why a VM moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum MoveReason {
    /// Its host failed.
    Failover,
    /// Its host is in maintenance and must be emptied.
    Maintenance,
    /// It is pinned to its destination and ran elsewhere.
    ReturnToPin,
    /// Its host is above its utilization threshold.
    OverThreshold { threshold: f64 },
    /// Its host is among the hottest while the spread is above `target`;
    /// the move lowers the sum of squared host utilizations by `gain`.
    Spread { gain: f64, target: f64 },
}

/// A VM that had to move and could not. The reason describes the cluster
/// with all of the plan's migrations done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unplaced {
    pub vm: String,
    pub host: String,
    pub priority: i32,
    pub reason: UnplacedReason,
}

/// Why a VM could not be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum UnplacedReason {
    /// Declared unable to move.
    Unmovable { because: String },
    /// Pinned to a host that cannot take it: that host, and its refusal
    /// (none only if the host would take it after all).
    PinnedTo {
        host: String,
        rejection: Option<Rejection>,
    },
    /// Every other host refused it; how many for each reason.
    NoFeasibleHost {
        rejections: BTreeMap<RejectionKind, usize>,
    },
}

/// Why one host cannot take one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Rejection {
    NotHealthy {
        state: HostState,
    },
    Pinned {
        host: String,
    },
    Capacity {
        resource: Resource,
        needed: f64,
        free: f64,
    },
    Reserved {
        tenant: String,
        resource: Resource,
    },
    AntiAffinity {
        group: String,
    },
}

/// A host resource with a capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Cpu,
    Memory,
    Vcpus,
}

/// [`Rejection`] without its details, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    NotHealthy,
    Pinned,
    Cpu,
    Memory,
    Vcpus,
    Reserved,
    AntiAffinity,
}

impl Rejection {
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::NotHealthy { .. } => RejectionKind::NotHealthy,
            Rejection::Pinned { .. } => RejectionKind::Pinned,
            Rejection::Capacity {
                resource: Resource::Cpu,
                ..
            } => RejectionKind::Cpu,
            Rejection::Capacity {
                resource: Resource::Memory,
                ..
            } => RejectionKind::Memory,
            Rejection::Capacity {
                resource: Resource::Vcpus,
                ..
            } => RejectionKind::Vcpus,
            Rejection::Reserved { .. } => RejectionKind::Reserved,
            Rejection::AntiAffinity { .. } => RejectionKind::AntiAffinity,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotHealthy { state } => write!(f, "host is {state:?}, not healthy"),
            Rejection::Pinned { host } => write!(f, "VM is pinned to host `{host}`"),
            Rejection::Capacity {
                resource,
                needed,
                free,
            } => {
                write!(
                    f,
                    "not enough {resource:?}: needs {needed:.2}, {free:.2} free"
                )
            }
            Rejection::Reserved { tenant, resource } => {
                write!(f, "the free {resource:?} is reserved for tenant `{tenant}`")
            }
            Rejection::AntiAffinity { group } => {
                write!(f, "a VM of anti-affinity group `{group}` is already there")
            }
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectionKind::NotHealthy => "not healthy",
            RejectionKind::Pinned => "VM pinned elsewhere",
            RejectionKind::Cpu => "too little CPU",
            RejectionKind::Memory => "too little memory",
            RejectionKind::Vcpus => "vCPU allocation ratio reached",
            RejectionKind::Reserved => "capacity reserved for another tenant",
            RejectionKind::AntiAffinity => "anti-affinity partner there",
        })
    }
}

impl fmt::Display for Migration {
    /// One line an operator reads: what moves where, and why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: f64| v * 100.0;
        write!(
            f,
            "{} {} from {} ({:.0}% -> {:.0}%) to {} ({:.0}% -> {:.0}%): ",
            match self.kind {
                MoveKind::Live => "migrate",
                MoveKind::Restart => "restart",
            },
            self.vm,
            self.source,
            pct(self.source_utilization.before),
            pct(self.source_utilization.after),
            self.destination,
            pct(self.destination_utilization.before),
            pct(self.destination_utilization.after),
        )?;
        match &self.reason {
            MoveReason::Failover => write!(f, "its host failed"),
            MoveReason::Maintenance => write!(f, "its host is in maintenance"),
            MoveReason::ReturnToPin => write!(f, "it is pinned to {}", self.destination),
            MoveReason::OverThreshold { threshold } => {
                write!(f, "source above its threshold {:.0}%", pct(*threshold))
            }
            MoveReason::Spread { gain, target } => write!(
                f,
                "spread above its target {:.1} points; this move narrows it most (gain {gain:.4})",
                pct(*target)
            ),
        }?;
        if !self.depends_on.is_empty() {
            write!(f, " (after moves {:?})", self.depends_on)?;
        }
        Ok(())
    }
}

impl fmt::Display for Unplaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (on {}, priority {}) not placed: ",
            self.vm, self.host, self.priority
        )?;
        match &self.reason {
            UnplacedReason::Unmovable { because } => write!(f, "it cannot move ({because})"),
            UnplacedReason::PinnedTo {
                host,
                rejection: Some(rejection),
            } => {
                write!(f, "pinned to {host}, which refuses it: {rejection}")
            }
            UnplacedReason::PinnedTo {
                host,
                rejection: None,
            } => write!(f, "pinned to {host}"),
            UnplacedReason::NoFeasibleHost { rejections } => {
                write!(f, "no host can take it:")?;
                for (n, (kind, count)) in rejections.iter().enumerate() {
                    write!(f, "{} {count} {kind}", if n == 0 { "" } else { "," })?;
                }
                Ok(())
            }
        }
    }
}
