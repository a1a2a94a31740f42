//! The placement service's metrics, `hyperwatch_placement_*`: plans by
//! mode and outcome, migrations and LUN moves by outcome, bytes moved, and
//! the time spent planning and executing. The `mode` label takes the same
//! words as the status page's `hyperwatch_plans_recent{mode}` and
//! `hyperwatch_plan_moves_recent{mode,outcome}` ([`Kind::as_str`]), so the
//! two can be joined on a dashboard.

use prometheus_client::{
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::history::{Kind, MoveState};

type Labels = Vec<(&'static str, &'static str)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Names of the families (as scraped, with `_total` on counters).
pub const PLANS: &str = "hyperwatch_placement_plans";
pub const MIGRATIONS: &str = "hyperwatch_placement_migrations";
pub const LUN_MOVES: &str = "hyperwatch_placement_lun_moves";
pub const MOVED_BYTES: &str = "hyperwatch_placement_moved_bytes";
pub const PLAN_DURATION: &str = "hyperwatch_placement_plan_duration_seconds";
pub const EXECUTION_DURATION: &str = "hyperwatch_placement_execution_duration_seconds";

/// How a plan ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanOutcome {
    /// Carried out: every move done, its target relieved.
    Done,
    /// Carried out with a failure, or no longer valid when its turn came.
    Failed,
    /// Recorded only.
    DryRun,
    /// Nothing needed or possible.
    NothingToDo,
}

impl PlanOutcome {
    const ALL: [PlanOutcome; 4] = [
        PlanOutcome::Done,
        PlanOutcome::Failed,
        PlanOutcome::DryRun,
        PlanOutcome::NothingToDo,
    ];

    fn as_str(self) -> &'static str {
        match self {
            PlanOutcome::Done => "done",
            PlanOutcome::Failed => "failed",
            PlanOutcome::DryRun => "dry_run",
            PlanOutcome::NothingToDo => "nothing_to_do",
        }
    }
}

/// Outcomes a carried-out move can have.
const MOVE_OUTCOMES: [MoveState; 4] = [
    MoveState::Done,
    MoveState::Failed,
    MoveState::TimedOut,
    MoveState::Skipped,
];

/// Planning a large cluster takes up to about a second (the planner's
/// target for 10,000 hosts): 100 µs quadrupling to ~26 s.
fn plan_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

/// Carrying a plan out takes seconds (a simulated copy) to hours (LUN
/// copies at their 4 h timeout): 0.1 s quadrupling to ~7 h.
fn execution_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 4.0, 10))
}

/// The families; clones share them.
#[derive(Clone)]
pub struct PlacementMetrics {
    plans: Family<Labels, Counter>,
    migrations: Family<Labels, Counter>,
    lun_moves: Family<Labels, Counter>,
    moved_bytes: Family<Labels, Counter>,
    plan_duration: Histograms,
    execution_duration: Histograms,
}

impl Default for PlacementMetrics {
    fn default() -> Self {
        let m = Self {
            plans: Family::default(),
            migrations: Family::default(),
            lun_moves: Family::default(),
            moved_bytes: Family::default(),
            plan_duration: Family::new_with_constructor(plan_histogram),
            execution_duration: Family::new_with_constructor(execution_histogram),
        };
        // Made ahead (at 0), so rates and dashboards have every series.
        for kind in Kind::ALL {
            for outcome in PlanOutcome::ALL {
                let _ = m.plans.get_or_create(&vec![
                    ("mode", kind.as_str()),
                    ("outcome", outcome.as_str()),
                ]);
            }
        }
        for state in MOVE_OUTCOMES {
            let _ = m
                .migrations
                .get_or_create(&vec![("outcome", state.label())]);
            let _ = m.lun_moves.get_or_create(&vec![("outcome", state.label())]);
        }
        for what in ["vm_memory", "lun"] {
            let _ = m.moved_bytes.get_or_create(&vec![("what", what)]);
        }
        m
    }
}

impl MoveState {
    /// The `outcome` label (snake case, as Prometheus labels go).
    fn label(self) -> &'static str {
        match self {
            MoveState::TimedOut => "timed_out",
            MoveState::WouldRun => "would_run",
            other => other.as_str(),
        }
    }
}

