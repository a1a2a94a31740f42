//! The executor against the simulated cluster (time paused, so waits cost
//! nothing): concurrency limits, dry-run by default for rebalancing,
//! dependencies, failures that leave the VM at its source, timeouts.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use hyperwatch::{
    migration::{
        Actuator, ActuatorFuture, Executor, ExecutorConfig, MigrationRequest, MoveStatus, Stage,
        simulated::{Copies, SimulatedActuator, SimulatedFailure},
    },
    planner::{Change, ClusterFigures, Migration, MigrationPlan, MoveKind, MoveReason, PlanMode},
};

/// Each simulated copy takes this long (virtual time).
const COPY: Duration = Duration::from_secs(30);

fn migration(vm: &str, source: &str, destination: &str, depends_on: Vec<usize>) -> Migration {
    let zero = Change {
        before: 0.0,
        after: 0.0,
    };
    Migration {
        vm: vm.to_owned(),
        source: source.to_owned(),
        destination: destination.to_owned(),
        kind: MoveKind::Live,
        depends_on,
        cpu_cores: 1.0,
        memory_bytes: 1 << 30,
        bytes_to_copy: 1 << 29,
        reason: MoveReason::Maintenance,
        source_utilization: zero,
        destination_utilization: zero,
    }
}

fn plan(mode: PlanMode, migrations: Vec<Migration>) -> MigrationPlan {
    let figures = ClusterFigures {
        spread: 0.0,
        mean_utilization: 0.0,
        max_utilization: 0.0,
        hosts_over_threshold: 0,
    };
    MigrationPlan {
        mode,
        migrations,
        unplaced: Vec::new(),
        before: figures,
        after: figures,
    }
}

fn running_on(host: &str) -> Copies {
    Copies {
        running: BTreeSet::from([host.to_owned()]),
        paused: BTreeSet::new(),
    }
}

fn execute_all() -> ExecutorConfig {
    ExecutorConfig {
        execute_rebalance: true,
        ..ExecutorConfig::default()
    }
}

/// Twelve VMs leaving four hosts for three.
fn busy_plan() -> (Vec<(String, String)>, MigrationPlan) {
    let mut placement = Vec::new();
    let mut migrations = Vec::new();
    for n in 0..12 {
        let (vm, source, destination) = (
            format!("vm{n}"),
            format!("src{}", n % 4),
            format!("dst{}", n % 3),
        );
        migrations.push(migration(&vm, &source, &destination, Vec::new()));
        placement.push((vm, source));
    }
    (placement, plan(PlanMode::Rebalance, migrations))
}

#[tokio::test(start_paused = true)]
async fn concurrency_stays_within_every_limit_and_reaches_them() {
    let (placement, plan) = busy_plan();
    let actuator = Arc::new(SimulatedActuator::new(
        placement.iter().map(|(v, h)| (v.as_str(), h.as_str())),
        COPY,
    ));
    let config = ExecutorConfig {
        max_concurrent: 3,
        max_per_source: 1,
        max_per_destination: 1,
        ..execute_all()
    };
    let report = Executor::new(config, actuator.clone()).run(&plan).await;
    assert_eq!(report.done(), 12, "{report:#?}");
    let peak = actuator.peak();
    assert_eq!(
        (peak.total, peak.per_source, peak.per_destination),
        (3, 1, 1)
    );
    for (vm, _) in &placement {
        let destination = &plan
            .migrations
            .iter()
            .find(|m| &m.vm == vm)
            .unwrap()
            .destination;
        assert_eq!(
            actuator.copies(vm),
            running_on(destination),
            "{vm} runs only at its destination"
        );
    }
    // 12 copies, 3 at a time: four rounds of 30 virtual seconds.
    assert!(
        report.elapsed_ms >= 4 * 30_000 && report.elapsed_ms < 5 * 30_000,
        "{}",
        report.elapsed_ms
    );
}

