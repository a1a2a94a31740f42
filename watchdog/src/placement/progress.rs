//! Progress while a plan runs: the actuator and the mover wrapped so that
//! each move is shown `running` in the history (API, status page) as it
//! starts, and a migration `done` once its source is released, instead of
//! everything at the end of the plan. The executors log each move as it
//! ends; their final report settles every move's outcome.

use std::sync::Arc;

use super::history::{MoveState, PlanHistory};
use crate::{
    lun_mover::{Cancel, Journal, LunMover, MoveError, MoveOrder, Recovered},
    migration::{Actuator, ActuatorFuture, MigrationRequest},
};

/// Where progress goes: the history's record of one plan.
#[derive(Clone)]
pub struct Progress {
    pub history: Arc<PlanHistory>,
    pub plan: String,
}

impl Progress {
    /// Move `index` is now in `state`.
    fn set(&self, index: usize, state: MoveState) {
        self.history.update(&self.plan, |r| {
            if let Some(m) = r.moves.get_mut(index) {
                m.state = state;
            }
        });
    }

    /// The index of the move of `item` from `from`, as the record lists it.
    fn index(&self, item: &str, from: &str) -> Option<usize> {
        self.history
            .get(&self.plan)?
            .moves
            .iter()
            .position(|m| m.item == item && m.from == from)
    }
}

/// An actuator that reports progress.
pub struct TrackedActuator {
    pub inner: Arc<dyn Actuator>,
    pub progress: Progress,
}

impl Actuator for TrackedActuator {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn transfer<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        self.progress.set(r.index, MoveState::Running);
        self.inner.transfer(r)
    }

    fn confirm_running<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        self.inner.confirm_running(r)
    }

    fn release_source<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            self.inner.release_source(r).await?;
            // The executor counts a migration done exactly here.
            self.progress.set(r.index, MoveState::Done);
            Ok(())
        })
    }

    fn abort<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        self.inner.abort(r)
    }
}

/// A LUN mover that reports progress.
pub struct TrackedMover {
    pub inner: Arc<dyn LunMover>,
    pub progress: Progress,
}

impl LunMover for TrackedMover {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn describe(&self, order: &MoveOrder) -> String {
        self.inner.describe(order)
    }

    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError> {
        let index = self.progress.index(&order.lun, &order.from);
        if let Some(i) = index {
            self.progress.set(i, MoveState::Running);
        }
        self.inner.run(order, journal, cancel)
    }

    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError> {
        self.inner.recover(journal)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        migration::{Executor, ExecutorConfig, simulated::SimulatedActuator},
        placement::history::{Kind, tests::record},
        planner::{Change, Migration, MigrationPlan, MoveKind, MoveReason, PlanMode},
    };

    #[tokio::test(start_paused = true)]
    async fn moves_show_running_then_done_while_the_plan_runs() {
        let history = Arc::new(PlanHistory::new(4));
        history.insert(record(
            "p-1",
            Kind::Rebalance,
            false,
            &[("web-1", "hv-a", "hv-b")],
        ));
        let progress = Progress {
            history: history.clone(),
            plan: "p-1".into(),
        };
        let actuator = Arc::new(TrackedActuator {
            inner: Arc::new(SimulatedActuator::new(
                [("web-1", "hv-a")],
                Duration::from_secs(10),
            )),
            progress,
        });
        let figures = crate::planner::ClusterFigures {
            spread: 0.0,
            mean_utilization: 0.0,
            max_utilization: 0.0,
            hosts_over_threshold: 0,
        };
        let zero = Change {
            before: 0.0,
            after: 0.0,
        };
        let plan = MigrationPlan {
            mode: PlanMode::Rebalance,
            migrations: vec![Migration {
                vm: "web-1".into(),
                source: "hv-a".into(),
                destination: "hv-b".into(),
                kind: MoveKind::Live,
                depends_on: vec![],
                cpu_cores: 1.0,
                memory_bytes: 1,
                bytes_to_copy: 1,
                reason: MoveReason::OverThreshold { threshold: 0.8 },
                source_utilization: zero,
                destination_utilization: zero,
            }],
            unplaced: vec![],
            before: figures,
            after: figures,
        };
        let executor = Executor::new(
            ExecutorConfig {
                execute_rebalance: true,
                ..ExecutorConfig::default()
            },
            actuator,
        );
        let run = tokio::spawn(async move { executor.run(&plan).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let state = |h: &PlanHistory| h.get("p-1").unwrap().moves[0].state;
        assert_eq!(
            state(&history),
            MoveState::Running,
            "half way through the copy"
        );
        let report = run.await.unwrap();
        assert_eq!(report.done(), 1);
        assert_eq!(state(&history), MoveState::Done);
    }
}
