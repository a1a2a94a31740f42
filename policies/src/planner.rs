//! The interface through which failover, rebalance and LUN-move steps reach
//! the VM placement planner and the LUN rebalancer. Until those exist,
//! [`NoPlanner`] answers "not available" and the policy escalates.

use std::fmt;

use crate::target::TargetRef;

/// The planner's kinds of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanKind {
    /// Re-place a failed host's VMs on hosts with room.
    Failover,
    /// Live-migrate VMs off an overloaded host.
    Rebalance,
    /// Move LUNs off an overloaded storage device.
    MoveLuns,
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanKind::Failover => "failover",
            PlanKind::Rebalance => "rebalance",
            PlanKind::MoveLuns => "move-luns",
        })
    }
}

/// What a step asks the planner for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanRequest {
    /// The kind of work.
    pub kind: PlanKind,
    /// The host (failover, rebalance) or storage device (move-luns).
    pub target: TargetRef,
}

/// Why the planner cannot take a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAvailable(pub String);

/// The planner as the engine sees it: asked, synchronously and without side
/// effects, whether it can take a request. When it can, the engine emits the
/// step as a [`crate::decision::DecisionKind::RunStep`] and the runtime hands
/// it to the planner's executor, which reports back with a step result.
/// Implementations must answer the same request the same way given the same
/// state, or the engine stops being deterministic.
pub trait Planner {
    /// Whether the planner can carry out `request` now.
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable>;
}

/// The planner of a build that has none: every request is "not available",
/// so policies move on to their next step or escalate.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPlanner;

impl Planner for NoPlanner {
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable> {
        Err(NotAvailable(format!(
            "no planner for {} in this build",
            request.kind
        )))
    }
}
