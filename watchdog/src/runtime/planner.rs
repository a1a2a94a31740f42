//! The injection point for failover, rebalance and LUN-move steps: a
//! [`PlanExecutor`] answers the engine's synchronous "can you take this?"
//! and carries the work out. `hyperwatch serve` hands the runtime the
//! [`PlacementService`]; [`NoPlanner`] (every such step "not available", so
//! the policy escalates) serves tests that run the runtime alone.

use std::sync::Arc;

use hyperwatch_policies::{
    decision::StepRun,
    input::StepResult,
    planner::{NoPlanner, NotAvailable, PlanKind, PlanRequest, Planner},
    policy::StepAction,
};

use crate::{channels::BoxFuture, placement::PlacementService};

/// The planner as the runtime sees it.
pub trait PlanExecutor: Send + Sync + 'static {
    /// Whether the planner can take `request` now; asked by the engine,
    /// synchronously, so it must answer from state it already holds, the
    /// same way for the same state (the engine stays deterministic).
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable>;

    /// Carries out a step the engine decided (its `action` is failover,
    /// rebalance or move-luns; its `run` id is unique and stable across
    /// watchdog restarts, so a re-sent step can be recognised). Resolves
    /// with the result; the engine's own timeout bounds the wait.
    fn execute(&self, run: StepRun) -> BoxFuture<'static, StepResult>;
}

impl PlanExecutor for NoPlanner {
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable> {
        Planner::check(self, request)
    }

    fn execute(&self, run: StepRun) -> BoxFuture<'static, StepResult> {
        // Unreachable in practice: check() refused, so the engine never
        // decides the step. Answer the same anyway.
        Box::pin(async move {
            StepResult::NotAvailable(format!(
                "no planner for {} in this build",
                run.action.label()
            ))
        })
    }
}

impl PlanExecutor for PlacementService {
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable> {
        Planner::check(self, request)
    }

    fn execute(&self, run: StepRun) -> BoxFuture<'static, StepResult> {
        let service = self.clone();
        Box::pin(async move {
            let kind = match run.action {
                StepAction::Failover => PlanKind::Failover,
                StepAction::Rebalance => PlanKind::Rebalance,
                StepAction::MoveLuns => PlanKind::MoveLuns,
                ref other => {
                    return StepResult::NotAvailable(format!(
                        "{} is not a placement step",
                        other.label()
                    ));
                }
            };
            let request = PlanRequest {
                kind,
                target: run.target,
            };
            service.run_step(&request).await.result()
        })
    }
}

/// Hands the engine the executor's `check`.
pub struct EnginePlanner(pub Arc<dyn PlanExecutor>);

impl Planner for EnginePlanner {
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable> {
        self.0.check(request)
    }
}
