//! The capacity loop (a rebalance of every hypervisor each `[planner]
//! interval_seconds`) and the storage loop (a LUN plan for every device
//! each `[storage] interval_seconds`). Each pass makes one bounded plan
//! (`max_migrations`, `max_moves`), skips while another plan runs, records
//! only plans with something in them (folding a dry run identical to the
//! last into it), and logs a line per plan; execution follows the dry-run
//! settings. After moves were carried out a loop waits `settle_seconds`:
//! its usage windows still show the load from before the moves.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::{cluster_view::HostCapacity, health::HostState};

use super::{
    PlacementService,
    history::{Kind, Trigger},
    machinery,
    metrics::PlanOutcome,
    step::PlanOrder,
};

/// Starts the loops whose interval is not 0.
pub(super) fn spawn(service: &PlacementService) {
    let s = &service.0;
    for (kind, trigger, seconds, settle) in [
        (
            Kind::Rebalance,
            Trigger::CapacityLoop,
            s.planner.interval_seconds,
            s.planner.settle_seconds,
        ),
        (
            Kind::MoveLuns,
            Trigger::StorageLoop,
            s.storage.interval_seconds,
            s.storage.settle_seconds,
        ),
    ] {
        if seconds == 0.0 {
            continue;
        }
        if let Some(why) = machinery::unavailable(kind, &s.migration, &s.storage) {
            tracing::info!(loop = ?trigger, "{why}; the loop does not run");
            continue;
        }
        let interval = Duration::from_secs_f64(seconds);
        let settle = Duration::from_secs_f64(settle);
        tokio::spawn(run(service.clone(), kind, trigger, interval, settle));
    }
}

async fn run(
    service: PlacementService,
    kind: Kind,
    trigger: Trigger,
    interval: Duration,
    settle: Duration,
) {
    let mut stop = service.0.stop.subscribe();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    // The first pass waits an interval: the usage windows fill meanwhile.
    let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = tick.tick() => {
                if pass(&service, kind, trigger).await {
                    tracing::info!(loop = ?trigger, ?settle, "moves were carried out; the next pass waits for the usage windows to settle");
                    tokio::select! {
                        () = &mut stopped => return,
                        () = tokio::time::sleep(settle) => tick.reset(),
                    }
                }
            }
        }
    }
}

/// One pass of a loop; whether it carried moves out.
async fn pass(service: &PlacementService, kind: Kind, trigger: Trigger) -> bool {
    let Ok(lane) = service.lane(kind).clone().try_lock_owned() else {
        tracing::info!(loop = ?trigger, "a plan is being carried out; this pass is skipped");
        return false;
    };
    let s = &service.0;
    let min = match kind {
        Kind::MoveLuns => s.storage.min_samples,
        Kind::Rebalance | Kind::Failover => s.planner.min_samples,
    };
    if let Some(short) = short_windows(&s.registry.capacity(), kind, min) {
        tracing::debug!(loop = ?trigger, "usage windows still filling: {short}");
        return false;
    }
    let order = PlanOrder {
        kind,
        target: None,
        trigger,
        execute: None,
    };
    let mut prepared = match service.prepare(&order) {
        Ok(p) => p,
        Err(refusal) => {
            tracing::warn!(loop = ?trigger, %refusal, "no plan this pass");
            return false;
        }
    };
    let r = &prepared.record;
    if r.moves.is_empty() && r.unplaced.is_empty() {
        tracing::debug!(loop = ?trigger, reason = %r.reason, "nothing to move");
        service.0.metrics.plan(kind, PlanOutcome::NothingToDo);
        return false;
    }
    if let Some(id) = service.admit(&mut prepared, true) {
        tracing::info!(loop = ?trigger, plan = %id, reason = %prepared.record.reason, "the same dry run as plan {id} again");
        service.0.metrics.plan(kind, PlanOutcome::DryRun);
        return false;
    }
    let report = service.carry_out(prepared, lane).await;
    tracing::info!(loop = ?trigger, outcome = ?report.outcome, "{}", report.message);
    !report.dry_run && report.done + report.failed > 0
}

/// The connected hosts a `kind` plan reads whose windows hold fewer than
/// `min` summaries, in words; none when all are full enough.
fn short_windows(hosts: &[HostCapacity], kind: Kind, min: u64) -> Option<String> {
    let short: Vec<String> = hosts
        .iter()
        .filter(|h| h.connected && h.state != HostState::Failed)
        .filter(|h| match kind {
            Kind::MoveLuns => !h.inventory.storage.is_empty(),
            Kind::Rebalance | Kind::Failover => h.is_hypervisor(),
        })
        .filter(|h| h.usage.summaries < min)
        .map(|h| format!("{} has {} of {min} summaries", h.id, h.usage.summaries))
        .collect();
    (!short.is_empty()).then(|| short.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{history::PlanState, tests::Lab};

    #[tokio::test]
    async fn a_pass_records_a_dry_run_once_and_folds_its_repeats() {
        let lab = Lab::new("");
        lab.overloaded_pair();
        assert!(
            !pass(&lab.service, Kind::Rebalance, Trigger::CapacityLoop).await,
            "three summaries are too few for the default ten"
        );
        assert!(lab.service.history().list().is_empty());
        let lab = Lab::new("[planner]\nmin_samples = 3\n");
        lab.overloaded_pair();
        assert!(!pass(&lab.service, Kind::Rebalance, Trigger::CapacityLoop).await);
        assert!(!pass(&lab.service, Kind::Rebalance, Trigger::CapacityLoop).await);
        let plans = lab.service.history().list();
        assert_eq!(plans.len(), 1, "{plans:#?}");
        assert_eq!(plans[0].state, PlanState::DryRun);
        assert_eq!(plans[0].trigger, Trigger::CapacityLoop);
        assert_eq!(plans[0].repeats, 1);
        assert!(!plans[0].moves.is_empty());
    }

    #[tokio::test]
    async fn a_pass_with_execution_on_carries_the_plan_out() {
        let lab = Lab::new(
            "[planner]\nmin_samples = 3\n[migration]\nactuator = \"simulated\"\nexecute_rebalance = true\n[migration.simulated]\ntransfer_seconds = 0.0\n",
        );
        lab.overloaded_pair();
        assert!(pass(&lab.service, Kind::Rebalance, Trigger::CapacityLoop).await);
        let plans = lab.service.history().list();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].state, PlanState::Done, "{:#?}", plans[0]);
        assert!(!plans[0].dry_run);
    }

    #[tokio::test]
    async fn a_pass_over_a_calm_cluster_records_nothing_and_a_busy_lane_skips() {
        let lab = Lab::new("[planner]\nmin_samples = 3\n");
        pass(&lab.service, Kind::Rebalance, Trigger::CapacityLoop).await;
        assert!(lab.service.history().list().is_empty());
        lab.overloaded_pair();
        let held = lab.service.lane(Kind::Rebalance).clone().lock_owned().await;
        pass(&lab.service, Kind::Rebalance, Trigger::CapacityLoop).await;
        assert!(lab.service.history().list().is_empty(), "skipped");
        drop(held);
    }
}
