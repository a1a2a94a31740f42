//! The capacity planner: a pure function from a cluster snapshot to a
//! migration plan. No I/O, no clock, no randomness, no hash-order
//! decisions: the same snapshot (in any input order) gives the same plan.
//!
//! Two modes: [`rebalance`] (empty maintenance hosts, bring every host under
//! its threshold and the spread of utilization under a target, with few
//! migrations and bytes copied) and [`failover`] (place every VM of the
//! failed hosts, highest priority first). Both return a [`MigrationPlan`]
//! whose every step is feasible, even with moves running concurrently, as
//! long as each waits for its `depends_on`; [`verify`] checks that
//! independently, also against a newer snapshot before executing.
//!
//! Layout:
//! * [`snapshot`]: the input (hosts, VMs, usage windows, constraints).
//! * [`plan`]: the output (migrations, reasons, unplaced VMs, figures).
//! * `usage`: a window of samples to one percentile.
//! * `cluster`: the indexed snapshot and the feasibility check; `index`
//!   builds it (validation, ids, percentiles).
//! * `sequence`: a plan built move by move, with its dependencies.
//! * `placement`: the best host for a VM that has to move.
//! * `failover`, `rebalance`: the two modes; `balance`: rebalancing's
//!   spread-narrowing step.
//! * [`verify`]: an independent replay of a plan against a snapshot.
//! * [`baseline`]: the greedy one-VM-at-a-time balancers the benchmark
//!   compares [`rebalance`] with (Watcher's, and a stronger global one).
//! * `focus`: a plan narrowed to the moves off one host ([`relieve`]).

mod balance;
pub mod baseline;
mod cluster;
mod failover;
mod focus;
mod index;
mod placement;
pub mod plan;
mod rebalance;
mod sequence;
pub mod snapshot;
mod usage;
pub mod verify;

use serde::{Deserialize, Serialize};

pub use failover::failover;
pub use focus::{FocusError, HostRelief, relieve};
pub use plan::{
    Change, ClusterFigures, Migration, MigrationPlan, MoveKind, MoveReason, PlanMode, Rejection,
    RejectionKind, Resource, Unplaced, UnplacedReason,
};
pub use rebalance::rebalance;
pub use snapshot::{
    AntiAffinityGroup, ClusterSnapshot, Constraints, Headroom, Host, HostState, Reservation, Vm,
};
pub use usage::percentile;

/// How the planner reads usage and what it aims for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerSettings {
    /// Which percentile of a usage window stands for the usage (0 to 1).
    /// 0.9 with a window of ten or more samples ignores any single spike.
    pub percentile: f64,
    /// Host utilization (busy cores / cores) above which a host is
    /// overloaded and rebalancing moves VMs off it; hosts may override it.
    pub cpu_threshold: f64,
    /// Rebalancing aims for a standard deviation of host utilization at or
    /// below this (0.05: hosts within about five points of each other).
    pub spread_target: f64,
    /// At most this many migrations in one rebalance plan; none: no limit.
    /// Failover plans are never limited.
    pub max_migrations: Option<usize>,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        PlannerSettings {
            percentile: 0.9,
            // OpenStack Watcher's and vSphere DRS's usual "overloaded" line.
            cpu_threshold: 0.8,
            spread_target: 0.05,
            max_migrations: None,
        }
    }
}

impl PlannerSettings {
    fn validate(&self) -> Result<(), PlannerError> {
        index::check_fraction("planner settings: percentile", self.percentile)?;
        index::check_fraction("planner settings: cpu_threshold", self.cpu_threshold)?;
        if !(self.spread_target.is_finite() && self.spread_target >= 0.0) {
            return Err(PlannerError::OutOfRange {
                place: "planner settings: spread_target".to_owned(),
                value: self.spread_target,
                expected: "a finite number >= 0",
            });
        }
        Ok(())
    }
}

/// A snapshot or settings the planner cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlannerError {
    #[error("snapshot: {kind} `{id}` appears more than once; ids must be unique")]
    Duplicate { kind: &'static str, id: String },
    #[error("snapshot: {place} names host `{host}`, which is not in the snapshot")]
    UnknownHost { place: String, host: String },
    #[error("snapshot: {place} names vm `{vm}`, which is not in the snapshot")]
    UnknownVm { place: String, vm: String },
    #[error("{place} is {value}, expected {expected}")]
    OutOfRange {
        place: String,
        value: f64,
        expected: &'static str,
    },
}