impl PlacementMetrics {
    /// Adds the families to the watchdog's registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            PLANS,
            "Plans made, by mode (rebalance, failover, move-luns) and outcome (done, failed, dry_run, nothing_to_do)",
            self.plans.clone(),
        );
        r.register(
            MIGRATIONS,
            "VM migrations carried out, by outcome (done, failed, timed_out, skipped)",
            self.migrations.clone(),
        );
        r.register(
            LUN_MOVES,
            "LUN moves carried out, by outcome (done, failed, timed_out, skipped)",
            self.lun_moves.clone(),
        );
        r.register(
            MOVED_BYTES,
            "Bytes copied by completed moves: VM memory of live migrations, LUN data",
            self.moved_bytes.clone(),
        );
        r.register(
            PLAN_DURATION,
            "Time spent making a plan, by mode",
            self.plan_duration.clone(),
        );
        r.register(
            EXECUTION_DURATION,
            "Time spent carrying a plan out, by mode",
            self.execution_duration.clone(),
        );
    }

    /// Counts a plan that ended.
    pub fn plan(&self, kind: Kind, outcome: PlanOutcome) {
        self.plans
            .get_or_create(&vec![
                ("mode", kind.as_str()),
                ("outcome", outcome.as_str()),
            ])
            .inc();
    }

    /// Records the time spent planning.
    pub fn planned(&self, kind: Kind, seconds: f64) {
        self.plan_duration
            .get_or_create(&vec![("mode", kind.as_str())])
            .observe(seconds);
    }

    /// Records the time spent executing.
    pub fn executed(&self, kind: Kind, seconds: f64) {
        self.execution_duration
            .get_or_create(&vec![("mode", kind.as_str())])
            .observe(seconds);
    }

    /// Counts a carried-out move and, when done, its bytes.
    pub fn moved(&self, kind: Kind, state: MoveState, bytes: u64) {
        let (family, what) = match kind {
            Kind::MoveLuns => (&self.lun_moves, "lun"),
            Kind::Rebalance | Kind::Failover => (&self.migrations, "vm_memory"),
        };
        family
            .get_or_create(&vec![("outcome", state.label())])
            .inc();
        if state == MoveState::Done {
            self.moved_bytes
                .get_or_create(&vec![("what", what)])
                .inc_by(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn scrape(m: &PlacementMetrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn every_series_exists_from_the_start_and_counts() {
        let m = PlacementMetrics::default();
        let before = scrape(&m);
        for line in [
            "hyperwatch_placement_plans_total{mode=\"move-luns\",outcome=\"dry_run\"} 0",
            "hyperwatch_placement_migrations_total{outcome=\"timed_out\"} 0",
            "hyperwatch_placement_lun_moves_total{outcome=\"skipped\"} 0",
            "hyperwatch_placement_moved_bytes_total{what=\"lun\"} 0",
        ] {
            assert!(before.contains(line), "{line} in\n{before}");
        }
        m.plan(Kind::Failover, PlanOutcome::Done);
        m.moved(Kind::Failover, MoveState::Done, 0);
        m.moved(Kind::Rebalance, MoveState::Done, 4096);
        m.moved(Kind::MoveLuns, MoveState::Failed, 1 << 30);
        m.planned(Kind::Rebalance, 0.002);
        m.executed(Kind::MoveLuns, 3.0);
        let after = scrape(&m);
        for line in [
            "hyperwatch_placement_plans_total{mode=\"failover\",outcome=\"done\"} 1",
            "hyperwatch_placement_migrations_total{outcome=\"done\"} 2",
            "hyperwatch_placement_lun_moves_total{outcome=\"failed\"} 1",
            "hyperwatch_placement_moved_bytes_total{what=\"vm_memory\"} 4096",
            "hyperwatch_placement_moved_bytes_total{what=\"lun\"} 0",
            "hyperwatch_placement_plan_duration_seconds_count{mode=\"rebalance\"} 1",
            "hyperwatch_placement_execution_duration_seconds_count{mode=\"move-luns\"} 1",
        ] {
            assert!(after.contains(line), "{line} in\n{after}");
        }
    }
}