#[tokio::test(start_paused = true)]
async fn rebalance_plans_are_a_dry_run_unless_switched_on_failover_plans_run() {
    let (placement, rebalance_plan) = busy_plan();
    let actuator = Arc::new(SimulatedActuator::new(
        placement.iter().map(|(v, h)| (v.as_str(), h.as_str())),
        COPY,
    ));
    let report = Executor::new(ExecutorConfig::default(), actuator.clone())
        .run(&rebalance_plan)
        .await;
    assert!(report.dry_run);
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o.status == MoveStatus::WouldRun)
    );
    assert_eq!(
        actuator.copies("vm0"),
        running_on("src0"),
        "a dry run moves nothing"
    );
    assert_eq!(actuator.peak().total, 0);

    let mut failover = plan(
        PlanMode::Failover,
        vec![migration("vm0", "src0", "dst0", Vec::new())],
    );
    failover.migrations[0].kind = MoveKind::Restart;
    let report = Executor::new(ExecutorConfig::default(), actuator.clone())
        .run(&failover)
        .await;
    assert!(!report.dry_run);
    assert_eq!(report.outcomes[0].status, MoveStatus::Done);
    assert_eq!(actuator.copies("vm0"), running_on("dst0"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_migration_leaves_its_vm_at_the_source_and_stops_what_depends_on_it() {
    // m1 needs the room m0 frees on b; m2 waits for m1; m3 is independent.
    let plan = plan(
        PlanMode::Rebalance,
        vec![
            migration("vm0", "b", "c", Vec::new()),
            migration("vm1", "a", "b", vec![0]),
            migration("vm2", "d", "a", vec![1]),
            migration("vm3", "e", "f", Vec::new()),
        ],
    );
    let placement = [("vm0", "b"), ("vm1", "a"), ("vm2", "d"), ("vm3", "e")];
    let actuator = Arc::new(SimulatedActuator::new(placement, COPY));
    actuator.fail("vm0", SimulatedFailure::Transfer);
    let report = Executor::new(execute_all(), actuator.clone())
        .run(&plan)
        .await;
    let status: Vec<&MoveStatus> = report.outcomes.iter().map(|o| &o.status).collect();
    assert!(
        matches!(
            status[0],
            MoveStatus::Failed {
                stage: Stage::Transfer,
                restored: true,
                ..
            }
        ),
        "{:?}",
        status[0]
    );
    assert_eq!(status[1], &MoveStatus::Skipped { after: 0 });
    assert_eq!(
        status[2],
        &MoveStatus::Skipped { after: 0 },
        "the root cause, not the skipped link"
    );
    assert_eq!(status[3], &MoveStatus::Done);
    assert_eq!(actuator.copies("vm0"), running_on("b"));
    assert_eq!(actuator.copies("vm1"), running_on("a"));
    assert_eq!(actuator.copies("vm3"), running_on("f"));
}

#[tokio::test(start_paused = true)]
async fn a_migration_that_hangs_is_stopped_at_its_timeout_and_undone() {
    let plan = plan(
        PlanMode::Failover,
        vec![
            migration("stuck", "a", "b", Vec::new()),
            migration("fine", "a", "c", Vec::new()),
        ],
    );
    let actuator = Arc::new(SimulatedActuator::new(
        [("stuck", "a"), ("fine", "a")],
        COPY,
    ));
    actuator.fail("stuck", SimulatedFailure::Hang);
    let config = ExecutorConfig {
        migration_timeout_secs: 120,
        ..execute_all()
    };
    let report = Executor::new(config, actuator.clone()).run(&plan).await;
    match &report.outcomes[0].status {
        MoveStatus::Failed {
            stage: Stage::Transfer,
            error,
            restored: true,
        } => {
            assert!(error.contains("not complete after 120s"), "{error}")
        }
        other => panic!("expected a transfer timeout, got {other:?}"),
    }
    assert_eq!(report.outcomes[0].elapsed_ms, 120_000);
    assert_eq!(report.outcomes[1].status, MoveStatus::Done);
    assert_eq!(actuator.copies("stuck"), running_on("a"));
    assert_eq!(
        actuator.peak().total,
        2,
        "the hung copy did not block the other"
    );
}

#[tokio::test(start_paused = true)]
async fn the_source_is_kept_until_the_destination_runs_the_vm() {
    let plan = plan(
        PlanMode::Failover,
        vec![migration("ghost", "a", "b", Vec::new())],
    );
    let actuator = Arc::new(SimulatedActuator::new([("ghost", "a")], COPY));
    actuator.fail("ghost", SimulatedFailure::NeverRuns);
    let config = ExecutorConfig {
        confirm_timeout_secs: 20,
        ..execute_all()
    };
    let report = Executor::new(config, actuator.clone()).run(&plan).await;
    match &report.outcomes[0].status {
        MoveStatus::Failed {
            stage: Stage::Confirm,
            error,
            restored: true,
        } => {
            assert!(
                error.contains("b does not report it running after 20s"),
                "{error}"
            )
        }
        other => panic!("expected a confirm failure, got {other:?}"),
    }
    // The paused source copy was resumed, the destination's discarded.
    assert_eq!(actuator.copies("ghost"), running_on("a"));
}

/// The simulated cluster, except that touching VM `boom` panics.
struct Panicky(SimulatedActuator);

impl Actuator for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn transfer<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        assert_ne!(r.vm, "boom", "actuator bug");
        self.0.transfer(r)
    }
    fn confirm_running<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        self.0.confirm_running(r)
    }
    fn release_source<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        self.0.release_source(r)
    }
    fn abort<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        self.0.abort(r)
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_actuator_fails_its_migration_not_the_executor() {
    let plan = plan(
        PlanMode::Failover,
        vec![
            migration("boom", "a", "b", Vec::new()),
            migration("after", "c", "a", vec![0]),
            migration("calm", "c", "d", Vec::new()),
        ],
    );
    let actuator = Arc::new(Panicky(SimulatedActuator::new(
        [("boom", "a"), ("after", "c"), ("calm", "c")],
        COPY,
    )));
    let report = Executor::new(execute_all(), actuator).run(&plan).await;
    match &report.outcomes[0].status {
        MoveStatus::Failed {
            error,
            restored: false,
            ..
        } => assert!(error.contains("panicky actuator panicked"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(report.outcomes[1].status, MoveStatus::Skipped { after: 0 });
    assert_eq!(report.outcomes[2].status, MoveStatus::Done);
}
